/* skein-edge: the SIP edge. This build has the daemon runtime only (membership, bus,
 * health, metrics, drain); SIP transports, proxy and auth come with issue #3. */
#include <stddef.h>
#include "skein/sk_daemon.h"

struct edge_conf {
	struct sk_role_conf role;
};

static struct edge_conf conf;

static const struct sk_conf_key keys[] = {
	SK_ROLE_KEYS(struct edge_conf, "127.0.0.1:9301"),
	SK_CONF_END,
};

int main(int argc, char **argv)
{
	const struct sk_daemon_ops ops = {
		.role = "edge",
		.summary = "Skein SIP edge: transports, sanity checks, auth, NAT, routing.",
		.keys = keys,
		.conf = &conf,
		.conf_size = sizeof(conf),
	};

	return sk_daemon_main(&ops, argc, argv);
}
