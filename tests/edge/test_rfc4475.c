/* Unit tests for the edge's SIP message checks (services/edge/sip_check.h): the 49
 * RFC 4475 torture messages with the verdict docs/edge-sip-checks.md gives for each,
 * over UDP and, for the framing cases, over a stream; then truncation, size and a few
 * handcrafted faults. The directory of .dat files is argv[1] or $SKEIN_RFC4475; when
 * it is missing the test fails. */
#define _GNU_SOURCE /* memmem */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "sip_check.h"
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>

#define MAX_SIZE  65535
#define NEED_MORE (-1) /* expected: edge_sip_check() returns SK_EAGAIN */
#define DROP	  (-2) /* expected: v.drop */

struct rfc_case {
	const char *file;
	enum edge_transport t;
	int expect;	 /* status, NEED_MORE or DROP */
	size_t consumed; /* checked when not 0 */
	const char *why; /* a substring of the reason, or NULL */
};

static const struct rfc_case cases[] = {
    /* 3.1.1 valid messages */
    {"wsinv.dat", EDGE_UDP, 0, 1001, NULL},
    {"intmeth.dat", EDGE_UDP, 0, 0, NULL},
    {"esc01.dat", EDGE_UDP, 0, 0, NULL},
    {"escnull.dat", EDGE_UDP, 0, 0, NULL},
    {"esc02.dat", EDGE_UDP, 0, 0, NULL},
    {"lwsdisp.dat", EDGE_UDP, 0, 0, NULL},
    {"longreq.dat", EDGE_UDP, 0, 0, NULL},
    {"dblreq.dat", EDGE_UDP, 0, 300, NULL},
    {"semiuri.dat", EDGE_UDP, 0, 0, NULL},
    {"transports.dat", EDGE_UDP, 0, 0, NULL},
    {"mpart01.dat", EDGE_UDP, 0, 1290, NULL},
    {"unreason.dat", EDGE_UDP, 0, 0, NULL},
    {"noreason.dat", EDGE_UDP, 0, 0, NULL},
    /* 3.1.2 invalid messages */
    {"badinv01.dat", EDGE_UDP, 400, 0, "Via"},
    {"clerr.dat", EDGE_UDP, 400, 0, "larger than datagram"},
    {"ncl.dat", EDGE_UDP, 400, 0, "bad Content-Length"},
    {"scalar02.dat", EDGE_UDP, 400, 0, "CSeq"},
    {"scalarlg.dat", EDGE_UDP, DROP, 0, NULL},
    {"quotbal.dat", EDGE_UDP, 400, 0, "To"},
    {"ltgtruri.dat", EDGE_UDP, 400, 0, "<> around Request-URI"},
    {"lwsruri.dat", EDGE_UDP, 400, 0, "LWS in Request-URI"},
    {"lwsstart.dat", EDGE_UDP, 0, 0, NULL}, /* choice: tolerated, re-encoded */
    {"trws.dat", EDGE_UDP, 0, 0, NULL},	    /* choice: tolerated, re-encoded */
    {"escruri.dat", EDGE_UDP, 400, 0, "escaped headers"},
    {"baddate.dat", EDGE_UDP, 0, 0, NULL}, /* choice: Date is not used */
    {"regbadct.dat", EDGE_UDP, 400, 0, "Contact"},
    {"badaspec.dat", EDGE_UDP, 0, 0, NULL}, /* choice: spaces ignored */
    {"baddn.dat", EDGE_UDP, 400, 0, "From"},
    {"badvers.dat", EDGE_UDP, 505, 0, NULL},
    {"mismatch01.dat", EDGE_UDP, 400, 0, "CSeq method mismatch"},
    {"mismatch02.dat", EDGE_UDP, 501, 0, "CSeq method mismatch"},
    {"bigcode.dat", EDGE_UDP, DROP, 0, NULL},
    /* 3.2, 3.3, 3.4 */
    {"badbranch.dat", EDGE_UDP, 0, 0, NULL}, /* choice: RFC 2543 matching */
    {"insuf.dat", EDGE_UDP, 400, 0, "missing Call-ID, From, To"},
    {"unkscm.dat", EDGE_UDP, 416, 0, NULL},
    {"novelsc.dat", EDGE_UDP, 416, 0, NULL},
    {"unksm2.dat", EDGE_UDP, 0, 0, NULL},
    {"bext01.dat", EDGE_UDP, 420, 0, NULL},
    {"invut.dat", EDGE_UDP, 0, 0, NULL},
    {"regaut01.dat", EDGE_UDP, 0, 0, NULL},
    {"multi01.dat", EDGE_UDP, 400, 0, "duplicate"},
    {"mcl01.dat", EDGE_UDP, 400, 0, "multiple Content-Length"},
    {"bcast.dat", EDGE_UDP, 0, 0, NULL},
    {"zeromf.dat", EDGE_UDP, 483, 0, NULL},
    {"cparam01.dat", EDGE_UDP, 0, 0, NULL},
    {"cparam02.dat", EDGE_UDP, 0, 0, NULL},
    {"regescrt.dat", EDGE_UDP, 0, 0, NULL},
    {"sdp01.dat", EDGE_UDP, 0, 0, NULL},
    {"inv2543.dat", EDGE_UDP, 0, 445, NULL},
    /* the framing cases over a stream */
    {"clerr.dat", EDGE_STREAM, NEED_MORE, 0, NULL},
    {"ncl.dat", EDGE_STREAM, 400, 0, "bad Content-Length"},
    {"mcl01.dat", EDGE_STREAM, 400, 0, "multiple Content-Length"},
    {"mpart01.dat", EDGE_STREAM, 0, 1290, NULL},
    {"dblreq.dat", EDGE_STREAM, 0, 300, NULL},
    {"inv2543.dat", EDGE_STREAM, 400, 0, "Content-Length"},
};

static const char *dir;

static char *load(const char *name, size_t *len)
{
	char path[4096];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	/* exactly n bytes, so that ASan sees any read past the end */
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (!buf || n <= 0 || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static int run(const char *buf, size_t len, enum edge_transport t, size_t max,
	       struct edge_verdict *v, msg_t **msgp)
{
	return edge_sip_check(buf, len, t, max, msgp, v);
}

/* Checks one case; prints what differs and returns 1 on mismatch. */
static int check_case(const struct rfc_case *c)
{
	struct edge_verdict v;
	msg_t *msg = NULL;
	size_t len = 0;
	char *buf = load(c->file, &len);
	int rc, bad = 0;

	if (!buf) {
		print_error("%s: cannot read\n", c->file);
		return 1;
	}
	rc = run(buf, len, c->t, MAX_SIZE, &v, &msg);
	if (c->expect == NEED_MORE)
		bad = rc != SK_EAGAIN || v.consumed || v.status;
	else if (c->expect == DROP)
		bad = rc || !v.drop || v.status;
	else
		bad = rc || v.drop || v.status != c->expect;
	if (!bad && c->consumed && v.consumed != c->consumed)
		bad = 1;
	if (!bad && c->why && !strstr(v.reason, c->why))
		bad = 1;
	/* A message comes back exactly when the verdict is accept. */
	if (!bad && (msg != NULL) != (rc == 0 && c->expect == 0))
		bad = 1;
	if (bad)
		print_error("%s over %s: rc %d status %d drop %d consumed %zu reason \"%s\"\n",
			    c->file, c->t == EDGE_UDP ? "UDP" : "stream", rc, v.status, v.drop,
			    v.consumed, v.reason);
	if (msg)
		msg_destroy(msg);
	free(buf);
	return bad;
}

static void test_rfc4475_table(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		bad += check_case(&cases[i]);
	assert_int_equal(bad, 0);
}

/* Every .dat of the directory is in the table, and there are 49 of them. */
static void test_rfc4475_all_files(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	(void)state;
	assert_non_null(d);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		bool found = false;

		if (l < 5 || strcmp(de->d_name + l - 4, ".dat"))
			continue;
		n++;
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			found |= strcmp(cases[i].file, de->d_name) == 0 && cases[i].t == EDGE_UDP;
		if (!found)
			print_error("%s: not in the table\n", de->d_name);
		assert_true(found);
	}
	closedir(d);
	assert_int_equal(n, 49);
}

/* RFC 4475 §3.1.1.2: the method and CSeq method keep '+' and '`' (sofia-sip is
 * handed a copy with '-' there and the bytes are put back). */
static void test_intmeth_method_kept(void **state)
{
	static const char method[] = "!interesting-Method0123456789_*+`.%indeed'~";
	struct edge_verdict v;
	msg_t *msg = NULL;
	size_t len = 0;
	char *buf = load("intmeth.dat", &len);
	sip_t *sip;

	(void)state;
	assert_non_null(buf);
	assert_int_equal(run(buf, len, EDGE_UDP, MAX_SIZE, &v, &msg), 0);
	assert_non_null(msg);
	sip = sip_object(msg);
	assert_string_equal(sip->sip_request->rq_method_name, method);
	assert_string_equal(sip->sip_cseq->cs_method_name, method);
	msg_destroy(msg);
	free(buf);
}

/* RFC 4475 §3.1.2.9: lwsstart is accepted, but its raw Request-Line (with the extra
 * SP) is dropped so that encoding the message writes a clean one. */
static void test_lwsstart_not_forwarded(void **state)
{
	struct edge_verdict v;
	msg_t *msg = NULL;
	size_t len = 0;
	char *buf = load("lwsstart.dat", &len);

	(void)state;
	assert_non_null(buf);
	assert_int_equal(run(buf, len, EDGE_UDP, MAX_SIZE, &v, &msg), 0);
	assert_non_null(msg);
	assert_null(sip_object(msg)->sip_request->rq_common->h_data);
	msg_destroy(msg);
	free(buf);
}

static void test_bext01_unsupported(void **state)
{
	struct edge_verdict v;
	size_t len = 0;
	char *buf = load("bext01.dat", &len);

	(void)state;
	assert_non_null(buf);
	assert_int_equal(run(buf, len, EDGE_UDP, MAX_SIZE, &v, NULL), 0);
	assert_int_equal(v.status, 420);
	assert_string_equal(v.unsupported, "noProxiesSupportThis, norDoAnyProxiesSupportThis");
	free(buf);
}

/* Every prefix of a valid message: "need more" over a stream, 400 or drop over UDP.
 * unframed: the message has no Content-Length, so over UDP its body is whatever the
 * datagram holds (RFC 3261 §18.3, inv2543.dat) and a cut body is still a message. */
static void truncate_all(const char *file, bool unframed)
{
	size_t len = 0, body = (size_t)-1;
	char *buf = load(file, &len);

	assert_non_null(buf);
	if (unframed) {
		const char *sep = memmem(buf, len, "\r\n\r\n", 4);

		assert_non_null(sep);
		body = (size_t)(sep - buf) + 4;
	}
	for (size_t k = 0; k < len; k++) {
		struct edge_verdict v;
		msg_t *msg = NULL;
		char *cut = malloc(k ? k : 1);
		int rc;

		assert_non_null(cut);
		memcpy(cut, buf, k);
		rc = run(cut, k, EDGE_STREAM, MAX_SIZE, &v, &msg);
		/* over a stream, an unframed message is refused once its headers are in */
		if (k >= body && rc == 0 && v.status == 400)
			rc = SK_EAGAIN;
		if (rc != SK_EAGAIN)
			print_error("%s cut at %zu over a stream: rc %d status %d \"%s\"\n", file,
				    k, rc, v.status, v.reason);
		assert_int_equal(rc, SK_EAGAIN);
		assert_null(msg);
		rc = run(cut, k, EDGE_UDP, MAX_SIZE, &v, &msg);
		if (k >= body) {
			assert_int_equal(rc, 0);
			assert_int_equal(v.status, 0);
			assert_non_null(msg);
			msg_destroy(msg);
			free(cut);
			continue;
		}
		if (rc || !(v.status == 400 || v.drop))
			print_error("%s cut at %zu over UDP: rc %d status %d \"%s\"\n", file, k, rc,
				    v.status, v.reason);
		assert_int_equal(rc, 0);
		assert_true(v.status == 400 || (v.drop && v.status == 0));
		assert_null(msg);
		free(cut);
	}
	free(buf);
}

static void test_truncated(void **state)
{
	(void)state;
	truncate_all("wsinv.dat", false);
	truncate_all("mpart01.dat", false);
	truncate_all("unreason.dat", false);
	truncate_all("inv2543.dat", true);
}

static const char options[] = "OPTIONS sip:edge.example.com SIP/2.0\r\n"
			      "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK776\r\n"
			      "Max-Forwards: 70\r\n"
			      "%s"
			      "Call-ID: c1@192.0.2.1\r\n"
			      "CSeq: 1 OPTIONS\r\n"
			      "%s"
			      "Content-Length: 0\r\n\r\n";

static void expect(const char *msgtext, enum edge_transport t, size_t max, int status,
		   const char *why)
{
	struct edge_verdict v;
	msg_t *msg = NULL;
	size_t len = strlen(msgtext);
	char *buf = malloc(len);
	int rc;

	assert_non_null(buf);
	memcpy(buf, msgtext, len);
	rc = run(buf, len, t, max, &v, &msg);
	if (rc || v.status != status || (why && !strstr(v.reason, why)))
		print_error("got rc %d status %d drop %d \"%s\" for:\n%s\n", rc, v.status, v.drop,
			    v.reason, msgtext);
	assert_int_equal(rc, 0);
	assert_int_equal(v.status, status);
	if (why)
		assert_non_null(strstr(v.reason, why));
	assert_true((msg != NULL) == (status == 0 && !v.drop));
	if (msg)
		msg_destroy(msg);
	free(buf);
}

static void test_handcrafted(void **state)
{
	char m[1024];

	(void)state;
	snprintf(m, sizeof(m), options, "From: <sip:a@example.com>;tag=1\r\n",
		 "To: <sip:edge.example.com>\r\n");
	expect(m, EDGE_UDP, MAX_SIZE, 0, NULL);
	expect(m, EDGE_STREAM, MAX_SIZE, 0, NULL);
	/* RFC 3261 §18.1.1: over max_size. */
	expect(m, EDGE_UDP, 100, 513, "Too Large");
	expect(m, EDGE_STREAM, 100, 513, "Too Large");
	snprintf(m, sizeof(m), options, "", "To: <sip:edge.example.com>\r\n");
	expect(m, EDGE_UDP, MAX_SIZE, 400, "missing From");
	snprintf(m, sizeof(m), options, "From: <sip:a@example.com>;tag=1\r\n",
		 "To: <sip:edge.example.com>\r\nCall-ID: again\r\n");
	expect(m, EDGE_UDP, MAX_SIZE, 400, "duplicate Call-ID");
	snprintf(m, sizeof(m), options, "From: <sip:a@example.com>;tag=1\r\n",
		 "To: <sip:edge.example.com>\r\nMax-Forwards: 12\r\n");
	expect(m, EDGE_UDP, MAX_SIZE, 400, "duplicate Max-Forwards");
	snprintf(m, sizeof(m), options, "From: <sip:a@example.com>;tag=1\r\n",
		 "To: <sip:edge.example.com>\r\nContent-Length: 1\r\n");
	expect(m, EDGE_UDP, MAX_SIZE, 400, "Content-Length");
	snprintf(m, sizeof(m), options, "From: <sip:a@example.com>;tag=1\r\n",
		 "To: <sip:edge.example.com>\r\nCSeq: x OPTIONS\r\n");
	expect(m, EDGE_UDP, MAX_SIZE, 400, "CSeq");
	/* over a stream, a Content-Length past max_size is 513 before the body comes */
	expect("OPTIONS sip:e.example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
	       "From: <sip:a@e.example.com>;tag=1\r\nTo: <sip:e.example.com>\r\n"
	       "Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 99999\r\n\r\n",
	       EDGE_STREAM, MAX_SIZE, 513, "Too Large");
	/* Via list with a bad protocol */
	expect("OPTIONS sip:e.example.com SIP/2.0\r\nVia: SIP/3.0/UDP h;branch=z9hG4bK1\r\n"
	       "From: <sip:a@e.example.com>;tag=1\r\nTo: <sip:e.example.com>\r\n"
	       "Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
	       EDGE_UDP, MAX_SIZE, 400, NULL);
	/* tel: is a scheme the edge routes */
	expect("INVITE tel:+15551234567 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
	       "From: <sip:a@e.example.com>;tag=1\r\nTo: <tel:+15551234567>\r\n"
	       "Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
	       EDGE_UDP, MAX_SIZE, 0, NULL);
	/* a response over max_size is dropped, not answered */
	{
		struct edge_verdict v;
		const char r[] = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
				 "Content-Length: 0\r\n\r\n";

		assert_int_equal(edge_sip_check(r, strlen(r), EDGE_UDP, 20, NULL, &v), 0);
		assert_true(v.drop);
		assert_int_equal(v.status, 0);
		/* missing From/To/Call-ID/CSeq: dropped */
		assert_int_equal(edge_sip_check(r, strlen(r), EDGE_UDP, MAX_SIZE, NULL, &v), 0);
		assert_true(v.drop);
	}
}

/* The Request-URI and Contact URIs are read back from their print only when the
 * print differs from the received text (sip_check.c uri_reprints()): both ways give
 * the verdicts they gave when every URI was read back. */
static void test_uri_reprint_paths(void **state)
{
	static const struct {
		const char *ruri, *contact;
		int status;
		const char *why;
	} uris[] = {
	    {"sip:a@h/.x", NULL, 400, "ambiguous Request-URI"},
	    {"sip:a@h.example.com;lr", NULL, 0, NULL},
	    {"SIP:a@H.example.com", NULL, 0, NULL},
	    {"sips:%61@h", NULL, 0, NULL},
	    {"sip:e.example.com", "<sip:u@h/.x>", 400, "ambiguous Contact URI"},
	    {"sip:e.example.com", "<sip:a@h>, <sip:b@h/.x>", 400, "ambiguous Contact URI"},
	    {"sip:e.example.com", "sip:u@h/.x", 400, "ambiguous Contact URI"},
	    {"sip:e.example.com", "\"<sip:x@y>\" <sip:u@h/.x>", 400, "ambiguous Contact URI"},
	    {"sip:e.example.com", "<sip:u@h/.x;a=>", 400, "ambiguous Contact URI"},
	    {"sip:e.example.com", "<sip:u@10.0.0.1:5060;transport=udp>;expires=60", 0, NULL},
	    {"sip:e.example.com", "Bob <sip:u@h;x=%40127.0.0.1>", 0, NULL},
	    {"sip:e.example.com", "<tel:+1-555->", 0, NULL},
	    {"sip:e.example.com", "<SIP:u@h>", 0, NULL},
	    {"sip:e.example.com", "*", 0, NULL},
	};
	char m[1024];

	(void)state;
	for (size_t k = 0; k < sizeof(uris) / sizeof(uris[0]); k++) {
		snprintf(m, sizeof(m),
			 "REGISTER %s SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
			 "From: <sip:a@e.example.com>;tag=1\r\nTo: <sip:a@e.example.com>\r\n"
			 "Call-ID: x\r\nCSeq: 1 REGISTER\r\n%s%s%sContent-Length: 0\r\n\r\n",
			 uris[k].ruri, uris[k].contact ? "Contact: " : "",
			 uris[k].contact ? uris[k].contact : "", uris[k].contact ? "\r\n" : "");
		expect(m, EDGE_UDP, MAX_SIZE, uris[k].status, uris[k].why);
	}
}

static void test_keepalive_and_junk(void **state)
{
	struct edge_verdict v;
	char junk[] = {'\x16', '\x03', '\x01', '\x02', '\0', '\x01'};

	(void)state;
	assert_int_equal(edge_sip_check("\r\n\r\n", 4, EDGE_STREAM, MAX_SIZE, NULL, &v), 0);
	assert_true(v.drop);
	assert_int_equal(v.consumed, 4);
	assert_int_equal(edge_sip_check("", 0, EDGE_STREAM, MAX_SIZE, NULL, &v), SK_EAGAIN);
	assert_int_equal(edge_sip_check("", 0, EDGE_UDP, MAX_SIZE, NULL, &v), 0);
	assert_true(v.drop);
	assert_int_equal(edge_sip_check(junk, sizeof(junk), EDGE_UDP, MAX_SIZE, NULL, &v), 0);
	assert_true(v.drop);
	assert_int_equal(edge_sip_check(junk, sizeof(junk), EDGE_STREAM, MAX_SIZE, NULL, &v), 0);
	assert_true(v.drop);
	assert_int_equal(edge_sip_check(NULL, 1, EDGE_UDP, MAX_SIZE, NULL, &v), SK_EINVAL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_rfc4475_all_files),
	    SK_TEST(test_rfc4475_table),
	    SK_TEST(test_intmeth_method_kept),
	    SK_TEST(test_bext01_unsupported),
	    SK_TEST(test_lwsstart_not_forwarded),
	    SK_TEST(test_truncated),
	    SK_TEST(test_handcrafted),
	    SK_TEST(test_keepalive_and_junk),
	    SK_TEST(test_uri_reprint_paths),
	};
	DIR *d;

	dir = argc > 1 ? argv[1] : getenv("SKEIN_RFC4475");
	/* The messages are the point of this test: without them it fails, not skips. */
	if (!dir || !(d = opendir(dir))) {
		fprintf(stderr,
			"test_rfc4475: no RFC 4475 directory (argv[1] or "
			"SKEIN_RFC4475): %s\n",
			dir ? dir : "(unset)");
		return 1;
	}
	closedir(d);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
