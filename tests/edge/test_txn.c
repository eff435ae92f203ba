/* Unit tests for the edge's transaction layer (services/edge/txn.h) over the real
 * transport on loopback: plain UDP and TCP sockets play the peer UA, T1 is 20 ms so
 * that Timers A/E/G, B/F/H, D, J... run in about a second. Every wait is bounded. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "sk_test.h"
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_metrics.h"
#include "sip_check.h"
#include "sipmsg.h"
#include "transport.h"
#include "txn.h"
#include "txn_int.h" /* the timers, tested directly below */
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>

struct t {
	uv_loop_t loop;
	uv_timer_t guard;
	bool expired;
	uv_timer_t tick; /* wakes the loop so that the peer sockets are polled */
	struct edge_tp *tp;
	struct edge_txl *l;
	struct edge_addr udp, tcp; /* our listeners */
	int pu;			   /* peer UDP socket */
	struct edge_addr pu_addr;
	int pl, pt; /* peer TCP listener, peer TCP connection */
	struct edge_addr pl_addr;
	char sbuf[65536]; /* peer TCP receive buffer */
	size_t slen;
	char *q[256]; /* messages the peer received, in order */
	size_t nq;
	/* the TU */
	int requests, cancels, stateless;
	int reply_on_cancel;
	struct edge_stx *stx;
	msg_t *req_seen; /* a copy of the last request given to on_request */
	int status[32];
	size_t nstatus;
	int err;
	char totag[64];
};

#include "sk_test_loop.h"

#define T1  20
#define T64 (64 * T1)

static struct t T;

/* ---- the peer ---- */

static void queue(struct t *t, const char *p, size_t n)
{
	if (t->nq < sizeof(t->q) / sizeof(t->q[0]))
		t->q[t->nq++] = strndup(p, n);
}

static void pump(struct t *t)
{
	char b[65536];
	ssize_t n;

	while ((n = recv(t->pu, b, sizeof(b), MSG_DONTWAIT)) > 0)
		queue(t, b, (size_t)n);
	if (t->pl >= 0 && t->pt < 0) {
		t->pt = accept(t->pl, NULL, NULL);
		if (t->pt >= 0)
			fcntl(t->pt, F_SETFL, O_NONBLOCK);
	}
	if (t->pt < 0)
		return;
	while ((n = recv(t->pt, t->sbuf + t->slen, sizeof(t->sbuf) - t->slen, MSG_DONTWAIT)) > 0)
		t->slen += (size_t)n;
	for (;;) {
		struct edge_verdict v;

		if (!t->slen || edge_sip_check(t->sbuf, t->slen, EDGE_STREAM, 65535, NULL, &v) ||
		    !v.consumed)
			break;
		queue(t, t->sbuf, v.consumed);
		memmove(t->sbuf, t->sbuf + v.consumed, t->slen - v.consumed);
		t->slen -= v.consumed;
	}
}

/* The first queued message that starts with start and contains has (may be NULL). */
static char *pop(struct t *t, const char *start, const char *has)
{
	pump(t);
	for (size_t i = 0; i < t->nq; i++) {
		char *m = t->q[i];

		if (strncmp(m, start, strlen(start)) || (has && !strstr(m, has)))
			continue;
		memmove(t->q + i, t->q + i + 1, (t->nq - i - 1) * sizeof(*t->q));
		t->nq--;
		return m;
	}
	return NULL;
}

static size_t count(struct t *t, const char *start, const char *has)
{
	size_t n = 0;
	char *m;

	while ((m = pop(t, start, has))) {
		free(m);
		n++;
	}
	return n;
}

/* Idempotent, as WAIT_UNTIL evaluates its condition once more at the end. */
static bool popped(struct t *t, char **m, const char *start, const char *has)
{
	if (!*m)
		*m = pop(t, start, has);
	return *m != NULL;
}

static char *expect(struct t *t, const char *start, const char *has, int ms)
{
	char *m = NULL;

	WAIT_UNTIL(t, popped(t, &m, start, has), ms);
	return m;
}

/* The To tag of a response the peer received. */
static const char *to_tag(const char *m, char out[EDGE_TAG_SIZE])
{
	const char *to = strstr(m, "\r\nTo: "), *eol = to ? strstr(to + 2, "\r\n") : NULL;
	const char *p = to ? strstr(to, ";tag=") : NULL;

	assert_non_null(p);
	assert_true(p < eol);
	snprintf(out, EDGE_TAG_SIZE, "%.*s", (int)(eol - p - 5), p + 5);
	return out;
}

static void peer_udp(struct t *t, const char *text)
{
	assert_int_equal(sendto(t->pu, text, strlen(text), 0, &t->udp.u.sa, sizeof(t->udp.u.in)),
			 (ssize_t)strlen(text));
}

static void peer_tcp(struct t *t, const char *text)
{
	assert_int_equal(send(t->pt, text, strlen(text), 0), (ssize_t)strlen(text));
}

static void peer_tcp_connect(struct t *t)
{
	t->pt = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(t->pt >= 0);
	assert_int_equal(connect(t->pt, &t->tcp.u.sa, sizeof(t->tcp.u.in)), 0);
	fcntl(t->pt, F_SETFL, O_NONBLOCK);
}

/* A request from the peer. */
static char *request(const char *method, const char *branch, const char *proto, const char *sent_by,
		     const char *to_tag, const char *cseq_method)
{
	char *s = NULL;

	assert_true(asprintf(&s,
			     "%s sip:bob@127.0.0.1 SIP/2.0\r\n"
			     "Via: SIP/2.0/%s %s;branch=%s;rport\r\n"
			     "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKdown\r\n"
			     "Max-Forwards: 70\r\n"
			     "From: <sip:alice@example.com>;tag=fa\r\n"
			     "To: <sip:bob@example.com>%s%s\r\n"
			     "Call-ID: call-%s\r\n"
			     "CSeq: 1 %s\r\n"
			     "Content-Length: 0\r\n\r\n",
			     method, proto, sent_by, branch, to_tag ? ";tag=" : "",
			     to_tag ? to_tag : "", branch, cseq_method ? cseq_method : method) > 0);
	return s;
}

static msg_t *parse(const char *text)
{
	struct edge_verdict v;
	msg_t *msg = NULL;

	assert_int_equal(edge_sip_check(text, strlen(text), EDGE_UDP, 65535, &msg, &v), 0);
	assert_non_null(msg);
	return msg;
}

/* The peer answers a request it received (as text). */
static char *response(const char *req, int status, const char *tag)
{
	msg_t *m = parse(req);
	struct sk_buf b;

	sk_buf_init(&b);
	assert_int_equal(edge_response_build(&b, m, status, NULL, tag, NULL, NULL, NULL, NULL, 0),
			 0);
	msg_destroy(m);
	return b.data; /* malloc'd */
}

/* ---- the TU ---- */

static void on_request(struct edge_txl *l, struct edge_stx *stx, const struct edge_rx *rx,
		       void *arg)
{
	struct t *t = arg;

	(void)l;
	(void)rx;
	t->requests++;
	sk_deref(t->stx);
	t->stx = sk_ref(stx);
	if (t->req_seen)
		msg_destroy(t->req_seen);
	t->req_seen = msg_dup(edge_stx_msg(stx));
}

static void on_cancel(struct edge_txl *l, struct edge_stx *inv, void *arg)
{
	struct t *t = arg;

	(void)l;
	t->cancels++;
	assert_ptr_equal(inv, t->stx);
	if (t->reply_on_cancel)
		assert_int_equal(edge_stx_reply(inv, t->reply_on_cancel, NULL, NULL, NULL, NULL, 0),
				 0);
}

static void on_stateless(struct edge_txl *l, msg_t *msg, const struct edge_rx *rx, void *arg)
{
	(void)l;
	(void)rx;
	((struct t *)arg)->stateless++;
	msg_destroy(msg);
}

static void on_ctx(struct edge_ctx *ctx, int status, msg_t *resp, int err, void *arg)
{
	struct t *t = arg;

	(void)ctx;
	if (t->nstatus < 32)
		t->status[t->nstatus++] = status;
	t->err = err;
	if (resp) {
		sip_t *sip = sip_object(resp);

		/* our Via is gone: the top one is the peer's next hop */
		assert_non_null(sip->sip_via);
		assert_string_equal(sip->sip_via->v_host, "192.0.2.7");
	}
}

static void on_msg(struct edge_tp *tp, const struct edge_rx *rx, msg_t *msg, void *arg)
{
	(void)tp;
	if (msg)
		edge_txl_input(((struct t *)arg)->l, rx, msg);
}

static void on_send_error(struct edge_tp *tp, uint64_t cookie, int err, void *arg)
{
	(void)tp;
	edge_txl_send_error(((struct t *)arg)->l, cookie, err);
}

static void on_flow_closed(struct edge_tp *tp, uint64_t flow, void *arg)
{
	(void)tp;
	edge_txl_flow_closed(((struct t *)arg)->l, flow);
}

static void tick_cb(uv_timer_t *h)
{
	(void)h;
}

/* As the edge's core does: the ACK of a stateless challenge goes before parsing. */
static bool on_absorb(const char *data, size_t len, void *arg)
{
	struct t *t = arg;

	return t->l && edge_txl_absorb(t->l, data, len);
}

static int setup(void **state)
{
	struct t *t = &T;
	struct edge_tp_opts to = {.udp = "127.0.0.1:0",
				  .tcp = "127.0.0.1:0",
				  .on_msg = on_msg,
				  .absorb = on_absorb,
				  .on_send_error = on_send_error,
				  .on_flow_closed = on_flow_closed,
				  .arg = t};
	struct edge_txl_opts lo = {.t1_ms = T1,
				   .t2_ms = 4 * T1,
				   .t4_ms = 200,
				   .timer_c_ms = 400,
				   .on_request = on_request,
				   .on_cancel = on_cancel,
				   .on_stateless = on_stateless,
				   .arg = t,
				   .server = "Skein-test"};
	socklen_t sl = sizeof(t->pu_addr.u.ss);

	leak_setup(state);
	t_init(t);
	t->pt = t->pl = -1;
	uv_timer_init(&t->loop, &t->tick);
	uv_timer_start(&t->tick, tick_cb, 2, 2);
	assert_int_equal(edge_tp_alloc(&t->tp, &t->loop, &to), 0);
	assert_true(edge_tp_local(t->tp, EDGE_PROTO_UDP, &t->udp));
	assert_true(edge_tp_local(t->tp, EDGE_PROTO_TCP, &t->tcp));
	lo.tp = t->tp;
	assert_int_equal(edge_txl_alloc(&t->l, &t->loop, &lo), 0);

	t->pu = socket(AF_INET, SOCK_DGRAM, 0);
	assert_int_equal(edge_addr_parse(&t->pu_addr, "127.0.0.1:0"), 0);
	assert_int_equal(bind(t->pu, &t->pu_addr.u.sa, sizeof(t->pu_addr.u.in)), 0);
	assert_int_equal(getsockname(t->pu, &t->pu_addr.u.sa, &sl), 0);
	return 0;
}

static int teardown(void **state)
{
	struct t *t = &T;

	t->stx = sk_deref(t->stx);
	if (t->req_seen)
		msg_destroy(t->req_seen);
	edge_txl_close(t->l);
	edge_tp_close(t->tp);
	uv_close((uv_handle_t *)&t->tick, NULL);
	t_done(t);
	t->l = sk_deref(t->l);
	t->tp = sk_deref(t->tp);
	close(t->pu);
	if (t->pl >= 0)
		close(t->pl);
	if (t->pt >= 0)
		close(t->pt);
	while (t->nq)
		free(t->q[--t->nq]);
	return leak_check(state);
}

static void wait_idle(struct t *t, int ms)
{
	WAIT_UNTIL(t, edge_txl_live(t->l) == 0, ms);
}

static void udp_sent_by(struct t *t, char *out, size_t size)
{
	snprintf(out, size, "127.0.0.1:%u", edge_addr_port(&t->pu_addr));
}

/* ---- server transactions ---- */

static void test_server_nonivite_absorbs(void **state)
{
	struct t *t = &T;
	struct edge_txl_stats st;
	char sb[64], *req, *m;
	sip_via_t *v;

	(void)state;
	udp_sent_by(t, sb, sizeof(sb));
	req = request("MESSAGE", "z9hG4bKn1", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	WAIT_UNTIL(t, t->requests == 1, 1000);
	for (int i = 0; i < 3; i++)
		peer_udp(t, req);
	edge_txl_stats(t->l, &st);
	WAIT_UNTIL(t, (edge_txl_stats(t->l, &st), st.retransmissions_absorbed == 3), 1000);
	assert_int_equal(t->requests, 1);
	assert_int_equal(count(t, "SIP/2.0", NULL), 0); /* Trying: nothing to resend */

	/* RFC 3581 §4: the Via the TU sees has received and rport. */
	v = sip_object(t->req_seen)->sip_via;
	assert_string_equal(msg_header_find_param(v->v_common, "received"), "127.0.0.1");
	assert_int_equal(atoi(msg_header_find_param(v->v_common, "rport")),
			 edge_addr_port(&t->pu_addr));
	assert_false(edge_stx_is_invite(t->stx));

	assert_int_equal(edge_stx_reply(t->stx, 200, NULL, NULL, NULL, NULL, 0), 0);
	m = expect(t, "SIP/2.0 200 OK", "CSeq: 1 MESSAGE", 1000);
	assert_non_null(strstr(m, "received=127.0.0.1"));
	assert_non_null(strstr(m, "Server: Skein-test\r\n"));
	assert_non_null(strstr(m, edge_stx_to_tag(t->stx)));
	free(m);
	assert_int_equal(edge_stx_status(t->stx), 200);
	assert_int_equal(edge_stx_reply(t->stx, 404, NULL, NULL, NULL, NULL, 0), SK_EINVAL);
	/* a retransmission after the final gets the final again (§17.2.2) */
	peer_udp(t, req);
	free(expect(t, "SIP/2.0 200 OK", "CSeq: 1 MESSAGE", 1000));
	assert_int_equal(t->requests, 1);
	wait_idle(t, T64 + 1000); /* Timer J */
	free(req);
}

static void test_server_invite_486_until_ack(void **state)
{
	struct t *t = &T;
	char *req, *ack, *m, tag[EDGE_TAG_SIZE];
	size_t n;

	(void)state;
	/* sent-by is not the source: received= is added, the response goes to the
	 * source port (rport). */
	req = request("INVITE", "z9hG4bKi1", "UDP", "10.9.9.9:5999", NULL, NULL);
	peer_udp(t, req);
	m = expect(t, "SIP/2.0 100 Trying", "received=127.0.0.1", 1000); /* at once */
	assert_non_null(strstr(m, "\r\nTo: <sip:bob@example.com>\r\n")); /* no tag */
	free(m);
	assert_int_equal(t->requests, 1);
	assert_true(edge_stx_is_invite(t->stx));
	peer_udp(t, req); /* Proceeding: the last provisional again */
	free(expect(t, "SIP/2.0 100 Trying", NULL, 1000));

	assert_int_equal(edge_stx_reply(t->stx, 486, NULL, NULL, NULL, NULL, 0), 0);
	m = expect(t, "SIP/2.0 486 Busy Here", NULL, 1000);
	assert_string_equal(to_tag(m, tag), edge_stx_to_tag(t->stx));
	free(m);
	/* Timer G: again after T1, 2*T1... */
	free(expect(t, "SIP/2.0 486 Busy Here", tag, 5 * T1));
	free(expect(t, "SIP/2.0 486 Busy Here", tag, 8 * T1));
	ack = request("ACK", "z9hG4bKi1", "UDP", "10.9.9.9:5999", tag, NULL);
	peer_udp(t, ack);
	t_run_for(t, 10);
	count(t, "SIP/2.0 486", NULL); /* any sent before the ACK came */
	t_run_for(t, 150);	       /* G runs every T2 = 80 ms by now; T4 is 200 */
	assert_int_equal(count(t, "SIP/2.0 486", NULL), 0);
	assert_int_equal(edge_txl_live(t->l), 1); /* Confirmed: Timer I */
	WAIT_UNTIL(t, edge_txl_live(t->l) == 0, 1000);
	n = t->stateless;
	assert_int_equal(n, 0); /* the ACK was absorbed */
	assert_int_equal(edge_stx_status(t->stx), 486);
	{
		struct edge_txl_stats st;

		edge_txl_stats(t->l, &st); /* by the transaction, not before parsing */
		assert_int_equal(st.acks_absorbed, 0);
	}
	free(ack);
	free(req);
}

static void test_server_invite_timer_h(void **state)
{
	struct t *t = &T;
	struct edge_txl_stats st;
	char sb[64], *req;
	size_t n;

	(void)state;
	udp_sent_by(t, sb, sizeof(sb));
	req = request("INVITE", "z9hG4bKh1", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	WAIT_UNTIL(t, t->requests == 1, 1000);
	assert_int_equal(edge_stx_reply(t->stx, 603, NULL, NULL, NULL, NULL, 0), 0);
	wait_idle(t, T64 + 1000);
	n = count(t, "SIP/2.0 603 Decline", NULL);
	/* G at 20, 40, 80 then every 80 ms up to 1280: about 17 sends */
	assert_true(n >= 10 && n <= 20);
	edge_txl_stats(t->l, &st);
	assert_int_equal(st.timeouts, 1);
	assert_true(st.retransmissions_sent >= n - 1);
	free(req);
}

static void test_server_cancel(void **state)
{
	struct t *t = &T;
	char sb[64], *req, *cancel, *m, *ack, tag[EDGE_TAG_SIZE];

	(void)state;
	udp_sent_by(t, sb, sizeof(sb));
	t->reply_on_cancel = 487;
	req = request("INVITE", "z9hG4bKc1", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	free(expect(t, "SIP/2.0 100 Trying", NULL, 1000));
	cancel = request("CANCEL", "z9hG4bKc1", "UDP", sb, NULL, NULL);
	peer_udp(t, cancel);
	free(expect(t, "SIP/2.0 200 OK", "CSeq: 1 CANCEL", 1000));
	m = expect(t, "SIP/2.0 487 Request Terminated", "CSeq: 1 INVITE", 1000);
	assert_int_equal(t->cancels, 1);
	assert_int_equal(t->requests, 1); /* the CANCEL did not reach on_request */
	to_tag(m, tag);
	free(m);
	/* A second CANCEL, after the final: 200 again, nothing for the TU. */
	peer_udp(t, cancel);
	free(expect(t, "SIP/2.0 200 OK", "CSeq: 1 CANCEL", 1000));
	assert_int_equal(t->cancels, 1);
	ack = request("ACK", "z9hG4bKc1", "UDP", sb, tag, NULL);
	peer_udp(t, ack);
	wait_idle(t, T64 + 1000);
	free(ack);
	free(cancel);
	free(req);
}

static void test_server_cancel_unknown(void **state)
{
	struct t *t = &T;
	char sb[64], *cancel;

	(void)state;
	udp_sent_by(t, sb, sizeof(sb));
	cancel = request("CANCEL", "z9hG4bKnothere", "UDP", sb, NULL, NULL);
	peer_udp(t, cancel);
	free(expect(t, "SIP/2.0 481 Call/Transaction Does Not Exist", "CSeq: 1 CANCEL", 1000));
	assert_int_equal(t->requests, 0);
	assert_int_equal(t->cancels, 0);
	wait_idle(t, T64 + 1000);
	free(cancel);
}

static void test_server_tcp(void **state)
{
	struct t *t = &T;
	char *req, *ack, *m, tag[EDGE_TAG_SIZE];

	(void)state;
	peer_tcp_connect(t);
	req = request("INVITE", "z9hG4bKt1", "TCP", "client.invalid:5060", NULL, NULL);
	peer_tcp(t, req);
	free(expect(t, "SIP/2.0 100 Trying", NULL, 1000));
	assert_int_equal(edge_stx_rx(t->stx)->proto, EDGE_PROTO_TCP);
	assert_int_equal(edge_stx_reply(t->stx, 486, NULL, NULL, NULL, NULL, 0), 0);
	m = expect(t, "SIP/2.0 486", "received=127.0.0.1", 1000);
	to_tag(m, tag);
	free(m);
	t_run_for(t, 6 * T1); /* no Timer G over a stream */
	assert_int_equal(count(t, "SIP/2.0 486", NULL), 0);
	ack = request("ACK", "z9hG4bKt1", "TCP", "client.invalid:5060", tag, NULL);
	peer_tcp(t, ack);
	wait_idle(t, 500); /* Timer I is 0 over a stream */
	free(ack);
	free(req);
}

/* ---- client transactions ---- */

static msg_t *new_request(const char *method)
{
	static const char fmt[] =
	    "%s sip:bob@127.0.0.1 SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKdown;received=1.1.1.1\r\n"
	    "Max-Forwards: 69\r\n"
	    "Route: <sip:127.0.0.1;lr>\r\n"
	    "From: <sip:alice@example.com>;tag=fa\r\n"
	    "To: <sip:bob@example.com>\r\n"
	    "Call-ID: out-%s\r\n"
	    "CSeq: 5 %s\r\n"
	    "Content-Length: 0\r\n\r\n";
	char b[1024];

	snprintf(b, sizeof(b), fmt, method, method, method);
	return parse(b);
}

static const char *our_branch(const char *m, char *out)
{
	const char *p = strstr(m, "branch=");

	assert_non_null(p);
	snprintf(out, EDGE_BRANCH_SIZE, "%.29s", p + 7);
	return out;
}

static void test_client_nonivite_timeout(void **state)
{
	struct t *t = &T;
	struct edge_txl_stats st;
	struct edge_ctx *ctx;
	char via[128], br[EDGE_BRANCH_SIZE], *m;
	size_t n;

	(void)state;
	assert_int_equal(edge_ctx_start(t->l, &ctx, new_request("MESSAGE"), EDGE_PROTO_UDP,
					&t->pu_addr, 0, NULL, on_ctx, t),
			 0);
	m = expect(t, "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n", NULL, 1000);
	snprintf(via, sizeof(via), "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bK",
		 edge_addr_port(&t->udp));
	assert_non_null(strstr(m, via));
	assert_non_null(strstr(m, ";rport\r\nVia: SIP/2.0/UDP 192.0.2.7:5060"));
	our_branch(m, br);
	free(m);
	WAIT_UNTIL(t, t->nstatus == 1, T64 + 1000);
	assert_int_equal(t->status[0], 408);
	assert_int_equal(t->err, SK_ETIMEDOUT);
	n = count(t, "MESSAGE", br);
	/* Timer E: 20, 40, 80, 80... until F at 1280: about 16 retransmissions */
	assert_true(n >= 10 && n <= 18);
	edge_txl_stats(t->l, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(edge_txl_live(t->l), 0);
}

static void test_client_invite_486_ack(void **state)
{
	struct t *t = &T;
	char br[EDGE_BRANCH_SIZE], *inv, *r, *ack;
	msg_t *am;
	sip_t *sip;

	(void)state;
	assert_int_equal(edge_ctx_start(t->l, NULL, new_request("INVITE"), EDGE_PROTO_UDP,
					&t->pu_addr, 0, NULL, on_ctx, t),
			 0);
	inv = expect(t, "INVITE ", NULL, 1000);
	our_branch(inv, br);
	r = response(inv, 180, "callee1");
	peer_udp(t, r);
	free(r);
	WAIT_UNTIL(t, t->nstatus == 1, 1000);
	r = response(inv, 486, "callee1");
	peer_udp(t, r);
	WAIT_UNTIL(t, t->nstatus == 2, 1000);
	assert_int_equal(t->status[0], 180);
	assert_int_equal(t->status[1], 486);
	ack = expect(t, "ACK sip:bob@127.0.0.1 SIP/2.0", NULL, 1000);
	am = parse(ack);
	sip = sip_object(am);
	assert_int_equal(sip->sip_cseq->cs_method, sip_method_ack);
	assert_int_equal(sip->sip_cseq->cs_seq, 5);
	assert_string_equal(sip->sip_via->v_branch, br);
	assert_null(sip->sip_via->v_next);
	assert_string_equal(sip->sip_to->a_tag, "callee1");
	assert_string_equal(sip->sip_route->r_url->url_host, "127.0.0.1");
	msg_destroy(am);
	free(ack);
	/* a retransmitted 486: ACK again, the TU hears nothing */
	peer_udp(t, r);
	free(expect(t, "ACK ", br, 1000));
	assert_int_equal(t->nstatus, 2);
	wait_idle(t, T64 + 1000); /* Timer D */
	assert_int_equal(count(t, "INVITE ", br) <= 1, true);
	free(r);
	free(inv);
}

static void test_client_invite_200_accepted(void **state)
{
	struct t *t = &T;
	char *inv, *r;

	(void)state;
	assert_int_equal(edge_ctx_start(t->l, NULL, new_request("INVITE"), EDGE_PROTO_UDP,
					&t->pu_addr, 0, NULL, on_ctx, t),
			 0);
	inv = expect(t, "INVITE ", NULL, 1000);
	r = response(inv, 200, "callee2");
	peer_udp(t, r);
	WAIT_UNTIL(t, t->nstatus == 1, 1000);
	peer_udp(t, r); /* RFC 6026 §7.2: the retransmitted 200 reaches the TU too */
	WAIT_UNTIL(t, t->nstatus == 2, 1000);
	assert_int_equal(t->status[0], 200);
	assert_int_equal(t->status[1], 200);
	t_run_for(t, 4 * T1);
	assert_int_equal(count(t, "ACK ", NULL), 0); /* the 2xx ACK is end to end */
	wait_idle(t, T64 + 1000);		     /* Timer M */
	free(r);
	free(inv);
}

/* A proxy whose fork has ended releases its branch: a 2xx retransmitted in Accepted
 * is then forwarded statelessly (the TU is gone), not dropped. */
static void test_client_200_after_release(void **state)
{
	struct t *t = &T;
	struct edge_ctx *ctx = NULL;
	char *inv, *r;
	int n;

	(void)state;
	assert_int_equal(edge_ctx_start(t->l, &ctx, new_request("INVITE"), EDGE_PROTO_UDP,
					&t->pu_addr, 0, NULL, on_ctx, t),
			 0);
	sk_ref(ctx);
	inv = expect(t, "INVITE ", NULL, 1000);
	r = response(inv, 200, "callee3");
	peer_udp(t, r);
	WAIT_UNTIL(t, t->nstatus == 1, 1000);
	edge_ctx_release(ctx);
	ctx = sk_deref(ctx);
	n = t->stateless;
	peer_udp(t, r);
	WAIT_UNTIL(t, t->stateless == n + 1, 1000);
	assert_int_equal(t->nstatus, 1); /* not to the released TU */
	/* Still the transaction's: a 2xx only; a late 4xx is absorbed. */
	wait_idle(t, T64 + 1000);
	free(r);
	free(inv);
}

static void test_client_cancel_deferred(void **state)
{
	struct t *t = &T;
	struct edge_ctx *ctx;
	char br[EDGE_BRANCH_SIZE], *inv, *r, *cancel;

	(void)state;
	assert_int_equal(edge_ctx_start(t->l, &ctx, new_request("INVITE"), EDGE_PROTO_UDP,
					&t->pu_addr, 0, NULL, on_ctx, t),
			 0);
	sk_ref(ctx);
	edge_ctx_cancel(ctx);
	inv = expect(t, "INVITE ", NULL, 1000);
	our_branch(inv, br);
	t_run_for(t, 5 * T1);
	assert_int_equal(count(t, "CANCEL ", NULL), 0); /* §9.1: not before a provisional */
	r = response(inv, 180, "callee3");
	peer_udp(t, r);
	free(r);
	cancel = expect(t, "CANCEL sip:bob@127.0.0.1 SIP/2.0", br, 1000);
	assert_non_null(strstr(cancel, "CSeq: 5 CANCEL\r\n"));
	assert_non_null(strstr(cancel, "Route: <sip:127.0.0.1;lr>\r\n"));
	assert_non_null(strstr(cancel, "Max-Forwards: 70\r\n"));
	r = response(cancel, 200, "callee3");
	peer_udp(t, r);
	free(r);
	r = response(inv, 487, "callee3");
	peer_udp(t, r);
	free(r);
	WAIT_UNTIL(t, t->nstatus == 2, 1000);
	assert_int_equal(t->status[0], 180);
	assert_int_equal(t->status[1], 487);
	free(expect(t, "ACK ", br, 1000));
	assert_null(edge_ctx_msg(ctx)); /* released after the final: the ACK is kept */
	edge_ctx_cancel(ctx); /* after the final: nothing */
	wait_idle(t, T64 + 1000);
	assert_int_equal(count(t, "CANCEL ", NULL), 0);
	sk_deref(ctx);
	free(cancel);
	free(inv);
}

static void test_client_tcp(void **state)
{
	struct t *t = &T;
	struct edge_addr a;
	socklen_t sl = sizeof(a.u.ss);
	char *m, *r;

	(void)state;
	t->pl = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(edge_addr_parse(&a, "127.0.0.1:0"), 0);
	assert_int_equal(bind(t->pl, &a.u.sa, sizeof(a.u.in)), 0);
	assert_int_equal(listen(t->pl, 4), 0);
	assert_int_equal(getsockname(t->pl, &a.u.sa, &sl), 0);
	fcntl(t->pl, F_SETFL, O_NONBLOCK);
	assert_int_equal(edge_ctx_start(t->l, NULL, new_request("OPTIONS"), EDGE_PROTO_TCP, &a, 0,
					NULL, on_ctx, t),
			 0);
	m = expect(t, "OPTIONS ", "Via: SIP/2.0/TCP 127.0.0.1:", 1000);
	t_run_for(t, 6 * T1); /* no Timer E over a stream */
	assert_int_equal(count(t, "OPTIONS ", NULL), 0);
	r = response(m, 200, "x");
	peer_tcp(t, r);
	WAIT_UNTIL(t, t->nstatus == 1, 1000);
	assert_int_equal(t->status[0], 200);
	wait_idle(t, 500); /* Timer K is 0 over a stream */
	free(r);
	free(m);
}

static void test_client_start_errors(void **state)
{
	struct t *t = &T;
	struct edge_ctx *ctx = (void *)1;

	(void)state;
	assert_int_equal(edge_ctx_start(t->l, &ctx, new_request("ACK"), EDGE_PROTO_UDP, &t->pu_addr,
					0, NULL, on_ctx, t),
			 SK_EINVAL);
	assert_null(ctx);
	assert_int_equal(edge_ctx_start(t->l, &ctx, new_request("OPTIONS"), EDGE_PROTO_TLS,
					&t->pu_addr, 0, NULL, on_ctx, t),
			 SK_EINVAL); /* no TLS listener: no Via address */
	assert_int_equal(edge_ctx_start(t->l, &ctx, new_request("OPTIONS"), EDGE_PROTO_TCP, NULL,
					12345, NULL, on_ctx, t),
			 SK_ENOTCONN);
	assert_int_equal(edge_txl_live(t->l), 0);
	assert_int_equal(t->nstatus, 0);
}

/* The transport reports a refused connection through the cookie: 503 to the TU. */
static void test_client_send_error(void **state)
{
	struct t *t = &T;
	struct edge_addr a;
	socklen_t sl = sizeof(a.u.ss);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	assert_int_equal(edge_addr_parse(&a, "127.0.0.1:0"), 0);
	assert_int_equal(bind(fd, &a.u.sa, sizeof(a.u.in)), 0);
	assert_int_equal(getsockname(fd, &a.u.sa, &sl), 0);
	close(fd); /* nobody listens there now */
	assert_int_equal(edge_ctx_start(t->l, NULL, new_request("OPTIONS"), EDGE_PROTO_TCP, &a, 0,
					NULL, on_ctx, t),
			 0);
	WAIT_UNTIL(t, t->nstatus == 1, 2000);
	assert_int_equal(t->status[0], 503);
	assert_true(t->err < 0);
	assert_int_equal(edge_txl_live(t->l), 0);
}

/* A connection that closes under a pending client transaction: 503 at once. */
static void test_client_flow_closed(void **state)
{
	struct t *t = &T;
	char *inv, *r;
	struct edge_addr a;
	socklen_t sl = sizeof(a.u.ss);

	(void)state;
	t->pl = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(edge_addr_parse(&a, "127.0.0.1:0"), 0);
	assert_int_equal(bind(t->pl, &a.u.sa, sizeof(a.u.in)), 0);
	assert_int_equal(listen(t->pl, 4), 0);
	assert_int_equal(getsockname(t->pl, &a.u.sa, &sl), 0);
	fcntl(t->pl, F_SETFL, O_NONBLOCK);
	assert_int_equal(edge_ctx_start(t->l, NULL, new_request("INVITE"), EDGE_PROTO_TCP, &a, 0,
					NULL, on_ctx, t),
			 0);
	inv = expect(t, "INVITE ", NULL, 1000);
	r = response(inv, 180, "ringing"); /* the ctx learns its flow from a response */
	peer_tcp(t, r);
	WAIT_UNTIL(t, t->nstatus == 1, 1000);
	close(t->pt);
	t->pt = -1;
	close(t->pl);
	t->pl = -1;
	WAIT_UNTIL(t, t->nstatus == 2, 1000); /* well before Timer C */
	assert_int_equal(t->status[1], 503);
	assert_int_equal(t->err, SK_ECONNRESET);
	assert_int_equal(edge_txl_live(t->l), 0);
	free(r);
	free(inv);
}

static void test_metrics(void **state)
{
	struct t *t = &T;
	struct edge_txl_opts lo = {.tp = t->tp,
				   .t1_ms = T1,
				   .on_request = on_request,
				   .arg = t,
				   .via_host = "2001:db8::1",
				   .via_param = ";sk-edge=\"n1/edge\""};
	char via[80], *msg;
	struct sk_metrics *m;
	struct edge_txl *l;
	struct sk_buf b;
	char sb[64], *req;

	(void)state;
	assert_int_equal(sk_metrics_alloc(&m), 0);
	lo.metrics = m;
	assert_int_equal(edge_txl_alloc(&l, &t->loop, &lo), 0);
	edge_txl_close(t->l); /* the new layer takes the transport's input */
	sk_deref(t->l);
	t->l = l;
	udp_sent_by(t, sb, sizeof(sb));
	req = request("OPTIONS", "z9hG4bKm1", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	WAIT_UNTIL(t, t->requests == 1, 1000);
	sk_buf_init(&b);
	assert_int_equal(sk_metrics_print(m, &b), 0);
	assert_non_null(strstr(b.data, "skein_edge_transactions 1"));
	assert_int_equal(edge_stx_reply(t->stx, 200, NULL, NULL, NULL, NULL, 0), 0);
	free(expect(t, "SIP/2.0 200", NULL, 1000));
	sk_buf_reset(&b);
	assert_int_equal(sk_metrics_print(m, &b), 0);
	assert_non_null(strstr(b.data, "skein_edge_transaction_seconds_count 1"));
	assert_non_null(strstr(b.data, "skein_edge_retransmissions_total 0"));
	assert_non_null(strstr(b.data, "skein_edge_transaction_timeouts_total 0"));
	sk_buf_release(&b);
	/* via_host: the advertised address in our Via, an IPv6 one in brackets */
	assert_int_equal(edge_ctx_start(t->l, NULL, new_request("MESSAGE"), EDGE_PROTO_UDP,
					&t->pu_addr, 0, NULL, on_ctx, t),
			 0);
	msg = expect(t, "MESSAGE ", NULL, 1000);
	snprintf(via, sizeof(via), "Via: SIP/2.0/UDP [2001:db8::1]:%u;branch=z9hG4bK",
		 edge_addr_port(&t->udp));
	assert_non_null(strstr(msg, via));
	assert_non_null(strstr(msg, ";rport;sk-edge=\"n1/edge\"\r\n"));
	free(msg);
	/* the next one from the cached prefix: the same Via, another branch */
	assert_int_equal(edge_ctx_start(t->l, NULL, new_request("OPTIONS"), EDGE_PROTO_UDP,
					&t->pu_addr, 0, NULL, on_ctx, t),
			 0);
	msg = expect(t, "OPTIONS ", NULL, 1000);
	assert_non_null(strstr(msg, via));
	assert_non_null(strstr(msg, ";rport;sk-edge=\"n1/edge\"\r\n"));
	free(msg);
	wait_idle(t, T64 + 1000);
	/* the registry reads the layer: free it after the layer is closed */
	t->stx = sk_deref(t->stx);
	edge_txl_close(t->l);
	t_run_for(t, 10);
	t->l = sk_deref(t->l);
	lo.metrics = NULL;
	assert_int_equal(edge_txl_alloc(&t->l, &t->loop, &lo), 0); /* for teardown */
	sk_deref(m);
	free(req);
}

/* Timer C (§16.8) after a provisional: CANCEL, 408 to the TU, the 487 ACKed quietly. */
static void test_client_timer_c(void **state)
{
	struct t *t = &T;
	char br[EDGE_BRANCH_SIZE], *inv, *r, *cancel;

	(void)state;
	assert_int_equal(edge_ctx_start(t->l, NULL, new_request("INVITE"), EDGE_PROTO_UDP,
					&t->pu_addr, 0, NULL, on_ctx, t),
			 0);
	inv = expect(t, "INVITE ", NULL, 1000);
	our_branch(inv, br);
	r = response(inv, 183, "c");
	peer_udp(t, r);
	free(r);
	WAIT_UNTIL(t, t->nstatus == 1, 1000);
	t_run_for(t, 250);
	assert_int_equal(t->nstatus, 1); /* still inside Timer C (400 ms) */
	cancel = expect(t, "CANCEL ", br, 1000);
	assert_int_equal(t->nstatus, 2);
	assert_int_equal(t->status[1], 408);
	r = response(inv, 487, "c");
	peer_udp(t, r);
	free(r);
	free(expect(t, "ACK ", br, 1000));
	r = response(cancel, 200, "c");
	peer_udp(t, r);
	free(r);
	wait_idle(t, T64 + 1000);
	assert_int_equal(t->nstatus, 2);
	free(cancel);
	free(inv);
}

/* RFC 2543 requests (no magic cookie) are keyed by Call-ID, CSeq, From tag and Via. */
static void test_server_rfc2543(void **state)
{
	struct t *t = &T;
	char sb[64], *req, *ack, *m, tag[EDGE_TAG_SIZE];

	(void)state;
	udp_sent_by(t, sb, sizeof(sb));
	req = request("INVITE", "old1", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	free(expect(t, "SIP/2.0 100", NULL, 1000));
	peer_udp(t, req);
	free(expect(t, "SIP/2.0 100", NULL, 1000));
	assert_int_equal(t->requests, 1);
	assert_int_equal(edge_stx_reply(t->stx, 404, NULL, NULL, NULL, NULL, 0), 0);
	m = expect(t, "SIP/2.0 404", NULL, 1000);
	to_tag(m, tag);
	free(m);
	ack = request("ACK", "old1", "UDP", sb, tag, NULL);
	peer_udp(t, ack);
	t_run_for(t, 10);
	count(t, "SIP/2.0 404", NULL);
	t_run_for(t, 150);
	assert_int_equal(count(t, "SIP/2.0 404", NULL), 0); /* the ACK matched */
	assert_int_equal(t->stateless, 0);
	wait_idle(t, 1000);
	free(ack);
	free(req);
}

/* Allocation failures: a request is dropped (the peer's retransmission then makes the
 * transaction), a client transaction is refused; nothing leaks. */
static void test_oom(void **state)
{
	struct t *t = &T;
	char sb[64], *req;
	int err;

	(void)state;
	udp_sent_by(t, sb, sizeof(sb));
	req = request("OPTIONS", "z9hG4bKoom", "UDP", sb, NULL, NULL);
	sk_mem_fail_after(1);
	peer_udp(t, req);
	t_run_for(t, 50);
	assert_int_equal(t->requests, 0);
	peer_udp(t, req);
	WAIT_UNTIL(t, t->requests == 1, 1000);
	edge_stx_reply(t->stx, 200, NULL, NULL, NULL, NULL, 0);
	for (unsigned long n = 1; n < 4; n++) {
		sk_mem_fail_after(n);
		err = edge_ctx_start(t->l, NULL, new_request("OPTIONS"), EDGE_PROTO_UDP,
				     &t->pu_addr, 0, "name", on_ctx, t);
		sk_mem_fail_after(0);
		assert_true(err == 0 || err == SK_ENOMEM);
		if (!err)
			break;
	}
	assert_int_equal(err, 0);
	wait_idle(t, T64 + 1000);
	free(req);
}

/* A TU that never answers: the guard (2 x Timer F for non-INVITE) answers 500. */
static void test_server_guard(void **state)
{
	struct t *t = &T;
	char sb[64], *req, *m;

	(void)state;
	udp_sent_by(t, sb, sizeof(sb));
	req = request("OPTIONS", "z9hG4bKg1", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	WAIT_UNTIL(t, t->requests == 1, 1000);
	t_run_for(t, T64);
	assert_int_equal(count(t, "SIP/2.0", NULL), 0);
	m = expect(t, "SIP/2.0 500 Server Internal Error (no answer)", NULL, T64 + 1000);
	free(m);
	assert_int_equal(edge_stx_status(t->stx), 500);
	assert_int_equal(edge_stx_reply(t->stx, 200, NULL, NULL, NULL, NULL, 0), SK_EINVAL);
	wait_idle(t, T64 + 1000);
	free(req);
}

/* After the final response the stx keeps its key and the response, not the request:
 * released once the TU has let go of the stx (after the loop turn), while a
 * retransmission still gets the very same response (§17.2.2). */
static void test_server_request_released(void **state)
{
	struct t *t = &T;
	struct edge_txl_stats st;
	struct edge_stx *stx;
	char sb[64], *req, *m1, *m2;

	(void)state;
	udp_sent_by(t, sb, sizeof(sb));
	req = request("REGISTER", "z9hG4bKr1", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	WAIT_UNTIL(t, t->requests == 1, 1000);
	edge_txl_stats(t->l, &st);
	assert_int_equal(st.stx_requests, 1);
	assert_int_equal(edge_stx_reply(t->stx, 200, NULL, "Contact: <sip:a@b>\r\n", NULL, NULL, 0),
			 0);
	m1 = expect(t, "SIP/2.0 200 OK", "CSeq: 1 REGISTER", 1000);
	/* the TU still holds the stx: it may still read the request */
	t_run_for(t, 10);
	assert_non_null(edge_stx_msg(t->stx));
	edge_txl_stats(t->l, &st);
	assert_int_equal(st.stx_requests, 1);
	/* a second final is refused, whether the request is there or not */
	assert_int_equal(edge_stx_reply(t->stx, 500, NULL, NULL, NULL, NULL, 0), SK_EINVAL);
	t->stx = sk_deref(t->stx);
	wait_idle(t, T64 + 1000);

	/* The usual case: the TU answers and lets go. */
	free(req);
	req = request("REGISTER", "z9hG4bKr2", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	WAIT_UNTIL(t, t->requests == 2, 1000);
	stx = t->stx; /* the layer's reference keeps it while it absorbs retransmissions */
	assert_int_equal(edge_stx_reply(stx, 200, NULL, "Contact: <sip:a@b>\r\n", NULL, NULL, 0), 0);
	t->stx = sk_deref(t->stx);
	assert_non_null(edge_stx_msg(stx)); /* not inside the answering call chain */
	WAIT_UNTIL(t, (edge_txl_stats(t->l, &st), st.stx_requests == 0), 1000);
	assert_null(edge_stx_msg(stx));
	assert_null(edge_stx_rx(stx)); /* released with it */
	assert_int_equal(st.stx_live, 1);
	assert_int_equal(edge_stx_status(stx), 200);
	assert_int_equal(edge_stx_reply(stx, 500, NULL, NULL, NULL, NULL, 0), SK_EINVAL);
	free(m1);
	m1 = expect(t, "SIP/2.0 200 OK", "CSeq: 1 REGISTER", 1000);
	peer_udp(t, req);
	m2 = expect(t, "SIP/2.0 200 OK", "CSeq: 1 REGISTER", 1000);
	assert_string_equal(m1, m2);
	assert_int_equal(t->requests, 2);
	edge_txl_stats(t->l, &st);
	assert_int_equal(st.retransmissions_absorbed, 1);
	wait_idle(t, T64 + 1000); /* Timer J */
	free(m1);
	free(m2);
	free(req);
}

/* An INVITE's non-2xx: the request goes, Timer G still resends the same response, the
 * ACK still matches (the key outlives the request) and Timer H's log has the Call-ID. */
static void test_server_invite_released(void **state)
{
	struct t *t = &T;
	struct edge_txl_stats st;
	char sb[64], *req, *ack, *m1, *m2, tag[EDGE_TAG_SIZE];

	(void)state;
	udp_sent_by(t, sb, sizeof(sb));
	req = request("INVITE", "z9hG4bKir", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	free(expect(t, "SIP/2.0 100 Trying", NULL, 1000));
	assert_int_equal(edge_stx_reply(t->stx, 486, NULL, NULL, NULL, NULL, 0), 0);
	t->stx = sk_deref(t->stx);
	m1 = expect(t, "SIP/2.0 486 Busy Here", NULL, 1000);
	WAIT_UNTIL(t, (edge_txl_stats(t->l, &st), st.stx_requests == 0), 1000);
	m2 = expect(t, "SIP/2.0 486 Busy Here", NULL, 5 * T1); /* Timer G */
	assert_string_equal(m1, m2);
	free(m2);
	peer_udp(t, req); /* a retransmitted INVITE: the 486 again */
	m2 = expect(t, "SIP/2.0 486 Busy Here", NULL, 1000);
	assert_string_equal(m1, m2);
	ack = request("ACK", "z9hG4bKir", "UDP", sb, to_tag(m1, tag), NULL);
	peer_udp(t, ack);
	t_run_for(t, 10);
	count(t, "SIP/2.0 486", NULL);
	t_run_for(t, 150);
	assert_int_equal(count(t, "SIP/2.0 486", NULL), 0); /* Confirmed */
	assert_int_equal(t->stateless, 0);		    /* the ACK was absorbed */
	wait_idle(t, 1000);
	free(m1);
	free(m2);
	free(ack);
	free(req);
}

/* §8.2.7: a request challenged with 401/407 ends at once; its retransmission is a
 * new request with a new answer, and no transaction stays behind. The ACK of an
 * INVITE's 407 is known by our To-tag and absorbed. A forwarded 401 stays stateful. */
static void test_server_stateless_challenge(void **state)
{
	struct t *t = &T;
	struct edge_txl_stats st;
	char sb[64], *req, *ack, *m1, *m2, tag[EDGE_TAG_SIZE], first[EDGE_TAG_SIZE];

	(void)state;
	udp_sent_by(t, sb, sizeof(sb));
	req = request("REGISTER", "z9hG4bKs1", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	WAIT_UNTIL(t, t->requests == 1, 1000);
	assert_int_equal(edge_stx_reply(t->stx, 401, NULL,
					"WWW-Authenticate: Digest realm=\"a\", nonce=\"1\"\r\n", NULL,
					NULL, 0),
			 0);
	assert_int_equal(edge_txl_live(t->l), 0); /* at once, no Timer J */
	assert_int_equal(edge_txl_pending(t->l), 0);
	assert_int_equal(edge_stx_status(t->stx), 401);
	assert_int_equal(edge_stx_reply(t->stx, 200, NULL, NULL, NULL, NULL, 0), SK_ECANCELED);
	m1 = expect(t, "SIP/2.0 401 Unauthorized", "nonce=\"1\"", 1000);
	peer_udp(t, req); /* the same request again: a new transaction, a new answer */
	WAIT_UNTIL(t, t->requests == 2, 1000);
	edge_txl_stats(t->l, &st);
	assert_int_equal(st.retransmissions_absorbed, 0);
	assert_int_equal(st.stx_total, 2);
	assert_int_equal(edge_stx_reply(t->stx, 401, NULL,
					"WWW-Authenticate: Digest realm=\"a\", nonce=\"2\"\r\n", NULL,
					NULL, 0),
			 0);
	m2 = expect(t, "SIP/2.0 401 Unauthorized", "nonce=\"2\"", 1000);
	assert_string_not_equal(to_tag(m1, first), to_tag(m2, (char[EDGE_TAG_SIZE]){0}));
	assert_int_equal(edge_txl_live(t->l), 0);
	t_run_for(t, 4 * T1);
	assert_int_equal(count(t, "SIP/2.0", NULL), 0); /* no Timer G for a non-INVITE */
	free(m1);
	free(m2);
	free(req);

	/* 407 the same (a MESSAGE, proxy authentication); over TCP too */
	peer_tcp_connect(t);
	req = request("MESSAGE", "z9hG4bKs2", "TCP", "client.invalid:5060", NULL, NULL);
	peer_tcp(t, req);
	WAIT_UNTIL(t, t->requests == 3, 1000);
	assert_int_equal(edge_stx_reply(t->stx, 407, NULL, NULL, NULL, NULL, 0), 0);
	assert_int_equal(edge_txl_live(t->l), 0);
	free(expect(t, "SIP/2.0 407", "CSeq: 1 MESSAGE", 1000));
	free(req);

	/* An INVITE's 407 too: no Timer G (the caller's Timer A repairs a lost 407),
	 * and its ACK, matching nothing, is absorbed by our To-tag (the first half
	 * of every tag of this layer) instead of reaching the TU. */
	req = request("INVITE", "z9hG4bKs3", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	free(expect(t, "SIP/2.0 100 Trying", NULL, 1000));
	assert_int_equal(edge_stx_reply(t->stx, 407, NULL, NULL, NULL, NULL, 0), 0);
	assert_int_equal(edge_txl_live(t->l), 0);
	assert_int_equal(edge_txl_pending(t->l), 0);
	m1 = expect(t, "SIP/2.0 407", "CSeq: 1 INVITE", 1000);
	to_tag(m1, tag);
	assert_int_equal(strlen(tag), EDGE_TAG_SIZE - 1);
	assert_memory_equal(tag, first, EDGE_TAG_SIZE / 2); /* the layer's half */
	assert_string_not_equal(tag, first);
	ack = request("ACK", "z9hG4bKs3", "UDP", sb, to_tag(m1, tag), NULL);
	peer_udp(t, ack);
	WAIT_UNTIL(t, (edge_txl_stats(t->l, &st), st.acks_absorbed == 1), 1000);
	t_run_for(t, 4 * T1);
	assert_int_equal(count(t, "SIP/2.0", NULL), 0); /* no Timer G */
	assert_int_equal(t->stateless, 0);
	assert_int_equal(edge_txl_live(t->l), 0);
	free(ack);
	/* An ACK with a To-tag not ours that matches nothing goes to the TU. */
	tag[0] = (char)(tag[0] == '0' ? '1' : '0');
	ack = request("ACK", "z9hG4bKs3", "UDP", sb, tag, NULL);
	peer_udp(t, ack);
	WAIT_UNTIL(t, t->stateless == 1, 1000);
	edge_txl_stats(t->l, &st);
	assert_int_equal(st.acks_absorbed, 1);
	t->stateless = 0;
	free(m1);
	free(ack);
	free(req);
	/* A final that is not a challenge stays stateful, with the other half: its ACK
	 * is parsed and ends its transaction. */
	req = request("INVITE", "z9hG4bKs5", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	free(expect(t, "SIP/2.0 100 Trying", NULL, 1000));
	assert_int_equal(edge_stx_reply(t->stx, 486, NULL, NULL, NULL, NULL, 0), 0);
	m1 = expect(t, "SIP/2.0 486", "CSeq: 1 INVITE", 1000);
	to_tag(m1, tag);
	assert_memory_not_equal(tag, first, EDGE_TAG_SIZE / 2);
	ack = request("ACK", "z9hG4bKs5", "UDP", sb, tag, NULL);
	peer_udp(t, ack);
	wait_idle(t, 1000); /* Confirmed, then Timer I (T4) */
	edge_txl_stats(t->l, &st);
	assert_int_equal(st.acks_absorbed, 1);
	assert_int_equal(t->stateless, 0);
	assert_int_equal(count(t, "SIP/2.0 486", NULL), 0); /* the ACK stopped Timer G */
	free(m1);
	free(ack);
	free(req);

	/* A challenge from downstream, forwarded: stateful (§16), its retransmission
	 * absorbed. */
	req = request("OPTIONS", "z9hG4bKs4", "UDP", sb, NULL, NULL);
	peer_udp(t, req);
	WAIT_UNTIL(t, t->requests == 6, 1000);
	m1 = response(req, 401, "down");
	assert_int_equal(edge_stx_send(t->stx, 401, m1, strlen(m1)), 0);
	free(m1);
	assert_int_equal(edge_txl_live(t->l), 1);
	free(expect(t, "SIP/2.0 401", "CSeq: 1 OPTIONS", 1000));
	peer_udp(t, req);
	free(expect(t, "SIP/2.0 401", "CSeq: 1 OPTIONS", 1000));
	assert_int_equal(t->requests, 6);
	wait_idle(t, T64 + 1000);
	free(req);
}

/* The timers (txn_int.h): one queue per duration, the heap beyond TXN_TQ_MAX of
 * them. Every armed timer fires once, in deadline order, never early; a stopped one
 * never; a restarted one at its new deadline, whichever structure it moves between. */
#define NT 48
static struct rec {
	struct txn_timer t; /* first: the callback's pointer is the record's */
	uint64_t fired_at, due;
	int fired;
} R[NT];
static uint64_t last_due;
static int nfired, out_of_order;

static void rec_cb(struct txn_timer *t)
{
	struct rec *r = (struct rec *)t;

	r->fired++;
	r->due = t->due;
	r->fired_at = uv_now(&T.loop);
	if (t->due < last_due)
		out_of_order++;
	last_due = t->due;
	nfired++;
}

static void test_timer_queues_and_heap(void **state)
{
	struct t *t = &T;
	struct edge_txl *l = t->l;
	int armed = 0;

	(void)state;
	memset(R, 0, sizeof(R));
	nfired = out_of_order = 0;
	last_due = 0;
	/* 24 durations (5..74 ms): 16 queues, the rest in the heap */
	for (int i = 0; i < NT; i++)
		txn_timer_start(l, &R[i].t, 5 + (uint64_t)(i % 24) * 3, rec_cb);
	assert_int_equal(l->ntq, TXN_TQ_MAX);
	assert_int_equal(l->heap_n, 2 * (24 - TXN_TQ_MAX));
	for (int i = 0; i < NT; i++) {
		if (i % 7 == 3)
			txn_timer_stop(l, &R[i].t); /* in queues and in the heap */
		else if (i % 11 == 5)
			txn_timer_start(l, &R[i].t, 90, rec_cb); /* moved, to the heap */
		else if (i % 13 == 1)
			txn_timer_start(l, &R[i].t, 8, rec_cb); /* moved, to a queue */
	}
	txn_timer_stop(l, &R[3].t); /* twice: nothing */
	for (int i = 0; i < NT; i++)
		armed += i % 7 != 3;
	WAIT_UNTIL(t, nfired == armed, 2000);
	t_run_for(t, 50);
	assert_int_equal(nfired, armed);
	assert_int_equal(out_of_order, 0);
	for (int i = 0; i < NT; i++) {
		assert_int_equal(R[i].fired, i % 7 != 3);
		if (R[i].fired)
			assert_true(R[i].fired_at >= R[i].due);
		assert_int_equal(R[i].t.q, 0);
		assert_int_equal(R[i].t.pos, 0);
	}
	assert_int_equal(l->heap_n, 0);
	for (size_t i = 0; i < l->ntq; i++)
		assert_null(l->tq[i].head);
}

#define TT(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TT(test_server_nonivite_absorbs),
	    TT(test_server_invite_486_until_ack),
	    TT(test_server_invite_timer_h),
	    TT(test_server_cancel),
	    TT(test_server_cancel_unknown),
	    TT(test_server_tcp),
	    TT(test_client_nonivite_timeout),
	    TT(test_client_invite_486_ack),
	    TT(test_client_invite_200_accepted),
	    TT(test_client_cancel_deferred),
	    TT(test_client_tcp),
	    TT(test_client_start_errors),
	    TT(test_client_send_error),
	    TT(test_client_flow_closed),
	    TT(test_metrics),
	    TT(test_client_timer_c),
	    TT(test_server_rfc2543),
	    TT(test_oom),
	    TT(test_server_guard),
	    TT(test_server_request_released),
	    TT(test_server_invite_released),
	    TT(test_server_stateless_challenge),
	    TT(test_timer_queues_and_heap),
	    TT(test_client_200_after_release),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
