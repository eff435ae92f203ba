/* regdata: AOR and domain normalisation, key names, the lookup script and decoding. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <hiredis/hiredis.h>
#include <openssl/rand.h>
#include "skein/sk_err.h"
#include "skein/sk_redis.h"
#include "regdata.h"
#include "regdata_lua.h"

/* KEYS: reg, exp, meta (the last two read only to move bindings of the three-key
 * layout, regdata_lua.h). Time from Redis, so edge clocks do not matter. */
const char REGDATA_LUA_LOOKUP[] =
	REGDATA_LUA_LOAD REGDATA_LUA_BY_EXPIRY
	"local order, blob, score = load(redis.call('HGETALL', KEYS[1]))\n"
	"local out = {}\n"
	"for _, k in ipairs(by_expiry(order, score)) do\n"
	"  out[#out + 1] = blob[k]\n"
	"  out[#out + 1] = math.ceil((score[k] - now) / 1000)\n"
	"end\n"
	"return out\n";

/* ---- normalisation ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* RFC 3261 §25.1: unreserved = alphanum / mark. */
static bool is_unreserved(int c)
{
	return isalnum(c) || (c && strchr("-_.!~*'()", c));
}

/* user-unreserved (RFC 3261 §25.1), minus nothing: none of them is '{', '}' or ':'. */
static bool is_user_unreserved(int c)
{
	return c && strchr("&=+$,;?/", c);
}

/* A user part, with %XX of unreserved characters decoded and other escapes upper-cased,
 * so that equal users (RFC 3261 §19.1.4) get one spelling and one key. */
static int user_norm(char *out, size_t size, size_t *pos, const char *in, size_t len,
		     const char **why)
{
	static const char hex[] = "0123456789ABCDEF";

	if (!len) {
		*why = "empty user part";
		return SK_EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '%') {
			int h, l, v;

			if (i + 2 >= len) {
				*why = "truncated %-escape in the user part";
				return SK_EINVAL;
			}
			h = hexval((unsigned char)in[i + 1]);
			l = hexval((unsigned char)in[i + 2]);
			if (h < 0 || l < 0) {
				*why = "bad %-escape in the user part";
				return SK_EINVAL;
			}
			v = h * 16 + l;
			i += 2;
			if (is_unreserved(v)) {
				if (*pos + 1 >= size)
					goto long_;
				out[(*pos)++] = (char)v;
			} else {
				if (*pos + 3 >= size)
					goto long_;
				out[(*pos)++] = '%';
				out[(*pos)++] = hex[v >> 4];
				out[(*pos)++] = hex[v & 15];
			}
			continue;
		}
		if (!is_unreserved(c) && !is_user_unreserved(c)) {
			*why = "character not allowed in the user part";
			return SK_EINVAL;
		}
		if (*pos + 1 >= size)
			goto long_;
		out[(*pos)++] = (char)c;
	}
	return 0;
long_:
	*why = "too long";
	return SK_EINVAL;
}

/* A host name (RFC 3261 §25.1 hostname: labels of alphanum and '-', not at either
 * end) or an IPv4 address, lower-cased. IPv6 references carry ':', which keys and
 * the AOR syntax here keep out. */
static int host_norm(char *out, size_t size, size_t *pos, const char *in, size_t len,
		     const char **why)
{
	size_t label = 0;

	if (!len) {
		*why = "empty domain";
		return SK_EINVAL;
	}
	if (len > 253) {
		*why = "domain longer than 253 characters";
		return SK_EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '.') {
			if (!label || in[i - 1] == '-') {
				*why = "empty domain label or one ending in '-'";
				return SK_EINVAL;
			}
			label = 0;
		} else if (isalnum(c) || c == '-') {
			if (!label && c == '-') {
				*why = "domain label starting with '-'";
				return SK_EINVAL;
			}
			if (++label > 63) {
				*why = "domain label longer than 63 characters";
				return SK_EINVAL;
			}
		} else {
			*why = "character not allowed in the domain";
			return SK_EINVAL;
		}
		if (*pos + 1 >= size) {
			*why = "too long";
			return SK_EINVAL;
		}
		out[(*pos)++] = (char)tolower(c);
	}
	if (!label || in[len - 1] == '-') {
		*why = "empty domain label or one ending in '-'";
		return SK_EINVAL;
	}
	return 0;
}

int regdata_domain_norm(char *out, size_t size, const char *in, const char **why)
{
	const char *dummy;
	size_t pos = 0;
	int err;

	why = why ? why : &dummy;
	if (!out || !size || !in) {
		*why = "missing argument";
		return SK_EINVAL;
	}
	err = host_norm(out, size, &pos, in, strlen(in), why);
	out[err ? 0 : pos] = '\0';
	return err;
}

int regdata_uri_aor(const char *uri, char *out, size_t size)
{
	char tmp[REGDATA_AOR_MAX];
	const char *s = uri, *why;
	size_t n;

	if (*s == '<')
		s++;
	if (!strncasecmp(s, "sip:", 4))
		s += 4;
	else if (!strncasecmp(s, "sips:", 5))
		s += 5;
	else
		return SK_EINVAL;
	n = strcspn(s, ";?>");
	if (!n || n >= sizeof(tmp))
		return SK_EINVAL;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (!strchr(tmp, '@') || regdata_aor_norm(out, size, tmp, &why))
		return SK_EINVAL;
	return 0;
}

int regdata_aor_norm(char *out, size_t size, const char *in, const char **why)
{
	const char *dummy, *at;
	size_t pos = 0;
	int err;

	why = why ? why : &dummy;
	if (!out || !size || !in) {
		*why = "missing argument";
		return SK_EINVAL;
	}
	if (size > REGDATA_AOR_MAX)
		size = REGDATA_AOR_MAX;
	at = strrchr(in, '@');
	if (!at) {
		out[0] = '\0';
		*why = "no '@' (an AOR is user@domain)";
		return SK_EINVAL;
	}
	err = user_norm(out, size, &pos, in, (size_t)(at - in), why);
	if (!err && pos + 1 >= size) {
		*why = "too long";
		err = SK_EINVAL;
	}
	if (!err) {
		out[pos++] = '@';
		err = host_norm(out, size, &pos, at + 1, strlen(at + 1), why);
	}
	out[err ? 0 : pos] = '\0';
	return err;
}

/* ---- keys ---- */

int regdata_key_domains(char *buf, size_t size, const char *cluster)
{
	return sk_redis_key(buf, size, cluster, "domains", "set");
}

int regdata_key_users(char *buf, size_t size, const char *cluster, const char *domain)
{
	return sk_redis_key(buf, size, cluster, domain, "users");
}

int regdata_key_cred(char *buf, size_t size, const char *cluster, const char *aor)
{
	return sk_redis_key(buf, size, cluster, aor, "cred");
}

int regdata_key_reg(char *buf, size_t size, const char *cluster, const char *aor)
{
	return sk_redis_key(buf, size, cluster, aor, "reg");
}

int regdata_key_exp(char *buf, size_t size, const char *cluster, const char *aor)
{
	return sk_redis_key(buf, size, cluster, aor, "exp");
}

int regdata_key_meta(char *buf, size_t size, const char *cluster, const char *aor)
{
	return sk_redis_key(buf, size, cluster, aor, "meta");
}

int regdata_key_limits(char *buf, size_t size, const char *cluster)
{
	return sk_redis_key(buf, size, cluster, "domains", "limits");
}

int regdata_key_calls(char *buf, size_t size, const char *cluster, const char *aor)
{
	return sk_redis_key(buf, size, cluster, aor, "calls");
}

int regdata_key_cpm(char *buf, size_t size, const char *cluster, const char *aor)
{
	return sk_redis_key(buf, size, cluster, aor, "cpm");
}

int regdata_binding_key(char *buf, size_t size, const char *uri, const char *instance,
			uint32_t reg_id)
{
	int n;

	if (!buf || !uri)
		return SK_EINVAL;
	if (instance && *instance)
		n = snprintf(buf, size, "%s|%u", instance, reg_id);
	else
		n = snprintf(buf, size, "%s", uri);
	return n < 0 || (size_t)n >= size ? SK_ERANGE : 0;
}

/* ---- decoding ---- */

Skein__Sip__V1__Binding *regdata_binding_decode(const void *data, size_t len)
{
	return data ? skein__sip__v1__binding__unpack(NULL, len, data) : NULL;
}

/* q highest first, then the most recent registration (RFC 3261 §16.6 tries higher q
 * first; among equals the newest flow is the likeliest to work). */
static int cmp_binding(const void *a, const void *b)
{
	const Skein__Sip__V1__Binding *x = *(Skein__Sip__V1__Binding *const *)a;
	const Skein__Sip__V1__Binding *y = *(Skein__Sip__V1__Binding *const *)b;

	if (x->q_milli != y->q_milli)
		return x->q_milli > y->q_milli ? -1 : 1;
	if (x->registered_ms != y->registered_ms)
		return x->registered_ms > y->registered_ms ? -1 : 1;
	return strcmp(x->contact, y->contact);
}

static bool int_of(const redisReply *r, long long *v)
{
	char *end;

	if (r->type == REDIS_REPLY_INTEGER) {
		*v = r->integer;
		return true;
	}
	if (r->type != REDIS_REPLY_STRING || !r->len)
		return false;
	*v = strtoll(r->str, &end, 10);
	return *end == '\0';
}

int regdata_bindings_from_reply_at(struct regdata_bindings *out, const void *reply,
				   size_t first, size_t *skipped)
{
	const redisReply *r = reply;
	redisReply **el;
	size_t skip = 0, n;

	if (skipped)
		*skipped = 0;
	if (!out)
		return SK_EINVAL;
	out->b = NULL;
	out->n = 0;
	if (!r || r->type != REDIS_REPLY_ARRAY || first > r->elements)
		return SK_EPROTO;
	el = r->element + first;
	n = r->elements - first;
	if (n % 2)
		return SK_EPROTO;
	if (n) {
		out->b = calloc(n / 2, sizeof(*out->b));
		if (!out->b)
			return SK_ENOMEM;
	}
	for (size_t i = 0; i < n; i += 2) {
		Skein__Sip__V1__Binding *b;
		long long secs;

		if (el[i]->type != REDIS_REPLY_STRING || !int_of(el[i + 1], &secs)) {
			regdata_bindings_free(out);
			return SK_EPROTO;
		}
		b = regdata_binding_decode(el[i]->str, el[i]->len);
		if (!b) {
			skip++;
			continue;
		}
		b->expires_in = secs < 0 ? 0 : secs > UINT32_MAX ? UINT32_MAX : (uint32_t)secs;
		out->b[out->n++] = b;
	}
	regdata_bindings_sort(out);
	if (skipped)
		*skipped = skip;
	return 0;
}

void regdata_bindings_sort(struct regdata_bindings *bs)
{
	if (bs && bs->n > 1)
		qsort(bs->b, bs->n, sizeof(*bs->b), cmp_binding);
}

int regdata_bindings_from_reply(struct regdata_bindings *out, const void *reply,
				size_t *skipped)
{
	return regdata_bindings_from_reply_at(out, reply, 0, skipped);
}

void regdata_bindings_free(struct regdata_bindings *bs)
{
	if (!bs)
		return;
	for (size_t i = 0; i < bs->n; i++)
		skein__sip__v1__binding__free_unpacked(bs->b[i], NULL);
	free(bs->b);
	bs->b = NULL;
	bs->n = 0;
}

int regdata_nonce_secret_fetch(struct sk_redis *r, const char *cluster, sk_redis_reply_cb *cb,
			       void *arg)
{
	unsigned char rnd[32];
	char key[256], hex[65];
	int err;

	if ((err = sk_redis_key(key, sizeof(key), cluster, "cluster", "nonce_secret")))
		return err;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return SK_ENOMEM;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	(void)sk_redis_cmdf(r, NULL, NULL, "SET %s %s NX", key, hex);
	return sk_redis_cmdf(r, cb, arg, "GET %s", key);
}
