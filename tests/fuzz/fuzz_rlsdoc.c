/* libFuzzer target for the resource-list documents of the RLS (services/presence/
 * rlsdoc.h; libxml2 underneath): what an XCAP PUT stored and pres_rls.c reads back.
 * The first input byte picks the role of the rest:
 *   0 an rls-services document: its service URIs (rlsdoc_services), then the list of
 *     every service (rlsdoc_service_list) with its references parsed;
 *   1 a resource-lists document that a seed service's references are resolved
 *     against (rlsdoc_list_add);
 *   2 an XCAP URI reference (rlsdoc_ref_parse), followed into a seed resource-lists
 *     document when it parses.
 * Invariants checked besides crashes, leaks and over-reads: a refusal names its
 * fault; a list never holds more than RLSDOC_MAX_ENTRIES entries nor more than
 * RLSDOC_MAX_REFS references, every entry has a URI, and no URI appears twice. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "rlsdoc.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"

static const char seed_rls[] =
    "<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\" "
    "xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\">"
    "<service uri=\"sip:l@example.com\"><list>"
    "<rl:entry uri=\"sip:a@example.com\"/>"
    "<rl:external anchor=\"resource-lists/users/sip:joe@example.com/index/~~/"
    "resource-lists/list%5b@name=%22l1%22%5d\"/>"
    "<rl:entry-ref ref=\"resource-lists/users/sip:joe@example.com/index/~~/"
    "resource-lists/list%5b@name=%22l2%22%5d/entry%5b@uri=%22sip:p@example.com%22%5d\"/>"
    "</list></service></rls-services>";

static const char seed_rl[] =
    "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">"
    "<list name=\"l1\"><entry uri=\"sip:b@example.com\"/>"
    "<list name=\"in\"><entry uri=\"sip:c@example.com\"/></list></list>"
    "<list name=\"l2\"><entry uri=\"sip:p@example.com\"/></list></resource-lists>";

static bool any(const char *uri, void *arg)
{
	(void)uri;
	(void)arg;
	return true;
}

static void check_list(const struct rlsdoc_list *l)
{
	if (l->n > RLSDOC_MAX_ENTRIES || l->nrefs > RLSDOC_MAX_REFS)
		abort();
	for (size_t i = 0; i < l->n; i++) {
		if (!l->e[i].uri)
			abort();
		for (size_t j = 0; j < i; j++)
			if (!strcmp(l->e[i].uri, l->e[j].uri))
				abort();
	}
}

static void check_err(int err, const char *why)
{
	if (err == SK_EBADMSG && !why)
		abort();
}

/* Resolves l's references against doc (each parsed first), as pres_rls.c does. */
static void resolve(struct rlsdoc_list *l, const char *doc, size_t len)
{
	for (size_t i = 0; i < l->nrefs && i < RLSDOC_MAX_REFS; i++) {
		struct rlsdoc_ref ref;
		const char *why = NULL;

		if (rlsdoc_ref_parse(l->refs[i], &ref))
			continue;
		check_err(rlsdoc_list_add(l, doc, len, &ref, &why), why);
		check_list(l);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *doc;
	size_t len;
	struct rlsdoc_list *l = NULL;
	const char *why = NULL;
	char **v = NULL;
	size_t n = 0;
	int err;

	if (size < 1 || size > 65536)
		return 0;
	doc = (const char *)data + 1;
	len = size - 1;
	switch (data[0] % 3) {
	case 0:
		err = rlsdoc_services(doc, len, "presence", &v, &n, &why);
		check_err(err, why);
		if (!err)
			rlsdoc_strv_free(v, n);
		why = NULL;
		err = rlsdoc_service_list(doc, len, any, NULL, &l, &why);
		check_err(err, why);
		if (!err) {
			check_list(l);
			resolve(l, seed_rl, sizeof(seed_rl) - 1);
		}
		break;
	case 1:
		if (rlsdoc_service_list(seed_rls, sizeof(seed_rls) - 1, any, NULL, &l, &why))
			abort(); /* the seed is good */
		resolve(l, doc, len);
		break;
	default: {
		char *uri = malloc(len + 1);
		struct rlsdoc_ref ref;

		if (!uri)
			return 0;
		memcpy(uri, doc, len);
		uri[len] = 0;
		if (!rlsdoc_ref_parse(uri, &ref) &&
		    !rlsdoc_service_list(seed_rls, sizeof(seed_rls) - 1, any, NULL, &l, &why)) {
			why = NULL;
			check_err(rlsdoc_list_add(l, seed_rl, sizeof(seed_rl) - 1, &ref, &why), why);
			check_list(l);
		}
		free(uri);
		break;
	}
	}
	sk_deref(l);
	return 0;
}
