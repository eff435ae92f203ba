/* txn_server: server transactions (RFC 3261 §17.2, RFC 6026 §7.1), CANCEL (§9.2), Via fix-up. */
#define _GNU_SOURCE /* memmem */
#include "txn_int.h"
#include "sip_peek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/su_alloc.h>
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"

SK_LOG_MODULE("txn");

/* A request's key (§17.2.3). */
struct stx_key {
	const char *branch, *host, *port;
	sip_method_t method;
	const char *method_name;
	uint64_t hash;
};

/* §17.2.3 matches on the top Via branch when it has the magic cookie. An RFC 2543
 * request has none: instead of §17.2.3's Request-URI/tag/Via comparison, it is keyed
 * by Call-ID, CSeq number, From tag and the top Via's branch (if any). Its ACK and
 * CANCEL share those, so they still find the INVITE; what differs from §17.2.3 is only
 * that two 2543 requests with the same values but other Request-URIs collide (a
 * retransmission then, which is what a 2543 UAC would mean anyway). */
static int key_of(msg_t *msg, struct stx_key *k, bool ack_as_invite)
{
	sip_t *sip = sip_object(msg);
	const sip_via_t *v = sip->sip_via;
	const char *br = txn_via_param(v, "branch");

	if (br && strncmp(br, "z9hG4bK", 7) == 0) {
		k->branch = br;
	} else {
		k->branch = su_sprintf(
		    msg_home(msg), "2543;%s;%u;%s;%s",
		    sip->sip_call_id ? sip->sip_call_id->i_id : "", sip->sip_cseq->cs_seq,
		    sip->sip_from && sip->sip_from->a_tag ? sip->sip_from->a_tag : "",
		    br ? br : "");
		if (!k->branch)
			return SK_ENOMEM;
	}
	k->host = v->v_host ? v->v_host : "";
	k->port = v->v_port ? v->v_port : "";
	k->method = sip->sip_request->rq_method;
	k->method_name = sip->sip_request->rq_method_name ? sip->sip_request->rq_method_name : "";
	if (ack_as_invite && k->method == sip_method_ack) {
		k->method = sip_method_invite;
		k->method_name = "INVITE";
	}
	return 0;
}

static uint64_t key_hash(const struct edge_txl *l, struct stx_key *k)
{
	uint64_t h = txn_hash(l->seed, k->branch, strlen(k->branch));

	h = txn_hash_lower(h, k->host);
	h = txn_hash(h, k->port, strlen(k->port));
	if (k->method == sip_method_unknown)
		h = txn_hash(h, k->method_name, strlen(k->method_name));
	else
		h = txn_hash(h, &k->method, sizeof(k->method));
	return k->hash = h;
}

static struct edge_stx *stx_find(struct edge_txl *l, struct stx_key *k)
{
	uint64_t h = key_hash(l, k);

	for (struct txn_hnode *n = txn_htab_first(&l->stx_tab, h); n; n = n->next) {
		struct edge_stx *s = TXN_CONTAINER(n, struct edge_stx, hn);

		if (n->hash == h && s->method == k->method && strcmp(s->branch, k->branch) == 0 &&
		    strcasecmp(s->host, k->host) == 0 && strcmp(s->port, k->port) == 0 &&
		    (k->method != sip_method_unknown ||
		     strcmp(s->method_name, k->method_name) == 0))
			return s;
	}
	return NULL;
}

/* Whether the sent-by host (hl bytes) is the source address: compared as addresses
 * (inet_pton is a short loop; printing the source with inet_ntop costs a vfprintf,
 * and most requests need no received= at all). */
static bool host_is_src(const char *host, size_t hl, const struct edge_addr *src)
{
	char h[INET6_ADDRSTRLEN];
	unsigned char a[sizeof(struct in6_addr)];

	if (hl >= sizeof(h))
		return false;
	memcpy(h, host, hl);
	h[hl] = '\0';
	if (src->u.sa.sa_family == AF_INET)
		return inet_pton(AF_INET, h, a) == 1 && !memcmp(a, &src->u.in.sin_addr, 4);
	if (src->u.sa.sa_family == AF_INET6)
		return inet_pton(AF_INET6, h, a) == 1 &&
		       !memcmp(a, &src->u.in6.sin6_addr, sizeof(src->u.in6.sin6_addr));
	return false;
}

/* §18.2.1 and RFC 3581 §4: received= when the sent-by host is not the source address
 * (and always with rport), rport=<source port> when the client asked with an empty
 * rport. sofia re-encodes the Via, so the TU and every response see them. */
static void via_fix(msg_t *msg, const struct edge_rx *rx)
{
	sip_via_t *v = sip_object(msg)->sip_via;
	const char *rport = txn_via_param(v, "rport");
	const char *host = v->v_host ? v->v_host : "";
	char ip[64], p[80];
	size_t hl = strlen(host);

	if (hl > 2 && host[0] == '[') { /* an IPv6 reference: compare without brackets */
		host++;
		hl -= 2;
	}
	if (rport || !host_is_src(host, hl, &rx->src)) {
		edge_addr_ip(&rx->src, ip, sizeof(ip));
		snprintf(p, sizeof(p), "received=%s", ip);
		msg_header_replace_param(msg_home(msg), v->v_common, su_strdup(msg_home(msg), p));
	}
	if (rport && !rport[0]) {
		snprintf(p, sizeof(p), "rport=%u", edge_addr_port(&rx->src));
		msg_header_replace_param(msg_home(msg), v->v_common, su_strdup(msg_home(msg), p));
	}
}

static void addr_set_port(struct edge_addr *a, unsigned port)
{
	if (a->u.sa.sa_family == AF_INET6)
		a->u.in6.sin6_port = htons((uint16_t)port);
	else
		a->u.in.sin_port = htons((uint16_t)port);
}

/* The sent-by port (§18.2.2), "" when the Via has none. */
static unsigned sent_by_port(const char *s, enum edge_proto p)
{
	long port = s[0] ? strtol(s, NULL, 10) : 0;

	if (port > 0 && port < 65536)
		return (unsigned)port;
	return p == EDGE_PROTO_TLS ? 5061 : 5060;
}

static void stx_destroy(void *data)
{
	struct edge_stx *stx = data;

	if (stx->req) {
		msg_destroy(stx->req);
		stx->l->stx_requests--;
	}
	free(stx->resp);
	sk_deref(stx->l);
}

/* Called when the final response has gone out. The request is needed only to build
 * responses (and the TU's own work on it); what absorbs retransmissions from here on
 * is the key (key[]) and the response kept in resp. It cannot go at once: the TU that
 * answered may still be reading it up its callback chain, or hold the stx for later
 * (a fork waiting for its other branches). So the stx waits in a list, with a
 * reference, for the layer's check handle (after this loop turn's I/O callbacks);
 * there the request goes if nobody but the layer holds the stx any more — a TU may
 * only read edge_stx_msg() while it holds a reference (txn.h). Releasing it returns
 * the sofia message (a few kB, a dozen allocations) 64*T1 earlier: at 10,000
 * REGISTER/s that is ~640,000 requests less on the heap. */
static void shed_queue(struct edge_stx *stx)
{
	struct edge_txl *l = stx->l;

	if (!stx->req || stx->shed_queued || l->closed)
		return;
	stx->shed_queued = true;
	stx->shed_next = NULL;
	*l->shed_tail = sk_ref(stx);
	l->shed_tail = &stx->shed_next;
	if (!uv_is_active((uv_handle_t *)l->check))
		uv_check_start(l->check, txn_check_cb);
}

void txn_stx_shed_run(struct edge_txl *l)
{
	struct edge_stx *stx;

	while ((stx = l->shed_head)) {
		l->shed_head = stx->shed_next;
		if (!l->shed_head)
			l->shed_tail = &l->shed_head;
		stx->shed_next = NULL;
		stx->shed_queued = false;
		/* 2: the layer's reference and the list's; a TU still holding one keeps
		 * the request until the stx ends. */
		if (stx->state != STX_TERMINATED && stx->req && sk_nrefs(stx) == 2) {
			msg_destroy(stx->req);
			stx->req = NULL;
			stx->rx = NULL; /* was in its home */
			l->stx_requests--;
		}
		sk_deref(stx);
	}
}

void txn_stx_terminate(struct edge_stx *stx)
{
	struct edge_txl *l = stx->l;

	if (stx->state == STX_TERMINATED)
		return;
	stx->state = STX_TERMINATED;
	if (stx->pending) {
		stx->pending = false;
		l->pending--;
	}
	txn_timer_stop(l, &stx->retx);
	txn_timer_stop(l, &stx->wait);
	txn_htab_del(&l->stx_tab, &stx->hn);
	sk_deref(stx); /* the layer's reference */
}

/* How long the TU may take for a final response. RFC 3261 sets no bound on the
 * server side (the TU's own client transactions time out and it answers 408); this
 * guard only keeps a transaction the TU forgot from living for ever: an INVITE's
 * outlasts Timer C plus a 64*T1 wait (re-armed with each provisional, as Timer C is),
 * a non-INVITE's is two Timer F periods. */
static uint64_t guard_ms(const struct edge_stx *stx)
{
	const struct edge_txl *l = stx->l;

	return stx->invite ? l->o.timer_c_ms + 64ull * l->o.t1_ms : 128ull * l->o.t1_ms;
}

static void timer_guard(struct txn_timer *t)
{
	struct edge_stx *stx = TXN_CONTAINER(t, struct edge_stx, wait);

	SK_WARN("no final response from the TU in %llu ms: 500 (%s)",
		(unsigned long long)guard_ms(stx), stx->branch);
	txn_count_timeout(stx->l);
	edge_stx_reply(stx, 500, "Server Internal Error (no answer)", NULL, NULL, NULL, 0);
}

/* n bytes of s (its NUL included) at *p, which moves past them. */
static const char *key_put(char **p, const char *s, size_t n)
{
	char *d = memcpy(*p, s, n);

	*p += n;
	return d;
}

/* k: the request's key, hashed (stx_find). The key strings are copied into the stx
 * itself (one allocation), so that they outlive the request. */
static struct edge_stx *stx_new(struct edge_txl *l, const struct edge_rx *rx, msg_t *msg,
				const struct stx_key *k)
{
	sip_t *sip = sip_object(msg);
	bool invite = k->method == sip_method_invite;
	const char *cid = invite && sip->sip_call_id ? sip->sip_call_id->i_id : NULL;
	size_t lb = strlen(k->branch) + 1, lh = strlen(k->host) + 1, lp = strlen(k->port) + 1;
	size_t lm = strlen(k->method_name) + 1, lc = cid ? strlen(cid) + 1 : 0;
	struct edge_stx *stx = sk_zalloc(sizeof(*stx) + lb + lh + lp + lm + lc, stx_destroy);
	char *p;

	if (!stx)
		return NULL;
	stx->l = sk_ref(l);
	stx->rx = su_alloc(msg_home(msg), sizeof(*stx->rx));
	if (!stx->rx) {
		sk_deref(stx);
		return NULL;
	}
	*stx->rx = *rx;
	stx->rx->data = NULL;
	stx->rx->len = 0;
	stx->proto = rx->proto;
	stx->req = msg;
	l->stx_requests++;
	p = stx->key;
	stx->branch = key_put(&p, k->branch, lb);
	stx->host = key_put(&p, k->host, lh);
	stx->port = key_put(&p, k->port, lp);
	stx->method_name = key_put(&p, k->method_name, lm);
	stx->call_id = cid ? key_put(&p, cid, lc) : NULL;
	stx->method = k->method;
	stx->invite = invite;
	stx->state = stx->invite ? STX_PROCEEDING : STX_TRYING;
	stx->created_ns = rx->arrived_ns ? rx->arrived_ns : uv_hrtime();
	edge_tag_new(stx->to_tag);
	memcpy(stx->to_tag, l->tag_prefix, sizeof(l->tag_prefix)); /* 32 random bits stay */
	/* §18.2.2: a stream answers on its connection; UDP with rport to the source
	 * port (RFC 3581 §4), else to the source IP and the sent-by port. */
	stx->dst = rx->src;
	stx->flow = rx->flow;
	if (rx->proto == EDGE_PROTO_UDP && !l->o.symmetric &&
	    !txn_via_param(sip->sip_via, "rport"))
		addr_set_port(&stx->dst, sent_by_port(stx->port, rx->proto));
	stx->hn.hash = k->hash;
	txn_htab_add(&l->stx_tab, &stx->hn);
	txn_timer_start(l, &stx->wait, guard_ms(stx), timer_guard);
	l->st.stx_total++;
	stx->pending = true;
	l->pending++;
	return stx;
}

static int stx_xmit(struct edge_stx *stx, const char *data, size_t len)
{
	struct edge_txl *l = stx->l;
	int err = edge_tp_send(l->o.tp, stx->proto, &stx->dst, stx->flow, NULL, data, len, 0);

	if (err == SK_ENOTCONN && stx->flow) {
		/* §18.2.2: the connection is gone: open one to the source IP and the
		 * sent-by port. */
		stx->flow = 0;
		addr_set_port(&stx->dst, sent_by_port(stx->port, stx->proto));
		err = edge_tp_send(l->o.tp, stx->proto, &stx->dst, 0, NULL, data, len, 0);
	}
	if (err)
		SK_INFO("response to %s not sent: %s", stx->branch, sk_strerror(err));
	return err;
}

static void stx_done(struct txn_timer *t)
{
	struct edge_stx *stx = TXN_CONTAINER(t, struct edge_stx, wait);

	txn_stx_terminate(stx);
}

/* Timer G (§17.2.1): the non-2xx final again, doubling up to T2. */
static void timer_g(struct txn_timer *t)
{
	struct edge_stx *stx = TXN_CONTAINER(t, struct edge_stx, retx);
	struct edge_txl *l = stx->l;

	stx_xmit(stx, stx->resp, stx->resp_len);
	txn_count_retx(l);
	stx->retx_ms = stx->retx_ms * 2 < l->o.t2_ms ? stx->retx_ms * 2 : l->o.t2_ms;
	txn_timer_start(l, &stx->retx, stx->retx_ms, timer_g);
}

/* Timer H: no ACK came for the final response. */
static void timer_h(struct txn_timer *t)
{
	struct edge_stx *stx = TXN_CONTAINER(t, struct edge_stx, wait);

	SK_NOTICE("no ACK for %d (Call-ID %s)", stx->status, stx->call_id ? stx->call_id : "?");
	txn_count_timeout(stx->l);
	txn_stx_terminate(stx);
}

/* A digest challenge of the TU's own: answered statelessly (stx_respond), with the
 * layer's challenge tag half (edge_stx_reply), by which its ACK is known. */
static bool is_challenge(int status)
{
	return status == 401 || status == 407;
}

/* Sends a response and moves the state machine. keep: data is a malloc'd buffer the
 * stx takes (NULL: copied when it must be kept). ours: a response the layer built for
 * the TU (edge_stx_reply), as opposed to one the proxy forwards. */
static int stx_respond(struct edge_stx *stx, int status, const char *data, size_t len, char *keep,
		       bool ours)
{
	struct edge_txl *l = stx->l;
	bool udp = stx->proto == EDGE_PROTO_UDP;
	/* RFC 3261 §8.2.7: a UAS may answer statelessly, and a challenge is the case
	 * for it (Kamailio's auth module sends its 401/407 through sl): a request we
	 * challenge ends here instead of holding a transaction for Timer J's 64*T1
	 * (at 10,000 REGISTER/s, half of all the transactions alive) or, for an
	 * INVITE, for Timers G/H and then I. A retransmitted request makes a new
	 * transaction and gets a fresh challenge, which any UAC takes (§22.2: it
	 * answers whichever challenge it got); a lost 407 to an INVITE is so repaired
	 * by the caller's Timer A instead of our Timer G. The ACK of a stateless
	 * challenge matches nothing and is known by our To-tag (ack_input). A
	 * challenge the proxy forwards (from downstream) stays stateful (§16). */
	bool stateless = ours && is_challenge(status);
	bool store = !stateless && !(stx->invite && status >= 200 && status < 300);
	int err;

	if (stx->state == STX_TERMINATED || l->closed)
		err = SK_ECANCELED;
	else if (status < 100 || status > 699)
		err = SK_EINVAL;
	else if (stx->status &&
		 !(stx->invite && status < 300 && stx->status < 300 && status >= 200))
		err = SK_EINVAL; /* §17.2.1: one final (2xx may repeat, RFC 6026 §7.1) */
	else
		err = 0;
	if (err) {
		free(keep);
		return err;
	}
	if (store && stx->status == 0) {
		if (!keep) {
			keep = malloc(len);
			if (!keep)
				return SK_ENOMEM;
			memcpy(keep, data, len);
		} else if (status >= 200) {
			/* A final is kept for 64*T1: not with the builder's slack (its
			 * buffer doubles, up to half of it unused); glibc shrinks in place. */
			char *fit = realloc(keep, len);

			if (fit)
				data = keep = fit; /* data was keep: it may have moved */
		}
		free(stx->resp);
		stx->resp = keep;
		stx->resp_len = len;
		keep = NULL;
	}
	err = stx_xmit(stx, data, len);
	free(keep);
	if (status < 200 || stx->status) {
		if (!stx->invite)
			stx->state = STX_PROCEEDING;
		else if (status > 100 && !stx->status)
			txn_timer_start(l, &stx->wait, guard_ms(stx), timer_guard);
		return err;
	}
	stx->status = status;
	if (stx->pending) {
		stx->pending = false;
		l->pending--;
	}
	if (l->m.seconds)
		sk_histogram_observe(l->m.seconds, (double)(uv_hrtime() - stx->created_ns) / 1e9);
	if (stateless) {
		/* The TU calling us holds its own reference (txn.h): the stx stays
		 * readable for it, but no longer matches anything. */
		txn_stx_terminate(stx);
		return err;
	}
	shed_queue(stx);
	if (!stx->invite) {
		stx->state = STX_COMPLETED; /* Timer J */
		txn_timer_start(l, &stx->wait, udp ? 64ull * l->o.t1_ms : 0, stx_done);
	} else if (status < 300) {
		stx->state = STX_ACCEPTED; /* Timer L, RFC 6026 §7.1 */
		free(stx->resp);
		stx->resp = NULL;
		txn_timer_start(l, &stx->wait, 64ull * l->o.t1_ms, stx_done);
	} else {
		stx->state = STX_COMPLETED;
		if (udp) {
			stx->retx_ms = l->o.t1_ms;
			txn_timer_start(l, &stx->retx, stx->retx_ms, timer_g);
		}
		txn_timer_start(l, &stx->wait, 64ull * l->o.t1_ms, timer_h);
	}
	return err;
}

/* §9.2: the CANCEL's own transaction answers 200 when the INVITE is known (481
 * otherwise); the TU hears of it only while the INVITE has no final response. */
static void cancel_input(struct edge_txl *l, struct edge_stx *cancel)
{
	struct stx_key k = {.branch = cancel->branch,
			    .host = cancel->host,
			    .port = cancel->port,
			    .method = sip_method_invite,
			    .method_name = "INVITE"};
	struct edge_stx *inv = stx_find(l, &k);

	if (!inv) {
		edge_stx_reply(cancel, 481, NULL, NULL, NULL, NULL, 0);
		return;
	}
	edge_stx_reply(cancel, 200, NULL, NULL, NULL, NULL, 0);
	if (inv->status || inv->cancelled || inv->state != STX_PROCEEDING)
		return;
	inv->cancelled = true;
	if (l->o.on_cancel) {
		sk_ref(inv);
		l->o.on_cancel(l, inv, l->o.arg);
		sk_deref(inv);
	}
}

static bool ours_to_tag(const struct edge_txl *l, msg_t *msg)
{
	const sip_to_t *to = sip_object(msg)->sip_to;

	return to && to->a_tag && strlen(to->a_tag) == EDGE_TAG_SIZE - 1 &&
	       (!memcmp(to->a_tag, l->tag_prefix, sizeof(l->tag_prefix)) ||
		!memcmp(to->a_tag, l->sl_prefix, sizeof(l->sl_prefix)));
}

bool edge_txl_absorb(struct edge_txl *l, const char *data, size_t len)
{
	const char *tag;
	size_t n;

	/* The 2xx ACK of every call carries the callee's tag: a search for our 8
	 * characters turns it away for a few instructions a byte, before any scan. */
	if (!l || l->closed || len < 4 || memcmp(data, "ACK ", 4) ||
	    !memmem(data, len, l->sl_prefix, sizeof(l->sl_prefix)) ||
	    !edge_sip_peek_ack_tag(data, len, &tag, &n) ||
	    n != EDGE_TAG_SIZE - 1 || memcmp(tag, l->sl_prefix, sizeof(l->sl_prefix)))
		return false;
	l->st.acks_absorbed++;
	if (l->m.acks[1])
		sk_counter_inc(l->m.acks[1]);
	return true;
}

/* An ACK (§17.2.1): ends a non-2xx INVITE transaction's wait for it; for a 2xx it is
 * end to end (RFC 6026 §7.1) and goes to the TU, as does one that matches nothing. */
static void ack_input(struct edge_txl *l, const struct edge_rx *rx, msg_t *msg)
{
	struct stx_key k;
	struct edge_stx *stx = key_of(msg, &k, true) ? NULL : stx_find(l, &k);

	if (stx && (stx->state == STX_COMPLETED || stx->state == STX_CONFIRMED)) {
		if (stx->state == STX_COMPLETED) {
			bool udp = stx->proto == EDGE_PROTO_UDP;

			stx->state = STX_CONFIRMED; /* Timer I */
			txn_timer_stop(l, &stx->retx);
			txn_timer_start(l, &stx->wait, udp ? l->o.t4_ms : 0, stx_done);
		} else {
			l->st.retransmissions_absorbed++;
		}
		msg_destroy(msg);
		return;
	}
	/* No transaction, but our To-tag: the ACK of a challenge answered statelessly
	 * (or of a final whose transaction has ended). It ends here, as §17.2.1 would
	 * have it end in the transaction: ours are never 2xx, so it is no dialog's. */
	if (!stx && ours_to_tag(l, msg)) {
		l->st.acks_absorbed++;
		if (l->m.acks[0])
			sk_counter_inc(l->m.acks[0]);
		msg_destroy(msg);
		return;
	}
	if (l->o.on_stateless)
		l->o.on_stateless(l, msg, rx, l->o.arg);
	else
		msg_destroy(msg);
}

void txn_server_input(struct edge_txl *l, const struct edge_rx *rx, msg_t *msg)
{
	struct edge_stx *stx;
	struct stx_key k;

	if (sip_object(msg)->sip_request->rq_method == sip_method_ack) {
		ack_input(l, rx, msg);
		return;
	}
	if (key_of(msg, &k, false)) {
		msg_destroy(msg);
		return;
	}
	stx = stx_find(l, &k); /* hashes k */
	if (stx) {
		/* A retransmission (§17.2.1, §17.2.2): the last response again, none
		 * while Trying, in Confirmed or in Accepted (RFC 6026 §7.1). */
		l->st.retransmissions_absorbed++;
		if (stx->resp && (stx->state == STX_PROCEEDING || stx->state == STX_COMPLETED)) {
			stx_xmit(stx, stx->resp, stx->resp_len);
			txn_count_retx(l);
		}
		msg_destroy(msg);
		return;
	}
	via_fix(msg, rx);
	stx = stx_new(l, rx, msg, &k);
	if (!stx) {
		SK_WARN("out of memory: request dropped");
		msg_destroy(msg);
		return;
	}
	sk_ref(stx);
	if (stx->method == sip_method_cancel) {
		cancel_input(l, stx);
	} else {
		/* §17.2.1: at once, unless the TU said it answers within 200 ms itself */
		if (stx->invite && !l->o.tu_sends_trying)
			edge_stx_reply(stx, 100, NULL, NULL, NULL, NULL, 0);
		if (l->o.on_request && !l->closed)
			l->o.on_request(l, stx, stx->rx, l->o.arg);
	}
	sk_deref(stx);
}

int edge_stx_reply(struct edge_stx *stx, int status, const char *reason, const char *extra_headers,
		   const char *ctype, const void *body, size_t body_len)
{
	struct sk_buf b;
	int err;

	if (!stx)
		return SK_EINVAL;
	if (!stx->req) /* released after the final: only a second final would need it */
		return stx->state == STX_TERMINATED || stx->l->closed ? SK_ECANCELED : SK_EINVAL;
	/* A challenge is answered statelessly (stx_respond): its tag tells its ACK
	 * before any parsing (edge_txl_absorb). The edge sends no tagged provisional
	 * of its own before one, so no earlier response had the other tag. */
	if (is_challenge(status))
		memcpy(stx->to_tag, stx->l->sl_prefix, sizeof(stx->l->sl_prefix));
	sk_buf_init(&b);
	err = edge_response_build(&b, stx->req, status, reason, stx->to_tag, extra_headers,
				  stx->l->o.server, ctype, body, body_len);
	if (err) {
		sk_buf_release(&b);
		return err;
	}
	return stx_respond(stx, status, b.data, b.len, b.data, true);
}

int edge_stx_send(struct edge_stx *stx, int status, const void *data, size_t len)
{
	if (!stx || !data || !len)
		return SK_EINVAL;
	return stx_respond(stx, status, data, len, NULL, false);
}

msg_t *edge_stx_msg(const struct edge_stx *stx)
{
	return stx->req;
}

const struct edge_rx *edge_stx_rx(const struct edge_stx *stx)
{
	return stx->rx;
}

bool edge_stx_is_invite(const struct edge_stx *stx)
{
	return stx->invite;
}

int edge_stx_status(const struct edge_stx *stx)
{
	return stx->status;
}

void edge_stx_set_tu(struct edge_stx *stx, void *tu)
{
	stx->tu = tu;
}

void *edge_stx_tu(const struct edge_stx *stx)
{
	return stx->tu;
}

const char *edge_stx_to_tag(const struct edge_stx *stx)
{
	return stx->to_tag;
}
