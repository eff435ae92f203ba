/* The call-limit script (services/edge/limits_lua.h) against a real redis-server:
 * concurrent limit, idempotence for a Call-ID already counted, release by ZREM,
 * expiry after call_max_duration, attempts per minute with the sliding window, and
 * the TTLs that make an idle account's keys vanish. */
#include <uv.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "limits_lua.h"
#include "regdata.h"

#include "sk_test_redis.h"

#define RT(f) cmocka_unit_test_setup_teardown(f, fresh_setup, leak_check)
#define HOUR  (3600 * 1000LL)

static char kc[128], kr[128];

/* A running server with nothing in it; kc, kr: alice's keys. */
static int fresh_setup(void **state)
{
	redisReply *r;
	int err = case_setup(state);

	if (err || !(r = srv_cmd("FLUSHALL")))
		return -1;
	freeReplyObject(r);
	if (regdata_key_calls(kc, sizeof(kc), "t", "alice@example.com") ||
	    regdata_key_cpm(kr, sizeof(kr), "t", "alice@example.com"))
		return -1;
	return 0;
}

/* The script as the edge runs it: the verdict; *calls = calls before this one. */
static int admit(const char *call_id, int limit, int rate, long long max_ms, int *calls)
{
	char l[16], rt[16], mx[24];
	redisReply *r;
	int v;

	snprintf(l, sizeof(l), "%d", limit);
	snprintf(rt, sizeof(rt), "%d", rate);
	snprintf(mx, sizeof(mx), "%lld", max_ms);
	r = srv_cmd("EVAL %s 2 %s %s %s %s %s %s", EDGE_LIMITS_LUA, kc, kr, call_id, l, rt, mx);
	assert_non_null(r);
	if (r->type == REDIS_REPLY_ERROR)
		fail_msg("script error: %s", r->str);
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 2);
	v = (int)r->element[0]->integer;
	if (calls)
		*calls = (int)r->element[1]->integer;
	freeReplyObject(r);
	return v;
}

static void test_keys(void **state)
{
	char k[128];

	(void)state;
	assert_int_equal(regdata_key_limits(k, sizeof(k), "t"), 0);
	assert_string_equal(k, "t:{domains}:limits");
	assert_int_equal(regdata_key_calls(k, sizeof(k), "t", "alice@example.com"), 0);
	assert_string_equal(k, "t:{alice@example.com}:calls");
	assert_int_equal(regdata_key_cpm(k, sizeof(k), "t", "alice@example.com"), 0);
	assert_string_equal(k, "t:{alice@example.com}:cpm");
	assert_int_equal(regdata_key_calls(k, 10, "t", "alice@example.com"), SK_ERANGE);
}

static void test_concurrent(void **state)
{
	int n = -1;

	(void)state;
	assert_int_equal(admit("c1", 2, 0, HOUR, &n), EDGE_LIMITS_LUA_ADMITTED);
	assert_int_equal(n, 0);
	assert_int_equal(admit("c2", 2, 0, HOUR, &n), EDGE_LIMITS_LUA_ADMITTED);
	assert_int_equal(n, 1);
	assert_int_equal(admit("c3", 2, 0, HOUR, &n), EDGE_LIMITS_LUA_CONCURRENT);
	assert_int_equal(n, 2);
	/* a refusal records nothing */
	assert_int_equal(srv_int("ZCARD %s", kc), 2);
	/* the same Call-ID again (the INVITE re-sent to another edge): counted once */
	assert_int_equal(admit("c1", 2, 0, HOUR, NULL), EDGE_LIMITS_LUA_KNOWN);
	assert_int_equal(srv_int("ZCARD %s", kc), 2);
	/* a BYE / failed INVITE (ZREM) frees a place */
	assert_int_equal(srv_int("ZREM %s c1", kc), 1);
	assert_int_equal(admit("c3", 2, 0, HOUR, NULL), EDGE_LIMITS_LUA_ADMITTED);
	/* a lowered limit refuses new calls, keeps the ones in progress */
	assert_int_equal(admit("c4", 1, 0, HOUR, NULL), EDGE_LIMITS_LUA_CONCURRENT);
	assert_int_equal(admit("c2", 1, 0, HOUR, NULL), EDGE_LIMITS_LUA_KNOWN);
	/* 0: no concurrent limit */
	assert_int_equal(admit("c4", 0, 0, HOUR, &n), EDGE_LIMITS_LUA_ADMITTED);
	assert_int_equal(n, 2);
	/* the ZSET lives as long as its latest call may count */
	assert_in_range(srv_int("PTTL %s", kc), HOUR - 5000, HOUR);
}

static void test_max_duration(void **state)
{
	redisReply *r;
	uint64_t until;

	(void)state;
	/* a call whose BYE was never seen stops counting at its expiry: aged by hand */
	assert_int_equal(admit("old", 1, 0, HOUR, NULL), EDGE_LIMITS_LUA_ADMITTED);
	assert_int_equal(admit("new", 1, 0, HOUR, NULL), EDGE_LIMITS_LUA_CONCURRENT);
	r = srv_cmd("ZADD %s XX 1 old", kc);
	assert_non_null(r);
	freeReplyObject(r);
	assert_int_equal(admit("new", 1, 0, HOUR, NULL), EDGE_LIMITS_LUA_ADMITTED);
	assert_int_equal(srv_int("ZCARD %s", kc), 1); /* purged, not just ignored */

	/* and for real: 100 ms, polled with a deadline */
	assert_int_equal(srv_int("DEL %s", kc), 1);
	assert_int_equal(admit("short", 1, 0, 100, NULL), EDGE_LIMITS_LUA_ADMITTED);
	assert_int_equal(admit("next", 1, 0, 100, NULL), EDGE_LIMITS_LUA_CONCURRENT);
	until = now_ms() + 3000;
	while (admit("next", 1, 0, 100, NULL) != EDGE_LIMITS_LUA_ADMITTED) {
		assert_true(now_ms() < until);
		usleep(20000);
	}
}

/* Redis's clock in ms, away from a minute boundary (waits, bounded, when within
 * 1 s of one) so that a window set by hand is still the current one when used. */
static long long redis_now_ms(void)
{
	for (int i = 0; i < 3; i++) {
		redisReply *r = srv_cmd("TIME");
		long long ms;

		assert_non_null(r);
		ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
		freeReplyObject(r);
		if (ms % 60000 < 59000)
			return ms;
		usleep(1100000);
	}
	fail_msg("Redis TIME stuck at a minute boundary");
	return 0;
}

static void set_window(long long w, long long c, long long p)
{
	redisReply *r = srv_cmd("HSET %s w %lld c %lld p %lld", kr, w, c, p);

	assert_non_null(r);
	freeReplyObject(r);
}

static void window_is(long long w, const char *c, const char *p)
{
	redisReply *r = srv_cmd("HMGET %s w c p", kr);

	assert_non_null(r);
	assert_int_equal(r->elements, 3);
	assert_int_equal(atoll(r->element[0]->str), w);
	assert_string_equal(r->element[1]->str, c);
	assert_string_equal(r->element[2]->str, p);
	freeReplyObject(r);
}

static void test_rate(void **state)
{
	long long win;

	(void)state;
	redis_now_ms();
	assert_int_equal(admit("r1", 0, 3, HOUR, NULL), EDGE_LIMITS_LUA_ADMITTED);
	assert_int_equal(admit("r2", 0, 3, HOUR, NULL), EDGE_LIMITS_LUA_ADMITTED);
	assert_int_equal(admit("r3", 0, 3, HOUR, NULL), EDGE_LIMITS_LUA_ADMITTED);
	assert_int_equal(admit("r4", 0, 3, HOUR, NULL), EDGE_LIMITS_LUA_RATE);
	assert_int_equal(srv_int("ZCARD %s", kc), 3); /* the refused attempt is not a call */
	/* a call already counted is not a new attempt */
	assert_int_equal(admit("r2", 0, 3, HOUR, NULL), EDGE_LIMITS_LUA_KNOWN);
	/* ended calls still were attempts: the rate is not refunded */
	assert_int_equal(srv_int("DEL %s", kc), 1);
	assert_int_equal(admit("r4", 0, 3, HOUR, NULL), EDGE_LIMITS_LUA_RATE);
	assert_in_range(srv_int("PTTL %s", kr), 1, 120000);

	/* Sliding window: the previous minute weighs by how much of it is still within
	 * the last 60 s (at least 1/60000): a huge count there refuses... */
	win = redis_now_ms() / 60000;
	set_window(win - 1, 1000000000, 0);
	assert_int_equal(admit("s1", 0, 10, HOUR, NULL), EDGE_LIMITS_LUA_RATE);
	/* ...one older than the previous minute is forgotten */
	win = redis_now_ms() / 60000;
	set_window(win - 2, 1000000000, 1000000000);
	assert_int_equal(admit("s1", 0, 10, HOUR, NULL), EDGE_LIMITS_LUA_ADMITTED);
	window_is(win, "1", "0"); /* this minute, one attempt in it, none before */
	/* a new minute: the count of the one before becomes "previous" */
	win = redis_now_ms() / 60000;
	set_window(win - 1, 7, 1000000000);
	assert_int_equal(admit("s2", 0, 1000, HOUR, NULL), EDGE_LIMITS_LUA_ADMITTED);
	window_is(win, "1", "7");
	/* both limits exceeded (2 calls in progress, 2 attempts this minute): the
	 * concurrent one is checked first and named */
	assert_int_equal(srv_int("ZCARD %s", kc), 2);
	assert_int_equal(admit("b1", 1, 1, HOUR, NULL), EDGE_LIMITS_LUA_CONCURRENT);
	assert_int_equal(admit("b1", 3, 1, HOUR, NULL), EDGE_LIMITS_LUA_RATE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		SK_TEST(test_keys),
		RT(test_concurrent),
		RT(test_max_duration),
		RT(test_rate),
	};

	(void)srv_signal; /* sk_test_redis.h's outage helper: not needed here */
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
