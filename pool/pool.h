/* pool/pool.h: a shard's pools. A pool is keyed by (database, user, node)
 * inside one shard; its server budget is process-wide (core/registry.h). The
 * pool hands servers to clients' leases (acquire), takes them back clean
 * (release), opens them while clients wait, parks, moves and closes them. */
#ifndef PGRING_POOL_H
#define PGRING_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/list.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/shard.h"
#include "pool/params.h"
#include "proto/auth.h"

struct admin_shard;
struct admit_shard;
struct client;
struct client_keys;
struct config_db;
struct lease;
struct listen_hub;
struct server;
struct stmt_registry;

/* What the pool layer keeps per shard (s->upper). */
struct pool_shard {
	struct pool *pools;
	struct list clients;                       /* every client of this shard */
	struct list routing;                       /* CL_ROUTING: no node of their target now (pool/route.c) */
	struct list prelogin;                      /* CL_STARTUP, CL_AUTH: least progress first */
	int n_prelogin;
	struct log_rate prelogin_log;              /* connections closed or refused before login */
	struct list closing;                       /* CL_CLOSED: closed at the end of the batch */
	struct list cancel_waits;                  /* CL_CANCEL: cancel connections held open */
	struct list upgrade_due;                   /* handing over: clients just come to rest (pool/upgrade.c) */
	struct client_keys *keys;                  /* cancel keys -> clients (pool/client.c) */
	struct stmt_registry *stmts;               /* protocol-level prepared statements (pool/stmt.h) */
	struct lease *free_leases;                 /* leases ended, kept with their room (pool/lease.c) */
	struct admin_shard *admin;                 /* the admin console's posts to retry (pool/admin.c) */
	struct authq_cache *authq;                 /* auth_query answers kept until they expire (pool/client.c) */
	uint64_t rng;                              /* xorshift state for weighted choices */
	struct admit_shard *admit;                 /* admission control's tenants (pool/admit.c), on first use */
	struct peer_shard *peers;                  /* cancel requests on their way to peers (pool/peer.c), on first use */
};

static inline struct pool_shard *pool_shard(struct shard *s) { return s->upper; }

/* Who waits for the end of a cancel's exchange with the server: the client's
 * cancel connection, named by its shard and connection id, since it may be
 * gone by the time the answer comes (the id then finds nothing). A cancel may
 * land on one shard for a client of another; the answer goes back as
 * POOL_MSG_CANCEL_DONE. conn_id 0: nobody waits. */
struct pool_cancel_waiter {
	int shard;
	uint64_t conn_id;
};

/* POOL_MSG_CANCEL's ptr (the receiver frees it): the rest of the key and who waits. */
struct pool_cancel_ask {
	struct pool_cancel_waiter waiter;
	bool long_key;                             /* protocol 3.2: tail holds the rest of the key */
	uint8_t hops;                              /* shards asked before this one (client_cancel) */
	uint8_t tail[PROTO_KEY_LONG - 4];
};

/* The pool layer's messages between shards (shard_post). */
enum pool_msg_type {
	POOL_MSG_CANCEL = SHARD_MSG_UPPER,   /* a, b: the client's BackendKeyData; ptr: struct pool_cancel_ask */
	POOL_MSG_CANCEL_DONE,                /* a, b: low and high halves of a waiting cancel connection's id */
	POOL_MSG_WAKE,                       /* server budget was freed somewhere: retry waiting clients */
	POOL_MSG_ADOPT_SERVER,               /* ptr: an idle struct server handed over by another shard */
	POOL_MSG_ADMIN,                      /* ptr: an admin console job (pool/admin.c), a: its step */
	POOL_MSG_AUTHQ,                      /* ptr: auth_query's answer (struct authq_req) */
	POOL_MSG_MOVE_CLIENT,                /* ptr: a struct takeover_rec, a client moving in (pool/migrate.h) */
};

/* The pool layer as the shard loop runs it (pool/layer.c). */
extern const struct shard_upper pool_layer;

struct pool {
	struct pool *next;
	struct shard *shard;
	struct pool_shared *shared;
	char *db_name, *user;                      /* client-visible names */
	/* a pool of a cluster database serves one node; the others of the same
	 * (database, user) are its siblings (pool/route.c) */
	struct node_shared *node;                  /* NULL: the entry's own host */
	char *cluster;                             /* the cluster's name, or NULL */
	int ci, ni;                                /* cluster and node index in the shard's topology, -1: gone */
	struct pool **sib;                         /* [nsib]: this (database, user)'s pool per node, lazily */
	int nsib;
	uint64_t retry_at_us;                      /* failing server: no new connect before this */
	uint32_t backoff_us;                       /* the pause before the next retry */
	int fails_in_row;                          /* connects that failed since the last success */
	const struct config_db *db;                /* the pool's own copy of its entry */
	int mode;                                  /* enum pool_mode */
	/* the timeouts in force for its clients: [users], then the entry, then [pgring] */
	double query_timeout, idle_transaction_timeout, client_idle_timeout;
	struct stats_pool *stats;                  /* this shard's block */
	int n_connecting;                          /* servers connecting or logging in */
	struct list idle;                          /* SV_IDLE, most recently used first */
	struct list used;                          /* connecting, logging in, active, resetting */
	int n_idle, n_used;
	struct list waiting;                       /* CL_WAITING, first come first */
	struct list login;                         /* CL_LOGIN_WAIT: for the pool's welcome parameters */
	int n_waiting;
	bool login_counted;                        /* login waiters count as one waiter in shared->waiting */
	struct params defaults;                    /* ParameterStatus of a fresh server */
	bool have_welcome;
	uint8_t scram_client_key[AUTH_SCRAM_KEY_LEN]; /* from a client's SCRAM login (pass-through) */
	bool have_client_key;
	char *authq_secret;                        /* its user's secret from auth_query, for server logins */
	uint64_t last_connect_fail_us;
	unsigned addr_next;                        /* which of a host name's addresses to connect to */
	char last_error[256];                      /* last server login error, for waiting clients */
	struct log_rate connect_fail_log;          /* failed connects: a line a second at most */
	char last_sqlstate[6];
	struct listen_hub *hub;                    /* its listening connection and channels (pool/listen.c) */
	/* disabled=1 on its entries (settings), the console's DISABLE (each tick) */
	bool cfg_db_disabled, cfg_user_disabled;
	bool disabled;                             /* either, as of the last tick */
	uint8_t disable_mode;                      /* enum config_disable_mode in force */
	bool upgrade_keep;                         /* pgring -R, old process: clients that stay use its idle servers */
	bool upgrade_group;                        /* pgring -R, old process: its LISTEN connection and clients park */
};

/* The shard's pool for (db, user) on node (NULL: a database with its own host). */
struct pool *pool_find(struct shard *s, const char *db, const char *user, struct node_shared *node, bool create);
void pool_refresh_all(struct shard *s, bool cfg_changed);  /* adopt a new topology */
void pool_reset_backoff(struct pool *p);                   /* its node is back: reconnect at once */

/* Acquire: the client (CL_IDLE or CL_ROUTING, with a lease holding its
 * requests) needs a server of its target: one is attached to its lease now,
 * or it waits in the pool (or, with no node to go to, on the routing list). */
void pool_request_server(struct client *cl);
/* A client in CL_LOGIN_WAIT learns the parameters of p's servers, at once if
 * any shard knows them already. */
void pool_login_wait(struct pool *p, struct client *cl);
/* Is a server opening in p for every client waiting there? */
bool pool_opening_for_all(const struct pool *p);
bool pool_adopt_welcome(struct pool *p);          /* parameters another shard learned */
/* Login waiters (one server is wanted to learn the parameters) as seen by
 * the other shards; called when the login list changes. */
void pool_sync_login_demand(struct pool *p);
/* The pool's waiting list changed: its first waiter's wait start is published
 * for the other shards (pool.c hands a server to a shard starving for it). */
void pool_waiting_head(struct pool *p);

/* Release: the server is clean and usable (logged in, reset, handed over):
 * to the next waiting client's lease, another shard, or the idle list. */
void pool_server_ready(struct server *sv);
void pool_server_gone(struct server *sv);         /* server closed; budget back */
void pool_server_parked(struct server *sv);      /* a migrating server has no I/O left here */
void pool_adopt_server(struct shard *s, struct server *sv); /* one handed over by another shard */

void pool_tick(struct shard *s);                  /* timeouts, min_pool_size, budget hand-back */
/* Refresh each pool's `disabled` from its entries and the console's flags
 * (every tick, before the clients' timeouts look at it). */
void pool_tick_disabled(struct shard *s);
/* Why a new client of p is refused now: 0 it is not, 1 its database is
 * disabled, 2 its user is. */
int pool_disabled_by(const struct pool *p);
void pool_retry_waiters(struct shard *s);
int pool_active_servers(struct shard *s);

#endif
