/* Unit tests for the edge's transports (services/edge/transport.h) on a real loop over
 * loopback: plain sockets, a second transport and an OpenSSL client in a thread talk to
 * the UDP, TCP and TLS listeners. Every wait is bounded (sk_test_loop.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "tp_test.h"

#define MAXREC 16

struct rec {
	struct edge_tp *tp;
	enum edge_proto proto;
	struct edge_addr src, local;
	uint64_t flow;
	int status;
	bool has_msg;
	char data[1024];
};

struct t {
	uv_loop_t loop;
	uv_timer_t guard;
	bool expired;
	uv_timer_t tick; /* keeps the loop turning while a test polls a plain socket */
	struct edge_tp *tp, *cli;
	struct rec rx[MAXREC];
	int nrx;
	uint64_t err_cookie[MAXREC];
	int err_code[MAXREC];
	int nerr;
	uint64_t closed[MAXREC];
	int nclosed;
	bool close_in_msg, close_on_error;
};

#include "sk_test_loop.h"

static char cert_file[512], key_file[512];

static const char *options(char *buf, size_t size, const char *via, int n)
{
	return tp_test_options(buf, size, via, n);
}

/* ---- callbacks ---- */

static void on_msg(struct edge_tp *tp, const struct edge_rx *rx, msg_t *msg, void *arg)
{
	struct t *t = arg;
	struct rec *r = &t->rx[t->nrx < MAXREC ? t->nrx : MAXREC - 1];

	r->tp = tp;
	r->proto = rx->proto;
	r->src = rx->src;
	r->local = rx->local;
	r->flow = rx->flow;
	r->status = rx->verdict.status;
	r->has_msg = msg != NULL;
	snprintf(r->data, sizeof(r->data), "%.*s", (int)rx->len, rx->data);
	assert_true(rx->arrived_ns > 0);
	t->nrx++;
	if (msg)
		msg_destroy(msg);
	if (rx->flow && (t->close_in_msg || (t->close_on_error && rx->verdict.status)))
		edge_tp_flow_close(tp, rx->flow);
}

static void on_send_error(struct edge_tp *tp, uint64_t cookie, int err, void *arg)
{
	struct t *t = arg;

	(void)tp;
	if (t->nerr < MAXREC) {
		t->err_cookie[t->nerr] = cookie;
		t->err_code[t->nerr] = err;
	}
	t->nerr++;
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

static struct edge_tp_opts base_opts(struct t *t)
{
	struct edge_tp_opts o = {
	    .udp = "127.0.0.1:0",
	    .tcp = "127.0.0.1:0",
	    .on_msg = on_msg,
	    .on_send_error = on_send_error,
	    .on_flow_closed = on_flow_closed,
	    .arg = t,
	};
	return o;
}

static void t_start(struct t *t, const struct edge_tp_opts *o)
{
	t_init(t);
	uv_timer_init(&t->loop, &t->tick);
	uv_timer_start(&t->tick, tick_cb, 5, 5);
	assert_int_equal(edge_tp_alloc(&t->tp, &t->loop, o), 0);
}

static void t_stop(struct t *t)
{
	edge_tp_close(t->tp);
	t->tp = sk_deref(t->tp);
	edge_tp_close(t->cli);
	t->cli = sk_deref(t->cli);
	uv_close((uv_handle_t *)&t->tick, NULL);
	t_done(t);
}

static uint16_t local_port(const struct t *t, enum edge_proto p)
{
	return tp_test_port(t->tp, p);
}

static int sock(int type, uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, type, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	if (port)
		*port = ntohs(a.sin_port);
	return fd;
}

static struct sockaddr_in loopback(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	return a;
}

static struct edge_addr edge_loopback(uint16_t port)
{
	struct edge_addr a;
	char s[32];

	snprintf(s, sizeof(s), "127.0.0.1:%u", port);
	assert_int_equal(edge_addr_parse(&a, s), 0);
	return a;
}

static int tcp_client(uint16_t port, uint16_t *myport)
{
	return tp_test_tcp_client(port, myport);
}

static void put(int fd, const char *s, size_t n)
{
	tp_test_put(NULL, fd, s, n);
}

/* ---- UDP ---- */

static void test_udp_roundtrip(void **state)
{
	struct sk_metrics *metrics;
	struct edge_tp_opts o;
	struct edge_tp_stats st;
	struct inbox in = {0};
	struct sockaddr_in to;
	struct sk_buf b;
	char m[512];
	uint16_t port;
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	assert_int_equal(sk_metrics_alloc(&metrics), 0);
	o = base_opts(&t);
	o.metrics = metrics;
	t_start(&t, &o);
	to = loopback(local_port(&t, EDGE_PROTO_UDP));
	fd = sock(SOCK_DGRAM, &port);

	options(m, sizeof(m), "UDP", 1);
	sendto(fd, m, strlen(m), 0, (struct sockaddr *)&to, sizeof(to));
	WAIT_UNTIL(&t, t.nrx == 1, 2000);
	assert_int_equal(t.rx[0].proto, EDGE_PROTO_UDP);
	assert_int_equal(t.rx[0].status, 0);
	assert_true(t.rx[0].has_msg);
	assert_int_equal(t.rx[0].flow, 0);
	assert_int_equal(edge_addr_port(&t.rx[0].src), port);
	assert_int_equal(edge_addr_port(&t.rx[0].local), local_port(&t, EDGE_PROTO_UDP));
	assert_string_equal(t.rx[0].data, m);

	/* No Call-ID: 400, no message. */
	snprintf(m, sizeof(m),
		 "OPTIONS sip:edge@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP "
		 "127.0.0.1;branch=z9hG4bK-2\r\nFrom: <sip:a@b>;tag=1\r\n"
		 "To: <sip:c@d>\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
	sendto(fd, m, strlen(m), 0, (struct sockaddr *)&to, sizeof(to));
	/* A CRLF keep-alive and junk: counted, never delivered. */
	sendto(fd, "\r\n\r\n", 4, 0, (struct sockaddr *)&to, sizeof(to));
	sendto(fd, "\x7f junk", 6, 0, (struct sockaddr *)&to, sizeof(to));
	WAIT_UNTIL(&t, t.nrx == 2, 2000);
	assert_int_equal(t.rx[1].status, 400);
	assert_false(t.rx[1].has_msg);
	edge_tp_stats(t.tp, &st);
	WAIT_UNTIL(&t, (edge_tp_stats(t.tp, &st), st.keepalives == 1 && st.rx_dropped == 1), 2000);
	assert_int_equal(t.nrx, 2);
	assert_int_equal(st.rx_msgs[EDGE_PROTO_UDP], 2);

	/* Back to the source. */
	assert_int_equal(
	    edge_tp_send(t.tp, EDGE_PROTO_UDP, &t.rx[0].src, 0, NULL, "SIP/2.0 200", 11, 7), 0);
	WAIT_UNTIL(&t, poll_in(fd, &in), 2000);
	assert_string_equal((const char *)in.buf, "SIP/2.0 200");
	assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_UDP, &t.rx[0].src, 0, NULL, m, 70000, 0),
			 SK_EMSGSIZE);
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.tx_msgs[EDGE_PROTO_UDP], 1);
	assert_int_equal(t.nerr, 0);
	sk_buf_init(&b);
	assert_int_equal(sk_metrics_print(metrics, &b), 0);
	assert_non_null(strstr(b.data, "skein_edge_sip_rx_total{transport=\"udp\"} 2\n"));
	assert_non_null(strstr(b.data, "skein_edge_sip_tx_total{transport=\"udp\"} 1\n"));
	assert_non_null(strstr(b.data, "skein_edge_keepalives_total 1\n"));
	assert_non_null(strstr(b.data, "skein_edge_rx_dropped_total 1\n"));
	sk_buf_release(&b);
	close(fd);
	t_stop(&t);
	sk_deref(metrics);
}

/* Sends leave in batches (tp_udp.c): in order, one system call for many datagrams; a
 * datagram the kernel refuses (port 0: EINVAL) is reported with its cookie and the
 * others still go; closing the transport sends what is held. */
struct dgrams {
	char d[48][8];
	int n;
};

/* Read what has arrived (idempotent: WAIT_UNTIL evaluates its condition twice). */
static int drain(int fd, struct dgrams *g)
{
	char buf[64];
	ssize_t n;

	while (g->n < 48 && (n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) >= 0)
		snprintf(g->d[g->n++], sizeof(g->d[0]), "%.*s", (int)n, buf);
	return g->n;
}

static void test_udp_batch(void **state)
{
	struct sk_metrics *metrics;
	struct edge_tp_opts o;
	struct edge_tp_stats st;
	struct edge_addr dst, bad;
	struct sockaddr_in a;
	struct dgrams g = {.n = 0};
	char m[32];
	int fd;
	uint16_t port;
	struct t t;
	struct sk_buf b;

	(void)state;
	memset(&t, 0, sizeof(t));
	assert_int_equal(sk_metrics_alloc(&metrics), 0);
	o = base_opts(&t);
	o.metrics = metrics;
	t_start(&t, &o);
	fd = sock(SOCK_DGRAM, &port);
	a = loopback(port);
	memset(&dst, 0, sizeof(dst));
	memcpy(&dst.u.sa, &a, sizeof(a));
	a = loopback(0);
	memset(&bad, 0, sizeof(bad));
	memcpy(&bad.u.sa, &a, sizeof(a));

	/* 40 datagrams and a bad one, all before the loop turns: more than one batch */
	for (int i = 0; i < 40; i++) {
		snprintf(m, sizeof(m), "d%02d", i);
		assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_UDP, &dst, 0, NULL, m, strlen(m),
					      (uint64_t)i + 1),
				 0);
		if (i == 5)
			assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_UDP, &bad, 0, NULL, "x", 1, 99), 0);
	}
	/* The 33rd send found the batch full and sent it: two calls, 6 datagrams before
	 * the bad one, 25 after it. The other 9 wait for the loop. */
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.udp_send_calls, 2);
	assert_int_equal(t.nerr, 1); /* reported at once: the batch was sent at once */
	assert_int_equal(t.err_cookie[0], 99);
	assert_int_equal(t.err_code[0], UV_EINVAL);
	WAIT_UNTIL(&t, drain(fd, &g) >= 40, 2000);
	for (int i = 0; i < 40; i++) {
		snprintf(m, sizeof(m), "d%02d", i);
		assert_string_equal(g.d[i], m);
	}
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.tx_msgs[EDGE_PROTO_UDP], 41);
	assert_int_equal(st.udp_send_calls, 3); /* the last 9 in one */
	sk_buf_init(&b);
	assert_int_equal(sk_metrics_print(metrics, &b), 0);
	snprintf(m, sizeof(m), "%" PRIu64 "\n", st.udp_send_calls);
	assert_non_null(strstr(b.data, "skein_edge_udp_send_calls_total "));
	assert_non_null(strstr(strstr(b.data, "skein_edge_udp_send_calls_total "), m));
	sk_buf_release(&b);

	/* Held when the transport closes: sent, not lost. */
	assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_UDP, &dst, 0, NULL, "last", 4, 0), 0);
	edge_tp_close(t.tp);
	WAIT_UNTIL(&t, drain(fd, &g) >= 41, 2000);
	assert_string_equal(g.d[40], "last");
	assert_int_equal(t.nerr, 1);
	close(fd);
	t_stop(&t);
	sk_deref(metrics);
}

static void test_udp_stun(void **state)
{
	unsigned char rq[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1,  2,
				3,    4,    5,	  6,	7,    8,    9,	  10,	11, 12};
	struct edge_tp_opts o;
	struct edge_tp_stats st;
	struct inbox in = {0};
	struct sockaddr_in to;
	const unsigned char *r;
	uint16_t port;
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	t_start(&t, &o);
	to = loopback(local_port(&t, EDGE_PROTO_UDP));
	fd = sock(SOCK_DGRAM, &port);
	sendto(fd, rq, sizeof(rq), 0, (struct sockaddr *)&to, sizeof(to));
	WAIT_UNTIL(&t, poll_in(fd, &in), 2000);
	r = (const unsigned char *)in.buf;
	/* RFC 5389 §6: Binding success, same cookie and transaction id, one attribute. */
	assert_int_equal(in.len, 32);
	assert_int_equal(r[0] << 8 | r[1], 0x0101);
	assert_int_equal(r[2] << 8 | r[3], 12);
	assert_memory_equal(r + 4, rq + 4, 16);
	/* §15.2 XOR-MAPPED-ADDRESS: IPv4, port ^ 0x2112, address ^ 0x2112A442. */
	assert_int_equal(r[20] << 8 | r[21], 0x0020);
	assert_int_equal(r[22] << 8 | r[23], 8);
	assert_int_equal(r[25], 0x01);
	assert_int_equal((r[26] << 8 | r[27]) ^ 0x2112, port);
	assert_int_equal(r[28] ^ 0x21, 127);
	assert_int_equal(r[29] ^ 0x12, 0);
	assert_int_equal(r[30] ^ 0xA4, 0);
	assert_int_equal(r[31] ^ 0x42, 1);
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.keepalives, 1);
	assert_int_equal(t.nrx, 0);
	close(fd);
	t_stop(&t);
}

static void test_udp_stun_ipv6(void **state)
{
	unsigned char rq[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 9, 8,
				7,    6,    5,	  4,	3,    2,    1,	  0,	1, 2};
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	socklen_t alen = sizeof(a);
	struct edge_tp_opts o;
	struct inbox in = {0};
	struct edge_addr to;
	const unsigned char *r;
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	o.udp = "[::1]:0";
	o.tcp = "";
	t_init(&t);
	uv_timer_init(&t.loop, &t.tick);
	uv_timer_start(&t.tick, tick_cb, 5, 5);
	if (edge_tp_alloc(&t.tp, &t.loop, &o)) {
		t_stop(&t);
		skip(); /* no IPv6 loopback here */
	}
	assert_true(edge_tp_local(t.tp, EDGE_PROTO_UDP, &to));
	assert_int_equal(to.u.sa.sa_family, AF_INET6);
	fd = socket(AF_INET6, SOCK_DGRAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	sendto(fd, rq, sizeof(rq), 0, &to.u.sa, sizeof(to.u.in6));
	WAIT_UNTIL(&t, poll_in(fd, &in), 2000);
	r = (const unsigned char *)in.buf;
	assert_int_equal(in.len, 44);
	assert_int_equal(r[25], 0x02);
	assert_int_equal((r[26] << 8 | r[27]) ^ 0x2112, ntohs(a.sin6_port));
	/* RFC 5389 §15.2: XOR with the magic cookie and the transaction id. */
	for (int i = 0; i < 16; i++)
		assert_int_equal(r[28 + i] ^ rq[4 + i], a.sin6_addr.s6_addr[i]);
	close(fd);
	t_stop(&t);
}

/* ---- TCP ---- */

static void test_tcp_pipelined(void **state)
{
	struct edge_tp_opts o;
	struct inbox in = {0};
	struct edge_addr remote;
	enum edge_proto p;
	char m[1200], m2[600];
	uint16_t port;
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	t_start(&t, &o);
	fd = tcp_client(local_port(&t, EDGE_PROTO_TCP), &port);
	options(m, sizeof(m), "TCP", 1);
	options(m2, sizeof(m2), "TCP", 2);
	strcat(m, m2);
	put(fd, m, strlen(m));
	WAIT_UNTIL(&t, t.nrx == 2, 2000);
	assert_int_equal(t.rx[0].proto, EDGE_PROTO_TCP);
	assert_true(t.rx[0].has_msg && t.rx[1].has_msg);
	assert_true(strstr(t.rx[0].data, "Call-ID: c1@") && !strstr(t.rx[0].data, "c2@"));
	assert_string_equal(t.rx[1].data, m2);
	assert_true(t.rx[0].flow != 0);
	assert_int_equal(t.rx[0].flow, t.rx[1].flow);
	assert_int_equal(edge_addr_port(&t.rx[0].src), port);

	/* The flow by id, and a response down it. */
	assert_true(edge_tp_flow_info(t.tp, t.rx[0].flow, &p, &remote));
	assert_int_equal(p, EDGE_PROTO_TCP);
	assert_true(edge_addr_eq(&remote, &t.rx[0].src));
	assert_false(edge_tp_flow_info(t.tp, t.rx[0].flow + 1000, NULL, NULL));
	assert_int_equal(edge_tp_conns(t.tp), 1);
	assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_TCP, NULL, t.rx[0].flow, NULL, "pong", 4, 0),
			 0);
	WAIT_UNTIL(&t, poll_in(fd, &in), 2000);
	assert_string_equal((const char *)in.buf, "pong");

	/* The peer goes: the flow is reported closed and its id is dead. */
	close(fd);
	WAIT_UNTIL(&t, t.nclosed == 1, 2000);
	assert_int_equal(t.closed[0], t.rx[0].flow);
	assert_false(edge_tp_flow_info(t.tp, t.rx[0].flow, NULL, NULL));
	assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_TCP, NULL, t.rx[0].flow, NULL, "x", 1, 9),
			 SK_ENOTCONN);
	assert_int_equal(edge_tp_conns(t.tp), 0);
	t_stop(&t);
}

static void test_tcp_byte_by_byte(void **state)
{
	struct edge_tp_opts o;
	char m[600];
	struct t t;
	size_t n;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	t_start(&t, &o);
	fd = tcp_client(local_port(&t, EDGE_PROTO_TCP), NULL);
	/* Leading CRLF (RFC 3261 §7.5), then the message one byte per segment. */
	snprintf(m, sizeof(m), "\r\n");
	options(m + 2, sizeof(m) - 2, "TCP", 3);
	n = strlen(m);
	for (size_t i = 0; i < n; i++) {
		put(fd, m + i, 1);
		uv_run(&t.loop, UV_RUN_NOWAIT);
		uv_run(&t.loop, UV_RUN_NOWAIT);
		if (i + 1 < n)
			assert_int_equal(t.nrx, 0);
	}
	WAIT_UNTIL(&t, t.nrx == 1, 2000);
	assert_int_equal(t.rx[0].status, 0);
	assert_true(t.rx[0].has_msg);
	assert_string_equal(t.rx[0].data, m + 2);
	/* A body framed by the compact form of Content-Length (RFC 3261 §7.3.3). */
	snprintf(m, sizeof(m),
		 "MESSAGE sip:b@example.com SIP/2.0\r\n"
		 "Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK-b\r\n"
		 "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
		 "Call-ID: body@test\r\nCSeq: 2 MESSAGE\r\n"
		 "Content-Type: text/plain\r\nl: 5\r\n\r\nhello");
	n = strlen(m);
	for (size_t i = 0; i < n; i++) {
		put(fd, m + i, 1);
		uv_run(&t.loop, UV_RUN_NOWAIT);
		uv_run(&t.loop, UV_RUN_NOWAIT);
		if (i + 1 < n)
			assert_int_equal(t.nrx, 1);
	}
	WAIT_UNTIL(&t, t.nrx == 2, 2000);
	assert_int_equal(t.rx[1].status, 0);
	assert_string_equal(t.rx[1].data, m);
	close(fd);
	t_stop(&t);
}

/* A body larger than the first receive buffer; then the listener stops accepting. */
static void test_tcp_large_and_drain(void **state)
{
	enum { BODY = 30000 };
	struct sockaddr_in a;
	struct edge_tp_opts o;
	char *m = malloc(BODY + 1024);
	uint16_t port;
	struct t t;
	size_t n;
	int fd, fd2;

	(void)state;
	assert_non_null(m);
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	t_start(&t, &o);
	port = local_port(&t, EDGE_PROTO_TCP);
	fd = tcp_client(port, NULL);
	n = (size_t)snprintf(m, 1024,
			     "MESSAGE sip:b@example.com SIP/2.0\r\n"
			     "Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK-L\r\n"
			     "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
			     "Call-ID: large@test\r\nCSeq: 1 MESSAGE\r\n"
			     "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n",
			     BODY);
	memset(m + n, 'x', BODY);
	n += BODY;
	for (size_t off = 0; off < n;) {
		ssize_t k = send(fd, m + off, n - off, MSG_NOSIGNAL);

		if (k > 0)
			off += (size_t)k;
		else
			uv_run(&t.loop, UV_RUN_NOWAIT);
	}
	WAIT_UNTIL(&t, t.nrx == 1, 2000);
	assert_int_equal(t.rx[0].status, 0);
	assert_true(t.rx[0].has_msg);
	/* Drain: no new connections, the open one stays. */
	edge_tp_stop_accepting(t.tp);
	uv_run(&t.loop, UV_RUN_NOWAIT);
	a = loopback(port);
	fd2 = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd2, (struct sockaddr *)&a, sizeof(a)), -1);
	assert_int_equal(errno, ECONNREFUSED);
	assert_int_equal(edge_tp_conns(t.tp), 1);
	close(fd2);
	close(fd);
	free(m);
	t_stop(&t);
}

static void test_tcp_keepalive(void **state)
{
	struct edge_tp_opts o;
	struct edge_tp_stats st;
	struct inbox in = {0};
	char m[600];
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	t_start(&t, &o);
	fd = tcp_client(local_port(&t, EDGE_PROTO_TCP), NULL);
	/* RFC 5626 §4.4.1: ping CRLFCRLF, pong CRLF. */
	put(fd, "\r\n\r\n", 4);
	WAIT_UNTIL(&t, poll_in(fd, &in), 2000);
	assert_string_equal((const char *)in.buf, "\r\n");
	/* A lone CRLF before a message is skipped, no pong. */
	snprintf(m, sizeof(m), "\r\n");
	options(m + 2, sizeof(m) - 2, "TCP", 4);
	put(fd, m, strlen(m));
	WAIT_UNTIL(&t, t.nrx == 1, 2000);
	assert_true(t.rx[0].has_msg);
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.keepalives, 1);
	in.len = 0;
	assert_false(poll_in(fd, &in));
	close(fd);
	t_stop(&t);
}

static void test_tcp_oversize(void **state)
{
	const char head[] = "INVITE sip:b@example.com SIP/2.0\r\n"
			    "Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK-5\r\n"
			    "Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\n"
			    "To: <sip:b@example.com>\r\nCall-ID: big@test\r\nCSeq: 1 INVITE\r\n"
			    "Content-Length: 100000\r\n\r\n";
	struct edge_tp_opts o;
	struct inbox in = {0};
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	t_start(&t, &o);
	t.close_on_error = true; /* what the core does after answering */
	fd = tcp_client(local_port(&t, EDGE_PROTO_TCP), NULL);
	put(fd, head, strlen(head));
	WAIT_UNTIL(&t, t.nrx == 1, 2000);
	assert_int_equal(t.rx[0].status, 513);
	assert_false(t.rx[0].has_msg);
	/* Lingering close: FIN first, the flow goes when the peer closes too. */
	WAIT_UNTIL(&t, poll_in(fd, &in) && in.eof, 2000);
	assert_int_equal(t.nclosed, 0);
	assert_false(edge_tp_flow_info(t.tp, t.rx[0].flow, NULL, NULL));
	close(fd);
	WAIT_UNTIL(&t, t.nclosed == 1, 2000);
	assert_int_equal(edge_tp_conns(t.tp), 0);
	t_stop(&t);
}

static void test_tcp_close_in_callback(void **state)
{
	struct edge_tp_opts o;
	struct inbox in = {0};
	char m[1200], m2[600];
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	t_start(&t, &o);
	t.close_in_msg = true;
	fd = tcp_client(local_port(&t, EDGE_PROTO_TCP), NULL);
	options(m, sizeof(m), "TCP", 5);
	options(m2, sizeof(m2), "TCP", 6);
	strcat(m, m2);
	put(fd, m, strlen(m));
	WAIT_UNTIL(&t, poll_in(fd, &in) && in.eof, 2000);
	/* The second message in the same read is not delivered after the close. */
	assert_int_equal(t.nrx, 1);
	close(fd);
	WAIT_UNTIL(&t, t.nclosed == 1, 2000);
	assert_int_equal(t.closed[0], t.rx[0].flow);
	assert_int_equal(t.nrx, 1);
	t_stop(&t);
}

static void test_tcp_outbound_reuse(void **state)
{
	struct edge_tp_opts o;
	struct edge_tp_stats st;
	struct inbox in = {0};
	struct edge_addr dst;
	char m[600], m2[600];
	uint16_t port;
	struct t t;
	int lfd, cfd = -1;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	o.tcp = ""; /* outbound needs no listener */
	t_start(&t, &o);
	lfd = sock(SOCK_STREAM, &port);
	assert_int_equal(listen(lfd, 8), 0);
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	dst = edge_loopback(port);
	options(m, sizeof(m), "TCP", 7);
	options(m2, sizeof(m2), "TCP", 8);
	/* Queued until the connection is up. */
	assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_TCP, &dst, 0, NULL, m, strlen(m), 1), 0);
	assert_int_equal(edge_tp_conns(t.tp), 1);
	WAIT_UNTIL(&t,
		   (cfd >= 0 || (cfd = accept(lfd, NULL, NULL)) >= 0) && poll_in(cfd, &in) &&
		       in.len == strlen(m),
		   2000);
	assert_string_equal((const char *)in.buf, m);
	/* The same connection again. */
	in.len = 0;
	assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_TCP, &dst, 0, NULL, m2, strlen(m2), 2), 0);
	WAIT_UNTIL(&t, poll_in(cfd, &in) && in.len == strlen(m2), 2000);
	assert_string_equal((const char *)in.buf, m2);
	assert_true(accept(lfd, NULL, NULL) < 0 && errno == EAGAIN);
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.conns_total, 1);
	assert_int_equal(st.tx_msgs[EDGE_PROTO_TCP], 2);
	/* The remote answers on the connection: it arrives on the outbound flow. */
	options(m, sizeof(m), "TCP", 9);
	put(cfd, m, strlen(m));
	WAIT_UNTIL(&t, t.nrx == 1, 2000);
	assert_true(edge_addr_eq(&t.rx[0].src, &dst));
	assert_int_equal(t.nerr, 0);
	close(cfd);
	close(lfd);
	t_stop(&t);
}

static void test_tcp_connect_refused(void **state)
{
	struct edge_tp_opts o;
	struct edge_addr dst;
	uint16_t port;
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	t_start(&t, &o);
	fd = sock(SOCK_STREAM, &port); /* bound, not listening: the port refuses */
	dst = edge_loopback(port);
	assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_TCP, &dst, 0, NULL, "a", 1, 42), 0);
	assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_TCP, &dst, 0, NULL, "b", 1, 0), 0);
	assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_TCP, &dst, 0, NULL, "c", 1, 43), 0);
	/* Never from inside edge_tp_send. */
	assert_int_equal(t.nerr, 0);
	WAIT_UNTIL(&t, t.nclosed == 1, 2000);
	assert_int_equal(t.nerr, 2); /* cookie 0 is not reported */
	assert_int_equal(t.err_cookie[0], 42);
	assert_int_equal(t.err_code[0], SK_ECONNREFUSED);
	assert_int_equal(t.err_cookie[1], 43);
	assert_int_equal(edge_tp_conns(t.tp), 0);
	close(fd);
	t_stop(&t);
}

static void test_tcp_idle_timeout(void **state)
{
	struct edge_tp_opts o;
	struct inbox in = {0};
	uint64_t t0;
	struct t t;
	int fd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	o.idle_timeout_ms = 200;
	t_start(&t, &o);
	fd = tcp_client(local_port(&t, EDGE_PROTO_TCP), NULL);
	WAIT_UNTIL(&t, edge_tp_conns(t.tp) == 1, 2000);
	uv_update_time(&t.loop);
	t0 = uv_now(&t.loop);
	/* Traffic after 100 ms pushes the deadline. */
	t_run_for(&t, 100);
	put(fd, "\r\n", 2);
	WAIT_UNTIL(&t, t.nclosed == 1, 2000);
	uv_update_time(&t.loop);
	assert_true(uv_now(&t.loop) - t0 >= 290);
	WAIT_UNTIL(&t, poll_in(fd, &in) && in.eof, 2000);
	assert_int_equal(edge_tp_conns(t.tp), 0);
	close(fd);
	t_stop(&t);
}

/* Over max_conns a connection is shed (transport.h, Limits): its first request
 * reaches on_msg as a 503 verdict without a message; the core closes it after the
 * answer. The shed one counts in edge_tp_conns but not against the cap. */
static void test_tcp_max_conns(void **state)
{
	struct edge_tp_opts o;
	struct edge_tp_stats st;
	struct inbox in = {0};
	char m[600];
	struct t t;
	int fd1, fd2;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	o.max_conns = 1;
	t_start(&t, &o);
	t.close_on_error = true;
	fd1 = tcp_client(local_port(&t, EDGE_PROTO_TCP), NULL);
	WAIT_UNTIL(&t, edge_tp_conns(t.tp) == 1, 2000);
	fd2 = tcp_client(local_port(&t, EDGE_PROTO_TCP), NULL);
	WAIT_UNTIL(&t, edge_tp_conns(t.tp) == 2, 2000);
	options(m, sizeof(m), "TCP", 30);
	put(fd2, m, strlen(m));
	WAIT_UNTIL(&t, t.nrx == 1, 2000);
	assert_false(t.rx[0].has_msg);
	assert_int_equal(t.rx[0].status, 503);
	assert_string_equal(t.rx[0].data, m);
	WAIT_UNTIL(&t, poll_in(fd2, &in) && in.eof, 2000);
	close(fd2); /* the lingering close ends with the peer's */
	WAIT_UNTIL(&t, t.nclosed == 1, 2000);
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.conns_shed, 1);
	assert_int_equal(st.conns_refused, 0);
	assert_int_equal(edge_tp_conns(t.tp), 1);
	/* The first connection was never affected. */
	options(m, sizeof(m), "TCP", 31);
	put(fd1, m, strlen(m));
	WAIT_UNTIL(&t, t.nrx == 2, 2000);
	assert_true(t.rx[1].has_msg);
	close(fd1);
	t_stop(&t);
}

/* ---- TLS ---- */

static struct edge_tp_opts tls_opts(struct t *t)
{
	struct edge_tp_opts o = base_opts(t);

	o.udp = "";
	o.tcp = "";
	o.tls = "127.0.0.1:0";
	o.tls_cert = cert_file;
	o.tls_key = key_file;
	return o;
}

static void start_client(struct t *t, const char *ca)
{
	struct edge_tp_opts o = base_opts(t);

	o.udp = o.tcp = "";
	o.tls_ca = ca;
	assert_int_equal(edge_tp_alloc(&t->cli, &t->loop, &o), 0);
}

static void test_tls_roundtrip(void **state)
{
	struct edge_tp_opts o;
	struct edge_tp_stats st;
	struct edge_addr dst;
	char m[600];
	struct t t;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = tls_opts(&t);
	t_start(&t, &o);
	start_client(&t, NULL);
	assert_true(edge_tp_local(t.tp, EDGE_PROTO_TLS, &dst));
	assert_false(edge_tp_local(t.tp, EDGE_PROTO_TCP, NULL));
	options(m, sizeof(m), "TLS", 10);
	/* tls_name NULL: no verification (the certificate is self-signed). */
	assert_int_equal(edge_tp_send(t.cli, EDGE_PROTO_TLS, &dst, 0, NULL, m, strlen(m), 1), 0);
	WAIT_UNTIL(&t, t.nrx == 1, 3000);
	assert_ptr_equal(t.rx[0].tp, t.tp);
	assert_int_equal(t.rx[0].proto, EDGE_PROTO_TLS);
	assert_true(t.rx[0].has_msg);
	assert_string_equal(t.rx[0].data, m);
	/* Answer down the inbound flow; it arrives on the client's outbound flow. */
	options(m, sizeof(m), "TLS", 11);
	assert_int_equal(
	    edge_tp_send(t.tp, EDGE_PROTO_TLS, NULL, t.rx[0].flow, NULL, m, strlen(m), 0), 0);
	WAIT_UNTIL(&t, t.nrx == 2, 3000);
	assert_ptr_equal(t.rx[1].tp, t.cli);
	assert_string_equal(t.rx[1].data, m);
	assert_true(edge_addr_eq(&t.rx[1].src, &dst));
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.tls_handshake_failures, 0);
	assert_int_equal(t.nerr, 0);
	t_stop(&t);
}

static void test_tls_verify(void **state)
{
	struct edge_tp_opts o;
	struct edge_tp_stats st;
	struct edge_addr dst;
	char m[600];
	struct t t;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = tls_opts(&t);
	t_start(&t, &o);
	start_client(&t, cert_file); /* the self-signed certificate is its own CA */
	assert_true(edge_tp_local(t.tp, EDGE_PROTO_TLS, &dst));
	options(m, sizeof(m), "TLS", 12);
	/* RFC 5922: the right name passes... */
	assert_int_equal(edge_tp_send(t.cli, EDGE_PROTO_TLS, &dst, 0, "localhost", m, strlen(m), 1),
			 0);
	WAIT_UNTIL(&t, t.nrx == 1, 3000);
	/* ...a wrong one fails the handshake on a new connection, the send is reported. */
	assert_int_equal(
	    edge_tp_send(t.cli, EDGE_PROTO_TLS, &dst, 0, "sip.example.org", m, strlen(m), 77), 0);
	WAIT_UNTIL(&t, t.nerr == 1, 3000);
	assert_int_equal(t.err_cookie[0], 77);
	assert_int_equal(t.err_code[0], SK_ETLS);
	edge_tp_stats(t.cli, &st);
	assert_int_equal(st.tls_handshake_failures, 1);
	assert_int_equal(st.conns_total, 2);
	assert_int_equal(t.nrx, 1);
	t_stop(&t);
}

struct old_client {
	uint16_t port;
	atomic_int done; /* 1: handshake failed as it should, 2: it succeeded */
};

static void *old_client_main(void *arg)
{
	struct old_client *c = arg;
	struct sockaddr_in a = loopback(c->port);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok = 0;
	SSL *ssl;

	/* TLS 1.1 needs security level 0 in OpenSSL 3 to be offered at all. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
	SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		ok = SSL_connect(ssl) == 1;
		SSL_free(ssl);
	}
	ERR_clear_error();
	close(fd);
	SSL_CTX_free(ctx);
	atomic_store(&c->done, ok ? 2 : 1);
	return NULL;
}

static void test_tls11_refused(void **state)
{
	struct edge_tp_opts o;
	struct edge_tp_stats st;
	struct old_client c = {0};
	pthread_t th;
	struct t t;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = tls_opts(&t);
	t_start(&t, &o);
	c.port = local_port(&t, EDGE_PROTO_TLS);
	assert_int_equal(pthread_create(&th, NULL, old_client_main, &c), 0);
	WAIT_UNTIL(&t, atomic_load(&c.done) != 0 && t.nclosed == 1, 5000);
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&c.done), 1);
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.tls_handshake_failures, 1);
	assert_int_equal(t.nrx, 0);
	t_stop(&t);
}

static void test_tls_timeouts(void **state)
{
	struct edge_tp_opts o;
	struct edge_tp_stats st;
	struct inbox in = {0};
	struct edge_addr dst;
	uint16_t port;
	struct t t;
	int fd, lfd;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = tls_opts(&t);
	o.connect_timeout_ms = 200;
	o.slow_timeout_ms = 200;
	t_start(&t, &o);
	/* A client that never says hello: the handshake times out (slow_timeout_ms) and
	 * counts twice, as a failed handshake and a slow sender. */
	fd = tcp_client(local_port(&t, EDGE_PROTO_TLS), NULL);
	WAIT_UNTIL(&t, poll_in(fd, &in) && in.eof, 2000);
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.tls_handshake_failures, 1);
	assert_int_equal(st.slow_closed, 1);
	/* Outbound to a server that never answers (connect_timeout_ms): the send is
	 * reported. */
	lfd = sock(SOCK_STREAM, &port);
	assert_int_equal(listen(lfd, 8), 0);
	dst = edge_loopback(port);
	assert_int_equal(edge_tp_send(t.tp, EDGE_PROTO_TLS, &dst, 0, NULL, "x", 1, 5), 0);
	WAIT_UNTIL(&t, t.nerr == 1, 2000);
	assert_int_equal(t.err_cookie[0], 5);
	assert_int_equal(t.err_code[0], SK_ETIMEDOUT);
	edge_tp_stats(t.tp, &st);
	assert_int_equal(st.tls_handshake_failures, 2);
	close(fd);
	close(lfd);
	t_stop(&t);
}

/* ---- set-up ---- */

/* Every allocation of edge_tp_alloc and of an outbound send fails in turn: an error
 * comes back, nothing leaks (sk_test.h), and the loop closes cleanly. */
static void test_out_of_memory(void **state)
{
	struct edge_tp_opts o;
	struct edge_addr dst;
	bool tp_ok = false, send_ok = false;
	uint16_t port;
	struct t t;
	int lfd, rc;

	(void)state;
	lfd = sock(SOCK_STREAM, &port);
	assert_int_equal(listen(lfd, 64), 0);
	dst = edge_loopback(port);
	for (unsigned long n = 1; n < 100 && !(tp_ok && send_ok); n++) {
		memset(&t, 0, sizeof(t));
		o = tls_opts(&t);
		o.udp = o.tcp = "127.0.0.1:0";
		t_init(&t);
		sk_mem_fail_after(n);
		rc = edge_tp_alloc(&t.tp, &t.loop, &o);
		if (rc == 0) {
			tp_ok = true;
			/* The rest of the budget fails inside the send. */
			rc = edge_tp_send(t.tp, EDGE_PROTO_TCP, &dst, 0, NULL, "x", 1, 1);
			send_ok = rc == 0;
			assert_true(rc == 0 || rc == SK_ENOMEM);
			sk_mem_fail_after(0);
			edge_tp_close(t.tp);
			t.tp = sk_deref(t.tp);
		} else {
			assert_int_equal(rc, SK_ENOMEM);
			assert_null(t.tp);
		}
		sk_mem_fail_after(0);
		t_done(&t);
		assert_int_equal(t.nerr, 0);
	}
	assert_true(tp_ok && send_ok);
	close(lfd);
}

static void test_alloc_errors(void **state)
{
	struct edge_tp_opts o;
	struct edge_tp *tp2 = NULL;
	char busy[32];
	struct t t;

	(void)state;
	memset(&t, 0, sizeof(t));
	o = base_opts(&t);
	t_start(&t, &o);
	snprintf(busy, sizeof(busy), "127.0.0.1:%u", local_port(&t, EDGE_PROTO_TCP));
	o.tcp = busy;
	assert_int_equal(edge_tp_alloc(&tp2, &t.loop, &o), SK_EADDRINUSE);
	o.tcp = "localhost:5060";
	assert_int_equal(edge_tp_alloc(&tp2, &t.loop, &o), SK_EINVAL);
	o = tls_opts(&t);
	o.tls_cert = "/nonexistent.pem";
	assert_int_equal(edge_tp_alloc(&tp2, &t.loop, &o), SK_ETLS);
	assert_null(tp2);
	t_stop(&t);
}

static void test_addr(void **state)
{
	struct edge_addr a, b;
	enum edge_proto p;
	char s[64];

	(void)state;
	assert_int_equal(edge_addr_parse(&a, "[::1]:5061"), 0);
	assert_string_equal(edge_addr_str(&a, s, sizeof(s)), "[::1]:5061");
	assert_string_equal(edge_addr_ip(&a, s, sizeof(s)), "::1");
	assert_int_equal(edge_addr_parse(&b, "127.0.0.1:5061"), 0);
	assert_false(edge_addr_eq(&a, &b));
	assert_int_equal(edge_addr_port(&b), 5061);
	assert_string_equal(edge_addr_str(&b, s, sizeof(s)), "127.0.0.1:5061");
	/* IPv4 is formatted without inet_ntop(): every octet and port width, and a
	 * buffer too small for the fast path still gets inet_ntop()'s answer */
	assert_int_equal(edge_addr_parse(&b, "255.0.10.199:0"), 0);
	assert_string_equal(edge_addr_str(&b, s, sizeof(s)), "255.0.10.199:0");
	assert_string_equal(edge_addr_ip(&b, s, sizeof(s)), "255.0.10.199");
	assert_int_equal(edge_addr_parse(&b, "0.0.0.0:65535"), 0);
	assert_string_equal(edge_addr_str(&b, s, sizeof(s)), "0.0.0.0:65535");
	assert_int_equal(edge_addr_parse(&b, "10.20.30.40:9"), 0);
	assert_string_equal(edge_addr_ip(&b, s, 12), "10.20.30.40");
	assert_string_equal(edge_addr_str(&b, s, 10), "10.20.30.");
	assert_int_equal(edge_addr_parse(&a, "127.0.0.1:70000"), SK_EINVAL);
	assert_int_equal(edge_addr_parse(&a, "::1:5060"), SK_EINVAL);
	assert_int_equal(edge_addr_parse(&a, "[::1]"), SK_EINVAL);
	assert_int_equal(edge_proto_parse("TLS", &p), 0);
	assert_int_equal(p, EDGE_PROTO_TLS);
	assert_string_equal(edge_proto_via(p), "TLS");
	assert_int_equal(edge_proto_parse("sctp", &p), SK_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_addr),
	    SK_TEST(test_alloc_errors),
	    SK_TEST(test_out_of_memory),
	    SK_TEST(test_udp_roundtrip),
	    SK_TEST(test_udp_batch),
	    SK_TEST(test_udp_stun),
	    SK_TEST(test_udp_stun_ipv6),
	    SK_TEST(test_tcp_pipelined),
	    SK_TEST(test_tcp_byte_by_byte),
	    SK_TEST(test_tcp_large_and_drain),
	    SK_TEST(test_tcp_keepalive),
	    SK_TEST(test_tcp_oversize),
	    SK_TEST(test_tcp_close_in_callback),
	    SK_TEST(test_tcp_outbound_reuse),
	    SK_TEST(test_tcp_connect_refused),
	    SK_TEST(test_tcp_idle_timeout),
	    SK_TEST(test_tcp_max_conns),
	    SK_TEST(test_tls_roundtrip),
	    SK_TEST(test_tls_verify),
	    SK_TEST(test_tls11_refused),
	    SK_TEST(test_tls_timeouts),
	};
	int rc;

	if (tp_test_make_cert("tp", cert_file, sizeof(cert_file), key_file, sizeof(key_file))) {
		fprintf(stderr, "cannot make a test certificate with the openssl CLI\n");
		return 1;
	}
	rc = cmocka_run_group_tests_name("edge_transport", tests, NULL, NULL);
	unlink(cert_file);
	unlink(key_file);
	return rc;
}
