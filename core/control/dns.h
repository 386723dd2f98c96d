/* core/control/dns.h: the host names the configuration uses (databases, cluster
 * nodes, peers), looked up by the control shard with getaddrinfo_a, again every
 * dns_max_ttl. The addresses go to the shards in each topology snapshot, so a
 * shard opening a server connection does not block on a resolver; the health
 * checks take them from here. Control thread only. */
#ifndef PGRING_DNS_H
#define PGRING_DNS_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct topology;

/* A name to look up: not empty, not a socket directory, not an address. */
bool dns_is_name(const char *host);
/* Take cfg's names, keeping what is known of those that stay. 0, or -1. */
int dns_configure(const struct config *cfg);
/* Wait up to `seconds` for the lookups in flight (at start, before shards run). */
void dns_wait(double seconds);
/* Collect finished lookups, start due ones. True when an address set changed. */
bool dns_process(void);
int dns_next_timeout(void);                /* ms until dns_process has work, -1: none */
/* What is known of host: NULL if it is not configured; else n addresses
 * (0 while the first lookup runs, or after a failure: err says). */
struct topo_addr;
const struct topo_addr *dns_get(const char *host, int *err);
size_t dns_topology_size(void);             /* bytes dns_fill adds to a snapshot */
void dns_fill(struct topology *t, void *mem);
void dns_shutdown(void);

#endif
