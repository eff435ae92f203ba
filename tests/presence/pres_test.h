/* Shared by the presence tests: the example documents (argv[1]) and assertions on a
 * document re-parsed with libxml2 (XPath with the presence namespaces bound). */
#ifndef PRES_TEST_H
#define PRES_TEST_H

#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sk_test.h"

static const char *test_dir = ".";

/* The example file name under argv[1], NUL-terminated, malloc'd (*len its size). */
static inline char *load(const char *name, size_t *len)
{
	char path[1024];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", test_dir, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = (size_t)n;
	return buf;
}

static int parse_errors;

static inline void count_error(void *ctx, const xmlError *e)
{
	(void)ctx;
	(void)e;
	parse_errors++;
}

/* Re-parses an output document; any error or warning (an undeclared prefix is one)
 * fails the test. */
static inline xmlDoc *reparse(const char *s)
{
	xmlDoc *d;

	assert_non_null(s);
	parse_errors = 0;
	xmlSetStructuredErrorFunc(NULL, (xmlStructuredErrorFunc)count_error);
	d = xmlReadMemory(s, (int)strlen(s), NULL, NULL, XML_PARSE_NONET);
	xmlSetStructuredErrorFunc(NULL, NULL);
	if (!d || parse_errors)
		fail_msg("output does not re-parse cleanly (%d errors):\n%s", parse_errors, s);
	return d;
}

static inline xmlXPathObject *xpath(xmlDoc *d, const char *expr)
{
	xmlXPathContext *ctx = xmlXPathNewContext(d);
	xmlXPathObject *o;

	assert_non_null(ctx);
	xmlXPathRegisterNs(ctx, BAD_CAST "p", BAD_CAST "urn:ietf:params:xml:ns:pidf");
	xmlXPathRegisterNs(ctx, BAD_CAST "dm", BAD_CAST "urn:ietf:params:xml:ns:pidf:data-model");
	xmlXPathRegisterNs(ctx, BAD_CAST "r", BAD_CAST "urn:ietf:params:xml:ns:pidf:rpid");
	xmlXPathRegisterNs(ctx, BAD_CAST "c", BAD_CAST "urn:ietf:params:xml:ns:pidf:cipid");
	xmlXPathRegisterNs(ctx, BAD_CAST "caps", BAD_CAST "urn:ietf:params:xml:ns:pidf:caps");
	xmlXPathRegisterNs(ctx, BAD_CAST "im", BAD_CAST "urn:ietf:params:xml:ns:pidf:im");
	xmlXPathRegisterNs(ctx, BAD_CAST "x", BAD_CAST "http://vendor.example.com/x");
	xmlXPathRegisterNs(ctx, BAD_CAST "w", BAD_CAST "urn:ietf:params:xml:ns:watcherinfo");
	xmlXPathRegisterNs(ctx, BAD_CAST "rl", BAD_CAST "urn:ietf:params:xml:ns:rlmi");
	o = xmlXPathEvalExpression(BAD_CAST expr, ctx);
	xmlXPathFreeContext(ctx);
	if (!o)
		fail_msg("bad XPath %s", expr);
	return o;
}

/* How many nodes expr selects in d. */
static inline int count(xmlDoc *d, const char *expr)
{
	xmlXPathObject *o = xpath(d, expr);
	int n = o->nodesetval ? o->nodesetval->nodeNr : 0;

	xmlXPathFreeObject(o);
	return n;
}

/* string(expr) in d, into a static buffer. */
static inline const char *str(xmlDoc *d, const char *expr)
{
	static char buf[1024];
	char e[512];
	xmlXPathObject *o;

	snprintf(e, sizeof(e), "string(%s)", expr);
	o = xpath(d, e);
	snprintf(buf, sizeof(buf), "%s", o->stringval ? (const char *)o->stringval : "");
	xmlXPathFreeObject(o);
	return buf;
}

/* Occurrences of needle in s. */
static inline int occurs(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

#endif
