/* libFuzzer target for edge_sip_check (services/edge/sip_check.h): the input is one
 * datagram, and also what a stream connection has buffered. Besides crashes and leaks
 * it checks the contract the transports rely on: consumed stays within the input,
 * "need more" only over a stream, a message only on accept, a verdict is either a
 * status or a drop, and the bytes consumed over a stream check the same on their own. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_err.h"
#include "sip_check.h"

static void check(const char *buf, size_t size, enum edge_transport t, size_t max)
{
	struct edge_verdict v;
	msg_t *msg = NULL;
	int rc = edge_sip_check(buf, size, t, max, &msg, &v);

	if (rc == SK_EAGAIN) {
		if (t != EDGE_STREAM || v.status || v.consumed || msg)
			abort();
		return;
	}
	if (rc != 0 || v.consumed > size || (v.status && v.drop) ||
	    !memchr(v.reason, '\0', sizeof(v.reason)) ||
	    !memchr(v.unsupported, '\0', sizeof(v.unsupported)))
		abort();
	if ((v.status == 0 && !v.drop) != (msg != NULL))
		abort();
	if (msg) {
		if (v.consumed == 0 || v.consumed > max)
			abort();
		msg_destroy(msg);
	}
	/* A message accepted over a stream is framed: the same bytes alone agree. */
	if (t == EDGE_STREAM && v.status == 0 && !v.drop && v.consumed < size) {
		struct edge_verdict v2;

		if (edge_sip_check(buf, v.consumed, t, max, NULL, &v2) != 0 || v2.status ||
		    v2.drop || v2.consumed != v.consumed)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = {65535, 300};
	/* A heap copy of exactly size bytes, so any over-read is caught. */
	char *buf = malloc(size ? size : 1);

	if (!buf)
		abort();
	memcpy(buf, data, size);
	for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
		check(buf, size, EDGE_UDP, limits[k]);
		check(buf, size, EDGE_STREAM, limits[k]);
	}
	if (memcmp(buf, data, size))
		abort(); /* the input is only read */
	free(buf);
	return 0;
}
