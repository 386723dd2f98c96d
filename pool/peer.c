/* pool/peer.c: cancel requests forwarded between the nodes of a fleet (see
 * pool/peer.h). Each forward is a short exchange of its own, as a cancel to a
 * server is: connect, send the request, wait for the peer to close, so the
 * client's PQcancel still returns only once the backend has been signalled.
 * A peer's pool_size bounds the exchanges in flight to it (a share of it on
 * each shard); the rest wait their turn. Shard thread only. */
#include "pool/peer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/config.h"
#include "core/list.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/stats.h"
#include "pool/client.h"
#include "pool/pool.h"
#include "proto/proto.h"

#define PEER_QUEUE_MAX 1000   /* waiting forwards per peer and shard */

/* Where the id sits in a key, by the request's length (the packet's offsets). */
#define ID_AT_SHORT 9          /* PID bytes 2 and 3: PgBouncer's */
#define ID_AT_LONG 16          /* the first two bytes after the 3.2 key's secret */
#define TTL_AT 15              /* the secret's last byte, both forms */

struct peer_fwd {
	struct shard_call call;
	struct shard *shard;
	struct list link;                  /* its peer's queue while it waits */
	struct pool_cancel_waiter waiter;
	int peer_id;
	int fd;
	uint64_t start_us;
	union addr_any addr;
	socklen_t addrlen;
	struct __kernel_timespec limit;
	uint32_t len;
	uint8_t msg[12 + PROTO_KEY_LONG];
};

/* One shard's traffic to one peer. */
struct peer_load {
	struct peer_load *next;
	int id;
	int active, waiting;
	unsigned pick;                     /* rotates over a host name's addresses */
	struct list queue;
};

struct peer_shard {
	struct peer_load *loads;
	struct log_rate dropped;
};

static int key_peer(const uint8_t *msg, uint32_t len)
{
	const uint8_t *p = msg + (len == 16 ? ID_AT_SHORT : ID_AT_LONG);
	return p[0] | p[1] << 8;
}

void peer_stamp_key(const struct config *cfg, uint32_t *pid, uint32_t *secret, uint8_t *tail)
{
	*pid &= 0x7fffffffu;   /* a negative PID breaks some clients (pg_basebackup) */
	uint32_t id = (uint32_t)cfg->peer_id;
	if (id && tail) {
		tail[0] = (uint8_t)id;
		tail[1] = (uint8_t)(id >> 8);
	} else if (id) {
		*pid = (*pid & 0xff0000ffu) | (id & 0xffu) << 16 | (id >> 8 & 0xffu) << 8;
	}
	if (id)
		*secret |= PEER_TTL_MASK;
	if (!*pid)
		*pid = 1u << 24;   /* never 0: the key table takes 0 for no key */
}

static struct peer_shard *peer_shard(struct shard *s)
{
	struct pool_shard *ps = pool_shard(s);
	if (!ps->peers)
		ps->peers = calloc(1, sizeof *ps->peers);
	return ps->peers;
}

static struct peer_load *load_of(struct shard *s, int id, bool make)
{
	struct peer_shard *sh = peer_shard(s);
	if (!sh)
		return NULL;
	struct peer_load *l;
	for (l = sh->loads; l; l = l->next)
		if (l->id == id)
			return l;
	if (!make || !(l = calloc(1, sizeof *l)))
		return NULL;
	l->id = id;
	list_init(&l->queue);
	l->next = sh->loads;
	sh->loads = l;
	return l;
}

/* A peer's share of its pool_size on this shard, at least one. */
static int share(const struct shard *s, const struct config_peer *pe)
{
	int n = (config_peer_pool_size(s->cfg, pe) + s->nshards - 1) / s->nshards;
	return n > 0 ? n : 1;
}

static void drop(struct shard *s, const struct pool_cancel_waiter *w, int id, const char *why)
{
	stat_add(&s->stats->cancels_peer_dropped, 1);
	struct peer_shard *sh = peer_shard(s);
	int n = sh ? log_rate_due(&sh->dropped, s->now_us, 1) : 1;
	if (n)
		LOGF(LOG_WARNING, w->conn_id, "cancel request for peer %d dropped: %s%s", id, why,
		     n > 1 ? " (and others since the last report)" : "");
	client_cancel_answer(s, w);
}

static void start(struct shard *s, struct peer_load *l, struct peer_fwd *f);

static void fwd_done(struct shard_call *call, int res)
{
	struct peer_fwd *f = (struct peer_fwd *)call;
	struct shard *s = f->shard;
	close(f->fd);
	if (res < 0) {
		double took = (double)(s->now_us - f->start_us) / 1e6;
		/* a failed connect cancels the rest of the chain: -ECANCELED
		 * then says nothing of a timeout, the time taken does */
		double limit = (double)f->limit.tv_sec + (double)f->limit.tv_nsec / 1e9;
		if (took + 0.05 >= limit)
			LOGF(LOG_WARNING, f->waiter.conn_id, "cancel request forwarded to peer %d: no answer within %.1f s",
			     f->peer_id, took);
		else
			LOGF(LOG_WARNING, f->waiter.conn_id, "cancel request forwarded to peer %d failed after %.1f s: %s",
			     f->peer_id, took, res == -ECANCELED ? "could not connect or send" : strerror(-res));
		stat_add(&s->stats->cancels_peer_dropped, 1);
	}
	client_cancel_answer(s, &f->waiter);
	struct peer_load *l = load_of(s, f->peer_id, false);
	free(f);
	if (!l)
		return;
	l->active--;
	/* the ones waiting, while there is room (a reload may have changed it) */
	const struct config_peer *pe = config_find_peer(s->cfg, l->id);
	struct peer_fwd *next;
	while ((!pe || l->active < share(s, pe)) && (next = list_first(&l->queue, struct peer_fwd, link))) {
		list_del(&next->link);
		l->waiting--;
		if (pe) {
			start(s, l, next);
		} else {
			drop(s, &next->waiter, next->peer_id, "the peer left [peers]");
			free(next);
		}
	}
}

static void start(struct shard *s, struct peer_load *l, struct peer_fwd *f)
{
	const struct config_peer *pe = config_find_peer(s->cfg, f->peer_id);
	int fam = pe ? addr_resolve(s->topo, pe->host, pe->port, "/tmp", l->pick++, &f->addr, &f->addrlen) : -1;
	if (fam < 0 || (f->fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		drop(s, &f->waiter, f->peer_id, fam < 0 ? "its address is not known" : "out of descriptors");
		free(f);
		return;
	}
	l->active++;
	f->call.done = fwd_done;
	f->shard = s;
	f->start_us = s->now_us;
	double limit = s->cfg->server_connect_timeout > 0 ? s->cfg->server_connect_timeout : 15;
	f->limit.tv_sec = (long long)limit;
	f->limit.tv_nsec = (long long)((limit - (double)f->limit.tv_sec) * 1e9);
	stat_add(&s->stats->cancels_to_peers, 1);
	LOGF(LOG_DEBUG, f->waiter.conn_id, "forwarding cancel request to peer %d (%s)", f->peer_id, pe->host);
	conn_exchange(s, &f->call, f->fd, &f->addr.sa, f->addrlen, f->msg, f->len, &f->limit);
}

bool peer_route_cancel(struct shard *s, uint8_t *msg, uint32_t len, const struct pool_cancel_waiter *w)
{
	int self = s->cfg->peer_id;
	if (!self)
		return false;
	int id = key_peer(msg, len);
	if (id == self) {
		msg[TTL_AT] |= PEER_TTL_MASK;
		return false;
	}
	if (!(msg[TTL_AT] & PEER_TTL_MASK)) {
		drop(s, w, id, "it has been forwarded three times (a loop in [peers]?)");
		return true;
	}
	const struct config_peer *pe = config_find_peer(s->cfg, id);
	if (!pe) {
		drop(s, w, id, "[peers] does not list it");
		return true;
	}
	struct peer_load *l = load_of(s, id, true);
	struct peer_fwd *f = l ? calloc(1, sizeof *f) : NULL;
	if (!f) {
		drop(s, w, id, "out of memory");
		return true;
	}
	memcpy(f->msg, msg, len);
	f->len = len;
	f->msg[TTL_AT]--;   /* one hop used */
	f->peer_id = id;
	f->waiter = *w;
	if (l->active < share(s, pe)) {
		start(s, l, f);
	} else if (l->waiting < PEER_QUEUE_MAX) {
		list_append(&l->queue, &f->link);
		l->waiting++;
	} else {
		drop(s, w, id, "too many cancel requests wait for it");
		free(f);
	}
	return true;
}

void peer_counts(struct shard *s, int id, int *active, int *waiting)
{
	struct peer_load *l = load_of(s, id, false);
	*active = l ? l->active : 0;
	*waiting = l ? l->waiting : 0;
}
