/* skein: the node runner. `skein run --config FILE` starts the roles the node's file
 * lists (and its own redis-server when redis_embedded = yes), restarts a role that
 * dies with backoff, and on SIGINT/SIGTERM drains the roles, then stops Redis.
 * `skein up` is the same with the local cluster's file and an embedded Redis: what
 * `make run` starts. */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "skein/sk_daemon.h"
#include "skein/sk_node.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_err.h"
#include "skein/sk_sys.h"
#include "skein.h"

SK_LOG_MODULE("skein");

extern char **environ;

static void usage(FILE *f)
{
	fprintf(f, "Usage:\n"
		   "  skein up [--config FILE]       local cluster: embedded redis + every role\n"
		   "                                 (default FILE: deploy/local/skein.ini)\n"
		   "  skein run --config FILE        run the roles this node's file lists\n"
		   "  skein check-config --config FILE\n"
		   "                                 validate [cluster] and every role's section\n"
		   "  skein --version | --help\n"
		   "Every [cluster] key can be overridden by SKEIN_CLUSTER_<KEY> in the environment.\n");
}

static char **argv_make(const char *a0, ...)
{
	char **v = calloc(32, sizeof(*v));
	va_list ap;
	int n = 0;

	if (!v)
		return NULL;
	v[n++] = strdup(a0);
	va_start(ap, a0);
	for (const char *s; n < 31 && (s = va_arg(ap, const char *));)
		v[n++] = strdup(s);
	va_end(ap);
	return v;
}

static void role_bin(struct runner *r, const char *role, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/skein-%s", r->bindir, role);

	if (n < 0 || (size_t)n >= size || access(out, X_OK))
		snprintf(out, size, "skein-%s", role); /* from PATH (packages) */
}

/* Runs every role with --check-config; returns how many failed. */
static int check_roles(struct runner *r)
{
	int bad = 0;

	for (size_t i = 0; i < r->nkids; i++) {
		struct child *c = &r->kids[i];
		char bin[PATH_MAX];
		pid_t pid;
		int st;

		if (c->is_redis)
			continue;
		role_bin(r, c->name, bin, sizeof(bin));
		pid = fork();
		if (pid == 0) {
			execlp(bin, bin, "--check-config", "--config", r->config_path, (char *)NULL);
			fprintf(stderr, "skein: cannot run %s: %s\n", bin, strerror(errno));
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			bad++;
	}
	return bad;
}

static int plan(struct runner *r, bool up)
{
	char *roles = strdup(r->cluster.roles), *save = NULL;
	size_t n = 1;

	if (!roles)
		return SK_ENOMEM;
	r->kids = calloc(8, sizeof(*r->kids));
	if (!r->kids) {
		free(roles);
		return SK_ENOMEM;
	}
	if (up || r->cluster.redis_embedded) {
		char dir[PATH_MAX], port[16];
		const char *colon = strrchr(r->cluster.redis, ':');
		char host[64], logf[PATH_MAX + 16], abs[PATH_MAX];

		if (!colon || (size_t)(colon - r->cluster.redis) >= sizeof(host)) {
			free(roles);
			return SK_EINVAL;
		}
		memcpy(host, r->cluster.redis, (size_t)(colon - r->cluster.redis));
		host[colon - r->cluster.redis] = '\0';
		/* An embedded Redis has no password: it must never face a network. */
		if (strncmp(host, "127.", 4) && strcmp(host, "::1") && strcmp(host, "localhost")) {
			fprintf(stderr, "skein: cluster.redis = %s: an embedded redis listens on "
					"loopback only\n", r->cluster.redis);
			free(roles);
			return SK_EINVAL;
		}
		snprintf(port, sizeof(port), "%s", colon + 1);
		snprintf(dir, sizeof(dir), "%s/redis", r->cluster.state_dir);
		if (sk_sys_mkdirs(dir) || !realpath(dir, abs)) {
			fprintf(stderr, "skein: cannot create %s: %s\n", dir, strerror(errno));
			free(roles);
			return SK_EINVAL;
		}
		/* redis-server changes to --dir before it opens --logfile. */
		snprintf(dir, sizeof(dir), "%s", abs);
		snprintf(logf, sizeof(logf), "%s/redis.log", abs);
		r->kids[0].name = strdup("redis");
		r->kids[0].is_redis = true;
		r->kids[0].argv = argv_make(r->cluster.redis_bin, "--bind", host, "--port", port,
					    "--dir", dir, "--save", "", "--appendonly", "yes",
					    "--protected-mode", "yes", "--daemonize", "no",
					    "--loglevel", "notice", "--logfile", logf, (char *)NULL);
	} else {
		n = 0;
	}
	for (char *tok = strtok_r(roles, ", ", &save); tok && n < 8;
	     tok = strtok_r(NULL, ", ", &save)) {
		char bin[PATH_MAX];

		role_bin(r, tok, bin, sizeof(bin));
		r->kids[n].name = strdup(tok);
		r->kids[n].argv = r->config_path ? argv_make(bin, "--config", r->config_path, (char *)NULL)
						 : argv_make(bin, (char *)NULL);
		n++;
	}
	r->nkids = n;
	free(roles);
	return 0;
}

/* Print what listens where once every role is in the member table. */
static void summary_tick(uv_timer_t *t)
{
	struct runner *r = t->data;
	struct sk_node_info *list;
	size_t n, want = 0, have = 0;
	static int tries;

	if (r->stopping) {
		uv_close((uv_handle_t *)t, (uv_close_cb)free);
		return;
	}
	for (size_t i = 0; i < r->nkids; i++)
		want += !r->kids[i].is_redis;
	if (sk_node_list_sync(r->cluster.redis, r->cluster.name, r->cluster.node_timeout, &list, &n))
		n = 0, list = NULL;
	for (size_t i = 0; i < n; i++)
		have += !strcmp(list[i].node, r->cluster.node_id);
	if (have < want && ++tries < 50) {
		sk_node_list_free(list, n);
		return;
	}
	printf("\nskein: cluster \"%s\", node %s, datacenter %s\n", r->cluster.name,
	       r->cluster.node_id, r->cluster.datacenter);
	if (r->kids[0].is_redis)
		printf("  %-10s redis://%-22s data and log in %s/redis\n", "redis", r->cluster.redis,
		       r->cluster.state_dir);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i].node, r->cluster.node_id))
			continue;
		printf("  %-10s http://%-23s bus %s\n", list[i].role, list[i].http_addr,
		       list[i].bus_addr);
	}
	if (have < want)
		printf("  (only %zu of %zu roles joined; see the log above)\n", have, want);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i].node, r->cluster.node_id)) {
			printf("Try: curl http://%s/metrics\n     %s/skeinctl%s%s nodes -o table\n",
			       list[i].http_addr, r->bindir, r->config_path ? " --config " : "",
			       r->config_path ? r->config_path : "");
			break;
		}
	printf("Ctrl-C stops everything.\n\n");
	fflush(stdout);
	sk_node_list_free(list, n);
	uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static int run(struct runner *r, bool up)
{
	uv_timer_t *t;

	if (plan(r, up)) {
		return 1;
	}
	if (check_roles(r)) {
		fprintf(stderr, "skein: configuration refused (see above)\n");
		return 1;
	}
	r->loop = uv_default_loop();
	supervise_init(r);
	for (size_t i = 0; i < r->nkids; i++) {
		struct child *c = &r->kids[i];

		if (supervise_start(r, c))
			return 1;
		if (c->is_redis && wait_redis(r->cluster.redis, 5000)) {
			fprintf(stderr, "skein: embedded redis did not answer on %s within 5 s\n",
				r->cluster.redis);
			supervise_stop_all(r);
			uv_run(r->loop, UV_RUN_DEFAULT);
			return 1;
		}
	}
	t = malloc(sizeof(*t));
	if (t) {
		uv_timer_init(r->loop, t);
		t->data = r;
		uv_timer_start(t, summary_tick, 200, 200);
	}
	uv_run(r->loop, UV_RUN_DEFAULT);
	uv_loop_close(r->loop);
	SK_NOTICE("all stopped");
	return r->exit_code;
}

int main(int argc, char **argv)
{
	struct runner r = {0};
	struct sk_conf_err e;
	const char *cmd = NULL;
	char self[sizeof(r.bindir) - 16];
	ssize_t len;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("skein %s (%s)\n", SKEIN_VERSION, SKEIN_COMMIT);
			return 0;
		} else if ((!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) && i + 1 < argc) {
			r.config_path = argv[++i];
		} else if (!strncmp(argv[i], "--config=", 9)) {
			r.config_path = argv[i] + 9;
		} else if (!strcmp(argv[i], "--check-config")) {
			cmd = "check-config";
		} else if (!cmd && argv[i][0] != '-') {
			cmd = argv[i];
		} else {
			fprintf(stderr, "skein: unknown argument \"%s\"\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!cmd || (strcmp(cmd, "up") && strcmp(cmd, "run") && strcmp(cmd, "check-config"))) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "up") && !r.config_path)
		r.config_path = "deploy/local/skein.ini";
	if (!r.config_path && strcmp(cmd, "up")) {
		fprintf(stderr, "skein: %s needs --config FILE\n", cmd);
		return 2;
	}
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len > 0) {
		self[len] = '\0';
		snprintf(r.bindir, sizeof(r.bindir), "%s", self);
		*strrchr(r.bindir, '/') = '\0';
	}
	if (sk_cluster_conf_load(&r.cluster, r.config_path, environ, &e)) {
		fprintf(stderr, "skein: %s: %s\n", e.where, e.why);
		return 1;
	}
	sk_log_levels_set(r.cluster.log_level, NULL);
	sk_log_format_set(!strcmp(r.cluster.log_format, "json") ? SK_LOG_JSON : SK_LOG_TEXT);
	sk_log_node_set(r.cluster.node_id);
	if (!strcmp(cmd, "check-config")) {
		if (plan(&r, false))
			return 1;
		rc = check_roles(&r) ? 1 : 0;
		if (!rc)
			printf("skein: %s: configuration ok\n", r.config_path);
		return rc;
	}
	return run(&r, !strcmp(cmd, "up"));
}
