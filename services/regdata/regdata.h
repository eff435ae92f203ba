/* regdata: the subscriber data model in Redis, shared by skein-edge (auth, routing),
 * skein-registrar (bindings) and skeinctl (provisioning). docs/data-model.md is the
 * reference for operators; this header is the one place the key names are spelled.
 *
 * Every key is "<cluster>:{<owner>}:<what>" (sk_redis_key), so all keys of one owner
 * sit in one Redis Cluster slot and one Lua script may touch them together:
 *
 *   <c>:{domains}:set          SET of served domains (lower-case)
 *   <c>:{<domain>}:users       SET of user parts provisioned in <domain>
 *   <c>:{<user@domain>}:cred   HASH ha1_md5, ha1_sha256 (hex), created_ms;
 *                              never the password
 *   <c>:{<user@domain>}:reg    HASH binding key -> packed skein.sip.v1.Binding, and
 *                              beside each "\1<binding key>" -> "<expiry ms, Redis
 *                              TIME> <cseq> <registered_ms> <call-id>", what the
 *                              scripts compare (they never decode a Binding)
 *   <c>:{<user@domain>}:exp    (until issue 6's session 11) ZSET binding key -> expiry
 *   <c>:{<user@domain>}:meta   (until then) HASH binding key -> "<cseq> <registered_ms>
 *                              <call-id>"; the scripts move what they find there into
 *                              :reg and delete both
 *   <c>:{domains}:limits       HASH "<domain>:call_limit" / "<domain>:call_rate" ->
 *                              per-domain overrides of the edge's call limits
 *   <c>:{<user@domain>}:calls  ZSET Call-ID -> expiry (ms): calls in progress (edge)
 *   <c>:{<user@domain>}:cpm    HASH w, c, p: call attempts per minute (edge)
 *
 * The binding key is "<instance>|<reg_id>" when the contact has +sip.instance (RFC
 * 5626 §6: a new flow of one instance and reg-id replaces the old), else the contact
 * URI; neither starts with byte 1 (REGDATA_META_MARK: regdata_register_prepare
 * refuses a contact or instance with a control character). Expired bindings are
 * filtered by every reader against Redis TIME and purged lazily by the scripts below
 * (no global sweeper); :reg also carries a PEXPIRE at the latest binding expiry, so an
 * AOR nobody touches disappears by itself. */
#ifndef SKEIN_REGDATA_H
#define SKEIN_REGDATA_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "skein/sk_redis.h"
#include "skein/sip/v1/registrar.pb-c.h"

#define REGDATA_AOR_MAX 256
/* The first byte of the :reg fields that are not bindings (the scripts' M). */
#define REGDATA_META_MARK   '\1'
#define REGDATA_META_MARK_S "\1"
/* Contact values one REGISTER may carry, and the longest contact URI kept. */
#define REGDATA_REQ_CONTACTS_MAX 32
#define REGDATA_URI_MAX		 1024

/* Validates and normalises an AOR ("alice@Example.COM" -> "alice@example.com"): a
 * user part of RFC 3261 unreserved/escaped characters, '@', a host name or IP
 * literal; no '{', '}', ':' or whitespace. 0, or SK_EINVAL with *why set. */
int regdata_aor_norm(char *out, size_t size, const char *in, const char **why);
/* Same for a domain alone. */
int regdata_domain_norm(char *out, size_t size, const char *in, const char **why);
/* The AOR of a SIP URI: "sip:user@Domain;p" or "<sips:...>" -> "user@domain" (list
 * URIs of rls-services documents, as the RLS index and the XCAP check both key them);
 * SK_EINVAL for anything that is not a sip:/sips: URI with a user part. */
int regdata_uri_aor(const char *uri, char *out, size_t size);

/* Key builders ("<cluster>:{<owner>}:<what>"), SK_ERANGE when buf is too small. */
int regdata_key_domains(char *buf, size_t size, const char *cluster);
int regdata_key_users(char *buf, size_t size, const char *cluster, const char *domain);
int regdata_key_cred(char *buf, size_t size, const char *cluster, const char *aor);
int regdata_key_reg(char *buf, size_t size, const char *cluster, const char *aor);
int regdata_key_exp(char *buf, size_t size, const char *cluster, const char *aor);
int regdata_key_meta(char *buf, size_t size, const char *cluster, const char *aor);
/* Call limits (edge core_limits.c): per-domain overrides, HASH "<domain>:call_limit"
 * and "<domain>:call_rate" -> integer; an account's calls in progress and attempts. */
int regdata_key_limits(char *buf, size_t size, const char *cluster);
int regdata_key_calls(char *buf, size_t size, const char *cluster, const char *aor);
int regdata_key_cpm(char *buf, size_t size, const char *cluster, const char *aor);

/* The digest nonce secret every edge and XCAP server of the cluster shares,
 * <c>:{cluster}:nonce_secret: SET NX of 32 random bytes (hex), then GET; cb gets the
 * GET's reply (the first writer's value wins). 0 or SK_E* (nothing sent). */
int regdata_nonce_secret_fetch(struct sk_redis *r, const char *cluster, sk_redis_reply_cb *cb,
			       void *arg);

/* Lua scripts (registered with sk_redis_script_add, or EVAL from tools).
 *
 * Both take KEYS = reg, exp, meta: exp and meta are the keys of the three-key layout,
 * read (and deleted) only when reg holds a binding without its "\1" field.
 *
 * REGDATA_LUA_LOOKUP: KEYS = reg, exp, meta. Purges expired bindings, returns a flat
 *   array { packed Binding, seconds left, ... } of the live ones, by expiry. Readers
 *   decode each with regdata_binding_decode() (or all at once with
 *   regdata_bindings_from_reply()) and set expires_in from the seconds.
 *
 * REGDATA_LUA_REGISTER: KEYS = reg, exp, meta [, cred, nonce-count]. One REGISTER,
 *   atomically (RFC 3261 §10.3 steps 6-8, RFC 5626 §6). Called with the arguments
 *   regdata_register_prepare() builds; its reply is read by regdata_register_result().
 *   The script:
 *   - with RegisterRequest.auth (the edge verified the digest with a cached HA1),
 *     first checks that HGET cred <field> is that HA1 (else 401 STALE with the stored
 *     one, "" when none) and that the nonce-count is above the one stored for the
 *     nonce (else 401 REPLAY), writing nothing; then records the nonce-count (SET EX
 *     nc_ttl) and goes on;
 *   - refresh-only (REGDATA_REG_REFRESH_ONLY): the nonce-count is checked and recorded
 *     only once the request is known to be a pure refresh, just before the writes;
 *     otherwise {0, 'defer'} and nothing is written;
 *   - takes the time from Redis TIME and purges expired bindings;
 *   - for every binding the request touches that is live with the same Call-ID:
 *     a stored CSeq above the request's fails the whole request (500); an equal one is
 *     allowed only as a replay (below); a different Call-ID simply replaces it;
 *   - replay: when every touched binding is live with this Call-ID and CSeq and the
 *     same packed contents (and every removal names a binding already gone), the
 *     request was applied before (the edge retried it on another registrar after the
 *     first one died): it answers 200 with the current bindings and changes nothing;
 *   - refuses (403) a change that leaves more than max_contacts bindings and more
 *     than before, so an AOR over a lowered limit can still refresh and remove;
 *   - stores C's packed Binding with expires_at_ms (field 2) and registered_ms
 *     (field 14) appended as protobuf varints: protobuf keeps the last value of a
 *     scalar field, and C leaves both at 0 (not encoded), so the blob stays opaque to
 *     Lua. registered_ms is kept across refreshes within one Call-ID;
 *   - sets PEXPIRE on reg at the latest expiry + REGDATA_TTL_SLACK_MS (DEL when no
 *     binding is left).
 *   Nothing is written when the request fails, but for what a read does anyway:
 *   expired bindings purged, the three-key layout moved into reg.
 *
 * REGDATA_LUA_REFRESH: KEYS = reg, cred. The edge's refresh of one live binding
 *   (arguments from regdata_refresh_prepare(), reply read by regdata_register_result()):
 *   what REGDATA_LUA_REGISTER does in refresh-only mode for a request with one
 *   contact, in fewer instructions (issue 6; regdata_script.c). Anything but a pure
 *   refresh of a binding stored in the one-hash layout is deferred with nothing
 *   written: the registrar's script then does it. */
extern const char REGDATA_LUA_LOOKUP[];
extern const char REGDATA_LUA_REGISTER[];
extern const char REGDATA_LUA_REFRESH[];
#define REGDATA_TTL_SLACK_MS 60000

/* A decoded lookup result: bindings sorted by q (highest first), then by most recent
 * registration. Free with regdata_bindings_free(). */
struct regdata_bindings {
	Skein__Sip__V1__Binding **b;
	size_t n;
};
/* Decodes a REGDATA_LUA_LOOKUP reply (a struct redisReply *); SK_EPROTO on a reply of
 * the wrong shape, SK_ENOMEM. Entries that fail to unpack are skipped and counted in
 * *skipped (may be NULL). */
int regdata_bindings_from_reply(struct regdata_bindings *out, const void *reply,
				size_t *skipped);
/* The same for the pairs that start at element `first` (the register script's). */
int regdata_bindings_from_reply_at(struct regdata_bindings *out, const void *reply,
				   size_t first, size_t *skipped);
void regdata_bindings_free(struct regdata_bindings *bs);
/* q highest first, then the most recent registration (the order of every reader). */
void regdata_bindings_sort(struct regdata_bindings *bs);
/* One packed Binding; NULL when malformed or out of memory. Free with
 * skein__sip__v1__binding__free_unpacked(b, NULL). */
Skein__Sip__V1__Binding *regdata_binding_decode(const void *data, size_t len);

/* ---- REGISTER: request -> script arguments -> result (the registrar's store) ---- */

/* Registration policy: the [registrar] config. Seconds. */
struct regdata_policy {
	int64_t default_expires; /* no expires parameter and no Expires header */
	int64_t min_expires;	 /* a non-zero expiry below it: 423 (RFC 3261 §10.3 step 7) */
	int64_t max_expires;	 /* longer ones are shortened to it */
	int64_t max_contacts;	 /* bindings per AOR */
};

/* The outcome of one REGISTER. reason is static text. bindings (for any code) are the
 * AOR's current bindings, expires_in set; owned by the result. */
struct regdata_reg_result {
	uint32_t code; /* SIP status: 200, 400, 401, 403, 423, 500 */
	const char *reason;
	uint32_t min_expires; /* with 423 */
	bool query, replay;
	uint32_t added, refreshed, removed;
	struct regdata_bindings bindings;
	/* code 401: RegisterRequest.auth failed; current_ha1 is the stored HA1 with
	 * STALE ("" when the user or that HA1 is gone) */
	Skein__Sip__V1__AuthCheck auth_check;
	char current_ha1[129];
	/* REGDATA_REG_REFRESH_ONLY and the request is more than a refresh (code 0):
	 * nothing was written, the nonce-count included */
	bool deferred;
};

/* Arguments of one REGDATA_LUA_REGISTER call, for sk_redis_eval (or EVAL with the
 * script text in front): argv[0..nkeys) are the keys, the rest ARGV. Refcounted:
 * release with sk_deref; argv points into the object. */
struct regdata_reg_cmd {
	int nkeys, argc;
	const char **argv;
	size_t *lens;
};

/* Checks rq against RFC 3261 §10.3 and pol, and builds the script call.
 * - 0 and *cp set: run it, then regdata_register_result();
 * - 0 and *cp NULL: answered without Redis, res->code is 400 (malformed AOR, Contact:
 *   * with other contacts or Expires other than 0, too many or bad contacts) or 423
 *   (res->min_expires set);
 * - SK_EINVAL (NULL arguments; rq->auth with keys outside the AOR's hash tag, an
 *   unknown HA1 field or over-long values), SK_ENOMEM, SK_ERANGE (cluster name too
 *   long).
 * res is always initialised (release it with regdata_reg_result_release). */
int regdata_register_prepare(struct regdata_reg_cmd **cp, struct regdata_reg_result *res,
			     const char *cluster, const Skein__Sip__V1__RegisterRequest *rq,
			     const struct regdata_policy *pol);
/* The same for an edge that writes refreshes itself (docs/edge.md, "REGISTER
 * refreshes"): with REGDATA_REG_REFRESH_ONLY, a request with contacts is written only
 * when every contact refreshes a live binding of another Call-ID or a higher CSeq in
 * the same one (and the digest's Redis half passes); anything else — an addition, a
 * removal, a CSeq or replay question, 403 — comes back as res->deferred with nothing
 * written, for the registrar to do. Contact: * and queries are never refresh-only. */
#define REGDATA_REG_REFRESH_ONLY 1u
int regdata_register_prepare_ex(struct regdata_reg_cmd **cp, struct regdata_reg_result *res,
				const char *cluster,
				const Skein__Sip__V1__RegisterRequest *rq,
				const struct regdata_policy *pol, unsigned flags);
/* The arguments of REGDATA_LUA_REFRESH for rq: 0 and *cp set when rq may be a refresh
 * of one binding (one contact with an expiry above 0, RegisterRequest.auth, and the
 * checks regdata_register_prepare() makes passed); 0 and *cp NULL when it cannot be
 * one (the general way then: regdata_register_prepare_ex(), or the registrar); the
 * errors of regdata_register_prepare_ex(). now_ms: Redis' time as the caller's
 * regdata_clock has it (regdata_lookup.h), 0 to let the script read TIME. */
int regdata_refresh_prepare(struct regdata_reg_cmd **cp, const char *cluster,
			    const Skein__Sip__V1__RegisterRequest *rq,
			    const struct regdata_policy *pol, uint64_t now_ms);
/* The expiry a contact gets, in seconds (0: remove), before the min_expires check:
 * its expires parameter, else the Expires header, else default_expires; capped at
 * max_expires. */
int64_t regdata_contact_expires(const Skein__Sip__V1__Contact *c, int64_t hdr_expires,
				const struct regdata_policy *pol);
/* "<instance>|<reg_id>" with +sip.instance (RFC 5626 §6), else the URI; SK_ERANGE. */
int regdata_binding_key(char *buf, size_t size, const char *uri, const char *instance,
			uint32_t reg_id);
/* Reads the script's reply (a struct redisReply *) into res; SK_EPROTO on a reply
 * of the wrong shape (res->code 500), SK_ENOMEM. */
int regdata_register_result(struct regdata_reg_result *res, const void *reply);
void regdata_reg_result_release(struct regdata_reg_result *res);
/* Points rep at res (code, reason, min_expires, bindings): rep borrows from res. */
void regdata_reg_reply_fill(Skein__Sip__V1__RegisterReply *rep,
			    const struct regdata_reg_result *res);

#endif
