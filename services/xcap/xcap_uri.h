/* xcap_uri: XCAP request URIs (RFC 4825 §6): the document selector (xcap-root, AUID,
 * global or users/<XUI>, document path) and the node selector after "~~" (§6.3),
 * with the namespace bindings of the query (§6.4). Pure and loop-free: everything
 * lands in the caller's struct; nothing is allocated. */
#ifndef SKEIN_XCAP_URI_H
#define SKEIN_XCAP_URI_H

#include <stdbool.h>
#include <stddef.h>

#define XCAP_STEPS_MAX	   16
#define XCAP_NS_MAX	   8
#define XCAP_NAME_SIZE	   64  /* a QName's local part or prefix, NUL included */
#define XCAP_VALUE_SIZE	   256 /* an attribute test's value, decoded */
#define XCAP_XUI_SIZE	   256
#define XCAP_DOC_SIZE	   256
#define XCAP_NSURI_SIZE	   256
#define XCAP_SELECTOR_SIZE 1024

/* One location step: NameorAny, then an optional position and attribute test
 * (by-name, by-pos, by-attr, by-pos-attr). */
struct xcap_step {
	char prefix[XCAP_NAME_SIZE]; /* "" unprefixed: the application usage's namespace */
	char name[XCAP_NAME_SIZE];   /* local name, or "*" */
	unsigned pos;		     /* 1-based; 0: no position predicate */
	bool has_attr;
	char attr_prefix[XCAP_NAME_SIZE]; /* "" unprefixed: no namespace (XML rules) */
	char attr_name[XCAP_NAME_SIZE];
	char attr_value[XCAP_VALUE_SIZE];
};

enum xcap_node_kind {
	XCAP_NODE_DOC,	/* no node selector: the whole document */
	XCAP_NODE_ELEM, /* steps select an element */
	XCAP_NODE_ATTR, /* steps, then "@name" */
	XCAP_NODE_NS,	/* steps, then "namespace::*" (GET only, §7.10) */
};

struct xcap_uri {
	char auid[XCAP_NAME_SIZE];
	bool global;		 /* .../<auid>/global/...; else users/<xui>/... */
	char xui[XCAP_XUI_SIZE]; /* decoded, e.g. "sip:alice@example.com"; "" if global */
	char doc[XCAP_DOC_SIZE]; /* path below the tree, e.g. "index" or "a/b" */
	enum xcap_node_kind node;
	unsigned nsteps;
	struct xcap_step step[XCAP_STEPS_MAX];
	char attr_prefix[XCAP_NAME_SIZE]; /* XCAP_NODE_ATTR */
	char attr_name[XCAP_NAME_SIZE];
	unsigned nns; /* prefix bindings from ?xmlns(p=uri)... */
	struct {
		char prefix[XCAP_NAME_SIZE];
		char uri[XCAP_NSURI_SIZE];
	} ns[XCAP_NS_MAX];
	char selector[XCAP_SELECTOR_SIZE]; /* the decoded node selector ("" if none) */
};

/* Parses path (the HTTP path, still percent-encoded, without the query) and query
 * ("" or NULL: none) under root (e.g. "/xcap"; "" or "/" for the server root).
 * Returns 0 with *u filled; SK_ENOENT when path is not under root or names no
 * document (404); SK_EINVAL when malformed (400); SK_ERANGE when a part is longer
 * than the struct holds (414-ish; callers answer 400). */
int xcap_uri_parse(struct xcap_uri *u, const char *root, const char *path, const char *query);

/* Parses a node selector alone (already percent-decoded), into u's node fields. */
int xcap_uri_parse_selector(struct xcap_uri *u, const char *sel);

/* The namespace URI bound to prefix by the query; NULL when unbound. */
const char *xcap_uri_ns(const struct xcap_uri *u, const char *prefix);

/* Percent-decodes n bytes of in into out (size with the NUL). A NUL byte (%00) or a
 * bad escape is SK_EINVAL; SK_ERANGE when it does not fit. */
int xcap_uri_unescape(char *out, size_t size, const char *in, size_t n);

/* Decodes an XML AttValue without its quotes (XML 1.0 §2.3: no '<'; '&' begins one
 * of the five predefined or a character reference) into out. SK_EINVAL when it is
 * not one; SK_ERANGE when it does not fit. */
int xcap_uri_attvalue(char *out, size_t size, const char *s, size_t n);

#endif
