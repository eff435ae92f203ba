/* sk_err: one list of error codes for every libcore call (after libuv's uv-errno.h).
 *
 * Functions return 0 or a negative code: a negated errno for system faults, or one of
 * Skein's own codes below (all under -4000, so they never collide with errno). */
#ifndef SK_ERR_H
#define SK_ERR_H

#include <errno.h>

/* name, value, message */
#define SK_ERRNO_MAP(XX)                                                             \
	XX(ENOMEM, -ENOMEM, "out of memory")                                          \
	XX(EINVAL, -EINVAL, "invalid argument")                                       \
	XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                       \
	XX(ENOENT, -ENOENT, "no such entry")                                          \
	XX(EEXIST, -EEXIST, "already exists")                                         \
	XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                        \
	XX(ECANCELED, -ECANCELED, "canceled")                                         \
	XX(ENOTCONN, -ENOTCONN, "not connected")                                      \
	XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                         \
	XX(ENOTSUP, -ENOTSUP, "not supported")                                        \
	XX(EPROTO, -EPROTO, "protocol error")                                         \
	XX(EMSGSIZE, -EMSGSIZE, "message too long")                                   \
	XX(ERANGE, -ERANGE, "value out of range")                                     \
	XX(EBADMSG, -EBADMSG, "malformed message")                                    \
	XX(EADDRINUSE, -EADDRINUSE, "address in use")                                 \
	XX(ECONNRESET, -ECONNRESET, "connection reset")                               \
	XX(EHOSTUNREACH, -EHOSTUNREACH, "host unreachable")                           \
	XX(ECONFIG, -4001, "configuration error")                                     \
	XX(ENONODE, -4002, "no live node of that role")                               \
	XX(EREDIS, -4003, "redis error reply")                                        \
	XX(EDRAINING, -4004, "draining")                                              \
	XX(EUNKNOWN, -4005, "unknown message")                                        \
	XX(EREMOTE, -4006, "remote side failed")                                      \
	XX(ETLS, -4007, "TLS failure")

enum sk_errno {
#define SK_ERR_ENUM(name, val, msg) SK_##name = (val),
	SK_ERRNO_MAP(SK_ERR_ENUM)
#undef SK_ERR_ENUM
};

/* A static message for any code this API returns (errno or SK_*); never NULL. */
const char *sk_strerror(int err);
/* The symbolic name, e.g. "ETIMEDOUT"; "UNKNOWN" for codes outside the list. */
const char *sk_err_name(int err);

#endif
