/* Unit tests for RFC 3263 server location (services/edge/resolve.h) against a private
 * dnsmasq on loopback serving a NAPTR/SRV/A test zone, and a UDP socket that never
 * answers. Every wait is bounded (sk_test_loop.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "resolve.h"

#define ALL	((1u << EDGE_PROTO_UDP) | (1u << EDGE_PROTO_TCP) | (1u << EDGE_PROTO_TLS))
#define UDP_TCP ((1u << EDGE_PROTO_UDP) | (1u << EDGE_PROTO_TCP))

struct res {
	int ncb;
	int err;
	size_t n;
	struct edge_target t[EDGE_RESOLVE_MAX_TARGETS];
};

struct t {
	uv_loop_t loop;
	uv_timer_t guard;
	bool expired;
	struct edge_resolver *r;
	struct res res[4];
};

#include "sk_test_loop.h"

static char dir[256], ns[64], conf_file[300];
static pid_t dns_pid = -1;

/* The zone. NAPTRs out of order (and one we do not speak, first); TTLs of 60 s so that
 * sres caches (dnsmasq's default for local data is 0). */
static const char zone[] =
    "no-resolv\nno-hosts\nno-poll\nbind-interfaces\nlocal=/skein.test/\nlocal-ttl=60\n"
    "host-record=sip1.skein.test,127.0.0.1\n"
    "host-record=sip2.skein.test,127.0.0.2\n"
    "host-record=sip3.skein.test,127.0.0.3\n"
    "host-record=skein.test,127.0.0.9\n"
    "host-record=dot.skein.test,127.0.0.4\n"
    "host-record=v6.skein.test,127.0.0.6,fd00::6\n"
    "cname=alias.skein.test,sip3.skein.test\n"
    "txt-record=empty.skein.test,\"nothing here\"\n"
    "naptr-record=skein.test,30,50,\"s\",\"SIP+D2U\",\"\",\"_sip._udp.skein.test\"\n"
    "naptr-record=skein.test,10,50,\"s\",\"SIPS+D2T\",\"\",\"_sips._tcp.skein.test\"\n"
    "naptr-record=skein.test,5,50,\"s\",\"SIP+D2W\",\"\",\"_sip._ws.skein.test\"\n"
    "naptr-record=skein.test,20,50,\"s\",\"SIP+D2T\",\"\",\"_sip._tcp.skein.test\"\n"
    "srv-host=_sips._tcp.skein.test,sip1.skein.test,5061,10,60\n"
    "srv-host=_sip._tcp.skein.test,sip1.skein.test,5060,10,60\n"
    "srv-host=_sip._udp.skein.test,sip2.skein.test,5060,20,40\n"
    "srv-host=_sip._udp.skein.test,sip1.skein.test,5060,10,60\n"
    "srv-host=_sip._udp.srv.skein.test,sip3.skein.test,5070,10,0\n"
    "srv-host=_sip._udp.srv.skein.test,sip2.skein.test,5080,5,0\n"
    "srv-host=_sip._tcp.srv.skein.test,sip1.skein.test,5090,10,0\n"
    "srv-host=_sip._udp.w.skein.test,sip1.skein.test,5060,10,90\n"
    "srv-host=_sip._udp.w.skein.test,sip2.skein.test,5060,10,10\n"
    "srv-host=_sip._udp.dot.skein.test\n";

/* ---- a DNS probe, a silent server ---- */

/* An A query for sip1.skein.test; true when anything answers within ms. */
static bool dns_probe(uint16_t port, int ms)
{
	static const unsigned char q[] = {0x12, 0x34, 1,   0,	0,   1,	  0, 0,	  0,   0,   0,
					  0,	4,    's', 'i', 'p', '1', 5, 's', 'k', 'e', 'i',
					  'n',	4,    't', 'e', 's', 't', 0, 0,	  1,   0,   1};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct pollfd p = {.fd = s, .events = POLLIN};
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = sendto(s, q, sizeof(q), 0, (struct sockaddr *)&a, sizeof(a)) == sizeof(q) &&
	     poll(&p, 1, ms) == 1 && recv(s, (char[512]){0}, 512, 0) > 12;
	close(s);
	return ok;
}

static int udp_bound(uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(s, (struct sockaddr *)&a, &len)) {
		if (s >= 0)
			close(s);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return s;
}

static int drain_count(int s)
{
	char b[512];
	int n = 0;

	while (recv(s, b, sizeof(b), 0) > 0)
		n++;
	return n;
}

/* ---- dnsmasq ---- */

/* Lines of dnsmasq's query log (written as it answers) that contain s. */
static int log_count(const char *s)
{
	char path[320], line[512];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/dnsmasq.log", dir);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, s) != NULL;
	fclose(f);
	return n;
}

static int dns_start(void)
{
	char path[320], portarg[32], conf[300], logarg[320];
	const char *tmp = getenv("SKEIN_TEST_TMP");
	FILE *f;

	if (access("/usr/sbin/dnsmasq", X_OK)) {
		fprintf(stderr, "dnsmasq not found (Debian package dnsmasq-base)\n");
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s/resolve.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (tmp && *tmp)
		mkdir(tmp, 0700);
	if (!mkdtemp(dir))
		return -1;
	snprintf(conf, sizeof(conf), "%s/zone.conf", dir);
	f = fopen(conf, "w");
	if (!f)
		return -1;
	fputs(zone, f);
	fclose(f);
	snprintf(logarg, sizeof(logarg), "--log-facility=%s/dnsmasq.log", dir);
	for (int attempt = 0; attempt < 5; attempt++) {
		uint16_t port;
		int s = udp_bound(&port);

		if (s < 0)
			return -1;
		close(s); /* a free port, give or take a race: retried */
		snprintf(portarg, sizeof(portarg), "--port=%u", port);
		snprintf(path, sizeof(path), "--conf-file=%s", conf);
		dns_pid = fork();
		if (dns_pid == 0) {
			/* root: stay root (dnsmasq would switch to "nobody"); else it keeps us */
			char *av[] = {"dnsmasq",
				      "--keep-in-foreground",
				      path,
				      portarg,
				      "--listen-address=127.0.0.1",
				      "--pid-file=",
				      "--log-queries",
				      logarg,
				      geteuid() == 0 ? "--user=root" : NULL,
				      NULL};

			prctl(PR_SET_PDEATHSIG, SIGTERM);
			execv("/usr/sbin/dnsmasq", av);
			_exit(127);
		}
		for (int i = 0; i < 50 && dns_pid > 0; i++) {
			if (dns_probe(port, 100)) {
				snprintf(ns, sizeof(ns), "127.0.0.1:%u", port);
				snprintf(conf_file, sizeof(conf_file), "%s/resolv.conf", dir);
				f = fopen(conf_file, "w");
				if (!f)
					return -1;
				fprintf(
				    f,
				    "# sofia-sip reads \"port\"\nnameserver 127.0.0.1\nport %u\n",
				    port);
				fclose(f);
				return 0;
			}
			if (waitpid(dns_pid, NULL, WNOHANG) == dns_pid)
				dns_pid = -1;
		}
		if (dns_pid > 0) {
			kill(dns_pid, SIGTERM);
			waitpid(dns_pid, NULL, 0);
			dns_pid = -1;
		}
	}
	fprintf(stderr, "dnsmasq did not start (see %s)\n", dir);
	return -1;
}

static int group_setup(void **state)
{
	(void)state;
	return dns_start();
}

static int group_teardown(void **state)
{
	char cmd[300];

	(void)state;
	if (dns_pid > 0) {
		kill(dns_pid, SIGTERM);
		waitpid(dns_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (dir[0] && system(cmd))
		return 0;
	return 0;
}

/* ---- helpers ---- */

static void on_res(int err, const struct edge_target *tg, size_t n, void *arg)
{
	struct res *r = arg;

	r->ncb++;
	r->err = err;
	r->n = n;
	if (n > EDGE_RESOLVE_MAX_TARGETS)
		n = EDGE_RESOLVE_MAX_TARGETS;
	if (n)
		memcpy(r->t, tg, n * sizeof(*tg));
}

static void open_resolver(struct t *t, const char *server, uint64_t deadline)
{
	struct edge_resolver_opts o = {.nameserver = server, .deadline_ms = deadline};

	t_init(t);
	assert_int_equal(edge_resolver_alloc(&t->r, &t->loop, &o), 0);
}

static void close_resolver(struct t *t)
{
	edge_resolver_close(t->r);
	t->r = sk_deref(t->r);
	t_done(t);
}

static int resolve(struct t *t, const char *uri, unsigned protos, struct res *res,
		   struct edge_query **qp)
{
	char buf[256];
	url_t u;

	snprintf(buf, sizeof(buf), "%s", uri);
	memset(res, 0, sizeof(*res));
	assert_int_equal(url_d(&u, buf), 0);
	return edge_resolve(t->r, &u, protos, on_res, res, qp);
}

/* Resolves and waits; returns the callback's error. */
static int run(struct t *t, const char *uri, unsigned protos)
{
	struct res *res = &t->res[0];

	assert_int_equal(resolve(t, uri, protos, res, NULL), 0);
	assert_int_equal(res->ncb, 0); /* never from inside edge_resolve */
	WAIT_UNTIL(t, res->ncb == 1, 4000);
	return res->err;
}

/* "udp 127.0.0.1:5060" */
static void expect(const struct res *res, size_t i, const char *want, const char *name)
{
	char a[64], got[80];

	assert_true(i < res->n);
	snprintf(got, sizeof(got), "%s %s", edge_proto_name(res->t[i].proto),
		 edge_addr_str(&res->t[i].addr, a, sizeof(a)));
	assert_string_equal(got, want);
	assert_string_equal(res->t[i].name, name);
}

/* ---- tests ---- */

static void test_naptr_chain(void **state)
{
	struct t t;

	(void)state;
	open_resolver(&t, ns, 0);
	/* NAPTR by order (SIP+D2W skipped), each SRV by priority, A records. */
	assert_int_equal(run(&t, "sip:bob@skein.test", ALL), 0);
	assert_int_equal(t.res[0].n, 4);
	expect(&t.res[0], 0, "tls 127.0.0.1:5061", "skein.test");
	expect(&t.res[0], 1, "tcp 127.0.0.1:5060", "skein.test");
	expect(&t.res[0], 2, "udp 127.0.0.1:5060", "skein.test");
	expect(&t.res[0], 3, "udp 127.0.0.2:5060", "skein.test");
	/* Only what the edge has; now from sres's cache. */
	assert_int_equal(run(&t, "sip:bob@skein.test", UDP_TCP), 0);
	assert_int_equal(t.res[0].n, 3);
	expect(&t.res[0], 0, "tcp 127.0.0.1:5060", "skein.test");
	expect(&t.res[0], 2, "udp 127.0.0.2:5060", "skein.test");
	/* sips: only SIPS+D2T. */
	assert_int_equal(run(&t, "sips:bob@skein.test", ALL), 0);
	assert_int_equal(t.res[0].n, 1);
	expect(&t.res[0], 0, "tls 127.0.0.1:5061", "skein.test");
	assert_int_equal(run(&t, "sips:bob@skein.test", UDP_TCP), SK_ENOENT);
	close_resolver(&t);
	/* The SRV answers carried the targets' A records: sip2 was never asked for. */
	assert_int_equal(log_count("query[A] sip2.skein.test"), 0);
	assert_true(log_count("query[NAPTR] skein.test") >= 1);
}

static void test_srv_without_naptr(void **state)
{
	struct t t;

	(void)state;
	open_resolver(&t, ns, 0);
	assert_int_equal(run(&t, "sip:srv.skein.test", ALL), 0);
	assert_int_equal(t.res[0].n, 3);
	expect(&t.res[0], 0, "udp 127.0.0.2:5080", "srv.skein.test");
	expect(&t.res[0], 1, "udp 127.0.0.3:5070", "srv.skein.test");
	expect(&t.res[0], 2, "tcp 127.0.0.1:5090", "srv.skein.test");
	close_resolver(&t);
}

/* RFC 2782: weights 90/10 in one priority; both orders must occur, mostly 90 first. */
static void test_srv_weights(void **state)
{
	int first1 = 0, first2 = 0;
	struct t t;

	(void)state;
	open_resolver(&t, ns, 0);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(run(&t, "sip:w.skein.test", ALL), 0);
		assert_int_equal(t.res[0].n, 2);
		first1 += t.res[0].t[0].addr.u.in.sin_addr.s_addr == htonl(0x7f000001);
		first2 += t.res[0].t[0].addr.u.in.sin_addr.s_addr == htonl(0x7f000002);
	}
	assert_int_equal(first1 + first2, 200);
	assert_in_range(first1, 150, 199);
	close_resolver(&t);
}

static void test_transport_param(void **state)
{
	struct t t;

	(void)state;
	open_resolver(&t, ns, 0);
	/* SRV for that transport only, no NAPTR. */
	assert_int_equal(run(&t, "sip:skein.test;transport=tcp", ALL), 0);
	assert_int_equal(t.res[0].n, 1);
	expect(&t.res[0], 0, "tcp 127.0.0.1:5060", "skein.test");
	assert_int_equal(run(&t, "sips:skein.test;transport=tcp", ALL), 0);
	assert_int_equal(t.res[0].n, 1);
	expect(&t.res[0], 0, "tls 127.0.0.1:5061", "skein.test");
	/* No SRV: A on the transport's default port. */
	assert_int_equal(run(&t, "sip:sip3.skein.test;transport=TCP", ALL), 0);
	assert_int_equal(t.res[0].n, 1);
	expect(&t.res[0], 0, "tcp 127.0.0.3:5060", "sip3.skein.test");
	/* Transports we cannot use. */
	assert_int_equal(run(&t, "sip:skein.test;transport=sctp", ALL), SK_ENOENT);
	assert_int_equal(run(&t, "sips:skein.test;transport=udp", ALL), SK_ENOENT);
	assert_int_equal(run(&t, "sip:skein.test;transport=tls", UDP_TCP), SK_ENOENT);
	close_resolver(&t);
}

static void test_explicit_port(void **state)
{
	struct t t;

	(void)state;
	open_resolver(&t, ns, 0);
	/* The A record of skein.test, not its NAPTR/SRV. */
	assert_int_equal(run(&t, "sip:bob@skein.test:5080", ALL), 0);
	assert_int_equal(t.res[0].n, 1);
	expect(&t.res[0], 0, "udp 127.0.0.9:5080", "skein.test");
	assert_int_equal(run(&t, "sips:bob@skein.test:5081", ALL), 0);
	expect(&t.res[0], 0, "tls 127.0.0.9:5081", "skein.test");
	/* Through a CNAME. */
	assert_int_equal(run(&t, "sip:alias.skein.test:5099;transport=tcp", ALL), 0);
	assert_int_equal(t.res[0].n, 1);
	expect(&t.res[0], 0, "tcp 127.0.0.3:5099", "alias.skein.test");
	close_resolver(&t);
}

static void test_a_fallback(void **state)
{
	struct t t;

	(void)state;
	open_resolver(&t, ns, 0);
	assert_int_equal(run(&t, "sip:sip3.skein.test", ALL), 0);
	assert_int_equal(t.res[0].n, 1);
	expect(&t.res[0], 0, "udp 127.0.0.3:5060", "sip3.skein.test");
	assert_int_equal(run(&t, "sips:sip3.skein.test", ALL), 0);
	expect(&t.res[0], 0, "tls 127.0.0.3:5061", "sip3.skein.test");
	assert_int_equal(run(&t, "sip:sip3.skein.test", 1u << EDGE_PROTO_TCP), 0);
	expect(&t.res[0], 0, "tcp 127.0.0.3:5060", "sip3.skein.test");
	/* SRV target "." (RFC 2782): not available, no fallback to its A record. */
	assert_int_equal(run(&t, "sip:dot.skein.test", ALL), SK_ENOENT);
	close_resolver(&t);
}

static void test_nxdomain(void **state)
{
	struct t t;

	(void)state;
	open_resolver(&t, ns, 0);
	assert_int_equal(run(&t, "sip:bob@nx.skein.test", ALL), SK_ENOENT);
	assert_int_equal(t.res[0].n, 0);
	/* The name exists but has nothing for SIP. */
	assert_int_equal(run(&t, "sip:bob@empty.skein.test", ALL), SK_ENOENT);
	close_resolver(&t);
}

/* No DNS at all for IP literals: the server is a socket that counts what it gets. */
static void test_ip_literal(void **state)
{
	char server[32];
	uint16_t port;
	int s = udp_bound(&port);
	struct t t;

	(void)state;
	assert_true(s >= 0);
	snprintf(server, sizeof(server), "127.0.0.1:%u", port);
	open_resolver(&t, server, 1000);
	assert_int_equal(run(&t, "sip:bob@127.0.0.5", ALL), 0);
	assert_int_equal(t.res[0].n, 1);
	expect(&t.res[0], 0, "udp 127.0.0.5:5060", "");
	assert_int_equal(run(&t, "sips:[::1]:5999", ALL), 0);
	expect(&t.res[0], 0, "tls [::1]:5999", "");
	assert_int_equal(run(&t, "sip:bob@127.0.0.5;transport=tcp", ALL), 0);
	expect(&t.res[0], 0, "tcp 127.0.0.5:5060", "");
	/* maddr is the TARGET; the TLS name stays the host's. */
	assert_int_equal(run(&t, "sip:bob@h.example;maddr=127.0.0.7;transport=tls", ALL), 0);
	expect(&t.res[0], 0, "tls 127.0.0.7:5061", "h.example");
	assert_int_equal(run(&t, "sips:bob@127.0.0.5", UDP_TCP), SK_ENOENT);
	assert_int_equal(drain_count(s), 0);
	close_resolver(&t);
	close(s);
}

/* A server that never answers: SK_ETIMEDOUT at the deadline, after sres retransmitted. */
static void test_timeout(void **state)
{
	char server[32];
	uint16_t port;
	int s = udp_bound(&port);
	uint64_t t0, ms;
	struct t t;

	(void)state;
	assert_true(s >= 0);
	snprintf(server, sizeof(server), "127.0.0.1:%u", port);
	open_resolver(&t, server, 2500);
	t0 = uv_hrtime();
	assert_int_equal(resolve(&t, "sip:bob@skein.test", ALL, &t.res[0], NULL), 0);
	WAIT_UNTIL(&t, t.res[0].ncb == 1, 5000);
	ms = (uv_hrtime() - t0) / 1000000;
	assert_int_equal(t.res[0].err, SK_ETIMEDOUT);
	assert_in_range(ms, 2400, 3500);
	assert_true(drain_count(s) >= 2); /* the query and at least one retransmission */
	close_resolver(&t);
	close(s);
}

static void test_cancel(void **state)
{
	struct edge_query *q = NULL;
	char server[32];
	uint16_t port;
	int s = udp_bound(&port);
	struct t t;

	(void)state;
	/* Before the answer from a real server: the answer arrives and is dropped. */
	open_resolver(&t, ns, 0);
	assert_int_equal(resolve(&t, "sip:bob@skein.test", ALL, &t.res[0], &q), 0);
	assert_non_null(q);
	edge_query_cancel(q);
	t_run_for(&t, 300);
	assert_int_equal(t.res[0].ncb, 0);
	assert_int_equal(run(&t, "sip:bob@skein.test", ALL), 0); /* still works */
	assert_int_equal(t.res[0].n, 4);
	/* Several at once, one cancelled. */
	assert_int_equal(resolve(&t, "sip:srv.skein.test", ALL, &t.res[1], NULL), 0);
	assert_int_equal(resolve(&t, "sip:nx.skein.test", ALL, &t.res[2], &q), 0);
	assert_int_equal(resolve(&t, "sip:sip3.skein.test", ALL, &t.res[3], NULL), 0);
	edge_query_cancel(q);
	WAIT_UNTIL(&t, t.res[1].ncb && t.res[3].ncb, 4000);
	t_run_for(&t, 100);
	assert_int_equal(t.res[2].ncb, 0);
	assert_int_equal(t.res[1].n, 3);
	assert_int_equal(t.res[3].n, 1);
	close_resolver(&t);

	/* While sres is retransmitting to a silent server. */
	assert_true(s >= 0);
	snprintf(server, sizeof(server), "127.0.0.1:%u", port);
	open_resolver(&t, server, 1000);
	assert_int_equal(resolve(&t, "sip:bob@skein.test", ALL, &t.res[0], &q), 0);
	t_run_for(&t, 200);
	edge_query_cancel(q);
	t_run_for(&t, 1300); /* past the deadline */
	assert_int_equal(t.res[0].ncb, 0);
	close_resolver(&t);
	close(s);
}

/* Nothing listens on the server's port: ICMP port unreachable reaches sres through
 * POLLERR (IP_RECVERR), well before the deadline. */
static void test_server_unreachable(void **state)
{
	char server[32];
	uint16_t port;
	int s = udp_bound(&port);
	uint64_t t0, ms;
	struct t t;

	(void)state;
	assert_true(s >= 0);
	close(s);
	snprintf(server, sizeof(server), "127.0.0.1:%u", port);
	open_resolver(&t, server, 5000);
	t0 = uv_hrtime();
	assert_int_equal(run(&t, "sip:bob@skein.test", ALL), SK_ETIMEDOUT);
	ms = (uv_hrtime() - t0) / 1000000;
	assert_true(ms < 2000);
	close_resolver(&t);
}

static void test_ipv6(void **state)
{
	struct edge_resolver_opts o = {.nameserver = ns, .ipv6 = true};
	struct t t;

	(void)state;
	open_resolver(&t, ns, 0);
	assert_int_equal(run(&t, "sip:v6.skein.test:5070", ALL), 0);
	assert_int_equal(t.res[0].n, 1);
	expect(&t.res[0], 0, "udp 127.0.0.6:5070", "v6.skein.test");
	close_resolver(&t);
	t_init(&t);
	assert_int_equal(edge_resolver_alloc(&t.r, &t.loop, &o), 0);
	assert_int_equal(run(&t, "sip:v6.skein.test:5070", ALL), 0);
	assert_int_equal(t.res[0].n, 2);
	expect(&t.res[0], 0, "udp 127.0.0.6:5070", "v6.skein.test");
	expect(&t.res[0], 1, "udp [fd00::6]:5070", "v6.skein.test");
	close_resolver(&t);
}

/* Closing with queries pending: each gets SK_ECANCELED, later, not inside the close. */
static void test_close_pending(void **state)
{
	char server[32];
	uint16_t port;
	int s = udp_bound(&port);
	struct t t;

	(void)state;
	assert_true(s >= 0);
	snprintf(server, sizeof(server), "127.0.0.1:%u", port);
	open_resolver(&t, server, 0);
	assert_int_equal(resolve(&t, "sip:bob@skein.test", ALL, &t.res[0], NULL), 0);
	assert_int_equal(resolve(&t, "sip:127.0.0.1", ALL, &t.res[1], NULL), 0);
	t_run_for(&t, 50);
	assert_int_equal(t.res[1].ncb, 1); /* delivered before the close */
	edge_query_cancel(NULL);
	edge_resolver_close(t.r);
	edge_resolver_close(t.r);
	assert_int_equal(t.res[0].ncb, 0);
	assert_int_equal(resolve(&t, "sip:127.0.0.1", ALL, &t.res[2], NULL), SK_ECANCELED);
	WAIT_UNTIL(&t, t.res[0].ncb == 1, 1000);
	assert_int_equal(t.res[0].err, SK_ECANCELED);
	assert_int_equal(t.res[0].n, 0);
	t.r = sk_deref(t.r);
	t_done(&t);
	close(s);
}

static void test_resolv_conf(void **state)
{
	struct edge_resolver_opts o = {.resolv_conf = conf_file};
	struct t t;

	(void)state;
	t_init(&t);
	assert_int_equal(edge_resolver_alloc(&t.r, &t.loop, &o), 0);
	assert_int_equal(run(&t, "sip:srv.skein.test", ALL), 0);
	expect(&t.res[0], 0, "udp 127.0.0.2:5080", "srv.skein.test");
	close_resolver(&t);
}

static void test_bad_args(void **state)
{
	struct edge_resolver_opts bad_ns = {.nameserver = "127.0.0.1"};
	struct edge_resolver_opts bad_conf = {.resolv_conf = "/nonexistent/resolv.conf"};
	struct edge_resolver *r = NULL;
	struct t t;

	(void)state;
	open_resolver(&t, ns, 0);
	assert_int_equal(edge_resolver_alloc(&r, &t.loop, &bad_ns), SK_EINVAL);
	assert_int_equal(edge_resolver_alloc(&r, &t.loop, &bad_conf), SK_ECONFIG);
	assert_null(r);
	assert_int_equal(resolve(&t, "tel:+15551234", ALL, &t.res[0], NULL), SK_EINVAL);
	assert_int_equal(resolve(&t, "sip:bob@skein.test:0", ALL, &t.res[0], NULL), SK_EINVAL);
	assert_int_equal(resolve(&t, "sip:bob@skein.test:70000", ALL, &t.res[0], NULL), SK_EINVAL);
	assert_int_equal(resolve(&t, "sip:bob@skein.test", 0, &t.res[0], NULL), SK_EINVAL);
	assert_int_equal(edge_resolve(t.r, NULL, ALL, on_res, NULL, NULL), SK_EINVAL);
	t_run_for(&t, 50);
	assert_int_equal(t.res[0].ncb, 0);
	close_resolver(&t);
}

/* Every allocation failing in turn: a clean error or a complete run, no leak. */
static void test_out_of_memory(void **state)
{
	int done = 0;

	(void)state;
	for (unsigned long n = 1; n < 40 && done < 3; n++) {
		struct edge_resolver_opts o = {.nameserver = ns};
		struct t t;
		int rc;

		t_init(&t);
		sk_mem_fail_after(n);
		rc = edge_resolver_alloc(&t.r, &t.loop, &o);
		if (rc) {
			sk_mem_fail_after(0);
			assert_int_equal(rc, SK_ENOMEM);
			t_done(&t);
			continue;
		}
		rc = resolve(&t, "sip:bob@skein.test", ALL, &t.res[0], NULL);
		if (rc == 0)
			WAIT_UNTIL(&t, t.res[0].ncb == 1, 4000);
		sk_mem_fail_after(0);
		if (rc == 0 && t.res[0].err == 0)
			done++;
		else if (rc)
			assert_int_equal(rc, SK_ENOMEM);
		close_resolver(&t);
	}
	assert_true(done >= 1);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_naptr_chain),	 SK_TEST(test_srv_without_naptr),
	    SK_TEST(test_srv_weights),	 SK_TEST(test_transport_param),
	    SK_TEST(test_explicit_port), SK_TEST(test_a_fallback),
	    SK_TEST(test_nxdomain),	 SK_TEST(test_ip_literal),
	    SK_TEST(test_timeout),	 SK_TEST(test_server_unreachable),
	    SK_TEST(test_ipv6),		 SK_TEST(test_cancel),
	    SK_TEST(test_close_pending), SK_TEST(test_resolv_conf),
	    SK_TEST(test_bad_args),	 SK_TEST(test_out_of_memory),
	};

	(void)argc; /* argv[1]: the shared RFC 4475 folder, not used here */
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("edge_resolve", tests, group_setup, group_teardown);
}
