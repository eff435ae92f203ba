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
};

struct sk_redis_script;
struct sk_counter;
struct sk_histogram;
struct xcap_server;

struct registrar {
	struct sk_daemon *d;
	const struct registrar_conf *conf; /* live: SIGHUP may change the policy keys */
	const char *cluster;
	struct sk_redis_script *reg_script; /* REGDATA_LUA_REGISTER */
	struct xcap_server *xcap;           /* XCAP (services/xcap), NULL when off */
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
