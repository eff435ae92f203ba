/* xcap_http: the XCAP server (RFC 4825) over sk_http, HTTP and HTTPS, that
 * skein-registrar starts. Each request: the URI (xcap_uri), HTTP digest
 * authentication with the subscriber's SIP credentials from Redis (RFC 7616, qop=auth,
 * MD5 and SHA-256, realm = the domain of the XUI; the edge's digest code does the
 * nonces and the response check), the document from Redis (xcap_store), the
 * operation (xcap_doc), the conditional headers (If-Match / If-None-Match, RFC 9110
 * §13.1) and the compare-and-set write. A user may touch only users/<their XUI>/
 * (403); global/ has the generated xcap-caps document, readable without credentials.
 * Everything runs on the loop of the caller. */
#ifndef SKEIN_XCAP_HTTP_H
#define SKEIN_XCAP_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct sk_metrics;
struct sk_redis;
struct xcap_server;

struct xcap_server_opts {
	const char *http_listen;  /* "127.0.0.1:8080"; NULL or "": no plain HTTP */
	const char *https_listen; /* NULL or "": no HTTPS (then cert/key unused) */
	const char *tls_cert, *tls_key;
	const char *root; /* the xcap-root path, e.g. "/xcap"; NULL: "/xcap" */
	/* The nonce secret; NULL: one per cluster shared through Redis (the edge's
	 * <c>:{cluster}:nonce_secret), so a nonce from one node is good on any. */
	const char *secret;
	uint32_t nonce_max_age_s; /* 0: 300 */
	/* Called after every successful write (PUT or DELETE) with the owner's XUI
	 * ("user@domain"), the AUID and the document name; NULL: nobody. */
	void (*on_change)(void *arg, const char *xui, const char *auid, const char *doc);
	void *change_arg;
	/* Where the XCAP metrics go (docs/xcap.md "Metrics"): families named
	 * <metrics_prefix>_xcap_..., e.g. skein_registrar_xcap_requests_total; NULL: no
	 * metrics. Borrowed: the registry must outlive the server. */
	struct sk_metrics *metrics;
	const char *metrics_prefix; /* NULL: "skein_xcap" */
};

/* Starts listening. redis is borrowed (it must outlive the server), cluster is
 * copied. Returns 0; SK_EINVAL when neither address is set or TLS lacks a file;
 * SK_ECONFIG when the certificate or key does not load; listen errors. */
int xcap_server_alloc(struct xcap_server **sp, uv_loop_t *loop, struct sk_redis *redis,
		      const char *cluster, const struct xcap_server_opts *o);
/* Stops listening; requests waiting on Redis are dropped with their connections.
 * Release with sk_deref afterwards. */
void xcap_server_close(struct xcap_server *s);
/* SIGHUP: re-read the HTTPS certificate and key from the files given at start. New
 * handshakes get the new ones; on an error (logged naming the file) the current ones
 * stay and SK_ECONFIG is returned. 0 when there is no HTTPS listener. */
int xcap_server_reload(struct xcap_server *s);
/* The addresses bound ("" when off), e.g. to learn the port of ":0". */
const char *xcap_server_http_addr(const struct xcap_server *s);
const char *xcap_server_https_addr(const struct xcap_server *s);

#endif
