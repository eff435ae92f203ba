/* skeinctl domain|user|reg: provisioning of served domains (and their call limit
 * overrides) and users (HA1s only, never the password) and a look at an AOR's
 * bindings, straight in Redis (regdata.h keys). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "skein/sk_buf.h"
#include "skein/sk_err.h"
#include "skein/sk_redis.h"
#include "skein/sk_sys.h"
#include "digest.h"
#include "regdata.h"
#include "skeinctl.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2
#define KEY_MAX	     (REGDATA_AOR_MAX + 256)
#define PASSWORD_MAX 256

/* KEYS: cred. ARGV: ha1_md5, ha1_sha256. 0 when the user exists already. */
static const char create_lua[] =
	"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"redis.call('HSET', KEYS[1], 'ha1_md5', ARGV[1], 'ha1_sha256', ARGV[2],\n"
	"           'created_ms', string.format('%d', now))\n"
	"return now\n";
/* KEYS: cred. ARGV: ha1_md5, ha1_sha256. 0 when there is no such user. */
static const char passwd_lua[] =
	"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
	"redis.call('HSET', KEYS[1], 'ha1_md5', ARGV[1], 'ha1_sha256', ARGV[2])\n"
	"return 1\n";

struct prov {
	struct ctl *c;
	redisContext *rc;
	const char *pos[4]; /* positional arguments after the sub-command */
	int npos;
	const char *password;
	bool force;
	char pwbuf[PASSWORD_MAX + 2];
};

static int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_err(const char *fmt, ...)
{
	va_list ap;

	fputs("skeinctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	return EXIT_USAGE;
}

/* ---- Redis, synchronously ---- */

static int rconnect(struct prov *p)
{
	p->rc = ctl_redis_connect(p->c);
	return p->rc ? 0 : EXIT_RUNTIME;
}

static redisReply *r_cmd(struct prov *p, int argc, const char **argv, const size_t *lens)
{
	return ctl_redis_cmd(p->c, p->rc, argc, argv, lens);
}

/* An integer reply of a command given as C strings: 0 with *v, or EXIT_RUNTIME. */
static int r_int(struct prov *p, long long *v, int argc, const char **argv)
{
	redisReply *r = r_cmd(p, argc, argv, NULL);

	*v = 0;
	if (!r)
		return EXIT_RUNTIME;
	if (r->type != REDIS_REPLY_INTEGER) {
		fprintf(stderr, "skeinctl: redis: unexpected answer to %s\n", argv[0]);
		freeReplyObject(r);
		return EXIT_RUNTIME;
	}
	*v = r->integer;
	freeReplyObject(r);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* SMEMBERS, sorted (the strings point into *rp, which the caller frees). */
static int members(struct prov *p, const char *key, redisReply **rp, char ***out)
{
	const char *argv[] = {"SMEMBERS", key};
	redisReply *r = r_cmd(p, 2, argv, NULL);
	char **v;

	*rp = NULL;
	*out = NULL;
	if (!r)
		return EXIT_RUNTIME;
	if (r->type != REDIS_REPLY_ARRAY) {
		fprintf(stderr, "skeinctl: redis: unexpected answer to SMEMBERS %s\n", key);
		freeReplyObject(r);
		return EXIT_RUNTIME;
	}
	v = calloc(r->elements + 1, sizeof(*v));
	if (!v) {
		freeReplyObject(r);
		fprintf(stderr, "skeinctl: out of memory\n");
		return EXIT_RUNTIME;
	}
	for (size_t i = 0; i < r->elements; i++)
		v[i] = r->element[i]->str;
	qsort(v, r->elements, sizeof(*v), cmp_str);
	*rp = r;
	*out = v;
	return 0;
}

/* ---- arguments ---- */

static int parse(struct prov *p, int first)
{
	struct ctl *c = p->c;

	for (int i = first; i < c->nargs; i++) {
		const char *a = c->args[i];

		if (!strcmp(a, "--password") && i + 1 < c->nargs) {
			p->password = c->args[++i];
		} else if (!strncmp(a, "--password=", 11)) {
			p->password = a + 11;
		} else if (!strcmp(a, "--password-stdin")) {
			if (!fgets(p->pwbuf, sizeof(p->pwbuf), stdin))
				return usage_err("%s: nothing on stdin", a);
			p->pwbuf[strcspn(p->pwbuf, "\r\n")] = '\0';
			p->password = p->pwbuf;
		} else if (!strcmp(a, "--force")) {
			p->force = true;
		} else if (a[0] == '-' && a[1]) {
			return usage_err("unknown or incomplete option \"%s\"", a);
		} else if (p->npos < (int)(sizeof(p->pos) / sizeof(p->pos[0]))) {
			p->pos[p->npos++] = a;
		} else {
			return usage_err("unexpected argument \"%s\"", a);
		}
	}
	if (p->password && (!*p->password || strlen(p->password) > PASSWORD_MAX))
		return usage_err("the password must be 1 to %d characters", PASSWORD_MAX);
	return 0;
}

static int need_args(const struct prov *p, int n, const char *what)
{
	if (p->npos != n)
		return usage_err("usage: skeinctl %s", what);
	return 0;
}

static int norm_domain(char *out, size_t size, const char *in)
{
	const char *why = "";

	if (regdata_domain_norm(out, size, in, &why)) {
		fprintf(stderr, "skeinctl: invalid domain \"%s\": %s\n", in, why);
		return EXIT_USAGE;
	}
	return 0;
}

static int norm_aor(char *out, size_t size, const char *in)
{
	const char *why = "";

	if (regdata_aor_norm(out, size, in, &why)) {
		fprintf(stderr, "skeinctl: invalid address of record \"%s\": %s\n", in, why);
		return EXIT_USAGE;
	}
	return 0;
}

/* ---- domains ---- */

static int domain_exists(struct prov *p, const char *domain, bool *yes)
{
	char key[KEY_MAX];
	const char *argv[] = {"SISMEMBER", key, domain};
	long long v;
	int rc;

	if (regdata_key_domains(key, sizeof(key), p->c->cluster.name))
		return usage_err("cluster name \"%s\" too long", p->c->cluster.name);
	rc = r_int(p, &v, 3, argv);
	*yes = v == 1;
	return rc;
}

static int user_delete(struct prov *p, const char *aor, bool *existed);

static int domain_add(struct prov *p, const char *domain)
{
	char key[KEY_MAX];
	const char *argv[] = {"SADD", key, domain};
	long long v;
	int rc;

	if (regdata_key_domains(key, sizeof(key), p->c->cluster.name))
		return usage_err("cluster name \"%s\" too long", p->c->cluster.name);
	if ((rc = r_int(p, &v, 3, argv)))
		return rc;
	if (!v) {
		fprintf(stderr, "skeinctl: domain %s already exists\n", domain);
		return EXIT_RUNTIME;
	}
	if (p->c->table)
		printf("added domain %s\n", domain);
	else
		printf("{\"domain\":\"%s\",\"added\":true}\n", domain); /* normalised: no escapes */
	return 0;
}

/* ---- call limits: per-domain overrides of the edges' [edge] call_limit / call_rate
 * in one hash ({domains}:limits, fields "<domain>:call_limit" and
 * "<domain>:call_rate"), which every edge reads with the domain set each second. */

static const char *const limit_fields[2] = {"call_limit", "call_rate"};

/* The HGETALL of the limits hash (NULL, reported, on failure). */
static redisReply *limits_all(struct prov *p)
{
	char key[KEY_MAX];
	const char *argv[] = {"HGETALL", key};
	redisReply *r;

	if (regdata_key_limits(key, sizeof(key), p->c->cluster.name)) {
		usage_err("cluster name \"%s\" too long", p->c->cluster.name);
		return NULL;
	}
	r = r_cmd(p, 2, argv, NULL);
	if (r && (r->type != REDIS_REPLY_ARRAY || r->elements % 2)) {
		fprintf(stderr, "skeinctl: redis: unexpected answer to HGETALL %s\n", key);
		freeReplyObject(r);
		r = NULL;
	}
	return r;
}

/* The override of one field ("call_limit") for domain, or NULL (the edges' default). */
static const char *limit_of(const redisReply *all, const char *domain, const char *what)
{
	size_t dl = strlen(domain), wl = strlen(what);

	for (size_t i = 0; all && i + 1 < all->elements; i += 2) {
		const redisReply *f = all->element[i], *v = all->element[i + 1];

		if (f->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
		    f->len == dl + 1 + wl && !memcmp(f->str, domain, dl) && f->str[dl] == ':' &&
		    !memcmp(f->str + dl + 1, what, wl))
			return v->str;
	}
	return NULL;
}

static const char *or_default(const char *v)
{
	return v ? v : "default";
}

/* ,"call_limit":N for each override (JSON), or the table's two columns. */
static void limits_print(struct sk_buf *b, bool table, const redisReply *all, const char *domain)
{
	for (int k = 0; k < 2; k++) {
		const char *v = limit_of(all, domain, limit_fields[k]);

		if (table)
			sk_buf_printf(b, " %10s", or_default(v));
		else if (v)
			sk_buf_printf(b, ",\"%s\":%lld", limit_fields[k], strtoll(v, NULL, 10));
	}
}

static int domain_list(struct prov *p)
{
	char key[KEY_MAX], **v;
	redisReply *r, *lim;
	struct sk_buf b;
	int rc;

	if (regdata_key_domains(key, sizeof(key), p->c->cluster.name))
		return usage_err("cluster name \"%s\" too long", p->c->cluster.name);
	if (!(lim = limits_all(p)))
		return EXIT_RUNTIME;
	if ((rc = members(p, key, &r, &v))) {
		freeReplyObject(lim);
		return rc;
	}
	sk_buf_init(&b);
	sk_buf_puts(&b, p->c->table ? "DOMAIN                                   USERS CALL-LIMIT  CALL-RATE\n"
				    : "[");
	for (size_t i = 0; v[i]; i++) {
		const char *argv[] = {"SCARD", key};
		long long n = 0;

		if (regdata_key_users(key, sizeof(key), p->c->cluster.name, v[i]) ||
		    (rc = r_int(p, &n, 2, argv)))
			break;
		if (p->c->table) {
			sk_buf_printf(&b, "%-40s %5lld", v[i], n);
			limits_print(&b, true, lim, v[i]);
			sk_buf_puts(&b, "\n");
		} else {
			sk_buf_puts(&b, i ? ",\n {\"domain\":" : "{\"domain\":");
			sk_buf_json_str(&b, v[i]);
			sk_buf_printf(&b, ",\"users\":%lld", n);
			limits_print(&b, false, lim, v[i]);
			sk_buf_puts(&b, "}");
		}
	}
	if (!p->c->table)
		sk_buf_puts(&b, "]\n");
	if (!rc && b.data)
		fputs(b.data, stdout);
	sk_buf_release(&b);
	free(v);
	freeReplyObject(r);
	freeReplyObject(lim);
	return rc ? EXIT_RUNTIME : 0;
}

/* "call-limit=N" / "call_rate=default" (empty or "default": back to the edges' config).
 * Usage errors are found before Redis is asked. */
struct limit_arg {
	bool given, reset;
	long long v;
};

static int parse_limits(const struct prov *p, struct limit_arg la[2])
{
	memset(la, 0, 2 * sizeof(*la));
	if (p->npos < 2)
		return usage_err("usage: skeinctl domain set DOMAIN call-limit=N|default "
				 "call-rate=N|default");
	for (int i = 1; i < p->npos; i++) {
		const char *a = p->pos[i], *eq = strchr(a, '='), *val;
		char name[16], *end;
		int k = 2;

		/* call-limit as people type it, call_limit as the config spells it */
		if (eq && (size_t)(eq - a) < sizeof(name)) {
			snprintf(name, sizeof(name), "%.*s", (int)(eq - a), a);
			for (char *c = name; *c; c++)
				*c = *c == '-' ? '_' : *c;
			for (k = 0; k < 2 && strcmp(name, limit_fields[k]); k++)
				;
		}
		if (k == 2)
			return usage_err("domain set takes call-limit=N and call-rate=N, not \"%s\"",
					 a);
		if (la[k].given)
			return usage_err("%.*s given twice", (int)(eq - a), a);
		la[k].given = true;
		val = eq + 1;
		if (!*val || !strcmp(val, "default")) {
			la[k].reset = true;
			continue;
		}
		errno = 0;
		la[k].v = strtoll(val, &end, 10);
		if (errno || *end || end == val || la[k].v < 0 || la[k].v > 1000000)
			return usage_err("%.*s must be 0 to 1000000 (0: no limit for this domain) "
					 "or default, not \"%s\"",
					 (int)(eq - a), a, val);
	}
	return 0;
}

static int domain_set(struct prov *p, const char *domain, const struct limit_arg la[2])
{
	char key[KEY_MAX], field[2][REGDATA_AOR_MAX + 16], num[2][24];
	redisReply *lim;
	struct sk_buf b;
	long long n;
	bool yes;
	int rc;

	if ((rc = domain_exists(p, domain, &yes)))
		return rc;
	if (!yes) {
		fprintf(stderr, "skeinctl: no such domain %s\n", domain);
		return EXIT_RUNTIME;
	}
	if (regdata_key_limits(key, sizeof(key), p->c->cluster.name))
		return EXIT_RUNTIME;
	for (int k = 0; k < 2; k++) {
		const char *hset[] = {"HSET", key, field[k], num[k]};
		const char *hdel[] = {"HDEL", key, field[k]};

		if (!la[k].given)
			continue;
		snprintf(field[k], sizeof(field[k]), "%s:%s", domain, limit_fields[k]);
		snprintf(num[k], sizeof(num[k]), "%lld", la[k].v);
		if ((rc = la[k].reset ? r_int(p, &n, 3, hdel) : r_int(p, &n, 4, hset)))
			return rc;
	}
	if (!(lim = limits_all(p)))
		return EXIT_RUNTIME;
	sk_buf_init(&b);
	if (p->c->table) {
		sk_buf_printf(&b, "domain %s: call-limit %s, call-rate %s\n", domain,
			      or_default(limit_of(lim, domain, limit_fields[0])),
			      or_default(limit_of(lim, domain, limit_fields[1])));
	} else {
		sk_buf_puts(&b, "{\"domain\":");
		sk_buf_json_str(&b, domain);
		limits_print(&b, false, lim, domain);
		sk_buf_puts(&b, "}\n");
	}
	rc = b.err ? EXIT_RUNTIME : 0;
	if (!rc)
		fputs(b.data, stdout);
	sk_buf_release(&b);
	freeReplyObject(lim);
	return rc;
}

static int domain_del(struct prov *p, const char *domain)
{
	char key[KEY_MAX], ukey[KEY_MAX], aor[REGDATA_AOR_MAX + 2], **v;
	const char *scard[] = {"SCARD", ukey};
	redisReply *r;
	long long n;
	bool yes;
	int rc;

	if ((rc = domain_exists(p, domain, &yes)))
		return rc;
	if (!yes) {
		fprintf(stderr, "skeinctl: no such domain %s\n", domain);
		return EXIT_RUNTIME;
	}
	if (regdata_key_users(ukey, sizeof(ukey), p->c->cluster.name, domain) ||
	    (rc = r_int(p, &n, 2, scard)))
		return EXIT_RUNTIME;
	if (n && !p->force) {
		fprintf(stderr,
			"skeinctl: domain %s still has %lld user(s): delete them first, or use "
			"--force to delete them with it\n",
			domain, n);
		return EXIT_RUNTIME;
	}
	if (n) {
		if ((rc = members(p, ukey, &r, &v)))
			return rc;
		for (size_t i = 0; v[i] && !rc; i++) {
			snprintf(aor, sizeof(aor), "%s@%s", v[i], domain);
			rc = user_delete(p, aor, &yes);
		}
		free(v);
		freeReplyObject(r);
		if (rc)
			return rc;
	}
	{
		const char *del[] = {"DEL", ukey};
		const char *srem[] = {"SREM", key, domain};
		char lkey[KEY_MAX], f0[REGDATA_AOR_MAX + 16], f1[REGDATA_AOR_MAX + 16];
		const char *hdel[] = {"HDEL", lkey, f0, f1};

		snprintf(f0, sizeof(f0), "%s:%s", domain, limit_fields[0]);
		snprintf(f1, sizeof(f1), "%s:%s", domain, limit_fields[1]);
		if (regdata_key_domains(key, sizeof(key), p->c->cluster.name) ||
		    regdata_key_limits(lkey, sizeof(lkey), p->c->cluster.name) ||
		    r_int(p, &n, 2, del) || r_int(p, &n, 4, hdel) || r_int(p, &n, 3, srem))
			return EXIT_RUNTIME;
	}
	if (p->c->table)
		printf("deleted domain %s\n", domain);
	else
		printf("{\"domain\":\"%s\",\"deleted\":true}\n", domain);
	return 0;
}

int cmd_domain(struct ctl *c);
int cmd_domain(struct ctl *c)
{
	struct prov p = {.c = c};
	char domain[REGDATA_AOR_MAX];
	const char *sub = c->nargs ? c->args[0] : "";
	struct limit_arg la[2];
	int rc;

	if ((rc = parse(&p, 1)))
		return rc;
	if (!strcmp(sub, "add") || !strcmp(sub, "del")) {
		if ((rc = need_args(&p, 1, "domain add|del DOMAIN")) ||
		    (rc = norm_domain(domain, sizeof(domain), p.pos[0])))
			return rc;
	} else if (!strcmp(sub, "set")) {
		if ((rc = parse_limits(&p, la)) ||
		    (rc = norm_domain(domain, sizeof(domain), p.pos[0])))
			return rc;
	} else if (!strcmp(sub, "list")) {
		if ((rc = need_args(&p, 0, "domain list")))
			return rc;
	} else {
		return usage_err("domain takes add, list or del, or set, not \"%s\"", sub);
	}
	if (p.password)
		return usage_err("%s does not take --password", "domain");
	if ((rc = rconnect(&p)) == 0) {
		if (!strcmp(sub, "add"))
			rc = domain_add(&p, domain);
		else if (!strcmp(sub, "list"))
			rc = domain_list(&p);
		else if (!strcmp(sub, "set"))
			rc = domain_set(&p, domain, la);
		else
			rc = domain_del(&p, domain);
	}
	if (p.rc)
		redisFree(p.rc);
	return rc;
}

/* ---- users ---- */

/* "alice@example.com" -> user "alice", domain "example.com" (aor normalised). */
static void split(const char *aor, char *user, size_t usize, const char **domain)
{
	const char *at = strrchr(aor, '@');

	snprintf(user, usize, "%.*s", (int)(at - aor), aor);
	*domain = at + 1;
}

static int aor_keys(struct prov *p, const char *aor, char k[4][KEY_MAX])
{
	const char *cl = p->c->cluster.name;

	if (regdata_key_cred(k[0], KEY_MAX, cl, aor) || regdata_key_reg(k[1], KEY_MAX, cl, aor) ||
	    regdata_key_exp(k[2], KEY_MAX, cl, aor) || regdata_key_meta(k[3], KEY_MAX, cl, aor))
		return usage_err("cluster name \"%s\" too long", cl);
	return 0;
}

/* The HA1s of RFC 7616 §3.4.2 for user, realm = the domain. */
static int ha1s(const char *user, const char *domain, const char *password,
		char md5[EDGE_DIGEST_HEX_SIZE], char sha[EDGE_DIGEST_HEX_SIZE])
{
	int err = edge_digest_ha1(EDGE_DIGEST_MD5, user, domain, password, md5);

	if (!err)
		err = edge_digest_ha1(EDGE_DIGEST_SHA256, user, domain, password, sha);
	if (err)
		fprintf(stderr, "skeinctl: cannot compute the HA1s: %s\n", sk_strerror(err));
	return err ? EXIT_RUNTIME : 0;
}

static int user_add(struct prov *p, const char *aor)
{
	char k[4][KEY_MAX], ukey[KEY_MAX], user[REGDATA_AOR_MAX], md5[EDGE_DIGEST_HEX_SIZE],
		sha[EDGE_DIGEST_HEX_SIZE];
	const char *domain, *ev[] = {"EVAL", create_lua, "1", k[0], md5, sha};
	const char *sadd[] = {"SADD", ukey, user};
	long long created, n;
	bool yes;
	int rc;

	split(aor, user, sizeof(user), &domain);
	if ((rc = aor_keys(p, aor, k)) || (rc = domain_exists(p, domain, &yes)))
		return rc;
	if (!yes) {
		fprintf(stderr, "skeinctl: unknown domain %s (add it with `skeinctl domain add %s`)\n",
			domain, domain);
		return EXIT_RUNTIME;
	}
	if ((rc = ha1s(user, domain, p->password, md5, sha)))
		return rc;
	if ((rc = r_int(p, &created, 6, ev)))
		return rc;
	if (!created) {
		fprintf(stderr, "skeinctl: user %s already exists\n", aor);
		return EXIT_RUNTIME;
	}
	if (regdata_key_users(ukey, sizeof(ukey), p->c->cluster.name, domain) ||
	    (rc = r_int(p, &n, 3, sadd)))
		return EXIT_RUNTIME;
	if (p->c->table)
		printf("added user %s\n", aor);
	else
		printf("{\"aor\":\"%s\",\"created_ms\":%lld}\n", aor, created);
	return 0;
}

static int user_passwd(struct prov *p, const char *aor)
{
	char k[4][KEY_MAX], user[REGDATA_AOR_MAX], md5[EDGE_DIGEST_HEX_SIZE],
		sha[EDGE_DIGEST_HEX_SIZE];
	const char *domain, *ev[] = {"EVAL", passwd_lua, "1", k[0], md5, sha};
	long long ok;
	int rc;

	split(aor, user, sizeof(user), &domain);
	if ((rc = aor_keys(p, aor, k)) || (rc = ha1s(user, domain, p->password, md5, sha)) ||
	    (rc = r_int(p, &ok, 6, ev)))
		return rc;
	if (!ok) {
		fprintf(stderr, "skeinctl: no such user %s\n", aor);
		return EXIT_RUNTIME;
	}
	if (p->c->table)
		printf("changed the password of %s\n", aor);
	else
		printf("{\"aor\":\"%s\",\"password_changed\":true}\n", aor);
	return 0;
}

/* What the presence agent and the IM store keep for the user (services/registrar/
 * pres.h): publications, subscriptions to them (their watchers get no final NOTIFY:
 * their refreshes get 481), stored messages, XCAP documents, list indexes. One slot. */
static int presence_delete(struct prov *p, const char *aor)
{
	static const char *const what[] = {"pubs",   "subs",   "pstate", "ims",	   "imlock",
					   "xcap",   "rlsidx", "rlsin",  "rlsmem", "authfail",
					   "calls",  "cpm"};
	enum { N = sizeof(what) / sizeof(what[0]) };
	char k[N][KEY_MAX];
	const char *argv[N + 1] = {"DEL"};
	long long m;

	for (size_t i = 0; i < N; i++) {
		if (sk_redis_key(k[i], sizeof(k[i]), p->c->cluster.name, aor, what[i]))
			return EXIT_RUNTIME;
		argv[i + 1] = k[i];
	}
	return r_int(p, &m, N + 1, argv);
}

/* Credentials, bindings and the domain's entry; *existed says whether there was a
 * user (bindings of an unknown user are removed all the same). */
static int user_delete(struct prov *p, const char *aor, bool *existed)
{
	char k[4][KEY_MAX], ukey[KEY_MAX], user[REGDATA_AOR_MAX];
	const char *domain, *del[] = {"DEL", k[0], k[1], k[2], k[3]};
	const char *srem[] = {"SREM", ukey, user};
	const char *ex[] = {"EXISTS", k[0]};
	long long n, m;
	int rc;

	*existed = false;
	split(aor, user, sizeof(user), &domain);
	if ((rc = aor_keys(p, aor, k)))
		return rc;
	if (regdata_key_users(ukey, sizeof(ukey), p->c->cluster.name, domain))
		return EXIT_RUNTIME;
	/* The AOR's keys share one slot: one DEL takes them together. */
	if ((rc = r_int(p, &n, 2, ex)) || (rc = r_int(p, &m, 5, del)) || (rc = r_int(p, &m, 3, srem)))
		return rc;
	*existed = n == 1;
	return presence_delete(p, aor);
}

static int user_list(struct prov *p, const char *only)
{
	char key[KEY_MAX], ckey[KEY_MAX], aor[REGDATA_AOR_MAX + 2], **doms = NULL, **users;
	const char *one[2] = {only, NULL};
	redisReply *rd = NULL, *ru, *rc_;
	struct sk_buf b;
	size_t count = 0;
	int rc = 0;

	if (only) {
		bool yes;

		if ((rc = domain_exists(p, only, &yes)))
			return rc;
		if (!yes) {
			fprintf(stderr, "skeinctl: no such domain %s\n", only);
			return EXIT_RUNTIME;
		}
	} else {
		if (regdata_key_domains(key, sizeof(key), p->c->cluster.name))
			return EXIT_RUNTIME;
		if ((rc = members(p, key, &rd, &doms)))
			return rc;
	}
	sk_buf_init(&b);
	sk_buf_puts(&b, p->c->table ? "AOR                                      CREATED\n" : "[");
	for (char **d = only ? (char **)one : doms; *d && !rc; d++) {
		if (regdata_key_users(key, sizeof(key), p->c->cluster.name, *d) ||
		    (rc = members(p, key, &ru, &users)))
			break;
		for (size_t i = 0; users[i] && !rc; i++) {
			const char *argv[] = {"HGET", ckey, "created_ms"};
			long long created = 0;

			snprintf(aor, sizeof(aor), "%s@%s", users[i], *d);
			if (regdata_key_cred(ckey, sizeof(ckey), p->c->cluster.name, aor) ||
			    !(rc_ = r_cmd(p, 3, argv, NULL))) {
				rc = EXIT_RUNTIME;
				break;
			}
			if (rc_->type == REDIS_REPLY_STRING)
				created = strtoll(rc_->str, NULL, 10);
			freeReplyObject(rc_);
			if (p->c->table) {
				sk_buf_printf(&b, "%-40s %lld\n", aor, created);
			} else {
				sk_buf_puts(&b, count++ ? ",\n {\"aor\":" : "{\"aor\":");
				sk_buf_json_str(&b, aor);
				sk_buf_puts(&b, ",\"domain\":");
				sk_buf_json_str(&b, *d);
				sk_buf_printf(&b, ",\"created_ms\":%lld}", created);
			}
		}
		free(users);
		freeReplyObject(ru);
	}
	if (!p->c->table)
		sk_buf_puts(&b, "]\n");
	if (!rc && b.data)
		fputs(b.data, stdout);
	sk_buf_release(&b);
	free(doms);
	if (rd)
		freeReplyObject(rd);
	return rc;
}

int cmd_user(struct ctl *c);
int cmd_user(struct ctl *c)
{
	struct prov p = {.c = c};
	char aor[REGDATA_AOR_MAX], domain[REGDATA_AOR_MAX];
	const char *sub = c->nargs ? c->args[0] : "";
	bool pw = !strcmp(sub, "add") || !strcmp(sub, "passwd");
	int rc;

	if ((rc = parse(&p, 1)))
		return rc;
	if (pw || !strcmp(sub, "del")) {
		if ((rc = need_args(&p, 1, pw ? "user add|passwd USER@DOMAIN --password SECRET"
					      : "user del USER@DOMAIN")) ||
		    (rc = norm_aor(aor, sizeof(aor), p.pos[0])))
			return rc;
		if (pw && !p.password)
			return usage_err("user %s needs --password SECRET or --password-stdin",
					 sub);
	} else if (!strcmp(sub, "list")) {
		if (p.npos > 1)
			return usage_err("usage: skeinctl user list [%s]", "DOMAIN");
		if (p.npos && (rc = norm_domain(domain, sizeof(domain), p.pos[0])))
			return rc;
	} else {
		return usage_err("user takes add, list, passwd or del, not \"%s\"", sub);
	}
	if (!pw && p.password)
		return usage_err("user %s does not take --password", sub);
	if ((rc = rconnect(&p)) == 0) {
		if (!strcmp(sub, "add")) {
			rc = user_add(&p, aor);
		} else if (!strcmp(sub, "passwd")) {
			rc = user_passwd(&p, aor);
		} else if (!strcmp(sub, "list")) {
			rc = user_list(&p, p.npos ? domain : NULL);
		} else {
			bool existed = false;

			rc = user_delete(&p, aor, &existed);
			if (!rc && !existed) {
				fprintf(stderr, "skeinctl: no such user %s\n", aor);
				rc = EXIT_RUNTIME;
			} else if (!rc) {
				printf(c->table ? "deleted user %s\n"
						: "{\"aor\":\"%s\",\"deleted\":true}\n",
				       aor);
			}
		}
	}
	if (p.rc)
		redisFree(p.rc);
	return rc;
}

/* ---- registrations ---- */

static void binding_json(struct sk_buf *b, const Skein__Sip__V1__Binding *x)
{
	sk_buf_puts(b, "{\"contact\":");
	sk_buf_json_str(b, x->contact);
	sk_buf_printf(b, ",\"expires_in\":%u,\"q\":%u.%03u,\"edge\":", x->expires_in,
		      x->q_milli / 1000, x->q_milli % 1000);
	sk_buf_json_str(b, x->edge);
	sk_buf_puts(b, ",\"flow\":");
	sk_buf_json_str(b, x->flow);
	sk_buf_puts(b, ",\"transport\":");
	sk_buf_json_str(b, x->transport);
	sk_buf_puts(b, ",\"source\":");
	sk_buf_json_str(b, x->source);
	sk_buf_puts(b, ",\"received\":");
	sk_buf_json_str(b, x->received);
	sk_buf_puts(b, ",\"user_agent\":");
	sk_buf_json_str(b, x->user_agent);
	sk_buf_puts(b, ",\"instance\":");
	sk_buf_json_str(b, x->instance);
	sk_buf_printf(b, ",\"reg_id\":%u,\"call_id\":", x->reg_id);
	sk_buf_json_str(b, x->call_id);
	sk_buf_printf(b, ",\"cseq\":%u,\"path\":[", x->cseq);
	for (size_t i = 0; i < x->n_path; i++) {
		if (i)
			sk_buf_puts(b, ",");
		sk_buf_json_str(b, x->path[i]);
	}
	sk_buf_printf(b, "],\"registered_ms\":%llu,\"expires_at_ms\":%llu}",
		      (unsigned long long)x->registered_ms, (unsigned long long)x->expires_at_ms);
}

static int reg_show(struct prov *p, const char *aor)
{
	char k[4][KEY_MAX];
	const char *ev[] = {"EVAL", REGDATA_LUA_LOOKUP, "3", k[1], k[2], k[3]};
	struct regdata_bindings bs;
	struct sk_buf b;
	redisReply *r;
	size_t skipped;
	int rc;

	if ((rc = aor_keys(p, aor, k)) || !(r = r_cmd(p, 6, ev, NULL)))
		return rc ? rc : EXIT_RUNTIME;
	rc = regdata_bindings_from_reply(&bs, r, &skipped);
	freeReplyObject(r);
	if (rc) {
		fprintf(stderr, "skeinctl: bindings of %s: %s\n", aor, sk_strerror(rc));
		return EXIT_RUNTIME;
	}
	if (skipped)
		fprintf(stderr, "skeinctl: %zu binding(s) of %s could not be decoded\n", skipped,
			aor);
	sk_buf_init(&b);
	if (p->c->table) {
		sk_buf_printf(&b, "%-44s %7s %5s %-5s %-22s %-16s %s\n", "CONTACT", "EXPIRES",
			      "Q", "PROTO", "SOURCE", "EDGE", "USER-AGENT / INSTANCE");
		for (size_t i = 0; i < bs.n; i++) {
			const Skein__Sip__V1__Binding *x = bs.b[i];

			sk_buf_printf(&b, "%-44s %6us %u.%03u %-5s %-22s %-16s %s%s%s\n",
				      x->contact, x->expires_in, x->q_milli / 1000,
				      x->q_milli % 1000, x->transport, x->source, x->edge,
				      x->user_agent, *x->instance ? " " : "", x->instance);
		}
		if (!bs.n)
			sk_buf_printf(&b, "(no bindings for %s)\n", aor);
	} else {
		sk_buf_puts(&b, "{\"aor\":");
		sk_buf_json_str(&b, aor);
		sk_buf_puts(&b, ",\"bindings\":[");
		for (size_t i = 0; i < bs.n; i++) {
			sk_buf_puts(&b, i ? ",\n  " : "\n  ");
			binding_json(&b, bs.b[i]);
		}
		sk_buf_puts(&b, "]}\n");
	}
	regdata_bindings_free(&bs);
	rc = b.err ? EXIT_RUNTIME : 0;
	if (!rc)
		fputs(b.data, stdout);
	else
		fprintf(stderr, "skeinctl: out of memory\n");
	sk_buf_release(&b);
	return rc;
}

int cmd_reg(struct ctl *c);
int cmd_reg(struct ctl *c)
{
	struct prov p = {.c = c};
	char aor[REGDATA_AOR_MAX];
	const char *sub = c->nargs ? c->args[0] : "";
	int rc;

	if ((rc = parse(&p, 1)))
		return rc;
	if (strcmp(sub, "show"))
		return usage_err("reg takes show, not \"%s\"", sub);
	if ((rc = need_args(&p, 1, "reg show USER@DOMAIN")) ||
	    (rc = norm_aor(aor, sizeof(aor), p.pos[0])))
		return rc;
	if (p.password)
		return usage_err("reg %s does not take --password", sub);
	if ((rc = rconnect(&p)) == 0)
		rc = reg_show(&p, aor);
	if (p.rc)
		redisFree(p.rc);
	return rc;
}
