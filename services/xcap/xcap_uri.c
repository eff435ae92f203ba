/* xcap_uri: the XCAP URI and node-selector parser (RFC 4825 §6). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "skein/sk_err.h"
#include "xcap_uri.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int xcap_uri_unescape(char *out, size_t size, const char *in, size_t n)
{
	size_t o = 0;

	if (!size)
		return SK_ERANGE;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)in[i];

		if (c == '%') {
			int h, l;

			if (n - i < 3)
				return SK_EINVAL;
			h = hexval((unsigned char)in[i + 1]);
			l = h < 0 ? -1 : hexval((unsigned char)in[i + 2]);
			if (h < 0 || l < 0)
				return SK_EINVAL;
			c = h * 16 + l;
			i += 2;
		}
		if (c == 0)
			return SK_EINVAL;
		if (o + 1 >= size)
			return SK_ERANGE;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* NCName characters (XML Namespaces 1.0 §3), ASCII strictly; any byte >= 0x80 is
 * taken as part of a UTF-8 name character (libxml2 checks the document side). */
static int is_name_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static int is_name_char(unsigned char c)
{
	return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* An NCName at s[0..n): its length, 0 when none. */
static size_t ncname(const char *s, size_t n)
{
	size_t i = 0;

	if (!n || !is_name_start((unsigned char)s[0]))
		return 0;
	while (i < n && is_name_char((unsigned char)s[i]))
		i++;
	return i;
}

static int copy(char *dst, size_t size, const char *s, size_t n)
{
	if (n >= size)
		return SK_ERANGE;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/* QName = [prefix ":"] local, at s[0..n); the whole of it must be the QName. */
static int qname(const char *s, size_t n, char *prefix, char *local)
{
	size_t a = ncname(s, n), b;

	if (!a)
		return SK_EINVAL;
	if (a == n) {
		prefix[0] = '\0';
		return copy(local, XCAP_NAME_SIZE, s, n);
	}
	if (s[a] != ':')
		return SK_EINVAL;
	b = ncname(s + a + 1, n - a - 1);
	if (!b || a + 1 + b != n)
		return SK_EINVAL;
	if (copy(prefix, XCAP_NAME_SIZE, s, a))
		return SK_ERANGE;
	return copy(local, XCAP_NAME_SIZE, s + a + 1, b);
}

/* Appends code point cp as UTF-8. */
static int put_utf8(char *out, size_t size, size_t *o, unsigned long cp)
{
	char u[4];
	size_t n;

	/* XML 1.0 §2.2 Char: no C0 controls but TAB, LF, CR; no surrogates, no FFFE/FFFF. */
	if ((cp < 0x20 && cp != 0x9 && cp != 0xa && cp != 0xd) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)
		return SK_EINVAL;
	if (cp < 0x80) {
		u[0] = (char)cp, n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
	}
	if (*o + n >= size)
		return SK_ERANGE;
	memcpy(out + *o, u, n);
	*o += n;
	return 0;
}

/* AttValue of XML 1.0 §2.3 without its quotes (s[0..n)): '<' is not allowed, '&'
 * starts a predefined or character reference, decoded into out. */
int xcap_uri_attvalue(char *out, size_t size, const char *s, size_t n)
{
	static const struct {
		const char *ref;
		char c;
	} pre[] = {{"lt;", '<'}, {"gt;", '>'}, {"amp;", '&'}, {"quot;", '"'}, {"apos;", '\''}};
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		const char *semi;
		size_t k;
		int err;

		unsigned char b = (unsigned char)s[i];

		if (b == '<' || (b < 0x20 && b != '\t' && b != '\n' && b != '\r'))
			return SK_EINVAL;
		if (b != '&') {
			if (o + 1 >= size)
				return SK_ERANGE;
			out[o++] = s[i];
			continue;
		}
		semi = memchr(s + i, ';', n - i);
		if (!semi || semi - (s + i) > 10)
			return SK_EINVAL;
		k = (size_t)(semi - (s + i)) + 1; /* '&' ... ';' */
		if (s[i + 1] == '#') {
			unsigned long cp = 0;
			bool hex = i + 2 < n && s[i + 2] == 'x';
			size_t j = i + 2 + hex;

			if (j >= i + k - 1)
				return SK_EINVAL;
			for (; j < i + k - 1; j++) {
				int v = hex ? hexval((unsigned char)s[j])
					    : (s[j] >= '0' && s[j] <= '9' ? s[j] - '0' : -1);

				if (v < 0)
					return SK_EINVAL;
				cp = cp * (hex ? 16 : 10) + (unsigned long)v;
				if (cp > 0x10ffff)
					return SK_EINVAL;
			}
			err = put_utf8(out, size, &o, cp);
			if (err)
				return err;
		} else {
			size_t p;

			for (p = 0; p < sizeof(pre) / sizeof(pre[0]); p++)
				if (strlen(pre[p].ref) == k - 1 &&
				    !memcmp(s + i + 1, pre[p].ref, k - 1))
					break;
			if (p == sizeof(pre) / sizeof(pre[0]))
				return SK_EINVAL;
			if (o + 1 >= size)
				return SK_ERANGE;
			out[o++] = pre[p].c;
		}
		i += k - 1;
	}
	out[o] = '\0';
	return 0;
}

/* step = NameorAny ["[" position "]"] ["[" "@" att-name "=" AttValue "]"] */
static int parse_step(struct xcap_step *st, const char *s, size_t n)
{
	size_t i = 0;
	int err;

	memset(st, 0, sizeof(*st));
	while (i < n && s[i] != '[')
		i++;
	if (i == 1 && s[0] == '*')
		strcpy(st->name, "*");
	else if ((err = qname(s, i, st->prefix, st->name)))
		return err;
	if (i < n && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') {
		unsigned long v = 0;

		for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
			v = v * 10 + (unsigned long)(s[i] - '0');
			if (v > 1000000)
				return SK_EINVAL;
		}
		if (i >= n || s[i] != ']' || v == 0)
			return SK_EINVAL;
		st->pos = (unsigned)v;
		i++;
	}
	if (i < n) {
		size_t a, e;
		char q;

		/* "[@" QName "=" quote ... quote "]" */
		if (n - i < 6 || s[i] != '[' || s[i + 1] != '@' || s[n - 1] != ']')
			return SK_EINVAL;
		a = i + 2;
		for (e = a; e < n && s[e] != '='; e++)
			;
		if (e >= n - 3)
			return SK_EINVAL;
		err = qname(s + a, e - a, st->attr_prefix, st->attr_name);
		if (err)
			return err;
		q = s[e + 1];
		if ((q != '"' && q != '\'') || s[n - 2] != q || n - 2 < e + 2)
			return SK_EINVAL;
		if (memchr(s + e + 2, q, n - 2 - (e + 2)))
			return SK_EINVAL;
		err = xcap_uri_attvalue(st->attr_value, sizeof(st->attr_value), s + e + 2,
					n - 2 - (e + 2));
		if (err)
			return err;
		st->has_attr = true;
	}
	return 0;
}

int xcap_uri_parse_selector(struct xcap_uri *u, const char *sel)
{
	size_t len = strlen(sel), start = 0;
	char quote = 0;
	int err;

	u->nsteps = 0;
	u->node = XCAP_NODE_ELEM;
	if (copy(u->selector, sizeof(u->selector), sel, len))
		return SK_ERANGE;
	if (!len)
		return SK_EINVAL;
	/* Split on '/' outside quoted attribute values. */
	for (size_t i = 0; i <= len; i++) {
		const char *p = sel + start;
		size_t n = i - start;

		if (i < len) {
			if (quote) {
				if (sel[i] == quote)
					quote = 0;
				continue;
			}
			if (sel[i] == '"' || sel[i] == '\'') {
				quote = sel[i];
				continue;
			}
			if (sel[i] != '/')
				continue;
		}
		if (!n)
			return SK_EINVAL; /* "//" or a leading or trailing '/' */
		start = i + 1;
		if (i == len && u->nsteps && p[0] == '@') {
			u->node = XCAP_NODE_ATTR;
			return qname(p + 1, n - 1, u->attr_prefix, u->attr_name);
		}
		if (i == len && u->nsteps && n == 12 && !memcmp(p, "namespace::*", 12)) {
			u->node = XCAP_NODE_NS;
			return 0;
		}
		if (u->nsteps == XCAP_STEPS_MAX)
			return SK_ERANGE;
		err = parse_step(&u->step[u->nsteps], p, n);
		if (err)
			return err;
		u->nsteps++;
	}
	return quote ? SK_EINVAL : 0;
}

/* query = 1*( "xmlns(" prefix "=" namespace ")" ), §6.4 (the XPointer xmlns()
 * scheme), after percent-decoding. */
static int parse_query(struct xcap_uri *u, const char *query)
{
	char q[XCAP_SELECTOR_SIZE];
	const char *s = q;
	int err;

	if (!query || !*query)
		return 0;
	err = xcap_uri_unescape(q, sizeof(q), query, strlen(query));
	if (err)
		return err;
	while (*s) {
		const char *eq, *close;
		size_t pn;

		while (*s == ' ')
			s++;
		if (!*s)
			break;
		if (strncmp(s, "xmlns(", 6) || u->nns == XCAP_NS_MAX)
			return SK_EINVAL;
		s += 6;
		eq = strchr(s, '=');
		close = strchr(s, ')');
		if (!eq || !close || eq > close)
			return SK_EINVAL;
		pn = ncname(s, (size_t)(eq - s));
		if (!pn || pn != (size_t)(eq - s) || close == eq + 1)
			return SK_EINVAL;
		if (copy(u->ns[u->nns].prefix, XCAP_NAME_SIZE, s, pn) ||
		    copy(u->ns[u->nns].uri, XCAP_NSURI_SIZE, eq + 1, (size_t)(close - eq - 1)))
			return SK_ERANGE;
		u->nns++;
		s = close + 1;
	}
	return 0;
}

const char *xcap_uri_ns(const struct xcap_uri *u, const char *prefix)
{
	for (unsigned i = u->nns; i-- > 0;)
		if (!strcmp(u->ns[i].prefix, prefix))
			return u->ns[i].uri;
	return NULL;
}

/* Every prefix used by the selector is bound by the query (§6.4), else 400. */
static int check_prefixes(const struct xcap_uri *u)
{
	for (unsigned i = 0; i < u->nsteps; i++) {
		const struct xcap_step *st = &u->step[i];

		if ((st->prefix[0] && !xcap_uri_ns(u, st->prefix)) ||
		    (st->attr_prefix[0] && !xcap_uri_ns(u, st->attr_prefix)))
			return SK_EINVAL;
	}
	if (u->node == XCAP_NODE_ATTR && u->attr_prefix[0] && !xcap_uri_ns(u, u->attr_prefix))
		return SK_EINVAL;
	return 0;
}

/* Next '/'-separated segment of s[*i..n), decoded into out; 0 at the end. */
static int segment(const char *s, size_t n, size_t *i, char *out, size_t size)
{
	const char *slash;
	size_t len;
	int err;

	if (*i >= n)
		return SK_ENOENT;
	slash = memchr(s + *i, '/', n - *i);
	len = slash ? (size_t)(slash - (s + *i)) : n - *i;
	if (!len)
		return SK_EINVAL;
	err = xcap_uri_unescape(out, size, s + *i, len);
	if (err)
		return err;
	if (strchr(out, '/') || !strcmp(out, ".") || !strcmp(out, ".."))
		return SK_EINVAL; /* no escaped separators, no dot segments */
	*i += len + (slash ? 1 : 0);
	if (slash && *i == n)
		return SK_EINVAL; /* a trailing '/' */
	return 0;
}

int xcap_uri_parse(struct xcap_uri *u, const char *root, const char *path, const char *query)
{
	size_t rlen = root ? strlen(root) : 0, n, i = 0, dn = 0;
	const char *sel, *s;
	char seg[XCAP_DOC_SIZE];
	int err;

	memset(u, 0, sizeof(*u));
	if (!path)
		return SK_EINVAL;
	while (rlen && root[rlen - 1] == '/')
		rlen--;
	if (strncmp(path, root ? root : "", rlen) || path[rlen] != '/')
		return SK_ENOENT;
	s = path + rlen + 1;
	/* The node selector follows the "~~" segment (§6). */
	sel = strstr(s, "/~~/");
	n = sel ? (size_t)(sel - s) : strlen(s);
	if (!sel && n >= 3 && !strcmp(s + n - 3, "/~~"))
		return SK_EINVAL;

	if ((err = segment(s, n, &i, u->auid, sizeof(u->auid))))
		return err == SK_ERANGE ? SK_ENOENT : err;
	if ((err = segment(s, n, &i, seg, sizeof(seg))))
		return err;
	if (!strcmp(seg, "global")) {
		u->global = true;
	} else if (!strcmp(seg, "users")) {
		if ((err = segment(s, n, &i, u->xui, sizeof(u->xui))))
			return err;
	} else {
		return SK_ENOENT;
	}
	while (i < n) {
		if ((err = segment(s, n, &i, seg, sizeof(seg))))
			return err;
		if (strlen(seg) + (dn ? 1 : 0) + dn >= sizeof(u->doc))
			return SK_ERANGE;
		dn +=
		    (size_t)snprintf(u->doc + dn, sizeof(u->doc) - dn, "%s%s", dn ? "/" : "", seg);
	}
	if (!dn)
		return SK_ENOENT; /* a directory, not a document */

	if ((err = parse_query(u, query)))
		return err;
	if (!sel) {
		u->node = XCAP_NODE_DOC;
		return 0;
	}
	sel += 4;
	{
		char dec[XCAP_SELECTOR_SIZE];

		err = xcap_uri_unescape(dec, sizeof(dec), sel, strlen(sel));
		if (!err)
			err = xcap_uri_parse_selector(u, dec);
	}
	return err ? err : check_prefixes(u);
}
