/* sk_http: the small HTTP/1.1 server every daemon runs for /metrics, /healthz,
 * /readyz, /status and the admin API, and that the XCAP server (services/xcap) runs
 * over HTTP and HTTPS. Not a general web server: requests have no body larger than
 * max_body, one request per connection is enough for scrapers and probes (keep-alive
 * is honoured but not required), and slow or oversized clients are cut off
 * (408 / 413 / 431) without stalling the loop. Handlers answer at once, or defer the
 * answer (sk_http_defer) until, say, Redis has replied. Any method reaches the
 * handler; "Expect: 100-continue" is answered with 100 before the body. */
#ifndef SK_HTTP_H
#define SK_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "skein/sk_buf.h"

struct sk_http;

struct sk_http_req {
	const char *method; /* "GET" ... */
	const char *path;   /* without the query */
	const char *query;  /* after '?', "" when none */
	const char *body;   /* NUL-terminated, may be "" */
	size_t body_len;
	/* Header lookup, case-insensitive; NULL when absent. */
	const char *(*header)(const struct sk_http_req *req, const char *name);
	void *priv;
	bool tls; /* the request came over HTTPS */
};

struct sk_http_resp {
	int status;               /* 200 ... */
	const char *content_type; /* default "text/plain; charset=utf-8" */
	struct sk_buf body;       /* filled by the handler; owned by the server */
	/* Extra header lines, each "Name: value\r\n" (e.g. ETag, WWW-Authenticate);
	 * owned by the server. Content-Type, Content-Length and Connection are the
	 * server's. A line with a bare CR or LF inside makes the answer a 500. */
	struct sk_buf headers;
};

/* Handler: fill resp (status, content type, body, headers). Return 0, or a
 * negative code for a 500. Unknown paths should set 404. Everything req points
 * to is valid only during the call. To answer later, call sk_http_defer() and
 * return 0 (resp is then ignored). */
typedef int(sk_http_handler_cb)(const struct sk_http_req *req, struct sk_http_resp *resp,
				void *arg);

/* A request whose answer comes later. */
struct sk_http_pending;

/* Only inside the handler, once per request: the answer will be given with
 * sk_http_respond(). Returns a new reference (NULL when out of memory: answer at
 * once then). The connection stops reading until the answer; if it is not given
 * within the server's timeout the client gets a 504. */
struct sk_http_pending *sk_http_defer(const struct sk_http_req *req);
/* Sends the answer of a deferred request: status, content_type, body and headers
 * of resp are taken over (its buffers are released in every case). Returns 0;
 * SK_ECANCELED when the client went away, timed out or the server closed (nothing
 * sent); SK_EEXIST when this request was answered before. The caller still drops
 * its reference (sk_deref) afterwards; the server keeps what it needs. */
int sk_http_respond(struct sk_http_pending *p, struct sk_http_resp *resp);
/* True while an answer can still be sent (the client is there). */
bool sk_http_pending_alive(const struct sk_http_pending *p);

struct sk_http_opts {
	size_t max_body;      /* largest request body; 0: 64 KiB */
	uint64_t timeout_ms;  /* to receive a request, answer it, or send; 0: 10 s */
	/* Both set: HTTPS only (TLS 1.2 minimum, ECDHE with AEAD suites), the files
	 * are PEM: the certificate chain, then the private key. */
	const char *tls_cert, *tls_key;
};

/* Listen on addr ("127.0.0.1:8080", "[::1]:0"); port 0 picks a free one.
 * The server calls handler for every request. If SIGPIPE is still at its default
 * action it is ignored from here on, so a client reset cannot kill the process. */
int sk_http_alloc(struct sk_http **hp, uv_loop_t *loop, const char *addr,
		  sk_http_handler_cb *handler, void *arg);
/* The same with options (o may be NULL: the defaults). SK_ECONFIG when the
 * certificate or key cannot be loaded (logged naming the file). */
int sk_http_alloc_opts(struct sk_http **hp, uv_loop_t *loop, const char *addr,
		       const struct sk_http_opts *o, sk_http_handler_cb *handler, void *arg);
/* HTTPS: load the certificate and key again (e.g. on SIGHUP). New handshakes get
 * them, connections already open keep theirs. On an error (logged naming the file)
 * the current ones stay: SK_ECONFIG; SK_EINVAL when h is not an HTTPS server. */
int sk_http_reload_tls(struct sk_http *h, const char *cert, const char *key);
/* The client's address of a request as text ("192.0.2.7", "2001:db8::1"), for
 * logs (only during the handler). Returns 0, or an error with ip set to "". */
int sk_http_req_peer(const struct sk_http_req *req, char *ip, size_t size);
/* The address actually bound, e.g. "127.0.0.1:41234". */
const char *sk_http_addr(const struct sk_http *h);
/* Stop listening and close every connection; the object is released when the
 * loop has closed its handles (sk_deref is then enough). */
void sk_http_close(struct sk_http *h);

/* Parse one request head + body from buf (for the server and the fuzz target).
 * Returns the number of bytes consumed, 0 if more bytes are needed (buf is then left
 * untouched), or a negative HTTP-ish error: -400 malformed, -413 body too large,
 * -414 target longer than target[] holds, -431 head too large or more than 32
 * header lines, -501 Transfer-Encoding (only Content-Length bodies are supported). */
struct sk_http_parsed {
	char method[16];
	char target[1024];
	int version_minor; /* x of HTTP/1.x: 1.0 closes by default, 1.1 keeps alive */
	size_t nhdr;
	struct {
		const char *name, *value; /* point into the caller's (modified) buffer */
	} hdr[32];
	size_t content_length;
	size_t head_len;
};
long sk_http_parse(char *buf, size_t len, size_t max_head, size_t max_body,
		   struct sk_http_parsed *p);

#endif
