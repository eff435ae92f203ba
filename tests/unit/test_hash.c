/* sk_hash: FNV-1a against the published test vectors (draft-eastlake-fnv, "Test
 * vectors"), and the byte, buffer and string forms agreeing with each other. Values
 * other nodes compare (the nonce issuer id, RLMI and reginfo ids) depend on these. */
#include <string.h>
#include "sk_test.h"
#include "skein/sk_hash.h"

static void test_vectors(void **state)
{
	(void)state;
	assert_true(sk_fnv64_str(SK_FNV64_BASIS, "") == 0xcbf29ce484222325ull);
	assert_true(sk_fnv64_str(SK_FNV64_BASIS, "a") == 0xaf63dc4c8601ec8cull);
	assert_true(sk_fnv64_str(SK_FNV64_BASIS, "foobar") == 0x85944171f73967e8ull);
	assert_true(sk_fnv32_str(SK_FNV32_BASIS, "") == 0x811c9dc5u);
	assert_true(sk_fnv32_str(SK_FNV32_BASIS, "a") == 0xe40c292cu);
	assert_true(sk_fnv32_str(SK_FNV32_BASIS, "foobar") == 0xbf9cf968u);
	/* NULL is the empty string */
	assert_true(sk_fnv64_str(SK_FNV64_BASIS, NULL) == SK_FNV64_BASIS);
	assert_true(sk_fnv32_str(SK_FNV32_BASIS, NULL) == SK_FNV32_BASIS);
}

static void test_forms_agree(void **state)
{
	const char *s = "sip:alice@example.com";
	uint64_t h = SK_FNV64_BASIS;

	(void)state;
	for (size_t i = 0; s[i]; i++)
		h = sk_fnv64_byte(h, (unsigned char)s[i]);
	assert_true(h == sk_fnv64_str(SK_FNV64_BASIS, s));
	assert_true(h == sk_fnv64(SK_FNV64_BASIS, s, strlen(s)));
	/* in pieces: the state carries over */
	assert_true(sk_fnv64(sk_fnv64(SK_FNV64_BASIS, s, 4), s + 4, strlen(s) - 4) == h);
	/* a seed changes everything */
	assert_true(sk_fnv64_str(SK_FNV64_BASIS ^ 1, s) != h);
	/* the fold keeps the low bits' dependence on the high ones */
	assert_true(sk_hash_fold(1ull << 40) != 0);
	assert_true(sk_hash_fold(0) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {SK_TEST(test_vectors), SK_TEST(test_forms_agree)};

	return cmocka_run_group_tests_name("hash", tests, NULL, NULL);
}
