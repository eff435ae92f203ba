/* sk_daemon: what every Skein daemon's main() does, in one place, so that main.c stays
 * thin: command line and config (defaults < file < SKEIN_* env < --flags), logging,
 * the libuv loop, Redis, the bus, membership, the HTTP endpoint (/metrics, /healthz,
 * /readyz, /status, /admin/log), SIGTERM drain and SIGHUP reload.
 *
 * A daemon describes itself with struct sk_daemon_ops and calls sk_daemon_main().
 * Its config struct must begin with a struct sk_role_conf (the keys every role has,
 * SK_ROLE_KEYS), followed by its own keys. */
#ifndef SK_DAEMON_H
#define SK_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "skein/sk_conf.h"
#include "skein/sk_http.h"

struct sk_daemon;
struct sk_bus;
struct sk_redis;
struct sk_node;
struct sk_metrics;
struct sk_node_info;

/* [cluster]: the same for every daemon of a node (docs/configuration.md). */
struct sk_cluster_conf {
	char *name;        /* Redis key prefix: several clusters may share one Redis */
	char *node_id;
	char *datacenter;
	char *redis;
	uint64_t redis_timeout;
	char *state_dir;
	char *log_level;
	char *log_format;
	uint64_t heartbeat_interval;
	uint64_t node_timeout;
	uint64_t drain_timeout;
	uint64_t bus_deadline;
	char *roles;       /* what `skein run` starts on this node */
	bool redis_embedded;
	char *redis_bin;
	char *admin_token;
};

extern const struct sk_conf_key sk_cluster_keys[];
/* Role names that may have a section in a node's file. */
extern const char *const sk_roles[];

/* The keys of every role section. */
struct sk_role_conf {
	char *http_listen;
	char *bus_listen;
};

#define SK_ROLE_KEYS(type, http_default)                                                    \
	{"http_listen", SK_CONF_ADDR, offsetof(type, role.http_listen), http_default,       \
	 "Address of /metrics, /healthz, /readyz, /status and the admin API", 0, 0, 0, 0, 0}, \
	{"bus_listen", SK_CONF_STR, offsetof(type, role.bus_listen), "",                     \
	 "nanomsg address of this daemon's bus socket (ipc:///path or tcp://host:port); "  \
	 "empty: ipc://<state_dir>/<node_id>-<role>.bus",                                  \
	 0, 0, 0, 0, sk_daemon_check_bus_addr}

int sk_daemon_check_bus_addr(const char *v, const char **why);

struct sk_daemon_ops {
	const char *role;    /* "registrar" */
	const char *summary; /* one line for --help */
	const struct sk_conf_key *keys; /* the role section, SK_ROLE_KEYS first */
	void *conf;          /* struct starting with `struct sk_role_conf role;` */
	size_t conf_size;
	void *arg;
	/* After Redis, bus, membership and HTTP are set up (Redis may still be down). */
	int (*start)(struct sk_daemon *d, void *arg);
	/* SIGTERM: stop taking new work. */
	void (*drain)(struct sk_daemon *d, void *arg);
	/* While draining: true when nothing is left in progress. */
	bool (*idle)(struct sk_daemon *d, void *arg);
	/* Release what start() made; the loop then runs until every handle is closed. */
	void (*stop)(struct sk_daemon *d, void *arg);
	/* Extra readiness condition (may be NULL). */
	bool (*ready)(struct sk_daemon *d, void *arg);
	/* A member of the cluster joined (up) or went away: left, or silent for longer
	 * than node_timeout (may be NULL; info borrowed). */
	void (*member)(struct sk_daemon *d, const struct sk_node_info *info, bool up, void *arg);
	/* SIGHUP, after the reloadable keys were applied (may be NULL): re-read files
	 * (certificates) and re-derive what depends on reloaded keys. */
	void (*reload)(struct sk_daemon *d, void *arg);
	/* Extra HTTP routes; return 1 when the path is not one of them. */
	int (*http)(struct sk_daemon *d, const struct sk_http_req *req,
		    struct sk_http_resp *resp, void *arg);
};

/* Runs the daemon; returns the process exit code (0, 1 bad config, 2 bad usage). */
int sk_daemon_main(const struct sk_daemon_ops *ops, int argc, char **argv);

uv_loop_t *sk_daemon_loop(struct sk_daemon *d);
struct sk_bus *sk_daemon_bus(struct sk_daemon *d);
struct sk_redis *sk_daemon_redis(struct sk_daemon *d);
struct sk_node *sk_daemon_node(struct sk_daemon *d);
struct sk_metrics *sk_daemon_metrics(struct sk_daemon *d);
const struct sk_cluster_conf *sk_daemon_cluster(struct sk_daemon *d);
/* "skein_<role>", for the daemon's own metric names. */
const char *sk_daemon_metrics_prefix(struct sk_daemon *d);
bool sk_daemon_draining(const struct sk_daemon *d);
bool sk_daemon_is_ready(struct sk_daemon *d, const char **why);

/* Shared by skein and skeinctl: load [cluster] from a node file (other sections
 * skipped). */
int sk_cluster_conf_load(struct sk_cluster_conf *c, const char *path, char **envp,
			 struct sk_conf_err *e);
/* An empty node_id becomes the host name. */
int sk_cluster_conf_node_id_default(struct sk_cluster_conf *c);

#endif
