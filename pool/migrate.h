/* pool/migrate.h: logged-in clients moving between this process's shards, as
 * core/balance.h's count of shards taking clients says. A shard not taking
 * clients hands each of its clients over at its next rest; an active shard
 * with more than its share of the clients hands the excess to the active
 * shard with the fewest. A client moves as pgring -R moves one to a successor
 * (pool/upgrade.h): its socket parked, its session in a record, both through
 * the queues; it keeps its cancel key (a cancel that finds no client on the
 * key's shard asks the others, pool/client.c). What pgring -R cannot move
 * (TLS, session pooling, pins, LISTEN, the console) stays where it is. */
#ifndef PGRING_MIGRATE_H
#define PGRING_MIGRATE_H

#include <stdbool.h>

struct client;
struct shard;
struct takeover_rec;

/* A connection just accepted by a shard not taking clients goes to one that
 * is, unless that one has half its share of max_client_logins logging in
 * already: then it logs in here (a login storm gets both shards' CPU) and
 * moves at its first rest. One accepted by an active shard with its share
 * logging in goes to the active shard with the fewest, if that one has
 * room (SO_REUSEPORT's hash is no even split of a burst). false: it stays
 * here. */
bool migrate_pass(struct shard *s, int fd, bool is_unix);
/* Every tick: start moving what should move. */
void migrate_tick(struct shard *s);
/* The client's socket is parked for a move: send it, or let it go on here. */
void migrate_client_parked(struct client *cl);
/* POOL_MSG_MOVE_CLIENT: a client from another shard (rec is freed here). */
void migrate_adopt(struct shard *s, struct takeover_rec *rec);

#endif
