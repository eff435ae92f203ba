/* regdata_ban: keys and scripts of the cluster-wide ban set (regdata_ban.h). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include "skein/sk_err.h"
#include "skein/sk_redis.h"
#include "regdata_ban.h"

int regdata_key_bans(char *buf, size_t size, const char *cluster, const char *which)
{
	return sk_redis_key(buf, size, cluster, "bans", which);
}

int regdata_ip_norm(char *out, size_t size, const char *in)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, in, a) == 1)
		return inet_ntop(AF_INET, a, out, (socklen_t)size) ? 0 : SK_EINVAL;
	if (inet_pton(AF_INET6, in, a) != 1)
		return SK_EINVAL;
	/* ::ffff:a.b.c.d is the IPv4 source as a dual-stack socket reports it */
	if (!memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12))
		return inet_ntop(AF_INET, a + 12, out, (socklen_t)size) ? 0 : SK_EINVAL;
	return inet_ntop(AF_INET6, a, out, (socklen_t)size) ? 0 : SK_EINVAL;
}

/* Ended bans go in batches of 500 (unpack() has a stack limit). */
#define NOW_AND_PURGE                                                                   \
	"local t = redis.call('TIME')\n"                                                \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"       \
	"local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 500)\n" \
	"if #gone > 0 then\n"                                                           \
	"  redis.call('ZREM', KEYS[1], unpack(gone))\n"                                 \
	"  redis.call('HDEL', KEYS[2], unpack(gone))\n"                                 \
	"end\n"

const char regdata_ban_add_lua[] =
	NOW_AND_PURGE
	"local stop = now + tonumber(ARGV[2])\n"
	"local old = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
	"if old and tonumber(old) >= stop then return {0, tonumber(old)} end\n"
	"redis.call('ZADD', KEYS[1], stop, ARGV[1])\n"
	"redis.call('HSET', KEYS[2], ARGV[1],\n"
	"           ARGV[3] .. '\\t' .. ARGV[4] .. '\\t' .. string.format('%d', now))\n"
	"redis.call('INCR', KEYS[3])\n"
	"return {1, stop}\n";

const char regdata_ban_del_lua[] =
	"local n = redis.call('ZREM', KEYS[1], ARGV[1])\n"
	"redis.call('HDEL', KEYS[2], ARGV[1])\n"
	"if n > 0 then redis.call('INCR', KEYS[3]) end\n"
	"return n\n";

/* Scores are returned as strings (WITHSCORES); the edge converts them to its own
 * clock with now_ms, so clock skew between edge and Redis does not matter. */
const char regdata_ban_sync_lua[] =
	"local g = redis.call('GET', KEYS[3]) or '0'\n"
	"if g == ARGV[1] then return {g} end\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"return {g, now, redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', "
	"'WITHSCORES')}\n";
