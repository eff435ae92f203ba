/* STUB (contract): replaced by the PUBLISH / presence package work. */
#include <stddef.h>
#include "skein/sk_err.h"
#include "reg.h"
#include "pres.h"

void pres_publish(struct registrar *r, struct sk_bus_req *req, const Skein__Sip__V1__UasRequest *rq)
{ (void)r; (void)req; (void)rq; }
void pres_publish_expire(struct registrar *r, const char *aor, const char *etag)
{ (void)r; (void)aor; (void)etag; }
