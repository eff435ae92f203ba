/* pres_rls.h: the resource list server (RFC 4662; docs/presence.md "Resource lists
 * (RLS)") beyond the contract in pres.h: the Content-Type op the engine needs, and
 * what pres_rls.c (lists, NOTIFY bodies) and pres_rls_doc.c (the indexes kept from
 * the documents) share. */
#ifndef SKEIN_REGISTRAR_PRES_RLS_H
#define SKEIN_REGISTRAR_PRES_RLS_H

#include <stdbool.h>
#include <stddef.h>
#include "pres.h"
#include "reg.h"

/* The Content-Type header value of the last NOTIFY body pres_ops_rls.body built for
 * subscription s (by s->id) from state: "multipart/related;type=\"application/
 * rlmi+xml\";start=\"<cid>\";boundary=\"...\"" (RFC 2387 requires type and start;
 * the boundary is new for every body). *ctype refcounted (sk_deref). SK_ENOENT when
 * no body was built for s from this state. Meant as an optional op of struct
 * pres_pkg_ops (ctype_of) that the engine calls right after body(). */
int pres_rls_ctype_of(struct registrar *r, void *state, const Skein__Sip__V1__Subscription *s,
		      char **ctype);

/* ---- shared by pres_rls.c and pres_rls_doc.c ---- */

enum { RLS_KEY_SIZE = 600, RLS_AOR_SIZE = REGDATA_AOR_MAX, RLS_SID_SIZE = 64 };

struct redisReply;

/* A list's members, resolved from its owner's documents; also the fetched state
 * of pres_ops_rls (refcounted). */
struct rls_member {
	char aor[RLS_AOR_SIZE];
	char *uri, *name; /* as in the document */
	bool local;
	void *state; /* pres_ops_presence's state, NULL: none */
	int err;
};

struct rls_list {
	struct registrar *r;
	char aor[RLS_AOR_SIZE], owner[RLS_AOR_SIZE];
	char *uri, *name;
	struct rls_member *m;
	size_t n;
	struct rlsdoc_list *doc; /* while resolving */
	/* Content-Type of the last body built per subscription (pres_rls_ctype_of). */
	struct rls_ctype {
		char sid[RLS_SID_SIZE];
		char *ctype;
	} * ct;
	size_t nct;
	void (*cb)(int err, struct rls_list *l, void *arg);
	void *arg;
};

/* The members of list aor: index -> owner -> rls-services -> (resource-lists) ->
 * served domains. cb borrows l (sk_ref to keep it) and fires once (0 returned),
 * with SK_ENOENT when aor is no list (or its document no longer defines it). */
typedef void(rls_list_cb)(int err, struct rls_list *l, void *arg);
int rls_resolve(struct registrar *r, const char *aor, rls_list_cb *cb, void *arg);

/* HGET of owner's XCAP document <auid>/index (xcap_store.h: field "d:<auid>/<doc>"). */
int rls_xcap_doc(struct registrar *r, const char *owner, const char *auid,
		 void (*cb)(int err, struct redisReply *rep, void *arg), void *arg);
/* A fire-and-forget command's callback: logs a failure; arg names the command. */
void rls_on_logged(int err, struct redisReply *rep, void *arg);

static inline struct sk_redis *rls_redis(struct registrar *r)
{
	return sk_daemon_redis(r->d);
}

static inline int rls_key(struct registrar *r, char buf[RLS_KEY_SIZE], const char *owner,
			  const char *what)
{
	return sk_redis_key(buf, RLS_KEY_SIZE, r->cluster, owner, what);
}

#endif
