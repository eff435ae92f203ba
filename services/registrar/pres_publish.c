/* PUBLISH (RFC 3903) for the presence event package: the event state compositor's
 * side. Each publication is one entry of <c>:{<aor>}:pubs (etag -> packed
 * Publication); the check of SIP-If-Match and the replacement under a new
 * entity-tag happen in one Lua script, so two registrars handling two PUBLISHes of
 * one device at once cannot both win. The expiry is a member of the cluster-wide
 * timer set (another hash slot, so a second command after the script). */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>
#include "skein/sk_bus.h"
#include "skein/sk_daemon.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"
#include "skein/sk_redis.h"
#include "pidf.h"
#include "reg.h"
#include "pres.h"
#include "pres_pub_int.h"

SK_LOG_MODULE("publish");

static const char *const lua_src[PRES_SCRIPT_MAX_] = {
    [PRES_SCRIPT_PUBLISH] = PRES_LUA_PUBLISH,
    [PRES_SCRIPT_EXPIRE] = PRES_LUA_EXPIRE,
    [PRES_SCRIPT_PRES_FETCH] = PRES_LUA_PRES_FETCH,
};

/* Registered with the client at start (sk_redis reloads them on every connect). */
int pres_publish_start(struct registrar *r)
{
	struct sk_redis *redis = sk_daemon_redis(r->d);

	for (int i = 0; i < PRES_SCRIPT_MAX_; i++)
		if (sk_redis_script_add(redis, &r->pub_script[i], lua_src[i]))
			return SK_ENOMEM;
	return 0;
}

struct sk_redis_script *pres_script(struct registrar *r, enum pres_script which)
{
	return which < PRES_SCRIPT_MAX_ ? r->pub_script[which] : NULL;
}

int pres_etag_new(char *buf)
{
	pres_random_hex(buf, (PRES_ETAG_SIZE - 1) / 2);
	return 0;
}

/* Only tags of our own form can exist: anything else is 412 without asking Redis,
 * and never reaches a timer member ("p|aor|etag"). */
static bool etag_ok(const char *s)
{
	size_t n = strlen(s);

	if (n != PRES_ETAG_SIZE - 1)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* ---- metrics ---- */

enum { M_INITIAL, M_REFRESH, M_MODIFY, M_REMOVE, M_REJECTED, M_ERROR, M_MAX_ };

static void count(struct registrar *r, unsigned which)
{
	static const char *const names[M_MAX_] = {"initial", "refresh",	 "modify",
						  "remove",  "rejected", "error"};
	static struct sk_metrics *owner;
	static struct sk_counter *c[M_MAX_];
	struct sk_metrics *m = sk_daemon_metrics(r->d);

	if (owner != m) {
		char name[128];

		snprintf(name, sizeof(name), "%s_publish_requests_total",
			 sk_daemon_metrics_prefix(r->d));
		for (unsigned i = 0; i < M_MAX_; i++)
			c[i] = sk_metrics_counter(m, name, "PUBLISH requests by outcome", "result",
						  names[i]);
		owner = m;
	}
	sk_counter_inc(c[which]);
}

/* ---- answers ---- */

static void answer(struct sk_bus_req *req, unsigned code, const char *reason, const char *h1,
		   const char *h2)
{
	const char *hdr[3] = {h1, h2, NULL};

	if (!h1)
		hdr[0] = h2, hdr[1] = NULL;
	pres_answer(req, code, reason, hdr[0] ? hdr : NULL, NULL, NULL, 0);
}

static void answer_ok(struct sk_bus_req *req, const char *etag, int64_t expires)
{
	char h1[64], h2[64];

	snprintf(h1, sizeof(h1), "SIP-ETag: %s", etag);
	snprintf(h2, sizeof(h2), "Expires: %lld", (long long)expires);
	answer(req, 200, NULL, h1, h2);
}

/* ---- PUBLISH ---- */

enum pub_kind { PUB_INITIAL, PUB_REFRESH, PUB_MODIFY, PUB_REMOVE };
static const char *const kind_mode[] = {"new", "refresh", "modify", "remove"};

struct pub_op {
	struct registrar *r;
	struct sk_bus_req *req;
	enum pub_kind kind;
	int64_t expires;
	char aor[REGDATA_AOR_MAX];
	char old[PRES_ETAG_SIZE], etag[PRES_ETAG_SIZE];
	char call_id[128];
};

static void pub_op_destroy(void *data)
{
	struct pub_op *o = data;

	sk_deref(o->req);
}

static void on_timer_cmd(int err, struct redisReply *reply, void *arg)
{
	(void)reply;
	(void)arg;
	if (err && err != SK_ECANCELED)
		SK_WARN("publication timer: redis: %s", sk_strerror(err));
}

/* The expiry timer follows the entity-tag: the new one armed, the old one dropped
 * (a stale one would find nothing anyway, this keeps the set small). */
static void timers(struct pub_op *o, uint64_t at_ms)
{
	struct sk_redis *redis = sk_daemon_redis(o->r->d);
	char key[REGDATA_AOR_MAX + 160], member[REGDATA_AOR_MAX + 2 * PRES_ETAG_SIZE], score[32];

	if (sk_redis_key(key, sizeof(key), o->r->cluster, "pres", "timers"))
		return;
	if (at_ms) {
		snprintf(member, sizeof(member), "p|%s|%s", o->aor, o->etag);
		snprintf(score, sizeof(score), "%llu", (unsigned long long)at_ms);
		const char *av[] = {"ZADD", key, score, member};
		(void)sk_redis_cmd(redis, on_timer_cmd, NULL, 4, av, NULL);
	}
	if (o->old[0]) {
		snprintf(member, sizeof(member), "p|%s|%s", o->aor, o->old);
		const char *av[] = {"ZREM", key, member};
		(void)sk_redis_cmd(redis, on_timer_cmd, NULL, 3, av, NULL);
	}
}

static void on_publish(int err, struct redisReply *reply, void *arg)
{
	struct pub_op *o = arg;
	struct registrar *r = o->r;

	sk_log_ctx_set("call-id", o->call_id);
	if (!err && (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
		     reply->element[0]->type != REDIS_REPLY_INTEGER ||
		     reply->element[1]->type != REDIS_REPLY_INTEGER))
		err = SK_EPROTO;
	if (err) {
		if (err != SK_ECANCELED)
			SK_WARN("PUBLISH %s: redis: %s", o->aor, sk_strerror(err));
		count(r, M_ERROR);
		answer(o->req, 500, "Presence storage unavailable", "Retry-After: 5", NULL);
	} else if (!reply->element[0]->integer) {
		/* RFC 3903 §6 step 2: no such (live) entity-tag. The client starts over
		 * with an initial PUBLISH. */
		SK_INFO("PUBLISH %s: SIP-If-Match %s unknown or expired", o->aor, o->old);
		count(r, M_REJECTED);
		answer(o->req, 412, "Conditional Request Failed", NULL, NULL);
	} else {
		uint64_t at = (uint64_t)reply->element[1]->integer;

		answer_ok(o->req, o->etag, o->kind == PUB_REMOVE ? 0 : o->expires);
		timers(o, o->kind == PUB_REMOVE ? 0 : at);
		count(r, o->kind == PUB_INITIAL	  ? M_INITIAL
			 : o->kind == PUB_REFRESH ? M_REFRESH
			 : o->kind == PUB_MODIFY  ? M_MODIFY
						  : M_REMOVE);
		SK_DEBUG("PUBLISH %s: %s %s -> %s, %llds", o->aor, kind_mode[o->kind], o->old,
			 o->etag, (long long)o->expires);
		/* A refresh changes nothing a watcher sees (RFC 3903 §4.1): no NOTIFY. */
		if (o->kind != PUB_REFRESH) {
			pres_changed(r, PRES_PKG_PRESENCE, o->aor);
			pres_rls_member_changed(r, o->aor);
		}
	}
	sk_log_ctx_set(NULL, NULL);
	sk_deref(o);
}

/* The record as stored, less what the script adds (expires_at_ms, published_ms, both
 * from Redis' clock). NULL on ENOMEM; *len set. */
static uint8_t *pack(const Skein__Sip__V1__UasRequest *rq, const char *etag, size_t *len)
{
	Skein__Sip__V1__Publication p = SKEIN__SIP__V1__PUBLICATION__INIT;
	uint8_t *buf;

	p.etag = (char *)etag;
	p.event = (char *)"presence";
	p.content_type = (char *)PIDF_MIME;
	p.body = rq->body;
	p.user_agent = rq->user_agent ? rq->user_agent : (char *)"";
	*len = skein__sip__v1__publication__get_packed_size(&p);
	buf = sk_zalloc(*len + 1, NULL);
	if (buf)
		skein__sip__v1__publication__pack(&p, buf);
	return buf;
}

void pres_publish(struct registrar *r, struct sk_bus_req *req, const Skein__Sip__V1__UasRequest *rq)
{
	const struct registrar_conf *c = r->conf;
	bool body = rq->body.len > 0;
	struct sk_redis_script *script;
	char key[REGDATA_AOR_MAX + 160], h[64], exps[24];
	const char *why = NULL;
	uint8_t *rec = NULL;
	size_t rec_len = 0;
	struct pub_op *o;
	int64_t expires;
	int err;

	/* RFC 3903 §6 step 1 (RFC 6665 §8.2.2 for the answer). */
	if (strcmp(rq->event, "presence")) {
		count(r, M_REJECTED);
		answer(req, 489, "Bad Event", "Allow-Events: presence", NULL);
		return;
	}
	if (!rq->resource[0] || strlen(rq->resource) >= REGDATA_AOR_MAX) {
		count(r, M_REJECTED);
		answer(req, 404, NULL, NULL, NULL);
		return;
	}
	/* Only the presentity sets its presence (RFC 3903 §6 step 1 leaves the
	 * authorization to policy; RFC 3856 §6.6: the presentity's own devices). An
	 * authenticated user publishes for itself only, even from a trusted network;
	 * an unauthenticated request from a trusted network (a gateway) for anyone. */
	if (rq->user[0] ? strcmp(rq->user, rq->resource) != 0 : !rq->trusted) {
		SK_NOTICE("PUBLISH %s by \"%s\": not the presentity", rq->resource, rq->user);
		count(r, M_REJECTED);
		answer(req, 403, NULL, NULL, NULL);
		return;
	}
	if (body) {
		if (strcmp(rq->content_type, PIDF_MIME)) {
			count(r, M_REJECTED);
			answer(req, 415, NULL, "Accept: " PIDF_MIME, NULL);
			return;
		}
		if ((int64_t)rq->body.len > c->pub_max_size) {
			count(r, M_REJECTED);
			answer(req, 413, NULL, NULL, NULL);
			return;
		}
		if (pidf_check((const char *)rq->body.data, rq->body.len, &why)) {
			char reason[160];

			snprintf(reason, sizeof(reason), "Bad Request (%s)",
				 why ? why : "not PIDF");
			SK_INFO("PUBLISH %s: %s", rq->resource, reason);
			count(r, M_REJECTED);
			answer(req, 400, reason, NULL, NULL);
			return;
		}
	}
	if (pres_pub_expires(rq->expires, c->pub_default_expires, c->pub_min_expires,
			     c->pub_max_expires, &expires)) {
		snprintf(h, sizeof(h), "Min-Expires: %lld", (long long)expires);
		count(r, M_REJECTED);
		answer(req, 423, NULL, h, NULL);
		return;
	}
	o = sk_zalloc(sizeof(*o), pub_op_destroy);
	if (!o) {
		count(r, M_ERROR);
		answer(req, 500, NULL, NULL, NULL);
		return;
	}
	o->r = r;
	o->req = sk_ref(req);
	o->expires = expires;
	snprintf(o->aor, sizeof(o->aor), "%s", rq->resource);
	snprintf(o->call_id, sizeof(o->call_id), "%s", rq->call_id);
	if (pres_etag_new(o->etag)) {
		count(r, M_ERROR);
		answer(req, 500, NULL, NULL, NULL);
		goto out;
	}
	if (!rq->sip_if_match[0]) {
		/* RFC 3903 §6 step 3: an initial PUBLISH carries the state. One without a
		 * body is a refresh that lost its entity-tag: its precondition fails, 412,
		 * so the client starts over with an initial PUBLISH (§6 step 5 leaves the
		 * code open, "such as 400"; 412 is what clients react to by republishing,
		 * §4.1.1, as OpenSIPS answers too). */
		if (!body) {
			count(r, M_REJECTED);
			answer(req, 412, "Conditional Request Failed (refresh without SIP-If-Match)",
			       NULL, NULL);
			goto out;
		}
		if (!expires) {
			/* Created and removed at once: nothing to store or tell. */
			answer_ok(req, o->etag, 0);
			count(r, M_REMOVE);
			goto out;
		}
		o->kind = PUB_INITIAL;
	} else {
		if (!etag_ok(rq->sip_if_match)) {
			SK_INFO("PUBLISH %s: SIP-If-Match %s is not ours", o->aor,
				rq->sip_if_match);
			count(r, M_REJECTED);
			answer(req, 412, "Conditional Request Failed", NULL, NULL);
			goto out;
		}
		snprintf(o->old, sizeof(o->old), "%s", rq->sip_if_match);
		o->kind = !expires ? PUB_REMOVE : body ? PUB_MODIFY : PUB_REFRESH;
	}
	if (o->kind == PUB_INITIAL || o->kind == PUB_MODIFY) {
		rec = pack(rq, o->etag, &rec_len);
		if (!rec) {
			count(r, M_ERROR);
			answer(req, 500, NULL, NULL, NULL);
			goto out;
		}
	}
	script = pres_script(r, PRES_SCRIPT_PUBLISH);
	err = sk_redis_key(key, sizeof(key), r->cluster, o->aor, "pubs");
	if (err || !script) {
		/* A '{' or '}' in the AOR (it would leave its hash slot). */
		count(r, M_REJECTED);
		answer(req, err == SK_EINVAL ? 404 : 500, NULL, NULL, NULL);
		goto out;
	}
	snprintf(exps, sizeof(exps), "%lld", (long long)expires);
	{
		const char *av[] = {key,  kind_mode[o->kind],	       o->old, o->etag,
				    exps, rec ? (const char *)rec : ""};
		const size_t lens[] = {strlen(key),    strlen(kind_mode[o->kind]),
				       strlen(o->old), strlen(o->etag),
				       strlen(exps),   rec_len};

		err = sk_redis_eval(script, on_publish, sk_ref(o), 1, 6, av, lens);
	}
	if (err) /* Redis down: the callback will not fire; its reference is ours */
		on_publish(err, NULL, o);
out:
	sk_deref(rec);
	sk_deref(o);
}

/* ---- expiry ---- */

struct exp_op {
	struct registrar *r;
	char aor[REGDATA_AOR_MAX];
};

static void on_expire(int err, struct redisReply *reply, void *arg)
{
	struct exp_op *o = arg;

	if (err) {
		if (err != SK_ECANCELED)
			SK_WARN("publication expiry of %s: redis: %s", o->aor, sk_strerror(err));
	} else if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
		SK_DEBUG("%s: %lld publication(s) expired", o->aor, (long long)reply->integer);
		pres_changed(o->r, PRES_PKG_PRESENCE, o->aor);
		pres_rls_member_changed(o->r, o->aor);
	}
	sk_deref(o);
}

void pres_publish_expire(struct registrar *r, const char *aor, const char *etag)
{
	struct sk_redis_script *script = pres_script(r, PRES_SCRIPT_EXPIRE);
	char key[REGDATA_AOR_MAX + 160];
	struct exp_op *o;

	if (!script || !aor || !etag || sk_redis_key(key, sizeof(key), r->cluster, aor, "pubs"))
		return;
	o = sk_zalloc(sizeof(*o), NULL);
	if (!o)
		return;
	o->r = r;
	snprintf(o->aor, sizeof(o->aor), "%s", aor);
	{
		const char *av[] = {key, etag};

		if (sk_redis_eval(script, on_expire, o, 1, 2, av, NULL)) {
			/* Redis down: the timer was popped; the key's TTL and the next
			 * PUBLISH or expiry of this presentity sweep it. */
			SK_WARN("publication expiry of %s: redis unavailable", aor);
			sk_deref(o);
		}
	}
}
