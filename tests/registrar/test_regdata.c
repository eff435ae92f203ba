/* regdata: AOR/domain normalisation, key names, decoding, the REGISTER checks, and the
 * registration and lookup scripts against a real redis-server. */
#include <uv.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "regdata.h"
#include "regdata_lookup.h"

#include "sk_test_redis.h"
#include "regdata_script.h"

#define RT(f) cmocka_unit_test_setup_teardown(f, case_setup, leak_check)
#define N(a)  (sizeof(a) / sizeof((a)[0]))

/* ---- normalisation and keys ---- */

static void test_aor_norm(void **state)
{
	static const struct {
		const char *in, *out;
	} good[] = {
		{"alice@Example.COM", "alice@example.com"},
		{"Alice@example.com", "Alice@example.com"}, /* user part is case-sensitive */
		{"%61lice@x.org", "alice@x.org"},	    /* escaped unreserved: decoded */
		{"a%2fb@x.org", "a%2Fb@x.org"},		    /* other escapes: upper-cased hex */
		{"+1-555.0100;x=y@10.0.0.1", "+1-555.0100;x=y@10.0.0.1"},
	};
	static const char *const bad[] = {
		"alice",	   "@example.com", "alice@",	   "al ice@example.com",
		"a{b}@example.com", "alice@x:5060", "alice@-x.com", "alice@x-.com",
		"alice@x..com",	   "alice@x.com.", "a%4@x.com",	   "a%zz@x.com",
		"alice@[::1]",	   "",		   "a@b@c.example", /* '@' must be escaped */
	};
	char out[REGDATA_AOR_MAX], big[600];
	const char *why;

	(void)state;
	for (size_t i = 0; i < N(good); i++) {
		why = NULL;
		assert_int_equal(regdata_aor_norm(out, sizeof(out), good[i].in, &why), 0);
		assert_string_equal(out, good[i].out);
	}
	for (size_t i = 0; i < N(bad); i++) {
		why = NULL;
		assert_int_equal(regdata_aor_norm(out, sizeof(out), bad[i], &why), SK_EINVAL);
		assert_non_null(why);
		assert_string_equal(out, "");
	}
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[300] = '@';
	assert_int_equal(regdata_aor_norm(out, sizeof(out), big, &why), SK_EINVAL);
	assert_int_equal(regdata_aor_norm(out, 8, "alice@example.com", &why), SK_EINVAL);
	assert_int_equal(regdata_aor_norm(NULL, 8, "a@b", &why), SK_EINVAL);

	assert_int_equal(regdata_domain_norm(out, sizeof(out), "Example.COM", &why), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(regdata_domain_norm(out, sizeof(out), "exa_mple.com", &why), SK_EINVAL);
	assert_int_equal(regdata_domain_norm(out, sizeof(out), "a@b.com", &why), SK_EINVAL);
	assert_int_equal(regdata_domain_norm(out, sizeof(out), "", &why), SK_EINVAL);
}

static void test_keys(void **state)
{
	char k[128];

	(void)state;
	assert_int_equal(regdata_key_domains(k, sizeof(k), "t"), 0);
	assert_string_equal(k, "t:{domains}:set");
	assert_int_equal(regdata_key_users(k, sizeof(k), "t", "example.com"), 0);
	assert_string_equal(k, "t:{example.com}:users");
	assert_int_equal(regdata_key_cred(k, sizeof(k), "t", "a@example.com"), 0);
	assert_string_equal(k, "t:{a@example.com}:cred");
	assert_int_equal(regdata_key_reg(k, sizeof(k), "t", "a@example.com"), 0);
	assert_string_equal(k, "t:{a@example.com}:reg");
	assert_int_equal(regdata_key_exp(k, sizeof(k), "t", "a@example.com"), 0);
	assert_string_equal(k, "t:{a@example.com}:exp");
	assert_int_equal(regdata_key_meta(k, sizeof(k), "t", "a@example.com"), 0);
	assert_string_equal(k, "t:{a@example.com}:meta");
	assert_int_equal(regdata_key_reg(k, 10, "t", "a@example.com"), SK_ERANGE);
	assert_int_equal(regdata_binding_key(k, sizeof(k), "sip:a@h", "<urn:uuid:1>", 2), 0);
	assert_string_equal(k, "<urn:uuid:1>|2");
	assert_int_equal(regdata_binding_key(k, sizeof(k), "sip:a@h", "", 2), 0);
	assert_string_equal(k, "sip:a@h");
	assert_int_equal(regdata_binding_key(k, 4, "sip:a@h", NULL, 0), SK_ERANGE);
}

/* ---- decoding: hand-made replies ---- */

static size_t pack(uint8_t *buf, const char *contact, uint32_t q, uint64_t reg_ms)
{
	Skein__Sip__V1__Binding b = SKEIN__SIP__V1__BINDING__INIT;

	b.contact = (char *)contact;
	b.q_milli = q;
	b.registered_ms = reg_ms;
	return skein__sip__v1__binding__pack(&b, buf);
}

static void test_decode_sort(void **state)
{
	uint8_t blobs[4][64];
	redisReply el[8], top, *ptr[8];
	struct regdata_bindings bs;
	size_t skipped = 99;
	static const char junk[] = "\xff\xff\xff";

	(void)state;
	memset(el, 0, sizeof(el));
	el[0].len = pack(blobs[0], "sip:low@h", 500, 3);
	el[2].len = pack(blobs[1], "sip:old@h", 1000, 1);
	el[4].len = pack(blobs[2], "sip:new@h", 1000, 2);
	for (int i = 0; i < 3; i++) {
		el[2 * i].type = REDIS_REPLY_STRING;
		el[2 * i].str = (char *)blobs[i];
		el[2 * i + 1].type = REDIS_REPLY_INTEGER;
		el[2 * i + 1].integer = 10 + i;
	}
	el[6].type = REDIS_REPLY_STRING;
	el[6].str = (char *)junk;
	el[6].len = 3;
	el[7].type = REDIS_REPLY_INTEGER;
	for (int i = 0; i < 8; i++)
		ptr[i] = &el[i];
	memset(&top, 0, sizeof(top));
	top.type = REDIS_REPLY_ARRAY;
	top.element = ptr;
	top.elements = 8;
	assert_int_equal(regdata_bindings_from_reply(&bs, &top, &skipped), 0);
	assert_int_equal(skipped, 1);
	assert_int_equal(bs.n, 3);
	assert_string_equal(bs.b[0]->contact, "sip:new@h");
	assert_int_equal(bs.b[0]->expires_in, 12);
	assert_string_equal(bs.b[1]->contact, "sip:old@h");
	assert_string_equal(bs.b[2]->contact, "sip:low@h");
	assert_int_equal(bs.b[2]->expires_in, 10);
	regdata_bindings_free(&bs);
	assert_null(bs.b);

	top.elements = 7; /* odd */
	assert_int_equal(regdata_bindings_from_reply(&bs, &top, NULL), SK_EPROTO);
	top.elements = 2;
	el[1].type = REDIS_REPLY_NIL;
	assert_int_equal(regdata_bindings_from_reply(&bs, &top, NULL), SK_EPROTO);
	top.type = REDIS_REPLY_STRING;
	assert_int_equal(regdata_bindings_from_reply(&bs, &top, NULL), SK_EPROTO);
	assert_int_equal(regdata_bindings_from_reply(&bs, NULL, NULL), SK_EPROTO);
	top.type = REDIS_REPLY_ARRAY;
	top.elements = 0;
	assert_int_equal(regdata_bindings_from_reply(&bs, &top, NULL), 0);
	assert_int_equal(bs.n, 0);
	regdata_bindings_free(&bs);
}

/* ---- a REGISTER request builder ---- */

struct rq {
	Skein__Sip__V1__RegisterRequest r;
	Skein__Sip__V1__Contact c[REGDATA_REQ_CONTACTS_MAX + 2], *cp[REGDATA_REQ_CONTACTS_MAX + 2];
};

static const struct regdata_policy pol = {3600, 60, 7200, 3};

static void rq_init(struct rq *q, const char *call_id, uint32_t cseq, int64_t expires)
{
	memset(q, 0, sizeof(*q));
	skein__sip__v1__register_request__init(&q->r);
	q->r.aor = "alice@example.com";
	q->r.call_id = (char *)call_id;
	q->r.cseq = cseq;
	q->r.expires = expires;
	q->r.edge = "n1/edge";
	q->r.transport = "udp";
	q->r.source = "127.0.0.1:5062";
	q->r.user_agent = "test";
	q->r.contacts = q->cp;
}

static Skein__Sip__V1__Contact *rq_contact(struct rq *q, const char *uri, int64_t expires)
{
	Skein__Sip__V1__Contact *c = &q->c[q->r.n_contacts];

	skein__sip__v1__contact__init(c);
	c->uri = (char *)uri;
	c->expires = expires;
	c->q_milli = 1000;
	q->cp[q->r.n_contacts++] = c;
	return c;
}

static void test_prepare_checks(void **state)
{
	struct regdata_reg_cmd *cmd;
	struct regdata_reg_result res;
	struct rq q;

	(void)state;
	rq_init(&q, "c1", 1, 0);
	q.r.star = true;
	rq_contact(&q, "sip:a@h", -1);
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), 0);
	assert_null(cmd);
	assert_int_equal(res.code, 400);

	rq_init(&q, "c1", 1, -1); /* star without Expires: 0 */
	q.r.star = true;
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), 0);
	assert_null(cmd);
	assert_int_equal(res.code, 400);

	rq_init(&q, "c1", 1, 30); /* header below min_expires */
	rq_contact(&q, "sip:a@h", -1);
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), 0);
	assert_null(cmd);
	assert_int_equal(res.code, 423);
	assert_int_equal(res.min_expires, 60);
	q.c[0].expires = 0; /* the parameter wins: a removal is fine */
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), 0);
	assert_non_null(cmd);
	assert_int_equal(cmd->nkeys, 3);
	assert_int_equal(cmd->argc, 8 + 3);
	assert_string_equal(cmd->argv[0], "t:{alice@example.com}:reg");
	assert_string_equal(cmd->argv[9], "0");
	cmd = sk_deref(cmd);

	rq_init(&q, "c1", 1, -1);
	q.r.aor = "not an aor";
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), 0);
	assert_int_equal(res.code, 400);
	rq_init(&q, "", 1, -1);
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), 0);
	assert_int_equal(res.code, 400);
	rq_init(&q, "c1", 1, -1);
	for (int i = 0; i < REGDATA_REQ_CONTACTS_MAX + 1; i++)
		rq_contact(&q, "sip:a@h", -1);
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), 0);
	assert_int_equal(res.code, 400);
	/* A control character in a contact or instance (byte 1 would read as a field
	 * beside a binding, regdata.h): 400, nothing sent. */
	rq_init(&q, "c1", 1, -1);
	rq_contact(&q, "\1sip:a@h", -1);
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), 0);
	assert_null(cmd);
	assert_int_equal(res.code, 400);
	rq_init(&q, "c1", 1, -1);
	rq_contact(&q, "sip:a@h", -1)->instance = "<urn:\x7f>";
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), 0);
	assert_null(cmd);
	assert_int_equal(res.code, 400);
	rq_init(&q, "c1", 1, -1);
	rq_contact(&q, "sip:a@h", -1)->q_milli = 1001;
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), 0);
	assert_int_equal(res.code, 400);
	assert_int_equal(regdata_register_prepare(&cmd, &res, NULL, &q.r, &pol), SK_EINVAL);

	/* Out of memory: an error, no command, nothing leaked (leak_check). */
	rq_init(&q, "c1", 1, -1);
	rq_contact(&q, "sip:a@h", -1)->instance = "<urn:uuid:1>";
	sk_mem_fail_after(1);
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), SK_ENOMEM);
	assert_null(cmd);
	sk_mem_fail_after(0);
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), 0);
	assert_non_null(cmd);
	assert_string_equal(cmd->argv[3], "c1");
	assert_string_equal(cmd->argv[5], "u");
	assert_string_equal(cmd->argv[8], "<urn:uuid:1>|0");
	assert_string_equal(cmd->argv[9], "3600");
	assert_true(cmd->lens[10] > 0); /* the packed Binding */
	cmd = sk_deref(cmd);
	/* A cluster name that makes the keys too long. */
	{
		char big[600];

		memset(big, 'c', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(regdata_register_prepare(&cmd, &res, big, &q.r, &pol), SK_ERANGE);
		assert_null(cmd);
	}

	/* Expiry: parameter, else header, else default; capped at max. */
	{
		Skein__Sip__V1__Contact c = SKEIN__SIP__V1__CONTACT__INIT;

		c.expires = -1;
		assert_int_equal(regdata_contact_expires(&c, -1, &pol), 3600);
		assert_int_equal(regdata_contact_expires(&c, 120, &pol), 120);
		assert_int_equal(regdata_contact_expires(&c, 99999, &pol), 7200);
		c.expires = 300;
		assert_int_equal(regdata_contact_expires(&c, 120, &pol), 300);
		c.expires = 0;
		assert_int_equal(regdata_contact_expires(&c, 120, &pol), 0);
	}
}

/* ---- the scripts against redis-server ---- */

/* reg_run_ex's flag for the edge's refresh script (regdata_refresh_prepare and
 * REGDATA_LUA_REFRESH) instead of the registration script. */
#define EDGE_SCRIPT 0x100u
/* Redis' time the edge's clock gives the refresh script; 0: the script reads TIME. */
static uint64_t edge_now_ms;

/* EVAL the registration script (or the refresh script) for q; res must be released. */
static void reg_run_ex(struct rq *q, const struct regdata_policy *p,
		       struct regdata_reg_result *res, unsigned flags)
{
	struct regdata_reg_cmd *cmd;
	bool edge = flags & EDGE_SCRIPT;
	const char *argv[3 + 14 + 3 * REGDATA_REQ_CONTACTS_MAX];
	size_t lens[N(argv)];
	char nk[8];
	redisReply *rep;
	struct timeval tv = {2, 0};
	redisContext *c;

	regdata_reg_result_release(res);
	if (edge)
		assert_int_equal(regdata_refresh_prepare(&cmd, "t", &q->r, p, edge_now_ms), 0);
	else
		assert_int_equal(regdata_register_prepare_ex(&cmd, res, "t", &q->r, p, flags), 0);
	assert_non_null(cmd);
	snprintf(nk, sizeof(nk), "%d", cmd->nkeys);
	argv[0] = "EVAL";
	argv[1] = edge ? REGDATA_LUA_REFRESH : REGDATA_LUA_REGISTER;
	argv[2] = nk;
	for (int i = 0; i < 3; i++)
		lens[i] = strlen(argv[i]);
	for (int i = 0; i < cmd->argc; i++) {
		argv[3 + i] = cmd->argv[i];
		lens[3 + i] = cmd->lens[i];
	}
	c = redisConnectWithTimeout("127.0.0.1", srv.port, tv);
	assert_non_null(c);
	assert_int_equal(c->err, 0);
	rep = redisCommandArgv(c, 3 + cmd->argc, argv, lens);
	assert_non_null(rep);
	if (rep->type == REDIS_REPLY_ERROR)
		fail_msg("script error: %s", rep->str);
	regdata_reg_result_release(res);
	assert_int_equal(regdata_register_result(res, rep), 0);
	freeReplyObject(rep);
	redisFree(c);
	sk_deref(cmd);
}

static void reg_run(struct rq *q, const struct regdata_policy *p, struct regdata_reg_result *res)
{
	reg_run_ex(q, p, res, 0);
}

static void flush(void)
{
	redisReply *r = srv_cmd("FLUSHALL");

	assert_non_null(r);
	freeReplyObject(r);
}

static void test_add_refresh_remove(void **state)
{
	struct regdata_reg_result res = {0};
	uint64_t first;
	struct rq q;

	(void)state;
	flush();
	rq_init(&q, "c1", 1, -1);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.added, 1);
	assert_int_equal(res.bindings.n, 1);
	assert_string_equal(res.bindings.b[0]->contact, "sip:alice@192.0.2.1");
	assert_string_equal(res.bindings.b[0]->call_id, "c1");
	assert_string_equal(res.bindings.b[0]->edge, "n1/edge");
	assert_in_range(res.bindings.b[0]->expires_in, 3599, 3600);
	first = res.bindings.b[0]->registered_ms;
	assert_true(first > 1600000000000ULL);
	assert_true(res.bindings.b[0]->expires_at_ms >= first + 3599000);
	/* One key per AOR (the binding and its "\1" field), which expires by itself
	 * after the last binding (+ slack). */
	assert_int_equal(srv_int("HLEN %s", "t:{alice@example.com}:reg"), 2);
	assert_int_equal(srv_int("HEXISTS %s \1sip:alice@192.0.2.1", "t:{alice@example.com}:reg"),
			 1);
	assert_in_range(srv_int("PTTL %s", "t:{alice@example.com}:reg"), 3600000,
			3600000 + REGDATA_TTL_SLACK_MS);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:exp"), 0);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:meta"), 0);

	/* Refresh: same Call-ID, higher CSeq, a second contact with a header expiry. */
	rq_init(&q, "c1", 2, 600);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	rq_contact(&q, "sip:alice@192.0.2.2", 120);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.added, 1);
	assert_int_equal(res.refreshed, 1);
	assert_int_equal(res.bindings.n, 2);
	for (size_t i = 0; i < 2; i++) {
		const Skein__Sip__V1__Binding *b = res.bindings.b[i];

		if (!strcmp(b->contact, "sip:alice@192.0.2.1")) {
			assert_int_equal(b->registered_ms, first); /* kept on refresh */
			assert_in_range(b->expires_in, 599, 600);
			assert_int_equal(b->cseq, 2);
		} else {
			assert_in_range(b->expires_in, 119, 120);
		}
	}
	/* Query: no contacts, nothing changes. */
	rq_init(&q, "other", 1, -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_true(res.query);
	assert_int_equal(res.bindings.n, 2);
	/* Remove one. */
	rq_init(&q, "c1", 3, -1);
	rq_contact(&q, "sip:alice@192.0.2.2", 0);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.removed, 1);
	assert_int_equal(res.bindings.n, 1);
	assert_string_equal(res.bindings.b[0]->contact, "sip:alice@192.0.2.1");
	/* Removing an unknown contact changes nothing and is fine. */
	rq_init(&q, "c1", 4, 0);
	rq_contact(&q, "sip:nobody@192.0.2.9", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.removed, 0);
	assert_int_equal(res.bindings.n, 1);
	/* Contact: * with Expires: 0 removes everything, and the keys go. */
	rq_init(&q, "c1", 5, 0);
	q.r.star = true;
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.removed, 1);
	assert_int_equal(res.bindings.n, 0);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:reg"), 0);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:exp"), 0);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:meta"), 0);
	regdata_reg_result_release(&res);
}

static void test_cseq_order_and_replay(void **state)
{
	struct regdata_reg_result res = {0};
	uint64_t first;
	struct rq q;

	(void)state;
	flush();
	rq_init(&q, "c1", 10, -1);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.added, 1);
	first = res.bindings.b[0]->registered_ms;

	/* The very same request again (a bus retry after the first was applied): 200 with
	 * the current bindings, nothing changed. */
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_true(res.replay);
	assert_int_equal(res.added + res.refreshed + res.removed, 0);
	assert_int_equal(res.bindings.n, 1);

	/* Same CSeq, different contents: out of order. */
	q.c[0].q_milli = 500;
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 500);
	assert_string_equal(res.reason, "Out-of-order CSeq for this Call-ID");
	assert_int_equal(res.bindings.n, 1);
	assert_int_equal(res.bindings.b[0]->q_milli, 1000); /* unchanged */

	/* Same CSeq, same contact plus a new one: not a replay either, nothing stored. */
	rq_init(&q, "c1", 10, -1);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	rq_contact(&q, "sip:alice@192.0.2.7", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 500);
	assert_int_equal(res.bindings.n, 1);

	/* Lower CSeq in the same Call-ID: 500, nothing changes. */
	rq_init(&q, "c1", 9, -1);
	rq_contact(&q, "sip:alice@192.0.2.1", 0);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 500);
	assert_int_equal(res.bindings.n, 1);

	/* Another Call-ID (the UA restarted) replaces it whatever its CSeq. */
	rq_init(&q, "c2", 1, -1);
	rq_contact(&q, "sip:alice@192.0.2.1", 300);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.refreshed, 1);
	assert_int_equal(res.bindings.n, 1);
	assert_string_equal(res.bindings.b[0]->call_id, "c2");
	assert_true(res.bindings.b[0]->registered_ms >= first);

	/* A removal replayed after it was applied is a harmless no-op. */
	rq_init(&q, "c2", 2, -1);
	rq_contact(&q, "sip:alice@192.0.2.1", 0);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.removed, 1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.removed, 0);
	assert_int_equal(res.bindings.n, 0);
	regdata_reg_result_release(&res);
}

static void test_instance_and_limit(void **state)
{
	struct regdata_reg_result res = {0};
	Skein__Sip__V1__Contact *c;
	struct rq q;

	(void)state;
	flush();
	/* RFC 5626 §6: the same instance and reg-id replaces the binding, new URI or not. */
	rq_init(&q, "c1", 1, -1);
	c = rq_contact(&q, "sip:alice@192.0.2.1;ob", -1);
	c->instance = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";
	c->reg_id = 1;
	reg_run(&q, &pol, &res);
	assert_int_equal(res.added, 1);
	rq_init(&q, "c1", 2, -1);
	c = rq_contact(&q, "sip:alice@198.51.100.4:40000;ob", -1);
	c->instance = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";
	c->reg_id = 1;
	reg_run(&q, &pol, &res);
	assert_int_equal(res.refreshed, 1);
	assert_int_equal(res.bindings.n, 1);
	assert_string_equal(res.bindings.b[0]->contact, "sip:alice@198.51.100.4:40000;ob");
	assert_int_equal(res.bindings.b[0]->reg_id, 1);
	/* Another reg-id of the same instance is a second flow. */
	rq_init(&q, "c1", 3, -1);
	c = rq_contact(&q, "sip:alice@198.51.100.4:40002;ob", -1);
	c->instance = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";
	c->reg_id = 2;
	reg_run(&q, &pol, &res);
	assert_int_equal(res.added, 1);
	assert_int_equal(res.bindings.n, 2);

	/* max_contacts 3: a fourth and fifth binding are refused, nothing stored. */
	rq_init(&q, "c9", 1, -1);
	rq_contact(&q, "sip:alice@192.0.2.10", -1);
	rq_contact(&q, "sip:alice@192.0.2.11", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 403);
	assert_string_equal(res.reason, "Too many registered contacts");
	assert_int_equal(res.bindings.n, 2);
	/* One more is fine (3). */
	rq_init(&q, "c9", 2, -1);
	rq_contact(&q, "sip:alice@192.0.2.10", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.bindings.n, 3);
	/* Replacing one while adding one keeps the count: allowed. */
	rq_init(&q, "c9", 3, -1);
	rq_contact(&q, "sip:alice@192.0.2.10", 0);
	rq_contact(&q, "sip:alice@192.0.2.12", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.bindings.n, 3);
	/* With the limit lowered under the count, refreshes still work. */
	{
		struct regdata_policy low = pol;

		low.max_contacts = 1;
		rq_init(&q, "c9", 4, -1);
		rq_contact(&q, "sip:alice@192.0.2.12", -1);
		reg_run(&q, &low, &res);
		assert_int_equal(res.code, 200);
		assert_int_equal(res.refreshed, 1);
	}
	regdata_reg_result_release(&res);
}

/* Expired a second ago, as far as the scripts can tell: the expiry that leads the
 * binding's "\1" field set to 1000 ms after the epoch. */
static void age(const char *member, const char *aor)
{
	char key[128], field[256];
	redisReply *r;

	snprintf(key, sizeof(key), "t:{%s}:reg", aor);
	snprintf(field, sizeof(field), "\1%s", member);
	r = srv_cmd("EVAL %s 1 %s %s",
		    "local m = redis.call('HGET', KEYS[1], ARGV[1]) "
		    "return redis.call('HSET', KEYS[1], ARGV[1], (string.gsub(m, '^%d+', '1000')))",
		    key, field);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	freeReplyObject(r);
}

static void test_expiry_and_lookup(void **state)
{
	struct regdata_reg_result res = {0};
	struct regdata_bindings bs;
	struct rq q;

	(void)state;
	flush();
	rq_init(&q, "c1", 1, -1);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	rq_contact(&q, "sip:alice@192.0.2.2", -1)->q_milli = 100;
	reg_run(&q, &pol, &res);
	assert_int_equal(res.bindings.n, 2);
	assert_string_equal(res.bindings.b[0]->contact, "sip:alice@192.0.2.1"); /* higher q */

	script_lookup("alice@example.com", &bs);
	assert_int_equal(bs.n, 2);
	assert_in_range(bs.b[0]->expires_in, 3599, 3600);
	regdata_bindings_free(&bs);

	/* An expired binding is never returned, and the lookup purges it, with its
	 * "\1" field. */
	age("sip:alice@192.0.2.2", "alice@example.com");
	script_lookup("alice@example.com", &bs);
	assert_int_equal(bs.n, 1);
	assert_string_equal(bs.b[0]->contact, "sip:alice@192.0.2.1");
	regdata_bindings_free(&bs);
	assert_int_equal(srv_int("HLEN %s", "t:{alice@example.com}:reg"), 2);
	assert_int_equal(srv_int("HEXISTS %s \1sip:alice@192.0.2.1", "t:{alice@example.com}:reg"),
			 1);
	/* The last one purged: the key goes. */
	age("sip:alice@192.0.2.1", "alice@example.com");
	script_lookup("alice@example.com", &bs);
	assert_int_equal(bs.n, 0);
	regdata_bindings_free(&bs);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:reg"), 0);
	rq_init(&q, "c1", 1, -1);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.added, 1);

	/* Expiry seen by the registration script: purged before anything else, so the
	 * expired binding does not count against max_contacts and is not returned. */
	age("sip:alice@192.0.2.1", "alice@example.com");
	rq_init(&q, "c1", 2, -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.bindings.n, 0);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:reg"), 0);

	/* A real short expiry: 1 s, polled (bounded) until the lookup drops it. */
	{
		struct regdata_policy quick = pol;
		uint64_t until;

		quick.min_expires = 1;
		rq_init(&q, "c1", 3, 1);
		rq_contact(&q, "sip:alice@192.0.2.3", -1);
		reg_run(&q, &quick, &res);
		assert_int_equal(res.bindings.n, 1);
		assert_int_equal(res.bindings.b[0]->expires_in, 1);
		until = now_ms() + 3000;
		for (;;) {
			rq_init(&q, "c1", 4, -1);
			reg_run(&q, &quick, &res);
			if (!res.bindings.n)
				break;
			assert_true(now_ms() < until);
			usleep(50000);
		}
		/* Nothing is left behind. */
		assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:reg"), 0);
	}
	regdata_reg_result_release(&res);
}

static char *srv_str(const char *fmt, const char *arg, char *out, size_t size)
{
	redisReply *r = srv_cmd(fmt, arg);

	assert_non_null(r);
	if (r->type == REDIS_REPLY_NIL)
		snprintf(out, size, "(nil)");
	else
		snprintf(out, size, "%s", r->str);
	freeReplyObject(r);
	return out;
}

/* What the scripts keep beside alice's binding of contact, without the expiry that
 * leads it: "<cseq> <registered_ms> <call-id>"; *exp_ms the expiry. */
static char *meta_get(const char *contact, char *out, size_t size, uint64_t *exp_ms)
{
	char field[128], *sp;
	redisReply *r;

	snprintf(field, sizeof(field), "\1%s", contact);
	r = srv_cmd("HGET %s %s", "t:{alice@example.com}:reg", field);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	sp = strchr(r->str, ' ');
	assert_non_null(sp);
	if (exp_ms)
		*exp_ms = strtoull(r->str, NULL, 10);
	snprintf(out, size, "%s", sp + 1);
	freeReplyObject(r);
	return out;
}

#define CRED  "t:{alice@example.com}:cred"
#define NCKEY "t:{alice@example.com}:nc:n1"
#define HA1A  "0123456789abcdef0123456789abcdef"
#define HA1B  "fedcba9876543210fedcba9876543210"

/* An empty Redis with alice's MD5 HA1, and au naming her cred and nonce-count keys. */
static void auth_setup(Skein__Sip__V1__RegisterAuth *au)
{
	redisReply *r;

	flush();
	r = srv_cmd("HSET %s ha1_md5 %s", CRED, HA1A);
	assert_non_null(r);
	freeReplyObject(r);
	au->cred_key = CRED;
	au->field = "ha1_md5";
	au->nc_key = NCKEY;
	au->nc_ttl = 360;
}

/* RegisterRequest.auth: the digest's Redis half in the same script (issue 6). */
static void test_auth_check(void **state)
{
	struct regdata_reg_result res = {0};
	Skein__Sip__V1__RegisterAuth au = SKEIN__SIP__V1__REGISTER_AUTH__INIT;
	Skein__Sip__V1__RegisterReply rep = SKEIN__SIP__V1__REGISTER_REPLY__INIT;
	struct regdata_reg_cmd *cmd;
	char buf[256];
	struct rq q;
	redisReply *r;

	(void)state;
	auth_setup(&au);

	/* STALE: the edge's HA1 is not the stored one; nothing is written. */
	rq_init(&q, "c1", 1, -1);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	q.r.auth = &au;
	au.ha1 = HA1B;
	au.nc = 1;
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 401);
	assert_int_equal(res.auth_check, SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_STALE);
	assert_string_equal(res.current_ha1, HA1A);
	assert_int_equal(res.bindings.n, 0);
	regdata_reg_reply_fill(&rep, &res);
	assert_int_equal(rep.code, 401);
	assert_int_equal(rep.auth_check, SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_STALE);
	assert_string_equal(rep.current_ha1, HA1A);
	assert_int_equal(srv_int("EXISTS %s", NCKEY), 0);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:reg"), 0);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:exp"), 0);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:meta"), 0);

	/* The right HA1: registered, and the nonce-count kept with its TTL. */
	au.ha1 = HA1A;
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.auth_check, SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_NONE);
	assert_int_equal(res.added, 1);
	assert_int_equal(res.bindings.n, 1);
	assert_string_equal(srv_str("GET %s", NCKEY, buf, sizeof(buf)), "1");
	assert_in_range(srv_int("TTL %s", NCKEY), 350, 360);

	/* REPLAY: the same nc again (a new CSeq, or it would be a registration replay);
	 * nothing is written: the binding keeps CSeq 1, the nc stays 1. */
	rq_init(&q, "c1", 2, 600);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	q.r.auth = &au;
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 401);
	assert_int_equal(res.auth_check, SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_REPLAY);
	assert_int_equal(res.bindings.n, 0);
	meta_get("sip:alice@192.0.2.1", buf, sizeof(buf), NULL);
	assert_int_equal(strncmp(buf, "1 ", 2), 0);
	assert_string_equal(srv_str("GET %s", NCKEY, buf, sizeof(buf)), "1");
	assert_in_range(srv_int("PTTL %s", "t:{alice@example.com}:reg"), 3500000,
			3600000 + REGDATA_TTL_SLACK_MS);
	/* A lower nc is a replay too; the next one passes. */
	au.nc = 0x10;
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.refreshed, 1);
	assert_in_range(res.bindings.b[0]->expires_in, 599, 600);
	assert_string_equal(srv_str("GET %s", NCKEY, buf, sizeof(buf)), "16");
	au.nc = 0xf;
	q.r.cseq = 3;
	reg_run(&q, &pol, &res);
	assert_int_equal(res.auth_check, SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_REPLAY);

	/* The user deleted, or no HA1 of that algorithm: STALE with "". */
	au.nc = 0x11;
	au.field = "ha1_sha256";
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 401);
	assert_int_equal(res.auth_check, SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_STALE);
	assert_string_equal(res.current_ha1, "");
	au.field = "ha1_md5";
	r = srv_cmd("DEL %s", CRED);
	assert_non_null(r);
	freeReplyObject(r);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.auth_check, SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_STALE);
	assert_string_equal(res.current_ha1, "");
	assert_string_equal(srv_str("GET %s", NCKEY, buf, sizeof(buf)), "16");
	regdata_reg_result_release(&res);

	/* Keys outside the AOR's hash slot, or an unknown field: refused before Redis. */
	au.cred_key = "t:{bob@example.com}:cred";
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), SK_EINVAL);
	assert_null(cmd);
	au.cred_key = CRED;
	au.nc_key = "t:nc:n1";
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), SK_EINVAL);
	au.nc_key = NCKEY;
	au.field = "password";
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), SK_EINVAL);
	au.field = "ha1_md5";
	assert_int_equal(regdata_register_prepare(&cmd, &res, "t", &q.r, &pol), 0);
	assert_non_null(cmd);
	assert_int_equal(cmd->nkeys, 5);
	sk_deref(cmd);
	regdata_reg_result_release(&res);
}

/* REGDATA_REG_REFRESH_ONLY (the edge's refreshes, docs/edge.md): written only when
 * every contact extends a live binding; anything else is deferred with nothing
 * written, the nonce-count included. */
static void test_refresh_only(void **state)
{
	struct regdata_reg_result res = {0};
	Skein__Sip__V1__RegisterAuth au = SKEIN__SIP__V1__REGISTER_AUTH__INIT;
	char buf[256];
	struct rq q;

	(void)state;
	auth_setup(&au);
	au.ha1 = HA1A;
	au.nc = 1;

	/* An addition: deferred, nothing written (no binding, no nonce-count). */
	rq_init(&q, "c1", 1, 600);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	q.r.auth = &au;
	reg_run_ex(&q, &pol, &res, REGDATA_REG_REFRESH_ONLY);
	assert_true(res.deferred);
	assert_int_equal(res.code, 0);
	assert_int_equal(res.bindings.n, 0);
	assert_int_equal(srv_int("EXISTS %s", NCKEY), 0);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:reg"), 0);
	/* the same request the registrar's way */
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.added, 1);
	assert_false(res.deferred);

	/* A refresh (higher CSeq, same Call-ID): written, the nonce-count recorded. */
	rq_init(&q, "c1", 2, 900);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	q.r.auth = &au;
	au.nc = 2;
	reg_run_ex(&q, &pol, &res, REGDATA_REG_REFRESH_ONLY);
	assert_int_equal(res.code, 200);
	assert_false(res.deferred);
	assert_int_equal(res.refreshed, 1);
	assert_int_equal(res.added + res.removed, 0);
	assert_int_equal(res.bindings.n, 1);
	assert_in_range(res.bindings.b[0]->expires_in, 899, 900);
	assert_string_equal(srv_str("GET %s", NCKEY, buf, sizeof(buf)), "2");
	meta_get("sip:alice@192.0.2.1", buf, sizeof(buf), NULL);
	assert_int_equal(strncmp(buf, "2 ", 2), 0);

	/* The same nonce-count on a later CSeq: refused, nothing written. */
	q.r.cseq = 3;
	reg_run_ex(&q, &pol, &res, REGDATA_REG_REFRESH_ONLY);
	assert_int_equal(res.code, 401);
	assert_int_equal(res.auth_check, SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_REPLAY);
	meta_get("sip:alice@192.0.2.1", buf, sizeof(buf), NULL);
	assert_int_equal(strncmp(buf, "2 ", 2), 0);

	/* Same or older CSeq in the Call-ID (a replay or out of order), a second
	 * contact, a removal: deferred, and the nonce-count is left for the registrar. */
	au.nc = 3;
	for (int i = 0; i < 4; i++) {
		rq_init(&q, "c1", i == 0 ? 2 : i == 1 ? 1 : 4, 600);
		rq_contact(&q, "sip:alice@192.0.2.1", i == 3 ? 0 : -1);
		if (i == 2)
			rq_contact(&q, "sip:alice@192.0.2.2", -1);
		q.r.auth = &au;
		reg_run_ex(&q, &pol, &res, REGDATA_REG_REFRESH_ONLY);
		assert_true(res.deferred);
		assert_string_equal(srv_str("GET %s", NCKEY, buf, sizeof(buf)), "2");
	}
	meta_get("sip:alice@192.0.2.1", buf, sizeof(buf), NULL);
	assert_int_equal(strncmp(buf, "2 ", 2), 0);
	assert_int_equal(srv_int("HLEN %s", "t:{alice@example.com}:reg"), 2);

	/* Another Call-ID replacing the live binding is a refresh too. */
	rq_init(&q, "c2", 1, 600);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	q.r.auth = &au;
	reg_run_ex(&q, &pol, &res, REGDATA_REG_REFRESH_ONLY);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.refreshed, 1);
	assert_string_equal(srv_str("GET %s", NCKEY, buf, sizeof(buf)), "3");
	regdata_reg_result_release(&res);
}

/* Redis' clock (the scripts' time), ms. */
static uint64_t redis_now_ms(void)
{
	redisReply *r = srv_cmd("TIME");
	uint64_t ms;

	assert_non_null(r);
	assert_int_equal(regdata_time_ms(r, &ms), 0);
	freeReplyObject(r);
	return ms;
}

/* What a one-binding refresh leaves in Redis and answers. */
struct snap {
	int code;
	uint32_t refreshed, n;
	int64_t expires_in;
	char contact[64], meta[128];
	int64_t exp_in_ms, score_in_ms, pttl[3];
	bool first_kept;
};

static void refresh_snapshot(unsigned flags, struct snap *s)
{
	static const char *const keys[3] = {"t:{alice@example.com}:reg",
					    "t:{alice@example.com}:exp",
					    "t:{alice@example.com}:meta"};
	struct regdata_reg_result res = {0};
	Skein__Sip__V1__RegisterAuth au = SKEIN__SIP__V1__REGISTER_AUTH__INIT;
	Skein__Sip__V1__Binding *b;
	char first[128], *sp;
	uint64_t t0, score;
	redisReply *r;
	struct rq q;

	memset(s, 0, sizeof(*s));
	auth_setup(&au); /* the edge's refreshes carry the digest's Redis half */
	au.ha1 = HA1A;
	rq_init(&q, "c1", 1, 600);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.added, 1);
	meta_get("sip:alice@192.0.2.1", first, sizeof(first), NULL);
	sp = strchr(first, ' ');
	assert_non_null(sp);
	rq_init(&q, "c1", 2, 900);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	q.r.auth = &au;
	t0 = redis_now_ms();
	reg_run_ex(&q, &pol, &res, flags);
	s->code = res.code;
	s->refreshed = res.refreshed;
	s->n = (uint32_t)res.bindings.n;
	if (res.bindings.n) {
		s->expires_in = res.bindings.b[0]->expires_in;
		snprintf(s->contact, sizeof(s->contact), "%s", res.bindings.b[0]->contact);
	}
	meta_get("sip:alice@192.0.2.1", s->meta, sizeof(s->meta), &score);
	r = srv_cmd("HGET %s sip:alice@192.0.2.1", keys[0]);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	b = regdata_binding_decode(r->str, r->len);
	assert_non_null(b);
	s->exp_in_ms = (int64_t)(b->expires_at_ms - t0);
	/* the first registration's time, from the meta written then, is kept */
	s->first_kept = b->registered_ms == strtoull(sp + 1, NULL, 10) &&
			strstr(s->meta, sp) == strchr(s->meta, ' ');
	skein__sip__v1__binding__free_unpacked(b, NULL);
	freeReplyObject(r);
	s->score_in_ms = (int64_t)(score - t0);
	for (int i = 0; i < 3; i++)
		s->pttl[i] = srv_int("PTTL %s", keys[i]);
	regdata_reg_result_release(&res);
}

/* The edge's refresh of alice's first contact (Call-ID c1, 900 s) with CSeq cseq,
 * by the refresh script (flags EDGE_SCRIPT) or the registration script's
 * refresh-only mode (REGDATA_REG_REFRESH_ONLY), with her stored HA1. */
static void edge_refresh_ex(struct rq *q, struct regdata_reg_result *res, uint32_t cseq,
			    unsigned flags)
{
	static Skein__Sip__V1__RegisterAuth au = SKEIN__SIP__V1__REGISTER_AUTH__INIT;
	redisReply *r = srv_cmd("HSET %s ha1_md5 %s", CRED, HA1A);

	assert_non_null(r);
	freeReplyObject(r);
	au.cred_key = CRED;
	au.field = "ha1_md5";
	au.nc_key = NCKEY;
	au.ha1 = HA1A;
	rq_init(q, "c1", cseq, 900);
	rq_contact(q, "sip:alice@192.0.2.1", -1);
	q->r.auth = &au;
	reg_run_ex(q, &pol, res, flags);
}

static void edge_refresh(struct rq *q, struct regdata_reg_result *res, uint32_t cseq)
{
	edge_refresh_ex(q, res, cseq, EDGE_SCRIPT);
}

static void snap_same(const struct snap *x, const struct snap *g)
{
	assert_int_equal(x->code, 200);
	assert_int_equal(x->code, g->code);
	assert_int_equal(x->refreshed, 1);
	assert_int_equal(x->refreshed, g->refreshed);
	assert_int_equal(x->n, 1);
	assert_int_equal(x->n, g->n);
	assert_int_equal(x->expires_in, 900);
	assert_int_equal(x->expires_in, g->expires_in);
	assert_string_equal(x->contact, g->contact);
	assert_true(x->first_kept);
	assert_int_equal(strncmp(x->meta, "2 ", 2), 0);
	assert_string_equal(strrchr(x->meta, ' '), strrchr(g->meta, ' '));
	/* times are Redis' at each run: equal to the request's few milliseconds */
	assert_in_range(x->exp_in_ms, 899000, 901000);
	assert_true(x->score_in_ms == x->exp_in_ms);
	assert_in_range(x->pttl[0], 900000 + REGDATA_TTL_SLACK_MS - 2000,
			900000 + REGDATA_TTL_SLACK_MS);
	/* one key per AOR: the three-key layout's exp and meta are not made */
	for (int i = 1; i < 3; i++)
		assert_int_equal(x->pttl[i], -2);
}

/* The edge's refresh of an AOR's binding by the refresh script (issue 6) and by the
 * registration script's refresh-only mode must leave exactly what the registrar's
 * general path leaves — binding, its "\1" field (expiry, new CSeq, first
 * registration kept), the key's TTL — and answer the same; with another binding,
 * live or expired, too. */
static void test_refresh_fast_path(void **state)
{
	static const unsigned ways[2] = {EDGE_SCRIPT, REGDATA_REG_REFRESH_ONLY};
	struct regdata_reg_result res = {0};
	struct snap x, general;
	struct rq q;

	(void)state;
	refresh_snapshot(0, &general);
	assert_true(general.first_kept);
	snap_same(&general, &general);
	for (int w = 0; w < 2; w++) {
		refresh_snapshot(ways[w], &x);
		snap_same(&x, &general);

		/* two live bindings: the edge's refresh of one is written, both answered,
		 * the key kept for the later expiry */
		flush();
		rq_init(&q, "c1", 1, 600);
		rq_contact(&q, "sip:alice@192.0.2.1", -1);
		rq_contact(&q, "sip:alice@192.0.2.2", 1800);
		reg_run(&q, &pol, &res);
		assert_int_equal(res.added, 2);
		edge_refresh_ex(&q, &res, 2, ways[w]);
		assert_int_equal(res.code, 200);
		assert_int_equal(res.refreshed, 1);
		assert_int_equal(res.bindings.n, 2);
		assert_in_range(srv_int("PTTL %s", "t:{alice@example.com}:reg"),
				1800000 + REGDATA_TTL_SLACK_MS - 2000,
				1800000 + REGDATA_TTL_SLACK_MS);
		/* the other one expired: purged on the way, the refresh still written, the
		 * key kept for this one's expiry */
		age("sip:alice@192.0.2.2", "alice@example.com");
		edge_refresh_ex(&q, &res, 3, ways[w]);
		assert_int_equal(res.code, 200);
		assert_int_equal(res.refreshed, 1);
		assert_int_equal(res.bindings.n, 1);
		assert_string_equal(res.bindings.b[0]->contact, "sip:alice@192.0.2.1");
		assert_int_equal(srv_int("HLEN %s", "t:{alice@example.com}:reg"), 2);
		assert_in_range(srv_int("PTTL %s", "t:{alice@example.com}:reg"),
				900000 + REGDATA_TTL_SLACK_MS - 2000,
				900000 + REGDATA_TTL_SLACK_MS);
		/* a refresh of an expired only binding is not one: deferred */
		age("sip:alice@192.0.2.1", "alice@example.com");
		edge_refresh_ex(&q, &res, 4, ways[w]);
		assert_true(res.deferred);
	}
	regdata_reg_result_release(&res);
}

static void hset(const char *field, const char *value)
{
	redisReply *r = srv_cmd("HSET t:{alice@example.com}:reg %s %s", field, value);

	assert_non_null(r);
	freeReplyObject(r);
}

/* What the refresh script (the edge's, for one contact) writes and what it leaves
 * to the registrar's script, and the requests it is never given. */
static void test_refresh_script(void **state)
{
	struct regdata_reg_result res = {0};
	Skein__Sip__V1__RegisterAuth au = SKEIN__SIP__V1__REGISTER_AUTH__INIT;
	struct regdata_reg_cmd *cmd;
	char buf[256], first[64];
	struct rq q;

	(void)state;
	/* Not candidates (the general way): two contacts, Contact: *, a removal, no
	 * digest, an expiry under min_expires (423), a bad AOR (400). */
	for (int i = 0; i < 6; i++) {
		rq_init(&q, "c1", 2, i == 4 ? 10 : 600);
		if (i == 1)
			q.r.star = true;
		else
			rq_contact(&q, "sip:alice@192.0.2.1", i == 2 ? 0 : -1);
		if (i == 0)
			rq_contact(&q, "sip:alice@192.0.2.2", -1);
		if (i == 5)
			q.r.aor = "alice{x}@example.com";
		if (i != 3)
			q.r.auth = &au;
		au.cred_key = CRED;
		au.field = "ha1_md5";
		au.nc_key = NCKEY;
		au.ha1 = HA1A;
		cmd = (void *)1;
		assert_int_equal(regdata_refresh_prepare(&cmd, "t", &q.r, &pol, 0), 0);
		assert_null(cmd);
	}
	/* a cred key of another slot: refused outright */
	au.cred_key = "t:{bob@example.com}:cred";
	rq_init(&q, "c1", 2, 600);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	q.r.auth = &au;
	assert_int_equal(regdata_refresh_prepare(&cmd, "t", &q.r, &pol, 0), SK_EINVAL);
	assert_null(cmd);

	/* No binding: an addition, deferred with nothing written. */
	auth_setup(&au);
	edge_refresh(&q, &res, 2);
	assert_true(res.deferred);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:reg"), 0);
	rq_init(&q, "c1", 1, 600);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.added, 1);
	meta_get("sip:alice@192.0.2.1", first, sizeof(first), NULL);

	/* The HA1 changed since the edge cached it: 401 with the stored one, nothing
	 * written. */
	{
		redisReply *r = srv_cmd("HSET %s ha1_md5 %s", CRED, HA1B);

		assert_non_null(r);
		freeReplyObject(r);
		au.ha1 = HA1A;
		rq_init(&q, "c1", 2, 900);
		rq_contact(&q, "sip:alice@192.0.2.1", -1);
		q.r.auth = &au;
		reg_run_ex(&q, &pol, &res, EDGE_SCRIPT);
		assert_int_equal(res.code, 401);
		assert_int_equal(res.auth_check, SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_STALE);
		assert_string_equal(res.current_ha1, HA1B);
		meta_get("sip:alice@192.0.2.1", buf, sizeof(buf), NULL);
		assert_string_equal(buf, first);
	}

	/* The same or an older CSeq in the Call-ID (replay, out of order): deferred. */
	edge_refresh(&q, &res, 1);
	assert_true(res.deferred);
	edge_refresh(&q, &res, 0);
	assert_true(res.deferred);
	meta_get("sip:alice@192.0.2.1", buf, sizeof(buf), NULL);
	assert_string_equal(buf, first);

	/* A higher CSeq: written, the first registration's time kept ("<cseq> <first>
	 * <call-id>" after the expiry). */
	edge_refresh(&q, &res, 5); /* with HA1A stored again */
	assert_int_equal(res.code, 200);
	assert_int_equal(res.refreshed, 1);
	meta_get("sip:alice@192.0.2.1", buf, sizeof(buf), NULL);
	assert_int_equal(strncmp(buf, "5 ", 2), 0);
	assert_string_equal(strchr(buf, ' '), strchr(first, ' '));

	/* Another Call-ID: a refresh too, the first registration's time now this one. */
	rq_init(&q, "c9", 1, 900);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	q.r.auth = &au;
	reg_run_ex(&q, &pol, &res, EDGE_SCRIPT);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.refreshed, 1);
	meta_get("sip:alice@192.0.2.1", buf, sizeof(buf), NULL);
	assert_int_equal(strncmp(buf, "1 ", 2), 0);
	assert_non_null(strstr(buf, " c9"));
	assert_true(strtoull(buf + 2, NULL, 10) > strtoull(first + 2, NULL, 10));

	/* The time from the edge's clock (regdata_clock): expiry and first registration
	 * are that time's, exactly; a time past the binding's expiry makes it an
	 * addition (deferred). */
	{
		uint64_t t = redis_now_ms() + 5000, exp_ms;

		edge_now_ms = t;
		rq_init(&q, "c8", 1, 900);
		rq_contact(&q, "sip:alice@192.0.2.1", -1);
		q.r.auth = &au;
		reg_run_ex(&q, &pol, &res, EDGE_SCRIPT);
		assert_int_equal(res.code, 200);
		assert_int_equal(res.bindings.n, 1);
		assert_true(res.bindings.b[0]->expires_at_ms == t + 900000);
		assert_true(res.bindings.b[0]->registered_ms == t);
		meta_get("sip:alice@192.0.2.1", buf, sizeof(buf), &exp_ms);
		assert_true(exp_ms == t + 900000);
		edge_now_ms = t + 900000;
		q.r.cseq = 2;
		reg_run_ex(&q, &pol, &res, EDGE_SCRIPT);
		edge_now_ms = 0;
		assert_true(res.deferred);
	}

	/* A "\1" field without its binding (left by hand or by a crash of an older
	 * version): purged with the refresh, as the general script's load() does. */
	hset("\1sip:alice@192.0.2.9", "99999999999999 1 1 x");
	edge_refresh(&q, &res, 6);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.bindings.n, 1);
	assert_int_equal(srv_int("HLEN %s", "t:{alice@example.com}:reg"), 2);

	/* Another binding still in the three-key layout (no "\1" field): deferred, for
	 * the registrar's script to move it. */
	hset("sip:alice@192.0.2.8", "x");
	edge_refresh(&q, &res, 7);
	assert_true(res.deferred);
	assert_int_equal(srv_int("HLEN %s", "t:{alice@example.com}:reg"), 3);

	/* The contact's "\1" field alone, beside another binding: an addition
	 * (announced by the registrar), not a refresh. */
	flush();
	rq_init(&q, "c2", 1, 600);
	rq_contact(&q, "sip:alice@192.0.2.2", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.added, 1);
	hset("\1sip:alice@192.0.2.1", "99999999999999 1 1700000000000 c1");
	edge_refresh(&q, &res, 2);
	assert_true(res.deferred);
	assert_int_equal(srv_int("HLEN %s", "t:{alice@example.com}:reg"), 3);
	regdata_reg_result_release(&res);
}

/* alice's AOR rewritten into the three-key layout of versions before the one hash:
 * the expiry of each binding in a ZSET, "<cseq> <registered_ms> <call-id>" in a
 * second hash, the same TTL on all three. */
static void to_legacy(void)
{
	redisReply *r = srv_cmd(
	    "EVAL %s 3 t:{alice@example.com}:reg t:{alice@example.com}:exp "
	    "t:{alice@example.com}:meta",
	    "local z = redis.call('HGETALL', KEYS[1]) "
	    "local ttl = redis.call('PTTL', KEYS[1]) "
	    "for i = 1, #z, 2 do "
	    "  if string.byte(z[i]) == 1 then "
	    "    local e, rest = string.match(z[i + 1], '^(%d+) (.*)$') "
	    "    redis.call('ZADD', KEYS[2], e, string.sub(z[i], 2)) "
	    "    redis.call('HSET', KEYS[3], string.sub(z[i], 2), rest) "
	    "    redis.call('HDEL', KEYS[1], z[i]) "
	    "  end "
	    "end "
	    "redis.call('PEXPIRE', KEYS[2], ttl) "
	    "return redis.call('PEXPIRE', KEYS[3], ttl)");

	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	assert_int_equal(r->integer, 1);
	freeReplyObject(r);
}

/* Bindings stored by earlier versions (three keys) are moved into the one hash by
 * the first script that reads them, their CSeq, Call-ID and first registration kept;
 * a binding without an expiry there is dropped. */
static void test_legacy_layout(void **state)
{
	struct regdata_reg_result res = {0};
	char buf[128];
	uint64_t first, exp_ms;
	struct rq q;

	(void)state;
	flush();
	rq_init(&q, "c1", 5, 600);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	rq_contact(&q, "sip:alice@192.0.2.2", 300);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.added, 2);
	first = res.bindings.b[0]->registered_ms;
	to_legacy();
	assert_int_equal(srv_int("HLEN %s", "t:{alice@example.com}:reg"), 2);
	assert_int_equal(srv_int("ZCARD %s", "t:{alice@example.com}:exp"), 2);
	/* an orphan of the old layout: a binding the ZSET does not know */
	freeReplyObject(srv_cmd("HSET t:{alice@example.com}:reg sip:alice@192.0.2.9 x"));

	/* An older CSeq in the Call-ID: 500, as the old meta says. The move is made
	 * all the same (what any read does); nothing of the request is written. */
	rq_init(&q, "c1", 4, 600);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.code, 500);
	assert_int_equal(res.bindings.n, 2);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:exp"), 0);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:meta"), 0);
	assert_int_equal(srv_int("HLEN %s", "t:{alice@example.com}:reg"), 4);
	assert_int_equal(srv_int("HEXISTS %s sip:alice@192.0.2.9", "t:{alice@example.com}:reg"),
			 0);
	meta_get("sip:alice@192.0.2.1", buf, sizeof(buf), &exp_ms);
	assert_int_equal(strncmp(buf, "5 ", 2), 0);
	assert_true(exp_ms == res.bindings.b[0]->expires_at_ms ||
		    exp_ms == res.bindings.b[1]->expires_at_ms);

	/* The edge's refresh after the move: written, the first registration kept. */
	edge_refresh(&q, &res, 6);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.refreshed, 1);
	for (size_t i = 0; i < res.bindings.n; i++)
		if (!strcmp(res.bindings.b[i]->contact, "sip:alice@192.0.2.1"))
			assert_int_equal(res.bindings.b[i]->registered_ms, first);

	/* The edge's refresh of a lone binding in the old layout: the refresh script
	 * leaves it to the registrar (nothing written, the old keys kept); the
	 * registration script's refresh-only mode moves it, then writes. */
	flush();
	edge_refresh(&q, &res, 1);
	assert_true(res.deferred);
	rq_init(&q, "c1", 1, 600);
	rq_contact(&q, "sip:alice@192.0.2.1", -1);
	reg_run(&q, &pol, &res);
	assert_int_equal(res.added, 1);
	to_legacy();
	edge_refresh(&q, &res, 2);
	assert_true(res.deferred);
	assert_int_equal(srv_int("HLEN %s", "t:{alice@example.com}:reg"), 1);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:exp"), 1);
	edge_refresh_ex(&q, &res, 2, REGDATA_REG_REFRESH_ONLY);
	assert_int_equal(res.code, 200);
	assert_int_equal(res.refreshed, 1);
	assert_int_equal(res.bindings.n, 1);
	assert_int_equal(srv_int("HLEN %s", "t:{alice@example.com}:reg"), 2);
	assert_int_equal(srv_int("EXISTS %s", "t:{alice@example.com}:exp"), 0);
	meta_get("sip:alice@192.0.2.1", buf, sizeof(buf), NULL);
	assert_int_equal(strncmp(buf, "2 ", 2), 0);
	regdata_reg_result_release(&res);
}

static void test_result_shape(void **state)
{
	struct regdata_reg_result res;
	redisReply *r;

	(void)state;
	r = srv_cmd("EVAL %s 0", "return {200, 'nonsense', 0, 0, 0}");
	assert_non_null(r);
	assert_int_equal(regdata_register_result(&res, r), SK_EPROTO);
	assert_int_equal(res.code, 500);
	freeReplyObject(r);
	r = srv_cmd("EVAL %s 0", "return {200, 'ok', 0, 0}");
	assert_non_null(r);
	assert_int_equal(regdata_register_result(&res, r), SK_EPROTO);
	freeReplyObject(r);
	assert_int_equal(regdata_register_result(&res, NULL), SK_EPROTO);
	/* a STALE answer carries the current HA1 */
	r = srv_cmd("EVAL %s 0", "return {401, 'stale', 0, 0, 0}");
	assert_non_null(r);
	assert_int_equal(regdata_register_result(&res, r), SK_EPROTO);
	freeReplyObject(r);
	r = srv_cmd("EVAL %s 0", "return {401, 'nc', 0, 0, 0}");
	assert_non_null(r);
	assert_int_equal(regdata_register_result(&res, r), 0);
	assert_int_equal(res.auth_check, SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_REPLAY);
	freeReplyObject(r);
	regdata_reg_result_release(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		SK_TEST(test_aor_norm),		  SK_TEST(test_keys),
		SK_TEST(test_decode_sort),	  SK_TEST(test_prepare_checks),
		RT(test_add_refresh_remove),	  RT(test_cseq_order_and_replay),
		RT(test_instance_and_limit),	  RT(test_expiry_and_lookup),
		RT(test_legacy_layout),
		RT(test_result_shape),		  RT(test_auth_check),
		RT(test_refresh_only),		  RT(test_refresh_fast_path),
		RT(test_refresh_script),
	};

	(void)srv_signal; /* sk_test_redis.h's outage helper: not needed here */
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
