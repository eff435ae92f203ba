/* sk_node: cluster membership. Each daemon heartbeats its NodeInfo into Redis with a
 * timestamp taken from Redis's own clock; the same script prunes members silent for
 * longer than timeout_ms and returns the live table, which feeds the bus's peer list.
 * Joins, drains and leaves are also announced on the bus (topic "node") so peers learn
 * them at once rather than at their next heartbeat.
 *
 * Redis keys (one hash slot: the tag is {nodes}):
 *   <cluster>:{nodes}:info  hash  member id -> packed skein.cluster.v1.NodeInfo
 *   <cluster>:{nodes}:seen  zset  member id -> last heartbeat, unix ms (Redis TIME)
 *
 * While Redis is unreachable the last known table is kept: the bus keeps working
 * between daemons that already know each other. After an outage (or any new
 * connection to Redis) a member missing from Redis is kept for one timeout_ms more,
 * so that a restarted, empty Redis does not make live members flap. */
#ifndef SK_NODE_H
#define SK_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct sk_node;
struct sk_redis;
struct sk_bus;
struct sk_metrics;

struct sk_node_info {
	char *id, *node, *role, *dc, *bus_addr, *http_addr, *version;
	bool draining;
	uint32_t load, pid;
	uint64_t started_ms, seen_ms; /* unix ms */
	uint64_t age_ms; /* since the last heartbeat, by Redis's clock (sk_node_list_sync) */
};

struct sk_node_opts {
	const char *cluster;   /* key prefix, [cluster] name */
	uint64_t heartbeat_ms; /* default 1000 */
	uint64_t timeout_ms;   /* default 3000 */
	bool observe;          /* read the table only, do not join (skeinctl) */
	/* self (ignored when observe): */
	const char *id, *node, *role, *dc, *bus_addr, *http_addr;
	struct sk_metrics *metrics;
	const char *metrics_prefix;
};

/* A member appeared (up) or went away (!up); info borrowed for the call. */
typedef void(sk_node_change_cb)(const struct sk_node_info *info, bool up, void *arg);

/* bus may be NULL (then the table is kept but no peer is fed). */
int sk_node_alloc(struct sk_node **np, uv_loop_t *loop, struct sk_redis *redis,
		  struct sk_bus *bus, const struct sk_node_opts *o, sk_node_change_cb *cb,
		  void *arg);
/* Announce draining (heartbeat and bus event). */
void sk_node_set_draining(struct sk_node *n, bool draining);
void sk_node_set_load(struct sk_node *n, uint32_t load);
/* Leave: remove ourselves from Redis and announce it; done(arg) fires when Redis
 * answered or failed (never from inside this call). */
int sk_node_leave(struct sk_node *n, void (*done)(void *arg), void *arg);
void sk_node_close(struct sk_node *n);

/* The live table. */
size_t sk_node_count(const struct sk_node *n, const char *role);
const struct sk_node_info *sk_node_at(const struct sk_node *n, size_t i);
size_t sk_node_size(const struct sk_node *n);
/* True after the first heartbeat answered. */
bool sk_node_synced(const struct sk_node *n);

/* For tools (skein, skeinctl): read the live table once, synchronously, members
 * seen within timeout_ms by Redis's clock. *out is an array to release with
 * sk_node_list_free. Errors: SK_ECONNREFUSED / SK_ETIMEDOUT / SK_EREDIS. */
int sk_node_list_sync(const char *redis_addr, const char *cluster, uint64_t timeout_ms,
		      struct sk_node_info **out, size_t *n);
void sk_node_list_free(struct sk_node_info *list, size_t n);

#endif
