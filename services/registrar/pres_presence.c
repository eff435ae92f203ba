/* STUB (contract): replaced by the PUBLISH / presence package work. */
#include <stddef.h>
#include "skein/sk_err.h"
#include "reg.h"
#include "pres.h"

const struct pres_pkg_ops pres_ops_presence = {.event = "presence", .ctype = "application/pidf+xml"};
const struct pres_pkg_ops pres_ops_winfo = {.event = "presence.winfo", .ctype = "application/watcherinfo+xml", .owner_only = true};
void pres_xcap_changed(void *arg, const char *xui, const char *auid, const char *doc)
{ (void)arg; (void)xui; (void)auid; (void)doc; }
