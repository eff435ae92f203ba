/* The presence.winfo event package (RFC 3857): a presentity learns who watches its
 * presence and in what state (RFC 3858 documents, built by services/presence/winfo).
 * The state is the presentity's presence subscriptions as stored; the document is
 * always full (RFC 3857 §5.3.2 allows full state in every NOTIFY). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_daemon.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"
#include "winfo.h"
#include "reg.h"
#include "pres.h"
#include "pres_int.h"
#include "pres_pub_int.h"

SK_LOG_MODULE("winfo");

struct winfo_state {
	char resource[REGDATA_AOR_MAX + 8];  /* "sip:" aor */
	Skein__Sip__V1__Subscription **subs; /* the presence watchers */
	size_t n;
	uint64_t now; /* Redis' time of the fetch, ms */
};

static void state_destroy(void *data)
{
	struct winfo_state *st = data;

	for (size_t i = 0; i < st->n; i++)
		pres_sub_free(st->subs[i]);
	free(st->subs);
}

struct fetch_op {
	char aor[REGDATA_AOR_MAX];
	pres_fetch_cb *cb;
	void *arg;
};

/* Watchers of the presence package itself: not other packages, and not RLS list
 * subscriptions (stored under the list's AOR anyway, RFC 4662 §5). */
static bool watched(const Skein__Sip__V1__Subscription *s, uint64_t now)
{
	return !strcmp(s->event, "presence") && !s->eventlist && s->expires_at_ms > now &&
	       s->id[0] && s->watcher[0];
}

/* The resource's subscriptions as the engine loads them (pres_subs_load): the
 * presence watchers become the state, the others go. */
static void on_subs(int err, uint64_t now, Skein__Sip__V1__Subscription **subs, size_t n,
		    void *arg)
{
	struct fetch_op *o = arg;
	struct winfo_state *st = NULL;

	if (!err && !(st = sk_zalloc(sizeof(*st), state_destroy)))
		err = SK_ENOMEM;
	if (!err) {
		snprintf(st->resource, sizeof(st->resource), "sip:%s", o->aor);
		st->now = now;
		st->subs = subs; /* kept in place: the array has room for all n */
		subs = NULL;
		for (size_t i = 0; i < n; i++) {
			if (watched(st->subs[i], now))
				st->subs[st->n++] = st->subs[i];
			else
				pres_sub_free(st->subs[i]);
		}
	}
	for (size_t i = 0; subs && i < n; i++)
		pres_sub_free(subs[i]);
	free(subs);
	if (err && err != SK_ECANCELED)
		SK_WARN("watchers of %s: %s", o->aor, sk_strerror(err));
	o->cb(err, st, o->arg); /* the callee owns the reference */
	free(o);
}

static int winfo_fetch(struct registrar *r, const char *aor, pres_fetch_cb *cb, void *arg)
{
	struct fetch_op *o;
	int err;

	if (!aor || !cb || strlen(aor) >= REGDATA_AOR_MAX)
		return SK_EINVAL;
	o = malloc(sizeof(*o));
	if (!o)
		return SK_ENOMEM;
	o->cb = cb;
	o->arg = arg;
	snprintf(o->aor, sizeof(o->aor), "%s", aor);
	err = pres_subs_load(r, aor, on_subs, o);
	if (err)
		free(o);
	return err;
}

static int winfo_body(struct registrar *r, void *state, const Skein__Sip__V1__Subscription *s,
		      char **body, size_t *len)
{
	struct winfo_state *st = state;
	struct winfo_watcher *w = NULL;
	char(*uri)[REGDATA_AOR_MAX + 8] = NULL;
	struct winfo_list l = {.resource = st ? st->resource : NULL, .package = "presence"};
	size_t k = 0;
	int err;

	(void)r;
	if (!st || !s || !body || !len)
		return SK_EINVAL;
	if (strcmp(s->state, "active"))
		return SK_ENOENT;
	if (st->n) {
		w = calloc(st->n, sizeof(*w));
		uri = calloc(st->n, sizeof(*uri));
		if (!w || !uri) {
			err = SK_ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < st->n; i++) {
		const Skein__Sip__V1__Subscription *x = st->subs[i];

		if (!pres_winfo_map(x->state, x->reason, &w[k].status, &w[k].event))
			continue;
		snprintf(uri[k], sizeof(uri[k]), "sip:%s", x->watcher);
		w[k].id = x->id;
		w[k].uri = uri[k];
		w[k].display_name = x->display_name[0] ? x->display_name : NULL;
		w[k].expires = x->state[0] == 't' ? -1 : pres_secs_left(x->expires_at_ms, st->now);
		w[k].duration = x->created_ms && x->created_ms <= st->now
				    ? (long)((st->now - x->created_ms) / 1000)
				    : -1;
		k++;
	}
	l.w = w;
	l.n = k;
	err = winfo_build(s->version, true, &l, 1, body);
	if (err == SK_EINVAL) {
		/* A display name that is not clean UTF-8 (it came from a From header):
		 * the list without names rather than no list. */
		for (size_t i = 0; i < k; i++)
			w[i].display_name = NULL;
		err = winfo_build(s->version, true, &l, 1, body);
	}
	if (!err)
		*len = strlen(*body);
out:
	free(w);
	free(uri);
	return err;
}

const struct pres_pkg_ops pres_ops_winfo = {
    .event = "presence.winfo",
    .ctype = WINFO_MIME,
    .owner_only = true,
    .fetch = winfo_fetch,
    .body = winfo_body,
    .authorize = NULL, /* owner_only: the owner (or a trusted network) is active */
};
