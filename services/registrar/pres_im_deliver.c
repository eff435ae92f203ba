/* pres_im_deliver: the offline IM store's delivery (docs/presence.md "Offline IM").
 * A REGISTER added a binding: if the user has kept messages, one registrar takes
 * <c>:{aor}:imlock and sends them to that binding through an edge, ONE AT A TIME and
 * oldest first (RFC 3428 gives MESSAGE no ordering of its own; sending the next only
 * after the previous one's 2xx keeps the conversation in order), each removed only
 * once the UA accepted it. A failure stops the round: what is left waits for the
 * next registration or its expiry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis/hiredis.h>
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"
#include "skein/sk_redis.h"
#include "reg.h"
#include "pres.h"
#include "pres_im.h"

SK_LOG_MODULE("im");

#define KEY_MAX 640
#define LOCK_MS "60000" /* > a MESSAGE transaction (64*T1) plus the bus */

/* One delivery round: owned by whichever step is in flight. */
struct dlv {
	struct registrar *r;
	char aor[REGDATA_AOR_MAX], token[33];
	char ims[KEY_MAX], lock[KEY_MAX];
	char *contact, *edge, *flow, *transport, *dest;
	char *blob; /* the message in flight, exactly as stored */
	size_t blen;
	unsigned delivered, gone;
};

static void dlv_destroy(void *data)
{
	struct dlv *d = data;

	sk_deref(d->contact);
	sk_deref(d->edge);
	sk_deref(d->flow);
	sk_deref(d->transport);
	sk_deref(d->dest);
	free(d->blob);
}

static void on_unlocked(int err, struct redisReply *reply, void *arg)
{
	(void)reply;
	(void)arg;
	if (err && err != SK_ECANCELED)
		SK_WARN("stored messages: lock not released (%s): it lapses by itself",
			sk_strerror(err));
}

/* The round is over: release the lock when we still hold it, tell message-summary
 * subscribers when anything left the store. */
static void finish(struct dlv *d, bool unlock)
{
	struct registrar *r = d->r;

	if (unlock && r->im) {
		const char *argv[] = {d->lock, d->token};

		if (sk_redis_eval(r->im->unlock, on_unlocked, NULL, 1, 2, argv, NULL))
			SK_DEBUG("stored messages of %s: lock not released (redis down)", d->aor);
	}
	if (d->delivered || d->gone) {
		if (d->gone && r->im)
			sk_counter_add(r->im->m[PRES_IM_EXPIRED], d->gone);
		pres_changed(r, PRES_PKG_MWI, d->aor);
	}
	if (d->delivered)
		SK_INFO("delivered %u stored message(s) to %s at %s", d->delivered, d->aor,
			d->contact);
	sk_deref(d);
}

static bool one_line(const char *s)
{
	return !strpbrk(s, "\r\n");
}

/* The MESSAGE (common.md: no Via) for m: to the new binding, From/To as stored, a new
 * Call-ID, the original Date (or the time it was stored: RFC 3428 §9 lets the
 * receiver tell how old it is), the kept end-to-end headers, the body as received. */
static int message_text(struct sk_buf *b, const struct dlv *d,
			const Skein__Sip__V1__StoredMessage *m)
{
	char callid[33], date[64];

	if (!one_line(d->contact) || !one_line(m->from) || !one_line(m->to) ||
	    !one_line(m->content_type) || !one_line(m->date) || !m->from[0] || !m->to[0])
		return SK_EINVAL;
	pres_random_hex(callid, 16);
	if (m->date[0]) {
		snprintf(date, sizeof(date), "%s", m->date);
	} else {
		time_t t = (time_t)(m->stored_ms / 1000);
		struct tm tm;

		/* RFC 3261 §20.17: rfc1123-date, always GMT. */
		if (!gmtime_r(&t, &tm) ||
		    !strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm))
			date[0] = '\0';
	}
	sk_buf_printf(b,
		      "MESSAGE %s SIP/2.0\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\n"
		      "Call-ID: %s\r\nCSeq: 1 MESSAGE\r\n",
		      d->contact, m->from, m->to, callid);
	if (date[0])
		sk_buf_printf(b, "Date: %s\r\n", date);
	for (size_t i = 0; i < m->n_headers; i++)
		if (one_line(m->headers[i]) && strchr(m->headers[i], ':'))
			sk_buf_printf(b, "%s\r\n", m->headers[i]);
	if (m->content_type[0])
		sk_buf_printf(b, "Content-Type: %s\r\n", m->content_type);
	sk_buf_printf(b, "Content-Length: %zu\r\n\r\n", m->body.len);
	if (m->body.len)
		sk_buf_append(b, m->body.data, m->body.len);
	return b->err;
}

static void deliver(struct dlv *d, const char *blob, size_t len);

static void on_next(int err, struct redisReply *reply, void *arg)
{
	struct dlv *d = arg;

	if (!err && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
		     reply->element[1]->type != REDIS_REPLY_INTEGER ||
		     reply->element[2]->type != REDIS_REPLY_INTEGER))
		err = SK_EPROTO;
	if (err) {
		if (err != SK_ECANCELED)
			SK_WARN("stored messages of %s: %s (delivery stopped; a delivered one may "
				"come again)",
				d->aor, sk_strerror(err));
		finish(d, err != SK_ECANCELED);
		return;
	}
	d->gone += (unsigned)reply->element[1]->integer;
	if (!reply->element[2]->integer) {
		SK_NOTICE("stored messages of %s: delivery lock lapsed, stopping", d->aor);
		finish(d, false);
	} else if (reply->elements >= 4 && reply->element[3]->type == REDIS_REPLY_STRING) {
		deliver(d, reply->element[3]->str, reply->element[3]->len);
	} else {
		finish(d, false); /* none left: the script released the lock */
	}
}

/* Removes the message just delivered and fetches the next. */
static void step(struct dlv *d)
{
	const char *argv[] = {d->ims, d->lock, d->token, d->blob, LOCK_MS};
	size_t lens[] = {strlen(d->ims), strlen(d->lock), strlen(d->token), d->blen,
			 strlen(LOCK_MS)};
	int err = sk_redis_eval(d->r->im->next, on_next, d, 2, 5, argv, lens);

	if (err)
		on_next(err, NULL, d);
}

static void on_sent(int err, unsigned code, const Skein__Sip__V1__OriginateReply *rep, void *arg)
{
	struct dlv *d = arg;

	(void)rep;
	if (code >= 200 && code < 300) {
		d->delivered++;
		sk_counter_inc(d->r->im->m[PRES_IM_DELIVERED]);
		step(d);
		return;
	}
	sk_counter_inc(d->r->im->m[PRES_IM_UNDELIVERED]);
	SK_NOTICE("stored message for %s not delivered to %s: %u%s%s (kept)", d->aor, d->contact,
		  code, err ? " " : "", err ? sk_strerror(err) : "");
	finish(d, true);
}

static void deliver(struct dlv *d, const char *blob, size_t len)
{
	Skein__Sip__V1__StoredMessage *m;
	struct sk_buf b;
	int err;

	free(d->blob);
	d->blen = 0;
	if (!(d->blob = malloc(len ? len : 1))) {
		finish(d, true);
		return;
	}
	memcpy(d->blob, blob, len);
	d->blen = len;
	m = skein__sip__v1__stored_message__unpack(NULL, len, (const uint8_t *)blob);
	sk_buf_init(&b);
	if (!m || message_text(&b, d, m)) {
		/* A record that cannot be sent would block every later one until it
		 * expires: drop it, as if delivered, and go on. */
		SK_WARN("stored message of %s cannot be sent (malformed record): dropped", d->aor);
		d->gone++;
		if (m)
			skein__sip__v1__stored_message__free_unpacked(m, NULL);
		sk_buf_release(&b);
		step(d);
		return;
	}
	SK_DEBUG("delivering stored message %s of %s to %s", m->id, d->aor, d->contact);
	skein__sip__v1__stored_message__free_unpacked(m, NULL);
	err = pres_originate(d->r, d->edge, d->flow, d->transport, d->dest, b.data, b.len, on_sent,
			     d);
	sk_buf_release(&b);
	if (err)
		on_sent(err, 503, NULL, d);
}

static void on_begin(int err, struct redisReply *reply, void *arg)
{
	struct dlv *d = arg;

	if (!err && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
		     reply->element[0]->type != REDIS_REPLY_INTEGER))
		err = SK_EPROTO;
	if (err) {
		if (err != SK_ECANCELED)
			SK_WARN("stored messages of %s: %s", d->aor, sk_strerror(err));
		finish(d, false);
		return;
	}
	d->gone = (unsigned)reply->element[0]->integer;
	if (reply->elements >= 2 && reply->element[1]->type == REDIS_REPLY_STRING)
		deliver(d, reply->element[1]->str, reply->element[1]->len);
	else
		finish(d, false); /* nothing kept, or another registrar is on it */
}

void pres_im_registered(struct registrar *r, const struct pres_binding_ref *b)
{
	struct pres_im *im = pres_im_get(r);
	const char *why, *argv[4];
	bool udp;
	struct dlv *d;

	if (!im || !b || !b->aor || !b->contact || !b->contact[0])
		return;
	d = sk_zalloc(sizeof(*d), dlv_destroy);
	if (!d)
		return;
	d->r = r;
	if (regdata_aor_norm(d->aor, sizeof(d->aor), b->aor, &why) ||
	    sk_redis_key(d->ims, sizeof(d->ims), r->cluster, d->aor, "ims") ||
	    sk_redis_key(d->lock, sizeof(d->lock), r->cluster, d->aor, "imlock")) {
		sk_deref(d);
		return;
	}
	/* common.md: a UDP binding is reached at its source (NAT); a stream one down
	 * its flow, on the edge that holds it. */
	udp = b->transport && !strcmp(b->transport, "udp");
	d->contact = sk_strdup(b->contact);
	d->edge = sk_strdup(b->edge ? b->edge : "");
	d->flow = sk_strdup(b->flow ? b->flow : "");
	d->transport = sk_strdup(b->transport ? b->transport : "");
	d->dest = sk_strdup(udp && b->source ? b->source : "");
	pres_random_hex(d->token, 16);
	if (!d->contact || !d->edge || !d->flow || !d->transport || !d->dest) {
		sk_deref(d);
		return;
	}
	argv[0] = d->ims;
	argv[1] = d->lock;
	argv[2] = d->token;
	argv[3] = LOCK_MS;
	if (sk_redis_eval(im->begin, on_begin, d, 2, 4, argv, NULL)) {
		SK_DEBUG("stored messages of %s: not checked (redis down)", d->aor);
		sk_deref(d);
	}
}
