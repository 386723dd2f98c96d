/* core/stats.h: counters that shards write and the control shard reads.
 * Each block has exactly one writer (its shard), so writers use relaxed
 * load+store (no read-modify-write lock prefix); readers sum blocks over shards. */
#ifndef PGRING_STATS_H
#define PGRING_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "tls/tls.h"

typedef _Atomic uint64_t stat_t;   /* monotonic counter */
typedef _Atomic int64_t gauge_t;   /* current level */

static inline void stat_add(stat_t *s, uint64_t n)
{
	atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + n,
			      memory_order_relaxed);
}
static inline void gauge_add(gauge_t *g, int64_t n)
{
	atomic_store_explicit(g, atomic_load_explicit(g, memory_order_relaxed) + n,
			      memory_order_relaxed);
}
static inline uint64_t stat_get(const stat_t *s)
{
	return atomic_load_explicit(s, memory_order_relaxed);
}
static inline int64_t gauge_get(const gauge_t *g)
{
	return atomic_load_explicit(g, memory_order_relaxed);
}

/* Per (database, user) pool and shard. Times in microseconds. */
/* A latency histogram's buckets (not cumulative; the sum and count are the
 * pool's time and count counters). Upper bounds in microseconds, from 50 us
 * to 60 s, then +Inf. */
#define STATS_HIST_BOUNDS 19
#define STATS_HIST_BUCKETS (STATS_HIST_BOUNDS + 1)
static const uint32_t stats_hist_le_us[STATS_HIST_BOUNDS] = {
	50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};
struct stats_hist {
	stat_t bucket[STATS_HIST_BUCKETS];
};

/* The first bound at or above 2^k: the bounds below it are under any us of
 * bit length k + 1, so the search starts there (two transactions' latencies
 * are counted per transaction: a walk from the first bound cost ~110
 * instructions of a pgbench -S transaction, callgrind). */
static const uint8_t stats_hist_from_bit[64] = {
	0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 14, 15, 16, 17, 18,
	19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19,
	19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19,
};

/* The bucket of us: the first bound at or above it (STATS_HIST_BOUNDS: +Inf). */
static inline int stats_hist_bucket(uint64_t us)
{
	int i = stats_hist_from_bit[63 - __builtin_clzll(us | 1)];
	while (i < STATS_HIST_BOUNDS && us > stats_hist_le_us[i])
		i++;
	return i;
}

static inline void stats_hist_add(struct stats_hist *h, uint64_t us)
{
	stat_add(&h->bucket[stats_hist_bucket(us)], 1);
}

struct stats_pool {
	stat_t xact_count, query_count;     /* transactions / statements completed */
	stat_t bytes_in, bytes_out;         /* from clients / to clients */
	stat_t xact_time_us, query_time_us; /* total time in transactions / statements */
	stat_t wait_time_us, wait_count;    /* time clients waited for a server */
	stat_t server_assignments;          /* servers given to a client (PgBouncer's server_assignment_count) */
	struct stats_hist query_hist, xact_hist, wait_hist; /* the same times, by bucket */
	stat_t server_connects, server_connect_errors;
	stat_t server_moves;                /* idle servers sent to another shard whose clients wait */
	stat_t client_logins, client_login_errors;
	stat_t prepares_injected, prepares_shared; /* Parses pgring sent for a client / answered from a server's set */
	stat_t state_replays;               /* session-state replays (SET, PREPARE) on lease */
	gauge_t cl_login, cl_idle, cl_active, cl_waiting;
	gauge_t sv_login, sv_idle, sv_active, sv_resetting;
	gauge_t max_wait_us;                /* age of the oldest waiting client */
	gauge_t head_since_us;              /* when the first waiting client began to wait (0: none) */
	gauge_t cl_pinned;                  /* clients held on their server (LISTEN, locks, temp tables) */
	gauge_t cl_replication, sv_replication; /* replication connections (pool/repl.h), outside the pool */
	stat_t replication_connects;        /* replication connections opened */
	gauge_t listeners, listen_channels, sv_listener; /* pool/listen.h: clients, channels, connection */
	stat_t notifications, listener_losses;
	/* Each shard writes its own block on every transaction: a line's width
	 * between its fields and the next shard's keeps them off each other's
	 * cache lines whatever the allocation's alignment (as in core/queue.h). */
	char pad[64];
};

/* TLS connections open with one (protocol version, cipher) pair. Entries are
 * appended by the shard (strings first, then ntls_kinds with release order)
 * and never removed, so a reader sees whole entries. */
#define STATS_TLS_KINDS 8
struct stats_tls_kind {
	char version[12];
	char cipher[52];
	gauge_t open;
};

/* Per shard, whatever the pool. */
struct stats_shard {
	stat_t loops, cqes, submits;        /* event-loop iterations, completions, io_uring_enter calls */
	stat_t accepts, accept_errors;
	stat_t fd_refused;                  /* clients refused with 53300 for lack of descriptors */
	stat_t recvs, sends, send_iovecs;   /* completed recv CQEs with data, sendmsg calls, iovecs sent */
	stat_t enobufs;                     /* recv ended for lack of provided buffers */
	stat_t paused;                      /* times a socket was paused for back-pressure */
	stat_t protocol_errors;
	stat_t cancels_received, cancels_forwarded;
	stat_t cancels_to_peers, cancels_peer_dropped; /* [peers]: forwarded to another node, dropped on the way */
	stat_t handed_over, taken_over;     /* pgring -R: clients sent to the successor, received from the predecessor */
	stat_t servers_handed_over, servers_taken_over; /* pgring -R: server connections, the same */
	gauge_t clients, servers;           /* open sockets */
	gauge_t busy_permille;              /* core/balance.h: the last window's CPU time, permille of a CPU */
	gauge_t active;                     /* 1: taking clients (core/balance.h) */
	gauge_t logging_in;                 /* clients accepted and not logged in yet */
	stat_t clients_passed;              /* connections accepted here and passed to an active shard at once */
	stat_t clients_moved_out, clients_moved_in; /* logged-in clients moved to and from other shards at rest */
	gauge_t buffers_in_use;
	/* TLS, by side: [0] client connections, [1] server connections */
	stat_t tls_handshakes[2], tls_resumed[2];
	stat_t tls_handshake_us[2];         /* time inside wolfSSL's handshake calls (CPU: nothing blocks there) */
	stat_t tls_failures[2][TLS_FAIL_KINDS];
	struct stats_tls_kind tls_kinds[2][STATS_TLS_KINDS];
	_Atomic int ntls_kinds[2];
	_Atomic uint64_t topology_version;  /* the snapshot this shard runs */
	_Atomic int cpu;                    /* CPU the shard is pinned to, -1 if not */
	_Atomic int tid;                    /* kernel thread id */
};

/* Per-shard stats blocks, allocated by stats_init (core/registry.c). */
int stats_init(int nshards);
struct stats_shard *stats_shard(int i);
int stats_nshards(void);

#endif
