/* xcap_uri: document selectors, node selectors and namespace bindings (RFC 4825
 * §6), valid and invalid. */
#include <stdio.h>
#include <string.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "xcap_uri.h"

static struct xcap_uri u;

static int parse(const char *path, const char *query)
{
	return xcap_uri_parse(&u, "/xcap", path, query);
}

static void test_document(void **state)
{
	(void)state;
	assert_int_equal(parse("/xcap/resource-lists/users/sip:alice@example.com/index", ""), 0);
	assert_string_equal(u.auid, "resource-lists");
	assert_false(u.global);
	assert_string_equal(u.xui, "sip:alice@example.com");
	assert_string_equal(u.doc, "index");
	assert_int_equal(u.node, XCAP_NODE_DOC);

	/* Percent-decoding per segment; a document in a sub-directory. */
	assert_int_equal(
	    parse("/xcap/pres-rules/users/sip%3Abob%40example.com/dir/my%20rules", NULL), 0);
	assert_string_equal(u.xui, "sip:bob@example.com");
	assert_string_equal(u.doc, "dir/my rules");

	assert_int_equal(parse("/xcap/xcap-caps/global/index", NULL), 0);
	assert_true(u.global);
	assert_string_equal(u.xui, "");

	/* A root of "/" or "" is the server root. */
	assert_int_equal(xcap_uri_parse(&u, "/", "/rls-services/global/index", NULL), 0);
	assert_string_equal(u.auid, "rls-services");
	assert_int_equal(xcap_uri_parse(&u, "", "/rls-services/global/index", NULL), 0);
}

static void test_document_invalid(void **state)
{
	(void)state;
	assert_int_equal(parse("/other/resource-lists/users/sip:a@b/index", NULL), SK_ENOENT);
	assert_int_equal(parse("/xcapx/resource-lists/users/sip:a@b/index", NULL), SK_ENOENT);
	assert_int_equal(parse("/xcap/resource-lists/people/sip:a@b/index", NULL), SK_ENOENT);
	assert_int_equal(parse("/xcap/resource-lists/users/sip:a@b", NULL), SK_ENOENT);
	assert_int_equal(parse("/xcap/resource-lists/users/sip:a@b/", NULL), SK_EINVAL);
	assert_int_equal(parse("/xcap/resource-lists/users/sip:a@b//index", NULL), SK_EINVAL);
	assert_int_equal(parse("/xcap/resource-lists/users/sip:a@b/../index", NULL), SK_EINVAL);
	assert_int_equal(parse("/xcap/resource-lists/users/sip:a@b/a%2Fb", NULL), SK_EINVAL);
	assert_int_equal(parse("/xcap/resource-lists/users/sip:a@b/a%00", NULL), SK_EINVAL);
	assert_int_equal(parse("/xcap/resource-lists/users/sip:a@b/a%4", NULL), SK_EINVAL);
	assert_int_equal(parse("/xcap/resource-lists/users/sip:a@b/index/~~", NULL), SK_EINVAL);
	assert_int_equal(parse("/xcap/resource-lists/users/sip:a@b/index/~~/", NULL), SK_EINVAL);
}

static void test_selector(void **state)
{
	const char *p = "/xcap/resource-lists/users/sip:alice@example.com/index/~~/"
			"resource-lists/list%5B@name=%22friends%22%5D/entry%5B2%5D";

	(void)state;
	assert_int_equal(parse(p, NULL), 0);
	assert_int_equal(u.node, XCAP_NODE_ELEM);
	assert_int_equal(u.nsteps, 3);
	assert_string_equal(u.step[0].name, "resource-lists");
	assert_string_equal(u.step[1].name, "list");
	assert_true(u.step[1].has_attr);
	assert_string_equal(u.step[1].attr_name, "name");
	assert_string_equal(u.step[1].attr_value, "friends");
	assert_int_equal(u.step[2].pos, 2);
	assert_false(u.step[2].has_attr);
	assert_string_equal(u.selector, "resource-lists/list[@name=\"friends\"]/entry[2]");

	/* by-pos-attr, '*', single quotes with '/' and ']' inside, entity refs. */
	assert_int_equal(xcap_uri_parse_selector(&u, "a/*[3][@x='v/]w']/c[@y=\"&lt;&#65;&#x42;\"]"),
			 0);
	assert_int_equal(u.nsteps, 3);
	assert_string_equal(u.step[1].name, "*");
	assert_int_equal(u.step[1].pos, 3);
	assert_string_equal(u.step[1].attr_value, "v/]w");
	assert_string_equal(u.step[2].attr_value, "<AB");

	/* Terminal selectors. */
	assert_int_equal(xcap_uri_parse_selector(&u, "resource-lists/list[1]/@name"), 0);
	assert_int_equal(u.node, XCAP_NODE_ATTR);
	assert_int_equal(u.nsteps, 2);
	assert_string_equal(u.attr_name, "name");
	assert_int_equal(xcap_uri_parse_selector(&u, "resource-lists/namespace::*"), 0);
	assert_int_equal(u.node, XCAP_NODE_NS);
	assert_int_equal(u.nsteps, 1);
}

static void test_namespaces(void **state)
{
	const char *p =
	    "/xcap/pres-rules/users/sip:a@b.c/index/~~/cp:ruleset/cp:rule%5B@id=%22a%22%5D/"
	    "cp:actions/pr:sub-handling";

	(void)state;
	assert_int_equal(parse(p, "xmlns(cp=urn:ietf:params:xml:ns:common-policy)"
				  "xmlns(pr=urn:ietf:params:xml:ns:pres-rules)"),
			 0);
	assert_int_equal(u.nns, 2);
	assert_string_equal(u.step[0].prefix, "cp");
	assert_string_equal(u.step[3].prefix, "pr");
	assert_string_equal(xcap_uri_ns(&u, "pr"), "urn:ietf:params:xml:ns:pres-rules");
	assert_null(xcap_uri_ns(&u, "zz"));
	/* Percent-encoded query. */
	assert_int_equal(parse(p, "xmlns(cp%3Durn:ietf:params:xml:ns:common-policy)"
				  "xmlns(pr=urn:ietf:params:xml:ns:pres-rules)"),
			 0);
	/* An unbound prefix, a bad query. */
	assert_int_equal(parse(p, "xmlns(cp=urn:ietf:params:xml:ns:common-policy)"), SK_EINVAL);
	assert_int_equal(parse(p, "foo(cp=x)"), SK_EINVAL);
	assert_int_equal(parse(p, "xmlns(cp=)"), SK_EINVAL);
	assert_int_equal(parse(p, "xmlns(1cp=x)"), SK_EINVAL);
}

static void test_selector_invalid(void **state)
{
	static const char *const bad[] = {
	    "",
	    "/a",
	    "a/",
	    "a//b",
	    "a[0]",
	    "a[]",
	    "a[1",
	    "a[@x=v]",
	    "a[@x=\"v]",
	    "a[@x=\"v\"",
	    "a[@x=\"v\"][1]",
	    "a[@x=\"a<b\"]",
	    "a[@x=\"&bogus;\"]",
	    "a[@x=\"&#0;\"]",
	    "a[@=\"v\"]",
	    "1a",
	    "a:b:c",
	    "@x",
	    "a/@x/b",
	    "a/namespace::*/b",
	    "a[@x=\"v\"]x",
	    "a[99999999]",
	    "a[1]]",
	};
	char deep[XCAP_STEPS_MAX * 2 + 8] = "";

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = xcap_uri_parse_selector(&u, bad[i]);

		if (!err)
			print_error("accepted: %s\n", bad[i]);
		assert_int_not_equal(err, 0);
	}
	for (int i = 0; i <= XCAP_STEPS_MAX; i++)
		strcat(deep, i ? "/a" : "a");
	assert_int_equal(xcap_uri_parse_selector(&u, deep), SK_ERANGE);
}

static void test_unescape(void **state)
{
	char out[8];

	(void)state;
	assert_int_equal(xcap_uri_unescape(out, sizeof(out), "a%20b", 5), 0);
	assert_string_equal(out, "a b");
	assert_int_equal(xcap_uri_unescape(out, sizeof(out), "%zz", 3), SK_EINVAL);
	assert_int_equal(xcap_uri_unescape(out, sizeof(out), "%2", 2), SK_EINVAL);
	assert_int_equal(xcap_uri_unescape(out, sizeof(out), "12345678", 8), SK_ERANGE);
	assert_int_equal(xcap_uri_unescape(out, sizeof(out), "1234567", 7), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_document),   SK_TEST(test_document_invalid), SK_TEST(test_selector),
	    SK_TEST(test_namespaces), SK_TEST(test_selector_invalid), SK_TEST(test_unescape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
