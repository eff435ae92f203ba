/* core_pres: the SIP SIMPLE requests skein-registrar serves as user agent server
 * (issue 7, docs/presence.md): PUBLISH (RFC 3903), SUBSCRIBE for the packages it
 * notifies (presence RFC 3856, presence.winfo RFC 3857, message-summary RFC 3842,
 * reg RFC 3680) and a MESSAGE kept for a user with no binding. The edge parses and
 * authenticates; the registrar decides and answers over the bus (UasRequest ->
 * UasReply); this file turns the answer into the SIP response.
 *
 * Our Contact in those dialogs is this edge (or the cluster host naming every
 * edge), so in-dialog SUBSCRIBEs come back here with a Request-URI naming us and
 * no Route: they are recognised by method and Event before the proxy's in-dialog
 * routing. They are not challenged (RFC 6665 leaves it to policy; the dialog
 * identifiers, with our random tag, are the credential), as OpenSIPS' presence. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/msg_header.h>
#include "skein/sk_buf.h"
#include "skein/sk_bus.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "core.h"
#include "regdata.h"

SK_LOG_MODULE("presence");

#define MAX_LIST 16 /* Record-Route, Accept, Supported entries passed on */

/* The packages skein-registrar notifies (RFC 6665 §7.2). */
static const char *const served[] = {"presence", "presence.winfo", "message-summary", "reg"};

static bool event_served(const sip_t *sip)
{
	if (!sip->sip_event || !sip->sip_event->o_type)
		return false;
	for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++)
		if (!strcasecmp(sip->sip_event->o_type, served[i]))
			return true;
	return false;
}

/* Every Route entry names us (an outbound-proxy Route, RFC 3261 §8.1.2). */
static bool routes_ours(struct edge *e, const sip_t *sip)
{
	for (const sip_route_t *r = sip->sip_route; r; r = r->r_next)
		if (!edge_uri_is_us(e, r->r_url))
			return false;
	return true;
}

bool edge_pres_wants(struct edge *e, const sip_t *sip)
{
	const url_t *ru = sip->sip_request->rq_url;
	sip_method_t m = sip->sip_request->rq_method;
	bool in_dialog = sip->sip_to && sip->sip_to->a_tag;

	if (m != sip_method_publish && m != sip_method_subscribe)
		return false;
	if (!routes_ours(e, sip))
		return false;
	if (m == sip_method_publish) /* every event: 489 for those not served */
		return !in_dialog && edge_domain_local(e, ru->url_host);
	if (!event_served(sip))
		return false; /* other packages (dialog, conference ...) go to the devices */
	if (in_dialog)
		return edge_uri_is_us(e, ru) ||
		       (edge_domain_local(e, ru->url_host) && sip->sip_to &&
			edge_domain_local(e, sip->sip_to->a_url->url_host));
	return edge_domain_local(e, ru->url_host);
}

struct pres_op {
	struct edge *e;
	struct edge_stx *stx;
	char resource[REGDATA_AOR_MAX];
	char user[REGDATA_AOR_MAX]; /* authenticated "user@domain", "" */
};

static void op_destroy(void *p)
{
	struct pres_op *o = p;

	sk_deref(o->stx);
}

static void on_reply(int err, const Skein__Bus__V1__Envelope *env, void *arg)
{
	struct pres_op *o = arg;
	const Skein__Sip__V1__UasReply *rep =
		env && env->body_case == SKEIN__BUS__V1__ENVELOPE__BODY_UAS_REPLY ? env->uas_reply
										   : NULL;
	struct sk_buf x;

	sk_buf_init(&x);
	if (err || !rep || rep->code < 200 || rep->code > 699) {
		SK_WARN("registrar (%s %s): %s", sip_object(edge_stx_msg(o->stx))->sip_request->rq_method_name,
			o->resource, err ? sk_strerror(err) : "bad reply");
		edge_reply(o->e, o->stx, 500, "Server Internal Error (presence unavailable)",
			   "Retry-After: 5\r\n");
		sk_counter_inc(o->e->m.uas_fail);
		goto out;
	}
	sk_counter_inc(o->e->m.uas_ok);
	for (size_t i = 0; i < rep->n_headers; i++) {
		/* one header line each: a CR or LF would let the reply forge headers */
		if (strpbrk(rep->headers[i], "\r\n"))
			continue;
		sk_buf_printf(&x, "%s\r\n", rep->headers[i]);
	}
	if (x.err) {
		edge_reply(o->e, o->stx, 500, "Server Internal Error", NULL);
		goto out;
	}
	edge_count_resp(o->e, (int)rep->code);
	edge_stx_reply(o->stx, (int)rep->code, rep->reason[0] ? rep->reason : NULL,
		       x.len ? x.data : NULL, rep->content_type[0] ? rep->content_type : NULL,
		       rep->body.data, rep->body.len);
out:
	sk_buf_release(&x);
	sk_deref(o);
}

/* A header field as text into the message's home (one entry of a list header). */
static char *field(msg_t *msg, const void *h)
{
	char buf[2048];
	isize_t n;

	if (!h)
		return "";
	n = msg_header_field_e(buf, sizeof(buf), (const msg_header_t *)h, 0);
	if (n <= 0 || (size_t)n >= sizeof(buf))
		return "";
	return su_strdup(msg_home(msg), buf);
}

static char *uri_text(msg_t *msg, const url_t *u)
{
	char *s = u ? url_as_string(msg_home(msg), u) : NULL;

	return s ? s : "";
}

static char *lower(msg_t *msg, const char *s)
{
	char *d = su_strdup(msg_home(msg), s ? s : "");

	for (char *p = d; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d ? d : "";
}

/* Where we are for this transport: our Contact in the dialog. */
static void local_contact(struct edge *e, enum edge_proto p, char *out, size_t size)
{
	const char *tp = edge_proto_name(p);

	if (e->conf->cluster_host[0])
		snprintf(out, size, "sip:%s;transport=%s", e->conf->cluster_host, tp);
	else if (strchr(e->host, ':'))
		snprintf(out, size, "sip:[%s]:%u;transport=%s", e->host, e->port[p], tp);
	else
		snprintf(out, size, "sip:%s:%u;transport=%s", e->host, e->port[p], tp);
}

static void send_uas(struct pres_op *o)
{
	struct edge *e = o->e;
	msg_t *msg = edge_stx_msg(o->stx);
	sip_t *sip = sip_object(msg);
	const struct edge_rx *rx = edge_stx_rx(o->stx);
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Sip__V1__UasRequest rq = SKEIN__SIP__V1__UAS_REQUEST__INIT;
	char *rr[MAX_LIST], *acc[MAX_LIST], *sup[MAX_LIST];
	char watcher[REGDATA_AOR_MAX] = "", tmp[REGDATA_AOR_MAX + 8], src[64], flow[24];
	char contact[300];
	const char *why;
	size_t n;
	int err;

	snprintf(tmp, sizeof(tmp), "%s@%s",
		 sip->sip_from->a_url->url_user ? sip->sip_from->a_url->url_user : "",
		 sip->sip_from->a_url->url_host ? sip->sip_from->a_url->url_host : "");
	if (regdata_aor_norm(watcher, sizeof(watcher), tmp, &why))
		watcher[0] = 0; /* a From without user (a service): the registrar decides */
	rq.method = (char *)sip->sip_request->rq_method_name;
	rq.resource = o->resource;
	rq.resource_uri = uri_text(msg, sip->sip_to->a_url);
	rq.event = sip->sip_event ? lower(msg, sip->sip_event->o_type) : "";
	rq.event_id = sip->sip_event && sip->sip_event->o_id ? (char *)sip->sip_event->o_id : "";
	rq.watcher = watcher;
	rq.from = field(msg, sip->sip_from);
	rq.from_tag = sip->sip_from->a_tag ? (char *)sip->sip_from->a_tag : "";
	rq.to_tag = sip->sip_to->a_tag ? (char *)sip->sip_to->a_tag : "";
	rq.local_tag = (char *)edge_stx_to_tag(o->stx);
	rq.call_id = (char *)sip->sip_call_id->i_id;
	rq.cseq = sip->sip_cseq->cs_seq;
	rq.expires = sip->sip_expires ? (int64_t)sip->sip_expires->ex_delta : -1;
	rq.contact = sip->sip_contact ? uri_text(msg, sip->sip_contact->m_url) : "";
	n = 0;
	for (sip_record_route_t *r = sip->sip_record_route; r && n < MAX_LIST; r = r->r_next)
		rr[n++] = field(msg, r);
	rq.n_record_route = n;
	rq.record_route = rr;
	n = 0;
	for (sip_accept_t *a = sip->sip_accept; a && n < MAX_LIST; a = a->ac_next)
		if (a->ac_type)
			acc[n++] = lower(msg, a->ac_type);
	rq.n_accept = n;
	rq.accept = acc;
	n = 0;
	if (sip->sip_supported && sip->sip_supported->k_items)
		for (size_t i = 0; sip->sip_supported->k_items[i] && n < MAX_LIST; i++)
			sup[n++] = (char *)sip->sip_supported->k_items[i];
	rq.n_supported = n;
	rq.supported = sup;
	rq.sip_if_match = sip->sip_if_match && sip->sip_if_match->g_string
				  ? (char *)sip->sip_if_match->g_string
				  : "";
	rq.content_type = sip->sip_content_type && sip->sip_content_type->c_type
				  ? lower(msg, sip->sip_content_type->c_type)
				  : "";
	rq.content_type_full = sip->sip_content_type ? field(msg, sip->sip_content_type) : "";
	if (sip->sip_payload) {
		rq.body.data = (uint8_t *)sip->sip_payload->pl_data;
		rq.body.len = sip->sip_payload->pl_len;
	}
	rq.user = o->user;
	rq.trusted = edge_guard_trusted(e, &rx->src);
	rq.edge = (char *)e->member;
	snprintf(flow, sizeof(flow), "%llu", (unsigned long long)rx->flow);
	rq.flow = rx->flow ? flow : "";
	rq.transport = (char *)edge_proto_name(rx->proto);
	edge_addr_str(&rx->src, src, sizeof(src));
	rq.source = src;
	local_contact(e, rx->proto, contact, sizeof(contact));
	rq.local_contact = contact;
	rq.user_agent = sip->sip_user_agent ? (char *)sip->sip_user_agent->g_string : "";
	rq.date = sip->sip_date ? field(msg, sip->sip_date) : "";
	env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_UAS_REQUEST;
	env.uas_request = &rq;
	err = sk_bus_request(e->bus, "registrar", &env, e->conf->registrar_deadline, 0, on_reply,
			     o);
	if (err) {
		SK_WARN("registrar: %s", sk_strerror(err));
		edge_reply(e, o->stx, 500, "Server Internal Error (presence unavailable)",
			   "Retry-After: 5\r\n");
		sk_counter_inc(e->m.uas_fail);
		sk_deref(o);
	}
}

static void on_auth(struct edge *e, struct edge_stx *stx, bool ok, const char *user, void *arg)
{
	struct pres_op *o = arg;
	sip_t *sip = sip_object(edge_stx_msg(stx));
	char tmp[REGDATA_AOR_MAX + 8];
	const char *why;

	if (!ok) { /* answered (challenge, 403 ...) */
		sk_deref(o);
		return;
	}
	/* The From user is the one who authenticated (as for calls: no spoofed watcher
	 * or publisher identities). */
	if (!sip->sip_from->a_url->url_user || strcmp(sip->sip_from->a_url->url_user, user)) {
		edge_reply(e, stx, 403, "Forbidden (From does not match the authenticated user)",
			   NULL);
		sk_deref(o);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s@%s", user, sip->sip_from->a_url->url_host);
	if (regdata_aor_norm(o->user, sizeof(o->user), tmp, &why)) {
		edge_reply(e, stx, 400, "Bad Request (From is not a valid address)", NULL);
		sk_deref(o);
		return;
	}
	send_uas(o);
}

static struct pres_op *op_new(struct edge *e, struct edge_stx *stx, const char *resource)
{
	struct pres_op *o = sk_zalloc(sizeof(*o), op_destroy);

	if (!o) {
		edge_reply(e, stx, 500, "Server Internal Error", NULL);
		return NULL;
	}
	o->e = e;
	o->stx = sk_ref(stx);
	snprintf(o->resource, sizeof(o->resource), "%s", resource);
	return o;
}

void edge_pres_request(struct edge *e, struct edge_stx *stx)
{
	sip_t *sip = sip_object(edge_stx_msg(stx));
	bool in_dialog = sip->sip_to->a_tag != NULL;
	/* In a dialog the resource is the To (our identity in it); the Request-URI is
	 * our Contact. Out of dialog it is the Request-URI (RFC 6665 §4.1.2). */
	const url_t *u = in_dialog ? sip->sip_to->a_url : sip->sip_request->rq_url;
	const url_t *from = sip->sip_from->a_url;
	char resource[REGDATA_AOR_MAX], tmp[REGDATA_AOR_MAX + 8], realm[EDGE_DIGEST_REALM_MAX + 1];
	const char *why;
	struct pres_op *o;

	if (sk_daemon_draining(e->d) && !in_dialog) {
		edge_reply(e, stx, 503, "Service Unavailable (draining)", "Retry-After: 30\r\n");
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s@%s", u->url_user ? u->url_user : "",
		 u->url_host ? u->url_host : "");
	if (!u->url_user || regdata_aor_norm(resource, sizeof(resource), tmp, &why)) {
		edge_reply(e, stx, 404, "Not Found (no such resource)", NULL);
		return;
	}
	if (!(o = op_new(e, stx, resource)))
		return;
	/* Local subscribers authenticate (407), out of dialog; watchers from other
	 * domains cannot, and are told apart by the registrar (rq.user ""). */
	if (!in_dialog && edge_domain_local(e, from->url_host)) {
		if (regdata_domain_norm(realm, sizeof(realm), from->url_host, &why)) {
			edge_reply(e, stx, 400, "Bad Request (From domain)", NULL);
			sk_deref(o);
			return;
		}
		edge_auth(e, stx, true, realm, on_auth, o);
		return;
	}
	send_uas(o);
}

void edge_pres_store(struct edge *e, struct edge_stx *stx, const char *aor, const char *user)
{
	struct pres_op *o = op_new(e, stx, aor);

	if (!o)
		return;
	snprintf(o->user, sizeof(o->user), "%s", user ? user : "");
	send_uas(o);
}
