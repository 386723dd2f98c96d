/* tests/fuzz/hba.c: auth_hba_file (core/hba.c), with an @include file beside
 * it. A failure must name the file and a line of it; a success must give rules
 * whose lines exist and a lookup that stays inside them, for local, IPv4, IPv6,
 * TLS and replication logins. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/hba.h"
#include "tests/fuzz/fuzz.h"

static char dir[] = "/tmp/pgring-fuzz-hba-XXXXXX";
static char path[80], inc[80];

static void cleanup(void)
{
	unlink(path);
	unlink(inc);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	FUZZ_CHECK(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/hba.conf", dir);
	snprintf(inc, sizeof inc, "%s/names", dir);
	FILE *f = fopen(inc, "w");
	FUZZ_CHECK(f);
	fputs("alice, \"bob\"\n# comment\ncarol @names\n", f);   /* includes itself: depth-limited */
	fclose(f);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "w");
	FUZZ_CHECK(f);
	FUZZ_CHECK(fwrite(data, 1, size, f) == size);
	fclose(f);
	int lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	char err[512];
	struct hba *h = NULL;
	if (hba_load(path, &h, err, sizeof err, NULL, NULL) != 0) {
		FUZZ_CHECK(!h && !strncmp(err, path, strlen(path)) && err[strlen(path)] == ':');
		return 0;
	}
	FUZZ_CHECK(h && h->n <= lines);
	for (int i = 0; i < h->n; i++)
		FUZZ_CHECK(h->rules[i].line >= 1 && h->rules[i].line <= lines && (i == 0 || h->rules[i].line > h->rules[i - 1].line));
	static const uint8_t v4[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1 };
	static const uint8_t v6[16] = { [15] = 1 };
	const char *names[] = { "app", "all", "alice", "replication", "" };
	for (int k = 0; k < 16; k++) {
		struct hba_query q = { .local = k & 1, .tls = k & 2, .physical_replication = k & 4, .addr = k & 8 ? v6 : v4,
				       .db = names[k % 5], .user = names[(k + 2) % 5] };
		const struct hba_rule *r = hba_match(h, &q);
		FUZZ_CHECK(!r || (r >= h->rules && r < h->rules + h->n));
	}
	hba_free(h);
	return 0;
}
