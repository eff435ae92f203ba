/* libFuzzer target for SIP framing on a byte stream (services/edge/tp_frame.h,
 * tp_sframe.c, with edge_sip_check as tp_stream.c calls it): the input is what a
 * TCP/TLS client wrote. Its first byte picks max_msg_size and how the bytes are cut
 * into reads. Besides crashes and leaks it checks the contract tp_stream.c relies on:
 * a skip or a ping uses bytes within the buffer, a check is asked for at the latest
 * when max_msg_size bytes are buffered (the receive buffer is capped just above it),
 * a verdict never consumes more than it was given — and the messages framed do not
 * depend on how the bytes were cut (whole, or in reads of 1..n bytes), up to a
 * refusal that takes all that is buffered (the rest of the buffer goes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_err.h"
#include "sip_check.h"
#include "tp_frame.h"

enum { MAX_EV = 64, SLACK = 1024 /* TP_STREAM_SLACK */ };

struct ev {
	int what, status;
	size_t len;
	uint32_t sum;
};

struct run {
	struct ev ev[MAX_EV];
	int n;
	bool overflow; /* the buffer filled up: the real flow closes (UV_ENOBUFS) */
};

static uint32_t sum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static void add(struct run *r, int what, int status, const char *p, size_t len)
{
	if (r->n < MAX_EV) {
		struct ev *x = &r->ev[r->n];

		x->what = what;
		x->status = status;
		x->len = len;
		x->sum = sum(p, len);
	}
	r->n++;
}

/* tp_flow_parse over the bytes buffered; false once the framing is lost. */
static bool parse(struct tp_sframe *sf, char *buf, size_t *have, size_t max, struct run *r)
{
	size_t off = 0;
	bool ok = true;

	for (size_t turns = 0; off < *have; turns++) {
		const char *p = buf + off;
		size_t n = *have - off, k = 0;
		enum tp_sframe_what w = tp_sframe_next(sf, p, n, max, &k);
		struct edge_verdict v;
		msg_t *msg = NULL;
		bool exact;
		int err;

		if (turns > *have + 2)
			abort();
		if (w == TP_SF_MORE) {
			if (n >= max) /* a full buffer must be checked, else it stalls */
				abort();
			break;
		}
		if (w == TP_SF_SKIP || w == TP_SF_PING) {
			if (!k || k > n ||
			    (w == TP_SF_PING && (k != 4 || memcmp(p, "\r\n\r\n", 4))))
				abort();
			add(r, (int)w, 0, p, k);
			off += k;
			continue;
		}
		err = edge_sip_check(p, n, EDGE_STREAM, max, &msg, &v);
		if (err == SK_EAGAIN) {
			if (n >= max)
				abort(); /* at max_msg_size the check must answer 513 */
			tp_sframe_short(sf, n);
			break;
		}
		if (err || v.consumed > n)
			abort();
		if (msg)
			msg_destroy(msg);
		k = v.consumed ? v.consumed : n;
		/* A refusal that takes all that is buffered (junk, a 400 or 513 that could
		 * not be framed) ends where the read happened to end: the comparison stops
		 * there. An accepted message is framed exactly. */
		exact = (!v.status && !v.drop) || k < n;
		add(r, (int)w, v.drop ? -1 : v.status, p, exact ? k : 0);
		off += k;
		tp_sframe_done(sf);
		if (v.status == 400 || v.status == 513 || !exact) {
			ok = false; /* the framing is lost: the connection closes */
			break;
		}
	}
	memmove(buf, buf + off, *have - off);
	*have -= off;
	return ok;
}

static void frame(const uint8_t *data, size_t size, uint8_t seed, size_t max, struct run *r)
{
	size_t cap = max + SLACK, have = 0, fed = 0, k = 0;
	struct tp_sframe sf = {0};
	char *buf = malloc(cap);

	if (!buf)
		abort();
	memset(r, 0, sizeof(*r));
	while (fed < size) {
		size_t chunk = seed ? 1 + (size_t)((seed * (k + 3) * 2654435761u) >> 9) % 97 : size;

		k++;
		if (chunk > size - fed)
			chunk = size - fed;
		if (chunk > cap - have) {
			r->overflow = true;
			break;
		}
		memcpy(buf + have, data + fed, chunk);
		have += chunk;
		fed += chunk;
		if (!parse(&sf, buf, &have, max, r))
			break;
	}
	free(buf);
}

/* The events agree up to the first refusal whose length depends on the reads (len 0
 * in either run): there both have to be refusals. */
static void same(const struct run *a, const struct run *b)
{
	int n = a->n < b->n ? a->n : b->n;

	for (int i = 0; i < n && i < MAX_EV; i++) {
		const struct ev *x = &a->ev[i], *y = &b->ev[i];

		if (x->what != y->what)
			abort();
		/* A refusal that took all that was buffered: junk may be a 400 with more
		 * bytes and a silent drop with fewer (edge_sip_check), a refusal either way. */
		if (!x->len || !y->len) {
			if (!x->status || !y->status)
				abort();
			return;
		}
		if (x->status != y->status)
			abort();
		if (x->len != y->len || x->sum != y->sum)
			abort();
	}
	/* Only MAX_EV events are recorded: beyond them the runs cannot be compared (a
	 * run of lone CRs alone fills them; found by the 10-minute campaign). */
	if (n >= MAX_EV)
		return;
	/* One run may have gone on where the other waits for more bytes: only when what
	 * it did was to refuse junk whose extent depends on the reads (edge_sip_check may
	 * refuse a short junk buffer and wait on a longer one). */
	if (a->n != b->n) {
		const struct run *l = a->n > b->n ? a : b;

		if (l->ev[n].len || !l->ev[n].status)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = {65535, 300, 1500, 4096};
	static struct run whole, cut;
	size_t max;
	uint8_t sel;

	if (!size)
		return 0;
	sel = data[0];
	data++;
	size--;
	max = limits[sel & 3];
	frame(data, size, 0, max, &whole);
	frame(data, size, (uint8_t)(sel | 1), max, &cut);
	/* Whole or cut, the same messages with the same verdicts — unless the whole input
	 * did not fit the buffer (a real flow closes then). */
	if (!whole.overflow && !cut.overflow)
		same(&whole, &cut);
	return 0;
}
