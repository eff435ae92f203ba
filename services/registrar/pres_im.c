/* pres_im: the offline IM store (docs/presence.md "Offline IM"). A MESSAGE the edge
 * could not deliver (no binding) is kept in <c>:{aor}:ims and answered 202 Accepted
 * (RFC 3428 §7: the message was accepted, not yet delivered); when the user
 * registers a new binding, the registrar that stored the REGISTER sends the kept
 * messages to it through an edge, one at a time and in order, each removed only
 * once the UA answered 2xx. Every step is a Lua script on the AOR's keys (one hash
 * slot), times from Redis TIME; the message-summary package (pres_mwi.c) counts
 * what is kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <uv.h>
#include <hiredis/hiredis.h>
#include "skein/sk_buf.h"
#include "skein/sk_bus.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"
#include "skein/sk_redis.h"
#include "reg.h"
#include "pres.h"
#include "pres_im.h"

SK_LOG_MODULE("im");

#define KEY_MAX	    640
#define ISCOMPOSING "application/im-iscomposing+xml"

/* ---- Lua ---- */

/* clang-format off */

#define LUA_NOW                                                                                    \
	"local t = redis.call('TIME')\n"                                                           \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* expiry(m): expires_at_ms (field 7, varint) of a packed StoredMessage, 0 when absent
 * or malformed (then it counts as expired). The protobuf wire format is walked field
 * by field: a length-delimited field (a string, the body) is skipped whole, so body
 * bytes never read as a tag. Lua numbers are exact up to 2^53 ms. */
#define LUA_EXPIRY                                                                                 \
	"local function expiry(m)\n"                                                               \
	"  local i, n, last = 1, #m, 0\n"                                                          \
	"  local function varint()\n"                                                              \
	"    local v, mul = 0, 1\n"                                                                \
	"    while i <= n do\n"                                                                    \
	"      local b = string.byte(m, i)\n"                                                      \
	"      i = i + 1\n"                                                                        \
	"      v = v + (b % 128) * mul\n"                                                          \
	"      if b < 128 then return v end\n"                                                     \
	"      mul = mul * 128\n"                                                                  \
	"    end\n"                                                                                \
	"    return nil\n"                                                                         \
	"  end\n"                                                                                  \
	"  while i <= n do\n"                                                                      \
	"    local tag = varint()\n"                                                               \
	"    if not tag then return 0 end\n"                                                      \
	"    local wt, f = tag % 8, math.floor(tag / 8)\n"                                         \
	"    if wt == 0 then\n"                                                                    \
	"      local v = varint()\n"                                                               \
	"      if not v then return 0 end\n"                                                       \
	"      if f == 7 then last = v end\n"                                                      \
	"    elseif wt == 2 then\n"                                                                \
	"      local len = varint()\n"                                                             \
	"      if not len then return 0 end\n"                                                     \
	"      i = i + len\n"                                                                      \
	"    elseif wt == 1 then i = i + 8\n"                                                      \
	"    elseif wt == 5 then i = i + 4\n"                                                      \
	"    else return 0 end\n"                                                                  \
	"  end\n"                                                                                  \
	"  if i ~= n + 1 then return 0 end\n"                                                      \
	"  return last\n"                                                                          \
	"end\n"

/* purge(k): drops the expired messages of list k; returns how many went and how many
 * are left. */
#define LUA_PURGE                                                                                  \
	"local function purge(k)\n"                                                                \
	"  local all = redis.call('LRANGE', k, 0, -1)\n"                                           \
	"  local gone = 0\n"                                                                       \
	"  for _, m in ipairs(all) do\n"                                                           \
	"    if expiry(m) <= now then\n"                                                           \
	"      redis.call('LREM', k, 1, m)\n"                                                      \
	"      gone = gone + 1\n"                                                                  \
	"    end\n"                                                                                \
	"  end\n"                                                                                  \
	"  return gone, #all - gone\n"                                                             \
	"end\n"

/* KEYS: ims. ARGV: packed StoredMessage (without stored_ms and expires_at_ms), time
 * to keep it (ms), the most messages kept. Appends fields 6 and 7 (tags 48 and 56)
 * as varints (protobuf keeps the last value of a scalar field), pushes, and extends
 * the key's PEXPIRE to the newest expiry plus a minute: the expiry timer, not Redis,
 * must drop the last message, so that message-summary subscribers hear of it; the
 * PEXPIRE only cleans up after a lost timer. Returns {1, gone, count, expires_at_ms}, or
 * {0, gone, count} when the mailbox is full. */
static const char lua_store[] =
	LUA_NOW LUA_EXPIRY LUA_PURGE
	"local function varint(x)\n"
	"  local s = ''\n"
	"  while x >= 128 do\n"
	"    s = s .. string.char(x % 128 + 128)\n"
	"    x = math.floor(x / 128)\n"
	"  end\n"
	"  return s .. string.char(x)\n"
	"end\n"
	"local k, ttl, max, slack = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), 60000\n"
	"local gone, left = purge(k)\n"
	"if left >= max then return {0, gone, left} end\n"
	"local e = now + ttl\n"
	"redis.call('RPUSH', k, ARGV[1] .. '\\48' .. varint(now) .. '\\56' .. varint(e))\n"
	"if redis.call('PTTL', k) < ttl + slack then redis.call('PEXPIRE', k, ttl + slack) end\n"
	"return {1, gone, left + 1, e}\n";

/* KEYS: ims. The number of unexpired messages (read only). */
static const char lua_count[] = LUA_NOW LUA_EXPIRY
	"local n = 0\n"
	"for _, m in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do\n"
	"  if expiry(m) > now then n = n + 1 end\n"
	"end\n"
	"return n\n";

/* KEYS: ims. Drops the expired messages, returns how many went. */
static const char lua_expire[] = LUA_NOW LUA_EXPIRY LUA_PURGE
	"local gone = purge(KEYS[1])\n"
	"return gone\n";

/* KEYS: ims, imlock. ARGV: token, lock ms. Nothing kept: {0} (one LLEN, the common
 * case after a REGISTER). Else purges, takes the lock and returns {gone, oldest};
 * {gone} when nothing is left or another registrar is delivering. */
static const char lua_begin[] = LUA_NOW LUA_EXPIRY LUA_PURGE
	"if redis.call('LLEN', KEYS[1]) == 0 then return {0} end\n"
	"local gone, left = purge(KEYS[1])\n"
	"if left == 0 then return {gone} end\n"
	"if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
	"  return {gone}\n"
	"end\n"
	"return {gone, redis.call('LINDEX', KEYS[1], 0)}\n";

/* KEYS: ims, imlock. ARGV: token, the message delivered, lock ms. Removes exactly that
 * message (wherever it is now); if the lock is still ours, drops expired messages at
 * the head and returns {removed, gone, 1, next} with the lock extended, or {removed,
 * gone, 1} with the lock released when none is left; {removed, 0, 0} when the lock
 * is no longer ours (it expired: another registrar may be delivering). */
static const char lua_next[] = LUA_NOW LUA_EXPIRY
	"local removed = redis.call('LREM', KEYS[1], 1, ARGV[2])\n"
	"if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {removed, 0, 0} end\n"
	"local gone = 0\n"
	"local head = redis.call('LINDEX', KEYS[1], 0)\n"
	"while head and expiry(head) <= now do\n"
	"  redis.call('LPOP', KEYS[1])\n"
	"  gone = gone + 1\n"
	"  head = redis.call('LINDEX', KEYS[1], 0)\n"
	"end\n"
	"if not head then\n"
	"  redis.call('DEL', KEYS[2])\n"
	"  return {removed, gone, 1}\n"
	"end\n"
	"redis.call('PEXPIRE', KEYS[2], ARGV[3])\n"
	"return {removed, gone, 1, head}\n";

/* KEYS: imlock. ARGV: token. Deletes the lock only if it is still ours. */
static const char lua_unlock[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
	"return 0\n";

/* clang-format on */

/* ---- set-up ---- */

int pres_im_start(struct registrar *r)
{
	static const char *const names[PRES_IM_METRIC_MAX_] = {
	    "stored",  "refused_full", "refused_composing", "delivered", "undelivered",
	    "expired", "error"};
	static const char help[] = "Offline instant messages, by event";
	struct sk_redis *rc = sk_daemon_redis(r->d);
	/* lives as long as the process (the registrar struct is static): callbacks
	 * that finish after stop may still read it */
	struct pres_im *im = sk_zalloc(sizeof(*im), NULL);
	char name[128];

	if (!im)
		return SK_ENOMEM;
	r->im = im;
	im->redis = rc;
	if (sk_redis_script_add(rc, &im->store, lua_store) ||
	    sk_redis_script_add(rc, &im->count, lua_count) ||
	    sk_redis_script_add(rc, &im->expire, lua_expire) ||
	    sk_redis_script_add(rc, &im->begin, lua_begin) ||
	    sk_redis_script_add(rc, &im->next, lua_next) ||
	    sk_redis_script_add(rc, &im->unlock, lua_unlock) ||
	    sk_redis_script_add(rc, &im->lookup, REGDATA_LUA_LOOKUP))
		return SK_ENOMEM;
	snprintf(name, sizeof(name), "%s_im_messages_total", sk_daemon_metrics_prefix(r->d));
	for (int i = 0; i < PRES_IM_METRIC_MAX_; i++)
		if (!(im->m[i] = sk_metrics_counter(sk_daemon_metrics(r->d), name, help, "event",
						    names[i])))
			return SK_ENOMEM;
	return 0;
}

struct pres_im *pres_im_get(struct registrar *r)
{
	return r->im;
}

static int ims_key(char *buf, size_t size, const struct registrar *r, const char *aor)
{
	return sk_redis_key(buf, size, r->cluster, aor, "ims");
}

static void count(struct registrar *r, enum pres_im_metric m, uint64_t n)
{
	if (r->im && n)
		sk_counter_add(r->im->m[m], n);
}

static void on_ignored(int err, struct redisReply *reply, void *arg)
{
	(void)reply;
	if (err && err != SK_ECANCELED)
		SK_WARN("%s: %s", (const char *)arg, sk_strerror(err));
}

int pres_im_count(struct registrar *r, const char *aor, sk_redis_reply_cb *cb, void *arg)
{
	struct pres_im *im = pres_im_get(r);
	char k[KEY_MAX];
	const char *argv[] = {k};
	int err;

	if (!im)
		return SK_ENOMEM;
	if ((err = ims_key(k, sizeof(k), r, aor)))
		return err;
	return sk_redis_eval(im->count, cb, arg, 1, 1, argv, NULL);
}

/* ---- store: MESSAGE for a user with no binding ---- */

struct store_op {
	struct registrar *r;
	struct sk_bus_req *req;
	char aor[REGDATA_AOR_MAX], id[17], call_id[128];
};

static void store_destroy(void *data)
{
	struct store_op *o = data;

	sk_deref(o->req);
}

static void on_stored(int err, struct redisReply *reply, void *arg)
{
	static const char *const retry[] = {"Retry-After: 5", NULL};
	struct store_op *o = arg;
	struct registrar *r = o->r;

	if (!err && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
		     reply->element[0]->type != REDIS_REPLY_INTEGER ||
		     reply->element[1]->type != REDIS_REPLY_INTEGER ||
		     (reply->element[0]->integer == 1 &&
		      (reply->elements < 4 || reply->element[3]->type != REDIS_REPLY_INTEGER))))
		err = SK_EPROTO;
	if (err) {
		count(r, PRES_IM_ERROR, 1);
		if (err != SK_ECANCELED)
			SK_WARN("MESSAGE for %s (Call-ID %s) not stored: %s", o->aor, o->call_id,
				sk_strerror(err));
		pres_answer(o->req, 500, "Server Internal Error (message store unavailable)", retry,
			    NULL, NULL, 0);
		sk_deref(o);
		return;
	}
	if (reply->element[1]->integer > 0) {
		count(r, PRES_IM_EXPIRED, (uint64_t)reply->element[1]->integer);
		if (reply->element[0]->integer == 0)
			pres_changed(r, PRES_PKG_MWI, o->aor);
	}
	if (reply->element[0]->integer == 0) {
		/* RFC 3261 §21.4.24: the callee is busy; the mailbox is full until the
		 * user registers or messages expire. */
		count(r, PRES_IM_FULL, 1);
		SK_NOTICE("MESSAGE for %s (Call-ID %s): mailbox full (%lld kept)", o->aor,
			  o->call_id, reply->element[2]->integer);
		pres_answer(o->req, 486, "Busy Here (mailbox full)", NULL, NULL, NULL, 0);
	} else {
		char tk[KEY_MAX], member[KEY_MAX], score[24];
		const char *argv[] = {"ZADD", tk, score, member};

		count(r, PRES_IM_STORED, 1);
		SK_INFO("MESSAGE for %s (Call-ID %s) stored as %s (%lld kept)", o->aor, o->call_id,
			o->id, reply->element[2]->integer);
		pres_answer(o->req, 202, "Accepted", NULL, NULL, NULL, 0);
		/* Its expiry timer: another hash slot, so a command of its own. */
		snprintf(member, sizeof(member), "m|%s|%s", o->aor, o->id);
		snprintf(score, sizeof(score), "%lld", reply->element[3]->integer);
		if (sk_redis_key(tk, sizeof(tk), r->cluster, "pres", "timers") ||
		    sk_redis_cmd(sk_daemon_redis(r->d), on_ignored, (void *)"stored message timer",
				 4, argv, NULL))
			SK_WARN("stored message %s of %s: no expiry timer (it goes at the next "
				"store or delivery)",
				o->id, o->aor);
		pres_changed(r, PRES_PKG_MWI, o->aor);
	}
	sk_deref(o);
}

void pres_im_store(struct registrar *r, struct sk_bus_req *req,
		   const Skein__Sip__V1__UasRequest *rq)
{
	Skein__Sip__V1__StoredMessage m = SKEIN__SIP__V1__STORED_MESSAGE__INIT;
	struct pres_im *im;
	struct store_op *o;
	char aor[REGDATA_AOR_MAX], k[KEY_MAX], ttl[24], max[24], *to = NULL;
	const char *why, *argv[4];
	size_t lens[4];
	uint8_t *packed = NULL;
	int err;

	/* RFC 3994 §3: an is-composing indication is about a session in progress; for
	 * a user with no binding it means nothing later, so it is not kept. */
	if (!strcmp(rq->content_type, ISCOMPOSING)) {
		count(r, PRES_IM_COMPOSING, pres_im_get(r) ? 1 : 0);
		pres_answer(req, 480, "Temporarily Unavailable", NULL, NULL, NULL, 0);
		return;
	}
	if (regdata_aor_norm(aor, sizeof(aor), rq->resource, &why) ||
	    ims_key(k, sizeof(k), r, aor)) {
		pres_answer(req, 404, "Not Found", NULL, NULL, NULL, 0);
		return;
	}
	if (!(im = pres_im_get(r)) || !(o = sk_zalloc(sizeof(*o), store_destroy))) {
		pres_answer(req, 500, "Server Internal Error", NULL, NULL, NULL, 0);
		return;
	}
	o->r = r;
	o->req = sk_ref(req);
	snprintf(o->aor, sizeof(o->aor), "%s", aor);
	snprintf(o->call_id, sizeof(o->call_id), "%s", rq->call_id);
	pres_random_hex(o->id, 8);
	to = rq->resource_uri[0] ? sk_strdupf("<%s>", rq->resource_uri)
				 : sk_strdupf("<sip:%s>", aor);
	m.id = o->id;
	m.from = rq->from;
	m.to = to;
	/* As received: parameters (charset) kept, CPIM (RFC 3862) passed untouched. */
	m.content_type = rq->content_type_full[0] ? rq->content_type_full : rq->content_type;
	m.body = rq->body;
	m.call_id = rq->call_id;
	m.date = rq->date;
	m.n_headers = rq->n_headers;
	m.headers = rq->headers;
	lens[1] = skein__sip__v1__stored_message__get_packed_size(&m);
	if (!to || !(packed = malloc(lens[1] ? lens[1] : 1))) {
		err = SK_ENOMEM;
		goto fail;
	}
	skein__sip__v1__stored_message__pack(&m, packed);
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)r->conf->im_expires);
	snprintf(max, sizeof(max), "%lld", (long long)r->conf->im_max_messages);
	argv[0] = k;
	argv[1] = (const char *)packed;
	argv[2] = ttl;
	argv[3] = max;
	lens[0] = strlen(k);
	lens[2] = strlen(ttl);
	lens[3] = strlen(max);
	err = sk_redis_eval(im->store, on_stored, o, 1, 4, argv, lens);
	free(packed);
	sk_deref(to);
	if (err) /* the callback will not fire */
		on_stored(err, NULL, o);
	return;
fail:
	free(packed);
	sk_deref(to);
	count(r, PRES_IM_ERROR, 1);
	pres_answer(req, 500, "Server Internal Error", NULL, NULL, NULL, 0);
	sk_deref(o);
}

/* ---- expiry ---- */

struct expire_op {
	struct registrar *r;
	char aor[REGDATA_AOR_MAX];
};

static void on_expired(int err, struct redisReply *reply, void *arg)
{
	struct expire_op *o = arg;

	if (!err && reply->type != REDIS_REPLY_INTEGER)
		err = SK_EPROTO;
	if (err) {
		if (err != SK_ECANCELED)
			SK_WARN("expiry of stored messages of %s: %s", o->aor, sk_strerror(err));
	} else if (reply->integer > 0) {
		SK_INFO("%lld stored message(s) of %s expired", reply->integer, o->aor);
		count(o->r, PRES_IM_EXPIRED, (uint64_t)reply->integer);
		pres_changed(o->r, PRES_PKG_MWI, o->aor);
	}
	sk_deref(o);
}

void pres_im_expire(struct registrar *r, const char *aor)
{
	struct pres_im *im = pres_im_get(r);
	struct expire_op *o;
	char k[KEY_MAX];
	const char *argv[] = {k};

	if (!im || !aor || ims_key(k, sizeof(k), r, aor) || !(o = sk_zalloc(sizeof(*o), NULL)))
		return;
	o->r = r;
	snprintf(o->aor, sizeof(o->aor), "%s", aor);
	if (sk_redis_eval(im->expire, on_expired, o, 1, 1, argv, NULL)) {
		/* Redis is down: the next store or delivery purges them. */
		SK_DEBUG("expiry of stored messages of %s deferred (redis down)", aor);
		sk_deref(o);
	}
}
