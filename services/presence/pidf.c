/* pidf: checking, composing and filtering PIDF documents (RFC 3863, RFC 4479,
 * RFC 5025 §3.3). */
#include <libxml/parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "pidf.h"
#include "xsafe.h"
#include "pres_ns.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"

/* More ids than this in one document, or composed from all publications, is refused
 * (check) or cut (compose): a presentity has a handful of devices. */
enum { IDS_MAX = 4096 };

/* ---- a set of ids (sorted array): uniqueness and "newest wins" ---- */

/* Holds copies: the ids outlive the publication they came from. */
struct idset {
	char **v;
	size_t n, cap;
};

/* Adds id; 1 when it was already there, 0 when added, SK_ENOMEM / SK_ERANGE. */
static int idset_add(struct idset *s, const char *id)
{
	size_t lo = 0, hi = s->n;
	char *copy;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->v[mid], id);

		if (!c)
			return 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 16;
		char **nv;

		if (s->n >= IDS_MAX)
			return SK_ERANGE;
		nv = realloc(s->v, nc * sizeof(*nv));
		if (!nv)
			return SK_ENOMEM;
		s->v = nv;
		s->cap = nc;
	}
	if (!(copy = strdup(id)))
		return SK_ENOMEM;
	memmove(s->v + lo + 1, s->v + lo, (s->n - lo) * sizeof(*s->v));
	s->v[lo] = copy;
	s->n++;
	return 0;
}

static void idset_free(struct idset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

/* The id attribute of a component (xmlFree), NULL when absent. Character and entity
 * references in the value are resolved, so "a&amp;b" is the id "a&b". */
static char *node_id(const xmlNode *n)
{
	return (char *)xmlGetNoNsProp(n, (const xmlChar *)"id");
}

/* ---- check (RFC 3863 §4.1, RFC 4479 §6) ---- */

static bool is_tuple(const xmlNode *n)
{
	return xsafe_is(n, PRES_NS_PIDF, "tuple");
}

static bool is_person(const xmlNode *n)
{
	return xsafe_is(n, PRES_NS_DM, "person");
}

static bool is_device(const xmlNode *n)
{
	return xsafe_is(n, PRES_NS_DM, "device");
}

static int check_tree(xmlDoc *doc, const char **why)
{
	xmlNode *root = xmlDocGetRootElement(doc);
	struct idset ids = {0};
	const char *bad = NULL;
	xmlChar *entity;

	if (!xsafe_is(root, PRES_NS_PIDF, "presence")) {
		*why = "the root element must be <presence> in " PRES_NS_PIDF;
		return SK_EBADMSG;
	}
	entity = xmlGetNoNsProp(root, (const xmlChar *)"entity");
	if (!entity || !entity[0])
		bad = "<presence> has no entity attribute";
	xmlFree(entity);
	for (xmlNode *c = root->children; c && !bad; c = c->next) {
		char *id;
		int r;

		if (!is_tuple(c) && !is_person(c) && !is_device(c))
			continue;
		id = node_id(c);
		if (!id || !id[0]) {
			bad = is_tuple(c)    ? "a <tuple> has no id"
			      : is_person(c) ? "a <dm:person> has no id"
					     : "a <dm:device> has no id";
			xmlFree(id);
			break;
		}
		if (is_tuple(c) && !xsafe_child(c, PRES_NS_PIDF, "status"))
			bad = "a <tuple> has no <status>";
		else if (is_device(c) && !xsafe_child(c, PRES_NS_DM, "deviceID"))
			bad = "a <dm:device> has no <dm:deviceID>";
		else if ((r = idset_add(&ids, id)) == 1)
			bad = "duplicate id in the document";
		else if (r == SK_ERANGE)
			bad = "too many tuples, persons and devices";
		else if (r)
			bad = "out of memory";
		xmlFree(id);
	}
	idset_free(&ids);
	if (bad) {
		*why = bad;
		return SK_EBADMSG;
	}
	return 0;
}

int pidf_check(const char *body, size_t len, const char **why)
{
	const char *dummy;
	xmlDoc *doc;
	int err;

	if (!why)
		why = &dummy;
	*why = NULL;
	doc = xsafe_parse(body, len, why);
	if (!doc)
		return SK_EBADMSG;
	err = check_tree(doc, why);
	xmlFreeDoc(doc);
	return err;
}

/* ---- compose (RFC 4479 §4: the presence document of a presentity is the union
 * of its components; RFC 3903 §4: each PUBLISH replaces its own earlier state) ---- */

static xmlDoc *new_presence(const char *entity, xmlNode **rootp)
{
	xmlDoc *doc = xmlNewDoc((const xmlChar *)"1.0");
	xmlNode *root = doc ? xmlNewDocNode(doc, NULL, (const xmlChar *)"presence", NULL) : NULL;
	xmlNs *ns = root ? xmlNewNs(root, (const xmlChar *)PRES_NS_PIDF, NULL) : NULL;

	if (!ns || !xmlSetProp(root, (const xmlChar *)"entity", (const xmlChar *)entity)) {
		xmlFreeNode(root);
		xmlFreeDoc(doc);
		return NULL;
	}
	xmlSetNs(root, ns);
	xmlDocSetRootElement(doc, root);
	*rootp = root;
	return doc;
}

/* Sets entity on doc's root (a fallback document gets the presentity's). */
static int set_entity(xmlDoc *doc, const char *entity)
{
	return xmlSetProp(xmlDocGetRootElement(doc), (const xmlChar *)"entity",
			  (const xmlChar *)entity)
		   ? 0
		   : SK_ENOMEM;
}

int pidf_offline(const char *entity, char **outp)
{
	xmlNode *root, *tuple, *status;
	xmlDoc *doc;
	int err = SK_ENOMEM;

	*outp = NULL;
	if (!entity || !entity[0])
		return SK_EINVAL;
	doc = new_presence(entity, &root);
	if (!doc)
		return SK_ENOMEM;
	tuple = xmlNewChild(root, root->ns, (const xmlChar *)"tuple", NULL);
	status = tuple ? xmlNewChild(tuple, root->ns, (const xmlChar *)"status", NULL) : NULL;
	if (status && xmlSetProp(tuple, (const xmlChar *)"id", (const xmlChar *)"offline") &&
	    xmlNewChild(status, root->ns, (const xmlChar *)"basic", (const xmlChar *)"closed"))
		err = xsafe_dump(doc, outp);
	xmlFreeDoc(doc);
	return err;
}

/* The groups of a composed document, in the order of the PIDF schema (RFC 3863
 * §4.1: tuples, then notes, then extensions) and RFC 4479 §6 (person, device); open
 * tuples before the others. */
enum { G_OPEN, G_TUPLE, G_NOTE, G_PERSON, G_DEVICE, G_OTHER, G_N };

struct group {
	xmlNode *first, *last; /* a sibling chain of copies, not yet in the tree */
};

static void group_add(struct group *g, xmlNode *n)
{
	if (!g->first) {
		g->first = g->last = n;
		return;
	}
	g->last->next = n;
	n->prev = g->last;
	g->last = n;
}

/* A tuple whose basic status is open: listed first, since clients that read only
 * the first <basic> (baresip) then show the presentity reachable when any device is. */
static bool tuple_open(const xmlNode *t)
{
	char basic[16];

	xsafe_text(
	    xsafe_child(xsafe_child(t, PRES_NS_PIDF, "status"), PRES_NS_PIDF, "basic"), basic,
	    sizeof(basic));
	return !strcmp(basic, "open");
}

struct rank {
	size_t i;
	uint64_t time;
};

/* Newest first; equal times: the later publication first. */
static int rank_cmp(const void *a, const void *b)
{
	const struct rank *x = a, *y = b;

	if (x->time != y->time)
		return x->time > y->time ? -1 : 1;
	return x->i > y->i ? -1 : (x->i < y->i);
}

/* Copies the components of src (already checked) into the groups of out, skipping
 * ids already taken by a newer publication. newest: src is the newest usable one. */
static int take(xmlDoc *out, xmlDoc *src, bool newest, struct idset *ids, struct group *g)
{
	for (xmlNode *c = xmlDocGetRootElement(src)->children; c; c = c->next) {
		int kind;
		xmlNode *copy;

		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (is_tuple(c))
			kind = tuple_open(c) ? G_OPEN : G_TUPLE;
		else if (is_person(c))
			kind = G_PERSON;
		else if (is_device(c))
			kind = G_DEVICE;
		else if (xsafe_is(c, PRES_NS_PIDF, "note"))
			kind = G_NOTE;
		else
			kind = G_OTHER;
		if (kind == G_NOTE && !newest)
			continue;
		if (kind != G_NOTE && kind != G_OTHER) {
			char *id = node_id(c);
			int r = id ? idset_add(ids, id) : SK_ENOMEM;

			xmlFree(id);
			if (r == 1 || r == SK_ERANGE)
				continue; /* a newer publication's, or past the cap */
			if (r)
				return r;
		}
		/* The copy carries the declarations of every namespace it uses that was
		 * declared above it in src (xmlStaticCopyNode declares them on the copy);
		 * reconciled against the output tree once attached. */
		copy = xmlDocCopyNode(c, out, 1);
		if (!copy)
			return SK_ENOMEM;
		group_add(&g[kind], copy);
	}
	return 0;
}

static void groups_free(struct group *g)
{
	for (int k = 0; k < G_N; k++)
		for (xmlNode *n = g[k].first, *next; n; n = next) {
			next = n->next;
			n->next = n->prev = NULL;
			xmlFreeNode(n);
		}
}

/* Attaches the groups under root in order, then has libxml2 reconcile namespaces: a
 * reference to a declaration out of scope would get one in scope. The copies carry
 * their own declarations, so this finds nothing to do on every document tested; it
 * stays as the guard should a copy ever come out otherwise. Redundant declarations
 * are drop_redundant's. */
static int attach(xmlNode *root, struct group *g)
{
	for (int k = 0; k < G_N; k++) {
		for (xmlNode *n = g[k].first, *next; n; n = next) {
			next = n->next;
			n->next = n->prev = NULL;
			xmlAddChild(root, n);
		}
		g[k].first = g[k].last = NULL;
	}
	return xmlDOMWrapReconcileNamespaces(NULL, root, 0) < 0 ? SK_ENOMEM : 0;
}

/* Points every reference to namespace declaration from under top at to. */
static void remap_ns(xmlNode *top, const xmlNs *from, xmlNs *to)
{
	xmlNode *n = top;

	while (n) {
		if (n->type == XML_ELEMENT_NODE) {
			if (n->ns == from)
				n->ns = to;
			for (xmlAttr *a = n->properties; a; a = a->next)
				if (a->ns == from)
					a->ns = to;
			if (n->children) {
				n = n->children;
				continue;
			}
		}
		while (n != top && !n->next)
			n = n->parent;
		if (n == top)
			break;
		n = n->next;
	}
}

/* Removes from each child of root the namespace declarations that repeat, with the
 * same prefix and URI, one made on root. xmlStaticCopyNode leaves such repeats on
 * every copied component (xmlns="urn:ietf:params:xml:ns:pidf" on each tuple); they
 * are legal but bloat every NOTIFY. */
static void drop_redundant(xmlNode *root)
{
	for (xmlNode *c = root->children; c; c = c->next) {
		xmlNs **pp;

		if (c->type != XML_ELEMENT_NODE)
			continue;
		pp = &c->nsDef;
		while (*pp) {
			xmlNs *d = *pp, *above = NULL;

			for (xmlNs *r = root->nsDef; r; r = r->next)
				if (xmlStrEqual(r->prefix, d->prefix))
					above = r;
			if (above && xmlStrEqual(above->href, d->href)) {
				*pp = d->next;
				d->next = NULL;
				remap_ns(c, d, above);
				xmlFreeNs(d);
				continue;
			}
			pp = &d->next;
		}
	}
}

/* Whether anything under top refers to the declaration d. */
static bool ns_used(xmlNode *top, const xmlNs *d)
{
	xmlNode *n = top;

	while (n) {
		if (n->type == XML_ELEMENT_NODE) {
			if (n->ns == d)
				return true;
			for (xmlAttr *a = n->properties; a; a = a->next)
				if (a->ns == d)
					return true;
			if (n->children) {
				n = n->children;
				continue;
			}
		}
		while (n != top && !n->next)
			n = n->parent;
		if (n == top)
			break;
		n = n->next;
	}
	return false;
}

/* Writes PIDF elements without a prefix wherever the default namespace in scope is
 * PIDF's, then drops the declarations that leaves unused. Clients that read PIDF as
 * text need it: baresip's subscriber matches "<basic>" literally (and
 * "<rpid:on-the-phone/>", so other prefixes are kept as published). */
static void unprefix_pidf(xmlNode *root)
{
	xmlNode *n = root;

	while (n) {
		if (n->type == XML_ELEMENT_NODE) {
			if (n->ns && n->ns->prefix &&
			    xmlStrEqual(n->ns->href, (const xmlChar *)PRES_NS_PIDF)) {
				xmlNs *def = xmlSearchNs(n->doc, n, NULL);

				if (def && xmlStrEqual(def->href, (const xmlChar *)PRES_NS_PIDF))
					n->ns = def;
			}
			if (n->children) {
				n = n->children;
				continue;
			}
		}
		while (n != root && !n->next)
			n = n->parent;
		if (n == root)
			break;
		n = n->next;
	}
	for (xmlNode *c = root->children; c; c = c->next) {
		xmlNs **pp = c->type == XML_ELEMENT_NODE ? &c->nsDef : NULL;

		while (pp && *pp) {
			xmlNs *d = *pp;

			if (d->prefix && xmlStrEqual(d->href, (const xmlChar *)PRES_NS_PIDF) &&
			    !ns_used(c, d)) {
				*pp = d->next;
				d->next = NULL;
				xmlFreeNs(d);
				continue;
			}
			pp = &d->next;
		}
	}
}

int pidf_compose(const struct pidf_pub *pubs, size_t n, const char *entity, const char *fallback,
		 size_t fallback_len, char **outp)
{
	struct group g[G_N] = {{0}};
	struct idset ids = {0};
	struct rank *order = NULL;
	xmlDoc *out = NULL, *src;
	xmlNode *root;
	const char *why;
	bool any = false;
	int err = 0;

	*outp = NULL;
	if (!entity || !entity[0] || (n && !pubs))
		return SK_EINVAL;
	if (n) {
		order = calloc(n, sizeof(*order));
		if (!order)
			return SK_ENOMEM;
		for (size_t i = 0; i < n; i++)
			order[i] = (struct rank){i, pubs[i].time};
		qsort(order, n, sizeof(*order), rank_cmp);
	}
	out = new_presence(entity, &root);
	if (!out) {
		err = SK_ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < n && !err; k++) {
		const struct pidf_pub *p = &pubs[order[k].i];

		src = xsafe_parse(p->body, p->len, &why);
		if (!src)
			continue;
		if (!check_tree(src, &why)) {
			err = take(out, src, !any, &ids, g);
			any = true;
		}
		xmlFreeDoc(src);
	}
	if (err)
		goto out;
	if (!any) {
		xmlFreeDoc(out);
		out = NULL;
		if (fallback && (src = xsafe_parse(fallback, fallback_len, &why))) {
			if (!check_tree(src, &why) && !(err = set_entity(src, entity)))
				err = xsafe_dump(src, outp);
			xmlFreeDoc(src);
			if (err || *outp)
				goto out;
		}
		err = pidf_offline(entity, outp);
		goto out;
	}
	err = attach(root, g);
	if (!err) {
		drop_redundant(root);
		unprefix_pidf(root);
		err = xsafe_dump(out, outp);
	}
out:
	groups_free(g);
	idset_free(&ids);
	free(order);
	xmlFreeDoc(out);
	return err;
}

/* ---- filter (RFC 5025 §3.3) ---- */

/* Removes n, and the indentation before it so that no blank lines pile up. */
static void drop(xmlNode *n)
{
	xmlNode *prev = n->prev;

	if (prev && prev->type == XML_TEXT_NODE && xmlIsBlankNode(prev)) {
		xmlUnlinkNode(prev);
		xmlFreeNode(prev);
	}
	xmlUnlinkNode(n);
	xmlFreeNode(n);
}

/* §3.3.1.3: a tuple is revealed with all-services, or when the scheme of its
 * <contact> is one of the service-uri-scheme values. */
static bool service_ok(const xmlNode *t, const struct pidf_permissions *p)
{
	char contact[256];
	const char *colon;

	if (p->all_services)
		return true;
	if (!p->nschemes)
		return false;
	xsafe_text(xsafe_child(t, PRES_NS_PIDF, "contact"), contact, sizeof(contact));
	colon = strchr(contact, ':');
	if (!colon)
		return false;
	for (unsigned i = 0; i < p->nschemes && i < PIDF_SCHEMES_MAX; i++)
		if (strlen(p->schemes[i]) == (size_t)(colon - contact) &&
		    !strncasecmp(contact, p->schemes[i], (size_t)(colon - contact)))
			return true;
	return false;
}

/* §3.3.2: the RPID elements (RFC 4480 §3) each permission governs. */
static bool rpid_ok(const xmlNode *e, const struct pidf_permissions *p)
{
	static const struct {
		const char *name;
		size_t off;
	} map[] = {
	    {"activities", offsetof(struct pidf_permissions, activities)},
	    {"class", offsetof(struct pidf_permissions, class_)},
	    {"mood", offsetof(struct pidf_permissions, mood)},
	    {"place-is", offsetof(struct pidf_permissions, place_is)},
	    {"place-type", offsetof(struct pidf_permissions, place_type)},
	    {"privacy", offsetof(struct pidf_permissions, privacy)},
	    {"relationship", offsetof(struct pidf_permissions, relationship)},
	    {"status-icon", offsetof(struct pidf_permissions, status_icon)},
	    {"sphere", offsetof(struct pidf_permissions, sphere)},
	    {"time-offset", offsetof(struct pidf_permissions, time_offset)},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp((const char *)e->name, map[i].name))
			return *(const bool *)((const char *)p + map[i].off);
	return false; /* another RPID element: an unknown attribute here */
}

/* Filters the children of a revealed component (or of a tuple's <status>). */
static void filter_attrs(xmlNode *comp, bool device, const struct pidf_permissions *p)
{
	for (xmlNode *c = comp->children, *next; c; c = next) {
		bool keep;

		next = c->next;
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (xsafe_in(c, PRES_NS_PIDF)) {
			keep = true; /* status (filtered below), basic, contact, note, timestamp */
			if (!strcmp((const char *)c->name, "status"))
				filter_attrs(c, false, p);
		} else if (xsafe_is(c, PRES_NS_DM, "deviceID")) {
			keep = device || p->device_id || p->all_attributes;
		} else if (xsafe_is(c, PRES_NS_DM, "note") ||
			   xsafe_is(c, PRES_NS_DM, "timestamp")) {
			keep = true;
		} else if (p->all_attributes) {
			keep = true;
		} else if (xsafe_is(c, PRES_NS_RPID, "user-input")) {
			keep = p->user_input != PIDF_UI_FALSE;
			if (keep && p->user_input < PIDF_UI_FULL)
				xmlUnsetProp(c, (const xmlChar *)"last-input");
			if (keep && p->user_input < PIDF_UI_THRESHOLDS)
				xmlUnsetProp(c, (const xmlChar *)"idle-threshold");
		} else if (xsafe_in(c, PRES_NS_RPID)) {
			keep = rpid_ok(c, p);
		} else {
			keep = false; /* CIPID, caps, anything else: §3.3.3 */
		}
		if (!keep)
			drop(c);
	}
}

int pidf_filter(const char *doc, size_t len, const struct pidf_permissions *p, char **outp)
{
	static const struct pidf_permissions none;
	const char *why;
	xmlDoc *d;
	xmlNode *root;
	int err;

	*outp = NULL;
	if (!p)
		p = &none;
	d = xsafe_parse(doc, len, &why);
	if (!d)
		return SK_EBADMSG;
	root = xmlDocGetRootElement(d);
	if (!xsafe_is(root, PRES_NS_PIDF, "presence")) {
		xmlFreeDoc(d);
		return SK_EBADMSG;
	}
	for (xmlNode *c = root->children, *next; c; c = next) {
		next = c->next;
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (is_tuple(c)				   ? !service_ok(c, p)
		    : is_person(c)			   ? !p->all_persons
		    : is_device(c)			   ? !p->all_devices
		    : xsafe_is(c, PRES_NS_PIDF, "note") ? false
							   : !p->all_attributes)
			drop(c);
		else if (is_tuple(c) || is_person(c) || is_device(c))
			filter_attrs(c, is_device(c), p);
	}
	err = xsafe_dump(d, outp);
	xmlFreeDoc(d);
	return err;
}
