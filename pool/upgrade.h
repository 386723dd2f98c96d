/* pool/upgrade.h: pgring -R as the pool layer sees it. In the old process, a
 * shard handing over (s->handing_over) moves each client that reaches rest to
 * the successor: its socket and a record of its session (user, database,
 * target, startup and SET parameters, SQL PREPAREs, protocol-level prepared
 * statements by name and Parse body, cancel key) go to the control thread,
 * which sends them (core/takeover.h). In the new process the record becomes a
 * logged-in idle client again, with the same cancel key. A session-pooled
 * client, or one pinned to its server, moves between two transactions
 * together with that server (its session), attached there as it is. What
 * cannot move (TLS, LISTEN, WITH HOLD cursors, replication, the console)
 * stays on the old process until it leaves. Idle server connections move
 * too, with their settings and what they have prepared (not with TLS). */
#ifndef PGRING_UPGRADE_H
#define PGRING_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;
struct shard;
struct strbuf;
struct stmt_registry;

enum upgrade_fit {
	UPGRADE_MOVES,     /* at rest and fully described by its record */
	UPGRADE_NOT_YET,   /* busy (a transaction, a message half received, output owed): later */
	UPGRADE_STAYS,     /* its state cannot be carried: it stays until it leaves */
	/* at rest, listening through its pool's LISTEN connection: it moves with
	 * that connection and every other client listening through it, at once */
	UPGRADE_WITH_LISTENER,
};
/* Can the client move now? why: for the log when it stays. */
enum upgrade_fit upgrade_fit(const struct client *cl, const char **why);

/* The client's record, appended to sb. false: no memory, or over
 * TAKEOVER_REC_MAX (it stays). now_us: for its age. */
bool upgrade_pack(const struct client *cl, uint64_t now_us, struct strbuf *sb);
/* A record read into a zeroed client (no shard needed): user, database,
 * target, address, cancel key, startup and session parameters, SQL PREPAREs,
 * statement names (interned in *reg). age_us, old_id: how long it has been
 * connected, its id in the old process. false: malformed or truncated (what
 * was set is released by upgrade_release, or by the client's own free). */
bool upgrade_unpack(struct client *cl, const uint8_t *p, size_t n, struct stmt_registry **reg, uint64_t *age_us,
		    uint64_t *old_id);
void upgrade_release(struct client *cl, struct stmt_registry *reg);
/* The record's cancel secret (which shard must own the client). false: too short. */
bool upgrade_peek_secret(const uint8_t *p, size_t n, uint32_t *secret);

/* Old process, a handing-over shard's tick: start moving the clients at
 * rest. true when nothing is left on the shard (it may stop). */
bool upgrade_shard_step(struct shard *s);
/* Old process, a handing-over shard's batch end: the clients that came to
 * rest in the batch (pool_shard->upgrade_due) start moving at once, before
 * their next request can come. */
void upgrade_batch_end(struct shard *s);
/* Old process: the client's socket is parked (no I/O of ours refers to it):
 * send it, or let it go on here if it became busy meanwhile. */
void upgrade_client_parked(struct client *cl);
/* Old process: an idle server parked for the hand-over: send it, or keep it
 * if it is no longer fit (bytes came meanwhile). */
struct server;
void upgrade_server_parked(struct server *sv);
/* An idle server's record, appended to sb. false: no memory, or too long. */
bool upgrade_pack_server(const struct server *sv, uint64_t now_us, struct strbuf *sb);
/* Its pool's names in a server's record (malloc'd; cluster and node "" for
 * a database with its own host). */
struct upgrade_server_ids {
	char *db, *user, *cluster, *node;
};
/* A server's record read in full (sr->digests points into p). false:
 * malformed or truncated; either way upgrade_server_release frees what was
 * set. */
struct server_record;
bool upgrade_unpack_server(const uint8_t *p, size_t n, struct server_record *sr, struct upgrade_server_ids *ids);
void upgrade_server_release(struct server_record *sr, struct upgrade_server_ids *ids);
/* New process: a record from the predecessor (struct takeover_rec): a
 * client's, or an idle server connection's. */
void upgrade_adopt(struct shard *s, void *rec);

#endif
