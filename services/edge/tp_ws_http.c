/* tp_ws_http: the WebSocket opening handshake on WS/WSS flows — the HTTP/1.1 upgrade
 * request read and checked (RFC 6455 §4.2.1, RFC 7118 §4.1, Origin allow-list §10.2),
 * answered with 101 or an HTTP error. */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "tp_int.h"

SK_LOG_MODULE("edge.ws");

/* RFC 6455 §1.3. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void tp_ws_accept_key(const char *key, size_t len, char out[29])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char buf[128];
	unsigned mdlen = 0;

	if (len > sizeof(buf) - sizeof(ws_guid))
		len = sizeof(buf) - sizeof(ws_guid);
	memcpy(buf, key, len);
	memcpy(buf + len, ws_guid, sizeof(ws_guid) - 1);
	if (!EVP_Digest(buf, len + sizeof(ws_guid) - 1, md, &mdlen, EVP_sha1(), NULL) ||
	    mdlen != 20) {
		out[0] = '\0';
		return;
	}
	EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
}

/* RFC 6455 §4.1 item 7: base64 of 16 random bytes, i.e. 22 characters, "==", and the
 * last character before them carrying 2 bits only (canonical encoding). */
static bool key_valid(const char *k, size_t n)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	if (n != 24 || k[22] != '=' || k[23] != '=' || !strchr("AQgw", k[21]))
		return false;
	for (size_t i = 0; i < 22; i++)
		if (!k[i] || !strchr(b64, k[i]))
			return false;
	return true;
}

struct hs {
	bool bad;	    /* malformed request line or header */
	bool get, http11;   /* method GET, HTTP/1.1 or later */
	bool upgrade, conn; /* Upgrade: websocket, Connection: upgrade */
	int nhost, nkey, nver, norigin;
	const char *key, *ver, *origin, *sub; /* sub: the client's spelling of "sip" */
	size_t key_len, ver_len, origin_len, sub_len;
	char why[64]; /* for the log */
};

static bool tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool name_is(const char *n, size_t nl, const char *want)
{
	return nl == strlen(want) && !strncasecmp(n, want, nl);
}

/* Whether the comma-separated list v[0, n) holds tok (any case; RFC 7230 §7 allows
 * empty elements). On a match, at and atl give the element as written. */
static bool list_has(const char *v, size_t n, const char *tok, const char **at, size_t *atl)
{
	const char *e = v + n;

	while (v < e) {
		const char *c = memchr(v, ',', (size_t)(e - v)), *end = c ? c : e;

		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (name_is(v, (size_t)(end - v), tok)) {
			if (at) {
				*at = v;
				*atl = (size_t)(end - v);
			}
			return true;
		}
		v = c ? c + 1 : e;
	}
	return false;
}

/* "GET /path HTTP/1.1" (RFC 7230 §3.1.1). */
static void request_line(struct hs *h, const char *l, size_t n)
{
	const char *sp1 = memchr(l, ' ', n), *sp2, *v;
	size_t vl;

	if (!sp1 || sp1 == l || !(sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l))) ||
	    sp2 == sp1 + 1) {
		h->bad = true;
		snprintf(h->why, sizeof(h->why), "malformed request line");
		return;
	}
	v = sp2 + 1;
	vl = n - (size_t)(v - l);
	h->get = sp1 - l == 3 && !memcmp(l, "GET", 3);
	/* HTTP/1.1 or a later 1.x (RFC 6455 §4.2.1 item 1); HTTP/1.0 cannot upgrade. */
	h->http11 = vl == 8 && !memcmp(v, "HTTP/1.", 7) && v[7] >= '1' && v[7] <= '9';
	if (vl != 8 || memcmp(v, "HTTP/", 5)) {
		h->bad = true;
		snprintf(h->why, sizeof(h->why), "not HTTP");
	}
}

static void header(struct hs *h, const char *l, size_t n)
{
	const char *c = memchr(l, ':', n), *v, *e = l + n;
	size_t nl;

	/* obs-fold and a space before the colon are refused (RFC 7230 §3.2.4). */
	if (!c || c == l) {
		h->bad = true;
		snprintf(h->why, sizeof(h->why), "malformed header line");
		return;
	}
	nl = (size_t)(c - l);
	for (size_t i = 0; i < nl; i++)
		if (!tchar(l[i])) {
			h->bad = true;
			snprintf(h->why, sizeof(h->why), "malformed header name");
			return;
		}
	for (v = c + 1; v < e && (*v == ' ' || *v == '\t'); v++)
		;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	n = (size_t)(e - v);
	if (name_is(l, nl, "Host")) {
		h->nhost++;
	} else if (name_is(l, nl, "Upgrade")) {
		h->upgrade |= list_has(v, n, "websocket", NULL, NULL);
	} else if (name_is(l, nl, "Connection")) {
		h->conn |= list_has(v, n, "upgrade", NULL, NULL);
	} else if (name_is(l, nl, "Sec-WebSocket-Key")) {
		h->nkey++;
		h->key = v;
		h->key_len = n;
	} else if (name_is(l, nl, "Sec-WebSocket-Version")) {
		h->nver++;
		h->ver = v;
		h->ver_len = n;
	} else if (name_is(l, nl, "Origin")) {
		h->norigin++;
		h->origin = v;
		h->origin_len = n;
	} else if (name_is(l, nl, "Sec-WebSocket-Protocol") && !h->sub) {
		/* May come as several fields (RFC 6455 §11.3.4). */
		(void)list_has(v, n, "sip", &h->sub, &h->sub_len);
	}
}

/* RFC 6454 §6.2 serializations compare as strings; scheme and host are lower case
 * there, but a hand-written allow-list may not be. */
static bool origin_allowed(const struct edge_tp *tp, const struct hs *h)
{
	char o[256];

	if (!tp->ws_origins || !h->norigin)
		return true; /* any, or not a browser: Origin is a browser's promise only */
	if (h->norigin != 1 || !h->origin_len || h->origin_len >= sizeof(o))
		return false;
	memcpy(o, h->origin, h->origin_len);
	o[h->origin_len] = '\0';
	return list_has(tp->ws_origins, strlen(tp->ws_origins), o, NULL, NULL);
}

/* The head p[0, n) has ended: *status 101 or the error to answer. */
static int judge(struct tp_flow *f, const char *p, size_t n, struct hs *h)
{
	const char *l = p, *e = p + n;
	bool first = true;

	while (l < e && !h->bad) {
		const char *nl = memchr(l, '\n', (size_t)(e - l));
		size_t len = (size_t)(nl - l);

		if (len && l[len - 1] == '\r')
			len--;
		if (!len && first) {
			l = nl + 1; /* RFC 7230 §3.5: empty lines before the request line */
			continue;
		}
		if (!len)
			break; /* the empty line */
		for (size_t i = 0; i < len; i++)
			if (((unsigned char)l[i] < 0x20 && l[i] != '\t') || l[i] == 0x7F) {
				/* RFC 7230 §3.2: no CTL (NUL, bare CR) in a line */
				h->bad = true;
				snprintf(h->why, sizeof(h->why), "control character");
			}
		if (h->bad)
			break;
		if (first)
			request_line(h, l, len);
		else
			header(h, l, len);
		first = false;
		l = nl + 1;
	}
	if (first && !h->bad) {
		h->bad = true;
		snprintf(h->why, sizeof(h->why), "empty request");
	}
	if (h->bad)
		return 400;
	/* RFC 7231 §6.5.15: not an upgrade at all. */
	if (!h->upgrade || !h->conn) {
		snprintf(h->why, sizeof(h->why), "not a WebSocket upgrade");
		return 426;
	}
	if (!h->get || !h->http11 || h->nhost != 1) {
		snprintf(h->why, sizeof(h->why), "%s",
			 !h->get      ? "method not GET"
			 : !h->http11 ? "HTTP before 1.1"
				      : "Host");
		return 400; /* RFC 6455 §4.2.1 items 1-2; RFC 7230 §5.4 */
	}
	if (h->nver != 1 || h->ver_len != 2 || memcmp(h->ver, "13", 2)) {
		snprintf(h->why, sizeof(h->why), "Sec-WebSocket-Version");
		return 426; /* RFC 6455 §4.4 */
	}
	if (h->nkey != 1 || !key_valid(h->key, h->key_len)) {
		snprintf(h->why, sizeof(h->why), "Sec-WebSocket-Key");
		return 400; /* RFC 6455 §4.2.1 item 5 */
	}
	if (!origin_allowed(f->tp, h)) {
		snprintf(h->why, sizeof(h->why), "Origin %.*s",
			 (int)(h->origin_len < 40 ? h->origin_len : 40), h->origin);
		for (char *c = h->why; *c; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7F)
				*c = '?'; /* the peer's bytes go to the log */
		return 403;		  /* RFC 6455 §4.2.2 item 4, §10.2 */
	}
	if (!h->sub) {
		snprintf(h->why, sizeof(h->why), "no \"sip\" subprotocol");
		return 400; /* RFC 7118 §4.1 */
	}
	return 101;
}

static int answer(struct tp_flow *f, int status, const struct hs *h)
{
	char r[512], acc[29];
	int n;

	if (status == 101) {
		tp_ws_accept_key(h->key, h->key_len, acc);
		/* The subprotocol as the client spelt it: browsers compare exactly. */
		n = snprintf(r, sizeof(r),
			     "HTTP/1.1 101 Switching Protocols\r\n"
			     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
			     "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: %.*s\r\n\r\n",
			     acc, (int)(h->sub_len < 32 ? h->sub_len : 32), h->sub);
	} else {
		n = snprintf(r, sizeof(r),
			     "HTTP/1.1 %d %s\r\n%s"
			     "Connection: close\r\nContent-Length: 0\r\n\r\n",
			     status,
			     status == 403   ? "Forbidden"
			     : status == 426 ? "Upgrade Required"
					     : "Bad Request",
			     status != 426 ? ""
			     : h->upgrade && h->conn
				 ? "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
				 : "Upgrade: websocket\r\n"); /* RFC 7231 §6.5.15 */
	}
	return tp_flow_put(f, r, (size_t)n, 0);
}

/* The end of the head in p[from, n): the offset past "\r\n\r\n" (or "\n\n", RFC 7230
 * §3.5), or 0. */
static size_t head_end(const char *p, size_t from, size_t n)
{
	for (const char *q = p + from, *e = p + n; q < e && (q = memchr(q, '\n', (size_t)(e - q)));
	     q++) {
		if (q + 1 < e && q[1] == '\n')
			return (size_t)(q + 2 - p);
		if (q + 2 < e && q[1] == '\r' && q[2] == '\n')
			return (size_t)(q + 3 - p);
	}
	return 0;
}

long tp_ws_handshake(struct tp_flow *f)
{
	struct edge_tp *tp = f->tp;
	struct tp_ws *ws = f->ws;
	struct hs h = {0};
	size_t end = head_end(f->buf, ws->scan, f->len);
	char a[64];
	int status, err;

	if (!end && f->len < TP_WS_HEAD_MAX) {
		ws->scan = f->len > 2 ? f->len - 2 : 0;
		return 0;
	}
	if (!end || end > TP_WS_HEAD_MAX) {
		status = 400;
		snprintf(h.why, sizeof(h.why), "request head over %d bytes", TP_WS_HEAD_MAX);
	} else {
		status = judge(f, f->buf, end, &h);
	}
	if (status == 101) {
		err = answer(f, status, &h);
		if (err) {
			tp_flow_close(f, err); /* a no-op when the write closed it already */
			return -1;
		}
		ws->state = WS_OPEN;
		TP_COUNT(tp, ws_ok, ws_upgrades);
		SK_DEBUG("%s from %s: upgraded", edge_proto_name(f->proto),
			 edge_addr_str(&f->remote, a, sizeof(a)));
		return (long)end;
	}
	SK_INFO("%s from %s: upgrade refused, %d (%s)", edge_proto_name(f->proto),
		edge_addr_str(&f->remote, a, sizeof(a)), status, h.why);
	TP_COUNT(tp, ws_rejected, ws_rejected);
	ws->state = WS_CLOSING;
	err = answer(f, status, &h);
	if (err)
		tp_flow_close(f, err);
	else
		tp_flow_drain(f); /* lingering close: the answer is not lost to a reset */
	return -1;
}
