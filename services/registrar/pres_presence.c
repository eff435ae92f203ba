/* The presence event package (RFC 3856) on the registrar's side: the state of a
 * presentity is its live publications composed into one PIDF document (with the
 * pidf-manipulation document, RFC 4827, when nothing is published); what a watcher
 * sees and whether it may watch at all is the presentity's pres-rules (RFC 5025).
 * Also the XCAP change hook, which tells the presence agent that rules, lists or
 * hand-set presence changed. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "skein/sk_daemon.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"
#include "pidf.h"
#include "policy.h"
#include "reg.h"
#include "pres.h"
#include "pres_pub_int.h"

SK_LOG_MODULE("presence");

#define RULES_FIELD "d:pres-rules/" PRES_XCAP_DOC
#define MANIP_FIELD "d:pidf-manipulation/" PRES_XCAP_DOC

/* The state of one presentity, shared by the NOTIFYs of one change. */
struct pres_state {
	char aor[REGDATA_AOR_MAX];
	char entity[REGDATA_AOR_MAX + 8]; /* "sip:" aor */
	char *doc;			  /* composed, unfiltered (refcounted string) */
	size_t len;
	char *rules; /* the pres-rules document, NULL when the presentity has none */
	size_t rules_len;
	time_t now; /* Redis' time of the fetch, for <validity> */
};

static void state_destroy(void *data)
{
	struct pres_state *st = data;

	sk_deref(st->doc);
	sk_deref(st->rules);
}

static const redisReply *str_or_nil(const redisReply *e)
{
	return e && e->type == REDIS_REPLY_STRING ? e : NULL;
}

static char *dup_bytes(const char *s, size_t len)
{
	char *d = sk_zalloc(len + 1, NULL);

	if (d)
		memcpy(d, s, len);
	return d;
}

/* ---- fetch ---- */

struct fetch_op {
	struct registrar *r;
	char aor[REGDATA_AOR_MAX];
	pres_fetch_cb *cb;
	void *arg;
};

/* The live publications of the reply, composed (newest wins, RFC 4479 §4). */
static int compose(struct pres_state *st, const redisReply *pubs, uint64_t now,
		   const redisReply *manip)
{
	size_t n = pubs->elements / 2, k = 0;
	Skein__Sip__V1__Publication **msg = NULL;
	struct pidf_pub *pp = NULL;
	int err;

	if (n) {
		msg = calloc(n, sizeof(*msg));
		pp = calloc(n, sizeof(*pp));
		if (!msg || !pp) {
			err = SK_ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const redisReply *v = pubs->element[2 * i + 1];
		Skein__Sip__V1__Publication *p;

		if (v->type != REDIS_REPLY_STRING)
			continue;
		p = skein__sip__v1__publication__unpack(NULL, v->len, (const uint8_t *)v->str);
		if (!p) {
			SK_WARN("%s: a stored publication does not unpack; skipped", st->aor);
			continue;
		}
		/* Expired but its timer not yet run: gone already (RFC 3903 §4.1). */
		if (p->expires_at_ms <= now) {
			skein__sip__v1__publication__free_unpacked(p, NULL);
			continue;
		}
		msg[k] = p;
		pp[k].body = (const char *)p->body.data;
		pp[k].len = p->body.len;
		pp[k].time = p->published_ms;
		k++;
	}
	err = pidf_compose(pp, k, st->entity, manip ? manip->str : NULL, manip ? manip->len : 0,
			   &st->doc);
	if (!err)
		st->len = strlen(st->doc);
out:
	for (size_t i = 0; i < k; i++)
		skein__sip__v1__publication__free_unpacked(msg[i], NULL);
	free(msg);
	free(pp);
	return err;
}

static void on_fetch(int err, struct redisReply *reply, void *arg)
{
	struct fetch_op *o = arg;
	struct pres_state *st = NULL;
	const redisReply *rules, *manip;
	uint64_t now;

	if (!err && (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
		     reply->element[0]->type != REDIS_REPLY_INTEGER ||
		     reply->element[1]->type != REDIS_REPLY_ARRAY))
		err = SK_EPROTO;
	if (err)
		goto out;
	now = (uint64_t)reply->element[0]->integer;
	rules = str_or_nil(reply->elements > 2 ? reply->element[2] : NULL);
	manip = str_or_nil(reply->elements > 3 ? reply->element[3] : NULL);
	st = sk_zalloc(sizeof(*st), state_destroy);
	if (!st) {
		err = SK_ENOMEM;
		goto out;
	}
	snprintf(st->aor, sizeof(st->aor), "%s", o->aor);
	snprintf(st->entity, sizeof(st->entity), "sip:%s", o->aor);
	st->now = (time_t)(now / 1000);
	if (rules) {
		st->rules = dup_bytes(rules->str, rules->len);
		st->rules_len = rules->len;
		if (!st->rules)
			err = SK_ENOMEM;
	}
	if (!err)
		err = compose(st, reply->element[1], now, manip);
out:
	if (err) {
		if (err != SK_ECANCELED)
			SK_WARN("presence of %s: %s", o->aor, sk_strerror(err));
		st = sk_deref(st);
	}
	/* The callee owns the reference (pres.h: released with sk_deref). */
	o->cb(err, st, o->arg);
	sk_deref(o);
}

static int keys(struct registrar *r, const char *aor, char *pubs, char *xcap, size_t size)
{
	int err = sk_redis_key(pubs, size, r->cluster, aor, "pubs");

	return err ? err : sk_redis_key(xcap, size, r->cluster, aor, "xcap");
}

static int presence_fetch(struct registrar *r, const char *aor, pres_fetch_cb *cb, void *arg)
{
	struct sk_redis_script *script = pres_script(r, PRES_SCRIPT_PRES_FETCH);
	char kp[REGDATA_AOR_MAX + 160], kx[REGDATA_AOR_MAX + 160];
	struct fetch_op *o;
	int err;

	if (!script)
		return SK_ENOMEM;
	if (!aor || !cb || strlen(aor) >= REGDATA_AOR_MAX)
		return SK_EINVAL;
	err = keys(r, aor, kp, kx, sizeof(kp));
	if (err)
		return err;
	o = sk_zalloc(sizeof(*o), NULL);
	if (!o)
		return SK_ENOMEM;
	o->r = r;
	o->cb = cb;
	o->arg = arg;
	snprintf(o->aor, sizeof(o->aor), "%s", aor);
	const char *av[] = {kp, kx, RULES_FIELD, MANIP_FIELD};
	err = sk_redis_eval(script, on_fetch, o, 2, 4, av, NULL);
	if (err)
		sk_deref(o);
	return err;
}

/* ---- authorization and the watcher's view ---- */

/* A watcher asking for its own presence (a client showing its own status, RFC 3856
 * §6.6 lets the presentity see everything). Only a verified identity counts. */
static bool own(const char *aor, const Skein__Sip__V1__Subscription *s)
{
	return s->authenticated && !strcmp(s->watcher, aor);
}

/* The action of the presentity's rules for s; no rules document: the default.
 * *perm: what the rules permit; NULL when the document goes unfiltered (no rules at
 * all: permissions are only restricted once the user wrote rules). */
static enum policy_action decide(struct registrar *r, const char *aor, const char *rules,
				 size_t rules_len, const Skein__Sip__V1__Subscription *s,
				 time_t now, struct pidf_permissions *perm, bool *filtered)
{
	enum policy_action dflt = pres_policy_default(r->conf->pres_default_policy);
	char uri[REGDATA_AOR_MAX + 8];
	struct policy_query q = {.watcher = uri, .authenticated = s->authenticated, .now = now};
	struct policy_result res;
	const char *why = NULL;
	int err;

	*filtered = false;
	if (!rules)
		return dflt;
	snprintf(uri, sizeof(uri), "sip:%s", s->watcher);
	err = policy_eval(rules, rules_len, &q, dflt, &res, &why);
	if (err) {
		/* Fail closed: the default action, nothing permitted (policy.h). */
		SK_NOTICE("%s: pres-rules unusable (%s): default policy, nothing permitted", aor,
			  err == SK_EBADMSG && why ? why : sk_strerror(err));
		memset(&res, 0, sizeof(res));
		res.action = dflt;
	}
	if (perm)
		*perm = res.perm;
	*filtered = true;
	return res.action;
}

static int presence_body(struct registrar *r, void *state, const Skein__Sip__V1__Subscription *s,
			 char **body, size_t *len)
{
	struct pres_state *st = state;
	struct pidf_permissions perm;
	enum policy_action a;
	bool filtered;
	int err;

	if (!st || !s || !body || !len)
		return SK_EINVAL;
	/* Pending and terminated NOTIFYs carry no state (RFC 3856 §6.7). */
	if (strcmp(s->state, "active"))
		return SK_ENOENT;
	if (own(st->aor, s)) {
		*body = sk_ref(st->doc);
		*len = st->len;
		return 0;
	}
	a = decide(r, st->aor, st->rules, st->rules_len, s, st->now, &perm, &filtered);
	switch (a) {
	case POLICY_POLITE_BLOCK:
		/* RFC 5025 §3.2.1: it looks like an offline presentity, nothing more. */
		err = pidf_offline(st->entity, body);
		break;
	case POLICY_ALLOW:
		if (!filtered) {
			*body = sk_ref(st->doc);
			*len = st->len;
			return 0;
		}
		err = pidf_filter(st->doc, st->len, &perm, body);
		break;
	default:
		/* Active, but the rules now say confirm or block: reauthorization is on
		 * its way; meanwhile nothing. */
		return SK_ENOENT;
	}
	if (!err)
		*len = strlen(*body);
	return err;
}

struct auth_op {
	struct registrar *r;
	char aor[REGDATA_AOR_MAX];
	Skein__Sip__V1__Subscription sub; /* the fields decide() reads */
	char watcher[REGDATA_AOR_MAX];
	pres_auth_cb *cb;
	void *arg;
};

static void on_rules(int err, struct redisReply *reply, void *arg)
{
	struct auth_op *o = arg;
	const redisReply *rules = NULL;
	const char *state = NULL, *reason = NULL;
	bool filtered;

	if (!err &&
	    (!reply || (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_NIL)))
		err = SK_EPROTO;
	if (!err) {
		enum policy_action a;

		rules = str_or_nil(reply);
		a = decide(o->r, o->aor, rules ? rules->str : NULL, rules ? rules->len : 0, &o->sub,
			   time(NULL), NULL, &filtered);
		state = pres_auth_state(a, own(o->aor, &o->sub), &reason);
		SK_DEBUG("%s watched by %s%s: %s (%s)", o->aor, o->watcher,
			 o->sub.authenticated ? "" : " (unverified)", policy_action_name(a),
			 rules ? "rules" : "default");
	} else if (err != SK_ECANCELED) {
		SK_WARN("pres-rules of %s: %s", o->aor, sk_strerror(err));
	}
	o->cb(err, state, reason, o->arg);
	sk_deref(o);
}

static int presence_authorize(struct registrar *r, const Skein__Sip__V1__Subscription *s,
			      pres_auth_cb *cb, void *arg)
{
	char key[REGDATA_AOR_MAX + 160];
	struct auth_op *o;
	int err;

	if (!s || !cb || strlen(s->resource) >= REGDATA_AOR_MAX)
		return SK_EINVAL;
	err = sk_redis_key(key, sizeof(key), r->cluster, s->resource, "xcap");
	if (err)
		return err;
	o = sk_zalloc(sizeof(*o), NULL);
	if (!o)
		return SK_ENOMEM;
	o->r = r;
	o->cb = cb;
	o->arg = arg;
	snprintf(o->aor, sizeof(o->aor), "%s", s->resource);
	snprintf(o->watcher, sizeof(o->watcher), "%s", s->watcher);
	skein__sip__v1__subscription__init(&o->sub);
	o->sub.watcher = o->watcher;
	o->sub.authenticated = s->authenticated;
	err = sk_redis_cmdf(sk_daemon_redis(r->d), on_rules, o, "HGET %s %s", key, RULES_FIELD);
	if (err)
		sk_deref(o);
	return err;
}

const struct pres_pkg_ops pres_ops_presence = {
    .event = "presence",
    .ctype = PIDF_MIME,
    .owner_only = false,
    .fetch = presence_fetch,
    .body = presence_body,
    .authorize = presence_authorize,
};

/* ---- XCAP writes ---- */

void pres_xcap_changed(void *arg, const char *xui, const char *auid, const char *doc)
{
	struct registrar *r = arg;

	if (!r || !xui || !auid || !doc)
		return;
	SK_DEBUG("xcap %s/%s of %s changed", auid, doc, xui);
	if (!strcmp(auid, "pres-rules")) {
		if (strcmp(doc, PRES_XCAP_DOC))
			return; /* not the document we read */
		/* Who may watch, and what they see, may have changed. */
		pres_reauthorize(r, xui);
		pres_changed(r, PRES_PKG_PRESENCE, xui);
		/* lists that hold xui show it filtered by the same rules */
		pres_rls_member_changed(r, xui);
	} else if (!strcmp(auid, "pidf-manipulation")) {
		if (strcmp(doc, PRES_XCAP_DOC))
			return;
		pres_changed(r, PRES_PKG_PRESENCE, xui);
		pres_rls_member_changed(r, xui);
	} else if (!strcmp(auid, "rls-services") || !strcmp(auid, "resource-lists")) {
		/* Any document: an rls-services list may point into any resource-lists
		 * document of its owner (RFC 4826 §4.2). */
		pres_rls_docs_changed(r, xui);
	}
}
