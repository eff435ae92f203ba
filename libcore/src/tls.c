/* sk_tls: one TLS policy for every listener and client (sk_tls.h). */
#include <stdio.h>
#include <openssl/err.h>
#include "skein/sk_log.h"
#include "skein/sk_tls.h"

SK_LOG_MODULE("tls");

static const char ciphers12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
				"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
				"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

const char *sk_tls_reason(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();

	if (!e)
		snprintf(buf, size, "unknown error");
	else
		ERR_error_string_n(e, buf, size);
	ERR_clear_error();
	return buf;
}

SSL_CTX *sk_tls_ctx_new(bool server, const char *who)
{
	SSL_CTX *ctx;
	char r[256];

	ERR_clear_error();
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) &&
	    SSL_CTX_set_cipher_list(ctx, ciphers12))
		return ctx;
fail:
	SK_ERROR("%s: %s context: %s", who, server ? "server" : "client",
		 sk_tls_reason(r, sizeof(r)));
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *sk_tls_server_ctx(const char *cert, const char *key, const char *who)
{
	SSL_CTX *ctx = sk_tls_ctx_new(true, who);
	char r[256];

	if (!ctx)
		return NULL;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		SK_ERROR("%s: certificate %s: %s", who, cert, sk_tls_reason(r, sizeof(r)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		SK_ERROR("%s: key %s: %s", who, key, sk_tls_reason(r, sizeof(r)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
