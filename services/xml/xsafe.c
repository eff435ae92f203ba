/* xsafe: safe libxml2 parsing and small tree helpers (xsafe.h). */
#include <libxml/parser.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include "xsafe.h"
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"

/* No network, no DTD loading, no entity substitution (XML_PARSE_NOENT stays off: an
 * entity is never expanded into the tree, so no XXE and no billion laughs; a DTD is
 * refused outright below), no error printing: the outcome is the phrase. As xcap_doc. */
#define PARSE_OPTS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA)

/* Strict UTF-8 of XML Chars (XML 1.0 §2.2): no overlong forms, no surrogates, nothing
 * above U+10FFFF, no U+FFFE/U+FFFF. libxml2's xmlCheckUTF8 lets overlong forms
 * through, and a value it would not parse back must never be stored. */
static bool utf8_ok(const unsigned char *s)
{
	while (s && *s) {
		unsigned long cp;
		int n;

		if (*s < 0x80) {
			s++;
			continue;
		}
		if ((*s & 0xe0) == 0xc0)
			cp = *s & 0x1f, n = 1;
		else if ((*s & 0xf0) == 0xe0)
			cp = *s & 0x0f, n = 2;
		else if ((*s & 0xf8) == 0xf0)
			cp = *s & 0x07, n = 3;
		else
			return false;
		for (int i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)
			return false;
		s += n + 1;
	}
	return true;
}

/* Namespace well-formedness (Namespaces in XML §5) and UTF-8 of every value: libxml2
 * keeps an element with an undeclared prefix as "p:x" in no namespace (it would not
 * parse again once copied), and writes '<' or '&' in a namespace name back unescaped
 * (both found by fuzz_xcap_doc). Iterative: depth is bounded by libxml2 (256) but
 * recursion is not needed. */
static const char *tree_ok(xmlNode *top)
{
	xmlNode *n = top;

	while (n) {
		if (n->type == XML_ELEMENT_NODE) {
			if (!n->ns && strchr((const char *)n->name, ':'))
				return "undeclared namespace prefix";
			for (xmlNs *d = n->nsDef; d; d = d->next)
				if (d->href && strpbrk((const char *)d->href, "<&"))
					return "'<' or '&' in a namespace name";
			for (xmlAttr *a = n->properties; a; a = a->next) {
				if (!a->ns && strchr((const char *)a->name, ':'))
					return "undeclared namespace prefix";
				for (xmlNode *t = a->children; t; t = t->next)
					if (t->content && !utf8_ok(t->content))
						return "invalid UTF-8";
			}
			if (n->children) {
				n = n->children;
				continue;
			}
		} else if (n->content && !utf8_ok(n->content)) {
			return "invalid UTF-8";
		}
		while (n != top && !n->next)
			n = n->parent;
		if (n == top)
			break;
		n = n->next;
	}
	return NULL;
}

/* libxml2 reports encoding conversion failures through the generic error handler
 * whatever XML_PARSE_NOERROR says: silenced, the outcome is the phrase. */
static void silent(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

xmlDoc *xsafe_parse(const char *buf, size_t len, const char **why)
{
	const char *dummy, *bad = NULL;
	xmlDoc *doc;

	if (!why)
		why = &dummy;
	if (!buf || !len) {
		*why = "empty body";
		return NULL;
	}
	if (len > XSAFE_MAX) {
		*why = "document too large";
		return NULL;
	}
	xmlInitParser();
	xmlSetGenericErrorFunc(NULL, silent);
	doc = xmlReadMemory(buf, (int)len, NULL, NULL, PARSE_OPTS);
	if (!doc) {
		*why = "not well-formed XML";
		return NULL;
	}
	if (doc->intSubset || doc->extSubset)
		bad = "a document type declaration is not allowed";
	else if (doc->encoding && strcasecmp((const char *)doc->encoding, "UTF-8"))
		bad = "not UTF-8";
	else if (!xmlDocGetRootElement(doc))
		bad = "no root element";
	else
		bad = tree_ok(xmlDocGetRootElement(doc));
	if (bad) {
		*why = bad;
		xmlFreeDoc(doc);
		return NULL;
	}
	return doc;
}

bool xsafe_in(const xmlNode *n, const char *ns)
{
	return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
	       !strcmp((const char *)n->ns->href, ns);
}

bool xsafe_is(const xmlNode *n, const char *ns, const char *name)
{
	return xsafe_in(n, ns) && !strcmp((const char *)n->name, name);
}

xmlNode *xsafe_child(const xmlNode *n, const char *ns, const char *name)
{
	for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
		if (xsafe_is(c, ns, name))
			return c;
	return NULL;
}

void xsafe_text(const xmlNode *n, char *out, size_t size)
{
	xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
	const char *s = t ? (const char *)t : "";
	size_t len;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	len = strlen(s);
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' ||
		       s[len - 1] == '\n'))
		len--;
	if (len >= size)
		len = size - 1;
	memcpy(out, s, len);
	out[len] = '\0';
	xmlFree(t);
}

int xsafe_dump(xmlDoc *doc, char **outp)
{
	xmlChar *mem = NULL;
	int n = 0;

	xmlDocDumpFormatMemoryEnc(doc, &mem, &n, "UTF-8", 0);
	if (!mem)
		return SK_ENOMEM;
	*outp = sk_strndup((const char *)mem, (size_t)n);
	xmlFree(mem);
	return *outp ? 0 : SK_ENOMEM;
}

bool xsafe_utf8_ok(const char *s)
{
	return utf8_ok((const unsigned char *)s);
}

int xsafe_escape(struct sk_buf *b, const char *s)
{
	const char *run = s;

	if (!s || !utf8_ok((const unsigned char *)s))
		return SK_EINVAL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 && *p != '\t' && *p != '\r' && *p != '\n')
			return SK_EINVAL;
	for (const char *p = s; *p; p++) {
		const char *rep;

		switch (*p) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\t':
			rep = "&#9;";
			break;
		case '\n':
			rep = "&#10;";
			break;
		case '\r':
			rep = "&#13;";
			break;
		default:
			continue;
		}
		sk_buf_append(b, run, (size_t)(p - run));
		sk_buf_puts(b, rep);
		run = p + 1;
	}
	sk_buf_puts(b, run);
	return b->err;
}
