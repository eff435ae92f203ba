/* pres_originate: a request the registrar made (NOTIFY, a stored MESSAGE) goes to an
 * edge as an Originate bus request, first to the edge that holds the flow it must
 * go down (RFC 5626: only that edge can write to the watcher's connection), else to
 * any edge, which sends it to dest or by its Route / Request-URI. The edge answers
 * with the final SIP status of its client transaction. */
#include <stdlib.h>
#include <string.h>
#include "skein/sk_bus.h"
#include "skein/sk_daemon.h"
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "reg.h"
#include "pres.h"

/* Client transaction timeout (64*T1) plus the bus: an edge answers by then. */
#define ORIGINATE_DEADLINE_MS 40000

struct orig {
	pres_originate_cb *cb;
	void *arg;
};

static void on_reply(int err, const Skein__Bus__V1__Envelope *env, void *arg)
{
	struct orig *o = arg;
	const Skein__Sip__V1__OriginateReply *rep =
		env && env->body_case == SKEIN__BUS__V1__ENVELOPE__BODY_ORIGINATE_REPLY
			? env->originate_reply
			: NULL;
	unsigned code;

	if (!err && !rep)
		err = SK_EPROTO;
	if (err)
		code = err == SK_ETIMEDOUT ? 408 : 503;
	else
		code = rep->code;
	o->cb(err, code, err ? NULL : rep, o->arg);
	free(o);
}

int pres_originate(struct registrar *r, const char *edge, const char *flow,
		   const char *transport, const char *dest, const char *msg, size_t len,
		   pres_originate_cb *cb, void *arg)
{
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Sip__V1__Originate og = SKEIN__SIP__V1__ORIGINATE__INIT;
	struct orig *o;
	int err;

	if (!r || !msg || !len || !cb)
		return SK_EINVAL;
	o = malloc(sizeof(*o));
	if (!o)
		return SK_ENOMEM;
	o->cb = cb;
	o->arg = arg;
	og.message.data = (uint8_t *)msg;
	og.message.len = len;
	og.flow = (char *)(flow ? flow : "");
	og.transport = (char *)(transport ? transport : "");
	og.dest = (char *)(dest ? dest : "");
	og.edge = (char *)(edge ? edge : "");
	env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_ORIGINATE;
	env.originate = &og;
	err = sk_bus_request_at(sk_daemon_bus(r->d), "edge", edge, &env, ORIGINATE_DEADLINE_MS, 0,
				on_reply, o);
	if (err)
		free(o);
	return err;
}
