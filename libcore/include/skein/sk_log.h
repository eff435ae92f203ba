/* sk_log: leveled logging to stderr, one write(2) per record, text or JSON lines.
 *
 * Every file names its module once:   SK_LOG_MODULE("bus");
 * and then logs with                  SK_INFO("peer %s joined", id);
 * Levels are per module and can change at run time (sk_log_levels_set), e.g. from
 * the log_level config key on SIGHUP: "info,bus=debug,redis=warn".
 * Every line carries the node id and the current context (trace/call id). */
#ifndef SK_LOG_H
#define SK_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum sk_log_level {
	SK_LOG_DEBUG = 0,
	SK_LOG_INFO,
	SK_LOG_NOTICE,
	SK_LOG_WARN,
	SK_LOG_ERROR,
	SK_LOG_OFF,
};

enum sk_log_format { SK_LOG_TEXT = 0, SK_LOG_JSON };

struct sk_log_mod {
	const char *name;
	int level;    /* effective level, cached */
	unsigned gen; /* generation of the level table it was computed from */
	struct sk_log_mod *next;
};

#define SK_LOG_MODULE(n) \
	static struct sk_log_mod sk_log_mod_ __attribute__((unused)) = {n, 0, 0, 0}

void sk_log_write(struct sk_log_mod *mod, enum sk_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int sk_log_enabled(struct sk_log_mod *mod, enum sk_log_level lvl);

#define SK_LOG(lvl, ...)                                   \
	do {                                               \
		if (sk_log_enabled(&sk_log_mod_, lvl))     \
			sk_log_write(&sk_log_mod_, lvl, __VA_ARGS__); \
	} while (0)
#define SK_DEBUG(...) SK_LOG(SK_LOG_DEBUG, __VA_ARGS__)
#define SK_INFO(...) SK_LOG(SK_LOG_INFO, __VA_ARGS__)
#define SK_NOTICE(...) SK_LOG(SK_LOG_NOTICE, __VA_ARGS__)
#define SK_WARN(...) SK_LOG(SK_LOG_WARN, __VA_ARGS__)
#define SK_ERROR(...) SK_LOG(SK_LOG_ERROR, __VA_ARGS__)

/* "debug", "info", "notice", "warn", "error", "off"; -1 when unknown. */
int sk_log_level_parse(const char *s);
const char *sk_log_level_name(enum sk_log_level lvl);

/* Parse and apply a level spec: "LEVEL[,MODULE=LEVEL...]". On error nothing changes,
 * and *bad (if given) points at the faulty element. Returns 0 or SK_EINVAL. */
int sk_log_levels_set(const char *spec, const char **bad);
/* Check a spec without applying it. */
int sk_log_levels_check(const char *spec);
/* The level in force for a module name. */
enum sk_log_level sk_log_level_get(const char *module);

void sk_log_format_set(enum sk_log_format f);
/* The node id printed on every line (copied). */
void sk_log_node_set(const char *node);
/* The context printed on every line until cleared (borrowed: the caller keeps the
 * strings alive until it calls sk_log_ctx_set(NULL, NULL)). */
void sk_log_ctx_set(const char *key, const char *value);

/* A value from the network as it may go into a quoted log field: '"', '\\' and bytes
 * outside printable ASCII written \xNN, so that it can neither end the quoted string
 * nor start a line of its own (a folded header: CR LF SP), which fail2ban filters rely
 * on. Into out (size >= 1), truncated; returns out. NULL reads as "". */
const char *sk_log_escape(const char *s, char *out, size_t size);

/* For tests: write records to this fd instead of stderr (-1 restores stderr). */
void sk_log_fd_set(int fd);

#endif
