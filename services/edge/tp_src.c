/* tp_src: connections open per source IP address (max_conns_per_source) — a chained
 * hash keyed by the address (IPv4 or IPv6, port ignored) with an entry per source that
 * has a connection, so that admission is O(1) with 10,000 flows. */
#include <string.h>
#include "skein/sk_hash.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "tp_int.h"

enum { SRC_BUCKETS_MIN = 64 };

struct tp_src {
	struct tp_src *next;
	uint8_t ip[16]; /* IPv4 as ::ffff:a.b.c.d, so that both families share one key */
	size_t n;
};

/* The address as 16 bytes: an IPv4-mapped IPv6 address is the same source as its
 * IPv4 form (a dual-stack listener sees either). */
static void key_of(const struct edge_addr *a, uint8_t ip[16])
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (a->u.sa.sa_family == AF_INET6) {
		memcpy(ip, &a->u.in6.sin6_addr, 16);
	} else {
		memcpy(ip, v4mapped, 12);
		memcpy(ip + 12, &a->u.in.sin_addr, 4);
	}
}

static size_t key_hash(const uint8_t ip[16])
{
	return sk_hash_fold(sk_fnv64(SK_FNV64_BASIS, ip, 16));
}

static struct tp_src **slot(const struct edge_tp *tp, const uint8_t ip[16])
{
	struct tp_src **pp = &tp->src[key_hash(ip) & (tp->nsrcb - 1)];

	while (*pp && memcmp((*pp)->ip, ip, 16))
		pp = &(*pp)->next;
	return pp;
}

/* Twice the buckets when there are as many sources as buckets; a failure only makes
 * the chains longer. */
static void grow(struct edge_tp *tp)
{
	size_t nb = tp->nsrcb ? tp->nsrcb * 2 : SRC_BUCKETS_MIN;
	struct tp_src **b = sk_zalloc_array(nb, sizeof(*b), NULL);

	if (!b)
		return;
	for (size_t i = 0; i < tp->nsrcb; i++) {
		struct tp_src *s, *next;

		for (s = tp->src[i]; s; s = next) {
			size_t k = key_hash(s->ip) & (nb - 1);

			next = s->next;
			s->next = b[k];
			b[k] = s;
		}
	}
	sk_deref(tp->src);
	tp->src = b;
	tp->nsrcb = nb;
}

size_t tp_src_count(const struct edge_tp *tp, const struct edge_addr *a)
{
	uint8_t ip[16];
	struct tp_src *s;

	if (!tp->nsrcb)
		return 0;
	key_of(a, ip);
	s = *slot(tp, ip);
	return s ? s->n : 0;
}

int tp_src_add(struct edge_tp *tp, const struct edge_addr *a)
{
	uint8_t ip[16];
	struct tp_src **pp, *s;

	if (tp->nsrc >= tp->nsrcb)
		grow(tp);
	if (!tp->nsrcb)
		return SK_ENOMEM;
	key_of(a, ip);
	pp = slot(tp, ip);
	if (!*pp) {
		s = sk_zalloc(sizeof(*s), NULL);
		if (!s)
			return SK_ENOMEM;
		memcpy(s->ip, ip, 16);
		*pp = s;
		tp->nsrc++;
	}
	(*pp)->n++;
	return 0;
}

void tp_src_del(struct edge_tp *tp, const struct edge_addr *a)
{
	uint8_t ip[16];
	struct tp_src **pp, *s;

	if (!tp->nsrcb)
		return;
	key_of(a, ip);
	pp = slot(tp, ip);
	s = *pp;
	if (!s || --s->n)
		return;
	*pp = s->next;
	sk_deref(s);
	tp->nsrc--;
}

void tp_src_free(struct edge_tp *tp)
{
	for (size_t i = 0; i < tp->nsrcb; i++)
		while (tp->src[i]) {
			struct tp_src *s = tp->src[i];

			tp->src[i] = s->next;
			sk_deref(s);
		}
	tp->src = sk_deref(tp->src);
	tp->nsrcb = tp->nsrc = 0;
}
