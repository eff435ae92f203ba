/* xcap_authlog: the one line per failed XCAP digest authentication, in the SIP
 * edge's format and under its log module ("auth"), so that the fail2ban filter
 * shipped for the edge (deploy/fail2ban/filter.d/skein-edge.conf) bans password
 * guessing over XCAP too, from the registrar's log:
 *   auth-failure src=<ip> user="<user>" realm="<realm>" reason=<reason>
 * user and realm come from the client: '"', '\\' and bytes outside printable ASCII
 * are written \xNN (sk_log_escape), so a value can never end the quoted string or
 * start a line. */
#ifndef SKEIN_XCAP_AUTHLOG_H
#define SKEIN_XCAP_AUTHLOG_H

#include <stddef.h>

void xcap_authlog_failure(const char *ip, const char *user, const char *realm,
			  const char *reason);

#endif
