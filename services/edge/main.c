/* skein-edge: the SIP edge (transports, sanity checks, digest auth, registration via
 * the registrar, transaction-stateful proxy with forking). main() only wires the
 * config table to the core. */
#include <stddef.h>
#include <string.h>
#include "skein/sk_node.h"
#include "core.h"

static struct edge_conf conf;
static struct edge edge;

static const char *const algs_help =
	"Digest algorithms offered in challenges, in order (RFC 8760): sha256, md5";

static int check_algs(const char *v, const char **why)
{
	unsigned a;

	if (edge_auth_algs_parse(v, &a)) {
		*why = "expected a comma-separated list of sha256 and md5";
		return -1;
	}
	return 0;
}

static const struct sk_conf_key keys[] = {
	SK_ROLE_KEYS(struct edge_conf, "127.0.0.1:9301"),
	{"listen_udp", SK_CONF_STR, offsetof(struct edge_conf, listen_udp), "127.0.0.1:5060",
	 "SIP over UDP: ip:port, or empty for none", 0, 0, 0, 0, 0},
	{"listen_tcp", SK_CONF_STR, offsetof(struct edge_conf, listen_tcp), "127.0.0.1:5060",
	 "SIP over TCP: ip:port, or empty for none", 0, 0, 0, 0, 0},
	{"listen_tls", SK_CONF_STR, offsetof(struct edge_conf, listen_tls), "",
	 "SIP over TLS: ip:port, or empty for none (needs tls_cert and tls_key)", 0, 0, 0, 0, 0},
	{"listen_ws", SK_CONF_STR, offsetof(struct edge_conf, listen_ws), "",
	 "SIP over WebSocket (RFC 7118): ip:port, or empty for none", 0, 0, 0, 0, 0},
	{"listen_wss", SK_CONF_STR, offsetof(struct edge_conf, listen_wss), "",
	 "SIP over secure WebSocket: ip:port, or empty for none (needs tls_cert and tls_key)", 0,
	 0, 0, 0, 0},
	{"ws_origins", SK_CONF_STR, offsetof(struct edge_conf, ws_origins), "",
	 "Origins allowed to open a WebSocket (comma-separated, e.g. https://app.example.com); "
	 "empty: any",
	 0, 0, 0, 0, 0},
	{"tls_cert", SK_CONF_STR, offsetof(struct edge_conf, tls_cert), "",
	 "PEM certificate (chain) for the TLS listener", 0, 0, 0, 0, 0},
	{"tls_key", SK_CONF_STR, offsetof(struct edge_conf, tls_key), "",
	 "PEM private key for the TLS listener", 0, 0, 0, 0, 0},
	{"tls_ca", SK_CONF_STR, offsetof(struct edge_conf, tls_ca), "",
	 "CA file to verify outbound TLS peers; empty: the system's", 0, 0, 0, 0, 0},
	{"advertise", SK_CONF_STR, offsetof(struct edge_conf, advertise), "",
	 "Host put in Via and Record-Route; empty: the UDP (else TCP) listen address", 0, 0,
	 0, 0, 0},
	{"cluster_host", SK_CONF_STR, offsetof(struct edge_conf, cluster_host), "",
	 "host[:port] put in Record-Route instead of this edge's address, so that in-dialog "
	 "requests may enter any edge (a DNS name with every edge behind it, or a shared "
	 "address); every edge accepts it as its own; empty: this edge's address",
	 0, 0, 0, 0, 0},
	{"auth_secret", SK_CONF_STR, offsetof(struct edge_conf, auth_secret), "",
	 "Secret for stateless digest nonces, the same on every edge; empty: one kept in "
	 "Redis for the cluster",
	 0, 0, 0, 0, 0},
	{"auth_algorithms", SK_CONF_STR, offsetof(struct edge_conf, auth_algorithms),
	 "sha256,md5", algs_help, 0, 0, 0, 0, check_algs},
	{"nonce_ttl", SK_CONF_DURATION, offsetof(struct edge_conf, nonce_ttl), "300s",
	 "Age after which a nonce is stale (stale=true, RFC 7616 §3.3)", 0, 1000, 86400000, 0,
	 0},
	{"max_msg_size", SK_CONF_INT, offsetof(struct edge_conf, max_msg_size), "65535",
	 "Largest SIP message accepted (513 above it)", 0, 1024, 1048576, 0, 0},
	{"t1", SK_CONF_DURATION, offsetof(struct edge_conf, t1), "500ms",
	 "RFC 3261 T1 (RTT estimate)", 0, 10, 10000, 0, 0},
	{"t2", SK_CONF_DURATION, offsetof(struct edge_conf, t2), "4s",
	 "RFC 3261 T2 (max non-INVITE retransmit interval)", 0, 100, 60000, 0, 0},
	{"t4", SK_CONF_DURATION, offsetof(struct edge_conf, t4), "5s",
	 "RFC 3261 T4 (max message lifetime)", 0, 100, 60000, 0, 0},
	{"timer_c", SK_CONF_DURATION, offsetof(struct edge_conf, timer_c), "180s",
	 "Proxy INVITE Timer C (RFC 3261 §16.6 item 11; more than 3 minutes by the RFC)", 0,
	 1000, 3600000, 0, 0},
	{"idle_timeout", SK_CONF_DURATION, offsetof(struct edge_conf, idle_timeout), "600s",
	 "Close a TCP/TLS connection idle this long", 0, 1000, 86400000, 0, 0},
	{"max_conns", SK_CONF_INT, offsetof(struct edge_conf, max_conns), "10000",
	 "Most TCP/TLS connections at once", 0, 1, 1000000, 0, 0},
	{"registrar_deadline", SK_CONF_DURATION,
	 offsetof(struct edge_conf, registrar_deadline), "2s",
	 "How long a REGISTER waits for the registrar role (then 500)", 0, 100, 30000, 0, 0},
	{"server", SK_CONF_STR, offsetof(struct edge_conf, server), "Skein",
	 "Server header of responses made here; empty: none", 0, 0, 0, 0, 0},
	{"dns_nameserver", SK_CONF_STR, offsetof(struct edge_conf, dns_nameserver), "",
	 "DNS server for RFC 3263 lookups (ip:port); empty: the ones in /etc/resolv.conf", 0, 0,
	 0, 0, 0},
	{"dns_deadline", SK_CONF_DURATION, offsetof(struct edge_conf, dns_deadline), "5s",
	 "Longest RFC 3263 resolution (NAPTR, SRV, A) of one target; then 503", 0, 100, 60000,
	 0, 0},
	{"dns_ipv6", SK_CONF_BOOL, offsetof(struct edge_conf, dns_ipv6), "no",
	 "Also look up AAAA records (tried after the A ones)", 0, 0, 0, 0, 0},
	{"symmetric", SK_CONF_BOOL, offsetof(struct edge_conf, symmetric), "yes",
	 "Send UDP responses to the source address and port even without rport (RFC 3581 "
	 "for every client: NATed phones that do not ask for it)",
	 0, 0, 0, 0, 0},
	SK_CONF_END,
};

static int on_start(struct sk_daemon *d, void *arg)
{
	struct edge *e = arg;

	e->d = d;
	e->conf = &conf;
	return edge_core_start(e);
}

static void on_drain(struct sk_daemon *d, void *arg)
{
	(void)d;
	edge_core_drain(arg);
}

static bool on_idle(struct sk_daemon *d, void *arg)
{
	(void)d;
	return edge_core_idle(arg);
}

static void on_stop(struct sk_daemon *d, void *arg)
{
	(void)d;
	edge_core_stop(arg);
}

static bool on_ready(struct sk_daemon *d, void *arg)
{
	const char *why;

	(void)d;
	return edge_core_ready(arg, &why);
}

static void on_member(struct sk_daemon *d, const struct sk_node_info *info, bool up, void *arg)
{
	(void)d;
	if (!up && !strcmp(info->role, "edge"))
		edge_relay_member_gone(arg, info->id);
}

int main(int argc, char **argv)
{
	const struct sk_daemon_ops ops = {
		.role = "edge",
		.summary = "Skein SIP edge: transports, sanity checks, auth, NAT, routing.",
		.keys = keys,
		.conf = &conf,
		.conf_size = sizeof(conf),
		.arg = &edge,
		.start = on_start,
		.drain = on_drain,
		.idle = on_idle,
		.stop = on_stop,
		.ready = on_ready,
		.member = on_member,
	};

	return sk_daemon_main(&ops, argc, argv);
}
