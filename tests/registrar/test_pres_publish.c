/* PUBLISH and the presence package, the parts that need no daemon: the expiry rules
 * (RFC 3903 §6), the authorization and winfo state mappings (RFC 5025, RFC 3858),
 * and the Lua scripts on a packed Publication against a real redis-server (the
 * check-and-replace of SIP-If-Match, the new entity-tag on every success, the
 * expiry sweep, the one-trip fetch). */
#include <uv.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "skein/bus/v1/envelope.pb-c.h"
#include "../../services/registrar/pres_pub_int.h"

#include "sk_test_redis.h"

#define RT(f) cmocka_unit_test_setup_teardown(f, case_setup, leak_check)
#define T(f)  cmocka_unit_test_setup_teardown(f, leak_setup, leak_check)

/* ---- pure ---- */

static void test_expires(void **state)
{
	int64_t out = -5;

	(void)state;
	/* absent -> default; 0 -> removal; below min -> 423 with min; above max -> max */
	assert_int_equal(pres_pub_expires(-1, 3600, 60, 86400, &out), 0);
	assert_int_equal(out, 3600);
	assert_int_equal(pres_pub_expires(0, 3600, 60, 86400, &out), 0);
	assert_int_equal(out, 0);
	assert_int_equal(pres_pub_expires(1, 3600, 60, 86400, &out), 423);
	assert_int_equal(out, 60);
	assert_int_equal(pres_pub_expires(59, 3600, 60, 86400, &out), 423);
	assert_int_equal(out, 60);
	assert_int_equal(pres_pub_expires(60, 3600, 60, 86400, &out), 0);
	assert_int_equal(out, 60);
	assert_int_equal(pres_pub_expires(86400, 3600, 60, 86400, &out), 0);
	assert_int_equal(out, 86400);
	assert_int_equal(pres_pub_expires(86401, 3600, 60, 86400, &out), 0);
	assert_int_equal(out, 86400);
	assert_int_equal(pres_pub_expires(4294967295LL, 3600, 60, 86400, &out), 0);
	assert_int_equal(out, 86400);
}

static void test_secs_left(void **state)
{
	(void)state;
	assert_int_equal(pres_secs_left(10000, 10000), 0);
	assert_int_equal(pres_secs_left(9000, 10000), 0);
	assert_int_equal(pres_secs_left(10001, 10000), 1); /* rounded up: not ended */
	assert_int_equal(pres_secs_left(11000, 10000), 1);
	assert_int_equal(pres_secs_left(11001, 10000), 2);
	assert_int_equal(pres_secs_left(3610000, 10000), 3600);
}

static void test_auth_state(void **state)
{
	const char *reason = "x";

	(void)state;
	assert_string_equal(pres_auth_state(POLICY_ALLOW, false, &reason), "active");
	assert_null(reason);
	/* polite-block looks active: the watcher must not learn (RFC 5025 §3.2.1) */
	assert_string_equal(pres_auth_state(POLICY_POLITE_BLOCK, false, &reason), "active");
	assert_null(reason);
	assert_string_equal(pres_auth_state(POLICY_CONFIRM, false, &reason), "pending");
	assert_null(reason);
	assert_string_equal(pres_auth_state(POLICY_BLOCK, false, &reason), "terminated");
	assert_string_equal(reason, "rejected");
	/* one's own presence: always */
	assert_string_equal(pres_auth_state(POLICY_BLOCK, true, &reason), "active");
	assert_null(reason);
	assert_string_equal(pres_auth_state(POLICY_CONFIRM, true, &reason), "active");

	assert_int_equal(pres_policy_default("allow"), POLICY_ALLOW);
	assert_int_equal(pres_policy_default("block"), POLICY_BLOCK);
	assert_int_equal(pres_policy_default("polite-block"), POLICY_POLITE_BLOCK);
	assert_int_equal(pres_policy_default("confirm"), POLICY_CONFIRM);
	assert_int_equal(pres_policy_default("bogus"), POLICY_CONFIRM);
	assert_int_equal(pres_policy_default(NULL), POLICY_CONFIRM);
}

static void test_winfo_map(void **state)
{
	static const struct {
		const char *state, *reason;
		enum winfo_status st;
		enum winfo_event ev;
	} cases[] = {
	    {"pending", "", WINFO_PENDING, WINFO_EV_SUBSCRIBE},
	    {"active", "", WINFO_ACTIVE, WINFO_EV_SUBSCRIBE},
	    {"active", "approved", WINFO_ACTIVE, WINFO_EV_APPROVED},
	    {"terminated", "rejected", WINFO_TERMINATED, WINFO_EV_REJECTED},
	    {"terminated", "timeout", WINFO_TERMINATED, WINFO_EV_TIMEOUT},
	    {"terminated", "deactivated", WINFO_TERMINATED, WINFO_EV_DEACTIVATED},
	    {"terminated", "noresource", WINFO_TERMINATED, WINFO_EV_NORESOURCE},
	    {"terminated", "", WINFO_TERMINATED, WINFO_EV_TIMEOUT},
	    {"terminated", "whatever", WINFO_TERMINATED, WINFO_EV_TIMEOUT},
	};
	enum winfo_status st;
	enum winfo_event ev;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_true(pres_winfo_map(cases[i].state, cases[i].reason, &st, &ev));
		assert_int_equal(st, cases[i].st);
		assert_int_equal(ev, cases[i].ev);
	}
	assert_false(pres_winfo_map("waiting", "", &st, &ev));
	assert_false(pres_winfo_map("", "", &st, &ev));
	assert_false(pres_winfo_map(NULL, "", &st, &ev));
}

/* ---- the scripts against redis-server ---- */

#define KEY "t:{alice@example.com}:pubs"

static redisReply *publish(const char *mode, const char *old, const char *new, int exp,
			   const char *body)
{
	Skein__Sip__V1__Publication p = SKEIN__SIP__V1__PUBLICATION__INIT;
	uint8_t buf[4096];
	size_t len = 0;
	char e[16];

	if (body) {
		p.etag = (char *)new;
		p.event = (char *)"presence";
		p.content_type = (char *)"application/pidf+xml";
		p.body.data = (uint8_t *)body;
		p.body.len = strlen(body);
		p.user_agent = (char *)"test";
		len = skein__sip__v1__publication__pack(&p, buf);
	}
	snprintf(e, sizeof(e), "%d", exp);
	return srv_cmd("EVAL %s 1 %s %s %s %s %s %b", PRES_LUA_PUBLISH, KEY, mode, old, new, e, buf,
		       len);
}

static Skein__Sip__V1__Publication *stored(const char *etag)
{
	redisReply *rep = srv_cmd("HGET %s %s", KEY, etag);
	Skein__Sip__V1__Publication *p = NULL;

	assert_non_null(rep);
	if (rep->type == REDIS_REPLY_STRING)
		p = skein__sip__v1__publication__unpack(NULL, rep->len, (uint8_t *)rep->str);
	freeReplyObject(rep);
	return p;
}

static void check_ok(redisReply *rep, long long exp_s)
{
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
	assert_int_equal(rep->elements, 3);
	assert_int_equal(rep->element[0]->integer, 1);
	if (exp_s)
		assert_int_equal(rep->element[1]->integer - rep->element[2]->integer, exp_s * 1000);
	freeReplyObject(rep);
}

static void check_412(redisReply *rep)
{
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
	assert_int_equal(rep->element[0]->integer, 0);
	freeReplyObject(rep);
}

static void test_lua_publish(void **state)
{
	Skein__Sip__V1__Publication *p;
	uint64_t published;
	redisReply *rep;

	(void)state;
	freeReplyObject(srv_cmd("DEL %s", KEY));
	/* initial */
	check_ok(publish("new", "", "e1", 3600, "<one/>"), 3600);
	p = stored("e1");
	assert_non_null(p);
	assert_string_equal(p->etag, "e1");
	assert_memory_equal(p->body.data, "<one/>", 6);
	assert_string_equal(p->user_agent, "test");
	assert_true(p->expires_at_ms > p->published_ms);
	assert_int_equal(p->expires_at_ms - p->published_ms, 3600000);
	published = p->published_ms;
	skein__sip__v1__publication__free_unpacked(p, NULL);
	rep = srv_cmd("PTTL %s", KEY);
	assert_true(rep->integer > 3600000 && rep->integer <= 3660000);
	freeReplyObject(rep);

	/* refresh: same record under a new tag, the old tag gone, published kept */
	usleep(5000);
	check_ok(publish("refresh", "e1", "e2", 120, NULL), 120);
	assert_null(stored("e1"));
	p = stored("e2");
	assert_non_null(p);
	assert_string_equal(p->etag, "e2");
	assert_memory_equal(p->body.data, "<one/>", 6);
	assert_string_equal(p->user_agent, "test");
	assert_int_equal(p->published_ms, published);
	assert_true(p->expires_at_ms > published + 119000 && p->expires_at_ms < published + 125000);
	skein__sip__v1__publication__free_unpacked(p, NULL);
	/* the record does not grow with refreshes */
	rep = srv_cmd("HSTRLEN %s e2", KEY);
	long long len2 = rep->integer;
	freeReplyObject(rep);
	check_ok(publish("refresh", "e2", "e3", 120, NULL), 120);
	check_ok(publish("refresh", "e3", "e4", 120, NULL), 120);
	rep = srv_cmd("HSTRLEN %s e4", KEY);
	assert_int_equal(rep->integer, len2);
	freeReplyObject(rep);

	/* the old tag is dead: 412 */
	check_412(publish("refresh", "e1", "e5", 120, NULL));
	check_412(publish("modify", "e3", "e5", 120, "<x/>"));
	check_412(publish("remove", "nope", "e5", 0, NULL));

	/* modify: new body, new tag, newer published */
	usleep(5000);
	check_ok(publish("modify", "e4", "e6", 600, "<two/>"), 600);
	assert_null(stored("e4"));
	p = stored("e6");
	assert_non_null(p);
	assert_memory_equal(p->body.data, "<two/>", 6);
	assert_true(p->published_ms > published);
	skein__sip__v1__publication__free_unpacked(p, NULL);

	/* a second device: two entries */
	check_ok(publish("new", "", "f1", 600, "<three/>"), 600);
	rep = srv_cmd("HLEN %s", KEY);
	assert_int_equal(rep->integer, 2);
	freeReplyObject(rep);

	/* remove */
	rep = publish("remove", "e6", "e7", 0, NULL);
	assert_int_equal(rep->element[0]->integer, 1);
	assert_int_equal(rep->element[1]->integer, 0);
	freeReplyObject(rep);
	assert_null(stored("e6"));
	assert_null(stored("e7"));
	check_412(publish("refresh", "e6", "e8", 60, NULL));
	freeReplyObject(srv_cmd("DEL %s", KEY));
}

/* A record whose expiry has passed (its timer not run yet) is gone for SIP-If-Match,
 * and the expiry script sweeps it and only it. */
static void test_lua_expired(void **state)
{
	Skein__Sip__V1__Publication p = SKEIN__SIP__V1__PUBLICATION__INIT;
	uint8_t buf[256];
	size_t len;
	redisReply *rep;

	(void)state;
	freeReplyObject(srv_cmd("DEL %s", KEY));
	p.etag = (char *)"old";
	p.body.data = (uint8_t *)"<b/>";
	p.body.len = 4;
	p.expires_at_ms = 1000; /* 1970 */
	p.published_ms = 1;
	len = skein__sip__v1__publication__pack(&p, buf);
	freeReplyObject(srv_cmd("HSET %s old %b", KEY, buf, len));
	check_ok(publish("new", "", "live", 600, "<l/>"), 600);

	check_412(publish("refresh", "old", "x1", 600, NULL));
	rep = srv_cmd("EVAL %s 1 %s %s", PRES_LUA_EXPIRE, KEY, "live"); /* not due */
	assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
	assert_int_equal(rep->integer, 1); /* swept "old" on the way */
	freeReplyObject(rep);
	rep = srv_cmd("HLEN %s", KEY);
	assert_int_equal(rep->integer, 1);
	freeReplyObject(rep);
	rep = srv_cmd("EVAL %s 1 %s %s", PRES_LUA_EXPIRE, KEY, "live");
	assert_int_equal(rep->integer, 0);
	freeReplyObject(rep);
	freeReplyObject(srv_cmd("DEL %s", KEY));
}

/* The fetch keeps four places even when documents are missing (a nil inside a Lua
 * table would cut the reply short). */
static void test_lua_fetch(void **state)
{
	redisReply *rep;

	(void)state;
	freeReplyObject(srv_cmd("DEL %s t:{alice@example.com}:xcap", KEY));
	check_ok(publish("new", "", "a1", 600, "<p/>"), 600);
	freeReplyObject(srv_cmd("HSET t:{alice@example.com}:xcap d:pidf-manipulation/index <m/>"));
	rep =
	    srv_cmd("EVAL %s 2 %s %s %s %s", PRES_LUA_PRES_FETCH, KEY, "t:{alice@example.com}:xcap",
		    "d:pres-rules/index", "d:pidf-manipulation/index");
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
	assert_int_equal(rep->elements, 4);
	assert_int_equal(rep->element[0]->type, REDIS_REPLY_INTEGER);
	assert_true(rep->element[0]->integer > 1700000000000LL);
	assert_int_equal(rep->element[1]->type, REDIS_REPLY_ARRAY);
	assert_int_equal(rep->element[1]->elements, 2);
	assert_string_equal(rep->element[1]->element[0]->str, "a1");
	assert_int_equal(rep->element[2]->type, REDIS_REPLY_NIL);
	assert_int_equal(rep->element[3]->type, REDIS_REPLY_STRING);
	assert_string_equal(rep->element[3]->str, "<m/>");
	freeReplyObject(rep);
	freeReplyObject(srv_cmd("DEL %s t:{alice@example.com}:xcap", KEY));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_expires),	  T(test_secs_left),	T(test_auth_state), T(test_winfo_map),
	    RT(test_lua_publish), RT(test_lua_expired), RT(test_lua_fetch),
	};

	(void)srv_signal; /* sk_test_redis.h's outage helper: not needed here */
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
