/* sk_http: the request parser case by case, then a real server on 127.0.0.1 driven
 * by a blocking client in a thread while the loop runs in the test's thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "skein/sk_http.h"

#define MAX_HEAD 8192
#define MAX_BODY 65536

/* ---- parser ---- */

static long parse(const char *s, struct sk_http_parsed *p)
{
	static char buf[100000];
	size_t n = strlen(s);

	memcpy(buf, s, n + 1);
	return sk_http_parse(buf, n, MAX_HEAD, MAX_BODY, p);
}

static void test_parse_complete(void **state)
{
	const char *req = "GET /metrics?x=1 HTTP/1.1\r\nHost: localhost:9090\r\n"
			  "Accept:  text/plain \t\r\nX-Empty:\r\n\r\n";
	struct sk_http_parsed p;

	(void)state;
	assert_int_equal(parse(req, &p), (long)strlen(req));
	assert_string_equal(p.method, "GET");
	assert_string_equal(p.target, "/metrics?x=1");
	assert_int_equal(p.version_minor, 1);
	assert_int_equal(p.nhdr, 3);
	assert_string_equal(p.hdr[0].name, "Host");
	assert_string_equal(p.hdr[0].value, "localhost:9090");
	assert_string_equal(p.hdr[1].name, "Accept");
	assert_string_equal(p.hdr[1].value, "text/plain"); /* OWS trimmed */
	assert_string_equal(p.hdr[2].name, "X-Empty");
	assert_string_equal(p.hdr[2].value, "");
	assert_int_equal(p.head_len, strlen(req));
	assert_int_equal(p.content_length, 0);
}

static void test_parse_body_and_pipeline(void **state)
{
	const char *req = "POST /admin HTTP/1.0\r\nContent-Length: 5\r\n"
			  "content-length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n";
	struct sk_http_parsed p;
	long head = (long)(strstr(req, "hello") - req);

	(void)state;
	assert_int_equal(parse(req, &p), head + 5); /* the next request is left */
	assert_int_equal(p.head_len, head);
	assert_int_equal(p.content_length, 5);
	assert_int_equal(p.version_minor, 0);
	/* Leading empty lines are skipped (RFC 9112 2.2). */
	assert_int_equal(parse("\r\n\nGET / HTTP/1.1\r\n\r\n", &p), 21);
	assert_string_equal(p.target, "/");
}

static void test_parse_partial(void **state)
{
	const char *req = "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
	char buf[128], copy[128];
	struct sk_http_parsed p;
	size_t n = strlen(req);

	(void)state;
	/* Every prefix asks for more and leaves the buffer as it was. */
	for (size_t i = 0; i < n; i++) {
		memcpy(buf, req, n);
		memcpy(copy, req, n);
		assert_int_equal(sk_http_parse(buf, i, MAX_HEAD, MAX_BODY, &p), 0);
		assert_memory_equal(buf, copy, n);
	}
	memcpy(buf, req, n);
	assert_int_equal(sk_http_parse(buf, n, MAX_HEAD, MAX_BODY, &p), (long)n);
}

static void test_parse_bare_lf(void **state)
{
	const char *req = "HEAD /healthz HTTP/1.1\nHost: x\nConnection: close\n\n";
	struct sk_http_parsed p;

	(void)state;
	assert_int_equal(parse(req, &p), (long)strlen(req));
	assert_string_equal(p.method, "HEAD");
	assert_int_equal(p.nhdr, 2);
	assert_string_equal(p.hdr[1].name, "Connection");
	assert_string_equal(p.hdr[1].value, "close");
	/* Mixed endings too. */
	assert_int_equal(parse("GET / HTTP/1.1\nA: b\r\n\n", &p), 22);
}

static void test_parse_limits(void **state)
{
	static char big[MAX_HEAD + 100];
	struct sk_http_parsed p;
	size_t n;

	(void)state;
	/* Head larger than max_head, complete or not. */
	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX: ");
	memset(big + n, 'a', MAX_HEAD + 50 - n);
	memcpy(big + MAX_HEAD + 50, "\r\n\r\n", 5);
	assert_int_equal(parse(big, &p), -431);
	big[MAX_HEAD - 1] = '\0';
	assert_int_equal(parse(big, &p), 0); /* 8191 bytes: might still end in time */
	big[MAX_HEAD - 1] = 'a';
	big[MAX_HEAD] = '\0';
	assert_int_equal(parse(big, &p), -431);
	/* A head of exactly max_head is fine. */
	memset(big + n, 'a', MAX_HEAD);
	memcpy(big + MAX_HEAD - 4, "\r\n\r\n", 5);
	assert_int_equal(parse(big, &p), MAX_HEAD);

	assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", &p), -413);
	assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
			       &p),
			 -413);
	assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 65536\r\n\r\n", &p), 0);

	/* 33 header lines. */
	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 33; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "H%d: v\r\n", i);
	snprintf(big + n, sizeof(big) - n, "\r\n");
	assert_int_equal(parse(big, &p), -431);

	/* Target longer than target[] holds. */
	n = (size_t)snprintf(big, sizeof(big), "GET /");
	memset(big + n, 'a', 1100);
	snprintf(big + n + 1100, sizeof(big) - n - 1100, " HTTP/1.1\r\n\r\n");
	assert_int_equal(parse(big, &p), -414);
}

static void test_parse_malformed(void **state)
{
	static const char *const bad[] = {
		"garbage\r\n\r\n",
		"GET\r\n\r\n",
		"GET /\r\n\r\n",                               /* HTTP/0.9 */
		"GET  / HTTP/1.1\r\n\r\n",                     /* double space */
		"GET / HTTP/2.0\r\n\r\n",
		"GET / HTTP/1.1 \r\n\r\n",
		"GET / http/1.1\r\n\r\n",
		"G(T / HTTP/1.1\r\n\r\n",
		"GET /\x01 HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : x\r\n\r\n",          /* space before colon */
		"GET / HTTP/1.1\r\nHost x\r\n\r\n",
		"GET / HTTP/1.1\r\n: x\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",        /* obs-fold */
		"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",           /* bare CR */
		"GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length:\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"\rGET / HTTP/1.1\r\n\r\n",
		"GETTINGTOOLONGMETHOD / HTTP/1.1\r\n\r\n",
	};
	struct sk_http_parsed p;
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long rc = parse(bad[i], &p);

		if (rc != -400)
			print_error("case %zu: %ld\n", i, rc);
		assert_int_equal(rc, -400);
	}
	/* NUL inside a header value. */
	memcpy(buf, "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", 27);
	assert_int_equal(sk_http_parse(buf, 27, MAX_HEAD, MAX_BODY, &p), -400);
	/* Garbage is refused before its line ends. */
	assert_int_equal(parse("\x16\x03\x01\x02", &p), -400);
	assert_int_equal(parse("GET /a\tb", &p), -400);
	assert_int_equal(parse("GE", &p), 0);
	assert_int_equal(parse("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &p), -501);
}

/* ---- server ---- */

struct job;
typedef void(client_fn)(struct job *j);

struct job {
	uv_loop_t loop;
	uv_async_t done;
	bool signalled;
	struct sk_http *http;
	int port;
	client_fn *fn;
	char resp[4][8192];
	int n[4];
	unsigned long fail; /* sk_mem_fail_after once the server is up */
};

static int handler(const struct sk_http_req *req, struct sk_http_resp *resp, void *arg)
{
	struct job *j = arg;
	const char *x;

	if (!strcmp(req->path, "/hello")) {
		sk_buf_puts(&resp->body, "hello world\n");
	} else if (!strcmp(req->path, "/echo")) {
		x = req->header(req, "x-test");
		resp->content_type = "application/json";
		sk_buf_printf(&resp->body, "%s %s ?%s x=%s len=%zu body=%s", req->method,
			      req->path, req->query, x ? x : "(none)", req->body_len, req->body);
	} else if (!strcmp(req->path, "/peer")) {
		char ip[64], tiny[4];

		/* the client's address; a buffer too small for it is an error, "" */
		if (sk_http_req_peer(req, ip, sizeof(ip)))
			snprintf(ip, sizeof(ip), "error");
		sk_buf_printf(&resp->body, "peer=%s small=%d/%s", ip,
			      sk_http_req_peer(req, tiny, sizeof(tiny)) != 0, tiny);
	} else if (!strcmp(req->path, "/big")) {
		for (int i = 0; i < 8 * 1024; i++)
			sk_buf_printf(&resp->body, "%01023d\n", i);
	} else if (!strcmp(req->path, "/fail")) {
		sk_buf_puts(&resp->body, "partial");
		return SK_EPROTO;
	} else if (!strcmp(req->path, "/quit")) {
		sk_http_close(j->http);
	} else {
		resp->status = 404;
		sk_buf_puts(&resp->body, "not found\n");
	}
	return 0;
}

static void on_done(uv_async_t *a)
{
	struct job *j = a->data;

	sk_http_close(j->http);
	uv_close((uv_handle_t *)a, NULL);
}

/* The client tells the loop it is finished: the server closes, the loop ends. */
static void job_done(struct job *j)
{
	if (!j->signalled) {
		j->signalled = true;
		uv_async_send(&j->done);
	}
}

static void *client_main(void *arg)
{
	struct job *j = arg;

	j->fn(j);
	job_done(j);
	return NULL;
}

static void run_server(struct job *j, client_fn *fn)
{
	size_t live = sk_mem_live();
	pthread_t th;
	const char *addr;

	unsigned long fail = j->fail;

	memset(j, 0, sizeof(*j));
	j->fn = fn;
	assert_int_equal(uv_loop_init(&j->loop), 0);
	assert_int_equal(sk_http_alloc(&j->http, &j->loop, "127.0.0.1:0", handler, j), 0);
	addr = sk_http_addr(j->http);
	assert_true(!strncmp(addr, "127.0.0.1:", 10));
	j->port = atoi(addr + 10);
	assert_true(j->port > 0);
	assert_int_equal(uv_async_init(&j->loop, &j->done, on_done), 0);
	j->done.data = j;
	/* Only the loop thread allocates refcounted memory: the count is safe. */
	sk_mem_fail_after(fail);
	assert_int_equal(pthread_create(&th, NULL, client_main, j), 0);
	uv_run(&j->loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	sk_mem_fail_after(0);
	/* Every handle is closed: the owner's reference is the last one. */
	assert_int_equal(sk_nrefs(j->http), 1);
	j->http = sk_deref(j->http);
	assert_int_equal(uv_loop_close(&j->loop), 0);
	assert_int_equal(sk_mem_live(), live);
}

/* ---- blocking client ---- */

struct cli {
	int fd;
	size_t len;
	char buf[65536];
};

static int cli_open(struct cli *c, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 20};

	c->len = 0;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static void cli_close(struct cli *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int cli_send(struct cli *c, const char *s, size_t n)
{
	while (n) {
		ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);

		if (k <= 0)
			return -1;
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

static int cli_puts(struct cli *c, const char *s)
{
	return cli_send(c, s, strlen(s));
}

/* Reads more into c->buf; 0 at EOF or error. */
static ssize_t cli_fill(struct cli *c)
{
	ssize_t k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len - 1, 0);

	if (k <= 0)
		return 0;
	c->len += (size_t)k;
	c->buf[c->len] = '\0';
	return k;
}

/* Moves one response (head, then Content-Length bytes unless head_only) into out. */
static int cli_response(struct cli *c, char *out, size_t cap, bool head_only)
{
	for (;;) {
		char *e, *cl;
		size_t want;

		c->buf[c->len] = '\0';
		e = strstr(c->buf, "\r\n\r\n");
		if (e) {
			want = (size_t)(e + 4 - c->buf);
			cl = strstr(c->buf, "Content-Length: ");
			if (!head_only && cl && cl < e)
				want += strtoul(cl + 16, NULL, 10);
			if (c->len >= want) {
				snprintf(out, cap, "%.*s", (int)want, c->buf);
				memmove(c->buf, c->buf + want, c->len - want);
				c->len -= want;
				return 0;
			}
		}
		if (!cli_fill(c))
			return -1;
	}
}

/* Everything until the server closes. */
static void cli_rest(struct cli *c, char *out, size_t cap)
{
	while (cli_fill(c) && c->len < sizeof(c->buf) - 1)
		;
	snprintf(out, cap, "%.*s", (int)c->len, c->buf);
	c->len = 0;
}

static void exchange(struct job *j, int slot, const char *req)
{
	struct cli c;

	if (cli_open(&c, j->port) || cli_puts(&c, req))
		return;
	cli_rest(&c, j->resp[slot], sizeof(j->resp[slot]));
	cli_close(&c);
}

/* ---- server tests ---- */

static void cl_basic(struct job *j)
{
	exchange(j, 0, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	exchange(j, 1, "GET /nowhere HTTP/1.0\r\n\r\n");
	exchange(j, 2, "HEAD /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
	exchange(j, 3, "POST /echo?a=b%20c HTTP/1.1\r\nX-Test:  yes \r\n"
		       "Content-Length: 4\r\nConnection: close\r\n\r\nping");
}

static void test_server_basic(void **state)
{
	struct job j = {0};

	(void)state;
	run_server(&j, cl_basic);
	assert_string_equal(j.resp[0], "HTTP/1.1 200 OK\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 12\r\n"
				       "Connection: close\r\n\r\n"
				       "hello world\n");
	/* HTTP/1.0 closes by default. */
	assert_string_equal(j.resp[1], "HTTP/1.1 404 Not Found\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 10\r\n"
				       "Connection: close\r\n\r\n"
				       "not found\n");
	assert_string_equal(j.resp[2], "HTTP/1.1 200 OK\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 12\r\n"
				       "Connection: close\r\n\r\n");
	assert_string_equal(j.resp[3], "HTTP/1.1 200 OK\r\n"
				       "Content-Type: application/json\r\n"
				       "Content-Length: 41\r\n"
				       "Connection: close\r\n\r\n"
				       "POST /echo ?a=b%20c x=yes len=4 body=ping");
}

static void cl_peer(struct job *j)
{
	exchange(j, 0, "GET /peer HTTP/1.1\r\nConnection: close\r\n\r\n");
}

/* sk_http_req_peer: the client's address for logs (XCAP's auth-failure lines). */
static void test_server_peer(void **state)
{
	struct job j = {0};

	(void)state;
	run_server(&j, cl_peer);
	assert_non_null(strstr(j.resp[0], "\r\n\r\npeer=127.0.0.1 small=1/"));
}

/* sk_http_reload_tls on a plain HTTP server: nothing to reload. */
static void test_reload_tls_plain(void **state)
{
	uv_loop_t loop;
	struct sk_http *h = NULL;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(sk_http_alloc(&h, &loop, "127.0.0.1:0", handler, NULL), 0);
	assert_int_equal(sk_http_reload_tls(h, "/nonexistent.pem", "/nonexistent.key"), SK_EINVAL);
	sk_http_close(h);
	h = sk_deref(h);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void cl_keepalive(struct job *j)
{
	struct cli c;

	if (cli_open(&c, j->port))
		return;
	cli_puts(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	cli_response(&c, j->resp[0], sizeof(j->resp[0]), false);
	/* Then two pipelined in one segment, the last one closing. */
	cli_puts(&c, "HEAD /hello HTTP/1.1\r\n\r\nGET /echo HTTP/1.1\r\nConnection: close\r\n\r\n");
	cli_response(&c, j->resp[1], sizeof(j->resp[1]), true);
	cli_rest(&c, j->resp[2], sizeof(j->resp[2]));
	cli_close(&c);
	/* HTTP/1.0 asking for keep-alive gets it. */
	if (cli_open(&c, j->port))
		return;
	cli_puts(&c, "GET /hello HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
	cli_response(&c, j->resp[3], sizeof(j->resp[3]), false);
	cli_close(&c);
}

static void test_server_keepalive(void **state)
{
	struct job j = {0};

	(void)state;
	run_server(&j, cl_keepalive);
	assert_string_equal(j.resp[0], "HTTP/1.1 200 OK\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 12\r\n"
				       "Connection: keep-alive\r\n\r\n"
				       "hello world\n");
	assert_string_equal(j.resp[1], "HTTP/1.1 200 OK\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 12\r\n"
				       "Connection: keep-alive\r\n\r\n");
	assert_string_equal(j.resp[2], "HTTP/1.1 200 OK\r\n"
				       "Content-Type: application/json\r\n"
				       "Content-Length: 32\r\n"
				       "Connection: close\r\n\r\n"
				       "GET /echo ? x=(none) len=0 body=");
	assert_non_null(strstr(j.resp[3], "Connection: keep-alive\r\n"));
}

static void cl_errors(struct job *j)
{
	static char big[12000];
	size_t n;

	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX-Big: ");
	memset(big + n, 'x', sizeof(big) - n - 1);
	exchange(j, 0, big);
	exchange(j, 1, "\x16\x03\x01 hello, TLS\r\n\r\n");
	exchange(j, 2, "POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\nabc");
	exchange(j, 3, "GET /fail HTTP/1.1\r\nConnection: close\r\n\r\n");
}

static void test_server_errors(void **state)
{
	struct job j = {0};

	(void)state;
	run_server(&j, cl_errors);
	assert_string_equal(j.resp[0], "HTTP/1.1 431 Request Header Fields Too Large\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 32\r\n"
				       "Connection: close\r\n\r\n"
				       "Request Header Fields Too Large\n");
	assert_string_equal(j.resp[1], "HTTP/1.1 400 Bad Request\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 12\r\n"
				       "Connection: close\r\n\r\n"
				       "Bad Request\n");
	assert_true(!strncmp(j.resp[2], "HTTP/1.1 413 Content Too Large\r\n", 32));
	assert_string_equal(j.resp[3], "HTTP/1.1 500 Internal Server Error\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 22\r\n"
				       "Connection: close\r\n\r\n"
				       "Internal Server Error\n");
}

static void cl_reset(struct job *j)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct timespec ts = {.tv_nsec = 100 * 1000 * 1000};
	struct cli c;

	/* Ask for 8 MiB, read a little, then reset the connection. */
	if (cli_open(&c, j->port))
		return;
	cli_puts(&c, "GET /big HTTP/1.1\r\n\r\n");
	cli_fill(&c);
	setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	cli_close(&c);
	nanosleep(&ts, NULL);
	/* Reset in the middle of a request, too. */
	if (cli_open(&c, j->port))
		return;
	cli_puts(&c, "GET /hello HT");
	setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	cli_close(&c);
	nanosleep(&ts, NULL);
	/* The server is still there. */
	exchange(j, 0, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
}

static void test_server_client_reset(void **state)
{
	struct job j = {0};

	(void)state;
	run_server(&j, cl_reset);
	assert_true(!strncmp(j.resp[0], "HTTP/1.1 200 OK\r\n", 17));
}

static void cl_open_at_close(struct job *j)
{
	struct cli c;

	/* One connection idle in keep-alive with half a request: the server
	 * closes it when it closes. */
	if (cli_open(&c, j->port))
		return;
	cli_puts(&c, "GET /hello HTTP/1.1\r\n\r\n");
	cli_response(&c, j->resp[0], sizeof(j->resp[0]), false);
	cli_puts(&c, "GET /hel");
	job_done(j);
	cli_rest(&c, j->resp[1], sizeof(j->resp[1]));
	cli_close(&c);
}

static void test_server_close_with_open_conn(void **state)
{
	struct job j = {0};

	(void)state;
	run_server(&j, cl_open_at_close);
	assert_true(!strncmp(j.resp[0], "HTTP/1.1 200 OK\r\n", 17));
	assert_string_equal(j.resp[1], "");
}

static void cl_quit(struct job *j)
{
	exchange(j, 0, "GET /quit HTTP/1.1\r\n\r\n");
}

static void test_server_close_in_handler(void **state)
{
	struct job j = {0};

	(void)state;
	run_server(&j, cl_quit);
	assert_string_equal(j.resp[0], "");
}

static void cl_limit(struct job *j)
{
	static struct cli conns[256];
	struct cli c;
	char tmp[512];

	for (int i = 0; i < 256; i++)
		if (cli_open(&conns[i], j->port))
			return;
	/* Prove the server has taken all 256 before the extra one comes. */
	cli_puts(&conns[255], "GET /hello HTTP/1.1\r\n\r\n");
	cli_response(&conns[255], tmp, sizeof(tmp), false);
	exchange(j, 0, "GET /hello HTTP/1.1\r\n\r\n");
	for (int i = 0; i < 256; i++)
		cli_close(&conns[i]);
	/* Once they are gone, service resumes. */
	for (int i = 0; i < 50; i++) {
		struct timespec ts = {.tv_nsec = 20 * 1000 * 1000};

		if (cli_open(&c, j->port))
			return;
		cli_puts(&c, "GET /hello HTTP/1.1\r\n\r\n");
		cli_response(&c, j->resp[1], sizeof(j->resp[1]), false);
		cli_close(&c);
		if (!strncmp(j->resp[1], "HTTP/1.1 200", 12))
			break;
		nanosleep(&ts, NULL);
	}
}

static void test_server_conn_limit(void **state)
{
	struct job j = {0};

	(void)state;
	run_server(&j, cl_limit);
	assert_string_equal(j.resp[0], "HTTP/1.1 503 Service Unavailable\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 20\r\n"
				       "Connection: close\r\n\r\n"
				       "Service Unavailable\n");
	assert_true(!strncmp(j.resp[1], "HTTP/1.1 200 OK\r\n", 17));
}

static void cl_slow(struct job *j)
{
	struct timespec t0, t1;
	struct cli c;

	if (cli_open(&c, j->port))
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cli_puts(&c, "GET /hello HTTP/1.1\r\nHost:");
	cli_rest(&c, j->resp[0], sizeof(j->resp[0]));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	j->n[0] = (int)(t1.tv_sec - t0.tv_sec);
	cli_close(&c);
}

/* Takes the full 10 s of the server's timeout. */
static void test_server_timeout(void **state)
{
	struct job j = {0};

	(void)state;
	run_server(&j, cl_slow);
	assert_true(!strncmp(j.resp[0], "HTTP/1.1 408 Request Timeout\r\n", 30));
	assert_true(j.n[0] >= 9 && j.n[0] <= 12);
}

static void cl_three(struct job *j)
{
	for (int i = 0; i < 3; i++) {
		exchange(j, 0, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
		j->n[0] += !strncmp(j->resp[0], "HTTP/1.1 200 OK\r\n", 17);
		j->resp[0][0] = '\0';
	}
}

/* Whichever allocation fails, that request is dropped, the next ones are served
 * and nothing leaks (run_server checks). */
static void test_server_alloc_faults(void **state)
{
	struct job j = {0};

	(void)state;
	for (unsigned long n = 1; n <= 20; n++) {
		j.fail = n;
		run_server(&j, cl_three);
		assert_true(j.n[0] >= 2);
	}
}

static void nop_loop_run(uv_loop_t *loop)
{
	assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(loop), 0);
}

static void test_server_bad_addr(void **state)
{
	static const char *const bad[] = {
		"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:http",
		"localhost:80", "::1:80", "[::1]80", ":80", "[]:80",
	};
	struct sk_http *h = NULL, *h2 = NULL;
	uv_loop_t loop;
	char addr[64];

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sk_http_alloc(&h, &loop, bad[i], handler, NULL), SK_EINVAL);
	assert_null(h);
	/* A port in use fails, and the half-made server is freed by the loop. */
	assert_int_equal(sk_http_alloc(&h, &loop, "127.0.0.1:0", handler, NULL), 0);
	snprintf(addr, sizeof(addr), "%s", sk_http_addr(h));
	assert_int_equal(sk_http_alloc(&h2, &loop, addr, handler, NULL), -EADDRINUSE);
	assert_null(h2);
	sk_http_close(h);
	sk_http_close(h); /* twice is fine */
	nop_loop_run(&loop);
	assert_int_equal(sk_nrefs(h), 1);
	sk_deref(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		SK_TEST(test_parse_complete),
		SK_TEST(test_parse_body_and_pipeline),
		SK_TEST(test_parse_partial),
		SK_TEST(test_parse_bare_lf),
		SK_TEST(test_parse_limits),
		SK_TEST(test_parse_malformed),
		SK_TEST(test_server_basic),
		SK_TEST(test_server_peer),
		SK_TEST(test_reload_tls_plain),
		SK_TEST(test_server_keepalive),
		SK_TEST(test_server_errors),
		SK_TEST(test_server_client_reset),
		SK_TEST(test_server_close_with_open_conn),
		SK_TEST(test_server_close_in_handler),
		SK_TEST(test_server_conn_limit),
		SK_TEST(test_server_bad_addr),
		SK_TEST(test_server_alloc_faults),
		SK_TEST(test_server_timeout),
	};
	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
