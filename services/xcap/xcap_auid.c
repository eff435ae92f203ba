/* xcap_auid: application usages (RFC 4826 resource-lists and rls-services, RFC 5025
 * pres-rules, RFC 4827 pidf-manipulation, RFC 4825 §12 xcap-caps) and their
 * uniqueness constraints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "xcap_auid.h"

#define NS_RL	"urn:ietf:params:xml:ns:resource-lists"
#define NS_RLS	"urn:ietf:params:xml:ns:rls-services"
#define NS_CP	"urn:ietf:params:xml:ns:common-policy"
#define NS_PIDF "urn:ietf:params:xml:ns:pidf"
#define NS_CAPS "urn:ietf:params:xml:ns:xcap-caps"

enum { PATH_SIZE = 512, UNIQUE_MAX = 100000 };

static bool is_elem(const xmlNode *n, const char *ns, const char *name)
{
	return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
	       !strcmp((const char *)n->ns->href, ns) && !strcmp((const char *)n->name, name);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The children <name> (in ns) of parent: each must carry attr (required) and no two
 * may share its value. path is the selector of parent, for the error's field. */
static int unique_children(xmlNode *parent, const char *ns, const char *name, const char *attr,
			   bool required, const char *path, struct xcap_conflict *c)
{
	char **vals = NULL, field[PATH_SIZE];
	size_t n = 0, cap = 0;
	int err = 0;

	for (xmlNode *k = parent->children; k; k = k->next) {
		char *v;

		if (!is_elem(k, ns, name))
			continue;
		v = (char *)xmlGetNoNsProp(k, (const xmlChar *)attr);
		if (!v) {
			if (!required)
				continue;
			snprintf(field, sizeof(field), "%s/%s/@%s", path, name, attr);
			xcap_conflict_set(c, XCAP_ERR_SCHEMA, field, NULL,
					  "a required attribute is missing");
			err = SK_EINVAL;
			goto out;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char **nv = nc <= UNIQUE_MAX ? realloc(vals, nc * sizeof(*vals)) : NULL;

			if (!nv) {
				xmlFree(v);
				err = SK_ENOMEM;
				goto out;
			}
			vals = nv;
			cap = nc;
		}
		vals[n++] = v;
	}
	if (n > 1)
		qsort(vals, n, sizeof(*vals), cmp_str);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(vals[i - 1], vals[i]))
			continue;
		snprintf(field, sizeof(field), "%s/%s/@%s", path, name, attr);
		xcap_conflict_set(c, XCAP_ERR_UNIQUENESS, field, vals[i], NULL);
		snprintf(c->phrase, sizeof(c->phrase), "%s \"%.80s\" is not unique", attr, vals[i]);
		err = SK_EINVAL;
		break;
	}
out:
	for (size_t i = 0; i < n; i++)
		xmlFree(vals[i]);
	free(vals);
	return err;
}

/* RFC 4826 §3.4.5 (and the schema, §3.3): within one parent, <list> names are unique;
 * within one list, <entry> uris, <entry-ref> refs and <external> anchors are. */
static int rl_list(xmlNode *list, const char *path, unsigned depth, struct xcap_conflict *c)
{
	char sub[PATH_SIZE];
	int err;

	if (depth > 64) {
		xcap_conflict_set(c, XCAP_ERR_CONSTRAINT, path, NULL, "lists nested too deep");
		return SK_EINVAL;
	}
	if ((err = unique_children(list, NS_RL, "list", "name", false, path, c)) ||
	    (err = unique_children(list, NS_RL, "entry", "uri", true, path, c)) ||
	    (err = unique_children(list, NS_RL, "entry-ref", "ref", true, path, c)) ||
	    (err = unique_children(list, NS_RL, "external", "anchor", true, path, c)))
		return err;
	for (xmlNode *k = list->children; k; k = k->next) {
		char *name;

		if (!is_elem(k, NS_RL, "list"))
			continue;
		name = (char *)xmlGetNoNsProp(k, (const xmlChar *)"name");
		if (name)
			snprintf(sub, sizeof(sub), "%s/list[@name=\"%.100s\"]", path, name);
		else
			snprintf(sub, sizeof(sub), "%s/list", path);
		xmlFree(name);
		if ((err = rl_list(k, sub, depth + 1, c)))
			return err;
	}
	return 0;
}

static int check_resource_lists(xmlDoc *doc, struct xcap_conflict *c)
{
	return rl_list(xmlDocGetRootElement(doc), "resource-lists", 0, c);
}

/* RFC 4826 §4.4: a <service> uri is unique (across the user's documents, and the
 * cluster's; here: within the document). */
static int check_rls_services(xmlDoc *doc, struct xcap_conflict *c)
{
	return unique_children(xmlDocGetRootElement(doc), NS_RLS, "service", "uri", true,
			       "rls-services", c);
}

/* RFC 4745 §7 (common policy, used by RFC 5025): every <rule> has a unique id. */
static int check_pres_rules(xmlDoc *doc, struct xcap_conflict *c)
{
	return unique_children(xmlDocGetRootElement(doc), NS_CP, "rule", "id", true, "ruleset", c);
}

/* RFC 4827 §4 (a PIDF document, RFC 3863 §4.1.2: tuple ids unique within it). */
static int check_pidf(xmlDoc *doc, struct xcap_conflict *c)
{
	return unique_children(xmlDocGetRootElement(doc), NS_PIDF, "tuple", "id", true, "presence",
			       c);
}

static const struct xcap_auid table[] = {
    {"resource-lists", NS_RL, "application/resource-lists+xml", "resource-lists", false, false,
     check_resource_lists},
    {"rls-services", NS_RLS, "application/rls-services+xml", "rls-services", false, false,
     check_rls_services},
    {"pres-rules", NS_CP, "application/auth-policy+xml", "ruleset", false, false, check_pres_rules},
    {"pidf-manipulation", NS_PIDF, "application/pidf+xml", "presence", false, false, check_pidf},
    {"xcap-caps", NS_CAPS, "application/xcap-caps+xml", "xcap-caps", true, true, NULL},
};

const struct xcap_auid *xcap_auid_table(size_t *n)
{
	*n = sizeof(table) / sizeof(table[0]);
	return table;
}

const struct xcap_auid *xcap_auid_find(const char *auid)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (!strcmp(table[i].auid, auid))
			return &table[i];
	return NULL;
}

int xcap_auid_check(const struct xcap_auid *a, xmlDoc *doc, struct xcap_conflict *c)
{
	xmlNode *root = xmlDocGetRootElement(doc);

	if (!root || !is_elem(root, a->ns, a->root)) {
		char phrase[128];

		snprintf(phrase, sizeof(phrase), "the root element must be <%s> in %s", a->root,
			 a->ns);
		xcap_conflict_set(c, XCAP_ERR_SCHEMA, NULL, NULL, phrase);
		return SK_EINVAL;
	}
	return a->check ? a->check(doc, c) : 0;
}

int xcap_auid_caps(struct sk_buf *b)
{
	size_t n = sizeof(table) / sizeof(table[0]);

	sk_buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		       "<xcap-caps xmlns=\"" NS_CAPS "\">\n  <auids>\n");
	for (size_t i = 0; i < n; i++)
		sk_buf_printf(b, "    <auid>%s</auid>\n", table[i].auid);
	sk_buf_puts(b, "  </auids>\n  <extensions/>\n  <namespaces>\n");
	for (size_t i = 0; i < n; i++)
		sk_buf_printf(b, "    <namespace>%s</namespace>\n", table[i].ns);
	sk_buf_puts(b, "    <namespace>urn:ietf:params:xml:ns:xcap-error</namespace>\n"
		       "  </namespaces>\n</xcap-caps>\n");
	return b->err;
}
