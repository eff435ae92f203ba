/* reg_count: the cluster's live registrations for /metrics (skein_registrar_bindings,
 * skein_registrar_aors), counted by walking the :reg hashes with SCAN — a page of
 * keys at a time, never KEYS, so Redis is not blocked — and reading each one's "\1"
 * fields (HSCAN MATCH: the expiry leads each, regdata.h; the packed bindings stay in
 * Redis). An AOR still in the three-key layout of earlier versions has none: its
 * :exp ZSET is counted (ZCOUNT) until a REGISTER or lookup moves it. One full walk
 * every count_interval; every registrar reports the same cluster-wide figure (take
 * one, do not sum).
 *
 * The pages are paced: a walk is spread over about half of count_interval (the gap
 * between pages from the number of pages of the walk before, 1 ms to PACE_MAX_MS).
 * SCAN visits every key of the keyspace, nonce-count records included, so a walk of
 * a large keyspace done in one burst keeps Redis busy for a noticeable time (0.2 s for
 * 300 k keys here, issue 6) — a latency spike for every call set up meanwhile. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "skein/sk_metrics.h"
#include "skein/sk_redis.h"
#include "skein/sk_sys.h"
#include "reg.h"
#include "regdata.h"

SK_LOG_MODULE("registrar");

#define REG_COUNT_PAGE "500"
#define PACE_MAX_MS    100

struct reg_count {
	struct registrar *r;
	uv_timer_t *timer, *pace;
	char cursor[32];
	uint64_t pages, gap_ms; /* pages of this walk; the gap computed at the last one's end */
	bool walking, busy;
	size_t pending;
	uint64_t bindings, aors, started_ms, done_ms;
	struct sk_gauge *g_bindings, *g_aors;
};

static struct reg_count rc;

static void page(void);
static void on_pace(uv_timer_t *t);

/* After a page: the next one, or the figures when the walk is over. */
static void page_done(void)
{
	uint64_t spread = rc.r->conf->count_interval / 2;

	rc.pages++;
	if (strcmp(rc.cursor, "0")) {
		if (rc.gap_ms)
			uv_timer_start(rc.pace, on_pace, rc.gap_ms, 0);
		else
			page();
		return;
	}
	sk_gauge_set(rc.g_bindings, (double)rc.bindings);
	sk_gauge_set(rc.g_aors, (double)rc.aors);
	rc.walking = false;
	rc.done_ms = sk_sys_unix_ms();
	/* at least 1 ms: a keyspace of more pages than the spread has milliseconds is
	 * where a burst would hurt most */
	rc.gap_ms = rc.pages > 1 ? spread / rc.pages : 0;
	if (rc.pages > 1 && rc.gap_ms == 0)
		rc.gap_ms = 1;
	if (rc.gap_ms > PACE_MAX_MS)
		rc.gap_ms = PACE_MAX_MS;
}

static void on_pace(uv_timer_t *t)
{
	(void)t;
	if (rc.walking && !rc.busy)
		page();
}

static void one_done(uint64_t live)
{
	if (live) {
		rc.bindings += live;
		rc.aors++;
	}
	if (--rc.pending == 0) {
		rc.busy = false;
		page_done();
	}
}

static void on_zcount(int err, struct redisReply *r, void *arg)
{
	(void)arg;
	one_done(!err && r && r->type == REDIS_REPLY_INTEGER && r->integer > 0
			 ? (uint64_t)r->integer
			 : 0);
}

/* Bindings live at now_ms among the "\1" fields of one HSCAN page; false when the
 * hash has none (the three-key layout). A hash of more fields than one page covers
 * (COUNT 1024; max_contacts is far below) is counted from its first page. */
static bool count_meta(const struct redisReply *fields, uint64_t now_ms, uint64_t *live)
{
	bool any = false;

	*live = 0;
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const struct redisReply *v = fields->element[i + 1];
		char *end;

		if (v->type != REDIS_REPLY_STRING)
			continue;
		any = true;
		if (strtoull(v->str, &end, 10) > now_ms && *end == ' ')
			(*live)++;
	}
	return any;
}

static void on_hscan(int err, struct redisReply *r, void *arg)
{
	struct sk_redis *redis = sk_daemon_redis(rc.r->d);
	char *key = arg, now[24];
	uint64_t live = 0;
	size_t n;

	if (!err && r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[1]->type == REDIS_REPLY_ARRAY &&
	    !count_meta(r->element[1], sk_sys_unix_ms(), &live) && (n = strlen(key)) > 4 &&
	    !strcmp(key + n - 4, ":reg")) {
		memcpy(key + n - 4, ":exp", 4);
		snprintf(now, sizeof(now), "(%llu", (unsigned long long)sk_sys_unix_ms());
		if (sk_redis_cmdf(redis, on_zcount, NULL, "ZCOUNT %s %s +inf", key, now) == 0) {
			sk_deref(key);
			return; /* the ZCOUNT ends this key */
		}
	}
	sk_deref(key);
	one_done(live);
}

static void on_scan(int err, struct redisReply *r, void *arg)
{
	struct sk_redis *redis = sk_daemon_redis(rc.r->d);

	(void)arg;
	rc.busy = false;
	if (err || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY ||
	    r->element[0]->len >= sizeof(rc.cursor)) {
		rc.walking = false; /* start again at the next period */
		return;
	}
	memcpy(rc.cursor, r->element[0]->str, r->element[0]->len);
	rc.cursor[r->element[0]->len] = 0;
	for (size_t i = 0; i < r->element[1]->elements; i++) {
		const struct redisReply *k = r->element[1]->element[i];
		char *key;

		if (k->type != REDIS_REPLY_STRING || !(key = sk_strndup(k->str, k->len)))
			continue;
		if (sk_redis_cmdf(redis, on_hscan, key, "HSCAN %s 0 MATCH %b COUNT 1024", key,
				  REGDATA_META_MARK_S "*", (size_t)2) == 0) {
			rc.pending++;
			rc.busy = true;
		} else {
			sk_deref(key);
		}
	}
	if (rc.pending == 0)
		page_done();
}

static void page(void)
{
	struct sk_redis *redis = sk_daemon_redis(rc.r->d);
	char match[300];

	snprintf(match, sizeof(match), "%s:{*}:reg", rc.r->cluster);
	if (sk_redis_cmdf(redis, on_scan, NULL, "SCAN %s MATCH %s COUNT " REG_COUNT_PAGE,
			  rc.cursor, match) == 0)
		rc.busy = true;
	else
		rc.walking = false;
}

static void tick(uv_timer_t *t)
{
	uint64_t now = sk_sys_unix_ms();

	(void)t;
	if (rc.walking || rc.busy || !sk_redis_ready(sk_daemon_redis(rc.r->d)) ||
	    (rc.done_ms && now - rc.done_ms < rc.r->conf->count_interval))
		return;
	rc.walking = true;
	rc.bindings = rc.aors = 0;
	rc.pages = 0;
	rc.started_ms = now;
	strcpy(rc.cursor, "0");
	page();
}

int reg_count_start(struct registrar *r)
{
	struct sk_metrics *m = sk_daemon_metrics(r->d);

	rc.r = r;
	rc.g_bindings = sk_metrics_gauge(m, "skein_registrar_bindings",
					 "Live bindings in the cluster (counted every count_interval)",
					 NULL, NULL);
	rc.g_aors = sk_metrics_gauge(m, "skein_registrar_aors",
				     "Addresses of record with a live binding (same walk)", NULL,
				     NULL);
	rc.timer = sk_sys_timer_start(sk_daemon_loop(r->d), tick, NULL, 1000, 1000);
	/* armed by page_done() between pages; this first run finds no walk */
	rc.pace = sk_sys_timer_start(sk_daemon_loop(r->d), on_pace, NULL, 0, 0);
	return rc.timer && rc.pace ? 0 : SK_ENOMEM;
}

void reg_count_stop(struct registrar *r)
{
	(void)r;
	rc.timer = sk_sys_timer_close(rc.timer);
	rc.pace = sk_sys_timer_close(rc.pace);
}
