/* libFuzzer target for edge_sip_check (services/edge/sip_check.h): the input is one
 * datagram, and also what a stream connection has buffered. Besides crashes and leaks
 * it checks the contract the transports rely on: consumed stays within the input,
 * "need more" only over a stream, a message only on accept, a verdict is either a
 * status or a drop, and the bytes consumed over a stream check the same on their own.
 * And sip_peek's scan (services/edge/sip_peek.h): wherever it finds an ACK's To-tag in
 * a datagram sofia-sip accepts, sofia-sip finds an ACK with that tag. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_err.h"
#include "sip_check.h"
#include "sip_peek.h"
#include <sofia-sip/sip_header.h>

/* The scan's tag is sofia-sip's (only said when the scan found one). */
static void peek_agrees(const char *buf, size_t size, msg_t *msg)
{
	const char *tag;
	size_t n;
	sip_t *sip = sip_object(msg);

	if (!edge_sip_peek_ack_tag(buf, size, &tag, &n))
		return;
	if (tag < buf || tag + n > buf + size || !sip->sip_request ||
	    sip->sip_request->rq_method != sip_method_ack || !sip->sip_to ||
	    !sip->sip_to->a_tag || strlen(sip->sip_to->a_tag) != n ||
	    memcmp(sip->sip_to->a_tag, tag, n))
		abort();
}

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
		if (t == EDGE_UDP)
			peek_agrees(buf, size, msg);
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
