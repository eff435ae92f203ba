/* skeinctl: private declarations. */
#ifndef SKEINCTL_H
#define SKEINCTL_H

#include <stdbool.h>
#include "skein/sk_daemon.h"
#include "skein/sk_buf.h"

struct ctl {
	struct sk_cluster_conf cluster;
	bool table; /* -o table */
	char **args;
	int nargs;
};

/* GET http://addr/path with a timeout; fills body, returns the HTTP status or <0. */
int http_get(const char *addr, const char *path, int timeout_ms, struct sk_buf *body);
int cmd_ping(struct ctl *c);
int cmd_ban(struct ctl *c);
int cmd_im(struct ctl *c); /* im.c */

/* redis_sync.c: NULL (reported on stderr) when Redis cannot be reached. */
struct redisContext;
struct redisReply;
struct redisContext *ctl_redis_connect(const struct ctl *c);
/* One command; NULL (reported) on an I/O failure or an error reply. */
struct redisReply *ctl_redis_cmd(const struct ctl *c, struct redisContext *rc, int argc,
				 const char **argv, const size_t *lens);

#endif
