/* Bus benchmark: request/reply between two processes over ipc.
 *
 * Skein's bus (protobuf envelope, role choice, deadlines, libuv) is measured against
 * the reference of the same run: bare nanomsg PUSH/PULL ping-pong between two
 * processes with the same number in flight and no envelope. Figures:
 *   - round trips/s with 64 in flight and with 1 in flight (both sides);
 *   - p50/p99 latency at a fixed 10,000 requests/s.
 * Every phase is bounded in time. Output: a table on stdout and JSON (--json FILE). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>
#include "skein/sk_bus.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"

static char dir[256], srv_addr[300], cli_addr[300], raw_a[300], raw_b[300];

/* ---- the Skein server process ---- */

static void on_ping(struct sk_bus_req *req, const Skein__Bus__V1__Envelope *env, void *arg)
{
	Skein__Bus__V1__Envelope rep = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Bus__V1__Pong pong = SKEIN__BUS__V1__PONG__INIT;

	(void)arg;
	pong.node = "srv/bench";
	if (env->ping)
		pong.payload = env->ping->payload;
	rep.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_PONG;
	rep.pong = &pong;
	sk_bus_reply(req, 0, &rep);
}

static void on_term(uv_signal_t *s, int sig)
{
	(void)sig;
	sk_bus_close(s->data);
	uv_close((uv_handle_t *)s, NULL);
}

static int skein_server(void)
{
	struct sk_bus_opts o = {.id = "srv/bench", .role = "bench", .datacenter = "dc1",
				.listen = srv_addr, .deadline_ms = 2000};
	struct sk_bus *b;
	uv_signal_t sig;
	uv_loop_t *loop = uv_default_loop();

	if (sk_bus_alloc(&b, loop, &o))
		return 1;
	sk_bus_on_request(b, SKEIN__BUS__V1__ENVELOPE__BODY_PING, on_ping, NULL);
	uv_signal_init(loop, &sig);
	sig.data = b;
	uv_signal_start(&sig, on_term, SIGTERM);
	uv_run(loop, UV_RUN_DEFAULT);
	sk_deref(b);
	return 0;
}

/* ---- the Skein client ---- */

struct run {
	struct sk_bus *b;
	uv_loop_t *loop;
	uv_timer_t timer;
	long inflight_max, rate; /* rate 0: closed loop */
	uint64_t t0, warm, dur;  /* ms */
	long inflight, sent, done, errors, measured;
	uint64_t measure_start;
	double *lat;
	size_t nlat, caplat;
	bool stop;
};

static void issue(struct run *r);

static void on_reply(int err, const Skein__Bus__V1__Envelope *env, void *arg)
{
	struct run *r = *(struct run **)arg;
	uint64_t t0 = ((uint64_t *)arg)[1];
	uint64_t now = uv_now(r->loop);

	(void)env;
	free(arg);
	r->inflight--;
	r->done++;
	if (err)
		r->errors++;
	if (now - r->t0 >= r->warm && !err) {
		r->measured++;
		if (r->nlat < r->caplat)
			r->lat[r->nlat++] = (double)(uv_hrtime() - t0) / 1e3; /* us */
	}
	if (!r->rate)
		issue(r);
}

static void issue(struct run *r)
{
	while (!r->stop && r->inflight < r->inflight_max) {
		Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
		Skein__Bus__V1__Ping ping = SKEIN__BUS__V1__PING__INIT;
		uint8_t payload[32] = {0};
		uint64_t *ctx = malloc(2 * sizeof(uint64_t));

		ping.payload.data = payload;
		ping.payload.len = sizeof(payload);
		env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_PING;
		env.ping = &ping;
		*(struct run **)ctx = r;
		ctx[1] = uv_hrtime();
		if (sk_bus_request(r->b, "bench", &env, 2000, 0, on_reply, ctx)) {
			free(ctx);
			r->errors++;
			return;
		}
		r->inflight++;
		r->sent++;
		if (r->rate)
			return;
	}
}

static void tick(uv_timer_t *t)
{
	struct run *r = t->data;
	uint64_t now = uv_now(r->loop);

	if (now - r->t0 >= r->warm + r->dur) {
		r->stop = true;
		if (!r->inflight)
			uv_timer_stop(t);
		return;
	}
	if (now - r->t0 >= r->warm && !r->measure_start)
		r->measure_start = now;
	if (r->rate) {
		/* Open loop: send what is due by now, whatever is in flight. */
		uint64_t due = (uv_hrtime() / 1000000 - r->t0) * (uint64_t)r->rate / 1000;

		while ((uint64_t)r->sent < due && r->inflight < r->inflight_max)
			issue(r);
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct result {
	double rps, p50, p99;
	long errors;
};

static struct result skein_phase(struct sk_bus *b, long inflight, long rate, uint64_t dur_ms)
{
	struct run r = {0};
	struct result res = {0};

	r.b = b;
	r.loop = uv_default_loop();
	r.inflight_max = inflight;
	r.rate = rate;
	r.warm = 300;
	r.dur = dur_ms;
	r.caplat = 4000000;
	r.lat = malloc(r.caplat * sizeof(double));
	uv_update_time(r.loop);
	r.t0 = uv_now(r.loop);
	uv_timer_init(r.loop, &r.timer);
	r.timer.data = &r;
	uv_timer_start(&r.timer, tick, 0, rate ? 1 : 10);
	if (!rate)
		issue(&r);
	while (!(r.stop && !r.inflight))
		uv_run(r.loop, UV_RUN_ONCE);
	uv_timer_stop(&r.timer);
	uv_close((uv_handle_t *)&r.timer, NULL);
	uv_run(r.loop, UV_RUN_NOWAIT);
	res.rps = (double)r.measured / ((double)(uv_now(r.loop) - r.measure_start) / 1000.0);
	qsort(r.lat, r.nlat, sizeof(double), cmp_d);
	if (r.nlat) {
		res.p50 = r.lat[r.nlat / 2];
		res.p99 = r.lat[(size_t)((double)r.nlat * 0.99)];
	}
	res.errors = r.errors;
	free(r.lat);
	return res;
}

/* ---- the reference: bare nanomsg ---- */

static uint64_t now_us(void)
{
	return uv_hrtime() / 1000;
}

static int raw_server(void)
{
	int in = nn_socket(AF_SP, NN_PULL), out = nn_socket(AF_SP, NN_PUSH);
	char buf[256];

	nn_bind(in, raw_a);
	nn_connect(out, raw_b);
	for (;;) {
		int n = nn_recv(in, buf, sizeof(buf), 0);

		if (n < 0)
			break;
		if (n == 1 && buf[0] == 'q')
			break;
		nn_send(out, buf, (size_t)n, 0);
	}
	nn_close(in);
	nn_close(out);
	return 0;
}

static double raw_client(long inflight, uint64_t dur_ms)
{
	int out = nn_socket(AF_SP, NN_PUSH), in = nn_socket(AF_SP, NN_PULL), tmo = 2000;
	char msg[64] = {0}, buf[256];
	uint64_t t0, end;
	long done = 0;

	nn_bind(in, raw_b);
	nn_connect(out, raw_a);
	nn_setsockopt(in, NN_SOL_SOCKET, NN_RCVTIMEO, &tmo, sizeof(tmo));
	usleep(200000); /* both connections up before timing */
	for (long i = 0; i < inflight; i++)
		nn_send(out, msg, sizeof(msg), 0);
	t0 = now_us();
	end = t0 + dur_ms * 1000;
	while (now_us() < end) {
		if (nn_recv(in, buf, sizeof(buf), 0) < 0)
			break;
		done++;
		nn_send(out, msg, sizeof(msg), 0);
	}
	for (long i = 0; i < inflight; i++)
		nn_recv(in, buf, sizeof(buf), 0);
	nn_send(out, "q", 1, 0);
	usleep(50000);
	nn_close(in);
	nn_close(out);
	return (double)done / ((double)(now_us() - t0) / 1e6);
}

static pid_t spawn(int (*fn)(void))
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(fn());
	return pid;
}

int main(int argc, char **argv)
{
	const char *json = NULL;
	uint64_t dur = 3000;
	struct sk_bus_opts o = {.id = "cli/bench", .role = "bench-client", .datacenter = "dc1",
				.deadline_ms = 2000};
	struct result r64, r1, rlat;
	double raw64, raw1;
	struct sk_bus *b;
	pid_t srv, raw;
	FILE *f;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json = argv[++i];
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			dur = strtoull(argv[++i], NULL, 10) * 1000;
		else {
			fprintf(stderr, "usage: bus_bench [--seconds N] [--json FILE]\n");
			return 2;
		}
	}
	snprintf(dir, sizeof(dir), "/tmp/skein-bench-%d", (int)getpid());
	mkdir(dir, 0700);
	snprintf(srv_addr, sizeof(srv_addr), "ipc://%s/srv.bus", dir);
	snprintf(cli_addr, sizeof(cli_addr), "ipc://%s/cli.bus", dir);
	snprintf(raw_a, sizeof(raw_a), "ipc://%s/raw-a", dir);
	snprintf(raw_b, sizeof(raw_b), "ipc://%s/raw-b", dir);
	sk_log_levels_set("warn", NULL);

	/* Reference first, then Skein: each pair of processes alone on the machine. */
	raw = spawn(raw_server);
	raw64 = raw_client(64, dur);
	waitpid(raw, NULL, 0);
	raw = spawn(raw_server);
	raw1 = raw_client(1, dur);
	waitpid(raw, NULL, 0);

	srv = spawn(skein_server);
	o.listen = cli_addr;
	if (sk_bus_alloc(&b, uv_default_loop(), &o)) {
		fprintf(stderr, "bus_bench: cannot bind %s\n", cli_addr);
		kill(srv, SIGTERM);
		return 1;
	}
	sk_bus_peer_set(b, "srv/bench", "bench", "dc1", srv_addr, false, NULL, 0);
	usleep(200000);
	skein_phase(b, 8, 0, 300); /* connect and warm up */
	r64 = skein_phase(b, 64, 0, dur);
	r1 = skein_phase(b, 1, 0, dur);
	rlat = skein_phase(b, 1000, 10000, dur);
	sk_bus_close(b);
	uv_run(uv_default_loop(), UV_RUN_NOWAIT);
	sk_deref(b);
	kill(srv, SIGTERM);
	waitpid(srv, NULL, 0);

	printf("%-44s %12s %12s %7s %s\n", "metric", "skein", "reference", "ratio", "unit");
	printf("%-44s %12.0f %12.0f %7.2f %s\n", "bus round trips, 64 in flight", r64.rps, raw64,
	       r64.rps / raw64, "req/s");
	printf("%-44s %12.0f %12.0f %7.2f %s\n", "bus round trips, 1 in flight", r1.rps, raw1,
	       r1.rps / raw1, "req/s");
	printf("%-44s %12.1f %12s %7s %s\n", "bus latency p50 at 10,000 req/s", rlat.p50, "-", "-", "us");
	printf("%-44s %12.1f %12s %7s %s\n", "bus latency p99 at 10,000 req/s", rlat.p99, "-", "-", "us");
	printf("(reference: bare nanomsg PUSH/PULL ping-pong, same processes layout, no envelope;"
	       " errors: %ld/%ld/%ld)\n", r64.errors, r1.errors, rlat.errors);
	if (json && (f = fopen(json, "w"))) {
		fprintf(f,
			"{\"benchmark\":\"bus\",\"results\":["
			"{\"metric\":\"bus_rtt_64_inflight\",\"skein\":%.0f,\"reference\":%.0f,\"ratio\":%.3f,\"unit\":\"req/s\"},"
			"{\"metric\":\"bus_rtt_1_inflight\",\"skein\":%.0f,\"reference\":%.0f,\"ratio\":%.3f,\"unit\":\"req/s\"},"
			"{\"metric\":\"bus_latency_p50_at_10k\",\"skein\":%.1f,\"reference\":null,\"ratio\":null,\"unit\":\"us\"},"
			"{\"metric\":\"bus_latency_p99_at_10k\",\"skein\":%.1f,\"reference\":null,\"ratio\":null,\"unit\":\"us\"}],"
			"\"errors\":%ld}\n",
			r64.rps, raw64, r64.rps / raw64, r1.rps, raw1, r1.rps / raw1, rlat.p50, rlat.p99,
			r64.errors + r1.errors + rlat.errors);
		fclose(f);
	}
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			return 1;
	}
	return r64.errors + r1.errors + rlat.errors ? 1 : 0;
}
