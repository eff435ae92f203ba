/* The loop harness of the unit tests that drive a libuv loop: a guard timer bounds
 * every wait, WAIT_UNTIL runs the loop until a condition holds or fails the case,
 * t_done checks that every handle was closed. The includer defines `struct t` with
 * at least the members `uv_loop_t loop; uv_timer_t guard; bool expired;` before
 * including this file. */
#ifndef SK_TEST_LOOP_H
#define SK_TEST_LOOP_H

#include <string.h>
#include <uv.h>

static void guard_cb(uv_timer_t *h)
{
	((struct t *)h->data)->expired = true;
}

static void t_init(struct t *t)
{
	memset(t, 0, sizeof(*t));
	assert_int_equal(uv_loop_init(&t->loop), 0);
	uv_timer_init(&t->loop, &t->guard);
	t->guard.data = t;
}

static void t_arm(struct t *t, uint64_t ms)
{
	t->expired = false;
	uv_update_time(&t->loop);
	uv_timer_start(&t->guard, guard_cb, ms, 0);
}

/* Run the loop until expr holds; fail the case after ms. */
#define WAIT_UNTIL(t, expr, ms)                                                                    \
	do {                                                                                       \
		t_arm((t), (ms));                                                                  \
		while (!(expr) && !(t)->expired)                                                   \
			uv_run(&(t)->loop, UV_RUN_ONCE);                                           \
		uv_timer_stop(&(t)->guard);                                                        \
		if (!(expr))                                                                       \
			fail_msg("timed out after %d ms waiting for: %s", (int)(ms), #expr);       \
	} while (0)

/* Run the loop for a fixed window (to check that something does NOT happen). */
static void t_run_for(struct t *t, uint64_t ms)
{
	t_arm(t, ms);
	while (!t->expired)
		uv_run(&t->loop, UV_RUN_ONCE);
}

static void stop_cb(uv_timer_t *h)
{
	uv_stop(h->loop);
}

static void walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	print_error("handle still open: %s\n", uv_handle_type_name(h->type));
}

/* Everything is closed by now: run until the handles are gone (bounded). */
static void t_done(struct t *t)
{
	uv_timer_stop(&t->guard);
	uv_timer_start(&t->guard, stop_cb, 3000, 0);
	uv_unref((uv_handle_t *)&t->guard);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&t->guard, NULL);
	uv_run(&t->loop, UV_RUN_NOWAIT);
	if (uv_loop_close(&t->loop)) {
		uv_walk(&t->loop, walk_cb, NULL);
		fail_msg("loop still has handles after close");
	}
}

#endif
