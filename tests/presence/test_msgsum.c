/* msgsum_build: the RFC 3842 §5.2 grammar (status line, account line, one summary
 * line of the text-message class of RFC 3458), laid out as RFC 3842's example
 * body, and what is refused. */
#include "pres_test.h"
#include "skein/sk_err.h"
#include "msgsum.h"

/* The lines of body, each checked against RFC 3842 §5.2's ABNF by hand: HCOLON is
 * ": " as the RFC's examples write it, every line ends in CRLF. */
static void test_rfc3842_layout(void **state)
{
	char *out = NULL;

	(void)state;
	/* RFC 3842's example: "Messages-Waiting: yes / Message-Account: sip:alice@vmail.example.com
	 * / Voice-Message: 2/8 (0/2)" -- the same lines with our class. */
	assert_int_equal(msgsum_build("sip:alice@vmail.example.com", 2, 8, &out), 0);
	assert_string_equal(out, "Messages-Waiting: yes\r\n"
				 "Message-Account: sip:alice@vmail.example.com\r\n"
				 "Text-Message: 2/8\r\n");
	out = sk_deref(out);
	/* §5.2: "yes" only when there are new messages; old ones alone are "no". */
	assert_int_equal(msgsum_build("sip:bob@example.com", 0, 3, &out), 0);
	assert_string_equal(out, "Messages-Waiting: no\r\n"
				 "Message-Account: sip:bob@example.com\r\n"
				 "Text-Message: 0/3\r\n");
	out = sk_deref(out);
	assert_int_equal(msgsum_build("sip:bob@example.com", 0, 0, &out), 0);
	assert_int_equal(occurs(out, "Messages-Waiting: no\r\n"), 1);
	assert_int_equal(occurs(out, "Text-Message: 0/0\r\n"), 1);
	out = sk_deref(out);
	/* The account line is optional (§5.2: [msg-account CRLF]). */
	assert_int_equal(msgsum_build(NULL, 4294967295UL, 1, &out), 0);
	assert_string_equal(out, "Messages-Waiting: yes\r\nText-Message: 4294967295/1\r\n");
	out = sk_deref(out);
	assert_int_equal(msgsum_build("sips:a%20b@example.com;x=1", 1, 0, &out), 0);
	assert_int_equal(occurs(out, "\r\n"), 3);
	assert_int_equal(occurs(out, "\n"), 3);
	out = sk_deref(out);
}

static void test_errors(void **state)
{
	static const char *const bad[] = {"",
					  "sip:a@example.com\r\nMessages-Waiting: no",
					  "sip:a@example.com\n",
					  "sip:a b@example.com",
					  "sip:a\tb@example.com",
					  "sip:a\x7f@example.com",
					  "sip:a\x01@example.com"};
	char *out = (char *)"sentinel";

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(msgsum_build(bad[i], 1, 0, &out), SK_EINVAL);
		assert_null(out);
		out = (char *)"sentinel";
	}
	assert_int_equal(msgsum_build("sip:a@example.com", 1, 0, NULL), SK_EINVAL);
	sk_mem_fail_after(1);
	assert_int_equal(msgsum_build("sip:a@example.com", 1, 0, &out), SK_ENOMEM);
	assert_null(out);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_rfc3842_layout),
	    SK_TEST(test_errors),
	};

	if (argc > 1)
		test_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
