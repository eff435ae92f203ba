/* libFuzzer target for the WebSocket frame decoder (services/edge/tp_frame.h,
 * tp_wsframe.c): the input is what a client wrote after the upgrade. Its first byte
 * picks the limits and how the bytes are cut into reads. Besides crashes and leaks it
 * checks the contract tp_ws.c relies on: bytes used stay within what was given, every
 * event but a failure uses some, "more" leaves at most a frame header begun, a text
 * message is UTF-8 and within max_msg, a control payload within 125 bytes — and the
 * events do not depend on how the bytes were cut (whole, or in reads of 1..n bytes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tp_frame.h"

enum { MAX_EV = 64 };

struct ev {
	int what, code, op;
	size_t len;
	uint32_t sum;
};

struct run {
	struct ev ev[MAX_EV];
	int n;
	size_t used; /* bytes consumed in all */
};

static uint32_t sum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

/* Feeds data[0, size) in reads of the sizes seed gives (0: all at once) to a decoder,
 * as tp_ws_parse does with a flow's buffer: what is not used stays for the next read. */
static void decode(const uint8_t *data, size_t size, uint8_t seed, uint64_t max_frame,
		   size_t max_msg, struct run *r)
{
	struct tp_wsdec d = {.max_frame = max_frame, .max_msg = max_msg};
	uint8_t *buf = malloc(size ? size : 1);
	size_t have = 0, fed = 0, k = 0;
	bool done = false;

	if (!buf)
		abort();
	memset(r, 0, sizeof(*r));
	while (!done && fed < size) {
		size_t chunk = seed ? 1 + (size_t)((seed * (k + 7) * 2654435761u) >> 7) % 23 : size;

		k++;
		if (chunk > size - fed)
			chunk = size - fed;
		memcpy(buf + have, data + fed, chunk); /* buf holds the unused bytes first */
		have += chunk;
		fed += chunk;
		/* Each event uses at least a header (2 bytes), so this ends. */
		for (size_t off = 0, turns = 0;; turns++) {
			struct tp_wsdec_ev e;
			size_t used = 0;
			enum tp_wsdec_what w = tp_wsdec_run(&d, buf + off, have - off, &used, &e);

			if (used > have - off || turns > have + 2)
				abort();
			off += used;
			r->used += used;
			if (w == TP_WSD_MORE) {
				if (have - off >= 14) /* a whole header is always read */
					abort();
				memmove(buf, buf + off, have - off);
				have -= off;
				break;
			}
			if (w != TP_WSD_FAIL && used == 0)
				abort();
			if (w == TP_WSD_MSG) {
				if ((e.op != TP_WS_OP_TEXT && e.op != TP_WS_OP_BINARY) ||
				    e.len > max_msg || (e.len && !e.data) ||
				    (e.op == TP_WS_OP_TEXT && !tp_utf8_valid(e.data, e.len)))
					abort();
			}
			if ((w == TP_WSD_PING || w == TP_WSD_PONG) && e.len > 125)
				abort();
			if (w == TP_WSD_CLOSE && e.code && !tp_ws_close_code_ok((unsigned)e.code))
				abort();
			if (w == TP_WSD_FAIL && (!e.why || e.code < 1000))
				abort();
			if (r->n < MAX_EV) {
				struct ev *x = &r->ev[r->n];

				x->what = (int)w;
				x->code = e.code;
				x->op = e.op;
				x->len = e.len;
				x->sum = sum(e.data, e.len);
			}
			r->n++;
			if (w == TP_WSD_MSG)
				tp_wsdec_msg_done(&d);
			tp_wsdec_trim(&d);
			if (w == TP_WSD_FAIL || w == TP_WSD_CLOSE) {
				done = true; /* the connection closes: nothing more is read */
				break;
			}
		}
	}
	tp_wsdec_free(&d);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t frames[] = {65535, 125, 1000, 70000};
	static const size_t msgs[] = {65535, 200, 4096, 1 << 17};
	static struct run whole, cut;
	uint8_t sel;

	if (!size)
		return 0;
	sel = data[0];
	data++;
	size--;
	decode(data, size, 0, frames[sel & 3], msgs[(sel >> 2) & 3], &whole);
	decode(data, size, (uint8_t)(sel | 1), frames[sel & 3], msgs[(sel >> 2) & 3], &cut);
	/* The same events, however the bytes came in (a failure may be told earlier from a
	 * header begun, never differently). */
	if (whole.n != cut.n || memcmp(whole.ev, cut.ev, sizeof(whole.ev)))
		abort();
	return 0;
}
