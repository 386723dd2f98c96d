/* core/shard.h: a shard is one pinned thread with its own io_uring ring, its own
 * listeners, sockets and buffers. Only the shard's thread touches what it owns;
 * other threads talk to it through its inboxes (SPSC queues + an eventfd). The
 * layer above (pools, clients, servers) plugs in through struct shard_upper and
 * keeps its per-shard state behind s->upper; core knows nothing of it. */
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

enum shard_msg_type {
	SHARD_MSG_TOPOLOGY = 1,  /* ptr: struct topology * */
	SHARD_MSG_DRAIN,         /* SIGTERM: stop accepting, finish transactions, then stop */
	SHARD_MSG_STOP,          /* stop now */
	SHARD_MSG_HANDOVER,      /* pgring -R: a successor serves; stop accepting, hand clients over, then stop */
	SHARD_MSG_TAKEBACK,      /* the successor failed mid-way: accept and serve again */
	SHARD_MSG_ADOPT,         /* ptr: a struct takeover_rec from the predecessor (upper->adopt) */
	SHARD_MSG_ACCEPT,        /* pgring -R, new process: READY was sent, accept on the inherited sockets */
	SHARD_MSG_STATS,         /* ptr: a struct takeover_rec, the predecessor's pool counters to add */
	SHARD_MSG_WAIT_CLIENTS,  /* SHUTDOWN WAIT_FOR_CLIENTS: stop accepting, stop once every client has left */
	SHARD_MSG_CLIENT_FD,     /* a: a client's socket passed on at accept (shard_pass_client); b: is_unix */
	SHARD_MSG_UPPER = 16,    /* this and above: the upper layer's own (shard_upper.message) */
};

struct shard_msg {
	int type;
	uint32_t a, b;
	void *ptr;
};

/* The layer above, as the shard loop calls it (all on the shard's thread). */
struct shard_upper {
	/* Before the loop starts: set up s->upper. Nonzero fails the shard's start. */
	int (*start)(struct shard *s);
	/* A client connection was accepted (fd is the callee's to keep or
	 * close); passed: by another shard (shard_pass_client), not to be
	 * passed on again. */
	void (*accept)(struct shard *s, int fd, bool is_unix, bool passed);
	/* A message of type SHARD_MSG_UPPER or above from another thread. */
	void (*message)(struct shard *s, const struct shard_msg *m);
	/* s->topo changed (and with it s->cfg when cfg_changed). */
	void (*topology)(struct shard *s, bool cfg_changed);
	/* Every tick (100 ms): timeouts, housekeeping. */
	void (*tick)(struct shard *s);
	/* While draining, every tick: close what has finished (everything once
	 * overdue); true when nothing is left and the shard may stop. While
	 * waiting for the clients to leave (not draining): close nothing, true
	 * once none is left anywhere. */
	bool (*drain)(struct shard *s, bool overdue);
	/* After each batch of completions, messages and the tick: work the layer
	 * put off so that it never runs inside a caller's stack. */
	void (*batch_end)(struct shard *s);
	/* A record handed over by the process this one replaces (a struct
	 * takeover_rec, the callee's to free). */
	void (*adopt)(struct shard *s, void *rec);
};

/* An SQE's user_data: a pointer to the object, the operation in its low bits.
 * Encoded by shard_ud, decoded in one place (shard.c's dispatch). */
enum shard_op {
	SHARD_OP_IGNORE = 0,
	SHARD_OP_RECV,           /* struct conn */
	SHARD_OP_SEND,           /* struct conn */
	SHARD_OP_CONNECT,        /* struct conn */
	SHARD_OP_ACCEPT,         /* struct listener */
	SHARD_OP_WAKE,           /* struct shard */
	SHARD_OP_CALL,           /* struct shard_call */
	SHARD_OP_MASK = 7,
};

static inline uint64_t shard_ud(const void *p, enum shard_op op)
{
	return (uint64_t)(uintptr_t)p | (uint64_t)op;
}

/* A one-off operation whose completion calls done with the CQE's result;
 * embed it (8-byte aligned) in whatever the operation needs to keep. */
struct shard_call {
	void (*done)(struct shard_call *call, int res);
} __attribute__((aligned(8)));

struct listener {
	struct shard *shard;
	int fd;
	bool armed;
	bool is_unix;
} __attribute__((aligned(8)));

#define SHARD_MAX_LISTEN 16

/* core/balance.c's per-shard state (the shard's own thread only). */
struct shard_balance {
	uint64_t window_us, cpu_ns;  /* the window's start: when, and the thread's CPU time then */
	unsigned streak;             /* shard 0: windows in a row that could do with one shard fewer */
	unsigned next_pick;          /* round robin over the active shards for connections passed on */
};

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
	 * fd_refuse_now it is refused at once (shard_refuse_fd), before it costs
	 * anything more, unless the layer above closes another to make room. */
	int fd_client_ceiling, fd_refuse_now;
	struct log_rate fd_refused_log, no_reserve_log;
	uint64_t wake_val;
	bool wake_armed;
	struct queue *inbox;         /* [nshards + 1]: from each shard, then from control */
	struct conn *flush_list;     /* conns with output to start */
	struct conn *starved_head, *starved_tail;
	struct sendbuf *free_sendbufs;
	const struct shard_upper *upper_ops;
	void *upper;                 /* the upper layer's per-shard state */
	uint64_t now_us, next_tick_us;
	/* The tick as the completions of one periodic timer (shard.c arm_tick),
	 * so that the loop's wait needs no timeout of its own */
	struct shard_call tick_call;
	struct __kernel_timespec tick_ts;
	bool tick_timer;             /* armed: ticks come from it, not from next_tick_us */
	bool tick_due;               /* it fired: tick at this turn's end */
	/* The layer above wants a turn by then (UINT64_MAX: no): the loop does not
	 * sleep past it, and batch_end looks at it (admission control's waiters) */
	uint64_t upper_wake_us;
	uint64_t next_conn_id;
	struct stats_shard *stats;
	struct shard_balance balance;
	bool draining, stopped;
	bool handing_over;           /* draining into a successor (pgring -R): no deadline, clients move */
	bool handover_done;          /* ... and nothing is left here (counted in handover_done) */
	bool waiting_clients;        /* SHUTDOWN WAIT_FOR_CLIENTS: not accepting, serving on until nobody is left */
	bool accept_held;            /* pgring -R, new process: not accepting until the predecessor is told */
	uint64_t drain_deadline_us;
	char startup_error[256];     /* why the thread failed to start */
	_Atomic int started;         /* 1 running, -1 failed */
	/* Set by a sender after its message is in an inbox, cleared by the shard
	 * before it reads them: a sender that finds it set does not write the
	 * eventfd (a wake-up is owed already), and a turn that finds it clear
	 * does not look at the nshards + 1 inboxes. Written by other threads:
	 * a cache line of its own whatever the struct's alignment. */
	char mail_before[64];
	_Atomic int mail;
	char mail_after[60];
};

/* The reason given to a client refused for lack of descriptors, and the count
 * (metric and rate-limited log line) every such refusal goes through. */
extern const char shard_fd_refusal[];
void shard_fd_refused(struct shard *s);
/* Tell an accepted client it cannot stay (53300, out of descriptors), close it. */
void shard_refuse_fd(struct shard *s, int fd);

/* Create every shard (threads started, rings created inside them), each
 * running `upper` above it. Returns 0, or -1 with a message naming the cause
 * and the fix. */
int shard_start_all(const struct topology *topo, const struct shard_upper *upper, int nshards, const int *cpus,
		    int ncpus, char *err, size_t errlen);
struct shard *shard_get(int id);

/* A shard driven by the caller's thread instead of its own (tests): the same
 * set-up as a shard thread's (ring, buffers, wake-up eventfd, upper->start)
 * but no CPU pinning and no listeners. It is alone (nshards 1, not reachable
 * through shard_get or shard_post); id picks its stats block, so stats_init
 * must have made more than id. Returns 0, or -1 with the cause in err. */
int shard_open(struct shard *s, const struct topology *topo, const struct shard_upper *upper, int id, char *err,
	       size_t errlen);
/* One turn of the shard loop: start due sends, submit and wait (at most
 * max_wait_us, and never past the next tick) for completions, handle them,
 * the inboxes, starved receives, the tick when due and upper->batch_end.
 * A shard thread runs exactly this until it stops. */
void shard_step(struct shard *s, uint64_t max_wait_us);
/* Release what shard_open made (ring, buffers, descriptors, inboxes). What
 * upper->start put in s->upper, and any conn still open, are the caller's. */
void shard_close(struct shard *s);
int shard_count(void);
/* A client's socket just accepted by s goes to shard `to` (core/balance.h:
 * s takes no clients now), before anything of it is read; that shard's
 * upper->accept gets it. false: it stays here (the caller's). */
bool shard_pass_client(struct shard *s, int to, int fd, bool is_unix);
/* Post a message to shard `to` from shard `from` (-1: control) and wake it. */
bool shard_post(int from, int to, const struct shard_msg *m);
/* The same into t's inbox from sender `slot` (0..nshards-1 a shard, nshards
 * control): what shard_post does once it has found the target. */
bool shard_deliver(struct shard *t, int slot, const struct shard_msg *m);
void shard_join_all(void);

/* pgring -R. The new process, before shard_start_all: a listening socket
 * received from the old one (its shard old_shard), used instead of opening
 * one. Shard i takes those of old shards j with j % nshards == i; a shard
 * with none opens its own, joining the port's SO_REUSEPORT group. */
void shard_inherit_listener(int old_shard, bool is_unix, int fd);
/* The old process, from the control thread once shard_start_all returned:
 * shard id's listening sockets (the Unix one once, on shard 0). They stay
 * open until the process exits, so what is sent is the same socket. */
int shard_listeners(int id, int *fds, bool *is_unix, int max);
/* The listening sockets went to a successor: the Unix socket's file is
 * theirs now (not removed at exit). */
void shard_listeners_handed(bool handed);
int shard_running(void);           /* shard threads still in their loop */
/* From the shard's own thread. */
struct sendbuf *shard_sendbuf_get(struct shard *s);
void shard_sendbuf_put(struct shard *s, struct sendbuf *sb);
void shard_flush_later(struct shard *s, struct conn *c);
void shard_starved(struct shard *s, struct conn *c);
/* A free SQE. When the submission queue is full, what is in it is submitted
 * first: take the SQEs of a linked chain with shard_sqes, never one by one. */
struct io_uring_sqe *shard_sqe(struct shard *s);
/* n free SQEs at once (n <= the ring's size), so that a linked chain is never
 * split across two submissions. */
void shard_sqes(struct shard *s, struct io_uring_sqe **sqes, unsigned n);
uint64_t shard_now_us(void);

/* TCP_NODELAY, and keepalive and TCP_USER_TIMEOUT as the tcp_* settings say,
 * on a TCP socket (a listener's accepted sockets inherit them). */
void shard_tcp_options(const struct config *cfg, int fd);

#endif
