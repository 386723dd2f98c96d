/* bench/scale.c: what pgring's cross-shard machinery costs as threads are
 * added (issue 19, "Scaling beyond this machine"). It runs pgring's real code:
 * the SPSC queue of core/queue.h with struct shard_msg items (a shard's inbox),
 * and the process-wide pool budget of core/registry.c (registry_take_slot,
 * registry_give_slot, registry_take_client, the waiting/in_transit atomics and
 * the per-shard stats blocks of struct pool_shared, the node counters and
 * registry_node_active). The all-shard gauge scans of pool/pool.c
 * (over_share, neediest_shard, starved_shard) are static there: their loops
 * are repeated here field for field over the real struct pool_shared.
 *
 *   scale [-d MS] [-r REPEATS] [-t "1 2 4 8 16 32 64"] [-s "2 16 64"]
 *
 * Every cell runs REPEATS times for MS milliseconds; a figure is the median
 * with the min-max range. Threads are pinned round-robin to the CPUs this
 * process may use. With fewer CPUs than threads only that many run at once:
 * the rest are time-sliced, so a cell with more threads than CPUs shows the
 * cost of contention between as many threads as there are CPUs (plus
 * context switches), not between all of them. "CPU ns/op" is the threads'
 * CPU time (CLOCK_THREAD_CPUTIME_ID, summed) over the operations done, which
 * stays meaningful under time-slicing; "Mops/s" is over wall-clock time. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/queue.h"
#include "core/registry.h"
#include "core/shard.h"
#include "core/stats.h"

#define MAXT 256
#define LINE 64

static int ncpu;
static int cpus[CPU_SETSIZE];
static int dur_ms = 150;
static int reps = 3;
static int threads_list[32], nthreads_list;
static int shards_list[16], nshards_list;

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pin_to(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void die(const char *what)
{
	fprintf(stderr, "scale: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- running N pinned threads for a while ---- */

struct job;
/* Runs until j->stop; returns the operations done. */
typedef uint64_t (*work_fn)(struct job *j, int idx);

struct tslot {
	uint64_t ops, cpu_ns;
	uint64_t t0, t1;   /* CLOCK_MONOTONIC when it started and stopped working */
	char pad[LINE - 32];
};

struct job {
	work_fn fn;
	void *ctx;
	int n;
	int (*cpu_of)(int idx, int n);
	pthread_barrier_t bar;
	char pad0[LINE];
	_Atomic bool stop;
	char pad1[LINE];
	struct tslot slot[MAXT];
};

struct targ {
	struct job *j;
	int idx;
};

static int cpu_round_robin(int idx, int n)
{
	(void)n;
	return cpus[idx % ncpu];
}

/* Thread 0 alone on the first CPU, the others round-robin over the rest
 * (or on the same CPU when there is only one). */
static int cpu_reader_apart(int idx, int n)
{
	(void)n;
	if (idx == 0 || ncpu == 1)
		return cpus[0];
	return cpus[1 + (idx - 1) % (ncpu - 1)];
}

static bool stopped(struct job *j)
{
	return atomic_load_explicit(&j->stop, memory_order_relaxed);
}

static void *thread_main(void *arg)
{
	struct targ *a = arg;
	struct job *j = a->j;
	pin_to(j->cpu_of(a->idx, j->n));
	pthread_barrier_wait(&j->bar);
	j->slot[a->idx].t0 = clock_ns(CLOCK_MONOTONIC);
	uint64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	uint64_t ops = j->fn(j, a->idx);
	j->slot[a->idx].cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	j->slot[a->idx].t1 = clock_ns(CLOCK_MONOTONIC);
	j->slot[a->idx].ops = ops;
	return NULL;
}

struct result {
	double wall_ns;
	double ops;      /* summed over the threads that count (see count_from) */
	double cpu_ns;   /* summed over all threads */
	double cpu0_ns, ops0;   /* thread 0's own */
};

static struct result run(work_fn fn, void *ctx, int n, int (*cpu_of)(int, int))
{
	static struct job j;
	static struct targ args[MAXT];
	pthread_t th[MAXT];
	memset(&j, 0, sizeof j);
	j.fn = fn;
	j.ctx = ctx;
	j.n = n;
	j.cpu_of = cpu_of ? cpu_of : cpu_round_robin;
	atomic_store(&j.stop, false);
	pthread_barrier_init(&j.bar, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		args[i] = (struct targ){ &j, i };
		if (pthread_create(&th[i], NULL, thread_main, &args[i]))
			die("pthread_create");
	}
	pthread_barrier_wait(&j.bar);
	struct timespec d = { .tv_sec = dur_ms / 1000, .tv_nsec = (long)(dur_ms % 1000) * 1000000L };
	nanosleep(&d, NULL);
	atomic_store(&j.stop, true);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&j.bar);
	/* Wall time from the workers' own clocks: with many spinning threads on
	 * few CPUs, this (unpinned) thread may get the CPU only tens of ms after
	 * the barrier released them. */
	uint64_t t0 = UINT64_MAX, t1 = 0;
	for (int i = 0; i < n; i++) {
		if (j.slot[i].t0 < t0)
			t0 = j.slot[i].t0;
		if (j.slot[i].t1 > t1)
			t1 = j.slot[i].t1;
	}
	struct result r = { .wall_ns = (double)(t1 - t0) };
	for (int i = 0; i < n; i++) {
		r.ops += (double)j.slot[i].ops;
		r.cpu_ns += (double)j.slot[i].cpu_ns;
	}
	r.cpu0_ns = (double)j.slot[0].cpu_ns;
	r.ops0 = (double)j.slot[0].ops;
	return r;
}

/* ---- figures: median and range over the repeats ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct fig {
	double v[64];
	int n;
};

static void fig_add(struct fig *f, double v)
{
	if (f->n < 64)
		f->v[f->n++] = v;
}

static double fig_median(struct fig *f)
{
	qsort(f->v, (size_t)f->n, sizeof f->v[0], cmp_double);
	return f->n ? (f->n % 2 ? f->v[f->n / 2] : (f->v[f->n / 2 - 1] + f->v[f->n / 2]) / 2) : 0;
}

/* "12.3 (11.8-13.0)" into buf, with the precision the size asks for. */
static const char *fig_str(struct fig *f, char *buf, size_t len)
{
	double m = fig_median(f), lo = f->n ? f->v[0] : 0, hi = f->n ? f->v[f->n - 1] : 0;
	const char *fmt = m >= 100 ? "%.0f (%.0f-%.0f)" : m >= 10 ? "%.1f (%.1f-%.1f)" : "%.2f (%.2f-%.2f)";
	snprintf(buf, len, fmt, m, lo, hi);
	return buf;
}

/* ---- a. SPSC queues (core/queue.h, struct shard_msg items as in a shard's inbox) ---- */

#define INBOX_CAPACITY 1024   /* core/shard.c: queue_init(&s->inbox[j], 1024, sizeof(struct shard_msg)) */

static void relax(unsigned *spins)
{
	if (++*spins >= 64) {
		*spins = 0;
		sched_yield();   /* the partner may be time-sliced out on its CPU */
	} else {
		__builtin_ia32_pause();
	}
}

static uint64_t w_queue_local(struct job *j, int idx)
{
	struct queue *q = &((struct queue *)j->ctx)[idx];
	struct shard_msg m = { .type = 1 }, out;
	uint64_t n = 0;
	while (!stopped(j)) {
		for (int k = 0; k < 256; k++) {
			m.a = (uint32_t)n;
			queue_push(q, &m);
			queue_pop(q, &out);
			n++;
		}
	}
	if (out.a != (uint32_t)(n - 1))
		fprintf(stderr, "scale: queue lost an item\n");
	return n;
}

/* Thread 2p produces into queue p, thread 2p+1 consumes it. Only the
 * consumer's count is an operation (an item through the queue). */
static uint64_t w_queue_pair(struct job *j, int idx)
{
	struct queue *q = &((struct queue *)j->ctx)[idx / 2];
	struct shard_msg m = { .type = 1 };
	uint64_t n = 0;
	unsigned spins = 0;
	if (idx % 2 == 0) {
		while (!stopped(j)) {
			m.a = (uint32_t)n;
			if (queue_push(q, &m))
				n++;
			else
				relax(&spins);
		}
		return 0;
	}
	uint32_t expect = 0;
	bool first = true;   /* what an earlier run left in the queue comes first */
	while (!stopped(j)) {
		if (queue_pop(q, &m)) {
			if (m.a == 0) {
				first = false;
				expect = 0;
			}
			if (!first && m.a != expect)
				fprintf(stderr, "scale: queue out of order\n");
			expect = m.a + 1;
			n++;
		} else {
			relax(&spins);
		}
	}
	return n;
}

static int cpu_pairs(int idx, int n)
{
	(void)n;
	return cpus[idx % ncpu];   /* producer 2p and consumer 2p+1 on different CPUs when there are two */
}

static struct queue *queues_new(int n)
{
	/* as core/shard.c allocates a shard's inboxes: one calloc'ed array */
	struct queue *q = calloc((size_t)n, sizeof *q);
	if (!q)
		die("calloc");
	for (int i = 0; i < n; i++)
		if (queue_init(&q[i], INBOX_CAPACITY, sizeof(struct shard_msg)))
			die("queue_init");
	return q;
}

static void queues_free(struct queue *q, int n)
{
	for (int i = 0; i < n; i++)
		queue_destroy(&q[i]);
	free(q);
}

/* Ping-pong between two threads on two CPUs through two queues: one-way ns. */
struct pingpong {
	struct queue *q;   /* [0]: a -> b, [1]: b -> a */
	int efd[2];
	int rounds;
	_Atomic int phase;   /* 0 run, 1 stop */
	double *one_way;   /* per batch, filled by thread a */
	int batches;
};

static void *pp_queue_b(void *arg)
{
	struct pingpong *pp = arg;
	pin_to(cpus[1 % ncpu]);
	struct shard_msg m;
	while (atomic_load_explicit(&pp->phase, memory_order_relaxed) == 0) {
		if (queue_pop(&pp->q[0], &m)) {
			while (!queue_push(&pp->q[1], &m))
				;
		}
	}
	return NULL;
}

static void pp_queue_a(struct pingpong *pp)
{
	pin_to(cpus[0]);
	struct shard_msg m = { .type = 1 };
	for (int b = 0; b < pp->batches; b++) {
		uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
		for (int i = 0; i < pp->rounds; i++) {
			m.a = (uint32_t)i;
			while (!queue_push(&pp->q[0], &m))
				;
			while (!queue_pop(&pp->q[1], &m))
				;
		}
		pp->one_way[b] = (double)(clock_ns(CLOCK_MONOTONIC) - t0) / pp->rounds / 2;
	}
	atomic_store(&pp->phase, 1);
}

/* The same over one shared line: a counter each thread bumps when it sees
 * the other's turn. One-way = one cache-line transfer plus the poll. */
static _Atomic uint64_t pp_line __attribute__((aligned(LINE)));

static void *pp_line_b(void *arg)
{
	struct pingpong *pp = arg;
	pin_to(cpus[1 % ncpu]);
	while (atomic_load_explicit(&pp->phase, memory_order_relaxed) == 0) {
		uint64_t v = atomic_load_explicit(&pp_line, memory_order_acquire);
		if (v & 1)
			atomic_store_explicit(&pp_line, v + 1, memory_order_release);
	}
	return NULL;
}

static void pp_line_a(struct pingpong *pp)
{
	pin_to(cpus[0]);
	for (int b = 0; b < pp->batches; b++) {
		uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
		for (int i = 0; i < pp->rounds; i++) {
			uint64_t v = atomic_load_explicit(&pp_line, memory_order_relaxed);
			atomic_store_explicit(&pp_line, v + 1, memory_order_release);
			while (atomic_load_explicit(&pp_line, memory_order_acquire) == v + 1)
				;
		}
		pp->one_way[b] = (double)(clock_ns(CLOCK_MONOTONIC) - t0) / pp->rounds / 2;
	}
	atomic_store(&pp->phase, 1);
}

static void *pp_efd_b(void *arg)
{
	struct pingpong *pp = arg;
	pin_to(cpus[1 % ncpu]);
	uint64_t v, one = 1;
	for (;;) {
		if (read(pp->efd[0], &v, sizeof v) != sizeof v)
			break;
		if (atomic_load(&pp->phase))
			break;
		if (write(pp->efd[1], &one, sizeof one) != sizeof one)
			break;
	}
	return NULL;
}

static void pp_efd_a(struct pingpong *pp)
{
	pin_to(cpus[0]);
	uint64_t v, one = 1;
	for (int b = 0; b < pp->batches; b++) {
		uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
		for (int i = 0; i < pp->rounds; i++) {
			if (write(pp->efd[0], &one, sizeof one) != sizeof one || read(pp->efd[1], &v, sizeof v) != sizeof v)
				die("eventfd");
		}
		pp->one_way[b] = (double)(clock_ns(CLOCK_MONOTONIC) - t0) / pp->rounds / 2;
	}
	atomic_store(&pp->phase, 1);
	if (write(pp->efd[0], &one, sizeof one) != sizeof one)
		die("eventfd");
}

static void pingpong(int kind, struct fig *f)   /* 0 queues, 1 eventfds, 2 one line */
{
	bool efd = kind == 1;
	struct pingpong pp = { .rounds = efd ? 200 : 2000, .batches = 15 };
	double ow[64];
	pp.one_way = ow;
	pp.q = queues_new(2);
	if (efd && ((pp.efd[0] = eventfd(0, EFD_CLOEXEC)) < 0 || (pp.efd[1] = eventfd(0, EFD_CLOEXEC)) < 0))
		die("eventfd");
	atomic_store(&pp.phase, 0);
	pthread_t b;
	atomic_store(&pp_line, 0);
	if (pthread_create(&b, NULL, efd ? pp_efd_b : kind == 2 ? pp_line_b : pp_queue_b, &pp))
		die("pthread_create");
	if (efd)
		pp_efd_a(&pp);
	else if (kind == 2)
		pp_line_a(&pp);
	else
		pp_queue_a(&pp);
	pthread_join(b, NULL);
	/* the first batches warm up; every batch counts toward the range */
	for (int i = 0; i < pp.batches; i++)
		fig_add(f, ow[i]);
	if (efd) {
		close(pp.efd[0]);
		close(pp.efd[1]);
	}
	queues_free(pp.q, 2);
}

/* What shard_post's wake-up costs its sender: one write(2) to the target's
 * eventfd (core/shard.c shard_post), nobody reading it meanwhile. */
static uint64_t w_efd_write(struct job *j, int idx)
{
	int fd = ((int *)j->ctx)[idx];
	uint64_t one = 1, v, n = 0;
	while (!stopped(j)) {
		for (int k = 0; k < 64; k++, n++)
			if (write(fd, &one, sizeof one) != sizeof one)
				die("write eventfd");
		if (read(fd, &v, sizeof v) != sizeof v)   /* keep the counter far from its limit */
			die("read eventfd");
	}
	return n;
}

/* ---- b. the shared budget (core/registry.c) ---- */

struct budget_ctx {
	struct pool_shared *ps[MAXT];   /* the pool thread i uses */
	_Atomic uint64_t *ctr[MAXT];    /* the counter thread i bumps */
};

static uint64_t w_take_give(struct job *j, int idx)
{
	struct pool_shared *ps = ((struct budget_ctx *)j->ctx)->ps[idx];
	uint64_t n = 0;
	while (!stopped(j))
		for (int k = 0; k < 64; k++) {
			if (!registry_take_slot(ps, false))
				fprintf(stderr, "scale: budget refused a slot\n");
			registry_give_slot(ps);
			n++;
		}
	return n;
}

static uint64_t w_client(struct job *j, int idx)
{
	struct pool_shared *ps = ((struct budget_ctx *)j->ctx)->ps[idx];
	uint64_t n = 0;
	while (!stopped(j))
		for (int k = 0; k < 64; k++) {
			if (registry_take_client(ps))
				fprintf(stderr, "scale: client limit refused\n");
			registry_give_client(ps);
			n++;
		}
	return n;
}

/* A client starting and stopping to wait (pool/client.c enter_list and
 * leave_list): two read-modify-writes of pool_shared.waiting. */
static uint64_t w_waiting(struct job *j, int idx)
{
	struct pool_shared *ps = ((struct budget_ctx *)j->ctx)->ps[idx];
	uint64_t n = 0;
	while (!stopped(j))
		for (int k = 0; k < 64; k++) {
			atomic_fetch_add(&ps->waiting, 1);
			atomic_fetch_sub(&ps->waiting, 1);
			n += 2;
		}
	return n;
}

static uint64_t w_fetch_add(struct job *j, int idx)
{
	_Atomic uint64_t *c = ((struct budget_ctx *)j->ctx)->ctr[idx];
	uint64_t n = 0;
	while (!stopped(j))
		for (int k = 0; k < 64; k++, n++)
			atomic_fetch_add(c, 1);
	return n;
}

/* What core/stats.h's stat_add does: relaxed load + store, no lock prefix. */
static uint64_t w_stat_add(struct job *j, int idx)
{
	stat_t *c = (stat_t *)((struct budget_ctx *)j->ctx)->ctr[idx];
	uint64_t n = 0;
	while (!stopped(j))
		for (int k = 0; k < 64; k++, n++)
			stat_add(c, 1);
	return n;
}

/* ---- c. the all-shard gauge scans of pool/pool.c ---- */

struct scan_ctx {
	struct pool_shared *ps;
	struct node_shared *node;
	int nshards;
	int writers;   /* threads 1..writers write the blocks of shards 1..nshards-1 */
	bool node_scan;
	volatile int64_t sink;
};

/* over_share's, neediest_shard's and starved_shard's loops (pool/pool.c),
 * as one release with clients waiting elsewhere runs them: every shard's
 * cl_waiting + cl_active, cl_waiting + cl_login, head_since_us and the four
 * server gauges. The worst case for starved_shard: every shard's waiters
 * are older than ours, so it reads them all. */
static int64_t release_scan(const struct pool_shared *ps, int nshards, int self)
{
	int64_t total = 0, mine = 0;
	for (int i = 0; i < nshards; i++) {   /* over_share */
		int64_t d = gauge_get(&ps->shard[i].cl_waiting) + gauge_get(&ps->shard[i].cl_active);
		total += d;
		if (i == self)
			mine = d;
	}
	int best = -1;
	int64_t most = 0;
	for (int i = 0; i < nshards; i++) {   /* neediest_shard */
		int64_t w = gauge_get(&ps->shard[i].cl_waiting) + gauge_get(&ps->shard[i].cl_login);
		if (i != self && w > most) {
			most = w;
			best = i;
		}
	}
	uint64_t oldest = UINT64_MAX;
	int starved = -1;
	for (int i = 0; i < nshards; i++) {   /* starved_shard */
		const struct stats_pool *b = &ps->shard[i];
		int64_t since = gauge_get(&b->head_since_us);
		if (i == self || since <= 0 || (uint64_t)since >= oldest)
			continue;
		if (gauge_get(&b->sv_idle) + gauge_get(&b->sv_active) + gauge_get(&b->sv_login) +
			    gauge_get(&b->sv_resetting) > 0)
			continue;
		oldest = (uint64_t)since;
		starved = i;
	}
	return total + mine + best + starved + most;
}

/* One emulated transaction on shard i's blocks: the gauges and counters a
 * lease and a release move (pool/server.c server_set_state, pool/client.c,
 * pool/lease.c's counters and histograms), and the node's active count. */
static void emulate_txn(struct scan_ctx *c, int i, uint64_t t)
{
	struct stats_pool *b = &c->ps->shard[i];
	gauge_add(&b->cl_idle, -1);
	gauge_add(&b->cl_active, 1);
	gauge_add(&b->sv_idle, -1);
	gauge_add(&b->sv_active, 1);
	_Atomic int64_t *active = &c->node->shard[i].active;
	atomic_store_explicit(active, atomic_load_explicit(active, memory_order_relaxed) + 1, memory_order_relaxed);
	stat_add(&b->xact_count, 1);
	stat_add(&b->query_count, 1);
	stat_add(&b->bytes_in, 40);
	stat_add(&b->bytes_out, 200);
	stats_hist_add(&b->query_hist, 80);
	stats_hist_add(&b->xact_hist, 80);
	gauge_add(&b->head_since_us, (int64_t)(t & 1023) + 1 - gauge_get(&b->head_since_us));
	gauge_add(&b->cl_waiting, (int64_t)(t & 1) - gauge_get(&b->cl_waiting));
	gauge_add(&b->sv_active, -1);
	gauge_add(&b->sv_idle, 1);
	gauge_add(&b->cl_active, -1);
	gauge_add(&b->cl_idle, 1);
	atomic_store_explicit(active, atomic_load_explicit(active, memory_order_relaxed) - 1, memory_order_relaxed);
}

static uint64_t w_scan(struct job *j, int idx)
{
	struct scan_ctx *c = j->ctx;
	uint64_t n = 0;
	if (idx == 0) {   /* shard 0, releasing a server */
		int64_t acc = 0;
		while (!stopped(j))
			for (int k = 0; k < 16; k++, n++)
				acc += c->node_scan ? registry_node_active(c->node) + registry_node_active(c->node)
						    : release_scan(c->ps, c->nshards, 0);
		c->sink = acc;
		return n;
	}
	/* writers: shards idx, idx + writers, ... (never shard 0) */
	while (!stopped(j))
		for (int i = idx; i < c->nshards; i += c->writers, n++)
			emulate_txn(c, i, n);
	return 0;   /* only the reader's scans count */
}

/* Distinct cache lines a release_scan reads in this allocation. */
static int scan_lines(const struct pool_shared *ps, int nshards)
{
	int lines = 0;
	uintptr_t last = 0;
	for (int i = 0; i < nshards; i++) {
		const struct stats_pool *b = &ps->shard[i];
		const void *f[] = { &b->cl_login, &b->cl_active, &b->cl_waiting, &b->sv_login, &b->sv_idle,
				    &b->sv_active, &b->sv_resetting, &b->head_since_us };
		uintptr_t seen[8];
		int ns = 0;
		for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
			uintptr_t l = (uintptr_t)f[k] / LINE;
			bool dup = l == last;
			for (int m = 0; m < ns && !dup; m++)
				dup = seen[m] == l;
			if (!dup)
				seen[ns++] = l;
		}
		lines += ns;
		last = seen[ns - 1];
	}
	return lines;
}

/* ---- d. a shard's loop polling its inboxes (core/shard.c drain_inbox) ---- */

static uint64_t w_drain(struct job *j, int idx)
{
	(void)idx;
	struct scan_ctx *c = j->ctx;
	struct queue *inbox = (struct queue *)(void *)c->ps;   /* nshards + 1 queues */
	struct shard_msg m;
	uint64_t n = 0, got = 0;
	while (!stopped(j))
		for (int k = 0; k < 64; k++, n++)
			for (int i = 0; i <= c->nshards; i++)
				while (queue_pop(&inbox[i], &m))
					got++;
	c->sink = (int64_t)got;
	return n;
}

/* ---- e. pool_shared's header line against shard 0's counters ---- */

/* Shard idx's transaction as far as pool_shared goes when nobody waits: its
 * own counters in shard[idx] (stat_add), and at the release the reads of
 * others_wait (pool/pool.c: waiting and in_transit of the header). */
static uint64_t w_header(struct job *j, int idx)
{
	struct pool_shared *ps = ((struct budget_ctx *)j->ctx)->ps[0];
	struct stats_pool *b = &ps->shard[idx % registry_nshards()];
	uint64_t n = 0;
	int64_t acc = 0;
	while (!stopped(j))
		for (int k = 0; k < 64; k++, n++) {
			stat_add(&b->xact_count, 1);
			stat_add(&b->query_count, 1);
			acc += atomic_load_explicit(&ps->waiting, memory_order_relaxed) >
			       atomic_load_explicit(&ps->in_transit, memory_order_relaxed);
		}
	if (acc < 0)
		fprintf(stderr, "scale: impossible\n");
	return n;
}

/* ---- the tables ---- */

static void heading(const char *title)
{
	printf("\n%s\n", title);
	for (size_t i = 0; i < strlen(title); i++)
		putchar('-');
	putchar('\n');
}

typedef double (*metric_fn)(const struct result *r, int n);

static double m_cpu_per_op(const struct result *r, int n)
{
	(void)n;
	return r->ops ? r->cpu_ns / r->ops : 0;
}
static double m_mops(const struct result *r, int n)
{
	(void)n;
	return r->ops / r->wall_ns * 1000;
}
static double m_reader_ns(const struct result *r, int n)
{
	(void)n;
	return r->ops0 ? r->cpu0_ns / r->ops0 : 0;
}

/* One row: REPEATS runs of fn with n threads, two metrics. */
static void row(const char *label, int n, work_fn fn, void *ctx, int (*cpu_of)(int, int), metric_fn a, metric_fn b,
		metric_fn c3)
{
	struct fig fa = { 0 }, fb = { 0 }, fc = { 0 };
	for (int r = 0; r < reps; r++) {
		struct result res = run(fn, ctx, n, cpu_of);
		fig_add(&fa, a(&res, n));
		fig_add(&fb, b(&res, n));
		if (c3)
			fig_add(&fc, c3(&res, n));
	}
	char s1[64], s2[64], s3[64];
	printf("%-34s %7d  %24s  %24s", label, n, fig_str(&fa, s1, sizeof s1), fig_str(&fb, s2, sizeof s2));
	if (c3)
		printf("  %24s", fig_str(&fc, s3, sizeof s3));
	printf("%s\n", n > ncpu ? "  *" : "");
	fflush(stdout);
}

static double g_pairs;   /* pairs in the current row, for the per-pair rate */
static double m_pair_rate(const struct result *r, int n)
{
	(void)n;
	return r->ops / g_pairs / r->wall_ns * 1000;   /* M items/s per pair */
}

static void parse_list(const char *s, int *out, int *n, int max)
{
	*n = 0;
	while (*s && *n < max) {
		char *end;
		long v = strtol(s, &end, 10);
		if (end == s) {
			s++;
			continue;
		}
		if (v >= 1 && v <= MAXT)
			out[(*n)++] = (int)v;
		s = end;
	}
}

static struct pool_shared *pool_named(const char *db, const char *user)
{
	struct pool_shared *ps = registry_get(db, user, NULL);
	if (!ps)
		die("registry_get");
	atomic_store(&ps->size, 1 << 20);   /* room for every thread: the budget never refuses here */
	return ps;
}

int main(int argc, char **argv)
{
	int opt;
	const char *tl = "1 2 4 8 16 32 64", *sl = "2 16 64";
	while ((opt = getopt(argc, argv, "d:r:t:s:h")) != -1) {
		switch (opt) {
		case 'd': dur_ms = atoi(optarg); break;
		case 'r': reps = atoi(optarg); break;
		case 't': tl = optarg; break;
		case 's': sl = optarg; break;
		default:
			fprintf(stderr, "usage: scale [-d MS] [-r REPEATS] [-t \"1 2 4 ...\"] [-s \"2 16 64\"]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (dur_ms < 10)
		dur_ms = 10;
	if (reps < 1 || reps > 64)
		reps = 3;
	parse_list(tl, threads_list, &nthreads_list, 32);
	parse_list(sl, shards_list, &nshards_list, 16);

	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set))
		die("sched_getaffinity");
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set))
			cpus[ncpu++] = i;
	char model[128] = "?";
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[256];
		while (fgets(line, sizeof line, f))
			if (strncmp(line, "model name", 10) == 0) {
				char *c = strchr(line, ':');
				if (c) {
					snprintf(model, sizeof model, "%s", c + 2);
					model[strcspn(model, "\n")] = 0;
				}
				break;
			}
		fclose(f);
	}
	printf("pgring bench/scale: %d CPU(s) usable (%s), %d ms per run, %d runs per row: median (min-max)\n", ncpu,
	       model, dur_ms, reps);
	printf("Threads are pinned round-robin to those CPUs. ONLY %d RUN TRULY IN PARALLEL HERE: rows marked * have\n"
	       "more threads than CPUs, the rest are time-sliced, so they show contention between %d threads plus\n"
	       "context switches, not between all of them. CPU ns/op = the threads' CPU time / operations.\n",
	       ncpu, ncpu);

	registry_init(64);

	/* ---- a ---- */
	heading("a. SPSC queue (core/queue.h, struct shard_msg items, capacity 1024 as a shard's inbox)");
	printf("%-34s %7s  %24s  %24s  %24s\n", "", "threads", "M items/s per pair", "CPU ns per push+pop", "M items/s all pairs");
	{
		struct queue *q = queues_new(1);
		row("one thread: push then pop", 1, w_queue_local, q, NULL, m_mops, m_cpu_per_op, NULL);
		queues_free(q, 1);
	}
	for (int t = 0; t < nthreads_list; t++) {
		int n = threads_list[t];
		if (n < 2 || n % 2)
			continue;
		struct queue *q = queues_new(n / 2);
		char label[64];
		snprintf(label, sizeof label, "%d pair(s), producer/consumer", n / 2);
		g_pairs = n / 2;
		row(label, n, w_queue_pair, q, cpu_pairs, m_pair_rate, m_cpu_per_op, m_mops);
		queues_free(q, n / 2);
	}
	if (ncpu >= 2) {
		struct fig fq = { 0 }, fe = { 0 }, fl = { 0 };
		char s1[64], s2[64], s3[64];
		for (int r = 0; r < reps; r++) {
			pingpong(2, &fl);
			pingpong(0, &fq);
			pingpong(1, &fe);
		}
		printf("%-34s %7s  %24s\n", "", "", "one-way ns (CPU 0 <-> 1)");
		printf("%-34s %7d  %24s\n", "ping-pong on one cache line, spin", 2, fig_str(&fl, s3, sizeof s3));
		printf("%-34s %7d  %24s\n", "ping-pong through two queues, spin", 2, fig_str(&fq, s1, sizeof s1));
		printf("%-34s %7d  %24s\n", "ping-pong through eventfds, sleep", 2, fig_str(&fe, s2, sizeof s2));
	} else {
		printf("ping-pong: needs 2 CPUs, skipped\n");
	}
	{
		int fds[MAXT];
		for (int i = 0; i < 2; i++)
			if ((fds[i] = eventfd(0, EFD_CLOEXEC)) < 0)
				die("eventfd");
		printf("%-34s %7s  %24s  %24s\n", "", "threads", "M writes/s", "CPU ns per write");
		row("eventfd write(2) (shard_post wake)", 1, w_efd_write, fds, NULL, m_mops, m_cpu_per_op, NULL);
		for (int i = 0; i < 2; i++)
			close(fds[i]);
	}

	/* ---- b ---- */
	static struct budget_ctx bc;
	struct pool_shared *shared_pool = pool_named("scaledb", "shared");
	heading("b. shared pool budget (core/registry.c) and counters");
	printf("%-34s %7s  %24s  %24s\n", "", "threads", "M ops/s all threads", "CPU ns per op");
	for (int t = 0; t < nthreads_list; t++) {
		int n = threads_list[t];
		for (int i = 0; i < n; i++)
			bc.ps[i] = shared_pool;
		row("take_slot+give_slot, one pool", n, w_take_give, &bc, NULL, m_mops, m_cpu_per_op, NULL);
	}
	for (int t = 0; t < nthreads_list; t++) {
		int n = threads_list[t];
		for (int i = 0; i < n; i++) {
			char db[32], user[32];
			snprintf(db, sizeof db, "db%d", i);
			snprintf(user, sizeof user, "u%d", i);
			bc.ps[i] = pool_named(db, user);   /* its own database and user: its own limit entries too */
		}
		row("take_slot+give_slot, pool each", n, w_take_give, &bc, NULL, m_mops, m_cpu_per_op, NULL);
	}
	for (int t = 0; t < nthreads_list; t++) {
		int n = threads_list[t];
		for (int i = 0; i < n; i++)
			bc.ps[i] = shared_pool;
		row("take_client+give_client, one pool", n, w_client, &bc, NULL, m_mops, m_cpu_per_op, NULL);
	}
	for (int t = 0; t < nthreads_list; t++) {
		int n = threads_list[t];
		for (int i = 0; i < n; i++)
			bc.ps[i] = shared_pool;
		row("waiting +1 / -1 (one RMW = op)", n, w_waiting, &bc, NULL, m_mops, m_cpu_per_op, NULL);
	}
	_Atomic uint64_t *padded = aligned_alloc(LINE, (size_t)MAXT * LINE);
	_Atomic uint64_t *packed = aligned_alloc(LINE, (size_t)MAXT * sizeof(uint64_t));
	if (!padded || !packed)
		die("aligned_alloc");
	for (int i = 0; i < MAXT; i++) {
		atomic_init(&padded[i * (LINE / sizeof(uint64_t))], 0);
		atomic_init(&packed[i], 0);
	}
	for (int t = 0; t < nthreads_list; t++) {
		int n = threads_list[t];
		for (int i = 0; i < n; i++)
			bc.ctr[i] = &padded[0];
		row("fetch_add, one shared counter", n, w_fetch_add, &bc, NULL, m_mops, m_cpu_per_op, NULL);
	}
	for (int t = 0; t < nthreads_list; t++) {
		int n = threads_list[t];
		for (int i = 0; i < n; i++)
			bc.ctr[i] = &padded[i * (LINE / sizeof(uint64_t))];
		row("fetch_add, counter each, own line", n, w_fetch_add, &bc, NULL, m_mops, m_cpu_per_op, NULL);
	}
	for (int t = 0; t < nthreads_list; t++) {
		int n = threads_list[t];
		for (int i = 0; i < n; i++)
			bc.ctr[i] = &packed[i];
		row("fetch_add, counter each, one line", n, w_fetch_add, &bc, NULL, m_mops, m_cpu_per_op, NULL);
	}
	for (int t = 0; t < nthreads_list; t++) {
		int n = threads_list[t];
		for (int i = 0; i < n; i++)
			bc.ctr[i] = &padded[i * (LINE / sizeof(uint64_t))];
		row("stat_add (load+store), own line", n, w_stat_add, &bc, NULL, m_mops, m_cpu_per_op, NULL);
	}
	for (int t = 0; t < nthreads_list; t++) {
		int n = threads_list[t];
		for (int i = 0; i < n; i++)
			bc.ctr[i] = &packed[i];
		row("stat_add (load+store), one line", n, w_stat_add, &bc, NULL, m_mops, m_cpu_per_op, NULL);
	}

	/* ---- c ---- */
	heading("c. all-shard scans while the other shards write their blocks");
	printf("Reader = shard 0 alone on CPU %d; writer threads emulate shards 1..S-1 (each transaction: the\n"
	       "lease/release gauges, counters, histograms and node active count of its block), unthrottled,\n"
	       "on the other CPU(s). release scan = over_share + neediest_shard + starved_shard (pool/pool.c,\n"
	       "worst case: all shards read); node load = 2 x registry_node_active (route.c node_load, a replica pick).\n",
	       cpus[0]);
	printf("%-34s %7s  %24s  %24s  %24s\n", "", "threads", "CPU ns per scan", "lines read per scan", "ns per line");
	for (int s = 0; s < nshards_list; s++) {
		int S = shards_list[s];
		registry_init(S);
		char user[32], node[32];
		snprintf(user, sizeof user, "scan%d", S);
		snprintf(node, sizeof node, "n%d", S);
		static struct scan_ctx sc;
		sc.ps = pool_named("scandb", user);
		sc.node = registry_node("scancluster", node);
		sc.nshards = S;
		if (!sc.node)
			die("registry_node");
		int lines = scan_lines(sc.ps, S);
		int wl[3] = { 0, 1, S - 1 < MAXT - 1 ? S - 1 : MAXT - 1 };
		for (int ns = 0; ns < 2; ns++) {
			sc.node_scan = ns == 1;
			for (int w = 0; w < 3; w++) {
				if (w == 2 && wl[2] <= 1)
					continue;
				sc.writers = wl[w];
				struct fig fa = { 0 }, fl = { 0 };
				for (int r = 0; r < reps; r++) {
					struct result res = run(w_scan, &sc, 1 + sc.writers, cpu_reader_apart);
					double v = m_reader_ns(&res, 1);
					fig_add(&fa, v);
					fig_add(&fl, v / (sc.node_scan ? 2 * S : lines));
				}
				char label[80], s1[64], s2[64], s3[64];
				snprintf(label, sizeof label, "S=%d %s, %d writer(s)", S, sc.node_scan ? "node load" : "release scan",
					 sc.writers);
				snprintf(s2, sizeof s2, "%d", sc.node_scan ? 2 * S : lines);
				printf("%-34s %7d  %24s  %24s  %24s%s\n", label, 1 + sc.writers, fig_str(&fa, s1, sizeof s1), s2,
				       fig_str(&fl, s3, sizeof s3), 1 + sc.writers > ncpu ? "  *" : "");
				fflush(stdout);
			}
		}
	}

	/* ---- d ---- */
	heading("d. a shard's loop turn polling its S+1 inboxes, all empty (core/shard.c drain_inbox)");
	printf("%-34s %7s  %24s  %24s\n", "", "threads", "M polls/s", "CPU ns per loop turn");
	for (int s = 0; s < nshards_list; s++) {
		int S = shards_list[s];
		static struct scan_ctx dc;
		struct queue *inbox = queues_new(S + 1);
		dc.ps = (struct pool_shared *)(void *)inbox;
		dc.nshards = S;
		char label[64];
		snprintf(label, sizeof label, "S=%d: %d queues", S, S + 1);
		row(label, 1, w_drain, &dc, NULL, m_mops, m_cpu_per_op, NULL);
		queues_free(inbox, S + 1);
	}

	/* ---- e ---- */
	registry_init(64);
	heading("e. layout: struct pool_shared's header against the per-shard blocks");
	size_t off_wait = offsetof(struct pool_shared, waiting), off_shard = offsetof(struct pool_shared, shard);
	printf("sizeof(struct stats_pool) = %zu (%s a multiple of %d); pool_shared: size@%zu waiting@%zu in_transit@%zu "
	       "shard[]@%zu\n",
	       sizeof(struct stats_pool), sizeof(struct stats_pool) % LINE ? "not" : "", LINE,
	       offsetof(struct pool_shared, size), off_wait, offsetof(struct pool_shared, in_transit), off_shard);
	printf("registry_get callocs the entry (16-byte aligned by glibc): waiting shares a line with shard[0].xact_count\n"
	       "when the entry's address %% 64 is:");
	for (unsigned a = 0; a < LINE; a += 16)
		if ((off_wait + a) / LINE == (off_shard + a) / LINE)
			printf(" %u", a);
	printf("\n");
	struct pool_shared *apart = NULL, *together = NULL;
	int tries = 0;
	for (; tries < 400 && (!apart || !together); tries++) {
		char user[32];
		snprintf(user, sizeof user, "hdr%d", tries);
		struct pool_shared *ps = pool_named("hdrdb", user);
		bool same = ((uintptr_t)&ps->waiting) / LINE == ((uintptr_t)&ps->shard[0].xact_count) / LINE;
		if (same && !together)
			together = ps;
		if (!same && !apart)
			apart = ps;
	}
	printf("%d registry_get calls here: entry %% 64 = %s\n", tries,
	       together && apart ? "both cases found" : "only one case found");
	printf("%-34s %7s  %24s  %24s  %24s\n", "", "threads", "M txns/s all threads", "CPU ns per txn", "shard 0 CPU ns/txn");
	for (int c = 0; c < 2; c++) {
		struct pool_shared *ps = c ? together : apart;
		if (!ps)
			continue;
		for (int t = 0; t < nthreads_list; t++) {
			int n = threads_list[t];
			if (n < 2)
				continue;
			bc.ps[0] = ps;
			char label[80];
			snprintf(label, sizeof label, "waiting %s shard 0's line (%%64=%u)", c ? "ON" : "off",
				 (unsigned)((uintptr_t)ps % LINE));
			row(label, n, w_header, &bc, NULL, m_mops, m_cpu_per_op, m_reader_ns);
		}
	}
	printf("\n* more threads than CPUs: time-sliced, see above.\n");
	free(padded);
	free(packed);
	return 0;
}
