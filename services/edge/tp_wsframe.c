/* tp_wsframe: the WebSocket frame decoder (RFC 6455 §5) as pure functions
 * (tp_frame.h) — frame headers, unmasking, fragment reassembly, control frames, close
 * codes and UTF-8 — driven by tp_ws.c on a flow and by tests/fuzz/fuzz_ws.c. */
#include <string.h>
#include "skein/sk_mem.h"
#include "tp_frame.h"

enum { MSG_MIN = 4096 };

/* Why a full validator and not a skip: RFC 6455 §8.1 makes an endpoint fail a text
 * message that is not UTF-8 (1007), and RFC 7118 §4.2 sends such SIP messages as
 * binary. Checked once per reassembled message, not per fragment. */
bool tp_utf8_valid(const void *data, size_t n)
{
	const unsigned char *s = data, *e;

	if (!n)
		return true; /* data may be NULL then (an empty message) */
	for (e = s + n; s < e;) {
		unsigned c = *s;
		size_t k;

		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			k = 1;
		else if (c >= 0xE0 && c <= 0xEF)
			k = 2;
		else if (c >= 0xF0 && c <= 0xF4)
			k = 3;
		else
			return false; /* continuation byte, overlong C0/C1, above F4 */
		if ((size_t)(e - s) <= k)
			return false;
		for (size_t i = 1; i <= k; i++)
			if ((s[i] & 0xC0) != 0x80)
				return false;
		/* Overlongs, surrogates, above U+10FFFF (RFC 3629 §4). */
		if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) ||
		    (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
			return false;
		s += k + 1;
	}
	return true;
}

bool tp_ws_close_code_ok(unsigned c)
{
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

static enum tp_wsdec_what fail(struct tp_wsdec_ev *ev, int code, const char *why)
{
	ev->code = code;
	ev->why = why;
	return TP_WSD_FAIL;
}

/* A frame header at p[0, n) (§5.2): its length once whole and valid, 0 while more is
 * needed; a protocol error sets ev (code, why) as soon as it can be told. */
static size_t read_head(struct tp_wsdec *d, const uint8_t *p, size_t n, struct tp_wsdec_ev *ev)
{
	uint8_t op = p[0] & 0x0F;
	bool fin = p[0] & 0x80, ctl = op & 0x08;
	const char *why = NULL;
	uint64_t len;
	size_t h;

	if (p[0] & 0x70)
		why = "reserved bits set"; /* no extension was negotiated */
	else if (op > TP_WS_OP_BINARY && op != TP_WS_OP_CLOSE && op != TP_WS_OP_PING &&
		 op != TP_WS_OP_PONG)
		why = "unknown opcode";
	else if (ctl && !fin)
		why = "fragmented control frame"; /* §5.5 */
	else if (op == TP_WS_OP_CONT && !d->mop)
		why = "continuation without a message";
	else if ((op == TP_WS_OP_TEXT || op == TP_WS_OP_BINARY) && d->mop)
		why = "new message inside a fragmented one"; /* §5.4 */
	else if (n >= 2 && !(p[1] & 0x80))
		why = "unmasked client frame"; /* §5.1 */
	else if (n >= 2 && ctl && (p[1] & 0x7F) > 125)
		why = "control frame over 125 bytes";
	if (why) {
		fail(ev, TP_WS_CLOSE_PROTOCOL, why);
		return 0;
	}
	if (n < 2)
		return 0;
	len = p[1] & 0x7F;
	h = len == 126 ? 8 : len == 127 ? 14 : 6;
	if (n < h)
		return 0;
	if (len == 126) {
		len = (uint64_t)p[2] << 8 | p[3];
	} else if (len == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
	}
	/* §5.2: the most significant bit is 0, and the shortest form is used. */
	if ((p[1] & 0x7F) == 127 && (len >> 63 || len <= 0xFFFF))
		why = "bad 64-bit length";
	else if ((p[1] & 0x7F) == 126 && len < 126)
		why = "bad 16-bit length";
	if (why) {
		fail(ev, TP_WS_CLOSE_PROTOCOL, why);
		return 0;
	}
	if (!ctl && len > d->max_frame) {
		fail(ev, TP_WS_CLOSE_TOO_BIG, "frame over ws_max_frame");
		return 0;
	}
	if (!ctl && len > d->max_msg - d->mlen) { /* d->mlen <= max_msg always */
		fail(ev, TP_WS_CLOSE_TOO_BIG, "message over max_msg_size");
		return 0;
	}
	d->in_frame = true;
	d->fin = fin;
	d->op = op;
	d->flen = len;
	d->got = 0;
	memcpy(d->mask, p + h - 4, 4);
	if (op == TP_WS_OP_TEXT || op == TP_WS_OP_BINARY)
		d->mop = op;
	return h;
}

/* Room for k more message bytes: grows as the bytes come, not as the header
 * announces, so a peer does not get max_msg_size of memory for a few bytes. */
static bool msg_room(struct tp_wsdec *d, size_t k)
{
	size_t cap;
	char *nb;

	if (d->mlen + k <= d->mcap)
		return true;
	cap = d->mcap ? d->mcap : MSG_MIN;
	while (cap < d->mlen + k)
		cap *= 2;
	if (cap > d->max_msg)
		cap = d->max_msg;
	nb = d->msg ? sk_realloc(d->msg, cap) : sk_zalloc(cap, NULL);
	if (!nb)
		return false;
	d->msg = nb;
	d->mcap = cap;
	return true;
}

/* Payload bytes p[0, n) of the current frame, unmasked into the message or the
 * control buffer (§5.3). */
static void payload(struct tp_wsdec *d, const uint8_t *p, size_t n)
{
	uint8_t *dst = (d->op & 0x08) ? d->ctl + d->got : (uint8_t *)d->msg + d->mlen;

	for (size_t i = 0; i < n; i++)
		dst[i] = p[i] ^ d->mask[(d->got + i) & 3];
	d->got += n;
	if (!(d->op & 0x08))
		d->mlen += n;
}

/* A whole control frame (§5.5). */
static enum tp_wsdec_what control(struct tp_wsdec *d, struct tp_wsdec_ev *ev)
{
	size_t n = (size_t)d->flen;
	unsigned code;

	ev->data = (const char *)d->ctl;
	ev->len = n;
	if (d->op == TP_WS_OP_PING)
		return TP_WSD_PING;
	if (d->op == TP_WS_OP_PONG)
		return TP_WSD_PONG;
	/* Close (§5.5.1): a status code of 2 bytes if any, then a UTF-8 reason. */
	if (n == 1)
		return fail(ev, TP_WS_CLOSE_PROTOCOL, "close frame of 1 byte");
	code = n ? (unsigned)d->ctl[0] << 8 | d->ctl[1] : 0;
	if (n && !tp_ws_close_code_ok(code))
		return fail(ev, TP_WS_CLOSE_PROTOCOL, "bad close code");
	if (n > 2 && !tp_utf8_valid(d->ctl + 2, n - 2))
		return fail(ev, TP_WS_CLOSE_BAD_DATA, "close reason not UTF-8");
	ev->code = (int)code;
	return TP_WSD_CLOSE;
}

enum tp_wsdec_what tp_wsdec_run(struct tp_wsdec *d, const uint8_t *p, size_t n, size_t *used,
				struct tp_wsdec_ev *ev)
{
	size_t off = 0;

	memset(ev, 0, sizeof(*ev));
	/* Each turn reads one frame header or payload bytes; it ends with an event or
	 * when the bytes run out, so it runs at most twice per frame in p. */
	for (;;) {
		if (!d->in_frame) {
			size_t h;

			if (off == n)
				break;
			h = read_head(d, p + off, n - off, ev);
			if (ev->code) {
				*used = off;
				return TP_WSD_FAIL;
			}
			if (!h)
				break; /* the rest of p is a header begun: kept by the caller */
			off += h;
		}
		if (d->got < d->flen) {
			size_t k = n - off;

			if (k > d->flen - d->got)
				k = (size_t)(d->flen - d->got);
			if (!k)
				break;
			if (!(d->op & 0x08) && !msg_room(d, k)) {
				*used = off;
				return fail(ev, TP_WS_CLOSE_INTERNAL, "out of memory");
			}
			payload(d, p + off, k);
			off += k;
			if (d->got < d->flen)
				break;
		}
		d->in_frame = false;
		*used = off;
		if (d->op & 0x08)
			return control(d, ev);
		if (d->fin) {
			if (d->mop == TP_WS_OP_TEXT && !tp_utf8_valid(d->msg, d->mlen))
				return fail(ev, TP_WS_CLOSE_BAD_DATA, "text message not UTF-8");
			ev->op = d->mop;
			ev->data = d->msg;
			ev->len = d->mlen;
			return TP_WSD_MSG;
		}
	}
	*used = off;
	return TP_WSD_MORE;
}

void tp_wsdec_msg_done(struct tp_wsdec *d)
{
	d->mop = 0;
	d->mlen = 0;
}

bool tp_wsdec_partial(const struct tp_wsdec *d)
{
	return d->in_frame || d->mop;
}

void tp_wsdec_trim(struct tp_wsdec *d)
{
	if (!d->mlen && d->mcap > MSG_MIN) {
		d->msg = sk_deref(d->msg);
		d->mcap = 0;
	}
}

void tp_wsdec_free(struct tp_wsdec *d)
{
	d->msg = sk_deref(d->msg);
	d->mcap = d->mlen = 0;
}
