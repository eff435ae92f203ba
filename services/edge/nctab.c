/* nctab: nonce-counts by slot (nctab.h). */
#include <stdlib.h>
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "nctab.h"

/* The index the slot was last issued for, and the last count seen (0: none). 8 bytes:
 * a million slots are 8 MB. */
struct slot {
	uint32_t index, nc;
};

struct edge_nctab {
	struct slot *slots;
	uint32_t mask, next, epoch;
};

static void nctab_destroy(void *p)
{
	free(((struct edge_nctab *)p)->slots);
}

int edge_nctab_alloc(struct edge_nctab **tp, size_t slots, uint32_t epoch)
{
	struct edge_nctab *t;
	size_t n = 2;

	*tp = NULL;
	if (!slots || slots > (size_t)1 << 30)
		return SK_EINVAL;
	while (n < slots)
		n <<= 1;
	t = sk_zalloc(sizeof(*t), nctab_destroy);
	if (!t)
		return SK_ENOMEM;
	/* calloc: index 0 in every slot, which no nonce carries */
	t->slots = calloc(n, sizeof(*t->slots));
	if (!t->slots) {
		sk_deref(t);
		return SK_ENOMEM;
	}
	t->mask = (uint32_t)(n - 1);
	t->next = 1;
	t->epoch = epoch;
	*tp = t;
	return 0;
}

uint32_t edge_nctab_epoch(const struct edge_nctab *t)
{
	return t->epoch;
}

size_t edge_nctab_slots(const struct edge_nctab *t)
{
	return (size_t)t->mask + 1;
}

uint32_t edge_nctab_issue(struct edge_nctab *t)
{
	uint32_t i = t->next++;
	struct slot *s;

	if (!t->next) /* after 2^32 - 1 nonces: index 0 stays "never issued" */
		t->next = 1;
	s = &t->slots[i & t->mask];
	s->index = i;
	s->nc = 0;
	return i;
}

enum edge_nc edge_nctab_use(struct edge_nctab *t, uint32_t epoch, uint32_t index, uint32_t nc)
{
	struct slot *s = &t->slots[index & t->mask];

	if (epoch != t->epoch || !index || s->index != index)
		return EDGE_NC_FORGOTTEN;
	if (nc <= s->nc)
		return EDGE_NC_REPLAY;
	s->nc = nc;
	return EDGE_NC_FRESH;
}

const char *edge_nc_name(enum edge_nc v)
{
	switch (v) {
	case EDGE_NC_FRESH: return "fresh";
	case EDGE_NC_REPLAY: return "replay";
	default: return "forgotten";
	}
}
