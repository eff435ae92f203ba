/* limits_lua: the Redis script that admits an outbound call against the per-account
 * limits (core_limits.c; tested on its own against a real redis-server in
 * tests/edge/test_limits.c). One script, one round trip, keys of one hash tag
 * ("{user@domain}"), so it runs unchanged on Redis Cluster.
 *
 * KEYS[1] <c>:{<aor>}:calls  ZSET Call-ID -> unix ms (Redis TIME) after which the call
 *                            stops counting (call_max_duration): calls in progress
 * KEYS[2] <c>:{<aor>}:cpm    HASH w (current minute: unix ms / 60000), c (attempts
 *                            admitted in it), p (admitted in the minute before)
 * ARGV    Call-ID, concurrent limit (0 none), attempts per minute (0 none),
 *         call_max_duration in ms
 *
 * Returns {verdict, calls}: verdict EDGE_LIMITS_LUA_ADMITTED (counted now),
 * _KNOWN (this Call-ID is counted already: a retransmission or a re-sent INVITE on
 * another edge; nothing changes, so the check is idempotent), _CONCURRENT or _RATE
 * (refused, nothing recorded); calls = calls in progress before this one.
 *
 * The rate is a sliding-window approximation (two fixed one-minute windows, the
 * previous one weighted by how much of it still lies within the last 60 s): a fixed
 * window lets a caller place 2 x call_rate attempts across a minute boundary, a log
 * of every attempt costs memory per attempt. Only admitted attempts are counted, so
 * a refused caller is let in again as soon as its rate falls, whatever it keeps
 * sending. */
#ifndef SKEIN_EDGE_LIMITS_LUA_H
#define SKEIN_EDGE_LIMITS_LUA_H

#define EDGE_LIMITS_LUA_ADMITTED   0
#define EDGE_LIMITS_LUA_KNOWN	   1
#define EDGE_LIMITS_LUA_CONCURRENT 2
#define EDGE_LIMITS_LUA_RATE	   3

#define EDGE_LIMITS_LUA                                                                   \
	"local t = redis.call('TIME')\n"                                                  \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"         \
	"local limit, rate = tonumber(ARGV[2]), tonumber(ARGV[3])\n"                     \
	"local maxms = tonumber(ARGV[4])\n"                                               \
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"                          \
	"if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {1, 0} end\n"              \
	"local n = redis.call('ZCARD', KEYS[1])\n"                                        \
	"if limit > 0 and n >= limit then return {2, n} end\n"                            \
	"local win = math.floor(now / 60000)\n"                                           \
	"local h = redis.call('HMGET', KEYS[2], 'w', 'c', 'p')\n"                         \
	"local w, c, p = tonumber(h[1]), tonumber(h[2]) or 0, tonumber(h[3]) or 0\n"      \
	"if w ~= win then\n"                                                              \
	"  if w == win - 1 then p = c else p = 0 end\n"                                   \
	"  c = 0\n"                                                                       \
	"end\n"                                                                           \
	"if rate > 0 and p * (60000 - now % 60000) / 60000 + c + 1 > rate then\n"         \
	"  return {3, n}\n"                                                               \
	"end\n"                                                                           \
	"redis.call('HSET', KEYS[2], 'w', string.format('%d', win), 'c', c + 1, 'p', p)\n" \
	"redis.call('PEXPIRE', KEYS[2], 120000)\n"                                        \
	"redis.call('ZADD', KEYS[1], now + maxms, ARGV[1])\n"                             \
	"if redis.call('PTTL', KEYS[1]) < maxms then\n"                                   \
	"  redis.call('PEXPIRE', KEYS[1], maxms)\n"                                       \
	"end\n"                                                                           \
	"return {0, n}\n"

#endif
