/* xcap_store: XCAP documents in Redis, shared by every registrar node.
 *
 *   <c>:{<user@domain>}:xcap   HASH "d:<auid>/<doc>" -> document bytes,
 *                                   "e:<auid>/<doc>" -> its ETag (xcap_etag)
 *
 * The owner is the subscriber's AOR, so the documents sit in the slot of their
 * credentials (<c>:{<user@domain>}:cred). A write is a compare-and-set in one Lua
 * script: it happens only if the ETag is still the one the writer read, so that
 * If-Match holds, and no update is lost, with many nodes writing at once. */
#ifndef SKEIN_XCAP_STORE_H
#define SKEIN_XCAP_STORE_H

#include <stdbool.h>
#include <stddef.h>

struct sk_redis;
struct sk_redis_script;

struct xcap_store {
	struct sk_redis *redis;	     /* borrowed */
	struct sk_redis_script *cas; /* XCAP_LUA_CAS */
	char cluster[128];
};

/* KEYS = hash; ARGV = doc field, etag field, expected etag ("" = absent), new bytes
 * (absent: delete), new etag. Returns 1 when written, 0 when the ETag had changed. */
extern const char XCAP_LUA_CAS[];

/* Registers the script (the client loads it on every connect). */
int xcap_store_init(struct xcap_store *s, struct sk_redis *redis, const char *cluster);

/* doc NULL: no such document. etag "" then. Strings borrowed for the call. */
typedef void(xcap_store_get_cb)(int err, const char *doc, size_t len, const char *etag, void *arg);
/* written false: the document changed since `expect` was read (retry). */
typedef void(xcap_store_cas_cb)(int err, bool written, void *arg);

/* 0: cb fires once; otherwise it does not. */
int xcap_store_get(struct xcap_store *s, const char *aor, const char *auid, const char *doc,
		   xcap_store_get_cb *cb, void *arg);
/* data NULL: delete. expect: the ETag read ("" when there was no document). */
int xcap_store_cas(struct xcap_store *s, const char *aor, const char *auid, const char *doc,
		   const char *expect, const char *data, size_t len, const char *etag,
		   xcap_store_cas_cb *cb, void *arg);

#endif
