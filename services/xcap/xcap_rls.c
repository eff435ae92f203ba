/* xcap_rls: rls-services service URIs unique across the server's documents (RFC 4826
 * §4.4.3; xcap_rls.h). The document's own duplicates are xcap_auid's (one document);
 * this looks at everyone else's, through the registrar's index. */
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"
#include "regdata.h"
#include "rlsdoc.h"
#include "xcap_rls.h"

SK_LOG_MODULE("xcap.rls");

enum { KEY_SIZE = 600, AOR_SIZE = REGDATA_AOR_MAX };

/* One check. names[2i] is service i's AOR, names[2i+1] the alternative offered if it
 * is taken ("" none); taken[] says which are another's list or a user. */
struct check {
	xcap_rls_cb *cb;
	void *arg;
	char owner[AOR_SIZE];
	size_t n;
	char **uri; /* as written, n */
	char (*names)[AOR_SIZE];
	bool *taken;
	unsigned pending;
	int err;
};

static void check_destroy(void *p)
{
	struct check *k = p;

	rlsdoc_strv_free(k->uri, k->n);
	sk_deref(k->names);
	sk_deref(k->taken);
}

static bool in_doc(const struct check *k, const char *aor)
{
	for (size_t i = 0; i < k->n; i++)
		if (!strcmp(k->names[2 * i], aor))
			return true;
	return false;
}

static void finish(struct check *k)
{
	struct xcap_conflict c;

	if (--k->pending)
		return;
	if (k->err) {
		k->cb(k->err, NULL, k->arg);
		sk_deref(k);
		return;
	}
	for (size_t i = 0; i < k->n; i++) {
		const char *alt = k->names[2 * i + 1];

		if (!k->taken[2 * i])
			continue;
		/* §11.2: the field is a selector of the element or attribute at fault;
		 * alt-value a value that would have been unique (optional). */
		xcap_conflict_set(&c, XCAP_ERR_UNIQUENESS, "rls-services/service/@uri", k->uri[i],
				  NULL);
		snprintf(c.phrase, sizeof(c.phrase), "service uri \"%.90s\" is already in use",
			 k->uri[i]);
		if (alt[0] && !k->taken[2 * i + 1] && !in_doc(k, alt))
			snprintf(c.alt, sizeof(c.alt), "sip:%s", alt);
		SK_INFO("rls-services of %s: %s is another user's list or address, refused",
			k->owner, k->uri[i]);
		k->cb(0, &c, k->arg);
		sk_deref(k);
		return;
	}
	k->cb(0, NULL, k->arg);
	sk_deref(k);
}

static void on_index(int err, redisReply *rep, void *arg)
{
	struct check *k = arg;

	if (!err && (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 * k->n))
		err = SK_EPROTO;
	if (err) {
		k->err = err;
	} else {
		for (size_t j = 0; j < rep->elements; j++) {
			const redisReply *e = rep->element[j];

			if (e->type == REDIS_REPLY_STRING && strcmp(e->str, k->owner))
				k->taken[j] = true;
		}
	}
	finish(k);
}

struct user_q {
	struct check *k;
	size_t j;
};

static void on_user(int err, redisReply *rep, void *arg)
{
	struct user_q *q = arg;
	struct check *k = q->k;

	if (!err && (!rep || rep->type != REDIS_REPLY_INTEGER))
		err = SK_EPROTO;
	if (err)
		k->err = err;
	else if (rep->integer)
		k->taken[q->j] = true;
	sk_deref(q);
	finish(k);
}

/* "list@d" -> "list-<owner's user>@d": a name near the one asked for, in the same
 * domain, that is likely this owner's to take. */
static void alternative(char *out, size_t size, const char *aor, const char *owner)
{
	const char *at = strrchr(aor, '@'), *oat = strrchr(owner, '@');
	char tmp[1024]; /* aor and out may be neighbours in one array */
	int n;

	out[0] = '\0';
	if (!at || !oat)
		return;
	n = snprintf(tmp, sizeof(tmp), "%.*s-%.*s%s", (int)(at - aor), aor, (int)(oat - owner),
		     owner, at);
	if (n > 0 && (size_t)n < size && (size_t)n < sizeof(tmp))
		memcpy(out, tmp, (size_t)n + 1);
}

int xcap_rls_check(struct sk_redis *redis, const char *cluster, const char *owner, const char *doc,
		   size_t len, xcap_rls_cb *cb, void *arg)
{
	char key[KEY_SIZE], **uris = NULL;
	const char **argv = NULL, *why = "";
	struct check *k;
	size_t n = 0, a = 0;
	int err;

	if (!redis || !cluster || !owner || !doc || !cb)
		return SK_EINVAL;
	/* Every service, whatever its packages: the URI is unique, not the pair. */
	err = rlsdoc_services(doc, len, NULL, &uris, &n, &why);
	if (err == SK_EBADMSG)
		return SK_ENOENT; /* xcap_auid checked the document already */
	if (err)
		return err;
	k = sk_zalloc(sizeof(*k), check_destroy);
	if (!k) {
		rlsdoc_strv_free(uris, n);
		return SK_ENOMEM;
	}
	k->cb = cb;
	k->arg = arg;
	snprintf(k->owner, sizeof(k->owner), "%s", owner);
	k->uri = sk_zalloc_array(n + 1, sizeof(*k->uri), NULL);
	k->names = sk_zalloc_array(2 * n + 2, sizeof(*k->names), NULL);
	k->taken = sk_zalloc_array(2 * n + 2, sizeof(*k->taken), NULL);
	if (!k->uri || !k->names || !k->taken) {
		rlsdoc_strv_free(uris, n);
		err = SK_ENOMEM;
		goto out;
	}
	/* sip:/sips: only, as the registrar indexes them; the others keep their
	 * reference in uris and are released with it. */
	for (size_t i = 0; i < n; i++) {
		if (regdata_uri_aor(uris[i], k->names[2 * k->n], AOR_SIZE)) {
			sk_deref(uris[i]);
			continue;
		}
		alternative(k->names[2 * k->n + 1], AOR_SIZE, k->names[2 * k->n], owner);
		k->uri[k->n++] = uris[i];
	}
	sk_deref(uris);
	if (!k->n) {
		err = SK_ENOENT;
		goto out;
	}
	argv = sk_zalloc_array(2 * k->n + 2, sizeof(*argv), NULL);
	if (!argv || (err = sk_redis_key(key, sizeof(key), cluster, "pres", "rls"))) {
		err = argv ? err : SK_ENOMEM;
		goto out;
	}
	argv[a++] = "HMGET";
	argv[a++] = key;
	for (size_t j = 0; j < 2 * k->n; j++)
		argv[a++] = k->names[j];
	/* pending holds one count for the setup, so that no reply finishes early. */
	k->pending = 1;
	if ((err = sk_redis_cmd(redis, on_index, k, (int)a, argv, NULL)))
		goto out;
	k->pending++;
	/* One EXISTS per user: their credentials are in as many slots. */
	for (size_t j = 0; j < 2 * k->n; j++) {
		struct user_q *q;

		if (!k->names[j][0])
			continue;
		if (!(q = sk_zalloc(sizeof(*q), NULL))) {
			k->err = SK_ENOMEM; /* reported through cb: replies are on the way */
			break;
		}
		q->k = k;
		q->j = j;
		if ((err = regdata_key_cred(key, sizeof(key), cluster, k->names[j])) ||
		    (err = sk_redis_cmdf(redis, on_user, q, "EXISTS %s", key))) {
			sk_deref(q);
			k->err = err;
			break;
		}
		k->pending++;
	}
	sk_deref(argv);
	finish(k); /* the setup's count: cb fires on the last reply */
	return 0;
out:
	sk_deref(argv);
	k->pending = 0;
	sk_deref(k);
	return err;
}
