/* STUB (contract): replaced by the reg / message-summary / IM work. */
#include <stddef.h>
#include "skein/sk_err.h"
#include "reg.h"
#include "pres.h"

const struct pres_pkg_ops pres_ops_reg = {.event = "reg", .ctype = "application/reginfo+xml", .owner_only = true};
