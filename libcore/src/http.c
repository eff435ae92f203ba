/* The small HTTP/1.1 server for /metrics, probes, the admin API and XCAP, and its
 * request parser (RFC 9112). Only what scrapers, probes and curl need; TLS through
 * OpenSSL memory BIOs, as the edge's tp_tls.c does. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <assert.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "skein/sk_err.h"
#include "skein/sk_http.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_tls.h"

SK_LOG_MODULE("http");

enum {
	MAX_HEAD = 8 * 1024,
	MAX_BODY = 64 * 1024,
	MAX_CONN = 256,      /* served at once; more get a 503 */
	TIMEOUT_MS = 10000,  /* to receive a request, or to send a response */
	LINGER_MS = 2000,    /* to drain the client after our last response */
	BUF_MIN = 2048,
	RAW_SIZE = 16 * 1024 + 512, /* one TLS record and its overhead */
};

#define DEFAULT_TYPE "text/plain; charset=utf-8"

/* ---- parser ---- */

/* token characters, RFC 9110 5.6.2 */
static int is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* request-target: visible ASCII, no space (RFC 9112 3.2). */
static int is_target_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

/* field-value: VCHAR, obs-text, SP, HTAB; no CR, LF, NUL (RFC 9110 5.5). */
static int is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* METHOD SP request-target SP HTTP/1.x. With partial set, s is the start of a
 * line still arriving: what is there is checked so garbage fails at once. */
static long parse_reqline(const char *s, size_t n, bool partial, struct sk_http_parsed *p)
{
	size_t i = 0, t;

	while (i < n && is_tchar((unsigned char)s[i]))
		i++;
	if (i >= sizeof(p->method))
		return -400;
	if (i == n)
		return partial ? 0 : -400;
	if (i == 0 || s[i] != ' ')
		return -400;
	memcpy(p->method, s, i);
	p->method[i] = '\0';
	t = ++i;
	while (i < n && is_target_char((unsigned char)s[i]))
		i++;
	if (i - t >= sizeof(p->target))
		return -414;
	if (i == n)
		return partial ? 0 : -400;
	if (i == t || s[i] != ' ')
		return -400;
	if (partial)
		return 0;
	memcpy(p->target, s + t, i - t);
	p->target[i - t] = '\0';
	i++;
	if (n - i != 8 || memcmp(s + i, "HTTP/1.", 7) || s[i + 7] < '0' || s[i + 7] > '9')
		return -400;
	p->version_minor = s[i + 7] - '0';
	return 0;
}

/* Content-Length = 1*DIGIT (RFC 9110 8.6); larger than max is -413 at once. */
static long parse_length(const char *s, size_t n, size_t max, size_t *out)
{
	size_t v = 0;

	if (!n)
		return -400;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -400;
		v = v * 10 + (size_t)(s[i] - '0');
		if (v > max)
			return -413;
	}
	*out = v;
	return 0;
}

/* Index just past the blank line ending the head, or 0 if it has not arrived.
 * Bare LF is accepted as a line end (RFC 9112 2.2). */
static size_t head_end(const char *buf, size_t off, size_t len)
{
	const char *nl;

	while (off < len && (nl = memchr(buf + off, '\n', len - off))) {
		size_t k = (size_t)(nl - buf) + 1;

		if (k < len && buf[k] == '\n')
			return k + 1;
		if (k + 1 < len && buf[k] == '\r' && buf[k + 1] == '\n')
			return k + 2;
		off = k;
	}
	return 0;
}

/* Why the buffer is only written once the whole request is there: a 0 return
 * must leave it as it was, since the server calls again with more bytes. */
long sk_http_parse(char *buf, size_t len, size_t max_head, size_t max_body,
		   struct sk_http_parsed *p)
{
	size_t nend[32] = {0}, vend[32] = {0}; /* where the NULs go, once complete */
	size_t off = 0, end, ls, le, e, cl = 0;
	bool have_cl = false;
	long rc;

	memset(p, 0, sizeof(*p));
	/* RFC 9112 2.2: ignore empty lines before the request line. */
	while (off < len && (buf[off] == '\n' || buf[off] == '\r')) {
		if (buf[off] == '\r' && off + 1 == len)
			return len >= max_head ? -431 : 0;
		if (buf[off] == '\r' && buf[off + 1] != '\n')
			return -400;
		off += buf[off] == '\r' ? 2 : 1;
	}

	end = head_end(buf, off, len);
	le = end ? (size_t)((char *)memchr(buf + off, '\n', end - off) - buf) : 0;
	if (!end) {
		const char *nl = memchr(buf + off, '\n', len - off);

		if (nl) {
			e = (size_t)(nl - buf);
			rc = parse_reqline(buf + off, e - off - (e > off && buf[e - 1] == '\r'),
					   false, p);
		} else {
			rc = parse_reqline(buf + off, len - off, true, p);
		}
		if (rc < 0)
			return rc;
		return len >= max_head ? -431 : 0;
	}
	if (end > max_head)
		return -431;
	rc = parse_reqline(buf + off, le - off - (le > off && buf[le - 1] == '\r'), false, p);
	if (rc < 0)
		return rc;

	for (ls = le + 1;; ls = le + 1) {
		size_t i, vs, ve, k = p->nhdr;

		le = (size_t)((char *)memchr(buf + ls, '\n', end - ls) - buf);
		e = le > ls && buf[le - 1] == '\r' ? le - 1 : le;
		if (e == ls)
			break; /* the blank line */
		if (k == sizeof(p->hdr) / sizeof(p->hdr[0]))
			return -431;
		if (is_ows(buf[ls]))
			return -400; /* obs-fold, RFC 9112 5.2 */
		for (i = ls; i < e && is_tchar((unsigned char)buf[i]); i++)
			;
		/* No whitespace before the colon (RFC 9112 5.1). */
		if (i == ls || i == e || buf[i] != ':')
			return -400;
		nend[k] = i;
		for (i++; i < e && is_ows(buf[i]); i++)
			;
		vs = i;
		for (; i < e; i++)
			if (!is_value_char((unsigned char)buf[i]))
				return -400;
		for (ve = e; ve > vs && is_ows(buf[ve - 1]); ve--)
			;
		vend[k] = ve;
		p->hdr[k].name = buf + ls;
		p->hdr[k].value = buf + vs;
		p->nhdr++;

		if (nend[k] - ls == 17 && !strncasecmp(buf + ls, "transfer-encoding", 17))
			return -501;
		if (nend[k] - ls == 14 && !strncasecmp(buf + ls, "content-length", 14)) {
			size_t v;

			rc = parse_length(buf + vs, ve - vs, max_body, &v);
			if (rc < 0)
				return rc;
			/* RFC 9112 6.3: differing lengths make the framing unknowable. */
			if (have_cl && v != cl)
				return -400;
			cl = v;
			have_cl = true;
		}
	}

	if (len - end < cl)
		return 0;
	for (size_t k = 0; k < p->nhdr; k++) {
		buf[nend[k]] = '\0';
		buf[vend[k]] = '\0';
	}
	p->content_length = cl;
	p->head_len = end;
	return (long)(end + cl);
}

/* ---- server ---- */

enum conn_state {
	C_READ,    /* receiving a request */
	C_PENDING, /* the handler deferred its answer; input is kept, not parsed */
	C_WRITE,   /* sending a response; reads paused */
	C_LINGER,  /* last response sent, FIN sent: discard input until EOF */
	C_CLOSED,  /* handles closing; freed by their close callbacks */
};

struct sk_http {
	uv_loop_t *loop;
	uv_tcp_t *lsock; /* allocated apart, freed in its close callback */
	uv_tcp_t *spare; /* memory for refusing a connection when out of memory */
	sk_http_handler_cb *handler;
	void *arg;
	struct conn *conns; /* open connections, borrowed */
	unsigned nconn, nreject;
	bool closing;
	size_t max_body, buf_max; /* buf_max = MAX_HEAD + max_body + 1 (the body's NUL) */
	uint64_t timeout_ms;
	SSL_CTX *tls; /* HTTPS when set */
	char addr[64];
};

/* References on a conn: the server's list (until conn_close), each of its two
 * handles (until their close callbacks) and each pending write. */
struct conn {
	struct conn *prev, *next;
	struct sk_http *http; /* reference */
	uv_tcp_t *tcp;
	uv_timer_t *timer;
	uv_shutdown_t sreq;
	enum conn_state state;
	bool reading, reject, keepalive, head_only, continued;
	bool deferred; /* the handler of the current request called sk_http_defer */
	unsigned nreq;
	char *buf;
	size_t len, cap, used;
	struct sk_http_pending *pending; /* borrowed; set while C_PENDING */
	SSL *ssl;                        /* HTTPS: with its two memory BIOs */
	BIO *rbio, *wbio;                /* owned by ssl */
	char *raw;                       /* HTTPS: ciphertext as it arrives */
	struct sk_http_parsed p;
	char path[sizeof(((struct sk_http_parsed *)0)->target)];
	char scratch[256]; /* where lingering input goes */
};

struct wreq {
	uv_write_t req;
	struct conn *conn; /* reference */
	struct sk_buf head, body, tls; /* tls: head and body encrypted */
	bool close;
	bool raw; /* a TLS handshake flight or a 100 Continue: no state change */
};

struct sk_http_pending {
	struct conn *conn; /* reference */
	bool done;
};

static void conn_process(struct conn *c);

static const char *reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
	}
}

/* Close callback of every handle here: free it, drop its reference on data. */
static void handle_close_cb(uv_handle_t *hd)
{
	void *owner = hd->data;

	sk_deref(hd);
	sk_deref(owner);
}

static void conn_destroy(void *data)
{
	struct conn *c = data;

	sk_deref(c->buf);
	sk_deref(c->raw);
	SSL_free(c->ssl); /* and both BIOs */
	sk_deref(c->http);
}

/* Safe to call twice. c stays valid until the loop runs the close callbacks. */
static void conn_close(struct conn *c)
{
	struct sk_http *h = c->http;

	if (c->state == C_CLOSED)
		return;
	c->state = C_CLOSED;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->reject)
		h->nreject--;
	else
		h->nconn--;
	c->pending = NULL; /* a late sk_http_respond sees C_CLOSED */
	uv_close((uv_handle_t *)c->tcp, handle_close_cb);
	uv_close((uv_handle_t *)c->timer, handle_close_cb);
	sk_deref(c); /* the list's reference */
}

static void on_timeout(uv_timer_t *t);

static void conn_timer(struct conn *c, uint64_t ms)
{
	uv_timer_start(c->timer, on_timeout, ms, 0);
}

/* Room for more request bytes in c->buf, growing it up to buf_max; one byte is kept
 * spare for the body's NUL. 0 when full (or out of memory). */
static size_t buf_room(struct conn *c)
{
	size_t max = c->http->buf_max;

	if (c->cap - c->len < BUF_MIN / 2 && c->cap < max) {
		size_t cap = c->cap ? c->cap * 2 : BUF_MIN;
		char *nb;

		if (cap > max)
			cap = max;
		nb = c->buf ? sk_realloc(c->buf, cap) : sk_zalloc(cap, NULL);
		if (nb) {
			c->buf = nb;
			c->cap = cap;
		}
	}
	return c->cap > c->len + 1 ? c->cap - c->len - 1 : 0;
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *ub)
{
	struct conn *c = hd->data;
	size_t room;

	(void)suggested;
	if (c->ssl) {
		/* Ciphertext goes to the TLS engine first, in every state. */
		*ub = c->raw ? uv_buf_init(c->raw, RAW_SIZE) : uv_buf_init(NULL, 0);
		return;
	}
	if (c->state != C_READ && c->state != C_PENDING) {
		*ub = uv_buf_init(c->scratch, sizeof(c->scratch));
		return;
	}
	/* A zero-length buffer makes libuv report UV_ENOBUFS, which closes the
	 * connection. */
	room = buf_room(c);
	*ub = room ? uv_buf_init(c->buf + c->len, (unsigned)room) : uv_buf_init(NULL, 0);
}

static void tls_pump(struct conn *c);

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *ub)
{
	struct conn *c = s->data;

	if (n < 0) {
		conn_close(c); /* EOF, reset or no buffer */
		return;
	}
	if (n == 0 || c->state == C_CLOSED)
		return;
	if (c->ssl) {
		if (c->state == C_LINGER)
			return;
		/* What arrives while an answer is pending waits in the engine; not
		 * without bound. */
		if (BIO_ctrl_pending(c->rbio) > c->http->buf_max ||
		    BIO_write(c->rbio, ub->base, (int)n) != (int)n) {
			conn_close(c);
			return;
		}
		tls_pump(c);
		return;
	}
	if (c->state == C_PENDING)
		c->len += (size_t)n; /* the next request, kept for later */
	if (c->state != C_READ)
		return;
	c->len += (size_t)n;
	conn_process(c);
}

static void conn_read(struct conn *c, bool on)
{
	int err;

	if (c->reading == on || c->state == C_CLOSED)
		return;
	if (on)
		err = uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read);
	else
		err = uv_read_stop((uv_stream_t *)c->tcp);
	if (err) {
		conn_close(c);
		return;
	}
	c->reading = on;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	if (status < 0)
		conn_close(req->data);
}

/* Closing right after the last write would reset a client whose request is still
 * partly unread, and the reset can destroy our response in its receive queue. So
 * send FIN and drain for a moment first ("lingering close"). */
static void tls_flush(struct conn *c);

static void conn_linger(struct conn *c)
{
	if (c->ssl) {
		(void)SSL_shutdown(c->ssl); /* close_notify; we do not wait for theirs */
		tls_flush(c);
		if (c->state == C_CLOSED)
			return;
	}
	c->state = C_LINGER;
	conn_timer(c, LINGER_MS);
	c->sreq.data = c;
	if (uv_shutdown(&c->sreq, (uv_stream_t *)c->tcp, on_shutdown)) {
		conn_close(c);
		return;
	}
	conn_read(c, true);
}

/* Keep-alive: drop the request just answered and go on with what follows it. */
static void conn_next(struct conn *c)
{
	memmove(c->buf, c->buf + c->used, c->len - c->used);
	c->len -= c->used;
	c->used = 0;
	c->state = C_READ;
	c->continued = false;
	conn_timer(c, c->http->timeout_ms);
	conn_read(c, true);
	if (c->ssl)
		tls_pump(c); /* plaintext the engine held while we were busy */
	else
		conn_process(c);
}

static void wreq_destroy(void *data)
{
	struct wreq *w = data;

	sk_buf_release(&w->head);
	sk_buf_release(&w->body);
	sk_buf_release(&w->tls);
	sk_deref(w->conn);
}

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = req->data;
	struct conn *c = w->conn;

	if (c->state == C_CLOSED)
		; /* cancelled by conn_close */
	else if (status < 0)
		conn_close(c); /* the client went away mid-write */
	else if (w->raw)
		; /* nothing follows a handshake flight or a 100 */
	else if (status < 0)
		conn_close(c); /* the client went away mid-write */
	else if (w->close)
		conn_linger(c);
	else
		conn_next(c);
	sk_deref(w);
}

/* Hands bufs to the socket through w (a reference taken over): encrypted into
 * w->tls first on HTTPS. A memory BIO never blocks: SSL_write takes all or fails. */
static int conn_write(struct conn *c, struct wreq *w, uv_buf_t *bufs, unsigned nbufs)
{
	if (c->ssl) {
		char *p;
		long n;

		for (unsigned i = 0; i < nbufs; i++)
			if (bufs[i].len && SSL_write(c->ssl, bufs[i].base, (int)bufs[i].len) <= 0)
				return SK_ETLS;
		n = BIO_get_mem_data(c->wbio, &p);
		if (n > 0 && sk_buf_append(&w->tls, p, (size_t)n))
			return SK_ENOMEM;
		(void)BIO_reset(c->wbio);
		if (!w->tls.len) {
			sk_deref(w); /* nothing to send (a handshake step without output) */
			return 0;
		}
		bufs[0] = uv_buf_init(w->tls.data, (unsigned)w->tls.len);
		nbufs = 1;
	}
	return uv_write(&w->req, (uv_stream_t *)c->tcp, bufs, nbufs, on_write);
}

static struct wreq *wreq_new(struct conn *c)
{
	struct wreq *w = sk_zalloc(sizeof(*w), wreq_destroy);

	if (!w)
		return NULL;
	w->req.data = w;
	w->conn = sk_ref(c);
	return w;
}

/* Sends bytes outside any response (a 100 Continue, a TLS flight): no state change. */
static void conn_write_raw(struct conn *c, const char *data, size_t len)
{
	struct wreq *w = wreq_new(c);
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);

	if (!w) {
		conn_close(c);
		return;
	}
	w->raw = true;
	if (conn_write(c, w, &b, len ? 1 : 0)) {
		sk_deref(w);
		conn_close(c);
	}
}

/* The TLS engine's pending output (handshake, alerts, close_notify) to the socket. */
static void tls_flush(struct conn *c)
{
	if (c->state != C_CLOSED && BIO_ctrl_pending(c->wbio) > 0)
		conn_write_raw(c, NULL, 0);
}

/* Decrypts what has arrived into c->buf (as far as it has room) and serves what is
 * complete. The engine keeps what does not fit until the next call. */
static void tls_pump(struct conn *c)
{
	size_t room;
	int n, e;

	if (c->state != C_READ) {
		tls_flush(c);
		return;
	}
	ERR_clear_error();
	while ((room = buf_room(c)) > 0) {
		n = SSL_read(c->ssl, c->buf + c->len, room > INT32_MAX ? INT32_MAX : (int)room);
		if (n > 0) {
			c->len += (size_t)n;
			continue;
		}
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		/* close_notify, a failed handshake or a bad record */
		SK_DEBUG("%s: TLS closed (%d)", c->http->addr, e);
		ERR_clear_error();
		tls_flush(c); /* an alert, if any */
		conn_close(c);
		return;
	}
	tls_flush(c);
	if (c->state == C_READ)
		conn_process(c);
}

/* Header lines from a handler must be whole lines: no bare CR or LF, each ending
 * in CRLF, each with a colon. */
static bool headers_ok(const struct sk_buf *b)
{
	const char *s = b->data, *e;
	size_t left = b->len;

	while (left) {
		e = memchr(s, '\n', left);
		if (!e || e == s || e[-1] != '\r' || !memchr(s, ':', (size_t)(e - s)) ||
		    memchr(s, '\r', (size_t)(e - s - 1)))
			return false;
		left -= (size_t)(e + 1 - s);
		s = e + 1;
	}
	return true;
}

/* Sends status, headers and body (taken over; either may be NULL) and pauses
 * reading until done. */
static void respond(struct conn *c, int status, const char *type, struct sk_buf *headers,
		    struct sk_buf *body, bool head_only)
{
	bool no_len = status == 204 || status == 304;
	struct wreq *w;
	uv_buf_t bufs[2];
	unsigned nbufs = 1;

	w = wreq_new(c);
	if (!w) {
		if (body)
			sk_buf_release(body);
		if (headers)
			sk_buf_release(headers);
		conn_close(c);
		return;
	}
	if (body) {
		w->body = *body;
		sk_buf_init(body);
	}
	w->close = !c->keepalive || c->http->closing;
	if (!type || strpbrk(type, "\r\n"))
		type = DEFAULT_TYPE;
	sk_buf_printf(&w->head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status,
		      reason(status), type);
	if (headers) {
		if (headers->len)
			sk_buf_append(&w->head, headers->data, headers->len);
		sk_buf_release(headers);
	}
	if (!no_len)
		sk_buf_printf(&w->head, "Content-Length: %zu\r\n", w->body.len);
	sk_buf_printf(&w->head, "Connection: %s\r\n\r\n", w->close ? "close" : "keep-alive");
	if (w->head.err) {
		sk_deref(w);
		conn_close(c);
		return;
	}
	bufs[0] = uv_buf_init(w->head.data, (unsigned)w->head.len);
	if (!head_only && !no_len && w->body.len)
		bufs[nbufs++] = uv_buf_init(w->body.data, (unsigned)w->body.len);

	conn_read(c, false);
	c->state = C_WRITE;
	c->pending = NULL;
	conn_timer(c, c->http->timeout_ms);
	if (conn_write(c, w, bufs, nbufs)) {
		sk_deref(w);
		conn_close(c);
	}
}

static void send_error(struct conn *c, int status)
{
	struct sk_buf body;

	sk_buf_init(&body);
	sk_buf_printf(&body, "%s\n", reason(status));
	c->keepalive = false;
	respond(c, status, NULL, NULL, &body, c->head_only);
}

static void on_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;

	/* A keep-alive connection idle between requests just goes; a request
	 * that never completed gets its 408, one whose handler never answered a 504.
	 * A TLS handshake that never finished has no channel for either. */
	if (c->ssl && !SSL_is_init_finished(c->ssl))
		conn_close(c);
	else if (c->state == C_READ && (c->len || !c->nreq))
		send_error(c, 408);
	else if (c->state == C_PENDING)
		send_error(c, 504);
	else
		conn_close(c);
}

static const char *req_header(const struct sk_http_req *req, const char *name)
{
	const struct conn *c = req->priv;
	const struct sk_http_parsed *p = &c->p;

	for (size_t i = 0; i < p->nhdr; i++)
		if (!strcasecmp(p->hdr[i].name, name))
			return p->hdr[i].value;
	return NULL;
}

/* HTTP/1.1 keeps the connection unless "Connection: close"; 1.0 closes unless
 * "Connection: keep-alive" (RFC 9112 9.3). The header is a token list. */
static bool wants_keepalive(const struct sk_http_parsed *p)
{
	bool ka = p->version_minor >= 1;

	for (size_t i = 0; i < p->nhdr; i++) {
		const char *s = p->hdr[i].value;

		if (strcasecmp(p->hdr[i].name, "connection"))
			continue;
		while (*s) {
			size_t n;

			while (*s == ',' || is_ows(*s))
				s++;
			for (n = 0; s[n] && s[n] != ',' && !is_ows(s[n]); n++)
				;
			if (n == 5 && !strncasecmp(s, "close", 5))
				return false;
			if (n == 10 && !strncasecmp(s, "keep-alive", 10))
				ka = true;
			s += n;
		}
	}
	return ka;
}

/* Fills c->path and returns the query ("" when none), or NULL for a target
 * this server cannot route. Absolute form is accepted (RFC 9112 3.2.2). */
static const char *split_target(struct conn *c)
{
	const char *t = c->p.target;
	char *q;
	const char *auth = !strncasecmp(t, "http://", 7)    ? t + 7
			   : !strncasecmp(t, "https://", 8) ? t + 8
							    : NULL;

	if (auth) {
		t = strchr(auth, '/');
		if (!t)
			t = "/";
	} else if (t[0] != '/' && strcmp(t, "*")) {
		return NULL;
	}
	snprintf(c->path, sizeof(c->path), "%s", t);
	q = strchr(c->path, '?');
	if (!q)
		return "";
	*q = '\0';
	return q + 1;
}

static void finish(struct conn *c, int err, struct sk_http_resp *resp);

static void serve(struct conn *c)
{
	struct sk_http *h = c->http;
	struct sk_http_resp resp = {.status = 200};
	struct sk_http_req req = {0};
	char saved;
	int err;

	req.query = split_target(c);
	if (!req.query) {
		send_error(c, 400);
		return;
	}
	req.method = c->p.method;
	req.path = c->path;
	req.body = c->buf + c->p.head_len;
	req.body_len = c->p.content_length;
	req.header = req_header;
	req.priv = c;
	req.tls = c->ssl != NULL;
	c->keepalive = wants_keepalive(&c->p);
	c->head_only = !strcmp(req.method, "HEAD");
	c->deferred = false;
	sk_buf_init(&resp.body);
	sk_buf_init(&resp.headers);

	/* NUL-terminate the body in place; the byte after it may begin the next
	 * pipelined request, so put it back afterwards. */
	saved = c->buf[c->used];
	c->buf[c->used] = '\0';
	err = h->handler(&req, &resp, h->arg);
	c->buf[c->used] = saved;

	if (c->state == C_CLOSED || (c->deferred && (!err || c->state != C_PENDING))) {
		/* The handler closed the server (admin "shutdown"), or answers later
		 * (or already did, from inside the handler). A handler that deferred and
		 * failed gets its 500 below, and the pending answer is then dropped. */
		sk_buf_release(&resp.body);
		sk_buf_release(&resp.headers);
		return;
	}
	finish(c, err, &resp);
}

/* Sends a handler's answer, or a 500 in place of a broken one. */
static void finish(struct conn *c, int err, struct sk_http_resp *resp)
{
	if (err || resp->body.err || resp->headers.err || resp->status < 200 ||
	    resp->status > 599 || !headers_ok(&resp->headers)) {
		SK_WARN("%s %s: handler failed (%s, status %d)", c->p.method, c->path,
			sk_strerror(err ? err : resp->body.err ? resp->body.err : resp->headers.err),
			resp->status);
		sk_buf_release(&resp->body);
		sk_buf_release(&resp->headers);
		resp->status = 500;
		resp->content_type = NULL;
		sk_buf_printf(&resp->body, "%s\n", reason(500));
	}
	respond(c, resp->status, resp->content_type, &resp->headers, &resp->body, c->head_only);
}

static void pending_destroy(void *data)
{
	struct sk_http_pending *p = data;

	if (p->conn && p->conn->pending == p)
		p->conn->pending = NULL;
	sk_deref(p->conn);
}

struct sk_http_pending *sk_http_defer(const struct sk_http_req *req)
{
	struct conn *c = req ? req->priv : NULL;
	struct sk_http_pending *p;

	if (!c || c->state != C_READ || c->pending)
		return NULL;
	p = sk_zalloc(sizeof(*p), pending_destroy);
	if (!p)
		return NULL;
	p->conn = sk_ref(c);
	c->pending = p;
	c->deferred = true;
	c->state = C_PENDING;
	/* Reading goes on (into the buffer, unprocessed) so that a client that leaves
	 * is noticed at once and its answer dropped. */
	conn_timer(c, c->http->timeout_ms);
	return p;
}

bool sk_http_pending_alive(const struct sk_http_pending *p)
{
	return p && !p->done && p->conn->state == C_PENDING && p->conn->pending == p;
}

int sk_http_respond(struct sk_http_pending *p, struct sk_http_resp *resp)
{
	int err = 0;

	if (!p || !resp)
		return SK_EINVAL;
	if (p->done) {
		err = SK_EEXIST;
	} else if (!sk_http_pending_alive(p)) {
		err = SK_ECANCELED;
	} else {
		p->done = true;
		finish(p->conn, 0, resp);
		return 0;
	}
	p->done = true;
	sk_buf_release(&resp->body);
	sk_buf_release(&resp->headers);
	return err;
}

/* The head is complete (the parser then filled the header list) and the body is
 * still to come: a client that asked with "Expect: 100-continue" waits for our 100
 * before it sends the body (RFC 9110 10.1.1); curl does so for PUTs over 1 KiB. */
static void maybe_continue(struct conn *c)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

	if (c->continued || !c->p.nhdr || c->p.version_minor < 1)
		return;
	for (size_t i = 0; i < c->p.nhdr; i++) {
		/* Not NUL-terminated yet: the parser writes only once all is there. */
		if (!strncasecmp(c->p.hdr[i].name, "expect:", 7) &&
		    !strncasecmp(c->p.hdr[i].value, "100-continue", 12)) {
			c->continued = true;
			conn_write_raw(c, cont, sizeof(cont) - 1);
			return;
		}
	}
}

/* Answers the next complete request in c->buf, if there is one. */
static void conn_process(struct conn *c)
{
	long rc;

	if (c->state != C_READ || !c->len)
		return;
	rc = sk_http_parse(c->buf, c->len, MAX_HEAD, c->http->max_body, &c->p);
	if (rc == 0) {
		maybe_continue(c);
		conn_read(c, true);
		return;
	}
	if (rc < 0) {
		SK_DEBUG("%s: bad request (%ld)", c->http->addr, -rc);
		send_error(c, (int)-rc);
		return;
	}
	c->used = (size_t)rc;
	c->nreq++;
	serve(c);
}

static int conn_alloc(struct conn **cp, struct sk_http *h)
{
	struct conn *c;
	int err;

	c = sk_zalloc(sizeof(*c), conn_destroy);
	if (!c)
		return SK_ENOMEM;
	c->http = sk_ref(h);
	c->tcp = sk_zalloc(sizeof(*c->tcp), NULL);
	c->timer = sk_zalloc(sizeof(*c->timer), NULL);
	err = c->tcp && c->timer ? uv_tcp_init(h->loop, c->tcp) : SK_ENOMEM;
	if (err) {
		/* Not initialised: no close callback will come for them. */
		sk_deref(c->tcp);
		sk_deref(c->timer);
		sk_deref(c);
		return err;
	}
	(void)uv_timer_init(h->loop, c->timer);
	c->tcp->data = sk_ref(c);
	c->timer->data = sk_ref(c);

	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	c->reject = h->nconn >= MAX_CONN;
	if (c->reject)
		h->nreject++;
	else
		h->nconn++;
	*cp = c;
	return 0;
}

/* The server side of TLS on a new connection: the engine reads and writes memory
 * BIOs; libuv moves the ciphertext. */
static int conn_tls(struct conn *c)
{
	c->raw = sk_zalloc(RAW_SIZE, NULL);
	c->ssl = SSL_new(c->http->tls);
	if (!c->raw || !c->ssl)
		return SK_ENOMEM;
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->rbio || !c->wbio) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		c->rbio = c->wbio = NULL;
		return SK_ENOMEM;
	}
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_accept_state(c->ssl);
	return 0;
}

static void spare_close_cb(uv_handle_t *hd)
{
	struct sk_http *h = hd->data;

	/* Closed, the memory is a blank uv_tcp_t again: keep it for next time. */
	if (!h->spare && !h->closing)
		h->spare = (uv_tcp_t *)hd;
	else
		sk_deref(hd);
	sk_deref(h);
}

/* Out of memory with a connection pending. libuv stops watching the listener
 * until that socket is accepted, so take it with memory set aside earlier and
 * close it: the client sees a reset, the listener goes on. */
static void refuse_pending(struct sk_http *h, uv_stream_t *srv)
{
	uv_tcp_t *t = h->spare;

	if (!t || uv_tcp_init(h->loop, t))
		return;
	h->spare = NULL;
	t->data = sk_ref(h);
	(void)uv_accept(srv, (uv_stream_t *)t);
	uv_close((uv_handle_t *)t, spare_close_cb);
}

static void on_connection(uv_stream_t *srv, int status)
{
	struct sk_http *h = srv->data;
	struct conn *c;
	int err;

	if (status < 0) {
		SK_WARN("%s: accept: %s", h->addr, uv_strerror(status));
		return;
	}
	err = conn_alloc(&c, h);
	if (err) {
		SK_ERROR("%s: accept: %s", h->addr, sk_strerror(err));
		refuse_pending(h, srv);
		return;
	}
	err = uv_accept(srv, (uv_stream_t *)c->tcp);
	if (err) {
		SK_WARN("%s: accept: %s", h->addr, uv_strerror(err));
		conn_close(c);
		return;
	}
	if (!c->reject) {
		if (h->tls && conn_tls(c)) {
			conn_close(c);
			return;
		}
		conn_timer(c, h->timeout_ms);
		conn_read(c, true);
	} else if (h->nreject <= MAX_CONN && !h->tls) {
		send_error(c, 503);
	} else {
		conn_close(c); /* even the 503s are piling up: just drop */
	}
}

/* "1.2.3.4:80" or "[::1]:80", numeric only. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss)
{
	const char *host = addr, *hend, *port;
	char ip[INET6_ADDRSTRLEN];
	bool v6 = addr[0] == '[';
	unsigned long pn = 0;
	size_t n;

	if (v6) {
		host++;
		hend = strchr(host, ']');
		if (!hend || hend[1] != ':')
			return SK_EINVAL;
		port = hend + 2;
	} else {
		hend = strrchr(addr, ':');
		if (!hend)
			return SK_EINVAL;
		port = hend + 1;
	}
	n = (size_t)(hend - host);
	if (!n || n >= sizeof(ip) || !*port || strlen(port) > 5)
		return SK_EINVAL;
	for (const char *s = port; *s; s++) {
		if (*s < '0' || *s > '9')
			return SK_EINVAL;
		pn = pn * 10 + (unsigned long)(*s - '0');
	}
	if (pn > 65535)
		return SK_EINVAL;
	memcpy(ip, host, n);
	ip[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (v6 ? uv_ip6_addr(ip, (int)pn, (struct sockaddr_in6 *)ss)
	       : uv_ip4_addr(ip, (int)pn, (struct sockaddr_in *)ss))
		return SK_EINVAL;
	return 0;
}

static int bound_addr(struct sk_http *h)
{
	struct sockaddr_storage ss;
	char ip[INET6_ADDRSTRLEN];
	int len = sizeof(ss), err;

	err = uv_tcp_getsockname(h->lsock, (struct sockaddr *)&ss, &len);
	if (err)
		return err;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		uv_ip6_name(a, ip, sizeof(ip));
		snprintf(h->addr, sizeof(h->addr), "[%s]:%u", ip, ntohs(a->sin6_port));
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		uv_ip4_name(a, ip, sizeof(ip));
		snprintf(h->addr, sizeof(h->addr), "%s:%u", ip, ntohs(a->sin_port));
	}
	return 0;
}

/* libuv writes with write(2): without this a client reset kills the daemon. */
static void ignore_sigpipe(void)
{
	struct sigaction sa;

	if (!sigaction(SIGPIPE, NULL, &sa) && !(sa.sa_flags & SA_SIGINFO) &&
	    sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
}

static void http_destroy(void *data)
{
	struct sk_http *h = data;

	/* Every handle and connection holds a reference: none can be left. */
	assert(!h->lsock && !h->conns);
	sk_deref(h->spare); /* not a live handle: closed or never initialised */
	SSL_CTX_free(h->tls); /* connections hold their own reference (SSL_new) */
}

int sk_http_reload_tls(struct sk_http *h, const char *cert, const char *key)
{
	SSL_CTX *ctx;

	if (!h || !h->tls || h->closing || !cert || !cert[0] || !key || !key[0])
		return SK_EINVAL;
	ctx = sk_tls_server_ctx(cert, key, "https"); /* logs the file at fault */
	if (!ctx)
		return SK_ECONFIG;
	/* Live connections keep the context they were made from (SSL_new took a
	 * reference); new handshakes get this one. */
	SSL_CTX_free(h->tls);
	h->tls = ctx;
	return 0;
}

int sk_http_req_peer(const struct sk_http_req *req, char *ip, size_t size)
{
	const struct conn *c = req ? req->priv : NULL;
	struct sockaddr_storage ss;
	int len = sizeof(ss), err;

	if (!c || !c->tcp || !ip || !size)
		return SK_EINVAL;
	err = uv_tcp_getpeername(c->tcp, (struct sockaddr *)&ss, &len);
	if (!err)
		err = ss.ss_family == AF_INET6
			      ? uv_ip6_name((const struct sockaddr_in6 *)&ss, ip, size)
			      : uv_ip4_name((const struct sockaddr_in *)&ss, ip, size);
	if (err)
		ip[0] = '\0';
	return err;
}

int sk_http_alloc(struct sk_http **hp, uv_loop_t *loop, const char *addr,
		  sk_http_handler_cb *handler, void *arg)
{
	return sk_http_alloc_opts(hp, loop, addr, NULL, handler, arg);
}

int sk_http_alloc_opts(struct sk_http **hp, uv_loop_t *loop, const char *addr,
		       const struct sk_http_opts *o, sk_http_handler_cb *handler, void *arg)
{
	struct sockaddr_storage ss;
	struct sk_http *h;
	int err;

	if (!hp || !loop || !addr || !handler)
		return SK_EINVAL;
	if (o && (!o->tls_cert) != (!o->tls_key))
		return SK_EINVAL;
	if (o && o->max_body > (size_t)1 << 30)
		return SK_EINVAL;
	err = parse_addr(addr, &ss);
	if (err)
		return err;
	h = sk_zalloc(sizeof(*h), http_destroy);
	if (!h)
		return SK_ENOMEM;
	h->loop = loop;
	h->handler = handler;
	h->arg = arg;
	h->max_body = o && o->max_body ? o->max_body : MAX_BODY;
	h->buf_max = MAX_HEAD + h->max_body + 1;
	h->timeout_ms = o && o->timeout_ms ? o->timeout_ms : TIMEOUT_MS;
	snprintf(h->addr, sizeof(h->addr), "%s", addr);
	if (o && o->tls_cert && o->tls_cert[0]) {
		h->tls = sk_tls_server_ctx(o->tls_cert, o->tls_key, "https");
		if (!h->tls) {
			sk_deref(h);
			return SK_ECONFIG;
		}
	}

	h->spare = sk_zalloc(sizeof(*h->spare), NULL);
	h->lsock = sk_zalloc(sizeof(*h->lsock), NULL);
	err = h->lsock && h->spare ? uv_tcp_init(loop, h->lsock) : SK_ENOMEM;
	if (err) {
		h->lsock = sk_deref(h->lsock);
		goto out;
	}
	h->lsock->data = sk_ref(h);
	err = uv_tcp_bind(h->lsock, (const struct sockaddr *)&ss, 0);
	if (!err)
		err = uv_listen((uv_stream_t *)h->lsock, SOMAXCONN, on_connection);
	if (!err)
		err = bound_addr(h);
	if (err)
		goto out;
	ignore_sigpipe();
	*hp = h;
	return 0;

out:
	/* The listener, if any, is freed by the loop; h goes with it. */
	sk_http_close(h);
	sk_deref(h);
	return err;
}

const char *sk_http_addr(const struct sk_http *h)
{
	return h ? h->addr : "";
}

void sk_http_close(struct sk_http *h)
{
	if (!h || h->closing)
		return;
	h->closing = true;
	if (h->lsock) {
		uv_close((uv_handle_t *)h->lsock, handle_close_cb);
		h->lsock = NULL;
	}
	while (h->conns)
		conn_close(h->conns);
}
