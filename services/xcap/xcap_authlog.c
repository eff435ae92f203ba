/* xcap_authlog: see xcap_authlog.h. A file of its own for the log module: the line
 * must say "auth" like the edge's (core_auth.c log_failure) for the filter to match. */
#include "skein/sk_log.h"
#include "xcap_authlog.h"

SK_LOG_MODULE("auth");

enum { FIELD_MAX = 256 };

void xcap_authlog_failure(const char *ip, const char *user, const char *realm,
			  const char *reason)
{
	char u[4 * FIELD_MAX + 1], r[4 * FIELD_MAX + 1];

	SK_NOTICE("auth-failure src=%s user=\"%s\" realm=\"%s\" reason=%s",
		  ip && ip[0] ? ip : "-", sk_log_escape(user, u, sizeof(u)),
		  sk_log_escape(realm, r, sizeof(r)), reason);
}
