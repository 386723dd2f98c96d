/* tests/unit/test_sql.c: proto/sql.c, the lexer that splits a query string into
 * statements and recognises the ones that change session state. The SET values
 * must be exactly the strings PostgreSQL's own SET flattens its arguments to
 * (what current_setting() reports for a string setting and set_config() takes):
 * the expected values below were observed on a real PostgreSQL 15.18 server.
 * Every scan runs on a copy of the query in a buffer of exactly its length (no
 * NUL after it), so a read past the end shows under AddressSanitizer. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sql.h"

#define MAXS 32

struct scan_res {
	char *buf;                       /* the query, exactly len bytes */
	size_t len;
	int found, n;
	struct proto_sql_stmt s[MAXS];
};

static void scan_n(struct scan_res *r, const char *sql, size_t len, int max)
{
	memset(r, 0, sizeof *r);
	r->len = len;
	r->buf = malloc(len ? len : 1);
	cr_assert_not_null(r->buf);
	memcpy(r->buf, sql, len);
	r->n = -1;
	r->found = proto_sql_scan(r->buf, len, r->s, max, &r->n);
	cr_assert(r->found >= 0 && r->found <= max, "found %d of max %d", r->found, max);
	cr_assert(r->found <= r->n, "found %d > statements %d", r->found, r->n);
	for (int i = 0; i < r->found; i++) {
		const struct proto_sql_stmt *s = &r->s[i];
		/* every reported statement lies inside the scanned string */
		cr_assert(s->text >= r->buf && s->text + s->text_len <= r->buf + len);
		cr_assert(s->index < r->n);
		cr_assert(i == 0 || s->index > r->s[i - 1].index, "indexes increase");
		cr_assert(strnlen(s->name, SQL_QNAME_MAX) < SQL_QNAME_MAX, "name is terminated");
		cr_assert(s->kind == SQL_SET || s->value == NULL, "only SET has a value");
		if (s->kind == SQL_SET)
			cr_assert_not_null(s->value);
	}
}

static void scan(struct scan_res *r, const char *sql)
{
	scan_n(r, sql, strlen(sql), MAXS);
}

static void scan_done(struct scan_res *r)
{
	proto_sql_free(r->s, r->found);
	for (int i = 0; i < r->found; i++)
		cr_assert_null(r->s[i].value, "proto_sql_free clears value");
	free(r->buf);
}

/* One statement, reported, of this kind and name. */
static void expect_one(const char *sql, int kind, const char *name)
{
	struct scan_res r;
	scan(&r, sql);
	cr_assert_eq(r.n, 1, "%s: %d statements", sql, r.n);
	cr_assert_eq(r.found, 1, "%s: reported %d", sql, r.found);
	cr_assert_eq(r.s[0].kind, kind, "%s: kind %d, expected %d", sql, r.s[0].kind, kind);
	if (name)
		cr_assert_str_eq(r.s[0].name, name, "%s: name", sql);
	cr_assert_eq(r.s[0].index, 0);
	scan_done(&r);
}

/* One statement, nothing reported. */
static void expect_none(const char *sql)
{
	struct scan_res r;
	scan(&r, sql);
	cr_assert_eq(r.n, 1, "%s: %d statements", sql, r.n);
	cr_assert_eq(r.found, 0, "%s: reported kind %d flags %d", sql, r.found ? r.s[0].kind : -1,
		     r.found ? r.s[0].flags : -1);
	scan_done(&r);
}

static void expect_set(const char *sql, const char *name, const char *value)
{
	struct scan_res r;
	scan(&r, sql);
	cr_assert_eq(r.n, 1, "%s: %d statements", sql, r.n);
	cr_assert_eq(r.found, 1, "%s: reported %d", sql, r.found);
	cr_assert_eq(r.s[0].kind, SQL_SET, "%s: kind %d", sql, r.s[0].kind);
	cr_assert_eq(r.s[0].flags, 0, "%s: flags %d", sql, r.s[0].flags);
	cr_assert_str_eq(r.s[0].name, name, "%s: name", sql);
	cr_assert_str_eq(r.s[0].value, value, "%s: value [%s], PostgreSQL: [%s]", sql, r.s[0].value, value);
	cr_assert_str_eq(proto_sql_tag(&r.s[0]), "SET");
	scan_done(&r);
}

/* ---- SET values against PostgreSQL 15 ---- */

TestSuite(sql_set);

struct pg_case {
	const char *sql, *name, *value;
};

/* Observed on PostgreSQL 15.18 with `SET ...; SHOW name;` (ut.v is a custom
 * placeholder setting: a plain string, so SHOW prints the flattened SET value
 * unchanged; application_name and search_path are string settings too). */
static const struct pg_case pg15[] = {
	/* search_path: each element as quote_identifier() writes it */
	{ "SET search_path TO \"$user\", 'My Schema', x", "search_path", "\"$user\", \"My Schema\", x" },
	{ "SET search_path = 'My Schema', x", "search_path", "\"My Schema\", x" },
	{ "SET search_path TO MySchema, \"MixedCase\", public, _x1, \"a\"\"b\"", "search_path",
	  "myschema, \"MixedCase\", public, _x1, \"a\"\"b\"" },
	{ "SET search_path = 'My Schema', x, 'Ab', 1", "search_path", "\"My Schema\", x, \"Ab\", 1" },
	{ "SET search_path TO \"\xc3\x9c" "n\xc3\xaf\", \xc3\xbcn\xc3\xaf", "search_path",
	  "\"\xc3\x9cn\xc3\xaf\", \"\xc3\xbcn\xc3\xaf\"" },          /* "Ünï", ünï */
	{ "SET SCHEMA 'My Schema'", "search_path", "\"My Schema\"" },
	/* session_preload_libraries is quoted the same way (as superuser) */
	{ "SET session_preload_libraries = 'My Lib', auto_explain, \"X\"", "session_preload_libraries",
	  "\"My Lib\", auto_explain, \"X\"" },
	/* a list setting without quoting (after plpgsql is loaded) */
	{ "SET plpgsql.extra_warnings = shadowed_variables, 'too_many_rows'", "plpgsql.extra_warnings",
	  "shadowed_variables, too_many_rows" },
	/* strings */
	{ "SET application_name = 'it''s'", "application_name", "it's" },
	{ "SET ut.v = E'a\\\\b\\'c\\tq\\qz\\n'", "ut.v", "a\\b'c\tqqz\n" },   /* hex 615c6227630971717a0a */
	{ "SET ut.v = E'it''s'", "ut.v", "it's" },
	{ "SET application_name = 'a\\b'", "application_name", "a\\b" },
	{ "SET application_name = 'x;y--z/*w*/'", "application_name", "x;y--z/*w*/" },
	{ "SET ut.v = '; -- not a comment'", "ut.v", "; -- not a comment" },
	{ "SET application_name = ''", "application_name", "" },
	{ "SET ut.v = 'default'", "ut.v", "default" },                        /* a string, not DEFAULT */
	/* identifiers */
	{ "SET application_name TO MyApp", "application_name", "myapp" },
	{ "SET application_name TO \"MyApp\"", "application_name", "MyApp" },
	{ "SET ut.v = \"Quoted\"\"Id\"", "ut.v", "Quoted\"Id" },
	{ "SET ut.v TO on", "ut.v", "on" },
	{ "SET ut.v TO TRUE", "ut.v", "true" },
	{ "SET Ut.V = 'x'", "ut.v", "x" },
	/* numbers as written, with the sign folded in */
	{ "SET ut.v = 1.50", "ut.v", "1.50" },
	{ "SET ut.v = -5", "ut.v", "-5" },
	{ "SET ut.v =-5", "ut.v", "-5" },
	{ "SET ut.v = - 2.5e3", "ut.v", "-2.5e3" },
	{ "SET ut.v = +7", "ut.v", "7" },
	{ "SET ut.v = .5", "ut.v", ".5" },
	{ "SET ut.v = 5.", "ut.v", "5." },
	{ "SET ut.v = 1e3", "ut.v", "1e3" },
	{ "SET ut.v = 99999999999", "ut.v", "99999999999" },
	{ "SET ut.v = 2147483648", "ut.v", "2147483648" },
	{ "SET ut.v = -2147483648", "ut.v", "-2147483648" },
	{ "SET extra_float_digits = -3", "extra_float_digits", "-3" },
	/* units */
	{ "SET statement_timeout = '5s'", "statement_timeout", "5s" },
	{ "SET work_mem = '64MB'", "work_mem", "64MB" },
	/* SHOW says 5s; set_config('statement_timeout', '5000', false) gives the same 5s */
	{ "SET statement_timeout = 5000", "statement_timeout", "5000" },
	/* time zones */
	{ "SET TIME ZONE 'Europe/Paris'", "timezone", "Europe/Paris" },
	{ "SET TimeZone = 'America/New_York'", "timezone", "America/New_York" },
	/* SHOW says UTC; set_config('TimeZone', 'utc', false) gives UTC too */
	{ "SET TIME ZONE UTC", "timezone", "utc" },
	/* SHOW says <-05>+05; set_config('TimeZone', '-5', false) gives <-05>+05 */
	{ "SET TIME ZONE -5", "timezone", "-5" },
	/* SHOW says <+05:30>-05:30; set_config('TimeZone', '5.5', false) the same */
	{ "SET TIME ZONE 5.5", "timezone", "5.5" },
	/* SHOW says ISO, DMY; set_config('DateStyle', 'iso, dmy', false) the same */
	{ "SET SESSION DateStyle = ISO, DMY", "datestyle", "iso, dmy" },
	/* other spellings */
	{ "SET SESSION application_name = 'sess'", "application_name", "sess" },
	{ "SET XML OPTION DOCUMENT", "xmloption", "document" },
	{ "SET ROLE \"postgres\"", "role", "postgres" },
	{ "SET NAMES 'UTF8'", "client_encoding", "UTF8" },
	{ "SET application_name = 'x' /* c */ ", "application_name", "x" },
	{ "SET application_name = -- c\n 'y'", "application_name", "y" },
};

Test(sql_set, pg15_observed_values)
{
	for (size_t i = 0; i < sizeof pg15 / sizeof pg15[0]; i++)
		expect_set(pg15[i].sql, pg15[i].name, pg15[i].value);
}

/* Observed on PostgreSQL 15.18: quote_identifier() also quotes every element that
 * is a keyword other than an unreserved one (user, select, table are reserved;
 * action is unreserved). SET search_path = 'user', public shows "user", public,
 * while set_config('search_path', 'user, public', false) shows user, public. */
Test(sql_set, pg15_search_path_quotes_keywords)
{
	expect_set("SET search_path = 'user', 'select', 'action', \"table\", 'a b'", "search_path",
		   "\"user\", \"select\", action, \"table\", \"a b\"");
}

/* Observed on PostgreSQL 15.18: an integer constant is flattened as the integer
 * it is (007 -> 7, -0 -> 0); set_config('ut.v', '007', false) keeps 007, so the
 * written form is not the same setting. */
Test(sql_set, pg15_integers_normalised)
{
	expect_set("SET ut.v = 007", "ut.v", "7");
	expect_set("SET ut.v = -0", "ut.v", "0");
}

/* Observed on PostgreSQL 15.18: an identifier is truncated to 63 bytes (NOTICE
 * "identifier ... will be truncated"), as a value too. */
Test(sql_set, pg15_long_identifier_truncated)
{
	expect_set("SET ut.v = aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffffgggggggggg", "ut.v",
		   "aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffffggg");
}

/* Forms the lexer chooses not to decode must pin the client rather than record a
 * wrong value. Observed on PostgreSQL 15.18: $$dollar$$ -> dollar,
 * U&'d\0061t' -> dat, E'\x41' -> A, E'\101' -> A. */
Test(sql_set, undecoded_forms_never_wrong)
{
	static const struct pg_case c[] = {
		{ "SET ut.v = $$dollar$$", "ut.v", "dollar" },
		{ "SET ut.v = U&'d\\0061t'", "ut.v", "dat" },
		{ "SET ut.v = E'\\x41'", "ut.v", "A" },
		{ "SET ut.v = E'\\101'", "ut.v", "A" },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		struct scan_res r;
		scan(&r, c[i].sql);
		cr_assert_eq(r.found, 1, "%s", c[i].sql);
		if (r.s[0].kind == SQL_SET)
			cr_assert_str_eq(r.s[0].value, c[i].value, "%s", c[i].sql);
		else
			cr_assert_eq(r.s[0].kind, SQL_PIN, "%s: kind %d", c[i].sql, r.s[0].kind);
		scan_done(&r);
	}
}

Test(sql_set, to_default_is_reset)
{
	expect_one("SET application_name TO DEFAULT", SQL_RESET, "application_name");
	expect_one("SET search_path = default", SQL_RESET, "search_path");
	expect_one("SET SESSION ut.v TO DEFAULT", SQL_RESET, "ut.v");
	expect_one("SET TIME ZONE DEFAULT", SQL_RESET, "timezone");
	expect_one("SET TIME ZONE LOCAL", SQL_RESET, "timezone");
	expect_one("SET ROLE NONE", SQL_RESET, "role");
	/* 'default' quoted is a value (see pg15_observed_values) */
}

Test(sql_set, local_and_pins)
{
	/* SET LOCAL lasts until the transaction ends: never a session SET */
	struct scan_res r;
	scan(&r, "SET LOCAL application_name = 'loc'");
	cr_assert_eq(r.n, 1);
	for (int i = 0; i < r.found; i++) {
		cr_assert_neq(r.s[i].kind, SQL_SET);
		cr_assert(r.s[i].flags & SQL_F_SET_LOCAL);
	}
	scan_done(&r);
	scan(&r, "set local search_path = x; SET search_path = y");
	cr_assert_eq(r.n, 2);
	cr_assert_eq(r.found, 1);
	cr_assert_eq(r.s[0].index, 1);
	cr_assert_str_eq(r.s[0].value, "y");
	scan_done(&r);
	expect_one("SET SESSION AUTHORIZATION 'bob'", SQL_PIN, NULL);
	expect_one("set session characteristics as transaction isolation level serializable", SQL_PIN, NULL);
	expect_one("SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE", SQL_PIN, NULL);
	/* a value that is not a plain list of constants */
	expect_one("SET ut.v = 1 + 2", SQL_PIN, "ut.v");
	expect_one("SET ut.v = 'a' 'b'", SQL_PIN, "ut.v");
	/* transaction-scoped forms leave the session alone */
	expect_none("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
	expect_none("SET CONSTRAINTS ALL DEFERRED");
	expect_none("SET");
	expect_none("SET ut.v");
}

Test(sql_set, long_value_pins)
{
	/* more tokens than the scanner keeps: the value is not followed, so pin */
	char sql[4096];
	int k = snprintf(sql, sizeof sql, "SET search_path = a0");
	for (int i = 1; i < 200; i++)
		k += snprintf(sql + k, sizeof sql - (size_t)k, ", a%d", i);
	expect_one(sql, SQL_PIN, "search_path");
	/* a value with many elements that does fit is flattened exactly */
	k = snprintf(sql, sizeof sql, "SET search_path = a0");
	char want[1024];
	int w = snprintf(want, sizeof want, "a0");
	for (int i = 1; i < 30; i++) {
		k += snprintf(sql + k, sizeof sql - (size_t)k, ",\"A%d\"", i);
		w += snprintf(want + w, sizeof want - (size_t)w, ", \"A%d\"", i);
	}
	expect_set(sql, "search_path", want);
}

Test(sql_set, names)
{
	expect_set("SET \"Ut\".v = 1", "Ut.v", "1");
	expect_set("SET SESSION ut.v TO 'a'", "ut.v", "a");
	/* a setting name at the limit is stored terminated */
	char sql[256];
	snprintf(sql, sizeof sql, "SET %s.%s = 1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	struct scan_res r;
	scan(&r, sql);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.found, 1);
	cr_assert_eq(strlen(r.s[0].name), 63 + 1 + 63, "a qualified name of two 63-byte parts is kept whole");
	scan_done(&r);
	/* three parts; '$' and non-ASCII bytes in words; quoted parts keep their case */
	expect_set("SET \"a\".\"b\".c = 'changed'", "a.b.c", "changed");
	expect_set("SET x.\"Y\".z TO 'c1'", "x.Y.z", "c1");
	expect_set("SET a$b.c$d = 'sql'", "a$b.c$d", "sql");
	expect_set("SET \xc3\xa9.\xc3\xbc = 'unquoted'", "\xc3\xa9.\xc3\xbc", "unquoted");
	expect_set("SET \"MIXED\".Case$1 = 'upper'", "MIXED.case$1", "upper");
	/* a name that does not fit cannot be followed: the client stays on its server */
	snprintf(sql, sizeof sql, "SET %s.%s.c = 1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	expect_one(sql, SQL_PIN, "");
	expect_one("SET ut.v FROM CURRENT", SQL_PIN, "");
	expect_none("SET ut.v.");
}

/* ---- the other statement kinds ---- */

TestSuite(sql_kinds);

Test(sql_kinds, reset)
{
	expect_one("RESET ALL", SQL_RESET_ALL, NULL);
	expect_one("reset all", SQL_RESET_ALL, NULL);
	expect_one("RESET application_name", SQL_RESET, "application_name");
	expect_one("RESET TimeZone", SQL_RESET, "timezone");
	expect_one("RESET TIME ZONE", SQL_RESET, "timezone");
	expect_one("RESET \"Ut\".V", SQL_RESET, "Ut.v");
	expect_one("RESET \"mixed\".\"case$1\"", SQL_RESET, "mixed.case$1");
	expect_one("RESET a.B.c", SQL_RESET, "a.b.c");
	expect_none("RESET a.b c");
	expect_one("RESET ROLE", SQL_RESET, "role");
	expect_none("RESET SESSION AUTHORIZATION");
}

Test(sql_kinds, prepare_deallocate)
{
	struct scan_res r;
	scan(&r, "PREPARE MyStmt (int) AS SELECT $1");
	cr_assert_eq(r.found, 1);
	cr_assert_eq(r.s[0].kind, SQL_PREPARE);
	cr_assert_str_eq(r.s[0].name, "mystmt");
	cr_assert_eq(r.s[0].text_len, strlen("PREPARE MyStmt (int) AS SELECT $1"));
	cr_assert(memcmp(r.s[0].text, "PREPARE MyStmt (int) AS SELECT $1", r.s[0].text_len) == 0);
	scan_done(&r);
	expect_one("prepare \"MyStmt\" as select 1", SQL_PREPARE, "MyStmt");
	expect_none("PREPARE TRANSACTION 'gid'");
	expect_one("DEALLOCATE p1", SQL_DEALLOCATE, "p1");
	expect_one("DEALLOCATE PREPARE \"P1\"", SQL_DEALLOCATE, "P1");
	expect_one("DEALLOCATE ALL", SQL_DEALLOCATE_ALL, NULL);
	expect_one("deallocate prepare all", SQL_DEALLOCATE_ALL, NULL);
}

Test(sql_kinds, discard_listen)
{
	expect_one("DISCARD ALL", SQL_DISCARD_ALL, NULL);
	expect_one("DISCARD TEMP", SQL_DISCARD_TEMP, NULL);
	expect_one("discard temporary", SQL_DISCARD_TEMP, NULL);
	expect_none("DISCARD PLANS");
	expect_none("DISCARD SEQUENCES");
	expect_one("LISTEN Chan", SQL_LISTEN, "chan");
	expect_one("LISTEN \"Chan\"", SQL_LISTEN, "Chan");
	expect_one("UNLISTEN chan", SQL_UNLISTEN, "chan");
	expect_one("UNLISTEN *", SQL_UNLISTEN_ALL, NULL);
}

Test(sql_kinds, temp_objects)
{
	expect_one("CREATE TEMP TABLE t (a int)", SQL_TEMP_OBJECT, NULL);
	expect_one("create temporary table t as select 1", SQL_TEMP_OBJECT, NULL);
	expect_one("CREATE GLOBAL TEMPORARY TABLE t (a int)", SQL_TEMP_OBJECT, NULL);
	expect_one("CREATE LOCAL TEMP TABLE t (a int)", SQL_TEMP_OBJECT, NULL);
	expect_one("CREATE OR REPLACE TEMP VIEW v AS SELECT 1", SQL_TEMP_OBJECT, NULL);
	expect_one("CREATE TEMP SEQUENCE s", SQL_TEMP_OBJECT, NULL);
	expect_one("CREATE TEMP TABLE t (a int) ON COMMIT DELETE ROWS", SQL_TEMP_OBJECT, NULL);
	expect_one("CREATE TEMP TABLE t (a int) ON COMMIT PRESERVE ROWS", SQL_TEMP_OBJECT, NULL);
	expect_none("CREATE TEMP TABLE t (a int) ON COMMIT DROP");
	expect_none("create temp table t on commit drop as select 1");
	expect_none("CREATE TABLE t (a int)");
	expect_none("CREATE UNLOGGED TABLE t (a int)");
	expect_none("CREATE FUNCTION f() RETURNS void AS $$ CREATE TEMP TABLE t (a int) $$ LANGUAGE sql");
	expect_one("SELECT 1 AS a INTO TEMP t", SQL_TEMP_OBJECT, NULL);
	expect_one("SELECT 1 AS a INTO TEMPORARY TABLE t", SQL_TEMP_OBJECT, NULL);
	expect_none("SELECT 1 AS a INTO t");
	expect_none("SELECT 'into temp'");
}

/* Observed on PostgreSQL 15.18: SELECT 1 AS a INTO LOCAL TEMP t1 creates a
 * temporary table (so does GLOBAL TEMP, with a deprecation warning). */
Test(sql_kinds, select_into_local_temp)
{
	expect_one("SELECT 1 AS a INTO LOCAL TEMP t1", SQL_TEMP_OBJECT, NULL);
	expect_one("SELECT 1 AS a INTO GLOBAL TEMPORARY t1", SQL_TEMP_OBJECT, NULL);
}

/* Observed on PostgreSQL 15.18: TEMP is an unreserved keyword, so CREATE TABLE
 * temp (a int); INSERT INTO temp VALUES (1) works on an ordinary table. */
Test(sql_kinds, table_named_temp)
{
	expect_none("INSERT INTO temp VALUES (1)");
}

Test(sql_kinds, cursors_load)
{
	expect_one("DECLARE Cur CURSOR WITH HOLD FOR SELECT 1", SQL_HOLD_CURSOR, "cur");
	expect_one("DECLARE \"C\" NO SCROLL CURSOR WITH HOLD FOR SELECT 1", SQL_HOLD_CURSOR, "C");
	expect_none("DECLARE c CURSOR FOR SELECT 1");
	expect_none("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 'with hold'");
	expect_one("CLOSE cur", SQL_CLOSE, "cur");
	expect_one("CLOSE ALL", SQL_CLOSE_ALL, NULL);
	expect_one("LOAD 'auto_explain'", SQL_PIN, NULL);
	expect_none("SELECT 1");
	expect_none("BEGIN");
}

/* set_config(name, value, false) changes the session as SET does; with true it
 * lasts for the transaction; with arguments that are not literals pgring cannot
 * know what it did, so the client is pinned. */
Test(sql_kinds, set_config_calls)
{
	static const struct { const char *sql, *name, *value; } c[] = {
		{ "SELECT set_config('a.b', 'x', false)", "a.b", "x" },
		{ "select pg_catalog.set_config('Search_Path', 'it''s, public', false)", "search_path", "it's, public" },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		struct scan_res r;
		scan(&r, c[i].sql);
		cr_assert_eq(r.found, 1, "%s", c[i].sql);
		cr_assert_eq(r.s[0].kind, SQL_SET, "%s", c[i].sql);
		cr_assert_eq(r.s[0].flags, SQL_F_SET_CONFIG, "%s", c[i].sql);
		cr_assert_str_eq(r.s[0].name, c[i].name);
		cr_assert_str_eq(r.s[0].value, c[i].value);
		cr_assert_null(proto_sql_tag(&r.s[0]), "its tag is the SELECT's");
		scan_done(&r);
	}
	expect_none("SELECT set_config('a.b', 'x', true)");
	expect_one("SELECT set_config('a.b', $1, false)", SQL_PIN, NULL);
	expect_one("SELECT set_config('a.b', 'x', false), set_config('c.d', 'y', false)", SQL_PIN, NULL);
	cr_assert(!proto_sql_plain("SELECT set_config('a.b', 'x', false)", 36), "set_config is not plain");
	cr_assert(proto_sql_plain("SELECT abalance FROM pgbench_accounts WHERE aid = 1;", 51));
	cr_assert(!proto_sql_plain("SELECT 1; SET search_path = x", 29), "two statements are not plain");
	cr_assert(!proto_sql_plain("SELECT pg_advisory_lock(1)", 26));
	cr_assert(!proto_sql_plain("SELECT 1 INTO TEMP t", 20));
	cr_assert(!proto_sql_plain("/* c */ SET x = 1", 17));
	cr_assert(!proto_sql_plain("SET x = 1", 9));
	cr_assert(proto_sql_plain("UPDATE t SET v = 1", 18), "UPDATE ... SET is plain");
}

/* The fast pre-check tests 16 bytes at a time: every trigger must be seen at
 * every offset, including across a block boundary and in the scalar tail, and
 * the query is read no further than its length (a copy in an exact-size heap
 * block lets ASan check that). */
Test(sql_kinds, plain_every_offset)
{
	static const struct { const char *tail; bool plain; } t[] = {
		{ "; SET x = 1", false }, { "-- c", false }, { "/* c */", false },
		{ "pg_advisory_lock(1)", false }, { "set_config('a', 'b', false)", false },
		{ "x INTO TEMP t", false }, { "PG_ADVISORY_LOCK(1)", false },
		{ "a - b / c", true }, { "n_v_x;", true }, { "x; ;  ", true }, { "inta", true },
	};
	/* spaces after the trigger change no answer, and put it at every
	 * distance from the end (the last 16 bytes are one window that may
	 * overlap the one before, then the last byte alone) */
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		for (int pad = 0; pad < 40; pad++)
			for (int after = 0; after < 20; after++) {
				char q[160];
				int n = snprintf(q, sizeof q, "SELECT %.*s%s%*s", pad,
						 "1234567890123456789012345678901234567890", t[i].tail, after, "");
				char *h = malloc((size_t)n);
				memcpy(h, q, (size_t)n);
				cr_assert_eq(proto_sql_plain(h, (size_t)n), t[i].plain, "[%s]", q);
				free(h);
			}
	/* "into" after a non-SELECT word is left alone; a dash at the very end too */
	cr_assert(proto_sql_plain("INSERT INTO t VALUES (1)", 24));
	cr_assert(proto_sql_plain("SELECT 1 -", 10));
	cr_assert(proto_sql_plain("SELECT 1 FROM t WHERE a = b -", 29));
	cr_assert(!proto_sql_plain("SELECT 1 FROM t WHERE a = b --", 30));
	cr_assert(!proto_sql_plain("SELECT 1 FROM t WHERE a = b /*", 30));
}

/* A Query's pre-check reads its string up to the message's final NUL, past a
 * NUL inside it (pool/lease.c on_query; the server refuses such a message).
 * That is safe only if whatever is plain with bytes after a NUL is plain up
 * to the NUL: checked for statements cut at every byte, with tails that are
 * plain and tails that are not. */
Test(sql_kinds, plain_past_a_nul_only_if_plain_before_it)
{
	static const char *const head[] = {
		"SET x = 1", "SELECT 1; SET x = 1", "SELECT pg_advisory_lock(1)", "SELECT 1 INTO TEMP t",
		"SELECT abalance FROM pgbench_accounts WHERE aid = 1;", "-- c\nSELECT 1", "SELECT set_config('a', 'b', false)",
		"UPDATE t SET v = 1", "SELECT 1 /* c */", "  select 1 ;",
	};
	static const char *const tail[] = { "", " ", "1", "; SET y = 2", "x", ";", "-- c", "SELECT 1" };
	int tried = 0, plain_full = 0;
	for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
		for (size_t cut = 0; cut <= strlen(head[i]); cut++)
			for (size_t j = 0; j < sizeof tail / sizeof tail[0]; j++) {
				char q[160];
				size_t tl = strlen(tail[j]);
				memcpy(q, head[i], cut);
				q[cut] = 0;
				memcpy(q + cut + 1, tail[j], tl);
				size_t n = cut + 1 + tl;
				char *h = malloc(n);
				memcpy(h, q, n);
				bool full = proto_sql_plain(h, n);
				if (full)
					cr_assert(proto_sql_plain(h, cut), "plain past the NUL, not before it: [%.*s]",
						  (int)cut, h);
				plain_full += full;
				tried++;
				free(h);
			}
	cr_assert_gt(plain_full, 0, "some of the %d strings are plain", tried);
}

/* The first word is read 16 bytes at a time when the query is that long, a
 * byte at a time when shorter: both readings agree on every word. */
Test(sql_kinds, plain_first_word)
{
	static const struct { const char *word; bool plain; } t[] = {
		{ "SELECT", true }, { "select", true }, { "TRUNCATE", true }, { "truncated", false },
		{ "SELECTx", false }, { "SET", false }, { "Update", true }, { "s", false }, { "SELECT_", false },
		{ "SELECT1", false }, { "\xc3\xa9", false }, { "VALUES", true }, { "beginx", false },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		for (int lead = 0; lead < 3; lead++) {
			const char *tails[] = { " 1", " 1                            " };
			for (int j = 0; j < 2; j++) {
				char q[96];
				int n = snprintf(q, sizeof q, "%.*s%s%s", lead, "\n  ", t[i].word, tails[j]);
				char *h = malloc((size_t)n);
				memcpy(h, q, (size_t)n);
				cr_assert_eq(proto_sql_plain(h, (size_t)n), t[i].plain, "[%s] (%d bytes)", q, n);
				free(h);
			}
		}
	cr_assert(proto_sql_plain("SELECT", 6), "the word alone, short");
	cr_assert(!proto_sql_plain("SELECTSELECTSELECTSELECT", 24), "one long word");
}

Test(sql_kinds, advisory_flags)
{
	static const char *lock[] = {
		"SELECT pg_advisory_lock(1)",
		"select PG_ADVISORY_LOCK_SHARED(1, 2)",
		"SELECT pg_try_advisory_lock(1)",
		"SELECT x FROM t WHERE pg_try_advisory_lock_shared(id)",
		"SELECT pg_catalog.pg_advisory_lock(1)",
		"SELECT pg_advisory_lock /* c */ (1)",
	};
	for (size_t i = 0; i < sizeof lock / sizeof lock[0]; i++) {
		struct scan_res r;
		scan(&r, lock[i]);
		cr_assert_eq(r.found, 1, "%s", lock[i]);
		cr_assert_eq(r.s[0].flags, SQL_F_ADVISORY_LOCK, "%s: flags %d", lock[i], r.s[0].flags);
		cr_assert_eq(r.s[0].kind, SQL_NONE);
		cr_assert_null(proto_sql_tag(&r.s[0]));
		scan_done(&r);
	}
	struct scan_res r;
	scan(&r, "SELECT pg_advisory_unlock_all()");
	cr_assert_eq(r.found, 1);
	cr_assert_eq(r.s[0].flags, SQL_F_ADVISORY_UNLOCK_ALL);
	scan_done(&r);
	/* both in one statement; a kind and a flag together */
	scan(&r, "SELECT pg_advisory_unlock_all(), pg_advisory_lock(2)");
	cr_assert_eq(r.found, 1);
	cr_assert_eq(r.s[0].flags, SQL_F_ADVISORY_LOCK | SQL_F_ADVISORY_UNLOCK_ALL);
	scan_done(&r);
	scan(&r, "SELECT pg_advisory_lock(1) INTO TEMP t");
	cr_assert_eq(r.found, 1);
	cr_assert_eq(r.s[0].kind, SQL_TEMP_OBJECT);
	cr_assert_eq(r.s[0].flags, SQL_F_ADVISORY_LOCK);
	scan_done(&r);
	/* not locks: transaction-level ones, names in strings, longer names */
	expect_none("SELECT pg_advisory_xact_lock(1)");
	expect_none("SELECT pg_advisory_unlock(1)");
	expect_none("SELECT 'pg_advisory_lock(1)'");
	expect_none("SELECT $$pg_advisory_lock(1)$$");
	expect_none("SELECT pg_advisory_locks(1)");
	expect_none("SELECT 1 -- pg_advisory_lock(1)");
	expect_none("SELECT my_pg_advisory_lock(1)");
	/* the flag is per statement */
	scan(&r, "SELECT pg_advisory_lock(1); SELECT 2; SELECT pg_advisory_unlock_all()");
	cr_assert_eq(r.n, 3);
	cr_assert_eq(r.found, 2);
	cr_assert_eq(r.s[0].index, 0);
	cr_assert_eq(r.s[0].flags, SQL_F_ADVISORY_LOCK);
	cr_assert_eq(r.s[1].index, 2);
	cr_assert_eq(r.s[1].flags, SQL_F_ADVISORY_UNLOCK_ALL);
	scan_done(&r);
}

/* Observed on PostgreSQL 15.18: SELECT "pg_advisory_lock"(42) takes the lock
 * (pg_locks shows one advisory lock afterwards). */
Test(sql_kinds, advisory_quoted_name)
{
	struct scan_res r;
	scan(&r, "SELECT \"pg_advisory_lock\"(42)");
	cr_assert_eq(r.found, 1);
	cr_assert_eq(r.s[0].flags, SQL_F_ADVISORY_LOCK);
	scan_done(&r);
}

/* CommandComplete tags observed on PostgreSQL 15.18 for each statement. */
Test(sql_kinds, tags_pg15)
{
	static const struct { const char *sql, *tag; } c[] = {
		{ "SET application_name = 'x'", "SET" },
		{ "SET ROLE NONE", "SET" },
		{ "SET TIME ZONE DEFAULT", "SET" },
		{ "SET TIME ZONE LOCAL", "SET" },
		{ "RESET application_name", "RESET" },
		{ "RESET ALL", "RESET" },
		{ "PREPARE p1 AS SELECT 1", "PREPARE" },
		{ "DEALLOCATE p1", "DEALLOCATE" },
		{ "DEALLOCATE ALL", "DEALLOCATE ALL" },
		{ "DISCARD TEMP", "DISCARD TEMP" },
		{ "DISCARD ALL", "DISCARD ALL" },
		{ "LISTEN c1", "LISTEN" },
		{ "UNLISTEN c1", "UNLISTEN" },
		{ "UNLISTEN *", "UNLISTEN" },
		{ "DECLARE cur CURSOR WITH HOLD FOR SELECT 1", "DECLARE CURSOR" },
		{ "CLOSE cur", "CLOSE CURSOR" },
		{ "CLOSE ALL", "CLOSE CURSOR ALL" },
		{ "SELECT 1 AS a INTO TEMP t2", "SELECT 1" },
		{ "CREATE TEMP TABLE t (a int)", "CREATE TABLE" },
		{ "LOAD 'auto_explain'", "LOAD" },
		{ "SET SESSION AUTHORIZATION 'postgres'", "SET" },
		{ "SET application_name TO DEFAULT", "SET" },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		struct scan_res r;
		scan(&r, c[i].sql);
		cr_assert_eq(r.found, 1, "%s", c[i].sql);
		const char *tag = proto_sql_tag(&r.s[0]);
		/* NULL: any tag will do; otherwise the one the server sends */
		if (tag)
			cr_assert_str_eq(tag, c[i].tag, "%s: expects tag %s, PostgreSQL sends %s", c[i].sql, tag, c[i].tag);
		scan_done(&r);
	}
	/* the tags pgring relies on to know the statement did run */
	static const struct { const char *sql, *tag; } must[] = {
		{ "SET a.b = 1", "SET" }, { "RESET ALL", "RESET" }, { "DEALLOCATE ALL", "DEALLOCATE ALL" },
		{ "DISCARD ALL", "DISCARD ALL" }, { "CLOSE ALL", "CLOSE CURSOR ALL" },
	};
	for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
		struct scan_res r;
		scan(&r, must[i].sql);
		cr_assert_eq(r.found, 1);
		cr_assert_not_null(proto_sql_tag(&r.s[0]), "%s", must[i].sql);
		cr_assert_str_eq(proto_sql_tag(&r.s[0]), must[i].tag);
		scan_done(&r);
	}
	struct proto_sql_stmt none = { 0 };
	cr_assert_null(proto_sql_tag(&none));
}

/* ---- splitting ---- */

TestSuite(sql_split);

static void expect_count(const char *sql, int n)
{
	struct scan_res r;
	scan(&r, sql);
	cr_assert_eq(r.n, n, "[%s]: %d statements, expected %d", sql, r.n, n);
	scan_done(&r);
}

Test(sql_split, counts)
{
	expect_count("", 0);
	expect_count(";", 0);
	expect_count(";;;", 0);
	expect_count("  \n\t ", 0);
	expect_count("-- only a comment", 0);
	expect_count("/* only */ /* comments */ ; -- x\n ;", 0);
	expect_count("SELECT 1", 1);
	expect_count("SELECT 1;", 1);
	expect_count(";;SELECT 1;;", 1);
	expect_count("SELECT 1; SELECT 2", 2);
	expect_count("SELECT 1;;SELECT 2;", 2);
	expect_count("SELECT 1; /* c */ ; SELECT 2; -- c\n", 2);
	/* semicolons that do not end a statement */
	expect_count("SELECT ';'", 1);
	expect_count("SELECT 'it''s;'; SELECT 2", 2);
	expect_count("SELECT E'\\';'; SELECT 2", 2);
	expect_count("SELECT E'\\\\'; SELECT 2", 2);
	expect_count("SELECT 'a\\'; SELECT 2", 2);          /* standard strings: \ is plain */
	expect_count("SELECT \"a;b\" FROM t; SELECT 2", 2);
	expect_count("SELECT \"a\"\";b\"; SELECT 2", 2);
	expect_count("SELECT $$;$$; SELECT 2", 2);
	expect_count("SELECT $tag$ ; $$ ; $tag$; SELECT 2", 2);
	expect_count("SELECT $a$ $b$ ; $b$ $a$", 1);
	expect_count("SELECT $_x1$;$_x1$;", 1);
	expect_count("SELECT 1 -- ;\n; SELECT 2", 2);
	expect_count("SELECT 1 /* ; */ ; SELECT 2", 2);
	expect_count("SELECT 1 /* /* ; */ ; */ ; SELECT 2", 2);
	expect_count("SELECT $1; SELECT $2", 2);             /* parameters are not dollar quotes */
	expect_count("SELECT a$b; SELECT 2", 2);             /* $ inside an identifier */
	expect_count("SELECT U&'d\\0061t;'; SELECT 2", 2);
	expect_count("SELECT U&\"d;\"; SELECT 2", 2);
	expect_count("SELECT b'01;'; SELECT x'1f;'", 2);
	expect_count("SELECT 1e-5; SELECT .5;", 2);
	expect_count("SELECT 1--2\n;SELECT 2", 2);
}

Test(sql_split, index_and_text)
{
	const char *sql = ";; SELECT 1; -- c\n SET a.b = 1 -- trailing\n ; /* x */; RESET ALL;SELECT 2;"
			  "LISTEN x";
	struct scan_res r;
	scan(&r, sql);
	cr_assert_eq(r.n, 5);
	cr_assert_eq(r.found, 3);
	cr_assert_eq(r.s[0].index, 1);
	cr_assert_eq(r.s[0].kind, SQL_SET);
	cr_assert_eq(r.s[0].text_len, strlen("SET a.b = 1"));
	cr_assert(memcmp(r.s[0].text, "SET a.b = 1", r.s[0].text_len) == 0);
	cr_assert_eq(r.s[1].index, 2);
	cr_assert_eq(r.s[1].kind, SQL_RESET_ALL);
	cr_assert_eq(r.s[1].text_len, strlen("RESET ALL"));
	cr_assert(memcmp(r.s[1].text, "RESET ALL", r.s[1].text_len) == 0);
	cr_assert_eq(r.s[2].index, 4);
	cr_assert_eq(r.s[2].kind, SQL_LISTEN);
	cr_assert_eq(r.s[2].text, r.buf + r.len - strlen("LISTEN x"));
	cr_assert_eq(r.s[2].text_len, strlen("LISTEN x"));
	scan_done(&r);
}

Test(sql_split, max_and_null_count)
{
	const char *sql = "SET a.b = 1; SET a.c = 2; SET a.d = 3; SELECT 1; SET a.e = 4";
	struct scan_res r;
	scan_n(&r, sql, strlen(sql), 2);
	cr_assert_eq(r.found, 2);
	cr_assert_eq(r.n, 5, "every statement is counted even past max");
	cr_assert_str_eq(r.s[0].value, "1");
	cr_assert_str_eq(r.s[1].value, "2");
	scan_done(&r);
	scan_n(&r, sql, strlen(sql), 0);
	cr_assert_eq(r.found, 0);
	cr_assert_eq(r.n, 5);
	scan_done(&r);
	/* nstmts may be NULL */
	struct proto_sql_stmt s[8];
	cr_assert_eq(proto_sql_scan(sql, strlen(sql), s, 8, NULL), 4);
	cr_assert_eq(s[3].index, 4);
	cr_assert_str_eq(s[3].name, "a.e");
	proto_sql_free(s, 4);
	/* len, not the NUL, ends the string */
	scan_n(&r, sql, strlen("SET a.b = 1; SET a.c = 2"), MAXS);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(r.found, 2);
	cr_assert_str_eq(r.s[1].value, "2");
	scan_done(&r);
	scan_n(&r, "SET a.b = 12345", strlen("SET a.b = 12"), MAXS);
	cr_assert_eq(r.found, 1);
	cr_assert_str_eq(r.s[0].value, "12");
	scan_done(&r);
}

Test(sql_split, statements_hidden_in_quotes)
{
	/* session statements inside strings, identifiers, dollar quotes and comments
	 * are not statements */
	static const char *q[] = {
		"SELECT 'x; SET a.b = 1'",
		"SELECT E'x\\'; SET a.b = 1'",
		"SELECT \"x; SET a.b = 1\"",
		"SELECT $q$ x; SET a.b = 1; $q$",
		"DO $$BEGIN PERFORM 1; RESET ALL; END$$",
		"SELECT 1 /* ; SET a.b = 1; */",
		"SELECT 1 /* nested /* */ ; SET a.b = 1; */",
		"SELECT 1 -- ; SET a.b = 1",
	};
	for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
		struct scan_res r;
		scan(&r, q[i]);
		cr_assert_eq(r.n, 1, "[%s]: %d statements", q[i], r.n);
		cr_assert_eq(r.found, 0, "[%s]", q[i]);
		scan_done(&r);
	}
}

/* A function body in BEGIN ATOMIC ... END is part of the CREATE FUNCTION
 * statement. Observed on PostgreSQL 15.18 (libpq, one simple Query): for
 * "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;
 *  SET search_path = x; DROP FUNCTION f" the server sends CommandComplete
 * CREATE FUNCTION, SET, then the DROP's result: the SET is statement 1. */
Test(sql_split, begin_atomic)
{
	struct scan_res r;
	scan(&r, "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; "
		 "SET search_path = x; DROP FUNCTION f");
	cr_assert_eq(r.found, 1);
	cr_assert_eq(r.n, 3, "%d statements", r.n);
	cr_assert_eq(r.s[0].index, 1, "SET is statement %d", r.s[0].index);
	scan_done(&r);
}

Test(sql_split, unterminated)
{
	/* unterminated quotes and comments swallow the rest; nothing crashes */
	static const struct { const char *sql; int n; } c[] = {
		{ "SELECT 'abc", 1 },
		{ "SELECT 'abc; SET a.b = 1", 1 },
		{ "SELECT E'abc\\", 1 },
		{ "SELECT E'abc\\'", 1 },
		{ "SELECT \"abc", 1 },
		{ "SELECT $$abc", 1 },
		{ "SELECT $t$abc$t", 1 },
		{ "SELECT 1 /* abc", 1 },
		{ "SELECT 1 /* /* */", 1 },
		{ "SELECT 1 -- abc", 1 },
		{ "/*", 0 },
		{ "--", 0 },
		{ "'", 1 },
		{ "E'", 1 },
		{ "\"", 1 },
		{ "$", 1 },
		{ "$$", 1 },
		{ "$a", 1 },
		{ "U&'", 1 },
		{ "U&\"", 1 },
		{ "SET a.b = '", 1 },
		{ "SET a.b = E'x\\'", 1 },
		{ "SET a.b = \"", 1 },
		{ "SET a.b = $$", 1 },
		{ "SET a.b = -", 1 },
		{ "SET a.b =", 1 },
		{ "SET search_path = \"", 1 },
		{ "SET search_path = 'x", 1 },
		{ "SET search_path = x,", 1 },
		{ "DEALLOCATE \"", 1 },
		{ "LISTEN \"abc", 1 },
		{ "RESET \"a\".", 1 },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		struct scan_res r;
		scan(&r, c[i].sql);
		cr_assert_eq(r.n, c[i].n, "[%s]: %d statements", c[i].sql, r.n);
		/* a SET cut off before or inside its value (and no quote to blame) has no value */
		if (strncmp(c[i].sql, "SET", 3) == 0 && !strpbrk(c[i].sql, "'\""))
			for (int k = 0; k < r.found; k++)
				cr_assert_neq(r.s[k].kind, SQL_SET, "[%s]: value [%s]", c[i].sql, r.s[k].value);
		scan_done(&r);
	}
	/* an unterminated string never hides the cut: "SET a.b = 'x" is not x */
	struct scan_res r;
	scan(&r, "SET a.b = 'x");
	cr_assert(r.found == 0 || r.s[0].kind != SQL_SET || strcmp(r.s[0].value, "x") != 0);
	scan_done(&r);
}

/* ---- robustness: random bytes and cut-off real queries ---- */

TestSuite(sql_fuzz);

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fuzz_one(const char *data, size_t len)
{
	struct scan_res r;
	scan_n(&r, data, len, 1 + (int)(rnd() % MAXS));
	for (int i = 0; i < r.found; i++) {
		cr_assert(r.s[i].kind <= SQL_PIN);
		(void)proto_sql_tag(&r.s[i]);
		if (r.s[i].value)
			(void)strlen(r.s[i].value);
	}
	scan_done(&r);
}

static const char *corpus[] = {
	"SET search_path TO \"$user\", 'My Schema', x; SHOW search_path;",
	"SET application_name = E'a\\\\b\\'c\\tq'; RESET ALL; DISCARD ALL",
	"PREPARE p (int, text) AS SELECT $1, $2; EXECUTE p(1, 'x'); DEALLOCATE PREPARE p",
	"DECLARE c CURSOR WITH HOLD FOR SELECT $tag$ a;b $tag$; CLOSE c; CLOSE ALL",
	"CREATE TEMP TABLE t (a int) ON COMMIT DROP; SELECT 1 INTO TEMP u; LISTEN \"Ch\"; UNLISTEN *",
	"SELECT pg_advisory_lock(1) /* /* nested */ ; */ -- x\n; SELECT pg_advisory_unlock_all()",
	"SET TIME ZONE 'Europe/Paris'; SET TIME ZONE -5; SET TIME ZONE LOCAL; SET ROLE NONE",
	"SET LOCAL a.b = 1; SET SESSION AUTHORIZATION 'x'; LOAD 'y'; RESET \"a\".b; SET x.y TO DEFAULT",
	"SET ut.v = - 2.5e3, .5, 1e-3, U&'d\\0061t', $$d$$, b'01', \"Q\"\"\", 'it''s'",
	"SET search_path = 'a\"b', \"c\"\"d\", E'e\\\\f', \xc3\xbc, _x, X1",
};

Test(sql_fuzz, random_bytes)
{
	static const char alphabet[] = "'\"$;-/*\\eEuU&_ aZ09.,=+\n\t()";
	char buf[256];
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = rnd() % sizeof buf;
		bool syntaxy = iter & 1;
		for (size_t i = 0; i < len; i++)
			buf[i] = syntaxy ? alphabet[rnd() % (sizeof alphabet - 1)] : (char)rnd();
		fuzz_one(buf, len);
	}
}

Test(sql_fuzz, prefixes_and_mutations)
{
	char buf[512];
	for (size_t c = 0; c < sizeof corpus / sizeof corpus[0]; c++) {
		size_t n = strlen(corpus[c]);
		cr_assert(n < sizeof buf);
		for (size_t len = 0; len <= n; len++)
			fuzz_one(corpus[c], len);          /* every prefix */
		for (size_t off = 0; off < n; off++)
			fuzz_one(corpus[c] + off, n - off);  /* every suffix */
		for (int iter = 0; iter < 2000; iter++) {
			memcpy(buf, corpus[c], n);
			for (int k = 1 + (int)(rnd() % 4); k > 0; k--)
				buf[rnd() % n] = (char)rnd();
			fuzz_one(buf, 1 + rnd() % n);
		}
	}
}

Test(sql_fuzz, long_inputs)
{
	/* many statements, long strings and identifiers, deep comments */
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	cr_assert_not_null(buf);
	size_t k = 0;
	while (k + 16 < cap / 2)
		k += (size_t)sprintf(buf + k, "SET a.b = %u;", (unsigned)(k % 1000));
	struct proto_sql_stmt *s = calloc(70000, sizeof *s);
	cr_assert_not_null(s);
	int n = 0, found = proto_sql_scan(buf, k, s, 70000, &n);
	cr_assert_eq(found, n);
	cr_assert(n > 1000);
	cr_assert_eq(s[found - 1].kind, SQL_SET);
	proto_sql_free(s, found);
	/* one huge value */
	k = (size_t)sprintf(buf, "SET a.b = '");
	memset(buf + k, 'x', cap / 2);
	k += cap / 2;
	buf[k++] = '\'';
	found = proto_sql_scan(buf, k, s, 1, &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(found, 1);
	cr_assert(s[0].kind == SQL_PIN || (s[0].kind == SQL_SET && strlen(s[0].value) == cap / 2));
	proto_sql_free(s, found);
	/* a long identifier as a name is cut to fit */
	k = (size_t)sprintf(buf, "LISTEN ");
	memset(buf + k, 'y', 1000);
	k += 1000;
	found = proto_sql_scan(buf, k, s, 1, &n);
	cr_assert_eq(found, 1);
	cr_assert_eq(s[0].kind, SQL_LISTEN);
	cr_assert(strlen(s[0].name) < SQL_NAME_MAX);
	/* deep comment nesting */
	k = 0;
	for (int i = 0; i < 10000; i++)
		k += (size_t)sprintf(buf + k, "/*");
	k += (size_t)sprintf(buf + k, "; SET a.b = 1;");
	for (int i = 0; i < 10000; i++)
		k += (size_t)sprintf(buf + k, "*/");
	k += (size_t)sprintf(buf + k, "; RESET ALL");
	found = proto_sql_scan(buf, k, s, 4, &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(found, 1);
	cr_assert_eq(s[0].kind, SQL_RESET_ALL);
	free(s);
	free(buf);
}

/* ---- quoting ---- */

TestSuite(sql_quote);

static void expect_quote(const char *in, const char *want)
{
	char out[256];
	int n = proto_sql_quote(in, out, sizeof out);
	cr_assert_eq(n, (int)strlen(want), "[%s]: %d", in, n);
	cr_assert_str_eq(out, want);
	/* too small: -1, and never a byte written at or past cap */
	size_t need = strlen(want) + 1;
	for (size_t cap = 0; cap < need; cap++) {
		char small[260];
		memset(small, '#', sizeof small);
		int m = proto_sql_quote(in, small, cap);
		cr_assert_eq(m, -1, "[%s] cap %zu: %d, needs %zu", in, cap, m, need);
		for (size_t i = cap; i < sizeof small; i++)
			cr_assert_eq(small[i], '#', "[%s] cap %zu: byte %zu written", in, cap, i);
	}
	/* and the literal reads back as the string */
	struct scan_res r;
	char sql[300];
	snprintf(sql, sizeof sql, "SET a.b = %s", want);
	scan(&r, sql);
	cr_assert_eq(r.found, 1);
	cr_assert_eq(r.s[0].kind, SQL_SET, "%s", sql);
	cr_assert_str_eq(r.s[0].value, in);
	scan_done(&r);
}

Test(sql_quote, literals)
{
	expect_quote("abc", "'abc'");
	expect_quote("it's", "'it''s'");
	expect_quote("''", "''''''");
	expect_quote("a\\b", "E'a\\\\b'");
	expect_quote("a\\'b", "E'a\\\\''b'");
	expect_quote("x;y -- $$ /*", "'x;y -- $$ /*'");
	expect_quote("\\", "E'\\\\'");
	expect_quote("q", "'q'");
}

/* An empty string needs 3 bytes ('', NUL): with 2 it must not write a third. */
Test(sql_quote, empty)
{
	expect_quote("", "''");
}

/* A buffer of exactly the literal's length plus the NUL is enough. */
Test(sql_quote, exact_fit)
{
	static const char *in[] = { "", "abc", "it's", "a\\b", "q" };
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
		char big[64], small[64];
		int n = proto_sql_quote(in[i], big, sizeof big);
		cr_assert(n > 0);
		memset(small, '#', sizeof small);
		int m = proto_sql_quote(in[i], small, (size_t)n + 1);
		cr_assert_eq(m, n, "[%s]: %d bytes + NUL do not fit in %d", in[i], n, n + 1);
		cr_assert_str_eq(small, big);
		cr_assert_eq(small[n + 1], '#');
	}
}
