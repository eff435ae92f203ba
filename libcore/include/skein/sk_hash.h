/* sk_hash: FNV-1a (Fowler, Noll, Vo; draft-eastlake-fnv), the one non-cryptographic
 * hash of the tree: the edge's tables (flows, transactions, HA1 cache, guard), the
 * loop-detection branch (RFC 3261 §16.6 item 8), the nonce issuer id, stable RLMI
 * instance ids. Inline: it runs per packet. For keys from the network, seed the
 * basis with a secret (the transaction table does) so collisions cannot be aimed at.
 * A value that other nodes compare (the nonce issuer id, RLMI instance ids) must keep
 * its function: change none of these without a rolling-upgrade plan. */
#ifndef SK_HASH_H
#define SK_HASH_H

#include <stddef.h>
#include <stdint.h>

#define SK_FNV64_BASIS 14695981039346656037ull
#define SK_FNV64_PRIME 1099511628211ull
#define SK_FNV32_BASIS 2166136261u
#define SK_FNV32_PRIME 16777619u

/* One byte (or a small value standing for one: a separator, an enum) into h. */
static inline uint64_t sk_fnv64_byte(uint64_t h, unsigned c)
{
	return (h ^ c) * SK_FNV64_PRIME;
}

static inline uint64_t sk_fnv64(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * SK_FNV64_PRIME;
	return h;
}

/* A NUL-terminated string (NULL: nothing) into h. */
static inline uint64_t sk_fnv64_str(uint64_t h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
		h = (h ^ *p) * SK_FNV64_PRIME;
	return h;
}

static inline uint32_t sk_fnv32_str(uint32_t h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
		h = (h ^ *p) * SK_FNV32_PRIME;
	return h;
}

/* Table index from a 64-bit hash: the high bits folded into the low ones that a
 * power-of-two mask keeps. */
static inline size_t sk_hash_fold(uint64_t h)
{
	return (size_t)(h ^ (h >> 29));
}

#endif
