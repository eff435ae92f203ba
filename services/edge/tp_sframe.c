/* tp_sframe: SIP message framing on a byte stream (RFC 3261 §18.3) and CRLF keep-alives
 * (RFC 5626 §4.4.1) as pure functions (tp_frame.h); tp_stream.c drives them over a
 * flow's buffer, tests/fuzz/fuzz_stream.c over fuzzed bytes. */
#include <string.h>
#include <strings.h>
#include "tp_frame.h"

/* CRLF keep-alives (RFC 5626 §4.4.1): a double CRLF is a ping, answered with one
 * CRLF; a lone CRLF (or stray CR/LF) between messages is skipped. */
static enum tp_sframe_what crlf(const char *p, size_t n, size_t *k)
{
	if (n >= 4 && !memcmp(p, "\r\n\r\n", 4)) {
		*k = 4;
		return TP_SF_PING;
	}
	if (n < 4 && !memcmp(p, "\r\n\r\n", n))
		return TP_SF_MORE; /* a ping may still be arriving */
	*k = n >= 2 && p[0] == '\r' && p[1] == '\n' ? 2 : 1;
	return TP_SF_SKIP;
}

/* The end of the header section in p[from, n) ("\n\n" or "\n\r\n"): the offset just
 * past it, or 0. */
static size_t head_end(const char *p, size_t from, size_t n)
{
	const char *q = p + from, *e = p + n;

	while (q < e && (q = memchr(q, '\n', (size_t)(e - q)))) {
		if (q + 1 < e && q[1] == '\n')
			return (size_t)(q + 2 - p);
		if (q + 2 < e && q[1] == '\r' && q[2] == '\n')
			return (size_t)(q + 3 - p);
		q++;
	}
	return 0;
}

/* The smallest Content-Length (or compact "l", RFC 3261 §7.3.3) in the header
 * section p[0, h); 0 when there is none. Only an estimate of when the message is
 * complete: edge_sip_check() has the last word on the framing. */
static size_t head_length(const char *p, size_t h)
{
	size_t best = SIZE_MAX;

	for (const char *l = p, *e = p + h; l < e;) {
		const char *nl = memchr(l, '\n', (size_t)(e - l)), *q = l;
		size_t v = 0;

		if (!nl)
			break;
		if ((size_t)(nl - l) > 14 && !strncasecmp(l, "content-length", 14))
			q = l + 14;
		else if ((*l == 'l' || *l == 'L') && (l[1] == ':' || l[1] == ' ' || l[1] == '\t'))
			q = l + 1;
		if (q != l) {
			while (q < nl && (*q == ' ' || *q == '\t'))
				q++;
			if (q < nl && *q++ == ':') {
				while (q < nl && (*q == ' ' || *q == '\t'))
					q++;
				while (q < nl && *q >= '0' && *q <= '9' && v < SIZE_MAX / 16)
					v = v * 10 + (size_t)(*q++ - '0');
				if (v < best)
					best = v;
			}
		}
		l = nl + 1;
	}
	return best == SIZE_MAX ? 0 : best;
}

/* Why: edge_sip_check() parses the whole buffer again on every call, so a peer that
 * trickles a message a byte at a time would cost O(n²). It is called once the header
 * section and the body it announces are buffered, or max_msg_size bytes are (513). */
static bool ready(struct tp_sframe *s, const char *p, size_t n, size_t max)
{
	size_t h;

	if (n >= max)
		return true;
	if (s->need)
		return n >= s->need;
	h = head_end(p, s->scan, n);
	if (!h) {
		s->scan = n > 2 ? n - 2 : 0;
		return false;
	}
	s->need = h + head_length(p, h);
	/* Above max_msg_size (or overflowing): the check answers 513 from the head. */
	return n >= s->need || s->need < h || s->need > max;
}

enum tp_sframe_what tp_sframe_next(struct tp_sframe *s, const char *p, size_t n, size_t max,
				   size_t *k)
{
	*k = 0;
	if (!n)
		return TP_SF_MORE;
	/* A message never starts with CR or LF: these are keep-alives or strays. */
	if (*p == '\r' || *p == '\n')
		return crlf(p, n, k);
	return ready(s, p, n, max) ? TP_SF_CHECK : TP_SF_MORE;
}

void tp_sframe_short(struct tp_sframe *s, size_t n)
{
	s->need = n + 1;
}

void tp_sframe_done(struct tp_sframe *s)
{
	s->scan = s->need = 0;
}
