/* skeinctl: the admin command line. JSON on stdout by default (for scripts and
 * dashboards), `-o table` for people. Reads the cluster from Redis and the daemons'
 * HTTP endpoints; `ping` speaks the bus. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "skein/sk_daemon.h"
#include "skein/sk_node.h"
#include "skein/sk_buf.h"
#include "skein/sk_mem.h"
#include "skein/sk_err.h"
#include "skein/sk_sys.h"
#include "skein/sk_log.h"
#include "skeinctl.h"

extern char **environ;

/* prov.c */
int cmd_domain(struct ctl *c);
int cmd_user(struct ctl *c);
int cmd_reg(struct ctl *c);

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: skeinctl [--config FILE] [--redis ADDR] [--cluster NAME] [-o json|table] COMMAND\n"
		"Commands:\n"
		"  nodes                  live members of the cluster (from Redis)\n"
		"  status                 every member's /status (ready, draining, redis, bus)\n"
		"  ping --role=ROLE [--count=N] [--concurrency=N] [--rate=PER_S] [--deadline=MS]\n"
		"                         bus Ping requests to a role; exit 3 if any failed\n"
		"  domain add|del DOMAIN [--force]\n"
		"                         serve a SIP domain, or stop serving it (del refuses while\n"
		"                         it has users; --force deletes them and their bindings)\n"
		"  domain list            served domains, their user counts and call limits\n"
		"  domain set DOMAIN [call-limit=N|default] [call-rate=N|default]\n"
		"                         per-domain override of the edges' call_limit (concurrent\n"
		"                         outbound calls per account) and call_rate (attempts per\n"
		"                         minute); 0: no limit; default: the edges' config\n"
		"  user add USER@DOMAIN --password SECRET | --password-stdin\n"
		"                         provision a user of a served domain (stores the MD5 and\n"
		"                         SHA-256 digest HA1s with realm DOMAIN, never the password)\n"
		"  user passwd USER@DOMAIN --password SECRET | --password-stdin\n"
		"  user del USER@DOMAIN   remove a user, its credentials and its bindings\n"
		"  user list [DOMAIN]     users of one domain or of all\n"
		"  reg show USER@DOMAIN   current bindings of an address of record\n"
		"  ban list               sources banned cluster-wide (by the edges or by hand)\n"
		"  ban add IP [--time=DURATION] [--reason=TEXT]\n"
		"                         ban a source on every edge (default 1h, reason manual)\n"
		"  ban del IP             lift a ban\n"
		"  im list USER@DOMAIN    instant messages kept for a user with no binding\n"
		"  im purge USER@DOMAIN [--id=ID]\n"
		"                         delete them (all, or the one im list names ID)\n"
		"Exit status: 0 done, 1 failed (Redis unreachable, unknown domain or user,\n"
		"duplicate), 2 bad usage (unknown option, missing argument, malformed name).\n"
		"The cluster comes from the [cluster] section of FILE ($SKEIN_CONFIG if set) and\n"
		"SKEIN_CLUSTER_* variables; --redis and --cluster override it.\n");
}

static int load_members(struct ctl *c, struct sk_node_info **list, size_t *n)
{
	int err = sk_node_list_sync(c->cluster.redis, c->cluster.name, c->cluster.node_timeout,
				    list, n);

	if (err)
		fprintf(stderr, "skeinctl: cannot read the cluster from redis %s: %s\n",
			c->cluster.redis, sk_strerror(err));
	return err;
}

static int cmd_nodes(struct ctl *c)
{
	struct sk_node_info *l;
	struct sk_buf b;
	size_t n;
	uint64_t now = sk_sys_unix_ms();

	if (load_members(c, &l, &n))
		return 1;
	sk_buf_init(&b);
	if (c->table) {
		sk_buf_printf(&b, "%-28s %-10s %-8s %-22s %-8s %8s %8s\n", "ID", "ROLE", "DC", "HTTP",
			      "STATE", "UPTIME", "SEEN");
		for (size_t i = 0; i < n; i++)
			sk_buf_printf(&b, "%-28s %-10s %-8s %-22s %-8s %7.0fs %6llums\n", l[i].id,
				      l[i].role, l[i].dc, l[i].http_addr,
				      l[i].draining ? "draining" : "up",
				      (double)(now - l[i].started_ms) / 1000.0,
				      (unsigned long long)l[i].age_ms);
	} else {
		sk_buf_puts(&b, "[");
		for (size_t i = 0; i < n; i++) {
			sk_buf_puts(&b, i ? ",\n {\"id\":" : "{\"id\":");
			sk_buf_json_str(&b, l[i].id);
			sk_buf_puts(&b, ",\"node\":");
			sk_buf_json_str(&b, l[i].node);
			sk_buf_puts(&b, ",\"role\":");
			sk_buf_json_str(&b, l[i].role);
			sk_buf_puts(&b, ",\"datacenter\":");
			sk_buf_json_str(&b, l[i].dc);
			sk_buf_puts(&b, ",\"http\":");
			sk_buf_json_str(&b, l[i].http_addr);
			sk_buf_puts(&b, ",\"bus\":");
			sk_buf_json_str(&b, l[i].bus_addr);
			sk_buf_puts(&b, ",\"version\":");
			sk_buf_json_str(&b, l[i].version);
			sk_buf_printf(&b,
				      ",\"pid\":%u,\"draining\":%s,\"load\":%u,\"started_ms\":%llu,"
				      "\"last_seen_ms_ago\":%llu}",
				      l[i].pid, l[i].draining ? "true" : "false", l[i].load,
				      (unsigned long long)l[i].started_ms,
				      (unsigned long long)l[i].age_ms);
		}
		sk_buf_puts(&b, "]\n");
	}
	fputs(b.data, stdout);
	sk_buf_release(&b);
	sk_node_list_free(l, n);
	return 0;
}

static int cmd_status(struct ctl *c)
{
	struct sk_node_info *l;
	size_t n;
	int bad = 0;

	if (load_members(c, &l, &n))
		return 1;
	if (c->table)
		printf("%-28s %-10s %-6s %s\n", "ID", "ROLE", "READY", "DETAIL");
	else
		printf("[");
	for (size_t i = 0; i < n; i++) {
		struct sk_buf body, ready;
		int st, rst;

		sk_buf_init(&body);
		sk_buf_init(&ready);
		st = http_get(l[i].http_addr, "/status", 1000, &body);
		rst = http_get(l[i].http_addr, "/readyz", 1000, &ready);
		bad += rst != 200;
		if (c->table) {
			printf("%-28s %-10s %-6s %s", l[i].id, l[i].role, rst == 200 ? "yes" : "no",
			       rst < 0 ? sk_strerror(rst) : ready.data ? ready.data : "\n");
		} else {
			if (i)
				printf(",\n ");
			if (st == 200 && body.data) {
				/* the daemon's own JSON, one object */
				body.data[strcspn(body.data, "\n")] = '\0';
				printf("%s", body.data);
			} else {
				struct sk_buf e;

				sk_buf_init(&e);
				sk_buf_puts(&e, "{\"id\":");
				sk_buf_json_str(&e, l[i].id);
				sk_buf_puts(&e, ",\"error\":");
				sk_buf_json_str(&e, st < 0 ? sk_strerror(st) : "bad answer");
				sk_buf_puts(&e, "}");
				printf("%s", e.data);
				sk_buf_release(&e);
			}
		}
		sk_buf_release(&body);
		sk_buf_release(&ready);
	}
	if (!c->table)
		printf("]\n");
	sk_node_list_free(l, n);
	return bad ? 3 : 0;
}

int main(int argc, char **argv)
{
	struct ctl c = {0};
	struct sk_conf_err e;
	const char *config = getenv("SKEIN_CONFIG"), *redis = NULL, *cluster = NULL, *cmd = NULL;
	int rc;

	c.args = calloc((size_t)argc, sizeof(*c.args));
	if (!c.args)
		return 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			rc = 0;
			goto out;
		} else if ((!strcmp(a, "--config") || !strcmp(a, "-c")) && i + 1 < argc) {
			config = argv[++i];
		} else if (!strncmp(a, "--config=", 9)) {
			config = a + 9;
		} else if (!strcmp(a, "--redis") && i + 1 < argc) {
			redis = argv[++i];
		} else if (!strcmp(a, "--cluster") && i + 1 < argc) {
			cluster = argv[++i];
		} else if (!strcmp(a, "-o") && i + 1 < argc) {
			const char *o = argv[++i];

			if (strcmp(o, "json") && strcmp(o, "table")) {
				fprintf(stderr, "skeinctl: -o takes json or table, not \"%s\"\n", o);
				rc = 2;
				goto out;
			}
			c.table = !strcmp(o, "table");
		} else if (!cmd && a[0] != '-') {
			cmd = a;
		} else if (cmd) {
			c.args[c.nargs++] = argv[i];
		} else {
			fprintf(stderr, "skeinctl: unknown option \"%s\" (see --help)\n", a);
			rc = 2;
			goto out;
		}
	}
	if (!cmd) {
		usage(stderr);
		rc = 2;
		goto out;
	}
	if (sk_cluster_conf_load(&c.cluster, config, environ, &e)) {
		fprintf(stderr, "skeinctl: %s: %s\n", e.where, e.why);
		rc = 1;
		goto out;
	}
	/* hiredis and nanomsg write to sockets: a peer gone must be an error, not death. */
	signal(SIGPIPE, SIG_IGN);
	/* A command-line tool: its output is on stdout, only trouble on stderr. */
	sk_log_levels_set("warn", NULL);
	if (redis) {
		sk_deref(c.cluster.redis);
		c.cluster.redis = sk_strdup(redis);
	}
	if (cluster) {
		sk_deref(c.cluster.name);
		c.cluster.name = sk_strdup(cluster);
	}
	if (!strcmp(cmd, "nodes")) {
		rc = cmd_nodes(&c);
	} else if (!strcmp(cmd, "status")) {
		rc = cmd_status(&c);
	} else if (!strcmp(cmd, "ping")) {
		rc = cmd_ping(&c);
	} else if (!strcmp(cmd, "domain")) {
		rc = cmd_domain(&c);
	} else if (!strcmp(cmd, "user")) {
		rc = cmd_user(&c);
	} else if (!strcmp(cmd, "reg")) {
		rc = cmd_reg(&c);
	} else if (!strcmp(cmd, "ban")) {
		rc = cmd_ban(&c);
	} else if (!strcmp(cmd, "im")) {
		rc = cmd_im(&c);
	} else {
		fprintf(stderr, "skeinctl: unknown command \"%s\" (see --help)\n", cmd);
		rc = 2;
	}
out:
	{
		struct sk_conf_section sec = {"cluster", sk_cluster_keys, &c.cluster};

		sk_conf_release(&sec, 1);
	}
	free(c.args);
	return rc;
}
