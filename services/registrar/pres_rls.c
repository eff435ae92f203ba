/* STUB (contract): replaced by the resource-list (RLS) work. */
#include <stddef.h>
#include "skein/sk_err.h"
#include "reg.h"
#include "pres.h"

const struct pres_pkg_ops pres_ops_rls = {.event = "presence", .ctype = "multipart/related"};
int pres_rls_lookup(struct registrar *r, const char *aor, pres_rls_cb *cb, void *arg)
{ (void)r; (void)aor; (void)cb; (void)arg; return SK_ENOTSUP; }
void pres_rls_subscribed(struct registrar *r, const Skein__Sip__V1__Subscription *s, bool live)
{ (void)r; (void)s; (void)live; }
void pres_rls_member_changed(struct registrar *r, const char *member) { (void)r; (void)member; }
void pres_rls_docs_changed(struct registrar *r, const char *owner) { (void)r; (void)owner; }
