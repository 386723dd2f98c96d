/* tests/unit/test_hba.c: core/hba.c, auth_hba_file's parser (each error names
 * its line) and the first-match lookup (connection types, IPv4 and IPv6 masks,
 * database and user lists, keywords, quoting, @file includes). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/hba.h"

static char dir[] = "/tmp/pgring-hba-XXXXXX";
static char path[256];

static void setup(void) { cr_assert_not_null(mkdtemp(dir)); snprintf(path, sizeof path, "%s/hba.conf", dir); }
static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	strcpy(dir, "/tmp/pgring-hba-XXXXXX");
}
TestSuite(hba, .init = setup, .fini = teardown);

static void write_file(const char *name, const char *text)
{
	char p[300];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static struct hba *load_ok(const char *text)
{
	char err[512];
	struct hba *h;
	write_file("hba.conf", text);
	int r = hba_load(path, &h, err, sizeof err, NULL, NULL);
	cr_assert_eq(r, 0, "load failed: %s", err);
	return h;
}

/* The load fails, and its message names hba.conf:line and contains what. */
static void load_fails(const char *text, int line, const char *what)
{
	char err[512], want[64];
	struct hba *h = NULL;
	write_file("hba.conf", text);
	cr_assert_eq(hba_load(path, &h, err, sizeof err, NULL, NULL), -1, "loaded: %s", text);
	cr_expect_null(h);
	snprintf(want, sizeof want, "hba.conf:%d: ", line);
	cr_expect(strstr(err, want) != NULL, "[%s] does not name line %d", err, line);
	cr_expect(strstr(err, what) != NULL, "[%s] does not say [%s]", err, what);
}

static uint8_t a4[16], a6[16];
static const uint8_t *v4(const char *s)
{
	memset(a4, 0, 16);
	a4[10] = a4[11] = 0xff;
	cr_assert_eq(inet_pton(AF_INET, s, a4 + 12), 1);
	return a4;
}
static const uint8_t *v6(const char *s)
{
	cr_assert_eq(inet_pton(AF_INET6, s, a6), 1);
	return a6;
}

/* The matching line's number, 0 for none. */
static int line_for(const struct hba *h, bool local, bool tls, const uint8_t *addr, const char *db, const char *user)
{
	struct hba_query q = { .local = local, .tls = tls, .addr = addr, .db = db, .user = user };
	const struct hba_rule *r = hba_match(h, &q);
	return r ? r->line : 0;
}

Test(hba, first_match_wins_by_type_address_database_and_user)
{
	struct hba *h = load_ok("# comment\n"
				"local   all      postgres                 peer\n"          /* 2 */
				"local   app      all                      md5\n"           /* 3 */
				"hostssl secure   all      0.0.0.0/0       scram-sha-256\n" /* 4 */
				"host    app      alice    127.0.0.1/32    reject\n"        /* 5 */
				"host    app,db2  all      127.0.0.0/8     md5   # here\n"  /* 6 */
				"host    all      all      ::1/128         trust\n"         /* 7 */
				"hostnossl all    all      10.0.0.0 255.0.0.0 password\n"   /* 8 */
				"\n"
				"host    all      all      all             scram-sha-256\n"); /* 10 */
	cr_expect_eq(h->n, 8);
	cr_expect_eq(line_for(h, true, false, NULL, "x", "postgres"), 2);
	cr_expect_eq(line_for(h, true, false, NULL, "app", "bob"), 3);
	cr_expect_eq(line_for(h, true, false, NULL, "other", "bob"), 0, "local: no line");
	cr_expect_eq(line_for(h, false, true, v4("127.0.0.1"), "secure", "bob"), 4);
	cr_expect_eq(line_for(h, false, false, v4("127.0.0.1"), "secure", "bob"), 10, "hostssl needs TLS");
	cr_expect_eq(line_for(h, false, false, v4("127.0.0.1"), "app", "alice"), 5);
	cr_expect_eq(line_for(h, false, false, v4("127.0.0.2"), "app", "alice"), 6, "/32 is one address");
	cr_expect_eq(line_for(h, false, false, v4("127.9.9.9"), "db2", "bob"), 6);
	cr_expect_eq(line_for(h, false, false, v6("::1"), "app", "bob"), 7);
	cr_expect_eq(line_for(h, false, false, v4("10.1.2.3"), "z", "bob"), 8);
	cr_expect_eq(line_for(h, false, true, v4("10.1.2.3"), "z", "bob"), 10, "hostnossl refuses TLS");
	cr_expect_eq(h->rules[0].method, HBA_PEER);
	cr_expect_eq(h->rules[3].method, HBA_REJECT);
	cr_expect_eq(h->rules[7].method, HBA_SCRAM);
	hba_free(h);
}

Test(hba, ipv4_rules_do_not_match_ipv6_clients_and_ipv6_rules_can_match_mapped_ipv4)
{
	struct hba *h = load_ok("host all all 127.0.0.1/32 trust\n"
				"host all all ::ffff:0:0/96 md5\n"
				"host all all ::/0 reject\n");
	cr_expect_eq(line_for(h, false, false, v4("127.0.0.1"), "d", "u"), 1);
	cr_expect_eq(line_for(h, false, false, v4("192.168.1.1"), "d", "u"), 2);
	cr_expect_eq(line_for(h, false, false, v6("::1"), "d", "u"), 3);
	cr_expect_eq(line_for(h, false, false, v6("2001:db8::1"), "d", "u"), 3);
	hba_free(h);
}

Test(hba, keywords_quoting_sameuser_and_replication)
{
	struct hba *h = load_ok("host sameuser all all md5\n"                  /* 1 */
				"host \"all\" \"alice\",bob all password\n"       /* 2: a database named all */
				"host replication repl all trust\n"                /* 3 */
				"host all all all reject\n");                      /* 4 */
	cr_expect_eq(line_for(h, false, false, v4("1.2.3.4"), "alice", "alice"), 1);
	cr_expect_eq(line_for(h, false, false, v4("1.2.3.4"), "all", "bob"), 2);
	cr_expect_eq(line_for(h, false, false, v4("1.2.3.4"), "other", "bob"), 4, "a quoted all is a name");
	struct hba_query q = { .physical_replication = true, .addr = v4("1.2.3.4"), .db = "replication", .user = "repl" };
	const struct hba_rule *r = hba_match(h, &q);
	cr_assert_not_null(r);
	cr_expect_eq(r->line, 3, "physical replication matches only the replication keyword");
	q.user = "bob";
	r = hba_match(h, &q);
	cr_expect_null(r, "\"all\" does not cover physical replication");
	hba_free(h);
}

Test(hba, at_file_includes_names_relative_to_the_hba_file)
{
	write_file("admins", "alice, bob\n# a comment\n  carol\n");
	struct hba *h = load_ok("host all @admins all trust\nhost all all all reject\n");
	cr_expect_eq(line_for(h, false, false, v4("1.2.3.4"), "d", "carol"), 1);
	cr_expect_eq(line_for(h, false, false, v4("1.2.3.4"), "d", "bob"), 1);
	cr_expect_eq(line_for(h, false, false, v4("1.2.3.4"), "d", "dave"), 2);
	hba_free(h);
}

Test(hba, errors_name_their_line)
{
	load_fails("local all all trust\nhots all all all md5\n", 2, "invalid connection type \"hots\"");
	load_fails("host all all 127.0.0.1 md5\n", 1, "invalid IP mask \"md5\"");   /* as PostgreSQL reads it */
	load_fails("host all all 127.0.0.1 255.0.0.0,255.255.0.0 md5\n", 1, "needs a CIDR mask");
	load_fails("host all all 127.0.0.1 255.255.255.255\n", 1, "end-of-line before authentication method");
	load_fails("host all all 127.0.0.1/33 md5\n", 1, "invalid CIDR mask");
	load_fails("host all all 10.0.0.0 255.0.255.0 md5\n", 1, "invalid IP mask");
	load_fails("host all all db.example.com md5\n", 1, "host names are not supported");
	load_fails("host all all samenet md5\n", 1, "samenet");
	load_fails("host all +admins all md5\n", 1, "group membership");
	load_fails("host samerole all all md5\n", 1, "role membership");
	load_fails("host all all all ldap ldapserver=x\n", 1, "\"ldap\" is not supported");
	load_fails("host all all all md5 clientcert=verify-full\n", 1, "option \"clientcert=verify-full\"");
	load_fails("host all all all peer\n", 1, "peer authentication is only supported on local");
	load_fails("local all all cert\n", 1, "cert authentication is only supported on hostssl");
	load_fails("host all all all nonsense\n", 1, "invalid authentication method");
	load_fails("\n\nhost all all\n", 3, "end-of-line before IP address");
	load_fails("local all\n", 1, "end-of-line before role");
	load_fails("host \"unterminated all all all md5\n", 1, "unterminated");
	load_fails("host a, all all all\n", 1, "end-of-line before authentication method");   /* "a, all" is one field */
	load_fails("host a,\n", 1, "a list ends with a comma");
	load_fails("host all @missing all md5\n", 1, "cannot read @missing");
}

Test(hba, a_missing_file_is_an_error)
{
	char err[512];
	struct hba *h = NULL;
	cr_expect_eq(hba_load("/nonexistent/hba.conf", &h, err, sizeof err, NULL, NULL), -1);
	cr_expect(strstr(err, "cannot read auth_hba_file") != NULL, "%s", err);
}

Test(hba, addresses_are_printed_as_postgresql_does)
{
	char out[64];
	hba_format_addr(v4("127.0.0.1"), false, out, sizeof out);
	cr_expect_str_eq(out, "127.0.0.1");
	hba_format_addr(v6("::1"), false, out, sizeof out);
	cr_expect_str_eq(out, "::1");
	hba_format_addr(a6, true, out, sizeof out);
	cr_expect_str_eq(out, "[local]");
}

/* auth_hba_file = @server: pg_hba_file_rules rows as the view prints them. */
static int nwarn;
static char lastwarn[700];
static void count_warn(void *ctx, const char *msg)
{
	(void)ctx;
	nwarn++;
	snprintf(lastwarn, sizeof lastwarn, "%s", msg);
}

Test(hba, server_rows_become_rules_in_order)
{
	const struct hba_server_row rows[] = {
		{ 1, "local", "{all}", "{all}", NULL, NULL, "trust", NULL, NULL },
		{ 2, "host", "{all}", "{postgres}", "127.0.0.1", "255.255.255.255", "trust", NULL, NULL },
		{ 3, "host", "{replication}", "{postgres}", "127.0.0.1", "255.255.255.255", "trust", NULL, NULL },
		{ 4, "host", "{app,\"my db\",\"a\\\"b\"}", "{md5user}", "127.0.0.1", "255.255.255.255", "md5", NULL, NULL },
		{ 5, "host", "{all}", "{all}", "10.0.0.0", "255.0.0.0", "ldap", "{ldapserver=x}", NULL },
		{ 6, "hostssl", "{all}", "{+admins}", "all", NULL, "scram-sha-256", NULL, NULL },
		{ 7, "host", "{all}", "{all}", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "scram-sha-256", "{}", NULL },
		{ 8, "host", "{all}", "{all}", "127.0.0.1", "255.255.255.255", "md5", "{clientcert=verify-full}", NULL },
		{ 9, "host", "{all}", "{all}", "all", NULL, "scram-sha-256", NULL, NULL },
	};
	char err[512];
	struct hba *h = NULL;
	nwarn = 0;
	cr_assert_eq(hba_from_server(rows, 9, "server", &h, err, sizeof err, count_warn, NULL), 0, "%s", err);
	cr_expect_eq(h->n, 9);
	cr_expect_eq(nwarn, 3, "ldap, +group and an option are warned: %d, last %s", nwarn, lastwarn);
	cr_expect_eq(line_for(h, true, false, NULL, "x", "bob"), 1);
	cr_expect_eq(line_for(h, false, false, v4("127.0.0.1"), "x", "postgres"), 2);
	cr_expect_eq(line_for(h, false, false, v4("127.0.0.1"), "my db", "md5user"), 4, "a quoted name");
	cr_expect_eq(line_for(h, false, false, v4("127.0.0.1"), "a\"b", "md5user"), 4, "an escaped quote");
	cr_expect_eq(h->rules[3].method, HBA_MD5);
	/* ldap: the same line, as reject (only 10/8 is refused there) */
	cr_expect_eq(line_for(h, false, false, v4("10.1.1.1"), "x", "bob"), 5);
	cr_expect_eq(h->rules[4].method, HBA_REJECT);
	cr_expect(!h->rules[4].addr_all);
	/* +group: not matchable here, so reject for every hostssl login */
	cr_expect_eq(line_for(h, false, true, v4("192.168.1.1"), "x", "bob"), 6);
	cr_expect_eq(h->rules[5].method, HBA_REJECT);
	cr_expect_eq(line_for(h, false, false, v6("::1"), "x", "bob"), 7, "an empty options array is no option");
	cr_expect_eq(h->rules[6].method, HBA_SCRAM);
	cr_expect_eq(line_for(h, false, false, v4("127.0.0.1"), "x", "bob"), 8);
	cr_expect_eq(h->rules[7].method, HBA_REJECT, "md5 with clientcert=: pgring cannot check the option");
	cr_expect_eq(line_for(h, false, false, v4("192.168.1.1"), "x", "bob"), 9);
	hba_free(h);
}

Test(hba, a_server_row_with_an_error_keeps_the_old_rules)
{
	const struct hba_server_row rows[] = {
		{ 1, "local", "{all}", "{all}", NULL, NULL, "trust", NULL, NULL },
		{ 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "invalid authentication method \"bogus\"" },
	};
	char err[512];
	struct hba *h = (struct hba *)1;
	cr_assert_eq(hba_from_server(rows, 2, "server", &h, err, sizeof err, NULL, NULL), -1);
	cr_expect_null(h);
	cr_expect(strstr(err, "server:2: ") && strstr(err, "bogus"), "%s", err);
	const struct hba_server_row bad[] = { { 3, "host", "all", "{all}", "all", NULL, "trust", NULL, NULL } };
	/* a value pgring cannot read (not an array) refuses, never admits */
	cr_assert_eq(hba_from_server(bad, 1, "server", &h, err, sizeof err, NULL, NULL), 0, "%s", err);
	cr_expect_eq(h->rules[0].method, HBA_REJECT);
	cr_expect(h->rules[0].db.all && h->rules[0].user.all && h->rules[0].addr_all);
	hba_free(h);
}
