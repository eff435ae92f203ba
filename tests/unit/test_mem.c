/* sk_mem: refcounts, destructors, fault injection, string helpers. */
#include <string.h>
#include "sk_test.h"

static int destroyed;

static void obj_destroy(void *data)
{
	(void)data;
	destroyed++;
}

static void test_ref_deref(void **state)
{
	int *p = sk_zalloc(sizeof(*p), obj_destroy);

	(void)state;
	destroyed = 0;
	assert_non_null(p);
	assert_int_equal(*p, 0);
	assert_int_equal(sk_nrefs(p), 1);
	assert_ptr_equal(sk_ref(p), p);
	assert_int_equal(sk_nrefs(p), 2);
	assert_null(sk_deref(p));
	assert_int_equal(destroyed, 0);
	assert_null(sk_deref(p));
	assert_int_equal(destroyed, 1);
	assert_null(sk_deref(NULL));
	assert_null(sk_ref(NULL));
}

static void test_fail_after(void **state)
{
	void *a, *b;

	(void)state;
	sk_mem_fail_after(2);
	a = sk_zalloc(8, NULL);
	b = sk_zalloc(8, NULL);
	assert_non_null(a);
	assert_null(b);
	sk_deref(a);
	assert_null(sk_zalloc_array(SIZE_MAX / 2, 4, NULL));
}

/* sk_alloc: the same object without zeroing (refcount, destructor, live count, fault
 * injection, size limit). */
static void test_alloc_unzeroed(void **state)
{
	size_t live = sk_mem_live();
	char *p = sk_alloc(4096, obj_destroy);

	(void)state;
	destroyed = 0;
	assert_non_null(p);
	assert_int_equal(sk_nrefs(p), 1);
	assert_int_equal(sk_mem_live(), live + 1);
	memset(p, 'x', 4096); /* all of it is ours */
	assert_ptr_equal(sk_ref(p), p);
	assert_null(sk_deref(p));
	assert_null(sk_deref(p));
	assert_int_equal(destroyed, 1);
	assert_int_equal(sk_mem_live(), live);
	sk_mem_fail_after(1);
	assert_null(sk_alloc(8, NULL));
	assert_null(sk_alloc(SIZE_MAX - 4, NULL));
	assert_int_equal(sk_mem_live(), live);
}

static void test_strings(void **state)
{
	char *s = sk_strdup("alice"), *t = sk_strndup("bobcat", 3), *u = sk_strdupf("%s-%d", "n", 7);

	(void)state;
	assert_string_equal(s, "alice");
	assert_string_equal(t, "bob");
	assert_string_equal(u, "n-7");
	assert_null(sk_strdup(NULL));
	sk_deref(s);
	sk_deref(t);
	sk_deref(u);
}

static void test_resize(void **state)
{
	char *p = sk_zalloc(4, NULL);

	(void)state;
	memcpy(p, "abc", 4);
	p = sk_realloc(p, 64);
	assert_non_null(p);
	assert_string_equal(p, "abc");
	assert_int_equal(p[63], 0);
	sk_ref(p);
	assert_null(sk_realloc(p, 128)); /* shared objects cannot move */
	sk_deref(p);
	sk_deref(p);
}

static void test_leak_detected(void **state)
{
	void *p = sk_zalloc(1, NULL);

	(void)state;
	/* The harness itself must see a leak: check it by hand here. */
	assert_int_equal(leak_check(NULL), -1);
	sk_deref(p);
	assert_int_equal(leak_check(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		SK_TEST(test_ref_deref), SK_TEST(test_fail_after), SK_TEST(test_strings),
		SK_TEST(test_resize), SK_TEST(test_leak_detected), SK_TEST(test_alloc_unzeroed),
	};
	return cmocka_run_group_tests_name("mem", tests, NULL, NULL);
}
