/* core/control/health.h: health checks of every cluster node, run by the control shard
 * with libpq in non-blocking mode: its sockets join the control loop's poll set
 * and nothing here ever blocks (host names are looked up asynchronously
 * first). Each check asks whether the node is in recovery, its WAL position
 * and how many backends are active; from that the module derives the roles,
 * the replicas' lag and each node's state. Control thread only. */
#ifndef PGRING_HEALTH_H
#define PGRING_HEALTH_H

#include <poll.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/topology.h"

struct config;
struct hba;

/* What the control port shows of one node. */
struct health_node {
	const char *cluster, *name, *host;
	int port;
	uint8_t role, state;          /* enum node_role, enum node_state */
	uint8_t check_role;           /* what its own checks found (role may be Patroni's or the fleet's word) */
	bool checked;                 /* at least one check answered */
	bool replay_paused;
	int64_t lag;                  /* bytes behind the primary; -1 unknown */
	uint64_t lsn;                 /* WAL position at the last check */
	int64_t active;               /* active backends at the last check, -1 unknown */
	double check_seconds;         /* latency of the last successful check */
	uint64_t checks, failures;    /* answered / failed checks */
	int fails_in_row;
	const char *last_error;       /* "" when the last check answered */
	bool discovered;              /* a member of Patroni's scope the file does not name */
	struct node_shared *shared;   /* routed transactions, leased servers */
};

/* Take the nodes of cfg's clusters, keeping the state of nodes that stay (same
 * cluster, name, host and port). Returns 0 or -1 (out of memory). */
int health_configure(const struct config *cfg);
/* The poll entries to wait on (at most max), and the time until the next
 * check is due, in ms (-1: none). */
int health_pollfds(struct pollfd *fds, int max);
int health_next_timeout(void);
/* Advance every check: call after poll with the same entries. Returns true when
 * a node's role or state changed (a new topology is due). */
bool health_process(const struct pollfd *fds, int n);
/* Fill a snapshot's clusters from the current state (t->cfg must be the
 * configured cfg); t->clusters must have room for every node. */
void health_fill(struct topology *t);
size_t health_topology_size(const struct config *cfg);   /* bytes of clusters + nodes */
int health_count(void);
const struct health_node *health_node_at(int i);
/* Cluster ci's node ni (the configuration's indexes), or NULL. */
const struct health_node *health_node_of(int ci, int ni);
void health_shutdown(void);
/* pgring -R. The old process: every node's state as its checks found it,
 * appended to sb (a TOPOLOGY record, core/takeover.h). The new one, after
 * health_configure and before its first topology: the nodes that are still
 * configured the same take that state, as if their checks had run here
 * (their own checks then go on from it). Returns how many did. */
struct strbuf;
void health_pack(struct strbuf *sb);
int health_seed(const char *text, size_t len);
/* auth_hba_file = @server: the rules of the cluster's primary when they are
 * new to the caller (read for the first time, changed, another primary, or a
 * reload since), else NULL. The caller owns them. */
struct hba *health_take_hba(void);

#endif
