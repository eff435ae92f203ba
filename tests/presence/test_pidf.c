/* pidf_check, pidf_compose and pidf_filter on the example documents of RFC 3863,
 * RFC 4479, RFC 4480, RFC 4482/5196 (cipid_caps.xml) and RFC 4827; every output is
 * re-parsed and asserted on with XPath, namespaces included. */
#include "pres_test.h"
#include "pidf.h"
#include "skein/sk_err.h"

static int check_file(const char *name, const char **why)
{
	size_t len;
	char *s = load(name, &len);
	int err = pidf_check(s, len, why);

	free(s);
	return err;
}

static int check_str(const char *s, const char **why)
{
	*why = NULL;
	return pidf_check(s, strlen(s), why);
}

static void test_check_examples(void **state)
{
	static const char *const files[] = {"rfc3863.xml", "rfc4479.xml", "rfc4480.xml",
					    "cipid_caps.xml", "rfc4827.xml"};
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		why = "unset";
		if (check_file(files[i], &why))
			fail_msg("%s refused: %s", files[i], why);
		assert_null(why);
	}
	/* Not a PIDF document at all. */
	assert_int_equal(check_file("rfc5025.xml", &why), SK_EBADMSG);
	assert_string_equal(why,
			    "the root element must be <presence> in urn:ietf:params:xml:ns:pidf");
	/* why may be NULL. */
	assert_int_equal(pidf_check("<x/>", 4, NULL), SK_EBADMSG);
}

#define P_OPEN "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
#define DM     " xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
#define T_OK   "<tuple id=\"t\"><status><basic>open</basic></status></tuple>"

static void test_check_faults(void **state)
{
	static const struct {
		const char *doc, *why;
	} cases[] = {
	    {"", "empty body"},
	    {"<presence", "not well-formed XML"},
	    {"<presence entity=\"a\"/>", "the root element must be <presence> in "
					 "urn:ietf:params:xml:ns:pidf"},
	    {"<presence xmlns=\"urn:ietf:params:xml:ns:pidfx\" entity=\"a\"/>",
	     "the root element must be <presence> in "
	     "urn:ietf:params:xml:ns:pidf"},
	    {P_OPEN "/>", "<presence> has no entity attribute"},
	    {P_OPEN "entity=\"\"/>", "<presence> has no entity attribute"},
	    {P_OPEN "entity=\"a\"><tuple><status/></tuple></presence>", "a <tuple> has no id"},
	    {P_OPEN "entity=\"a\"><tuple id=\"\"><status/></tuple></presence>",
	     "a <tuple> has no id"},
	    {P_OPEN "entity=\"a\"><tuple id=\"t\"><contact>sip:a@b</contact></tuple></presence>",
	     "a <tuple> has no <status>"},
	    {P_OPEN "entity=\"a\">" T_OK T_OK "</presence>", "duplicate id in the document"},
	    {P_OPEN DM "entity=\"a\">" T_OK "<dm:person id=\"t\"/></presence>",
	     "duplicate id in the document"},
	    {P_OPEN DM "entity=\"a\"><dm:person/></presence>", "a <dm:person> has no id"},
	    {P_OPEN DM "entity=\"a\"><dm:device id=\"d\"/></presence>",
	     "a <dm:device> has no <dm:deviceID>"},
	    {P_OPEN DM
	     "entity=\"a\"><dm:device><dm:deviceID>x</dm:deviceID></dm:device></presence>",
	     "a <dm:device> has no id"},
	    {P_OPEN "entity=\"a\"><tuple id=\"a&amp;b\"><status/></tuple><tuple "
		    "id=\"a&#38;b\"><status/></tuple></presence>",
	     "duplicate id in the document"}, /* the same id, written two ways */
	    {P_OPEN "entity=\"a\"><r:x/></presence>", "undeclared namespace prefix"},
	    {"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>" P_OPEN "entity=\"a\"/>",
	     "not UTF-8"},
	    {P_OPEN "entity=\"a\"><note>\xc0\xaf</note></presence>", "not well-formed XML"},
	};
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (check_str(cases[i].doc, &why) != SK_EBADMSG)
			fail_msg("case %zu accepted: %s", i, cases[i].doc);
		if (!why || strcmp(why, cases[i].why))
			fail_msg("case %zu: \"%s\", expected \"%s\"", i, why ? why : "(null)",
				 cases[i].why);
	}
	/* The same documents made right pass: the faults above are the only ones. */
	assert_int_equal(check_str(P_OPEN "entity=\"a\"><tuple id=\"a&amp;b\"><status/></tuple>"
					  "<tuple id=\"a&#38;c\"><status/></tuple></presence>",
				   &why),
			 0);
	assert_int_equal(check_str(P_OPEN "entity=\"a\">" T_OK "</presence>", &why), 0);
	assert_int_equal(check_str(P_OPEN DM "entity=\"a\"><dm:device id=\"d\"><dm:deviceID>x"
					     "</dm:deviceID></dm:device></presence>",
				   &why),
			 0);
}

/* External entities are never fetched nor expanded, a DTD is refused outright, and
 * so is the billion laughs; the oversize cap holds. */
static void test_check_xxe(void **state)
{
	const char *xxe = "<?xml version=\"1.0\"?>\n"
			  "<!DOCTYPE presence [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n" P_OPEN
			  "entity=\"a\"><note>&x;</note></presence>";
	const char *laughs =
	    "<?xml version=\"1.0\"?>\n<!DOCTYPE presence [<!ENTITY a \"aaaaaaaaaa\">"
	    "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c "
	    "\"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"
	    "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e "
	    "\"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">"
	    "]>\n" P_OPEN "entity=\"a\"><note>&e;&e;&e;&e;</note></presence>";
	const char *why;
	size_t big = (256 * 1024) + 1;
	char *huge = malloc(big + 1);
	struct pidf_pub pub = {xxe, strlen(xxe), 1};
	char *out = NULL;

	(void)state;
	assert_int_equal(check_str(xxe, &why), SK_EBADMSG);
	assert_string_equal(why, "a document type declaration is not allowed");
	/* libxml2 may stop it first (entity amplification): refused either way. */
	assert_int_equal(check_str(laughs, &why), SK_EBADMSG);
	if (strcmp(why, "a document type declaration is not allowed") &&
	    strcmp(why, "not well-formed XML"))
		fail_msg("billion laughs: %s", why);
	/* The composer skips such a publication: nothing of it comes out. */
	assert_int_equal(pidf_compose(&pub, 1, "sip:a@b", NULL, 0, &out), 0);
	assert_null(strstr(out, "root:"));
	assert_non_null(strstr(out, "<basic>closed</basic>"));
	out = sk_deref(out);

	assert_non_null(huge);
	memset(huge, ' ', big);
	memcpy(huge, P_OPEN "entity=\"a\"/>", strlen(P_OPEN "entity=\"a\"/>"));
	huge[big] = '\0';
	assert_int_equal(pidf_check(huge, big, &why), SK_EBADMSG);
	assert_string_equal(why, "document too large");
	assert_int_equal(pidf_check(huge, big - 1, &why), 0);
	free(huge);
}

/* Three publications of one presentity (three devices), overlapping ids, different
 * prefixes for the same namespaces and different extension namespaces. */
static void test_compose_three(void **state)
{
	size_t l1, l2, l3;
	char *a = load("rfc3863.xml", &l1), *b = load("rfc4480.xml", &l2),
	     *c = load("cipid_caps.xml", &l3);
	/* bs35r9 is in all three: cipid_caps.xml (newest) must win. */
	struct pidf_pub pubs[] = {{a, l1, 50}, {c, l3, 200}, {b, l2, 100}};
	char *out = NULL;
	xmlDoc *d;

	(void)state;
	assert_int_equal(pidf_compose(pubs, 3, "sip:someone@example.com", NULL, 0, &out), 0);
	d = reparse(out);
	assert_string_equal(str(d, "/p:presence/@entity"), "sip:someone@example.com");
	/* Every id once: bs35r9 (3x), ty4658, eg92n8; persons p1, p2; device pc147. */
	assert_int_equal(count(d, "/p:presence/p:tuple"), 3);
	assert_int_equal(count(d, "/p:presence/p:tuple[@id='bs35r9']"), 1);
	assert_int_equal(count(d, "/p:presence/p:tuple[@id='ty4658']"), 1);
	assert_int_equal(count(d, "/p:presence/p:tuple[@id='eg92n8']"), 1);
	assert_int_equal(count(d, "/p:presence/dm:person"), 2);
	assert_int_equal(count(d, "/p:presence/dm:device[@id='pc147']"), 1);
	/* The newest's bs35r9: closed, with its caps intact, and its contact. */
	assert_string_equal(str(d, "/p:presence/p:tuple[@id='bs35r9']/p:status/p:basic"), "closed");
	assert_string_equal(str(d, "/p:presence/p:tuple[@id='bs35r9']/p:contact"),
			    "sip:someone@desk.example.com");
	assert_int_equal(count(d, "//p:tuple[@id='bs35r9']/caps:servcaps/caps:audio"), 1);
	assert_string_equal(
	    str(d, "//p:tuple[@id='bs35r9']/caps:servcaps/caps:methods/caps:supported/caps:method"),
	    "INVITE");
	assert_int_equal(count(d, "//p:tuple[@id='bs35r9']/r:relationship"), 0);
	/* Open tuples first (baresip reads the first <basic>), the closed one last. */
	assert_string_equal(str(d, "/p:presence/p:tuple[1]/p:status/p:basic"), "open");
	assert_string_equal(str(d, "/p:presence/p:tuple[3]/@id"), "bs35r9");
	/* Newest first among the open ones: ty4658 (t=100) before eg92n8 (t=50). */
	assert_string_equal(str(d, "/p:presence/p:tuple[1]/@id"), "ty4658");
	/* RFC 3863's extensions in the status of eg92n8's sibling are gone with it... */
	assert_int_equal(count(d, "//im:im"), 0);
	/* ...RPID kept whole in p1, CIPID whole in p2, the vendor extension kept. */
	assert_string_equal(str(d, "//dm:person[@id='p1']/r:mood/r:other"), "brooding");
	assert_int_equal(count(d, "//dm:person[@id='p1']/r:activities/r:away"), 1);
	assert_string_equal(str(d, "//dm:person[@id='p1']/r:activities/@until"),
			    "2005-05-30T17:00:00+05:00");
	assert_string_equal(str(d, "//dm:person[@id='p2']/c:display-name"), "Some One");
	assert_int_equal(count(d, "//dm:person[@id='p2']/c:*"), 6);
	assert_string_equal(str(d, "/p:presence/x:mood-ring"), "blue");
	assert_string_equal(str(d, "//dm:device/r:user-input/@idle-threshold"), "600");
	/* Presence-level notes: the newest publication has none, RFC 3863's is older. */
	assert_int_equal(count(d, "/p:presence/p:note"), 0);
	/* The schema's order: tuples, notes, then persons, devices, other extensions. */
	assert_int_equal(count(d, "/p:presence/*[4][self::dm:person]"), 1);
	assert_int_equal(count(d, "/p:presence/*[last()][self::x:mood-ring]"), 1);
	/* One declaration of the PIDF namespace, on the root: the copies' are gone, and
	 * cipid_caps.xml's p: prefix too (baresip matches "<basic>" as text). */
	assert_int_equal(occurs(out, "\"urn:ietf:params:xml:ns:pidf\""), 1);
	assert_int_equal(occurs(out, "<p:"), 0);
	assert_int_equal(occurs(out, "<basic>"), 3);
	assert_non_null(strstr(out, "<basic>open</basic>"));
	assert_true(strstr(out, "<basic>open</basic>") < strstr(out, "<basic>closed</basic>"));
	/* Other prefixes are kept as published ("<rpid:on-the-phone/>" is read as text). */
	assert_non_null(strstr(out, "<r:mood>"));
	assert_non_null(strstr(out, "<caps:servcaps>"));
	assert_non_null(strstr(out, "<c:display-name>"));
	xmlFreeDoc(d);
	out = sk_deref(out);

	/* Now RFC 3863 is the newest: its bs35r9 (open, with im:im) and its note win. */
	pubs[0].time = 300;
	assert_int_equal(pidf_compose(pubs, 3, "sip:someone@example.com", NULL, 0, &out), 0);
	d = reparse(out);
	assert_string_equal(str(d, "//p:tuple[@id='bs35r9']/p:status/im:im"), "busy");
	assert_string_equal(str(d, "//p:tuple[@id='bs35r9']/p:status/*[local-name()='location' "
				   "and namespace-uri()='http://id.example.com/presence/']"),
			    "home");
	assert_int_equal(count(d, "//p:tuple[@id='bs35r9']/caps:servcaps"), 0);
	assert_string_equal(str(d, "/p:presence/p:note"), "I'll be in Tokyo next week");
	assert_string_equal(str(d, "//p:tuple[@id='bs35r9']/p:note[@xml:lang='fr']"),
			    "Ne derangez pas, s'il vous plait");
	assert_int_equal(count(d, "/p:presence/p:tuple"), 3);
	xmlFreeDoc(d);
	out = sk_deref(out);
	free(a);
	free(b);
	free(c);
}

/* The same prefix bound to different namespaces in two publications, and the
 * default namespace rebound inside a component: each copy keeps its own. */
static void test_compose_prefix_clash(void **state)
{
	const char *a = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
			"xmlns:r=\"urn:ietf:params:xml:ns:pidf:rpid\" "
			"xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" entity=\"x\">"
			"<tuple id=\"a\"><status><basic>open</basic></status>"
			"<r:class>work</r:class></tuple>"
			"<dm:person id=\"pa\"><r:mood><r:happy/></r:mood></dm:person></presence>";
	const char *b = "<p:presence xmlns:p=\"urn:ietf:params:xml:ns:pidf\" "
			"xmlns:r=\"http://vendor.example.com/x\" "
			"xmlns=\"urn:ietf:params:xml:ns:pidf:data-model\" entity=\"y\">"
			"<p:tuple id=\"b\"><p:status><p:basic>open</p:basic></p:status>"
			"<r:mood-ring>red</r:mood-ring></p:tuple>"
			"<person id=\"pb\"><note>in data-model</note></person></p:presence>";
	/* The default namespace is a vendor's inside this tuple: p: must stay. */
	const char *c = "<p:presence xmlns:p=\"urn:ietf:params:xml:ns:pidf\" entity=\"z\">"
			"<p:tuple id=\"z\" xmlns=\"http://vendor.example.com/x\"><p:status>"
			"<p:basic>open</p:basic></p:status><flag/></p:tuple></p:presence>";
	struct pidf_pub pubs[] = {{a, strlen(a), 1}, {b, strlen(b), 2}, {c, strlen(c), 3}};
	char *out = NULL;
	xmlDoc *d;

	(void)state;
	assert_int_equal(pidf_compose(pubs, 3, "sip:x@example.com", NULL, 0, &out), 0);
	d = reparse(out);
	assert_string_equal(str(d, "//p:tuple[@id='a']/r:class"), "work");
	assert_string_equal(str(d, "//p:tuple[@id='b']/x:mood-ring"), "red");
	assert_int_equal(count(d, "//dm:person[@id='pa']/r:mood/r:happy"), 1);
	assert_string_equal(str(d, "//dm:person[@id='pb']/dm:note"), "in data-model");
	assert_int_equal(count(d, "//r:*"), 3); /* class, mood, happy: not mood-ring */
	assert_int_equal(count(d, "//x:*"), 2);
	assert_int_equal(count(d, "//p:tuple[@id='z']/x:flag"), 1);
	assert_string_equal(str(d, "//p:tuple[@id='z']/p:status/p:basic"), "open");
	assert_string_equal(str(d, "/p:presence/@entity"), "sip:x@example.com");
	/* b's tuple is written unprefixed (the default namespace there is PIDF's), c's
	 * keeps its prefix. */
	assert_int_equal(occurs(out, "<p:tuple"), 1);
	assert_int_equal(occurs(out, "<p:basic>"), 1);
	assert_int_equal(occurs(out, "<basic>"), 2);
	xmlFreeDoc(d);
	out = sk_deref(out);
}

/* Equal times: the later publication in the array wins. */
static void test_compose_tie(void **state)
{
	const char *a = P_OPEN "entity=\"a\"><tuple id=\"t\"><status><basic>open</basic>"
			       "</status><contact>sip:first@x</contact></tuple></presence>";
	const char *b = P_OPEN "entity=\"a\"><tuple id=\"t\"><status><basic>open</basic>"
			       "</status><contact>sip:second@x</contact></tuple></presence>";
	struct pidf_pub pubs[] = {{a, strlen(a), 7}, {b, strlen(b), 7}};
	char *out = NULL;
	xmlDoc *d;

	(void)state;
	assert_int_equal(pidf_compose(pubs, 2, "sip:a@x", NULL, 0, &out), 0);
	d = reparse(out);
	assert_string_equal(str(d, "//p:contact"), "sip:second@x");
	xmlFreeDoc(d);
	out = sk_deref(out);
	pubs[0].time = 8;
	assert_int_equal(pidf_compose(pubs, 2, "sip:a@x", NULL, 0, &out), 0);
	d = reparse(out);
	assert_string_equal(str(d, "//p:contact"), "sip:first@x");
	xmlFreeDoc(d);
	out = sk_deref(out);
}

/* Nothing published: the pidf-manipulation document (RFC 4827), else offline. */
static void test_compose_fallback(void **state)
{
	size_t len;
	char *fb = load("rfc4827.xml", &len);
	const char *bad = "<presence/>";
	struct pidf_pub junk = {"<presence", 9, 1};
	char *out = NULL;
	xmlDoc *d;

	(void)state;
	assert_int_equal(pidf_compose(NULL, 0, "sip:bob@example.com", fb, len, &out), 0);
	d = reparse(out);
	assert_string_equal(str(d, "/p:presence/@entity"), "sip:bob@example.com");
	assert_string_equal(str(d, "//p:tuple/p:contact"), "tel:+09012345678");
	xmlFreeDoc(d);
	out = sk_deref(out);

	/* Only unusable publications count as none. */
	assert_int_equal(pidf_compose(&junk, 1, "sip:bob@example.com", fb, len, &out), 0);
	assert_non_null(strstr(out, "tel:+09012345678"));
	out = sk_deref(out);

	/* No fallback, or an invalid one: the offline document. */
	assert_int_equal(pidf_compose(NULL, 0, "sip:bob@example.com", NULL, 0, &out), 0);
	d = reparse(out);
	assert_int_equal(count(d, "/p:presence/p:tuple"), 1);
	assert_string_equal(str(d, "/p:presence/p:tuple/@id"), "offline");
	assert_string_equal(str(d, "/p:presence/p:tuple/p:status/p:basic"), "closed");
	assert_string_equal(str(d, "/p:presence/@entity"), "sip:bob@example.com");
	xmlFreeDoc(d);
	out = sk_deref(out);
	assert_int_equal(pidf_compose(NULL, 0, "sip:bob@example.com", bad, strlen(bad), &out), 0);
	assert_non_null(strstr(out, "<basic>closed</basic>"));
	out = sk_deref(out);
	free(fb);
}

static void test_compose_errors(void **state)
{
	const char *a = P_OPEN "entity=\"a\">" T_OK "</presence>";
	struct pidf_pub pub = {a, strlen(a), 1};
	char *out = (char *)"sentinel";

	(void)state;
	assert_int_equal(pidf_compose(&pub, 1, NULL, NULL, 0, &out), SK_EINVAL);
	assert_null(out);
	assert_int_equal(pidf_compose(&pub, 1, "", NULL, 0, &out), SK_EINVAL);
	assert_int_equal(pidf_compose(NULL, 1, "sip:a@b", NULL, 0, &out), SK_EINVAL);
	assert_int_equal(pidf_offline("", &out), SK_EINVAL);
	/* The output string is the one refcounted allocation: make it fail. */
	sk_mem_fail_after(1);
	assert_int_equal(pidf_compose(&pub, 1, "sip:a@b", NULL, 0, &out), SK_ENOMEM);
	assert_null(out);
	sk_mem_fail_after(1);
	assert_int_equal(pidf_compose(NULL, 0, "sip:a@b", NULL, 0, &out), SK_ENOMEM);
	sk_mem_fail_after(0);
	assert_int_equal(pidf_compose(&pub, 1, "sip:a@b", NULL, 0, &out), 0);
	out = sk_deref(out);
}

/* A composed document of rfc4480.xml + cipid_caps.xml, filtered. */
static char *composed(void)
{
	size_t l1, l2;
	char *b = load("rfc4480.xml", &l1), *c = load("cipid_caps.xml", &l2), *out = NULL;
	struct pidf_pub pubs[] = {{b, l1, 1}, {c, l2, 2}};

	assert_int_equal(pidf_compose(pubs, 2, "sip:someone@example.com", NULL, 0, &out), 0);
	free(b);
	free(c);
	return out;
}

static xmlDoc *filtered(const char *doc, const struct pidf_permissions *p)
{
	char *out = NULL;
	xmlDoc *d;

	assert_int_equal(pidf_filter(doc, strlen(doc), p, &out), 0);
	d = reparse(out);
	sk_deref(out);
	return d;
}

static void test_filter(void **state)
{
	char *doc = composed();
	struct pidf_permissions p = {0};
	xmlDoc *d;

	(void)state;
	/* Nothing permitted (RFC 5025 §3.3: absent means not provided). */
	d = filtered(doc, &p);
	assert_int_equal(count(d, "/p:presence/*"), 0);
	xmlFreeDoc(d);
	d = filtered(doc, NULL);
	assert_int_equal(count(d, "/p:presence/*"), 0);
	assert_string_equal(str(d, "/p:presence/@entity"), "sip:someone@example.com");
	xmlFreeDoc(d);

	/* Components only: core elements kept, every attribute gone. */
	p.all_services = p.all_persons = p.all_devices = true;
	d = filtered(doc, &p);
	assert_int_equal(count(d, "/p:presence/p:tuple"), 2);
	assert_int_equal(count(d, "/p:presence/dm:person"), 2);
	assert_int_equal(count(d, "/p:presence/dm:device"), 1);
	assert_int_equal(count(d, "//p:basic"), 2);
	assert_int_equal(count(d, "//p:contact"), 2);
	assert_int_equal(count(d, "//r:*"), 0);
	assert_int_equal(count(d, "//c:*"), 0);
	assert_int_equal(count(d, "//caps:*"), 0);
	assert_int_equal(count(d, "//x:*"), 0);
	assert_string_equal(str(d, "//dm:person[@id='p1']/dm:note"), "Scoring 120");
	assert_string_equal(str(d, "//dm:device/dm:deviceID"), "urn:device:0003ba4811e3");
	xmlFreeDoc(d);

	/* Attribute by attribute (§3.3.2). */
	p.activities = p.mood = p.sphere = true;
	p.user_input = PIDF_UI_BARE;
	d = filtered(doc, &p);
	assert_int_equal(count(d, "//dm:person[@id='p1']/r:activities/r:away"), 1);
	assert_int_equal(count(d, "//r:mood"), 1);
	assert_string_equal(str(d, "//r:sphere"), "bowling league");
	assert_int_equal(count(d, "//r:place-is|//r:place-type|//r:privacy|//r:status-icon|"
				  "//r:time-offset|//r:class|//r:relationship"),
			 0);
	assert_string_equal(str(d, "//r:user-input"), "idle");
	assert_int_equal(count(d, "//r:user-input/@*"), 0);
	xmlFreeDoc(d);

	p.place_is = p.place_type = p.privacy = p.status_icon = p.time_offset = p.class_ =
	    p.relationship = true;
	p.user_input = PIDF_UI_THRESHOLDS;
	d = filtered(doc, &p);
	assert_int_equal(count(d, "//r:place-is/r:audio/r:noisy"), 1);
	assert_int_equal(count(d, "//r:place-type|//r:privacy|//r:status-icon|//r:time-offset"), 4);
	assert_int_equal(count(d, "//r:class"), 2);	   /* ty4658's and p1's */
	assert_int_equal(count(d, "//r:relationship"), 0); /* bs35r9 is cipid_caps's now */
	assert_string_equal(str(d, "//r:user-input/@idle-threshold"), "600");
	assert_int_equal(count(d, "//r:user-input/@last-input"), 0);
	assert_int_equal(count(d, "//c:*|//caps:*"), 0);
	xmlFreeDoc(d);

	/* §3.3.3 all attributes: CIPID, caps and the vendor extension come back. */
	p.all_attributes = true;
	d = filtered(doc, &p);
	assert_int_equal(count(d, "//dm:person[@id='p2']/c:*"), 6);
	assert_int_equal(count(d, "//caps:servcaps/caps:video"), 1);
	assert_string_equal(str(d, "/p:presence/x:mood-ring"), "blue");
	assert_int_equal(count(d, "//r:user-input/@last-input"), 1);
	xmlFreeDoc(d);

	/* Services by the scheme of their contact (the example of RFC 5025). */
	memset(&p, 0, sizeof(p));
	snprintf(p.schemes[0], sizeof(p.schemes[0]), "im");
	p.nschemes = 1;
	d = filtered(doc, &p);
	assert_int_equal(count(d, "/p:presence/p:tuple"), 0); /* im:secretary is replaced */
	xmlFreeDoc(d);
	snprintf(p.schemes[1], sizeof(p.schemes[1]), "SIP");
	p.nschemes = 2;
	d = filtered(doc, &p);
	assert_int_equal(count(d, "/p:presence/p:tuple"), 2);
	assert_int_equal(count(d, "/p:presence/dm:person"), 0);
	xmlFreeDoc(d);
	sk_deref(doc);
}

static void test_filter_errors(void **state)
{
	struct pidf_permissions p = {.all_services = true};
	char *out = (char *)"sentinel";

	(void)state;
	assert_int_equal(pidf_filter("<presence", 9, &p, &out), SK_EBADMSG);
	assert_null(out);
	assert_int_equal(pidf_filter("<presence/>", 11, &p, &out), SK_EBADMSG);
	assert_int_equal(pidf_filter(NULL, 0, &p, &out), SK_EBADMSG);
	sk_mem_fail_after(1);
	assert_int_equal(
	    pidf_filter(P_OPEN "entity=\"a\"/>", strlen(P_OPEN "entity=\"a\"/>"), &p, &out),
	    SK_ENOMEM);
	assert_null(out);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_check_examples),
	    SK_TEST(test_check_faults),
	    SK_TEST(test_check_xxe),
	    SK_TEST(test_compose_three),
	    SK_TEST(test_compose_prefix_clash),
	    SK_TEST(test_compose_tie),
	    SK_TEST(test_compose_fallback),
	    SK_TEST(test_compose_errors),
	    SK_TEST(test_filter),
	    SK_TEST(test_filter_errors),
	};

	if (argc > 1)
		test_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
