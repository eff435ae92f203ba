/* sipmsg: printing, branch/tag generation, reason phrases and text responses (sipmsg.h). */
#include "sipmsg.h"

#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/url.h>
#include "skein/sk_buf.h"
#include "skein/sk_err.h"

int edge_msg_print(msg_t *msg, struct sk_buf *out)
{
	msg_iovec_t iov[16], *v = iov;
	isize_t n;
	int rc = 0;

	if (!msg || !out || !sip_object(msg))
		return SK_EINVAL;
	/* msg_serialize() links headers added or changed since parsing into the
	 * fragment chain, msg_prepare() encodes those that have no raw text. */
	if (msg_serialize(msg, (msg_pub_t *)sip_object(msg)) < 0 || msg_prepare(msg) < 0)
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
	for (isize_t i = 0; !rc && i < n; i++)
		rc = sk_buf_append(out, v[i].mv_base, v[i].mv_len);
	if (v != iov)
		free(v);
	return rc;
}

/* Random bytes from a buffer refilled by getrandom(2): one system call per 4 KiB,
 * which keeps a branch per request cheap. Single-threaded (the daemon's loop). */
static void random_bytes(uint8_t *out, size_t n)
{
	static uint8_t pool[4096];
	static size_t left;

	while (n) {
		size_t k;

		if (!left) {
			ssize_t got = getrandom(pool, sizeof(pool), 0);

			/* getrandom() of <= 256 bytes never fails once the pool is
			 * initialised; 4096 may be short on a signal: take what came. */
			left = got > 0 ? (size_t)got : 0;
			if (!left)
				abort();
		}
		k = n < left ? n : left;
		memcpy(out, pool + sizeof(pool) - left, k);
		memset(pool + sizeof(pool) - left, 0, k);
		left -= k;
		out += k;
		n -= k;
	}
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
		rc = sk_buf_printf(out, ";tag=%s\r\n", tag);
	} else {
		rc = sk_buf_append(out, b, (size_t)n);
	}
	if (b != stack)
		free(b);
	return rc;
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

	sk_buf_printf(out, "SIP/2.0 %d %s\r\n", status, reason ? reason : edge_reason(status));
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
		rc = put_header(out, sip->sip_cseq, NULL);
	if (rc)
		return rc;
	if (extra)
		sk_buf_puts(out, extra);
	if (server)
		sk_buf_printf(out, "Server: %s\r\n", server);
	if (ctype && body_len)
		sk_buf_printf(out, "Content-Type: %s\r\n", ctype);
	sk_buf_printf(out, "Content-Length: %zu\r\n\r\n", body_len);
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
	else
		rc = sk_buf_printf(out, "%s %.*s SIP/2.0\r\n", method, (int)n, u);
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
	sk_buf_printf(out, "CSeq: %u %s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		      sip->sip_cseq->cs_seq, method);
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
