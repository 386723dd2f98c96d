/* core/topology.h: the immutable snapshot of the world the control shard hands
 * to every shard: the configuration and, for each cluster, which node is the
 * primary and which replicas are up, lagging or down, and the addresses of the
 * host names it uses. A shard reads only its current snapshot; the control
 * shard frees one after every shard moved past it. */
#ifndef PGRING_TOPOLOGY_H
#define PGRING_TOPOLOGY_H

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

struct config;
struct hba;
struct config_cluster;
struct node_shared;

enum node_role { NODE_ROLE_UNKNOWN = 0, NODE_PRIMARY, NODE_REPLICA };
enum node_state { NODE_DOWN = 0, NODE_UP, NODE_LAGGING };

struct topo_node {
	uint8_t role;                 /* enum node_role */
	uint8_t state;                /* enum node_state */
	int weight;                   /* the config's, for reads */
	struct node_shared *shared;   /* process-wide counters (core/registry.h); never freed */
};

struct topo_cluster {
	const struct config_cluster *cc;  /* in the snapshot's cfg */
	int primary;                  /* index of the node serving writes, -1: none now */
	struct topo_node *nodes;      /* cc->nnodes */
};

/* The addresses a host name had at its last lookup (core/control/dns.c). */
#define TOPO_MAX_ADDRS 4
struct topo_addr {
	const char *host;             /* in the snapshot's memory */
	int n;
	struct sockaddr_storage addr[TOPO_MAX_ADDRS];
	socklen_t len[TOPO_MAX_ADDRS];
};

struct topology {
	uint64_t version;
	struct config *cfg;
	struct topo_cluster *clusters;    /* cfg->nclusters, in the config's order */
	int nclusters;
	struct topo_addr *addrs;          /* host names with addresses */
	int naddrs;
	_Bool owns_cfg;               /* the first snapshot of this cfg: frees it (control.c) */
	/* the hba rules in force: cfg->hba (auth_hba_file), or with @server those
	 * the cluster's primary holds (NULL until read: every login is refused) */
	const struct hba *hba;
	_Bool owns_hba;               /* the newest snapshot of server-held rules frees them */
};

static inline const struct topo_addr *topo_find_addr(const struct topology *t, const char *host)
{
	for (int i = 0; i < t->naddrs; i++)
		if (strcmp(t->addrs[i].host, host) == 0)
			return &t->addrs[i];
	return NULL;
}

static inline const char *topo_role_name(int role)
{
	return role == NODE_PRIMARY ? "primary" : role == NODE_REPLICA ? "replica" : "unknown";
}

static inline const char *topo_state_name(int state)
{
	return state == NODE_UP ? "up" : state == NODE_LAGGING ? "lagging" : "down";
}

#endif
