/* policy: common-policy / pres-rules evaluation (RFC 4745 §7-§10, RFC 5025 §3). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "policy.h"
#include "xsafe.h"
#include "pres_ns.h"
#include "skein/sk_err.h"

/* Longest URI or token compared; longer ones are malformed rules. */
enum { VAL_MAX = 512, RULES_MAX = 1000 };

const char *policy_action_name(enum policy_action a)
{
	switch (a) {
	case POLICY_BLOCK:
		return "block";
	case POLICY_CONFIRM:
		return "confirm";
	case POLICY_POLITE_BLOCK:
		return "polite-block";
	case POLICY_ALLOW:
		return "allow";
	}
	return NULL;
}

/* ---- xs:dateTime ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	long long era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

static int digits(const char **s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*s)++) {
		if (!isdigit((unsigned char)**s))
			return SK_EINVAL;
		*v = *v * 10 + (**s - '0');
	}
	return 0;
}

int policy_datetime(const char *s, time_t *t)
{
	static const unsigned char mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, zh = 0, zm = 0, sign = 0;
	long long secs;

	while (isspace((unsigned char)*s))
		s++;
	if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
	    digits(&s, 2, &d) || *s++ != 'T' || digits(&s, 2, &h) || *s++ != ':' ||
	    digits(&s, 2, &mi) || *s++ != ':' || digits(&s, 2, &sec))
		return SK_EINVAL;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return SK_EINVAL;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'Z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if (digits(&s, 2, &zh) || *s++ != ':' || digits(&s, 2, &zm) || zh > 14 || zm > 59)
			return SK_EINVAL;
	}
	while (isspace((unsigned char)*s))
		s++;
	if (*s || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 24 || mi > 59 ||
	    sec > 60 || (h == 24 && (mi || sec)))
		return SK_EINVAL;
	if (mo == 2 && d == 29 && (y % 4 || (y % 100 == 0 && y % 400)))
		return SK_EINVAL;
	secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400LL + h * 3600LL + mi * 60LL +
	       sec - sign * (zh * 3600LL + zm * 60LL);
	if (sizeof(time_t) < 8 && (secs > INT32_MAX || secs < INT32_MIN))
		return SK_EINVAL;
	*t = (time_t)secs;
	return 0;
}

/* ---- identities (RFC 4745 §7.1, RFC 5025 §3.1.1.2) ---- */

/* The host of a URI "scheme:user@host;params" (after the last '@' before any ';',
 * up to ';', '?', '>' or a port), into out; "" when there is none. */
static void uri_host(const char *uri, char *out, size_t size)
{
	const char *colon = strchr(uri, ':'), *at = NULL, *h, *e;
	size_t n;

	out[0] = '\0';
	if (!colon)
		return;
	for (const char *p = colon + 1; *p && *p != ';' && *p != '?'; p++)
		if (*p == '@')
			at = p;
	h = at ? at + 1 : colon + 1;
	e = h + strcspn(h, ";?>:");
	n = (size_t)(e - h);
	if (n >= size)
		n = size - 1;
	memcpy(out, h, n);
	out[n] = '\0';
}

/* URI equality, simplified from RFC 3261 §19.1.4 for the AoRs compared here: scheme
 * and host case-insensitive, user part exact, parameters ignored. */
static bool uri_eq(const char *a, const char *b)
{
	const char *ca = strchr(a, ':'), *cb = strchr(b, ':'), *ua, *ub;
	char ha[VAL_MAX], hb[VAL_MAX];
	size_t la, lb;

	if (!ca || !cb || ca - a != cb - b || strncasecmp(a, b, (size_t)(ca - a)))
		return false;
	ua = ca + 1;
	ub = cb + 1;
	la = strcspn(ua, "@;?");
	lb = strcspn(ub, "@;?");
	if ((ua[la] == '@') != (ub[lb] == '@'))
		return false;
	if (ua[la] == '@' && (la != lb || strncmp(ua, ub, la)))
		return false;
	uri_host(a, ha, sizeof(ha));
	uri_host(b, hb, sizeof(hb));
	return !strcasecmp(ha, hb);
}

struct ctx {
	const struct policy_query *q;
	char host[VAL_MAX]; /* the watcher's */
	const char *why;
};

/* A required attribute, copied into out; false (malformed) when absent or too long. */
static bool attr(const xmlNode *n, const char *name, char *out, size_t size)
{
	xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
	bool ok = v && v[0] && strlen((const char *)v) < size;

	if (ok)
		strcpy(out, (const char *)v);
	xmlFree(v);
	return ok;
}

/* <many> (§7.1.1): a domain, or any authenticated identity, less its <except>s. */
static int many_match(struct ctx *c, const xmlNode *many, bool *m)
{
	char v[VAL_MAX];
	xmlChar *dom = xmlGetNoNsProp(many, (const xmlChar *)"domain");

	*m = !dom || !strcasecmp((const char *)dom, c->host);
	xmlFree(dom);
	for (const xmlNode *e = many->children; e; e = e->next) {
		bool has_id, has_dom;

		if (!xsafe_is(e, PRES_NS_CP, "except"))
			continue;
		has_id = attr(e, "id", v, sizeof(v));
		if (has_id && uri_eq(v, c->q->watcher))
			*m = false;
		has_dom = attr(e, "domain", v, sizeof(v));
		if (has_dom && !strcasecmp(v, c->host))
			*m = false;
		if (!has_id && !has_dom) {
			c->why = "<except> without id or domain";
			return SK_EBADMSG;
		}
	}
	return 0;
}

/* <identity>: one of its <one>/<many> matches the authenticated watcher. Checks every
 * child so that a malformed one is reported whatever the watcher. */
static int identity_match(struct ctx *c, const xmlNode *id, bool *m)
{
	char v[VAL_MAX];

	*m = false;
	for (const xmlNode *e = id->children; e; e = e->next) {
		bool hit = false;
		int err;

		if (xsafe_is(e, PRES_NS_CP, "one")) {
			if (!attr(e, "id", v, sizeof(v))) {
				c->why = "<one> without id";
				return SK_EBADMSG;
			}
			hit = uri_eq(v, c->q->watcher);
		} else if (xsafe_is(e, PRES_NS_CP, "many")) {
			if ((err = many_match(c, e, &hit)))
				return err;
		}
		*m = *m || hit;
	}
	*m = *m && c->q->authenticated;
	return 0;
}

/* <sphere value="a b">: the presentity's current sphere is one of the tokens. */
static int sphere_match(struct ctx *c, const xmlNode *s, bool *m)
{
	char v[VAL_MAX];
	size_t n = c->q->sphere ? strlen(c->q->sphere) : 0;

	*m = false;
	if (!attr(s, "value", v, sizeof(v))) {
		c->why = "<sphere> without value";
		return SK_EBADMSG;
	}
	for (char *save = NULL, *t = strtok_r(v, " \t\r\n", &save); t && n;
	     t = strtok_r(NULL, " \t\r\n", &save))
		if (!strcmp(t, c->q->sphere))
			*m = true;
	return 0;
}

/* <validity>: from/until pairs, now in any [from, until). */
static int validity_match(struct ctx *c, const xmlNode *val, bool *m)
{
	char v[64];
	time_t from = 0;
	bool have_from = false;

	*m = false;
	for (const xmlNode *e = val->children; e; e = e->next) {
		time_t t;

		if (e->type != XML_ELEMENT_NODE)
			continue;
		if (!xsafe_in(e, PRES_NS_CP) || (strcmp((const char *)e->name, "from") &&
						    strcmp((const char *)e->name, "until"))) {
			c->why = "unexpected element in <validity>";
			return SK_EBADMSG;
		}
		xsafe_text(e, v, sizeof(v));
		if (policy_datetime(v, &t)) {
			c->why = "bad date and time in <validity>";
			return SK_EBADMSG;
		}
		if (!strcmp((const char *)e->name, "from") == have_from) {
			c->why = "<validity> needs <from> and <until> pairs";
			return SK_EBADMSG;
		}
		if (!have_from) {
			from = t;
			have_from = true;
			continue;
		}
		have_from = false;
		if (from <= c->q->now && c->q->now < t)
			*m = true;
	}
	if (have_from) {
		c->why = "<validity> needs <from> and <until> pairs";
		return SK_EBADMSG;
	}
	return 0;
}

/* <conditions> (RFC 4745 §7, §10.1): every condition holds. */
static int conditions_match(struct ctx *c, const xmlNode *conds, bool *m)
{
	*m = true;
	for (const xmlNode *e = conds ? conds->children : NULL; e; e = e->next) {
		bool hit = false;
		int err = 0;

		if (e->type != XML_ELEMENT_NODE)
			continue;
		if (xsafe_is(e, PRES_NS_CP, "identity"))
			err = identity_match(c, e, &hit);
		else if (xsafe_is(e, PRES_NS_CP, "sphere"))
			err = sphere_match(c, e, &hit);
		else if (xsafe_is(e, PRES_NS_CP, "validity"))
			err = validity_match(c, e, &hit);
		/* anything else: a condition not understood never holds (§10.1) */
		if (err)
			return err;
		*m = *m && hit;
	}
	return 0;
}

/* ---- actions and transformations (RFC 5025 §3.2, §3.3) ---- */

static int sub_handling(struct ctx *c, const xmlNode *actions, int *action)
{
	static const struct {
		const char *name;
		enum policy_action a;
	} names[] = {{"block", POLICY_BLOCK},
		     {"confirm", POLICY_CONFIRM},
		     {"polite-block", POLICY_POLITE_BLOCK},
		     {"allow", POLICY_ALLOW}};
	char v[32];

	*action = -1;
	for (const xmlNode *e = actions ? actions->children : NULL; e; e = e->next) {
		bool ok = false;

		if (!xsafe_is(e, PRES_NS_PR, "sub-handling"))
			continue;
		xsafe_text(e, v, sizeof(v));
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(v, names[i].name)) {
				if ((int)names[i].a > *action)
					*action = (int)names[i].a;
				ok = true;
			}
		if (!ok) {
			c->why = "unknown <sub-handling> value";
			return SK_EBADMSG;
		}
	}
	return 0;
}

static int boolean(struct ctx *c, const xmlNode *e, bool *b)
{
	char v[16];

	xsafe_text(e, v, sizeof(v));
	if (!strcmp(v, "true") || !strcmp(v, "1"))
		*b = true;
	else if (strcmp(v, "false") && strcmp(v, "0"))
		return c->why = "a provide- element is neither true nor false", SK_EBADMSG;
	return 0;
}

static void add_scheme(struct pidf_permissions *p, const char *s)
{
	if (!s[0] || strlen(s) >= sizeof(p->schemes[0]))
		return;
	for (unsigned i = 0; i < p->nschemes; i++)
		if (!strcasecmp(p->schemes[i], s))
			return;
	if (p->nschemes < PIDF_SCHEMES_MAX)
		strcpy(p->schemes[p->nschemes++], s);
}

/* ORs the rule's transformations into p (RFC 4745 §10.2 for booleans, set union for
 * the components, maximum for user-input). */
static int transformations(struct ctx *c, const xmlNode *tr, struct pidf_permissions *p)
{
	static const struct {
		const char *name;
		size_t off;
	} bools[] = {
	    {"provide-activities", offsetof(struct pidf_permissions, activities)},
	    {"provide-class", offsetof(struct pidf_permissions, class_)},
	    {"provide-deviceID", offsetof(struct pidf_permissions, device_id)},
	    {"provide-mood", offsetof(struct pidf_permissions, mood)},
	    {"provide-place-is", offsetof(struct pidf_permissions, place_is)},
	    {"provide-place-type", offsetof(struct pidf_permissions, place_type)},
	    {"provide-privacy", offsetof(struct pidf_permissions, privacy)},
	    {"provide-relationship", offsetof(struct pidf_permissions, relationship)},
	    {"provide-status-icon", offsetof(struct pidf_permissions, status_icon)},
	    {"provide-sphere", offsetof(struct pidf_permissions, sphere)},
	    {"provide-time-offset", offsetof(struct pidf_permissions, time_offset)},
	};
	static const char *const ui[] = {"false", "bare", "thresholds", "full"};
	char v[32];

	for (const xmlNode *e = tr ? tr->children : NULL; e; e = e->next) {
		const char *name = (const char *)e->name;
		bool found = false;

		if (!xsafe_in(e, PRES_NS_PR))
			continue; /* other namespaces' transformations: not ours */
		for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]) && !found; i++) {
			if (strcmp(name, bools[i].name))
				continue;
			found = true;
			if (boolean(c, e, (bool *)((char *)p + bools[i].off)))
				return SK_EBADMSG;
		}
		if (found)
			continue;
		if (!strcmp(name, "provide-user-input")) {
			xsafe_text(e, v, sizeof(v));
			for (int i = 0; i < 4 && !found; i++)
				if (!strcmp(v, ui[i])) {
					found = true;
					if ((int)p->user_input < i)
						p->user_input = (enum pidf_user_input)i;
				}
			if (!found)
				return c->why = "unknown <provide-user-input> value", SK_EBADMSG;
		} else if (!strcmp(name, "provide-all-attributes")) {
			p->all_attributes = true;
		} else if (!strcmp(name, "provide-services")) {
			for (const xmlNode *k = e->children; k; k = k->next) {
				if (xsafe_is(k, PRES_NS_PR, "all-services"))
					p->all_services = true;
				else if (xsafe_is(k, PRES_NS_PR, "service-uri-scheme")) {
					xsafe_text(k, v, sizeof(v));
					add_scheme(p, v);
				}
			}
		} else if (!strcmp(name, "provide-persons")) {
			if (xsafe_child(e, PRES_NS_PR, "all-persons"))
				p->all_persons = true;
		} else if (!strcmp(name, "provide-devices")) {
			if (xsafe_child(e, PRES_NS_PR, "all-devices"))
				p->all_devices = true;
		}
		/* provide-unknown-attribute and the occurrence-id / class / deviceID /
		 * service-uri selections are not applied: they grant nothing. */
	}
	return 0;
}

/* ---- the ruleset ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* RFC 4745 §7: every rule has an id, unique in the ruleset. */
static int check_ids(struct ctx *c, const xmlNode *root)
{
	char *ids[RULES_MAX];
	size_t n = 0;
	int err = 0;

	for (const xmlNode *r = root->children; r && !err; r = r->next) {
		char *id;

		if (!xsafe_is(r, PRES_NS_CP, "rule"))
			continue;
		id = (char *)xmlGetNoNsProp(r, (const xmlChar *)"id");
		if (!id || !id[0]) {
			c->why = "a <rule> has no id";
			err = SK_EBADMSG;
		} else if (n == RULES_MAX) {
			c->why = "too many rules";
			err = SK_EBADMSG;
		} else {
			ids[n++] = id;
			continue;
		}
		xmlFree(id);
	}
	if (!err && n > 1) {
		qsort(ids, n, sizeof(*ids), cmp_str);
		for (size_t i = 1; i < n && !err; i++)
			if (!strcmp(ids[i - 1], ids[i])) {
				c->why = "duplicate rule id";
				err = SK_EBADMSG;
			}
	}
	for (size_t i = 0; i < n; i++)
		xmlFree(ids[i]);
	return err;
}

int policy_eval(const char *doc, size_t len, const struct policy_query *q, enum policy_action dflt,
		struct policy_result *r, const char **why)
{
	struct ctx c = {.q = q};
	const char *dummy;
	xmlDoc *d;
	xmlNode *root;
	int action = -1, err;

	if (!why)
		why = &dummy;
	*why = NULL;
	memset(r, 0, sizeof(*r));
	r->action = dflt;
	if (!q || !q->watcher)
		return SK_EINVAL;
	uri_host(q->watcher, c.host, sizeof(c.host));
	d = xsafe_parse(doc, len, why);
	if (!d)
		return SK_EBADMSG;
	root = xmlDocGetRootElement(d);
	if (!xsafe_is(root, PRES_NS_CP, "ruleset")) {
		c.why = "the root element must be <ruleset> in " PRES_NS_CP;
		err = SK_EBADMSG;
		goto out;
	}
	if ((err = check_ids(&c, root)))
		goto out;
	for (const xmlNode *rule = root->children; rule; rule = rule->next) {
		struct pidf_permissions p = {0};
		bool m;
		int a;

		if (!xsafe_is(rule, PRES_NS_CP, "rule"))
			continue;
		/* Every rule is checked, matching or not: a malformed document is
		 * reported the same whoever the watcher is. */
		if ((err = conditions_match(&c, xsafe_child(rule, PRES_NS_CP, "conditions"),
					    &m)) ||
		    (err = sub_handling(&c, xsafe_child(rule, PRES_NS_CP, "actions"), &a)) ||
		    (err = transformations(&c, xsafe_child(rule, PRES_NS_CP, "transformations"),
					   &p)))
			goto out;
		if (!m)
			continue;
		r->matched++;
		if (a > action)
			action = a;
		r->perm.all_services |= p.all_services;
		r->perm.all_persons |= p.all_persons;
		r->perm.all_devices |= p.all_devices;
		for (unsigned i = 0; i < p.nschemes; i++)
			add_scheme(&r->perm, p.schemes[i]);
		r->perm.activities |= p.activities;
		r->perm.class_ |= p.class_;
		r->perm.device_id |= p.device_id;
		r->perm.mood |= p.mood;
		r->perm.place_is |= p.place_is;
		r->perm.place_type |= p.place_type;
		r->perm.privacy |= p.privacy;
		r->perm.relationship |= p.relationship;
		r->perm.status_icon |= p.status_icon;
		r->perm.sphere |= p.sphere;
		r->perm.time_offset |= p.time_offset;
		r->perm.all_attributes |= p.all_attributes;
		if (p.user_input > r->perm.user_input)
			r->perm.user_input = p.user_input;
	}
	if (action >= 0) {
		r->action = (enum policy_action)action;
		r->from_rules = true;
	}
out:
	if (err) {
		*why = c.why;
		memset(r, 0, sizeof(*r));
		r->action = dflt;
	}
	xmlFreeDoc(d);
	return err;
}
