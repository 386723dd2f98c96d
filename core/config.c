/* core/config.c: reads pgring.ini / pgbouncer.ini into a struct config (contract in
 * core/config.h). Owns the line reader (%include, section tracking, syntax checks)
 * that feeds inih, the key tables (type, default, range: the one place defaults
 * live), the connection strings of [databases] and [users], and auth_file parsing. */
#include "core/config.h"
#include "core/hba.h"
#include "core/strbuf.h"
#include "tls/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define INCLUDE_DEPTH_MAX 10       /* %include nesting; also stops include loops */
#define MSG_MAX 1024
#define TIME_MAX 1e9               /* seconds; ~31 years, keeps conversions to ns in range */
#define CPU_MAX 65535              /* highest CPU number a cpu list may name */
#define MiB (1024 * 1024)

/* ---- key tables ---------------------------------------------------------- */

enum key_type {
	KT_INT,        /* decimal integer in [min, max] */
	KT_OCTAL,      /* file mode, always octal: "0777" and "777" are the same */
	KT_SIZE,       /* bytes, optional unit B, kB, MB, GB (1024-based, as PostgreSQL) */
	KT_TIME,       /* seconds, fractional; optional unit us, ms, s, min, h, d */
	KT_BOOL,       /* 0/1, on/off, yes/no, true/false */
	KT_STR,        /* empty value stores NULL */
	KT_POOL_MODE,
	KT_AUTH_TYPE,
	KT_CPU_LIST,   /* shard_cpus, into cfg->shard_cpus / n_shard_cpus */
	KT_TARGET,     /* enum config_target */
	KT_BOOL_INT,   /* a boolean into an int field that is -1 when unset */
	KT_SSLMODE,    /* enum config_sslmode, into an int */
	KT_DISABLE_MODE, /* enum config_disable_mode, into an int */
	KT_THROTTLE_MODE, /* enum config_throttle_mode, into an int */
	KT_IGNORED,    /* accepted silently: meaningless for pgring (pkt_buf) */
	KT_NO_EFFECT,  /* accepted with a warning: known, not implemented yet */
	KT_REFUSED,    /* a security setting pgring does not implement: any value but
			* an empty one (or off, with F_OFF_OK) is an error, since
			* ignoring it would run with less security than asked for */
};

enum {
	F_POW2 = 1,    /* value must be a power of two (io_uring buffer rings) */
	F_UNUSED = 2,  /* stored, but nothing uses it yet: warn when set */
	F_EMPTY_DEFAULT = 4, /* KT_STR: an empty value gives the default, not NULL */
	F_OFF_OK = 8,  /* KT_REFUSED: a false boolean (the default) is accepted */
};

struct key_def;
/* Checks a KT_STR value before it is stored; -1 with a message in msg. */
typedef int key_check(const struct key_def *k, const char *v, char *msg, size_t len);

struct key_def {
	const char *name;
	unsigned char type, flags;
	size_t off;            /* field in the struct the table fills */
	const char *def;       /* default, parsed like a config value; NULL: zero/NULL */
	double min, max;       /* for KT_INT, KT_SIZE, KT_OCTAL, KT_TIME */
	key_check *check;      /* KT_STR: NULL, or a check of a non-empty value */
};

static key_check check_protocols, check_dheparams, check_ecdhcurve, check_topology_source;

#define CFG_(n, t, d, lo, hi, f) { #n, t, f, offsetof(struct config, n), d, lo, hi, NULL }
#define K_INT(n, d, lo, hi)  CFG_(n, KT_INT, d, lo, hi, 0)
#define K_POW2(n, d, lo, hi) CFG_(n, KT_INT, d, lo, hi, F_POW2)
#define K_SIZE(n, d, lo, hi) CFG_(n, KT_SIZE, d, lo, hi, 0)
#define K_TIME(n, d)         CFG_(n, KT_TIME, d, 0, TIME_MAX, 0)
#define K_BOOL(n, d)         CFG_(n, KT_BOOL, d, 0, 0, 0)
#define K_STR(n, d)          CFG_(n, KT_STR, d, 0, 0, 0)
#define K_LATER(n)           { #n, KT_NO_EFFECT, 0, 0, NULL, 0, 0, NULL }
#define K_REFUSED(n)         { #n, KT_REFUSED, 0, 0, NULL, 0, 0, NULL }
/* A TLS string: checked by chk (may be NULL); empty means the default d. */
#define K_TLS_STR(n, d, chk) { #n, KT_STR, F_EMPTY_DEFAULT, offsetof(struct config, n), d, 0, 0, chk }

/* [pgring] and [pgbouncer]. Defaults here are the ones documented in config.h. */
static const struct key_def main_keys[] = {
	/* PgBouncer settings pgring implements */
	K_STR(listen_addr, NULL),
	K_INT(listen_port, "6432", 1, 65535),
	K_STR(unix_socket_dir, "/tmp"),
	CFG_(unix_socket_mode, KT_OCTAL, "0777", 0, 07777, 0),
	CFG_(auth_type, KT_AUTH_TYPE, "md5", 0, 0, 0),
	K_STR(auth_file, NULL),
	K_STR(auth_hba_file, NULL),
	CFG_(pool_mode, KT_POOL_MODE, "session", 0, 0, 0),
	K_INT(default_pool_size, "20", 0, INT_MAX),
	K_INT(min_pool_size, "0", 0, INT_MAX),
	K_INT(reserve_pool_size, "0", 0, INT_MAX),
	K_TIME(reserve_pool_timeout, "5"),
	K_INT(max_client_conn, "100", 1, INT_MAX),
	K_INT(max_db_connections, "0", 0, INT_MAX),
	K_INT(max_user_connections, "0", 0, INT_MAX),
	K_INT(max_db_client_connections, "0", 0, INT_MAX),
	K_INT(max_user_client_connections, "0", 0, INT_MAX),
	K_STR(server_reset_query, "DISCARD ALL"),
	K_BOOL(server_reset_query_always, "0"),
	K_BOOL(so_reuseport, "0"),
	CFG_(server_check_query, KT_STR, "select 1", 0, 0, F_UNUSED),
	K_TIME(server_idle_timeout, "600"),
	K_TIME(server_lifetime, "3600"),
	K_TIME(server_connect_timeout, "15"),
	K_TIME(server_login_retry, "5"),
	K_TIME(query_wait_timeout, "120"),
	K_TIME(query_timeout, "0"),
	K_TIME(cancel_wait_timeout, "10"),
	K_INT(peer_id, "0", 0, CONFIG_PEER_ID_MAX),
	K_TIME(client_login_timeout, "60"),
	K_BOOL(tcp_keepalive, "1"),
	K_INT(tcp_keepcnt, "0", 0, INT_MAX),
	K_INT(tcp_keepidle, "0", 0, INT_MAX),
	K_INT(tcp_keepintvl, "0", 0, INT_MAX),
	K_INT(tcp_user_timeout, "0", 0, INT_MAX),
	K_TIME(client_idle_timeout, "0"),
	K_TIME(idle_transaction_timeout, "0"),
	K_STR(logfile, NULL),
	K_STR(pidfile, NULL),
	K_STR(user, NULL),
	K_BOOL(syslog, "0"),
	CFG_(disable_mode, KT_DISABLE_MODE, "finish", 0, 0, 0),
	/* admission control's defaults (pool/admit.h) */
	CFG_(throttle_mode, KT_THROTTLE_MODE, "wait", 0, 0, 0),
	K_INT(throttle_queue_size, "100", 0, 1000000),
	K_TIME(throttle_wait_timeout, "30"),
	K_INT(throttle_weight, "1", 1, 1000),
	K_STR(syslog_ident, "pgring"),
	K_STR(syslog_facility, "daemon"),
	K_INT(verbose, "0", 0, 100),
	K_BOOL(log_connections, "1"),
	K_BOOL(log_disconnections, "1"),
	K_STR(admin_users, NULL),
	K_STR(stats_users, NULL),
	K_SIZE(max_packet_size, "256MB", 1024, INT_MAX),
	K_INT(max_prepared_statements, "200", 0, INT_MAX),
	{ "pkt_buf", KT_IGNORED, 0, 0, NULL, 0, 0, NULL }, /* pgring's buffers: client/server_buf_size */
	/* pgring's own */
	K_SIZE(max_startup_packet, "10000", 1024, MiB),
	K_TIME(client_startup_timeout, "5"),
	K_INT(max_client_logins, "1000", 1, INT_MAX),
	K_INT(max_client_logins_per_addr, "0", 0, INT_MAX),
	K_TIME(shutdown_timeout, "30"),
	K_INT(shards, "0", 0, CONFIG_MAX_SHARDS),
	K_BOOL(shards_follow_load, "1"),
	K_INT(shard_spread_busy, "80", 1, 100),
	K_INT(shard_gather_busy, "60", 1, 100),
	K_INT(shard_gather_windows, "3", 1, 3600),
	{ "shard_cpus", KT_CPU_LIST, 0, 0, NULL, 0, 0, NULL },
	K_STR(control_addr, "127.0.0.1"),
	K_INT(control_port, "6433", 0, 65535),
	K_INT(ring_entries, "1024", 1, 32768),        /* io_uring's SQ limit */
	K_INT(cq_entries, "16384", 1, 65536),         /* io_uring's CQ limit */
	K_POW2(client_bufs, "1024", 1, 32768),        /* buffer ring: power of two, <= 32768 */
	K_SIZE(client_buf_size, "2048", 256, 16 * MiB),
	K_POW2(server_bufs, "1024", 1, 32768),
	K_SIZE(server_buf_size, "16384", 256, 16 * MiB),
	K_SIZE(max_pending_bytes, "256kB", 4096, INT_MAX),
	K_INT(max_client_prepared_statements, "10000", 1, INT_MAX),
	K_SIZE(max_client_prepared_size, "64MB", 1024, INT_MAX),
	K_SIZE(max_client_session_size, "16MB", 1024, INT_MAX),
	K_INT(max_server_scram_iterations, "100000", 1, INT_MAX),
	K_INT(max_client_pipeline, "65536", 4096, INT_MAX),
	CFG_(target, KT_TARGET, "primary", 0, 0, 0),
	K_BOOL(read_write_split, "0"),
	K_SIZE(max_lag, "16MB", 0, INT_MAX),
	K_STR(health_check_user, "postgres"),
	K_STR(health_check_password, NULL),
	K_STR(health_check_dbname, "postgres"),
	K_TIME(health_check_interval, "1"),
	K_TIME(health_check_timeout, "2"),
	K_INT(health_check_failures, "2", 1, 1000),
	K_TIME(failover_timeout, "30"),
	K_TIME(dns_max_ttl, "15"),
	{ "topology_source", KT_STR, F_EMPTY_DEFAULT, offsetof(struct config, topology_source), "checks", 0, 0,
	  check_topology_source },
	K_STR(etcd_hosts, NULL),
	K_STR(etcd_prefix, "/service"),
	K_STR(etcd_pgring_prefix, "/pgring"),
	K_TIME(etcd_timeout, "2"),
	K_TIME(etcd_node_ttl, "10"),
	K_STR(node_name, NULL),
	K_BOOL(auto_failover, "0"),
	K_TIME(failover_after, "10"),
	K_INT(fleet_size, "0", 0, 1000),
	/* TLS (PgBouncer's); check_tls relates them to each other */
	CFG_(client_tls_sslmode, KT_SSLMODE, "disable", 0, 0, 0),
	K_STR(client_tls_key_file, NULL),
	K_STR(client_tls_cert_file, NULL),
	K_STR(client_tls_ca_file, NULL),
	K_TLS_STR(client_tls_protocols, "secure", check_protocols),
	K_TLS_STR(client_tls_ciphers, "default", NULL),
	K_STR(client_tls13_ciphers, NULL),
	K_TLS_STR(client_tls_dheparams, "auto", check_dheparams),
	K_TLS_STR(client_tls_ecdhcurve, "auto", check_ecdhcurve),
	CFG_(server_tls_sslmode, KT_SSLMODE, "prefer", 0, 0, 0),
	K_STR(server_tls_ca_file, NULL),
	K_STR(server_tls_key_file, NULL),
	K_STR(server_tls_cert_file, NULL),
	K_TLS_STR(server_tls_protocols, "secure", check_protocols),
	K_TLS_STR(server_tls_ciphers, "default", NULL),
	K_STR(server_tls13_ciphers, NULL),
	/* auth_query (PgBouncer's; the default its 1.24 one, which refuses expired roles) */
	K_STR(auth_user, NULL),
	K_STR(auth_query, "SELECT rolname, CASE WHEN rolvaliduntil < pg_catalog.now() THEN NULL ELSE rolpassword END "
			  "FROM pg_catalog.pg_authid WHERE rolname = $1 AND rolcanlogin"),
	K_STR(auth_dbname, NULL),
	K_TIME(auth_cache_ttl, "30"),            /* pgring's: how long a looked-up secret is kept */
	K_TIME(auth_cache_negative_ttl, "5"),    /* and a "no such role" */
	/* PgBouncer security settings pgring does not implement: errors */
	K_REFUSED(auth_ident_file), K_REFUSED(auth_ldap_options),
	{ "disable_pqexec", KT_REFUSED, F_OFF_OK, 0, NULL, 0, 0, NULL }, /* its SQL injection guard */
	/* PgBouncer settings known but not implemented yet */
	K_LATER(application_name_add_host), K_LATER(autodb_idle_timeout),
	K_LATER(conffile),
	K_LATER(dns_max_ttl), K_LATER(dns_nxdomain_ttl),
	K_LATER(dns_zone_check_period), K_LATER(ignore_startup_parameters), K_LATER(job_name),
	K_LATER(listen_backlog), K_LATER(log_pooler_errors), K_LATER(log_stats),
	K_LATER(query_wait_notify),
	K_LATER(resolv_conf), K_LATER(sbuf_loopcnt), K_LATER(scram_iterations),
	K_LATER(server_check_delay), K_LATER(server_fast_close), K_LATER(server_round_robin),
	K_LATER(service_name), K_LATER(stats_period),
	K_LATER(suspend_timeout),
	K_LATER(tcp_defer_accept), K_LATER(tcp_socket_buffer),
	K_LATER(track_extra_parameters), K_LATER(transaction_timeout),
	K_LATER(unix_socket_group),
};

/* Connection-string keys of a [databases] line. Unset stays -1 / NULL. */
#define DB_(n, f, t, lo, hi, fl) { n, t, fl, offsetof(struct config_db, f), NULL, lo, hi, NULL }
/* Admission control's keys, the same on [databases], [users] and [applications] lines. */
#define LIM_(T, n, f, t, lo, hi) { n, t, 0, offsetof(T, lim) + offsetof(struct config_limits, f), NULL, lo, hi, NULL }
#define LIMIT_KEYS(T) \
	LIM_(T, "max_transactions", max_transactions, KT_INT, 0, INT_MAX), \
	LIM_(T, "max_queries_per_second", max_qps, KT_INT, 0, INT_MAX), \
	LIM_(T, "max_rows_per_second", max_rps, KT_INT, 0, INT_MAX), \
	LIM_(T, "throttle_mode", throttle_mode, KT_THROTTLE_MODE, 0, 0), \
	LIM_(T, "throttle_queue_size", throttle_queue_size, KT_INT, 0, 1000000), \
	LIM_(T, "throttle_wait_timeout", throttle_wait_timeout, KT_TIME, 0, TIME_MAX), \
	LIM_(T, "throttle_weight", throttle_weight, KT_INT, 1, 1000)
#define LIMITS_UNSET { -1, -1, -1, -1, -1, -1, -1 }
#define DB_STR(n) DB_(#n, n, KT_STR, 0, 0, 0)
#define DB_INT(n) DB_(#n, n, KT_INT, 0, INT_MAX, 0)
static const struct key_def db_keys[] = {
	DB_STR(host),
	DB_("port", port, KT_INT, 1, 65535, 0),
	DB_STR(dbname),
	DB_STR(user),
	DB_STR(password),
	DB_STR(client_encoding),
	DB_STR(datestyle),
	DB_STR(timezone),
	DB_STR(application_name),
	DB_STR(connect_query),
	DB_INT(pool_size),
	DB_INT(min_pool_size),
	DB_("reserve_pool", reserve_pool_size, KT_INT, 0, INT_MAX, 0), /* PgBouncer's name */
	DB_INT(reserve_pool_size),
	DB_INT(max_db_connections),
	DB_("pool_mode", pool_mode, KT_POOL_MODE, 0, 0, 0),
	DB_STR(cluster),
	DB_("target", target, KT_TARGET, 0, 0, 0),
	DB_("read_write_split", read_write_split, KT_BOOL_INT, 0, 0, 0),
	DB_("server_tls_sslmode", server_tls_sslmode, KT_SSLMODE, 0, 0, 0),
	DB_("sslmode", server_tls_sslmode, KT_SSLMODE, 0, 0, 0), /* libpq's name */
	DB_STR(auth_user),
	DB_STR(auth_dbname),
	DB_STR(auth_query),
	K_LATER(load_balance_hosts),
	DB_INT(max_db_client_connections),
	DB_("client_idle_timeout", client_idle_timeout, KT_TIME, 0, TIME_MAX, 0),
	DB_("disabled", disabled, KT_BOOL_INT, 0, 0, 0),
	DB_("disable_mode", disable_mode, KT_DISABLE_MODE, 0, 0, 0),
	LIMIT_KEYS(struct config_db),
	K_LATER(server_lifetime),
};

/* Keys of a node line in a [cluster.NAME] section. */
#define NODE_(n, f, t, lo, hi) { n, t, 0, offsetof(struct config_node, f), NULL, lo, hi, NULL }
static const struct key_def node_keys[] = {
	NODE_("host", host, KT_STR, 0, 0),
	NODE_("port", port, KT_INT, 1, 65535),
	NODE_("weight", weight, KT_INT, 0, 1000000),
	NODE_("max_lag", max_lag, KT_SIZE, 0, INT_MAX),
	NODE_("role", role, KT_STR, 0, 0),
	NODE_("server_tls_sslmode", server_tls_sslmode, KT_SSLMODE, 0, 0),
	NODE_("sslmode", server_tls_sslmode, KT_SSLMODE, 0, 0),
};

/* Keys of a [users] line. */
#define USER_(n, t) { #n, t, 0, offsetof(struct config_user, n), NULL, 0, INT_MAX, NULL }
static const struct key_def user_keys[] = {
	USER_(pool_mode, KT_POOL_MODE),
	USER_(pool_size, KT_INT),
	USER_(max_user_connections, KT_INT),
	USER_(reserve_pool_size, KT_INT),
	USER_(max_user_client_connections, KT_INT),
	{ "query_timeout", KT_TIME, 0, offsetof(struct config_user, query_timeout), NULL, 0, TIME_MAX, NULL },
	{ "idle_transaction_timeout", KT_TIME, 0, offsetof(struct config_user, idle_transaction_timeout), NULL, 0, TIME_MAX, NULL },
	{ "client_idle_timeout", KT_TIME, 0, offsetof(struct config_user, client_idle_timeout), NULL, 0, TIME_MAX, NULL },
	USER_(disabled, KT_BOOL_INT),
	USER_(disable_mode, KT_DISABLE_MODE),
	LIMIT_KEYS(struct config_user),
	K_LATER(transaction_timeout),
};

/* Keys of an [applications] line. */
static const struct key_def app_keys[] = { LIMIT_KEYS(struct config_app) };

/* A [peers] line's connection string, as PgBouncer's. */
#define PEER_(n, f, t, lo, hi) { n, t, 0, offsetof(struct config_peer, f), NULL, lo, hi, NULL }
static const struct key_def peer_keys[] = {
	PEER_("host", host, KT_STR, 0, 0),
	PEER_("port", port, KT_INT, 1, 65535),
	PEER_("pool_size", pool_size, KT_INT, 1, INT_MAX),
};

static const char *const pool_mode_names[] = {
	[POOL_SESSION] = "session", [POOL_TRANSACTION] = "transaction",
	[POOL_STATEMENT] = "statement",
};
static const char *const auth_type_names[] = {
	[AUTH_TRUST] = "trust", [AUTH_ANY] = "any", [AUTH_PLAIN] = "plain",
	[AUTH_MD5] = "md5", [AUTH_SCRAM] = "scram-sha-256", [AUTH_CERT] = "cert",
	[AUTH_SCRAM_PLUS] = "scram-sha-256-plus", [AUTH_HBA] = "hba",
};
static const char *const disable_mode_names[] = {
	[DISABLE_FINISH] = "finish", [DISABLE_CLOSE] = "close",
};
static const char *const throttle_mode_names[] = {
	[THROTTLE_WAIT] = "wait", [THROTTLE_REFUSE] = "refuse",
};
/* PgBouncer auth types pgring rejects rather than silently weakening security. */
static const char *const auth_types_later[] = { "pam", "ldap" };
static const char *const target_names[] = {
	[TARGET_PRIMARY] = "primary", [TARGET_REPLICA] = "replica", [TARGET_ANY] = "any",
};
static const char *const sslmode_names[] = {
	[SSLMODE_DISABLE] = "disable", [SSLMODE_ALLOW] = "allow", [SSLMODE_PREFER] = "prefer",
	[SSLMODE_REQUIRE] = "require", [SSLMODE_VERIFY_CA] = "verify-ca",
	[SSLMODE_VERIFY_FULL] = "verify-full",
};

/* ---- loading state and messages ------------------------------------------ */

enum section { SECT_NONE, SECT_MAIN, SECT_DATABASES, SECT_USERS, SECT_APPS, SECT_PEERS, SECT_CLUSTER, SECT_SKIPPED };

struct src {
	FILE *f;
	const char *path;  /* owned by load.paths */
	int line;
	size_t bytes;      /* read so far */
};

struct where {
	const char *file;
	int line;
};

struct load {
	struct config *cfg;
	char *err;
	size_t errlen;
	void (*warn)(const char *msg);
	bool failed;
	struct src stack[INCLUDE_DEPTH_MAX];
	int depth;
	char **paths;          /* every file opened, kept for messages until the end */
	int npaths;
	char *buf;             /* read_line's buffer, CONFIG_LINE_MAX + 2 bytes */
	size_t bytes;          /* read from all files, %include files included */
	int dbs_cap, users_cap, clusters_cap; /* allocated lengths of cfg's arrays */
	const char *file;      /* the line being handled */
	int line;
	enum section sect;
	char sect_name[64];
	int cluster;           /* SECT_CLUSTER: index in cfg->clusters */
	struct where set_at[ARRAY_SIZE(main_keys)]; /* where each main key was last set */
};

static void vformat(char *out, size_t len, const char *file, int line, const char *fmt,
		    va_list ap)
{
	int n = 0;
	if (file && line > 0)
		n = snprintf(out, len, "%s:%d: ", file, line);
	else if (file)
		n = snprintf(out, len, "%s: ", file);
	if (n < 0 || (size_t)n >= len)
		n = 0;
	vsnprintf(out + n, len - (size_t)n, fmt, ap);
}

/* The first error wins; later ones are usually consequences. Returns -1. */
__attribute__((format(printf, 4, 5)))
static int fail_at(struct load *ld, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	if (ld->failed)
		return -1;
	ld->failed = true;
	if (ld->err && ld->errlen) {
		va_start(ap, fmt);
		vformat(ld->err, ld->errlen, file, line, fmt, ap);
		va_end(ap);
	}
	return -1;
}
#define fail(ld, ...) fail_at((ld), (ld)->file, (ld)->line, __VA_ARGS__)

__attribute__((format(printf, 4, 5)))
static void warn_at(struct load *ld, const char *file, int line, const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;
	if (!ld || !ld->warn)
		return;
	va_start(ap, fmt);
	vformat(msg, sizeof(msg), file, line, fmt, ap);
	va_end(ap);
	ld->warn(msg);
}
#define warnf(ld, ...) warn_at((ld), (ld)->file, (ld)->line, __VA_ARGS__)

/* ---- small parsers ------------------------------------------------------- */

static char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '\f' || *p == '\v')
		p++;
	return (char *)p;
}

static char *trim(char *s)
{
	size_t n;
	s = skip_ws(s);
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int lookup(const char *const *names, size_t n, const char *value)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && strcasecmp(names[i], value) == 0)
			return (int)i;
	return -1;
}

static int parse_integer(const char *s, int base, long long *out)
{
	char *end;
	errno = 0;
	if (!*s || isspace((unsigned char)*s))
		return -1;
	*out = strtoll(s, &end, base);
	return (errno || *end) ? -1 : 0;
}

struct unit {
	const char *name;
	double factor;
};

/* A number followed by an optional unit from units (case-insensitive). */
static int parse_with_unit(const char *s, const struct unit *units, size_t nunits, double *out)
{
	char *end;
	if (!*s || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	*out = strtod(s, &end);
	if (end == s || errno || !isfinite(*out))
		return -1;
	end = skip_ws(end);
	if (!*end)
		return 0;
	for (size_t i = 0; i < nunits; i++) {
		if (strcasecmp(end, units[i].name) == 0) {
			*out *= units[i].factor;
			return 0;
		}
	}
	return -1;
}

static const struct unit time_units[] = {
	{ "us", 1e-6 }, { "ms", 1e-3 }, { "s", 1 }, { "min", 60 }, { "h", 3600 }, { "d", 86400 },
};
static const struct unit size_units[] = {
	{ "B", 1 }, { "kB", 1024 }, { "MB", 1024.0 * 1024 }, { "GB", 1024.0 * 1024 * 1024 },
};

static int parse_bool(const char *s, bool *out)
{
	static const char *const t[] = { "1", "on", "yes", "true" };
	static const char *const f[] = { "0", "off", "no", "false" };
	if (lookup(t, ARRAY_SIZE(t), s) >= 0)
		*out = true;
	else if (lookup(f, ARRAY_SIZE(f), s) >= 0)
		*out = false;
	else
		return -1;
	return 0;
}

static int parse_cpu(const char **p, long *out)
{
	char *end;
	if (!isdigit((unsigned char)**p))
		return -1;
	errno = 0;
	*out = strtol(*p, &end, 10);
	if (errno || *out > CPU_MAX)
		return -1;
	*p = end;
	return 0;
}

int config_parse_cpu_list(const char *s, int *cpus, int max)
{
	const char *p = skip_ws(s);
	int n = 0;
	if (!*p)
		return 0;
	for (;;) {
		long first, last;
		if (parse_cpu(&p, &first) < 0)
			return -1;
		last = first;
		p = skip_ws(p);
		if (*p == '-') {
			p = skip_ws(p + 1);
			if (parse_cpu(&p, &last) < 0 || last < first)
				return -1;
			p = skip_ws(p);
		}
		for (long c = first; c <= last; c++) {
			if (n >= max)
				return -1;
			cpus[n++] = (int)c;
		}
		if (!*p)
			return n;
		if (*p != ',')
			return -1;
		p = skip_ws(p + 1);
	}
}

/* ---- reading files within limits ----------------------------------------- */

static const char *file_kind(mode_t m)
{
	return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
	     : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* Opens path to read as configuration: a regular file of at most CONFIG_FILE_MAX
 * bytes. Anything else is refused before a byte is read, and without blocking
 * (O_NONBLOCK: opening a FIFO that has no writer would wait for one). On failure
 * returns NULL, with the reason in why and *refused set when the file opened but
 * is not acceptable (as opposed to missing or unreadable). */
static FILE *open_limited(const char *path, bool *refused, char *why, size_t len)
{
	struct stat st;
	FILE *f;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), flags;
	*refused = false;
	if (fd < 0) {
		snprintf(why, len, "%s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(why, len, "%s", strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		*refused = true;
		snprintf(why, len, "%s, not a regular file", file_kind(st.st_mode));
	} else if (st.st_size > CONFIG_FILE_MAX) {
		*refused = true;
		snprintf(why, len, "larger than %d MB (the limit)", CONFIG_FILE_MAX / MiB);
	} else if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0 ||
		   !(f = fdopen(fd, "r"))) {
		snprintf(why, len, "%s", strerror(errno));
	} else {
		return f;
	}
	close(fd);
	return NULL;
}

/* One line of f into buf (CONFIG_LINE_MAX + 2 bytes: the line, its newline and a
 * NUL). Returns its length, newline included; 0 at the end of the file; -1 on a
 * read error; -2 when more than CONFIG_LINE_MAX bytes come before the newline
 * (the rest of the line is not read). */
static long read_line(FILE *f, char *buf)
{
	size_t n = 0;
	int c;
	while ((c = getc_unlocked(f)) != EOF) {
		buf[n++] = (char)c;
		if (c == '\n')
			break;
		if (n > CONFIG_LINE_MAX)
			return -2;
	}
	if (c == EOF && ferror(f))
		return -1;
	buf[n] = '\0';
	return (long)n;
}

/* ---- name indexes -------------------------------------------------------- */

/* Open addressing with linear probing over the entries of one array (struct
 * config_db, config_user or config_cluster: each begins with its name). Entries
 * are only ever added or replaced in place, so a slot keeps its entry's index. */
struct name_slot {
	uint32_t hash;
	int idx;               /* index in the array + 1; 0: empty */
};

struct name_index {
	struct name_slot *slots;
	uint32_t mask;         /* slots - 1, a power of two minus one */
	int count;
};

struct config_index {
	struct name_index dbs, users, clusters;
};

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;  /* FNV-1a, then murmur3's finalizer to spread the bits */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	return h ^ (h >> 16);
}

static const char *entry_name(const void *arr, size_t size, int i)
{
	return *(char *const *)((const char *)arr + (size_t)i * size);
}

/* The index in arr (n entries of size bytes) of the entry called name, or -1.
 * Without an index (a struct config not made by config_load) it scans. */
static int index_find(const struct name_index *ix, const void *arr, size_t size, int n,
		      const char *name)
{
	uint32_t h;
	if (!ix || !ix->slots) {
		for (int i = 0; i < n; i++)
			if (strcmp(entry_name(arr, size, i), name) == 0)
				return i;
		return -1;
	}
	h = name_hash(name);
	for (uint32_t j = h & ix->mask;; j = (j + 1) & ix->mask) {
		const struct name_slot *sl = &ix->slots[j];
		if (!sl->idx)
			return -1;
		if (sl->hash == h && strcmp(entry_name(arr, size, sl->idx - 1), name) == 0)
			return sl->idx - 1;
	}
}

static void index_put(struct name_index *ix, uint32_t hash, int idx_plus_1)
{
	uint32_t j = hash & ix->mask;
	while (ix->slots[j].idx)
		j = (j + 1) & ix->mask;
	ix->slots[j] = (struct name_slot){ hash, idx_plus_1 };
	ix->count++;
}

/* Room for one more name (at most half the slots used); -1 when out of memory. */
static int index_reserve(struct name_index *ix)
{
	size_t old_len = ix->slots ? (size_t)ix->mask + 1 : 0, len = old_len ? old_len * 2 : 16;
	struct name_slot *old = ix->slots;
	if (old && (size_t)ix->count + 1 <= old_len / 2)
		return 0;
	if (len > (size_t)UINT32_MAX || !(ix->slots = calloc(len, sizeof(*ix->slots)))) {
		ix->slots = old;
		return -1;
	}
	ix->mask = (uint32_t)(len - 1);
	ix->count = 0;
	for (size_t i = 0; i < old_len; i++)
		if (old[i].idx)
			index_put(ix, old[i].hash, old[i].idx);
	free(old);
	return 0;
}

static void index_free(struct config_index *ix)
{
	if (!ix)
		return;
	free(ix->dbs.slots);
	free(ix->users.slots);
	free(ix->clusters.slots);
	free(ix);
}

/* arr with room for element n (of size bytes), *cap doubling as needed; NULL when
 * out of memory (arr is left as it was). */
static void *room_for_one(void *arr, int n, int *cap, size_t size)
{
	int len = *cap ? *cap * 2 : 16;
	void *a;
	if (n < *cap)
		return arr;
	if (*cap > INT_MAX / 2 || !(a = realloc(arr, (size_t)len * size)))
		return NULL;
	*cap = len;
	return a;
}

/* ---- setting one value --------------------------------------------------- */

static int parse_number(const struct key_def *k, const char *v, double *d)
{
	long long ll;
	if (k->type == KT_TIME)
		return parse_with_unit(v, time_units, ARRAY_SIZE(time_units), d);
	if (k->type == KT_SIZE)
		return parse_with_unit(v, size_units, ARRAY_SIZE(size_units), d);
	if (parse_integer(v, k->type == KT_OCTAL ? 8 : 10, &ll) < 0)
		return -1;
	*d = (double)ll;
	return 0;
}

static int number_error(const struct key_def *k, const char *v, char *msg, size_t len)
{
	static const char *const what[] = {
		[KT_INT] = "an integer", [KT_OCTAL] = "an octal mode",
		[KT_SIZE] = "a size (bytes, or with kB, MB, GB)",
		[KT_TIME] = "a time (seconds, or with us, ms, s, min, h, d)",
	};
	snprintf(msg, len, "%s: '%s' is not %s", k->name, v, what[k->type]);
	return -1;
}

static int range_error(const struct key_def *k, const char *v, char *msg, size_t len)
{
	if (k->type == KT_OCTAL)
		snprintf(msg, len, "%s: %s is out of range (%#o .. %#o)", k->name, v,
			 (unsigned)k->min, (unsigned)k->max);
	else
		snprintf(msg, len, "%s: %s is out of range (%.0f .. %.0f)", k->name, v, k->min, k->max);
	return -1;
}

/* KT_TIME stores a double, the other numeric types an int. */
static int set_number(const struct key_def *k, void *field, const char *v, char *msg, size_t len)
{
	double d;
	if (parse_number(k, v, &d) < 0)
		return number_error(k, v, msg, len);
	if (d < k->min || d > k->max)
		return range_error(k, v, msg, len);
	if (k->type == KT_TIME) {
		*(double *)field = d;
		return 0;
	}
	if (d != floor(d)) {
		snprintf(msg, len, "%s: '%s' is not a whole number of bytes", k->name, v);
		return -1;
	}
	if ((k->flags & F_POW2) && ((long long)d & ((long long)d - 1))) {
		snprintf(msg, len, "%s: %s is not a power of two", k->name, v);
		return -1;
	}
	*(int *)field = (int)d;
	return 0;
}

static int set_enum(const struct key_def *k, int *field, const char *v, char *msg, size_t len)
{
	const char *const *names = k->type == KT_POOL_MODE ? pool_mode_names : auth_type_names;
	size_t n = k->type == KT_POOL_MODE ? ARRAY_SIZE(pool_mode_names) : ARRAY_SIZE(auth_type_names);
	int i = lookup(names, n, v);
	if (i >= 0) {
		*field = i;
		return 0;
	}
	if (k->type == KT_AUTH_TYPE && lookup(auth_types_later, ARRAY_SIZE(auth_types_later), v) >= 0)
		snprintf(msg, len, "auth_type '%s' is not supported yet", v);
	else if (k->type == KT_AUTH_TYPE)
		snprintf(msg, len, "auth_type: unknown value '%s' (trust, any, plain, md5, scram-sha-256, cert, hba)", v);
	else
		snprintf(msg, len, "pool_mode: unknown value '%s' (session, transaction, statement)", v);
	return -1;
}

static int set_string(char **field, const char *v, char *msg, size_t len)
{
	char *copy = NULL;
	if (*v && !(copy = strdup(v))) {
		snprintf(msg, len, "out of memory");
		return -1;
	}
	free(*field);
	*field = copy;
	return 0;
}

static int set_cpu_list(const struct key_def *k, struct config *cfg, const char *v, char *msg,
			size_t len)
{
	int n = config_parse_cpu_list(v, cfg->shard_cpus, CONFIG_MAX_SHARDS);
	if (n < 0) {
		snprintf(msg, len, "%s: bad CPU list '%s' (like 0,1 or 0-3,8; at most %d CPUs)",
			 k->name, v, CONFIG_MAX_SHARDS);
		return -1;
	}
	cfg->n_shard_cpus = n;
	return 0;
}

static int set_sslmode(const struct key_def *k, int *field, const char *v, char *msg, size_t len)
{
	int i = lookup(sslmode_names, ARRAY_SIZE(sslmode_names), v);
	if (i < 0) {
		snprintf(msg, len, "%s: unknown value '%s' (disable, allow, prefer, require, "
			 "verify-ca, verify-full)", k->name, v);
		return -1;
	}
	*field = i;
	return 0;
}

/* The next item of a list separated by commas, colons or blanks (PgBouncer's
 * protocol lists use commas, OpenSSL's curve lists colons): its length, 0 at
 * the end. */
static size_t list_item(const char **p, const char **item)
{
	const char *s = *p;
	while (*s == ',' || *s == ':' || isspace((unsigned char)*s))
		s++;
	*item = s;
	while (*s && *s != ',' && *s != ':' && !isspace((unsigned char)*s))
		s++;
	*p = s;
	return (size_t)(s - *item);
}

static bool item_is(const char *item, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(item, name, n) == 0;
}

int config_tls_protocols(const char *s, char *msg, size_t len)
{
	const char *item;
	size_t n;
	int mask = 0;
	char none[1];
	if (!msg) {
		msg = none;
		len = sizeof none;
	}
	while ((n = list_item(&s, &item)) > 0) {
		if (item_is(item, n, "tlsv1.2")) {
			mask |= CONFIG_TLS1_2;
		} else if (item_is(item, n, "tlsv1.3")) {
			mask |= CONFIG_TLS1_3;
		} else if (item_is(item, n, "secure") || item_is(item, n, "all") ||
			   item_is(item, n, "legacy")) {
			/* "all" and "legacy" also mean TLS 1.0 and 1.1 in PgBouncer: here
			 * every version there is, which is what they ask for */
			mask |= CONFIG_TLS1_2 | CONFIG_TLS1_3;
		} else if (item_is(item, n, "tlsv1") || item_is(item, n, "tlsv1.0") ||
			   item_is(item, n, "tlsv1.1")) {
			snprintf(msg, len, "%.*s is not supported by this build's TLS library "
				 "(TLS 1.2 and 1.3 only)", (int)n, item);
			return -1;
		} else {
			snprintf(msg, len, "unknown protocol '%.*s' (tlsv1.2, tlsv1.3, secure, all, "
				 "legacy)", (int)n, item);
			return -1;
		}
	}
	if (!mask) {
		snprintf(msg, len, "no protocol in the list");
		return -1;
	}
	return mask;
}

static int check_protocols(const struct key_def *k, const char *v, char *msg, size_t len)
{
	char why[MSG_MAX / 2];
	if (config_tls_protocols(v, why, sizeof why) >= 0)
		return 0;
	snprintf(msg, len, "%s: %s", k->name, why);
	return -1;
}

static int check_topology_source(const struct key_def *k, const char *v, char *msg, size_t len)
{
	if (!strcmp(v, "checks") || !strcmp(v, "etcd"))
		return 0;
	snprintf(msg, len, "%s: '%s' is neither checks nor etcd", k->name, v);
	return -1;
}

static int check_dheparams(const struct key_def *k, const char *v, char *msg, size_t len)
{
	if (strcasecmp(v, "none") == 0 || strcasecmp(v, "auto") == 0)
		return 0;
	if (strcasecmp(v, "legacy") == 0)
		snprintf(msg, len, "%s: 'legacy' (1024-bit DH parameters) is not supported "
			 "(none, auto)", k->name);
	else
		snprintf(msg, len, "%s: unknown value '%s' (none, auto)", k->name, v);
	return -1;
}

/* The curves wolfSSL offers for ECDHE, by OpenSSL's and NIST's names. */
static int check_ecdhcurve(const struct key_def *k, const char *v, char *msg, size_t len)
{
	static const char *const curves[] = {
		"prime256v1", "secp256r1", "P-256", "secp384r1", "P-384", "secp521r1", "P-521", "X25519",
	};
	const char *item;
	size_t n;
	int count = 0;
	if (strcasecmp(v, "auto") == 0)
		return 0;
	while ((n = list_item(&v, &item)) > 0) {
		size_t i = 0;
		while (i < ARRAY_SIZE(curves) && !item_is(item, n, curves[i]))
			i++;
		if (i == ARRAY_SIZE(curves)) {
			snprintf(msg, len, "%s: unknown curve '%.*s' (auto, or a list of prime256v1, secp256r1 or "
				 "P-256, secp384r1 or P-384, secp521r1 or P-521, X25519)", k->name,
				 (int)n, item);
			return -1;
		}
		count++;
	}
	if (!count) {
		snprintf(msg, len, "%s: no curve in the list", k->name);
		return -1;
	}
	return 0;
}

/* A security setting pgring does not implement. An empty value (or off, where
 * that is the default) asks for nothing and is accepted. */
static int check_refused(const struct key_def *k, const char *v, char *msg, size_t len)
{
	bool on;
	if (!*v)
		return 0;
	if (k->flags & F_OFF_OK) {
		if (parse_bool(v, &on) < 0) {
			snprintf(msg, len, "%s: '%s' is not a boolean (on/off, yes/no, true/false, 1/0)",
				 k->name, v);
			return -1;
		}
		if (!on)
			return 0;
		snprintf(msg, len, "%s = %s is not supported yet: pgring refuses a security setting "
			 "it would not enforce", k->name, v);
		return -1;
	}
	snprintf(msg, len, "%s is not supported yet: pgring refuses a security setting it would "
		 "not enforce", k->name);
	return -1;
}

/* Parse v as key k into base (a struct config, config_db, config_user or
 * config_node). On error, a message without location goes to msg. */
static int set_value(const struct key_def *k, void *base, const char *v, char *msg, size_t len)
{
	void *field = (char *)base + k->off;
	switch (k->type) {
	case KT_INT: case KT_OCTAL: case KT_SIZE: case KT_TIME:
		return set_number(k, field, v, msg, len);
	case KT_BOOL:
		if (parse_bool(v, field) == 0)
			return 0;
		snprintf(msg, len, "%s: '%s' is not a boolean (on/off, yes/no, true/false, 1/0)",
			 k->name, v);
		return -1;
	case KT_STR:
		if (!*v && (k->flags & F_EMPTY_DEFAULT))
			v = k->def;
		if (*v && k->check && k->check(k, v, msg, len) < 0)
			return -1;
		return set_string(field, v, msg, len);
	case KT_POOL_MODE: case KT_AUTH_TYPE:
		return set_enum(k, field, v, msg, len);
	case KT_CPU_LIST:
		return set_cpu_list(k, base, v, msg, len);
	case KT_TARGET:
		if ((*(int *)field = config_target_parse(v)) != TARGET_UNSET)
			return 0;
		snprintf(msg, len, "%s: unknown value '%s' (primary, replica, any)", k->name, v);
		return -1;
	case KT_BOOL_INT: {
		bool b;
		if (parse_bool(v, &b) == 0) {
			*(int *)field = b;
			return 0;
		}
		snprintf(msg, len, "%s: '%s' is not a boolean (on/off, yes/no, true/false, 1/0)", k->name, v);
		return -1;
	}
	case KT_SSLMODE:
		return set_sslmode(k, field, v, msg, len);
	case KT_DISABLE_MODE:
		if ((*(int *)field = lookup(disable_mode_names, ARRAY_SIZE(disable_mode_names), v)) >= 0)
			return 0;
		snprintf(msg, len, "%s: unknown value '%s' (finish, close)", k->name, v);
		return -1;
	case KT_THROTTLE_MODE:
		if ((*(int *)field = lookup(throttle_mode_names, ARRAY_SIZE(throttle_mode_names), v)) >= 0)
			return 0;
		snprintf(msg, len, "%s: unknown value '%s' (wait, refuse)", k->name, v);
		return -1;
	case KT_REFUSED:
		return check_refused(k, v, msg, len);
	case KT_NO_EFFECT: case KT_IGNORED:
		return 0;
	}
	return 0;
}

static const struct key_def *find_key(const struct key_def *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

/* ---- [pgring] / [pgbouncer] ---------------------------------------------- */

static int apply_defaults(struct config *cfg)
{
	char msg[MSG_MAX];
	for (size_t i = 0; i < ARRAY_SIZE(main_keys); i++) {
		const struct key_def *k = &main_keys[i];
		if (k->def && set_value(k, cfg, k->def, msg, sizeof(msg)) < 0)
			return -1; /* out of memory, or a bad default in the table */
	}
	return 0;
}

static int set_main_key(struct load *ld, const char *name, const char *value)
{
	char msg[MSG_MAX];
	const struct key_def *k = find_key(main_keys, ARRAY_SIZE(main_keys), name);
	if (!k) {
		warnf(ld, "unknown key '%s' in [%s], ignored", name, ld->sect_name);
		return 0;
	}
	if (set_value(k, ld->cfg, value, msg, sizeof(msg)) < 0)
		return fail(ld, "%s", msg);
	if (k->type == KT_NO_EFFECT || (k->flags & F_UNUSED))
		warnf(ld, "key '%s' is accepted but has no effect yet", k->name);
	ld->set_at[k - main_keys] = (struct where){ ld->file, ld->line };
	return 0;
}

/* ---- [databases] and [users] --------------------------------------------- */

/* A database or user name: bare, or "double quoted" with "" for a quote. */
static char *unquote_name(struct load *ld, const char *name)
{
	char *out, *w;
	if (name[0] != '"') {
		if (!(out = strdup(name)))
			fail(ld, "out of memory");
		return out;
	}
	if (!(out = w = malloc(strlen(name)))) {
		fail(ld, "out of memory");
		return NULL;
	}
	for (const char *p = name + 1;; p++) {
		if (*p == '"' && p[1] == '"') {
			*w++ = *p++;
		} else if (*p == '"' && p[1] == '\0' && w > out) {
			*w = '\0';
			return out;
		} else if (*p == '"' || *p == '\0') {
			fail(ld, "bad quoted name %s", name);
			free(out);
			return NULL;
		} else {
			*w++ = *p;
		}
	}
}

/* Next key=value of a connection string, in place in *pp. value may be
 * 'single quoted' with '' for a quote (PgBouncer's rule). Returns 1 with a pair,
 * 0 at the end, -1 on a syntax error (reported). */
static int next_pair(struct load *ld, const char *what, char **pp, char **key, char **val)
{
	char *p = skip_ws(*pp), *kend;
	if (!*p)
		return 0;
	*key = p;
	while (*p && *p != '=' && !isspace((unsigned char)*p))
		p++;
	kend = p;
	p = skip_ws(p);
	if (*p != '=' || kend == *key)
		return fail(ld, "%s: expected key=value at '%s'", what, *key);
	*kend = '\0';
	p = skip_ws(p + 1);
	if (*p == '\'') {
		char *w = *val = ++p;
		for (;; p++) {
			if (!*p)
				return fail(ld, "%s: unterminated quoted value for %s", what, *key);
			if (*p == '\'' && p[1] != '\'')
				break;
			*w++ = *p;
			p += *p == '\'';
		}
		p++;
		if (*p && !isspace((unsigned char)*p))
			return fail(ld, "%s: text right after the quoted value of %s", what, *key);
		*w = '\0';
	} else {
		*val = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (*p)
			*p++ = '\0';
	}
	if (!**val)
		return fail(ld, "%s: empty value for %s", what, *key);
	*pp = p;
	return 1;
}

/* Fill base from a connection string whose keys are in table. */
static int parse_settings(struct load *ld, const char *what, const char *str,
			  const struct key_def *table, size_t n, void *base)
{
	char msg[MSG_MAX], *key = NULL, *val = NULL, *copy = strdup(str), *p = copy;
	int r;
	if (!copy)
		return fail(ld, "out of memory");
	while ((r = next_pair(ld, what, &p, &key, &val)) > 0) {
		const struct key_def *k = find_key(table, n, key);
		if (!k) {
			r = fail(ld, "%s: unknown parameter '%s'", what, key);
			break;
		}
		if (set_value(k, base, val, msg, sizeof(msg)) < 0) {
			r = fail(ld, "%s: %s", what, msg);
			break;
		}
		if (k->type == KT_NO_EFFECT || (k->flags & F_UNUSED))
			warnf(ld, "%s: parameter '%s' is accepted but has no effect yet", what, key);
	}
	free(copy);
	return r < 0 ? -1 : 0;
}

static void free_db(struct config_db *db)
{
	free(db->name);
	for (size_t i = 0; i < ARRAY_SIZE(db_keys); i++)
		if (db_keys[i].type == KT_STR)
			free(*(char **)((char *)db + db_keys[i].off));
}

/* Append entry (of `size` bytes, its first member the name) to arr (*n used of
 * *cap), or replace the entry of the same name: the later line wins, with a
 * warning. ix indexes arr by name. Returns the array, perhaps moved, or NULL
 * (reported; arr still valid) when out of memory. */
static void *put_entry(struct load *ld, struct name_index *ix, void *arr, int *n, int *cap,
		       size_t size, const void *entry, const char *what,
		       void (*free_entry)(void *))
{
	const char *name = *(char *const *)entry;
	char *a = arr;
	int i = index_find(ix, a, size, *n, name);
	if (i >= 0) {
		void *old = a + (size_t)i * size;
		warnf(ld, "%s '%s' is defined again, replacing the earlier definition", what, name);
		free_entry(old);
		memcpy(old, entry, size);
		return a;
	}
	if (index_reserve(ix) < 0 || !(a = room_for_one(a, *n, cap, size))) {
		fail(ld, "out of memory");
		return NULL;
	}
	memcpy(a + (size_t)*n * size, entry, size);
	index_put(ix, name_hash(name), ++*n);
	return a;
}

static void free_db_v(void *p) { free_db(p); }
static void free_user_v(void *p) { free(((struct config_user *)p)->name); }

static int add_database(struct load *ld, const char *name, const char *value)
{
	char what[MSG_MAX];
	struct config_db *dbs;
	struct config_db db = {
		.port = 5432, .pool_size = -1, .min_pool_size = -1, .reserve_pool_size = -1,
		.max_db_connections = -1, .pool_mode = -1, .read_write_split = -1,
		.max_db_client_connections = -1, .client_idle_timeout = -1,
		.server_tls_sslmode = -1, .disabled = -1, .disable_mode = -1, .line = ld->line,
		.lim = LIMITS_UNSET,
	};
	if (!(db.name = unquote_name(ld, name)))
		return -1;
	if (strcmp(db.name, "pgbouncer") == 0) {
		free_db(&db);
		return fail(ld, "database name 'pgbouncer' is reserved for the admin console");
	}
	snprintf(what, sizeof(what), "database '%s'", db.name);
	if (parse_settings(ld, what, value, db_keys, ARRAY_SIZE(db_keys), &db) < 0 ||
	    !(dbs = put_entry(ld, &ld->cfg->index->dbs, ld->cfg->dbs, &ld->cfg->ndbs, &ld->dbs_cap,
			      sizeof(db), &db, "database", free_db_v))) {
		free_db(&db);
		return -1;
	}
	ld->cfg->dbs = dbs;
	return 0;
}

static int add_user(struct load *ld, const char *name, const char *value)
{
	char what[MSG_MAX];
	struct config_user *users;
	struct config_user u = {
		.pool_mode = -1, .pool_size = -1, .max_user_connections = -1, .reserve_pool_size = -1,
		.max_user_client_connections = -1, .query_timeout = -1, .idle_transaction_timeout = -1,
		.client_idle_timeout = -1, .disabled = -1, .disable_mode = -1, .line = ld->line,
		.lim = LIMITS_UNSET,
	};
	if (!(u.name = unquote_name(ld, name)))
		return -1;
	snprintf(what, sizeof(what), "user '%s'", u.name);
	if (parse_settings(ld, what, value, user_keys, ARRAY_SIZE(user_keys), &u) < 0 ||
	    !(users = put_entry(ld, &ld->cfg->index->users, ld->cfg->users, &ld->cfg->nusers,
				&ld->users_cap, sizeof(u), &u, "user", free_user_v))) {
		free(u.name);
		return -1;
	}
	ld->cfg->users = users;
	return 0;
}

/* An [applications] line: application_name = limits. A later line of the
 * same name replaces the earlier one, with a warning, as for users. */
static int add_app(struct load *ld, const char *name, const char *value)
{
	char what[MSG_MAX];
	struct config *cfg = ld->cfg;
	struct config_app a = { .lim = LIMITS_UNSET, .line = ld->line };
	if (!(a.name = unquote_name(ld, name)))
		return -1;
	snprintf(what, sizeof(what), "application '%s'", a.name);
	if (parse_settings(ld, what, value, app_keys, ARRAY_SIZE(app_keys), &a) < 0) {
		free(a.name);
		return -1;
	}
	for (int i = 0; i < cfg->napps; i++) {
		if (strcmp(cfg->apps[i].name, a.name) == 0) {
			warnf(ld, "application '%s' is defined again, replacing the earlier definition", a.name);
			free(cfg->apps[i].name);
			cfg->apps[i] = a;
			return 0;
		}
	}
	struct config_app *apps = realloc(cfg->apps, (size_t)(cfg->napps + 1) * sizeof *apps);
	if (!apps) {
		free(a.name);
		return fail(ld, "out of memory");
	}
	apps[cfg->napps++] = a;
	cfg->apps = apps;
	return 0;
}

/* A [peers] line: id = host=... port=... pool_size=..., as PgBouncer's. The
 * same id again replaces the earlier line; kept sorted by id. */
static int add_peer(struct load *ld, const char *name, const char *value)
{
	char what[MSG_MAX], *end;
	struct config *cfg = ld->cfg;
	struct config_peer pe = { .port = 6432, .pool_size = -1, .line = ld->line };
	long id = strtol(name, &end, 10);
	if (!*name || *end || id < 1 || id > 65535)
		return fail(ld, "[peers]: '%s' is not a peer id (1 to 65535)", name);
	pe.id = (int)id;
	snprintf(what, sizeof(what), "peer %d", pe.id);
	if (parse_settings(ld, what, value, peer_keys, ARRAY_SIZE(peer_keys), &pe) < 0) {
		free(pe.host);
		return -1;
	}
	if (!pe.host || !*pe.host) {
		free(pe.host);
		return fail(ld, "%s: host is not set", what);
	}
	int at = 0;
	while (at < cfg->npeers && cfg->peers[at].id < pe.id)
		at++;
	if (at < cfg->npeers && cfg->peers[at].id == pe.id) {
		warnf(ld, "%s is defined again, replacing the earlier definition", what);
		free(cfg->peers[at].host);
		cfg->peers[at] = pe;
		return 0;
	}
	struct config_peer *peers = realloc(cfg->peers, (size_t)(cfg->npeers + 1) * sizeof *peers);
	if (!peers) {
		free(pe.host);
		return fail(ld, "out of memory");
	}
	memmove(&peers[at + 1], &peers[at], (size_t)(cfg->npeers - at) * sizeof *peers);
	peers[at] = pe;
	cfg->npeers++;
	cfg->peers = peers;
	return 0;
}

const struct config_peer *config_find_peer(const struct config *cfg, int id)
{
	int lo = 0, hi = cfg->npeers - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (cfg->peers[mid].id == id)
			return &cfg->peers[mid];
		if (cfg->peers[mid].id < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

bool config_limits_set(const struct config_limits *l)
{
	return l->max_transactions > 0 || l->max_qps > 0 || l->max_rps > 0 || l->throttle_weight > 0;
}

const struct config_app *config_find_app(const struct config *cfg, const char *name)
{
	for (int i = 0; name && i < cfg->napps; i++)
		if (strcmp(cfg->apps[i].name, name) == 0)
			return &cfg->apps[i];
	return NULL;
}

/* Does any entry set an admission limit or weight? */
static void note_admission(struct config *cfg)
{
	bool any = cfg->napps > 0;
	for (int i = 0; !any && i < cfg->ndbs; i++)
		any = config_limits_set(&cfg->dbs[i].lim);
	for (int i = 0; !any && i < cfg->nusers; i++)
		any = config_limits_set(&cfg->users[i].lim);
	cfg->admission = any;
}

/* ---- [cluster.NAME] ----------------------------------------------------- */

bool config_valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CONFIG_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

static void free_node(struct config_node *n)
{
	free(n->name);
	free(n->host);
	free(n->role);
}

static void free_cluster(struct config_cluster *c)
{
	for (int i = 0; i < c->nnodes; i++)
		free_node(&c->nodes[i]);
	free(c->nodes);
	free(c->name);
	free(c->patroni_scope);
}

/* A section header [cluster.NAME]: later lines of the same name add to it. */
static int open_cluster(struct load *ld, const char *name)
{
	struct config *cfg = ld->cfg;
	struct name_index *ix = &cfg->index->clusters;
	struct config_cluster *cs;
	char *copy;
	int i;
	if (!config_valid_name(name))
		return fail(ld, "bad cluster name '%s' (letters, digits, _ - ., at most %d)", name, CONFIG_NAME_MAX);
	ld->sect = SECT_CLUSTER;
	if ((i = index_find(ix, cfg->clusters, sizeof(*cs), cfg->nclusters, name)) >= 0) {
		ld->cluster = i;
		return 0;
	}
	if (!(copy = strdup(name)) || index_reserve(ix) < 0 ||
	    !(cs = room_for_one(cfg->clusters, cfg->nclusters, &ld->clusters_cap, sizeof(*cs)))) {
		free(copy);
		return fail(ld, "out of memory");
	}
	cfg->clusters = cs;
	cs[cfg->nclusters] = (struct config_cluster){ .name = copy, .max_lag = -1, .patroni_discover = true,
						      .line = ld->line };
	ld->cluster = cfg->nclusters++;
	index_put(ix, name_hash(copy), cfg->nclusters);
	return 0;
}

static int add_node(struct load *ld, struct config_cluster *c, const char *name, const char *value)
{
	char what[MSG_MAX];
	struct config_node n = {
		.port = 5432, .weight = 1, .max_lag = -1, .server_tls_sslmode = -1, .line = ld->line,
	};
	snprintf(what, sizeof what, "cluster '%s' node '%s'", c->name, name);
	if (!config_valid_name(name))
		return fail(ld, "%s: bad node name (letters, digits, _ - ., at most %d)", what, CONFIG_NAME_MAX);
	for (int i = 0; i < c->nnodes; i++)
		if (strcmp(c->nodes[i].name, name) == 0)
			return fail(ld, "%s: defined twice", what);
	if (c->nnodes == CONFIG_MAX_NODES)
		return fail(ld, "cluster '%s': more than %d nodes", c->name, CONFIG_MAX_NODES);
	if (!(n.name = strdup(name)))
		return fail(ld, "out of memory");
	if (parse_settings(ld, what, value, node_keys, ARRAY_SIZE(node_keys), &n) < 0) {
		free_node(&n);
		return -1;
	}
	if (n.role && strcmp(n.role, "primary") != 0 && strcmp(n.role, "replica") != 0) {
		free_node(&n);
		return fail(ld, "%s: role must be primary or replica", what);
	}
	struct config_node *nodes = realloc(c->nodes, (size_t)(c->nnodes + 1) * sizeof *nodes);
	if (!nodes) {
		free_node(&n);
		return fail(ld, "out of memory");
	}
	c->nodes = nodes;
	c->nodes[c->nnodes++] = n;
	return 0;
}

/* `max_lag = SIZE` sets the cluster's default, `patroni_scope = NAME` where
 * its Patroni keeps its keys, `patroni_discover = on|off` whether its members
 * the file does not name are nodes too; any other key is a node. */
static int add_cluster_key(struct load *ld, const char *name, const char *value)
{
	struct config_cluster *c = &ld->cfg->clusters[ld->cluster];
	if (strcmp(name, "patroni_discover") == 0) {
		if (parse_bool(value, &c->patroni_discover) < 0)
			return fail(ld, "cluster '%s': patroni_discover: '%s' is not a boolean", c->name, value);
		return 0;
	}
	if (strcmp(name, "patroni_scope") == 0) {
		if (!*value || strchr(value, '/'))
			return fail(ld, "cluster '%s': patroni_scope '%s' is not a scope's name", c->name, value);
		char *v = strdup(value);
		if (!v)
			return fail(ld, "out of memory");
		free(c->patroni_scope);
		c->patroni_scope = v;
		return 0;
	}
	if (strcmp(name, "max_lag") == 0) {
		char msg[MSG_MAX];
		const struct key_def k = { "max_lag", KT_SIZE, 0, 0, NULL, 0, INT_MAX, NULL };
		if (set_number(&k, &c->max_lag, value, msg, sizeof msg) < 0)
			return fail(ld, "cluster '%s': %s", c->name, msg);
		return 0;
	}
	return add_node(ld, c, name, value);
}

/* A member of Patroni's scope the file does not name, from etcd: a node of
 * its cluster, after the file's (their indexes stay). */
static void add_found(struct load *ld, const char *cluster, const char *name, const char *value)
{
	int ci = index_find(&ld->cfg->index->clusters, ld->cfg->clusters, sizeof(struct config_cluster),
			    ld->cfg->nclusters, cluster);
	if (ci < 0 || !ld->cfg->clusters[ci].patroni_discover || strcmp(ld->cfg->topology_source, "etcd"))
		return;
	struct config_cluster *c = &ld->cfg->clusters[ci];
	for (int i = 0; i < c->nnodes; i++)
		if (!strcmp(c->nodes[i].name, name))
			return;
	ld->file = "etcd";
	ld->line = 0;
	if (add_node(ld, c, name, value) == 0)
		c->nodes[c->nnodes - 1].discovered = true;
}

/* Every cluster has nodes, at most one primary hint; every database's cluster exists. */
static int check_clusters(struct load *ld)
{
	struct config *cfg = ld->cfg;
	for (int i = 0; i < cfg->nclusters; i++) {
		struct config_cluster *c = &cfg->clusters[i];
		int primaries = 0;
		bool from_patroni = !strcmp(cfg->topology_source, "etcd") && c->patroni_discover;
		if (c->nnodes == 0 && !from_patroni)
			return fail_at(ld, cfg->path, c->line, "cluster '%s' has no nodes", c->name);
		for (int k = 0; k < c->nnodes; k++)
			primaries += c->nodes[k].role && strcmp(c->nodes[k].role, "primary") == 0;
		if (primaries > 1)
			return fail_at(ld, cfg->path, c->line, "cluster '%s': more than one node has role=primary",
				       c->name);
	}
	for (int i = 0; i < cfg->ndbs; i++) {
		struct config_db *db = &cfg->dbs[i];
		if (!db->cluster)
			continue;
		if (!config_find_cluster(cfg, db->cluster))
			return fail_at(ld, cfg->path, db->line, "database '%s': no [cluster.%s] section", db->name,
				       db->cluster);
		if (db->host)
			return fail_at(ld, cfg->path, db->line, "database '%s': host and cluster both set", db->name);
	}
	return 0;
}

/* ---- the line reader that feeds inih ------------------------------------- */

static int open_file(struct load *ld, const char *path)
{
	char *copy, **paths, why[256];
	bool refused;
	FILE *f;
	if (ld->depth == INCLUDE_DEPTH_MAX)
		return fail(ld, "%%include nested more than %d deep (a loop?)", INCLUDE_DEPTH_MAX);
	paths = realloc(ld->paths, (size_t)(ld->npaths + 1) * sizeof(*paths));
	if (!paths || !(copy = strdup(path))) {
		if (paths)
			ld->paths = paths;
		return fail(ld, "out of memory");
	}
	ld->paths = paths;
	ld->paths[ld->npaths++] = copy;
	if (!(f = open_limited(path, &refused, why, sizeof(why)))) {
		if (ld->depth == 0)
			return fail_at(ld, path, 0, "cannot %s: %s", refused ? "use" : "open", why);
		return fail(ld, "cannot %s included file %s: %s", refused ? "use" : "open", path, why);
	}
	ld->stack[ld->depth++] = (struct src){ f, copy, 0, 0 };
	return 0;
}

/* "%include FILE", as PgBouncer: a relative FILE is taken from the working directory. */
static int directive(struct load *ld, char *s)
{
	if (strncmp(s, "%include", 8) != 0 || (s[8] && !isspace((unsigned char)s[8])))
		return fail(ld, "unknown directive '%s' (only %%include is supported)", s);
	s = skip_ws(s + 8);
	if (!*s)
		return fail(ld, "%%include without a file name");
	return open_file(ld, s);
}

static int section(struct load *ld, char *s)
{
	char *end = strchr(s, ']'), *rest, *name;
	if (!end)
		return fail(ld, "section header without ']'");
	rest = skip_ws(end + 1);
	if (*rest && *rest != ';' && *rest != '#')
		return fail(ld, "unexpected text after section header: '%s'", rest);
	*end = '\0';
	name = trim(s + 1);
	snprintf(ld->sect_name, sizeof(ld->sect_name), "%s", name);
	if (strcmp(name, "pgring") == 0 || strcmp(name, "pgbouncer") == 0) {
		ld->sect = SECT_MAIN;
	} else if (strcmp(name, "databases") == 0) {
		ld->sect = SECT_DATABASES;
	} else if (strcmp(name, "users") == 0) {
		ld->sect = SECT_USERS;
	} else if (strcmp(name, "applications") == 0) {
		ld->sect = SECT_APPS;
	} else if (strncmp(name, "cluster.", 8) == 0) {
		return open_cluster(ld, name + 8);
	} else if (strcmp(name, "peers") == 0) {
		ld->sect = SECT_PEERS;
	} else {
		ld->sect = SECT_SKIPPED;
		warnf(ld, "unknown section [%s], its keys are ignored", name);
	}
	return 0;
}

/* A key line must read `key = value` so that inih splits it where PgBouncer
 * would: inih cuts at the first '=' or ':', so neither may appear in the key. */
static int check_key_line(struct load *ld, const char *s)
{
	const char *p = s;
	if (*p == '"') {
		for (p++; *p && !(*p == '"' && p[1] != '"'); p += (*p == '"') ? 2 : 1)
			if (*p == '=' || *p == ':')
				return fail(ld, "names containing '=' or ':' are not supported");
		if (!*p)
			return fail(ld, "unterminated quoted name");
		p++;
	} else {
		while (*p && *p != '=' && *p != ':' && !isspace((unsigned char)*p))
			p++;
	}
	if (p == s)
		return fail(ld, "expected key = value");
	p = skip_ws(p);
	if (*p != '=')
		return fail(ld, "expected '=' after '%.*s'", (int)(p - s), s);
	return 0;
}

enum { LINE_SKIP, LINE_PASS };

static int classify(struct load *ld, char *s)
{
	if (!*s || *s == ';' || *s == '#')
		return LINE_SKIP;
	if (*s == '%')
		return directive(ld, s) < 0 ? -1 : LINE_SKIP;
	if (*s == '[')
		return section(ld, s) < 0 ? -1 : LINE_SKIP; /* tracked here, inih needn't know */
	if (ld->sect == SECT_NONE)
		return fail(ld, "key outside of any section");
	if (ld->sect == SECT_SKIPPED)
		return LINE_SKIP;
	return check_key_line(ld, s) < 0 ? -1 : LINE_PASS;
}

/* inih's fgets-like reader. Serves key lines only, stripped of leading blanks
 * (so inih never sees a continuation line), and records where each came from:
 * inih calls the handler for a line before it asks for the next one. */
static char *next_line(char *str, int num, void *stream)
{
	struct load *ld = stream;
	while (!ld->failed && ld->depth > 0) {
		struct src *top = &ld->stack[ld->depth - 1];
		long n = read_line(top->f, ld->buf);
		char *s = ld->buf;
		int kind;
		if (n == 0 || n == -1) {
			if (n < 0)
				fail_at(ld, top->path, top->line + 1, "read error: %s", strerror(errno));
			fclose(top->f);
			ld->depth--;
			continue;
		}
		ld->file = top->path;
		ld->line = ++top->line;
		if (n < 0) {
			fail(ld, "line longer than %d kB (the limit)", CONFIG_LINE_MAX / 1024);
			break;
		}
		top->bytes += (size_t)n;
		ld->bytes += (size_t)n;
		if (top->bytes > CONFIG_FILE_MAX || ld->bytes > CONFIG_FILE_MAX) {
			fail(ld, "%s longer than %d MB (the limit)",
			     top->bytes > CONFIG_FILE_MAX ? "file" : "configuration with its %include files",
			     CONFIG_FILE_MAX / MiB);
			break;
		}
		if (strlen(s) != (size_t)n) {
			fail(ld, "NUL byte in line");
			break;
		}
		if (top->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
			s += 3; /* UTF-8 byte order mark */
		s = trim(s);
		if ((kind = classify(ld, s)) < 0)
			break;
		if (kind == LINE_SKIP)
			continue;
		if (strlen(s) + 2 > (size_t)num) {
			fail(ld, "line longer than %d bytes", num - 2);
			break;
		}
		memcpy(str, s, strlen(s) + 1);
		return str;
	}
	return NULL;
}

static int on_pair(void *user, const char *section_name, const char *name, const char *value)
{
	struct load *ld = user;
	int r = 0;
	(void)section_name; /* the reader tracks sections itself */
	if (ld->sect == SECT_MAIN)
		r = set_main_key(ld, name, value);
	else if (ld->sect == SECT_DATABASES)
		r = add_database(ld, name, value);
	else if (ld->sect == SECT_USERS)
		r = add_user(ld, name, value);
	else if (ld->sect == SECT_APPS)
		r = add_app(ld, name, value);
	else if (ld->sect == SECT_PEERS)
		r = add_peer(ld, name, value);
	else if (ld->sect == SECT_CLUSTER)
		r = add_cluster_key(ld, name, value);
	return r == 0;
}

/* Debian's libinih exposes its build options as variables. Match PgBouncer's
 * syntax: ';' and '#' start a comment only at the start of a line (a value such
 * as connect_query may contain ';'), no continuation lines, and long lines. Not
 * thread-safe against other users of inih: only the control shard loads config. */
static void inih_setup(void)
{
	ini_allow_inline_comments = false;
	ini_allow_multiline = false;
	ini_use_stack = false;
	ini_allow_realloc = false;
	ini_initial_alloc = CONFIG_LINE_MAX + 2; /* a line, '\n' (stripped) and a NUL */
	ini_max_line = CONFIG_LINE_MAX + 2;
	ini_stop_on_first_error = true;
}

/* ---- auth_file (PgBouncer's userlist.txt) -------------------------------- */

/* A "double quoted" field with "" for a quote; *pp at the opening quote. */
static char *dq_field(char **pp)
{
	char *p = *pp + 1, *out = malloc(strlen(p) + 1), *w = out;
	if (!out)
		return NULL;
	for (;; p++) {
		if (!*p) {
			free(out);
			return NULL;
		}
		if (*p == '"' && p[1] != '"')
			break;
		*w++ = *p;
		p += *p == '"';
	}
	*w = '\0';
	*pp = p + 1;
	return out;
}

/* One non-comment line: "user" "secret", anything after that ignored as PgBouncer
 * does. Returns NULL on success or an error message. */
static const char *userlist_line(char *p, struct config_secret *s)
{
	if (*p != '"')
		return "expected \"user\" \"secret\"";
	if (!(s->user = dq_field(&p)))
		return "unterminated or unreadable user name";
	if (!*s->user)
		return "empty user name";
	if (*p != ' ' && *p != '\t')
		return "expected blanks between user name and secret";
	p = skip_ws(p);
	if (*p != '"')
		return "expected a double-quoted secret after the user name";
	if (!(s->secret = dq_field(&p)))
		return "unterminated or unreadable secret";
	if (*p && !isspace((unsigned char)*p))
		return "unexpected text right after the secret";
	return NULL;
}

struct ranked_secret {
	struct config_secret s;
	int order;
};

static int cmp_secret(const void *a, const void *b)
{
	const struct ranked_secret *x = a, *y = b;
	int c = strcmp(x->s.user, y->s.user);
	return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* Sort by user for bsearch; of duplicates the last line wins, as in PgBouncer. */
static void sort_secrets(struct ranked_secret *r, int n, struct config_secret *out, int *nout)
{
	*nout = 0;
	if (n > 0) /* r may be NULL then, and qsort wants a valid pointer */
		qsort(r, (size_t)n, sizeof(*r), cmp_secret);
	for (int i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(r[i].s.user, r[i + 1].s.user) == 0) {
			free(r[i].s.user);
			free(r[i].s.secret);
			continue;
		}
		out[(*nout)++] = r[i].s;
	}
}

static void free_secrets(struct config_secret *s, int n)
{
	for (int i = 0; i < n; i++) {
		free(s[i].user);
		free(s[i].secret);
	}
	free(s);
}

static int read_userlist(FILE *f, const char *file, struct config *cfg, char *err, size_t errlen)
{
	struct ranked_secret *r = NULL, *grown;
	struct config_secret *out;
	char *buf = malloc(CONFIG_LINE_MAX + 2), limit[64];
	size_t bytes = 0;
	int n = 0, cap = 0, line = 0, nout;
	const char *msg = buf ? NULL : "out of memory";
	while (!msg) {
		long len = read_line(f, buf);
		char *p = buf;
		if (len == 0)
			break;
		line++;
		if (len == -1) {
			msg = "read error";
			break;
		}
		if (len == -2) {
			snprintf(limit, sizeof(limit), "line longer than %d kB (the limit)",
				 CONFIG_LINE_MAX / 1024);
			msg = limit;
			break;
		}
		if ((bytes += (size_t)len) > CONFIG_FILE_MAX) {
			snprintf(limit, sizeof(limit), "file longer than %d MB (the limit)",
				 CONFIG_FILE_MAX / MiB);
			msg = limit;
			break;
		}
		p = skip_ws(p);
		if (!*p || *p == ';')
			continue;
		if (!(grown = room_for_one(r, n, &cap, sizeof(*r)))) {
			msg = "out of memory";
			break;
		}
		r = grown;
		r[n] = (struct ranked_secret){ .order = n };
		msg = userlist_line(p, &r[n].s);
		n++;
	}
	free(buf);
	out = msg ? NULL : malloc((size_t)(n ? n : 1) * sizeof(*out));
	if (!msg && !out)
		msg = "out of memory";
	if (msg) {
		snprintf(err, errlen, "%s:%d: %s", file, line, msg);
		for (int i = 0; i < n; i++) {
			free(r[i].s.user);
			free(r[i].s.secret);
		}
		free(r);
		return -1;
	}
	sort_secrets(r, n, out, &nout);
	free(r);
	free_secrets(cfg->secrets, cfg->nsecrets);
	cfg->secrets = out;
	cfg->nsecrets = nout;
	return 0;
}

int config_load_auth_file(struct config *cfg, const char *file, char *err, size_t errlen)
{
	char why[256];
	bool refused;
	FILE *f = open_limited(file, &refused, why, sizeof(why));
	int r;
	if (!f) {
		snprintf(err, errlen, "%s: cannot %s auth_file: %s", file, refused ? "use" : "open", why);
		return -1;
	}
	r = read_userlist(f, file, cfg, err, errlen);
	fclose(f);
	return r;
}

/* ---- after parsing: cross-key checks and the auth_file ------------------- */

static const struct where *set_at(struct load *ld, const char *key)
{
	return &ld->set_at[find_key(main_keys, ARRAY_SIZE(main_keys), key) - main_keys];
}

/* Settings that constrain each other, checked once everything is read. */
bool config_etcd_endpoint(const char *p, size_t n, char *host, size_t hostlen, int *port)
{
	char h[64];
	const char *colon = memrchr(p, ':', n);
	size_t hl = colon ? (size_t)(colon - p) : 0, pl = colon ? n - hl - 1 : 0;
	if (hl >= 2 && p[0] == '[' && p[hl - 1] == ']') {
		p++;
		hl -= 2;
	}
	if (!hl || hl >= sizeof h || !pl || pl > 5 || strspn(colon + 1, "0123456789") < pl)
		return false;
	memcpy(h, p, hl);
	h[hl] = 0;
	int pt = atoi(colon + 1);
	struct in6_addr a;
	if (pt <= 0 || pt > 65535 ||
	    (strcmp(h, "localhost") && inet_pton(AF_INET, h, &a) != 1 && inet_pton(AF_INET6, h, &a) != 1))
		return false;
	if (host)
		snprintf(host, hostlen, "%s", strcmp(h, "localhost") ? h : "127.0.0.1");
	if (port)
		*port = pt;
	return true;
}

/* etcd's endpoints are addresses (the control thread resolves no name for
 * them): "ip:port" or "localhost:port", comma-separated. */
static int check_etcd_keys(struct load *ld)
{
	struct config *cfg = ld->cfg;
	const struct where *w = set_at(ld, "etcd_hosts");
	if (!strcmp(cfg->topology_source, "etcd") && (!cfg->etcd_hosts || !*cfg->etcd_hosts)) {
		w = set_at(ld, "topology_source");
		return fail_at(ld, w->file ? w->file : cfg->path, w->line, "topology_source = etcd needs etcd_hosts");
	}
	for (const char *p = cfg->etcd_hosts; p && *p;) {
		size_t n = strcspn(p, ",");
		if (!config_etcd_endpoint(p, n, NULL, 0, NULL))
			return fail_at(ld, w->file ? w->file : cfg->path, w->line,
				       "etcd_hosts: '%.*s' is not an address:port (etcd's endpoints are not looked up)", (int)n, p);
		p += n + (p[n] == ',');
	}
	if (cfg->auto_failover && (!cfg->etcd_hosts || !*cfg->etcd_hosts || !strcmp(cfg->topology_source, "etcd"))) {
		w = set_at(ld, "auto_failover");
		return fail_at(ld, w->file ? w->file : cfg->path, w->line,
			       "auto_failover = on needs etcd_hosts (the nodes agree there) and topology_source = checks "
			       "(with Patroni, Patroni fails over)");
	}
	/* (set empty, a string key is NULL) */
	bool bad_prefix = !cfg->etcd_prefix || cfg->etcd_prefix[0] != '/';
	if (bad_prefix || !cfg->etcd_pgring_prefix || cfg->etcd_pgring_prefix[0] != '/') {
		const char *key = bad_prefix ? "etcd_prefix" : "etcd_pgring_prefix";
		w = set_at(ld, key);
		return fail_at(ld, w->file ? w->file : cfg->path, w->line, "%s must begin with /", key);
	}
	return 0;
}

static int check_cross_keys(struct load *ld)
{
	struct config *cfg = ld->cfg;
	const struct where *w;
	if (cfg->n_shard_cpus > 0 && cfg->shards == 0)
		cfg->shards = cfg->n_shard_cpus;
	if (cfg->n_shard_cpus > 0 && cfg->shards != cfg->n_shard_cpus) {
		w = set_at(ld, "shard_cpus");
		return fail_at(ld, w->file, w->line, "shard_cpus names %d CPUs but shards = %d",
			       cfg->n_shard_cpus, cfg->shards);
	}
	if (cfg->shard_gather_busy + 10 > cfg->shard_spread_busy) {
		/* gathered, the load must not land over spread at once: the gap
		 * between the two is what keeps the count from flapping */
		w = set_at(ld, "shard_gather_busy");
		if (!w->file)
			w = set_at(ld, "shard_spread_busy");
		return fail_at(ld, w->file ? w->file : ld->cfg->path, w->line,
			       "shard_gather_busy (%d) must be at least 10 below shard_spread_busy (%d)",
			       cfg->shard_gather_busy, cfg->shard_spread_busy);
	}
	if (cfg->cq_entries < cfg->ring_entries) {
		w = set_at(ld, "cq_entries");
		if (!w->file)
			w = set_at(ld, "ring_entries");
		return fail_at(ld, w->file ? w->file : ld->cfg->path, w->line,
			       "cq_entries (%d) must be at least ring_entries (%d)",
			       cfg->cq_entries, cfg->ring_entries);
	}
	return check_etcd_keys(ld);
}

/* A relative file name in a setting (auth_file, the TLS files) is taken from
 * the config file's directory. */
static int resolve_path(struct load *ld, char **file)
{
	struct config *cfg = ld->cfg;
	const char *slash = strrchr(cfg->path, '/');
	char *full;
	if (!*file || (*file)[0] == '/' || !slash)
		return 0;
	if (asprintf(&full, "%.*s/%s", (int)(slash - cfg->path), cfg->path, *file) < 0)
		return fail_at(ld, cfg->path, 0, "out of memory");
	free(*file);
	*file = full;
	return 0;
}

/* What the TLS settings ask for must be possible: a mode that needs a key, a
 * certificate or CAs fails here rather than falling back to less at run time. */
static int check_tls(struct load *ld)
{
	struct config *cfg = ld->cfg;
	char **files[] = {
		&cfg->client_tls_key_file, &cfg->client_tls_cert_file, &cfg->client_tls_ca_file,
		&cfg->server_tls_ca_file, &cfg->server_tls_key_file, &cfg->server_tls_cert_file,
	};
	const char *missing, *mode;
	const struct where *w;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		if (resolve_path(ld, files[i]) < 0)
			return -1;

	mode = config_sslmode_name(cfg->client_tls_sslmode);
	w = set_at(ld, "client_tls_sslmode");
	missing = cfg->client_tls_key_file ? (cfg->client_tls_cert_file ? NULL : "client_tls_cert_file is")
		: cfg->client_tls_cert_file ? "client_tls_key_file is"
		: "client_tls_key_file and client_tls_cert_file are";
	if (cfg->client_tls_sslmode != SSLMODE_DISABLE && missing)
		return fail_at(ld, w->file, w->line, "client_tls_sslmode = %s needs client_tls_key_file "
			       "and client_tls_cert_file (%s not set)", mode, missing);
	if (cfg->client_tls_sslmode >= SSLMODE_VERIFY_CA && !cfg->client_tls_ca_file)
		return fail_at(ld, w->file, w->line, "client_tls_sslmode = %s needs client_tls_ca_file "
			       "to verify client certificates", mode);

	if (!cfg->server_tls_key_file != !cfg->server_tls_cert_file) {
		const char *set = cfg->server_tls_key_file ? "server_tls_key_file" : "server_tls_cert_file";
		w = set_at(ld, set);
		return fail_at(ld, w->file, w->line, "%s is set but %s is not: a certificate for "
			       "servers needs both", set,
			       cfg->server_tls_key_file ? "server_tls_cert_file" : "server_tls_key_file");
	}
	if (!cfg->server_tls_ca_file) {
		static const char why[] = "needs server_tls_ca_file (pgring does not fall back to "
					  "the system's CA certificates)";
		w = set_at(ld, "server_tls_sslmode");
		if (cfg->server_tls_sslmode >= SSLMODE_VERIFY_CA)
			return fail_at(ld, w->file, w->line, "server_tls_sslmode = %s %s",
				       config_sslmode_name(cfg->server_tls_sslmode), why);
		for (int i = 0; i < cfg->ndbs; i++)
			if (cfg->dbs[i].server_tls_sslmode >= SSLMODE_VERIFY_CA)
				return fail_at(ld, cfg->path, cfg->dbs[i].line, "database '%s': sslmode %s %s",
					       cfg->dbs[i].name,
					       config_sslmode_name(cfg->dbs[i].server_tls_sslmode), why);
		for (int i = 0; i < cfg->nclusters; i++) {
			const struct config_cluster *c = &cfg->clusters[i];
			for (int k = 0; k < c->nnodes; k++)
				if (c->nodes[k].server_tls_sslmode >= SSLMODE_VERIFY_CA)
					return fail_at(ld, cfg->path, c->nodes[k].line,
						       "cluster '%s' node '%s': sslmode %s %s", c->name,
						       c->nodes[k].name,
						       config_sslmode_name(c->nodes[k].server_tls_sslmode), why);
		}
	}

	if (cfg->auth_type == AUTH_SCRAM_PLUS && cfg->client_tls_sslmode == SSLMODE_DISABLE) {
		w = set_at(ld, "auth_type");
		return fail_at(ld, w->file, w->line, "auth_type scram-sha-256-plus needs TLS: set client_tls_sslmode");
	}
	/* As PgBouncer, auth_type cert goes with any client_tls_sslmode; say when
	 * that leaves nobody able to log in. */
	if (cfg->auth_type == AUTH_CERT && (cfg->client_tls_sslmode == SSLMODE_DISABLE ||
					    !cfg->client_tls_ca_file)) {
		w = set_at(ld, "auth_type");
		warn_at(ld, w->file, w->line, "auth_type cert %s: no client can log in",
			cfg->client_tls_sslmode == SSLMODE_DISABLE ? "with client_tls_sslmode = disable"
			: "without client_tls_ca_file (no client certificate can be verified)");
	}
	return 0;
}

static bool needs_secrets(int auth_type)
{
	return auth_type == AUTH_PLAIN || auth_type == AUTH_MD5 || auth_type == AUTH_SCRAM ||
	       auth_type == AUTH_SCRAM_PLUS || auth_type == AUTH_HBA;
}

static void hba_warn(void *ctx, const char *msg)
{
	struct load *ld = ctx;
	if (ld->warn)
		ld->warn(msg);
}

/* auth_hba_file = @server (the only cluster) or @NAME (cluster NAME): the
 * rules come from that cluster's primary, read by the health checks
 * (core/control/health.c), not from a file. */
static int server_hba(struct load *ld, const struct where *w)
{
	struct config *cfg = ld->cfg;
	const char *name = cfg->auth_hba_file + 1;
	cfg->hba_cluster = -1;
	for (int i = 0; i < cfg->nclusters; i++)
		if (!strcmp(cfg->clusters[i].name, name))
			cfg->hba_cluster = i;
	if (cfg->hba_cluster < 0 && !strcmp(name, "server")) {
		if (cfg->nclusters != 1)
			return fail_at(ld, w->file, w->line,
				       "auth_hba_file = @server takes the rules from a cluster's primary: it needs exactly one "
				       "[cluster.NAME] section (%d here; name one with @NAME)", cfg->nclusters);
		cfg->hba_cluster = 0;
	}
	if (cfg->hba_cluster < 0)
		return fail_at(ld, w->file, w->line, "auth_hba_file = %s: no [cluster.%s] section", cfg->auth_hba_file, name);
	if (cfg->health_check_interval <= 0)
		return fail_at(ld, w->file, w->line,
			       "auth_hba_file = %s: the rules are read by the health checks, and health_check_interval is 0",
			       cfg->auth_hba_file);
	return 0;
}

/* auth_type = hba reads auth_hba_file; the file without it is a mistake
 * (PgBouncer reads it only for auth_type = hba): refused, not ignored. */
static int load_hba(struct load *ld)
{
	struct config *cfg = ld->cfg;
	const struct where *w = set_at(ld, "auth_hba_file");
	if (cfg->auth_type != AUTH_HBA) {
		if (cfg->auth_hba_file && *cfg->auth_hba_file)
			return fail_at(ld, w->file, w->line,
				       "auth_hba_file is read only with auth_type = hba (as in PgBouncer): set auth_type = hba");
		return 0;
	}
	if (!cfg->auth_hba_file || !*cfg->auth_hba_file) {
		w = set_at(ld, "auth_type");
		return fail_at(ld, w->file ? w->file : cfg->path, w->line, "auth_type = hba needs auth_hba_file");
	}
	if (cfg->auth_hba_file[0] == '@')
		return server_hba(ld, w);
	if (resolve_path(ld, &cfg->auth_hba_file) < 0)
		return -1;
	if (hba_load(cfg->auth_hba_file, &cfg->hba, ld->err, ld->errlen, hba_warn, ld) < 0) {
		ld->failed = true;
		return -1;
	}
	return 0;
}

static int load_secrets(struct load *ld)
{
	struct config *cfg = ld->cfg;
	const struct where *w = set_at(ld, "auth_file");
	const char *type = config_auth_type_name(cfg->auth_type);
	char why[256];
	bool refused;
	FILE *f;
	int r;
	if (resolve_path(ld, &cfg->auth_file) < 0)
		return -1;
	if (!cfg->auth_file) {
		if (needs_secrets(cfg->auth_type))
			warn_at(ld, cfg->path, 0, "auth_type %s but no auth_file: no user can log in",
				type);
		return 0;
	}
	if (!(f = open_limited(cfg->auth_file, &refused, why, sizeof(why)))) {
		/* A file that is there but unusable is a mistake whatever auth_type says. */
		if (refused || needs_secrets(cfg->auth_type))
			return fail_at(ld, w->file, w->line, "cannot %s auth_file %s: %s",
				       refused ? "use" : "open", cfg->auth_file, why);
		warn_at(ld, w->file, w->line, "cannot open auth_file %s: %s; no users loaded",
			cfg->auth_file, why);
		return 0;
	}
	r = read_userlist(f, cfg->auth_file, cfg, ld->err, ld->errlen);
	fclose(f);
	ld->failed = r < 0;
	return r;
}

/* ---- public entry points ------------------------------------------------- */

static void load_cleanup(struct load *ld)
{
	while (ld->depth > 0)
		fclose(ld->stack[--ld->depth].f);
	for (int i = 0; i < ld->npaths; i++)
		free(ld->paths[i]);
	free(ld->paths);
	free(ld->buf);
}

/* Every TLS setting has been checked: open the files and build the contexts.
 * A failure names the file or setting (cfg->path, no line: it is a file's
 * content that is wrong, not the line). */
static void build_tls(struct load *ld)
{
	struct config *cfg = ld->cfg;
	char why[384];
	if (cfg->client_tls_sslmode != SSLMODE_DISABLE) {
		struct tls_settings set = {
			.key_file = cfg->client_tls_key_file, .cert_file = cfg->client_tls_cert_file,
			.ca_file = cfg->client_tls_ca_file, .protocols = cfg->client_tls_protocols,
			.ciphers = cfg->client_tls_ciphers, .tls13_ciphers = cfg->client_tls13_ciphers,
			.dheparams = cfg->client_tls_dheparams, .ecdhcurve = cfg->client_tls_ecdhcurve,
			/* PgBouncer: verify-ca and verify-full demand a client certificate;
			 * with a CA file the others ask for one and check it if given */
			.verify = cfg->client_tls_sslmode >= SSLMODE_VERIFY_CA ? TLS_VERIFY_CA
				  : cfg->client_tls_ca_file ? TLS_VERIFY_OPTIONAL : TLS_VERIFY_NONE,
		};
		if (!(cfg->client_tls = tls_ctx_new(&set, true, why, sizeof why))) {
			fail_at(ld, cfg->path, 0, "client TLS (client_tls_*): %s", why);
			return;
		}
	}
	struct tls_settings set = {
		.key_file = cfg->server_tls_key_file, .cert_file = cfg->server_tls_cert_file,
		.ca_file = cfg->server_tls_ca_file, .protocols = cfg->server_tls_protocols,
		.ciphers = cfg->server_tls_ciphers, .tls13_ciphers = cfg->server_tls13_ciphers,
	};
	if (!(cfg->server_tls = tls_ctx_new(&set, false, why, sizeof why)))
		fail_at(ld, cfg->path, 0, "server TLS (server_tls_*): %s", why);
}

static int load(const char *file, const char *const *overrides, const char *const *found, struct config **out,
		char *err, size_t errlen, void (*warn)(const char *msg), bool tls_files);

int config_load(const char *file, struct config **out, char *err, size_t errlen,
		void (*warn)(const char *msg))
{
	return load(file, NULL, NULL, out, err, errlen, warn, true);
}

int config_load_with(const char *file, const char *const *overrides, const char *const *found, struct config **out,
		     char *err, size_t errlen, void (*warn)(const char *msg))
{
	return load(file, overrides, found, out, err, errlen, warn, true);
}

int config_parse(const char *file, struct config **out, char *err, size_t errlen,
		 void (*warn)(const char *msg))
{
	return load(file, NULL, NULL, out, err, errlen, warn, false);
}

static int load(const char *file, const char *const *overrides, const char *const *found, struct config **out,
		char *err, size_t errlen, void (*warn)(const char *msg), bool tls_files)
{
	struct load ld = { .err = err, .errlen = errlen, .warn = warn };
	int r;
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!(ld.cfg = calloc(1, sizeof(*ld.cfg))) || !(ld.cfg->path = strdup(file)) ||
	    !(ld.cfg->index = calloc(1, sizeof(*ld.cfg->index))) ||
	    !(ld.buf = malloc(CONFIG_LINE_MAX + 2)) || apply_defaults(ld.cfg) < 0) {
		free(ld.buf);
		config_free(ld.cfg);
		snprintf(err, errlen, "%s: out of memory", file);
		return -1;
	}
	ld.cfg->hba_cluster = -1;   /* a file, until auth_hba_file = @NAME says otherwise */
	if (open_file(&ld, file) == 0) {
		inih_setup();
		r = ini_parse_stream(next_line, &ld, on_pair, &ld);
		if (r != 0 && !ld.failed)
			fail_at(&ld, ld.file ? ld.file : file, ld.line,
				r == -2 ? "out of memory" : "syntax error");
	}
	/* the console's SETs, as if they ended the [pgring] section: the same
	 * parsing and checks as the file's lines, errors named "SET:N" */
	for (int i = 0; !ld.failed && overrides && overrides[i] && overrides[i + 1]; i += 2) {
		ld.file = "SET";
		ld.line = i / 2 + 1;
		set_main_key(&ld, overrides[i], overrides[i + 1]);
	}
	for (int i = 0; !ld.failed && found && found[i] && found[i + 1] && found[i + 2]; i += 3)
		add_found(&ld, found[i], found[i + 1], found[i + 2]);
	if (!ld.failed && check_cross_keys(&ld) == 0 && check_clusters(&ld) == 0 &&
	    check_tls(&ld) == 0 && load_hba(&ld) == 0)
		load_secrets(&ld);
	if (!ld.failed)
		note_admission(ld.cfg);
	if (!ld.failed && tls_files)
		build_tls(&ld);
	load_cleanup(&ld);
	if (ld.failed) {
		config_free(ld.cfg);
		return -1;
	}
	*out = ld.cfg;
	return 0;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	tls_ctx_free(cfg->client_tls);   /* live sessions keep their own reference */
	tls_ctx_free(cfg->server_tls);
	hba_free(cfg->hba);
	for (size_t i = 0; i < ARRAY_SIZE(main_keys); i++)
		if (main_keys[i].type == KT_STR)
			free(*(char **)((char *)cfg + main_keys[i].off));
	for (int i = 0; i < cfg->ndbs; i++)
		free_db(&cfg->dbs[i]);
	for (int i = 0; i < cfg->nusers; i++)
		free(cfg->users[i].name);
	for (int i = 0; i < cfg->nclusters; i++)
		free_cluster(&cfg->clusters[i]);
	free(cfg->clusters);
	for (int i = 0; i < cfg->napps; i++)
		free(cfg->apps[i].name);
	free(cfg->apps);
	for (int i = 0; i < cfg->npeers; i++)
		free(cfg->peers[i].host);
	free(cfg->peers);
	free(cfg->dbs);
	free(cfg->users);
	free_secrets(cfg->secrets, cfg->nsecrets);
	index_free(cfg->index);
	free(cfg->path);
	free(cfg);
}

/* The entry of exactly that name, no "*". */
static const struct config_db *find_db_exact(const struct config *cfg, const char *name)
{
	int i = index_find(cfg->index ? &cfg->index->dbs : NULL, cfg->dbs, sizeof(*cfg->dbs),
			   cfg->ndbs, name);
	return i >= 0 ? &cfg->dbs[i] : NULL;
}

const struct config_db *config_find_db(const struct config *cfg, const char *name)
{
	const struct config_db *db = find_db_exact(cfg, name);
	return db ? db : find_db_exact(cfg, "*");
}

const struct config_cluster *config_find_cluster(const struct config *cfg, const char *name)
{
	int i = index_find(cfg->index ? &cfg->index->clusters : NULL, cfg->clusters,
			   sizeof(*cfg->clusters), cfg->nclusters, name);
	return i >= 0 ? &cfg->clusters[i] : NULL;
}

const struct config_db *config_resolve_db(const struct config *cfg, const char *name,
					  const struct config_cluster **cluster, size_t *base_len)
{
	const struct config_db *db = NULL;
	const struct config_cluster *named = NULL;
	const char *at = strrchr(name, '@');
	*base_len = strlen(name);
	if (at && at > name && (named = config_find_cluster(cfg, at + 1))) {
		char base[256];
		*base_len = (size_t)(at - name);
		db = find_db_exact(cfg, name);   /* an entry of that very name decides itself */
		if (db && db->cluster)
			named = NULL;
		if (!db && *base_len < sizeof base) {
			memcpy(base, name, *base_len);
			base[*base_len] = '\0';
			db = config_find_db(cfg, base);
		}
	} else {
		db = config_find_db(cfg, name);
	}
	*cluster = named;
	if (db && !named && db->cluster && !(*cluster = config_find_cluster(cfg, db->cluster)))
		return NULL;
	return db;
}

int config_db_target(const struct config *cfg, const struct config_db *db)
{
	return db && db->target != TARGET_UNSET ? db->target : cfg->target;
}

bool config_db_split(const struct config *cfg, const struct config_db *db)
{
	return db && db->read_write_split >= 0 ? db->read_write_split : cfg->read_write_split;
}

int config_node_max_lag(const struct config *cfg, const struct config_cluster *c, const struct config_node *n)
{
	if (n->max_lag >= 0)
		return n->max_lag;
	return c->max_lag >= 0 ? c->max_lag : cfg->max_lag;
}

int config_server_sslmode(const struct config *cfg, const struct config_db *db,
			  const struct config_node *node)
{
	if (node && node->server_tls_sslmode >= 0)
		return node->server_tls_sslmode;
	if (db && db->server_tls_sslmode >= 0)
		return db->server_tls_sslmode;
	return cfg->server_tls_sslmode;
}

const char *config_sslmode_name(int mode)
{
	if (mode < 0 || (size_t)mode >= ARRAY_SIZE(sslmode_names))
		return "unknown";
	return sslmode_names[mode];
}

const char *config_target_name(int target)
{
	if (target <= 0 || (size_t)target >= ARRAY_SIZE(target_names))
		return "default";
	return target_names[target];
}

/* The names of proto/sqlroute.h's proto_target_parse, for configuration. */
int config_target_parse(const char *s)
{
	static const struct { const char *name; int target; } names[] = {
		{ "primary", TARGET_PRIMARY }, { "read-write", TARGET_PRIMARY },
		{ "replica", TARGET_REPLICA }, { "standby", TARGET_REPLICA },
		{ "read-only", TARGET_REPLICA }, { "prefer-standby", TARGET_REPLICA },
		{ "prefer-replica", TARGET_REPLICA }, { "any", TARGET_ANY },
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].target;
	return TARGET_UNSET;
}

const struct config_user *config_find_user(const struct config *cfg, const char *name)
{
	int i = index_find(cfg->index ? &cfg->index->users : NULL, cfg->users, sizeof(*cfg->users),
			   cfg->nusers, name);
	return i >= 0 ? &cfg->users[i] : NULL;
}

static int cmp_user_key(const void *key, const void *elem)
{
	return strcmp(key, ((const struct config_secret *)elem)->user);
}

const char *config_find_secret(const struct config *cfg, const char *user)
{
	const struct config_secret *s;
	if (!cfg->nsecrets)
		return NULL;
	s = bsearch(user, cfg->secrets, (size_t)cfg->nsecrets, sizeof(*s), cmp_user_key);
	return s ? s->secret : NULL;
}

int config_pool_mode(const struct config *cfg, const struct config_db *db,
		     const struct config_user *u)
{
	if (u && u->pool_mode >= 0)
		return u->pool_mode;
	if (db && db->pool_mode >= 0)
		return db->pool_mode;
	return cfg->pool_mode;
}

int config_pool_size(const struct config *cfg, const struct config_db *db,
		     const struct config_user *u)
{
	if (u && u->pool_size >= 0)
		return u->pool_size;
	if (db && db->pool_size >= 0)
		return db->pool_size;
	return cfg->default_pool_size;
}

const char *config_pool_mode_name(int mode)
{
	if (mode < 0 || (size_t)mode >= ARRAY_SIZE(pool_mode_names))
		return "unknown";
	return pool_mode_names[mode];
}

const char *config_auth_type_name(int type)
{
	if (type < 0 || (size_t)type >= ARRAY_SIZE(auth_type_names))
		return "unknown";
	return auth_type_names[type];
}

/* ---- the settings as the admin console's SHOW CONFIG lists them ---- */

/* Keys a reload does not change (the sockets, the shards and their rings are
 * made once at start). */
static bool restart_only(const char *name)
{
	static const char *const keys[] = {
		"listen_addr", "listen_port", "unix_socket_dir", "unix_socket_mode", "shards", "shard_cpus",
		"control_addr", "control_port", "ring_entries", "cq_entries", "client_bufs", "client_buf_size",
		"server_bufs", "server_buf_size", "user", "pidfile", "so_reuseport", "syslog", "syslog_ident",
		"syslog_facility",
	};
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (!strcmp(keys[i], name))
			return true;
	return false;
}

static void format_value(const struct key_def *k, const struct config *cfg, char *out, size_t n)
{
	const void *field = (const char *)cfg + k->off;
	out[0] = 0;
	switch (k->type) {
	case KT_INT: case KT_SIZE: snprintf(out, n, "%d", *(const int *)field); break;
	case KT_OCTAL: snprintf(out, n, "0%o", (unsigned)*(const int *)field); break;
	case KT_TIME: snprintf(out, n, "%g", *(const double *)field); break;
	case KT_BOOL: snprintf(out, n, "%d", *(const bool *)field ? 1 : 0); break;
	case KT_STR: snprintf(out, n, "%s", *(char *const *)field ? *(char *const *)field : ""); break;
	case KT_POOL_MODE: snprintf(out, n, "%s", config_pool_mode_name(*(const int *)field)); break;
	case KT_AUTH_TYPE: snprintf(out, n, "%s", config_auth_type_name(*(const int *)field)); break;
	case KT_TARGET: snprintf(out, n, "%s", config_target_name(*(const int *)field)); break;
	case KT_SSLMODE: snprintf(out, n, "%s", config_sslmode_name(*(const int *)field)); break;
	case KT_DISABLE_MODE: snprintf(out, n, "%s", disable_mode_names[*(const int *)field == DISABLE_CLOSE]); break;
	case KT_THROTTLE_MODE: snprintf(out, n, "%s", throttle_mode_names[*(const int *)field == THROTTLE_REFUSE]); break;
	case KT_CPU_LIST:
		for (int i = 0; i < cfg->n_shard_cpus; i++)
			snprintf(out + strlen(out), n - strlen(out), "%s%d", i ? "," : "", cfg->shard_cpus[i]);
		break;
	default: break;
	}
}

static bool listed_setting(const struct key_def *k)
{
	return k->type != KT_REFUSED && k->type != KT_NO_EFFECT && k->type != KT_IGNORED;
}

void config_settings(const struct config *cfg, struct strbuf *out)
{
	char value[1024];
	for (size_t i = 0; i < ARRAY_SIZE(main_keys); i++) {
		const struct key_def *k = &main_keys[i];
		if (!listed_setting(k))
			continue;
		format_value(k, cfg, value, sizeof value);
		/* a password is not shown, as PgBouncer hides none but has none here */
		if (!strcmp(k->name, "health_check_password") && value[0])
			snprintf(value, sizeof value, "********");
		for (char *p = value; *p; p++)
			if (*p == '\t' || *p == '\n')
				*p = ' ';
		strbuf_printf(out, "%s\t%s\t%s\t%s\n", k->name, value, k->def ? k->def : "",
			      restart_only(k->name) ? "no" : "yes");
	}
}

bool config_runtime_setting(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(main_keys); i++)
		if (!strcasecmp(main_keys[i].name, name))
			return listed_setting(&main_keys[i]) && !restart_only(main_keys[i].name);
	return false;
}

bool config_is_setting(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(main_keys); i++)
		if (!strcasecmp(main_keys[i].name, name))
			return true;
	return false;
}
