/* sk_sys: small system helpers shared by the daemons and tools. */
#ifndef SK_SYS_H
#define SK_SYS_H

#include <stdint.h>

/* Wall-clock time in unix milliseconds (for deadlines and timestamps that cross
 * processes; loop timers use uv_now). */
uint64_t sk_sys_unix_ms(void);
/* mkdir -p with mode 0755: 0, SK_ERANGE for a path too long, or -errno. */
int sk_sys_mkdirs(const char *path);

#endif
