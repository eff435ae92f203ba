/* rlsdoc: rls-services and resource-lists documents (RFC 4826) into flattened member
 * lists for the resource list server (rlsdoc.h). */
#include <libxml/tree.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "rlsdoc.h"
#include "xsafe.h"

#define NS_RL  "urn:ietf:params:xml:ns:resource-lists"
#define NS_RLS "urn:ietf:params:xml:ns:rls-services"

/* Nesting followed inside one document (the XCAP server refuses deeper than 64). */
enum { MAX_DEPTH = 16, NAME_SIZE = 256 };

void rlsdoc_strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		sk_deref(v[i]);
	sk_deref(v);
}

static void list_destroy(void *p)
{
	struct rlsdoc_list *l = p;

	sk_deref(l->uri);
	sk_deref(l->name);
	for (size_t i = 0; i < l->n; i++) {
		sk_deref(l->e[i].uri);
		sk_deref(l->e[i].name);
	}
	sk_deref(l->e);
	rlsdoc_strv_free(l->refs, l->nrefs);
}

static struct rlsdoc_list *list_alloc(void)
{
	struct rlsdoc_list *l = sk_zalloc(sizeof(*l), list_destroy);

	if (!l)
		return NULL;
	l->e = sk_zalloc_array(RLSDOC_MAX_ENTRIES, sizeof(*l->e), NULL);
	l->refs = sk_zalloc_array(RLSDOC_MAX_REFS, sizeof(*l->refs), NULL);
	if (!l->e || !l->refs)
		return sk_deref(l);
	return l;
}

/* An attribute (no namespace) as a refcounted string; NULL when absent or empty. */
static char *prop(const xmlNode *n, const char *name, int *err)
{
	xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
	char *s = NULL;

	if (v && *v) {
		s = sk_strdup((const char *)v);
		if (!s)
			*err = SK_ENOMEM;
	}
	xmlFree(v);
	return s;
}

/* Children of a listType in the resource-lists namespace (RFC 4826 §3, and the
 * rls-services <list> whose type is rl:listType); the rls-services namespace is
 * taken too, a mistake clients make with the default namespace. */
static bool is_rl(const xmlNode *k, const char *name)
{
	return xsafe_is(k, NS_RL, name) || xsafe_is(k, NS_RLS, name);
}

static char *display_name(const xmlNode *n, int *err)
{
	const xmlNode *d;
	char buf[NAME_SIZE];
	char *s;

	for (d = n->children; d && !is_rl(d, "display-name"); d = d->next)
		;
	if (!d)
		return NULL;
	xsafe_text(d, buf, sizeof(buf));
	if (!buf[0])
		return NULL;
	s = sk_strdup(buf);
	if (!s)
		*err = SK_ENOMEM;
	return s;
}

/* Takes the references uri and name. */
static int add_entry(struct rlsdoc_list *l, char *uri, char *name)
{
	bool dup = false;

	for (size_t i = 0; i < l->n && !dup; i++)
		dup = !strcmp(l->e[i].uri, uri);
	if (dup || l->n == RLSDOC_MAX_ENTRIES) {
		l->cut |= !dup;
		sk_deref(uri);
		sk_deref(name);
		return 0;
	}
	l->e[l->n].uri = uri;
	l->e[l->n].name = name;
	l->n++;
	return 0;
}

static void add_ref(struct rlsdoc_list *l, char *ref)
{
	if (l->nrefs == RLSDOC_MAX_REFS) {
		l->cut = true;
		sk_deref(ref);
		return;
	}
	l->refs[l->nrefs++] = ref;
}

/* The members of a listType element, nested lists flattened (the subscriber
 * sees one flat list: no nested RLMI, RFC 4662 §5 would allow it). */
static int collect(struct rlsdoc_list *l, const xmlNode *list, unsigned depth)
{
	int err = 0;

	if (depth > MAX_DEPTH) {
		l->cut = true;
		return 0;
	}
	for (const xmlNode *k = list->children; k && !err; k = k->next) {
		char *v;

		if (is_rl(k, "entry")) {
			if ((v = prop(k, "uri", &err))) {
				char *name = display_name(k, &err);

				if (!err)
					err = add_entry(l, v, name);
				else {
					sk_deref(v);
					sk_deref(name);
				}
			}
		} else if (is_rl(k, "list")) {
			err = collect(l, k, depth + 1);
		} else if (is_rl(k, "external")) {
			if ((v = prop(k, "anchor", &err)))
				add_ref(l, v);
		} else if (is_rl(k, "entry-ref")) {
			if ((v = prop(k, "ref", &err)))
				add_ref(l, v);
		}
	}
	return err;
}

static xmlNode *root_of(const char *buf, size_t len, const char *ns, const char *name,
			xmlDoc **docp, const char **why)
{
	xmlDoc *doc = xsafe_parse(buf, len, why);
	xmlNode *root;

	*docp = doc;
	if (!doc)
		return NULL;
	root = xmlDocGetRootElement(doc);
	if (!root || !xsafe_is(root, ns, name)) {
		*why = !strcmp(name, "rls-services") ? "not an rls-services document"
						     : "not a resource-lists document";
		return NULL;
	}
	return root;
}

/* RFC 4826 §4: a service without <packages> is for every package. */
static bool offers(const xmlNode *svc, const char *pkg)
{
	const xmlNode *p = xsafe_child(svc, NS_RLS, "packages");
	char buf[64];

	if (!p || !pkg)
		return true;
	for (const xmlNode *k = p->children; k; k = k->next) {
		if (!xsafe_is(k, NS_RLS, "package"))
			continue;
		xsafe_text(k, buf, sizeof(buf));
		if (!strcasecmp(buf, pkg))
			return true;
	}
	return false;
}

int rlsdoc_services(const char *buf, size_t len, const char *pkg, char ***urisp, size_t *np,
		    const char **why)
{
	xmlDoc *doc;
	xmlNode *root = root_of(buf, len, NS_RLS, "rls-services", &doc, why);
	char **v = NULL;
	size_t n = 0, max = 0;
	int err = 0;

	*urisp = NULL;
	*np = 0;
	if (!root) {
		err = SK_EBADMSG;
		goto out;
	}
	for (xmlNode *k = root->children; k; k = k->next)
		max += xsafe_is(k, NS_RLS, "service");
	v = sk_zalloc_array(max ? max : 1, sizeof(*v), NULL);
	if (!v) {
		err = SK_ENOMEM;
		goto out;
	}
	for (xmlNode *k = root->children; k && !err; k = k->next) {
		char *uri;

		if (!xsafe_is(k, NS_RLS, "service") || !offers(k, pkg))
			continue;
		if ((uri = prop(k, "uri", &err)))
			v[n++] = uri;
	}
	if (err) {
		rlsdoc_strv_free(v, n);
		v = NULL;
		n = 0;
	}
	*urisp = v;
	*np = n;
out:
	xmlFreeDoc(doc);
	return err;
}

int rlsdoc_service_list(const char *buf, size_t len, rlsdoc_match_fn *match, void *arg,
			struct rlsdoc_list **lp, const char **why)
{
	xmlDoc *doc;
	xmlNode *root = root_of(buf, len, NS_RLS, "rls-services", &doc, why), *svc = NULL;
	struct rlsdoc_list *l = NULL;
	int err = 0;

	*lp = NULL;
	if (!root) {
		err = SK_EBADMSG;
		goto out;
	}
	for (xmlNode *k = root->children; k && !svc; k = k->next) {
		xmlChar *uri;

		if (!xsafe_is(k, NS_RLS, "service"))
			continue;
		uri = xmlGetNoNsProp(k, (const xmlChar *)"uri");
		if (uri && match((const char *)uri, arg))
			svc = k;
		xmlFree(uri);
	}
	if (!svc) {
		err = SK_ENOENT;
		goto out;
	}
	if (!(l = list_alloc())) {
		err = SK_ENOMEM;
		goto out;
	}
	l->uri = prop(svc, "uri", &err);
	for (xmlNode *k = svc->children; k && !err; k = k->next) {
		if (xsafe_is(k, NS_RLS, "list")) {
			/* the schema allows one <list>; of several, the first names it */
			if (!l->name)
				l->name = display_name(k, &err);
			if (!err)
				err = collect(l, k, 0);
		} else if (xsafe_is(k, NS_RLS, "resource-list")) {
			char ref[2048];
			char *s;

			xsafe_text(k, ref, sizeof(ref));
			if (!ref[0])
				continue;
			if (!(s = sk_strdup(ref)))
				err = SK_ENOMEM;
			else
				add_ref(l, s);
		}
	}
	if (err)
		l = sk_deref(l);
	*lp = l;
out:
	xmlFreeDoc(doc);
	return err;
}

/* ---- XCAP URIs (RFC 4825 §6) ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes in[0..n) into out. */
static int unescape(char *out, size_t size, const char *in, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c == '%') {
			int h, lo;

			if (i + 2 >= n || (h = hexval(in[i + 1])) < 0 ||
			    (lo = hexval(in[i + 2])) < 0 || (h | lo) == 0)
				return SK_EINVAL;
			c = (char)(h * 16 + lo);
			i += 2;
		}
		if (o + 1 >= size)
			return SK_ERANGE;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* An AttValue of a selector predicate (RFC 4825 §6.3), quotes removed: the five
 * predefined entities decoded. */
static int attvalue(char *out, size_t size, const char *s, size_t n)
{
	static const struct {
		const char *ent;
		char c;
	} ents[] = {
	    {"&quot;", '"'}, {"&apos;", '\''}, {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}};
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '&') {
			size_t j;

			for (j = 0; j < sizeof(ents) / sizeof(ents[0]); j++) {
				size_t el = strlen(ents[j].ent);

				if (n - i >= el && !strncmp(s + i, ents[j].ent, el)) {
					c = ents[j].c;
					i += el - 1;
					break;
				}
			}
			if (j == sizeof(ents) / sizeof(ents[0]))
				return SK_EINVAL;
		}
		if (o + 1 >= size)
			return SK_ERANGE;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* One step "[prefix:]name" with an optional [@[prefix:]attr="value"]: the local
 * names and the decoded value into the buffers; *has_pred. */
static int step(const char *s, size_t n, char *name, size_t nsize, char *attr, size_t asize,
		char *val, size_t vsize, bool *has_pred)
{
	const char *e = s + n, *br = memchr(s, '[', n), *nend = br ? br : e;
	const char *colon = memchr(s, ':', (size_t)(nend - s)), *p, *eq, *q, *qend;
	size_t l;

	p = colon ? colon + 1 : s;
	l = (size_t)(nend - p);
	if (!l || l >= nsize)
		return SK_EINVAL;
	memcpy(name, p, l);
	name[l] = '\0';
	*has_pred = br != NULL;
	if (!br)
		return 0;
	/* Positions ([2]) are not followed: a list is named by its name. */
	if (e[-1] != ']' || e - br < 3 || br[1] != '@')
		return SK_EINVAL;
	p = br + 2;
	if (!(eq = memchr(p, '=', (size_t)(e - 1 - p))))
		return SK_EINVAL;
	if ((colon = memchr(p, ':', (size_t)(eq - p))))
		p = colon + 1;
	l = (size_t)(eq - p);
	if (!l || l >= asize)
		return SK_EINVAL;
	memcpy(attr, p, l);
	attr[l] = '\0';
	q = eq + 1;
	qend = e - 2;
	if (qend <= q || (*q != '"' && *q != '\'') || *qend != *q)
		return SK_EINVAL;
	return attvalue(val, vsize, q + 1, (size_t)(qend - q - 1));
}

/* Splits the decoded selector at '/' outside quotes and checks its steps. */
static int selector(const char *sel, struct rlsdoc_ref *ref)
{
	const char *s = sel;
	unsigned i = 0;

	while (*s) {
		const char *e = s;
		char quote = 0, name[64], attr[64], val[512];
		bool pred;
		int err;

		for (; *e && (quote || *e != '/'); e++) {
			if (quote && *e == quote)
				quote = 0;
			else if (!quote && (*e == '"' || *e == '\''))
				quote = *e;
		}
		err = step(s, (size_t)(e - s), name, sizeof(name), attr, sizeof(attr), val,
			   sizeof(val), &pred);
		if (err)
			return err;
		if (i == 0) {
			if (strcmp(name, "resource-lists") || pred)
				return SK_EINVAL;
		} else if (!strcmp(name, "list") && pred && !strcmp(attr, "name") &&
			   !ref->entry[0]) {
			if (ref->nlists == RLSDOC_MAX_STEPS)
				return SK_ERANGE;
			if (strlen(val) >= sizeof(ref->list[0]))
				return SK_ERANGE;
			strcpy(ref->list[ref->nlists++], val);
		} else if (!strcmp(name, "entry") && pred && !strcmp(attr, "uri") &&
			   !ref->entry[0] && ref->nlists) {
			snprintf(ref->entry, sizeof(ref->entry), "%s", val);
		} else {
			return SK_EINVAL;
		}
		i++;
		s = *e ? e + 1 : e;
	}
	return i ? 0 : SK_EINVAL;
}

int rlsdoc_ref_parse(const char *uri, struct rlsdoc_ref *ref)
{
	static const char tree[] = "resource-lists/users/";
	const char *tilde = strstr(uri, "/~~/"), *end, *p, *at = NULL, *slash;
	char sel[1024];
	int err;

	memset(ref, 0, sizeof(*ref));
	end = tilde ? tilde : uri + strcspn(uri, "?#");
	/* The last "resource-lists/users/" at the start or after a '/' before the
	 * selector: whatever precedes it is the scheme, host and XCAP root. */
	for (p = uri; (p = strstr(p, tree)) && p < end; p++)
		if (p == uri || p[-1] == '/')
			at = p;
	if (!at)
		return SK_EINVAL;
	at += sizeof(tree) - 1;
	slash = memchr(at, '/', (size_t)(end - at));
	if (!slash || slash == at || slash + 1 >= end)
		return SK_EINVAL;
	if ((err = unescape(ref->xui, sizeof(ref->xui), at, (size_t)(slash - at))) ||
	    (err = unescape(ref->doc, sizeof(ref->doc), slash + 1, (size_t)(end - slash - 1))))
		return err;
	if (!tilde)
		return 0;
	p = tilde + 4;
	/* ?xmlns(...) bindings (§6.4) are not needed: prefixes are ignored. */
	if ((err = unescape(sel, sizeof(sel), p, strcspn(p, "?#"))))
		return err;
	return selector(sel, ref);
}

static xmlNode *named_list(const xmlNode *parent, const char *name)
{
	for (xmlNode *k = parent->children; k; k = k->next) {
		xmlChar *v;
		bool hit;

		if (!xsafe_is(k, NS_RL, "list"))
			continue;
		v = xmlGetNoNsProp(k, (const xmlChar *)"name");
		hit = v && !strcmp((const char *)v, name);
		xmlFree(v);
		if (hit)
			return k;
	}
	return NULL;
}

int rlsdoc_list_add(struct rlsdoc_list *l, const char *buf, size_t len,
		    const struct rlsdoc_ref *ref, const char **why)
{
	xmlDoc *doc;
	xmlNode *cur = root_of(buf, len, NS_RL, "resource-lists", &doc, why);
	int err = 0;

	if (!cur) {
		err = SK_EBADMSG;
		goto out;
	}
	for (unsigned i = 0; i < ref->nlists && cur; i++)
		cur = named_list(cur, ref->list[i]);
	if (!cur) {
		err = SK_ENOENT;
	} else if (ref->entry[0]) {
		xmlNode *k;

		for (k = cur->children; k; k = k->next) {
			xmlChar *v;
			bool hit;

			if (!xsafe_is(k, NS_RL, "entry"))
				continue;
			v = xmlGetNoNsProp(k, (const xmlChar *)"uri");
			hit = v && !strcmp((const char *)v, ref->entry);
			xmlFree(v);
			if (hit)
				break;
		}
		if (!k) {
			err = SK_ENOENT;
		} else {
			char *uri = sk_strdup(ref->entry), *name = display_name(k, &err);

			if (!uri || err) {
				sk_deref(uri);
				sk_deref(name);
				err = SK_ENOMEM;
			} else {
				err = add_entry(l, uri, name);
			}
		}
	} else {
		/* No selector: the document's lists, all of them. */
		err = collect(l, cur, 0);
	}
out:
	xmlFreeDoc(doc);
	return err;
}
