/* pres_sub_end: subscriptions that end or change without a SUBSCRIBE — expiry
 * (timer "s|<aor>|<id>", RFC 6665 §4.2.2 final NOTIFY "timeout") and the
 * re-authorization of a presentity's watchers when its pres-rules change (RFC 5025
 * §3.2.1: pending -> active, or terminated "rejected"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"
#include "skein/sk_redis.h"
#include "reg.h"
#include "pres_int.h"

SK_LOG_MODULE("pres");

/* ---- expiry (timer "s|<aor>|<id>") ---- */

struct expire {
	struct registrar *r;
	struct pres_agent *pa;
	char aor[];
};

static void on_expire_get(int err, struct redisReply *reply, void *arg)
{
	struct expire *e = arg;
	const char *packed;
	size_t len;
	uint64_t now;

	if (!err)
		err = pres_sub_get_parse(reply, &now, &packed, &len);
	if (err) {
		if (err != SK_ECANCELED)
			SK_WARN("subscription expiry of %s: %s", e->aor, sk_strerror(err));
	} else if (packed) {
		Skein__Sip__V1__Subscription *s = pres_sub_unpack(packed, len);
		const struct pres_pkg_ops *ops = s ? pres_sub_ops(s) : NULL;

		if (!ops) {
			SK_WARN("subscription of %s: corrupt record", e->aor);
			pres_sub_free(s);
		} else if (s->expires_at_ms > now) {
			/* refreshed since this timer was read: keep its new one */
			pres_timer_arm(e->r, 's', s->resource, s->id, s->expires_at_ms, false);
			pres_sub_free(s);
		} else {
			/* RFC 6665 §4.2.2: the final NOTIFY, terminated;reason=timeout */
			struct pres_target t = {
			    .s = s, .final = "timeout", .why = PRES_END_TIMEOUT};

			SK_DEBUG("subscription %s %s watcher=%s expired", s->event, s->resource,
				 s->watcher);
			pres_notify_subs(e->r, ops, e->aor, now, &t, 1);
		}
	}
	sk_deref(e->pa);
	free(e);
}

void pres_sub_expire(struct registrar *r, const char *aor, const char *id)
{
	char key[PRES_KEY_MAX];
	const char *argv[] = {key, id};
	size_t n = strlen(aor) + 1;
	struct expire *e;

	if (pres_key(key, sizeof(key), r, aor, "subs"))
		return;
	e = malloc(sizeof(*e) + n);
	if (!e)
		return;
	e->r = r;
	e->pa = sk_ref(r->pres);
	memcpy(e->aor, aor, n);
	if (sk_redis_eval(r->pres->s_get, on_expire_get, e, 1, 2, argv, NULL)) {
		/* Redis down: put the timer back for a later poll */
		pres_timer_arm(r, 's', aor, id, 0, false);
		sk_deref(e->pa);
		free(e);
	}
}

/* ---- re-authorization (pres-rules changed) ---- */

struct reauth {
	struct registrar *r;
	struct pres_agent *pa;
	Skein__Sip__V1__Subscription *s; /* as stored */
	uint8_t *packed;		 /* the new record */
	size_t plen;
	uint64_t now;
};

static void reauth_free(struct reauth *ra)
{
	pres_sub_free(ra->s);
	free(ra->packed);
	sk_deref(ra->pa);
	free(ra);
}

static void on_reauth_put(int err, struct redisReply *reply, void *arg)
{
	struct reauth *ra = arg;
	Skein__Sip__V1__Subscription *s;

	if (!err && (reply->type != REDIS_REPLY_INTEGER || reply->integer != 0))
		err = reply->type == REDIS_REPLY_INTEGER ? SK_EAGAIN : SK_EPROTO;
	if (err) {
		/* changed or ended meanwhile (a refresh, an unsubscribe): the next rules
		 * change or refresh carries on; a lost update is a stale state only */
		if (err != SK_ECANCELED)
			SK_NOTICE("subscription %s of %s not re-authorized: %s", ra->s->id,
				  ra->s->resource, sk_strerror(err));
	} else if ((s = pres_sub_unpack(ra->packed, ra->plen))) {
		struct pres_target t = {.s = s};

		SK_INFO("subscription presence %s watcher=%s now %s", s->resource, s->watcher,
			s->state);
		pres_notify_subs(ra->r, &pres_ops_presence, s->resource, ra->now, &t, 1);
		pres_changed(ra->r, PRES_PKG_WINFO, s->resource);
	}
	reauth_free(ra);
}

static void on_reauth(int err, const char *state, const char *reason, void *arg)
{
	struct reauth *ra = arg;
	Skein__Sip__V1__Subscription *s = ra->s, upd;
	char key[PRES_KEY_MAX], max[24];
	const char *argv[5];
	size_t lens[5], oldlen;
	uint8_t *old = NULL;

	if (err || !state || !strcmp(state, s->state)) {
		reauth_free(ra);
		return;
	}
	if (!strcmp(state, "terminated")) {
		/* RFC 6665 §4.2.2 / RFC 3857 §5.2: the final NOTIFY, reason rejected (its
		 * sequence script removes the record; the winfo watchers hear of it) */
		struct pres_target t = {.s = s,
					.final = reason && reason[0] ? reason : "rejected",
					.why = PRES_END_REJECTED};

		SK_INFO("subscription presence %s watcher=%s: authorization withdrawn", s->resource,
			s->watcher);
		ra->s = NULL;
		pres_notify_subs(ra->r, &pres_ops_presence, s->resource, ra->now, &t, 1);
		reauth_free(ra);
		return;
	}
	upd = *s;
	upd.state = (char *)state;
	/* pending -> active is the winfo event "approved" (RFC 3857, RFC 3858) */
	upd.reason = (char *)(!strcmp(s->state, "pending") && !strcmp(state, "active") ? "approved"
			      : reason						       ? reason
										       : "");
	ra->plen = skein__sip__v1__subscription__get_packed_size(&upd);
	ra->packed = malloc(ra->plen ? ra->plen : 1);
	oldlen = skein__sip__v1__subscription__get_packed_size(s);
	old = malloc(oldlen ? oldlen : 1);
	if (!ra->packed || !old || pres_key(key, sizeof(key), ra->r, s->resource, "subs")) {
		free(old);
		reauth_free(ra);
		return;
	}
	skein__sip__v1__subscription__pack(&upd, ra->packed);
	skein__sip__v1__subscription__pack(s, old);
	snprintf(max, sizeof(max), "%lld", (long long)ra->r->conf->max_watchers);
	argv[0] = key, lens[0] = strlen(key);
	argv[1] = s->id, lens[1] = strlen(s->id);
	argv[2] = (const char *)old, lens[2] = oldlen;
	argv[3] = (const char *)ra->packed, lens[3] = ra->plen;
	argv[4] = max, lens[4] = strlen(max);
	if (sk_redis_eval(ra->pa->s_put, on_reauth_put, ra, 1, 5, argv, lens))
		reauth_free(ra);
	free(old);
}

static void on_reauth_subs(int err, uint64_t now, Skein__Sip__V1__Subscription **subs, size_t n,
			   void *arg)
{
	struct pres_agent *pa = arg;
	struct registrar *r = pa->r;

	if (err && err != SK_ECANCELED)
		SK_WARN("re-authorization: %s", sk_strerror(err));
	for (size_t i = 0; i < n; i++) {
		Skein__Sip__V1__Subscription *s = subs[i];
		struct reauth *ra;

		if (s->eventlist || pres_pkg_from_event(s->event) != PRES_PKG_PRESENCE ||
		    !strcmp(s->state, "terminated") || !(ra = calloc(1, sizeof(*ra)))) {
			pres_sub_free(s);
			continue;
		}
		ra->r = r;
		ra->pa = sk_ref(pa);
		ra->s = s;
		ra->now = now;
		if (pres_ops_presence.authorize(r, s, on_reauth, ra))
			reauth_free(ra);
	}
	free(subs);
	sk_deref(pa);
}

void pres_reauthorize(struct registrar *r, const char *aor)
{
	if (!r || !r->pres || r->pres->stopped || !aor || !pres_ops_presence.authorize)
		return;
	if (pres_subs_load(r, aor, on_reauth_subs, sk_ref(r->pres))) {
		SK_WARN("re-authorization of %s's watchers: redis down", aor);
		sk_deref(r->pres);
	}
}
