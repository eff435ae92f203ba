/* STUB (contract): replaced by the subscription-engine work. */
#include <stddef.h>
#include "skein/sk_err.h"
#include "reg.h"
#include "pres.h"

void pres_changed(struct registrar *r, enum pres_pkg pkg, const char *aor) { (void)r; (void)pkg; (void)aor; }
