/* Cluster membership: heartbeat script, live table, bus join/leave events. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <hiredis/hiredis.h>
#include "skein/sk_node.h"
#include "skein/sk_redis.h"
#include "skein/sk_bus.h"
#include "skein/sk_mem.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_metrics.h"
#include "skein/cluster/v1/node.pb-c.h"
#include "skein/sk_sys.h"
#include "node_int.h"

SK_LOG_MODULE("node");

#define TOPIC "node"

/* KEYS: info hash, seen zset. ARGV: id ("" to observe), packed info, timeout ms.
 * Returns {now_ms, info1, seen1, info2, seen2, ...}. Time comes from Redis so that
 * clocks of the nodes do not matter. */
static const char heartbeat_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"if ARGV[1] ~= '' then\n"
	"  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
	"  redis.call('ZADD', KEYS[2], now, ARGV[1])\n"
	"end\n"
	"local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[3]))\n"
	"for _, id in ipairs(stale) do\n"
	"  redis.call('HDEL', KEYS[1], id)\n"
	"  redis.call('ZREM', KEYS[2], id)\n"
	"end\n"
	"local out = {tostring(now)}\n"
	"local all = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')\n"
	"for i = 1, #all, 2 do\n"
	"  out[#out + 1] = redis.call('HGET', KEYS[1], all[i]) or ''\n"
	"  out[#out + 1] = all[i + 1]\n"
	"end\n"
	"return out\n";

static const char leave_lua[] =
	"redis.call('HDEL', KEYS[1], ARGV[1])\n"
	"return redis.call('ZREM', KEYS[2], ARGV[1])\n";

struct sk_node {
	uv_loop_t *loop;
	struct sk_redis *redis;
	struct sk_bus *bus;
	struct sk_redis_script *hb, *leave;
	char key_info[256], key_seen[256];
	uint64_t heartbeat, timeout;
	bool observe, synced, announced, closing, busy, left;
	Skein__Cluster__V1__NodeInfo self;
	uv_timer_t *timer;
	struct sk_node_info *tab;
	uint64_t *heard; /* per entry: loop time of the last bus event about it */
	size_t ntab;
	uint64_t hb_sent; /* loop time the heartbeat in flight was sent */
	bool hb_failed;
	uint64_t reconnects;  /* the redis client's, at the last heartbeat */
	uint64_t grace_until; /* loop time: after an outage, drop no one before */
	sk_node_change_cb *cb;
	void *arg;
	void (*leave_done)(void *);
	void *leave_arg;
	struct sk_gauge *g_members;
	struct sk_counter *c_hb_fail;
};

void sk_node_info_clear(struct sk_node_info *i)
{
	sk_deref(i->id);
	sk_deref(i->node);
	sk_deref(i->role);
	sk_deref(i->dc);
	sk_deref(i->bus_addr);
	sk_deref(i->http_addr);
	sk_deref(i->version);
	memset(i, 0, sizeof(*i));
}

int sk_node_info_from_pb(struct sk_node_info *i, const Skein__Cluster__V1__NodeInfo *pb)
{
	memset(i, 0, sizeof(*i));
	i->id = sk_strdup(pb->id);
	i->node = sk_strdup(pb->node);
	i->role = sk_strdup(pb->role);
	i->dc = sk_strdup(pb->datacenter);
	i->bus_addr = sk_strdup(pb->bus_addr);
	i->http_addr = sk_strdup(pb->http_addr);
	i->version = sk_strdup(pb->version);
	i->draining = pb->draining;
	i->load = pb->load;
	i->pid = pb->pid;
	i->started_ms = pb->started_ms;
	if (!i->id || !i->node || !i->role || !i->dc || !i->bus_addr || !i->http_addr ||
	    !i->version) {
		sk_node_info_clear(i);
		return SK_ENOMEM;
	}
	return 0;
}

static struct sk_node_info *tab_find(struct sk_node *n, const char *id)
{
	for (size_t i = 0; i < n->ntab; i++)
		if (!strcmp(n->tab[i].id, id))
			return &n->tab[i];
	return NULL;
}

static void feed_bus(struct sk_node *n, const struct sk_node_info *i)
{
	static const char *const topics[] = {TOPIC};

	if (n->bus && *i->bus_addr)
		sk_bus_peer_set(n->bus, i->id, i->role, i->dc, i->bus_addr, i->draining, topics, 1);
}

/* Add or update one member; returns true when it is new. */
static bool tab_upsert(struct sk_node *n, const Skein__Cluster__V1__NodeInfo *pb,
		       uint64_t seen)
{
	struct sk_node_info *cur = tab_find(n, pb->id), fresh, *t;
	uint64_t *h;

	if (sk_node_info_from_pb(&fresh, pb))
		return false;
	/* A bus event (seen 0) carries no Redis time: keep the last heartbeat's. */
	fresh.seen_ms = seen || !cur ? seen : cur->seen_ms;
	if (cur) {
		bool changed = strcmp(cur->bus_addr, fresh.bus_addr) ||
			       cur->draining != fresh.draining;

		sk_node_info_clear(cur);
		*cur = fresh;
		if (changed)
			feed_bus(n, cur);
		return false;
	}
	t = realloc(n->tab, (n->ntab + 1) * sizeof(*t));
	if (!t) {
		sk_node_info_clear(&fresh);
		return false;
	}
	n->tab = t;
	h = realloc(n->heard, (n->ntab + 1) * sizeof(*h));
	if (!h) {
		sk_node_info_clear(&fresh);
		return false;
	}
	n->heard = h;
	n->heard[n->ntab] = 0;
	n->tab[n->ntab++] = fresh;
	feed_bus(n, &fresh);
	SK_INFO("member %s (%s) joined from %s", fresh.id, fresh.dc, fresh.bus_addr);
	if (n->cb)
		n->cb(&n->tab[n->ntab - 1], true, n->arg);
	return true;
}

static void tab_remove(struct sk_node *n, size_t idx)
{
	struct sk_node_info gone = n->tab[idx];

	n->tab[idx] = n->tab[--n->ntab];
	n->heard[idx] = n->heard[n->ntab];
	SK_INFO("member %s left", gone.id);
	if (n->bus)
		sk_bus_peer_del(n->bus, gone.id);
	if (n->cb)
		n->cb(&gone, false, n->arg);
	sk_node_info_clear(&gone);
}

static void publish(struct sk_node *n, Skein__Cluster__V1__NodeEvent__Type type)
{
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Cluster__V1__NodeEvent ev = SKEIN__CLUSTER__V1__NODE_EVENT__INIT;

	if (!n->bus || n->observe)
		return;
	ev.type = type;
	ev.node = &n->self;
	env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_NODE_EVENT;
	env.node_event = &ev;
	sk_bus_publish(n->bus, TOPIC, &env);
}

/* The reply was read from Redis after the heartbeat was sent; a bus event about a
 * member heard since then may be newer (a JOIN can overtake our own reply: the
 * joiner's heartbeat ran after ours). Such an entry is left as the bus said, not
 * dropped or overwritten; the next heartbeat settles it. */
static bool fresher(const struct sk_node *n, size_t i)
{
	return n->heard[i] && n->heard[i] >= n->hb_sent;
}

static void hb_done(int err, struct redisReply *reply, void *arg)
{
	struct sk_node *n = arg;
	struct sk_redis_stats st;
	bool *seen;

	n->busy = false;
	if (n->closing) {
		sk_deref(n);
		return;
	}
	if (err || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
		n->hb_failed = true;
		if (n->c_hb_fail)
			sk_counter_inc(n->c_hb_fail);
		SK_DEBUG("heartbeat failed: %s", err ? sk_strerror(err) : "bad reply");
		sk_deref(n);
		return;
	}
	seen = calloc(n->ntab + reply->elements, sizeof(*seen));
	if (!seen) {
		sk_deref(n);
		return;
	}
	sk_redis_stats(n->redis, &st);
	if (n->hb_failed || st.reconnects != n->reconnects) {
		/* Back after an outage (or on a new connection: Redis may have restarted
		 * empty between two heartbeats): the others have not heartbeated yet, and
		 * the script just pruned them if the outage outlasted the timeout. Keep
		 * the table for one timeout; whoever is still missing then is gone. */
		n->hb_failed = false;
		n->reconnects = st.reconnects;
		n->grace_until = uv_now(n->loop) + n->timeout;
	}
	for (size_t i = 1; i + 1 < reply->elements; i += 2) {
		redisReply *ri = reply->element[i], *rs = reply->element[i + 1];
		Skein__Cluster__V1__NodeInfo *pb;
		struct sk_node_info *cur;

		if (ri->type != REDIS_REPLY_STRING || rs->type != REDIS_REPLY_STRING)
			continue;
		pb = skein__cluster__v1__node_info__unpack(NULL, ri->len, (uint8_t *)ri->str);
		if (!pb || !pb->id || !*pb->id) {
			if (pb)
				skein__cluster__v1__node_info__free_unpacked(pb, NULL);
			continue;
		}
		cur = tab_find(n, pb->id);
		if (!cur || !fresher(n, (size_t)(cur - n->tab)))
			tab_upsert(n, pb, strtoull(rs->str, NULL, 10));
		cur = tab_find(n, pb->id);
		if (cur)
			seen[cur - n->tab] = true;
		skein__cluster__v1__node_info__free_unpacked(pb, NULL);
	}
	for (size_t i = n->ntab; i-- > 0;)
		if (!seen[i] && !fresher(n, i) && uv_now(n->loop) >= n->grace_until)
			tab_remove(n, i);
	free(seen);
	if (n->g_members)
		sk_gauge_set(n->g_members, (double)n->ntab);
	n->synced = true;
	if (!n->announced && !n->observe) {
		n->announced = true;
		publish(n, SKEIN__CLUSTER__V1__NODE_EVENT__TYPE__TYPE_JOIN);
	}
	sk_deref(n);
}

static void heartbeat(struct sk_node *n)
{
	uint8_t buf[2048];
	size_t len = 0;
	char tmo[24];
	int err;

	if (n->busy || n->left)
		return;
	if (!n->observe) {
		size_t sz = skein__cluster__v1__node_info__get_packed_size(&n->self);

		if (sz > sizeof(buf))
			return;
		len = skein__cluster__v1__node_info__pack(&n->self, buf);
	}
	snprintf(tmo, sizeof(tmo), "%llu", (unsigned long long)n->timeout);
	{
		const char *av[] = {n->key_info, n->key_seen, n->observe ? "" : n->self.id,
				    (const char *)buf, tmo};
		size_t lv[] = {strlen(av[0]), strlen(av[1]), strlen(av[2]), len, strlen(tmo)};

		n->hb_sent = uv_now(n->loop);
		err = sk_redis_eval(n->hb, hb_done, sk_ref(n), 2, 5, av, lv);
	}
	if (err) {
		n->hb_failed = true;
		sk_deref(n);
		if (n->c_hb_fail)
			sk_counter_inc(n->c_hb_fail);
		return;
	}
	n->busy = true;
}

static void tick(uv_timer_t *t)
{
	heartbeat(t->data);
}

static void on_node_event(const Skein__Bus__V1__Envelope *env, void *arg)
{
	struct sk_node *n = arg;
	const Skein__Cluster__V1__NodeEvent *ev = env->node_event;

	if (env->body_case != SKEIN__BUS__V1__ENVELOPE__BODY_NODE_EVENT || !ev || !ev->node ||
	    !ev->node->id || !*ev->node->id)
		return;
	if (n->self.id && !strcmp(ev->node->id, n->self.id))
		return;
	switch (ev->type) {
	case SKEIN__CLUSTER__V1__NODE_EVENT__TYPE__TYPE_JOIN:
	case SKEIN__CLUSTER__V1__NODE_EVENT__TYPE__TYPE_DRAIN: {
		struct sk_node_info *cur;

		tab_upsert(n, ev->node, 0);
		cur = tab_find(n, ev->node->id);
		if (cur)
			n->heard[cur - n->tab] = uv_now(n->loop);
		break;
	}
	case SKEIN__CLUSTER__V1__NODE_EVENT__TYPE__TYPE_LEAVE:
		for (size_t i = 0; i < n->ntab; i++)
			if (!strcmp(n->tab[i].id, ev->node->id)) {
				tab_remove(n, i);
				break;
			}
		break;
	default:
		break;
	}
}

static void timer_close_cb(uv_handle_t *h)
{
	struct sk_node *n = h->data;

	free(h);
	sk_deref(n);
}

static void node_destroy(void *data)
{
	struct sk_node *n = data;

	for (size_t i = 0; i < n->ntab; i++)
		sk_node_info_clear(&n->tab[i]);
	free(n->tab);
	free(n->heard);
	if (n->observe)
		goto out; /* self holds protobuf-c's static empty strings */
	sk_deref(n->self.id);
	sk_deref(n->self.node);
	sk_deref(n->self.role);
	sk_deref(n->self.datacenter);
	sk_deref(n->self.bus_addr);
	sk_deref(n->self.http_addr);
	sk_deref(n->self.version);
out:
	sk_deref(n->redis);
	sk_deref(n->bus);
}

static double members(void *arg)
{
	return (double)((struct sk_node *)arg)->ntab;
}

int sk_node_alloc(struct sk_node **np, uv_loop_t *loop, struct sk_redis *redis,
		  struct sk_bus *bus, const struct sk_node_opts *o, sk_node_change_cb *cb,
		  void *arg)
{
	struct sk_node *n;
	int err;

	if (!np || !loop || !redis || !o || !o->cluster || (!o->observe && (!o->id || !o->role)))
		return SK_EINVAL;
	n = sk_zalloc(sizeof(*n), node_destroy);
	if (!n)
		return SK_ENOMEM;
	n->loop = loop;
	n->redis = sk_ref(redis);
	n->bus = sk_ref(bus);
	n->cb = cb;
	n->arg = arg;
	n->observe = o->observe;
	n->heartbeat = o->heartbeat_ms ? o->heartbeat_ms : 1000;
	n->timeout = o->timeout_ms ? o->timeout_ms : 3000;
	err = sk_redis_key(n->key_info, sizeof(n->key_info), o->cluster, "nodes", "info");
	err = err ? err : sk_redis_key(n->key_seen, sizeof(n->key_seen), o->cluster, "nodes", "seen");
	if (err)
		goto fail;
	skein__cluster__v1__node_info__init(&n->self);
	if (!n->observe) {
		n->self.id = sk_strdup(o->id);
		n->self.node = sk_strdup(o->node ? o->node : "");
		n->self.role = sk_strdup(o->role);
		n->self.datacenter = sk_strdup(o->dc ? o->dc : "");
		n->self.bus_addr = sk_strdup(o->bus_addr ? o->bus_addr : "");
		n->self.http_addr = sk_strdup(o->http_addr ? o->http_addr : "");
		n->self.version = sk_strdup(SKEIN_VERSION);
		n->self.pid = (uint32_t)getpid();
		n->self.started_ms = sk_sys_unix_ms();
		n->self.n_topics = 0;
		if (!n->self.id || !n->self.node || !n->self.role || !n->self.datacenter ||
		    !n->self.bus_addr || !n->self.http_addr || !n->self.version) {
			err = SK_ENOMEM;
			goto fail;
		}
	}
	err = sk_redis_script_add(redis, &n->hb, heartbeat_lua);
	err = err ? err : sk_redis_script_add(redis, &n->leave, leave_lua);
	if (!err && bus)
		err = sk_bus_subscribe(bus, TOPIC, on_node_event, n);
	if (err)
		goto fail;
	if (o->metrics) {
		const char *pfx = o->metrics_prefix ? o->metrics_prefix : "skein";
		char name[128];

		snprintf(name, sizeof(name), "%s_cluster_members", pfx);
		sk_metrics_gauge_fn(o->metrics, name, "Live members in the node table", NULL,
				    NULL, members, n);
		snprintf(name, sizeof(name), "%s_cluster_heartbeat_failures_total", pfx);
		n->c_hb_fail = sk_metrics_counter(o->metrics, name,
						  "Heartbeats that Redis did not take", NULL, NULL);
	}
	n->timer = malloc(sizeof(*n->timer));
	if (!n->timer) {
		err = SK_ENOMEM;
		goto fail;
	}
	uv_timer_init(loop, n->timer);
	n->timer->data = sk_ref(n);
	uv_timer_start(n->timer, tick, 0, n->heartbeat);
	*np = n;
	return 0;
fail:
	if (bus)
		sk_bus_unsubscribe(bus, TOPIC, n); /* SK_ENOENT when never subscribed */
	sk_deref(n);
	return err;
}

void sk_node_set_draining(struct sk_node *n, bool draining)
{
	if (n->self.draining == draining)
		return;
	n->self.draining = draining;
	publish(n, SKEIN__CLUSTER__V1__NODE_EVENT__TYPE__TYPE_DRAIN);
	heartbeat(n);
}

void sk_node_set_load(struct sk_node *n, uint32_t load)
{
	n->self.load = load;
}

static void leave_done(int err, struct redisReply *reply, void *arg)
{
	struct sk_node *n = arg;

	(void)reply;
	if (err)
		SK_WARN("could not remove %s from redis: %s (it expires by itself)",
			n->self.id, sk_strerror(err));
	if (n->leave_done)
		n->leave_done(n->leave_arg);
	sk_deref(n);
}

static void leave_now(uv_timer_t *t)
{
	struct sk_node *n = t->data;

	uv_close((uv_handle_t *)t, timer_close_cb);
	if (n->leave_done)
		n->leave_done(n->leave_arg);
}

int sk_node_leave(struct sk_node *n, void (*done)(void *arg), void *arg)
{
	const char *av[3];
	int err;

	if (n->observe || n->left)
		return SK_EINVAL;
	n->left = true;
	n->leave_done = done;
	n->leave_arg = arg;
	publish(n, SKEIN__CLUSTER__V1__NODE_EVENT__TYPE__TYPE_LEAVE);
	av[0] = n->key_info;
	av[1] = n->key_seen;
	av[2] = n->self.id;
	err = sk_redis_eval(n->leave, leave_done, sk_ref(n), 2, 3, av, NULL);
	if (err) {
		/* Redis is down: the entry expires by itself; report on the next turn. */
		uv_timer_t *t = malloc(sizeof(*t));

		sk_deref(n);
		if (!t)
			return SK_ENOMEM;
		uv_timer_init(n->loop, t);
		t->data = sk_ref(n);
		uv_timer_start(t, leave_now, 0, 0);
	}
	return 0;
}

void sk_node_close(struct sk_node *n)
{
	if (!n || n->closing)
		return;
	n->closing = true;
	if (n->bus)
		sk_bus_unsubscribe(n->bus, TOPIC, n);
	if (n->timer) {
		uv_close((uv_handle_t *)n->timer, timer_close_cb);
		n->timer = NULL;
	}
}

size_t sk_node_count(const struct sk_node *n, const char *role)
{
	size_t c = 0;

	for (size_t i = 0; i < n->ntab; i++)
		if (!role || !strcmp(n->tab[i].role, role))
			c++;
	return c;
}

const struct sk_node_info *sk_node_at(const struct sk_node *n, size_t i)
{
	return i < n->ntab ? &n->tab[i] : NULL;
}

size_t sk_node_size(const struct sk_node *n)
{
	return n->ntab;
}

bool sk_node_synced(const struct sk_node *n)
{
	return n->synced;
}
