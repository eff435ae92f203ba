/* xcap_doc and xcap_auid on the example documents of RFC 4826 (resource-lists,
 * rls-services), RFC 5025 (pres-rules) and RFC 4827 (pidf-manipulation): GET, PUT and
 * DELETE of documents, elements and attributes, the §8.2.3 / §8.3 rules, the
 * constraints with their xcap-error bodies, XXE safety and ETags. */
#include <stdio.h>
#include <string.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "xcap_doc.h"

/* RFC 4826 §3.3 (the example, trimmed of its second list's externals). */
static const char RL[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"\n"
    "    xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
    "  <list name=\"friends\">\n"
    "    <entry uri=\"sip:bill@example.com\">\n"
    "      <display-name>Bill Doe</display-name>\n"
    "    </entry>\n"
    "    <entry-ref "
    "ref=\"resource-lists/users/sip:bill@example.com/index/~~/resource-lists/"
    "list%5b@name=%22list1%22%5d/entry%5b@uri=%22sip:petri@example.com%22%5d\"/>\n"
    "    <list name=\"close-friends\">\n"
    "      <display-name>Close Friends</display-name>\n"
    "      <entry uri=\"sip:joe@example.com\">\n"
    "        <display-name>Joe Smith</display-name>\n"
    "      </entry>\n"
    "      <entry uri=\"sip:nancy@example.com\">\n"
    "        <display-name>Nancy Gross</display-name>\n"
    "      </entry>\n"
    "      <external "
    "anchor=\"http://xcap.example.org/resource-lists/users/sip:a@example.org/index/~~/"
    "resource-lists/list%5b@name=%22mkting%22%5d\">\n"
    "        <display-name>Marketing</display-name>\n"
    "      </external>\n"
    "    </list>\n"
    "  </list>\n"
    "</resource-lists>\n";

/* RFC 4826 §4.3 */
static const char RLS[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\"\n"
    "   xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\">\n"
    " <service uri=\"sip:mybuddies@example.com\">\n"
    "  "
    "<resource-list>http://xcap.example.com/resource-lists/users/sip:joe@example.com/index/~~/"
    "resource-lists/list%5b@name=%22l1%22%5d</resource-list>\n"
    "  <packages><package>presence</package></packages>\n"
    " </service>\n"
    " <service uri=\"sip:marketing@example.com\">\n"
    "   <list name=\"marketing\">\n"
    "     <rl:entry uri=\"sip:joe@example.com\"/>\n"
    "     <rl:entry uri=\"sip:sudhir@example.com\"/>\n"
    "   </list>\n"
    "   <packages><package>presence</package></packages>\n"
    " </service>\n"
    "</rls-services>\n";

/* RFC 5025 §7 */
static const char PR[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<cr:ruleset xmlns=\"urn:ietf:params:xml:ns:pres-rules\"\n"
    " xmlns:pr=\"urn:ietf:params:xml:ns:pres-rules\"\n"
    " xmlns:cr=\"urn:ietf:params:xml:ns:common-policy\">\n"
    " <cr:rule id=\"a\">\n"
    "  <cr:conditions>\n"
    "   <cr:identity><cr:one id=\"sip:user@example.com\"/></cr:identity>\n"
    "  </cr:conditions>\n"
    "  <cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions>\n"
    "  <cr:transformations>\n"
    "   <pr:provide-services><pr:service-uri-scheme>sip</pr:service-uri-scheme>\n"
    "   </pr:provide-services>\n"
    "   <pr:provide-persons><pr:all-persons/></pr:provide-persons>\n"
    "  </cr:transformations>\n"
    " </cr:rule>\n"
    "</cr:ruleset>\n";

/* RFC 4827 §5 (a PIDF document, RFC 3863 §3.4) */
static const char PIDF[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"pres:someone@example.com\">\n"
    "  <tuple id=\"sg89ae\">\n"
    "    <status><basic>open</basic></status>\n"
    "    <contact priority=\"0.8\">tel:+09012345678</contact>\n"
    "  </tuple>\n"
    "</presence>\n";

static struct xcap_uri u;
static struct xcap_result r;

/* Runs method on doc with the selector sel ("" for the document). */
static int run(const char *auid, const char *method, const char *doc, const char *sel,
	       const char *query, const char *body)
{
	const struct xcap_auid *a = xcap_auid_find(auid);
	char path[2048];

	assert_non_null(a);
	snprintf(path, sizeof(path), "/xcap/%s/users/sip:alice@example.com/index%s%s", auid,
		 sel[0] ? "/~~/" : "", sel);
	assert_int_equal(xcap_uri_parse(&u, "/xcap", path, query), 0);
	xcap_result_release(&r);
	assert_int_equal(xcap_doc_apply(a, &u, method, doc, doc ? strlen(doc) : 0, body,
					body ? strlen(body) : 0, NULL, &r),
			 0);
	return r.status;
}

static const char *body(void)
{
	return r.body.data ? r.body.data : "";
}

static const char *newdoc(void)
{
	return r.doc.data ? r.doc.data : "";
}

static int teardown(void **state)
{
	xcap_result_release(&r);
	return leak_check(state);
}

#define T(f) cmocka_unit_test_setup_teardown(f, leak_setup, teardown)

static void test_get(void **state)
{
	(void)state;
	assert_int_equal(run("resource-lists", "GET", RL, "", NULL, NULL), 200);
	assert_string_equal(body(), RL);
	assert_string_equal(r.content_type, "application/resource-lists+xml");

	assert_int_equal(
	    run("resource-lists", "GET", RL,
		"resource-lists/list[@name=\"friends\"]/list[@name=\"close-friends\"]/entry[2]",
		NULL, NULL),
	    200);
	assert_string_equal(r.content_type, XCAP_EL_MIME);
	assert_non_null(strstr(body(), "<entry uri=\"sip:nancy@example.com\">"));
	assert_null(strstr(body(), "joe"));

	assert_int_equal(
	    run("resource-lists", "GET", RL, "resource-lists/list/entry/@uri", NULL, NULL), 200);
	assert_string_equal(body(), "sip:bill@example.com");
	assert_string_equal(r.content_type, XCAP_ATT_MIME);

	/* "*" and a namespace-qualified step. */
	assert_int_equal(run("resource-lists", "GET", RL, "*/*[1]/*[3]/@name", NULL, NULL), 200);
	assert_string_equal(body(), "close-friends");
	assert_int_equal(run("resource-lists", "GET", RL, "r:resource-lists/r:list/@name",
			     "xmlns(r=urn:ietf:params:xml:ns:resource-lists)", NULL),
			 200);
	assert_string_equal(body(), "friends");

	/* namespace::* */
	assert_int_equal(
	    run("resource-lists", "GET", RL, "resource-lists/namespace::*", NULL, NULL), 200);
	assert_string_equal(r.content_type, XCAP_NS_MIME);
	assert_non_null(strstr(body(), "xmlns=\"urn:ietf:params:xml:ns:resource-lists\""));
	assert_non_null(strstr(body(), "xmlns:xsi="));

	/* Nothing, or more than one: 404 (§8.1). */
	assert_int_equal(
	    run("resource-lists", "GET", RL, "resource-lists/list/entry[9]", NULL, NULL), 404);
	assert_int_equal(
	    run("resource-lists", "GET", RL, "resource-lists/list/list/entry", NULL, NULL), 404);
	assert_int_equal(run("resource-lists", "GET", RL, "resource-lists/list/@nope", NULL, NULL),
			 404);
	assert_int_equal(run("resource-lists", "GET", NULL, "", NULL, NULL), 404);
	/* The default namespace is the usage's: an element in no namespace does not match. */
	assert_int_equal(run("pres-rules", "GET", PR, "ruleset/rule/@id", NULL, NULL), 200);
	assert_string_equal(body(), "a");
	assert_int_equal(
	    run("pres-rules", "GET", PR, "ruleset/rule/actions/sub-handling", NULL, NULL), 404);
	assert_int_equal(run("pres-rules", "GET", PR, "ruleset/rule/actions/pr:sub-handling",
			     "xmlns(pr=urn:ietf:params:xml:ns:pres-rules)", NULL),
			 200);
	assert_non_null(strstr(body(), ">allow<"));
}

static void test_put_document(void **state)
{
	(void)state;
	assert_int_equal(run("resource-lists", "PUT", NULL, "", NULL, RL), 201);
	assert_true(r.write);
	assert_string_equal(newdoc(), RL);
	assert_int_equal(run("resource-lists", "PUT", RL, "", NULL, RL), 200);
	assert_int_equal(run("rls-services", "PUT", NULL, "", NULL, RLS), 201);
	assert_int_equal(run("pres-rules", "PUT", NULL, "", NULL, PR), 201);
	assert_int_equal(run("pidf-manipulation", "PUT", NULL, "", NULL, PIDF), 201);

	/* Not well-formed. */
	assert_int_equal(run("resource-lists", "PUT", NULL, "", NULL, "<resource-lists><list>"),
			 409);
	assert_false(r.write);
	assert_string_equal(r.content_type, XCAP_ERROR_MIME);
	assert_non_null(strstr(body(), "<xcap-error xmlns=\"urn:ietf:params:xml:ns:xcap-error\">"));
	assert_non_null(strstr(body(), "<not-well-formed/>"));
	/* The wrong usage's document. */
	assert_int_equal(run("resource-lists", "PUT", NULL, "", NULL, PIDF), 409);
	assert_non_null(strstr(body(), "<schema-validation-error"));
	assert_int_equal(run("resource-lists", "PUT", NULL, "", NULL, "<resource-lists/>"), 409);
	assert_non_null(strstr(body(), "<schema-validation-error"));
	/* Not UTF-8. */
	assert_int_equal(run("resource-lists", "PUT", NULL, "", NULL,
			     "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
			     "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"/>"),
			 409);
	assert_non_null(strstr(body(), "<not-utf-8/>"));
	/* xcap-caps is the server's: 405. */
	assert_int_equal(run("xcap-caps", "PUT", NULL, "", NULL, RL), 405);
}

/* XXE: an external entity is never fetched nor expanded; a DTD is refused outright. */
static void test_xxe(void **state)
{
	const char *xxe = "<?xml version=\"1.0\"?>\n"
			  "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n"
			  "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">"
			  "<list name=\"&x;\"/></resource-lists>";
	const char *laughs =
	    "<?xml version=\"1.0\"?>\n"
	    "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;\">]>\n"
	    "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">"
	    "<list name=\"&b;\"/></resource-lists>";

	(void)state;
	assert_int_equal(run("resource-lists", "PUT", NULL, "", NULL, xxe), 409);
	assert_false(r.write);
	assert_null(strstr(body(), "root:"));
	assert_int_equal(run("resource-lists", "PUT", NULL, "", NULL, laughs), 409);
	assert_false(r.write);
	/* In an element body: an undeclared entity is not well-formed. */
	assert_int_equal(run("resource-lists", "PUT", RL,
			     "resource-lists/list/entry[@uri=\"sip:x@example.com\"]", NULL,
			     "<entry uri=\"sip:x@example.com\">&x;</entry>"),
			 409);
	assert_non_null(strstr(body(), "<not-xml-frag/>"));
	/* Undeclared prefixes (libxml2 only warns): never stored (found by fuzz_xcap_doc). */
	assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/list/*[1]", NULL,
			     "<c:entry uri=\"sip:x@example.com\"/>"),
			 409);
	assert_non_null(strstr(body(), "<not-xml-frag/>"));
	assert_int_equal(run("resource-lists", "PUT", NULL, "", NULL,
			     "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">"
			     "<list p:name=\"a\"/></resource-lists>"),
			 409);
	assert_non_null(strstr(body(), "<not-well-formed"));
	/* A namespace name libxml2 would write back unescaped. */
	assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/list/*[1]", NULL,
			     "<entry xmlns:q=\"a&lt;b\" uri=\"sip:x@example.com\"/>"),
			 409);
	assert_non_null(strstr(body(), "<not-xml-frag/>"));
	/* Control characters and overlong UTF-8 in an attribute value (found by the
	 * fuzzer too). */
	assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/list/@name", NULL,
			     "a\x12"
			     "b"),
			 409);
	assert_non_null(strstr(body(), "<not-xml-att-value/>"));
	assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/list/@name", NULL,
			     "a\xc1\xaf"
			     "b"),
			 409);
	assert_non_null(strstr(body(), "<not-utf-8/>"));
}

static void test_uniqueness(void **state)
{
	char doc[4096];

	(void)state;
	/* Two entries with one uri in a list (RFC 4826 §3.4.5). */
	snprintf(doc, sizeof(doc),
		 "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">"
		 "<list name=\"a\"><entry uri=\"sip:x@y\"/><entry uri=\"sip:x@y\"/></list>"
		 "</resource-lists>");
	assert_int_equal(run("resource-lists", "PUT", NULL, "", NULL, doc), 409);
	assert_non_null(strstr(body(), "<uniqueness-failure"));
	assert_non_null(strstr(
	    body(), "<exists field=\"resource-lists/list[@name=&quot;a&quot;]/entry/@uri\"/>"));
	/* The same uri in two lists is fine; two lists of one name in one parent are not. */
	snprintf(doc, sizeof(doc),
		 "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">"
		 "<list name=\"a\"><entry uri=\"sip:x@y\"/></list>"
		 "<list name=\"b\"><entry uri=\"sip:x@y\"/></list></resource-lists>");
	assert_int_equal(run("resource-lists", "PUT", NULL, "", NULL, doc), 201);
	snprintf(doc, sizeof(doc),
		 "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">"
		 "<list name=\"a\"/><list name=\"a\"/></resource-lists>");
	assert_int_equal(run("resource-lists", "PUT", NULL, "", NULL, doc), 409);
	assert_non_null(strstr(body(), "resource-lists/list/@name"));
	/* An entry without its required uri. */
	snprintf(doc, sizeof(doc),
		 "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">"
		 "<list><entry/></list></resource-lists>");
	assert_int_equal(run("resource-lists", "PUT", NULL, "", NULL, doc), 409);
	assert_non_null(strstr(body(), "<schema-validation-error"));

	/* rls-services: service uri unique (RFC 4826 §4.4). */
	snprintf(doc, sizeof(doc), "%s", RLS);
	memcpy(strstr(doc, "sip:marketing@"), "sip:mybuddies", 13);
	assert_int_equal(run("rls-services", "PUT", NULL, "", NULL, doc), 409);
	assert_non_null(strstr(body(), "rls-services/service/@uri"));
	/* pres-rules: rule id unique (RFC 4745 §7). */
	assert_int_equal(run("pres-rules", "PUT", PR, "cr:ruleset/cr:rule[2]",
			     "xmlns(cr=urn:ietf:params:xml:ns:common-policy)",
			     "<cr:rule id=\"a\"><cr:conditions/></cr:rule>"),
			 409);
	assert_non_null(strstr(body(), "ruleset/rule/@id"));
	assert_int_equal(run("pres-rules", "PUT", PR, "cr:ruleset/cr:rule[2]",
			     "xmlns(cr=urn:ietf:params:xml:ns:common-policy)",
			     "<cr:rule id=\"b\"><cr:conditions/></cr:rule>"),
			 201);
	/* pidf-manipulation: tuple id unique. */
	assert_int_equal(run("pidf-manipulation", "PUT", PIDF, "presence/tuple[2]", NULL,
			     "<tuple id=\"sg89ae\"><status><basic>closed</basic></status></tuple>"),
			 409);
	assert_non_null(strstr(body(), "presence/tuple/@id"));
}

static void test_put_element(void **state)
{
	static char doc[8192];
	const char *sel =
	    "resource-lists/list[@name=\"friends\"]/entry[@uri=\"sip:new@example.com\"]";

	(void)state;
	/* Insert: 201, it lands after the other children, the result is selected. */
	assert_int_equal(
	    run("resource-lists", "PUT", RL, sel, NULL,
		"<entry uri=\"sip:new@example.com\"><display-name>New</display-name></entry>"),
	    201);
	assert_true(r.write);
	snprintf(doc, sizeof(doc), "%s", newdoc());
	assert_non_null(strstr(doc, "<entry uri=\"sip:new@example.com\"><display-name>New"));
	assert_int_equal(run("resource-lists", "GET", doc, sel, NULL, NULL), 200);
	/* It took the document's default namespace from its context (§7.4). */
	assert_null(strstr(body(), "xmlns"));
	/* Replace: 200. */
	assert_int_equal(
	    run("resource-lists", "PUT", doc, sel, NULL,
		"<entry uri=\"sip:new@example.com\"><display-name>Newer</display-name></entry>"),
	    200);
	assert_non_null(strstr(newdoc(), "Newer"));
	assert_null(strstr(newdoc(), ">New<"));

	/* The body would not be selected by the URI: cannot-insert (§8.2.3). */
	assert_int_equal(
	    run("resource-lists", "PUT", RL, sel, NULL, "<entry uri=\"sip:other@example.com\"/>"),
	    409);
	assert_non_null(strstr(body(), "<cannot-insert"));
	assert_false(r.write);
	/* Positional insert: entry[2] goes before the second entry... */
	assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/list/list/entry[2]", NULL,
			     "<entry uri=\"sip:mid@example.com\"/>"),
			 200); /* entry[2] exists: replaced */
	assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/list/list/entry[3]", NULL,
			     "<entry uri=\"sip:third@example.com\"/>"),
			 201);
	snprintf(doc, sizeof(doc), "%s", newdoc());
	assert_int_equal(
	    run("resource-lists", "GET", doc, "resource-lists/list/list/entry[3]/@uri", NULL, NULL),
	    200);
	assert_string_equal(body(), "sip:third@example.com");
	/* ...and entry[9] has no 8th sibling to follow. */
	assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/list/list/entry[9]", NULL,
			     "<entry uri=\"sip:far@example.com\"/>"),
			 409);
	assert_non_null(strstr(body(), "<cannot-insert"));

	/* No parent. */
	assert_int_equal(run("resource-lists", "PUT", RL,
			     "resource-lists/list[@name=\"nope\"]/entry", NULL,
			     "<entry uri=\"sip:x@example.com\"/>"),
			 409);
	assert_non_null(strstr(body(), "<no-parent"));
	assert_int_equal(
	    run("resource-lists", "PUT", NULL, "resource-lists/list", NULL, "<list name=\"x\"/>"),
	    409);
	assert_non_null(strstr(body(), "<no-parent"));
	/* Not one element: two, text, malformed. */
	static const char *const frags[] = {"<entry uri=\"sip:a@b\"/><entry uri=\"sip:c@d\"/>",
					    "text", "<entry uri=\"sip:a@b\">", "", "<!-- c -->"};
	for (size_t i = 0; i < sizeof(frags) / sizeof(frags[0]); i++) {
		assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/list/entry[9]",
				     NULL, frags[i]),
				 409);
		if (!strstr(body(), "<not-xml-frag/>"))
			print_error("frag %zu: %s\n", i, body());
		assert_non_null(strstr(body(), "<not-xml-frag/>"));
	}
	/* A duplicate by element PUT. */
	assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/list/entry[2]", NULL,
			     "<entry uri=\"sip:bill@example.com\"/>"),
			 409);
	assert_non_null(strstr(body(), "<uniqueness-failure"));
}

static void test_attributes(void **state)
{
	static char doc[8192];

	(void)state;
	/* Replace, then new. */
	assert_int_equal(
	    run("resource-lists", "PUT", RL, "resource-lists/list/@name", NULL, "buddies &amp; co"),
	    200);
	assert_non_null(strstr(newdoc(), "<list name=\"buddies &amp; co\">"));
	assert_int_equal(
	    run("resource-lists", "PUT", RL, "resource-lists/list/entry/@x", NULL, "1"), 201);
	/* Changing the attribute the selector tests: cannot-insert. */
	assert_int_equal(run("resource-lists", "PUT", RL,
			     "resource-lists/list[@name=\"friends\"]/@name", NULL, "other"),
			 409);
	assert_non_null(strstr(body(), "<cannot-insert"));
	/* Not an attribute value. */
	assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/list/@name", NULL, "a<b"),
			 409);
	assert_non_null(strstr(body(), "<not-xml-att-value/>"));
	assert_int_equal(
	    run("resource-lists", "PUT", RL, "resource-lists/list/@name", NULL, "a\"b"), 409);
	/* A duplicate by attribute PUT. */
	assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/list/list/entry[2]/@uri",
			     NULL, "sip:joe@example.com"),
			 409);
	assert_non_null(strstr(body(), "<uniqueness-failure"));
	/* DELETE of an attribute, then it is gone. */
	assert_int_equal(
	    run("resource-lists", "DELETE", RL, "resource-lists/list/list/@name", NULL, NULL), 200);
	snprintf(doc, sizeof(doc), "%s", newdoc());
	assert_null(strstr(doc, "close-friends"));
	assert_int_equal(
	    run("resource-lists", "DELETE", doc, "resource-lists/list/list/@name", NULL, NULL),
	    404);
	/* The element is missing: no-parent. */
	assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/list/nope/@a", NULL, "1"),
			 409);
	assert_non_null(strstr(body(), "<no-parent"));
}

static void test_delete(void **state)
{
	(void)state;
	assert_int_equal(run("resource-lists", "DELETE", RL,
			     "resource-lists/list/list/entry[@uri=\"sip:joe@example.com\"]", NULL,
			     NULL),
			 200);
	assert_null(strstr(newdoc(), "sip:joe@"));
	assert_non_null(strstr(newdoc(), "sip:nancy@"));
	/* entry[1] would then select nancy: cannot-delete (§8.3). */
	assert_int_equal(
	    run("resource-lists", "DELETE", RL, "resource-lists/list/list/entry[1]", NULL, NULL),
	    409);
	assert_non_null(strstr(body(), "<cannot-delete"));
	/* The last positional one may go. */
	assert_int_equal(
	    run("resource-lists", "DELETE", RL, "resource-lists/list/list/entry[2]", NULL, NULL),
	    200);
	assert_int_equal(run("resource-lists", "DELETE", RL, "resource-lists", NULL, NULL), 409);
	assert_int_equal(
	    run("resource-lists", "DELETE", RL, "resource-lists/list/entry[7]", NULL, NULL), 404);
	assert_int_equal(run("resource-lists", "DELETE", RL, "", NULL, NULL), 200);
	assert_true(r.remove);
	assert_int_equal(run("resource-lists", "DELETE", NULL, "", NULL, NULL), 404);
	assert_int_equal(run("resource-lists", "POST", RL, "", NULL, NULL), 405);
	assert_int_equal(run("resource-lists", "PUT", RL, "resource-lists/namespace::*", NULL, "x"),
			 405);
}

static void test_etag_and_caps(void **state)
{
	char a[XCAP_ETAG_SIZE], b[XCAP_ETAG_SIZE], c[XCAP_ETAG_SIZE];
	struct sk_buf caps;

	(void)state;
	xcap_etag(RL, strlen(RL), a);
	xcap_etag(RL, strlen(RL), b);
	xcap_etag(RL, strlen(RL) - 1, c);
	assert_int_equal(strlen(a), 32);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);

	sk_buf_init(&caps);
	assert_int_equal(xcap_auid_caps(&caps), 0);
	assert_non_null(strstr(caps.data, "<auid>pres-rules</auid>"));
	assert_non_null(strstr(caps.data, "<namespace>urn:ietf:params:xml:ns:pidf</namespace>"));
	assert_int_equal(run("xcap-caps", "GET", caps.data, "", NULL, NULL), 200);
	sk_buf_release(&caps);
	assert_null(xcap_auid_find("nope"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_get),	 T(test_put_document), T(test_xxe),    T(test_uniqueness),
	    T(test_put_element), T(test_attributes),   T(test_delete), T(test_etag_and_caps),
	};

	xcap_doc_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
