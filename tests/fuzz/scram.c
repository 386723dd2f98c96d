/* tests/fuzz/scram.c: the SCRAM-SHA-256 exchange (proto/auth.c), both sides.
 * proto/auth.c is included with getrandom() replaced by a constant, so that
 * nonces are the same on every run: the fuzzer can then match the server's
 * nonce in a client-final-message and reach the proof check, and a finding
 * replays. Modes (first byte % 3):
 *   0  pgring as server: mechanism \0 client-first \0 client-final (the rest)
 *   1  pgring as client: server-first \0 server-final (the rest)
 *   2  pgring's client and server talking, each message cut at a fuzzed offset
 *      and given a fuzzed tail: offset byte + tail per message, \0-separated
 *      (client-first, server-first, client-final, server-final)
 * Bit 0x10 of the first byte: channel binding (tls-server-end-point data). */
#include <stddef.h>
#include <sys/types.h>

static ssize_t fuzz_getrandom(void *buf, size_t n, unsigned flags);
#define getrandom(b, n, f) fuzz_getrandom(b, n, f)
#include "proto/auth.c"
#undef getrandom

#include "tests/fuzz/fuzz.h"

static ssize_t fuzz_getrandom(void *buf, size_t n, unsigned flags)
{
	(void)flags;
	memset(buf, 0x5a, n);
	return (ssize_t)n;
}

static const char password[] = "pencil";
static struct auth_scram_secret secret;
static const uint8_t cbind[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	static const uint8_t salt[16] = "fuzz-salt-16byte";
	FUZZ_CHECK(auth_scram_secret_from_password(password, salt, sizeof salt, 4096, &secret) == 0);
	return 0;
}

/* Split the input at \0 into at most max parts; the last takes the rest. */
static int split(const uint8_t *d, size_t n, const uint8_t **part, size_t *len, int max)
{
	int k = 0;
	while (k < max - 1) {
		const uint8_t *z = memchr(d, 0, n);
		if (!z)
			break;
		part[k] = d;
		len[k++] = (size_t)(z - d);
		n -= (size_t)(z - d) + 1;
		d = z + 1;
	}
	part[k] = d;
	len[k++] = n;
	return k;
}

/* A big iteration count in a server-first-message is a slow input, not a path
 * of the parser: PBKDF2 would run that many rounds. Cap what the fuzzer sends. */
static bool slow_iterations(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 2 < n; i++) {
		if (p[i] == 'i' && p[i + 1] == '=' && (i == 0 || p[i - 1] == ',')) {
			size_t digits = 0;
			while (i + 2 + digits < n && p[i + 2 + digits] >= '0' && p[i + 2 + digits] <= '9')
				digits++;
			if (digits > 5 || (digits == 5 && p[i + 2] > '1'))
				return true;
		}
	}
	return false;
}

static void server_mode(const uint8_t *d, size_t n, bool cb)
{
	const uint8_t *part[3];
	size_t len[3];
	int k = split(d, n, part, len, 3);
	struct auth_scram_server s;
	FUZZ_CHECK(auth_scram_server_init_cbind(&s, &secret, cb ? cbind : NULL, sizeof cbind) == 0);
	char *mech = fuzz_strndup(part[0], len[0]);
	int rc = auth_scram_server_mechanism(&s, mech);
	free(mech);
	char out[512];
	if (k > 1) {
		rc = auth_scram_server_first(&s, (const char *)part[1], len[1], out, sizeof out);
		FUZZ_CHECK(rc == -1 || (rc > 0 && (size_t)rc < sizeof out));
		if (rc < 0)
			FUZZ_CHECK(s.error[0] && s.sqlstate[0]);
	}
	if (k > 2) {
		rc = auth_scram_server_final(&s, (const char *)part[2], len[2], out, sizeof out);
		FUZZ_CHECK(rc == -1 || (rc > 0 && (size_t)rc < sizeof out));
		if (rc < 0)
			FUZZ_CHECK(s.error[0] && s.sqlstate[0]);
	}
}

static void client_mode(const uint8_t *d, size_t n, bool cb)
{
	const uint8_t *part[2];
	size_t len[2];
	int k = split(d, n, part, len, 2);
	if (slow_iterations(part[0], len[0]))
		return;
	struct auth_scram_client c;
	FUZZ_CHECK(auth_scram_client_init(&c, password, NULL, NULL) == 0);
	if (cb)
		FUZZ_CHECK(auth_scram_client_channel_binding(&c, 'p', cbind, sizeof cbind) == 0);
	char out[1024];
	int rc = auth_scram_client_first(&c, out, sizeof out);
	FUZZ_CHECK(rc > 0);
	rc = auth_scram_client_final(&c, (const char *)part[0], len[0], out, sizeof out);
	FUZZ_CHECK(rc == -1 || (rc > 0 && (size_t)rc < sizeof out));
	if (rc > 0 && k > 1)
		(void)auth_scram_client_verify(&c, (const char *)part[1], len[1]);
}

/* msg[0..*n) cut at the offset the edit's first byte names and given the
 * edit's tail; an empty edit leaves it alone. */
static void edit(char *msg, size_t *n, size_t cap, const uint8_t *e, size_t elen)
{
	if (elen == 0)
		return;
	size_t at = e[0] < *n ? e[0] : *n;
	size_t tail = elen - 1 < cap - at ? elen - 1 : cap - at;
	memcpy(msg + at, e + 1, tail);
	*n = at + tail;
}

static void roundtrip_mode(const uint8_t *d, size_t n, bool cb)
{
	const uint8_t *part[4] = { 0 };
	size_t len[4] = { 0 };
	split(d, n, part, len, 4);
	struct auth_scram_server s;
	struct auth_scram_client c;
	FUZZ_CHECK(auth_scram_server_init_cbind(&s, &secret, cb ? cbind : NULL, sizeof cbind) == 0);
	FUZZ_CHECK(auth_scram_client_init(&c, password, NULL, NULL) == 0);
	if (cb) {
		FUZZ_CHECK(auth_scram_server_mechanism(&s, AUTH_SCRAM_PLUS_MECH) == 0);
		FUZZ_CHECK(auth_scram_client_channel_binding(&c, 'p', cbind, sizeof cbind) == 0);
	}
	char m[1024];
	int rc = auth_scram_client_first(&c, m, sizeof m);
	FUZZ_CHECK(rc > 0);
	size_t k = (size_t)rc;
	bool clean = len[0] == 0;
	edit(m, &k, sizeof m, part[0], len[0]);
	rc = auth_scram_server_first(&s, m, k, m, sizeof m);
	if (clean)
		FUZZ_CHECK(rc > 0);
	if (rc < 0)
		return;
	k = (size_t)rc;
	clean = clean && len[1] == 0;
	edit(m, &k, sizeof m, part[1], len[1]);
	if (slow_iterations((const uint8_t *)m, k))
		return;
	rc = auth_scram_client_final(&c, m, k, m, sizeof m);
	if (clean)
		FUZZ_CHECK(rc > 0);
	if (rc < 0)
		return;
	k = (size_t)rc;
	clean = clean && len[2] == 0;
	edit(m, &k, sizeof m, part[2], len[2]);
	rc = auth_scram_server_final(&s, m, k, m, sizeof m);
	/* an untouched exchange succeeds; a wrong proof never does */
	if (clean)
		FUZZ_CHECK(rc > 0 && s.have_client_key);
	if (rc < 0)
		return;
	k = (size_t)rc;
	clean = clean && len[3] == 0;
	edit(m, &k, sizeof m, part[3], len[3]);
	rc = auth_scram_client_verify(&c, m, k);
	if (clean)
		FUZZ_CHECK(rc == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool cb = data[0] & 0x10;
	switch (data[0] % 3) {
	case 0: server_mode(data + 1, size - 1, cb); break;
	case 1: client_mode(data + 1, size - 1, cb); break;
	default: roundtrip_mode(data + 1, size - 1, cb); break;
	}
	return 0;
}
