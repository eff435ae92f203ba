/* tp_resolve: RFC 3263 server location (resolve.h) — sofia-sip's sres driven from the
 * libuv loop (its sockets in uv_poll handles, its retransmissions on a uv_timer) and the
 * NAPTR → SRV → A/AAAA walk of each query. */
#define _GNU_SOURCE /* memfd_create */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

struct edge_resolver;
struct lookup;
/* sres hands these back to us typed (its documented way to name the contexts). */
#define SRES_ASYNC_T   struct edge_resolver
#define SRES_CONTEXT_T struct lookup
#include <sofia-resolv/sres.h>
#include <sofia-resolv/sres_async.h>
#include <sofia-resolv/sres_record.h>
#include <sofia-sip/su_log.h>

#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "resolve.h"
#include "sipmsg.h"

SK_LOG_MODULE("edge.dns");

extern su_log_t sresolv_log[]; /* sres's own log (libsofia-sip-ua exports it) */

enum {
	DEADLINE_MS = 5000,
	CACHE_CLEAN_MS = 60000, /* sres_resolver_timer() when idle: expires the cache */
	RECV_BURST = 32,	/* datagrams read per poll wake-up */
	SLOT_ADDRS = 4,		/* addresses kept per host and family */
	MAX_SRV = 32,		/* SRV records considered per answer */
	MAX_NAPTR = 8,
	PORT_SIP = 5060,
	PORT_SIPS = 5061,
	FAM_A = 1,
	FAM_AAAA = 2,
};

enum lk_kind { LK_NAPTR, LK_SRV, LK_ADDR };
enum lk_status { ST_DATA, ST_NODATA, ST_NXDOMAIN, ST_TEMP };

/* One sres query. Owned by its edge_query's list while that waits for it, then by the
 * resolver's orphan list until sres answers (so that the answer is freed) or the
 * resolver closes (which unbinds it). */
struct lookup {
	struct edge_resolver *r; /* borrowed: the resolver unbinds every lookup on close */
	struct edge_query *q;	 /* NULL once orphaned */
	sres_query_t *sq;
	struct lookup *next, **prevp;
	enum lk_kind kind;
	uint16_t type;
	unsigned svc; /* LK_SRV: index into q->svc */
	char name[EDGE_RESOLVE_NAME_MAX];
};

/* A service to look up by SRV (from a NAPTR, or one per transport without). */
struct svc {
	enum edge_proto proto;
	char name[EDGE_RESOLVE_NAME_MAX];
};

/* A host to find addresses for, at a place in the final order. */
struct slot {
	enum edge_proto proto;
	uint16_t port;
	unsigned rank;
	uint8_t want, issued, answered; /* FAM_* bits */
	uint8_t n4, n6;
	struct in_addr a4[SLOT_ADDRS];
	struct in6_addr a6[SLOT_ADDRS];
	char host[EDGE_RESOLVE_NAME_MAX];
};

struct edge_query {
	struct edge_resolver *r; /* reference */
	struct edge_query *next, **prevp;
	struct lookup *lookups;
	uv_timer_t *timer; /* the deadline, then the delivery on a later loop turn */
	edge_resolve_cb *cb;
	void *arg;
	char host[EDGE_RESOLVE_NAME_MAX]; /* RFC 3263 TARGET: maddr, else host */
	char name[EDGE_RESOLVE_NAME_MAX]; /* for TLS (RFC 5922) */
	unsigned protos;
	enum edge_proto fallback; /* transport of the A fallback without SRV */
	bool sips, fallback_ok, temp_fail, finished, delivered, cancelled;
	int err;
	unsigned nlookups, pending, srv_pending, nsvc, nslot;
	struct svc svc[EDGE_PROTO_MAX_];
	struct slot slot[EDGE_RESOLVE_MAX_TARGETS];
	struct edge_target t[EDGE_RESOLVE_MAX_TARGETS];
	size_t n;
};

struct rs_sock {
	uv_poll_t *h;
	sres_socket_t fd;
};

struct edge_resolver {
	uv_loop_t *loop;
	sres_resolver_t *sres;
	uv_timer_t *timer;
	struct rs_sock socks[SRES_MAX_NAMESERVERS];
	struct edge_query *queries; /* not yet delivered */
	struct lookup *orphans;
	int conf_fd; /* memfd of the nameserver override, or -1 */
	uint64_t deadline_ms;
	bool ipv6, closing;
};

static void lookup_start(struct edge_query *q, uint16_t type, const char *name, enum lk_kind kind,
			 unsigned svc);

/* ---- small helpers ---- */

static void handle_close_cb(uv_handle_t *h)
{
	void *owner = h->data;

	sk_deref(h);
	sk_deref(owner);
}

static void link_lookup(struct lookup **head, struct lookup *l)
{
	l->next = *head;
	if (l->next)
		l->next->prevp = &l->next;
	l->prevp = head;
	*head = l;
}

static void unlink_lookup(struct lookup *l)
{
	if (!l->prevp)
		return;
	*l->prevp = l->next;
	if (l->next)
		l->next->prevp = l->prevp;
	l->next = NULL;
	l->prevp = NULL;
}

static void unlink_query(struct edge_query *q)
{
	if (!q->prevp)
		return;
	*q->prevp = q->next;
	if (q->next)
		q->next->prevp = q->prevp;
	q->next = NULL;
	q->prevp = NULL;
}

static void copy_name(char *dst, const char *src)
{
	size_t n = strlen(src);

	if (n >= EDGE_RESOLVE_NAME_MAX)
		n = EDGE_RESOLVE_NAME_MAX - 1;
	if (n > 1 && src[n - 1] == '.')
		n--; /* names compare without the root dot */
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static bool has(const struct edge_query *q, enum edge_proto p)
{
	return q->protos & (1u << p);
}

static uint16_t default_port(enum edge_proto p)
{
	return p == EDGE_PROTO_TLS ? PORT_SIPS : PORT_SIP;
}

/* What an answer says for the type asked (sres puts an error record in the list for
 * NXDOMAIN, "no records" and timeouts; an older sres gives NULL on timeout). */
static enum lk_status classify(sres_record_t **ans, uint16_t type)
{
	enum lk_status st = ST_NODATA;

	if (!ans)
		return ST_TEMP;
	for (size_t i = 0; ans[i]; i++) {
		const sres_common_t *c = ans[i]->sr_record;

		if (!c->r_status && c->r_type == type && c->r_class == sres_class_in)
			return ST_DATA;
		if (c->r_status == SRES_NAME_ERR)
			st = ST_NXDOMAIN;
		else if (c->r_status && c->r_status != SRES_RECORD_ERR && st != ST_NXDOMAIN)
			st = ST_TEMP;
	}
	return st;
}

static bool usable(const sres_record_t *rr, uint16_t type)
{
	return !rr->sr_record->r_status && rr->sr_record->r_type == type &&
	       rr->sr_record->r_class == sres_class_in;
}

/* ---- completion ---- */

static void add_target(struct edge_query *q, enum edge_proto p, int af, const void *ip,
		       uint16_t port)
{
	struct edge_target *t;

	if (q->n >= EDGE_RESOLVE_MAX_TARGETS)
		return;
	t = &q->t[q->n];
	memset(t, 0, sizeof(*t));
	t->proto = p;
	if (af == AF_INET6) {
		t->addr.u.in6.sin6_family = AF_INET6;
		t->addr.u.in6.sin6_port = htons(port);
		memcpy(&t->addr.u.in6.sin6_addr, ip, 16);
	} else {
		t->addr.u.in.sin_family = AF_INET;
		t->addr.u.in.sin_port = htons(port);
		memcpy(&t->addr.u.in.sin_addr, ip, 4);
	}
	for (size_t i = 0; i < q->n; i++)
		if (q->t[i].proto == p && edge_addr_eq(&q->t[i].addr, &t->addr))
			return; /* two SRV records for one host and port */
	snprintf(t->name, sizeof(t->name), "%s", q->name);
	q->n++;
}

/* The slots in rank order, each host's A addresses, then its AAAA ones. */
static void assemble(struct edge_query *q)
{
	bool used[EDGE_RESOLVE_MAX_TARGETS] = {false};

	for (unsigned k = 0; k < q->nslot; k++) {
		unsigned best = q->nslot;

		for (unsigned i = 0; i < q->nslot; i++)
			if (!used[i] && (best == q->nslot || q->slot[i].rank < q->slot[best].rank))
				best = i;
		used[best] = true;
		const struct slot *s = &q->slot[best];
		for (unsigned i = 0; i < s->n4; i++)
			add_target(q, s->proto, AF_INET, &s->a4[i], s->port);
		for (unsigned i = 0; i < s->n6; i++)
			add_target(q, s->proto, AF_INET6, &s->a6[i], s->port);
	}
}

static void query_close_cb(uv_handle_t *h)
{
	struct edge_query *q = h->data;

	sk_deref(h);
	sk_deref(q);
}

static void deliver_cb(uv_timer_t *h)
{
	struct edge_query *q = h->data;

	unlink_query(q);
	q->delivered = true;
	q->cb(q->err, q->n ? q->t : NULL, q->n, q->arg);
	uv_close((uv_handle_t *)h, query_close_cb);
}

/* The walk stops: sres has no cancel, so the lookups still out go to the resolver's
 * orphans, whose answers are freed when they come (nta binds them to NULL instead,
 * which leaves the answer arrays in the cache's home until the cache goes). */
static void orphan_lookups(struct edge_query *q)
{
	struct lookup *l;

	q->finished = true;
	while ((l = q->lookups)) {
		unlink_lookup(l);
		l->q = NULL;
		link_lookup(&q->r->orphans, l);
	}
	q->pending = 0;
}

/* The result is handed over on a later loop turn, never from the caller's stack (which
 * may be sres's, or edge_resolve's). */
static void finish(struct edge_query *q, int err)
{
	if (q->finished)
		return;
	orphan_lookups(q);
	if (err != SK_ECANCELED) {
		assemble(q);
		if (q->n)
			err = 0;
		else if (!err)
			err = q->temp_fail ? SK_ETIMEDOUT : SK_ENOENT;
	} else {
		q->n = 0;
	}
	q->err = err;
	if (err) {
		SK_DEBUG("%s: %s", q->host, sk_strerror(err));
	} else {
		char a[64];

		SK_DEBUG("%s: %zu targets, first %s %s", q->host, q->n,
			 edge_proto_name(q->t[0].proto),
			 edge_addr_str(&q->t[0].addr, a, sizeof(a)));
	}
	uv_timer_stop(q->timer);
	uv_timer_start(q->timer, deliver_cb, 0, 0);
}

static void maybe_done(struct edge_query *q)
{
	if (!q->finished && !q->pending)
		finish(q, 0);
}

static void deadline_cb(uv_timer_t *h)
{
	struct edge_query *q = h->data;

	SK_DEBUG("%s: deadline, %u lookups pending", q->host, q->pending);
	finish(q, SK_ETIMEDOUT); /* what was found so far, if anything */
}

/* ---- the RFC 3263 walk ---- */

static struct slot *slot_add(struct edge_query *q, enum edge_proto p, uint16_t port,
			     const char *host, unsigned rank)
{
	struct slot *s;

	if (q->nslot >= EDGE_RESOLVE_MAX_TARGETS)
		return NULL;
	s = &q->slot[q->nslot++];
	memset(s, 0, sizeof(*s));
	s->proto = p;
	s->port = port;
	s->rank = rank;
	s->want = FAM_A | (q->r->ipv6 ? FAM_AAAA : 0);
	copy_name(s->host, host);
	return s;
}

static void slot_fill(struct slot *s, uint8_t fam, sres_record_t **ans)
{
	for (size_t i = 0; ans && ans[i]; i++) {
		if (fam == FAM_A && usable(ans[i], sres_type_a) && s->n4 < SLOT_ADDRS)
			s->a4[s->n4++] = ans[i]->sr_a->a_addr;
		else if (fam == FAM_AAAA && usable(ans[i], sres_type_aaaa) && s->n6 < SLOT_ADDRS)
			memcpy(&s->a6[s->n6++], &ans[i]->sr_aaaa->aaaa_addr, 16);
	}
	s->answered |= fam;
}

/* Looks up the addresses of a slot's host, once per host and family per query. */
static void slot_resolve(struct edge_query *q, struct slot *s)
{
	for (uint8_t fam = FAM_A; fam <= FAM_AAAA; fam <<= 1) {
		struct slot *o = NULL;

		if (!(s->want & fam))
			continue;
		for (unsigned i = 0; i < q->nslot && !o; i++)
			if (&q->slot[i] != s && (q->slot[i].issued & fam) &&
			    !strcasecmp(q->slot[i].host, s->host))
				o = &q->slot[i];
		s->issued |= fam;
		if (o && (o->answered & fam)) {
			if (fam == FAM_A) {
				s->n4 = o->n4;
				memcpy(s->a4, o->a4, sizeof(s->a4));
			} else {
				s->n6 = o->n6;
				memcpy(s->a6, o->a6, sizeof(s->a6));
			}
			s->answered |= fam;
		} else if (!o) {
			lookup_start(q, fam == FAM_A ? sres_type_a : sres_type_aaaa, s->host,
				     LK_ADDR, 0);
		} /* else the lookup in flight fills both */
		if (q->finished)
			return;
	}
}

/* RFC 2782 "Usage rules": by priority; within one, repeatedly pick at random with the
 * chance of each its share of the weights, weight 0 first in the running sum. */
static void srv_order(const sres_srv_record_t **v, size_t n)
{
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && v[j - 1]->srv_priority > v[j]->srv_priority; j--) {
			const sres_srv_record_t *x = v[j];

			v[j] = v[j - 1];
			v[j - 1] = x;
		}
	for (size_t i = 0, end; i < n; i = end) {
		for (end = i; end < n && v[end]->srv_priority == v[i]->srv_priority; end++)
			;
		for (size_t k = i; k + 1 < end; k++) {
			uint32_t sum = 0, run = 0, pick;
			size_t sel = end;

			for (size_t m = k; m < end; m++)
				sum += v[m]->srv_weight;
			pick = arc4random_uniform(sum + 1);
			for (int pass = 0; pass < 2 && sel == end; pass++)
				for (size_t m = k; m < end; m++) {
					if ((v[m]->srv_weight == 0) != (pass == 0))
						continue;
					run += v[m]->srv_weight;
					if (run >= pick) {
						sel = m;
						break;
					}
				}
			if (sel != end) {
				const sres_srv_record_t *x = v[k];

				v[k] = v[sel];
				v[sel] = x;
			}
		}
	}
}

/* §4.2: no SRV for the transport(s): the A records of the host, default port. */
static void fallback_a(struct edge_query *q)
{
	struct slot *s;

	if (!q->fallback_ok)
		return;
	q->fallback_ok = false; /* once */
	s = slot_add(q, q->fallback, default_port(q->fallback), q->host, 0);
	if (s)
		slot_resolve(q, s);
}

static void on_srv(struct edge_query *q, const struct lookup *l, sres_record_t **ans,
		   enum lk_status st)
{
	const sres_srv_record_t *v[MAX_SRV] = {NULL};
	size_t n = 0;

	q->srv_pending--;
	if (st == ST_TEMP)
		q->temp_fail = true;
	for (size_t i = 0; st == ST_DATA && ans[i] && n < MAX_SRV; i++)
		if (usable(ans[i], sres_type_srv))
			v[n++] = ans[i]->sr_srv;
	/* RFC 2782: a single record with target "." — decidedly not available. */
	if (n == 1 && (!strcmp(v[0]->srv_target, ".") || !v[0]->srv_target[0])) {
		n = 0;
		q->fallback_ok = false; /* a record was found: no A fallback either */
	}
	srv_order(v, n);
	for (size_t i = 0; i < n && !q->finished; i++) {
		struct slot *s;

		if (!strcmp(v[i]->srv_target, ".") || !v[i]->srv_port)
			continue;
		s = slot_add(q, q->svc[l->svc].proto, v[i]->srv_port, v[i]->srv_target,
			     (l->svc + 1) * (MAX_SRV + 1) + (unsigned)i);
		if (!s)
			break;
		slot_resolve(q, s);
	}
	if (!q->srv_pending && !q->nslot && !q->temp_fail && !q->finished)
		fallback_a(q);
}

static void srv_add(struct edge_query *q, enum edge_proto p, const char *name)
{
	for (unsigned i = 0; i < q->nsvc; i++)
		if (q->svc[i].proto == p)
			return; /* the most preferred NAPTR per transport */
	if (q->nsvc >= EDGE_PROTO_MAX_)
		return;
	q->svc[q->nsvc].proto = p;
	copy_name(q->svc[q->nsvc].name, name);
	q->nsvc++;
}

/* §4.1: without NAPTR, the SRV of each transport we have. */
static void srv_defaults(struct edge_query *q)
{
	char name[EDGE_RESOLVE_NAME_MAX + 16];
	static const struct {
		enum edge_proto p;
		const char *prefix;
		bool sips;
	} tab[] = {
	    {EDGE_PROTO_UDP, "_sip._udp.", false},
	    {EDGE_PROTO_TCP, "_sip._tcp.", false},
	    {EDGE_PROTO_TLS, "_sips._tcp.", true},
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (!has(q, tab[i].p) || (q->sips && !tab[i].sips))
			continue;
		snprintf(name, sizeof(name), "%s%s", tab[i].prefix, q->host);
		srv_add(q, tab[i].p, name);
	}
}

static void srv_start(struct edge_query *q)
{
	q->srv_pending = q->nsvc; /* before any: a cached answer is handled at once */
	for (unsigned i = 0; i < q->nsvc && !q->finished; i++)
		lookup_start(q, sres_type_srv, q->svc[i].name, LK_SRV, i);
	if (!q->nsvc)
		fallback_a(q);
}

/* RFC 3263 §4.1, RFC 3403 §4.1: flag "s", empty regexp, a service we have. */
static void on_naptr(struct edge_query *q, sres_record_t **ans, enum lk_status st)
{
	const sres_naptr_record_t *v[MAX_NAPTR] = {NULL};
	size_t n = 0;

	if (st == ST_NXDOMAIN) {
		finish(q, SK_ENOENT); /* nothing below a name that does not exist (RFC 8020) */
		return;
	}
	for (size_t i = 0; st == ST_DATA && ans[i] && n < MAX_NAPTR; i++) {
		const sres_naptr_record_t *na = ans[i]->sr_naptr;

		if (!usable(ans[i], sres_type_naptr) || strcasecmp(na->na_flags, "s") ||
		    na->na_regexp[0] || !na->na_replace[0] || !strcmp(na->na_replace, "."))
			continue;
		v[n++] = na;
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && (v[j - 1]->na_order > v[j]->na_order ||
					     (v[j - 1]->na_order == v[j]->na_order &&
					      v[j - 1]->na_prefer > v[j]->na_prefer));
		     j--) {
			const sres_naptr_record_t *x = v[j];

			v[j] = v[j - 1];
			v[j - 1] = x;
		}
	for (size_t i = 0; i < n; i++) {
		const char *s = v[i]->na_services;

		if (!strcasecmp(s, "SIPS+D2T") && has(q, EDGE_PROTO_TLS))
			srv_add(q, EDGE_PROTO_TLS, v[i]->na_replace);
		else if (!q->sips && !strcasecmp(s, "SIP+D2T") && has(q, EDGE_PROTO_TCP))
			srv_add(q, EDGE_PROTO_TCP, v[i]->na_replace);
		else if (!q->sips && !strcasecmp(s, "SIP+D2U") && has(q, EDGE_PROTO_UDP))
			srv_add(q, EDGE_PROTO_UDP, v[i]->na_replace);
	}
	if (!q->nsvc) /* none, or none we can use: as if there were no NAPTR */
		srv_defaults(q);
	srv_start(q);
}

static void on_result(struct edge_query *q, const struct lookup *l, sres_record_t **ans,
		      enum lk_status st)
{
	if (q->finished)
		return;
	switch (l->kind) {
	case LK_NAPTR:
		on_naptr(q, ans, st);
		break;
	case LK_SRV:
		on_srv(q, l, ans, st);
		break;
	case LK_ADDR: {
		uint8_t fam = l->type == sres_type_a ? FAM_A : FAM_AAAA;

		if (st == ST_TEMP)
			q->temp_fail = true;
		for (unsigned i = 0; i < q->nslot; i++) {
			struct slot *s = &q->slot[i];

			if ((s->issued & fam) && !(s->answered & fam) &&
			    !strcasecmp(s->host, l->name))
				slot_fill(s, fam, st == ST_DATA ? ans : NULL);
		}
		break;
	}
	}
}

/* sres calls this from sres_resolver_receive/_timer/_error, i.e. from our poll and
 * timer callbacks; the user's callback is never called from here (finish defers it). */
static void answer_cb(struct lookup *l, sres_query_t *sq, sres_record_t **ans)
{
	struct edge_resolver *r = l->r;
	struct edge_query *q = l->q;

	(void)sq;
	unlink_lookup(l);
	if (q) {
		enum lk_status st = classify(ans, l->type);
		char tb[8];

		SK_DEBUG("%s %s: %s", sres_record_type(l->type, tb), l->name,
			 st == ST_DATA	     ? "answer"
			 : st == ST_NODATA   ? "no records"
			 : st == ST_NXDOMAIN ? "NXDOMAIN"
					     : "failed");
		q->pending--;
		on_result(q, l, ans, st);
	}
	sres_free_answers(r->sres, ans);
	sk_deref(l);
	if (q)
		maybe_done(q);
}

/* From sres's cache when it has the answer (the additional records of an SRV answer
 * land there), else a query. */
static void lookup_start(struct edge_query *q, uint16_t type, const char *name, enum lk_kind kind,
			 unsigned svc)
{
	struct edge_resolver *r = q->r;
	struct lookup key = {.r = r, .q = q, .kind = kind, .type = type, .svc = svc}, *l;
	sres_record_t **cached;

	if (q->finished)
		return;
	copy_name(key.name, name);
	if (q->nlookups >= EDGE_RESOLVE_MAX_LOOKUPS) {
		SK_DEBUG("%s: lookup bound reached, %s dropped", q->host, name);
		on_result(q, &key, NULL, ST_NODATA);
		return;
	}
	q->nlookups++;
	cached = sres_cached_answers(r->sres, type, key.name);
	if (cached) {
		on_result(q, &key, cached, classify(cached, type));
		sres_free_answers(r->sres, cached);
		return;
	}
	l = sk_zalloc(sizeof(*l), NULL);
	if (l) {
		*l = key;
		l->sq = sres_query(r->sres, answer_cb, l, type, l->name);
	}
	if (!l || !l->sq) {
		SK_DEBUG("%s: cannot query %s: %s", q->host, name, l ? strerror(errno) : "ENOMEM");
		sk_deref(l);
		on_result(q, &key, NULL, ST_TEMP);
		return;
	}
	link_lookup(&q->lookups, l);
	q->pending++;
}

/* ---- starting a query ---- */

static int ip_literal(const char *host, int *af, unsigned char ip[16])
{
	char b[INET6_ADDRSTRLEN];
	size_t n = strlen(host);

	if (n > 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(b)) {
		memcpy(b, host + 1, n - 2);
		b[n - 2] = '\0';
		*af = AF_INET6;
		return inet_pton(AF_INET6, b, ip) == 1;
	}
	*af = AF_INET;
	if (inet_pton(AF_INET, host, ip) == 1)
		return 1;
	*af = AF_INET6;
	return inet_pton(AF_INET6, host, ip) == 1; /* maddr=::1 */
}

/* §4.1: the transport when the URI does not leave it to DNS. */
static bool pick_proto(struct edge_query *q, const char *tp, enum edge_proto *p)
{
	if (tp[0]) {
		if (!strcasecmp(tp, "udp") && !q->sips)
			*p = EDGE_PROTO_UDP;
		else if (!strcasecmp(tp, "tcp"))
			*p = q->sips ? EDGE_PROTO_TLS : EDGE_PROTO_TCP;
		else if (!strcasecmp(tp, "tls"))
			*p = EDGE_PROTO_TLS; /* RFC 3261 §26.2; deprecated by RFC 5630 */
		else
			return false; /* sctp, ws, wss... */
		return has(q, *p);
	}
	if (q->sips)
		*p = EDGE_PROTO_TLS;
	else /* UDP (§4.1), or what we have */
		*p = has(q, EDGE_PROTO_UDP)   ? EDGE_PROTO_UDP
		     : has(q, EDGE_PROTO_TCP) ? EDGE_PROTO_TCP
					      : EDGE_PROTO_TLS;
	return has(q, *p);
}

static void start(struct edge_query *q, const url_t *u)
{
	char tp[16] = "", maddr[EDGE_RESOLVE_NAME_MAX] = "";
	unsigned char ip[16];
	enum edge_proto p;
	int af;
	uint16_t port = 0;

	/* Too long a value leaves the buffer "": no transport we have, no maddr. */
	edge_uri_param(u->url_params, "transport", tp, sizeof(tp));
	edge_uri_param(u->url_params, "maddr", maddr, sizeof(maddr));
	copy_name(q->host, maddr[0] ? maddr : u->url_host);
	if (!ip_literal(u->url_host, &af, ip))
		copy_name(q->name, u->url_host);
	if (u->url_port && u->url_port[0])
		port = (uint16_t)atoi(u->url_port); /* checked by edge_resolve */
	if (ip_literal(q->host, &af, ip)) {
		if (pick_proto(q, tp, &p))
			add_target(q, p, af, ip, port ? port : default_port(p));
		finish(q, 0);
		return;
	}
	if (tp[0] && !pick_proto(q, tp, &p)) {
		finish(q, 0); /* a transport we do not have: nothing usable */
		return;
	}
	if (port) { /* §4.2: A/AAAA only */
		if (pick_proto(q, tp, &p))
			slot_resolve(q, slot_add(q, p, port, q->host, 0));
		else
			finish(q, 0);
		return;
	}
	q->fallback_ok = pick_proto(q, tp, &q->fallback);
	if (tp[0]) { /* §4.2: SRV for that transport, then the A fallback */
		char name[EDGE_RESOLVE_NAME_MAX + 16];

		snprintf(name, sizeof(name), "%s%s",
			 p == EDGE_PROTO_TLS   ? "_sips._tcp."
			 : p == EDGE_PROTO_TCP ? "_sip._tcp."
					       : "_sip._udp.",
			 q->host);
		srv_add(q, p, name);
		srv_start(q);
		return;
	}
	lookup_start(q, sres_type_naptr, q->host, LK_NAPTR, 0);
}

static bool port_ok(const char *s)
{
	char *end;
	long v;

	if (!s || !s[0])
		return true;
	errno = 0;
	v = strtol(s, &end, 10);
	return !errno && !*end && s[0] >= '0' && s[0] <= '9' && v > 0 && v <= 65535;
}

static void query_destroy(void *data)
{
	struct edge_query *q = data;

	sk_deref(q->r);
}

int edge_resolve(struct edge_resolver *r, const url_t *uri, unsigned protos, edge_resolve_cb *cb,
		 void *arg, struct edge_query **qp)
{
	const unsigned all = (1u << EDGE_PROTO_MAX_) - 1;
	struct edge_query *q;
	uv_timer_t *timer;

	if (!r || !uri || !cb || !(protos & all))
		return SK_EINVAL;
	if (r->closing)
		return SK_ECANCELED;
	if ((uri->url_type != url_sip && uri->url_type != url_sips) || !uri->url_host ||
	    !uri->url_host[0] || strlen(uri->url_host) >= EDGE_RESOLVE_NAME_MAX ||
	    !port_ok(uri->url_port))
		return SK_EINVAL;
	q = sk_zalloc(sizeof(*q), query_destroy);
	timer = sk_zalloc(sizeof(*timer), NULL);
	if (!q || !timer) {
		sk_deref(q);
		sk_deref(timer);
		return SK_ENOMEM;
	}
	q->r = sk_ref(r);
	q->cb = cb;
	q->arg = arg;
	q->protos = protos & all;
	q->sips = uri->url_type == url_sips;
	uv_timer_init(r->loop, timer);
	timer->data = q;
	q->timer = timer;
	q->next = r->queries;
	if (q->next)
		q->next->prevp = &q->next;
	q->prevp = &r->queries;
	r->queries = q;
	uv_timer_start(timer, deadline_cb, r->deadline_ms, 0);
	if (qp)
		*qp = q;
	start(q, uri);
	maybe_done(q);
	return 0;
}

void edge_query_cancel(struct edge_query *q)
{
	if (!q || q->cancelled || q->delivered)
		return;
	q->cancelled = true;
	if (!q->finished)
		orphan_lookups(q);
	unlink_query(q);
	uv_close((uv_handle_t *)q->timer, query_close_cb);
}

/* ---- sres on the libuv loop ---- */

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct edge_resolver *r = h->data;
	uv_os_fd_t fd;

	(void)events;
	if (r->closing || uv_fileno((uv_handle_t *)h, &fd))
		return;
	if (status < 0) {
		/* libuv stops a poll handle on POLLERR: sres sets IP_RECVERR, so an ICMP
		 * error (port unreachable) is queued on the socket; sres reads it and fails
		 * over or reports the queries, and we poll again. */
		sres_resolver_error(r->sres, fd);
		if (!uv_is_closing((uv_handle_t *)h))
			uv_poll_start(h, UV_READABLE, on_poll);
		return;
	}
	/* Drain the socket (non-blocking since uv_poll_init); an answer may make sres
	 * replace its sockets (resolv.conf changed), which closes this handle. */
	for (int i = 0; i < RECV_BURST && !uv_is_closing((uv_handle_t *)h); i++)
		if (sres_resolver_receive(r->sres, fd) <= 0)
			break;
}

/* sres opens one connected UDP socket per name server on first use, and closes them
 * when resolv.conf changes and on destruction; (-1, -1) says it is going away. */
static int on_update(struct edge_resolver *r, sres_socket_t new_fd, sres_socket_t old_fd)
{
	struct rs_sock *free_slot = NULL;

	for (size_t i = 0; i < SRES_MAX_NAMESERVERS; i++) {
		struct rs_sock *s = &r->socks[i];

		if (s->h && s->fd == old_fd && old_fd != -1) {
			uv_close((uv_handle_t *)s->h, handle_close_cb); /* before sres closes fd */
			s->h = NULL;
		}
		if (!s->h && !free_slot)
			free_slot = s;
	}
	if (new_fd == -1)
		return 0;
	uv_poll_t *h = free_slot ? sk_zalloc(sizeof(*h), NULL) : NULL;
	if (!h)
		return -1;
	if (uv_poll_init(r->loop, h, new_fd)) {
		sk_deref(h);
		return -1;
	}
	h->data = sk_ref(r);
	uv_poll_start(h, UV_READABLE, on_poll);
	uv_unref((uv_handle_t *)h); /* an idle resolver does not keep the loop alive */
	free_slot->h = h;
	free_slot->fd = new_fd;
	return 0;
}

static void timer_cb(uv_timer_t *h)
{
	struct edge_resolver *r = h->data;

	if (r->closing)
		return;
	sres_resolver_timer(r->sres, -1); /* retransmits; re-arms through on_schedule */
	if (!uv_is_active((uv_handle_t *)h))
		uv_timer_start(h, timer_cb, CACHE_CLEAN_MS, 0);
}

/* sres asks for its timer when the first query starts and while any is pending. */
static int on_schedule(struct edge_resolver *r, unsigned long ms)
{
	if (!r->closing)
		uv_timer_start(r->timer, timer_cb, ms, 0);
	return 0;
}

/* sres reads name servers from a file only: hand it one in memory ("port" is sofia's
 * resolv.conf extension). */
static int conf_override(struct edge_resolver *r, const char *ns, char *path, size_t size)
{
	struct edge_addr a;
	char ip[INET6_ADDRSTRLEN], text[128];
	int n;

	if (edge_addr_parse(&a, ns) || !edge_addr_port(&a))
		return SK_EINVAL;
	n = snprintf(text, sizeof(text), "nameserver %s\nport %u\n",
		     edge_addr_ip(&a, ip, sizeof(ip)), (unsigned)edge_addr_port(&a));
	r->conf_fd = memfd_create("skein-resolv.conf", MFD_CLOEXEC);
	if (r->conf_fd < 0)
		return -errno;
	if (write(r->conf_fd, text, (size_t)n) != n)
		return SK_ECONFIG;
	snprintf(path, size, "/proc/self/fd/%d", r->conf_fd);
	return 0;
}

/* sres reports socket and server errors through su_log (stderr by default): into ours,
 * so that they carry the node and the format of every other line. */
static void sres_log_cb(void *stream, const char *fmt, va_list ap)
{
	char line[256];
	int n;

	(void)stream;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n)
		SK_NOTICE("sres: %s", line);
}

static void resolver_destroy(void *data)
{
	struct edge_resolver *r = data;

	if (r->sres) /* only when alloc failed: close() drops it otherwise */
		sres_resolver_unref(r->sres);
	if (r->conf_fd >= 0)
		close(r->conf_fd);
}

int edge_resolver_alloc(struct edge_resolver **rp, uv_loop_t *loop,
			const struct edge_resolver_opts *o)
{
	static const struct edge_resolver_opts defaults;
	struct edge_resolver *r;
	uv_timer_t *timer = NULL;
	char path[64];
	const char *conf;
	int err = SK_ENOMEM;

	if (!rp || !loop)
		return SK_EINVAL;
	if (!o)
		o = &defaults;
	r = sk_zalloc(sizeof(*r), resolver_destroy);
	if (!r)
		return SK_ENOMEM;
	r->conf_fd = -1;
	r->loop = loop;
	r->deadline_ms = o->deadline_ms ? o->deadline_ms : DEADLINE_MS;
	r->ipv6 = o->ipv6;
	conf = o->resolv_conf;
	timer = sk_zalloc(sizeof(*timer), NULL);
	if (!timer)
		goto out;
	if (o->nameserver) {
		err = conf_override(r, o->nameserver, path, sizeof(path));
		if (err) {
			SK_ERROR("nameserver %s: %s", o->nameserver, sk_strerror(err));
			goto out;
		}
		conf = path;
	} else if (conf && access(conf, R_OK)) {
		err = SK_ECONFIG;
		SK_ERROR("resolv.conf %s: %s", conf, strerror(errno));
		goto out;
	}
	su_log_redirect(sresolv_log, sres_log_cb, NULL);
	r->sres = sres_resolver_new(conf);
	if (!r->sres) {
		err = SK_ENOMEM;
		goto out;
	}
	uv_timer_init(loop, timer);
	uv_unref((uv_handle_t *)timer); /* pending queries hold the loop by their deadlines */
	timer->data = sk_ref(r);
	r->timer = timer;
	sres_resolver_set_async(r->sres, on_update, r, 0);
	sres_resolver_set_timer_cb(r->sres, on_schedule, r);
	*rp = r;
	return 0;
out:
	sk_deref(timer);
	sk_deref(r);
	return err;
}

void edge_resolver_close(struct edge_resolver *r)
{
	if (!r || r->closing)
		return;
	for (struct edge_query *q = r->queries; q; q = q->next)
		finish(q, SK_ECANCELED);
	r->closing = true;
	while (r->orphans) {
		struct lookup *l = r->orphans;

		sres_query_bind(l->sq, NULL, NULL);
		unlink_lookup(l);
		sk_deref(l);
	}
	sres_resolver_unref(r->sres); /* closes its sockets: on_update closes the polls */
	r->sres = NULL;
	for (size_t i = 0; i < SRES_MAX_NAMESERVERS; i++)
		if (r->socks[i].h) {
			uv_close((uv_handle_t *)r->socks[i].h, handle_close_cb);
			r->socks[i].h = NULL;
		}
	uv_close((uv_handle_t *)r->timer, handle_close_cb);
	r->timer = NULL;
	if (r->conf_fd >= 0)
		close(r->conf_fd);
	r->conf_fd = -1;
}
