/* tests/unit/harness.h: a shard on the test's own thread, driven one loop turn
 * at a time (shard_open / shard_step / shard_close in core/shard.h), with a real
 * io_uring ring, real provided buffers and real sockets. No thread, no sleep:
 * the test decides when the shard runs, so every step is reproducible.
 *
 * Typical use (core/conn.c, with a test upper whose callbacks record calls):
 *
 *	struct harness *h = harness_open(&my_upper, NULL);     // default settings
 *	int fds[2];
 *	harness_socketpair(fds);                                // fds[0]: the shard's end
 *	conn_init(&c, &h->shard, fds[0], &my_ops, BUF_GROUP_CLIENT);
 *	conn_recv_on(&c);
 *	harness_write_all(&h->shard, fds[1], "hello", 5, 1000);
 *	cr_assert(harness_run_until(&h->shard, got_bytes, &rec, 1000));
 *	...
 *	harness_close(h);
 *
 * For the pool layer (pool/lease.c and up), pass &pool_layer as the upper and
 * settings whose [databases] point at a fake server in the harness directory:
 *
 *	struct harness *h = harness_open(&pool_layer,
 *		"[pgring]\nauth_type = trust\npool_mode = transaction\n"
 *		"[databases]\ndb = host={dir} port=5999\n");
 *	int srv = harness_listen_unix(h, 5999);                 // {dir}/.s.PGSQL.5999
 *	int cli[2];
 *	harness_socketpair(cli);
 *	client_accept(&h->shard, cli[0], true);                 // as if accepted
 *	harness_write_all(&h->shard, cli[1], startup, n, 1000);
 *	int be = harness_accept(&h->shard, srv, 1000);          // the pool connects
 *	... read what the pool says on be, answer as PostgreSQL would ...
 *
 * Every helper that waits on a socket steps the shard meanwhile, since the
 * shard only moves when the test steps it. Peer descriptors are non-blocking.
 * Times are in milliseconds. Helpers fail the running Criterion test (cr_assert)
 * on errors the test could not have meant (a syscall failing), and report
 * outcomes the test may want to assert itself (timeouts) through their result. */
#ifndef PGRING_TEST_HARNESS_H
#define PGRING_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/config.h"
#include "core/shard.h"
#include "core/topology.h"

struct harness {
	struct shard shard;
	struct config *cfg;
	struct topology topo;        /* version 1: cfg, its clusters (see harness_open) */
	char dir[64];                /* a fresh temporary directory, removed by harness_close */
};

/* Small rings and buffer groups that make edge cases (full SQ, ENOBUFS) easy
 * to reach: 64 SQEs, 8 client buffers of 256 bytes, 8 server buffers of 1 kB. */
extern const char harness_default_settings[];

/* A shard running `upper` (harness_upper_none if NULL) on this thread.
 * settings: a pgring config file's text (NULL: harness_default_settings);
 * every "{dir}" in it is replaced by h->dir. Keys it leaves out take the
 * config's defaults. The topology holds each [cluster.X] with its nodes up,
 * the node with role=primary as primary, the others replicas. The registry
 * and stats are set up for one shard (once per process). The log shows
 * warnings and errors only (set log_level_max for more). */
struct harness *harness_open(const struct shard_upper *upper, const char *settings);
/* shard_close, then the config, the topology and the directory. The upper's
 * state (h->shard.upper) and conns still open are the test's. */
void harness_close(struct harness *h);

/* An upper layer that does nothing (start succeeds, accepted fds are closed). */
extern const struct shard_upper harness_upper_none;

/* Step the shard until pred(ctx) holds (checked before every step) or
 * timeout_ms passed; returns pred's last answer. */
bool harness_run_until(struct shard *s, bool (*pred)(void *ctx), void *ctx, int timeout_ms);
/* Step the shard for ms milliseconds whatever happens (to show that
 * something does not happen). */
void harness_run_for(struct shard *s, int ms);
/* Step until a turn completes nothing (all that could happen has), at most
 * timeout_ms; true when the shard went quiet. */
bool harness_settle(struct shard *s, int timeout_ms);

/* An AF_UNIX stream socketpair: fds[0] for the shard, fds[1] the test's peer
 * (non-blocking). Both close-on-exec. */
void harness_socketpair(int fds[2]);
/* Write all n bytes to fd, stepping the shard while the socket is full.
 * Returns the bytes written (< n: timeout or error, errno says which). */
size_t harness_write_all(struct shard *s, int fd, const void *p, size_t n, int timeout_ms);
/* Read exactly n bytes from fd, stepping the shard while none are there.
 * Returns the bytes read: < n on timeout, or at EOF (then errno is 0). */
size_t harness_read_all(struct shard *s, int fd, void *p, size_t n, int timeout_ms);
/* Whatever fd holds now, without waiting (up to cap bytes); 0 if nothing. */
size_t harness_read_avail(int fd, void *p, size_t cap);
/* Step the shard until fd reads EOF (discarding any bytes first, counted in
 * *skipped when not NULL); true on EOF, false on timeout. */
bool harness_wait_eof(struct shard *s, int fd, size_t *skipped, int timeout_ms);
/* Bytes waiting unread in fd's receive queue (FIONREAD). */
int harness_pending(int fd);

/* A Unix stream socket listening at h->dir/.s.PGSQL.<port> (as PostgreSQL
 * names it, so "host={dir} port=<port>" reaches it). */
int harness_listen_unix(struct harness *h, int port);
/* The path of h->dir/<name> (static storage, overwritten by the next call). */
const char *harness_path(const struct harness *h, const char *name);
/* Accept one connection on listening socket lfd, stepping the shard until one
 * arrives; the accepted fd (non-blocking), or -1 on timeout. */
int harness_accept(struct shard *s, int lfd, int timeout_ms);

/* A protocol 3.0 StartupMessage for user and database, appended to o. */
struct proto_out;
void harness_put_startup(struct proto_out *o, const char *user, const char *database);

/* Deliver m to the shard as the control shard would (its inbox, then the
 * wake-up eventfd); handled during the next step. */
void harness_post(struct shard *s, const struct shard_msg *m);

#endif
