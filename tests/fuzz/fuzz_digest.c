/* libFuzzer target for the edge's digest authentication (services/edge/digest.h): the
 * input is the value of an Authorization header (and of a Proxy-Authorization header)
 * in a minimal REGISTER, parsed by sofia-sip through edge_sip_check(); the credentials
 * found are checked against fixed HA1s. The input is also a nonce for
 * edge_digest_nonce_check(). Besides crashes and leaks it checks the contract: reasons
 * are terminated, accepted credentials have every field, a nonce the fuzzer makes up is
 * never valid (it cannot know the secret). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_err.h"
#include "digest.h"
#include "sip_check.h"
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>

static const char secret[] = "fuzz-secret";
static const char realm[] = "example.com";

static void result_ok(const struct edge_digest_result *r)
{
	if (!memchr(r->reason, '\0', sizeof(r->reason)) ||
	    (r->status == EDGE_DIGEST_OK) != (r->reason[0] == '\0'))
		abort();
}

static void check_creds(const sip_t *sip, const msg_auth_t *au)
{
	static char ha1[2][EDGE_DIGEST_HEX_SIZE];
	struct edge_digest_creds c;
	struct edge_digest_result r;
	int rc;

	if (!ha1[0][0] && (edge_digest_ha1(EDGE_DIGEST_MD5, "alice", realm, "s3cret", ha1[0]) ||
			   edge_digest_ha1(EDGE_DIGEST_SHA256, "alice", realm, "s3cret", ha1[1])))
		abort();
	if (edge_digest_creds_get(&c, au, realm, &r) != 0)
		abort();
	result_ok(&r);
	if (r.status != EDGE_DIGEST_OK)
		return;
	if (!c.username[0] || strcmp(c.realm, realm) || !c.nonce[0] || !c.uri[0] ||
	    strlen(c.response) != (c.alg == EDGE_DIGEST_SHA256 ? 64u : 32u) ||
	    (c.qop && (!c.cnonce[0] || strlen(c.nc_text) != 8)))
		abort();
	(void)edge_digest_nonce_check(secret, sizeof(secret) - 1, realm, c.nonce, 1700000000, 300, NULL);
	rc = edge_digest_verify(&c, sip->sip_request->rq_method_name, sip->sip_request->rq_url,
				ha1[c.alg], c.alg, &r);
	if (rc != 0)
		abort();
	result_ok(&r);
	rc = edge_digest_verify(&c, "REGISTER", NULL, ha1[c.alg], c.alg, &r);
	if (rc != 0)
		abort();
	result_ok(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char head[] = "REGISTER sip:example.com SIP/2.0\r\n"
				   "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
				   "Max-Forwards: 70\r\n"
				   "To: <sip:alice@example.com>\r\n"
				   "From: <sip:alice@example.com>;tag=1928301774\r\n"
				   "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
				   "CSeq: 2 REGISTER\r\n";
	static const char tail[] = "\r\nContent-Length: 0\r\n\r\n";
	const size_t hl = sizeof(head) - 1, tl = sizeof(tail) - 1;
	const char *names[] = {"Authorization: ", "Proxy-Authorization: "};
	char *buf = malloc(hl + 22 + size + tl + 1);
	char *nonce = malloc(size + 1);

	if (!buf || !nonce)
		abort();
	for (int k = 0; k < 2; k++) {
		size_t n = 0, nl = strlen(names[k]);
		struct edge_verdict v;
		msg_t *msg = NULL;

		memcpy(buf, head, hl);
		n = hl;
		memcpy(buf + n, names[k], nl);
		n += nl;
		memcpy(buf + n, data, size);
		n += size;
		memcpy(buf + n, tail, tl);
		n += tl;
		if (edge_sip_check(buf, n, EDGE_UDP, 65535, &msg, &v) != 0)
			abort();
		if (msg) {
			sip_t *sip = sip_object(msg);

			if (!sip || !sip->sip_request)
				abort();
			check_creds(sip, k ? (const msg_auth_t *)sip->sip_proxy_authorization
					   : (const msg_auth_t *)sip->sip_authorization);
			msg_destroy(msg);
		}
	}

	/* The input as a nonce: it cannot carry a MAC made with the secret. */
	memcpy(nonce, data, size);
	nonce[size] = '\0';
	if (edge_digest_nonce_check(secret, sizeof(secret) - 1, realm, nonce, 1700000000, 300,
				    NULL) !=
	    EDGE_DIGEST_NONCE_INVALID)
		abort();
	{
		/* The first 12 bytes of the input as the nonce's id: it comes back whole. */
		char fresh[EDGE_DIGEST_NONCE_SIZE];
		struct edge_digest_nonce_id id = {0}, got = {0};

		memcpy(&id, data, size < sizeof(id) ? size : sizeof(id));
		if (edge_digest_nonce_new(secret, sizeof(secret) - 1, realm, 1700000000, &id,
					  fresh, sizeof(fresh)) != 0 ||
		    edge_digest_nonce_check(secret, sizeof(secret) - 1, realm, fresh, 1700000000,
					    300, &got) != EDGE_DIGEST_NONCE_VALID ||
		    memcmp(&id, &got, sizeof(id)))
			abort();
	}
	free(nonce);
	free(buf);
	return 0;
}
