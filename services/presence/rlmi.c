/* rlmi: RLMI documents and multipart/related NOTIFY bodies (RFC 4662 §5). */
#include <string.h>
#include "xsafe.h"
#include "rlmi.h"
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"

static const char *state_name(enum rlmi_state s)
{
	static const char *const names[] = {"active", "pending", "terminated"};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : NULL;
}

static bool cid_ok(const char *cid)
{
	return cid && cid[0] && !strpbrk(cid, "<>\" \t\r\n") && xsafe_utf8_ok(cid);
}

static int attr(struct sk_buf *b, const char *name, const char *v)
{
	sk_buf_printf(b, " %s=\"", name);
	if (xsafe_escape(b, v))
		return SK_EINVAL;
	return sk_buf_puts(b, "\"");
}

static int name_el(struct sk_buf *b, const char *indent, const char *name)
{
	if (!name)
		return 0;
	sk_buf_printf(b, "%s<name>", indent);
	if (xsafe_escape(b, name))
		return SK_EINVAL;
	return sk_buf_puts(b, "</name>\n");
}

static int instance(struct sk_buf *b, const struct rlmi_resource *r, size_t i)
{
	const struct rlmi_instance *in = &r->inst[i];
	const char *st = state_name(in->state);

	if (!in->id || !in->id[0] || !st || (in->reason && in->state != RLMI_TERMINATED) ||
	    (in->cid && !cid_ok(in->cid)))
		return SK_EINVAL;
	for (size_t k = 0; k < i; k++) /* §5.2: unique within the resource */
		if (r->inst[k].id && !strcmp(r->inst[k].id, in->id))
			return SK_EINVAL;
	sk_buf_puts(b, "    <instance");
	if (attr(b, "id", in->id))
		return SK_EINVAL;
	sk_buf_printf(b, " state=\"%s\"", st);
	if ((in->reason && attr(b, "reason", in->reason)) || (in->cid && attr(b, "cid", in->cid)))
		return SK_EINVAL;
	return sk_buf_puts(b, "/>\n");
}

static int build(struct sk_buf *b, const struct rlmi_list *l)
{
	int err;

	if (!l || !l->uri || !l->uri[0] || (l->n && !l->res))
		return SK_EINVAL;
	sk_buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		       "<list xmlns=\"urn:ietf:params:xml:ns:rlmi\"");
	if (attr(b, "uri", l->uri))
		return SK_EINVAL;
	sk_buf_printf(b, " version=\"%lu\" fullState=\"%s\">\n", l->version,
		      l->full ? "true" : "false");
	if ((err = name_el(b, "  ", l->name)))
		return err;
	for (size_t i = 0; i < l->n; i++) {
		const struct rlmi_resource *r = &l->res[i];

		if (!r->uri || !r->uri[0] || (r->n && !r->inst))
			return SK_EINVAL;
		sk_buf_puts(b, "  <resource");
		if (attr(b, "uri", r->uri))
			return SK_EINVAL;
		sk_buf_puts(b, ">\n");
		if ((err = name_el(b, "    ", r->name)))
			return err;
		for (size_t k = 0; k < r->n; k++)
			if ((err = instance(b, r, k)))
				return err;
		sk_buf_puts(b, "  </resource>\n");
	}
	sk_buf_puts(b, "</list>\n");
	return b->err;
}

static int finish(struct sk_buf *b, int err, char **outp)
{
	if (!err) {
		*outp = sk_strndup(b->data, b->len);
		err = *outp ? 0 : SK_ENOMEM;
	}
	sk_buf_release(b);
	return err;
}

int rlmi_build(const struct rlmi_list *l, char **outp)
{
	struct sk_buf b;

	*outp = NULL;
	sk_buf_init(&b);
	return finish(&b, build(&b, l), outp);
}

/* RFC 2046 §5.1.1: 1 to 70 bchars, the last not a space. */
static bool boundary_ok(const char *s)
{
	static const char bchars[] =
	    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "'()+_,-./:=? ";
	size_t n = s ? strlen(s) : 0;

	return n >= 1 && n <= 70 && strspn(s, bchars) == n && s[n - 1] != ' ';
}

/* The delimiter "--boundary" occurs in p[0..len)? */
static bool contains(const char *p, size_t len, const char *boundary)
{
	size_t bl = strlen(boundary);

	for (size_t i = 0; i + bl + 2 <= len; i++)
		if (p[i] == '-' && p[i + 1] == '-' && !memcmp(p + i + 2, boundary, bl))
			return true;
	return false;
}

static void part_head(struct sk_buf *b, const char *boundary, const char *cid, const char *ctype)
{
	sk_buf_printf(b,
		      "--%s\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <%s>\r\n"
		      "Content-Type: %s\r\n\r\n",
		      boundary, cid, ctype);
}

int rlmi_multipart(const struct rlmi_list *l, const char *boundary, const char *start_cid,
		   char **bodyp, char **ctypep)
{
	struct sk_buf doc, b;
	int err;

	*bodyp = *ctypep = NULL;
	if (!boundary_ok(boundary) || !cid_ok(start_cid))
		return SK_EINVAL;
	sk_buf_init(&doc);
	sk_buf_init(&b);
	err = build(&doc, l);
	if (!err && contains(doc.data, doc.len, boundary))
		err = SK_EINVAL;
	if (!err) {
		part_head(&b, boundary, start_cid, "application/rlmi+xml;charset=\"UTF-8\"");
		sk_buf_append(&b, doc.data, doc.len);
		sk_buf_puts(&b, "\r\n");
	}
	for (size_t i = 0; !err && i < l->n; i++)
		for (size_t k = 0; !err && k < l->res[i].n; k++) {
			const struct rlmi_instance *in = &l->res[i].inst[k];

			if (!in->cid)
				continue;
			if (!in->ctype || !in->ctype[0] || strpbrk(in->ctype, "\r\n") ||
			    (in->len && !in->body) || contains(in->body, in->len, boundary) ||
			    !strcmp(in->cid, start_cid)) {
				err = SK_EINVAL;
				break;
			}
			part_head(&b, boundary, in->cid, in->ctype);
			sk_buf_append(&b, in->body, in->len);
			sk_buf_puts(&b, "\r\n");
		}
	if (!err) {
		sk_buf_printf(&b, "--%s--\r\n", boundary);
		err = b.err;
	}
	sk_buf_release(&doc);
	if (!err) {
		*ctypep = sk_strdupf("multipart/related;type=\"application/rlmi+xml\";"
				     "start=\"<%s>\";boundary=\"%s\"",
				     start_cid, boundary);
		if (!*ctypep)
			err = SK_ENOMEM;
	}
	err = finish(&b, err, bodyp);
	if (err)
		*ctypep = sk_deref(*ctypep);
	return err;
}
