/* sk_node against a real redis-server and real buses: members find each other,
 * time out, leave, drain; observers; the table survives a Redis outage. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <hiredis/hiredis.h>
#include <uv.h>
#include "sk_test.h"
#include "skein/sk_bus.h"
#include "skein/sk_err.h"
#include "skein/sk_node.h"
#include "skein/sk_redis.h"
#include "skein/cluster/v1/node.pb-c.h"

#include "sk_test_redis.h"

#define RT(f) cmocka_unit_test_setup_teardown(f, case_setup, leak_check)

/* ---- a loop per case, with bounded waits ---- */

struct t {
	uv_loop_t loop;
	uv_timer_t guard;
	bool expired;
};

#include "sk_test_loop.h"

/* ---- members: a redis client, a bus and a node each ---- */

struct change {
	char id[64];
	bool up;
};

struct member {
	struct t *t;
	struct sk_redis *r;
	struct sk_bus *b;
	struct sk_node *n;
	char id[64], node[32], role[16], dc[16], listen[PATH_MAX + 16], http[32];
	struct change ch[64];
	int nch, left;
};

static void change_cb(const struct sk_node_info *i, bool up, void *arg)
{
	struct member *m = arg;

	assert_non_null(i);
	assert_non_null(i->id);
	if (m->nch < (int)(sizeof(m->ch) / sizeof(m->ch[0]))) {
		snprintf(m->ch[m->nch].id, sizeof(m->ch[m->nch].id), "%s", i->id);
		m->ch[m->nch].up = up;
	}
	m->nch++;
}

static int changes(const struct member *m, const char *id, bool up)
{
	int c = 0;

	for (int i = 0; i < m->nch && i < (int)(sizeof(m->ch) / sizeof(m->ch[0])); i++)
		if (!strcmp(m->ch[i].id, id) && m->ch[i].up == up)
			c++;
	return c;
}

static const struct sk_node_info *tab_get(const struct sk_node *n, const char *id)
{
	for (size_t i = 0; i < sk_node_size(n); i++)
		if (!strcmp(sk_node_at(n, i)->id, id))
			return sk_node_at(n, i);
	return NULL;
}

static const struct sk_node_info *list_get(const struct sk_node_info *l, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(l[i].id, id))
			return &l[i];
	return NULL;
}

/* The member's redis client (its own, as each daemon has). */
static void m_redis_tmo(struct member *m, struct t *t, uint64_t timeout_ms)
{
	struct sk_redis_opts o = {0};

	m->t = t;
	o.addr = srv.addr;
	o.timeout_ms = timeout_ms;
	o.backoff_min_ms = 50;
	o.backoff_max_ms = 200;
	assert_int_equal(sk_redis_alloc(&m->r, &t->loop, &o, NULL, NULL), 0);
}

static void m_redis(struct member *m, struct t *t)
{
	m_redis_tmo(m, t, 500);
}

static void m_node(struct member *m, const char *cluster, const char *node, const char *role,
		   const char *dc, uint64_t hb, uint64_t tmo, bool observe, bool bus)
{
	struct sk_node_opts no = {0};

	snprintf(m->node, sizeof(m->node), "%s", node);
	snprintf(m->role, sizeof(m->role), "%s", role);
	snprintf(m->dc, sizeof(m->dc), "%s", dc);
	snprintf(m->id, sizeof(m->id), "%s/%s", node, role);
	snprintf(m->listen, sizeof(m->listen), "ipc://%s/%s-%s.bus", srv.dir, node, role);
	snprintf(m->http, sizeof(m->http), "127.0.0.1:%d", 8000 + (int)strlen(node));
	if (bus) {
		struct sk_bus_opts bo = {0};

		bo.id = m->id;
		bo.role = role;
		bo.datacenter = dc;
		bo.listen = m->listen;
		bo.deadline_ms = 1000;
		assert_int_equal(sk_bus_alloc(&m->b, &m->t->loop, &bo), 0);
	}
	no.cluster = cluster;
	no.heartbeat_ms = hb;
	no.timeout_ms = tmo;
	no.observe = observe;
	no.id = m->id;
	no.node = node;
	no.role = role;
	no.dc = dc;
	no.bus_addr = bus ? m->listen : NULL;
	no.http_addr = m->http;
	assert_int_equal(sk_node_alloc(&m->n, &m->t->loop, m->r, m->b, &no, change_cb, m), 0);
}

static void m_start(struct member *m, struct t *t, const char *cluster, const char *node,
		    const char *role, const char *dc, uint64_t hb, uint64_t tmo)
{
	m_redis(m, t);
	m_node(m, cluster, node, role, dc, hb, tmo, false, true);
}

/* As a daemon stops: node, bus, redis; then the references go. */
static void m_stop(struct member *m)
{
	sk_node_close(m->n);
	sk_bus_close(m->b);
	sk_redis_close(m->r);
	m->n = sk_deref(m->n);
	m->b = sk_deref(m->b);
	m->r = sk_deref(m->r);
}

static void left_cb(void *arg)
{
	((struct member *)arg)->left++;
}

/* sk_node_list_sync, as skeinctl calls it. */
struct listing {
	struct sk_node_info *l;
	size_t n;
	int err;
};

static void list_free(struct listing *ls)
{
	sk_node_list_free(ls->l, ls->n);
	ls->l = NULL;
	ls->n = 0;
}

static struct listing *list_now(struct listing *ls, const char *cluster, uint64_t tmo)
{
	list_free(ls);
	ls->err = sk_node_list_sync(srv.addr, cluster, tmo, &ls->l, &ls->n);
	return ls;
}

static bool see_each_other(struct member *a, struct member *b)
{
	return sk_node_size(a->n) == 2 && sk_node_size(b->n) == 2 && tab_get(a->n, b->id) &&
	       tab_get(b->n, a->id) && sk_bus_peer_count(a->b, NULL) == 1 &&
	       sk_bus_peer_count(b->b, NULL) == 1;
}

static void check_info(const struct sk_node_info *i, const struct member *m)
{
	assert_non_null(i);
	assert_string_equal(i->id, m->id);
	assert_string_equal(i->node, m->node);
	assert_string_equal(i->role, m->role);
	assert_string_equal(i->dc, m->dc);
	assert_string_equal(i->bus_addr, m->listen);
	assert_string_equal(i->http_addr, m->http);
	assert_true(strlen(i->version) > 0);
	assert_int_equal(i->pid, getpid());
	assert_true(i->started_ms > 1500000000000ULL);
}

/* Heard of by a heartbeat (a bus event carries no Redis time). */
static bool seen_in_redis(const struct sk_node *n, const char *id)
{
	const struct sk_node_info *i = tab_get(n, id);

	return i && i->seen_ms > i->started_ms - 1000;
}

/* ---- cases ---- */

static void test_members_see_each_other(void **state)
{
	struct member a = {0}, b = {0};
	struct listing ls = {0};
	char nobody[64];
	struct t t;

	(void)state;
	t_init(&t);
	m_start(&a, &t, "c1", "c1-a", "alpha", "dc1", 100, 400);
	m_start(&b, &t, "c1", "c1-b", "beta", "dc2", 100, 400);
	assert_false(sk_node_synced(a.n));
	assert_int_equal(sk_node_size(a.n), 0);
	WAIT_UNTIL(&t, see_each_other(&a, &b), 5000);
	assert_true(sk_node_synced(a.n));
	assert_true(sk_node_synced(b.n));
	assert_int_equal(sk_node_count(a.n, NULL), 2);
	assert_int_equal(sk_node_count(a.n, "alpha"), 1);
	assert_int_equal(sk_node_count(a.n, "beta"), 1);
	assert_int_equal(sk_node_count(a.n, "gamma"), 0);
	assert_null(sk_node_at(a.n, 2));
	/* The bus was fed the peer (not itself). */
	assert_int_equal(sk_bus_peer_count(a.b, "beta"), 1);
	assert_int_equal(sk_bus_peer_count(a.b, "alpha"), 0);
	assert_int_equal(sk_bus_peer_count(b.b, "alpha"), 1);
	/* Each heard of the other (and of itself) once, as "up". */
	assert_int_equal(changes(&a, b.id, true), 1);
	assert_int_equal(changes(&b, a.id, true), 1);
	assert_int_equal(changes(&a, a.id, true), 1);
	assert_int_equal(changes(&a, b.id, false), 0);
	check_info(tab_get(a.n, b.id), &b);
	check_info(tab_get(b.n, a.id), &a);
	assert_false(tab_get(a.n, b.id)->draining);
	WAIT_UNTIL(&t, seen_in_redis(a.n, b.id) && seen_in_redis(b.n, a.id), 2000);

	/* The tools' view. */
	assert_int_equal(list_now(&ls, "c1", 400)->err, 0);
	assert_int_equal(ls.n, 2);
	check_info(list_get(ls.l, ls.n, a.id), &a);
	check_info(list_get(ls.l, ls.n, b.id), &b);
	assert_true(list_get(ls.l, ls.n, a.id)->seen_ms > list_get(ls.l, ls.n, a.id)->started_ms);
	assert_true(list_get(ls.l, ls.n, a.id)->age_ms <= 400);
	assert_int_equal(list_now(&ls, "other", 400)->err, 0);
	assert_int_equal(ls.n, 0);
	list_free(&ls);
	snprintf(nobody, sizeof(nobody), "127.0.0.1:%d", free_port());
	assert_int_equal(sk_node_list_sync(nobody, "c1", 400, &ls.l, &ls.n), SK_ECONNREFUSED);
	assert_null(ls.l);
	assert_int_equal(sk_node_list_sync("nohost", "c1", 400, &ls.l, &ls.n), SK_EINVAL);
	list_free(&ls);

	m_stop(&a);
	m_stop(&b);
	t_done(&t);
}

static void test_silent_member_times_out(void **state)
{
	struct member a = {0}, b = {0};
	struct listing ls = {0};
	uint64_t t0, gone;
	struct t t;

	(void)state;
	t_init(&t);
	m_start(&a, &t, "c2", "c2-a", "alpha", "dc1", 100, 400);
	m_start(&b, &t, "c2", "c2-b", "alpha", "dc1", 100, 400);
	WAIT_UNTIL(&t, see_each_other(&a, &b), 5000);
	/* b stops heartbeating without leaving (killed). */
	m_stop(&b);
	t0 = now_ms();
	WAIT_UNTIL(&t, sk_node_size(a.n) == 1, 3000);
	gone = now_ms() - t0;
	/* Not before timeout_ms after its last heartbeat (at most 100 ms before stop). */
	assert_true(gone >= 250);
	assert_true(gone <= 2000);
	assert_non_null(tab_get(a.n, a.id));
	assert_int_equal(changes(&a, b.id, false), 1);
	assert_int_equal(sk_bus_peer_count(a.b, NULL), 0);
	assert_int_equal(list_now(&ls, "c2", 400)->err, 0);
	assert_int_equal(ls.n, 1);
	assert_string_equal(ls.l[0].id, a.id);
	/* And it stays gone. */
	t_run_for(&t, 400);
	assert_int_equal(sk_node_size(a.n), 1);
	assert_int_equal(changes(&a, b.id, false), 1);
	assert_int_equal(changes(&a, b.id, true), 1);
	list_free(&ls);
	m_stop(&a);
	t_done(&t);
}

/* Two members with a slow heartbeat (5 s): whatever a learns within that time
 * after its first heartbeat, it learns from the bus. */
static uint64_t slow_pair(struct t *t, struct member *a, struct member *b, const char *cluster)
{
	char na[32], nb[32];
	uint64_t t0;

	snprintf(na, sizeof(na), "%s-a", cluster);
	snprintf(nb, sizeof(nb), "%s-b", cluster);
	m_redis(a, t);
	m_redis(b, t);
	WAIT_UNTIL(t, sk_redis_ready(a->r) && sk_redis_ready(b->r), 3000);
	t0 = now_ms();
	m_node(a, cluster, na, "alpha", "dc1", 5000, 15000, false, true);
	WAIT_UNTIL(t, sk_node_synced(a->n), 2000);
	assert_int_equal(sk_node_size(a->n), 1);
	m_node(b, cluster, nb, "alpha", "dc1", 5000, 15000, false, true);
	/* b's first heartbeat lists both; its JOIN tells a. */
	WAIT_UNTIL(t, see_each_other(a, b), 2000);
	assert_true(now_ms() - t0 < 4000);
	return t0;
}

static void test_leave(void **state)
{
	struct member a = {0}, b = {0};
	struct listing ls = {0};
	uint64_t t0;
	struct t t;

	(void)state;
	t_init(&t);
	t0 = slow_pair(&t, &a, &b, "c3");
	assert_int_equal(sk_node_leave(b.n, left_cb, &b), 0);
	assert_int_equal(b.left, 0); /* never from inside the call */
	WAIT_UNTIL(&t, b.left == 1, 2000);
	/* Gone from Redis at once. */
	assert_int_equal(list_now(&ls, "c3", 15000)->err, 0);
	assert_int_equal(ls.n, 1);
	assert_string_equal(ls.l[0].id, a.id);
	/* a heard the LEAVE on the bus, long before its next heartbeat. */
	WAIT_UNTIL(&t, sk_node_size(a.n) == 1, 2000);
	assert_true(now_ms() - t0 < 5000);
	assert_int_equal(changes(&a, b.id, false), 1);
	assert_int_equal(sk_bus_peer_count(a.b, NULL), 0);
	assert_int_equal(sk_node_leave(b.n, left_cb, &b), SK_EINVAL);
	t_run_for(&t, 100);
	assert_int_equal(b.left, 1);
	list_free(&ls);
	m_stop(&b);
	m_stop(&a);
	t_done(&t);
}

static void test_draining(void **state)
{
	struct member a = {0}, b = {0};
	struct listing ls = {0};
	uint64_t t0;
	struct t t;

	(void)state;
	t_init(&t);
	t0 = slow_pair(&t, &a, &b, "c4");
	sk_node_set_load(b.n, 7);
	sk_node_set_draining(b.n, true);
	/* The DRAIN event reaches a before its next heartbeat. */
	WAIT_UNTIL(&t, tab_get(a.n, b.id) && tab_get(a.n, b.id)->draining, 2000);
	assert_true(now_ms() - t0 < 5000);
	assert_int_equal(tab_get(a.n, b.id)->load, 7);
	/* Still a member: no "down". */
	assert_int_equal(sk_node_size(a.n), 2);
	assert_int_equal(changes(&a, b.id, false), 0);
	assert_int_equal(changes(&a, b.id, true), 1);
	/* And b heartbeated it into Redis at once. */
	WAIT_UNTIL(&t,
		   !list_now(&ls, "c4", 15000)->err && list_get(ls.l, ls.n, b.id) &&
		       list_get(ls.l, ls.n, b.id)->draining,
		   2000);
	assert_int_equal(list_get(ls.l, ls.n, b.id)->load, 7);
	assert_false(list_get(ls.l, ls.n, a.id)->draining);
	sk_node_set_draining(b.n, false);
	WAIT_UNTIL(&t, tab_get(a.n, b.id) && !tab_get(a.n, b.id)->draining, 2000);
	assert_true(now_ms() - t0 < 5000);
	list_free(&ls);
	m_stop(&b);
	m_stop(&a);
	t_done(&t);
}

/* A JOIN heard on the bus while our own heartbeat is in flight may be newer than
 * that heartbeat's answer: the answer must not drop the member again (a down/up
 * flap, and the bus forgetting the peer). Redis is stopped to hold the answer. */
static void test_join_overtakes_heartbeat(void **state)
{
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Cluster__V1__NodeEvent ev = SKEIN__CLUSTER__V1__NODE_EVENT__INIT;
	Skein__Cluster__V1__NodeInfo ni = SKEIN__CLUSTER__V1__NODE_INFO__INIT;
	static const char *const topics[] = {"node"};
	struct member a = {0};
	struct sk_bus_opts bo = {0};
	struct sk_bus *g = NULL;
	char glisten[PATH_MAX + 32];
	struct t t;

	(void)state;
	t_init(&t);
	m_redis_tmo(&a, &t, 3000);
	WAIT_UNTIL(&t, sk_redis_ready(a.r), 3000);
	m_node(&a, "c9", "c9-a", "alpha", "dc1", 100, 1000, false, true);
	WAIT_UNTIL(&t, sk_node_synced(a.n), 2000);
	/* A member that is not in Redis announces itself from its own bus. */
	snprintf(glisten, sizeof(glisten), "ipc://%s/c9-g-alpha.bus", srv.dir);
	bo.id = "c9-g/alpha";
	bo.role = "alpha";
	bo.datacenter = "dc1";
	bo.listen = glisten;
	assert_int_equal(sk_bus_alloc(&g, &t.loop, &bo), 0);
	assert_int_equal(sk_bus_peer_set(g, a.id, "alpha", "dc1", a.listen, false, topics, 1), 0);

	srv_signal(SIGSTOP);
	/* a's heartbeat goes out and waits (a timer tick is 100 ms). */
	WAIT_UNTIL(&t, sk_redis_inflight(a.r) >= 1, 2000);
	t_run_for(&t, 150);
	ni.id = "c9-g/alpha";
	ni.node = "c9-g";
	ni.role = "alpha";
	ni.datacenter = "dc1";
	ni.bus_addr = glisten;
	ev.type = SKEIN__CLUSTER__V1__NODE_EVENT__TYPE__TYPE_JOIN;
	ev.node = &ni;
	env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_NODE_EVENT;
	env.node_event = &ev;
	assert_int_equal(sk_bus_publish(g, "node", &env), 0);
	WAIT_UNTIL(&t, tab_get(a.n, "c9-g/alpha") != NULL, 2000);
	assert_int_equal(sk_bus_peer_count(a.b, NULL), 1);
	assert_true(sk_redis_inflight(a.r) >= 1);

	/* The held answer (which does not list g) arrives: g stays for now. */
	srv_signal(SIGCONT);
	WAIT_UNTIL(&t, sk_redis_inflight(a.r) == 0, 2000);
	assert_non_null(tab_get(a.n, "c9-g/alpha"));
	assert_int_equal(changes(&a, "c9-g/alpha", false), 0);
	assert_int_equal(sk_bus_peer_count(a.b, NULL), 1);
	/* The next heartbeat, sent after the JOIN, is authoritative: g never
	 * heartbeated, so it goes (once). */
	WAIT_UNTIL(&t, tab_get(a.n, "c9-g/alpha") == NULL, 2000);
	assert_int_equal(changes(&a, "c9-g/alpha", true), 1);
	assert_int_equal(changes(&a, "c9-g/alpha", false), 1);
	assert_int_equal(sk_bus_peer_count(a.b, NULL), 0);
	sk_bus_close(g);
	g = sk_deref(g);
	m_stop(&a);
	t_done(&t);
}

static void test_observer(void **state)
{
	struct member a = {0}, b = {0}, o = {0};
	struct listing ls = {0};
	redisReply *rep;
	struct t t;

	(void)state;
	t_init(&t);
	m_start(&a, &t, "c5", "c5-a", "alpha", "dc1", 100, 400);
	m_start(&b, &t, "c5", "c5-b", "beta", "dc1", 100, 400);
	m_redis(&o, &t);
	m_node(&o, "c5", "c5-o", "ctl", "dc1", 100, 400, true, false); /* no bus */
	WAIT_UNTIL(&t, see_each_other(&a, &b) && sk_node_synced(o.n) && sk_node_size(o.n) == 2,
		   5000);
	assert_non_null(tab_get(o.n, a.id));
	assert_non_null(tab_get(o.n, b.id));
	assert_null(tab_get(o.n, o.id));
	assert_int_equal(changes(&o, a.id, true), 1);
	assert_int_equal(changes(&o, b.id, true), 1);
	assert_int_equal(sk_node_leave(o.n, left_cb, &o), SK_EINVAL);
	/* Watching for a while does not make it a member. */
	t_run_for(&t, 300);
	assert_int_equal(sk_node_size(a.n), 2);
	assert_null(tab_get(a.n, o.id));
	assert_int_equal(list_now(&ls, "c5", 400)->err, 0);
	assert_int_equal(ls.n, 2);
	assert_null(list_get(ls.l, ls.n, o.id));
	rep = srv_cmd("HLEN %s", "c5:{nodes}:info");
	assert_non_null(rep);
	assert_int_equal(rep->integer, 2);
	freeReplyObject(rep);
	/* It also sees departures. */
	m_stop(&b);
	WAIT_UNTIL(&t, sk_node_size(o.n) == 1, 3000);
	assert_int_equal(changes(&o, b.id, false), 1);
	list_free(&ls);
	m_stop(&o);
	m_stop(&a);
	t_done(&t);
}

static bool see_all(struct member *a, struct member *b, struct member *c)
{
	return sk_node_size(a->n) == 3 && sk_node_size(b->n) == 3 && sk_node_size(c->n) == 3 &&
	       seen_in_redis(a->n, b->id) && seen_in_redis(a->n, c->id) &&
	       seen_in_redis(b->n, a->id) && sk_bus_peer_count(a->b, NULL) == 2 &&
	       sk_bus_peer_count(b->b, NULL) == 2;
}

static void test_redis_down_keeps_table(void **state)
{
	struct member a = {0}, b = {0}, c = {0};
	struct listing ls = {0};
	struct t t;

	(void)state;
	t_init(&t);
	m_start(&a, &t, "c6", "c6-a", "alpha", "dc1", 100, 400);
	m_start(&b, &t, "c6", "c6-b", "alpha", "dc1", 100, 400);
	m_start(&c, &t, "c6", "c6-c", "alpha", "dc1", 100, 400);
	WAIT_UNTIL(&t, see_all(&a, &b, &c), 5000);
	srv_kill();
	WAIT_UNTIL(&t, !sk_redis_ready(a.r) && !sk_redis_ready(b.r), 3000);
	/* Three timeouts without Redis: nobody is dropped. */
	t_run_for(&t, 1200);
	assert_int_equal(sk_node_size(a.n), 3);
	assert_int_equal(sk_node_size(b.n), 3);
	assert_int_equal(sk_bus_peer_count(a.b, NULL), 2);
	assert_int_equal(changes(&a, b.id, false), 0);
	assert_int_equal(changes(&b, a.id, false), 0);
	/* The bus still works between them. */
	sk_node_set_draining(b.n, true);
	WAIT_UNTIL(&t, tab_get(a.n, b.id)->draining, 2000);
	assert_true(seen_in_redis(a.n, b.id)); /* the event kept the last heartbeat time */
	/* c dies while Redis is away (no leave). */
	m_stop(&c);

	/* Heartbeats resume once Redis is back (an empty one: nothing was saved). */
	assert_int_equal(srv_start(), 0);
	WAIT_UNTIL(&t,
		   !list_now(&ls, "c6", 400)->err && ls.n == 2 && list_get(ls.l, ls.n, a.id) &&
		       list_get(ls.l, ls.n, b.id) && list_get(ls.l, ls.n, b.id)->draining,
		   5000);
	check_info(list_get(ls.l, ls.n, a.id), &a);
	/* c, silent, is dropped within a timeout or two of the recovery; a and b,
	 * alive, never lost each other (no down/up while the others caught up). */
	WAIT_UNTIL(&t, sk_node_size(a.n) == 2 && sk_node_size(b.n) == 2, 3000);
	assert_null(tab_get(a.n, c.id));
	assert_int_equal(changes(&a, c.id, false), 1);
	assert_int_equal(sk_bus_peer_count(a.b, NULL), 1);
	t_run_for(&t, 500);
	assert_true(see_each_other(&a, &b));
	assert_int_equal(changes(&a, b.id, false), 0);
	assert_int_equal(changes(&b, a.id, false), 0);
	assert_int_equal(changes(&a, b.id, true), 1);
	assert_true(seen_in_redis(a.n, b.id));
	list_free(&ls);
	m_stop(&a);
	m_stop(&b);
	t_done(&t);
}

/* The unix ms score of a member in the seen set (0 when absent). */
static unsigned long long srv_seen(const char *cluster, const char *id)
{
	redisReply *rep = srv_cmd("ZSCORE %s:{nodes}:seen %s", cluster, id);
	unsigned long long v = 0;

	if (rep && rep->type == REDIS_REPLY_STRING)
		v = strtoull(rep->str, NULL, 10);
	if (rep)
		freeReplyObject(rep);
	return v;
}

/* Redis restarts (empty) between two heartbeats: no heartbeat fails, yet the first
 * one after the restart finds only its own entry. Members must not flap.
 * a and b heartbeat every 600 ms, 300 ms apart; Redis restarts just after a's
 * heartbeat, so b is the first to heartbeat on the new server. */
static void test_redis_quick_restart(void **state)
{
	struct member a = {0}, b = {0};
	struct listing ls = {0};
	unsigned long long sa;
	struct t t;

	(void)state;
	t_init(&t);
	m_start(&a, &t, "c10", "c10-a", "alpha", "dc1", 600, 1800);
	t_run_for(&t, 300);
	m_start(&b, &t, "c10", "c10-b", "alpha", "dc1", 600, 1800);
	WAIT_UNTIL(&t,
		   see_each_other(&a, &b) && seen_in_redis(a.n, b.id) && seen_in_redis(b.n, a.id),
		   5000);
	/* Past the grace that follows the first connection. */
	t_run_for(&t, 1900);
	sa = srv_seen("c10", a.id);
	WAIT_UNTIL(&t, srv_seen("c10", a.id) != sa, 2000);
	srv_kill();
	assert_int_equal(srv_start(), 0);
	WAIT_UNTIL(&t, sk_redis_ready(a.r) && sk_redis_ready(b.r), 2000);
	WAIT_UNTIL(&t, !list_now(&ls, "c10", 1800)->err && ls.n == 2, 3000);
	/* One more round of heartbeats on the new server. */
	t_run_for(&t, 700);
	assert_true(see_each_other(&a, &b));
	assert_int_equal(changes(&a, b.id, false), 0);
	assert_int_equal(changes(&b, a.id, false), 0);
	list_free(&ls);
	m_stop(&a);
	m_stop(&b);
	t_done(&t);
}

static void test_leave_redis_down(void **state)
{
	struct member a = {0}, b = {0};
	struct t t;

	(void)state;
	t_init(&t);
	m_start(&a, &t, "c7", "c7-a", "alpha", "dc1", 100, 400);
	m_start(&b, &t, "c7", "c7-b", "alpha", "dc1", 100, 400);
	WAIT_UNTIL(&t, see_each_other(&a, &b), 5000);
	srv_kill();
	WAIT_UNTIL(&t, !sk_redis_ready(b.r), 3000);
	/* Redis cannot answer: done still fires (on a later loop turn), and the bus
	 * still tells a. */
	assert_int_equal(sk_node_leave(b.n, left_cb, &b), 0);
	assert_int_equal(b.left, 0);
	WAIT_UNTIL(&t, b.left == 1, 2000);
	WAIT_UNTIL(&t, sk_node_size(a.n) == 1, 2000);
	assert_int_equal(changes(&a, b.id, false), 1);
	m_stop(&b);
	m_stop(&a);
	t_done(&t);
}

/* A stopped server must not hang the tools: SK_ETIMEDOUT, bounded. Run in a child
 * so that a hang is a failure, not a stuck test. */
static void test_list_sync_stopped_server(void **state)
{
	uint64_t until;
	pid_t pid;
	int st = 0;

	(void)state;
	srv_signal(SIGSTOP);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sk_node_info *l = NULL;
		size_t n = 0;
		int err;

		alarm(10);
		err = sk_node_list_sync(srv.addr, "c8", 400, &l, &n);
		sk_node_list_free(l, n);
		_exit(err == SK_ETIMEDOUT ? 0 : 1);
	}
	until = now_ms() + 8000;
	while (waitpid(pid, &st, WNOHANG) == 0 && now_ms() < until)
		usleep(10000);
	if (now_ms() >= until) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	srv_signal(SIGCONT);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    RT(test_members_see_each_other),
	    RT(test_silent_member_times_out),
	    RT(test_leave),
	    RT(test_draining),
	    RT(test_join_overtakes_heartbeat),
	    RT(test_observer),
	    RT(test_redis_down_keeps_table),
	    RT(test_redis_quick_restart),
	    RT(test_leave_redis_down),
	    RT(test_list_sync_stopped_server),
	};
	return cmocka_run_group_tests_name("node", tests, group_setup, group_teardown);
}
