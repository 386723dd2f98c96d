/* tests/unit/test_config.c: core/config.c against PgBouncer-style files: values,
 * defaults, warnings, errors with file:line, connection strings, %include, the
 * shipped Debian pgbouncer.ini, CPU lists, userlist.txt and pool precedence. */
#include "core/config.h"
#include "core/control/authq.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- fixtures: a temp directory per test, captured warnings -------------- */

static char tmpdir[64];
static char warns[64][1024];
static int nwarns;
static char err[1024];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/pgring-config-test-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	nwarns = 0;
	err[0] = '\0';
}

static void teardown(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char path[512];
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(tmpdir);
}

TestSuite(config, .init = setup, .fini = teardown);
TestSuite(config_errors, .init = setup, .fini = teardown);
TestSuite(config_connstr, .init = setup, .fini = teardown);
TestSuite(config_userlist, .init = setup, .fini = teardown);
TestSuite(config_precedence, .init = setup, .fini = teardown);

static void on_warn(const char *msg)
{
	if (nwarns < 64)
		snprintf(warns[nwarns++], sizeof(warns[0]), "%s", msg);
}

/* How many warnings contain needle. */
static int warned(const char *needle)
{
	int n = 0;
	for (int i = 0; i < nwarns; i++)
		n += strstr(warns[i], needle) != NULL;
	return n;
}

static void write_all(const char *path, const char *content, size_t len)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	cr_assert_eq(fwrite(content, 1, len, f), len);
	fclose(f);
}

/* A new mkstemp file in the test's directory; returns its path (static storage). */
static const char *tmp_file(const char *content)
{
	static char paths[16][512];
	static int next;
	char *path = paths[next++ % 16];
	int fd;
	snprintf(path, 512, "%s/cfg-XXXXXX", tmpdir);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	write_all(path, content, strlen(content));
	return path;
}

static const char *named_file(const char *name, const char *content)
{
	static char paths[8][512];
	static int next;
	char *path = paths[next++ % 8];
	snprintf(path, 512, "%s/%s", tmpdir, name);
	write_all(path, content, strlen(content));
	return path;
}

static struct config *load_path(const char *path)
{
	struct config *cfg = NULL;
	/* settings only: TLS files are opened by config_load (tested in test_tls.c
	 * and t_tls), and these configurations name made-up ones */
	int r = config_parse(path, &cfg, err, sizeof(err), on_warn);
	cr_assert_eq(r, 0, "config_load failed: %s", err);
	cr_assert_not_null(cfg);
	return cfg;
}

static struct config *load(const char *content)
{
	return load_path(tmp_file(content));
}

#define expect_str(actual, expected)                                                   \
	do {                                                                           \
		const char *a_ = (actual);                                             \
		cr_expect(a_ && strcmp(a_, (expected)) == 0, "%s is '%s', expected '%s'", \
			  #actual, a_ ? a_ : "(null)", (expected));                    \
	} while (0)

#define expect_time(actual, expected) \
	cr_expect((actual) > (expected) - 1e-9 && (actual) < (expected) + 1e-9, \
		  "%s is %g, expected %g", #actual, (double)(actual), (double)(expected))

/* ---- values and defaults ------------------------------------------------- */

Test(config, defaults_match_the_header)
{
	struct config *c = load("[pgring]\n");
	cr_expect_null(c->listen_addr);
	cr_expect_eq(c->listen_port, 6432);
	expect_str(c->unix_socket_dir, "/tmp");
	cr_expect_eq(c->unix_socket_mode, 0777);
	cr_expect_eq(c->auth_type, AUTH_MD5);
	cr_expect_null(c->auth_file);
	cr_expect_eq(c->pool_mode, POOL_SESSION);
	cr_expect_eq(c->default_pool_size, 20);
	cr_expect_eq(c->min_pool_size, 0);
	cr_expect_eq(c->reserve_pool_size, 0);
	expect_time(c->reserve_pool_timeout, 5);
	cr_expect_eq(c->max_client_conn, 100);
	cr_expect_eq(c->max_db_connections, 0);
	cr_expect_eq(c->max_user_connections, 0);
	expect_str(c->server_reset_query, "DISCARD ALL");
	cr_expect_not(c->server_reset_query_always);
	expect_str(c->server_check_query, "select 1");
	expect_time(c->server_idle_timeout, 600);
	expect_time(c->server_lifetime, 3600);
	expect_time(c->server_connect_timeout, 15);
	expect_time(c->server_login_retry, 5);
	expect_time(c->query_wait_timeout, 120);
	expect_time(c->query_timeout, 0);
	expect_time(c->cancel_wait_timeout, 10);
	expect_time(c->client_login_timeout, 60);
	expect_time(c->client_idle_timeout, 0);
	expect_time(c->idle_transaction_timeout, 0);
	expect_time(c->shutdown_timeout, 30);
	cr_expect_null(c->logfile);
	cr_expect_null(c->pidfile);
	cr_expect_eq(c->verbose, 0);
	cr_expect(c->log_connections);
	cr_expect(c->log_disconnections);
	cr_expect_eq(c->max_packet_size, 256 * 1024 * 1024);
	cr_expect_eq(c->max_startup_packet, 10000);
	cr_expect_eq(c->shards, 0);
	cr_expect(c->shards_follow_load);
	cr_expect_eq(c->shard_spread_busy, 80);
	cr_expect_eq(c->shard_gather_busy, 60);
	cr_expect_eq(c->shard_gather_windows, 3);
	cr_expect_eq(c->n_shard_cpus, 0);
	expect_str(c->control_addr, "127.0.0.1");
	cr_expect_eq(c->control_port, 6433);
	cr_expect_eq(c->ring_entries, 1024);
	cr_expect_eq(c->cq_entries, 16384);
	cr_expect_eq(c->client_bufs, 1024);
	cr_expect_eq(c->client_buf_size, 2048);
	cr_expect_eq(c->server_bufs, 1024);
	cr_expect_eq(c->server_buf_size, 16384);
	cr_expect_eq(c->max_pending_bytes, 256 * 1024);
	cr_expect_eq(c->ndbs, 0);
	cr_expect_eq(c->nusers, 0);
	cr_expect_eq(warned("no auth_file"), 1, "md5 without auth_file deserves a warning");
	config_free(c);
}

static const char full_ini[] =
	";; a PgBouncer-style file using every key pgring shares\n"
	"[databases]\n"
	"app = host=127.0.0.1 port=5433 dbname=app_prod user=appuser password=s3cret pool_size=5 "
	"pool_mode=transaction min_pool_size=2 reserve_pool=3 max_db_connections=40 "
	"client_encoding=UTF8 datestyle=ISO timezone=UTC application_name=pgring-app "
	"connect_query='SELECT 1'\n"
	"sock = host=/var/run/postgresql\n"
	"* = host=fallback.example port=6000\n"
	"\n"
	"[users]\n"
	"alice = pool_mode=statement pool_size=7 max_user_connections=10\n"
	"\n"
	"[pgbouncer]\n"
	"listen_addr = 127.0.0.1, ::1\n"
	"listen_port = 7432\n"
	"unix_socket_dir = /run/pgring\n"
	"unix_socket_mode = 0700\n"
	"auth_type = trust\n"
	"pool_mode = transaction\n"
	"default_pool_size = 30\n"
	"min_pool_size = 4\n"
	"reserve_pool_size = 6\n"
	"reserve_pool_timeout = 2.5\n"
	"max_client_conn = 5000\n"
	"max_db_connections = 100\n"
	"max_user_connections = 50\n"
	"server_reset_query = DEALLOCATE ALL\n"
	"server_reset_query_always = 1\n"
	"server_check_query = SELECT 2\n"
	"server_idle_timeout = 300\n"
	"server_lifetime = 1800\n"
	"server_connect_timeout = 3\n"
	"server_login_retry = 0.5\n"
	"query_wait_timeout = 60\n"
	"query_timeout = 90\n"
	"client_login_timeout = 20\n"
	"client_idle_timeout = 3600\n"
	"idle_transaction_timeout = 30\n"
	"logfile = /var/log/pgring.log\n"
	"pidfile = /run/pgring.pid\n"
	"verbose = 2\n"
	"log_connections = 0\n"
	"log_disconnections = off\n"
	"admin_users = admin, root\n"
	"stats_users = stats\n"
	"max_packet_size = 1048576\n"
	"pkt_buf = 8192\n"
	"\n"
	"[pgring]\n"
	"shard_cpus = 0-1,3\n"
	"control_addr = 0.0.0.0\n"
	"control_port = 7433\n"
	"ring_entries = 2048\n"
	"cq_entries = 8192\n"
	"client_bufs = 2048\n"
	"client_buf_size = 4kB\n"
	"server_bufs = 512\n"
	"server_buf_size = 32768\n"
	"max_pending_bytes = 1MB\n"
	"shutdown_timeout = 10s\n"
	"max_startup_packet = 20000\n";

Test(config, full_pgbouncer_style_file)
{
	struct config *c = load(full_ini);
	const struct config_db *db;
	const struct config_user *u;

	expect_str(c->listen_addr, "127.0.0.1, ::1");
	cr_expect_eq(c->listen_port, 7432);
	expect_str(c->unix_socket_dir, "/run/pgring");
	cr_expect_eq(c->unix_socket_mode, 0700);
	cr_expect_eq(c->auth_type, AUTH_TRUST);
	cr_expect_eq(c->pool_mode, POOL_TRANSACTION);
	cr_expect_eq(c->default_pool_size, 30);
	cr_expect_eq(c->min_pool_size, 4);
	cr_expect_eq(c->reserve_pool_size, 6);
	expect_time(c->reserve_pool_timeout, 2.5);
	cr_expect_eq(c->max_client_conn, 5000);
	cr_expect_eq(c->max_db_connections, 100);
	cr_expect_eq(c->max_user_connections, 50);
	expect_str(c->server_reset_query, "DEALLOCATE ALL");
	cr_expect(c->server_reset_query_always);
	expect_str(c->server_check_query, "SELECT 2");
	expect_time(c->server_idle_timeout, 300);
	expect_time(c->server_lifetime, 1800);
	expect_time(c->server_connect_timeout, 3);
	expect_time(c->server_login_retry, 0.5);
	expect_time(c->query_wait_timeout, 60);
	expect_time(c->query_timeout, 90);
	expect_time(c->client_login_timeout, 20);
	expect_time(c->client_idle_timeout, 3600);
	expect_time(c->idle_transaction_timeout, 30);
	expect_str(c->logfile, "/var/log/pgring.log");
	expect_str(c->pidfile, "/run/pgring.pid");
	cr_expect_eq(c->verbose, 2);
	cr_expect_not(c->log_connections);
	cr_expect_not(c->log_disconnections);
	expect_str(c->admin_users, "admin, root");
	expect_str(c->stats_users, "stats");
	cr_expect_eq(c->max_packet_size, 1048576);
	/* pgring's own */
	cr_expect_eq(c->n_shard_cpus, 3);
	cr_expect_eq(c->shards, 3, "shards follows the CPU list when not given");
	cr_expect_eq(c->shard_cpus[0], 0);
	cr_expect_eq(c->shard_cpus[1], 1);
	cr_expect_eq(c->shard_cpus[2], 3);
	expect_str(c->control_addr, "0.0.0.0");
	cr_expect_eq(c->control_port, 7433);
	cr_expect_eq(c->ring_entries, 2048);
	cr_expect_eq(c->cq_entries, 8192);
	cr_expect_eq(c->client_bufs, 2048);
	cr_expect_eq(c->client_buf_size, 4096);
	cr_expect_eq(c->server_bufs, 512);
	cr_expect_eq(c->server_buf_size, 32768);
	cr_expect_eq(c->max_pending_bytes, 1024 * 1024);
	expect_time(c->shutdown_timeout, 10);
	cr_expect_eq(c->max_startup_packet, 20000);

	cr_assert_eq(c->ndbs, 3);
	db = config_find_db(c, "app");
	cr_assert_not_null(db);
	expect_str(db->name, "app");
	expect_str(db->host, "127.0.0.1");
	cr_expect_eq(db->port, 5433);
	expect_str(db->dbname, "app_prod");
	expect_str(db->user, "appuser");
	expect_str(db->password, "s3cret");
	cr_expect_null(db->auth_user);
	expect_str(db->client_encoding, "UTF8");
	expect_str(db->datestyle, "ISO");
	expect_str(db->timezone, "UTC");
	expect_str(db->application_name, "pgring-app");
	expect_str(db->connect_query, "SELECT 1");
	cr_expect_eq(db->pool_size, 5);
	cr_expect_eq(db->min_pool_size, 2);
	cr_expect_eq(db->reserve_pool_size, 3);
	cr_expect_eq(db->max_db_connections, 40);
	cr_expect_eq(db->pool_mode, POOL_TRANSACTION);
	cr_expect_eq(db->line, 3);

	db = config_find_db(c, "sock");
	cr_assert_not_null(db);
	expect_str(db->host, "/var/run/postgresql");
	cr_expect_eq(db->port, 5432, "port defaults to 5432");
	cr_expect_null(db->dbname);
	cr_expect_null(db->user);
	cr_expect_null(db->password);
	cr_expect_eq(db->pool_size, -1);
	cr_expect_eq(db->min_pool_size, -1);
	cr_expect_eq(db->reserve_pool_size, -1);
	cr_expect_eq(db->max_db_connections, -1);
	cr_expect_eq(db->pool_mode, -1);

	u = config_find_user(c, "alice");
	cr_assert_not_null(u);
	cr_expect_eq(u->pool_mode, POOL_STATEMENT);
	cr_expect_eq(u->pool_size, 7);
	cr_expect_eq(u->max_user_connections, 10);
	cr_expect_null(config_find_user(c, "bob"));

	cr_expect_eq(warned("unknown"), 0, "nothing here is unknown");
	cr_expect_eq(warned("pkt_buf"), 0, "pkt_buf is accepted silently");
	config_free(c);
}

Test(config, pgbouncer_and_pgring_sections_are_alike)
{
	struct config *a = load("[pgbouncer]\nlisten_port = 7000\nshards = 2\n");
	struct config *b = load("[pgring]\nlisten_port = 7000\nshards = 2\n");
	cr_expect_eq(a->listen_port, b->listen_port);
	cr_expect_eq(a->shards, 2);
	cr_expect_eq(b->shards, 2);
	config_free(a);
	config_free(b);
}

Test(config, empty_string_values_are_null)
{
	struct config *c = load("[pgbouncer]\nunix_socket_dir =\nserver_reset_query =\n");
	cr_expect_null(c->unix_socket_dir, "empty unix_socket_dir: no unix socket");
	cr_expect_null(c->server_reset_query);
	config_free(c);
}

Test(config, later_value_of_a_key_wins)
{
	struct config *c = load("[pgring]\nlisten_port = 7000\nlogfile = a\n"
				"[pgbouncer]\nlisten_port = 7001\nlogfile = b\n");
	cr_expect_eq(c->listen_port, 7001);
	expect_str(c->logfile, "b");
	config_free(c);
}

Test(config, admission_limits)
{
	struct config *c = load("[pgring]\nthrottle_queue_size = 7\n"
				"[databases]\nd1 = host=x max_transactions=4 throttle_mode=refuse\nd2 = host=y\n"
				"[users]\nalice = max_queries_per_second=100 max_rows_per_second=2000 throttle_wait_timeout=2s\n"
				"[applications]\nreport = throttle_weight=3\n\"big app\" = max_queries_per_second=5\n");
	cr_assert(c->admission);
	cr_expect_eq(c->throttle_queue_size, 7);
	cr_expect_eq(c->throttle_mode, THROTTLE_WAIT);
	cr_expect_eq(c->throttle_weight, 1);
	const struct config_db *d1 = config_find_db(c, "d1"), *d2 = config_find_db(c, "d2");
	cr_expect_eq(d1->lim.max_transactions, 4);
	cr_expect_eq(d1->lim.throttle_mode, THROTTLE_REFUSE);
	cr_expect_eq(d1->lim.max_qps, -1);
	cr_expect_not(config_limits_set(&d2->lim));
	const struct config_user *u = config_find_user(c, "alice");
	cr_expect_eq(u->lim.max_qps, 100);
	cr_expect_eq(u->lim.max_rps, 2000);
	expect_time(u->lim.throttle_wait_timeout, 2);
	cr_expect_eq(config_find_app(c, "report")->lim.throttle_weight, 3);
	cr_expect_eq(config_find_app(c, "big app")->lim.max_qps, 5);
	cr_expect_null(config_find_app(c, "other"));
	config_free(c);
	c = load("[databases]\nd = host=x\n");
	cr_expect_not(c->admission, "no limits: requests never look");
	config_free(c);
}

Test(config, time_units)
{
	struct config *c = load("[pgring]\n"
				"server_idle_timeout = 10s\n"
				"server_lifetime = 5min\n"
				"query_timeout = 100ms\n"
				"query_wait_timeout = 1.5\n"
				"client_idle_timeout = 2h\n"
				"client_login_timeout = 250 us\n"
				"idle_transaction_timeout = 1d\n"
				"cancel_wait_timeout = 500ms\n"
				"shutdown_timeout = 0\n");
	expect_time(c->server_idle_timeout, 10);
	expect_time(c->server_lifetime, 300);
	expect_time(c->query_timeout, 0.1);
	expect_time(c->query_wait_timeout, 1.5);
	expect_time(c->client_idle_timeout, 7200);
	expect_time(c->client_login_timeout, 0.00025);
	expect_time(c->idle_transaction_timeout, 86400);
	expect_time(c->cancel_wait_timeout, 0.5);
	expect_time(c->shutdown_timeout, 0);
	config_free(c);
}

Test(config, size_units)
{
	struct config *c = load("[pgring]\nmax_packet_size = 64kB\nclient_buf_size = 1024 B\n"
				"server_buf_size = 1mb\nmax_pending_bytes = 1GB\n");
	cr_expect_eq(c->max_packet_size, 65536);
	cr_expect_eq(c->client_buf_size, 1024);
	cr_expect_eq(c->server_buf_size, 1024 * 1024);
	cr_expect_eq(c->max_pending_bytes, 1024 * 1024 * 1024);
	config_free(c);
}

Test(config, booleans)
{
	static const struct { const char *text; bool value; } cases[] = {
		{ "1", true }, { "0", false }, { "on", true }, { "off", false },
		{ "yes", true }, { "no", false }, { "true", true }, { "FALSE", false },
		{ "On", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char ini[128];
		struct config *c;
		snprintf(ini, sizeof(ini), "[pgring]\nserver_reset_query_always = %s\n",
			 cases[i].text);
		c = load(ini);
		cr_expect_eq(c->server_reset_query_always, cases[i].value, "'%s'", cases[i].text);
		config_free(c);
	}
}

Test(config, enums_are_case_insensitive)
{
	struct config *c = load("[pgring]\npool_mode = Transaction\nauth_type = SCRAM-SHA-256\n");
	cr_expect_eq(c->pool_mode, POOL_TRANSACTION);
	cr_expect_eq(c->auth_type, AUTH_SCRAM);
	config_free(c);
}

Test(config, unknown_key_warns_with_location)
{
	const char *path = tmp_file("[pgring]\n; comment\nfrobnicate = 1\n");
	struct config *c = load_path(path);
	char where[600];
	snprintf(where, sizeof(where), "%s:3:", path);
	cr_expect_eq(warned("frobnicate"), 1);
	cr_expect_eq(warned(where), 1, "warning should say %s", where);
	config_free(c);
}

Test(config, known_but_unimplemented_keys_warn)
{
	struct config *c = load("[pgbouncer]\n"
				"so_reuseport = 1\n"
				"tcp_keepalive = 1\n"
				"tcp_keepidle = 30\n"
				"tcp_defer_accept = 1\n"
				"client_tls_sslmode = disable\n"
				"server_tls_sslmode = require\n"
				"max_prepared_statements = 100\n"
				"unix_socket_group = postgres\n"
				"pkt_buf = 4096\n");
	cr_expect_eq(warned("so_reuseport"), 0, "implemented (sharing the listening port)");
	cr_expect(c->so_reuseport);
	cr_expect_eq(warned("tcp_keepalive"), 0, "implemented (keepalive on client and server sockets)");
	cr_expect_eq(c->tcp_keepidle, 30);
	cr_expect_eq(warned("tcp_defer_accept"), 1);
	cr_expect_eq(warned("unix_socket_group"), 1, "not a security setting: a warning");
	cr_expect_eq(warned("max_prepared_statements"), 0, "implemented (transaction pooling)");
	cr_expect_eq(c->max_prepared_statements, 100);
	cr_expect_eq(warned("sslmode"), 0, "TLS settings are implemented");
	cr_expect_eq(c->server_tls_sslmode, SSLMODE_REQUIRE);
	cr_expect_eq(warned("pkt_buf"), 0);
	cr_expect_eq(warned("unknown"), 0);
	config_free(c);
}

Test(config, unknown_section_warns)
{
	struct config *c = load("[pgring]\nlisten_port = 7000\n"
				"[mystery]\nx = 1\n");
	cr_expect_eq(warned("[mystery]"), 1);
	cr_expect_eq(warned("unknown key"), 0, "keys of skipped sections are not looked at");
	cr_expect_eq(c->listen_port, 7000);
	config_free(c);
}

Test(config, peers_as_pgbouncer_reads_them)
{
	struct config *c = load("[pgring]\npeer_id = 2\ndefault_pool_size = 7\n"
				"[peers]\n3 = host=/tmp/pgb3 port=5555\n1 = host=a.example pool_size=2\n"
				"[databases]\n"
				"[peers]\n2 = host=127.0.0.1 port=6433\n1 = host=b.example\n");
	cr_expect_eq(c->peer_id, 2);
	cr_assert_eq(c->npeers, 3, "sections reopen; the same id again replaces the line");
	cr_expect_eq(warned("peer 1 is defined again"), 1);
	cr_expect_eq(c->peers[0].id, 1, "sorted by id");
	expect_str(c->peers[0].host, "b.example");
	cr_expect_eq(c->peers[0].port, 6432, "PgBouncer's default port");
	cr_expect_eq(c->peers[0].pool_size, -1, "unset: default_pool_size");
	cr_expect_eq(c->peers[2].id, 3);
	expect_str(c->peers[2].host, "/tmp/pgb3");
	cr_expect_eq(c->peers[2].port, 5555);
	cr_expect_eq(config_find_peer(c, 2), &c->peers[1]);
	cr_expect_null(config_find_peer(c, 4));
	cr_expect_eq(warned("not supported"), 0);
	config_free(c);
}

static void expect_load_error(const char *ini, const char *needle);

Test(config, bad_peers_are_errors)
{
	expect_load_error("[peers]\n0 = host=a\n", "not a peer id");
	expect_load_error("[peers]\n65536 = host=a\n", "not a peer id");
	expect_load_error("[peers]\nx = host=a\n", "not a peer id");
	expect_load_error("[peers]\n1 = port=6432\n", "host is not set");
	expect_load_error("[peers]\n1 = host=a dbname=x\n", "unknown parameter 'dbname'");
	expect_load_error("[peers]\n1 = host=a port=0\n", "port");
	expect_load_error("[pgring]\npeer_id = 16384\n", "peer_id");
}

Test(config, indented_lines_are_not_continuations)
{
	struct config *c = load("[pgring]\nlogfile = /a\n   listen_port = 7002\n\tverbose = 1\n");
	expect_str(c->logfile, "/a");
	cr_expect_eq(c->listen_port, 7002);
	cr_expect_eq(c->verbose, 1);
	config_free(c);
}

Test(config, bom_crlf_and_semicolons_inside_values)
{
	static const char ini[] = "\xEF\xBB\xBF[pgring]\r\nlisten_port = 7003\r\n"
				  "server_reset_query = RESET ALL; DEALLOCATE ALL\r\n"
				  "# hash comment\r\n";
	struct config *c = load(ini);
	cr_expect_eq(c->listen_port, 7003);
	expect_str(c->server_reset_query, "RESET ALL; DEALLOCATE ALL");
	config_free(c);
}

Test(config, long_lines)
{
	size_t n = 20000;
	char *ini = malloc(n + 100), *p;
	struct config *c;
	p = ini + sprintf(ini, "[databases]\nbig = connect_query='");
	memset(p, 'x', n);
	strcpy(p + n, "'\n");
	c = load(ini);
	cr_assert_eq(c->ndbs, 1);
	cr_expect_eq(strlen(c->dbs[0].connect_query), n);
	config_free(c);
	free(ini);
}

Test(config, include)
{
	char main_ini[1024];
	const char *inc = named_file("inc.ini", "listen_port = 7100\n[databases]\nincdb = host=x\n");
	snprintf(main_ini, sizeof(main_ini),
		 "[pgring]\nverbose = 1\n%%include %s\n[pgring]\nverbose = 3\n", inc);
	struct config *c = load(main_ini);
	cr_expect_eq(c->listen_port, 7100, "the included file continues the current section");
	cr_expect_eq(c->verbose, 3);
	cr_expect_not_null(config_find_db(c, "incdb"));
	config_free(c);
}

Test(config, find_db_falls_back_to_star)
{
	struct config *c = load("[databases]\nexact = host=a\n* = host=b\n");
	const struct config_db *db = config_find_db(c, "exact");
	cr_assert_not_null(db);
	expect_str(db->host, "a");
	db = config_find_db(c, "other");
	cr_assert_not_null(db);
	expect_str(db->name, "*");
	config_free(c);

	c = load("[databases]\nexact = host=a\n");
	cr_expect_null(config_find_db(c, "other"));
	config_free(c);
}

Test(config, duplicate_database_replaces_with_warning)
{
	struct config *c = load("[databases]\napp = host=a\napp = host=b\n");
	cr_assert_eq(c->ndbs, 1);
	expect_str(c->dbs[0].host, "b");
	cr_expect_eq(warned("database 'app' is defined again"), 1);
	config_free(c);
}

Test(config, missing_file_is_an_error)
{
	struct config *c = (struct config *)1;
	cr_expect_eq(config_load("/nonexistent/pgring.ini", &c, err, sizeof(err), on_warn), -1);
	cr_expect_null(c);
	cr_expect(strstr(err, "/nonexistent/pgring.ini") != NULL, "err: %s", err);
}

/* ---- the Debian-shipped pgbouncer.ini ------------------------------------ */

#define SHIPPED_INI "/etc/pgbouncer/pgbouncer.ini"

static char *read_shipped(void)
{
	FILE *f = fopen(SHIPPED_INI, "r");
	char *buf;
	long n;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 512);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

/* The shipped file names /etc/pgbouncer/userlist.txt, which only root or postgres
 * may read; point auth_file elsewhere if we can't. */
static void make_auth_file_readable(char *ini)
{
	if (access("/etc/pgbouncer/userlist.txt", R_OK) == 0)
		return;
	strcat(ini, "\n[pgbouncer]\nauth_file = ");
	strcat(ini, named_file("userlist.txt", "\"someuser\" \"md5abc\"\n"));
	strcat(ini, "\n");
}

Test(config, shipped_debian_pgbouncer_ini)
{
	char *ini = read_shipped();
	struct config *c;
	if (!ini)
		cr_skip_test("%s is not readable (is pgbouncer installed?)", SHIPPED_INI);
	make_auth_file_readable(ini);
	c = load(ini);
	expect_str(c->logfile, "/var/log/postgresql/pgbouncer.log");
	expect_str(c->pidfile, "/var/run/postgresql/pgbouncer.pid");
	expect_str(c->listen_addr, "localhost");
	cr_expect_eq(c->listen_port, 6432);
	expect_str(c->unix_socket_dir, "/var/run/postgresql");
	cr_expect_eq(c->auth_type, AUTH_MD5);
	cr_expect_not_null(c->auth_file);
	cr_expect_eq(c->ndbs, 0);
	cr_expect_eq(warned("unknown"), 0);
	config_free(c);
	free(ini);
}

/* Every commented-out `;key = value` line of the shipped file switched on (bar
 * placeholders like <system default>): all of PgBouncer's documented keys and
 * example databases must be understood, its auth_user example too. */
Test(config, shipped_debian_pgbouncer_ini_all_uncommented)
{
	char *ini = read_shipped(), *out, *w, *line, *save = NULL, *with_auth_user;
	struct config *c = NULL;
	if (!ini)
		cr_skip_test("%s is not readable (is pgbouncer installed?)", SHIPPED_INI);
	out = w = calloc(1, strlen(ini) + 1024);
	with_auth_user = calloc(1, strlen(ini) + 1024);
	for (line = strtok_r(ini, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *s = line;
		if (s[0] == ';' && s[1] != ';' && strchr(s, '=') && !strchr(s, '<'))
			s++;
		w += sprintf(w, "%s\n", strstr(s, "auth_user=") ? line : s);
		strcat(with_auth_user, s);
		strcat(with_auth_user, "\n");
	}
	make_auth_file_readable(with_auth_user);
	err[0] = '\0';
	cr_expect_eq(config_load(tmp_file(with_auth_user), &c, err, sizeof err, on_warn), 0, "err: %s", err);
	cr_expect(c && config_find_db(c, "foodb") && config_find_db(c, "foodb")->auth_user &&
		  !strcmp(config_find_db(c, "foodb")->auth_user, "bar"));
	config_free(c);
	free(with_auth_user);
	nwarns = 0;
	make_auth_file_readable(out);
	c = load(out);
	cr_expect_eq(warned("unknown"), 0, "first warning: %s", nwarns ? warns[0] : "");
	cr_expect_not_null(config_find_db(c, "forcedb"));
	cr_expect_not_null(config_find_db(c, "nondefaultdb"));
	cr_expect_eq(config_find_db(c, "nondefaultdb")->reserve_pool_size, 10);
	cr_expect_not_null(config_find_user(c, "user1"));
	cr_expect_eq(config_find_user(c, "user1")->max_user_connections, 10);
	cr_expect_gt(warned("accepted but has no effect yet"), 10);
	config_free(c);
	free(out);
	free(ini);
}

/* ---- errors: each bad value fails with file:line ------------------------- */

struct bad_case {
	const char *body;   /* goes after "; header\n\n", so its first line is line 3 */
	int line;
	const char *needle;
};

static const struct bad_case bad_cases[] = {
	{ "[pgring]\nlisten_port = abc\n", 4, "listen_port" },
	{ "[pgring]\nlisten_port = 70000\n", 4, "out of range" },
	{ "[pgring]\nlisten_port = 12 34\n", 4, "not an integer" },
	{ "[pgring]\ndefault_pool_size = -1\n", 4, "default_pool_size" },
	{ "[pgring]\nshards = 300\n", 4, "shards" },
	{ "[pgring]\nserver_idle_timeout = soon\n", 4, "not a time" },
	{ "[pgring]\nquery_timeout = -5\n", 4, "out of range" },
	{ "[pgring]\nquery_timeout = 5 fortnights\n", 4, "query_timeout" },
	{ "[pgring]\nquery_timeout = nan\n", 4, "query_timeout" },
	{ "[pgring]\nmax_packet_size = 10\n", 4, "max_packet_size" },
	{ "[pgring]\nmax_packet_size = 1500.5\n", 4, "whole number" },
	{ "[pgring]\npool_mode = sometimes\n", 4, "pool_mode" },
	{ "[pgring]\nauth_type = hba\n", 4, "auth_type = hba needs auth_hba_file" },
	{ "[pgring]\nauth_type = pam\n", 4, "not supported yet" },
	{ "[pgring]\nauth_type = pam\n", 4, "not supported yet" },
	{ "[pgring]\nauth_type = ldap\n", 4, "not supported yet" },
	{ "[pgring]\nauth_type = wat\n", 4, "auth_type" },
	{ "[pgring]\nlog_connections = maybe\n", 4, "not a boolean" },
	{ "[pgring]\nunix_socket_mode = 0999\n", 4, "octal" },
	{ "[pgring]\nunix_socket_mode = 017777\n", 4, "out of range" },
	{ "[pgring]\nshard_cpus = 0-\n", 4, "CPU list" },
	{ "[pgring]\nshards = 2\nshard_cpus = 0-3\n", 5, "shards = 2" },
	{ "[pgring]\nshard_cpus = 0-3\nshards = 3\n", 4, "shard_cpus names 4 CPUs" },
	{ "[pgring]\nclient_bufs = 1000\n", 4, "power of two" },
	{ "[pgring]\nshard_spread_busy = 50\nshard_gather_busy = 45\n", 5, "at least 10 below shard_spread_busy" },
	{ "[pgring]\nshard_spread_busy = 101\n", 4, "shard_spread_busy" },
	{ "[pgring]\nshard_gather_windows = 0\n", 4, "shard_gather_windows" },
	{ "[pgring]\netcd_pgring_prefix =\n", 4, "etcd_pgring_prefix must begin with /" },
	{ "[pgring]\netcd_prefix =\n", 4, "etcd_prefix must begin with /" },
	{ "[pgring]\nring_entries = 4096\ncq_entries = 1024\n", 5, "at least ring_entries" },
	{ "[pgring]\nserver_tls_sslmode = sometimes\n", 4, "server_tls_sslmode" },
	{ "[databases]\napp = host=x bogus=1\n", 4, "unknown parameter 'bogus'" },
	{ "[databases]\napp = host='unterminated\n", 4, "unterminated" },
	{ "[databases]\napp = host='a'b\n", 4, "quoted value" },
	{ "[databases]\napp = port=0\n", 4, "port" },
	{ "[databases]\napp = port=5432x\n", 4, "port" },
	{ "[databases]\napp = pool_mode=wat\n", 4, "pool_mode" },
	{ "[databases]\napp = port=5432 host=\n", 4, "empty value for host" },
	{ "[databases]\napp = host=''\n", 4, "empty value for host" },
	{ "[databases]\napp = hostx\n", 4, "expected key=value" },
	{ "[databases]\npgbouncer = host=x\n", 4, "reserved" },
	{ "[databases]\n\"unterminated\n", 4, "unterminated quoted name" },
	{ "[databases]\n\"a=b\" = host=x\n", 4, "not supported" },
	{ "[users]\nbob = pool_size=abc\n", 4, "pool_size" },
	{ "[users]\nbob = frob=1\n", 4, "unknown parameter 'frob'" },
	{ "[users]\nbob = disable_mode=kill\n", 4, "disable_mode: unknown value 'kill' (finish, close)" },
	{ "[databases]\napp = disabled=perhaps\n", 4, "disabled" },
	{ "[pgring]\ndisable_mode = later\n", 4, "disable_mode" },
	{ "[users]\nbob = max_queries_per_second=fast\n", 4, "max_queries_per_second" },
	{ "[databases]\napp = max_transactions=-1\n", 4, "max_transactions" },
	{ "[applications]\nreport = throttle_mode=later\n", 4, "throttle_mode: unknown value 'later' (wait, refuse)" },
	{ "[applications]\nreport = throttle_weight=0\n", 4, "throttle_weight" },
	{ "[applications]\nreport = pool_size=3\n", 4, "unknown parameter 'pool_size'" },
	{ "[pgring]\nthrottle_wait_timeout = soon\n", 4, "not a time" },
	{ "listen_port = 1\n", 3, "outside of any section" },
	{ "[pgring\n", 3, "without ']'" },
	{ "[pgring] junk\n", 3, "after section header" },
	{ "[pgring]\nlisten_port: 5\n", 4, "expected '='" },
	{ "[pgring]\njust some words\n", 4, "expected '='" },
	{ "[pgring]\n%includ foo\n", 4, "unknown directive" },
	{ "[pgring]\n%include\n", 4, "without a file name" },
	{ "[pgring]\n%include /nonexistent/pgring-x.ini\n", 4, "/nonexistent/pgring-x.ini" },
};

/* Each case fails to load, its error starting with file:line. */
static void expect_bad_cases(const struct bad_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct bad_case *bc = &cases[i];
		char ini[512], where[600];
		struct config *c = NULL;
		const char *path;
		snprintf(ini, sizeof(ini), "; header\n\n%s", bc->body);
		path = tmp_file(ini);
		snprintf(where, sizeof(where), "%s:%d: ", path, bc->line);
		err[0] = '\0';
		cr_expect_eq(config_load(path, &c, err, sizeof(err), on_warn), -1,
			     "case %zu should fail: %s", i, bc->body);
		cr_expect_null(c);
		cr_expect(strncmp(err, where, strlen(where)) == 0,
			  "case %zu: error '%s' should start with '%s'", i, err, where);
		cr_expect(strstr(err, bc->needle) != NULL,
			  "case %zu: error '%s' should mention '%s'", i, err, bc->needle);
		unlink(path);
		config_free(c);
	}
}

Test(config_errors, bad_values_fail_with_file_and_line)
{
	expect_bad_cases(bad_cases, sizeof(bad_cases) / sizeof(bad_cases[0]));
}

Test(config_errors, error_in_included_file_names_that_file)
{
	char main_ini[1024], where[600];
	struct config *c = NULL;
	const char *inc = named_file("bad.ini", "\n\nlisten_port = nope\n");
	snprintf(main_ini, sizeof(main_ini), "[pgring]\n%%include %s\n", inc);
	cr_expect_eq(config_load(tmp_file(main_ini), &c, err, sizeof(err), on_warn), -1);
	snprintf(where, sizeof(where), "%s:3: ", inc);
	cr_expect(strncmp(err, where, strlen(where)) == 0, "err '%s', expected '%s'", err, where);
}

Test(config_errors, include_loop_is_caught)
{
	char self[1024];
	struct config *c = NULL;
	const char *path = named_file("loop.ini", "");
	snprintf(self, sizeof(self), "[pgring]\n%%include %s\n", path);
	named_file("loop.ini", self);
	cr_expect_eq(config_load(path, &c, err, sizeof(err), on_warn), -1);
	cr_expect(strstr(err, "nested") != NULL, "err: %s", err);
}

Test(config_errors, line_too_long)
{
	size_t n = 70000;
	char *ini = malloc(n + 100), *p;
	struct config *c = NULL;
	p = ini + sprintf(ini, "[pgring]\nlogfile = ");
	memset(p, 'x', n);
	strcpy(p + n, "\n");
	cr_expect_eq(config_load(tmp_file(ini), &c, err, sizeof(err), on_warn), -1);
	cr_expect(strstr(err, ":2: line longer than") != NULL, "err: %s", err);
	free(ini);
}

/* ---- connection strings -------------------------------------------------- */

Test(config_connstr, quoted_values)
{
	struct config *c = load(
		"[databases]\n"
		"app = host=127.0.0.1 password='it''s a secret' connect_query='SELECT 1; SELECT 2'"
		"   application_name='x=y'\tdbname=''''\n");
	const struct config_db *db = config_find_db(c, "app");
	cr_assert_not_null(db);
	expect_str(db->host, "127.0.0.1");
	expect_str(db->password, "it's a secret");
	expect_str(db->connect_query, "SELECT 1; SELECT 2");
	expect_str(db->application_name, "x=y");
	expect_str(db->dbname, "'");
	config_free(c);
}

Test(config_connstr, empty_connection_string_uses_defaults)
{
	struct config *c = load("[databases]\nfoodb =\n");
	const struct config_db *db = config_find_db(c, "foodb");
	cr_assert_not_null(db);
	cr_expect_null(db->host);
	cr_expect_eq(db->port, 5432);
	config_free(c);
}

Test(config_connstr, quoted_database_names)
{
	struct config *c = load("[databases]\n\"my db\" = host=a\n\"we\"\"ird\" = host=b\n");
	cr_expect_not_null(config_find_db(c, "my db"));
	cr_expect_not_null(config_find_db(c, "we\"ird"));
	config_free(c);
}

Test(config_connstr, reserve_pool_has_both_names)
{
	struct config *c = load("[databases]\na = reserve_pool=2\nb = reserve_pool_size=4\n");
	cr_expect_eq(config_find_db(c, "a")->reserve_pool_size, 2);
	cr_expect_eq(config_find_db(c, "b")->reserve_pool_size, 4);
	config_free(c);
}

Test(config_connstr, unimplemented_parameters_warn)
{
	struct config *c = load("[databases]\na = host=x load_balance_hosts=disable\n"
				"[users]\nu = transaction_timeout=5\n");
	cr_expect_eq(warned("'load_balance_hosts' is accepted but has no effect yet"), 1);
	cr_expect_eq(warned("transaction_timeout"), 1);
	config_free(c);
}

/* Per-user and per-database settings (issue 15 point 4): set, or -1 for
 * "not set here" so that the next level decides. */
Test(config_connstr, per_user_and_per_database_settings)
{
	struct config *c = load("[pgring]\nauth_type = trust\nmax_db_client_connections = 7\nmax_user_client_connections = 9\n"
				"[databases]\na = host=x max_db_client_connections=3 client_idle_timeout=2min\nb = host=x\n"
				"[users]\nu = reserve_pool_size=2 max_user_client_connections=5 query_timeout=1.5 "
				"idle_transaction_timeout=500ms client_idle_timeout=30\nv = pool_size=1\n");
	cr_expect_eq(nwarns, 0, "%s", nwarns ? warns[0] : "");
	cr_expect_eq(c->max_db_client_connections, 7);
	cr_expect_eq(c->max_user_client_connections, 9);
	const struct config_db *a = config_find_db(c, "a"), *b = config_find_db(c, "b");
	cr_expect_eq(a->max_db_client_connections, 3);
	cr_expect_eq(a->client_idle_timeout, 120);
	cr_expect_eq(b->max_db_client_connections, -1);
	cr_expect_eq(b->client_idle_timeout, -1);
	const struct config_user *u = config_find_user(c, "u"), *v = config_find_user(c, "v");
	cr_expect_eq(u->reserve_pool_size, 2);
	cr_expect_eq(u->max_user_client_connections, 5);
	cr_expect_eq(u->query_timeout, 1.5);
	cr_expect_eq(u->idle_transaction_timeout, 0.5);
	cr_expect_eq(u->client_idle_timeout, 30);
	cr_expect_eq(v->reserve_pool_size, -1);
	cr_expect_eq(v->query_timeout, -1);
	cr_expect_eq(v->client_idle_timeout, -1);
	config_free(c);
}

/* disabled and disable_mode (issue 15 point 6) on database entries, users
 * and globally; a bad mode is an error naming its values. */
Test(config_connstr, disabled_and_disable_mode)
{
	struct config *c = load("[pgring]\nauth_type = trust\ndisable_mode = close\n"
				"[databases]\na = host=x disabled=1 disable_mode=finish\nb = host=x\n"
				"[users]\nu = disabled=yes\nv = disable_mode=close\n");
	cr_expect_eq(nwarns, 0, "%s", nwarns ? warns[0] : "");
	cr_expect_eq(c->disable_mode, DISABLE_CLOSE);
	const struct config_db *a = config_find_db(c, "a"), *b = config_find_db(c, "b");
	cr_expect_eq(a->disabled, 1);
	cr_expect_eq(a->disable_mode, DISABLE_FINISH);
	cr_expect_eq(b->disabled, -1);
	cr_expect_eq(b->disable_mode, -1);
	const struct config_user *u = config_find_user(c, "u"), *v = config_find_user(c, "v");
	cr_expect_eq(u->disabled, 1);
	cr_expect_eq(u->disable_mode, -1);
	cr_expect_eq(v->disabled, -1);
	cr_expect_eq(v->disable_mode, DISABLE_CLOSE);
	config_free(c);
	struct config *d = load("[pgring]\nauth_type = trust\n");
	cr_expect_eq(d->disable_mode, DISABLE_FINISH, "finish is the default, as PgBouncer's DISABLE");
	config_free(d);
}

/* ---- CPU lists ----------------------------------------------------------- */

Test(config_cpu_list, good_lists)
{
	static const struct { const char *s; int n; int cpus[8]; } cases[] = {
		{ "0", 1, { 0 } },
		{ "0,1", 2, { 0, 1 } },
		{ "0-3", 4, { 0, 1, 2, 3 } },
		{ "0-3,8", 5, { 0, 1, 2, 3, 8 } },
		{ " 2 - 4 , 7 ", 4, { 2, 3, 4, 7 } },
		{ "5-5", 1, { 5 } },
		{ "3,1,3", 3, { 3, 1, 3 } },
		{ "", 0, { 0 } },
		{ "  ", 0, { 0 } },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int cpus[8];
		int n = config_parse_cpu_list(cases[i].s, cpus, 8);
		cr_expect_eq(n, cases[i].n, "'%s' gave %d", cases[i].s, n);
		for (int j = 0; j < n && j < cases[i].n; j++)
			cr_expect_eq(cpus[j], cases[i].cpus[j], "'%s' [%d]", cases[i].s, j);
	}
}

Test(config_cpu_list, bad_lists)
{
	static const char *const bad[] = {
		"a", "-1", "0-", "-3", "3-1", "0,", ",0", "0,,1", "0-1-2", "1.5", "0 1",
		"0;1", "+1", "0-99999", "99999", "0-8",   /* 0-8 is 9 CPUs: over max */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int cpus[8];
		cr_expect_eq(config_parse_cpu_list(bad[i], cpus, 8), -1, "'%s'", bad[i]);
	}
}

Test(config_cpu_list, exactly_max)
{
	int cpus[4];
	cr_expect_eq(config_parse_cpu_list("0-3", cpus, 4), 4);
	cr_expect_eq(config_parse_cpu_list("0-4", cpus, 4), -1);
}

/* ---- auth_file ----------------------------------------------------------- */

#define SCRAM_SECRET "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVkS2V5c3RvcmVkS2V5c3RvcmVkS2V5c3Q=:c2VydmVyS2V5c2VydmVyS2V5c2VydmVyS2V5c2U="

static const char userlist[] =
	";; comment\n"
	"\n"
	"\"alice\" \"plainpass\"\n"
	"  \"bob\"\t\"md545f2603610af569b6155c45067268c6b\"\n"
	"\"carol\" \"" SCRAM_SECRET "\"\n"
	"\"dave \"\"the quote\"\"\" \"pa\"\"ss\"\n"
	"\"erin\" \"\"\n"
	"\"frank\" \"old\" \"extra field ignored, as PgBouncer does\"\n"
	"\"frank\" \"new\"\r\n";

Test(config_userlist, parses_plain_md5_and_scram)
{
	struct config cfg = { 0 };
	const char *path = named_file("userlist.txt", userlist);
	cr_assert_eq(config_load_auth_file(&cfg, path, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(cfg.nsecrets, 6, "frank's second line replaces the first");
	expect_str(config_find_secret(&cfg, "alice"), "plainpass");
	expect_str(config_find_secret(&cfg, "bob"), "md545f2603610af569b6155c45067268c6b");
	expect_str(config_find_secret(&cfg, "carol"), SCRAM_SECRET);
	expect_str(config_find_secret(&cfg, "dave \"the quote\""), "pa\"ss");
	expect_str(config_find_secret(&cfg, "erin"), "");
	expect_str(config_find_secret(&cfg, "frank"), "new");
	cr_expect_null(config_find_secret(&cfg, "zoe"));
	cr_expect_null(config_find_secret(&cfg, "alic"));
	/* loading again replaces the old list */
	path = named_file("other.txt", "\"zoe\" \"z\"\n");
	cr_assert_eq(config_load_auth_file(&cfg, path, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(cfg.nsecrets, 1);
	cr_expect_null(config_find_secret(&cfg, "alice"));
	expect_str(config_find_secret(&cfg, "zoe"), "z");
	for (int i = 0; i < cfg.nsecrets; i++) {
		free(cfg.secrets[i].user);
		free(cfg.secrets[i].secret);
	}
	free(cfg.secrets);
}

Test(config_userlist, broken_lines_fail_with_file_and_line)
{
	static const char *const broken[] = {
		"alice \"x\"",               /* user not quoted */
		"\"alice\" x",               /* secret not quoted */
		"\"alice\" \"unterminated",  /* secret never closed */
		"\"unterminated",            /* user never closed */
		"\"\" \"x\"",                /* empty user */
		"\"alice\"\"x\"",            /* no blank between the fields */
		"\"alice\" \"x\"junk",       /* text glued to the secret */
		"\"alice\"",                 /* no secret */
		"# not a comment in userlist.txt",
	};
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		struct config cfg = { 0 };
		char content[256], where[600];
		const char *path;
		snprintf(content, sizeof(content), "; ok\n\"ok\" \"fine\"\n%s\n\"later\" \"x\"\n",
			 broken[i]);
		path = named_file("broken.txt", content);
		snprintf(where, sizeof(where), "%s:3: ", path);
		err[0] = '\0';
		cr_expect_eq(config_load_auth_file(&cfg, path, err, sizeof(err)), -1, "'%s'",
			     broken[i]);
		cr_expect(strncmp(err, where, strlen(where)) == 0, "'%s': err '%s'", broken[i], err);
		cr_expect_eq(cfg.nsecrets, 0);
		cr_expect_null(cfg.secrets, "a failed load leaves the old list alone");
	}
}

Test(config_userlist, auth_file_relative_to_config_dir)
{
	char ini[256];
	struct config *c;
	char expect[600];
	named_file("users.txt", "\"u\" \"md5abcdef\"\n");
	snprintf(ini, sizeof(ini), "[pgbouncer]\nauth_type = md5\nauth_file = users.txt\n");
	c = load_path(named_file("pgring.ini", ini));
	snprintf(expect, sizeof(expect), "%s/users.txt", tmpdir);
	expect_str(c->auth_file, expect);
	expect_str(config_find_secret(c, "u"), "md5abcdef");
	cr_expect_eq(nwarns, 0, "first warning: %s", nwarns ? warns[0] : "");
	config_free(c);
}

Test(config_userlist, missing_auth_file_is_an_error_when_passwords_are_needed)
{
	static const char *const need[] = { "plain", "md5", "scram-sha-256" };
	for (size_t i = 0; i < 3; i++) {
		char ini[256], where[600];
		struct config *c = NULL;
		const char *path;
		snprintf(ini, sizeof(ini), "[pgring]\nauth_type = %s\nauth_file = nope.txt\n", need[i]);
		path = named_file("pgring.ini", ini);
		snprintf(where, sizeof(where), "%s:3: ", path);
		err[0] = '\0';
		cr_expect_eq(config_load(path, &c, err, sizeof(err), on_warn), -1, "%s", need[i]);
		cr_expect(strncmp(err, where, strlen(where)) == 0, "err '%s'", err);
		cr_expect(strstr(err, tmpdir) && strstr(err, "/nope.txt"), "path in '%s'", err);
	}
}

Test(config_userlist, missing_auth_file_only_warns_for_trust)
{
	struct config *c = load("[pgring]\nauth_type = trust\nauth_file = /nonexistent/users.txt\n");
	cr_expect_eq(c->nsecrets, 0);
	cr_expect_eq(warned("/nonexistent/users.txt"), 1);
	config_free(c);
}

Test(config_userlist, broken_auth_file_fails_config_load)
{
	struct config *c = NULL;
	char where[600];
	const char *users = named_file("users.txt", "\"a\" \"b\"\nbroken\n");
	const char *path = named_file("pgring.ini", "[pgring]\nauth_file = users.txt\n");
	cr_expect_eq(config_load(path, &c, err, sizeof(err), on_warn), -1);
	snprintf(where, sizeof(where), "%s:2: ", users);
	cr_expect(strncmp(err, where, strlen(where)) == 0, "err '%s', expected '%s'", err, where);
}

/* ---- precedence: user > database > global -------------------------------- */

Test(config_precedence, pool_mode_and_size)
{
	struct config *c = load("[pgring]\npool_mode = session\ndefault_pool_size = 20\n"
				"[databases]\n"
				"plain = host=a\n"
				"tx = host=a pool_mode=transaction pool_size=5\n"
				"[users]\n"
				"stmt = pool_mode=statement pool_size=2\n"
				"sizeonly = pool_size=9\n"
				"limited = max_user_connections=3\n");
	const struct config_db *plain = config_find_db(c, "plain"), *tx = config_find_db(c, "tx");
	const struct config_user *stmt = config_find_user(c, "stmt");
	const struct config_user *sizeonly = config_find_user(c, "sizeonly");
	const struct config_user *limited = config_find_user(c, "limited");
	cr_assert(plain && tx && stmt && sizeonly && limited);

	cr_expect_eq(config_pool_mode(c, NULL, NULL), POOL_SESSION);
	cr_expect_eq(config_pool_mode(c, plain, NULL), POOL_SESSION);
	cr_expect_eq(config_pool_mode(c, tx, NULL), POOL_TRANSACTION);
	cr_expect_eq(config_pool_mode(c, tx, stmt), POOL_STATEMENT);
	cr_expect_eq(config_pool_mode(c, plain, stmt), POOL_STATEMENT);
	cr_expect_eq(config_pool_mode(c, tx, sizeonly), POOL_TRANSACTION);
	cr_expect_eq(config_pool_mode(c, NULL, limited), POOL_SESSION);

	cr_expect_eq(config_pool_size(c, NULL, NULL), 20);
	cr_expect_eq(config_pool_size(c, plain, NULL), 20);
	cr_expect_eq(config_pool_size(c, tx, NULL), 5);
	cr_expect_eq(config_pool_size(c, tx, stmt), 2);
	cr_expect_eq(config_pool_size(c, plain, sizeonly), 9);
	cr_expect_eq(config_pool_size(c, tx, limited), 5);
	config_free(c);
}

Test(config_precedence, names)
{
	cr_expect_str_eq(config_pool_mode_name(POOL_SESSION), "session");
	cr_expect_str_eq(config_pool_mode_name(POOL_TRANSACTION), "transaction");
	cr_expect_str_eq(config_pool_mode_name(POOL_STATEMENT), "statement");
	cr_expect_str_eq(config_pool_mode_name(-1), "unknown");
	cr_expect_str_eq(config_auth_type_name(AUTH_TRUST), "trust");
	cr_expect_str_eq(config_auth_type_name(AUTH_ANY), "any");
	cr_expect_str_eq(config_auth_type_name(AUTH_PLAIN), "plain");
	cr_expect_str_eq(config_auth_type_name(AUTH_MD5), "md5");
	cr_expect_str_eq(config_auth_type_name(AUTH_SCRAM), "scram-sha-256");
	cr_expect_str_eq(config_auth_type_name(99), "unknown");
}

/* ---- clusters and routing ------------------------------------------------ */

TestSuite(config_clusters, .init = setup, .fini = teardown);

static const char cluster_ini[] =
	"[pgring]\n"
	"max_lag = 32MB\n"
	"health_check_interval = 250ms\n"
	"health_check_failures = 3\n"
	"failover_timeout = 10s\n"
	"[cluster.main]\n"
	"max_lag = 1MB\n"
	"pg1 = host=10.0.0.1 port=5433 role=primary\n"
	"pg2 = host=10.0.0.2 weight=3 max_lag=64kB\n"
	"pg3 = host=10.0.0.3 weight=0\n"
	"[cluster.other]\n"
	"solo = host=10.0.1.1\n"
	"[databases]\n"
	"app = cluster=main dbname=appdb read_write_split=on target=any\n"
	"plain = host=10.9.9.9 port=6000\n"
	"* = cluster=other\n";

Test(config_clusters, nodes_weights_and_lag_limits)
{
	struct config *c = load(cluster_ini);
	cr_assert_eq(c->nclusters, 2);
	const struct config_cluster *m = config_find_cluster(c, "main");
	cr_assert_not_null(m);
	cr_assert_eq(m->nnodes, 3);
	expect_str(m->nodes[0].host, "10.0.0.1");
	cr_expect_eq(m->nodes[0].port, 5433);
	expect_str(m->nodes[0].role, "primary");
	cr_expect_eq(m->nodes[1].port, 5432, "port defaults to 5432");
	cr_expect_eq(m->nodes[1].weight, 3);
	cr_expect_eq(m->nodes[0].weight, 1, "weight defaults to 1");
	cr_expect_eq(m->nodes[2].weight, 0);
	cr_expect_eq(config_node_max_lag(c, m, &m->nodes[1]), 64 * 1024, "the node's own limit");
	cr_expect_eq(config_node_max_lag(c, m, &m->nodes[0]), 1024 * 1024, "the cluster's limit");
	const struct config_cluster *o = config_find_cluster(c, "other");
	cr_expect_eq(config_node_max_lag(c, o, &o->nodes[0]), 32 * 1024 * 1024, "the global limit");
	expect_time(c->health_check_interval, 0.25);
	cr_expect_eq(c->health_check_failures, 3);
	expect_time(c->failover_timeout, 10);
	config_free(c);
}

Test(config_clusters, routing_defaults)
{
	struct config *c = load("[pgring]\n[databases]\na = host=x\n");
	cr_expect_eq(c->target, TARGET_PRIMARY);
	cr_expect_not(c->read_write_split);
	cr_expect_eq(c->max_lag, 16 * 1024 * 1024);
	expect_str(c->health_check_user, "postgres");
	expect_str(c->health_check_dbname, "postgres");
	expect_time(c->health_check_interval, 1);
	expect_time(c->health_check_timeout, 2);
	cr_expect_eq(c->health_check_failures, 2);
	expect_time(c->failover_timeout, 30);
	expect_time(c->server_login_retry, 5);
	cr_expect_eq(config_db_target(c, &c->dbs[0]), TARGET_PRIMARY);
	cr_expect_not(config_db_split(c, &c->dbs[0]));
	config_free(c);
}

Test(config_clusters, database_names_pick_clusters)
{
	struct config *c = load(cluster_ini);
	const struct config_cluster *cl;
	size_t base;
	const struct config_db *db = config_resolve_db(c, "app", &cl, &base);
	cr_assert_not_null(db);
	cr_expect(cl && strcmp(cl->name, "main") == 0);
	cr_expect_eq(base, 3);
	cr_expect_eq(config_db_target(c, db), TARGET_ANY);
	cr_expect(config_db_split(c, db));
	db = config_resolve_db(c, "plain", &cl, &base);
	cr_expect(db && strcmp(db->name, "plain") == 0);
	cr_expect_null(cl, "an entry with its own host has no cluster");
	db = config_resolve_db(c, "plain@main", &cl, &base);
	cr_expect(db && strcmp(db->name, "plain") == 0, "db@cluster takes the entry of db");
	cr_expect(cl && strcmp(cl->name, "main") == 0, "and the cluster after the @");
	cr_expect_eq(base, 5);
	db = config_resolve_db(c, "shop@other", &cl, &base);
	cr_expect(db && strcmp(db->name, "*") == 0, "an unknown db falls back to *");
	cr_expect(cl && strcmp(cl->name, "other") == 0);
	db = config_resolve_db(c, "shop", &cl, &base);
	cr_expect(cl && strcmp(cl->name, "other") == 0, "* names a cluster");
	db = config_resolve_db(c, "me@example.com", &cl, &base);
	cr_expect(db && strcmp(db->name, "*") == 0, "an @ that names no cluster is part of the name");
	cr_expect(cl && strcmp(cl->name, "other") == 0);
	cr_expect_eq(base, strlen("me@example.com"));
	config_free(c);
}

Test(config_clusters, target_names)
{
	cr_expect_eq(config_target_parse("primary"), TARGET_PRIMARY);
	cr_expect_eq(config_target_parse("read-write"), TARGET_PRIMARY);
	cr_expect_eq(config_target_parse("REPLICA"), TARGET_REPLICA);
	cr_expect_eq(config_target_parse("read-only"), TARGET_REPLICA);
	cr_expect_eq(config_target_parse("prefer-standby"), TARGET_REPLICA);
	cr_expect_eq(config_target_parse("standby"), TARGET_REPLICA);
	cr_expect_eq(config_target_parse("any"), TARGET_ANY);
	cr_expect_eq(config_target_parse("sometimes"), TARGET_UNSET);
	expect_str(config_target_name(TARGET_REPLICA), "replica");
}

static void expect_load_error(const char *ini, const char *needle)
{
	struct config *c = NULL;
	err[0] = '\0';
	cr_expect_eq(config_load(tmp_file(ini), &c, err, sizeof err, on_warn), -1, "accepted: %s", ini);
	cr_expect(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
	config_free(c);
}

Test(config_clusters, mistakes_are_errors)
{
	expect_load_error("[cluster.e]\n", "has no nodes");
	expect_load_error("[cluster.e]\na = host=x role=primary\nb = host=y role=primary\n", "more than one");
	expect_load_error("[cluster.e]\na = host=x role=leader\n", "role must be");
	expect_load_error("[cluster.e]\na = host=x\na = host=y\n", "defined twice");
	expect_load_error("[cluster.e]\na = host=x weight=-1\n", "weight");
	expect_load_error("[cluster.e]\na = host=x max_lag=lots\n", "max_lag");
	expect_load_error("[cluster.e]\na = host=x colour=red\n", "unknown parameter");
	expect_load_error("[cluster.b@d]\na = host=x\n", "bad cluster name");
	expect_load_error("[databases]\nx = cluster=nowhere\n", "no [cluster.nowhere]");
	expect_load_error("[cluster.e]\na = host=x\n[databases]\nx = cluster=e host=y\n", "host and cluster");
	expect_load_error("[databases]\nx = host=y target=leader\n", "target");
	expect_load_error("[databases]\nx = host=y read_write_split=maybe\n", "read_write_split");
	expect_load_error("[pgring]\ntarget = upstairs\n", "target");
	expect_load_error("[pgring]\nhealth_check_failures = 0\n", "health_check_failures");
}

Test(config_clusters, sections_of_the_same_name_add_up)
{
	struct config *c = load("[cluster.m]\na = host=x\n[pgring]\n[cluster.m]\nb = host=y\n");
	cr_assert_eq(c->nclusters, 1);
	cr_expect_eq(c->clusters[0].nnodes, 2);
	config_free(c);
}

/* ---- limits on what is read ---------------------------------------------- */

TestSuite(config_limits, .init = setup, .fini = teardown);

static void expect_prefix(const char *s, const char *prefix)
{
	cr_expect(strncmp(s, prefix, strlen(prefix)) == 0, "'%s' should start with '%s'", s, prefix);
}

/* config_load(path) fails; err starts with where and contains needle. */
static void expect_refused(const char *path, const char *where, const char *needle)
{
	struct config *c = NULL;
	err[0] = '\0';
	cr_expect_eq(config_load(path, &c, err, sizeof err, on_warn), -1, "%s was accepted", path);
	cr_expect_null(c);
	expect_prefix(err, where);
	cr_expect(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
	config_free(c);
}

/* A sparse file of CONFIG_FILE_MAX + 1 bytes: the size is refused before reading. */
static const char *oversized_file(const char *name)
{
	const char *path = named_file(name, "");
	cr_assert_eq(truncate(path, (off_t)CONFIG_FILE_MAX + 1), 0, "truncate: %s", strerror(errno));
	return path;
}

Test(config_limits, config_file_over_the_size_limit, .timeout = 20)
{
	char ini[1024], where[600];
	const char *big = oversized_file("big.ini"), *path;
	snprintf(where, sizeof where, "%s: ", big);
	expect_refused(big, where, "larger than 64 MB");
	snprintf(ini, sizeof ini, "[pgring]\n%%include %s\n", big);
	path = named_file("main.ini", ini);
	snprintf(where, sizeof where, "%s:2: ", path);
	expect_refused(path, where, "larger than 64 MB");
}

Test(config_limits, auth_file_over_the_size_limit, .timeout = 20)
{
	struct config cfg = { 0 };
	char where[600];
	const char *users = oversized_file("users.txt");
	const char *path = named_file("pgring.ini", "[pgring]\nauth_file = users.txt\n");
	snprintf(where, sizeof where, "%s:2: ", path);
	expect_refused(path, where, "larger than 64 MB");
	cr_expect(strstr(err, users) != NULL, "error '%s' names the file", err);
	cr_expect_eq(config_load_auth_file(&cfg, users, err, sizeof err), -1);
	snprintf(where, sizeof where, "%s: ", users);
	expect_prefix(err, where);
	cr_expect(strstr(err, "larger than 64 MB") != NULL, "err: %s", err);
	cr_expect_null(cfg.secrets);
}

/* An ini with a line of exactly len bytes (before its newline) at line 3. */
static char *ini_with_line(const char *start, size_t len)
{
	char *ini = malloc(len + 64), *p;
	cr_assert_not_null(ini);
	p = ini + sprintf(ini, "[pgring]\n; next\n%s", start);
	memset(p, 'x', len - strlen(start));
	strcpy(p + len - strlen(start), "\nverbose = 2\n");
	return ini;
}

Test(config_limits, config_line_over_the_length_limit)
{
	char where[600];
	const char *path;
	struct config *c;
	/* the longest line that is allowed, as a value and as a comment */
	char *ini = ini_with_line("logfile = ", CONFIG_LINE_MAX);
	c = load(ini);
	cr_assert_not_null(c->logfile);
	cr_expect_eq(strlen(c->logfile), CONFIG_LINE_MAX - strlen("logfile = "));
	cr_expect_eq(c->verbose, 2);
	config_free(c);
	free(ini);
	c = load(ini = ini_with_line("; ", CONFIG_LINE_MAX));
	cr_expect_eq(c->verbose, 2);
	config_free(c);
	free(ini);
	/* one byte more: refused even in a comment (used to be read whatever its length) */
	path = tmp_file(ini = ini_with_line("; ", CONFIG_LINE_MAX + 1));
	free(ini);
	snprintf(where, sizeof where, "%s:3: ", path);
	expect_refused(path, where, "line longer than 64 kB");
}

Test(config_limits, auth_file_line_over_the_length_limit)
{
	struct config cfg = { 0 };
	char where[600], *content = malloc(CONFIG_LINE_MAX + 100), *p;
	const char *path;
	cr_assert_not_null(content);
	p = content + sprintf(content, "\"ok\" \"fine\"\n\"big\" \"");
	memset(p, 's', CONFIG_LINE_MAX);
	strcpy(p + CONFIG_LINE_MAX, "\"\n");
	path = named_file("users.txt", content);
	free(content);
	cr_expect_eq(config_load_auth_file(&cfg, path, err, sizeof err), -1, "a 64 kB secret was accepted");
	snprintf(where, sizeof where, "%s:2: ", path);
	expect_prefix(err, where);
	cr_expect(strstr(err, "line longer than 64 kB") != NULL, "err: %s", err);
	cr_expect_null(cfg.secrets);
}

Test(config_limits, dev_zero_is_refused_at_once, .timeout = 10)
{
	struct config cfg = { 0 };
	char ini[1024], where[600];
	const char *path = named_file("pgring.ini", "[pgring]\nauth_file = /dev/zero\n");
	snprintf(where, sizeof where, "%s:2: ", path);
	expect_refused(path, where, "cannot use auth_file /dev/zero: a character device");
	expect_refused("/dev/zero", "/dev/zero: ", "not a regular file");
	snprintf(ini, sizeof ini, "[pgring]\n%%include /dev/zero\n");
	path = named_file("inc.ini", ini);
	snprintf(where, sizeof where, "%s:2: ", path);
	expect_refused(path, where, "/dev/zero: a character device");
	cr_expect_eq(config_load_auth_file(&cfg, "/dev/zero", err, sizeof err), -1);
	expect_prefix(err, "/dev/zero: ");
	cr_expect_null(cfg.secrets);
}

/* open() of a FIFO without a writer blocks: the old code hung here. */
Test(config_limits, fifo_is_refused_without_blocking, .timeout = 10)
{
	char fifo[128], ini[1024], where[600];
	const char *path;
	snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
	cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
	snprintf(where, sizeof where, "%s: ", fifo);
	expect_refused(fifo, where, "a FIFO, not a regular file");
	for (int trust = 0; trust < 2; trust++) {
		snprintf(ini, sizeof ini, "[pgring]\nauth_type = %s\nauth_file = fifo\n", trust ? "trust" : "md5");
		path = named_file("pgring.ini", ini);
		snprintf(where, sizeof where, "%s:3: ", path);
		expect_refused(path, where, "a FIFO, not a regular file");
	}
	snprintf(ini, sizeof ini, "[pgring]\n%%include %s\n", fifo);
	path = named_file("inc.ini", ini);
	snprintf(where, sizeof where, "%s:2: ", path);
	expect_refused(path, where, "a FIFO");
}

Test(config_limits, directory_is_refused)
{
	char ini[1024], where[600];
	const char *path;
	snprintf(ini, sizeof ini, "[pgring]\nauth_type = trust\nauth_file = %s\n", tmpdir);
	path = named_file("pgring.ini", ini);
	snprintf(where, sizeof where, "%s:3: ", path);
	expect_refused(path, where, "a directory, not a regular file");
	snprintf(ini, sizeof ini, "[pgring]\n%%include %s\n", tmpdir);
	path = named_file("inc.ini", ini);
	snprintf(where, sizeof where, "%s:2: ", path);
	expect_refused(path, where, "a directory");
}

/* Each file is under the limit, together they are over it. */
Test(config_limits, included_files_count_towards_the_limit, .timeout = 60)
{
	size_t part = CONFIG_FILE_MAX / 8 + 1024, line = 1024, n;
	char *text = malloc(part + line), *p = text, where[600];
	const char *inc, *path;
	FILE *f;
	cr_assert_not_null(text);
	for (n = 0; n < part; n += line) {
		memset(p, 'c', line - 1);
		p[0] = ';';
		p[line - 1] = '\n';
		p += line;
	}
	inc = named_file("part.ini", "");
	cr_assert_not_null(f = fopen(inc, "w"));
	cr_assert_eq(fwrite(text, 1, (size_t)(p - text), f), (size_t)(p - text));
	fclose(f);
	free(text);
	cr_assert_not_null(f = fopen(path = named_file("main.ini", ""), "w"));
	fprintf(f, "[pgring]\n");
	for (int i = 0; i < 8; i++)
		fprintf(f, "%%include %s\n", inc);
	fclose(f);
	snprintf(where, sizeof where, "%s:", inc);
	expect_refused(path, where, "configuration with its %include files longer than 64 MB");
	/* seven of them are fine */
	cr_assert_not_null(f = fopen(path, "w"));
	fprintf(f, "[pgring]\nverbose = 4\n");
	for (int i = 0; i < 7; i++)
		fprintf(f, "%%include %s\n", inc);
	fclose(f);
	struct config *c = load_path(path);
	cr_expect_eq(c->verbose, 4);
	config_free(c);
}

Test(config_limits, a_userlist_of_100k_scram_users_loads, .timeout = 60)
{
	struct config cfg = { 0 };
	int n = 100000;
	char name[32];
	const char *path = named_file("users.txt", "");
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	for (int i = 0; i < n; i++)
		fprintf(f, "\"user_%06d@example.com\" \"" SCRAM_SECRET "\"\n", i);
	fclose(f);
	cr_assert_eq(config_load_auth_file(&cfg, path, err, sizeof err), 0, "%s", err);
	cr_expect_eq(cfg.nsecrets, n);
	for (int i = 0; i < n; i += 997) {
		snprintf(name, sizeof name, "user_%06d@example.com", i);
		expect_str(config_find_secret(&cfg, name), SCRAM_SECRET);
	}
	cr_expect_null(config_find_secret(&cfg, "user_100000@example.com"));
	for (int i = 0; i < cfg.nsecrets; i++) {
		free(cfg.secrets[i].user);
		free(cfg.secrets[i].secret);
	}
	free(cfg.secrets);
}

/* ---- many entries -------------------------------------------------------- */

TestSuite(config_scale, .init = setup, .fini = teardown);

/* n [databases] entries dbI (host hI), n [users] entries uI, n/10 clusters cK
 * (every tenth database names one), then again db7, db(n-1) and u3 (the later
 * lines win) and a "*" entry. */
static char *many_entries(int n, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	cr_assert_not_null(f);
	fprintf(f, "[pgring]\nauth_type = trust\n");
	for (int k = 0; k < n / 10; k++)
		fprintf(f, "[cluster.c%d]\nn1 = host=node%d\n", k, k);
	fprintf(f, "[databases]\n");
	for (int i = 0; i < n; i++) {
		if (i % 10 == 0)
			fprintf(f, "db%d = dbname=real%d cluster=c%d pool_size=%d\n", i, i, i / 10, i % 100);
		else
			fprintf(f, "db%d = host=h%d dbname=real%d pool_size=%d\n", i, i, i, i % 100);
	}
	fprintf(f, "[users]\n");
	for (int i = 0; i < n; i++)
		fprintf(f, "u%d = pool_size=%d\n", i, i % 50);
	fprintf(f, "[databases]\ndb7 = host=again\ndb%d = host=last\n* = host=star\n[users]\nu3 = pool_size=99\n",
		n - 1);
	cr_assert_eq(fclose(f), 0);
	return text;
}

Test(config_scale, twenty_thousand_entries_with_duplicates, .timeout = 120)
{
	int n = 20000;
	size_t len;
	char *text = many_entries(n, &len), name[64];
	const char *path = named_file("many.ini", "");
	const struct config_cluster *cl;
	const struct config_db *db;
	size_t base;
	write_all(path, text, len);
	free(text);
	struct config *c = load_path(path);
	cr_assert_eq(c->ndbs, n + 1, "the duplicates replace, the '*' adds");
	cr_assert_eq(c->nusers, n);
	cr_assert_eq(c->nclusters, n / 10);
	cr_expect_eq(warned("database 'db7' is defined again"), 1);
	cr_expect_eq(warned("is defined again"), 3);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "db%d", i);
		cr_assert_not_null(db = config_find_db(c, name), "%s", name);
		cr_assert_str_eq(db->name, name);
		if (i == 7 || i == n - 1) {
			expect_str(db->host, i == 7 ? "again" : "last");
			cr_expect_null(db->dbname, "the later line replaces the whole entry");
		} else {
			snprintf(name, sizeof name, "real%d", i);
			expect_str(db->dbname, name);
			cr_expect_eq(db->pool_size, i % 100);
		}
		snprintf(name, sizeof name, "u%d", i);
		const struct config_user *u = config_find_user(c, name);
		cr_assert_not_null(u, "%s", name);
		cr_assert_str_eq(u->name, name);
		cr_expect_eq(u->pool_size, i == 3 ? 99 : i % 50);
	}
	cr_expect_eq(c->dbs[7].line, config_find_db(c, "db7")->line, "replaced in place");
	expect_str(config_find_db(c, "db20000")->name, "*");
	expect_str(config_find_db(c, "")->name, "*");
	cr_expect_null(config_find_user(c, "u20000"));
	cr_expect_null(config_find_user(c, "u"));
	/* names that pick clusters */
	db = config_resolve_db(c, "db40", &cl, &base);
	cr_assert_not_null(db);
	cr_assert_not_null(cl);
	expect_str(cl->name, "c4");
	expect_str(cl->nodes[0].host, "node4");
	db = config_resolve_db(c, "db41@c1999", &cl, &base);
	cr_assert_not_null(db);
	expect_str(db->name, "db41");
	expect_str(cl->name, "c1999");
	cr_expect_eq(base, 4);
	db = config_resolve_db(c, "nosuch@c5", &cl, &base);
	expect_str(db->name, "*");
	expect_str(cl->name, "c5");
	cr_expect_null(config_find_cluster(c, "c2000"));
	config_free(c);
}

static double cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds to load n entries of each kind, the best of `tries`. */
static double load_time(int n, int tries)
{
	size_t len;
	char *text = many_entries(n, &len), file[32];
	double best = 1e9;
	snprintf(file, sizeof file, "n%d.ini", n);
	const char *path = named_file(file, "");
	write_all(path, text, len);
	free(text);
	for (int i = 0; i < tries; i++) {
		double t0 = cpu_seconds();
		struct config *c = load_path(path);
		double t = cpu_seconds() - t0;
		config_free(c);
		best = t < best ? t : best;
	}
	return best;
}

/* 32 times the entries may take at most 200 times as long: linear is 32 to 60
 * (the bigger config fits the caches less well, other processes disturb); the
 * duplicate checks by scanning made it over 1000. */
Test(config_scale, loading_time_grows_linearly, .timeout = 300)
{
	double small = load_time(1000, 5), big = load_time(32000, 2);
	cr_log_info("1,000 entries: %.4f s, 32,000: %.4f s (%.0fx)", small, big, big / small);
	cr_expect_lt(big, small * 200, "1,000 entries: %.4f s, 32,000: %.4f s (%.0fx)", small, big,
		     big / small);
}

/* A struct config put together by hand has no index: the lookups still work. */
Test(config_scale, lookups_without_an_index)
{
	struct config_db dbs[] = { { .name = "a" }, { .name = "*" }, { .name = "b" } };
	struct config_user users[] = { { .name = "x" }, { .name = "y" } };
	struct config cfg = { .dbs = dbs, .ndbs = 3, .users = users, .nusers = 2 };
	cr_expect_eq(config_find_db(&cfg, "b"), &dbs[2]);
	cr_expect_eq(config_find_db(&cfg, "c"), &dbs[1]);
	cr_expect_eq(config_find_user(&cfg, "y"), &users[1]);
	cr_expect_null(config_find_user(&cfg, "z"));
	cr_expect_null(config_find_cluster(&cfg, "a"));
}

/* ---- TLS and the security settings pgring refuses ------------------------ */

TestSuite(config_tls, .init = setup, .fini = teardown);

Test(config_tls, defaults_match_the_header)
{
	struct config *c = load("[databases]\napp = host=x\n[cluster.m]\nn = host=y\n");
	cr_expect_eq(c->client_tls_sslmode, SSLMODE_DISABLE);
	cr_expect_null(c->client_tls_key_file);
	cr_expect_null(c->client_tls_cert_file);
	cr_expect_null(c->client_tls_ca_file);
	expect_str(c->client_tls_protocols, "secure");
	expect_str(c->client_tls_ciphers, "default");
	cr_expect_null(c->client_tls13_ciphers, "NULL: the library's default");
	expect_str(c->client_tls_dheparams, "auto");
	expect_str(c->client_tls_ecdhcurve, "auto");
	cr_expect_eq(c->server_tls_sslmode, SSLMODE_PREFER, "PgBouncer's default");
	cr_expect_null(c->server_tls_ca_file);
	cr_expect_null(c->server_tls_key_file);
	cr_expect_null(c->server_tls_cert_file);
	expect_str(c->server_tls_protocols, "secure");
	expect_str(c->server_tls_ciphers, "default");
	cr_expect_null(c->server_tls13_ciphers);
	cr_expect_eq(config_find_db(c, "app")->server_tls_sslmode, -1);
	cr_expect_eq(c->clusters[0].nodes[0].server_tls_sslmode, -1);
	cr_expect_eq(config_server_sslmode(c, config_find_db(c, "app"), &c->clusters[0].nodes[0]),
		     SSLMODE_PREFER);
	cr_expect_eq(config_server_sslmode(c, NULL, NULL), SSLMODE_PREFER);
	cr_expect_eq(warned("tls"), 0, "first warning: %s", nwarns ? warns[0] : "");
	config_free(c);
}

/* Every TLS key set; the files relative to the config's directory, as auth_file. */
Test(config_tls, every_key_and_relative_paths)
{
	char expect[600];
	struct config *c = load_path(named_file("pgring.ini",
		"[pgbouncer]\n"
		"auth_type = cert\n"
		"client_tls_sslmode = verify-full\n"
		"client_tls_key_file = pgring.key\n"
		"client_tls_cert_file = certs/pgring.crt\n"
		"client_tls_ca_file = /etc/ssl/clients.crt\n"
		"client_tls_protocols = tlsv1.3\n"
		"client_tls_ciphers = fast\n"
		"client_tls13_ciphers = TLS_AES_128_GCM_SHA256\n"
		"client_tls_dheparams = none\n"
		"client_tls_ecdhcurve = X25519:prime256v1\n"
		"server_tls_sslmode = verify-ca\n"
		"server_tls_ca_file = ca.crt\n"
		"server_tls_key_file = ../client.key\n"
		"server_tls_cert_file = client.crt\n"
		"server_tls_protocols = tlsv1.2, tlsv1.3\n"
		"server_tls_ciphers = HIGH\n"
		"server_tls13_ciphers = TLS_CHACHA20_POLY1305_SHA256\n"));
	cr_expect_eq(c->auth_type, AUTH_CERT);
	cr_expect_eq(c->client_tls_sslmode, SSLMODE_VERIFY_FULL);
	snprintf(expect, sizeof expect, "%s/pgring.key", tmpdir);
	expect_str(c->client_tls_key_file, expect);
	snprintf(expect, sizeof expect, "%s/certs/pgring.crt", tmpdir);
	expect_str(c->client_tls_cert_file, expect);
	expect_str(c->client_tls_ca_file, "/etc/ssl/clients.crt");
	expect_str(c->client_tls_protocols, "tlsv1.3");
	expect_str(c->client_tls_ciphers, "fast");
	expect_str(c->client_tls13_ciphers, "TLS_AES_128_GCM_SHA256");
	expect_str(c->client_tls_dheparams, "none");
	expect_str(c->client_tls_ecdhcurve, "X25519:prime256v1");
	cr_expect_eq(c->server_tls_sslmode, SSLMODE_VERIFY_CA);
	snprintf(expect, sizeof expect, "%s/ca.crt", tmpdir);
	expect_str(c->server_tls_ca_file, expect);
	snprintf(expect, sizeof expect, "%s/../client.key", tmpdir);
	expect_str(c->server_tls_key_file, expect);
	snprintf(expect, sizeof expect, "%s/client.crt", tmpdir);
	expect_str(c->server_tls_cert_file, expect);
	expect_str(c->server_tls_protocols, "tlsv1.2, tlsv1.3");
	expect_str(c->server_tls_ciphers, "HIGH");
	expect_str(c->server_tls13_ciphers, "TLS_CHACHA20_POLY1305_SHA256");
	cr_expect_eq(nwarns, 0, "first warning: %s", nwarns ? warns[0] : "");
	config_free(c);
}

Test(config_tls, every_sslmode_on_both_sides)
{
	static const struct { const char *text; int mode; } modes[] = {
		{ "disable", SSLMODE_DISABLE }, { "allow", SSLMODE_ALLOW },
		{ "prefer", SSLMODE_PREFER }, { "require", SSLMODE_REQUIRE },
		{ "verify-ca", SSLMODE_VERIFY_CA }, { "Verify-Full", SSLMODE_VERIFY_FULL },
	};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		char ini[512];
		struct config *c;
		snprintf(ini, sizeof ini, "[pgring]\nclient_tls_sslmode = %s\nserver_tls_sslmode = %s\n"
			 "client_tls_key_file = /k\nclient_tls_cert_file = /c\nclient_tls_ca_file = /ca\n"
			 "server_tls_ca_file = /sca\n", modes[i].text, modes[i].text);
		c = load(ini);
		cr_expect_eq(c->client_tls_sslmode, modes[i].mode, "%s", modes[i].text);
		cr_expect_eq(c->server_tls_sslmode, modes[i].mode, "%s", modes[i].text);
		cr_expect(strcasecmp(config_sslmode_name(modes[i].mode), modes[i].text) == 0);
		config_free(c);
	}
	expect_str(config_sslmode_name(SSLMODE_VERIFY_CA), "verify-ca");
	expect_str(config_sslmode_name(-1), "unknown");
	expect_str(config_sslmode_name(SSLMODE_VERIFY_FULL + 1), "unknown");
}

Test(config_tls, an_empty_value_gives_the_default)
{
	struct config *c = load("[pgring]\nclient_tls_protocols = tlsv1.3\nclient_tls_protocols =\n"
				"client_tls_ciphers =\nserver_tls_ciphers =\nclient_tls_dheparams =\n"
				"client_tls_ecdhcurve =\nserver_tls_protocols =\nclient_tls13_ciphers =\n"
				"client_tls_key_file =\nserver_tls_ca_file =\n");
	expect_str(c->client_tls_protocols, "secure");
	expect_str(c->client_tls_ciphers, "default");
	expect_str(c->server_tls_ciphers, "default");
	expect_str(c->client_tls_dheparams, "auto");
	expect_str(c->client_tls_ecdhcurve, "auto");
	expect_str(c->server_tls_protocols, "secure");
	cr_expect_null(c->client_tls13_ciphers);
	cr_expect_null(c->client_tls_key_file);
	cr_expect_null(c->server_tls_ca_file);
	config_free(c);
}

/* A node's sslmode overrides its database's, which overrides server_tls_sslmode;
 * sslmode is libpq's name for server_tls_sslmode. */
Test(config_tls, per_database_and_node_sslmode)
{
	struct config *c = load("[pgring]\nserver_tls_sslmode = require\nserver_tls_ca_file = /ca\n"
				"[databases]\n"
				"a = host=x sslmode=verify-full\n"
				"b = host=x server_tls_sslmode=disable\n"
				"c = host=x\n"
				"d = cluster=m\n"
				"[cluster.m]\n"
				"n1 = host=h sslmode=allow\n"
				"n2 = host=h2 server_tls_sslmode=verify-ca\n"
				"n3 = host=h3\n");
	const struct config_db *a = config_find_db(c, "a"), *b = config_find_db(c, "b");
	const struct config_db *cc = config_find_db(c, "c"), *d = config_find_db(c, "d");
	const struct config_node *n = c->clusters[0].nodes;
	cr_assert(a && b && cc && d);
	cr_assert_eq(c->clusters[0].nnodes, 3);
	cr_expect_eq(a->server_tls_sslmode, SSLMODE_VERIFY_FULL);
	cr_expect_eq(b->server_tls_sslmode, SSLMODE_DISABLE);
	cr_expect_eq(cc->server_tls_sslmode, -1);
	cr_expect_eq(n[0].server_tls_sslmode, SSLMODE_ALLOW);
	cr_expect_eq(n[1].server_tls_sslmode, SSLMODE_VERIFY_CA);
	cr_expect_eq(n[2].server_tls_sslmode, -1);
	cr_expect_eq(config_server_sslmode(c, a, NULL), SSLMODE_VERIFY_FULL);
	cr_expect_eq(config_server_sslmode(c, b, NULL), SSLMODE_DISABLE);
	cr_expect_eq(config_server_sslmode(c, cc, NULL), SSLMODE_REQUIRE);
	cr_expect_eq(config_server_sslmode(c, NULL, NULL), SSLMODE_REQUIRE);
	cr_expect_eq(config_server_sslmode(c, d, &n[0]), SSLMODE_ALLOW, "the node decides");
	cr_expect_eq(config_server_sslmode(c, a, &n[0]), SSLMODE_ALLOW, "the node decides");
	cr_expect_eq(config_server_sslmode(c, a, &n[2]), SSLMODE_VERIFY_FULL, "then the database");
	cr_expect_eq(config_server_sslmode(c, d, &n[2]), SSLMODE_REQUIRE, "then the global one");
	cr_expect_eq(config_server_sslmode(c, NULL, &n[1]), SSLMODE_VERIFY_CA);
	cr_expect_eq(config_server_sslmode(c, NULL, &n[2]), SSLMODE_REQUIRE);
	config_free(c);
}

Test(config_tls, protocol_lists)
{
	static const struct { const char *s; int mask; } good[] = {
		{ "secure", CONFIG_TLS1_2 | CONFIG_TLS1_3 }, { "all", CONFIG_TLS1_2 | CONFIG_TLS1_3 },
		{ "legacy", CONFIG_TLS1_2 | CONFIG_TLS1_3 }, { "tlsv1.2", CONFIG_TLS1_2 },
		{ "TLSv1.3", CONFIG_TLS1_3 }, { "tlsv1.2,tlsv1.3", CONFIG_TLS1_2 | CONFIG_TLS1_3 },
		{ " tlsv1.3 , tlsv1.2 ", CONFIG_TLS1_2 | CONFIG_TLS1_3 },
		{ "tlsv1.2 tlsv1.3", CONFIG_TLS1_2 | CONFIG_TLS1_3 },
		{ "tlsv1.2:tlsv1.3", CONFIG_TLS1_2 | CONFIG_TLS1_3 },
		{ "tlsv1.3,secure", CONFIG_TLS1_2 | CONFIG_TLS1_3 },
	};
	static const struct { const char *s, *needle; } bad[] = {
		{ "tlsv1", "tlsv1 is not supported by this build's TLS library" },
		{ "tlsv1.0", "tlsv1.0 is not supported by this build's TLS library" },
		{ "tlsv1.2,tlsv1.1", "tlsv1.1 is not supported by this build's TLS library" },
		{ "sslv3", "unknown protocol 'sslv3'" }, { "tlsv1.4", "unknown protocol 'tlsv1.4'" },
		{ "default", "unknown protocol" }, { ",", "no protocol" }, { "", "no protocol" },
	};
	char msg[256];
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		cr_expect_eq(config_tls_protocols(good[i].s, msg, sizeof msg), good[i].mask, "'%s': %s",
			     good[i].s, msg);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		msg[0] = '\0';
		cr_expect_eq(config_tls_protocols(bad[i].s, msg, sizeof msg), -1, "'%s'", bad[i].s);
		cr_expect(strstr(msg, bad[i].needle), "'%s': '%s' lacks '%s'", bad[i].s, msg, bad[i].needle);
	}
	cr_expect_eq(config_tls_protocols("tlsv1", NULL, 0), -1, "msg may be NULL");
}

Test(config_tls, dheparams_and_curves)
{
	struct config *c = load("[pgring]\nclient_tls_dheparams = auto\nclient_tls_ecdhcurve = auto\n");
	expect_str(c->client_tls_dheparams, "auto");
	config_free(c);
	c = load("[pgring]\nclient_tls_dheparams = NONE\n"
		 "client_tls_ecdhcurve = P-256, secp384r1 P-384:secp521r1,P-521,x25519,secp256r1\n");
	expect_str(c->client_tls_dheparams, "NONE");
	expect_str(c->client_tls_ecdhcurve, "P-256, secp384r1 P-384:secp521r1,P-521,x25519,secp256r1");
	config_free(c);
	expect_load_error("[pgring]\nclient_tls_dheparams = legacy\n", "'legacy' (1024-bit DH parameters) is not supported");
	expect_load_error("[pgring]\nclient_tls_dheparams = /etc/dh.pem\n", "client_tls_dheparams: unknown value");
	expect_load_error("[pgring]\nclient_tls_ecdhcurve = brainpoolP256r1\n", "unknown curve 'brainpoolP256r1'");
	expect_load_error("[pgring]\nclient_tls_ecdhcurve = X25519,auto\n", "unknown curve 'auto'");
	expect_load_error("[pgring]\nclient_tls_ecdhcurve = none\n", "unknown curve 'none'");
	expect_load_error("[pgring]\nclient_tls_ecdhcurve = ::\n", "no curve");
}

/* The TLS checks, each with the line it is about. */
static const struct bad_case tls_bad_cases[] = {
	{ "[pgring]\nclient_tls_sslmode = sometimes\n", 4, "client_tls_sslmode: unknown value 'sometimes'" },
	{ "[pgring]\nserver_tls_sslmode = on\n", 4, "server_tls_sslmode: unknown value 'on'" },
	{ "[databases]\na = host=x sslmode=true\n", 4, "database 'a': sslmode: unknown value 'true'" },
	{ "[cluster.m]\nn = host=x server_tls_sslmode=strict\n", 4, "server_tls_sslmode: unknown value" },
	{ "[pgring]\nclient_tls_sslmode = require\n", 4,
	  "client_tls_sslmode = require needs client_tls_key_file and client_tls_cert_file "
	  "(client_tls_key_file and client_tls_cert_file are not set)" },
	{ "[pgring]\nclient_tls_sslmode = allow\nclient_tls_key_file = k\n", 4,
	  "(client_tls_cert_file is not set)" },
	{ "[pgring]\nclient_tls_cert_file = c\nclient_tls_sslmode = prefer\n", 5,
	  "(client_tls_key_file is not set)" },
	{ "[pgring]\nclient_tls_sslmode = verify-ca\nclient_tls_key_file = k\nclient_tls_cert_file = c\n", 4,
	  "client_tls_sslmode = verify-ca needs client_tls_ca_file" },
	{ "[pgring]\nclient_tls_key_file = k\nclient_tls_cert_file = c\nclient_tls_sslmode = verify-full\n", 6,
	  "client_tls_sslmode = verify-full needs client_tls_ca_file" },
	{ "[pgring]\nserver_tls_sslmode = verify-full\n", 4,
	  "server_tls_sslmode = verify-full needs server_tls_ca_file (pgring does not fall back to the "
	  "system's CA certificates)" },
	{ "[pgring]\nserver_tls_sslmode = verify-ca\nserver_tls_ca_file =\n", 4,
	  "server_tls_sslmode = verify-ca needs server_tls_ca_file" },
	{ "[pgring]\nserver_tls_sslmode = disable\n[databases]\na = host=x\nb = host=x sslmode=verify-ca\n", 7,
	  "database 'b': sslmode verify-ca needs server_tls_ca_file" },
	{ "[cluster.m]\nn1 = host=x\nn2 = host=y server_tls_sslmode=verify-full\n", 5,
	  "cluster 'm' node 'n2': sslmode verify-full needs server_tls_ca_file" },
	{ "[pgring]\nserver_tls_key_file = k\n", 4,
	  "server_tls_key_file is set but server_tls_cert_file is not" },
	{ "[pgring]\nserver_tls_sslmode = require\nserver_tls_cert_file = c\n", 5,
	  "server_tls_cert_file is set but server_tls_key_file is not" },
	{ "[pgring]\nclient_tls_protocols = tlsv1.1,tlsv1.2\n", 4,
	  "client_tls_protocols: tlsv1.1 is not supported by this build's TLS library" },
	{ "[pgring]\nserver_tls_protocols = tlsv1\n", 4, "server_tls_protocols: tlsv1 is not supported" },
	{ "[pgring]\nserver_tls_protocols = ssl3\n", 4, "server_tls_protocols: unknown protocol 'ssl3'" },
	{ "[pgring]\nclient_tls_dheparams = legacy\n", 4, "client_tls_dheparams: 'legacy'" },
	{ "[pgring]\nclient_tls_ecdhcurve = P-256,P-192\n", 4, "client_tls_ecdhcurve: unknown curve 'P-192'" },
};

Test(config_tls, bad_settings_fail_with_file_and_line)
{
	expect_bad_cases(tls_bad_cases, sizeof tls_bad_cases / sizeof tls_bad_cases[0]);
}

/* Security settings pgring does not implement fail the load, naming the key,
 * in [pgbouncer]/[pgring] and (the auth_* ones PgBouncer has there) in
 * [databases]; an empty value asks for nothing and passes. */
Test(config, user_is_the_account_to_run_as)
{
	struct config *c = load("[pgbouncer]\nuser = postgres\n");
	cr_assert(c);
	cr_expect_str_eq(c->user, "postgres");
	cr_expect_eq(warned("'user'"), 0, "a real key, not an unknown or unimplemented one");
	config_free(c);
}

Test(config_tls, unimplemented_security_settings_are_errors)
{
	static const char *const keys[] = {
		"auth_ident_file = /etc/pgbouncer/ident.conf", "auth_ldap_options = host=ldap",
		"disable_pqexec = 1", "disable_pqexec = on",
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		char body[256], key[64];
		snprintf(key, sizeof key, "%.*s", (int)strcspn(keys[i], " "), keys[i]);
		for (int sect = 0; sect < 2; sect++) {
			struct bad_case bc = { body, 4, key };
			snprintf(body, sizeof body, "[%s]\n%s\n", sect ? "pgbouncer" : "pgring", keys[i]);
			expect_bad_cases(&bc, 1);
			cr_expect(strstr(err, "is not supported yet"), "'%s': %s", keys[i], err);
		}
	}
	nwarns = 0;
	struct config *c = load("[pgbouncer]\nauth_type = trust\nauth_hba_file =\nauth_ident_file =\n"
				"auth_query =\nauth_user =\nauth_dbname =\nauth_ldap_options =\nuser =\n"
				"disable_pqexec = 0\ndisable_pqexec = off\n");
	cr_expect_eq(nwarns, 0, "an empty value passes silently: %s", nwarns ? warns[0] : "");
	config_free(c);
	expect_load_error("[pgring]\ndisable_pqexec = sometimes\n", "disable_pqexec: 'sometimes' is not a boolean");
	expect_load_error("[users]\nu = auth_user=x\n", "unknown parameter 'auth_user'");
	expect_load_error("[databases]\napp = host=x auth_ident_file=y\n", "auth_ident_file");
	/* PgBouncer reads auth_hba_file only with auth_type = hba: without it the file
	 * would be silently ignored, so it is an error naming the line */
	struct bad_case hb = { "[pgring]\nauth_type = md5\nauth_hba_file = /etc/pgbouncer/hba.conf\n", 5,
			       "auth_hba_file is read only with auth_type = hba" };
	expect_bad_cases(&hb, 1);
}

/* auth_type cert is accepted with any client_tls_sslmode (PgBouncer's rule),
 * with a warning when that lets nobody in. pam and ldap stay errors; hba
 * needs its file. */
Test(config_tls, auth_type_cert)
{
	struct config *c = load("[pgring]\nauth_type = cert\n");
	cr_expect_eq(c->auth_type, AUTH_CERT);
	expect_str(config_auth_type_name(AUTH_CERT), "cert");
	cr_expect_eq(warned("auth_type cert with client_tls_sslmode = disable: no client can log in"), 1);
	config_free(c);
	nwarns = 0;
	c = load("[pgring]\nauth_type = cert\nclient_tls_sslmode = require\n"
		 "client_tls_key_file = /k\nclient_tls_cert_file = /c\n");
	cr_expect_eq(warned("auth_type cert without client_tls_ca_file"), 1);
	config_free(c);
	nwarns = 0;
	c = load("[pgring]\nauth_type = CERT\nclient_tls_sslmode = prefer\n"
		 "client_tls_key_file = /k\nclient_tls_cert_file = /c\nclient_tls_ca_file = /ca\n");
	cr_expect_eq(c->auth_type, AUTH_CERT);
	cr_expect_eq(nwarns, 0, "first warning: %s", nwarns ? warns[0] : "");
	config_free(c);
	expect_load_error("[pgring]\nauth_type = pam\n", "auth_type 'pam' is not supported yet");
	expect_load_error("[pgring]\nauth_type = ldap\n", "auth_type 'ldap' is not supported yet");
	expect_load_error("[pgring]\nauth_type = hba\n", "auth_type = hba needs auth_hba_file");
	expect_load_error("[pgring]\nauth_type = ldap\n", "auth_type 'ldap' is not supported yet");
}

/* The admin console's SET: config_load_with puts key = value over the file's
 * [pgring] section with the file's own checks. */
Test(config, load_with_overrides)
{
	char path[] = "/tmp/pgring-config-set-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	const char text[] = "[pgring]\nauth_type = trust\ndefault_pool_size = 3\nquery_timeout = 2\n";
	cr_assert_eq(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
	close(fd);
	char err[512];
	struct config *c = NULL;
	const char *const ov[] = { "default_pool_size", "9", "query_timeout", "500ms", NULL };
	cr_assert_eq(config_load_with(path, ov, NULL, &c, err, sizeof err, NULL), 0, "%s", err);
	cr_expect_eq(c->default_pool_size, 9);
	cr_expect_eq(c->query_timeout, 0.5);
	config_free(c);
	const char *const bad[] = { "query_timeout", "1", "default_pool_size", "lots", NULL };
	c = NULL;
	cr_expect_eq(config_load_with(path, bad, NULL, &c, err, sizeof err, NULL), -1);
	cr_expect_null(c);
	cr_expect(strstr(err, "SET:2: ") && strstr(err, "default_pool_size"), "%s", err);
	unlink(path);
}

/* Members of Patroni's scopes the file does not name: nodes after the
 * file's, marked discovered; not for a cluster with patroni_discover = off,
 * one that names the node itself, or without topology_source = etcd. A
 * cluster may then have no node in the file at all. */
Test(config, load_with_found_nodes)
{
	char path[] = "/tmp/pgring-config-found-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	const char text[] = "[pgring]\nauth_type = trust\ntopology_source = etcd\netcd_hosts = 127.0.0.1:2379\n"
			    "[cluster.a]\npatroni_scope = sa\nn1 = host=h1\n"
			    "[cluster.b]\npatroni_scope = sb\n"
			    "[cluster.c]\npatroni_discover = off\nc1 = host=h3\n"
			    "[databases]\nx = cluster=a\ny = cluster=b\n";
	cr_assert_eq(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
	close(fd);
	char err[512];
	struct config *c = NULL;
	const char *const found[] = { "a", "n2", "host=h2 port=5433", "a", "n1", "host=other", "b", "m1",
				      "host=h4 port=6000", "c", "c2", "host=h5", "gone", "z", "host=z", NULL };
	cr_assert_eq(config_load_with(path, NULL, found, &c, err, sizeof err, NULL), 0, "%s", err);
	const struct config_cluster *a = config_find_cluster(c, "a"), *b = config_find_cluster(c, "b"),
				    *cc = config_find_cluster(c, "c");
	cr_assert(a && b && cc);
	cr_assert_eq(a->nnodes, 2);
	cr_expect_str_eq(a->nodes[0].name, "n1");
	cr_expect_str_eq(a->nodes[0].host, "h1");
	cr_expect_not(a->nodes[0].discovered);
	cr_expect_str_eq(a->nodes[1].name, "n2");
	cr_expect_eq(a->nodes[1].port, 5433);
	cr_expect(a->nodes[1].discovered);
	cr_assert_eq(b->nnodes, 1);
	cr_expect_str_eq(b->nodes[0].host, "h4");
	cr_expect(b->nodes[0].discovered);
	cr_expect_eq(cc->nnodes, 1);
	cr_expect_not(cc->patroni_discover);
	config_free(c);
	/* without what etcd found, cluster b has no node: allowed, they come from Patroni */
	c = NULL;
	cr_assert_eq(config_load_with(path, NULL, NULL, &c, err, sizeof err, NULL), 0, "%s", err);
	cr_expect_eq(config_find_cluster(c, "b")->nnodes, 0);
	config_free(c);
	unlink(path);
	expect_load_error("[pgring]\nauth_type = trust\n[cluster.b]\npatroni_scope = sb\n[databases]\ny = cluster=b\n",
			  "cluster 'b' has no nodes");
	expect_load_error("[pgring]\nauth_type = trust\ntopology_source = etcd\netcd_hosts = 127.0.0.1:1\n[cluster.b]\n"
			  "patroni_discover = off\n[databases]\ny = cluster=b\n",
			  "cluster 'b' has no nodes");
	expect_load_error("[pgring]\n[cluster.b]\npatroni_discover = maybe\nn = host=x\n", "not a boolean");
}

/* auth_query's keys: PgBouncer's (global, and auth_user, auth_dbname,
 * auth_query on a database entry) and pgring's cache lifetimes. The default
 * query is PgBouncer 1.24's, which gives an expired role no secret. */
Test(config, auth_query_keys)
{
	struct config *c = load("[pgring]\nauth_type = md5\n[databases]\napp = host=x\n");
	cr_assert(c);
	cr_expect_null(c->auth_user);
	cr_expect_null(c->auth_dbname);
	cr_assert_not_null(c->auth_query);
	cr_expect(strstr(c->auth_query, "rolvaliduntil < pg_catalog.now() THEN NULL"), "%s", c->auth_query);
	cr_expect(strstr(c->auth_query, "rolname = $1"), "a parameter, never interpolation: %s", c->auth_query);
	expect_time(c->auth_cache_ttl, 30);
	expect_time(c->auth_cache_negative_ttl, 5);
	config_free(c);
	c = load("[pgring]\nauth_user = pgbouncer\nauth_dbname = postgres\n"
		 "auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1\n"
		 "auth_cache_ttl = 2min\nauth_cache_negative_ttl = 0\n"
		 "[databases]\napp = host=x auth_user=bar auth_dbname=authdb auth_query='SELECT 1, 2'\nother = host=x\n");
	cr_assert(c);
	expect_str(c->auth_user, "pgbouncer");
	expect_str(c->auth_dbname, "postgres");
	expect_str(c->auth_query, "SELECT usename, passwd FROM pg_shadow WHERE usename=$1");
	expect_time(c->auth_cache_ttl, 120);
	expect_time(c->auth_cache_negative_ttl, 0);
	const struct config_db *db = config_find_db(c, "app");
	expect_str(db->auth_user, "bar");
	expect_str(db->auth_dbname, "authdb");
	expect_str(db->auth_query, "SELECT 1, 2");
	cr_expect(authq_enabled(c, db));
	cr_expect_null(config_find_db(c, "other")->auth_user);
	cr_expect(authq_enabled(c, config_find_db(c, "other")), "the global auth_user covers it");
	config_free(c);
	c = load("[pgring]\n[databases]\napp = host=x auth_user=bar\nother = host=x\n");
	cr_assert(c);
	cr_expect(authq_enabled(c, config_find_db(c, "app")));
	cr_expect(!authq_enabled(c, config_find_db(c, "other")), "no auth_user anywhere: no lookups");
	config_free(c);
	expect_load_error("[pgring]\nauth_cache_ttl = soon\n", "auth_cache_ttl");
}

/* The fleet's keys: etcd's endpoints are addresses, topology_source is one of
 * two words and needs them, a cluster names its Patroni scope. */
Test(config, fleet_keys)
{
	struct config *c = load("[pgring]\n");
	expect_str(c->topology_source, "checks");
	cr_expect_null(c->etcd_hosts);
	expect_str(c->etcd_prefix, "/service");
	expect_str(c->etcd_pgring_prefix, "/pgring");
	expect_time(c->etcd_timeout, 2);
	expect_time(c->etcd_node_ttl, 10);
	config_free(c);
	c = load("[pgring]\ntopology_source = etcd\netcd_hosts = 127.0.0.1:2379,[::1]:2380,localhost:2381\n"
		 "node_name = edge-1\n[cluster.main]\npatroni_scope = batman\nn1 = host=10.0.0.1\n");
	expect_str(c->topology_source, "etcd");
	expect_str(c->node_name, "edge-1");
	expect_str(c->clusters[0].patroni_scope, "batman");
	cr_expect_eq(c->clusters[0].nnodes, 1, "patroni_scope is no node");
	config_free(c);
	char host[64];
	int port = 0;
	cr_expect(config_etcd_endpoint("[::1]:2380", 10, host, sizeof host, &port));
	expect_str(host, "::1");
	cr_expect_eq(port, 2380);
	cr_expect(config_etcd_endpoint("localhost:1,x", 11, host, sizeof host, &port));
	expect_str(host, "127.0.0.1");
	cr_expect_eq(port, 1);
	expect_load_error("[pgring]\ntopology_source = zookeeper\n", "neither checks nor etcd");
	expect_load_error("[pgring]\ntopology_source = etcd\n", "needs etcd_hosts");
	expect_load_error("[pgring]\netcd_hosts = etcd.example.com:2379\n", "not an address:port");
	expect_load_error("[pgring]\netcd_hosts = 127.0.0.1\n", "not an address:port");
	expect_load_error("[pgring]\netcd_hosts = 127.0.0.1:2379,127.0.0.1:99999\n", "not an address:port");
	expect_load_error("[pgring]\netcd_prefix = service\n", "must begin with /");
	expect_load_error("[cluster.main]\npatroni_scope = a/b\nn1 = host=x\n", "not a scope's name");
	expect_load_error("[pgring]\nauto_failover = on\n", "auto_failover = on needs etcd_hosts");
	expect_load_error("[pgring]\nauto_failover = on\ntopology_source = etcd\netcd_hosts = 127.0.0.1:2379\n",
			  "with Patroni, Patroni fails over");
	c = load("[pgring]\nauto_failover = on\netcd_hosts = 127.0.0.1:2379\nfailover_after = 30\nfleet_size = 3\n");
	cr_expect(c->auto_failover);
	expect_time(c->failover_after, 30);
	cr_expect_eq(c->fleet_size, 3);
	config_free(c);
}
