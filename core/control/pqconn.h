/* core/control/pqconn.h: how the control shard opens its libpq connections (the
 * health checks, the auth_query lookups): to the addresses core/control/dns.c
 * looked up, so libpq never resolves a name itself (that would block the loop),
 * with the TLS the pool's own servers use, in non-blocking mode. */
#ifndef PGRING_PQCONN_H
#define PGRING_PQCONN_H

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "core/topology.h"

struct config;

/* libpq's host, hostaddr and port lists: one entry per address of a name
 * (addrs empty: no lookup was needed, a socket directory or an address). */
struct pqconn_addrs {
	char hosts[TOPO_MAX_ADDRS * 256], addrs[TOPO_MAX_ADDRS * (INET6_ADDRSTRLEN + 1)], ports[TOPO_MAX_ADDRS * 8];
};

/* Fill a for host (NULL or "": /var/run/postgresql) and port. 1: ready; 0: a
 * name whose first lookup is still running (ask again after dns_process);
 * -1: failed, why in why. */
int pqconn_addrs(struct pqconn_addrs *a, const char *host, int port, char *why, size_t whylen);

/* What a connection logs in with; password and options may be NULL. */
struct pqconn_login {
	const char *dbname, *user, *password;
	const char *application_name;
	const char *options;       /* libpq's options: -c settings for the session */
	double timeout;            /* seconds; libpq's connect_timeout */
	int sslmode;               /* enum config_sslmode */
};

/* Start connecting (PQconnectStartParams, non-blocking, notices dropped:
 * callers log the outcome). NULL with why on failure. Poll with
 * PQconnectPoll, starting with POLLOUT. */
PGconn *pqconn_start(const struct config *cfg, const struct pqconn_addrs *a, const struct pqconn_login *l,
		     char *why, size_t whylen);

#endif
