/* txn: the edge's SIP transaction layer (RFC 3261 §17, with RFC 6026's Accepted
 * states) for a transaction-stateful proxy, on the daemon's libuv loop.
 *
 * Server transactions (stx) are made for every request except ACK; matching is by
 * the top Via's branch + sent-by + method (§17.2.3; ACK matches its INVITE, CANCEL is
 * its own transaction and is also looked up against the INVITE). Retransmitted
 * requests are absorbed (the last response is sent again). An INVITE stx answers
 * 100 Trying at once. Before a new request reaches on_request the layer adds
 * received= / rport= to its top Via (§18.2.1, RFC 3581 §4), so responses and
 * forwarded copies carry them.
 *
 * Client transactions (ctx): the layer adds our Via (fresh z9hG4bK branch, our
 * address for the transport, ;rport), sends, retransmits over UDP (Timers A/E), times
 * out (B/F: 408 to the TU), answers non-2xx INVITE responses with the hop-by-hop ACK
 * (§17.1.1.3) and absorbs their retransmissions (Timer D), keeps an INVITE ctx in
 * Accepted after a 2xx (Timer M, RFC 6026 §7.2) so that 2xx retransmissions still
 * reach the TU, runs Timer C (§16.6 item 11) and sends CANCEL (§9.1: only after a
 * provisional response; a CANCEL asked for earlier is sent when one arrives).
 *
 * All timers are per RFC with T1/T2/T4 from the options; over TCP/TLS the
 * retransmission timers are not run and the wait timers are 0 where §17 says so
 * (a 0 timer ends the transaction on the next loop turn, never inside an API call).
 * Timer D is 64*T1 (32 s with the default T1, "at least 32 s" in §17.1.1.2). An ACK
 * matching an INVITE stx in Accepted (2xx sent) goes to on_stateless: it is end to
 * end (RFC 6026 §7.1). A request without a z9hG4bK branch (RFC 2543) is keyed by
 * Call-ID, CSeq number, From tag, its Via branch if any and sent-by, which its ACK
 * and CANCEL share, instead of §17.2.3's full comparison. A server transaction the TU
 * leaves without a final response is answered 500 by a guard timer (INVITE: Timer C
 * + 64*T1, re-armed by each provisional; others: 128*T1) so that none lives for ever.
 *
 * A request answered 401 or 407 by edge_stx_reply (the TU's own digest challenge)
 * ends at once, without Timer J or G/H/I (§8.2.7: a UAS may answer statelessly): its
 * retransmission is a new request and gets a new challenge. Every To-tag the layer
 * makes starts with one of two random halves, one for these challenges and one for
 * its other responses: the ACK of such a 407 to an INVITE, matching no transaction,
 * is known by it and absorbed (acks_absorbed) instead of reaching on_stateless — over
 * UDP before any parsing (edge_txl_absorb). A forwarded challenge (edge_stx_send)
 * stays stateful.
 *
 * Cost: transactions sit in hash tables (chained, power-of-two buckets that double
 * with the load, seeded hash); every timer is an entry of one queue per duration
 * (O(1), txn_int.h) driving a single uv_timer_t, so a transaction costs no libuv
 * handle and a retransmission no allocation. After its final response a transaction keeps its key and the last
 * response, not the request (see edge_stx_msg, edge_ctx_msg).
 *
 * Lifetimes: stx and ctx are sk_mem objects. The layer holds one reference while the
 * transaction lives; the TU takes its own with sk_ref() to keep a pointer beyond a
 * callback. Each transaction holds a reference on the layer object, so a TU pointer
 * stays usable after edge_txl_close (calls then fail with SK_ECANCELED or do nothing).
 * Thread: the daemon's loop only. */
#ifndef SKEIN_EDGE_TXN_H
#define SKEIN_EDGE_TXN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <sofia-sip/msg.h>
#include "transport.h"

struct edge_txl;
struct edge_stx;
struct edge_ctx;
struct sk_metrics;

/* A new request that made a server transaction (not ACK, not CANCEL: the layer
 * answers CANCEL itself, §9.2: 200 and on_cancel when it matches an INVITE, else 481).
 * msg is owned by the stx (edge_stx_msg); rx is valid during the call only. Fires
 * from edge_txl_input(). An INVITE has been answered 100 Trying already. */
typedef void(edge_txl_request_cb)(struct edge_txl *l, struct edge_stx *stx, const struct edge_rx *rx,
				  void *arg);
/* A CANCEL matched a server INVITE transaction that has not sent a final response:
 * the layer has answered the CANCEL with 200 (§9.2); the TU cancels its branches and
 * answers the INVITE with 487. */
typedef void(edge_txl_cancel_cb)(struct edge_txl *l, struct edge_stx *invite, void *arg);
/* What matches no transaction: an ACK (for a 2xx: routed end to end, §16), a
 * response matching no client transaction (forward statelessly, §16.7 / RFC 6026).
 * The callee owns msg. */
typedef void(edge_txl_stateless_cb)(struct edge_txl *l, msg_t *msg, const struct edge_rx *rx,
				    void *arg);

struct edge_txl_opts {
	struct edge_tp *tp;
	uint32_t t1_ms;	     /* default 500 */
	uint32_t t2_ms;	     /* default 4000 */
	uint32_t t4_ms;	     /* default 5000 */
	uint64_t timer_c_ms; /* default 180000 (> 3 min, §16.6 item 11) */
	edge_txl_request_cb *on_request;
	edge_txl_cancel_cb *on_cancel;
	edge_txl_stateless_cb *on_stateless;
	void *arg;
	struct sk_metrics *metrics; /* may be NULL; must not be printed after the layer is freed */
	const char *metrics_prefix; /* "skein_edge" */
	const char *server;	    /* Server header of responses made here; NULL for none
				     * (borrowed: must outlive the layer) */
	const char *via_host;	    /* host in our Via (advertised address); NULL: the IP of
				     * the listener (edge_tp_local). Copied. */
	/* Client-transaction sends go through here when set (the core relays requests
	 * for flows another edge holds over the bus); NULL: edge_tp_send. */
	int (*send)(void *arg, enum edge_proto p, const struct edge_addr *dst, uint64_t flow,
		    const char *tls_name, const void *data, size_t len, uint64_t cookie);
	void *send_arg;
	/* Appended to every Via we add (e.g. ";sk-edge=\"n1/edge\"": responses that come
	 * up a flow on another edge find their way back); copied. NULL: nothing. */
	const char *via_param;
	bool tu_sends_trying;	    /* the TU answers every INVITE (100, a challenge, an
				     * error) within 200 ms: no automatic 100 Trying */
	bool symmetric;		    /* UDP responses always to the source address and port,
				     * with or without rport (NATed clients that do not ask
				     * for it; what Kamailio's force_rport does) */
};

int edge_txl_alloc(struct edge_txl **lp, uv_loop_t *loop, const struct edge_txl_opts *o);
/* Every transaction is terminated at once (no callbacks), timers closed; release with
 * sk_deref after the loop has run the close callbacks. */
void edge_txl_close(struct edge_txl *l);
/* The transport layer hands every received message here (from its on_msg; the edge
 * core filters verdicts first). Takes msg. on_request, on_cancel, on_stateless and
 * edge_ctx_cb fire from inside this call. */
void edge_txl_input(struct edge_txl *l, const struct edge_rx *rx, msg_t *msg);
/* The edge core calls this from its transport on_send_error callback with every
 * cookie; the layer takes those of its client transactions (top bit set, see
 * EDGE_TXL_COOKIE) and ignores the others. The ctx delivers 503 with err to its TU
 * (from inside this call) and terminates. */
#define EDGE_TXL_COOKIE (1ull << 63)
void edge_txl_send_error(struct edge_txl *l, uint64_t cookie, int err);
/* From the transport's on_flow_closed: client transactions bound to that flow that
 * have no final response yet get 503 (err SK_ECONNRESET) now instead of waiting for
 * Timer B/F. Costs a scan of the client transactions. */
void edge_txl_flow_closed(struct edge_txl *l, uint64_t flow);

/* ---- server transactions ---- */
/* The request, owned by the stx. Read it while holding a reference on the stx (in
 * on_request the layer holds one for the call). After the final response, once
 * nobody but the layer holds the stx (checked after the loop turn's callbacks), the
 * request is released and this returns NULL: a TU that still needs it after
 * answering keeps its reference (as a fork does until its branches are done). */
msg_t *edge_stx_msg(const struct edge_stx *stx);
/* Origin of the request (proto, src, local, flow; data is NULL). Released with the
 * request: the same rule as edge_stx_msg (NULL then). */
const struct edge_rx *edge_stx_rx(const struct edge_stx *stx);
bool edge_stx_is_invite(const struct edge_stx *stx);
/* The final status sent, 0 before. */
int edge_stx_status(const struct edge_stx *stx);
/* A TU pointer kept with the transaction (for on_cancel). */
void edge_stx_set_tu(struct edge_stx *stx, void *tu);
void *edge_stx_tu(const struct edge_stx *stx);
/* Our To tag for responses made here (the same for every response of the stx). */
const char *edge_stx_to_tag(const struct edge_stx *stx);

/* Answers with a response made from the request (§8.2.6: Via list, From, To with our
 * tag unless status is 100 or the To has a tag, Call-ID, CSeq), then extra_headers
 * (complete lines, each ending in CRLF; may be NULL), then the body (ctype NULL for
 * none). The reason NULL takes the standard phrase. A second final response is
 * refused (SK_EINVAL), except 2xx after 2xx for INVITE (SK_EINVAL too once the
 * request is released, see edge_stx_msg). A non-INVITE answered 401/407 here is
 * terminated inside the call (§8.2.7, above): the caller's reference keeps the stx
 * readable; later calls return SK_ECANCELED. */
/* Never calls back. Errors: SK_EINVAL (state, status), SK_ECANCELED (the stx was
 * terminated, e.g. by edge_txl_close or Timer L), SK_ENOMEM; a transport error is
 * returned after the state machine has moved (retransmissions may still recover). */
int edge_stx_reply(struct edge_stx *stx, int status, const char *reason, const char *extra_headers,
		   const char *ctype, const void *body, size_t body_len);
/* Sends a response the TU made (a forwarded one, our Via already removed): status
 * is its code, data its bytes. Same state rules as edge_stx_reply. */
int edge_stx_send(struct edge_stx *stx, int status, const void *data, size_t len);

/* ---- client transactions ---- */

/* Every response of a client transaction, with our Via already removed from resp
 * (borrowed; msg_dup it to keep it). status 408 with resp NULL: Timer B/F/C fired
 * (err SK_ETIMEDOUT); 503 with resp NULL: the transport failed (err names why). After
 * a final status no further call comes, except further 2xx of an INVITE (Accepted
 * state). Fires from edge_txl_input, from the layer's timer, and from
 * edge_txl_send_error / edge_txl_flow_closed; never from edge_ctx_start,
 * edge_ctx_cancel or edge_ctx_release. */
typedef void(edge_ctx_cb)(struct edge_ctx *ctx, int status, msg_t *resp, int err, void *arg);

/* Sends req (taken, also on error) as a new client transaction to dst over p (flow
 * != 0: down that connection; tls_name as edge_tp_send). The layer inserts the top
 * Via. *ctxp may be NULL when the caller does not keep it (the layer's reference
 * keeps it alive; the callbacks still fire); *ctxp is borrowed: sk_ref it to keep it
 * past the final callback. Returns 0, or an error now (cb does not fire):
 * SK_ENOTCONN (flow gone), SK_EINVAL (also: ACK, or no listener for p), SK_ENOMEM.
 * Over a stream without a flow, the ctx learns the connection from its first
 * response (ACK and CANCEL then follow on it, and edge_txl_flow_closed applies). */
int edge_ctx_start(struct edge_txl *l, struct edge_ctx **ctxp, msg_t *req, enum edge_proto p,
		   const struct edge_addr *dst, uint64_t flow, const char *tls_name, edge_ctx_cb *cb,
		   void *arg);
/* The same, with tag (up to EDGE_BRANCH_TAG_MAX hex digits) appended to the branch
 * after a '.': the proxy's loop-detection hash (RFC 3261 §16.6 item 8). */
#define EDGE_BRANCH_TAG_MAX 16
int edge_ctx_start_tagged(struct edge_txl *l, struct edge_ctx **ctxp, msg_t *req,
			  const char *tag, enum edge_proto p, const struct edge_addr *dst,
			  uint64_t flow, const char *tls_name, edge_ctx_cb *cb, void *arg);
/* CANCEL an INVITE ctx (§9.1); no-op after a final response or for non-INVITE. The
 * ctx then gets the 487 (or whatever final comes) through its callback as usual.
 * Never calls back. Timer C (§16.8) also sends a CANCEL when it fires after a
 * provisional: the TU then gets 408 at once, and later only 2xx (if one comes). */
void edge_ctx_cancel(struct edge_ctx *ctx);
/* The TU loses interest: no more callbacks; the ctx finishes its state machine by
 * itself (ACKs, absorbing retransmissions) and goes. */
void edge_ctx_release(struct edge_ctx *ctx);
/* The request as sent (with our Via); NULL after the final response (it is released
 * then, the ctx only absorbs retransmitted responses), except for extension methods. */
msg_t *edge_ctx_msg(const struct edge_ctx *ctx);

struct edge_txl_stats {
	uint64_t stx_total, ctx_total, retransmissions_absorbed, retransmissions_sent;
	uint64_t timeouts, stray_responses;
	uint64_t acks_absorbed; /* ACKs for challenges answered statelessly (no stx) */
	size_t stx_live, ctx_live;
	size_t stx_requests; /* server transactions still holding their request */
};
void edge_txl_stats(const struct edge_txl *l, struct edge_txl_stats *st);
/* A datagram that is the ACK of a challenge this layer answered statelessly, told by
 * its To-tag without parsing (sip_peek.h): counted (acks_absorbed) and true; the
 * caller drops it. false: parse it as any other message. */
bool edge_txl_absorb(struct edge_txl *l, const char *data, size_t len);
/* Transactions alive (drain waits for 0). */
size_t edge_txl_live(const struct edge_txl *l);
/* Server transactions that have not sent a final response yet: the work in hand
 * (overload shedding counts these; finished ones only absorb retransmissions). */
size_t edge_txl_pending(const struct edge_txl *l);

#endif
