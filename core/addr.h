/* core/addr.h: the socket address a host and port of the configuration (a
 * server, a peer) connect to: a socket directory, an abstract socket, an IP
 * address, or a host name the control shard looked up (core/control/dns.c),
 * found in the shard's topology. */
#ifndef PGRING_ADDR_H
#define PGRING_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>

struct topology;

union addr_any {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_un un;
};

/* host NULL or empty: default_dir's socket. A leading '/' is a socket
 * directory (DIR/.s.PGSQL.PORT, as libpq), a leading '@' an abstract socket.
 * A name not in t (a reload just brought it) is looked up here, blocking.
 * pick chooses among a name's addresses (a caller moves it on after a
 * refused connect). Returns the family (AF_UNIX, AF_INET, AF_INET6), or -1. */
/* A host name to look up: not empty, not a socket directory or abstract
 * socket, not an IP address. */
bool addr_is_name(const char *host);
int addr_resolve(const struct topology *t, const char *host, int port, const char *default_dir,
		 unsigned pick, union addr_any *out, socklen_t *len);

#endif
