/* rlmi_build and rlmi_multipart: the RFC 4662 §5 document (list, name, resource,
 * instance with state/reason/cid) re-parsed and checked, the multipart/related body
 * split back into its parts (boundary, root part first, Content-IDs, types, bytes),
 * and every error path. */
#include "pres_test.h"
#include "rlmi.h"
#include "skein/sk_err.h"

static const char pidf_bob[] =
    "<?xml version=\"1.0\"?>\n<presence "
    "xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:bob@example.com\">"
    "<tuple id=\"t\"><status><basic>open</basic></status></tuple></presence>";

static struct rlmi_instance bob_inst[] = {
    {"juwigmtboe", RLMI_ACTIVE, NULL, "bUZBsM@pres.example.com", pidf_bob, sizeof(pidf_bob) - 1,
     "application/pidf+xml"},
};
static struct rlmi_instance dave_inst[] = {
    {"hqzsuxtfyq", RLMI_TERMINATED, "rejected", NULL, NULL, 0, NULL},
    {"ixxxxxxxxx", RLMI_PENDING, NULL, NULL, NULL, 0, NULL},
};
static struct rlmi_resource res[] = {
    {"sip:bob@example.com", "Bob Smith", bob_inst, 1},
    {"sip:dave@example.com", "Dave & \"Co\" <Jones>", dave_inst, 2},
    {"sip:ed@example.com", NULL, NULL, 0},
};
static const struct rlmi_list list = {
    "sip:adam-friends@example.com", 7, true, "Buddy List", res, 3};

static void test_build(void **state)
{
	char *out = NULL;
	xmlDoc *d;

	(void)state;
	assert_int_equal(rlmi_build(&list, &out), 0);
	d = reparse(out);
	assert_string_equal(str(d, "/rl:list/@uri"), "sip:adam-friends@example.com");
	assert_string_equal(str(d, "/rl:list/@version"), "7");
	assert_string_equal(str(d, "/rl:list/@fullState"), "true");
	assert_string_equal(str(d, "/rl:list/rl:name"), "Buddy List");
	assert_int_equal(count(d, "/rl:list/rl:resource"), 3);
	assert_string_equal(str(d, "/rl:list/rl:resource[1]/rl:name"), "Bob Smith");
	assert_string_equal(str(d, "//rl:resource[1]/rl:instance/@id"), "juwigmtboe");
	assert_string_equal(str(d, "//rl:resource[1]/rl:instance/@state"), "active");
	assert_string_equal(str(d, "//rl:resource[1]/rl:instance/@cid"), "bUZBsM@pres.example.com");
	assert_string_equal(str(d, "//rl:resource[2]/rl:name"), "Dave & \"Co\" <Jones>");
	assert_string_equal(str(d, "//rl:resource[2]/rl:instance[1]/@state"), "terminated");
	assert_string_equal(str(d, "//rl:resource[2]/rl:instance[1]/@reason"), "rejected");
	assert_int_equal(count(d, "//rl:resource[2]/rl:instance[1]/@cid"), 0);
	assert_string_equal(str(d, "//rl:resource[2]/rl:instance[2]/@state"), "pending");
	assert_int_equal(count(d, "//rl:resource[3]/*"), 0);
	xmlFreeDoc(d);
	out = sk_deref(out);
}

/* Splits body at "--boundary" lines: the parts' headers and contents. */
struct part {
	char head[512];
	const char *data;
	size_t len;
};

static int split(const char *body, const char *boundary, struct part *p, int max)
{
	char delim[128];
	const char *s, *end;
	int n = 0;

	snprintf(delim, sizeof(delim), "--%s\r\n", boundary);
	assert_memory_equal(body, delim, strlen(delim)); /* the body starts with one */
	s = body + strlen(delim);
	snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	while ((end = strstr(s, delim)) && n < max) {
		const char *hend = strstr(s, "\r\n\r\n");

		assert_non_null(hend);
		assert_true(hend < end);
		snprintf(p[n].head, sizeof(p[n].head), "%.*s", (int)(hend - s), s);
		p[n].data = hend + 4;
		p[n].len = (size_t)(end - p[n].data);
		n++;
		s = end + strlen(delim);
		if (!strcmp(s, "--\r\n"))
			return n;
		assert_memory_equal(s, "\r\n", 2);
		s += 2;
	}
	fail_msg("no closing delimiter");
	return -1;
}

static void test_multipart(void **state)
{
	char *body = NULL, *ctype = NULL;
	struct part p[4];
	xmlDoc *d;
	char *root;

	(void)state;
	assert_int_equal(rlmi_multipart(&list, "50UBfW7LSCVLtggUPBDVc", "ZvSvkz@pres.example.com",
					&body, &ctype),
			 0);
	assert_string_equal(
	    ctype, "multipart/related;type=\"application/rlmi+xml\";"
		   "start=\"<ZvSvkz@pres.example.com>\";boundary=\"50UBfW7LSCVLtggUPBDVc\"");
	/* The root part and one part for the only instance with a cid. */
	assert_int_equal(split(body, "50UBfW7LSCVLtggUPBDVc", p, 4), 2);
	assert_non_null(strstr(p[0].head, "Content-ID: <ZvSvkz@pres.example.com>"));
	assert_non_null(strstr(p[0].head, "Content-Type: application/rlmi+xml;charset=\"UTF-8\""));
	assert_non_null(strstr(p[0].head, "Content-Transfer-Encoding: binary"));
	root = strndup(p[0].data, p[0].len);
	d = reparse(root);
	assert_int_equal(count(d, "/rl:list/rl:resource"), 3);
	assert_string_equal(str(d, "//rl:instance[@cid]/@cid"), "bUZBsM@pres.example.com");
	xmlFreeDoc(d);
	free(root);
	assert_non_null(strstr(p[1].head, "Content-ID: <bUZBsM@pres.example.com>"));
	assert_non_null(strstr(p[1].head, "Content-Type: application/pidf+xml"));
	assert_int_equal(p[1].len, sizeof(pidf_bob) - 1);
	assert_memory_equal(p[1].data, pidf_bob, p[1].len);
	body = sk_deref(body);
	ctype = sk_deref(ctype);
}

static void test_errors(void **state)
{
	struct rlmi_instance in[2] = {bob_inst[0], dave_inst[0]};
	struct rlmi_resource r = {"sip:bob@example.com", NULL, in, 1};
	struct rlmi_list l = {"sip:l@example.com", 0, false, NULL, &r, 1};
	char *out = (char *)"sentinel", *ct = (char *)"sentinel";

	(void)state;
#define RESET()                                                                                    \
	(in[0] = bob_inst[0], in[1] = dave_inst[0], r.uri = "sip:bob@example.com", r.name = NULL,  \
	 r.inst = in, r.n = 1, l.uri = "sip:l@example.com", l.name = NULL, l.res = &r, l.n = 1)
#define BAD()                                                                                      \
	do {                                                                                       \
		assert_int_equal(rlmi_build(&l, &out), SK_EINVAL);                                 \
		assert_null(out);                                                                  \
	} while (0)
	assert_int_equal(rlmi_build(NULL, &out), SK_EINVAL);
	RESET();
	l.uri = NULL;
	BAD();
	RESET();
	l.uri = "";
	BAD();
	RESET();
	l.res = NULL;
	BAD();
	RESET();
	r.uri = NULL;
	BAD();
	RESET();
	r.inst = NULL;
	BAD();
	RESET();
	in[0].id = NULL;
	BAD();
	RESET();
	in[0].state = (enum rlmi_state)3;
	BAD();
	RESET();
	in[0].reason = "timeout";
	BAD(); /* a reason on an active instance */
	RESET();
	in[0].cid = "a<b";
	BAD();
	RESET();
	in[0].cid = "a b";
	BAD();
	RESET();
	in[0].cid = "";
	BAD();
	RESET();
	r.name = "\x01";
	BAD();
	RESET();
	l.name = "\xff";
	BAD();
	RESET();
	in[1].id = in[0].id;
	r.n = 2;
	BAD(); /* duplicate instance id */
	RESET();
	assert_int_equal(rlmi_build(&l, &out), 0);
	out = sk_deref(out);

	/* Multipart: boundary, start cid, the parts. */
	assert_int_equal(rlmi_multipart(&l, "", "s@x", &out, &ct), SK_EINVAL);
	assert_null(out);
	assert_null(ct);
	assert_int_equal(rlmi_multipart(&l, "ends in space ", "s@x", &out, &ct), SK_EINVAL);
	assert_int_equal(rlmi_multipart(&l, "semi;colon", "s@x", &out, &ct), SK_EINVAL);
	assert_int_equal(rlmi_multipart(&l,
					"01234567890123456789012345678901234567890123456789"
					"012345678901234567890",
					"s@x", &out, &ct),
			 SK_EINVAL); /* 71 characters */
	assert_int_equal(rlmi_multipart(&l, "b", "", &out, &ct), SK_EINVAL);
	assert_int_equal(rlmi_multipart(&l, "b", "s>@x", &out, &ct), SK_EINVAL);
	assert_int_equal(rlmi_multipart(NULL, "b", "s@x", &out, &ct), SK_EINVAL);
	/* The boundary inside a part (the pidf body holds "--" nowhere, the RLMI uri does). */
	l.uri = "sip:--zz@example.com";
	assert_int_equal(rlmi_multipart(&l, "zz", "s@x", &out, &ct), SK_EINVAL);
	RESET();
	in[0].body = "x\r\n--zz\r\n";
	in[0].len = strlen(in[0].body);
	assert_int_equal(rlmi_multipart(&l, "zz", "s@x", &out, &ct), SK_EINVAL);
	RESET();
	in[0].ctype = NULL;
	assert_int_equal(rlmi_multipart(&l, "zz", "s@x", &out, &ct), SK_EINVAL);
	RESET();
	in[0].ctype = "text/plain\r\nX-Evil: 1";
	assert_int_equal(rlmi_multipart(&l, "zz", "s@x", &out, &ct), SK_EINVAL);
	RESET(); /* the start cid reused by a part */
	assert_int_equal(rlmi_multipart(&l, "zz", bob_inst[0].cid, &out, &ct), SK_EINVAL);
	assert_null(out);
	assert_null(ct);
	RESET();
	assert_int_equal(rlmi_multipart(&l, "zz", "s@x", &out, &ct), 0);
	out = sk_deref(out);
	ct = sk_deref(ct);
	/* Out of memory on either string: nothing returned, nothing leaked. */
	for (unsigned long k = 1; k <= 2; k++) {
		sk_mem_fail_after(k);
		assert_int_equal(rlmi_multipart(&l, "zz", "s@x", &out, &ct), SK_ENOMEM);
		assert_null(out);
		assert_null(ct);
	}
	sk_mem_fail_after(0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_build),
	    SK_TEST(test_multipart),
	    SK_TEST(test_errors),
	};

	if (argc > 1)
		test_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
