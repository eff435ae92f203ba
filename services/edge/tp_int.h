/* tp_int: what the transport's files (tp_*.c) share — the transport and flow objects,
 * the flow table and the helpers each file offers the others. Not for outside use. */
#ifndef SKEIN_EDGE_TP_INT_H
#define SKEIN_EDGE_TP_INT_H
#include <openssl/ssl.h>
#include "tp_frame.h"
#include "transport.h"

enum {
	TP_RXBUF = 65536,	 /* UDP datagrams and TLS ciphertext reads */
	TP_STREAM_MIN = 8192,	 /* first size of a flow's receive buffer */
	TP_STREAM_SLACK = 1024,	 /* receive buffer cap: max_msg_size + this */
	TP_WQ_MAX = 1024 * 1024, /* bytes queued per flow before it is closed */
	TP_UDP_MAX = 65507,	 /* largest UDP payload over IPv4 */
	TP_WS_HEAD_MAX = 8192,	 /* WebSocket upgrade request head */
	TP_WS_CODES = 9,	 /* close codes counted apart (tp_ws.c), "other" last */
};

/* TLS under the stream (TLS, WSS); WebSocket framing over it (WS, WSS). */
static inline bool tp_is_tls(enum edge_proto p)
{
	return p == EDGE_PROTO_TLS || p == EDGE_PROTO_WSS;
}

static inline bool tp_is_ws(enum edge_proto p)
{
	return p == EDGE_PROTO_WS || p == EDGE_PROTO_WSS;
}

struct sk_counter;
struct sk_gauge;
struct tp_src;

struct edge_tp {
	uv_loop_t *loop;
	struct edge_tp_opts o;		/* strings not kept: see tp_core.c */
	uv_udp_t *udp;			/* each handle is allocated apart, holds a */
	uv_tcp_t *lsn[EDGE_PROTO_MAX_]; /* reference on tp, freed in its close cb */
	uv_tcp_t *spare;		/* to refuse a connection when out of memory */
	struct edge_addr laddr[EDGE_PROTO_MAX_];
	bool has[EDGE_PROTO_MAX_];
	SSL_CTX *srv_ctx, *cli_ctx;
	char *tls_ca;			   /* copied from the options */
	char *tls_cert, *tls_key;	   /* copied: edge_tp_reload_tls(NULL...) */
	char *ws_origins;		   /* copied; NULL: any Origin */
	struct tp_flow **by_id, **by_addr; /* flow table: two chained hashes */
	size_t nbuckets, nflows;
	size_t nshed;	     /* flows open over a cap (shed), in nflows */
	struct tp_src **src; /* inbound flows per source IP (tp_src.c) */
	size_t nsrcb, nsrc;
	struct edge_tp_stats st;
	struct {
		struct sk_counter *rx[EDGE_PROTO_MAX_], *tx[EDGE_PROTO_MAX_];
		struct sk_counter *refused, *tls_fail, *keepalives, *dropped;
		struct sk_counter *shed, *banned, *slow, *rx_banned, *udp_calls;
		struct sk_gauge *conns;
		struct sk_counter *ws_ok, *ws_rejected, *ws_close[TP_WS_CODES];
	} m;
	bool closing;
	char rxbuf[TP_RXBUF]; /* shared: filled and consumed within one read callback */
	char *udp_rxbuf;      /* tp_udp.c: TP_UDP_MMSG datagrams of 64 KiB per recvmmsg */
	struct tp_udp_out *udp_out; /* tp_udp.c: datagrams held for one sendmmsg */
};

enum flow_state {
	F_CONNECTING, /* outbound TCP connect in progress */
	F_HANDSHAKE,  /* TLS handshake in progress */
	F_UP,
	F_CLOSED, /* out of the table, handles closing */
};

/* A send that waits for the connection (or the handshake): a copy of the bytes. */
struct tp_pend {
	struct tp_pend *next;
	uint64_t cookie;
	size_t len;
	char data[];
};

/* References on a flow: the table's (until flow_close), one per handle (until its
 * close callback), one per write or connect request in flight. */
struct tp_flow {
	struct tp_flow *id_next, *addr_next;
	struct edge_tp *tp; /* reference */
	uint64_t id;
	enum edge_proto proto;
	enum flow_state state;
	bool outbound;
	bool rx_broken;	  /* framing lost (400/513): input is discarded */
	bool draining;	  /* edge_tp_flow_close: closes once the write queue is empty */
	bool shed;	  /* accepted over a cap: its first message gets 503 (transport.h) */
	bool src_counted; /* counted in the per-source table (tp_src.c) */
	int err;	  /* why it closed: reported with pending sends */
	struct edge_addr remote, local;
	uv_tcp_t *tcp;
	uv_timer_t *timer; /* connect/handshake timeout, then idle timeout */
	uv_shutdown_t sreq;
	uint64_t last_io;   /* uv_now() of the last read or write */
	uint64_t slow_at;   /* uv_now() by which what is begun must be done, 0: none */
	uint64_t shed_at;   /* a shed flow closes then whatever happens */
	uint64_t rx_msgs;   /* messages (and keep-alives) read whole: progress */
	uint64_t slow_msgs; /* rx_msgs when slow_at was set */
	char *buf;	    /* received plaintext: [0, len) buffered */
	size_t len, cap;
	struct tp_sframe sf; /* framing progress of the message at buf[0] (tp_stream.c) */
	struct tp_pend *pend, **pend_tail;
	size_t queued; /* bytes pending + in uv write requests */
	SSL *ssl;
	BIO *rbio, *wbio;
	char *tls_name;	  /* outbound: the name verified (NULL: none) */
	struct tp_ws *ws; /* WS/WSS: the WebSocket layer's state (tp_ws.c) */
};

enum ws_state {
	WS_HTTP,    /* reading the upgrade request */
	WS_OPEN,    /* frames */
	WS_CLOSING, /* close frame sent (or the upgrade refused): nothing more */
};

/* A WebSocket connection: the frame decoder (tp_frame.h) and the close handshake
 * (RFC 6455 §5.5.1). */
struct tp_ws {
	enum ws_state state;
	size_t scan;	     /* WS_HTTP: the head was searched up to here */
	struct tp_wsdec dec; /* WS_OPEN: frames and the message being reassembled */
	int last_status;     /* verdict of the last SIP message delivered */
	bool close_sent;
};

/* tp_core.c */
void tp_count(struct edge_tp *tp, struct sk_counter *c, uint64_t *stat);
#define TP_COUNT(tp, field, stat) tp_count((tp), (tp)->m.field, &(tp)->st.stat)
void tp_send_error(struct edge_tp *tp, uint64_t cookie, int err);
int tp_flow_add(struct edge_tp *tp, struct tp_flow *f);
void tp_flow_remove(struct edge_tp *tp, struct tp_flow *f);
struct tp_flow *tp_flow_find(const struct edge_tp *tp, uint64_t id);
struct tp_flow *tp_flow_by_addr(const struct edge_tp *tp, enum edge_proto p,
				const struct edge_addr *a, const char *tls_name);
uint64_t tp_flow_next_id(void);
/* Named uv error text for logs. */
const char *tp_strerror(int err);

/* tp_src.c: inbound connections per source IP */
size_t tp_src_count(const struct edge_tp *tp, const struct edge_addr *a);
int tp_src_add(struct edge_tp *tp, const struct edge_addr *a);
void tp_src_del(struct edge_tp *tp, const struct edge_addr *a);
void tp_src_free(struct edge_tp *tp);

/* tp_udp.c */
int tp_udp_open(struct edge_tp *tp, const char *addr);
int tp_udp_send(struct edge_tp *tp, const struct edge_addr *dst, const void *data, size_t len,
		uint64_t cookie);
void tp_udp_close(struct edge_tp *tp);

/* tp_stream.c */
int tp_stream_listen(struct edge_tp *tp, enum edge_proto p, const char *addr);
void tp_stream_unlisten(struct edge_tp *tp, enum edge_proto p);
int tp_stream_send(struct edge_tp *tp, enum edge_proto p, const struct edge_addr *dst,
		   uint64_t flow, const char *tls_name, const void *data, size_t len,
		   uint64_t cookie);
/* Closes the flow's handles; pending sends are reported (err) from the close callback,
 * then on_flow_closed. Safe to call twice and from inside any callback. */
void tp_flow_close(struct tp_flow *f, int err);
/* Stops reading, sends what is queued (TLS: then close_notify) and closes; bounded by
 * connect_timeout_ms. The flow leaves the table at once. */
void tp_flow_drain(struct tp_flow *f);
/* Writes bytes (ciphertext for TLS) now, or queues a copy; 0 or an error. */
int tp_flow_write(struct tp_flow *f, const void *data, size_t len, uint64_t cookie);
/* Plaintext onto the byte stream of a flow that is up: through TLS for TLS/WSS. */
int tp_flow_put(struct tp_flow *f, const void *data, size_t len, uint64_t cookie);
/* A shed flow's first message (transport.h, Limits): a request gets the verdict 503
 * (*msg freed), nothing after it is read; anything else is dropped and the flow
 * drains. true when there is nothing to deliver. */
bool tp_shed_verdict(struct tp_flow *f, struct edge_verdict *v, msg_t **msg);
/* The connection (and handshake) is up: pending sends go out. */
void tp_flow_up(struct tp_flow *f);
/* Frames and delivers what is buffered in f->buf. */
void tp_flow_parse(struct tp_flow *f);
/* Makes room in f->buf for more bytes; the free space (0 when full). */
size_t tp_flow_space(struct tp_flow *f);
/* Input was read and parsed: starts or ends the slow_timeout_ms deadline of what is
 * begun (a message, a TLS record, the WebSocket upgrade). */
void tp_flow_progress(struct tp_flow *f);

/* tp_tls.c */
int tp_tls_init_server(struct edge_tp *tp);
void tp_tls_free(struct edge_tp *tp);
/* Starts the handshake of a connected flow (server side when !f->outbound). */
int tp_tls_start(struct tp_flow *f);
/* Ciphertext arrived. */
void tp_tls_input(struct tp_flow *f, const char *data, size_t len);
/* Encrypts and writes one message. */
int tp_tls_send(struct tp_flow *f, const void *data, size_t len, uint64_t cookie);
void tp_tls_flow_free(struct tp_flow *f);
/* Queues close_notify (RFC 8446 §6.1) on a flow that is up. */
void tp_tls_shutdown(struct tp_flow *f);
/* Ciphertext of a record begun but not whole (slow senders). */
bool tp_tls_pending(const struct tp_flow *f);

/* tp_ws.c: WebSocket framing (RFC 6455 §5) on WS/WSS flows */
int tp_ws_flow_init(struct tp_flow *f);
void tp_ws_flow_free(struct tp_flow *f);
/* The upgrade is done (frames flow). */
bool tp_ws_open(const struct tp_flow *f);
/* Consumes what is buffered in f->buf: the upgrade request, then frames. */
void tp_ws_parse(struct tp_flow *f);
/* One SIP message as one frame; SK_ENOTCONN before the upgrade or after a close. */
int tp_ws_send(struct tp_flow *f, const void *data, size_t len, uint64_t cookie);
/* Sends the close frame (1000, or 1002/1009 after a 400/513 verdict) if none was;
 * called by tp_flow_drain before the stream is shut down. */
void tp_ws_shutdown(struct tp_flow *f);
/* The transport closes: a close frame 1001 (RFC 6455 §7.4.1) before the hard close. */
void tp_ws_going_away(struct tp_flow *f);
void tp_ws_metrics(struct edge_tp *tp, struct sk_metrics *m, const char *prefix);

/* tp_ws_http.c: the opening handshake (RFC 6455 §4.2, RFC 7118 §4.1) */
/* Reads the upgrade request at f->buf[0]: > 0 the bytes of it once the connection is
 * upgraded (101 sent), 0 while it is incomplete, < 0 when it was refused (answered;
 * the flow drains). */
long tp_ws_handshake(struct tp_flow *f);
/* Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2 item 5.4): base64(SHA-1(key ||
 * GUID)), 28 characters and a NUL into out. */
void tp_ws_accept_key(const char *key, size_t len, char out[29]);

#endif
