/* sipmsg: printing, branch/tag generation, reason phrases and text responses (sipmsg.h). */
#include "sipmsg.h"

#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/url.h>
#include "skein/sk_buf.h"
#include "skein/sk_err.h"

/* Encoded lines side by side in a fixed buffer, taken by the headers they belong to
 * in one allocation (su_alloc() is not cheap either). over marks a line that did not
 * fit: it is dropped and left to msg_prepare(). */
#define LINES_MAX 5
struct line {
	char b[2048];
	size_t n, start;
	bool over;
	unsigned count;
	struct {
		msg_common_t *h;
		size_t off, len;
	} done[LINES_MAX];
};

static void line_begin(struct line *l)
{
	l->start = l->n;
	l->over = false;
}

static void line_end(struct line *l, msg_common_t *h)
{
	if (l->over || l->count == LINES_MAX) {
		l->n = l->start;
		return;
	}
	l->done[l->count].h = h;
	l->done[l->count].off = l->start;
	l->done[l->count].len = l->n - l->start;
	l->count++;
}

static void line_put(struct line *l, const char *s)
{
	size_t k = strlen(s);

	if (k >= sizeof(l->b) - l->n) {
		l->over = true;
		return;
	}
	memcpy(l->b + l->n, s, k);
	l->n += k;
}

static void line_putu(struct line *l, unsigned long v)
{
	char d[SK_U64_DEC_MAX + 1];

	d[sk_u64_dec(d, v)] = '\0';
	line_put(l, d);
}

/* u exactly as sofia-sip's URL_PRINT_FORMAT / URL_PRINT_ARGS print it (url.h). */
static void line_url(struct line *l, const url_t *u)
{
	line_put(l, u->url_scheme ? u->url_scheme : "");
	if (u->url_type != url_any && u->url_scheme && u->url_scheme[0])
		line_put(l, ":");
	if (u->url_root && (u->url_host || u->url_user))
		line_put(l, "//");
	if (u->url_user) {
		line_put(l, u->url_user);
		if (u->url_password) {
			line_put(l, ":");
			line_put(l, u->url_password);
		}
		if (u->url_host)
			line_put(l, "@");
	}
	if (u->url_host) {
		line_put(l, u->url_host);
		if (u->url_port) {
			line_put(l, ":");
			line_put(l, u->url_port);
		}
	}
	if (u->url_root && u->url_path)
		line_put(l, "/");
	line_put(l, u->url_path ? u->url_path : "");
	if (u->url_params) {
		line_put(l, ";");
		line_put(l, u->url_params);
	}
	if (u->url_headers) {
		line_put(l, "?");
		line_put(l, u->url_headers);
	}
	if (u->url_fragment) {
		line_put(l, "#");
		line_put(l, u->url_fragment);
	}
}

/* Gives each header its line as its encoding (h_data), as msg_prepare() would after
 * printing it: msg_prepare() then takes it as it is. */
static void line_commit(msg_t *msg, const struct line *l)
{
	char *t;

	if (!l->count || !(t = su_alloc(msg_home(msg), l->n)))
		return; /* msg_prepare() encodes them */
	memcpy(t, l->b, l->n);
	for (unsigned k = 0; k < l->count; k++) {
		l->done[k].h->h_data = t + l->done[k].off;
		l->done[k].h->h_len = l->done[k].len;
	}
}

/* msg_prepare() encodes every header that has no text, and the edge parses without
 * keeping the received text (h_data), so that is every header of every message it
 * forwards. The start line (sip_request_e(): an snprintf() of 21 arguments;
 * sip_status_e()) and the numeric headers (CSeq, Max-Forwards, Content-Length: an
 * snprintf() each) cost the most: they are encoded here, to the same bytes, without
 * printf. */
static void preencode(msg_t *msg, sip_t *sip)
{
	sip_request_t *rq = sip->sip_request;
	sip_status_t *st = sip->sip_status;
	sip_cseq_t *cs = sip->sip_cseq;
	sip_max_forwards_t *mf = sip->sip_max_forwards;
	sip_content_length_t *cl = sip->sip_content_length;
	bool full = !(sip->sip_flags & MSG_FLG_COMPACT); /* long header names */
	struct line l;

	l.n = 0;
	l.count = 0;

	if (rq && !rq->rq_common->h_data && rq->rq_method_name && rq->rq_version) {
		/* "%s " URL_FORMAT_STRING " %s" CRLF */
		line_begin(&l);
		line_put(&l, rq->rq_method_name);
		line_put(&l, " ");
		line_url(&l, rq->rq_url);
		line_put(&l, " ");
		line_put(&l, rq->rq_version);
		line_put(&l, "\r\n");
		line_end(&l, rq->rq_common);
	}
	if (st && !st->st_common->h_data && st->st_version && st->st_phrase) {
		/* "%s %03u %s" CRLF, with 000 for a code outside 100..999 */
		unsigned code = st->st_status >= 100 && st->st_status <= 999
				    ? (unsigned)st->st_status : 0;

		line_begin(&l);
		line_put(&l, st->st_version);
		line_put(&l, code ? " " : " 000");
		if (code)
			line_putu(&l, code);
		line_put(&l, " ");
		line_put(&l, st->st_phrase);
		line_put(&l, "\r\n");
		line_end(&l, st->st_common);
	}
	/* msg_numeric_e(): "%lu", refused above 32 bits (then msg_prepare() fails) */
	if (full && mf && !mf->mf_common->h_data && mf->mf_count <= 0xffffffffUL) {
		line_begin(&l);
		line_put(&l, "Max-Forwards: ");
		line_putu(&l, mf->mf_count);
		line_put(&l, "\r\n");
		line_end(&l, mf->mf_common);
	}
	if (full && cl && !cl->l_common->h_data) {
		line_begin(&l);
		line_put(&l, "Content-Length: ");
		line_putu(&l, cl->l_length);
		line_put(&l, "\r\n");
		line_end(&l, cl->l_common);
	}
	if (full && cs && !cs->cs_common->h_data && cs->cs_method_name) {
		line_begin(&l);
		line_put(&l, "CSeq: ");
		line_putu(&l, cs->cs_seq);
		line_put(&l, " ");
		line_put(&l, cs->cs_method_name);
		line_put(&l, "\r\n");
		line_end(&l, cs->cs_common);
	}
	line_commit(msg, &l);
}

int edge_msg_print(msg_t *msg, struct sk_buf *out)
{
	msg_iovec_t iov[16], *v = iov;
	isize_t n;
	int rc = 0;

	if (!msg || !out || !sip_object(msg))
		return SK_EINVAL;
	/* msg_serialize() links headers added or changed since parsing into the
	 * fragment chain, msg_prepare() encodes those that have no raw text. */
	if (msg_serialize(msg, (msg_pub_t *)sip_object(msg)) < 0)
		return SK_EBADMSG;
	preencode(msg, sip_object(msg));
	if (msg_prepare(msg) < 0)
		return SK_EBADMSG;
	n = msg_iovec(msg, iov, 16);
	if (n > 16) {
		v = malloc(sizeof(*v) * (size_t)n);
		if (!v)
			return SK_ENOMEM;
		n = msg_iovec(msg, v, n);
	}
	if (n < 0)
		rc = SK_EBADMSG;
	if (!rc) {
		/* one allocation for the whole message, not one per doubling */
		size_t total = 0;

		for (isize_t i = 0; i < n; i++)
			total += v[i].mv_len;
		rc = sk_buf_reserve(out, total);
	}
	for (isize_t i = 0; !rc && i < n; i++)
		rc = sk_buf_append(out, v[i].mv_base, v[i].mv_len);
	if (v != iov)
		free(v);
	return rc;
}

/* Random bytes from a buffer refilled by getrandom(2): one system call per 4 KiB,
 * which keeps a branch per request cheap. Single-threaded (the daemon's loop). */
int edge_random_bytes(void *dst, size_t n)
{
	static uint8_t pool[4096];
	static size_t left;
	uint8_t *out = dst;

	while (n) {
		size_t k;

		if (!left) {
			ssize_t got = getrandom(pool, sizeof(pool), 0);

			/* getrandom() of <= 256 bytes never fails once the pool is
			 * initialised; 4096 may be short on a signal: take what came. */
			left = got > 0 ? (size_t)got : 0;
			if (!left)
				return SK_EAGAIN;
		}
		k = n < left ? n : left;
		memcpy(out, pool + sizeof(pool) - left, k);
		memset(pool + sizeof(pool) - left, 0, k);
		left -= k;
		out += k;
		n -= k;
	}
	return 0;
}

static void random_bytes(uint8_t *out, size_t n)
{
	if (edge_random_bytes(out, n))
		abort();
}

void edge_branch_new(char out[EDGE_BRANCH_SIZE])
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t r[22];

	/* 22 x 6 bits = 132 bits of randomness (RFC 3261 §8.1.1.7: unique in space
	 * and time). */
	random_bytes(r, sizeof(r));
	memcpy(out, "z9hG4bK", 7);
	for (size_t i = 0; i < sizeof(r); i++)
		out[7 + i] = b64[r[i] & 63];
	out[29] = '\0';
}

void edge_tag_new(char out[EDGE_TAG_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t r[8];

	random_bytes(r, sizeof(r));
	for (size_t i = 0; i < sizeof(r); i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[16] = '\0';
}

/* RFC 3261 §21, plus the codes later RFCs added that a proxy meets. */
static const struct {
	int code;
	const char *phrase;
} reasons[] = {
    {100, "Trying"},
    {180, "Ringing"},
    {181, "Call Is Being Forwarded"},
    {182, "Queued"},
    {183, "Session Progress"},
    {199, "Early Dialog Terminated"}, /* RFC 6228 */
    {200, "OK"},
    {202, "Accepted"},	      /* RFC 3265 */
    {204, "No Notification"}, /* RFC 5839 */
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Moved Temporarily"},
    {305, "Use Proxy"},
    {380, "Alternative Service"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {410, "Gone"},
    {412, "Conditional Request Failed"}, /* RFC 3903 */
    {413, "Request Entity Too Large"},
    {414, "Request-URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Unsupported URI Scheme"},
    {420, "Bad Extension"},
    {421, "Extension Required"},
    {422, "Session Interval Too Small"}, /* RFC 4028 */
    {423, "Interval Too Brief"},
    {429, "Provide Referrer Identity"}, /* RFC 3892 */
    {430, "Flow Failed"},		/* RFC 5626 */
    {439, "First Hop Lacks Outbound Support"},
    {440, "Max-Breadth Exceeded"}, /* RFC 5393 */
    {480, "Temporarily Unavailable"},
    {481, "Call/Transaction Does Not Exist"},
    {482, "Loop Detected"},
    {483, "Too Many Hops"},
    {484, "Address Incomplete"},
    {485, "Ambiguous"},
    {486, "Busy Here"},
    {487, "Request Terminated"},
    {488, "Not Acceptable Here"},
    {489, "Bad Event"}, /* RFC 3265 */
    {491, "Request Pending"},
    {493, "Undecipherable"},
    {494, "Security Agreement Required"}, /* RFC 3329 */
    {500, "Server Internal Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Server Time-out"},
    {505, "Version Not Supported"},
    {513, "Message Too Large"},
    {580, "Precondition Failure"}, /* RFC 3312 */
    {600, "Busy Everywhere"},
    {603, "Decline"},
    {604, "Does Not Exist Anywhere"},
    {606, "Not Acceptable"},
    {607, "Unwanted"}, /* RFC 8197 */
};

const char *edge_reason(int status)
{
	size_t lo = 0, hi = sizeof(reasons) / sizeof(reasons[0]);

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (reasons[mid].code == status)
			return reasons[mid].phrase;
		if (reasons[mid].code < status)
			lo = mid + 1;
		else
			hi = mid;
	}
	return "Unknown";
}

/* Bytes reserved up front for a response's start line and copied headers (a
 * REGISTER's 401 with its two challenges is about 700): one allocation, not 256,
 * 512, 1024. extra and the body come on top. */
#define RESPONSE_RESERVE 768

/* One header as "Name: value\r\n" (sofia re-encodes it from the parsed form, which
 * carries the received/rport added to a Via). */
static int put_header(struct sk_buf *out, const void *h, const char *tag)
{
	char stack[512], *b = stack;
	issize_t n = msg_header_e(b, sizeof(stack), (const msg_header_t *)h, 0);
	int rc;

	if (n < 0)
		return SK_EBADMSG;
	if ((size_t)n >= sizeof(stack)) {
		b = malloc((size_t)n + 1);
		if (!b)
			return SK_ENOMEM;
		n = msg_header_e(b, n + 1, (const msg_header_t *)h, 0);
	}
	if (n < 2) {
		rc = SK_EBADMSG;
	} else if (tag) {
		sk_buf_append(out, b, (size_t)n - 2); /* before the CRLF */
		SK_BUF_LIT(out, ";tag=");
		sk_buf_puts(out, tag);
		rc = SK_BUF_LIT(out, "\r\n");
	} else {
		rc = sk_buf_append(out, b, (size_t)n);
	}
	if (b != stack)
		free(b);
	return rc;
}

/* CSeq as sip_cseq_e() prints it ("%u %s"), without its snprintf(). */
static int put_cseq(struct sk_buf *out, const sip_cseq_t *cs)
{
	if (!cs->cs_method_name)
		return put_header(out, cs, NULL);
	SK_BUF_LIT(out, "CSeq: ");
	sk_buf_putu(out, cs->cs_seq);
	SK_BUF_LIT(out, " ");
	sk_buf_puts(out, cs->cs_method_name);
	return SK_BUF_LIT(out, "\r\n");
}

int edge_response_build(struct sk_buf *out, msg_t *req, int status, const char *reason,
			const char *to_tag, const char *extra, const char *server,
			const char *ctype, const void *body, size_t body_len)
{
	sip_t *sip = req ? sip_object(req) : NULL;
	int rc;

	if (!out || !sip || status < 100 || status > 699 || (body_len && !body))
		return SK_EINVAL;
	/* §8.1.1: a response cannot be made without these. */
	if (!sip->sip_via || !sip->sip_from || !sip->sip_to || !sip->sip_call_id || !sip->sip_cseq)
		return SK_EINVAL;
	/* §8.2.6.2: a 100 carries no tag; a tag already in To is the dialog's. */
	if (status == 100 || sip->sip_to->a_tag)
		to_tag = NULL;

	/* Appends, not printf: a response is built for every request (the printf family
	 * was most of this function's cost). One allocation for the usual size. */
	sk_buf_reserve(out, RESPONSE_RESERVE + body_len + (extra ? strlen(extra) : 0));
	SK_BUF_LIT(out, "SIP/2.0 ");
	sk_buf_putu(out, (unsigned)status);
	SK_BUF_LIT(out, " ");
	sk_buf_puts(out, reason ? reason : edge_reason(status));
	SK_BUF_LIT(out, "\r\n");
	rc = 0;
	for (const sip_via_t *v = sip->sip_via; v && !rc; v = v->v_next)
		rc = put_header(out, v, NULL);
	if (!rc)
		rc = put_header(out, sip->sip_from, NULL);
	if (!rc)
		rc = put_header(out, sip->sip_to, to_tag);
	if (!rc)
		rc = put_header(out, sip->sip_call_id, NULL);
	if (!rc)
		rc = put_cseq(out, sip->sip_cseq);
	if (rc)
		return rc;
	if (extra)
		sk_buf_puts(out, extra);
	if (server) {
		SK_BUF_LIT(out, "Server: ");
		sk_buf_puts(out, server);
		SK_BUF_LIT(out, "\r\n");
	}
	if (ctype && body_len) {
		SK_BUF_LIT(out, "Content-Type: ");
		sk_buf_puts(out, ctype);
		SK_BUF_LIT(out, "\r\n");
	}
	SK_BUF_LIT(out, "Content-Length: ");
	sk_buf_putu(out, body_len);
	SK_BUF_LIT(out, "\r\n\r\n");
	if (body_len)
		sk_buf_append(out, body, body_len);
	return out->err;
}

int edge_request_derive(struct sk_buf *out, msg_t *invite, const char *method, const sip_to_t *to)
{
	sip_t *sip = invite ? sip_object(invite) : NULL;
	char stack[512], *u = stack;
	issize_t n;
	int rc;

	if (!out || !method || !sip || !sip->sip_request || !sip->sip_via || !sip->sip_from ||
	    !sip->sip_to || !sip->sip_call_id || !sip->sip_cseq)
		return SK_EINVAL;
	n = url_e(u, sizeof(stack), sip->sip_request->rq_url);
	if (n >= (issize_t)sizeof(stack)) {
		u = malloc((size_t)n + 1);
		if (!u)
			return SK_ENOMEM;
		n = url_e(u, n + 1, sip->sip_request->rq_url);
	}
	if (n <= 0)
		rc = SK_EINVAL;
	else {
		sk_buf_puts(out, method);
		SK_BUF_LIT(out, " ");
		sk_buf_append(out, u, (size_t)n);
		rc = SK_BUF_LIT(out, " SIP/2.0\r\n");
	}
	if (u != stack)
		free(u);
	if (!rc)
		rc = put_header(out, sip->sip_via, NULL);
	for (const sip_route_t *r = sip->sip_route; r && !rc; r = r->r_next)
		rc = put_header(out, r, NULL);
	if (!rc)
		rc = put_header(out, sip->sip_from, NULL);
	if (!rc)
		rc = put_header(out, to ? to : sip->sip_to, NULL);
	if (!rc)
		rc = put_header(out, sip->sip_call_id, NULL);
	if (rc)
		return rc;
	SK_BUF_LIT(out, "CSeq: ");
	sk_buf_putu(out, sip->sip_cseq->cs_seq);
	SK_BUF_LIT(out, " ");
	sk_buf_puts(out, method);
	sk_buf_puts(out, "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
	return out->err;
}

size_t edge_uri_param(const char *params, const char *name, char *value, size_t size)
{
	size_t nl = strlen(name);

	if (nl && name[nl - 1] == '=')
		nl--;
	for (const char *p = params; p && *p;) {
		size_t n = strcspn(p, ";"), vl;

		if (n >= nl && !strncasecmp(p, name, nl) && (n == nl || p[nl] == '=')) {
			vl = n > nl ? n - nl - 1 : 0;
			if (vl < size) {
				memcpy(value, p + n - vl, vl);
				value[vl] = '\0';
			}
			return vl + 1;
		}
		p = p[n] ? p + n + 1 : NULL; /* not past the end (url_param() does) */
	}
	return 0;
}
