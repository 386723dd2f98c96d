/* core/control/pqconn.c: the control shard's libpq connections are started here
 * (see core/control/pqconn.h), the same for the health checks and the
 * auth_query lookups. */
#include "core/control/pqconn.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/control/dns.h"

int pqconn_addrs(struct pqconn_addrs *a, const char *host, int port, char *why, size_t whylen)
{
	if (!host || !*host)
		host = "/var/run/postgresql";
	a->addrs[0] = '\0';
	if (!dns_is_name(host)) {
		snprintf(a->hosts, sizeof a->hosts, "%s", host);
		snprintf(a->ports, sizeof a->ports, "%d", port);
		return 1;
	}
	int err = 0;
	const struct topo_addr *ta = dns_get(host, &err);
	if (err) {
		snprintf(why, whylen, "could not look up host name \"%s\": %s", host, gai_strerror(err));
		return -1;
	}
	if (!ta || !ta->n)
		return 0;   /* its first lookup is running (or starts with the configuration) */
	size_t ho = 0, ao = 0, po = 0;
	int n = 0;
	a->hosts[0] = a->ports[0] = '\0';
	for (int i = 0; i < ta->n; i++) {
		char text[INET6_ADDRSTRLEN];
		const struct sockaddr *sa = (const struct sockaddr *)&ta->addr[i];
		const void *src = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
				  : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (!inet_ntop(sa->sa_family, src, text, sizeof text))
			continue;
		const char *sep = n++ ? "," : "";
		ho += (size_t)snprintf(a->hosts + ho, sizeof a->hosts - ho, "%s%s", sep, host);
		ao += (size_t)snprintf(a->addrs + ao, sizeof a->addrs - ao, "%s%s", sep, text);
		po += (size_t)snprintf(a->ports + po, sizeof a->ports - po, "%s%d", sep, port);
	}
	if (!n || ho >= sizeof a->hosts || ao >= sizeof a->addrs || po >= sizeof a->ports) {
		snprintf(why, whylen, "host name lookup gave no usable address");
		return -1;
	}
	return 1;
}

/* libpq would print a server's WARNING (immediate shutdown, say) on stderr,
 * outside the log; what the caller makes of the connection gets logged. */
static void ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

PGconn *pqconn_start(const struct config *cfg, const struct pqconn_addrs *a, const struct pqconn_login *l,
		     char *why, size_t whylen)
{
	char timeout[16];
	snprintf(timeout, sizeof timeout, "%d", (int)(l->timeout + 0.999));
	const char *keys[16] = { "host", "port", "dbname", "user", "application_name", "gssencmode",
				 "connect_timeout" };
	const char *vals[16] = { a->hosts, a->ports, l->dbname, l->user, l->application_name, "disable", timeout };
	int k = 7;
	if (a->addrs[0]) {
		keys[k] = "hostaddr";
		vals[k++] = a->addrs;
	}
	if (l->password) {
		keys[k] = "password";
		vals[k++] = l->password;
	}
	if (l->options) {
		keys[k] = "options";
		vals[k++] = l->options;
	}
	/* the same TLS as the pool's own connections to the node, through libpq */
	keys[k] = "sslmode";
	vals[k++] = config_sslmode_name(l->sslmode);
	const char *tls_files[][2] = { { "sslrootcert", cfg->server_tls_ca_file },
				       { "sslcert", cfg->server_tls_cert_file },
				       { "sslkey", cfg->server_tls_key_file } };
	for (int i = 0; i < 3; i++) {
		if (tls_files[i][1]) {
			keys[k] = tls_files[i][0];
			vals[k++] = tls_files[i][1];
		}
	}
	keys[k] = NULL;   /* the list ends there */
	PGconn *c = PQconnectStartParams(keys, vals, 0);
	if (!c || PQstatus(c) == CONNECTION_BAD) {
		snprintf(why, whylen, "%s", c ? PQerrorMessage(c) : "out of memory");
		PQfinish(c);
		return NULL;
	}
	PQsetnonblocking(c, 1);
	PQsetNoticeProcessor(c, ignore_notice, NULL);
	return c;
}
