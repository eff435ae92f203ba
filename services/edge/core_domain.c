/* core_domain: the domains this cluster serves (a Redis set written by `skeinctl domain
 * add`) and their call limit overrides (`skeinctl domain set`), cached in memory and
 * refreshed every second, and "is this URI us"; in the same tick, a sample of Redis'
 * clock (regdata_clock) for the REGISTER refreshes and the routing lookups. */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"
#include "skein/sk_sys.h"
#include "core.h"
#include "sipmsg.h"
#include "regdata.h"
#include "regdata_lookup.h"

SK_LOG_MODULE("edge");

#define DOMAIN_REFRESH_MS 1000

static void domains_free(char **d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(d[i]);
	free(d);
}

static void on_members(int err, struct redisReply *r, void *arg)
{
	struct edge *e = arg;
	char **d;
	size_t n = 0;

	e->dom_pending = false;
	if (err || !r || r->type != REDIS_REPLY_ARRAY)
		return; /* keep the last known list while Redis is away */
	d = calloc(r->elements + 1, sizeof(*d));
	if (!d)
		return;
	for (size_t i = 0; i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    (d[n] = strndup(r->element[i]->str, r->element[i]->len)))
			n++;
	if (n != e->ndomains)
		SK_INFO("serving %zu domain(s)", n);
	domains_free(e->domains, e->ndomains);
	e->domains = d;
	e->ndomains = n;
}

static void on_limits(int err, struct redisReply *r, void *arg)
{
	edge_limits_overrides(arg, err, r);
}

static uint64_t mono_ms(void)
{
	return uv_hrtime() / 1000000;
}

static void on_time(int err, struct redisReply *r, void *arg)
{
	struct edge *e = arg;
	uint64_t ms;

	if (!err && e->rclock_sent && !regdata_time_ms(r, &ms))
		regdata_clock_sample(&e->rclock, e->rclock_sent, mono_ms(), ms);
	e->rclock_sent = 0;
}

uint64_t edge_redis_now(const struct edge *e)
{
	return regdata_clock_now(&e->rclock, mono_ms());
}

/* The per-domain call limits are read in the same tick, just before the set: replies
 * come in order, so a domain seen served has its overrides of that moment applied
 * too (the tests rely on it). */
static void refresh(uv_timer_t *t)
{
	struct edge *e = t->data;
	char key[256];

	if (e->dom_pending || !sk_redis_ready(e->redis))
		return;
	if (!e->rclock_sent) {
		uint64_t sent = mono_ms();

		if (sk_redis_cmdf(e->redis, on_time, e, "TIME") == 0)
			e->rclock_sent = sent ? sent : 1;
	}
	if (!regdata_key_limits(key, sizeof(key), e->cluster))
		sk_redis_cmdf(e->redis, on_limits, e, "HGETALL %s", key);
	if (regdata_key_domains(key, sizeof(key), e->cluster))
		return;
	if (sk_redis_cmdf(e->redis, on_members, e, "SMEMBERS %s", key) == 0)
		e->dom_pending = true;
}

int edge_domains_start(struct edge *e)
{
	int err = edge_limits_start(e);

	if (err)
		return err;
	e->dom_timer = sk_sys_timer_start(e->loop, refresh, e, 0, DOMAIN_REFRESH_MS);
	return e->dom_timer ? 0 : SK_ENOMEM;
}

void edge_domains_stop(struct edge *e)
{
	e->dom_timer = sk_sys_timer_close(e->dom_timer);
	edge_limits_stop(e);
	domains_free(e->domains, e->ndomains);
	e->domains = NULL;
	e->ndomains = 0;
}

bool edge_domain_local(const struct edge *e, const char *host)
{
	if (!host)
		return false;
	for (size_t i = 0; i < e->ndomains; i++)
		if (!strcasecmp(e->domains[i], host))
			return true;
	return false;
}

bool edge_uri_is_us(const struct edge *e, const url_t *u)
{
	unsigned port;
	bool tls = u->url_type == url_sips;
	char tp[8] = ""; /* left as is when the value does not fit: not "tls" */

	if (!u->url_host)
		return false;
	/* The cluster's Record-Route host names every edge (docs/edge.md). */
	if (e->conf->cluster_host[0]) {
		const char *ch = e->conf->cluster_host, *colon = strrchr(ch, ':');
		size_t hl = colon && !strchr(ch, ']') ? (size_t)(colon - ch) : strlen(ch);

		if (strlen(u->url_host) == hl && !strncasecmp(u->url_host, ch, hl) &&
		    (!u->url_port || !colon || !strcmp(u->url_port, colon + 1)))
			return true;
	}
	if (strcasecmp(u->url_host, e->host))
		return false;
	if (edge_uri_param(u->url_params, "transport", tp, sizeof(tp)) && !strcasecmp(tp, "tls"))
		tls = true;
	port = u->url_port && *u->url_port ? (unsigned)atoi(u->url_port) : (tls ? 5061 : 5060);
	for (int p = 0; p < EDGE_PROTO_MAX_; p++)
		if (e->port[p] && e->port[p] == port)
			return true;
	return false;
}
