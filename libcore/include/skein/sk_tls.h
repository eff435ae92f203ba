/* sk_tls: the one TLS policy of every Skein listener and client (RFC 7525): TLS 1.2
 * at least; for TLS 1.2 only ECDHE key exchange with AEAD suites (TLS 1.3's suites
 * are all AEAD and forward-secret); no compression (CRIME, §3.3), no renegotiation
 * (§3.5: a proxy needs none and it is a DoS lever). The SIP edge (TLS, WSS) and the
 * HTTP server (XCAP over HTTPS) build their contexts here, so a policy change is made
 * once. */
#ifndef SK_TLS_H
#define SK_TLS_H
#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

/* A context with the policy, for a server or a client; NULL on an OpenSSL error
 * (logged with who: "tls", "https"). */
SSL_CTX *sk_tls_ctx_new(bool server, const char *who);
/* A server context with the certificate chain and key of these PEM files; NULL on an
 * error, logged naming who and the file at fault. */
SSL_CTX *sk_tls_server_ctx(const char *cert, const char *key, const char *who);
/* The last OpenSSL error of this thread as text (the queue is cleared). */
const char *sk_tls_reason(char *buf, size_t size);

#endif
