/* sk_http's additions for XCAP: deferred answers (also when the client has gone
 * first), response headers, a larger body cap, PUT/DELETE with 100-continue, and
 * HTTPS through memory BIOs. A real server on 127.0.0.1 driven by a blocking client
 * in a thread while the loop runs in the test's thread. */
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "skein/sk_http.h"

struct job;
typedef void(client_fn)(struct job *j);

struct job {
	uv_loop_t loop;
	uv_async_t done;
	uv_timer_t later;
	struct sk_http *http;
	struct sk_http_pending *pending; /* the one deferred request */
	int port;
	bool tls;
	client_fn *fn;
	char resp[3][1 << 16];
	int n[3];
	int late_rc; /* what sk_http_respond said for the late answer */
	size_t big_len;
};

static char cert[512], key[512];

/* Answers the deferred request 50 ms later, from a timer: as after a Redis reply. */
static void on_later(uv_timer_t *t)
{
	struct job *j = t->data;
	struct sk_http_resp resp = {.status = 201, .content_type = "application/xcap-el+xml"};

	sk_buf_init(&resp.body);
	sk_buf_init(&resp.headers);
	sk_buf_puts(&resp.body, "<late/>");
	sk_buf_puts(&resp.headers, "ETag: \"abc\"\r\n");
	j->late_rc = sk_http_respond(j->pending, &resp);
	j->pending = sk_deref(j->pending);
}

static int handler(const struct sk_http_req *req, struct sk_http_resp *resp, void *arg)
{
	struct job *j = arg;

	if (!strcmp(req->path, "/later")) {
		j->pending = sk_http_defer(req);
		assert_non_null(j->pending);
		assert_null(sk_http_defer(req)); /* once per request */
		uv_timer_start(&j->later, on_later, 50, 0);
		return 0;
	}
	if (!strcmp(req->path, "/now-deferred")) {
		/* Deferred and answered before the handler returns: one answer only. */
		struct sk_http_pending *p = sk_http_defer(req);
		struct sk_http_resp r = {.status = 401};

		sk_buf_init(&r.body);
		sk_buf_init(&r.headers);
		sk_buf_puts(&r.headers, "WWW-Authenticate: Digest realm=\"x\"\r\n");
		assert_int_equal(sk_http_respond(p, &r), 0);
		assert_int_equal(sk_http_respond(p, &r), SK_EEXIST);
		sk_deref(p);
		return 0;
	}
	if (!strcmp(req->path, "/put")) {
		if (!strcmp(req->method, "PUT"))
			j->big_len = req->body_len;
		sk_buf_printf(&resp->body, "%s %zu", req->method, req->body_len);
		sk_buf_puts(&resp->headers, "X-Len: ok\r\n");
		return 0;
	}
	if (!strcmp(req->path, "/badhdr")) {
		sk_buf_puts(&resp->headers, "X-Bad: a\nb\r\n"); /* a bare LF: refused */
		return 0;
	}
	resp->status = 404;
	return 0;
}

static void on_done(uv_async_t *a)
{
	struct job *j = a->data;

	sk_http_close(j->http);
	uv_close((uv_handle_t *)a, NULL);
	uv_close((uv_handle_t *)&j->later, NULL);
}

static void *client_main(void *arg)
{
	struct job *j = arg;

	j->fn(j);
	uv_async_send(&j->done);
	return NULL;
}

static void run_server(struct job *j, client_fn *fn, bool tls)
{
	size_t live = sk_mem_live();
	struct sk_http_opts o = {.max_body = 1 << 20, .timeout_ms = 3000};
	pthread_t th;

	memset(j, 0, sizeof(*j));
	j->fn = fn;
	j->tls = tls;
	if (tls) {
		o.tls_cert = cert;
		o.tls_key = key;
	}
	assert_int_equal(uv_loop_init(&j->loop), 0);
	assert_int_equal(uv_timer_init(&j->loop, &j->later), 0);
	j->later.data = j;
	assert_int_equal(sk_http_alloc_opts(&j->http, &j->loop, "127.0.0.1:0", &o, handler, j), 0);
	j->port = atoi(sk_http_addr(j->http) + 10);
	assert_true(j->port > 0);
	assert_int_equal(uv_async_init(&j->loop, &j->done, on_done), 0);
	j->done.data = j;
	assert_int_equal(pthread_create(&th, NULL, client_main, j), 0);
	uv_run(&j->loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	assert_int_equal(sk_nrefs(j->http), 1);
	j->http = sk_deref(j->http);
	assert_null(j->pending);
	assert_int_equal(uv_loop_close(&j->loop), 0);
	assert_int_equal(sk_mem_live(), live);
}

/* ---- blocking client, plain or TLS ---- */

struct cli {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

static int cli_open(struct cli *c, const struct job *j)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)j->port)};
	struct timeval tv = {.tv_sec = 5};

	memset(c, 0, sizeof(*c));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	if (!j->tls)
		return 0;
	c->ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	SSL_CTX_load_verify_locations(c->ctx, cert, NULL);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	return SSL_connect(c->ssl) == 1 ? 0 : -1;
}

static void cli_send(struct cli *c, const void *p, size_t n)
{
	if (c->ssl)
		SSL_write(c->ssl, p, (int)n);
	else
		(void)!write(c->fd, p, n);
}

/* Reads until the peer closes (every request here says Connection: close). */
static int cli_read_all(struct cli *c, char *buf, size_t size)
{
	size_t len = 0;

	for (;;) {
		long n = c->ssl ? SSL_read(c->ssl, buf + len, (int)(size - 1 - len))
				: read(c->fd, buf + len, size - 1 - len);

		if (n <= 0 || len + (size_t)n >= size - 1) {
			if (n > 0)
				len += (size_t)n;
			break;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	return (int)len;
}

static void cli_close(struct cli *c)
{
	SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	close(c->fd);
}

static void exchange(struct job *j, int i, const char *req)
{
	struct cli c;

	if (cli_open(&c, j)) {
		j->n[i] = -1;
		cli_close(&c);
		return;
	}
	cli_send(&c, req, strlen(req));
	j->n[i] = cli_read_all(&c, j->resp[i], sizeof(j->resp[i]));
	cli_close(&c);
}

/* ---- cases ---- */

static void cl_deferred(struct job *j)
{
	exchange(j, 0, "GET /later HTTP/1.1\r\nConnection: close\r\n\r\n");
	exchange(j, 1, "GET /now-deferred HTTP/1.1\r\nConnection: close\r\n\r\n");
	exchange(j, 2, "GET /badhdr HTTP/1.1\r\nConnection: close\r\n\r\n");
}

static void check_deferred(struct job *j)
{
	assert_int_equal(j->late_rc, 0);
	assert_non_null(strstr(j->resp[0], "HTTP/1.1 201 Created\r\n"));
	assert_non_null(strstr(j->resp[0], "Content-Type: application/xcap-el+xml\r\n"));
	assert_non_null(strstr(j->resp[0], "\r\nETag: \"abc\"\r\n"));
	assert_non_null(strstr(j->resp[0], "\r\n\r\n<late/>"));
	/* One answer: a second status line would show the double answer. */
	assert_non_null(strstr(j->resp[1], "HTTP/1.1 401 Unauthorized\r\n"));
	assert_non_null(strstr(j->resp[1], "WWW-Authenticate: Digest realm=\"x\"\r\n"));
	assert_null(strstr(strstr(j->resp[1], "401") + 3, "HTTP/1.1"));
	assert_non_null(strstr(j->resp[2], "HTTP/1.1 500 "));
	assert_null(strstr(j->resp[2], "X-Bad"));
}

static void test_deferred(void **state)
{
	static struct job j;

	(void)state;
	run_server(&j, cl_deferred, false);
	check_deferred(&j);
}

static void test_deferred_tls(void **state)
{
	static struct job j;

	(void)state;
	run_server(&j, cl_deferred, true);
	check_deferred(&j);
}

/* The client goes away while its answer is deferred: the late answer is refused
 * (SK_ECANCELED) and nothing is touched after free (ASan builds check that). */
static void cl_gone(struct job *j)
{
	struct cli c;

	assert_int_equal(cli_open(&c, j), 0);
	cli_send(&c, "GET /later HTTP/1.1\r\n\r\n", 23);
	cli_close(&c);
	usleep(200 * 1000); /* past the 50 ms answer: the loop must have seen the close */
}

static void test_deferred_client_gone(void **state)
{
	static struct job j;

	(void)state;
	run_server(&j, cl_gone, false);
	assert_int_equal(j.late_rc, SK_ECANCELED);
}

/* A 600 KiB PUT with Expect: 100-continue: the 100 comes before the body is sent. */
static void cl_big(struct job *j)
{
	static char body[600 * 1024];
	char head[256], got[256];
	struct cli c;
	int n;

	memset(body, 'x', sizeof(body));
	assert_int_equal(cli_open(&c, j), 0);
	n = snprintf(head, sizeof(head),
		     "PUT /put HTTP/1.1\r\nContent-Length: %zu\r\nExpect: 100-continue\r\n"
		     "Connection: close\r\n\r\n",
		     sizeof(body));
	cli_send(&c, head, (size_t)n);
	n = c.ssl ? SSL_read(c.ssl, got, sizeof(got) - 1) : (int)read(c.fd, got, sizeof(got) - 1);
	assert_true(n > 0);
	got[n] = '\0';
	assert_string_equal(got, "HTTP/1.1 100 Continue\r\n\r\n");
	cli_send(&c, body, sizeof(body));
	j->n[0] = cli_read_all(&c, j->resp[0], sizeof(j->resp[0]));
	cli_close(&c);
	exchange(j, 1, "DELETE /put HTTP/1.1\r\nConnection: close\r\n\r\n");
}

static void test_big_put(void **state)
{
	static struct job j;

	(void)state;
	run_server(&j, cl_big, false);
	if (j.big_len != 600 * 1024)
		print_error("%s\n", j.resp[0]);
	assert_int_equal(j.big_len, 600 * 1024);
	assert_non_null(strstr(j.resp[0], "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(j.resp[0], "X-Len: ok\r\n"));
	assert_non_null(strstr(j.resp[0], "PUT 614400"));
	assert_non_null(strstr(j.resp[1], "DELETE 0"));
}

static void test_big_put_tls(void **state)
{
	static struct job j;

	(void)state;
	run_server(&j, cl_big, true);
	assert_int_equal(j.big_len, 600 * 1024);
	assert_non_null(strstr(j.resp[0], "PUT 614400"));
}

/* A plain-text client on the HTTPS port gets no answer in clear, and a bad
 * certificate file fails the alloc. */
static void cl_plain_on_tls(struct job *j)
{
	struct cli c;

	j->tls = false;
	exchange(j, 0, "GET /put HTTP/1.1\r\nConnection: close\r\n\r\n");
	(void)c;
}

static void test_tls_refuses_plain(void **state)
{
	static struct job j;
	struct sk_http_opts o = {.tls_cert = "/nonexistent.pem", .tls_key = "/nonexistent.pem"};
	struct sk_http *h = NULL;
	uv_loop_t loop;

	(void)state;
	run_server(&j, cl_plain_on_tls, true);
	assert_null(strstr(j.resp[0], "HTTP/1.1"));
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(sk_http_alloc_opts(&h, &loop, "127.0.0.1:0", &o, handler, NULL),
			 SK_ECONFIG);
	o.tls_key = NULL;
	assert_int_equal(sk_http_alloc_opts(&h, &loop, "127.0.0.1:0", &o, handler, NULL),
			 SK_EINVAL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const char *tmp = getenv("SKEIN_TEST_TMP");
	char cmd[2048];
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_deferred), SK_TEST(test_deferred_tls), SK_TEST(test_deferred_client_gone),
	    SK_TEST(test_big_put),  SK_TEST(test_big_put_tls),	SK_TEST(test_tls_refuses_plain),
	};

	if (!tmp)
		tmp = "/tmp";
	snprintf(cmd, sizeof(cmd), "mkdir -p %s", tmp);
	if (system(cmd))
		return 1;
	snprintf(cert, sizeof(cert), "%s/xcap-test-cert-%d.pem", tmp, (int)getpid());
	snprintf(key, sizeof(key), "%s/xcap-test-key-%d.pem", tmp, (int)getpid());
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 "
		 "-keyout %s -out %s >/dev/null 2>&1",
		 key, cert);
	if (system(cmd))
		return 1;
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	unlink(cert);
	unlink(key);
	return rc;
}
