/* winfo_build: RFC 3858's example document rebuilt from structs and compared with the
 * RFC's text re-parsed, escaping of display names and URIs, partial state, and every
 * error path. */
#include "pres_test.h"
#include "skein/sk_err.h"
#include "winfo.h"

static const struct winfo_watcher rfc_watchers[] = {
    {"8ajksjda7s", "sip:userA@example.net", NULL, WINFO_ACTIVE, WINFO_EV_APPROVED, 509, -1},
    {"hh8juja87s997-ass7", "sip:userB@example.org", "Mr. Subscriber", WINFO_PENDING,
     WINFO_EV_SUBSCRIBE, -1, -1},
};

/* Every watcher attribute and content of a against b, in order. */
static void same_watchers(xmlDoc *a, xmlDoc *b)
{
	static const char *const attrs[] = {
	    "status", "id", "event", "display-name", "duration-subscribed", "expiration"};
	char e[256], va[1024];
	int n = count(a, "//w:watcher");

	assert_int_equal(n, count(b, "//w:watcher"));
	for (int i = 1; i <= n; i++) {
		for (size_t k = 0; k < sizeof(attrs) / sizeof(attrs[0]); k++) {
			snprintf(e, sizeof(e), "(//w:watcher)[%d]/@%s", i, attrs[k]);
			snprintf(va, sizeof(va), "%s", str(a, e));
			assert_string_equal(va, str(b, e));
		}
		snprintf(e, sizeof(e), "(//w:watcher)[%d]", i);
		snprintf(va, sizeof(va), "%s", str(a, e));
		assert_string_equal(va, str(b, e));
	}
}

static void test_rfc3858_example(void **state)
{
	struct winfo_list l = {"sip:professor@example.net", "presence", rfc_watchers, 2};
	char *rfc = load("rfc3858.xml", NULL), *out = NULL;
	xmlDoc *d, *ref;

	(void)state;
	assert_int_equal(winfo_build(0, true, &l, 1, &out), 0);
	d = reparse(out);
	ref = reparse(rfc);
	assert_string_equal(str(d, "/w:watcherinfo/@version"), "0");
	assert_string_equal(str(d, "/w:watcherinfo/@state"), "full");
	assert_string_equal(str(d, "/w:watcherinfo/w:watcher-list/@resource"),
			    "sip:professor@example.net");
	assert_string_equal(str(d, "/w:watcherinfo/w:watcher-list/@package"), "presence");
	assert_int_equal(count(d, "//w:watcher"), 2);
	assert_int_equal(count(d, "//w:watcher[@id='8ajksjda7s']/@display-name"), 0);
	same_watchers(d, ref);
	xmlFreeDoc(d);
	xmlFreeDoc(ref);
	out = sk_deref(out);
	free(rfc);
}

static void test_partial_and_escaping(void **state)
{
	struct winfo_watcher w[] = {
	    {"a\"1", "sip:x@example.com;a=<b>&c", "Tom \"Tab\"\t& <Jerry> \xc3\xa9t\xc3\xa9",
	     WINFO_TERMINATED, WINFO_EV_GIVEUP, 0, 3600},
	    {"b", "sip:y@example.com", "", WINFO_WAITING, WINFO_EV_NORESOURCE, -1, 0},
	};
	struct winfo_list l[] = {{"sip:p@example.com", "presence", w, 2},
				 {"sip:q@example.com", "presence", NULL, 0}};
	char *out = NULL;
	xmlDoc *d;

	(void)state;
	assert_int_equal(winfo_build(4294967295UL, false, l, 2, &out), 0);
	d = reparse(out);
	assert_string_equal(str(d, "/w:watcherinfo/@version"), "4294967295");
	assert_string_equal(str(d, "/w:watcherinfo/@state"), "partial");
	assert_int_equal(count(d, "//w:watcher-list"), 2);
	assert_int_equal(count(d, "//w:watcher-list[@resource='sip:q@example.com']/*"), 0);
	assert_string_equal(str(d, "//w:watcher[1]/@id"), "a\"1");
	assert_string_equal(str(d, "//w:watcher[1]/@display-name"),
			    "Tom \"Tab\"\t& <Jerry> \xc3\xa9t\xc3\xa9");
	assert_string_equal(str(d, "//w:watcher[1]"), "sip:x@example.com;a=<b>&c");
	assert_string_equal(str(d, "//w:watcher[1]/@status"), "terminated");
	assert_string_equal(str(d, "//w:watcher[1]/@event"), "giveup");
	assert_string_equal(str(d, "//w:watcher[1]/@duration-subscribed"), "0");
	assert_string_equal(str(d, "//w:watcher[1]/@expiration"), "3600");
	assert_string_equal(str(d, "//w:watcher[2]/@status"), "waiting");
	assert_string_equal(str(d, "//w:watcher[2]/@event"), "noresource");
	assert_int_equal(count(d, "//w:watcher[2]/@display-name"), 1);
	assert_int_equal(count(d, "//w:watcher[2]/@duration-subscribed"), 0);
	xmlFreeDoc(d);
	out = sk_deref(out);

	/* No list at all: an empty, valid document. */
	assert_int_equal(winfo_build(1, true, NULL, 0, &out), 0);
	d = reparse(out);
	assert_int_equal(count(d, "/w:watcherinfo/*"), 0);
	xmlFreeDoc(d);
	out = sk_deref(out);
}

static void test_names(void **state)
{
	static const char *const ev[] = {"subscribe", "approved", "deactivated", "probation",
					 "rejected",  "timeout",  "giveup",	 "noresource"};

	(void)state;
	for (int i = 0; i < 8; i++)
		assert_string_equal(winfo_event_name((enum winfo_event)i), ev[i]);
	assert_null(winfo_event_name((enum winfo_event)8));
	assert_string_equal(winfo_status_name(WINFO_PENDING), "pending");
	assert_string_equal(winfo_status_name(WINFO_TERMINATED), "terminated");
	assert_null(winfo_status_name((enum winfo_status)4));
}

static void test_errors(void **state)
{
	struct winfo_watcher w[2];
	struct winfo_list l = {"sip:p@example.com", "presence", w, 1};
	char *out = (char *)"sentinel";

	(void)state;
#define RESET()                                                                                    \
	(memcpy(w, rfc_watchers, sizeof(w)),                                                       \
	 l = (struct winfo_list){"sip:p@example.com", "presence", w, 1})
#define BAD() assert_int_equal(winfo_build(0, true, &l, 1, &out), SK_EINVAL), assert_null(out)
	RESET();
	w[0].id = NULL;
	BAD();
	RESET();
	w[0].id = "";
	BAD();
	RESET();
	w[0].uri = NULL;
	BAD();
	RESET();
	w[0].status = (enum winfo_status)9;
	BAD();
	RESET();
	w[0].event = (enum winfo_event) - 1;
	BAD();
	RESET();
	w[0].display_name = "bad \xc0\xaf utf-8";
	BAD();
	RESET();
	w[0].display_name = "bell \x07";
	BAD();
	RESET();
	w[0].uri = "sip:\xed\xa0\x80@x"; /* a surrogate */
	BAD();
	RESET();
	w[1].id = w[0].id; /* duplicate id in one list */
	l.n = 2;
	BAD();
	RESET();
	l.resource = NULL;
	BAD();
	RESET();
	l.package = "";
	BAD();
	RESET();
	l.w = NULL;
	BAD();
	assert_int_equal(winfo_build(0, true, NULL, 1, &out), SK_EINVAL);
	/* The same, right, passes: each fault above is the only one. */
	RESET();
	l.n = 2;
	assert_int_equal(winfo_build(0, true, &l, 1, &out), 0);
	out = sk_deref(out);
	sk_mem_fail_after(1);
	assert_int_equal(winfo_build(0, true, &l, 1, &out), SK_ENOMEM);
	assert_null(out);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_rfc3858_example),
	    SK_TEST(test_partial_and_escaping),
	    SK_TEST(test_names),
	    SK_TEST(test_errors),
	};

	if (argc > 1)
		test_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
