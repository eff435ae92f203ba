/* skein-registrar: registrar (RFC 3261 §10.3, RFC 5626, RFC 3327) over the bus, with
 * the bindings in Redis (services/regdata); presence and XCAP come with issue #7. */
#include <stddef.h>
#include "skein/sk_daemon.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "reg.h"
#include "pres.h"
#include "xcap_http.h"

SK_LOG_MODULE("registrar");

static struct registrar_conf conf;

static const char *const policies[] = {"confirm", "allow", "block", "polite-block", NULL};
static struct registrar reg;

/* Seconds. The bounds keep expiry arithmetic far from overflow (ms in a double, 2^53)
 * and match what SIP allows (RFC 3261 §20.19: up to 2^32-1). */
static const struct sk_conf_key keys[] = {
	SK_ROLE_KEYS(struct registrar_conf, "127.0.0.1:9302"),
	{"default_expires", SK_CONF_INT, offsetof(struct registrar_conf, default_expires), "3600",
	 "Binding lifetime in seconds when a REGISTER gives neither an expires parameter nor an "
	 "Expires header (RFC 3261 §10.3 step 7)",
	 SK_CONF_RELOAD, 1, 4294967295LL, 0, 0},
	{"min_expires", SK_CONF_INT, offsetof(struct registrar_conf, min_expires), "60",
	 "Shortest binding lifetime in seconds; a shorter non-zero one is refused with 423 and "
	 "Min-Expires",
	 SK_CONF_RELOAD, 1, 4294967295LL, 0, 0},
	{"max_expires", SK_CONF_INT, offsetof(struct registrar_conf, max_expires), "7200",
	 "Longest binding lifetime in seconds; longer requests are shortened to it",
	 SK_CONF_RELOAD, 1, 4294967295LL, 0, 0},
	{"max_contacts", SK_CONF_INT, offsetof(struct registrar_conf, max_contacts), "10",
	 "Bindings one address of record may hold; a REGISTER that would exceed it gets 403",
	 SK_CONF_RELOAD, 1, 1000, 0, 0},
	{"count_interval", SK_CONF_DURATION, offsetof(struct registrar_conf, count_interval), "15s",
	 "How often the cluster's live bindings are counted for /metrics (a SCAN walk of "
	 "Redis, its pages spread over about half the interval)",
	 SK_CONF_RELOAD, 1000, 86400000, 0, 0},
	{"xcap_listen", SK_CONF_STR, offsetof(struct registrar_conf, xcap_listen), "",
	 "Address (host:port) of the XCAP server over HTTP (RFC 4825, docs/xcap.md); empty: off",
	 0, 0, 0, 0, 0},
	{"xcap_listen_tls", SK_CONF_STR, offsetof(struct registrar_conf, xcap_listen_tls), "",
	 "Address (host:port) of the XCAP server over HTTPS (needs tls_cert and tls_key); "
	 "empty: off",
	 0, 0, 0, 0, 0},
	{"xcap_root", SK_CONF_STR, offsetof(struct registrar_conf, xcap_root), "/xcap",
	 "Path of the XCAP root (RFC 4825 §6.1): documents are at ROOT/AUID/users/XUI/DOC", 0, 0, 0, 0,
	 0},
	{"tls_cert", SK_CONF_STR, offsetof(struct registrar_conf, tls_cert), "",
	 "PEM certificate (chain) of the XCAP HTTPS listener", 0, 0, 0, 0, 0},
	{"tls_key", SK_CONF_STR, offsetof(struct registrar_conf, tls_key), "",
	 "PEM private key of the XCAP HTTPS listener", 0, 0, 0, 0, 0},
	{"sub_default_expires", SK_CONF_INT, offsetof(struct registrar_conf, sub_default_expires),
	 "3600", "Subscription lifetime in seconds when a SUBSCRIBE has no Expires (RFC 6665 §4.2.1)",
	 SK_CONF_RELOAD, 1, 4294967295LL, 0, 0},
	{"sub_min_expires", SK_CONF_INT, offsetof(struct registrar_conf, sub_min_expires), "60",
	 "Shortest subscription lifetime in seconds; a shorter non-zero one gets 423 and "
	 "Min-Expires",
	 SK_CONF_RELOAD, 1, 4294967295LL, 0, 0},
	{"sub_max_expires", SK_CONF_INT, offsetof(struct registrar_conf, sub_max_expires), "86400",
	 "Longest subscription lifetime in seconds; longer requests are shortened to it",
	 SK_CONF_RELOAD, 1, 4294967295LL, 0, 0},
	{"pub_default_expires", SK_CONF_INT, offsetof(struct registrar_conf, pub_default_expires),
	 "3600", "Publication lifetime in seconds when a PUBLISH has no Expires (RFC 3903 §5)",
	 SK_CONF_RELOAD, 1, 4294967295LL, 0, 0},
	{"pub_min_expires", SK_CONF_INT, offsetof(struct registrar_conf, pub_min_expires), "60",
	 "Shortest publication lifetime in seconds; a shorter non-zero one gets 423 and "
	 "Min-Expires",
	 SK_CONF_RELOAD, 1, 4294967295LL, 0, 0},
	{"pub_max_expires", SK_CONF_INT, offsetof(struct registrar_conf, pub_max_expires), "86400",
	 "Longest publication lifetime in seconds; longer requests are shortened to it",
	 SK_CONF_RELOAD, 1, 4294967295LL, 0, 0},
	{"pub_max_size", SK_CONF_INT, offsetof(struct registrar_conf, pub_max_size), "65536",
	 "Largest PUBLISH body in bytes (413 above)", SK_CONF_RELOAD, 256, 1048576, 0, 0},
	{"max_watchers", SK_CONF_INT, offsetof(struct registrar_conf, max_watchers), "10000",
	 "Subscriptions one resource may have (all packages); more get 503 with Retry-After",
	 SK_CONF_RELOAD, 1, 1000000, 0, 0},
	{"notify_interval", SK_CONF_DURATION, offsetof(struct registrar_conf, notify_interval),
	 "1s",
	 "Throttling: at most one NOTIFY per resource and package in this time; changes in "
	 "between are coalesced into one NOTIFY at its end (0: none)",
	 SK_CONF_RELOAD, 0, 3600000, 0, 0},
	{"timer_interval", SK_CONF_DURATION, offsetof(struct registrar_conf, timer_interval),
	 "500ms",
	 "How often the cluster-wide presence timers (expiries, throttled NOTIFYs) are polled",
	 0, 50, 60000, 0, 0},
	{"pres_default_policy", SK_CONF_ENUM, offsetof(struct registrar_conf, pres_default_policy),
	 "confirm",
	 "Sub-handling for a watcher no pres-rule decides: confirm, allow, block or "
	 "polite-block (RFC 5025 §3.2.1)",
	 SK_CONF_RELOAD, 0, 0, policies, 0},
	{"im_expires", SK_CONF_DURATION, offsetof(struct registrar_conf, im_expires), "168h",
	 "How long a MESSAGE stored for an offline user is kept", SK_CONF_RELOAD, 1000,
	 31536000000LL, 0, 0},
	{"im_max_messages", SK_CONF_INT, offsetof(struct registrar_conf, im_max_messages), "100",
	 "Messages stored per offline user; more get 486 (Busy Here)", SK_CONF_RELOAD, 1, 100000, 0,
	 0},
	SK_CONF_END,
};

static int start(struct sk_daemon *d, void *arg)
{
	struct registrar *r = arg;

	if (conf.min_expires > conf.max_expires || conf.default_expires < conf.min_expires ||
	    conf.default_expires > conf.max_expires) {
		SK_ERROR("[registrar] needs min_expires <= default_expires <= max_expires "
			 "(have %lld, %lld, %lld)",
			 (long long)conf.min_expires, (long long)conf.default_expires,
			 (long long)conf.max_expires);
		return SK_ECONFIG;
	}
	r->d = d;
	r->conf = &conf;
	r->cluster = sk_daemon_cluster(d)->name;
	int err = reg_register_start(r);

	if (!err)
		err = reg_count_start(r);
	if (!err)
		err = pres_start(r);
	if (!err && (conf.xcap_listen[0] || conf.xcap_listen_tls[0])) {
		const struct xcap_server_opts xo = {
			.http_listen = conf.xcap_listen,
			.https_listen = conf.xcap_listen_tls,
			.root = conf.xcap_root,
			.tls_cert = conf.tls_cert,
			.tls_key = conf.tls_key,
			.on_change = pres_xcap_changed,
			.change_arg = r,
			.metrics = sk_daemon_metrics(d),
			.metrics_prefix = sk_daemon_metrics_prefix(d),
		};

		err = xcap_server_alloc(&r->xcap, sk_daemon_loop(d), sk_daemon_redis(d), r->cluster,
					&xo);
		if (err)
			SK_ERROR("XCAP server: %s", sk_strerror(err));
	}
	return err;
}

static void stop(struct sk_daemon *d, void *arg)
{
	struct registrar *r = arg;

	(void)d;
	reg_count_stop(r);
	pres_stop(r);
	xcap_server_close(r->xcap);
	r->xcap = sk_deref(r->xcap);
}

/* SIGHUP: the XCAP HTTPS certificate and key are read again (docs/xcap.md); a bad
 * file keeps the current ones (logged). */
static void reload(struct sk_daemon *d, void *arg)
{
	struct registrar *r = arg;

	(void)d;
	(void)xcap_server_reload(r->xcap);
}

int main(int argc, char **argv)
{
	const struct sk_daemon_ops ops = {
		.role = "registrar",
		.summary = "Skein registrar, presence agent and XCAP server.",
		.keys = keys,
		.conf = &conf,
		.conf_size = sizeof(conf),
		.arg = &reg,
		.start = start,
		.stop = stop,
		.reload = reload,
	};

	return sk_daemon_main(&ops, argc, argv);
}
