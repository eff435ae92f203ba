/* pres_mwi: the message-summary event package (RFC 3842) for the offline IM store
 * (pres_im.c): a user's own subscription (owner_only) learns whether instant
 * messages wait for it, as the text-message class of RFC 3458. Kept messages are
 * "new" until delivered: the store does not know of messages read elsewhere, so
 * the old count is always 0. */
#include <stdio.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "msgsum.h"
#include "reg.h"
#include "pres.h"
#include "pres_im.h"

SK_LOG_MODULE("mwi");

/* The state shared by the NOTIFYs of one change. */
struct mwi_state {
	char aor[REGDATA_AOR_MAX];
	unsigned long n;
};

struct mwi_fetch {
	pres_fetch_cb *cb;
	void *arg;
	char aor[REGDATA_AOR_MAX];
};

static void on_count(int err, struct redisReply *reply, void *arg)
{
	struct mwi_fetch *f = arg;
	struct mwi_state *st = NULL;

	if (!err && reply->type != REDIS_REPLY_INTEGER)
		err = SK_EPROTO;
	if (!err && !(st = sk_zalloc(sizeof(*st), NULL)))
		err = SK_ENOMEM;
	if (!err) {
		snprintf(st->aor, sizeof(st->aor), "%s", f->aor);
		st->n = reply->integer > 0 ? (unsigned long)reply->integer : 0;
	} else if (err != SK_ECANCELED) {
		SK_WARN("message summary of %s: %s", f->aor, sk_strerror(err));
	}
	f->cb(err, st, f->arg); /* the engine owns st now */
	sk_deref(f);
}

static int mwi_fetch(struct registrar *r, const char *aor, pres_fetch_cb *cb, void *arg)
{
	struct mwi_fetch *f;
	int err;

	if (!r || !aor || !cb)
		return SK_EINVAL;
	if (!(f = sk_zalloc(sizeof(*f), NULL)))
		return SK_ENOMEM;
	f->cb = cb;
	f->arg = arg;
	snprintf(f->aor, sizeof(f->aor), "%s", aor);
	err = pres_im_count(r, aor, on_count, f);
	if (err)
		sk_deref(f);
	return err;
}

static int mwi_body(struct registrar *r, void *state, const Skein__Sip__V1__Subscription *s,
		    char **body, size_t *len)
{
	const struct mwi_state *st = state;
	char account[REGDATA_AOR_MAX + 8];
	int err;

	(void)r;
	(void)s;
	if (!st)
		return SK_EINVAL;
	/* RFC 3842 §5.2: the account the summary is about, the user's own AOR. */
	snprintf(account, sizeof(account), "sip:%s", st->aor);
	err = msgsum_build(account, st->n, 0, body);
	if (!err)
		*len = strlen(*body);
	return err;
}

const struct pres_pkg_ops pres_ops_mwi = {
    .event = "message-summary",
    .ctype = MSGSUM_MIME,
    .owner_only = true,
    .fetch = mwi_fetch,
    .body = mwi_body,
};
