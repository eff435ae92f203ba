/* Small system helpers: the wall clock, directory creation. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/stat.h>
#include "skein/sk_sys.h"
#include "skein/sk_err.h"

uint64_t sk_sys_unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int sk_sys_mkdirs(const char *path)
{
	char tmp[PATH_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%s", path);

	if (n < 0 || (size_t)n >= sizeof(tmp))
		return SK_ERANGE;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

uv_timer_t *sk_sys_timer_start(uv_loop_t *loop, uv_timer_cb cb, void *data, uint64_t first_ms,
			       uint64_t repeat_ms)
{
	uv_timer_t *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	uv_timer_init(loop, t);
	t->data = data;
	uv_timer_start(t, cb, first_ms, repeat_ms);
	return t;
}

static void timer_free(uv_handle_t *h)
{
	free(h);
}

uv_timer_t *sk_sys_timer_close(uv_timer_t *t)
{
	if (t)
		uv_close((uv_handle_t *)t, timer_free);
	return NULL;
}
