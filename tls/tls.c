/* tls/tls.c: wolfSSL contexts from PgBouncer-style settings, and sessions whose
 * I/O callbacks read the ciphertext the ring received and hand records back to
 * the connection's send queue. No socket is ever touched here. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/sha512.h>

#include "tls/tls.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ENDPOINT_MAX 64
#define ALPN_POSTGRESQL "postgresql"

struct tls_ctx {
	WOLFSSL_CTX *ctx;
	_Atomic int refs;                 /* the configuration's, and one per session */
	bool server;
	enum tls_verify verify;
	uint8_t endpoint[ENDPOINT_MAX];   /* tls-server-end-point of our certificate */
	size_t endpoint_len;
	char describe[160];
};

struct tls_session {
	WOLFSSL *ssl;
	struct tls_ctx *ctx;              /* for the end-point hash only (wolfSSL keeps its own reference) */
	tls_output_fn out;
	void *arg;
	const uint8_t *in;                /* received ciphertext not yet taken by wolfSSL */
	uint32_t in_len;
	bool server, direct, ready, closed, notified, failed;
	bool alpn_missing;                /* direct TLS without ALPN "postgresql" */
	int err;                          /* wolfSSL's error code when failed */
	char why[120];
};

void tls_init(void)
{
	wolfSSL_Init();
}

/* ---- settings ---- */

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *wolf_reason(int code, char *buf, size_t cap)
{
	wolfSSL_ERR_error_string_n((unsigned long)code, buf, (unsigned long)cap);
	return buf;
}

/* "secure" and the like, or a list of tlsv1.2 / tlsv1.3: the lowest and
 * highest version named (PgBouncer accepts a list; a gap cannot be expressed
 * in TLS and is not either there). */
static int set_protocols(WOLFSSL_CTX *ctx, const char *spec, char *err, size_t errlen)
{
	int lo = 0, hi = 0;
	if (!spec || !strcasecmp(spec, "secure") || !strcasecmp(spec, "default") || !strcasecmp(spec, "all") ||
	    !strcasecmp(spec, "legacy")) {
		lo = TLS1_2_VERSION;
		hi = TLS1_3_VERSION;
	} else {
		char copy[128];
		snprintf(copy, sizeof copy, "%s", spec);
		for (char *save = NULL, *tok = strtok_r(copy, ", :", &save); tok; tok = strtok_r(NULL, ", :", &save)) {
			int v;
			if (!strcasecmp(tok, "tlsv1.2"))
				v = TLS1_2_VERSION;
			else if (!strcasecmp(tok, "tlsv1.3"))
				v = TLS1_3_VERSION;
			else
				return fail(err, errlen, "protocols: %s is not supported (tlsv1.2 and tlsv1.3 are)", tok);
			if (!lo || v < lo)
				lo = v;
			if (v > hi)
				hi = v;
		}
		if (!lo)
			return fail(err, errlen, "protocols: no protocol named in '%s'", spec);
	}
	if (wolfSSL_CTX_set_min_proto_version(ctx, lo) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_max_proto_version(ctx, hi) != WOLFSSL_SUCCESS)
		return fail(err, errlen, "protocols: this wolfSSL cannot be limited to '%s'", spec ? spec : "secure");
	return 0;
}

/* The suites we offer first. Debian's wolfSSL has no AES-NI code, so
 * ChaCha20-Poly1305 is the fast AEAD there; with AES-NI, AES-GCM is. */
#ifdef WOLFSSL_AESNI
#define TLS13_DEFAULT "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256"
#define TLS12_DEFAULT                                                                                          \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"          \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#else
#define TLS13_DEFAULT "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384"
#define TLS12_DEFAULT                                                                                          \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:"          \
	"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
#endif

/* OpenSSL's TLS 1.3 suite names (what PgBouncer users write) to wolfSSL's. */
static const char *tls13_name(const char *name)
{
	static const char *const map[][2] = {
		{ "TLS_AES_128_GCM_SHA256", "TLS13-AES128-GCM-SHA256" },
		{ "TLS_AES_256_GCM_SHA384", "TLS13-AES256-GCM-SHA384" },
		{ "TLS_CHACHA20_POLY1305_SHA256", "TLS13-CHACHA20-POLY1305-SHA256" },
		{ "TLS_AES_128_CCM_SHA256", "TLS13-AES128-CCM-SHA256" },
		{ "TLS_AES_128_CCM_8_SHA256", "TLS13-AES128-CCM-8-SHA256" },
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (!strcasecmp(name, map[i][0]))
			return map[i][1];
	return name;
}

static int set_ciphers(WOLFSSL_CTX *ctx, const struct tls_settings *set, char *err, size_t errlen)
{
	char list[2048];
	size_t n = 0;
	if (set->tls13_ciphers && *set->tls13_ciphers) {
		char copy[512];
		snprintf(copy, sizeof copy, "%s", set->tls13_ciphers);
		for (char *save = NULL, *tok = strtok_r(copy, ":, ", &save); tok; tok = strtok_r(NULL, ":, ", &save))
			n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ":" : "", tls13_name(tok));
	} else {
		n += (size_t)snprintf(list + n, sizeof list - n, "%s", TLS13_DEFAULT);
	}
	const char *c = set->ciphers;
	if (!c || !strcasecmp(c, "default") || !strcasecmp(c, "secure") || !strcasecmp(c, "fast") ||
	    !strcasecmp(c, "normal") || !strcasecmp(c, "compat"))
		c = TLS12_DEFAULT;
	else if (!strcasecmp(c, "all") || !strcasecmp(c, "legacy"))
		c = "ALL:!aNULL:!eNULL";
	if (n + strlen(c) + 2 >= sizeof list)
		return fail(err, errlen, "ciphers: list too long");
	snprintf(list + n, sizeof list - n, ":%s", c);
	if (wolfSSL_CTX_set_cipher_list(ctx, list) != WOLFSSL_SUCCESS)
		return fail(err, errlen, "ciphers: wolfSSL knows none of '%s'%s%s", set->ciphers ? set->ciphers : "default",
			    set->tls13_ciphers ? " / " : "", set->tls13_ciphers ? set->tls13_ciphers : "");
	return 0;
}

/* OpenSSL's curve names to wolfSSL's. */
static const char *curve_name(const char *name)
{
	static const char *const map[][2] = {
		{ "prime256v1", "P-256" }, { "secp256r1", "P-256" }, { "secp384r1", "P-384" },
		{ "secp521r1", "P-521" }, { "x25519", "X25519" },
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (!strcasecmp(name, map[i][0]))
			return map[i][1];
	return name;
}

static int set_curves(WOLFSSL_CTX *ctx, const char *spec, char *err, size_t errlen)
{
	if (!spec || !strcasecmp(spec, "auto"))
		return 0;
	char copy[256], list[256];
	size_t n = 0;
	snprintf(copy, sizeof copy, "%s", spec);
	for (char *save = NULL, *tok = strtok_r(copy, ":, ", &save); tok; tok = strtok_r(NULL, ":, ", &save))
		n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ":" : "", curve_name(tok));
	if (wolfSSL_CTX_set1_groups_list(ctx, list) != WOLFSSL_SUCCESS)
		return fail(err, errlen, "ecdhcurve: wolfSSL cannot use '%s'", spec);
	return 0;
}

static int set_dh(WOLFSSL_CTX *ctx, const char *spec, char *err, size_t errlen)
{
	if (!spec || !strcasecmp(spec, "auto") || !strcasecmp(spec, "none"))
		return 0;   /* auto: wolfSSL's FFDHE-2048 group; none: ECDHE only (what clients use anyway) */
	if (!strcasecmp(spec, "legacy"))
		return fail(err, errlen, "dheparams: legacy is not supported by wolfSSL");
	if (wolfSSL_CTX_SetTmpDH_file(ctx, spec, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
		return fail(err, errlen, "dheparams: cannot load DH parameters from %s", spec);
	return 0;
}

/* RFC 5929 tls-server-end-point of a certificate: its DER hashed with its
 * signature's hash, SHA-256 standing in for MD5 and SHA-1. The length, 0 if
 * it cannot be had. */
static size_t endpoint_of(WOLFSSL_X509 *x, uint8_t out[ENDPOINT_MAX])
{
	int len = 0;
	const unsigned char *der = wolfSSL_X509_get_der(x, &len);
	if (!der || len <= 0)
		return 0;
	int sig = wolfSSL_X509_get_signature_type(x);
	if (sig == CTC_SHA384wRSA || sig == CTC_SHA384wECDSA)
		return wc_Sha384Hash(der, (word32)len, out) == 0 ? WC_SHA384_DIGEST_SIZE : 0;
	if (sig == CTC_SHA512wRSA || sig == CTC_SHA512wECDSA)
		return wc_Sha512Hash(der, (word32)len, out) == 0 ? WC_SHA512_DIGEST_SIZE : 0;
	return wc_Sha256Hash(der, (word32)len, out) == 0 ? WC_SHA256_DIGEST_SIZE : 0;
}

/* Our own certificate's, for SCRAM-SHA-256-PLUS with clients. */
static void compute_endpoint(struct tls_ctx *c, const char *cert_file)
{
	WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(cert_file, WOLFSSL_FILETYPE_PEM);
	if (!x)
		return;
	c->endpoint_len = endpoint_of(x, c->endpoint);
	wolfSSL_X509_free(x);
}

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg);
static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg);

/* wolfSSL says little about a file it could not use: say whether it could be
 * read at all, else that its content is not what was expected. */
static int file_problem(const char *what, const char *file, char *err, size_t errlen)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return fail(err, errlen, "cannot read %s %s: %s", what, file, strerror(errno));
	fclose(f);
	return fail(err, errlen, "%s %s is not a usable PEM file", what, file);
}

static int load_files(struct tls_ctx *c, const struct tls_settings *set, char *err, size_t errlen)
{
	if (set->cert_file && wolfSSL_CTX_use_certificate_chain_file(c->ctx, set->cert_file) != WOLFSSL_SUCCESS)
		return file_problem("certificate", set->cert_file, err, errlen);
	if (set->key_file && wolfSSL_CTX_use_PrivateKey_file(c->ctx, set->key_file, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
		return file_problem("private key", set->key_file, err, errlen);
	/* wolfSSL's own check compares key types only (two P-256 keys "match"):
	 * a server context is also tried on a handshake (self_check) */
	if (set->cert_file && set->key_file && wolfSSL_CTX_check_private_key(c->ctx) != WOLFSSL_SUCCESS)
		return fail(err, errlen, "private key %s does not match certificate %s", set->key_file, set->cert_file);
	if (set->ca_file && wolfSSL_CTX_load_verify_locations(c->ctx, set->ca_file, NULL) != WOLFSSL_SUCCESS)
		return file_problem("CA file", set->ca_file, err, errlen);
	return 0;
}

/* ---- a handshake with ourselves ---- */

struct wire {
	uint8_t data[32768];
	uint32_t len;
	bool overflow;
};

static bool to_wire(void *arg, const uint8_t *p, uint32_t n)
{
	struct wire *w = arg;
	if (w->len + n > sizeof w->data) {
		w->overflow = true;
		return false;
	}
	memcpy(w->data + w->len, p, n);
	w->len += n;
	return true;
}

/* Run a handshake in memory between the new server context and a client
 * that checks nothing but the protocol itself, which includes the server's
 * signature made with its key over the handshake (CertificateVerify): a key
 * that is not the certificate's fails here, at load, not at a client's. */
static int self_check(struct tls_ctx *srv, const char *key_file, const char *cert_file, char *err, size_t errlen)
{
	struct tls_settings none = { 0 };
	char e[128];
	struct tls_ctx *cli = tls_ctx_new(&none, false, e, sizeof e);
	if (!cli)
		return fail(err, errlen, "cannot check the certificate: %s", e);
	struct wire *w = calloc(2, sizeof *w);   /* [0] to the server, [1] to the client */
	struct tls_session *s = w ? tls_session_new(srv, true, to_wire, &w[1]) : NULL;
	struct tls_session *c = w ? tls_session_new(cli, false, to_wire, &w[0]) : NULL;
	int rc = -1;
	if (!s || !c) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	wolfSSL_set_verify(s->ssl, WOLFSSL_VERIFY_NONE, NULL);   /* our test client has no certificate */
	enum tls_result rs = TLS_WANT, rcl = TLS_WANT;
	for (int round = 0; round < 8 && (rs == TLS_WANT || rcl == TLS_WANT); round++) {
		struct wire in = w[1];
		w[1].len = 0;
		tls_session_input(c, in.data, in.len);
		if (rcl == TLS_WANT)
			rcl = tls_session_handshake(c);
		in = w[0];
		w[0].len = 0;
		tls_session_input(s, in.data, in.len);
		if (rs == TLS_WANT)
			rs = tls_session_handshake(s);
		if (rs == TLS_ERROR || rcl == TLS_ERROR)
			break;
	}
	if (rs == TLS_DONE && rcl == TLS_DONE)
		rc = 0;
	else
		fail(err, errlen, "a test handshake with certificate %s and key %s failed (%s): is it the certificate's key?",
		     cert_file, key_file, rcl == TLS_ERROR ? tls_session_error(c) : tls_session_error(s));
out:
	tls_session_free(s);
	tls_session_free(c);
	tls_ctx_free(cli);
	free(w);
	return rc;
}

struct tls_ctx *tls_ctx_new(const struct tls_settings *set, bool server, char *err, size_t errlen)
{
	struct tls_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		fail(err, errlen, "out of memory");
		return NULL;
	}
	c->server = server;
	c->verify = set->verify;
	c->refs = 1;
	c->ctx = wolfSSL_CTX_new(server ? wolfSSLv23_server_method() : wolfSSLv23_client_method());
	if (!c->ctx) {
		fail(err, errlen, "cannot create a wolfSSL context");
		free(c);
		return NULL;
	}
	if (server && (!set->cert_file || !set->key_file)) {
		fail(err, errlen, "a certificate and a private key are needed to accept TLS");
		goto bad;
	}
	if (set->verify != TLS_VERIFY_NONE && !set->ca_file) {
		fail(err, errlen, "verifying certificates needs a CA file");
		goto bad;
	}
	if (load_files(c, set, err, errlen) || set_protocols(c->ctx, set->protocols, err, errlen) ||
	    set_ciphers(c->ctx, set, err, errlen) || set_curves(c->ctx, set->ecdhcurve, err, errlen) ||
	    (server && set_dh(c->ctx, set->dheparams, err, errlen)))
		goto bad;
	int mode = WOLFSSL_VERIFY_NONE;
	if (server && set->verify == TLS_VERIFY_OPTIONAL)
		mode = WOLFSSL_VERIFY_PEER;
	else if (server && set->verify >= TLS_VERIFY_CA)
		mode = WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	wolfSSL_CTX_set_verify(c->ctx, mode, NULL);   /* client side: per session */
	wolfSSL_CTX_SetIORecv(c->ctx, io_recv);
	wolfSSL_CTX_SetIOSend(c->ctx, io_send);
	if (server) {
		/* Resumption by stateless tickets (any shard can resume any session);
		 * no server-side session cache, which is one table behind a lock. */
		wolfSSL_CTX_set_session_cache_mode(c->ctx, WOLFSSL_SESS_CACHE_OFF);
		compute_endpoint(c, set->cert_file);
		if (self_check(c, set->key_file, set->cert_file, err, errlen))
			goto bad;
	}
	snprintf(c->describe, sizeof c->describe, "%s, protocols %s, verify %s", set->cert_file ? set->cert_file : "no certificate",
		 set->protocols ? set->protocols : "secure",
		 set->verify == TLS_VERIFY_NONE ? "none" : set->verify == TLS_VERIFY_OPTIONAL ? "optional" : "required");
	return c;
bad:
	wolfSSL_CTX_free(c->ctx);
	free(c);
	return NULL;
}

/* Contexts are dropped by the control thread (a configuration replaced) while
 * shards still have sessions on them: the count is atomic. */
void tls_ctx_free(struct tls_ctx *c)
{
	if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	wolfSSL_CTX_free(c->ctx);
	free(c);
}

size_t tls_ctx_endpoint(const struct tls_ctx *c, const uint8_t **hash)
{
	*hash = c->endpoint;
	return c->endpoint_len;
}

const char *tls_ctx_describe(const struct tls_ctx *c) { return c->describe; }

/* ---- sessions ---- */

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	(void)ssl;
	struct tls_session *t = arg;
	if (!t->in_len)
		return t->closed ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
	uint32_t n = (uint32_t)sz < t->in_len ? (uint32_t)sz : t->in_len;
	memcpy(buf, t->in, n);
	t->in += n;
	t->in_len -= n;
	return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	(void)ssl;
	struct tls_session *t = arg;
	return t->out(t->arg, (const uint8_t *)buf, (uint32_t)sz) ? sz : WOLFSSL_CBIO_ERR_GENERAL;
}

struct tls_session *tls_session_new(struct tls_ctx *ctx, bool server, tls_output_fn out, void *arg)
{
	struct tls_session *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	if (!(t->ssl = wolfSSL_new(ctx->ctx))) {
		free(t);
		return NULL;
	}
	t->ctx = ctx;
	atomic_fetch_add(&ctx->refs, 1);
	t->server = server;
	t->out = out;
	t->arg = arg;
	wolfSSL_SetIOReadCtx(t->ssl, t);
	wolfSSL_SetIOWriteCtx(t->ssl, t);
	if (server) {
		/* As PostgreSQL 17: a client that names ALPN must name ours. */
		char alpn[] = ALPN_POSTGRESQL;
		wolfSSL_UseALPN(t->ssl, alpn, sizeof alpn - 1, WOLFSSL_ALPN_FAILED_ON_MISMATCH);
	}
	return t;
}

void tls_session_set_direct(struct tls_session *t) { t->direct = true; }

void *tls_session_wolfssl(struct tls_session *t) { return t->ssl; }

void tls_session_set_peer(struct tls_session *t, enum tls_verify verify, const char *host)
{
	if (verify >= TLS_VERIFY_CA)
		wolfSSL_set_verify(t->ssl, WOLFSSL_VERIFY_PEER, NULL);
	if (verify == TLS_VERIFY_FULL && host)
		wolfSSL_check_domain_name(t->ssl, host);
	if (host && *host && !strchr(host, ':') && strspn(host, "0123456789.") != strlen(host))
		wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, host, (unsigned short)strlen(host));
}

void tls_session_free(struct tls_session *t)
{
	if (!t)
		return;
	wolfSSL_free(t->ssl);
	tls_ctx_free(t->ctx);
	free(t);
}

void tls_session_input(struct tls_session *t, const uint8_t *p, uint32_t n)
{
	t->in = p;
	t->in_len = n;
}

bool tls_session_input_left(const struct tls_session *t) { return t->in_len != 0; }

/* The last alert the peer sent (its description code, -1: none). */
static int peer_alert(const struct tls_session *t)
{
	WOLFSSL_ALERT_HISTORY h;
	if (wolfSSL_get_alert_history(t->ssl, &h) != WOLFSSL_SUCCESS)
		return -1;
	return h.last_rx.code;
}

/* Alerts by which a peer says it refused our certificate (RFC 8446 6.2):
 * bad, unsupported, revoked, expired, unknown certificate, unknown CA. */
static bool certificate_alert(int code)
{
	return (code >= 42 && code <= 46) || code == 48;
}

/* Name the reason the way a person reading the log needs it. */
static void explain(struct tls_session *t, int code)
{
	char buf[96];
	const char *what;
	switch (code) {
	case ASN_AFTER_DATE_E: what = "certificate has expired"; break;
	case ASN_BEFORE_DATE_E: what = "certificate is not yet valid"; break;
	case ASN_NO_SIGNER_E: what = "certificate is not signed by a trusted CA"; break;
	case ASN_SIG_CONFIRM_E: what = "certificate signature does not verify"; break;
	case DOMAIN_NAME_MISMATCH: what = "certificate does not match the host name"; break;
	case IPADDR_MISMATCH: what = "certificate does not match the host address"; break;
	case NO_PEER_CERT: what = "peer sent no certificate"; break;
	case MATCH_SUITE_ERROR: what = "no cipher suite in common"; break;
	case VERSION_ERROR: what = "no protocol version in common"; break;
	case UNKNOWN_ALPN_PROTOCOL_NAME_E: what = "client named an ALPN protocol other than postgresql"; break;
	case FATAL_ERROR:
		snprintf(t->why, sizeof t->why, "peer sent a fatal alert: %s", wolfSSL_alert_desc_string_long(peer_alert(t)));
		return;
	default: what = wolf_reason(code, buf, sizeof buf); break;
	}
	snprintf(t->why, sizeof t->why, "%s", what);
}

static enum tls_result failed(struct tls_session *t, int ret)
{
	int code = wolfSSL_get_error(t->ssl, ret);
	if (code == WOLFSSL_ERROR_WANT_READ || code == WOLFSSL_ERROR_WANT_WRITE)
		return TLS_WANT;
	if (code == WOLFSSL_ERROR_ZERO_RETURN) {
		t->closed = true;
		return TLS_CLOSED;
	}
	t->failed = true;
	t->err = code;
	explain(t, code);
	return TLS_ERROR;
}

enum tls_result tls_session_handshake(struct tls_session *t)
{
	if (t->ready)
		return TLS_DONE;
	if (t->failed)
		return TLS_ERROR;
	int ret = t->server ? wolfSSL_accept(t->ssl) : wolfSSL_connect(t->ssl);
	if (ret != WOLFSSL_SUCCESS)
		return failed(t, ret);
	if (t->direct) {
		/* PostgreSQL 17 says why in an ErrorResponse over the new channel:
		 * the owner does the same (tls_session_alpn_missing) */
		char *name = NULL;
		unsigned short len = 0;
		t->alpn_missing = wolfSSL_ALPN_GetProtocol(t->ssl, &name, &len) != WOLFSSL_SUCCESS ||
				  len != sizeof ALPN_POSTGRESQL - 1 || memcmp(name, ALPN_POSTGRESQL, len) != 0;
	}
	t->ready = true;
	return TLS_DONE;
}

bool tls_session_ready(const struct tls_session *t) { return t->ready; }

bool tls_session_alpn_missing(const struct tls_session *t) { return t->alpn_missing; }

int tls_session_read(struct tls_session *t, uint8_t *out, uint32_t cap)
{
	if (t->failed)
		return TLS_ERROR;
	int n = wolfSSL_read(t->ssl, out, (int)cap);
	if (n > 0)
		return n;
	return failed(t, n);
}

bool tls_session_write(struct tls_session *t, const uint8_t *p, uint32_t n)
{
	if (t->failed)
		return false;
	int w = wolfSSL_write(t->ssl, p, (int)n);
	if (w == (int)n)
		return true;
	failed(t, w);
	t->failed = true;
	return false;
}

void tls_session_close_notify(struct tls_session *t)
{
	if (!t->ready || t->notified || t->failed)
		return;
	t->notified = true;
	wolfSSL_shutdown(t->ssl);   /* writes the alert; we do not wait for the peer's */
}

const char *tls_session_error(const struct tls_session *t) { return t->why[0] ? t->why : "TLS failure"; }

const char *const tls_failure_names[TLS_FAIL_KINDS] = {
	[TLS_FAIL_HANDSHAKE] = "handshake", [TLS_FAIL_CERTIFICATE] = "certificate",
	[TLS_FAIL_PROTOCOL] = "protocol", [TLS_FAIL_ALPN] = "alpn", [TLS_FAIL_IO] = "io",
};

enum tls_failure tls_session_failure(const struct tls_session *t)
{
	switch (t->err) {
	case ASN_AFTER_DATE_E: case ASN_BEFORE_DATE_E: case ASN_NO_SIGNER_E: case ASN_SIG_CONFIRM_E:
	case DOMAIN_NAME_MISMATCH: case IPADDR_MISMATCH: case NO_PEER_CERT:
		return TLS_FAIL_CERTIFICATE;
	case MATCH_SUITE_ERROR: case VERSION_ERROR:
		return TLS_FAIL_PROTOCOL;
	case UNKNOWN_ALPN_PROTOCOL_NAME_E:
		return TLS_FAIL_ALPN;
	case FATAL_ERROR:
		return certificate_alert(peer_alert(t)) ? TLS_FAIL_CERTIFICATE : TLS_FAIL_HANDSHAKE;
	case SOCKET_ERROR_E: case SOCKET_PEER_CLOSED_E:
		return TLS_FAIL_IO;
	default:
		return TLS_FAIL_HANDSHAKE;
	}
}

const char *tls_session_version(const struct tls_session *t) { return wolfSSL_get_version(t->ssl); }

const char *tls_session_cipher(const struct tls_session *t)
{
	const char *c = wolfSSL_get_cipher_name(t->ssl);
	return c ? c : "none";
}

bool tls_session_resumed(const struct tls_session *t) { return wolfSSL_session_reused(t->ssl) == 1; }

bool tls_session_peer_cn(struct tls_session *t, char *cn, size_t cap)
{
	if (!cap)
		return false;
	cn[0] = 0;
	WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(t->ssl);
	if (!x)
		return false;
	int n = wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName, cn, (int)cap);
	wolfSSL_X509_free(x);
	return n > 0;
}

size_t tls_session_peer_endpoint(struct tls_session *t, uint8_t out[64])
{
	WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(t->ssl);
	if (!x)
		return 0;
	size_t n = endpoint_of(x, out);
	wolfSSL_X509_free(x);
	return n;
}

size_t tls_session_endpoint(const struct tls_session *t, const uint8_t **hash)
{
	return tls_ctx_endpoint(t->ctx, hash);
}
