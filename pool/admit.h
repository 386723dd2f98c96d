/* pool/admit.h: admission control. A tenant is a [databases] entry, a [users]
 * line or an [applications] line (by application_name) that sets limits on
 * concurrent transactions, queries and rows per second. In transaction and
 * statement pooling, the request that starts a client's transaction is
 * admitted here before it asks its pool for a server: at once, after waiting
 * in its tenant's bounded queue on this shard (CL_THROTTLED, holding no
 * server), or refused with 53400. Rates are token buckets per tenant and
 * shard, each with the shard's share of the configured figure (core/tbucket.h);
 * transactions are counted process-wide (core/registry.h). This module also
 * picks among a pool's waiters by weighted round-robin of their tenants. */
#ifndef PGRING_ADMIT_H
#define PGRING_ADMIT_H

#include <stdbool.h>
#include <stdint.h>

struct client;
struct pool;
struct shard;
struct admit_tenant;

enum admit_kind { ADMIT_DB = 0, ADMIT_USER, ADMIT_APP, ADMIT_KINDS };
enum admit_verdict { ADMIT_GO = 0, ADMIT_WAIT, ADMIT_REFUSED };

/* What a client carries for admission control: allocated on its first request
 * under admission control (admit_of), freed with the client; NULL otherwise. */
struct admit_client {
	struct admit_tenant *t[ADMIT_KINDS];   /* its tenants with limits, by kind (NULL: none) */
	uint64_t gen;                          /* the configuration t[] was found in */
	struct admit_tenant *waits_on;         /* CL_THROTTLED: whose queue it is in */
	uint64_t wait_start_us;
	bool any;                              /* some t[] is set */
	bool rows;                             /* some t[] limits rows: CommandCompletes are counted */
	uint8_t held;                          /* bit per kind: a transaction counted in that tenant */
	bool prepaid;                          /* the admission paid for the next Query or Execute */
	bool throttled;                        /* counted as throttled for this request */
	bool open;                             /* session pooling: admitted for the transaction under way
						* (ends at its ReadyForQuery 'I'; a lease's end in the others) */
};

/* The request (of type `type`) starting the client's transaction (CL_IDLE,
 * its lease holding or about to hold its requests; in session pooling
 * CL_ACTIVE on its own server, between transactions). ADMIT_GO: go on.
 * ADMIT_WAIT: the client is CL_THROTTLED; its requests are held until
 * admit_run admits it (lease_admitted: to the pool for a server, or on to the
 * one it keeps) or refuses it. ADMIT_REFUSED: it was answered with 53400
 * (lease_refuse), the request is not to be delivered. */
enum admit_verdict admit_request(struct client *cl, uint8_t type);
/* cl->adm, allocated if need be; NULL: no memory (logged). */
struct admit_client *admit_of(struct client *cl);
/* A transaction start that cannot be held back (a stream message first):
 * admitted whatever the limits, charged. */
void admit_force(struct client *cl, uint8_t type);
/* A Query or Execute inside an admitted transaction: one more query charged
 * (debt, waited out by the next transaction). */
void admit_query(struct client *cl);
/* A CommandComplete for the client: its rows are charged. */
void admit_rows(struct client *cl, const uint8_t *msg, uint32_t len);
/* The client's transaction is over (its lease, or in session pooling its
 * ReadyForQuery 'I'): it leaves the counts. */
void admit_end(struct client *cl);
/* CL_THROTTLED bookkeeping, from client_set_state. */
void admit_enqueue(struct client *cl);
void admit_dequeue(struct client *cl);
/* Admit (or refuse, past throttle_wait_timeout) the shard's waiters; sets
 * s->upper_wake_us for the next time one may go. */
void admit_run(struct shard *s);
/* A new configuration: tenants take their new limits, clients find theirs
 * again at their next request. */
void admit_configure(struct shard *s);
/* The waiter of p to serve next: weighted round-robin among the tenants of
 * the first waiters (FIFO within a tenant; plain FIFO without admission). */
struct client *admit_pick(struct pool *p);

#endif
