/* STUB (contract): replaced by the reg / message-summary / IM work. */
#include <stddef.h>
#include "skein/sk_err.h"
#include "reg.h"
#include "pres.h"

void pres_im_store(struct registrar *r, struct sk_bus_req *req, const Skein__Sip__V1__UasRequest *rq)
{ (void)r; (void)req; (void)rq; }
void pres_im_registered(struct registrar *r, const struct pres_binding_ref *b) { (void)r; (void)b; }
void pres_im_expire(struct registrar *r, const char *aor) { (void)r; (void)aor; }
