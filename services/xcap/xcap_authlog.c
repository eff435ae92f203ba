/* xcap_authlog: see xcap_authlog.h. A file of its own for the log module: the line
 * must say "auth" like the edge's (core_auth.c log_failure) for the filter to match. */
#include <stdio.h>
#include "skein/sk_log.h"
#include "xcap_authlog.h"

SK_LOG_MODULE("auth");

enum { FIELD_MAX = 256 };

const char *xcap_authlog_escape(const char *s, char *out, size_t size)
{
	size_t o = 0;

	for (; s && *s && o + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

void xcap_authlog_failure(const char *ip, const char *user, const char *realm,
			  const char *reason)
{
	char u[4 * FIELD_MAX + 1], r[4 * FIELD_MAX + 1];

	SK_NOTICE("auth-failure src=%s user=\"%s\" realm=\"%s\" reason=%s",
		  ip && ip[0] ? ip : "-", xcap_authlog_escape(user, u, sizeof(u)),
		  xcap_authlog_escape(realm, r, sizeof(r)), reason);
}
