/* pool/registry.c: the process-wide table of pool budgets and pool stats.
 * Creation takes a mutex (rare: once per new database/user pair); lookups by a
 * shard go through the shard's own pool table first, so this is off the data path. */
#include "pool/registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRY_MAX 65536

static struct pool_shared *_Atomic entries[REGISTRY_MAX];
static _Atomic int nentries;
static int shards;
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;

int registry_init(int nshards)
{
	shards = nshards;
	return 0;
}

int registry_nshards(void)
{
	return shards;
}

static struct pool_shared *find(const char *db, const char *user, int n)
{
	for (int i = 0; i < n; i++) {
		struct pool_shared *ps = atomic_load_explicit(&entries[i], memory_order_acquire);
		if (ps && strcmp(ps->db, db) == 0 && strcmp(ps->user, user) == 0)
			return ps;
	}
	return NULL;
}

struct pool_shared *registry_get(const char *db, const char *user)
{
	if (strlen(db) >= REGISTRY_NAME_MAX || strlen(user) >= REGISTRY_NAME_MAX)
		return NULL;
	struct pool_shared *ps = find(db, user, atomic_load_explicit(&nentries, memory_order_acquire));
	if (ps)
		return ps;
	pthread_mutex_lock(&create_lock);
	int n = atomic_load_explicit(&nentries, memory_order_acquire);
	ps = find(db, user, n);
	if (!ps && n < REGISTRY_MAX) {
		ps = calloc(1, sizeof(*ps) + (size_t)shards * sizeof(struct stats_pool));
		if (ps) {
			strcpy(ps->db, db);
			strcpy(ps->user, user);
			atomic_store_explicit(&entries[n], ps, memory_order_release);
			atomic_store_explicit(&nentries, n + 1, memory_order_release);
		}
	}
	pthread_mutex_unlock(&create_lock);
	return ps;
}

int registry_count(void)
{
	return atomic_load_explicit(&nentries, memory_order_acquire);
}

struct pool_shared *registry_at(int i)
{
	return atomic_load_explicit(&entries[i], memory_order_acquire);
}

bool registry_take_slot(struct pool_shared *ps)
{
	int used = atomic_load_explicit(&ps->used, memory_order_relaxed);
	for (;;) {
		if (used >= atomic_load_explicit(&ps->size, memory_order_relaxed))
			return false;
		if (atomic_compare_exchange_weak_explicit(&ps->used, &used, used + 1,
							  memory_order_acq_rel, memory_order_relaxed))
			return true;
	}
}

void registry_give_slot(struct pool_shared *ps)
{
	atomic_fetch_sub_explicit(&ps->used, 1, memory_order_acq_rel);
}

static struct stats_shard *shard_blocks;
static int nstats;

int stats_init(int nshards)
{
	shard_blocks = calloc((size_t)nshards, sizeof(struct stats_shard));
	nstats = nshards;
	return shard_blocks ? 0 : -1;
}

struct stats_shard *stats_shard(int i)
{
	return &shard_blocks[i];
}

int stats_nshards(void)
{
	return nstats;
}
