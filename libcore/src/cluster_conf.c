/* The [cluster] section shared by every daemon, skein and skeinctl. */
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include "skein/sk_daemon.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_err.h"

const char *const sk_roles[] = {"edge", "registrar", "msrp", "media", "xmpp", "focus", NULL};

static const char *const log_formats[] = {"text", "json", NULL};

static int check_log_level(const char *v, const char **why)
{
	*why = "expected LEVEL[,MODULE=LEVEL...] with levels debug, info, notice, warn, error, off";
	return sk_log_levels_check(v);
}

static int check_roles(const char *v, const char **why)
{
	const char *p = v;

	*why = "expected a comma-separated list of edge, registrar, msrp, media, xmpp, focus";
	while (*p) {
		size_t n = strcspn(p, ", ");
		bool ok = false;

		for (int i = 0; n && sk_roles[i]; i++)
			ok |= strlen(sk_roles[i]) == n && !strncmp(sk_roles[i], p, n);
		if (n && !ok)
			return -1;
		p += n;
		p += strspn(p, ", ");
	}
	return 0;
}

static int check_name(const char *v, const char **why)
{
	*why = "letters, digits, '-', '_' and '.' only";
	if (!*v)
		return 0;
	return strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
			       strlen(v)
		       ? 0
		       : -1;
}

#define C(m) offsetof(struct sk_cluster_conf, m)
const struct sk_conf_key sk_cluster_keys[] = {
	{"name", SK_CONF_STR, C(name), "skein",
	 "Cluster name; prefixes every Redis key, so clusters may share a Redis", 0, 0, 0, 0,
	 check_name},
	{"node_id", SK_CONF_STR, C(node_id), "",
	 "This node's id, unique in the cluster; empty: the host name", 0, 0, 0, 0, check_name},
	{"datacenter", SK_CONF_STR, C(datacenter), "dc1",
	 "Datacenter of this node; requests prefer nodes of the same one", 0, 0, 0, 0,
	 check_name},
	{"redis", SK_CONF_ADDR, C(redis), "127.0.0.1:6379",
	 "Redis holding the shared state: host:port or unix:/path", 0, 0, 0, 0, 0},
	{"redis_timeout", SK_CONF_DURATION, C(redis_timeout), "1s",
	 "A Redis command unanswered this long resets the connection", 0, 50, 60000, 0, 0},
	{"state_dir", SK_CONF_STR, C(state_dir), "/var/lib/skein",
	 "Directory for bus sockets and the embedded Redis's data", 0, 0, 0, 0, 0},
	{"log_level", SK_CONF_STR, C(log_level), "info",
	 "Log levels: LEVEL[,MODULE=LEVEL...], e.g. info,bus=debug", SK_CONF_RELOAD, 0, 0, 0,
	 check_log_level},
	{"log_format", SK_CONF_ENUM, C(log_format), "text",
	 "Log lines on stderr: text or json (one object per line)", SK_CONF_RELOAD, 0, 0,
	 log_formats, 0},
	{"heartbeat_interval", SK_CONF_DURATION, C(heartbeat_interval), "1s",
	 "How often each daemon heartbeats into Redis", 0, 100, 60000, 0, 0},
	{"node_timeout", SK_CONF_DURATION, C(node_timeout), "3s",
	 "A daemon silent this long is out of the cluster", 0, 300, 300000, 0, 0},
	{"drain_timeout", SK_CONF_DURATION, C(drain_timeout), "30s",
	 "On SIGTERM, the longest wait for work in progress before exiting", SK_CONF_RELOAD,
	 0, 3600000, 0, 0},
	{"bus_deadline", SK_CONF_DURATION, C(bus_deadline), "2s",
	 "Default deadline of a bus request", SK_CONF_RELOAD, 10, 60000, 0, 0},
	{"roles", SK_CONF_STR, C(roles), "edge,registrar",
	 "Roles `skein run` starts on this node", 0, 0, 0, 0, check_roles},
	{"redis_embedded", SK_CONF_BOOL, C(redis_embedded), "no",
	 "`skein run` starts its own redis-server at `redis` (loopback only)", 0, 0, 0, 0, 0},
	{"redis_bin", SK_CONF_STR, C(redis_bin), "redis-server",
	 "The redis-server program for redis_embedded", 0, 0, 0, 0, 0},
	{"admin_token", SK_CONF_STR, C(admin_token), "",
	 "Bearer token of the admin API; empty disables it", SK_CONF_RELOAD, 0, 0, 0, 0},
	SK_CONF_END,
};
#undef C

int sk_cluster_conf_load(struct sk_cluster_conf *c, const char *path, char **envp,
			 struct sk_conf_err *e)
{
	struct sk_conf_section sec = {"cluster", sk_cluster_keys, c};
	int err;

	err = sk_conf_defaults(&sec, 1, e);
	if (!err && path)
		err = sk_conf_file(&sec, 1, path, sk_roles, e);
	if (!err)
		err = sk_conf_env(&sec, 1, envp, e);
	return err ? err : sk_cluster_conf_node_id_default(c);
}

int sk_cluster_conf_node_id_default(struct sk_cluster_conf *c)
{
	char host[256] = "node";

	if (c->node_id && *c->node_id)
		return 0;
	gethostname(host, sizeof(host) - 1);
	sk_deref(c->node_id);
	c->node_id = sk_strdup(host);
	return c->node_id ? 0 : SK_ENOMEM;
}
