/* skeinctl ping: a stream of bus Ping requests to a role, as a cluster member would
 * send them (role choice, deadlines, retry on another node), with a summary of who
 * answered, what failed and how long it took. Used by operators to probe a role and
 * by the integration tests to drive the bus from outside the daemons. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "skein/sk_bus.h"
#include "skein/sk_redis.h"
#include "skein/sk_node.h"
#include "skein/sk_mem.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skeinctl.h"

SK_LOG_MODULE("ctl");

#define MAX_NODES 64
#define MAX_ERRS 16

struct ping {
	struct ctl *c;
	uv_loop_t *loop;
	struct sk_redis *redis;
	struct sk_bus *bus;
	struct sk_node *node;
	uv_timer_t timer;
	char *role, *listen;
	long count, concurrency, rate, sent, done, inflight, ok;
	uint64_t deadline, t0, t0ns, wait_until;
	bool started, finished;
	double *lat; /* ms, of the successful ones */
	struct {
		char id[128];
		long n;
	} by_node[MAX_NODES];
	int nnodes;
	struct {
		int code;
		long n;
	} errs[MAX_ERRS];
	int nerrs;
	uint8_t payload[64];
};

struct one {
	struct ping *p;
	uint64_t t0;
};

static void count_err(struct ping *p, int err)
{
	for (int i = 0; i < p->nerrs; i++)
		if (p->errs[i].code == err) {
			p->errs[i].n++;
			return;
		}
	if (p->nerrs < MAX_ERRS) {
		p->errs[p->nerrs].code = err;
		p->errs[p->nerrs++].n = 1;
	}
}

static void count_node(struct ping *p, const char *id)
{
	for (int i = 0; i < p->nnodes; i++)
		if (!strcmp(p->by_node[i].id, id)) {
			p->by_node[i].n++;
			return;
		}
	if (p->nnodes < MAX_NODES) {
		snprintf(p->by_node[p->nnodes].id, sizeof(p->by_node[0].id), "%s", id);
		p->by_node[p->nnodes++].n = 1;
	}
}

static void pump(struct ping *p);

static void on_reply(int err, const Skein__Bus__V1__Envelope *env, void *arg)
{
	struct one *o = arg;
	struct ping *p = o->p;

	p->inflight--;
	p->done++;
	if (err) {
		count_err(p, err);
	} else {
		p->lat[p->ok++] = (double)(uv_hrtime() - o->t0) / 1e6;
		count_node(p, env->body_case == SKEIN__BUS__V1__ENVELOPE__BODY_PONG && env->pong &&
				      env->pong->node ? env->pong->node : "?");
	}
	free(o);
	pump(p);
}

static void send_one(struct ping *p)
{
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Bus__V1__Ping ping = SKEIN__BUS__V1__PING__INIT;
	struct one *o = calloc(1, sizeof(*o));
	int err;

	p->sent++;
	if (!o) {
		p->done++;
		count_err(p, SK_ENOMEM);
		return;
	}
	o->p = p;
	o->t0 = uv_hrtime();
	ping.payload.data = p->payload;
	ping.payload.len = sizeof(p->payload);
	env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_PING;
	env.ping = &ping;
	err = sk_bus_request(p->bus, p->role, &env, p->deadline, SK_BUS_IDEMPOTENT, on_reply, o);
	if (err) {
		free(o);
		p->done++;
		count_err(p, err);
		return;
	}
	p->inflight++;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(struct ping *p, double q)
{
	size_t i;

	if (!p->ok)
		return 0;
	i = (size_t)(q * (double)(p->ok - 1) + 0.5);
	return p->lat[i];
}

static void report(struct ping *p)
{
	double secs = (double)(uv_hrtime() - p->t0ns) / 1e9;

	qsort(p->lat, (size_t)p->ok, sizeof(double), cmp_d);
	if (p->c->table) {
		printf("sent %ld, answered %ld, failed %ld in %.2f s\n", p->sent, p->ok,
		       p->done - p->ok, secs);
		for (int i = 0; i < p->nnodes; i++)
			printf("  %-32s %ld\n", p->by_node[i].id, p->by_node[i].n);
		for (int i = 0; i < p->nerrs; i++)
			printf("  %-32s %ld  (%s)\n", sk_err_name(p->errs[i].code), p->errs[i].n,
			       sk_strerror(p->errs[i].code));
		printf("latency ms: p50 %.3f p99 %.3f max %.3f\n", pct(p, 0.5), pct(p, 0.99),
		       pct(p, 1));
		return;
	}
	printf("{\"role\":\"%s\",\"sent\":%ld,\"ok\":%ld,\"failed\":%ld,\"seconds\":%.3f,"
	       "\"by_node\":{",
	       p->role, p->sent, p->ok, p->done - p->ok, secs);
	for (int i = 0; i < p->nnodes; i++)
		printf("%s\"%s\":%ld", i ? "," : "", p->by_node[i].id, p->by_node[i].n);
	printf("},\"errors\":{");
	for (int i = 0; i < p->nerrs; i++)
		printf("%s\"%s\":%ld", i ? "," : "", sk_err_name(p->errs[i].code), p->errs[i].n);
	printf("},\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}}\n", pct(p, 0.5),
	       pct(p, 0.99), pct(p, 1));
}

static void finish(struct ping *p)
{
	if (p->finished)
		return;
	p->finished = true;
	report(p);
	uv_close((uv_handle_t *)&p->timer, NULL);
	sk_node_close(p->node);
	sk_bus_close(p->bus);
	sk_redis_close(p->redis);
}

static void pump(struct ping *p)
{
	if (!p->started || p->finished)
		return;
	while (p->sent < p->count && p->inflight < p->concurrency) {
		if (p->rate) {
			uint64_t due = (uv_now(p->loop) - p->t0) * (uint64_t)p->rate / 1000 + 1;

			if ((uint64_t)p->sent >= due)
				break;
		}
		send_one(p);
	}
	if (p->done >= p->count)
		finish(p);
}

static void tick(uv_timer_t *t)
{
	struct ping *p = t->data;

	if (!p->started) {
		/* Wait for the table before the first request, not for ever. */
		if ((sk_node_synced(p->node) && sk_bus_peer_count(p->bus, p->role)) ||
		    uv_now(p->loop) >= p->wait_until) {
			p->started = true;
			p->t0 = uv_now(p->loop);
			p->t0ns = uv_hrtime();
		}
	}
	pump(p);
}

int cmd_ping(struct ctl *c)
{
	struct ping p = {0};
	struct sk_redis_opts ro = {0};
	struct sk_bus_opts bo = {0};
	struct sk_node_opts no = {0};
	char id[128];
	int err;

	p.c = c;
	p.count = 10;
	p.concurrency = 1;
	p.deadline = c->cluster.bus_deadline;
	for (int i = 0; i < c->nargs; i++) {
		const char *a = c->args[i];

		if (!strncmp(a, "--role=", 7))
			p.role = (char *)a + 7;
		else if (!strncmp(a, "--count=", 8))
			p.count = atol(a + 8);
		else if (!strncmp(a, "--concurrency=", 14))
			p.concurrency = atol(a + 14);
		else if (!strncmp(a, "--rate=", 7))
			p.rate = atol(a + 7);
		else if (!strncmp(a, "--deadline=", 11))
			p.deadline = strtoull(a + 11, NULL, 10);
		else {
			fprintf(stderr, "skeinctl ping: unknown option \"%s\"\n", a);
			return 2;
		}
	}
	if (!p.role || p.count <= 0 || p.concurrency <= 0 || p.rate < 0 || !p.deadline) {
		fprintf(stderr, "skeinctl ping: needs --role=ROLE (and positive --count, "
				"--concurrency, --deadline)\n");
		return 2;
	}
	p.lat = calloc((size_t)p.count, sizeof(double));
	if (!p.lat)
		return 1;
	p.loop = uv_default_loop();
	snprintf(id, sizeof(id), "skeinctl-%d/ctl", (int)getpid());
	p.listen = sk_strdupf("ipc:///tmp/skeinctl-%d.bus", (int)getpid());
	ro.addr = c->cluster.redis;
	ro.timeout_ms = c->cluster.redis_timeout;
	err = sk_redis_alloc(&p.redis, p.loop, &ro, NULL, NULL);
	bo.id = id;
	bo.role = "ctl";
	bo.datacenter = c->cluster.datacenter;
	bo.listen = p.listen;
	bo.deadline_ms = p.deadline;
	err = err ? err : sk_bus_alloc(&p.bus, p.loop, &bo);
	no.cluster = c->cluster.name;
	no.observe = true;
	no.heartbeat_ms = 200; /* a prober wants to see departures quickly */
	no.timeout_ms = c->cluster.node_timeout;
	err = err ? err : sk_node_alloc(&p.node, p.loop, p.redis, p.bus, &no, NULL, NULL);
	if (err) {
		fprintf(stderr, "skeinctl ping: %s\n", sk_strerror(err));
		sk_bus_close(p.bus);
		sk_redis_close(p.redis);
	} else {
		uv_timer_init(p.loop, &p.timer);
		p.timer.data = &p;
		p.wait_until = uv_now(p.loop) + 3000;
		uv_timer_start(&p.timer, tick, 0, 1);
	}
	uv_run(p.loop, UV_RUN_DEFAULT);
	sk_deref(p.node);
	sk_deref(p.bus);
	sk_deref(p.redis);
	unlink(p.listen + 6);
	sk_deref(p.listen);
	uv_loop_close(p.loop);
	free(p.lat);
	if (err)
		return 1;
	return p.ok == p.count ? 0 : 3;
}
