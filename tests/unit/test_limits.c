/* tests/unit/test_limits.c: the accounting behind pgring's resource limits
 * (README, "Limits"): the bytes a parameter record and a client's statement
 * names hold (max_client_session_size, max_client_prepared_size), the
 * PARAMS_MAX count, the cap on a server's SCRAM iteration count
 * (max_server_scram_iterations) and the keys' defaults and bounds. */
#include <criterion/criterion.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "pool/params.h"
#include "pool/stmt.h"
#include "proto/auth.h"

/* ---- parameter records count their bytes ---- */

TestSuite(limits_params);

static uint32_t recount(const struct params *p)
{
	uint32_t n = 0;
	for (int i = 0; i < p->n; i++)
		n += (uint32_t)(strlen(p->v[i].name) + strlen(p->v[i].value) + 2);
	return n;
}

Test(limits_params, bytes_follow_set_replace_remove_copy_clear)
{
	struct params p = { 0 }, q = { 0 };
	cr_assert_eq(p.bytes, 0);
	cr_assert(params_set(&p, "TimeZone", "UTC"));
	cr_assert_eq(p.bytes, strlen("TimeZone") + strlen("UTC") + 2);
	cr_assert(params_set(&p, "search_path", "public"));
	cr_assert_eq(p.bytes, recount(&p));
	cr_assert(params_set(&p, "timezone", "Europe/Paris"));   /* replaced: the old value goes */
	cr_assert_eq(p.n, 2);
	cr_assert_eq(p.bytes, recount(&p));
	cr_assert(params_set(&p, "timezone", ""));
	cr_assert_eq(p.bytes, recount(&p));
	params_remove(&p, "TIMEZONE");
	cr_assert_eq(p.n, 1);
	cr_assert_eq(p.bytes, strlen("search_path") + strlen("public") + 2);
	params_remove(&p, "not there");
	cr_assert_eq(p.bytes, recount(&p));
	cr_assert(params_copy(&q, &p));
	cr_assert_eq(q.bytes, p.bytes);
	params_clear(&p);
	cr_assert_eq(p.bytes, 0);
	params_clear(&q);
}

Test(limits_params, a_big_value_counts_in_full)
{
	struct params p = { 0 };
	size_t big = 1 << 20;
	char *v = malloc(big + 1);
	cr_assert_not_null(v);
	memset(v, 'x', big);
	v[big] = 0;
	cr_assert(params_set(&p, "app.blob", v));
	cr_assert_eq(p.bytes, big + strlen("app.blob") + 2);
	v[big / 2] = 0;   /* the same setting, half the value */
	cr_assert(params_set(&p, "app.blob", v));
	cr_assert_eq(p.bytes, big / 2 + strlen("app.blob") + 2);
	free(v);
	params_clear(&p);
}

Test(limits_params, past_params_max_is_full_not_out_of_memory)
{
	struct params p = { 0 };
	char name[32];
	for (int i = 0; i < PARAMS_MAX; i++) {
		snprintf(name, sizeof name, "x.s%d", i);
		cr_assert(params_set(&p, name, "1"), "setting %d of %d", i, PARAMS_MAX);
	}
	cr_assert_not(p.failed);
	cr_assert_not(p.full);
	cr_assert(params_set(&p, "x.s0", "2"), "replacing one is no new setting");
	cr_assert_not(params_set(&p, "x.one_more", "1"));
	cr_assert(p.failed);
	cr_assert(p.full, "the limit, not memory, refused it");
	cr_assert_eq(p.n, PARAMS_MAX);
	cr_assert_eq(p.bytes, recount(&p));
	params_clear(&p);
	cr_assert_not(p.full);
	cr_assert_not(p.failed);
}

/* ---- a client's statement names count their bodies ---- */

TestSuite(limits_stmt);

static uint32_t parse_body(uint8_t *out, const char *query)
{
	size_t n = strlen(query) + 1;
	memcpy(out, query, n);
	out[n] = 0;
	out[n + 1] = 0;   /* no parameter types */
	return (uint32_t)n + 2;
}

Test(limits_stmt, names_count_name_and_body)
{
	struct stmt_registry *reg = NULL;
	struct stmt_map m = { 0 };
	uint8_t b1[64], b2[4096];
	uint32_t n1 = parse_body(b1, "SELECT 1");
	char q[4000];
	memset(q, ' ', sizeof q - 1);
	memcpy(q, "SELECT 2", 8);
	q[sizeof q - 1] = 0;
	uint32_t n2 = parse_body(b2, q);
	struct pstmt *a = stmt_intern(&reg, b1, n1), *b = stmt_intern(&reg, b2, n2);
	cr_assert(a && b);
	cr_assert(stmt_map_put(&m, "s1", a));
	cr_assert_eq(m.bytes, 3 + n1);
	cr_assert(stmt_map_put(&m, "a_longer_name", b));
	cr_assert_eq(m.bytes, 3 + n1 + 14 + n2);
	/* the same statement under another name counts again: a per-client bound */
	struct pstmt *a2 = stmt_intern(&reg, b1, n1);
	cr_assert_eq(a2, a);
	cr_assert(stmt_map_put(&m, "s2", a2));
	cr_assert_eq(m.bytes, 3 + n1 + 14 + n2 + 3 + n1);
	/* growing the table keeps the count */
	char name[16];
	uint64_t before = m.bytes;
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof name, "g%02d", i);
		cr_assert(stmt_map_put(&m, name, stmt_intern(&reg, b1, n1)));
	}
	cr_assert_eq(m.bytes, before + 40 * (4 + n1));
	struct pstmt *t = stmt_map_take(&m, "a_longer_name");
	cr_assert_eq(t, b);
	stmt_unref(reg, t);
	cr_assert_eq(m.bytes, 3 + n1 + 3 + n1 + 40 * (4 + n1));
	cr_assert_null(stmt_map_take(&m, "a_longer_name"));
	cr_assert_eq(m.bytes, 3 + n1 + 3 + n1 + 40 * (4 + n1));
	stmt_map_clear(&m, reg);
	cr_assert_eq(m.bytes, 0);
	cr_assert_eq(stmt_registry_count(reg), 0);
	stmt_registry_free(reg);
}

/* ---- a server's SCRAM iteration count is capped ---- */

TestSuite(limits_scram);

/* The server-first-message a server asking for `iter` iterations sends to a
 * client whose nonce is "CLI". */
static int server_first(struct auth_scram_client *c, const char *password, int max, long iter)
{
	char out[600], msg[200];
	cr_assert_eq(auth_scram_client_init(c, password, NULL, NULL), 0);
	c->max_iterations = max;
	strcpy(c->client_first_bare, "n=,r=CLI");
	cr_assert_gt(auth_scram_client_first(c, out, sizeof out), 0);
	strcpy(c->client_nonce, "CLI");
	snprintf(msg, sizeof msg, "r=CLIserver,s=QSXCR+Q6sek8bf92,i=%ld", iter);
	return auth_scram_client_final(c, msg, strlen(msg), out, sizeof out);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(limits_scram, over_the_cap_fails_at_once)
{
	struct auth_scram_client c;
	double t0 = now_s();
	/* 2^31-1 iterations would take the thread hours of PBKDF2 */
	cr_assert_lt(server_first(&c, "secret", 100000, 2147483647L), 0);
	cr_assert_lt(now_s() - t0, 1.0, "refused without deriving keys");
	cr_assert(c.over_limit);
	cr_assert(strstr(c.error, "max_server_scram_iterations"), "error: %s", c.error);
	cr_assert(strstr(c.error, "2147483647"), "error names the count: %s", c.error);
	cr_assert_lt(server_first(&c, "secret", 4096, 4097), 0);
	cr_assert(c.over_limit);
}

Test(limits_scram, at_the_cap_and_without_one_it_goes_on)
{
	struct auth_scram_client c;
	cr_assert_gt(server_first(&c, "secret", 4096, 4096), 0, "%s", c.error);
	cr_assert_not(c.over_limit);
	cr_assert_gt(server_first(&c, "secret", 0, 5000), 0, "0: no cap; %s", c.error);
	cr_assert_not(c.over_limit);
	/* a malformed count is still malformed, not over the limit */
	cr_assert_lt(server_first(&c, "secret", 4096, 0), 0);
	cr_assert_not(c.over_limit);
}

Test(limits_scram, a_passthrough_key_needs_no_cap)
{
	/* with a client's ClientKey (no password), nothing is derived: the count
	 * must equal the secret's, whatever it is */
	struct auth_scram_secret sec = { .iterations = 4096, .salt_len = 16 };
	uint8_t salt[16] = "0123456789abcdef";
	memcpy(sec.salt, salt, sizeof salt);
	uint8_t key[AUTH_SCRAM_KEY_LEN];
	memset(key, 7, sizeof key);
	cr_assert_eq(wc_Sha256Hash(key, AUTH_SCRAM_KEY_LEN, sec.stored_key), 0);   /* StoredKey = H(ClientKey) */
	memset(sec.server_key, 9, sizeof sec.server_key);
	struct auth_scram_client c;
	char out[600], msg[200], b64[64];
	cr_assert_eq(auth_scram_client_init(&c, NULL, key, &sec), 0);
	c.max_iterations = 1000;   /* below the secret's: not applied, nothing to derive */
	cr_assert_gt(auth_scram_client_first(&c, out, sizeof out), 0);
	strcpy(c.client_nonce, "CLI");
	cr_assert_gt(auth_base64_encode(salt, sizeof salt, b64, sizeof b64), 0);
	snprintf(msg, sizeof msg, "r=CLIserver,s=%s,i=4096", b64);
	cr_assert_gt(auth_scram_client_final(&c, msg, strlen(msg), out, sizeof out), 0, "%s", c.error);
	cr_assert_not(c.over_limit);
}

/* ---- the keys ---- */

TestSuite(limits_config);

static struct config *parse(const char *text, char *err, size_t errlen)
{
	char path[] = "/tmp/pgring-limits-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct config *cfg = NULL;
	int r = config_parse(path, &cfg, err, errlen, NULL);
	unlink(path);
	return r == 0 ? cfg : NULL;
}

Test(limits_config, defaults)
{
	char err[512];
	struct config *c = parse("[pgring]\nauth_type = trust\n", err, sizeof err);
	cr_assert_not_null(c, "%s", err);
	cr_expect_eq(c->max_packet_size, 256 * 1024 * 1024);
	cr_expect_eq(c->max_pending_bytes, 256 * 1024);
	cr_expect_eq(c->max_startup_packet, 10000);
	cr_expect_eq(c->max_client_prepared_statements, 10000);
	cr_expect_eq(c->max_prepared_statements, 200);
	cr_expect_eq(c->max_client_prepared_size, 64 * 1024 * 1024);
	cr_expect_eq(c->max_client_session_size, 16 * 1024 * 1024);
	cr_expect_eq(c->max_server_scram_iterations, 100000);
	cr_expect_eq(c->max_client_pipeline, 65536);
	config_free(c);
}

Test(limits_config, set_with_units_and_bounds)
{
	char err[512];
	struct config *c = parse("[pgring]\nauth_type = trust\nmax_client_prepared_size = 2MB\n"
				 "max_client_session_size = 64kB\nmax_server_scram_iterations = 4096\n",
				 err, sizeof err);
	cr_assert_not_null(c, "%s", err);
	cr_expect_eq(c->max_client_prepared_size, 2 * 1024 * 1024);
	cr_expect_eq(c->max_client_session_size, 64 * 1024);
	cr_expect_eq(c->max_server_scram_iterations, 4096);
	config_free(c);
	static const char *const bad[] = {
		"max_client_prepared_size = 100", "max_client_session_size = 10", "max_server_scram_iterations = 0",
		"max_client_session_size = 4GB", "max_server_scram_iterations = lots",
		"max_client_pipeline = 100",   /* below 4096: a server's unflushed replies could deadlock it */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[256];
		snprintf(text, sizeof text, "[pgring]\nauth_type = trust\n%s\n", bad[i]);
		err[0] = 0;
		cr_expect_null(parse(text, err, sizeof err), "%s accepted", bad[i]);
		cr_expect(strstr(err, "max_"), "'%s': error names the key: %s", bad[i], err);
	}
}
