/* pres_notify: a change of (resource, package) becomes NOTIFYs (RFC 6665 §4.2.2):
 * throttling to one round per notify_interval (later changes coalesced by a timer),
 * one state fetch per round shared by every subscription, the NOTIFY text with a
 * CSeq and document version counted in Redis, sending through an edge, and the end
 * of a subscription whose NOTIFY fails (481, 408, ... §4.2.2). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <hiredis/hiredis.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"
#include "skein/sk_redis.h"
#include "reg.h"
#include "pres_int.h"

SK_LOG_MODULE("pres");

/* A subscription found expired by this much in a round (its timer was lost with a
 * registrar that popped it and died) ends there. */
#define EXPIRED_GRACE_MS 2000

void pres_sub_free(Skein__Sip__V1__Subscription *s)
{
	if (s)
		skein__sip__v1__subscription__free_unpacked(s, NULL);
}

/* An owned copy (unpacked from its packing). */
static Skein__Sip__V1__Subscription *sub_dup(const Skein__Sip__V1__Subscription *s)
{
	size_t len = skein__sip__v1__subscription__get_packed_size(s);
	uint8_t *buf = malloc(len ? len : 1);
	Skein__Sip__V1__Subscription *c = NULL;

	if (buf) {
		skein__sip__v1__subscription__pack(s, buf);
		c = skein__sip__v1__subscription__unpack(NULL, len, buf);
		free(buf);
	}
	return c;
}

/* ---- loading every subscription of a resource ---- */

struct load {
	struct pres_agent *pa;
	pres_subs_cb *cb;
	void *arg;
};

static void on_all(int err, struct redisReply *reply, void *arg)
{
	struct load *l = arg;
	Skein__Sip__V1__Subscription **subs = NULL;
	uint64_t now = 0;
	size_t n = 0;

	if (!err && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		     reply->element[0]->type != REDIS_REPLY_INTEGER ||
		     reply->element[1]->type != REDIS_REPLY_ARRAY))
		err = SK_EPROTO;
	if (!err) {
		const struct redisReply *a = reply->element[1];

		now = (uint64_t)reply->element[0]->integer;
		subs = calloc(a->elements / 2 + 1, sizeof(*subs));
		if (!subs)
			err = SK_ENOMEM;
		for (size_t i = 0; subs && i + 1 < a->elements; i += 2) {
			const struct redisReply *v = a->element[i + 1];

			if (v->type != REDIS_REPLY_STRING)
				continue;
			subs[n] = skein__sip__v1__subscription__unpack(NULL, v->len,
								       (const uint8_t *)v->str);
			if (subs[n])
				n++;
			else
				SK_WARN("subscription %.*s: corrupt record skipped",
					(int)a->element[i]->len, a->element[i]->str);
		}
	}
	l->cb(err, now, subs, n, l->arg);
	sk_deref(l->pa);
	free(l);
}

int pres_subs_load(struct registrar *r, const char *aor, pres_subs_cb *cb, void *arg)
{
	char key[PRES_KEY_MAX];
	const char *argv[] = {key};
	struct load *l;
	int err = pres_key(key, sizeof(key), r, aor, "subs");

	if (err)
		return err;
	l = calloc(1, sizeof(*l));
	if (!l)
		return SK_ENOMEM;
	l->pa = sk_ref(r->pres);
	l->cb = cb;
	l->arg = arg;
	err = sk_redis_eval(r->pres->s_all, on_all, l, 1, 1, argv, NULL);
	if (err) {
		sk_deref(l->pa);
		free(l);
	}
	return err;
}

/* ---- ending a subscription ---- */

void pres_sub_ended(struct registrar *r, const Skein__Sip__V1__Subscription *s,
		    enum pres_end_reason why)
{
	struct pres_agent *pa = r->pres;

	if ((unsigned)why < PRES_END_MAX_)
		sk_counter_inc(pa->m.ended[why]);
	pres_timer_disarm(r, 's', s->resource, s->id);
	if (s->eventlist)
		pres_rls_subscribed(r, s, false);
	else if (pres_pkg_from_event(s->event) == PRES_PKG_PRESENCE)
		pres_changed(r, PRES_PKG_WINFO,
			     s->resource); /* RFC 3857: winfo watchers hear of it */
}

struct del {
	struct registrar *r;
	struct pres_agent *pa;
	Skein__Sip__V1__Subscription *s;
	enum pres_end_reason why;
};

static void on_del(int err, struct redisReply *reply, void *arg)
{
	struct del *d = arg;

	if (err) {
		if (err != SK_ECANCELED)
			SK_WARN("subscription %s of %s not removed: %s", d->s->id, d->s->resource,
				sk_strerror(err));
	} else if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
		pres_sub_ended(d->r, d->s, d->why);
	}
	pres_sub_free(d->s);
	sk_deref(d->pa);
	free(d);
}

void pres_sub_delete(struct registrar *r, const Skein__Sip__V1__Subscription *s,
		     enum pres_end_reason why)
{
	char subs[PRES_KEY_MAX], pstate[PRES_KEY_MAX];
	const char *argv[] = {subs, pstate, s->id};
	struct del *d;

	if (pres_key(subs, sizeof(subs), r, s->resource, "subs") ||
	    pres_key(pstate, sizeof(pstate), r, s->resource, "pstate"))
		return;
	d = calloc(1, sizeof(*d));
	if (!d || !(d->s = sub_dup(s))) {
		free(d);
		return;
	}
	d->r = r;
	d->pa = sk_ref(r->pres);
	d->why = why;
	if (sk_redis_eval(r->pres->s_del, on_del, d, 2, 3, argv, NULL)) {
		SK_WARN("subscription %s of %s not removed: redis down", s->id, s->resource);
		pres_sub_free(d->s);
		sk_deref(d->pa);
		free(d);
	}
}

/* ---- a round of NOTIFYs ---- */

struct round {
	struct registrar *r;
	struct pres_agent *pa;
	const struct pres_pkg_ops *ops;
	char *aor;
	uint64_t now;
	struct pres_target *t;
	size_t n;
	void *state;
	bool fetch_failed;
};

struct send {
	struct round *rd; /* a reference */
	size_t i;
};

static void round_destroy(void *data)
{
	struct round *rd = data;

	for (size_t i = 0; i < rd->n; i++)
		pres_sub_free(rd->t[i].s);
	free(rd->t);
	sk_deref(rd->state);
	sk_deref(rd->aor);
	sk_deref(rd->pa);
}

static bool wants_body(const struct pres_target *t)
{
	return (!t->final || t->body_final) && !strcmp(t->s->state, "active");
}

static bool ends_dialog(int err, unsigned code)
{
	/* RFC 6665 §4.2.2: these (and no answer at all) end the subscription */
	return err || code == 481 || code == 408 || code == 404 || code == 410 || code == 480 ||
	       code == 503;
}

static void on_sent(int err, unsigned code, const Skein__Sip__V1__OriginateReply *rep, void *arg)
{
	struct send *sd = arg;
	struct round *rd = sd->rd;
	const struct pres_target *t = &rd->t[sd->i];
	const Skein__Sip__V1__Subscription *s = t->s;
	struct pres_agent *pa = rd->pa;

	if (!err && code >= 200 && code < 300) {
		sk_counter_inc(pa->m.notify[PRES_NOTIFY_OK]);
		SK_DEBUG("NOTIFY %s %s -> %s: %u", s->event, s->resource, s->watcher, code);
	} else if (t->final || t->transient) {
		/* already gone: nothing more to end */
		sk_counter_inc(pa->m.notify[PRES_NOTIFY_REFUSED]);
		SK_NOTICE("final NOTIFY %s resource=%s watcher=%s failed: %u%s%s", s->event,
			  s->resource, s->watcher, code, err ? " " : "",
			  err ? sk_strerror(err) : "");
	} else if (ends_dialog(err, code)) {
		sk_counter_inc(pa->m.notify[PRES_NOTIFY_ENDED]);
		SK_NOTICE("NOTIFY %s resource=%s watcher=%s failed: %u%s%s; subscription ended",
			  s->event, s->resource, s->watcher, code, err ? " " : "",
			  err ? sk_strerror(err) : "");
		pres_sub_delete(rd->r, s, PRES_END_FAILED);
	} else {
		sk_counter_inc(pa->m.notify[PRES_NOTIFY_REFUSED]);
		SK_NOTICE("NOTIFY %s resource=%s watcher=%s answered %u %s", s->event, s->resource,
			  s->watcher, code, rep && rep->reason ? rep->reason : "");
	}
	sk_deref(rd);
	free(sd);
}

static void send_now(struct send *sd, uint32_t cseq, uint32_t version)
{
	struct round *rd = sd->rd;
	struct pres_target *t = &rd->t[sd->i];
	Skein__Sip__V1__Subscription *s = t->s;
	const struct pres_pkg_ops *ops = rd->ops;
	char substate[128], *body = NULL, *ctype = NULL;
	const char *dest = "";
	size_t len = 0;
	struct sk_buf b;
	bool unwritable = false;
	int err = 0;

	if (t->final)
		err = pres_substate(substate, sizeof(substate), "terminated", t->final, 0, 0);
	else
		err = pres_substate(substate, sizeof(substate), s->state, s->reason,
				    s->expires_at_ms, rd->now);
	if (!err && wants_body(t) && rd->state && ops->body) {
		s->version = version; /* RFC 3858, RFC 3680, RFC 4662: 0 first */
		err = ops->body(rd->r, rd->state, s, &body, &len);
		if (err == SK_ENOENT)
			err = 0; /* a NOTIFY without a body (e.g. polite-block, pending) */
		else if (err)
			SK_WARN("NOTIFY %s resource=%s watcher=%s: no body: %s", s->event,
				s->resource, s->watcher, sk_strerror(err));
		if (err && t->final)
			err = 0; /* the final NOTIFY goes anyway */
		/* a multipart/related body has its own parameters (RFC 2387: type, start;
		 * a new boundary each time) */
		if (body && ops->ctype_of && ops->ctype_of(rd->r, rd->state, s, &ctype))
			ctype = NULL;
	}
	sk_buf_init(&b);
	if (!err) {
		err = pres_notify_text(&b, s, cseq, substate,
				       body ? (ctype ? ctype : ops->ctype) : NULL, body, len);
		unwritable = err == SK_EINVAL;
	}
	sk_deref(body);
	sk_deref(ctype);
	if (!strcasecmp(s->transport, "udp") && !s->flow[0])
		dest = s->source; /* NAT: back where the SUBSCRIBE came from */
	if (!err)
		err = pres_originate(rd->r, s->edge, s->flow, s->transport, dest, b.data, b.len,
				     on_sent, sd);
	sk_buf_release(&b);
	if (err) {
		sk_counter_inc(rd->pa->m.notify[PRES_NOTIFY_ERROR]);
		SK_NOTICE("NOTIFY %s resource=%s watcher=%s not sent: %s", s->event, s->resource,
			  s->watcher, sk_strerror(err));
		/* A record we can never write a NOTIFY for goes. Not when no edge is up
		 * right now (a rolling restart): the next change or refresh tries again. */
		if (unwritable && !t->final && !t->transient)
			pres_sub_delete(rd->r, s, PRES_END_FAILED);
		sk_deref(rd);
		free(sd);
	}
}

static void on_seq(int err, struct redisReply *reply, void *arg)
{
	struct send *sd = arg;
	struct round *rd = sd->rd;
	struct pres_target *t = &rd->t[sd->i];

	if (!err && reply->type != REDIS_REPLY_ARRAY)
		err = SK_EPROTO;
	if (!err && reply->elements < 2) { /* gone meanwhile (another registrar ended it) */
		SK_DEBUG("NOTIFY %s %s -> %s: subscription gone", t->s->event, t->s->resource,
			 t->s->watcher);
		sk_deref(rd);
		free(sd);
		return;
	}
	if (err) {
		if (err != SK_ECANCELED)
			SK_WARN("NOTIFY %s resource=%s watcher=%s: redis: %s", t->s->event,
				t->s->resource, t->s->watcher, sk_strerror(err));
		sk_counter_inc(rd->pa->m.notify[PRES_NOTIFY_ERROR]);
		sk_deref(rd);
		free(sd);
		return;
	}
	if (t->final)
		pres_sub_ended(rd->r, t->s, t->why);
	send_now(sd, (uint32_t)reply->element[0]->integer, (uint32_t)reply->element[1]->integer);
}

static void send_one(struct round *rd, size_t i)
{
	struct pres_target *t = &rd->t[i];
	struct send *sd;
	char subs[PRES_KEY_MAX], pstate[PRES_KEY_MAX];
	const char *argv[] = {subs, pstate, t->s->id, wants_body(t) ? "1" : "0",
			      t->final ? "1" : "0"};
	int err;

	if (!t->final && !strcmp(t->s->state, "active") && rd->fetch_failed) {
		/* an active NOTIFY without the state would say "nothing": wait for the next
		 * change (the watcher keeps what it had) */
		sk_counter_inc(rd->pa->m.notify[PRES_NOTIFY_ERROR]);
		return;
	}
	sd = calloc(1, sizeof(*sd));
	if (!sd)
		return;
	sd->rd = sk_ref(rd);
	sd->i = i;
	if (t->transient) {
		send_now(sd, 1, 0);
		return;
	}
	err = pres_key(subs, sizeof(subs), rd->r, t->s->resource, "subs");
	if (!err)
		err = pres_key(pstate, sizeof(pstate), rd->r, t->s->resource, "pstate");
	if (!err)
		err = sk_redis_eval(rd->pa->s_seq, on_seq, sd, 2, 5, argv, NULL);
	if (err) {
		sk_counter_inc(rd->pa->m.notify[PRES_NOTIFY_ERROR]);
		SK_NOTICE("NOTIFY %s resource=%s watcher=%s not sent: %s", t->s->event,
			  t->s->resource, t->s->watcher, sk_strerror(err));
		sk_deref(rd);
		free(sd);
	}
}

static void round_send(struct round *rd)
{
	for (size_t i = 0; i < rd->n; i++)
		send_one(rd, i);
}

static void on_fetch(int err, void *state, void *arg)
{
	struct round *rd = arg;

	if (err == SK_ENOENT && rd->ops == &pres_ops_rls) {
		/* the list was removed from its rls-services document: its subscriptions
		 * end (RFC 6665 §4.1.3 "noresource"; RFC 4662 §4.4) */
		for (size_t i = 0; i < rd->n; i++) {
			rd->t[i].final = "noresource";
			rd->t[i].why = PRES_END_NORESOURCE;
		}
		sk_deref(state);
	} else if (err) {
		rd->fetch_failed = true;
		if (err != SK_ECANCELED)
			SK_WARN("presence state of %s (%s): %s", rd->aor, rd->ops->event,
				sk_strerror(err));
		sk_deref(state);
	} else {
		rd->state = state;
	}
	round_send(rd);
	sk_deref(rd);
}

void pres_notify_subs(struct registrar *r, const struct pres_pkg_ops *ops, const char *aor,
		      uint64_t now_ms, struct pres_target *t, size_t n)
{
	struct round *rd = NULL;
	bool fetch = false;
	int err;

	if (!n)
		return;
	rd = sk_zalloc(sizeof(*rd), round_destroy);
	if (rd)
		rd->t = calloc(n, sizeof(*t));
	if (!rd || !rd->t || !(rd->aor = sk_strdup(aor))) {
		for (size_t i = 0; i < n; i++)
			pres_sub_free(t[i].s);
		if (rd)
			sk_deref(rd);
		return;
	}
	memcpy(rd->t, t, n * sizeof(*t));
	rd->n = n;
	rd->r = r;
	rd->pa = sk_ref(r->pres);
	rd->ops = ops;
	rd->now = now_ms;
	for (size_t i = 0; i < n; i++)
		fetch |= wants_body(&t[i]);
	if (fetch && ops->fetch) {
		err = ops->fetch(r, aor, on_fetch, sk_ref(rd));
		if (!err) {
			sk_deref(rd);
			return;
		}
		sk_deref(rd); /* the reference given to fetch */
		rd->fetch_failed = true;
		SK_WARN("presence state of %s (%s): %s", aor, ops->event, sk_strerror(err));
	}
	round_send(rd);
	sk_deref(rd);
}

/* ---- pres_changed: throttle, then a round ---- */

struct change {
	struct registrar *r;
	struct pres_agent *pa;
	enum pres_pkg pkg;
	char aor[];
};

static struct change *change_new(struct registrar *r, enum pres_pkg pkg, const char *aor)
{
	size_t n = strlen(aor) + 1;
	struct change *c = malloc(sizeof(*c) + n);

	if (!c)
		return NULL;
	c->r = r;
	c->pa = sk_ref(r->pres);
	c->pkg = pkg;
	memcpy(c->aor, aor, n);
	return c;
}

static void change_free(struct change *c)
{
	sk_deref(c->pa);
	free(c);
}

static void on_subs(int err, uint64_t now, Skein__Sip__V1__Subscription **subs, size_t n, void *arg)
{
	struct change *c = arg;
	const char *event = pres_pkg_event(c->pkg);
	/* [0] the package's own subscriptions, [1] RLS list subscriptions (presence) */
	struct pres_target *t[2] = {calloc(n + 1, sizeof(**t)), calloc(n + 1, sizeof(**t))};
	size_t nt[2] = {0, 0};

	if (err) {
		if (err != SK_ECANCELED)
			SK_WARN("NOTIFY round %s %s: %s", event, c->aor, sk_strerror(err));
		sk_counter_inc(c->pa->m.notify[PRES_NOTIFY_ERROR]);
	}
	for (size_t i = 0; i < n; i++) {
		Skein__Sip__V1__Subscription *s = subs[i];
		int g = s->eventlist ? 1 : 0;

		if (!t[0] || !t[1] || strcmp(s->event, event) || !strcmp(s->state, "terminated")) {
			pres_sub_free(s);
			continue;
		}
		if (s->expires_at_ms + EXPIRED_GRACE_MS < now) {
			/* its timer was lost: end it here (the seq script lets only one
			 * registrar do so) */
			t[g][nt[g]++] = (struct pres_target){
			    .s = s, .final = "timeout", .why = PRES_END_TIMEOUT};
			continue;
		}
		if (!strcmp(s->state, "pending")) { /* told nothing until authorized */
			pres_sub_free(s);
			continue;
		}
		t[g][nt[g]++] = (struct pres_target){.s = s};
	}
	free(subs);
	if (nt[0])
		pres_notify_subs(c->r, pres_pkg_ops(c->pkg), c->aor, now, t[0], nt[0]);
	if (nt[1])
		pres_notify_subs(c->r, &pres_ops_rls, c->aor, now, t[1], nt[1]);
	free(t[0]);
	free(t[1]);
	change_free(c);
}

static void go(struct change *c)
{
	int err = pres_subs_load(c->r, c->aor, on_subs, c);

	if (err) {
		SK_WARN("NOTIFY round %s %s: %s", pres_pkg_event(c->pkg), c->aor, sk_strerror(err));
		sk_counter_inc(c->pa->m.notify[PRES_NOTIFY_ERROR]);
		change_free(c);
	}
}

static void on_throttle(int err, struct redisReply *reply, void *arg)
{
	struct change *c = arg;

	if (!err && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		     reply->element[0]->type != REDIS_REPLY_INTEGER ||
		     reply->element[1]->type != REDIS_REPLY_INTEGER))
		err = SK_EPROTO;
	if (err) {
		if (err != SK_ECANCELED)
			SK_WARN("NOTIFY round %s %s: throttle: %s", pres_pkg_event(c->pkg), c->aor,
				sk_strerror(err));
		sk_counter_inc(c->pa->m.notify[PRES_NOTIFY_ERROR]);
		change_free(c);
		return;
	}
	if (reply->element[0]->integer == 0) {
		/* a round went less than notify_interval ago: one more at its end carries
		 * this change and any other until then (NX: the first such timer stays) */
		sk_counter_inc(c->pa->m.notify[PRES_NOTIFY_THROTTLED]);
		pres_timer_arm(c->r, 'n', c->aor, pres_pkg_event(c->pkg),
			       (uint64_t)reply->element[1]->integer, true);
		change_free(c);
		return;
	}
	go(c);
}

static void changed(struct registrar *r, enum pres_pkg pkg, const char *aor, bool bypass)
{
	char key[PRES_KEY_MAX], field[32], iv[24];
	const char *argv[] = {key, field, iv, bypass ? "1" : "0"};
	struct change *c;
	uint64_t interval;

	if (!r || !r->pres || r->pres->stopped || (unsigned)pkg >= PRES_PKG_MAX_ || !aor || !aor[0])
		return;
	if (pres_key(key, sizeof(key), r, aor, "pstate")) {
		SK_WARN("NOTIFY round: bad resource %s", aor);
		return;
	}
	c = change_new(r, pkg, aor);
	if (!c)
		return;
	interval = r->conf->notify_interval;
	if (!interval) {
		go(c);
		return;
	}
	snprintf(field, sizeof(field), "n:%s", pres_pkg_event(pkg));
	snprintf(iv, sizeof(iv), "%llu", (unsigned long long)interval);
	if (sk_redis_eval(r->pres->s_throttle, on_throttle, c, 1, 4, argv, NULL)) {
		sk_counter_inc(r->pres->m.notify[PRES_NOTIFY_ERROR]);
		SK_WARN("NOTIFY round %s %s: redis down", pres_pkg_event(pkg), aor);
		change_free(c);
	}
}

void pres_changed(struct registrar *r, enum pres_pkg pkg, const char *aor)
{
	changed(r, pkg, aor, false);
}

void pres_changed_now(struct registrar *r, enum pres_pkg pkg, const char *aor)
{
	changed(r, pkg, aor, true);
}
