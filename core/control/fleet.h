/* core/control/fleet.h: pgring as one node of a fleet, through etcd (control
 * thread only). With topology_source = etcd, what Patroni keeps in etcd for
 * each cluster (its leader, its members and their roles), read once and then
 * watched, which the health checks' own view is merged with
 * (core/control/health.c); and with etcd_hosts set, this node's registration
 * under a lease and the list of the live nodes (/peers). When etcd cannot be
 * reached, the last view stays and the health checks go on alone. */
#ifndef PGRING_FLEET_H
#define PGRING_FLEET_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

struct config;
struct strbuf;

/* Take cfg's etcd settings (again after a reload). 0, or -1: no memory. */
int fleet_configure(const struct config *cfg);
#define FLEET_MAX_POLLFDS 16
int fleet_pollfds(struct pollfd *fds, int max);
int fleet_next_timeout(void);                       /* ms, -1: none */
/* After poll, with the same entries: true when Patroni's view of a cluster
 * changed (a new topology is due). */
bool fleet_process(const struct pollfd *fds, int n);
/* Leave: this node's registration is revoked (best effort, bounded). */
void fleet_shutdown(void);

/* Patroni's word on cluster ci's node ni (the configuration's indexes): false
 * when the cluster's roles are not read from etcd, or not known yet. Else
 * *role: NODE_PRIMARY (the leader), NODE_REPLICA (a running member), or
 * NODE_ROLE_UNKNOWN (not a running member: not routed), with why. */
bool fleet_node_word(int ci, int ni, uint8_t *role, const char **why);

/* Patroni's members that no node of the configuration is (clusters with
 * patroni_discover, the default): when the list changed since the last
 * call, true and *found a NULL-terminated list of (cluster, node name,
 * "host=H port=P") for config_load_with, which the caller frees with
 * fleet_found_free. */
bool fleet_take_found(char ***found);
void fleet_found_free(char **found);

/* The control port: GET /peers (the live nodes, this one marked), and the
 * fleet's lines of /metrics. */
void fleet_peers_json(struct strbuf *out);
void fleet_metrics(struct strbuf *out);

#endif
