/* A one-shot, blocking read of the member table for command-line tools. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "skein/sk_node.h"
#include "skein/sk_redis.h"
#include "skein/sk_mem.h"
#include "skein/sk_err.h"
#include "skein/cluster/v1/node.pb-c.h"
#include "node_int.h"

static const struct timeval tv = {1, 0};

static redisContext *connect_addr(const char *addr)
{
	const char *colon;
	char host[256];

	if (!strncmp(addr, "unix:", 5))
		return redisConnectUnixWithTimeout(addr + 5, tv);
	colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return NULL;
	if (addr[0] == '[' && colon > addr + 1 && colon[-1] == ']') {
		memcpy(host, addr + 1, (size_t)(colon - addr - 2));
		host[colon - addr - 2] = '\0';
	} else {
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = '\0';
	}
	return redisConnectWithTimeout(host, atoi(colon + 1), tv);
}

void sk_node_list_free(struct sk_node_info *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sk_node_info_clear(&list[i]);
	free(list);
}

int sk_node_list_sync(const char *redis_addr, const char *cluster, uint64_t timeout_ms,
		      struct sk_node_info **out, size_t *n)
{
	char kinfo[256], kseen[256], min[32];
	redisContext *c;
	redisReply *t = NULL, *ids = NULL, *infos = NULL;
	struct sk_node_info *list = NULL;
	size_t cnt = 0;
	uint64_t now;
	int err = 0;

	*out = NULL;
	*n = 0;
	if (sk_redis_key(kinfo, sizeof(kinfo), cluster, "nodes", "info") ||
	    sk_redis_key(kseen, sizeof(kseen), cluster, "nodes", "seen"))
		return SK_EINVAL;
	c = connect_addr(redis_addr);
	if (!c)
		return SK_EINVAL;
	if (c->err) {
		err = c->err == REDIS_ERR_IO ? SK_ECONNREFUSED : SK_ETIMEDOUT;
		goto out;
	}
	/* hiredis 0.14 applies the connect timeout to the connect only: without this a
	 * stopped server (SIGSTOP, network cut) makes the call wait for ever. */
	if (redisSetTimeout(c, tv) != REDIS_OK) {
		err = SK_ETIMEDOUT;
		goto out;
	}
	/* Redis's clock, as the heartbeat script uses it. */
	t = redisCommand(c, "TIME");
	if (!t || t->type != REDIS_REPLY_ARRAY || t->elements != 2) {
		/* No answer within the timeout: hiredis says EAGAIN. */
		if (!t && c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
			err = SK_ETIMEDOUT;
		else
			err = SK_EREDIS;
		goto out;
	}
	now = strtoull(t->element[0]->str, NULL, 10) * 1000 +
	      strtoull(t->element[1]->str, NULL, 10) / 1000;
	snprintf(min, sizeof(min), "(%llu", (unsigned long long)(now - timeout_ms));
	ids = redisCommand(c, "ZRANGEBYSCORE %s %s +inf WITHSCORES", kseen, min);
	if (!ids || ids->type != REDIS_REPLY_ARRAY) {
		err = SK_EREDIS;
		goto out;
	}
	list = calloc(ids->elements / 2 + 1, sizeof(*list));
	if (!list) {
		err = SK_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i + 1 < ids->elements; i += 2) {
		Skein__Cluster__V1__NodeInfo *pb;
		struct sk_node_info *ni = &list[cnt];

		infos = redisCommand(c, "HGET %s %b", kinfo, ids->element[i]->str,
				     ids->element[i]->len);
		if (!infos || infos->type != REDIS_REPLY_STRING)
			goto next;
		pb = skein__cluster__v1__node_info__unpack(NULL, infos->len, (uint8_t *)infos->str);
		if (!pb)
			goto next;
		err = sk_node_info_from_pb(ni, pb);
		skein__cluster__v1__node_info__free_unpacked(pb, NULL);
		if (err)
			goto out; /* SK_ENOMEM */
		ni->seen_ms = strtoull(ids->element[i + 1]->str, NULL, 10);
		ni->age_ms = now > ni->seen_ms ? now - ni->seen_ms : 0;
		cnt++;
next:
		if (infos)
			freeReplyObject(infos);
		infos = NULL;
	}
	*out = list;
	*n = cnt;
	list = NULL;
out:
	if (list)
		sk_node_list_free(list, cnt);
	if (t)
		freeReplyObject(t);
	if (ids)
		freeReplyObject(ids);
	if (infos)
		freeReplyObject(infos);
	redisFree(c);
	return err;
}
