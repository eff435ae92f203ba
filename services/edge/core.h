/* core: the SIP edge service — what sits between the transports/transactions and
 * the cluster: request dispatch, digest auth against Redis, REGISTER through the
 * registrar over the bus, routing to bindings with parallel forking, loose routing
 * and Record-Route. One struct edge per daemon; files core_<family>.c. */
#ifndef SKEIN_EDGE_CORE_H
#define SKEIN_EDGE_CORE_H
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_protos.h>
#include <sofia-sip/msg_buffer.h>
#include "skein/sk_daemon.h"
#include "skein/sk_metrics.h"
#include "regdata_lookup.h"
#include "transport.h"
#include "txn.h"
#include "digest.h"
#include "resolve.h"
#include "regdata.h"

struct sk_redis_script;
struct redisReply;
struct fork;
struct edge_limits;
struct edge_guard;
struct edge_orig;

/* [edge] section (docs/configuration.md). */
struct edge_conf {
	struct sk_role_conf role;
	char *listen_udp, *listen_tcp, *listen_tls, *listen_ws, *listen_wss, *ws_origins;
	char *tls_cert, *tls_key, *tls_ca;
	char *advertise;      /* host for Via/Record-Route; "" = the listen address */
	char *cluster_host;   /* host[:port] in Record-Route naming every edge; "" = ours */
	char *auth_secret;    /* nonce HMAC key shared by all edges; "" = kept in Redis */
	char *auth_algorithms; /* "sha256,md5" */
	uint64_t nonce_ttl;   /* ms */
	int64_t max_msg_size;
	uint64_t t1, t2, t4, timer_c;
	uint64_t idle_timeout;
	int64_t max_conns;
	uint64_t registrar_deadline;
	char *server;         /* Server / User-Agent header value; "" = none */
	bool symmetric;       /* UDP responses to the source address always */
	char *dns_nameserver; /* "" = /etc/resolv.conf */
	uint64_t dns_deadline;
	bool dns_ipv6;
	/* resource limits (transport.h) */
	int64_t max_conns_per_source;
	uint64_t slow_timeout;  /* ms: a message begun on a stream must end within */
	int64_t max_transactions; /* requests in hand (no final yet); 503 above (0: no cap) */
	uint64_t retry_after;   /* ms, Retry-After of the 503s that shed load */
	/* guard (guard.h): per-source rate limit, cluster-wide bans, scanners */
	int64_t rate_limit, rate_burst; /* requests/s per source and bucket size */
	int64_t flood_ban_after; /* requests refused by the bucket before a ban; 0 never */
	uint64_t ban_time;      /* ms */
	uint64_t auth_fail_window; /* ms */
	int64_t auth_fail_source, auth_fail_user; /* failures in the window before a ban */
	char *scanner_user_agents; /* comma-separated substrings, case-insensitive */
	bool scanner_ban;
	char *trusted_networks; /* CIDR list never rate-limited nor banned */
	/* toll-fraud call limits per account (core_limits.c); per-domain overrides in
	 * Redis (`skeinctl domain set`) */
	int64_t call_limit;     /* concurrent outbound calls; 0 none */
	int64_t call_rate;      /* call attempts per minute; 0 none */
	uint64_t call_max_duration; /* ms after which a call no longer counts */
	int64_t auth_cache_size; /* HA1 cache entries (core_ha1.c); 0 off */
	int64_t nonce_slots;     /* nonce-counts kept (nctab.h) */
	bool direct_refresh;     /* REGISTER refreshes written here (core_register.c) */
};

struct edge_metrics {
	struct sk_counter *req[8];  /* by method: index edge_method_idx() */
	struct sk_counter *resp[6]; /* by class 1..6 sent */
	struct sk_counter *auth_fail, *auth_ok, *rejected, *forwarded, *cross_edge;
	struct sk_counter *malformed_resp, *reg_ok, *reg_fail;
	struct sk_counter *relayed_out, *relayed_in, *unreachable;
	struct sk_counter *uas_ok, *uas_fail, *orig_ok, *orig_fail; /* core_pres, core_originate */
	struct sk_histogram *reg_latency;
	struct sk_counter *reg_direct[3]; /* written, deferred, error (core_register.c) */
	struct sk_counter *lookups[3]; /* pipelined, separate, unused (core_proxy.c) */
	struct sk_counter *nc_checks[2];  /* here, with the issuer (core_auth.c) */
	struct sk_counter *nc_refused[3]; /* by enum edge_nc (FRESH unused) */
};

struct edge {
	struct sk_daemon *d;
	uv_loop_t *loop;
	const struct edge_conf *conf;
	const char *cluster;
	const char *member; /* "<node>/edge" */
	struct edge_tp *tp;
	struct edge_txl *txl;
	struct edge_resolver *resolver;
	unsigned protos; /* 1 << edge_proto of every listener */
	struct sk_redis *redis;
	struct sk_bus *bus;
	/* core_auth.c: the nonce-counts of our nonces, and our issuer hash in them */
	struct edge_nctab *nctab;
	uint32_t nc_issuer;
	unsigned algs; /* EDGE_DIGEST_OFFER_* */
	enum edge_digest_alg alg_order[2];
	size_t nalg;
	uint8_t secret[64];
	size_t secret_len;
	bool secret_ok;
	uv_timer_t *secret_timer;
	/* served domains, refreshed from Redis */
	char **domains;
	size_t ndomains;
	uv_timer_t *dom_timer;
	bool dom_pending;
	/* Redis' clock (regdata_lookup.h), sampled with the domain refresh: the
	 * REGISTER refreshes and the routing lookups take their time from it instead of
	 * a TIME each (core_domain.c) */
	struct regdata_clock rclock;
	uint64_t rclock_sent; /* monotonic ms of the TIME in flight, 0: none */
	/* our addresses, for Via/Record-Route and for "is this URI us" */
	char host[64];
	uint16_t port[EDGE_PROTO_MAX_];
	struct edge_metrics m;
	struct edge_guard *guard; /* core_guard.c */
	size_t forks; /* live forking contexts */
	struct fork *fork_list;
	struct edge_limits *limits; /* core_limits.c */
	struct edge_orig *orig_list; /* core_originate.c: requests sent for the registrar */
	struct edge_ha1_cache *ha1; /* core_ha1.c; NULL when auth_cache_size is 0 */
	/* core_register.c: the registration and refresh scripts, for refreshes written
	 * here, and the registrar's policy as last heard (reg_policy_at: uv_now ms, 0
	 * never) */
	struct sk_redis_script *reg_script, *refresh_script;
	struct regdata_policy reg_policy;
	uint64_t reg_policy_at;
};

/* core_main.c */
int edge_core_start(struct edge *e);
void edge_core_drain(struct edge *e);
bool edge_core_idle(struct edge *e);
void edge_core_stop(struct edge *e);
/* SIGHUP: certificates re-read, guard settings re-derived. */
void edge_core_reload(struct edge *e);
bool edge_core_ready(struct edge *e, const char **why);
int edge_method_idx(sip_method_t m);
/* snprintf(out, size, "%s%s%s", a, sep, b) without the format machinery (a NULL part
 * is skipped), truncating alike; size > 0. On every REGISTER: callgrind counted ~600
 * instructions per snprintf. */
void edge_join(char *out, size_t size, const char *a, const char *sep, const char *b);
void edge_count_resp(struct edge *e, int status);
/* Answer and count (wrapper of edge_stx_reply). */
int edge_reply(struct edge *e, struct edge_stx *stx, int status, const char *reason,
	       const char *extra);

/* core_domain.c */
int edge_domains_start(struct edge *e);
void edge_domains_stop(struct edge *e);
/* Redis' time in unix ms as sampled here (core_domain.c), 0 without a recent sample:
 * the caller then lets Redis read its TIME. */
uint64_t edge_redis_now(const struct edge *e);
bool edge_domain_local(const struct edge *e, const char *host);
/* host[:port] names this edge (advertised or listening address, a port of ours). */
bool edge_uri_is_us(const struct edge *e, const url_t *u);

int edge_auth_algs_parse(const char *s, unsigned *algs);
int edge_auth_algs_order(const char *s, unsigned *algs, enum edge_digest_alg *order, size_t *n);

/* core_auth.c: digest for REGISTER (401) and requests of local subscribers (407).
 * cb runs once: ok with the authenticated user (borrowed), or !ok when the request
 * was answered (challenge, 400, 403) or the stx went away. */
typedef void(edge_auth_cb)(struct edge *e, struct edge_stx *stx, bool ok, const char *user,
			   void *arg);
void edge_auth(struct edge *e, struct edge_stx *stx, bool proxy, const char *realm,
	       edge_auth_cb *cb, void *arg);
int edge_auth_setup(struct edge *e);
/* The issuer hash a member's nonces carry: FNV-1a 32 of its member id. */
uint32_t edge_nc_issuer(const char *member);

/* REGISTER (issue 6): the digest is verified here with the HA1 cache (one HGET on a
 * miss) and the nonce-count with the nonce's issuer; the HA1's Redis half — still
 * the stored one — travels in RegisterRequest.auth to be checked by the registration
 * script, so that an authenticated REGISTER costs one script. cb runs once: with a (borrowed; sk_ref
 * to keep it) and the authenticated user, or a NULL when the request was answered. */
struct edge_auth;
struct Skein__Sip__V1__RegisterAuth;
typedef void(edge_auth_reg_cb)(struct edge *e, struct edge_stx *stx, struct edge_auth *a,
			       const char *user, void *arg);
void edge_auth_register(struct edge *e, struct edge_stx *stx, const char *realm,
			edge_auth_reg_cb *cb, void *arg);
/* Points ra at a's keys and values (borrowed from a). */
void edge_auth_reg_fill(const struct edge_auth *a, struct Skein__Sip__V1__RegisterAuth *ra);
enum edge_auth_verdict {
	EDGE_AUTH_PASSED,   /* the script accepted the digest: go on with its answer */
	EDGE_AUTH_RETRY,    /* the HA1 changed and the new one verifies: send again */
	EDGE_AUTH_ANSWERED, /* refused: answered with a fresh challenge, logged */
};
/* RegisterReply.auth_check (and current_ha1) for a's request. RETRY at most once. */
enum edge_auth_verdict edge_auth_reg_checked(struct edge_auth *a, int check,
					     const char *current_ha1);

/* core_ha1.c: HA1s by normalised AOR and algorithm, so that a REGISTER needs no
 * Redis read of its own. Bounded (4-way sets, the least recently used of the set
 * replaced), never trusted alone: a stale entry fails the local check (refetched) or
 * the registration script's (STALE). entries 0: *cp = NULL, and every call on a NULL
 * cache misses or does nothing. */
struct edge_ha1_cache;
int edge_ha1_alloc(struct edge_ha1_cache **cp, size_t entries);
/* Copies the hex HA1 into out (size > 64); false on a miss. */
bool edge_ha1_get(struct edge_ha1_cache *c, const char *aor, enum edge_digest_alg alg,
		  char *out, size_t size);
/* Stores ha1 (hex, up to 64 digits; longer ones are not kept); NULL or "" drops it. */
void edge_ha1_put(struct edge_ha1_cache *c, const char *aor, enum edge_digest_alg alg,
		  const char *ha1);
size_t edge_ha1_count(const struct edge_ha1_cache *c);

/* core_guard.c: rate limit, cluster-wide bans, scanners, auth-failure bans. */
enum edge_guard_verdict { EDGE_GUARD_PASS, EDGE_GUARD_DROP };
int edge_guard_start(struct edge *e);
void edge_guard_reload(struct edge *e);
void edge_guard_stop(struct edge *e);
/* transport admission (edge_tp_admit_cb, arg = the edge): false for a banned source */
bool edge_guard_admit(const struct edge_addr *src, enum edge_proto p, void *arg);
/* A parsed request: DROP when the guard answered it (503) or dropped it. */
enum edge_guard_verdict edge_guard_request(struct edge *e, const struct edge_rx *rx,
					   msg_t *msg);
/* src is in trusted_networks (trunks, monitoring). */
bool edge_guard_trusted(struct edge *e, const struct edge_addr *src);
/* More requests in hand than max_transactions (the caller answers 503). */
bool edge_guard_overloaded(struct edge *e);
/* A failed digest authentication from src for aor (normalised, or NULL). */
void edge_guard_auth_failed(struct edge *e, const struct edge_addr *src, const char *aor);

/* core_register.c */
void edge_register(struct edge *e, struct edge_stx *stx);
/* Loads the registration script when direct_refresh is on. */
int edge_register_setup(struct edge *e);

/* core_limits.c: per-account limits of concurrent outbound calls and of call
 * attempts per minute, cluster-wide in Redis (docs/edge.md, "Call limits").
 * Started and stopped with the domain list (core_domain.c), which also feeds it
 * the per-domain overrides. */
enum edge_limit_verdict { EDGE_LIMIT_OK, EDGE_LIMIT_CONCURRENT, EDGE_LIMIT_RATE };
/* counted: the call is now in the caller's calls in progress (call edge_limits_call_end
 * if it fails). With EDGE_LIMIT_OK and !counted the call goes on unchecked. */
typedef void(edge_limits_cb)(struct edge *e, enum edge_limit_verdict v, bool counted,
			     void *arg);
int edge_limits_start(struct edge *e);
void edge_limits_stop(struct edge *e);
/* An initial INVITE from the authenticated local caller in its From: checked and
 * counted in one Redis round trip. 0: cb fires once (a refusal was logged and
 * counted; the caller answers 403 with edge_limits_reason). Otherwise go on at once,
 * uncounted: SK_ENOENT when no limit applies, another error when Redis could not be
 * asked (fail open, logged and counted here). */
int edge_limits_admit(struct edge *e, struct edge_stx *stx, edge_limits_cb *cb, void *arg);
const char *edge_limits_reason(enum edge_limit_verdict v);
/* A counted INVITE got a final non-2xx (or none): it stops counting. */
void edge_limits_call_end(struct edge *e, struct edge_stx *stx);
/* Any BYE passing through: the call stops counting for the From and To accounts. */
void edge_limits_bye(struct edge *e, sip_t *sip);
/* The HGETALL of regdata_key_limits(); an error keeps the last known overrides. */
void edge_limits_overrides(struct edge *e, int err, const struct redisReply *r);

/* core_pres.c: PUBLISH, SUBSCRIBE of the packages skein-registrar notifies, and a
 * MESSAGE kept for an offline user go to the registrar as UasRequest (issue 7). */
bool edge_pres_wants(struct edge *e, const sip_t *sip);
void edge_pres_request(struct edge *e, struct edge_stx *stx);
/* A MESSAGE for aor (no binding) to be stored; user: the authenticated sender
 * ("user@domain") or "" for a trusted network. Answers stx. */
void edge_pres_store(struct edge *e, struct edge_stx *stx, const char *aor, const char *user);

/* core_originate.c: requests skein-registrar makes (NOTIFY, stored MESSAGEs) sent
 * by this edge as a client transaction (Originate -> OriginateReply). */
int edge_originate_start(struct edge *e);
void edge_originate_stop(struct edge *e);

/* core_proxy.c */
void edge_proxy_request(struct edge *e, struct edge_stx *stx);
void edge_proxy_cancel(struct edge *e, struct edge_stx *invite);
void edge_proxy_stateless(struct edge *e, msg_t *msg, const struct edge_rx *rx);
void edge_proxy_stop(struct edge *e);

/* core_relay.c: flows held by other edges (RFC 5626), over the bus. */
#define EDGE_FLOW_REMOTE (1ull << 62)
bool edge_relay_is_remote(uint64_t flow);
uint64_t edge_relay_handle(const char *member, uint64_t flow);
bool edge_member_alive(struct edge *e, const char *member);
int edge_relay_send(void *arg, enum edge_proto p, const struct edge_addr *dst, uint64_t flow,
		    const char *tls_name, const void *data, size_t len, uint64_t cookie);
bool edge_relay_back(struct edge *e, msg_t *msg);
int edge_relay_start(struct edge *e);
void edge_relay_member_gone(struct edge *e, const char *member);

/* core_route.c: where a request goes next. */
struct edge_dest {
	enum edge_proto proto;
	struct edge_addr addr;
	uint64_t flow;
	char tls_name[256]; /* "" = no verification */
};
/* Resolves a SIP URI with an IP literal host (A/AAAA names: SK_ENOTSUP for now is
 * answered 502/503 by the caller). */
int edge_route_uri(struct edge *e, const url_t *u, struct edge_dest *d);
/* Adds Record-Route (twice when the transport changes, RFC 5658 §4, or when the
 * callee is reached through a flow: token then names it, RFC 5626 §5.3). */
int edge_route_record(struct edge *e, msg_t *msg, sip_t *sip, enum edge_proto in,
		      enum edge_proto out, const char *token);
/* A flow named in a Route entry of ours. */
struct edge_flow_ref {
	bool valid;
	uint64_t flow;
	char member[128];
};
int edge_flow_token(struct edge *e, const char *member, uint64_t flow, char *out, size_t size);
bool edge_flow_token_parse(struct edge *e, const char *user, struct edge_flow_ref *ref);
/* Our own entries at the top of a route set (up to two): how many, the first entry
 * beyond them (*next), and the flow a request from the caller's side must take. */
int edge_route_self(struct edge *e, const sip_route_t *r, const sip_route_t **next,
		    struct edge_flow_ref *ref);
/* Removes the Route entries naming us (RFC 3261 §16.4); returns how many. */
int edge_route_pop_self(struct edge *e, msg_t *msg, sip_t *sip);

#endif
