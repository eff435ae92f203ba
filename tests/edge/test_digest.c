/* Unit tests for the edge's digest authentication (services/edge/digest.h): the RFC 2617
 * §3.5 and RFC 7616 §3.9.1 known answers, nonces, challenges, and SIP REGISTERs parsed
 * by sofia-sip (through edge_sip_check) end to end, with every refusal the module makes.
 * The module allocates nothing of its own, so there is no fault-injection loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "sk_test.h"
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "digest.h"
#include "sip_check.h"
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>

static const char secret[] = "cluster-secret-0123456789abcdef";
static const char realm[] = "example.com";
#define NOW	1700000000ull
#define MAX_AGE 300

/* ---- known answers ---- */

static void test_ha1_vectors(void **state)
{
	char out[EDGE_DIGEST_HEX_SIZE];

	(void)state;
	assert_int_equal(
	    edge_digest_ha1(EDGE_DIGEST_MD5, "Mufasa", "testrealm@host.com", "Circle Of Life", out),
	    0);
	assert_string_equal(out, "939e7578ed9e3c518a452acee763bce9");
	assert_int_equal(edge_digest_ha1(EDGE_DIGEST_SHA256, "Mufasa", "http-auth@example.org",
					 "Circle of Life", out),
			 0);
	assert_string_equal(out,
			    "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232");
	assert_int_equal(edge_digest_ha1(EDGE_DIGEST_MD5, NULL, "r", "p", out), SK_EINVAL);
}

/* A msg_auth_t as sofia-sip builds it, from a NULL-terminated list of params. */
static msg_auth_t *auth_of(msg_auth_t *au, const char **params)
{
	memset(au, 0, sizeof(*au));
	au->au_scheme = "Digest";
	au->au_params = (msg_param_t const *)params;
	return au;
}

static void check_http_vector(enum edge_digest_alg alg, const char **params, const char *user,
			      const char *rlm, const char *pw)
{
	struct edge_digest_creds c;
	struct edge_digest_result r;
	msg_auth_t au;
	char ha1[EDGE_DIGEST_HEX_SIZE];

	assert_int_equal(edge_digest_creds_get(&c, auth_of(&au, params), rlm, &r), 0);
	assert_int_equal(r.status, EDGE_DIGEST_OK);
	assert_int_equal(c.alg, alg);
	assert_true(c.qop);
	assert_int_equal(c.nc, 1);
	assert_int_equal(edge_digest_ha1(alg, user, rlm, pw, ha1), 0);
	/* HTTP vectors: the digest-uri is a path, so no Request-URI check. */
	assert_int_equal(edge_digest_verify(&c, "GET", NULL, ha1, alg, &r), 0);
	assert_int_equal(r.status, EDGE_DIGEST_OK);
	assert_string_equal(r.reason, "");
	assert_int_equal(edge_digest_ha1(alg, user, rlm, "Circle of life", ha1), 0);
	assert_int_equal(edge_digest_verify(&c, "GET", NULL, ha1, alg, &r), 0);
	assert_int_equal(r.status, EDGE_DIGEST_BAD_RESPONSE);
	assert_int_equal(edge_digest_ha1(alg, user, rlm, pw, ha1), 0);
	assert_int_equal(edge_digest_verify(&c, "POST", NULL, ha1, alg, &r), 0);
	assert_int_equal(r.status, EDGE_DIGEST_BAD_RESPONSE);
}

static void test_rfc2617_md5(void **state)
{
	const char *p[] = {"username=\"Mufasa\"",
			   "realm=\"testrealm@host.com\"",
			   "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"",
			   "uri=\"/dir/index.html\"",
			   "qop=auth",
			   "nc=00000001",
			   "cnonce=\"0a4f113b\"",
			   "response=\"6629fae49393a05397450978507c4ef1\"",
			   "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
			   NULL};

	(void)state;
	check_http_vector(EDGE_DIGEST_MD5, p, "Mufasa", "testrealm@host.com", "Circle Of Life");
}

static void test_rfc7616_sha256(void **state)
{
	const char *p[] = {
	    "username=\"Mufasa\"",
	    "realm=\"http-auth@example.org\"",
	    "uri=\"/dir/index.html\"",
	    "algorithm=SHA-256",
	    "nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\"",
	    "nc=00000001",
	    "cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\"",
	    "qop=auth",
	    "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\"",
	    "opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
	    NULL};
	/* The same exchange with MD5 (RFC 7616 §3.9.1, first response), response in
	 * upper case, which is accepted. */
	const char *m[] = {"username=\"Mufasa\"",
			   "realm=\"http-auth@example.org\"",
			   "uri=\"/dir/index.html\"",
			   "algorithm=MD5",
			   "nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\"",
			   "nc=00000001",
			   "cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\"",
			   "qop=auth",
			   "response=\"8CA523F5E9506FED4657C9700EEBDBEC\"",
			   NULL};

	(void)state;
	check_http_vector(EDGE_DIGEST_SHA256, p, "Mufasa", "http-auth@example.org",
			  "Circle of Life");
	check_http_vector(EDGE_DIGEST_MD5, m, "Mufasa", "http-auth@example.org", "Circle of Life");
}

/* ---- nonces ---- */

static void test_nonce(void **state)
{
	char n[EDGE_DIGEST_NONCE_SIZE], n2[EDGE_DIGEST_NONCE_SIZE], t[EDGE_DIGEST_NONCE_SIZE];
	const size_t sl = sizeof(secret) - 1;

	(void)state;
	assert_int_equal(edge_digest_nonce_new(secret, sl, realm, NOW, NULL, n, sizeof(n)), 0);
	assert_int_equal(strlen(n), 48);
	assert_int_equal(
	    strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 48);
	assert_int_equal(edge_digest_nonce_new(secret, sl, realm, NOW, NULL, n2, sizeof(n2)), 0);
	assert_string_not_equal(n, n2); /* random part */
	assert_int_equal(edge_digest_nonce_new(secret, sl, realm, NOW, NULL, t, 48), SK_EMSGSIZE);
	assert_int_equal(edge_digest_nonce_new(secret, 0, realm, NOW, NULL, t, sizeof(t)), SK_EINVAL);

	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, n, NOW, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_VALID);
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, n, NOW + MAX_AGE, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_VALID);
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, n, NOW + MAX_AGE + 1, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_STALE);
	/* clock skew between edges */
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, n, NOW - 10, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_VALID);
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, n, NOW - 31, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_INVALID);
	/* another secret, another realm */
	assert_int_equal(edge_digest_nonce_check("other", 5, realm, n, NOW, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_INVALID);
	assert_int_equal(edge_digest_nonce_check(secret, sl, "example.org", n, NOW, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_INVALID);
	/* tampered: every position, time and random and MAC */
	for (size_t k = 0; k < 48; k++) {
		memcpy(t, n, sizeof(t));
		t[k] = t[k] == 'A' ? 'B' : 'A';
		assert_int_equal(edge_digest_nonce_check(secret, sl, realm, t, NOW, MAX_AGE, NULL),
				 EDGE_DIGEST_NONCE_INVALID);
	}
	/* malformed: short, long, padded, outside the alphabet, NULL */
	memcpy(t, n, sizeof(t));
	t[47] = '\0';
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, t, NOW, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_INVALID);
	{
		char l[64];

		snprintf(l, sizeof(l), "%s=", n);
		assert_int_equal(edge_digest_nonce_check(secret, sl, realm, l, NOW, MAX_AGE, NULL),
				 EDGE_DIGEST_NONCE_INVALID);
		snprintf(l, sizeof(l), "%sA", n);
		assert_int_equal(edge_digest_nonce_check(secret, sl, realm, l, NOW, MAX_AGE, NULL),
				 EDGE_DIGEST_NONCE_INVALID);
	}
	memcpy(t, n, sizeof(t));
	t[5] = '+';
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, t, NOW, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_INVALID);
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, NULL, NOW, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_INVALID);
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, "", NOW, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_INVALID);
}

/* 36 bytes are exactly 48 characters: no spare bits, so one nonce has one spelling
 * (XCAP's replay check keys on the text); any other last character is another MAC. */
static void test_nonce_canonical(void **state)
{
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char n[EDGE_DIGEST_NONCE_SIZE], t[EDGE_DIGEST_NONCE_SIZE];
	const size_t sl = sizeof(secret) - 1;

	(void)state;
	assert_int_equal(edge_digest_nonce_new(secret, sl, realm, NOW, NULL, n, sizeof(n)), 0);
	for (int v = 0; v < 64; v++) {
		if (alpha[v] == n[47])
			continue;
		memcpy(t, n, sizeof(t));
		t[47] = alpha[v];
		assert_int_equal(edge_digest_nonce_check(secret, sl, realm, t, NOW, MAX_AGE, NULL),
				 EDGE_DIGEST_NONCE_INVALID);
	}
}

/* The id a nonce carries (issuer, epoch, nonce-count slot) comes back from the check,
 * for a stale nonce too (its issuer may still say it is known); a nonce made without
 * one carries random bytes instead. */
static void test_nonce_id(void **state)
{
	const struct edge_digest_nonce_id id = {0xdeadbeef, 0x01020304, 0xfffffffe};
	struct edge_digest_nonce_id got = {0};
	char n[EDGE_DIGEST_NONCE_SIZE], n2[EDGE_DIGEST_NONCE_SIZE];
	const size_t sl = sizeof(secret) - 1;

	(void)state;
	assert_int_equal(edge_digest_nonce_new(secret, sl, realm, NOW, &id, n, sizeof(n)), 0);
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, n, NOW, MAX_AGE, &got),
			 EDGE_DIGEST_NONCE_VALID);
	assert_memory_equal(&got, &id, sizeof(id));
	memset(&got, 0, sizeof(got));
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, n, NOW + MAX_AGE + 1, MAX_AGE,
						 &got),
			 EDGE_DIGEST_NONCE_STALE);
	assert_memory_equal(&got, &id, sizeof(id));
	/* the same id at the same second: the same nonce (the id is what makes it unique) */
	assert_int_equal(edge_digest_nonce_new(secret, sl, realm, NOW, &id, n2, sizeof(n2)), 0);
	assert_string_equal(n, n2);
	/* a forged id does not pass the MAC */
	memset(&got, 0, sizeof(got));
	memcpy(n2, n, sizeof(n2));
	n2[12] = n2[12] == 'A' ? 'B' : 'A';
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, n2, NOW, MAX_AGE, &got),
			 EDGE_DIGEST_NONCE_INVALID);
}

/* A nonce of the format before ("-v1": time, 8 random bytes, MAC; 43 characters),
 * made here as that code made it. */
static void v1_nonce(const char *sec, const char *rlm, uint64_t t, char out[44])
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	static const char label[] = "skein-digest-nonce-v1";
	unsigned char raw[33] = {0}, in[256], md[32];
	size_t n = 0, mdlen = 0, o = 0;

	for (int k = 0; k < 8; k++)
		raw[k] = (unsigned char)(t >> (8 * (7 - k)));
	memcpy(raw + 8, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	memcpy(in, label, sizeof(label));
	n = sizeof(label);
	memcpy(in + n, raw, 16);
	n += 16;
	memcpy(in + n, rlm, strlen(rlm));
	n += strlen(rlm);
	assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, sec, strlen(sec), in, n, md,
				  sizeof(md), &mdlen));
	memcpy(raw + 16, md, 16);
	/* 32 bytes: 10 groups of 3, then 2 bytes in 3 characters */
	for (size_t k = 0; k < 30; k += 3) {
		uint32_t v = (uint32_t)raw[k] << 16 | (uint32_t)raw[k + 1] << 8 | raw[k + 2];

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	{
		uint32_t v = (uint32_t)raw[30] << 8 | raw[31];

		out[o++] = b64[v >> 10];
		out[o++] = b64[(v >> 4) & 63];
		out[o++] = b64[(v & 15) << 2];
	}
	out[o] = '\0';
}

/* A nonce of the format before, made with our secret for this realm, is stale (its
 * client retries: a rolling upgrade is no wave of "forged nonce" failures) at any age;
 * with another secret or realm, or altered, it is invalid. */
static void test_nonce_v1(void **state)
{
	struct edge_digest_nonce_id got = {1, 2, 3};
	const size_t sl = sizeof(secret) - 1;
	char n[44];

	(void)state;
	v1_nonce(secret, realm, NOW, n);
	assert_int_equal(strlen(n), 43);
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, n, NOW, MAX_AGE, &got),
			 EDGE_DIGEST_NONCE_STALE);
	assert_int_equal(got.issuer, 0);
	assert_int_equal(got.index, 0);
	assert_int_equal(edge_digest_nonce_check(secret, sl, "example.org", n, NOW, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_INVALID);
	assert_int_equal(edge_digest_nonce_check("another secret", 14, realm, n, NOW, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_INVALID);
	n[20] = n[20] == 'A' ? 'B' : 'A';
	assert_int_equal(edge_digest_nonce_check(secret, sl, realm, n, NOW, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_INVALID);
	/* the test's own maker agrees with the check on the realm it was made for */
	v1_nonce(secret, "example.org", NOW - 100000, n);
	assert_int_equal(edge_digest_nonce_check(secret, sl, "example.org", n, NOW, MAX_AGE, NULL),
			 EDGE_DIGEST_NONCE_STALE);
}

/* ---- challenges ---- */

static void test_challenge(void **state)
{
	struct sk_buf b;

	(void)state;
	sk_buf_init(&b);
	assert_int_equal(
	    edge_digest_challenge(&b, false, EDGE_DIGEST_OFFER_ALL, realm, "NONCE", "op", false),
	    0);
	assert_string_equal(b.data,
			    "WWW-Authenticate: Digest realm=\"example.com\", nonce=\"NONCE\", "
			    "opaque=\"op\", algorithm=SHA-256, qop=\"auth\"\r\n"
			    "WWW-Authenticate: Digest realm=\"example.com\", nonce=\"NONCE\", "
			    "opaque=\"op\", algorithm=MD5, qop=\"auth\"\r\n");
	sk_buf_reset(&b);
	assert_int_equal(
	    edge_digest_challenge(&b, true, EDGE_DIGEST_OFFER_MD5, realm, "N", NULL, true), 0);
	assert_string_equal(b.data, "Proxy-Authenticate: Digest realm=\"example.com\", "
				    "nonce=\"N\", algorithm=MD5, qop=\"auth\", stale=true\r\n");
	sk_buf_reset(&b);
	assert_int_equal(
	    edge_digest_challenge(&b, false, EDGE_DIGEST_OFFER_ALL, "a\"b", "N", NULL, false),
	    SK_EINVAL);
	assert_int_equal(
	    edge_digest_challenge(&b, false, EDGE_DIGEST_OFFER_ALL, realm, "N\r\nX", NULL, false),
	    SK_EINVAL);
	assert_int_equal(edge_digest_challenge(&b, false, 0, realm, "N", NULL, false), SK_EINVAL);
	assert_int_equal(
	    edge_digest_challenge(&b, false, EDGE_DIGEST_OFFER_ALL, realm, "N", "", false),
	    SK_EINVAL);
	assert_int_equal(b.len, 0);
	sk_buf_release(&b);
}

/* ---- SIP end to end ---- */

/* What a client computes, written apart from digest.c (EVP one-shot). */
static void client_hash(enum edge_digest_alg alg, const char *s, char out[EDGE_DIGEST_HEX_SIZE])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	assert_int_equal(EVP_Digest(s, strlen(s), d, &n,
				    alg == EDGE_DIGEST_SHA256 ? EVP_sha256() : EVP_md5(), NULL),
			 1);
	for (unsigned int k = 0; k < n; k++)
		sprintf(out + 2 * k, "%02x", d[k]);
}

static void client_response(enum edge_digest_alg alg, const char *user, const char *rlm,
			    const char *pw, const char *method, const char *uri, const char *nonce,
			    const char *nc, const char *cnonce, char out[EDGE_DIGEST_HEX_SIZE])
{
	char s[1024], ha1[EDGE_DIGEST_HEX_SIZE], ha2[EDGE_DIGEST_HEX_SIZE];

	snprintf(s, sizeof(s), "%s:%s:%s", user, rlm, pw);
	client_hash(alg, s, ha1);
	snprintf(s, sizeof(s), "%s:%s", method, uri);
	client_hash(alg, s, ha2);
	if (cnonce)
		snprintf(s, sizeof(s), "%s:%s:%s:%s:auth:%s", ha1, nonce, nc, cnonce, ha2);
	else
		snprintf(s, sizeof(s), "%s:%s:%s", ha1, nonce, ha2);
	client_hash(alg, s, out);
}

/* A REGISTER sip:example.com with the given extra header lines, through edge_sip_check. */
static msg_t *parse_register(const char *extra)
{
	char text[4096];
	struct edge_verdict v;
	msg_t *msg = NULL;
	int n = snprintf(text, sizeof(text),
			 "REGISTER sip:example.com SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
			 "Max-Forwards: 70\r\n"
			 "To: <sip:alice@example.com>\r\n"
			 "From: <sip:alice@example.com>;tag=1928301774\r\n"
			 "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
			 "CSeq: 2 REGISTER\r\n"
			 "Contact: <sip:alice@192.0.2.1:5060>\r\n"
			 "%s"
			 "Content-Length: 0\r\n\r\n",
			 extra);

	assert_true(n > 0 && (size_t)n < sizeof(text));
	assert_int_equal(edge_sip_check(text, (size_t)n, EDGE_UDP, 65535, &msg, &v), 0);
	assert_int_equal(v.status, 0);
	assert_false(v.drop);
	assert_non_null(msg);
	return msg;
}

struct e2e {
	char nonce[EDGE_DIGEST_NONCE_SIZE];
	char ha1[2][EDGE_DIGEST_HEX_SIZE]; /* stored per algorithm */
};

static void e2e_init(struct e2e *e)
{
	struct sk_buf b;

	assert_int_equal(edge_digest_nonce_new(secret, sizeof(secret) - 1, realm, NOW, NULL, e->nonce,
					       sizeof(e->nonce)),
			 0);
	sk_buf_init(&b);
	assert_int_equal(
	    edge_digest_challenge(&b, false, EDGE_DIGEST_OFFER_ALL, realm, e->nonce, NULL, false),
	    0);
	assert_non_null(strstr(b.data, e->nonce));
	assert_true(strstr(b.data, "SHA-256") < strstr(b.data, "MD5"));
	sk_buf_release(&b);
	assert_int_equal(edge_digest_ha1(EDGE_DIGEST_MD5, "alice", realm, "s3cret", e->ha1[0]), 0);
	assert_int_equal(edge_digest_ha1(EDGE_DIGEST_SHA256, "alice", realm, "s3cret", e->ha1[1]),
			 0);
}

/* Runs the whole server side on one REGISTER; returns the final status. */
static enum edge_digest_status server(const struct e2e *e, const char *extra, uint64_t now,
				      bool proxy, char *reason, size_t rsize)
{
	msg_t *msg = parse_register(extra);
	sip_t *sip = sip_object(msg);
	struct edge_digest_creds c;
	struct edge_digest_result r;
	const msg_auth_t *au = proxy ? (const msg_auth_t *)sip->sip_proxy_authorization
				     : (const msg_auth_t *)sip->sip_authorization;

	assert_int_equal(edge_digest_creds_get(&c, au, realm, &r), 0);
	if (r.status == EDGE_DIGEST_OK) {
		switch (edge_digest_nonce_check(secret, sizeof(secret) - 1, realm, c.nonce, now,
						MAX_AGE, NULL)) {
		case EDGE_DIGEST_NONCE_VALID:
			assert_int_equal(edge_digest_verify(&c, sip->sip_request->rq_method_name,
							    sip->sip_request->rq_url, e->ha1[c.alg],
							    c.alg, &r),
					 0);
			break;
		case EDGE_DIGEST_NONCE_STALE:
			edge_digest_result_set(&r, EDGE_DIGEST_STALE, "stale nonce");
			break;
		case EDGE_DIGEST_NONCE_INVALID:
			edge_digest_result_set(&r, EDGE_DIGEST_BAD_NONCE, "nonce not ours");
			break;
		}
	}
	if (reason)
		snprintf(reason, rsize, "%s", r.reason);
	msg_destroy(msg);
	return r.status;
}

/* An Authorization header line from the client; fmt gets nonce and response. */
static void authz(char *out, size_t size, const struct e2e *e, enum edge_digest_alg alg,
		  const char *pw, const char *uri)
{
	char resp[EDGE_DIGEST_HEX_SIZE];

	client_response(alg, "alice", realm, pw, "REGISTER", uri, e->nonce, "00000001", "0a4f113b",
			resp);
	snprintf(out, size,
		 "Authorization: Digest username=\"alice\", realm=\"example.com\", "
		 "nonce=\"%s\", uri=\"%s\", response=\"%s\", algorithm=%s, cnonce=\"0a4f113b\", "
		 "qop=auth, nc=00000001\r\n",
		 e->nonce, uri, resp, edge_digest_alg_name(alg));
}

static void test_sip_register(void **state)
{
	struct e2e e;
	char h[1024], why[96];

	(void)state;
	e2e_init(&e);
	for (int alg = EDGE_DIGEST_MD5; alg <= EDGE_DIGEST_SHA256; alg++) {
		authz(h, sizeof(h), &e, (enum edge_digest_alg)alg, "s3cret", "sip:example.com");
		assert_int_equal(server(&e, h, NOW + 5, false, NULL, 0), EDGE_DIGEST_OK);
		/* stale: the same credentials after max_age */
		assert_int_equal(server(&e, h, NOW + MAX_AGE + 1, false, NULL, 0),
				 EDGE_DIGEST_STALE);
		/* wrong password */
		authz(h, sizeof(h), &e, (enum edge_digest_alg)alg, "s3cre7", "sip:example.com");
		assert_int_equal(server(&e, h, NOW, false, why, sizeof(why)),
				 EDGE_DIGEST_BAD_RESPONSE);
		assert_string_equal(why, "bad response");
		/* digest-uri naming another resource */
		authz(h, sizeof(h), &e, (enum edge_digest_alg)alg, "s3cret", "sip:example.org");
		assert_int_equal(server(&e, h, NOW, false, NULL, 0), EDGE_DIGEST_URI_MISMATCH);
		/* the same URI spelt differently (RFC 3261 §19.1.4: host is case-insensitive) */
		authz(h, sizeof(h), &e, (enum edge_digest_alg)alg, "s3cret", "sip:EXAMPLE.com");
		assert_int_equal(server(&e, h, NOW, false, NULL, 0), EDGE_DIGEST_OK);
	}
	/* The same credentials as Proxy-Authorization (407 flow). */
	authz(h, sizeof(h), &e, EDGE_DIGEST_SHA256, "s3cret", "sip:example.com");
	memmove(h + 6, h, strlen(h) + 1);
	memcpy(h, "Proxy-", 6);
	assert_int_equal(server(&e, h, NOW, true, NULL, 0), EDGE_DIGEST_OK);
}

static void test_sip_foreign_nonce(void **state)
{
	struct e2e e, other;
	char h[1024], n[EDGE_DIGEST_NONCE_SIZE];

	(void)state;
	e2e_init(&e);
	/* a nonce from another cluster secret */
	other = e;
	assert_int_equal(edge_digest_nonce_new("another secret", 14, realm, NOW, NULL, other.nonce,
					       sizeof(other.nonce)),
			 0);
	authz(h, sizeof(h), &other, EDGE_DIGEST_SHA256, "s3cret", "sip:example.com");
	assert_int_equal(server(&e, h, NOW, false, NULL, 0), EDGE_DIGEST_BAD_NONCE);
	/* a nonce issued for another realm, replayed here */
	assert_int_equal(edge_digest_nonce_new(secret, sizeof(secret) - 1, "example.org", NOW, NULL,
					       other.nonce, sizeof(other.nonce)),
			 0);
	authz(h, sizeof(h), &other, EDGE_DIGEST_SHA256, "s3cret", "sip:example.com");
	assert_int_equal(server(&e, h, NOW, false, NULL, 0), EDGE_DIGEST_BAD_NONCE);
	/* a tampered nonce (issue time changed to look fresh) */
	memcpy(n, e.nonce, sizeof(n));
	n[7] = n[7] == 'z' ? 'y' : 'z';
	memcpy(other.nonce, n, sizeof(n));
	authz(h, sizeof(h), &other, EDGE_DIGEST_SHA256, "s3cret", "sip:example.com");
	assert_int_equal(server(&e, h, NOW, false, NULL, 0), EDGE_DIGEST_BAD_NONCE);
}

/* Hand-written Authorization headers, with a response that does not matter because the
 * module refuses them first. */
static const struct refusal {
	const char *hdr;
	enum edge_digest_status status;
	const char *why; /* substring of the reason */
} refusals[] = {
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\", qop=auth-int, nc=00000001, cnonce=\"c\"",
     EDGE_DIGEST_UNSUPPORTED, "auth-int"},
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\", qop=auth, nc=00000001",
     EDGE_DIGEST_MALFORMED, "missing cnonce"},
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\", qop=auth, cnonce=\"c\"",
     EDGE_DIGEST_MALFORMED, "missing nc"},
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\", algorithm=SHA-512-256",
     EDGE_DIGEST_UNSUPPORTED, "SHA-512-256"},
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\", algorithm=MD5-sess, qop=auth, "
     "nc=00000001, cnonce=\"c\"",
     EDGE_DIGEST_UNSUPPORTED, "MD5-sess"},
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\", qop=auth, nc=0000001, cnonce=\"c\"",
     EDGE_DIGEST_MALFORMED, "8 hex"},
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\", qop=auth, nc=0000000g, cnonce=\"c\"",
     EDGE_DIGEST_MALFORMED, "8 hex"},
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\", qop=auth, nc=000000001, cnonce=\"c\"",
     EDGE_DIGEST_MALFORMED, "8 hex"},
    {"Digest realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\"",
     EDGE_DIGEST_MALFORMED, "missing username"},
    {"Digest username=\"alice\", realm=\"example.com\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\"",
     EDGE_DIGEST_MALFORMED, "missing nonce"},
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", "
     "response=\"00000000000000000000000000000000\"",
     EDGE_DIGEST_MALFORMED, "missing uri"},
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\"",
     EDGE_DIGEST_MALFORMED, "missing response"},
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\", username=\"bob\"",
     EDGE_DIGEST_MALFORMED, "duplicate username"},
    {"Digest username=\"\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\"",
     EDGE_DIGEST_MALFORMED, "empty username"},
    /* a SHA-256 response must have 64 digits */
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\", algorithm=SHA-256",
     EDGE_DIGEST_MALFORMED, "bad response"},
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"0000000000000000000000000000000x\"",
     EDGE_DIGEST_MALFORMED, "bad response"},
    {"Digest username*=UTF-8''al%C3%AFce, realm=\"example.com\", nonce=\"n\", "
     "uri=\"sip:example.com\", response=\"00000000000000000000000000000000\"",
     EDGE_DIGEST_UNSUPPORTED, "username*"},
    {"Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\", userhash=true",
     EDGE_DIGEST_UNSUPPORTED, "userhash"},
    /* credentials for another realm only, and another scheme */
    {"Digest username=\"alice\", realm=\"example.org\", nonce=\"n\", uri=\"sip:example.com\", "
     "response=\"00000000000000000000000000000000\"",
     EDGE_DIGEST_NO_CREDS, "no credentials"},
    {"Basic YWxpY2U6czNjcmV0", EDGE_DIGEST_NO_CREDS, "no credentials"},
};

static void test_sip_refusals(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(refusals) / sizeof(refusals[0]); k++) {
		char h[1024];
		msg_t *msg;
		struct edge_digest_creds c;
		struct edge_digest_result r;

		snprintf(h, sizeof(h), "Authorization: %s\r\n", refusals[k].hdr);
		msg = parse_register(h);
		assert_int_equal(
		    edge_digest_creds_get(&c, sip_object(msg)->sip_authorization, realm, &r), 0);
		if (r.status != refusals[k].status || !strstr(r.reason, refusals[k].why))
			fail_msg("case %zu: status %s reason \"%s\"", k,
				 edge_digest_status_name(r.status), r.reason);
		msg_destroy(msg);
	}
	{
		struct edge_digest_creds c;
		struct edge_digest_result r;

		assert_int_equal(edge_digest_creds_get(&c, NULL, realm, &r), 0);
		assert_int_equal(r.status, EDGE_DIGEST_NO_CREDS);
		assert_int_equal(edge_digest_creds_get(NULL, NULL, realm, &r), SK_EINVAL);
	}
}

/* One Authorization per realm (RFC 3261 §22.3): the one for our realm is used,
 * wherever it is. */
static void test_sip_two_realms(void **state)
{
	struct e2e e;
	char h[1024], two[2048];
	const char *foreign = "Authorization: Digest username=\"alice\", realm=\"example.org\", "
			      "nonce=\"x\", uri=\"sip:example.com\", "
			      "response=\"00000000000000000000000000000000\"\r\n";

	(void)state;
	e2e_init(&e);
	authz(h, sizeof(h), &e, EDGE_DIGEST_SHA256, "s3cret", "sip:example.com");
	snprintf(two, sizeof(two), "%s%s", foreign, h);
	assert_int_equal(server(&e, two, NOW, false, NULL, 0), EDGE_DIGEST_OK);
	snprintf(two, sizeof(two), "%s%s", h, foreign);
	assert_int_equal(server(&e, two, NOW, false, NULL, 0), EDGE_DIGEST_OK);
}

/* RFC 2069 form (no qop): still accepted, without cnonce and nc. */
static void test_sip_no_qop(void **state)
{
	struct e2e e;
	char h[1024], resp[EDGE_DIGEST_HEX_SIZE];

	(void)state;
	e2e_init(&e);
	client_response(EDGE_DIGEST_MD5, "alice", realm, "s3cret", "REGISTER", "sip:example.com",
			e.nonce, NULL, NULL, resp);
	snprintf(h, sizeof(h),
		 "Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"%s\", "
		 "uri=\"sip:example.com\", response=\"%s\"\r\n",
		 e.nonce, resp);
	assert_int_equal(server(&e, h, NOW, false, NULL, 0), EDGE_DIGEST_OK);
}

static void test_verify_args(void **state)
{
	const char *p[] = {"username=\"Mufasa\"",
			   "realm=\"r\"",
			   "nonce=\"n\"",
			   "uri=\"/\"",
			   "response=\"00000000000000000000000000000000\"",
			   NULL};
	struct edge_digest_creds c;
	struct edge_digest_result r;
	msg_auth_t au;
	char ha1[EDGE_DIGEST_HEX_SIZE];

	(void)state;
	assert_int_equal(edge_digest_creds_get(&c, auth_of(&au, p), "r", &r), 0);
	assert_int_equal(r.status, EDGE_DIGEST_OK);
	assert_int_equal(edge_digest_ha1(EDGE_DIGEST_SHA256, "Mufasa", "r", "x", ha1), 0);
	/* an HA1 for the other algorithm, or of the wrong length */
	assert_int_equal(edge_digest_verify(&c, "GET", NULL, ha1, EDGE_DIGEST_SHA256, &r),
			 SK_EINVAL);
	assert_int_equal(edge_digest_verify(&c, "GET", NULL, ha1, EDGE_DIGEST_MD5, &r), SK_EINVAL);
	assert_int_equal(edge_digest_verify(&c, "GET", NULL, "abc", EDGE_DIGEST_MD5, &r),
			 SK_EINVAL);
	assert_string_equal(edge_digest_status_name(EDGE_DIGEST_BAD_RESPONSE), "bad-response");
	assert_string_equal(edge_digest_status_name(EDGE_DIGEST_STALE), "stale-nonce");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_ha1_vectors),	   SK_TEST(test_rfc2617_md5),
	    SK_TEST(test_rfc7616_sha256),  SK_TEST(test_nonce),
	    SK_TEST(test_nonce_canonical), SK_TEST(test_nonce_id), SK_TEST(test_nonce_v1),
	    SK_TEST(test_challenge),
	    SK_TEST(test_sip_register),	   SK_TEST(test_sip_foreign_nonce),
	    SK_TEST(test_sip_refusals),	   SK_TEST(test_sip_two_realms),
	    SK_TEST(test_sip_no_qop),	   SK_TEST(test_verify_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
