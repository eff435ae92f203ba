/* Private to the daemon runtime: daemon.c (life cycle) and daemon_http.c (routes). */
#ifndef SK_DAEMON_INT_H
#define SK_DAEMON_INT_H

#include "skein/sk_daemon.h"

struct sk_daemon {
	const struct sk_daemon_ops *ops;
	struct sk_cluster_conf cluster;
	struct sk_conf_section secs[2];
	const char *config_path;
	const char **flags;
	int nflags;
	bool mode_help, mode_version, mode_check, mode_markdown, mode_markdown_cluster;

	uv_loop_t *loop;
	char *id;      /* member id "<node_id>/<role>" */
	char *mprefix; /* "skein_<role>" */
	struct sk_metrics *metrics;
	struct sk_http *http;
	struct sk_redis *redis;
	struct sk_bus *bus;
	struct sk_node *node;
	uv_signal_t sig[4];
	uv_timer_t drain_timer;
	bool draining, leaving, finished;
	uint64_t drain_started;
	uint64_t started_ms;
};

void sk_daemon_metrics_init(struct sk_daemon *d);
int sk_daemon_http_start(struct sk_daemon *d, const char *addr);
void sk_daemon_http_stop(struct sk_daemon *d);

#endif
