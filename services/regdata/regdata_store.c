/* regdata_store: one REGISTER as one Lua script (RFC 3261 §10.3, RFC 5626 §6): the
 * checks made before Redis, the script's arguments and the reading of its answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "regdata.h"

#define STR_(x) #x
#define STR(x)	STR_(x)

/* KEYS: reg, exp, meta.
 * ARGV: call-id, cseq, mode ('q' query, 's' Contact: *, 'u' update), max_contacts,
 *       n, then n x (binding key, expires in s (0 removes), packed Binding).
 * Returns {code, tag, added, refreshed, removed, blob, seconds left, ...}; the tag is
 * 'ok', 'query', 'replay', 'cseq' (500) or 'max' (403). regdata.h says what it does.
 * Byte 16 ('\16') is the protobuf tag of field 2 (expires_at_ms, varint), 112 ('\112')
 * that of field 14 (registered_ms); Lua numbers are exact up to 2^53 ms. */
const char REGDATA_LUA_REGISTER[] =
	"local reg, exp, meta = KEYS[1], KEYS[2], KEYS[3]\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local callid, cseq, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]\n"
	"local maxc, n = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
	"local old = redis.call('ZRANGEBYSCORE', exp, '-inf', now)\n"
	"for _, k in ipairs(old) do\n"
	"  redis.call('HDEL', reg, k)\n"
	"  redis.call('HDEL', meta, k)\n"
	"end\n"
	"if #old > 0 then redis.call('ZREMRANGEBYSCORE', exp, '-inf', now) end\n"
	/* The reply lists every live binding; live is ZRANGE exp WITHSCORES when the
	 * caller has it already. */
	"local function answer(code, tag, a, r, d, live)\n"
	"  local out = {code, tag, a, r, d}\n"
	"  live = live or redis.call('ZRANGE', exp, 0, -1, 'WITHSCORES')\n"
	"  for i = 1, #live, 2 do\n"
	"    local b = redis.call('HGET', reg, live[i])\n"
	"    if b then\n"
	"      out[#out + 1] = b\n"
	"      out[#out + 1] = math.ceil((tonumber(live[i + 1]) - now) / 1000)\n"
	"    end\n"
	"  end\n"
	"  return out\n"
	"end\n"
	"local function getmeta(k)\n"
	"  local m = redis.call('HGET', meta, k)\n"
	"  if not m then return nil end\n"
	"  local c, r, id = string.match(m, '^(%d+) (%d+) (.*)$')\n"
	"  if not c then return nil end\n"
	"  return tonumber(c), tonumber(r), id\n"
	"end\n"
	"local function varint(x)\n"
	"  local s = ''\n"
	"  while x >= 128 do\n"
	"    s = s .. string.char(x % 128 + 128)\n"
	"    x = math.floor(x / 128)\n"
	"  end\n"
	"  return s .. string.char(x)\n"
	"end\n"
	"if mode == 'q' then return answer(200, 'query', 0, 0, 0) end\n"
	"local keys, ops = {}, {}\n"
	"if mode == 's' then\n"
	"  for _, k in ipairs(redis.call('ZRANGE', exp, 0, -1)) do\n"
	"    keys[#keys + 1] = k\n"
	"    ops[k] = {0, ''}\n"
	"  end\n"
	"else\n"
	"  for i = 0, n - 1 do\n"
	"    local k = ARGV[6 + 3 * i]\n"
	"    if not ops[k] then keys[#keys + 1] = k end\n"
	"    ops[k] = {tonumber(ARGV[7 + 3 * i]), ARGV[8 + 3 * i]}\n"
	"  end\n"
	"end\n"
	/* Plan first: a request that fails writes nothing. What the plan reads of each
	 * binding (live?, first registration, Call-ID) serves the writes too. */
	"local before = redis.call('ZCARD', exp)\n"
	"local after, same, changes = before, 0, 0\n"
	"for _, k in ipairs(keys) do\n"
	"  local op = ops[k]\n"
	"  local live = redis.call('ZSCORE', exp, k)\n"
	"  local c, r, id\n"
	"  if live then c, r, id = getmeta(k) end\n"
	"  op[3], op[4], op[5] = live, r, id\n"
	"  if live and id == callid and c > cseq then return answer(500, 'cseq', 0, 0, 0) end\n"
	"  if live and id == callid and c == cseq then\n"
	"    local cur = redis.call('HGET', reg, k) or ''\n"
	"    if op[1] == 0 or string.sub(cur, 1, #op[2] + 1) ~= op[2] .. '\\16' then\n"
	"      return answer(500, 'cseq', 0, 0, 0)\n"
	"    end\n"
	"    same = same + 1\n"
	"  elseif op[1] > 0 or live then\n"
	"    changes = changes + 1\n"
	"  end\n"
	"  if live and op[1] == 0 then after = after - 1\n"
	"  elseif not live and op[1] > 0 then after = after + 1 end\n"
	"end\n"
	"if same > 0 then\n"
	"  if changes > 0 then return answer(500, 'cseq', 0, 0, 0) end\n"
	"  return answer(200, 'replay', 0, 0, 0)\n"
	"end\n"
	"if after > maxc and after > before then return answer(403, 'max', 0, 0, 0) end\n"
	"local added, refreshed, removed = 0, 0, 0\n"
	"for _, k in ipairs(keys) do\n"
	"  local op = ops[k]\n"
	"  local live = op[3]\n"
	"  if op[1] == 0 then\n"
	"    if live then\n"
	"      redis.call('HDEL', reg, k)\n"
	"      redis.call('HDEL', meta, k)\n"
	"      redis.call('ZREM', exp, k)\n"
	"      removed = removed + 1\n"
	"    end\n"
	"  else\n"
	"    local first = now\n"
	"    if live then\n"
	"      if op[5] == callid and op[4] then first = op[4] end\n"
	"      refreshed = refreshed + 1\n"
	"    else\n"
	"      added = added + 1\n"
	"    end\n"
	"    local e = now + op[1] * 1000\n"
	"    redis.call('HSET', reg, k, op[2] .. '\\16' .. varint(e) .. '\\112' .. varint(first))\n"
	"    redis.call('HSET', meta, k, string.format('%d %d %s', cseq, first, callid))\n"
	"    redis.call('ZADD', exp, e, k)\n"
	"  end\n"
	"end\n"
	/* One ZRANGE serves the expiry of the keys (the last score), the meta clean-up
	 * (how many are live) and the reply. */
	"local live = redis.call('ZRANGE', exp, 0, -1, 'WITHSCORES')\n"
	"if #live == 0 then\n"
	"  redis.call('DEL', reg, exp, meta)\n"
	"else\n"
	"  local ttl = tonumber(live[#live]) - now + " STR(REGDATA_TTL_SLACK_MS) "\n"
	"  redis.call('PEXPIRE', reg, ttl)\n"
	"  redis.call('PEXPIRE', exp, ttl)\n"
	"  redis.call('PEXPIRE', meta, ttl)\n"
	/* Lookups purge reg and exp only: drop meta of bindings they removed. */
	"  if redis.call('HLEN', meta) > #live / 2 then\n"
	"    for _, k in ipairs(redis.call('HKEYS', meta)) do\n"
	"      if not redis.call('ZSCORE', exp, k) then redis.call('HDEL', meta, k) end\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return answer(200, 'ok', added, refreshed, removed, live)\n";

#define FIXED_ARGS 8 /* 3 keys + 5 ARGV before the contacts */

struct slot {
	char key[REGDATA_URI_MAX + 16];
	char exp[24];
	uint8_t *blob;
	size_t len;
};

struct cmd {
	struct regdata_reg_cmd pub;
	char keys[3][REGDATA_AOR_MAX + 256];
	char cseq[16], maxc[24], n[16];
	const char *argv[FIXED_ARGS + 3 * REGDATA_REQ_CONTACTS_MAX];
	size_t lens[FIXED_ARGS + 3 * REGDATA_REQ_CONTACTS_MAX];
	size_t nslots;
	struct slot slots[];
};

static void cmd_destroy(void *data)
{
	struct cmd *c = data;

	for (size_t i = 0; i < c->nslots; i++)
		free(c->slots[i].blob);
}

static void res_set(struct regdata_reg_result *res, uint32_t code, const char *reason)
{
	res->code = code;
	res->reason = reason;
}

int64_t regdata_contact_expires(const Skein__Sip__V1__Contact *c, int64_t hdr_expires,
				const struct regdata_policy *pol)
{
	int64_t e = c->expires >= 0 ? c->expires : hdr_expires >= 0 ? hdr_expires
								    : pol->default_expires;

	/* A default outside [min, max] (a bad reload) must not make every REGISTER fail. */
	if (c->expires < 0 && hdr_expires < 0 && e < pol->min_expires)
		e = pol->min_expires;
	return e > pol->max_expires ? pol->max_expires : e;
}

/* Packs what C knows of the binding; the script adds expires_at_ms and registered_ms. */
static int pack_binding(struct slot *s, const Skein__Sip__V1__RegisterRequest *rq,
			const Skein__Sip__V1__Contact *ct)
{
	Skein__Sip__V1__Binding b = SKEIN__SIP__V1__BINDING__INIT;

	b.contact = ct->uri;
	b.q_milli = ct->q_milli;
	b.call_id = rq->call_id;
	b.cseq = rq->cseq;
	b.edge = rq->edge;
	b.flow = rq->flow;
	b.transport = rq->transport;
	b.source = rq->source;
	b.user_agent = rq->user_agent;
	b.instance = ct->instance;
	b.reg_id = ct->reg_id;
	b.n_path = rq->n_path;
	b.path = rq->path;
	b.received = rq->received;
	s->len = skein__sip__v1__binding__get_packed_size(&b);
	s->blob = malloc(s->len ? s->len : 1);
	if (!s->blob)
		return SK_ENOMEM;
	skein__sip__v1__binding__pack(&b, s->blob);
	return 0;
}

/* RFC 3261 §10.3 steps 6 and 7, before anything is stored: 0 when the request may go
 * to Redis, else 1 with res set. */
static int check(struct regdata_reg_result *res, const Skein__Sip__V1__RegisterRequest *rq,
		 const struct regdata_policy *pol)
{
	bool short_ = false;

	if (!rq->call_id || !*rq->call_id) {
		res_set(res, 400, "Missing Call-ID");
		return 1;
	}
	if (rq->star && (rq->n_contacts || rq->expires != 0)) {
		res_set(res, 400, "Contact: * requires Expires: 0 and no other Contact");
		return 1;
	}
	if (rq->n_contacts > REGDATA_REQ_CONTACTS_MAX) {
		res_set(res, 400, "Too many Contact header field values");
		return 1;
	}
	for (size_t i = 0; i < rq->n_contacts; i++) {
		const Skein__Sip__V1__Contact *c = rq->contacts[i];
		int64_t e;

		if (!c->uri || !*c->uri || strlen(c->uri) > REGDATA_URI_MAX ||
		    (c->instance && strlen(c->instance) > REGDATA_URI_MAX)) {
			res_set(res, 400, "Invalid Contact");
			return 1;
		}
		if (c->q_milli > 1000) {
			res_set(res, 400, "Invalid q value in Contact");
			return 1;
		}
		e = regdata_contact_expires(c, rq->expires, pol);
		if (e > 0 && e < pol->min_expires)
			short_ = true;
	}
	/* Step 7: one 423 with Min-Expires for the whole request. */
	if (short_) {
		res_set(res, 423, "Interval Too Brief");
		res->min_expires = (uint32_t)pol->min_expires;
		return 1;
	}
	return 0;
}

int regdata_register_prepare(struct regdata_reg_cmd **cp, struct regdata_reg_result *res,
			     const char *cluster, const Skein__Sip__V1__RegisterRequest *rq,
			     const struct regdata_policy *pol)
{
	char aor[REGDATA_AOR_MAX];
	const char *why;
	struct cmd *c;
	size_t n, a = 0;
	int err;

	if (res) {
		memset(res, 0, sizeof(*res));
		res_set(res, 500, "Server Internal Error");
	}
	if (cp)
		*cp = NULL;
	if (!cp || !res || !cluster || !rq || !pol)
		return SK_EINVAL;
	if (regdata_aor_norm(aor, sizeof(aor), rq->aor ? rq->aor : "", &why)) {
		res_set(res, 400, "Invalid address of record");
		return 0;
	}
	if (check(res, rq, pol))
		return 0;
	n = rq->star ? 0 : rq->n_contacts;
	c = sk_zalloc(sizeof(*c) + n * sizeof(c->slots[0]), cmd_destroy);
	if (!c)
		return SK_ENOMEM;
	if (regdata_key_reg(c->keys[0], sizeof(c->keys[0]), cluster, aor) ||
	    regdata_key_exp(c->keys[1], sizeof(c->keys[1]), cluster, aor) ||
	    regdata_key_meta(c->keys[2], sizeof(c->keys[2]), cluster, aor)) {
		err = SK_ERANGE;
		goto out;
	}
	snprintf(c->cseq, sizeof(c->cseq), "%u", rq->cseq);
	snprintf(c->maxc, sizeof(c->maxc), "%lld", (long long)pol->max_contacts);
	snprintf(c->n, sizeof(c->n), "%zu", n);
	for (int k = 0; k < 3; k++)
		c->argv[a++] = c->keys[k];
	c->argv[a++] = rq->call_id;
	c->argv[a++] = c->cseq;
	c->argv[a++] = rq->star ? "s" : n ? "u" : "q";
	c->argv[a++] = c->maxc;
	c->argv[a++] = c->n;
	for (size_t i = 0; i < a; i++)
		c->lens[i] = strlen(c->argv[i]);
	for (size_t i = 0; i < n; i++) {
		const Skein__Sip__V1__Contact *ct = rq->contacts[i];
		struct slot *s = &c->slots[i];
		int64_t e = regdata_contact_expires(ct, rq->expires, pol);

		c->nslots++;
		err = regdata_binding_key(s->key, sizeof(s->key), ct->uri, ct->instance,
					  ct->reg_id);
		if (err)
			goto out; /* cannot happen: lengths checked above */
		snprintf(s->exp, sizeof(s->exp), "%lld", (long long)(e < 0 ? 0 : e));
		if (e > 0 && (err = pack_binding(s, rq, ct)))
			goto out;
		c->argv[a] = s->key;
		c->lens[a++] = strlen(s->key);
		c->argv[a] = s->exp;
		c->lens[a++] = strlen(s->exp);
		c->argv[a] = s->blob ? (const char *)s->blob : "";
		c->lens[a++] = s->blob ? s->len : 0;
	}
	c->pub.nkeys = 3;
	c->pub.argc = (int)a;
	c->pub.argv = c->argv;
	c->pub.lens = c->lens;
	*cp = &c->pub;
	return 0;
out:
	sk_deref(c);
	return err;
}

static bool el_int(const redisReply *r, long long *v)
{
	if (r->type != REDIS_REPLY_INTEGER)
		return false;
	*v = r->integer;
	return true;
}

int regdata_register_result(struct regdata_reg_result *res, const void *reply)
{
	static const struct {
		const char *tag;
		uint32_t code;
		const char *reason;
	} tags[] = {
		{"ok", 200, "OK"},
		{"query", 200, "OK"},
		{"replay", 200, "OK"},
		/* RFC 3261 §10.3 step 7: an older or repeated CSeq in this Call-ID. */
		{"cseq", 500, "Out-of-order CSeq for this Call-ID"},
		{"max", 403, "Too many registered contacts"},
	};
	const redisReply *r = reply;
	long long code, cnt[3];
	const char *tag;
	size_t i;
	int err;

	if (!res)
		return SK_EINVAL;
	memset(res, 0, sizeof(*res));
	res_set(res, 500, "Registrar storage answered in a wrong shape");
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 5 ||
	    r->element[1]->type != REDIS_REPLY_STRING || !el_int(r->element[0], &code) ||
	    !el_int(r->element[2], &cnt[0]) || !el_int(r->element[3], &cnt[1]) ||
	    !el_int(r->element[4], &cnt[2]))
		return SK_EPROTO;
	tag = r->element[1]->str;
	for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		if (!strcmp(tag, tags[i].tag) && code == tags[i].code)
			break;
	if (i == sizeof(tags) / sizeof(tags[0]))
		return SK_EPROTO;
	err = regdata_bindings_from_reply_at(&res->bindings, r, 5, NULL);
	if (err)
		return err;
	res_set(res, tags[i].code, tags[i].reason);
	res->query = !strcmp(tag, "query");
	res->replay = !strcmp(tag, "replay");
	res->added = (uint32_t)cnt[0];
	res->refreshed = (uint32_t)cnt[1];
	res->removed = (uint32_t)cnt[2];
	return 0;
}

void regdata_reg_result_release(struct regdata_reg_result *res)
{
	if (res)
		regdata_bindings_free(&res->bindings);
}

void regdata_reg_reply_fill(Skein__Sip__V1__RegisterReply *rep,
			    const struct regdata_reg_result *res)
{
	rep->code = res->code;
	rep->reason = (char *)(res->reason ? res->reason : "");
	rep->min_expires = res->code == 423 ? res->min_expires : 0;
	rep->n_bindings = res->bindings.n;
	rep->bindings = res->bindings.b;
}
