/* xsafe: the libxml2 discipline shared by every XML-handling module (presence
 * documents, XCAP): one safe parse (no network, no DTD, no entity expansion, a size
 * cap, UTF-8 only, namespace well-formed), element tests by namespace, strict UTF-8,
 * escaping, serialization into a refcounted string. */
#ifndef SKEIN_XSAFE_H
#define SKEIN_XSAFE_H

#include <stdbool.h>
#include <stddef.h>
#include <libxml/tree.h>

/* Largest document xsafe_parse takes (a PUBLISH body, a stored rules document). */
#define XSAFE_MAX (256 * 1024)


/* Parses buf[0..len) as a whole document. NULL with *why set (a static phrase) when
 * it is too large, not well-formed, not namespace well-formed, not UTF-8, or has a
 * document type declaration. Free with xmlFreeDoc. Sets libxml2's generic error
 * handler of the calling thread to a silent one (as xcap_doc_init does). */
xmlDoc *xsafe_parse(const char *buf, size_t len, const char **why);

/* n is an element named name in namespace ns. */
bool xsafe_is(const xmlNode *n, const char *ns, const char *name);
/* n is an element in namespace ns (any name). */
bool xsafe_in(const xmlNode *n, const char *ns);

/* The first child element of n named name in ns, NULL when none. */
xmlNode *xsafe_child(const xmlNode *n, const char *ns, const char *name);

/* The text content of n, whitespace-trimmed, into out (truncated to size); "" when
 * none. */
void xsafe_text(const xmlNode *n, char *out, size_t size);

struct sk_buf;

/* Strict UTF-8 of XML Chars (XML 1.0 §2.2). */
bool xsafe_utf8_ok(const char *s);

/* Appends s escaped for XML text or a double-quoted attribute value: & < > " and, so
 * that attribute-value normalization does not eat them, TAB CR LF as character
 * references. SK_EINVAL (nothing appended) when s is not strict UTF-8 or holds a
 * character XML 1.0 forbids (C0 controls other than TAB CR LF); else b->err. */
int xsafe_escape(struct sk_buf *b, const char *s);

/* doc serialized as UTF-8 with an XML declaration, as a new refcounted string
 * (sk_deref). 0 or SK_ENOMEM. */
int xsafe_dump(xmlDoc *doc, char **outp);

#endif
