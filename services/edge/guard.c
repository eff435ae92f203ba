/* guard: addresses, CIDR lists, word lists, per-source token buckets and the ban
 * array (guard.h). No I/O, no clock of its own: the caller passes the time. */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "skein/sk_hash.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "guard.h"

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool guard_ip_from_sa(struct guard_ip *ip, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		memcpy(ip->b, v4mapped, 12);
		memcpy(ip->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(ip->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return true;
	}
	return false;
}

bool guard_ip_parse(struct guard_ip *ip, const char *s)
{
	if (inet_pton(AF_INET, s, ip->b + 12) == 1) {
		memcpy(ip->b, v4mapped, 12);
		return true;
	}
	return inet_pton(AF_INET6, s, ip->b) == 1;
}

const char *guard_ip_str(const struct guard_ip *ip, char *buf, size_t size)
{
	const char *r = !memcmp(ip->b, v4mapped, 12)
				? inet_ntop(AF_INET, ip->b + 12, buf, (socklen_t)size)
				: inet_ntop(AF_INET6, ip->b, buf, (socklen_t)size);

	if (!r && size)
		buf[0] = '\0';
	return buf;
}

/* ---- CIDR lists ---- */

struct guard_net {
	struct guard_ip ip;
	unsigned bits; /* of the 128 */
};
struct guard_nets {
	size_t n;
	struct guard_net v[];
};

static bool prefix_eq(const struct guard_ip *a, const struct guard_ip *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a->b, b->b, whole))
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff00u >> rest);
	return (a->b[whole] & mask) == (b->b[whole] & mask);
}

/* Splits a comma-separated list in place; calls fn on each trimmed, non-empty item. */
static int each_item(char *s, int (*fn)(char *item, void *arg), void *arg)
{
	for (char *save = NULL, *it = strtok_r(s, ",", &save); it;
	     it = strtok_r(NULL, ",", &save)) {
		char *e = it + strlen(it);
		int err;

		while (isspace((unsigned char)*it))
			it++;
		while (e > it && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (*it && (err = fn(it, arg)))
			return err;
	}
	return 0;
}

static int count_item(char *item, void *arg)
{
	(void)item;
	++*(size_t *)arg;
	return 0;
}

struct nets_fill {
	struct guard_nets *n;
	const char **why;
};

static int net_item(char *item, void *arg)
{
	struct nets_fill *f = arg;
	static char bad[128];
	struct guard_net *g = &f->n->v[f->n->n];
	char *slash = strchr(item, '/');
	bool v4;
	long bits;

	if (slash)
		*slash = '\0';
	v4 = strchr(item, ':') == NULL;
	if (!guard_ip_parse(&g->ip, item))
		goto bad;
	bits = v4 ? 32 : 128;
	if (slash) {
		char *end;

		bits = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end || bits < 0 || bits > (v4 ? 32 : 128))
			goto bad;
	}
	g->bits = (unsigned)bits + (v4 ? 96 : 0);
	f->n->n++;
	return 0;
bad:
	if (slash)
		*slash = '/';
	snprintf(bad, sizeof(bad), "\"%s\" is not an address or address/prefix", item);
	*f->why = bad;
	return SK_EINVAL;
}

int guard_nets_parse(struct guard_nets **out, const char *list, const char **why)
{
	size_t n = 0;
	char *a = strdup(list ? list : ""), *b = strdup(list ? list : "");
	struct nets_fill f = {NULL, why};
	int err = SK_ENOMEM;

	*out = NULL;
	if (!a || !b)
		goto out;
	each_item(a, count_item, &n);
	err = 0;
	if (!n)
		goto out;
	err = SK_ENOMEM;
	f.n = sk_zalloc(sizeof(*f.n) + n * sizeof(f.n->v[0]), NULL);
	if (!f.n)
		goto out;
	err = each_item(b, net_item, &f);
	if (err)
		f.n = sk_deref(f.n);
	*out = f.n;
out:
	free(a);
	free(b);
	return err;
}

bool guard_nets_match(const struct guard_nets *n, const struct guard_ip *ip)
{
	for (size_t i = 0; n && i < n->n; i++)
		if (prefix_eq(&n->v[i].ip, ip, n->v[i].bits))
			return true;
	return false;
}

/* ---- word lists ---- */

struct guard_words {
	size_t n;
	char *text; /* the words, NUL-separated */
	const char **v;
};

static void words_destroy(void *p)
{
	struct guard_words *w = p;

	free(w->text);
	free(w->v);
}

static int word_item(char *item, void *arg)
{
	struct guard_words *w = arg;

	w->v[w->n++] = item;
	return 0;
}

int guard_words_parse(struct guard_words **out, const char *list)
{
	struct guard_words *w;
	size_t n = 0;
	char *tmp = strdup(list ? list : "");

	*out = NULL;
	if (!tmp)
		return SK_ENOMEM;
	each_item(tmp, count_item, &n);
	free(tmp);
	if (!n)
		return 0;
	w = sk_zalloc(sizeof(*w), words_destroy);
	if (!w || !(w->text = strdup(list)) || !(w->v = calloc(n, sizeof(*w->v)))) {
		sk_deref(w);
		return SK_ENOMEM;
	}
	each_item(w->text, word_item, w);
	*out = w;
	return 0;
}

const char *guard_words_match(const struct guard_words *w, const char *s)
{
	for (size_t i = 0; w && s && i < w->n; i++)
		if (strcasestr(s, w->v[i]))
			return w->v[i];
	return NULL;
}

/* ---- token buckets ---- */

#define OVER_RESET_NS (10ull * 1000000000ull)

struct bucket {
	struct guard_ip ip;
	bool used;
	double tokens;
	uint64_t at_ns;	  /* when tokens was computed */
	uint64_t over;	  /* refusals in a row */
	uint64_t over_ns; /* the last refusal */
};
struct guard_buckets {
	size_t cap, n; /* cap: a power of two */
	struct bucket *v;
};

static void buckets_destroy(void *p)
{
	free(((struct guard_buckets *)p)->v);
}

int guard_buckets_alloc(struct guard_buckets **out, size_t capacity)
{
	struct guard_buckets *t = sk_zalloc(sizeof(*t), buckets_destroy);
	size_t cap = 64;

	while (cap < capacity)
		cap <<= 1;
	if (!t || !(t->v = calloc(cap, sizeof(*t->v)))) {
		sk_deref(t);
		return SK_ENOMEM;
	}
	t->cap = cap;
	*out = t;
	return 0;
}

static size_t ip_hash(const struct guard_ip *ip)
{
	/* FNV-1a: sources are not chosen by an attacker to collide beyond what linear
	 * probing in a half-empty table absorbs; the table is bounded anyway. */
	return sk_hash_fold(sk_fnv64(SK_FNV64_BASIS, ip->b, 16));
}

static void refill(struct bucket *b, uint64_t now_ns, double rate, double burst)
{
	if (now_ns > b->at_ns) {
		b->tokens += (double)(now_ns - b->at_ns) * rate / 1e9;
		b->at_ns = now_ns;
	}
	if (b->tokens > burst)
		b->tokens = burst;
}

/* Forgets the sources whose bucket is full again: they are idle. */
static void buckets_sweep(struct guard_buckets *t, uint64_t now_ns, double rate, double burst)
{
	struct bucket *old = t->v, *nv = calloc(t->cap, sizeof(*nv));
	size_t cap = t->cap;

	if (!nv)
		return;
	t->v = nv;
	t->n = 0;
	for (size_t i = 0; i < cap; i++) {
		struct bucket *b = &old[i];

		if (!b->used)
			continue;
		refill(b, now_ns, rate, burst);
		if (b->tokens >= burst && (!b->over || now_ns - b->over_ns > OVER_RESET_NS))
			continue;
		size_t j = ip_hash(&b->ip) & (cap - 1);
		while (nv[j].used)
			j = (j + 1) & (cap - 1);
		nv[j] = *b;
		t->n++;
	}
	free(old);
}

static struct bucket *bucket_get(struct guard_buckets *t, const struct guard_ip *ip,
				 uint64_t now_ns, double rate, double burst)
{
	size_t mask = t->cap - 1, i;

	for (int pass = 0; pass < 2; pass++) {
		for (i = ip_hash(ip) & mask; t->v[i].used; i = (i + 1) & mask)
			if (!memcmp(t->v[i].ip.b, ip->b, 16))
				return &t->v[i];
		if (t->n < t->cap / 2) {
			struct bucket *b = &t->v[i];

			memset(b, 0, sizeof(*b));
			b->used = true;
			b->ip = *ip;
			b->tokens = burst;
			b->at_ns = now_ns;
			t->n++;
			return b;
		}
		if (pass == 0)
			buckets_sweep(t, now_ns, rate, burst);
	}
	return NULL;
}

enum guard_take guard_buckets_take(struct guard_buckets *t, const struct guard_ip *ip,
				   uint64_t now_ns, double rate, double burst, uint64_t *over)
{
	struct bucket *b = bucket_get(t, ip, now_ns, rate, burst);

	*over = 0;
	if (!b)
		return GUARD_UNTRACKED;
	refill(b, now_ns, rate, burst);
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return GUARD_TAKEN;
	}
	if (b->over && now_ns - b->over_ns > OVER_RESET_NS)
		b->over = 0;
	b->over++;
	b->over_ns = now_ns;
	*over = b->over;
	return GUARD_EMPTY;
}

size_t guard_buckets_count(const struct guard_buckets *t)
{
	return t->n;
}

/* ---- bans ---- */

struct guard_bans {
	size_t n, cap;
	struct guard_ban *v;
};

static void bans_destroy(void *p)
{
	free(((struct guard_bans *)p)->v);
}

int guard_bans_alloc(struct guard_bans **out)
{
	*out = sk_zalloc(sizeof(**out), bans_destroy);
	return *out ? 0 : SK_ENOMEM;
}

static int ban_cmp(const void *a, const void *b)
{
	return memcmp(((const struct guard_ban *)a)->ip.b, ((const struct guard_ban *)b)->ip.b,
		      16);
}

static int bans_reserve(struct guard_bans *b, size_t n)
{
	if (n <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 16;
	while (cap < n)
		cap *= 2;
	struct guard_ban *v = realloc(b->v, cap * sizeof(*v));
	if (!v)
		return SK_ENOMEM;
	b->v = v;
	b->cap = cap;
	return 0;
}

int guard_bans_set(struct guard_bans *b, const struct guard_ban *v, size_t n)
{
	if (bans_reserve(b, n))
		return SK_ENOMEM;
	if (n)
		memcpy(b->v, v, n * sizeof(*v));
	b->n = n;
	if (n > 1)
		qsort(b->v, n, sizeof(*b->v), ban_cmp);
	return 0;
}

static struct guard_ban *ban_find(const struct guard_bans *b, const struct guard_ip *ip)
{
	struct guard_ban key = {.ip = *ip};

	return b->n ? bsearch(&key, b->v, b->n, sizeof(*b->v), ban_cmp) : NULL;
}

int guard_bans_add(struct guard_bans *b, const struct guard_ip *ip, uint64_t until_ms)
{
	struct guard_ban *x = ban_find(b, ip);

	if (x) {
		if (x->until_ms < until_ms)
			x->until_ms = until_ms;
		return 0;
	}
	if (bans_reserve(b, b->n + 1))
		return SK_ENOMEM;
	b->v[b->n].ip = *ip;
	b->v[b->n].until_ms = until_ms;
	b->n++;
	qsort(b->v, b->n, sizeof(*b->v), ban_cmp);
	return 0;
}

bool guard_bans_hit(const struct guard_bans *b, const struct guard_ip *ip, uint64_t now_ms)
{
	const struct guard_ban *x = ban_find(b, ip);

	return x && x->until_ms > now_ms;
}

size_t guard_bans_count(const struct guard_bans *b, uint64_t now_ms)
{
	size_t n = 0;

	for (size_t i = 0; i < b->n; i++)
		n += b->v[i].until_ms > now_ms;
	return n;
}
