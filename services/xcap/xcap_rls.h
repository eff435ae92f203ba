/* xcap_rls: the server-wide uniqueness of rls-services service URIs (RFC 4826 §4.4.3
 * and §4.4.4 on RFC 4825 §8.2.5): before an rls-services document is written, every
 * <service uri> it defines is looked up in the resource list server's index,
 *
 *   <c>:{pres}:rls   HASH "list user@domain" -> "owner user@domain"
 *
 * (kept by the registrar after each write, services/registrar/pres_rls_doc.c), and in
 * the credentials (<c>:{user@domain}:cred): a URI owned by another user, or that is a
 * provisioned user's address, makes the write a 409 <uniqueness-failure>.
 *
 * This is a read before the compare-and-set, not part of it: two users writing the
 * same new URI at the same moment may both pass. The index script then settles it
 * (the first owner keeps the list; the other's service is ignored and logged), and
 * the loser's next write of that document gets the 409. */
#ifndef SKEIN_XCAP_RLS_H
#define SKEIN_XCAP_RLS_H

#include <stddef.h>
#include "xcap_error.h"

struct sk_redis;

/* c NULL: no conflict, the write may go on. err: Redis failed (c NULL). c is
 * borrowed for the call. */
typedef void(xcap_rls_cb)(int err, const struct xcap_conflict *c, void *arg);

/* Checks the service URIs of the rls-services document doc[0..len) that owner
 * ("user@domain", normalised) wants to write. 0: cb fires once, later. SK_ENOENT:
 * nothing to check (no sip:/sips: service URI, or not an rls-services document);
 * cb does not fire. Other errors: cb does not fire. */
int xcap_rls_check(struct sk_redis *redis, const char *cluster, const char *owner, const char *doc,
		   size_t len, xcap_rls_cb *cb, void *arg);


#endif
