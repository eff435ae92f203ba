/* libFuzzer target for the SIP URI handling of the edge and the registrar: the input is
 * one URI as text (a Request-URI, a To/Contact/Route URI). It goes through sofia-sip's
 * url_d() on a copy, as the edge decodes a Route or a binding, and then through what
 * our code does with a parsed URI: the AOR normaliser (services/regdata), "is this URI
 * us", "is this a local domain", where a contact routes to and the flow token of a
 * Route user part (services/edge/core_domain.c and core_route.c, compiled in here with
 * a fixed configuration: they need no daemon), the digest-uri check of
 * edge_digest_verify(), and the URI parameter lookups of routing and resolving
 * (edge_uri_param: transport, maddr, lr) into buffers of the sizes the edge uses.
 *
 * Besides crashes, leaks and over-reads it checks the invariants we rely on:
 * - print and reparse (sip:, sips:, tel:): url_e() of a parsed URI parses again, to an
 *   equal URI (url_cmp_all, same scheme; tel: as text) that prints the same, and
 *   url_as_string(), url_hdup() and url_make() agree with it.
 *   Or else edge_sip_check() refuses it as a Request-URI and as a Contact: sofia-sip
 *   1.12 does not print every URI back as it read it ("sip:a@h/.x" comes out
 *   "sip:a@h.x", "sip:h;x=%40192.0.2.1" comes out "sip:h;x=@192.0.2.1");
 * - the Request-URI printed as a digest-uri always names the Request-URI;
 * - "is us", the route and the AOR are the same for the URI and for its reprint;
 * - a flow token made up by the input never authenticates;
 * - a normalised AOR is a fixed point of the normaliser, with no '{', '}' or ' '. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "regdata.h"
#include "digest.h"
#include "sip_check.h"
#include "sipmsg.h"
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/url.h>

/* The real edge_uri_is_us(), edge_domain_local() (core_domain.c), edge_route_uri() and
 * the flow tokens (core_route.c), not copies of them: those files need no daemon. They
 * need edge_proto_parse/name (tp_addr.c, self-contained), taken the same way rather
 * than linking the whole transport library. */
#include "../../services/edge/core_domain.c"
#define sk_log_mod_ sk_log_mod_route_ /* each file names its own log module */
#include "../../services/edge/core_route.c"
#undef sk_log_mod_
#include "../../services/edge/tp_addr.c"

/* core_domain.c also starts, stops and feeds the per-domain call limits
 * (core_limits.c) from its refresh timer, which never runs here: stand-ins that
 * must not be reached keep the rest of the daemon out. */
int edge_limits_start(struct edge *e)
{
	(void)e;
	abort();
}

void edge_limits_stop(struct edge *e)
{
	(void)e;
	abort();
}

void edge_limits_overrides(struct edge *e, int err, const struct redisReply *r)
{
	(void)e, (void)err, (void)r;
	abort();
}

static struct edge_conf conf = {.cluster_host = "sip.example.com:5060"};
static char *served[] = {"example.com", "example.org"};
static struct edge edge;

static void edge_init(void)
{
	if (edge.conf)
		return;
	edge.conf = &conf;
	edge.domains = served;
	edge.ndomains = sizeof(served) / sizeof(served[0]);
	strcpy(edge.host, "127.0.0.1");
	memcpy(edge.secret, "fuzz-secret", 11);
	edge.secret_len = 11;
	{
		struct edge_flow_ref ref;
		char tok[200];

		if (edge_flow_token(&edge, "node1/edge", 42, tok, sizeof(tok)) ||
		    !edge_flow_token_parse(&edge, tok, &ref) || ref.flow != 42)
			abort();
	}
	edge.port[EDGE_PROTO_UDP] = 5060;
	edge.port[EDGE_PROTO_TCP] = 5060;
	edge.port[EDGE_PROTO_TLS] = 5061;
}

/* The printed form of u, sized the way sipmsg.c and digest.c size it: url_e() into a
 * buffer too small returns the length it needs (and writes nothing past the buffer),
 * then into one of that length plus the NUL. (url_len() is not used: sofia-sip 1.12's
 * disagrees with url_e() for "*" and for "scheme://" URLs.) */
static char *print(const url_t *u)
{
	char *small = malloc(8), *s;
	issize_t n = url_e(small, 8, u);

	if (!small || n < 0) /* 0: the empty URI, which url_d() accepts */
		abort();
	free(small);
	s = malloc((size_t)n + 1);
	if (!s)
		abort();
	if (url_e(s, (isize_t)n + 1, u) != n || strlen(s) != (size_t)n)
		abort();
	return s;
}

/* edge_uri_param() (sipmsg.h) into a heap buffer of exactly the size a caller uses, so
 * a write past it is caught. Its contract: 0 when the parameter is absent, else the
 * size the value needs (its length + 1); the value is copied and terminated only when
 * that fits, otherwise the buffer is left as it was. (sofia-sip's url_param(), which
 * it replaces, reads past the end of the parameters: not called here.) */
static void param(const char *params, const char *name, size_t size)
{
	char *v = malloc(size ? size : 1);
	size_t n;

	if (!v)
		abort();
	memset(v, 0x5a, size);
	n = edge_uri_param(params, name, v, size);
	if (n && n <= size && strlen(v) != n - 1)
		abort();
	if (n == 0 || n > size)
		for (size_t i = 0; i < size; i++)
			if (v[i] != 0x5a)
				abort();
	if (n && !params)
		abort();
	free(v);
}

/* The AOR the edge builds from a To URI (core_register.c, core_proxy.c): "user@host"
 * normalised; "" when it is not one. */
static void aor(const url_t *u, char out[REGDATA_AOR_MAX])
{
	char tmp[REGDATA_AOR_MAX + 8], again[REGDATA_AOR_MAX];
	const char *why = NULL;

	out[0] = '\0';
	if (!u->url_user || !u->url_host)
		return;
	snprintf(tmp, sizeof(tmp), "%s@%s", u->url_user, u->url_host);
	if (regdata_aor_norm(out, REGDATA_AOR_MAX, tmp, &why)) {
		if (!why || out[0])
			abort();
		return;
	}
	if (strchr(out, '{') || strchr(out, '}') || strchr(out, ' ') || !strchr(out, '@'))
		abort();
	if (regdata_aor_norm(again, sizeof(again), out, &why) || strcmp(again, out))
		abort();
}

/* The digest-uri check (digest.c uri_matches through edge_digest_verify): text given
 * as digest-uri against the parsed Request-URI. Returns true when it names it. */
static bool digest_names(const char *text, const url_t *ruri)
{
	static char ha1[EDGE_DIGEST_HEX_SIZE];
	static struct edge_digest_creds c;
	struct edge_digest_result r;

	if (!ha1[0] && edge_digest_ha1(EDGE_DIGEST_MD5, "alice", "example.com", "pw", ha1))
		abort();
	if (strlen(text) >= sizeof(c.uri))
		return true; /* creds_get refuses it before verify is reached */
	c.alg = EDGE_DIGEST_MD5;
	strcpy(c.nonce, "n");
	strcpy(c.response, "00000000000000000000000000000000");
	strcpy(c.uri, text);
	if (edge_digest_verify(&c, "REGISTER", ruri, ha1, EDGE_DIGEST_MD5, &r) != 0)
		abort();
	if (r.status != EDGE_DIGEST_URI_MISMATCH && r.status != EDGE_DIGEST_BAD_RESPONSE)
		abort();
	return r.status != EDGE_DIGEST_URI_MISMATCH;
}

/* What the edge derives from one parsed URI; equal for a URI and its reprint. */
struct derived {
	bool us, local, flow;
	int route_rc;
	struct edge_dest dest;
	struct edge_flow_ref ref;
	char aor[REGDATA_AOR_MAX];
};

static void use(const url_t *u, struct derived *o)
{
	memset(o, 0, sizeof(*o));
	o->us = edge_uri_is_us(&edge, u);
	o->local = edge_domain_local(&edge, u->url_host);
	param(u->url_params, "transport", 8);  /* core_domain.c */
	param(u->url_params, "transport", 16); /* core_route.c, tp_resolve.c */
	param(u->url_params, "maddr", 64);
	param(u->url_params, "maddr=", EDGE_RESOLVE_NAME_MAX);
	param(u->url_params, "lr", 1);
	param(u->url_params, "lr", 0);
	(void)url_port(u);
	/* A binding's contact or a Route entry: where it sends (core_proxy.c). */
	o->route_rc = edge_route_uri(&edge, u, &o->dest);
	if (o->route_rc == 0 && o->dest.proto >= EDGE_PROTO_MAX_)
		abort();
	/* A Route user part of ours: a made-up token never carries our MAC. */
	o->flow = edge_flow_token_parse(&edge, u->url_user, &o->ref);
	if (o->flow)
		abort();
	aor(u, o->aor);
}

/* url_cmp_all(), but not on tel: URIs: sofia-sip 1.12 compares a tel number ending in a
 * visual separator ("tel:+1-") past its end (digest.c avoids it); those are compared
 * as printed. */
static bool same(const url_t *a, const url_t *b)
{
	char *ta, *tb;
	bool eq;

	if (a->url_type != url_tel)
		return url_cmp_all(a, b) == 0;
	ta = print(a);
	tb = print(b);
	/* after the scheme, which url_hdup() spells "tel" whatever the input's case */
	eq = a->url_type == b->url_type && !strcmp(strchr(ta, ':'), strchr(tb, ':'));
	free(ta);
	free(tb);
	return eq;
}

static void must_refuse(const char *head, const uint8_t *data, size_t size, const char *tail)
{
	size_t hl = strlen(head), tl = strlen(tail), n = hl + size + tl;
	char *req = malloc(n);
	struct edge_verdict v;
	msg_t *msg = NULL;

	if (!req)
		abort();
	memcpy(req, head, hl);
	memcpy(req + hl, data, size);
	memcpy(req + hl + size, tail, tl);
	if (edge_sip_check(req, n, EDGE_UDP, 65535, &msg, &v) != 0 || msg ||
	    (v.status == 0 && !v.drop))
		abort();
	free(req);
}

/* A URI that sofia-sip does not print back as it read it: neither a request naming it
 * nor a REGISTER with it as Contact is accepted (sip_check.c, uri_reprints). */
static void refused(const uint8_t *data, size_t size)
{
#define REQ_HDRS                                                                                   \
	"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"                              \
	"Max-Forwards: 70\r\n"                                                                     \
	"To: <sip:alice@example.com>\r\n"                                                          \
	"From: <sip:alice@example.com>;tag=1928301774\r\n"                                         \
	"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
	for (size_t i = 0; i < size; i++)
		if (data[i] <= ' ' || data[i] >= 0x7f)
			return; /* it would not make one request line */
	must_refuse("OPTIONS ", data, size,
		    " SIP/2.0\r\n" REQ_HDRS "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
	if (!memchr(data, '<', size) && !memchr(data, '>', size) && !memchr(data, ',', size) &&
	    !memchr(data, '"', size)) /* else it is not one Contact URI */
		must_refuse("REGISTER sip:example.com SIP/2.0\r\n" REQ_HDRS
			    "CSeq: 1 REGISTER\r\nContact: <",
			    data, size, ">\r\nContent-Length: 0\r\n\r\n");
#undef REQ_HDRS
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	char *copy, *text, *text2, *re;
	url_t u[1], u2[1], *h, *m;
	struct derived d1, d2;

	edge_init();
	copy = malloc(size + 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	copy[size] = '\0';
	if (url_d(u, copy) < 0) {
		free(copy);
		return 0;
	}
	use(u, &d1);
	if (u->url_type != url_sip && u->url_type != url_sips && u->url_type != url_tel) {
		/* The edge refuses other schemes (416), and sofia-sip does not promise to
		 * print them back (";x;s%3Ab" is printed ";x;s:b", which does not parse). */
		free(copy);
		return 0;
	}

	/* Print, reparse: the same URI, printed the same; or else the edge refuses it. */
	text = print(u);
	re = strdup(text);
	if (!re)
		abort();
	if (url_d(u2, re) < 0 || u2->url_type != u->url_type || !same(u, u2)) {
		refused(data, size);
		free(re);
		free(text);
		free(copy);
		return 0;
	}
	text2 = print(u2);
	if (strcmp(text, text2))
		abort();
	use(u2, &d2);
	if (d1.us != d2.us || d1.local != d2.local || d1.route_rc != d2.route_rc ||
	    memcmp(&d1.dest, &d2.dest, sizeof(d1.dest)) || strcmp(d1.aor, d2.aor))
		abort();

	/* The copies the edge makes (core_register.c, digest.c) agree with it. */
	h = url_hdup(home, u);
	if (!h || !same(h, u)) /* NULL: out of memory only */
		abort();
	{
		char *s = url_as_string(home, u);

		if (!s || strcmp(s, text))
			abort();
	}
	m = text[0] ? url_make(home, text) : NULL; /* url_make() refuses "" */
	if (text[0] && (!m || m->url_type != u->url_type || !same(m, u)))
		abort();

	/* A client that copies the Request-URI as printed names it. */
	if (!digest_names(text, u))
		abort();

	free(text2);
	free(re);
	free(text);
	su_home_deinit(home);
	free(copy);
	return 0;
}
