/* skeinctl ban list|add|del: the cluster-wide ban set (regdata_ban.h) that every edge
 * mirrors within 250 ms. Bans placed here are "manual"; the edges place their own
 * (flood, auth-failures, scanner) through the same script. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis/hiredis.h>
#include "skein/sk_buf.h"
#include "skein/sk_conf.h"
#include "skein/sk_sys.h"
#include "regdata_ban.h"
#include "skeinctl.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

static int usage(const char *what)
{
	fprintf(stderr, "skeinctl: %s (see --help)\n", what);
	return EXIT_USAGE;
}

static int keys(const struct ctl *c, char k[3][256])
{
	static const char *const w[3] = {"set", "info", "gen"};

	for (int i = 0; i < 3; i++)
		if (regdata_key_bans(k[i], sizeof(k[i]), c->cluster.name, w[i]))
			return -1;
	return 0;
}

/* "reason\tby\tadded_ms" into its parts (in place). */
static void info_split(char *s, const char **reason, const char **by, long long *added)
{
	char *t1 = strchr(s, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;

	*reason = s;
	*by = "";
	*added = 0;
	if (t1) {
		*t1 = '\0';
		*by = t1 + 1;
	}
	if (t2) {
		*t2 = '\0';
		*added = atoll(t2 + 1);
	}
}

static int ban_list(const struct ctl *c, redisContext *rc, char k[3][256])
{
	const char *zr[] = {"ZRANGE", k[0], "0", "-1", "WITHSCORES"};
	const char *tm[] = {"TIME"};
	redisReply *z = NULL, *t = NULL, *h = NULL;
	long long now;
	struct sk_buf b;
	int rcode = EXIT_RUNTIME;

	sk_buf_init(&b);
	if (!(t = ctl_redis_cmd(c, rc, 1, tm, NULL)) || t->type != REDIS_REPLY_ARRAY ||
	    t->elements != 2 || !(z = ctl_redis_cmd(c, rc, 5, zr, NULL)) ||
	    z->type != REDIS_REPLY_ARRAY)
		goto out;
	now = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
	sk_buf_puts(&b, c->table ? "IP                                        LEFT_S  REASON          BY\n"
				 : "[");
	for (size_t i = 0, n = 0; i + 1 < z->elements; i += 2) {
		const char *ip = z->element[i]->str, *reason, *by;
		long long until = atoll(z->element[i + 1]->str), added;
		const char *hg[] = {"HGET", k[1], ip};
		char info[512] = "";

		if (until <= now)
			continue; /* ended, not purged yet */
		if ((h = ctl_redis_cmd(c, rc, 3, hg, NULL)) && h->type == REDIS_REPLY_STRING)
			snprintf(info, sizeof(info), "%s", h->str);
		if (h)
			freeReplyObject(h);
		h = NULL;
		info_split(info, &reason, &by, &added);
		if (c->table) {
			sk_buf_printf(&b, "%-41s %7lld  %-15s %s\n", ip, (until - now + 999) / 1000,
				      reason, by);
		} else {
			sk_buf_puts(&b, n++ ? ",\n {\"ip\":" : "{\"ip\":");
			sk_buf_json_str(&b, ip);
			sk_buf_printf(&b, ",\"until_ms\":%lld,\"remaining_s\":%lld,\"reason\":", until,
				      (until - now + 999) / 1000);
			sk_buf_json_str(&b, reason);
			sk_buf_puts(&b, ",\"by\":");
			sk_buf_json_str(&b, by);
			sk_buf_printf(&b, ",\"added_ms\":%lld}", added);
		}
	}
	if (!c->table)
		sk_buf_puts(&b, "]\n");
	if (!b.err && b.data)
		fputs(b.data, stdout);
	rcode = b.err ? EXIT_RUNTIME : 0;
out:
	if (t)
		freeReplyObject(t);
	if (z)
		freeReplyObject(z);
	sk_buf_release(&b);
	return rcode;
}

static int ban_add(const struct ctl *c, redisContext *rc, char k[3][256], const char *ip,
		   uint64_t ms, const char *reason)
{
	char ttl[24];
	const char *argv[] = {"EVAL", regdata_ban_add_lua, "3", k[0], k[1], k[2], ip, ttl,
			      reason, "skeinctl"};
	redisReply *r;
	int rcode = EXIT_RUNTIME;

	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ms);
	r = ctl_redis_cmd(c, rc, 10, argv, NULL);
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
		if (r->element[0]->integer == 0)
			fprintf(stderr, "skeinctl: %s is already banned for longer; kept\n", ip);
		printf(c->table ? "%s banned until %lld (unix ms)\n"
				: "{\"ip\":\"%s\",\"until_ms\":%lld}\n",
		       ip, r->element[1]->integer);
		rcode = 0;
	}
	if (r)
		freeReplyObject(r);
	return rcode;
}

static int ban_del(const struct ctl *c, redisContext *rc, char k[3][256], const char *ip)
{
	const char *argv[] = {"EVAL", regdata_ban_del_lua, "3", k[0], k[1], k[2], ip};
	redisReply *r = ctl_redis_cmd(c, rc, 7, argv, NULL);
	int rcode = EXIT_RUNTIME;

	if (r && r->type == REDIS_REPLY_INTEGER) {
		if (r->integer)
			rcode = 0;
		else
			fprintf(stderr, "skeinctl: %s is not banned\n", ip);
	}
	if (r)
		freeReplyObject(r);
	return rcode;
}

int cmd_ban(struct ctl *c)
{
	const char *sub = c->nargs ? c->args[0] : "", *ip = NULL, *reason = "manual";
	char norm[REGDATA_IP_MAX], k[3][256];
	uint64_t ms = 3600000;
	redisContext *rc;
	int rcode;

	if (strcmp(sub, "list") && strcmp(sub, "add") && strcmp(sub, "del"))
		return usage("ban needs list, add IP or del IP");
	for (int i = 1; i < c->nargs; i++) {
		const char *a = c->args[i];

		if (!strcmp(sub, "add") && !strncmp(a, "--time=", 7)) {
			if (sk_conf_parse_duration(a + 7, &ms) || ms < 1000)
				return usage("--time wants a duration of 1s or more (30m, 2h, 7d...)");
		} else if (!strcmp(sub, "add") && !strncmp(a, "--reason=", 9)) {
			reason = a + 9;
			if (!*reason || strchr(reason, '\t') || strlen(reason) > 64)
				return usage("--reason wants 1 to 64 characters without tabs");
		} else if (a[0] == '-' || ip || !strcmp(sub, "list")) {
			fprintf(stderr, "skeinctl: ban %s: unexpected \"%s\" (see --help)\n", sub, a);
			return EXIT_USAGE;
		} else {
			ip = a;
		}
	}
	if (strcmp(sub, "list")) {
		if (!ip)
			return usage("ban add|del needs an IP address");
		if (regdata_ip_norm(norm, sizeof(norm), ip)) {
			fprintf(stderr, "skeinctl: \"%s\" is not an IP address\n", ip);
			return EXIT_USAGE;
		}
	}
	if (keys(c, k))
		return usage("cluster name too long");
	if (!(rc = ctl_redis_connect(c)))
		return EXIT_RUNTIME;
	if (!strcmp(sub, "list"))
		rcode = ban_list(c, rc, k);
	else if (!strcmp(sub, "add"))
		rcode = ban_add(c, rc, k, norm, ms, reason);
	else
		rcode = ban_del(c, rc, k, norm);
	redisFree(rc);
	return rcode;
}
