/* sk_sys: the wall clock, mkdir -p, timers allocated apart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include "sk_test.h"
#include "skein/sk_sys.h"
#include "skein/sk_err.h"

static void test_unix_ms(void **state)
{
	uint64_t a = sk_sys_unix_ms(), b;

	(void)state;
	/* Within a second of time(2), and never going backwards between two calls. */
	assert_true(a / 1000 + 1 >= (uint64_t)time(NULL));
	assert_true(a / 1000 <= (uint64_t)time(NULL));
	b = sk_sys_unix_ms();
	assert_true(b >= a);
}

static void test_mkdirs(void **state)
{
	char base[] = "/tmp/skein-sys-XXXXXX", deep[256], file[300], big[5000];
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(base));
	snprintf(deep, sizeof(deep), "%s/a/b/c", base);
	assert_int_equal(sk_sys_mkdirs(deep), 0);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(sk_sys_mkdirs(deep), 0); /* exists already: fine */
	/* A file in the way is an error, not a silent success. */
	snprintf(file, sizeof(file), "%s/f", base);
	fclose(fopen(file, "w"));
	snprintf(deep, sizeof(deep), "%s/f/x", base);
	assert_int_equal(sk_sys_mkdirs(deep), -ENOTDIR);
	memset(big, 'x', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(sk_sys_mkdirs(big), SK_ERANGE);
	unlink(file);
	snprintf(deep, sizeof(deep), "rm -rf %s", base);
	assert_int_equal(system(deep), 0);
}

static void tick(uv_timer_t *t)
{
	int *n = t->data;

	if (++*n == 3)
		uv_timer_stop(t);
}

/* The timer repeats, and closing it frees it (ASan's leak check) and lets the loop
 * end; closing NULL is a no-op. */
static void test_timer(void **state)
{
	uv_loop_t loop;
	uv_timer_t *t;
	int n = 0;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	t = sk_sys_timer_start(&loop, tick, &n, 1, 1);
	assert_non_null(t);
	uv_run(&loop, UV_RUN_DEFAULT); /* ends when the timer stops itself */
	assert_int_equal(n, 3);
	assert_null(sk_sys_timer_close(t));
	assert_null(sk_sys_timer_close(NULL));
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {SK_TEST(test_unix_ms), SK_TEST(test_mkdirs),
					   SK_TEST(test_timer)};

	return cmocka_run_group_tests_name("sys", tests, NULL, NULL);
}
