/* sk_bus: the message bus between Skein daemons, on nanomsg and protobuf-c.
 *
 * Every daemon binds one inbound NN_PULL socket (its bus address) and keeps one
 * outbound NN_PUSH socket per peer address. Every message is a
 * skein.bus.v1.Envelope (proto/skein/bus/v1/envelope.proto):
 *   - request/reply to a role: sk_bus_request() picks a live, non-draining node of
 *     the role (own datacenter first, round robin), many requests are in flight at
 *     once, each has a deadline, and a request whose node is found down (send fails,
 *     or membership removes it) is retried once on another node;
 *   - directed messages to one node: sk_bus_send();
 *   - events: sk_bus_publish() sends to every peer subscribed to the topic.
 * docs/architecture.md says why PUSH/PULL rather than REQ/REP or PUB/SUB.
 *
 * The peer table is fed by sk_node (membership from Redis) or, in tests and
 * benchmarks, by sk_bus_peer_set() directly.
 *
 * Thread: everything runs on the libuv loop given to sk_bus_alloc. Callbacks fire
 * from that loop, never from inside the call that started the operation. */
#ifndef SK_BUS_H
#define SK_BUS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "skein/bus/v1/envelope.pb-c.h"

struct sk_bus;
struct sk_bus_req;
struct sk_metrics;

struct sk_bus_opts {
	const char *id;          /* member id, "<node>/<role>" */
	const char *role;
	const char *datacenter;
	const char *listen;      /* "ipc:///path" or "tcp://127.0.0.1:7001" */
	uint64_t deadline_ms;    /* default request deadline */
	struct sk_metrics *metrics; /* may be NULL */
	const char *metrics_prefix; /* "skein_registrar" */
};

/* A reply (err == 0, env is the reply; borrowed for the duration of the call) or a
 * failure: SK_ETIMEDOUT (deadline passed), SK_ENONODE (no live node of the role),
 * SK_ECANCELED (bus closing), or the negative status the remote side replied with
 * (then env is the reply too). Called exactly once per accepted request. */
typedef void(sk_bus_reply_cb)(int err, const Skein__Bus__V1__Envelope *env, void *arg);
/* A request arrived: answer with sk_bus_reply() now, or take a reference (sk_ref)
 * and answer later, then sk_deref. A request whose last reference goes without an
 * answer is answered SK_EREMOTE, so the caller does not wait for its deadline. */
typedef void(sk_bus_request_cb)(struct sk_bus_req *req, const Skein__Bus__V1__Envelope *env,
				void *arg);
/* A directed message or a subscribed event arrived (env borrowed). */
typedef void(sk_bus_msg_cb)(const Skein__Bus__V1__Envelope *env, void *arg);

int sk_bus_alloc(struct sk_bus **bp, uv_loop_t *loop, const struct sk_bus_opts *o);
/* Fail every pending request with SK_ECANCELED, close sockets and handles. The
 * object goes when the last reference is dropped and its handles are closed. */
void sk_bus_close(struct sk_bus *b);
const char *sk_bus_id(const struct sk_bus *b);
const char *sk_bus_addr(const struct sk_bus *b);

/* Peers. peer_set adds or updates (address change reconnects). */
int sk_bus_peer_set(struct sk_bus *b, const char *id, const char *role, const char *dc,
		    const char *addr, bool draining, const char *const *topics, size_t ntopics);
/* Removes a peer; its pending requests are re-sent to another node of the role
 * (once). One with no other node fails with SK_ENONODE, one already re-sent once
 * with SK_ETIMEDOUT (it will not be answered). */
void sk_bus_peer_del(struct sk_bus *b, const char *id);
size_t sk_bus_peer_count(const struct sk_bus *b, const char *role);

/* Handlers by body (the envelope's oneof case). One per case. */
int sk_bus_on_request(struct sk_bus *b, Skein__Bus__V1__Envelope__BodyCase body,
		      sk_bus_request_cb *cb, void *arg);
int sk_bus_on_direct(struct sk_bus *b, Skein__Bus__V1__Envelope__BodyCase body,
		     sk_bus_msg_cb *cb, void *arg);
int sk_bus_subscribe(struct sk_bus *b, const char *topic, sk_bus_msg_cb *cb, void *arg);
/* Remove a subscription (the owner of arg is going away); SK_ENOENT if none. */
int sk_bus_unsubscribe(struct sk_bus *b, const char *topic, void *arg);

#define SK_BUS_IDEMPOTENT 0x1u /* also retry on another node at half the deadline */

/* Send a request to a role. The caller sets the body; the bus fills the header
 * (msg_id, trace, origin, deadline, kind), packs it and keeps nothing of env.
 * deadline_ms 0 takes the default. Returns 0 (cb will fire) or an error now
 * (SK_ENONODE, SK_ENOMEM: cb will not fire). */
int sk_bus_request(struct sk_bus *b, const char *role, Skein__Bus__V1__Envelope *env,
		   uint64_t deadline_ms, unsigned flags, sk_bus_reply_cb *cb, void *arg);
/* The same, tried first on the member `prefer` of the role (draining or not: it holds
 * what the request is about, e.g. a SIP flow); when it is unknown or its send fails,
 * and for the one retry, any node of the role as sk_bus_request. prefer NULL or "":
 * sk_bus_request. */
int sk_bus_request_at(struct sk_bus *b, const char *role, const char *prefer,
		      Skein__Bus__V1__Envelope *env, uint64_t deadline_ms, unsigned flags,
		      sk_bus_reply_cb *cb, void *arg);
/* Directed message to one member id. */
int sk_bus_send(struct sk_bus *b, const char *id, Skein__Bus__V1__Envelope *env);
/* Event to every other peer subscribed to topic (not to this node itself). */
int sk_bus_publish(struct sk_bus *b, const char *topic, Skein__Bus__V1__Envelope *env);

/* Answer a request (env may be NULL for a bare status; its header is filled here).
 * status is 0 or a negative Skein error code. Only the first answer counts; no
 * reference is dropped. */
int sk_bus_reply(struct sk_bus_req *req, int status, Skein__Bus__V1__Envelope *env);
const char *sk_bus_req_origin(const struct sk_bus_req *req);

/* Requests being served (received, not yet answered): drain waits for 0. */
size_t sk_bus_serving(const struct sk_bus *b);
/* Requests sent, waiting for replies. */
size_t sk_bus_pending(const struct sk_bus *b);

struct sk_bus_stats {
	uint64_t rx, tx, requests, replies, timeouts, retries;
	uint64_t dropped_malformed, dropped_unknown, dropped_late, send_failures;
};
void sk_bus_stats(const struct sk_bus *b, struct sk_bus_stats *st);

/* Unpack a received buffer: the fuzz target and the receive path share it. NULL
 * when malformed. Free with skein__bus__v1__envelope__free_unpacked(env, NULL). */
Skein__Bus__V1__Envelope *sk_bus_decode(const uint8_t *data, size_t len);

#endif
