/* pidf: PIDF presence documents (RFC 3863) with the data model of RFC 4479 and its
 * extensions RPID (RFC 4480), CIPID (RFC 4482) and caps (RFC 5196), as pure
 * functions on bytes: checking a PUBLISH body, composing the publications of one
 * presentity into one document, and the privacy filter of the presentity's
 * pres-rules (RFC 5025 §3.3). Loop-free and thread-agnostic (libxml2 underneath,
 * parsed as services/xml/xsafe.h says). Outputs are refcounted strings: release with sk_deref. */
#ifndef SKEIN_PIDF_H
#define SKEIN_PIDF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PIDF_MIME "application/pidf+xml"

/* A PUBLISH body is a PIDF document the composer will take: root <presence> in
 * urn:ietf:params:xml:ns:pidf with an entity attribute; every <tuple> has an id and
 * a <status>; every dm:person and dm:device has an id, and a dm:device a dm:deviceID;
 * ids are unique in the document (all are xs:ID, RFC 3863 §4.1.2, RFC 4479 §6).
 * Elements in other namespaces are allowed. Returns 0, or SK_EBADMSG with *why a
 * static phrase naming the fault (for the 400 reason phrase). why may be NULL. */
int pidf_check(const char *body, size_t len, const char **why);

/* One publication (one device's PUBLISH, RFC 3903). Borrowed. */
struct pidf_pub {
	const char *body;
	size_t len;
	uint64_t time; /* when it was published (any unit): larger is newer */
};

/* Composes the publications pubs[0..n) of the presentity entity into one document,
 * in *outp (refcounted string, sk_deref):
 * - every tuple, dm:person and dm:device of every publication, copied whole (RPID,
 *   CIPID, caps and any other extension children kept), with its namespaces
 *   re-declared where needed; when two carry the same id, the newest publication's
 *   wins (equal times: the later one in pubs);
 * - presence-level <note>s of the newest publication only, other presence-level
 *   extension elements of every publication;
 * - entity is the presentity's, whatever the publications said;
 * - a publication that fails pidf_check is skipped (the caller checked it before
 *   storing it: a bad one must not hide the others).
 * With no usable publication: fallback[0..fallback_len) (the pidf-manipulation
 * document, RFC 4827) if given and valid, with entity set; otherwise the offline
 * document (pidf_offline). Returns 0, SK_EINVAL (no entity) or SK_ENOMEM. */
int pidf_compose(const struct pidf_pub *pubs, size_t n, const char *entity, const char *fallback,
		 size_t fallback_len, char **outp);

/* The offline document for entity: one tuple "offline", basic closed (RFC 3863
 * §4.1.4). baresip and Linphone both show a closed tuple as offline; see
 * docs/presence.md. 0 or SK_ENOMEM / SK_EINVAL. */
int pidf_offline(const char *entity, char **outp);

/* RFC 5025 §3.3.2.12 provide-user-input values, in increasing order. */
enum pidf_user_input {
	PIDF_UI_FALSE = 0,
	PIDF_UI_BARE,	    /* <user-input> without its attributes */
	PIDF_UI_THRESHOLDS, /* with idle-threshold, without last-input */
	PIDF_UI_FULL,
};

#define PIDF_SCHEMES_MAX 8

/* What a watcher may see (RFC 5025 §3.3). All zero: nothing but the <presence>
 * element. Combined over matching rules by policy.h (booleans OR-ed, RFC 4745 §10). */
struct pidf_permissions {
	/* §3.3.1 data components: all or none (occurrence-id, class, deviceID and
	 * service-uri selections are not applied yet, see docs/presence.md) ... */
	bool all_services, all_persons, all_devices;
	/* ... except tuples by the scheme of their <contact> (service-uri-scheme). */
	char schemes[PIDF_SCHEMES_MAX][16];
	unsigned nschemes;
	/* §3.3.2 presence attributes of the revealed components. */
	bool activities, class_, device_id, mood, place_is, place_type, privacy, relationship,
	    status_icon, sphere, time_offset;
	enum pidf_user_input user_input;
	/* §3.3.3: every attribute, including unknown ones (CIPID, caps, ...). */
	bool all_attributes;
};

/* Applies p to the document doc[0..len) (a composed document) into *outp. What a
 * revealed component keeps without a permission: PIDF <status><basic>, <contact>,
 * <note>, <timestamp>, and dm:deviceID, dm:note, dm:timestamp of persons and devices.
 * p NULL permits nothing (as all zero).
 * Returns 0, SK_EBADMSG (doc is not PIDF) or SK_ENOMEM. */
int pidf_filter(const char *doc, size_t len, const struct pidf_permissions *p, char **outp);

#endif
