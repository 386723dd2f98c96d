/* core/hba.{c,h}: auth_hba_file, PgBouncer's subset of pg_hba.conf. The
 * parser (errors as FILE:LINE, for pgring -t, start and reload) and the
 * first-match lookup a login makes. It knows no socket: the caller says what
 * the connection is. */
#ifndef PGRING_HBA_H
#define PGRING_HBA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hba_conn { HBA_LOCAL, HBA_HOST, HBA_HOSTSSL, HBA_HOSTNOSSL, HBA_HOSTGSSENC, HBA_HOSTNOGSSENC };
enum hba_method { HBA_TRUST, HBA_REJECT, HBA_PASSWORD, HBA_MD5, HBA_SCRAM, HBA_CERT, HBA_PEER };

/* A database or user column: keywords and names (quoted names are names). */
struct hba_names {
	char **names;
	int n;
	bool all, sameuser, replication;
};

struct hba_rule {
	uint8_t conn;                /* enum hba_conn */
	uint8_t method;              /* enum hba_method */
	bool addr_all;               /* "all", or a local line */
	uint8_t addr[16], mask[16];  /* IPv6; an IPv4 rule as ::ffff:a.b.c.d under a /96+ mask */
	int line;
	struct hba_names db, user;
};

struct hba {
	struct hba_rule *rules;
	int n;
};

/* What a login is. addr: 16 bytes (IPv4 as ::ffff:a.b.c.d), ignored for
 * local ones. A physical replication connection matches only the database
 * keyword "replication"; a logical one names its database as usual. */
struct hba_query {
	bool local, tls, physical_replication;
	const uint8_t *addr;
	const char *db, *user;
};

/* The first rule that matches, or NULL: no entry, a refusal. */
const struct hba_rule *hba_match(const struct hba *h, const struct hba_query *q);

/* Reads file (limits as the config's: a regular file, lines of at most 64 kB).
 * @name includes are read from the file's directory. 0, or -1 with
 * "FILE:LINE: why" in err. warn (may be NULL) gets lines worth a log line that
 * do not fail the load. */
int hba_load(const char *file, struct hba **out, char *err, size_t errlen, void (*warn)(void *ctx, const char *msg),
	     void *ctx);
void hba_free(struct hba *h);

/* One row of PostgreSQL's pg_hba_file_rules view, its values as text (arrays
 * as PostgreSQL prints them: {all}, {app,"my db"}); NULL for SQL NULL. */
struct hba_server_row {
	int line;
	const char *type, *database, *user, *address, *netmask, *method, *options, *error;
};

/* The rules a server holds (auth_hba_file = @server), first match wins as in
 * the file. A row pgring cannot enforce as PostgreSQL would (ldap, gss, an
 * option, a +group, a host name) becomes a refusal for that line, warned;
 * any row with an error means the server's file is broken (PostgreSQL keeps
 * its old rules then): -1 with "SOURCE:LINE: why" in err. */
int hba_from_server(const struct hba_server_row *rows, int n, const char *source, struct hba **out, char *err,
		    size_t errlen, void (*warn)(void *ctx, const char *msg), void *ctx);

const char *hba_method_name(int method);

/* "127.0.0.1", "::1" or "[local]", as PostgreSQL names the client in its
 * hba messages. */
void hba_format_addr(const uint8_t addr[16], bool local, char *out, size_t len);

#endif
