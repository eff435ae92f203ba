/* sk_sys: the wall clock and mkdir -p. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {SK_TEST(test_unix_ms), SK_TEST(test_mkdirs)};

	return cmocka_run_group_tests_name("sys", tests, NULL, NULL);
}
