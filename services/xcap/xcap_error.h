/* xcap_error: the conflict report of RFC 4825 §11 (application/xcap-error+xml), the
 * body of every 409 the XCAP server sends. */
#ifndef SKEIN_XCAP_ERROR_H
#define SKEIN_XCAP_ERROR_H

struct sk_buf;

#define XCAP_ERROR_MIME "application/xcap-error+xml"

/* The child of <xcap-error> (§11.2). */
enum xcap_error_kind {
	XCAP_ERR_NONE,
	XCAP_ERR_NOT_WELL_FORMED,   /* <not-well-formed/>: a document PUT */
	XCAP_ERR_NOT_XML_FRAG,	    /* <not-xml-frag/>: an element PUT */
	XCAP_ERR_NO_PARENT,	    /* <no-parent/>: the parent does not exist */
	XCAP_ERR_SCHEMA,	    /* <schema-validation-error/> */
	XCAP_ERR_NOT_XML_ATT_VALUE, /* <not-xml-att-value/>: an attribute PUT */
	XCAP_ERR_CANNOT_INSERT,	    /* <cannot-insert/>: §8.2.3 */
	XCAP_ERR_CANNOT_DELETE,	    /* <cannot-delete/>: §8.3 */
	XCAP_ERR_UNIQUENESS,	    /* <uniqueness-failure><exists field=".."/> */
	XCAP_ERR_CONSTRAINT,	    /* <constraint-failure phrase=".."/> */
	XCAP_ERR_NOT_UTF8,	    /* <not-utf-8/> */
};

/* What went wrong; field/value for uniqueness, phrase for the others. */
struct xcap_conflict {
	enum xcap_error_kind kind;
	char field[512];  /* a node selector relative to the document, e.g. ".../entry/@uri" */
	char value[256];  /* the duplicate value ("" when none) */
	char phrase[128]; /* a human-readable reason ("" when none) */
	char alt[256];	  /* uniqueness: a value that would be unique, <alt-value> ("" none) */
};

/* Sets c (field, value and phrase are printf-free copies, cut to fit; alt ""). */
void xcap_conflict_set(struct xcap_conflict *c, enum xcap_error_kind kind, const char *field,
		       const char *value, const char *phrase);
/* The element name, e.g. "uniqueness-failure". */
const char *xcap_error_name(enum xcap_error_kind kind);
/* Appends the whole XML body for c to b; returns b->err. */
int xcap_error_body(struct sk_buf *b, const struct xcap_conflict *c);
/* Appends s with the five XML special characters escaped; returns b->err. */
int xcap_xml_escape(struct sk_buf *b, const char *s, size_t n);

#endif
