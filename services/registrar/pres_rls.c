/* pres_rls: the resource list server (RFC 4662) for the lists of rls-services
 * documents (RFC 4826 §4) stored by the XCAP server: the cluster-wide index of list
 * URIs, the members of a list, the multipart/related NOTIFY body, and the member ->
 * lists index that turns a member's PUBLISH into NOTIFYs of the lists holding it.
 *
 * Redis (docs/presence.md "Resource lists (RLS)"):
 *   <c>:{pres}:rls        HASH list AOR -> owner AOR (first owner wins, RFC 4826 §4)
 *   <c>:{<owner>}:rlsidx  SET the list AORs the owner's document put in the index
 *   <c>:{<member>}:rlsin  SET list AORs with live subscriptions that hold member
 *   <c>:{<list>}:rlsmem   SET the members the list was added to (rlsin), to take it
 *                         out of them when the list changes or its last
 *                         subscription ends
 *
 * There are no back-end SUBSCRIBEs: the members are our own presentities, whose
 * state pres_ops_presence fetches and filters for the list's watcher, exactly as for a direct
 * subscription (the member's pres-rules apply to the watcher, not to the list owner). Members in
 * domains we do not serve are listed without an instance (no back-end subscription
 * is made). */
#include <hiredis/hiredis.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "skein/sk_hash.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"
#include "reg.h"
#include "pres.h"
#include "pres_rls.h"
#include "rlmi.h"
#include "rlsdoc.h"

SK_LOG_MODULE("pres.rls");

enum { CID_SIZE = 160 };

#define PIDF_MIME "application/pidf+xml"

/* ---- small helpers ---- */

static const char *domain_of(const char *aor)
{
	const char *at = strrchr(aor, '@');

	return at ? at + 1 : aor;
}

int rls_xcap_doc(struct registrar *r, const char *owner, const char *auid, sk_redis_reply_cb *cb,
		 void *arg)
{
	char k[RLS_KEY_SIZE], field[128];
	int err = rls_key(r, k, owner, "xcap");

	if (err)
		return err;
	snprintf(field, sizeof(field), "d:%s/index", auid);
	return sk_redis_cmdf(rls_redis(r), cb, arg, "HGET %s %s", k, field);
}

static bool rls_reply_str(int err, const redisReply *rep)
{
	return !err && rep && rep->type == REDIS_REPLY_STRING;
}

void rls_on_logged(int err, redisReply *rep, void *arg)
{
	(void)rep;
	if (err && err != SK_ECANCELED)
		SK_WARN("redis %s: %s", (const char *)arg, sk_strerror(err));
}

/* ---- a list's members ---- */

static void list_destroy(void *p)
{
	struct rls_list *l = p;

	for (size_t i = 0; i < l->n; i++) {
		sk_deref(l->m[i].uri);
		sk_deref(l->m[i].name);
		sk_deref(l->m[i].state);
	}
	sk_deref(l->m);
	for (size_t i = 0; i < l->nct; i++)
		sk_deref(l->ct[i].ctype);
	sk_deref(l->ct);
	sk_deref(l->uri);
	sk_deref(l->name);
	sk_deref(l->doc);
}

/* Ends a resolution: cb borrows l (sk_ref to keep it); the resolution's reference
 * goes. */
static void resolved(struct rls_list *l, int err)
{
	l->doc = sk_deref(l->doc);
	l->cb(err, l, l->arg);
	sk_deref(l);
}

static void on_domains(int err, redisReply *rep, void *arg)
{
	struct rls_list *l = arg;

	if (!err && (!rep || rep->type != REDIS_REPLY_ARRAY))
		err = SK_EPROTO;
	if (err) {
		resolved(l, err);
		return;
	}
	for (size_t i = 0; i < l->n; i++)
		for (size_t j = 0; j < rep->elements && !l->m[i].local; j++)
			l->m[i].local = rep->element[j]->type == REDIS_REPLY_STRING &&
					!strcasecmp(rep->element[j]->str, domain_of(l->m[i].aor));
	resolved(l, 0);
}

/* The document's entries -> members: SIP AORs only, each once, never the list
 * itself (a list holding its own URI would notify itself for ever). */
static void members_build(struct rls_list *l)
{
	const struct rlsdoc_list *d = l->doc;
	char k[RLS_KEY_SIZE];
	int err;

	if (d->cut)
		SK_NOTICE("list %s of %s: more than %d members or %d references, cut", l->aor,
			  l->owner, RLSDOC_MAX_ENTRIES, RLSDOC_MAX_REFS);
	l->m = sk_zalloc_array(d->n ? d->n : 1, sizeof(*l->m), NULL);
	if (!l->m) {
		resolved(l, SK_ENOMEM);
		return;
	}
	l->uri = d->uri ? sk_ref(d->uri) : NULL;
	l->name = d->name ? sk_ref(d->name) : NULL;
	for (size_t i = 0; i < d->n; i++) {
		struct rls_member *m = &l->m[l->n];
		bool dup = false;

		if (regdata_uri_aor(d->e[i].uri, m->aor, sizeof(m->aor))) {
			SK_DEBUG("list %s: member %s is not a SIP AOR, skipped", l->aor,
				 d->e[i].uri);
			continue;
		}
		for (size_t j = 0; j < l->n && !dup; j++)
			dup = !strcmp(l->m[j].aor, m->aor);
		if (dup || !strcmp(m->aor, l->aor))
			continue;
		m->uri = sk_ref(d->e[i].uri);
		m->name = d->e[i].name ? sk_ref(d->e[i].name) : NULL;
		l->n++;
	}
	/* Which members are ours: the served domains (regdata.h, a small set). */
	if ((err = regdata_key_domains(k, sizeof(k), l->r->cluster)) ||
	    (err = sk_redis_cmdf(rls_redis(l->r), on_domains, l, "SMEMBERS %s", k)))
		resolved(l, err);
}

/* RFC 4826 §4: <resource-list> and <external> name lists by XCAP URI. We follow
 * those into the owner's own resource-lists document only: a list may not reveal
 * another user's documents (the XCAP server would not serve them to the owner). */
static void on_rl_doc(int err, redisReply *rep, void *arg)
{
	struct rls_list *l = arg;
	struct rlsdoc_list *d = l->doc;

	if (err) {
		resolved(l, err);
		return;
	}
	for (size_t i = 0; i < d->nrefs; i++) { /* nrefs grows as references add more */
		struct rlsdoc_ref ref;
		char owner[RLS_AOR_SIZE];
		const char *why = "";
		int e = rlsdoc_ref_parse(d->refs[i], &ref);

		/* The XUI as the XCAP server takes it: sip:/sips: or a bare user@domain. */
		if (!e && (regdata_uri_aor(ref.xui, owner, sizeof(owner)) &&
			   regdata_aor_norm(owner, sizeof(owner), ref.xui, &why)))
			e = SK_EINVAL;
		if (!e && (strcmp(owner, l->owner) || strcmp(ref.doc, "index")))
			e = SK_ENOTSUP; /* not the owner's own document */
		if (!e && !rls_reply_str(0, rep))
			e = SK_ENOENT;
		if (!e)
			e = rlsdoc_list_add(d, rep->str, rep->len, &ref, &why);
		if (e == SK_ENOMEM) {
			resolved(l, e);
			return;
		}
		if (e)
			SK_DEBUG("list %s of %s: reference %s not followed: %s %s", l->aor,
				 l->owner, d->refs[i], sk_strerror(e), why);
	}
	members_build(l);
}

static bool same_aor(const char *uri, void *arg)
{
	char aor[RLS_AOR_SIZE];

	return !regdata_uri_aor(uri, aor, sizeof(aor)) && !strcmp(aor, arg);
}

static void on_rls_doc(int err, redisReply *rep, void *arg)
{
	struct rls_list *l = arg;
	const char *why = "";

	if (!err && !rls_reply_str(err, rep))
		err = SK_ENOENT; /* the document went: the index is stale */
	if (!err)
		err = rlsdoc_service_list(rep->str, rep->len, same_aor, l->aor, &l->doc, &why);
	if (err == SK_EBADMSG)
		SK_WARN("rls-services of %s: %s", l->owner, why);
	if (err) {
		resolved(l, err);
		return;
	}
	if (!l->doc->nrefs) {
		members_build(l);
		return;
	}
	if ((err = rls_xcap_doc(l->r, l->owner, "resource-lists", on_rl_doc, l)))
		resolved(l, err);
}

static void on_owner(int err, redisReply *rep, void *arg)
{
	struct rls_list *l = arg;

	if (!err && !rls_reply_str(err, rep))
		err = SK_ENOENT;
	if (!err) {
		snprintf(l->owner, sizeof(l->owner), "%s", rep->str);
		err = rls_xcap_doc(l->r, l->owner, "rls-services", on_rls_doc, l);
	}
	if (err)
		resolved(l, err);
}

int rls_resolve(struct registrar *r, const char *aor, rls_list_cb *cb, void *arg)
{
	struct rls_list *l;
	char k[RLS_KEY_SIZE];
	int err = rls_key(r, k, "pres", "rls");

	if (err)
		return err;
	if (!(l = sk_zalloc(sizeof(*l), list_destroy)))
		return SK_ENOMEM;
	l->r = r;
	l->cb = cb;
	l->arg = arg;
	snprintf(l->aor, sizeof(l->aor), "%s", aor);
	err = sk_redis_cmdf(rls_redis(r), on_owner, l, "HGET %s %s", k, aor);
	if (err)
		sk_deref(l);
	return err;
}

/* ---- pres_ops_rls.fetch: the list, then every local member's presence ---- */

struct fetch {
	struct rls_list *l;
	pres_fetch_cb *cb;
	void *arg;
	unsigned pending;
	struct fetch_one {
		struct fetch *f;
		size_t i;
	} * one;
};

static void fetch_destroy(void *p)
{
	struct fetch *f = p;

	sk_deref(f->l);
	sk_deref(f->one);
}

static void fetch_done(struct fetch *f)
{
	if (--f->pending)
		return;
	f->cb(0, sk_ref(f->l), f->arg); /* the engine releases its reference */
	sk_deref(f);
}

static void on_member_state(int err, void *state, void *arg)
{
	struct fetch_one *o = arg;
	struct rls_member *m = &o->f->l->m[o->i];

	m->err = err;
	m->state = err ? sk_deref(state) : state; /* its fetch handed us a reference */
	if (err)
		SK_DEBUG("list %s: presence of %s: %s", o->f->l->aor, m->aor, sk_strerror(err));
	fetch_done(o->f);
}

static void on_list(int err, struct rls_list *l, void *arg)
{
	struct fetch *f = arg;

	if (err) {
		f->cb(err, NULL, f->arg);
		sk_deref(f);
		return;
	}
	f->l = sk_ref(l);
	f->one = sk_zalloc_array(l->n ? l->n : 1, sizeof(*f->one), NULL);
	f->pending = 1; /* held until every fetch is started */
	for (size_t i = 0; i < l->n && f->one; i++) {
		if (!l->m[i].local)
			continue;
		f->one[i].f = f;
		f->one[i].i = i;
		f->pending++;
		/* All at once: the engine waits for the slowest, not for the sum. */
		if ((l->m[i].err =
			 pres_ops_presence.fetch(l->r, l->m[i].aor, on_member_state, &f->one[i])))
			f->pending--;
	}
	fetch_done(f);
}

static int rls_fetch(struct registrar *r, const char *aor, pres_fetch_cb *cb, void *arg)
{
	struct fetch *f = sk_zalloc(sizeof(*f), fetch_destroy);
	int err;

	if (!f)
		return SK_ENOMEM;
	f->cb = cb;
	f->arg = arg;
	if ((err = rls_resolve(r, aor, on_list, f)))
		sk_deref(f);
	return err;
}

/* ---- pres_ops_rls.body: RLMI + one PIDF per member (RFC 4662 §5) ---- */

/* A stable instance id per member (RFC 4662 §5: unique within the resource; kept
 * across NOTIFYs so the subscriber sees the same back-end subscription). */
static void instance_id(char out[24], const char *aor)
{
	uint64_t h = sk_fnv64_str(SK_FNV64_BASIS, aor);

	snprintf(out, 24, "i%016llx", (unsigned long long)h);
}

static int remember_ctype(struct rls_list *l, const char *sid, char *ctype)
{
	struct rls_ctype *ct;

	for (size_t i = 0; i < l->nct; i++)
		if (!strcmp(l->ct[i].sid, sid)) {
			sk_deref(l->ct[i].ctype);
			l->ct[i].ctype = ctype;
			return 0;
		}
	ct = sk_zalloc_array(l->nct + 1, sizeof(*ct), NULL);
	if (!ct) {
		sk_deref(ctype);
		return SK_ENOMEM;
	}
	if (l->nct)
		memcpy(ct, l->ct, l->nct * sizeof(*ct));
	snprintf(ct[l->nct].sid, sizeof(ct[l->nct].sid), "%s", sid);
	ct[l->nct].ctype = ctype;
	sk_deref(l->ct);
	l->ct = ct;
	l->nct++;
	return 0;
}

static int rls_body(struct registrar *r, void *state, const Skein__Sip__V1__Subscription *s,
		    char **bodyp, size_t *lenp)
{
	struct rls_list *l = state;
	size_t n = l->n ? l->n : 1;
	struct rlmi_resource *res = sk_zalloc_array(n, sizeof(*res), NULL);
	struct rlmi_instance *inst = sk_zalloc_array(n, sizeof(*inst), NULL);
	char **pidf = sk_zalloc_array(n, sizeof(*pidf), NULL);
	char(*cid)[CID_SIZE] = sk_zalloc_array(n, CID_SIZE, NULL);
	char(*iid)[24] = sk_zalloc_array(n, 24, NULL);
	char tag[32], start[CID_SIZE], boundary[48], luri[RLS_AOR_SIZE + 8];
	char *ctype = NULL;
	struct rlmi_list rl = {0};
	int err = 0;

	*bodyp = NULL;
	*lenp = 0;
	if (!res || !inst || !pidf || !cid || !iid) {
		err = SK_ENOMEM;
		goto out;
	}
	/* Content-IDs unique per body (RFC 2392): random, in the list's domain. */
	pres_random_hex(tag, 8);
	snprintf(start, sizeof(start), "%.20s@%.100s", tag, domain_of(l->aor));
	for (size_t i = 0; i < l->n; i++) {
		const struct rls_member *m = &l->m[i];
		Skein__Sip__V1__Subscription fake = *s;
		size_t len = 0;
		int e;

		res[i].uri = m->uri;
		res[i].name = m->name;
		if (!m->local)
			continue; /* no back-end subscription: a resource without instance */
		instance_id(iid[i], m->aor);
		inst[i].id = iid[i];
		res[i].inst = &inst[i];
		res[i].n = 1;
		/* As if the watcher had subscribed to the member: its pres-rules decide
		 * (the RLS acts for the subscriber: its identity, not the owner's). */
		fake.resource = (char *)m->aor;
		fake.resource_uri = m->uri;
		fake.eventlist = false;
		fake.event = (char *)"presence";
		e = m->state ? pres_ops_presence.body(r, m->state, &fake, &pidf[i], &len)
			     : SK_ENOENT;
		if (e) {
			inst[i].state = RLMI_PENDING; /* not (yet) authorized, or no state */
			continue;
		}
		snprintf(cid[i], CID_SIZE, "%.20s.%zu@%.100s", tag, i, domain_of(l->aor));
		inst[i].state = RLMI_ACTIVE;
		inst[i].cid = cid[i];
		inst[i].body = pidf[i];
		inst[i].len = len;
		inst[i].ctype = PIDF_MIME;
	}
	if (!l->uri)
		snprintf(luri, sizeof(luri), "sip:%s", l->aor);
	rl.uri = l->uri ? l->uri : luri;
	rl.version = s->version;
	rl.full = true; /* every NOTIFY carries the whole list (RFC 4662 §5) */
	rl.name = l->name;
	rl.res = res;
	rl.n = l->n;
	/* A boundary found in a part is refused: draw again (RFC 2046 §5.1.1). */
	for (int tries = 0; tries < 3; tries++) {
		char rnd[40];

		pres_random_hex(rnd, 12);
		snprintf(boundary, sizeof(boundary), "rls-%s", rnd);
		err = rlmi_multipart(&rl, boundary, start, bodyp, &ctype);
		if (err != SK_EINVAL)
			break;
	}
	if (!err)
		err = remember_ctype(l, s->id, ctype);
	if (err) {
		*bodyp = sk_deref(*bodyp);
		SK_WARN("list %s: NOTIFY body for %s: %s", l->aor, s->watcher, sk_strerror(err));
	} else {
		*lenp = strlen(*bodyp);
	}
out:
	for (size_t i = 0; pidf && i < l->n; i++)
		sk_deref(pidf[i]);
	sk_deref(res);
	sk_deref(inst);
	sk_deref(pidf);
	sk_deref(cid);
	sk_deref(iid);
	return err;
}

int pres_rls_ctype_of(struct registrar *r, void *state, const Skein__Sip__V1__Subscription *s,
		      char **ctype)
{
	const struct rls_list *l = state;

	(void)r;
	*ctype = NULL;
	for (size_t i = 0; l && i < l->nct; i++)
		if (!strcmp(l->ct[i].sid, s->id)) {
			*ctype = sk_ref(l->ct[i].ctype);
			return 0;
		}
	return SK_ENOENT;
}

/* ---- pres_ops_rls.authorize: the list's owner only ---- */

/* RFC 4662 leaves who may subscribe to a list to the RLS (its security
 * considerations); an RFC 4826 list is its owner's (a buddy list): anyone else
 * would learn who is on it. */
struct authz {
	pres_auth_cb *cb;
	void *arg;
	char watcher[RLS_AOR_SIZE];
	bool authenticated;
};

static void on_authz_owner(int err, redisReply *rep, void *arg)
{
	struct authz *a = arg;

	if (err)
		a->cb(err, NULL, NULL, a->arg);
	else if (rls_reply_str(0, rep) && a->authenticated && !strcmp(rep->str, a->watcher))
		a->cb(0, "active", NULL, a->arg);
	else
		a->cb(0, "terminated", "rejected", a->arg);
	sk_deref(a);
}

static int rls_authorize(struct registrar *r, const Skein__Sip__V1__Subscription *s,
			 pres_auth_cb *cb, void *arg)
{
	struct authz *a;
	char k[RLS_KEY_SIZE];
	int err = rls_key(r, k, "pres", "rls");

	if (err)
		return err;
	if (!(a = sk_zalloc(sizeof(*a), NULL)))
		return SK_ENOMEM;
	a->cb = cb;
	a->arg = arg;
	a->authenticated = s->authenticated;
	snprintf(a->watcher, sizeof(a->watcher), "%s", s->watcher);
	if ((err = sk_redis_cmdf(rls_redis(r), on_authz_owner, a, "HGET %s %s", k, s->resource)))
		sk_deref(a);
	return err;
}

const struct pres_pkg_ops pres_ops_rls = {
    .event = "presence",
    .ctype = "multipart/related", /* the parameters: pres_rls_ctype_of */
    .owner_only = false,
    .fetch = rls_fetch,
    .body = rls_body,
    .authorize = rls_authorize,
    .ctype_of = pres_rls_ctype_of,
};

/* ---- pres_rls_lookup ---- */

struct lookup {
	pres_rls_cb *cb;
	void *arg;
};

static void on_lookup(int err, redisReply *rep, void *arg)
{
	struct lookup *lk = arg;

	lk->cb(err, !err && rls_reply_str(0, rep), lk->arg);
	sk_deref(lk);
}

int pres_rls_lookup(struct registrar *r, const char *aor, pres_rls_cb *cb, void *arg)
{
	struct lookup *lk;
	char k[RLS_KEY_SIZE];
	int err = rls_key(r, k, "pres", "rls");

	if (err)
		return err;
	if (!(lk = sk_zalloc(sizeof(*lk), NULL)))
		return SK_ENOMEM;
	lk->cb = cb;
	lk->arg = arg;
	if ((err = sk_redis_cmdf(rls_redis(r), on_lookup, lk, "HGET %s %s", k, aor)))
		sk_deref(lk);
	return err;
}
