/* tests/fuzz/userlist.c: PgBouncer's userlist.txt format ("user" "secret"
 * lines, doubled quotes, comments), as config_load_auth_file reads it. A
 * failure must say why and leave the loaded secrets alone; a success must
 * answer lookups. */
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "tests/fuzz/fuzz.h"

static char dir[] = "/tmp/pgring-fuzz-userlist-XXXXXX";
static char ini[80], path[80];
static struct config *cfg;

static void cleanup(void)
{
	config_free(cfg);
	unlink(ini);
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	FUZZ_CHECK(mkdtemp(dir));
	snprintf(ini, sizeof ini, "%s/pgring.ini", dir);
	snprintf(path, sizeof path, "%s/userlist.txt", dir);
	FILE *f = fopen(ini, "w");
	FUZZ_CHECK(f);
	fputs("[pgring]\nauth_type = trust\n[databases]\napp = host=127.0.0.1\n", f);
	fclose(f);
	char err[512];
	FUZZ_CHECK(config_parse(ini, &cfg, err, sizeof err, NULL) == 0);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "w");
	FUZZ_CHECK(f);
	FUZZ_CHECK(fwrite(data, 1, size, f) == size);
	fclose(f);
	char err[512];
	int before = cfg->nsecrets;
	if (config_load_auth_file(cfg, path, err, sizeof err) != 0) {
		FUZZ_CHECK(err[0] && cfg->nsecrets == before);
		return 0;
	}
	/* sorted and unique (config_find_secret searches them), each found again */
	for (int i = 0; i < cfg->nsecrets; i++) {
		FUZZ_CHECK(i == 0 || strcmp(cfg->secrets[i - 1].user, cfg->secrets[i].user) < 0);
		if (i < 8)
			FUZZ_CHECK(config_find_secret(cfg, cfg->secrets[i].user) == cfg->secrets[i].secret);
	}
	(void)config_find_secret(cfg, "app");
	(void)config_find_secret(cfg, "");
	return 0;
}
