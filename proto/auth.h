/* proto/auth.h: password authentication exchanges, both sides: MD5 and
 * SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL speaks them, on wolfCrypt primitives.
 * Pure functions over caller memory; nothing here does I/O. */
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

/* Server side (pgring authenticating a client). */
struct auth_scram_server {
	int state;                          /* internal */
	struct auth_scram_secret secret;
	char client_nonce[128];
	char server_nonce[64];
	char client_first_bare[512];
	char server_first[512];
	uint8_t client_key[AUTH_SCRAM_KEY_LEN]; /* recovered from the client's proof */
	bool have_client_key;
	char error[128];                    /* why the last call failed */
};

/* Start: secret must be set. Returns 0 or -1. */
int auth_scram_server_init(struct auth_scram_server *s, const struct auth_scram_secret *secret);
/* Handle the SASLInitialResponse data (client-first-message, e.g. "n,,n=,r=...").
 * Writes the server-first-message into out; returns its length or -1. */
int auth_scram_server_first(struct auth_scram_server *s, const char *msg, size_t len,
			    char *out, size_t cap);
/* Handle the SASLResponse data (client-final-message). Verifies the proof; on
 * success writes the server-final-message ("v=...") into out, fills client_key and
 * returns its length; on a bad proof or malformed message returns -1. */
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
	char client_nonce[64];
	char client_first_bare[256];
	char auth_message[1024];
	uint8_t server_key[AUTH_SCRAM_KEY_LEN];
	char error[128];
};

int auth_scram_client_init(struct auth_scram_client *c, const char *password,
			   const uint8_t *client_key, const struct auth_scram_secret *secret);
/* client-first-message ("n,,n=,r=<nonce>"). Returns length or -1. */
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
