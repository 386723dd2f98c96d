/* tests/unit/test_auth.c: proto/auth against published vectors (RFC 7677), secrets
 * made by a real PostgreSQL 15, round trips between our own two sides, and hostile
 * or broken messages that must fail cleanly. */
#include <criterion/criterion.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <stdio.h>
#include <string.h>

#include "proto/auth.h"
#include "proto/proto.h"

/* ---- fixtures ---- */

/* A SCRAM-SHA-256-PLUS exchange on the RFC 7677 secret and nonces, with libpq's
 * empty n= and tls-server-end-point data 00 01 .. 1f (a SHA-256 certificate hash).
 * Computed independently (Python hashlib/hmac/base64 from the RFC 5802 formulas),
 * not with this code. */
#define PLUS_CLIENT_FIRST "p=tls-server-end-point,,n=,r=rOprNGfwEbeRWgbNEkqO"
#define PLUS_SERVER_FIRST RFC_SERVER_FIRST
#define PLUS_CBIND "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define PLUS_CLIENT_FINAL                                                     \
	PLUS_CBIND ",r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
	"p=Q8h71kjaoMzNI7dPksDrhRE/5mTUObF0fUHVIgBOWQg="
#define PLUS_SERVER_FINAL "v=ykwoqH8mLqO5AQCeuwwf6lsj9f8zyJZT/CcvAbN4Ssc="
/* c= for the data 01 02 .. 20 instead: another certificate */
#define PLUS_OTHER_CBIND "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
#define PG_DOWNGRADE_DETAIL                                                    \
	"The client supports SCRAM channel binding but thinks the server does not.  " \
	"However, this server does support channel binding."
#define PG_PLUS_WITHOUT_DATA_DETAIL \
	"The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data."
#define PG_DATA_WITHOUT_PLUS_DETAIL                                              \
	"The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message " \
	"includes channel binding data."

/* RFC 7677 section 3. */
#define RFC_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SERVER_FIRST \
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL                                          \
	"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
	"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* pg_authid.rolpassword from PostgreSQL 15.20 (Debian), password_encryption =
 * scram-sha-256, for CREATE ROLE alice PASSWORD 'correct horse battery staple' and
 * CREATE ROLE carol PASSWORD 'pässwörd' (UTF-8; NFKC-stable, so SASLprep leaves the
 * bytes alone and PostgreSQL hashed the raw bytes just as we do). */
#define PG15_ALICE_PASSWORD "correct horse battery staple"
#define PG15_ALICE_SALT "K5HCFdUajNP/+lEFbLP1XA=="
#define PG15_ALICE_STORED "Ce4Sp4dyubXTdjOx7oeeDdhHwzu9IUlm+EJFnhYrAxQ="
#define PG15_ALICE_SERVER "r62OEEt3Bh/PcW6q43peKUEQ6gpubrGK4+kFCHqOF4I="
#define PG15_ALICE_SECRET \
	"SCRAM-SHA-256$4096:" PG15_ALICE_SALT "$" PG15_ALICE_STORED ":" PG15_ALICE_SERVER
#define PG15_CAROL_PASSWORD "p\xc3\xa4ssw\xc3\xb6rd"
#define PG15_CAROL_SECRET                                                      \
	"SCRAM-SHA-256$4096:Jfq1ktbVR2bu7VQ4R9RRnQ==$"                          \
	"BRTyZMkfLhe8c2n0SObcgmx0tPCYdqoTbIaCgvXVR3U=:"                         \
	"RckfhoPJpTtYL7+5bMr+GazZekai28K9wZlRRrK52cg="

static struct auth_scram_secret rfc_secret(void)
{
	struct auth_scram_secret sec;
	uint8_t salt[AUTH_SCRAM_MAX_SALT];
	const char *salt64 = "W22ZaJ0SNY7soEsUEjb6gQ==";
	int n = auth_base64_decode(salt64, strlen(salt64), salt, sizeof(salt));

	cr_assert_eq(n, 16);
	cr_assert_eq(auth_scram_secret_from_password("pencil", salt, n, 4096, &sec), 0);
	return sec;
}

/* A cheap secret for tests that run many exchanges. */
static struct auth_scram_secret quick_secret(const char *password, uint8_t salt_byte, int iter)
{
	struct auth_scram_secret sec;
	uint8_t salt[16];

	memset(salt, salt_byte, sizeof(salt));
	cr_assert_eq(auth_scram_secret_from_password(password, salt, sizeof(salt), iter, &sec), 0);
	return sec;
}

/* Runs a whole exchange between our client and our server. Returns 0 when both
 * sides accept; on failure, which side failed is in the structs' error fields. */
static int exchange(struct auth_scram_client *c, struct auth_scram_server *s)
{
	char m1[600], m2[600], m3[600], m4[600];
	int n1, n2, n3, n4;

	if ((n1 = auth_scram_client_first(c, m1, sizeof(m1))) < 0)
		return -1;
	if ((n2 = auth_scram_server_first(s, m1, (size_t)n1, m2, sizeof(m2))) < 0)
		return -1;
	if ((n3 = auth_scram_client_final(c, m2, (size_t)n2, m3, sizeof(m3))) < 0)
		return -1;
	if ((n4 = auth_scram_server_final(s, m3, (size_t)n3, m4, sizeof(m4))) < 0)
		return -1;
	return auth_scram_client_verify(c, m4, (size_t)n4);
}

static int login(const char *password, const uint8_t *client_key,
		 const struct auth_scram_secret *client_secret,
		 const struct auth_scram_secret *server_secret,
		 struct auth_scram_client *c, struct auth_scram_server *s)
{
	cr_assert_eq(auth_scram_server_init(s, server_secret), 0);
	if (auth_scram_client_init(c, password, client_key, client_secret) != 0)
		return -1;
	return exchange(c, s);
}

/* Server that has already answered a client-first with client nonce "abc". */
static void server_after_first(struct auth_scram_server *s, const struct auth_scram_secret *sec,
			       const char *client_first)
{
	char out[600];

	cr_assert_eq(auth_scram_server_init(s, sec), 0);
	strcpy(s->server_nonce, "SRV");
	cr_assert_gt(auth_scram_server_first(s, client_first, strlen(client_first), out, sizeof(out)), 0,
		     "%s", s->error);
}

static int server_final_str(struct auth_scram_server *s, const char *msg)
{
	char out[600];

	return auth_scram_server_final(s, msg, strlen(msg), out, sizeof(out));
}

/* Client that has sent "n,,n=,r=CLI". */
static void client_after_first(struct auth_scram_client *c, const char *password)
{
	char out[600];

	cr_assert_eq(auth_scram_client_init(c, password, NULL, NULL), 0);
	strcpy(c->client_first_bare, "n=,r=CLI");
	cr_assert_gt(auth_scram_client_first(c, out, sizeof(out)), 0);
}

static int client_final_str(struct auth_scram_client *c, const char *msg)
{
	char out[600];

	return auth_scram_client_final(c, msg, strlen(msg), out, sizeof(out));
}

/* Server of the RFC 7677 exchange, waiting for the client-final-message. */
static void rfc_server_at_final(struct auth_scram_server *s, const struct auth_scram_secret *sec)
{
	char out[600];
	size_t len = strlen(RFC_CLIENT_FIRST);

	cr_assert_eq(auth_scram_server_init(s, sec), 0);
	strcpy(s->server_nonce, RFC_SERVER_NONCE);
	cr_assert_gt(auth_scram_server_first(s, RFC_CLIENT_FIRST, len, out, sizeof(out)), 0, "%s", s->error);
}

/* Client of the RFC 7677 exchange ("pencil", forced first message), not started. */
static void rfc_client_ready(struct auth_scram_client *c)
{
	cr_assert_eq(auth_scram_client_init(c, "pencil", NULL, NULL), 0);
	strcpy(c->client_first_bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");
}

/* Client of the RFC 7677 exchange, waiting for the server-final-message. */
static void rfc_client_at_verify(struct auth_scram_client *c)
{
	char out[600];
	size_t len = strlen(RFC_SERVER_FIRST);

	rfc_client_ready(c);
	cr_assert_gt(auth_scram_client_first(c, out, sizeof(out)), 0);
	cr_assert_gt(auth_scram_client_final(c, RFC_SERVER_FIRST, len, out, sizeof(out)), 0, "%s", c->error);
}

/* xorshift: deterministic junk for the robustness tests */
static uint32_t rng_state = 0x2545f491;
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* ---- MD5 ---- */

TestSuite(auth_md5);

Test(auth_md5, secret_matches_postgresql)
{
	char out[AUTH_MD5_LEN + 1];

	/* role "foo" with password "bar": md5("bar" || "foo"), as PostgreSQL 15 stored it */
	auth_md5_secret("bar", "foo", out);
	cr_assert_str_eq(out, "md596948aad3fcae80c08a35c9b5958cd89");
	auth_md5_secret("hunter2", "bob", out);
	cr_assert_str_eq(out, "md5a2cc14bcc08bcb211f578153967abd6d");
	/* password "foo", user "bar": md5("foobar") */
	auth_md5_secret("foo", "bar", out);
	cr_assert_str_eq(out, "md53858f62230ac3c915f300c664312c63f");
}

Test(auth_md5, is_md5_secret)
{
	cr_assert(auth_is_md5_secret("md596948aad3fcae80c08a35c9b5958cd89"));
	cr_assert_not(auth_is_md5_secret("md596948AAD3fcae80c08a35c9b5958cd89"));
	cr_assert_not(auth_is_md5_secret("md596948aad3fcae80c08a35c9b5958cd8"));
	cr_assert_not(auth_is_md5_secret("md596948aad3fcae80c08a35c9b5958cd890"));
	cr_assert_not(auth_is_md5_secret("md596948aad3fcae80c08a35c9b5958cdxx"));
	cr_assert_not(auth_is_md5_secret("xyz96948aad3fcae80c08a35c9b5958cd89"));
	cr_assert_not(auth_is_md5_secret("md5"));
	cr_assert_not(auth_is_md5_secret(""));
	cr_assert_not(auth_is_md5_secret(NULL));
}

Test(auth_md5, response_known_value)
{
	const uint8_t salt[4] = { 1, 2, 3, 4 };
	char out[AUTH_MD5_LEN + 1];

	/* md5(hex(md5("foo" || "bar")) || 01 02 03 04), computed independently */
	auth_md5_response("foo", "bar", salt, out);
	cr_assert_str_eq(out, "md56e4f0b50f7277feb74acbf2a7734c9cb");
	auth_md5_response("md53858f62230ac3c915f300c664312c63f", "bar", salt, out);
	cr_assert_str_eq(out, "md56e4f0b50f7277feb74acbf2a7734c9cb");
}

Test(auth_md5, verify_round_trip)
{
	const uint8_t salt[4] = { 0xde, 0xad, 0xbe, 0xef };
	const uint8_t other_salt[4] = { 0xde, 0xad, 0xbe, 0xee };
	char hashed[AUTH_MD5_LEN + 1], resp[AUTH_MD5_LEN + 1];

	auth_md5_secret("s3cret", "alice", hashed);
	auth_md5_response("s3cret", "alice", salt, resp);
	cr_assert(auth_md5_verify("s3cret", "alice", salt, resp));
	cr_assert(auth_md5_verify(hashed, "alice", salt, resp));
	/* a client holding only the md5 secret (pass-through) answers the same */
	auth_md5_response(hashed, "alice", salt, resp);
	cr_assert(auth_md5_verify("s3cret", "alice", salt, resp));

	cr_assert_not(auth_md5_verify("s3cret", "alice", other_salt, resp));
	cr_assert_not(auth_md5_verify("s3cret", "bob", salt, resp));
	cr_assert_not(auth_md5_verify("S3cret", "alice", salt, resp));
	auth_md5_response("wrong", "alice", salt, resp);
	cr_assert_not(auth_md5_verify(hashed, "alice", salt, resp));
}

Test(auth_md5, verify_rejects_bad_input)
{
	const uint8_t salt[4] = { 9, 9, 9, 9 };
	char resp[AUTH_MD5_LEN + 2];

	auth_md5_response("pw", "u", salt, resp);
	cr_assert(auth_md5_verify("pw", "u", salt, resp));
	strcat(resp, "0");
	cr_assert_not(auth_md5_verify("pw", "u", salt, resp));
	resp[AUTH_MD5_LEN - 1] = '\0';
	cr_assert_not(auth_md5_verify("pw", "u", salt, resp));
	cr_assert_not(auth_md5_verify("pw", "u", salt, ""));
	cr_assert_not(auth_md5_verify("pw", "u", salt, NULL));
	cr_assert_not(auth_md5_verify(NULL, "u", salt, "md5"));

	/* a SCRAM secret is never treated as a plain password */
	auth_md5_response(PG15_ALICE_SECRET, "alice", salt, resp);
	cr_assert_not(auth_md5_verify(PG15_ALICE_SECRET, "alice", salt, resp));
}

/* ---- base64 ---- */

TestSuite(auth_base64);

Test(auth_base64, known_values)
{
	uint8_t buf[16];
	char out[16];

	cr_assert_eq(auth_base64_decode("biws", 4, buf, sizeof(buf)), 3);
	cr_assert_eq(memcmp(buf, "n,,", 3), 0);
	cr_assert_eq(auth_base64_decode("eSws", 4, buf, sizeof(buf)), 3);
	cr_assert_eq(memcmp(buf, "y,,", 3), 0);
	cr_assert_eq(auth_base64_encode((const uint8_t *)"n,,", 3, out, sizeof(out)), 4);
	cr_assert_str_eq(out, "biws");
	cr_assert_eq(auth_base64_encode((const uint8_t *)"f", 1, out, sizeof(out)), 4);
	cr_assert_str_eq(out, "Zg==");
	cr_assert_eq(auth_base64_encode((const uint8_t *)"fo", 2, out, sizeof(out)), 4);
	cr_assert_str_eq(out, "Zm8=");
	cr_assert_eq(auth_base64_encode(NULL, 0, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "");
	cr_assert_eq(auth_base64_decode("", 0, buf, sizeof(buf)), 0);
}

Test(auth_base64, round_trip)
{
	uint8_t in[64], back[64];
	char enc[100];

	for (size_t len = 0; len <= sizeof(in); len++) {
		for (size_t i = 0; i < len; i++)
			in[i] = (uint8_t)rng();
		int n = auth_base64_encode(in, len, enc, sizeof(enc));
		cr_assert_eq(n, (int)((len + 2) / 3 * 4));
		cr_assert_eq(auth_base64_decode(enc, (size_t)n, back, sizeof(back)), (int)len);
		cr_assert_eq(memcmp(in, back, len), 0);
	}
}

Test(auth_base64, rejects_malformed)
{
	uint8_t buf[16];
	const char *bad[] = { "biw", "biws=", "bi=s", "b=ws", "====", "A===", "bi ws", "biw!",
			      "Zg==Zg==", "Zg=a", "Zh==", "Zm9=" /* non-canonical */ };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(auth_base64_decode(bad[i], strlen(bad[i]), buf, sizeof(buf)), -1,
			     "%s", bad[i]);
	cr_assert_eq(auth_base64_decode("bi\0s", 4, buf, sizeof(buf)), -1);
}

Test(auth_base64, respects_capacity)
{
	uint8_t buf[3];
	char out[5];

	cr_assert_eq(auth_base64_decode("Zm9vYg==", 8, buf, sizeof(buf)), -1);
	cr_assert_eq(auth_base64_decode("Zm9v", 4, buf, sizeof(buf)), 3);
	cr_assert_eq(auth_base64_encode((const uint8_t *)"foob", 4, out, sizeof(out)), -1);
	cr_assert_eq(auth_base64_encode((const uint8_t *)"foo", 3, out, 4), -1); /* no room for NUL */
	cr_assert_eq(auth_base64_encode((const uint8_t *)"foo", 3, out, 5), 4);
}

Test(auth_base64, random_fills)
{
	uint8_t a[32] = { 0 }, b[32] = { 0 }, zero[32] = { 0 };

	cr_assert_eq(auth_random(a, sizeof(a)), 0);
	cr_assert_eq(auth_random(b, sizeof(b)), 0);
	cr_assert_neq(memcmp(a, b, sizeof(a)), 0);
	cr_assert_neq(memcmp(a, zero, sizeof(a)), 0);
}

/* Small requests come from a per-thread block: across several refills no two
 * 4-byte values repeat and none is zero (a stale or wiped block would show). */
Test(auth_base64, random_small_across_refills)
{
	enum { N = 1000 };
	static uint32_t v[N];
	for (int i = 0; i < N; i++) {
		cr_assert_eq(auth_random(&v[i], sizeof v[i]), 0);
		cr_assert_neq(v[i], 0);
	}
	int same = 0;
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			same += v[i] == v[j];
	cr_assert_leq(same, 1, "%d repeated 32-bit values", same);   /* ~1e-4 by chance */
}

/* ---- secrets ---- */

TestSuite(auth_secret);

Test(auth_secret, parse_postgresql_secret)
{
	struct auth_scram_secret sec;
	char out[200];

	cr_assert(auth_is_scram_secret(PG15_ALICE_SECRET));
	cr_assert_eq(auth_scram_parse_secret(PG15_ALICE_SECRET, &sec), 0);
	cr_assert_eq(sec.iterations, 4096);
	cr_assert_eq(sec.salt_len, 16);
	cr_assert_eq(auth_scram_format_secret(&sec, out, sizeof(out)), (int)strlen(PG15_ALICE_SECRET));
	cr_assert_str_eq(out, PG15_ALICE_SECRET);
}

/* Our derivation reproduces PostgreSQL's own secret byte for byte. */
Test(auth_secret, derive_matches_postgresql)
{
	const char *secrets[] = { PG15_ALICE_SECRET, PG15_CAROL_SECRET };
	const char *passwords[] = { PG15_ALICE_PASSWORD, PG15_CAROL_PASSWORD };

	for (int i = 0; i < 2; i++) {
		struct auth_scram_secret pg, ours;
		char out[200];

		cr_assert_eq(auth_scram_parse_secret(secrets[i], &pg), 0);
		cr_assert_eq(auth_scram_secret_from_password(passwords[i], pg.salt, pg.salt_len,
							     pg.iterations, &ours), 0);
		cr_assert_gt(auth_scram_format_secret(&ours, out, sizeof(out)), 0);
		cr_assert_str_eq(out, secrets[i]);
	}
}

/* The per-thread key cache must answer exactly what a fresh derivation would:
 * asked in turn for the PostgreSQL secrets, for the same salts with the other
 * password, and after more distinct entries than it holds. */
Test(auth_secret, cached_derivation_matches)
{
	const char *secrets[] = { PG15_ALICE_SECRET, PG15_CAROL_SECRET };
	const char *passwords[] = { PG15_ALICE_PASSWORD, PG15_CAROL_PASSWORD };
	struct auth_scram_secret pg[2], first[2][2], again;

	for (int i = 0; i < 2; i++)
		cr_assert_eq(auth_scram_parse_secret(secrets[i], &pg[i]), 0);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 2; j++) {
				cr_assert_eq(auth_scram_secret_from_password(passwords[j], pg[i].salt, pg[i].salt_len,
									     pg[i].iterations, &again), 0);
				if (round == 0)
					first[i][j] = again;
				cr_assert_eq(memcmp(&again, &first[i][j], sizeof again), 0, "round %d %d/%d", round, i, j);
				bool own = i == j;
				cr_assert_eq(memcmp(again.stored_key, pg[i].stored_key, sizeof again.stored_key) == 0, own);
			}
		/* push everything out of the cache (it holds 16) */
		for (int k = 0; round == 1 && k < 20; k++) {
			char pw[32];
			snprintf(pw, sizeof pw, "filler%d", k);
			cr_assert_eq(auth_scram_secret_from_password(pw, pg[0].salt, pg[0].salt_len, 2, &again), 0);
		}
	}
}

Test(auth_secret, user_salt_stable_and_distinct)
{
	uint8_t a[16], b[16], c[16];

	cr_assert_eq(auth_scram_user_salt("app", a, sizeof a), 0);
	cr_assert_eq(auth_scram_user_salt("app", b, sizeof b), 0);
	cr_assert_eq(auth_scram_user_salt("app2", c, sizeof c), 0);
	cr_assert_eq(memcmp(a, b, sizeof a), 0, "the same user gets the same salt");
	cr_assert_neq(memcmp(a, c, sizeof a), 0, "another user another");
	cr_assert_eq(auth_scram_user_salt("app", a, 0), -1);
	cr_assert_eq(auth_scram_user_salt("app", a, 33), -1);
}

Test(auth_secret, format_parse_round_trip)
{
	uint8_t salt[AUTH_SCRAM_MAX_SALT];
	struct auth_scram_secret a, b;
	char text[300];

	for (int len = 1; len <= AUTH_SCRAM_MAX_SALT; len += 7) {
		for (int i = 0; i < len; i++)
			salt[i] = (uint8_t)rng();
		cr_assert_eq(auth_scram_secret_from_password("pw", salt, len, 3 + len, &a), 0);
		int n = auth_scram_format_secret(&a, text, sizeof(text));
		cr_assert_gt(n, 0);
		cr_assert_eq(auth_scram_parse_secret(text, &b), 0, "%s", text);
		cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
		cr_assert_eq(auth_scram_format_secret(&a, text, (size_t)n), -1); /* no room for NUL */
	}
}

Test(auth_secret, parse_rejects_malformed)
{
	struct auth_scram_secret sec;
#define KEYS "$" PG15_ALICE_STORED ":" PG15_ALICE_SERVER
	const char *bad[] = {
		"",
		"md596948aad3fcae80c08a35c9b5958cd89",
		"SCRAM-SHA-256$",
		"SCRAM-SHA-1$4096:" PG15_ALICE_SALT KEYS,
		"SCRAM-SHA-256$0:" PG15_ALICE_SALT KEYS,
		"SCRAM-SHA-256$-1:" PG15_ALICE_SALT KEYS,
		"SCRAM-SHA-256$99999999999:" PG15_ALICE_SALT KEYS,
		"SCRAM-SHA-256$:" PG15_ALICE_SALT KEYS,
		"SCRAM-SHA-256$4096x:" PG15_ALICE_SALT KEYS,
		"SCRAM-SHA-256$4096:" KEYS,
		"SCRAM-SHA-256$4096:K5HCFdUajNP/+lEFbLP1XA=" KEYS,
		"SCRAM-SHA-256$4096:" PG15_ALICE_SALT "$" PG15_ALICE_STORED,
		"SCRAM-SHA-256$4096:" PG15_ALICE_SALT,
		"SCRAM-SHA-256$4096:" PG15_ALICE_SALT KEYS "\n",
		"SCRAM-SHA-256$4096:" PG15_ALICE_SALT KEYS "$x",
		"SCRAM-SHA-256$4096:" PG15_ALICE_SALT KEYS ":x",
		/* keys of 31 bytes and of 32 bytes without padding */
		"SCRAM-SHA-256$4096:" PG15_ALICE_SALT "$Ce4Sp4dyubXTdjOx7oeeDdhHwzu9IUlm+EJFnhYrAx==:" PG15_ALICE_SERVER,
		"SCRAM-SHA-256$4096:" PG15_ALICE_SALT "$" PG15_ALICE_STORED ":r62OEEt3Bh/PcW6q43peKUEQ6gpubrGK4+kFCHqOF4I",
		/* 66-byte salt: over AUTH_SCRAM_MAX_SALT */
		"SCRAM-SHA-256$4096:QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
		"QUFBQUFBQUFBQUFBQUFBQUFB" KEYS,
	};
#undef KEYS

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(auth_scram_parse_secret(bad[i], &sec), -1, "%s", bad[i]);
	cr_assert_not(auth_is_scram_secret("md596948aad3fcae80c08a35c9b5958cd89"));
	cr_assert_not(auth_is_scram_secret(NULL));
}

Test(auth_secret, derive_rejects_bad_arguments)
{
	struct auth_scram_secret sec;
	uint8_t salt[AUTH_SCRAM_MAX_SALT + 1] = { 0 };
	char out[8];

	cr_assert_eq(auth_scram_secret_from_password("pw", salt, 0, 4096, &sec), -1);
	cr_assert_eq(auth_scram_secret_from_password("pw", salt, AUTH_SCRAM_MAX_SALT + 1, 4096, &sec), -1);
	cr_assert_eq(auth_scram_secret_from_password("pw", salt, 16, 0, &sec), -1);
	cr_assert_eq(auth_scram_secret_from_password(NULL, salt, 16, 4096, &sec), -1);
	cr_assert_eq(auth_scram_secret_from_password("pw", salt, 16, 2, &sec), 0);
	cr_assert_eq(auth_scram_format_secret(&sec, out, sizeof(out)), -1);
}

/* ---- SCRAM: RFC 7677 vector ---- */

TestSuite(auth_scram_rfc);

Test(auth_scram_rfc, server_side)
{
	struct auth_scram_secret sec = rfc_secret();
	struct auth_scram_server s;
	uint8_t h[WC_SHA256_DIGEST_SIZE];
	char out[600];

	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	strcpy(s.server_nonce, RFC_SERVER_NONCE);
	int n = auth_scram_server_first(&s, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), out, sizeof(out));
	cr_assert_eq(n, (int)strlen(RFC_SERVER_FIRST), "%s", s.error);
	cr_assert_str_eq(out, RFC_SERVER_FIRST);
	cr_assert_not(s.have_client_key);

	n = auth_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, sizeof(out));
	cr_assert_eq(n, (int)strlen(RFC_SERVER_FINAL), "%s", s.error);
	cr_assert_str_eq(out, RFC_SERVER_FINAL);
	cr_assert(s.have_client_key);
	cr_assert_eq(wc_Sha256Hash(s.client_key, AUTH_SCRAM_KEY_LEN, h), 0);
	cr_assert_eq(memcmp(h, sec.stored_key, sizeof(h)), 0);

	/* the exchange is over */
	cr_assert_eq(auth_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, sizeof(out)), -1);
}

Test(auth_scram_rfc, client_side)
{
	struct auth_scram_client c;
	char out[600];

	cr_assert_eq(auth_scram_client_init(&c, "pencil", NULL, NULL), 0);
	strcpy(c.client_first_bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");
	int n = auth_scram_client_first(&c, out, sizeof(out));
	cr_assert_eq(n, (int)strlen(RFC_CLIENT_FIRST));
	cr_assert_str_eq(out, RFC_CLIENT_FIRST);

	n = auth_scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, sizeof(out));
	cr_assert_eq(n, (int)strlen(RFC_CLIENT_FINAL), "%s", c.error);
	cr_assert_str_eq(out, RFC_CLIENT_FINAL);
	cr_assert_eq(auth_scram_client_verify(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)), 0, "%s", c.error);
}

Test(auth_scram_rfc, client_rejects_forged_server_signature)
{
	struct auth_scram_client c;
	const char *forged = "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

	rfc_client_at_verify(&c);
	cr_assert_eq(auth_scram_client_verify(&c, forged, strlen(forged)), -1);
	cr_assert_str_eq(c.error, "SCRAM server signature mismatch");
}

/* The ClientKey recovered from the RFC login lets pgring log in again without the
 * password, against any server holding the same secret. */
Test(auth_scram_rfc, recovered_client_key_logs_in)
{
	struct auth_scram_secret sec = rfc_secret();
	struct auth_scram_server s, s2;
	struct auth_scram_client c;
	uint8_t key[AUTH_SCRAM_KEY_LEN];
	char out[600];

	rfc_server_at_final(&s, &sec);
	cr_assert_gt(auth_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, sizeof(out)), 0);
	memcpy(key, s.client_key, sizeof(key));

	cr_assert_eq(login(NULL, key, &sec, &sec, &c, &s2), 0, "client: %s / server: %s", c.error, s2.error);
	cr_assert(s2.have_client_key);
	cr_assert_eq(memcmp(s2.client_key, key, sizeof(key)), 0);
}

/* ---- SCRAM: our two sides against each other ---- */

TestSuite(auth_scram);

Test(auth_scram, password_login)
{
	struct auth_scram_secret sec = quick_secret("open sesame", 7, 64);
	struct auth_scram_server s;
	struct auth_scram_client c;

	cr_assert_eq(login("open sesame", NULL, NULL, &sec, &c, &s), 0, "client: %s / server: %s",
		     c.error, s.error);
	cr_assert(s.have_client_key);
	/* random nonces: 24 bytes of base64 each */
	cr_assert_eq(strlen(c.client_nonce), 32);
	cr_assert_eq(strlen(s.server_nonce), 32);
	cr_assert_str_eq(c.client_nonce, s.client_nonce);
	cr_assert_eq(strncmp(c.client_first_bare, "n=,r=", 5), 0);
}

Test(auth_scram, wrong_password_refused)
{
	struct auth_scram_secret sec = quick_secret("open sesame", 7, 64);
	struct auth_scram_server s;
	struct auth_scram_client c;

	cr_assert_eq(login("open sesame!", NULL, NULL, &sec, &c, &s), -1);
	cr_assert_str_neq(s.error, "");
	cr_assert_str_eq(s.sqlstate, "28P01");
	cr_assert_not(s.have_client_key);
	cr_assert_eq(login("", NULL, NULL, &sec, &c, &s), -1);
	cr_assert_not(s.have_client_key);
}

/* Against PostgreSQL 15's own secret: the password logs in, a wrong one does not. */
Test(auth_scram, postgresql_secret_login)
{
	struct auth_scram_secret sec;
	struct auth_scram_server s;
	struct auth_scram_client c;

	cr_assert_eq(auth_scram_parse_secret(PG15_ALICE_SECRET, &sec), 0);
	cr_assert_eq(login(PG15_ALICE_PASSWORD, NULL, NULL, &sec, &c, &s), 0, "client: %s / server: %s",
		     c.error, s.error);
	cr_assert_eq(login("correct horse battery stapler", NULL, NULL, &sec, &c, &s), -1);

	cr_assert_eq(auth_scram_parse_secret(PG15_CAROL_SECRET, &sec), 0);
	cr_assert_eq(login(PG15_CAROL_PASSWORD, NULL, NULL, &sec, &c, &s), 0, "client: %s / server: %s",
		     c.error, s.error);
	cr_assert_eq(login("passwoerd", NULL, NULL, &sec, &c, &s), -1);
}

Test(auth_scram, client_key_needs_same_salt_and_iterations)
{
	struct auth_scram_secret sec = quick_secret("pw", 1, 32);
	struct auth_scram_secret other_salt = quick_secret("pw", 2, 32);
	struct auth_scram_secret other_iter = quick_secret("pw", 1, 33);
	struct auth_scram_server s;
	struct auth_scram_client c;

	cr_assert_eq(login("pw", NULL, NULL, &sec, &c, &s), 0);
	uint8_t key[AUTH_SCRAM_KEY_LEN];
	memcpy(key, s.client_key, sizeof(key));

	cr_assert_eq(login(NULL, key, &sec, &sec, &c, &s), 0, "%s", c.error);
	cr_assert_eq(login(NULL, key, &sec, &other_salt, &c, &s), -1);
	cr_assert_str_eq(c.error, "server SCRAM secret differs from auth_file secret");
	cr_assert_eq(login(NULL, key, &sec, &other_iter, &c, &s), -1);
	cr_assert_str_eq(c.error, "server SCRAM secret differs from auth_file secret");

	/* a key that is not this secret's ClientKey is caught before anything is sent */
	key[0] ^= 1;
	cr_assert_eq(login(NULL, key, &sec, &sec, &c, &s), -1);
	cr_assert_str_eq(c.error, "SCRAM client key does not match its secret");
}

Test(auth_scram, client_init_needs_credentials)
{
	struct auth_scram_secret sec = quick_secret("pw", 1, 2);
	uint8_t key[AUTH_SCRAM_KEY_LEN] = { 0 };
	struct auth_scram_client c;
	char out[100];

	cr_assert_eq(auth_scram_client_init(&c, NULL, NULL, NULL), -1);
	cr_assert_str_neq(c.error, "");
	cr_assert_eq(auth_scram_client_first(&c, out, sizeof(out)), -1);
	cr_assert_eq(auth_scram_client_init(&c, NULL, key, NULL), -1);
	cr_assert_eq(auth_scram_client_init(&c, NULL, NULL, &sec), -1);
	cr_assert_eq(auth_scram_client_init(&c, NULL, key, &sec), 0);
}

Test(auth_scram, server_init_needs_valid_secret)
{
	struct auth_scram_secret sec = quick_secret("pw", 1, 2);
	struct auth_scram_server s;
	char out[200];

	sec.salt_len = 0;
	cr_assert_eq(auth_scram_server_init(&s, &sec), -1);
	cr_assert_eq(auth_scram_server_first(&s, "n,,n=,r=a", 9, out, sizeof(out)), -1);
	sec.salt_len = AUTH_SCRAM_MAX_SALT + 1;
	cr_assert_eq(auth_scram_server_init(&s, &sec), -1);
	sec.salt_len = 16;
	sec.iterations = 0;
	cr_assert_eq(auth_scram_server_init(&s, &sec), -1);
	cr_assert_eq(auth_scram_server_init(&s, NULL), -1);
}

/* "y,," (client could bind but thinks we cannot) pairs with c=eSws. */
Test(auth_scram, gs2_flag_y)
{
	struct auth_scram_secret sec = rfc_secret();
	struct auth_scram_server s;
	char out[600];
	const char *first = "y,,n=user,r=rOprNGfwEbeRWgbNEkqO";

	server_after_first(&s, &sec, first);
	cr_assert_eq(server_final_str(&s, "c=biws,r=rOprNGfwEbeRWgbNEkqOSRV,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), -1);
	cr_assert_str_eq(s.error, "unexpected SCRAM channel-binding attribute");

	/* a proper y-exchange: drive our client's math with a hand-made first message */
	struct auth_scram_client c;
	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	rfc_client_ready(&c);
	cr_assert_gt(auth_scram_client_first(&c, out, sizeof(out)), 0);
	int n = auth_scram_server_first(&s, first, strlen(first), out, sizeof(out));
	cr_assert_gt(n, 0);
	/* our client always sends n,,, so its final carries c=biws: the y-server refuses it */
	char final[600];
	int m = auth_scram_client_final(&c, out, (size_t)n, final, sizeof(final));
	cr_assert_gt(m, 0);
	cr_assert_eq(auth_scram_server_final(&s, final, (size_t)m, out, sizeof(out)), -1);
}

/* ---- SCRAM: malformed and hostile input ---- */

TestSuite(auth_scram_bad);

Test(auth_scram_bad, client_first_rejected)
{
	struct auth_scram_secret sec = quick_secret("pw", 3, 2);
	struct auth_scram_server s;
	char out[600], big[2000];
	struct {
		const char *msg;
		const char *error; /* substring expected in "error: detail", or NULL */
	} cases[] = {
		/* channel binding where the client selected plain SCRAM-SHA-256 (the default) */
		{ "p=tls-server-end-point,,n=,r=abc", "includes channel binding data" },
		{ "p,,n=,r=abc", "includes channel binding data" },
		{ "n,a=admin,n=,r=abc", "authorization identity" },
		{ "n,,m=ext,n=,r=abc", "extension" },
		{ "n,,n=,r=abc,m=ext", "extension" },
		{ "x,,n=,r=abc", NULL },
		{ "n,,", NULL },
		{ "n,", NULL },
		{ "", NULL },
		{ "n,,n=", NULL },
		{ "n,,n=,", NULL },
		{ "n,,n=,r=", NULL },
		{ "n,,n=,r=abc,", NULL },
		{ "n,,r=abc", NULL },
		{ "n,,n=,x=abc", NULL },
		{ "n,,n=,r=ab c", NULL },
		{ "n,,n=,r=ab\x80", NULL },
		{ "n,,n=,r=abc,=x", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
		int n = auth_scram_server_first(&s, cases[i].msg, strlen(cases[i].msg), out, sizeof(out));
		cr_assert_eq(n, -1, "accepted %s", cases[i].msg);
		cr_assert_str_neq(s.error, "");
		cr_assert_str_eq(s.sqlstate, "08P01", "%s", cases[i].msg);
		char why[400];
		snprintf(why, sizeof(why), "%s: %s", s.error, s.detail);
		if (cases[i].error)
			cr_assert(strstr(why, cases[i].error), "%s: %s", cases[i].msg, why);
		/* a failed exchange stays failed */
		cr_assert_eq(auth_scram_server_first(&s, "n,,n=,r=abc", 11, out, sizeof(out)), -1);
	}

	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	cr_assert_eq(auth_scram_server_first(&s, "n,,n=,r=a\0c", 11, out, sizeof(out)), -1);

	/* a nonce too long for client_nonce[128] */
	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	strcpy(big, "n,,n=,r=");
	memset(big + 8, 'x', 200);
	big[208] = '\0';
	cr_assert_eq(auth_scram_server_first(&s, big, strlen(big), out, sizeof(out)), -1);
	/* a bare too long for client_first_bare[512] */
	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	memset(big, 'u', sizeof(big));
	memcpy(big, "n,,n=", 5);
	strcpy(big + 600, ",r=abc");
	cr_assert_eq(auth_scram_server_first(&s, big, strlen(big), out, sizeof(out)), -1);
	/* output buffer too small */
	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	cr_assert_eq(auth_scram_server_first(&s, "n,,n=,r=abc", 11, out, 10), -1);
	/* the longest acceptable nonce fits everywhere */
	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	strcpy(big, "n,,n=,r=");
	memset(big + 8, 'x', 127);
	big[8 + 127] = '\0';
	cr_assert_gt(auth_scram_server_first(&s, big, strlen(big), out, sizeof(out)), 0, "%s", s.error);
	/* the n= value is not looked at */
	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	cr_assert_gt(auth_scram_server_first(&s, "n,,n=some=2Cone,r=abc,x=ext", 27, out, sizeof(out)), 0,
		     "%s", s.error);
}

Test(auth_scram_bad, server_nonce_hook_validated)
{
	struct auth_scram_secret sec = quick_secret("pw", 3, 2);
	struct auth_scram_server s;
	char out[600];

	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	strcpy(s.server_nonce, "has,comma");
	cr_assert_eq(auth_scram_server_first(&s, "n,,n=,r=abc", 11, out, sizeof(out)), -1);
	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	memset(s.server_nonce, 'x', sizeof(s.server_nonce)); /* not NUL-terminated */
	cr_assert_eq(auth_scram_server_first(&s, "n,,n=,r=abc", 11, out, sizeof(out)), -1);
}

Test(auth_scram_bad, client_final_rejected)
{
	struct auth_scram_secret sec = rfc_secret();
	struct auth_scram_server s;
	const char *nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
	char msg[600];
	struct {
		const char *fmt; /* %s = the right nonce */
		const char *error;
	} cases[] = {
		{ "c=biws,r=%sX,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "nonce" },
		{ "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "nonce" },
		{ "c=biws,r=%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ", "proof" },
		{ "c=biws,r=%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndV!=", "proof" },
		{ "c=biws,r=%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7And", "proof" },
		{ "c=biws,r=%s,p=AAAA", "proof" },
		{ "c=biws,r=%s,p=", "proof" },
		{ "c=biws,r=%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1", "garbage" },
		{ "c=biws,r=%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,", NULL },
		{ "c=biws,r=%s,m=1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "extension" },
		{ "c=biws,r=%s", NULL },
		{ "c=biws,r=%s,", NULL },
		{ "c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", NULL },
		{ "r=%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", NULL },
		{ "c=eSws,r=%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "channel-binding" },
		{ "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "channel-binding" },
		{ "c=biws,r=%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVR=", "proof" }, /* non-canonical */
		{ "c=biws,r=%s,p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "wrong password" },
		{ "c=biws,r=%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", NULL }, /* the good one */
	};
	size_t ncases = sizeof(cases) / sizeof(cases[0]);

	for (size_t i = 0; i < ncases; i++) {
		rfc_server_at_final(&s, &sec);
		snprintf(msg, sizeof(msg), cases[i].fmt, nonce);
		int n = server_final_str(&s, msg);
		if (i == ncases - 1) {
			cr_assert_gt(n, 0, "%s", s.error);
			continue;
		}
		cr_assert_eq(n, -1, "accepted %s", msg);
		cr_assert_not(s.have_client_key);
		if (cases[i].error)
			cr_assert(strstr(s.error, cases[i].error), "%s: %s", msg, s.error);
	}

	/* every truncation of the good message fails */
	snprintf(msg, sizeof(msg), "%s", RFC_CLIENT_FINAL);
	for (size_t len = 0; len < strlen(msg); len++) {
		char out[600];
		rfc_server_at_final(&s, &sec);
		cr_assert_eq(auth_scram_server_final(&s, msg, len, out, sizeof(out)), -1, "len %zu", len);
	}
}

Test(auth_scram_bad, server_out_of_order_and_small_output)
{
	struct auth_scram_secret sec = rfc_secret();
	struct auth_scram_server s;
	char out[600];

	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	cr_assert_eq(auth_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, sizeof(out)), -1);
	cr_assert_str_eq(s.error, "SCRAM exchange out of order");

	rfc_server_at_final(&s, &sec);
	cr_assert_eq(auth_scram_server_first(&s, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), out, sizeof(out)), -1);

	/* no room for the NUL after the server-final-message */
	rfc_server_at_final(&s, &sec);
	size_t len = strlen(RFC_CLIENT_FINAL);
	cr_assert_eq(auth_scram_server_final(&s, RFC_CLIENT_FINAL, len, out, strlen(RFC_SERVER_FINAL)), -1);
	cr_assert_not(s.have_client_key);
}

Test(auth_scram_bad, server_first_rejected_by_client)
{
	struct auth_scram_client c;
	const char *bad[] = {
		"r=CLISRV,s=QUJD,i=4096,x=1",
		"r=CLISRV,s=QUJD,i=4096,",
		"r=XLISRV,s=QUJD,i=4096",
		"r=CLI,s=QUJD,i=4096",
		"r=CL,s=QUJD,i=4096",
		"r=CLISR V,s=QUJD,i=4096",
		"r=CLISRV,s=QUJ,i=4096",
		"r=CLISRV,s=,i=4096",
		"r=CLISRV,s=QU!D,i=4096",
		"r=CLISRV,s=QUJD,i=0",
		"r=CLISRV,s=QUJD,i=-1",
		"r=CLISRV,s=QUJD,i=+5",
		"r=CLISRV,s=QUJD,i=4096x",
		"r=CLISRV,s=QUJD,i=",
		"r=CLISRV,s=QUJD,i=2147483648",
		"r=CLISRV,s=QUJD,i=99999999999999999999",
		"r=CLISRV,s=QUJD",
		"r=CLISRV,i=4096,s=QUJD",
		"s=QUJD,r=CLISRV,i=4096",
		"m=1,r=CLISRV,s=QUJD,i=4096",
		"e=other-error",
		"",
		/* salt over AUTH_SCRAM_MAX_SALT (66 bytes) */
		"r=CLISRV,s=QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB,i=1",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		client_after_first(&c, "pw");
		cr_assert_eq(client_final_str(&c, bad[i]), -1, "accepted %s", bad[i]);
		cr_assert_str_neq(c.error, "");
		cr_assert_eq(client_final_str(&c, "r=CLISRV,s=QUJD,i=1"), -1); /* stays failed */
	}
	client_after_first(&c, "pw");
	cr_assert_eq(client_final_str(&c, "r=CLISRV,s=QUJD,i=4096x"), -1);
	cr_assert_str_eq(c.error, "invalid SCRAM iteration count");
	client_after_first(&c, "pw");
	cr_assert_eq(client_final_str(&c, "r=XLISRV,s=QUJD,i=1"), -1);
	cr_assert_str_eq(c.error, "SCRAM nonce mismatch");

	/* a server nonce too long for auth_message[1024] */
	char big[1200] = "r=CLI";
	memset(big + 5, 'x', 1000);
	strcpy(big + 1005, ",s=QUJD,i=1");
	client_after_first(&c, "pw");
	cr_assert_eq(client_final_str(&c, big), -1);

	/* the good one, for contrast; output buffer too small then fine */
	char out[600];
	client_after_first(&c, "pw");
	cr_assert_eq(auth_scram_client_final(&c, "r=CLISRV,s=QUJD,i=1", 19, out, 20), -1);
	client_after_first(&c, "pw");
	cr_assert_gt(client_final_str(&c, "r=CLISRV,s=QUJD,i=1"), 0, "%s", c.error);
}

Test(auth_scram_bad, server_final_rejected_by_client)
{
	struct auth_scram_client c;
	const char *bad[] = {
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl9",
		"v=",
		"v",
		"",
		"x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		"e=invalid-proof",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rfc_client_at_verify(&c);
		cr_assert_eq(auth_scram_client_verify(&c, bad[i], strlen(bad[i])), -1, "accepted %s", bad[i]);
		cr_assert_eq(auth_scram_client_verify(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)), -1);
	}
	cr_assert_str_eq(c.error, "SCRAM exchange out of order");

	rfc_client_at_verify(&c);
	const char *hostile = "e=invalid-proof\n\x1b[31m";
	cr_assert_eq(auth_scram_client_verify(&c, hostile, strlen(hostile)), -1);
	cr_assert_str_eq(c.error, "SCRAM error from server: invalid-proof??[31m");
}

Test(auth_scram_bad, client_first_hook_validated)
{
	struct auth_scram_client c;
	char out[600];

	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	strcpy(c.client_first_bare, "n=,r=bad nonce");
	cr_assert_eq(auth_scram_client_first(&c, out, sizeof(out)), -1);
	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_first(&c, out, 10), -1);
	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_verify(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)), -1);
}

/* Random bytes and random mutations of good messages at every step: whatever the
 * outcome, nothing may crash (run under ASan/UBSan) and failures must say why. */
Test(auth_scram_bad, junk_does_not_crash)
{
	struct auth_scram_secret sec = rfc_secret();
	const char *good[] = { RFC_CLIENT_FIRST, RFC_CLIENT_FINAL, RFC_SERVER_FIRST, RFC_SERVER_FINAL };
	char msg[1500], out[600];

	for (int iter = 0; iter < 4000; iter++) {
		int step = iter % 4;
		size_t len = strlen(good[step]);
		memcpy(msg, good[step], len);
		if (iter % 8 < 4) {
			for (int k = 0; k < 3; k++)
				msg[rng() % len] = (char)(rng() % 256);
			len = rng() % (len + 1);
		} else {
			len = rng() % sizeof(msg);
			for (size_t i = 0; i < len; i++)
				msg[i] = iter % 16 < 8 ? (char)rng() : "nyrpcsiv=,ABab01+/"[rng() % 18];
		}

		struct auth_scram_server s;
		struct auth_scram_client c;
		int rc;
		if (step == 0) {
			cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
			rc = auth_scram_server_first(&s, msg, len, out, sizeof(out));
			if (rc < 0)
				cr_assert_str_neq(s.error, "");
			continue;
		}
		if (step == 1) {
			rfc_server_at_final(&s, &sec);
			rc = auth_scram_server_final(&s, msg, len, out, sizeof(out));
			cr_assert_eq(rc < 0, !s.have_client_key);
			if (rc < 0)
				cr_assert_str_neq(s.error, "");
			continue;
		}
		/* small iteration counts only: a mutated i= could otherwise be huge */
		if (step == 2) {
			rfc_client_ready(&c);
			cr_assert_gt(auth_scram_client_first(&c, out, sizeof(out)), 0);
			char *i = memmem(msg, len, "i=", 2);
			if (i && (size_t)(i - msg) + 2 < len)
				i[2] = '1', len = (size_t)(i - msg) + 3;
			rc = auth_scram_client_final(&c, msg, len, out, sizeof(out));
		} else {
			rfc_client_at_verify(&c);
			rc = auth_scram_client_verify(&c, msg, len);
		}
		if (rc < 0)
			cr_assert_str_neq(c.error, "");
	}
}

/* ---- SCRAM-SHA-256-PLUS: channel binding ---- */

TestSuite(auth_scram_plus);

/* tls-server-end-point data of `len` bytes: first, first+1, ... */
static void cbind_bytes(uint8_t *out, size_t len, uint8_t first)
{
	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)(first + i);
}

/* A server holding binding data 00 01 .. 1f (or none when len is 0), told the
 * client selected `mech`, with the server nonce of the vector. */
static void plus_server(struct auth_scram_server *s, const struct auth_scram_secret *sec, size_t len,
			const char *mech)
{
	uint8_t data[AUTH_SCRAM_MAX_CBIND];

	cbind_bytes(data, sizeof(data), 0);
	cr_assert_eq(auth_scram_server_init_cbind(s, sec, len ? data : NULL, len), 0, "%s", s->error);
	cr_assert_eq(auth_scram_server_mechanism(s, mech), 0, "%s", s->error);
	strcpy(s->server_nonce, RFC_SERVER_NONCE);
}

static int server_first_str(struct auth_scram_server *s, const char *msg)
{
	char out[600];

	return auth_scram_server_first(s, msg, strlen(msg), out, sizeof(out));
}

/* The exchange failed with exactly this SQLSTATE, message and detail. */
static void assert_refused(const struct auth_scram_server *s, const char *sqlstate, const char *error,
			   const char *detail)
{
	cr_assert_str_eq(s->sqlstate, sqlstate, "%s", s->error);
	cr_assert_str_eq(s->error, error);
	cr_assert_str_eq(s->detail, detail);
	cr_assert_not(s->have_client_key);
}

Test(auth_scram_plus, vector_server_side)
{
	struct auth_scram_secret sec = rfc_secret();
	struct auth_scram_server s;
	uint8_t h[WC_SHA256_DIGEST_SIZE];
	char out[600];

	plus_server(&s, &sec, 32, AUTH_SCRAM_PLUS_MECH);
	int n = auth_scram_server_first(&s, PLUS_CLIENT_FIRST, strlen(PLUS_CLIENT_FIRST), out, sizeof(out));
	cr_assert_eq(n, (int)strlen(PLUS_SERVER_FIRST), "%s", s.error);
	cr_assert_str_eq(out, PLUS_SERVER_FIRST);
	n = auth_scram_server_final(&s, PLUS_CLIENT_FINAL, strlen(PLUS_CLIENT_FINAL), out, sizeof(out));
	cr_assert_eq(n, (int)strlen(PLUS_SERVER_FINAL), "%s: %s", s.error, s.detail);
	cr_assert_str_eq(out, PLUS_SERVER_FINAL);
	cr_assert(s.have_client_key);
	cr_assert_eq(wc_Sha256Hash(s.client_key, AUTH_SCRAM_KEY_LEN, h), 0);
	cr_assert_eq(memcmp(h, sec.stored_key, sizeof(h)), 0);
	cr_assert_str_eq(s.error, "");
	cr_assert_str_eq(s.sqlstate, "");
}

Test(auth_scram_plus, vector_client_side)
{
	struct auth_scram_client c;
	uint8_t data[32];
	char out[600];

	cbind_bytes(data, sizeof(data), 0);
	cr_assert_eq(auth_scram_client_init(&c, "pencil", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_channel_binding(&c, 'p', data, sizeof(data)), 0);
	strcpy(c.client_first_bare, "n=,r=rOprNGfwEbeRWgbNEkqO");
	int n = auth_scram_client_first(&c, out, sizeof(out));
	cr_assert_eq(n, (int)strlen(PLUS_CLIENT_FIRST));
	cr_assert_str_eq(out, PLUS_CLIENT_FIRST);
	n = auth_scram_client_final(&c, PLUS_SERVER_FIRST, strlen(PLUS_SERVER_FIRST), out, sizeof(out));
	cr_assert_eq(n, (int)strlen(PLUS_CLIENT_FINAL), "%s", c.error);
	cr_assert_str_eq(out, PLUS_CLIENT_FINAL);
	cr_assert_eq(auth_scram_client_verify(&c, PLUS_SERVER_FINAL, strlen(PLUS_SERVER_FINAL)), 0, "%s", c.error);
}

/* Our client and server with random nonces, for every hash size a certificate can
 * give: SHA-256, -384 and -512. */
Test(auth_scram_plus, full_exchange)
{
	struct auth_scram_secret sec = quick_secret("open sesame", 9, 64);
	static const size_t sizes[] = { 32, 48, 64 };
	uint8_t data[AUTH_SCRAM_MAX_CBIND];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct auth_scram_server s;
		struct auth_scram_client c;
		char first[600];

		cbind_bytes(data, sizes[i], (uint8_t)(0x80 + i));
		cr_assert_eq(auth_scram_server_init_cbind(&s, &sec, data, sizes[i]), 0);
		cr_assert_eq(auth_scram_server_mechanism(&s, AUTH_SCRAM_PLUS_MECH), 0, "%s", s.error);
		cr_assert_eq(auth_scram_client_init(&c, "open sesame", NULL, NULL), 0);
		cr_assert_eq(auth_scram_client_channel_binding(&c, 'p', data, sizes[i]), 0);
		cr_assert_eq(exchange(&c, &s), 0, "%zu: client: %s / server: %s: %s", sizes[i], c.error,
			     s.error, s.detail);
		cr_assert(s.have_client_key);

		/* and the client really sent PLUS: its first message, redone, names the type */
		cr_assert_eq(auth_scram_client_init(&c, "open sesame", NULL, NULL), 0);
		cr_assert_eq(auth_scram_client_channel_binding(&c, 'p', data, sizes[i]), 0);
		cr_assert_gt(auth_scram_client_first(&c, first, sizeof(first)), 0);
		cr_assert_eq(strncmp(first, "p=tls-server-end-point,,n=,r=", 29), 0, "%s", first);
	}

	/* a wrong password still fails under PLUS, as a wrong password */
	struct auth_scram_server s;
	struct auth_scram_client c;
	cr_assert_eq(auth_scram_server_init_cbind(&s, &sec, data, 32), 0);
	cr_assert_eq(auth_scram_server_mechanism(&s, AUTH_SCRAM_PLUS_MECH), 0);
	cr_assert_eq(auth_scram_client_init(&c, "open sesame!", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_channel_binding(&c, 'p', data, 32), 0);
	cr_assert_eq(exchange(&c, &s), -1);
	assert_refused(&s, "28P01", "SCRAM proof does not match (wrong password)", "");
}

/* The client bound to another certificate (a man in the middle terminating TLS):
 * its proof is right for what it saw, so only the c= check can catch it. */
Test(auth_scram_plus, wrong_binding_data_refused)
{
	struct auth_scram_secret sec = quick_secret("pw", 5, 16);
	uint8_t ours[AUTH_SCRAM_MAX_CBIND], theirs[AUTH_SCRAM_MAX_CBIND];
	struct {
		size_t len;          /* the client's data: ours with one change */
		size_t flip;         /* byte to flip, or SIZE_MAX */
	} cases[] = {
		{ 32, 0 }, { 32, 31 }, { 31, SIZE_MAX }, { 33, SIZE_MAX }, { 48, SIZE_MAX },
	};

	cbind_bytes(ours, sizeof(ours), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct auth_scram_server s;
		struct auth_scram_client c;

		memcpy(theirs, ours, sizeof(theirs));
		if (cases[i].flip != SIZE_MAX)
			theirs[cases[i].flip] ^= 0x01;
		cr_assert_eq(auth_scram_server_init_cbind(&s, &sec, ours, 32), 0);
		cr_assert_eq(auth_scram_server_mechanism(&s, AUTH_SCRAM_PLUS_MECH), 0);
		cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
		cr_assert_eq(auth_scram_client_channel_binding(&c, 'p', theirs, cases[i].len), 0);
		cr_assert_eq(exchange(&c, &s), -1, "case %zu accepted", i);
		assert_refused(&s, "28000", "SCRAM channel binding check failed", "");
	}

	/* the vector's message with another certificate's c=, and c= of "n,," or "y,,"
	 * or of the bare header: all refused before the proof is looked at */
	struct auth_scram_secret rfc = rfc_secret();
	const char *bad_c[] = { PLUS_OTHER_CBIND, "c=biws", "c=eSws", "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws",
				"c=", PLUS_CBIND "A" };
	for (size_t i = 0; i < sizeof(bad_c) / sizeof(bad_c[0]); i++) {
		struct auth_scram_server s;
		char msg[600];

		plus_server(&s, &rfc, 32, AUTH_SCRAM_PLUS_MECH);
		cr_assert_gt(server_first_str(&s, PLUS_CLIENT_FIRST), 0, "%s", s.error);
		snprintf(msg, sizeof(msg), "%s%s", bad_c[i], &PLUS_CLIENT_FINAL[strlen(PLUS_CBIND)]);
		cr_assert_eq(server_final_str(&s, msg), -1, "accepted %s", msg);
		assert_refused(&s, "28000", "SCRAM channel binding check failed", "");
	}
}

/* 'y' to a server that offered PLUS: PostgreSQL's downgrade refusal. */
Test(auth_scram_plus, y_downgrade_refused)
{
	struct auth_scram_secret sec = quick_secret("pw", 6, 16);
	struct auth_scram_server s;
	struct auth_scram_client c;
	uint8_t data[32];

	cbind_bytes(data, sizeof(data), 0);
	cr_assert_eq(auth_scram_server_init_cbind(&s, &sec, data, sizeof(data)), 0);
	cr_assert_eq(auth_scram_server_mechanism(&s, AUTH_SCRAM_MECH), 0);
	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_channel_binding(&c, 'y', NULL, 0), 0);
	cr_assert_eq(exchange(&c, &s), -1);
	assert_refused(&s, "28000", "SCRAM channel binding negotiation error", PG_DOWNGRADE_DETAIL);
	/* refused at the first message: nothing was sent back */
	cr_assert_eq(strlen(s.server_first), 0);

	/* without the call to _mechanism too (SCRAM-SHA-256 is the default) */
	cr_assert_eq(auth_scram_server_init_cbind(&s, &sec, data, sizeof(data)), 0);
	cr_assert_eq(server_first_str(&s, "y,,n=,r=abc"), -1);
	assert_refused(&s, "28000", "SCRAM channel binding negotiation error", PG_DOWNGRADE_DETAIL);

	/* the same client is right when the server offered no PLUS: it completes */
	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	cr_assert_eq(auth_scram_server_mechanism(&s, AUTH_SCRAM_MECH), 0);
	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_channel_binding(&c, 'y', NULL, 0), 0);
	cr_assert_eq(exchange(&c, &s), 0, "client: %s / server: %s", c.error, s.error);
	cr_assert(s.have_client_key);

	/* and 'n' (a client that cannot bind) is fine where PLUS was offered */
	cr_assert_eq(auth_scram_server_init_cbind(&s, &sec, data, sizeof(data)), 0);
	cr_assert_eq(auth_scram_server_mechanism(&s, AUTH_SCRAM_MECH), 0);
	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_eq(exchange(&c, &s), 0, "client: %s / server: %s", c.error, s.error);
}

/* 'p' where the server has no binding data: PLUS cannot even be selected, and a
 * 'p' header under SCRAM-SHA-256 is a malformed message. */
Test(auth_scram_plus, p_without_binding_data_refused)
{
	struct auth_scram_secret sec = quick_secret("pw", 7, 16);
	struct auth_scram_server s;
	struct auth_scram_client c;
	uint8_t data[32];

	cbind_bytes(data, sizeof(data), 0);
	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	cr_assert_eq(auth_scram_server_mechanism(&s, AUTH_SCRAM_PLUS_MECH), -1);
	assert_refused(&s, "08P01", "client selected an invalid SASL authentication mechanism", "");
	cr_assert_eq(server_first_str(&s, PLUS_CLIENT_FIRST), -1); /* stays failed */

	/* NULL data with a length is "no binding", not a crash */
	cr_assert_eq(auth_scram_server_init_cbind(&s, &sec, NULL, 32), 0);
	cr_assert_eq(auth_scram_server_mechanism(&s, AUTH_SCRAM_PLUS_MECH), -1);

	cr_assert_eq(auth_scram_server_init(&s, &sec), 0);
	cr_assert_eq(auth_scram_server_mechanism(&s, AUTH_SCRAM_MECH), 0);
	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_channel_binding(&c, 'p', data, sizeof(data)), 0);
	cr_assert_eq(exchange(&c, &s), -1);
	assert_refused(&s, "08P01", "malformed SCRAM message", PG_DATA_WITHOUT_PLUS_DETAIL);
}

Test(auth_scram_plus, unsupported_binding_type_refused)
{
	struct auth_scram_secret sec = rfc_secret();
	struct auth_scram_server s;
	struct {
		const char *msg;
		const char *error;
	} cases[] = {
		{ "p=tls-unique,,n=,r=abc", "unsupported SCRAM channel-binding type \"tls-unique\"" },
		{ "p=tls-exporter,,n=,r=abc", "unsupported SCRAM channel-binding type \"tls-exporter\"" },
		{ "p=,,n=,r=abc", "unsupported SCRAM channel-binding type \"\"" },
		{ "p=tls-server-end-pointX,,n=,r=abc",
		  "unsupported SCRAM channel-binding type \"tls-server-end-pointX\"" },
		{ "p=tls-server-end-poin,,n=,r=abc",
		  "unsupported SCRAM channel-binding type \"tls-server-end-poin\"" },
		{ "p=TLS-SERVER-END-POINT,,n=,r=abc",
		  "unsupported SCRAM channel-binding type \"TLS-SERVER-END-POINT\"" },
		/* the client's text in our message: printable, at most 30 characters */
		{ "p=a\x01 b\"\x80-0123456789012345678901234567890123,,n=,r=abc",
		  "unsupported SCRAM channel-binding type \"a??b\"?-01234567890123456789012\"" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		plus_server(&s, &sec, 32, AUTH_SCRAM_PLUS_MECH);
		cr_assert_eq(server_first_str(&s, cases[i].msg), -1, "accepted %s", cases[i].msg);
		assert_refused(&s, "08P01", cases[i].error, "");
	}

	/* broken 'p' headers are malformed, and an authzid is refused as before */
	const char *malformed[] = {
		"p,,n=,r=abc", "p=tls-server-end-point", "p=tls-server-end-point,", "p=tls-server-end-point,x,n=,r=abc",
		"p", "p=",
	};
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		plus_server(&s, &sec, 32, AUTH_SCRAM_PLUS_MECH);
		cr_assert_eq(server_first_str(&s, malformed[i]), -1, "accepted %s", malformed[i]);
		cr_assert_str_eq(s.error, "malformed SCRAM client-first-message (gs2 header)", "%s", malformed[i]);
		cr_assert_str_eq(s.sqlstate, "08P01");
	}
	plus_server(&s, &sec, 32, AUTH_SCRAM_PLUS_MECH);
	cr_assert_eq(server_first_str(&s, "p=tls-server-end-point,a=admin,n=,r=abc"), -1);
	cr_assert_str_eq(s.error, "SCRAM authorization identity is not supported");
}

/* The selected mechanism and the gs2 flag must agree, checked in PostgreSQL's order
 * (so 'y' under PLUS is "no binding data", not a downgrade). */
Test(auth_scram_plus, mechanism_and_flag_must_agree)
{
	struct auth_scram_secret sec = rfc_secret();
	struct auth_scram_server s;
	struct {
		const char *mech;
		const char *msg;
		const char *detail;
	} cases[] = {
		{ AUTH_SCRAM_PLUS_MECH, "n,,n=,r=abc", PG_PLUS_WITHOUT_DATA_DETAIL },
		{ AUTH_SCRAM_PLUS_MECH, "y,,n=,r=abc", PG_PLUS_WITHOUT_DATA_DETAIL },
		{ AUTH_SCRAM_MECH, PLUS_CLIENT_FIRST, PG_DATA_WITHOUT_PLUS_DETAIL },
		{ AUTH_SCRAM_MECH, "p=tls-unique,,n=,r=abc", PG_DATA_WITHOUT_PLUS_DETAIL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		plus_server(&s, &sec, 32, cases[i].mech);
		cr_assert_eq(server_first_str(&s, cases[i].msg), -1, "accepted %s", cases[i].msg);
		assert_refused(&s, "08P01", "malformed SCRAM message", cases[i].detail);
	}

	/* names other than the two are refused, even where PLUS is on offer */
	const char *bad_mech[] = { "SCRAM-SHA-1", "SCRAM-SHA-256-plus", "SCRAM-SHA-256-PLUS ", "", NULL };
	uint8_t data[32];
	cbind_bytes(data, sizeof(data), 0);
	for (size_t i = 0; i < sizeof(bad_mech) / sizeof(bad_mech[0]); i++) {
		cr_assert_eq(auth_scram_server_init_cbind(&s, &sec, data, sizeof(data)), 0);
		cr_assert_eq(auth_scram_server_mechanism(&s, bad_mech[i]), -1, "accepted %s",
			     bad_mech[i] ? bad_mech[i] : "NULL");
		assert_refused(&s, "08P01", "client selected an invalid SASL authentication mechanism", "");
	}

	/* the mechanism is chosen before the first message, not after */
	plus_server(&s, &sec, 32, AUTH_SCRAM_PLUS_MECH);
	cr_assert_gt(server_first_str(&s, PLUS_CLIENT_FIRST), 0, "%s", s.error);
	cr_assert_eq(auth_scram_server_mechanism(&s, AUTH_SCRAM_PLUS_MECH), -1);
	cr_assert_str_eq(s.error, "SCRAM exchange out of order");
	cr_assert_str_eq(s.detail, "");
	cr_assert_eq(server_final_str(&s, PLUS_CLIENT_FINAL), -1);

	/* c= must repeat the flag of the first message: 'n' then a PLUS c= is refused */
	plus_server(&s, &sec, 32, AUTH_SCRAM_MECH);
	cr_assert_gt(server_first_str(&s, "n,,n=,r=rOprNGfwEbeRWgbNEkqO"), 0, "%s", s.error);
	cr_assert_eq(server_final_str(&s, PLUS_CLIENT_FINAL), -1);
	cr_assert_str_eq(s.error, "unexpected SCRAM channel-binding attribute");
	cr_assert_str_eq(s.sqlstate, "08P01");
}

Test(auth_scram_plus, init_and_client_setter_validate)
{
	struct auth_scram_secret sec = quick_secret("pw", 8, 2);
	struct auth_scram_server s;
	struct auth_scram_client c;
	uint8_t data[AUTH_SCRAM_MAX_CBIND + 1] = { 0 };
	char out[600];

	cr_assert_eq(auth_scram_server_init_cbind(&s, &sec, data, 0), -1);
	cr_assert_str_eq(s.error, "invalid SCRAM channel-binding data");
	cr_assert_eq(auth_scram_server_mechanism(&s, AUTH_SCRAM_MECH), -1);
	cr_assert_eq(auth_scram_server_init_cbind(&s, &sec, data, AUTH_SCRAM_MAX_CBIND + 1), -1);
	cr_assert_eq(auth_scram_server_first(&s, "n,,n=,r=abc", 11, out, sizeof(out)), -1);
	cr_assert_eq(auth_scram_server_init_cbind(&s, &sec, data, AUTH_SCRAM_MAX_CBIND), 0);
	cr_assert_eq(auth_scram_server_init_cbind(&s, NULL, data, 32), -1);
	cr_assert_str_eq(s.error, "invalid SCRAM secret");

	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_channel_binding(&c, 'x', NULL, 0), -1);
	cr_assert_eq(auth_scram_client_first(&c, out, sizeof(out)), -1);
	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_channel_binding(&c, 'p', NULL, 32), -1);
	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_channel_binding(&c, 'p', data, 0), -1);
	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_channel_binding(&c, 'p', data, AUTH_SCRAM_MAX_CBIND + 1), -1);
	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_gt(auth_scram_client_first(&c, out, sizeof(out)), 0);
	cr_assert_eq(auth_scram_client_channel_binding(&c, 'p', data, 32), -1);
	cr_assert_str_eq(c.error, "SCRAM exchange out of order");

	/* 'n' set explicitly is the default; 'y' changes only the flag */
	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_channel_binding(&c, 'n', data, 32), 0);
	cr_assert_gt(auth_scram_client_first(&c, out, sizeof(out)), 0);
	cr_assert_eq(strncmp(out, "n,,n=,r=", 8), 0, "%s", out);
	cr_assert_eq(auth_scram_client_init(&c, "pw", NULL, NULL), 0);
	cr_assert_eq(auth_scram_client_channel_binding(&c, 'y', NULL, 0), 0);
	cr_assert_gt(auth_scram_client_first(&c, out, sizeof(out)), 0);
	cr_assert_eq(strncmp(out, "y,,n=,r=", 8), 0, "%s", out);
}

/* AuthenticationSASL: PLUS first, then SCRAM-SHA-256, as PostgreSQL lists them
 * under TLS; without PLUS, the same bytes as proto_auth_sasl_mechanisms. */
Test(auth_scram_plus, sasl_mechanisms_list)
{
	uint8_t mem[64], mem2[64];
	struct proto_out o, o2;
	static const uint8_t want[] = {
		'R', 0, 0, 0, 42, 0, 0, 0, 10,
		'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', '-', 'P', 'L', 'U', 'S', 0,
		'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0,
		0,
	};

	proto_out_init(&o, mem, sizeof(mem));
	proto_auth_sasl_mechanisms_plus(&o, true);
	cr_assert_not(o.overflow);
	cr_assert_eq(o.len, sizeof(want));
	cr_assert_eq(memcmp(o.p, want, sizeof(want)), 0);

	proto_out_init(&o, mem, sizeof(mem));
	proto_auth_sasl_mechanisms_plus(&o, false);
	proto_out_init(&o2, mem2, sizeof(mem2));
	proto_auth_sasl_mechanisms(&o2);
	cr_assert_eq(o.len, 24);
	cr_assert_eq(o.len, o2.len);
	cr_assert_eq(memcmp(o.p, o2.p, o.len), 0);
	cr_assert_eq(memcmp(o.p + 9, "SCRAM-SHA-256\0\0", 15), 0);
}

/* Mutations of the PLUS vector at both server steps: nothing crashes, every failure
 * says why (with a SQLSTATE), and no mutated c= gets through. */
Test(auth_scram_plus, junk_does_not_crash)
{
	struct auth_scram_secret sec = rfc_secret();
	const char *good[] = { PLUS_CLIENT_FIRST, PLUS_CLIENT_FINAL };
	char msg[600], out[600];

	for (int iter = 0; iter < 2000; iter++) {
		int step = iter % 2;
		size_t len = strlen(good[step]);
		memcpy(msg, good[step], len);
		size_t at = rng() % len;
		msg[at] = (char)(rng() % 256);
		if (iter % 4 >= 2)
			len = rng() % (len + 1);

		struct auth_scram_server s;
		plus_server(&s, &sec, 32, AUTH_SCRAM_PLUS_MECH);
		int rc;
		if (step == 0) {
			rc = auth_scram_server_first(&s, msg, len, out, sizeof(out));
		} else {
			cr_assert_gt(server_first_str(&s, PLUS_CLIENT_FIRST), 0);
			rc = auth_scram_server_final(&s, msg, len, out, sizeof(out));
			/* the binding data is covered: a change inside c= never passes */
			if (at < strlen(PLUS_CBIND) && msg[at] != PLUS_CLIENT_FINAL[at])
				cr_assert_eq(rc, -1, "accepted a changed c= at %zu", at);
		}
		if (rc < 0) {
			cr_assert_str_neq(s.error, "");
			cr_assert_str_neq(s.sqlstate, "");
		}
	}
}
