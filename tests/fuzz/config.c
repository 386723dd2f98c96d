/* tests/fuzz/config.c: the configuration file (core/config.c: the line reader
 * over inih, every key's value, the connection strings of [databases] lines
 * and [users], [cluster.*] sections, the checks across keys), as config_parse
 * reads a file. The input is written to a file in a private directory; a
 * failure must say why, a success must answer lookups. (%include and auth_file
 * may name other files: config.c refuses anything but regular files, so the
 * fuzzer cannot make it read a device or a pipe.) */
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "tests/fuzz/fuzz.h"

static char dir[] = "/tmp/pgring-fuzz-config-XXXXXX";
static char path[64];

static void cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	FUZZ_CHECK(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/pgring.ini", dir);
	atexit(cleanup);
	return 0;
}

static void warn(const char *msg)
{
	FUZZ_CHECK(msg && *msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "w");
	FUZZ_CHECK(f);
	FUZZ_CHECK(fwrite(data, 1, size, f) == size);
	fclose(f);
	struct config *cfg;
	char err[512];
	if (config_parse(path, &cfg, err, sizeof err, warn) != 0) {
		FUZZ_CHECK(cfg == NULL && err[0]);
		return 0;
	}
	FUZZ_CHECK(cfg);
	static const char *const names[] = { "app", "db", "*", "app@main", "x@y", "", "postgres" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		const struct config_cluster *cl;
		size_t base;
		const struct config_db *db = config_resolve_db(cfg, names[i], &cl, &base);
		FUZZ_CHECK(base <= strlen(names[i]));
		const struct config_user *u = config_find_user(cfg, names[i]);
		if (db) {
			(void)config_db_target(cfg, db);
			(void)config_db_split(cfg, db);
			(void)config_server_sslmode(cfg, db, NULL);
			(void)config_pool_mode_name(config_pool_mode(cfg, db, u));
			FUZZ_CHECK(config_pool_size(cfg, db, u) >= 0);
		}
		(void)config_find_secret(cfg, names[i]);
	}
	config_free(cfg);
	return 0;
}
