/* pres_int: what the notifier engine (pres_uas.c, pres_sub.c, pres_notify.c,
 * pres_timer.c, pres_text.c) shares; private to those files (docs/presence.md, "The
 * presence agent: subscriptions and NOTIFYs").
 *
 * Redis records of a subscription (hash tag = its resource's AOR):
 *   <c>:{<aor>}:subs    id -> packed Subscription
 *   <c>:{<aor>}:pstate  "c:<id>" CSeq of our last NOTIFY in its dialog, "v:<id>"
 *                       document version counter (winfo, reginfo, rlmi: the first
 *                       NOTIFY carries 0), "n:<pkg>" ms of the last NOTIFY round
 *   <c>:{pres}:timers   "s|<aor>|<id>" at its expiry, "n|<aor>|<pkg>" at the end of
 *                       a throttling interval */
#ifndef SKEIN_REGISTRAR_PRES_INT_H
#define SKEIN_REGISTRAR_PRES_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "skein/sk_buf.h"
#include "pres.h"

/* A subscription id: 32 hex digits (128 bits of SHA-256 of the dialog id). */
#define PRES_ID_SIZE 33
#define PRES_KEY_MAX 640 /* "<cluster>:{<aor>}:<what>" */
/* Timer pops per script run (more due: the poll runs again at once). */
#define PRES_TIMER_BATCH 200
/* Retry-After (s) of a 500/503 we answer when storage fails or the resource is full. */
#define PRES_RETRY_AFTER "Retry-After: 5"

/* ---- the Lua scripts (tests/registrar/test_pres_engine.c runs them) ---- */

/* Redis time in ms, as every script computes it (never the local clock). */
#define PRES_LUA_NOW                                                                               \
	"local t = redis.call('TIME')\n"                                                           \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* KEYS[1] subs; ARGV id -> {now} or {now, packed} */
#define PRES_LUA_GET                                                                               \
	PRES_LUA_NOW                                                                               \
	"local v = redis.call('HGET', KEYS[1], ARGV[1])\n"                                         \
	"if not v then return {now} end\n"                                                         \
	"return {now, v}\n"

/* Compare-and-set of one subscription. KEYS[1] subs; ARGV id, the packed record
 * read before ('' = create), the new one, max_watchers. 0 stored, 1 changed since
 * read, 2 exists (create), 3 resource full, 4 gone. The HLEN check and the HSET are
 * one step, so concurrent SUBSCRIBEs on several registrars cannot pass the cap. */
#define PRES_LUA_PUT                                                                               \
	"local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"                                       \
	"if ARGV[2] == '' then\n"                                                                  \
	"  if cur then return 2 end\n"                                                             \
	"  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return 3 end\n"                \
	"elseif not cur then return 4\n"                                                           \
	"elseif cur ~= ARGV[2] then return 1 end\n"                                                \
	"redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"                                          \
	"return 0\n"

/* KEYS[1] subs -> {now, {id, packed, ...}} */
#define PRES_LUA_ALL PRES_LUA_NOW "return {now, redis.call('HGETALL', KEYS[1])}\n"

/* The CSeq (and document version) of the next NOTIFY of a subscription, atomic
 * across registrars. KEYS[1] subs, KEYS[2] pstate; ARGV id, bump version (1/0),
 * final (1/0: the subscription goes in the same step, so exactly one final NOTIFY
 * is sent however many registrars race to end it). {} when it is gone. */
#define PRES_LUA_SEQ                                                                               \
	"if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {} end\n"                     \
	"local c = redis.call('HINCRBY', KEYS[2], 'c:' .. ARGV[1], 1)\n"                           \
	"local v = 0\n"                                                                            \
	"if ARGV[2] == '1' then\n"                                                                 \
	"  v = redis.call('HINCRBY', KEYS[2], 'v:' .. ARGV[1], 1) - 1\n"                           \
	"end\n"                                                                                    \
	"if ARGV[3] == '1' then\n"                                                                 \
	"  redis.call('HDEL', KEYS[1], ARGV[1])\n"                                                 \
	"  redis.call('HDEL', KEYS[2], 'c:' .. ARGV[1], 'v:' .. ARGV[1])\n"                        \
	"end\n"                                                                                    \
	"return {c, v}\n"

/* KEYS[1] subs, KEYS[2] pstate; ARGV id -> 1 removed, 0 was not there */
#define PRES_LUA_DEL                                                                               \
	"if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end\n"                         \
	"redis.call('HDEL', KEYS[2], 'c:' .. ARGV[1], 'v:' .. ARGV[1])\n"                          \
	"return 1\n"

/* Throttling (notify_interval). KEYS[1] pstate; ARGV "n:<pkg>", interval ms,
 * bypass (1: the coalescing timer fired). {1, now}: go (now recorded); {0, at}: a
 * round went less than an interval ago, the caller arms "n|..." at `at`. */
#define PRES_LUA_THROTTLE                                                                          \
	PRES_LUA_NOW                                                                               \
	"local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))\n"                            \
	"local iv = tonumber(ARGV[2])\n"                                                           \
	"if ARGV[3] ~= '1' and last and now >= last and now - last < iv then\n"                    \
	"  return {0, last + iv}\n"                                                                \
	"end\n"                                                                                    \
	"redis.call('HSET', KEYS[1], ARGV[1], now)\n"                                              \
	"return {1, now}\n"

/* KEYS[1] <c>:{pres}:timers; ARGV batch -> {now, {member, ...}}: the due members,
 * removed in the same step, so exactly one registrar handles each. */
#define PRES_LUA_POP                                                                               \
	PRES_LUA_NOW                                                                               \
	"local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])\n"       \
	"if #m > 0 then redis.call('ZREM', KEYS[1], unpack(m)) end\n"                              \
	"return {now, m}\n"

struct sk_redis_script;
struct sk_counter;
struct uv_timer_s;

enum pres_sub_result {
	PRES_SUB_CREATED = 0,
	PRES_SUB_REFRESHED,
	PRES_SUB_FETCHED,
	PRES_SUB_TERMINATED, /* unsubscribed by the watcher (Expires: 0) */
	PRES_SUB_REJECTED,   /* 4xx (bad request, 403, 423, 481, 489 ...) */
	PRES_SUB_ERROR,	     /* storage failure, 5xx */
	PRES_SUB_RESULT_MAX_
};

enum pres_notify_result {
	PRES_NOTIFY_OK = 0,    /* 2xx */
	PRES_NOTIFY_REFUSED,   /* another final status, subscription kept */
	PRES_NOTIFY_ENDED,     /* 481/408/... or a transport failure: subscription ended */
	PRES_NOTIFY_ERROR,     /* not sent: storage, state fetch, body, no edge */
	PRES_NOTIFY_THROTTLED, /* a round deferred to the end of notify_interval */
	PRES_NOTIFY_RESULT_MAX_
};

enum pres_end_reason {
	PRES_END_TIMEOUT = 0, /* expired */
	PRES_END_UNSUBSCRIBED,
	PRES_END_REJECTED, /* authorization withdrawn */
	PRES_END_FAILED,   /* a NOTIFY failed (RFC 6665 §4.2.2) */
	PRES_END_NORESOURCE, /* the resource (a list) went away */
	PRES_END_MAX_
};

struct pres_agent {
	struct registrar *r;
	/* the scripts above, registered by pres_start */
	struct sk_redis_script *s_get, *s_put, *s_all, *s_seq, *s_del, *s_throttle, *s_pop;
	struct uv_timer_s *timer; /* pres_timer.c; freed in its close callback */
	bool popping;		  /* a pop script is in flight */
	bool stopped;
	char timers_key[PRES_KEY_MAX];
	struct {
		struct sk_counter *sub[PRES_SUB_RESULT_MAX_];
		struct sk_counter *created[PRES_PKG_MAX_ + 1]; /* + 1: RLS lists */
		struct sk_counter *notify[PRES_NOTIFY_RESULT_MAX_];
		struct sk_counter *ended[PRES_END_MAX_];
		struct sk_counter *timers, *timer_errors;
	} m;
};

/* ---- pres_text.c: pure helpers (tests/registrar/test_pres_engine.c) ---- */

/* The id of the dialog (Call-ID, the watcher's tag, our tag). */
void pres_sub_id(char id[PRES_ID_SIZE], const char *call_id, const char *remote_tag,
		 const char *local_tag);
/* A From header value without its tag parameter (RFC 3261 §19.3), other parameters
 * kept: refcounted, NULL when out of memory. */
char *pres_strip_tag(const char *from);
/* The display name of a name-addr, unquoted (refcounted, "" when none). */
char *pres_display_name(const char *from);
/* The Subscription-State value (RFC 6665 §8.2.3): active/pending with the whole
 * seconds left (rounded up), terminated with its reason. */
int pres_substate(char *buf, size_t size, const char *state, const char *reason,
		  uint64_t expires_at_ms, uint64_t now_ms);
/* The NOTIFY request without Via (common.md): appended to b. SK_EINVAL when a field
 * would break the message (CR/LF, no remote target). */
int pres_notify_text(struct sk_buf *b, const Skein__Sip__V1__Subscription *s, uint32_t cseq,
		     const char *substate, const char *ctype, const char *body, size_t len);
/* Splits a timer member "k|<aor>|<id>" (the aor may not hold '|': SIP user parts
 * escape it, RFC 3261 §25.1). false when malformed. */
bool pres_timer_parse(const char *member, size_t len, char *kind, char *aor, size_t asize, char *id,
		      size_t isize);
/* Whether the Supported list holds the option tag (case-insensitive). */
bool pres_has_tag(char *const *tags, size_t n, const char *tag);

/* ---- pres_uas.c ---- */
int pres_key(char *buf, size_t size, const struct registrar *r, const char *aor, const char *what);
/* The ops serving a stored subscription (presence with eventlist: pres_ops_rls). */
const struct pres_pkg_ops *pres_sub_ops(const Skein__Sip__V1__Subscription *s);
/* Sets a timer (ZADD; nx: only when none is set) / clears it; fire and forget. */
void pres_timer_arm(struct registrar *r, char kind, const char *aor, const char *id, uint64_t at_ms,
		    bool nx);
void pres_timer_disarm(struct registrar *r, char kind, const char *aor, const char *id);

/* ---- pres_notify.c ---- */

/* One NOTIFY to send in a round. */
struct redisReply;
/* pres_sub.c helpers shared with pres_sub_end.c: a packed record unpacked (free with
 * pres_sub_free), and the {now} or {now, packed} reply of PRES_LUA_GET. */
Skein__Sip__V1__Subscription *pres_sub_unpack(const void *p, size_t len);
int pres_sub_get_parse(const struct redisReply *reply, uint64_t *now, const char **packed,
		       size_t *len);

struct pres_target {
	Skein__Sip__V1__Subscription *s; /* owned: free_unpacked (or pres_sub_free) */
	const char *final;		 /* NULL; else terminated;reason=final, deleted first */
	bool transient;			 /* a fetch: not stored, CSeq 1, version 0 */
	bool body_final;		 /* a final NOTIFY still carries the state (fetch) */
	enum pres_end_reason why;	 /* with final: counted, winfo event */
};
/* NOTIFYs for t[0..n) of resource aor, all served by ops: the state is fetched once
 * (when any of them carries a body). Takes the subscriptions (also on error); the
 * array itself is copied. now_ms: Redis time for Subscription-State expires. */
void pres_notify_subs(struct registrar *r, const struct pres_pkg_ops *ops, const char *aor,
		      uint64_t now_ms, struct pres_target *t, size_t n);
/* The coalesced round of (aor, pkg) without the throttle (timer "n|..."). */
void pres_changed_now(struct registrar *r, enum pres_pkg pkg, const char *aor);
/* Every subscription of aor with the Redis time: cb owns subs[i] (pres_sub_free)
 * and the array (free()). */
typedef void(pres_subs_cb)(int err, uint64_t now_ms, Skein__Sip__V1__Subscription **subs, size_t n,
			   void *arg);
int pres_subs_load(struct registrar *r, const char *aor, pres_subs_cb *cb, void *arg);
/* A subscription has just been removed from Redis (by the NOTIFY sequence script or
 * pres_sub_delete): its timer goes, the winfo watchers / RLS index hear of it. */
void pres_sub_ended(struct registrar *r, const Skein__Sip__V1__Subscription *s,
		    enum pres_end_reason why);
/* Removes a subscription (no NOTIFY), then pres_sub_ended when it was still there. */
void pres_sub_delete(struct registrar *r, const Skein__Sip__V1__Subscription *s,
		     enum pres_end_reason why);
void pres_sub_free(Skein__Sip__V1__Subscription *s);

/* ---- pres_sub.c ---- */
/* Timer "s|<aor>|<id>" fired. */
void pres_sub_expire(struct registrar *r, const char *aor, const char *id);

/* ---- pres_timer.c ---- */
int pres_timer_start(struct registrar *r);
void pres_timer_stop(struct registrar *r);

#endif
