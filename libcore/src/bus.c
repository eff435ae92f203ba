/* The bus: inbound socket, envelope dispatch, requests with deadlines and one retry,
 * replies, directed messages and events. Peers and outbound sockets: bus_out.c. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>
#include "skein/sk_mem.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_metrics.h"
#include "skein/sk_sys.h"
#include "bus_int.h"

SK_LOG_MODULE("bus");

#define RX_BATCH 256          /* messages per readable event, so timers still run */
#define DROP_LOG_INTERVAL_MS 10000
#define ENVELOPE_VERSION 1

struct sk_bus_pending {
	struct sk_bus *b;
	uint64_t id;
	char *role;
	char *node;       /* member id of the current attempt */
	char *prefer;     /* member id tried first (sk_bus_request_at), or NULL */
	uint8_t *packed;
	size_t len;
	unsigned flags;
	int attempts;
	uint64_t started;  /* loop ms */
	uint64_t deadline; /* loop ms */
	bool done;
	sk_bus_reply_cb *cb;
	void *arg;
	uv_timer_t timer; /* the pending is freed in the timer's close callback */
	struct sk_bus_pending *hnext;
};

struct sk_bus_req {
	struct sk_bus *b;
	uint64_t id;
	char *origin_addr;
	char *origin_node;
	uint64_t deadline; /* unix ms, 0 = none */
	uint8_t trace[16];
	size_t trace_len;
	bool replied;
};

static uint64_t rng_next(struct sk_bus *b)
{
	/* xorshift64*: trace ids need to be unique, not secret. */
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 0x2545F4914F6CDD1DULL;
}

void sk_bus_count_drop(struct sk_bus *b, const char *reason, struct sk_counter *c,
		       uint64_t *stat)
{
	uint64_t now = uv_now(b->loop);

	(*stat)++;
	if (c)
		sk_counter_inc(c);
	b->drop_logged_count++;
	/* One line per interval, so garbage cannot flood the log. */
	if (!b->drop_logged_at || now - b->drop_logged_at >= DROP_LOG_INTERVAL_MS) {
		SK_WARN("dropped %llu bus envelope(s) since the last report; latest: %s",
			(unsigned long long)b->drop_logged_count, reason);
		b->drop_logged_at = now;
		b->drop_logged_count = 0;
	}
}

/* ---- pending requests: a hash table by msg_id ---- */

static int ptab_grow(struct sk_bus *b)
{
	size_t n = b->ptab ? (b->pmask + 1) * 2 : 1024;
	struct sk_bus_pending **t = calloc(n, sizeof(*t));

	if (!t)
		return SK_ENOMEM;
	for (size_t i = 0; b->ptab && i <= b->pmask; i++) {
		struct sk_bus_pending *p = b->ptab[i], *next;

		for (; p; p = next) {
			next = p->hnext;
			p->hnext = t[p->id & (n - 1)];
			t[p->id & (n - 1)] = p;
		}
	}
	free(b->ptab);
	b->ptab = t;
	b->pmask = n - 1;
	return 0;
}

static struct sk_bus_pending *ptab_find(struct sk_bus *b, uint64_t id)
{
	struct sk_bus_pending *p;

	if (!b->ptab)
		return NULL;
	for (p = b->ptab[id & b->pmask]; p; p = p->hnext)
		if (p->id == id)
			return p;
	return NULL;
}

static void ptab_remove(struct sk_bus *b, struct sk_bus_pending *p)
{
	struct sk_bus_pending **pp = &b->ptab[p->id & b->pmask];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == p) {
			*pp = p->hnext;
			b->npending--;
			return;
		}
}

static void pending_close_cb(uv_handle_t *h)
{
	struct sk_bus_pending *p = h->data;

	free(p->packed);
	sk_deref(p->role);
	sk_deref(p->node);
	sk_deref(p->prefer);
	sk_deref(p->b);
	free(p);
}

/* Finish a request once: remove it, stop its timer, call back. */
static void pending_finish(struct sk_bus_pending *p, int err,
			   const Skein__Bus__V1__Envelope *env)
{
	struct sk_bus *b = p->b;

	if (p->done)
		return;
	p->done = true;
	ptab_remove(b, p);
	uv_close((uv_handle_t *)&p->timer, pending_close_cb);
	if (err == SK_ETIMEDOUT) {
		b->st.timeouts++;
		if (b->m.timeouts)
			sk_counter_inc(b->m.timeouts);
	} else if (err == SK_ENONODE) {
		if (b->m.nonode)
			sk_counter_inc(b->m.nonode);
	} else if (err && b->m.remote_err) {
		sk_counter_inc(b->m.remote_err);
	}
	if (b->m.duration)
		sk_histogram_observe(b->m.duration,
				     (double)(uv_now(b->loop) - p->started) / 1000.0);
	p->cb(err, env, p->arg);
}

/* Send the request to a node of its role other than `exclude`. Returns 0 when sent
 * or queued, SK_ENONODE when there is no other node to try. Only a node that took
 * the request counts as an attempt: failing over from one whose send failed is not
 * the request's one retry. */
static int pending_send(struct sk_bus_pending *p, const char *exclude)
{
	struct sk_bus *b = p->b;
	const char *tried[5]; /* exclude, then each node whose send failed */
	size_t n = 0;

	if (exclude)
		tried[n++] = exclude;
	/* The preferred member first, draining or not (it holds the flow the request is
	 * about); when its send fails or it is gone, any node of the role. */
	if (p->prefer && !p->attempts && (!exclude || strcmp(exclude, p->prefer))) {
		struct sk_bus_peer *peer = sk_bus_peer_find(b, p->prefer);

		if (peer && !strcmp(peer->role, p->role) && peer->out &&
		    sk_bus_out_send(peer->out, p->packed, p->len, p->deadline, true) >= 0) {
			sk_deref(p->node);
			p->node = sk_strdup(peer->id);
			p->attempts++;
			return 0;
		}
		if (n < 5)
			tried[n++] = p->prefer;
	}
	for (int tries = 0; tries < 4; tries++) {
		struct sk_bus_peer *peer = sk_bus_peer_pick(b, p->role, tried, n);
		int r;

		if (!peer)
			return SK_ENONODE;
		tried[n] = peer->id;
		/* A failed send to one node moves on to one not tried yet; only when
		 * the node is the last one left is the message queued for it. */
		r = sk_bus_out_send(peer->out, p->packed, p->len, p->deadline,
				    tries == 3 || !sk_bus_peer_other(b, p->role, tried, n + 1));
		if (r >= 0) {
			sk_deref(p->node);
			p->node = sk_strdup(peer->id);
			p->attempts++;
			return 0;
		}
		n++;
	}
	return SK_ENONODE;
}

static void pending_timeout(uv_timer_t *t)
{
	struct sk_bus_pending *p = t->data;
	uint64_t now = uv_now(p->b->loop);

	if (now < p->deadline) {
		/* Idempotent request at half its deadline: ask another node too (unless
		 * it was retried already); it still ends at its deadline. */
		char *prev = sk_ref(p->node);

		if (p->attempts < 2 && pending_send(p, prev) == 0) {
			p->b->st.retries++;
			if (p->b->m.retries)
				sk_counter_inc(p->b->m.retries);
		}
		sk_deref(prev);
		uv_timer_start(&p->timer, pending_timeout, p->deadline - now, 0);
		return;
	}
	pending_finish(p, SK_ETIMEDOUT, NULL);
}

/* A node left the table: what waits on it is retried on another node, once. */
void sk_bus_node_lost(struct sk_bus *b, const char *id)
{
	struct sk_bus_pending **lost;
	size_t n = 0;

	/* Collect first: a callback may send requests and grow the table under us. */
	lost = malloc((b->npending ? b->npending : 1) * sizeof(*lost));
	if (!lost)
		return; /* they end at their deadline */
	for (size_t i = 0; b->ptab && i <= b->pmask; i++)
		for (struct sk_bus_pending *p = b->ptab[i]; p; p = p->hnext)
			if (p->node && !strcmp(p->node, id))
				lost[n++] = p;
	for (size_t i = 0; i < n; i++) {
		struct sk_bus_pending *p = lost[i]; /* freed only on the next loop turn */

		if (p->done)
			continue;
		if (p->attempts < 2 && pending_send(p, id) == 0) {
			b->st.retries++;
			if (b->m.retries)
				sk_counter_inc(b->m.retries);
			continue;
		}
		/* Retried once already, or no other node: it will not be answered. */
		pending_finish(p, p->attempts < 2 ? SK_ENONODE : SK_ETIMEDOUT, NULL);
	}
	free(lost);
}

/* ---- sending ---- */

static void fill_header(struct sk_bus *b, Skein__Bus__V1__Envelope *env,
			Skein__Bus__V1__Kind kind, uint64_t deadline_ms)
{
	env->version = ENVELOPE_VERSION;
	env->msg_id = b->next_id++;
	env->origin_node = b->id;
	env->origin_addr = b->listen;
	env->kind = kind;
	env->deadline_ms = deadline_ms ? sk_sys_unix_ms() + deadline_ms : 0;
	if (!env->trace_id.len) {
		if (b->cur_trace.len) {
			env->trace_id = b->cur_trace;
		} else {
			uint64_t r[2] = {rng_next(b), rng_next(b)};

			memcpy(b->cur_trace_buf, r, sizeof(r));
			env->trace_id.data = b->cur_trace_buf;
			env->trace_id.len = sizeof(r);
		}
	}
}

static uint8_t *pack(const Skein__Bus__V1__Envelope *env, size_t *len)
{
	size_t n = skein__bus__v1__envelope__get_packed_size(env);
	uint8_t *buf = malloc(n ? n : 1);

	if (buf)
		*len = skein__bus__v1__envelope__pack(env, buf);
	return buf;
}

int sk_bus_request(struct sk_bus *b, const char *role, Skein__Bus__V1__Envelope *env,
		   uint64_t deadline_ms, unsigned flags, sk_bus_reply_cb *cb, void *arg)
{
	return sk_bus_request_at(b, role, NULL, env, deadline_ms, flags, cb, arg);
}

int sk_bus_request_at(struct sk_bus *b, const char *role, const char *prefer,
		      Skein__Bus__V1__Envelope *env, uint64_t deadline_ms, unsigned flags,
		      sk_bus_reply_cb *cb, void *arg)
{
	struct sk_bus_pending *p;
	int err;

	if (!b || !role || !env || !cb)
		return SK_EINVAL;
	if (b->closing)
		return SK_ECANCELED;
	if (!deadline_ms)
		deadline_ms = b->deadline_ms;
	if (b->npending >= b->pmask + 1 && (err = ptab_grow(b)))
		return err;
	p = calloc(1, sizeof(*p));
	if (!p)
		return SK_ENOMEM;
	fill_header(b, env, SKEIN__BUS__V1__KIND__KIND_REQUEST, deadline_ms);
	p->b = b;
	p->id = env->msg_id;
	p->role = sk_strdup(role);
	p->prefer = prefer && *prefer ? sk_strdup(prefer) : NULL;
	p->packed = pack(env, &p->len);
	p->flags = flags;
	p->cb = cb;
	p->arg = arg;
	p->started = uv_now(b->loop);
	p->deadline = p->started + deadline_ms;
	if (!p->role || !p->packed || (prefer && *prefer && !p->prefer)) {
		sk_deref(p->role);
		sk_deref(p->prefer);
		free(p->packed);
		free(p);
		return SK_ENOMEM;
	}
	err = pending_send(p, NULL);
	if (err) {
		if (b->m.nonode)
			sk_counter_inc(b->m.nonode);
		sk_deref(p->role);
		sk_deref(p->prefer);
		sk_deref(p->node);
		free(p->packed);
		free(p);
		return err;
	}
	p->b = sk_ref(b);
	uv_timer_init(b->loop, &p->timer);
	p->timer.data = p;
	uv_timer_start(&p->timer, pending_timeout,
		       flags & SK_BUS_IDEMPOTENT ? deadline_ms / 2 : deadline_ms, 0);
	p->hnext = b->ptab[p->id & b->pmask];
	b->ptab[p->id & b->pmask] = p;
	b->npending++;
	b->st.requests++;
	if (b->m.requests)
		sk_counter_inc(b->m.requests);
	return 0;
}

static int send_to_addr(struct sk_bus *b, const char *addr, Skein__Bus__V1__Envelope *env,
			uint64_t expire)
{
	struct sk_bus_out *o = sk_bus_out_get(b, addr);
	uint8_t *buf;
	size_t len;
	int r;

	if (!o)
		return SK_EINVAL;
	buf = pack(env, &len);
	if (!buf)
		return SK_ENOMEM;
	r = sk_bus_out_send(o, buf, len, expire, true);
	free(buf);
	return r < 0 ? r : 0;
}

int sk_bus_send(struct sk_bus *b, const char *id, Skein__Bus__V1__Envelope *env)
{
	struct sk_bus_peer *p = sk_bus_peer_find(b, id);

	if (!p)
		return SK_ENONODE;
	fill_header(b, env, SKEIN__BUS__V1__KIND__KIND_DIRECT, b->deadline_ms);
	return send_to_addr(b, p->out->addr, env, uv_now(b->loop) + b->deadline_ms);
}

int sk_bus_publish(struct sk_bus *b, const char *topic, Skein__Bus__V1__Envelope *env)
{
	uint8_t *buf;
	size_t len;
	int err = 0;

	fill_header(b, env, SKEIN__BUS__V1__KIND__KIND_EVENT, b->deadline_ms);
	env->topic = (char *)topic;
	buf = pack(env, &len);
	if (!buf)
		return SK_ENOMEM;
	for (struct sk_bus_peer *p = b->peers; p; p = p->next) {
		bool sub = false;

		for (size_t i = 0; i < p->ntopics && !sub; i++)
			sub = !strcmp(p->topics[i], topic);
		if (sub) {
			int r = sk_bus_out_send(p->out, buf, len,
						uv_now(b->loop) + b->deadline_ms, true);
			if (r < 0)
				err = r;
		}
	}
	free(buf);
	return err;
}

/* ---- serving requests ---- */

static void req_destroy(void *data)
{
	struct sk_bus_req *r = data;

	if (!r->replied)
		sk_bus_reply(r, SK_EREMOTE, NULL);
	r->b->serving--;
	sk_deref(r->origin_addr);
	sk_deref(r->origin_node);
	sk_deref(r->b);
}

int sk_bus_reply(struct sk_bus_req *r, int status, Skein__Bus__V1__Envelope *env)
{
	Skein__Bus__V1__Envelope bare = SKEIN__BUS__V1__ENVELOPE__INIT;
	struct sk_bus *b = r->b;

	if (r->replied)
		return SK_EEXIST;
	r->replied = true;
	if (b->closing || !r->origin_addr || !*r->origin_addr)
		return SK_ECANCELED;
	if (!env)
		env = &bare;
	env->trace_id.data = r->trace;
	env->trace_id.len = r->trace_len;
	fill_header(b, env, SKEIN__BUS__V1__KIND__KIND_REPLY, 0);
	env->deadline_ms = r->deadline;
	env->in_reply_to = r->id;
	env->status = status;
	b->st.replies++;
	return send_to_addr(b, r->origin_addr, env, uv_now(b->loop) + b->deadline_ms);
}

const char *sk_bus_req_origin(const struct sk_bus_req *r)
{
	return r->origin_node;
}

static struct sk_bus_handler *handler_find(struct sk_bus *b, int body, bool req,
					   const char *topic)
{
	for (struct sk_bus_handler *h = b->handlers; h; h = h->next) {
		if (topic) {
			if (h->topic && !strcmp(h->topic, topic))
				return h;
		} else if (!h->topic && h->body == body && (req ? !!h->req_cb : !!h->msg_cb)) {
			return h;
		}
	}
	return NULL;
}

static void serve_request(struct sk_bus *b, Skein__Bus__V1__Envelope *env)
{
	struct sk_bus_handler *h = handler_find(b, env->body_case, true, NULL);
	struct sk_bus_req *r;

	if (env->deadline_ms && env->deadline_ms < sk_sys_unix_ms()) {
		sk_bus_count_drop(b, "request past its deadline", b->m.late, &b->st.dropped_late);
		return;
	}
	SK_DEBUG("request %llu from %s", (unsigned long long)env->msg_id, env->origin_node);
	r = sk_zalloc(sizeof(*r), req_destroy);
	if (!r)
		return;
	r->b = sk_ref(b);
	b->serving++;
	r->id = env->msg_id;
	r->origin_addr = sk_strdup(env->origin_addr);
	r->origin_node = sk_strdup(env->origin_node);
	r->deadline = env->deadline_ms;
	r->trace_len = env->trace_id.len > 16 ? 16 : env->trace_id.len;
	if (r->trace_len) /* a foreign sender may leave it out: data is NULL then */
		memcpy(r->trace, env->trace_id.data, r->trace_len);
	if (!h) {
		/* The caller gets a clear answer instead of waiting for its deadline. */
		sk_bus_count_drop(b, "request with an unknown body", b->m.unknown,
				  &b->st.dropped_unknown);
		sk_bus_reply(r, SK_EUNKNOWN, NULL);
	} else {
		h->req_cb(r, env, h->arg);
	}
	sk_deref(r);
}

static void dispatch(struct sk_bus *b, Skein__Bus__V1__Envelope *env)
{
	struct sk_bus_handler *h;
	char trace_hex[33];

	/* A table, not snprintf("%02x") per byte: this runs for every bus message. */
	static const char hexd[] = "0123456789abcdef";

	for (size_t i = 0; i < env->trace_id.len && i < 16; i++) {
		trace_hex[2 * i] = hexd[env->trace_id.data[i] >> 4];
		trace_hex[2 * i + 1] = hexd[env->trace_id.data[i] & 15];
	}
	trace_hex[2 * (env->trace_id.len < 16 ? env->trace_id.len : 16)] = '\0';
	if (trace_hex[0])
		sk_log_ctx_set("trace", trace_hex);
	b->cur_trace = env->trace_id;

	switch (env->kind) {
	case SKEIN__BUS__V1__KIND__KIND_REPLY: {
		struct sk_bus_pending *p = ptab_find(b, env->in_reply_to);

		if (!p) {
			/* Answered already (retry raced) or timed out. */
			b->st.dropped_late++;
			if (b->m.late)
				sk_counter_inc(b->m.late);
			break;
		}
		pending_finish(p, env->status, env);
		break;
	}
	case SKEIN__BUS__V1__KIND__KIND_REQUEST:
		serve_request(b, env);
		break;
	case SKEIN__BUS__V1__KIND__KIND_DIRECT:
	case SKEIN__BUS__V1__KIND__KIND_EVENT:
		h = handler_find(b, env->body_case, false,
				 env->kind == SKEIN__BUS__V1__KIND__KIND_EVENT ? env->topic : NULL);
		if (h)
			h->msg_cb(env, h->arg);
		else
			sk_bus_count_drop(b, "message nobody handles", b->m.unknown,
					  &b->st.dropped_unknown);
		break;
	default:
		sk_bus_count_drop(b, "unknown envelope kind", b->m.unknown,
				  &b->st.dropped_unknown);
	}
	b->cur_trace.len = 0;
	b->cur_trace.data = NULL;
	sk_log_ctx_set(NULL, NULL);
}

Skein__Bus__V1__Envelope *sk_bus_decode(const uint8_t *data, size_t len)
{
	Skein__Bus__V1__Envelope *env = skein__bus__v1__envelope__unpack(NULL, len, data);

	if (!env)
		return NULL;
	/* Fields we rely on: a version, an id and where to answer for requests. */
	if (env->version == 0 || (env->kind == SKEIN__BUS__V1__KIND__KIND_REQUEST &&
				  (!env->origin_addr || !*env->origin_addr))) {
		skein__bus__v1__envelope__free_unpacked(env, NULL);
		return NULL;
	}
	return env;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	struct sk_bus *b = h->data;

	(void)status;
	(void)events;
	sk_ref(b); /* a handler may close the bus */
	for (int i = 0; i < RX_BATCH && !b->closing; i++) {
		Skein__Bus__V1__Envelope *env;
		void *buf;
		int n = nn_recv(b->sock, &buf, NN_MSG, NN_DONTWAIT);

		if (n < 0)
			break;
		b->st.rx++;
		if (b->m.rx)
			sk_counter_inc(b->m.rx);
		env = sk_bus_decode(buf, (size_t)n);
		nn_freemsg(buf);
		if (!env) {
			sk_bus_count_drop(b, "malformed envelope", b->m.malformed,
					  &b->st.dropped_malformed);
			continue;
		}
		dispatch(b, env);
		skein__bus__v1__envelope__free_unpacked(env, NULL);
	}
	sk_deref(b);
}

/* ---- set-up and tear-down ---- */

static void handle_close_free(uv_handle_t *h)
{
	struct sk_bus *b = h->data;

	free(h);
	sk_deref(b);
}

static void bus_destroy(void *data)
{
	struct sk_bus *b = data;

	while (b->handlers) {
		struct sk_bus_handler *h = b->handlers;

		b->handlers = h->next;
		sk_deref(h->topic);
		free(h);
	}
	sk_bus_peers_free(b);
	sk_bus_outs_close(b);
	if (b->sock >= 0)
		nn_close(b->sock);
	free(b->ptab);
	sk_deref(b->id);
	sk_deref(b->role);
	sk_deref(b->dc);
	sk_deref(b->listen);
}

static void metrics_init(struct sk_bus *b, struct sk_metrics *m, const char *pfx)
{
	static const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
					0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
	char n[128], f[128];

	if (!m)
		return;
#define NAME(s) (snprintf(n, sizeof(n), "%s_%s", pfx, s), n)
	b->m.rx = sk_metrics_counter(m, NAME("bus_received_total"), "Envelopes received", NULL, NULL);
	b->m.tx = sk_metrics_counter(m, NAME("bus_sent_total"), "Envelopes sent", NULL, NULL);
	b->m.requests = sk_metrics_counter(m, NAME("bus_requests_total"),
					   "Requests sent to a role", NULL, NULL);
	b->m.retries = sk_metrics_counter(m, NAME("bus_retries_total"),
					  "Requests retried on another node", NULL, NULL);
	snprintf(f, sizeof(f), "%s", NAME("bus_request_failures_total"));
	b->m.timeouts = sk_metrics_counter(m, f, "Requests that failed, by reason", "reason", "timeout");
	b->m.nonode = sk_metrics_counter(m, f, "Requests that failed, by reason", "reason", "no_node");
	b->m.remote_err = sk_metrics_counter(m, f, "Requests that failed, by reason", "reason", "remote");
	snprintf(f, sizeof(f), "%s", NAME("bus_dropped_total"));
	b->m.malformed = sk_metrics_counter(m, f, "Envelopes dropped, by reason", "reason", "malformed");
	b->m.unknown = sk_metrics_counter(m, f, "Envelopes dropped, by reason", "reason", "unknown");
	b->m.late = sk_metrics_counter(m, f, "Envelopes dropped, by reason", "reason", "late");
	b->m.send_fail = sk_metrics_counter(m, NAME("bus_send_failures_total"),
					    "Sends refused because no connection was up", NULL, NULL);
	b->m.duration = sk_metrics_histogram(m, NAME("bus_request_duration_seconds"),
					     "Time from request to reply or failure", bounds,
					     sizeof(bounds) / sizeof(bounds[0]));
#undef NAME
}

int sk_bus_alloc(struct sk_bus **bp, uv_loop_t *loop, const struct sk_bus_opts *o)
{
	struct sk_bus *b;
	int fd, err = 0, linger = 0, rcvbuf = 4 * 1024 * 1024;
	size_t sz = sizeof(fd);

	if (!bp || !loop || !o || !o->id || !o->role || !o->listen)
		return SK_EINVAL;
	b = sk_zalloc(sizeof(*b), bus_destroy);
	if (!b)
		return SK_ENOMEM;
	b->sock = -1;
	b->loop = loop;
	b->id = sk_strdup(o->id);
	b->role = sk_strdup(o->role);
	b->dc = sk_strdup(o->datacenter ? o->datacenter : "");
	b->listen = sk_strdup(o->listen);
	b->deadline_ms = o->deadline_ms ? o->deadline_ms : 2000;
	if (!b->id || !b->role || !b->dc || !b->listen || ptab_grow(b)) {
		err = SK_ENOMEM;
		goto out;
	}
	if (getrandom(&b->rng, sizeof(b->rng), 0) != sizeof(b->rng) || !b->rng)
		b->rng = (uint64_t)sk_sys_unix_ms() ^ 0x9E3779B97F4A7C15ULL;
	b->next_id = rng_next(b) >> 16; /* ids of a restarted node do not repeat */

	b->sock = nn_socket(AF_SP, NN_PULL);
	if (b->sock < 0) {
		err = -nn_errno();
		goto out;
	}
	nn_setsockopt(b->sock, NN_SOL_SOCKET, NN_LINGER, &linger, sizeof(linger));
	nn_setsockopt(b->sock, NN_SOL_SOCKET, NN_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (nn_bind(b->sock, o->listen) < 0) {
		err = -nn_errno();
		SK_ERROR("cannot bind bus address %s: %s", o->listen, nn_strerror(nn_errno()));
		goto out;
	}
	if (nn_getsockopt(b->sock, NN_SOL_SOCKET, NN_RCVFD, &fd, &sz) < 0) {
		err = -nn_errno();
		goto out;
	}
	b->rpoll = malloc(sizeof(*b->rpoll));
	if (!b->rpoll || sk_bus_gc_start(b)) {
		err = SK_ENOMEM;
		goto out;
	}
	uv_poll_init(loop, b->rpoll, fd);
	b->rpoll->data = b;
	uv_poll_start(b->rpoll, UV_READABLE, on_readable);
	metrics_init(b, o->metrics, o->metrics_prefix ? o->metrics_prefix : "skein");
out:
	if (err) {
		free(b->rpoll);
		b->rpoll = NULL;
		if (b->gc) {
			b->gc->data = sk_ref(b);
			uv_close((uv_handle_t *)b->gc, handle_close_free);
			b->gc = NULL;
		}
		sk_deref(b);
		return err;
	}
	/* Each handle holds a reference; it is dropped in its close callback. */
	sk_ref(b);
	sk_ref(b);
	*bp = b;
	return 0;
}

void sk_bus_close(struct sk_bus *b)
{
	if (!b || b->closing)
		return;
	b->closing = true;
	sk_ref(b);
	for (size_t i = 0; b->ptab && i <= b->pmask; i++)
		while (b->ptab[i])
			pending_finish(b->ptab[i], SK_ECANCELED, NULL);
	if (b->rpoll) {
		uv_close((uv_handle_t *)b->rpoll, handle_close_free);
		b->rpoll = NULL;
	}
	if (b->gc) {
		uv_close((uv_handle_t *)b->gc, handle_close_free);
		b->gc = NULL;
	}
	sk_bus_peers_free(b);
	sk_bus_outs_close(b);
	if (b->sock >= 0) {
		nn_close(b->sock);
		b->sock = -1;
	}
	sk_deref(b);
}

static int handler_add(struct sk_bus *b, int body, sk_bus_request_cb *rcb, sk_bus_msg_cb *mcb,
		       const char *topic, void *arg)
{
	struct sk_bus_handler *h;

	if (!b || (!rcb && !mcb))
		return SK_EINVAL;
	if ((topic && handler_find(b, 0, false, topic)) ||
	    (!topic && handler_find(b, body, !!rcb, NULL)))
		return SK_EEXIST;
	h = calloc(1, sizeof(*h));
	if (!h)
		return SK_ENOMEM;
	h->body = body;
	h->req_cb = rcb;
	h->msg_cb = mcb;
	h->arg = arg;
	if (topic && !(h->topic = sk_strdup(topic))) {
		free(h);
		return SK_ENOMEM;
	}
	h->next = b->handlers;
	b->handlers = h;
	return 0;
}

int sk_bus_on_request(struct sk_bus *b, Skein__Bus__V1__Envelope__BodyCase body,
		      sk_bus_request_cb *cb, void *arg)
{
	return handler_add(b, body, cb, NULL, NULL, arg);
}

int sk_bus_on_direct(struct sk_bus *b, Skein__Bus__V1__Envelope__BodyCase body,
		     sk_bus_msg_cb *cb, void *arg)
{
	return handler_add(b, body, NULL, cb, NULL, arg);
}

int sk_bus_subscribe(struct sk_bus *b, const char *topic, sk_bus_msg_cb *cb, void *arg)
{
	return handler_add(b, 0, NULL, cb, topic, arg);
}

int sk_bus_unsubscribe(struct sk_bus *b, const char *topic, void *arg)
{
	for (struct sk_bus_handler **hp = &b->handlers; *hp; hp = &(*hp)->next) {
		struct sk_bus_handler *h = *hp;

		if (h->topic && !strcmp(h->topic, topic) && h->arg == arg) {
			*hp = h->next;
			sk_deref(h->topic);
			free(h);
			return 0;
		}
	}
	return SK_ENOENT;
}

const char *sk_bus_id(const struct sk_bus *b)
{
	return b->id;
}

const char *sk_bus_addr(const struct sk_bus *b)
{
	return b->listen;
}

size_t sk_bus_serving(const struct sk_bus *b)
{
	return b->serving;
}

size_t sk_bus_pending(const struct sk_bus *b)
{
	return b->npending;
}

void sk_bus_stats(const struct sk_bus *b, struct sk_bus_stats *st)
{
	*st = b->st;
}
