/* regdata_lookup: an AOR's live bindings for routing, read without a Lua script.
 *
 * A request for a subscriber needs the bindings of one AOR on every call. The
 * REGDATA_LUA_LOOKUP script also purges expired bindings, and a script costs Redis
 * several times a plain command (each redis.call goes through a fake client; the
 * bench's redis-server profile was 80 % Lua machinery). Purging is the registration
 * script's job anyway (and the keys' PEXPIRE), so a router only reads: TIME and
 * HGETALL of the reg hash, pipelined on one connection (replies in order) — or the
 * HGETALL alone at a time read from the client's regdata_clock —, and keeps the
 * bindings whose expires_at_ms (appended to every stored value, regdata.h) is still
 * ahead of Redis' clock — never the local one, which may differ across
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

/* The same at a Redis time the caller knows (now_ms from regdata_clock_now(); 0:
 * read TIME with the hash, as regdata_lookup). */
int regdata_lookup_at(struct sk_redis *r, const char *cluster, const char *aor,
		      uint64_t now_ms, struct regdata_bindings *out, regdata_lookup_cb *cb,
		      void *arg);

/* Milliseconds of a TIME reply; SK_EPROTO when it is not one. */
int regdata_time_ms(const void *reply, uint64_t *ms);

/* Redis' clock as a client keeps it (issue 6: a TIME per REGISTER or call is a tenth
 * of what Redis spends on a refresh): the offset of Redis TIME to the client's
 * monotonic clock, from TIME replies it samples (the edge: every second). Still
 * Redis' clock, not the local one: the estimate is off by at most half the round
 * trip of the sample (samples above REGDATA_CLOCK_RTT_MAX_MS are not taken) plus the
 * drift since (a sample is used for REGDATA_CLOCK_TTL_MS), a few milliseconds where
 * expiries count in seconds. */
#define REGDATA_CLOCK_RTT_MAX_MS 100
#define REGDATA_CLOCK_TTL_MS	 5000
struct regdata_clock {
	int64_t offset_ms; /* Redis unix ms minus monotonic ms */
	uint64_t at_ms;	   /* monotonic ms of the sample's answer; 0: none yet */
};
/* A TIME sent at sent_ms and answered at recv_ms (monotonic ms) with redis_ms. */
void regdata_clock_sample(struct regdata_clock *c, uint64_t sent_ms, uint64_t recv_ms,
			  uint64_t redis_ms);
/* Redis' time (unix ms) at monotonic mono_ms; 0 without a sample of the last
 * REGDATA_CLOCK_TTL_MS (the caller then lets Redis tell). */
uint64_t regdata_clock_now(const struct regdata_clock *c, uint64_t mono_ms);

#endif
