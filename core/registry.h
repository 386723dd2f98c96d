/* core/registry.h: the process-wide part of each (database, user) pool: its
 * server budget, shared by all shards through atomics, and its per-shard stats.
 * Entries are created on first use (a mutex guards creation only) and never move
 * or die, so any thread may keep a pointer and read them without locking. */
#ifndef PGRING_REGISTRY_H
#define PGRING_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include "core/stats.h"

#define REGISTRY_NAME_MAX 64

/* A process-wide connection count for one database or one user
 * (max_db_connections, max_user_connections); max 0 = unlimited. */
struct limit_shared {
	char name[REGISTRY_NAME_MAX];
	_Atomic int used;
	_Atomic int max;
	_Atomic int clients;      /* logged-in clients (max_db/user_client_connections) */
	_Atomic int max_clients;  /* 0 = unlimited */
};

/* What a fresh server of a pool reports at login (name\0value\0 pairs),
 * published once by the first shard that learns it so the others can welcome
 * clients without a server of their own. Immutable once published. */
struct pool_welcome {
	uint32_t len;
	char data[];
};

/* Process-wide counters of one cluster node, one cache line per shard. */
struct node_shared {
	char cluster[REGISTRY_NAME_MAX], node[REGISTRY_NAME_MAX];
	struct node_shard {
		_Atomic int64_t active;        /* servers of this node leased to clients now */
		_Atomic uint64_t routed;       /* transactions routed to it */
		char pad[48];
	} shard[];
};

struct pool_shared {
	char db[REGISTRY_NAME_MAX];
	char user[REGISTRY_NAME_MAX];
	char node[2 * REGISTRY_NAME_MAX];  /* "cluster/node", "" for a database with its own host */
	struct node_shared *nodeinfo;      /* NULL for "" */
	_Atomic int mode;      /* enum pool_mode in force */
	_Atomic int size;      /* pool_size: server connections allowed, all shards together */
	_Atomic int min_size;  /* min_pool_size */
	_Atomic int used;      /* server connections open or opening, all shards */
	_Atomic int waiting;   /* clients waiting for a server, all shards */
	_Atomic int in_transit; /* idle servers being handed from one shard to another */
	_Atomic int reserve;   /* reserve_pool_size: extra servers for clients that waited too long */
	struct limit_shared *db_limit, *user_limit;
	struct pool_welcome *_Atomic welcome;
	/* the counts above are read at every release and written when clients
	 * wait; shard 0's counters below are written per transaction: apart */
	char pad[64];
	struct stats_pool shard[]; /* one block per shard, written by that shard */
};

/* Admission control (pool/admit.h): one tenant (a database, a user or an
 * application_name with limits configured), process-wide: its transactions in
 * progress on all shards (max_transactions is checked against it with a CAS,
 * so the limit holds exactly), and its counters, one block per shard. */
#define ADMIT_REASONS 3    /* max_transactions, max_queries_per_second, max_rows_per_second */
struct stats_tenant {
	stat_t throttled[ADMIT_REASONS];   /* requests that had to wait, by the limit that held them */
	stat_t refused[ADMIT_REASONS];     /* requests refused (53400), by the limit */
	stat_t wait_us, waits;             /* time waited by requests admitted after a wait */
	stat_t admitted;                   /* requests (transactions) admitted */
	gauge_t waiting;                   /* requests waiting now */
	stat_t active_us;                  /* when this shard last had a request of the tenant */
};
struct tenant_shared {
	int kind;                          /* 0 database, 1 user, 2 application */
	char name[REGISTRY_NAME_MAX];
	_Atomic int active;
	struct stats_tenant shard[];
};
/* Find or create; NULL if the name is too long or memory ran out. */
struct tenant_shared *registry_tenant(int kind, const char *name);
bool registry_tenant_take(struct tenant_shared *t, int max);   /* one transaction within max (0: no limit) */
int registry_tenant_count(void);
struct tenant_shared *registry_tenant_at(int i);

int registry_init(int nshards);
/* Find or create the entry for (db, user, node); NULL if the names are too long
 * or memory ran out. node is "" or the node's counters. */
struct pool_shared *registry_get(const char *db, const char *user, struct node_shared *node);
/* Find or create a node's counters. */
struct node_shared *registry_node(const char *cluster, const char *node);
int64_t registry_node_active(const struct node_shared *n);     /* summed over shards */
uint64_t registry_node_routed(const struct node_shared *n);
int registry_count(void);
struct pool_shared *registry_at(int i);   /* 0 <= i < registry_count() */
int registry_nshards(void);

/* Take one server slot from the budget if there is room (with use_reserve, the
 * pool may go reserve_pool_size over its size), within the database's and the
 * user's limits; true on success. */
bool registry_take_slot(struct pool_shared *ps, bool use_reserve);
void registry_give_slot(struct pool_shared *ps);
/* Count one server connection that exists already, over the limits if need
 * be (pgring -R: a session's own server comes with its client; PostgreSQL
 * sees no new connection). registry_give_slot gives it back. */
void registry_force_slot(struct pool_shared *ps);
/* Only the database's and the user's limits, for a connection outside the
 * pool's budget (replication). */
bool registry_take_limits(struct pool_shared *ps);
void registry_give_limits(struct pool_shared *ps);
/* A logged-in client of the pool's database and user, within
 * max_db_client_connections and max_user_client_connections: 0, or 1 when the
 * database's limit refuses it, 2 when the user's does. */
int registry_take_client(struct pool_shared *ps);
/* The same, whatever the limits: a client moving between shards, counted by
 * its old shard until it closes there. */
void registry_add_client(struct pool_shared *ps);
void registry_give_client(struct pool_shared *ps);


#endif
