/* pool/route.h: which node of a cluster a transaction goes to (pool/route.c).
 * The choice itself is a pure function over a topology snapshot
 * (route_pick_node), so it can be tested without a shard. */
#ifndef PGRING_ROUTE_H
#define PGRING_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

struct client;
struct pool;
struct shard;
struct topo_cluster;

/* The target of a transaction that starts with msg (whole, or NULL when not
 * looked at); ahead: what was received behind it, for the rest of its segment. */
int route_target(const struct client *cl, const uint8_t *msg, uint32_t len, const uint8_t *ahead,
		 uint32_t ahead_len);
bool route_guarded(const struct client *cl);       /* must pipelined requests earn its node? */
bool route_wants_text(const struct client *cl);    /* does the first message's text matter? */
uint32_t route_peek_max(void);                     /* longest first message looked at */

/* The node of tc for a transaction with target (enum config_target): the
 * primary, or for reads two weighted picks among the readable nodes, the one
 * with the lower load(tc, node) winning (the caller's load divides by weight);
 * -1 when none. rng: xorshift state, nonzero (zero stays zero). */
int route_pick_node(const struct topo_cluster *tc, int target, uint64_t *rng,
		    double (*load)(const struct topo_cluster *tc, int node));

/* The pool of the node for cl->txn_target, counted as routed; NULL when no
 * node can take it now (no primary): the caller puts the client in CL_ROUTING. */
struct pool *route_pool(struct client *cl);
struct pool *route_login_pool(struct client *cl);  /* where a new client learns its parameters */
const char *route_login_standby(const struct client *cl); /* in_hot_standby it is welcomed with */
void route_refresh(struct shard *s);               /* a new topology: indexes, waiters re-routed */
void route_tick(struct shard *s);                  /* failover_timeout of clients with no node */
void route_refresh_pool(struct pool *p);           /* its indexes in the shard's topology */

#endif
