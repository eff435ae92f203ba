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

/* The close codes counted apart in skein_edge_ws_closes_total; the rest are "other". */
static const int close_codes[TP_WS_CODES - 1] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011};

enum { SEND_STACK = 4096 };

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
	if (!f->ws)
		return SK_ENOMEM;
	f->ws->dec.max_frame = f->tp->o.ws_max_frame;
	f->ws->dec.max_msg = f->tp->o.max_msg_size;
	return 0;
}

void tp_ws_flow_free(struct tp_flow *f)
{
	if (!f->ws)
		return;
	tp_wsdec_free(&f->ws->dec);
	f->ws = sk_deref(f->ws);
}

bool tp_ws_open(const struct tp_flow *f)
{
	return f->ws && f->ws->state != WS_HTTP;
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
	(void)send_frame(f, TP_WS_OP_CLOSE, p, code ? 2 : 0, 0);
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
	send_close(f, st == 513	  ? TP_WS_CLOSE_TOO_BIG
		      : st == 400 ? TP_WS_CLOSE_PROTOCOL
				  : TP_WS_CLOSE_NORMAL);
	f->ws->state = WS_CLOSING;
}

void tp_ws_going_away(struct tp_flow *f)
{
	send_close(f, TP_WS_CLOSE_GOING_AWAY);
}

int tp_ws_send(struct tp_flow *f, const void *data, size_t len, uint64_t cookie)
{
	if (f->ws->state != WS_OPEN)
		return SK_ENOTCONN;
	/* RFC 7118 §4.2: a message that is not UTF-8 as a whole goes as binary. */
	return send_frame(f, tp_utf8_valid(data, len) ? TP_WS_OP_TEXT : TP_WS_OP_BINARY, data, len,
			  cookie);
}

/* A whole WebSocket message is one SIP message (RFC 7118 §5.1), so it is checked as a
 * datagram is (EDGE_UDP), not as a stream: EDGE_STREAM would refuse a message without
 * Content-Length (optional here, §5.1), wait (SK_EAGAIN) for body bytes a shorter body
 * will never bring, and read bytes after the body as a next message. With EDGE_UDP
 * a body shorter than Content-Length is a 400 at once and trailing bytes are ignored
 * (RFC 3261 §18.3), and the framing survives any verdict. */
static void deliver(struct tp_flow *f, const struct tp_wsdec_ev *ev)
{
	struct edge_tp *tp = f->tp;
	struct tp_ws *ws = f->ws;
	struct edge_rx rx;
	msg_t *msg = NULL;
	char s[64];
	int err;

	/* RFC 5626 §4.4.1 double-CRLF ping as a message (RFC 7118 §6; SIP.js does it). */
	if (ev->len == 4 && !memcmp(ev->data, "\r\n\r\n", 4)) {
		TP_COUNT(tp, keepalives, keepalives);
		(void)send_frame(f, TP_WS_OP_TEXT, "\r\n", 2, 0);
		return;
	}
	rx.proto = f->proto;
	rx.src = f->remote;
	rx.local = f->local;
	rx.flow = f->id;
	rx.arrived_ns = uv_hrtime();
	err = edge_sip_check(ev->data, ev->len, EDGE_UDP, tp->o.max_msg_size, &msg, &rx.verdict);
	if (err) {
		SK_WARN("%s from %s: check failed: %s", edge_proto_name(f->proto),
			edge_addr_str(&f->remote, s, sizeof(s)), sk_strerror(err));
		ws_fail(f, TP_WS_CLOSE_INTERNAL, "out of memory");
		return;
	}
	if (f->shed && tp_shed_verdict(f, &rx.verdict, &msg))
		return;
	if (rx.verdict.drop) {
		TP_COUNT(tp, dropped, rx_dropped);
		return;
	}
	ws->last_status = rx.verdict.status;
	rx.data = ev->data;
	rx.len = rx.verdict.consumed ? rx.verdict.consumed : ev->len;
	TP_COUNT(tp, rx[f->proto], rx_msgs[f->proto]);
	tp->o.on_msg(tp, &rx, msg, tp->o.arg);
}

/* Why every step re-checks the flow: on_msg may close the flow or the transport, and
 * a control frame may start the close; then nothing more is read. */
static size_t frames(struct tp_flow *f, const uint8_t *p, size_t n)
{
	struct tp_ws *ws = f->ws;
	struct tp_wsdec_ev ev;
	size_t off = 0, used;

	while (f->state == F_UP && !f->rx_broken && ws->state == WS_OPEN) {
		enum tp_wsdec_what w = tp_wsdec_run(&ws->dec, p + off, n - off, &used, &ev);

		off += used;
		switch (w) {
		case TP_WSD_MORE:
			return off;
		case TP_WSD_FAIL:
			ws_fail(f, ev.code, ev.why);
			return off;
		case TP_WSD_PING: /* §5.5.2: a pong with the same payload, as soon as practical */
			(void)send_frame(f, TP_WS_OP_PONG, ev.data, ev.len, 0);
			f->rx_msgs += !ws->dec.mop; /* between messages: progress */
			break;
		case TP_WSD_PONG: /* §5.5.3: unsolicited pongs are a heartbeat; no answer */
			f->rx_msgs += !ws->dec.mop;
			break;
		case TP_WSD_CLOSE: /* §5.5.1: echo the status code, then close the TCP connection */
			send_close(f, ev.code);
			tp_flow_drain(f);
			break;
		case TP_WSD_MSG:
			deliver(f, &ev);
			tp_wsdec_msg_done(&ws->dec);
			f->rx_msgs++;
			break;
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
		f->rx_msgs++; /* the upgrade is done: what follows has its own deadline */
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
	tp_wsdec_trim(&ws->dec);
	if (!f->len && f->cap > TP_STREAM_MIN) {
		f->buf = sk_deref(f->buf);
		f->cap = 0;
	}
}
