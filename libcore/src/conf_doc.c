/* Config tables printed for people: --help and docs/configuration.md. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "skein/sk_conf.h"
#include "skein/sk_err.h"
#include "conf_int.h"

static const char *type_name(enum sk_conf_type t)
{
	switch (t) {
	case SK_CONF_STR:
		return "STR";
	case SK_CONF_INT:
		return "INT";
	case SK_CONF_BOOL:
		return "BOOL";
	case SK_CONF_DURATION:
		return "DURATION";
	case SK_CONF_ENUM:
		return "ENUM";
	case SK_CONF_ADDR:
		return "ADDR";
	}
	return "?";
}

/* "1..65535" or "100ms..1m" into buf, or "" when the key has no bounds. */
static void range_print(const struct sk_conf_key *k, char *buf, size_t size)
{
	char lo[32], hi[32];

	buf[0] = '\0';
	if (k->min >= k->max)
		return;
	if (k->type == SK_CONF_INT) {
		snprintf(buf, size, "%" PRId64 "..%" PRId64, k->min, k->max);
	} else if (k->type == SK_CONF_DURATION && k->max >= 0) {
		sk_conf_duration_print(k->min > 0 ? (uint64_t)k->min : 0, lo, sizeof(lo));
		sk_conf_duration_print((uint64_t)k->max, hi, sizeof(hi));
		snprintf(buf, size, "%s..%s", lo, hi);
	}
}

/* The placeholder after "--section.key=": the type, or the choices of an ENUM. */
static int placeholder_print(FILE *f, const struct sk_conf_key *k)
{
	const char *const *c;
	int len = 0;

	if (k->type != SK_CONF_ENUM || !k->choices)
		return fprintf(f, "%s", type_name(k->type));
	for (c = k->choices; *c; c++)
		len += fprintf(f, "%s%s", c == k->choices ? "" : "|", *c);
	return len;
}

static size_t placeholder_len(const struct sk_conf_key *k)
{
	const char *const *c;
	size_t len = 0;

	if (k->type != SK_CONF_ENUM || !k->choices)
		return strlen(type_name(k->type));
	for (c = k->choices; *c; c++)
		len += strlen(*c) + (c != k->choices);
	return len;
}

void sk_conf_help(FILE *f, const struct sk_conf_section *secs, size_t n)
{
	const struct sk_conf_key *k;
	char env[128], range[80];
	size_t i, w;
	int len, pad;

	for (i = 0; i < n; i++) {
		/* align the env column, unless one long ENUM would push all lines right */
		size_t width = 0;

		for (k = secs[i].keys; k->name; k++) {
			w = strlen(secs[i].name) + strlen(k->name) + placeholder_len(k) + 6;
			if (w > width && w <= 44)
				width = w;
		}
		fprintf(f, "%s[%s]\n", i ? "\n" : "", secs[i].name);
		for (k = secs[i].keys; k->name; k++) {
			len = fprintf(f, "  --%s.%s=", secs[i].name, k->name);
			len += placeholder_print(f, k);
			pad = len >= 0 && (size_t)len < width ? (int)(width - (size_t)len) : 0;
			fprintf(f, "%*s", pad, "");
			sk_conf_env_name(env, sizeof(env), secs[i].name, k->name);
			range_print(k, range, sizeof(range));
			if (k->flags & SK_CONF_REQUIRED)
				fprintf(f, "  (env %s, required", env);
			else
				fprintf(f, "  (env %s, default \"%s\"", env, k->def);
			fprintf(f, "%s%s)", range[0] ? ", range " : "", range);
			if (k->help && *k->help)
				fprintf(f, "  %s", k->help);
			fprintf(f, "%s\n", k->flags & SK_CONF_RELOAD ? "  [reloadable]" : "");
		}
	}
}

/* Table cells: a '|' would end the cell and a newline the row. */
static void md_cell(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '|')
			fputs("\\|", f);
		else if (*s == '\n')
			fputc(' ', f);
		else
			fputc(*s, f);
	}
}

void sk_conf_markdown(FILE *f, const struct sk_conf_section *secs, size_t n)
{
	const struct sk_conf_key *k;
	const char *const *c;
	char env[128], range[80];
	size_t i;

	for (i = 0; i < n; i++) {
		fprintf(f, "%s## [%s]\n\n", i ? "\n" : "", secs[i].name);
		fputs("| key | type | default | env | reload | description |\n", f);
		fputs("|---|---|---|---|---|---|\n", f);
		for (k = secs[i].keys; k->name; k++) {
			fprintf(f, "| `%s` | %s", k->name, type_name(k->type));
			range_print(k, range, sizeof(range));
			if (range[0])
				fprintf(f, " %s", range);
			for (c = k->type == SK_CONF_ENUM ? k->choices : NULL; c && *c; c++)
				fprintf(f, "%s`%s`", c == k->choices ? ": " : ", ", *c);
			if (k->flags & SK_CONF_REQUIRED) {
				fputs(" | *required* | ", f);
			} else if (!*k->def) {
				fputs(" | `\"\"` | ", f);
			} else {
				fputs(" | `", f);
				md_cell(f, k->def);
				fputs("` | ", f);
			}
			sk_conf_env_name(env, sizeof(env), secs[i].name, k->name);
			fprintf(f, "`%s` | %s | ", env, k->flags & SK_CONF_RELOAD ? "yes" : "no");
			md_cell(f, k->help);
			fputs(" |\n", f);
		}
	}
}

/* Reload */
