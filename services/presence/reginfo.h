/* reginfo: registration information documents (application/reginfo+xml, RFC 3680
 * §5.3) for the reg event package: the contacts bound to an address of record and
 * what last happened to each. A builder on plain structs; loop-free. The caller keeps
 * the version counter of each reg subscription (RFC 3680 §5.3: +1 per NOTIFY, from
 * 0) and the registration's contacts (the registrar's bindings). */
#ifndef SKEIN_REGINFO_H
#define SKEIN_REGINFO_H

#include <stdbool.h>
#include <stddef.h>

#define REGINFO_MIME "application/reginfo+xml"
#define REGINFO_NS   "urn:ietf:params:xml:ns:reginfo"

/* RFC 3680 §5.1.2: a contact is active or terminated. */
enum reginfo_state { REGINFO_ACTIVE, REGINFO_TERMINATED };

/* RFC 3680 §5.1.2: the transition that brought the contact to its state. */
enum reginfo_event {
	REGINFO_EV_REGISTERED,
	REGINFO_EV_CREATED,
	REGINFO_EV_REFRESHED,
	REGINFO_EV_SHORTENED,
	REGINFO_EV_EXPIRED,
	REGINFO_EV_DEACTIVATED,
	REGINFO_EV_PROBATION,
	REGINFO_EV_UNREGISTERED,
	REGINFO_EV_REJECTED,
};

/* One contact (one binding). Strings borrowed, UTF-8. */
struct reginfo_binding {
	const char *id;		  /* required: stable per binding, unique in the registration */
	const char *uri;	  /* required: the contact URI */
	const char *display_name; /* NULL: none */
	enum reginfo_state state;
	enum reginfo_event event;
	long expires;	    /* seconds left; < 0: not sent */
	long duration;	    /* duration-registered, seconds; < 0: not sent */
	int q_milli;	    /* q * 1000 (0..1000); < 0: not sent */
	const char *callid; /* NULL or "": not sent */
	long cseq;	    /* < 0: not sent */
};

/* One <registration> (RFC 3680 §5.3): the contacts of aor. The registration's
 * state follows from them (§5.1.1): "init" without contacts, "active" with at least
 * one active contact, else "terminated". */
struct reginfo_reg {
	const char *aor; /* required: the address of record, a URI ("sip:alice@example.com") */
	const char *id;	 /* NULL: derived from aor (stable, as §5.3 wants) */
	const struct reginfo_binding *b;
	size_t n;
};

/* The reginfo document for regs[0..n), state "full" or (full false) "partial" (then
 * the registrations hold only the contacts that changed, §5.3), into *outp
 * (refcounted, sk_deref). Returns 0, SK_EINVAL (a missing aor, id or uri, an
 * out-of-range enum or q, a string that is not UTF-8 or holds a control character,
 * two contacts of one registration with the same id) or SK_ENOMEM. */
int reginfo_build(unsigned long version, bool full, const struct reginfo_reg *regs, size_t n,
		  char **outp);

const char *reginfo_state_name(enum reginfo_state s);
const char *reginfo_event_name(enum reginfo_event e);

/* A short stable id for a string (a binding key, an AOR): "<prefix><16 hex digits>"
 * of its 64-bit FNV-1a hash, into out (size >= strlen(prefix) + 17). */
void reginfo_id(char *out, size_t size, const char *prefix, const char *s);

#endif
