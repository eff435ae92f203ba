/* pres_timer: the cluster-wide presence timers. Every registrar polls the ZSET
 * <c>:{pres}:timers every timer_interval; one script takes the due members out
 * (ZRANGEBYSCORE + ZREM in one step), so exactly one registrar handles each and a
 * restart of every registrar loses none that is still in Redis. Members:
 *   s|<aor>|<id>    subscription expiry (pres_sub.c)
 *   p|<aor>|<etag>  publication expiry (pres_publish.c)
 *   n|<aor>|<pkg>   the NOTIFY round deferred by throttling (pres_notify.c)
 *   m|<aor>|<id>    stored message expiry (pres_im.c)
 * A member popped by a registrar that dies before handling it is lost; the NOTIFY
 * round purges subscriptions found long expired (pres_notify.c), publications and
 * messages carry their own expiry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include <uv.h>
#include "skein/sk_bus.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"
#include "skein/sk_redis.h"
#include "reg.h"
#include "pres_int.h"

SK_LOG_MODULE("pres");

static void fire(struct registrar *r, const char *m, size_t len)
{
	char kind, aor[PRES_KEY_MAX], id[256];

	if (!pres_timer_parse(m, len, &kind, aor, sizeof(aor), id, sizeof(id))) {
		SK_WARN("presence timer: malformed member dropped (%zu bytes)", len);
		return;
	}
	sk_counter_inc(r->pres->m.timers);
	SK_DEBUG("presence timer %c %s %s", kind, aor, id);
	switch (kind) {
	case 's':
		pres_sub_expire(r, aor, id);
		break;
	case 'p':
		pres_publish_expire(r, aor, id);
		break;
	case 'n': {
		int p = pres_pkg_from_event(id);

		if (p >= 0)
			pres_changed_now(r, (enum pres_pkg)p, aor);
		break;
	}
	case 'm':
		pres_im_expire(r, aor);
		break;
	default:
		SK_WARN("presence timer: unknown kind '%c' (%s)", kind, aor);
	}
}

static void poll_once(struct registrar *r);

static void on_pop(int err, struct redisReply *reply, void *arg)
{
	struct pres_agent *pa = arg;
	struct registrar *r = pa->r;
	size_t n = 0;

	pa->popping = false;
	if (!err && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		     reply->element[1]->type != REDIS_REPLY_ARRAY))
		err = SK_EPROTO;
	if (err) {
		if (err != SK_ECANCELED && err != SK_ENOTCONN)
			SK_WARN("presence timers: %s", sk_strerror(err));
		if (err != SK_ECANCELED)
			sk_counter_inc(pa->m.timer_errors);
		sk_deref(pa);
		return;
	}
	n = reply->element[1]->elements;
	for (size_t i = 0; i < n; i++) {
		const struct redisReply *m = reply->element[1]->element[i];

		if (m->type == REDIS_REPLY_STRING)
			fire(r, m->str, m->len);
	}
	/* A full batch: more may be due; go on now rather than a tick later. */
	if (n >= PRES_TIMER_BATCH && !pa->stopped)
		poll_once(r);
	sk_deref(pa);
}

static void poll_once(struct registrar *r)
{
	struct pres_agent *pa = r->pres;
	char batch[16];
	const char *argv[] = {pa->timers_key, batch};
	int err;

	snprintf(batch, sizeof(batch), "%d", PRES_TIMER_BATCH);
	if (pa->popping || pa->stopped)
		return;
	/* Just started (or every edge gone): no edge known yet to send a NOTIFY through.
	 * A popped expiry would send its final NOTIFY nowhere and lose it; the timers
	 * wait in Redis until an edge is seen. */
	if (!sk_bus_peer_count(sk_daemon_bus(r->d), "edge"))
		return;
	pa->popping = true;
	err = sk_redis_eval(pa->s_pop, on_pop, sk_ref(pa), 1, 2, argv, NULL);
	if (err) { /* Redis down: try again at the next tick */
		pa->popping = false;
		sk_deref(pa);
	}
}

static void on_tick(uv_timer_t *t)
{
	poll_once(t->data);
}

static void on_close(uv_handle_t *h)
{
	free(h);
}

int pres_timer_start(struct registrar *r)
{
	uv_timer_t *t = calloc(1, sizeof(*t));
	uint64_t iv = r->conf->timer_interval ? r->conf->timer_interval : 500;

	if (!t)
		return SK_ENOMEM;
	uv_timer_init(sk_daemon_loop(r->d), t);
	t->data = r;
	r->pres->timer = t;
	return uv_timer_start(t, on_tick, iv, iv);
}

void pres_timer_stop(struct registrar *r)
{
	uv_timer_t *t = r->pres->timer;

	if (!t)
		return;
	r->pres->timer = NULL;
	uv_timer_stop(t);
	uv_close((uv_handle_t *)t, on_close);
}
