/* rlmi: the body of a NOTIFY for a resource list subscription (RFC 4662 §5): the
 * Resource List Meta-Information document (application/rlmi+xml) and the
 * multipart/related body (RFC 2387) that carries it first and one part per resource
 * instance with state. Builders on plain structs; loop-free. The caller keeps the
 * version counter (RFC 4662 §5.2: +1 per NOTIFY of the subscription, from 0) and
 * makes the Content-IDs (unique, RFC 2392 syntax without the angle brackets). */
#ifndef SKEIN_RLMI_H
#define SKEIN_RLMI_H

#include <stdbool.h>
#include <stddef.h>

#define RLMI_MIME "application/rlmi+xml"

/* RFC 4662 §5.2: an instance's subscription state. */
enum rlmi_state { RLMI_ACTIVE, RLMI_PENDING, RLMI_TERMINATED };

/* One subscription to a resource (a back-end subscription of the RLS). Borrowed. */
struct rlmi_instance {
	const char *id; /* required, unique within its resource */
	enum rlmi_state state;
	const char *reason; /* terminated only (RFC 6665 §4.1.3 reasons), NULL: none */
	const char *cid;    /* Content-ID of its state in the multipart body, NULL: none */
	/* Its state, for rlmi_multipart; with cid only. */
	const char *body;
	size_t len;
	const char *ctype; /* "application/pidf+xml" */
};

struct rlmi_resource {
	const char *uri;  /* required */
	const char *name; /* display name, NULL: none */
	const struct rlmi_instance *inst;
	size_t n;
};

struct rlmi_list {
	const char *uri; /* the list's URI, required */
	unsigned long version;
	bool full;	  /* fullState */
	const char *name; /* NULL: none */
	const struct rlmi_resource *res;
	size_t n;
};

/* The RLMI document of l into *outp (refcounted, sk_deref). 0, SK_EINVAL (a missing
 * uri or id, a bad state, a string that is not UTF-8 or holds a control character,
 * a reason on a state other than terminated, a Content-ID with '<', '>', '"' or white
 * space) or SK_ENOMEM. */
int rlmi_build(const struct rlmi_list *l, char **outp);

/* The multipart/related body of l (RFC 4662 §5, RFC 2387): the RLMI document as the
 * root part with Content-ID start_cid, then one part per instance that has a cid,
 * with its Content-ID and Content-Type; CRLF line ends. *bodyp gets the body and
 * *ctypep the Content-Type header value (multipart/related;type="application/
 * rlmi+xml";start="<start_cid>";boundary="boundary"), both refcounted. The boundary
 * (1-70 characters of RFC 2046 §5.1.1's bchars, not ending in a space) must not
 * occur in any part: SK_EINVAL then, and for anything rlmi_build refuses, an
 * instance with a cid and no ctype, or a Content-Type with CR or LF. */
int rlmi_multipart(const struct rlmi_list *l, const char *boundary, const char *start_cid,
		   char **bodyp, char **ctypep);

#endif
