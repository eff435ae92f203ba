/* REGISTER over the bus: RegisterRequest in, one REGDATA_LUA_REGISTER script in Redis,
 * RegisterReply out (RFC 3261 §10.3; the store logic is regdata_store.c). With
 * RegisterRequest.auth the same script also does the digest's Redis half (HA1 still
 * current, nonce-count fresh) and answers 401 with auth_check when it fails. */
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include "skein/sk_bus.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"
#include "skein/sk_redis.h"
#include "reg.h"
#include "pres.h"

SK_LOG_MODULE("register");

/* One REGISTER in flight in Redis: holds the bus request until it is answered. */
struct op {
	struct registrar *r;
	struct sk_bus_req *req;
	struct regdata_reg_cmd *cmd;
	uint64_t t0;
	char aor[REGDATA_AOR_MAX], call_id[128];
	/* The REGISTER's first contact with expires > 0 and where the REGISTER came
	 * from: the binding stored IMs go to (pres_im_registered); contact[0] = '\0'
	 * when the request binds nothing. Copied: the envelope is gone by on_script. */
	char contact[REGDATA_URI_MAX], edge[128], flow[64], transport[8], source[64];
};

static void op_destroy(void *data)
{
	struct op *o = data;

	sk_deref(o->cmd);
	sk_deref(o->req);
}

/* snprintf(dst, size, "%s", src) without the format machinery: seven per REGISTER
 * (callgrind: ~600 instructions each). */
static void copy(char *dst, size_t size, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= size)
		n = size - 1;
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

static void count(struct registrar *r, const struct regdata_reg_result *res)
{
	if (res->code == 200) {
		sk_counter_inc(res->query ? r->m.query : res->replay ? r->m.replay : r->m.ok);
		sk_counter_add(r->m.added, res->added);
		sk_counter_add(r->m.refreshed, res->refreshed);
		sk_counter_add(r->m.removed, res->removed);
	} else if (res->code == 500) {
		sk_counter_inc(r->m.out_of_order);
	} else {
		sk_counter_inc(r->m.rejected);
	}
}

/* status 0 with a SIP answer, or a storage failure (the edge answers 500 with
 * Retry-After on any non-zero status; the body names the fault for logs). */
static void answer(struct registrar *r, struct sk_bus_req *req, int status,
		   const struct regdata_reg_result *res)
{
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Sip__V1__RegisterReply rep = SKEIN__SIP__V1__REGISTER_REPLY__INIT;
	Skein__Sip__V1__RegisterPolicy pol = SKEIN__SIP__V1__REGISTER_POLICY__INIT;
	const struct registrar_conf *c = r->conf;

	regdata_reg_reply_fill(&rep, res);
	/* What an edge needs to write refreshes itself (docs/edge.md); sent with every
	 * answer, so a reloaded policy reaches the edges with the next REGISTER they
	 * pass on. */
	pol.default_expires = c->default_expires;
	pol.min_expires = c->min_expires;
	pol.max_expires = c->max_expires;
	pol.max_contacts = c->max_contacts;
	rep.policy = &pol;
	env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_REGISTER_REPLY;
	env.register_reply = &rep;
	sk_bus_reply(req, status, &env);
}

/* After the answer: the reg package's subscribers hear of a binding added or
 * removed (RFC 3680; a refresh changes nothing they see), and a new binding gets the
 * messages kept for the user (RFC 3428 store and forward). Nothing to do on a plain
 * refresh, the common REGISTER: no extra Redis command then. */
static void presence_hooks(struct registrar *r, const struct op *o,
			   const struct regdata_reg_result *res)
{
	if (res->added + res->removed > 0)
		pres_changed(r, PRES_PKG_REG, o->aor);
	if (res->added > 0 && o->contact[0]) {
		struct pres_binding_ref ref = {o->aor,	o->contact,   o->edge,
					       o->flow, o->transport, o->source};

		pres_im_registered(r, &ref);
	}
}

static void on_script(int err, struct redisReply *reply, void *arg)
{
	struct op *o = arg;
	struct registrar *r = o->r;
	struct regdata_reg_result res;

	sk_log_ctx_set("call-id", o->call_id); /* the bus's context ended with the request */
	if (!err)
		err = regdata_register_result(&res, reply);
	else
		memset(&res, 0, sizeof(res));
	if (err) {
		res.code = 500;
		res.reason = "Registrar storage unavailable";
		sk_counter_inc(r->m.error);
		if (err != SK_ECANCELED)
			SK_WARN("REGISTER %s (Call-ID %s): redis: %s", o->aor, o->call_id,
				sk_strerror(err));
		answer(r, o->req, SK_EREDIS, &res);
	} else {
		count(r, &res);
		if (res.code != 200)
			SK_NOTICE("REGISTER %s (Call-ID %s): %u %s", o->aor, o->call_id, res.code,
				  res.reason);
		else
			SK_DEBUG("REGISTER %s: %u bindings, +%u ~%u -%u%s", o->aor,
				 (unsigned)res.bindings.n, res.added, res.refreshed, res.removed,
				 res.replay ? " (replay)" : "");
		answer(r, o->req, 0, &res);
		if (res.code == 200 && !res.query)
			presence_hooks(r, o, &res);
	}
	sk_histogram_observe(r->m.latency, (double)(uv_hrtime() - o->t0) / 1e9);
	sk_log_ctx_set(NULL, NULL);
	regdata_reg_result_release(&res);
	sk_deref(o);
}

static void on_register(struct sk_bus_req *req, const Skein__Bus__V1__Envelope *env, void *arg)
{
	struct registrar *r = arg;
	const Skein__Sip__V1__RegisterRequest *rq = env->register_request;
	const struct registrar_conf *c = r->conf;
	struct regdata_policy pol = {c->default_expires, c->min_expires, c->max_expires,
				     c->max_contacts};
	struct regdata_reg_result res;
	struct regdata_reg_cmd *cmd = NULL;
	struct op *o;
	int err;

	if (!rq) {
		sk_bus_reply(req, SK_EBADMSG, NULL);
		return;
	}
	err = regdata_register_prepare(&cmd, &res, r->cluster, rq, &pol);
	if (err || !cmd) {
		if (err) {
			/* SK_EINVAL with auth: an edge asked for keys of another slot. */
			SK_WARN("REGISTER %s: %s%s", rq->aor, sk_strerror(err),
				err == SK_EINVAL && rq->auth ? " (digest keys not the AOR's)" : "");
			sk_counter_inc(r->m.error);
		} else {
			SK_NOTICE("REGISTER %s (Call-ID %s): %u %s", rq->aor, rq->call_id, res.code,
				  res.reason);
			count(r, &res);
		}
		answer(r, req, err, &res);
		regdata_reg_result_release(&res);
		return;
	}
	regdata_reg_result_release(&res);
	o = sk_zalloc(sizeof(*o), op_destroy);
	if (!o) {
		sk_deref(cmd);
		sk_bus_reply(req, SK_ENOMEM, NULL);
		return;
	}
	o->r = r;
	o->req = sk_ref(req);
	o->cmd = cmd;
	o->t0 = uv_hrtime();
	copy(o->aor, sizeof(o->aor), rq->aor);
	copy(o->call_id, sizeof(o->call_id), rq->call_id);
	for (size_t i = 0; !rq->star && i < rq->n_contacts; i++) {
		if (regdata_contact_expires(rq->contacts[i], rq->expires, &pol) <= 0)
			continue;
		copy(o->contact, sizeof(o->contact), rq->contacts[i]->uri);
		copy(o->edge, sizeof(o->edge), rq->edge);
		copy(o->flow, sizeof(o->flow), rq->flow);
		copy(o->transport, sizeof(o->transport), rq->transport);
		copy(o->source, sizeof(o->source), rq->source);
		break;
	}
	err = sk_redis_eval(r->reg_script, on_script, o, cmd->nkeys, cmd->argc, cmd->argv,
			    cmd->lens);
	if (err) /* SK_ENOTCONN: Redis is down; the callback will not fire */
		on_script(err, NULL, o);
}

static struct sk_counter *counter(struct registrar *r, const char *what, const char *help,
				  const char *label, const char *value)
{
	char name[128];

	snprintf(name, sizeof(name), "%s_%s", sk_daemon_metrics_prefix(r->d), what);
	return sk_metrics_counter(sk_daemon_metrics(r->d), name, help, label, value);
}

int reg_register_start(struct registrar *r)
{
	static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
					0.025,	0.05,  0.1,    0.25,  1};
	static const char req_help[] = "REGISTER requests by outcome";
	static const char chg_help[] = "Bindings changed by REGISTER, by kind";
	char name[128];
	int err;

	r->m.ok = counter(r, "register_requests_total", req_help, "result", "ok");
	r->m.query = counter(r, "register_requests_total", req_help, "result", "query");
	r->m.replay = counter(r, "register_requests_total", req_help, "result", "replay");
	r->m.rejected = counter(r, "register_requests_total", req_help, "result", "rejected");
	r->m.out_of_order =
		counter(r, "register_requests_total", req_help, "result", "out_of_order");
	r->m.error = counter(r, "register_requests_total", req_help, "result", "error");
	r->m.added = counter(r, "binding_changes_total", chg_help, "change", "added");
	r->m.refreshed = counter(r, "binding_changes_total", chg_help, "change", "refreshed");
	r->m.removed = counter(r, "binding_changes_total", chg_help, "change", "removed");
	snprintf(name, sizeof(name), "%s_register_duration_seconds",
		 sk_daemon_metrics_prefix(r->d));
	r->m.latency = sk_metrics_histogram(sk_daemon_metrics(r->d), name,
					    "REGISTER handling time, bus request to reply",
					    bounds, sizeof(bounds) / sizeof(bounds[0]));
	if (!r->m.ok || !r->m.query || !r->m.replay || !r->m.rejected || !r->m.out_of_order ||
	    !r->m.error || !r->m.added || !r->m.refreshed || !r->m.removed || !r->m.latency)
		return SK_ENOMEM;
	err = sk_redis_script_add(sk_daemon_redis(r->d), &r->reg_script, REGDATA_LUA_REGISTER);
	if (err)
		return err;
	return sk_bus_on_request(sk_daemon_bus(r->d),
				 SKEIN__BUS__V1__ENVELOPE__BODY_REGISTER_REQUEST, on_register, r);
}
