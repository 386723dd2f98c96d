/* tests/fuzz/md5.c: MD5 password checks and the stored-secret parsers of
 * proto/auth.c: the client's PasswordMessage against plain and md5 secrets,
 * auth_file secrets ("md5...", "SCRAM-SHA-256$..."), and base64. Beyond "no
 * crash": a SCRAM secret that parses formats back to text that parses to the
 * same secret, base64 round-trips, and only the right response verifies. */
#include <string.h>

#include "proto/auth.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	static const uint8_t salt[4] = { 0xde, 0xad, 0xbe, 0xef };

	/* the input as a client's response, against a plain and an md5 secret */
	char md5sec[AUTH_MD5_LEN + 1], right[AUTH_MD5_LEN + 1];
	auth_md5_secret("pencil", "app", md5sec);
	auth_md5_response(md5sec, "app", salt, right);
	bool ok1 = auth_md5_verify("pencil", "app", salt, s);
	bool ok2 = auth_md5_verify(md5sec, "app", salt, s);
	FUZZ_CHECK(ok1 == ok2 && ok1 == (strcmp(s, right) == 0));

	/* the input as a secret from auth_file, checked against a response */
	bool is_md5 = auth_is_md5_secret(s);
	if (is_md5)
		FUZZ_CHECK(strlen(s) == AUTH_MD5_LEN);
	auth_md5_response(s, "app", salt, right);
	/* a SCRAM secret is refused for md5 by design (its text is not the password) */
	FUZZ_CHECK(strlen(right) == AUTH_MD5_LEN &&
		   auth_md5_verify(s, "app", salt, right) == !auth_is_scram_secret(s));

	struct auth_scram_secret sec, again;
	if (auth_scram_parse_secret(s, &sec) == 0) {
		FUZZ_CHECK(auth_is_scram_secret(s));
		FUZZ_CHECK(sec.iterations > 0 && sec.salt_len > 0 && sec.salt_len <= AUTH_SCRAM_MAX_SALT);
		char text[512];
		int n = auth_scram_format_secret(&sec, text, sizeof text);
		FUZZ_CHECK(n > 0 && (size_t)n < sizeof text);
		FUZZ_CHECK(auth_scram_parse_secret(text, &again) == 0);
		FUZZ_CHECK(memcmp(&sec, &again, sizeof sec) == 0);
	}

	/* base64 both ways */
	uint8_t bin[1024];
	int k = auth_base64_decode(s, size, bin, sizeof bin);
	FUZZ_CHECK(k >= -1 && k <= (int)sizeof bin);
	if (k >= 0) {
		char enc[1400];
		int e = auth_base64_encode(bin, (size_t)k, enc, sizeof enc);
		FUZZ_CHECK(e >= 0);
		uint8_t back[1024];
		FUZZ_CHECK(auth_base64_decode(enc, (size_t)e, back, sizeof back) == k);
		FUZZ_CHECK(memcmp(bin, back, (size_t)k) == 0);
	}
	free(s);
	return 0;
}
