/* pool/lease.h: a lease is one client's turn on a server. It begins with the
 * request that needs a server (held until the pool attaches one) and ends when
 * the server goes back to its pool, is lost, or the client leaves. It owns
 * everything about the pairing: the requests held for it, the replies the
 * server owes (the reply queue), ReadyForQuery messages expected, Sync and COPY
 * state, requests rerouted behind it, statement renaming and injection, and the
 * transaction's effect on the client's session until it commits.
 *
 * The client's framer frames each request once and hands it here; held
 * requests are kept framed (type, length, bytes) and replayed through the same
 * path when a server is attached. */
#ifndef PGRING_LEASE_H
#define PGRING_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conn.h"
#include "proto/sql.h"

struct client;
struct server;
struct shard;
struct pstmt;

/* The replies a leased server owes its client, in order. */
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

/* Requests framed but not yet given to a server: their bytes in order, and
 * where each message starts. */
struct held_msg {
	uint8_t type;
	bool whole;           /* framed whole: its bytes are contiguous */
	uint32_t len;
};

struct heldq {
	struct sendq bytes;
	struct held_msg *m;
	uint32_t n, cap;
};

struct lease {
	struct client *client;
	struct server *server;                     /* NULL while the client waits for one */
	uint32_t expect;                           /* ReadyForQuery messages the client awaits (held ones too) */
	bool unsynced;                             /* extended-protocol messages since the last Sync (counted as they begin) */
	bool sent_unsynced;                        /* extended-protocol messages sent to the server since a Sync sent */
	bool route_peek;                           /* the message being framed decides the route */
	bool rerouting;                            /* requests go to `later` until the server is done */
	bool sending;                              /* the streamed message being framed goes to the server */
	uint32_t later_expect;                     /* ReadyForQuery messages owed for `later` */
	/* the server's side */
	bool cur_hide;                             /* the reply streaming in is not for the client */
	bool reply_passing;                        /* ... it is, and it was begun: it goes out whole */
	uint32_t reply_left;                       /* bytes of the streamed reply still to come */
	bool skipping;                             /* the server ignores requests until Sync */
	bool need_sync;                            /* session state may differ from the client's */
	bool copy_in;                              /* in COPY FROM STDIN (CopyInResponse seen): Syncs are ignored */
	bool copy_data;                            /* CopyData sent while replies were owed, no CopyDone/CopyFail since */
	uint32_t copy_data_owed;                   /* ... of which these are still owed: it holds until they are answered */
	bool portal_gone;                          /* a simple Query since the unnamed portal was last bound (on_execute) */
	uint64_t clock;                            /* server's stmts.clock at attach: later uses are this lease's */
	struct proto_sql_stmt *portal_fx;          /* what the unnamed portal's statement does */
	struct proto_sql_stmt *unnamed_fx;         /* what the unnamed statement does to the session */
	bool unnamed_here;                         /* the server's unnamed statement is the client's (or both have none) */
	uint32_t unnamed_inflight;                 /* the client's unnamed Parses not answered yet */
	/* the transaction's effect on the session (pool/session.c) */
	bool txn_error;                            /* an error in the current transaction */
	bool txn_rolled;                           /* a ROLLBACK (maybe TO SAVEPOINT) in it */
	bool txn_uncertain;                        /* settings rolled back to a savepoint: unknown */
	bool txn_reset_all;                        /* RESET ALL in it */
	/* kept, with their room, while the lease waits on the free list: from
	 * here on nothing is cleared when a lease ends (LEASE_RESET_SIZE) */
	struct replyq rq;                          /* replies owed to the client */
	struct heldq held;                         /* for the server this lease gets next */
	struct heldq later;                        /* pipelined behind this server's work, for another node */
	struct lease *next_free;                   /* the shard's free leases */
};

#define LEASE_RESET_SIZE offsetof(struct lease, rq)

/* ---- requests, from the client's framer (client.c) ---- */

/* How the client's framer should deliver a request of this type (proto_take). */
int lease_frame_kind(uint8_t type, uint32_t len);
/* The client's claim on a server, before any request (session pooling's
 * login). NULL: no memory. */
struct lease *lease_open(struct client *cl);
/* A request begins; the client gets a lease if it has none. PROTO_STOP when
 * the client failed. */
int lease_request_begin(struct client *cl, uint8_t type, uint32_t len);
/* A whole request sent straight on when nothing routes, admits or holds it;
 * false: it was not (nothing done). */
bool lease_request_direct(struct client *cl, const uint8_t *msg, uint32_t len, uint32_t buf);
bool lease_request_whole(struct client *cl, const uint8_t *msg, uint32_t len, uint32_t buf);
void lease_request_bytes(struct client *cl, const uint8_t *p, uint32_t n, uint32_t buf);

/* ---- the pairing, from the pool (pool.c) ---- */

/* sv was taken for cl's lease: restore the session, send what was held. */
void lease_attach(struct lease *l, struct server *sv);
/* The client left: its lease ends and its server goes to be reset. */
void lease_client_gone(struct client *cl);
/* Admission control refused the requests the lease holds: each is answered
 * with an error (sqlstate, why) as if a server had failed it; the lease is
 * over (one without a server) or goes on with its server (session pooling,
 * which never got them); the client's session goes on. */
void lease_refuse(struct client *cl, const char *sqlstate, const char *why);
/* Admission control let the client's held request go: to the pool for a
 * server, or (session pooling) to the server it keeps. */
void lease_admitted(struct client *cl);
/* pgring -R, a session-pooled client: nothing owed, held, half sent or in
 * a COPY either way (with the client not in a transaction, its session can
 * move with its server). */
bool lease_at_rest(const struct lease *l);
/* Take the server off the lease as it is (no reset: it moves on with the
 * client's session). */
struct server *lease_give_up_server(struct lease *l);
/* The new process: sv (SV_ACTIVE) is the session-pooled client's own server
 * from the predecessor: attached as it is, nothing restored. */
void lease_adopt_server(struct lease *l, struct server *sv);
/* The server died under the lease (already closed). */
void lease_server_lost(struct lease *l, const char *sqlstate, const char *why);

/* ---- replies, from the server's framer (server.c) ---- */

int lease_reply_begin(struct lease *l, uint8_t type, uint32_t len);
void lease_reply_whole(struct lease *l, const uint8_t *msg, uint32_t len, uint32_t buf);
void lease_reply_bytes(struct lease *l, const uint8_t *p, uint32_t n, uint32_t buf);
/* Replies at the front of data that pass unchanged, forwarded as one slice;
 * returns the bytes taken (the rest goes through the framer). */
uint32_t lease_reply_span(struct lease *l, const uint8_t *data, uint32_t n, uint32_t buf, uint32_t max_len);
/* Back-pressure: the server's reply path drained on the client side. */
void lease_resume(struct lease *l);

/* ---- for the rest of the pool layer ---- */

/* pgring's own restore runs on the server before the client's next request
 * (at attach, or between two requests): a cancel now would hit it. */
bool lease_restoring(const struct lease *l);
/* Something the client sent is on the server and not answered yet. */
bool lease_running(const struct lease *l);
/* Bytes queued for or held from the client's requests (back-pressure). */
uint32_t lease_pending(const struct lease *l);
/* pgring's own query, in order with the client's requests, its results swallowed. */
bool lease_hidden_query(struct lease *l, const char *sql);
void lease_free_all(struct shard *s);           /* the shard's free list, at exit */

#endif
