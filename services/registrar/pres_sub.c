/* pres_sub: subscription dialogs of every package, notifier side (RFC 6665 §4.2.1):
 * create (with the initial NOTIFY), refresh, fetch, unsubscribe. Records are read
 * and written whole (packed Subscription) with a compare-and-set script; the NOTIFY
 * side is pres_notify.c, expiry and re-authorization pres_sub_end.c. */
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

#define PUT_TRIES 3 /* compare-and-set attempts of a refresh racing another writer */

static const char *const allow_events =
    "Allow-Events: presence, presence.winfo, message-summary, reg";

/* One SUBSCRIBE in hand. */
struct op {
	struct registrar *r;
	struct pres_agent *pa;
	struct sk_bus_req *req;
	Skein__Sip__V1__UasRequest *rq; /* owned copy */
	enum pres_pkg pkg;
	const struct pres_pkg_ops *ops;
	int64_t expires; /* granted, s */
	bool eventlist;
	bool failed; /* storage or internal failure (counted as error) */
	int tries;
	char id[PRES_ID_SIZE];
	char subs[PRES_KEY_MAX];
	/* a new subscription: the record before it is stored */
	Skein__Sip__V1__Subscription draft;
	char *remote, *display, *resource_uri, *state, *reason;
	uint8_t *packed; /* what the put stores */
	size_t plen;
	uint64_t now;
};

static void op_destroy(void *data)
{
	struct op *o = data;

	if (o->rq)
		skein__sip__v1__uas_request__free_unpacked(o->rq, NULL);
	sk_deref(o->remote);
	sk_deref(o->display);
	sk_deref(o->resource_uri);
	sk_deref(o->state);
	sk_deref(o->reason);
	free(o->packed);
	sk_deref(o->req);
	sk_deref(o->pa);
}

static void count(struct op *o, enum pres_sub_result res)
{
	sk_counter_inc(o->pa->m.sub[res]);
}

static void reject(struct op *o, unsigned code, const char *reason, const char *hdr)
{
	const char *h[] = {hdr, NULL};

	count(o, o->failed ? PRES_SUB_ERROR : PRES_SUB_REJECTED);
	SK_NOTICE("SUBSCRIBE %s event=%s watcher=%s: %u %s", o->rq->resource, o->rq->event,
		  o->rq->watcher, code, reason ? reason : "");
	pres_answer(o->req, code, reason, hdr ? h : NULL, NULL, NULL, 0);
}

static void storage_failed(struct op *o, int err)
{
	if (err != SK_ECANCELED)
		SK_WARN("SUBSCRIBE %s watcher=%s: %s", o->rq->resource, o->rq->watcher,
			sk_strerror(err));
	o->failed = true;
	reject(o, 500, "Presence storage unavailable", PRES_RETRY_AFTER);
}

/* 200 with the granted Expires and our Contact (RFC 6665 §4.2.1.1). */
static void ok(struct op *o, int64_t expires)
{
	char exp[40], contact[1024];
	const char *h[3] = {exp, NULL, NULL};
	const char *lc = o->rq->local_contact;

	snprintf(exp, sizeof(exp), "Expires: %lld", (long long)expires);
	if (lc[0]) {
		snprintf(contact, sizeof(contact),
			 strchr(lc, '<') ? "Contact: %s" : "Contact: <%s>", lc);
		h[1] = contact;
	}
	pres_answer(o->req, 200, NULL, h, NULL, NULL, 0);
}

Skein__Sip__V1__Subscription *pres_sub_unpack(const void *p, size_t len)
{
	return skein__sip__v1__subscription__unpack(NULL, len, p);
}

/* The owned copy of a packed record, as a target of a NOTIFY round. */
static void notify_one(struct op *o, Skein__Sip__V1__Subscription *s, const char *final,
		       enum pres_end_reason why, uint64_t now)
{
	struct pres_target t = {.s = s, .final = final, .why = why};

	if (!s)
		return;
	pres_notify_subs(o->r, o->ops, s->resource, now, &t, 1);
}

int pres_sub_get_parse(const struct redisReply *reply, uint64_t *now, const char **packed,
		       size_t *len)
{
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER)
		return SK_EPROTO;
	*now = (uint64_t)reply->element[0]->integer;
	*packed = NULL;
	*len = 0;
	if (reply->elements >= 2) {
		if (reply->element[1]->type != REDIS_REPLY_STRING)
			return SK_EPROTO;
		*packed = reply->element[1]->str;
		*len = reply->element[1]->len;
	}
	return 0;
}

/* ---- Redis steps of a SUBSCRIBE: the op stays alive across each ---- */

typedef void(op_step_cb)(struct op *o, int err, struct redisReply *reply);
struct step {
	struct op *o;
	op_step_cb *fn;
};

static void on_step(int err, struct redisReply *reply, void *arg)
{
	struct step *st = arg;
	struct op *o = st->o;
	op_step_cb *fn = st->fn;

	free(st);
	sk_log_ctx_set("call-id", o->rq->call_id); /* the bus's context ended */
	fn(o, err, reply);
	sk_log_ctx_set(NULL, NULL);
	sk_deref(o);
}

static void step(struct op *o, struct sk_redis_script *script, int nkeys, int argc,
		 const char **argv, const size_t *lens, op_step_cb *fn)
{
	struct step *st = malloc(sizeof(*st));
	int err = SK_ENOMEM;

	if (st) {
		st->o = sk_ref(o);
		st->fn = fn;
		err = sk_redis_eval(script, on_step, st, nkeys, argc, argv, lens);
		if (!err)
			return;
		sk_deref(o);
		free(st);
	}
	fn(o, err, NULL);
}

static void get(struct op *o, op_step_cb *fn)
{
	const char *argv[] = {o->subs, o->id};

	step(o, o->pa->s_get, 1, 2, argv, NULL, fn);
}

/* Stores o->packed: over `old` (compare-and-set) or as a new record (old NULL). */
static void put(struct op *o, const char *old, size_t oldlen, op_step_cb *fn)
{
	char max[24];
	const char *argv[] = {o->subs, o->id, old ? old : "", (const char *)o->packed, max};
	const size_t lens[] = {strlen(o->subs), strlen(o->id), old ? oldlen : 0, o->plen, 0};
	size_t l[5];

	snprintf(max, sizeof(max), "%lld", (long long)o->r->conf->max_watchers);
	memcpy(l, lens, sizeof(l));
	l[4] = strlen(max);
	step(o, o->pa->s_put, 1, 5, argv, l, fn);
}

static int pack(struct op *o, const Skein__Sip__V1__Subscription *s)
{
	free(o->packed);
	o->plen = skein__sip__v1__subscription__get_packed_size(s);
	o->packed = malloc(o->plen ? o->plen : 1);
	if (!o->packed)
		return SK_ENOMEM;
	skein__sip__v1__subscription__pack(s, o->packed);
	return 0;
}

/* ---- refresh and unsubscribe (in dialog; also a repeated initial SUBSCRIBE) ---- */

static void on_get_dialog(struct op *o, int err, struct redisReply *reply);

static void on_put_refresh(struct op *o, int err, struct redisReply *reply)
{
	Skein__Sip__V1__Subscription *s;

	if (!err && reply->type != REDIS_REPLY_INTEGER)
		err = SK_EPROTO;
	if (err) {
		storage_failed(o, err);
		return;
	}
	if (reply->integer == 1 && ++o->tries < PUT_TRIES) { /* changed under us */
		get(o, on_get_dialog);
		return;
	}
	if (reply->integer == 4) {
		reject(o, 481, "Subscription does not exist", NULL);
		return;
	}
	if (reply->integer != 0) {
		storage_failed(o, SK_EAGAIN);
		return;
	}
	s = pres_sub_unpack(o->packed, o->plen);
	if (!s) {
		storage_failed(o, SK_ENOMEM);
		return;
	}
	pres_timer_arm(o->r, 's', s->resource, s->id, s->expires_at_ms, false);
	count(o, PRES_SUB_REFRESHED);
	ok(o, o->expires);
	SK_DEBUG("SUBSCRIBE %s %s watcher=%s refreshed for %llds", s->event, s->resource,
		 s->watcher, (long long)o->expires);
	notify_one(o, s, NULL, PRES_END_TIMEOUT, o->now); /* RFC 6665 §4.2.1: NOTIFY on refresh */
}

static void on_get_dialog(struct op *o, int err, struct redisReply *reply)
{
	const Skein__Sip__V1__UasRequest *rq = o->rq;
	Skein__Sip__V1__Subscription *old, upd;
	const char *packed;
	size_t len;
	bool initial = !rq->to_tag[0]; /* the same initial SUBSCRIBE again */

	if (!err)
		err = pres_sub_get_parse(reply, &o->now, &packed, &len);
	if (err) {
		storage_failed(o, err);
		return;
	}
	if (!packed) {
		reject(o, 481, "Subscription does not exist", NULL);
		return;
	}
	old = pres_sub_unpack(packed, len);
	if (!old) {
		storage_failed(o, SK_EBADMSG);
		return;
	}
	/* The id is an index: the dialog itself is the credential (in-dialog requests
	 * are not authenticated), so every part of it must match. */
	if (strcmp(old->call_id, rq->call_id) || strcmp(old->remote_tag, rq->from_tag) ||
	    strcmp(old->local_tag, initial ? rq->local_tag : rq->to_tag) ||
	    strcmp(old->event, pres_pkg_event(o->pkg)) || strcmp(old->event_id, rq->event_id)) {
		pres_sub_free(old);
		reject(o, 481, "Subscription does not exist", NULL);
		return;
	}
	/* RFC 3261 §12.2.2: a lower CSeq is out of order (500); an equal one is a repeat
	 * of the initial SUBSCRIBE only */
	if (rq->cseq < old->remote_cseq || (!initial && rq->cseq == old->remote_cseq)) {
		pres_sub_free(old);
		reject(o, 500, "CSeq out of order", NULL);
		return;
	}
	o->ops = pres_sub_ops(old);
	if (!o->ops) {
		pres_sub_free(old);
		storage_failed(o, SK_EBADMSG);
		return;
	}
	if (o->expires == 0) {
		/* RFC 6665 §4.2.1, unsubscribe: 200, then the final NOTIFY (whose
		 * sequence script removes the record) */
		count(o, PRES_SUB_TERMINATED);
		ok(o, 0);
		SK_DEBUG("SUBSCRIBE %s %s watcher=%s: unsubscribed", old->event, old->resource,
			 old->watcher);
		notify_one(o, old, "timeout", PRES_END_UNSUBSCRIBED, o->now);
		return;
	}
	/* A refresh; SUBSCRIBE is a target refresh request (RFC 6665 §4.1, RFC 3261 §12.2), and the
	 * watcher may come through another edge / flow now. */
	upd = *old;
	upd.remote_cseq = rq->cseq;
	upd.expires_at_ms = o->now + (uint64_t)o->expires * 1000;
	if (rq->contact[0])
		upd.remote_target = rq->contact;
	upd.edge = rq->edge;
	upd.flow = rq->flow;
	upd.transport = rq->transport;
	upd.source = rq->source;
	if (rq->local_contact[0])
		upd.local_contact = rq->local_contact;
	err = pack(o, &upd);
	if (!err) {
		/* old's own packing, byte for byte, is what the store compares */
		put(o, packed, len, on_put_refresh);
	} else {
		storage_failed(o, err);
	}
	pres_sub_free(old);
}

/* ---- a new subscription ---- */

static void on_put_new(struct op *o, int err, struct redisReply *reply)
{
	Skein__Sip__V1__Subscription *s;

	if (!err && reply->type != REDIS_REPLY_INTEGER)
		err = SK_EPROTO;
	if (err) {
		storage_failed(o, err);
		return;
	}
	if (reply->integer == 2) { /* made meanwhile by the same SUBSCRIBE elsewhere */
		get(o, on_get_dialog);
		return;
	}
	if (reply->integer == 3) {
		reject(o, 503, "Too many subscriptions to this resource", PRES_RETRY_AFTER);
		return;
	}
	if (reply->integer != 0 || !(s = pres_sub_unpack(o->packed, o->plen))) {
		storage_failed(o, reply->integer != 0 ? SK_EPROTO : SK_ENOMEM);
		return;
	}
	pres_timer_arm(o->r, 's', s->resource, s->id, s->expires_at_ms, false);
	count(o, PRES_SUB_CREATED);
	sk_counter_inc(o->pa->m.created[o->eventlist ? PRES_PKG_MAX_ : o->pkg]);
	ok(o, o->expires);
	SK_INFO("subscription %s %s watcher=%s%s %s for %llds", s->event, s->resource, s->watcher,
		s->authenticated ? "" : " (unverified)", s->state, (long long)o->expires);
	if (s->eventlist)
		pres_rls_subscribed(o->r, s, true);
	else if (o->pkg == PRES_PKG_PRESENCE)
		pres_changed(o->r, PRES_PKG_WINFO,
			     s->resource); /* RFC 3857: winfo watchers hear of it */
	/* RFC 6665 §4.2.1: the initial NOTIFY at once (not throttled) */
	notify_one(o, s, NULL, PRES_END_TIMEOUT, o->now);
}

static void on_get_new(struct op *o, int err, struct redisReply *reply)
{
	const char *packed;
	size_t len;

	if (!err)
		err = pres_sub_get_parse(reply, &o->now, &packed, &len);
	if (err) {
		storage_failed(o, err);
		return;
	}
	if (packed) { /* the same initial SUBSCRIBE again (edge retry) */
		on_get_dialog(o, 0, reply);
		return;
	}
	o->draft.expires_at_ms = o->now + (uint64_t)o->expires * 1000;
	o->draft.created_ms = o->now;
	err = pack(o, &o->draft);
	if (err)
		storage_failed(o, err);
	else
		put(o, NULL, 0, on_put_new);
}

static void on_auth(int err, const char *state, const char *reason, void *arg)
{
	struct op *o = arg;

	if (err || !state) {
		storage_failed(o, err ? err : SK_EPROTO);
	} else if (!strcmp(state, "terminated")) {
		/* RFC 6665 §4.2.1: not authorized -> 403 */
		reject(o, 403, "Forbidden", NULL);
	} else if (!(o->state = sk_strdup(state)) ||
		   !(o->reason = sk_strdup(reason ? reason : ""))) {
		storage_failed(o, SK_ENOMEM);
	} else {
		o->draft.state = o->state;
		o->draft.reason = o->reason;
		if (o->expires == 0) {
			/* RFC 6665 fetch (Expires 0): 200, one NOTIFY with the state, terminated;
			 * nothing is kept */
			struct pres_target t = {.final = "timeout",
						.transient = true,
						.body_final = true,
						.why = PRES_END_TIMEOUT};

			count(o, PRES_SUB_FETCHED);
			ok(o, 0);
			if (pack(o, &o->draft) == 0 && (t.s = pres_sub_unpack(o->packed, o->plen)))
				pres_notify_subs(o->r, o->ops, t.s->resource, 0, &t, 1);
		} else {
			get(o, on_get_new);
		}
	}
	sk_deref(o);
}

static int draft(struct op *o)
{
	const Skein__Sip__V1__UasRequest *rq = o->rq;
	Skein__Sip__V1__Subscription *s = &o->draft;

	skein__sip__v1__subscription__init(s);
	o->remote = pres_strip_tag(rq->from);
	o->display = pres_display_name(rq->from);
	o->resource_uri =
	    rq->resource_uri[0] ? sk_strdup(rq->resource_uri) : sk_strdupf("sip:%s", rq->resource);
	if (!o->remote || !o->display || !o->resource_uri)
		return SK_ENOMEM;
	s->id = o->id;
	s->event = (char *)pres_pkg_event(o->pkg);
	s->event_id = rq->event_id;
	s->resource = rq->resource;
	s->resource_uri = o->resource_uri;
	s->watcher = rq->watcher;
	s->remote = o->remote;
	s->remote_tag = rq->from_tag;
	s->local_tag = rq->local_tag;
	s->call_id = rq->call_id;
	s->remote_cseq = rq->cseq;
	s->remote_target = rq->contact;
	s->n_route = rq->n_record_route; /* RFC 3261 §12.1.1: in order */
	s->route = rq->record_route;
	s->local_contact = rq->local_contact;
	s->edge = rq->edge;
	s->flow = rq->flow;
	s->transport = rq->transport;
	s->source = rq->source;
	s->state = "active";
	s->reason = "";
	s->n_accept = rq->n_accept;
	s->accept = rq->accept;
	s->eventlist = o->eventlist;
	s->authenticated = rq->user[0] && !strcmp(rq->user, rq->watcher);
	s->display_name = o->display;
	return 0;
}

static void create(struct op *o)
{
	int err = draft(o);

	if (err) {
		storage_failed(o, err);
		return;
	}
	if (!o->ops->authorize) {
		on_auth(0, "active", NULL, sk_ref(o));
		return;
	}
	err = o->ops->authorize(o->r, &o->draft, on_auth, sk_ref(o));
	if (err) {
		sk_deref(o);
		storage_failed(o, err);
	}
}

static void on_rls(int err, bool is_list, void *arg)
{
	struct op *o = arg;

	if (err) {
		storage_failed(o, err);
	} else if (is_list && !pres_has_tag(o->rq->supported, o->rq->n_supported, "eventlist")) {
		/* RFC 4662: a list subscription needs the watcher to support it */
		reject(o, 421, "Extension Required", "Require: eventlist");
	} else {
		if (is_list) {
			o->eventlist = true;
			o->ops = &pres_ops_rls;
		}
		create(o);
	}
	sk_deref(o);
}

static Skein__Sip__V1__UasRequest *rq_copy(const Skein__Sip__V1__UasRequest *rq)
{
	size_t len = skein__sip__v1__uas_request__get_packed_size(rq);
	uint8_t *buf = malloc(len ? len : 1);
	Skein__Sip__V1__UasRequest *c = NULL;

	if (buf) {
		skein__sip__v1__uas_request__pack(rq, buf);
		c = skein__sip__v1__uas_request__unpack(NULL, len, buf);
		free(buf);
	}
	return c;
}

static void answer_now(struct pres_agent *pa, struct sk_bus_req *req,
		       const Skein__Sip__V1__UasRequest *rq, unsigned code, const char *reason,
		       const char *hdr)
{
	const char *h[] = {hdr, NULL};

	sk_counter_inc(pa->m.sub[code == 500 ? PRES_SUB_ERROR : PRES_SUB_REJECTED]);
	SK_NOTICE("SUBSCRIBE %s event=%s watcher=%s: %u %s", rq->resource, rq->event, rq->watcher,
		  code, reason ? reason : "");
	pres_answer(req, code, reason, hdr ? h : NULL, NULL, NULL, 0);
}

void pres_subscribe(struct registrar *r, struct sk_bus_req *req,
		    const Skein__Sip__V1__UasRequest *rq)
{
	const struct registrar_conf *c = r->conf;
	struct pres_agent *pa = r->pres;
	int pkg = pres_pkg_from_event(rq->event);
	bool in_dialog = rq->to_tag[0] != '\0';
	char hdr[64];
	int64_t exp;
	struct op *o;
	int err;

	if (pkg < 0) { /* RFC 6665 §4.2.1.1 */
		answer_now(pa, req, rq, 489, "Bad Event", allow_events);
		return;
	}
	if (rq->expires < 0) {
		exp = c->sub_default_expires;
	} else if (rq->expires == 0) {
		exp = 0;
	} else if (rq->expires < c->sub_min_expires) { /* RFC 6665 §4.2.1.1 */
		snprintf(hdr, sizeof(hdr), "Min-Expires: %lld", (long long)c->sub_min_expires);
		answer_now(pa, req, rq, 423, "Interval Too Brief", hdr);
		return;
	} else {
		exp = rq->expires > c->sub_max_expires ? c->sub_max_expires : rq->expires;
	}
	if (!rq->resource[0] || !rq->call_id[0] || !rq->from_tag[0] ||
	    (!in_dialog && !rq->local_tag[0])) {
		answer_now(pa, req, rq, 400, "Incomplete dialog identifiers", NULL);
		return;
	}
	if (!in_dialog && !rq->contact[0]) { /* RFC 6665 §4.1.2.1 / RFC 3261 §12.1.1 */
		answer_now(pa, req, rq, 400, "Missing Contact", NULL);
		return;
	}
	/* Owner-only packages: a subscriber authenticated as someone else is refused
	 * even from a trusted network; an unauthenticated trusted peer (a service) is
	 * let through. */
	if (!in_dialog && pres_pkg_ops(pkg)->owner_only && strcmp(rq->user, rq->resource) &&
	    !(rq->trusted && !rq->user[0])) {
		answer_now(pa, req, rq, 403, "Only the owner may subscribe", NULL);
		return;
	}
	o = sk_zalloc(sizeof(*o), op_destroy);
	if (!o || !(o->rq = rq_copy(rq)) ||
	    pres_key(o->subs, sizeof(o->subs), r, rq->resource, "subs")) {
		sk_deref(o);
		answer_now(pa, req, rq, 500, "Server Internal Error", PRES_RETRY_AFTER);
		return;
	}
	o->r = r;
	o->pa = sk_ref(pa);
	o->req = sk_ref(req);
	o->pkg = (enum pres_pkg)pkg;
	o->ops = pres_pkg_ops(o->pkg);
	o->expires = exp;
	pres_sub_id(o->id, rq->call_id, rq->from_tag, in_dialog ? rq->to_tag : rq->local_tag);
	if (in_dialog) {
		get(o, on_get_dialog);
	} else if (pkg == PRES_PKG_PRESENCE &&
		   (err = pres_rls_lookup(r, rq->resource, on_rls, sk_ref(o))) != SK_ENOTSUP) {
		if (err) {
			sk_deref(o); /* the reference given to the lookup */
			storage_failed(o, err);
		}
	} else {
		if (pkg == PRES_PKG_PRESENCE)
			sk_deref(o); /* the lookup did not take it */
		create(o);
	}
	sk_deref(o);
}
