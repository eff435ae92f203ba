/* transport: the edge's SIP transports on the daemon's libuv loop — UDP, TCP and TLS
 * (OpenSSL, TLS 1.2 minimum) listeners, inbound and outbound connections ("flows"), and
 * WebSocket (WS, and WSS over TLS) listeners for browser clients (RFC 7118, RFC 6455).
 *
 * Receiving: every datagram, and every message framed out of a stream (Content-Length,
 * RFC 3261 §18.3), goes through edge_sip_check() and is handed to on_msg with its
 * verdict and origin. The transport never answers SIP itself: the edge core builds
 * error responses (it has the verdict) and sends them with edge_tp_send(). After a
 * stream verdict of 400/513 the framing is lost: the core answers and then calls
 * edge_tp_flow_close().
 *
 * CRLF keep-alives (RFC 5626 §4.4.1): a double CRLF on a stream is answered with a
 * single CRLF; a lone CRLF between messages is skipped.
 *
 * Flows: each TCP/TLS connection has a flow id (uint64, never reused during the
 * process life, never 0). A response or a request for a binding that arrived on a
 * flow is sent back down the same flow. Sending to a TCP/TLS address with no flow id
 * reuses a live connection to that address, else connects (data is queued until the
 * connection is up; a failure is reported through on_send_error with the caller's
 * cookie, at most once per send).
 *
 * WebSocket (RFC 7118): the edge is only the server. A WS/WSS connection is a flow like
 * a TCP one once the HTTP upgrade succeeded (RFC 6455 §4.2; subprotocol "sip", RFC 7118
 * §4.1; Origin checked against ws_origins); a refused upgrade is answered (400, 403,
 * 426) and the connection closed. Each WebSocket message, text or binary (RFC 7118
 * §4.2), is exactly one SIP message (§5.1): it is checked with EDGE_UDP semantics (the
 * message ends where the WebSocket message ends; Content-Length optional, a body
 * shorter than it announces is a 400) and reaches on_msg like a TCP one (rx.proto
 * WS/WSS, rx.flow set). A verdict of 400/513 does not break the framing here; the
 * core may still close the flow, and edge_tp_flow_close sends a close frame first
 * (1002 after a 400, 1009 after a 513, else 1000). Sending needs the flow (flow 0:
 * SK_ENOTSUP) and writes one unmasked frame per message: text, or binary when the
 * message is not UTF-8 (RFC 7118 §4.2). Ping is answered with pong, close is echoed
 * and the connection closed; a WebSocket message of exactly CRLFCRLF (RFC 5626 keep-
 * alive, used by SIP.js) gets a message of one CRLF. Protocol errors close with 1002,
 * a frame above ws_max_frame or a message above max_msg_size with 1009, a text
 * message that is not UTF-8 with 1007 (RFC 6455 §7.4.1, §8.1).
 *
 * Limits: max_msg_size (513 from edge_sip_check above it), per-connection receive
 * buffer capped at max_msg_size, idle connections closed after idle_timeout_ms.
 * Slow senders (slowloris): a message begun on a stream must be complete within
 * slow_timeout_ms, a TLS handshake and a WebSocket upgrade (which must fit in 8 KiB)
 * done within it, else the connection is closed (counted). Connection caps:
 * max_conns in total, max_conns_per_source from one IP address. A connection over a
 * cap is still accepted while fewer than EDGE_TP_SHED_SLOTS such connections are
 * open: its first SIP message reaches on_msg with msg NULL and the verdict 503
 * "Service Unavailable (too many connections)" (the core answers 503 + Retry-After
 * and closes the flow), and it is closed after slow_timeout_ms whatever happens (a
 * first message that is not a request is dropped and the connection closed: there is
 * nothing to answer); beyond those slots it is closed (reset) at accept. Both counted
 * (edge_tp_stats).
 *
 * Admission: when admit is set it is asked for every UDP datagram and every accepted
 * connection before anything is parsed; false drops the datagram or closes the
 * connection at once, silently (counted as refused) — banned sources cost nothing.
 *
 * TLS certificates: edge_tp_reload_tls() re-reads the certificate, key and CA files
 * (SIGHUP): new handshakes use them, established connections keep theirs.
 *
 * Thread: the daemon's loop only. Callbacks fire from the loop. */
#ifndef SKEIN_EDGE_TRANSPORT_H
#define SKEIN_EDGE_TRANSPORT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>
#include <sofia-sip/msg.h>
#include "sip_check.h"

struct edge_tp;
struct sk_metrics;

enum edge_proto {
	EDGE_PROTO_UDP,
	EDGE_PROTO_TCP,
	EDGE_PROTO_TLS,
	EDGE_PROTO_WS,	/* RFC 7118: SIP over WebSocket, server side only */
	EDGE_PROTO_WSS, /* the same over TLS */
	EDGE_PROTO_MAX_,
};
/* "udp", "tcp", "tls", "ws", "wss" (lower case, for transport= and logs); "UDP"...
 * "WS", "WSS" for Via (RFC 7118 §5.2.1). */
const char *edge_proto_name(enum edge_proto p);
const char *edge_proto_via(enum edge_proto p);
/* From "udp"/"UDP"/"tcp"/"tls"/"ws"/"wss" (any case); SK_EINVAL otherwise. */
int edge_proto_parse(const char *s, enum edge_proto *p);

/* A socket address of either family. */
struct edge_addr {
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct sockaddr_storage ss;
	} u;
};
/* "127.0.0.1:5060" or "[::1]:5060" into buf (at least 48 bytes). */
const char *edge_addr_str(const struct edge_addr *a, char *buf, size_t size);
/* IP text only ("127.0.0.1", "::1"), for received=. */
const char *edge_addr_ip(const struct edge_addr *a, char *buf, size_t size);
uint16_t edge_addr_port(const struct edge_addr *a);
/* Parses "ip:port" / "[ip6]:port" (no names); SK_EINVAL otherwise. */
int edge_addr_parse(struct edge_addr *a, const char *s);
bool edge_addr_eq(const struct edge_addr *a, const struct edge_addr *b);

/* Where a message came from. */
struct edge_rx {
	enum edge_proto proto;
	struct edge_addr src;	  /* remote address */
	struct edge_addr local;	  /* our listening address it arrived on */
	uint64_t flow;		  /* connection id; 0 for UDP */
	const char *data;	  /* the message bytes (consumed part), valid during on_msg */
	size_t len;
	struct edge_verdict verdict; /* from edge_sip_check() */
	uint64_t arrived_ns;	  /* uv_hrtime() when the bytes were read */
};

/* A message (or a rejected one): msg is the parsed message when the verdict accepted
 * it (the callee owns it then and must msg_destroy() it), NULL otherwise. */
typedef void(edge_tp_msg_cb)(struct edge_tp *tp, const struct edge_rx *rx, msg_t *msg,
			     void *arg);
/* A send given a cookie failed asynchronously (connect refused or timed out, TLS
 * handshake failed, connection lost before the bytes were written). err is a
 * negative SK_E* code. */
typedef void(edge_tp_send_error_cb)(struct edge_tp *tp, uint64_t cookie, int err, void *arg);
/* A flow closed (by the peer, an error, idle timeout or edge_tp_flow_close). */
typedef void(edge_tp_flow_closed_cb)(struct edge_tp *tp, uint64_t flow, void *arg);

/* Connections above a cap kept open just long enough to answer 503 (see Limits). */
#define EDGE_TP_SHED_SLOTS 64

/* Is this source let in at all (ban list)? Asked before parsing; see Admission. */
typedef bool(edge_tp_admit_cb)(const struct edge_addr *src, enum edge_proto p, void *arg);
/* Does a datagram need nothing more? Asked over UDP after admission, before parsing:
 * true drops it there, counted as received (the ACK of a stateless challenge,
 * txn.h edge_txl_absorb). */
typedef bool(edge_tp_absorb_cb)(const char *data, size_t len, void *arg);

struct edge_tp_opts {
	const char *udp;	 /* "127.0.0.1:5060" or "" for none */
	const char *tcp;
	const char *tls;
	const char *ws;		 /* WebSocket listeners (RFC 7118), "" for none */
	const char *wss;	 /* over TLS: uses tls_cert and tls_key */
	const char *ws_origins;	 /* allowed Origin values, comma-separated; "" or NULL:
				  * any. A request without Origin (not a browser) passes */
	size_t ws_max_frame;	 /* largest frame payload, default 65535 (1009 above) */
	const char *tls_cert;	 /* PEM files; required when tls or wss is set */
	const char *tls_key;
	const char *tls_ca;	 /* CA file for outbound verification; "" = system */
	size_t max_msg_size;	 /* default 65535; over WS: the reassembled message */
	uint64_t idle_timeout_ms; /* default 600000 (0 = default) */
	uint64_t connect_timeout_ms; /* default 5000 */
	size_t max_conns;	 /* default 10000 */
	size_t max_conns_per_source; /* default 256 */
	uint64_t slow_timeout_ms; /* default 10000 */
	edge_tp_admit_cb *admit; /* may be NULL: everyone is admitted */
	edge_tp_absorb_cb *absorb; /* may be NULL */
	edge_tp_msg_cb *on_msg;
	edge_tp_send_error_cb *on_send_error; /* may be NULL */
	edge_tp_flow_closed_cb *on_flow_closed; /* may be NULL */
	void *arg;
	struct sk_metrics *metrics; /* may be NULL */
	const char *metrics_prefix; /* "skein_edge" */
};

/* Binds the listeners (an error names the address at fault through the log and
 * returns SK_EADDRINUSE, SK_EINVAL, SK_ETLS...). */
int edge_tp_alloc(struct edge_tp **tpp, uv_loop_t *loop, const struct edge_tp_opts *o);
/* Stops listening, closes every connection (WS/WSS: after a close frame 1001, best
 * effort); handles close on the loop; the object is freed when they have (sk_deref by
 * the caller after close). */
void edge_tp_close(struct edge_tp *tp);
/* Re-reads the TLS certificate, key and CA files (NULL: the same paths as before).
 * New handshakes use the new ones, live connections keep theirs. On any error
 * (logged, naming the file) nothing changes and SK_ETLS/SK_EINVAL is returned. */
int edge_tp_reload_tls(struct edge_tp *tp, const char *cert, const char *key, const char *ca);
/* Stop accepting new connections (drain); existing flows stay. */
void edge_tp_stop_accepting(struct edge_tp *tp);

/* The address a listener is bound to (port 0 in the config resolves here); false if
 * that transport is not configured. */
bool edge_tp_local(const struct edge_tp *tp, enum edge_proto p, struct edge_addr *out);

/* Sends one message. flow != 0: on that connection (SK_ENOTCONN at once when it is
 * gone — the caller answers 430/480; over WS/WSS one frame). flow == 0: UDP from the
 * UDP listener, or a TCP/TLS connection to dst (reused or new); WS/WSS: SK_ENOTSUP
 * (the edge never connects out over WebSocket). For TLS, tls_name is the name to verify
 * (RFC 5922; NULL: no verification — only for addresses given as IP literals in
 * config). cookie identifies the send in on_send_error (0: not reported). Returns 0
 * when queued, or an error now (SK_ENOTCONN, SK_EINVAL, SK_ENOMEM, SK_EMSGSIZE for a
 * UDP datagram above 65507 bytes). */
int edge_tp_send(struct edge_tp *tp, enum edge_proto p, const struct edge_addr *dst,
		 uint64_t flow, const char *tls_name, const void *data, size_t len,
		 uint64_t cookie);
/* The proto and remote address of a live flow; false when it is gone. */
bool edge_tp_flow_info(const struct edge_tp *tp, uint64_t flow, enum edge_proto *p,
		       struct edge_addr *remote);
/* Closes a flow gracefully: it is gone for edge_tp_send/edge_tp_flow_info at once, what
 * is queued is still written (WS: then a close frame, RFC 6455 §5.5.1; TLS: then
 * close_notify), FIN is sent and input is
 * discarded until the peer closes (at most connect_timeout_ms); on_flow_closed fires
 * then, never from inside this call. */
void edge_tp_flow_close(struct edge_tp *tp, uint64_t flow);

struct edge_tp_stats {
	uint64_t rx_msgs[EDGE_PROTO_MAX_], tx_msgs[EDGE_PROTO_MAX_];
	uint64_t conns_open, conns_total, conns_refused, tls_handshake_failures;
	uint64_t conns_shed;   /* over a cap, answered 503 then closed */
	uint64_t conns_banned; /* closed at accept by admit */
	uint64_t slow_closed;  /* closed by slow_timeout_ms */
	uint64_t rx_banned;    /* UDP datagrams dropped by admit */
	uint64_t rx_dropped, keepalives;
	uint64_t udp_send_calls; /* sendmmsg/sendmsg calls that sent UDP datagrams */
	uint64_t ws_upgrades, ws_rejected; /* WebSocket handshakes */
};
void edge_tp_stats(const struct edge_tp *tp, struct edge_tp_stats *st);
/* Connections open now (drain and metrics). */
size_t edge_tp_conns(const struct edge_tp *tp);

#endif
