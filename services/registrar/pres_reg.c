/* pres_reg: the reg event package (RFC 3680): a user's own subscription (owner_only)
 * to the state of its registrations, as a full reginfo document of the bindings the
 * registrar keeps (<c>:{aor}:reg, read with the edges' lookup script). reg_register.c
 * calls pres_changed when a REGISTER added or removed a binding (not on a refresh,
 * and not when a binding lapses unseen: nothing watches expiries between REGISTERs,
 * so the next NOTIFY of a change lists only the live ones). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "reginfo.h"
#include "reg.h"
#include "pres.h"
#include "pres_im.h"

SK_LOG_MODULE("reg-event");

#define KEY_MAX 640

/* The bindings of one AOR, shared by the NOTIFYs of one change. */
struct reg_state {
	char aor[REGDATA_AOR_MAX];
	struct regdata_bindings bs;
};

static void state_destroy(void *data)
{
	struct reg_state *st = data;

	regdata_bindings_free(&st->bs);
}

struct reg_fetch {
	pres_fetch_cb *cb;
	void *arg;
	char aor[REGDATA_AOR_MAX];
};

static void on_lookup(int err, struct redisReply *reply, void *arg)
{
	struct reg_fetch *f = arg;
	struct reg_state *st = NULL;
	size_t skipped = 0;

	if (!err && !(st = sk_zalloc(sizeof(*st), state_destroy)))
		err = SK_ENOMEM;
	if (!err && (err = regdata_bindings_from_reply(&st->bs, reply, &skipped)))
		st = sk_deref(st);
	if (!err) {
		snprintf(st->aor, sizeof(st->aor), "%s", f->aor);
		if (skipped)
			SK_WARN("%zu binding(s) of %s could not be decoded", skipped, f->aor);
	} else if (err != SK_ECANCELED) {
		SK_WARN("registrations of %s: %s", f->aor, sk_strerror(err));
	}
	f->cb(err, st, f->arg); /* the engine owns st now */
	sk_deref(f);
}

static int reg_fetch(struct registrar *r, const char *aor, pres_fetch_cb *cb, void *arg)
{
	struct pres_im *im = pres_im_get(r);
	char k[3][KEY_MAX];
	const char *argv[] = {k[0], k[1], k[2]};
	struct reg_fetch *f;
	int err;

	if (!aor || !cb)
		return SK_EINVAL;
	if (!im)
		return SK_ENOMEM;
	if ((err = regdata_key_reg(k[0], sizeof(k[0]), r->cluster, aor)) ||
	    (err = regdata_key_exp(k[1], sizeof(k[1]), r->cluster, aor)) ||
	    (err = regdata_key_meta(k[2], sizeof(k[2]), r->cluster, aor)))
		return err;
	if (!(f = sk_zalloc(sizeof(*f), NULL)))
		return SK_ENOMEM;
	f->cb = cb;
	f->arg = arg;
	snprintf(f->aor, sizeof(f->aor), "%s", aor);
	/* exp and meta too: an AOR still in the three-key layout is moved (regdata_lua.h). */
	err = sk_redis_eval(im->lookup, on_lookup, f, 3, 3, argv, NULL);
	if (err)
		sk_deref(f);
	return err;
}

/* Binding -> <contact> (RFC 3680 §5.3). The id is a hash of the binding key, so it
 * stays the same across refreshes and differs between bindings. */
static void contact_of(struct reginfo_binding *c, char *id, size_t idsize,
		       const Skein__Sip__V1__Binding *x)
{
	char key[REGDATA_URI_MAX + 256];
	uint64_t now_ms = x->expires_at_ms > (uint64_t)x->expires_in * 1000
			      ? x->expires_at_ms - (uint64_t)x->expires_in * 1000
			      : 0;

	if (regdata_binding_key(key, sizeof(key), x->contact, x->instance, x->reg_id))
		snprintf(key, sizeof(key), "%s", x->contact);
	reginfo_id(id, idsize, "c", key);
	*c = (struct reginfo_binding){
	    .id = id,
	    .uri = x->contact,
	    .state = REGINFO_ACTIVE,
	    /* §5.1.2: brought up by a REGISTER; a full document says so for each. */
	    .event = REGINFO_EV_REGISTERED,
	    .expires = (long)x->expires_in,
	    .duration = x->registered_ms && now_ms >= x->registered_ms
			    ? (long)((now_ms - x->registered_ms) / 1000)
			    : -1,
	    .q_milli = x->q_milli <= 1000 ? (int)x->q_milli : 1000,
	    .callid = x->call_id,
	    .cseq = (long)x->cseq,
	};
}

static int reg_body(struct registrar *r, void *state, const Skein__Sip__V1__Subscription *s,
		    char **body, size_t *len)
{
	const struct reg_state *st = state;
	struct reginfo_binding *c = NULL;
	struct reginfo_reg g = {0};
	char aor[REGDATA_AOR_MAX + 8], (*ids)[24] = NULL;
	size_t n = 0;
	int err;

	(void)r;
	if (!st || !s)
		return SK_EINVAL;
	if (st->bs.n) {
		c = calloc(st->bs.n, sizeof(*c));
		ids = calloc(st->bs.n, sizeof(*ids));
		if (!c || !ids) {
			free(c);
			free(ids);
			return SK_ENOMEM;
		}
	}
	for (size_t i = 0; i < st->bs.n; i++) {
		bool dup = false;

		contact_of(&c[n], ids[n], sizeof(ids[n]), st->bs.b[i]);
		/* two stored bindings with one key cannot be; keep the first if so */
		for (size_t k = 0; k < n && !dup; k++)
			dup = !strcmp(ids[k], ids[n]);
		n += !dup;
	}
	snprintf(aor, sizeof(aor), "sip:%s", st->aor);
	g.aor = aor;
	g.b = c;
	g.n = n;
	/* RFC 3680 §5.2: every NOTIFY carries the whole state; the engine counts the
	 * version per subscription (s->version). */
	err = reginfo_build(s->version, true, &g, 1, body);
	if (!err)
		*len = strlen(*body);
	else
		SK_WARN("reginfo of %s: %s", st->aor, sk_strerror(err));
	free(c);
	free(ids);
	return err;
}

const struct pres_pkg_ops pres_ops_reg = {
    .event = "reg",
    .ctype = REGINFO_MIME,
    .owner_only = true,
    .fetch = reg_fetch,
    .body = reg_body,
};
