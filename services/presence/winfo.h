/* winfo: watcher information documents (application/watcherinfo+xml, RFC 3858) for
 * the presence.winfo event package (RFC 3857): who watches a presentity, in what
 * state and why. A builder on plain structs; loop-free. The caller keeps the version
 * counter of each winfo subscription (RFC 3858 §4.2: +1 per NOTIFY, from 0). */
#ifndef SKEIN_WINFO_H
#define SKEIN_WINFO_H

#include <stdbool.h>
#include <stddef.h>

#define WINFO_MIME "application/watcherinfo+xml"

/* RFC 3858 §3 (the subscription's state in the RFC 3857 §5.2 state machine). */
enum winfo_status { WINFO_PENDING, WINFO_ACTIVE, WINFO_WAITING, WINFO_TERMINATED };

/* RFC 3858 §3: what made it change state. */
enum winfo_event {
	WINFO_EV_SUBSCRIBE,
	WINFO_EV_APPROVED,
	WINFO_EV_DEACTIVATED,
	WINFO_EV_PROBATION,
	WINFO_EV_REJECTED,
	WINFO_EV_TIMEOUT,
	WINFO_EV_GIVEUP,
	WINFO_EV_NORESOURCE,
};

/* One watcher (one subscription). Strings borrowed, UTF-8. */
struct winfo_watcher {
	const char *id;		  /* required: stable per subscription, unique in its list */
	const char *uri;	  /* required: the watcher's URI */
	const char *display_name; /* NULL: none (escaped here, whatever it holds) */
	enum winfo_status status;
	enum winfo_event event;
	long duration; /* duration-subscribed, seconds; < 0: not sent */
	long expires;  /* expiration, seconds; < 0: not sent */
};

/* One <watcher-list>: the watchers of resource for package ("presence"). */
struct winfo_list {
	const char *resource;
	const char *package;
	const struct winfo_watcher *w;
	size_t n;
};

/* The watcherinfo document (RFC 3858 §4) for lists[0..n), state "full" or (full
 * false) "partial" (then the lists hold only the watchers that changed, §4.3), into
 * *outp (refcounted, sk_deref). Returns 0, SK_EINVAL (a missing id, uri, resource or
 * package, an out-of-range enum, a string that is not UTF-8 or holds a control
 * character, two watchers of one list with the same id) or SK_ENOMEM. */
int winfo_build(unsigned long version, bool full, const struct winfo_list *lists, size_t n,
		char **outp);

const char *winfo_status_name(enum winfo_status s);
const char *winfo_event_name(enum winfo_event e);

#endif
