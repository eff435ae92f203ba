/* Shared by the cmocka unit tests: every test case runs between leak_setup and
 * leak_check, which fails the case when it leaves a refcounted object alive. */
#ifndef SK_TEST_H
#define SK_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "skein/sk_mem.h"

static size_t sk_test_live_before;

static inline int leak_setup(void **state)
{
	(void)state;
	sk_mem_fail_after(0);
	sk_test_live_before = sk_mem_live();
	return 0;
}

static inline int leak_check(void **state)
{
	(void)state;
	sk_mem_fail_after(0);
	if (sk_mem_live() != sk_test_live_before) {
		print_error("leak: %zu refcounted objects left alive\n",
			    sk_mem_live() - sk_test_live_before);
		return -1;
	}
	return 0;
}

#define SK_TEST(f) cmocka_unit_test_setup_teardown(f, leak_setup, leak_check)

#endif
