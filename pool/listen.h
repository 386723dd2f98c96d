/* pool/listen.h: LISTEN without pinning, in transaction and statement pooling.
 * A client's LISTEN and UNLISTEN run on its transaction's server as usual (so
 * errors, tags and pg_listening_channels() are PostgreSQL's), but what it
 * listens to once committed is pgring's to keep: one listening server
 * connection per pool and shard LISTENs on the union of its clients' channels
 * and hands each notification to every client subscribed, as it arrives when
 * the client is between transactions, else right after its next
 * ReadyForQuery that ends one. Leased servers' own notifications are dropped:
 * every notification comes once, from the listener, with the sender's PID. If
 * the listener dies, a new one listens again and the clients get a warning
 * that notifications may have been missed. Cluster databases keep the pinning
 * (the listener would have to follow the primary). */
#ifndef PGRING_LISTEN_H
#define PGRING_LISTEN_H

#include <stdbool.h>
#include <stdint.h>

struct client;
struct params;
struct pool;
struct server;

/* Does the pool keep LISTEN this way (else it pins)? */
bool listen_pooled(const struct pool *p);
/* The client's committed channels become `want` (subscribed and unsubscribed
 * on the listener as needed). false: no memory (the client failed). */
bool listen_set(struct client *cl, const struct params *want);
/* A warning (01000) among its notifications, delivered as they are. */
void listen_warn(struct client *cl, const char *what);
/* Deliver what waited for the client to be between transactions. */
void listen_flush(struct client *cl);
/* The client is closing: its subscriptions go. */
void listen_client_gone(struct client *cl);

/* The listening server: logged in, a message (whole), closed. */
void listen_server_ready(struct server *sv);
bool listen_server_message(struct server *sv, const uint8_t *msg, uint32_t len, uint32_t buf);
void listen_server_gone(struct server *sv);
/* pgring -R. The old process: the pool's listening connection once it
 * listens on every channel (else NULL), or whatever it is; detach it, handed
 * over with its clients (their subscriptions then go without a word to it).
 * The new one: take a connection listening on the union of the channels of
 * the clients that come with it (false: the pool has its own already); their
 * subscriptions send nothing until listen_adopted, which unlistens what
 * `listened` (that union) has that no client took up. */
struct server *listen_server(const struct pool *p);
struct server *listen_connection(const struct pool *p);
void listen_detach(struct pool *p);
bool listen_adopt(struct pool *p, struct server *sv);
void listen_adopted(struct pool *p, const struct params *listened);
/* Housekeeping: reconnect a lost listener when its pause is over. */
void listen_tick(struct pool *p);

#endif
