/* xcap_http: the XCAP request handler and server: URI, digest auth against Redis
 * (with the edge's nonce-count replay check and auth-failure log line), document
 * operation, conditional requests, the server-wide uniqueness of rls-services service
 * URIs (xcap_rls.h), the compare-and-set write, metrics and the TLS reload. */
#include <hiredis/hiredis.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "skein/sk_err.h"
#include "skein/sk_http.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"
#include "skein/sk_redis.h"
#include "digest.h"
#include "regdata.h"
#include "xcap_authlog.h"
#include "xcap_doc.h"
#include "xcap_http.h"
#include "xcap_rls.h"
#include "xcap_store.h"

SK_LOG_MODULE("xcap");

enum {
	SECRET_MAX = 128,
	/* Concurrent writers of one document: read, apply, compare-and-set again. Each
	 * retry means another write won, so this bounds the writers at once, not time. */
	CAS_TRIES = 32,
	NONCE_MAX_AGE_S = 300,
	IP_SIZE = 64,
};

/* KEYS: cred hash, nonce-count key. ARGV: HA1 field, nc, ttl seconds. Returns
 * {ha1 or "", 1 fresh nc | 0 replayed}. The edge's script (services/edge/core_auth.c)
 * with the same key <c>:{aor}:nc:<nonce> (docs/data-model.md), so a nonce-count used
 * at an edge or another XCAP server is not good here either. RFC 7616 §3.4: nc
 * must grow for each request with one nonce; a repeated or smaller one is a replay.
 * The nc is recorded before the response is checked (one round trip): a wrong
 * response burns an nc, which only makes the client re-authenticate. */
static const char LUA_AUTHINFO[] =
	"local ha1 = redis.call('HGET', KEYS[1], ARGV[1])\n"
	"if not ha1 then return {'', 0} end\n"
	"local nc = tonumber(ARGV[2])\n"
	"local last = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
	"if nc <= last then return {ha1, 0} end\n"
	"redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])\n"
	"return {ha1, 1}\n";

/* Label values of xcap_requests_total{method}: bounded, whatever clients send. */
static const char *const methods[] = {"GET", "PUT", "DELETE", "HEAD", "other"};
enum { NMETHODS = sizeof(methods) / sizeof(methods[0]) };
static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx"};

struct xcap_server {
	uv_loop_t *loop;
	struct sk_redis *redis; /* borrowed */
	struct xcap_store store;
	struct sk_http *http, *https;
	char root[128];
	unsigned char secret[SECRET_MAX];
	size_t secret_len;
	bool secret_ok, closing;
	uint32_t max_age;
	struct sk_redis_script *authinfo;
	char *tls_cert, *tls_key; /* kept for xcap_server_reload() */
	struct {
		struct sk_counter *req[NMETHODS], *resp[4], *auth_fail;
		struct sk_histogram *latency;
	} m; /* all NULL without a registry: every use checks */
	/* xcap_server_opts.on_change: told of every document written or deleted (the
	 * presence agent re-reads pres-rules, rls-services ...). */
	void (*on_change)(void *arg, const char *xui, const char *auid, const char *doc);
	void *change_arg;
};

/* One request in flight; everything copied out of the sk_http request. */
struct xreq {
	struct xcap_server *srv; /* reference */
	struct sk_http_pending *pending;
	struct xcap_uri u;
	const struct xcap_auid *auid;
	char method[16];
	char target[2048]; /* path?query as the client sent it: the digest-uri */
	char aor[REGDATA_AOR_MAX];
	char realm[REGDATA_AOR_MAX];
	char *authz; /* Authorization, or NULL */
	char *if_match, *if_none_match, *ctype;
	char *body;
	size_t body_len;
	char ip[IP_SIZE]; /* the client's address, for the auth-failure line */
	uint64_t t0;      /* uv_hrtime() at arrival, for xcap_request_seconds */
	struct edge_digest_creds creds;
	unsigned tries;
	char etag[XCAP_ETAG_SIZE]; /* of the document read ("" when none) */
};

static void xreq_destroy(void *data)
{
	struct xreq *x = data;

	sk_deref(x->pending);
	sk_deref(x->authz);
	sk_deref(x->if_match);
	sk_deref(x->if_none_match);
	sk_deref(x->ctype);
	sk_deref(x->body);
	sk_deref(x->srv);
}

/* ---- metrics ---- */

static void count_response(struct xcap_server *s, int status, uint64_t t0)
{
	int c = status / 100 - 2;

	if (c >= 0 && c < 4 && s->m.resp[c])
		sk_counter_inc(s->m.resp[c]);
	if (s->m.latency)
		sk_histogram_observe(s->m.latency, (double)(uv_hrtime() - t0) / 1e9);
}

/* One stable line per failure (xcap_authlog.h) and the counter. */
static void auth_failed(struct xreq *x, enum edge_digest_status why)
{
	if (x->srv->m.auth_fail)
		sk_counter_inc(x->srv->m.auth_fail);
	xcap_authlog_failure(x->ip, x->creds.username, x->realm, edge_digest_status_name(why));
}

/* ---- answers ---- */

static void reply(struct xreq *x, int status, const char *ctype, struct sk_buf *body,
		  struct sk_buf *headers)
{
	struct sk_http_resp resp = {.status = status, .content_type = ctype};

	sk_buf_init(&resp.body);
	sk_buf_init(&resp.headers);
	if (body) {
		resp.body = *body;
		sk_buf_init(body);
	}
	if (headers) {
		resp.headers = *headers;
		sk_buf_init(headers);
	}
	if (!resp.body.len && status >= 400) {
		sk_buf_printf(&resp.body, "%d\n", status);
		resp.content_type = NULL;
	}
	if (!sk_http_respond(x->pending, &resp)) /* not when the client has gone */
		count_response(x->srv, status, x->t0);
	sk_deref(x);
}

static void reply_status(struct xreq *x, int status)
{
	reply(x, status, NULL, NULL, NULL);
}

static void challenge(struct xreq *x, bool stale)
{
	char nonce[EDGE_DIGEST_NONCE_SIZE];
	struct sk_buf h;

	sk_buf_init(&h);
	if (edge_digest_nonce_new(x->srv->secret, x->srv->secret_len, x->realm,
				  (uint64_t)time(NULL), NULL, nonce, sizeof(nonce)) ||
	    edge_digest_challenge(&h, false, EDGE_DIGEST_OFFER_ALL, x->realm, nonce, NULL, stale)) {
		sk_buf_release(&h);
		reply_status(x, 500);
		return;
	}
	reply(x, 401, NULL, NULL, &h);
}

/* ---- conditional requests (RFC 9110 §13.1.1, §13.1.2) ---- */

/* Does the list (a comma-separated list of entity-tags, or "*") name etag? W/ tags
 * never match: the comparison is strong (§13.1.1). */
static bool etag_listed(const char *list, const char *etag)
{
	const char *s = list;

	while (*s) {
		const char *e;

		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (*s == '*')
			return etag[0] != '\0';
		if (*s != '"')
			return false;
		e = strchr(s + 1, '"');
		if (!e)
			return false;
		if ((size_t)(e - s - 1) == strlen(etag) && !memcmp(s + 1, etag, strlen(etag)))
			return etag[0] != '\0';
		s = e + 1;
	}
	return false;
}

/* 0 to go on, else the status to answer (412, or 304 for a GET). */
static int preconditions(const struct xreq *x, bool get)
{
	if (x->if_match && !etag_listed(x->if_match, x->etag))
		return 412;
	if (x->if_none_match && etag_listed(x->if_none_match, x->etag))
		return get ? 304 : 412;
	return 0;
}

/* ---- the document operation ---- */

static void do_read(struct xreq *x);

static void etag_header(struct sk_buf *h, const char *etag)
{
	if (etag && etag[0])
		sk_buf_printf(h, "ETag: \"%s\"\r\n", etag);
}

static void on_cas(int err, bool written, void *arg);

struct cas_ctx {
	struct xreq *x; /* reference */
	struct xcap_result r;
	char etag[XCAP_ETAG_SIZE];
};

static void write_doc(struct cas_ctx *c);
static xcap_rls_cb on_rls;

static void cas_destroy(void *data)
{
	struct cas_ctx *c = data;

	xcap_result_release(&c->r);
	sk_deref(c->x);
}

static void on_doc(int err, const char *doc, size_t len, const char *etag, void *arg)
{
	struct xreq *x = arg;
	bool get = !strcmp(x->method, "GET") || !strcmp(x->method, "HEAD");
	struct cas_ctx *c;
	struct sk_buf h;
	int st;

	if (err) {
		SK_WARN("%s: document read failed: %s", x->aor, sk_strerror(err));
		reply_status(x, 503);
		return;
	}
	snprintf(x->etag, sizeof(x->etag), "%s", doc ? etag : "");
	st = preconditions(x, get);
	if (st) {
		sk_buf_init(&h);
		etag_header(&h, x->etag);
		reply(x, st, NULL, NULL, &h);
		return;
	}
	c = sk_zalloc(sizeof(*c), cas_destroy);
	if (!c) {
		reply_status(x, 500);
		return;
	}
	if (xcap_doc_apply(x->auid, &x->u, x->method, doc, len, x->body, x->body_len, x->ctype,
			   &c->r)) {
		sk_deref(c);
		reply_status(x, 500);
		return;
	}
	if (!c->r.write && !c->r.remove) {
		sk_buf_init(&h);
		if (c->r.status < 300)
			etag_header(&h, x->etag);
		reply(x, c->r.status, c->r.content_type, &c->r.body, &h);
		sk_deref(c);
		return;
	}
	c->x = x; /* the reference moves */
	if (c->r.write && !strcmp(x->method, "PUT") && !strcmp(x->u.auid, "rls-services")) {
		/* RFC 4826 §4.4.3: service URIs are unique across every user's documents;
		 * a read of the registrar's index first (xcap_rls.h: the race it leaves). */
		err = xcap_rls_check(x->srv->redis, x->srv->store.cluster, x->aor,
				     c->r.doc.data ? c->r.doc.data : "", c->r.doc.len, on_rls, c);
		if (!err)
			return;
		if (err != SK_ENOENT) {
			SK_WARN("%s: rls-services check failed: %s", x->aor, sk_strerror(err));
			c->x = NULL;
			sk_deref(c);
			reply_status(x, 503);
			return;
		}
	}
	write_doc(c);
}

/* The compare-and-set of what xcap_doc_apply made; takes c. */
static void write_doc(struct cas_ctx *c)
{
	struct xreq *x = c->x;
	int err;

	if (c->r.write)
		xcap_etag(c->r.doc.data ? c->r.doc.data : "", c->r.doc.len, c->etag);
	err = xcap_store_cas(&x->srv->store, x->aor, x->u.auid, x->u.doc, x->etag,
			     c->r.write ? (c->r.doc.data ? c->r.doc.data : "") : NULL, c->r.doc.len,
			     c->etag, on_cas, c);
	if (err) {
		c->x = NULL;
		sk_deref(c);
		reply_status(x, 503);
	}
}

static void on_rls(int err, const struct xcap_conflict *cf, void *arg)
{
	struct cas_ctx *c = arg;
	struct xreq *x = c->x;
	struct sk_buf b;

	if (!err && !cf) {
		write_doc(c);
		return;
	}
	c->x = NULL;
	sk_deref(c);
	if (err) {
		SK_WARN("%s: rls-services check failed: %s", x->aor, sk_strerror(err));
		reply_status(x, 503);
		return;
	}
	sk_buf_init(&b);
	if (xcap_error_body(&b, cf)) {
		sk_buf_release(&b);
		reply_status(x, 500);
		return;
	}
	reply(x, 409, XCAP_ERROR_MIME, &b, NULL);
}

static void on_cas(int err, bool written, void *arg)
{
	struct cas_ctx *c = arg;
	struct xreq *x = sk_ref(c->x);
	struct sk_buf h;

	if (err) {
		SK_WARN("%s: document write failed: %s", x->aor, sk_strerror(err));
		reply_status(x, 503);
	} else if (!written) {
		/* Another node wrote in between: do it again on what is there now,
		 * preconditions included. */
		if (++x->tries < CAS_TRIES)
			do_read(x);
		else
			reply_status(x, 503);
	} else {
		sk_buf_init(&h);
		etag_header(&h, c->r.write ? c->etag : NULL);
		reply(x, c->r.status, NULL, NULL, &h);
		/* After the answer (c still holds x): the hook may do work of its own, and
		 * the client should not wait for it. Only a write that happened is told,
		 * once, whatever the CAS retries before it. */
		if (x->srv->on_change && !x->srv->closing)
			x->srv->on_change(x->srv->change_arg, x->aor, x->u.auid, x->u.doc);
	}
	sk_deref(c);
}

static void do_read(struct xreq *x)
{
	if (!sk_http_pending_alive(x->pending)) {
		sk_deref(x);
		return;
	}
	if (xcap_store_get(&x->srv->store, x->aor, x->u.auid, x->u.doc, on_doc, x))
		reply_status(x, 503);
}

/* ---- authentication ---- */

static void on_authinfo(int err, struct redisReply *r, void *arg)
{
	struct xreq *x = arg;
	struct edge_digest_result res;
	const redisReply *h;
	char who[EDGE_DIGEST_USER_SIZE + REGDATA_AOR_MAX + 2], aor[REGDATA_AOR_MAX];
	const char *why;
	bool fresh;
	size_t tlen;

	if (err || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
		reply_status(x, 503);
		return;
	}
	h = r->element[0];
	fresh = r->element[1]->type == REDIS_REPLY_INTEGER && r->element[1]->integer == 1;
	if (h->type != REDIS_REPLY_STRING || !h->len) {
		auth_failed(x, EDGE_DIGEST_UNKNOWN_USER);
		challenge(x, false);
		return;
	}
	/* digest-uri must be the request-target (RFC 7616 §3.4.6). */
	tlen = strlen(x->target);
	if (strlen(x->creds.uri) != tlen || memcmp(x->creds.uri, x->target, tlen)) {
		auth_failed(x, EDGE_DIGEST_URI_MISMATCH);
		reply_status(x, 400);
		return;
	}
	if (edge_digest_verify(&x->creds, x->method, NULL, h->str, x->creds.alg, &res) ||
	    res.status != EDGE_DIGEST_OK) {
		auth_failed(x, res.status == EDGE_DIGEST_OK ? EDGE_DIGEST_MALFORMED : res.status);
		challenge(x, false);
		return;
	}
	if (!fresh) {
		/* A captured request sent again, or a client that reuses an nc: no
		 * service, and stale=false, the nonce itself is still good (RFC 7616
		 * §3.4; the edge answers the same). */
		auth_failed(x, EDGE_DIGEST_REPLAY);
		challenge(x, false);
		return;
	}
	/* Authenticated as username@realm; the XUI must be theirs (RFC 4825 §5.7). */
	snprintf(who, sizeof(who), "%s@%s", x->creds.username, x->realm);
	if (regdata_aor_norm(aor, sizeof(aor), who, &why) || strcmp(aor, x->aor)) {
		reply_status(x, 403);
		return;
	}
	do_read(x);
}

static void authenticate(struct xreq *x)
{
	char key[2][512], who[EDGE_DIGEST_USER_SIZE + REGDATA_AOR_MAX + 2], aor[REGDATA_AOR_MAX];
	char nc[16], ttl[16];
	const char *argv[5];
	struct edge_digest_result res;
	sip_authorization_t *au = NULL;
	const char *why;
	su_home_t *home;
	int err;

	if (!x->authz) {
		challenge(x, false);
		return;
	}
	home = su_home_new(sizeof(*home));
	if (home)
		au = sip_authorization_make(home, x->authz);
	err = au ? edge_digest_creds_get(&x->creds, (msg_auth_t *)au, x->realm, &res) : SK_EINVAL;
	su_home_unref(home);
	if (err || res.status == EDGE_DIGEST_NO_CREDS) {
		challenge(x, false);
		return;
	}
	if (res.status != EDGE_DIGEST_OK) {
		auth_failed(x, res.status);
		reply_status(x, 400);
		return;
	}
	if (!x->creds.qop) {
		/* The RFC 2069 form has no nonce-count, hence no replay protection; the
		 * challenge offers qop=auth (RFC 7616 §3.3), as the edge requires it. */
		auth_failed(x, EDGE_DIGEST_UNSUPPORTED);
		challenge(x, false);
		return;
	}
	switch (edge_digest_nonce_check(x->srv->secret, x->srv->secret_len, x->realm,
					x->creds.nonce, (uint64_t)time(NULL), x->srv->max_age,
					NULL)) {
	case EDGE_DIGEST_NONCE_VALID:
		break;
	case EDGE_DIGEST_NONCE_STALE:
		challenge(x, true);
		return;
	default:
		auth_failed(x, EDGE_DIGEST_BAD_NONCE);
		challenge(x, false);
		return;
	}
	snprintf(who, sizeof(who), "%s@%s", x->creds.username, x->realm);
	if (regdata_aor_norm(aor, sizeof(aor), who, &why) ||
	    regdata_key_cred(key[0], sizeof(key[0]), x->srv->store.cluster, aor) ||
	    sk_redis_key(key[1], sizeof(key[1]), x->srv->store.cluster, aor, "nc") ||
	    strlen(key[1]) + strlen(x->creds.nonce) + 2 > sizeof(key[1])) {
		auth_failed(x, EDGE_DIGEST_UNKNOWN_USER);
		challenge(x, false);
		return;
	}
	strcat(key[1], ":");
	strcat(key[1], x->creds.nonce);
	snprintf(nc, sizeof(nc), "%u", x->creds.nc);
	snprintf(ttl, sizeof(ttl), "%u", x->srv->max_age + 60);
	argv[0] = key[0];
	argv[1] = key[1];
	argv[2] = x->creds.alg == EDGE_DIGEST_SHA256 ? "ha1_sha256" : "ha1_md5";
	argv[3] = nc;
	argv[4] = ttl;
	if (sk_redis_eval(x->srv->authinfo, on_authinfo, x, 2, 5, argv, NULL))
		reply_status(x, 503);
}

/* The nonce secret, as the edge keeps it: SET NX of a random one, then GET. */
static void on_secret(int err, struct redisReply *r, void *arg)
{
	struct xreq *x = arg;
	struct xcap_server *s = x->srv;

	if (!s->secret_ok && !err && r && r->type == REDIS_REPLY_STRING && r->len >= 16 &&
	    r->len <= sizeof(s->secret)) {
		memcpy(s->secret, r->str, r->len);
		s->secret_len = r->len;
		s->secret_ok = true;
	}
	if (!s->secret_ok) {
		reply_status(x, 503);
		return;
	}
	authenticate(x);
}

static void with_secret(struct xreq *x)
{
	struct xcap_server *s = x->srv;

	if (s->secret_ok) {
		authenticate(x);
		return;
	}
	if (regdata_nonce_secret_fetch(s->redis, s->store.cluster, on_secret, x))
		reply_status(x, 503);
}

/* ---- the HTTP handler ---- */

static char *dup_header(const struct sk_http_req *req, const char *name)
{
	const char *v = req->header(req, name);

	return v ? sk_strdup(v) : NULL;
}

/* users/<xui>: "sip:user@domain" (RFC 4825 §4: the XUI is the AOR); sips: and a bare
 * user@domain are taken too. */
static int xui_aor(struct xreq *x)
{
	const char *s = x->u.xui, *why, *at;

	if (!strncasecmp(s, "sip:", 4))
		s += 4;
	else if (!strncasecmp(s, "sips:", 5))
		s += 5;
	if (regdata_aor_norm(x->aor, sizeof(x->aor), s, &why))
		return SK_EINVAL;
	at = strrchr(x->aor, '@');
	if (!at || !at[1])
		return SK_EINVAL;
	snprintf(x->realm, sizeof(x->realm), "%s", at + 1);
	return 0;
}

static int handler(const struct sk_http_req *req, struct sk_http_resp *resp, void *arg)
{
	struct xcap_server *s = arg;
	struct xreq *x;
	int err;

	x = sk_zalloc(sizeof(*x), xreq_destroy);
	if (!x)
		return SK_ENOMEM;
	x->srv = sk_ref(s);
	x->t0 = uv_hrtime();
	for (size_t i = 0; i < NMETHODS; i++) {
		if (i == NMETHODS - 1 || !strcmp(req->method, methods[i])) {
			if (s->m.req[i])
				sk_counter_inc(s->m.req[i]);
			break;
		}
	}
	(void)sk_http_req_peer(req, x->ip, sizeof(x->ip));
	err = xcap_uri_parse(&x->u, s->root, req->path, req->query);
	if (err) {
		resp->status = err == SK_ENOENT ? 404 : 400;
		goto done;
	}
	x->auid = xcap_auid_find(x->u.auid);
	if (!x->auid || x->auid->global_only != x->u.global) {
		resp->status = 404;
		goto done;
	}
	snprintf(x->method, sizeof(x->method), "%s", req->method);
	if (x->u.global) {
		/* Only xcap-caps lives in global/: generated, public (§12). */
		if (strcmp(x->u.doc, "index")) {
			resp->status = 404;
		} else {
			struct xcap_result r;
			struct sk_buf caps;

			sk_buf_init(&caps);
			err = xcap_auid_caps(&caps);
			if (!err)
				err = xcap_doc_apply(x->auid, &x->u, x->method, caps.data, caps.len,
						     NULL, 0, NULL, &r);
			sk_buf_release(&caps);
			if (err)
				goto done;
			resp->status = r.status;
			resp->content_type = r.content_type;
			sk_buf_append(&resp->body, r.body.data ? r.body.data : "", r.body.len);
			xcap_result_release(&r);
		}
		goto done;
	}
	if (xui_aor(x)) {
		resp->status = 404;
		goto done;
	}
	if ((size_t)snprintf(x->target, sizeof(x->target), "%s%s%s", req->path,
			     req->query[0] ? "?" : "", req->query) >= sizeof(x->target)) {
		resp->status = 414;
		goto done;
	}
	x->authz = dup_header(req, "Authorization");
	x->if_match = dup_header(req, "If-Match");
	x->if_none_match = dup_header(req, "If-None-Match");
	x->ctype = dup_header(req, "Content-Type");
	x->body = sk_zalloc(req->body_len + 1, NULL);
	if (!x->body) {
		err = SK_ENOMEM;
		goto done;
	}
	memcpy(x->body, req->body, req->body_len);
	x->body_len = req->body_len;
	x->pending = sk_http_defer(req);
	if (!x->pending) {
		err = SK_ENOMEM;
		goto done;
	}
	with_secret(x); /* takes x's reference */
	return 0;
done:
	count_response(s, err ? 500 : resp->status, x->t0);
	sk_deref(x);
	if (!err && resp->status >= 400 && !resp->body.len)
		sk_buf_printf(&resp->body, "%d\n", resp->status);
	return err;
}

/* ---- the server ---- */

static void server_destroy(void *data)
{
	struct xcap_server *s = data;

	sk_deref(s->http);
	sk_deref(s->https);
	sk_deref(s->tls_cert);
	sk_deref(s->tls_key);
}

static struct sk_counter *counter(struct sk_metrics *m, const char *prefix, const char *what,
				  const char *help, const char *label, const char *value)
{
	char name[128];

	snprintf(name, sizeof(name), "%s_%s", prefix, what);
	return sk_metrics_counter(m, name, help, label, value);
}

/* docs/xcap.md "Metrics". One label per family (sk_metrics.h). */
static int metrics_init(struct xcap_server *s, struct sk_metrics *m, const char *prefix)
{
	static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
					0.05,	0.1,   0.25,   0.5,   1,    2.5};
	static const char req_help[] = "XCAP requests received, by method";
	static const char resp_help[] = "XCAP responses sent, by status class";
	char name[128];

	if (!m)
		return 0;
	prefix = prefix && prefix[0] ? prefix : "skein_xcap";
	for (size_t i = 0; i < NMETHODS; i++) {
		s->m.req[i] = counter(m, prefix, "xcap_requests_total", req_help, "method",
				      methods[i]);
		if (!s->m.req[i])
			return SK_ENOMEM;
	}
	for (size_t i = 0; i < 4; i++) {
		s->m.resp[i] = counter(m, prefix, "xcap_responses_total", resp_help, "class",
				       classes[i]);
		if (!s->m.resp[i])
			return SK_ENOMEM;
	}
	s->m.auth_fail = counter(m, prefix, "xcap_auth_failures_total",
				 "Failed XCAP digest authentications (each also logged as an "
				 "auth-failure line)",
				 NULL, NULL);
	snprintf(name, sizeof(name), "%s_xcap_request_seconds", prefix);
	s->m.latency = sk_metrics_histogram(m, name,
					    "XCAP request handling time, request received to "
					    "response given",
					    bounds, sizeof(bounds) / sizeof(bounds[0]));
	return s->m.auth_fail && s->m.latency ? 0 : SK_ENOMEM;
}

int xcap_server_alloc(struct xcap_server **sp, uv_loop_t *loop, struct sk_redis *redis,
		      const char *cluster, const struct xcap_server_opts *o)
{
	bool plain = o && o->http_listen && o->http_listen[0];
	bool tls = o && o->https_listen && o->https_listen[0];
	struct sk_http_opts ho = {.max_body = XCAP_DOC_MAX};
	struct xcap_server *s;
	int err;

	if (!sp || !loop || !redis || !cluster || (!plain && !tls))
		return SK_EINVAL;
	if (tls && (!o->tls_cert || !o->tls_cert[0] || !o->tls_key || !o->tls_key[0])) {
		SK_ERROR("XCAP over HTTPS needs a certificate and a key (tls_cert, tls_key)");
		return SK_EINVAL;
	}
	xcap_doc_init();
	s = sk_zalloc(sizeof(*s), server_destroy);
	if (!s)
		return SK_ENOMEM;
	s->loop = loop;
	s->redis = redis;
	s->max_age = o->nonce_max_age_s ? o->nonce_max_age_s : NONCE_MAX_AGE_S;
	s->on_change = o->on_change;
	s->change_arg = o->change_arg;
	snprintf(s->root, sizeof(s->root), "%s", o->root ? o->root : "/xcap");
	if (o->secret && o->secret[0]) {
		size_t n = strlen(o->secret);

		if (n < 16 || n > sizeof(s->secret)) {
			err = SK_EINVAL;
			goto out;
		}
		memcpy(s->secret, o->secret, n);
		s->secret_len = n;
		s->secret_ok = true;
	}
	err = xcap_store_init(&s->store, redis, cluster);
	if (!err)
		err = metrics_init(s, o->metrics, o->metrics_prefix);
	if (!err)
		err = sk_redis_script_add(redis, &s->authinfo, LUA_AUTHINFO);
	if (!err && plain)
		err = sk_http_alloc_opts(&s->http, loop, o->http_listen, &ho, handler, s);
	if (!err && tls) {
		ho.tls_cert = o->tls_cert;
		ho.tls_key = o->tls_key;
		s->tls_cert = sk_strdup(o->tls_cert);
		s->tls_key = sk_strdup(o->tls_key);
		err = s->tls_cert && s->tls_key ? 0 : SK_ENOMEM;
	}
	if (!err && tls) {
		err = sk_http_alloc_opts(&s->https, loop, o->https_listen, &ho, handler, s);
	}
	if (err)
		goto out;
	SK_INFO("XCAP on %s%s%s%s, root %s", plain ? "http://" : "",
		plain ? sk_http_addr(s->http) : "", tls ? " https://" : "",
		tls ? sk_http_addr(s->https) : "", s->root);
	*sp = s;
	return 0;
out:
	xcap_server_close(s);
	sk_deref(s);
	return err;
}

void xcap_server_close(struct xcap_server *s)
{
	if (!s || s->closing)
		return;
	s->closing = true;
	sk_http_close(s->http);
	sk_http_close(s->https);
}

int xcap_server_reload(struct xcap_server *s)
{
	int err;

	if (!s || !s->https || s->closing)
		return 0;
	err = sk_http_reload_tls(s->https, s->tls_cert, s->tls_key);
	if (err) {
		/* sk_tls has logged the file at fault and why. */
		SK_ERROR("XCAP HTTPS: reload of %s / %s failed, keeping the current certificate "
			 "and key",
			 s->tls_cert, s->tls_key);
		return err;
	}
	SK_NOTICE("XCAP HTTPS: reloaded certificate %s and its key %s", s->tls_cert, s->tls_key);
	return 0;
}

const char *xcap_server_http_addr(const struct xcap_server *s)
{
	return s && s->http ? sk_http_addr(s->http) : "";
}

const char *xcap_server_https_addr(const struct xcap_server *s)
{
	return s && s->https ? sk_http_addr(s->https) : "";
}
