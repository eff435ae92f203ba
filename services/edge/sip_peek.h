/* sip_peek: what can be told of a datagram without parsing it.
 *
 * The ACK of a challenge the edge answered statelessly (one per call: INVITE, 407,
 * ACK) needs nothing but its To-tag to be recognised and dropped (RFC 3261 §17.2.1:
 * it would end the transaction, which a stateless 407 never made). Parsing it with
 * sofia-sip costs ~20,000 instructions; finding the tag in the text a few hundred.
 * Kamailio's sl module does the same with its lazy parser.
 *
 * The scan is conservative: it answers only when the text leaves no doubt about what a
 * full parse would find, and otherwise says "parse it". It is never a verdict on the
 * message: a malformed ACK it does not recognise goes to edge_sip_check() as before.
 * tests/fuzz/fuzz_sip.c checks that whenever both this scan and sofia-sip accept a
 * datagram, they find the same method and To-tag. */
#ifndef SKEIN_EDGE_SIP_PEEK_H
#define SKEIN_EDGE_SIP_PEEK_H
#include <stdbool.h>
#include <stddef.h>

/* The To-tag of an ACK request in data[0..len). true, with *tag pointing into data and
 * *tag_len set, only when: the request line starts with "ACK " (methods are
 * case-sensitive, §7.1); the header section ends with CRLF CRLF and every line break in
 * it is CRLF; no line is folded; exactly one To header (or its compact form t), its
 * value without quotes, commas, or whitespace after the address; exactly one tag
 * parameter, written "tag=" (any case) and followed by the end of the line or another
 * parameter. false otherwise (not an ACK, no tag, or not sure). data is only read. */
bool edge_sip_peek_ack_tag(const char *data, size_t len, const char **tag, size_t *tag_len);

#endif
