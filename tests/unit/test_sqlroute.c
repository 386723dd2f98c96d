/* tests/unit/test_sqlroute.c: proto/sqlroute.c: routing hints in leading
 * comments and the read-only proofs of read/write splitting, both ways: what
 * must go to a replica and, more important, what must not. */
#include "proto/sqlroute.h"

#include <criterion/criterion.h>
#include <string.h>

static bool ro(const char *sql) { return proto_sql_read_only(sql, strlen(sql)); }
static int hint(const char *sql) { return proto_sql_target_hint(sql, strlen(sql)); }

static void expect_ro(const char *const *cases, size_t n, bool want)
{
	for (size_t i = 0; i < n; i++)
		cr_expect_eq(ro(cases[i]), want, "%s: expected %s", cases[i], want ? "read-only" : "not read-only");
}

#define EXPECT_ALL(cases, want) expect_ro(cases, sizeof cases / sizeof cases[0], want)

Test(sqlroute, reads_go_to_replicas)
{
	static const char *const yes[] = {
		"SELECT 1",
		"select/*x*/1",
		"  select abalance from pgbench_accounts where aid = $1",
		"SELECT 1; SELECT 2",
		"SELECT 1;",
		"WITH x AS (SELECT 1) SELECT * FROM x",
		"WITH RECURSIVE r(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT sum(n) FROM r",
		"SELECT for_update FROM t",
		"SELECT a FROM t WHERE b = 'for update'",
		"SELECT 'nextval('",
		"SELECT $$ nextval( $$",
		"SELECT $tag$ it's ; update $tag$",
		"SELECT E'it\\'s' AS x",
		"EXPLAIN SELECT 1",
		"EXPLAIN (COSTS OFF) SELECT * FROM t",
		"EXPLAIN VERBOSE SELECT 1",
		"SHOW work_mem",
		"show all",
		"TABLE t",
		"VALUES (1), (2)",
		"(SELECT 1) UNION (SELECT 2)",
		"SELECT 1 -- update t\n",
		"SELECT /* nested /* comment */ update */ 1",
		"--!pgring target=any\nSELECT 1",
		"SELECT pg_sleep(0.1)",
		"SELECT substring('abc' FROM 1 FOR 2)",
		"SELECT \"Weird\"\"name\" FROM t",
		"SELECT count(*) FILTER (WHERE x > 0) FROM t",
		"SELECT pg_is_in_recovery(), now()",
		"SELECT x'ff'::int, b'101'",
	};
	EXPECT_ALL(yes, true);
}

Test(sqlroute, writes_stay_on_the_primary)
{
	static const char *const no[] = {
		"",
		"   ",
		";",
		"-- only a comment",
		"INSERT INTO t VALUES (1)",
		"UPDATE t SET a = 1",
		"DELETE FROM t",
		"SELECT 1; UPDATE t SET a=1",
		"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
		"WITH x AS (INSERT INTO t VALUES (1) RETURNING a) SELECT a FROM x",
		"SELECT * FROM t FOR UPDATE",
		"select * from t for share nowait",
		"SELECT * FROM t FOR NO KEY UPDATE",
		"SELECT * FROM t FOR KEY SHARE",
		"SELECT 1 FROM t WHERE x = E'\\'' FOR UPDATE",
		"SELECT nextval('s')",
		"SELECT pg_catalog.nextval('s')",
		"SELECT \"nextval\"('s')",
		"SELECT setval('s', 1)",
		"SELECT currval('s')",
		"SELECT pg_advisory_lock(1)",
		"SELECT pg_try_advisory_xact_lock(1)",
		"SELECT set_config('a.b', 'c', false)",
		"SELECT lo_create(0)",
		"SELECT txid_current()",
		"SELECT pg_notify('c', 'x')",
		"SELECT pg_create_restore_point('x')",
		"SELECT * INTO t2 FROM t",
		"EXPLAIN ANALYZE SELECT 1",
		"EXPLAIN (ANALYZE) SELECT 1",
		"EXPLAIN (ANALYZE false) SELECT 1",
		"EXPLAIN ANALYSE SELECT 1",
		"EXPLAIN UPDATE t SET a = 1",
		"BEGIN; SELECT 1; COMMIT",
		"BEGIN",
		"START TRANSACTION READ ONLY",
		"SET search_path = x",
		"DECLARE c CURSOR FOR SELECT 1",
		"LISTEN x",
		"CALL p()",
		"DO $$ BEGIN END $$",
		"PREPARE p AS SELECT 1",
		"EXECUTE p",
		"COPY t TO STDOUT",
		"LOCK t",
		"VACUUM t",
		"SELECT 'x",
		"SELECT \"x",
		"SELECT 1 /* unterminated",
		"SELECT $$ unterminated",
		"SELECT 'a\\' ; DELETE FROM t; --'",
		"SELECT f() ; CREATE TABLE z (a int)",
	};
	EXPECT_ALL(no, false);
}

Test(sqlroute, hints)
{
	cr_expect_eq(hint("--!pgring target=replica\nSELECT 1"), PROTO_TARGET_REPLICA);
	cr_expect_eq(hint("/*!pgring target=primary*/ SELECT 1"), PROTO_TARGET_PRIMARY);
	cr_expect_eq(hint("  --!pgring  foo=bar target=any"), PROTO_TARGET_ANY);
	cr_expect_eq(hint("\n\t--!pgring target=read-only\nUPDATE t SET a = 1"), PROTO_TARGET_REPLICA);
	cr_expect_eq(hint("-- pgring target=replica\nSELECT 1"), PROTO_TARGET_NONE, "needs the '!'");
	cr_expect_eq(hint("SELECT 1 --!pgring target=replica"), PROTO_TARGET_NONE, "only at the start");
	cr_expect_eq(hint("--!pgring target=bogus\nSELECT 1"), PROTO_TARGET_NONE);
	cr_expect_eq(hint("--!pgringtarget=replica\nSELECT 1"), PROTO_TARGET_NONE);
	cr_expect_eq(hint("/*!pgring target=replica"), PROTO_TARGET_NONE, "unterminated block comment");
	cr_expect_eq(hint("--!pgring\nSELECT 1 target=replica"), PROTO_TARGET_NONE, "the hint ends with its line");
	cr_expect_eq(hint(""), PROTO_TARGET_NONE);
}

Test(sqlroute, target_names)
{
	static const struct { const char *s; int t; } cases[] = {
		{ "primary", PROTO_TARGET_PRIMARY }, { "PRIMARY", PROTO_TARGET_PRIMARY },
		{ "read-write", PROTO_TARGET_PRIMARY }, { "replica", PROTO_TARGET_REPLICA },
		{ "Standby", PROTO_TARGET_REPLICA }, { "read-only", PROTO_TARGET_REPLICA },
		{ "prefer-standby", PROTO_TARGET_REPLICA }, { "prefer-replica", PROTO_TARGET_REPLICA },
		{ "any", PROTO_TARGET_ANY }, { "anything", PROTO_TARGET_NONE }, { "", PROTO_TARGET_NONE },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(proto_target_parse(cases[i].s, strlen(cases[i].s)), cases[i].t, "%s", cases[i].s);
}

Test(sqlroute, length_bounds_the_scan)
{
	const char *sql = "SELECT 1; UPDATE t SET a = 1";
	cr_expect(proto_sql_read_only(sql, 9), "only the first statement is inside the length");
	cr_expect_not(proto_sql_read_only(sql, strlen(sql)));
	cr_expect_not(proto_sql_read_only("SELECT 'abc'", 10), "a string cut by the length is unterminated");
}
