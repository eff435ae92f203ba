/* reginfo: registration information document builder (RFC 3680 §5.3, schema §5.4). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "xsafe.h"
#include "skein/sk_hash.h"
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "reginfo.h"

const char *reginfo_state_name(enum reginfo_state s)
{
	static const char *const names[] = {"active", "terminated"};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : NULL;
}

const char *reginfo_event_name(enum reginfo_event e)
{
	static const char *const names[] = {"registered", "created",	  "refreshed",
					    "shortened",  "expired",	  "deactivated",
					    "probation",  "unregistered", "rejected"};

	return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : NULL;
}

void reginfo_id(char *out, size_t size, const char *prefix, const char *s)
{
	uint64_t h = sk_fnv64_str(SK_FNV64_BASIS, s);

	snprintf(out, size, "%s%016llx", prefix ? prefix : "", (unsigned long long)h);
}

static int attr(struct sk_buf *b, const char *name, const char *v)
{
	sk_buf_printf(b, " %s=\"", name);
	if (xsafe_escape(b, v))
		return SK_EINVAL;
	return sk_buf_puts(b, "\"");
}

/* q as the SIP qvalue it stands for (RFC 3261 §25.1): "1", "0.8", "0.125". */
static void qvalue(struct sk_buf *b, int q_milli)
{
	char frac[4];
	int n = 3;

	if (q_milli >= 1000) {
		sk_buf_puts(b, " q=\"1\"");
		return;
	}
	frac[0] = (char)('0' + q_milli / 100 % 10);
	frac[1] = (char)('0' + q_milli / 10 % 10);
	frac[2] = (char)('0' + q_milli % 10);
	frac[3] = '\0';
	while (n > 1 && frac[n - 1] == '0')
		frac[--n] = '\0';
	sk_buf_printf(b, " q=\"0.%s\"", frac);
}

static int contact(struct sk_buf *b, const struct reginfo_reg *g, size_t i)
{
	const struct reginfo_binding *c = &g->b[i];
	const char *st = reginfo_state_name(c->state), *ev = reginfo_event_name(c->event);

	if (!c->id || !c->id[0] || !c->uri || !c->uri[0] || !st || !ev || c->q_milli > 1000)
		return SK_EINVAL;
	/* RFC 3680 §5.3: the id identifies the contact within its registration. */
	for (size_t k = 0; k < i; k++)
		if (g->b[k].id && !strcmp(g->b[k].id, c->id))
			return SK_EINVAL;
	sk_buf_printf(b, "    <contact state=\"%s\" event=\"%s\"", st, ev);
	if (attr(b, "id", c->id))
		return SK_EINVAL;
	if (c->duration >= 0)
		sk_buf_printf(b, " duration-registered=\"%ld\"", c->duration);
	if (c->expires >= 0)
		sk_buf_printf(b, " expires=\"%ld\"", c->expires);
	if (c->q_milli >= 0)
		qvalue(b, c->q_milli);
	if (c->callid && c->callid[0] && attr(b, "callid", c->callid))
		return SK_EINVAL;
	if (c->cseq >= 0)
		sk_buf_printf(b, " cseq=\"%ld\"", c->cseq);
	sk_buf_puts(b, ">\n      <uri>");
	if (xsafe_escape(b, c->uri))
		return SK_EINVAL;
	sk_buf_puts(b, "</uri>\n");
	if (c->display_name) {
		sk_buf_puts(b, "      <display-name>");
		if (xsafe_escape(b, c->display_name))
			return SK_EINVAL;
		sk_buf_puts(b, "</display-name>\n");
	}
	return sk_buf_puts(b, "    </contact>\n");
}

static int registration(struct sk_buf *b, const struct reginfo_reg *g)
{
	const char *state = "init";
	char id[32] = "";
	int err = 0;

	if (!g->aor || !g->aor[0] || (g->n && !g->b) || (g->id && !g->id[0]))
		return SK_EINVAL;
	/* §5.1.1: active while any contact is; terminated once all of them are. */
	for (size_t i = 0; i < g->n; i++) {
		if (g->b[i].state == REGINFO_ACTIVE) {
			state = "active";
			break;
		}
		state = "terminated";
	}
	if (!g->id)
		reginfo_id(id, sizeof(id), "r", g->aor);
	sk_buf_puts(b, "  <registration");
	if (attr(b, "aor", g->aor) || attr(b, "id", g->id ? g->id : id))
		return SK_EINVAL;
	sk_buf_printf(b, " state=\"%s\">\n", state);
	for (size_t i = 0; i < g->n && !err; i++)
		err = contact(b, g, i);
	sk_buf_puts(b, "  </registration>\n");
	return err;
}

int reginfo_build(unsigned long version, bool full, const struct reginfo_reg *regs, size_t n,
		  char **outp)
{
	struct sk_buf b;
	int err = 0;

	if (!outp)
		return SK_EINVAL;
	*outp = NULL;
	if (n && !regs)
		return SK_EINVAL;
	sk_buf_init(&b);
	sk_buf_printf(&b,
		      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		      "<reginfo xmlns=\"" REGINFO_NS "\" version=\"%lu\" state=\"%s\">\n",
		      version, full ? "full" : "partial");
	for (size_t i = 0; i < n && !err; i++)
		err = registration(&b, &regs[i]);
	sk_buf_puts(&b, "</reginfo>\n");
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
