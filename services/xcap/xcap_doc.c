/* xcap_doc: selection and modification of XCAP documents with libxml2 (RFC 4825 §6.3
 * node selection, §8.2 PUT, §8.3 DELETE, §8.4 GET). */
#include <libxml/parser.h>
#include <libxml/xmlsave.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "skein/sk_err.h"
#include "xcap_doc.h"
#include "xsafe.h"

/* No network, no DTD loading, no entity substitution (XML_PARSE_NOENT stays off: an
 * entity is never expanded into the tree, so no XXE and no billion laughs), no
 * error printing: the outcome is the status. */
#define PARSE_OPTS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA)

static void silent(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

void xcap_doc_init(void)
{
	xmlInitParser();
	xmlSetGenericErrorFunc(NULL, silent);
}

void xcap_etag(const char *doc, size_t len, char out[XCAP_ETAG_SIZE])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)doc, len, md);
	for (size_t i = 0; i < (XCAP_ETAG_SIZE - 1) / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void xcap_result_release(struct xcap_result *r)
{
	sk_buf_release(&r->body);
	sk_buf_release(&r->doc);
}

/* ---- selection (§6.3: each step must lead to exactly one element, §8.x) ---- */

struct sel {
	const struct xcap_uri *u;
	const char *defns;
	unsigned nsteps; /* how many of u's steps to apply */
	unsigned count;	 /* matches, counted up to 2 */
	xmlNode *found;	 /* the first */
};

static const char *step_ns(const struct sel *s, const char *prefix)
{
	return prefix[0] ? xcap_uri_ns(s->u, prefix) : s->defns;
}

static bool name_match(const struct sel *s, const xmlNode *n, const struct xcap_step *st)
{
	const char *ns;

	if (n->type != XML_ELEMENT_NODE)
		return false;
	if (!strcmp(st->name, "*"))
		return true; /* any element, any namespace (XPath "*") */
	if (strcmp((const char *)n->name, st->name))
		return false;
	ns = step_ns(s, st->prefix);
	if (!n->ns || !n->ns->href)
		return !ns || !ns[0];
	return ns && !strcmp((const char *)n->ns->href, ns);
}

static bool attr_match(const struct sel *s, xmlNode *n, const struct xcap_step *st)
{
	const char *ns = st->attr_prefix[0] ? xcap_uri_ns(s->u, st->attr_prefix) : NULL;
	xmlChar *v = ns ? xmlGetNsProp(n, (const xmlChar *)st->attr_name, (const xmlChar *)ns)
			: xmlGetNoNsProp(n, (const xmlChar *)st->attr_name);
	bool ok = v && !strcmp((const char *)v, st->attr_value);

	xmlFree(v);
	return ok;
}

/* Depth-first over the steps from parent; stops at a second match. */
static void walk(struct sel *s, xmlNode *parent, unsigned k)
{
	const struct xcap_step *st = &s->u->step[k];
	unsigned pos = 0;

	for (xmlNode *c = parent->children; c && s->count < 2; c = c->next) {
		if (!name_match(s, c, st))
			continue;
		pos++;
		if (st->pos && pos != st->pos)
			continue;
		if (st->has_attr && !attr_match(s, c, st))
			continue;
		if (k + 1 == s->nsteps) {
			if (!s->count++)
				s->found = c;
		} else {
			walk(s, c, k + 1);
		}
	}
}

/* The element the first nsteps steps select: its count (0, 1 or 2 for "more"). */
static unsigned select_n(xmlDoc *doc, const struct xcap_uri *u, const char *defns, unsigned nsteps,
			 xmlNode **out)
{
	struct sel s = {.u = u, .defns = defns, .nsteps = nsteps};

	if (nsteps)
		walk(&s, (xmlNode *)doc, 0);
	*out = s.found;
	return s.count;
}

/* ---- helpers ---- */

static int conflict(struct xcap_result *r, enum xcap_error_kind kind, const char *phrase)
{
	r->status = 409;
	if (r->conflict.kind == XCAP_ERR_NONE)
		xcap_conflict_set(&r->conflict, kind, NULL, NULL, phrase);
	sk_buf_reset(&r->body);
	xcap_error_body(&r->body, &r->conflict);
	r->content_type = XCAP_ERROR_MIME;
	return r->body.err;
}

static int status(struct xcap_result *r, int code)
{
	r->status = code;
	return 0;
}

/* Only UTF-8 documents (RFC 4825 §8.2.1: not-utf-8). */
static bool utf8_ok(const xmlDoc *doc)
{
	return !doc->encoding || !strcasecmp((const char *)doc->encoding, "UTF-8");
}

/* Namespace well-formedness (Namespaces in XML §5): libxml2 reports an undeclared
 * prefix as a warning and keeps the node, named "p:x" in no namespace, which would be
 * stored and then not parse again. And it writes a namespace name back without
 * escaping '<' or '&' (xmlns="a&lt;b" comes out xmlns="a<b"): such names are refused
 * too (a namespace name is a URI: neither belongs in one). Walks el and everything
 * under it. Both found by fuzz_xcap_doc. */
static bool ns_ok(xmlNode *el)
{
	xmlNode *n = el;

	while (n) {
		if (n->type == XML_ELEMENT_NODE) {
			if (!n->ns && strchr((const char *)n->name, ':'))
				return false;
			for (xmlNs *d = n->nsDef; d; d = d->next)
				if (d->href && strpbrk((const char *)d->href, "<&"))
					return false;
			for (xmlAttr *a = n->properties; a; a = a->next)
				if (!a->ns && strchr((const char *)a->name, ':'))
					return false;
			if (n->children) {
				n = n->children;
				continue;
			}
		}
		while (n != el && !n->next)
			n = n->parent;
		if (n == el)
			break;
		n = n->next;
	}
	return true;
}

/* Parses a whole document; NULL with r's 409 filled when it is not one we take. */
static xmlDoc *parse_doc(const char *buf, size_t len, struct xcap_result *r)
{
	xmlDoc *doc;

	if (len > XCAP_DOC_MAX || len > INT32_MAX) {
		conflict(r, XCAP_ERR_CONSTRAINT, "document too large");
		return NULL;
	}
	doc = xmlReadMemory(buf, (int)len, NULL, NULL, PARSE_OPTS);
	if (!doc) {
		conflict(r, XCAP_ERR_NOT_WELL_FORMED, NULL);
		return NULL;
	}
	if (!xmlDocGetRootElement(doc) || !ns_ok(xmlDocGetRootElement(doc))) {
		conflict(r, XCAP_ERR_NOT_WELL_FORMED, "not namespace well-formed");
	} else if (!utf8_ok(doc)) {
		conflict(r, XCAP_ERR_NOT_UTF8, NULL);
	} else if (doc->intSubset || doc->extSubset) {
		conflict(r, XCAP_ERR_CONSTRAINT, "a document type declaration is not allowed");
	} else {
		return doc;
	}
	xmlFreeDoc(doc);
	return NULL;
}

static int serialize(xmlDoc *doc, struct sk_buf *out)
{
	xmlChar *mem = NULL;
	int n = 0;

	xmlDocDumpMemoryEnc(doc, &mem, &n, "UTF-8");
	if (!mem)
		return SK_ENOMEM;
	sk_buf_append(out, mem, (size_t)n);
	xmlFree(mem);
	return out->err;
}

static int dump_node(xmlDoc *doc, xmlNode *n, struct sk_buf *out)
{
	xmlBuffer *b = xmlBufferCreate();

	if (!b)
		return SK_ENOMEM;
	if (xmlNodeDump(b, doc, n, 0, 0) < 0) {
		xmlBufferFree(b);
		return SK_ENOMEM;
	}
	sk_buf_append(out, xmlBufferContent(b), (size_t)xmlBufferLength(b));
	xmlBufferFree(b);
	return out->err;
}

/* The attribute the terminal selector of u names on el (NULL when absent). */
static xmlAttr *find_attr(xmlNode *el, const struct xcap_uri *u)
{
	const char *ns = u->attr_prefix[0] ? xcap_uri_ns(u, u->attr_prefix) : NULL;

	if (ns)
		return xmlHasNsProp(el, (const xmlChar *)u->attr_name, (const xmlChar *)ns);
	for (xmlAttr *a = el->properties; a; a = a->next)
		if (!a->ns && !strcmp((const char *)a->name, u->attr_name))
			return a;
	return NULL;
}

/* ---- GET (§8.4) ---- */

static int get_node(xmlDoc *doc, xmlNode *el, const struct xcap_uri *u, struct xcap_result *r)
{
	if (u->node == XCAP_NODE_ELEM) {
		r->content_type = XCAP_EL_MIME;
		return dump_node(doc, el, &r->body) ? SK_ENOMEM : status(r, 200);
	}
	if (u->node == XCAP_NODE_ATTR) {
		xmlAttr *a = find_attr(el, u);
		xmlChar *v;

		if (!a)
			return status(r, 404);
		v = xmlNodeListGetString(doc, a->children, 1);
		xcap_xml_escape(&r->body, v ? (const char *)v : "", v ? strlen((char *)v) : 0);
		xmlFree(v);
		r->content_type = XCAP_ATT_MIME;
		return r->body.err ? SK_ENOMEM : status(r, 200);
	}
	/* namespace::* (§7.10): the element, empty, with every binding in scope. */
	{
		xmlNs **list = xmlGetNsList(doc, el);

		sk_buf_printf(&r->body, "<%s%s%s",
			      el->ns && el->ns->prefix ? (char *)el->ns->prefix : "",
			      el->ns && el->ns->prefix ? ":" : "", (const char *)el->name);
		for (size_t i = 0; list && list[i]; i++) {
			sk_buf_printf(&r->body, " xmlns%s%s=\"", list[i]->prefix ? ":" : "",
				      list[i]->prefix ? (const char *)list[i]->prefix : "");
			xcap_xml_escape(&r->body, (const char *)list[i]->href,
					strlen((const char *)list[i]->href));
			sk_buf_puts(&r->body, "\"");
		}
		sk_buf_puts(&r->body, "/>");
		xmlFree(list);
		r->content_type = XCAP_NS_MIME;
		return r->body.err ? SK_ENOMEM : status(r, 200);
	}
}

/* ---- PUT of an element (§8.2.3) ---- */

/* The body as exactly one element, parsed in the context of ctx so that the
 * document's namespace bindings apply (§7.4); whitespace around it is allowed. */
static xmlNode *parse_fragment(xmlNode *ctx, const char *body, size_t len)
{
	xmlNode *list = NULL, *el = NULL;

	if (len > XCAP_DOC_MAX || !len ||
	    xmlParseInNodeContext(ctx, body, (int)len, PARSE_OPTS, &list) != XML_ERR_OK) {
		xmlFreeNodeList(list);
		return NULL;
	}
	for (xmlNode *n = list; n; n = n->next) {
		if (n->type == XML_ELEMENT_NODE && !el) {
			el = n;
			continue;
		}
		if (n->type == XML_TEXT_NODE && xmlIsBlankNode(n))
			continue;
		xmlFreeNodeList(list);
		return NULL; /* a second element, text, a comment, a PI */
	}
	if (!el || !ns_ok(el)) {
		xmlFreeNodeList(list);
		return NULL;
	}
	/* Keep the element only. */
	for (xmlNode *n = list, *next; n; n = next) {
		next = n->next;
		if (n != el) {
			xmlUnlinkNode(n);
			xmlFreeNode(n);
		}
	}
	xmlUnlinkNode(el);
	return el;
}

/* Where a new element goes under parent (§8.2.3): with a position n in the last
 * step, after the (n-1)th sibling that matches the step's name (before the first one
 * for n = 1); without, after every child. */
static int insert(struct sel *s, xmlNode *parent, xmlNode *el, const struct xcap_step *st)
{
	xmlNode *after = NULL, *first = NULL;
	unsigned pos = 0;

	if (st->pos > 1) {
		for (xmlNode *c = parent->children; c; c = c->next) {
			if (!name_match(s, c, st))
				continue;
			if (++pos == st->pos - 1) {
				after = c;
				break;
			}
		}
		if (!after)
			return SK_ENOENT;
		return xmlAddNextSibling(after, el) ? 0 : SK_ENOMEM;
	}
	if (st->pos == 1)
		for (xmlNode *c = parent->children; c && !first; c = c->next)
			if (name_match(s, c, st))
				first = c;
	if (first)
		return xmlAddPrevSibling(first, el) ? 0 : SK_ENOMEM;
	return xmlAddChild(parent, el) ? 0 : SK_ENOMEM;
}

static int put_element(xmlDoc *doc, const struct xcap_auid *a, const struct xcap_uri *u,
		       const char *body, size_t len, struct xcap_result *r)
{
	struct sel s = {.u = u, .defns = a->ns};
	xmlNode *old, *parent, *el, *check;
	unsigned n = select_n(doc, u, a->ns, u->nsteps, &old);

	if (n > 1)
		return status(r, 404); /* §8.2.1: more than one: not a valid selection */
	if (n == 1) {
		el = parse_fragment(old->parent, body, len);
		if (!el)
			return conflict(r, XCAP_ERR_NOT_XML_FRAG, NULL);
		xmlReplaceNode(old, el);
		if (select_n(doc, u, a->ns, u->nsteps, &check) != 1 || check != el) {
			xmlReplaceNode(el, old);
			xmlFreeNode(el);
			return conflict(r, XCAP_ERR_CANNOT_INSERT,
					"the selector would not select the new element");
		}
		xmlFreeNode(old);
		r->status = 200;
		return 0;
	}
	if (u->nsteps == 1)
		return conflict(r, XCAP_ERR_CANNOT_INSERT, "a document has one root element");
	if (select_n(doc, u, a->ns, u->nsteps - 1, &parent) != 1)
		return conflict(r, XCAP_ERR_NO_PARENT, NULL);
	el = parse_fragment(parent, body, len);
	if (!el)
		return conflict(r, XCAP_ERR_NOT_XML_FRAG, NULL);
	if (insert(&s, parent, el, &u->step[u->nsteps - 1])) {
		xmlFreeNode(el);
		return conflict(r, XCAP_ERR_CANNOT_INSERT, "no sibling before that position");
	}
	if (select_n(doc, u, a->ns, u->nsteps, &check) != 1 || check != el) {
		xmlUnlinkNode(el);
		xmlFreeNode(el);
		return conflict(r, XCAP_ERR_CANNOT_INSERT,
				"the selector would not select the new element");
	}
	r->status = 201;
	return 0;
}

/* ---- PUT of an attribute (§8.2.4) ---- */

static int put_attr(xmlDoc *doc, const struct xcap_auid *a, const struct xcap_uri *u,
		    const char *body, size_t len, struct xcap_result *r)
{
	char val[4096];
	const char *ns = u->attr_prefix[0] ? xcap_uri_ns(u, u->attr_prefix) : NULL;
	xmlNode *el, *check;
	xmlAttr *at;
	xmlChar *old = NULL;
	xmlNs *nsp = NULL;
	bool existed;

	if (select_n(doc, u, a->ns, u->nsteps, &el) != 1)
		return conflict(r, XCAP_ERR_NO_PARENT, NULL);
	if (xcap_uri_attvalue(val, sizeof(val), body, len) || memchr(val, '"', strlen(val)) != NULL)
		return conflict(r, XCAP_ERR_NOT_XML_ATT_VALUE, NULL);
	if (!xsafe_utf8_ok((const char *)val))
		return conflict(r, XCAP_ERR_NOT_UTF8, NULL);
	at = find_attr(el, u);
	existed = at != NULL;
	if (at)
		old = xmlNodeListGetString(doc, at->children, 1);
	if (ns) {
		/* An attribute in a namespace needs a prefix: a default namespace
		 * declaration of the same URI does not do. */
		nsp = xmlSearchNsByHref(doc, el, (const xmlChar *)ns);
		if (!nsp || !nsp->prefix)
			nsp = xmlNewNs(el, (const xmlChar *)ns, (const xmlChar *)u->attr_prefix);
		if (!nsp) {
			xmlFree(old);
			return conflict(r, XCAP_ERR_CANNOT_INSERT,
					"the prefix is bound to another namespace on that element");
		}
	}
	if (!xmlSetNsProp(el, nsp, (const xmlChar *)u->attr_name, (const xmlChar *)val)) {
		xmlFree(old);
		return SK_ENOMEM;
	}
	if (select_n(doc, u, a->ns, u->nsteps, &check) != 1 || check != el) {
		/* The new value changed what the element selector selects: undo. */
		if (existed)
			xmlSetNsProp(el, nsp, (const xmlChar *)u->attr_name, old);
		else if ((at = find_attr(el, u)))
			xmlRemoveProp(at);
		xmlFree(old);
		return conflict(r, XCAP_ERR_CANNOT_INSERT,
				"the selector would not select the element any more");
	}
	xmlFree(old);
	r->status = existed ? 200 : 201;
	return 0;
}

/* ---- DELETE (§8.3) ---- */

static int delete_node(xmlDoc *doc, const struct xcap_auid *a, const struct xcap_uri *u,
		       xmlNode *el, struct xcap_result *r)
{
	xmlNode *parent = el->parent, *next = el->next, *check;

	if (u->node == XCAP_NODE_ATTR) {
		xmlAttr *at = find_attr(el, u);

		if (!at)
			return status(r, 404);
		xmlRemoveProp(at);
		r->status = 200;
		return 0;
	}
	if (u->nsteps == 1)
		return conflict(r, XCAP_ERR_CANNOT_DELETE, "the root element cannot be deleted");
	xmlUnlinkNode(el);
	if (select_n(doc, u, a->ns, u->nsteps, &check) != 0) {
		/* A positional selector would now select the next sibling: put it back. */
		if (next)
			xmlAddPrevSibling(next, el);
		else
			xmlAddChild(parent, el);
		return conflict(r, XCAP_ERR_CANNOT_DELETE,
				"the selector would select another element afterwards");
	}
	xmlFreeNode(el);
	r->status = 200;
	return 0;
}

/* Content-Type of a PUT body, §7.4-§7.5: the usage's type for a document,
 * application/xcap-el+xml for an element, application/xcap-att+xml for an attribute. */
static bool ctype_ok(const char *ctype, const char *want)
{
	size_t n = strlen(want);

	return !ctype || !ctype[0] ||
	       (!strncasecmp(ctype, want, n) && (!ctype[n] || ctype[n] == ';' || ctype[n] == ' '));
}

int xcap_doc_apply(const struct xcap_auid *a, const struct xcap_uri *u, const char *method,
		   const char *cur, size_t cur_len, const char *body, size_t body_len,
		   const char *ctype, struct xcap_result *r)
{
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	bool put = !strcmp(method, "PUT"), del = !strcmp(method, "DELETE");
	xmlDoc *doc = NULL;
	xmlNode *el = NULL;
	int err = 0;

	memset(r, 0, sizeof(*r));
	sk_buf_init(&r->body);
	sk_buf_init(&r->doc);
	if (!get && !put && !del)
		return status(r, 405);
	if ((put || del) && a->read_only)
		return status(r, 405);

	if (u->node == XCAP_NODE_DOC) {
		if (get) {
			if (!cur)
				return status(r, 404);
			sk_buf_append(&r->body, cur, cur_len);
			r->content_type = a->mime;
			return r->body.err ? SK_ENOMEM : status(r, 200);
		}
		if (del) {
			if (!cur)
				return status(r, 404);
			r->remove = true;
			return status(r, 200);
		}
		if (!ctype_ok(ctype, a->mime))
			return status(r, 415);
		doc = parse_doc(body, body_len, r);
		if (!doc)
			return r->body.err;
		if (xcap_auid_check(a, doc, &r->conflict)) {
			xmlFreeDoc(doc);
			return conflict(r, r->conflict.kind, NULL);
		}
		xmlFreeDoc(doc);
		/* The bytes as sent are what GET returns and what the ETag covers. */
		sk_buf_append(&r->doc, body, body_len);
		r->write = true;
		r->status = cur ? 200 : 201;
		return r->doc.err;
	}

	if (!cur) /* §8.2.3: the document is the missing ancestor of a new node */
		return put ? conflict(r, XCAP_ERR_NO_PARENT, "the document does not exist")
			   : status(r, 404);
	if (u->node == XCAP_NODE_NS && !get)
		return status(r, 405);
	if (put && !ctype_ok(ctype, u->node == XCAP_NODE_ELEM ? XCAP_EL_MIME : XCAP_ATT_MIME))
		return status(r, 415);
	if (cur_len > XCAP_DOC_MAX || cur_len > INT32_MAX)
		return status(r, 500);
	doc = xmlReadMemory(cur, (int)cur_len, NULL, NULL, PARSE_OPTS);
	if (!doc)
		return status(r, 500); /* only well-formed documents are ever stored */

	if (put && u->node == XCAP_NODE_ELEM) {
		err = put_element(doc, a, u, body, body_len, r);
	} else if (put) {
		err = put_attr(doc, a, u, body, body_len, r);
	} else if (select_n(doc, u, a->ns, u->nsteps, &el) != 1) {
		err = status(r, 404);
	} else if (get) {
		err = get_node(doc, el, u, r);
	} else {
		err = delete_node(doc, a, u, el, r);
	}
	if (!err && (put || del) && r->status < 300) {
		if (xcap_auid_check(a, doc, &r->conflict)) {
			err = conflict(r, r->conflict.kind, NULL);
		} else {
			err = serialize(doc, &r->doc);
			r->write = !err;
		}
	}
	xmlFreeDoc(doc);
	return err;
}
