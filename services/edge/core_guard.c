/* core_guard: the edge's protection policy, on guard.h's tables (issue 5).
 *
 * In order, for what reaches the edge:
 * 1. admission (transport, before parsing): a banned source is dropped without a
 *    word — datagrams ignored, connections closed at accept;
 * 2. every parsed request: a User-Agent from scanner_user_agents is dropped silently
 *    (and its source banned when scanner_ban); then the per-source token bucket
 *    (rate_limit/s, rate_burst): over it the request gets a stateless 503 +
 *    Retry-After — only the first 10 in a row, then silence — and a source that keeps
 *    going (flood_ban_after refusals, each within 10 s of the last) is banned;
 * 3. every failed digest authentication (core_auth.c) is counted in Redis per source
 *    and per user over auth_fail_window: auth_fail_source failures ban the source;
 *    once a user has auth_fail_user failures, every further failing source is banned
 *    (guessing one password from many addresses).
 * Sources in trusted_networks skip 1-3. Bans live in Redis (regdata_ban.h) and are
 * mirrored here by polling every 250 ms, so a ban placed by any edge or by
 * `skeinctl ban add` holds on every edge within that time. */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"
#include "skein/sk_sys.h"
#include "core.h"
#include "guard.h"
#include "regdata.h"
#include "regdata_ban.h"
#include "sipmsg.h"

SK_LOG_MODULE("guard");

#define SYNC_MS	       250
#define BUCKETS	       65536 /* sources tracked at once (half of the table) */
#define SHED_REPLIES   10    /* 503s in a row to one source before silence */

/* KEYS counter. ARGV window_ms. The count in the window (fixed window from the
 * first failure). */
static const char incr_lua[] =
	"local n = redis.call('INCR', KEYS[1])\n"
	"if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end\n"
	"return n\n";

enum { R_SCANNER, R_RATE, R_OVERLOAD, R_MAX_ };
enum { B_FLOOD, B_AUTH, B_SCANNER, B_MAX_ };
static const char *const refused_names[R_MAX_] = {"scanner", "rate", "overload"};
static const char *const ban_names[B_MAX_] = {"flood", "auth-failures", "scanner"};

struct edge_guard {
	struct edge *e;
	struct guard_nets *trusted;
	struct guard_words *scanners;
	struct guard_buckets *buckets;
	struct guard_bans *bans;
	struct sk_redis_script *s_add, *s_sync, *s_incr;
	uv_timer_t *timer;
	char gen[32]; /* ban set generation last loaded */
	bool syncing, stopped;
	struct sk_counter *refused[R_MAX_], *placed[B_MAX_];
};

static void guard_destroy(void *p)
{
	struct edge_guard *g = p;

	sk_deref(g->trusted);
	sk_deref(g->scanners);
	sk_deref(g->buckets);
	sk_deref(g->bans);
}

static bool trusted(const struct edge_guard *g, const struct guard_ip *ip)
{
	return guard_nets_match(g->trusted, ip);
}

/* ---- bans ---- */

static void on_ban_added(int err, struct redisReply *r, void *arg)
{
	(void)r;
	if (err)
		SK_WARN("ban not stored in Redis (this edge applies it): %s", sk_strerror(err));
	sk_deref(arg);
}

/* Bans ip for ban_time on this edge at once and on the others through Redis. */
static void ban(struct edge_guard *g, const struct guard_ip *ip, int why, const char *detail)
{
	struct edge *e = g->e;
	uint64_t now = uv_now(e->loop);
	char text[64], k[3][256], ttl[24];

	if (trusted(g, ip) || guard_bans_hit(g->bans, ip, now))
		return;
	guard_bans_add(g->bans, ip, now + e->conf->ban_time);
	sk_counter_inc(g->placed[why]);
	guard_ip_str(ip, text, sizeof(text));
	SK_NOTICE("ban src=%s reason=%s for=%llus by=%s%s%s", text, ban_names[why],
		  (unsigned long long)(e->conf->ban_time / 1000), e->member, detail ? " " : "",
		  detail ? detail : "");
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)e->conf->ban_time);
	if (regdata_key_bans(k[0], sizeof(k[0]), e->cluster, "set") ||
	    regdata_key_bans(k[1], sizeof(k[1]), e->cluster, "info") ||
	    regdata_key_bans(k[2], sizeof(k[2]), e->cluster, "gen"))
		return;
	const char *argv[7] = {k[0], k[1], k[2], text, ttl, ban_names[why], e->member};
	if (sk_redis_eval(g->s_add, on_ban_added, sk_ref(g), 3, 7, argv, NULL))
		sk_deref(g);
}

static void on_sync(int err, struct redisReply *r, void *arg)
{
	struct edge_guard *g = arg;
	struct guard_ban *v = NULL;
	size_t n = 0;
	uint64_t now = uv_now(g->e->loop);
	long long rnow;

	g->syncing = false;
	if (g->stopped || err || !r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING)
		goto out; /* keep what we have while Redis is away */
	if (r->elements == 1)
		goto out; /* unchanged */
	if (r->elements != 3 || r->element[1]->type != REDIS_REPLY_INTEGER ||
	    r->element[2]->type != REDIS_REPLY_ARRAY)
		goto out;
	rnow = r->element[1]->integer;
	const struct redisReply *l = r->element[2];
	v = calloc(l->elements / 2 + 1, sizeof(*v));
	if (!v)
		goto out;
	for (size_t i = 0; i + 1 < l->elements; i += 2) {
		if (l->element[i]->type != REDIS_REPLY_STRING ||
		    l->element[i + 1]->type != REDIS_REPLY_STRING ||
		    !guard_ip_parse(&v[n].ip, l->element[i]->str))
			continue;
		long long end = strtoll(l->element[i + 1]->str, NULL, 10);
		/* their clock to ours: only the time left matters */
		v[n].until_ms = now + (uint64_t)(end > rnow ? end - rnow : 0);
		n++;
	}
	if (guard_bans_set(g->bans, v, n) == 0) {
		snprintf(g->gen, sizeof(g->gen), "%.*s", (int)r->element[0]->len,
			 r->element[0]->str);
		SK_DEBUG("ban set generation %s: %zu ban(s)", g->gen, n);
	}
out:
	free(v);
	sk_deref(g);
}

static void sync_tick(uv_timer_t *t)
{
	struct edge_guard *g = t->data;
	struct edge *e = g->e;
	char k[3][256];

	if (g->syncing || !sk_redis_ready(e->redis))
		return;
	if (regdata_key_bans(k[0], sizeof(k[0]), e->cluster, "set") ||
	    regdata_key_bans(k[1], sizeof(k[1]), e->cluster, "info") ||
	    regdata_key_bans(k[2], sizeof(k[2]), e->cluster, "gen"))
		return;
	const char *argv[4] = {k[0], k[1], k[2], g->gen};
	if (sk_redis_eval(g->s_sync, on_sync, sk_ref(g), 3, 4, argv, NULL) == 0)
		g->syncing = true;
	else
		sk_deref(g);
}

bool edge_guard_trusted(struct edge *e, const struct edge_addr *src)
{
	struct guard_ip ip;

	return e->guard && guard_ip_from_sa(&ip, &src->u.sa) && trusted(e->guard, &ip);
}

bool edge_guard_admit(const struct edge_addr *src, enum edge_proto p, void *arg)
{
	struct edge *e = arg;
	struct edge_guard *g = e->guard;
	struct guard_ip ip;

	(void)p;
	if (!g || !guard_ip_from_sa(&ip, &src->u.sa))
		return true;
	return !guard_bans_hit(g->bans, &ip, uv_now(e->loop)) || trusted(g, &ip);
}

/* ---- requests ---- */

static void shed(struct edge *e, const struct edge_rx *rx, msg_t *msg)
{
	struct sk_buf b;
	char extra[48], tag[EDGE_TAG_SIZE];

	edge_tag_new(tag);
	snprintf(extra, sizeof(extra), "Retry-After: %llu\r\n",
		 (unsigned long long)(e->conf->retry_after / 1000));
	sk_buf_init(&b);
	if (edge_response_build(&b, msg, 503, "Service Unavailable (rate limit)", tag, extra,
				e->conf->server[0] ? e->conf->server : NULL, NULL, NULL, 0) == 0 &&
	    edge_tp_send(e->tp, rx->proto, &rx->src, rx->flow, NULL, b.data, b.len, 0) == 0)
		edge_count_resp(e, 503);
	sk_buf_release(&b);
}

enum edge_guard_verdict edge_guard_request(struct edge *e, const struct edge_rx *rx,
					   msg_t *msg)
{
	struct edge_guard *g = e->guard;
	sip_t *sip = sip_object(msg);
	struct guard_ip ip;
	const char *w;
	uint64_t over;
	const struct edge_conf *c = e->conf;

	if (!g || !guard_ip_from_sa(&ip, &rx->src.u.sa) || trusted(g, &ip))
		return EDGE_GUARD_PASS;
	if (g->scanners && sip->sip_user_agent &&
	    (w = guard_words_match(g->scanners, sip->sip_user_agent->g_string))) {
		sk_counter_inc(g->refused[R_SCANNER]);
		if (c->scanner_ban) {
			char d[96];

			snprintf(d, sizeof(d), "user-agent=\"%s\"", w);
			ban(g, &ip, B_SCANNER, d);
		}
		return EDGE_GUARD_DROP;
	}
	if (c->rate_limit <= 0)
		return EDGE_GUARD_PASS;
	if (guard_buckets_take(g->buckets, &ip, uv_hrtime(), (double)c->rate_limit,
			       (double)c->rate_burst, &over) != GUARD_EMPTY)
		return EDGE_GUARD_PASS;
	sk_counter_inc(g->refused[R_RATE]);
	if (c->flood_ban_after > 0 && over >= (uint64_t)c->flood_ban_after) {
		char d[64];

		snprintf(d, sizeof(d), "refused=%llu", (unsigned long long)over);
		ban(g, &ip, B_FLOOD, d);
		return EDGE_GUARD_DROP;
	}
	if (over > SHED_REPLIES || sip->sip_request->rq_method == sip_method_ack)
		return EDGE_GUARD_DROP;
	shed(e, rx, msg);
	return EDGE_GUARD_DROP;
}

bool edge_guard_overloaded(struct edge *e)
{
	int64_t max = e->conf->max_transactions;

	if (max <= 0 || edge_txl_pending(e->txl) <= (size_t)max)
		return false;
	if (e->guard)
		sk_counter_inc(e->guard->refused[R_OVERLOAD]);
	return true;
}

/* ---- authentication failures ---- */

struct fail {
	struct edge_guard *g;
	struct guard_ip ip;
	bool user; /* the per-user counter */
	char aor[REGDATA_AOR_MAX + 1];
};

static void fail_destroy(void *p)
{
	sk_deref(((struct fail *)p)->g);
}

static void on_count(int err, struct redisReply *r, void *arg)
{
	struct fail *f = arg;
	const struct edge_conf *c = f->g->e->conf;
	char d[REGDATA_AOR_MAX + 48];

	if (!err && r && r->type == REDIS_REPLY_INTEGER && !f->g->stopped) {
		if (!f->user && c->auth_fail_source > 0 && r->integer >= c->auth_fail_source) {
			snprintf(d, sizeof(d), "failures=%lld", r->integer);
			ban(f->g, &f->ip, B_AUTH, d);
		} else if (f->user && c->auth_fail_user > 0 && r->integer > c->auth_fail_user) {
			snprintf(d, sizeof(d), "user=\"%s\" user-failures=%lld", f->aor,
				 r->integer);
			ban(f->g, &f->ip, B_AUTH, d);
		}
	}
	sk_deref(f);
}

static void count(struct edge_guard *g, const struct guard_ip *ip, const char *owner,
		  const char *aor)
{
	struct edge *e = g->e;
	char key[REGDATA_AOR_MAX + 128], win[24];
	struct fail *f;

	if (sk_redis_key(key, sizeof(key), e->cluster, owner, "authfail"))
		return;
	f = sk_zalloc(sizeof(*f), fail_destroy);
	if (!f)
		return;
	f->g = sk_ref(g);
	f->ip = *ip;
	f->user = aor != NULL;
	snprintf(f->aor, sizeof(f->aor), "%s", aor ? aor : "");
	snprintf(win, sizeof(win), "%llu", (unsigned long long)e->conf->auth_fail_window);
	const char *argv[2] = {key, win};
	if (sk_redis_eval(g->s_incr, on_count, f, 1, 2, argv, NULL))
		sk_deref(f);
}

void edge_guard_auth_failed(struct edge *e, const struct edge_addr *src, const char *aor)
{
	struct edge_guard *g = e->guard;
	struct guard_ip ip;
	char text[64];

	if (!g || !guard_ip_from_sa(&ip, &src->u.sa) || trusted(g, &ip))
		return;
	if (e->conf->auth_fail_source > 0)
		count(g, &ip, guard_ip_str(&ip, text, sizeof(text)), NULL);
	/* aor is normalised by the caller, or NULL when the name was unusable */
	if (aor && e->conf->auth_fail_user > 0)
		count(g, &ip, aor, aor);
}

/* ---- life ---- */

static int lists(struct edge_guard *g, struct guard_nets **nets, struct guard_words **words)
{
	const char *why = "";

	if (guard_nets_parse(nets, g->e->conf->trusted_networks, &why)) {
		SK_ERROR("trusted_networks: %s", why);
		return SK_ECONFIG;
	}
	if (guard_words_parse(words, g->e->conf->scanner_user_agents)) {
		*nets = sk_deref(*nets);
		return SK_ENOMEM;
	}
	return 0;
}

static double gauge_bans(void *arg)
{
	struct edge *e = arg;

	return e->guard ? (double)guard_bans_count(e->guard->bans, uv_now(e->loop)) : 0;
}

static double gauge_sources(void *arg)
{
	struct edge *e = arg;

	return e->guard ? (double)guard_buckets_count(e->guard->buckets) : 0;
}

int edge_guard_start(struct edge *e)
{
	struct sk_metrics *mx = sk_daemon_metrics(e->d);
	struct edge_guard *g = sk_zalloc(sizeof(*g), guard_destroy);
	int err;

	if (!g)
		return SK_ENOMEM;
	g->e = e;
	e->guard = g;
	err = lists(g, &g->trusted, &g->scanners);
	if (!err)
		err = guard_buckets_alloc(&g->buckets, 2 * BUCKETS);
	if (!err)
		err = guard_bans_alloc(&g->bans);
	if (!err)
		err = sk_redis_script_add(e->redis, &g->s_add, regdata_ban_add_lua);
	if (!err)
		err = sk_redis_script_add(e->redis, &g->s_sync, regdata_ban_sync_lua);
	if (!err)
		err = sk_redis_script_add(e->redis, &g->s_incr, incr_lua);
	if (err)
		return err;
	for (int i = 0; i < R_MAX_; i++)
		g->refused[i] = sk_metrics_counter(mx, "skein_edge_guard_refused_total",
						   "Requests refused by the guard (scanner: dropped; "
						   "rate: 503 or dropped; overload: 503)",
						   "reason", refused_names[i]);
	for (int i = 0; i < B_MAX_; i++)
		g->placed[i] = sk_metrics_counter(mx, "skein_edge_bans_placed_total",
						  "Sources banned cluster-wide by this edge",
						  "reason", ban_names[i]);
	sk_metrics_gauge_fn(mx, "skein_edge_bans", "Bans in force (cluster-wide set)", NULL,
			    NULL, gauge_bans, e);
	sk_metrics_gauge_fn(mx, "skein_edge_guard_sources",
			    "Sources with a rate-limit bucket", NULL, NULL, gauge_sources, e);
	g->timer = sk_sys_timer_start(e->loop, sync_tick, g, 0, SYNC_MS);
	return g->timer ? 0 : SK_ENOMEM;
}

void edge_guard_reload(struct edge *e)
{
	struct edge_guard *g = e->guard;
	struct guard_nets *n;
	struct guard_words *w;

	if (!g || lists(g, &n, &w))
		return; /* the old lists stay */
	sk_deref(g->trusted);
	sk_deref(g->scanners);
	g->trusted = n;
	g->scanners = w;
}

void edge_guard_stop(struct edge *e)
{
	struct edge_guard *g = e->guard;

	if (!g)
		return;
	g->stopped = true;
	g->timer = sk_sys_timer_close(g->timer);
	e->guard = NULL;
	sk_deref(g);
}
