/* guard.h: addresses, CIDR lists, scanner words, token buckets, the ban array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "guard.h"

#define SEC 1000000000ull

static struct guard_ip ip(const char *s)
{
	struct guard_ip a;

	assert_true(guard_ip_parse(&a, s));
	return a;
}

static void test_ip_forms(void **state)
{
	struct guard_ip a = ip("192.0.2.7"), b = ip("::ffff:192.0.2.7"), c;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	char buf[64];

	(void)state;
	/* an IPv4 source seen on a dual-stack socket is the same source */
	assert_memory_equal(a.b, b.b, 16);
	assert_string_equal(guard_ip_str(&b, buf, sizeof(buf)), "192.0.2.7");
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	assert_true(guard_ip_from_sa(&c, (struct sockaddr *)&sin));
	assert_memory_equal(a.b, c.b, 16);
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	assert_true(guard_ip_from_sa(&c, (struct sockaddr *)&sin6));
	assert_string_equal(guard_ip_str(&c, buf, sizeof(buf)), "2001:db8::1");
	assert_false(guard_ip_parse(&c, "example.com"));
	assert_false(guard_ip_parse(&c, "192.0.2.300"));
}

static void test_nets(void **state)
{
	struct guard_nets *n = NULL;
	const char *why = NULL;
	struct guard_ip a;

	(void)state;
	assert_int_equal(guard_nets_parse(&n, " 10.0.0.0/8, 192.0.2.7 ,2001:db8::/33,", &why), 0);
	assert_non_null(n);
	assert_true(guard_nets_match(n, (a = ip("10.255.1.2"), &a)));
	assert_false(guard_nets_match(n, (a = ip("11.0.0.1"), &a)));
	assert_true(guard_nets_match(n, (a = ip("192.0.2.7"), &a)));
	assert_false(guard_nets_match(n, (a = ip("192.0.2.8"), &a)));
	assert_true(guard_nets_match(n, (a = ip("2001:db8:7fff::1"), &a)));
	assert_false(guard_nets_match(n, (a = ip("2001:db8:8000::1"), &a)));
	/* an IPv4 prefix never matches an IPv6 address outside ::ffff:0:0/96 */
	assert_false(guard_nets_match(n, (a = ip("::a00:1"), &a)));
	sk_deref(n);

	assert_int_equal(guard_nets_parse(&n, "0.0.0.0/0", &why), 0);
	assert_true(guard_nets_match(n, (a = ip("203.0.113.9"), &a)));
	assert_false(guard_nets_match(n, (a = ip("2001:db8::1"), &a)));
	sk_deref(n);

	assert_int_equal(guard_nets_parse(&n, "", &why), 0);
	assert_null(n);
	assert_false(guard_nets_match(NULL, &a));

	assert_int_equal(guard_nets_parse(&n, "10.0.0.0/33", &why), SK_EINVAL);
	assert_null(n);
	assert_non_null(strstr(why, "10.0.0.0/33"));
	assert_int_equal(guard_nets_parse(&n, "10.0.0.0/8,bogus", &why), SK_EINVAL);
	assert_non_null(strstr(why, "bogus"));
	assert_int_equal(guard_nets_parse(&n, "10.0.0.0/", &why), SK_EINVAL);
	assert_int_equal(guard_nets_parse(&n, "2001:db8::/129", &why), SK_EINVAL);
}

static void test_words(void **state)
{
	struct guard_words *w = NULL;

	(void)state;
	assert_int_equal(guard_words_parse(&w, "friendly-scanner, sipcli ,VaxSIPUserAgent"), 0);
	assert_string_equal(guard_words_match(w, "Friendly-Scanner"), "friendly-scanner");
	assert_string_equal(guard_words_match(w, "sipcli/v1.8"), "sipcli");
	assert_null(guard_words_match(w, "baresip v1.0.0 (x86_64/linux)"));
	assert_null(guard_words_match(w, NULL));
	sk_deref(w);
	assert_int_equal(guard_words_parse(&w, " , "), 0);
	assert_null(w);
	assert_null(guard_words_match(NULL, "friendly-scanner"));
}

static void test_bucket_rate_and_burst(void **state)
{
	struct guard_buckets *t;
	struct guard_ip a = ip("192.0.2.1"), b = ip("192.0.2.2");
	uint64_t now = 1000 * SEC, over;
	int taken = 0;

	(void)state;
	assert_int_equal(guard_buckets_alloc(&t, 128), 0);
	/* a burst of 20 passes, the 21st is refused */
	for (int i = 0; i < 21; i++)
		taken += guard_buckets_take(t, &a, now, 10, 20, &over) == GUARD_TAKEN;
	assert_int_equal(taken, 20);
	assert_int_equal(over, 1);
	assert_int_equal(guard_buckets_take(t, &a, now, 10, 20, &over), GUARD_EMPTY);
	assert_int_equal(over, 2);
	/* another source has its own bucket */
	assert_int_equal(guard_buckets_take(t, &b, now, 10, 20, &over), GUARD_TAKEN);
	/* 10/s: after 0.5 s five more */
	now += SEC / 2;
	taken = 0;
	for (int i = 0; i < 8; i++)
		taken += guard_buckets_take(t, &a, now, 10, 20, &over) == GUARD_TAKEN;
	assert_int_equal(taken, 5);
	assert_int_equal(over, 5); /* 2 before + 3 now, all within 10 s */
	/* refusals more than 10 s apart start counting again */
	now += 11 * SEC;
	for (int i = 0; i < 20; i++)
		guard_buckets_take(t, &a, now, 10, 20, &over);
	assert_int_equal(guard_buckets_take(t, &a, now, 10, 20, &over), GUARD_EMPTY);
	assert_int_equal(over, 1);
	/* the bucket never holds more than the burst */
	now += 3600 * SEC;
	taken = 0;
	for (int i = 0; i < 50; i++)
		taken += guard_buckets_take(t, &a, now, 10, 20, &over) == GUARD_TAKEN;
	assert_int_equal(taken, 20);
	assert_int_equal(guard_buckets_count(t), 2);
	sk_deref(t);
}

/* A full table forgets idle sources; with only active ones, a new source passes
 * untracked rather than being refused. */
static void test_bucket_table_full(void **state)
{
	struct guard_buckets *t;
	struct guard_ip a;
	char s[32];
	uint64_t now = 5 * SEC, over;

	(void)state;
	assert_int_equal(guard_buckets_alloc(&t, 64), 0); /* 32 sources at most */
	for (int i = 0; i < 32; i++) {
		snprintf(s, sizeof(s), "198.51.100.%d", i);
		a = ip(s);
		assert_int_equal(guard_buckets_take(t, &a, now, 1, 1, &over), GUARD_TAKEN);
	}
	assert_int_equal(guard_buckets_count(t), 32);
	a = ip("203.0.113.1");
	assert_int_equal(guard_buckets_take(t, &a, now, 1, 1, &over), GUARD_UNTRACKED);
	/* two seconds later every bucket is full again: all forgotten, a new one fits */
	now += 2 * SEC;
	assert_int_equal(guard_buckets_take(t, &a, now, 1, 1, &over), GUARD_TAKEN);
	assert_int_equal(guard_buckets_count(t), 1);
	assert_int_equal(guard_buckets_take(t, &a, now, 1, 1, &over), GUARD_EMPTY);
	sk_deref(t);
}

static void test_bans(void **state)
{
	struct guard_bans *b;
	struct guard_ban v[3] = {{ip("192.0.2.9"), 5000}, {ip("2001:db8::9"), 9000},
				 {ip("10.0.0.1"), 1000}};
	struct guard_ip x;

	(void)state;
	assert_int_equal(guard_bans_alloc(&b), 0);
	assert_false(guard_bans_hit(b, &v[0].ip, 0));
	assert_int_equal(guard_bans_set(b, v, 3), 0);
	assert_true(guard_bans_hit(b, &v[0].ip, 4999));
	assert_false(guard_bans_hit(b, &v[0].ip, 5000)); /* ended */
	assert_true(guard_bans_hit(b, &v[1].ip, 4999));
	assert_false(guard_bans_hit(b, (x = ip("192.0.2.10"), &x), 0));
	assert_int_equal(guard_bans_count(b, 1500), 2);
	/* add extends, never shortens */
	assert_int_equal(guard_bans_add(b, &v[0].ip, 7000), 0);
	assert_true(guard_bans_hit(b, &v[0].ip, 6000));
	assert_int_equal(guard_bans_add(b, &v[0].ip, 100), 0);
	assert_true(guard_bans_hit(b, &v[0].ip, 6000));
	assert_int_equal(guard_bans_add(b, (x = ip("203.0.113.5"), &x), 3000), 0);
	assert_true(guard_bans_hit(b, &x, 2000));
	/* a new set replaces everything */
	assert_int_equal(guard_bans_set(b, NULL, 0), 0);
	assert_false(guard_bans_hit(b, &x, 2000));
	assert_int_equal(guard_bans_count(b, 0), 0);
	sk_deref(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ip_forms),
		cmocka_unit_test(test_nets),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_bucket_rate_and_burst),
		cmocka_unit_test(test_bucket_table_full),
		cmocka_unit_test(test_bans),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
