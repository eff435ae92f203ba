/* STUB (contract): replaced by the reg / message-summary / IM work. */
#include <stddef.h>
#include "skein/sk_err.h"
#include "reg.h"
#include "pres.h"

const struct pres_pkg_ops pres_ops_mwi = {.event = "message-summary", .ctype = "application/simple-message-summary", .owner_only = true};
