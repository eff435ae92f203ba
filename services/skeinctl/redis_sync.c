/* Synchronous Redis for skeinctl's data commands: connect with the cluster's address
 * and timeout (every command bounded too), one command with errors reported. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "skeinctl.h"

redisContext *ctl_redis_connect(const struct ctl *c)
{
	const char *addr = c->cluster.redis, *colon;
	uint64_t ms = c->cluster.redis_timeout ? c->cluster.redis_timeout : 1000;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
	redisContext *rc;
	char host[256];

	if (!strncmp(addr, "unix:", 5)) {
		rc = redisConnectUnixWithTimeout(addr + 5, tv);
	} else {
		colon = strrchr(addr, ':');
		if (!colon || (size_t)(colon - addr) >= sizeof(host)) {
			fprintf(stderr, "skeinctl: bad redis address \"%s\"\n", addr);
			return NULL;
		}
		if (addr[0] == '[' && colon > addr + 1 && colon[-1] == ']')
			snprintf(host, sizeof(host), "%.*s", (int)(colon - addr - 2), addr + 1);
		else
			snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
		rc = redisConnectWithTimeout(host, atoi(colon + 1), tv);
	}
	/* The connect timeout covers the connect only: bound every command too. */
	if (!rc || rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
		fprintf(stderr, "skeinctl: cannot connect to redis %s: %s\n", addr,
			rc && rc->err ? rc->errstr : "out of memory");
		if (rc)
			redisFree(rc);
		return NULL;
	}
	return rc;
}

redisReply *ctl_redis_cmd(const struct ctl *c, redisContext *rc, int argc, const char **argv,
			  const size_t *lens)
{
	redisReply *r = redisCommandArgv(rc, argc, argv, lens);

	if (!r) {
		fprintf(stderr, "skeinctl: redis %s: %s\n", c->cluster.redis,
			rc->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)
				? "timed out"
				: rc->errstr);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "skeinctl: redis %s: %s\n", c->cluster.redis, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}
