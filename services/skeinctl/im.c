/* skeinctl im list|purge: the offline IM store of a user (<c>:{aor}:ims, a LIST of
 * packed skein.sip.v1.StoredMessage, oldest first; docs/presence.md "Offline IM").
 * Read-only but for purge, which removes exactly the records it names (LREM of the
 * bytes it read), so a message stored meanwhile is not lost by a purge --id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis/hiredis.h>
#include "skein/sk_buf.h"
#include "skein/sip/v1/presence.pb-c.h"
#include "regdata.h"
#include "skeinctl.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2
#define KEY_MAX	     640
#define ID_MAX	     64

static int usage(const char *what)
{
	fprintf(stderr, "skeinctl: %s (see --help)\n", what);
	return EXIT_USAGE;
}

/* The messages of the list, decoded (NULL where a record does not decode), and the
 * Redis time. */
struct mbox {
	redisReply *list;
	Skein__Sip__V1__StoredMessage **m;
	long long now;
};

static void mbox_free(struct mbox *mb)
{
	for (size_t i = 0; mb->list && mb->m && i < mb->list->elements; i++)
		if (mb->m[i])
			skein__sip__v1__stored_message__free_unpacked(mb->m[i], NULL);
	free(mb->m);
	if (mb->list)
		freeReplyObject(mb->list);
}

static int mbox_load(const struct ctl *c, redisContext *rc, const char *key, struct mbox *mb)
{
	const char *lr[] = {"LRANGE", key, "0", "-1"}, *tm[] = {"TIME"};
	redisReply *t;

	memset(mb, 0, sizeof(*mb));
	if (!(t = ctl_redis_cmd(c, rc, 1, tm, NULL)))
		return EXIT_RUNTIME;
	if (t->type == REDIS_REPLY_ARRAY && t->elements == 2)
		mb->now = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
	freeReplyObject(t);
	if (!(mb->list = ctl_redis_cmd(c, rc, 4, lr, NULL)))
		return EXIT_RUNTIME;
	if (mb->list->type != REDIS_REPLY_ARRAY) {
		fprintf(stderr, "skeinctl: %s is not a list of stored messages\n", key);
		return EXIT_RUNTIME;
	}
	if (mb->list->elements && !(mb->m = calloc(mb->list->elements, sizeof(*mb->m)))) {
		fprintf(stderr, "skeinctl: out of memory\n");
		return EXIT_RUNTIME;
	}
	for (size_t i = 0; i < mb->list->elements; i++) {
		const redisReply *e = mb->list->element[i];

		if (e->type == REDIS_REPLY_STRING)
			mb->m[i] = skein__sip__v1__stored_message__unpack(NULL, e->len,
									  (const uint8_t *)e->str);
		if (!mb->m[i])
			fprintf(stderr, "skeinctl: stored message %zu of %s does not decode\n", i,
				key);
	}
	return 0;
}

/* RFC 4648 §4 base64: a body may be any bytes (CPIM, binary types). */
static void base64(struct sk_buf *b, const uint8_t *p, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);
		char q[4] = {a[v >> 18 & 63], a[v >> 12 & 63], i + 1 < n ? a[v >> 6 & 63] : '=',
			     i + 2 < n ? a[v & 63] : '='};

		sk_buf_append(b, q, 4);
	}
}

static void utc(char *out, size_t size, unsigned long long ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, size, "-");
}

static int im_list(const struct ctl *c, redisContext *rc, const char *aor, const char *key)
{
	struct mbox mb;
	struct sk_buf b;
	size_t n = 0;
	int rcode = mbox_load(c, rc, key, &mb);

	if (rcode) {
		mbox_free(&mb);
		return rcode;
	}
	sk_buf_init(&b);
	if (c->table)
		sk_buf_printf(&b, "%-16s %-40s %-28s %7s %-20s %9s\n", "ID", "FROM", "CONTENT-TYPE",
			      "SIZE", "STORED", "EXPIRES");
	else
		sk_buf_puts(&b, "[");
	for (size_t i = 0; i < mb.list->elements; i++) {
		const Skein__Sip__V1__StoredMessage *m = mb.m[i];
		long long left;
		char stored[32];

		/* Expired, not purged yet: gone for the user already (as ban list). */
		if (!m || (long long)m->expires_at_ms <= mb.now)
			continue;
		left = ((long long)m->expires_at_ms - mb.now + 999) / 1000;
		if (c->table) {
			utc(stored, sizeof(stored), m->stored_ms);
			sk_buf_printf(&b, "%-16s %-40.40s %-28.28s %7zu %-20s %8llds\n", m->id,
				      m->from, m->content_type, m->body.len, stored, left);
			n++;
			continue;
		}
		sk_buf_puts(&b, n++ ? ",\n {\"id\":" : "{\"id\":");
		sk_buf_json_str(&b, m->id);
		sk_buf_puts(&b, ",\"from\":");
		sk_buf_json_str(&b, m->from);
		sk_buf_puts(&b, ",\"to\":");
		sk_buf_json_str(&b, m->to);
		sk_buf_puts(&b, ",\"content_type\":");
		sk_buf_json_str(&b, m->content_type);
		sk_buf_printf(&b, ",\"size\":%zu,\"call_id\":", m->body.len);
		sk_buf_json_str(&b, m->call_id);
		sk_buf_printf(&b, ",\"stored_ms\":%llu,\"expires_at_ms\":%llu,\"remaining_s\":%lld",
			      (unsigned long long)m->stored_ms,
			      (unsigned long long)m->expires_at_ms, left);
		sk_buf_puts(&b, ",\"body_base64\":\"");
		base64(&b, m->body.data, m->body.len);
		sk_buf_puts(&b, "\"}");
	}
	if (!c->table)
		sk_buf_puts(&b, "]\n");
	else if (!n)
		sk_buf_printf(&b, "(no stored messages for %s)\n", aor);
	rcode = b.err ? EXIT_RUNTIME : 0;
	if (!rcode)
		fputs(b.data, stdout);
	else
		fprintf(stderr, "skeinctl: out of memory\n");
	sk_buf_release(&b);
	mbox_free(&mb);
	return rcode;
}

/* Clears the expiry timer of a message removed by hand (else it fires harmlessly). */
static void timer_clear(const struct ctl *c, redisContext *rc, const char *aor, const char *id)
{
	char tk[KEY_MAX], member[KEY_MAX];
	const char *zr[] = {"ZREM", tk, member};
	redisReply *r;

	if (sk_redis_key(tk, sizeof(tk), c->cluster.name, "pres", "timers"))
		return;
	snprintf(member, sizeof(member), "m|%s|%s", aor, id);
	if ((r = ctl_redis_cmd(c, rc, 3, zr, NULL)))
		freeReplyObject(r);
}

static int im_purge(const struct ctl *c, redisContext *rc, const char *aor, const char *key,
		    const char *id)
{
	struct mbox mb;
	long long purged = 0;
	int rcode = mbox_load(c, rc, key, &mb);

	for (size_t i = 0; !rcode && i < mb.list->elements; i++) {
		const redisReply *e = mb.list->element[i];
		const char *lrem[] = {"LREM", key, "1", e->str};
		size_t lens[] = {4, strlen(key), 1, e->len};
		redisReply *r;

		if (id && (!mb.m[i] || strcmp(mb.m[i]->id, id)))
			continue;
		/* LREM of the very bytes read: exactly this record, wherever it is now. */
		if (!(r = ctl_redis_cmd(c, rc, 4, lrem, lens))) {
			rcode = EXIT_RUNTIME;
			break;
		}
		if (r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
			purged += r->integer;
			if (mb.m[i])
				timer_clear(c, rc, aor, mb.m[i]->id);
		}
		freeReplyObject(r);
	}
	mbox_free(&mb);
	if (rcode)
		return rcode;
	if (!purged) {
		if (id)
			fprintf(stderr, "skeinctl: %s has no stored message %s\n", aor, id);
		else
			fprintf(stderr, "skeinctl: %s has no stored messages\n", aor);
		return EXIT_RUNTIME;
	}
	if (c->table)
		printf("purged %lld stored message(s) of %s\n", purged, aor);
	else
		printf("{\"aor\":\"%s\",\"purged\":%lld}\n", aor, purged);
	return 0;
}

/* A message id as the store makes them: lower-case hex. */
static bool id_ok(const char *s)
{
	size_t n = strlen(s);

	return n && n <= ID_MAX && strspn(s, "0123456789abcdef") == n;
}

int cmd_im(struct ctl *c)
{
	const char *sub = c->nargs ? c->args[0] : "", *who = NULL, *id = NULL, *why = "";
	char aor[REGDATA_AOR_MAX], key[KEY_MAX];
	redisContext *rc;
	int rcode;

	if (strcmp(sub, "list") && strcmp(sub, "purge"))
		return usage("im needs list USER@DOMAIN or purge USER@DOMAIN [--id=ID]");
	for (int i = 1; i < c->nargs; i++) {
		const char *a = c->args[i];

		if (!strcmp(sub, "purge") && !strncmp(a, "--id=", 5)) {
			id = a + 5;
			if (!id_ok(id)) {
				fprintf(stderr,
					"skeinctl: --id wants a message id as im list shows it "
					"(hex), not \"%s\"\n",
					id);
				return EXIT_USAGE;
			}
		} else if (a[0] == '-' || who) {
			fprintf(stderr, "skeinctl: im %s: unexpected \"%s\" (see --help)\n", sub,
				a);
			return EXIT_USAGE;
		} else {
			who = a;
		}
	}
	if (!who)
		return usage("im list|purge needs USER@DOMAIN");
	if (regdata_aor_norm(aor, sizeof(aor), who, &why)) {
		fprintf(stderr, "skeinctl: invalid address of record \"%s\": %s\n", who, why);
		return EXIT_USAGE;
	}
	if (sk_redis_key(key, sizeof(key), c->cluster.name, aor, "ims"))
		return usage("cluster name too long");
	if (!(rc = ctl_redis_connect(c)))
		return EXIT_RUNTIME;
	if (!strcmp(sub, "list"))
		rcode = im_list(c, rc, aor, key);
	else
		rcode = im_purge(c, rc, aor, key, id);
	redisFree(rc);
	return rcode;
}
