/* sk_conf: one typed table per section drives defaults, the INI file, SKEIN_<SECTION>_<KEY>
 * environment overrides, --key=value flags, --help, --check-config, reload on SIGHUP and
 * docs/configuration.md (after nginx's command tables and Redis's config.c).
 *
 * A node has one INI file: [cluster] plus one section per role. Each daemon loads
 * [cluster] and its own section; the sections of the other roles are listed in `skip`
 * (validated by their own daemons), and any other section or key is an error.
 *
 * Precedence, lowest first: default < file < environment < flag. */
#ifndef SK_CONF_H
#define SK_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>

enum sk_conf_type {
	SK_CONF_STR,      /* char * (sk_strdup'ed, freed by sk_conf_release)         */
	SK_CONF_INT,      /* int64_t, decimal, within [min, max] when min < max      */
	SK_CONF_BOOL,     /* bool: yes/no, true/false, on/off, 1/0                   */
	SK_CONF_DURATION, /* uint64_t milliseconds: "250ms", "3s", "2m", "1h", bare = ms */
	SK_CONF_ENUM,     /* char *, one of `choices`                                */
	SK_CONF_ADDR,     /* char *, "host:port", "[v6]:port" or "unix:/path"        */
};

#define SK_CONF_RELOAD 0x1u   /* may change on SIGHUP without a restart */
#define SK_CONF_REQUIRED 0x2u /* no default: must be set somewhere      */

struct sk_conf_key {
	const char *name;
	enum sk_conf_type type;
	size_t offset; /* into the section's target struct */
	const char *def; /* default, in file syntax; NULL only with SK_CONF_REQUIRED */
	const char *help;
	unsigned flags;
	int64_t min, max;            /* INT and DURATION bounds, ignored when min >= max */
	const char *const *choices;  /* ENUM: NULL-terminated */
	/* Extra validation: return 0, or non-zero with *why set to a static reason. */
	int (*check)(const char *value, const char **why);
};
#define SK_CONF_END {0}

struct sk_conf_section {
	const char *name;               /* "cluster", "registrar", ...   */
	const struct sk_conf_key *keys; /* terminated by SK_CONF_END     */
	void *target;                   /* the struct `offset`s point into */
};

/* Where and why loading failed; `where` is "FILE:LINE", "env NAME", "--flag" or
 * "default" (a broken table); printed as "WHERE: WHY". */
struct sk_conf_err {
	char where[512];
	char why[256];
};

/* Each step returns 0 or SK_ECONFIG with *e filled (SK_ENOMEM, why "out of memory",
 * when an allocation fails). On error the targets may hold a mix of old and new
 * values: load into a scratch copy when that matters (reload). */

/* Set every key of every section to its default (missing SK_CONF_REQUIRED keys are
 * reported by sk_conf_check_required). */
int sk_conf_defaults(const struct sk_conf_section *secs, size_t n, struct sk_conf_err *e);
/* Apply an INI file: "[section]", "key = value", '#' or ';' comments, blank lines.
 * Values may be double-quoted (then \" and \\ are escapes). Sections named in `skip`
 * (NULL-terminated, may be NULL) are ignored; any other unknown section or key, a
 * repeated key in one section, a line without '=', or a value that does not parse is
 * an error naming FILE:LINE. */
int sk_conf_file(const struct sk_conf_section *secs, size_t n, const char *path,
		 const char *const *skip, struct sk_conf_err *e);
/* Apply SKEIN_<SECTION>_<KEY> variables from envp (section and key upper-cased).
 * A variable naming a section of `secs` but no key of it is an error; variables of
 * other sections are ignored. */
int sk_conf_env(const struct sk_conf_section *secs, size_t n, char *const *envp,
		struct sk_conf_err *e);
/* Apply one flag body, "key=value" or "section.key=value" (the leading "--" already
 * stripped). A bare key is looked up in secs[n-1] (the daemon's own section) first,
 * then in the others in order. Unknown key: error. */
int sk_conf_flag(const struct sk_conf_section *secs, size_t n, const char *arg,
		 struct sk_conf_err *e);
/* Error if a SK_CONF_REQUIRED key was never set. */
int sk_conf_check_required(const struct sk_conf_section *secs, size_t n,
			   struct sk_conf_err *e);

/* Free the strings the targets hold (not the targets). */
void sk_conf_release(const struct sk_conf_section *secs, size_t n);

/* The current value of a key as text (into buf), for dumps and diffs. Returns 0, or
 * SK_EMSGSIZE when buf was too small (the text is then cut, still NUL-terminated). */
int sk_conf_value_print(const struct sk_conf_section *sec, const struct sk_conf_key *k,
			char *buf, size_t size);

/* Reload: `fresh` was loaded from scratch into other targets with the same tables.
 * Keys marked SK_CONF_RELOAD that differ are copied into `live` (ownership of strings
 * moves) and reported to cb with applied=true; other differing keys are left as they
 * are and reported with applied=false (they need a restart). Returns the number of
 * keys applied. */
typedef void(sk_conf_changed_cb)(const char *section, const struct sk_conf_key *k,
				 bool applied, void *arg);
int sk_conf_reload(const struct sk_conf_section *live, const struct sk_conf_section *fresh,
		   size_t n, sk_conf_changed_cb *cb, void *arg);

/* --help: every key with its type, default, env name and help text. */
void sk_conf_help(FILE *f, const struct sk_conf_section *secs, size_t n);
/* The same as a Markdown table per section (docs/configuration.md is made of this). */
void sk_conf_markdown(FILE *f, const struct sk_conf_section *secs, size_t n);

/* Parsers shared with other modules. */
int sk_conf_parse_duration(const char *s, uint64_t *ms);
int sk_conf_parse_bool(const char *s, bool *b);

#endif
