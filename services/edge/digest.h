/* digest: the SIP edge's HTTP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760):
 * HA1s for provisioning, stateless nonces, challenges, credentials and the response check.
 *
 * The module is loop-free and Redis-free: every output goes into a caller's struct or
 * buffer. Not thread-safe: for speed it keeps, for the life of the process, the keyed
 * nonce MAC context, the fetched digests and a digest context, and it draws nonce
 * randomness from edge_random_bytes() (sipmsg.h); use it from one thread (the
 * daemon's loop). The caller does the rest of the exchange:
 *
 *   1. no credentials for our realm -> edge_digest_nonce_new() + edge_digest_challenge(),
 *      answer 401 (WWW-Authenticate) or 407 (Proxy-Authenticate);
 *   2. edge_digest_creds_get() on sip_authorization / sip_proxy_authorization;
 *   3. edge_digest_nonce_check(): STALE -> challenge again with stale=true;
 *   4. the HA1 of (c->username, c->alg); no such user -> EDGE_DIGEST_UNKNOWN_USER;
 *   5. edge_digest_verify();
 *   6. the nonce-count replay check (c->nc above the last one seen for the nonce): the
 *      edge asks the issuer of the nonce (nctab.h), XCAP keeps it in Redis.
 *
 * Every step leaves an edge_digest_result whose status name and reason make one stable
 * auth-failure log line. */
#ifndef SKEIN_EDGE_DIGEST_H
#define SKEIN_EDGE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sofia-sip/msg_types.h>
#include <sofia-sip/url.h>

struct sk_buf;

enum edge_digest_alg {
	EDGE_DIGEST_MD5,    /* "MD5", RFC 2617; the default when algorithm= is absent */
	EDGE_DIGEST_SHA256, /* "SHA-256", RFC 7616 §3.2, RFC 8760 */
};

/* Bit masks of algorithms for edge_digest_challenge(). */
#define EDGE_DIGEST_OFFER_MD5	 (1u << EDGE_DIGEST_MD5)
#define EDGE_DIGEST_OFFER_SHA256 (1u << EDGE_DIGEST_SHA256)
#define EDGE_DIGEST_OFFER_ALL	 (EDGE_DIGEST_OFFER_MD5 | EDGE_DIGEST_OFFER_SHA256)

/* Hex digest of the largest hash (SHA-256) plus the NUL. */
#define EDGE_DIGEST_HEX_SIZE 65
/* Nonce text: 48 base64url characters plus the NUL. */
#define EDGE_DIGEST_NONCE_SIZE 49
/* Longest realm accepted anywhere (it is part of the nonce MAC input). */
#define EDGE_DIGEST_REALM_MAX 255
/* A nonce issued up to this many seconds in the future (by an edge whose clock runs
 * ahead) is still accepted. */
#define EDGE_DIGEST_NONCE_SKEW_S 30

/* The token for algorithm=, e.g. "SHA-256". */
const char *edge_digest_alg_name(enum edge_digest_alg alg);

/* The HA1 to store for a user: H(user ":" realm ":" password), lower-case hex, 32 chars
 * for MD5 and 64 for SHA-256 (RFC 7616 §3.4.2). Provisioning stores one per algorithm,
 * never the password. Returns 0; SK_EINVAL on NULL arguments; SK_ENOTSUP when the
 * crypto library refuses the algorithm (MD5 in FIPS mode). */
int edge_digest_ha1(enum edge_digest_alg alg, const char *user, const char *realm,
		    const char *password, char out[EDGE_DIGEST_HEX_SIZE]);

/* What a nonce names besides its time: the edge that made it (a hash of its member
 * id), that edge's run (a random number drawn at start) and the slot of the nonce's
 * count there (nctab.h). */
struct edge_digest_nonce_id {
	uint32_t issuer, epoch, index;
};

/* A stateless nonce, so that the authenticated retry may reach any edge that knows the
 * cluster secret: base64url without padding (48 chars) of
 *   issue time (8 bytes, big-endian seconds) | id (12 bytes: issuer, epoch, index,
 *   big-endian) or, id NULL, 12 random bytes |
 *   HMAC-SHA256(secret, "skein-digest-nonce-v2" | time | id | realm)[0..16).
 * now: seconds (wall clock, the same on every edge). size must be at least
 * EDGE_DIGEST_NONCE_SIZE. Returns 0; SK_EINVAL on bad arguments (empty secret, realm
 * longer than EDGE_DIGEST_REALM_MAX); SK_EMSGSIZE when out is too small; SK_EAGAIN when
 * the random generator fails. */
int edge_digest_nonce_new(const void *secret, size_t secret_len, const char *realm, uint64_t now,
			  const struct edge_digest_nonce_id *id, char *out, size_t size);

enum edge_digest_nonce_state {
	EDGE_DIGEST_NONCE_VALID,
	EDGE_DIGEST_NONCE_STALE,   /* well-formed, MAC good, older than max_age_s */
	EDGE_DIGEST_NONCE_INVALID, /* malformed, bad MAC (another secret or another realm),
				    * or issued too far in the future */
};

/* Checks a nonce made by edge_digest_nonce_new() for this realm. Only the canonical
 * encoding is accepted, so that one nonce has one spelling (XCAP's replay check in
 * Redis is keyed on the text). The MAC is compared in constant time. A realm mismatch
 * cannot be told apart from a forged nonce: both are INVALID. nonce may be NULL
 * (INVALID). id, when not NULL, gets the nonce's id for VALID and STALE. A nonce of
 * the format before this one ("-v1", 43 characters, no id) made with this secret and
 * realm is STALE, whatever its age: during a rolling upgrade its client is asked to
 * retry (stale=true) rather than counted as sending a forged nonce. */
enum edge_digest_nonce_state edge_digest_nonce_check(const void *secret, size_t secret_len,
						     const char *realm, const char *nonce,
						     uint64_t now, uint32_t max_age_s,
						     struct edge_digest_nonce_id *id);

/* Appends the challenge header lines, one per offered algorithm, SHA-256 first (RFC 8760
 * §2.4: the client uses the first it supports), each a complete line ending in CRLF:
 *
 *   WWW-Authenticate: Digest realm="r", nonce="n", opaque="o", algorithm=SHA-256,
 *     qop="auth"[, stale=true]
 *
 * (on one line), or Proxy-Authenticate when proxy is true (RFC 3261 §22.3, 407).
 * opaque may be NULL (left out). algs: EDGE_DIGEST_OFFER_* bits, at least one.
 * realm, nonce and opaque must be non-empty printable ASCII without '"' and '\\'.
 * Returns 0; SK_EINVAL on bad arguments (nothing appended); b->err on a failed append. */
int edge_digest_challenge(struct sk_buf *b, bool proxy, unsigned algs, const char *realm,
			  const char *nonce, const char *opaque, bool stale);

/* Outcome of a step, for the caller's decision and one log line. */
enum edge_digest_status {
	EDGE_DIGEST_OK,
	EDGE_DIGEST_NO_CREDS,	  /* no Digest credentials for our realm: challenge */
	EDGE_DIGEST_MALFORMED,	  /* missing or duplicate field, bad nc, bad response */
	EDGE_DIGEST_UNSUPPORTED,  /* unknown algorithm, -sess, qop=auth-int, userhash */
	EDGE_DIGEST_STALE,	  /* nonce too old: challenge again with stale=true */
	EDGE_DIGEST_BAD_NONCE,	  /* not our nonce (forged, another realm or secret) */
	EDGE_DIGEST_URI_MISMATCH, /* digest-uri is not the Request-URI */
	EDGE_DIGEST_BAD_RESPONSE, /* wrong password (or HA1) */
	EDGE_DIGEST_UNKNOWN_USER, /* set by the caller when it finds no HA1 */
	EDGE_DIGEST_REPLAY,	  /* set by the caller when nc is not above the last seen */
};

struct edge_digest_result {
	enum edge_digest_status status;
	char reason[96]; /* e.g. "qop auth-int not supported"; "" on OK */
};

/* Stable short name for logs, e.g. "bad-response". */
const char *edge_digest_status_name(enum edge_digest_status s);
/* Fills r (status and a printf reason), for the caller's own statuses. */
void edge_digest_result_set(struct edge_digest_result *r, enum edge_digest_status s,
			    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Size limits of the fields kept (NUL included); longer values are MALFORMED. */
#define EDGE_DIGEST_USER_SIZE  256
#define EDGE_DIGEST_URI_SIZE   1024
#define EDGE_DIGEST_FIELD_SIZE 256

/* One set of Digest credentials, unquoted. Owned by the caller (on the stack is fine). */
struct edge_digest_creds {
	enum edge_digest_alg alg;
	bool qop;    /* qop=auth; false: the RFC 2069 form, no cnonce/nc (no replay counter) */
	uint32_t nc; /* nonce-count as a number (0 without qop) */
	char username[EDGE_DIGEST_USER_SIZE];
	char realm[EDGE_DIGEST_REALM_MAX + 1];
	char nonce[EDGE_DIGEST_FIELD_SIZE];
	char uri[EDGE_DIGEST_URI_SIZE];
	char response[EDGE_DIGEST_HEX_SIZE]; /* lower-cased */
	char cnonce[EDGE_DIGEST_FIELD_SIZE];
	char nc_text[9];
	char opaque[EDGE_DIGEST_FIELD_SIZE]; /* "" when absent; stateless: caller compares */
};

/* Empties every field (scalars 0, strings ""): for a c in memory that was not zeroed. */
void edge_digest_creds_reset(struct edge_digest_creds *c);
/* Finds the Digest credentials for realm in the list au (sip->sip_authorization or
 * sip->sip_proxy_authorization; borrowed, may be NULL) and checks their form: the first
 * Digest header whose realm matches (case-sensitive, RFC 7616 §3.3) is used, the others
 * are ignored (RFC 3261 §22.3: one per realm). Required: username, realm, nonce, uri,
 * response (32 or 64 hex digits by algorithm); with qop: qop=auth, cnonce and an nc of
 * 8 hex digits. Directives may be quoted or not; duplicates are MALFORMED.
 *
 * Returns 0 with r->status OK and *c filled, or r->status naming the fault (then *c is
 * unspecified); SK_EINVAL on NULL c, realm or r. */
int edge_digest_creds_get(struct edge_digest_creds *c, const msg_auth_t *au, const char *realm,
			  struct edge_digest_result *r);

/* Checks the response of c against ha1_hex (the stored HA1 of c->username for alg, hex,
 * either case), method (the Request-Line method, e.g. "REGISTER") and request_uri (the
 * parsed Request-URI, sip->sip_request->rq_url).
 *
 * digest-uri: it must name the Request-URI: equal as text, or else equal under RFC 3261
 * §19.1.4 comparison of every part (url_cmp_all), because sofia-sip keeps the parsed
 * Request-URI and a client may escape or order parameters differently when it copies
 * it. A tel: Request-URI must be equal as text. request_uri NULL skips this check (for tests of non-SIP vectors).
 *
 * response: RFC 7616 §3.4.1, HA2 = H(method ":" digest-uri); with qop=auth
 * H(HA1 ":" nonce ":" nc ":" cnonce ":auth:" HA2), without qop H(HA1 ":" nonce ":" HA2);
 * compared in constant time.
 *
 * Returns 0 with r->status OK, URI_MISMATCH or BAD_RESPONSE; SK_EINVAL on NULL
 * arguments, alg other than c->alg or an HA1 of the wrong length; SK_ENOTSUP or
 * SK_ENOMEM from the crypto library. Does not check the nonce: see the order above. */
int edge_digest_verify(const struct edge_digest_creds *c, const char *method,
		       const url_t *request_uri, const char *ha1_hex, enum edge_digest_alg alg,
		       struct edge_digest_result *r);

#endif
