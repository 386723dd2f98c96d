/* proto/auth.c: MD5 and SCRAM-SHA-256(-PLUS) exchanges as PostgreSQL speaks them,
 * for both the verifying (server) and the logging-in (client) side, plus the secret
 * formats of pg_authid.rolpassword. Messages are parsed strictly and every copy is
 * bounded. */
#include "proto/auth.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/md5.h>
#include <wolfssl/wolfcrypt/pwdbased.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define SCRAM_PREFIX "SCRAM-SHA-256$"
/* Longest SCRAM message we accept; larger ones cannot fit the state buffers anyway. */
#define SCRAM_MAX_MSG 1024

/* Exchange states; 0 (a zeroed struct) means "not initialized". */
enum {
	SRV_AWAIT_FIRST = 1,
	SRV_AWAIT_FINAL_N,      /* client sent gs2 flag 'n' */
	SRV_AWAIT_FINAL_Y,      /* client sent gs2 flag 'y' */
	SRV_AWAIT_FINAL_P,      /* client sent "p=tls-server-end-point" */
	SRV_DONE,
	SRV_FAILED,
};
enum {
	CLI_READY = 1,
	CLI_SENT_FIRST,
	CLI_SENT_FINAL,
	CLI_DONE,
	CLI_FAILED,
};

/* ---- small helpers ---- */

/* Records why a step failed; returns -1 so parsers can "return set_error(...)". */
static int set_error(char err[128], const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_error(char err[128], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, 128, fmt, ap);
	va_end(ap);
	return -1;
}

/* Runs over every byte whatever the contents, so timing says nothing about where a
 * proof or secret first differs. */
static bool ct_equal(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Copies the result into a caller buffer, NUL-terminated; length or -1. */
static int emit(const char *msg, size_t len, char *out, size_t cap)
{
	if (len >= cap || len > INT_MAX)
		return -1;
	memcpy(out, msg, len);
	out[len] = '\0';
	return (int)len;
}

static int random_fill(uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Salts and cancel keys are a few bytes each, three per login: they come from a
 * per-thread block of getrandom() output, so a login costs no random syscall of
 * its own. Bytes are handed out once and wiped as they go. */
#define RANDOM_BLOCK 512
int auth_random(void *buf, size_t n)
{
	static _Thread_local uint8_t block[RANDOM_BLOCK];
	static _Thread_local size_t left;

	if (n > RANDOM_BLOCK / 8)
		return random_fill(buf, n);
	if (left < n) {
		if (random_fill(block, sizeof block) != 0)
			return -1;
		left = sizeof block;
	}
	uint8_t *src = block + (sizeof block - left);
	memcpy(buf, src, n);
	memset(src, 0, n);
	left -= n;
	return 0;
}

/* ---- base64 (RFC 4648 with padding, as SCRAM and pg_authid use) ---- */

static const char b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int auth_base64_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return -1;
	size_t need = (len + 2) / 3 * 4;
	if (need >= cap)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = b64_chars[(v >> 18) & 63];
		out[o++] = b64_chars[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64_chars[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? b64_chars[v & 63] : '=';
	}
	out[o] = '\0';
	return (int)o;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict: whole quads only, '=' only as the last one or two characters, and unused
 * bits before the padding must be zero, so every byte string has one encoding. */
int auth_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
	if (len % 4 != 0 || len / 4 * 3 > (size_t)INT_MAX)
		return -1;
	size_t pad = 0;
	if (len > 0 && in[len - 1] == '=')
		pad = (len > 1 && in[len - 2] == '=') ? 2 : 1;
	size_t outlen = len / 4 * 3 - pad;
	if (outlen > cap)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v = 0;
		for (size_t j = 0; j < 4; j++) {
			int d = (i + j >= len - pad) ? 0 : b64_value(in[i + j]);
			if (d < 0)
				return -1;
			v = v << 6 | (uint32_t)d;
		}
		if (i + 4 == len && (v & (pad == 2 ? 0xffff : pad == 1 ? 0xff : 0)) != 0)
			return -1;
		uint8_t bytes[3] = { (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
		for (size_t j = 0; j < 3 && o < outlen; j++)
			out[o++] = bytes[j];
	}
	return (int)o;
}

/* ---- MD5 ---- */

static void md5_hex2(const void *a, size_t alen, const void *b, size_t blen, char out[33])
{
	wc_Md5 md5;
	uint8_t digest[WC_MD5_DIGEST_SIZE];

	wc_InitMd5(&md5);
	wc_Md5Update(&md5, a, (word32)alen);
	wc_Md5Update(&md5, b, (word32)blen);
	wc_Md5Final(&md5, digest);
	wc_Md5Free(&md5);
	hex_encode(digest, sizeof(digest), out);
	explicit_bzero(digest, sizeof(digest));
}

void auth_md5_secret(const char *password, const char *user, char out[AUTH_MD5_LEN + 1])
{
	if (!password)
		password = "";
	if (!user)
		user = "";
	memcpy(out, "md5", 3);
	md5_hex2(password, strlen(password), user, strlen(user), out + 3);
}

bool auth_is_md5_secret(const char *s)
{
	if (!s || strncmp(s, "md5", 3) != 0 || strlen(s) != AUTH_MD5_LEN)
		return false;
	for (const char *p = s + 3; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

void auth_md5_response(const char *secret, const char *user, const uint8_t salt[4],
		       char out[AUTH_MD5_LEN + 1])
{
	char inner[AUTH_MD5_LEN + 1];

	if (auth_is_md5_secret(secret))
		memcpy(inner, secret, sizeof(inner));
	else
		auth_md5_secret(secret, user, inner);
	memcpy(out, "md5", 3);
	md5_hex2(inner + 3, 32, salt, 4, out + 3);
	explicit_bzero(inner, sizeof(inner));
}

/* A SCRAM secret is refused rather than taken as a plain password: its text is not
 * the password, and accepting it would let anyone who read the auth file log in. */
bool auth_md5_verify(const char *secret, const char *user, const uint8_t salt[4],
		     const char *response)
{
	char expect[AUTH_MD5_LEN + 1];

	if (!secret || !user || !response || auth_is_scram_secret(secret))
		return false;
	if (strlen(response) != AUTH_MD5_LEN)
		return false;
	auth_md5_response(secret, user, salt, expect);
	bool ok = ct_equal(expect, response, AUTH_MD5_LEN);
	explicit_bzero(expect, sizeof(expect));
	return ok;
}

/* ---- SCRAM primitives ---- */

struct chunk {
	const void *p;
	size_t n;
};

static int hmac_sha256(const uint8_t *key, size_t keylen, const struct chunk *parts,
		       size_t nparts, uint8_t out[AUTH_SCRAM_KEY_LEN])
{
	Hmac h;
	int rc = -1;

	if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0)
		return -1;
	if (wc_HmacSetKey(&h, WC_SHA256, key, (word32)keylen) != 0)
		goto out;
	for (size_t i = 0; i < nparts; i++)
		if (wc_HmacUpdate(&h, parts[i].p, (word32)parts[i].n) != 0)
			goto out;
	if (wc_HmacFinal(&h, out) != 0)
		goto out;
	rc = 0;
out:
	wc_HmacFree(&h);
	explicit_bzero(&h, sizeof(h));
	return rc;
}

static int hmac_str(const uint8_t key[AUTH_SCRAM_KEY_LEN], const char *s,
		    uint8_t out[AUTH_SCRAM_KEY_LEN])
{
	struct chunk c = { s, strlen(s) };

	return hmac_sha256(key, AUTH_SCRAM_KEY_LEN, &c, 1, out);
}

static int sha256(const uint8_t in[AUTH_SCRAM_KEY_LEN], uint8_t out[AUTH_SCRAM_KEY_LEN])
{
	return wc_Sha256Hash(in, AUTH_SCRAM_KEY_LEN, out) == 0 ? 0 : -1;
}

/* SASLprep (RFC 4013) as PostgreSQL applies it to passwords: pure ASCII is used as is,
 * and whenever SASLprep fails PostgreSQL falls back to the raw bytes. We do not carry
 * Unicode tables, so non-ASCII passwords are always used as raw bytes. That matches
 * PostgreSQL unless normalization would change the password (NFKC-unstable characters,
 * non-ASCII spaces, soft hyphens and the like); such passwords will not interoperate. */
static const char *scram_prepare_password(const char *password)
{
	return password;
}

/* PBKDF2 with 4096 iterations is ~56M instructions (callgrind), and a shard
 * would stall that long for every SCRAM login to a server, or of a client whose
 * password is plain in auth_file. The salt and iteration count of a role stay the
 * same, so each shard thread keeps the derived keys of its last few (password,
 * salt, iterations), the password known only by its SHA-256. */
#define KEY_CACHE_SIZE 16
struct scram_key_entry {
	bool used;
	int salt_len, iterations;
	uint8_t password_hash[AUTH_SCRAM_KEY_LEN];
	uint8_t salt[AUTH_SCRAM_MAX_SALT];
	uint8_t client_key[AUTH_SCRAM_KEY_LEN], stored_key[AUTH_SCRAM_KEY_LEN];
	uint8_t server_key[AUTH_SCRAM_KEY_LEN];
};
static _Thread_local struct scram_key_entry key_cache[KEY_CACHE_SIZE];
static _Thread_local unsigned key_cache_next;

static struct scram_key_entry *key_cache_find(const uint8_t *password_hash, const uint8_t *salt,
					       int salt_len, int iterations)
{
	for (int i = 0; i < KEY_CACHE_SIZE; i++) {
		struct scram_key_entry *e = &key_cache[i];
		if (e->used && e->iterations == iterations && e->salt_len == salt_len &&
		    memcmp(e->salt, salt, (size_t)salt_len) == 0 &&
		    ct_equal(e->password_hash, password_hash, AUTH_SCRAM_KEY_LEN))
			return e;
	}
	return NULL;
}

/* SaltedPassword -> ClientKey, StoredKey, ServerKey (RFC 5802 section 3). */
static int scram_keys_from_password(const char *password, const uint8_t *salt, int salt_len,
				    int iterations, uint8_t client_key[AUTH_SCRAM_KEY_LEN],
				    uint8_t stored_key[AUTH_SCRAM_KEY_LEN],
				    uint8_t server_key[AUTH_SCRAM_KEY_LEN])
{
	const char *prepared = scram_prepare_password(password);
	size_t plen = strlen(prepared);
	uint8_t salted[AUTH_SCRAM_KEY_LEN], password_hash[AUTH_SCRAM_KEY_LEN];
	int rc = -1;

	if (plen > INT_MAX || salt_len <= 0 || salt_len > AUTH_SCRAM_MAX_SALT || iterations <= 0)
		return -1;
	if (wc_Sha256Hash((const byte *)prepared, (word32)plen, password_hash) != 0)
		return -1;
	struct scram_key_entry *e = key_cache_find(password_hash, salt, salt_len, iterations);
	if (!e) {   /* derive into the next slot, which counts only once complete */
		e = &key_cache[key_cache_next++ % KEY_CACHE_SIZE];
		*e = (struct scram_key_entry){ .salt_len = salt_len, .iterations = iterations };
		if (wc_PBKDF2(salted, (const byte *)prepared, (int)plen, salt, salt_len, iterations,
			      AUTH_SCRAM_KEY_LEN, WC_SHA256) != 0 ||
		    hmac_str(salted, "Client Key", e->client_key) != 0 ||
		    sha256(e->client_key, e->stored_key) != 0 ||
		    hmac_str(salted, "Server Key", e->server_key) != 0) {
			explicit_bzero(e, sizeof *e);
			goto out;
		}
		memcpy(e->password_hash, password_hash, AUTH_SCRAM_KEY_LEN);
		memcpy(e->salt, salt, (size_t)salt_len);
		e->used = true;
	}
	memcpy(client_key, e->client_key, AUTH_SCRAM_KEY_LEN);
	memcpy(stored_key, e->stored_key, AUTH_SCRAM_KEY_LEN);
	memcpy(server_key, e->server_key, AUTH_SCRAM_KEY_LEN);
	rc = 0;
out:
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(password_hash, sizeof(password_hash));
	return rc;
}

/* A salt for a user whose password is plain in auth_file: the same for the
 * thread's lifetime (so its keys are derived once), unpredictable from outside
 * (keyed by random bytes drawn once per thread), different per user. */
int auth_scram_user_salt(const char *user, uint8_t *salt, int salt_len)
{
	static _Thread_local uint8_t key[AUTH_SCRAM_KEY_LEN];
	static _Thread_local bool have_key;
	uint8_t mac[AUTH_SCRAM_KEY_LEN];

	if (salt_len <= 0 || salt_len > AUTH_SCRAM_KEY_LEN)
		return -1;
	if (!have_key) {
		if (auth_random(key, sizeof key) != 0)
			return -1;
		have_key = true;
	}
	struct chunk c = { user, strlen(user) };
	if (hmac_sha256(key, sizeof key, &c, 1, mac) != 0)
		return -1;
	memcpy(salt, mac, (size_t)salt_len);
	explicit_bzero(mac, sizeof mac);
	return 0;
}

/* ---- secrets ---- */

bool auth_is_scram_secret(const char *s)
{
	return s && strncmp(s, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) == 0;
}

/* Decimal 1..INT_MAX with nothing else around it. */
static int parse_iterations(const char *s, size_t n)
{
	long long v = 0;

	if (n == 0 || n > 10)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return (v >= 1 && v <= INT_MAX) ? (int)v : -1;
}

static int decode_key(const char *s, size_t n, uint8_t key[AUTH_SCRAM_KEY_LEN])
{
	return auth_base64_decode(s, n, key, AUTH_SCRAM_KEY_LEN) == AUTH_SCRAM_KEY_LEN ? 0 : -1;
}

static int parse_secret_fields(const char *s, struct auth_scram_secret *out)
{
	const char *iter = s + strlen(SCRAM_PREFIX);
	const char *salt = strchr(iter, ':');
	const char *stored = salt ? strchr(salt + 1, '$') : NULL;
	const char *server = stored ? strchr(stored + 1, ':') : NULL;

	if (!server)
		return -1;
	salt++, stored++, server++;
	out->iterations = parse_iterations(iter, (size_t)(salt - 1 - iter));
	if (out->iterations < 0)
		return -1;
	out->salt_len = auth_base64_decode(salt, (size_t)(stored - 1 - salt), out->salt,
					   sizeof(out->salt));
	if (out->salt_len <= 0)
		return -1;
	if (decode_key(stored, (size_t)(server - 1 - stored), out->stored_key) != 0)
		return -1;
	return decode_key(server, strlen(server), out->server_key);
}

int auth_scram_parse_secret(const char *s, struct auth_scram_secret *out)
{
	memset(out, 0, sizeof(*out));
	if (!auth_is_scram_secret(s))
		return -1;
	if (parse_secret_fields(s, out) != 0) {
		explicit_bzero(out, sizeof(*out));
		return -1;
	}
	return 0;
}

int auth_scram_secret_from_password(const char *password, const uint8_t *salt, int salt_len,
				    int iterations, struct auth_scram_secret *out)
{
	uint8_t client_key[AUTH_SCRAM_KEY_LEN];

	memset(out, 0, sizeof(*out));
	if (!password || !salt || salt_len <= 0 || salt_len > AUTH_SCRAM_MAX_SALT)
		return -1;
	int rc = scram_keys_from_password(password, salt, salt_len, iterations, client_key,
					  out->stored_key, out->server_key);
	explicit_bzero(client_key, sizeof(client_key));
	if (rc != 0) {
		explicit_bzero(out, sizeof(*out));
		return -1;
	}
	out->iterations = iterations;
	memcpy(out->salt, salt, (size_t)salt_len);
	out->salt_len = salt_len;
	return 0;
}

static bool secret_valid(const struct auth_scram_secret *s)
{
	return s && s->iterations > 0 && s->salt_len > 0 && s->salt_len <= AUTH_SCRAM_MAX_SALT;
}

int auth_scram_format_secret(const struct auth_scram_secret *s, char *out, size_t cap)
{
	char salt[AUTH_SCRAM_MAX_SALT / 3 * 4 + 8], stored[48], server[48];

	if (!secret_valid(s) ||
	    auth_base64_encode(s->salt, (size_t)s->salt_len, salt, sizeof(salt)) < 0 ||
	    auth_base64_encode(s->stored_key, AUTH_SCRAM_KEY_LEN, stored, sizeof(stored)) < 0 ||
	    auth_base64_encode(s->server_key, AUTH_SCRAM_KEY_LEN, server, sizeof(server)) < 0)
		return -1;
	int n = snprintf(out, cap, SCRAM_PREFIX "%d:%s$%s:%s", s->iterations, salt, stored, server);
	return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

/* ---- SCRAM message parsing ---- */

/* Walks "a=value,b=value,..." without copying. */
struct attrs {
	const char *p, *end;
};

static bool is_attr_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Reads the next attribute; a trailing comma is malformed. */
static int next_attr(struct attrs *a, char *name, const char **val, size_t *vlen)
{
	if (a->end - a->p < 2 || !is_attr_letter(a->p[0]) || a->p[1] != '=')
		return -1;
	*name = a->p[0];
	*val = a->p + 2;
	const char *comma = memchr(*val, ',', (size_t)(a->end - *val));
	*vlen = (size_t)((comma ? comma : a->end) - *val);
	a->p = comma ? comma + 1 : a->end;
	return (comma && a->p == a->end) ? -1 : 0;
}

static int expect_attr(struct attrs *a, char want, const char **val, size_t *vlen)
{
	char name;

	if (next_attr(a, &name, val, vlen) != 0 || name != want)
		return -1;
	return 0;
}

/* RFC 5802 "printable": 0x21..0x7E except ','. */
static bool nonce_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
			return false;
	return true;
}

static bool has_nul(const char *msg, size_t len)
{
	return memchr(msg, '\0', len) != NULL;
}

/* Copies a nonce into a fixed field, NUL-terminated. */
static int store_nonce(char *dst, size_t cap, const char *src, size_t n)
{
	if (!nonce_ok(src, n) || n >= cap)
		return -1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

/* 24 random bytes as base64: 32 printable characters without commas. */
static int random_nonce(char *out, size_t cap)
{
	uint8_t raw[AUTH_SCRAM_NONCE_LEN];

	if (auth_random(raw, sizeof(raw)) != 0)
		return -1;
	return auth_base64_encode(raw, sizeof(raw), out, cap) < 0 ? -1 : 0;
}

/* client-first-message-bare: "n=<ignored>,r=<nonce>[,ext...]". PostgreSQL takes the
 * user from the startup packet, so n= may hold anything. Returns 0 and the nonce. */
static int parse_client_first_bare(const char *bare, size_t len, const char **nonce,
				   size_t *nonce_len, char err[128])
{
	struct attrs a = { bare, bare + len };
	const char *v;
	size_t vn;
	char name;

	if (len >= 2 && bare[0] == 'm' && bare[1] == '=')
		return set_error(err, "client requires an unsupported SCRAM extension");
	if (expect_attr(&a, 'n', &v, &vn) != 0 || expect_attr(&a, 'r', nonce, nonce_len) != 0)
		return set_error(err, "malformed SCRAM client-first-message");
	if (!nonce_ok(*nonce, *nonce_len))
		return set_error(err, "invalid SCRAM client nonce");
	while (a.p < a.end) {
		if (next_attr(&a, &name, &v, &vn) != 0)
			return set_error(err, "malformed SCRAM client-first-message");
		if (name == 'm')
			return set_error(err, "client requires an unsupported SCRAM extension");
	}
	return 0;
}

#define CBIND_TYPE "tls-server-end-point"
#define CBIND_HEADER "p=" CBIND_TYPE ",,"
/* base64 of a gs2 header plus the most binding data */
#define CBIND_B64_MAX ((sizeof(CBIND_HEADER) - 1 + AUTH_SCRAM_MAX_CBIND + 2) / 3 * 4 + 1)

/* The c= value of a client-final-message: base64 of the gs2 header, followed under
 * 'p' by the binding data (RFC 5802 cbind-input). Length or -1. */
static int cbind_value(char flag, const uint8_t *data, size_t len, char out[CBIND_B64_MAX])
{
	uint8_t input[sizeof(CBIND_HEADER) - 1 + AUTH_SCRAM_MAX_CBIND];
	size_t n = 3;

	if (flag == 'p') {
		if (len > AUTH_SCRAM_MAX_CBIND)
			return -1;
		memcpy(input, CBIND_HEADER, sizeof(CBIND_HEADER) - 1);
		memcpy(input + sizeof(CBIND_HEADER) - 1, data, len);
		n = sizeof(CBIND_HEADER) - 1 + len;
	} else {
		memcpy(input, flag == 'y' ? "y,," : "n,,", 3);
	}
	return auth_base64_encode(input, n, out, CBIND_B64_MAX);
}

/* ---- server side ---- */

/* A refusal PostgreSQL reports with errmsg, errdetail and SQLSTATE of its own:
 * the same three go to the caller, for the same ErrorResponse. Returns -1. */
static int server_refuse(struct auth_scram_server *s, const char *sqlstate, const char *detail,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int server_refuse(struct auth_scram_server *s, const char *sqlstate, const char *detail,
			 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
	snprintf(s->detail, sizeof(s->detail), "%s", detail);
	snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", sqlstate);
	return -1;
}

/* A client's text going into an error message: PostgreSQL's sanitize_str, at most
 * 30 characters, anything not printable ASCII as '?'. */
static void sanitize(const char *in, size_t n, char out[31])
{
	size_t i;

	for (i = 0; i < n && i < 30; i++)
		out[i] = (in[i] >= 0x21 && in[i] <= 0x7e) ? in[i] : '?';
	out[i] = '\0';
}

/* The gs2 header: "n,,", "y,," or, under SCRAM-SHA-256-PLUS, "p=tls-server-end-point,,",
 * checked against the selected mechanism and the binding on offer in PostgreSQL's
 * order (read_client_first_message). Returns the flag and the header's length, or -1. */
static int server_read_gs2_header(struct auth_scram_server *s, const char *msg, size_t len,
				  size_t *header_len)
{
	char flag = len > 0 ? msg[0] : '\0';
	size_t i = 1;

	switch (flag) {
	case 'n':
	case 'y':
		if (s->plus)
			return server_refuse(s, "08P01",
					     "The client selected SCRAM-SHA-256-PLUS, but the SCRAM message "
					     "does not include channel binding data.",
					     "malformed SCRAM message");
		/* 'y' says "I could bind, but this server cannot": a server that offered PLUS
		 * must take it for a man in the middle who removed PLUS from the list */
		if (flag == 'y' && s->cbind_len > 0)
			return server_refuse(s, "28000",
					     "The client supports SCRAM channel binding but thinks the server "
					     "does not.  However, this server does support channel binding.",
					     "SCRAM channel binding negotiation error");
		break;
	case 'p': {
		if (!s->plus)
			return server_refuse(s, "08P01",
					     "The client selected SCRAM-SHA-256 without channel binding, but "
					     "the SCRAM message includes channel binding data.",
					     "malformed SCRAM message");
		if (len < 2 || msg[1] != '=')
			return set_error(s->error, "malformed SCRAM client-first-message (gs2 header)");
		const char *name = msg + 2;
		const char *comma = memchr(name, ',', len - 2);
		if (!comma)
			return set_error(s->error, "malformed SCRAM client-first-message (gs2 header)");
		size_t n = (size_t)(comma - name);
		if (n != strlen(CBIND_TYPE) || memcmp(name, CBIND_TYPE, n) != 0) {
			char shown[31];
			sanitize(name, n, shown);
			return server_refuse(s, "08P01", "", "unsupported SCRAM channel-binding type \"%s\"",
					     shown);
		}
		i = (size_t)(comma - msg);
		break;
	}
	default:
		return set_error(s->error, "malformed SCRAM client-first-message (gs2 header)");
	}
	if (i + 1 >= len || msg[i] != ',')
		return set_error(s->error, "malformed SCRAM client-first-message (gs2 header)");
	if (msg[i + 1] != ',')
		return set_error(s->error, msg[i + 1] == 'a'
					   ? "SCRAM authorization identity is not supported"
					   : "malformed SCRAM client-first-message (gs2 header)");
	*header_len = i + 2;
	return flag;
}

int auth_scram_server_init_cbind(struct auth_scram_server *s, const struct auth_scram_secret *secret,
				 const uint8_t *cbind_data, size_t cbind_len)
{
	memset(s, 0, sizeof(*s));
	s->state = SRV_FAILED;
	if (!secret_valid(secret))
		return server_refuse(s, "08P01", "", "invalid SCRAM secret");
	if (cbind_data && (cbind_len == 0 || cbind_len > AUTH_SCRAM_MAX_CBIND))
		return server_refuse(s, "08P01", "", "invalid SCRAM channel-binding data");
	s->secret = *secret;
	if (cbind_data) {
		memcpy(s->cbind_data, cbind_data, cbind_len);
		s->cbind_len = cbind_len;
	}
	s->state = SRV_AWAIT_FIRST;
	return 0;
}

int auth_scram_server_init(struct auth_scram_server *s, const struct auth_scram_secret *secret)
{
	return auth_scram_server_init_cbind(s, secret, NULL, 0);
}

/* Every failure ends the exchange; one that did not say otherwise is a protocol
 * violation, as most of PostgreSQL's SCRAM errors are. */
static int server_fail(struct auth_scram_server *s)
{
	s->state = SRV_FAILED;
	explicit_bzero(s->client_key, sizeof(s->client_key));
	s->have_client_key = false;
	if (s->sqlstate[0] == '\0')
		snprintf(s->sqlstate, sizeof(s->sqlstate), "08P01");
	return -1;
}

/* Each step reports only its own failure. */
static void server_clear_error(struct auth_scram_server *s)
{
	s->error[0] = s->detail[0] = s->sqlstate[0] = '\0';
}

/* PLUS is only valid where it was offered: PostgreSQL (scram_init) refuses it
 * without TLS the same way as an unknown name. */
int auth_scram_server_mechanism(struct auth_scram_server *s, const char *mechanism)
{
	server_clear_error(s);
	if (s->state != SRV_AWAIT_FIRST) {
		set_error(s->error, "SCRAM exchange out of order");
		return server_fail(s);
	}
	if (mechanism && strcmp(mechanism, AUTH_SCRAM_MECH) == 0) {
		s->plus = false;
		return 0;
	}
	if (mechanism && strcmp(mechanism, AUTH_SCRAM_PLUS_MECH) == 0 && s->cbind_len > 0) {
		s->plus = true;
		return 0;
	}
	set_error(s->error, "client selected an invalid SASL authentication mechanism");
	return server_fail(s);
}

/* Test hook: a server_nonce filled in by the caller between init and this call is
 * used instead of a random one (after validation). Production callers never do that. */
static int server_pick_nonce(struct auth_scram_server *s)
{
	size_t n = strnlen(s->server_nonce, sizeof(s->server_nonce));

	if (n == 0)
		return random_nonce(s->server_nonce, sizeof(s->server_nonce));
	return (n < sizeof(s->server_nonce) && nonce_ok(s->server_nonce, n)) ? 0 : -1;
}

static int server_read_first(struct auth_scram_server *s, const char *msg, size_t len)
{
	const char *nonce;
	size_t nonce_len, header_len = 0; /* = 0: gcc cannot tell it is set whenever used */

	if (len > SCRAM_MAX_MSG || has_nul(msg, len))
		return set_error(s->error, "malformed SCRAM client-first-message");
	int flag = server_read_gs2_header(s, msg, len, &header_len);
	if (flag < 0)
		return -1;
	const char *bare = msg + header_len;
	size_t bare_len = len - header_len;
	if (parse_client_first_bare(bare, bare_len, &nonce, &nonce_len, s->error) != 0)
		return -1;
	if (bare_len >= sizeof(s->client_first_bare) ||
	    store_nonce(s->client_nonce, sizeof(s->client_nonce), nonce, nonce_len) != 0)
		return set_error(s->error, "SCRAM client-first-message too long");
	memcpy(s->client_first_bare, bare, bare_len);
	s->client_first_bare[bare_len] = '\0';
	return flag;
}

int auth_scram_server_first(struct auth_scram_server *s, const char *msg, size_t len,
			    char *out, size_t cap)
{
	char salt[AUTH_SCRAM_MAX_SALT / 3 * 4 + 8];

	server_clear_error(s);
	if (s->state != SRV_AWAIT_FIRST) {
		set_error(s->error, "SCRAM exchange out of order");
		return server_fail(s);
	}
	int flag = server_read_first(s, msg, len);
	if (flag < 0)
		return server_fail(s);
	if (server_pick_nonce(s) != 0) {
		set_error(s->error, "cannot generate SCRAM server nonce");
		return server_fail(s);
	}
	auth_base64_encode(s->secret.salt, (size_t)s->secret.salt_len, salt, sizeof(salt));
	int n = snprintf(s->server_first, sizeof(s->server_first), "r=%s%s,s=%s,i=%d",
			 s->client_nonce, s->server_nonce, salt, s->secret.iterations);
	if (n < 0 || (size_t)n >= sizeof(s->server_first) ||
	    emit(s->server_first, (size_t)n, out, cap) < 0) {
		set_error(s->error, "SCRAM server-first-message does not fit");
		return server_fail(s);
	}
	s->state = flag == 'n' ? SRV_AWAIT_FINAL_N : flag == 'y' ? SRV_AWAIT_FINAL_Y : SRV_AWAIT_FINAL_P;
	return n;
}

/* Parsed client-final-message: the part the proof covers, and the proof. */
struct client_final {
	size_t without_proof_len;
	uint8_t proof[AUTH_SCRAM_KEY_LEN];
};

static bool nonce_matches(const struct auth_scram_server *s, const char *v, size_t n)
{
	size_t cn = strlen(s->client_nonce), sn = strlen(s->server_nonce);

	return n == cn + sn && memcmp(v, s->client_nonce, cn) == 0 &&
	       memcmp(v + cn, s->server_nonce, sn) == 0;
}

/* c= must repeat the gs2 header of the client-first-message and, under PLUS, carry
 * our own binding data: a man in the middle terminating TLS has a certificate of
 * its own, and so a different tls-server-end-point hash from the client's. */
static int server_check_cbind(struct auth_scram_server *s, const char *v, size_t vn)
{
	char want[CBIND_B64_MAX];
	char flag = s->state == SRV_AWAIT_FINAL_N ? 'n' : s->state == SRV_AWAIT_FINAL_Y ? 'y' : 'p';
	int n = cbind_value(flag, s->cbind_data, s->cbind_len, want);

	if (n >= 0 && vn == (size_t)n && memcmp(v, want, vn) == 0)
		return 0;
	if (flag == 'p')
		return server_refuse(s, "28000", "", "SCRAM channel binding check failed");
	return set_error(s->error, "unexpected SCRAM channel-binding attribute");
}

/* "c=<b64 cbind-input>,r=<nonce>[,ext...],p=<b64 proof>". Extensions are skipped as
 * PostgreSQL does, except m= which means one we would have to understand. */
static int server_parse_final(struct auth_scram_server *s, const char *msg, size_t len,
			      struct client_final *f)
{
	struct attrs a = { msg, msg + len };
	const char *v, *attr_start;
	size_t vn;
	char name;

	if (expect_attr(&a, 'c', &v, &vn) != 0)
		return set_error(s->error, "malformed SCRAM client-final-message");
	if (server_check_cbind(s, v, vn) != 0)
		return -1;
	if (expect_attr(&a, 'r', &v, &vn) != 0)
		return set_error(s->error, "malformed SCRAM client-final-message");
	if (!nonce_matches(s, v, vn))
		return set_error(s->error, "SCRAM nonce mismatch");
	do {
		attr_start = a.p;
		if (next_attr(&a, &name, &v, &vn) != 0)
			return set_error(s->error, "malformed SCRAM client-final-message");
		if (name == 'm')
			return set_error(s->error, "unsupported SCRAM extension");
	} while (name != 'p');
	if (a.p != a.end)
		return set_error(s->error, "garbage at end of SCRAM client-final-message");
	if (decode_key(v, vn, f->proof) != 0)
		return set_error(s->error, "invalid SCRAM proof encoding");
	f->without_proof_len = (size_t)(attr_start - 1 - msg);
	return 0;
}

/* HMAC(key, client-first-bare "," server-first "," client-final-without-proof) */
static int server_auth_hmac(const struct auth_scram_server *s, const uint8_t *key,
			    const char *final, size_t final_len, uint8_t out[AUTH_SCRAM_KEY_LEN])
{
	struct chunk parts[] = {
		{ s->client_first_bare, strlen(s->client_first_bare) },
		{ ",", 1 },
		{ s->server_first, strlen(s->server_first) },
		{ ",", 1 },
		{ final, final_len },
	};

	return hmac_sha256(key, AUTH_SCRAM_KEY_LEN, parts, 5, out);
}

/* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); valid if H(ClientKey) == StoredKey. */
static int server_check_proof(struct auth_scram_server *s, const char *msg,
			      const struct client_final *f)
{
	uint8_t sig[AUTH_SCRAM_KEY_LEN], stored[AUTH_SCRAM_KEY_LEN];
	int rc = -1;

	if (server_auth_hmac(s, s->secret.stored_key, msg, f->without_proof_len, sig) != 0)
		goto out;
	for (int i = 0; i < AUTH_SCRAM_KEY_LEN; i++)
		s->client_key[i] = f->proof[i] ^ sig[i];
	if (sha256(s->client_key, stored) != 0)
		goto out;
	if (ct_equal(stored, s->secret.stored_key, AUTH_SCRAM_KEY_LEN))
		rc = 0;
out:
	explicit_bzero(sig, sizeof(sig));
	explicit_bzero(stored, sizeof(stored));
	if (rc != 0)
		server_refuse(s, "28P01", "", "SCRAM proof does not match (wrong password)");
	return rc;
}

int auth_scram_server_final(struct auth_scram_server *s, const char *msg, size_t len,
			    char *out, size_t cap)
{
	struct client_final f;
	uint8_t sig[AUTH_SCRAM_KEY_LEN];
	char reply[64] = "v=";

	server_clear_error(s);
	if (s->state != SRV_AWAIT_FINAL_N && s->state != SRV_AWAIT_FINAL_Y &&
	    s->state != SRV_AWAIT_FINAL_P) {
		set_error(s->error, "SCRAM exchange out of order");
		return server_fail(s);
	}
	if (len > SCRAM_MAX_MSG || has_nul(msg, len)) {
		set_error(s->error, "malformed SCRAM client-final-message");
		return server_fail(s);
	}
	if (server_parse_final(s, msg, len, &f) != 0 || server_check_proof(s, msg, &f) != 0)
		return server_fail(s);
	if (server_auth_hmac(s, s->secret.server_key, msg, f.without_proof_len, sig) != 0) {
		set_error(s->error, "SCRAM HMAC failed");
		return server_fail(s);
	}
	int n = auth_base64_encode(sig, sizeof(sig), reply + 2, sizeof(reply) - 2);
	if (n < 0 || emit(reply, (size_t)n + 2, out, cap) < 0) {
		set_error(s->error, "SCRAM server-final-message does not fit");
		return server_fail(s);
	}
	s->have_client_key = true;
	s->state = SRV_DONE;
	return n + 2;
}

/* ---- client side ---- */

int auth_scram_client_init(struct auth_scram_client *c, const char *password,
			   const uint8_t *client_key, const struct auth_scram_secret *secret)
{
	memset(c, 0, sizeof(*c));
	if (!password && (!client_key || !secret_valid(secret))) {
		set_error(c->error, "no password and no SCRAM client key for server login");
		c->state = CLI_FAILED;
		return -1;
	}
	c->password = password;
	c->client_key = client_key;
	c->secret = secret;
	c->state = CLI_READY;
	return 0;
}

static int client_fail(struct auth_scram_client *c)
{
	c->state = CLI_FAILED;
	explicit_bzero(c->server_key, sizeof(c->server_key));
	return -1;
}

int auth_scram_client_channel_binding(struct auth_scram_client *c, char flag,
				      const uint8_t *data, size_t len)
{
	if (c->state != CLI_READY) {
		set_error(c->error, "SCRAM exchange out of order");
		return client_fail(c);
	}
	if (flag == 'p' && (!data || len == 0 || len > AUTH_SCRAM_MAX_CBIND)) {
		set_error(c->error, "invalid SCRAM channel-binding data");
		return client_fail(c);
	}
	if (flag != 'n' && flag != 'y' && flag != 'p') {
		set_error(c->error, "invalid SCRAM channel-binding flag");
		return client_fail(c);
	}
	c->cbind_flag = flag;
	c->cbind_len = 0;
	if (flag == 'p') {
		memcpy(c->cbind_data, data, len);
		c->cbind_len = len;
	}
	return 0;
}

/* The gs2 header: "n,," unless auth_scram_client_channel_binding said otherwise. */
static const char *client_gs2_header(const struct auth_scram_client *c)
{
	return c->cbind_flag == 'p' ? CBIND_HEADER : c->cbind_flag == 'y' ? "y,," : "n,,";
}

/* Test hook: a client_first_bare filled in by the caller between init and
 * auth_scram_client_first (e.g. the RFC 7677 vector's "n=user,r=...") is sent as is
 * after validation; production callers never do that and get "n=,r=<random>". */
static int client_pick_first_bare(struct auth_scram_client *c)
{
	size_t n = strnlen(c->client_first_bare, sizeof(c->client_first_bare));
	const char *nonce;
	size_t nonce_len;
	char err[128];

	if (n == 0) {
		if (random_nonce(c->client_nonce, sizeof(c->client_nonce)) != 0)
			return -1;
		snprintf(c->client_first_bare, sizeof(c->client_first_bare), "n=,r=%s",
			 c->client_nonce);
		return 0;
	}
	if (n >= sizeof(c->client_first_bare) ||
	    parse_client_first_bare(c->client_first_bare, n, &nonce, &nonce_len, err) != 0)
		return -1;
	return store_nonce(c->client_nonce, sizeof(c->client_nonce), nonce, nonce_len);
}

int auth_scram_client_first(struct auth_scram_client *c, char *out, size_t cap)
{
	char msg[sizeof(c->client_first_bare) + sizeof(CBIND_HEADER)];

	if (c->state != CLI_READY) {
		set_error(c->error, "SCRAM exchange out of order");
		return client_fail(c);
	}
	if (client_pick_first_bare(c) != 0) {
		set_error(c->error, "cannot build SCRAM client-first-message");
		return client_fail(c);
	}
	int n = snprintf(msg, sizeof(msg), "%s%s", client_gs2_header(c), c->client_first_bare);
	if (n < 0 || emit(msg, (size_t)n, out, cap) < 0) {
		set_error(c->error, "SCRAM client-first-message does not fit");
		return client_fail(c);
	}
	c->state = CLI_SENT_FIRST;
	return n;
}

/* Parsed server-first-message. */
struct server_first {
	const char *nonce;
	size_t nonce_len;
	uint8_t salt[AUTH_SCRAM_MAX_SALT];
	int salt_len;
	int iterations;
};

/* "r=<nonce>,s=<b64 salt>,i=<iterations>", strictly, as libpq reads it. */
static int client_parse_server_first(struct auth_scram_client *c, const char *msg, size_t len,
				     struct server_first *f)
{
	struct attrs a = { msg, msg + len };
	const char *v;
	size_t vn, cn = strlen(c->client_nonce);

	if (expect_attr(&a, 'r', &f->nonce, &f->nonce_len) != 0)
		return set_error(c->error, "malformed SCRAM server-first-message");
	if (f->nonce_len <= cn || memcmp(f->nonce, c->client_nonce, cn) != 0 ||
	    !nonce_ok(f->nonce, f->nonce_len))
		return set_error(c->error, "SCRAM nonce mismatch");
	if (expect_attr(&a, 's', &v, &vn) != 0)
		return set_error(c->error, "malformed SCRAM server-first-message");
	f->salt_len = auth_base64_decode(v, vn, f->salt, sizeof(f->salt));
	if (f->salt_len <= 0)
		return set_error(c->error, "invalid SCRAM salt");
	if (expect_attr(&a, 'i', &v, &vn) != 0)
		return set_error(c->error, "malformed SCRAM server-first-message");
	f->iterations = parse_iterations(v, vn);
	if (f->iterations < 0)
		return set_error(c->error, "invalid SCRAM iteration count");
	if (a.p != a.end)
		return set_error(c->error, "garbage at end of SCRAM server-first-message");
	return 0;
}

/* Reusing a client's ClientKey only works when the server derives from the very same
 * salt and iteration count; H(ClientKey) must also match, or the key is not this one. */
static int client_keys_from_secret(struct auth_scram_client *c, const struct server_first *f,
				   uint8_t client_key[AUTH_SCRAM_KEY_LEN],
				   uint8_t stored_key[AUTH_SCRAM_KEY_LEN])
{
	const struct auth_scram_secret *sec = c->secret;
	uint8_t check[AUTH_SCRAM_KEY_LEN];

	if (f->iterations != sec->iterations || f->salt_len != sec->salt_len ||
	    memcmp(f->salt, sec->salt, (size_t)f->salt_len) != 0)
		return set_error(c->error, "server SCRAM secret differs from auth_file secret");
	memcpy(client_key, c->client_key, AUTH_SCRAM_KEY_LEN);
	memcpy(stored_key, sec->stored_key, AUTH_SCRAM_KEY_LEN);
	memcpy(c->server_key, sec->server_key, AUTH_SCRAM_KEY_LEN);
	if (sha256(client_key, check) != 0 || !ct_equal(check, stored_key, AUTH_SCRAM_KEY_LEN))
		return set_error(c->error, "SCRAM client key does not match its secret");
	return 0;
}

static int client_derive_keys(struct auth_scram_client *c, const struct server_first *f,
			      uint8_t client_key[AUTH_SCRAM_KEY_LEN],
			      uint8_t stored_key[AUTH_SCRAM_KEY_LEN])
{
	if (!c->password)
		return client_keys_from_secret(c, f, client_key, stored_key);
	if (c->max_iterations > 0 && f->iterations > c->max_iterations) {
		c->over_limit = true;
		snprintf(c->error, sizeof c->error,
			 "server's SCRAM iteration count %d is more than max_server_scram_iterations (%d)",
			 f->iterations, c->max_iterations);
		return -1;
	}
	if (scram_keys_from_password(c->password, f->salt, f->salt_len, f->iterations, client_key,
				     stored_key, c->server_key) != 0)
		return set_error(c->error, "SCRAM key derivation failed");
	return 0;
}

/* Builds client-final-message-without-proof and AuthMessage; length of the former. */
static int client_build_auth_message(struct auth_scram_client *c, const char *msg, size_t len,
				     const struct server_first *f, char *wo, size_t wocap)
{
	char cbind[CBIND_B64_MAX];

	if (cbind_value(client_gs2_header(c)[0], c->cbind_data, c->cbind_len, cbind) < 0)
		return -1;
	int n = snprintf(wo, wocap, "c=%s,r=%.*s", cbind, (int)f->nonce_len, f->nonce);
	if (n < 0 || (size_t)n >= wocap)
		return -1;
	int m = snprintf(c->auth_message, sizeof(c->auth_message), "%s,%.*s,%s",
			 c->client_first_bare, (int)len, msg, wo);
	if (m < 0 || (size_t)m >= sizeof(c->auth_message))
		return -1;
	return n;
}

static int client_compose_final(struct auth_scram_client *c, const char *wo,
				const uint8_t client_key[AUTH_SCRAM_KEY_LEN],
				const uint8_t stored_key[AUTH_SCRAM_KEY_LEN], char *out, size_t cap)
{
	uint8_t proof[AUTH_SCRAM_KEY_LEN];
	char proof64[48], msg[SCRAM_MAX_MSG];

	if (hmac_str(stored_key, c->auth_message, proof) != 0)
		return -1;
	for (int i = 0; i < AUTH_SCRAM_KEY_LEN; i++)
		proof[i] ^= client_key[i];
	auth_base64_encode(proof, sizeof(proof), proof64, sizeof(proof64));
	explicit_bzero(proof, sizeof(proof));
	int n = snprintf(msg, sizeof(msg), "%s,p=%s", wo, proof64);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -1;
	return emit(msg, (size_t)n, out, cap);
}

int auth_scram_client_final(struct auth_scram_client *c, const char *msg, size_t len,
			    char *out, size_t cap)
{
	struct server_first f;
	uint8_t client_key[AUTH_SCRAM_KEY_LEN], stored_key[AUTH_SCRAM_KEY_LEN];
	char wo[SCRAM_MAX_MSG];
	int n = -1;

	if (c->state != CLI_SENT_FIRST) {
		set_error(c->error, "SCRAM exchange out of order");
		return client_fail(c);
	}
	if (len > SCRAM_MAX_MSG || has_nul(msg, len)) {
		set_error(c->error, "malformed SCRAM server-first-message");
		return client_fail(c);
	}
	if (client_parse_server_first(c, msg, len, &f) != 0)
		return client_fail(c);
	if (client_build_auth_message(c, msg, len, &f, wo, sizeof(wo)) < 0) {
		set_error(c->error, "SCRAM server-first-message too long");
		return client_fail(c);
	}
	if (client_derive_keys(c, &f, client_key, stored_key) == 0) {
		n = client_compose_final(c, wo, client_key, stored_key, out, cap);
		if (n < 0)
			set_error(c->error, "SCRAM client-final-message does not fit");
	}
	explicit_bzero(client_key, sizeof(client_key));
	explicit_bzero(stored_key, sizeof(stored_key));
	if (n < 0)
		return client_fail(c);
	c->state = CLI_SENT_FINAL;
	return n;
}

/* server-final-message: "v=<b64 ServerSignature>" or "e=<server-error-value>". */
int auth_scram_client_verify(struct auth_scram_client *c, const char *msg, size_t len)
{
	struct attrs a = { msg, msg + len };
	uint8_t got[AUTH_SCRAM_KEY_LEN], want[AUTH_SCRAM_KEY_LEN];
	const char *v;
	size_t vn;
	char name;

	if (c->state != CLI_SENT_FINAL) {
		set_error(c->error, "SCRAM exchange out of order");
		return client_fail(c);
	}
	if (len > SCRAM_MAX_MSG || has_nul(msg, len) || next_attr(&a, &name, &v, &vn) != 0 ||
	    (name != 'e' && name != 'v')) {
		set_error(c->error, "malformed SCRAM server-final-message");
		return client_fail(c);
	}
	if (name == 'e') {
		char text[65];
		size_t n = vn < sizeof(text) - 1 ? vn : sizeof(text) - 1;
		/* the text ends up in logs: keep a hostile server from writing control bytes */
		for (size_t i = 0; i < n; i++)
			text[i] = (v[i] >= 0x20 && v[i] <= 0x7e) ? v[i] : '?';
		text[n] = '\0';
		set_error(c->error, "SCRAM error from server: %s", text);
		return client_fail(c);
	}
	if (a.p != a.end || decode_key(v, vn, got) != 0) {
		set_error(c->error, "malformed SCRAM server-final-message");
		return client_fail(c);
	}
	bool ok = hmac_str(c->server_key, c->auth_message, want) == 0 &&
		  ct_equal(got, want, AUTH_SCRAM_KEY_LEN);
	explicit_bzero(want, sizeof(want));
	if (!ok) {
		set_error(c->error, "SCRAM server signature mismatch");
		return client_fail(c);
	}
	explicit_bzero(c->server_key, sizeof(c->server_key));
	c->state = CLI_DONE;
	return 0;
}
