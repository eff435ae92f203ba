/* xcap_doc: what one XCAP request does to one document (RFC 4825 §7, §8), on bytes in
 * and bytes out, so that it runs the same under a unit test, a fuzzer and the server:
 * GET, PUT and DELETE of a document, an element, an attribute (and GET of
 * namespace bindings), the §8.2.3 insert-or-replace rules, cannot-insert and
 * cannot-delete, and the usage's constraints (xcap_auid). Loop-free; libxml2 parses
 * with no network and no external entities (XXE-safe), documents with a DTD are
 * refused. */
#ifndef SKEIN_XCAP_DOC_H
#define SKEIN_XCAP_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include "skein/sk_buf.h"
#include "xcap_auid.h"
#include "xcap_error.h"
#include "xcap_uri.h"

/* Largest document (and request body) handled. */
#define XCAP_DOC_MAX (1024 * 1024)
/* An ETag: 32 lower-case hex digits (the first 128 bits of SHA-256 of the stored
 * bytes: a strong validator, RFC 9110 §8.8.1) and the NUL; quoted on the wire. */
#define XCAP_ETAG_SIZE 33

#define XCAP_EL_MIME  "application/xcap-el+xml"
#define XCAP_ATT_MIME "application/xcap-att+xml"
#define XCAP_NS_MIME  "application/xcap-ns+xml"

struct xcap_result {
	int status;		       /* 200, 201, 400, 404, 405, 409, 415 */
	const char *content_type;      /* of body (static), NULL when body is empty */
	struct sk_buf body;	       /* what GET selected, or the xcap-error of a 409 */
	struct xcap_conflict conflict; /* with 409 */
	/* Writes: the document to store (write), or the document to remove (remove). */
	bool write, remove;
	struct sk_buf doc;
};

/* Applies method ("GET", "PUT", "DELETE") with the selector of u to the current
 * document cur[0..cur_len) (cur NULL: there is none), body being the request body
 * and ctype its Content-Type (NULL: not checked). Fills r (initialised here; release
 * with xcap_result_release). Returns 0 (the outcome is r->status) or SK_ENOMEM. */
int xcap_doc_apply(const struct xcap_auid *a, const struct xcap_uri *u, const char *method,
		   const char *cur, size_t cur_len, const char *body, size_t body_len,
		   const char *ctype, struct xcap_result *r);
void xcap_result_release(struct xcap_result *r);

/* The ETag of a stored document. */
void xcap_etag(const char *doc, size_t len, char out[XCAP_ETAG_SIZE]);

/* Once per process before any other call (libxml2's parser and a silent error
 * handler); safe to call again. */
void xcap_doc_init(void);

#endif
