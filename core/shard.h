/* core/shard.h: a shard is one pinned thread with its own io_uring ring, its own
 * listeners, sockets, buffers and pools. Only the shard's thread touches what it
 * owns; other threads talk to it through its inboxes (SPSC queues + an eventfd). */
#ifndef PGRING_SHARD_H
#define PGRING_SHARD_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/queue.h"
#include "core/stats.h"
#include "core/topology.h"

struct config;
struct pool;
struct client;


enum shard_msg_type {
	SHARD_MSG_TOPOLOGY = 1,  /* ptr: struct topology * */
	SHARD_MSG_DRAIN,         /* SIGTERM: stop accepting, finish transactions, then stop */
	SHARD_MSG_STOP,          /* stop now */
	SHARD_MSG_CANCEL,        /* a, b: the client's BackendKeyData */
	SHARD_MSG_POOL_WAKE,     /* server budget was freed somewhere: retry waiting clients */
	SHARD_MSG_ADOPT_SERVER,  /* ptr: an idle struct server handed over by another shard */
};

struct shard_msg {
	int type;
	uint32_t a, b;
	void *ptr;
};

struct listener {
	struct shard *shard;
	int fd;
	bool armed;
	bool is_unix;
} __attribute__((aligned(8)));

#define SHARD_MAX_LISTEN 16

struct shard {
	int id, cpu, nshards;
	pthread_t thread;
	struct io_uring ring;
	struct bufs bufs;
	const struct topology *topo;
	const struct config *cfg;
	struct listener listen[SHARD_MAX_LISTEN];
	int nlisten;
	int wake_fd;
	int reserve_fd;              /* spare descriptor for refusing clients at the fd limit */
	/* Descriptor numbers are allocated lowest-first, so an accepted fd's number says
	 * how full the process is: at or above fd_client_ceiling the client is refused
	 * after its startup packet (the rest is kept for server connections); at or above
	 * fd_refuse_now it is refused at once, before it costs anything more. */
	int fd_client_ceiling, fd_refuse_now;
	struct log_rate fd_refused_log, no_reserve_log;
	uint64_t wake_val;
	bool wake_armed;
	struct queue *inbox;         /* [nshards + 1]: from each shard, then from control */
	struct conn *flush_list;     /* conns with output to start */
	struct conn *starved_head, *starved_tail;
	struct sendbuf *free_sendbufs;
	struct pool *pools;
	struct client *clients;      /* every client of this shard */
	uint64_t now_us, next_tick_us;
	uint64_t next_conn_id;
	struct stats_shard *stats;
	bool draining, stopped;
	uint64_t drain_deadline_us;
	struct shard_cancel_map *cancel_map;
	struct stmt_registry *stmts;  /* protocol-level prepared statements (pool/stmt.h) */
	struct client *route_head, *route_tail; /* clients waiting for a node of their target (pool/route.c) */
	uint64_t rng;                /* xorshift state for weighted choices */
	char startup_error[256];     /* why the thread failed to start */
	_Atomic int started;         /* 1 running, -1 failed */
};

/* The reason given to a client refused for lack of descriptors, and the count
 * (metric and rate-limited log line) every such refusal goes through. */
extern const char shard_fd_refusal[];
void shard_fd_refused(struct shard *s);

/* Create every shard (threads started, rings created inside them). Returns 0,
 * or -1 with a message naming the cause and the fix. */
int shard_start_all(const struct topology *topo, int nshards, const int *cpus, int ncpus,
		    char *err, size_t errlen);
struct shard *shard_get(int id);
int shard_count(void);
/* Post a message to shard `to` from shard `from` (-1: control) and wake it. */
bool shard_post(int from, int to, const struct shard_msg *m);
void shard_join_all(void);
int shard_running(void);           /* shard threads still in their loop */
/* From the shard's own thread. */
struct sendbuf *shard_sendbuf_get(struct shard *s);
void shard_sendbuf_put(struct shard *s, struct sendbuf *sb);
void shard_flush_later(struct shard *s, struct conn *c);
void shard_starved(struct shard *s, struct conn *c);
struct io_uring_sqe *shard_sqe(struct shard *s);
uint64_t shard_now_us(void);

#endif
