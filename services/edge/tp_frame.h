/* tp_frame: the transport's framing as pure functions — no loop, no socket, no TLS —
 * so that tp_stream.c/tp_ws.c and the fuzz targets (tests/fuzz/fuzz_stream.c,
 * fuzz_ws.c) run the same code. A decoder is a small state struct; the caller owns the
 * bytes and hands over what it has buffered, the decoder says what is at its head
 * (stream) or consumes up to one event (WebSocket). Thread: any, one state per caller.
 * Not for outside the edge's transport. */
#ifndef SKEIN_EDGE_TP_FRAME_H
#define SKEIN_EDGE_TP_FRAME_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 3629: s[0, n) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
bool tp_utf8_valid(const void *s, size_t n);

/* ---- SIP over a byte stream (RFC 3261 §18.3, RFC 5626 §4.4.1) ---- */

/* Where the framing of the message at the head of the buffer is. Zeroed: at a message
 * boundary. */
struct tp_sframe {
	size_t scan; /* the header section was searched for its end up to here */
	size_t need; /* bytes the message needs by its Content-Length, 0: not known yet */
};

enum tp_sframe_what {
	TP_SF_MORE,  /* nothing to do until more bytes come */
	TP_SF_SKIP,  /* a lone CRLF or stray CR/LF between messages: drop *k bytes */
	TP_SF_PING,  /* a double CRLF keep-alive: drop *k bytes and answer one CRLF */
	TP_SF_CHECK, /* the message may be whole: hand all of p[0, n) to edge_sip_check */
};

/* What is at the head of the unconsumed bytes p[0, n) (n > 0). max is max_msg_size:
 * at or above it TP_SF_CHECK is returned whatever the framing (the check answers 513).
 * After TP_SF_CHECK the caller calls tp_sframe_done (a verdict consumed bytes) or
 * tp_sframe_short (the check wanted more). */
enum tp_sframe_what tp_sframe_next(struct tp_sframe *s, const char *p, size_t n, size_t max,
				   size_t *k);
/* edge_sip_check said SK_EAGAIN with n bytes: the estimate was short, check again on
 * every new byte. */
void tp_sframe_short(struct tp_sframe *s, size_t n);
/* A message was consumed: the next one starts fresh. */
void tp_sframe_done(struct tp_sframe *s);

/* ---- WebSocket frames from a client (RFC 6455 §5) ---- */

/* RFC 6455 §5.2, §11.8. */
enum {
	TP_WS_OP_CONT = 0x0,
	TP_WS_OP_TEXT = 0x1,
	TP_WS_OP_BINARY = 0x2,
	TP_WS_OP_CLOSE = 0x8,
	TP_WS_OP_PING = 0x9,
	TP_WS_OP_PONG = 0xA,
};

/* §7.4.1. */
enum {
	TP_WS_CLOSE_NORMAL = 1000,
	TP_WS_CLOSE_GOING_AWAY = 1001,
	TP_WS_CLOSE_PROTOCOL = 1002,
	TP_WS_CLOSE_BAD_DATA = 1007, /* not UTF-8 in a text message */
	TP_WS_CLOSE_TOO_BIG = 1009,
	TP_WS_CLOSE_INTERNAL = 1011,
};

/* The decoder: where the frame parser is and the message being reassembled (§5.4).
 * Set max_frame and max_msg, zero the rest; tp_wsdec_free releases the message. */
struct tp_wsdec {
	uint64_t max_frame; /* largest data frame payload (1009 above) */
	size_t max_msg;	    /* largest reassembled message (1009 above) */
	bool in_frame, fin; /* a frame header was read; its FIN bit */
	uint8_t op;	    /* its opcode */
	uint8_t mask[4];    /* its masking key */
	uint64_t flen, got; /* its payload length, bytes of it read */
	uint8_t mop;	    /* opcode of the message being reassembled, 0: none */
	char *msg;	    /* the message: [0, mlen) unmasked (sk_alloc'd) */
	size_t mlen, mcap;
	uint8_t ctl[125]; /* a control frame's payload (§5.5: at most 125 bytes) */
};

enum tp_wsdec_what {
	TP_WSD_MORE,  /* nothing complete yet: the bytes not used (a frame header begun)
		       * are to be given again, with more */
	TP_WSD_MSG,   /* a whole data message (text is valid UTF-8): op, data, len; call
		       * tp_wsdec_msg_done once it has been handled */
	TP_WSD_PING,  /* answer with a pong of data[0, len) (§5.5.2) */
	TP_WSD_PONG,  /* nothing to do (§5.5.3) */
	TP_WSD_CLOSE, /* a valid close frame: echo code (0: none, §5.5.1) and close */
	TP_WSD_FAIL,  /* fail the connection with code, why (§7.1.7); feed nothing more */
};

struct tp_wsdec_ev {
	uint8_t op;	  /* TP_WSD_MSG: TP_WS_OP_TEXT or TP_WS_OP_BINARY */
	const char *data; /* MSG, PING: the payload, valid until the next call */
	size_t len;
	int code;	 /* CLOSE: the peer's status code (0: none); FAIL: ours to send */
	const char *why; /* FAIL: for the log */
};

/* Consumes bytes of p[0, n) up to and including one event; *used says how many. Call
 * again with the rest after handling the event. */
enum tp_wsdec_what tp_wsdec_run(struct tp_wsdec *d, const uint8_t *p, size_t n, size_t *used,
				struct tp_wsdec_ev *ev);
/* The message of a TP_WSD_MSG event was handled: the next one starts. */
void tp_wsdec_msg_done(struct tp_wsdec *d);
/* Whether a frame or a fragmented message is begun (for slow_timeout_ms). */
bool tp_wsdec_partial(const struct tp_wsdec *d);
/* Gives back a large message buffer between messages (idle connections keep none). */
void tp_wsdec_trim(struct tp_wsdec *d);
void tp_wsdec_free(struct tp_wsdec *d);
/* §7.4.1, §7.4.2 and the IANA registry: codes a peer may send in a close frame. */
bool tp_ws_close_code_ok(unsigned code);

#endif
