/* sk_log: level specs, per-module levels at run time, text and JSON records, context. */
#include <string.h>
#include <unistd.h>
#include "sk_test.h"
#include "skein/sk_log.h"
#include "skein/sk_err.h"

SK_LOG_MODULE("testmod");

/* Captures what the logger writes, one record per read. */
static int pipefd[2];

static int cap_setup(void **state)
{
	assert_int_equal(pipe(pipefd), 0);
	sk_log_fd_set(pipefd[1]);
	sk_log_format_set(SK_LOG_TEXT);
	sk_log_node_set("n1/registrar");
	sk_log_ctx_set(NULL, NULL);
	assert_int_equal(sk_log_levels_set("info", NULL), 0);
	return leak_setup(state);
}

static int cap_teardown(void **state)
{
	sk_log_fd_set(-1);
	close(pipefd[0]);
	close(pipefd[1]);
	return leak_check(state);
}

static size_t drain(char *buf, size_t size)
{
	ssize_t n;

	/* One record is one write(2): a non-empty pipe holds whole records. */
	n = read(pipefd[0], buf, size - 1);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

static void test_levels_parse(void **state)
{
	const char *bad = NULL;

	(void)state;
	assert_int_equal(sk_log_level_parse("debug"), SK_LOG_DEBUG);
	assert_int_equal(sk_log_level_parse("WARNING"), SK_LOG_WARN);
	assert_int_equal(sk_log_level_parse("loud"), -1);
	assert_int_equal(sk_log_levels_check("info,bus=debug,redis=warn"), 0);
	assert_int_equal(sk_log_levels_check("info,bus=chatty"), SK_EINVAL);
	assert_int_equal(sk_log_levels_set("info,bus=loud", &bad), SK_EINVAL);
	assert_non_null(bad);
	assert_string_equal(bad, "bus=loud");
	/* A refused spec changes nothing. */
	assert_int_equal(sk_log_level_get("bus"), SK_LOG_INFO);
	assert_int_equal(sk_log_levels_set("warn,bus=debug", NULL), 0);
	assert_int_equal(sk_log_level_get("bus"), SK_LOG_DEBUG);
	assert_int_equal(sk_log_level_get("other"), SK_LOG_WARN);
}

static void test_module_level_at_run_time(void **state)
{
	char buf[4096];

	(void)state;
	SK_DEBUG("hidden %d", 1);
	SK_INFO("shown %d", 2);
	drain(buf, sizeof(buf));
	assert_null(strstr(buf, "hidden"));
	assert_non_null(strstr(buf, "shown 2"));
	assert_int_equal(sk_log_levels_set("info,testmod=debug", NULL), 0);
	SK_DEBUG("now visible");
	drain(buf, sizeof(buf));
	assert_non_null(strstr(buf, "now visible"));
	assert_int_equal(sk_log_levels_set("info,testmod=error", NULL), 0);
	SK_WARN("quiet");
	SK_ERROR("loud");
	drain(buf, sizeof(buf));
	assert_null(strstr(buf, "quiet"));
	assert_non_null(strstr(buf, "loud"));
}

static void test_text_record(void **state)
{
	char buf[4096];

	(void)state;
	sk_log_ctx_set("trace", "abcd");
	SK_NOTICE("hello %s", "world");
	sk_log_ctx_set(NULL, NULL);
	drain(buf, sizeof(buf));
	/* 2026-01-01T00:00:00.000Z notice testmod [n1/registrar trace=abcd] hello world */
	assert_int_equal(buf[4], '-');
	assert_int_equal(buf[23], 'Z');
	assert_non_null(strstr(buf, " notice "));
	assert_non_null(strstr(buf, "testmod"));
	assert_non_null(strstr(buf, "[n1/registrar trace=abcd] hello world\n"));
	assert_int_equal(strchr(buf, '\n') - buf + 1, (long)strlen(buf)); /* one line */
}

/* Text from the network cannot start a line of its own (a forged log event). */
static void test_text_record_control_characters(void **state)
{
	char buf[4096];

	(void)state;
	SK_NOTICE("user=\"%s\" end", "a\r\n2026-01-01T00:00:00.000Z notice forged\x01\tx");
	drain(buf, sizeof(buf));
	assert_non_null(strstr(buf, "user=\"a??2026-01-01T00:00:00.000Z notice forged?\tx\" end\n"));
	assert_int_equal(strchr(buf, '\n') - buf + 1, (long)strlen(buf)); /* one line */
}

static void test_json_record(void **state)
{
	char buf[4096];

	(void)state;
	sk_log_format_set(SK_LOG_JSON);
	sk_log_ctx_set("call", "c\"1");
	SK_WARN("quote \" backslash \\ newline \n tab \t ctl \x01 end");
	sk_log_ctx_set(NULL, NULL);
	drain(buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"level\":\"warn\""));
	assert_non_null(strstr(buf, "\"module\":\"testmod\""));
	assert_non_null(strstr(buf, "\"node\":\"n1/registrar\""));
	assert_non_null(strstr(buf, "\"call\":\"c\\\"1\""));
	assert_non_null(strstr(buf, "quote \\\" backslash \\\\ newline \\n tab \\t ctl \\u0001 end"));
	assert_int_equal(buf[0], '{');
	assert_int_equal(buf[strlen(buf) - 2], '}');
	assert_int_equal(strchr(buf, '\n') - buf + 1, (long)strlen(buf));
}

static void test_long_message_truncated_not_overflowing(void **state)
{
	char big[3000], buf[8192];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	SK_INFO("%s", big);
	drain(buf, sizeof(buf));
	assert_true(strlen(buf) < 1200);
	assert_int_equal(buf[strlen(buf) - 1], '\n');
}

/* Values from the network in quoted log fields (fail2ban reads those lines). */
static void test_escape(void **state)
{
	char out[64], tiny[6];

	(void)state;
	assert_string_equal(sk_log_escape("alice", out, sizeof(out)), "alice");
	assert_string_equal(sk_log_escape("a\"b\\c", out, sizeof(out)), "a\\x22b\\x5cc");
	assert_string_equal(sk_log_escape("x\r\n y\x7f\xc3", out, sizeof(out)),
			    "x\\x0d\\x0a y\\x7f\\xc3");
	assert_string_equal(sk_log_escape(NULL, out, sizeof(out)), "");
	/* truncated whole: never half an escape */
	assert_string_equal(sk_log_escape("\x01\x02", tiny, sizeof(tiny)), "\\x01");
	assert_string_equal(sk_log_escape("abcdefgh", tiny, sizeof(tiny)), "a");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_levels_parse, cap_setup, cap_teardown),
		cmocka_unit_test_setup_teardown(test_module_level_at_run_time, cap_setup, cap_teardown),
		cmocka_unit_test_setup_teardown(test_text_record, cap_setup, cap_teardown),
		cmocka_unit_test_setup_teardown(test_text_record_control_characters, cap_setup,
						cap_teardown),
		cmocka_unit_test_setup_teardown(test_json_record, cap_setup, cap_teardown),
		cmocka_unit_test_setup_teardown(test_long_message_truncated_not_overflowing, cap_setup,
						cap_teardown),
		cmocka_unit_test(test_escape),
	};
	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
