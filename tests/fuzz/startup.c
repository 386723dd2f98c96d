/* tests/fuzz/startup.c: what a client sends before it is logged in, through
 * the real pool/client.c on a shard (tests/unit/harness.c): the startup packet
 * (SSLRequest, GSSENCRequest, CancelRequest, protocol versions, parameters,
 * `options`, replication, pgring.target), then the authentication messages
 * (SASLInitialResponse, SASLResponse, PasswordMessage) against SCRAM. Each
 * input is one connection: its bytes written, the client's side shut, and
 * pgring must then close the connection (no crash, no hang, nothing kept).
 *
 * Input: the bytes the client sends, as on the wire. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "pool/client.h"
#include "pool/pool.h"
#include "tests/fuzz/fuzz.h"
#include "tests/unit/harness.h"

static struct harness *h;
static char dir[] = "/tmp/pgring-fuzz-startup-XXXXXX";
static char userlist[80];

/* The shard stays open to the end (harness_close would leave the pool layer's
 * state to the caller, a leak for LSan to report); only the files go. */
static void cleanup(void)
{
	unlink(harness_path(h, "pgring.ini"));
	rmdir(h->dir);
	unlink(userlist);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	FUZZ_CHECK(mkdtemp(dir));
	snprintf(userlist, sizeof userlist, "%s/userlist.txt", dir);
	FILE *f = fopen(userlist, "w");
	FUZZ_CHECK(f);
	fputs("\"app\" \"app\"\n\"md5user\" \"md5pass\"\n", f);
	fclose(f);
	char settings[512];
	snprintf(settings, sizeof settings,
		 "[pgring]\nauth_type = scram-sha-256\nauth_file = %s\n"
		 "[databases]\napp = host={dir} port=5999\n* = host={dir} port=5999\n", userlist);
	h = harness_open(&pool_layer, settings);
	log_level_max = LOG_ERROR;   /* a warning per refused client would flood the run */
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds[2];
	harness_socketpair(fds);
	client_accept(&h->shard, fds[0], true);
	(void)harness_write_all(&h->shard, fds[1], data, size, 2000);
	shutdown(fds[1], SHUT_WR);
	/* whatever it was, a client that has said all it will is closed */
	FUZZ_CHECK(harness_wait_eof(&h->shard, fds[1], NULL, 5000));
	close(fds[1]);
	return 0;
}
