/* tests/fuzz/server.c: what a server sends while pgring logs in to it, through
 * the real pool/server.c on a harness shard: authentication requests (ok,
 * cleartext, md5, SASL with pgring as the SCRAM client, anything else),
 * ParameterStatus, BackendKeyData (3.0 and longer keys), NegotiateProtocolVersion,
 * ErrorResponse and NoticeResponse, ReadyForQuery, and whatever else arrives.
 * Each input is one server connection: a client logs in (trust) and sends a
 * query, the pool connects to a socket the target listens on, and the input is
 * the server's reply.
 * Then the client and the server go away, and the pool must end up with no
 * server connection left (no crash, no hang, nothing kept).
 *
 * Input: the bytes the server sends, as on the wire. */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "pool/client.h"
#include "pool/pool.h"
#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"
#include "tests/unit/harness.h"

#define PORT 5999

static struct harness *h;
static int lfd;

static void cleanup(void)
{
	/* the shard stays open (see startup.c); only the files go */
	unlink(harness_path(h, ".s.PGSQL.5999"));
	unlink(harness_path(h, "pgring.ini"));
	rmdir(h->dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* password= for the servers: md5 and SCRAM requests are answered */
	h = harness_open(&pool_layer, "[pgring]\nauth_type = trust\npool_mode = transaction\n"
				      "server_login_retry = 0\n"
				      "[databases]\napp = host={dir} port=5999 user=app password=app\n");
	lfd = harness_listen_unix(h, PORT);
	log_level_max = LOG_ERROR;   /* a warning per failed server login would flood the run */
	atexit(cleanup);
	return 0;
}

/* Close every connection the pool has made that the test has not taken. */
static void drop_pending(void)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	while (poll(&p, 1, 0) == 1) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			break;
		close(fd);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds[2];
	harness_socketpair(fds);
	client_accept(&h->shard, fds[0], true);
	uint8_t mem[256];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	harness_put_startup(&o, "app", "app");
	/* a query, so that a server is needed also once the pool has its welcome
	 * parameters (then a transaction-mode login needs none) */
	proto_query(&o, "select 1");
	FUZZ_CHECK(harness_write_all(&h->shard, fds[1], o.p, o.len, 1000) == o.len);
	int be = harness_accept(&h->shard, lfd, 2000);
	FUZZ_CHECK(be >= 0);
	(void)harness_write_all(&h->shard, be, data, size, 1000);
	harness_settle(&h->shard, 200);
	/* the client leaves, then the server */
	close(fds[1]);
	harness_settle(&h->shard, 200);
	close(be);
	struct pool *p = pool_find(&h->shard, "app", "app", NULL, false);
	FUZZ_CHECK(p);
	for (int i = 0; i < 50 && p->n_used + p->n_idle > 0; i++) {
		drop_pending();
		harness_settle(&h->shard, 200);
	}
	FUZZ_CHECK(p->n_used == 0 && p->n_idle == 0);
	/* the next input's login must not wait out this one's failure */
	pool_reset_backoff(p);
	return 0;
}
