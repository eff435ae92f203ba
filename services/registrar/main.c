/* skein-registrar: registrar, presence agent and XCAP server. This build has the
 * daemon runtime only (membership, bus, health, metrics, drain); REGISTER handling
 * comes with issue #3, presence and XCAP with issue #7. */
#include <stddef.h>
#include "skein/sk_daemon.h"

struct registrar_conf {
	struct sk_role_conf role;
};

static struct registrar_conf conf;

static const struct sk_conf_key keys[] = {
	SK_ROLE_KEYS(struct registrar_conf, "127.0.0.1:9302"),
	SK_CONF_END,
};

int main(int argc, char **argv)
{
	const struct sk_daemon_ops ops = {
		.role = "registrar",
		.summary = "Skein registrar, presence agent and XCAP server.",
		.keys = keys,
		.conf = &conf,
		.conf_size = sizeof(conf),
	};

	return sk_daemon_main(&ops, argc, argv);
}
