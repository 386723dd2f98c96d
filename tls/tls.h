/* tls/tls.h: wolfSSL glue. A tls_ctx is one side's settings (certificates,
 * protocols, ciphers, what to verify), built once per loaded configuration; a
 * tls_session is one connection's TLS state. A session does no I/O: the
 * connection gives it the ciphertext the ring received (tls_session_input) and
 * takes the records it writes through the output callback, so the ring still
 * does every read and write. It sits below core: it knows no connection,
 * shard or configuration file. */
#ifndef PGRING_TLS_H
#define PGRING_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_ctx;
struct tls_session;

/* What to verify of the peer; PgBouncer's sslmode names, libpq's meanings. */
enum tls_verify {
	TLS_VERIFY_NONE = 0,   /* encrypt, check nothing (require, prefer, allow) */
	TLS_VERIFY_OPTIONAL,   /* server side: ask for a certificate, check it when given */
	TLS_VERIFY_CA,         /* the peer's certificate must chain to the CA file */
	TLS_VERIFY_FULL,       /* and (client side) name the host we connected to */
};

/* One side's settings, as the configuration spells them (NULL: the default). */
struct tls_settings {
	const char *key_file, *cert_file, *ca_file;
	const char *protocols;     /* "secure" (tlsv1.2,tlsv1.3), "all", "legacy", or a list */
	const char *ciphers;       /* "default", "secure", "fast", "normal", "all", or a cipher list */
	const char *tls13_ciphers; /* TLS 1.3 suites, OpenSSL (TLS_AES_128_GCM_SHA256) or wolfSSL names */
	const char *dheparams;     /* "auto", "none" or a PEM file */
	const char *ecdhcurve;     /* "auto" or a list of curve names */
	enum tls_verify verify;    /* server side: TLS_VERIFY_NONE, OPTIONAL or CA */
};

/* Once per process, before any other call. */
void tls_init(void);

/* A context for accepting (server) or making (client) TLS connections. NULL
 * with the reason in err (naming the file or setting) when a file cannot be
 * read, the key does not match the certificate, or a setting is not
 * something this build of wolfSSL can do. */
struct tls_ctx *tls_ctx_new(const struct tls_settings *set, bool server, char *err, size_t errlen);
/* Sessions hold their own reference: a context may be freed while they live. */
void tls_ctx_free(struct tls_ctx *ctx);
/* Server side: our certificate's tls-server-end-point hash (RFC 5929: the DER
 * hashed with the certificate's signature hash, SHA-256 for MD5 and SHA-1).
 * Returns its length (0: none). */
size_t tls_ctx_endpoint(const struct tls_ctx *ctx, const uint8_t **hash);
/* A short line on what the context offers, for the start-up log. */
const char *tls_ctx_describe(const struct tls_ctx *ctx);

/* Write n ciphertext bytes for the socket; false: no memory (the session fails). */
typedef bool (*tls_output_fn)(void *arg, const uint8_t *p, uint32_t n);

/* A session on ctx. Server side: direct says the client began with a TLS
 * ClientHello instead of SSLRequest (PostgreSQL 17), which then must name ALPN
 * "postgresql" (a client naming another protocol fails the handshake). Client side: host is what verify-full checks the certificate
 * against, and is sent as SNI when it is a name. NULL: no memory. */
struct tls_session *tls_session_new(struct tls_ctx *ctx, bool server, tls_output_fn out, void *arg);
void tls_session_set_direct(struct tls_session *t);
void tls_session_set_peer(struct tls_session *t, enum tls_verify verify, const char *host);
void tls_session_free(struct tls_session *t);
/* The WOLFSSL object underneath (tests set client options through it). */
void *tls_session_wolfssl(struct tls_session *t);

/* Received ciphertext for the next handshake/read calls. It is copied in by
 * those calls as wolfSSL asks for it; whatever they leave is still unread and
 * must be given again (it never is: callers read until TLS_WANT). */
void tls_session_input(struct tls_session *t, const uint8_t *p, uint32_t n);
bool tls_session_input_left(const struct tls_session *t);

enum tls_result {
	TLS_DONE = 1,      /* handshake complete */
	TLS_WANT = 0,      /* needs more input */
	TLS_CLOSED = -1,   /* the peer sent close_notify */
	TLS_ERROR = -2,    /* failed: tls_session_error says why */
};

/* Advance the handshake with the input given. Output goes to the callback. */
enum tls_result tls_session_handshake(struct tls_session *t);
bool tls_session_ready(const struct tls_session *t);
/* A direct session (tls_session_set_direct) whose client named no ALPN
 * "postgresql": the handshake is done, the connection must be refused. */
bool tls_session_alpn_missing(const struct tls_session *t);
/* Plaintext into out (at most cap bytes): >0 bytes, or a tls_result. */
int tls_session_read(struct tls_session *t, uint8_t *out, uint32_t cap);
/* Encrypt n plaintext bytes into records (output callback). false: failed. */
bool tls_session_write(struct tls_session *t, const uint8_t *p, uint32_t n);
/* Queue close_notify (once; only after the handshake). */
void tls_session_close_notify(struct tls_session *t);

/* Why the session failed: a short text naming the reason (certificate
 * expired, not signed by the CA, wrong host, handshake failure, ...). */
const char *tls_session_error(const struct tls_session *t);
/* Why handshakes fail, in buckets for metrics. */
enum tls_failure {
	TLS_FAIL_HANDSHAKE = 0,   /* anything else: bad messages, alerts */
	TLS_FAIL_CERTIFICATE,     /* expired, untrusted, wrong host, missing; or the peer refused ours */
	TLS_FAIL_PROTOCOL,        /* no version or cipher suite in common */
	TLS_FAIL_ALPN,            /* direct TLS without ALPN "postgresql", or another protocol named */
	TLS_FAIL_IO,              /* the connection broke or sent garbage before TLS */
	TLS_FAIL_KINDS
};
extern const char *const tls_failure_names[TLS_FAIL_KINDS];
enum tls_failure tls_session_failure(const struct tls_session *t);
const char *tls_session_version(const struct tls_session *t);   /* "TLSv1.3" */
const char *tls_session_cipher(const struct tls_session *t);
bool tls_session_resumed(const struct tls_session *t);
/* Did the peer present a certificate that verified? Its subject CN into
 * cn (NUL-terminated); false when there is none. */
bool tls_session_peer_cn(struct tls_session *t, char *cn, size_t cap);
/* Client side: the server's certificate's tls-server-end-point hash into out
 * (SCRAM-SHA-256-PLUS towards servers). Its length, 0 when there is none. */
size_t tls_session_peer_endpoint(struct tls_session *t, uint8_t out[64]);
/* The context's tls-server-end-point hash (server side). */
size_t tls_session_endpoint(const struct tls_session *t, const uint8_t **hash);

#endif
