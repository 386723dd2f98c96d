/* tests/unit/test_admin.c: pool/admin_cmd.c, the admin console's command
 * parser: PgBouncer's grammar (words bare or "quoted", an optional argument,
 * an optional semicolon, SET key =|TO value), every command and SHOW word,
 * the arguments each needs, and the errors with their SQLSTATEs; and the
 * admin_users / stats_users list matching of pool/admin.c. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "pool/admin.h"
#include "pool/admin_int.h"

static struct admin_cmd cmd;
static char err[256], state[6];

static int parse(const char *q)
{
	err[0] = 0;
	memset(state, 0, sizeof state);
	return admin_parse(q, &cmd, err, sizeof err, state);
}

static void bad(const char *q, const char *msg)
{
	cr_assert_eq(parse(q), -1, "%s should fail", q);
	cr_assert_str_eq(state, "42601", "%s: %s", q, state);
	cr_assert_str_eq(err, msg, "%s: %s", q, err);
}

TestSuite(admin_parse);

Test(admin_parse, every_show_word_any_case)
{
	static const struct { const char *q; int show; } t[] = {
		{ "SHOW HELP", SHOW_HELP }, { "show version", SHOW_VERSION }, { "Show Config", SHOW_CONFIG },
		{ "SHOW DATABASES", SHOW_DATABASES }, { "SHOW POOLS", SHOW_POOLS }, { "SHOW CLIENTS", SHOW_CLIENTS },
		{ "SHOW SERVERS", SHOW_SERVERS }, { "SHOW STATS", SHOW_STATS }, { "SHOW STATS_TOTALS", SHOW_STATS_TOTALS },
		{ "SHOW STATS_AVERAGES", SHOW_STATS_AVERAGES }, { "SHOW TOTALS", SHOW_TOTALS }, { "SHOW LISTS", SHOW_LISTS },
		{ "SHOW USERS", SHOW_USERS }, { "SHOW MEM", SHOW_MEM }, { "SHOW DNS_HOSTS", SHOW_DNS_HOSTS },
		{ "SHOW DNS_ZONES", SHOW_DNS_ZONES }, { "SHOW STATE", SHOW_STATE }, { "SHOW PEERS", SHOW_PEERS },
		{ "SHOW PEER_POOLS", SHOW_PEER_POOLS }, { "SHOW SOCKETS", SHOW_SOCKETS },
		{ "SHOW ACTIVE_SOCKETS", SHOW_ACTIVE_SOCKETS }, { "SHOW FDS", SHOW_FDS }, { "SHOW STATUS", SHOW_STATUS },
		{ "SHOW SHARDS", SHOW_SHARDS }, { "SHOW NODES", SHOW_NODES }, { "SHOW TOPOLOGY", SHOW_TOPOLOGY },
		{ "SHOW PINS", SHOW_PINS }, { "select pools", SHOW_POOLS },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		cr_assert_eq(parse(t[i].q), 0, "%s: %s", t[i].q, err);
		cr_assert_eq(cmd.verb, ADMIN_SHOW, "%s", t[i].q);
		cr_assert_eq(cmd.show, t[i].show, "%s", t[i].q);
	}
}

Test(admin_parse, blanks_semicolon_and_quotes)
{
	cr_assert_eq(parse("  \t\nSHOW\n  POOLS ;  "), 0);
	cr_assert_eq(cmd.show, SHOW_POOLS);
	cr_assert_eq(parse("SHOW \"pools\";"), 0);
	cr_assert_eq(cmd.show, SHOW_POOLS);
	cr_assert_eq(parse("PAUSE \"my db\"\"x\""), 0);
	cr_assert_eq(cmd.verb, ADMIN_PAUSE);
	cr_assert_str_eq(cmd.arg, "my db\"x");
	cr_assert_eq(parse("   "), 0);
	cr_assert_eq(cmd.verb, ADMIN_EMPTY);
	cr_assert_eq(parse(";"), 0);
	cr_assert_eq(cmd.verb, ADMIN_EMPTY);
}

Test(admin_parse, fake_session_settings)
{
	cr_assert_eq(parse("SHOW client_encoding"), 0);
	cr_assert_eq(cmd.show, SHOW_PARAM);
	cr_assert_str_eq(cmd.arg, "client_encoding");
	cr_assert_eq(parse("show TimeZone"), 0);
	cr_assert_eq(cmd.show, SHOW_PARAM);
	cr_assert_str_eq(cmd.arg, "timezone");
}

Test(admin_parse, process_commands)
{
	static const struct { const char *q; int verb; const char *arg; } t[] = {
		{ "PAUSE", ADMIN_PAUSE, "" }, { "pause app", ADMIN_PAUSE, "app" }, { "RESUME", ADMIN_RESUME, "" },
		{ "RESUME app;", ADMIN_RESUME, "app" }, { "SUSPEND", ADMIN_SUSPEND, "" },
		{ "DISABLE app", ADMIN_DISABLE, "app" }, { "ENABLE app", ADMIN_ENABLE, "app" },
		{ "RECONNECT", ADMIN_RECONNECT, "" }, { "RECONNECT app", ADMIN_RECONNECT, "app" },
		{ "KILL", ADMIN_KILL, "" }, { "KILL app", ADMIN_KILL, "app" }, { "RELOAD", ADMIN_RELOAD, "" },
		{ "WAIT_CLOSE", ADMIN_WAIT_CLOSE, "" }, { "wait_close app", ADMIN_WAIT_CLOSE, "app" },
		{ "SHUTDOWN", ADMIN_SHUTDOWN, "" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		cr_assert_eq(parse(t[i].q), 0, "%s: %s", t[i].q, err);
		cr_assert_eq(cmd.verb, t[i].verb, "%s", t[i].q);
		cr_assert_str_eq(cmd.arg, t[i].arg, "%s", t[i].q);
	}
	cr_assert_eq(parse("SHUTDOWN WAIT_FOR_SERVERS"), 0);
	cr_assert_eq(cmd.mode, ADMIN_SHUTDOWN_WAIT_FOR_SERVERS);
	cr_assert_eq(parse("shutdown wait_for_clients"), 0);
	cr_assert_eq(cmd.mode, ADMIN_SHUTDOWN_WAIT_FOR_CLIENTS);
	cr_assert_eq(parse("SHUTDOWN"), 0);
	cr_assert_eq(cmd.mode, ADMIN_SHUTDOWN_NOW);
	cr_assert_eq(parse("DISABLE USER bob"), 0);
	cr_assert_eq(cmd.verb, ADMIN_DISABLE);
	cr_assert(cmd.of_user);
	cr_assert_str_eq(cmd.arg, "bob");
	cr_assert_eq(parse("enable user \"Bob\";"), 0);
	cr_assert_eq(cmd.verb, ADMIN_ENABLE);
	cr_assert(cmd.of_user);
	cr_assert_str_eq(cmd.arg, "Bob");
	cr_assert_eq(parse("DISABLE user"), 0);   /* a database called user */
	cr_assert(!cmd.of_user);
	cr_assert_str_eq(cmd.arg, "user");
	cr_assert_eq(parse("DISABLE app"), 0);
	cr_assert(!cmd.of_user);
	cr_assert_eq(parse("KILL_CLIENT 1234"), 0);
	cr_assert_eq(cmd.verb, ADMIN_KILL_CLIENT);
	cr_assert_eq(cmd.id, 1234);
	cr_assert_eq(parse("kill_client 18446744073709551615"), 0);
	cr_assert_eq(cmd.id, UINT64_MAX);
}

Test(admin_parse, set_forms)
{
	cr_assert_eq(parse("SET default_pool_size = 50"), 0);
	cr_assert_eq(cmd.verb, ADMIN_SET);
	cr_assert_str_eq(cmd.arg, "default_pool_size");
	cr_assert_str_eq(cmd.value, "50");
	cr_assert_eq(parse("set server_check_query to 'select ''2'''"), 0);
	cr_assert_str_eq(cmd.arg, "server_check_query");
	cr_assert_str_eq(cmd.value, "select '2'");
	cr_assert_eq(parse("SET query_timeout=1.5;"), 0);
	cr_assert_str_eq(cmd.value, "1.5");
	cr_assert_eq(parse("SET \"admin_users\" = ''"), 0);
	cr_assert_str_eq(cmd.arg, "admin_users");
	cr_assert_str_eq(cmd.value, "");
	bad("SET x", "invalid command 'SET x', use SHOW HELP;");
	bad("SET x = ", "invalid command 'SET x = ', use SHOW HELP;");
	bad("SET x = 'open", "invalid command 'SET x = 'open', use SHOW HELP;");
	bad("SETx = 1", "invalid command 'SETx = 1', use SHOW HELP;");
}

Test(admin_parse, errors)
{
	bad("FOO", "invalid command 'FOO', use SHOW HELP;");
	bad("SHOW", "invalid command 'SHOW', use SHOW HELP;");
	bad("SHOW NOPE", "invalid command 'SHOW NOPE', use SHOW HELP;");
	bad("SHOW POOLS CLIENTS", "invalid command 'SHOW POOLS CLIENTS', use SHOW HELP;");
	bad("SHOW POOLS; SHOW CLIENTS", "invalid command 'SHOW POOLS; SHOW CLIENTS', use SHOW HELP;");
	bad("PAUSE my-db", "invalid command 'PAUSE my-db', use SHOW HELP;");
	bad("PAUSE \"unterminated", "invalid command 'PAUSE \"unterminated', use SHOW HELP;");
	bad("RELOAD now", "invalid command 'RELOAD now', use SHOW HELP;");
	bad("SUSPEND app", "invalid command 'SUSPEND app', use SHOW HELP;");
	bad("SHUTDOWN later", "invalid command 'SHUTDOWN later', use SHOW HELP;");
	bad("DISABLE", "a database is required");
	bad("ENABLE;", "a database is required");
	bad("DISABLE USER bob alice", "invalid command 'DISABLE USER bob alice', use SHOW HELP;");
	bad("KILL_CLIENT", "invalid client pointer supplied");
	bad("KILL_CLIENT abc", "invalid client pointer supplied");
	bad("KILL_CLIENT 99999999999999999999999", "invalid client pointer supplied");
	char longname[200];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	char q[256];
	snprintf(q, sizeof q, "PAUSE %s", longname);
	bad(q, "bad arguments");
}

Test(admin_parse, console_names)
{
	cr_assert(admin_console_db("pgbouncer"));
	cr_assert(admin_console_db("pgring"));
	cr_assert_not(admin_console_db("PGBOUNCER"));
	cr_assert_not(admin_console_db("app"));
	cr_assert_not(admin_console_db(NULL));
	cr_assert_str_eq(admin_show_name(SHOW_ACTIVE_SOCKETS), "ACTIVE_SOCKETS");
}

TestSuite(admin_users);

Test(admin_users, lists)
{
	cr_assert(admin_user_is("admin", "admin"));
	cr_assert(admin_user_is("a, admin ,b", "admin"));
	cr_assert(admin_user_is("a,admin", "admin"));
	cr_assert(admin_user_is("admin b", "b"));
	cr_assert_not(admin_user_is("administrator", "admin"));
	cr_assert_not(admin_user_is("admin", "adm"));
	cr_assert_not(admin_user_is(NULL, "admin"));
	cr_assert_not(admin_user_is("", "admin"));
}

/* The management database (pgplex): SHOW <setting>, RESET key|ALL, and the
 * --!pgring shebang, which is SET. */
Test(admin_parse, settings_reset_and_shebang)
{
	cr_assert_eq(parse("SHOW Default_Pool_Size"), 0, "%s", err);
	cr_assert_eq(cmd.verb, ADMIN_SHOW);
	cr_assert_eq(cmd.show, SHOW_SETTING);
	cr_assert_str_eq(cmd.arg, "default_pool_size");
	cr_assert_eq(parse("SHOW client_encoding"), 0);
	cr_assert_eq(cmd.show, SHOW_PARAM, "PgBouncer's faked settings first");
	cr_assert_eq(parse("RESET query_timeout;"), 0, "%s", err);
	cr_assert_eq(cmd.verb, ADMIN_RESET);
	cr_assert_str_eq(cmd.arg, "query_timeout");
	cr_assert_eq(parse("reset ALL"), 0, "%s", err);
	cr_assert_str_eq(cmd.arg, "all");
	bad("RESET", "a setting or ALL is required");
	bad("RESET a b", "invalid command 'RESET a b', use SHOW HELP;");
	cr_assert_eq(parse("--!pgring default_pool_size = 7"), 0, "%s", err);
	cr_assert_eq(cmd.verb, ADMIN_SET);
	cr_assert_str_eq(cmd.arg, "default_pool_size");
	cr_assert_str_eq(cmd.value, "7");
	cr_assert_eq(parse("--!PGRING query_timeout to '2s'"), 0, "%s", err);
	cr_assert_str_eq(cmd.value, "2s");
	bad("--!pgring", "invalid command '--!pgring', use SHOW HELP;");
	bad("--!pgringx a = 1", "invalid command '--!pgringx a = 1', use SHOW HELP;");
}
