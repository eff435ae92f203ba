/* The edge's HA1 cache (services/edge/core_ha1.c, issue 6): hit and miss by AOR and
 * algorithm, replacement of an entry, the bound and the least recently used slot of
 * a full set going first, drop, and size 0 (off: a NULL cache that never hits). */
#include <stdio.h>
#include <string.h>
#include "sk_test.h"
#include "skein/sk_err.h"
/* The cache is a file of skein-edge's core, which the edge tests do not link. */
#include "core_ha1.c"

#define MD5A "0123456789abcdef0123456789abcdef"
#define MD5B "fedcba9876543210fedcba9876543210"
#define SHA  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_hit_miss(void **state)
{
	struct edge_ha1_cache *c;
	char out[EDGE_DIGEST_HEX_SIZE];

	(void)state;
	assert_int_equal(edge_ha1_alloc(&c, 64), 0);
	assert_non_null(c);
	assert_false(edge_ha1_get(c, "alice@example.com", EDGE_DIGEST_MD5, out, sizeof(out)));
	edge_ha1_put(c, "alice@example.com", EDGE_DIGEST_MD5, MD5A);
	assert_true(edge_ha1_get(c, "alice@example.com", EDGE_DIGEST_MD5, out, sizeof(out)));
	assert_string_equal(out, MD5A);
	/* keyed by algorithm too, and by the exact (normalised) AOR */
	assert_false(edge_ha1_get(c, "alice@example.com", EDGE_DIGEST_SHA256, out, sizeof(out)));
	assert_false(edge_ha1_get(c, "bob@example.com", EDGE_DIGEST_MD5, out, sizeof(out)));
	edge_ha1_put(c, "alice@example.com", EDGE_DIGEST_SHA256, SHA);
	assert_true(edge_ha1_get(c, "alice@example.com", EDGE_DIGEST_SHA256, out, sizeof(out)));
	assert_string_equal(out, SHA);
	assert_int_equal(edge_ha1_count(c), 2);
	/* a new password replaces the entry in place */
	edge_ha1_put(c, "alice@example.com", EDGE_DIGEST_MD5, MD5B);
	assert_true(edge_ha1_get(c, "alice@example.com", EDGE_DIGEST_MD5, out, sizeof(out)));
	assert_string_equal(out, MD5B);
	assert_int_equal(edge_ha1_count(c), 2);
	/* too small a buffer is a miss, not a truncated HA1 */
	assert_false(edge_ha1_get(c, "alice@example.com", EDGE_DIGEST_MD5, out, 32));
	/* a deleted user ("" or NULL) and an over-long value drop the entry */
	edge_ha1_put(c, "alice@example.com", EDGE_DIGEST_MD5, "");
	assert_false(edge_ha1_get(c, "alice@example.com", EDGE_DIGEST_MD5, out, sizeof(out)));
	edge_ha1_put(c, "alice@example.com", EDGE_DIGEST_SHA256, SHA "00");
	assert_false(edge_ha1_get(c, "alice@example.com", EDGE_DIGEST_SHA256, out, sizeof(out)));
	edge_ha1_put(c, "alice@example.com", EDGE_DIGEST_SHA256, NULL);
	assert_int_equal(edge_ha1_count(c), 0);
	sk_deref(c);
}

static void test_eviction(void **state)
{
	struct edge_ha1_cache *c;
	char out[EDGE_DIGEST_HEX_SIZE], aor[64];
	size_t hits = 0;

	(void)state;
	/* bounded: 1000 users through 100 slots keep at most 100 */
	assert_int_equal(edge_ha1_alloc(&c, 100), 0);
	for (int i = 0; i < 1000; i++) {
		snprintf(aor, sizeof(aor), "u%d@example.com", i);
		edge_ha1_put(c, aor, EDGE_DIGEST_MD5, MD5A);
		assert_true(edge_ha1_count(c) <= 100);
	}
	assert_true(edge_ha1_count(c) > 50);
	for (int i = 0; i < 1000; i++) {
		snprintf(aor, sizeof(aor), "u%d@example.com", i);
		hits += edge_ha1_get(c, aor, EDGE_DIGEST_MD5, out, sizeof(out));
	}
	assert_int_equal(hits, edge_ha1_count(c));
	/* the most recent ones are those kept */
	assert_true(edge_ha1_get(c, "u999@example.com", EDGE_DIGEST_MD5, out, sizeof(out)));
	sk_deref(c);

	/* One set of 4: the least recently used goes first. */
	assert_int_equal(edge_ha1_alloc(&c, 4), 0);
	edge_ha1_put(c, "a@x", EDGE_DIGEST_MD5, MD5A);
	edge_ha1_put(c, "b@x", EDGE_DIGEST_MD5, MD5A);
	edge_ha1_put(c, "c@x", EDGE_DIGEST_MD5, MD5A);
	edge_ha1_put(c, "d@x", EDGE_DIGEST_MD5, MD5A);
	assert_true(edge_ha1_get(c, "a@x", EDGE_DIGEST_MD5, out, sizeof(out))); /* a used */
	edge_ha1_put(c, "e@x", EDGE_DIGEST_MD5, MD5B);				/* b goes */
	assert_int_equal(edge_ha1_count(c), 4);
	assert_false(edge_ha1_get(c, "b@x", EDGE_DIGEST_MD5, out, sizeof(out)));
	assert_true(edge_ha1_get(c, "a@x", EDGE_DIGEST_MD5, out, sizeof(out)));
	assert_true(edge_ha1_get(c, "e@x", EDGE_DIGEST_MD5, out, sizeof(out)));
	assert_string_equal(out, MD5B);
	sk_deref(c);

	/* Fewer entries than ways: still bounded. */
	assert_int_equal(edge_ha1_alloc(&c, 1), 0);
	edge_ha1_put(c, "a@x", EDGE_DIGEST_MD5, MD5A);
	edge_ha1_put(c, "b@x", EDGE_DIGEST_MD5, MD5B);
	assert_int_equal(edge_ha1_count(c), 1);
	assert_true(edge_ha1_get(c, "b@x", EDGE_DIGEST_MD5, out, sizeof(out)));
	sk_deref(c);
}

static void test_size_zero(void **state)
{
	struct edge_ha1_cache *c = (void *)1;
	char out[EDGE_DIGEST_HEX_SIZE];

	(void)state;
	assert_int_equal(edge_ha1_alloc(&c, 0), 0);
	assert_null(c);
	/* every call on the absent cache is harmless: always a miss */
	edge_ha1_put(c, "alice@example.com", EDGE_DIGEST_MD5, MD5A);
	assert_false(edge_ha1_get(c, "alice@example.com", EDGE_DIGEST_MD5, out, sizeof(out)));
	assert_int_equal(edge_ha1_count(c), 0);
}

static void test_out_of_memory(void **state)
{
	struct edge_ha1_cache *c = (void *)1;

	(void)state;
	sk_mem_fail_after(1);
	assert_int_equal(edge_ha1_alloc(&c, 16), SK_ENOMEM);
	assert_null(c);
	sk_mem_fail_after(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		SK_TEST(test_hit_miss),
		SK_TEST(test_eviction),
		SK_TEST(test_size_zero),
		SK_TEST(test_out_of_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
