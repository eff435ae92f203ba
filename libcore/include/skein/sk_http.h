/* sk_http: the small HTTP/1.1 server every daemon runs for /metrics, /healthz,
 * /readyz, /status and the admin API. Not a general web server: requests have no
 * body larger than max_body, one request per connection is enough for scrapers and
 * probes (keep-alive is honoured but not required), and slow or oversized clients
 * are cut off (408 / 413 / 431) without stalling the loop. */
#ifndef SK_HTTP_H
#define SK_HTTP_H

#include <stddef.h>
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
};

struct sk_http_resp {
	int status;               /* 200 ... */
	const char *content_type; /* default "text/plain; charset=utf-8" */
	struct sk_buf body;       /* filled by the handler; owned by the server */
};

/* Synchronous handler: fill resp (status, content type, body). Return 0, or a
 * negative code for a 500. Unknown paths should set 404. */
typedef int(sk_http_handler_cb)(const struct sk_http_req *req, struct sk_http_resp *resp,
				void *arg);

/* Listen on addr ("127.0.0.1:8080", "[::1]:0"); port 0 picks a free one.
 * The server calls handler for every request. If SIGPIPE is still at its default
 * action it is ignored from here on, so a client reset cannot kill the process. */
int sk_http_alloc(struct sk_http **hp, uv_loop_t *loop, const char *addr,
		  sk_http_handler_cb *handler, void *arg);
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
