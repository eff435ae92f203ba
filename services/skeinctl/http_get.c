/* A minimal blocking HTTP/1.1 GET for skeinctl status (loopback or LAN admin ports). */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include "skein/sk_err.h"
#include "skeinctl.h"

static int wait_fd(int fd, short ev, int ms)
{
	struct pollfd p = {fd, ev, 0};
	int r = poll(&p, 1, ms);

	return r > 0 ? 0 : r == 0 ? SK_ETIMEDOUT : -errno;
}

int http_get(const char *addr, const char *path, int timeout_ms, struct sk_buf *body)
{
	char host[256], req[512], buf[4096];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = {0}, *ai = NULL;
	struct sk_buf resp;
	int fd = -1, err, status = SK_EPROTO;
	char *hdr_end;

	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return SK_EINVAL;
	if (addr[0] == '[') {
		memcpy(host, addr + 1, (size_t)(colon - addr - 2));
		host[colon - addr - 2] = '\0';
	} else {
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = '\0';
	}
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(host, colon + 1, &hints, &ai))
		return SK_EINVAL;
	sk_buf_init(&resp);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
		err = -errno;
		goto out;
	}
	if ((err = wait_fd(fd, POLLOUT, timeout_ms)))
		goto out;
	{
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			err = -soerr;
			goto out;
		}
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
		 path, addr);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		err = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n;

		if ((err = wait_fd(fd, POLLIN, timeout_ms)))
			goto out;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		sk_buf_append(&resp, buf, (size_t)n);
	}
	err = 0;
	if (!resp.data || sscanf(resp.data, "HTTP/1.%*d %d", &status) != 1) {
		err = SK_EPROTO;
		goto out;
	}
	hdr_end = strstr(resp.data, "\r\n\r\n");
	if (hdr_end)
		sk_buf_puts(body, hdr_end + 4);
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	sk_buf_release(&resp);
	return err ? err : status;
}
