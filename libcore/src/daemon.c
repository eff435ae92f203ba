/* The common life of a daemon: config, set-up, signals, drain, reload, tear-down. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>
#include "skein/sk_daemon.h"
#include "skein/sk_bus.h"
#include "skein/sk_redis.h"
#include "skein/sk_node.h"
#include "skein/sk_metrics.h"
#include "skein/sk_mem.h"
#include "skein/sk_err.h"
#include "skein/sk_sys.h"
#include "skein/sk_log.h"
#include "daemon_int.h"

SK_LOG_MODULE("daemon");

extern char **environ;

int sk_daemon_check_bus_addr(const char *v, const char **why)
{
	*why = "expected empty, ipc:///path or tcp://host:port";
	if (!*v)
		return 0;
	return strncmp(v, "ipc://", 6) && strncmp(v, "tcp://", 6) ? -1 : 0;
}

static void usage(const struct sk_daemon_ops *ops, FILE *f)
{
	fprintf(f,
		"Usage: skein-%s [--config FILE] [--check-config] [--SECTION.KEY=VALUE ...]\n"
		"%s\n\n"
		"Options:\n"
		"  --config FILE    node configuration (INI); default $SKEIN_CONFIG if set\n"
		"  --check-config   validate the configuration and exit (0 ok, 1 not)\n"
		"  --version        print the version and exit\n"
		"  --help           this text\n\n"
		"Configuration keys (every key can also be set as SKEIN_<SECTION>_<KEY> in the\n"
		"environment or as --KEY=VALUE / --SECTION.KEY=VALUE here):\n\n",
		ops->role, ops->summary);
}

/* Loads every layer into the given targets; used at start and on SIGHUP. */
static int load(struct sk_daemon *d, struct sk_conf_section *secs, struct sk_conf_err *e)
{
	const char *skip[8];
	int n = 0, err;

	for (int i = 0; sk_roles[i] && n < 7; i++)
		if (strcmp(sk_roles[i], d->ops->role))
			skip[n++] = sk_roles[i];
	skip[n] = NULL;
	err = sk_conf_defaults(secs, 2, e);
	if (!err && d->config_path)
		err = sk_conf_file(secs, 2, d->config_path, skip, e);
	if (!err)
		err = sk_conf_env(secs, 2, environ, e);
	for (int i = 0; !err && i < d->nflags; i++)
		err = sk_conf_flag(secs, 2, d->flags[i], e);
	if (!err)
		err = sk_conf_check_required(secs, 2, e);
	if (!err) {
		struct sk_cluster_conf *c = secs[0].target;

		if (c->node_timeout < 2 * c->heartbeat_interval) {
			snprintf(e->where, sizeof(e->where), "%s",
				 d->config_path ? d->config_path : "configuration");
			snprintf(e->why, sizeof(e->why),
				 "cluster.node_timeout must be at least twice heartbeat_interval");
			err = SK_ECONFIG;
		}
	}
	return err;
}

static void apply_logging(const struct sk_cluster_conf *c)
{
	sk_log_levels_set(c->log_level, NULL);
	sk_log_format_set(!strcmp(c->log_format, "json") ? SK_LOG_JSON : SK_LOG_TEXT);
}

static void on_member(const struct sk_node_info *info, bool up, void *arg)
{
	struct sk_daemon *d = arg;

	if (d->ops->member)
		d->ops->member(d, info, up, d->ops->arg);
}

/* ---- drain and shutdown ---- */

static void closed_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		SK_DEBUG("handle of type %s still open at exit", uv_handle_type_name(h->type));
}

static void finish(void *arg)
{
	struct sk_daemon *d = arg;

	if (d->finished)
		return;
	d->finished = true;
	SK_NOTICE("stopping");
	if (d->ops->stop)
		d->ops->stop(d, d->ops->arg);
	sk_daemon_http_stop(d);
	sk_node_close(d->node);
	sk_bus_close(d->bus);
	sk_redis_close(d->redis);
	for (int i = 0; i < 4; i++)
		if (d->sig[i].loop && !uv_is_closing((uv_handle_t *)&d->sig[i]))
			uv_close((uv_handle_t *)&d->sig[i], NULL);
	if (d->drain_timer.loop && !uv_is_closing((uv_handle_t *)&d->drain_timer))
		uv_close((uv_handle_t *)&d->drain_timer, NULL);
}

static void shutdown_now(struct sk_daemon *d)
{
	uv_timer_stop(&d->drain_timer);
	if (d->leaving)
		return;
	d->leaving = true;
	/* Leave the table first so nobody sends us new work, then close. */
	if (!d->node || sk_node_leave(d->node, finish, d))
		finish(d);
}

static void drain_tick(uv_timer_t *t)
{
	struct sk_daemon *d = t->data;
	bool idle = sk_bus_serving(d->bus) == 0 &&
		    (!d->ops->idle || d->ops->idle(d, d->ops->arg));
	uint64_t elapsed = uv_now(d->loop) - d->drain_started;

	if (idle || elapsed >= d->cluster.drain_timeout) {
		if (!idle)
			SK_WARN("drain timeout (%llu ms) reached with work in progress",
				(unsigned long long)d->cluster.drain_timeout);
		shutdown_now(d);
	}
}

static void start_drain(struct sk_daemon *d)
{
	if (d->draining) {
		SK_NOTICE("second signal: exiting without waiting");
		shutdown_now(d);
		return;
	}
	d->draining = true;
	d->drain_started = uv_now(d->loop);
	SK_NOTICE("draining: not ready, waiting up to %llu ms for work in progress",
		  (unsigned long long)d->cluster.drain_timeout);
	if (d->node)
		sk_node_set_draining(d->node, true);
	if (d->ops->drain)
		d->ops->drain(d, d->ops->arg);
	uv_timer_start(&d->drain_timer, drain_tick, 0, 100);
}

/* ---- reload ---- */

static void bus_listen_default(struct sk_daemon *d, struct sk_role_conf *rc);

static void changed(const char *section, const struct sk_conf_key *k, bool applied, void *arg)
{
	(void)arg;
	if (applied)
		SK_NOTICE("reload: %s.%s changed", section, k->name);
	else
		SK_WARN("reload: %s.%s changed but takes effect only after a restart", section,
			k->name);
}

static void reload(struct sk_daemon *d)
{
	struct sk_cluster_conf c2;
	void *r2 = calloc(1, d->ops->conf_size);
	struct sk_conf_section fresh[2] = {{"cluster", sk_cluster_keys, &c2},
					   {d->ops->role, d->ops->keys, r2}};
	struct sk_conf_err e;
	int n;

	memset(&c2, 0, sizeof(c2));
	if (!r2)
		return;
	if (load(d, fresh, &e)) {
		SK_ERROR("reload refused, configuration unchanged: %s: %s", e.where, e.why);
	} else {
		/* node_id defaults to the host name and state_dir was made absolute at
		 * start: compare like with like. */
		char abs[PATH_MAX];

		if (!*c2.node_id) {
			sk_deref(c2.node_id);
			c2.node_id = sk_strdup(d->cluster.node_id);
		}
		if (realpath(c2.state_dir, abs)) {
			sk_deref(c2.state_dir);
			c2.state_dir = sk_strdup(abs);
		}
		/* bus_listen defaults to a path made at start: the same here, or every
		 * SIGHUP would warn that it changed */
		bus_listen_default(d, (struct sk_role_conf *)r2);
		n = sk_conf_reload(d->secs, fresh, 2, changed, d);
		apply_logging(&d->cluster);
		if (d->ops->reload)
			d->ops->reload(d, d->ops->arg);
		SK_NOTICE("reloaded %s: %d key(s) applied",
			  d->config_path ? d->config_path : "configuration", n);
	}
	sk_conf_release(fresh, 2);
	free(r2);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct sk_daemon *d = s->data;

	if (signum == SIGHUP)
		reload(d);
	else if (signum == SIGUSR1)
		SK_NOTICE("alive: ready=%d draining=%d", sk_daemon_is_ready(d, NULL), d->draining);
	else
		start_drain(d);
}

/* ---- the bus probe every daemon answers ---- */

static void on_ping(struct sk_bus_req *req, const Skein__Bus__V1__Envelope *env, void *arg)
{
	struct sk_daemon *d = arg;
	Skein__Bus__V1__Envelope rep = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Bus__V1__Pong pong = SKEIN__BUS__V1__PONG__INIT;

	pong.node = d->id;
	if (env->ping)
		pong.payload = env->ping->payload;
	rep.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_PONG;
	rep.pong = &pong;
	sk_bus_reply(req, 0, &rep);
}

static void redis_state(bool up, void *arg)
{
	struct sk_daemon *d = arg;

	if (!up && !d->draining)
		SK_WARN("not ready: redis %s unreachable", d->cluster.redis);
	else if (up)
		SK_INFO("redis %s reachable", d->cluster.redis);
}

/* ---- main ---- */

static int parse_args(struct sk_daemon *d, int argc, char **argv)
{
	d->flags = calloc((size_t)argc + 1, sizeof(*d->flags));
	if (!d->flags)
		return 1;
	d->config_path = getenv("SKEIN_CONFIG");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			d->mode_help = true;
		} else if (!strcmp(a, "--version")) {
			d->mode_version = true;
		} else if (!strcmp(a, "--check-config")) {
			d->mode_check = true;
		} else if (!strcmp(a, "--markdown")) {
			d->mode_markdown = true; /* this role's section, for docs/ */
		} else if (!strcmp(a, "--markdown-cluster")) {
			d->mode_markdown = d->mode_markdown_cluster = true;
		} else if (!strcmp(a, "--config") || !strcmp(a, "-c")) {
			if (++i >= argc) {
				fprintf(stderr, "skein-%s: --config needs a file\n", d->ops->role);
				return 2;
			}
			d->config_path = argv[i];
		} else if (!strncmp(a, "--config=", 9)) {
			d->config_path = a + 9;
		} else if (!strncmp(a, "--", 2) && strchr(a, '=')) {
			d->flags[d->nflags++] = a + 2;
		} else {
			fprintf(stderr, "skein-%s: unknown argument \"%s\" (see --help)\n",
				d->ops->role, a);
			return 2;
		}
	}
	return 0;
}

static void bus_listen_default(struct sk_daemon *d, struct sk_role_conf *rc)
{
	if (rc->bus_listen && *rc->bus_listen)
		return;
	sk_deref(rc->bus_listen);
	rc->bus_listen = sk_strdupf("ipc://%s/%s-%s.bus", d->cluster.state_dir,
				    d->cluster.node_id, d->ops->role);
}

static int setup(struct sk_daemon *d)
{
	struct sk_role_conf *rc = d->ops->conf;
	struct sk_redis_opts ro = {0};
	struct sk_bus_opts bo = {0};
	struct sk_node_opts no = {0};
	int err;

	d->loop = uv_default_loop();
	d->id = sk_strdupf("%s/%s", d->cluster.node_id, d->ops->role);
	d->mprefix = sk_strdupf("skein_%s", d->ops->role);
	if (!d->id || !d->mprefix)
		return SK_ENOMEM;
	sk_log_node_set(d->id);
	err = sk_sys_mkdirs(d->cluster.state_dir);
	if (err) {
		SK_ERROR("cannot create state_dir %s: %s", d->cluster.state_dir, sk_strerror(err));
		return err;
	}
	{
		/* Bus addresses travel to other processes: make them absolute. */
		char abs[PATH_MAX];

		if (realpath(d->cluster.state_dir, abs)) {
			sk_deref(d->cluster.state_dir);
			d->cluster.state_dir = sk_strdup(abs);
			if (!d->cluster.state_dir)
				return SK_ENOMEM;
		}
	}
	bus_listen_default(d, rc);
	if (!rc->bus_listen)
		return SK_ENOMEM;
	err = sk_metrics_alloc(&d->metrics);
	if (err)
		return err;
	sk_daemon_metrics_init(d);

	err = sk_daemon_http_start(d, rc->http_listen);
	if (err) {
		SK_ERROR("cannot listen for HTTP on %s: %s", rc->http_listen, sk_strerror(err));
		return err;
	}
	ro.addr = d->cluster.redis;
	ro.timeout_ms = d->cluster.redis_timeout;
	ro.metrics = d->metrics;
	ro.metrics_prefix = d->mprefix;
	err = sk_redis_alloc(&d->redis, d->loop, &ro, redis_state, d);
	if (err) {
		SK_ERROR("redis %s: %s", d->cluster.redis, sk_strerror(err));
		return err;
	}
	bo.id = d->id;
	bo.role = d->ops->role;
	bo.datacenter = d->cluster.datacenter;
	bo.listen = rc->bus_listen;
	bo.deadline_ms = d->cluster.bus_deadline;
	bo.metrics = d->metrics;
	bo.metrics_prefix = d->mprefix;
	err = sk_bus_alloc(&d->bus, d->loop, &bo);
	if (err) {
		SK_ERROR("bus %s: %s", rc->bus_listen, sk_strerror(err));
		return err;
	}
	sk_bus_on_request(d->bus, SKEIN__BUS__V1__ENVELOPE__BODY_PING, on_ping, d);
	no.cluster = d->cluster.name;
	no.heartbeat_ms = d->cluster.heartbeat_interval;
	no.timeout_ms = d->cluster.node_timeout;
	no.id = d->id;
	no.node = d->cluster.node_id;
	no.role = d->ops->role;
	no.dc = d->cluster.datacenter;
	no.bus_addr = rc->bus_listen;
	no.http_addr = sk_http_addr(d->http);
	no.metrics = d->metrics;
	no.metrics_prefix = d->mprefix;
	err = sk_node_alloc(&d->node, d->loop, d->redis, d->bus, &no, on_member, d);
	if (err)
		return err;

	uv_timer_init(d->loop, &d->drain_timer);
	d->drain_timer.data = d;
	{
		static const int sigs[4] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};

		for (int i = 0; i < 4; i++) {
			uv_signal_init(d->loop, &d->sig[i]);
			d->sig[i].data = d;
			uv_signal_start(&d->sig[i], on_signal, sigs[i]);
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (d->ops->start && (err = d->ops->start(d, d->ops->arg))) {
		SK_ERROR("start failed: %s", sk_strerror(err));
		return err;
	}
	SK_NOTICE("started %s %s: http %s, bus %s, redis %s, datacenter %s", d->ops->role,
		  SKEIN_VERSION, sk_http_addr(d->http), rc->bus_listen, d->cluster.redis,
		  d->cluster.datacenter);
	return 0;
}

/* Runs the loop until every handle is closed (after finish()), then drops what is
 * left. */
static void run_loop(struct sk_daemon *d)
{
	uv_run(d->loop, UV_RUN_DEFAULT);
	uv_walk(d->loop, closed_walk, NULL);
	d->node = sk_deref(d->node);
	d->bus = sk_deref(d->bus);
	d->redis = sk_deref(d->redis);
	d->http = sk_deref(d->http);
	d->metrics = sk_deref(d->metrics);
	uv_loop_close(d->loop);
}

int sk_daemon_main(const struct sk_daemon_ops *ops, int argc, char **argv)
{
	struct sk_daemon *d = calloc(1, sizeof(*d));
	struct sk_conf_err e;
	int rc, err;

	if (!d)
		return 1;
	d->ops = ops;
	d->secs[0] = (struct sk_conf_section){"cluster", sk_cluster_keys, &d->cluster};
	d->secs[1] = (struct sk_conf_section){ops->role, ops->keys, ops->conf};
	rc = parse_args(d, argc, argv);
	if (rc)
		goto out;
	if (d->mode_version) {
		printf("skein-%s %s (%s)\n", ops->role, SKEIN_VERSION, SKEIN_COMMIT);
		goto out;
	}
	if (d->mode_help || d->mode_markdown) {
		sk_conf_defaults(d->secs, 2, &e);
		if (d->mode_help) {
			usage(ops, stdout);
			sk_conf_help(stdout, d->secs, 2);
		} else {
			sk_conf_markdown(stdout, &d->secs[d->mode_markdown_cluster ? 0 : 1], 1);
		}
		goto out;
	}
	if (load(d, d->secs, &e)) {
		fprintf(stderr, "skein-%s: %s: %s\n", ops->role, e.where, e.why);
		rc = 1;
		goto out;
	}
	if (sk_cluster_conf_node_id_default(&d->cluster)) {
		rc = 1;
		goto out;
	}
	if (d->mode_check) {
		printf("skein-%s: %s: configuration ok\n", ops->role,
		       d->config_path ? d->config_path : "(no file)");
		goto out;
	}
	apply_logging(&d->cluster);
	err = setup(d);
	if (err) {
		/* Close what was opened; nothing to drain or leave. */
		rc = 1;
		d->leaving = true;
		finish(d);
	}
	run_loop(d);
	if (!rc)
		SK_NOTICE("exited cleanly");
out:
	sk_conf_release(d->secs, 2);
	sk_deref(d->id);
	sk_deref(d->mprefix);
	free(d->flags);
	free(d);
	return rc;
}

uv_loop_t *sk_daemon_loop(struct sk_daemon *d) { return d->loop; }
struct sk_bus *sk_daemon_bus(struct sk_daemon *d) { return d->bus; }
struct sk_redis *sk_daemon_redis(struct sk_daemon *d) { return d->redis; }
struct sk_node *sk_daemon_node(struct sk_daemon *d) { return d->node; }
struct sk_metrics *sk_daemon_metrics(struct sk_daemon *d) { return d->metrics; }
const struct sk_cluster_conf *sk_daemon_cluster(struct sk_daemon *d) { return &d->cluster; }
const char *sk_daemon_metrics_prefix(struct sk_daemon *d) { return d->mprefix; }
bool sk_daemon_draining(const struct sk_daemon *d) { return d->draining; }

bool sk_daemon_is_ready(struct sk_daemon *d, const char **why)
{
	const char *w = NULL;

	if (d->draining)
		w = "draining";
	else if (!sk_redis_ready(d->redis))
		w = "redis unreachable";
	else if (!d->node || !sk_node_synced(d->node))
		w = "not yet in the cluster table";
	else if (d->ops->ready && !d->ops->ready(d, d->ops->arg))
		w = "service not ready";
	if (why)
		*why = w;
	return !w;
}
