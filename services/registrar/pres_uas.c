/* STUB (contract): replaced by the subscription-engine work. */
#include <stddef.h>
#include "skein/sk_err.h"
#include "reg.h"
#include "pres.h"

int pres_pkg_from_event(const char *event) { (void)event; return -1; }
const char *pres_pkg_event(enum pres_pkg p) { (void)p; return ""; }
int pres_start(struct registrar *r) { (void)r; return 0; }
void pres_stop(struct registrar *r) { (void)r; }
void pres_answer(struct sk_bus_req *req, unsigned code, const char *reason,
		 const char *const *headers, const char *ctype, const void *body, size_t len)
{ (void)req; (void)code; (void)reason; (void)headers; (void)ctype; (void)body; (void)len; }
const struct pres_pkg_ops *pres_pkg_ops(enum pres_pkg p) { (void)p; return NULL; }
