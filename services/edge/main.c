/* skein-edge: the SIP edge (transports, sanity checks, digest auth, registration via
 * the registrar, transaction-stateful proxy with forking). main() only wires the
 * config table to the core. */
#include <stddef.h>
#include <string.h>
#include "skein/sk_mem.h"
#include "skein/sk_node.h"
#include "core.h"
#include "guard.h"

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

static int check_nets(const char *v, const char **why)
{
	struct guard_nets *n;

	if (guard_nets_parse(&n, v, why))
		return -1;
	sk_deref(n);
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
	 "PEM certificate (chain) for the TLS listener", SK_CONF_RELOAD, 0, 0, 0, 0},
	{"tls_key", SK_CONF_STR, offsetof(struct edge_conf, tls_key), "",
	 "PEM private key for the TLS listener", SK_CONF_RELOAD, 0, 0, 0, 0},
	{"tls_ca", SK_CONF_STR, offsetof(struct edge_conf, tls_ca), "",
	 "CA file to verify outbound TLS peers; empty: the system's", SK_CONF_RELOAD, 0, 0, 0, 0},
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
	{"auth_cache_size", SK_CONF_INT, offsetof(struct edge_conf, auth_cache_size), "65536",
	 "HA1s kept in memory, so that a REGISTER needs one Redis script (the registrar's, "
	 "which also checks that the HA1 is still current); 0: read every time",
	 0, 0, 16777216, 0, 0},
	{"nonce_slots", SK_CONF_INT, offsetof(struct edge_conf, nonce_slots), "1048576",
	 "Nonce-counts this edge keeps for the nonces it issued (8 bytes each, rounded up "
	 "to a power of two); a nonce is forgotten (stale=true) once this many newer ones "
	 "were issued",
	 0, 1024, 1073741824, 0, 0},
	{"direct_refresh", SK_CONF_BOOL, offsetof(struct edge_conf, direct_refresh), "yes",
	 "Write a REGISTER that only refreshes existing bindings to Redis here, with the "
	 "registrar's script and policy (as last heard from a registrar, within 10 s); "
	 "additions, removals and everything else still go to the registrar",
	 0, 0, 0, 0, 0},
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
	{"max_conns_per_source", SK_CONF_INT, offsetof(struct edge_conf, max_conns_per_source),
	 "256", "Most TCP/TLS/WS connections from one IP address at once (beyond it the first "
	 "request of a new connection gets 503 and the connection is closed)",
	 0, 1, 1000000, 0, 0},
	{"slow_timeout", SK_CONF_DURATION, offsetof(struct edge_conf, slow_timeout), "10s",
	 "A message begun on a TCP/TLS/WS connection must be complete within this time, and a "
	 "TLS handshake or WebSocket upgrade done (slow senders, slowloris), else the "
	 "connection is closed",
	 0, 100, 600000, 0, 0},
	{"max_transactions", SK_CONF_INT, offsetof(struct edge_conf, max_transactions), "100000",
	 "Requests in hand at once (server transactions without a final response yet; "
	 "finished ones absorbing retransmissions do not count); new requests above it get "
	 "503 + Retry-After (0: no cap)",
	 SK_CONF_RELOAD, 0, 10000000, 0, 0},
	{"retry_after", SK_CONF_DURATION, offsetof(struct edge_conf, retry_after), "30s",
	 "Retry-After of the 503 responses that shed load", SK_CONF_RELOAD, 1000, 3600000, 0,
	 0},
	{"rate_limit", SK_CONF_INT, offsetof(struct edge_conf, rate_limit), "50",
	 "Requests per second allowed from one IP address (token bucket; 0: no limit); "
	 "above it 503 + Retry-After",
	 SK_CONF_RELOAD, 0, 1000000, 0, 0},
	{"rate_burst", SK_CONF_INT, offsetof(struct edge_conf, rate_burst), "200",
	 "Token bucket size of the per-source rate limit", SK_CONF_RELOAD, 1, 10000000, 0, 0},
	{"flood_ban_after", SK_CONF_INT, offsetof(struct edge_conf, flood_ban_after), "500",
	 "Requests refused by the rate limit (within 10 s of each other) after which the "
	 "source is banned cluster-wide; 0: never",
	 SK_CONF_RELOAD, 0, 100000000, 0, 0},
	{"ban_time", SK_CONF_DURATION, offsetof(struct edge_conf, ban_time), "1h",
	 "How long an automatic ban lasts", SK_CONF_RELOAD, 1000, 2592000000, 0, 0},
	{"auth_fail_window", SK_CONF_DURATION, offsetof(struct edge_conf, auth_fail_window),
	 "10m", "Window over which failed digest authentications are counted",
	 SK_CONF_RELOAD, 1000, 86400000, 0, 0},
	{"auth_fail_source", SK_CONF_INT, offsetof(struct edge_conf, auth_fail_source), "20",
	 "Failed authentications from one IP address within auth_fail_window before it is "
	 "banned (cluster-wide count); 0: never",
	 SK_CONF_RELOAD, 0, 1000000, 0, 0},
	{"auth_fail_user", SK_CONF_INT, offsetof(struct edge_conf, auth_fail_user), "50",
	 "Failed authentications for one user within auth_fail_window after which every "
	 "further failing source is banned (password guessing from many addresses); 0: never",
	 SK_CONF_RELOAD, 0, 1000000, 0, 0},
	{"scanner_user_agents", SK_CONF_STR, offsetof(struct edge_conf, scanner_user_agents),
	 "friendly-scanner,sipvicious,sipcli,sip-scan,sipsak,iWar,sundayddr,SIVuS,"
	 "VaxSIPUserAgent,smap,PortSIP VoIP SDK,Cisco-SIPGateway/IOS-12.x,pplsip",
	 "Requests whose User-Agent contains one of these (comma-separated, any case) are "
	 "dropped without an answer; empty: none",
	 SK_CONF_RELOAD, 0, 0, 0, 0},
	{"scanner_ban", SK_CONF_BOOL, offsetof(struct edge_conf, scanner_ban), "yes",
	 "Also ban the source of a scanner request (cluster-wide, for ban_time)",
	 SK_CONF_RELOAD, 0, 0, 0, 0},
	{"trusted_networks", SK_CONF_STR, offsetof(struct edge_conf, trusted_networks), "",
	 "Networks never rate-limited nor banned (trunks, monitoring): comma-separated CIDR, "
	 "e.g. 192.0.2.0/24,2001:db8::/32",
	 SK_CONF_RELOAD, 0, 0, 0, check_nets},
	{"call_limit", SK_CONF_INT, offsetof(struct edge_conf, call_limit), "0",
	 "Concurrent outbound calls per account, cluster-wide (403 above); 0: no limit; a "
	 "domain may override it (skeinctl domain set)",
	 SK_CONF_RELOAD, 0, 1000000, 0, 0},
	{"call_rate", SK_CONF_INT, offsetof(struct edge_conf, call_rate), "0",
	 "Outbound call attempts per minute per account, cluster-wide (403 above); 0: no "
	 "limit; a domain may override it",
	 SK_CONF_RELOAD, 0, 1000000, 0, 0},
	{"call_max_duration", SK_CONF_DURATION, offsetof(struct edge_conf, call_max_duration),
	 "4h", "A call stops counting towards call_limit after this long even if its BYE was "
	 "never seen",
	 SK_CONF_RELOAD, 60000, 604800000, 0, 0},
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

static void on_reload(struct sk_daemon *d, void *arg)
{
	(void)d;
	edge_core_reload(arg);
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
		.reload = on_reload,
	};

	return sk_daemon_main(&ops, argc, argv);
}
