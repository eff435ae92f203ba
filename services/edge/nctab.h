/* nctab: the nonce-counts of the nonces this edge issued (RFC 7616 §3.4: the client
 * sends nc 1, 2, ... with one nonce; a count not above the last one seen is a replay).
 *
 * The edge that made a nonce is the one that knows its count, as Kamailio's auth
 * module keeps `nc_array` in its shared memory: no Redis key per authenticated request
 * (it was a SET NX and a key to expire for every INVITE and REGISTER, issue 6). The
 * retry that reaches another edge is checked with the issuer over the bus (core_auth.c);
 * a nonce its issuer no longer knows is stale.
 *
 * A table of 2^k slots, indexed by the nonce's index modulo the size: issuing a nonce
 * takes the next index and resets its slot, so a nonce is forgotten once `slots` newer
 * ones were issued (at 10,000 challenges/s, a million slots keep 100 s of nonces).
 * A forgotten nonce is answered as stale (the client retries without asking its user).
 * Loop-free, not thread-safe (the edge's loop). */
#ifndef SKEIN_EDGE_NCTAB_H
#define SKEIN_EDGE_NCTAB_H

#include <stddef.h>
#include <stdint.h>

struct edge_nctab;

enum edge_nc {
	EDGE_NC_FRESH,	   /* above the last count: recorded, accept */
	EDGE_NC_REPLAY,	   /* not above the last count: refuse */
	EDGE_NC_FORGOTTEN, /* not a nonce of this table (slot reused, other run): stale */
};

/* slots is rounded up to a power of two (at least 2); epoch names this run of the edge
 * in its nonces. Release with sk_deref. SK_EINVAL for slots 0 or above 2^30. */
int edge_nctab_alloc(struct edge_nctab **tp, size_t slots, uint32_t epoch);
uint32_t edge_nctab_epoch(const struct edge_nctab *t);
size_t edge_nctab_slots(const struct edge_nctab *t);
/* The index of a new nonce (never 0), its slot reset to "no count seen". */
uint32_t edge_nctab_issue(struct edge_nctab *t);
/* The request with nonce (epoch, index) sends count nc. */
enum edge_nc edge_nctab_use(struct edge_nctab *t, uint32_t epoch, uint32_t index, uint32_t nc);
const char *edge_nc_name(enum edge_nc v);

#endif
