/* core_proxy: the transaction-stateful proxy (RFC 3261 §16): deciding the targets of
 * a request (loose routing, local AORs through their bindings in Redis, other domains
 * for authenticated local callers), parallel forking by q-value groups (§16.6,
 * RFC 3261 §16.7 for choosing the best final response), CANCEL (§16.10) and the
 * stateless path for ACKs to 2xx and stray responses (§16.11). */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sofia-sip/sip_header.h>
#include "skein/sk_hash.h"
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"
#include "core.h"
#include "sipmsg.h"
#include "regdata.h"
#include "regdata_lookup.h"

SK_LOG_MODULE("proxy");

#define MAX_BRANCHES 16

struct fork;

struct branch {
	struct fork *f;
	struct edge_ctx *ctx;
	bool done;
	/* sent down a flow whose phone may also be reached at its contact */
	const Skein__Sip__V1__Binding *contact_fallback;
};

struct fork {
	struct fork *lprev, *lnext; /* e->fork_list, for shutdown */
	struct edge *e;
	struct edge_stx *stx;
	enum edge_proto in;
	bool invite, final_sent, canceled, record_route, authed;
	/* Out of dialog with a route set beyond us (§16.4): where it goes next, once the
	 * caller is known (authenticated, or a trusted network) — never an open relay. */
	const url_t *preloaded;
	bool ended; /* fork_end() ran: its own reference is gone */
	bool counted; /* in the caller's calls in progress (core_limits.c) */
	char aor[REGDATA_AOR_MAX];
	struct regdata_bindings bs; /* targets from Redis, by q (highest first) */
	/* The lookup sent with the credentials check (early_lookup): its answer waits
	 * here until the caller is known (DONE), or lookup() waits for it (WANTED). */
	enum { LK_NONE, LK_PENDING, LK_WANTED, LK_DONE, LK_USED } early;
	int early_err;
	size_t next;                /* first binding not tried yet */
	struct branch br[MAX_BRANCHES];
	size_t nbr, pending;
	char loop_tag[EDGE_BRANCH_TAG_MAX + 1]; /* §16.6 item 8, in our branches */
	/* RFC 3263 targets of a URI (to_uri): tried in order on failure (§4.3) */
	struct edge_target *targets;
	size_t ntargets, tidx;
	int best;     /* best final so far (§16.7 item 6), 0 none */
	msg_t *best_msg; /* its response, or NULL when synthesized (408, 503) */
};

static void fork_destroy(void *p)
{
	struct fork *f = p;

	for (size_t i = 0; i < f->nbr; i++)
		if (f->br[i].ctx) {
			edge_ctx_release(f->br[i].ctx);
			f->br[i].ctx = sk_deref(f->br[i].ctx);
		}
	if (f->early == LK_DONE) /* the caller was refused, or the request ended */
		sk_counter_inc(f->e->m.lookups[2]);
	regdata_bindings_free(&f->bs);
	free(f->targets);
	if (f->best_msg)
		msg_destroy(f->best_msg);
	if (f->stx) {
		if (edge_stx_tu(f->stx) == f)
			edge_stx_set_tu(f->stx, NULL);
		sk_deref(f->stx);
	}
	if (f->lprev)
		f->lprev->lnext = f->lnext;
	else
		f->e->fork_list = f->lnext;
	if (f->lnext)
		f->lnext->lprev = f->lprev;
	f->e->forks--;
}

static struct fork *fork_alloc(struct edge *e, struct edge_stx *stx)
{
	struct fork *f = sk_zalloc(sizeof(*f), fork_destroy);
	sip_t *sip = sip_object(edge_stx_msg(stx));

	if (!f)
		return NULL;
	e->forks++;
	f->e = e;
	f->lnext = e->fork_list;
	if (f->lnext)
		f->lnext->lprev = f;
	e->fork_list = f;
	f->stx = sk_ref(stx);
	f->in = edge_stx_rx(stx)->proto;
	f->invite = sip->sip_request->rq_method == sip_method_invite;
	edge_stx_set_tu(stx, f);
	return f;
}

/* The fork is finished: every branch goes its own way (ACKs, CANCELs) without us. */
static void fork_end(struct fork *f)
{
	if (f->ended)
		return;
	f->ended = true;
	/* An INVITE that failed (or was never answered) stops counting at once. */
	if (f->counted && (edge_stx_status(f->stx) < 200 || edge_stx_status(f->stx) >= 300))
		edge_limits_call_end(f->e, f->stx);
	if (edge_stx_tu(f->stx) == f)
		edge_stx_set_tu(f->stx, NULL);
	sk_deref(f);
}

static void send_final(struct fork *f, int status, const char *reason)
{
	if (!f->final_sent)
		edge_reply(f->e, f->stx, status, reason, NULL);
	f->final_sent = true;
}

static int forward_resp(struct fork *f, int status, msg_t *resp)
{
	struct sk_buf b;
	int err;

	sk_buf_init(&b);
	err = edge_msg_print(resp, &b);
	if (!err)
		err = edge_stx_send(f->stx, status, b.data, b.len);
	if (!err)
		edge_count_resp(f->e, status);
	sk_buf_release(&b);
	return err;
}

/* §16.7 item 6: 6xx beats everything; otherwise the lowest class; a response we
 * made ourselves (timeout, transport failure) only when nothing real came. */
static int rank(int status, bool synthesized)
{
	if (synthesized)
		return 10;
	if (status >= 600)
		return 0;
	return status / 100;
}

static void cancel_pending(struct fork *f)
{
	for (size_t i = 0; i < f->nbr; i++)
		if (!f->br[i].done && f->br[i].ctx)
			edge_ctx_cancel(f->br[i].ctx);
}

static int start_group(struct fork *f);
static int next_target(struct fork *f);
static int contact_branch(struct fork *f, const Skein__Sip__V1__Binding *b);

static bool may_store(struct fork *f);
static bool store_message(struct fork *f);

/* A MESSAGE every binding failed to take for want of the device (timeout, no
 * transport, 480 from it: a phone that lost its network while its binding lives
 * on) is kept as for a user with no binding; a refusal by the device (4xx other
 * than 408/480, 6xx) is passed on. */
static bool undelivered(const struct fork *f)
{
	return f->bs.n > 0 && (f->best == 408 || f->best == 480 || !f->best ||
			       (f->best == 503 && !f->best_msg));
}

static void branch_done(struct fork *f)
{
	if (f->pending)
		return;
	if (!f->final_sent && !f->canceled && f->best < 600 && f->next < f->bs.n &&
	    start_group(f) > 0)
		return;
	if (!f->final_sent && undelivered(f) && may_store(f) && store_message(f)) {
		fork_end(f);
		return;
	}
	if (!f->final_sent) {
		if (f->best_msg && f->best != 503) {
			forward_resp(f, f->best, f->best_msg);
		} else if (f->best == 503 && f->best_msg) {
			/* §16.7 item 6: a 503 from downstream becomes 500 here. */
			send_final(f, 500, "Server Internal Error (downstream unavailable)");
		} else if (f->best == 408) {
			send_final(f, 408, NULL);
		} else {
			send_final(f, 480, "Temporarily Unavailable (no reachable contact)");
		}
		f->final_sent = true;
	}
	fork_end(f);
}

static void on_branch(struct edge_ctx *ctx, int status, msg_t *resp, int err, void *arg)
{
	struct branch *br = arg;
	struct fork *f = br->f;

	(void)ctx;
	if (br->done) {
		/* A further 2xx of an INVITE (RFC 6026 Accepted): pass it on. */
		if (status >= 200 && status < 300 && resp && f->final_sent)
			forward_resp(f, status, resp);
		return;
	}
	if (status < 200) {
		if (status > 100 && !f->final_sent)
			forward_resp(f, status, resp); /* §16.7 item 5; 100 stays here */
		return;
	}
	br->done = true;
	f->pending--;
	/* RFC 3263 §4.3: a transport failure, a timeout or a 503 moves on to the next
	 * target of the same URI. */
	if (status >= 300 && (!resp || status == 503) && f->tidx + 1 < f->ntargets &&
	    !f->final_sent && !f->canceled && next_target(f) == 0)
		return;
	/* The flow was gone (here or on the edge holding it): a phone without Outbound
	 * still listens where its contact says. */
	if (status >= 300 && !resp && err == SK_ENOTCONN && br->contact_fallback &&
	    !f->final_sent && !f->canceled && contact_branch(f, br->contact_fallback) == 0)
		return;
	if (status < 300) {
		if (resp)
			forward_resp(f, status, resp);
		f->final_sent = true;
		cancel_pending(f); /* §16.7 item 10 */
	} else if (!f->final_sent) {
		if (!resp && err)
			SK_INFO("branch failed: %s", sk_strerror(err));
		if (!f->best || rank(status, !resp) < rank(f->best, !f->best_msg)) {
			if (f->best_msg)
				msg_destroy(f->best_msg);
			f->best = status;
			f->best_msg = resp ? msg_dup(resp) : NULL;
		}
		if (status >= 600)
			cancel_pending(f);
	}
	branch_done(f);
}

/* One copy of the request to one target (§16.6). ruri NULL keeps the Request-URI. */
static int branch_start(struct fork *f, const char *ruri, const Skein__Sip__V1__Binding *b,
			const struct edge_dest *d, const char *token)
{
	struct edge *e = f->e;
	msg_t *m;
	sip_t *sip;
	su_home_t *home;
	struct branch *br;
	int err;

	if (f->nbr == MAX_BRANCHES)
		return SK_ERANGE;
	/* A shallow copy (msg_copy(3)): the header objects are the copy's own, their
	 * strings and parameter lists are the received request's, which the copy holds
	 * a reference to. Nothing below edits a string or a parameter list in place —
	 * headers are removed, replaced or added whole — so every branch may share
	 * them; msg_dup() copied every string of every header for each branch. */
	m = msg_copy(edge_stx_msg(f->stx));
	if (!m)
		return SK_ENOMEM;
	sip = sip_object(m);
	home = msg_home(m);
	edge_route_pop_self(e, m, sip);
	if (ruri) {
		sip_request_t *rq = sip_request_create(home, sip->sip_request->rq_method,
						       sip->sip_request->rq_method_name,
						       (url_string_t *)ruri, NULL);

		if (!rq || msg_header_replace(m, (msg_pub_t *)sip,
					      (msg_header_t *)sip->sip_request,
					      (msg_header_t *)rq)) {
			msg_destroy(m);
			return SK_ENOMEM;
		}
	}
	/* §16.6 item 3 */
	if (sip->sip_max_forwards) {
		sip->sip_max_forwards->mf_count--;
		msg_fragment_clear(sip->sip_max_forwards->mf_common);
	} else {
		msg_header_add_str(m, (msg_pub_t *)sip, "Max-Forwards: 70");
	}
	/* RFC 3327 §5.4: the Path of the binding becomes the route set. */
	for (size_t i = b ? b->n_path : 0; i > 0; i--) {
		const char *pv = b->path[i - 1];
		char *rv = pv[0] == '<' ? su_strdup(home, pv) : su_sprintf(home, "<%s>", pv);
		sip_route_t *r = rv ? sip_route_make(home, rv) : NULL;

		if (r)
			msg_header_prepend(m, (msg_pub_t *)sip, (msg_header_t **)&sip->sip_route,
					   (msg_header_t *)r);
	}
	if (f->record_route)
		edge_route_record(e, m, sip, f->in, d->proto, token);
	/* Our credentials were used up here (§22.3). */
	if (f->authed && sip->sip_proxy_authorization)
		msg_header_remove_all(m, (msg_pub_t *)sip,
				      (msg_header_t *)sip->sip_proxy_authorization);
	br = &f->br[f->nbr];
	br->f = f;
	br->done = false;
	br->contact_fallback = NULL;
	err = edge_ctx_start_tagged(e->txl, &br->ctx, m, f->loop_tag, d->proto, &d->addr, d->flow,
				    d->tls_name[0] ? d->tls_name : NULL, on_branch, br);
	if (err)
		return err;
	sk_ref(br->ctx);
	f->nbr++;
	f->pending++;
	sk_counter_inc(e->m.forwarded);
	return 0;
}

/* The phone may also listen where its contact says (a TCP phone without Outbound):
 * only a connection nobody can open again is lost with its flow — behind NAT, a
 * browser's WebSocket, an Outbound registration (reg-id, RFC 5626). */
static bool contact_reachable(const Skein__Sip__V1__Binding *b)
{
	return !b->received[0] && strcmp(b->transport, "ws") && strcmp(b->transport, "wss") &&
	       !b->reg_id;
}

/* A stream transport this edge has for a transaction whose hop another edge makes:
 * the binding's own when we listen on it, else TCP (reliable: no retransmissions
 * over the bus), else whatever we have. */
static enum edge_proto relay_proto(struct edge *e, const char *transport)
{
	enum edge_proto p;

	if (!edge_proto_parse(transport, &p) && p != EDGE_PROTO_UDP && e->port[p])
		return p;
	for (p = EDGE_PROTO_TCP; p < EDGE_PROTO_MAX_; p++)
		if (e->port[p])
			return p;
	return EDGE_PROTO_UDP;
}

/* Down a flow: ours, or another edge's through the bus (core_relay.c). SK_ENOTCONN
 * when it is gone or its edge is. token (may be NULL) gets the Record-Route user
 * that brings in-dialog requests back to the flow. */
static int flow_dest(struct edge *e, const char *member, uint64_t flow, const char *transport,
		     struct edge_dest *d, char *token, size_t tsize)
{
	memset(d, 0, sizeof(*d));
	if (!strcmp(member, e->member)) {
		if (!edge_tp_flow_info(e->tp, flow, &d->proto, &d->addr))
			return SK_ENOTCONN;
		d->flow = flow;
	} else {
		if (!edge_member_alive(e, member))
			return SK_ENOTCONN;
		d->flow = edge_relay_handle(member, flow);
		if (!d->flow)
			return SK_ENOTCONN;
		d->proto = relay_proto(e, transport);
		sk_counter_inc(e->m.cross_edge);
	}
	return token ? edge_flow_token(e, member, flow, token, tsize) : 0;
}

/* Where a binding is reached: down its flow (this edge's, or the edge's that holds
 * it, RFC 5626), else at its Path's first hop, else at the NAT source address it
 * registered from, else at its contact. A flow whose edge is gone makes the binding
 * unreachable until the phone registers again (not a 32 s timeout). */
static int binding_dest(struct edge *e, const Skein__Sip__V1__Binding *b, struct edge_dest *d,
			char *token, size_t tsize)
{
	url_t u[1];
	char buf[512];
	int err;

	token[0] = 0;
	if (b->flow[0] && !b->n_path) {
		/* The edge that held the connection is gone: so is the registration, for
		 * routing, until the phone registers again (through another edge). */
		if (strcmp(b->edge, e->member) && !edge_member_alive(e, b->edge)) {
			sk_counter_inc(e->m.unreachable);
			return SK_ENOTCONN;
		}
		err = flow_dest(e, b->edge, strtoull(b->flow, NULL, 10), b->transport, d, token,
				tsize);
		if (!err)
			return 0;
		token[0] = 0;
		if (!contact_reachable(b)) {
			sk_counter_inc(e->m.unreachable);
			return err;
		}
	}
	/* RFC 3327 §5.4: with a Path the request goes to its first hop (as a Route). */
	if (b->n_path)
		snprintf(buf, sizeof(buf), "%s", b->path[0]);
	else
		snprintf(buf, sizeof(buf), "%s", b->received[0] ? b->received : b->contact);
	if (buf[0] == '<') {
		char *end = strchr(buf, '>');

		memmove(buf, buf + 1, strlen(buf));
		if (end)
			end[-1] = 0;
	}
	if (url_d(u, buf) < 0)
		return SK_EINVAL;
	err = edge_route_uri(e, u, d);
	if (!err && !b->n_path && b->received[0] && b->transport[0])
		edge_proto_parse(b->transport, &d->proto);
	return err;
}

/* Starts the next group of bindings of equal q (§16.6: parallel within a q value,
 * groups in decreasing q). Returns the number of branches started. */
static int start_group(struct fork *f)
{
	int started = 0;

	while (f->next < f->bs.n) {
		const Skein__Sip__V1__Binding *b = f->bs.b[f->next];
		struct edge_dest d;
		char token[256];

		if (started && b->q_milli != f->bs.b[f->next - 1]->q_milli)
			break;
		f->next++;
		if (binding_dest(f->e, b, &d, token, sizeof(token)) ||
		    branch_start(f, b->contact, b, &d, token[0] ? token : NULL)) {
			SK_INFO("%s: binding %s not reachable", f->aor, b->contact);
			continue;
		}
		if (d.flow && contact_reachable(b))
			f->br[f->nbr - 1].contact_fallback = b;
		started++;
	}
	return started;
}

/* The binding again, at its contact rather than down its flow. */
static int contact_branch(struct fork *f, const Skein__Sip__V1__Binding *b)
{
	Skein__Sip__V1__Binding copy = *b;
	struct edge_dest d;
	char token[8];

	copy.flow = (char *)"";
	if (binding_dest(f->e, &copy, &d, token, sizeof(token)))
		return SK_ENOTCONN;
	return branch_start(f, b->contact, b, &d, NULL);
}

/* Offline IM (issue 7): a MESSAGE for an existing user with no binding is kept by
 * the registrar (202) and delivered when the user registers. Only from our
 * authenticated subscribers and trusted networks (gateways): a store for anyone
 * would tell unauthenticated senders which users exist (issue 5's oracle) and fill
 * mailboxes with spam. */
static bool store_message(struct fork *f)
{
	sip_t *sip = sip_object(edge_stx_msg(f->stx));
	char from[REGDATA_AOR_MAX] = "", tmp[REGDATA_AOR_MAX + 8];
	const char *why;

	if (sip->sip_request->rq_method != sip_method_message || f->canceled || f->final_sent)
		return false;
	if (f->authed) {
		snprintf(tmp, sizeof(tmp), "%s@%s", sip->sip_from->a_url->url_user,
			 sip->sip_from->a_url->url_host);
		if (regdata_aor_norm(from, sizeof(from), tmp, &why))
			return false;
	}
	f->final_sent = true; /* answered through the registrar */
	edge_pres_store(f->e, f->stx, f->aor, from);
	return true;
}

static bool may_store(struct fork *f)
{
	return sip_object(edge_stx_msg(f->stx))->sip_request->rq_method == sip_method_message &&
	       (f->authed || edge_guard_trusted(f->e, &edge_stx_rx(f->stx)->src));
}

static void on_exists(int err, struct redisReply *r, void *arg)
{
	struct fork *f = arg;

	if (!err && r && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
		send_final(f, 404, "Not Found");
	else if (!(!err && r && r->type == REDIS_REPLY_INTEGER && may_store(f) && store_message(f)))
		send_final(f, 480, "Temporarily Unavailable");
	fork_end(f);
	sk_deref(f); /* the reference of the command */
}

/* The AOR's bindings are in (or the lookup failed): route to them. */
static void lookup_done(struct fork *f, int err)
{
	struct edge *e = f->e;
	char key[512];

	if (f->ended) {
		/* shut down meanwhile */
	} else if (err) {
		SK_WARN("lookup %s: %s", f->aor, err ? sk_strerror(err) : "bad reply");
		send_final(f, 500, "Server Internal Error (location unavailable)");
		fork_end(f);
	} else if (f->canceled) {
		fork_end(f);
	} else if (f->bs.n == 0 && !f->authed && !may_store(f)) {
		/* No user-existence oracle for who has not authenticated (svwar and
		 * friends): unknown and known-but-offline users get the same 480 after
		 * the same single lookup. */
		send_final(f, 480, "Temporarily Unavailable");
		fork_end(f);
	} else if (f->bs.n == 0) {
		/* A subscriber learns 404 for an unknown user, 480 for one without a
		 * binding (§16.5 / 10.3). */
		if (regdata_key_cred(key, sizeof(key), e->cluster, f->aor) ||
		    sk_redis_cmdf(e->redis, on_exists, sk_ref(f), "EXISTS %s", key)) {
			sk_deref(f);
			send_final(f, 480, "Temporarily Unavailable");
			fork_end(f);
		}
	} else if (start_group(f) == 0) {
		send_final(f, 480, "Temporarily Unavailable (no reachable contact)");
		fork_end(f);
	}
}

static void on_lookup(int err, void *arg)
{
	struct fork *f = arg;

	lookup_done(f, err);
	sk_deref(f); /* the reference of the command */
}

static void on_early(int err, void *arg)
{
	struct fork *f = arg;

	if (f->early == LK_WANTED) {
		f->early = LK_USED;
		lookup_done(f, err);
	} else {
		f->early = LK_DONE;
		f->early_err = err;
	}
	sk_deref(f); /* the reference of the command */
}

static int aor_of_ruri(struct fork *f, const char *user, const char *domain)
{
	char tmp[REGDATA_AOR_MAX + 8];
	const char *why;

	if (!user)
		return SK_EINVAL;
	/* cut at tmp's size: then longer than an AOR may be, refused by the norm */
	edge_join(tmp, sizeof(tmp), user, "@", domain);
	return regdata_aor_norm(f->aor, sizeof(f->aor), tmp, &why);
}

static void lookup(struct fork *f, const char *user, const char *domain)
{
	struct edge *e = f->e;

	if (f->early == LK_DONE) { /* the Request-URI has not changed since */
		f->early = LK_USED;
		lookup_done(f, f->early_err);
		return;
	}
	if (f->early == LK_PENDING) {
		f->early = LK_WANTED;
		return;
	}
	if (aor_of_ruri(f, user, domain)) {
		if (f->authed)
			send_final(f, 404, "Not Found");
		else
			send_final(f, 480, "Temporarily Unavailable");
		fork_end(f);
		return;
	}
	/* HGETALL (and TIME without a recent sample of Redis' clock), no script
	 * (regdata_lookup.h): the read costs Redis a fraction of the purging script's. */
	if (regdata_lookup_at(e->redis, e->cluster, f->aor, edge_redis_now(e), &f->bs,
			      on_lookup, sk_ref(f))) {
		sk_deref(f);
		send_final(f, 500, "Server Internal Error (location unavailable)");
		fork_end(f);
		return;
	}
	sk_counter_inc(e->m.lookups[1]);
}

/* A caller with credentials calls a local user: the callee's bindings are read in
 * the same round trip as the credentials (pipelined on the one connection), not one
 * round trip after — a Redis wake-up and a read per call fewer, and the set-up
 * latency of one Redis round trip less. The answer is only used once the caller
 * has authenticated (and passed the call limits); a caller who fails learns
 * nothing from it. Without credentials (the 407 round) nothing is read. */
static void early_lookup(struct fork *f, const url_t *ru)
{
	struct edge *e = f->e;

	if (!edge_domain_local(e, ru->url_host) || aor_of_ruri(f, ru->url_user, ru->url_host))
		return;
	if (regdata_lookup_at(e->redis, e->cluster, f->aor, edge_redis_now(e), &f->bs, on_early,
			      sk_ref(f))) {
		sk_deref(f);
		return; /* lookup() tries again after the authentication */
	}
	f->early = LK_PENDING;
	sk_counter_inc(e->m.lookups[0]);
}

static void target_dest(const struct edge_target *t, struct edge_dest *d)
{
	memset(d, 0, sizeof(*d));
	d->proto = t->proto;
	d->addr = t->addr;
	snprintf(d->tls_name, sizeof(d->tls_name), "%s", t->name);
}

/* The next RFC 3263 target; 0 when a branch was started. */
static int next_target(struct fork *f)
{
	while (++f->tidx < f->ntargets) {
		struct edge_dest d;

		target_dest(&f->targets[f->tidx], &d);
		if (branch_start(f, NULL, NULL, &d, NULL) == 0)
			return 0;
	}
	return SK_ENOENT;
}

static void on_resolved(int err, const struct edge_target *t, size_t n, void *arg)
{
	struct fork *f = arg;

	if (f->ended || f->canceled) {
		fork_end(f);
	} else if (err || n == 0) {
		SK_INFO("RFC 3263 resolution failed: %s", sk_strerror(err ? err : SK_ENOENT));
		if (err == SK_ENOENT || n == 0)
			send_final(f, 404, "Not Found (no DNS records for the target)");
		else
			send_final(f, 503, "Service Unavailable (cannot resolve the target)");
		fork_end(f);
	} else if (!(f->targets = malloc(n * sizeof(*t)))) {
		send_final(f, 500, "Server Internal Error");
		fork_end(f);
	} else {
		memcpy(f->targets, t, n * sizeof(*t));
		f->ntargets = n;
		f->tidx = (size_t)-1;
		if (next_target(f)) {
			send_final(f, 503, "Service Unavailable");
			fork_end(f);
		}
	}
	sk_deref(f); /* the reference of the query */
}

/* Forward to one URI target (loose routing, in-dialog, other domains); a host name
 * is resolved by RFC 3263 (NAPTR, SRV, A) first. */
static void to_uri(struct fork *f, const url_t *target)
{
	struct edge_dest d;
	int err = edge_route_uri(f->e, target, &d);

	if (err == SK_ENOTSUP && target->url_host) {
		err = edge_resolve(f->e->resolver, target, f->e->protos, on_resolved, sk_ref(f),
				   NULL);
		if (!err)
			return;
		sk_deref(f);
		send_final(f, 503, "Service Unavailable (cannot resolve the target)");
	} else if (err) {
		send_final(f, 416, "Unsupported URI Scheme");
	} else if ((err = branch_start(f, NULL, NULL, &d, NULL))) {
		SK_INFO("forward failed: %s", sk_strerror(err));
		send_final(f, 503, "Service Unavailable");
	} else {
		return;
	}
	fork_end(f);
}

/* An in-dialog request whose route names a flow (our Record-Route token): down that
 * connection, here or on the edge that holds it; gone: 430 Flow Failed (RFC 5626
 * §5.3). */
static void to_flow(struct fork *f, const struct edge_flow_ref *ref)
{
	struct edge_dest d;

	if (flow_dest(f->e, ref->member, ref->flow, "tcp", &d, NULL, 0)) {
		send_final(f, 430, "Flow Failed");
	} else if (branch_start(f, NULL, NULL, &d, NULL)) {
		send_final(f, 430, "Flow Failed");
	} else {
		return;
	}
	fork_end(f);
}

static bool dialog_creating(sip_method_t m)
{
	return m == sip_method_invite || m == sip_method_subscribe || m == sip_method_refer;
}

/* §16.2 / §17.2.1: the INVITE is accepted for routing; the lookup and the branches
 * may take longer than 200 ms. */
static void trying(struct fork *f)
{
	if (f->invite && !f->final_sent && !edge_stx_status(f->stx))
		edge_stx_reply(f->stx, 100, NULL, NULL, NULL, NULL, 0);
}

static void route_local_or_out(struct fork *f)
{
	struct edge *e = f->e;
	sip_t *sip = sip_object(edge_stx_msg(f->stx));
	const url_t *ru = sip->sip_request->rq_url;

	if (edge_domain_local(e, ru->url_host)) {
		trying(f);
		lookup(f, ru->url_user, ru->url_host);
		return;
	}
	if (f->preloaded) {
		if (!f->authed && !edge_guard_trusted(e, &edge_stx_rx(f->stx)->src)) {
			send_final(f, 403, "Forbidden (relaying denied)");
			fork_end(f);
			return;
		}
		trying(f);
		to_uri(f, f->preloaded);
		return;
	}
	/* Another domain: only for our authenticated subscribers (no open relay). */
	if (!f->authed) {
		send_final(f, 403, "Forbidden (relaying denied)");
		fork_end(f);
		return;
	}
	trying(f);
	to_uri(f, ru);
}

static void on_limits(struct edge *e, enum edge_limit_verdict v, bool counted, void *arg)
{
	struct fork *f = arg;

	f->counted = counted;
	if (f->ended) {
		if (counted) /* shut down meanwhile */
			edge_limits_call_end(e, f->stx);
	} else if (f->canceled) {
		fork_end(f); /* answered 487 by edge_proxy_cancel */
	} else if (v != EDGE_LIMIT_OK) {
		send_final(f, 403, edge_limits_reason(v));
		fork_end(f);
	} else {
		route_local_or_out(f);
	}
	sk_deref(f); /* the reference of the check */
}

/* Toll fraud: an initial INVITE of a local caller counts against its call limits
 * (cluster-wide) before it is routed. */
static void admit(struct fork *f)
{
	if (edge_limits_admit(f->e, f->stx, on_limits, sk_ref(f)) == 0)
		return;
	sk_deref(f);
	route_local_or_out(f);
}

static void on_auth(struct edge *e, struct edge_stx *stx, bool ok, const char *user, void *arg)
{
	struct fork *f = arg;
	sip_t *sip = sip_object(edge_stx_msg(stx));

	(void)e;
	if (f->ended) {
		/* shut down meanwhile */
	} else if (!ok || f->canceled) {
		f->final_sent = true; /* answered by auth (or canceled) */
		fork_end(f);
	} else if (!sip->sip_from->a_url->url_user ||
		   strcmp(sip->sip_from->a_url->url_user, user)) {
		/* The From user is the one who authenticated (no spoofing of callers). */
		send_final(f, 403, "Forbidden (From does not match the authenticated user)");
		fork_end(f);
	} else {
		f->authed = true;
		if (f->invite)
			admit(f);
		else
			route_local_or_out(f);
	}
	sk_deref(f); /* the reference of the authentication */
}

/* RFC 3261 §16.6 item 8: a hash of what decides where a request goes, as received:
 * Request-URI, top Route, Call-ID, From and To tags, CSeq number, Proxy-Require.
 * (Proxy-Authorization is left out: we remove it when we consume it, so a request
 * that comes back would otherwise look like a spiral.) FNV-1a, 64 bits. */
static void loop_hash(msg_t *msg, sip_t *sip, char out[EDGE_BRANCH_TAG_MAX + 1])
{
	uint64_t h = SK_FNV64_BASIS;
	char buf[1024];
	const msg_header_t *parts[3] = {(const msg_header_t *)sip->sip_route,
					(const msg_header_t *)sip->sip_call_id,
					(const msg_header_t *)sip->sip_proxy_require};
	char num[SK_U64_DEC_MAX];
	size_t n;

	(void)msg;
#define MIX(p, n) (h = sk_fnv64(h, (p), (n)))
	url_e(buf, sizeof(buf), sip->sip_request->rq_url);
	MIX(buf, strnlen(buf, sizeof(buf)));
	for (int i = 0; i < 3; i++) {
		buf[0] = 0;
		if (parts[i])
			msg_header_field_e(buf, sizeof(buf), parts[i], 0);
		MIX(buf, strnlen(buf, sizeof(buf)));
		h = sk_fnv64_byte(h, 0xff);
	}
	if (sip->sip_from && sip->sip_from->a_tag)
		MIX(sip->sip_from->a_tag, strlen(sip->sip_from->a_tag));
	h = sk_fnv64_byte(h, 0xfe);
	if (sip->sip_to && sip->sip_to->a_tag)
		MIX(sip->sip_to->a_tag, strlen(sip->sip_to->a_tag));
	/* the CSeq number's decimal digits, as the header spells it */
	n = sk_u64_dec(num, sip->sip_cseq->cs_seq);
	MIX(num, n);
#undef MIX
	for (int i = 15; i >= 0; i--, h >>= 4)
		out[i] = "0123456789abcdef"[h & 15];
	out[16] = '\0';
}

/* A Via of ours whose branch carries the same hash: the request came back unchanged
 * (a loop, 482); a different hash is a spiral and goes on. */
static bool looped(struct edge *e, sip_t *sip, const char *tag)
{
	for (const sip_via_t *v = sip->sip_via; v; v = v->v_next) {
		const char *br = v->v_branch, *dot;
		unsigned port = v->v_port ? (unsigned)atoi(v->v_port) : 5060;
		bool ours = false;

		if (!br || !v->v_host || strcasecmp(v->v_host, e->host))
			continue;
		for (int p = 0; p < EDGE_PROTO_MAX_; p++)
			ours |= e->port[p] == port;
		if (ours && (dot = strrchr(br, '.')) && !strcasecmp(dot + 1, tag))
			return true;
	}
	return false;
}

void edge_proxy_request(struct edge *e, struct edge_stx *stx)
{
	msg_t *msg = edge_stx_msg(stx);
	sip_t *sip = sip_object(msg);
	const sip_route_t *r;
	struct fork *f = fork_alloc(e, stx);
	bool in_dialog = sip->sip_to && sip->sip_to->a_tag;
	struct edge_flow_ref ref;
	int ours;

	if (!f) {
		edge_reply(e, stx, 500, "Server Internal Error", NULL);
		return;
	}
	edge_limits_bye(e, sip); /* a call ends: it stops counting, whatever the answer */
	loop_hash(msg, sip, f->loop_tag);
	if (looped(e, sip, f->loop_tag)) {
		send_final(f, 482, NULL);
		fork_end(f);
		return;
	}
	ours = edge_route_self(e, sip->sip_route, &r, &ref);
	f->record_route = !in_dialog && dialog_creating(sip->sip_request->rq_method);
	if (in_dialog) {
		/* In-dialog without a Route naming us is not ours to route (§16.12). */
		if (!ours) {
			send_final(f, 404, "Not Found (no route)");
			fork_end(f);
			return;
		}
		trying(f);
		if (r) /* the route set beyond us (§16.4, §16.6 item 6) */
			to_uri(f, r->r_url);
		else if (ref.valid)
			to_flow(f, &ref);
		else
			to_uri(f, sip->sip_request->rq_url);
		return;
	}
	if (r) {
		if (!ours) {
			send_final(f, 403, "Forbidden (preloaded route not through us)");
			fork_end(f);
			return;
		}
		/* followed by route_local_or_out once the caller is known */
		f->preloaded = r->r_url;
	}
	/* Out of dialog: local callers authenticate (§22.3, 407). */
	if (edge_domain_local(e, sip->sip_from->a_url->url_host)) {
		char realm[EDGE_DIGEST_REALM_MAX + 1];
		const char *why;

		if (regdata_domain_norm(realm, sizeof(realm), sip->sip_from->a_url->url_host,
					&why)) {
			send_final(f, 400, "Bad Request (From domain)");
			fork_end(f);
			return;
		}
		if (!r && sip->sip_proxy_authorization)
			early_lookup(f, sip->sip_request->rq_url);
		edge_auth(e, stx, true, realm, on_auth, sk_ref(f));
		return;
	}
	route_local_or_out(f);
}

/* Shutdown: the transaction layer is closing without callbacks; every fork drops
 * its own reference (one waiting for Redis goes when the client cancels it). */
void edge_proxy_stop(struct edge *e)
{
	struct fork *f = e->fork_list, *next;

	for (; f; f = next) {
		next = f->lnext;
		fork_end(f);
	}
}

void edge_proxy_cancel(struct edge *e, struct edge_stx *invite)
{
	struct fork *f = edge_stx_tu(invite);

	/* §16.10: cancel every pending branch; the caller gets its 487 now rather than
	 * after the slowest branch. */
	if (!f) {
		if (!edge_stx_status(invite))
			edge_reply(e, invite, 487, NULL, NULL);
		return;
	}
	f->canceled = true;
	cancel_pending(f);
	send_final(f, 487, NULL);
}

/* ---- stateless forwarding (§16.11): ACK for 2xx and responses with no transaction */

static void stateless_request(struct edge *e, msg_t *m, const struct edge_rx *rx)
{
	sip_t *sip = sip_object(m);
	char via[256], branch[EDGE_BRANCH_SIZE];
	struct edge_dest d;
	const url_t *target;
	struct sk_buf b;
	sip_via_t *v;
	bool v6 = strchr(e->host, ':') != NULL;

	struct edge_flow_ref ref;

	(void)rx;
	if (sip->sip_request->rq_method != sip_method_ack)
		return;
	edge_route_self(e, sip->sip_route, NULL, &ref);
	edge_route_pop_self(e, m, sip);
	target = sip->sip_route ? sip->sip_route->r_url : sip->sip_request->rq_url;
	if (!sip->sip_route && ref.valid) {
		if (flow_dest(e, ref.member, ref.flow, "tcp", &d, NULL, 0))
			return; /* the flow is gone: nobody to tell (an ACK has no answer) */
	} else if (edge_domain_local(e, target->url_host) || edge_route_uri(e, target, &d)) {
		return; /* an ACK for a 2xx goes to a contact; nothing else to do */
	}
	if (sip->sip_max_forwards) {
		if (sip->sip_max_forwards->mf_count == 0)
			return;
		sip->sip_max_forwards->mf_count--;
		msg_fragment_clear(sip->sip_max_forwards->mf_common);
	}
	/* A fresh branch per hop is fine for an ACK to a 2xx: it is its own transaction
	 * (§17.1.1.3) and nothing downstream matches it to ours. */
	edge_branch_new(branch);
	snprintf(via, sizeof(via), "SIP/2.0/%s %s%s%s:%u;branch=%s", edge_proto_via(d.proto),
		 v6 ? "[" : "", e->host, v6 ? "]" : "", e->port[d.proto], branch);
	v = sip_via_make(msg_home(m), via);
	if (!v || msg_header_prepend(m, (msg_pub_t *)sip, (msg_header_t **)&sip->sip_via,
				     (msg_header_t *)v))
		return;
	sk_buf_init(&b);
	if (!edge_msg_print(m, &b))
		edge_relay_send(e, d.proto, &d.addr, d.flow, NULL, b.data, b.len, 0);
	sk_buf_release(&b);
}

static void stateless_response(struct edge *e, msg_t *m)
{
	sip_t *sip = sip_object(m);
	sip_via_t *v = sip->sip_via;
	struct edge_dest d;
	struct sk_buf b;
	char uri[300];
	url_t u[1];

	/* Up a flow we hold, for another edge's transaction: back to it over the bus. */
	if (edge_relay_back(e, m))
		return;
	/* Ours on top (§16.11 / §18.2.2 for the next hop); otherwise not for us. */
	if (!v || !v->v_next || !v->v_host || strcasecmp(v->v_host, e->host))
		return;
	msg_header_remove(m, (msg_pub_t *)sip, (msg_header_t *)v);
	v = sip->sip_via;
	snprintf(uri, sizeof(uri), "sip:%s:%s;transport=%s",
		 v->v_received ? v->v_received : v->v_host,
		 v->v_rport && *v->v_rport ? v->v_rport : (v->v_port ? v->v_port : "5060"),
		 v->v_protocol ? strrchr(v->v_protocol, '/') + 1 : "udp");
	if (url_d(u, uri) < 0 || edge_route_uri(e, u, &d))
		return;
	sk_buf_init(&b);
	if (!edge_msg_print(m, &b))
		edge_tp_send(e->tp, d.proto, &d.addr, 0, NULL, b.data, b.len, 0);
	sk_buf_release(&b);
}

void edge_proxy_stateless(struct edge *e, msg_t *msg, const struct edge_rx *rx)
{
	if (sip_object(msg)->sip_request)
		stateless_request(e, msg, rx);
	else
		stateless_response(e, msg);
	msg_destroy(msg);
}
