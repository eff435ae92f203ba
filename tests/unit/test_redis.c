/* sk_redis against a real redis-server: replies, pipelining, errors, outages,
 * timeouts, scripts with NOSCRIPT recovery, keys, close with commands in flight. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <hiredis/hiredis.h>
#include <uv.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "skein/sk_metrics.h"
#include "skein/sk_redis.h"

#include "sk_test_redis.h"

#define RT(f) cmocka_unit_test_setup_teardown(f, case_setup, leak_check)

/* ---- a loop per case, with bounded waits ---- */

struct t {
	uv_loop_t loop;
	uv_timer_t guard;
	bool expired;
	struct sk_redis *r;
	int ups, downs;
};

#include "sk_test_loop.h"

static void state_cb(bool up, void *arg)
{
	struct t *t = arg;

	if (up)
		t->ups++;
	else
		t->downs++;
}

static void t_client(struct t *t, const char *addr, uint64_t timeout_ms)
{
	struct sk_redis_opts o = {0};

	o.addr = addr;
	o.timeout_ms = timeout_ms;
	o.backoff_min_ms = 50;
	o.backoff_max_ms = 200;
	assert_int_equal(sk_redis_alloc(&t->r, &t->loop, &o, state_cb, t), 0);
	assert_false(sk_redis_ready(t->r)); /* connects from the loop, never inside alloc */
}

static void t_close(struct t *t)
{
	sk_redis_close(t->r);
	t->r = sk_deref(t->r);
	t_done(t);
}

/* ---- replies ---- */

struct rep {
	int calls, err, type;
	long long integer;
	size_t len, elements;
	char str[256];
	char el[4][64];
	size_t ellen[4];
	long long elint[4];
};

static void copy_str(char *dst, size_t size, const char *src, size_t len)
{
	size_t n = len < size - 1 ? len : size - 1;

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void rep_cb(int err, struct redisReply *reply, void *arg)
{
	struct rep *p = arg;

	p->calls++;
	p->err = err;
	p->type = reply ? reply->type : -1;
	p->integer = reply ? reply->integer : 0;
	p->len = 0;
	p->elements = 0;
	p->str[0] = '\0';
	if (!reply)
		return;
	if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS ||
	    reply->type == REDIS_REPLY_ERROR) {
		p->len = reply->len;
		copy_str(p->str, sizeof(p->str), reply->str, reply->len);
	}
	if (reply->type == REDIS_REPLY_ARRAY) {
		p->elements = reply->elements;
		for (size_t i = 0; i < reply->elements && i < 4; i++) {
			redisReply *e = reply->element[i];

			p->elint[i] = e->integer;
			p->ellen[i] = e->type == REDIS_REPLY_STRING ? e->len : 0;
			if (e->type == REDIS_REPLY_STRING)
				copy_str(p->el[i], sizeof(p->el[i]), e->str, e->len);
		}
	}
}

static void cmd_wait(struct t *t, struct rep *p, int argc, const char **argv, const size_t *lens)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(sk_redis_cmd(t->r, rep_cb, p, argc, argv, lens), 0);
	WAIT_UNTIL(t, p->calls == 1, 3000);
}

static void t_connect(struct t *t, const char *addr, uint64_t timeout_ms)
{
	t_init(t);
	t_client(t, addr, timeout_ms);
	WAIT_UNTIL(t, t->ups == 1 && sk_redis_ready(t->r), 3000);
	assert_int_equal(t->downs, 0);
}

/* ---- cases ---- */

static void test_connect_ready(void **state)
{
	struct sk_redis_opts o = {0};
	struct sk_redis_stats st;
	struct sk_redis *bad = NULL;
	static const char *const bad_addrs[] = {"nohost",  ":6379",   "h:0",
						"h:70000", "h:6379x", "h:"};
	struct t t;

	(void)state;
	t_init(&t);
	for (size_t i = 0; i < sizeof(bad_addrs) / sizeof(bad_addrs[0]); i++) {
		o.addr = bad_addrs[i];
		assert_int_equal(sk_redis_alloc(&bad, &t.loop, &o, NULL, NULL), SK_EINVAL);
		assert_null(bad);
	}
	o.addr = NULL;
	assert_int_equal(sk_redis_alloc(&bad, &t.loop, &o, NULL, NULL), SK_EINVAL);

	t_client(&t, srv.addr, 1000);
	WAIT_UNTIL(&t, t.ups == 1, 3000);
	assert_true(sk_redis_ready(t.r));
	assert_int_equal(t.downs, 0);
	assert_int_equal(sk_redis_inflight(t.r), 0);
	sk_redis_stats(t.r, &st);
	assert_int_equal(st.reconnects, 1);
	assert_int_equal(st.timeouts, 0);
	/* An idle connection stays up (the health PING is answered). */
	t_run_for(&t, 300);
	assert_true(sk_redis_ready(t.r));
	assert_int_equal(t.ups, 1);
	assert_int_equal(t.downs, 0);
	t_close(&t);
	assert_int_equal(t.downs, 1);
}

static void test_unix_socket(void **state)
{
	char addr[PATH_MAX + 16];
	const char *av[] = {"PING"};
	struct rep p;
	struct t t;

	(void)state;
	snprintf(addr, sizeof(addr), "unix:%s", srv.sock);
	t_connect(&t, addr, 1000);
	cmd_wait(&t, &p, 1, av, NULL);
	assert_int_equal(p.err, 0);
	assert_string_equal(p.str, "PONG");
	t_close(&t);
}

static void test_set_get(void **state)
{
	const char *set[] = {"SET", "rt:k", "hello"};
	const char *get[] = {"GET", "rt:k"};
	const char *miss[] = {"GET", "rt:missing"};
	static const char bin[] = {'a', '\0', 'b', '\r', '\n', 'c'};
	const char *bset[] = {"SET", "rt:bin", bin};
	size_t bset_lens[] = {3, 6, sizeof(bin)};
	const char *bget[] = {"GET", "rt:bin"};
	struct rep p;
	struct t t;

	(void)state;
	t_connect(&t, srv.addr, 1000);
	cmd_wait(&t, &p, 3, set, NULL);
	assert_int_equal(p.err, 0);
	assert_int_equal(p.type, REDIS_REPLY_STATUS);
	assert_string_equal(p.str, "OK");
	cmd_wait(&t, &p, 2, get, NULL);
	assert_int_equal(p.err, 0);
	assert_int_equal(p.type, REDIS_REPLY_STRING);
	assert_string_equal(p.str, "hello");
	cmd_wait(&t, &p, 2, miss, NULL);
	assert_int_equal(p.err, 0);
	assert_int_equal(p.type, REDIS_REPLY_NIL);

	/* Binary safe: NUL and CRLF inside a value. */
	cmd_wait(&t, &p, 3, bset, bset_lens);
	assert_int_equal(p.err, 0);
	cmd_wait(&t, &p, 2, bget, NULL);
	assert_int_equal(p.err, 0);
	assert_int_equal(p.len, sizeof(bin));
	assert_memory_equal(p.str, bin, sizeof(bin));

	/* A command larger than the client's stack buffer (encoded on the heap). */
	{
		static char big[100000];
		const char *lset[] = {"SET", "rt:big", big};
		size_t llens[] = {3, 6, sizeof(big)};
		const char *lget[] = {"STRLEN", "rt:big"};

		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (char)('a' + i % 26);
		cmd_wait(&t, &p, 3, lset, llens);
		assert_int_equal(p.err, 0);
		cmd_wait(&t, &p, 2, lget, NULL);
		assert_int_equal(p.type, REDIS_REPLY_INTEGER);
		assert_int_equal(p.integer, sizeof(big));
	}

	/* printf style, %b for binary. */
	memset(&p, 0, sizeof(p));
	assert_int_equal(sk_redis_cmdf(t.r, rep_cb, &p, "SET rt:f %b", bin, sizeof(bin)), 0);
	WAIT_UNTIL(&t, p.calls == 1, 3000);
	assert_int_equal(p.err, 0);
	memset(&p, 0, sizeof(p));
	assert_int_equal(sk_redis_cmdf(t.r, rep_cb, &p, "STRLEN %s", "rt:f"), 0);
	WAIT_UNTIL(&t, p.calls == 1, 3000);
	assert_int_equal(p.type, REDIS_REPLY_INTEGER);
	assert_int_equal(p.integer, sizeof(bin));

	/* A NULL callback is allowed (fire and forget). */
	assert_int_equal(sk_redis_cmd(t.r, NULL, NULL, 2, get, NULL), 0);
	WAIT_UNTIL(&t, sk_redis_inflight(t.r) == 0, 3000);

	assert_int_equal(sk_redis_cmd(t.r, rep_cb, &p, 0, get, NULL), SK_EINVAL);
	assert_int_equal(sk_redis_cmd(t.r, rep_cb, &p, 1, NULL, NULL), SK_EINVAL);
	t_close(&t);
}

static void test_metrics(void **state)
{
	const char *ping[] = {"PING"};
	const char *bogus[] = {"NOSUCHCOMMAND"};
	struct sk_redis_opts o = {0};
	struct sk_metrics *m = NULL;
	struct sk_counter *commands, *errors, *connects;
	struct sk_gauge *up;
	struct sk_redis_stats st;
	struct rep p;
	struct t t;

	(void)state;
	assert_int_equal(sk_metrics_alloc(&m), 0);
	t_init(&t);
	o.addr = srv.addr;
	o.metrics = m;
	o.metrics_prefix = "rt";
	assert_int_equal(sk_redis_alloc(&t.r, &t.loop, &o, state_cb, &t), 0);
	/* Registering again returns the client's own series. */
	commands = sk_metrics_counter(m, "rt_redis_commands_total", "", NULL, NULL);
	errors = sk_metrics_counter(m, "rt_redis_errors_total", "", NULL, NULL);
	connects = sk_metrics_counter(m, "rt_redis_connects_total", "", NULL, NULL);
	up = sk_metrics_gauge(m, "rt_redis_up", "", NULL, NULL);
	assert_non_null(commands);
	assert_non_null(up);
	WAIT_UNTIL(&t, t.ups == 1, 3000);
	assert_true(sk_gauge_get(up) == 1);
	cmd_wait(&t, &p, 1, ping, NULL);
	cmd_wait(&t, &p, 1, bogus, NULL);
	memset(&p, 0, sizeof(p));
	assert_int_equal(sk_redis_cmdf(t.r, rep_cb, &p, "PING"), 0);
	WAIT_UNTIL(&t, p.calls == 1, 3000);
	sk_redis_stats(t.r, &st);
	assert_true(st.commands >= 3);
	assert_int_equal(sk_counter_get(commands), st.commands);
	assert_int_equal(sk_counter_get(errors), 1);
	assert_int_equal(sk_counter_get(connects), st.reconnects);
	t_close(&t);
	assert_true(sk_gauge_get(up) == 0);
	sk_deref(m);
}

#define NPIPE 2000

struct pipe_slot {
	int idx, calls, err;
	long long val;
	int *order;
};

static int pipe_next;

static void pipe_cb(int err, struct redisReply *reply, void *arg)
{
	struct pipe_slot *s = arg;

	s->calls++;
	s->err = err;
	s->val = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
	if (pipe_next++ != s->idx)
		(*s->order)++;
}

static void test_pipeline(void **state)
{
	const char *del[] = {"DEL", "rt:pipe"};
	const char *incr[] = {"INCR", "rt:pipe"};
	struct pipe_slot *slots = calloc(NPIPE, sizeof(*slots));
	struct sk_redis_stats st0, st1;
	int disorder = 0;
	struct rep p;
	struct t t;

	(void)state;
	assert_non_null(slots);
	t_connect(&t, srv.addr, 2000);
	cmd_wait(&t, &p, 2, del, NULL);
	sk_redis_stats(t.r, &st0);
	pipe_next = 0;
	for (int i = 0; i < NPIPE; i++) {
		slots[i].idx = i;
		slots[i].order = &disorder;
		assert_int_equal(sk_redis_cmd(t.r, pipe_cb, &slots[i], 2, incr, NULL), 0);
	}
	/* All in flight at once: nothing has been answered yet. */
	assert_int_equal(sk_redis_inflight(t.r), NPIPE);
	assert_int_equal(pipe_next, 0);
	WAIT_UNTIL(&t, pipe_next == NPIPE, 5000);
	assert_int_equal(disorder, 0);
	for (int i = 0; i < NPIPE; i++) {
		assert_int_equal(slots[i].calls, 1);
		assert_int_equal(slots[i].err, 0);
		assert_int_equal(slots[i].val, i + 1); /* answered in order */
	}
	assert_int_equal(sk_redis_inflight(t.r), 0);
	sk_redis_stats(t.r, &st1);
	assert_true(st1.commands - st0.commands >= NPIPE);
	assert_int_equal(st1.errors, st0.errors);
	free(slots);
	t_close(&t);
}

static void test_error_reply(void **state)
{
	const char *bogus[] = {"NOSUCHCOMMAND", "x"};
	const char *set[] = {"SET", "rt:str", "v"};
	const char *wrong[] = {"LPUSH", "rt:str", "x"};
	const char *ping[] = {"PING"};
	struct sk_redis_stats st;
	struct rep p;
	struct t t;

	(void)state;
	t_connect(&t, srv.addr, 1000);
	cmd_wait(&t, &p, 2, bogus, NULL);
	assert_int_equal(p.err, SK_EREDIS);
	assert_int_equal(p.type, REDIS_REPLY_ERROR);
	assert_memory_equal(p.str, "ERR", 3);
	cmd_wait(&t, &p, 3, set, NULL);
	assert_int_equal(p.err, 0);
	cmd_wait(&t, &p, 3, wrong, NULL);
	assert_int_equal(p.err, SK_EREDIS);
	assert_memory_equal(p.str, "WRONGTYPE", 9);
	sk_redis_stats(t.r, &st);
	assert_int_equal(st.errors, 2);
	/* An error reply is not a connection problem. */
	assert_true(sk_redis_ready(t.r));
	cmd_wait(&t, &p, 1, ping, NULL);
	assert_int_equal(p.err, 0);
	assert_int_equal(t.downs, 0);
	t_close(&t);
}

static void test_down_enotconn(void **state)
{
	char addr[64];
	const char *ping[] = {"PING"};
	struct sk_redis_script *s;
	struct sk_redis_stats st;
	struct rep p = {0};
	struct t t;

	(void)state;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port()); /* nobody listens */
	t_init(&t);
	t_client(&t, addr, 500);
	assert_int_equal(sk_redis_script_add(t.r, &s, "return 1"), 0);
	/* It keeps trying, with backoff (50, 100, 200, 200, ... ms): a refused connect
	 * fails at once rather than after the 500 ms connect timeout. */
	WAIT_UNTIL(&t, (sk_redis_stats(t.r, &st), st.reconnects >= 5), 2000);
	assert_false(sk_redis_ready(t.r));
	assert_int_equal(t.ups, 0);
	assert_int_equal(sk_redis_cmd(t.r, rep_cb, &p, 1, ping, NULL), SK_ENOTCONN);
	assert_int_equal(sk_redis_cmdf(t.r, rep_cb, &p, "PING"), SK_ENOTCONN);
	assert_int_equal(sk_redis_eval(s, rep_cb, &p, 0, 0, NULL, NULL), SK_ENOTCONN);
	t_run_for(&t, 150);
	assert_int_equal(p.calls, 0); /* an error at once means no callback */
	assert_int_equal(sk_redis_inflight(t.r), 0);
	t_close(&t);
	assert_int_equal(p.calls, 0);
}

struct killed {
	struct t *t;
	int calls, err, retry_err;
};

static void killed_cb(int err, struct redisReply *reply, void *arg)
{
	struct killed *k = arg;
	const char *ping[] = {"PING"};

	(void)reply;
	k->calls++;
	k->err = err;
	/* A command from inside the failure callback must fail cleanly too. */
	k->retry_err = sk_redis_cmd(k->t->r, NULL, NULL, 1, ping, NULL);
}

static int killed_calls(const struct killed *k, int n)
{
	int total = 0;

	for (int i = 0; i < n; i++)
		total += k[i].calls;
	return total;
}

static bool srv_blocked_clients(int n)
{
	redisReply *rep = srv_cmd("INFO clients");
	char want[32];
	bool ok;

	snprintf(want, sizeof(want), "blocked_clients:%d\r", n);
	ok = rep && rep->type == REDIS_REPLY_STRING && strstr(rep->str, want);
	if (rep)
		freeReplyObject(rep);
	return ok;
}

static void test_server_killed(void **state)
{
	const char *blpop[] = {"BLPOP", "rt:never", "0"};
	const char *get[] = {"GET", "rt:k"};
	const char *set[] = {"SET", "rt:k", "back"};
	struct killed k[11];
	struct rep p, late = {0};
	struct sk_redis_stats st;
	struct t t;

	(void)state;
	t_connect(&t, srv.addr, 5000); /* long timeout: the failure is the loss, not a timeout */
	memset(k, 0, sizeof(k));
	for (int i = 0; i < 11; i++)
		k[i].t = &t;
	/* One command the server holds (blocked), ten queued behind it. */
	assert_int_equal(sk_redis_cmd(t.r, killed_cb, &k[0], 3, blpop, NULL), 0);
	for (int i = 1; i < 11; i++)
		assert_int_equal(sk_redis_cmd(t.r, killed_cb, &k[i], 2, get, NULL), 0);
	WAIT_UNTIL(&t, srv_blocked_clients(1), 3000);
	assert_int_equal(sk_redis_inflight(t.r), 11);

	srv_kill();
	WAIT_UNTIL(&t, killed_calls(k, 11) == 11, 3000);
	for (int i = 0; i < 11; i++) {
		assert_int_equal(k[i].calls, 1);
		assert_int_equal(k[i].err, SK_ENOTCONN);
		assert_int_not_equal(k[i].retry_err, 0);
	}
	WAIT_UNTIL(&t, t.downs == 1, 3000);
	assert_false(sk_redis_ready(t.r));
	assert_int_equal(sk_redis_inflight(t.r), 0);
	/* Down: refused at once, no callback. */
	assert_int_equal(sk_redis_cmd(t.r, rep_cb, &late, 2, get, NULL), SK_ENOTCONN);
	t_run_for(&t, 300); /* a few reconnect attempts against nothing */
	assert_false(sk_redis_ready(t.r));
	assert_int_equal(t.ups, 1);
	assert_int_equal(sk_redis_cmd(t.r, rep_cb, &late, 2, get, NULL), SK_ENOTCONN);

	/* Same port again: the client comes back by itself. */
	assert_int_equal(srv_start(), 0);
	/* Within the backoff (200 ms), not the connect timeout (5 s): a refused
	 * connect is noticed at once. */
	WAIT_UNTIL(&t, t.ups == 2 && sk_redis_ready(t.r), 2000);
	cmd_wait(&t, &p, 3, set, NULL);
	assert_int_equal(p.err, 0);
	cmd_wait(&t, &p, 2, get, NULL);
	assert_string_equal(p.str, "back");
	sk_redis_stats(t.r, &st);
	assert_true(st.reconnects >= 2);
	assert_int_equal(late.calls, 0);
	t_close(&t);
	assert_int_equal(late.calls, 0);
}

/* Bytes the server has received but not read yet (from /proc/net/tcp). */
static unsigned long srv_unread(void)
{
	FILE *f = fopen("/proc/net/tcp", "r");
	char line[512];
	unsigned long total = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned int lport, st;
		unsigned long txq, rxq;

		if (sscanf(line, " %*d: %*8x:%x %*8x:%*x %x %lx:%lx", &lport, &st, &txq, &rxq) ==
			4 &&
		    (int)lport == srv.port && st == 1)
			total += rxq;
	}
	fclose(f);
	return total;
}

/* The server dies with our command unread: the kernel resets the connection. The
 * command fails with SK_ENOTCONN at once, not at its timeout. */
static void test_server_reset(void **state)
{
	const char *get[] = {"GET", "rt:k"};
	uint64_t t0;
	struct rep p = {0};
	struct t t;

	(void)state;
	t_connect(&t, srv.addr, 5000);
	srv_signal(SIGSTOP);
	assert_int_equal(sk_redis_cmd(t.r, rep_cb, &p, 2, get, NULL), 0);
	WAIT_UNTIL(&t, srv_unread() > 0, 3000);
	t0 = now_ms();
	srv_kill();
	WAIT_UNTIL(&t, p.calls == 1, 3000);
	assert_int_equal(p.err, SK_ENOTCONN);
	assert_true(now_ms() - t0 < 2000);
	WAIT_UNTIL(&t, t.downs == 1, 3000);
	assert_false(sk_redis_ready(t.r));
	assert_int_equal(srv_start(), 0);
	WAIT_UNTIL(&t, t.ups == 2, 2000);
	t_close(&t);
}

/* Send PING until one is answered (the server may need a moment after SIGCONT). */
struct probe {
	struct t *t;
	bool busy, ok;
	int fails;
};

static void probe_cb(int err, struct redisReply *reply, void *arg)
{
	struct probe *pr = arg;

	(void)reply;
	pr->busy = false;
	if (err)
		pr->fails++;
	else
		pr->ok = true;
}

static bool probe_step(struct probe *pr)
{
	const char *ping[] = {"PING"};

	if (!pr->ok && !pr->busy && sk_redis_ready(pr->t->r) &&
	    sk_redis_cmd(pr->t->r, probe_cb, pr, 1, ping, NULL) == 0)
		pr->busy = true;
	return pr->ok;
}

static void test_timeout_sigstop(void **state)
{
	const char *get[] = {"GET", "rt:k"};
	struct probe pr = {0};
	struct sk_redis_stats st;
	uint64_t t0, elapsed;
	struct rep p;
	struct t t;

	(void)state;
	t_connect(&t, srv.addr, 400);
	srv_signal(SIGSTOP);
	memset(&p, 0, sizeof(p));
	t0 = now_ms();
	assert_int_equal(sk_redis_cmd(t.r, rep_cb, &p, 2, get, NULL), 0);
	WAIT_UNTIL(&t, p.calls == 1, 3000);
	elapsed = now_ms() - t0;
	assert_int_equal(p.err, SK_ETIMEDOUT);
	assert_int_equal(p.type, -1);
	assert_true(elapsed >= 300);
	assert_true(elapsed <= 1500);
	sk_redis_stats(t.r, &st);
	assert_true(st.timeouts >= 1);
	assert_true(t.downs >= 1);
	assert_int_equal(sk_redis_inflight(t.r), 0);

	srv_signal(SIGCONT);
	pr.t = &t;
	WAIT_UNTIL(&t, probe_step(&pr), 5000);
	assert_true(sk_redis_ready(t.r));
	cmd_wait(&t, &p, 2, get, NULL);
	assert_int_equal(p.err, 0);
	t_close(&t);
}

/* A server that accepts TCP but answers nothing (stopped) is never "up": readiness
 * does not flap once per timeout. After SIGCONT the client comes up by itself. */
static void test_stopped_server_never_up(void **state)
{
	struct t t;

	(void)state;
	srv_signal(SIGSTOP);
	t_init(&t);
	t_client(&t, srv.addr, 200);
	t_run_for(&t, 1200); /* six timeouts: every connect completes, none answers */
	assert_int_equal(t.ups, 0);
	assert_false(sk_redis_ready(t.r));
	srv_signal(SIGCONT);
	WAIT_UNTIL(&t, t.ups == 1, 5000);
	assert_true(sk_redis_ready(t.r));
	t_close(&t);
}

static const char lua_echo[] = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}";
static const char lua_bin[] = "return ARGV[1]";
static const char lua_fail[] = "return redis.call('NOSUCHCOMMAND')";

static void eval_wait(struct t *t, struct rep *p, struct sk_redis_script *s, int nkeys, int argc,
		      const char **argv, const size_t *lens)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(sk_redis_eval(s, rep_cb, p, nkeys, argc, argv, lens), 0);
	WAIT_UNTIL(t, p->calls == 1, 3000);
}

static bool script_cached(const char *sha)
{
	redisReply *rep = srv_cmd("SCRIPT EXISTS %s", sha);
	bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
		  rep->element[0]->integer == 1;

	if (rep)
		freeReplyObject(rep);
	return ok;
}

static void test_scripts(void **state)
{
	const char *args[] = {"rt:key", "arg", "41"};
	static const char bin[] = {'x', '\0', 'y'};
	const char *bargs[] = {bin};
	size_t blens[] = {sizeof(bin)};
	struct sk_redis_script *echo, *binary, *failing;
	struct sk_redis_stats st;
	redisReply *rep;
	struct rep p;
	struct t t;

	(void)state;
	rep = srv_cmd("SCRIPT FLUSH");
	assert_non_null(rep);
	freeReplyObject(rep);

	t_init(&t);
	t_client(&t, srv.addr, 1000);
	/* Registered before the connection: loaded on connect. */
	assert_int_equal(sk_redis_script_add(t.r, &echo, lua_echo), 0);
	WAIT_UNTIL(&t, t.ups == 1, 3000);
	/* SHA1 of the text, as Redis names it. */
	rep = srv_cmd("SCRIPT LOAD %s", lua_echo);
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_STRING);
	assert_string_equal(sk_redis_script_sha(echo), rep->str);
	freeReplyObject(rep);

	eval_wait(&t, &p, echo, 1, 3, args, NULL);
	assert_int_equal(p.err, 0);
	assert_int_equal(p.type, REDIS_REPLY_ARRAY);
	assert_int_equal(p.elements, 3);
	assert_string_equal(p.el[0], "rt:key");
	assert_string_equal(p.el[1], "arg");
	assert_int_equal(p.elint[2], 42);

	/* Registered while connected; binary arguments. */
	assert_int_equal(sk_redis_script_add(t.r, &binary, lua_bin), 0);
	eval_wait(&t, &p, binary, 0, 1, bargs, blens);
	assert_int_equal(p.err, 0);
	assert_int_equal(p.len, sizeof(bin));
	assert_memory_equal(p.str, bin, sizeof(bin));
	sk_redis_stats(t.r, &st);
	assert_int_equal(st.script_reloads, 0);

	/* A script that fails is an error reply, not a reload. */
	assert_int_equal(sk_redis_script_add(t.r, &failing, lua_fail), 0);
	eval_wait(&t, &p, failing, 0, 0, NULL, NULL);
	assert_int_equal(p.err, SK_EREDIS);
	assert_int_equal(p.type, REDIS_REPLY_ERROR);

	assert_int_equal(sk_redis_eval(echo, rep_cb, &p, 4, 3, args, NULL), SK_EINVAL);
	assert_int_equal(sk_redis_eval(echo, rep_cb, &p, -1, 3, args, NULL), SK_EINVAL);
	assert_int_equal(sk_redis_eval(NULL, rep_cb, &p, 0, 0, NULL, NULL), SK_EINVAL);

	/* The server forgets its scripts: the next call still works (EVAL reloads). */
	assert_true(script_cached(sk_redis_script_sha(echo)));
	rep = srv_cmd("SCRIPT FLUSH");
	assert_non_null(rep);
	freeReplyObject(rep);
	assert_false(script_cached(sk_redis_script_sha(echo)));
	eval_wait(&t, &p, echo, 1, 3, args, NULL);
	assert_int_equal(p.err, 0);
	assert_int_equal(p.elements, 3);
	assert_int_equal(p.elint[2], 42);
	sk_redis_stats(t.r, &st);
	assert_int_equal(st.script_reloads, 1);
	assert_true(script_cached(sk_redis_script_sha(echo)));
	/* Cached again: no further reload. */
	eval_wait(&t, &p, echo, 1, 3, args, NULL);
	assert_int_equal(p.err, 0);
	sk_redis_stats(t.r, &st);
	assert_int_equal(st.script_reloads, 1);
	/* The binary one reloads with its arguments intact. */
	eval_wait(&t, &p, binary, 0, 1, bargs, blens);
	assert_int_equal(p.err, 0);
	assert_int_equal(p.len, sizeof(bin));
	assert_memory_equal(p.str, bin, sizeof(bin));
	sk_redis_stats(t.r, &st);
	assert_int_equal(st.script_reloads, 2);
	t_close(&t);
}

/* A client that calls a script as soon as it is connected (from the state callback)
 * finds it loaded, even on a fresh server. */
struct eager {
	struct t t;
	struct sk_redis_script *s;
	struct rep p;
	int evals;
};

static void eager_state(bool up, void *arg)
{
	struct eager *e = arg;
	const char *args[] = {"rt:key", "a", "1"};

	state_cb(up, &e->t);
	if (up && sk_redis_eval(e->s, rep_cb, &e->p, 1, 3, args, NULL) == 0)
		e->evals++;
}

static void test_script_on_connect(void **state)
{
	struct sk_redis_opts o = {0};
	struct sk_redis_stats st;
	struct eager e;

	(void)state;
	memset(&e, 0, sizeof(e));
	t_init(&e.t);
	o.addr = srv.addr;
	o.backoff_min_ms = 50;
	o.backoff_max_ms = 200;
	assert_int_equal(sk_redis_alloc(&e.t.r, &e.t.loop, &o, eager_state, &e), 0);
	assert_int_equal(sk_redis_script_add(e.t.r, &e.s, lua_echo), 0);
	WAIT_UNTIL(&e.t, e.p.calls == 1, 3000);
	assert_int_equal(e.p.err, 0);
	assert_int_equal(e.p.elint[2], 2);
	/* A restarted server has an empty script cache. */
	srv_kill();
	WAIT_UNTIL(&e.t, e.t.downs == 1, 3000);
	assert_int_equal(srv_start(), 0);
	WAIT_UNTIL(&e.t, e.p.calls == 2, 5000);
	assert_int_equal(e.evals, 2);
	assert_int_equal(e.p.err, 0);
	sk_redis_stats(e.t.r, &st);
	assert_int_equal(st.script_reloads, 0); /* SCRIPT LOAD went first */
	t_close(&e.t);
}

/* Closing the client from its own "up" callback. */
struct quitter {
	struct t t;
	struct sk_redis_script *s;
	struct rep p;
};

static void quitter_state(bool up, void *arg)
{
	struct quitter *q = arg;
	const char *ping[] = {"PING"};

	state_cb(up, &q->t);
	if (!up)
		return;
	assert_int_equal(sk_redis_cmd(q->t.r, rep_cb, &q->p, 1, ping, NULL), 0);
	sk_redis_close(q->t.r);
	q->t.r = sk_deref(q->t.r);
}

static void test_close_from_state_cb(void **state)
{
	struct sk_redis_opts o = {0};
	struct quitter q;

	(void)state;
	memset(&q, 0, sizeof(q));
	t_init(&q.t);
	o.addr = srv.addr;
	assert_int_equal(sk_redis_alloc(&q.t.r, &q.t.loop, &o, quitter_state, &q), 0);
	assert_int_equal(sk_redis_script_add(q.t.r, &q.s, lua_echo), 0);
	WAIT_UNTIL(&q.t, q.t.ups == 1 && !q.t.r, 3000);
	WAIT_UNTIL(&q.t, q.p.calls == 1, 3000);
	assert_int_equal(q.p.err, SK_ECANCELED);
	assert_int_equal(q.t.downs, 1);
	t_done(&q.t);
	assert_int_equal(q.p.calls, 1);
}

static void test_key(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(sk_redis_key(buf, sizeof(buf), "p", "owner", "what"), 0);
	assert_string_equal(buf, "p:{owner}:what");
	assert_int_equal(sk_redis_key(buf, sizeof(buf), "skein", "alice@example.com", "reg"), 0);
	assert_string_equal(buf, "skein:{alice@example.com}:reg");
	assert_int_equal(sk_redis_key(buf, sizeof(buf), "p", "o", NULL), 0);
	assert_string_equal(buf, "p:{o}");
	assert_int_equal(sk_redis_key(buf, sizeof(buf), "p", "o", ""), 0);
	assert_string_equal(buf, "p:{o}");
	/* Braces in the owner would move the hash slot. */
	assert_int_equal(sk_redis_key(buf, sizeof(buf), "p", "a{b", "w"), SK_EINVAL);
	assert_int_equal(sk_redis_key(buf, sizeof(buf), "p", "a}b", "w"), SK_EINVAL);
	assert_int_equal(sk_redis_key(buf, sizeof(buf), "p", "{x}", "w"), SK_EINVAL);
	assert_int_equal(sk_redis_key(buf, sizeof(buf), "p", "", "w"), SK_EINVAL);
	assert_int_equal(sk_redis_key(buf, sizeof(buf), "p", NULL, "w"), SK_EINVAL);
	/* "p:{owner}:what" is 14 characters: 15 bytes fit, 14 do not. */
	assert_int_equal(sk_redis_key(buf, 15, "p", "owner", "what"), 0);
	assert_string_equal(buf, "p:{owner}:what");
	assert_int_equal(sk_redis_key(buf, 14, "p", "owner", "what"), SK_ERANGE);
	assert_int_equal(sk_redis_key(buf, 1, "p", "owner", "what"), SK_ERANGE);
	assert_int_equal(sk_redis_key(NULL, 0, "p", "owner", "what"), SK_ERANGE);
}

struct cancel {
	int calls, err;
	bool had_reply;
};

static void cancel_cb(int err, struct redisReply *reply, void *arg)
{
	struct cancel *c = arg;

	c->calls++;
	c->err = err;
	c->had_reply = reply != NULL;
}

static void test_close_inflight(void **state)
{
	const char *ping[] = {"PING"};
	const char *args[] = {"rt:key", "a", "1"};
	struct sk_redis_script *s;
	struct cancel c[30];
	struct rep p = {0};
	struct t t;

	(void)state;
	memset(c, 0, sizeof(c));
	t_init(&t);
	t_client(&t, srv.addr, 1000);
	assert_int_equal(sk_redis_script_add(t.r, &s, lua_echo), 0);
	WAIT_UNTIL(&t, t.ups == 1, 3000);
	WAIT_UNTIL(&t, sk_redis_inflight(t.r) == 0, 3000); /* SCRIPT LOAD answered */
	for (int i = 0; i < 10; i++)
		assert_int_equal(sk_redis_cmd(t.r, cancel_cb, &c[i], 1, ping, NULL), 0);
	for (int i = 10; i < 20; i++)
		assert_int_equal(sk_redis_cmdf(t.r, cancel_cb, &c[i], "PING"), 0);
	for (int i = 20; i < 30; i++)
		assert_int_equal(sk_redis_eval(s, cancel_cb, &c[i], 1, 3, args, NULL), 0);
	assert_int_equal(sk_redis_inflight(t.r), 30);
	sk_redis_close(t.r);
	/* Failed inside close, before anything else could answer them. */
	for (int i = 0; i < 30; i++) {
		assert_int_equal(c[i].calls, 1);
		assert_int_equal(c[i].err, SK_ECANCELED);
		assert_false(c[i].had_reply);
	}
	assert_int_equal(sk_redis_inflight(t.r), 0);
	assert_false(sk_redis_ready(t.r));
	assert_int_equal(t.downs, 1);
	assert_int_equal(sk_redis_cmd(t.r, rep_cb, &p, 1, ping, NULL), SK_ECANCELED);
	assert_int_equal(sk_redis_eval(s, rep_cb, &p, 1, 3, args, NULL), SK_ECANCELED);
	sk_redis_close(t.r); /* twice is harmless */
	t.r = sk_deref(t.r);
	t_done(&t);
	for (int i = 0; i < 30; i++)
		assert_int_equal(c[i].calls, 1);
	assert_int_equal(p.calls, 0);
	assert_int_equal(t.downs, 1);
}

/* Closing from inside a reply callback: the rest are canceled, once each. */
struct closer {
	struct t *t;
	struct cancel c[20];
};

static void closer_cb(int err, struct redisReply *reply, void *arg)
{
	struct closer *cl = arg;

	cancel_cb(err, reply, &cl->c[0]);
	sk_redis_close(cl->t->r);
}

static void test_close_from_callback(void **state)
{
	const char *ping[] = {"PING"};
	struct closer cl;
	struct t t;

	(void)state;
	memset(&cl, 0, sizeof(cl));
	cl.t = &t;
	t_connect(&t, srv.addr, 1000);
	assert_int_equal(sk_redis_cmd(t.r, closer_cb, &cl, 1, ping, NULL), 0);
	for (int i = 1; i < 20; i++)
		assert_int_equal(sk_redis_cmd(t.r, cancel_cb, &cl.c[i], 1, ping, NULL), 0);
	WAIT_UNTIL(&t, cl.c[0].calls == 1, 3000);
	assert_int_equal(cl.c[0].err, 0);
	/* Even replies already read are not delivered after the close. */
	for (int i = 1; i < 20; i++) {
		assert_int_equal(cl.c[i].calls, 1);
		assert_int_equal(cl.c[i].err, SK_ECANCELED);
		assert_false(cl.c[i].had_reply);
	}
	assert_int_equal(sk_redis_inflight(t.r), 0);
	assert_int_equal(t.downs, 1);
	t.r = sk_deref(t.r);
	t_done(&t);
	for (int i = 0; i < 20; i++)
		assert_int_equal(cl.c[i].calls, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    RT(test_connect_ready),
	    RT(test_unix_socket),
	    RT(test_set_get),
	    RT(test_metrics),
	    RT(test_pipeline),
	    RT(test_error_reply),
	    RT(test_down_enotconn),
	    RT(test_server_killed),
	    RT(test_server_reset),
	    RT(test_timeout_sigstop),
	    RT(test_stopped_server_never_up),
	    RT(test_scripts),
	    RT(test_script_on_connect),
	    RT(test_close_from_state_cb),
	    RT(test_key),
	    RT(test_close_inflight),
	    RT(test_close_from_callback),
	};
	return cmocka_run_group_tests_name("redis", tests, group_setup, group_teardown);
}
