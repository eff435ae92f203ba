/* libFuzzer target for the presence documents (services/presence: pidf, policy,
 * winfo; libxml2 underneath). The first input byte picks options, the rest is a
 * document used as:
 * - a PUBLISH body (pidf_check);
 * - a publication composed with a seed one (RFC 4480's example), newer or older than
 *   it, and as the pidf-manipulation fallback with nothing published;
 * - a pres-rules document evaluated for a watcher, whose permissions then filter the
 *   composed document;
 * - a watcher display name and URI in a watcherinfo document.
 * Besides crashes, leaks and over-reads it checks the invariants the registrar relies
 * on: every composed or filtered document passes pidf_check again (well-formed,
 * namespaces declared, ids unique, entity the presentity's); a failed pidf_check
 * gives a reason; an evaluated action is one of the four; a built watcherinfo
 * document parses again. */
#include <libxml/parser.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "pidf.h"
#include "policy.h"
#include "skein/sk_mem.h"
#include "winfo.h"

static const char seed[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\n"
    "  xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\"\n"
    "  xmlns:r=\"urn:ietf:params:xml:ns:pidf:rpid\"\n"
    "  xmlns:c=\"urn:ietf:params:xml:ns:pidf:cipid\" entity=\"pres:someone@example.com\">\n"
    "  <tuple id=\"bs35r9\"><status><basic>open</basic></status>\n"
    "    <r:relationship><r:assistant/></r:relationship>\n"
    "    <contact priority=\"0.8\">sip:secretary@example.com</contact></tuple>\n"
    "  <dm:person id=\"p1\"><r:activities><r:away/></r:activities>\n"
    "    <r:mood><r:angry/></r:mood><c:display-name>S</c:display-name></dm:person>\n"
    "  <dm:device id=\"pc147\"><r:user-input idle-threshold=\"600\" "
    "last-input=\"2004-10-21T13:20:00.000-05:00\">idle</r:user-input>\n"
    "    <dm:deviceID>urn:device:0003ba4811e3</dm:deviceID></dm:device>\n"
    "</presence>\n";

static const char entity[] = "sip:someone@example.com";

/* A composed or filtered document must be one pidf_check takes, for the presentity. */
static void must_be_pidf(const char *doc)
{
	const char *why;

	if (!doc || pidf_check(doc, strlen(doc), &why))
		abort();
	if (!strstr(doc, "entity=\"sip:someone@example.com\""))
		abort();
}

static void filter_check(const char *doc, const struct pidf_permissions *p)
{
	char *out = NULL;

	if (pidf_filter(doc, strlen(doc), p, &out))
		abort(); /* it is our own output */
	must_be_pidf(out);
	sk_deref(out);
}

static void winfo_check(const char *s)
{
	struct winfo_watcher w = {"id1", s, s, WINFO_ACTIVE, WINFO_EV_APPROVED, 1, -1};
	struct winfo_list l = {"sip:someone@example.com", "presence", &w, 1};
	char *out = NULL;
	xmlDoc *d;

	if (winfo_build(1, true, &l, 1, &out))
		return;
	d = xmlReadMemory(out, (int)strlen(out), NULL, NULL,
			  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!d)
		abort();
	xmlFreeDoc(d);
	sk_deref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct pidf_pub pubs[2];
	struct pidf_permissions perm;
	struct policy_result r;
	struct policy_query q = {"sip:user@example.com", true, "work", 1795341600};
	const char *body = (const char *)data + 1, *why;
	size_t len = size ? size - 1 : 0;
	unsigned pick = size ? data[0] : 0;
	char *composed = NULL, *out = NULL, *str;

	if (!init) {
		xmlInitParser();
		init = true;
	}
	if (!size || size > 64 * 1024)
		return 0;

	/* As a PUBLISH body. */
	why = NULL;
	if (pidf_check(body, len, &why) && !why)
		abort();

	/* Composed with the seed, newer (its ids win) or older. */
	pubs[0] = (struct pidf_pub){seed, sizeof(seed) - 1, 10};
	pubs[1] = (struct pidf_pub){body, len, (pick & 1) ? 20 : 5};
	if (pidf_compose(pubs, 2, entity, NULL, 0, &composed))
		abort();
	must_be_pidf(composed);

	/* As the fallback with nothing published. */
	if (pidf_compose(NULL, 0, entity, body, len, &out))
		abort();
	must_be_pidf(out);
	out = sk_deref(out);

	/* Filtered with permissions from the option bits. */
	memset(&perm, 0, sizeof(perm));
	perm.all_services = pick & 2;
	perm.all_persons = pick & 4;
	perm.all_devices = pick & 8;
	perm.activities = perm.mood = pick & 16;
	perm.all_attributes = pick & 32;
	perm.user_input = (enum pidf_user_input)(pick >> 6);
	if (!(pick & 2)) {
		strcpy(perm.schemes[0], "sip");
		perm.nschemes = 1;
	}
	filter_check(composed, &perm);

	/* As a rules document; its permissions filter the composed document. */
	q.authenticated = pick & 1;
	if (!policy_eval(body, len, &q, POLICY_CONFIRM, &r, &why)) {
		if (!policy_action_name(r.action) || r.perm.nschemes > PIDF_SCHEMES_MAX)
			abort();
		filter_check(composed, &r.perm);
	} else if (!why && len) {
		abort();
	}
	composed = sk_deref(composed);

	/* As a watcher's URI and display name. */
	str = malloc(len + 1);
	if (!str)
		return 0;
	memcpy(str, body, len);
	str[len] = '\0';
	winfo_check(str);
	free(str);
	return 0;
}
