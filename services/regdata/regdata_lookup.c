/* regdata_lookup: TIME + HGETALL instead of a script (see regdata_lookup.h). */
#include "regdata_lookup.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"

struct lookup {
	struct regdata_bindings *out;
	regdata_lookup_cb *cb;
	void *arg;
	uint64_t now_ms;
	int time_err; /* of the TIME command; its reply comes first */
	bool orphan;  /* HGETALL could not be queued: TIME's callback frees */
};

int regdata_time_ms(const void *reply, uint64_t *ms)
{
	const redisReply *r = reply;
	char *end;
	unsigned long long s, us;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
		return SK_EPROTO;
	s = strtoull(r->element[0]->str, &end, 10);
	if (*end || !r->element[0]->len)
		return SK_EPROTO;
	us = strtoull(r->element[1]->str, &end, 10);
	if (*end || !r->element[1]->len)
		return SK_EPROTO;
	*ms = (uint64_t)s * 1000 + us / 1000;
	return 0;
}

int regdata_bindings_from_hash(struct regdata_bindings *out, const void *reply,
			       uint64_t now_ms, size_t *skipped)
{
	const redisReply *r = reply;
	size_t skip = 0;

	if (skipped)
		*skipped = 0;
	if (!out)
		return SK_EINVAL;
	out->b = NULL;
	out->n = 0;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2)
		return SK_EPROTO;
	if (r->elements) {
		out->b = calloc(r->elements / 2, sizeof(*out->b));
		if (!out->b)
			return SK_ENOMEM;
	}
	/* field (the binding key), value (the packed Binding); the fields beside them
	 * ("\1<key>", what the registration script compares) are not bindings */
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *f = r->element[i], *v = r->element[i + 1];
		Skein__Sip__V1__Binding *b;

		if (f->type == REDIS_REPLY_STRING && f->len && f->str[0] == REGDATA_META_MARK)
			continue;
		if (v->type != REDIS_REPLY_STRING) {
			regdata_bindings_free(out);
			return SK_EPROTO;
		}
		b = regdata_binding_decode(v->str, v->len);
		if (!b || !b->expires_at_ms) {
			if (b)
				skein__sip__v1__binding__free_unpacked(b, NULL);
			skip++;
			continue;
		}
		if (b->expires_at_ms <= now_ms) {
			/* expired, not purged yet: the next REGISTER of the AOR does */
			skein__sip__v1__binding__free_unpacked(b, NULL);
			continue;
		}
		/* seconds left rounded up, as the scripts' math.ceil; an absurd expiry
		 * (a value written by hand) must neither wrap nor truncate to 0 */
		{
			uint64_t d = b->expires_at_ms - now_ms, secs = d / 1000 + (d % 1000 != 0);

			b->expires_in = secs > UINT32_MAX ? UINT32_MAX : (uint32_t)secs;
		}
		out->b[out->n++] = b;
	}
	regdata_bindings_sort(out);
	if (skipped)
		*skipped = skip;
	return 0;
}

static void on_time(int err, struct redisReply *reply, void *arg)
{
	struct lookup *l = arg;

	if (l->orphan) {
		free(l);
		return;
	}
	l->time_err = err ? err : regdata_time_ms(reply, &l->now_ms);
}

static void on_hash(int err, struct redisReply *reply, void *arg)
{
	struct lookup *l = arg;

	if (!err)
		err = l->time_err;
	if (!err)
		err = regdata_bindings_from_hash(l->out, reply, l->now_ms, NULL);
	l->cb(err, l->arg);
	free(l);
}

int regdata_lookup_at(struct sk_redis *r, const char *cluster, const char *aor,
		      uint64_t now_ms, struct regdata_bindings *out, regdata_lookup_cb *cb,
		      void *arg)
{
	char key[512];
	const char *tv[1] = {"TIME"}, *hv[2] = {"HGETALL", key};
	struct lookup *l;
	int err;

	if (!r || !cluster || !aor || !out || !cb)
		return SK_EINVAL;
	if ((err = regdata_key_reg(key, sizeof(key), cluster, aor)))
		return err;
	l = calloc(1, sizeof(*l));
	if (!l)
		return SK_ENOMEM;
	l->out = out;
	l->cb = cb;
	l->arg = arg;
	l->now_ms = now_ms;
	out->b = NULL;
	out->n = 0;
	if (!now_ms && (err = sk_redis_cmd(r, on_time, l, 1, tv, NULL))) {
		free(l);
		return err;
	}
	if ((err = sk_redis_cmd(r, on_hash, l, 2, hv, NULL))) {
		if (now_ms) {
			free(l);
			return err;
		}
		/* TIME is in flight with l: its callback frees it; cb never fires. */
		l->orphan = true;
		return err;
	}
	return 0;
}

int regdata_lookup(struct sk_redis *r, const char *cluster, const char *aor,
		   struct regdata_bindings *out, regdata_lookup_cb *cb, void *arg)
{
	return regdata_lookup_at(r, cluster, aor, 0, out, cb, arg);
}

void regdata_clock_sample(struct regdata_clock *c, uint64_t sent_ms, uint64_t recv_ms,
			  uint64_t redis_ms)
{
	uint64_t mid;

	if (!c || !recv_ms || recv_ms < sent_ms || recv_ms - sent_ms > REGDATA_CLOCK_RTT_MAX_MS)
		return;
	mid = sent_ms + (recv_ms - sent_ms) / 2;
	c->offset_ms = (int64_t)redis_ms - (int64_t)mid;
	c->at_ms = recv_ms;
}

uint64_t regdata_clock_now(const struct regdata_clock *c, uint64_t mono_ms)
{
	int64_t t;

	/* a caller's clock read a little before the sample's is as good */
	if (!c || !c->at_ms || (mono_ms > c->at_ms && mono_ms - c->at_ms > REGDATA_CLOCK_TTL_MS))
		return 0;
	t = (int64_t)mono_ms + c->offset_ms;
	return t > 0 ? (uint64_t)t : 0;
}
