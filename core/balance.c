/* core/balance.c: how many shards take clients (core/balance.h): each
 * shard's busy fraction from its thread's CPU time, and shard
 * 0's decision, once a window, published to every shard as one number. */
#include "core/balance.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "core/config.h"
#include "core/log.h"
#include "core/shard.h"

#define WINDOW_US 1000000u       /* one decision a second: a move costs a park and a record per client */

static _Atomic int active_shards = 1;
static _Atomic unsigned busy_of[CONFIG_MAX_SHARDS];

int balance_next(int active, int n, const unsigned *busy, unsigned spread, unsigned gather, unsigned gather_windows,
		 unsigned *streak)
{
	unsigned long sum = 0;
	bool hot = false;
	for (int i = 0; i < active; i++) {
		sum += busy[i];
		hot |= busy[i] > spread;
	}
	if (hot) {
		*streak = 0;
		return active < n ? active + 1 : active;
	}
	if (active > 1 && sum < (unsigned long)gather * (unsigned)(active - 1)) {
		if (++*streak >= gather_windows) {
			*streak = 0;
			return active - 1;
		}
		return active;
	}
	*streak = 0;
	return active;
}

int balance_active(void) { return atomic_load_explicit(&active_shards, memory_order_relaxed); }

void balance_init(int n)
{
	atomic_store(&active_shards, n);
	for (int i = 0; i < CONFIG_MAX_SHARDS; i++)
		atomic_store(&busy_of[i], 0);
	for (int i = 0; i < n; i++)
		atomic_store(&stats_shard(i)->active, 1);
}

int balance_share(int i, int nshards, int limit)
{
	int k = balance_active();
	int n = i < k ? k : nshards;
	return limit > 0 ? (limit + n - 1) / n : 0;
}

int balance_pick(struct shard *s)
{
	int k = balance_active();
	if (s->id < k)
		return s->id;
	return (int)(s->balance.next_pick++ % (unsigned)k);
}

/* This thread's CPU time, in ns. Not the time it waited for a CPU as well:
 * where PostgreSQL and the applications share the CPUs, a shard waits to
 * run most of the time whatever it does (measured: one shard at 10 pgbench
 * clients ran 30% of a CPU and waited 65%), and a second shard adds no CPU
 * there, only a second thread that sleeps and wakes per message. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void decide(struct shard *s)
{
	const struct config *cfg = s->cfg;
	int k = balance_active(), n = s->nshards;
	unsigned busy[CONFIG_MAX_SHARDS];
	for (int i = 0; i < n; i++)
		busy[i] = atomic_load_explicit(&busy_of[i], memory_order_relaxed);
	int next = cfg->shards_follow_load
		? balance_next(k, n, busy, (unsigned)cfg->shard_spread_busy * 10, (unsigned)cfg->shard_gather_busy * 10,
			       (unsigned)cfg->shard_gather_windows, &s->balance.streak)
		: n;   /* turned off by a reload: every shard again */
	if (next == k)
		return;
	atomic_store_explicit(&active_shards, next, memory_order_relaxed);
	char text[96];
	size_t at = 0;
	for (int i = 0; i < n && at < sizeof text - 12; i++)
		at += (size_t)snprintf(text + at, sizeof text - at, " %u", busy[i]);
	text[at] = 0;
	log_notice("shards taking clients: %d -> %d (busy, permille of a CPU:%s)", k, next, text);
}

void balance_tick(struct shard *s)
{
	if (s->nshards < 2)
		return;
	bool active = s->id < balance_active();
	gauge_add(&s->stats->active, (int64_t)active - gauge_get(&s->stats->active));
	uint64_t now = s->now_us;
	if (s->balance.window_us == 0) {
		s->balance.window_us = now;
		s->balance.cpu_ns = cpu_ns();
		return;
	}
	if (now - s->balance.window_us < WINDOW_US)
		return;
	uint64_t t = cpu_ns();
	uint64_t busy = (t - s->balance.cpu_ns) / (now - s->balance.window_us);   /* ns per us: permille */
	s->balance.window_us = now;
	s->balance.cpu_ns = t;
	atomic_store_explicit(&busy_of[s->id], (unsigned)busy, memory_order_relaxed);
	gauge_add(&s->stats->busy_permille, (int64_t)busy - gauge_get(&s->stats->busy_permille));
	if (s->id == 0)
		decide(s);
}
