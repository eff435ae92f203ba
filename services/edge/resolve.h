/* resolve: RFC 3263 server location for the edge — a SIP or SIPS URI to an ordered list
 * of (transport, address, port) to try, through NAPTR, SRV and A/AAAA lookups made by
 * sofia-sip's resolver (sres) on the daemon's libuv loop.
 *
 * Order of targets (RFC 3263 §4):
 *  - host is an IP literal (or maddr is): no DNS; transport from transport=, else UDP
 *    for sip: and TLS for sips: (§4.1); port from the URI, else 5060 (5061 for TLS).
 *  - explicit port: A (and AAAA) of the host only, transport as above (§4.2).
 *  - transport= without a port: SRV for that transport, else A on the default port.
 *  - otherwise NAPTR: "SIP+D2U", "SIP+D2T", "SIPS+D2T" (only the last for sips:), kept
 *    when the edge has that transport, by order then preference (RFC 3403 §4.1); then
 *    the SRV of each. No usable NAPTR: SRV for _sip._udp, _sip._tcp, _sips._tcp (only
 *    _sips._tcp for sips:) in that order. SRV records by priority, weighted random within
 *    a priority (RFC 2782); a target of "." means none. No SRV at all: A of the host on
 *    port 5060 over UDP (5061 over TLS for sips:). NXDOMAIN for the NAPTR ends it.
 *  - addresses of each SRV target: the additional records sres cached with the SRV
 *    answer when present, else an A (and AAAA) lookup; addresses in DNS order, A first.
 * At most EDGE_RESOLVE_MAX_TARGETS targets and EDGE_RESOLVE_MAX_LOOKUPS DNS lookups per
 * query (what is left over is dropped). Duplicates are removed.
 *
 * sres caches answers for their TTL (negative answers too); every lookup looks in its
 * cache first. sres retransmits on its own schedule (1, 2, 4... s); each query also has
 * a hard deadline (opts.deadline_ms): what has been found by then is delivered, or
 * SK_ETIMEDOUT when nothing has.
 *
 * Ownership: edge_resolver_alloc returns a reference; edge_resolver_close stops it and
 * the caller then drops its reference (the memory goes when the last libuv handle has
 * closed). Thread: the loop's only. Callbacks fire from the loop, never from inside
 * edge_resolve, edge_query_cancel or edge_resolver_close. */
#ifndef SKEIN_EDGE_RESOLVE_H
#define SKEIN_EDGE_RESOLVE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <sofia-sip/url.h>
#include "transport.h"

enum {
	EDGE_RESOLVE_MAX_TARGETS = 16,
	EDGE_RESOLVE_MAX_LOOKUPS = 32,
	EDGE_RESOLVE_NAME_MAX = 256,
};

struct edge_resolver;
struct edge_query;

/* One place to send the request to. */
struct edge_target {
	enum edge_proto proto;
	struct edge_addr addr;
	/* The name to verify a TLS certificate against: the host of the URI, never the
	 * NAPTR or SRV result (RFC 5922 §4); "" when the host is an IP literal. */
	char name[EDGE_RESOLVE_NAME_MAX];
};

/* The outcome of a query, exactly once per edge_resolve that returned 0 unless it was
 * cancelled. err 0: t[0..n-1] in the order to try (n >= 1; borrowed, valid during the
 * call). Otherwise n is 0 and err is
 *   SK_ENOENT     the name does not exist, or nothing usable for our transports;
 *   SK_ETIMEDOUT  no usable answer by the deadline, or the DNS failed (no reply,
 *                 SERVFAIL, REFUSED, unreachable): temporary, answer 503;
 *   SK_ECANCELED  the resolver was closed first.
 * The query handle is gone once this returns. */
typedef void(edge_resolve_cb)(int err, const struct edge_target *t, size_t n, void *arg);

struct edge_resolver_opts {
	/* resolv.conf to read (nameserver, search is ignored, options; sofia's "port N"
	 * extension sets the server port); NULL: /etc/resolv.conf. */
	const char *resolv_conf;
	/* "ip:port" or "[ip6]:port" of the only DNS server to ask, instead of resolv.conf
	 * (a local cache on another port; the tests' own server). NULL: none. */
	const char *nameserver;
	uint64_t deadline_ms; /* per query; 0: 5000 */
	bool ipv6;	      /* AAAA lookups too (their targets after the A ones) */
};

/* o may be NULL (system resolv.conf, defaults). SK_EINVAL for a bad nameserver,
 * SK_ECONFIG when resolv_conf cannot be read, SK_ENOMEM. */
int edge_resolver_alloc(struct edge_resolver **rp, uv_loop_t *loop,
			const struct edge_resolver_opts *o);
/* Pending queries complete with SK_ECANCELED (from the loop, not from this call);
 * sockets and timers close. Idempotent; NULL is ignored. */
void edge_resolver_close(struct edge_resolver *r);

/* Starts locating the server for uri (borrowed for the call only). protos is the set
 * of transports the edge can use: a bitmask of 1u << EDGE_PROTO_UDP/TCP/TLS. cb is
 * called later with arg. *qp (when qp is not NULL) receives a handle for
 * edge_query_cancel, valid until cb has been called. Returns 0, or at once SK_EINVAL
 * (not a sip:/sips: URI, no host, bad port, no protos), SK_ECANCELED (the resolver is
 * closed) or SK_ENOMEM — and then cb is never called. */
int edge_resolve(struct edge_resolver *r, const url_t *uri, unsigned protos, edge_resolve_cb *cb,
		 void *arg, struct edge_query **qp);
/* No callback for q after this. Harmless on NULL and from inside q's own callback. */
void edge_query_cancel(struct edge_query *q);

#endif
