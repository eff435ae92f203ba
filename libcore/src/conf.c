/* Config tables: one typed table per section, applied from defaults, an INI file,
 * SKEIN_<SECTION>_<KEY> variables and --flags (--help and Markdown: conf_doc.c).
 *
 * No state lives here between calls: everything a load needs is on the stack or in
 * one allocation freed before returning, so loading a scratch copy for a reload, or
 * many loads in one test process, cannot see each other. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include "skein/sk_conf.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "conf_int.h"

/* A config file is a few kilobytes: the cap stops a mistyped path such as /dev/zero
 * or a large log from being read into memory. */
#define FILE_MAX (1024 * 1024)
/* Values are cut to this in messages, so that the key name after them stays visible. */
#define SHOW_MAX 52
/* sun_path includes the terminating NUL (unix(7)). */
#define UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

/* ASCII only: strcasecmp() and toupper() follow the locale (in tr_TR 'i' does not
 * upper-case to 'I'), and a key must map to the same variable everywhere. */
static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int upper(int c)
{
	return c >= 'a' && c <= 'z' ? c - ('a' - 'A') : c;
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* '\r' counts as blank so that files saved with CRLF line ends parse. */
static bool is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool ieq(const char *a, const char *b)
{
	while (*a && lower((unsigned char)*a) == lower((unsigned char)*b))
		a++, b++;
	return *a == *b;
}

static bool is_str(enum sk_conf_type t)
{
	return t == SK_CONF_STR || t == SK_CONF_ENUM || t == SK_CONF_ADDR;
}

static void *slot(const struct sk_conf_section *sec, const struct sk_conf_key *k)
{
	return (char *)sec->target + k->offset;
}

static int why_set(struct sk_conf_err *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int why_set(struct sk_conf_err *e, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->why, sizeof(e->why), fmt, ap);
	va_end(ap);
	return err;
}

static void why_append(struct sk_conf_err *e, const char *s)
{
	size_t len = strlen(e->why);

	snprintf(e->why + len, sizeof(e->why) - len, "%s", s);
}

static void where_set(struct sk_conf_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void where_set(struct sk_conf_err *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->where, sizeof(e->where), fmt, ap);
	va_end(ap);
}

/* A value as it goes into a message: cut short, with control bytes as '?' so that a
 * binary file given by mistake cannot garble the terminal. */
static const char *show(char *out, const char *s, size_t len)
{
	size_t i, max = SHOW_MAX - 4;

	if (len > max) {
		while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
			max--; /* do not cut a UTF-8 sequence */
	}
	for (i = 0; i < len && i < max; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	strcpy(out + i, i < len ? "..." : "");
	return out;
}

/* The environment variable of a key, SKEIN_<SECTION>_<KEY>. */
void sk_conf_env_name(char *buf, size_t size, const char *sec, const char *key)
{
	size_t i;

	snprintf(buf, size, "SKEIN_%s_%s", sec, key);
	for (i = 0; buf[i]; i++)
		buf[i] = (char)upper((unsigned char)buf[i]);
}

/* Parsers */

/* Digits only, at least one; SK_ERANGE past UINT64_MAX. */
static int parse_u64(const char *s, const char **end, uint64_t *v)
{
	uint64_t n = 0;

	if (!is_digit((unsigned char)*s))
		return SK_EINVAL;
	for (; is_digit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (n > (UINT64_MAX - d) / 10)
			return SK_ERANGE;
		n = n * 10 + d;
	}
	*end = s;
	*v = n;
	return 0;
}

static int parse_int(const char *s, int64_t *v)
{
	const char *end;
	bool neg = *s == '-';
	uint64_t n;
	int err;

	err = parse_u64(s + neg, &end, &n);
	if (err == SK_ERANGE) {
		/* still report trailing garbage as such, not as a range error */
		for (end = s + neg; is_digit((unsigned char)*end); end++)
			;
		return *end ? SK_EINVAL : SK_ERANGE;
	}
	if (err || *end)
		return SK_EINVAL;
	if (n > (uint64_t)INT64_MAX + neg)
		return SK_ERANGE;
	*v = neg ? (int64_t)(0 - n) : (int64_t)n;
	return 0;
}

int sk_conf_parse_duration(const char *s, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
		{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000},
	};
	const char *end;
	uint64_t v;
	size_t i;
	int err;

	if (!s)
		return SK_EINVAL;
	err = parse_u64(s, &end, &v);
	if (err)
		return err;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit))
			continue;
		if (v > UINT64_MAX / units[i].mult)
			return SK_ERANGE;
		*ms = v * units[i].mult;
		return 0;
	}
	return SK_EINVAL;
}

int sk_conf_parse_bool(const char *s, bool *b)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	size_t i;

	if (!s)
		return SK_EINVAL;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (ieq(s, yes[i])) {
			*b = true;
			return 0;
		}
		if (ieq(s, no[i])) {
			*b = false;
			return 0;
		}
	}
	return SK_EINVAL;
}

/* The shortest unit that states ms exactly: 3000 -> "3s", 1500 -> "1500ms". */
int sk_conf_duration_print(uint64_t ms, char *buf, size_t size)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {{"h", 3600 * 1000}, {"m", 60 * 1000}, {"s", 1000}};
	size_t i;

	for (i = 0; ms && i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms % units[i].mult == 0)
			return snprintf(buf, size, "%" PRIu64 "%s", ms / units[i].mult,
					units[i].unit);
	}
	return snprintf(buf, size, "%" PRIu64 "ms", ms);
}

/* "host:port", "[v6]:port" or "unix:/path"; 0 or non-zero with a reason in why. */
static int addr_check(const char *s, char *why, size_t size)
{
	const char *port, *p;
	uint64_t n;

	if (!strncmp(s, "unix:", 5)) {
		if (s[5] != '/')
			return snprintf(why, size, "the socket path must be absolute");
		if (strlen(s + 5) >= UNIX_PATH_MAX)
			return snprintf(why, size, "socket path longer than %zu bytes",
					UNIX_PATH_MAX - 1);
		return 0;
	}
	if (*s == '[') {
		char host[INET6_ADDRSTRLEN + 32], *pct; /* room for a zone (an interface name) */
		const char *close = strchr(s, ']');
		struct in6_addr a6;

		if (!close || close[1] != ':')
			return snprintf(why, size, "expected [v6]:port");
		if ((size_t)(close - s - 1) >= sizeof(host))
			return snprintf(why, size, "invalid IPv6 address");
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		/* a zone ("fe80::1%eth0") is kernel business: check only the address */
		pct = strchr(host, '%');
		if (pct) {
			if (!pct[1])
				return snprintf(why, size, "empty IPv6 zone");
			*pct = '\0';
		}
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return snprintf(why, size, "invalid IPv6 address");
		port = close + 2;
	} else {
		port = strrchr(s, ':');
		if (!port)
			return snprintf(why, size, "missing \":port\"");
		if (port == s)
			return snprintf(why, size, "missing host");
		for (p = s; p < port; p++) {
			if (*p == ':')
				return snprintf(why, size, "put IPv6 addresses in brackets");
			if (!is_alpha((unsigned char)*p) && !is_digit((unsigned char)*p) &&
			    *p != '.' && *p != '-' && *p != '_')
				return snprintf(why, size, "invalid character in host");
		}
		/* RFC 1035 section 2.3.4: names are at most 255 octets on the wire */
		if (port - s > 253)
			return snprintf(why, size, "host name too long");
		port++;
	}
	if (parse_u64(port, &p, &n) || *p)
		return snprintf(why, size, "invalid port");
	if (n > 65535)
		return snprintf(why, size, "port %" PRIu64 " out of range [0, 65535]", n);
	return 0;
}

/* Setting a key */

/* Parse val as k's type, run k->check, and only then store it: a bad value leaves the
 * target as it was. */
static int value_set(const struct sk_conf_section *sec, const struct sk_conf_key *k,
		     const char *val, struct sk_conf_err *e)
{
	char shown[SHOW_MAX], reason[96];
	const char *text = val, *why = NULL;
	const char *const *c;
	void *p = slot(sec, k);
	int64_t i = 0;
	uint64_t d = 0;
	bool b = false;
	char *s, *old;
	int err;

	show(shown, val, strlen(val));
	switch (k->type) {
	case SK_CONF_STR:
		break;
	case SK_CONF_INT:
		err = parse_int(val, &i);
		if (err == SK_EINVAL)
			return why_set(e, SK_ECONFIG, "invalid integer \"%s\" for %s", shown,
				       k->name);
		if (err || (k->min < k->max && (i < k->min || i > k->max)))
			return why_set(e, SK_ECONFIG,
				       "value %s out of range [%" PRId64 ", %" PRId64 "] for %s",
				       shown, k->min < k->max ? k->min : INT64_MIN,
				       k->min < k->max ? k->max : INT64_MAX, k->name);
		break;
	case SK_CONF_BOOL:
		if (sk_conf_parse_bool(val, &b))
			return why_set(e, SK_ECONFIG,
				       "invalid boolean \"%s\" for %s: use yes/no, true/false, "
				       "on/off or 1/0",
				       shown, k->name);
		break;
	case SK_CONF_DURATION:
		err = sk_conf_parse_duration(val, &d);
		if (err == SK_EINVAL)
			return why_set(e, SK_ECONFIG,
				       "invalid duration \"%s\" for %s: use e.g. 500ms, 3s, 2m",
				       shown, k->name);
		if (err)
			return why_set(e, SK_ECONFIG, "duration %s too long for %s", shown,
				       k->name);
		if (k->min < k->max && k->max >= 0 &&
		    (d > (uint64_t)k->max || (k->min > 0 && d < (uint64_t)k->min))) {
			char lo[32], hi[32];

			sk_conf_duration_print(k->min > 0 ? (uint64_t)k->min : 0, lo, sizeof(lo));
			sk_conf_duration_print((uint64_t)k->max, hi, sizeof(hi));
			return why_set(e, SK_ECONFIG, "value %s out of range [%s, %s] for %s",
				       shown, lo, hi, k->name);
		}
		break;
	case SK_CONF_ENUM:
		/* case-insensitive, stored as the table spells it */
		for (c = k->choices; c && *c && !ieq(val, *c); c++)
			;
		if (!c || !*c) {
			why_set(e, SK_ECONFIG, "invalid value \"%s\" for %s: use one of ", shown,
				k->name);
			for (c = k->choices; c && *c; c++) {
				if (c != k->choices)
					why_append(e, ", ");
				why_append(e, *c);
			}
			return SK_ECONFIG;
		}
		text = *c;
		break;
	case SK_CONF_ADDR:
		if (addr_check(val, reason, sizeof(reason)))
			return why_set(e, SK_ECONFIG,
				       "invalid address \"%s\" for %s: %s (use host:port, "
				       "[v6]:port or unix:/path)",
				       shown, k->name, reason);
		break;
	default:
		return why_set(e, SK_ECONFIG, "key %s has an unknown type %d", k->name,
			       (int)k->type);
	}
	if (k->check && k->check(text, &why))
		return why_set(e, SK_ECONFIG, "invalid value \"%s\" for %s: %s", shown, k->name,
			       why ? why : "rejected");

	switch (k->type) {
	case SK_CONF_INT:
		*(int64_t *)p = i;
		break;
	case SK_CONF_BOOL:
		*(bool *)p = b;
		break;
	case SK_CONF_DURATION:
		*(uint64_t *)p = d;
		break;
	default:
		s = sk_strdup(text);
		if (!s)
			return why_set(e, SK_ENOMEM, "out of memory");
		old = *(char **)p;
		*(char **)p = s;
		sk_deref(old);
		break;
	}
	return 0;
}

static const struct sk_conf_key *key_find(const struct sk_conf_section *sec,
					  const char *name, size_t len)
{
	const struct sk_conf_key *k;

	for (k = sec->keys; k->name; k++) {
		if (!strncmp(k->name, name, len) && !k->name[len])
			return k;
	}
	return NULL;
}

/* Catch a broken table at the first start-up rather than at the first SIGHUP. */
static int table_check(const struct sk_conf_section *sec, struct sk_conf_err *e)
{
	const struct sk_conf_key *k, *j;
	const char *p;

	for (p = sec->name; p && is_alpha((unsigned char)*p); p++)
		;
	if (!sec->name || !*sec->name || *p)
		return why_set(e, SK_ECONFIG, "section name \"%s\" must be letters only",
			       sec->name ? sec->name : "(null)");
	for (k = sec->keys; k->name; k++) {
		for (p = k->name; (*p >= 'a' && *p <= 'z') || is_digit(*p) || *p == '_'; p++)
			;
		if (!*k->name || *p)
			return why_set(e, SK_ECONFIG,
				       "key \"%s\": use lower-case letters, digits and '_'",
				       k->name);
		for (j = sec->keys; j < k; j++) {
			if (!strcmp(j->name, k->name))
				return why_set(e, SK_ECONFIG, "key %s listed twice", k->name);
		}
		/* Only a string can say "never set" (NULL), so only strings can be
		 * required; a required number would need a sentinel value. */
		if ((k->flags & SK_CONF_REQUIRED) && !is_str(k->type))
			return why_set(e, SK_ECONFIG,
				       "key %s: only STR, ENUM and ADDR keys can be required",
				       k->name);
		if (!!(k->flags & SK_CONF_REQUIRED) == !!k->def)
			return why_set(e, SK_ECONFIG,
				       "key %s: give a default or SK_CONF_REQUIRED, not both "
				       "or neither",
				       k->name);
		if (k->type == SK_CONF_ENUM && (!k->choices || !k->choices[0]))
			return why_set(e, SK_ECONFIG, "key %s: an ENUM needs choices", k->name);
	}
	return 0;
}

int sk_conf_defaults(const struct sk_conf_section *secs, size_t n, struct sk_conf_err *e)
{
	const struct sk_conf_key *k;
	struct sk_conf_err scratch;
	size_t i;
	int err;

	if (!e)
		e = &scratch;
	for (i = 0; i < n; i++) {
		err = table_check(&secs[i], e);
		if (err)
			goto fail;
		for (k = secs[i].keys; k->name; k++) {
			if (k->flags & SK_CONF_REQUIRED) {
				*(char **)slot(&secs[i], k) =
					sk_deref(*(char **)slot(&secs[i], k));
				continue;
			}
			err = value_set(&secs[i], k, k->def, e);
			if (err)
				goto fail;
		}
	}
	return 0;
fail:
	where_set(e, "default [%s]", secs[i].name ? secs[i].name : "(null)");
	return err;
}

/* The INI file */

struct ini {
	const struct sk_conf_section *secs;
	size_t n;
	const char *const *skip;
	const char *path;
	struct sk_conf_err *e;
	unsigned line;
	const struct sk_conf_section *sec; /* NULL: before any header, or skipping */
	bool skipping;
	unsigned *first; /* line each key was set on, 0 if not yet; per section from base */
	size_t base;
};

static int ini_err(struct ini *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ini_err(struct ini *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st->e->why, sizeof(st->e->why), fmt, ap);
	va_end(ap);
	where_set(st->e, "%s:%u", st->path, st->line);
	return SK_ECONFIG;
}

static int ini_section(struct ini *st, char *s)
{
	char *close = strchr(s, ']'), *end, *rest, shown[SHOW_MAX];
	const char *const *sk;
	size_t i, base = 0;
	const struct sk_conf_key *k;

	if (!close)
		return ini_err(st, "unterminated section header");
	for (rest = close + 1; is_blank(*rest); rest++)
		;
	if (*rest && *rest != '#' && *rest != ';')
		return ini_err(st, "unexpected text after section header");
	for (s++; is_blank(*s); s++)
		;
	for (end = close; end > s && is_blank(end[-1]); end--)
		;
	*end = '\0';
	if (!*s)
		return ini_err(st, "empty section header");
	for (i = 0; i < st->n; i++) {
		if (!strcmp(s, st->secs[i].name)) {
			st->sec = &st->secs[i];
			st->skipping = false;
			st->base = base;
			return 0;
		}
		for (k = st->secs[i].keys; k->name; k++)
			base++;
	}
	for (sk = st->skip; sk && *sk; sk++) {
		if (!strcmp(s, *sk)) {
			st->sec = NULL;
			st->skipping = true;
			return 0;
		}
	}
	return ini_err(st, "unknown section [%s]", show(shown, s, strlen(s)));
}

/* The value after '=': quoted (unescaped in place) or bare, comment removed. */
static int ini_value(struct ini *st, char *v, char **out)
{
	char *r, *w;

	for (; is_blank(*v); v++)
		;
	if (*v == '"') {
		for (r = v + 1, w = v; *r != '"'; *w++ = *r++) {
			if (!*r)
				return ini_err(st, "unterminated quoted value");
			if (*r != '\\')
				continue;
			if (!r[1])
				return ini_err(st, "unterminated quoted value");
			if (r[1] != '"' && r[1] != '\\')
				return ini_err(st, "unknown escape \"\\%c\" in quoted value "
						   "(only \\\" and \\\\)",
					       r[1] > ' ' && r[1] < 0x7f ? r[1] : '?');
			r++;
		}
		*w = '\0';
		for (r++; is_blank(*r); r++)
			;
		if (*r && *r != '#' && *r != ';')
			return ini_err(st, "unexpected text after quoted value");
		*out = v;
		return 0;
	}
	/* A '#' that starts the value or follows a blank starts a comment; elsewhere, as
	 * in "sip:a#b", it is part of the value. */
	for (r = v; *r; r++) {
		if (*r == '#' && (r == v || is_blank(r[-1]))) {
			*r = '\0';
			break;
		}
	}
	for (w = v + strlen(v); w > v && is_blank(w[-1]); w--)
		;
	*w = '\0';
	*out = v;
	return 0;
}

static int ini_line(struct ini *st, char *s)
{
	const struct sk_conf_key *k;
	char *eq, *end, *val = NULL;
	unsigned *first;
	int err;

	for (; is_blank(*s); s++)
		;
	if (!*s || *s == '#' || *s == ';')
		return 0;
	if (*s == '[')
		return ini_section(st, s);
	eq = strchr(s, '=');
	for (end = eq; end && end > s && is_blank(end[-1]); end--)
		;
	if (!eq || end == s)
		return ini_err(st, "expected \"key = value\"");
	*end = '\0';
	if (!st->sec && !st->skipping)
		return ini_err(st, "key before any [section]");
	err = ini_value(st, eq + 1, &val);
	if (err || st->skipping)
		return err; /* other daemons check the keys of their sections */
	k = key_find(st->sec, s, strlen(s));
	if (!k) {
		char shown[SHOW_MAX];

		return ini_err(st, "unknown key \"%s\" in section [%s]",
			       show(shown, s, strlen(s)), st->sec->name);
	}
	first = &st->first[st->base + (size_t)(k - st->sec->keys)];
	if (*first)
		return ini_err(st, "key \"%s\" set twice in [%s] (first at line %u)", k->name,
			       st->sec->name, *first);
	*first = st->line;
	err = value_set(st->sec, k, val, st->e);
	if (err)
		where_set(st->e, "%s:%u", st->path, st->line);
	return err;
}

/* The whole file into one NUL-terminated buffer. */
static int file_read(const char *path, char **bufp, size_t *lenp, struct sk_conf_err *e)
{
	size_t len = 0, cap = 0, got;
	char *buf = NULL, *nbuf;
	int err = 0;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return why_set(e, SK_ECONFIG, "%s", strerror(errno));
	for (;;) {
		if (cap - len < 2) {
			cap = cap ? cap * 2 : 4096;
			nbuf = sk_realloc(buf, cap);
			if (!nbuf) {
				err = why_set(e, SK_ENOMEM, "out of memory");
				goto out;
			}
			buf = nbuf;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (len > FILE_MAX) {
			err = why_set(e, SK_ECONFIG, "larger than %d bytes", FILE_MAX);
			goto out;
		}
		if (got)
			continue;
		if (ferror(f))
			err = why_set(e, SK_ECONFIG, "%s", strerror(errno));
		break;
	}
out:
	fclose(f);
	if (err) {
		sk_deref(buf);
		return err;
	}
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	return 0;
}

int sk_conf_file(const struct sk_conf_section *secs, size_t n, const char *path,
		 const char *const *skip, struct sk_conf_err *e)
{
	struct sk_conf_err scratch;
	struct ini st = {0};
	const struct sk_conf_key *k;
	size_t i, len = 0, nkeys = 0;
	char *buf = NULL, *p, *nl;
	int err;

	if (!e)
		e = &scratch;
	err = file_read(path, &buf, &len, e);
	if (err) {
		where_set(e, "%s", path);
		return err;
	}
	for (i = 0; i < n; i++) {
		for (k = secs[i].keys; k->name; k++)
			nkeys++;
	}
	st = (struct ini){.secs = secs, .n = n, .skip = skip, .path = path, .e = e};
	st.first = sk_zalloc_array(nkeys + 1, sizeof(*st.first), NULL);
	if (!st.first) {
		where_set(e, "%s", path);
		err = why_set(e, SK_ENOMEM, "out of memory");
		goto out;
	}
	p = buf;
	if (len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
		p += 3; /* a UTF-8 byte order mark, as some Windows editors write */
	for (; p < buf + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(buf + len - p));
		if (!nl)
			nl = buf + len;
		*nl = '\0';
		st.line++;
		if (strlen(p) != (size_t)(nl - p)) {
			err = ini_err(&st, "NUL byte in line");
			goto out;
		}
		err = ini_line(&st, p);
		if (err)
			goto out;
	}
out:
	sk_deref(st.first);
	sk_deref(buf);
	return err;
}

/* Environment and flags */

/* If env (up to its '=') starts with SKEIN_<SECTION>_, where it names the key. */
static const char *env_match(const char *env, const char *eq, const char *sec)
{
	const char *p = env + 6;

	for (; *sec; sec++, p++) {
		if (p >= eq || *p != upper((unsigned char)*sec))
			return NULL;
	}
	return p < eq && *p == '_' ? p + 1 : NULL;
}

int sk_conf_env(const struct sk_conf_section *secs, size_t n, char *const *envp,
		struct sk_conf_err *e)
{
	char lowered[SHOW_MAX], shown[SHOW_MAX];
	const struct sk_conf_key *k;
	struct sk_conf_err scratch;
	const char *eq, *key, *p;
	size_t i, j, len;
	int err;

	if (!e)
		e = &scratch;
	for (; envp && *envp; envp++) {
		if (strncmp(*envp, "SKEIN_", 6))
			continue;
		eq = strchr(*envp, '=');
		if (!eq)
			continue;
		/* Section names are letters only, so at most one section matches. */
		for (i = 0; i < n; i++) {
			key = env_match(*envp, eq, secs[i].name);
			if (key)
				break;
		}
		if (i == n)
			continue;
		len = (size_t)(eq - key);
		for (k = secs[i].keys; k->name; k++) {
			for (j = 0, p = key; j < len && k->name[j] &&
					     *p == upper((unsigned char)k->name[j]);
			     j++, p++)
				;
			if (j == len && !k->name[j])
				break;
		}
		if (!k->name) {
			for (j = 0; j < len && j < sizeof(lowered) - 1; j++)
				lowered[j] = (char)lower((unsigned char)key[j]);
			lowered[j] = '\0';
			err = why_set(e, SK_ECONFIG, "unknown key \"%s\" in section [%s]",
				      show(shown, lowered, strlen(lowered)), secs[i].name);
		} else {
			err = value_set(&secs[i], k, eq + 1, e);
		}
		if (err) {
			where_set(e, "env %.*s", (int)(eq - *envp), *envp);
			return err;
		}
	}
	return 0;
}

int sk_conf_flag(const struct sk_conf_section *secs, size_t n, const char *arg,
		 struct sk_conf_err *e)
{
	const struct sk_conf_section *sec = NULL;
	const struct sk_conf_key *k = NULL;
	char shown[SHOW_MAX];
	struct sk_conf_err scratch;
	const char *eq, *dot, *key;
	size_t i, len;
	int err;

	if (!e)
		e = &scratch;
	eq = strchr(arg, '=');
	len = eq ? (size_t)(eq - arg) : strlen(arg);
	where_set(e, "--%.*s", (int)len, arg);
	if (!eq)
		return why_set(e, SK_ECONFIG, "expected --key=value");
	dot = memchr(arg, '.', len);
	key = dot ? dot + 1 : arg;
	if (dot) {
		for (i = 0; i < n && !sec; i++) {
			if (!strncmp(secs[i].name, arg, (size_t)(dot - arg)) &&
			    !secs[i].name[dot - arg])
				sec = &secs[i];
		}
		if (!sec)
			return why_set(e, SK_ECONFIG, "unknown section [%s]",
				       show(shown, arg, (size_t)(dot - arg)));
		k = key_find(sec, key, (size_t)(eq - key));
	} else {
		/* the daemon's own section first, then [cluster] and the rest */
		for (i = 0; i < n && !k; i++) {
			sec = &secs[i == 0 ? n - 1 : i - 1];
			k = key_find(sec, key, len);
		}
	}
	if (!k)
		return why_set(e, SK_ECONFIG, "unknown key \"%s\"%s%s%s",
			       show(shown, key, (size_t)(eq - key)), dot ? " in section [" : "",
			       dot ? sec->name : "", dot ? "]" : "");
	err = value_set(sec, k, eq + 1, e);
	return err;
}

int sk_conf_check_required(const struct sk_conf_section *secs, size_t n,
			   struct sk_conf_err *e)
{
	const struct sk_conf_key *k;
	struct sk_conf_err scratch;
	char env[128];
	const char *s;
	size_t i;

	if (!e)
		e = &scratch;
	for (i = 0; i < n; i++) {
		for (k = secs[i].keys; k->name; k++) {
			if (!(k->flags & SK_CONF_REQUIRED))
				continue;
			if (!is_str(k->type)) {
				where_set(e, "default [%s]", secs[i].name);
				return why_set(e, SK_ECONFIG,
					       "key %s: only STR, ENUM and ADDR keys can be "
					       "required",
					       k->name);
			}
			/* NULL is "never set"; an empty string is no better */
			s = *(char **)slot(&secs[i], k);
			if (s && *s)
				continue;
			sk_conf_env_name(env, sizeof(env), secs[i].name, k->name);
			where_set(e, "[%s]", secs[i].name);
			return why_set(e, SK_ECONFIG,
				       "required key \"%s\" is not set: set it in the file, "
				       "in %s or with --%s.%s=",
				       k->name, env, secs[i].name, k->name);
		}
	}
	return 0;
}

void sk_conf_release(const struct sk_conf_section *secs, size_t n)
{
	const struct sk_conf_key *k;
	size_t i;

	for (i = 0; i < n; i++) {
		for (k = secs[i].keys; k->name; k++) {
			if (is_str(k->type))
				*(char **)slot(&secs[i], k) = sk_deref(*(char **)slot(&secs[i], k));
		}
	}
}

/* Output */

/* Quoted only when the bare form would read back differently (see ini_value). */
static bool needs_quotes(const char *s)
{
	size_t len = strlen(s), i;

	if (!len || is_blank(s[0]) || is_blank(s[len - 1]) || s[0] == '"' || s[0] == '#')
		return true;
	for (i = 1; i < len; i++) {
		if ((s[i] == '#' && is_blank(s[i - 1])) || s[i] == '\n')
			return true;
	}
	return false;
}

static int str_print(const char *s, char *buf, size_t size)
{
	size_t len = 0;

	if (!needs_quotes(s))
		return snprintf(buf, size, "%s", s);
#define PUT(c)                           \
	do {                             \
		if (len + 1 < size)      \
			buf[len] = (c);  \
		len++;                   \
	} while (0)
	PUT('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			PUT('\\');
		PUT(*s);
	}
	PUT('"');
#undef PUT
	if (size)
		buf[len < size ? len : size - 1] = '\0';
	return len > INT32_MAX ? -1 : (int)len;
}

int sk_conf_value_print(const struct sk_conf_section *sec, const struct sk_conf_key *k,
			char *buf, size_t size)
{
	void *p = slot(sec, k);
	int len;

	switch (k->type) {
	case SK_CONF_INT:
		len = snprintf(buf, size, "%" PRId64, *(int64_t *)p);
		break;
	case SK_CONF_BOOL:
		len = snprintf(buf, size, "%s", *(bool *)p ? "yes" : "no");
		break;
	case SK_CONF_DURATION:
		len = sk_conf_duration_print(*(uint64_t *)p, buf, size);
		break;
	default:
		len = str_print(*(char **)p ? *(char **)p : "", buf, size);
		break;
	}
	return len < 0 || (size_t)len >= size ? SK_EMSGSIZE : 0;
}

static bool value_same(const struct sk_conf_key *k, const void *a, const void *b)
{
	const char *sa, *sb;

	switch (k->type) {
	case SK_CONF_INT:
		return *(const int64_t *)a == *(const int64_t *)b;
	case SK_CONF_BOOL:
		return *(const bool *)a == *(const bool *)b;
	case SK_CONF_DURATION:
		return *(const uint64_t *)a == *(const uint64_t *)b;
	default:
		sa = *(char *const *)a;
		sb = *(char *const *)b;
		return sa == sb || (sa && sb && !strcmp(sa, sb));
	}
}

int sk_conf_reload(const struct sk_conf_section *live, const struct sk_conf_section *fresh,
		   size_t n, sk_conf_changed_cb *cb, void *arg)
{
	const struct sk_conf_key *k;
	void *lp, *fp;
	int applied = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		for (k = live[i].keys; k->name; k++) {
			lp = slot(&live[i], k);
			fp = slot(&fresh[i], k);
			if (value_same(k, lp, fp))
				continue;
			if (!(k->flags & SK_CONF_RELOAD)) {
				if (cb)
					cb(live[i].name, k, false, arg);
				continue;
			}
			switch (k->type) {
			case SK_CONF_INT:
				*(int64_t *)lp = *(int64_t *)fp;
				break;
			case SK_CONF_BOOL:
				*(bool *)lp = *(bool *)fp;
				break;
			case SK_CONF_DURATION:
				*(uint64_t *)lp = *(uint64_t *)fp;
				break;
			default:
				/* the string moves: fresh no longer owns it */
				sk_deref(*(char **)lp);
				*(char **)lp = *(char **)fp;
				*(char **)fp = NULL;
				break;
			}
			applied++;
			if (cb)
				cb(live[i].name, k, true, arg);
		}
	}
	return applied;
}
