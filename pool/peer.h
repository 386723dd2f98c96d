/* pool/peer.h: cancel requests across the nodes of a fleet ([peers] and
 * peer_id, as PgBouncer's peering). A node stamps its id into every cancel key
 * it hands out; a cancel request that carries another node's id is forwarded
 * to that node (which may forward it again, three hops at most), so a client
 * behind a load balancer can cancel through whichever node its cancel
 * connection reaches. */
#ifndef PGRING_PEER_H
#define PGRING_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct shard;
struct pool_cancel_waiter;

/* The hops a new key allows: the two low bits of the secret. */
#define PEER_TTL_MASK 3u

/* Stamp this node's id into a new key (nothing when peer_id is 0). A 3.0 key
 * takes PgBouncer's layout, so pgring and PgBouncer 1.21 or later can share a
 * fleet: the id in the PID's second and third bytes (low byte first), the TTL
 * in the secret's two low bits; the PID's sign bit is clear either way. A 3.2
 * key carries the id in its tail and leaves the PID alone. */
void peer_stamp_key(const struct config *cfg, uint32_t *pid, uint32_t *secret, uint8_t *tail);

/* Shard s received a CancelRequest (msg: the whole packet, len 16 or
 * 12 + PROTO_KEY_LONG). If its key names another node, it is forwarded there,
 * or dropped (an id [peers] does not list, its hops used up), and w answered
 * when that ends: returns true. False: the key is this node's (or peering is
 * off); the TTL bits in msg are put back as the key was handed out. */
bool peer_route_cancel(struct shard *s, uint8_t *msg, uint32_t len, const struct pool_cancel_waiter *w);

/* SHOW PEER_POOLS' figures for a peer on shard s: requests whose exchange
 * with it runs, and those waiting for a place (its pool_size). */
void peer_counts(struct shard *s, int id, int *active, int *waiting);

#endif
