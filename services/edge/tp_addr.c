/* tp_addr: transport names and socket addresses (parse, print, compare). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "transport.h"

const char *edge_proto_name(enum edge_proto p)
{
	switch (p) {
	case EDGE_PROTO_UDP:
		return "udp";
	case EDGE_PROTO_TCP:
		return "tcp";
	case EDGE_PROTO_TLS:
		return "tls";
	case EDGE_PROTO_WS:
		return "ws";
	case EDGE_PROTO_WSS:
		return "wss";
	default:
		return "?";
	}
}

const char *edge_proto_via(enum edge_proto p)
{
	switch (p) {
	case EDGE_PROTO_UDP:
		return "UDP";
	case EDGE_PROTO_TCP:
		return "TCP";
	case EDGE_PROTO_TLS:
		return "TLS";
	case EDGE_PROTO_WS: /* RFC 7118 §5.2.1 */
		return "WS";
	case EDGE_PROTO_WSS:
		return "WSS";
	default:
		return "?";
	}
}

int edge_proto_parse(const char *s, enum edge_proto *p)
{
	if (!s || !p)
		return SK_EINVAL;
	for (int i = 0; i < EDGE_PROTO_MAX_; i++)
		if (!strcasecmp(s, edge_proto_name((enum edge_proto)i))) {
			*p = (enum edge_proto)i;
			return 0;
		}
	return SK_EINVAL;
}

/* Dotted quad of an IPv4 address, NUL-terminated; buf has room for 16 bytes. This
 * runs several times per request (Via received, the binding's source, logs):
 * inet_ntop() formats IPv4 with sprintf(). */
static size_t put_ipv4(char *buf, const struct in_addr *in)
{
	const unsigned char *b = (const unsigned char *)&in->s_addr;
	size_t n = 0;

	for (int i = 0; i < 4; i++) {
		if (i)
			buf[n++] = '.';
		n += sk_u64_dec(buf + n, b[i]);
	}
	buf[n] = '\0';
	return n;
}

const char *edge_addr_ip(const struct edge_addr *a, char *buf, size_t size)
{
	const void *src = a->u.sa.sa_family == AF_INET6 ? (const void *)&a->u.in6.sin6_addr
							: (const void *)&a->u.in.sin_addr;

	if (!size)
		return buf;
	if (a->u.sa.sa_family == AF_INET && size >= INET_ADDRSTRLEN) {
		put_ipv4(buf, &a->u.in.sin_addr);
		return buf;
	}
	if ((a->u.sa.sa_family != AF_INET && a->u.sa.sa_family != AF_INET6) ||
	    !inet_ntop(a->u.sa.sa_family, src, buf, (socklen_t)size))
		snprintf(buf, size, "?");
	return buf;
}

uint16_t edge_addr_port(const struct edge_addr *a)
{
	if (a->u.sa.sa_family == AF_INET6)
		return ntohs(a->u.in6.sin6_port);
	if (a->u.sa.sa_family == AF_INET)
		return ntohs(a->u.in.sin_port);
	return 0;
}

const char *edge_addr_str(const struct edge_addr *a, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	if (a->u.sa.sa_family == AF_INET && size >= INET_ADDRSTRLEN + 6) {
		size_t n = put_ipv4(buf, &a->u.in.sin_addr);

		buf[n++] = ':';
		buf[n + sk_u64_dec(buf + n, edge_addr_port(a))] = '\0';
		return buf;
	}
	edge_addr_ip(a, ip, sizeof(ip));
	snprintf(buf, size, a->u.sa.sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip,
		 (unsigned)edge_addr_port(a));
	return buf;
}

int edge_addr_parse(struct edge_addr *a, const char *s)
{
	char ip[INET6_ADDRSTRLEN];
	const char *colon, *h = s;
	size_t hl;
	char *end;
	long port;

	if (!a || !s)
		return SK_EINVAL;
	memset(a, 0, sizeof(*a));
	colon = strrchr(s, ':');
	if (!colon || !colon[1])
		return SK_EINVAL;
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535 || colon[1] == '-' || colon[1] == '+')
		return SK_EINVAL;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 3 || colon[-1] != ']')
			return SK_EINVAL;
		h = s + 1;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(ip))
		return SK_EINVAL;
	memcpy(ip, h, hl);
	ip[hl] = '\0';
	if (s[0] == '[') {
		a->u.in6.sin6_family = AF_INET6;
		a->u.in6.sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, ip, &a->u.in6.sin6_addr) != 1)
			return SK_EINVAL;
	} else {
		a->u.in.sin_family = AF_INET;
		a->u.in.sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, ip, &a->u.in.sin_addr) != 1)
			return SK_EINVAL;
	}
	return 0;
}

bool edge_addr_eq(const struct edge_addr *a, const struct edge_addr *b)
{
	if (a->u.sa.sa_family != b->u.sa.sa_family)
		return false;
	if (a->u.sa.sa_family == AF_INET)
		return a->u.in.sin_port == b->u.in.sin_port &&
		       a->u.in.sin_addr.s_addr == b->u.in.sin_addr.s_addr;
	if (a->u.sa.sa_family == AF_INET6)
		return a->u.in6.sin6_port == b->u.in6.sin6_port &&
		       !memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, 16);
	return false;
}
