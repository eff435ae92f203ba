/* rlsdoc: the resource lists a resource list server serves (RFC 4662), read from an
 * owner's rls-services document (RFC 4826 §4) and resource-lists document (RFC 4826
 * §3): which list URIs are defined, and the flattened members of one of them. Pure
 * and loop-free: the caller fetches the documents (XCAP store) and decides which
 * references it may follow (the owner's own documents only).
 *
 * A <service> holds either an inline <list> (rls-services namespace, children in the
 * resource-lists namespace) or a <resource-list> naming a list of a resource-lists
 * document by XCAP URI. Inside lists: <entry uri> (a member, its <display-name>),
 * nested <list> (flattened), <external anchor> (another list by XCAP URI) and
 * <entry-ref ref> (an entry by XCAP URI, relative to the XCAP root). The XCAP URIs
 * become references (struct rlsdoc_list.refs) the caller resolves with
 * rlsdoc_ref_parse + rlsdoc_list_add against the document they name. */
#ifndef SKEIN_RLSDOC_H
#define SKEIN_RLSDOC_H

#include <stdbool.h>
#include <stddef.h>

/* Members kept per list and references followed; more are cut (a NOTIFY with
 * hundreds of PIDF parts is already too large for UDP and most clients). */
#define RLSDOC_MAX_ENTRIES 200
#define RLSDOC_MAX_REFS	   16
#define RLSDOC_MAX_STEPS   8

struct rlsdoc_entry {
	char *uri;  /* as written in the document */
	char *name; /* <display-name>, NULL: none */
};

/* A flattened list (refcounted, sk_deref frees everything). */
struct rlsdoc_list {
	char *uri;  /* the service URI (rlsdoc_service_list), else NULL */
	char *name; /* the list's <display-name>, NULL: none */
	struct rlsdoc_entry *e;
	size_t n;
	char **refs; /* XCAP URIs still to resolve (resource-list, external, entry-ref) */
	size_t nrefs;
	bool cut; /* RLSDOC_MAX_ENTRIES or RLSDOC_MAX_REFS reached */
};

/* Every <service uri> of an rls-services document offering package pkg (a service
 * without <packages> offers every package), into *urisp (refcounted array of
 * refcounted strings: rlsdoc_strv_free), *np. 0, SK_EBADMSG (not an rls-services
 * document; *why set) or SK_ENOMEM. */
int rlsdoc_services(const char *buf, size_t len, const char *pkg, char ***urisp, size_t *np,
		    const char **why);
void rlsdoc_strv_free(char **v, size_t n);

/* The list of the first <service> of an rls-services document whose uri match()
 * accepts: inline entries flattened, references left in refs. 0, SK_ENOENT (no such
 * service), SK_EBADMSG (with *why) or SK_ENOMEM. */
typedef bool(rlsdoc_match_fn)(const char *uri, void *arg);
int rlsdoc_service_list(const char *buf, size_t len, rlsdoc_match_fn *match, void *arg,
			struct rlsdoc_list **lp, const char **why);

/* A reference into a resource-lists document: users/<xui>/<doc>, then the node
 * selector resource-lists/list[@name="a"]/list[@name="b"]... and optionally a last
 * entry[@uri="u"] (entry-ref). No selector: every list of the document. */
struct rlsdoc_ref {
	char xui[256]; /* decoded, e.g. "sip:joe@example.com" */
	char doc[256]; /* "index" */
	unsigned nlists;
	char list[RLSDOC_MAX_STEPS][128]; /* the names along the path */
	char entry[512];		  /* entry-ref: the entry's uri, "" none */
};

/* Parses an XCAP URI as found in <resource-list>, <external anchor> (absolute
 * http(s) URIs or relative to the XCAP root) or <entry-ref ref> (relative), percent-
 * encoded or not, into *ref. 0; SK_EINVAL when it is not a reference into a
 * resource-lists document this module can follow (position predicates, other
 * application usages, global documents); SK_ERANGE when a part is too long. */
int rlsdoc_ref_parse(const char *uri, struct rlsdoc_ref *ref);

/* Appends to l what ref selects in the resource-lists document buf: the entries of
 * the selected list (flattened, its references appended to l->refs) or, for an
 * entry-ref, that entry. Entries already in l (same uri string) are skipped. 0,
 * SK_ENOENT (nothing selected), SK_EBADMSG (with *why), SK_ENOMEM. */
int rlsdoc_list_add(struct rlsdoc_list *l, const char *buf, size_t len,
		    const struct rlsdoc_ref *ref, const char **why);

#endif
