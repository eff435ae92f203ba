/* sip_check: parse one SIP message with sofia-sip's msg parser and run the edge proxy's
 * sanity checks (RFC 3261 §8.2, §16.3, §18.3; RFC 4475), producing a verdict.
 *
 * The module is loop-free: no nta/nua/su_root. It only reads the bytes given, copies
 * them into a new sofia-sip msg_t and never keeps state between calls. Thread-safe as
 * long as each thread uses its own buffers. docs/edge-sip-checks.md lists the verdict
 * for every RFC 4475 torture message and the choices made. */
#ifndef SKEIN_EDGE_SIP_CHECK_H
#define SKEIN_EDGE_SIP_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <sofia-sip/msg.h>

enum edge_transport {
	EDGE_UDP,    /* one datagram: the message ends where the datagram ends */
	EDGE_STREAM, /* TCP/TLS byte stream: Content-Length frames the message (a WebSocket
		      * message is one SIP message: EDGE_UDP) */
};

struct edge_verdict {
	/* 0 = accept (or, with edge_sip_check() returning SK_EAGAIN, "need more"),
	 * else the response code to send: 400, 416, 420, 483, 501, 505, 513. */
	int status;
	/* Reason phrase naming the fault, e.g. "Bad Request (missing Call-ID)";
	 * empty on accept. */
	char reason[96];
	/* A malformed or unusable response, or junk that is not a SIP request: drop it
	 * silently and count it. status is 0 then. */
	bool drop;
	/* The start line looks like a request (set whenever it can be told). */
	bool is_request;
	/* Bytes of the input that make up this message, leading CRLFs included. Over UDP
	 * the bytes after it are ignored (RFC 3261 §18.3); over a stream the next message
	 * starts there. After a 400/513 over a stream the framing is lost: close the
	 * connection (RFC 4475 §3.1.2.3, §3.3.9). */
	size_t consumed;
	/* For 420: the option tags for the Unsupported header, ", "-separated. */
	char unsupported[256];
};

/* Check one message at the start of data[0..len).
 *
 * t: EDGE_UDP when data is a whole datagram, EDGE_STREAM when it is what a stream
 * connection has buffered so far. max_size: largest message accepted (513 above it).
 *
 * Returns 0 when *v holds a verdict; SK_EAGAIN (stream only) when the message is not
 * complete yet: then v->status is 0 and v->consumed is 0, call again with more bytes;
 * SK_EINVAL on bad arguments; SK_ENOMEM when sofia-sip could not allocate.
 *
 * msgp may be NULL. Otherwise, on an accepted message (return 0, status 0, !drop)
 * *msgp gets the parsed message (the caller owns it: msg_destroy()); on every other
 * outcome *msgp is set to NULL and nothing is left allocated.
 *
 * Max-Forwards: 0 gives status 483 for every method. The caller decides: a request
 * for the edge itself (e.g. OPTIONS with a Request-URI naming the edge) may be
 * answered 200 instead (RFC 3261 §16.3 item 3, §11). data is only read. */
int edge_sip_check(const char *data, size_t len, enum edge_transport t, size_t max_size,
		   msg_t **msgp, struct edge_verdict *v);

#endif
