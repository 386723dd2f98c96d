/* core/takeover.h: the hand-over socket between a running pgring and the new
 * one replacing it (pgring -R): an abstract Unix socket named after the listen
 * port, SOCK_SEQPACKET so that every record arrives whole with the descriptor
 * it carries (SCM_RIGHTS), and only between processes of the same user. Core
 * moves opaque records; what a client's record holds is the pool layer's
 * (pool/upgrade.h). The conversation:
 *
 *   new -> old  HELLO (magic)
 *   old -> new  LISTENER (old shard, is_unix) + fd, ..., TOPOLOGY (the nodes as its
 *               health checks see them), then LISTENERS_END (old shards)
 *   new -> old  READY            the new process serves; before this, the old one
 *                                keeps everything and goes on (a failed start)
 *   old -> new  CLIENT record + fd, ...   as each client reaches rest
 *   old -> new  SERVER record + fd, ...   idle server connections, as they come idle
 *   old -> new  PAIRED record + fd, CLIENT record + fd
 *                                a session-pooled client and the server it holds,
 *                                back to back: the new side keeps the first with the second
 *   old -> new  GROUP (client count n, record) + fd, then n CLIENT records + fd
 *                                a pool's LISTEN connection and every client it
 *                                listens for: the new side takes them in together
 *   old -> new  STATS (cumulative totals), once
 *   old closes the socket when it exits. */
#ifndef PGRING_TAKEOVER_H
#define PGRING_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum takeover_type {
	TAKEOVER_HELLO = 'H',
	TAKEOVER_LISTENER = 'L',
	TAKEOVER_LISTENERS_END = 'E',
	TAKEOVER_TOPOLOGY = 'T',
	TAKEOVER_READY = 'R',
	TAKEOVER_CLIENT = 'C',
	TAKEOVER_SERVER = 'V',
	TAKEOVER_PAIRED = 'W',
	TAKEOVER_GROUP = 'G',
	TAKEOVER_STATS = 'S',
};

#define TAKEOVER_MAGIC "pgring-takeover-1"
/* The longest record: a client's state beyond it does not move (it stays on
 * the old process until it leaves). The socket buffer is sized for it. */
#define TAKEOVER_REC_MAX (128 * 1024)

/* A record on its way from a shard to the control thread, which sends it:
 * its bytes and the descriptor going with it (-1: none), both the
 * receiver's to release (takeover_rec_free). */
struct takeover_rec {
	int fd;
	uint32_t len;
	struct takeover_rec *pair;    /* a record that goes with this one (freed with it), or NULL */
	struct takeover_rec *next;    /* a GROUP's clients, in order (freed with it) */
	uint8_t data[];
};
struct takeover_rec *takeover_rec_new(const void *data, uint32_t len, int fd);

/* Cumulative counters (core/stats.h's stat_t of struct stats_pool, the
 * histograms included; not the gauges) of every pool in the registry, summed
 * over the shards, appended to sb as one STATS record's payload: the old
 * process, once its shards have stopped. */
struct strbuf;
void takeover_pack_stats(struct strbuf *sb);
/* The new process, on shard `shard`'s thread (its blocks are its own to
 * write): add a STATS payload to the pools of the same (database, user,
 * node), their registry entries made if need be. false: malformed (what came before the fault was
 * added). */
bool takeover_apply_stats(int shard, const uint8_t *p, uint32_t n);
void takeover_rec_free(struct takeover_rec *r);

/* The old side: listen for a successor on port's name (non-blocking). -1
 * with errno (EADDRINUSE: a predecessor still holds the name). */
int takeover_listen(int port);
/* Accept one; -1 when none is waiting or it is not the same user (logged). */
int takeover_accept(int lfd);
/* The new side: connect to the process serving port (blocking, same user
 * checked). -1 with the reason in err. */
int takeover_connect(int port, char *err, size_t errlen);

/* One record of type with payload p[0, n) and descriptor fd (-1: none).
 * 0, or -1 with errno. Blocks up to the socket's send timeout. */
int takeover_send(int sock, uint8_t type, const void *p, uint32_t n, int fd);
/* One record into buf (cap bytes): its type, payload length and descriptor
 * (-1: none); wait: block (up to the receive timeout). 1: a record; 0: the peer closed; -1: error (EAGAIN: none
 * waiting) or a record that is not one (too long, no type, descriptors
 * beyond one: closed, EBADMSG). */
int takeover_recv(int sock, uint8_t *type, uint8_t *buf, uint32_t cap, uint32_t *n, int *fd, bool wait);

#endif
