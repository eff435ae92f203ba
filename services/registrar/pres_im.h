/* pres_im: what the offline IM store (pres_im.c: store, expiry; pres_im_deliver.c:
 * delivery on registration) shares with the packages that read Redis beside it,
 * message-summary (pres_mwi.c) and reg (pres_reg.c). Private to those files.
 *
 * Redis (hash tag = the recipient's AOR):
 *   <c>:{<aor>}:ims     LIST packed StoredMessage, oldest first; stored_ms (field 6)
 *                       and expires_at_ms (field 7) appended as varints by the store
 *                       script from Redis TIME; PEXPIRE a minute after the newest
 *                       expiry
 *   <c>:{<aor>}:imlock  STRING random token: one registrar delivers aor's messages
 *                       at a time (SET NX PX, refreshed per message, deleted by its
 *                       owner only)
 *   <c>:{pres}:timers   "m|<aor>|<id>" at a message's expiry (pres_im_expire) */
#ifndef SKEIN_REGISTRAR_PRES_IM_H
#define SKEIN_REGISTRAR_PRES_IM_H

#include "skein/sk_redis.h"

struct registrar;
struct sk_counter;

enum pres_im_metric {
	PRES_IM_STORED = 0,
	PRES_IM_FULL,	   /* refused: mailbox full (486) */
	PRES_IM_COMPOSING, /* refused: is-composing for an offline user (480) */
	PRES_IM_DELIVERED,
	PRES_IM_UNDELIVERED, /* a delivery attempt failed; the message is kept */
	PRES_IM_EXPIRED,
	PRES_IM_ERROR, /* storage failures */
	PRES_IM_METRIC_MAX_
};

struct pres_im {
	struct sk_redis *redis; /* the client the scripts are registered with */
	struct sk_redis_script *store, *count, *expire, *begin, *next, *unlock;
	struct sk_redis_script *lookup; /* REGDATA_LUA_LOOKUP, for the reg package */
	struct sk_counter *m[PRES_IM_METRIC_MAX_];
};

/* The scripts and metrics (pres_im_start, from pres_start); NULL before. */
struct pres_im *pres_im_get(struct registrar *r);


/* The number of aor's unexpired stored messages: cb's reply is an integer. 0 (cb
 * fires once) or an error (it does not). */
int pres_im_count(struct registrar *r, const char *aor, sk_redis_reply_cb *cb, void *arg);

#endif
