/* core_route: where a request goes next (RFC 3261 §16.5-16.6, RFC 3263 for literal
 * addresses), Record-Route (§16.6 item 4; doubled when the transport changes, RFC 5658)
 * and removing our own Route entries (§16.4, loose routing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sofia-sip/sip_header.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "core.h"
#include "sipmsg.h"

SK_LOG_MODULE("route");

int edge_route_uri(struct edge *e, const url_t *u, struct edge_dest *d)
{
	char host[64], param[16];
	unsigned port;
	const char *h;
	size_t hl, n;
	bool sips = u->url_type == url_sips;

	(void)e;
	memset(d, 0, sizeof(*d));
	if ((u->url_type != url_sip && !sips) || !u->url_host)
		return SK_EINVAL;
	d->proto = sips ? EDGE_PROTO_TLS : EDGE_PROTO_UDP;
	/* maddr overrides the host (§19.1.1); transport= picks the protocol (§18.1.1).
	 * edge_uri_param() returns the size the value needs and copies nothing when that
	 * is more than the buffer: too long is unusable, not absent. */
	n = edge_uri_param(u->url_params, "transport", param, sizeof(param));
	if (n) {
		if (n > sizeof(param) || edge_proto_parse(param, &d->proto))
			return SK_ENOTSUP;
		if (sips && d->proto != EDGE_PROTO_TLS)
			d->proto = EDGE_PROTO_TLS;
	}
	n = edge_uri_param(u->url_params, "maddr", host, sizeof(host));
	if (n > sizeof(host))
		return SK_EINVAL;
	h = n ? host : u->url_host;
	hl = strlen(h);
	if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') {
		if (hl - 2 >= sizeof(host))
			return SK_EINVAL; /* no IPv6 literal is that long */
		memmove(host, h + 1, hl - 2);
		host[hl - 2] = 0;
		h = host;
	} else if (h != host) {
		if (hl >= sizeof(host))
			return SK_EINVAL;
		memcpy(host, h, hl + 1);
		h = host;
	}
	port = u->url_port && *u->url_port ? (unsigned)atoi(u->url_port)
					    : (d->proto == EDGE_PROTO_TLS ? 5061 : 5060);
	if (port == 0 || port > 65535)
		return SK_EINVAL;
	memset(&d->addr, 0, sizeof(d->addr));
	if (inet_pton(AF_INET, h, &d->addr.u.in.sin_addr) == 1) {
		d->addr.u.in.sin_family = AF_INET;
		d->addr.u.in.sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, h, &d->addr.u.in6.sin6_addr) == 1) {
		d->addr.u.in6.sin6_family = AF_INET6;
		d->addr.u.in6.sin6_port = htons((uint16_t)port);
	} else {
		return SK_ENOTSUP; /* a name: RFC 3263 resolution */
	}
	return 0;
}

static int add_rr(struct edge *e, msg_t *msg, sip_t *sip, enum edge_proto p, const char *user)
{
	char buf[400];
	sip_record_route_t *rr;
	bool v6 = strchr(e->host, ':') != NULL;

	if (e->conf->cluster_host[0])
		snprintf(buf, sizeof(buf), "<sip:%s%s%s;transport=%s;lr>", user ? user : "",
			 user ? "@" : "", e->conf->cluster_host, edge_proto_name(p));
	else
		snprintf(buf, sizeof(buf), "<sip:%s%s%s%s%s:%u;transport=%s;lr>", user ? user : "",
			 user ? "@" : "", v6 ? "[" : "", e->host, v6 ? "]" : "", e->port[p],
			 edge_proto_name(p));
	rr = sip_record_route_make(msg_home(msg), buf);
	if (!rr)
		return SK_ENOMEM;
	return msg_header_prepend(msg, (msg_pub_t *)sip, (msg_header_t **)&sip->sip_record_route,
				  (msg_header_t *)rr)
		       ? SK_ENOMEM
		       : 0;
}

int edge_route_record(struct edge *e, msg_t *msg, sip_t *sip, enum edge_proto in,
		      enum edge_proto out, const char *token)
{
	int err = 0;

	/* Inserted at the top: the entry the callee sees first must be reachable by the
	 * callee (out), the one nearest the caller by the caller (in). With a flow token
	 * the callee's entry carries it, and there are always two entries, so that the
	 * direction of an in-dialog request can be told (edge_route_self). */
	if (in != out || token)
		err = add_rr(e, msg, sip, in, NULL);
	if (!err)
		err = add_rr(e, msg, sip, out, token);
	return err;
}

int edge_route_pop_self(struct edge *e, msg_t *msg, sip_t *sip)
{
	int n = 0;

	while (sip->sip_route && n < 2 && edge_uri_is_us(e, sip->sip_route->r_url)) {
		msg_header_remove(msg, (msg_pub_t *)sip, (msg_header_t *)sip->sip_route);
		n++;
	}
	return n;
}

/* ---- flow tokens (RFC 5626 §5.2): which connection an in-dialog request must take */

/* "sk-<flow>-<mac>-<member>": the flow id on the edge <member>, authenticated by 16
 * hex digits of HMAC-SHA256 with the cluster's nonce secret, so that nobody can
 * steer requests down another subscriber's connection with a forged Route. */
static void token_mac(struct edge *e, const char *member, uint64_t flow, char out[17])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char in[200];
	int n = snprintf(in, sizeof(in), "skein-flow-v1|%s|%llu", member,
			 (unsigned long long)flow);

	HMAC(EVP_sha256(), e->secret, (int)e->secret_len, (const unsigned char *)in,
	     (size_t)(n < (int)sizeof(in) ? n : (int)sizeof(in) - 1), md, &mdlen);
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int edge_flow_token(struct edge *e, const char *member, uint64_t flow, char *out, size_t size)
{
	char mac[17];

	token_mac(e, member, flow, mac);
	return snprintf(out, size, "sk-%llu-%s-%s", (unsigned long long)flow, mac, member) <
			   (int)size
		       ? 0
		       : SK_ERANGE;
}

bool edge_flow_token_parse(struct edge *e, const char *user, struct edge_flow_ref *ref)
{
	char mac[17];
	const char *p, *m;
	char *end;

	if (!user || strncmp(user, "sk-", 3))
		return false;
	ref->flow = strtoull(user + 3, &end, 10);
	if (end == user + 3 || *end != '-')
		return false;
	p = end + 1;
	m = strchr(p, '-');
	if (!m || m - p != 16 || strlen(m + 1) >= sizeof(ref->member) || !m[1])
		return false;
	strcpy(ref->member, m + 1);
	token_mac(e, ref->member, ref->flow, mac);
	return CRYPTO_memcmp(mac, p, 16) == 0;
}

int edge_route_self(struct edge *e, const sip_route_t *r, const sip_route_t **next,
		    struct edge_flow_ref *ref)
{
	int n = 0;

	ref->valid = false;
	while (r && n < 2 && edge_uri_is_us(e, r->r_url)) {
		/* A token on the second entry: the request comes from the caller's side
		 * and goes to the flow. On the first, it comes up from the flow's side and
		 * the token is not for it. */
		if (n == 1 && r->r_url->url_user)
			ref->valid = edge_flow_token_parse(e, r->r_url->url_user, ref);
		r = r->r_next;
		n++;
	}
	if (next)
		*next = r;
	return n;
}
