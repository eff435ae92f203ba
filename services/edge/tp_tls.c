/* tp_tls: TLS on flows through OpenSSL memory BIOs — contexts (TLS 1.2 minimum,
 * forward-secret AEAD suites), handshakes, record encryption and decryption. */
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <string.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_mem.h"
#include "tp_int.h"

SK_LOG_MODULE("edge.tp");

/* RFC 7525 §4.2 (BCP 195): ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2;
 * TLS 1.3 keeps OpenSSL's defaults, which are all AEAD and forward-secret. */
static const char ciphers12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
				"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
				"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static const char *ssl_reason(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();

	if (!e)
		snprintf(buf, size, "unknown error");
	else
		ERR_error_string_n(e, buf, size);
	ERR_clear_error();
	return buf;
}

static SSL_CTX *ctx_new(const SSL_METHOD *m)
{
	SSL_CTX *ctx = SSL_CTX_new(m);

	if (!ctx)
		return NULL;
	/* No renegotiation (RFC 7525 §3.5 allows only the secure kind; a proxy needs
	 * none, and it is a DoS lever); no compression (CRIME, RFC 7525 §3.3). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, ciphers12)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int tp_tls_init_server(struct edge_tp *tp)
{
	char r[256];

	ERR_clear_error();
	tp->srv_ctx = ctx_new(TLS_server_method());
	if (!tp->srv_ctx) {
		SK_ERROR("tls: server context: %s", ssl_reason(r, sizeof(r)));
		return SK_ETLS;
	}
	if (SSL_CTX_use_certificate_chain_file(tp->srv_ctx, tp->o.tls_cert) != 1) {
		SK_ERROR("tls: certificate %s: %s", tp->o.tls_cert, ssl_reason(r, sizeof(r)));
		return SK_ETLS;
	}
	if (SSL_CTX_use_PrivateKey_file(tp->srv_ctx, tp->o.tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(tp->srv_ctx) != 1) {
		SK_ERROR("tls: key %s: %s", tp->o.tls_key, ssl_reason(r, sizeof(r)));
		return SK_ETLS;
	}
	return 0;
}

/* Made on the first outbound TLS connection. */
static int init_client(struct edge_tp *tp)
{
	char r[256];
	int ok;

	ERR_clear_error();
	tp->cli_ctx = ctx_new(TLS_client_method());
	if (!tp->cli_ctx) {
		SK_ERROR("tls: client context: %s", ssl_reason(r, sizeof(r)));
		return SK_ETLS;
	}
	ok = tp->tls_ca ? SSL_CTX_load_verify_locations(tp->cli_ctx, tp->tls_ca, NULL)
			: SSL_CTX_set_default_verify_paths(tp->cli_ctx);
	if (ok != 1) {
		SK_ERROR("tls: CA %s: %s", tp->tls_ca ? tp->tls_ca : "(system)",
			 ssl_reason(r, sizeof(r)));
		SSL_CTX_free(tp->cli_ctx);
		tp->cli_ctx = NULL;
		return SK_ETLS;
	}
	return 0;
}

void tp_tls_free(struct edge_tp *tp)
{
	SSL_CTX_free(tp->srv_ctx);
	SSL_CTX_free(tp->cli_ctx);
	tp->srv_ctx = tp->cli_ctx = NULL;
}

void tp_tls_flow_free(struct tp_flow *f)
{
	SSL_free(f->ssl); /* and both BIOs */
	f->ssl = NULL;
}

/* Ciphertext OpenSSL produced goes to the socket (no copy unless it would block). */
static int flush(struct tp_flow *f, uint64_t cookie)
{
	char *p;
	long n = BIO_get_mem_data(f->wbio, &p);
	int err = 0;

	if (n > 0) {
		err = tp_flow_write(f, p, (size_t)n, cookie);
		(void)BIO_reset(f->wbio);
	}
	return err;
}

static void fail(struct tp_flow *f, const char *what)
{
	char r[256], a[64];
	long vr = f->outbound ? SSL_get_verify_result(f->ssl) : X509_V_OK;

	SK_WARN("tls %s %s: %s: %s%s%s", f->outbound ? "to" : "from",
		edge_addr_str(&f->remote, a, sizeof(a)), what, ssl_reason(r, sizeof(r)),
		vr != X509_V_OK ? ", certificate: " : "",
		vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
	(void)flush(f, 0); /* the alert, best effort */
	tp_flow_close(f, SK_ETLS);
}

static void read_records(struct tp_flow *f)
{
	while (f->state == F_UP) {
		size_t space = f->rx_broken ? sizeof(f->tp->rxbuf) : tp_flow_space(f);
		char *dst = f->rx_broken ? f->tp->rxbuf : f->buf + f->len;
		int n, e;

		if (!space) {
			tp_flow_close(f, SK_ENOMEM);
			return;
		}
		n = SSL_read(f->ssl, dst, space > INT32_MAX ? INT32_MAX : (int)space);
		if (n > 0) {
			if (!f->rx_broken) {
				f->len += (size_t)n;
				tp_flow_parse(f);
			}
			continue;
		}
		e = SSL_get_error(f->ssl, n);
		if (e == SSL_ERROR_WANT_READ)
			break;
		if (e == SSL_ERROR_ZERO_RETURN) /* close_notify */
			tp_flow_close(f, SK_ECONNRESET);
		else
			fail(f, "read");
		return;
	}
	if (f->state == F_UP)
		(void)flush(f, 0); /* TLS 1.3 post-handshake messages, key updates */
}

static void handshake(struct tp_flow *f)
{
	int r = SSL_do_handshake(f->ssl), e;

	if (r == 1) {
		char a[64];

		SK_DEBUG("tls %s %s: %s %s", f->outbound ? "to" : "from",
			 edge_addr_str(&f->remote, a, sizeof(a)), SSL_get_version(f->ssl),
			 SSL_get_cipher_name(f->ssl));
		if (flush(f, 0))
			return;
		tp_flow_up(f);
		read_records(f); /* application data may have come with the Finished */
		return;
	}
	e = SSL_get_error(f->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		(void)flush(f, 0);
		return;
	}
	TP_COUNT(f->tp, tls_fail, tls_handshake_failures);
	fail(f, "handshake");
}

static bool is_ip_literal(const char *s)
{
	unsigned char b[16];

	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

int tp_tls_start(struct tp_flow *f)
{
	struct edge_tp *tp = f->tp;
	char r[256];

	ERR_clear_error();
	if (f->outbound && !tp->cli_ctx && init_client(tp))
		return SK_ETLS;
	f->ssl = SSL_new(f->outbound ? tp->cli_ctx : tp->srv_ctx);
	f->rbio = BIO_new(BIO_s_mem());
	f->wbio = BIO_new(BIO_s_mem());
	if (!f->ssl || !f->rbio || !f->wbio) {
		BIO_free(f->rbio);
		BIO_free(f->wbio);
		f->rbio = f->wbio = NULL;
		SK_ERROR("tls: new session: %s", ssl_reason(r, sizeof(r)));
		return SK_ENOMEM;
	}
	/* An empty read BIO means "wait for more", not EOF. */
	BIO_set_mem_eof_return(f->rbio, -1);
	SSL_set_bio(f->ssl, f->rbio, f->wbio);
	if (!f->outbound) {
		SSL_set_accept_state(f->ssl);
	} else {
		SSL_set_connect_state(f->ssl);
		if (f->tls_name) {
			/* RFC 5922 §7.2: the name we looked up must be in the certificate;
			 * SNI (RFC 6066 §3) only for host names, never IP literals. */
			if ((!is_ip_literal(f->tls_name) &&
			     !SSL_set_tlsext_host_name(f->ssl, f->tls_name)) ||
			    !SSL_set1_host(f->ssl, f->tls_name)) {
				SK_ERROR("tls: name %s: %s", f->tls_name, ssl_reason(r, sizeof(r)));
				return SK_ETLS;
			}
			SSL_set_verify(f->ssl, SSL_VERIFY_PEER, NULL);
		} else {
			SSL_set_verify(f->ssl, SSL_VERIFY_NONE, NULL);
		}
	}
	handshake(f);
	return 0;
}

void tp_tls_input(struct tp_flow *f, const char *data, size_t len)
{
	ERR_clear_error();
	if (BIO_write(f->rbio, data, (int)len) != (int)len) {
		tp_flow_close(f, SK_ENOMEM);
		return;
	}
	if (f->state == F_HANDSHAKE)
		handshake(f);
	else if (f->state == F_UP)
		read_records(f);
}

void tp_tls_shutdown(struct tp_flow *f)
{
	if (f->state != F_UP || !f->ssl)
		return;
	ERR_clear_error();
	(void)SSL_shutdown(f->ssl); /* we do not wait for the peer's close_notify */
	ERR_clear_error();
	(void)flush(f, 0);
}

int tp_tls_send(struct tp_flow *f, const void *data, size_t len, uint64_t cookie)
{
	int n;

	if (f->state != F_UP || !f->ssl)
		return SK_ENOTCONN;
	if (!len)
		return 0;
	ERR_clear_error();
	/* A memory BIO never blocks: SSL_write takes all of it or fails. */
	n = SSL_write(f->ssl, data, (int)len);
	if (n != (int)len) {
		fail(f, "write");
		return SK_ETLS;
	}
	return flush(f, cookie);
}

/* TEMPORARY until the TLS reload lands (issue 5 work in progress). */
int edge_tp_reload_tls(struct edge_tp *tp, const char *cert, const char *key, const char *ca)
{
	(void)tp, (void)cert, (void)key, (void)ca;
	return SK_ENOTSUP;
}
