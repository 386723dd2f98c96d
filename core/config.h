/* core/config.h: the parsed configuration (INI via inih), PgBouncer-compatible.
 * A struct config is immutable once loaded: the control shard builds a new one on
 * reload and publishes it to the shards inside a topology snapshot. */
#ifndef PGRING_CONFIG_H
#define PGRING_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_MAX_SHARDS 256

struct tls_ctx;

enum pool_mode { POOL_SESSION = 0, POOL_TRANSACTION, POOL_STATEMENT };
/* AUTH_CERT (PgBouncer's "cert"): a client must come over TLS with a certificate
 * that verifies against client_tls_ca_file and whose common name is the user it
 * logs in as; a client without a verified certificate is refused, whatever
 * client_tls_sslmode says (any sslmode is accepted with it, as in PgBouncer; with
 * "disable", or without client_tls_ca_file, nobody can log in: a warning). */
/* AUTH_SCRAM_PLUS (pgring's "scram-sha-256-plus"): SCRAM-SHA-256-PLUS only,
 * channel binding required, so a client must come over TLS; with plain
 * scram-sha-256 a TLS client is offered both, as PostgreSQL does. */
enum auth_type { AUTH_TRUST = 0, AUTH_ANY, AUTH_PLAIN, AUTH_MD5, AUTH_SCRAM, AUTH_CERT, AUTH_SCRAM_PLUS,
		 AUTH_HBA /* the method comes from auth_hba_file's first matching line */ };
/* libpq's and PgBouncer's TLS modes, weakest first: `mode >= SSLMODE_REQUIRE`
 * means no connection goes without TLS. */
enum config_sslmode {
	SSLMODE_DISABLE = 0, SSLMODE_ALLOW, SSLMODE_PREFER, SSLMODE_REQUIRE, SSLMODE_VERIFY_CA,
	SSLMODE_VERIFY_FULL,
};
/* What a disabled database or user does to the clients it already has:
 * finish leaves them their sessions (PgBouncer's DISABLE); close ends each at
 * its next idle moment (no transaction open, nothing in flight). */
enum config_disable_mode { DISABLE_FINISH = 0, DISABLE_CLOSE };
/* TLS versions of a *_tls_protocols value (config_tls_protocols). */
#define CONFIG_TLS1_2 0x1
#define CONFIG_TLS1_3 0x2
/* Where a transaction goes (same values as proto/sqlroute.h's enum proto_target). */
enum config_target { TARGET_UNSET = 0, TARGET_PRIMARY, TARGET_REPLICA, TARGET_ANY };

/* Admission control (pool/admit.h): what a request over a tenant's limit does. */
enum config_throttle_mode { THROTTLE_WAIT = 0, THROTTLE_REFUSE };

/* A tenant's admission limits, on a [databases] entry, a [users] line or an
 * [applications] line (keyed by application_name). Unset is -1 (the [pgring]
 * default for the throttle_* keys; no limit for the others); 0 is no limit. */
struct config_limits {
	int max_transactions;       /* concurrent transactions, all shards */
	int max_qps, max_rps;       /* max_queries_per_second, max_rows_per_second, all shards */
	int throttle_mode;          /* enum config_throttle_mode */
	int throttle_queue_size;    /* requests waiting per tenant and shard */
	double throttle_wait_timeout; /* a waiter past it is refused */
	int throttle_weight;        /* share among tenants waiting on one pool */
};

/* One line of [applications]: limits for clients of that application_name. */
struct config_app {
	char *name;
	struct config_limits lim;
	int line;
};

/* One line of [peers]: another pgring (or PgBouncer) of the same fleet,
 * which cancel requests carrying its id are forwarded to. */
#define CONFIG_PEER_ID_MAX 16383   /* the most a key's 2 bytes carry beside the TTL (PgBouncer's bound) */
struct config_peer {
	int id;                /* 1..65535, the line's key */
	char *host;            /* address, host name, socket directory ('/') or abstract socket ('@') */
	int port;              /* 6432 */
	int pool_size;         /* cancel exchanges in flight to it at once; -1: default_pool_size */
	int line;
};

#define CONFIG_MAX_NODES 64        /* per cluster */
#define CONFIG_NAME_MAX 63         /* cluster and node names */

/* Limits on what config_load and config_load_auth_file read, so that a wrong
 * path (auth_file = /dev/zero, a FIFO, a huge log) fails at once with a message
 * instead of reading without end. Only regular files are read (a FIFO, device or
 * directory is refused without blocking on it). A file of more than
 * CONFIG_FILE_MAX bytes is refused, and so is a config whose %include files
 * bring it to more than CONFIG_FILE_MAX bytes in all; a line (of the config or
 * of auth_file) may have CONFIG_LINE_MAX bytes before its newline. 64 MB holds
 * an auth_file of some 350,000 SCRAM secrets (~170 bytes a line) or a million
 * md5 ones, and some 500,000 [databases] entries. */
#define CONFIG_FILE_MAX (64 * 1024 * 1024)
#define CONFIG_LINE_MAX (64 * 1024)

/* One node of a [cluster.NAME] section: `name = host=... port=... [role=primary]
 * [weight=N] [max_lag=16MB]`. The role is a hint for the time before the first
 * health check: the control shard discovers roles itself. */
struct config_node {
	char *name;
	char *host;            /* as config_db.host */
	int port;              /* default 5432 */
	int weight;            /* share of read traffic among replicas, default 1; 0: never chosen for reads */
	int max_lag;           /* bytes of WAL a replica may be behind before it stops getting reads; -1: the cluster's */
	char *role;            /* "primary" or "replica" (or NULL) */
	int server_tls_sslmode; /* enum config_sslmode (key server_tls_sslmode or sslmode); -1: the database's */
	int line;
	_Bool discovered;      /* a member of Patroni's scope the file does not name (config_load_with) */
};

struct config_cluster {
	char *name;
	struct config_node *nodes;
	int nnodes;
	int max_lag;           /* default for its nodes; -1: the global max_lag */
	char *patroni_scope;   /* topology_source = etcd: Patroni's scope (NULL: the cluster's name) */
	_Bool patroni_discover; /* topology_source = etcd: members the file does not name are nodes too (default on) */
	int line;
};

/* One line of [databases]. Unset integers are -1, unset strings NULL: the pool
 * falls back to the [pgring] defaults for those. */
struct config_db {
	char *name;            /* client-visible name, "*" for the fallback entry */
	char *host;            /* NULL: unix socket in /var/run/postgresql; leading '/': socket dir */
	int port;              /* default 5432 */
	char *dbname;          /* real database; NULL: same as the client asked for */
	char *user;            /* forced server user; NULL: the client's */
	char *password;        /* server password for `user`, or NULL */
	char *auth_user;       /* auth_query's login for this entry's users; NULL: the global one */
	char *auth_dbname;     /* the [databases] entry auth_query runs at; NULL: the global one, then this one */
	char *auth_query;      /* NULL: the global one */
	char *client_encoding, *datestyle, *timezone, *application_name; /* server startup params */
	char *connect_query;
	char *cluster;         /* name of a [cluster.NAME] section: servers are its nodes, not host/port */
	int pool_size, min_pool_size, reserve_pool_size, max_db_connections;
	int max_db_client_connections;  /* -1: unset (the global key) */
	double client_idle_timeout;     /* -1: unset */
	int pool_mode;         /* enum pool_mode or -1 */
	int target;            /* enum config_target; TARGET_UNSET: the [pgring] default */
	int read_write_split;  /* -1 unset, 0 off, 1 on */
	int server_tls_sslmode; /* enum config_sslmode (key server_tls_sslmode or sslmode); -1: the global one */
	int disabled;          /* disabled=1: new clients refused (-1 unset, 0, 1) */
	int disable_mode;      /* enum config_disable_mode; -1: the global disable_mode */
	struct config_limits lim; /* admission control */
	int line;              /* line in the config file, for messages */
};

/* One line of [users]. */
struct config_user {
	char *name;
	int pool_mode;         /* enum pool_mode or -1 */
	int pool_size;         /* -1: unset */
	int max_user_connections; /* -1: unset */
	int reserve_pool_size;    /* -1: unset */
	int max_user_client_connections; /* -1: unset */
	double query_timeout, idle_transaction_timeout, client_idle_timeout; /* -1: unset */
	int disabled;          /* disabled=1: the user's logins are refused (-1 unset, 0, 1) */
	int disable_mode;      /* enum config_disable_mode; -1: the database's, then the global one */
	struct config_limits lim; /* admission control */
	int line;
};

/* One line of auth_file (PgBouncer userlist.txt: "user" "secret"). The secret is
 * a plain password, "md5<32 hex>" or "SCRAM-SHA-256$<iter>:<salt>$<stored>:<server>". */
struct config_secret {
	char *user;
	char *secret;
};

/* String settings are NULL when unset or set to an empty value, except the TLS
 * strings that have a default (an empty value gives the default). */
struct config {
	char *path;                 /* file it was read from */
	/* [pgring] / [pgbouncer] */
	char *listen_addr;          /* "*" = all, comma list allowed; NULL/"" = no TCP */
	int listen_port;            /* 6432 */
	char *unix_socket_dir;      /* NULL/"" = no unix socket; default "/tmp" as PgBouncer */
	int unix_socket_mode;       /* 0777 */
	int auth_type;              /* enum auth_type, default AUTH_MD5 */
	char *auth_file;            /* a relative path is resolved against path's directory */
	char *auth_hba_file;        /* with auth_type = hba (as PgBouncer): core/hba.h's rules */
	struct hba *hba;            /* those rules, read by config_load (NULL with @server) */
	int hba_cluster;            /* auth_hba_file = @server or @NAME: the cluster whose primary's
				     * pg_hba_file_rules are the rules (topology's hba); -1: a file */
	int pool_mode;              /* enum pool_mode, default POOL_SESSION */
	int default_pool_size;      /* 20 */
	int min_pool_size;          /* 0 */
	int reserve_pool_size;      /* 0 */
	double reserve_pool_timeout;/* 5 s */
	int max_client_conn;        /* 100 */
	int max_db_connections;     /* 0 = unlimited */
	int max_user_connections;   /* 0 = unlimited */
	int max_db_client_connections;   /* clients of one database, all shards: 0 = unlimited */
	int max_user_client_connections; /* clients of one user, all shards: 0 = unlimited */
	/* TCP sockets to clients (set on the listeners, whose accepted sockets
	 * inherit them) and to servers, PgBouncer's keys: 0 = the kernel's default */
	bool tcp_keepalive;         /* 1 */
	int tcp_keepcnt, tcp_keepidle, tcp_keepintvl;   /* probes; seconds; seconds */
	int tcp_user_timeout;       /* milliseconds */
	char *server_reset_query;   /* "DISCARD ALL" */
	bool server_reset_query_always;
	bool so_reuseport;                 /* share the listening port with other processes (PgBouncer's key) */
	char *server_check_query;   /* "select 1" (kept, unused yet) */
	/* all times in seconds (PgBouncer units); 0 = disabled where that makes sense */
	double server_idle_timeout; /* 600 */
	double server_lifetime;     /* 3600 */
	double server_connect_timeout; /* 15 */
	double server_login_retry;  /* the longest pause between reconnects to a failing server: 5 (backoff from 0.1) */
	double query_wait_timeout;  /* 120 */
	double query_timeout;       /* 0 */
	/* pgring: how long a client's cancel connection is held open while the
	 * cancel is delivered (PQcancel returns when it closes), 10; 0: closed at
	 * once, without waiting for the server */
	double cancel_wait_timeout;
	int peer_id;                  /* this node's id in [peers]; 0: no peering */
	double client_login_timeout;/* 60 */
	double client_idle_timeout; /* 0 */
	double idle_transaction_timeout; /* 0 */
	double shutdown_timeout;    /* pgring: how long SIGTERM waits for transactions, 30 */
	/* pgring: connections that have not logged in yet. The startup packet must
	 * come within client_startup_timeout (5 s) of the connect. Past
	 * max_client_logins (1000) logging in at once, or past the descriptor
	 * ceiling, the oldest one if it is over a second old is closed for a new
	 * one, else the new one is refused (53300). At most
	 * max_client_logins_per_addr (0: no limit) from one address, a new one
	 * refused past that. Both limits are shared out over the shards. */
	double client_startup_timeout;
	int max_client_logins, max_client_logins_per_addr;
	char *logfile;
	char *pidfile;
	char *user;                 /* PgBouncer's: the Unix user to become once the sockets are open */
	bool syslog;                /* log to syslog as well, as syslog_ident with syslog_facility */
	int disable_mode;           /* enum config_disable_mode, default DISABLE_FINISH */
	char *syslog_ident, *syslog_facility;
	int verbose;                /* 0.. */
	bool log_connections, log_disconnections; /* default on, as PgBouncer */
	char *admin_users, *stats_users;
	int max_packet_size;        /* 2147483647 in PgBouncer; pgring default 256 MiB */
	int max_prepared_statements; /* per server, transaction/statement mode: 200 (0: not tracked) */
	int max_client_prepared_statements; /* pgring: names one client may hold: 10000 */
	/* pgring: the bytes of Parse bodies (query text and types) one client's
	 * names may hold, counted per name: 64 MB; a Parse past it is refused
	 * with 53400, as one past max_client_prepared_statements */
	int max_client_prepared_size;
	/* pgring: the bytes one client's session record may hold in transaction
	 * and statement pooling (names and values of its settings, with the
	 * copies its savepoints keep, SQL PREPARE texts, LISTEN channels, WITH
	 * HOLD cursors): 16 MB; past it the client is closed with 54000, since
	 * pgring could no longer carry its session to the next server */
	int max_client_session_size;
	/* pgring: the most PBKDF2 iterations a server's SCRAM challenge may ask
	 * for when pgring logs in with a plain password (each costs the shard
	 * thread some 0.8 us, 100000 some 80 ms, once per password, salt and
	 * count, and a shard serves nobody else meanwhile; INT_MAX would be half
	 * an hour): 100000; more fails the server login (54000) */
	int max_server_scram_iterations;
	/* pgring: requests one client may have sent whose replies are still owed
	 * (a record of 24 bytes each) before pgring stops reading it until half
	 * of them are answered, as max_pending_bytes does for bytes: 65536 (at
	 * least 4096, so that replies a server has not flushed yet, up to its
	 * 8 kB output buffer of them, never hold the client off for good) */
	int max_client_pipeline;
	int max_startup_packet;     /* 10000, as PostgreSQL */
	/* pgring's own */
	int shards;                 /* 0 = one per online CPU */
	/* core/balance.h: shards 0..k-1 take clients, k following the load */
	bool shards_follow_load;
	int shard_spread_busy;      /* percent of a CPU: a shard busier asks for one more */
	int shard_gather_busy;      /* percent: fewer shards once the load fits under it ... */
	int shard_gather_windows;   /* ... for this many seconds in a row */
	int shard_cpus[CONFIG_MAX_SHARDS]; /* CPU per shard */
	int n_shard_cpus;           /* 0 = not pinned */
	char *control_addr;         /* "127.0.0.1" */
	int control_port;           /* 0 = no control port; default 6433 */
	int ring_entries;           /* SQ size, 1024 */
	int cq_entries;             /* 16384 */
	int client_bufs, client_buf_size; /* provided buffers for client sockets: 1024 x 2048 */
	int server_bufs, server_buf_size; /* for server sockets: 1024 x 16384 */
	int max_pending_bytes;      /* unsent bytes queued behind one socket before its peer is paused: 256 KiB */
	/* clusters and routing (pgring) */
	int target;                 /* enum config_target, default TARGET_PRIMARY */
	bool read_write_split;      /* read-only statements outside transactions go to replicas: off */
	int max_lag;                /* replica lag limit in bytes, 16MB */
	char *health_check_user;    /* "postgres" */
	char *health_check_password;
	char *health_check_dbname;  /* "postgres" */
	double health_check_interval; /* 1 s; 0: no health checks (roles as configured) */
	double health_check_timeout;  /* 2 s */
	int health_check_failures;  /* failed checks in a row before a node is down: 2 */
	double failover_timeout;    /* how long a transaction waits for its node, or a new primary: 30 s */
	double dns_max_ttl;         /* host names are looked up again after this long: 15 (PgBouncer's) */
	/* a fleet of pgring nodes (core/control/fleet.h) */
	char *topology_source;      /* "checks" (the health checks alone) or "etcd" (Patroni's keys there too) */
	char *etcd_hosts;           /* "host:port,...": etcd's client endpoints (its JSON gateway); NULL: none */
	char *etcd_prefix;          /* Patroni's namespace: "/service" */
	char *etcd_pgring_prefix;   /* pgring's own keys: "/pgring" */
	double etcd_timeout;        /* one request to etcd: 2 s */
	double etcd_node_ttl;       /* this node's registration lives this long without a keepalive: 10 s */
	char *node_name;            /* this node's name among its peers; NULL: peer_id, else listen_addr:listen_port */
	bool auto_failover;         /* pgring promotes and fences itself (clusters no Patroni manages): off */
	double failover_after;      /* the primary down this long, as a quorum of nodes sees it: 10 s */
	int fleet_size;             /* nodes in the fleet, for the quorum; 0: [peers]' count, else 1 */
	/* auth_query (PgBouncer's keys): a user absent from auth_file has its
	 * secret looked up on the server (core/control/authq.h) */
	char *auth_user;            /* NULL: no lookups (unless a [databases] entry sets one) */
	char *auth_query;           /* PgBouncer 1.24's default: expired roles get a NULL secret */
	char *auth_dbname;          /* the [databases] entry the lookups go to; NULL: the client's own */
	double auth_cache_ttl;      /* pgring's: a looked-up secret is reused this long, 30 s; 0: never */
	double auth_cache_negative_ttl; /* pgring's: "no such role" is reused this long, 5 s */
	/* TLS: PgBouncer's keys and meanings, checked at load (a combination that
	 * could not give the security it asks for is an error, not a fallback).
	 * Certificate and key files are not opened here; relative paths are resolved
	 * against path's directory, as auth_file. Client side: */
	int client_tls_sslmode;     /* enum config_sslmode, default SSLMODE_DISABLE. Other than
				     * disable needs client_tls_key_file and client_tls_cert_file;
				     * require and up refuse clients without TLS; verify-ca and
				     * verify-full also refuse clients without a certificate that
				     * verifies against client_tls_ca_file (which they need) */
	char *client_tls_key_file, *client_tls_cert_file; /* pgring's key and certificate for clients */
	char *client_tls_ca_file;   /* CAs that client certificates must chain to */
	char *client_tls_protocols; /* "secure" (TLS 1.2 and 1.3); see config_tls_protocols */
	char *client_tls_ciphers;   /* TLS 1.2 cipher list, "default" (given to the TLS library) */
	char *client_tls13_ciphers; /* TLS 1.3 cipher suites; NULL: the library's default */
	char *client_tls_dheparams; /* "auto" or "none" ("legacy" is refused) */
	char *client_tls_ecdhcurve; /* "auto", or a list of prime256v1 or secp256r1 (P-256),
				     * secp384r1 (P-384), secp521r1 (P-521), X25519 */
	/* Server side. server_tls_sslmode is the default for [databases] entries and
	 * cluster nodes (config_server_sslmode). verify-ca and verify-full, set
	 * anywhere, need server_tls_ca_file: unlike PgBouncer, pgring does not fall
	 * back to the system's CAs. */
	int server_tls_sslmode;     /* enum config_sslmode, default SSLMODE_PREFER (as PgBouncer) */
	char *server_tls_ca_file;   /* CAs that server certificates must chain to */
	char *server_tls_key_file, *server_tls_cert_file; /* client certificate for servers: both or neither */
	char *server_tls_protocols; /* "secure" */
	char *server_tls_ciphers;   /* "default" */
	char *server_tls13_ciphers; /* NULL: the library's default */
	/* sections */
	struct config_db *dbs; int ndbs;
	struct config_user *users; int nusers;
	struct config_secret *secrets; int nsecrets; /* from auth_file, sorted by user, unique */
	struct config_cluster *clusters; int nclusters;
	struct config_app *apps; int napps;
	struct config_peer *peers; int npeers;   /* sorted by id, unique */
	/* admission control's defaults (pool/admit.h), and whether any entry
	 * sets a limit or a weight at all: without, requests never look */
	int throttle_mode;          /* enum config_throttle_mode, default THROTTLE_WAIT */
	int throttle_queue_size;    /* 100 */
	double throttle_wait_timeout; /* 30 s */
	int throttle_weight;        /* 1 */
	bool admission;
	/* Hash indexes of dbs, users and clusters by name (config.c's own), so that
	 * loading and the lookups below do not scan. NULL in a struct config not
	 * made by config_load: the lookups then scan. */
	struct config_index *index;
	/* TLS contexts built from the settings above when the configuration is
	 * loaded (so `-t` and a reload open the files and a bad one keeps the
	 * running configuration): client_tls accepts clients (NULL while
	 * client_tls_sslmode is disable), server_tls connects to servers (always
	 * built: per-database and per-node modes may ask for TLS). */
	struct tls_ctx *client_tls, *server_tls;
};

/* Load and validate FILE (PgBouncer syntax; `%include FILE` as PgBouncer, relative
 * to the working directory), then auth_file. On success returns 0 and *out owns a
 * new config. Unknown keys, and known keys pgring does not implement yet, are
 * warnings (written through warn(); may be NULL), except the security settings
 * pgring does not implement (auth_ident_file, auth_ldap_options,
 * disable_pqexec = on): ignoring them would run with less security than
 * asked for, so a non-empty value is an error. Any error returns -1 with
 * "file:line: message" in err. Times take an optional unit (us, ms, s, min, h, d;
 * default seconds), sizes one of B, kB, MB, GB. Call from one thread at a time:
 * it sets libinih's global options. */
/* The [peers] line of that id, or NULL. */
const struct config_peer *config_find_peer(const struct config *cfg, int id);
/* A peer's pool_size in force: its own, else default_pool_size. */
static inline int config_peer_pool_size(const struct config *cfg, const struct config_peer *pe)
{
	return pe->pool_size > 0 ? pe->pool_size : cfg->default_pool_size;
}
int config_load(const char *file, struct config **out, char *err, size_t errlen,
		void (*warn)(const char *msg));
/* config_load short of opening the TLS files (client_tls and server_tls stay
 * NULL): for checking settings alone, as the parser's unit tests do. */
int config_parse(const char *file, struct config **out, char *err, size_t errlen,
		 void (*warn)(const char *msg));
void config_free(struct config *cfg);

/* Lookups; NULL when absent. config_find_db falls back to "*". Hash lookups
 * (config_find_secret: binary search), safe from any thread: nothing changes a
 * loaded config. */
const struct config_db *config_find_db(const struct config *cfg, const char *name);
const struct config_cluster *config_find_cluster(const struct config *cfg, const char *name);
/* A client's database name, which may be "db@cluster": the entry to use and
 * the cluster its servers come from (NULL: the entry's own host); *base_len gets
 * the length of the name without "@cluster" (the real database name when the
 * entry sets none). For "db@cluster" the entry is the one named "db@cluster" if
 * there is one, else "db" (or "*"), with the cluster replaced. NULL when there
 * is no entry, or the entry names a cluster that does not exist. */
const struct config_db *config_resolve_db(const struct config *cfg, const char *name,
					  const struct config_cluster **cluster, size_t *base_len);
/* Effective routing settings of an entry. */
int config_db_target(const struct config *cfg, const struct config_db *db);
bool config_db_split(const struct config *cfg, const struct config_db *db);
/* One of etcd_hosts' endpoints, p[0, n): "ip:port", "[ipv6]:port" or
 * "localhost:port". host (a numeric address), port: where it is. */
bool config_etcd_endpoint(const char *p, size_t n, char *host, size_t hostlen, int *port);
int config_node_max_lag(const struct config *cfg, const struct config_cluster *c, const struct config_node *n);
/* The sslmode (enum config_sslmode) for servers of db, or of node when the
 * database's servers are a cluster's: the node's own, else the database's,
 * else server_tls_sslmode. db and node may be NULL. */
int config_server_sslmode(const struct config *cfg, const struct config_db *db,
			  const struct config_node *node);
const char *config_sslmode_name(int mode);  /* "verify-full"...; "unknown" out of range */
/* A *_tls_protocols value: a list, separated by commas, colons or blanks, of
 * tlsv1.2, tlsv1.3, "secure" (both) and "all" or "legacy" (every version this
 * build has: the same two; tlsv1, tlsv1.0 and tlsv1.1 are refused, Debian's
 * wolfSSL has none). Returns CONFIG_TLS1_2 | CONFIG_TLS1_3 bits, or -1 with
 * the reason in msg (may be NULL). */
int config_tls_protocols(const char *s, char *msg, size_t len);
const char *config_target_name(int target);
int config_target_parse(const char *s);   /* TARGET_UNSET when unknown */
const struct config_user *config_find_user(const struct config *cfg, const char *name);
const struct config_app *config_find_app(const struct config *cfg, const char *name);  /* a scan */
/* Does l set a limit or a weight (so its tenant is tracked)? */
bool config_limits_set(const struct config_limits *l);
const char *config_find_secret(const struct config *cfg, const char *user);

/* Parse PgBouncer's userlist.txt format into cfg->secrets (replacing it). On
 * error returns -1 with "file:line: message" in err and leaves cfg->secrets as is. */
int config_load_auth_file(struct config *cfg, const char *file, char *err, size_t errlen);

/* Parse a CPU list "0,1", "0-3", "0-3,8" into cpus (max n); returns the count or -1. */
int config_parse_cpu_list(const char *s, int *cpus, int max);

/* Effective per-pool settings for (db, user), defaults applied. */
int config_pool_mode(const struct config *cfg, const struct config_db *db, const struct config_user *u);
int config_pool_size(const struct config *cfg, const struct config_db *db, const struct config_user *u);

const char *config_pool_mode_name(int mode);
const char *config_auth_type_name(int type);

/* The [pgring] settings for the admin console's SHOW CONFIG, one a line:
 * "key\tvalue\tdefault\tchangeable\n" (changeable: "yes" when a reload
 * applies it; passwords masked). Keys pgring refuses or ignores are left out. */
struct strbuf;
void config_settings(const struct config *cfg, struct strbuf *out);
bool config_is_setting(const char *name);   /* a [pgring] key, any case */
/* A [pgring] key that takes effect without a restart (what SHOW CONFIG calls
 * changeable). */
bool config_runtime_setting(const char *name);
/* config_load, then overrides (key, value, ..., NULL) set as if they ended
 * the [pgring] section, with the same checks: the admin console's SET. Then
 * found (cluster, node, value, ..., NULL): nodes Patroni's keys name that the
 * file does not, added to their clusters (marked discovered) unless the
 * cluster is gone, has patroni_discover = off or a node of that name. */
int config_load_with(const char *file, const char *const *overrides, const char *const *found, struct config **out,
		     char *err, size_t errlen, void (*warn)(const char *msg));
/* A cluster's or node's name: letters, digits, _ - ., at most CONFIG_NAME_MAX. */
bool config_valid_name(const char *s);

#endif
