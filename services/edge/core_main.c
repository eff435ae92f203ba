/* core_main: the edge's life cycle and the first look at every message — sanity
 * verdicts answered here (RFC 3261 §16.3), OPTIONS to the edge itself, dispatch of
 * new requests to registration or the proxy. */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_node.h"
#include "skein/sk_sys.h"
#include "skein/sk_bus.h"
#include "core.h"
#include "nctab.h"
#include "sipmsg.h"

SK_LOG_MODULE("edge");

static const char *const method_names[8] = {"INVITE", "ACK",	  "CANCEL", "BYE",
					    "REGISTER", "OPTIONS", "MESSAGE", "other"};

int edge_method_idx(sip_method_t m)
{
	switch (m) {
	case sip_method_invite: return 0;
	case sip_method_ack: return 1;
	case sip_method_cancel: return 2;
	case sip_method_bye: return 3;
	case sip_method_register: return 4;
	case sip_method_options: return 5;
	case sip_method_message: return 6;
	default: return 7;
	}
}

void edge_count_resp(struct edge *e, int status)
{
	int c = status / 100;

	if (c >= 1 && c <= 6)
		sk_counter_inc(e->m.resp[c - 1]);
}

int edge_reply(struct edge *e, struct edge_stx *stx, int status, const char *reason,
	       const char *extra)
{
	int err = edge_stx_reply(stx, status, reason, extra, NULL, NULL, 0);

	if (!err)
		edge_count_resp(e, status);
	return err;
}

/* The raw lines of one header (compact form too), folded lines included, appended
 * as they came: an error response copies what it cannot parse (§8.2.6). */
static int copy_raw(struct sk_buf *b, const char *data, size_t len, const char *name,
		    char compact, bool all)
{
	const char *p = memchr(data, '\n', len), *end = data + len;
	size_t nl = strlen(name);
	int found = 0;

	while (p && ++p < end && *p != '\r' && *p != '\n') {
		const char *e = p, *c;

		/* the header runs to the next line that does not start with SP/HT */
		while ((e = memchr(e, '\n', (size_t)(end - e))) && e + 1 < end &&
		       (e[1] == ' ' || e[1] == '\t'))
			e++;
		if (!e)
			e = end - 1;
		c = p;
		if (((size_t)(e - p) > nl && !strncasecmp(p, name, nl) &&
		     (p[nl] == ':' || p[nl] == ' ' || p[nl] == '\t')) ||
		    (compact && (*p == compact || *p == (compact ^ 0x20)) &&
		     (p[1] == ':' || p[1] == ' ' || p[1] == '\t'))) {
			size_t l = (size_t)(e - c) + 1;

			while (l && (c[l - 1] == '\n' || c[l - 1] == '\r'))
				l--;
			sk_buf_append(b, c, l);
			sk_buf_puts(b, "\r\n");
			found++;
			if (!all)
				break;
		}
		p = e;
	}
	return found;
}

/* A request the checks refused: the response copies the raw Via, From, To, Call-ID
 * and CSeq lines, whether they parsed or not (§8.2.6; RFC 4475 expects a 400 even
 * for a From it cannot read). Without a Via or a Call-ID nobody can match an
 * answer: drop. Never answer an ACK (§17.2.1). */
static void reply_verdict(struct edge *e, const struct edge_rx *rx)
{
	const struct edge_verdict *v = &rx->verdict;
	struct sk_buf b;
	size_t mark;
	int err = SK_EINVAL;

	sk_buf_init(&b);
	if (rx->len >= 4 && !memcmp(rx->data, "ACK ", 4))
		goto out;
	sk_buf_printf(&b, "SIP/2.0 %d %s\r\n", v->status,
		      v->reason[0] ? v->reason : edge_reason(v->status));
	mark = b.len;
	if (!copy_raw(&b, rx->data, rx->len, "Via", 'v', true))
		goto out;
	copy_raw(&b, rx->data, rx->len, "From", 'f', false);
	mark = b.len;
	if (copy_raw(&b, rx->data, rx->len, "To", 't', false)) {
		/* our tag unless the To has one (§8.2.6.2) */
		const char *to = b.data + mark;

		if (!b.err && !memmem(to, b.len - mark, ";tag=", 5) && b.len > 2) {
			char tag[EDGE_TAG_SIZE];

			edge_tag_new(tag);
			b.len -= 2;
			sk_buf_printf(&b, ";tag=%s\r\n", tag);
		}
	}
	if (!copy_raw(&b, rx->data, rx->len, "Call-ID", 'i', false))
		goto out;
	copy_raw(&b, rx->data, rx->len, "CSeq", 0, false);
	if (v->status == 420 && v->unsupported[0])
		sk_buf_printf(&b, "Unsupported: %s\r\n", v->unsupported);
	if (v->status == 503)
		sk_buf_printf(&b, "Retry-After: %llu\r\n",
			      (unsigned long long)(e->conf->retry_after / 1000));
	if (v->status == 405 || v->status == 501)
		sk_buf_puts(&b, "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, "
				"SUBSCRIBE, NOTIFY, PUBLISH, INFO, UPDATE, REFER, PRACK\r\n");
	if (e->conf->server[0])
		sk_buf_printf(&b, "Server: %s\r\n", e->conf->server);
	sk_buf_puts(&b, "Content-Length: 0\r\n\r\n");
	if (b.err)
		goto out;
	/* Symmetric (RFC 3581): to where it came from, on the flow it came on. */
	err = edge_tp_send(e->tp, rx->proto, &rx->src, rx->flow, NULL, b.data, b.len, 0);
	if (!err)
		edge_count_resp(e, v->status);
out:
	if (err)
		sk_counter_inc(e->m.rejected);
	sk_buf_release(&b);
}

static void on_msg(struct edge_tp *tp, const struct edge_rx *rx, msg_t *msg, void *arg)
{
	struct edge *e = arg;
	char src[64];

	(void)tp;
	if (!msg) {
		if (rx->verdict.drop) {
			sk_counter_inc(rx->verdict.is_request ? e->m.rejected : e->m.malformed_resp);
			SK_DEBUG("dropped from %s: %s", edge_addr_str(&rx->src, src, sizeof(src)),
				 rx->verdict.reason);
			return;
		}
		SK_INFO("%d %s from %s/%s", rx->verdict.status, rx->verdict.reason,
			edge_proto_name(rx->proto), edge_addr_str(&rx->src, src, sizeof(src)));
		reply_verdict(e, rx);
		/* After a 400/513 on a stream the framing is lost (RFC 4475 §3.1.2.3); a 503
		 * from the transport is a connection over a cap (transport.h, Limits). */
		if (rx->flow && (rx->verdict.status == 400 || rx->verdict.status == 513 ||
				 rx->verdict.status == 503))
			edge_tp_flow_close(e->tp, rx->flow);
		return;
	}
	if (sip_object(msg)->sip_request) {
		sk_counter_inc(e->m.req[edge_method_idx(sip_object(msg)->sip_request->rq_method)]);
		if (edge_guard_request(e, rx, msg) == EDGE_GUARD_DROP) {
			msg_destroy(msg);
			return;
		}
	}
	edge_txl_input(e->txl, rx, msg);
}

/* The ACK of a stateless 407 (one per call) is dropped before parsing. */
static bool on_absorb(const char *data, size_t len, void *arg)
{
	struct edge *e = arg;

	if (!e->txl || !edge_txl_absorb(e->txl, data, len))
		return false;
	sk_counter_inc(e->m.req[edge_method_idx(sip_method_ack)]);
	return true;
}

static void on_send_error(struct edge_tp *tp, uint64_t cookie, int err, void *arg)
{
	(void)tp;
	edge_txl_send_error(((struct edge *)arg)->txl, cookie, err);
}

static void on_flow_closed(struct edge_tp *tp, uint64_t flow, void *arg)
{
	(void)tp;
	edge_txl_flow_closed(((struct edge *)arg)->txl, flow);
}

/* OPTIONS for the edge itself (no user part, our host or a served domain): carriers'
 * health probes (RFC 3261 §11). 503 while draining so that they move away. */
static bool options_for_us(struct edge *e, struct edge_stx *stx)
{
	sip_t *sip = sip_object(edge_stx_msg(stx));
	const url_t *u = sip->sip_request->rq_url;

	if (sip->sip_request->rq_method != sip_method_options || u->url_user || sip->sip_route)
		return false;
	if (!edge_uri_is_us(e, u) && !edge_domain_local(e, u->url_host))
		return false;
	if (sk_daemon_draining(e->d))
		edge_reply(e, stx, 503, "Service Unavailable (draining)", "Retry-After: 30\r\n");
	else
		edge_reply(e, stx, 200, NULL,
			   "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, "
			   "SUBSCRIBE, NOTIFY, PUBLISH, INFO, UPDATE, REFER, PRACK\r\n"
			   "Accept: application/sdp\r\nSupported: path, outbound\r\n");
	return true;
}

static void on_request(struct edge_txl *l, struct edge_stx *stx, const struct edge_rx *rx,
		       void *arg)
{
	struct edge *e = arg;
	sip_t *sip = sip_object(edge_stx_msg(stx));

	(void)l;
	(void)rx;
	/* Overloaded: shed new work, OPTIONS probes included, so that load balancers
	 * move traffic away (RFC 3261 §21.5.4: 503 with Retry-After). */
	if (edge_guard_overloaded(e)) {
		char ra[48];

		snprintf(ra, sizeof(ra), "Retry-After: %llu\r\n",
			 (unsigned long long)(e->conf->retry_after / 1000));
		edge_reply(e, stx, 503, "Service Unavailable (overloaded)", ra);
		return;
	}
	if (options_for_us(e, stx))
		return;
	/* Draining: new out-of-dialog work goes elsewhere; dialogs finish here. */
	if (sk_daemon_draining(e->d) && !(sip->sip_to && sip->sip_to->a_tag)) {
		edge_reply(e, stx, 503, "Service Unavailable (draining)", "Retry-After: 30\r\n");
		return;
	}
	/* A REGISTER is ours when no Route names another hop (a phone with this edge
	 * as outbound proxy puts it in a Route, RFC 3261 §8.1.2). */
	if (sip->sip_request->rq_method == sip_method_register) {
		const sip_route_t *r = sip->sip_route;

		while (r && edge_uri_is_us(e, r->r_url))
			r = r->r_next;
		if (!r) {
			edge_register(e, stx);
			return;
		}
	}
	if (edge_pres_wants(e, sip)) {
		edge_pres_request(e, stx);
		return;
	}
	edge_proxy_request(e, stx);
}

static void on_cancel(struct edge_txl *l, struct edge_stx *invite, void *arg)
{
	(void)l;
	edge_proxy_cancel(arg, invite);
}

static void on_stateless(struct edge_txl *l, msg_t *msg, const struct edge_rx *rx, void *arg)
{
	(void)l;
	edge_proxy_stateless(arg, msg, rx);
}

static double gauge_forks(void *arg)
{
	return (double)((struct edge *)arg)->forks;
}

static void metrics_setup(struct edge *e)
{
	struct sk_metrics *mx = sk_daemon_metrics(e->d);
	static const char *const cls[6] = {"1xx", "2xx", "3xx", "4xx", "5xx", "6xx"};
	static const double lat[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};

	for (int i = 0; i < 8; i++)
		e->m.req[i] = sk_metrics_counter(mx, "skein_edge_sip_requests_total",
						 "SIP requests received, by method", "method",
						 method_names[i]);
	for (int i = 0; i < 6; i++)
		e->m.resp[i] = sk_metrics_counter(mx, "skein_edge_sip_responses_total",
						  "SIP responses sent, by class", "class", cls[i]);
	e->m.auth_ok = sk_metrics_counter(mx, "skein_edge_auth_total",
					  "Digest authentications, by result", "result", "ok");
	e->m.auth_fail = sk_metrics_counter(mx, "skein_edge_auth_total",
					    "Digest authentications, by result", "result",
					    "failed");
	e->m.nc_checks[0] = sk_metrics_counter(mx, "skein_edge_nonce_checks_total",
					       "Nonce-count checks, by where: this edge issued "
					       "the nonce, or another one (over the bus)",
					       "where", "local");
	e->m.nc_checks[1] = sk_metrics_counter(mx, "skein_edge_nonce_checks_total",
					       "Nonce-count checks, by where: this edge issued "
					       "the nonce, or another one (over the bus)",
					       "where", "peer");
	e->m.nc_refused[EDGE_NC_REPLAY] = sk_metrics_counter(
	    mx, "skein_edge_nonce_refused_total",
	    "Right responses refused for their nonce: replayed count, or a nonce its "
	    "issuer no longer knows (answered stale=true)",
	    "why", "replay");
	e->m.nc_refused[EDGE_NC_FORGOTTEN] = sk_metrics_counter(
	    mx, "skein_edge_nonce_refused_total",
	    "Right responses refused for their nonce: replayed count, or a nonce its "
	    "issuer no longer knows (answered stale=true)",
	    "why", "forgotten");
	e->m.rejected = sk_metrics_counter(mx, "skein_edge_sip_rejected_total",
					   "Requests refused by the sanity checks or dropped",
					   NULL, NULL);
	e->m.malformed_resp = sk_metrics_counter(mx, "skein_edge_sip_malformed_responses_total",
						 "Malformed responses dropped", NULL, NULL);
	e->m.forwarded = sk_metrics_counter(mx, "skein_edge_forwarded_total",
					    "Requests forwarded (branches started)", NULL, NULL);
	e->m.cross_edge = sk_metrics_counter(mx, "skein_edge_forwarded_cross_edge_total",
					     "Requests to bindings registered through another edge",
					     NULL, NULL);
	e->m.relayed_out = sk_metrics_counter(mx, "skein_edge_relayed_total",
					      "SIP messages handed between edges over the bus",
					      "direction", "out");
	e->m.relayed_in = sk_metrics_counter(mx, "skein_edge_relayed_total",
					     "SIP messages handed between edges over the bus",
					     "direction", "in");
	e->m.unreachable = sk_metrics_counter(mx, "skein_edge_bindings_unreachable_total",
					      "Bindings skipped: their flow or the edge holding it "
					      "is gone",
					      NULL, NULL);
	e->m.reg_ok = sk_metrics_counter(mx, "skein_edge_registrations_total",
					 "REGISTER results", "result", "ok");
	e->m.reg_fail = sk_metrics_counter(mx, "skein_edge_registrations_total",
					   "REGISTER results", "result", "failed");
	for (int i = 0; i < 3; i++) {
		static const char *const what[3] = {"written", "deferred", "error"};

		e->m.reg_direct[i] = sk_metrics_counter(
		    mx, "skein_edge_register_direct_total",
		    "REGISTER refreshes tried here (docs/edge.md): written, deferred to the "
		    "registrar, or failed (then passed to the registrar)",
		    "result", what[i]);
	}
	for (int i = 0; i < 3; i++) {
		static const char *const how[3] = {"pipelined", "separate", "unused"};

		e->m.lookups[i] = sk_metrics_counter(
		    mx, "skein_edge_location_lookups_total",
		    "Bindings read to route a request to a local user: pipelined with the "
		    "caller's credentials check, on their own, or pipelined and then not "
		    "used (the caller was refused or the request ended)",
		    "how", how[i]);
	}
	e->m.reg_latency = sk_metrics_histogram(mx, "skein_edge_register_seconds",
						"REGISTER: request in to response out (after auth)",
						lat, sizeof(lat) / sizeof(lat[0]));
	e->m.uas_ok = sk_metrics_counter(mx, "skein_edge_registrar_uas_total",
					 "PUBLISH, SUBSCRIBE and stored MESSAGEs answered by the "
					 "registrar, by outcome", "result", "answered");
	e->m.uas_fail = sk_metrics_counter(mx, "skein_edge_registrar_uas_total",
					   "PUBLISH, SUBSCRIBE and stored MESSAGEs answered by the "
					   "registrar, by outcome", "result", "unavailable");
	e->m.orig_ok = sk_metrics_counter(mx, "skein_edge_originated_total",
					  "Requests sent for the registrar (NOTIFY, stored MESSAGE), "
					  "by final response", "result", "2xx");
	e->m.orig_fail = sk_metrics_counter(mx, "skein_edge_originated_total",
					    "Requests sent for the registrar (NOTIFY, stored MESSAGE), "
					    "by final response", "result", "failed");
	sk_metrics_gauge_fn(mx, "skein_edge_forks", "Forking contexts (calls being set up)",
			    NULL, NULL, gauge_forks, e);
}

int edge_core_start(struct edge *e)
{
	const struct edge_conf *c = e->conf;
	struct edge_tp_opts to = {
		.udp = c->listen_udp,
		.tcp = c->listen_tcp,
		.tls = c->listen_tls,
		.ws = c->listen_ws,
		.wss = c->listen_wss,
		.ws_origins = c->ws_origins,
		.tls_cert = c->tls_cert,
		.tls_key = c->tls_key,
		.tls_ca = c->tls_ca,
		.max_msg_size = (size_t)c->max_msg_size,
		.idle_timeout_ms = c->idle_timeout,
		.max_conns = (size_t)c->max_conns,
		.max_conns_per_source = (size_t)c->max_conns_per_source,
		.slow_timeout_ms = c->slow_timeout,
		.admit = edge_guard_admit,
		.absorb = on_absorb,
		.on_msg = on_msg,
		.on_send_error = on_send_error,
		.on_flow_closed = on_flow_closed,
		.arg = e,
		.metrics = sk_daemon_metrics(e->d),
		.metrics_prefix = "skein_edge",
	};
	struct edge_txl_opts lo = {
		.t1_ms = (uint32_t)c->t1,
		.t2_ms = (uint32_t)c->t2,
		.t4_ms = (uint32_t)c->t4,
		.timer_c_ms = c->timer_c,
		.on_request = on_request,
		.on_cancel = on_cancel,
		.on_stateless = on_stateless,
		.arg = e,
		.metrics = sk_daemon_metrics(e->d),
		.metrics_prefix = "skein_edge",
		.server = c->server[0] ? c->server : NULL,
		.symmetric = c->symmetric,
		/* core_proxy answers 100 once the caller is authenticated, so that a
		 * challenge is not preceded by a useless 100 (as Kamailio does). */
		.tu_sends_trying = true,
		/* requests for flows other edges hold go over the bus (core_relay.c) */
		.send = edge_relay_send,
		.send_arg = e,
	};
	struct edge_addr a;
	char via_param[160];
	int err;

	e->loop = sk_daemon_loop(e->d);
	e->redis = sk_daemon_redis(e->d);
	e->bus = sk_daemon_bus(e->d);
	e->cluster = sk_daemon_cluster(e->d)->name;
	e->member = sk_bus_id(e->bus);
	metrics_setup(e);
	err = edge_tp_alloc(&e->tp, e->loop, &to);
	if (err)
		return err;
	for (int p = 0; p < EDGE_PROTO_MAX_; p++)
		if (edge_tp_local(e->tp, (enum edge_proto)p, &a)) {
			e->port[p] = edge_addr_port(&a);
			if (!e->host[0])
				edge_addr_ip(&a, e->host, sizeof(e->host));
		}
	if (c->advertise[0])
		snprintf(e->host, sizeof(e->host), "%s", c->advertise);
	lo.tp = e->tp;
	lo.via_host = e->host;
	/* our member id in our Vias: a response that comes up a flow another edge holds
	 * finds its way back to us */
	snprintf(via_param, sizeof(via_param), ";sk-edge=\"%s\"", e->member);
	lo.via_param = via_param;
	for (int p = 0; p < EDGE_PROTO_MAX_; p++)
		if (e->port[p])
			e->protos |= 1u << p;
	{
		struct edge_resolver_opts ro = {
			.nameserver = c->dns_nameserver[0] ? c->dns_nameserver : NULL,
			.deadline_ms = c->dns_deadline,
			.ipv6 = c->dns_ipv6,
		};

		err = edge_resolver_alloc(&e->resolver, e->loop, &ro);
		if (err) {
			SK_ERROR("DNS resolver: %s", sk_strerror(err));
			return err;
		}
	}
	err = edge_txl_alloc(&e->txl, e->loop, &lo);
	if (!err)
		err = edge_auth_setup(e);
	if (!err)
		err = edge_register_setup(e);
	if (!err)
		err = edge_guard_start(e);
	if (!err)
		err = edge_domains_start(e);
	if (!err)
		err = edge_relay_start(e);
	if (!err)
		err = edge_originate_start(e);
	if (err)
		return err;
	SK_NOTICE("SIP on %s udp:%u tcp:%u tls:%u ws:%u wss:%u", e->host, e->port[EDGE_PROTO_UDP],
		  e->port[EDGE_PROTO_TCP], e->port[EDGE_PROTO_TLS], e->port[EDGE_PROTO_WS],
		  e->port[EDGE_PROTO_WSS]);
	return 0;
}

void edge_core_drain(struct edge *e)
{
	/* Keep the listeners: OPTIONS probes get 503 and in-dialog requests still flow;
	 * no new connections. */
	if (e->tp)
		edge_tp_stop_accepting(e->tp);
}

bool edge_core_idle(struct edge *e)
{
	return !e->txl || (edge_txl_live(e->txl) == 0 && e->forks == 0);
}

bool edge_core_ready(struct edge *e, const char **why)
{
	if (!e->secret_ok) {
		*why = "no nonce secret yet";
		return false;
	}
	return true;
}

void edge_core_reload(struct edge *e)
{
	const struct edge_conf *c = e->conf;

	if (e->tp && (c->listen_tls[0] || c->listen_wss[0] || c->tls_ca[0]))
		edge_tp_reload_tls(e->tp, c->tls_cert, c->tls_key, c->tls_ca);
	edge_guard_reload(e);
}

void edge_core_stop(struct edge *e)
{
	edge_guard_stop(e);
	edge_domains_stop(e);
	e->secret_timer = sk_sys_timer_close(e->secret_timer);
	if (e->txl) {
		edge_txl_close(e->txl);
		edge_proxy_stop(e);
		edge_originate_stop(e);
	}
	if (e->resolver) {
		edge_resolver_close(e->resolver);
		e->resolver = sk_deref(e->resolver);
	}
	if (e->txl) {
		e->txl = sk_deref(e->txl);
	}
	if (e->tp) {
		edge_tp_close(e->tp);
		e->tp = sk_deref(e->tp);
	}
	e->ha1 = sk_deref(e->ha1);
	e->nctab = sk_deref(e->nctab);
}

void edge_join(char *out, size_t size, const char *a, const char *sep, const char *b)
{
	const char *parts[3] = {a, sep, b};
	size_t o = 0;

	for (int i = 0; i < 3; i++) {
		size_t n;

		if (!parts[i])
			continue;
		n = strlen(parts[i]);
		if (n > size - 1 - o)
			n = size - 1 - o;
		memcpy(out + o, parts[i], n);
		o += n;
	}
	out[o] = '\0';
}
