/* Private to the bus: peers and outbound sockets (bus_out.c), shared with bus.c. */
#ifndef SK_BUS_INT_H
#define SK_BUS_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "skein/sk_bus.h"
#include "skein/sk_metrics.h"

/* One NN_PUSH socket per peer address. Messages that cannot be sent yet (EAGAIN:
 * connection not yet up) wait in a bounded queue flushed when NN_SNDFD signals. */
struct sk_bus_qmsg {
	void *data;
	size_t len;
	uint64_t expire; /* loop ms */
};

struct sk_bus_out {
	struct sk_bus *b;
	char *addr;
	int sock;
	int endpoint;
	uv_poll_t *poll; /* on NN_SNDFD while the queue is not empty */
	struct sk_bus_qmsg *q;
	size_t qhead, qlen, qcap;
	uint64_t down_until; /* loop ms: a send failed, avoid for new requests */
	uint64_t last_used, created;
	unsigned users;      /* peers using it */
	struct sk_bus_out *next;
};

struct sk_bus_peer {
	char *id, *role, *dc;
	bool draining;
	char **topics;
	size_t ntopics;
	struct sk_bus_out *out;
	struct sk_bus_peer *next;
};

struct sk_bus_pending;

struct sk_bus_handler {
	int body;
	sk_bus_request_cb *req_cb;
	sk_bus_msg_cb *msg_cb;
	char *topic;
	void *arg;
	struct sk_bus_handler *next;
};

struct sk_bus {
	uv_loop_t *loop;
	char *id, *role, *dc, *listen;
	uint64_t deadline_ms;
	int sock; /* NN_PULL */
	uv_poll_t *rpoll;
	bool closing;

	struct sk_bus_peer *peers;
	struct sk_bus_out *outs;
	uv_timer_t *gc;
	uint32_t rr;

	struct sk_bus_handler *handlers;

	struct sk_bus_pending **ptab; /* hash by msg_id */
	size_t pmask, npending;
	uint64_t next_id;
	uint64_t rng;
	ProtobufCBinaryData cur_trace; /* trace of the request being served */
	uint8_t cur_trace_buf[16];
	size_t serving;

	struct sk_bus_stats st;
	uint64_t drop_logged_at, drop_logged_count;

	struct {
		struct sk_counter *rx, *tx, *requests, *retries, *timeouts, *nonode,
			*remote_err, *malformed, *unknown, *late, *send_fail;
		struct sk_histogram *duration;
	} m;
};

/* bus_out.c */
struct sk_bus_out *sk_bus_out_get(struct sk_bus *b, const char *addr);
/* Sends now or queues until expire; returns 0 when sent, 1 when queued, <0 when the
 * queue is full or nanomsg fails hard. */
int sk_bus_out_send(struct sk_bus_out *o, const void *data, size_t len, uint64_t expire,
		    bool queue);
void sk_bus_out_release(struct sk_bus_out *o);
void sk_bus_outs_close(struct sk_bus *b);
int sk_bus_gc_start(struct sk_bus *b);
struct sk_bus_peer *sk_bus_peer_find(const struct sk_bus *b, const char *id);
/* A live, non-draining peer of role, none of the nex ids in ex, own datacenter first. */
struct sk_bus_peer *sk_bus_peer_pick(struct sk_bus *b, const char *role, const char *const *ex,
				     size_t nex);
/* Whether such a peer exists (does not advance the round robin). */
bool sk_bus_peer_other(struct sk_bus *b, const char *role, const char *const *ex, size_t nex);
void sk_bus_peers_free(struct sk_bus *b);

/* bus.c */
void sk_bus_node_lost(struct sk_bus *b, const char *id);
void sk_bus_count_drop(struct sk_bus *b, const char *reason, struct sk_counter *c,
		       uint64_t *stat);

#endif
