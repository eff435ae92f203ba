/* rlsdoc: RFC 4826's example rls-services and resource-lists documents (§3.3, §4.3)
 * into service URIs and flattened member lists; XCAP URI references (resource-list,
 * external, entry-ref), percent-encoded or not; what is refused; out of memory. */
#include "pres_test.h"
#include "rlsdoc.h"
#include "skein/sk_buf.h"
#include "skein/sk_err.h"

/* RFC 4826 §4, plus a service for another package and a nested inline list. */
static const char rls[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\"\n"
    "   xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\">\n"
    " <service uri=\"sip:mybuddies@example.com\">\n"
    "  <resource-list>http://xcap.example.com/xcap-root/resource-lists/users/"
    "sip:joe@example.com/index/~~/resource-lists/list%5b@name=%22l1%22%5d</resource-list>\n"
    "  <packages><package>presence</package></packages>\n"
    " </service>\n"
    " <service uri=\"sip:marketing@example.com\">\n"
    "   <list name=\"marketing\">\n"
    "     <rl:display-name>Marketing</rl:display-name>\n"
    "     <rl:entry uri=\"sip:joe@example.com\"/>\n"
    "     <rl:entry uri=\"sip:sudhir@example.com\">"
    "<rl:display-name>Sudhir</rl:display-name></rl:entry>\n"
    "     <rl:list name=\"inner\"><rl:entry uri=\"sip:ann@example.com\"/>"
    "<rl:entry uri=\"sip:joe@example.com\"/></rl:list>\n"
    "     <rl:external anchor=\"http://x/resource-lists/users/sip:joe@example.com/index/~~/"
    "resource-lists/list%5b@name=%22l2%22%5d\"/>\n"
    "   </list>\n"
    "   <packages><package>presence</package></packages>\n"
    " </service>\n"
    " <service uri=\"sip:regs@example.com\">\n"
    "   <list><rl:entry uri=\"sip:x@example.com\"/></list>\n"
    "   <packages><package>reg</package></packages>\n"
    " </service>\n"
    " <service uri=\"sip:all@example.com\"><list/></service>\n"
    "</rls-services>\n";

/* RFC 4826 §3, shortened; l1 nests a list and refers to an entry of l2. */
static const char rl[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">\n"
    " <list name=\"l1\">\n"
    "  <entry uri=\"sip:bill@example.com\"><display-name>Bill Doe</display-name></entry>\n"
    "  <entry-ref ref=\"resource-lists/users/sip:joe@example.com/index/~~/"
    "resource-lists/list%5b@name=%22l2%22%5d/entry%5b@uri=%22sip:petri@example.com%22%5d\"/>\n"
    "  <list name=\"close\"><entry uri=\"sip:joe@example.com\"/></list>\n"
    " </list>\n"
    " <list name=\"l2\">\n"
    "  <entry uri=\"sip:petri@example.com\"><display-name>Petri</display-name></entry>\n"
    "  <entry uri=\"sip:ann@example.com\"/>\n"
    " </list>\n"
    "</resource-lists>\n";

static void test_services(void **state)
{
	char **v;
	size_t n;
	const char *why = NULL;

	(void)state;
	assert_int_equal(rlsdoc_services(rls, strlen(rls), "presence", &v, &n, &why), 0);
	assert_int_equal(n, 3); /* not the reg-only one */
	assert_string_equal(v[0], "sip:mybuddies@example.com");
	assert_string_equal(v[1], "sip:marketing@example.com");
	assert_string_equal(v[2], "sip:all@example.com");
	rlsdoc_strv_free(v, n);
	assert_int_equal(rlsdoc_services(rls, strlen(rls), NULL, &v, &n, &why), 0);
	assert_int_equal(n, 4);
	rlsdoc_strv_free(v, n);
	assert_int_equal(rlsdoc_services(rl, strlen(rl), "presence", &v, &n, &why), SK_EBADMSG);
	assert_string_equal(why, "not an rls-services document");
	assert_null(v);
	assert_int_equal(rlsdoc_services("<x", 2, "presence", &v, &n, &why), SK_EBADMSG);
	assert_int_equal(n, 0);
}

static bool is(const char *uri, void *arg)
{
	return !strcmp(uri, arg);
}

static void test_inline(void **state)
{
	struct rlsdoc_list *l;
	const char *why;

	(void)state;
	assert_int_equal(
	    rlsdoc_service_list(rls, strlen(rls), is, "sip:marketing@example.com", &l, &why), 0);
	assert_string_equal(l->uri, "sip:marketing@example.com");
	assert_string_equal(l->name, "Marketing");
	assert_int_equal(l->n, 3); /* joe once, nested ann flattened */
	assert_string_equal(l->e[0].uri, "sip:joe@example.com");
	assert_null(l->e[0].name);
	assert_string_equal(l->e[1].uri, "sip:sudhir@example.com");
	assert_string_equal(l->e[1].name, "Sudhir");
	assert_string_equal(l->e[2].uri, "sip:ann@example.com");
	assert_int_equal(l->nrefs, 1);
	assert_non_null(strstr(l->refs[0], "%22l2%22"));
	assert_false(l->cut);
	sk_deref(l);

	assert_int_equal(rlsdoc_service_list(rls, strlen(rls), is, "sip:all@example.com", &l, &why),
			 0);
	assert_int_equal(l->n, 0);
	assert_null(l->name);
	sk_deref(l);
	assert_int_equal(
	    rlsdoc_service_list(rls, strlen(rls), is, "sip:nope@example.com", &l, &why), SK_ENOENT);
	assert_null(l);
}

static void test_reference(void **state)
{
	struct rlsdoc_list *l;
	struct rlsdoc_ref ref;
	const char *why;

	(void)state;
	assert_int_equal(
	    rlsdoc_service_list(rls, strlen(rls), is, "sip:mybuddies@example.com", &l, &why), 0);
	assert_int_equal(l->n, 0);
	assert_int_equal(l->nrefs, 1);
	assert_int_equal(rlsdoc_ref_parse(l->refs[0], &ref), 0);
	assert_string_equal(ref.xui, "sip:joe@example.com");
	assert_string_equal(ref.doc, "index");
	assert_int_equal(ref.nlists, 1);
	assert_string_equal(ref.list[0], "l1");
	assert_string_equal(ref.entry, "");
	assert_int_equal(rlsdoc_list_add(l, rl, strlen(rl), &ref, &why), 0);
	/* l1: bill, the nested list's joe; the entry-ref is left as a reference. */
	assert_int_equal(l->n, 2);
	assert_string_equal(l->e[0].uri, "sip:bill@example.com");
	assert_string_equal(l->e[0].name, "Bill Doe");
	assert_string_equal(l->e[1].uri, "sip:joe@example.com");
	assert_int_equal(l->nrefs, 2);
	assert_int_equal(rlsdoc_ref_parse(l->refs[1], &ref), 0);
	assert_int_equal(ref.nlists, 1);
	assert_string_equal(ref.list[0], "l2");
	assert_string_equal(ref.entry, "sip:petri@example.com");
	assert_int_equal(rlsdoc_list_add(l, rl, strlen(rl), &ref, &why), 0);
	assert_int_equal(l->n, 3);
	assert_string_equal(l->e[2].uri, "sip:petri@example.com");
	assert_string_equal(l->e[2].name, "Petri");
	/* Again: nothing twice. */
	assert_int_equal(rlsdoc_list_add(l, rl, strlen(rl), &ref, &why), 0);
	assert_int_equal(l->n, 3);
	/* A list that is not there. */
	assert_int_equal(rlsdoc_ref_parse("resource-lists/users/sip:joe@example.com/index/~~/"
					  "resource-lists/list[@name='zz']",
					  &ref),
			 0);
	assert_int_equal(rlsdoc_list_add(l, rl, strlen(rl), &ref, &why), SK_ENOENT);
	assert_int_equal(rlsdoc_list_add(l, rls, strlen(rls), &ref, &why), SK_EBADMSG);
	assert_string_equal(why, "not a resource-lists document");
	sk_deref(l);
}

static void test_ref_parse(void **state)
{
	struct rlsdoc_ref ref;

	(void)state;
	/* Not encoded, prefixes, nested names, entities, a query. */
	assert_int_equal(rlsdoc_ref_parse("https://h:8443/xcap/resource-lists/users/"
					  "sip%3Ajoe%40example.com/index/~~/rl:resource-lists/"
					  "rl:list[@name=\"a/b\"]/rl:list[@name=\"x&amp;y\"]"
					  "?xmlns(rl=urn:ietf:params:xml:ns:resource-lists)",
					  &ref),
			 0);
	assert_string_equal(ref.xui, "sip:joe@example.com");
	assert_int_equal(ref.nlists, 2);
	assert_string_equal(ref.list[0], "a/b");
	assert_string_equal(ref.list[1], "x&y");
	/* No selector: the whole document. */
	assert_int_equal(rlsdoc_ref_parse("/resource-lists/users/sip:joe@example.com/index", &ref),
			 0);
	assert_string_equal(ref.doc, "index");
	assert_int_equal(ref.nlists, 0);
	/* Refused. */
	static const char *const bad[] = {
	    "http://h/rls-services/users/sip:joe@example.com/index",
	    "http://h/resource-lists/global/index",
	    "http://h/xresource-lists/users/sip:joe@example.com/index",
	    "resource-lists/users/sip:joe@example.com/",
	    "resource-lists/users//index",
	    "resource-lists/users/sip:joe@example.com/index/~~/resource-lists/list[2]",
	    "resource-lists/users/sip:joe@example.com/index/~~/resource-lists/entry[@uri=\"x\"]",
	    "resource-lists/users/sip:joe@example.com/index/~~/resource-lists/list[@id=\"x\"]",
	    "resource-lists/users/sip:joe@example.com/index/~~/resource-lists/list[@name=\"x]",
	    "resource-lists/users/sip:joe@example.com/index/~~/resource-lists/list",
	    "resource-lists/users/sip:joe@example.com/index/~~/list[@name=\"x\"]",
	    "resource-lists/users/sip:joe@example.com/index/~~/",
	    "resource-lists/users/sip%00joe/index",
	    "resource-lists/users/sip%4/index",
	    "resource-lists/users/sip:joe@example.com/index/~~/resource-lists/"
	    "list[@name=\"a\"]/entry[@uri=\"b\"]/list[@name=\"c\"]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (rlsdoc_ref_parse(bad[i], &ref) == 0)
			fail_msg("accepted %s", bad[i]);
}

static void test_limits(void **state)
{
	struct sk_buf b;
	struct rlsdoc_list *l;
	const char *why;

	(void)state;
	sk_buf_init(&b);
	sk_buf_puts(&b, "<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\" "
			"xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\">"
			"<service uri=\"sip:big@example.com\"><list>");
	for (int i = 0; i < RLSDOC_MAX_ENTRIES + 5; i++)
		sk_buf_printf(&b, "<rl:entry uri=\"sip:u%d@example.com\"/>", i);
	for (int i = 0; i < RLSDOC_MAX_REFS + 2; i++)
		sk_buf_printf(&b, "<rl:external anchor=\"r%d\"/>", i);
	sk_buf_puts(&b, "</list></service></rls-services>");
	assert_int_equal(rlsdoc_service_list(b.data, b.len, is, "sip:big@example.com", &l, &why),
			 0);
	assert_int_equal(l->n, RLSDOC_MAX_ENTRIES);
	assert_int_equal(l->nrefs, RLSDOC_MAX_REFS);
	assert_true(l->cut);
	sk_deref(l);
	/* Out of memory anywhere: an error, nothing leaked. */
	for (unsigned long k = 1; k <= 40; k++) {
		sk_mem_fail_after(k);
		int err = rlsdoc_service_list(rls, strlen(rls), is, "sip:marketing@example.com", &l,
					      &why);
		sk_mem_fail_after(0);
		if (err) {
			assert_int_equal(err, SK_ENOMEM);
			assert_null(l);
		} else {
			sk_deref(l);
		}
	}
	sk_buf_release(&b);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_services),  SK_TEST(test_inline), SK_TEST(test_reference),
	    SK_TEST(test_ref_parse), SK_TEST(test_limits),
	};

	if (argc > 1)
		test_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
