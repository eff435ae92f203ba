/* The notifier engine's pure parts (services/registrar/pres_text.c, included) and
 * its Lua scripts (pres_int.h) against a real redis-server: subscription ids, From
 * without tag, Subscription-State, the NOTIFY text, timer members, compare-and-set,
 * NOTIFY sequence numbers, throttling, the timer pop. */
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "../../services/registrar/pres_text.c"
#include "sk_test_redis.h"

static void test_sub_id(void **state)
{
	char a[PRES_ID_SIZE], b[PRES_ID_SIZE], c[PRES_ID_SIZE];

	(void)state;
	pres_sub_id(a, "call-1", "ft", "lt");
	pres_sub_id(b, "call-1", "ft", "lt");
	pres_sub_id(c, "call-1f", "t", "lt"); /* the separators matter */
	assert_int_equal(strlen(a), 32);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strspn(a, "0123456789abcdef"), 32);
}

static void check_strip(const char *in, const char *want)
{
	char *out = pres_strip_tag(in);

	assert_non_null(out);
	assert_string_equal(out, want);
	sk_deref(out);
}

static void test_strip_tag(void **state)
{
	char *d;

	(void)state;
	check_strip("<sip:bob@example.com>;tag=abc", "<sip:bob@example.com>");
	check_strip("\"Bob\" <sip:bob@example.com>;tag=abc;x=1",
		    "\"Bob\" <sip:bob@example.com>;x=1");
	check_strip("<sip:bob@example.com;tag=uri>;TAG=abc", "<sip:bob@example.com;tag=uri>");
	check_strip("sip:bob@example.com ; tag = abc", "sip:bob@example.com");
	check_strip("\"a<b>;tag=x\" <sip:b@h>;tagx=1;tag=2", "\"a<b>;tag=x\" <sip:b@h>;tagx=1");
	check_strip("sip:bob@example.com", "sip:bob@example.com");
	d = pres_display_name("\"Bob \\\"B\\\"\" <sip:b@h>;tag=1");
	assert_string_equal(d, "Bob \"B\"");
	sk_deref(d);
	d = pres_display_name("Bob Smith <sip:b@h>");
	assert_string_equal(d, "Bob Smith");
	sk_deref(d);
	d = pres_display_name("sip:b@h;tag=1");
	assert_string_equal(d, "");
	sk_deref(d);
}

static void test_substate(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(pres_substate(buf, sizeof(buf), "active", "", 10000, 400), 0);
	assert_string_equal(buf, "active;expires=10"); /* 9.6 s left: rounded up */
	assert_int_equal(pres_substate(buf, sizeof(buf), "pending", "", 3600000, 0), 0);
	assert_string_equal(buf, "pending;expires=3600");
	assert_int_equal(pres_substate(buf, sizeof(buf), "active", "", 100, 400), 0);
	assert_string_equal(buf, "active;expires=0");
	assert_int_equal(pres_substate(buf, sizeof(buf), "terminated", "timeout", 0, 0), 0);
	assert_string_equal(buf, "terminated;reason=timeout");
	assert_int_equal(pres_substate(buf, 8, "terminated", "rejected", 0, 0), SK_ERANGE);
}

static void sub_fill(Skein__Sip__V1__Subscription *s, char **route, size_t nroute)
{
	skein__sip__v1__subscription__init(s);
	s->id = "0123";
	s->event = "presence";
	s->resource = "alice@example.com";
	s->resource_uri = "sip:alice@example.com";
	s->watcher = "bob@example.com";
	s->remote = "\"Bob\" <sip:bob@example.com>";
	s->remote_tag = "rt";
	s->local_tag = "lt";
	s->call_id = "cid@h";
	s->remote_target = "sip:bob@192.0.2.1:5060;transport=tcp";
	s->route = route;
	s->n_route = nroute;
	s->local_contact = "sip:edge1.example.com;transport=tcp";
	s->state = "active";
}

static void test_notify_text(void **state)
{
	char *route[] = {"<sip:p1.example.com;lr>", "sip:p2.example.com;lr"};
	Skein__Sip__V1__Subscription s;
	struct sk_buf b;

	(void)state;
	sub_fill(&s, route, 2);
	s.event_id = "7";
	sk_buf_init(&b);
	assert_int_equal(
	    pres_notify_text(&b, &s, 3, "active;expires=60", "application/pidf+xml", "<x/>", 4), 0);
	assert_string_equal(b.data, "NOTIFY sip:bob@192.0.2.1:5060;transport=tcp SIP/2.0\r\n"
				    "Route: <sip:p1.example.com;lr>\r\n"
				    "Route: <sip:p2.example.com;lr>\r\n"
				    "Max-Forwards: 70\r\n"
				    "From: <sip:alice@example.com>;tag=lt\r\n"
				    "To: \"Bob\" <sip:bob@example.com>;tag=rt\r\n"
				    "Call-ID: cid@h\r\n"
				    "CSeq: 3 NOTIFY\r\n"
				    "Contact: <sip:edge1.example.com;transport=tcp>\r\n"
				    "Event: presence;id=7\r\n"
				    "Subscription-State: active;expires=60\r\n"
				    "Content-Type: application/pidf+xml\r\n"
				    "Content-Length: 4\r\n"
				    "\r\n"
				    "<x/>");
	sk_buf_reset(&b);
	sub_fill(&s, NULL, 0);
	s.eventlist = true;
	assert_int_equal(pres_notify_text(&b, &s, 1, "terminated;reason=timeout", NULL, NULL, 0),
			 0);
	assert_non_null(strstr(b.data, "\r\nEvent: presence\r\n"));
	assert_non_null(strstr(b.data, "\r\nRequire: eventlist\r\n"));
	assert_null(strstr(b.data, "Route:"));
	assert_non_null(strstr(b.data, "\r\nContent-Length: 0\r\n\r\n"));
	assert_null(strstr(b.data, "Content-Type"));
	/* header injection through a stored field, no target */
	sk_buf_reset(&b);
	s.call_id = "x\r\nEvil: 1";
	assert_int_equal(pres_notify_text(&b, &s, 1, "active;expires=1", NULL, NULL, 0), SK_EINVAL);
	sub_fill(&s, NULL, 0);
	s.remote_target = "";
	assert_int_equal(pres_notify_text(&b, &s, 1, "active;expires=1", NULL, NULL, 0), SK_EINVAL);
	sk_buf_release(&b);
}

static void test_timer_parse(void **state)
{
	char k, aor[64], id[64];
	const char *m = "s|alice@example.com|abcdef";

	(void)state;
	assert_true(pres_timer_parse(m, strlen(m), &k, aor, sizeof(aor), id, sizeof(id)));
	assert_int_equal(k, 's');
	assert_string_equal(aor, "alice@example.com");
	assert_string_equal(id, "abcdef");
	m = "n|bob@x|presence.winfo";
	assert_true(pres_timer_parse(m, strlen(m), &k, aor, sizeof(aor), id, sizeof(id)));
	assert_string_equal(id, "presence.winfo");
	assert_false(pres_timer_parse("s|x", 3, &k, aor, sizeof(aor), id, sizeof(id)));
	assert_false(pres_timer_parse("s||id", 5, &k, aor, sizeof(aor), id, sizeof(id)));
	assert_false(pres_timer_parse("s|a|", 4, &k, aor, sizeof(aor), id, sizeof(id)));
	assert_false(pres_timer_parse("sx|a|b", 6, &k, aor, sizeof(aor), id, sizeof(id)));
	assert_false(pres_timer_parse("s|aaaaaaaa|b", 12, &k, aor, 4, id, sizeof(id)));
}

/* ---- the scripts against redis-server ---- */

static redisReply *eval(const char *lua, const char *k1, const char *k2, int nargs, ...)
{
	const char *argv[12];
	size_t lens[12];
	int argc = 0;
	va_list ap;
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", srv.port, tv);
	redisReply *rep;

	assert_non_null(c);
	argv[argc++] = "EVAL";
	argv[argc++] = lua;
	argv[argc++] = k2 ? "2" : "1";
	argv[argc++] = k1;
	if (k2)
		argv[argc++] = k2;
	va_start(ap, nargs);
	for (int i = 0; i < nargs; i++)
		argv[argc++] = va_arg(ap, const char *);
	va_end(ap);
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	rep = redisCommandArgv(c, argc, argv, lens);
	redisFree(c);
	assert_non_null(rep);
	return rep;
}

static long long ival(redisReply *r)
{
	long long v;

	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	v = r->integer;
	freeReplyObject(r);
	return v;
}

static void test_lua_put_get_del(void **state)
{
	redisReply *r;

	(void)state;
	freeReplyObject(srv_cmd("FLUSHALL"));
	assert_int_equal(ival(eval(PRES_LUA_PUT, "k:{a}:subs", NULL, 4, "id1", "", "v1", "2")), 0);
	assert_int_equal(ival(eval(PRES_LUA_PUT, "k:{a}:subs", NULL, 4, "id1", "", "v1", "2")), 2);
	assert_int_equal(ival(eval(PRES_LUA_PUT, "k:{a}:subs", NULL, 4, "id2", "", "w", "2")), 0);
	/* full: max_watchers 2 */
	assert_int_equal(ival(eval(PRES_LUA_PUT, "k:{a}:subs", NULL, 4, "id3", "", "x", "2")), 3);
	/* compare-and-set */
	assert_int_equal(ival(eval(PRES_LUA_PUT, "k:{a}:subs", NULL, 4, "id1", "old", "v2", "2")),
			 1);
	assert_int_equal(ival(eval(PRES_LUA_PUT, "k:{a}:subs", NULL, 4, "id1", "v1", "v2", "2")),
			 0);
	assert_int_equal(ival(eval(PRES_LUA_PUT, "k:{a}:subs", NULL, 4, "id9", "v1", "v2", "2")),
			 4);
	r = eval(PRES_LUA_GET, "k:{a}:subs", NULL, 1, "id1");
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 2);
	assert_true(r->element[0]->integer > 1600000000000LL);
	assert_string_equal(r->element[1]->str, "v2");
	freeReplyObject(r);
	r = eval(PRES_LUA_GET, "k:{a}:subs", NULL, 1, "nope");
	assert_int_equal(r->elements, 1);
	freeReplyObject(r);
	r = eval(PRES_LUA_ALL, "k:{a}:subs", NULL, 0);
	assert_int_equal(r->elements, 2);
	assert_int_equal(r->element[1]->elements, 4);
	freeReplyObject(r);
	/* sequence numbers: CSeq from 1, version from 0 */
	r = eval(PRES_LUA_SEQ, "k:{a}:subs", "k:{a}:pstate", 3, "id1", "1", "0");
	assert_int_equal(r->elements, 2);
	assert_int_equal(r->element[0]->integer, 1);
	assert_int_equal(r->element[1]->integer, 0);
	freeReplyObject(r);
	r = eval(PRES_LUA_SEQ, "k:{a}:subs", "k:{a}:pstate", 3, "id1", "0", "0");
	assert_int_equal(r->element[0]->integer, 2);
	freeReplyObject(r);
	r = eval(PRES_LUA_SEQ, "k:{a}:subs", "k:{a}:pstate", 3, "id1", "1", "1"); /* final */
	assert_int_equal(r->element[0]->integer, 3);
	assert_int_equal(r->element[1]->integer, 1);
	freeReplyObject(r);
	r = eval(PRES_LUA_SEQ, "k:{a}:subs", "k:{a}:pstate", 3, "id1", "1", "1"); /* gone */
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 0);
	freeReplyObject(r);
	r = srv_cmd("HLEN k:{a}:pstate");
	assert_int_equal(r->integer, 0); /* its counters went with it */
	freeReplyObject(r);
	assert_int_equal(ival(eval(PRES_LUA_DEL, "k:{a}:subs", "k:{a}:pstate", 1, "id2")), 1);
	assert_int_equal(ival(eval(PRES_LUA_DEL, "k:{a}:subs", "k:{a}:pstate", 1, "id2")), 0);
}

static void test_lua_throttle(void **state)
{
	redisReply *r;
	long long t0;

	(void)state;
	freeReplyObject(srv_cmd("FLUSHALL"));
	r = eval(PRES_LUA_THROTTLE, "k:{a}:pstate", NULL, 3, "n:presence", "60000", "0");
	assert_int_equal(r->element[0]->integer, 1);
	t0 = r->element[1]->integer;
	freeReplyObject(r);
	r = eval(PRES_LUA_THROTTLE, "k:{a}:pstate", NULL, 3, "n:presence", "60000", "0");
	assert_int_equal(r->element[0]->integer, 0);
	assert_int_equal(r->element[1]->integer, t0 + 60000); /* the end of the interval */
	freeReplyObject(r);
	/* another package is throttled apart */
	r = eval(PRES_LUA_THROTTLE, "k:{a}:pstate", NULL, 3, "n:reg", "60000", "0");
	assert_int_equal(r->element[0]->integer, 1);
	freeReplyObject(r);
	/* the coalescing timer goes through */
	r = eval(PRES_LUA_THROTTLE, "k:{a}:pstate", NULL, 3, "n:presence", "60000", "1");
	assert_int_equal(r->element[0]->integer, 1);
	freeReplyObject(r);
}

static void test_lua_pop(void **state)
{
	redisReply *r;

	(void)state;
	freeReplyObject(srv_cmd("FLUSHALL"));
	freeReplyObject(srv_cmd("ZADD k:{pres}:timers 1 s|a@x|1 2 n|a@x|presence"));
	freeReplyObject(srv_cmd("ZADD k:{pres}:timers 99999999999999 s|b@x|2"));
	r = eval(PRES_LUA_POP, "k:{pres}:timers", NULL, 1, "1");
	assert_int_equal(r->element[1]->elements, 1);
	assert_string_equal(r->element[1]->element[0]->str, "s|a@x|1");
	freeReplyObject(r);
	r = eval(PRES_LUA_POP, "k:{pres}:timers", NULL, 1, "200");
	assert_int_equal(r->element[1]->elements, 1);
	assert_string_equal(r->element[1]->element[0]->str, "n|a@x|presence");
	freeReplyObject(r);
	r = eval(PRES_LUA_POP, "k:{pres}:timers", NULL, 1, "200");
	assert_int_equal(r->element[1]->elements, 0); /* the future one stays */
	freeReplyObject(r);
	r = srv_cmd("ZCARD k:{pres}:timers");
	assert_int_equal(r->integer, 1);
	freeReplyObject(r);
}

#define RT(f) cmocka_unit_test_setup_teardown(f, case_setup, leak_check)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_sub_id),      SK_TEST(test_strip_tag),	  SK_TEST(test_substate),
	    SK_TEST(test_notify_text), SK_TEST(test_timer_parse), RT(test_lua_put_get_del),
	    RT(test_lua_throttle),     RT(test_lua_pop),
	};

	(void)srv_signal;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
