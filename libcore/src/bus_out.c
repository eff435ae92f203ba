/* Bus peers and outbound sockets: one NN_PUSH per peer address, a bounded queue for
 * messages sent before the connection is up, peer choice for role requests. */
#include <stdlib.h>
#include <string.h>
#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>
#include "skein/sk_mem.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "bus_int.h"

SK_LOG_MODULE("bus");

#define OUT_QUEUE_MAX 8192
#define OUT_DOWN_MS 1000   /* avoid a peer this long after a failed send */
#define OUT_CONNECT_MS 500 /* a new socket's first failures mean "still connecting" */
#define OUT_IDLE_MS 60000  /* close sockets to addresses no peer uses after this */
#define GC_INTERVAL_MS 10000

static void poll_close_cb(uv_handle_t *h)
{
	free(h);
}

static void out_poll_stop(struct sk_bus_out *o)
{
	if (o->poll) {
		uv_close((uv_handle_t *)o->poll, poll_close_cb);
		o->poll = NULL;
	}
}

static void q_drop_all(struct sk_bus_out *o)
{
	while (o->qlen) {
		free(o->q[o->qhead].data);
		o->qhead = (o->qhead + 1) % o->qcap;
		o->qlen--;
	}
}

static void out_free(struct sk_bus_out *o)
{
	out_poll_stop(o);
	q_drop_all(o);
	free(o->q);
	if (o->sock >= 0)
		nn_close(o->sock);
	sk_deref(o->addr);
	free(o);
}

/* Flush what is queued; stop polling when empty or keep polling on EAGAIN. */
static void out_flush(struct sk_bus_out *o)
{
	uint64_t now = uv_now(o->b->loop);

	while (o->qlen) {
		struct sk_bus_qmsg *m = &o->q[o->qhead];

		if (m->expire && m->expire <= now) {
			o->b->st.dropped_late++;
			if (o->b->m.late)
				sk_counter_inc(o->b->m.late);
		} else if (nn_send(o->sock, m->data, m->len, NN_DONTWAIT) < 0) {
			if (nn_errno() == EAGAIN)
				return;
			o->b->st.send_failures++;
		} else {
			o->b->st.tx++;
			if (o->b->m.tx)
				sk_counter_inc(o->b->m.tx);
		}
		free(m->data);
		o->qhead = (o->qhead + 1) % o->qcap;
		o->qlen--;
	}
	out_poll_stop(o);
}

static void out_writable(uv_poll_t *h, int status, int events)
{
	struct sk_bus_out *o = h->data;

	(void)status;
	(void)events;
	out_flush(o);
}

static int q_push(struct sk_bus_out *o, const void *data, size_t len, uint64_t expire)
{
	struct sk_bus_qmsg *m;

	if (o->qlen == o->qcap) {
		size_t cap = o->qcap ? o->qcap * 2 : 16;
		struct sk_bus_qmsg *q;

		if (cap > OUT_QUEUE_MAX)
			return SK_EAGAIN;
		q = calloc(cap, sizeof(*q));
		if (!q)
			return SK_ENOMEM;
		for (size_t i = 0; i < o->qlen; i++)
			q[i] = o->q[(o->qhead + i) % o->qcap];
		free(o->q);
		o->q = q;
		o->qcap = cap;
		o->qhead = 0;
	}
	m = &o->q[(o->qhead + o->qlen) % o->qcap];
	m->data = malloc(len ? len : 1);
	if (!m->data)
		return SK_ENOMEM;
	memcpy(m->data, data, len);
	m->len = len;
	m->expire = expire;
	o->qlen++;
	if (!o->poll) {
		int fd;
		size_t sz = sizeof(fd);

		if (nn_getsockopt(o->sock, NN_SOL_SOCKET, NN_SNDFD, &fd, &sz) < 0)
			return SK_EPROTO;
		o->poll = malloc(sizeof(*o->poll));
		if (!o->poll)
			return SK_ENOMEM;
		uv_poll_init(o->b->loop, o->poll, fd);
		o->poll->data = o;
		uv_poll_start(o->poll, UV_READABLE, out_writable);
	}
	return 1;
}

int sk_bus_out_send(struct sk_bus_out *o, const void *data, size_t len, uint64_t expire,
		    bool queue)
{
	o->last_used = uv_now(o->b->loop);
	/* Keep order: nothing overtakes what is already queued. */
	if (!o->qlen) {
		if (nn_send(o->sock, data, len, NN_DONTWAIT) >= 0) {
			o->b->st.tx++;
			if (o->b->m.tx)
				sk_counter_inc(o->b->m.tx);
			return 0;
		}
		if (nn_errno() != EAGAIN) {
			o->b->st.send_failures++;
			return -nn_errno();
		}
	}
	/* EAGAIN on a PUSH socket, or older messages still waiting: no connection up
	 * to that address right now. A socket still connecting is not a peer that is
	 * down. A caller that can go elsewhere is told so rather than queued behind
	 * messages that may never leave. */
	if (o->last_used - o->created >= OUT_CONNECT_MS)
		o->down_until = o->last_used + OUT_DOWN_MS;
	if (!queue) {
		o->b->st.send_failures++;
		if (o->b->m.send_fail)
			sk_counter_inc(o->b->m.send_fail);
		return SK_EAGAIN;
	}
	return q_push(o, data, len, expire);
}

struct sk_bus_out *sk_bus_out_get(struct sk_bus *b, const char *addr)
{
	struct sk_bus_out *o;
	int linger = 0;

	for (o = b->outs; o; o = o->next)
		if (!strcmp(o->addr, addr))
			return o;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->b = b;
	o->addr = sk_strdup(addr);
	o->sock = nn_socket(AF_SP, NN_PUSH);
	if (!o->addr || o->sock < 0)
		goto fail;
	nn_setsockopt(o->sock, NN_SOL_SOCKET, NN_LINGER, &linger, sizeof(linger));
	o->endpoint = nn_connect(o->sock, addr);
	if (o->endpoint < 0) {
		SK_WARN("cannot connect to bus address %s: %s", addr, nn_strerror(nn_errno()));
		goto fail;
	}
	o->created = o->last_used = uv_now(b->loop);
	o->next = b->outs;
	b->outs = o;
	return o;
fail:
	if (o->sock < 0)
		o->sock = -1;
	out_free(o);
	return NULL;
}

void sk_bus_out_release(struct sk_bus_out *o)
{
	if (o && o->users)
		o->users--;
}

void sk_bus_outs_close(struct sk_bus *b)
{
	while (b->outs) {
		struct sk_bus_out *o = b->outs;

		b->outs = o->next;
		out_free(o);
	}
}

/* Close sockets to addresses that no peer uses and nobody sent to for a while
 * (the reply sockets of short-lived clients such as skeinctl). */
static void gc_tick(uv_timer_t *t)
{
	struct sk_bus *b = t->data;
	struct sk_bus_out **pp = &b->outs;
	uint64_t now = uv_now(b->loop);

	while (*pp) {
		struct sk_bus_out *o = *pp;

		/* Messages for an address that never connects expire here. */
		if (o->qlen)
			out_flush(o);
		if (!o->users && !o->qlen && now - o->last_used > OUT_IDLE_MS) {
			*pp = o->next;
			out_free(o);
			continue;
		}
		pp = &o->next;
	}
}

int sk_bus_gc_start(struct sk_bus *b)
{
	b->gc = malloc(sizeof(*b->gc));
	if (!b->gc)
		return SK_ENOMEM;
	uv_timer_init(b->loop, b->gc);
	b->gc->data = b;
	uv_timer_start(b->gc, gc_tick, GC_INTERVAL_MS, GC_INTERVAL_MS);
	uv_unref((uv_handle_t *)b->gc);
	return 0;
}

struct sk_bus_peer *sk_bus_peer_find(const struct sk_bus *b, const char *id)
{
	struct sk_bus_peer *p;

	for (p = b->peers; p; p = p->next)
		if (!strcmp(p->id, id))
			return p;
	return NULL;
}

static void peer_free(struct sk_bus_peer *p)
{
	for (size_t i = 0; i < p->ntopics; i++)
		sk_deref(p->topics[i]);
	free(p->topics);
	sk_bus_out_release(p->out);
	sk_deref(p->id);
	sk_deref(p->role);
	sk_deref(p->dc);
	free(p);
}

void sk_bus_peers_free(struct sk_bus *b)
{
	while (b->peers) {
		struct sk_bus_peer *p = b->peers;

		b->peers = p->next;
		peer_free(p);
	}
}

static int set_str(char **dst, const char *s)
{
	char *n;

	if (*dst && !strcmp(*dst, s ? s : ""))
		return 0;
	n = sk_strdup(s ? s : "");
	if (!n)
		return SK_ENOMEM;
	sk_deref(*dst);
	*dst = n;
	return 0;
}

int sk_bus_peer_set(struct sk_bus *b, const char *id, const char *role, const char *dc,
		    const char *addr, bool draining, const char *const *topics, size_t ntopics)
{
	struct sk_bus_peer *p;
	bool fresh = false;
	int err = 0;

	if (!id || !role || !addr || !*addr)
		return SK_EINVAL;
	if (!strcmp(id, b->id))
		return 0; /* ourselves */
	p = sk_bus_peer_find(b, id);
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return SK_ENOMEM;
		fresh = true;
	}
	err = set_str(&p->id, id);
	err = err ? err : set_str(&p->role, role);
	err = err ? err : set_str(&p->dc, dc);
	if (!err && (!p->out || strcmp(p->out->addr, addr))) {
		struct sk_bus_out *o = sk_bus_out_get(b, addr);

		if (!o) {
			err = SK_EINVAL;
		} else {
			sk_bus_out_release(p->out);
			p->out = o;
			o->users++;
		}
	}
	if (!err) {
		char **t = calloc(ntopics ? ntopics : 1, sizeof(*t));

		if (!t) {
			err = SK_ENOMEM;
		} else {
			for (size_t i = 0; i < p->ntopics; i++)
				sk_deref(p->topics[i]);
			free(p->topics);
			p->topics = t;
			p->ntopics = 0;
			for (size_t i = 0; i < ntopics; i++)
				if ((t[p->ntopics] = sk_strdup(topics[i])))
					p->ntopics++;
		}
	}
	if (err) {
		if (fresh)
			peer_free(p);
		return err;
	}
	p->draining = draining;
	if (fresh) {
		p->next = b->peers;
		b->peers = p;
		SK_INFO("peer %s (%s, %s) at %s", id, role, dc ? dc : "-", addr);
	}
	return 0;
}

void sk_bus_peer_del(struct sk_bus *b, const char *id)
{
	struct sk_bus_peer **pp;

	for (pp = &b->peers; *pp; pp = &(*pp)->next) {
		struct sk_bus_peer *p = *pp;

		if (strcmp(p->id, id))
			continue;
		*pp = p->next;
		SK_INFO("peer %s gone", id);
		peer_free(p);
		sk_bus_node_lost(b, id);
		return;
	}
}

size_t sk_bus_peer_count(const struct sk_bus *b, const char *role)
{
	size_t n = 0;

	for (const struct sk_bus_peer *p = b->peers; p; p = p->next)
		if (!role || !strcmp(p->role, role))
			n++;
	return n;
}

static bool usable(const struct sk_bus_peer *p, const char *role, const char *const *ex, size_t nex,
		   uint64_t now)
{
	if (strcmp(p->role, role) || p->draining || !p->out || p->out->down_until > now)
		return false;
	for (size_t i = 0; i < nex; i++)
		if (!strcmp(p->id, ex[i]))
			return false;
	return true;
}

static struct sk_bus_peer *pick(struct sk_bus *b, const char *role, const char *const *ex,
				size_t nex, bool advance)
{
	uint64_t now = uv_now(b->loop);
	struct sk_bus_peer *p;
	size_t n;

	for (int pass = 0; pass < 3; pass++) {
		uint64_t t = pass == 2 ? UINT64_MAX : now;

		n = 0;
		for (p = b->peers; p; p = p->next)
			if (usable(p, role, ex, nex, t) && (pass > 0 || !strcmp(p->dc, b->dc)))
				n++;
		if (!n)
			continue;
		n = (advance ? b->rr++ : b->rr) % n;
		for (p = b->peers; p; p = p->next)
			if (usable(p, role, ex, nex, t) && (pass > 0 || !strcmp(p->dc, b->dc)) &&
			    n-- == 0)
				return p;
	}
	return NULL;
}

/* Round robin over the usable peers of the role in our datacenter, else anywhere;
 * if every one failed a send lately, still try one of them (it may be back). */
struct sk_bus_peer *sk_bus_peer_pick(struct sk_bus *b, const char *role, const char *const *ex,
				     size_t nex)
{
	return pick(b, role, ex, nex, true);
}

bool sk_bus_peer_other(struct sk_bus *b, const char *role, const char *const *ex, size_t nex)
{
	return pick(b, role, ex, nex, false) != NULL;
}
