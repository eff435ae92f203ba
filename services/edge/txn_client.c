/* txn_client: client transactions (RFC 3261 §17.1, RFC 6026 §7.2), ACK, CANCEL (§9.1), Timer C. */
#include "txn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"

SK_LOG_MODULE("txn");

static uint64_t ctx_hash(const struct edge_txl *l, const char *branch, sip_method_t m,
			 const char *name)
{
	uint64_t h = txn_hash(l->seed, branch, strlen(branch));

	if (m == sip_method_unknown)
		return txn_hash(h, name ? name : "", name ? strlen(name) : 0);
	return txn_hash(h, &m, sizeof(m));
}

/* §17.1.3: the top Via's branch and the CSeq method. Our branches are unique, so the
 * sent-by need not be compared. */
static struct edge_ctx *ctx_find(struct edge_txl *l, const char *branch, sip_method_t m,
				 const char *name)
{
	uint64_t h = ctx_hash(l, branch, m, name);

	for (struct txn_hnode *n = txn_htab_first(&l->ctx_tab, h); n; n = n->next) {
		struct edge_ctx *c = TXN_CONTAINER(n, struct edge_ctx, hn);

		if (n->hash == h && c->method == m && strcmp(c->branch, branch) == 0 &&
		    (m != sip_method_unknown || strcmp(c->method_name, name ? name : "") == 0))
			return c;
	}
	return NULL;
}

static void ctx_destroy(void *data)
{
	struct edge_ctx *ctx = data;

	if (ctx->req)
		msg_destroy(ctx->req);
	free(ctx->data);
	free(ctx->ack);
	sk_deref(ctx->tls_name);
	sk_deref(ctx->l);
}

void txn_ctx_terminate(struct edge_ctx *ctx)
{
	struct edge_txl *l = ctx->l;

	if (ctx->state == CTX_TERMINATED)
		return;
	ctx->state = CTX_TERMINATED;
	txn_timer_stop(l, &ctx->retx);
	txn_timer_stop(l, &ctx->wait);
	txn_timer_stop(l, &ctx->tc);
	txn_htab_del(&l->ctx_tab, &ctx->hn);
	txn_htab_del(&l->id_tab, &ctx->hid);
	sk_deref(ctx); /* the layer's reference */
}

/* To the TU; after a final only 2xx of an INVITE (RFC 6026 §7.2). */
static void deliver(struct edge_ctx *ctx, int status, msg_t *resp, int err)
{
	if (status >= 200) {
		if (ctx->final && !(ctx->invite && status < 300))
			return;
		ctx->final = true;
	}
	if (ctx->released || !ctx->cb || ctx->l->closed)
		return;
	sk_ref(ctx);
	ctx->cb(ctx, status, resp, err, ctx->arg);
	sk_deref(ctx);
}

static int ctx_xmit(struct edge_ctx *ctx, const char *data, size_t len)
{
	const struct edge_txl_opts *o = &ctx->l->o;

	if (o->send)
		return o->send(o->send_arg, ctx->proto, &ctx->dst, ctx->flow, ctx->tls_name, data,
			       len, ctx->id | EDGE_TXL_COOKIE);
	return edge_tp_send(o->tp, ctx->proto, &ctx->dst, ctx->flow, ctx->tls_name, data, len,
			    ctx->id | EDGE_TXL_COOKIE);
}

void txn_ctx_send_error(struct edge_ctx *ctx, int err)
{
	if (ctx->state == CTX_TERMINATED)
		return;
	/* After a final response only an ACK could have failed: nothing to tell. */
	if (ctx->state == CTX_COMPLETED || ctx->state == CTX_ACCEPTED)
		return;
	SK_INFO("%s %s: transport failed: %s", ctx->invite ? "INVITE" : "request", ctx->branch,
		sk_strerror(err));
	sk_ref(ctx);
	deliver(ctx, 503, NULL, err);
	txn_ctx_terminate(ctx);
	sk_deref(ctx);
}

/* After the final response the request is never sent again: Timers A/E are stopped,
 * a CANCEL needs a transaction without a final (§9.1), the ACK of a non-2xx is built
 * already. What is left absorbs retransmitted responses by branch (and re-sends the
 * ACK), for Timer D/M's 64*T1: the parsed request and its bytes go now. An extension
 * method keeps its request, where method_name points. */
static void ctx_shed(struct edge_ctx *ctx)
{
	if (ctx->req && ctx->method != sip_method_unknown) {
		msg_destroy(ctx->req);
		ctx->req = NULL;
	}
	free(ctx->data);
	ctx->data = NULL;
	ctx->len = 0;
}

static void ctx_done(struct txn_timer *t)
{
	txn_ctx_terminate(TXN_CONTAINER(t, struct edge_ctx, wait));
}

/* Timers A (INVITE: doubling without bound, §17.1.1.2) and E (non-INVITE: doubling up
 * to T2, at T2 once Proceeding, §17.1.2.2). UDP only. */
static void timer_ae(struct txn_timer *t)
{
	struct edge_ctx *ctx = TXN_CONTAINER(t, struct edge_ctx, retx);
	struct edge_txl *l = ctx->l;
	int err = ctx_xmit(ctx, ctx->data, ctx->len);

	if (err) {
		txn_ctx_send_error(ctx, err);
		return;
	}
	txn_count_retx(l);
	if (ctx->invite)
		ctx->retx_ms *= 2;
	else if (ctx->state == CTX_PROCEEDING || ctx->retx_ms * 2 > l->o.t2_ms)
		ctx->retx_ms = l->o.t2_ms;
	else
		ctx->retx_ms *= 2;
	txn_timer_start(l, &ctx->retx, ctx->retx_ms, timer_ae);
}

/* Timers B and F: no final response in 64*T1; the TU gets 408 (§17.1.1.2, §17.1.2.2). */
static void timer_bf(struct txn_timer *t)
{
	struct edge_ctx *ctx = TXN_CONTAINER(t, struct edge_ctx, wait);

	txn_count_timeout(ctx->l);
	sk_ref(ctx);
	deliver(ctx, 408, NULL, SK_ETIMEDOUT);
	txn_ctx_terminate(ctx);
	sk_deref(ctx);
}

/* Registers a ready ctx (id, data, addressing set) and sends it; the timers per
 * §17.1.1.2 / §17.1.2.2. */
static int ctx_launch(struct edge_ctx *ctx)
{
	struct edge_txl *l = ctx->l;
	int err;

	ctx->id = l->next_id++;
	err = ctx_xmit(ctx, ctx->data, ctx->len);
	if (err)
		return err;
	ctx->hn.hash = ctx_hash(l, ctx->branch, ctx->method, ctx->method_name);
	ctx->hid.hash = ctx->id;
	txn_htab_add(&l->ctx_tab, &ctx->hn);
	txn_htab_add(&l->id_tab, &ctx->hid);
	l->st.ctx_total++;
	if (ctx->proto == EDGE_PROTO_UDP) {
		ctx->retx_ms = l->o.t1_ms;
		txn_timer_start(l, &ctx->retx, ctx->retx_ms, timer_ae);
	}
	txn_timer_start(l, &ctx->wait, 64ull * l->o.t1_ms, timer_bf);
	return 0;
}

static struct edge_ctx *ctx_new(struct edge_txl *l, enum edge_proto p, const struct edge_addr *dst,
				uint64_t flow, const char *tls_name)
{
	struct edge_ctx *ctx = sk_zalloc(sizeof(*ctx), ctx_destroy);

	if (!ctx)
		return NULL;
	ctx->l = sk_ref(l);
	ctx->proto = p;
	if (dst)
		ctx->dst = *dst;
	ctx->flow = flow;
	if (tls_name && !(ctx->tls_name = sk_strdup(tls_name)))
		ctx = sk_deref(ctx);
	return ctx;
}

/* §9.1: a CANCEL of its own (non-INVITE) client transaction, with the INVITE's Via
 * (same branch) to the same place. Nobody hears its result: the INVITE's final is what
 * counts. */
static void send_cancel(struct edge_ctx *inv)
{
	struct edge_ctx *c;
	struct sk_buf b;
	int err;

	inv->cancel_sent = true;
	c = ctx_new(inv->l, inv->proto, &inv->dst, inv->flow, inv->tls_name);
	if (!c)
		return;
	sk_buf_init(&b);
	err = edge_request_derive(&b, inv->req, "CANCEL", NULL);
	c->data = b.data;
	c->len = b.len;
	c->method = sip_method_cancel;
	c->method_name = "CANCEL";
	memcpy(c->branch, inv->branch, sizeof(c->branch));
	if (!err)
		err = ctx_launch(c);
	if (err) {
		SK_INFO("CANCEL %s not sent: %s", inv->branch, sk_strerror(err));
		sk_deref(c);
	}
}

/* Timer C (§16.8): after a provisional, CANCEL the branch and tell the TU 408 now;
 * the ctx stays to ACK the 487, bounded by a 64*T1 wait. Without one it is as if a
 * 408 came. */
static void timer_c(struct txn_timer *t)
{
	struct edge_ctx *ctx = TXN_CONTAINER(t, struct edge_ctx, tc);

	txn_count_timeout(ctx->l);
	sk_ref(ctx);
	if (ctx->prov) {
		if (!ctx->cancel_sent)
			send_cancel(ctx);
		txn_timer_start(ctx->l, &ctx->wait, 64ull * ctx->l->o.t1_ms, ctx_done);
		deliver(ctx, 408, NULL, SK_ETIMEDOUT);
	} else {
		deliver(ctx, 408, NULL, SK_ETIMEDOUT);
		txn_ctx_terminate(ctx);
	}
	sk_deref(ctx);
}

/* Our Via's text before the branch for transport p (RFC 3261 §18.1.1: the address
 * and port we listen on for it, or the advertised host), cached in the layer. */
static const char *via_prefix(struct edge_txl *l, enum edge_proto p, const struct edge_addr *local,
			      size_t *len)
{
	char ip[64], buf[320];
	const char *host;
	bool v6;
	int n;

	if (l->via[p].pre && !memcmp(&l->via[p].local, local, sizeof(*local))) {
		*len = l->via[p].len;
		return l->via[p].pre;
	}
	host = l->via_host ? l->via_host : edge_addr_ip(local, ip, sizeof(ip));
	v6 = strchr(host, ':') && host[0] != '[';
	n = snprintf(buf, sizeof(buf), "SIP/2.0/%s %s%s%s:%u;branch=", edge_proto_via(p),
		     v6 ? "[" : "", host, v6 ? "]" : "", edge_addr_port(local));
	if (n < 0 || (size_t)n >= sizeof(buf))
		return NULL;
	free(l->via[p].pre);
	l->via[p].pre = strdup(buf);
	if (!l->via[p].pre)
		return NULL;
	l->via[p].local = *local;
	l->via[p].len = (size_t)n;
	*len = (size_t)n;
	return l->via[p].pre;
}

int edge_ctx_start(struct edge_txl *l, struct edge_ctx **ctxp, msg_t *req, enum edge_proto p,
		   const struct edge_addr *dst, uint64_t flow, const char *tls_name,
		   edge_ctx_cb *cb, void *arg)
{
	return edge_ctx_start_tagged(l, ctxp, req, NULL, p, dst, flow, tls_name, cb, arg);
}

int edge_ctx_start_tagged(struct edge_txl *l, struct edge_ctx **ctxp, msg_t *req,
			  const char *tag, enum edge_proto p, const struct edge_addr *dst,
			  uint64_t flow, const char *tls_name, edge_ctx_cb *cb, void *arg)
{
	sip_t *sip = req ? sip_object(req) : NULL;
	struct edge_addr local;
	struct edge_ctx *ctx = NULL;
	struct sk_buf b;
	const char *pre;
	size_t plen, blen, xlen;
	char *via;
	sip_via_t *v;
	int err;

	if (ctxp)
		*ctxp = NULL;
	sk_buf_init(&b);
	if (l && l->closed) {
		err = SK_ECANCELED;
		goto out;
	}
	if (!l || !sip || !sip->sip_request || !sip->sip_cseq ||
	    sip->sip_request->rq_method == sip_method_ack || (!dst && !flow) ||
	    (unsigned)p >= EDGE_PROTO_MAX_ || !edge_tp_local(l->o.tp, p, &local)) {
		err = SK_EINVAL;
		goto out;
	}
	ctx = ctx_new(l, p, dst, flow, tls_name);
	if (!ctx) {
		err = SK_ENOMEM;
		goto out;
	}
	ctx->req = req;
	req = NULL;
	ctx->method = sip->sip_cseq->cs_method;
	ctx->method_name = sip->sip_cseq->cs_method_name;
	ctx->invite = ctx->method == sip_method_invite;
	ctx->cb = cb;
	ctx->arg = arg;
	edge_branch_new(ctx->branch);
	if (tag && strlen(tag) <= EDGE_BRANCH_TAG_MAX &&
	    strspn(tag, "0123456789abcdefABCDEF") == strlen(tag)) {
		size_t n = strlen(ctx->branch);

		ctx->branch[n] = '.';
		memcpy(ctx->branch + n + 1, tag, strlen(tag) + 1);
	}
	/* Our Via (§8.1.1.7, §18.1.1; RFC 3581 §3: rport asks for symmetric responses):
	 * the cached prefix, the branch, ";rport" and the configured parameter. */
	pre = via_prefix(l, p, &local, &plen);
	blen = strlen(ctx->branch);
	xlen = l->via_param ? strlen(l->via_param) : 0;
	via = pre ? su_alloc(msg_home(ctx->req), plen + blen + 6 + xlen + 1) : NULL;
	if (via) {
		memcpy(via, pre, plen);
		memcpy(via + plen, ctx->branch, blen);
		memcpy(via + plen + blen, ";rport", 6);
		if (xlen)
			memcpy(via + plen + blen + 6, l->via_param, xlen);
		via[plen + blen + 6 + xlen] = '\0';
	}
	v = via ? sip_via_make(msg_home(ctx->req), via) : NULL;
	if (!v || msg_header_insert(ctx->req, (msg_pub_t *)sip, (msg_header_t *)v) < 0) {
		err = SK_ENOMEM;
		goto out;
	}
	err = edge_msg_print(ctx->req, &b);
	if (err)
		goto out;
	ctx->data = b.data;
	ctx->len = b.len;
	sk_buf_init(&b);
	err = ctx_launch(ctx);
	if (err)
		goto out;
	if (ctx->invite)
		txn_timer_start(l, &ctx->tc, l->o.timer_c_ms, timer_c);
	if (ctxp)
		*ctxp = ctx;
	return 0;
out:
	if (req)
		msg_destroy(req);
	sk_buf_release(&b);
	sk_deref(ctx);
	return err;
}

/* §17.1.1.3: the ACK of a non-2xx final, sent (and kept for retransmitted finals). */
static void send_ack(struct edge_ctx *ctx, msg_t *resp)
{
	struct sk_buf b;

	sk_buf_init(&b);
	if (edge_request_derive(&b, ctx->req, "ACK", sip_object(resp)->sip_to)) {
		sk_buf_release(&b);
		return;
	}
	ctx->ack = b.data;
	ctx->ack_len = b.len;
	ctx_xmit(ctx, ctx->ack, ctx->ack_len);
}

static void invite_response(struct edge_ctx *ctx, int status, msg_t *resp)
{
	struct edge_txl *l = ctx->l;

	if (ctx->state == CTX_COMPLETED) {
		if (status >= 300 && ctx->ack) { /* a retransmitted final: ACK again */
			l->st.retransmissions_absorbed++;
			ctx_xmit(ctx, ctx->ack, ctx->ack_len);
		}
		return;
	}
	if (ctx->state == CTX_ACCEPTED) {
		if (status >= 200 && status < 300)
			deliver(ctx, status, resp, 0);
		return;
	}
	txn_timer_stop(l, &ctx->retx);
	if (status < 200) {
		if (ctx->state == CTX_CALLING && !ctx->final)
			txn_timer_stop(l, &ctx->wait); /* Timer B matters in Calling only */
		ctx->state = CTX_PROCEEDING;
		ctx->prov = true;
		if (status > 100 && !ctx->final) /* §16.7 item 2 */
			txn_timer_start(l, &ctx->tc, l->o.timer_c_ms, timer_c);
		if (ctx->cancel_wanted && !ctx->cancel_sent)
			send_cancel(ctx);
		if (!ctx->final)
			deliver(ctx, status, resp, 0);
		return;
	}
	txn_timer_stop(l, &ctx->tc);
	if (status < 300) {
		ctx->state = CTX_ACCEPTED; /* Timer M, RFC 6026 §7.2 */
		txn_timer_start(l, &ctx->wait, 64ull * l->o.t1_ms, ctx_done);
	} else {
		/* Timer D: "at least 32 s" for UDP is 64*T1 with the default T1. */
		ctx->state = CTX_COMPLETED;
		send_ack(ctx, resp);
		txn_timer_start(l, &ctx->wait,
				ctx->proto == EDGE_PROTO_UDP ? 64ull * l->o.t1_ms : 0, ctx_done);
	}
	deliver(ctx, status, resp, 0);
	ctx_shed(ctx);
}

static void other_response(struct edge_ctx *ctx, int status, msg_t *resp)
{
	struct edge_txl *l = ctx->l;

	if (ctx->state == CTX_COMPLETED) {
		l->st.retransmissions_absorbed++;
		return;
	}
	if (status < 200) {
		ctx->state = CTX_PROCEEDING;
	} else {
		ctx->state = CTX_COMPLETED; /* Timer K */
		txn_timer_stop(l, &ctx->retx);
		txn_timer_start(l, &ctx->wait, ctx->proto == EDGE_PROTO_UDP ? l->o.t4_ms : 0,
				ctx_done);
	}
	deliver(ctx, status, resp, 0);
	if (ctx->state == CTX_COMPLETED)
		ctx_shed(ctx);
}

void txn_client_input(struct edge_txl *l, const struct edge_rx *rx, msg_t *msg)
{
	sip_t *sip = sip_object(msg);
	const char *br = txn_via_param(sip->sip_via, "branch");
	struct edge_ctx *ctx;

	ctx = br ? ctx_find(l, br, sip->sip_cseq->cs_method, sip->sip_cseq->cs_method_name) : NULL;
	if (!ctx) {
		l->st.stray_responses++;
		if (l->o.on_stateless)
			l->o.on_stateless(l, msg, rx, l->o.arg);
		else
			msg_destroy(msg);
		return;
	}
	/* A connection we opened: the ACK and CANCEL follow on it (§18.1.1). */
	if (!ctx->flow && rx->flow)
		ctx->flow = rx->flow;
	/* RFC 6026 §7.2: in Accepted a retransmitted 2xx goes to the TU. When the TU
	 * has let go (a proxy's fork ends once its final response is forwarded), the
	 * 2xx is forwarded as a response without a transaction: a 200 lost on the
	 * caller's side is then still repaired by the callee's retransmissions
	 * (RFC 3261 §13.3.1.4) instead of the call failing. */
	if (ctx->released && ctx->invite && ctx->state == CTX_ACCEPTED &&
	    sip->sip_status->st_status >= 200 && sip->sip_status->st_status < 300 &&
	    l->o.on_stateless && !l->closed) {
		l->o.on_stateless(l, msg, rx, l->o.arg);
		return;
	}
	msg_header_remove(msg, (msg_pub_t *)sip, (msg_header_t *)sip->sip_via);
	sk_ref(ctx);
	if (ctx->invite)
		invite_response(ctx, sip->sip_status->st_status, msg);
	else
		other_response(ctx, sip->sip_status->st_status, msg);
	sk_deref(ctx);
	msg_destroy(msg);
}

void edge_ctx_cancel(struct edge_ctx *ctx)
{
	if (!ctx || !ctx->invite || ctx->final || ctx->cancel_wanted ||
	    (ctx->state != CTX_CALLING && ctx->state != CTX_PROCEEDING))
		return;
	ctx->cancel_wanted = true;
	if (ctx->prov) /* §9.1: not before a provisional response */
		send_cancel(ctx);
}

void edge_ctx_release(struct edge_ctx *ctx)
{
	if (!ctx)
		return;
	ctx->released = true;
	ctx->cb = NULL;
}

msg_t *edge_ctx_msg(const struct edge_ctx *ctx)
{
	return ctx->req;
}
