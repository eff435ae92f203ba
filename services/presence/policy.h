/* policy: evaluation of a presentity's presence authorization rules (common policy,
 * RFC 4745, with the pres-rules of RFC 5025) for one watcher: which rules match, the
 * combined sub-handling action and the combined permissions. A pure function of the
 * document as XCAP stores it, the watcher and the time; loop-free. */
#ifndef SKEIN_POLICY_H
#define SKEIN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "pidf.h"

/* RFC 5025 §3.2.1 sub-handling, valued so that the most permissive is the largest
 * (block < confirm < polite-block < allow): combining is taking the maximum. */
enum policy_action {
	POLICY_BLOCK = 0,
	POLICY_CONFIRM = 10,
	POLICY_POLITE_BLOCK = 20,
	POLICY_ALLOW = 30,
};

struct policy_query {
	const char *watcher; /* the watcher's URI, "sip:bob@example.com" (borrowed) */
	bool authenticated;  /* its identity was verified (RFC 5025 §3.1.1.1): only
			      * then can an <identity> condition match */
	const char *sphere;  /* the presentity's current sphere (RFC 4480 §3.2), or NULL */
	time_t now;	     /* for <validity> (RFC 4745 §7.3) */
};

struct policy_result {
	enum policy_action action;    /* combined, or the default when no rule says */
	unsigned matched;	      /* how many rules matched */
	bool from_rules;	      /* action came from a matching rule, not the default */
	struct pidf_permissions perm; /* combined (RFC 4745 §10.2: OR, union, maximum) */
};

/* Evaluates the ruleset doc[0..len) for q (RFC 4745 §10): a rule matches when every
 * one of its conditions does (an empty <conditions> always does; a condition this
 * code does not know never does). The action is the maximum sub-handling of the
 * matching rules; when none matches or none of them states one, dflt (RFC 5025
 * §3.2.1 leaves it to the server; confirm is usual). Permissions of the matching
 * rules are combined; with no match they are all false.
 * Returns 0 with r filled, or SK_EBADMSG with *why a static phrase when the document
 * is malformed (not a ruleset, rule without or with a duplicate id, bad sub-handling
 * or boolean value, bad <validity>, an identity without its attribute ...): the
 * caller then applies its default. SK_EINVAL when q has no watcher. why may be NULL. */
int policy_eval(const char *doc, size_t len, const struct policy_query *q, enum policy_action dflt,
		struct policy_result *r, const char **why);

/* "block", "confirm", "polite-block", "allow" (RFC 5025 §3.2.1); NULL otherwise. */
const char *policy_action_name(enum policy_action a);

/* Parses an xs:dateTime (RFC 4745 §7.3: "2003-08-15T10:20:00.000-05:00"); no zone
 * means UTC. 0 or SK_EINVAL. */
int policy_datetime(const char *s, time_t *t);

#endif
