/* core_register: REGISTER at the edge (RFC 3261 §10.3 steps 1-3 here, the rest in
 * skein-registrar): the domain must be ours, the sender authenticated as the AOR's
 * user; the contacts, with where the request came from (edge, flow, transport,
 * source, NAT), go to the registrar role over the bus; its answer becomes the 200
 * with every current binding and its remaining expires (§10.3 item 8).
 *
 * Refreshes (issue 6, docs/edge.md "REGISTER refreshes"): most REGISTERs only
 * extend bindings that exist, and the registrar does nothing for them but run its
 * script. With direct_refresh, the edge writes them itself — one contact with the
 * refresh script, several with the registration script's refresh-only mode —, with
 * the policy the registrar sent in its last answer (at most
 * REG_POLICY_MAX_AGE_MS old): a pure refresh is written and answered here, anything
 * else (an addition or removal, which the registrar announces to reg-event watchers
 * and follows with stored messages; CSeq and replay questions; 403; 400/423; a Redis
 * error) comes back with nothing written and goes to the registrar as before. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/msg_date.h>
#include <hiredis/hiredis.h>
#include "skein/sk_buf.h"
#include "skein/sk_bus.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"
#include "core.h"
#include "regdata.h"

SK_LOG_MODULE("register");

#define MAX_CONTACTS 32
/* How long the registrar's policy is used without hearing it again: the REGISTER
 * after that goes to the registrar, whose answer brings the (maybe reloaded) policy. */
#define REG_POLICY_MAX_AGE_MS 10000

struct reg {
	struct edge *e;
	struct edge_stx *stx;
	struct edge_auth *auth; /* what the registrar's script checks with the write */
	char aor[REGDATA_AOR_MAX];
	uint64_t t0;
};

static void reg_destroy(void *p)
{
	struct reg *r = p;

	sk_deref(r->stx);
	sk_deref(r->auth);
}

static void send_register(struct edge *e, struct edge_stx *stx, const char *aor,
			  struct edge_auth *a, bool direct, uint64_t t0);

static const char *param(const msg_param_t *params, const char *name)
{
	size_t n = strlen(name);

	for (; params && *params; params++)
		if (!strncasecmp(*params, name, n) && ((*params)[n] == '=' || !(*params)[n]))
			return (*params)[n] == '=' ? *params + n + 1 : "";
	return NULL;
}

/* The Date of the 200 (RFC 3261 §10.3 item 8, for phones without a clock), made
 * once per second: sofia's msg_date_e() is an snprintf. */
static const char *date_now(void)
{
	static char cached[64]; /* the loop's thread only */
	static msg_time_t at;
	msg_time_t now = msg_now();

	if (now != at || !cached[0]) {
		msg_date_e(cached, sizeof(cached), now);
		at = now;
	}
	return cached;
}

/* The answer to the REGISTER, from the registrar's reply or the edge's own write. */
static void answer(struct reg *r, const Skein__Sip__V1__RegisterReply *rep)
{
	struct edge *e = r->e;
	sip_t *sip = sip_object(edge_stx_msg(r->stx));
	struct sk_buf x;

	sk_buf_init(&x);
	if (rep->code == 401 && rep->auth_check != SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_NONE) {
		/* The digest's Redis half failed: nothing was written. Counted as an
		 * authentication failure (as before, when the edge checked it all), not as
		 * a failed registration. */
		if (edge_auth_reg_checked(r->auth, rep->auth_check, rep->current_ha1) ==
		    EDGE_AUTH_RETRY)
			send_register(e, r->stx, r->aor, r->auth, true, r->t0);
		goto out;
	}
	(void)edge_auth_reg_checked(r->auth, SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_NONE, NULL);
	if (rep->code != 200) {
		if (rep->code == 423)
			sk_buf_printf(&x, "Min-Expires: %u\r\n", rep->min_expires);
		edge_reply(e, r->stx, (int)rep->code, rep->reason[0] ? rep->reason : NULL,
			   x.len ? x.data : NULL);
		sk_counter_inc(e->m.reg_fail);
		goto out;
	}
	for (size_t i = 0; i < rep->n_bindings; i++) {
		const Skein__Sip__V1__Binding *b = rep->bindings[i];

		/* Appended, not printed: on every REGISTER (glibc's printf was ~3 k
		 * instructions a line). */
		SK_BUF_LIT(&x, "Contact: <");
		sk_buf_puts(&x, b->contact);
		SK_BUF_LIT(&x, ">;expires=");
		sk_buf_putu(&x, b->expires_in);
		if (b->q_milli != 1000)
			sk_buf_printf(&x, ";q=%u.%03u", b->q_milli / 1000, b->q_milli % 1000);
		if (b->instance[0]) {
			SK_BUF_LIT(&x, ";+sip.instance=\"");
			sk_buf_puts(&x, b->instance);
			SK_BUF_LIT(&x, "\"");
		}
		if (b->reg_id) {
			SK_BUF_LIT(&x, ";reg-id=");
			sk_buf_putu(&x, b->reg_id);
		}
		SK_BUF_LIT(&x, "\r\n");
	}
	/* RFC 5626 §6: a registrar that did Outbound processing (a contact with reg-id
	 * from a UA that supports outbound) says so. */
	if (sip_has_supported(sip->sip_supported, "outbound"))
		for (sip_contact_t *m = sip->sip_contact; m; m = m->m_next)
			if (param(m->m_params, "reg-id") && param(m->m_params, "+sip.instance")) {
				sk_buf_puts(&x, "Require: outbound\r\n");
				break;
			}
	/* RFC 3327 §5.3: the Path goes back in the 200 when the UA supports it. */
	for (sip_path_t *p = sip->sip_path; p; p = p->r_next) {
		char *s = url_as_string(msg_home(edge_stx_msg(r->stx)), p->r_url);

		sk_buf_printf(&x, "Path: <%s>\r\n", s ? s : "");
	}
	SK_BUF_LIT(&x, "Date: ");
	sk_buf_puts(&x, date_now());
	SK_BUF_LIT(&x, "\r\n");
	if (!x.err && edge_reply(e, r->stx, 200, NULL, x.data) == 0)
		sk_counter_inc(e->m.reg_ok);
	sk_histogram_observe(e->m.reg_latency, (double)(uv_hrtime() - r->t0) / 1e9);
out:
	sk_buf_release(&x);
}

static void on_reply(int err, const Skein__Bus__V1__Envelope *env, void *arg)
{
	struct reg *r = arg;
	struct edge *e = r->e;
	const Skein__Sip__V1__RegisterReply *rep =
	    env && env->body_case == SKEIN__BUS__V1__ENVELOPE__BODY_REGISTER_REPLY
		? env->register_reply
		: NULL;

	if (err || !rep) {
		SK_WARN("registrar: %s", err ? sk_strerror(err) : "reply without a body");
		edge_reply(e, r->stx, 500, "Server Internal Error (registrar unavailable)",
			   "Retry-After: 5\r\n");
		sk_counter_inc(e->m.reg_fail);
	} else {
		const Skein__Sip__V1__RegisterPolicy *p = rep->policy;

		/* Sane values only: a registrar checks its own config, but this one
		 * decides what gets written without it. */
		if (p && p->min_expires >= 0 && p->max_expires >= p->min_expires &&
		    p->default_expires > 0 && p->max_contacts > 0) {
			e->reg_policy = (struct regdata_policy){p->default_expires, p->min_expires,
							       p->max_expires, p->max_contacts};
			e->reg_policy_at = uv_now(e->loop);
		}
		answer(r, rep);
	}
	sk_deref(r);
}

/* The script's answer in refresh-only mode: written (answered here), or deferred
 * (nothing written) and passed to the registrar. A Redis error goes the registrar's
 * way too: it answers 500 with Retry-After itself, and counts it. */
static void on_direct(int err, struct redisReply *reply, void *arg)
{
	struct reg *r = arg;
	struct edge *e = r->e;
	struct regdata_reg_result res;

	if (err)
		memset(&res, 0, sizeof(res));
	else
		err = regdata_register_result(&res, reply);
	if (err || res.deferred) {
		sk_counter_inc(e->m.reg_direct[err ? 2 : 1]);
		if (err && err != SK_ECANCELED)
			SK_INFO("REGISTER %s: refresh here failed (%s): to the registrar", r->aor,
				sk_strerror(err));
		send_register(e, r->stx, r->aor, r->auth, false, r->t0);
	} else {
		Skein__Sip__V1__RegisterReply rep = SKEIN__SIP__V1__REGISTER_REPLY__INIT;

		regdata_reg_reply_fill(&rep, &res);
		if (res.code == 200)
			sk_counter_inc(e->m.reg_direct[0]);
		answer(r, &rep);
	}
	regdata_reg_result_release(&res);
	sk_deref(r);
}

/* true when a refresh-only script was started for r (its reference taken): the
 * refresh script for one contact (most REGISTERs; regdata.h), the registration
 * script's refresh-only mode for several. */
static bool try_direct(struct edge *e, struct reg *r, const Skein__Sip__V1__RegisterRequest *rr)
{
	struct regdata_reg_cmd *cmd = NULL;
	struct sk_redis_script *script = e->reg_script;
	struct regdata_reg_result res;
	int err;

	if (!e->reg_script || rr->star || !rr->n_contacts || !e->reg_policy_at ||
	    uv_now(e->loop) - e->reg_policy_at > REG_POLICY_MAX_AGE_MS)
		return false;
	/* 400 and 423 without Redis are the registrar's answers to give */
	if (rr->n_contacts == 1) {
		script = e->refresh_script;
		err = regdata_refresh_prepare(&cmd, e->cluster, rr, &e->reg_policy,
					      edge_redis_now(e));
	} else {
		err = regdata_register_prepare_ex(&cmd, &res, e->cluster, rr, &e->reg_policy,
						  REGDATA_REG_REFRESH_ONLY);
		regdata_reg_result_release(&res);
	}
	if (err || !cmd) {
		sk_deref(cmd);
		return false;
	}
	err = sk_redis_eval(script, on_direct, sk_ref(r), cmd->nkeys, cmd->argc, cmd->argv,
			    cmd->lens);
	sk_deref(cmd); /* the client keeps its own copy of the arguments */
	if (err) {
		sk_deref(r);
		return false;
	}
	return true;
}

int edge_register_setup(struct edge *e)
{
	int err;

	if (!e->conf->direct_refresh)
		return 0;
	err = sk_redis_script_add(e->redis, &e->reg_script, REGDATA_LUA_REGISTER);
	if (!err)
		err = sk_redis_script_add(e->redis, &e->refresh_script, REGDATA_LUA_REFRESH);
	if (err)
		SK_ERROR("registration scripts: %s", sk_strerror(err));
	return err;
}


/* The REGISTER after the digest check: build the bus request, with what the
 * registration script must check of the authentication (a); direct: written here
 * when it turns out to be a pure refresh. t0: when the first attempt started (0:
 * now), so that register_seconds times a deferred refresh or a STALE retry from
 * the start, not from its last attempt. */
static void send_register(struct edge *e, struct edge_stx *stx, const char *aor,
			  struct edge_auth *a, bool direct, uint64_t t0)
{
	msg_t *msg = edge_stx_msg(stx);
	sip_t *sip = sip_object(msg);
	su_home_t *home = msg_home(msg);
	const struct edge_rx *rx = edge_stx_rx(stx);
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Sip__V1__RegisterRequest rr = SKEIN__SIP__V1__REGISTER_REQUEST__INIT;
	Skein__Sip__V1__RegisterAuth ra = SKEIN__SIP__V1__REGISTER_AUTH__INIT;
	Skein__Sip__V1__Contact cs[MAX_CONTACTS], *cp[MAX_CONTACTS];
	char *paths[8];
	char src[64], ip[64], flow[24], received[128] = "", inst[256];
	size_t n = 0, np = 0;
	struct reg *r;
	int err;

	for (sip_contact_t *m = sip->sip_contact; m; m = m->m_next) {
		const char *v;

		if (m->m_url->url_type == url_any) {
			rr.star = true;
			continue;
		}
		if (n == MAX_CONTACTS) {
			edge_reply(e, stx, 403, "Forbidden (too many contacts)", NULL);
			return;
		}
		skein__sip__v1__contact__init(&cs[n]);
		cs[n].uri = url_as_string(home, m->m_url);
		cs[n].expires = m->m_expires ? strtoll(m->m_expires, NULL, 10) : -1;
		cs[n].q_milli = 1000;
		if (m->m_q) {
			double q = strtod(m->m_q, NULL);

			if (q < 0 || q > 1) {
				edge_reply(e, stx, 400, "Bad Request (q out of range)", NULL);
				return;
			}
			cs[n].q_milli = (uint32_t)(q * 1000 + 0.5);
		}
		if ((v = param(m->m_params, "+sip.instance"))) {
			size_t l = strlen(v);

			if (l >= 2 && v[0] == '"' && v[l - 1] == '"')
				snprintf(inst, sizeof(inst), "%.*s", (int)(l - 2), v + 1);
			else
				snprintf(inst, sizeof(inst), "%s", v);
			cs[n].instance = su_strdup(home, inst);
		}
		if ((v = param(m->m_params, "reg-id")))
			cs[n].reg_id = (uint32_t)strtoul(v, NULL, 10);
		if (!cs[n].uri) {
			edge_reply(e, stx, 500, "Server Internal Error", NULL);
			return;
		}
		cp[n] = &cs[n];
		n++;
	}
	if (rr.star && (n || !sip->sip_expires || sip->sip_expires->ex_delta != 0)) {
		edge_reply(e, stx, 400, "Bad Request (Contact: * needs Expires: 0 and no other contact)",
			   NULL);
		return;
	}
	for (sip_path_t *p = sip->sip_path; p && np < 8; p = p->r_next)
		paths[np++] = url_as_string(home, p->r_url);
	edge_addr_str(&rx->src, src, sizeof(src));
	edge_addr_ip(&rx->src, ip, sizeof(ip));
	/* Behind NAT (RFC 3581): the Via's sent-by is not where the request came from
	 * (the test Kamailio's nat_uac_test makes with flags 2 and 16), so requests for
	 * the binding go to the source address instead of the contact. Over a
	 * connection the flow is used anyway. */
	if (n && rx->proto == EDGE_PROTO_UDP && sip->sip_via) {
		const sip_via_t *v = sip->sip_via;
		unsigned vport = v->v_port ? (unsigned)atoi(v->v_port) : 5060;
		bool v6 = src[0] == '[';
		const char *h = v->v_host ? v->v_host : "";
		size_t hl = strlen(h);

		if (v6 && hl > 2 && h[0] == '[') {
			h++;
			hl -= 2;
		}
		if (hl != strlen(ip) || strncasecmp(h, ip, hl) || vport != edge_addr_port(&rx->src))
			snprintf(received, sizeof(received), "sip:%s%s%s:%u", v6 ? "[" : "", ip,
				 v6 ? "]" : "", edge_addr_port(&rx->src));
	}
	flow[sk_u64_dec(flow, rx->flow)] = '\0';
	rr.aor = (char *)aor;
	rr.call_id = (char *)sip->sip_call_id->i_id;
	rr.cseq = sip->sip_cseq->cs_seq;
	rr.expires = sip->sip_expires ? (int64_t)sip->sip_expires->ex_delta : -1;
	rr.n_contacts = n;
	rr.contacts = cp;
	rr.edge = (char *)e->member;
	rr.flow = rx->flow ? flow : (char *)"";
	rr.transport = (char *)edge_proto_name(rx->proto);
	rr.source = src;
	rr.user_agent = sip->sip_user_agent ? (char *)sip->sip_user_agent->g_string : (char *)"";
	rr.n_path = np;
	rr.path = paths;
	rr.received = received;
	edge_auth_reg_fill(a, &ra);
	rr.auth = &ra;
	env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_REGISTER_REQUEST;
	env.register_request = &rr;

	r = sk_zalloc(sizeof(*r), reg_destroy);
	if (!r) {
		edge_reply(e, stx, 500, "Server Internal Error", NULL);
		return;
	}
	r->e = e;
	r->stx = sk_ref(stx);
	r->auth = sk_ref(a);
	edge_join(r->aor, sizeof(r->aor), aor, NULL, NULL);
	r->t0 = t0 ? t0 : uv_hrtime();
	if (direct && try_direct(e, r, &rr)) {
		sk_deref(r);
		return;
	}
	/* Idempotent: the registrar treats a replay of the same Call-ID/CSeq/contacts as
	 * a refresh, so a retry on another registrar after a timeout is safe. */
	err = sk_bus_request(e->bus, "registrar", &env, e->conf->registrar_deadline,
			     SK_BUS_IDEMPOTENT, on_reply, r);
	if (err) {
		SK_WARN("registrar: %s", sk_strerror(err));
		edge_reply(e, stx, 500, "Server Internal Error (registrar unavailable)",
			   "Retry-After: 5\r\n");
		sk_counter_inc(e->m.reg_fail);
		sk_deref(r);
	}
}

static void on_auth(struct edge *e, struct edge_stx *stx, struct edge_auth *a, const char *user,
		    void *arg)
{
	sip_t *sip = sip_object(edge_stx_msg(stx));
	char aor[REGDATA_AOR_MAX], tmp[REGDATA_AOR_MAX + 8];
	const char *why;

	(void)arg;
	if (!a)
		return;
	/* The authenticated user registers only its own AOR (RFC 3261 §10.3 item 3). */
	edge_join(tmp, sizeof(tmp), sip->sip_to->a_url->url_user, "@", sip->sip_to->a_url->url_host);
	if (regdata_aor_norm(aor, sizeof(aor), tmp, &why)) {
		edge_reply(e, stx, 400, "Bad Request (To is not a valid address of record)", NULL);
		return;
	}
	if (strcmp(user, sip->sip_to->a_url->url_user)) {
		SK_NOTICE("user %s may not register %s", user, aor);
		edge_reply(e, stx, 403, "Forbidden (authenticated user is not the To user)", NULL);
		return;
	}
	send_register(e, stx, aor, a, true, 0);
}

void edge_register(struct edge *e, struct edge_stx *stx)
{
	sip_t *sip = sip_object(edge_stx_msg(stx));
	const url_t *to = sip->sip_to->a_url;
	char realm[EDGE_DIGEST_REALM_MAX + 1];
	const char *why;

	/* §10.3 items 1-2: this registrar serves the Request-URI's domain. */
	if (!edge_domain_local(e, sip->sip_request->rq_url->url_host) ||
	    !edge_domain_local(e, to->url_host)) {
		edge_reply(e, stx, 403, "Forbidden (domain not served here)", NULL);
		return;
	}
	if (!to->url_user || !*to->url_user) {
		edge_reply(e, stx, 400, "Bad Request (To has no user part)", NULL);
		return;
	}
	/* The realm is the domain as provisioned (lower case): the HA1s were made with it. */
	if (regdata_domain_norm(realm, sizeof(realm), to->url_host, &why)) {
		edge_reply(e, stx, 400, "Bad Request (bad domain in To)", NULL);
		return;
	}
	edge_auth_register(e, stx, realm, on_auth, NULL);
}
