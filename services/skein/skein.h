/* skein (the node runner): private declarations shared by main.c and supervise.c. */
#ifndef SKEIN_RUNNER_H
#define SKEIN_RUNNER_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>
#include "skein/sk_daemon.h"

struct child {
	char *name;  /* "redis", "edge", ... */
	char **argv; /* NULL-terminated, argv[0] the program */
	pid_t pid;   /* 0 when not running */
	bool is_redis;
	uint64_t started, backoff;
	unsigned restarts;
	uv_timer_t restart;
	struct runner *r;
};

struct runner {
	uv_loop_t *loop;
	struct sk_cluster_conf cluster;
	const char *config_path;
	char bindir[4096];
	struct child *kids;
	size_t nkids;
	bool stopping;
	uv_signal_t sig[3];
	uv_timer_t kill_timer;
	int exit_code;
};

int supervise_start(struct runner *r, struct child *c);
void supervise_stop_all(struct runner *r);
int supervise_init(struct runner *r);
/* Blocks (before the loop runs) until the embedded Redis answers PING. */
int wait_redis(const char *addr, int ms);

#endif
