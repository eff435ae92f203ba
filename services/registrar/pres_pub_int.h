/* pres_pub_int: what pres_publish.c, pres_presence.c and pres_winfo.c share, and the
 * pure parts of them (tested by tests/registrar/test_pres_publish.c without the
 * daemon): the PUBLISH expiry rules, the winfo state mapping, the Lua helpers that
 * read and rewrite a packed Publication inside Redis. */
#ifndef SKEIN_REGISTRAR_PRES_PUB_INT_H
#define SKEIN_REGISTRAR_PRES_PUB_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
/* By path: the unit test has no skein_presence include directory. */
#include "../presence/policy.h"
#include "../presence/winfo.h"

/* An entity-tag: 16 hex digits (64 random bits), RFC 3903 §4.1 leaves the form to us. */
#define PRES_ETAG_SIZE 17
/* The documents the presence package reads from XCAP: RFC 5025 §9.1 and RFC 4827
 * §3.1 name no fixed document, clients use "index" (docs/xcap.md). */
#define PRES_XCAP_DOC "index"

/* Lua: read and rewrite protobuf wire format (only varint and length-delimited
 * fields occur in Publication). Field 1 = etag, 5 = expires_at_ms, 6 = published_ms
 * (presence.proto). Numbers stay below 2^53, exact in Lua's doubles.
 *  pb_get(s, f)      the varint field f of s, or nil
 *  pb_strip(s, a, b) s without the fields numbered a and b
 *  pb_varint(f, n)   field f = n, encoded
 *  pb_string(f, v)   field f = v, encoded
 *  now_ms()          Redis TIME in ms */
#define PRES_LUA_PB                                                                                \
	"local function rd(s, i)\n"                                                                \
	"  local n, m = 0, 1\n"                                                                    \
	"  while true do\n"                                                                        \
	"    local b = s:byte(i)\n"                                                                \
	"    if not b then return nil, i end\n"                                                    \
	"    i = i + 1\n"                                                                          \
	"    n = n + (b % 128) * m\n"                                                              \
	"    if b < 128 then return n, i end\n"                                                    \
	"    m = m * 128\n"                                                                        \
	"  end\n"                                                                                  \
	"end\n"                                                                                    \
	"local function walk(s, fn)\n"                                                             \
	"  local i = 1\n"                                                                          \
	"  while i <= #s do\n"                                                                     \
	"    local st, key, v = i\n"                                                               \
	"    key, i = rd(s, i)\n"                                                                  \
	"    if not key then return end\n"                                                         \
	"    local f, wt = math.floor(key / 8), key % 8\n"                                         \
	"    if wt == 0 then v, i = rd(s, i)\n"                                                    \
	"    elseif wt == 2 then local l; l, i = rd(s, i); if not l then return end; i = i + l\n"  \
	"    elseif wt == 1 then i = i + 8\n"                                                      \
	"    elseif wt == 5 then i = i + 4\n"                                                      \
	"    else return end\n"                                                                    \
	"    fn(f, wt, v, st, i)\n"                                                                \
	"  end\n"                                                                                  \
	"end\n"                                                                                    \
	"local function pb_get(s, want)\n"                                                         \
	"  local r\n"                                                                              \
	"  walk(s, function(f, wt, v) if f == want and wt == 0 then r = v end end)\n"              \
	"  return r\n"                                                                             \
	"end\n"                                                                                    \
	"local function pb_strip(s, a, b)\n"                                                       \
	"  local out = {}\n"                                                                       \
	"  walk(s, function(f, wt, v, st, e)\n"                                                    \
	"    if f ~= a and f ~= b then out[#out + 1] = s:sub(st, e - 1) end\n"                     \
	"  end)\n"                                                                                 \
	"  return table.concat(out)\n"                                                             \
	"end\n"                                                                                    \
	"local function enc(n)\n"                                                                  \
	"  local t = {}\n"                                                                         \
	"  repeat\n"                                                                               \
	"    local b = n % 128\n"                                                                  \
	"    n = math.floor(n / 128)\n"                                                            \
	"    if n > 0 then b = b + 128 end\n"                                                      \
	"    t[#t + 1] = string.char(b)\n"                                                         \
	"  until n == 0\n"                                                                         \
	"  return table.concat(t)\n"                                                               \
	"end\n"                                                                                    \
	"local function pb_varint(f, n) return enc(f * 8) .. enc(n) end\n"                         \
	"local function pb_string(f, v) return enc(f * 8 + 2) .. enc(#v) .. v end\n"               \
	"local function now_ms()\n"                                                                \
	"  local t = redis.call('TIME')\n"                                                         \
	"  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                     \
	"end\n"

/* KEYS[1] = <c>:{aor}:pubs. ARGV = mode ("new", "modify", "refresh", "remove"), the
 * entity-tag in SIP-If-Match ("" for new), the new entity-tag, the lifetime in s,
 * the packed Publication without expires_at_ms and published_ms (new, modify).
 * Returns {1, expires_at_ms, now} when done; {0, 0, now} when SIP-If-Match names no
 * live publication (412, RFC 3903 §6 step 2). A refresh keeps the record and its
 * published_ms (it changes nothing the watchers see) under the new tag. The key's
 * own TTL covers the longest publication plus a minute: a timer lost with a crash
 * between the script and the ZADD still cannot keep a publication forever. */
#define PRES_LUA_PUBLISH                                                                           \
	PRES_LUA_PB                                                                                \
	"local mode, old, new = ARGV[1], ARGV[2], ARGV[3]\n"                                       \
	"local exp = tonumber(ARGV[4])\n"                                                          \
	"local now = now_ms()\n"                                                                   \
	"local rec\n"                                                                              \
	"if mode ~= 'new' then\n"                                                                  \
	"  local cur = redis.call('HGET', KEYS[1], old)\n"                                         \
	"  if not cur or (pb_get(cur, 5) or 0) <= now then return {0, 0, now} end\n"               \
	"  redis.call('HDEL', KEYS[1], old)\n"                                                     \
	"  if mode == 'remove' then return {1, 0, now} end\n"                                      \
	"  if mode == 'refresh' then rec = pb_strip(cur, 1, 5) .. pb_string(1, new) end\n"         \
	"end\n"                                                                                    \
	"if not rec then rec = ARGV[5] .. pb_varint(6, now) end\n"                                 \
	"local at = now + exp * 1000\n"                                                            \
	"redis.call('HSET', KEYS[1], new, rec .. pb_varint(5, at))\n"                              \
	"if redis.call('PTTL', KEYS[1]) < exp * 1000 + 60000 then\n"                               \
	"  redis.call('PEXPIRE', KEYS[1], exp * 1000 + 60000)\n"                                   \
	"end\n"                                                                                    \
	"return {1, at, now}\n"

/* KEYS[1] = pubs, ARGV[1] = the entity-tag whose timer fired. Removes it if it is
 * due (a refresh moved it to a new tag, so a stale timer finds nothing), and any
 * other expired publication of the presentity on the way (a timer lost in a crash).
 * Returns how many went. */
#define PRES_LUA_EXPIRE                                                                            \
	PRES_LUA_PB                                                                                \
	"local now = now_ms()\n"                                                                   \
	"local all = redis.call('HGETALL', KEYS[1])\n"                                             \
	"local n = 0\n"                                                                            \
	"for i = 1, #all, 2 do\n"                                                                  \
	"  if (pb_get(all[i + 1], 5) or 0) <= now then\n"                                          \
	"    redis.call('HDEL', KEYS[1], all[i])\n"                                                \
	"    n = n + 1\n"                                                                          \
	"  end\n"                                                                                  \
	"end\n"                                                                                    \
	"return n\n"

/* KEYS = pubs, xcap (one slot: both {aor}); ARGV = the pres-rules and the
 * pidf-manipulation field. Returns {now, {etag, rec, ...}, rules or nil, manip or
 * nil}: everything the presence package needs for one resource, one round trip. */
#define PRES_LUA_PRES_FETCH                                                                        \
	PRES_LUA_PB                                                                                \
	"return {now_ms(), redis.call('HGETALL', KEYS[1]),\n"                                      \
	"        redis.call('HGET', KEYS[2], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[2])}\n"

/* The lifetime of a PUBLISH (RFC 3903 §6 step 4; RFC 3261 §10.3 step 7 for the
 * shape): requested < 0 (no Expires) -> dflt; 0 -> 0 (removal); a non-zero one below
 * min -> 423 (*out = min, for Min-Expires); above max -> max. Returns 0 or 423. */
static inline unsigned pres_pub_expires(int64_t requested, int64_t dflt, int64_t min, int64_t max,
					int64_t *out)
{
	if (requested < 0) {
		*out = dflt;
	} else if (requested == 0) {
		*out = 0;
	} else if (requested < min) {
		*out = min;
		return 423;
	} else {
		*out = requested > max ? max : requested;
	}
	return 0;
}

/* Seconds left of something that ends at end_ms, now now_ms: rounded up, so that a
 * subscription with 0.4 s left still says 1 (0 means "ended" to a reader). */
static inline long pres_secs_left(uint64_t end_ms, uint64_t now_ms)
{
	return end_ms > now_ms ? (long)((end_ms - now_ms + 999) / 1000) : 0;
}

/* A subscription's winfo status and event (RFC 3858 §3, RFC 3857 §5.2) from its
 * stored state and reason: pending -> pending/subscribe; active -> active/approved
 * when it came from pending (reason "approved"), else active/subscribe; terminated
 * -> the reason when it names a winfo event (rejected, timeout, deactivated, ...),
 * else timeout. Returns false for an unknown state. */
static inline bool pres_winfo_map(const char *state, const char *reason, enum winfo_status *st,
				  enum winfo_event *ev)
{
	static const struct {
		const char *name;
		enum winfo_event ev;
	} reasons[] = {
	    {"rejected", WINFO_EV_REJECTED},	   {"timeout", WINFO_EV_TIMEOUT},
	    {"deactivated", WINFO_EV_DEACTIVATED}, {"probation", WINFO_EV_PROBATION},
	    {"giveup", WINFO_EV_GIVEUP},	   {"noresource", WINFO_EV_NORESOURCE},
	};

	if (!state || !reason)
		return false;
	if (!strcmp(state, "pending")) {
		*st = WINFO_PENDING;
		*ev = WINFO_EV_SUBSCRIBE;
	} else if (!strcmp(state, "active")) {
		*st = WINFO_ACTIVE;
		*ev = !strcmp(reason, "approved") ? WINFO_EV_APPROVED : WINFO_EV_SUBSCRIBE;
	} else if (!strcmp(state, "terminated")) {
		*st = WINFO_TERMINATED;
		*ev = WINFO_EV_TIMEOUT;
		for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
			if (!strcmp(reason, reasons[i].name))
				*ev = reasons[i].ev;
	} else {
		return false;
	}
	return true;
}

/* pres_default_policy (main.c) as an action; anything else is confirm, the usual
 * default (RFC 5025 §3.2.1 leaves it to the server). */
static inline enum policy_action pres_policy_default(const char *name)
{
	if (name && !strcmp(name, "allow"))
		return POLICY_ALLOW;
	if (name && !strcmp(name, "block"))
		return POLICY_BLOCK;
	if (name && !strcmp(name, "polite-block"))
		return POLICY_POLITE_BLOCK;
	return POLICY_CONFIRM;
}

/* The subscription state of a presence watcher (RFC 5025 §3.2.1, RFC 6665 §4.1.3):
 * allow -> active; polite-block -> active too (the watcher must not learn it is
 * blocked: it gets the offline document); confirm -> pending (the presentity
 * decides, through watcher-info); block -> terminated, *reason "rejected". own: a
 * watcher subscribing to its own presence is always active. */
static inline const char *pres_auth_state(enum policy_action a, bool own, const char **reason)
{
	*reason = NULL;
	if (own || a == POLICY_ALLOW || a == POLICY_POLITE_BLOCK)
		return "active";
	if (a == POLICY_CONFIRM)
		return "pending";
	*reason = "rejected";
	return "terminated";
}

/* ---- pres_publish.c ---- */
struct registrar;
struct sk_redis_script;

/* Fills buf (PRES_ETAG_SIZE) with a fresh entity-tag. 0 or a negative errno. */
int pres_etag_new(char *buf);

/* The Lua scripts of the presence agent's own keys, registered on first use. */
enum pres_script {
	PRES_SCRIPT_PUBLISH,	/* check SIP-If-Match and replace, one publication */
	PRES_SCRIPT_EXPIRE,	/* drop a presentity's expired publications */
	PRES_SCRIPT_PRES_FETCH, /* publications + pres-rules + pidf-manipulation */
	PRES_SCRIPT_MAX_
};
/* NULL on ENOMEM. */
struct sk_redis_script *pres_script(struct registrar *r, enum pres_script which);

#endif
