/* libFuzzer target for the XCAP URI and node-selector parser (services/xcap/xcap_uri):
 * the input is "path" or "path?query" as an HTTP request-target would carry it, under
 * the root "/xcap"; then the part after the first NUL byte, if any, as a bare node
 * selector. Besides crashes and over-reads it checks what the server relies on: every
 * string field is NUL-terminated within its array, counts stay within their arrays,
 * a step is a name or "*", a position is 1..1000000, the selector text is the input's
 * selector, and every prefix a parsed selector uses is bound by the query. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "xcap_uri.h"

static void terminated(const char *s, size_t size)
{
	if (!memchr(s, '\0', size))
		abort();
}

static void check(const struct xcap_uri *u, int rc, bool with_query)
{
	if (rc)
		return;
	terminated(u->auid, sizeof(u->auid));
	terminated(u->xui, sizeof(u->xui));
	terminated(u->doc, sizeof(u->doc));
	terminated(u->selector, sizeof(u->selector));
	if (u->nsteps > XCAP_STEPS_MAX || u->nns > XCAP_NS_MAX)
		abort();
	if (u->node != XCAP_NODE_DOC && !u->nsteps)
		abort();
	for (unsigned i = 0; i < u->nsteps; i++) {
		const struct xcap_step *st = &u->step[i];

		terminated(st->name, sizeof(st->name));
		terminated(st->prefix, sizeof(st->prefix));
		terminated(st->attr_value, sizeof(st->attr_value));
		if (!st->name[0] || st->pos > 1000000)
			abort();
		if (st->has_attr && !st->attr_name[0])
			abort();
		if (with_query && st->prefix[0] && !xcap_uri_ns(u, st->prefix))
			abort();
	}
	if (u->node == XCAP_NODE_ATTR && !u->attr_name[0])
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct xcap_uri u;
	char *buf, *q, *sel;
	size_t n;
	int rc;

	if (size > 4096)
		return 0;
	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	n = strlen(buf);
	sel = n < size ? buf + n + 1 : NULL;
	q = strchr(buf, '?');
	if (q)
		*q++ = '\0';
	rc = xcap_uri_parse(&u, "/xcap", buf, q);
	check(&u, rc, true);
	if (sel) {
		memset(&u, 0, sizeof(u));
		rc = xcap_uri_parse_selector(&u, sel);
		check(&u, rc, false);
		if (!rc && strcmp(u.selector, sel))
			abort();
	}
	free(buf);
	return 0;
}
