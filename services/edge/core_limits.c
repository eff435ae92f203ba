/* core_limits: per-account limits of concurrent outbound calls and of call attempts
 * per minute, against toll fraud (a stolen password dialling premium numbers from
 * many phones at once). Counted in Redis for the whole cluster, so that spreading
 * calls over the edges does not help; one script round trip per new INVITE
 * (limits_lua.h). Defaults from [edge] call_limit / call_rate, per-domain overrides
 * from `skeinctl domain set` (refreshed by core_domain.c). docs/edge.md, "Call
 * limits". */
#define _GNU_SOURCE /* memrchr */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sofia-sip/sip_header.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"
#include "core.h"
#include "limits_lua.h"
#include "regdata.h"

SK_LOG_MODULE("limits");

/* At most one "not checked" warning per this long during a Redis outage. */
#define WARN_EVERY_MS 10000

struct override {
	char *domain;
	int64_t limit, rate; /* -1: the config's */
};

struct edge_limits {
	struct sk_redis_script *admit;
	struct sk_counter *refused[2]; /* [0] concurrent, [1] rate */
	struct sk_counter *unchecked;
	struct override *ov;
	size_t nov;
	uint64_t warned_at; /* uv_now of the last warning */
	uint64_t unwarned;  /* calls let through unchecked since */
};

/* One check in flight. */
struct admit {
	struct edge *e;
	struct edge_limits *l;
	edge_limits_cb *cb;
	void *arg;
	char ip[64];
	char aor[REGDATA_AOR_MAX];
	int64_t limit, rate;
};

static void overrides_free(struct override *ov, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ov[i].domain);
	free(ov);
}

static void limits_destroy(void *p)
{
	struct edge_limits *l = p;

	overrides_free(l->ov, l->nov);
}

int edge_limits_start(struct edge *e)
{
	struct sk_metrics *mx = sk_daemon_metrics(e->d);
	static const char help[] = "Call attempts refused by the per-account call limits";
	struct edge_limits *l = sk_zalloc(sizeof(*l), limits_destroy);
	int err;

	if (!l)
		return SK_ENOMEM;
	err = sk_redis_script_add(e->redis, &l->admit, EDGE_LIMITS_LUA);
	if (err) {
		sk_deref(l);
		return err;
	}
	l->refused[0] = sk_metrics_counter(mx, "skein_edge_call_limit_total", help, "reason",
					   "concurrent");
	l->refused[1] = sk_metrics_counter(mx, "skein_edge_call_limit_total", help, "reason",
					   "rate");
	l->unchecked = sk_metrics_counter(mx, "skein_edge_call_limit_unchecked_total",
					  "Calls let through without a limit check (Redis "
					  "unavailable: fail open)",
					  NULL, NULL);
	e->limits = l;
	return 0;
}

void edge_limits_stop(struct edge *e)
{
	e->limits = sk_deref(e->limits);
}

/* The limits for an account of domain: the domain's override, else the config. */
static void limits_for(const struct edge *e, const char *domain, int64_t *limit, int64_t *rate)
{
	const struct edge_limits *l = e->limits;

	*limit = e->conf->call_limit;
	*rate = e->conf->call_rate;
	for (size_t i = 0; l && i < l->nov; i++) {
		if (strcmp(l->ov[i].domain, domain))
			continue;
		if (l->ov[i].limit >= 0)
			*limit = l->ov[i].limit;
		if (l->ov[i].rate >= 0)
			*rate = l->ov[i].rate;
		break;
	}
}

/* No limit in the config nor any domain override: nothing to count or release (the
 * common case; spares every INVITE and BYE the AOR's normalisation). An override
 * that lifts a limit (0) still counts here: a domain may have one while others do
 * not. */
static bool unlimited(const struct edge *e)
{
	return !e->limits || (!e->conf->call_limit && !e->conf->call_rate && !e->limits->nov);
}

/* The AOR of a From/To URI as regdata spells it (the key's hash tag). */
static int aor_of(const url_t *u, char *aor, size_t size)
{
	char tmp[REGDATA_AOR_MAX + 8];
	const char *why;

	if (!u || !u->url_user || !u->url_host)
		return SK_EINVAL;
	if (snprintf(tmp, sizeof(tmp), "%s@%s", u->url_user, u->url_host) >= (int)sizeof(tmp))
		return SK_ERANGE;
	return regdata_aor_norm(aor, size, tmp, &why);
}

/* Fail open: the call goes on uncounted. Auth needs Redis too, so this is the rare
 * case of Redis failing between the two (or the script erring); refusing every call
 * of the cluster for that would be the bigger harm. Counted always, logged at most
 * every WARN_EVERY_MS. */
static void fail_open(struct edge *e, struct edge_limits *l, const char *aor, int err)
{
	uint64_t now = uv_now(e->loop);

	sk_counter_inc(l->unchecked);
	if (l->warned_at && now - l->warned_at < WARN_EVERY_MS) {
		l->unwarned++;
		return;
	}
	if (l->unwarned)
		SK_WARN("call limits not checked for %s: %s; call let through (and %llu more "
			"since the last warning)",
			aor, sk_strerror(err), (unsigned long long)l->unwarned);
	else
		SK_WARN("call limits not checked for %s: %s; call let through", aor,
			sk_strerror(err));
	l->warned_at = now ? now : 1;
	l->unwarned = 0;
}

static void admit_destroy(void *p)
{
	struct admit *a = p;

	sk_deref(a->l);
}

static void on_admit(int err, struct redisReply *r, void *arg)
{
	struct admit *a = arg;
	enum edge_limit_verdict v = EDGE_LIMIT_OK;
	bool counted = false;

	if (err == SK_ECANCELED) {
		/* closing: the caller's callback sees its fork ended */
	} else if (err || !r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
		   r->element[0]->type != REDIS_REPLY_INTEGER) {
		fail_open(a->e, a->l, a->aor, err ? err : SK_EREDIS);
	} else {
		switch (r->element[0]->integer) {
		case EDGE_LIMITS_LUA_ADMITTED:
		case EDGE_LIMITS_LUA_KNOWN: counted = true; break;
		case EDGE_LIMITS_LUA_CONCURRENT: v = EDGE_LIMIT_CONCURRENT; break;
		case EDGE_LIMITS_LUA_RATE: v = EDGE_LIMIT_RATE; break;
		default: fail_open(a->e, a->l, a->aor, SK_EREDIS);
		}
	}
	if (v != EDGE_LIMIT_OK) {
		/* One stable line for operators and fail2ban, like auth-failure. */
		sk_counter_inc(a->l->refused[v == EDGE_LIMIT_CONCURRENT ? 0 : 1]);
		SK_NOTICE("call-limit src=%s user=\"%s\" reason=%s limit=%lld", a->ip, a->aor,
			  v == EDGE_LIMIT_CONCURRENT ? "concurrent" : "rate",
			  (long long)(v == EDGE_LIMIT_CONCURRENT ? a->limit : a->rate));
	}
	a->cb(a->e, v, counted, a->arg);
	sk_deref(a);
}

int edge_limits_admit(struct edge *e, struct edge_stx *stx, edge_limits_cb *cb, void *arg)
{
	sip_t *sip = sip_object(edge_stx_msg(stx));
	struct edge_limits *l = e->limits;
	char kc[REGDATA_AOR_MAX + 128], kr[REGDATA_AOR_MAX + 128], lim[24], rate[24], max[24];
	const char *argv[6] = {kc, kr, NULL, lim, rate, max};
	struct admit *a;
	int err;

	if (unlimited(e) || !sip->sip_call_id || !sip->sip_from)
		return SK_ENOENT;
	a = sk_zalloc(sizeof(*a), admit_destroy);
	if (!a)
		return SK_ENOMEM; /* fail open without a word: the daemon has bigger trouble */
	if (aor_of(sip->sip_from->a_url, a->aor, sizeof(a->aor))) {
		sk_deref(a);
		return SK_ENOENT; /* not an AOR of ours: auth would not have let it here */
	}
	limits_for(e, strrchr(a->aor, '@') + 1, &a->limit, &a->rate);
	if (!a->limit && !a->rate) {
		sk_deref(a);
		return SK_ENOENT;
	}
	a->e = e;
	a->l = sk_ref(l);
	a->cb = cb;
	a->arg = arg;
	edge_addr_ip(&edge_stx_rx(stx)->src, a->ip, sizeof(a->ip));
	snprintf(lim, sizeof(lim), "%lld", (long long)a->limit);
	snprintf(rate, sizeof(rate), "%lld", (long long)a->rate);
	snprintf(max, sizeof(max), "%llu", (unsigned long long)e->conf->call_max_duration);
	argv[2] = sip->sip_call_id->i_id;
	err = regdata_key_calls(kc, sizeof(kc), e->cluster, a->aor);
	if (!err)
		err = regdata_key_cpm(kr, sizeof(kr), e->cluster, a->aor);
	if (!err)
		err = sk_redis_eval(l->admit, on_admit, a, 2, 6, argv, NULL);
	if (err) {
		fail_open(e, l, a->aor, err);
		sk_deref(a);
	}
	return err;
}

const char *edge_limits_reason(enum edge_limit_verdict v)
{
	return v == EDGE_LIMIT_RATE ? "Forbidden (call rate limit exceeded)"
				    : "Forbidden (too many concurrent calls)";
}

/* Removes Call-ID from the calls in progress of the account a URI names, when it is
 * ours and limited (otherwise it was never counted). Fire and forget: a ZREM that
 * is lost leaves the call counted until call_max_duration. */
static void release(struct edge *e, const url_t *u, const char *call_id)
{
	char aor[REGDATA_AOR_MAX], key[REGDATA_AOR_MAX + 128];
	int64_t limit, rate;

	if (unlimited(e) || !u || !edge_domain_local(e, u->url_host) ||
	    aor_of(u, aor, sizeof(aor)))
		return;
	limits_for(e, strrchr(aor, '@') + 1, &limit, &rate);
	if ((!limit && !rate) || regdata_key_calls(key, sizeof(key), e->cluster, aor))
		return;
	sk_redis_cmdf(e->redis, NULL, NULL, "ZREM %s %s", key, call_id);
}

void edge_limits_call_end(struct edge *e, struct edge_stx *stx)
{
	sip_t *sip = sip_object(edge_stx_msg(stx));

	if (sip->sip_call_id && sip->sip_from)
		release(e, sip->sip_from->a_url, sip->sip_call_id->i_id);
}

/* Either side may hang up: the caller's BYE has its AOR in From, the callee's in To;
 * the other ZREM is a no-op (the callee's set does not hold this Call-ID). Every
 * edge the BYE enters does it (dialogs are not pinned), harmlessly twice. */
void edge_limits_bye(struct edge *e, sip_t *sip)
{
	if (sip->sip_request->rq_method != sip_method_bye || !sip->sip_to || !sip->sip_to->a_tag ||
	    !sip->sip_from || !sip->sip_call_id)
		return;
	release(e, sip->sip_from->a_url, sip->sip_call_id->i_id);
	release(e, sip->sip_to->a_url, sip->sip_call_id->i_id);
}

/* "123" as a limit, else -1 (no override). */
static int64_t parse_limit(const struct redisReply *v)
{
	char buf[24], *end;
	long long n;

	if (v->type != REDIS_REPLY_STRING || !v->len || v->len >= sizeof(buf))
		return -1;
	memcpy(buf, v->str, v->len);
	buf[v->len] = '\0';
	errno = 0;
	n = strtoll(buf, &end, 10);
	return errno || *end || n < 0 ? -1 : n;
}

void edge_limits_overrides(struct edge *e, int err, const struct redisReply *r)
{
	struct edge_limits *l = e->limits;
	struct override *ov;
	size_t n = 0;

	if (!l || err || !r || r->type != REDIS_REPLY_ARRAY)
		return; /* keep the last known values while Redis is away */
	ov = calloc(r->elements / 2 + 1, sizeof(*ov));
	if (!ov)
		return;
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const struct redisReply *f = r->element[i];
		const char *colon;
		size_t dl, k;
		int64_t v = parse_limit(r->element[i + 1]);
		bool is_limit;

		if (f->type != REDIS_REPLY_STRING || v < 0 ||
		    !(colon = memrchr(f->str, ':', f->len)))
			continue;
		dl = (size_t)(colon - f->str);
		if (f->len - dl - 1 == 10 && !memcmp(colon + 1, "call_limit", 10))
			is_limit = true;
		else if (f->len - dl - 1 == 9 && !memcmp(colon + 1, "call_rate", 9))
			is_limit = false;
		else
			continue;
		for (k = 0; k < n; k++)
			if (strlen(ov[k].domain) == dl && !memcmp(ov[k].domain, f->str, dl))
				break;
		if (k == n) {
			if (!(ov[n].domain = strndup(f->str, dl)))
				continue;
			ov[n].limit = ov[n].rate = -1;
			n++;
		}
		if (is_limit)
			ov[k].limit = v;
		else
			ov[k].rate = v;
	}
	if (n != l->nov)
		SK_INFO("call limit overrides for %zu domain(s)", n);
	overrides_free(l->ov, l->nov);
	l->ov = ov;
	l->nov = n;
}
