/* core_ha1: the edge's HA1 cache (issue 6). A REGISTER is verified with the HA1 kept
 * here and the registration script checks, atomically with the binding write, that
 * it is still the stored one; so an entry may be stale without harm, and the cache
 * needs no invalidation: a password change or a deleted user is seen by the next
 * REGISTER (STALE from the script), a request of another method reads Redis anyway
 * and refreshes the entry.
 *
 * Layout: 4-way set-associative, at most `entries` slots in one array; the set is
 * chosen by a 64-bit FNV-1a hash of "<aor>\0<alg>", and a full set replaces its least
 * recently used slot — O(1), no list to maintain, no rehash. */
#include <stdlib.h>
#include <string.h>
#include "skein/sk_hash.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "core.h"

#define WAYS	4
#define HEX_MAX 64 /* SHA-256 in hex */

struct slot {
	uint64_t hash; /* 0: empty */
	uint64_t used; /* clock of the last get or put */
	char *aor;     /* malloc'd */
	uint8_t alg;
	char ha1[HEX_MAX + 1];
};

struct edge_ha1_cache {
	struct slot *slots;
	size_t nsets, ways, count;
	uint64_t clock;
};

static void cache_destroy(void *p)
{
	struct edge_ha1_cache *c = p;

	for (size_t i = 0; c->slots && i < c->nsets * c->ways; i++)
		free(c->slots[i].aor);
	free(c->slots);
}

int edge_ha1_alloc(struct edge_ha1_cache **cp, size_t entries)
{
	struct edge_ha1_cache *c;

	*cp = NULL;
	if (!entries)
		return 0;
	c = sk_zalloc(sizeof(*c), cache_destroy);
	if (!c)
		return SK_ENOMEM;
	c->ways = entries < WAYS ? entries : WAYS;
	c->nsets = entries / c->ways;
	c->slots = calloc(c->nsets * c->ways, sizeof(*c->slots));
	if (!c->slots) {
		sk_deref(c);
		return SK_ENOMEM;
	}
	*cp = c;
	return 0;
}

static uint64_t hash(const char *aor, enum edge_digest_alg alg)
{
	uint64_t h = sk_fnv64_str(SK_FNV64_BASIS, aor);

	h = sk_fnv64_byte(h, 0); /* the '\0' between the two */
	h = sk_fnv64_byte(h, (unsigned)alg);
	return h ? h : 1;
}

static struct slot *set_of(struct edge_ha1_cache *c, uint64_t h)
{
	return &c->slots[(h % c->nsets) * c->ways];
}

static struct slot *find(struct edge_ha1_cache *c, const char *aor, enum edge_digest_alg alg,
			 uint64_t h)
{
	struct slot *s = set_of(c, h);

	for (size_t i = 0; i < c->ways; i++)
		if (s[i].hash == h && s[i].alg == (uint8_t)alg && !strcmp(s[i].aor, aor))
			return &s[i];
	return NULL;
}

bool edge_ha1_get(struct edge_ha1_cache *c, const char *aor, enum edge_digest_alg alg,
		  char *out, size_t size)
{
	struct slot *s;

	if (!c || !aor || (s = find(c, aor, alg, hash(aor, alg))) == NULL)
		return false;
	if (strlen(s->ha1) >= size)
		return false;
	s->used = ++c->clock;
	memcpy(out, s->ha1, strlen(s->ha1) + 1);
	return true;
}

static void slot_clear(struct edge_ha1_cache *c, struct slot *s)
{
	free(s->aor);
	memset(s, 0, sizeof(*s));
	c->count--;
}

void edge_ha1_put(struct edge_ha1_cache *c, const char *aor, enum edge_digest_alg alg,
		  const char *ha1)
{
	uint64_t h;
	struct slot *s, *set;
	char *dup;

	if (!c || !aor)
		return;
	h = hash(aor, alg);
	s = find(c, aor, alg, h);
	if (!ha1 || !*ha1 || strlen(ha1) > HEX_MAX) {
		if (s)
			slot_clear(c, s);
		return;
	}
	if (!s) {
		if (!(dup = strdup(aor)))
			return; /* a cache: not keeping it is fine */
		set = set_of(c, h);
		s = &set[0];
		for (size_t i = 0; i < c->ways; i++) {
			if (!set[i].hash) {
				s = &set[i];
				break;
			}
			if (set[i].used < s->used)
				s = &set[i];
		}
		if (s->hash)
			slot_clear(c, s);
		s->hash = h;
		s->aor = dup;
		s->alg = (uint8_t)alg;
		c->count++;
	}
	memcpy(s->ha1, ha1, strlen(ha1) + 1);
	s->used = ++c->clock;
}

size_t edge_ha1_count(const struct edge_ha1_cache *c)
{
	return c ? c->count : 0;
}
