/* pres_uas: the registrar as user agent server for what the edge hands it as a
 * UasRequest (PUBLISH, SUBSCRIBE, MESSAGE): bus handler and dispatch, the UasReply,
 * the notifier engine's Lua scripts, metrics and timers (docs/presence.md, "The
 * presence agent: subscriptions and NOTIFYs"). */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "skein/sk_bus.h"
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"
#include "skein/sk_redis.h"
#include "reg.h"
#include "pres_int.h"

SK_LOG_MODULE("pres");

static const char *const events[PRES_PKG_MAX_] = {"presence", "presence.winfo", "message-summary",
						  "reg"};

int pres_pkg_from_event(const char *event)
{
	for (int i = 0; event && i < PRES_PKG_MAX_; i++)
		if (!strcasecmp(event, events[i]))
			return i;
	return -1;
}

const char *pres_pkg_event(enum pres_pkg p)
{
	return (unsigned)p < PRES_PKG_MAX_ ? events[p] : "";
}

const struct pres_pkg_ops *pres_pkg_ops(enum pres_pkg p)
{
	switch (p) {
	case PRES_PKG_PRESENCE:
		return &pres_ops_presence;
	case PRES_PKG_WINFO:
		return &pres_ops_winfo;
	case PRES_PKG_MWI:
		return &pres_ops_mwi;
	case PRES_PKG_REG:
		return &pres_ops_reg;
	default:
		return NULL;
	}
}

const struct pres_pkg_ops *pres_sub_ops(const Skein__Sip__V1__Subscription *s)
{
	int p = pres_pkg_from_event(s->event);

	if (p == PRES_PKG_PRESENCE && s->eventlist)
		return &pres_ops_rls;
	return p < 0 ? NULL : pres_pkg_ops((enum pres_pkg)p);
}

int pres_key(char *buf, size_t size, const struct registrar *r, const char *aor, const char *what)
{
	return sk_redis_key(buf, size, r->cluster, aor, what);
}

void pres_answer(struct sk_bus_req *req, unsigned code, const char *reason,
		 const char *const *headers, const char *ctype, const void *body, size_t len)
{
	Skein__Bus__V1__Envelope env = SKEIN__BUS__V1__ENVELOPE__INIT;
	Skein__Sip__V1__UasReply rep = SKEIN__SIP__V1__UAS_REPLY__INIT;
	size_t n = 0;

	while (headers && headers[n])
		n++;
	rep.code = code;
	rep.reason = (char *)(reason ? reason : "");
	rep.n_headers = n;
	rep.headers = (char **)headers;
	if (ctype) {
		rep.content_type = (char *)ctype;
		rep.body.data = (uint8_t *)body;
		rep.body.len = body ? len : 0;
	}
	env.body_case = SKEIN__BUS__V1__ENVELOPE__BODY_UAS_REPLY;
	env.uas_reply = &rep;
	sk_bus_reply(req, 0, &env);
}

static void on_timer_cmd(int err, struct redisReply *reply, void *arg)
{
	(void)reply;
	(void)arg;
	if (err && err != SK_ECANCELED)
		SK_WARN("presence timer set: %s", sk_strerror(err));
}

void pres_timer_arm(struct registrar *r, char kind, const char *aor, const char *id, uint64_t at_ms,
		    bool nx)
{
	char member[PRES_KEY_MAX], score[24];
	const char *argv[] = {"ZADD", r->pres->timers_key, "NX", score, member};
	int err;

	snprintf(member, sizeof(member), "%c|%s|%s", kind, aor, id);
	snprintf(score, sizeof(score), "%llu", (unsigned long long)at_ms);
	if (!nx) {
		argv[2] = score;
		argv[3] = member;
	}
	err = sk_redis_cmd(sk_daemon_redis(r->d), on_timer_cmd, NULL, nx ? 5 : 4, argv, NULL);
	if (err)
		SK_WARN("presence timer %s: %s", member, sk_strerror(err));
}

void pres_timer_disarm(struct registrar *r, char kind, const char *aor, const char *id)
{
	char member[PRES_KEY_MAX];
	const char *argv[] = {"ZREM", r->pres->timers_key, member};

	snprintf(member, sizeof(member), "%c|%s|%s", kind, aor, id);
	if (sk_redis_cmd(sk_daemon_redis(r->d), on_timer_cmd, NULL, 3, argv, NULL))
		SK_DEBUG("presence timer %s not cleared (redis down): it fires harmlessly", member);
}

static void on_uas(struct sk_bus_req *req, const Skein__Bus__V1__Envelope *env, void *arg)
{
	static const char *const allow[] = {"Allow: PUBLISH, SUBSCRIBE, MESSAGE", NULL};
	struct registrar *r = arg;
	const Skein__Sip__V1__UasRequest *rq = env->uas_request;

	if (!rq) {
		sk_bus_reply(req, SK_EBADMSG, NULL);
		return;
	}
	sk_log_ctx_set("call-id", rq->call_id);
	if (!strcmp(rq->method, "PUBLISH"))
		pres_publish(r, req, rq);
	else if (!strcmp(rq->method, "SUBSCRIBE"))
		pres_subscribe(r, req, rq);
	else if (!strcmp(rq->method, "MESSAGE"))
		pres_im_store(r, req, rq);
	else
		pres_answer(req, 405, NULL, allow, NULL, NULL, 0);
	sk_log_ctx_set(NULL, NULL);
}

static struct sk_counter *counter(struct registrar *r, const char *what, const char *help,
				  const char *label, const char *value)
{
	char name[128];

	snprintf(name, sizeof(name), "%s_%s", sk_daemon_metrics_prefix(r->d), what);
	return sk_metrics_counter(sk_daemon_metrics(r->d), name, help, label, value);
}

static int metrics(struct registrar *r, struct pres_agent *pa)
{
	static const char *const sub_res[PRES_SUB_RESULT_MAX_] = {
	    "created", "refreshed", "fetched", "terminated", "rejected", "error"};
	static const char *const ntf_res[PRES_NOTIFY_RESULT_MAX_] = {"ok", "refused", "ended",
								     "error", "throttled"};
	static const char *const end_res[PRES_END_MAX_] = {"timeout", "unsubscribed", "rejected",
							   "failed", "noresource"};
	bool ok = true;

	for (int i = 0; i < PRES_SUB_RESULT_MAX_; i++)
		ok &= !!(pa->m.sub[i] =
			     counter(r, "subscribe_requests_total", "SUBSCRIBE requests by outcome",
				     "result", sub_res[i]));
	for (int i = 0; i <= PRES_PKG_MAX_; i++)
		ok &= !!(pa->m.created[i] = counter(
			     r, "subscriptions_total",
			     "Subscriptions created, by event package (rls: resource lists)",
			     "event", i < PRES_PKG_MAX_ ? events[i] : "rls"));
	for (int i = 0; i < PRES_NOTIFY_RESULT_MAX_; i++)
		ok &=
		    !!(pa->m.notify[i] = counter(r, "notifies_total", "NOTIFY requests by outcome",
						 "result", ntf_res[i]));
	for (int i = 0; i < PRES_END_MAX_; i++)
		ok &= !!(pa->m.ended[i] =
			     counter(r, "subscriptions_ended_total",
				     "Subscriptions ended, by reason", "reason", end_res[i]));
	ok &= !!(pa->m.timers =
		     counter(r, "presence_timers_total",
			     "Presence timers fired (expiries, throttled NOTIFYs)", NULL, NULL));
	ok &= !!(pa->m.timer_errors =
		     counter(r, "presence_timer_errors_total",
			     "Polls of the presence timer set that failed", NULL, NULL));
	return ok ? 0 : SK_ENOMEM;
}

int pres_start(struct registrar *r)
{
	struct sk_redis *redis = sk_daemon_redis(r->d);
	struct pres_agent *pa;
	int err;

	pa = sk_zalloc(sizeof(*pa), NULL);
	if (!pa)
		return SK_ENOMEM;
	pa->r = r;
	r->pres = pa;
	err = sk_redis_key(pa->timers_key, sizeof(pa->timers_key), r->cluster, "pres", "timers");
	if (!err)
		err = metrics(r, pa);
	if (!err)
		err = sk_redis_script_add(redis, &pa->s_get, PRES_LUA_GET);
	if (!err)
		err = sk_redis_script_add(redis, &pa->s_put, PRES_LUA_PUT);
	if (!err)
		err = sk_redis_script_add(redis, &pa->s_all, PRES_LUA_ALL);
	if (!err)
		err = sk_redis_script_add(redis, &pa->s_seq, PRES_LUA_SEQ);
	if (!err)
		err = sk_redis_script_add(redis, &pa->s_del, PRES_LUA_DEL);
	if (!err)
		err = sk_redis_script_add(redis, &pa->s_throttle, PRES_LUA_THROTTLE);
	if (!err)
		err = sk_redis_script_add(redis, &pa->s_pop, PRES_LUA_POP);
	if (!err)
		err = pres_publish_start(r);
	if (!err)
		err = pres_im_start(r);
	if (!err)
		err = pres_timer_start(r);
	if (!err)
		err = sk_bus_on_request(sk_daemon_bus(r->d),
					SKEIN__BUS__V1__ENVELOPE__BODY_UAS_REQUEST, on_uas, r);
	if (err)
		SK_ERROR("presence agent: %s", sk_strerror(err));
	return err;
}

/* What is in flight (Redis, bus, state fetches) keeps its own reference to the agent
 * and finishes with SK_ECANCELED as the daemon closes the clients after stop. */
void pres_stop(struct registrar *r)
{
	if (!r->pres)
		return;
	r->pres->stopped = true;
	pres_timer_stop(r);
}
