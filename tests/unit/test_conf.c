/* sk_conf: defaults, INI parsing and its errors, env and flag overrides, reload, help,
 * and allocation failures during a load. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sk_test.h"
#include "skein/sk_conf.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"

struct cluster_cfg {
	char *node_id;
	char *datacenter;
	int64_t port;
	bool tls;
	uint64_t drain_timeout;
	char *log_format;
	char *bus;
	char *log_level;
};

struct registrar_cfg {
	char *domain;
	int64_t max_bindings;
	uint64_t expires;
	char *listen;
	int64_t port;
};

static int log_level_check(const char *value, const char **why)
{
	if (sk_log_levels_check(value)) {
		*why = "expected e.g. info,bus=debug";
		return -1;
	}
	return 0;
}

static const char *const formats[] = {"text", "json", NULL};

#define KEY(n, t, s, ...) {.name = #n, .type = SK_CONF_##t, .offset = offsetof(s, n), __VA_ARGS__}

static const struct sk_conf_key cluster_keys[] = {
	KEY(node_id, STR, struct cluster_cfg, .flags = SK_CONF_REQUIRED, .help = "Node id."),
	KEY(datacenter, STR, struct cluster_cfg, .def = "dc1", .flags = SK_CONF_RELOAD,
	    .help = "Datacenter | zone."),
	KEY(port, INT, struct cluster_cfg, .def = "5060", .min = 1, .max = 65535,
	    .help = "Port."),
	KEY(tls, BOOL, struct cluster_cfg, .def = "no", .flags = SK_CONF_RELOAD),
	KEY(drain_timeout, DURATION, struct cluster_cfg, .def = "30s", .min = 100,
	    .max = 3600000, .flags = SK_CONF_RELOAD, .help = "Drain."),
	KEY(log_format, ENUM, struct cluster_cfg, .def = "text", .choices = formats,
	    .flags = SK_CONF_RELOAD),
	KEY(bus, ADDR, struct cluster_cfg, .def = "127.0.0.1:7000"),
	KEY(log_level, STR, struct cluster_cfg, .def = "info", .check = log_level_check,
	    .flags = SK_CONF_RELOAD),
	SK_CONF_END,
};

static const struct sk_conf_key registrar_keys[] = {
	KEY(domain, STR, struct registrar_cfg, .def = "example.org", .flags = SK_CONF_RELOAD),
	KEY(max_bindings, INT, struct registrar_cfg, .def = "10"),
	KEY(expires, DURATION, struct registrar_cfg, .def = "1h"),
	KEY(listen, ADDR, struct registrar_cfg, .def = "[::1]:5060"),
	KEY(port, INT, struct registrar_cfg, .def = "5070"),
	SK_CONF_END,
};

static const char *const skip[] = {"media", "edge", NULL};

struct fixture {
	struct cluster_cfg c;
	struct registrar_cfg r;
	struct sk_conf_section secs[2];
	struct sk_conf_err e;
};

static void fx_init(struct fixture *fx)
{
	memset(fx, 0, sizeof(*fx));
	fx->secs[0] = (struct sk_conf_section){"cluster", cluster_keys, &fx->c};
	fx->secs[1] = (struct sk_conf_section){"registrar", registrar_keys, &fx->r};
}

/* A temporary file holding data; path gets its name. */
static void tmp_write(char *path, size_t size, const char *data, size_t len)
{
	const char *dir = getenv("SKEIN_TEST_TMP");
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	mkdir(dir, 0700); /* the build tree's tmp/ may not exist yet */
	snprintf(path, size, "%s/test_conf.XXXXXX", dir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* defaults, then the file; returns what sk_conf_file returned */
static int load(struct fixture *fx, const char *text, char *path, size_t size)
{
	int err;

	fx_init(fx);
	assert_int_equal(sk_conf_defaults(fx->secs, 2, &fx->e), 0);
	tmp_write(path, size, text, strlen(text));
	err = sk_conf_file(fx->secs, 2, path, skip, &fx->e);
	unlink(path);
	return err;
}

static void test_defaults(void **state)
{
	struct fixture fx;

	(void)state;
	fx_init(&fx);
	assert_int_equal(sk_conf_defaults(fx.secs, 2, &fx.e), 0);
	assert_null(fx.c.node_id);
	assert_string_equal(fx.c.datacenter, "dc1");
	assert_int_equal(fx.c.port, 5060);
	assert_false(fx.c.tls);
	assert_int_equal(fx.c.drain_timeout, 30000);
	assert_string_equal(fx.c.log_format, "text");
	assert_string_equal(fx.c.bus, "127.0.0.1:7000");
	assert_string_equal(fx.r.domain, "example.org");
	assert_int_equal(fx.r.expires, 3600000);
	assert_string_equal(fx.r.listen, "[::1]:5060");

	assert_int_equal(sk_conf_check_required(fx.secs, 2, &fx.e), SK_ECONFIG);
	assert_string_equal(fx.e.where, "[cluster]");
	assert_string_equal(fx.e.why, "required key \"node_id\" is not set: set it in the file, "
				      "in SKEIN_CLUSTER_NODE_ID or with --cluster.node_id=");
	assert_int_equal(sk_conf_flag(fx.secs, 2, "node_id=", &fx.e), 0);
	assert_int_equal(sk_conf_check_required(fx.secs, 2, &fx.e), SK_ECONFIG);
	assert_int_equal(sk_conf_flag(fx.secs, 2, "node_id=n1", &fx.e), 0);
	assert_int_equal(sk_conf_check_required(fx.secs, 2, &fx.e), 0);

	/* defaults again drop what was set, and releasing twice is harmless */
	assert_int_equal(sk_conf_defaults(fx.secs, 2, &fx.e), 0);
	assert_null(fx.c.node_id);
	sk_conf_release(fx.secs, 2);
	sk_conf_release(fx.secs, 2);
	assert_null(fx.c.datacenter);
}

static void test_file_values(void **state)
{
	struct fixture fx;
	char path[256];

	(void)state;
	assert_int_equal(load(&fx,
			      "\xef\xbb\xbf# a node\n"
			      "; also a comment\n"
			      "\n"
			      "  [ cluster ]  # inline\r\n"
			      "node_id = n1   # inline comment\n"
			      "datacenter=\"dc \\\"two\\\" \\\\ #x \"  ; after quotes\n"
			      "\tport\t=\t00443\n"
			      "tls = On\r\n"
			      "drain_timeout = 2m\n"
			      "log_format = JSON\n"
			      "bus = unix:/run/skein/bus.sock\n"
			      "log_level = info,bus=debug\n"
			      "[registrar]\n"
			      "domain = sip:a#b\n"
			      "max_bindings = -9223372036854775808\n"
			      "expires = 250\n"
			      "listen = [fe80::1%eth0]:0\n"
			      "port = 65535\n",
			      path, sizeof(path)),
			 0);
	assert_string_equal(fx.c.node_id, "n1");
	assert_string_equal(fx.c.datacenter, "dc \"two\" \\ #x ");
	assert_int_equal(fx.c.port, 443);
	assert_true(fx.c.tls);
	assert_int_equal(fx.c.drain_timeout, 120000);
	assert_string_equal(fx.c.log_format, "json"); /* stored as the table spells it */
	assert_string_equal(fx.c.bus, "unix:/run/skein/bus.sock");
	assert_string_equal(fx.c.log_level, "info,bus=debug");
	assert_string_equal(fx.r.domain, "sip:a#b");
	assert_true(fx.r.max_bindings == INT64_MIN);
	assert_int_equal(fx.r.expires, 250);
	assert_string_equal(fx.r.listen, "[fe80::1%eth0]:0");
	assert_int_equal(fx.r.port, 65535);
	assert_int_equal(sk_conf_check_required(fx.secs, 2, &fx.e), 0);
	sk_conf_release(fx.secs, 2);

	/* an empty value, bare or quoted, and a file without a final newline */
	assert_int_equal(load(&fx, "[cluster]\nnode_id =\ndatacenter = \"\"", path, sizeof(path)),
			 0);
	assert_string_equal(fx.c.node_id, "");
	assert_string_equal(fx.c.datacenter, "");
	sk_conf_release(fx.secs, 2);

	/* an empty file changes nothing */
	assert_int_equal(load(&fx, "", path, sizeof(path)), 0);
	assert_string_equal(fx.c.datacenter, "dc1");
	sk_conf_release(fx.secs, 2);
}

static void test_file_errors(void **state)
{
	static const struct {
		const char *text;
		unsigned line;
		const char *why;
	} cases[] = {
		{"[cluster]\nfoo = 1\n", 2, "unknown key \"foo\" in section [cluster]"},
		{"# hi\n[bogus]\n", 2, "unknown section [bogus]"},
		{"[cluster]\nport = 1\n\nport = 2\n", 4,
		 "key \"port\" set twice in [cluster] (first at line 2)"},
		{"[cluster]\nport = 1\n[registrar]\nport = 2\n[cluster]\nport = 3\n", 6,
		 "key \"port\" set twice in [cluster] (first at line 2)"},
		{"[cluster]\ndrain_timeout = 3x\n", 2,
		 "invalid duration \"3x\" for drain_timeout: use e.g. 500ms, 3s, 2m"},
		{"[cluster]\ndrain_timeout = 50ms\n", 2,
		 "value 50ms out of range [100ms, 1h] for drain_timeout"},
		{"[cluster]\ndrain_timeout = 99999999999999999999h\n", 2,
		 "duration 99999999999999999999h too long for drain_timeout"},
		{"\n[cluster]\nport = 99999\n", 3, "value 99999 out of range [1, 65535] for port"},
		{"[cluster]\nport = 0\n", 2, "value 0 out of range [1, 65535] for port"},
		{"[cluster]\nport = 12a\n", 2, "invalid integer \"12a\" for port"},
		{"[cluster]\nport = -\n", 2, "invalid integer \"-\" for port"},
		{"[cluster]\nport = +5\n", 2, "invalid integer \"+5\" for port"},
		{"[cluster]\nport =\n", 2, "invalid integer \"\" for port"},
		{"[registrar]\nmax_bindings = 9223372036854775808\n", 2,
		 "value 9223372036854775808 out of range [-9223372036854775808, "
		 "9223372036854775807] for max_bindings"},
		{"[cluster]\ntls = maybe\n", 2,
		 "invalid boolean \"maybe\" for tls: use yes/no, true/false, on/off or 1/0"},
		{"[cluster]\nlog_format = xml\n", 2,
		 "invalid value \"xml\" for log_format: use one of text, json"},
		{"[cluster]\nbus = localhost\n", 2,
		 "invalid address \"localhost\" for bus: missing \":port\" (use host:port, "
		 "[v6]:port or unix:/path)"},
		{"[cluster]\nbus = h:99999\n", 2,
		 "invalid address \"h:99999\" for bus: port 99999 out of range [0, 65535] (use "
		 "host:port, [v6]:port or unix:/path)"},
		{"[cluster]\nlog_level = loud\n", 2,
		 "invalid value \"loud\" for log_level: expected e.g. info,bus=debug"},
		{"[cluster]\njust words\n", 2, "expected \"key = value\""},
		{"[cluster]\n = 1\n", 2, "expected \"key = value\""},
		{"[cluster\nport = 1\n", 1, "unterminated section header"},
		{"[cluster] port = 1\n", 1, "unexpected text after section header"},
		{"[]\n", 1, "empty section header"},
		{"[cluster]\n\nnode_id = \"abc\n", 3, "unterminated quoted value"},
		{"[cluster]\nnode_id = \"abc\\\n", 2, "unterminated quoted value"},
		{"[cluster]\nnode_id = \"a\\nb\"\n", 2,
		 "unknown escape \"\\n\" in quoted value (only \\\" and \\\\)"},
		{"[cluster]\nnode_id = \"a\" b\n", 2, "unexpected text after quoted value"},
		{"port = 1\n[cluster]\n", 1, "key before any [section]"},
		/* skipped sections are still checked for syntax */
		{"[media]\nanything = \"x\n", 2, "unterminated quoted value"},
	};
	struct fixture fx;
	char path[256], where[300];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("case %zu\n", i);
		assert_int_equal(load(&fx, cases[i].text, path, sizeof(path)), SK_ECONFIG);
		snprintf(where, sizeof(where), "%s:%u", path, cases[i].line);
		assert_string_equal(fx.e.where, where);
		assert_string_equal(fx.e.why, cases[i].why);
		sk_conf_release(fx.secs, 2);
	}
}

static void test_file_binary(void **state)
{
	static const char text[] = "[cluster]\nnode_id = a\0b\n";
	struct fixture fx;
	char path[256], where[300];

	(void)state;
	fx_init(&fx);
	tmp_write(path, sizeof(path), text, sizeof(text) - 1);
	assert_int_equal(sk_conf_file(fx.secs, 2, path, NULL, &fx.e), SK_ECONFIG);
	unlink(path);
	snprintf(where, sizeof(where), "%s:2", path);
	assert_string_equal(fx.e.where, where);
	assert_string_equal(fx.e.why, "NUL byte in line");

	/* long values are cut in messages, and control bytes hidden */
	assert_int_equal(load(&fx, "[cluster]\nport = \x1b[31m0123456789012345678901234567890"
				   "123456789012345678901234567890\n",
			      path, sizeof(path)),
			 SK_ECONFIG);
	assert_string_equal(fx.e.why, "invalid integer \"?[31m0123456789012345678901234567890"
				      "123456789012...\" for port");
	sk_conf_release(fx.secs, 2);
}

static void test_file_open(void **state)
{
	struct fixture fx;
	const char *dir = getenv("SKEIN_TEST_TMP");

	(void)state;
	fx_init(&fx);
	assert_int_equal(sk_conf_file(fx.secs, 2, "/nonexistent/skein.ini", NULL, &fx.e),
			 SK_ECONFIG);
	assert_string_equal(fx.e.where, "/nonexistent/skein.ini");
	assert_string_equal(fx.e.why, strerror(ENOENT));

	/* a directory opens but cannot be read */
	dir = dir && *dir ? dir : "/tmp";
	mkdir(dir, 0700);
	assert_int_equal(sk_conf_file(fx.secs, 2, dir, NULL, &fx.e), SK_ECONFIG);
	assert_string_equal(fx.e.where, dir);
	assert_string_equal(fx.e.why, strerror(EISDIR));
	/* and e may be NULL */
	assert_int_equal(sk_conf_file(fx.secs, 2, "/nonexistent", NULL, NULL), SK_ECONFIG);
}

static void test_skip(void **state)
{
	struct fixture fx;
	char path[256];
	const char *text = "[media]\nwhatever = 1\nrtp_ports = \"1 # 2\"\n"
			   "[cluster]\nnode_id = n\n[edge]\nnode_id = other\n";

	(void)state;
	assert_int_equal(load(&fx, text, path, sizeof(path)), 0);
	assert_string_equal(fx.c.node_id, "n");
	sk_conf_release(fx.secs, 2);

	/* without the skip list the same file is wrong */
	fx_init(&fx);
	tmp_write(path, sizeof(path), text, strlen(text));
	assert_int_equal(sk_conf_file(fx.secs, 2, path, NULL, &fx.e), SK_ECONFIG);
	unlink(path);
	assert_string_equal(fx.e.why, "unknown section [media]");
}

static void test_precedence(void **state)
{
	char *env[] = {"PATH=/bin", "SKEIN_CLUSTER_PORT=5062", "SKEIN_REGISTRAR_DOMAIN=env.org",
		       "SKEIN_MEDIA_WHATEVER=1", "SKEIN_=x", "SKEIN_CLUSTERX_PORT=1",
		       "SKEIN_CLUSTER_DATACENTER", NULL};
	struct fixture fx;
	char path[256];

	(void)state;
	assert_int_equal(load(&fx, "[cluster]\nport = 5061\ndatacenter = file\n", path,
			      sizeof(path)),
			 0);
	assert_int_equal(fx.c.port, 5061);
	assert_int_equal(sk_conf_env(fx.secs, 2, env, &fx.e), 0);
	assert_int_equal(fx.c.port, 5062);
	assert_string_equal(fx.r.domain, "env.org");
	assert_string_equal(fx.c.datacenter, "file");
	assert_int_equal(sk_conf_flag(fx.secs, 2, "cluster.port=5063", &fx.e), 0);
	assert_int_equal(fx.c.port, 5063);
	assert_int_equal(sk_conf_env(fx.secs, 2, NULL, &fx.e), 0);
	sk_conf_release(fx.secs, 2);
}

static void test_env_errors(void **state)
{
	char *unknown[] = {"SKEIN_CLUSTER_NOPE=1", NULL};
	char *lower[] = {"SKEIN_cluster_port=1", "skein_CLUSTER_PORT=1", NULL};
	char *bad[] = {"SKEIN_CLUSTER_TLS=yes", "SKEIN_CLUSTER_DRAIN_TIMEOUT=soon", NULL};
	char *raw[] = {"SKEIN_CLUSTER_NODE_ID= \"quoted\" # kept", NULL};
	struct fixture fx;

	(void)state;
	fx_init(&fx);
	assert_int_equal(sk_conf_defaults(fx.secs, 2, &fx.e), 0);
	assert_int_equal(sk_conf_env(fx.secs, 2, unknown, &fx.e), SK_ECONFIG);
	assert_string_equal(fx.e.where, "env SKEIN_CLUSTER_NOPE");
	assert_string_equal(fx.e.why, "unknown key \"nope\" in section [cluster]");

	assert_int_equal(sk_conf_env(fx.secs, 2, lower, &fx.e), 0);
	assert_int_equal(fx.c.port, 5060);

	assert_int_equal(sk_conf_env(fx.secs, 2, bad, &fx.e), SK_ECONFIG);
	assert_true(fx.c.tls); /* applied in order up to the bad one */
	assert_string_equal(fx.e.where, "env SKEIN_CLUSTER_DRAIN_TIMEOUT");
	assert_string_equal(fx.e.why,
			    "invalid duration \"soon\" for drain_timeout: use e.g. 500ms, 3s, 2m");

	/* the environment is taken as it is: no quotes, no comments */
	assert_int_equal(sk_conf_env(fx.secs, 2, raw, &fx.e), 0);
	assert_string_equal(fx.c.node_id, " \"quoted\" # kept");
	sk_conf_release(fx.secs, 2);
}

static void test_flags(void **state)
{
	struct fixture fx;

	(void)state;
	fx_init(&fx);
	assert_int_equal(sk_conf_defaults(fx.secs, 2, &fx.e), 0);
	/* bare: the daemon's own section (the last) first */
	assert_int_equal(sk_conf_flag(fx.secs, 2, "port=1", &fx.e), 0);
	assert_int_equal(fx.r.port, 1);
	assert_int_equal(fx.c.port, 5060);
	assert_int_equal(sk_conf_flag(fx.secs, 2, "cluster.port=2", &fx.e), 0);
	assert_int_equal(fx.c.port, 2);
	assert_int_equal(sk_conf_flag(fx.secs, 2, "registrar.port=3", &fx.e), 0);
	assert_int_equal(fx.r.port, 3);
	/* bare, found in another section */
	assert_int_equal(sk_conf_flag(fx.secs, 2, "datacenter=x=y", &fx.e), 0);
	assert_string_equal(fx.c.datacenter, "x=y");

	assert_int_equal(sk_conf_flag(fx.secs, 2, "nope=1", &fx.e), SK_ECONFIG);
	assert_string_equal(fx.e.where, "--nope");
	assert_string_equal(fx.e.why, "unknown key \"nope\"");
	assert_int_equal(sk_conf_flag(fx.secs, 2, "registrar.tls=1", &fx.e), SK_ECONFIG);
	assert_string_equal(fx.e.where, "--registrar.tls");
	assert_string_equal(fx.e.why, "unknown key \"tls\" in section [registrar]");
	assert_int_equal(sk_conf_flag(fx.secs, 2, "bogus.x=1", &fx.e), SK_ECONFIG);
	assert_string_equal(fx.e.where, "--bogus.x");
	assert_string_equal(fx.e.why, "unknown section [bogus]");
	assert_int_equal(sk_conf_flag(fx.secs, 2, "port", &fx.e), SK_ECONFIG);
	assert_string_equal(fx.e.where, "--port");
	assert_string_equal(fx.e.why, "expected --key=value");
	assert_int_equal(sk_conf_flag(fx.secs, 2, "cluster.port=70000", &fx.e), SK_ECONFIG);
	assert_string_equal(fx.e.where, "--cluster.port");
	assert_string_equal(fx.e.why, "value 70000 out of range [1, 65535] for port");
	assert_int_equal(fx.c.port, 2); /* a bad value changes nothing */
	assert_int_equal(sk_conf_flag(fx.secs, 0, "port=1", &fx.e), SK_ECONFIG);
	sk_conf_release(fx.secs, 2);
}

static void test_addr(void **state)
{
	static const char *const good[] = {
		"h:0", "127.0.0.1:65535", "node-1.example.org:5060", "[::]:1", "[::ffff:1.2.3.4]:5",
		"[fe80::1%eth0]:6", "unix:/x", "unix:/run/skein/a b.sock",
	};
	static const char *const bad[] = {
		"", ":5060", "h:", "h:x", "h:-1", "h:65536", "h:1 ", "::1:5060", "[::1]", "[::1]5",
		"[zz]:1", "[fe80::1%]:1", "a b:1", "unix:", "unix:rel/path",
		("unix:/0123456789012345678901234567890123456789012345678901234567890123456789"
		 "0123456789012345678901234567890123456789"), /* longer than sun_path */
	};
	struct fixture fx;
	char flag[256];
	size_t i;

	(void)state;
	fx_init(&fx);
	assert_int_equal(sk_conf_defaults(fx.secs, 2, &fx.e), 0);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(flag, sizeof(flag), "bus=%s", good[i]);
		assert_int_equal(sk_conf_flag(fx.secs, 2, flag, &fx.e), 0);
		assert_string_equal(fx.c.bus, good[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(flag, sizeof(flag), "bus=%s", bad[i]);
		print_message("%s\n", flag);
		assert_int_equal(sk_conf_flag(fx.secs, 2, flag, &fx.e), SK_ECONFIG);
		assert_non_null(strstr(fx.e.why, "invalid address"));
	}
	/* sun_path holds 107 bytes and the NUL */
	memset(flag, 'a', sizeof(flag));
	memcpy(flag, "bus=unix:/", 10);
	flag[4 + 5 + 107] = '\0';
	assert_int_equal(sk_conf_flag(fx.secs, 2, flag, &fx.e), 0);
	flag[4 + 5 + 107] = 'a';
	flag[4 + 5 + 108] = '\0';
	assert_int_equal(sk_conf_flag(fx.secs, 2, flag, &fx.e), SK_ECONFIG);
	assert_string_equal(fx.e.why, "invalid address \"unix:/aaaaaaaaaaaaaaaaaaaaa"
				      "aaaaaaaaaaaaaaaaaaaaa...\" for bus: socket path longer than 107 bytes (use host:port, "
				      "[v6]:port or unix:/path)");
	sk_conf_release(fx.secs, 2);
}

static void test_durations(void **state)
{
	static const struct {
		const char *s;
		int err;
		uint64_t ms;
	} cases[] = {
		{"0", 0, 0},
		{"250", 0, 250},
		{"250ms", 0, 250},
		{"3s", 0, 3000},
		{"2m", 0, 120000},
		{"1h", 0, 3600000},
		{"007s", 0, 7000},
		{"18446744073709551615", 0, UINT64_MAX},
		{"18446744073709551616", SK_ERANGE, 0},
		{"18446744073709552s", SK_ERANGE, 0},
		{"", SK_EINVAL, 0},
		{"s", SK_EINVAL, 0},
		{"-1s", SK_EINVAL, 0},
		{"+1s", SK_EINVAL, 0},
		{" 1s", SK_EINVAL, 0},
		{"1s ", SK_EINVAL, 0},
		{"1.5s", SK_EINVAL, 0},
		{"1S", SK_EINVAL, 0},
		{"1d", SK_EINVAL, 0},
		{"1h30m", SK_EINVAL, 0},
		{"1mss", SK_EINVAL, 0},
	};
	uint64_t ms;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ms = 42;
		print_message("%s\n", cases[i].s);
		assert_int_equal(sk_conf_parse_duration(cases[i].s, &ms), cases[i].err);
		assert_true(ms == (cases[i].err ? 42 : cases[i].ms));
	}
	assert_int_equal(sk_conf_parse_duration(NULL, &ms), SK_EINVAL);
}

static void test_bools(void **state)
{
	static const char *const yes[] = {"yes", "YES", "true", "True", "on", "1"};
	static const char *const no[] = {"no", "No", "false", "FALSE", "off", "0"};
	static const char *const bad[] = {"", "y", "2", "yes ", "enable", "onn"};
	bool b;
	size_t i;

	(void)state;
	for (i = 0; i < 6; i++) {
		b = false;
		assert_int_equal(sk_conf_parse_bool(yes[i], &b), 0);
		assert_true(b);
		assert_int_equal(sk_conf_parse_bool(no[i], &b), 0);
		assert_false(b);
		assert_int_equal(sk_conf_parse_bool(bad[i], &b), SK_EINVAL);
	}
	assert_int_equal(sk_conf_parse_bool(NULL, &b), SK_EINVAL);
}

static const struct sk_conf_key *key_named(const struct sk_conf_section *sec, const char *name)
{
	const struct sk_conf_key *k;

	for (k = sec->keys; k->name && strcmp(k->name, name); k++)
		;
	assert_non_null(k->name);
	return k;
}

static void test_value_print(void **state)
{
	static const struct {
		const char *flag;
		int sec;
		const char *key, *out;
	} cases[] = {
		{"port=-0", 1, "port", "0"},
		{"max_bindings=-42", 1, "max_bindings", "-42"},
		{"tls=on", 0, "tls", "yes"},
		{"drain_timeout=3000", 0, "drain_timeout", "3s"},
		{"drain_timeout=1500", 0, "drain_timeout", "1500ms"},
		{"expires=120s", 1, "expires", "2m"},
		{"expires=7200000", 1, "expires", "2h"},
		{"expires=0", 1, "expires", "0ms"},
		{"node_id=plain", 0, "node_id", "plain"},
		{"node_id=a#b", 0, "node_id", "a#b"},
		{"node_id=a #b", 0, "node_id", "\"a #b\""},
		{"node_id=#b", 0, "node_id", "\"#b\""},
		{"node_id= x", 0, "node_id", "\" x\""},
		{"node_id=x\t", 0, "node_id", "\"x\t\""},
		{"node_id=\"q\\", 0, "node_id", "\"\\\"q\\\\\""},
		{"node_id=a\"b\\", 0, "node_id", "a\"b\\"},
		{"node_id=", 0, "node_id", "\"\""},
		{"log_format=JSON", 0, "log_format", "json"},
	};
	struct fixture fx;
	char buf[64];
	size_t i;

	(void)state;
	fx_init(&fx);
	assert_int_equal(sk_conf_defaults(fx.secs, 2, &fx.e), 0);
	/* a required key that is not set prints as empty */
	assert_int_equal(sk_conf_value_print(&fx.secs[0], &cluster_keys[0], buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "\"\"");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct sk_conf_key *k;

		assert_int_equal(sk_conf_flag(fx.secs, 2, cases[i].flag, &fx.e), 0);
		k = key_named(&fx.secs[cases[i].sec], cases[i].key);
		assert_int_equal(sk_conf_value_print(&fx.secs[cases[i].sec], k, buf, sizeof(buf)),
				 0);
		assert_string_equal(buf, cases[i].out);
	}
	/* too small: truncated, NUL-terminated, and said so */
	assert_int_equal(sk_conf_value_print(&fx.secs[0], &cluster_keys[1], buf, 3),
			 SK_EMSGSIZE);
	assert_string_equal(buf, "dc");
	assert_int_equal(sk_conf_value_print(&fx.secs[0], &cluster_keys[1], buf, 4), 0);
	sk_conf_flag(fx.secs, 2, "node_id=\"x", &fx.e);
	assert_int_equal(sk_conf_value_print(&fx.secs[0], &cluster_keys[0], buf, 4),
			 SK_EMSGSIZE);
	assert_string_equal(buf, "\"\\\"");
	sk_conf_release(fx.secs, 2);
}

struct changes {
	char log[512];
};

static void changed(const char *section, const struct sk_conf_key *k, bool applied, void *arg)
{
	struct changes *ch = arg;
	size_t len = strlen(ch->log);

	snprintf(ch->log + len, sizeof(ch->log) - len, "%s.%s=%s ", section, k->name,
		 applied ? "applied" : "restart");
}

static void test_reload(void **state)
{
	struct fixture live, fresh;
	struct changes ch = {{0}};
	char path[256];
	char *old_dc;

	(void)state;
	assert_int_equal(load(&live,
			      "[cluster]\nnode_id = n1\ndatacenter = dc1\nport = 5060\n"
			      "log_format = text\n",
			      path, sizeof(path)),
			 0);
	assert_int_equal(load(&fresh,
			      "[cluster]\nnode_id = n2\ndatacenter = dc2\nport = 5061\n"
			      "log_format = json\ntls = yes\n[registrar]\nlisten = h:1\n",
			      path, sizeof(path)),
			 0);
	old_dc = fresh.c.datacenter;
	assert_int_equal(sk_conf_reload(live.secs, fresh.secs, 2, changed, &ch), 3);
	assert_string_equal(ch.log, "cluster.node_id=restart cluster.datacenter=applied "
				    "cluster.port=restart cluster.tls=applied "
				    "cluster.log_format=applied registrar.listen=restart ");
	/* applied: moved into live; the rest: left as they were */
	assert_ptr_equal(live.c.datacenter, old_dc);
	assert_null(fresh.c.datacenter);
	assert_string_equal(live.c.log_format, "json");
	assert_true(live.c.tls);
	assert_string_equal(live.c.node_id, "n1");
	assert_int_equal(live.c.port, 5060);
	assert_string_equal(live.r.listen, "[::1]:5060");
	/* nothing left to apply */
	assert_int_equal(sk_conf_reload(live.secs, live.secs, 2, NULL, NULL), 0);
	sk_conf_release(fresh.secs, 2);
	sk_conf_release(live.secs, 2);
}

static char *capture(void (*fn)(FILE *, const struct sk_conf_section *, size_t),
		     const struct sk_conf_section *secs, size_t n)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	fn(f, secs, n);
	fclose(f);
	return out;
}

static void test_help(void **state)
{
	struct fixture fx;
	const struct sk_conf_key *k;
	char *help, *md, want[256];
	size_t i;

	(void)state;
	fx_init(&fx);
	help = capture(sk_conf_help, fx.secs, 2);
	md = capture(sk_conf_markdown, fx.secs, 2);
	for (i = 0; i < 2; i++) {
		snprintf(want, sizeof(want), "[%s]\n", fx.secs[i].name);
		assert_non_null(strstr(help, want));
		snprintf(want, sizeof(want), "## [%s]\n\n| key | type | default | env | reload | "
					     "description |\n|---|---|---|---|---|---|\n",
			 fx.secs[i].name);
		assert_non_null(strstr(md, want));
		for (k = fx.secs[i].keys; k->name; k++) {
			snprintf(want, sizeof(want), "  --%s.%s=", fx.secs[i].name, k->name);
			assert_non_null(strstr(help, want));
			snprintf(want, sizeof(want), "| `%s` |", k->name);
			assert_non_null(strstr(md, want));
		}
	}
	assert_non_null(strstr(help, "[cluster]\n  --cluster.node_id=STR           "
				     "  (env SKEIN_CLUSTER_NODE_ID, required)  Node id.\n"));
	assert_non_null(strstr(help, "  --cluster.drain_timeout=DURATION  (env "
				     "SKEIN_CLUSTER_DRAIN_TIMEOUT, default \"30s\", range "
				     "100ms..1h)  Drain.  [reloadable]\n"));
	assert_non_null(strstr(help, "  --cluster.log_format=text|json"));
	assert_non_null(strstr(help, "\n\n[registrar]\n"));
	assert_non_null(strstr(md, "| `node_id` | STR | *required* | `SKEIN_CLUSTER_NODE_ID` | "
				   "no | Node id. |\n"));
	assert_non_null(strstr(md, "| `datacenter` | STR | `dc1` | `SKEIN_CLUSTER_DATACENTER` | "
				   "yes | Datacenter \\| zone. |\n"));
	assert_non_null(strstr(md, "| `port` | INT 1..65535 | `5060` |"));
	assert_non_null(strstr(md, "| `log_format` | ENUM: `text`, `json` | `text` |"));
	free(help);
	free(md);
}

static void test_table_errors(void **state)
{
	static const struct sk_conf_key no_def[] = {
		{.name = "a", .type = SK_CONF_STR}, SK_CONF_END};
	static const struct sk_conf_key req_int[] = {
		{.name = "a", .type = SK_CONF_INT, .flags = SK_CONF_REQUIRED}, SK_CONF_END};
	static const struct sk_conf_key upper_key[] = {
		{.name = "Abc", .type = SK_CONF_STR, .def = ""}, SK_CONF_END};
	static const struct sk_conf_key twice[] = {
		{.name = "a", .type = SK_CONF_STR, .def = ""},
		{.name = "a", .type = SK_CONF_STR, .def = ""}, SK_CONF_END};
	static const struct sk_conf_key no_choices[] = {
		{.name = "a", .type = SK_CONF_ENUM, .def = "x"}, SK_CONF_END};
	static const struct sk_conf_key bad_def[] = {
		{.name = "t", .type = SK_CONF_DURATION, .def = "3x"}, SK_CONF_END};
	static const struct {
		const char *name;
		const struct sk_conf_key *keys;
		const char *why;
	} cases[] = {
		{"x", no_def, "key a: give a default or SK_CONF_REQUIRED, not both or neither"},
		{"x", req_int, "key a: only STR, ENUM and ADDR keys can be required"},
		{"x", upper_key, "key \"Abc\": use lower-case letters, digits and '_'"},
		{"x", twice, "key a listed twice"},
		{"x", no_choices, "key a: an ENUM needs choices"},
		{"x", bad_def, "invalid duration \"3x\" for t: use e.g. 500ms, 3s, 2m"},
		{"x_y", twice, "section name \"x_y\" must be letters only"},
	};
	struct sk_conf_section sec;
	struct sk_conf_err e;
	char target[64] = {0}, where[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sec = (struct sk_conf_section){cases[i].name, cases[i].keys, target};
		assert_int_equal(sk_conf_defaults(&sec, 1, &e), SK_ECONFIG);
		snprintf(where, sizeof(where), "default [%s]", cases[i].name);
		assert_string_equal(e.where, where);
		assert_string_equal(e.why, cases[i].why);
		sk_conf_release(&sec, 1);
	}
}

/* Every allocation of a load fails in turn: each must fail cleanly, and leak nothing. */
static void test_alloc_failures(void **state)
{
	struct fixture fx;
	char path[256];
	const char *text = "[cluster]\nnode_id = n1\ndatacenter = dc9\nlog_format = json\n"
			   "[registrar]\nlisten = h:1\ndomain = d\n";
	char *env[] = {"SKEIN_CLUSTER_BUS=h:2", NULL};
	size_t live = sk_mem_live();
	unsigned long nth;
	int err = -1;

	(void)state;
	tmp_write(path, sizeof(path), text, strlen(text));
	for (nth = 1; nth < 1000 && err; nth++) {
		fx_init(&fx);
		sk_mem_fail_after(nth);
		err = sk_conf_defaults(fx.secs, 2, &fx.e);
		if (!err)
			err = sk_conf_file(fx.secs, 2, path, skip, &fx.e);
		if (!err)
			err = sk_conf_env(fx.secs, 2, env, &fx.e);
		if (!err)
			err = sk_conf_flag(fx.secs, 2, "domain=f", &fx.e);
		sk_mem_fail_after(0);
		if (err) {
			assert_int_equal(err, SK_ENOMEM);
			assert_string_equal(fx.e.why, "out of memory");
		} else {
			assert_string_equal(fx.c.node_id, "n1");
			assert_string_equal(fx.c.bus, "h:2");
			assert_string_equal(fx.r.domain, "f");
		}
		sk_conf_release(fx.secs, 2);
		assert_int_equal(sk_mem_live(), live);
	}
	unlink(path);
	assert_int_equal(err, 0);
	assert_true(nth > 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		SK_TEST(test_defaults), SK_TEST(test_file_values), SK_TEST(test_file_errors),
		SK_TEST(test_file_binary), SK_TEST(test_file_open), SK_TEST(test_skip),
		SK_TEST(test_precedence), SK_TEST(test_env_errors), SK_TEST(test_flags),
		SK_TEST(test_addr), SK_TEST(test_durations), SK_TEST(test_bools),
		SK_TEST(test_value_print), SK_TEST(test_reload), SK_TEST(test_help),
		SK_TEST(test_table_errors), SK_TEST(test_alloc_failures),
	};
	return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
