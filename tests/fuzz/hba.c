/* tests/fuzz/hba.c: auth_hba_file (core/hba.c), with an @include file beside
 * it. A failure must name the file and a line of it; a success must give rules
 * whose lines exist and a lookup that stays inside them, for local, IPv4, IPv6,
 * TLS and replication logins. The same bytes, as tab-separated rows, go to
 * hba_from_server (auth_hba_file = @server): one rule per row or an error. */
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

/* Each line a row, its tab-separated fields type, database, user, address,
 * netmask, method, options, error in that order; an empty field is NULL. */
static void server_rows(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	FUZZ_CHECK(text);
	memcpy(text, data, size);
	text[size] = '\0';
	struct hba_server_row rows[64];
	int n = 0;
	for (char *line = text, *next; line && n < 64; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		const char *v[8] = { 0 };
		char *f = line;
		for (int i = 0; i < 8 && f; i++) {
			char *tab = strchr(f, '\t');
			if (tab)
				*tab++ = '\0';
			v[i] = *f ? f : NULL;
			f = tab;
		}
		rows[n] = (struct hba_server_row){ n + 1, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7] };
		n++;
	}
	char err[512];
	struct hba *h = NULL;
	if (hba_from_server(rows, n, "server", &h, err, sizeof err, NULL, NULL) == 0)
		FUZZ_CHECK(h && h->n == n);
	else
		FUZZ_CHECK(!h && !strncmp(err, "server:", 7));
	hba_free(h);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	server_rows(data, size);
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
