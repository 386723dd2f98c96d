/* pool/pool.h: clients, servers and the per-shard pools that pair them.
 * A pool is keyed by (database, user) inside one shard; its server budget is
 * process-wide (core/registry.h). States are enums; transitions happen in
 * pool/client.c, pool/server.c and pool/pool.c. */
#ifndef PGRING_POOL_H
#define PGRING_POOL_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#include "core/conn.h"
#include "core/log.h"
#include "core/shard.h"
#include "pool/params.h"
#include "core/registry.h"
#include "pool/stmt.h"
#include "proto/auth.h"

struct shard;
struct config_db;
struct client;
struct client_keys;

/* What the pool layer keeps per shard (s->upper). */
struct pool_shard {
	struct pool *pools;
	struct client *clients;                    /* every client of this shard */
	struct client_keys *keys;                  /* cancel keys -> clients (pool/client.c) */
	struct stmt_registry *stmts;               /* protocol-level prepared statements (pool/stmt.h) */
	struct client *route_head, *route_tail;    /* clients waiting for a node of their target (pool/route.c) */
	uint64_t rng;                              /* xorshift state for weighted choices */
};

static inline struct pool_shard *pool_shard(struct shard *s) { return s->upper; }

/* The pool layer's messages between shards (shard_post). */
enum pool_msg_type {
	POOL_MSG_CANCEL = SHARD_MSG_UPPER,   /* a, b: the client's BackendKeyData */
	POOL_MSG_WAKE,                       /* server budget was freed somewhere: retry waiting clients */
	POOL_MSG_ADOPT_SERVER,               /* ptr: an idle struct server handed over by another shard */
};

/* The pool layer as the shard loop runs it (pool/layer.c). */
extern const struct shard_upper pool_layer;

enum client_state {
	CL_STARTUP = 0,   /* waiting for SSLRequest / StartupMessage / CancelRequest */
	CL_AUTH,          /* password exchange */
	CL_LOGIN_WAIT,    /* authenticated; waiting for the pool's first server to learn its parameters */
	CL_IDLE,          /* logged in, no server */
	CL_WAITING,       /* has a request, waiting for a server */
	CL_ACTIVE,        /* linked to a server */
	CL_CLOSED,
};

enum server_state {
	SV_CONNECTING = 0,
	SV_LOGIN,         /* startup sent, authenticating */
	SV_IDLE,          /* in the pool */
	SV_ACTIVE,        /* leased to a client */
	SV_RESETTING,     /* running a pooler query (reset, rollback) before going idle */
	SV_MIGRATING,     /* idle, on its way to another shard's pool */
	SV_CLOSED,
};

struct pool;
struct server;

/* What a client holds that only its own server can keep (it pins the client). */
enum client_pin {
	PIN_LISTEN = 1,       /* LISTEN: notifications go to that backend */
	PIN_ADVISORY = 2,     /* session advisory locks */
	PIN_TEMP = 4,         /* temporary tables and the like */
	PIN_CURSOR = 8,       /* WITH HOLD cursors */
	PIN_OTHER = 16,       /* SET SESSION AUTHORIZATION, LOAD, ...: until DISCARD ALL */
};

/* A savepoint and the settings a ROLLBACK TO it brings back (NULL: those
 * before the transaction). */
struct savepoint {
	char name[SQL_QNAME_MAX];
	struct params *params;
};

/* What transaction pooling keeps for a client beyond its settings; most
 * clients never need it, so it is allocated on first use. */
struct client_sess {
	struct params *txn_params;                 /* params as they become if the transaction commits */
	struct params txn_forced;                  /* reported ones RESET to a startup value in it */
	struct savepoint *sp;                      /* open savepoints, innermost last */
	uint16_t nsp, sp_cap;
	struct params sqlprep;                     /* SQL PREPAREs: name -> PREPARE statement */
	struct params holds;                       /* "l:channel" listened to, "c:cursor" held */
	struct stmt_map stmts;                     /* protocol-level statement names */
};

/* The replies a leased server owes its client, in order (pool/forward.c). */
enum reply_kind {
	RP_PASS = 0,          /* the server's answer goes to the client */
	RP_HIDE,              /* answer to something pgring sent: swallowed */
	RP_SYNTH,             /* pgring answers this one itself, in its turn */
};

struct reply {
	uint8_t kind;         /* enum reply_kind */
	uint8_t type;         /* the request it answers (P B D C E S Q F); RP_SYNTH: the message to send */
	uint16_t ncc;         /* Q: CommandCompletes seen */
	uint32_t flags;
	struct pstmt *st;     /* a statement it refers to (one reference held) */
	void *extra;          /* P: the client's name for it; Q: struct fx_list */
};

struct replyq {
	struct reply *r;
	uint32_t head, n, cap;   /* cap: 0 or a power of two */
};

struct client {
	struct conn conn;
	enum client_state state;
	struct client *next_all, *prev_all;       /* shard's list of clients */
	struct client *next_wait, *prev_wait;     /* pool's waiting / login-wait list */
	struct pool *pool;
	struct server *server;
	char *user, *database;
	struct params params;                      /* session state the client asked for */
	struct sendq held;                         /* requests waiting for a server */
	struct sendq later;                        /* requests pipelined behind a transaction, for another node */
	uint32_t later_expect;                     /* ReadyForQuery messages owed for those */
	bool rerouting;                            /* requests go to `later` until the server is done */
	uint32_t expect;                           /* ReadyForQuery messages the client awaits */
	uint32_t key_pid, key_secret;              /* our BackendKeyData */
	struct client *next_key;                   /* cancel-key hash chain */
	uint64_t connect_us, wait_start_us, state_us, xact_start_us, query_start_us;
	uint32_t max_packet;
	uint8_t auth_method;                       /* enum auth_type in use */
	uint8_t md5_salt[4];
	uint8_t auth_step;                         /* SCRAM: 0 awaiting SASLInitialResponse, 1 SASLResponse */
	bool counted;                              /* counted in max_client_conn */
	bool txn_failed;                           /* server died inside a transaction block */
	bool in_txn;                               /* last ReadyForQuery said T or E */
	bool unsynced;                             /* extended-protocol messages since the last Sync */
	bool failed_error_sent;                    /* emulated 25P02 already sent before Sync */
	bool sync_failed;                          /* server died with messages unsynced: ignore until Sync */
	bool drop_msg;                             /* the message being received is not forwarded */
	char lost_state[6];                        /* why the server went away, for the next request */
	char *lost_msg;
	bool terminating;                          /* sent Terminate */
	struct auth_scram_server *scram;          /* during SCRAM */
	char *secret;                              /* the stored secret used to authenticate */
	/* transaction pooling: session state pgring carries from server to server */
	struct params startup;                     /* what RESET ALL goes back to */
	struct client_sess *sess;                  /* the rest, allocated on first use (pool/forward.c) */
	uint8_t pins;                              /* enum client_pin bits */
	bool txn_error;                            /* an error in the current transaction */
	bool txn_rolled;                           /* a ROLLBACK (maybe TO SAVEPOINT) in it */
	bool txn_uncertain;                        /* settings rolled back to a savepoint: unknown */
	bool txn_reset_all;                        /* RESET ALL in it */
	/* routing (pool/route.c) */
	uint8_t target;                            /* enum config_target asked at startup; 0: the database's */
	uint8_t txn_target;                        /* where the transaction being started goes */
	bool route_peek;                           /* the message being framed decides the route */
	bool route_waiting;                        /* on the shard's list of clients with no node to go to */
};

struct server {
	struct conn conn;
	enum server_state state;
	struct server *next, *prev;                /* pool's idle / used lists */
	struct pool *pool;
	struct client *client;
	struct params params;                      /* what the server's session is set to */
	uint32_t backend_pid, backend_key;
	uint64_t connect_us, idle_since_us, lease_us, last_rfq_us;
	uint32_t hidden;                           /* ReadyForQuery messages of pgring's own queries still due */
	char txn_status;                           /* last ReadyForQuery: I, T or E */
	bool close_when_idle;                      /* config changed or lifetime over */
	bool in_idle_list;                         /* on pool->idle */
	bool in_used_list;                         /* on pool->used */
	int migrate_to;                            /* shard it is moving to (SV_MIGRATING) */
	bool ready_once;                           /* finished its login at some point */
	bool cancel_pending;                       /* a cancel request to it is on its way */
	char fatal_state[6];                       /* the FATAL it sent before going away */
	char fatal_msg[200];
	struct auth_scram_client *scram;
	/* transaction pooling (pool/forward.c) */
	bool cur_hide;                             /* the message streaming in is not for the client */
	bool skipping;                             /* the server ignores requests until Sync */
	bool need_sync;                            /* session state may differ from the client's */
	bool copy_in;                              /* in COPY FROM STDIN started by an Execute: Syncs are ignored */
	struct proto_framer cfr;                   /* the client's requests, framed again */
	struct replyq rq;                          /* replies owed to the client */
	struct stmt_cache stmts;                   /* protocol-level statements prepared here */
	uint64_t lease_clock;                      /* stmts.clock at lease: later uses are this lease's */
	struct params sqlprep;                     /* SQL PREPAREs present here */
	struct proto_sql_stmt *portal_fx;          /* what the unnamed portal's statement does */
	struct proto_sql_stmt *unnamed_fx;         /* what the unnamed statement does to the session */
	union { struct sockaddr_in in; struct sockaddr_in6 in6; struct sockaddr_un un; } addr;
	socklen_t addrlen;
};


/* Framer callbacks (conn_frame_alloc) take either as its conn. */
_Static_assert(offsetof(struct client, conn) == 0, "conn must come first in struct client");
_Static_assert(offsetof(struct server, conn) == 0, "conn must come first in struct server");

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
	const struct config_db *db;                /* in the shard's current topology */
	int mode;                                  /* enum pool_mode */
	struct stats_pool *stats;                  /* this shard's block */
	int n_connecting;                          /* servers connecting or logging in */
	struct server *idle;                       /* most recently used first */
	struct server *used;                       /* active, connecting, resetting */
	int n_idle, n_used;
	struct client *wait_head, *wait_tail;      /* FIFO of clients waiting for a server */
	struct client *login_head;                 /* clients waiting for welcome parameters */
	int n_waiting;
	bool login_counted;                        /* login waiters count as one waiter in shared->waiting */
	struct params defaults;                    /* ParameterStatus of a fresh server */
	uint8_t *welcome;                          /* those as ParameterStatus messages */
	uint32_t welcome_len;
	bool have_welcome;
	uint8_t scram_client_key[AUTH_SCRAM_KEY_LEN]; /* from a client's SCRAM login (pass-through) */
	bool have_client_key;
	uint64_t last_connect_fail_us;
	unsigned addr_next;                        /* which of a host name's addresses to connect to */
	char last_error[256];                      /* last server login error, for waiting clients */
	struct log_rate connect_fail_log;          /* failed connects: a line a second at most */
	char last_sqlstate[6];
};

/* pool.c */
/* The shard's pool for (db, user) on node (NULL: a database with its own host). */
struct pool *pool_find(struct shard *s, const char *db, const char *user, struct node_shared *node, bool create);
void pool_refresh_all(struct shard *s, bool cfg_changed);  /* adopt a new topology */
void pool_wait_add(struct pool *p, struct client *cl);     /* queue a client that keeps its wait_start_us */
void pool_login_wait(struct pool *p, struct client *cl);  /* until the pool knows its parameters */
void pool_reset_backoff(struct pool *p);                   /* its node is back: reconnect at once */
void pool_request_server(struct client *cl);      /* client has work and no server */
void pool_release_server(struct server *sv, bool client_gone); /* server's client is done with it */
void pool_server_ready(struct server *sv);        /* server logged in or finished resetting */
void pool_server_gone(struct server *sv);         /* server closed; budget back */
void pool_wait_remove(struct client *cl);
bool pool_adopt_welcome(struct pool *p);          /* parameters another shard learned */
void pool_tick(struct shard *s);                  /* timeouts, min_pool_size, budget hand-back */
void pool_retry_waiters(struct shard *s);
void pool_server_parked(struct server *sv);      /* a migrating server has no I/O left here */
void pool_adopt_server(struct shard *s, struct server *sv); /* one handed over by another shard */
int pool_active_servers(struct shard *s);

/* route.c: which node a transaction goes to */
/* The target of a transaction that starts with msg (whole, or NULL when not
 * looked at); ahead: what was received behind it, for the rest of its segment. */
int route_target(const struct client *cl, const uint8_t *msg, uint32_t len, const uint8_t *ahead,
		 uint32_t ahead_len);
bool route_guarded(const struct client *cl);       /* must pipelined requests earn its node? */
bool route_wants_text(const struct client *cl);  /* does the first message's text matter? */
uint32_t route_peek_max(void);                     /* longest first message looked at */
/* The pool of the node for cl->txn_target, counted as routed; NULL when no node
 * can take it now (no primary): the caller parks the client with route_wait. */
struct pool *route_pool(struct client *cl);
struct pool *route_login_pool(struct client *cl);  /* where a new client learns its parameters */
const char *route_login_standby(const struct client *cl); /* in_hot_standby it is welcomed with */
void route_wait(struct client *cl);                /* until a topology offers a node */
void route_wait_remove(struct client *cl);
void route_refresh(struct shard *s);               /* a new topology: indexes, waiters re-routed */
void route_tick(struct shard *s);                  /* failover_timeout of parked clients */
void route_refresh_pool(struct pool *p);           /* its indexes in the shard's topology */

/* client.c */
void client_set_pool(struct client *cl, struct pool *p);  /* move the client's gauges to p */
void client_accept(struct shard *s, int fd, bool is_unix);
void client_data(struct client *cl, uint8_t *data, uint32_t n, uint32_t buf);
void client_eof(struct client *cl, int err);
void client_drained(struct client *cl);
void client_rerouted(struct client *cl, bool released); /* its server is done with what it got */
void client_free(struct client *cl);
void client_login_finish(struct client *cl);      /* pool has welcome params: finish login */
void client_fail(struct client *cl, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void client_server_lost(struct client *cl, const char *sqlstate, const char *why);
void client_linked(struct client *cl);            /* a server was attached */
void client_tick(struct shard *s);
void client_set_state(struct client *cl, enum client_state st);
void client_cancel(struct shard *s, uint32_t pid, uint32_t key);

/* server.c */
struct server *server_connect(struct pool *p);
void server_data(struct server *sv, uint8_t *data, uint32_t n, uint32_t buf);
void server_eof(struct server *sv, int err);
void server_drained(struct server *sv);
void server_free(struct server *sv);
void server_close(struct server *sv, const char *why);
/* Queue a simple-protocol query on the server (nothing else). */
bool server_queue_query(struct server *sv, const char *sql);
/* Queue a query whose results pgring swallows (SET replay, reset, rollback),
 * counted in sv->hidden: only while no client request is in flight. */
bool server_hidden_query(struct server *sv, const char *sql);
bool server_hidden_sync(struct server *sv);
void server_set_state(struct server *sv, enum server_state st);
void server_send_cancel(struct server *sv);

/* forward.c: transaction pooling's request rewriting and reply bookkeeping */
void fwd_lease(struct server *sv);                /* the server was just leased */
void fwd_feed(struct client *cl, const uint8_t *p, uint32_t n, uint32_t buf); /* request bytes, in order */
int fwd_reply_begin(struct server *sv, uint8_t type, uint32_t len); /* how to frame a reply */
bool fwd_reply(struct server *sv, const uint8_t *msg, uint32_t len); /* true: pass it to the client */
void fwd_reply_done(struct server *sv, const uint8_t *msg, uint32_t len); /* after passing or hiding */
bool fwd_idle(const struct server *sv);           /* nothing owed, no request half-framed */
void fwd_end_lease(struct server *sv);           /* the client is done with it */
void fwd_forget_session(struct server *sv);       /* the server ran DISCARD ALL */
void fwd_server_free(struct server *sv);
void fwd_client_free(struct client *cl);
void fwd_client_lost(struct client *cl);        /* its server died: settings of the lost transaction go */
void fwd_client_ready(struct client *cl, struct server *sv, char status); /* a ReadyForQuery reached it */
/* Make the server's session the client's (settings, SQL PREPAREs) with one
 * hidden query: at lease (in_stream false: before any request) or between the
 * client's requests (true: in order with them). */
void fwd_restore_session(struct client *cl, struct server *sv, bool in_stream);

#endif
