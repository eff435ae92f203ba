/* Unit tests for SIP over WebSocket (RFC 7118, RFC 6455) in the edge's transports: a
 * plain socket plays the browser (the upgrade request and masked frames are written
 * here byte by byte), an OpenSSL client in a thread does the same over TLS. Every wait
 * is bounded (sk_test_loop.h); the leak check runs around each case (sk_test.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "sk_test.h"
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_metrics.h"
#include "transport.h"
#include "tp_int.h" /* tp_ws_accept_key, tp_utf8_valid */
#include "tp_test.h"

#define MAXREC 16

struct rec {
	enum edge_proto proto;
	uint64_t flow;
	int status;
	bool has_msg;
	char data[2048];
};

struct t {
	uv_loop_t loop;
	uv_timer_t guard;
	bool expired;
	uv_timer_t tick; /* keeps the loop turning while a test polls a plain socket */
	struct edge_tp *tp;
	struct sk_metrics *metrics;
	struct rec rx[MAXREC];
	int nrx;
	uint64_t closed[MAXREC];
	int nclosed;
	bool close_on_error, close_in_msg, echo;
	int echo_err;
};

#include "sk_test_loop.h"

static char cert_file[512], key_file[512];

/* RFC 6455 §1.3. */
static const char sample_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char sample_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/* No Content-Length: over WebSocket the message ends with the frame (RFC 7118 §5.1). */
static const char register_fmt[] = "REGISTER sip:example.com SIP/2.0\r\n"
				   "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-%d\r\n"
				   "Max-Forwards: 70\r\n"
				   "From: <sip:alice@example.com>;tag=%d\r\n"
				   "To: <sip:alice@example.com>\r\n"
				   "Call-ID: ws%d@test\r\n"
				   "CSeq: 1 REGISTER\r\n"
				   "Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws>\r\n\r\n";

static const char *reg(char *buf, size_t size, int n)
{
	snprintf(buf, size, register_fmt, n, n, n);
	return buf;
}

/* ---- callbacks ---- */

static void on_msg(struct edge_tp *tp, const struct edge_rx *rx, msg_t *msg, void *arg)
{
	struct t *t = arg;
	struct rec *r = &t->rx[t->nrx < MAXREC ? t->nrx : MAXREC - 1];

	r->proto = rx->proto;
	r->flow = rx->flow;
	r->status = rx->verdict.status;
	r->has_msg = msg != NULL;
	snprintf(r->data, sizeof(r->data), "%.*s", (int)rx->len, rx->data);
	t->nrx++;
	if (msg)
		msg_destroy(msg);
	if (t->echo)
		t->echo_err =
		    edge_tp_send(tp, rx->proto, NULL, rx->flow, NULL, rx->data, rx->len, 0);
	if (t->close_in_msg || (t->close_on_error && rx->verdict.status))
		edge_tp_flow_close(tp, rx->flow);
}

static void on_flow_closed(struct edge_tp *tp, uint64_t flow, void *arg)
{
	struct t *t = arg;

	(void)tp;
	if (t->nclosed < MAXREC)
		t->closed[t->nclosed] = flow;
	t->nclosed++;
}

/* ---- harness ---- */

static void tick_cb(uv_timer_t *h)
{
	(void)h;
}

static struct edge_tp_opts ws_opts(struct t *t)
{
	struct edge_tp_opts o = {
	    .udp = "",
	    .tcp = "",
	    .ws = "127.0.0.1:0",
	    .on_msg = on_msg,
	    .on_flow_closed = on_flow_closed,
	    .arg = t,
	};
	return o;
}

static void t_start(struct t *t, struct edge_tp_opts *o)
{
	t_init(t);
	assert_int_equal(sk_metrics_alloc(&t->metrics), 0);
	o->metrics = t->metrics;
	uv_timer_init(&t->loop, &t->tick);
	uv_timer_start(&t->tick, tick_cb, 5, 5);
	assert_int_equal(edge_tp_alloc(&t->tp, &t->loop, o), 0);
}

static void t_stop(struct t *t)
{
	edge_tp_close(t->tp);
	t->tp = sk_deref(t->tp);
	uv_close((uv_handle_t *)&t->tick, NULL);
	t_done(t);
	t->metrics = sk_deref(t->metrics);
}

static long metric(struct t *t, const char *series)
{
	return tp_test_metric(t->metrics, series);
}

static uint16_t local_port(const struct t *t, enum edge_proto p)
{
	return tp_test_port(t->tp, p);
}

static int tcp_client(uint16_t port)
{
	return tp_test_tcp_client(port, NULL);
}

static void put(struct t *t, int fd, const void *s, size_t n)
{
	tp_test_put(&t->loop, fd, s, n);
}

static void consume(struct inbox *in, size_t n)
{
	memmove(in->buf, in->buf + n, in->len - n);
	in->len -= n;
	in->buf[in->len] = '\0';
}

/* A client frame (RFC 6455 §5.2), masked with the key of the §5.7 examples unless
 * told not to; flags: 0x80 FIN, 0x70 reserved bits. */
static size_t frame(unsigned char *out, unsigned flags, unsigned op, bool mask, const void *data,
		    size_t len)
{
	static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
	const unsigned char *d = data;
	size_t h = 2;

	out[0] = (unsigned char)(flags | op);
	if (len < 126) {
		out[1] = (unsigned char)len;
	} else if (len <= 0xFFFF) {
		out[1] = 126;
		out[2] = (unsigned char)(len >> 8);
		out[3] = (unsigned char)len;
		h = 4;
	} else {
		out[1] = 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
		h = 10;
	}
	if (mask) {
		out[1] |= 0x80;
		memcpy(out + h, key, 4);
		h += 4;
	}
	for (size_t i = 0; i < len; i++)
		out[h + i] = mask ? d[i] ^ key[i & 3] : d[i];
	return h + len;
}

static void send_frame(struct t *t, int fd, unsigned flags, unsigned op, const void *data,
		       size_t len)
{
	unsigned char *b = malloc(len + 14);

	assert_non_null(b);
	put(t, fd, b, frame(b, flags, op, true, data, len));
	free(b);
}

/* A whole server frame at the head of the inbox: never masked (§5.1); consumed. */
static bool take_frame(struct inbox *in, unsigned *op, char *payload, size_t *plen)
{
	size_t h = 2, len;

	if (in->len < 2)
		return false;
	assert_int_equal(in->buf[1] & 0x80, 0);
	len = in->buf[1] & 0x7F;
	assert_true(len != 127); /* nothing here is that large */
	if (len == 126) {
		if (in->len < 4)
			return false;
		len = (size_t)in->buf[2] << 8 | in->buf[3];
		h = 4;
	}
	if (in->len < h + len)
		return false;
	assert_int_equal(in->buf[0] & 0x80, 0x80); /* we never fragment */
	*op = in->buf[0] & 0x0F;
	memcpy(payload, in->buf + h, len);
	payload[len] = '\0';
	*plen = len;
	consume(in, h + len);
	return true;
}

/* Whether a whole frame is at the head of the inbox (WAIT_UNTIL evaluates its
 * condition twice: no side effects there). */
static bool have_frame(const struct inbox *in)
{
	size_t len;

	if (in->len < 2)
		return false;
	len = in->buf[1] & 0x7F;
	if (len == 126)
		return in->len >= 4 && in->len >= 4 + ((size_t)in->buf[2] << 8 | in->buf[3]);
	return in->len >= 2 + len;
}

/* Waits for one frame from the edge. */
static void wait_frame(struct t *t, int fd, struct inbox *in, unsigned *op, char *payload,
		       size_t *plen)
{
	WAIT_UNTIL(t, (poll_in(fd, in), have_frame(in)), 2000);
	assert_true(take_frame(in, op, payload, plen));
}

/* Waits for a close frame with this code, then for the edge to close the TCP
 * connection (it closes first, RFC 6455 §7.1.1). */
static void wait_close(struct t *t, int fd, struct inbox *in, int code)
{
	char p[256];
	unsigned op;
	size_t n;

	wait_frame(t, fd, in, &op, p, &n);
	assert_int_equal(op, 0x8);
	if (code) {
		assert_int_equal(n, 2);
		assert_int_equal((unsigned char)p[0] << 8 | (unsigned char)p[1], code);
	} else {
		assert_int_equal(n, 0);
	}
	WAIT_UNTIL(t, poll_in(fd, in) && in->eof, 2000);
}

static const char *upgrade_req(char *buf, size_t size, const char *proto, const char *extra)
{
	snprintf(buf, size,
		 "GET /sip HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
		 "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: %s\r\n"
		 "Sec-WebSocket-Version: 13\r\n%s%s%s%s\r\n",
		 sample_key, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
		 proto ? "\r\n" : "", extra ? extra : "");
	return buf;
}

/* Sends a request head and waits for the whole answer head; returns its length. */
static size_t http(struct t *t, int fd, struct inbox *in, const char *req)
{
	const char *e;

	put(t, fd, req, strlen(req));
	WAIT_UNTIL(t, poll_in(fd, in) && (e = strstr((char *)in->buf, "\r\n\r\n")), 2000);
	return (size_t)(e + 4 - (char *)in->buf);
}

/* A connection upgraded with subprotocol sip; the 101 checked and consumed. */
static int ws_client(struct t *t, uint16_t port, struct inbox *in, const char *extra)
{
	char req[1024], *a;
	int fd = tcp_client(port);
	size_t h;

	memset(in, 0, sizeof(*in));
	h = http(t, fd, in, upgrade_req(req, sizeof(req), "sip", extra));
	assert_memory_equal(in->buf, "HTTP/1.1 101 ", 13);
	a = strstr((char *)in->buf, "Sec-WebSocket-Accept: ");
	assert_non_null(a);
	assert_memory_equal(a + 22, sample_accept, 28);
	assert_non_null(strstr((char *)in->buf, "\r\nSec-WebSocket-Protocol: sip\r\n"));
	consume(in, h);
	return fd;
}

/* An upgrade request refused with this status, then the connection closed. */
static void refused(struct t *t, uint16_t port, const char *req, int status, const char *hdr)
{
	struct inbox in = {0};
	char want[32];
	int fd = tcp_client(port);

	http(t, fd, &in, req);
	snprintf(want, sizeof(want), "HTTP/1.1 %d ", status);
	if (strncmp((char *)in.buf, want, strlen(want)))
		fail_msg("wanted %s, got: %s", want, (char *)in.buf);
	if (hdr)
		assert_non_null(strstr((char *)in.buf, hdr));
	WAIT_UNTIL(t, poll_in(fd, &in) && in.eof, 2000);
	close(fd);
}

/* ---- cases ---- */

static void test_ws_units(void **state)
{
	enum edge_proto p;
	char acc[29];

	(void)state;
	tp_ws_accept_key(sample_key, strlen(sample_key), acc);
	assert_string_equal(acc, sample_accept);
	assert_int_equal(edge_proto_parse("WSS", &p), 0);
	assert_int_equal(p, EDGE_PROTO_WSS);
	assert_string_equal(edge_proto_via(p), "WSS");
	assert_int_equal(edge_proto_parse("ws", &p), 0);
	assert_string_equal(edge_proto_name(p), "ws");
	assert_string_equal(edge_proto_via(p), "WS");
	/* RFC 3629 §4 and the corner cases of the Autobahn suite. */
	assert_true(tp_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
	assert_false(tp_utf8_valid("\xc0\xaf", 2));	    /* overlong '/' */
	assert_false(tp_utf8_valid("\xed\xa0\x80", 3));	    /* surrogate U+D800 */
	assert_false(tp_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
	assert_false(tp_utf8_valid("\xe2\x82", 2));	    /* cut short */
	assert_false(tp_utf8_valid("\x80", 1));
}

static void test_ws_roundtrip(void **state)
{
	struct edge_tp_stats st;
	struct edge_tp_opts o;
	struct edge_addr remote;
	struct inbox in;
	enum edge_proto p;
	char m[1024], got[2048];
	unsigned op;
	size_t n;
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = ws_opts(&t);
	t_start(&t, &o);
	assert_false(edge_tp_local(t.tp, EDGE_PROTO_WSS, NULL));
	fd = ws_client(&t, local_port(&t, EDGE_PROTO_WS), &in, NULL);
	reg(m, sizeof(m), 1);
	send_frame(&t, fd, 0x80, 0x1, m, strlen(m));
	WAIT_UNTIL(&t, t.nrx == 1, 2000);
	assert_int_equal(t.rx[0].proto, EDGE_PROTO_WS);
	assert_int_equal(t.rx[0].status, 0);
	assert_true(t.rx[0].has_msg);
	assert_true(t.rx[0].flow != 0);
	assert_string_equal(t.rx[0].data, m);
	assert_true(edge_tp_flow_info(t.tp, t.rx[0].flow, &p, &remote));
	assert_int_equal(p, EDGE_PROTO_WS);
	assert_int_equal(edge_tp_conns(t.tp), 1);

	/* Down the flow: one unmasked text frame with the bytes. */
	snprintf(m, sizeof(m), "SIP/2.0 200 OK\r\nCall-ID: ws1@test\r\n\r\n");
	assert_int_equal(
	    edge_tp_send(t.tp, EDGE_PROTO_WS, NULL, t.rx[0].flow, NULL, m, strlen(m), 0), 0);
	wait_frame(&t, fd, &in, &op, got, &n);
	assert_int_equal(op, 0x1);
	assert_int_equal(n, strlen(m));
	assert_string_equal(got, m);
	/* Not UTF-8: a binary frame (RFC 7118 §4.2). */
	assert_int_equal(
	    edge_tp_send(t.tp, EDGE_PROTO_WS, NULL, t.rx[0].flow, NULL, "ab\xff", 3, 0), 0);
	wait_frame(&t, fd, &in, &op, got, &n);
	assert_int_equal(op, 0x2);
	assert_int_equal(n, 3);
	/* Never a connection out. */
	assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_WS, &remote, 0, NULL, m, strlen(m), 0),
			 SK_ENOTSUP);

	/* A binary frame is SIP as well; a CRLFCRLF message is a keep-alive (RFC 5626). */
	reg(m, sizeof(m), 2);
	send_frame(&t, fd, 0x80, 0x2, m, strlen(m));
	send_frame(&t, fd, 0x80, 0x1, "\r\n\r\n", 4);
	WAIT_UNTIL(&t, t.nrx == 2, 2000);
	assert_string_equal(t.rx[1].data, m);
	wait_frame(&t, fd, &in, &op, got, &n);
	assert_int_equal(op, 0x1);
	assert_string_equal(got, "\r\n");

	/* A body shorter than its Content-Length: a 400 at once (RFC 3261 §18.3), and the
	 * framing is intact, so the next message still comes. */
	snprintf(
	    m, sizeof(m),
	    "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK-s\r\n"
	    "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\n"
	    "To: <sip:bob@example.com>\r\nCall-ID: short@test\r\nCSeq: 1 MESSAGE\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 10\r\n\r\nhey");
	send_frame(&t, fd, 0x80, 0x1, m, strlen(m));
	reg(m, sizeof(m), 4);
	send_frame(&t, fd, 0x80, 0x1, m, strlen(m));
	WAIT_UNTIL(&t, t.nrx == 4, 2000);
	assert_int_equal(t.rx[2].status, 400);
	assert_false(t.rx[2].has_msg);
	assert_int_equal(t.rx[3].status, 0);
	assert_string_equal(t.rx[3].data, m);

	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.rx_msgs[EDGE_PROTO_WS], 4);
	assert_int_equal(st.tx_msgs[EDGE_PROTO_WS], 2);
	assert_int_equal(st.ws_upgrades, 1);
	assert_int_equal(st.keepalives, 1);
	assert_int_equal(metric(&t, "skein_edge_sip_rx_total{transport=\"ws\"}"), 4);
	assert_int_equal(metric(&t, "skein_edge_sip_tx_total{transport=\"ws\"}"), 2);
	assert_int_equal(metric(&t, "skein_edge_ws_handshakes_total{result=\"ok\"}"), 1);

	/* The client goes away without a close frame: the flow ends. */
	close(fd);
	WAIT_UNTIL(&t, t.nclosed == 1, 2000);
	assert_int_equal(t.closed[0], t.rx[0].flow);
	assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_WS, NULL, t.rx[0].flow, NULL, m, 1, 0),
			 SK_ENOTCONN);
	t_stop(&t);
}

static void test_ws_fragments_ping_close(void **state)
{
	unsigned char b[2048];
	struct edge_tp_opts o;
	struct inbox in;
	char m[1024], got[256];
	unsigned op;
	size_t n, k;
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = ws_opts(&t);
	t_start(&t, &o);
	fd = ws_client(&t, local_port(&t, EDGE_PROTO_WS), &in, "Origin: https://any.example\r\n");
	reg(m, sizeof(m), 3);
	n = strlen(m);
	/* §5.4: text, continuation, a ping between fragments, the last continuation
	 * written one byte at a time. */
	send_frame(&t, fd, 0x00, 0x1, m, 100);
	send_frame(&t, fd, 0x00, 0x0, m + 100, 100);
	send_frame(&t, fd, 0x80, 0x9, "are you there", 13);
	wait_frame(&t, fd, &in, &op, got, &k);
	assert_int_equal(op, 0xA);
	assert_string_equal(got, "are you there");
	k = frame(b, 0x80, 0x0, true, m + 200, n - 200);
	for (size_t i = 0; i < k; i++) {
		put(&t, fd, b + i, 1);
		uv_run(&t.loop, UV_RUN_NOWAIT);
		if (i + 1 < k)
			assert_int_equal(t.nrx, 0);
	}
	WAIT_UNTIL(&t, t.nrx == 1, 2000);
	assert_int_equal(t.rx[0].status, 0);
	assert_string_equal(t.rx[0].data, m);
	/* An unsolicited pong is ignored; a close is echoed with its code. */
	send_frame(&t, fd, 0x80, 0xA, "", 0);
	b[0] = 0x03;
	b[1] = 0xE9; /* 1001 going away */
	memcpy(b + 2, "bye", 3);
	send_frame(&t, fd, 0x80, 0x8, b, 5);
	wait_close(&t, fd, &in, 1001);
	close(fd);
	WAIT_UNTIL(&t, t.nclosed == 1, 2000);
	assert_int_equal(metric(&t, "skein_edge_ws_closes_total{code=\"1001\"}"), 1);
	t_stop(&t);
}

static void test_ws_bad_upgrades(void **state)
{
	struct edge_tp_opts o;
	struct edge_tp_stats st;
	struct inbox in;
	char req[1024], *big;
	uint16_t port;
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = ws_opts(&t);
	o.ws_origins = "https://good.example, https://other.example:8443";
	t_start(&t, &o);
	port = local_port(&t, EDGE_PROTO_WS);
	/* Plain HTTP: 426 with Upgrade (RFC 7231 §6.5.15). */
	refused(&t, port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426, "\r\nUpgrade: websocket\r\n");
	/* No subprotocol, or not sip (RFC 7118 §4.1). */
	refused(&t, port, upgrade_req(req, sizeof(req), NULL, NULL), 400, NULL);
	refused(&t, port, upgrade_req(req, sizeof(req), "chat, superchat", NULL), 400, NULL);
	/* Origin outside the allow-list (RFC 6455 §10.2). */
	refused(&t, port, upgrade_req(req, sizeof(req), "sip", "Origin: https://evil.example\r\n"),
		403, NULL);
	/* Another version (§4.4). */
	snprintf(req, sizeof(req),
		 "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 8\r\n"
		 "Sec-WebSocket-Protocol: sip\r\n\r\n",
		 sample_key);
	refused(&t, port, req, 426, "\r\nSec-WebSocket-Version: 13\r\n");
	/* A key that is not 16 bytes of base64 (§4.2.1 item 5). */
	snprintf(req, sizeof(req),
		 "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n"
		 "Sec-WebSocket-Protocol: sip\r\n\r\n");
	refused(&t, port, req, 400, NULL);
	/* HTTP/1.0 and POST cannot upgrade (§4.2.1 item 1). */
	snprintf(req, sizeof(req),
		 "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		 "Sec-WebSocket-Protocol: sip\r\n\r\n",
		 sample_key);
	refused(&t, port, req, 400, NULL);
	/* A head over 8 KiB. */
	big = malloc(10000);
	assert_non_null(big);
	snprintf(big, 10000, "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ");
	memset(big + strlen(big), 'a', 9000);
	big[9040] = '\0';
	strcat(big, "\r\n\r\n");
	refused(&t, port, big, 400, NULL);
	free(big);
	/* A NUL cannot smuggle a listed Origin through (RFC 7230 §3.2: no CTL). */
	{
		struct inbox in0 = {0};
		int fd0 = tcp_client(port);
		size_t len;

		upgrade_req(req, sizeof(req), "sip", "Origin: https://good.example#.evil\r\n");
		len = strlen(req);
		*strchr(req, '#') = '\0';
		put(&t, fd0, req, len);
		WAIT_UNTIL(&t, poll_in(fd0, &in0) && strstr((char *)in0.buf, "\r\n\r\n"), 2000);
		assert_memory_equal(in0.buf, "HTTP/1.1 400 ", 13);
		close(fd0);
	}
	/* Garbage that is not HTTP. */
	refused(&t, port, "\x16\x03\x01 hello\r\n\r\n", 400, NULL);
	assert_int_equal(t.nrx, 0);

	/* The listed origins pass, in any case; so does a client without Origin. */
	fd = ws_client(&t, port, &in, "Origin: HTTPS://other.example:8443\r\n");
	close(fd);
	fd = ws_client(&t, port, &in, NULL);
	close(fd);
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.ws_rejected, 10);
	assert_int_equal(st.ws_upgrades, 2);
	assert_int_equal(metric(&t, "skein_edge_ws_handshakes_total{result=\"rejected\"}"), 10);
	WAIT_UNTIL(&t, edge_tp_conns(t.tp) == 0, 2000);
	t_stop(&t);
}

/* One connection per bad frame, each closed with its code; a client on the same
 * listener is served all along. */
static void test_ws_bad_frames(void **state)
{
	static const struct {
		const char *name;
		unsigned char bytes[16];
		size_t len;
		int code;
	} bad[] = {
	    {"unmasked", {0x81, 0x02, 'h', 'i'}, 4, 1002},
	    {"reserved bit", {0xC1, 0x80, 0, 0, 0, 0}, 6, 1002},
	    {"unknown opcode", {0x83, 0x80, 0, 0, 0, 0}, 6, 1002},
	    {"garbage", "OPTIONS sip:x", 13, 1002},
	    {"continuation first", {0x80, 0x80, 0, 0, 0, 0}, 6, 1002},
	    {"fragmented ping", {0x09, 0x80, 0, 0, 0, 0}, 6, 1002},
	    {"long ping", {0x89, 0xFE, 0x00, 0x7E}, 4, 1002},
	    {"oversize", {0x81, 0xFE, 0x07, 0xD0, 1, 2, 3, 4}, 8, 1009}, /* 2000 > 1000 */
	    {"non-minimal length", {0x81, 0xFE, 0x00, 0x05, 1, 2, 3, 4}, 8, 1002},
	    {"bad close code", {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xED}, 8, 1002}, /* 1005 */
	};
	struct edge_tp_opts o;
	struct inbox in, good_in;
	char m[1024];
	uint16_t port;
	struct t t;
	int fd, good;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = ws_opts(&t);
	o.ws_max_frame = 1000;
	o.max_msg_size = 1500;
	t_start(&t, &o);
	port = local_port(&t, EDGE_PROTO_WS);
	good = ws_client(&t, port, &good_in, NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("%s\n", bad[i].name);
		fd = ws_client(&t, port, &in, NULL);
		put(&t, fd, bad[i].bytes, bad[i].len);
		wait_close(&t, fd, &in, bad[i].code);
		close(fd);
		/* The other client is still served. */
		reg(m, sizeof(m), (int)i);
		send_frame(&t, good, 0x80, 0x1, m, strlen(m));
		WAIT_UNTIL(&t, t.nrx == (int)i + 1, 2000);
		assert_string_equal(t.rx[i].data, m);
	}
	/* A message over max_msg_size in frames under ws_max_frame. */
	fd = ws_client(&t, port, &in, NULL);
	memset(m, 'a', 800);
	send_frame(&t, fd, 0x00, 0x1, m, 800);
	send_frame(&t, fd, 0x80, 0x0, m, 800);
	wait_close(&t, fd, &in, 1009);
	close(fd);
	/* A text message that is not UTF-8 (RFC 6455 §8.1). */
	fd = ws_client(&t, port, &in, NULL);
	send_frame(&t, fd, 0x80, 0x1, "OPTIONS \xc0\xaf", 10);
	wait_close(&t, fd, &in, 1007);
	close(fd);
	assert_int_equal(t.nrx, (int)(sizeof(bad) / sizeof(bad[0])));
	assert_int_equal(metric(&t, "skein_edge_ws_closes_total{code=\"1002\"}"), 9);
	assert_int_equal(metric(&t, "skein_edge_ws_closes_total{code=\"1009\"}"), 2);
	assert_int_equal(metric(&t, "skein_edge_ws_closes_total{code=\"1007\"}"), 1);
	close(good);
	WAIT_UNTIL(&t, edge_tp_conns(t.tp) == 0, 2000);
	t_stop(&t);
}

/* What the core does: a 400 verdict is delivered, then it closes the flow; over WS
 * that is a close frame 1002. A close after a good message is a 1000. */
static void test_ws_core_close(void **state)
{
	const char no_callid[] =
	    "OPTIONS sip:edge@127.0.0.1 SIP/2.0\r\n"
	    "Via: SIP/2.0/WS x.invalid;branch=z9hG4bK-nc\r\n"
	    "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCSeq: 1 OPTIONS\r\n\r\n";
	struct edge_tp_opts o;
	struct inbox in;
	char m[1024];
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = ws_opts(&t);
	t_start(&t, &o);
	t.close_on_error = true;
	fd = ws_client(&t, local_port(&t, EDGE_PROTO_WS), &in, NULL);
	send_frame(&t, fd, 0x80, 0x1, no_callid, strlen(no_callid));
	wait_close(&t, fd, &in, 1002);
	assert_int_equal(t.nrx, 1);
	assert_int_equal(t.rx[0].status, 400);
	assert_false(t.rx[0].has_msg);
	assert_false(edge_tp_flow_info(t.tp, t.rx[0].flow, NULL, NULL));
	close(fd);
	WAIT_UNTIL(&t, t.nclosed == 1, 2000);

	t.close_in_msg = true;
	fd = ws_client(&t, local_port(&t, EDGE_PROTO_WS), &in, NULL);
	reg(m, sizeof(m), 7);
	send_frame(&t, fd, 0x80, 0x1, m, strlen(m));
	send_frame(&t, fd, 0x80, 0x1, m, strlen(m)); /* not delivered after the close */
	wait_close(&t, fd, &in, 1000);
	t_run_for(&t, 50);
	assert_int_equal(t.nrx, 2);
	close(fd);
	WAIT_UNTIL(&t, t.nclosed == 2, 2000);
	t_stop(&t);
}

/* The upgrade must come whole within slow_timeout_ms; then the idle timeout. */
static void test_ws_timeouts(void **state)
{
	struct edge_tp_opts o;
	struct edge_tp_stats st;
	struct inbox in = {0};
	uint64_t t0;
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = ws_opts(&t);
	o.slow_timeout_ms = 200;
	o.idle_timeout_ms = 400;
	t_start(&t, &o);
	fd = tcp_client(local_port(&t, EDGE_PROTO_WS));
	put(&t, fd, "GET / HTTP/1.1\r\n", 16);
	WAIT_UNTIL(&t, poll_in(fd, &in) && in.eof, 2000);
	assert_int_equal(in.len, 0);
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.ws_rejected, 1);
	assert_int_equal(st.slow_closed, 1);
	close(fd);
	/* Upgraded, then silent: closed after the idle timeout, not the upgrade one. */
	uv_update_time(&t.loop);
	t0 = uv_now(&t.loop);
	fd = ws_client(&t, local_port(&t, EDGE_PROTO_WS), &in, NULL);
	WAIT_UNTIL(&t, t.nclosed == 2, 2000);
	uv_update_time(&t.loop);
	assert_true(uv_now(&t.loop) - t0 >= 390);
	close(fd);
	t_stop(&t);
}

/* Frames right behind the upgrade request, in the same segment: read after the 101. */
static void test_ws_pipelined(void **state)
{
	unsigned char b[2048];
	struct edge_tp_opts o;
	struct inbox in = {0};
	char req[2048], m[1024];
	size_t n;
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = ws_opts(&t);
	t_start(&t, &o);
	fd = tcp_client(local_port(&t, EDGE_PROTO_WS));
	upgrade_req(req, sizeof(req), "sip", NULL);
	n = strlen(req);
	reg(m, sizeof(m), 11);
	n += frame(b, 0x80, 0x1, true, m, strlen(m));
	memcpy(req + strlen(req), b, n - strlen(req));
	put(&t, fd, req, n);
	WAIT_UNTIL(&t, t.nrx == 1 && poll_in(fd, &in) && strstr((char *)in.buf, "\r\n\r\n"), 2000);
	assert_memory_equal(in.buf, "HTTP/1.1 101 ", 13);
	assert_string_equal(t.rx[0].data, m);
	close(fd);
	t_stop(&t);
}

/* The transport closes (daemon exit): each WebSocket client is told 1001. */
static void test_ws_going_away(void **state)
{
	struct edge_tp_opts o;
	struct inbox in;
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = ws_opts(&t);
	t_start(&t, &o);
	fd = ws_client(&t, local_port(&t, EDGE_PROTO_WS), &in, NULL);
	WAIT_UNTIL(&t, edge_tp_conns(t.tp) == 1, 2000);
	edge_tp_close(t.tp);
	wait_close(&t, fd, &in, 1001);
	assert_int_equal(metric(&t, "skein_edge_ws_closes_total{code=\"1001\"}"), 1);
	close(fd);
	t_stop(&t);
}

/* ---- WSS ---- */

struct wss_client {
	uint16_t port;
	char sent[1024];
	char status_line[64], accept[32], echo[1024];
	unsigned echo_op, close_code;
	atomic_int done; /* 1 when finished, whatever happened */
};

static bool ssl_read_full(SSL *ssl, void *buf, size_t n)
{
	size_t off = 0;

	while (off < n) {
		int k = SSL_read(ssl, (char *)buf + off, (int)(n - off));

		if (k <= 0)
			return false;
		off += (size_t)k;
	}
	return true;
}

/* Reads one unmasked server frame of < 126 bytes or a 16-bit length. */
static bool ssl_frame(SSL *ssl, unsigned *op, char *p, size_t size)
{
	unsigned char h[4];
	size_t len;

	if (!ssl_read_full(ssl, h, 2))
		return false;
	len = h[1] & 0x7F;
	if (len == 126) {
		if (!ssl_read_full(ssl, h + 2, 2))
			return false;
		len = (size_t)h[2] << 8 | h[3];
	}
	if (len >= size || !ssl_read_full(ssl, p, len))
		return false;
	p[len] = '\0';
	*op = h[0] & 0x0F;
	return true;
}

static void *wss_main(void *arg)
{
	struct wss_client *c = arg;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(c->port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {.tv_sec = 3};
	unsigned char b[1200], cl[2] = {0x03, 0xE8};
	char req[1024], head[1024], *p;
	size_t n = 0;
	SSL *ssl = NULL;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
		goto out;
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1)
		goto out;
	upgrade_req(req, sizeof(req), "sip", "Origin: https://app.example\r\n");
	SSL_write(ssl, req, (int)strlen(req));
	while (n < sizeof(head) - 1 && !strstr(head, "\r\n\r\n")) {
		if (SSL_read(ssl, head + n, 1) != 1)
			goto out;
		head[++n] = '\0';
	}
	snprintf(c->status_line, sizeof(c->status_line), "%.*s", (int)strcspn(head, "\r"), head);
	if ((p = strstr(head, "Sec-WebSocket-Accept: ")))
		snprintf(c->accept, sizeof(c->accept), "%.28s", p + 22);
	n = frame(b, 0x80, 0x1, true, c->sent, strlen(c->sent));
	SSL_write(ssl, b, (int)n);
	if (!ssl_frame(ssl, &c->echo_op, c->echo, sizeof(c->echo)))
		goto out;
	n = frame(b, 0x80, 0x8, true, cl, 2);
	SSL_write(ssl, b, (int)n);
	if (ssl_frame(ssl, &c->close_code, (char *)b, sizeof(b)) && c->close_code == 0x8)
		c->close_code = b[0] << 8 | b[1];
out:
	SSL_free(ssl);
	ERR_clear_error();
	close(fd);
	SSL_CTX_free(ctx);
	atomic_store(&c->done, 1);
	return NULL;
}

static void test_wss(void **state)
{
	struct edge_tp_opts o;
	struct wss_client c = {0};
	pthread_t th;
	struct t t;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = ws_opts(&t);
	o.ws = "";
	o.wss = "127.0.0.1:0";
	o.tls_cert = cert_file;
	o.tls_key = key_file;
	t_start(&t, &o);
	t.echo = true;
	assert_false(edge_tp_local(t.tp, EDGE_PROTO_WS, NULL));
	c.port = local_port(&t, EDGE_PROTO_WSS);
	reg(c.sent, sizeof(c.sent), 9);
	assert_int_equal(pthread_create(&th, NULL, wss_main, &c), 0);
	WAIT_UNTIL(&t, atomic_load(&c.done) && t.nclosed == 1, 5000);
	pthread_join(th, NULL);
	assert_string_equal(c.status_line, "HTTP/1.1 101 Switching Protocols");
	assert_string_equal(c.accept, sample_accept);
	assert_int_equal(t.nrx, 1);
	assert_int_equal(t.rx[0].proto, EDGE_PROTO_WSS);
	assert_true(t.rx[0].has_msg);
	assert_string_equal(t.rx[0].data, c.sent);
	assert_int_equal(c.echo_op, 0x1);
	assert_string_equal(c.echo, c.sent);
	assert_int_equal(c.close_code, 1000);
	assert_int_equal(metric(&t, "skein_edge_sip_rx_total{transport=\"wss\"}"), 1);
	t_stop(&t);
}

/* Every allocation on the way of an upgrade, a message and its echo fails in turn:
 * the connection is refused or closed, nothing leaks (sk_test.h), the loop closes. */
static void test_ws_out_of_memory(void **state)
{
	bool served = false;

	(void)state;
	for (unsigned long n = 1; n < 80 && !served; n++) {
		struct edge_tp_opts o;
		struct inbox in = {0};
		char req[1024], m[1024], got[2048];
		const char *e = NULL;
		unsigned op = 0;
		size_t k;
		struct t t;
		int fd;

		memset(&t, 0, sizeof(t));
		o = ws_opts(&t);
		t_start(&t, &o);
		t.echo = true;
		fd = tcp_client(local_port(&t, EDGE_PROTO_WS));
		sk_mem_fail_after(n);
		upgrade_req(req, sizeof(req), "sip", NULL);
		put(&t, fd, req, strlen(req));
		WAIT_UNTIL(&t,
			   poll_in(fd, &in) && ((e = strstr((char *)in.buf, "\r\n\r\n")) || in.eof),
			   2000);
		if (e && !strncmp((char *)in.buf, "HTTP/1.1 101 ", 13)) {
			consume(&in, (size_t)(e + 4 - (char *)in.buf));
			reg(m, sizeof(m), (int)n);
			send_frame(&t, fd, 0x80, 0x1, m, strlen(m));
			WAIT_UNTIL(&t, (poll_in(fd, &in), have_frame(&in) || in.eof), 2000);
			if (have_frame(&in) && take_frame(&in, &op, got, &k))
				served = op == 0x1 && !strcmp(got, m);
		}
		sk_mem_fail_after(0);
		close(fd);
		t_stop(&t);
	}
	assert_true(served);
}

static void test_ws_alloc_errors(void **state)
{
	struct edge_tp_opts o;
	struct edge_tp *tp = NULL;
	struct t t;

	(void)state;
	memset(&t, 0, sizeof(t));
	t_init(&t);
	o = ws_opts(&t);
	o.ws = "";
	o.wss = "127.0.0.1:0"; /* no certificate */
	assert_int_equal(edge_tp_alloc(&tp, &t.loop, &o), SK_EINVAL);
	o.wss = "";
	o.ws = "nowhere:80";
	assert_int_equal(edge_tp_alloc(&tp, &t.loop, &o), SK_EINVAL);
	assert_null(tp);
	t_done(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_ws_units),
	    SK_TEST(test_ws_alloc_errors),
	    SK_TEST(test_ws_roundtrip),
	    SK_TEST(test_ws_fragments_ping_close),
	    SK_TEST(test_ws_bad_upgrades),
	    SK_TEST(test_ws_bad_frames),
	    SK_TEST(test_ws_core_close),
	    SK_TEST(test_ws_timeouts),
	    SK_TEST(test_ws_going_away),
	    SK_TEST(test_ws_pipelined),
	    SK_TEST(test_wss),
	    SK_TEST(test_ws_out_of_memory),
	};
	int rc;

	if (tp_test_make_cert("ws", cert_file, sizeof(cert_file), key_file, sizeof(key_file))) {
		fprintf(stderr, "cannot make a test certificate with the openssl CLI\n");
		return 1;
	}
	rc = cmocka_run_group_tests_name("edge_ws", tests, NULL, NULL);
	unlink(cert_file);
	unlink(key_file);
	return rc;
}
