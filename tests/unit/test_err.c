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

int main(void)
{
	const struct CMUnitTest tests[] = {SK_TEST(test_strerror), SK_TEST(test_buf)};

	return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
