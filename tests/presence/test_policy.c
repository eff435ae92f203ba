/* policy_eval on RFC 5025's example ruleset and on rulesets where several rules
 * match one watcher: the combined action (the maximum), the combined permissions
 * (OR, union, maximum), the default, identity/sphere/validity conditions, and every
 * malformed-document path with its reason. */
#include "pres_test.h"
#include "policy.h"
#include "skein/sk_err.h"

static struct policy_result r;
static const char *why;

static int eval_doc(const char *doc, size_t len, const char *watcher, bool auth, const char *sphere,
		    time_t now)
{
	struct policy_query q = {watcher, auth, sphere, now};

	why = "unset";
	return policy_eval(doc, len, &q, POLICY_CONFIRM, &r, &why);
}

static int eval_file(const char *file, const char *watcher, bool auth, const char *sphere,
		     time_t now)
{
	size_t len;
	char *doc = load(file, &len);
	int err = eval_doc(doc, len, watcher, auth, sphere, now);

	free(doc);
	return err;
}

static void test_rfc5025_example(void **state)
{
	(void)state;
	assert_int_equal(eval_file("rfc5025.xml", "sip:user@example.com", true, NULL, 0), 0);
	assert_null(why);
	assert_int_equal(r.action, POLICY_ALLOW);
	assert_true(r.from_rules);
	assert_int_equal(r.matched, 1);
	assert_false(r.perm.all_services);
	assert_int_equal(r.perm.nschemes, 2);
	assert_string_equal(r.perm.schemes[0], "sip");
	assert_string_equal(r.perm.schemes[1], "mailto");
	assert_true(r.perm.all_persons);
	assert_false(r.perm.all_devices);
	assert_true(r.perm.activities);
	assert_false(r.perm.mood);
	assert_int_equal(r.perm.user_input, PIDF_UI_BARE);
	assert_false(r.perm.all_attributes); /* provide-unknown-attribute grants nothing yet */

	/* The same URI unauthenticated: identity never matches, the default applies. */
	assert_int_equal(eval_file("rfc5025.xml", "sip:user@example.com", false, NULL, 0), 0);
	assert_int_equal(r.action, POLICY_CONFIRM);
	assert_false(r.from_rules);
	assert_int_equal(r.matched, 0);
	assert_false(r.perm.all_persons);
	assert_int_equal(r.perm.nschemes, 0);
	/* Another watcher: no rule. */
	assert_int_equal(eval_file("rfc5025.xml", "sip:other@example.com", true, NULL, 0), 0);
	assert_int_equal(r.matched, 0);
	assert_int_equal(r.action, POLICY_CONFIRM);
	/* URI comparison: host case-insensitive, user part not, parameters ignored. */
	assert_int_equal(
	    eval_file("rfc5025.xml", "SIP:user@Example.COM;transport=tcp", true, NULL, 0), 0);
	assert_int_equal(r.action, POLICY_ALLOW);
	assert_int_equal(eval_file("rfc5025.xml", "sip:USER@example.com", true, NULL, 0), 0);
	assert_int_equal(r.matched, 0);
	assert_int_equal(eval_file("rfc5025.xml", "tel:user@example.com", true, NULL, 0), 0);
	assert_int_equal(r.matched, 0);
}

static void test_combining(void **state)
{
	(void)state;
	/* bob: domain, bob-allow, bob-polite, everyone: allow wins (30 > 20 > 10 > 0). */
	assert_int_equal(eval_file("rules_combining.xml", "sip:bob@example.com", true, NULL, 0), 0);
	assert_int_equal(r.matched, 4);
	assert_int_equal(r.action, POLICY_ALLOW);
	assert_true(r.perm.mood);	  /* from domain */
	assert_true(r.perm.activities);	  /* from bob-allow */
	assert_true(r.perm.all_services); /* from bob-allow */
	assert_true(r.perm.all_devices);  /* from bob-polite */
	assert_false(r.perm.all_persons);
	assert_false(r.perm.sphere);	     /* false OR-ed with nothing */
	assert_false(r.perm.all_attributes); /* the unknown condition never matches */
	assert_int_equal(r.perm.user_input, PIDF_UI_THRESHOLDS); /* max(thresholds, bare) */
	assert_int_equal(r.perm.nschemes, 2);			 /* sip (once), tel */
	assert_string_equal(r.perm.schemes[0], "sip");
	assert_string_equal(r.perm.schemes[1], "tel");

	/* eve is excepted from the domain: only "everyone" (block). */
	assert_int_equal(eval_file("rules_combining.xml", "sip:eve@example.com", true, NULL, 0), 0);
	assert_int_equal(r.matched, 1);
	assert_int_equal(r.action, POLICY_BLOCK);
	assert_true(r.from_rules);
	assert_false(r.perm.mood);

	/* carol: domain (confirm) + everyone (block) + no-action (no sub-handling). */
	assert_int_equal(eval_file("rules_combining.xml", "sip:carol@example.com", true, NULL, 0),
			 0);
	assert_int_equal(r.matched, 3);
	assert_int_equal(r.action, POLICY_CONFIRM);
	assert_true(r.perm.place_is);
	assert_int_equal(r.perm.nschemes, 1);

	/* Another domain (host compared case-insensitively, sub-domains are not in). */
	assert_int_equal(eval_file("rules_combining.xml", "sip:m@EXAMPLE.COM", true, NULL, 0), 0);
	assert_int_equal(r.matched, 2);
	assert_int_equal(eval_file("rules_combining.xml", "sip:m@sub.example.com", true, NULL, 0),
			 0);
	assert_int_equal(r.matched, 1);
	assert_int_equal(r.action, POLICY_BLOCK);

	/* bob unauthenticated: only the rule without conditions. */
	assert_int_equal(eval_file("rules_combining.xml", "sip:bob@example.com", false, NULL, 0),
			 0);
	assert_int_equal(r.matched, 1);
	assert_int_equal(r.action, POLICY_BLOCK);
	assert_false(r.perm.all_services);
}

static void test_sphere_validity(void **state)
{
	time_t t2026 = 1795341600; /* 2026-11-22T10:00:00Z */

	(void)state;
	assert_int_equal(eval_file("rules_time.xml", "sip:a@b", false, "home", t2026), 0);
	assert_int_equal(r.action, POLICY_ALLOW);
	assert_true(r.perm.all_persons);
	assert_int_equal(eval_file("rules_time.xml", "sip:a@b", false, "work", 1060960800), 0);
	assert_int_equal(r.action, POLICY_ALLOW); /* the first interval, its first second */
	assert_int_equal(eval_file("rules_time.xml", "sip:a@b", false, "work", 1060960799), 0);
	assert_int_equal(r.matched, 0);
	assert_int_equal(eval_file("rules_time.xml", "sip:a@b", false, "work", t2026 + 7 * 3600),
			 0);
	assert_int_equal(r.matched, 0); /* until is exclusive */
	assert_int_equal(eval_file("rules_time.xml", "sip:a@b", false, "bowling", t2026), 0);
	assert_int_equal(r.matched, 0);
	assert_int_equal(eval_file("rules_time.xml", "sip:a@b", false, NULL, t2026), 0);
	assert_int_equal(r.matched, 0);
	assert_int_equal(eval_file("rules_time.xml", "sip:a@b", false, "hom", t2026), 0);
	assert_int_equal(r.matched, 0);
}

static void test_datetime(void **state)
{
	time_t t = 0;

	(void)state;
	assert_int_equal(policy_datetime("2003-08-15T10:20:00.000-05:00", &t), 0);
	assert_int_equal(t, 1060960800);
	assert_int_equal(policy_datetime("2003-08-15T15:20:00Z", &t), 0);
	assert_int_equal(t, 1060960800);
	assert_int_equal(policy_datetime(" 2024-02-29T00:00:00 ", &t), 0);
	assert_int_equal(t, 1709164800);
	assert_int_equal(policy_datetime("1969-12-31T23:59:59Z", &t), 0);
	assert_int_equal(t, -1);
	static const char *const bad[] = {"",
					  "2003-08-15",
					  "2003-08-15T10:20",
					  "2003-13-01T00:00:00Z",
					  "2003-02-29T00:00:00Z",
					  "1900-02-29T00:00:00Z",
					  "2003-04-31T00:00:00Z",
					  "2003-08-15T25:00:00Z",
					  "2003-08-15T24:00:01Z",
					  "2003-08-15T10:20:00.Z",
					  "2003-08-15T10:20:00+5:00",
					  "2003-08-15T10:20:00+15:00",
					  "2003-08-15T10:20:00Zjunk",
					  "2003-08-15 10:20:00Z"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (policy_datetime(bad[i], &t) != SK_EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
}

#define RS                                                                                         \
	"<ruleset xmlns=\"urn:ietf:params:xml:ns:common-policy\" "                                 \
	"xmlns:pr=\"urn:ietf:params:xml:ns:pres-rules\">"

static void test_malformed(void **state)
{
	static const struct {
		const char *doc, *why;
	} cases[] = {
	    {"<ruleset", "not well-formed XML"},
	    {"<ruleset/>", "the root element must be <ruleset> in "
			   "urn:ietf:params:xml:ns:common-policy"},
	    {"<!DOCTYPE ruleset [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>" RS
	     "<rule id=\"a\">&x;</rule></ruleset>",
	     "a document type declaration is not allowed"},
	    {RS "<rule/></ruleset>", "a <rule> has no id"},
	    {RS "<rule id=\"a\"/><rule id=\"b\"/><rule id=\"a\"/></ruleset>", "duplicate rule id"},
	    {RS "<rule id=\"a\"><actions><pr:sub-handling>maybe</pr:sub-handling></actions>"
		"</rule></ruleset>",
	     "unknown <sub-handling> value"},
	    {RS "<rule id=\"a\"><transformations><pr:provide-mood>yes</pr:provide-mood>"
		"</transformations></rule></ruleset>",
	     "a provide- element is neither true nor false"},
	    {RS "<rule id=\"a\"><transformations><pr:provide-user-input>some"
		"</pr:provide-user-input></transformations></rule></ruleset>",
	     "unknown <provide-user-input> value"},
	    {RS "<rule id=\"a\"><conditions><identity><one/></identity></conditions></rule>"
		"</ruleset>",
	     "<one> without id"},
	    {RS "<rule id=\"a\"><conditions><identity><many><except/></many></identity>"
		"</conditions></rule></ruleset>",
	     "<except> without id or domain"},
	    {RS "<rule id=\"a\"><conditions><sphere/></conditions></rule></ruleset>",
	     "<sphere> without value"},
	    {RS "<rule id=\"a\"><conditions><validity><from>2003-08-15T10:20:00Z</from>"
		"</validity></conditions></rule></ruleset>",
	     "<validity> needs <from> and <until> pairs"},
	    {RS "<rule id=\"a\"><conditions><validity><until>2003-08-15T10:20:00Z</until>"
		"</validity></conditions></rule></ruleset>",
	     "<validity> needs <from> and <until> pairs"},
	    {RS "<rule id=\"a\"><conditions><validity><from>yesterday</from><until>"
		"2003-08-15T10:20:00Z</until></validity></conditions></rule></ruleset>",
	     "bad date and time in <validity>"},
	    {RS "<rule id=\"a\"><conditions><validity><x/></validity></conditions></rule>"
		"</ruleset>",
	     "unexpected element in <validity>"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (eval_doc(cases[i].doc, strlen(cases[i].doc), "sip:a@b", true, NULL, 0) !=
		    SK_EBADMSG)
			fail_msg("case %zu accepted", i);
		if (!why || strcmp(why, cases[i].why))
			fail_msg("case %zu: \"%s\", expected \"%s\"", i, why ? why : "(null)",
				 cases[i].why);
		/* An error leaves the default and nothing permitted. */
		assert_int_equal(r.action, POLICY_CONFIRM);
		assert_int_equal(r.matched, 0);
		assert_false(r.from_rules);
	}
	/* A malformed rule that does not match the watcher is reported all the same,
	 * and after a matching one whose grants are then dropped. */
	{
		const char *d =
		    RS "<rule id=\"a\"><actions><pr:sub-handling>allow</pr:sub-handling>"
		       "</actions><transformations><pr:provide-all-attributes/>"
		       "</transformations></rule><rule id=\"b\"><conditions><identity>"
		       "<one id=\"sip:z@z\"/></identity></conditions><actions>"
		       "<pr:sub-handling>never</pr:sub-handling></actions></rule>"
		       "</ruleset>";

		assert_int_equal(eval_doc(d, strlen(d), "sip:a@b", true, NULL, 0), SK_EBADMSG);
		assert_false(r.perm.all_attributes);
		assert_int_equal(r.action, POLICY_CONFIRM);
	}
	/* No watcher. */
	{
		struct policy_query q = {NULL, true, NULL, 0};

		assert_int_equal(policy_eval(RS "</ruleset>", strlen(RS "</ruleset>"), &q,
					     POLICY_BLOCK, &r, NULL),
				 SK_EINVAL);
		assert_int_equal(r.action, POLICY_BLOCK);
	}
	/* An empty ruleset: the default, which the caller chose. */
	{
		struct policy_query q = {"sip:a@b", true, NULL, 0};

		assert_int_equal(policy_eval(RS "</ruleset>", strlen(RS "</ruleset>"), &q,
					     POLICY_POLITE_BLOCK, &r, NULL),
				 0);
		assert_int_equal(r.action, POLICY_POLITE_BLOCK);
		assert_false(r.from_rules);
	}
}

static void test_action_names(void **state)
{
	(void)state;
	assert_string_equal(policy_action_name(POLICY_BLOCK), "block");
	assert_string_equal(policy_action_name(POLICY_CONFIRM), "confirm");
	assert_string_equal(policy_action_name(POLICY_POLITE_BLOCK), "polite-block");
	assert_string_equal(policy_action_name(POLICY_ALLOW), "allow");
	assert_null(policy_action_name((enum policy_action)5));
	assert_true(POLICY_BLOCK < POLICY_CONFIRM && POLICY_CONFIRM < POLICY_POLITE_BLOCK &&
		    POLICY_POLITE_BLOCK < POLICY_ALLOW);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_rfc5025_example), SK_TEST(test_combining), SK_TEST(test_sphere_validity),
	    SK_TEST(test_datetime),	   SK_TEST(test_malformed), SK_TEST(test_action_names),
	};

	if (argc > 1)
		test_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
