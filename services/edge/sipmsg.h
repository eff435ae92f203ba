/* sipmsg: small helpers on sofia-sip messages shared by the transaction layer and the
 * proxy: printing, branch and tag generation, the standard reason phrases, and
 * building a response from a request as text. Loop-free, no state. */
#ifndef SKEIN_EDGE_SIPMSG_H
#define SKEIN_EDGE_SIPMSG_H
#include <stdbool.h>
#include <stddef.h>
#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>

struct sk_buf;
struct edge_rx;

/* Appends the whole message (start line, headers, body) as it would go on the wire,
 * after the caller's header edits (sofia msg_prepare/msg_serialize). 0 or SK_ENOMEM /
 * SK_EBADMSG. */
int edge_msg_print(msg_t *msg, struct sk_buf *out);
/* n bytes from the kernel's CSPRNG (getrandom(2)), drawn from a 4 KiB pool so that
 * most calls make no system call. 0, or SK_EAGAIN when getrandom() fails. Not
 * thread-safe: the daemon's loop thread only. */
int edge_random_bytes(void *out, size_t n);
/* "z9hG4bK" + 22 random base64url characters + NUL (§8.1.1.7 magic cookie). */
#define EDGE_BRANCH_SIZE 32
void edge_branch_new(char out[EDGE_BRANCH_SIZE]);
/* 16 random hex characters + NUL, for To tags. */
#define EDGE_TAG_SIZE 17
void edge_tag_new(char out[EDGE_TAG_SIZE]);
/* Standard reason phrase of a status code (§21), "Unknown" when none. */
const char *edge_reason(int status);
/* A response to req, as text (§8.2.6): start line, every Via of req in order (with
 * the received/rport the layer added), From, To (to_tag appended when To has none and
 * to_tag is not NULL), Call-ID, CSeq, extra (complete CRLF-terminated lines or NULL),
 * Server (server may be NULL), Content-Type and body (ctype NULL for none),
 * Content-Length. 0 or SK_EINVAL (req lacks a mandatory header) / SK_ENOMEM. */
int edge_response_build(struct sk_buf *out, msg_t *req, int status, const char *reason,
			const char *to_tag, const char *extra, const char *server, const char *ctype,
			const void *body, size_t body_len);

/* A request for the same hop derived from an INVITE we sent (its top Via is ours):
 * CANCEL (§9.1) or the ACK of a non-2xx final response (§17.1.1.3). Request-URI, the
 * top Via only, the Route headers, From, To (to when not NULL: the response's, with
 * its tag; else the INVITE's), Call-ID, CSeq with the INVITE's number and method,
 * Max-Forwards: 70, Content-Length: 0. 0, SK_EINVAL or SK_ENOMEM. */
int edge_request_derive(struct sk_buf *out, msg_t *invite, const char *method,
			const sip_to_t *to);

/* The value of the URI parameter name (case-insensitive; a trailing '=' is ignored) in
 * params (url->url_params, borrowed, may be NULL), with url_param()'s contract: 0 when
 * absent, else the size the value needs with its NUL (1 for a parameter without value),
 * copied into value only when that is at most size. Use it instead of url_param(),
 * which in sofia-sip 1.12 reads past the end of params when the last parameter starts
 * with name ("lrx" looking for "lr"; found by tests/fuzz/fuzz_uri.c). */
size_t edge_uri_param(const char *params, const char *name, char *value, size_t size);

#endif
