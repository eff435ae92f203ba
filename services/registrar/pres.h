/* pres: the presence agent and IM store of skein-registrar (issue 7, docs/presence.md).
 *
 * The registrar is the SIP user agent server for what the edge hands it as a
 * UasRequest (proto/skein/sip/v1/presence.proto): PUBLISH (RFC 3903), SUBSCRIBE
 * (RFC 6665) for the packages below, and a MESSAGE for a user with no binding
 * (offline IM). Everything lives in Redis (keys below, docs/data-model.md), so any
 * registrar serves any request and a restart of every registrar loses nothing. It
 * makes NOTIFYs (and MESSAGEs delivered from storage) as SIP text and has an edge
 * send them (pres_originate), preferably the edge holding the watcher's flow.
 *
 * Files:
 *   pres_uas.c      UasRequest dispatch (bus handler), 489/405, common checks
 *   pres_publish.c  PUBLISH: SIP-ETag / SIP-If-Match, refresh, modify, remove (412)
 *   pres_sub.c      subscription dialogs for every package: create, refresh, fetch,
 *                   unsubscribe
 *   pres_sub_end.c  expiry (final NOTIFY) and re-authorization on pres-rules changes
 *   pres_notify.c   change -> NOTIFYs: throttling, one state fetch per resource, the
 *                   NOTIFY text, sending; failure handling (481/408 end the dialog)
 *   pres_text.c     pure text: subscription ids, NOTIFY text, random hex (pres_int.h
 *                   is the engine's private header)
 *   pres_presence.c the presence package (PIDF composition, pres-rules authorization
 *                   and filtering), the XCAP change hook (pres_pub_int.h private)
 *   pres_winfo.c    the presence.winfo package (watcher-info)
 *   pres_reg.c      the reg package (RFC 3680 reginfo)
 *   pres_mwi.c      the message-summary package (RFC 3842), fed by the IM store
 *   pres_rls.c      resource lists (RFC 4662) from rls-services documents (RFC 4826)
 *   pres_rls_doc.c  the list index and the member -> lists index (pres_rls.h private)
 *   pres_im.c       offline IM: store (202), expiry (pres_im.h: private)
 *   pres_im_deliver.c  delivery in order when the user registers
 *   pres_timer.c    the cluster-wide timer set: expiries and throttled NOTIFYs
 *   reg_originate.c pres_originate (the bus side of sending through an edge)
 *
 * Redis: docs/data-model.md lists every key (hash tag = the owner AOR): :pubs, :subs,
 * :pstate, :ims, :imlock, :rlsidx, :rlsin, :rlsmem, and the cluster-wide
 * <c>:{pres}:timers (ZSET "<kind>|<aor>|<id>" by due time, ms Redis TIME: s
 * subscription expiry, p publication expiry, n coalesced NOTIFY round, m stored
 * message expiry; popped atomically so exactly one registrar handles each) and
 * <c>:{pres}:rls (list URI -> owner).
 */
#ifndef SKEIN_REGISTRAR_PRES_H
#define SKEIN_REGISTRAR_PRES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "skein/bus/v1/envelope.pb-c.h"

struct registrar;
struct sk_bus_req;

/* Event packages served (RFC 6665 §7.2). */
enum pres_pkg {
	PRES_PKG_PRESENCE = 0, /* "presence", RFC 3856 */
	PRES_PKG_WINFO,	       /* "presence.winfo", RFC 3857 */
	PRES_PKG_MWI,	       /* "message-summary", RFC 3842 */
	PRES_PKG_REG,	       /* "reg", RFC 3680 */
	PRES_PKG_MAX_
};
/* The package named by an Event header value (lower case, no parameters), or -1. */
int pres_pkg_from_event(const char *event);
const char *pres_pkg_event(enum pres_pkg p);

/* nbytes (<= 32) random bytes as lower-case hex into out[2 * nbytes + 1]: entity-
 * tags, message ids, lock tokens, Call-IDs, Content-IDs (pres_text.c). */
void pres_random_hex(char *out, size_t nbytes);

/* ---- pres_uas.c ---- */
int pres_start(struct registrar *r);
void pres_stop(struct registrar *r);
/* Their scripts and metrics, from pres_start. */
int pres_publish_start(struct registrar *r); /* pres_publish.c */
int pres_im_start(struct registrar *r);	     /* pres_im.c */
/* Answer a UasRequest: code, reason (NULL = standard), extra header lines (each
 * "Name: value", no CRLF; NULL-terminated array or NULL), body (ctype NULL = none). */
void pres_answer(struct sk_bus_req *req, unsigned code, const char *reason,
		 const char *const *headers, const char *ctype, const void *body, size_t len);

/* Dispatch targets of pres_uas.c; each answers req (pres_answer) exactly once. */
void pres_publish(struct registrar *r, struct sk_bus_req *req,
		  const Skein__Sip__V1__UasRequest *rq);	    /* pres_publish.c */
void pres_subscribe(struct registrar *r, struct sk_bus_req *req,
		    const Skein__Sip__V1__UasRequest *rq);	    /* pres_sub.c */
void pres_im_store(struct registrar *r, struct sk_bus_req *req,
		   const Skein__Sip__V1__UasRequest *rq);	    /* pres_im.c */

/* ---- a package: what pres_notify needs from it ---- */

/* Authorization of a subscription: state "active", "pending" or "terminated" (with
 * reason, RFC 6665 §4.1.3, e.g. "rejected"). */
typedef void(pres_auth_cb)(int err, const char *state, const char *reason, void *arg);

/* The state of one resource for one package, fetched once per change and shared by
 * the NOTIFYs of all its subscriptions. Package-private; released with sk_deref. */
typedef void(pres_fetch_cb)(int err, void *state, void *arg);
struct pres_pkg_ops {
	const char *event;
	const char *ctype; /* the body type of its NOTIFYs */
	/* Only the resource's owner (or a trusted network) may subscribe (winfo, mwi,
	 * reg); others get 403. */
	bool owner_only;
	/* Fetch the state of resource aor (reads Redis); cb fires once (0 returned) or
	 * not at all (error returned). */
	int (*fetch)(struct registrar *r, const char *aor, pres_fetch_cb *cb, void *arg);
	/* The NOTIFY body of subscription s from state (synchronous): *body refcounted
	 * (sk_deref), *len set. SK_ENOENT: send the NOTIFY without a body (pending). */
	int (*body)(struct registrar *r, void *state, const Skein__Sip__V1__Subscription *s,
		    char **body, size_t *len);
	/* The state a new subscription s gets (and a live one when its rules change);
	 * NULL: "active". cb fires once (0 returned) or not at all. */
	int (*authorize)(struct registrar *r, const Skein__Sip__V1__Subscription *s,
			 pres_auth_cb *cb, void *arg);
	/* The Content-Type header value of the body just built for s, when it has
	 * parameters (multipart/related: type, start, boundary); *ctype refcounted.
	 * NULL or an error: ctype above. */
	int (*ctype_of)(struct registrar *r, void *state, const Skein__Sip__V1__Subscription *s,
			char **ctype);
};
const struct pres_pkg_ops *pres_pkg_ops(enum pres_pkg p);
extern const struct pres_pkg_ops pres_ops_presence, pres_ops_winfo, pres_ops_mwi, pres_ops_reg;

/* Timer "p|<aor>|<etag>" fired (pres_timer.c): the publication goes if it is still
 * due (a refresh re-arms it under its new entity-tag). pres_publish.c. */
void pres_publish_expire(struct registrar *r, const char *aor, const char *etag);

/* ---- pres_notify.c ---- */

/* The state of (aor, pkg) changed: every subscription of it gets a NOTIFY, at most
 * one per notify_interval (later changes are coalesced by a timer in
 * <c>:{pres}:timers). Fire and forget; failures are logged and counted. */
void pres_changed(struct registrar *r, enum pres_pkg pkg, const char *aor);

/* aor's pres-rules changed (an XCAP write): every presence subscription of aor is
 * authorized again; one whose state changed gets a NOTIFY (pending -> active with
 * the document, -> terminated;reason=rejected as its final NOTIFY), and the winfo
 * watchers of aor hear of it. */
void pres_reauthorize(struct registrar *r, const char *aor);
/* xcap_server_opts.on_change (pres_presence.c): a document of xui was written or
 * deleted; pres-rules -> pres_reauthorize, rls-services / resource-lists ->
 * pres_rls_docs_changed, pidf-manipulation -> pres_changed(presence). */
void pres_xcap_changed(void *arg, const char *xui, const char *auid, const char *doc);

/* ---- pres_rls.c (RFC 4662 resource lists, RFC 4826 rls-services) ---- */

extern const struct pres_pkg_ops pres_ops_rls; /* event presence, multipart bodies */
/* Whether aor is a list URI some rls-services document defines: cb(err, is_list). */
typedef void(pres_rls_cb)(int err, bool is_list, void *arg);
int pres_rls_lookup(struct registrar *r, const char *aor, pres_rls_cb *cb, void *arg);
/* A list subscription was created / ended (keeps the member -> lists index). */
void pres_rls_subscribed(struct registrar *r, const Skein__Sip__V1__Subscription *s, bool live);
/* The presence of member changed: the list subscriptions that contain it get
 * pres_changed on their list. */
void pres_rls_member_changed(struct registrar *r, const char *member);
/* An rls-services or resource-lists document of owner changed (XCAP write). */
void pres_rls_docs_changed(struct registrar *r, const char *owner);

/* ---- pres_im.c ---- */

/* A REGISTER added a binding (contact, reached as the REGISTER came: edge, flow,
 * transport, source): deliver aor's stored messages to it, in order, if any. The
 * strings are copied. */
struct pres_binding_ref {
	const char *aor, *contact, *edge, *flow, *transport, *source;
};
void pres_im_registered(struct registrar *r, const struct pres_binding_ref *b);
/* Timer "m|<aor>|<id>" fired (pres_timer.c): drop aor's expired messages. */
void pres_im_expire(struct registrar *r, const char *aor);

/* ---- reg_originate.c ---- */

/* The final status of a request an edge sent for us: code 408 on timeout, 503 when
 * no edge could send it (err names why); reply headers (Subscription-State ...) as
 * received, may be NULL. */
typedef void(pres_originate_cb)(int err, unsigned code, const Skein__Sip__V1__OriginateReply *rep,
				void *arg);
/* Has an edge send msg[0..len) (a request without Via): the edge `edge` first (the
 * one holding flow), else any edge; flow/transport/dest as in Originate. cb fires
 * once (0 returned) or not (error returned). */
int pres_originate(struct registrar *r, const char *edge, const char *flow,
		   const char *transport, const char *dest, const char *msg, size_t len,
		   pres_originate_cb *cb, void *arg);

#endif
