/* tp_stream: TCP (and the socket side of TLS, WS and WSS) — listeners, accepted and
 * outbound connections ("flows"), Content-Length framing, CRLF keep-alives, write
 * queues and timeouts. WebSocket framing sits on top in tp_ws.c. */
#include <string.h>
#include <strings.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "tp_int.h"

SK_LOG_MODULE("edge.tp");

struct wreq {
	uv_write_t req;
	struct tp_flow *f; /* reference */
	uint64_t cookie;
	size_t len;
	char data[];
};

static void handle_close_cb(uv_handle_t *h)
{
	void *owner = h->data;

	sk_deref(h);
	sk_deref(owner);
}

static void flow_destroy(void *data)
{
	struct tp_flow *f = data;

	while (f->pend) {
		struct tp_pend *pd = f->pend;

		f->pend = pd->next;
		sk_deref(pd);
	}
	tp_tls_flow_free(f);
	tp_ws_flow_free(f);
	sk_deref(f->buf);
	sk_deref(f->tls_name);
	sk_deref(f->tp);
}

static const char *flow_str(const struct tp_flow *f, char *buf, size_t size)
{
	char a[64];

	snprintf(buf, size, "%s flow %llu %s %s", edge_proto_name(f->proto),
		 (unsigned long long)f->id, f->outbound ? "to" : "from",
		 edge_addr_str(&f->remote, a, sizeof(a)));
	return buf;
}

/* The last handle of a flow to close: what was queued and never sent is reported,
 * then the flow's end. */
static void tcp_close_cb(uv_handle_t *h)
{
	struct tp_flow *f = h->data;
	struct edge_tp *tp = f->tp;

	while (f->pend) {
		struct tp_pend *pd = f->pend;

		f->pend = pd->next;
		tp_send_error(tp, pd->cookie, f->err);
		sk_deref(pd);
	}
	if (f->id && !tp->closing && tp->o.on_flow_closed)
		tp->o.on_flow_closed(tp, f->id, tp->o.arg);
	sk_deref(h);
	sk_deref(f);
}

static void flow_close(struct tp_flow *f, int err, bool reset)
{
	if (f->state == F_CLOSED)
		return;
	f->state = F_CLOSED;
	f->err = err;
	if (f->id)
		tp_flow_remove(f->tp, f);
	uv_close((uv_handle_t *)f->timer, handle_close_cb);
	/* A reset leaves no TIME_WAIT here: for connections turned away at accept. */
	if (!reset || uv_tcp_close_reset(f->tcp, tcp_close_cb))
		uv_close((uv_handle_t *)f->tcp, tcp_close_cb);
}

void tp_flow_close(struct tp_flow *f, int err)
{
	flow_close(f, err, false);
}

/* A new flow with its two handles; the caller holds the one reference returned.
 * id 0 until it enters the table. */
static struct tp_flow *flow_new(struct edge_tp *tp, enum edge_proto p)
{
	struct tp_flow *f = sk_zalloc(sizeof(*f), flow_destroy);

	if (!f)
		return NULL;
	f->tp = sk_ref(tp);
	f->proto = p;
	f->pend_tail = &f->pend;
	f->tcp = sk_zalloc(sizeof(*f->tcp), NULL);
	f->timer = sk_zalloc(sizeof(*f->timer), NULL);
	if (!f->tcp || !f->timer || (tp_is_ws(p) && tp_ws_flow_init(f))) {
		sk_deref(f->tcp);
		sk_deref(f->timer);
		return sk_deref(f);
	}
	uv_tcp_init(tp->loop, f->tcp);
	uv_timer_init(tp->loop, f->timer);
	f->tcp->data = sk_ref(f);
	f->timer->data = sk_ref(f);
	f->last_io = uv_now(tp->loop);
	return f;
}

static int flow_list(struct tp_flow *f)
{
	uint64_t id = tp_flow_next_id();
	int err;

	f->id = id;
	err = tp_flow_add(f->tp, f);
	if (err)
		f->id = 0; /* id 0: not in the table, never announced */
	return err;
}

/* ---- writing ---- */

static void wreq_destroy(void *data)
{
	sk_deref(((struct wreq *)data)->f);
}

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = req->data;
	struct tp_flow *f = w->f;

	f->queued -= w->len;
	if (status < 0) {
		/* Cancelled by a close, or the connection failed under it. */
		tp_send_error(f->tp, w->cookie, status == UV_ECANCELED ? SK_ECONNRESET : status);
		tp_flow_close(f, status == UV_ECANCELED ? SK_ECONNRESET : status);
	}
	sk_deref(w);
}

int tp_flow_write(struct tp_flow *f, const void *data, size_t len, uint64_t cookie)
{
	const char *p = data;
	struct wreq *w;
	uv_buf_t b;
	char s[96];
	int n;

	if (f->state == F_CLOSED)
		return SK_ENOTCONN;
	f->last_io = uv_now(f->tp->loop);
	/* Nothing queued: straight to the socket, no copy. */
	if (!f->queued) {
		b = uv_buf_init((char *)p, (unsigned)len);
		n = uv_try_write((uv_stream_t *)f->tcp, &b, 1);
		if (n == (int)len)
			return 0;
		if (n < 0 && n != UV_EAGAIN) {
			SK_DEBUG("%s: write: %s", flow_str(f, s, sizeof(s)), uv_strerror(n));
			tp_flow_close(f, n);
			return SK_ENOTCONN;
		}
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		}
	}
	if (f->queued + len > TP_WQ_MAX) {
		SK_WARN("%s: more than %d bytes queued, closing", flow_str(f, s, sizeof(s)),
			TP_WQ_MAX);
		tp_flow_close(f, SK_ECONNRESET);
		return SK_ENOMEM;
	}
	w = sk_zalloc(sizeof(*w) + len, wreq_destroy);
	if (!w)
		return SK_ENOMEM;
	memcpy(w->data, p, len);
	w->req.data = w;
	w->cookie = cookie;
	w->len = len;
	b = uv_buf_init(w->data, (unsigned)len);
	n = uv_write(&w->req, (uv_stream_t *)f->tcp, &b, 1, on_write);
	if (n) {
		sk_deref(w);
		tp_flow_close(f, n);
		return SK_ENOTCONN;
	}
	w->f = sk_ref(f);
	f->queued += len;
	return 0;
}

int tp_flow_put(struct tp_flow *f, const void *data, size_t len, uint64_t cookie)
{
	return tp_is_tls(f->proto) ? tp_tls_send(f, data, len, cookie)
				   : tp_flow_write(f, data, len, cookie);
}

/* A SIP message to a flow that is up. */
static int flow_send_now(struct tp_flow *f, const void *data, size_t len, uint64_t cookie)
{
	return f->ws ? tp_ws_send(f, data, len, cookie) : tp_flow_put(f, data, len, cookie);
}

static int flow_send(struct tp_flow *f, const void *data, size_t len, uint64_t cookie)
{
	struct tp_pend *pd;

	if (f->state == F_UP)
		return flow_send_now(f, data, len, cookie);
	if (f->state == F_CLOSED)
		return SK_ENOTCONN;
	if (f->queued + len > TP_WQ_MAX)
		return SK_ENOMEM;
	pd = sk_zalloc(sizeof(*pd) + len, NULL);
	if (!pd)
		return SK_ENOMEM;
	memcpy(pd->data, data, len);
	pd->len = len;
	pd->cookie = cookie;
	*f->pend_tail = pd;
	f->pend_tail = &pd->next;
	f->queued += len;
	return 0;
}

/* ---- timers ---- */

/* Why one timer per flow and no more: every deadline of a flow (idle, slow sender,
 * shed) is a field; the timer is armed for the earliest and on_timer sorts out which
 * one it was, re-arming for the next. Reads and writes only stamp last_io. */
static void on_timer(uv_timer_t *t);

static void flow_arm(struct tp_flow *f)
{
	struct edge_tp *tp = f->tp;
	uint64_t now = uv_now(tp->loop), next = f->last_io + tp->o.idle_timeout_ms;

	if (f->slow_at && f->slow_at < next)
		next = f->slow_at;
	if (f->shed && f->shed_at < next)
		next = f->shed_at;
	uv_timer_start(f->timer, on_timer, next > now ? next - now : 0, 0);
}

/* What did not come in time: a TLS handshake, a WebSocket upgrade or a message. */
static void slow_close(struct tp_flow *f)
{
	struct edge_tp *tp = f->tp;
	char s[96];

	TP_COUNT(tp, slow, slow_closed);
	if (f->state == F_HANDSHAKE) {
		SK_INFO("%s: TLS handshake not done within %llu ms, closing",
			flow_str(f, s, sizeof(s)), (unsigned long long)tp->o.slow_timeout_ms);
		TP_COUNT(tp, tls_fail, tls_handshake_failures);
	} else if (f->ws && !tp_ws_open(f)) {
		SK_INFO("%s: WebSocket upgrade not done within %llu ms, closing",
			flow_str(f, s, sizeof(s)), (unsigned long long)tp->o.slow_timeout_ms);
		TP_COUNT(tp, ws_rejected, ws_rejected);
	} else {
		SK_INFO("%s: message begun and not complete within %llu ms, closing",
			flow_str(f, s, sizeof(s)), (unsigned long long)tp->o.slow_timeout_ms);
	}
	tp_flow_close(f, SK_ETIMEDOUT);
}

static void on_timer(uv_timer_t *t)
{
	struct tp_flow *f = t->data;
	struct edge_tp *tp = f->tp;
	uint64_t now = uv_now(tp->loop);
	char s[96];

	if (f->draining) {
		tp_flow_close(f, SK_ECANCELED);
	} else if (f->state == F_CONNECTING || (f->state == F_HANDSHAKE && f->outbound)) {
		SK_WARN("%s: %s timed out", flow_str(f, s, sizeof(s)),
			f->state == F_CONNECTING ? "connect" : "TLS handshake");
		if (f->state == F_HANDSHAKE)
			TP_COUNT(tp, tls_fail, tls_handshake_failures);
		tp_flow_close(f, SK_ETIMEDOUT);
	} else if (f->shed && now >= f->shed_at) {
		SK_DEBUG("%s: over a connection cap, closing", flow_str(f, s, sizeof(s)));
		tp_flow_close(f, SK_ETIMEDOUT);
	} else if (f->slow_at && now >= f->slow_at) {
		slow_close(f);
	} else if (now - f->last_io >= tp->o.idle_timeout_ms) {
		SK_DEBUG("%s: idle, closing", flow_str(f, s, sizeof(s)));
		tp_flow_close(f, SK_ETIMEDOUT);
	} else {
		flow_arm(f);
	}
}

/* Why the deadline is kept while the same thing is still begun and restarts once a
 * message was read whole: a peer may send one byte every few seconds to keep a
 * connection and its buffer (slowloris); the idle timeout never fires for it. */
void tp_flow_progress(struct tp_flow *f)
{
	struct edge_tp *tp = f->tp;
	bool partial;

	if (f->state != F_UP || f->draining)
		return;
	partial = f->len || (tp_is_tls(f->proto) && tp_tls_pending(f)) ||
		  (f->ws && (!tp_ws_open(f) || tp_wsdec_partial(&f->ws->dec)));
	if (!partial) {
		f->slow_at = 0; /* the timer finds nothing due and re-arms for idle */
		return;
	}
	if (f->slow_at && f->rx_msgs == f->slow_msgs)
		return;
	f->slow_at = uv_now(tp->loop) + tp->o.slow_timeout_ms;
	f->slow_msgs = f->rx_msgs;
	if (uv_timer_get_due_in(f->timer) > tp->o.slow_timeout_ms ||
	    !uv_is_active((uv_handle_t *)f->timer))
		flow_arm(f);
}

void tp_flow_up(struct tp_flow *f)
{
	struct tp_pend *pd;
	int err;

	f->state = F_UP;
	f->last_io = uv_now(f->tp->loop);
	/* WS: first the upgrade, bounded like a slow message; then idle. */
	f->slow_at = f->ws ? f->last_io + f->tp->o.slow_timeout_ms : 0;
	flow_arm(f);
	while (f->state == F_UP && (pd = f->pend)) {
		f->pend = pd->next;
		if (!f->pend)
			f->pend_tail = &f->pend;
		f->queued -= pd->len;
		err = flow_send_now(f, pd->data, pd->len, pd->cookie);
		if (err)
			tp_send_error(f->tp, pd->cookie, err);
		sk_deref(pd);
	}
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct tp_flow *f = req->data;

	if (status < 0)
		tp_flow_close(f, SK_ECONNRESET);
	sk_deref(f);
}

/* Why not just close: the core closes right after queueing its last response (a
 * 400/513 on a broken stream), and closing a socket with unread input sends a reset
 * that can destroy that response in the peer's receive queue. So the queue drains,
 * FIN goes out (uv_shutdown waits for the writes), and input is read and discarded
 * until the peer closes or connect_timeout_ms passes ("lingering close"). */
void tp_flow_drain(struct tp_flow *f)
{
	if (f->state == F_CLOSED || f->draining)
		return;
	if (f->state != F_UP) {
		tp_flow_close(f, SK_ECANCELED);
		return;
	}
	f->draining = true;
	f->rx_broken = true; /* tp_flow_parse() empties the buffer */
	if (f->ws)
		tp_ws_shutdown(f); /* the close frame goes before close_notify and FIN */
	if (tp_is_tls(f->proto) && f->state == F_UP)
		tp_tls_shutdown(f);
	if (f->state == F_CLOSED)
		return;
	uv_timer_start(f->timer, on_timer, f->tp->o.connect_timeout_ms, 0);
	f->sreq.data = sk_ref(f);
	if (uv_shutdown(&f->sreq, (uv_stream_t *)f->tcp, on_shutdown)) {
		tp_flow_close(f, SK_ECONNRESET);
		sk_deref(f); /* the request's: the handles still hold f */
	}
}

/* ---- reading ---- */

size_t tp_flow_space(struct tp_flow *f)
{
	size_t max = f->tp->o.max_msg_size + TP_STREAM_SLACK;

	if (f->cap - f->len < TP_STREAM_MIN / 2 && f->cap < max) {
		size_t cap = f->cap ? f->cap * 2 : TP_STREAM_MIN;
		char *nb;

		if (cap > max)
			cap = max;
		nb = f->buf ? sk_realloc(f->buf, cap) : sk_zalloc(cap, NULL);
		if (nb) {
			f->buf = nb;
			f->cap = cap;
		}
	}
	return f->cap - f->len;
}

bool tp_shed_verdict(struct tp_flow *f, struct edge_verdict *v, msg_t **msg)
{
	if (*msg)
		msg_destroy(*msg);
	*msg = NULL;
	f->rx_broken = true; /* one answer per shed connection, then it closes */
	if (v->drop || !v->is_request) {
		TP_COUNT(f->tp, dropped, rx_dropped);
		tp_flow_drain(f);
		return true;
	}
	v->status = 503;
	snprintf(v->reason, sizeof(v->reason), "Service Unavailable (too many connections)");
	v->unsupported[0] = '\0';
	return false;
}

/* Why the loop re-checks the state after each message: on_msg may close the flow or
 * the whole transport; then nothing more is parsed and the buffer is left to the
 * close callbacks. */
void tp_flow_parse(struct tp_flow *f)
{
	struct edge_tp *tp = f->tp;
	struct edge_rx rx;
	size_t off = 0;
	char s[96];

	if (f->ws) {
		tp_ws_parse(f); /* the WebSocket layer frames the messages */
		return;
	}
	rx.proto = f->proto;
	rx.src = f->remote;
	rx.local = f->local;
	rx.flow = f->id;
	rx.arrived_ns = uv_hrtime();
	while (off < f->len && f->state == F_UP && !f->rx_broken) {
		const char *p = f->buf + off;
		size_t n = f->len - off, k;
		msg_t *msg = NULL;
		int err;

		enum tp_sframe_what w = tp_sframe_next(&f->sf, p, n, tp->o.max_msg_size, &k);

		if (w == TP_SF_MORE)
			break;
		if (w == TP_SF_SKIP) {
			off += k;
			continue;
		}
		if (w == TP_SF_PING) {
			TP_COUNT(tp, keepalives, keepalives);
			(void)tp_flow_put(f, "\r\n", 2, 0);
			off += k;
			f->rx_msgs++;
			continue;
		}
		err = edge_sip_check(p, n, EDGE_STREAM, tp->o.max_msg_size, &msg, &rx.verdict);
		if (err == SK_EAGAIN) {
			tp_sframe_short(&f->sf, n); /* the estimate was short */
			break;
		}
		if (err) {
			SK_WARN("%s: check failed: %s", flow_str(f, s, sizeof(s)),
				sk_strerror(err));
			tp_flow_close(f, err);
			return;
		}
		k = rx.verdict.consumed ? rx.verdict.consumed : n;
		off += k;
		tp_sframe_done(&f->sf);
		f->rx_msgs++;
		if (f->shed && tp_shed_verdict(f, &rx.verdict, &msg))
			continue;
		if (rx.verdict.drop) {
			TP_COUNT(tp, dropped, rx_dropped);
			continue;
		}
		/* After 400/513 the framing is lost (RFC 4475 §3.1.2.3, §3.3.9): the core
		 * answers and closes; nothing more is read. */
		if (rx.verdict.status == 400 || rx.verdict.status == 513)
			f->rx_broken = true;
		rx.data = p;
		rx.len = k;
		TP_COUNT(tp, rx[f->proto], rx_msgs[f->proto]);
		tp->o.on_msg(tp, &rx, msg, tp->o.arg);
	}
	if (f->state == F_CLOSED)
		return;
	if (f->rx_broken)
		off = f->len;
	if (off) {
		memmove(f->buf, f->buf + off, f->len - off);
		f->len -= off;
	}
	/* A buffer grown for a large message is not kept by an idle connection. */
	if (!f->len && f->cap > TP_STREAM_MIN) {
		f->buf = sk_deref(f->buf);
		f->cap = 0;
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct tp_flow *f = h->data;

	(void)suggested;
	/* TLS ciphertext and bytes after a framing error go through the shared buffer;
	 * plain TCP is read straight into the flow's buffer. */
	if (tp_is_tls(f->proto) || f->rx_broken)
		*b = uv_buf_init(f->tp->rxbuf, sizeof(f->tp->rxbuf));
	else
		*b = uv_buf_init(f->buf + f->len, (unsigned)tp_flow_space(f));
	if (!b->len)
		b->base = NULL; /* libuv reports UV_ENOBUFS: the flow closes */
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct tp_flow *f = s->data;
	char d[96];

	if (nread < 0) {
		if (nread != UV_EOF)
			SK_DEBUG("%s: read: %s", flow_str(f, d, sizeof(d)),
				 uv_strerror((int)nread));
		tp_flow_close(f, SK_ECONNRESET);
		return;
	}
	if (nread == 0 || f->state == F_CLOSED)
		return;
	f->last_io = uv_now(f->tp->loop);
	if (tp_is_tls(f->proto)) {
		tp_tls_input(f, b->base, (size_t)nread);
	} else if (!f->rx_broken) {
		f->len += (size_t)nread;
		tp_flow_parse(f);
	}
	tp_flow_progress(f);
}

static int flow_start(struct tp_flow *f)
{
	int err = uv_read_start((uv_stream_t *)f->tcp, on_alloc, on_read);

	uv_tcp_nodelay(f->tcp, 1); /* SIP messages are small and latency-bound */
	if (!err && tp_is_tls(f->proto)) {
		f->state = F_HANDSHAKE;
		/* Inbound, the handshake is the client's to finish: bounded like a slow
		 * sender; outbound, like the connect. */
		if (f->outbound) {
			uv_timer_start(f->timer, on_timer, f->tp->o.connect_timeout_ms, 0);
		} else {
			f->slow_at = uv_now(f->tp->loop) + f->tp->o.slow_timeout_ms;
			flow_arm(f);
		}
		err = tp_tls_start(f);
	} else if (!err) {
		tp_flow_up(f);
	}
	return err;
}

/* ---- listeners ---- */

static void spare_close_cb(uv_handle_t *h)
{
	struct edge_tp *tp = h->data;

	if (!tp->spare)
		tp->spare = (uv_tcp_t *)h;
	else
		sk_deref(h);
	sk_deref(tp);
}

/* Out of memory for a flow: the connection is accepted into memory kept for this and
 * closed at once; left in the backlog it would stop libuv from accepting any other. */
static void refuse_oom(struct edge_tp *tp, uv_stream_t *s, enum edge_proto p)
{
	uv_tcp_t *h = tp->spare;

	SK_ERROR("%s listener: out of memory, refusing a connection", edge_proto_name(p));
	if (!h)
		return;
	tp->spare = NULL;
	uv_tcp_init(tp->loop, h);
	h->data = sk_ref(tp);
	(void)uv_accept(s, (uv_stream_t *)h);
	uv_close((uv_handle_t *)h, spare_close_cb);
}

/* Over max_conns or max_conns_per_source (transport.h, Limits): a shed slot if one is
 * free, else the connection is turned away. Shed flows count in neither cap. */
static bool over_cap(struct edge_tp *tp, const struct tp_flow *f)
{
	return tp->nflows - tp->nshed >= tp->o.max_conns ||
	       tp_src_count(tp, &f->remote) >= tp->o.max_conns_per_source;
}

static void on_connection(uv_stream_t *s, int status)
{
	struct edge_tp *tp = s->data;
	enum edge_proto p = EDGE_PROTO_TCP;
	int len = sizeof(struct sockaddr_storage), err;
	struct tp_flow *f;
	char d[96];

	for (int i = EDGE_PROTO_TCP; i < EDGE_PROTO_MAX_; i++)
		if (s == (uv_stream_t *)tp->lsn[i])
			p = (enum edge_proto)i;
	if (status < 0) {
		SK_WARN("%s listener: %s", edge_proto_name(p), uv_strerror(status));
		return;
	}
	f = flow_new(tp, p);
	if (!f) {
		refuse_oom(tp, s, p);
		return;
	}
	err = uv_accept(s, (uv_stream_t *)f->tcp);
	if (!err)
		err = uv_tcp_getpeername(f->tcp, &f->remote.u.sa, &len);
	/* Banned sources cost an accept and a reset, nothing is read (Admission). */
	if (!err && tp->o.admit && !tp->o.admit(&f->remote, p, tp->o.arg)) {
		TP_COUNT(tp, banned, conns_banned);
		flow_close(f, SK_ECONNREFUSED, true);
		sk_deref(f);
		return;
	}
	if (!err && over_cap(tp, f)) {
		if (tp->nshed >= EDGE_TP_SHED_SLOTS) {
			TP_COUNT(tp, refused, conns_refused);
			SK_WARN("%s listener: over a connection cap (%zu open, %zu from %s), "
				"refusing one",
				edge_proto_name(p), tp->nflows, tp_src_count(tp, &f->remote),
				edge_addr_ip(&f->remote, d, sizeof(d)));
			flow_close(f, SK_EAGAIN, true);
			sk_deref(f);
			return;
		}
		f->shed = true;
		f->shed_at = uv_now(tp->loop) + tp->o.slow_timeout_ms;
		TP_COUNT(tp, shed, conns_shed);
		SK_INFO("%s listener: over a connection cap (%zu open, %zu from %s): 503 to "
			"its first request",
			edge_proto_name(p), tp->nflows, tp_src_count(tp, &f->remote),
			edge_addr_ip(&f->remote, d, sizeof(d)));
	}
	if (!err) {
		f->local = tp->laddr[p];
		err = flow_list(f);
	}
	if (!err && !f->shed && (err = tp_src_add(tp, &f->remote)) == 0)
		f->src_counted = true;
	if (!err && (err = flow_start(f)) != 0)
		SK_WARN("%s: %s", flow_str(f, d, sizeof(d)), tp_strerror(err));
	if (err)
		tp_flow_close(f, err);
	sk_deref(f);
}

int tp_stream_listen(struct edge_tp *tp, enum edge_proto p, const char *addr)
{
	int len = sizeof(struct sockaddr_storage), err;
	struct edge_addr a;
	uv_tcp_t *h;

	err = edge_addr_parse(&a, addr);
	if (err) {
		SK_ERROR("%s listener \"%s\": not an ip:port address", edge_proto_name(p), addr);
		return err;
	}
	h = sk_zalloc(sizeof(*h), NULL);
	if (!h)
		return SK_ENOMEM;
	if (!tp->spare && !(tp->spare = sk_zalloc(sizeof(*tp->spare), NULL))) {
		sk_deref(h);
		return SK_ENOMEM;
	}
	uv_tcp_init(tp->loop, h);
	h->data = sk_ref(tp);
	tp->lsn[p] = h;
	err = uv_tcp_bind(h, &a.u.sa, 0);
	if (!err)
		err = uv_listen((uv_stream_t *)h, 511, on_connection);
	if (!err)
		err = uv_tcp_getsockname(h, &tp->laddr[p].u.sa, &len);
	if (err) {
		SK_ERROR("%s listener %s: %s", edge_proto_name(p), addr, uv_strerror(err));
		return err;
	}
	tp->has[p] = true;
	return 0;
}

void tp_stream_unlisten(struct edge_tp *tp, enum edge_proto p)
{
	if (!tp->lsn[p])
		return;
	uv_close((uv_handle_t *)tp->lsn[p], handle_close_cb);
	tp->lsn[p] = NULL;
}

/* ---- outbound ---- */

static void on_connect(uv_connect_t *req, int status)
{
	struct tp_flow *f = req->data;
	int len = sizeof(struct sockaddr_storage), err = status;
	char d[96];

	sk_deref(req);
	if (f->state == F_CLOSED) {
		sk_deref(f);
		return;
	}
	if (!err) {
		if (f->tp->has[f->proto])
			f->local = f->tp->laddr[f->proto];
		else
			uv_tcp_getsockname(f->tcp, &f->local.u.sa, &len);
		err = flow_start(f);
	}
	if (err) {
		SK_WARN("%s: connect: %s", flow_str(f, d, sizeof(d)), tp_strerror(err));
		tp_flow_close(f, err);
	}
	sk_deref(f);
}

static int flow_connect(struct edge_tp *tp, enum edge_proto p, const struct edge_addr *dst,
			const char *tls_name, struct tp_flow **fp)
{
	struct tp_flow *f = flow_new(tp, p);
	uv_connect_t *req;
	int err = SK_ENOMEM;

	if (!f)
		return SK_ENOMEM;
	f->outbound = true;
	f->remote = *dst;
	f->state = F_CONNECTING;
	req = sk_zalloc(sizeof(*req), NULL);
	if (!req || (tls_name && !(f->tls_name = sk_strdup(tls_name))))
		goto out;
	err = uv_tcp_connect(req, f->tcp, &dst->u.sa, on_connect);
	if (err)
		goto out;
	req->data = sk_ref(f);
	req = NULL;
	err = flow_list(f);
	if (err)
		goto out;
	uv_timer_start(f->timer, on_timer, tp->o.connect_timeout_ms, 0);
	*fp = f;
out:
	if (err) {
		char a[64];

		SK_WARN("%s connect to %s: %s", edge_proto_name(p),
			edge_addr_str(dst, a, sizeof(a)), tp_strerror(err));
		sk_deref(req);
		tp_flow_close(f, err);
	}
	sk_deref(f); /* the table keeps it */
	return err;
}

int tp_stream_send(struct edge_tp *tp, enum edge_proto p, const struct edge_addr *dst,
		   uint64_t flow, const char *tls_name, const void *data, size_t len,
		   uint64_t cookie)
{
	struct tp_flow *f;
	int err;

	if (flow) {
		f = tp_flow_find(tp, flow);
		if (!f)
			return SK_ENOTCONN;
	} else {
		if (dst->u.sa.sa_family != AF_INET && dst->u.sa.sa_family != AF_INET6)
			return SK_EINVAL;
		f = tp_flow_by_addr(tp, p, dst, tls_name);
		if (!f && (err = flow_connect(tp, p, dst, tls_name, &f)))
			return err;
	}
	err = flow_send(f, data, len, cookie);
	if (!err)
		TP_COUNT(tp, tx[f->proto], tx_msgs[f->proto]);
	return err;
}
