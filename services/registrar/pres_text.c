/* pres_text: the pure text work of the notifier (no loop, no Redis): subscription
 * ids, From without its tag, Subscription-State, the NOTIFY request, timer members.
 * tests/registrar/test_pres_engine.c includes this file. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "pres_int.h"

void pres_sub_id(char id[PRES_ID_SIZE], const char *call_id, const char *remote_tag,
		 const char *local_tag)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);

	/* NUL separators: ("ab","c") and ("a","bc") must differ. The id is only an
	 * index: the stored dialog fields are compared too (pres_sub.c). */
	ok = ok && EVP_DigestUpdate(ctx, call_id, strlen(call_id) + 1) &&
	     EVP_DigestUpdate(ctx, remote_tag, strlen(remote_tag) + 1) &&
	     EVP_DigestUpdate(ctx, local_tag, strlen(local_tag) + 1) &&
	     EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	if (!ok || mdlen < 16)
		memset(md, 0, 16); /* only when OpenSSL is out of memory */
	for (size_t i = 0; i < 16; i++) {
		id[2 * i] = hex[md[i] >> 4];
		id[2 * i + 1] = hex[md[i] & 15];
	}
	id[32] = '\0';
}

/* Where the header parameters of a name-addr / addr-spec start: after the '>' of
 * the URI (quoted display names may hold '<' and '>'), or, without brackets, at the
 * first ';' (RFC 3261 §20.10: such a URI holds no ';'). */
static size_t params_start(const char *v)
{
	bool q = false;

	for (size_t i = 0; v[i]; i++) {
		if (q) {
			if (v[i] == '\\' && v[i + 1])
				i++;
			else if (v[i] == '"')
				q = false;
		} else if (v[i] == '"') {
			q = true;
		} else if (v[i] == '<') {
			const char *e = strchr(v + i, '>');

			return e ? (size_t)(e - v) + 1 : strlen(v);
		}
	}
	return strcspn(v, ";");
}

char *pres_strip_tag(const char *from)
{
	size_t p = params_start(from), n = strlen(from);
	struct sk_buf b;
	char *out;

	sk_buf_init(&b);
	sk_buf_append(&b, from, p);
	while (p < n) {
		size_t e = p + 1 + strcspn(from + p + 1, ";"); /* from[p] == ';' */
		const char *name = from + p + 1;
		size_t nl = strcspn(name, "=;");

		while (nl && (name[nl - 1] == ' ' || name[nl - 1] == '\t'))
			nl--;
		while (nl && (*name == ' ' || *name == '\t'))
			name++, nl--;
		if (!(nl == 3 && !strncasecmp(name, "tag", 3)))
			sk_buf_append(&b, from + p, e - p);
		p = e;
	}
	if (b.err) {
		sk_buf_release(&b);
		return NULL;
	}
	/* trailing white space before a removed tag */
	while (b.len && (b.data[b.len - 1] == ' ' || b.data[b.len - 1] == '\t'))
		b.len--;
	out = sk_strndup(b.data ? b.data : "", b.len);
	sk_buf_release(&b);
	return out;
}

char *pres_display_name(const char *from)
{
	const char *lt;
	size_t n;

	while (*from == ' ' || *from == '\t')
		from++;
	if (*from == '"') {
		struct sk_buf b;
		char *out;

		sk_buf_init(&b);
		for (const char *c = from + 1; *c && *c != '"'; c++) {
			if (*c == '\\' && c[1])
				c++;
			sk_buf_append(&b, c, 1);
		}
		out = sk_strndup(b.data ? b.data : "", b.len);
		sk_buf_release(&b);
		return out;
	}
	lt = strchr(from, '<');
	if (!lt)
		return sk_strdup("");
	n = (size_t)(lt - from);
	while (n && (from[n - 1] == ' ' || from[n - 1] == '\t'))
		n--;
	return sk_strndup(from, n);
}

int pres_substate(char *buf, size_t size, const char *state, const char *reason,
		  uint64_t expires_at_ms, uint64_t now_ms)
{
	int n;

	if (!strcmp(state, "active") || !strcmp(state, "pending")) {
		uint64_t left = expires_at_ms > now_ms ? (expires_at_ms - now_ms + 999) / 1000 : 0;

		n = snprintf(buf, size, "%s;expires=%llu", state, (unsigned long long)left);
	} else {
		n = snprintf(buf, size, "terminated;reason=%s",
			     reason && reason[0] ? reason : "noresource");
	}
	return n < 0 || (size_t)n >= size ? SK_ERANGE : 0;
}

static bool clean(const char *s)
{
	return !strpbrk(s, "\r\n");
}

/* A URI in angle brackets unless it is already a name-addr. */
static void put_addr(struct sk_buf *b, const char *name, const char *v)
{
	if (strchr(v, '<'))
		sk_buf_printf(b, "%s: %s\r\n", name, v);
	else
		sk_buf_printf(b, "%s: <%s>\r\n", name, v);
}

int pres_notify_text(struct sk_buf *b, const Skein__Sip__V1__Subscription *s, uint32_t cseq,
		     const char *substate, const char *ctype, const char *body, size_t len)
{
	const char *fields[] = {s->remote_target, s->resource_uri, s->local_tag,      s->remote,
				s->remote_tag,	  s->call_id,	   s->local_contact,  s->event,
				s->event_id,	  substate,	   ctype ? ctype : ""};

	if (!s->remote_target[0] || strpbrk(s->remote_target, " <>"))
		return SK_EINVAL;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (!clean(fields[i]))
			return SK_EINVAL;
	for (size_t i = 0; i < s->n_route; i++)
		if (!clean(s->route[i]))
			return SK_EINVAL;
	/* RFC 3261 §12.2.1.1: Request-URI = remote target, Route = the route set (the
	 * Record-Route of the SUBSCRIBE in order, §12.1.1); loose routing assumed. */
	sk_buf_printf(b, "NOTIFY %s SIP/2.0\r\n", s->remote_target);
	for (size_t i = 0; i < s->n_route; i++)
		put_addr(b, "Route", s->route[i]);
	sk_buf_puts(b, "Max-Forwards: 70\r\n");
	if (strchr(s->resource_uri, '<'))
		sk_buf_printf(b, "From: %s;tag=%s\r\n", s->resource_uri, s->local_tag);
	else
		sk_buf_printf(b, "From: <%s>;tag=%s\r\n", s->resource_uri, s->local_tag);
	sk_buf_printf(b, "To: %s;tag=%s\r\n", s->remote, s->remote_tag);
	sk_buf_printf(b, "Call-ID: %s\r\n", s->call_id);
	sk_buf_printf(b, "CSeq: %u NOTIFY\r\n", cseq);
	if (s->local_contact[0])
		put_addr(b, "Contact", s->local_contact);
	if (s->event_id[0])
		sk_buf_printf(b, "Event: %s;id=%s\r\n", s->event, s->event_id);
	else
		sk_buf_printf(b, "Event: %s\r\n", s->event);
	sk_buf_printf(b, "Subscription-State: %s\r\n", substate);
	if (s->eventlist)
		sk_buf_puts(b, "Require: eventlist\r\n"); /* RFC 4662: a list NOTIFY */
	if (ctype && body) {
		sk_buf_printf(b, "Content-Type: %s\r\n", ctype);
		sk_buf_printf(b, "Content-Length: %zu\r\n\r\n", len);
		sk_buf_append(b, body, len);
	} else {
		sk_buf_puts(b, "Content-Length: 0\r\n\r\n");
	}
	return b->err;
}

bool pres_timer_parse(const char *member, size_t len, char *kind, char *aor, size_t asize, char *id,
		      size_t isize)
{
	const char *first, *last;
	size_t al, il;

	if (len < 5 || member[1] != '|')
		return false;
	first = member + 1;
	last = NULL;
	for (const char *c = member + len; c > first; c--)
		if (c[-1] == '|') {
			last = c - 1;
			break;
		}
	if (!last || last == first)
		return false;
	al = (size_t)(last - first - 1);
	il = len - (size_t)(last - member) - 1;
	if (!al || !il || al >= asize || il >= isize || memchr(member, '\0', len))
		return false;
	*kind = member[0];
	memcpy(aor, first + 1, al);
	aor[al] = '\0';
	memcpy(id, last + 1, il);
	id[il] = '\0';
	return true;
}

bool pres_has_tag(char *const *tags, size_t n, const char *tag)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(tags[i], tag))
			return true;
	return false;
}

void pres_random_hex(char *out, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	static uint64_t seq;
	unsigned char raw[32];

	if (nbytes > sizeof(raw))
		nbytes = sizeof(raw);
	if (RAND_bytes(raw, (int)nbytes) != 1) {
		/* OpenSSL's DRBG does not fail once seeded; should it, the value stays
		 * unique per process (a counter), which ids and tags need. */
		uint64_t x = ++seq * 0x9e3779b97f4a7c15ull;

		for (size_t i = 0; i < nbytes; i++)
			raw[i] = (unsigned char)(x >> (8 * (i % 8)) ^ i);
	}
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[2 * nbytes] = '\0';
}
