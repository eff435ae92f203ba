/* tp_core: the transport object — listeners from the options, the flow table, send
 * dispatch, statistics and metrics. The protocols live in tp_udp/tp_stream/tp_tls and
 * tp_ws/tp_ws_http (WebSocket). */
#include <stdio.h>
#include <string.h>
#include "skein/sk_hash.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"
#include "tp_int.h"

SK_LOG_MODULE("edge.tp");

enum { BUCKETS_MIN = 64 };

/* Process-wide so that an id is never reused while the process lives. */
static uint64_t flow_seq;

uint64_t tp_flow_next_id(void)
{
	return ++flow_seq;
}

void tp_count(struct edge_tp *tp, struct sk_counter *c, uint64_t *stat)
{
	(void)tp;
	(*stat)++;
	if (c)
		sk_counter_inc(c);
}

const char *tp_strerror(int err)
{
	/* Skein's own codes, else libuv's (errno values and UV_EOF alike). */
	return strcmp(sk_err_name(err), "UNKNOWN") ? sk_strerror(err) : uv_strerror(err);
}

void tp_send_error(struct edge_tp *tp, uint64_t cookie, int err)
{
	if (cookie && !tp->closing && tp->o.on_send_error)
		tp->o.on_send_error(tp, cookie, err, tp->o.arg);
}

/* ---- flow table ---- */

static size_t addr_hash(enum edge_proto p, const struct edge_addr *a)
{
	const unsigned char *b;
	uint64_t h = SK_FNV64_BASIS ^ (uint64_t)p;
	size_t n;

	if (a->u.sa.sa_family == AF_INET6) {
		b = (const unsigned char *)&a->u.in6.sin6_addr;
		n = 16;
	} else {
		b = (const unsigned char *)&a->u.in.sin_addr;
		n = 4;
	}
	h = sk_fnv64(h, b, n);
	return sk_hash_fold(sk_fnv64_byte(h, edge_addr_port(a)));
}

static int table_grow(struct edge_tp *tp)
{
	size_t nb = tp->nbuckets ? tp->nbuckets * 2 : BUCKETS_MIN;
	struct tp_flow **id = sk_zalloc_array(nb, sizeof(*id), NULL);
	struct tp_flow **ad = sk_zalloc_array(nb, sizeof(*ad), NULL);

	if (!id || !ad) {
		sk_deref(id);
		sk_deref(ad);
		return SK_ENOMEM;
	}
	for (size_t i = 0; i < tp->nbuckets; i++) {
		struct tp_flow *f, *next;

		for (f = tp->by_id[i]; f; f = next) {
			size_t k = (size_t)f->id & (nb - 1);

			next = f->id_next;
			f->id_next = id[k];
			id[k] = f;
		}
		for (f = tp->by_addr[i]; f; f = next) {
			size_t k = addr_hash(f->proto, &f->remote) & (nb - 1);

			next = f->addr_next;
			f->addr_next = ad[k];
			ad[k] = f;
		}
	}
	sk_deref(tp->by_id);
	sk_deref(tp->by_addr);
	tp->by_id = id;
	tp->by_addr = ad;
	tp->nbuckets = nb;
	return 0;
}

/* Takes a reference on f (the table's). */
int tp_flow_add(struct edge_tp *tp, struct tp_flow *f)
{
	size_t k;

	if (tp->nflows >= tp->nbuckets && table_grow(tp) && !tp->nbuckets)
		return SK_ENOMEM; /* a full table still works, only slower */
	k = (size_t)f->id & (tp->nbuckets - 1);
	f->id_next = tp->by_id[k];
	tp->by_id[k] = f;
	k = addr_hash(f->proto, &f->remote) & (tp->nbuckets - 1);
	f->addr_next = tp->by_addr[k];
	tp->by_addr[k] = f;
	tp->nflows++;
	if (f->shed)
		tp->nshed++;
	tp->st.conns_open++;
	tp->st.conns_total++;
	if (tp->m.conns)
		sk_gauge_add(tp->m.conns, 1);
	sk_ref(f);
	return 0;
}

/* Drops the table's reference: the caller holds another. */
void tp_flow_remove(struct edge_tp *tp, struct tp_flow *f)
{
	struct tp_flow **pp;

	for (pp = &tp->by_id[(size_t)f->id & (tp->nbuckets - 1)]; *pp; pp = &(*pp)->id_next)
		if (*pp == f) {
			*pp = f->id_next;
			break;
		}
	for (pp = &tp->by_addr[addr_hash(f->proto, &f->remote) & (tp->nbuckets - 1)]; *pp;
	     pp = &(*pp)->addr_next)
		if (*pp == f) {
			*pp = f->addr_next;
			break;
		}
	tp->nflows--;
	if (f->shed)
		tp->nshed--;
	if (f->src_counted)
		tp_src_del(tp, &f->remote);
	f->src_counted = false;
	tp->st.conns_open--;
	if (tp->m.conns)
		sk_gauge_add(tp->m.conns, -1);
	sk_deref(f);
}

struct tp_flow *tp_flow_find(const struct edge_tp *tp, uint64_t id)
{
	if (!tp->nbuckets)
		return NULL;
	for (struct tp_flow *f = tp->by_id[(size_t)id & (tp->nbuckets - 1)]; f; f = f->id_next)
		if (f->id == id)
			return f->draining ? NULL : f;
	return NULL;
}

/* RFC 5923 §5 / RFC 3261 §18.1.1: reuse a connection to the same address; over TLS
 * only one that was set up for the same name (RFC 5922 §7.3). */
struct tp_flow *tp_flow_by_addr(const struct edge_tp *tp, enum edge_proto p,
				const struct edge_addr *a, const char *tls_name)
{
	if (!tp->nbuckets)
		return NULL;
	for (struct tp_flow *f = tp->by_addr[addr_hash(p, a) & (tp->nbuckets - 1)]; f;
	     f = f->addr_next) {
		if (f->proto != p || f->draining || !edge_addr_eq(&f->remote, a))
			continue;
		if (p == EDGE_PROTO_TLS && tls_name &&
		    (!f->tls_name || strcasecmp(f->tls_name, tls_name)))
			continue;
		return f;
	}
	return NULL;
}

/* ---- the transport ---- */

static void tp_destroy(void *data)
{
	struct edge_tp *tp = data;

	tp_tls_free(tp);
	tp_src_free(tp);
	sk_deref(tp->spare);
	sk_deref(tp->tls_ca);
	sk_deref(tp->ws_origins);
	sk_deref(tp->by_id);
	sk_deref(tp->by_addr);
	free(tp->udp_rxbuf);
}

static void metrics_init(struct edge_tp *tp, struct sk_metrics *m, const char *prefix)
{
	char n[128];

	if (!prefix)
		prefix = "skein_edge";
	for (int p = 0; p < EDGE_PROTO_MAX_; p++) {
		const char *v = edge_proto_name((enum edge_proto)p);

		snprintf(n, sizeof(n), "%s_sip_rx_total", prefix);
		tp->m.rx[p] = sk_metrics_counter(m, n, "SIP messages received (verdict given)",
						 "transport", v);
		snprintf(n, sizeof(n), "%s_sip_tx_total", prefix);
		tp->m.tx[p] = sk_metrics_counter(m, n, "SIP messages sent", "transport", v);
	}
	snprintf(n, sizeof(n), "%s_connections", prefix);
	tp->m.conns = sk_metrics_gauge(m, n, "Open TCP/TLS connections", NULL, NULL);
	snprintf(n, sizeof(n), "%s_connections_refused_total", prefix);
	/* reason: "limit" closed at accept over max_conns or max_conns_per_source with
	 * every shed slot taken; "shed" over a cap, kept to answer 503; "banned" by the
	 * admission hook (transport.h, Limits and Admission). */
	tp->m.refused =
	    sk_metrics_counter(m, n, "Connections turned away, by reason", "reason", "limit");
	tp->m.shed =
	    sk_metrics_counter(m, n, "Connections turned away, by reason", "reason", "shed");
	tp->m.banned =
	    sk_metrics_counter(m, n, "Connections turned away, by reason", "reason", "banned");
	snprintf(n, sizeof(n), "%s_connections_slow_closed_total", prefix);
	tp->m.slow = sk_metrics_counter(
	    m, n,
	    "Connections closed for a message, TLS handshake or WebSocket upgrade not done "
	    "within slow_timeout",
	    NULL, NULL);
	snprintf(n, sizeof(n), "%s_rx_banned_total", prefix);
	tp->m.rx_banned =
	    sk_metrics_counter(m, n, "UDP datagrams dropped by the admission hook", NULL, NULL);
	snprintf(n, sizeof(n), "%s_udp_send_calls_total", prefix);
	tp->m.udp_calls = sk_metrics_counter(
	    m, n,
	    "System calls that sent UDP datagrams (one sendmmsg takes what a loop iteration "
	    "queued: sip_tx_total{transport=\"udp\"} / this = datagrams per call)",
	    NULL, NULL);
	snprintf(n, sizeof(n), "%s_tls_handshake_failures_total", prefix);
	tp->m.tls_fail = sk_metrics_counter(m, n, "TLS handshakes that failed", NULL, NULL);
	snprintf(n, sizeof(n), "%s_keepalives_total", prefix);
	tp->m.keepalives = sk_metrics_counter(
	    m, n, "Keep-alives received (CRLF, STUN binding; RFC 5626)", NULL, NULL);
	snprintf(n, sizeof(n), "%s_rx_dropped_total", prefix);
	tp->m.dropped =
	    sk_metrics_counter(m, n, "Received bytes dropped without an answer", NULL, NULL);
	tp_ws_metrics(tp, m, prefix);
}

static bool set(const char *s)
{
	return s && *s;
}

int edge_tp_alloc(struct edge_tp **tpp, uv_loop_t *loop, const struct edge_tp_opts *o)
{
	struct edge_tp *tp;
	int err;

	if (!tpp || !loop || !o || !o->on_msg)
		return SK_EINVAL;
	if ((set(o->tls) || set(o->wss)) && (!set(o->tls_cert) || !set(o->tls_key))) {
		SK_ERROR("%s listener %s needs tls_cert and tls_key", set(o->tls) ? "tls" : "wss",
			 set(o->tls) ? o->tls : o->wss);
		return SK_EINVAL;
	}
	tp = sk_zalloc(sizeof(*tp), tp_destroy);
	if (!tp)
		return SK_ENOMEM;
	tp->loop = loop;
	tp->o = *o;
	/* Only the callbacks and numbers are kept; strings are used here and forgotten,
	 * except the CA file, needed when the first outbound TLS connection is made. */
	tp->o.udp = tp->o.tcp = tp->o.tls = tp->o.tls_cert = tp->o.tls_key = NULL;
	tp->o.tls_ca = tp->o.metrics_prefix = NULL;
	tp->o.ws = tp->o.wss = tp->o.ws_origins = NULL;
	tp->o.metrics = NULL;
	if (!tp->o.max_msg_size)
		tp->o.max_msg_size = 65535;
	if (!tp->o.idle_timeout_ms)
		tp->o.idle_timeout_ms = 600000;
	if (!tp->o.connect_timeout_ms)
		tp->o.connect_timeout_ms = 5000;
	if (!tp->o.max_conns)
		tp->o.max_conns = 10000;
	if (!tp->o.ws_max_frame)
		tp->o.ws_max_frame = 65535;
	if (!tp->o.max_conns_per_source)
		tp->o.max_conns_per_source = 256;
	if (!tp->o.slow_timeout_ms)
		tp->o.slow_timeout_ms = 10000;
	if (set(o->ws_origins) && !(tp->ws_origins = sk_strdup(o->ws_origins))) {
		err = SK_ENOMEM;
		goto out;
	}
	if (set(o->tls_ca) && !(tp->tls_ca = sk_strdup(o->tls_ca))) {
		err = SK_ENOMEM;
		goto out;
	}
	err = table_grow(tp);
	if (err)
		goto out;
	if (o->metrics)
		metrics_init(tp, o->metrics, o->metrics_prefix);

	if (set(o->udp) && (err = tp_udp_open(tp, o->udp)))
		goto out;
	if (set(o->tcp) && (err = tp_stream_listen(tp, EDGE_PROTO_TCP, o->tcp)))
		goto out;
	if (set(o->tls) || set(o->wss)) {
		/* One server context for TLS and WSS. */
		tp->o.tls_cert = o->tls_cert;
		tp->o.tls_key = o->tls_key;
		err = tp_tls_init_server(tp);
		tp->o.tls_cert = tp->o.tls_key = NULL;
		if (err)
			goto out;
	}
	if (set(o->tls) && (err = tp_stream_listen(tp, EDGE_PROTO_TLS, o->tls)))
		goto out;
	if (set(o->ws) && (err = tp_stream_listen(tp, EDGE_PROTO_WS, o->ws)))
		goto out;
	if (set(o->wss) && (err = tp_stream_listen(tp, EDGE_PROTO_WSS, o->wss)))
		goto out;
out:
	if (err) {
		edge_tp_close(tp);
		sk_deref(tp);
		return err;
	}
	*tpp = tp;
	return 0;
}

void edge_tp_stop_accepting(struct edge_tp *tp)
{
	if (!tp)
		return;
	for (int p = EDGE_PROTO_TCP; p < EDGE_PROTO_MAX_; p++)
		tp_stream_unlisten(tp, (enum edge_proto)p);
}

void edge_tp_close(struct edge_tp *tp)
{
	if (!tp || tp->closing)
		return;
	tp->closing = true;
	edge_tp_stop_accepting(tp);
	tp_udp_close(tp);
	for (size_t i = 0; i < tp->nbuckets; i++) {
		struct tp_flow *f;

		while ((f = tp->by_id[i])) {
			if (f->ws)
				tp_ws_going_away(f); /* best effort: a 1001 if it fits the socket */
			tp_flow_close(f, SK_ECANCELED);
		}
	}
}

bool edge_tp_local(const struct edge_tp *tp, enum edge_proto p, struct edge_addr *out)
{
	if (!tp || p < 0 || p >= EDGE_PROTO_MAX_ || !tp->has[p])
		return false;
	if (out)
		*out = tp->laddr[p];
	return true;
}

int edge_tp_send(struct edge_tp *tp, enum edge_proto p, const struct edge_addr *dst, uint64_t flow,
		 const char *tls_name, const void *data, size_t len, uint64_t cookie)
{
	if (!tp || (!data && len) || p < 0 || p >= EDGE_PROTO_MAX_)
		return SK_EINVAL;
	if (tp_is_ws(p) && !flow)
		return SK_ENOTSUP; /* the browser is the client: nothing to connect to */
	if (!flow && !dst)
		return SK_EINVAL;
	if (len > TP_WQ_MAX)
		return SK_EMSGSIZE;
	if (tp->closing)
		return SK_ENOTCONN;
	if (p == EDGE_PROTO_UDP && !flow)
		return tp_udp_send(tp, dst, data, len, cookie);
	return tp_stream_send(tp, p, dst, flow, tls_name, data, len, cookie);
}

bool edge_tp_flow_info(const struct edge_tp *tp, uint64_t flow, enum edge_proto *p,
		       struct edge_addr *remote)
{
	const struct tp_flow *f = tp && flow ? tp_flow_find(tp, flow) : NULL;

	if (!f)
		return false;
	if (p)
		*p = f->proto;
	if (remote)
		*remote = f->remote;
	return true;
}

void edge_tp_flow_close(struct edge_tp *tp, uint64_t flow)
{
	struct tp_flow *f = tp && flow ? tp_flow_find(tp, flow) : NULL;

	if (f)
		tp_flow_drain(f);
}

void edge_tp_stats(const struct edge_tp *tp, struct edge_tp_stats *st)
{
	if (tp && st)
		*st = tp->st;
}

size_t edge_tp_conns(const struct edge_tp *tp)
{
	return tp ? tp->nflows : 0;
}
