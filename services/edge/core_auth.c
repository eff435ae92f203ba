/* core_auth: digest authentication of REGISTER (401, RFC 3261 §22.2) and of requests
 * from local subscribers (407, §22.3) against the HA1s in Redis, with the stateless
 * nonces of digest.h, so that the authenticated retry may land on any edge. Unknown
 * users get exactly the same challenge as a wrong password.
 *
 * The nonce-count (RFC 7616 §3.4) is checked once the response is right, by the edge
 * that issued the nonce (nctab.h: no Redis key per request, issue 6): here when it is
 * ours, else with the issuer over the bus (NonceUse); a nonce its issuer no longer
 * knows (restarted, gone, too many newer nonces) is answered with a fresh challenge,
 * stale=true.
 *
 * The HA1: other methods read it (one HGET, in the same round trip as the routing
 * lookup, core_proxy.c); REGISTER (issue 6) is checked with the HA1 cache (core_ha1.c;
 * one HGET on a miss) and the registration script, with the binding write, checks
 * that the HA1 is still the stored one (RegisterRequest.auth). */
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "skein/sk_hash.h"
#include "skein/sk_buf.h"
#include "skein/sk_bus.h"
#include "skein/sk_daemon.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_node.h"
#include "skein/sk_redis.h"
#include "skein/sk_sys.h"
#include "core.h"
#include "nctab.h"
#include "regdata.h"
#include "sipmsg.h"

SK_LOG_MODULE("auth");

/* "sha256,md5": the algorithms to offer, in the order of the challenges. RFC 8760
 * §2.4 puts SHA-256 first; clients that read only the first challenge and know only
 * MD5 (sipp 3.6, old phones) need "md5,sha256" or "md5". */
int edge_auth_algs_parse(const char *s, unsigned *algs)
{
	return edge_auth_algs_order(s, algs, NULL, NULL);
}

int edge_auth_algs_order(const char *s, unsigned *algs, enum edge_digest_alg *order,
			 size_t *n)
{
	char buf[64], *save = NULL;
	size_t k = 0;

	*algs = 0;
	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf))
		return SK_EINVAL;
	for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		enum edge_digest_alg a;

		if (!strcasecmp(t, "sha256") || !strcasecmp(t, "sha-256"))
			a = EDGE_DIGEST_SHA256;
		else if (!strcasecmp(t, "md5"))
			a = EDGE_DIGEST_MD5;
		else
			return SK_EINVAL;
		if (*algs & (1u << a))
			return SK_EINVAL;
		*algs |= 1u << a;
		if (order)
			order[k] = a;
		k++;
	}
	if (n)
		*n = k;
	return *algs ? 0 : SK_EINVAL;
}

struct edge_auth {
	struct edge *e;
	struct edge_stx *stx;
	bool proxy;
	edge_auth_cb *cb;      /* edge_auth */
	edge_auth_reg_cb *rcb; /* edge_auth_register */
	void *arg;
	bool fetched, retried;
	struct edge_digest_nonce_id nid; /* what the nonce names (digest.h) */
	/* Buffers (~3 KB, one object per challenged or authenticated request): not
	 * zeroed, each string emptied in auth_start. */
	char realm[EDGE_DIGEST_REALM_MAX + 1];
	char aor[REGDATA_AOR_MAX];
	struct edge_digest_creds c;
	/* the cred hash; REGISTER only: the key RegisterAuth names for the nonce-count
	 * (never written: the count is the issuing edge's, RegisterAuth.nc 0) */
	char key[2][512];
	/* REGISTER: the HA1 verified with, from the cache or read for this request */
	char ha1[EDGE_DIGEST_HEX_SIZE];
};

static void auth_destroy(void *p)
{
	struct edge_auth *a = p;

	sk_deref(a->stx);
}

static const char *ha1_field(enum edge_digest_alg alg)
{
	return alg == EDGE_DIGEST_SHA256 ? "ha1_sha256" : "ha1_md5";
}

static void challenge(struct edge *e, struct edge_stx *stx, bool proxy, const char *realm,
		      bool stale)
{
	char nonce[EDGE_DIGEST_NONCE_SIZE];
	struct edge_digest_nonce_id id = {e->nc_issuer, edge_nctab_epoch(e->nctab),
					  edge_nctab_issue(e->nctab)};
	struct sk_buf b;

	sk_buf_init(&b);
	int err = edge_digest_nonce_new(e->secret, e->secret_len, realm,
					sk_sys_unix_ms() / 1000, &id, nonce, sizeof(nonce));

	/* One challenge per algorithm, in the configured order (RFC 8760 §2.4). */
	for (size_t i = 0; !err && i < e->nalg; i++)
		err = edge_digest_challenge(&b, proxy, 1u << e->alg_order[i], realm, nonce, NULL,
					    stale);
	if (err) {
		edge_reply(e, stx, 500, "Server Internal Error (nonce)", NULL);
	} else {
		edge_reply(e, stx, proxy ? 407 : 401, NULL, b.data);
	}
	sk_buf_release(&b);
}

/* One stable line per failure, for operators and fail2ban (docs/edge.md). */
static void log_failure(struct edge *e, struct edge_stx *stx, const char *user,
			const char *realm, const struct edge_digest_result *r)
{
	char ip[64], tmp[REGDATA_AOR_MAX + 2], aor[REGDATA_AOR_MAX + 2];
	char esc[4 * EDGE_DIGEST_USER_SIZE + 1];
	const char *why;

	sk_counter_inc(e->m.auth_fail);
	edge_addr_ip(&edge_stx_rx(stx)->src, ip, sizeof(ip));
	SK_NOTICE("auth-failure src=%s user=\"%s\" realm=\"%s\" reason=%s", ip,
		  sk_log_escape(user, esc, sizeof(esc)), realm, edge_digest_status_name(r->status));
	snprintf(tmp, sizeof(tmp), "%s@%s", user, realm);
	edge_guard_auth_failed(e, &edge_stx_rx(stx)->src,
			       regdata_aor_norm(aor, sizeof(aor), tmp, &why) ? NULL : aor);
}

static bool uri_names_us(struct edge *e, const char *uri)
{
	char buf[EDGE_DIGEST_URI_SIZE];
	url_t u[1];

	edge_join(buf, sizeof(buf), uri, NULL, NULL);
	return url_d(u, buf) >= 0 && (u->url_type == url_sip || u->url_type == url_sips) &&
	       (edge_uri_is_us(e, u) || (!u->url_user && edge_domain_local(e, u->url_host)));
}

/* cb or rcb, once; the caller releases its reference to a afterwards. */
static void finish(struct edge_auth *a, bool ok)
{
	if (a->rcb)
		a->rcb(a->e, a->stx, ok ? a : NULL, ok ? a->c.username : NULL, a->arg);
	else
		a->cb(a->e, a->stx, ok, ok ? a->c.username : NULL, a->arg);
}

static void unavailable(struct edge_auth *a, int err, const char *what)
{
	SK_WARN("credentials lookup for %s failed: %s", a->aor, err ? sk_strerror(err) : what);
	edge_reply(a->e, a->stx, 500, "Server Internal Error (credentials unavailable)",
		   "Retry-After: 5\r\n");
	finish(a, false);
}

/* The response against ha1 (RFC 7616 §3.4.1), with the digest-uri leniency. */
static void verify(struct edge_auth *a, const char *ha1, struct edge_digest_result *res)
{
	sip_t *sip = sip_object(edge_stx_msg(a->stx));

	if (!ha1) {
		edge_digest_result_set(res, EDGE_DIGEST_UNKNOWN_USER, "no such user");
	} else if (edge_digest_verify(&a->c, sip->sip_request->rq_method_name,
				      sip->sip_request->rq_url, ha1, a->c.alg, res)) {
		edge_digest_result_set(res, EDGE_DIGEST_MALFORMED, "cannot verify");
	} else if (res->status == EDGE_DIGEST_URI_MISMATCH && uri_names_us(a->e, a->c.uri)) {
		/* sipp and some phones put the address they sent to in digest-uri rather
		 * than the Request-URI; naming this edge or a served domain is as good
		 * (the response still covers it). */
		if (edge_digest_verify(&a->c, sip->sip_request->rq_method_name, NULL, ha1,
				       a->c.alg, res))
			edge_digest_result_set(res, EDGE_DIGEST_MALFORMED, "cannot verify");
	}
}

/* A failed authentication: logged (fail2ban, guard), then 400 for a digest-uri that
 * is not ours, else a fresh challenge — unknown user, wrong password and replay all
 * get the same one. */
static void refuse(struct edge_auth *a, const struct edge_digest_result *res)
{
	log_failure(a->e, a->stx, a->c.username, a->realm, res);
	if (res->status == EDGE_DIGEST_URI_MISMATCH)
		edge_reply(a->e, a->stx, 400, "Bad Request (digest uri does not match)", NULL);
	else
		challenge(a->e, a->stx, a->proxy, a->realm, false);
}

/* ---- the nonce-count, with the nonce's issuer ---- */

/* The answer for the count: cb/rcb run, a's reference is dropped. */
static void nc_done(struct edge_auth *a, enum edge_nc v)
{
	struct edge_digest_result res;

	switch (v) {
	case EDGE_NC_FRESH:
		/* REGISTER counts its success when the script has agreed */
		if (!a->rcb)
			sk_counter_inc(a->e->m.auth_ok);
		finish(a, true);
		break;
	case EDGE_NC_REPLAY:
		sk_counter_inc(a->e->m.nc_refused[EDGE_NC_REPLAY]);
		edge_digest_result_set(&res, EDGE_DIGEST_REPLAY, "nonce-count %s replayed",
				       a->c.nc_text);
		refuse(a, &res);
		finish(a, false);
		break;
	default:
		/* RFC 7616 §3.3: stale=true, the client retries with the same password */
		sk_counter_inc(a->e->m.nc_refused[EDGE_NC_FORGOTTEN]);
		challenge(a->e, a->stx, a->proxy, a->realm, true);
		finish(a, false);
		break;
	}
	sk_deref(a);
}

static void on_nc_reply(int err, const Skein__Bus__V1__Envelope *env, void *arg)
{
	struct edge_auth *a = arg;
	enum edge_nc v = EDGE_NC_FORGOTTEN;

	if (!err && env->body_case == SKEIN__BUS__V1__ENVELOPE__BODY_NONCE_USE_REPLY) {
		switch (env->nonce_use_reply->verdict) {
		case SKEIN__SIP__V1__NONCE_USE_REPLY__VERDICT__VERDICT_FRESH: v = EDGE_NC_FRESH; break;
		case SKEIN__SIP__V1__NONCE_USE_REPLY__VERDICT__VERDICT_REPLAY: v = EDGE_NC_REPLAY; break;
		default: break;
		}
	} else {
		SK_DEBUG("nonce-count of %s: the issuing edge did not answer (%s): stale", a->aor,
			 err ? sk_strerror(err) : "wrong body");
	}
	nc_done(a, v);
}

/* The member id of the edge whose hash the nonce carries, or NULL. */
static const char *issuer_member(struct edge *e, uint32_t issuer)
{
	struct sk_node *n = sk_daemon_node(e->d);

	for (size_t i = 0; n && i < sk_node_size(n); i++) {
		const struct sk_node_info *m = sk_node_at(n, i);

		if (!strcmp(m->role, "edge") && edge_nc_issuer(m->id) == issuer)
			return m->id;
	}
	return NULL;
}

/* Takes a's reference: nc_done() answers, now or when the issuer has. */
static void nc_check(struct edge_auth *a)
{
	struct edge *e = a->e;
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Sip__V1__NonceUse use = SKEIN__SIP__V1__NONCE_USE__INIT;
	const char *member;

	if (a->nid.issuer == e->nc_issuer) {
		sk_counter_inc(e->m.nc_checks[0]);
		nc_done(a, edge_nctab_use(e->nctab, a->nid.epoch, a->nid.index, a->c.nc));
		return;
	}
	sk_counter_inc(e->m.nc_checks[1]);
	member = issuer_member(e, a->nid.issuer);
	if (!member) {
		nc_done(a, EDGE_NC_FORGOTTEN);
		return;
	}
	use.issuer = a->nid.issuer;
	use.epoch = a->nid.epoch;
	use.index = a->nid.index;
	use.nc = a->c.nc;
	env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_NONCE_USE;
	env.nonce_use = &use;
	/* When the issuer has just gone, the bus may hand this to another edge: that
	 * one answers FORGOTTEN (the issuer hash is not its own). */
	if (sk_bus_request_at(e->bus, "edge", member, &env, 0, 0, on_nc_reply, a))
		nc_done(a, EDGE_NC_FORGOTTEN);
}

/* Another edge asks about a nonce of ours. */
static void on_nonce_use(struct sk_bus_req *req, const Skein__Bus__V1__Envelope *env,
			 void *arg)
{
	struct edge *e = arg;
	const Skein__Sip__V1__NonceUse *u = env->nonce_use;
	Skein__Bus__V1__Envelope out = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Sip__V1__NonceUseReply rep = SKEIN__SIP__V1__NONCE_USE_REPLY__INIT;
	enum edge_nc v = EDGE_NC_FORGOTTEN;

	if (!u) {
		sk_bus_reply(req, SK_EBADMSG, NULL);
		return;
	}
	if (u->issuer == e->nc_issuer)
		v = edge_nctab_use(e->nctab, u->epoch, u->index, u->nc);
	rep.verdict = v == EDGE_NC_FRESH    ? SKEIN__SIP__V1__NONCE_USE_REPLY__VERDICT__VERDICT_FRESH
		      : v == EDGE_NC_REPLAY ? SKEIN__SIP__V1__NONCE_USE_REPLY__VERDICT__VERDICT_REPLAY
					    : SKEIN__SIP__V1__NONCE_USE_REPLY__VERDICT__VERDICT_FORGOTTEN;
	out.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_NONCE_USE_REPLY;
	out.nonce_use_reply = &rep;
	sk_bus_reply(req, 0, &out);
}

uint32_t edge_nc_issuer(const char *member)
{
	return sk_fnv32_str(SK_FNV32_BASIS, member);
}

/* Other methods: the response checked against the HA1 just read; takes a's
 * reference. */
static void decide(struct edge_auth *a, const char *ha1)
{
	struct edge_digest_result res;

	/* Authoritative: what the next REGISTER of this user verifies with. */
	edge_ha1_put(a->e->ha1, a->aor, a->c.alg, ha1);
	verify(a, ha1, &res);
	if (res.status == EDGE_DIGEST_OK) {
		nc_check(a);
		return;
	}
	refuse(a, &res);
	finish(a, false);
	sk_deref(a);
}

static void on_hget(int err, struct redisReply *r, void *arg)
{
	struct edge_auth *a = arg;

	if (err || !r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL) ||
	    (r->type == REDIS_REPLY_STRING && r->len >= sizeof(a->ha1))) {
		unavailable(a, err ? err : SK_EPROTO, "bad reply");
		sk_deref(a);
		return;
	}
	if (r->type == REDIS_REPLY_STRING && r->len) {
		memcpy(a->ha1, r->str, r->len);
		a->ha1[r->len] = '\0';
		decide(a, a->ha1);
	} else {
		decide(a, NULL);
	}
}

/* The checks that need no Redis (credentials present and well-formed, qop=auth, our
 * nonce and not stale) and the keys; NULL when the request was answered (cb ran). */
static struct edge_auth *auth_start(struct edge *e, struct edge_stx *stx, bool proxy,
				    const char *realm, edge_auth_cb *cb, edge_auth_reg_cb *rcb,
				    void *arg)
{
	sip_t *sip = sip_object(edge_stx_msg(stx));
	struct edge_digest_result res;
	struct edge_auth *a;
	const char *why;
	char aor[REGDATA_AOR_MAX + 2];

	a = sk_alloc(sizeof(*a), auth_destroy);
	if (a) {
		memset(a, 0, offsetof(struct edge_auth, realm));
		/* a->c: edge_digest_creds_get() below resets it */
		a->realm[0] = a->aor[0] = a->key[0][0] = a->key[1][0] = a->ha1[0] = '\0';
	}
	if (!a) {
		edge_reply(e, stx, 500, "Server Internal Error", NULL);
		if (rcb)
			rcb(e, stx, NULL, NULL, arg);
		else
			cb(e, stx, false, NULL, arg);
		return NULL;
	}
	a->e = e;
	a->stx = sk_ref(stx);
	a->proxy = proxy;
	a->cb = cb;
	a->rcb = rcb;
	a->arg = arg;
	edge_join(a->realm, sizeof(a->realm), realm, NULL, NULL);
	edge_digest_creds_get(&a->c,
			      proxy ? (msg_auth_t *)sip->sip_proxy_authorization
				    : (msg_auth_t *)sip->sip_authorization,
			      realm, &res);
	if (res.status == EDGE_DIGEST_OK && !a->c.qop)
		edge_digest_result_set(&res, EDGE_DIGEST_UNSUPPORTED, "qop=auth required");
	if (res.status == EDGE_DIGEST_OK) {
		switch (edge_digest_nonce_check(e->secret, e->secret_len, realm, a->c.nonce,
						sk_sys_unix_ms() / 1000,
						(uint32_t)(e->conf->nonce_ttl / 1000), &a->nid)) {
		case EDGE_DIGEST_NONCE_VALID: break;
		case EDGE_DIGEST_NONCE_STALE:
			challenge(e, stx, proxy, realm, true);
			goto fail;
		default: edge_digest_result_set(&res, EDGE_DIGEST_BAD_NONCE, "not our nonce");
		}
	}
	if (res.status == EDGE_DIGEST_NO_CREDS) {
		challenge(e, stx, proxy, realm, false);
		goto fail;
	}
	if (res.status != EDGE_DIGEST_OK) {
		log_failure(e, stx, a->c.username, realm, &res);
		challenge(e, stx, proxy, realm, false);
		goto fail;
	}
	edge_join(aor, sizeof(aor), a->c.username, "@", realm);
	if (regdata_aor_norm(a->aor, sizeof(a->aor), aor, &why) ||
	    regdata_key_cred(a->key[0], sizeof(a->key[0]), e->cluster, a->aor) ||
	    (rcb && sk_redis_key(a->key[1], sizeof(a->key[1]), e->cluster, a->aor, "nc"))) {
		edge_digest_result_set(&res, EDGE_DIGEST_UNKNOWN_USER, "unusable user name");
		log_failure(e, stx, a->c.username, realm, &res);
		challenge(e, stx, proxy, realm, false);
		goto fail;
	}
	return a;
fail:
	finish(a, false);
	sk_deref(a);
	return NULL;
}

void edge_auth(struct edge *e, struct edge_stx *stx, bool proxy, const char *realm,
	       edge_auth_cb *cb, void *arg)
{
	struct edge_auth *a = auth_start(e, stx, proxy, realm, cb, NULL, arg);
	const char *hget[3];

	if (!a)
		return;
	hget[0] = "HGET";
	hget[1] = a->key[0];
	hget[2] = ha1_field(a->c.alg);
	if (sk_redis_cmd(e->redis, on_hget, a, 3, hget, NULL)) {
		edge_reply(e, stx, 500, "Server Internal Error (credentials unavailable)",
			   "Retry-After: 5\r\n");
		finish(a, false);
		sk_deref(a);
	}
}

/* ---- REGISTER: the HA1 cache here, the Redis half in the registration script ---- */

static void reg_fetch(struct edge_auth *a);

/* Verifies with a->ha1; a wrong response with a cached HA1 is read again once (the
 * password may have changed) before it counts as a failure. */
static void reg_verify(struct edge_auth *a)
{
	struct edge_digest_result res;

	verify(a, a->ha1, &res);
	if (res.status == EDGE_DIGEST_OK) {
		nc_check(a);
	} else if (res.status == EDGE_DIGEST_BAD_RESPONSE && !a->fetched) {
		reg_fetch(a);
	} else {
		refuse(a, &res);
		finish(a, false);
		sk_deref(a);
	}
}

static void on_fetch(int err, struct redisReply *r, void *arg)
{
	struct edge_auth *a = arg;
	struct edge_digest_result res;

	if (err || !r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
		unavailable(a, err, "bad reply");
		sk_deref(a);
		return;
	}
	if (r->type == REDIS_REPLY_NIL || !r->len) {
		edge_ha1_put(a->e->ha1, a->aor, a->c.alg, NULL);
		verify(a, NULL, &res);
		refuse(a, &res);
		finish(a, false);
		sk_deref(a);
		return;
	}
	edge_ha1_put(a->e->ha1, a->aor, a->c.alg, r->str);
	/* An over-long value fails verification as malformed, as it did before. */
	snprintf(a->ha1, sizeof(a->ha1), "%.*s", (int)r->len, r->str);
	reg_verify(a);
}

/* One HGET: the nonce-count is the script's business. */
static void reg_fetch(struct edge_auth *a)
{
	const char *argv[3] = {"HGET", a->key[0], ha1_field(a->c.alg)};
	int err;

	a->fetched = true;
	err = sk_redis_cmd(a->e->redis, on_fetch, a, 3, argv, NULL);
	if (err) {
		unavailable(a, err, NULL);
		sk_deref(a);
	}
}

void edge_auth_register(struct edge *e, struct edge_stx *stx, const char *realm,
			edge_auth_reg_cb *cb, void *arg)
{
	struct edge_auth *a = auth_start(e, stx, false, realm, NULL, cb, arg);

	if (!a)
		return;
	if (edge_ha1_get(e->ha1, a->aor, a->c.alg, a->ha1, sizeof(a->ha1)))
		reg_verify(a);
	else
		reg_fetch(a);
}

void edge_auth_reg_fill(const struct edge_auth *a, Skein__Sip__V1__RegisterAuth *ra)
{
	ra->cred_key = (char *)a->key[0];
	ra->field = (char *)ha1_field(a->c.alg);
	ra->ha1 = (char *)a->ha1;
	/* The count was checked with the nonce's issuer: the script records none. */
	ra->nc_key = (char *)a->key[1];
	ra->nc = 0;
	ra->nc_ttl = 0;
}

enum edge_auth_verdict edge_auth_reg_checked(struct edge_auth *a, int check,
					     const char *current_ha1)
{
	struct edge_digest_result res;

	switch (check) {
	case SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_NONE:
		sk_counter_inc(a->e->m.auth_ok);
		return EDGE_AUTH_PASSED;
	case SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_STALE:
		/* The password changed (or the user went) since the HA1 was cached. */
		current_ha1 = current_ha1 ? current_ha1 : "";
		edge_ha1_put(a->e->ha1, a->aor, a->c.alg, current_ha1);
		snprintf(a->ha1, sizeof(a->ha1), "%s", current_ha1);
		verify(a, *current_ha1 ? a->ha1 : NULL, &res);
		if (res.status == EDGE_DIGEST_OK && !a->retried) {
			a->retried = true;
			return EDGE_AUTH_RETRY;
		}
		if (res.status == EDGE_DIGEST_OK) /* changed again under our feet */
			edge_digest_result_set(&res, EDGE_DIGEST_BAD_RESPONSE,
					       "credentials changed during the request");
		break;
	case SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_REPLAY:
	default:
		edge_digest_result_set(&res, EDGE_DIGEST_REPLAY, "nonce-count %s replayed",
				       a->c.nc_text);
		break;
	}
	refuse(a, &res);
	return EDGE_AUTH_ANSWERED;
}

/* The nonce secret: from the config, else one random secret per cluster kept in
 * Redis (SET NX, then GET), so every edge of the cluster makes and accepts the same
 * nonces without configuration. */
static void on_secret(int err, struct redisReply *r, void *arg);

static void secret_fetch(struct edge *e)
{
	(void)regdata_nonce_secret_fetch(e->redis, e->cluster, on_secret, e);
}

static void on_secret(int err, struct redisReply *r, void *arg)
{
	struct edge *e = arg;

	if (err || !r || r->type != REDIS_REPLY_STRING || r->len < 16 ||
	    r->len > sizeof(e->secret))
		return; /* retried by the timer */
	memcpy(e->secret, r->str, r->len);
	e->secret_len = r->len;
	e->secret_ok = true;
	SK_INFO("nonce secret shared through Redis");
}

static void secret_timer(uv_timer_t *t)
{
	struct edge *e = t->data;

	if (e->secret_ok) {
		uv_timer_stop(t);
		return;
	}
	if (sk_redis_ready(e->redis))
		secret_fetch(e);
}

int edge_auth_setup(struct edge *e)
{
	uint32_t epoch = 0;
	int err = edge_auth_algs_order(e->conf->auth_algorithms, &e->algs, e->alg_order,
				       &e->nalg);

	if (!err)
		err = edge_ha1_alloc(&e->ha1, (size_t)e->conf->auth_cache_size);
	/* The run's epoch: a nonce of an earlier run of this edge is forgotten. */
	if (!err && edge_random_bytes(&epoch, sizeof(epoch)))
		err = SK_EAGAIN;
	if (!err)
		err = edge_nctab_alloc(&e->nctab, (size_t)e->conf->nonce_slots, epoch);
	if (!err)
		err = sk_bus_on_request(e->bus, SKEIN__BUS__V1__ENVELOPE__BODY_NONCE_USE,
					on_nonce_use, e);
	if (err)
		return err;
	e->nc_issuer = edge_nc_issuer(e->member);
	if (e->conf->auth_secret[0]) {
		size_t n = strlen(e->conf->auth_secret);

		if (n < 16 || n > sizeof(e->secret)) {
			SK_ERROR("auth_secret must have 16 to %zu characters", sizeof(e->secret));
			return SK_ECONFIG;
		}
		memcpy(e->secret, e->conf->auth_secret, n);
		e->secret_len = n;
		e->secret_ok = true;
		return 0;
	}
	e->secret_timer = sk_sys_timer_start(e->loop, secret_timer, e, 0, 200);
	return e->secret_timer ? 0 : SK_ENOMEM;
}
