/* Plain-socket peers and helpers shared by the transport tests (test_transport.c,
 * test_ws.c, test_tp_limits.c): a self-signed certificate, a TCP client, a send that lets the loop
 * drain, and a non-blocking inbox. Included by one test program each. */
#ifndef SKEIN_TESTS_TP_TEST_H
#define SKEIN_TESTS_TP_TEST_H
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include "skein/sk_buf.h"
#include "skein/sk_metrics.h"
#include "transport.h"

/* A certificate and key for localhost / 127.0.0.1 made with the openssl CLI under
 * $SKEIN_TEST_TMP (or /tmp); names carry tag and the pid. 0 or -1. */
static int tp_test_make_cert(const char *tag, char *cert, size_t csize, char *key, size_t ksize)
{
	const char *dir = getenv("SKEIN_TEST_TMP");
	char cmd[2048];

	if (!dir || !*dir)
		dir = "/tmp";
	mkdir(dir, 0755);
	snprintf(cert, csize, "%s/%s-cert-%d.pem", dir, tag, (int)getpid());
	snprintf(key, ksize, "%s/%s-key-%d.pem", dir, tag, (int)getpid());
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout '%s' -out '%s' -days 2 -subj /CN=localhost "
		 "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1",
		 key, cert);
	return system(cmd) == 0 ? 0 : -1;
}

/* The port a listener of tp got. */
static uint16_t tp_test_port(struct edge_tp *tp, enum edge_proto p)
{
	struct edge_addr a;

	assert_true(edge_tp_local(tp, p, &a));
	return edge_addr_port(&a);
}

/* A TCP client connected to 127.0.0.1:port from a port of its own (*myport, may be
 * NULL), non-blocking from here on. */
static int tp_test_tcp_client(uint16_t port, uint16_t *myport)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	if (myport)
		*myport = ntohs(a.sin_port);
	a.sin_port = htons(port);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Sends all of s; when the socket buffer is full the loop (if given) runs meanwhile so
 * that the edge drains it. */
static void tp_test_put(uv_loop_t *loop, int fd, const void *s, size_t n)
{
	const char *p = s;

	for (size_t off = 0; off < n;) {
		ssize_t k = send(fd, p + off, n - off, MSG_NOSIGNAL);

		if (k > 0)
			off += (size_t)k;
		else if (errno == EAGAIN && loop)
			uv_run(loop, UV_RUN_NOWAIT);
		else
			fail_msg("send: %s", strerror(errno));
	}
}

/* What a plain socket has received so far (NUL-terminated); eof once the peer closed. */
struct inbox {
	unsigned char buf[8192];
	size_t len;
	bool eof;
};

static bool poll_in(int fd, struct inbox *in)
{
	ssize_t n = recv(fd, in->buf + in->len, sizeof(in->buf) - 1 - in->len, MSG_DONTWAIT);

	if (n > 0) {
		in->len += (size_t)n;
		in->buf[in->len] = '\0';
	} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
		in->eof = true;
	}
	return in->len > 0 || in->eof;
}

/* An OPTIONS to the edge with Via transport via ("UDP", "TCP", "WS"), numbered n
 * (branch and Call-ID). */
static inline const char *tp_test_options(char *buf, size_t size, const char *via, int n)
{
	snprintf(buf, size,
		 "OPTIONS sip:edge@127.0.0.1 SIP/2.0\r\n"
		 "Via: SIP/2.0/%s 127.0.0.1:5070;branch=z9hG4bK-%d\r\n"
		 "Max-Forwards: 70\r\n"
		 "From: <sip:a@example.com>;tag=1\r\n"
		 "To: <sip:edge@127.0.0.1>\r\n"
		 "Call-ID: c%d@test\r\n"
		 "CSeq: 1 OPTIONS\r\n"
		 "Content-Length: 0\r\n\r\n",
		 via, n, n);
	return buf;
}

/* The value of one series ("name{labels}") in metrics' exposition text, -1 when
 * absent. */
static inline long tp_test_metric(struct sk_metrics *m, const char *series)
{
	struct sk_buf b;
	char want[200];
	const char *p;
	long v = -1;

	snprintf(want, sizeof(want), "\n%s ", series); /* a sample line, not # HELP */
	sk_buf_init(&b);
	if (sk_metrics_print(m, &b) == 0 && b.data && (p = strstr(b.data, want)))
		v = strtol(p + strlen(want), NULL, 10);
	sk_buf_release(&b);
	return v;
}

#endif
