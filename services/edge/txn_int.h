/* txn_int: what txn.c (layer, tables, timers), txn_server.c and txn_client.c share. */
#ifndef SKEIN_EDGE_TXN_INT_H
#define SKEIN_EDGE_TXN_INT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_protos.h>
#include "sipmsg.h"
#include "txn.h"
#include "skein/sk_hash.h"

#define TXN_CONTAINER(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* ---- hash tables: chained, power-of-two buckets, intrusive nodes ---- */

struct txn_hnode {
	struct txn_hnode *next;
	uint64_t hash;
};

struct txn_htab {
	struct txn_hnode **b;
	size_t mask; /* buckets - 1 */
	size_t n;
};

int txn_htab_init(struct txn_htab *t, size_t buckets);
void txn_htab_release(struct txn_htab *t);
/* Grows (doubles) when the load passes 1; a failed grow only costs speed. */
void txn_htab_add(struct txn_htab *t, struct txn_hnode *n);
void txn_htab_del(struct txn_htab *t, struct txn_hnode *n);
static inline struct txn_hnode *txn_htab_first(const struct txn_htab *t, uint64_t hash)
{
	return t->b[hash & t->mask];
}

/* Seeded FNV-1a: keys come from the network, the seed keeps collisions unguessable. */
static inline uint64_t txn_hash(uint64_t h, const void *p, size_t n)
{
	return sk_fnv64(h, p, n);
}
uint64_t txn_hash_lower(uint64_t h, const char *s);

/* ---- timers, driven by one uv_timer_t ----
 * A timer started for a duration some earlier timer was started for goes at the tail
 * of that duration's queue: uv_now() never goes back, so each queue is in deadline
 * order, and start, stop and the earliest are O(1) touching at most two neighbours.
 * Nearly every timer is one of a few durations (64*T1, T4, Timer C, T1 doubling to
 * T2), and under load most wait their full 32 s in the middle of hundreds of
 * thousands: a binary heap paid a cache miss per level for every one that fired
 * (~7 % of the edge's time at 3,000 calls/s). Durations beyond the TXN_TQ_MAX
 * queues go to a binary min-heap. */

struct txn_timer;
typedef void(txn_timer_cb)(struct txn_timer *t);

struct txn_timer {
	uint64_t due; /* uv_now() ms */
	uint32_t pos; /* heap slot + 1; 0 = not in the heap */
	uint8_t q; /* queue + 1; 0 = in no queue (not armed when pos is 0 too) */
	struct txn_timer *prev, *next; /* in the queue */
	txn_timer_cb *fn;
};

#define TXN_TQ_MAX 16

struct txn_tq {
	uint64_t ms;
	struct txn_timer *head, *tail;
};

/* (Re)arms t to fire after ms (0: on the next loop turn, never from inside the call). */
void txn_timer_start(struct edge_txl *l, struct txn_timer *t, uint64_t ms, txn_timer_cb *fn);
void txn_timer_stop(struct edge_txl *l, struct txn_timer *t);

/* ---- the layer ---- */

struct edge_txl {
	uv_loop_t *loop;
	uv_timer_t *timer; /* allocated apart, freed in its close callback */
	struct edge_txl_opts o;
	char *via_host; /* o.via_host copied, or NULL */
	char *via_param; /* o.via_param copied, or NULL */
	uint64_t seed;
	uint64_t next_id;
	/* The first half of every To-tag this layer's server transactions put in their
	 * responses (random per layer), and of those of the challenges answered
	 * statelessly (another): an ACK that matches no transaction but carries one is
	 * for a final we sent (txn_server.c ack_input); one carrying the second needs
	 * no parsing to be known (edge_txl_absorb). */
	char tag_prefix[EDGE_TAG_SIZE / 2];
	char sl_prefix[EDGE_TAG_SIZE / 2];
	bool closed;

	struct txn_htab stx_tab; /* by branch + sent-by + method */
	struct txn_htab ctx_tab; /* by branch + CSeq method */
	struct txn_htab id_tab;	 /* ctx by id (send error cookies) */

	struct txn_tq tq[TXN_TQ_MAX];
	size_t ntq; /* queues in use; a queue stays once made (a few durations exist) */
	struct txn_timer **heap;
	size_t heap_n, heap_cap;
	uint64_t armed_due; /* deadline the uv timer is set for; UINT64_MAX = idle */

	/* Server transactions whose final response went out during this loop turn:
	 * their requests are released from the check handle, once the callback chain
	 * that answered is over (txn_stx_shed). Each holds a reference. */
	uv_check_t *check; /* allocated apart, freed in its close callback */
	struct edge_stx *shed_head, **shed_tail;

	/* Our Via up to "branch=", per transport: "SIP/2.0/UDP 192.0.2.1:5060;branch="
	 * (txn_client.c). Printing the address and the line cost ~4,000 instructions per
	 * client transaction; it changes only if the listener does (local compared). */
	struct {
		struct edge_addr local;
		char *pre; /* malloc'd, or NULL */
		size_t len;
	} via[EDGE_PROTO_MAX_];

	struct edge_txl_stats st;
	size_t pending; /* server transactions without a final response: work in hand */
	size_t stx_requests; /* server transactions holding their request (stats) */
	struct {
		struct sk_histogram *seconds;
		struct sk_counter *retx, *timeouts;
		struct sk_counter *acks[2]; /* absorbed by To-tag: parsed, unparsed */
	} m;
};

/* The check handle's callback (txn_stx_shed_run). */
void txn_check_cb(uv_check_t *h);
void txn_count_retx(struct edge_txl *l);
void txn_count_timeout(struct edge_txl *l);

/* ---- server transactions (txn_server.c) ---- */

enum stx_state {
	STX_TRYING, /* non-INVITE */
	STX_PROCEEDING,
	STX_COMPLETED,
	STX_CONFIRMED,
	STX_ACCEPTED, /* RFC 6026 §7.1 */
	STX_TERMINATED,
};

struct edge_stx {
	struct txn_hnode hn;
	struct edge_txl *l; /* a reference */
	struct txn_timer retx, wait;
	uint64_t retx_ms;
	enum stx_state state;
	bool invite, cancelled;
	bool pending; /* counted in l->pending: no final response yet */
	bool shed_queued; /* on l->shed_head */
	int status; /* final status sent, 0 before */
	/* The request. After the final response it is released as soon as only the
	 * layer holds the stx (txn_stx_shed): from then on the stx only absorbs
	 * retransmissions, for which key[] and resp suffice. */
	msg_t *req;
	struct edge_stx *shed_next;
	/* Origin of the request (data NULL), allocated in req's home and released with
	 * it: 664 bytes (the transport's verdict included) that retransmissions do not
	 * need; proto is kept apart for them. */
	struct edge_rx *rx;
	enum edge_proto proto;
	/* Key (§17.2.3), pointing into key[]: branch (or the RFC 2543 key), sent-by, and
	 * the method it matches (INVITE for ACK). */
	const char *branch, *host, *port;
	sip_method_t method;
	const char *method_name;
	const char *call_id; /* INVITE only (Timer H's log line), into key[]; else NULL */
	/* Where responses go (§18.2.2, RFC 3581 §4). */
	struct edge_addr dst;
	uint64_t flow;
	char *resp; /* last response sent (malloc'd), for retransmissions */
	size_t resp_len;
	uint64_t created_ns;
	char to_tag[EDGE_TAG_SIZE];
	void *tu;
	char key[]; /* the key strings, NUL-terminated one after the other: one allocation */
};

/* A request (not a response); takes msg. */
void txn_server_input(struct edge_txl *l, const struct edge_rx *rx, msg_t *msg);
/* Terminates at once, without callbacks (layer close). */
void txn_stx_terminate(struct edge_stx *stx);
/* From the check handle: releases the request of every stx answered during this loop
 * turn that only the layer holds any more. */
void txn_stx_shed_run(struct edge_txl *l);

/* ---- client transactions (txn_client.c) ---- */

enum ctx_state {
	CTX_CALLING, /* INVITE; Trying for non-INVITE */
	CTX_PROCEEDING,
	CTX_COMPLETED,
	CTX_ACCEPTED, /* RFC 6026 §7.2 */
	CTX_TERMINATED,
};

struct edge_ctx {
	struct txn_hnode hn, hid;
	struct edge_txl *l; /* a reference */
	struct txn_timer retx, wait, tc;
	uint64_t retx_ms;
	uint64_t id;
	enum ctx_state state;
	bool invite, prov, final, cancel_wanted, cancel_sent, released;
	sip_method_t method;
	const char *method_name; /* for extension methods, in req */
	char branch[EDGE_BRANCH_SIZE + 1 + EDGE_BRANCH_TAG_MAX];
	msg_t *req;	  /* NULL for our own CANCELs */
	char *data, *ack; /* request and ACK bytes (malloc'd) */
	size_t len, ack_len;
	enum edge_proto proto;
	struct edge_addr dst;
	uint64_t flow;
	char *tls_name;
	edge_ctx_cb *cb;
	void *arg;
};

/* A response; takes msg. */
void txn_client_input(struct edge_txl *l, const struct edge_rx *rx, msg_t *msg);
void txn_ctx_terminate(struct edge_ctx *ctx);
void txn_ctx_send_error(struct edge_ctx *ctx, int err);

/* The named parameter of a Via (sofia leaves v_rport, v_branch unset for the first
 * element of a comma-separated Via line: read the parameter list instead). */
const char *txn_via_param(const sip_via_t *v, const char *name);

#endif
