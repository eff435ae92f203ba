/* sk_redis: the shared-state client, hiredis async on the daemon's libuv loop.
 *
 * - Reconnects by itself with exponential backoff (backoff_min..backoff_max).
 * - While the connection is down, sk_redis_cmd() fails at once with SK_ENOTCONN:
 *   callers get a clear error, never a hang; sk_redis_ready() is false.
 * - A command unanswered for `timeout_ms` (server stopped, network cut) resets the
 *   connection: every command in flight fails with SK_ETIMEDOUT.
 * - Commands are pipelined: many may be in flight, replies come back in order.
 * - Lua scripts are registered once, loaded (SCRIPT LOAD) on every connect and
 *   called by SHA; a NOSCRIPT answer (SCRIPT FLUSH, failover) re-sends the call as
 *   EVAL, which loads the script again.
 *
 * Keys are hash-tagged by their owner ("skein:{alice@example.com}:reg") so that every
 * key of one owner lands in one Redis Cluster slot; sk_redis_key() builds them. */
#ifndef SK_REDIS_H
#define SK_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct redisReply;
struct sk_redis;
struct sk_redis_script;
struct sk_metrics;

struct sk_redis_opts {
	const char *addr;        /* "host:port" or "unix:/path" */
	uint64_t timeout_ms;     /* per command; default 1000 */
	uint64_t backoff_min_ms; /* default 100 */
	uint64_t backoff_max_ms; /* default 2000 */
	struct sk_metrics *metrics;
	const char *metrics_prefix;
};

/* err is 0 with a reply, SK_EREDIS with the error reply, SK_ENOTCONN (connection
 * lost before the answer), SK_ETIMEDOUT or SK_ECANCELED (closing; reply NULL).
 * The reply is borrowed for the duration of the call. */
typedef void(sk_redis_reply_cb)(int err, struct redisReply *reply, void *arg);
typedef void(sk_redis_state_cb)(bool up, void *arg);

int sk_redis_alloc(struct sk_redis **rp, uv_loop_t *loop, const struct sk_redis_opts *o,
		   sk_redis_state_cb *scb, void *arg);
/* Fail what is in flight with SK_ECANCELED and disconnect; release with sk_deref. */
void sk_redis_close(struct sk_redis *r);
bool sk_redis_ready(const struct sk_redis *r);
size_t sk_redis_inflight(const struct sk_redis *r);

/* One command as an argument vector (binary safe). lens may be NULL for C strings.
 * 0: cb will fire once; otherwise cb will not fire. */
int sk_redis_cmd(struct sk_redis *r, sk_redis_reply_cb *cb, void *arg, int argc,
		 const char **argv, const size_t *lens);
/* printf-style, as hiredis's redisvFormatCommand (%s, %b for binary). */
int sk_redis_cmdf(struct sk_redis *r, sk_redis_reply_cb *cb, void *arg, const char *fmt, ...);

/* Register a script; it stays registered until the client is freed. */
int sk_redis_script_add(struct sk_redis *r, struct sk_redis_script **sp, const char *lua);
const char *sk_redis_script_sha(const struct sk_redis_script *s);
/* EVALSHA sha nkeys args... */
int sk_redis_eval(struct sk_redis_script *s, sk_redis_reply_cb *cb, void *arg, int nkeys,
		  int argc, const char **argv, const size_t *lens);

/* "<prefix>:{<owner>}:<what>" into buf; SK_ERANGE when it does not fit. The owner
 * may not contain '{' or '}' (it would change the hash slot): SK_EINVAL. */
int sk_redis_key(char *buf, size_t size, const char *prefix, const char *owner,
		 const char *what);

struct sk_redis_stats {
	uint64_t commands, errors, timeouts, reconnects, script_reloads;
};
void sk_redis_stats(const struct sk_redis *r, struct sk_redis_stats *st);

#endif
