/* pool/client.h: a client connection from accept to close: its startup,
 * authentication and login welcome, its session (settings, statement names,
 * pins) and what it is told while it has no server. Its requests go to a lease
 * (pool/lease.h); it reaches a server only through one. */
#ifndef PGRING_CLIENT_H
#define PGRING_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conn.h"
#include "core/list.h"
#include "pool/admit.h"
#include "pool/params.h"
#include "pool/pool.h"
#include "pool/stmt.h"
#include "proto/auth.h"

struct admin_conn;
struct shard;
struct pool;
struct lease;
struct server;

/* Each state but CL_IDLE and CL_ACTIVE has one list the client is on
 * (client_set_state moves it): the shard's list of clients not logged in yet,
 * the pool's login or wait list, the shard's list of clients with no node to
 * go to, or the shard's list of clients to close. */
enum client_state {
	CL_STARTUP = 0,   /* waiting for SSLRequest / StartupMessage / CancelRequest */
	CL_AUTH,          /* password exchange */
	CL_AUTHQ,         /* not in auth_file: waiting for auth_query's answer (core/control/authq.h) */
	CL_LOGIN_WAIT,    /* authenticated; waiting for the pool's first server to learn its parameters */
	CL_IDLE,          /* logged in, no server */
	CL_WAITING,       /* has a request, waiting in its pool for a server */
	CL_ROUTING,       /* has a request, no node of its target to go to (no primary) */
	CL_THROTTLED,     /* has a request held back by admission control, in its tenant's queue (pool/admit.h) */
	CL_ACTIVE,        /* its lease has a server */
	CL_REPL,          /* a replication connection: its own server, then bytes pass (pool/repl.h) */
	/* a connection that sent a CancelRequest, held open until the cancel's
	 * exchange with the server has ended (the postmaster closed it): libpq's
	 * PQcancel returns only then, so the client's next statement cannot meet
	 * the second signal PostgreSQL sends for one cancel */
	CL_CANCEL,
	CL_CLOSED,        /* failed or gone: closed at the end of the completion batch */
};

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
	uint32_t sp_bytes;                         /* what they hold, for max_client_session_size */
	struct params sqlprep;                     /* SQL PREPAREs: name -> PREPARE statement */
	struct params holds;                       /* "l:channel" listened to (pinned), "c:cursor" held */
	struct params listen;                      /* channels kept by the pool's listener (pool/listen.h) */
	struct params *txn_listen;                 /* them as they become if the transaction commits */
	struct stmt_map stmts;                     /* protocol-level statement names */
};

#define NEG_SSL 1
#define NEG_GSS 2

/* What few clients ever need: allocated on first use (client_extra) and freed
 * with the client. An idle client costs its struct client, so what most never
 * use is kept out of it. */
struct client_extra {
	struct pool_cancel_waiter cancel_waiter;   /* the held cancel's connection (cancel_held) */
	uint8_t *fatal_deferred;                   /* its FATAL, sent once that message is out (close_deferred) */
	uint32_t fatal_deferred_len;
	char lost_state[6];                        /* after its server died under it: for the next request */
	char *lost_msg;                            /* ... why the server went away (NULL: nothing owed) */
	struct params *moved_listen;               /* pgring -R, new process: the channels it listens to */
	struct server *repl;                       /* CL_REPL: its server (linked once SV_ACTIVE) */
	uint8_t key_tail[PROTO_KEY_LONG - 4];      /* protocol 3.2 (key_long): the rest of the secret */
};

/* Notifications from the pool's listener waiting for the end of the client's
 * transaction: whole messages, as they go out. */
struct client_nq {
	uint32_t len, cap;
	uint8_t data[];
};

struct client {
	struct conn conn;
	struct list all;                           /* the shard's clients */
	struct list wait;                          /* the list its state puts it on */
	struct pool *pool;
	struct lease *lease;                       /* its claim on a server, while it has requests */
	char *user, *database;                     /* one allocation, the database's name after the user's; or its pool's (names_shared) */
	struct params params;                      /* session state the client asked for */
	struct client *next_key;                   /* cancel-key hash chain */
	uint64_t connect_us, wait_start_us, state_us, xact_start_us, query_start_us;
	uint64_t msg_start_us;                     /* when the message being received began */
	struct client_nq *nq;                      /* notifications held for the end of its transaction (pool/listen.c) */
	struct auth_scram_server *scram;           /* during SCRAM */
	char *secret;                              /* the stored secret used to authenticate */
	/* transaction pooling: session state pgring carries from server to server */
	struct params startup;                     /* what RESET ALL goes back to */
	struct client_sess *sess;                  /* the rest, allocated on first use (pool/session.c) */
	struct admin_conn *admin;                  /* a client of the admin console (pool/admin.h), else NULL */
	struct client_extra *extra;                /* what few clients need (NULL: none yet) */
	struct admit_client *adm;                  /* admission control: its tenants, its transaction's place (NULL: none yet) */
	enum client_state state;
	uint32_t key_pid, key_secret;              /* our BackendKeyData */
	uint8_t addr[16];                          /* the peer's address, for per-address limits */
	uint8_t md5_salt[4];
	bool key_long;                             /* protocol 3.2: the secret goes on with key_tail */
	/* a cancel for it while it waits for a server or its session is being
	 * restored: delivered once its own request runs (client_cancel_due) */
	bool cancel_held;
	uint8_t auth_method;                       /* enum auth_type in use */
	uint8_t auth_step;                         /* SCRAM: 0 awaiting SASLInitialResponse, 1 SASLResponse */
	bool authq_asked;                          /* CL_AUTHQ: its question (or a twin's) is with the control shard */
	bool secret_looked_up;                     /* secret came from auth_query: the pool keeps it for its servers */
	bool authq_answered;                       /* auth_query answered (with or without a secret) */
	bool counted;                              /* counted in max_client_conn */
	bool limits_counted;                       /* counted in its pool's database's and user's client limits */
	bool in_txn;                               /* last ReadyForQuery it got said T or E */
	uint8_t replication;                       /* enum repl_mode asked at startup */
	bool welcome_owed;                         /* session pooling: welcomed once its server is there */
	bool server_fatal_relayed;                 /* session pooling: got its server's own FATAL */
	bool nq_lost;                              /* some notifications were dropped (over max_pending_bytes) */
	bool nq_warned;                            /* told of the listener's loss (pool/listen.c) */
	bool terminating;                          /* sent Terminate */
	bool close_deferred;                       /* closed while a server's reply to it was mid-message */
	uint8_t negotiated;                        /* NEG_SSL, NEG_GSS: encryption requests answered */
	bool tls_asked;                            /* answered S: TLS starts after this receive */
	bool is_unix;                              /* came through the unix socket */
	bool fd_exempt;                            /* another connection was closed to make room for it */
	uint8_t addr_family;                       /* AF_INET6 (IPv4 mapped into it), AF_UNIX, 0: unknown */
	/* after its server died under it: pgring answers until the client is past it */
	bool txn_failed;                           /* inside a transaction block: until it ends it */
	bool failed_error_sent;                    /* emulated 25P02 already sent before Sync */
	bool sync_failed;                          /* with messages unsynced: ignore until Sync */
	bool drop_msg;                             /* the message being received is not forwarded */
	uint8_t pins;                              /* enum client_pin bits */
	/* routing (pool/route.c) */
	uint8_t target;                            /* enum config_target asked at startup; 0: the database's */
	uint8_t txn_target;                        /* where the transaction being started goes */
	/* pgring -R (pool/upgrade.h) */
	bool upgrade_moving;                       /* parked on its way to the successor */
	bool upgrade_told;                         /* logged that it stays here */
	bool upgrade_pairing;                      /* session pooling, or pinned: it and its server park to move together */
	uint8_t moved_pins;                        /* pgring -R, new process: its pins, from its record */
	bool upgrade_grouped;                      /* pgring -R: parked to move with its pool's LISTEN connection */
	bool moved_in;                             /* came from the predecessor or another shard: logged in, no welcome owed */
	/* pool/migrate.h: parked on its way to shard migrate_to */
	bool migrating;
	bool moved_away;                           /* ... and gone there: closed here without a closing line */
	int16_t migrate_to;
	bool names_shared;                         /* user and database point at its pool's (pools live as long as the process) */
};

/* Its framer's reassembly callbacks (conn_frame_alloc) take it as its conn. */
_Static_assert(offsetof(struct client, conn) == 0, "conn must come first in struct client");

void client_accept(struct shard *s, int fd, bool is_unix);
/* cl->extra, allocated if need be; NULL: no memory (logged). */
struct client_extra *client_extra(struct client *cl);
void client_extra_free(struct client *cl);
/* CL_REPL: its server (linked once SV_ACTIVE), else NULL. */
static inline struct server *client_repl(const struct client *cl) { return cl->extra ? cl->extra->repl : NULL; }
/* Its user's and database's names (copied, in one allocation); false: no memory. */
bool client_set_names(struct client *cl, const char *user, const char *database);
void client_free_names(struct client *cl);   /* and forget them */
/* pgring -R: a logged-in client handed over by the predecessor (its socket
 * and its record, pool/upgrade.h) becomes this shard's, idle, with the same
 * cancel key. The fd is taken in every case (closed on failure). */
struct takeover_rec;
/* pair: a session-pooled client's own server, its record and socket (taken:
 * its descriptor is -1 afterwards), or NULL. The channels it listens to are
 * subscribed on its pool's listener. The client, or NULL if it was closed. */
/* Clients counted in max_client_conn, over every shard. */
int client_total(void);
/* from_shard: the record comes from another shard of this process
 * (pool/migrate.h), whose client was let in already: it takes over that
 * one's count in max_client_conn (client_moved_away) and is counted in its
 * pool's limits whatever they say. */
struct client *client_move_in(struct shard *s, int fd, const uint8_t *rec, uint32_t len, struct takeover_rec *pair,
			      bool from_shard);
/* The client's socket and record went to shard `to` (pool/migrate.h): it
 * closes here quietly (one log line, "moved"), its count in max_client_conn
 * staying with its twin there. */
void client_moved_away(struct client *cl, int to);
/* auth_query's answer (a struct authq_req, freed here): the shard's clients
 * waiting for that database and user go on with their authentication. */
void client_authq_answer(struct shard *s, void *req);
/* Move the client to state st: its gauges, and its list (appended at the tail
 * of the new one, so waiting lists stay in arrival order). */
void client_set_state(struct client *cl, enum client_state st);
void client_set_pool(struct client *cl, struct pool *p);  /* move the client's gauges to p */
void client_login_finish(struct client *cl);      /* pool has welcome params: finish login */
/* Session pooling or replication: the client's server is sv, welcome it with
 * sv's PID (as PostgreSQL's BackendKeyData would carry; a replication client
 * gets sv's own parameters too). false: it failed (no memory). */
bool client_welcome_server(struct client *cl, const struct server *sv);
/* Tell the client why (FATAL) and close it at the end of the completion batch.
 * It is CL_CLOSED on return: callers stop handling it, nothing else happens
 * inside their stack. */
void client_fail(struct client *cl, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Its server died under its lease: what was in flight fails (an ERROR each),
 * an open block is failed until the client ends it; its session goes on. */
void client_server_lost(struct client *cl, const char *sqlstate, const char *why, uint32_t owed, bool unsynced);
/* Requests in flight fail without reaching a server: an ErrorResponse and
 * ReadyForQuery for each of the owed ones, one ErrorResponse for unsynced
 * extended-protocol messages (the rest of their batch is then skipped). */
void client_fail_requests(struct client *cl, const char *sqlstate, const char *why, uint32_t owed, bool unsynced);
void client_drained(struct client *cl);           /* back-pressure: its socket drained */
/* A closed client's last server message is all out: its close goes on. */
void client_reply_done(struct client *cl);
/* Close it once its last bytes are out, with a log line and nothing sent. */
void client_close_quietly(struct client *cl, const char *why);
/* A cancel request for one of this shard's clients; hops: the shards asked
 * before (a client moved away keeps its key: a cancel that finds none here
 * goes round the shards, the last answers w); tail: the rest of a
 * protocol 3.2 key (PROTO_KEY_LONG - 4 bytes), NULL for a 3.0 one. w (on
 * this shard or another) is answered once the cancel's exchange with the
 * server has ended, at once when nothing is sent (no such client, nothing
 * running). */
void client_cancel(struct shard *s, uint32_t pid, uint32_t key, const uint8_t *tail,
		   const struct pool_cancel_waiter *w, int hops);
/* What a cancel does to a client as it is now. */
enum client_cancel_action {
	CANCEL_NONE,      /* nothing runs (idle, logging in): nothing is sent */
	CANCEL_NOW,       /* its request runs on *sv: cancel it there */
	CANCEL_HOLD,      /* it waits for a server, or pgring's restore runs first: later */
};
enum client_cancel_action client_cancel_action(const struct client *cl, struct server **sv);
/* A held cancel may be due (the client's request now runs, or it will not):
 * deliver or drop it. Called where the restore ends and a lease is attached. */
void client_cancel_due(struct client *cl);
/* The cancel exchange w waits for has ended: its connection
 * closes, here or through the queues on its own shard. */
void client_cancel_answer(struct shard *s, const struct pool_cancel_waiter *w);
/* POOL_MSG_CANCEL_DONE: this shard's cancel connection conn_id closes. */
void client_cancel_done(struct shard *s, uint64_t conn_id);
void client_tick(struct shard *s);
void client_close_pending(struct shard *s);      /* the end of a batch: close the failed ones */
/* Is this client still busy (a request in flight or queued, an open block)? */
bool client_busy(const struct client *cl);
/* A Unix-socket client's OS user, from SO_PEERCRED: its uid, and its name ("?"
 * when unknown). False for TCP clients or when the kernel does not say. */
bool client_peer_user(struct client *cl, uid_t *uid, char *name, size_t len);

#endif
