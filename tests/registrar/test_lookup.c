/* regdata_lookup (TIME + HGETALL, no script) against a real redis-server: live
 * bindings only, expires_in from Redis' clock, sorted like the script's reply, the
 * same bindings as REGDATA_LUA_LOOKUP; malformed values skipped; bad replies
 * refused; a down server reported. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include <uv.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "skein/sk_redis.h"
#include "regdata.h"
#include "regdata_lookup.h"

#include "sk_test_redis.h"
#include "regdata_script.h"

#define RT(f) cmocka_unit_test_setup_teardown(f, case_setup, leak_check)

struct t {
	uv_loop_t loop;
	uv_timer_t guard;
	bool expired;
	struct sk_redis *r;
	int ups;
	int calls, err;
	struct regdata_bindings bs;
};

#include "sk_test_loop.h"

static void state_cb(bool up, void *arg)
{
	if (up)
		((struct t *)arg)->ups++;
}

static void t_client(struct t *t)
{
	struct sk_redis_opts o = {0};

	t_init(t);
	o.addr = srv.addr;
	o.timeout_ms = 1000;
	assert_int_equal(sk_redis_alloc(&t->r, &t->loop, &o, state_cb, t), 0);
	WAIT_UNTIL(t, t->ups == 1, 3000);
}

static void t_close(struct t *t)
{
	regdata_bindings_free(&t->bs);
	sk_redis_close(t->r);
	t->r = sk_deref(t->r);
	t_done(t);
}

static uint64_t redis_now_ms(void)
{
	redisReply *r = srv_cmd("TIME");
	uint64_t ms = 0;

	assert_non_null(r);
	assert_int_equal(regdata_time_ms(r, &ms), 0);
	freeReplyObject(r);
	return ms;
}

/* A stored value as the registration script writes it: the packed Binding with
 * expires_at_ms set (the script appends it as a varint; packing it is the same) and,
 * beside it, the "\1" field with the expiry; or, `legacy`, as versions before the
 * one-hash layout did: the expiry in the exp ZSET instead. */
static void put(const char *aor, const char *contact, uint32_t q, uint64_t exp_ms,
		uint64_t reg_ms, bool legacy)
{
	Skein__Sip__V1__Binding b = SKEIN__SIP__V1__BINDING__INIT;
	uint8_t buf[512];
	size_t n;
	char key[256], meta[64];
	redisReply *r;

	b.contact = (char *)contact;
	b.q_milli = q;
	b.expires_at_ms = exp_ms;
	b.registered_ms = reg_ms;
	n = skein__sip__v1__binding__pack(&b, buf);
	snprintf(key, sizeof(key), "t:{%s}:reg", aor);
	snprintf(meta, sizeof(meta), "%llu 1 %llu cid", (unsigned long long)exp_ms,
		 (unsigned long long)reg_ms);
	if (legacy)
		r = srv_cmd("HSET %s %s %b", key, contact, buf, n);
	else
		r = srv_cmd("HSET %s %s %b \1%s %s", key, contact, buf, n, contact, meta);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	freeReplyObject(r);
	if (!legacy)
		return;
	snprintf(key, sizeof(key), "t:{%s}:exp", aor);
	r = srv_cmd("ZADD %s %llu %s", key, (unsigned long long)exp_ms, contact);
	assert_non_null(r);
	freeReplyObject(r);
}

static void on_lookup(int err, void *arg)
{
	struct t *t = arg;

	t->calls++;
	t->err = err;
}

static void test_lookup_live_sorted(void **state)
{
	uint64_t now = redis_now_ms();
	struct regdata_bindings ref;
	struct t t;

	(void)state;
	freeReplyObject(srv_cmd("FLUSHALL"));
	t_client(&t);
	/* alice in the one-hash layout, bob in the three-key one of earlier versions:
	 * both read the same. */
	for (int legacy = 0; legacy < 2; legacy++) {
		const char *aor = legacy ? "bob@example.com" : "alice@example.com";
		char key[64];

		snprintf(key, sizeof(key), "t:{%s}:reg", aor);
		put(aor, "sip:a@192.0.2.1", 500, now + 60000, now - 5000, legacy);
		put(aor, "sip:a@192.0.2.2", 1000, now + 3600000, now - 9000, legacy);
		put(aor, "sip:a@192.0.2.3", 1000, now + 30500, now - 1000, legacy);
		put(aor, "sip:a@192.0.2.4", 1000, now - 1000, now - 90000, legacy); /* expired */

		t.calls = 0;
		assert_int_equal(regdata_lookup(t.r, "t", aor, &t.bs, on_lookup, &t), 0);
		WAIT_UNTIL(&t, t.calls == 1, 3000);
		assert_int_equal(t.err, 0);
		assert_int_equal(t.bs.n, 3);
		/* q first, then the newest registration */
		assert_string_equal(t.bs.b[0]->contact, "sip:a@192.0.2.3");
		assert_string_equal(t.bs.b[1]->contact, "sip:a@192.0.2.2");
		assert_string_equal(t.bs.b[2]->contact, "sip:a@192.0.2.1");
		assert_in_range(t.bs.b[0]->expires_in, 30, 31);
		assert_in_range(t.bs.b[1]->expires_in, 3599, 3600);
		assert_in_range(t.bs.b[2]->expires_in, 59, 60);
		/* Nothing written: the expired one stays for a script to purge. */
		assert_int_equal(srv_int("HLEN %s", key), legacy ? 4 : 8);

		/* The same bindings, in the same order, as the script gives; the script
		 * purges the expired one and moves bob into the one-hash layout. */
		script_lookup(aor, &ref);
		assert_int_equal(ref.n, t.bs.n);
		for (size_t i = 0; i < ref.n; i++) {
			assert_string_equal(ref.b[i]->contact, t.bs.b[i]->contact);
			assert_int_equal(ref.b[i]->expires_in, t.bs.b[i]->expires_in);
		}
		regdata_bindings_free(&ref);
		regdata_bindings_free(&t.bs);
		assert_int_equal(srv_int("HLEN %s", key), 6);
		assert_int_equal(srv_int("HEXISTS %s \1sip:a@192.0.2.2", key), 1);
		assert_int_equal(srv_int("HEXISTS %s sip:a@192.0.2.4", key), 0);
		snprintf(key, sizeof(key), "t:{%s}:exp", aor);
		assert_int_equal(srv_int("EXISTS %s", key), 0);

		/* Read again after the move: the same. */
		script_lookup(aor, &ref);
		assert_int_equal(ref.n, 3);
		assert_string_equal(ref.b[0]->contact, "sip:a@192.0.2.3");
		regdata_bindings_free(&ref);
	}

	/* At a time the caller's clock gives (no TIME): the bindings live then. */
	t.calls = 0;
	assert_int_equal(regdata_lookup_at(t.r, "t", "alice@example.com", now + 59000, &t.bs,
					   on_lookup, &t),
			 0);
	WAIT_UNTIL(&t, t.calls == 1, 3000);
	assert_int_equal(t.err, 0);
	assert_int_equal(t.bs.n, 2);
	assert_string_equal(t.bs.b[0]->contact, "sip:a@192.0.2.2");
	assert_int_equal(t.bs.b[1]->expires_in, 1);
	regdata_bindings_free(&t.bs);

	/* An unknown AOR: no binding, no error. */
	t.calls = 0;
	assert_int_equal(regdata_lookup(t.r, "t", "nobody@example.com", &t.bs, on_lookup, &t), 0);
	WAIT_UNTIL(&t, t.calls == 1, 3000);
	assert_int_equal(t.err, 0);
	assert_int_equal(t.bs.n, 0);
	t_close(&t);
}

/* Redis' clock kept by a client: the offset from the middle of the sample's round
 * trip, samples of a long round trip not taken, none used once old. */
static void test_clock(void **state)
{
	struct regdata_clock c = {0};

	(void)state;
	assert_true(regdata_clock_now(&c, 1000) == 0); /* no sample yet */
	regdata_clock_sample(&c, 1000, 1010, 1700000000005ull);
	assert_true(regdata_clock_now(&c, 1010) == 1700000000010ull);
	assert_true(regdata_clock_now(&c, 2005) == 1700000001005ull);
	assert_true(regdata_clock_now(&c, 1005 + REGDATA_CLOCK_TTL_MS) ==
		    1700000000005ull + REGDATA_CLOCK_TTL_MS);
	assert_true(regdata_clock_now(&c, 1011 + REGDATA_CLOCK_TTL_MS) == 0); /* stale */
	/* a read a little before the sample's answer (another clock read) still works */
	assert_true(regdata_clock_now(&c, 1008) == 1700000000008ull);
	/* a slow round trip, or an answer before its question: not taken */
	regdata_clock_sample(&c, 3000, 3000 + REGDATA_CLOCK_RTT_MAX_MS + 1, 1800000000000ull);
	regdata_clock_sample(&c, 3000, 2999, 1800000000000ull);
	assert_true(regdata_clock_now(&c, 1010) == 1700000000010ull);
	/* a new sample replaces the offset (Redis' clock was stepped) */
	regdata_clock_sample(&c, 4000, 4000, 1800000000000ull);
	assert_true(regdata_clock_now(&c, 4100) == 1800000000100ull);
	regdata_clock_sample(NULL, 1, 2, 3);
	assert_true(regdata_clock_now(NULL, 1) == 0);
}

static void test_lookup_bad_input(void **state)
{
	struct regdata_bindings bs;
	struct t t;
	redisReply *r;
	size_t skipped;
	uint64_t ms;

	(void)state;
	freeReplyObject(srv_cmd("FLUSHALL"));
	/* A value that is not a Binding, and one without expiry: skipped, counted. */
	freeReplyObject(srv_cmd("HSET t:{bob@example.com}:reg x %b", "\xff\xff\xff", (size_t)3));
	freeReplyObject(srv_cmd("HSET t:{bob@example.com}:reg y %b", "\x0a\x01z", (size_t)3));
	r = srv_cmd("HGETALL t:{bob@example.com}:reg");
	assert_non_null(r);
	assert_int_equal(regdata_bindings_from_hash(&bs, r, 1000, &skipped), 0);
	assert_int_equal(bs.n, 0);
	assert_int_equal(skipped, 2);
	regdata_bindings_free(&bs);
	freeReplyObject(r);

	/* Replies of the wrong shape. */
	r = srv_cmd("PING");
	assert_int_equal(regdata_bindings_from_hash(&bs, r, 1000, NULL), SK_EPROTO);
	assert_int_equal(regdata_time_ms(r, &ms), SK_EPROTO);
	freeReplyObject(r);
	assert_int_equal(regdata_bindings_from_hash(&bs, NULL, 1000, NULL), SK_EPROTO);
	assert_int_equal(regdata_bindings_from_hash(NULL, NULL, 1000, NULL), SK_EINVAL);

	/* A key that cannot be built, bad arguments: refused, no callback. */
	t_client(&t);
	assert_int_equal(regdata_lookup(t.r, "t", "a{b}@example.com", &t.bs, on_lookup, &t),
			 SK_EINVAL);
	assert_int_equal(regdata_lookup(t.r, "t", "a@example.com", &t.bs, NULL, &t), SK_EINVAL);
	/* The server gone: the error comes back through the callback or at once. */
	srv_kill();
	{
		int rc = regdata_lookup(t.r, "t", "a@example.com", &t.bs, on_lookup, &t);

		if (rc == 0) {
			WAIT_UNTIL(&t, t.calls == 1, 5000);
			assert_int_not_equal(t.err, 0);
		} else {
			assert_int_equal(t.calls, 0);
		}
	}
	assert_int_equal(t.bs.n, 0);
	t_close(&t);
	assert_int_equal(srv_start(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		RT(test_lookup_live_sorted),
		RT(test_lookup_bad_input),
		cmocka_unit_test(test_clock),
	};

	(void)srv_signal; /* sk_test_redis.h's and sk_test_loop.h's helpers not needed */
	(void)t_run_for;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
