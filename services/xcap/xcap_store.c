/* xcap_store: XCAP documents in one Redis HASH per subscriber, written by
 * compare-and-set on the ETag. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "skein/sk_redis.h"
#include "xcap_store.h"

const char XCAP_LUA_CAS[] = "local cur = redis.call('HGET', KEYS[1], ARGV[2])\n"
			    "if (cur or '') ~= ARGV[3] then return 0 end\n"
			    "if #ARGV < 5 then\n"
			    "  redis.call('HDEL', KEYS[1], ARGV[1], ARGV[2])\n"
			    "else\n"
			    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])\n"
			    "  redis.call('HSET', KEYS[1], ARGV[2], ARGV[5])\n"
			    "end\n"
			    "return 1\n";

enum { KEY_SIZE = 600, FIELD_SIZE = 400 };

int xcap_store_init(struct xcap_store *s, struct sk_redis *redis, const char *cluster)
{
	memset(s, 0, sizeof(*s));
	s->redis = redis;
	snprintf(s->cluster, sizeof(s->cluster), "%s", cluster);
	return sk_redis_script_add(redis, &s->cas, XCAP_LUA_CAS);
}

static int names(const struct xcap_store *s, const char *aor, const char *auid, const char *doc,
		 char *key, char *fd, char *fe)
{
	int err = sk_redis_key(key, KEY_SIZE, s->cluster, aor, "xcap");

	if (err)
		return err;
	if ((size_t)snprintf(fd, FIELD_SIZE, "d:%s/%s", auid, doc) >= FIELD_SIZE ||
	    (size_t)snprintf(fe, FIELD_SIZE, "e:%s/%s", auid, doc) >= FIELD_SIZE)
		return SK_ERANGE;
	return 0;
}

struct get_req {
	xcap_store_get_cb *cb;
	void *arg;
};

static void on_get(int err, struct redisReply *r, void *arg)
{
	struct get_req *g = arg;

	if (!err && (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2))
		err = SK_EPROTO;
	if (err) {
		g->cb(err, NULL, 0, "", g->arg);
	} else if (r->element[0]->type != REDIS_REPLY_STRING) {
		g->cb(0, NULL, 0, "", g->arg);
	} else {
		const redisReply *e = r->element[1];

		g->cb(0, r->element[0]->str, r->element[0]->len,
		      e->type == REDIS_REPLY_STRING ? e->str : "", g->arg);
	}
	sk_deref(g);
}

int xcap_store_get(struct xcap_store *s, const char *aor, const char *auid, const char *doc,
		   xcap_store_get_cb *cb, void *arg)
{
	char key[KEY_SIZE], fd[FIELD_SIZE], fe[FIELD_SIZE];
	const char *argv[] = {"HMGET", key, fd, fe};
	struct get_req *g;
	int err = names(s, aor, auid, doc, key, fd, fe);

	if (err)
		return err;
	g = sk_zalloc(sizeof(*g), NULL);
	if (!g)
		return SK_ENOMEM;
	g->cb = cb;
	g->arg = arg;
	err = sk_redis_cmd(s->redis, on_get, g, 4, argv, NULL);
	if (err)
		sk_deref(g);
	return err;
}

struct cas_req {
	xcap_store_cas_cb *cb;
	void *arg;
};

static void on_cas(int err, struct redisReply *r, void *arg)
{
	struct cas_req *c = arg;

	if (!err && (!r || r->type != REDIS_REPLY_INTEGER))
		err = SK_EPROTO;
	c->cb(err, !err && r->integer == 1, c->arg);
	sk_deref(c);
}

int xcap_store_cas(struct xcap_store *s, const char *aor, const char *auid, const char *doc,
		   const char *expect, const char *data, size_t len, const char *etag,
		   xcap_store_cas_cb *cb, void *arg)
{
	char key[KEY_SIZE], fd[FIELD_SIZE], fe[FIELD_SIZE];
	const char *argv[] = {key, fd, fe, expect, data, etag};
	size_t lens[] = {0, 0, 0, strlen(expect), len, etag ? strlen(etag) : 0};
	struct cas_req *c;
	int err = names(s, aor, auid, doc, key, fd, fe);

	if (err)
		return err;
	lens[0] = strlen(key);
	lens[1] = strlen(fd);
	lens[2] = strlen(fe);
	c = sk_zalloc(sizeof(*c), NULL);
	if (!c)
		return SK_ENOMEM;
	c->cb = cb;
	c->arg = arg;
	err = sk_redis_eval(s->cas, on_cas, c, 1, data ? 6 : 4, argv, lens);
	if (err)
		sk_deref(c);
	return err;
}
