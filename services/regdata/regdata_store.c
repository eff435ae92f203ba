/* regdata_store: one REGISTER as one Lua script (RFC 3261 §10.3, RFC 5626 §6): the
 * checks made before Redis, the arguments of the registrar's script and of the edge's
 * refresh script (regdata_script.c), and the reading of their answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "regdata.h"

#define FIXED_ARGS 14 /* 5 keys + 9 ARGV before the contacts */
#define HA1_MAX	   128 /* hex SHA-256 is 64; anything longer is not ours */

struct slot {
	char key[REGDATA_URI_MAX + 16];
	char exp[24];
	uint8_t *blob;
	size_t len;
};

struct cmd {
	struct regdata_reg_cmd pub;
	char keys[3][REGDATA_AOR_MAX + 256];
	char cseq[24], maxc[24], n[24], now[24];
	/* RegisterRequest.auth (bounded copies, the keys checked by auth_args) */
	char akeys[2][REGDATA_AOR_MAX + 512], field[16], ha1[HA1_MAX + 1], nc[24], ttl[24];
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

/* A control character: none is valid unescaped in a SIP URI or a quoted +sip.instance
 * (RFC 3261 §25.1), and byte 1 starts the hash fields that are not bindings
 * (REGDATA_META_MARK). */
static bool has_ctl(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
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
		    (c->instance && strlen(c->instance) > REGDATA_URI_MAX) || has_ctl(c->uri) ||
		    has_ctl(c->instance)) {
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

/* The Redis Cluster hash tag of key: what is between the first '{' and the first '}'
 * after it, when not empty (else the whole key is hashed). */
static void hash_tag(const char *key, const char **p, size_t *n)
{
	const char *o = strchr(key, '{'), *c = o ? strchr(o + 1, '}') : NULL;

	if (!c || c == o + 1) {
		*p = key;
		*n = strlen(key);
		return;
	}
	*p = o + 1;
	*n = (size_t)(c - o - 1);
}

static bool same_slot(const char *a, const char *b)
{
	const char *pa, *pb;
	size_t na, nb;

	hash_tag(a, &pa, &na);
	hash_tag(b, &pb, &nb);
	return na == nb && !memcmp(pa, pb, na);
}

/* Bounded copies without snprintf: this runs for every REGISTER (callgrind showed
 * the registrar's snprintf calls as a tenth of its instructions). */
static bool copy(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		return false;
	memcpy(dst, src, n + 1);
	return true;
}

/* Decimal, as "%lld" (out holds 21 bytes). */
static void itoa10(char *out, int64_t v)
{
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	char tmp[20];
	size_t n = 0;

	if (v < 0)
		*out++ = '-';
	do
		tmp[n++] = (char)('0' + u % 10);
	while ((u /= 10));
	while (n)
		*out++ = tmp[--n];
	*out = '\0';
}

/* RegisterRequest.auth into the script's KEYS[4..5] and ARGV[6..9]. The edge is
 * trusted, but a bug there must not make the script touch keys of another slot (Redis
 * Cluster refuses that; a single Redis would silently allow it): SK_EINVAL. */
static int auth_args(struct cmd *c, const Skein__Sip__V1__RegisterAuth *au)
{
	if (!au->cred_key || !au->nc_key || !au->field || !au->ha1 ||
	    (strcmp(au->field, "ha1_md5") && strcmp(au->field, "ha1_sha256")) ||
	    !same_slot(au->cred_key, c->keys[0]) || !same_slot(au->nc_key, c->keys[0]) ||
	    !copy(c->akeys[0], sizeof(c->akeys[0]), au->cred_key) ||
	    !copy(c->akeys[1], sizeof(c->akeys[1]), au->nc_key) ||
	    !copy(c->ha1, sizeof(c->ha1), au->ha1) ||
	    !copy(c->field, sizeof(c->field), au->field))
		return SK_EINVAL;
	itoa10(c->nc, au->nc);
	itoa10(c->ttl, au->nc_ttl ? au->nc_ttl : 1);
	return 0;
}

int regdata_register_prepare(struct regdata_reg_cmd **cp, struct regdata_reg_result *res,
			     const char *cluster, const Skein__Sip__V1__RegisterRequest *rq,
			     const struct regdata_policy *pol)
{
	return regdata_register_prepare_ex(cp, res, cluster, rq, pol, 0);
}

int regdata_register_prepare_ex(struct regdata_reg_cmd **cp, struct regdata_reg_result *res,
				const char *cluster,
				const Skein__Sip__V1__RegisterRequest *rq,
				const struct regdata_policy *pol, unsigned flags)
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
	/* Not zeroed (~6 KB on every REGISTER): every field is written before it is
	 * read, and cmd_destroy reads only the first nslots slots. */
	c = sk_alloc(sizeof(*c) + n * sizeof(c->slots[0]), cmd_destroy);
	if (!c)
		return SK_ENOMEM;
	c->nslots = 0;
	if (regdata_key_reg(c->keys[0], sizeof(c->keys[0]), cluster, aor) ||
	    regdata_key_exp(c->keys[1], sizeof(c->keys[1]), cluster, aor) ||
	    regdata_key_meta(c->keys[2], sizeof(c->keys[2]), cluster, aor)) {
		err = SK_ERANGE;
		goto out;
	}
	if (rq->auth && (err = auth_args(c, rq->auth)))
		goto out;
	itoa10(c->cseq, rq->cseq);
	itoa10(c->maxc, pol->max_contacts);
	itoa10(c->n, (int64_t)n);
	for (int k = 0; k < 3; k++)
		c->argv[a++] = c->keys[k];
	if (rq->auth) {
		c->argv[a++] = c->akeys[0];
		c->argv[a++] = c->akeys[1];
	}
	c->pub.nkeys = (int)a;
	c->argv[a++] = rq->call_id;
	c->argv[a++] = c->cseq;
	c->argv[a++] = rq->star ? "s" : !n ? "q" : (flags & REGDATA_REG_REFRESH_ONLY) ? "r" : "u";
	c->argv[a++] = c->maxc;
	c->argv[a++] = c->n;
	if (rq->auth) {
		c->argv[a++] = c->field;
		c->argv[a++] = c->ha1;
		c->argv[a++] = c->nc;
		c->argv[a++] = c->ttl;
	}
	for (size_t i = 0; i < a; i++)
		c->lens[i] = strlen(c->argv[i]);
	for (size_t i = 0; i < n; i++) {
		const Skein__Sip__V1__Contact *ct = rq->contacts[i];
		struct slot *s = &c->slots[i];
		int64_t e = regdata_contact_expires(ct, rq->expires, pol);

		s->blob = NULL;
		s->len = 0;
		c->nslots++;
		err = regdata_binding_key(s->key, sizeof(s->key), ct->uri, ct->instance,
					  ct->reg_id);
		if (err)
			goto out; /* cannot happen: lengths checked above */
		itoa10(s->exp, e < 0 ? 0 : e);
		if (e > 0 && (err = pack_binding(s, rq, ct)))
			goto out;
		c->argv[a] = s->key;
		c->lens[a++] = strlen(s->key);
		c->argv[a] = s->exp;
		c->lens[a++] = strlen(s->exp);
		c->argv[a] = s->blob ? (const char *)s->blob : "";
		c->lens[a++] = s->blob ? s->len : 0;
	}
	c->pub.argc = (int)a;
	c->pub.argv = c->argv;
	c->pub.lens = c->lens;
	*cp = &c->pub;
	return 0;
out:
	sk_deref(c);
	return err;
}

int regdata_refresh_prepare(struct regdata_reg_cmd **cp, const char *cluster,
			    const Skein__Sip__V1__RegisterRequest *rq,
			    const struct regdata_policy *pol, uint64_t now_ms)
{
	struct regdata_reg_result res;
	char aor[REGDATA_AOR_MAX];
	const Skein__Sip__V1__Contact *ct;
	const char *why;
	struct slot *s;
	struct cmd *c;
	int64_t e;
	size_t a = 0;
	int err;

	if (cp)
		*cp = NULL;
	if (!cp || !cluster || !rq || !pol)
		return SK_EINVAL;
	/* Not a candidate: the general way, where the registrar answers 400/423 too. */
	if (rq->star || rq->n_contacts != 1 || !rq->auth ||
	    regdata_aor_norm(aor, sizeof(aor), rq->aor ? rq->aor : "", &why) ||
	    check(&res, rq, pol))
		return 0;
	ct = rq->contacts[0];
	e = regdata_contact_expires(ct, rq->expires, pol);
	if (e <= 0)
		return 0;
	c = sk_alloc(sizeof(*c) + sizeof(c->slots[0]), cmd_destroy);
	if (!c)
		return SK_ENOMEM;
	c->nslots = 1;
	s = &c->slots[0];
	s->blob = NULL;
	if (regdata_key_reg(c->keys[0], sizeof(c->keys[0]), cluster, aor)) {
		err = SK_ERANGE;
		goto out;
	}
	if ((err = auth_args(c, rq->auth)) ||
	    (err = regdata_binding_key(s->key, sizeof(s->key), ct->uri, ct->instance,
				       ct->reg_id)) ||
	    (err = pack_binding(s, rq, ct)))
		goto out;
	itoa10(c->cseq, rq->cseq);
	itoa10(s->exp, e);
	c->argv[a++] = c->keys[0];
	c->argv[a++] = c->akeys[0];
	c->pub.nkeys = (int)a;
	c->argv[a++] = rq->call_id;
	c->argv[a++] = c->cseq;
	c->argv[a++] = c->field;
	c->argv[a++] = c->ha1;
	c->argv[a++] = s->key;
	c->argv[a++] = s->exp;
	for (size_t i = 0; i < a; i++)
		c->lens[i] = strlen(c->argv[i]);
	c->argv[a] = (const char *)s->blob;
	c->lens[a++] = s->len;
	if (now_ms) {
		itoa10(c->now, (int64_t)now_ms);
		c->argv[a] = c->now;
		c->lens[a++] = strlen(c->now);
	}
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
		/* RegisterRequest.auth failed (RFC 7616 §3.4.5): nothing was written. */
		{"stale", 401, "Unauthorized (credentials changed)"},
		{"nc", 401, "Unauthorized (nonce-count replayed)"},
		/* REGDATA_REG_REFRESH_ONLY and not a pure refresh: nothing was written. */
		{"defer", 0, "Not a refresh"},
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
	if (code == 0) {
		res_set(res, 0, tags[i].reason);
		res->deferred = true;
		return 0;
	}
	if (code == 401) {
		const redisReply *h = r->elements > 5 ? r->element[5] : NULL;

		if (!strcmp(tag, "stale") &&
		    (!h || h->type != REDIS_REPLY_STRING || h->len >= sizeof(res->current_ha1)))
			return SK_EPROTO;
		res_set(res, tags[i].code, tags[i].reason);
		res->auth_check = strcmp(tag, "nc") ? SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_STALE
						    : SKEIN__SIP__V1__AUTH_CHECK__AUTH_CHECK_REPLAY;
		if (h && h->type == REDIS_REPLY_STRING)
			memcpy(res->current_ha1, h->str, h->len + 1);
		return 0;
	}
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
	rep->auth_check = res->auth_check;
	rep->current_ha1 = (char *)res->current_ha1;
}
