/* sk_sys: small system helpers shared by the daemons and tools. */
#ifndef SK_SYS_H
#define SK_SYS_H

#include <stdint.h>
#include <uv.h>

/* Wall-clock time in unix milliseconds (for deadlines and timestamps that cross
 * processes; loop timers use uv_now). */
uint64_t sk_sys_unix_ms(void);
/* mkdir -p with mode 0755: 0, SK_ERANGE for a path too long, or -errno. */
int sk_sys_mkdirs(const char *path);
/* A timer allocated apart (STYLE: a handle is freed in its close callback), started
 * with first_ms and repeat_ms; data is its handle's data. NULL when out of memory. */
uv_timer_t *sk_sys_timer_start(uv_loop_t *loop, uv_timer_cb cb, void *data, uint64_t first_ms,
			       uint64_t repeat_ms);
/* Stops and closes a timer of sk_sys_timer_start; it is freed by its close callback.
 * NULL is fine. Returns NULL (for `t = sk_sys_timer_close(t)`). */
uv_timer_t *sk_sys_timer_close(uv_timer_t *t);

#endif
