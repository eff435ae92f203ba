/* sk_buf: a growable text/byte buffer for building output (metrics, JSON, HTTP). */
#ifndef SK_BUF_H
#define SK_BUF_H

#include <stddef.h>
#include <stdarg.h>

struct sk_buf {
	char *data; /* always NUL-terminated when len > 0 or after any append */
	size_t len;
	size_t cap;
	int err;    /* first failure (SK_ENOMEM); appends after it are no-ops */
};

void sk_buf_init(struct sk_buf *b);
void sk_buf_reset(struct sk_buf *b);   /* len = 0, keeps the memory */
void sk_buf_release(struct sk_buf *b); /* frees the memory */
int sk_buf_append(struct sk_buf *b, const void *p, size_t n);
int sk_buf_puts(struct sk_buf *b, const char *s);
/* Appends a string literal (its length known at compile time; "" s refuses a
 * variable). */
#define SK_BUF_LIT(b, s) sk_buf_append((b), "" s, sizeof(s) - 1)
/* Makes room for n more bytes (and the NUL) in one allocation, so that a run of
 * appends of about known size does not grow the buffer step by step. */
int sk_buf_reserve(struct sk_buf *b, size_t n);
/* v in decimal, without printf (for hot paths that build protocol text). */
int sk_buf_putu(struct sk_buf *b, unsigned long long v);
/* The same into out, which has room for SK_U64_DEC_MAX digits; no NUL. Returns the
 * number of digits written. */
#define SK_U64_DEC_MAX 20
size_t sk_u64_dec(char *out, unsigned long long v);
int sk_buf_printf(struct sk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sk_buf_vprintf(struct sk_buf *b, const char *fmt, va_list ap);
/* A JSON string literal, quotes included, escaping per RFC 8259 section 7. */
int sk_buf_json_str(struct sk_buf *b, const char *s);

#endif
