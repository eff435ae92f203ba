/* core_relay: requests for bindings whose connection another edge holds (RFC 5626
 * flows; SIP Thor's "any node serves any subscriber"). The request goes over the bus
 * (SipRelay, a directed message) to the edge holding the flow, which writes it down
 * the connection; responses that come up that connection carry our Via with our
 * member id (";sk-edge=") and go back over the bus to us, into the transaction layer
 * as if they had arrived here. A flow that is gone comes back as SipRelayError and
 * fails the branch at once (the caller gets 480, not a 32 s timeout).
 *
 * Remote flows are named to the transaction layer by local handles (bit 62 set): a
 * small table maps each to (member id, flow id on that member). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sofia-sip/sip_header.h>
#include "skein/sk_buf.h"
#include "skein/sk_bus.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_node.h"
#include "skein/sk_sys.h"
#include "core.h"
#include "sipmsg.h"

SK_LOG_MODULE("relay");

#define RELAY_SLOTS 1024

struct remote_flow {
	uint64_t handle;
	uint64_t flow;
	uint64_t used_ms;
	char member[128];
};

static struct remote_flow table[RELAY_SLOTS];
static uint64_t next_handle = 1;

bool edge_relay_is_remote(uint64_t flow)
{
	return (flow & EDGE_FLOW_REMOTE) != 0;
}

/* The handle for (member, flow): reused while it is in the table; the least recently
 * used slot is replaced (its transactions then fail with SK_ENOTCONN: 480). */
uint64_t edge_relay_handle(const char *member, uint64_t flow)
{
	struct remote_flow *lru = &table[0];
	uint64_t now = sk_sys_unix_ms();

	for (size_t i = 0; i < RELAY_SLOTS; i++) {
		struct remote_flow *r = &table[i];

		if (r->handle && r->flow == flow && !strcmp(r->member, member)) {
			r->used_ms = now;
			return r->handle;
		}
		if (!r->handle || r->used_ms < lru->used_ms)
			lru = r;
		if (!r->handle)
			break;
	}
	if (strlen(member) >= sizeof(lru->member))
		return 0;
	lru->handle = EDGE_FLOW_REMOTE | next_handle++;
	lru->flow = flow;
	lru->used_ms = now;
	strcpy(lru->member, member);
	return lru->handle;
}

static const struct remote_flow *find(uint64_t handle)
{
	for (size_t i = 0; i < RELAY_SLOTS && table[i].handle; i++)
		if (table[i].handle == handle)
			return &table[i];
	return NULL;
}

bool edge_member_alive(struct edge *e, const char *member)
{
	struct sk_node *n = sk_daemon_node(e->d);

	for (size_t i = 0; n && i < sk_node_size(n); i++)
		if (!strcmp(sk_node_at(n, i)->id, member))
			return true;
	return false;
}

/* The transaction layer's send: remote handles over the bus, the rest ourselves. */
int edge_relay_send(void *arg, enum edge_proto p, const struct edge_addr *dst, uint64_t flow,
		    const char *tls_name, const void *data, size_t len, uint64_t cookie)
{
	struct edge *e = arg;
	const struct remote_flow *r;
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Sip__V1__SipRelay rl = SKEIN__SIP__V1__SIP_RELAY__INIT;
	char fl[24];
	int err;

	if (!edge_relay_is_remote(flow))
		return edge_tp_send(e->tp, p, dst, flow, tls_name, data, len, cookie);
	if (!(r = find(flow)))
		return SK_ENOTCONN;
	snprintf(fl, sizeof(fl), "%llu", (unsigned long long)r->flow);
	rl.flow = fl;
	rl.message.data = (uint8_t *)data;
	rl.message.len = len;
	rl.cookie = cookie;
	env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_SIP_RELAY;
	env.sip_relay = &rl;
	err = sk_bus_send(e->bus, r->member, &env);
	if (err)
		SK_INFO("relay to %s: %s", r->member, sk_strerror(err));
	else
		sk_counter_inc(e->m.relayed_out);
	return err ? SK_ENOTCONN : 0;
}

static void send_error(struct edge *e, const char *to, uint64_t cookie, int err, const char *flow)
{
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Sip__V1__SipRelayError re = SKEIN__SIP__V1__SIP_RELAY_ERROR__INIT;

	re.cookie = cookie;
	re.err = err;
	re.flow = (char *)flow;
	env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_SIP_RELAY_ERROR;
	env.sip_relay_error = &re;
	sk_bus_send(e->bus, to, &env);
}

/* A message from another edge: down one of our flows, or a response coming back. */
static void on_relay(const Skein__Bus__V1__Envelope *env, void *arg)
{
	struct edge *e = arg;
	const Skein__Sip__V1__SipRelay *rl = env->sip_relay;
	struct edge_rx rx;
	msg_t *msg = NULL;
	int err;

	if (rl->flow[0]) {
		uint64_t flow = strtoull(rl->flow, NULL, 10);
		enum edge_proto p;
		struct edge_addr a;

		err = edge_tp_flow_info(e->tp, flow, &p, &a)
			  ? edge_tp_send(e->tp, p, &a, flow, NULL, rl->message.data, rl->message.len, 0)
			  : SK_ENOTCONN;
		if (err) {
			SK_INFO("relay from %s: flow %s: %s", env->origin_node, rl->flow,
				sk_strerror(err));
			send_error(e, env->origin_node, rl->cookie, err, rl->flow);
		} else {
			sk_counter_inc(e->m.relayed_in);
		}
		return;
	}
	/* A response for one of our transactions, from up a flow another edge holds. */
	memset(&rx, 0, sizeof(rx));
	rx.proto = EDGE_PROTO_TCP;
	rx.data = (const char *)rl->message.data;
	rx.len = rl->message.len;
	rx.arrived_ns = uv_hrtime();
	if (edge_sip_check(rx.data, rx.len, EDGE_UDP, (size_t)e->conf->max_msg_size, &msg,
			   &rx.verdict) ||
	    !msg)
		return;
	if (sip_object(msg)->sip_request) {
		msg_destroy(msg);
		return;
	}
	sk_counter_inc(e->m.relayed_in);
	edge_txl_input(e->txl, &rx, msg);
}

static void on_relay_error(const Skein__Bus__V1__Envelope *env, void *arg)
{
	struct edge *e = arg;
	const Skein__Sip__V1__SipRelayError *re = env->sip_relay_error;

	SK_INFO("%s: flow %s failed: %s", env->origin_node, re->flow, sk_strerror(re->err));
	if (re->cookie)
		edge_txl_send_error(e->txl, re->cookie, re->err ? re->err : SK_ENOTCONN);
}

/* A response that came up one of our flows for another edge's transaction: its top
 * Via names that edge (";sk-edge="). True when it was handed back. */
bool edge_relay_back(struct edge *e, msg_t *msg)
{
	sip_t *sip = sip_object(msg);
	const char *member = sip->sip_via ? msg_params_find(sip->sip_via->v_params, "sk-edge=")
					  : NULL;
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Sip__V1__SipRelay rl = SKEIN__SIP__V1__SIP_RELAY__INIT;
	char to[128];
	struct sk_buf b;
	size_t n;

	if (!member || !*member)
		return false;
	n = strlen(member);
	if (member[0] == '"' && n >= 2) {
		member++;
		n -= 2;
	}
	if (n >= sizeof(to))
		return false;
	memcpy(to, member, n);
	to[n] = 0;
	if (!strcmp(to, e->member))
		return false;
	sk_buf_init(&b);
	if (!edge_msg_print(msg, &b)) {
		rl.flow = (char *)"";
		rl.message.data = (uint8_t *)b.data;
		rl.message.len = b.len;
		env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_SIP_RELAY;
		env.sip_relay = &rl;
		if (sk_bus_send(e->bus, to, &env) == 0)
			sk_counter_inc(e->m.relayed_out);
	}
	sk_buf_release(&b);
	return true;
}

/* A member left (or was timed out): its flows are gone. Transactions waiting on them
 * fail now (503 to the proxy, 480 to the caller) instead of at Timer B. */
void edge_relay_member_gone(struct edge *e, const char *member)
{
	for (size_t i = 0; i < RELAY_SLOTS && table[i].handle; i++) {
		struct remote_flow *r = &table[i];

		if (strcmp(r->member, member))
			continue;
		if (e->txl)
			edge_txl_flow_closed(e->txl, r->handle);
		/* the slot stays (a linear table without holes); it is never matched again */
		r->member[0] = 0;
		r->flow = 0;
	}
}

int edge_relay_start(struct edge *e)
{
	int err = sk_bus_on_direct(e->bus, SKEIN__BUS__V1__ENVELOPE__BODY_SIP_RELAY, on_relay, e);

	if (!err)
		err = sk_bus_on_direct(e->bus, SKEIN__BUS__V1__ENVELOPE__BODY_SIP_RELAY_ERROR,
				       on_relay_error, e);
	return err;
}
