/* Logging: per-module levels with a generation counter so that the hot path is one
 * comparison, and one write(2) per record so lines from several processes sharing
 * a terminal or pipe never interleave. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "skein/sk_log.h"
#include "skein/sk_buf.h"
#include "skein/sk_err.h"

#define MAX_OVERRIDES 32
#define NAME_MAX_LEN 32

struct override {
	char name[NAME_MAX_LEN];
	int level;
};

static struct {
	int level;
	struct override ov[MAX_OVERRIDES];
	int nov;
	unsigned gen;
	enum sk_log_format fmt;
	char node[128];
	const char *ctx_key, *ctx_val;
	int fd;
} lg = {.level = SK_LOG_INFO, .gen = 1, .fd = 2};

static const char *names[] = {"debug", "info", "notice", "warn", "error", "off"};

int sk_log_level_parse(const char *s)
{
	for (int i = 0; i <= SK_LOG_OFF; i++)
		if (!strcasecmp(s, names[i]))
			return i;
	if (!strcasecmp(s, "warning"))
		return SK_LOG_WARN;
	return -1;
}

const char *sk_log_level_name(enum sk_log_level l)
{
	return (unsigned)l <= SK_LOG_OFF ? names[l] : "?";
}

static int level_for(const char *module)
{
	for (int i = 0; i < lg.nov; i++)
		if (!strcmp(lg.ov[i].name, module))
			return lg.ov[i].level;
	return lg.level;
}

enum sk_log_level sk_log_level_get(const char *module)
{
	return level_for(module);
}

/* Parses spec into level/ov; returns 0 or SK_EINVAL with *bad set. */
static int parse_spec(const char *spec, int *level, struct override *ov, int *nov,
		      const char **bad)
{
	char tmp[512], *save = NULL, *tok;
	static char badtok[64];

	*level = SK_LOG_INFO;
	*nov = 0;
	if (strlen(spec) >= sizeof(tmp))
		return SK_EINVAL;
	strcpy(tmp, spec);
	for (tok = strtok_r(tmp, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		char *eq = strchr(tok, '=');
		int l;

		if (!eq) {
			l = sk_log_level_parse(tok);
			if (l < 0)
				goto fail;
			*level = l;
			continue;
		}
		*eq = '\0';
		l = sk_log_level_parse(eq + 1);
		if (l < 0 || !*tok || strlen(tok) >= NAME_MAX_LEN || *nov >= MAX_OVERRIDES) {
			*eq = '=';
			goto fail;
		}
		strcpy(ov[*nov].name, tok);
		ov[(*nov)++].level = l;
		continue;
fail:
		if (bad) {
			snprintf(badtok, sizeof(badtok), "%s", tok);
			*bad = badtok;
		}
		return SK_EINVAL;
	}
	return 0;
}

int sk_log_levels_check(const char *spec)
{
	struct override ov[MAX_OVERRIDES];
	int level, nov;

	return parse_spec(spec, &level, ov, &nov, NULL);
}

int sk_log_levels_set(const char *spec, const char **bad)
{
	struct override ov[MAX_OVERRIDES];
	int level, nov, err;

	err = parse_spec(spec, &level, ov, &nov, bad);
	if (err)
		return err;
	lg.level = level;
	memcpy(lg.ov, ov, sizeof(ov));
	lg.nov = nov;
	lg.gen++;
	return 0;
}

int sk_log_enabled(struct sk_log_mod *mod, enum sk_log_level lvl)
{
	if (mod->gen != lg.gen) {
		mod->level = level_for(mod->name);
		mod->gen = lg.gen;
	}
	return (int)lvl >= mod->level && lvl < SK_LOG_OFF;
}

void sk_log_format_set(enum sk_log_format f)
{
	lg.fmt = f;
}

void sk_log_node_set(const char *node)
{
	snprintf(lg.node, sizeof(lg.node), "%s", node ? node : "");
}

void sk_log_ctx_set(const char *key, const char *value)
{
	lg.ctx_key = key;
	lg.ctx_val = value;
}

const char *sk_log_escape(const char *s, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; s && *s && o + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return out;
}

void sk_log_fd_set(int fd)
{
	lg.fd = fd < 0 ? 2 : fd;
}

void sk_log_write(struct sk_log_mod *mod, enum sk_log_level lvl, const char *fmt, ...)
{
	char stack[1024], ts[40];
	struct sk_buf b;
	struct timespec now;
	struct tm tm;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + 19, sizeof(ts) - 19, ".%03ldZ", now.tv_nsec / 1000000);

	sk_buf_init(&b);
	va_start(ap, fmt);
	vsnprintf(stack, sizeof(stack), fmt, ap);
	va_end(ap);

	if (lg.fmt == SK_LOG_JSON) {
		sk_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":", ts, names[lvl]);
		sk_buf_json_str(&b, mod->name);
		if (lg.node[0]) {
			sk_buf_puts(&b, ",\"node\":");
			sk_buf_json_str(&b, lg.node);
		}
		if (lg.ctx_key && lg.ctx_val) {
			sk_buf_puts(&b, ",");
			sk_buf_json_str(&b, lg.ctx_key);
			sk_buf_puts(&b, ":");
			sk_buf_json_str(&b, lg.ctx_val);
		}
		sk_buf_puts(&b, ",\"msg\":");
		sk_buf_json_str(&b, stack);
		sk_buf_puts(&b, "}\n");
	} else {
		/* One event, one line: a control character that came from the network
		 * (a folded SIP header in a user name) must not start a line that log
		 * readers such as fail2ban would take for an event of its own. */
		for (char *c = stack; *c; c++)
			if ((unsigned char)*c < 0x20 && *c != '\t')
				*c = '?';
		sk_buf_printf(&b, "%s %-6s %-9s [%s", ts, names[lvl], mod->name, lg.node);
		if (lg.ctx_key && lg.ctx_val)
			sk_buf_printf(&b, " %s=%s", lg.ctx_key, lg.ctx_val);
		sk_buf_printf(&b, "] %s\n", stack);
	}
	if (!b.err) {
		ssize_t n = write(lg.fd, b.data, b.len);
		(void)n;
	}
	sk_buf_release(&b);
}
