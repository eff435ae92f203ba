/* The HTTP routes every daemon serves: /metrics, /healthz, /readyz, /status and the
 * admin API (/admin/log), plus the process and build metrics. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "skein/sk_daemon.h"
#include "skein/sk_bus.h"
#include "skein/sk_redis.h"
#include "skein/sk_node.h"
#include "skein/sk_metrics.h"
#include "skein/sk_sys.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_err.h"
#include "daemon_int.h"

SK_LOG_MODULE("http");

static double rss_bytes(void *arg)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	(void)arg;
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static double open_fds(void *arg)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	double n = 0;

	(void)arg;
	if (!dir)
		return 0;
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1; /* the directory's own fd */
}

static double cpu_seconds(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double start_time(void *arg)
{
	return (double)((struct sk_daemon *)arg)->started_ms / 1000.0;
}

static double ready_gauge(void *arg)
{
	return sk_daemon_is_ready(arg, NULL);
}

static double draining_gauge(void *arg)
{
	return ((struct sk_daemon *)arg)->draining;
}

static double bus_pending(void *arg)
{
	struct sk_daemon *d = arg;

	return d->bus ? (double)sk_bus_pending(d->bus) : 0;
}

static double bus_serving(void *arg)
{
	struct sk_daemon *d = arg;

	return d->bus ? (double)sk_bus_serving(d->bus) : 0;
}

void sk_daemon_metrics_init(struct sk_daemon *d)
{
	struct sk_metrics *m = d->metrics;
	char n[128], labels[256];

	d->started_ms = sk_sys_unix_ms();
	snprintf(labels, sizeof(labels), "version=\"%s\",commit=\"%s\",role=\"%s\"",
		 SKEIN_VERSION, SKEIN_COMMIT, d->ops->role);
	sk_metrics_info(m, "skein_build_info", "Version and commit of this build", labels);
	sk_metrics_counter_fn(m, "process_cpu_seconds_total", "CPU time used, user and system",
			      cpu_seconds, d);
	sk_metrics_gauge_fn(m, "process_resident_memory_bytes", "Resident memory", NULL, NULL,
			    rss_bytes, d);
	sk_metrics_gauge_fn(m, "process_open_fds", "Open file descriptors", NULL, NULL,
			    open_fds, d);
	sk_metrics_gauge_fn(m, "process_start_time_seconds", "Start time, unix seconds", NULL,
			    NULL, start_time, d);
#define NAME(s) (snprintf(n, sizeof(n), "%s_%s", d->mprefix, s), n)
	sk_metrics_gauge_fn(m, NAME("ready"), "1 when /readyz answers 200", NULL, NULL,
			    ready_gauge, d);
	sk_metrics_gauge_fn(m, NAME("draining"), "1 while draining after SIGTERM", NULL, NULL,
			    draining_gauge, d);
	sk_metrics_gauge_fn(m, NAME("bus_pending_requests"), "Requests sent, awaiting replies",
			    NULL, NULL, bus_pending, d);
	sk_metrics_gauge_fn(m, NAME("bus_serving_requests"), "Requests received, not yet answered",
			    NULL, NULL, bus_serving, d);
#undef NAME
}

static void status_json(struct sk_daemon *d, struct sk_buf *b)
{
	struct sk_bus_stats st = {0};
	const char *why = NULL;
	bool ready = sk_daemon_is_ready(d, &why);

	if (d->bus)
		sk_bus_stats(d->bus, &st);
	sk_buf_puts(b, "{\"id\":");
	sk_buf_json_str(b, d->id);
	sk_buf_puts(b, ",\"role\":");
	sk_buf_json_str(b, d->ops->role);
	sk_buf_puts(b, ",\"node\":");
	sk_buf_json_str(b, d->cluster.node_id);
	sk_buf_puts(b, ",\"datacenter\":");
	sk_buf_json_str(b, d->cluster.datacenter);
	sk_buf_printf(b, ",\"version\":\"%s\",\"commit\":\"%s\",\"pid\":%d,\"uptime_seconds\":%.3f",
		      SKEIN_VERSION, SKEIN_COMMIT, (int)getpid(),
		      (double)(sk_sys_unix_ms() - d->started_ms) / 1000.0);
	sk_buf_printf(b, ",\"ready\":%s,\"draining\":%s,\"redis\":\"%s\"",
		      ready ? "true" : "false", d->draining ? "true" : "false",
		      sk_redis_ready(d->redis) ? "up" : "down");
	if (why) {
		sk_buf_puts(b, ",\"not_ready_because\":");
		sk_buf_json_str(b, why);
	}
	sk_buf_puts(b, ",\"bus\":{\"addr\":");
	sk_buf_json_str(b, d->bus ? sk_bus_addr(d->bus) : "");
	sk_buf_printf(b,
		      ",\"pending\":%zu,\"serving\":%zu,\"received\":%llu,\"sent\":%llu,"
		      "\"dropped_malformed\":%llu,\"dropped_unknown\":%llu,\"timeouts\":%llu,"
		      "\"retries\":%llu}",
		      d->bus ? sk_bus_pending(d->bus) : 0, d->bus ? sk_bus_serving(d->bus) : 0,
		      (unsigned long long)st.rx, (unsigned long long)st.tx,
		      (unsigned long long)st.dropped_malformed,
		      (unsigned long long)st.dropped_unknown, (unsigned long long)st.timeouts,
		      (unsigned long long)st.retries);
	sk_buf_puts(b, ",\"members\":[");
	for (size_t i = 0; d->node && i < sk_node_size(d->node); i++) {
		const struct sk_node_info *ni = sk_node_at(d->node, i);

		sk_buf_puts(b, i ? ",{\"id\":" : "{\"id\":");
		sk_buf_json_str(b, ni->id);
		sk_buf_puts(b, ",\"role\":");
		sk_buf_json_str(b, ni->role);
		sk_buf_puts(b, ",\"datacenter\":");
		sk_buf_json_str(b, ni->dc);
		sk_buf_printf(b, ",\"draining\":%s}", ni->draining ? "true" : "false");
	}
	sk_buf_puts(b, "]}\n");
}

/* The admin API wants "Authorization: Bearer <admin_token>"; no token, no API. */
static int admin_auth(struct sk_daemon *d, const struct sk_http_req *req,
		      struct sk_http_resp *resp)
{
	const char *h = req->header(req, "Authorization");
	const char *tok = d->cluster.admin_token;

	if (!tok || !*tok) {
		resp->status = 403;
		sk_buf_puts(&resp->body, "admin API disabled: set [cluster] admin_token\n");
		return -1;
	}
	if (!h || strncmp(h, "Bearer ", 7) || strcmp(h + 7, tok)) {
		resp->status = 401;
		sk_buf_puts(&resp->body, "missing or wrong bearer token\n");
		return -1;
	}
	return 0;
}

static void admin_log(struct sk_daemon *d, const struct sk_http_req *req,
		      struct sk_http_resp *resp)
{
	const char *bad = NULL;
	char *spec;

	if (admin_auth(d, req, resp))
		return;
	if (!strcmp(req->method, "GET")) {
		resp->status = 200;
		sk_buf_printf(&resp->body, "%s\n", d->cluster.log_level);
		return;
	}
	if (strcmp(req->method, "PUT") && strcmp(req->method, "POST")) {
		resp->status = 405;
		sk_buf_puts(&resp->body, "use GET, or PUT with a level spec as the body\n");
		return;
	}
	spec = sk_strndup(req->body, strcspn(req->body, "\r\n"));
	if (!spec || sk_log_levels_set(spec, &bad)) {
		resp->status = 400;
		sk_buf_printf(&resp->body, "invalid level spec near \"%s\"\n", bad ? bad : "");
		sk_deref(spec);
		return;
	}
	SK_NOTICE("log levels set to \"%s\" through the admin API", spec);
	sk_deref(d->cluster.log_level);
	d->cluster.log_level = spec;
	resp->status = 200;
	sk_buf_printf(&resp->body, "%s\n", spec);
}

static int route(const struct sk_http_req *req, struct sk_http_resp *resp, void *arg)
{
	struct sk_daemon *d = arg;
	const char *why = NULL;

	if (d->ops->http && d->ops->http(d, req, resp, d->ops->arg) != 1)
		return 0;
	if (!strcmp(req->path, "/metrics")) {
		resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
		resp->status = 200;
		return sk_metrics_print(d->metrics, &resp->body);
	}
	if (!strcmp(req->path, "/healthz")) {
		/* Alive: the loop answers. Readiness is the other question. */
		resp->status = 200;
		sk_buf_puts(&resp->body, "ok\n");
		return 0;
	}
	if (!strcmp(req->path, "/readyz")) {
		bool ready = sk_daemon_is_ready(d, &why);

		resp->status = ready ? 200 : 503;
		sk_buf_printf(&resp->body, "%s\n", ready ? "ready" : why);
		return 0;
	}
	if (!strcmp(req->path, "/status")) {
		resp->status = 200;
		resp->content_type = "application/json";
		status_json(d, &resp->body);
		return 0;
	}
	if (!strcmp(req->path, "/admin/log")) {
		admin_log(d, req, resp);
		return 0;
	}
	resp->status = 404;
	sk_buf_puts(&resp->body, "not found; try /metrics, /healthz, /readyz, /status\n");
	return 0;
}

int sk_daemon_http_start(struct sk_daemon *d, const char *addr)
{
	return sk_http_alloc(&d->http, d->loop, addr, route, d);
}

void sk_daemon_http_stop(struct sk_daemon *d)
{
	if (d->http)
		sk_http_close(d->http);
}
