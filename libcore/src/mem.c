/* Reference-counted allocations: one header in front of every object. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <assert.h>
#include "skein/sk_mem.h"

#define SK_MEM_MAGIC 0x5eb1c0deu

struct sk_mem {
	uint32_t magic;
	uint32_t nrefs;
	sk_mem_destroy_cb *dh;
	size_t size;
} __attribute__((aligned(16)));

static size_t live;
static unsigned long fail_after;

static struct sk_mem *hdr(const void *data)
{
	struct sk_mem *m = (struct sk_mem *)((const char *)data - sizeof(struct sk_mem));
	assert(m->magic == SK_MEM_MAGIC);
	return m;
}

static int should_fail(void)
{
	if (!fail_after)
		return 0;
	return --fail_after == 0;
}

static void *mem_new(size_t size, sk_mem_destroy_cb *dh, bool zero)
{
	struct sk_mem *m;

	if (size > SIZE_MAX - sizeof(*m) || should_fail())
		return NULL;
	m = zero ? calloc(1, sizeof(*m) + size) : malloc(sizeof(*m) + size);
	if (!m)
		return NULL;
	m->magic = SK_MEM_MAGIC;
	m->nrefs = 1;
	m->dh = dh;
	m->size = size;
	live++;
	return m + 1;
}

void *sk_zalloc(size_t size, sk_mem_destroy_cb *dh)
{
	return mem_new(size, dh, true);
}

void *sk_alloc(size_t size, sk_mem_destroy_cb *dh)
{
	return mem_new(size, dh, false);
}

void *sk_zalloc_array(size_t n, size_t size, sk_mem_destroy_cb *dh)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	return sk_zalloc(n * size, dh);
}

void *sk_realloc(void *data, size_t size)
{
	struct sk_mem *m, *n;

	if (!data)
		return sk_zalloc(size, NULL);
	m = hdr(data);
	if (m->nrefs != 1 || size > SIZE_MAX - sizeof(*m) || should_fail())
		return NULL;
	n = realloc(m, sizeof(*m) + size);
	if (!n)
		return NULL;
	if (size > n->size)
		memset((char *)(n + 1) + n->size, 0, size - n->size);
	n->size = size;
	return n + 1;
}

void *sk_ref(void *data)
{
	if (data)
		hdr(data)->nrefs++;
	return data;
}

void *sk_deref(void *data)
{
	struct sk_mem *m;

	if (!data)
		return NULL;
	m = hdr(data);
	assert(m->nrefs > 0);
	if (--m->nrefs > 0)
		return NULL;
	if (m->dh)
		m->dh(data);
	/* A destructor may not resurrect the object. */
	assert(m->nrefs == 0);
	m->magic = 0;
	free(m);
	live--;
	return NULL;
}

uint32_t sk_nrefs(const void *data)
{
	return data ? hdr(data)->nrefs : 0;
}

char *sk_strndup(const char *s, size_t n)
{
	char *d;

	if (!s)
		return NULL;
	d = sk_zalloc(n + 1, NULL);
	if (d)
		memcpy(d, s, n);
	return d;
}

char *sk_strdup(const char *s)
{
	return s ? sk_strndup(s, strlen(s)) : NULL;
}

char *sk_strdupf(const char *fmt, ...)
{
	va_list ap;
	char *d;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	d = sk_zalloc((size_t)n + 1, NULL);
	if (!d)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(d, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return d;
}

size_t sk_mem_live(void)
{
	return live;
}

void sk_mem_fail_after(unsigned long n)
{
	fail_after = n;
}
