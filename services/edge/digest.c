/* digest: HTTP digest authentication for the SIP edge (RFC 3261 §22, RFC 7616, RFC 8760).
 * See digest.h for the contract and the order of the steps. */
#include "digest.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/msg_types.h>
#include <sofia-sip/url.h>
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "sipmsg.h"

#define NONCE_TIME  8
#define NONCE_RAND  12 /* struct edge_digest_nonce_id, or random */
#define NONCE_MAC   16 /* HMAC-SHA256 truncated to 128 bits (RFC 2104 §5 allows it) */
#define NONCE_BYTES (NONCE_TIME + NONCE_RAND + NONCE_MAC)
#define NONCE_CHARS 48 /* 36 * 8 / 6, no padding */
#define NONCE_LABEL "skein-digest-nonce-v2"
/* The format before (8 random bytes, no id): recognised so that, during a rolling
 * upgrade, such a nonce is answered stale=true rather than counted as forged. */
#define NONCE1_RAND  8
#define NONCE1_BYTES (NONCE_TIME + NONCE1_RAND + NONCE_MAC)
#define NONCE1_CHARS 43
#define NONCE1_LABEL "skein-digest-nonce-v1"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const char *edge_digest_alg_name(enum edge_digest_alg alg)
{
	return alg == EDGE_DIGEST_SHA256 ? "SHA-256" : "MD5";
}

static size_t alg_hexlen(enum edge_digest_alg alg)
{
	return alg == EDGE_DIGEST_SHA256 ? 64 : 32;
}

const char *edge_digest_status_name(enum edge_digest_status s)
{
	switch (s) {
	case EDGE_DIGEST_OK:
		return "ok";
	case EDGE_DIGEST_NO_CREDS:
		return "no-credentials";
	case EDGE_DIGEST_MALFORMED:
		return "malformed";
	case EDGE_DIGEST_UNSUPPORTED:
		return "unsupported";
	case EDGE_DIGEST_STALE:
		return "stale-nonce";
	case EDGE_DIGEST_BAD_NONCE:
		return "bad-nonce";
	case EDGE_DIGEST_URI_MISMATCH:
		return "uri-mismatch";
	case EDGE_DIGEST_BAD_RESPONSE:
		return "bad-response";
	case EDGE_DIGEST_UNKNOWN_USER:
		return "unknown-user";
	case EDGE_DIGEST_REPLAY:
		return "replay";
	}
	return "unknown";
}

void edge_digest_result_set(struct edge_digest_result *r, enum edge_digest_status s,
			    const char *fmt, ...)
{
	va_list ap;

	r->status = s;
	/* Most reasons are fixed text: no printf for those. */
	if (!strchr(fmt, '%')) {
		size_t n = strlen(fmt);

		if (n >= sizeof(r->reason))
			n = sizeof(r->reason) - 1;
		memcpy(r->reason, fmt, n);
		r->reason[n] = '\0';
		return;
	}
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t k = 0; k < n; k++) {
		out[2 * k] = digits[p[k] >> 4];
		out[2 * k + 1] = digits[p[k] & 15];
	}
	out[2 * n] = '\0';
}

static bool is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* Copies s (hex) lower-cased into out; false unless it is exactly n hex digits. */
static bool hex_lower(const char *s, size_t n, char *out)
{
	size_t k;

	for (k = 0; k < n && s[k]; k++) {
		if (!is_hex(s[k]))
			return false;
		out[k] = (s[k] >= 'A' && s[k] <= 'F') ? (char)(s[k] - 'A' + 'a') : s[k];
	}
	out[k] = '\0';
	return k == n && s[k] == '\0';
}

/* The digest of alg, fetched once. EVP_md5()/EVP_sha256() are legacy handles that
 * OpenSSL 3 fetches from the provider again on every EVP_DigestInit_ex() (a third of
 * hash_join()'s cost in the profile of docs/performance.md); a fetched EVP_MD is not.
 * One thread (the daemon's loop), kept for the life of the process. */
static EVP_MD *alg_md(enum edge_digest_alg alg)
{
	static EVP_MD *md[2];
	static const char *const name[2] = {[EDGE_DIGEST_MD5] = "MD5",
					    [EDGE_DIGEST_SHA256] = "SHA256"};

	if ((unsigned)alg >= 2)
		return NULL;
	if (!md[alg])
		md[alg] = EVP_MD_fetch(NULL, name[alg], NULL); /* NULL: MD5 in FIPS mode */
	return md[alg];
}

/* H(parts[0] ":" parts[1] ":" ...) as hex into out. */
static int hash_join(enum edge_digest_alg alg, const char *const *parts, size_t n, char *out)
{
	static EVP_MD_CTX *ctx; /* reused: one thread (see alg_md()) */
	const EVP_MD *md = alg_md(alg);
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	char join[512];
	size_t used = 0, top = 0;
	int ok;

	if (alg != EDGE_DIGEST_MD5 && alg != EDGE_DIGEST_SHA256)
		return SK_EINVAL;
	if (!md)
		return SK_ENOTSUP;
	if (!ctx && !(ctx = EVP_MD_CTX_new()))
		return SK_ENOMEM;
	ok = EVP_DigestInit_ex(ctx, md, NULL);
	/* The parts joined in a stack buffer and hashed with one update (each
	 * EVP_DigestUpdate() goes through the provider: ~180 instructions before any
	 * hashing); a part that does not fit is hashed on its own. */
	for (size_t k = 0; ok && k < n; k++) {
		size_t l = strlen(parts[k]);

		if (k)
			join[used++] = ':';
		if (used + l < sizeof(join)) {
			memcpy(join + used, parts[k], l);
			used += l;
			top = used > top ? used : top;
			continue;
		}
		ok = EVP_DigestUpdate(ctx, join, used) && EVP_DigestUpdate(ctx, parts[k], l);
		used = 0;
	}
	if (ok && used)
		ok = EVP_DigestUpdate(ctx, join, used);
	OPENSSL_cleanse(join, top); /* it held HA1, a password equivalent */
	if (ok)
		ok = EVP_DigestFinal_ex(ctx, d, &dlen);
	if (!ok || dlen * 2 != alg_hexlen(alg))
		return SK_ENOTSUP;
	hex(d, dlen, out);
	return 0;
}

int edge_digest_ha1(enum edge_digest_alg alg, const char *user, const char *realm,
		    const char *password, char out[EDGE_DIGEST_HEX_SIZE])
{
	const char *parts[3] = {user, realm, password};

	if (!user || !realm || !password || !out)
		return SK_EINVAL;
	return hash_join(alg, parts, 3, out);
}

/* ---- nonces ---- */

/* HMAC-SHA256 keyed with the nonce secret. OpenSSL 3's one-shot HMAC() fetches the
 * algorithm and sets the key up (two SHA-256 blocks) on every call — 7 % of the
 * edge's time per REGISTER in the profile of docs/performance.md. The keyed context
 * is made once per secret; each MAC re-initialises it with a NULL key, which starts
 * again from the keyed inner state (RFC 2104 §4, EVP_MAC_init(3)) without copying
 * the whole context as EVP_MAC_CTX_dup() did. One thread (the daemon's loop); the
 * last secret stays cached for the life of the process. */
static int hmac_sha256(const void *secret, size_t secret_len, const unsigned char *in,
		       size_t n, unsigned char md[32])
{
	static EVP_MAC *mac;
	static EVP_MAC_CTX *keyed;
	static unsigned char key[256];
	static size_t key_len;
	size_t out = 0;
	int ok;

	if (!keyed || key_len != secret_len || CRYPTO_memcmp(key, secret, secret_len)) {
		OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
				       OSSL_PARAM_construct_end()};

		if (secret_len > sizeof(key))
			return SK_EINVAL;
		if (!mac && !(mac = EVP_MAC_fetch(NULL, "HMAC", NULL)))
			return SK_ENOTSUP;
		EVP_MAC_CTX_free(keyed);
		key_len = 0;
		if (!(keyed = EVP_MAC_CTX_new(mac)))
			return SK_ENOMEM;
		if (!EVP_MAC_init(keyed, secret, secret_len, params)) {
			EVP_MAC_CTX_free(keyed);
			keyed = NULL;
			return SK_ENOTSUP;
		}
		memcpy(key, secret, secret_len);
		key_len = secret_len;
	} else if (!EVP_MAC_init(keyed, NULL, 0, NULL)) {
		return SK_ENOTSUP;
	}
	ok = EVP_MAC_update(keyed, in, n) && EVP_MAC_final(keyed, md, &out, 32) && out == 32;
	return ok ? 0 : SK_ENOTSUP;
}

/* label: NONCE_LABEL with the head's NONCE_TIME + NONCE_RAND bytes, or NONCE1_LABEL
 * with NONCE_TIME + NONCE1_RAND. */
static int nonce_mac_v(const void *secret, size_t secret_len, const char *label,
		       size_t head_len, const char *realm, const unsigned char *head,
		       unsigned char mac[NONCE_MAC])
{
	unsigned char in[sizeof(NONCE_LABEL) + NONCE_TIME + NONCE_RAND + EDGE_DIGEST_REALM_MAX];
	unsigned char md[32];
	size_t rlen = strlen(realm), llen = strlen(label) + 1, n = 0;
	int err;

	if (rlen > EDGE_DIGEST_REALM_MAX || secret_len == 0 || secret_len > INT32_MAX)
		return SK_EINVAL;
	/* The label (with its NUL) separates this MAC from any other use of the secret;
	 * time and random have fixed sizes, so the realm at the end is unambiguous. */
	memcpy(in, label, llen);
	n += llen;
	memcpy(in + n, head, head_len);
	n += head_len;
	memcpy(in + n, realm, rlen);
	n += rlen;
	if ((err = hmac_sha256(secret, secret_len, in, n, md)))
		return err;
	memcpy(mac, md, NONCE_MAC);
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

static int nonce_mac(const void *secret, size_t secret_len, const char *realm,
		     const unsigned char *head, unsigned char mac[NONCE_MAC])
{
	return nonce_mac_v(secret, secret_len, NONCE_LABEL, NONCE_TIME + NONCE_RAND, realm, head,
			   mac);
}

static void b64url_encode(const unsigned char *p, size_t n, char *out)
{
	size_t o = 0, k = 0;

	for (; k + 3 <= n; k += 3) {
		uint32_t v = (uint32_t)p[k] << 16 | (uint32_t)p[k + 1] << 8 | p[k + 2];

		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
		out[o++] = b64url[v & 63];
	}
	if (n - k == 1) {
		out[o++] = b64url[p[k] >> 2];
		out[o++] = b64url[(p[k] & 3) << 4];
	} else if (n - k == 2) {
		uint32_t v = (uint32_t)p[k] << 8 | p[k + 1];

		out[o++] = b64url[v >> 10];
		out[o++] = b64url[(v >> 4) & 63];
		out[o++] = b64url[(v & 15) << 2];
	}
	out[o] = '\0';
}

/* The index of ch in b64url[], or -1 (arithmetic: strchr() per character was a tenth
 * of edge_digest_nonce_check()). */
static int b64url_val(char ch)
{
	unsigned char c = (unsigned char)ch;

	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decodes exactly chars characters into bytes; false on any other length, a character
 * outside the alphabet, or non-zero unused bits (a second spelling). */
static bool nonce_decode_n(const char *s, unsigned char *out, size_t bytes, size_t chars)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	if (strlen(s) != chars)
		return false;
	for (size_t k = 0; k < chars; k++) {
		int v = b64url_val(s[k]);

		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return o == bytes && acc == 0;
}

static bool nonce_decode(const char *s, unsigned char out[NONCE_BYTES])
{
	return nonce_decode_n(s, out, NONCE_BYTES, NONCE_CHARS);
}

/* A nonce of the format before, made with this secret for this realm. */
static bool nonce_v1(const void *secret, size_t secret_len, const char *realm, const char *nonce)
{
	unsigned char raw[NONCE1_BYTES], mac[NONCE_MAC];

	return nonce_decode_n(nonce, raw, NONCE1_BYTES, NONCE1_CHARS) &&
	       nonce_mac_v(secret, secret_len, NONCE1_LABEL, NONCE_TIME + NONCE1_RAND, realm, raw,
			   mac) == 0 &&
	       CRYPTO_memcmp(mac, raw + NONCE_TIME + NONCE1_RAND, NONCE_MAC) == 0;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int edge_digest_nonce_new(const void *secret, size_t secret_len, const char *realm, uint64_t now,
			  const struct edge_digest_nonce_id *id, char *out, size_t size)
{
	unsigned char raw[NONCE_BYTES];
	int rc;

	if (!secret || !realm || !out)
		return SK_EINVAL;
	if (size < EDGE_DIGEST_NONCE_SIZE)
		return SK_EMSGSIZE;
	for (int k = 0; k < NONCE_TIME; k++)
		raw[k] = (unsigned char)(now >> (8 * (NONCE_TIME - 1 - k)));
	if (id) {
		put32(raw + NONCE_TIME, id->issuer);
		put32(raw + NONCE_TIME + 4, id->epoch);
		put32(raw + NONCE_TIME + 8, id->index);
	} else if (edge_random_bytes(raw + NONCE_TIME, NONCE_RAND)) {
		/* The kernel's CSPRNG through the edge's pool: RAND_bytes() cost more
		 * than the MAC (its DRBG locks and reseed checks, per call). */
		return SK_EAGAIN;
	}
	rc = nonce_mac(secret, secret_len, realm, raw, raw + NONCE_TIME + NONCE_RAND);
	if (rc)
		return rc;
	b64url_encode(raw, NONCE_BYTES, out);
	return 0;
}

enum edge_digest_nonce_state edge_digest_nonce_check(const void *secret, size_t secret_len,
						     const char *realm, const char *nonce,
						     uint64_t now, uint32_t max_age_s,
						     struct edge_digest_nonce_id *id)
{
	unsigned char raw[NONCE_BYTES], mac[NONCE_MAC];
	uint64_t t = 0;

	if (!secret || !realm || !nonce)
		return EDGE_DIGEST_NONCE_INVALID;
	if (!nonce_decode(nonce, raw)) {
		if (id)
			memset(id, 0, sizeof(*id)); /* names no edge */
		return nonce_v1(secret, secret_len, realm, nonce) ? EDGE_DIGEST_NONCE_STALE
								  : EDGE_DIGEST_NONCE_INVALID;
	}
	if (nonce_mac(secret, secret_len, realm, raw, mac) != 0 ||
	    CRYPTO_memcmp(mac, raw + NONCE_TIME + NONCE_RAND, NONCE_MAC) != 0)
		return EDGE_DIGEST_NONCE_INVALID;
	for (int k = 0; k < NONCE_TIME; k++)
		t = (t << 8) | raw[k];
	if (t > now + EDGE_DIGEST_NONCE_SKEW_S)
		return EDGE_DIGEST_NONCE_INVALID;
	if (id) {
		id->issuer = get32(raw + NONCE_TIME);
		id->epoch = get32(raw + NONCE_TIME + 4);
		id->index = get32(raw + NONCE_TIME + 8);
	}
	if (t < now && now - t > max_age_s)
		return EDGE_DIGEST_NONCE_STALE;
	return EDGE_DIGEST_NONCE_VALID;
}

/* ---- challenges ---- */

/* Printable ASCII that can go inside a quoted-string without escapes. */
static bool quotable(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e || *s == '"' || *s == '\\')
			return false;
	return true;
}

int edge_digest_challenge(struct sk_buf *b, bool proxy, unsigned algs, const char *realm,
			  const char *nonce, const char *opaque, bool stale)
{
	static const enum edge_digest_alg order[] = {EDGE_DIGEST_SHA256, EDGE_DIGEST_MD5};

	if (!b || !quotable(realm) || !quotable(nonce) || (opaque && !quotable(opaque)) ||
	    !(algs & EDGE_DIGEST_OFFER_ALL) || (algs & ~EDGE_DIGEST_OFFER_ALL) ||
	    strlen(realm) > EDGE_DIGEST_REALM_MAX)
		return SK_EINVAL;
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		if (!(algs & (1u << order[k])))
			continue;
		/* Appends, not printf: one challenge per first REGISTER or INVITE. */
		sk_buf_puts(b, proxy ? "Proxy-Authenticate: Digest realm=\""
				     : "WWW-Authenticate: Digest realm=\"");
		sk_buf_puts(b, realm);
		SK_BUF_LIT(b, "\", nonce=\"");
		sk_buf_puts(b, nonce);
		if (opaque) {
			SK_BUF_LIT(b, "\", opaque=\"");
			sk_buf_puts(b, opaque);
		}
		SK_BUF_LIT(b, "\", algorithm=");
		sk_buf_puts(b, edge_digest_alg_name(order[k]));
		SK_BUF_LIT(b, ", qop=\"auth\"");
		if (stale)
			SK_BUF_LIT(b, ", stale=true");
		SK_BUF_LIT(b, "\r\n");
	}
	return b->err;
}

/* ---- credentials ---- */

enum field {
	F_USERNAME,
	F_REALM,
	F_NONCE,
	F_URI,
	F_RESPONSE,
	F_ALGORITHM,
	F_CNONCE,
	F_OPAQUE,
	F_QOP,
	F_NC,
	F_USERNAME_STAR,
	F_USERHASH,
	F_N
};

static const char *const names[F_N] = {
    [F_USERNAME] = "username",
    [F_REALM] = "realm",
    [F_NONCE] = "nonce",
    [F_URI] = "uri",
    [F_RESPONSE] = "response",
    [F_ALGORITHM] = "algorithm",
    [F_CNONCE] = "cnonce",
    [F_OPAQUE] = "opaque",
    [F_QOP] = "qop",
    [F_NC] = "nc",
    [F_USERNAME_STAR] = "username*",
    [F_USERHASH] = "userhash",
};

/* The value of one "name=value" parameter: unquoted (with \-escapes undone, RFC 3261
 * §25.1 quoted-pair) into out. Returns false when it does not fit or a quote is open. */
static bool unquote(const char *v, char *out, size_t size)
{
	size_t o = 0;

	if (*v != '"') {
		size_t n = strlen(v);

		if (n >= size)
			return false;
		memcpy(out, v, n + 1);
		return true;
	}
	for (v++; *v && *v != '"'; v++) {
		if (*v == '\\' && v[1])
			v++;
		if (o + 1 >= size)
			return false;
		out[o++] = *v;
	}
	out[o] = '\0';
	return *v == '"' && v[1] == '\0';
}

/* The value of name in params (case-insensitive name), or NULL; *dup set when the name
 * appears more than once; a parameter without '=' gives "" (a missing value). */
static const char *param(msg_param_t const *params, const char *name, bool *dup)
{
	const char *found = NULL;
	size_t n = strlen(name);

	for (size_t k = 0; params && params[k]; k++) {
		const char *p = params[k];

		if (strncasecmp(p, name, n) != 0 || (p[n] != '=' && p[n] != '\0'))
			continue;
		if (found)
			*dup = true;
		else
			found = p[n] == '=' ? p + n + 1 : "";
	}
	return found;
}

/* Every field of params in one pass: v[f] gets the value of names[f] as param() would
 * give it, and the return value is the first field (in names[] order) that appears
 * more than once, or F_N. param() per field walked the list 12 times with strncasecmp
 * (a tenth of the edge's instructions per authenticated REGISTER). */
static int fields(msg_param_t const *params, const char *v[F_N])
{
	static const unsigned char len[F_N] = {
	    [F_USERNAME] = 8, [F_REALM] = 5,  [F_NONCE] = 5,	 [F_URI] = 3,
	    [F_RESPONSE] = 8, [F_ALGORITHM] = 9, [F_CNONCE] = 6, [F_OPAQUE] = 6,
	    [F_QOP] = 3,      [F_NC] = 2,	 [F_USERNAME_STAR] = 9, [F_USERHASH] = 8,
	};
	bool dup[F_N] = {false};

	for (int f = 0; f < F_N; f++)
		v[f] = NULL;
	for (size_t k = 0; params && params[k]; k++) {
		const char *p = params[k];
		size_t n = strcspn(p, "=");

		for (int f = 0; f < F_N; f++) {
			if (n != len[f] || strncasecmp(p, names[f], n) != 0)
				continue;
			if (v[f])
				dup[f] = true;
			else
				v[f] = p[n] == '=' ? p + n + 1 : "";
			break;
		}
	}
	for (int f = 0; f < F_N; f++)
		if (dup[f])
			return f;
	return F_N;
}

static int bad(struct edge_digest_result *r, enum edge_digest_status s, const char *what,
	       const char *name)
{
	edge_digest_result_set(r, s, "%s %s", what, name);
	return 0;
}

void edge_digest_creds_reset(struct edge_digest_creds *c)
{
	c->alg = EDGE_DIGEST_MD5;
	c->qop = false;
	c->nc = 0;
	c->username[0] = c->realm[0] = c->nonce[0] = c->uri[0] = c->response[0] = '\0';
	c->cnonce[0] = c->nc_text[0] = c->opaque[0] = '\0';
}

int edge_digest_creds_get(struct edge_digest_creds *c, const msg_auth_t *au, const char *realm,
			  struct edge_digest_result *r)
{
	const char *v[F_N] = {NULL};
	char qop[16] = "", alg[32] = "";
	bool dup = false;

	if (!c || !realm || !r)
		return SK_EINVAL;
	edge_digest_creds_reset(c); /* strings emptied, not 1.5 KB zeroed */
	r->status = EDGE_DIGEST_OK;
	r->reason[0] = '\0';

	/* The first Digest credentials for our realm (RFC 3261 §22.3). */
	for (; au; au = au->au_next) {
		const char *rv;

		if (!au->au_scheme || strcasecmp(au->au_scheme, "Digest") != 0)
			continue;
		rv = param(au->au_params, "realm", &dup);
		dup = false;
		if (rv && unquote(rv, c->realm, sizeof(c->realm)) && strcmp(c->realm, realm) == 0)
			break;
	}
	if (!au) {
		memset(c, 0, sizeof(*c));
		edge_digest_result_set(r, EDGE_DIGEST_NO_CREDS, "no credentials for realm");
		return 0;
	}

	{
		int f = fields(au->au_params, v);

		if (f != F_N)
			return bad(r, EDGE_DIGEST_MALFORMED, "duplicate", names[f]);
	}
	if (v[F_USERNAME_STAR])
		return bad(r, EDGE_DIGEST_UNSUPPORTED, "not supported:", "username*");
	if (v[F_USERHASH] && !unquote(v[F_USERHASH], qop, sizeof(qop)))
		return bad(r, EDGE_DIGEST_MALFORMED, "bad", "userhash");
	if (v[F_USERHASH] && strcasecmp(qop, "false") != 0)
		return bad(r, EDGE_DIGEST_UNSUPPORTED, "not supported:", "userhash");

	/* algorithm: absent means MD5 (RFC 7616 §3.3). */
	c->alg = EDGE_DIGEST_MD5;
	if (v[F_ALGORITHM]) {
		if (!unquote(v[F_ALGORITHM], alg, sizeof(alg)) || !*alg)
			return bad(r, EDGE_DIGEST_UNSUPPORTED, "unknown", "algorithm");
		if (strcasecmp(alg, "SHA-256") == 0)
			c->alg = EDGE_DIGEST_SHA256;
		else if (strcasecmp(alg, "MD5") != 0) {
			edge_digest_result_set(r, EDGE_DIGEST_UNSUPPORTED,
					       "algorithm %.40s not supported", alg);
			return 0;
		}
	}

	/* qop: only "auth"; we never offer auth-int (the body would have to be hashed). */
	if (v[F_QOP]) {
		if (!unquote(v[F_QOP], qop, sizeof(qop)) || strcasecmp(qop, "auth") != 0) {
			if (strcasecmp(qop, "auth-int") == 0)
				return bad(r, EDGE_DIGEST_UNSUPPORTED, "qop auth-int",
					   "not supported");
			return bad(r, EDGE_DIGEST_UNSUPPORTED, "unknown", "qop");
		}
		c->qop = true;
	}

	{
		static const struct {
			int f;
			size_t off, size;
		} want[] = {
		    {F_USERNAME, offsetof(struct edge_digest_creds, username),
		     EDGE_DIGEST_USER_SIZE},
		    {F_NONCE, offsetof(struct edge_digest_creds, nonce), EDGE_DIGEST_FIELD_SIZE},
		    {F_URI, offsetof(struct edge_digest_creds, uri), EDGE_DIGEST_URI_SIZE},
		    {F_RESPONSE, offsetof(struct edge_digest_creds, response),
		     EDGE_DIGEST_HEX_SIZE},
		    {F_CNONCE, offsetof(struct edge_digest_creds, cnonce), EDGE_DIGEST_FIELD_SIZE},
		    {F_NC, offsetof(struct edge_digest_creds, nc_text), sizeof(c->nc_text)},
		    {F_OPAQUE, offsetof(struct edge_digest_creds, opaque), EDGE_DIGEST_FIELD_SIZE},
		};

		for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
			int f = want[k].f;
			bool needed = f != F_OPAQUE && (c->qop || (f != F_CNONCE && f != F_NC));
			char *dst = (char *)c + want[k].off;

			if (!v[f] && !needed)
				continue;
			if (!v[f])
				return bad(r, EDGE_DIGEST_MALFORMED, "missing", names[f]);
			if (!unquote(v[f], dst, want[k].size))
				return bad(r, EDGE_DIGEST_MALFORMED,
					   f == F_NC ? "nc is not 8 hex digits:"
						     : "bad or too long",
					   names[f]);
			if (!*dst && needed)
				return bad(r, EDGE_DIGEST_MALFORMED, "empty", names[f]);
		}
	}

	/* Without qop, cnonce and nc are not part of the response (RFC 2617 §3.2.2): they
	 * are dropped so that no one counts on them. */
	if (!c->qop) {
		c->cnonce[0] = '\0';
		c->nc_text[0] = '\0';
	} else {
		for (int k = 0; k < 8; k++)
			if (!is_hex(c->nc_text[k]))
				return bad(r, EDGE_DIGEST_MALFORMED,
					   "nc is not 8 hex digits:", "nc");
		if (c->nc_text[8] != '\0')
			return bad(r, EDGE_DIGEST_MALFORMED, "nc is not 8 hex digits:", "nc");
		c->nc = (uint32_t)strtoul(c->nc_text, NULL, 16);
	}

	{
		char resp[EDGE_DIGEST_HEX_SIZE];

		if (!hex_lower(c->response, alg_hexlen(c->alg), resp))
			return bad(r, EDGE_DIGEST_MALFORMED, "bad", "response");
		memcpy(c->response, resp, sizeof(resp));
	}
	return 0;
}

/* ---- verification ---- */

/* digest-uri against the Request-URI (see digest.h). */
static bool uri_matches(const char *digest_uri, const url_t *ruri)
{
	char text[EDGE_DIGEST_URI_SIZE];
	su_home_t home[1] = {SU_HOME_INIT(home)};
	issize_t n = url_e(text, sizeof(text), ruri);
	url_t *u;
	bool same;

	/* url_e() returns the length it needs; the text is whole only when that fits. */
	if (n > 0 && (size_t)n < sizeof(text) && strcmp(text, digest_uri) == 0)
		return true;
	/* Not for tel: sofia-sip 1.12 compares tel numbers past their end when one ends
	 * in a visual separator ("tel:+1-"; found by tests/fuzz/fuzz_uri.c), and RFC
	 * 3966 comparison is not §19.1.4 anyway: the text must then be the same. */
	if (ruri->url_type == url_tel)
		return false;
	u = url_make(home, digest_uri);
	same = u && u->url_type == ruri->url_type && url_cmp_all(u, ruri) == 0;
	su_home_deinit(home);
	return same;
}

int edge_digest_verify(const struct edge_digest_creds *c, const char *method,
		       const url_t *request_uri, const char *ha1_hex, enum edge_digest_alg alg,
		       struct edge_digest_result *r)
{
	char ha1[EDGE_DIGEST_HEX_SIZE], ha2[EDGE_DIGEST_HEX_SIZE], resp[EDGE_DIGEST_HEX_SIZE];
	size_t hl = alg_hexlen(alg);
	int rc;

	if (!c || !method || !ha1_hex || !r || alg != c->alg || !hex_lower(ha1_hex, hl, ha1))
		return SK_EINVAL;
	r->status = EDGE_DIGEST_OK;
	r->reason[0] = '\0';
	if (request_uri && !uri_matches(c->uri, request_uri)) {
		edge_digest_result_set(r, EDGE_DIGEST_URI_MISMATCH,
				       "digest uri is not the Request-URI");
		return 0;
	}
	{
		const char *a2[2] = {method, c->uri};

		rc = hash_join(alg, a2, 2, ha2);
	}
	if (rc == 0 && c->qop) {
		const char *p[6] = {ha1, c->nonce, c->nc_text, c->cnonce, "auth", ha2};

		rc = hash_join(alg, p, 6, resp);
	} else if (rc == 0) {
		const char *p[3] = {ha1, c->nonce, ha2};

		rc = hash_join(alg, p, 3, resp);
	}
	OPENSSL_cleanse(ha1, sizeof(ha1));
	if (rc)
		return rc;
	/* Both are hl lower-case hex digits (creds_get checked the length for c->alg). */
	if (strlen(c->response) != hl || CRYPTO_memcmp(resp, c->response, hl) != 0)
		edge_digest_result_set(r, EDGE_DIGEST_BAD_RESPONSE, "bad response");
	return 0;
}
