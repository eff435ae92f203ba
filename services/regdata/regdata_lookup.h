/* regdata_lookup: an AOR's live bindings for routing, read without a Lua script.
 *
 * A request for a subscriber needs the bindings of one AOR on every call. The
 * REGDATA_LUA_LOOKUP script also purges expired bindings, and a script costs Redis
 * several times a plain command (each redis.call goes through a fake client; the
 * bench's redis-server profile was 80 % Lua machinery). Purging is the registration
 * script's job anyway (and the keys' PEXPIRE), so a router only reads: TIME and
 * HGETALL of the reg hash, pipelined on one connection (replies in order), and keeps
 * the bindings whose expires_at_ms (appended to every stored value, regdata.h) is
 * still ahead of Redis' clock — never the local one, which may differ across
 * datacenters. */
#ifndef SKEIN_REGDATA_LOOKUP_H
#define SKEIN_REGDATA_LOOKUP_H
#include <stddef.h>
#include <stdint.h>
#include "regdata.h"

struct sk_redis;

/* err: 0, or the Redis client's error (SK_ENOTCONN, SK_ETIMEDOUT, SK_ECANCELED,
 * SK_EREDIS) or SK_EPROTO for a reply of the wrong shape. On 0, *out (given to
 * regdata_lookup) holds the live bindings, by q then newest (as
 * regdata_bindings_from_reply); the caller frees it with regdata_bindings_free(). */
typedef void(regdata_lookup_cb)(int err, void *arg);

/* Reads aor's live bindings into *out, which must stay valid until cb. 0: cb fires
 * once; otherwise (SK_EINVAL, SK_ERANGE for a key that does not fit, SK_ENOMEM, the
 * client's SK_ENOTCONN) it does not. */
int regdata_lookup(struct sk_redis *r, const char *cluster, const char *aor,
		   struct regdata_bindings *out, regdata_lookup_cb *cb, void *arg);

/* Decodes an HGETALL reply of a reg hash at Redis time now_ms: live bindings only,
 * expires_in set (seconds, rounded up), sorted. Values that fail to unpack or have no
 * expiry are skipped and counted in *skipped (may be NULL). SK_EPROTO, SK_ENOMEM. */
int regdata_bindings_from_hash(struct regdata_bindings *out, const void *reply,
			       uint64_t now_ms, size_t *skipped);

/* Milliseconds of a TIME reply; SK_EPROTO when it is not one. */
int regdata_time_ms(const void *reply, uint64_t *ms);

#endif
