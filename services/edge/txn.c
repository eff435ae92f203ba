/* txn: the transaction layer itself: hash tables, the timers, input dispatch (txn.h). */
#include "txn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sofia-sip/msg_header.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"

SK_LOG_MODULE("txn");

/* ---- hash tables ---- */

int txn_htab_init(struct txn_htab *t, size_t buckets)
{
	t->b = calloc(buckets, sizeof(*t->b));
	t->mask = buckets - 1;
	t->n = 0;
	return t->b ? 0 : SK_ENOMEM;
}

void txn_htab_release(struct txn_htab *t)
{
	free(t->b);
	memset(t, 0, sizeof(*t));
}

static void htab_grow(struct txn_htab *t)
{
	size_t nb = (t->mask + 1) * 2;
	struct txn_hnode **b = calloc(nb, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i <= t->mask; i++) {
		while (t->b[i]) {
			struct txn_hnode *n = t->b[i];

			t->b[i] = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(t->b);
	t->b = b;
	t->mask = nb - 1;
}

void txn_htab_add(struct txn_htab *t, struct txn_hnode *n)
{
	struct txn_hnode **slot;

	if (t->n > t->mask)
		htab_grow(t);
	slot = &t->b[n->hash & t->mask];
	n->next = *slot;
	*slot = n;
	t->n++;
}

void txn_htab_del(struct txn_htab *t, struct txn_hnode *n)
{
	for (struct txn_hnode **p = &t->b[n->hash & t->mask]; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			n->next = NULL;
			t->n--;
			return;
		}
	}
}

uint64_t txn_hash_lower(uint64_t h, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		h = sk_fnv64_byte(h, c >= 'A' && c <= 'Z' ? c + 32u : c);
	}
	return h;
}

/* ---- timers ---- */

static bool before(const struct txn_timer *a, const struct txn_timer *b)
{
	return a->due < b->due;
}

static void heap_set(struct edge_txl *l, size_t i, struct txn_timer *t)
{
	l->heap[i] = t;
	t->pos = (uint32_t)i + 1;
}

static void heap_up(struct edge_txl *l, size_t i)
{
	struct txn_timer *t = l->heap[i];

	while (i > 0 && before(t, l->heap[(i - 1) / 2])) {
		heap_set(l, i, l->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(l, i, t);
}

static void heap_down(struct edge_txl *l, size_t i)
{
	struct txn_timer *t = l->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= l->heap_n)
			break;
		if (c + 1 < l->heap_n && before(l->heap[c + 1], l->heap[c]))
			c++;
		if (!before(l->heap[c], t))
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

static void timer_cb(uv_timer_t *h);

/* The earliest armed timer: the heap's top or a queue's head. */
static struct txn_timer *earliest(const struct edge_txl *l)
{
	struct txn_timer *e = l->heap_n ? l->heap[0] : NULL;

	for (size_t i = 0; i < l->ntq; i++) {
		struct txn_timer *h = l->tq[i].head;

		if (h && (!e || h->due < e->due))
			e = h;
	}
	return e;
}

static void rearm(struct edge_txl *l)
{
	uint64_t now = uv_now(l->loop), due;
	struct txn_timer *e = l->closed ? NULL : earliest(l);

	if (!e) {
		l->armed_due = UINT64_MAX;
		return;
	}
	due = e->due;
	if (due == l->armed_due)
		return;
	l->armed_due = due;
	uv_timer_start(l->timer, timer_cb, due > now ? due - now : 0, 0);
}

void txn_timer_stop(struct edge_txl *l, struct txn_timer *t)
{
	size_t i;

	/* A stale uv deadline is harmless: the callback finds nothing due and rearms. */
	if (t->q) {
		struct txn_tq *q = &l->tq[t->q - 1];

		*(t->prev ? &t->prev->next : &q->head) = t->next;
		*(t->next ? &t->next->prev : &q->tail) = t->prev;
		t->prev = t->next = NULL;
		t->q = 0;
		return;
	}
	if (!t->pos)
		return;
	i = t->pos - 1;
	t->pos = 0;
	if (--l->heap_n == i)
		return;
	/* The last entry fills the hole and moves whichever way it must. */
	t = l->heap[l->heap_n];
	heap_set(l, i, t);
	heap_up(l, i);
	heap_down(l, t->pos - 1);
}

/* The queue of timers of ms, made when there is room; NULL: the heap takes it. */
static struct txn_tq *queue_for(struct edge_txl *l, uint64_t ms)
{
	for (size_t i = 0; i < l->ntq; i++)
		if (l->tq[i].ms == ms)
			return &l->tq[i];
	if (l->ntq == TXN_TQ_MAX)
		return NULL;
	l->tq[l->ntq].ms = ms;
	return &l->tq[l->ntq++];
}

static int heap_push(struct edge_txl *l, struct txn_timer *t)
{
	if (l->heap_n == l->heap_cap) {
		size_t cap = l->heap_cap ? l->heap_cap * 2 : 1024;
		struct txn_timer **h = realloc(l->heap, cap * sizeof(*h));

		if (!h)
			return SK_ENOMEM;
		l->heap = h;
		l->heap_cap = cap;
	}
	heap_set(l, l->heap_n++, t);
	heap_up(l, l->heap_n - 1);
	return 0;
}

void txn_timer_start(struct edge_txl *l, struct txn_timer *t, uint64_t ms, txn_timer_cb *fn)
{
	struct txn_tq *q;

	txn_timer_stop(l, t);
	if (l->closed)
		return;
	t->fn = fn;
	t->due = uv_now(l->loop) + ms;
	q = queue_for(l, ms);
	if (q) {
		t->q = (uint8_t)(q - l->tq + 1);
		t->next = NULL;
		t->prev = q->tail;
		*(q->tail ? &q->tail->next : &q->head) = t;
		q->tail = t;
	} else if (heap_push(l, t)) {
		/* Without its timer the transaction would never end (never seen: the
		 * queues take every duration the layer uses). */
		SK_ERROR("timer heap: out of memory");
		return;
	}
	if (t->due < l->armed_due) {
		l->armed_due = UINT64_MAX;
		rearm(l);
	}
}

/* Runs every timer that is due, in deadline order; a callback may start and stop
 * timers (its own included) and end transactions. */
static void timer_cb(uv_timer_t *h)
{
	struct edge_txl *l = h->data;
	uint64_t now = uv_now(l->loop);
	struct txn_timer *t;

	l->armed_due = UINT64_MAX;
	sk_ref(l);
	while (!l->closed && (t = earliest(l)) && t->due <= now) {
		txn_timer_stop(l, t);
		t->fn(t);
	}
	rearm(l);
	sk_deref(l);
}

void txn_check_cb(uv_check_t *h)
{
	struct edge_txl *l = h->data;

	sk_ref(l);
	txn_stx_shed_run(l);
	if (!l->shed_head)
		uv_check_stop(h);
	sk_deref(l);
}

void txn_count_retx(struct edge_txl *l)
{
	l->st.retransmissions_sent++;
	if (l->m.retx)
		sk_counter_inc(l->m.retx);
}

void txn_count_timeout(struct edge_txl *l)
{
	l->st.timeouts++;
	if (l->m.timeouts)
		sk_counter_inc(l->m.timeouts);
}

const char *txn_via_param(const sip_via_t *v, const char *name)
{
	return msg_header_find_param(v->v_common, name);
}

/* ---- the layer ---- */

static double live_read(void *arg)
{
	return (double)edge_txl_live(arg);
}

/* The timer's and the check handle's. */
static void handle_close_cb(uv_handle_t *h)
{
	struct edge_txl *l = h->data;

	free(h);
	sk_deref(l);
}

static void txl_destroy(void *data)
{
	struct edge_txl *l = data;

	txn_htab_release(&l->stx_tab);
	txn_htab_release(&l->ctx_tab);
	txn_htab_release(&l->id_tab);
	free(l->heap);
	for (size_t i = 0; i < EDGE_PROTO_MAX_; i++)
		free(l->via[i].pre);
	sk_deref(l->via_host);
	sk_deref(l->via_param);
}

static void metrics_init(struct edge_txl *l, struct sk_metrics *m, const char *p)
{
	static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
					1,     2.5,  5,	    10,	  30,  60,   180};
	char n[128];

	snprintf(n, sizeof(n), "%s_transactions", p);
	sk_metrics_gauge_fn(m, n, "SIP transactions alive (server and client)", NULL, NULL,
			    live_read, l);
	snprintf(n, sizeof(n), "%s_transaction_seconds", p);
	l->m.seconds = sk_metrics_histogram(m, n, "Server transaction: request to final response",
					    bounds, sizeof(bounds) / sizeof(bounds[0]));
	snprintf(n, sizeof(n), "%s_retransmissions_total", p);
	l->m.retx =
	    sk_metrics_counter(m, n, "SIP retransmissions sent (Timers A, E, G)", NULL, NULL);
	snprintf(n, sizeof(n), "%s_transaction_timeouts_total", p);
	l->m.timeouts = sk_metrics_counter(
	    m, n, "SIP transactions timed out (Timers B, F, H and C)", NULL, NULL);
	snprintf(n, sizeof(n), "%s_acks_absorbed_total", p);
	for (int i = 0; i < 2; i++)
		l->m.acks[i] = sk_metrics_counter(m, n,
						  "ACKs of our own finals with no transaction left "
						  "(stateless challenges), by how they were known",
						  "how", i ? "unparsed" : "parsed");
}

int edge_txl_alloc(struct edge_txl **lp, uv_loop_t *loop, const struct edge_txl_opts *o)
{
	struct edge_txl *l;
	int err;

	if (!lp || !loop || !o || !o->tp)
		return SK_EINVAL;
	l = sk_zalloc(sizeof(*l), txl_destroy);
	if (!l)
		return SK_ENOMEM;
	l->loop = loop;
	l->o = *o;
	l->o.t1_ms = o->t1_ms ? o->t1_ms : 500;
	l->o.t2_ms = o->t2_ms ? o->t2_ms : 4000;
	l->o.t4_ms = o->t4_ms ? o->t4_ms : 5000;
	l->o.timer_c_ms = o->timer_c_ms ? o->timer_c_ms : 180000;
	l->o.metrics_prefix = NULL; /* borrowed only during alloc */
	l->o.via_host = NULL;
	if (o->via_host && o->via_host[0] && !(l->via_host = sk_strdup(o->via_host))) {
		err = SK_ENOMEM;
		goto out;
	}
	l->o.via_param = NULL;
	if (o->via_param && o->via_param[0] && !(l->via_param = sk_strdup(o->via_param))) {
		err = SK_ENOMEM;
		goto out;
	}
	l->armed_due = UINT64_MAX;
	l->shed_tail = &l->shed_head;
	l->next_id = 1;
	if (getrandom(&l->seed, sizeof(l->seed), 0) != sizeof(l->seed))
		l->seed = uv_hrtime();
	l->seed |= 1;
	{
		char t[EDGE_TAG_SIZE];

		edge_tag_new(t);
		memcpy(l->tag_prefix, t, sizeof(l->tag_prefix));
		memcpy(l->sl_prefix, t + sizeof(l->tag_prefix), sizeof(l->sl_prefix));
		if (!memcmp(l->tag_prefix, l->sl_prefix, sizeof(l->sl_prefix)))
			l->sl_prefix[0] = l->sl_prefix[0] == '0' ? '1' : '0';
	}
	err = txn_htab_init(&l->stx_tab, 4096);
	if (!err)
		err = txn_htab_init(&l->ctx_tab, 4096);
	if (!err)
		err = txn_htab_init(&l->id_tab, 4096);
	if (err)
		goto out;
	l->timer = malloc(sizeof(*l->timer));
	l->check = malloc(sizeof(*l->check));
	if (!l->timer || !l->check) {
		free(l->timer);
		free(l->check);
		err = SK_ENOMEM;
		goto out;
	}
	uv_timer_init(loop, l->timer);
	l->timer->data = sk_ref(l); /* dropped in the close callback */
	uv_check_init(loop, l->check);
	l->check->data = sk_ref(l);
	if (o->metrics)
		metrics_init(l, o->metrics, o->metrics_prefix ? o->metrics_prefix : "skein_edge");
	*lp = l;
	return 0;
out:
	sk_deref(l);
	return err;
}

/* Every transaction of a table, ended without callbacks. Terminating unlinks the
 * node from the table, so restart from the bucket head each time. */
void edge_txl_close(struct edge_txl *l)
{
	if (!l || l->closed)
		return;
	l->closed = true;
	for (size_t i = 0; i <= l->stx_tab.mask; i++)
		while (l->stx_tab.b[i])
			txn_stx_terminate(TXN_CONTAINER(l->stx_tab.b[i], struct edge_stx, hn));
	for (size_t i = 0; i <= l->ctx_tab.mask; i++)
		while (l->ctx_tab.b[i])
			txn_ctx_terminate(TXN_CONTAINER(l->ctx_tab.b[i], struct edge_ctx, hn));
	txn_stx_shed_run(l); /* all terminated: only drops the list's references */
	uv_close((uv_handle_t *)l->timer, handle_close_cb);
	uv_close((uv_handle_t *)l->check, handle_close_cb);
}

void edge_txl_input(struct edge_txl *l, const struct edge_rx *rx, msg_t *msg)
{
	sip_t *sip = msg ? sip_object(msg) : NULL;

	if (!l || l->closed || !rx || !sip || !sip->sip_via || !sip->sip_cseq) {
		if (msg)
			msg_destroy(msg);
		return;
	}
	sk_ref(l); /* the TU may close and release the layer from a callback */
	if (sip->sip_request)
		txn_server_input(l, rx, msg);
	else
		txn_client_input(l, rx, msg);
	sk_deref(l);
}

void edge_txl_send_error(struct edge_txl *l, uint64_t cookie, int err)
{
	if (!l || l->closed || !(cookie & EDGE_TXL_COOKIE))
		return;
	cookie &= ~EDGE_TXL_COOKIE;
	for (struct txn_hnode *n = txn_htab_first(&l->id_tab, cookie); n; n = n->next) {
		struct edge_ctx *ctx = TXN_CONTAINER(n, struct edge_ctx, hid);

		if (ctx->id == cookie) {
			txn_ctx_send_error(ctx, err);
			return;
		}
	}
}

/* Client transactions bound to a dead flow would wait for Timer B/F: end them now.
 * A scan of the client table: flows close far less often than requests come. The
 * victims are collected first, as callbacks may start new transactions. */
void edge_txl_flow_closed(struct edge_txl *l, uint64_t flow)
{
	struct edge_ctx **v = NULL;
	size_t n = 0, cap = 0;

	if (!l || l->closed || !flow)
		return;
	for (size_t i = 0; i <= l->ctx_tab.mask; i++)
		for (struct txn_hnode *h = l->ctx_tab.b[i]; h; h = h->next) {
			struct edge_ctx *ctx = TXN_CONTAINER(h, struct edge_ctx, hn);

			if (ctx->flow != flow)
				continue;
			if (n == cap) {
				struct edge_ctx **nv;

				cap = cap ? 2 * cap : 16;
				nv = realloc(v, cap * sizeof(*v));
				if (!nv)
					goto out;
				v = nv;
			}
			v[n++] = sk_ref(ctx);
		}
out:
	for (size_t i = 0; i < n; i++) {
		txn_ctx_send_error(v[i], SK_ECONNRESET);
		sk_deref(v[i]);
	}
	free(v);
}

void edge_txl_stats(const struct edge_txl *l, struct edge_txl_stats *st)
{
	*st = l->st;
	st->stx_live = l->stx_tab.n;
	st->ctx_live = l->ctx_tab.n;
	st->stx_requests = l->stx_requests;
}

size_t edge_txl_live(const struct edge_txl *l)
{
	return l ? l->stx_tab.n + l->ctx_tab.n : 0;
}

size_t edge_txl_pending(const struct edge_txl *l)
{
	return l ? l->pending : 0;
}
