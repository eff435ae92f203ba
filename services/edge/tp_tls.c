/* tp_tls: TLS on flows through OpenSSL memory BIOs — contexts (TLS 1.2 minimum,
 * forward-secret AEAD suites), handshakes, record encryption and decryption. */
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <string.h>
#include "skein/sk_err.h"
#include "skein/sk_log.h"
#include "skein/sk_tls.h"
#include "skein/sk_mem.h"
#include "tp_int.h"

SK_LOG_MODULE("edge.tp");

/* The policy (sk_tls.h) plus the CA to verify outbound peers with (RFC 5922). */
static SSL_CTX *client_ctx(const char *ca)
{
	SSL_CTX *ctx;
	char r[256];
	int ok;

	ctx = sk_tls_ctx_new(false, "tls");
	if (!ctx)
		return NULL;
	ok = ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL)
		: SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		SK_ERROR("tls: CA %s: %s", ca ? ca : "(system)", sk_tls_reason(r, sizeof(r)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int tp_tls_init_server(struct edge_tp *tp)
{
	tp->srv_ctx = sk_tls_server_ctx(tp->o.tls_cert, tp->o.tls_key, "tls");
	if (!tp->srv_ctx)
		return SK_ETLS;
	/* Kept for edge_tp_reload_tls() with the same paths. */
	if (!(tp->tls_cert = sk_strdup(tp->o.tls_cert)) ||
	    !(tp->tls_key = sk_strdup(tp->o.tls_key)))
		return SK_ENOMEM;
	return 0;
}

/* Made on the first outbound TLS connection. */
static int init_client(struct edge_tp *tp)
{
	tp->cli_ctx = client_ctx(tp->tls_ca);
	return tp->cli_ctx ? 0 : SK_ETLS;
}

void tp_tls_free(struct edge_tp *tp)
{
	SSL_CTX_free(tp->srv_ctx);
	SSL_CTX_free(tp->cli_ctx);
	tp->srv_ctx = tp->cli_ctx = NULL;
	tp->tls_cert = sk_deref(tp->tls_cert);
	tp->tls_key = sk_deref(tp->tls_key);
}

/* Why both: OpenSSL moves what it can of a record begun from the read BIO into its
 * own buffer (SSL_has_pending sees it there), and what it has not read yet stays in
 * the BIO. */
bool tp_tls_pending(const struct tp_flow *f)
{
	return f->ssl && (BIO_ctrl_pending(f->rbio) > 0 || SSL_has_pending(f->ssl));
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
		edge_addr_str(&f->remote, a, sizeof(a)), what, sk_tls_reason(r, sizeof(r)),
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
		SK_ERROR("tls: new session: %s", sk_tls_reason(r, sizeof(r)));
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
				SK_ERROR("tls: name %s: %s", f->tls_name, sk_tls_reason(r, sizeof(r)));
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

/* Why build everything before touching anything: a certificate renewed by a script
 * may be caught half-written, or its key may not match; then the edge keeps serving
 * with what it had. The swap is safe for live connections: each SSL object holds a
 * reference on the context it was made from (SSL_new), so an old context is freed
 * when its last connection is. */
int edge_tp_reload_tls(struct edge_tp *tp, const char *cert, const char *key, const char *ca)
{
	SSL_CTX *srv = NULL, *cli = NULL;
	char *ncert = NULL, *nkey = NULL, *nca = NULL;
	int err = 0;

	if (!tp || tp->closing)
		return SK_EINVAL;
	cert = cert ? cert : tp->tls_cert;
	key = key ? key : tp->tls_key;
	ca = ca ? (*ca ? ca : NULL) : tp->tls_ca; /* "": the system's store */
	if (tp->srv_ctx) {
		if (!cert || !*cert || !key || !*key) {
			SK_ERROR("tls: reload: tls_cert and tls_key are needed by the TLS/WSS "
				 "listeners; keeping the current ones");
			return SK_EINVAL;
		}
		srv = sk_tls_server_ctx(cert, key, "tls");
		if (!srv) {
			err = SK_ETLS;
			goto out;
		}
		if (!(ncert = sk_strdup(cert)) || !(nkey = sk_strdup(key))) {
			err = SK_ENOMEM;
			goto out;
		}
	}
	/* The client side is made now even when no outbound TLS connection was made yet,
	 * so that a bad CA file is reported at the reload, not at the first call. */
	cli = client_ctx(ca);
	if (!cli) {
		err = SK_ETLS;
		goto out;
	}
	if (ca && !(nca = sk_strdup(ca))) {
		err = SK_ENOMEM;
		goto out;
	}
out:
	if (err) {
		SK_ERROR("tls: reload failed, keeping the current certificate, key and CA");
		SSL_CTX_free(srv);
		SSL_CTX_free(cli);
		sk_deref(ncert);
		sk_deref(nkey);
		sk_deref(nca);
		return err;
	}
	if (srv) {
		SSL_CTX_free(tp->srv_ctx);
		tp->srv_ctx = srv;
		sk_deref(tp->tls_cert);
		sk_deref(tp->tls_key);
		tp->tls_cert = ncert;
		tp->tls_key = nkey;
	}
	SSL_CTX_free(tp->cli_ctx);
	tp->cli_ctx = cli;
	sk_deref(tp->tls_ca);
	tp->tls_ca = nca;
	/* cert and ca may have pointed at the copies just released: log the new ones. */
	SK_NOTICE("tls: reloaded%s%s%s, CA %s", srv ? " certificate " : "", srv ? tp->tls_cert : "",
		  srv ? " and its key" : "", tp->tls_ca ? tp->tls_ca : "(system)");
	return 0;
}
