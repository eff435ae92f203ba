/* reginfo_build: RFC 3680 §5.5's example document rebuilt from structs and compared
 * with the RFC's text re-parsed, the §6 flow's init and partial documents, escaping,
 * q values, stable ids, and every error path. */
#include "pres_test.h"
#include "skein/sk_err.h"
#include "reginfo.h"

static const struct reginfo_binding rfc_contacts[] = {
    {"76", "sip:user@pc887.example.com", NULL, REGINFO_ACTIVE, REGINFO_EV_REGISTERED, -1, 7322, 800,
     NULL, -1},
    {"77", "sip:user@university.edu", NULL, REGINFO_TERMINATED, REGINFO_EV_EXPIRED, -1, 3600, 500,
     NULL, -1},
};

/* pres_test.h's XPath helpers know no reginfo prefix: bind "ri" here. */
static xmlXPathObject *rxpath(xmlDoc *d, const char *expr)
{
	xmlXPathContext *ctx = xmlXPathNewContext(d);
	xmlXPathObject *o;

	assert_non_null(ctx);
	xmlXPathRegisterNs(ctx, BAD_CAST "ri", BAD_CAST REGINFO_NS);
	o = xmlXPathEvalExpression(BAD_CAST expr, ctx);
	xmlXPathFreeContext(ctx);
	if (!o)
		fail_msg("bad XPath %s", expr);
	return o;
}

static int rcount(xmlDoc *d, const char *expr)
{
	xmlXPathObject *o = rxpath(d, expr);
	int n = o->nodesetval ? o->nodesetval->nodeNr : 0;

	xmlXPathFreeObject(o);
	return n;
}

static const char *rstr(xmlDoc *d, const char *expr)
{
	static char buf[1024];
	char e[512];
	xmlXPathObject *o;

	snprintf(e, sizeof(e), "normalize-space(%s)", expr);
	o = rxpath(d, e);
	snprintf(buf, sizeof(buf), "%s", o->stringval ? (const char *)o->stringval : "");
	xmlXPathFreeObject(o);
	return buf;
}

/* Every attribute of every element of a against b (same elements, same order). */
static void same_doc(xmlDoc *a, xmlDoc *b)
{
	static const char *const attrs[] = {"id",      "state",	 "event",  "duration-registered",
					    "expires", "q",	 "callid", "cseq",
					    "aor",     "version"};
	static const char *const elems[] = {"/ri:reginfo", "//ri:registration", "//ri:contact",
					    "//ri:uri"};
	char e[256], va[1024];

	for (size_t k = 0; k < sizeof(elems) / sizeof(elems[0]); k++) {
		int n = rcount(a, elems[k]);

		assert_int_equal(n, rcount(b, elems[k]));
		for (int i = 1; i <= n; i++) {
			for (size_t j = 0; j < sizeof(attrs) / sizeof(attrs[0]); j++) {
				snprintf(e, sizeof(e), "(%s)[%d]/@%s", elems[k], i, attrs[j]);
				snprintf(va, sizeof(va), "%s", rstr(a, e));
				assert_string_equal(va, rstr(b, e));
			}
			snprintf(e, sizeof(e), "(%s)[%d]", elems[k], i);
			snprintf(va, sizeof(va), "%s", rstr(a, e));
			assert_string_equal(va, rstr(b, e));
		}
	}
}

static void test_rfc3680_example(void **state)
{
	struct reginfo_reg g = {"sip:user@example.com", "as9", rfc_contacts, 2};
	char *rfc = load("rfc3680.xml", NULL), *out = NULL;
	xmlDoc *d, *ref;

	(void)state;
	assert_int_equal(reginfo_build(0, true, &g, 1, &out), 0);
	d = reparse(out);
	ref = reparse(rfc);
	assert_string_equal(rstr(d, "/ri:reginfo/@state"), "full");
	assert_string_equal(rstr(d, "/ri:reginfo/ri:registration/@state"), "active");
	assert_string_equal(rstr(d, "//ri:contact[@id='76']/@q"), "0.8");
	assert_int_equal(rcount(d, "//ri:contact/@expires"), 0);
	assert_int_equal(rcount(d, "//ri:contact/@callid"), 0);
	assert_int_equal(rcount(d, "//ri:contact/@cseq"), 0);
	assert_int_equal(rcount(d, "//ri:contact/ri:display-name"), 0);
	same_doc(d, ref);
	xmlFreeDoc(d);
	xmlFreeDoc(ref);
	out = sk_deref(out);
	free(rfc);
}

/* RFC 3680 §6: the first NOTIFY of a subscription before anyone registered is a
 * full document with the registration in state "init"; then a partial one with the
 * new contact; all contacts gone makes the registration terminated. */
static void test_rfc3680_flow(void **state)
{
	struct reginfo_binding c = {"76",
				    "sip:joe@pc34.example.com",
				    NULL,
				    REGINFO_ACTIVE,
				    REGINFO_EV_REGISTERED,
				    3600,
				    0,
				    -1,
				    "9987@pc34",
				    298};
	struct reginfo_reg g = {"sip:joe@example.com", "a7", NULL, 0};
	char *out = NULL;
	xmlDoc *d;

	(void)state;
	assert_int_equal(reginfo_build(0, true, &g, 1, &out), 0);
	d = reparse(out);
	assert_string_equal(rstr(d, "/ri:reginfo/@version"), "0");
	assert_string_equal(rstr(d, "/ri:reginfo/ri:registration/@aor"), "sip:joe@example.com");
	assert_string_equal(rstr(d, "/ri:reginfo/ri:registration/@id"), "a7");
	assert_string_equal(rstr(d, "/ri:reginfo/ri:registration/@state"), "init");
	assert_int_equal(rcount(d, "//ri:contact"), 0);
	xmlFreeDoc(d);
	out = sk_deref(out);

	g.b = &c;
	g.n = 1;
	assert_int_equal(reginfo_build(1, false, &g, 1, &out), 0);
	d = reparse(out);
	assert_string_equal(rstr(d, "/ri:reginfo/@version"), "1");
	assert_string_equal(rstr(d, "/ri:reginfo/@state"), "partial");
	assert_string_equal(rstr(d, "//ri:registration/@state"), "active");
	assert_string_equal(rstr(d, "//ri:contact/@event"), "registered");
	assert_string_equal(rstr(d, "//ri:contact/@duration-registered"), "0");
	assert_string_equal(rstr(d, "//ri:contact/@expires"), "3600");
	assert_string_equal(rstr(d, "//ri:contact/@callid"), "9987@pc34");
	assert_string_equal(rstr(d, "//ri:contact/@cseq"), "298");
	assert_int_equal(rcount(d, "//ri:contact/@q"), 0);
	assert_string_equal(rstr(d, "//ri:contact/ri:uri"), "sip:joe@pc34.example.com");
	xmlFreeDoc(d);
	out = sk_deref(out);

	c.state = REGINFO_TERMINATED;
	c.event = REGINFO_EV_UNREGISTERED;
	c.expires = 0;
	assert_int_equal(reginfo_build(2, false, &g, 1, &out), 0);
	d = reparse(out);
	assert_string_equal(rstr(d, "//ri:registration/@state"), "terminated");
	assert_string_equal(rstr(d, "//ri:contact/@state"), "terminated");
	assert_string_equal(rstr(d, "//ri:contact/@event"), "unregistered");
	xmlFreeDoc(d);
	out = sk_deref(out);
}

static void test_escaping_q_and_ids(void **state)
{
	struct reginfo_binding c[] = {
	    {"k1", "sip:a@h;transport=tcp;x=\"<&>\"", "Tom \"T\"\t& <J> \xc3\xa9", REGINFO_ACTIVE,
	     REGINFO_EV_CREATED, 60, 5, 1000, "a\"b<c>@d", 7},
	    {"k2", "sip:b@h", NULL, REGINFO_TERMINATED, REGINFO_EV_REJECTED, -1, -1, 0, "", -1},
	    {"k3", "sip:c@h", NULL, REGINFO_ACTIVE, REGINFO_EV_REFRESHED, 0, -1, 125, NULL, 0},
	    {"k4", "sip:d@h", NULL, REGINFO_ACTIVE, REGINFO_EV_SHORTENED, -1, -1, 5, NULL, -1},
	};
	struct reginfo_reg g[] = {{"sip:x&y@example.com", NULL, c, 4},
				  {"sip:z@example.com", "z\"1", NULL, 0}};
	char *out = NULL, id[32], id2[32];
	xmlDoc *d;

	(void)state;
	assert_int_equal(reginfo_build(4294967295UL, true, g, 2, &out), 0);
	d = reparse(out);
	assert_string_equal(rstr(d, "/ri:reginfo/@version"), "4294967295");
	assert_int_equal(rcount(d, "//ri:registration"), 2);
	assert_string_equal(rstr(d, "(//ri:registration)[1]/@aor"), "sip:x&y@example.com");
	reginfo_id(id, sizeof(id), "r", "sip:x&y@example.com");
	assert_string_equal(rstr(d, "(//ri:registration)[1]/@id"), id);
	assert_string_equal(rstr(d, "(//ri:registration)[2]/@id"), "z\"1");
	assert_string_equal(rstr(d, "(//ri:registration)[2]/@state"), "init");
	assert_string_equal(rstr(d, "//ri:contact[@id='k1']/ri:uri"),
			    "sip:a@h;transport=tcp;x=\"<&>\"");
	/* normalize-space folds the TAB; check it survived as a reference instead. */
	assert_non_null(strstr(out, "&#9;"));
	assert_string_equal(rstr(d, "//ri:contact[@id='k1']/ri:display-name"),
			    "Tom \"T\" & <J> \xc3\xa9");
	assert_string_equal(rstr(d, "//ri:contact[@id='k1']/@callid"), "a\"b<c>@d");
	assert_string_equal(rstr(d, "//ri:contact[@id='k1']/@q"), "1");
	assert_string_equal(rstr(d, "//ri:contact[@id='k1']/@event"), "created");
	assert_string_equal(rstr(d, "//ri:contact[@id='k2']/@q"), "0.0");
	assert_int_equal(rcount(d, "//ri:contact[@id='k2']/@callid"), 0);
	assert_int_equal(rcount(d, "//ri:contact[@id='k2']/@expires"), 0);
	assert_string_equal(rstr(d, "//ri:contact[@id='k3']/@q"), "0.125");
	assert_string_equal(rstr(d, "//ri:contact[@id='k3']/@expires"), "0");
	assert_string_equal(rstr(d, "//ri:contact[@id='k3']/@cseq"), "0");
	assert_string_equal(rstr(d, "//ri:contact[@id='k4']/@q"), "0.005");
	xmlFreeDoc(d);
	out = sk_deref(out);

	/* Ids: stable, distinct for distinct keys, prefixed, always 16 hex digits. */
	reginfo_id(id2, sizeof(id2), "r", "sip:x&y@example.com");
	assert_string_equal(id, id2);
	reginfo_id(id2, sizeof(id2), "r", "sip:x&y@example.org");
	assert_string_not_equal(id, id2);
	assert_int_equal(strlen(id), 17);
	reginfo_id(id2, sizeof(id2), "c", "");
	assert_string_equal(id2, "ccbf29ce484222325");
}

static void test_names(void **state)
{
	static const char *const ev[] = {"registered", "created",      "refreshed",
					 "shortened",  "expired",      "deactivated",
					 "probation",  "unregistered", "rejected"};

	(void)state;
	for (int i = 0; i < 9; i++)
		assert_string_equal(reginfo_event_name((enum reginfo_event)i), ev[i]);
	assert_null(reginfo_event_name((enum reginfo_event)9));
	assert_string_equal(reginfo_state_name(REGINFO_ACTIVE), "active");
	assert_string_equal(reginfo_state_name(REGINFO_TERMINATED), "terminated");
	assert_null(reginfo_state_name((enum reginfo_state)2));
}

static void test_errors(void **state)
{
	struct reginfo_binding c[2];
	struct reginfo_reg g;
	char *out = (char *)"sentinel";

	(void)state;
#define RESET()                                                                                    \
	(memcpy(c, rfc_contacts, sizeof(c)),                                                       \
	 g = (struct reginfo_reg){"sip:u@example.com", "x", c, 1})
#define BAD() assert_int_equal(reginfo_build(0, true, &g, 1, &out), SK_EINVAL), assert_null(out)
	RESET();
	c[0].id = NULL;
	BAD();
	RESET();
	c[0].id = "";
	BAD();
	RESET();
	c[0].uri = "";
	BAD();
	RESET();
	c[0].state = (enum reginfo_state)2;
	BAD();
	RESET();
	c[0].event = (enum reginfo_event) - 1;
	BAD();
	RESET();
	c[0].q_milli = 1001;
	BAD();
	RESET();
	c[0].display_name = "bad \xc0\xaf utf-8";
	BAD();
	RESET();
	c[0].callid = "bell \x07";
	BAD();
	RESET();
	c[0].uri = "sip:\xed\xa0\x80@x"; /* a surrogate */
	BAD();
	RESET();
	c[1].id = c[0].id; /* duplicate id in one registration */
	g.n = 2;
	BAD();
	RESET();
	g.aor = NULL;
	BAD();
	RESET();
	g.id = "";
	BAD();
	RESET();
	g.aor = "sip:\x01@x";
	BAD();
	RESET();
	g.b = NULL;
	BAD();
	assert_int_equal(reginfo_build(0, true, NULL, 1, &out), SK_EINVAL);
	assert_int_equal(reginfo_build(0, true, NULL, 0, NULL), SK_EINVAL);
	/* The same, right, passes: each fault above is the only one. */
	RESET();
	g.n = 2;
	assert_int_equal(reginfo_build(0, true, &g, 1, &out), 0);
	out = sk_deref(out);
	assert_int_equal(reginfo_build(0, true, NULL, 0, &out), 0);
	assert_non_null(strstr(out, "<reginfo"));
	out = sk_deref(out);
	sk_mem_fail_after(1);
	assert_int_equal(reginfo_build(0, true, &g, 1, &out), SK_ENOMEM);
	assert_null(out);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_rfc3680_example),
	    SK_TEST(test_rfc3680_flow),
	    SK_TEST(test_escaping_q_and_ids),
	    SK_TEST(test_names),
	    SK_TEST(test_errors),
	};

	if (argc > 1)
		test_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
