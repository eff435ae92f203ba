/* Private to the config module: shared by conf.c (loading) and conf_doc.c (printing). */
#ifndef SK_CONF_INT_H
#define SK_CONF_INT_H

#include <stddef.h>
#include <stdint.h>

/* SKEIN_<SECTION>_<KEY>, upper-cased ASCII. */
void sk_conf_env_name(char *buf, size_t size, const char *sec, const char *key);
/* The shortest exact unit: "3s", "1500ms", "2m". */
int sk_conf_duration_print(uint64_t ms, char *buf, size_t size);

#endif
