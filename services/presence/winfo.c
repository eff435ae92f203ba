/* winfo: watcherinfo document builder (RFC 3858 §4). */
#include <string.h>
#include "xsafe.h"
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "winfo.h"

const char *winfo_status_name(enum winfo_status s)
{
	static const char *const names[] = {"pending", "active", "waiting", "terminated"};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : NULL;
}

const char *winfo_event_name(enum winfo_event e)
{
	static const char *const names[] = {"subscribe", "approved", "deactivated", "probation",
					    "rejected",	 "timeout",  "giveup",	    "noresource"};

	return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : NULL;
}

static int attr(struct sk_buf *b, const char *name, const char *v)
{
	sk_buf_printf(b, " %s=\"", name);
	if (xsafe_escape(b, v))
		return SK_EINVAL;
	return sk_buf_puts(b, "\"");
}

static int watcher(struct sk_buf *b, const struct winfo_list *l, size_t i)
{
	const struct winfo_watcher *w = &l->w[i];
	const char *st = winfo_status_name(w->status), *ev = winfo_event_name(w->event);

	if (!w->id || !w->id[0] || !w->uri || !w->uri[0] || !st || !ev)
		return SK_EINVAL;
	/* RFC 3858 §4.2.1: the id identifies the subscription within the list. */
	for (size_t k = 0; k < i; k++)
		if (l->w[k].id && !strcmp(l->w[k].id, w->id))
			return SK_EINVAL;
	sk_buf_printf(b, "    <watcher status=\"%s\" event=\"%s\"", st, ev);
	if (attr(b, "id", w->id))
		return SK_EINVAL;
	if (w->display_name && attr(b, "display-name", w->display_name))
		return SK_EINVAL;
	if (w->duration >= 0)
		sk_buf_printf(b, " duration-subscribed=\"%ld\"", w->duration);
	if (w->expires >= 0)
		sk_buf_printf(b, " expiration=\"%ld\"", w->expires);
	sk_buf_puts(b, ">");
	if (xsafe_escape(b, w->uri))
		return SK_EINVAL;
	return sk_buf_puts(b, "</watcher>\n");
}

int winfo_build(unsigned long version, bool full, const struct winfo_list *lists, size_t n,
		char **outp)
{
	struct sk_buf b;
	int err = 0;

	*outp = NULL;
	if (n && !lists)
		return SK_EINVAL;
	sk_buf_init(&b);
	sk_buf_printf(&b,
		      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		      "<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\" version=\"%lu\" "
		      "state=\"%s\">\n",
		      version, full ? "full" : "partial");
	for (size_t i = 0; i < n && !err; i++) {
		const struct winfo_list *l = &lists[i];

		if (!l->resource || !l->resource[0] || !l->package || !l->package[0] ||
		    (l->n && !l->w)) {
			err = SK_EINVAL;
			break;
		}
		sk_buf_puts(&b, "  <watcher-list");
		if (attr(&b, "resource", l->resource) || attr(&b, "package", l->package)) {
			err = SK_EINVAL;
			break;
		}
		sk_buf_puts(&b, ">\n");
		for (size_t k = 0; k < l->n && !err; k++)
			err = watcher(&b, l, k);
		sk_buf_puts(&b, "  </watcher-list>\n");
	}
	sk_buf_puts(&b, "</watcherinfo>\n");
	if (!err)
		err = b.err;
	if (!err) {
		*outp = sk_strndup(b.data, b.len);
		if (!*outp)
			err = SK_ENOMEM;
	}
	sk_buf_release(&b);
	return err;
}
