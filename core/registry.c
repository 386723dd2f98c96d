/* core/registry.c: the process-wide table of pool budgets and pool stats.
 * Creation takes a mutex (rare: once per new database/user pair); lookups by a
 * shard go through the shard's own pool table first, so this is off the data path. */
#include "core/registry.h"

#include <pthread.h>
#include <stdio.h>
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

#define LIMITS_MAX 4096
struct limit_table {
	struct limit_shared *_Atomic v[LIMITS_MAX];
	_Atomic int n;
};
static struct limit_table db_limits, user_limits;

/* Find or create (under create_lock, held by the caller) a limit entry. */
static struct limit_shared *limit_get(struct limit_table *t, const char *name)
{
	int n = atomic_load(&t->n);
	for (int i = 0; i < n; i++)
		if (strcmp(t->v[i]->name, name) == 0)
			return t->v[i];
	if (n == LIMITS_MAX)
		return NULL;
	struct limit_shared *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	strcpy(l->name, name);
	atomic_store(&t->v[n], l);
	atomic_store(&t->n, n + 1);
	return l;
}

static struct pool_shared *find(const char *db, const char *user, const struct node_shared *node, int n)
{
	for (int i = 0; i < n; i++) {
		struct pool_shared *ps = atomic_load_explicit(&entries[i], memory_order_acquire);
		if (ps && ps->nodeinfo == node && strcmp(ps->db, db) == 0 && strcmp(ps->user, user) == 0)
			return ps;
	}
	return NULL;
}

#define NODES_MAX 4096
static struct node_shared *_Atomic nodes[NODES_MAX];
static _Atomic int nnodes;

struct node_shared *registry_node(const char *cluster, const char *node)
{
	if (strlen(cluster) >= REGISTRY_NAME_MAX || strlen(node) >= REGISTRY_NAME_MAX)
		return NULL;
	pthread_mutex_lock(&create_lock);
	int n = atomic_load(&nnodes);
	struct node_shared *ns = NULL;
	for (int i = 0; i < n && !ns; i++)
		if (strcmp(nodes[i]->cluster, cluster) == 0 && strcmp(nodes[i]->node, node) == 0)
			ns = nodes[i];
	if (!ns && n < NODES_MAX && (ns = calloc(1, sizeof *ns + (size_t)(shards > 0 ? shards : 1) * sizeof ns->shard[0]))) {
		strcpy(ns->cluster, cluster);
		strcpy(ns->node, node);
		atomic_store(&nodes[n], ns);
		atomic_store(&nnodes, n + 1);
	}
	pthread_mutex_unlock(&create_lock);
	return ns;
}

int64_t registry_node_active(const struct node_shared *ns)
{
	int64_t sum = 0;
	for (int i = 0; i < shards; i++)
		sum += atomic_load_explicit(&ns->shard[i].active, memory_order_relaxed);
	return sum;
}

uint64_t registry_node_routed(const struct node_shared *ns)
{
	uint64_t sum = 0;
	for (int i = 0; i < shards; i++)
		sum += atomic_load_explicit(&ns->shard[i].routed, memory_order_relaxed);
	return sum;
}

struct pool_shared *registry_get(const char *db, const char *user, struct node_shared *node)
{
	if (strlen(db) >= REGISTRY_NAME_MAX || strlen(user) >= REGISTRY_NAME_MAX)
		return NULL;
	struct pool_shared *ps = find(db, user, node, atomic_load_explicit(&nentries, memory_order_acquire));
	if (ps)
		return ps;
	pthread_mutex_lock(&create_lock);
	int n = atomic_load_explicit(&nentries, memory_order_acquire);
	ps = find(db, user, node, n);
	if (!ps && n < REGISTRY_MAX) {
		ps = calloc(1, sizeof(*ps) + (size_t)shards * sizeof(struct stats_pool));
		if (ps)
			ps->db_limit = limit_get(&db_limits, db), ps->user_limit = limit_get(&user_limits, user);
		if (ps && (!ps->db_limit || !ps->user_limit)) {
			free(ps);
			ps = NULL;
		}
		if (ps) {
			strcpy(ps->db, db);
			strcpy(ps->user, user);
			ps->nodeinfo = node;
			if (node)
				snprintf(ps->node, sizeof ps->node, "%s/%s", node->cluster, node->node);
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

static bool take(_Atomic int *used, int max)
{
	int n = atomic_load_explicit(used, memory_order_relaxed);
	for (;;) {
		if (max > 0 && n >= max)
			return false;
		if (atomic_compare_exchange_weak_explicit(used, &n, n + 1, memory_order_acq_rel,
							  memory_order_relaxed))
			return true;
	}
}

bool registry_take_limits(struct pool_shared *ps)
{
	if (!take(&ps->db_limit->used, atomic_load_explicit(&ps->db_limit->max, memory_order_relaxed)))
		return false;
	if (!take(&ps->user_limit->used, atomic_load_explicit(&ps->user_limit->max, memory_order_relaxed))) {
		atomic_fetch_sub(&ps->db_limit->used, 1);
		return false;
	}
	return true;
}

void registry_give_limits(struct pool_shared *ps)
{
	atomic_fetch_sub_explicit(&ps->user_limit->used, 1, memory_order_acq_rel);
	atomic_fetch_sub_explicit(&ps->db_limit->used, 1, memory_order_acq_rel);
}

int registry_take_client(struct pool_shared *ps)
{
	if (!take(&ps->db_limit->clients, atomic_load_explicit(&ps->db_limit->max_clients, memory_order_relaxed)))
		return 1;
	if (!take(&ps->user_limit->clients, atomic_load_explicit(&ps->user_limit->max_clients, memory_order_relaxed))) {
		atomic_fetch_sub(&ps->db_limit->clients, 1);
		return 2;
	}
	return 0;
}

void registry_add_client(struct pool_shared *ps)
{
	atomic_fetch_add_explicit(&ps->db_limit->clients, 1, memory_order_acq_rel);
	atomic_fetch_add_explicit(&ps->user_limit->clients, 1, memory_order_acq_rel);
}

void registry_give_client(struct pool_shared *ps)
{
	atomic_fetch_sub_explicit(&ps->user_limit->clients, 1, memory_order_acq_rel);
	atomic_fetch_sub_explicit(&ps->db_limit->clients, 1, memory_order_acq_rel);
}

bool registry_take_slot(struct pool_shared *ps, bool use_reserve)
{
	int size = atomic_load_explicit(&ps->size, memory_order_relaxed);
	if (use_reserve)
		size += atomic_load_explicit(&ps->reserve, memory_order_relaxed);
	if (size <= 0 || !take(&ps->used, size))
		return false;
	if (!registry_take_limits(ps)) {
		atomic_fetch_sub(&ps->used, 1);
		return false;
	}
	return true;
}

void registry_force_slot(struct pool_shared *ps)
{
	atomic_fetch_add_explicit(&ps->used, 1, memory_order_acq_rel);
	atomic_fetch_add_explicit(&ps->db_limit->used, 1, memory_order_acq_rel);
	atomic_fetch_add_explicit(&ps->user_limit->used, 1, memory_order_acq_rel);
}

void registry_give_slot(struct pool_shared *ps)
{
	registry_give_limits(ps);
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

/* ---- admission control's tenants ---- */

#define TENANTS_MAX 4096
static struct tenant_shared *_Atomic tenants[TENANTS_MAX];
static _Atomic int ntenants;

static struct tenant_shared *tenant_find(int kind, const char *name, int n)
{
	for (int i = 0; i < n; i++) {
		struct tenant_shared *t = atomic_load_explicit(&tenants[i], memory_order_acquire);
		if (t->kind == kind && strcmp(t->name, name) == 0)
			return t;
	}
	return NULL;
}

struct tenant_shared *registry_tenant(int kind, const char *name)
{
	if (strlen(name) >= REGISTRY_NAME_MAX)
		return NULL;
	struct tenant_shared *t = tenant_find(kind, name, atomic_load_explicit(&ntenants, memory_order_acquire));
	if (t)
		return t;
	pthread_mutex_lock(&create_lock);
	int n = atomic_load_explicit(&ntenants, memory_order_acquire);
	t = tenant_find(kind, name, n);
	if (!t && n < TENANTS_MAX &&
	    (t = calloc(1, sizeof *t + (size_t)(shards > 0 ? shards : 1) * sizeof t->shard[0]))) {
		t->kind = kind;
		strcpy(t->name, name);
		atomic_store_explicit(&tenants[n], t, memory_order_release);
		atomic_store_explicit(&ntenants, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&create_lock);
	return t;
}

bool registry_tenant_take(struct tenant_shared *t, int max)
{
	if (max <= 0) {
		atomic_fetch_add_explicit(&t->active, 1, memory_order_relaxed);
		return true;
	}
	return take(&t->active, max);
}

int registry_tenant_count(void)
{
	return atomic_load_explicit(&ntenants, memory_order_acquire);
}

struct tenant_shared *registry_tenant_at(int i)
{
	return atomic_load_explicit(&tenants[i], memory_order_acquire);
}
