/* tp_ws: SIP over WebSocket (RFC 7118) on WS/WSS flows — the frame layer of RFC 6455
 * between the byte stream (plain or TLS, tp_stream/tp_tls) and SIP: masked client
 * frames unmasked and reassembled into one SIP message each, control frames, close
 * handshake, and one unmasked frame per message sent. */
#include <stdio.h>
#include <string.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"
#include "tp_int.h"

SK_LOG_MODULE("edge.ws");

/* RFC 6455 §5.2, §11.8. */
enum {
	OP_CONT = 0x0,
	OP_TEXT = 0x1,
	OP_BINARY = 0x2,
	OP_CLOSE = 0x8,
	OP_PING = 0x9,
	OP_PONG = 0xA
};

/* §7.4.1. */
enum {
	CLOSE_NORMAL = 1000,
	CLOSE_GOING_AWAY = 1001,
	CLOSE_PROTOCOL = 1002,
	CLOSE_BAD_DATA = 1007, /* not UTF-8 in a text message */
	CLOSE_TOO_BIG = 1009,
	CLOSE_INTERNAL = 1011,
};

/* The close codes counted apart in skein_edge_ws_closes_total; the rest are "other". */
static const int close_codes[TP_WS_CODES - 1] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011};

enum { MSG_MIN = 4096, SEND_STACK = 4096 };

void tp_ws_metrics(struct edge_tp *tp, struct sk_metrics *m, const char *prefix)
{
	char n[128], v[16];

	snprintf(n, sizeof(n), "%s_ws_handshakes_total", prefix);
	tp->m.ws_ok =
	    sk_metrics_counter(m, n, "WebSocket upgrade requests by outcome", "result", "ok");
	tp->m.ws_rejected =
	    sk_metrics_counter(m, n, "WebSocket upgrade requests by outcome", "result", "rejected");
	snprintf(n, sizeof(n), "%s_ws_closes_total", prefix);
	for (int i = 0; i < TP_WS_CODES; i++) {
		if (i < TP_WS_CODES - 1)
			snprintf(v, sizeof(v), "%d", close_codes[i]);
		else
			snprintf(v, sizeof(v), "other");
		tp->m.ws_close[i] = sk_metrics_counter(
		    m, n, "WebSocket close frames sent, by status code (an echo has the peer's)",
		    "code", v);
	}
}

int tp_ws_flow_init(struct tp_flow *f)
{
	f->ws = sk_zalloc(sizeof(*f->ws), NULL);
	return f->ws ? 0 : SK_ENOMEM;
}

void tp_ws_flow_free(struct tp_flow *f)
{
	if (!f->ws)
		return;
	sk_deref(f->ws->msg);
	f->ws = sk_deref(f->ws);
}

bool tp_ws_open(const struct tp_flow *f)
{
	return f->ws && f->ws->state != WS_HTTP;
}

/* Why a full validator and not a skip: RFC 6455 §8.1 makes an endpoint fail a text
 * message that is not UTF-8 (1007), and RFC 7118 §4.2 sends such SIP messages as
 * binary. Checked once per reassembled message, not per fragment. */
bool tp_utf8_valid(const void *data, size_t n)
{
	const unsigned char *s = data, *e = s + n;

	while (s < e) {
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

/* A frame header for a payload of len (server frames are never masked, §5.1). */
static size_t frame_head(uint8_t *h, uint8_t op, size_t len)
{
	h[0] = (uint8_t)(0x80 | op);
	if (len < 126) {
		h[1] = (uint8_t)len;
		return 2;
	}
	if (len <= 0xFFFF) {
		h[1] = 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		return 4;
	}
	h[1] = 127;
	for (int i = 0; i < 8; i++)
		h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	return 10;
}

static int send_frame(struct tp_flow *f, uint8_t op, const void *data, size_t len, uint64_t cookie)
{
	uint8_t stack[SEND_STACK], *b = stack;
	size_t h;
	int err;

	if (len + 10 > sizeof(stack) && !(b = sk_zalloc(len + 10, NULL)))
		return SK_ENOMEM;
	h = frame_head(b, op, len);
	if (len)
		memcpy(b + h, data, len);
	/* One write: one TLS record, one segment with TCP_NODELAY. */
	err = tp_flow_put(f, b, h + len, cookie);
	if (b != stack)
		sk_deref(b);
	return err;
}

static void count_close(struct edge_tp *tp, int code)
{
	int i = 0;

	while (i < TP_WS_CODES - 1 && close_codes[i] != code)
		i++;
	if (tp->m.ws_close[i])
		sk_counter_inc(tp->m.ws_close[i]);
}

/* code 0: an empty close frame (an echo of one, §5.5.1). */
static void send_close(struct tp_flow *f, int code)
{
	uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
	struct tp_ws *ws = f->ws;

	if (ws->close_sent || ws->state != WS_OPEN || f->state != F_UP)
		return;
	ws->close_sent = true;
	ws->state = WS_CLOSING;
	count_close(f->tp, code);
	(void)send_frame(f, OP_CLOSE, p, code ? 2 : 0, 0);
}

/* §7.1.7 "Fail the WebSocket Connection": a close frame, then the TCP close (§7.1.1:
 * the server closes first), lingering so that the close frame is not lost. */
static void ws_fail(struct tp_flow *f, int code, const char *why)
{
	char a[64];

	SK_INFO("%s from %s: closing with %d (%s)", edge_proto_name(f->proto),
		edge_addr_str(&f->remote, a, sizeof(a)), code, why);
	send_close(f, code);
	tp_flow_drain(f);
}

void tp_ws_shutdown(struct tp_flow *f)
{
	int st = f->ws->last_status;

	/* After a 400/513 the core closes: say why in WebSocket terms. */
	send_close(f, st == 513 ? CLOSE_TOO_BIG : st == 400 ? CLOSE_PROTOCOL : CLOSE_NORMAL);
	f->ws->state = WS_CLOSING;
}

void tp_ws_going_away(struct tp_flow *f)
{
	send_close(f, CLOSE_GOING_AWAY);
}

int tp_ws_send(struct tp_flow *f, const void *data, size_t len, uint64_t cookie)
{
	if (f->ws->state != WS_OPEN)
		return SK_ENOTCONN;
	/* RFC 7118 §4.2: a message that is not UTF-8 as a whole goes as binary. */
	return send_frame(f, tp_utf8_valid(data, len) ? OP_TEXT : OP_BINARY, data, len, cookie);
}

/* §7.4.1, §7.4.2 and the IANA registry: codes a peer may send in a close frame. */
static bool close_code_ok(unsigned c)
{
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

static void control(struct tp_flow *f)
{
	struct tp_ws *ws = f->ws;
	size_t n = (size_t)ws->flen;
	unsigned code;

	switch (ws->op) {
	case OP_PING: /* §5.5.2: a pong with the same payload, as soon as practical */
		(void)send_frame(f, OP_PONG, ws->ctl, n, 0);
		break;
	case OP_PONG: /* §5.5.3: unsolicited pongs are a heartbeat; no answer */
		break;
	case OP_CLOSE: /* §5.5.1: echo the status code, then close the TCP connection */
		if (n == 1) {
			ws_fail(f, CLOSE_PROTOCOL, "close frame of 1 byte");
			return;
		}
		code = n ? (unsigned)ws->ctl[0] << 8 | ws->ctl[1] : 0;
		if (n && !close_code_ok(code)) {
			ws_fail(f, CLOSE_PROTOCOL, "bad close code");
			return;
		}
		if (n > 2 && !tp_utf8_valid(ws->ctl + 2, n - 2)) {
			ws_fail(f, CLOSE_BAD_DATA, "close reason not UTF-8");
			return;
		}
		send_close(f, (int)code);
		tp_flow_drain(f);
		break;
	default:
		break;
	}
}

/* A whole WebSocket message is one SIP message (RFC 7118 §5.1), so it is checked as a
 * datagram is (EDGE_UDP), not as a stream: EDGE_STREAM would refuse a message without
 * Content-Length (optional here, §5.1), wait (SK_EAGAIN) for body bytes a shorter body
 * will never bring, and read bytes after the body as a next message. With EDGE_UDP
 * a body shorter than Content-Length is a 400 at once and trailing bytes are ignored
 * (RFC 3261 §18.3), and the framing survives any verdict. */
static void deliver(struct tp_flow *f)
{
	struct edge_tp *tp = f->tp;
	struct tp_ws *ws = f->ws;
	struct edge_rx rx;
	msg_t *msg = NULL;
	char s[64];
	int err;

	if (ws->mop == OP_TEXT && !tp_utf8_valid(ws->msg, ws->mlen)) {
		ws_fail(f, CLOSE_BAD_DATA, "text message not UTF-8");
		return;
	}
	/* RFC 5626 §4.4.1 double-CRLF ping as a message (RFC 7118 §6; SIP.js does it). */
	if (ws->mlen == 4 && !memcmp(ws->msg, "\r\n\r\n", 4)) {
		TP_COUNT(tp, keepalives, keepalives);
		(void)send_frame(f, OP_TEXT, "\r\n", 2, 0);
		return;
	}
	rx.proto = f->proto;
	rx.src = f->remote;
	rx.local = f->local;
	rx.flow = f->id;
	rx.arrived_ns = uv_hrtime();
	err = edge_sip_check(ws->msg, ws->mlen, EDGE_UDP, tp->o.max_msg_size, &msg, &rx.verdict);
	if (err) {
		SK_WARN("%s from %s: check failed: %s", edge_proto_name(f->proto),
			edge_addr_str(&f->remote, s, sizeof(s)), sk_strerror(err));
		ws_fail(f, CLOSE_INTERNAL, "out of memory");
		return;
	}
	if (rx.verdict.drop) {
		TP_COUNT(tp, dropped, rx_dropped);
		return;
	}
	ws->last_status = rx.verdict.status;
	rx.data = ws->msg;
	rx.len = rx.verdict.consumed ? rx.verdict.consumed : ws->mlen;
	TP_COUNT(tp, rx[f->proto], rx_msgs[f->proto]);
	tp->o.on_msg(tp, &rx, msg, tp->o.arg);
}

/* A frame header at p[0, n) (§5.2): its length once whole and valid, 0 while more is
 * needed; a protocol error fails the connection (*code) as soon as it can be told. */
static size_t read_head(struct tp_flow *f, const uint8_t *p, size_t n, int *code, const char **why)
{
	struct tp_ws *ws = f->ws;
	uint8_t op = p[0] & 0x0F;
	bool fin = p[0] & 0x80, ctl = op & 0x08;
	uint64_t len;
	size_t h;

	if (p[0] & 0x70) {
		*why = "reserved bits set"; /* no extension was negotiated */
	} else if (op > OP_BINARY && op != OP_CLOSE && op != OP_PING && op != OP_PONG) {
		*why = "unknown opcode";
	} else if (ctl && !fin) {
		*why = "fragmented control frame"; /* §5.5 */
	} else if (op == OP_CONT && !ws->mop) {
		*why = "continuation without a message";
	} else if ((op == OP_TEXT || op == OP_BINARY) && ws->mop) {
		*why = "new message inside a fragmented one"; /* §5.4 */
	} else if (n >= 2 && !(p[1] & 0x80)) {
		*why = "unmasked client frame"; /* §5.1 */
	} else if (n >= 2 && ctl && (p[1] & 0x7F) > 125) {
		*why = "control frame over 125 bytes";
	}
	if (*why) {
		*code = CLOSE_PROTOCOL;
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
	if ((p[1] & 0x7F) == 127 && (len >> 63 || len <= 0xFFFF)) {
		*why = "bad 64-bit length";
	} else if ((p[1] & 0x7F) == 126 && len < 126) {
		*why = "bad 16-bit length";
	}
	if (*why) {
		*code = CLOSE_PROTOCOL;
		return 0;
	}
	if (!ctl && len > f->tp->o.ws_max_frame) {
		*code = CLOSE_TOO_BIG;
		*why = "frame over ws_max_frame";
		return 0;
	}
	if (!ctl && ws->mlen + len > f->tp->o.max_msg_size) {
		*code = CLOSE_TOO_BIG;
		*why = "message over max_msg_size";
		return 0;
	}
	ws->in_frame = true;
	ws->fin = fin;
	ws->op = op;
	ws->flen = len;
	ws->got = 0;
	memcpy(ws->mask, p + h - 4, 4);
	if (op == OP_TEXT || op == OP_BINARY)
		ws->mop = op;
	return h;
}

/* Room for k more message bytes: grows as the bytes come, not as the header
 * announces, so a peer does not get max_msg_size of memory for a few bytes. */
static bool msg_room(struct tp_ws *ws, size_t k, size_t max)
{
	size_t cap;
	char *nb;

	if (ws->mlen + k <= ws->mcap)
		return true;
	cap = ws->mcap ? ws->mcap : MSG_MIN;
	while (cap < ws->mlen + k)
		cap *= 2;
	if (cap > max)
		cap = max;
	nb = ws->msg ? sk_realloc(ws->msg, cap) : sk_zalloc(cap, NULL);
	if (!nb)
		return false;
	ws->msg = nb;
	ws->mcap = cap;
	return true;
}

/* Payload bytes p[0, n) of the current frame, unmasked into the message or the
 * control buffer (§5.3). */
static void payload(struct tp_ws *ws, const uint8_t *p, size_t n)
{
	uint8_t *dst = (ws->op & 0x08) ? ws->ctl + ws->got : (uint8_t *)ws->msg + ws->mlen;

	for (size_t i = 0; i < n; i++)
		dst[i] = p[i] ^ ws->mask[(ws->got + i) & 3];
	ws->got += n;
	if (!(ws->op & 0x08))
		ws->mlen += n;
}

/* Why every step re-checks the flow: on_msg may close the flow or the transport, and
 * a control frame may start the close; then nothing more is read. */
static size_t frames(struct tp_flow *f, const uint8_t *p, size_t n)
{
	struct tp_ws *ws = f->ws;
	size_t off = 0;

	while (f->state == F_UP && !f->rx_broken && ws->state == WS_OPEN) {
		if (!ws->in_frame) {
			const char *why = NULL;
			int code = 0;
			size_t h;

			if (off == n)
				break;
			h = read_head(f, p + off, n - off, &code, &why);
			if (code) {
				ws_fail(f, code, why);
				break;
			}
			if (!h)
				break;
			off += h;
		}
		if (ws->got < ws->flen) {
			size_t k = n - off;

			if (k > ws->flen - ws->got)
				k = (size_t)(ws->flen - ws->got);
			if (!k)
				break;
			if (!(ws->op & 0x08) && !msg_room(ws, k, f->tp->o.max_msg_size)) {
				ws_fail(f, CLOSE_INTERNAL, "out of memory");
				break;
			}
			payload(ws, p + off, k);
			off += k;
			if (ws->got < ws->flen)
				break;
		}
		ws->in_frame = false;
		if (ws->op & 0x08) {
			control(f);
		} else if (ws->fin) {
			deliver(f);
			ws->mop = 0;
			ws->mlen = 0;
		}
	}
	return off;
}

void tp_ws_parse(struct tp_flow *f)
{
	struct tp_ws *ws = f->ws;
	size_t off = 0;

	if (ws->state == WS_HTTP) {
		long h = tp_ws_handshake(f);

		if (h <= 0) {
			if (h < 0)
				f->len = 0; /* refused: what follows is not read */
			return;
		}
		off = (size_t)h;
	}
	if (ws->state == WS_OPEN)
		off += frames(f, (const uint8_t *)f->buf + off, f->len - off);
	if (f->state == F_CLOSED)
		return;
	if (f->rx_broken || ws->state != WS_OPEN)
		off = f->len;
	if (off) {
		memmove(f->buf, f->buf + off, f->len - off);
		f->len -= off;
	}
	/* A large message's buffer is not kept by an idle connection. */
	if (!ws->mlen && ws->mcap > MSG_MIN) {
		ws->msg = sk_deref(ws->msg);
		ws->mcap = 0;
	}
	if (!f->len && f->cap > TP_STREAM_MIN) {
		f->buf = sk_deref(f->buf);
		f->cap = 0;
	}
}
