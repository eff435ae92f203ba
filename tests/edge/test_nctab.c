/* The edge's nonce-count table (services/edge/nctab.c, RFC 7616 §3.4): counts must
 * grow per nonce, a nonce is forgotten once its slot was issued again or when it names
 * another run of the edge, index 0 is never issued, sizes round up to powers of two. */
#include <string.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
/* The file itself, for test_wrap to set the counter (the library's copy is not
 * linked in: every symbol is defined here). */
#include "nctab.c"

static void test_counts(void **state)
{
	struct edge_nctab *t;
	uint32_t a, b;

	(void)state;
	assert_int_equal(edge_nctab_alloc(&t, 1000, 77), 0);
	assert_int_equal(edge_nctab_slots(t), 1024);
	assert_int_equal(edge_nctab_epoch(t), 77);
	a = edge_nctab_issue(t);
	b = edge_nctab_issue(t);
	assert_int_not_equal(a, 0);
	assert_int_not_equal(a, b);
	/* nc 1, then a replay of it, then the next counts, out of order refused */
	assert_int_equal(edge_nctab_use(t, 77, a, 1), EDGE_NC_FRESH);
	assert_int_equal(edge_nctab_use(t, 77, a, 1), EDGE_NC_REPLAY);
	assert_int_equal(edge_nctab_use(t, 77, a, 3), EDGE_NC_FRESH);
	assert_int_equal(edge_nctab_use(t, 77, a, 2), EDGE_NC_REPLAY);
	assert_int_equal(edge_nctab_use(t, 77, a, 3), EDGE_NC_REPLAY);
	/* nc 0 is never above the last count */
	assert_int_equal(edge_nctab_use(t, 77, b, 0), EDGE_NC_REPLAY);
	/* the other nonce has its own count */
	assert_int_equal(edge_nctab_use(t, 77, b, 1), EDGE_NC_FRESH);
	assert_int_equal(edge_nctab_use(t, 77, b, 0xffffffffu), EDGE_NC_FRESH);
	assert_int_equal(edge_nctab_use(t, 77, b, 0xffffffffu), EDGE_NC_REPLAY);
	/* another run of the edge, an index never issued, index 0 */
	assert_int_equal(edge_nctab_use(t, 78, a, 9), EDGE_NC_FORGOTTEN);
	assert_int_equal(edge_nctab_use(t, 77, b + 1, 1), EDGE_NC_FORGOTTEN);
	assert_int_equal(edge_nctab_use(t, 77, 0, 1), EDGE_NC_FORGOTTEN);
	assert_string_equal(edge_nc_name(EDGE_NC_FRESH), "fresh");
	assert_string_equal(edge_nc_name(EDGE_NC_REPLAY), "replay");
	assert_string_equal(edge_nc_name(EDGE_NC_FORGOTTEN), "forgotten");
	sk_deref(t);
}

/* A slot issued again forgets the nonce that held it: stale, never a count carried
 * over to the new nonce (whose count starts again). */
static void test_reuse(void **state)
{
	struct edge_nctab *t;
	uint32_t first, i, last = 0;

	(void)state;
	assert_int_equal(edge_nctab_alloc(&t, 4, 1), 0);
	assert_int_equal(edge_nctab_slots(t), 4);
	first = edge_nctab_issue(t);
	assert_int_equal(edge_nctab_use(t, 1, first, 5), EDGE_NC_FRESH);
	for (i = 0; i < 3; i++)
		last = edge_nctab_issue(t);
	/* three newer nonces: the first still known */
	assert_int_equal(edge_nctab_use(t, 1, first, 6), EDGE_NC_FRESH);
	/* a fourth takes its slot */
	last = edge_nctab_issue(t);
	assert_int_equal(last & 3, first & 3);
	assert_int_equal(edge_nctab_use(t, 1, first, 7), EDGE_NC_FORGOTTEN);
	assert_int_equal(edge_nctab_use(t, 1, last, 1), EDGE_NC_FRESH);
	sk_deref(t);
}

/* 2^32 - 1 nonces later the index wraps past 0 (checked by setting the counter). */
static void test_wrap(void **state)
{
	struct edge_nctab *t;

	(void)state;
	assert_int_equal(edge_nctab_alloc(&t, 4, 5), 0);
	t->next = 0xffffffffu;
	assert_int_equal(edge_nctab_issue(t), 0xffffffffu);
	assert_int_equal(edge_nctab_issue(t), 1);
	assert_int_equal(edge_nctab_use(t, 5, 0xffffffffu, 1), EDGE_NC_FRESH);
	assert_int_equal(edge_nctab_use(t, 5, 1, 1), EDGE_NC_FRESH);
	sk_deref(t);
}

static void test_sizes(void **state)
{
	struct edge_nctab *t = (struct edge_nctab *)1;

	(void)state;
	assert_int_equal(edge_nctab_alloc(&t, 0, 1), SK_EINVAL);
	assert_null(t);
	assert_int_equal(edge_nctab_alloc(&t, ((size_t)1 << 30) + 1, 1), SK_EINVAL);
	assert_int_equal(edge_nctab_alloc(&t, 1, 1), 0);
	assert_int_equal(edge_nctab_slots(t), 2);
	sk_deref(t);
	assert_int_equal(edge_nctab_alloc(&t, 1u << 20, 1), 0);
	assert_int_equal(edge_nctab_slots(t), 1u << 20);
	sk_deref(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_counts),
	    SK_TEST(test_reuse),
	    SK_TEST(test_wrap),
	    SK_TEST(test_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
