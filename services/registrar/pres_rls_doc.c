/* pres_rls_doc: the indexes the resource list server keeps from the rls-services
 * documents (RFC 4826) and its subscriptions (pres_rls.h; docs/presence.md "Resource
 * lists (RLS)"): list URI -> owner (pres_rls_docs_changed, after an XCAP write),
 * member -> lists with live subscriptions (pres_rls_subscribed), and the NOTIFYs a
 * member's change causes (pres_rls_member_changed). */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"
#include "reg.h"
#include "pres.h"
#include "pres_rls.h"
#include "rlsdoc.h"

SK_LOG_MODULE("pres.rls");

/* ---- member -> lists (rlsin) ---- */

/* Replaces a SET in one step (its slot only). */
static const char LUA_SET_REPLACE[] =
    "redis.call('DEL', KEYS[1])\n"
    "for i = 1, #ARGV, 500 do\n"
    "  redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))\n"
    "end\n"
    "return #ARGV\n";

static int set_replace(struct registrar *r, const char *k, char *const *v, size_t n,
		       const char *what)
{
	const char **argv = sk_zalloc_array(n + 4, sizeof(*argv), NULL);
	int err;

	if (!argv)
		return SK_ENOMEM;
	argv[0] = "EVAL";
	argv[1] = LUA_SET_REPLACE;
	argv[2] = "1";
	argv[3] = k;
	for (size_t i = 0; i < n; i++)
		argv[4 + i] = v[i];
	err = sk_redis_cmd(rls_redis(r), rls_on_logged, (void *)what, (int)(n + 4), argv, NULL);
	sk_deref(argv);
	return err;
}

/* Makes <c>:{m}:rlsin hold list for exactly the members in[0..n) (NULL/0: none):
 * SREM from the members it held before (<c>:{list}:rlsmem), SADD to the new ones.
 * One command per member key: they are in different slots. */
struct sync {
	struct registrar *r;
	char list[RLS_AOR_SIZE];
	char **in;
	size_t n;
};

static void sync_destroy(void *p)
{
	struct sync *y = p;

	for (size_t i = 0; i < y->n; i++)
		sk_deref(y->in[i]);
	sk_deref(y->in);
}

static void on_old_members(int err, redisReply *rep, void *arg)
{
	struct sync *y = arg;
	char k[RLS_KEY_SIZE];

	if (!err && (!rep || rep->type != REDIS_REPLY_ARRAY))
		err = SK_EPROTO;
	if (err) {
		if (err != SK_ECANCELED)
			SK_WARN("list %s: members: %s", y->list, sk_strerror(err));
		sk_deref(y);
		return;
	}
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *e = rep->element[i];
		bool kept = false;

		if (e->type != REDIS_REPLY_STRING)
			continue;
		for (size_t j = 0; j < y->n && !kept; j++)
			kept = !strcmp(y->in[j], e->str);
		if (!kept && !rls_key(y->r, k, e->str, "rlsin"))
			sk_redis_cmdf(rls_redis(y->r), rls_on_logged, "SREM rlsin", "SREM %s %s", k,
				      y->list);
	}
	for (size_t j = 0; j < y->n; j++)
		if (!rls_key(y->r, k, y->in[j], "rlsin"))
			sk_redis_cmdf(rls_redis(y->r), rls_on_logged, "SADD rlsin", "SADD %s %s", k,
				      y->list);
	if (!rls_key(y->r, k, y->list, "rlsmem"))
		set_replace(y->r, k, y->in, y->n, "rlsmem");
	sk_deref(y);
}

/* Takes nothing: the local members of l (or none when l is NULL) are copied. */
static void sync_members(struct registrar *r, const char *list, const struct rls_list *l)
{
	struct sync *y = sk_zalloc(sizeof(*y), sync_destroy);
	char k[RLS_KEY_SIZE];

	if (!y)
		return;
	y->r = r;
	snprintf(y->list, sizeof(y->list), "%s", list);
	if (l && l->n) {
		if (!(y->in = sk_zalloc_array(l->n, sizeof(*y->in), NULL))) {
			sk_deref(y);
			return;
		}
		for (size_t i = 0; i < l->n; i++)
			if (l->m[i].local && (y->in[y->n] = sk_strdup(l->m[i].aor)))
				y->n++;
	}
	if (rls_key(r, k, list, "rlsmem") ||
	    sk_redis_cmdf(rls_redis(r), on_old_members, y, "SMEMBERS %s", k))
		sk_deref(y);
}

static void on_sync_list(int err, struct rls_list *l, void *arg)
{
	struct registrar *r = l->r;

	(void)arg;
	if (err && err != SK_ENOENT) {
		SK_WARN("list %s: %s", l->aor, sk_strerror(err));
		return;
	}
	sync_members(r, l->aor, err ? NULL : l);
}

/* Whether a list still has a live list subscription other than `except`. */
struct unsub {
	struct registrar *r;
	char list[RLS_AOR_SIZE];
	char except[RLS_SID_SIZE];
};

static void on_list_subs(int err, redisReply *rep, void *arg)
{
	struct unsub *u = arg;
	bool live = false;

	if (!err && (!rep || rep->type != REDIS_REPLY_ARRAY))
		err = SK_EPROTO;
	for (size_t i = 0; !err && i < rep->elements && !live; i++) {
		const redisReply *e = rep->element[i];
		Skein__Sip__V1__Subscription *s;

		if (e->type != REDIS_REPLY_STRING)
			continue;
		s = skein__sip__v1__subscription__unpack(NULL, e->len, (const uint8_t *)e->str);
		live =
		    s && s->eventlist && strcmp(s->id, u->except) && strcmp(s->state, "terminated");
		if (s)
			skein__sip__v1__subscription__free_unpacked(s, NULL);
	}
	if (err)
		SK_WARN("list %s: subscriptions: %s", u->list, sk_strerror(err));
	else if (!live)
		sync_members(u->r, u->list, NULL);
	sk_deref(u);
}

void pres_rls_subscribed(struct registrar *r, const Skein__Sip__V1__Subscription *s, bool live)
{
	char k[RLS_KEY_SIZE];
	struct unsub *u;
	int err;

	if (live) {
		/* Resolved now, so that a member's PUBLISH finds the list at once. */
		if ((err = rls_resolve(r, s->resource, on_sync_list, NULL)))
			SK_WARN("list %s: %s", s->resource, sk_strerror(err));
		return;
	}
	/* The engine removes the ended subscription first; another watcher of the list
	 * may still be subscribed, then the members keep the list. */
	if (!(u = sk_zalloc(sizeof(*u), NULL)))
		return;
	u->r = r;
	snprintf(u->list, sizeof(u->list), "%s", s->resource);
	snprintf(u->except, sizeof(u->except), "%s", s->id);
	if ((err = rls_key(r, k, s->resource, "subs")) ||
	    (err = sk_redis_cmdf(rls_redis(r), on_list_subs, u, "HVALS %s", k))) {
		SK_WARN("list %s: %s", s->resource, sk_strerror(err));
		sk_deref(u);
	}
}

struct member_changed {
	struct registrar *r;
	char member[RLS_AOR_SIZE];
};

static void on_rlsin(int err, redisReply *rep, void *arg)
{
	struct member_changed *mc = arg;

	if (!err && (!rep || rep->type != REDIS_REPLY_ARRAY))
		err = SK_EPROTO;
	if (err && err != SK_ECANCELED)
		SK_WARN("lists of %s: %s", mc->member, sk_strerror(err));
	for (size_t i = 0; !err && i < rep->elements; i++)
		if (rep->element[i]->type == REDIS_REPLY_STRING) {
			SK_DEBUG("member %s of list %s changed", mc->member, rep->element[i]->str);
			pres_changed(mc->r, PRES_PKG_PRESENCE, rep->element[i]->str);
		}
	sk_deref(mc);
}

void pres_rls_member_changed(struct registrar *r, const char *member)
{
	struct member_changed *mc = sk_zalloc(sizeof(*mc), NULL);
	char k[RLS_KEY_SIZE];

	if (!mc)
		return;
	mc->r = r;
	snprintf(mc->member, sizeof(mc->member), "%s", member);
	if (rls_key(r, k, member, "rlsin") ||
	    sk_redis_cmdf(rls_redis(r), on_rlsin, mc, "SMEMBERS %s", k))
		sk_deref(mc);
}

/* ---- pres_rls_docs_changed: the index ---- */

/* KEYS = {pres}:rls; ARGV = owner, #new, new list AORs..., old list AORs...
 * RFC 4826 §4: a service URI is unique across the documents of the server; the
 * first owner keeps it. Returns the new lists that are the owner's. */
static const char LUA_INDEX[] = "local owner, n, acc, new = ARGV[1], tonumber(ARGV[2]), {}, {}\n"
				"for i = 3, 2 + n do\n"
				"  local l = ARGV[i]\n"
				"  new[l] = true\n"
				"  local cur = redis.call('HGET', KEYS[1], l)\n"
				"  if not cur or cur == owner then\n"
				"    redis.call('HSET', KEYS[1], l, owner)\n"
				"    acc[#acc + 1] = l\n"
				"  end\n"
				"end\n"
				"for i = 3 + n, #ARGV do\n"
				"  local l = ARGV[i]\n"
				"  if not new[l] and redis.call('HGET', KEYS[1], l) == owner then\n"
				"    redis.call('HDEL', KEYS[1], l)\n"
				"  end\n"
				"end\n"
				"return acc\n";

struct reindex {
	struct registrar *r;
	char owner[RLS_AOR_SIZE];
	char **lists; /* candidates from the document, then those not refused */
	size_t n;
	bool *user; /* lists[i] is a provisioned user */
	unsigned pending;
	char **old;
	size_t nold;
};

static void reindex_destroy(void *p)
{
	struct reindex *x = p;

	rlsdoc_strv_free(x->lists, x->n);
	rlsdoc_strv_free(x->old, x->nold);
	sk_deref(x->user);
}

struct live_check {
	struct registrar *r;
	char list[RLS_AOR_SIZE];
};

static void on_live(int err, redisReply *rep, void *arg)
{
	struct live_check *lc = arg;

	if (!err && rep && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0) {
		if (rls_resolve(lc->r, lc->list, on_sync_list, NULL))
			SK_WARN("list %s: cannot resolve", lc->list);
		pres_changed(lc->r, PRES_PKG_PRESENCE, lc->list);
	} else if (err && err != SK_ECANCELED) {
		SK_WARN("list %s: subscriptions: %s", lc->list, sk_strerror(err));
	}
	sk_deref(lc);
}

/* A list with subscriptions follows its document: members in and out of rlsin, and
 * a NOTIFY of the new list. One without is left alone (nothing to tell). */
static void resync_if_live(struct registrar *r, const char *list)
{
	struct live_check *lc = sk_zalloc(sizeof(*lc), NULL);
	char k[RLS_KEY_SIZE];

	if (!lc)
		return;
	lc->r = r;
	snprintf(lc->list, sizeof(lc->list), "%s", list);
	if (rls_key(r, k, list, "subs") || sk_redis_cmdf(rls_redis(r), on_live, lc, "HLEN %s", k))
		sk_deref(lc);
}

/* Every list the owner had or has: subscriptions follow the document (the engine
 * NOTIFYs them the new list, or ends them when the list went). */
static void on_indexed(int err, redisReply *rep, void *arg)
{
	struct reindex *x = arg;
	char k[RLS_KEY_SIZE];
	char **acc = NULL;
	size_t nacc = 0;

	if (!err && (!rep || rep->type != REDIS_REPLY_ARRAY))
		err = SK_EPROTO;
	if (err) {
		SK_WARN("rls index of %s: %s", x->owner, sk_strerror(err));
		sk_deref(x);
		return;
	}
	acc = sk_zalloc_array(rep->elements + 1, sizeof(*acc), NULL);
	for (size_t i = 0; acc && i < rep->elements; i++)
		if (rep->element[i]->type == REDIS_REPLY_STRING &&
		    (acc[nacc] = sk_strdup(rep->element[i]->str)))
			nacc++;
	for (size_t i = 0; i < x->n; i++) {
		bool ok = false;

		for (size_t j = 0; j < nacc && !ok; j++)
			ok = !strcmp(acc[j], x->lists[i]);
		if (!ok && !x->user[i])
			SK_NOTICE("rls-services of %s: %s is another user's list, ignored",
				  x->owner, x->lists[i]);
	}
	if (acc && !rls_key(x->r, k, x->owner, "rlsidx"))
		set_replace(x->r, k, acc, nacc, "rlsidx");
	SK_INFO("rls-services of %s: %zu list(s)", x->owner, nacc);
	for (size_t i = 0; i < nacc; i++)
		resync_if_live(x->r, acc[i]);
	for (size_t i = 0; i < x->nold; i++) {
		bool kept = false;

		for (size_t j = 0; j < nacc && !kept; j++)
			kept = !strcmp(acc[j], x->old[i]);
		if (!kept) {
			sync_members(x->r, x->old[i], NULL);
			pres_changed(x->r, PRES_PKG_PRESENCE, x->old[i]);
		}
	}
	rlsdoc_strv_free(acc, nacc);
	sk_deref(x);
}

static void index_write(struct reindex *x)
{
	size_t argc = 6 + x->n + x->nold; /* EVAL lua 1 key owner #new ... */
	const char **argv = sk_zalloc_array(argc, sizeof(*argv), NULL);
	char k[RLS_KEY_SIZE], num[24];
	size_t a = 0;
	int err;

	if (!argv || (err = rls_key(x->r, k, "pres", "rls"))) {
		sk_deref(argv);
		sk_deref(x);
		return;
	}
	argv[a++] = "EVAL";
	argv[a++] = LUA_INDEX;
	argv[a++] = "1";
	argv[a++] = k;
	argv[a++] = x->owner;
	size_t nnew = 0;
	for (size_t i = 0; i < x->n; i++)
		nnew += !x->user[i];
	snprintf(num, sizeof(num), "%zu", nnew);
	argv[a++] = num;
	for (size_t i = 0; i < x->n; i++)
		if (!x->user[i])
			argv[a++] = x->lists[i];
	for (size_t i = 0; i < x->nold; i++)
		argv[a++] = x->old[i];
	err = sk_redis_cmd(rls_redis(x->r), on_indexed, x, (int)a, argv, NULL);
	sk_deref(argv);
	if (err) {
		SK_WARN("rls index of %s: %s", x->owner, sk_strerror(err));
		sk_deref(x);
	}
}

static void on_old_index(int err, redisReply *rep, void *arg)
{
	struct reindex *x = arg;

	if (!err && (!rep || rep->type != REDIS_REPLY_ARRAY))
		err = SK_EPROTO;
	if (err) {
		SK_WARN("rls index of %s: %s", x->owner, sk_strerror(err));
		sk_deref(x);
		return;
	}
	x->old = sk_zalloc_array(rep->elements + 1, sizeof(*x->old), NULL);
	for (size_t i = 0; x->old && i < rep->elements; i++)
		if (rep->element[i]->type == REDIS_REPLY_STRING &&
		    (x->old[x->nold] = sk_strdup(rep->element[i]->str)))
			x->nold++;
	index_write(x);
}

static void read_old_index(struct reindex *x)
{
	char k[RLS_KEY_SIZE];

	if (rls_key(x->r, k, x->owner, "rlsidx") ||
	    sk_redis_cmdf(rls_redis(x->r), on_old_index, x, "SMEMBERS %s", k))
		sk_deref(x);
}

struct user_check {
	struct reindex *x;
	size_t i;
};

/* A list URI that is a provisioned user's AOR would capture the subscriptions to
 * that user's own presence: refused. */
static void on_user(int err, redisReply *rep, void *arg)
{
	struct user_check *uc = arg;
	struct reindex *x = uc->x;

	if (err || !rep || rep->type != REDIS_REPLY_INTEGER || rep->integer) {
		x->user[uc->i] = true; /* unknown counts as a user: refused */
		SK_NOTICE("rls-services of %s: %s is a user's address, not a list", x->owner,
			  x->lists[uc->i]);
	}
	sk_deref(uc);
	if (!--x->pending)
		read_old_index(x);
}

static void on_owner_rls_doc(int err, redisReply *rep, void *arg)
{
	struct reindex *x = arg;
	char **uris = NULL;
	size_t n = 0;
	const char *why = "";

	if (err) {
		SK_WARN("rls-services of %s: %s", x->owner, sk_strerror(err));
		sk_deref(x);
		return;
	}
	if (rep && rep->type == REDIS_REPLY_STRING &&
	    rlsdoc_services(rep->str, rep->len, "presence", &uris, &n, &why) == SK_EBADMSG)
		SK_WARN("rls-services of %s: %s", x->owner, why);
	x->lists = sk_zalloc_array(n + 1, sizeof(*x->lists), NULL);
	x->user = sk_zalloc_array(n + 1, sizeof(*x->user), NULL);
	if (!x->lists || !x->user) {
		rlsdoc_strv_free(uris, n);
		sk_deref(x);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char aor[RLS_AOR_SIZE];
		bool dup = false;

		if (regdata_uri_aor(uris[i], aor, sizeof(aor))) {
			SK_NOTICE("rls-services of %s: service %s is not a SIP URI", x->owner,
				  uris[i]);
			continue;
		}
		for (size_t j = 0; j < x->n && !dup; j++)
			dup = !strcmp(x->lists[j], aor);
		if (!dup && (x->lists[x->n] = sk_strdup(aor)))
			x->n++;
	}
	rlsdoc_strv_free(uris, n);
	x->pending = 1;
	for (size_t i = 0; i < x->n; i++) {
		struct user_check *uc = sk_zalloc(sizeof(*uc), NULL);
		char k[RLS_KEY_SIZE];

		if (uc) {
			uc->x = x;
			uc->i = i;
		}
		if (!uc || regdata_key_cred(k, sizeof(k), x->r->cluster, x->lists[i]) ||
		    sk_redis_cmdf(rls_redis(x->r), on_user, uc, "EXISTS %s", k)) {
			x->user[i] = true;
			sk_deref(uc);
			continue;
		}
		x->pending++;
	}
	if (!--x->pending)
		read_old_index(x);
}

void pres_rls_docs_changed(struct registrar *r, const char *owner)
{
	struct reindex *x = sk_zalloc(sizeof(*x), reindex_destroy);

	if (!x)
		return;
	x->r = r;
	snprintf(x->owner, sizeof(x->owner), "%s", owner);
	if (rls_xcap_doc(r, owner, "rls-services", on_owner_rls_doc, x)) {
		SK_WARN("rls-services of %s: cannot read", owner);
		sk_deref(x);
	}
}
