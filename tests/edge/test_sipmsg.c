/* Unit tests for the edge's SIP message helpers (services/edge/sipmsg.h): response
 * building, ACK/CANCEL derivation, reason table, branch and tag format, print round
 * trip. Messages are parsed by edge_sip_check as the transport does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sk_test.h"
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "sip_check.h"
#include "sipmsg.h"
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>

static const char invite[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
			     "Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa1;rport\r\n"
			     "Via: SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKa2, SIP/2.0/UDP "
			     "10.0.0.3;branch=z9hG4bKa3\r\n"
			     "Max-Forwards: 70\r\n"
			     "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
			     "From: Alice <sip:alice@example.com>;tag=ft1\r\n"
			     "To: Bob <sip:bob@example.com>\r\n"
			     "Call-ID: cid-1@10.0.0.1\r\n"
			     "CSeq: 42 INVITE\r\n"
			     "Contact: <sip:alice@10.0.0.1:5070>\r\n"
			     "Content-Type: application/sdp\r\n"
			     "Content-Length: 4\r\n"
			     "\r\n"
			     "v=0\n";

static msg_t *parse(const char *text)
{
	struct edge_verdict v;
	msg_t *msg = NULL;

	assert_int_equal(edge_sip_check(text, strlen(text), EDGE_UDP, 65535, &msg, &v), 0);
	assert_int_equal(v.status, 0);
	assert_false(v.drop);
	assert_non_null(msg);
	return msg;
}

/* The Via of received/rport as the transaction layer adds it. */
static void add_received(msg_t *msg)
{
	sip_via_t *v = sip_object(msg)->sip_via;

	assert_true(msg_header_replace_param(msg_home(msg), v->v_common, "received=192.0.2.9") >=
		    0);
	assert_true(msg_header_replace_param(msg_home(msg), v->v_common, "rport=40000") >= 0);
}

static void test_response_vias_and_tag(void **state)
{
	msg_t *req = parse(invite), *resp;
	struct sk_buf b;
	sip_t *sip;
	const char *v1, *v2, *v3;

	(void)state;
	add_received(req);
	sk_buf_init(&b);
	assert_int_equal(
	    edge_response_build(&b, req, 486, NULL, "tt1", NULL, "Skein", NULL, NULL, 0), 0);
	assert_memory_equal(b.data, "SIP/2.0 486 Busy Here\r\n", 23);
	v1 = strstr(b.data, "Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa1;rport=40000;"
			    "received=192.0.2.9\r\n");
	v2 = strstr(b.data, "Via: SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKa2\r\n");
	v3 = strstr(b.data, "Via: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKa3\r\n");
	assert_non_null(v1);
	assert_non_null(v2);
	assert_non_null(v3);
	assert_true(v1 < v2 && v2 < v3);
	assert_non_null(strstr(b.data, "To: Bob <sip:bob@example.com>;tag=tt1\r\n"));
	assert_non_null(strstr(b.data, "From: Alice <sip:alice@example.com>;tag=ft1\r\n"));
	assert_non_null(strstr(b.data, "CSeq: 42 INVITE\r\n"));
	assert_non_null(strstr(b.data, "Call-ID: cid-1@10.0.0.1\r\n"));
	assert_non_null(strstr(b.data, "Server: Skein\r\n"));
	assert_null(strstr(b.data, "Route:"));
	assert_null(strstr(b.data, "Contact:"));
	assert_non_null(strstr(b.data, "Content-Length: 0\r\n\r\n"));
	/* It parses, and the order survived. */
	resp = parse(b.data);
	sip = sip_object(resp);
	assert_int_equal(sip->sip_status->st_status, 486);
	assert_string_equal(sip->sip_via->v_host, "10.0.0.1");
	assert_string_equal(sip->sip_via->v_next->v_host, "10.0.0.2");
	assert_string_equal(sip->sip_via->v_next->v_next->v_host, "10.0.0.3");
	assert_string_equal(sip->sip_to->a_tag, "tt1");
	msg_destroy(resp);

	/* 100 Trying: no tag even when one is given (§8.2.6.2). */
	sk_buf_reset(&b);
	assert_int_equal(edge_response_build(&b, req, 100, NULL, "tt1", NULL, NULL, NULL, NULL, 0),
			 0);
	assert_non_null(strstr(b.data, "SIP/2.0 100 Trying\r\n"));
	assert_non_null(strstr(b.data, "To: Bob <sip:bob@example.com>\r\n"));
	assert_null(strstr(b.data, "tag=tt1"));
	assert_null(strstr(b.data, "Server:"));
	sk_buf_release(&b);
	msg_destroy(req);
}

static void test_response_existing_tag_extra_body(void **state)
{
	static const char bye[] = "BYE sip:alice@10.0.0.1 SIP/2.0\r\n"
				  "Via: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKb1\r\n"
				  "Max-Forwards: 70\r\n"
				  "From: <sip:bob@example.com>;tag=b\r\n"
				  "To: <sip:alice@example.com>;tag=a\r\n"
				  "Call-ID: c2\r\n"
				  "CSeq: 7 BYE\r\n"
				  "Content-Length: 0\r\n\r\n";
	msg_t *req = parse(bye), *resp;
	struct sk_buf b;
	sip_t *sip;

	(void)state;
	sk_buf_init(&b);
	assert_int_equal(edge_response_build(&b, req, 200, "Fine", "zzz", "X-A: 1\r\nX-B: 2\r\n",
					     NULL, "text/plain", "hello", 5),
			 0);
	assert_non_null(strstr(b.data, "SIP/2.0 200 Fine\r\n"));
	assert_non_null(strstr(b.data, "To: <sip:alice@example.com>;tag=a\r\n"));
	assert_null(strstr(b.data, "zzz"));
	assert_non_null(strstr(b.data, "X-A: 1\r\nX-B: 2\r\n"));
	assert_non_null(
	    strstr(b.data, "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"));
	assert_int_equal(b.len, (size_t)(strstr(b.data, "hello") - b.data) + 5);
	resp = parse(b.data);
	sip = sip_object(resp);
	assert_non_null(sip->sip_payload);
	assert_int_equal(sip->sip_payload->pl_len, 5);
	assert_non_null(msg_header_find_param((msg_common_t *)sip_object(resp)->sip_to, "tag="));
	msg_destroy(resp);
	sk_buf_release(&b);
	msg_destroy(req);
}

static void test_response_missing_callid(void **state)
{
	msg_t *req = parse(invite);
	struct sk_buf b;

	(void)state;
	sk_buf_init(&b);
	msg_header_remove(req, (msg_pub_t *)sip_object(req),
			  (msg_header_t *)sip_object(req)->sip_call_id);
	assert_null(sip_object(req)->sip_call_id);
	assert_int_equal(edge_response_build(&b, req, 404, NULL, NULL, NULL, NULL, NULL, NULL, 0),
			 SK_EINVAL);
	assert_int_equal(edge_response_build(&b, NULL, 404, NULL, NULL, NULL, NULL, NULL, NULL, 0),
			 SK_EINVAL);
	msg_destroy(req);
	req = parse(invite);
	assert_int_equal(edge_response_build(&b, req, 99, NULL, NULL, NULL, NULL, NULL, NULL, 0),
			 SK_EINVAL);
	assert_int_equal(edge_response_build(&b, req, 700, NULL, NULL, NULL, NULL, NULL, NULL, 0),
			 SK_EINVAL);
	sk_buf_release(&b);
	msg_destroy(req);
}

static void test_reason(void **state)
{
	(void)state;
	assert_string_equal(edge_reason(100), "Trying");
	assert_string_equal(edge_reason(180), "Ringing");
	assert_string_equal(edge_reason(200), "OK");
	assert_string_equal(edge_reason(408), "Request Timeout");
	assert_string_equal(edge_reason(481), "Call/Transaction Does Not Exist");
	assert_string_equal(edge_reason(487), "Request Terminated");
	assert_string_equal(edge_reason(503), "Service Unavailable");
	assert_string_equal(edge_reason(607), "Unwanted");
	assert_string_equal(edge_reason(299), "Unknown");
	assert_string_equal(edge_reason(0), "Unknown");
	assert_string_equal(edge_reason(-5), "Unknown");
	/* The table is sorted (binary search): every known code is found. */
	for (int c = 100; c < 700; c++)
		assert_non_null(edge_reason(c));
}

static void test_random_bytes(void **state)
{
	unsigned char a[64], b[64], zero[64] = {0};

	(void)state;
	/* more than the pool holds, so that it is refilled on the way */
	for (int k = 0; k < 100; k++)
		assert_int_equal(edge_random_bytes(a, sizeof(a)), 0);
	assert_int_equal(edge_random_bytes(b, sizeof(b)), 0);
	assert_int_equal(edge_random_bytes(b, 0), 0);
	assert_true(memcmp(a, zero, sizeof(a)) != 0);
	assert_true(memcmp(a, b, sizeof(a)) != 0);
}

static void test_branch_tag(void **state)
{
	char a[EDGE_BRANCH_SIZE], b[EDGE_BRANCH_SIZE], t[EDGE_TAG_SIZE], u[EDGE_TAG_SIZE];

	(void)state;
	for (int i = 0; i < 1000; i++) {
		edge_branch_new(a);
		edge_branch_new(b);
		assert_int_equal(strlen(a), 29);
		assert_memory_equal(a, "z9hG4bK", 7);
		assert_int_equal(strspn(a + 7,
					"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					"0123456789-_"),
				 22);
		assert_string_not_equal(a, b);
		edge_tag_new(t);
		edge_tag_new(u);
		assert_int_equal(strlen(t), 16);
		assert_int_equal(strspn(t, "0123456789abcdef"), 16);
		assert_string_not_equal(t, u);
	}
}

static void test_print_round_trip(void **state)
{
	msg_t *req = parse(invite), *again;
	sip_via_t *v;
	struct sk_buf b;
	sip_t *sip;

	(void)state;
	sk_buf_init(&b);
	v = sip_via_make(msg_home(req), "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtop;rport");
	assert_non_null(v);
	assert_int_equal(msg_header_insert(req, (msg_pub_t *)sip_object(req), (msg_header_t *)v),
			 0);
	assert_int_equal(edge_msg_print(req, &b), 0);
	assert_memory_equal(b.data,
			    "INVITE sip:bob@example.com SIP/2.0\r\n"
			    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtop;rport\r\n",
			    36 + 57);
	assert_int_equal(memcmp(b.data + b.len - 8, "\r\n\r\nv=0\n", 8), 0);
	again = parse(b.data);
	sip = sip_object(again);
	assert_string_equal(sip->sip_via->v_branch, "z9hG4bKtop");
	assert_string_equal(sip->sip_via->v_next->v_branch, "z9hG4bKa1");
	assert_int_equal(sip->sip_cseq->cs_seq, 42);
	assert_non_null(sip->sip_route->r_next);
	assert_int_equal(sip->sip_payload->pl_len, 4);
	msg_destroy(again);
	assert_int_equal(edge_msg_print(NULL, &b), SK_EINVAL);
	sk_buf_release(&b);
	msg_destroy(req);
}

static void test_derive_ack_cancel(void **state)
{
	static const char resp486[] = "SIP/2.0 486 Busy Here\r\n"
				      "Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa1\r\n"
				      "From: Alice <sip:alice@example.com>;tag=ft1\r\n"
				      "To: Bob <sip:bob@example.com>;tag=callee\r\n"
				      "Call-ID: cid-1@10.0.0.1\r\n"
				      "CSeq: 42 INVITE\r\n"
				      "Content-Length: 0\r\n\r\n";
	msg_t *req = parse(invite), *resp = parse(resp486), *m;
	struct sk_buf b;
	sip_t *sip;

	(void)state;
	sk_buf_init(&b);
	assert_int_equal(edge_request_derive(&b, req, "ACK", sip_object(resp)->sip_to), 0);
	m = parse(b.data);
	sip = sip_object(m);
	assert_int_equal(sip->sip_request->rq_method, sip_method_ack);
	assert_string_equal(sip->sip_request->rq_url->url_user, "bob");
	assert_string_equal(sip->sip_via->v_branch, "z9hG4bKa1");
	assert_null(sip->sip_via->v_next); /* the top Via only */
	assert_string_equal(sip->sip_to->a_tag, "callee");
	assert_string_equal(sip->sip_from->a_tag, "ft1");
	assert_int_equal(sip->sip_cseq->cs_seq, 42);
	assert_int_equal(sip->sip_cseq->cs_method, sip_method_ack);
	assert_non_null(sip->sip_route);
	assert_non_null(sip->sip_route->r_next);
	assert_int_equal(sip->sip_max_forwards->mf_count, 70);
	assert_null(sip->sip_payload);
	msg_destroy(m);

	sk_buf_reset(&b);
	assert_int_equal(edge_request_derive(&b, req, "CANCEL", NULL), 0);
	m = parse(b.data);
	sip = sip_object(m);
	assert_int_equal(sip->sip_request->rq_method, sip_method_cancel);
	assert_int_equal(sip->sip_cseq->cs_method, sip_method_cancel);
	assert_null(sip->sip_to->a_tag);
	assert_string_equal(sip->sip_via->v_branch, "z9hG4bKa1");
	msg_destroy(m);
	assert_int_equal(edge_request_derive(&b, resp, "ACK", NULL), SK_EINVAL);
	sk_buf_release(&b);
	msg_destroy(resp);
	msg_destroy(req);
}

/* Headers and URIs longer than the encoders' stack buffers. */
static void test_long_headers(void **state)
{
	char name[1001], text[4096], *p;
	msg_t *req, *m;
	struct sk_buf b;

	(void)state;
	memset(name, 'x', 1000);
	name[1000] = '\0';
	snprintf(text, sizeof(text),
		 "INVITE sip:%s@example.com SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlong\r\n"
		 "Max-Forwards: 70\r\n"
		 "From: <sip:a@example.com>;tag=f\r\n"
		 "To: \"%s\" <sip:b@example.com>\r\n"
		 "Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
		 name, name);
	req = parse(text);
	sk_buf_init(&b);
	assert_int_equal(edge_response_build(&b, req, 180, NULL, "t", NULL, NULL, NULL, NULL, 0),
			 0);
	p = strstr(b.data, name);
	assert_non_null(p);
	assert_memory_equal(p + 1000, "\" <sip:b@example.com>;tag=t\r\n", 29);
	sk_buf_reset(&b);
	assert_int_equal(edge_request_derive(&b, req, "CANCEL", NULL), 0);
	m = parse(b.data);
	assert_int_equal(strlen(sip_object(m)->sip_request->rq_url->url_user), 1000);
	msg_destroy(m);
	sk_buf_release(&b);
	msg_destroy(req);
}

/* The response as the printf-based builder made it before it was turned into plain
 * appends (start line, every header through msg_header_e(), then the fixed lines):
 * the bytes on the wire must not change. */
static void reference_response(struct sk_buf *b, msg_t *req, int status, const char *reason,
			       const char *to_tag, const char *extra, const char *server,
			       const char *ctype, const char *body)
{
	sip_t *sip = sip_object(req);
	const msg_header_t *h[] = {(const msg_header_t *)sip->sip_from,
				   (const msg_header_t *)sip->sip_to,
				   (const msg_header_t *)sip->sip_call_id,
				   (const msg_header_t *)sip->sip_cseq};
	char line[2048];
	issize_t n;

	if (status == 100 || sip->sip_to->a_tag)
		to_tag = NULL;
	sk_buf_printf(b, "SIP/2.0 %d %s\r\n", status, reason ? reason : edge_reason(status));
	for (const sip_via_t *v = sip->sip_via; v; v = v->v_next) {
		n = msg_header_e(line, sizeof(line), (const msg_header_t *)v, 0);
		sk_buf_append(b, line, (size_t)n);
	}
	for (size_t k = 0; k < 4; k++) {
		n = msg_header_e(line, sizeof(line), h[k], 0);
		if (k == 1 && to_tag)
			sk_buf_printf(b, "%.*s;tag=%s\r\n", (int)n - 2, line, to_tag);
		else
			sk_buf_append(b, line, (size_t)n);
	}
	if (extra)
		sk_buf_puts(b, extra);
	if (server)
		sk_buf_printf(b, "Server: %s\r\n", server);
	if (ctype && body)
		sk_buf_printf(b, "Content-Type: %s\r\n", ctype);
	sk_buf_printf(b, "Content-Length: %zu\r\n\r\n%s", body ? strlen(body) : 0,
		      body ? body : "");
}

static void test_response_bytes_unchanged(void **state)
{
	static const char *const reqs[] = {
	    invite,
	    "REGISTER sip:example.com SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKr1;rport\r\n"
	    "From: <sip:u@example.com>;tag=1\r\nTo: <sip:u@example.com>\r\n"
	    "Call-ID: r1\r\nCSeq: 4294967295 REGISTER\r\nContent-Length: 0\r\n\r\n",
	    /* an extension method with '+' and '`' (sip_check substitutes and restores them) */
	    "FOO+B`R sip:example.com SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
	    "From: <sip:u@example.com>;tag=1\r\nTo: <sip:u@example.com>;tag=2\r\n"
	    "Call-ID: x\r\nCSeq: 0 FOO+B`R\r\nContent-Length: 0\r\n\r\n",
	};

	(void)state;
	for (size_t k = 0; k < sizeof(reqs) / sizeof(reqs[0]); k++) {
		msg_t *req = parse(reqs[k]);
		struct sk_buf got, want;

		add_received(req);
		for (int round = 0; round < 3; round++) {
			int status = round == 0 ? 401 : round == 1 ? 100 : 699;
			const char *body = round == 2 ? "v=0\r\n" : NULL;

			sk_buf_init(&got);
			sk_buf_init(&want);
			assert_int_equal(edge_response_build(&got, req, status,
							     round == 2 ? "Odd" : NULL, "tg",
							     round ? "X-A: 1\r\n" : NULL,
							     round ? "Skein/1" : NULL, "text/x",
							     body, body ? strlen(body) : 0),
					 0);
			reference_response(&want, req, status, round == 2 ? "Odd" : NULL, "tg",
					   round ? "X-A: 1\r\n" : NULL,
					   round ? "Skein/1" : NULL, "text/x", body);
			assert_int_equal(got.len, want.len);
			assert_string_equal(got.data, want.data);
			sk_buf_release(&got);
			sk_buf_release(&want);
		}
		msg_destroy(req);
	}
}

/* sofia-sip's own print of msg (every header encoded by msg_prepare()). */
static void sofia_print(msg_t *msg, struct sk_buf *out)
{
	msg_iovec_t iov[64];
	isize_t n;

	assert_true(msg_serialize(msg, (msg_pub_t *)sip_object(msg)) >= 0);
	assert_true(msg_prepare(msg) >= 0);
	n = msg_iovec(msg, iov, 64);
	assert_true(n > 0 && n <= 64);
	for (isize_t i = 0; i < n; i++)
		sk_buf_append(out, iov[i].mv_base, iov[i].mv_len);
}

/* a printed by edge_msg_print() and its twin b by sofia-sip: the same bytes. */
static void assert_prints_as_sofia(msg_t *a, msg_t *b)
{
	struct sk_buf got, want;

	sk_buf_init(&got);
	sk_buf_init(&want);
	assert_int_equal(edge_msg_print(a, &got), 0);
	sofia_print(b, &want);
	assert_string_equal(got.data, want.data);
	sk_buf_release(&got);
	sk_buf_release(&want);
}

/* edge_msg_print() encodes the Request-Line and CSeq itself: the bytes are sofia-sip's,
 * for every part a URI can have. */
static void test_print_same_as_sofia(void **state)
{
	static const char *const lines[] = {
	    "INVITE sip:bob@example.com SIP/2.0",
	    "INVITE sips:bob:pw@example.com:5061;transport=tls;lr SIP/2.0",
	    "OPTIONS sip:example.com SIP/2.0",
	    "OPTIONS sip:[2001:db8::1]:5060;maddr=10.0.0.1 sip/2.0",
	    "MESSAGE tel:+1-555-0100;phone-context=example.com SIP/2.0",
	    "FOO+B`R sip:%61lice@example.com;x=%41 SIP/2.0",
	    "REGISTER sip:example.com  SIP/2.0",
	};
	static const char *const statuses[] = {
	    "SIP/2.0 200 OK",
	    "SIP/2.0 180 Ringing now",
	    "sip/2.0 699 ",
	};
	char text[1024];

	(void)state;
	for (size_t k = 0; k < sizeof(lines) / sizeof(lines[0]); k++) {
		const char *sp = strchr(lines[k], ' ');
		msg_t *a, *b;

		snprintf(text, sizeof(text),
			 "%s\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp\r\n"
			 "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
			 "Call-ID: p%zu\r\nCSeq: %s %.*s\r\nMax-Forwards: %zu\r\n"
			 "Content-Length: 0\r\n\r\n",
			 lines[k], k, k == 1 ? "4294967295" : "7", (int)(sp - lines[k]),
			 lines[k], k * 1000 + 1);
		a = parse(text);
		b = parse(text);
		assert_prints_as_sofia(a, b);
		/* printed again (after a change of the Request-URI): encoded again */
		sip_object(a)->sip_request->rq_url->url_port = "5099";
		msg_fragment_clear(sip_object(a)->sip_request->rq_common);
		sip_object(b)->sip_request->rq_url->url_port = "5099";
		msg_fragment_clear(sip_object(b)->sip_request->rq_common);
		assert_prints_as_sofia(a, b);
		msg_destroy(a);
		msg_destroy(b);
	}
	/* responses: the status line, also with an odd code and version spelling */
	for (size_t k = 0; k < sizeof(statuses) / sizeof(statuses[0]); k++) {
		msg_t *a, *b;

		snprintf(text, sizeof(text),
			 "%s\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp\r\n"
			 "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
			 "Call-ID: s%zu\r\nCSeq: 1 INVITE\r\nContent-Length: 3\r\n\r\nabc",
			 statuses[k], k);
		a = parse(text);
		b = parse(text);
		assert_prints_as_sofia(a, b);
		msg_destroy(a);
		msg_destroy(b);
	}
}

/* A response's Contact and Record-Route are relayed as they came (sip_check.c parses
 * responses without them): after the top Via is removed, the rest prints byte for
 * byte — spacing inside the value, case and parameter order included; only the
 * blanks after the colon become one space. A request's Contact is parsed as always. */
static void test_response_contact_rr_verbatim(void **state)
{
	/* %s: the blanks after the colons of Record-Route and Contact */
	static const char rest[] =
	    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa1\r\n"
	    "Record-Route:%s<sip:p2.example.com;LR;Transport=tcp>,<sip:p1.example.com;lr>\r\n"
	    "From: <sip:alice@example.com>;tag=1\r\n"
	    "To: <sip:bob@example.com>;tag=2\r\n"
	    "Call-ID: c1\r\n"
	    "CSeq: 1 INVITE\r\n"
	    "Contact:%s\"Bob\"  <sip:bob@192.0.2.4:5070;Transport=UDP>;Expires=60 ;q=0.5\r\n"
	    "Content-Length: 0\r\n\r\n";
	char resp[1024], want[1024];
	msg_t *m, *req;
	struct sk_buf b;
	sip_t *sip;
	int n;

	(void)state;
	n = snprintf(resp, sizeof(resp),
		     "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtop\r\n");
	snprintf(resp + n, sizeof(resp) - (size_t)n, rest, "   ", "  ");
	snprintf(want, sizeof(want), rest, " ", " ");
	m = parse(resp);
	sip = sip_object(m);
	assert_null(sip->sip_contact);
	assert_null(sip->sip_record_route);
	assert_int_equal(sip->sip_status->st_status, 200);
	assert_string_equal(sip->sip_to->a_tag, "2");
	msg_header_remove(m, (msg_pub_t *)sip, (msg_header_t *)sip->sip_via);
	sk_buf_init(&b);
	assert_int_equal(edge_msg_print(m, &b), 0);
	assert_memory_equal(b.data, "SIP/2.0 200 OK\r\n", 16);
	assert_string_equal(b.data + 16, want);
	sk_buf_release(&b);
	msg_destroy(m);

	req = parse(invite);
	assert_non_null(sip_object(req)->sip_contact);
	msg_destroy(req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_response_vias_and_tag),
	    SK_TEST(test_response_existing_tag_extra_body),
	    SK_TEST(test_response_missing_callid),
	    SK_TEST(test_reason),
	    SK_TEST(test_branch_tag),
	    SK_TEST(test_print_round_trip),
	    SK_TEST(test_derive_ack_cancel),
	    SK_TEST(test_long_headers),
	    SK_TEST(test_response_bytes_unchanged),
	    SK_TEST(test_print_same_as_sofia),
	    SK_TEST(test_response_contact_rr_verbatim),
	    SK_TEST(test_random_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
