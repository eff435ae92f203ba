/* Growable buffers; the first allocation failure sticks in b->err. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_buf.h"
#include "skein/sk_err.h"

void sk_buf_init(struct sk_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void sk_buf_reset(struct sk_buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->data)
		b->data[0] = '\0';
}

void sk_buf_release(struct sk_buf *b)
{
	free(b->data);
	sk_buf_init(b);
}

static int grow(struct sk_buf *b, size_t need)
{
	size_t cap;
	char *d;

	if (b->err)
		return b->err;
	if (b->len + need + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + need + 1)
		cap *= 2;
	d = realloc(b->data, cap);
	if (!d)
		return b->err = SK_ENOMEM;
	b->data = d;
	b->cap = cap;
	return 0;
}

int sk_buf_append(struct sk_buf *b, const void *p, size_t n)
{
	int err = grow(b, n);

	if (err)
		return err;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int sk_buf_puts(struct sk_buf *b, const char *s)
{
	return sk_buf_append(b, s, strlen(s));
}

int sk_buf_reserve(struct sk_buf *b, size_t n)
{
	int err = grow(b, n);

	if (!err && b->data)
		b->data[b->len] = '\0';
	return err;
}

/* Decimal digits written backwards from the end of a 20-byte scratch buffer (the
 * longest uint64_t). */
size_t sk_u64_dec(char *out, unsigned long long v)
{
	char d[SK_U64_DEC_MAX], *p = d + sizeof(d);
	size_t n;

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	n = (size_t)(d + sizeof(d) - p);
	memcpy(out, p, n);
	return n;
}

int sk_buf_putu(struct sk_buf *b, unsigned long long v)
{
	char d[SK_U64_DEC_MAX];
	size_t n = sk_u64_dec(d, v);

	return sk_buf_append(b, d, n);
}

/* Prints straight into the free space first: measuring with vsnprintf(NULL, 0) and then
 * printing ran the whole format twice for every call. Only a print that did not fit is
 * redone after growing. */
int sk_buf_vprintf(struct sk_buf *b, const char *fmt, va_list ap)
{
	size_t room = b->cap - b->len;
	va_list aq;
	int n, err;

	if (b->err)
		return b->err;
	va_copy(aq, ap);
	n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, aq);
	va_end(aq);
	if (n >= 0 && (size_t)n < room) {
		b->len += (size_t)n;
		return 0;
	}
	if (room)
		b->data[b->len] = '\0'; /* a partial print is not part of the buffer */
	if (n < 0)
		return SK_EINVAL;
	err = grow(b, (size_t)n);
	if (err)
		return err;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int sk_buf_printf(struct sk_buf *b, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = sk_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return err;
}

int sk_buf_json_str(struct sk_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	sk_buf_append(b, "\"", 1);
	for (; *p; p++) {
		switch (*p) {
		case '"': sk_buf_append(b, "\\\"", 2); break;
		case '\\': sk_buf_append(b, "\\\\", 2); break;
		case '\n': sk_buf_append(b, "\\n", 2); break;
		case '\r': sk_buf_append(b, "\\r", 2); break;
		case '\t': sk_buf_append(b, "\\t", 2); break;
		default:
			if (*p < 0x20)
				sk_buf_printf(b, "\\u%04x", *p);
			else
				sk_buf_append(b, p, 1);
		}
	}
	return sk_buf_append(b, "\"", 1);
}
