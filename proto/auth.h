/* proto/auth.h: password authentication exchanges, both sides: MD5 and
 * SCRAM-SHA-256 (RFC 5802/7677), with SCRAM-SHA-256-PLUS channel binding
 * (tls-server-end-point, RFC 5929), as PostgreSQL speaks them, on wolfCrypt
 * primitives. Pure functions over caller memory; nothing here does I/O. */
#ifndef PGRING_AUTH_H
#define PGRING_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_SCRAM_KEY_LEN 32
#define AUTH_SCRAM_MAX_SALT 64
#define AUTH_SCRAM_NONCE_LEN 24     /* random bytes before base64 */
#define AUTH_SCRAM_DEFAULT_ITER 4096
#define AUTH_MD5_LEN 35             /* "md5" + 32 hex digits */
/* tls-server-end-point data is a certificate hash: SHA-256, -384 or -512 by the
 * certificate's signature algorithm (RFC 5929 section 4.1), so at most 64 bytes. */
#define AUTH_SCRAM_MAX_CBIND 64

/* SASL mechanism names, as AuthenticationSASL lists them and SASLInitialResponse names one. */
#define AUTH_SCRAM_MECH "SCRAM-SHA-256"
#define AUTH_SCRAM_PLUS_MECH "SCRAM-SHA-256-PLUS"

/* ---- MD5 ---- */

/* out = "md5" + hex(md5(password || user)), NUL-terminated (36 bytes). */
void auth_md5_secret(const char *password, const char *user, char out[AUTH_MD5_LEN + 1]);
/* True if s looks like an md5 secret ("md5" + 32 lowercase hex). */
bool auth_is_md5_secret(const char *s);
/* The client's reply to AuthenticationMD5Password: "md5" + hex(md5(hex(inner) || salt)),
 * where inner comes from `secret`: an md5 secret is used as is, anything else is
 * taken as a plain password and hashed with `user` first. */
void auth_md5_response(const char *secret, const char *user, const uint8_t salt[4],
		       char out[AUTH_MD5_LEN + 1]);
/* Checks a client's MD5 reply against the stored secret (plain or md5). Constant time. */
bool auth_md5_verify(const char *secret, const char *user, const uint8_t salt[4],
		     const char *response);

/* ---- SCRAM-SHA-256 ---- */

struct auth_scram_secret {
	int iterations;
	uint8_t salt[AUTH_SCRAM_MAX_SALT];
	int salt_len;
	uint8_t stored_key[AUTH_SCRAM_KEY_LEN];
	uint8_t server_key[AUTH_SCRAM_KEY_LEN];
};

/* True if s looks like "SCRAM-SHA-256$..." */
bool auth_is_scram_secret(const char *s);
/* Parse "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>". 0 or -1. */
int auth_scram_parse_secret(const char *s, struct auth_scram_secret *out);
/* A salt for a user with a plain password: fixed per thread, keyed by random bytes. 0 or -1. */
int auth_scram_user_salt(const char *user, uint8_t *salt, int salt_len);
/* Derive a secret from a plain password (SASLprep is applied as PostgreSQL does
 * for ASCII; non-ASCII passwords are used as raw bytes, which PostgreSQL also
 * falls back to). The derivation is cached per thread. 0 or -1. */
int auth_scram_secret_from_password(const char *password, const uint8_t *salt, int salt_len,
				    int iterations, struct auth_scram_secret *out);
/* Format a secret back into PostgreSQL's text form. Returns length or -1. */
int auth_scram_format_secret(const struct auth_scram_secret *s, char *out, size_t cap);

/* Server side (pgring authenticating a client).
 *
 * The steps: auth_scram_server_init (or _init_cbind), auth_scram_server_mechanism
 * with the name from SASLInitialResponse, auth_scram_server_first with its data,
 * auth_scram_server_final with the SASLResponse data. A failed step leaves the
 * exchange failed (every later call fails too) and says why in error, detail and
 * sqlstate, which map onto an ErrorResponse's M, D and C fields:
 *   "28P01"  the proof does not match: wrong password (or unknown user);
 *   "28000"  channel binding refused: "SCRAM channel binding negotiation error"
 *            (a downgrade, see _init_cbind) or "SCRAM channel binding check failed";
 *   "08P01"  anything else: a malformed or inconsistent message, an invalid mechanism.
 * For the channel-binding refusals error and detail are PostgreSQL's own errmsg and
 * errdetail (auth-scram.c); detail is "" when there is none. */
struct auth_scram_server {
	int state;                          /* internal */
	struct auth_scram_secret secret;
	uint8_t cbind_data[AUTH_SCRAM_MAX_CBIND]; /* tls-server-end-point hash, if any */
	size_t cbind_len;                   /* 0: no channel binding, PLUS not offered */
	bool plus;                          /* the client selected SCRAM-SHA-256-PLUS */
	char client_nonce[128];
	char server_nonce[64];
	char client_first_bare[512];
	char server_first[512];
	uint8_t client_key[AUTH_SCRAM_KEY_LEN]; /* recovered from the client's proof */
	bool have_client_key;
	char error[128];                    /* why the last call failed */
	char detail[192];                   /* more about it, or "" */
	char sqlstate[6];                   /* its SQLSTATE (see above), or "" */
};

/* Start without channel binding: secret must be set. Returns 0 or -1. The same as
 * auth_scram_server_init_cbind(s, secret, NULL, 0). */
int auth_scram_server_init(struct auth_scram_server *s, const struct auth_scram_secret *secret);
/* Start with channel-binding data: cbind_data is the tls-server-end-point hash of
 * the certificate this TLS connection presented to the client (the DER certificate
 * hashed with its signature's hash, SHA-256 for MD5 and SHA-1; RFC 5929 4.1), 1 to
 * AUTH_SCRAM_MAX_CBIND bytes, copied. Pass it exactly when the AuthenticationSASL
 * sent offers SCRAM-SHA-256-PLUS (proto_auth_sasl_mechanisms_plus(o, true)); its
 * presence is what "the server offered PLUS" means here:
 *  - the client may then select SCRAM-SHA-256-PLUS and must send gs2 header
 *    "p=tls-server-end-point,," and c=base64(that header + cbind_data);
 *  - a client sending 'y' ("I could bind, but the server cannot") is refused as
 *    a downgrade, as PostgreSQL does under TLS.
 * cbind_data NULL (cbind_len then ignored) means no channel binding: no TLS, or
 * PLUS not offered. Returns 0, or -1 for an invalid secret or cbind_len. */
int auth_scram_server_init_cbind(struct auth_scram_server *s, const struct auth_scram_secret *secret,
				 const uint8_t *cbind_data, size_t cbind_len);
/* The mechanism the client selected in SASLInitialResponse, between init and
 * auth_scram_server_first (not calling it means AUTH_SCRAM_MECH). Returns 0 for
 * AUTH_SCRAM_MECH, and for AUTH_SCRAM_PLUS_MECH when init got channel-binding data;
 * anything else fails with "client selected an invalid SASL authentication
 * mechanism" (08P01). The gs2 header of the client-first-message must then agree:
 * with PLUS only 'p', without it only 'n' or 'y' (PostgreSQL's "malformed SCRAM
 * message" with a detail saying which way it disagrees). */
int auth_scram_server_mechanism(struct auth_scram_server *s, const char *mechanism);
/* Handle the SASLInitialResponse data (client-first-message, e.g. "n,,n=,r=...").
 * Writes the server-first-message into out; returns its length or -1. */
int auth_scram_server_first(struct auth_scram_server *s, const char *msg, size_t len,
			    char *out, size_t cap);
/* Handle the SASLResponse data (client-final-message). Checks c= (the gs2 header
 * again, plus the binding data under PLUS), then the proof; on success writes the
 * server-final-message ("v=...") into out, fills client_key and returns its length;
 * on a bad proof or malformed message returns -1. */
int auth_scram_server_final(struct auth_scram_server *s, const char *msg, size_t len,
			    char *out, size_t cap);

/* Client side (pgring authenticating to a server). Either a plain password, or
 * (client_key, secret) recovered from a client's SCRAM login, which works only when
 * the server's salt and iteration count equal the secret's (PgBouncer's trick). */
struct auth_scram_client {
	int state;
	const char *password;               /* may be NULL */
	const uint8_t *client_key;          /* used when password is NULL */
	const struct auth_scram_secret *secret; /* with client_key */
	char cbind_flag;                    /* 0 or 'n', 'y' or 'p': see _channel_binding */
	uint8_t cbind_data[AUTH_SCRAM_MAX_CBIND];
	size_t cbind_len;
	char client_nonce[64];
	char client_first_bare[256];
	char auth_message[1024];
	uint8_t server_key[AUTH_SCRAM_KEY_LEN];
	/* The most iterations a server may ask for when the keys are derived from
	 * the password (each costs PBKDF2 time on the caller's thread); 0: no
	 * limit. Set after auth_scram_client_init. More fails
	 * auth_scram_client_final with over_limit set. */
	int max_iterations;
	bool over_limit;
	char error[128];
};

int auth_scram_client_init(struct auth_scram_client *c, const char *password,
			   const uint8_t *client_key, const struct auth_scram_secret *secret);
/* Channel binding for this login, between init and auth_scram_client_first:
 * 'n' (the default: none), 'y' (the client could bind but the server offered no
 * SCRAM-SHA-256-PLUS) or 'p' (the caller selected SCRAM-SHA-256-PLUS; data is the
 * tls-server-end-point hash of the server's certificate, 1 to AUTH_SCRAM_MAX_CBIND
 * bytes, copied; data is ignored for 'n' and 'y'). 0, or -1 for anything else. */
int auth_scram_client_channel_binding(struct auth_scram_client *c, char flag,
				      const uint8_t *data, size_t len);
/* client-first-message ("n,,n=,r=<nonce>", or with the gs2 header chosen above).
 * Returns length or -1. */
int auth_scram_client_first(struct auth_scram_client *c, char *out, size_t cap);
/* Given server-first-message, produce client-final-message. Length or -1. */
int auth_scram_client_final(struct auth_scram_client *c, const char *msg, size_t len,
			    char *out, size_t cap);
/* Verify the server-final-message ("v=..."). 0 ok, -1 bad. */
int auth_scram_client_verify(struct auth_scram_client *c, const char *msg, size_t len);

/* Helpers shared with tests. */
int auth_base64_encode(const uint8_t *in, size_t len, char *out, size_t cap); /* length or -1 */
int auth_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap);  /* length or -1 */
/* Fill buf with n bytes from the kernel CSPRNG (getrandom; small requests from a
 * per-thread block of it). 0 or -1. */
int auth_random(void *buf, size_t n);

#endif
