/* pool/server.h: a server connection: connect, startup and authentication as a
 * PostgreSQL client, what pgring runs on it itself (session restore, reset,
 * rollback, cancels), and closing it. While leased, its replies go to the
 * lease (pool/lease.h). */
#ifndef PGRING_SERVER_H
#define PGRING_SERVER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "core/addr.h"
#include "core/conn.h"
#include "core/list.h"
#include "pool/params.h"
#include "pool/stmt.h"
#include "proto/auth.h"

struct pool;
struct lease;

/* SV_IDLE is on the pool's idle list; CONNECTING, LOGIN, ACTIVE and RESETTING
 * on its used list; MIGRATING and CLOSED on none (server_set_state moves it). */
enum server_state {
	SV_CONNECTING = 0,
	SV_LOGIN,         /* startup sent, authenticating */
	SV_IDLE,          /* in the pool */
	SV_ACTIVE,        /* leased to a client */
	SV_RESETTING,     /* running a pooler query (reset, rollback) before going idle */
	SV_MIGRATING,     /* idle, on its way to another shard's pool */
	SV_CLOSED,
};

struct server {
	struct conn conn;
	enum server_state state;
	struct list link;                          /* pool's idle or used list */
	struct pool *pool;
	struct lease *lease;                       /* while leased (SV_ACTIVE) */
	struct params params;                      /* what the server's session is set to */
	uint32_t backend_pid, backend_key;
	uint64_t connect_us, idle_since_us, lease_us, last_rfq_us;
	uint32_t hidden;                           /* ReadyForQuery messages of pgring's own queries still due */
	char txn_status;                           /* last ReadyForQuery: I, T or E */
	bool close_when_idle;                      /* config changed or lifetime over */
	int migrate_to;                            /* shard it is moving to (SV_MIGRATING) */
	bool ready_once;                           /* finished its login at some point */
	/* cancel exchanges toward it not ended yet: until they have, PostgreSQL
	 * may still signal its backend (twice per cancel), so it is handed to no
	 * other client, restore or reset (pool_server_ready parks it) */
	uint32_t cancels;
	bool tls_asked;                            /* SSLRequest sent, its answer not read yet */
	bool connect_query_sent;                   /* login done, the entry's connect_query running */
	uint8_t replication;                       /* enum repl_mode: a replication client's own server */
	struct client *repl_client;                /* that client, while it is there */
	bool listener;                             /* its pool's listening connection (pool/listen.h) */
	bool listen_dirty;                         /* LISTENs of a client ran here: UNLISTEN * at release */
	/* timeouts_left's answer for the settings params held at (hash, n): it
	 * is asked at every release, and the settings seldom change */
	uint64_t timeouts_hash;
	int timeouts_n;                            /* 0: not known (it is asked with params.n > 0) */
	unsigned timeouts_memo;
	char fatal_state[6];                       /* the FATAL it sent before going away */
	char fatal_msg[200];
	struct auth_scram_client *scram;
	struct stmt_cache stmts;                   /* protocol-level statements prepared here */
	struct params sqlprep;                     /* SQL PREPAREs present here */
	union addr_any addr;
	socklen_t addrlen;
	bool upgrade_moving;                       /* pgring -R: parking it to hand it over (pool/upgrade.c) */
};

/* Its framer's reassembly callbacks (conn_frame_alloc) take it as its conn. */
_Static_assert(offsetof(struct server, conn) == 0, "conn must come first in struct server");

/* A new server for the pool; repl: the replication client it is for, or
 * listener: the pool's listening connection (both outside the pool's lists
 * and budget). */
struct server *server_connect(struct pool *p, struct client *repl, bool listener);
/* Move the server to state st: its gauges, its node's load and its list. */
void server_set_state(struct server *sv, enum server_state st);
void server_close(struct server *sv, const char *why);
/* What a client that left put on its server. */
struct server_leftover {
	bool running;         /* a query was still running for it */
	bool dirty;           /* replies owed or a request half sent: what the server holds is unknown */
	bool unsynced;        /* extended-protocol messages not yet synced */
	bool in_txn;          /* its last ReadyForQuery said T or E */
	uint8_t pins;         /* enum client_pin */
};

/* Its lease is over: bring the server's session back to what the pool hands
 * out (roll back, undo pins, server_reset_query) and give it back to the pool,
 * or close it when that cannot be known. left: the client left (NULL: it
 * merely finished its transaction). */
void server_reset(struct server *sv, const struct server_leftover *left);
/* Queue a simple-protocol query on the server (nothing else). */
bool server_queue_query(struct server *sv, const char *sql);
/* Queue a query whose results pgring swallows (SET replay, reset, rollback),
 * counted in sv->hidden: only while no client request is in flight. */
bool server_hidden_query(struct server *sv, const char *sql);
/* Cancel what runs on the server, on a connection of its own to the
 * postmaster; w (NULL: nobody) is answered when that exchange has ended. */
struct pool_cancel_waiter;
void server_send_cancel(struct server *sv, const struct pool_cancel_waiter *w);
/* The server ran DISCARD ALL: what it had prepared is gone. */
void server_forget_session(struct server *sv);
void server_free(struct server *sv);

/* pgring -R, the new process: an idle server connection of the predecessor,
 * as its record describes it (pool/upgrade.c reads it). */
struct server_record {
	uint32_t backend_pid, backend_key;
	uint64_t age_us;                           /* how long it has been connected */
	struct params params, sqlprep;             /* taken over by the server (cleared here) */
	const uint8_t *digests;                    /* ndigests x (STMT_DIGEST_LEN + 1): the statements prepared
						    * there, each with 1 if its copy's age is known */
	uint32_t ndigests;
	union addr_any addr;                       /* where it is connected */
	socklen_t addrlen;
};
/* Make fd a server of p (taking one of its slots): with l (a session-pooled
 * client's lease, moved with it) that session's own, as it is; without, an
 * idle one, handed to a waiting client or the idle list. false, with why:
 * not taken (fd closed): the pool is full here, its entry points elsewhere
 * now, no memory. */
bool server_adopt(struct pool *p, int fd, struct server_record *r, struct lease *l, const char **why);
/* Make fd p's LISTEN connection (pool/listen.h), active and not yet
 * receiving: the caller hands it to the pool's listener first. NULL, with
 * why: not taken (fd closed). */
struct server *server_adopt_listener(struct pool *p, int fd, struct server_record *r, const char **why);

#endif
