/* sk_mem: reference-counted memory with destructors (after libre's mem_*). */
#ifndef SK_MEM_H
#define SK_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Called once, when the last reference goes, before the memory is freed.
 * It must release what the object owns and nothing else. */
typedef void(sk_mem_destroy_cb)(void *data);

/* A new zeroed object holding one reference, or NULL when out of memory. */
void *sk_zalloc(size_t size, sk_mem_destroy_cb *dh);
/* The same without zeroing: for objects of a few KB of fixed buffers, built on every
 * request, whose constructor sets what it reads (callgrind: zeroing was ~4 k
 * instructions per 4 KB object with jemalloc). */
void *sk_alloc(size_t size, sk_mem_destroy_cb *dh);
/* A new zeroed array; NULL on overflow or when out of memory. */
void *sk_zalloc_array(size_t n, size_t size, sk_mem_destroy_cb *dh);
/* Resize an object that holds exactly one reference; NULL leaves it as it was. */
void *sk_realloc(void *data, size_t size);
/* Take a reference (NULL is passed through). */
void *sk_ref(void *data);
/* Drop a reference; always returns NULL so callers write `p = sk_deref(p)`. */
void *sk_deref(void *data);
uint32_t sk_nrefs(const void *data);

/* Refcounted copies of C strings. */
char *sk_strdup(const char *s);
char *sk_strndup(const char *s, size_t n);
/* printf into a new refcounted string. */
char *sk_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Number of live objects in this process: tests compare it before and after
 * each case to catch leaks, as libre's test harness does. */
size_t sk_mem_live(void);
/* Fault injection for tests: the Nth allocation from now fails (0 disables). */
void sk_mem_fail_after(unsigned long n);

#endif
