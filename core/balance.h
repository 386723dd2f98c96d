/* core/balance.h: how many shards take clients. On a machine whose CPUs the
 * pooler shares with its servers and clients, one shard serving every client
 * costs far less CPU per transaction than several half-idle ones that each
 * sleep and wake per message; a shard that cannot keep up needs the others.
 * So the shards in use follow the load: shards 0..k-1 take clients, the rest
 * hand theirs over (pool/migrate.h) and pass new connections on. */
#ifndef PGRING_BALANCE_H
#define PGRING_BALANCE_H

#include <stdbool.h>
#include <stdint.h>

struct shard;

/* How busy a shard was over a window, in permille of one CPU: its thread's
 * CPU time (core/balance.c says why not its time waiting for a CPU too). */
#define BALANCE_FULL 1000u

/* The policy, a pure function. active: shards taking clients now (1..n);
 * busy[i]: shard i's last window. A shard over spread (permille) asks for one
 * more shard at once; the active ones go down by one when what they carry
 * would fit in one fewer at under gather each, for gather_windows windows in
 * a row (*streak counts them). Returns the new count. */
int balance_next(int active, int n, const unsigned *busy, unsigned spread, unsigned gather, unsigned gather_windows,
		 unsigned *streak);

/* Shards 0..balance_active()-1 take clients (relaxed: a stale answer costs a
 * hop, never a client). */
int balance_active(void);
/* Before the shards start: n shards, all active. The count follows the load
 * while shards_follow_load is on, else it is n. */
void balance_init(int n);
/* From each shard's tick: measure this shard's window; shard 0 also decides. */
void balance_tick(struct shard *s);
/* Shard i's share of a process-wide limit (0 stays 0: no limit): of the
 * shards taking clients if i is one, as they take them all; else of all. */
int balance_share(int i, int nshards, int limit);
/* The active shard a connection accepted by shard s goes to (s itself when
 * s is active). */
int balance_pick(struct shard *s);

#endif
