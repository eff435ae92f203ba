/* sk_err and sk_buf: the error list and the output buffer. */
#include <string.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "skein/sk_buf.h"

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(sk_strerror(0), "success");
	assert_string_equal(sk_strerror(SK_ETIMEDOUT), "timed out");
	assert_string_equal(sk_strerror(SK_ENONODE), "no live node of that role");
	assert_string_equal(sk_err_name(SK_ENONODE), "ENONODE");
	assert_string_equal(sk_err_name(SK_ETIMEDOUT), "ETIMEDOUT");
	/* An errno outside the list still reads as the system's message. */
	assert_string_equal(sk_strerror(-EPIPE), strerror(EPIPE));
	assert_string_equal(sk_err_name(-EPIPE), "UNKNOWN");
	assert_string_equal(sk_strerror(-4999), "unknown error");
	/* Skein's own codes never collide with errno values. */
	assert_true(SK_ECONFIG < -4000 && SK_EREMOTE < -4000);
}

static void test_buf(void **state)
{
	struct sk_buf b;

	(void)state;
	sk_buf_init(&b);
	assert_int_equal(sk_buf_puts(&b, "a"), 0);
	assert_int_equal(sk_buf_printf(&b, "%d-%s", 42, "x"), 0);
	assert_string_equal(b.data, "a42-x");
	for (int i = 0; i < 1000; i++)
		sk_buf_append(&b, "0123456789", 10);
	assert_int_equal(b.len, 5 + 10000);
	assert_int_equal(b.data[b.len], '\0');
	sk_buf_reset(&b);
	assert_int_equal(b.len, 0);
	sk_buf_json_str(&b, "q\"b\\n\n\x02");
	assert_string_equal(b.data, "\"q\\\"b\\\\n\\n\\u0002\"");
	sk_buf_reset(&b);
	sk_buf_json_str(&b, NULL);
	assert_string_equal(b.data, "\"\"");
	sk_buf_release(&b);
	assert_null(b.data);
}

/* sk_buf_printf prints into the free space first and redoes only a print that did
 * not fit: both paths, and the NUL after a print that had to be redone. */
static void test_buf_printf_fit(void **state)
{
	struct sk_buf b;
	char big[600];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sk_buf_init(&b);
	assert_int_equal(sk_buf_printf(&b, "%s", ""), 0); /* an empty print */
	assert_int_equal(b.len, 0);
	assert_int_equal(sk_buf_printf(&b, "a%db", 1), 0); /* grows from nothing */
	assert_string_equal(b.data, "a1b");
	assert_int_equal(sk_buf_printf(&b, "%s", "c"), 0); /* fits */
	assert_string_equal(b.data, "a1bc");
	assert_int_equal(sk_buf_printf(&b, "%s|", big), 0); /* does not fit: redone */
	assert_int_equal(b.len, 4 + 599 + 1);
	assert_memory_equal(b.data, "a1bc", 4);
	assert_int_equal(b.data[4 + 599], '|');
	assert_int_equal(b.data[b.len], '\0');
	sk_buf_release(&b);
}

static void test_buf_putu_reserve(void **state)
{
	struct sk_buf b;
	char *before;

	(void)state;
	sk_buf_init(&b);
	assert_int_equal(sk_buf_putu(&b, 0), 0);
	assert_int_equal(sk_buf_puts(&b, " "), 0);
	assert_int_equal(sk_buf_putu(&b, 407), 0);
	assert_int_equal(sk_buf_puts(&b, " "), 0);
	assert_int_equal(sk_buf_putu(&b, 18446744073709551615ull), 0);
	assert_string_equal(b.data, "0 407 18446744073709551615");
	/* sk_u64_dec: the same digits, no NUL, its count returned */
	{
		char d[SK_U64_DEC_MAX + 1];

		memset(d, 'x', sizeof(d));
		assert_int_equal(sk_u64_dec(d, 0), 1);
		assert_memory_equal(d, "0x", 2);
		assert_int_equal(sk_u64_dec(d, 65535), 5);
		assert_memory_equal(d, "65535x", 6);
		assert_int_equal(sk_u64_dec(d, 18446744073709551615ull), SK_U64_DEC_MAX);
		assert_memory_equal(d, "18446744073709551615x", 21);
	}
	assert_int_equal(SK_BUF_LIT(&b, "|a\0b"), 0); /* the literal's length, NUL included */
	assert_int_equal(b.len, 26 + 4);
	assert_memory_equal(b.data + 26, "|a\0b", 5);
	b.len = 26;
	b.data[26] = '\0';
	/* reserve: one allocation for what follows, contents kept */
	assert_int_equal(sk_buf_reserve(&b, 4000), 0);
	assert_true(b.cap >= b.len + 4000 + 1);
	assert_string_equal(b.data, "0 407 18446744073709551615");
	before = b.data;
	for (int i = 0; i < 400; i++)
		sk_buf_append(&b, "0123456789", 10);
	assert_ptr_equal(b.data, before);
	assert_int_equal(b.len, 26 + 4000);
	sk_buf_release(&b);
	/* an empty buffer, reserved: an empty string */
	assert_int_equal(sk_buf_reserve(&b, 10), 0);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	sk_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {SK_TEST(test_strerror), SK_TEST(test_buf),
					   SK_TEST(test_buf_printf_fit),
					   SK_TEST(test_buf_putu_reserve)};

	return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
