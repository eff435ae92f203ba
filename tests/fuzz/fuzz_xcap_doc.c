/* libFuzzer target for the XCAP document handling (services/xcap/xcap_doc, xcap_auid,
 * libxml2 underneath): the input's first byte picks an application usage, the rest
 * is a request body. It is PUT as a whole document, as an element and as an attribute
 * into a seed document (RFC 4826's example), and the result is read back with GET.
 *
 * Besides crashes, leaks and over-reads it checks the invariants the server relies on:
 * - a write is 200/201 with a document to store, and what is stored is a document the
 *   same usage accepts again (well-formed, its root, its uniqueness constraints);
 * - a failure writes nothing and a 409 carries an xcap-error body;
 * - after an element PUT the URI selects exactly the new element (GET gives 200), after
 *   an attribute PUT the attribute reads back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "xcap_doc.h"

static const char seed[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">\n"
    "  <list name=\"friends\">\n"
    "    <entry uri=\"sip:bill@example.com\"><display-name>Bill</display-name></entry>\n"
    "    <list name=\"close\"><entry uri=\"sip:joe@example.com\"/></list>\n"
    "  </list>\n"
    "</resource-lists>\n";

static const char *const auids[] = {"resource-lists", "rls-services", "pres-rules",
				    "pidf-manipulation"};

static const char *const sels[] = {
    "resource-lists/list[@name=\"friends\"]/entry[@uri=\"sip:new@example.com\"]",
    "resource-lists/list/entry[2]",
    "resource-lists/list/*[1]",
    "resource-lists/list[@name=\"friends\"]/list[@name=\"close\"]",
};

static void parse(struct xcap_uri *u, const char *auid, const char *sel)
{
	char path[512];

	strcpy(path, "/xcap/");
	strcat(path, auid);
	strcat(path, "/users/sip:a@b.c/index");
	if (sel) {
		strcat(path, "/~~/");
		strcat(path, sel);
	}
	if (xcap_uri_parse(u, "/xcap", path, NULL))
		abort();
}

static void check_result(const struct xcap_auid *a, const struct xcap_result *r)
{
	if (r->write) {
		struct xcap_uri u;
		struct xcap_result again;

		if (r->status != 200 && r->status != 201)
			abort();
		/* What was stored is accepted again as a whole document. */
		parse(&u, a->auid, NULL);
		if (xcap_doc_apply(a, &u, "PUT", NULL, 0, r->doc.data ? r->doc.data : "",
				   r->doc.len, NULL, &again))
			return;
		if (again.status != 201)
			abort();
		xcap_result_release(&again);
	} else if (r->status == 409 && (!r->body.data || !strstr(r->body.data, "<xcap-error"))) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	static struct xcap_uri u;
	const struct xcap_auid *a, *rl = xcap_auid_find("resource-lists");
	struct xcap_result r, g;
	const char *body = (const char *)data + 1;
	size_t len = size ? size - 1 : 0;
	unsigned pick = size ? data[0] : 0;

	if (!init) {
		xcap_doc_init();
		init = true;
	}
	if (!size || size > 64 * 1024)
		return 0;

	/* As a whole document of the usage the first byte picks. */
	a = xcap_auid_find(auids[pick % 4]);
	parse(&u, a->auid, NULL);
	if (!xcap_doc_apply(a, &u, "PUT", NULL, 0, body, len, NULL, &r)) {
		check_result(a, &r);
		xcap_result_release(&r);
	}

	/* As an element into the seed, then GET of the same selector. */
	parse(&u, rl->auid, sels[(pick >> 2) % 4]);
	if (!xcap_doc_apply(rl, &u, "PUT", seed, sizeof(seed) - 1, body, len, NULL, &r)) {
		check_result(rl, &r);
		if (r.write) {
			if (xcap_doc_apply(rl, &u, "GET", r.doc.data, r.doc.len, NULL, 0, NULL, &g))
				abort();
			if (g.status != 200)
				abort();
			xcap_result_release(&g);
		}
		xcap_result_release(&r);
	}

	/* As an attribute value. */
	parse(&u, rl->auid,
	      (pick >> 4) & 1 ? "resource-lists/list/entry/@uri" : "resource-lists/list/list/@x");
	if (!xcap_doc_apply(rl, &u, "PUT", seed, sizeof(seed) - 1, body, len, NULL, &r)) {
		check_result(rl, &r);
		if (r.write) {
			if (xcap_doc_apply(rl, &u, "GET", r.doc.data, r.doc.len, NULL, 0, NULL, &g))
				abort();
			if (g.status != 200)
				abort();
			xcap_result_release(&g);
		}
		xcap_result_release(&r);
	}
	return 0;
}
