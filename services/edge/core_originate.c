/* core_originate: requests skein-registrar makes — NOTIFYs of its subscriptions,
 * MESSAGEs delivered from the offline store — are sent by an edge as client
 * transactions (RFC 3261 §17.1.2): the registrar has no SIP transport (DESIGN.md:
 * "SIP only through an edge"). It asks the edge holding the watcher's flow first
 * (sk_bus_request_at), because only that edge can write down the connection a
 * client behind NAT opened (RFC 5626 §5.3); any other edge sends to the recorded
 * source address (UDP, symmetric like our responses) or by Route / Request-URI.
 * The final status goes back in OriginateReply: the notifier ends a subscription
 * on 481 or a timeout (RFC 6665 §4.2.2). */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sofia-sip/sip_header.h>
#include "skein/sk_buf.h"
#include "skein/sk_bus.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "core.h"
#include "sip_check.h"

SK_LOG_MODULE("originate");

struct edge_orig {
	struct edge_orig *prev, *next; /* e->orig_list: released at shutdown */
	struct edge *e;
	struct sk_bus_req *req;
	char what[64]; /* "NOTIFY sip:..." for logs */
};

static void orig_destroy(void *p)
{
	struct edge_orig *o = p;

	sk_deref(o->req);
}

static void orig_unlink(struct edge_orig *o)
{
	if (o->prev)
		o->prev->next = o->next;
	else
		o->e->orig_list = o->next;
	if (o->next)
		o->next->prev = o->prev;
	o->prev = o->next = NULL;
}

static void answer(struct edge *e, struct sk_bus_req *req, unsigned code, const char *reason,
		   msg_t *resp)
{
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Sip__V1__OriginateReply rep = SKEIN__SIP__V1__ORIGINATE_REPLY__INIT;
	char ss[512], ra[64], *hdrs[2];
	size_t n = 0;

	sk_counter_inc(code >= 200 && code < 300 ? e->m.orig_ok : e->m.orig_fail);
	rep.code = code;
	rep.reason = (char *)(reason ? reason : "");
	if (resp) {
		sip_t *sip = sip_object(resp);

		if (sip->sip_subscription_state &&
		    msg_header_field_e(ss, sizeof(ss) - 32,
				       (const msg_header_t *)sip->sip_subscription_state, 0) > 0) {
			memmove(ss + 20, ss, strlen(ss) + 1);
			memcpy(ss, "Subscription-State: ", 20);
			hdrs[n++] = ss;
		}
		if (sip->sip_retry_after) {
			snprintf(ra, sizeof(ra), "Retry-After: %lu",
				 (unsigned long)sip->sip_retry_after->af_delta);
			hdrs[n++] = ra;
		}
	}
	rep.n_headers = n;
	rep.headers = hdrs;
	env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_ORIGINATE_REPLY;
	env.originate_reply = &rep;
	sk_bus_reply(req, 0, &env);
}

static void on_ctx(struct edge_ctx *ctx, int status, msg_t *resp, int err, void *arg)
{
	struct edge_orig *o = arg;
	const char *reason = NULL;

	(void)ctx;
	if (status < 200)
		return;
	if (resp && sip_object(resp)->sip_status)
		reason = sip_object(resp)->sip_status->st_phrase;
	if (status >= 300)
		SK_INFO("%s: %d%s%s", o->what, status, err ? " " : "", err ? sk_strerror(err) : "");
	answer(o->e, o->req, (unsigned)status, reason, resp);
	orig_unlink(o);
	sk_deref(o); /* the transaction's reference */
}

/* Where the request goes: the flow (ours only: flow ids are per edge), else dest,
 * else the top Route, else the Request-URI. */
static int destination(struct edge *e, const Skein__Sip__V1__Originate *og, const sip_t *sip,
		       struct edge_dest *d)
{
	memset(d, 0, sizeof(*d));
	if (og->flow[0] && !strcmp(og->edge, e->member)) {
		uint64_t flow = strtoull(og->flow, NULL, 10);

		if (flow && edge_tp_flow_info(e->tp, flow, &d->proto, &d->addr)) {
			d->flow = flow;
			return 0;
		}
	}
	if (og->dest[0]) {
		if (edge_proto_parse(og->transport[0] ? og->transport : "udp", &d->proto) ||
		    edge_addr_parse(&d->addr, og->dest))
			return SK_EINVAL;
		/* a stream without its flow: a new connection (WebSocket clients cannot
		 * be reached that way; their flow is the only way) */
		if (d->proto == EDGE_PROTO_WS || d->proto == EDGE_PROTO_WSS)
			return SK_ENOTCONN;
		return 0;
	}
	if (sip->sip_route)
		return edge_route_uri(e, sip->sip_route->r_url, d);
	return edge_route_uri(e, sip->sip_request->rq_url, d);
}

/* The request comes without Via (the transaction layer adds ours); the checks of
 * edge_sip_check want one, so a placeholder goes in after the request line and out
 * again once parsed. */
static int parse(struct edge *e, const Skein__Sip__V1__Originate *og, msg_t **msgp,
		 struct edge_verdict *v)
{
	static const char via[] = "Via: SIP/2.0/UDP 0.0.0.0;branch=z9hG4bK.originate\r\n";
	const char *data = (const char *)og->message.data;
	const char *eol = memchr(data, '\n', og->message.len);
	struct sk_buf b;
	sip_t *sip;
	int err;

	*msgp = NULL;
	if (!eol || memmem(data, og->message.len, "\nVia:", 5) ||
	    memmem(data, og->message.len, "\nv:", 3))
		return SK_EBADMSG;
	sk_buf_init(&b);
	sk_buf_append(&b, data, (size_t)(eol + 1 - data));
	sk_buf_append(&b, via, sizeof(via) - 1);
	sk_buf_append(&b, eol + 1, og->message.len - (size_t)(eol + 1 - data));
	err = b.err ? b.err
		    : edge_sip_check(b.data, b.len, EDGE_UDP, (size_t)e->conf->max_msg_size + 64,
				     msgp, v);
	sk_buf_release(&b);
	if (err || !*msgp || v->status || v->drop || !(sip = sip_object(*msgp))->sip_request) {
		if (*msgp)
			msg_destroy(*msgp);
		*msgp = NULL;
		return err ? err : SK_EBADMSG;
	}
	msg_header_remove(*msgp, (msg_pub_t *)sip, (msg_header_t *)sip->sip_via);
	return 0;
}

static void on_originate(struct sk_bus_req *req, const Skein__Bus__V1__Envelope *env, void *arg)
{
	struct edge *e = arg;
	const Skein__Sip__V1__Originate *og = env->originate;
	struct edge_verdict v;
	struct edge_dest d;
	msg_t *msg = NULL;
	sip_t *sip;
	struct edge_orig *o;
	int err;

	if (!og || !og->message.len) {
		sk_bus_reply(req, SK_EBADMSG, NULL);
		return;
	}
	if (parse(e, og, &msg, &v)) {
		SK_WARN("originate from %s: not a request we can send", env->origin_node);
		if (msg)
			msg_destroy(msg);
		answer(e, req, 400, "Bad Request (not a request without Via)", NULL);
		return;
	}
	sip = sip_object(msg);
	err = destination(e, og, sip, &d);
	if (err) {
		SK_INFO("%s %s: no destination: %s", sip->sip_request->rq_method_name,
			og->dest[0] ? og->dest : "(by URI)", sk_strerror(err));
		msg_destroy(msg);
		answer(e, req, 503, "Service Unavailable (unreachable)", NULL);
		return;
	}
	o = sk_zalloc(sizeof(*o), orig_destroy);
	if (!o) {
		msg_destroy(msg);
		answer(e, req, 500, "Server Internal Error", NULL);
		return;
	}
	o->e = e;
	o->req = sk_ref(req);
	snprintf(o->what, sizeof(o->what), "%s %s", sip->sip_request->rq_method_name,
		 sip->sip_to && sip->sip_to->a_url->url_host ? sip->sip_to->a_url->url_host : "");
	err = edge_ctx_start(e->txl, NULL, msg, d.proto, &d.addr, d.flow,
			     d.tls_name[0] ? d.tls_name : NULL, on_ctx, o);
	if (err) {
		SK_INFO("%s: %s", o->what, sk_strerror(err));
		answer(e, req, 503, "Service Unavailable (send failed)", NULL);
		sk_deref(o);
		return;
	}
	o->next = e->orig_list;
	if (o->next)
		o->next->prev = o;
	e->orig_list = o;
}

/* Shutdown: the transaction layer closed without callbacks; what waited on it goes
 * (the bus answers the registrar's requests SK_EREMOTE as their last reference
 * drops). */
void edge_originate_stop(struct edge *e)
{
	while (e->orig_list) {
		struct edge_orig *o = e->orig_list;

		orig_unlink(o);
		sk_deref(o);
	}
}

int edge_originate_start(struct edge *e)
{
	return sk_bus_on_request(e->bus, SKEIN__BUS__V1__ENVELOPE__BODY_ORIGINATE, on_originate,
				 e);
}
