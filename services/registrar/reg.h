/* skein-registrar: the service struct shared by main.c and the reg_*.c message
 * families. Everything runs on the daemon's loop. */
#ifndef SKEIN_REGISTRAR_REG_H
#define SKEIN_REGISTRAR_REG_H

#include <stdint.h>
#include "skein/sk_daemon.h"
#include "regdata.h"

struct registrar_conf {
	struct sk_role_conf role;
	int64_t default_expires, min_expires, max_expires, max_contacts;
	uint64_t count_interval; /* ms */
	char *xcap_listen, *xcap_listen_tls, *xcap_root, *tls_cert, *tls_key; /* XCAP */
	/* presence agent and IM store (pres.h, docs/presence.md) */
	int64_t sub_default_expires, sub_min_expires, sub_max_expires; /* s */
	int64_t pub_default_expires, pub_min_expires, pub_max_expires; /* s */
	int64_t pub_max_size, max_watchers;
	uint64_t notify_interval; /* ms: at most one NOTIFY per resource and package */
	uint64_t timer_interval;  /* ms: poll of the cluster-wide timer set */
	char *pres_default_policy; /* "confirm", "allow", "block", "polite-block" */
	uint64_t im_expires;	   /* ms a stored message is kept */
	int64_t im_max_messages;   /* stored per user; more get 486 */
};

struct sk_redis_script;
struct sk_counter;
struct sk_histogram;
struct xcap_server;
struct pres_agent;
struct pres_im;
struct pres_rls;

struct registrar {
	struct sk_daemon *d;
	const struct registrar_conf *conf; /* live: SIGHUP may change the policy keys */
	const char *cluster;
	struct sk_redis_script *reg_script; /* REGDATA_LUA_REGISTER */
	struct xcap_server *xcap;           /* XCAP (services/xcap), NULL when off */
	struct pres_agent *pres;	    /* pres_uas.c, pres_sub.c, pres_notify.c */
	struct pres_im *im;		    /* pres_im.c */
	struct pres_rls *rls;		    /* pres_rls.c */
	struct sk_redis_script *pub_script[3]; /* pres_publish.c (enum pres_script) */
	struct {
		struct sk_counter *ok, *query, *replay, *rejected, *out_of_order, *error;
		struct sk_counter *added, *refreshed, *removed;
		struct sk_histogram *latency;
	} m;
};

/* reg_register.c: REGISTER over the bus (RegisterRequest -> RegisterReply). */
int reg_register_start(struct registrar *r);

/* reg_count.c: cluster-wide live bindings and AORs for /metrics. */
int reg_count_start(struct registrar *r);
void reg_count_stop(struct registrar *r);

#endif
