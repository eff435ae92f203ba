/* sip_check: one SIP message through sofia-sip's msg parser and the edge proxy's
 * sanity checks (RFC 3261 §8.2, §16.3; RFC 4475). See sip_check.h for the contract
 * and docs/edge-sip-checks.md for the verdict on every RFC 4475 message. */
#include "sip_check.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/msg_buffer.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/msg_mclass.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_parser.h>
#include <sofia-sip/url.h>
#include "skein/sk_err.h"

/* Bytes of the copy handed to sofia-sip that were changed before parsing and are put
 * back afterwards (see subst_token()). */
#define SUBST_MAX 64

/* Bytes preloaded into the msg home for parsing a message of n bytes (see
 * edge_sip_check()); bounded so that a large message does not pin a large block. */
#define PRELOAD_SIZE(n) ((n) < 3840 ? 2 * (n) + 512 : 8192)

struct subst {
	size_t n;
	size_t pos[SUBST_MAX];
	char orig[SUBST_MAX];
};

static void verdict(struct edge_verdict *v, int status, bool drop, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void verdict(struct edge_verdict *v, int status, bool drop, const char *fmt, ...)
{
	va_list ap;

	v->status = status;
	v->drop = drop;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
}

/* A malformed message: 400 for a request, a silent drop for a response (RFC 3261
 * §18.1.2, §16.7: a malformed response is discarded). what names the fault. */
static void fault(struct edge_verdict *v, const char *what)
{
	if (v->is_request)
		verdict(v, 400, false, "Bad Request (%s)", what);
	else
		verdict(v, 0, true, "%s", what);
}

/* token chars of RFC 3261 §25.1. Asked for every byte of every method name: no
 * strchr() (the switch compiles to a bit test). */
static bool is_token_char(unsigned char c)
{
	if ((unsigned)((c | 0x20) - 'a') < 26 || (unsigned)(c - '0') < 10)
		return true;
	switch (c) {
	case '-': case '.': case '!': case '%': case '*': case '_': case '+': case '`':
	case '\'': case '~':
		return true;
	default:
		return false;
	}
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 3261 §7.5: CRLFs before the start line are ignored (sofia-sip skips any LWS). */
static size_t skip_leading(const char *b, size_t n)
{
	size_t k = 0;

	while (k < n && (b[k] == '\r' || b[k] == '\n' || is_ws(b[k])))
		k++;
	return k;
}

static size_t line_len(const char *b, size_t n)
{
	size_t k = 0;

	while (k < n && b[k] != '\r' && b[k] != '\n')
		k++;
	return k;
}

static bool looks_like_response(const char *b, size_t n)
{
	return n >= 4 && strncasecmp(b, "SIP/", 4) == 0 && memchr(b, '\0', 4) == NULL;
}

/* A request line starts with a token and a space; anything else is junk, not a SIP
 * request, and is dropped rather than answered. */
static bool looks_like_request(const char *b, size_t n)
{
	size_t k = 0;

	while (k < n && is_token_char((unsigned char)b[k]))
		k++;
	return k > 0 && k < n && b[k] == ' ';
}

static bool token_prefix(const char *b, size_t n)
{
	size_t k = 0;

	while (k < n && is_token_char((unsigned char)b[k]))
		k++;
	return k == n;
}

/* sofia-sip 1.12's method parser rejects '+' and '`', which RFC 3261 §25.1 allows in
 * a token (RFC 4475 §3.1.1.2, intmeth). We parse a copy in which they read '-', and
 * put the original bytes back in the parsed message: sofia-sip parses in place, so
 * rq_method_name and cs_method_name point at those very bytes. A name with '-' is
 * never one of sofia-sip's known methods, so method identity is unchanged. */
static void subst_token(char *b, size_t n, size_t i, struct subst *s)
{
	for (; i < n && is_token_char((unsigned char)b[i]); i++) {
		if ((b[i] == '+' || b[i] == '`') && s->n < SUBST_MAX) {
			s->pos[s->n] = i;
			s->orig[s->n++] = b[i];
			b[i] = '-';
		}
	}
}

/* The method of every CSeq header line (RFC 3261 §20.16), up to the empty line. */
static void subst_cseq(char *b, size_t n, struct subst *s)
{
	const char *nl = memchr(b, '\n', n);
	size_t i = nl ? (size_t)(nl - b) : n, j;

	while (++i < n && b[i] != '\r' && b[i] != '\n') {
		if ((b[i] | 0x20) == 'c' && n - i > 4 && strncasecmp(b + i, "CSeq", 4) == 0) {
			for (j = i + 4; j < n && is_ws(b[j]); j++)
				;
			if (j < n && b[j] == ':') {
				for (j++; j < n && is_ws(b[j]); j++)
					;
				while (j < n && b[j] >= '0' && b[j] <= '9')
					j++;
				while (j < n && is_ws(b[j]))
					j++;
				subst_token(b, n, j, s);
			}
		}
		nl = memchr(b + i, '\n', n - i);
		i = nl ? (size_t)(nl - b) : n;
	}
}

/* sofia-sip works on C strings, so a NUL in a quoted-pair (RFC 3261 §25.1 allows
 * %x00 there; intmeth.dat has one in To) would end the header. Inside quoted strings
 * of the header section, "\\" NUL is parsed as "\\0" and the NUL put back. */
static void subst_quoted_nul(char *b, size_t n, struct subst *s)
{
	bool quoted = false;
	size_t i = 0;

	while (i < n && b[i] != '\n')
		i++;
	for (i++; i < n; i++) {
		if (b[i] == '\n') {
			if (i + 1 < n && (b[i + 1] == '\r' || b[i + 1] == '\n'))
				break; /* the empty line */
			if (i + 1 < n && !is_ws(b[i + 1]))
				quoted = false; /* a new header line */
		} else if (b[i] == '"') {
			quoted = !quoted;
		} else if (b[i] == '\\' && quoted && i + 1 < n) {
			i++;
			if (b[i] == '\0' && s->n < SUBST_MAX) {
				s->pos[s->n] = i;
				s->orig[s->n++] = '\0';
				b[i] = '0';
			}
		}
	}
}

static void subst_restore(char *b, const struct subst *s)
{
	for (size_t k = 0; k < s->n; k++)
		if (b[s->pos[k]] == (s->orig[k] ? '-' : '0'))
			b[s->pos[k]] = s->orig[k];
}

/* The class responses are parsed with: sofia-sip's, less Contact and Record-Route,
 * which sofia-sip then keeps as unknown headers — their text, in place, printed back
 * as it came. A proxy relays both untouched (RFC 3261 §16.7: it only removes its
 * Via), and nothing here reads them from a response; parsing their name-addrs and
 * URIs, then encoding them again to forward, cost the edge 2 % of its instructions
 * per call (issue 6: 371 k -> 363 k). A request keeps the full class: its Contact
 * and Record-Route are read (REGISTER, SUBSCRIBE) and Record-Route is added to. Made
 * once; on failure the full class. */
static msg_mclass_t const *response_mclass(void)
{
	static msg_mclass_t const *mc;
	msg_mclass_t const *def = sip_default_mclass();
	msg_mclass_t *lean;

	if (mc)
		return mc;
	lean = msg_mclass_clone(def, 0, 1); /* the same class with an empty header table */
	if (!lean)
		return def;
	for (int i = 0; i < def->mc_hash_size; i++) {
		msg_href_t const *hr = &def->mc_hash[i];

		if (!hr->hr_class || hr->hr_class == sip_contact_class ||
		    hr->hr_class == sip_record_route_class)
			continue;
		if (msg_mclass_insert_with_mask(lean, hr->hr_class, hr->hr_offset,
						hr->hr_flags) < 0) {
			free(lean);
			return mc = def;
		}
	}
	return mc = lean;
}

/* Why sofia-sip could not parse a request line (RFC 4475 §3.1.2.7, §3.1.2.8). */
static void request_line_fault(const char *b, size_t n, struct edge_verdict *v)
{
	size_t len = line_len(b, n), k = 0, ntok = 0;
	const char *uri = NULL, *last = NULL;

	while (k < len) {
		while (k < len && is_ws(b[k]))
			k++;
		if (k == len)
			break;
		ntok++;
		if (ntok == 2)
			uri = b + k;
		last = b + k;
		while (k < len && !is_ws(b[k]))
			k++;
	}
	if (uri && *uri == '<')
		verdict(v, 400, false, "Bad Request (<> around Request-URI)");
	else if (ntok > 3)
		verdict(v, 400, false, "Bad Request (LWS in Request-URI)");
	else if (ntok < 3 || (size_t)(b + len - last) < 4 || strncasecmp(last, "SIP/", 4))
		verdict(v, 400, false, "Bad Request (malformed Request-Line)");
	else
		verdict(v, 400, false, "Bad Request (malformed Request-URI)");
}

/* The first header sofia-sip put on its error list: unparseable, or a second copy of
 * a single-value header (then the fragment keeps its own class). The Date header is
 * skipped: the edge does not use it (RFC 4475 §3.1.2.12). */
static bool header_fault(const sip_t *sip, char *what, size_t size)
{
	for (const msg_error_t *e = sip->sip_error; e; e = e->er_next) {
		const msg_hclass_t *hc = e->er_common->h_class;
		bool dup = hc != sip_error_class;
		const char *name = dup ? hc->hc_name : e->er_name;

		if (name && strcasecmp(name, "Date") == 0)
			continue;
		snprintf(what, size, "%s %s", dup ? "duplicate" : "malformed",
			 name ? name : "header line");
		return true;
	}
	return false;
}

/* RFC 3261 §8.1.1: To, From, CSeq, Call-ID and Via are mandatory (Max-Forwards is
 * too, but RFC 2543 requests lack it: RFC 4475 §3.4.1). Lists all that are missing. */
static bool missing_headers(const sip_t *sip, char *what, size_t size)
{
	const struct {
		bool present;
		const char *name;
	} req[] = {
	    {sip->sip_call_id != NULL, "Call-ID"}, {sip->sip_from != NULL, "From"},
	    {sip->sip_to != NULL, "To"},	   {sip->sip_cseq != NULL, "CSeq"},
	    {sip->sip_via != NULL, "Via"},
	};
	size_t used = 0;

	what[0] = '\0';
	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
		if (req[i].present)
			continue;
		used += (size_t)snprintf(what + used, size > used ? size - used : 0, "%s%s",
					 used ? ", " : "missing ", req[i].name);
		if (used >= size)
			break;
	}
	return what[0] != '\0';
}

/* Every Via must name SIP/2.0 (Kamailio sanity via_sip_version, via_protocol). */
static bool bad_via(const sip_t *sip)
{
	for (const sip_via_t *via = sip->sip_via; via; via = via->v_next)
		if (!via->v_protocol || strncasecmp(via->v_protocol, "SIP/2.0/", 8))
			return true;
	return false;
}

/* Checks common to requests and responses (see fault()). */
static bool common_fault(const sip_t *sip, const char *version, struct edge_verdict *v)
{
	bool rq = v->is_request;
	char what[80];

	/* RFC 3261 §8.2.2 ... §16.3: only SIP/2.0 (case-insensitive, §7.1). */
	if (!version || strcasecmp(version, "SIP/2.0")) {
		verdict(v, rq ? 505 : 0, !rq, "Version Not Supported");
		return true;
	}
	if (header_fault(sip, what, sizeof(what)) || missing_headers(sip, what, sizeof(what))) {
		fault(v, what);
		return true;
	}
	if (bad_via(sip)) {
		fault(v, "bad Via protocol");
		return true;
	}
	/* RFC 3261 §7: the empty line ends the headers; without it the datagram was cut
	 * (and RFC 4475 §3.1.2.15's baddn.dat, which lacks it, is rejected anyway). */
	if (!sip->sip_separator) {
		fault(v, "missing empty line after headers");
		return true;
	}
	/* sofia-sip also takes a lone CR for the empty line; over a stream that depends
	 * on where a read ends, and RFC 3261 §7 wants CRLF: refuse it. */
	if (sip->sip_separator->sep_data[0] == '\r' && sip->sip_separator->sep_data[1] != '\n') {
		fault(v, "bare CR ends the headers");
		return true;
	}
	/* sofia-sip calls a message cut right after the empty line complete: the body
	 * Content-Length announces must be there (RFC 3261 §18.3, clerr.dat). */
	if (sip->sip_content_length &&
	    sip->sip_content_length->l_length > (sip->sip_payload ? sip->sip_payload->pl_len : 0)) {
		fault(v, "Content-Length larger than datagram");
		return true;
	}
	return false;
}

static void check_response(const sip_t *sip, struct edge_verdict *v)
{
	const sip_status_t *st = sip->sip_status;

	if (common_fault(sip, st->st_version, v))
		return;
	/* RFC 3261 §7.2, §21: three digits, 100..699 (RFC 4475 §3.1.2.19). A response
	 * to a broadcast Via (bcast.dat, §3.3.10) is well-formed: routing it is the
	 * proxy's business, not this module's. */
	if (st->st_status < 100 || st->st_status > 699)
		verdict(v, 0, true, "bad status code");
}

static bool join_option_tags(const sip_proxy_require_t *pr, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	for (; pr; pr = pr->k_next)
		for (msg_param_t const *p = pr->k_items; p && *p; p++) {
			int n = snprintf(out + used, size - used, "%s%s", used ? ", " : "", *p);

			if (n < 0 || (size_t)n >= size - used) {
				out[used] = '\0';
				return used > 0;
			}
			used += (size_t)n;
		}
	return used > 0;
}

/* Whether u, printed by sofia-sip, reads back as the same URI. sofia-sip 1.12 does not
 * always print what it read: a path loses its '/' ("sip:a@h/.x" comes out "sip:a@h.x")
 * and an escaped '@' in a parameter comes out bare ("sip:h;x=%40127.0.0.1" comes out
 * "sip:h;x=@127.0.0.1", whose host is 127.0.0.1). The edge prints Request-URIs (a
 * re-encoded Request-Line, CANCEL, ACK) and stores Contacts as printed, so what it
 * checked and routed on would not be what goes out (found by tests/fuzz/fuzz_uri.c).
 * tel: URIs are compared as printed: url_cmp_all() reads past the end of a tel number
 * ending in a visual separator. */
static bool uri_reprints(const url_t *u, const char *raw, size_t raw_len)
{
	char stack[2][512], *a = stack[0], *b = stack[1];
	issize_t n = url_e(a, sizeof(stack[0]), u), n2 = -1;
	url_t u2[1];
	bool same = false;

	if (n < 0)
		return false;
	/* Printed exactly as received (nearly always): reading the print back is reading
	 * the received text again, which gave u. Spares url_d() and url_cmp_all(). */
	if (raw && (size_t)n == raw_len && (size_t)n < sizeof(stack[0]) && !memcmp(a, raw, raw_len))
		return true;
	if ((size_t)n >= sizeof(stack[0])) {
		a = malloc((size_t)n + 1);
		b = malloc((size_t)n + 1);
		if (!a || !b)
			goto out;
		url_e(a, (isize_t)n + 1, u);
	}
	memcpy(b, a, (size_t)n + 1);
	if (url_d(u2, b) < 0 || u2->url_type != u->url_type)
		goto out;
	if (u->url_type != url_tel) {
		same = url_cmp_all(u, u2) == 0;
		goto out;
	}
	/* tel: printing the reread URI gives the same text (u2 points into b) */
	{
		char *c = malloc((size_t)n + 1);

		if (c)
			n2 = url_e(c, (isize_t)n + 1, u2);
		same = c && n2 == n && !memcmp(a, c, (size_t)n);
		free(c);
	}
out:
	if (a != stack[0])
		free(a);
	if (b != stack[1])
		free(b);
	return same;
}

/* The Request-URI as received: the second field of the Request-Line when it is made of
 * visible ASCII only and SP or HTAB delimit it, which is exactly the text sofia-sip's
 * msg_firstline_d() gave url_d(). NULL otherwise (then the print is read back). */
static const char *raw_request_uri(const char *line, size_t llen, size_t *len)
{
	size_t k = 0, start;

	while (k < llen && !is_ws(line[k]))
		k++;
	while (k < llen && is_ws(line[k]))
		k++;
	start = k;
	while (k < llen && line[k] > ' ' && line[k] < 0x7f)
		k++;
	if (k == start || k == llen || !is_ws(line[k]))
		return NULL;
	*len = k - start;
	return line + start;
}

/* The caller's bytes and sofia-sip's parsing copy of them (same offsets). */
struct raw {
	const char *data; /* what edge_sip_check() was given: untouched */
	const char *buf;  /* the msg buffer sofia-sip parsed in place (NULs put in) */
	size_t len;
};

/* The text of a Contact's URI as received, when it can be told for certain. sofia-sip
 * parses in place, so the URI's scheme points into the message buffer; when the byte
 * before it is '<', the name-addr parser cut the URI at the next '>' (RFC 3261 §20.10,
 * §25.1 name-addr) and gave url_d() exactly the bytes in between. They are taken from
 * the caller's copy (the buffer has NULs put in). NULL otherwise (then the print is
 * read back). */
static const char *raw_contact_uri(const sip_contact_t *m, const struct raw *r, size_t *len)
{
	const char *s = m->m_url->url_scheme, *gt;
	size_t off;

	if (!s || s <= r->buf || (size_t)(s - r->buf) >= r->len)
		return NULL;
	off = (size_t)(s - r->buf);
	if (r->data[off - 1] != '<' || !(gt = memchr(r->data + off, '>', r->len - off)))
		return NULL;
	*len = (size_t)(gt - (r->data + off));
	return r->data + off;
}

static void check_request(sip_t *sip, const char *line, size_t llen, const struct raw *raw,
			  struct edge_verdict *v)
{
	sip_request_t *rq = sip->sip_request;
	const url_t *uri = rq->rq_url;
	const sip_cseq_t *cs;
	const char *scheme, *ruri;
	size_t ruri_len = 0;

	if (common_fault(sip, rq->rq_version, v))
		return;
	scheme = uri ? uri->url_scheme : NULL;
	/* RFC 4475 §3.1.2.7: a liberal element may strip them; we answer 400. */
	if (scheme && scheme[0] == '<') {
		verdict(v, 400, false, "Bad Request (<> around Request-URI)");
		return;
	}
	if (!uri || uri->url_type == url_invalid) {
		verdict(v, 400, false, "Bad Request (malformed Request-URI)");
		return;
	}
	/* RFC 3261 §16.3 item 1 (and §8.2.2.1): a scheme the proxy does not know is 416
	 * (unkscm.dat §3.3.2, novelsc.dat §3.3.3: soap.beep is never acceptable here). */
	if (uri->url_type != url_sip && uri->url_type != url_sips && uri->url_type != url_tel) {
		verdict(v, 416, false, "Unsupported URI Scheme");
		return;
	}
	if (uri->url_type != url_tel && (!uri->url_host || !uri->url_host[0])) {
		verdict(v, 400, false, "Bad Request (Request-URI without host)");
		return;
	}
	/* RFC 3261 §19.1.5: headers are not allowed in a Request-URI; RFC 4475 §3.1.2.11
	 * lets us refuse them (a proxy must not forward them). */
	if (uri->url_headers) {
		verdict(v, 400, false, "Bad Request (escaped headers in Request-URI)");
		return;
	}
	ruri = raw_request_uri(line, llen, &ruri_len);
	if (!uri_reprints(uri, ruri, ruri_len)) {
		verdict(v, 400, false, "Bad Request (ambiguous Request-URI)");
		return;
	}
	for (const sip_contact_t *m = sip->sip_contact; m; m = m->m_next) {
		size_t cl = 0;
		const char *c = raw_contact_uri(m, raw, &cl);

		if (m->m_url->url_type != url_any && !uri_reprints(m->m_url, c, cl)) {
			verdict(v, 400, false, "Bad Request (ambiguous Contact URI)");
			return;
		}
	}
	/* RFC 3261 §8.1.1.5: the CSeq method matches the request method. RFC 4475
	 * §3.1.2.18 prefers 501 when the method itself is unknown (mismatch02.dat). */
	cs = sip->sip_cseq;
	if (cs->cs_method != rq->rq_method ||
	    (rq->rq_method == sip_method_unknown &&
	     strcmp(cs->cs_method_name ? cs->cs_method_name : "",
		    rq->rq_method_name ? rq->rq_method_name : ""))) {
		if (rq->rq_method == sip_method_unknown)
			verdict(v, 501, false, "Not Implemented (CSeq method mismatch)");
		else
			verdict(v, 400, false, "Bad Request (CSeq method mismatch)");
		return;
	}
	/* RFC 3261 §16.3 item 2; the caller may answer OPTIONS to itself (sip_check.h). */
	if (sip->sip_max_forwards && sip->sip_max_forwards->mf_count == 0) {
		verdict(v, 483, false, "Too Many Hops");
		return;
	}
	/* RFC 3261 §16.3 item 4: this proxy supports no extension yet (bext01.dat). */
	if (sip->sip_proxy_require &&
	    join_option_tags(sip->sip_proxy_require, v->unsupported, sizeof(v->unsupported))) {
		verdict(v, 420, false, "Bad Extension");
		return;
	}
	/* RFC 4475 §3.1.2.9/§3.1.2.10 (lwsstart, trws): extra SP in the Request-Line is
	 * tolerated but never forwarded: drop the raw line so it is re-encoded. */
	for (size_t k = 0; k < llen; k++)
		if (line[k] == '\t' || (line[k] == ' ' && (k + 1 == llen || line[k + 1] == ' '))) {
			msg_fragment_clear(rq->rq_common);
			break;
		}
}

/* Why a message sofia-sip gave up on is bad (the start line itself parsed). */
static void extract_fault(msg_t *msg, const sip_t *sip, bool udp, struct edge_verdict *v)
{
	char what[80];

	if (!v->is_request) {
		verdict(v, 0, true, "malformed response");
	} else if (msg_get_flags(msg, MSG_FLG_TOOLARGE) && !udp) {
		verdict(v, 513, false, "Message Too Large");
	} else if (header_fault(sip, what, sizeof(what))) {
		/* duplicate Content-Length: mcl01.dat (RFC 4475 §3.3.9); negative or
		 * unparseable: ncl.dat (§3.1.2.3). */
		if (strstr(what, "Content-Length"))
			verdict(v, 400, false, "Bad Request (%s)",
				strncmp(what, "duplicate", 9) ? "bad Content-Length"
							      : "multiple Content-Length");
		else
			verdict(v, 400, false, "Bad Request (%s)", what);
	} else if (udp && msg_get_flags(msg, MSG_FLG_TRUNC | MSG_FLG_TOOLARGE)) {
		/* clerr.dat, RFC 4475 §3.1.2.2; RFC 3261 §18.3. */
		verdict(v, 400, false, "Bad Request (Content-Length larger than datagram)");
	} else if (!udp && !sip->sip_content_length) {
		/* RFC 3261 §18.3, §20.14: mandatory over a stream (inv2543.dat). */
		verdict(v, 400, false, "Bad Request (no Content-Length on a stream)");
	} else {
		verdict(v, 400, false, "Bad Request (malformed message)");
	}
}

int edge_sip_check(const char *data, size_t len, enum edge_transport t, size_t max_size,
		   msg_t **msgp, struct edge_verdict *v)
{
	bool udp = t == EDGE_UDP;
	struct subst sub; /* only sub.n needs a value: 584 bytes not to clear per message */
	size_t lead, feed, llen;
	msg_t *msg;
	sip_t *sip;
	char *b;
	int rc;

	if (msgp)
		*msgp = NULL;
	if (!v || (!data && len) || max_size == 0)
		return SK_EINVAL;
	memset(v, 0, sizeof(*v));
	sub.n = 0;

	lead = skip_leading(data, len);
	if (lead == len) {
		if (!udp && len == 0)
			return SK_EAGAIN;
		/* Empty datagram, or CRLF keep-alives (RFC 5626 §3.5.1): discard. */
		v->drop = true;
		v->consumed = len;
		snprintf(v->reason, sizeof(v->reason), "keep-alive");
		return 0;
	}
	llen = line_len(data + lead, len - lead);
	if (looks_like_response(data + lead, len - lead)) {
		v->is_request = false;
	} else if (looks_like_request(data + lead, len - lead)) {
		v->is_request = true;
	} else if (!udp && len < max_size && token_prefix(data + lead, len - lead)) {
		/* A stream that has only part of the first token so far: wait. */
		return SK_EAGAIN;
	} else {
		v->consumed = len;
		verdict(v, 0, true, "not a SIP message");
		return 0;
	}

	/* RFC 3261 §18.1.1, §21.5.14: 513 for a request over max_size. */
	if (udp && len > max_size) {
		v->consumed = len;
		verdict(v, v->is_request ? 513 : 0, !v->is_request, "Message Too Large");
		return 0;
	}
	feed = len < max_size ? len : max_size;

	msg = msg_create(v->is_request ? sip_default_mclass() : response_mclass(), 0);
	if (!msg)
		return SK_ENOMEM;
	b = msg_buf_alloc(msg, feed + 1);
	if (!b) {
		msg_destroy(msg);
		return SK_ENOMEM;
	}
	/* After the allocation, which needs feed + 1 bytes: sofia-sip then refuses a
	 * Content-Length over max_size instead of allocating for it. */
	msg_maxsize(msg, max_size);
	/* sofia-sip allocates every parsed header, parameter list and URI copy from the
	 * msg home, one malloc() each (about 15 per REGISTER). One preloaded block takes
	 * them: measured, a parsed REGISTER of 620 bytes uses about 1.5 KiB. Best effort:
	 * without it (no memory) the home allocates as before. */
	su_home_preload(msg_home(msg), 1, PRELOAD_SIZE(feed));
	memcpy(b, data, feed);
	/* The substitutions only ever change '+', '`' and NUL: when none is there (nearly
	 * always), memchr() spares walking the message byte by byte (three passes of 10k
	 * instructions per message in the profile of docs/performance.md). */
	if (memchr(b, '+', feed) || memchr(b, '`', feed)) {
		if (v->is_request)
			subst_token(b, feed, lead, &sub);
		subst_cseq(b, feed, &sub);
	}
	if (memchr(b, '\0', feed))
		subst_quoted_nul(b, feed, &sub);
	msg_buf_commit(msg, feed, udp);
	/* msg_buf_commit() may move the data (it shrinks the buffer): find it again.
	 * Nothing is used yet, so the committed data starts with our first byte. After
	 * msg_extract() a complete message has not moved (its bytes were all there). */
	b = msg_buf_committed_data(msg);
	if (!b) {
		msg_destroy(msg);
		return SK_ENOMEM;
	}
	rc = msg_extract(msg);
	sip = sip_object(msg);

	if (rc == 0 && !udp) {
		/* Incomplete. sofia-sip stops after the empty line and refuses a
		 * Content-Length over max_size (MSG_FLG_TOOLARGE) only once body bytes come:
		 * check it here, as the head is what was used so far. Otherwise the message
		 * is over max_size once max_size bytes are buffered and it is incomplete. */
		bool head_only =
		    sip && sip->sip_separator && !sip->sip_payload && sip->sip_content_length;

		if (len >= max_size ||
		    (head_only && sip->sip_content_length->l_length >
				      max_size - (feed - msg_buf_committed(msg)))) {
			v->consumed = len;
			verdict(v, v->is_request ? 513 : 0, !v->is_request, "Message Too Large");
			goto out;
		}
		msg_destroy(msg);
		return SK_EAGAIN;
	}
	v->consumed = len;
	if (rc <= 0 || !sip) {
		if (!v->is_request)
			verdict(v, 0, true, "malformed response");
		else if (!sip || !sip->sip_request)
			request_line_fault(data + lead, len - lead, v);
		else
			extract_fault(msg, sip, udp, v);
		goto out;
	}

	/* Complete: what sofia-sip did not use belongs to the next message (stream) or
	 * is ignored (datagram, RFC 3261 §18.3; dblreq.dat, RFC 4475 §3.1.1.8). */
	v->consumed = feed - msg_buf_committed(msg);
	subst_restore(b, &sub);
	if (sip->sip_request && v->is_request)
		check_request(sip, data + lead, llen, &(struct raw){data, b, feed}, v);
	else if (sip->sip_status && !v->is_request)
		check_response(sip, v);
	else
		fault(v, "malformed start line");

out:
	if (v->status == 0 && !v->drop && msgp)
		*msgp = msg;
	else
		msg_destroy(msg);
	return 0;
}
