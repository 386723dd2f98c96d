/* core/addr.c: host and port to a socket address (core/addr.h). */
#include "core/addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/topology.h"

static int unix_addr(const char *path_fmt, const char *dir, int port, union addr_any *out, socklen_t *len)
{
	memset(&out->un, 0, sizeof out->un);
	out->un.sun_family = AF_UNIX;
	int n = snprintf(out->un.sun_path, sizeof out->un.sun_path, path_fmt, dir, port);
	if (n < 0 || (size_t)n >= sizeof out->un.sun_path)
		return -1;
	*len = (socklen_t)sizeof out->un;
	return AF_UNIX;
}

static void set_port(union addr_any *out, int port)
{
	if (out->sa.sa_family == AF_INET)
		out->in.sin_port = htons((uint16_t)port);
	else if (out->sa.sa_family == AF_INET6)
		out->in6.sin6_port = htons((uint16_t)port);
}

bool addr_is_name(const char *host)
{
	unsigned char a[sizeof(struct in6_addr)];
	return host && *host && host[0] != '/' && host[0] != '@' && inet_pton(AF_INET, host, a) != 1 &&
	       inet_pton(AF_INET6, host, a) != 1;
}

int addr_resolve(const struct topology *t, const char *host, int port, const char *default_dir,
		 unsigned pick, union addr_any *out, socklen_t *len)
{
	if (!host || !*host || host[0] == '/')
		return unix_addr("%s/.s.PGSQL.%d", host && *host ? host : default_dir, port, out, len);
	if (host[0] == '@') {
		/* abstract: the name after '@', with sun_path[0] = 0 and the length exact */
		if (unix_addr("@%s/.s.PGSQL.%d", host + 1, port, out, len) < 0)
			return -1;
		size_t n = strlen(out->un.sun_path);
		out->un.sun_path[0] = '\0';
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		return AF_UNIX;
	}
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, host, &out->in.sin_addr) == 1) {
		out->in.sin_family = AF_INET;
		*len = (socklen_t)sizeof out->in;
	} else if (inet_pton(AF_INET6, host, &out->in6.sin6_addr) == 1) {
		out->in6.sin6_family = AF_INET6;
		*len = (socklen_t)sizeof out->in6;
	} else {
		const struct topo_addr *a = t ? topo_find_addr(t, host) : NULL;
		if (a && a->n) {
			unsigned i = pick % (unsigned)a->n;
			memcpy(out, &a->addr[i], a->len[i]);
			*len = a->len[i];
		} else {
			/* not looked up yet (a name a reload just brought): this blocks the shard */
			LOGF(LOG_INFO, 0, "host name \"%s\" has no addresses from the control shard yet: resolving it here",
			     host);
			struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
			if (getaddrinfo(host, NULL, &hints, &res) || !res)
				return -1;
			memcpy(out, res->ai_addr, res->ai_addrlen);
			*len = res->ai_addrlen;
			freeaddrinfo(res);
		}
	}
	set_port(out, port);
	return out->sa.sa_family;
}
