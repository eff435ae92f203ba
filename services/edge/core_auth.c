/* core_auth: digest authentication of REGISTER (401, RFC 3261 §22.2) and of requests
 * from local subscribers (407, §22.3) against the HA1s in Redis, with the stateless
 * nonces of digest.h and the nonce-count replay check in Redis (short TTL), so that
 * the authenticated retry may land on any edge. Unknown users get exactly the same
 * challenge as a wrong password. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"
#include "skein/sk_sys.h"
#include "core.h"
#include "regdata.h"

SK_LOG_MODULE("auth");

/* KEYS: cred hash, nonce-count key. ARGV: HA1 field, nc (0: none), ttl seconds.
 * Returns {ha1 or "", 1 fresh nc | 0 replayed}. The nc is recorded before the
 * response is checked (one round trip); a wrong response can therefore burn an nc,
 * which only makes the client re-authenticate. */
static const char LUA_AUTHINFO[] =
	"local ha1 = redis.call('HGET', KEYS[1], ARGV[1])\n"
	"if not ha1 then return {'', 0} end\n"
	"local nc = tonumber(ARGV[2])\n"
	"if nc > 0 then\n"
	"  local last = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
	"  if nc <= last then return {ha1, 0} end\n"
	"  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])\n"
	"end\n"
	"return {ha1, 1}\n";

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

struct auth {
	struct edge *e;
	struct edge_stx *stx;
	bool proxy;
	char realm[EDGE_DIGEST_REALM_MAX + 1];
	char aor[REGDATA_AOR_MAX];
	struct edge_digest_creds c;
	edge_auth_cb *cb;
	void *arg;
};

static void auth_destroy(void *p)
{
	struct auth *a = p;

	sk_deref(a->stx);
}

static void challenge(struct edge *e, struct edge_stx *stx, bool proxy, const char *realm,
		      bool stale)
{
	char nonce[EDGE_DIGEST_NONCE_SIZE];
	struct sk_buf b;

	sk_buf_init(&b);
	int err = edge_digest_nonce_new(e->secret, e->secret_len, realm,
					sk_sys_unix_ms() / 1000, nonce, sizeof(nonce));

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

/* The client's user name as it may go into a log line: '"', '\\' and bytes outside
 * printable ASCII as \xNN, so that a folded header (CR LF SP in a quoted-string)
 * cannot start a line of its own (deploy/fail2ban/). */
static const char *log_escape(const char *s, char *out, size_t size)
{
	size_t o = 0;

	for (; *s && o + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
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
		  log_escape(user, esc, sizeof(esc)), realm, edge_digest_status_name(r->status));
	snprintf(tmp, sizeof(tmp), "%s@%s", user, realm);
	edge_guard_auth_failed(e, &edge_stx_rx(stx)->src,
			       regdata_aor_norm(aor, sizeof(aor), tmp, &why) ? NULL : aor);
}

static bool uri_names_us(struct edge *e, const char *uri)
{
	char buf[EDGE_DIGEST_URI_SIZE];
	url_t u[1];

	snprintf(buf, sizeof(buf), "%s", uri);
	return url_d(u, buf) >= 0 && (u->url_type == url_sip || u->url_type == url_sips) &&
	       (edge_uri_is_us(e, u) || (!u->url_user && edge_domain_local(e, u->url_host)));
}

static void on_info(int err, struct redisReply *r, void *arg)
{
	struct auth *a = arg;
	struct edge *e = a->e;
	struct edge_digest_result res;
	sip_t *sip = sip_object(edge_stx_msg(a->stx));
	const char *ha1 = NULL;
	bool fresh = false;

	if (err || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
		SK_WARN("credentials lookup for %s failed: %s", a->aor,
			err ? sk_strerror(err) : "bad reply");
		edge_reply(e, a->stx, 500, "Server Internal Error (credentials unavailable)",
			   "Retry-After: 5\r\n");
		a->cb(e, a->stx, false, NULL, a->arg);
		sk_deref(a);
		return;
	}
	if (r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len)
		ha1 = r->element[0]->str;
	fresh = r->element[1]->type == REDIS_REPLY_INTEGER && r->element[1]->integer == 1;
	if (!ha1) {
		edge_digest_result_set(&res, EDGE_DIGEST_UNKNOWN_USER, "no such user");
	} else if (edge_digest_verify(&a->c, sip->sip_request->rq_method_name,
				      sip->sip_request->rq_url, ha1, a->c.alg, &res)) {
		edge_digest_result_set(&res, EDGE_DIGEST_MALFORMED, "cannot verify");
	} else if (res.status == EDGE_DIGEST_URI_MISMATCH && uri_names_us(e, a->c.uri)) {
		/* sipp and some phones put the address they sent to in digest-uri rather
		 * than the Request-URI; naming this edge or a served domain is as good
		 * (the response still covers it). */
		if (edge_digest_verify(&a->c, sip->sip_request->rq_method_name, NULL, ha1, a->c.alg,
				       &res))
			edge_digest_result_set(&res, EDGE_DIGEST_MALFORMED, "cannot verify");
	}
	if (res.status == EDGE_DIGEST_OK && !fresh) {
		edge_digest_result_set(&res, EDGE_DIGEST_REPLAY, "nonce-count %s replayed",
				       a->c.nc_text);
	}
	if (res.status == EDGE_DIGEST_OK) {
		sk_counter_inc(e->m.auth_ok);
		a->cb(e, a->stx, true, a->c.username, a->arg);
	} else if (res.status == EDGE_DIGEST_URI_MISMATCH) {
		log_failure(e, a->stx, a->c.username, a->realm, &res);
		edge_reply(e, a->stx, 400, "Bad Request (digest uri does not match)", NULL);
		a->cb(e, a->stx, false, NULL, a->arg);
	} else {
		/* Unknown user, wrong password and replay all get the same fresh challenge. */
		log_failure(e, a->stx, a->c.username, a->realm, &res);
		challenge(e, a->stx, a->proxy, a->realm, false);
		a->cb(e, a->stx, false, NULL, a->arg);
	}
	sk_deref(a);
}

void edge_auth(struct edge *e, struct edge_stx *stx, bool proxy, const char *realm,
	       edge_auth_cb *cb, void *arg)
{
	sip_t *sip = sip_object(edge_stx_msg(stx));
	struct edge_digest_result res;
	struct auth *a;
	const char *why;
	char key[2][512], aor[REGDATA_AOR_MAX + 2], ttl[24], nc[16];
	const char *argv[3];
	int err;

	a = sk_zalloc(sizeof(*a), auth_destroy);
	if (!a) {
		edge_reply(e, stx, 500, "Server Internal Error", NULL);
		cb(e, stx, false, NULL, arg);
		return;
	}
	a->e = e;
	a->stx = sk_ref(stx);
	a->proxy = proxy;
	a->cb = cb;
	a->arg = arg;
	snprintf(a->realm, sizeof(a->realm), "%s", realm);
	edge_digest_creds_get(&a->c,
			      proxy ? (msg_auth_t *)sip->sip_proxy_authorization
				    : (msg_auth_t *)sip->sip_authorization,
			      realm, &res);
	if (res.status == EDGE_DIGEST_OK && !a->c.qop)
		edge_digest_result_set(&res, EDGE_DIGEST_UNSUPPORTED, "qop=auth required");
	if (res.status == EDGE_DIGEST_OK) {
		switch (edge_digest_nonce_check(e->secret, e->secret_len, realm, a->c.nonce,
						sk_sys_unix_ms() / 1000,
						(uint32_t)(e->conf->nonce_ttl / 1000))) {
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
	snprintf(aor, sizeof(aor), "%s@%s", a->c.username, realm);
	if (regdata_aor_norm(a->aor, sizeof(a->aor), aor, &why) ||
	    regdata_key_cred(key[0], sizeof(key[0]), e->cluster, a->aor) ||
	    sk_redis_key(key[1], sizeof(key[1]), e->cluster, a->aor, "nc") ||
	    strlen(key[1]) + strlen(a->c.nonce) + 2 > sizeof(key[1])) {
		edge_digest_result_set(&res, EDGE_DIGEST_UNKNOWN_USER, "unusable user name");
		log_failure(e, stx, a->c.username, realm, &res);
		challenge(e, stx, proxy, realm, false);
		goto fail;
	}
	strcat(key[1], ":");
	strcat(key[1], a->c.nonce);
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(e->conf->nonce_ttl / 1000 + 60));
	snprintf(nc, sizeof(nc), "%u", a->c.nc);
	argv[0] = a->c.alg == EDGE_DIGEST_SHA256 ? "ha1_sha256" : "ha1_md5";
	argv[1] = nc;
	argv[2] = ttl;
	{
		const char *all[5] = {key[0], key[1], argv[0], argv[1], argv[2]};

		err = sk_redis_eval(e->authinfo, on_info, a, 2, 5, all, NULL);
	}
	if (err) {
		edge_reply(e, stx, 500, "Server Internal Error (credentials unavailable)",
			   "Retry-After: 5\r\n");
		goto fail;
	}
	return;
fail:
	cb(e, stx, false, NULL, arg);
	sk_deref(a);
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
	int err = edge_auth_algs_order(e->conf->auth_algorithms, &e->algs, e->alg_order,
				       &e->nalg);

	if (err)
		return err;
	err = sk_redis_script_add(e->redis, &e->authinfo, LUA_AUTHINFO);
	if (!err)
		err = sk_redis_script_add(e->redis, &e->lookup, REGDATA_LUA_LOOKUP);
	if (err)
		return err;
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
