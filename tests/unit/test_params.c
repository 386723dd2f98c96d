/* tests/unit/test_params.c: pool/params.c, the session parameter sets pgring
 * keeps per client and per server: lookups, the order-independent digest, which
 * names count as session state, the SET/RESET replay, and the parsing of the
 * startup "options" value. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/params.h"

/* ---- set, get, remove, copy ---- */

TestSuite(params_basic);

Test(params_basic, set_get_case_insensitive)
{
	struct params p = { 0 };
	cr_assert_null(params_get(&p, "TimeZone"));
	cr_assert(params_set(&p, "TimeZone", "UTC"));
	cr_assert_eq(p.n, 1);
	cr_assert_str_eq(params_get(&p, "TimeZone"), "UTC");
	cr_assert_str_eq(params_get(&p, "timezone"), "UTC");
	cr_assert_str_eq(params_get(&p, "TIMEZONE"), "UTC");
	cr_assert_null(params_get(&p, "TimeZon"));
	cr_assert_null(params_get(&p, "TimeZone2"));
	params_clear(&p);
}

Test(params_basic, replace)
{
	struct params p = { 0 };
	cr_assert(params_set(&p, "TimeZone", "UTC"));
	cr_assert(params_set(&p, "search_path", "public"));
	cr_assert(params_set(&p, "timezone", "Europe/Paris"));
	cr_assert_eq(p.n, 2);
	cr_assert_str_eq(params_get(&p, "TimeZone"), "Europe/Paris");
	cr_assert_str_eq(params_get(&p, "search_path"), "public");
	/* the same value again changes nothing */
	uint64_t h = p.hash;
	cr_assert(params_set(&p, "TIMEZONE", "Europe/Paris"));
	cr_assert_eq(p.n, 2);
	cr_assert_eq(p.hash, h);
	/* values are case-sensitive */
	cr_assert(params_set(&p, "TimeZone", "europe/paris"));
	cr_assert_str_eq(params_get(&p, "TimeZone"), "europe/paris");
	cr_assert_neq(p.hash, h);
	/* an empty value is a value */
	cr_assert(params_set(&p, "application_name", ""));
	cr_assert_str_eq(params_get(&p, "application_name"), "");
	cr_assert_eq(p.n, 3);
	params_clear(&p);
}

Test(params_basic, remove)
{
	struct params p = { 0 };
	cr_assert(params_set(&p, "a", "1"));
	cr_assert(params_set(&p, "b", "2"));
	cr_assert(params_set(&p, "c", "3"));
	uint64_t with_b = p.hash;
	params_remove(&p, "B");
	cr_assert_eq(p.n, 2);
	cr_assert_null(params_get(&p, "b"));
	cr_assert_str_eq(params_get(&p, "a"), "1");
	cr_assert_str_eq(params_get(&p, "c"), "3");
	params_remove(&p, "nosuch");
	cr_assert_eq(p.n, 2);
	cr_assert(params_set(&p, "b", "2"));
	cr_assert_eq(p.hash, with_b);
	params_remove(&p, "a");
	params_remove(&p, "b");
	params_remove(&p, "c");
	cr_assert_eq(p.n, 0);
	cr_assert_eq(p.hash, 0);
	params_clear(&p);
}

Test(params_basic, clear_and_reuse)
{
	struct params p = { 0 };
	cr_assert(params_set(&p, "a", "1"));
	params_clear(&p);
	cr_assert_eq(p.n, 0);
	cr_assert_eq(p.hash, 0);
	cr_assert_null(params_get(&p, "a"));
	cr_assert(params_set(&p, "a", "2"));
	cr_assert_str_eq(params_get(&p, "a"), "2");
	params_clear(&p);
	params_clear(&p);   /* twice is harmless */
}

Test(params_basic, copy)
{
	struct params src = { 0 }, dst = { 0 };
	cr_assert(params_set(&src, "TimeZone", "UTC"));
	cr_assert(params_set(&src, "search_path", "a, b"));
	cr_assert(params_set(&dst, "DateStyle", "ISO"));   /* replaced by the copy */
	cr_assert(params_copy(&dst, &src));
	cr_assert_eq(dst.n, 2);
	cr_assert_eq(dst.hash, src.hash);
	cr_assert_null(params_get(&dst, "DateStyle"));
	cr_assert_str_eq(params_get(&dst, "timezone"), "UTC");
	cr_assert_str_eq(params_get(&dst, "search_path"), "a, b");
	/* independent storage */
	cr_assert(params_set(&src, "TimeZone", "GMT"));
	params_remove(&src, "search_path");
	cr_assert_str_eq(params_get(&dst, "TimeZone"), "UTC");
	cr_assert_str_eq(params_get(&dst, "search_path"), "a, b");
	/* copying an empty set empties */
	struct params empty = { 0 };
	cr_assert(params_copy(&dst, &empty));
	cr_assert_eq(dst.n, 0);
	cr_assert_eq(dst.hash, 0);
	params_clear(&src);
	params_clear(&dst);
}

Test(params_basic, many)
{
	struct params p = { 0 };
	char name[32], value[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof name, "ext.p%d", i);
		snprintf(value, sizeof value, "v%d", i * 7);
		cr_assert(params_set(&p, name, value));
	}
	cr_assert_eq(p.n, 1000);
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof name, "EXT.P%d", i);
		snprintf(value, sizeof value, "v%d", i * 7);
		cr_assert_str_eq(params_get(&p, name), value);
	}
	params_clear(&p);
}

/* n and cap are uint16_t: past 32768 entries the doubling of cap wraps to 0.
 * Whatever the limit, params_set must either store the entry or return false
 * and leave the set intact. */
Test(params_basic, very_many_fails_cleanly)
{
	struct params p = { 0 };
	char name[32];
	int stored = 0;
	for (int i = 0; i < 40000; i++) {
		snprintf(name, sizeof name, "x%d", i);
		if (!params_set(&p, name, "1"))
			break;
		stored++;
	}
	cr_assert_eq(p.n, stored);
	for (int i = 0; i < stored; i += 997) {
		snprintf(name, sizeof name, "x%d", i);
		cr_assert_not_null(params_get(&p, name), "entry %d lost (stored %d)", i, stored);
	}
	snprintf(name, sizeof name, "x%d", stored - 1);
	cr_assert_not_null(params_get(&p, name));
	params_clear(&p);
}

/* ---- the digest ---- */

TestSuite(params_hash);

Test(params_hash, order_independent)
{
	static const char *const kv[][2] = {
		{ "TimeZone", "UTC" }, { "search_path", "a, b" }, { "application_name", "psql" },
		{ "DateStyle", "ISO, MDY" }, { "client_encoding", "UTF8" },
	};
	const int n = 5;
	/* every rotation and its reverse */
	uint64_t first = 0;
	for (int rot = 0; rot < n; rot++)
		for (int dir = 0; dir < 2; dir++) {
			struct params p = { 0 };
			for (int i = 0; i < n; i++) {
				int k = dir ? (rot + n - i) % n : (rot + i) % n;
				cr_assert(params_set(&p, kv[k][0], kv[k][1]));
			}
			if (rot == 0 && dir == 0)
				first = p.hash;
			cr_assert_eq(p.hash, first, "rotation %d dir %d", rot, dir);
			params_clear(&p);
		}
}

Test(params_hash, follows_content)
{
	struct params a = { 0 }, b = { 0 };
	cr_assert(params_set(&a, "TimeZone", "UTC"));
	cr_assert(params_set(&b, "timezone", "UTC"));   /* names compare case-insensitively */
	cr_assert_eq(a.hash, b.hash);
	cr_assert(params_set(&b, "TimeZone", "GMT"));
	cr_assert_neq(a.hash, b.hash);
	cr_assert(params_set(&b, "TimeZone", "UTC"));
	cr_assert_eq(a.hash, b.hash);
	/* name/value boundary matters */
	struct params c = { 0 }, d = { 0 };
	cr_assert(params_set(&c, "ab", "c"));
	cr_assert(params_set(&d, "a", "bc"));
	cr_assert_neq(c.hash, d.hash);
	/* swapping values between two names matters */
	struct params e = { 0 }, f = { 0 };
	cr_assert(params_set(&e, "x", "1"));
	cr_assert(params_set(&e, "y", "2"));
	cr_assert(params_set(&f, "x", "2"));
	cr_assert(params_set(&f, "y", "1"));
	cr_assert_neq(e.hash, f.hash);
	params_clear(&a);
	params_clear(&b);
	params_clear(&c);
	params_clear(&d);
	params_clear(&e);
	params_clear(&f);
}

/* ---- which names are session state ---- */

TestSuite(params_session);

Test(params_session, facts_and_pgring_names_are_not)
{
	static const char *const no[] = {
		"server_version", "SERVER_VERSION", "server_encoding", "integer_datetimes", "is_superuser",
		"session_authorization", "in_hot_standby", "user", "database", "options", "replication",
		"pgring.target", "PGRING.target", "pgring.anything", "_pq_.x", "_pq_.protocol_managed_params",
		"",
	};
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		cr_assert_not(params_is_session(no[i]), "\"%s\" must not be a session parameter", no[i]);
}

Test(params_session, settable_names_are)
{
	static const char *const yes[] = {
		"TimeZone", "timezone", "search_path", "application_name", "DateStyle", "IntervalStyle",
		"client_encoding", "standard_conforming_strings", "statement_timeout", "myext.setting",
		/* names PostgreSQL takes for placeholders: replayed as literals */
		"Mixed.Case$1", "a$b.c$d", "\xc3\xa9.\xc3\xbc", "a.b.c", "x.\"y\".z", "a'b.c",
		"work_mem", "x",
	};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		cr_assert(params_is_session(yes[i]), "\"%s\" must be a session parameter", yes[i]);
}

/* ---- SET replay ---- */

TestSuite(params_diff);

struct three {
	struct params want, have, defaults;
};

static void three_clear(struct three *t)
{
	params_clear(&t->want);
	params_clear(&t->have);
	params_clear(&t->defaults);
}

/* Split "A;B;C" on semicolons outside single quotes, sort, rejoin with '\n'. */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static void canon(const char *sql, char *out, size_t cap)
{
	char buf[8192];
	cr_assert_lt(strlen(sql), sizeof buf);
	strcpy(buf, sql);
	char *parts[64];
	int n = 0;
	bool q = false;
	char *start = buf;
	for (char *c = buf;; c++) {
		if (*c == '\'')
			q = !q;
		if ((*c == ';' && !q) || !*c) {
			bool end = !*c;
			*c = 0;
			cr_assert_lt(n, 64);
			parts[n++] = start;
			start = c + 1;
			if (end)
				break;
		}
	}
	qsort(parts, (size_t)n, sizeof parts[0], cmp_str);
	size_t k = 0;
	out[0] = 0;
	for (int i = 0; i < n; i++)
		k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? "\n" : "", parts[i]);
}

/* Expect exactly these statements, in any order. */
static void expect_sql(struct three *t, const char *want)
{
	char out[8192];
	memset(out, 0x5a, sizeof out);
	int n = params_diff_sql(&t->want, &t->have, &t->defaults, out, sizeof out);
	if (!*want) {
		cr_assert_eq(n, 0, "expected no SQL, got %d: %s", n, n > 0 ? out : "");
		cr_assert_str_eq(out, "");
		return;
	}
	cr_assert_gt(n, 0, "expected \"%s\", got %d", want, n);
	cr_assert_eq((size_t)n, strlen(out), "returned %d for a string of %zu", n, strlen(out));
	char a[8192], b[8192];
	canon(out, a, sizeof a);
	canon(want, b, sizeof b);
	cr_assert_str_eq(a, b, "got \"%s\", expected \"%s\"", out, want);
}

Test(params_diff, identical_sets)
{
	struct three t = { 0 };
	expect_sql(&t, "");
	cr_assert(params_set(&t.want, "TimeZone", "UTC"));
	cr_assert(params_set(&t.want, "search_path", "a"));
	cr_assert(params_set(&t.have, "search_path", "a"));
	cr_assert(params_set(&t.have, "timezone", "UTC"));
	cr_assert(params_set(&t.defaults, "TimeZone", "GMT"));
	expect_sql(&t, "");
	three_clear(&t);
}

Test(params_diff, client_wants_value_server_has_default)
{
	struct three t = { 0 };
	cr_assert(params_set(&t.want, "TimeZone", "UTC"));
	cr_assert(params_set(&t.defaults, "TimeZone", "Europe/Berlin"));
	/* server lacks it: it runs with the default */
	expect_sql(&t, "SELECT pg_catalog.set_config('TimeZone', 'UTC', false)");
	/* server says it explicitly */
	cr_assert(params_set(&t.have, "TimeZone", "Europe/Berlin"));
	expect_sql(&t, "SELECT pg_catalog.set_config('TimeZone', 'UTC', false)");
	three_clear(&t);
}

Test(params_diff, client_wants_value_no_default)
{
	struct three t = { 0 };
	cr_assert(params_set(&t.want, "application_name", "psql"));
	expect_sql(&t, "SELECT pg_catalog.set_config('application_name', 'psql', false)");
	three_clear(&t);
}

Test(params_diff, server_extra_without_default_is_reset)
{
	struct three t = { 0 };
	cr_assert(params_set(&t.have, "search_path", "tenant_7"));
	expect_sql(&t, "SELECT pg_catalog.set_config('search_path', NULL, false)");
	three_clear(&t);
}

Test(params_diff, server_extra_with_default_is_set_back)
{
	struct three t = { 0 };
	cr_assert(params_set(&t.have, "search_path", "tenant_7"));
	cr_assert(params_set(&t.defaults, "search_path", "\"$user\", public"));
	expect_sql(&t, "SELECT pg_catalog.set_config('search_path', '\"$user\", public', false)");
	three_clear(&t);
}

Test(params_diff, missing_side_equal_to_default)
{
	struct three t = { 0 };
	/* server has the default explicitly, client lacks it */
	cr_assert(params_set(&t.have, "DateStyle", "ISO, MDY"));
	cr_assert(params_set(&t.defaults, "DateStyle", "ISO, MDY"));
	expect_sql(&t, "");
	three_clear(&t);
	/* client asks for the default explicitly, server lacks it */
	cr_assert(params_set(&t.want, "DateStyle", "ISO, MDY"));
	cr_assert(params_set(&t.defaults, "DateStyle", "ISO, MDY"));
	expect_sql(&t, "");
	three_clear(&t);
}

Test(params_diff, quoting)
{
	struct three t = { 0 };
	cr_assert(params_set(&t.want, "application_name", "O'Brien's app"));
	expect_sql(&t, "SELECT pg_catalog.set_config('application_name', 'O''Brien''s app', false)");
	three_clear(&t);
	cr_assert(params_set(&t.want, "application_name", "'"));
	expect_sql(&t, "SELECT pg_catalog.set_config('application_name', '''', false)");
	three_clear(&t);
	cr_assert(params_set(&t.want, "search_path", ""));
	cr_assert(params_set(&t.have, "search_path", "x"));
	expect_sql(&t, "SELECT pg_catalog.set_config('search_path', '', false)");
	three_clear(&t);
}

/* Names whose first part is a reserved word (some.var, select.x) would be a
 * syntax error after RESET or SET: both directions go through set_config with
 * the name as a literal. */
Test(params_diff, reserved_word_names)
{
	struct three t = { 0 };
	cr_assert(params_set(&t.have, "some.var", "x"));
	expect_sql(&t, "SELECT pg_catalog.set_config('some.var', NULL, false)");
	three_clear(&t);
	cr_assert(params_set(&t.want, "select.x", "it's"));
	expect_sql(&t, "SELECT pg_catalog.set_config('select.x', 'it''s', false)");
	three_clear(&t);
	cr_assert(params_set(&t.want, "order.by", "a\\b"));
	expect_sql(&t, "SELECT pg_catalog.set_config('order.by', E'a\\\\b', false)");
	three_clear(&t);
}

/* Whatever a name holds, it stays inside its literal. */
Test(params_diff, odd_names_are_literals)
{
	struct three t = { 0 };
	cr_assert(params_set(&t.want, "a'b;DROP TABLE t;--.x", "v"));
	expect_sql(&t, "SELECT pg_catalog.set_config('a''b;DROP TABLE t;--.x', 'v', false)");
	three_clear(&t);
	cr_assert(params_set(&t.have, "x\\'.y", "v"));
	expect_sql(&t, "SELECT pg_catalog.set_config(E'x\\\\''.y', NULL, false)");
	three_clear(&t);
	cr_assert(params_set(&t.want, "Mixed.Case$1", "\xc3\xa9"));
	expect_sql(&t, "SELECT pg_catalog.set_config('Mixed.Case$1', '\xc3\xa9', false)");
	three_clear(&t);
}

Test(params_diff, combinations)
{
	struct three t = { 0 };
	cr_assert(params_set(&t.want, "TimeZone", "UTC"));            /* differs from have */
	cr_assert(params_set(&t.want, "search_path", "s1"));          /* have lacks, default differs */
	cr_assert(params_set(&t.want, "application_name", "app"));    /* same on both */
	cr_assert(params_set(&t.want, "statement_timeout", "5s"));    /* have lacks, default equal */
	cr_assert(params_set(&t.have, "timezone", "GMT"));
	cr_assert(params_set(&t.have, "application_name", "app"));
	cr_assert(params_set(&t.have, "DateStyle", "German"));        /* want lacks, default differs */
	cr_assert(params_set(&t.have, "work_mem", "64MB"));           /* want lacks, no default */
	cr_assert(params_set(&t.have, "IntervalStyle", "postgres"));  /* want lacks, default equal */
	cr_assert(params_set(&t.defaults, "search_path", "public"));
	cr_assert(params_set(&t.defaults, "statement_timeout", "5s"));
	cr_assert(params_set(&t.defaults, "DateStyle", "ISO, MDY"));
	cr_assert(params_set(&t.defaults, "IntervalStyle", "postgres"));
	cr_assert(params_set(&t.defaults, "lock_timeout", "1s"));     /* neither side */
	expect_sql(&t, "SELECT pg_catalog.set_config('TimeZone', 'UTC', false);SELECT pg_catalog.set_config('search_path', 's1', false);SELECT pg_catalog.set_config('DateStyle', 'ISO, MDY', false);"
		       "SELECT pg_catalog.set_config('work_mem', NULL, false)");
	three_clear(&t);
}

Test(params_diff, combinations_without_reset)
{
	/* the same, minus the RESET case */
	struct three t = { 0 };
	cr_assert(params_set(&t.want, "TimeZone", "UTC"));
	cr_assert(params_set(&t.want, "search_path", "s1"));
	cr_assert(params_set(&t.want, "application_name", "app"));
	cr_assert(params_set(&t.want, "statement_timeout", "5s"));
	cr_assert(params_set(&t.have, "timezone", "GMT"));
	cr_assert(params_set(&t.have, "application_name", "app"));
	cr_assert(params_set(&t.have, "DateStyle", "German"));
	cr_assert(params_set(&t.have, "IntervalStyle", "postgres"));
	cr_assert(params_set(&t.defaults, "search_path", "public"));
	cr_assert(params_set(&t.defaults, "statement_timeout", "5s"));
	cr_assert(params_set(&t.defaults, "DateStyle", "ISO, MDY"));
	cr_assert(params_set(&t.defaults, "IntervalStyle", "postgres"));
	cr_assert(params_set(&t.defaults, "lock_timeout", "1s"));
	expect_sql(&t, "SELECT pg_catalog.set_config('TimeZone', 'UTC', false);SELECT pg_catalog.set_config('search_path', 's1', false);SELECT pg_catalog.set_config('DateStyle', 'ISO, MDY', false)");
	three_clear(&t);
}

Test(params_diff, same_name_different_case_is_one_statement)
{
	struct three t = { 0 };
	cr_assert(params_set(&t.want, "TimeZone", "UTC"));
	cr_assert(params_set(&t.have, "timezone", "GMT"));
	expect_sql(&t, "SELECT pg_catalog.set_config('TimeZone', 'UTC', false)");
	three_clear(&t);
}

Test(params_diff, non_session_names_are_ignored)
{
	struct three t = { 0 };
	cr_assert(params_set(&t.want, "pgring.target", "replica"));
	cr_assert(params_set(&t.want, "server_version", "15.4"));
	cr_assert(params_set(&t.have, "server_version", "14.9"));
	cr_assert(params_set(&t.have, "is_superuser", "on"));
	cr_assert(params_set(&t.have, "session_authorization", "bob"));
	expect_sql(&t, "");
	three_clear(&t);
}

Test(params_diff, cap_too_small)
{
	struct three t = { 0 };
	cr_assert(params_set(&t.want, "TimeZone", "UTC"));
	cr_assert(params_set(&t.want, "application_name", "it's"));
	cr_assert(params_set(&t.want, "search_path", "a\\b"));   /* E'' with doubled backslash */
	cr_assert(params_set(&t.have, "TimeZone", "GMT"));
	cr_assert(params_set(&t.have, "some.var", "x"));          /* reset: NULL */
	char full[256];
	int need = params_diff_sql(&t.want, &t.have, &t.defaults, full, sizeof full);
	cr_assert_gt(need, 0);
	cr_assert_eq((size_t)need, strlen(full));
	for (size_t cap = 0; cap <= (size_t)need + 1; cap++) {
		char mem[256 + 16];
		memset(mem, 0x5a, sizeof mem);
		int n = params_diff_sql(&t.want, &t.have, &t.defaults, mem, cap);
		for (size_t k = cap; k < sizeof mem; k++)
			cr_assert_eq(mem[k], 0x5a, "cap %zu: byte %zu written", cap, k);
		if (cap <= (size_t)need) {
			cr_assert_eq(n, -1, "cap %zu (need %d + 1): returned %d", cap, need, n);
		} else {
			cr_assert_eq(n, need);
			cr_assert_str_eq(mem, full);
		}
	}
	three_clear(&t);
}

/* A long value (a search_path of many schemas) must be replayed in full, or
 * the call must fail; a silently shortened SET would give the client a
 * different session than it asked for. */
Test(params_diff, long_value_is_not_truncated)
{
	struct three t = { 0 };
	char v[2001];
	for (size_t i = 0; i < sizeof v - 1; i++)
		v[i] = i % 10 == 9 ? ',' : 's';
	v[sizeof v - 1] = 0;
	cr_assert(params_set(&t.want, "search_path", v));
	static char out[8192];
	int n = params_diff_sql(&t.want, &t.have, &t.defaults, out, sizeof out);
	if (n != -1) {
		char want[2100];
		snprintf(want, sizeof want, "SELECT pg_catalog.set_config('search_path', '%s', false)", v);
		cr_assert_str_eq(out, want, "long value replayed as %zu chars instead of %zu (returned %d)",
				 strlen(out), strlen(want), n);
	}
	three_clear(&t);
}

/* A restore must not run under the statement_timeout the server's previous
 * client left (a 1 ms one killed restores in the protocol fuzzer): 0 first,
 * the rest, the client's own value last. An unchanged timeout adds nothing. */
Test(params_diff, statement_timeout_is_restored_around_the_rest)
{
	struct three t = { 0 };
	cr_assert(params_set(&t.want, "search_path", "s1"));
	cr_assert(params_set(&t.want, "statement_timeout", "5s"));
	cr_assert(params_set(&t.have, "statement_timeout", "1"));
	expect_sql(&t, "SELECT pg_catalog.set_config('statement_timeout', '0', false);"
		       "SELECT pg_catalog.set_config('search_path', 's1', false);"
		       "SELECT pg_catalog.set_config('statement_timeout', '5s', false)");
	three_clear(&t);
	struct three u = { 0 };
	cr_assert(params_set(&u.want, "search_path", "s1"));
	cr_assert(params_set(&u.have, "statement_timeout", "1"));   /* the client has none: reset, last */
	expect_sql(&u, "SELECT pg_catalog.set_config('statement_timeout', '0', false);"
		       "SELECT pg_catalog.set_config('search_path', 's1', false);"
		       "SELECT pg_catalog.set_config('statement_timeout', NULL, false)");
	three_clear(&u);
	struct three v = { 0 };
	cr_assert(params_set(&v.want, "statement_timeout", "2s"));   /* the server has none: set, last */
	cr_assert(params_set(&v.want, "search_path", "s1"));
	expect_sql(&v, "SELECT pg_catalog.set_config('search_path', 's1', false);"
		       "SELECT pg_catalog.set_config('statement_timeout', '2s', false)");
	three_clear(&v);
}

/* ---- startup options ---- */

TestSuite(params_options);

static void parse_ok(struct params *p, const char *opts)
{
	cr_assert(params_parse_options(p, opts), "options \"%s\" rejected", opts);
}

Test(params_options, dash_c_forms)
{
	struct params p = { 0 };
	parse_ok(&p, "-c a=b");
	cr_assert_str_eq(params_get(&p, "a"), "b");
	parse_ok(&p, "-ca=c");
	cr_assert_str_eq(params_get(&p, "a"), "c");
	parse_ok(&p, "--a-b=c");
	cr_assert_str_eq(params_get(&p, "a_b"), "c");
	cr_assert_null(params_get(&p, "a-b"));
	cr_assert_eq(p.n, 2);
	params_clear(&p);
}

Test(params_options, dashes_in_names_not_values)
{
	struct params p = { 0 };
	parse_ok(&p, "-c statement-timeout=5-s --lock-timeout=1-s");
	cr_assert_str_eq(params_get(&p, "statement_timeout"), "5-s");
	cr_assert_str_eq(params_get(&p, "lock_timeout"), "1-s");
	params_clear(&p);
}

Test(params_options, escaped_spaces)
{
	struct params p = { 0 };
	parse_ok(&p, "-c search_path=a\\ b");
	cr_assert_str_eq(params_get(&p, "search_path"), "a b");
	parse_ok(&p, "-c application_name=my\\ app\\ \\ 2 -c x=back\\\\slash");
	cr_assert_str_eq(params_get(&p, "application_name"), "my app  2");
	cr_assert_str_eq(params_get(&p, "x"), "back\\slash");
	params_clear(&p);
}

Test(params_options, several_and_whitespace)
{
	struct params p = { 0 };
	parse_ok(&p, "  -c TimeZone=UTC\t--DateStyle=ISO   -cgeqo=off \n");
	cr_assert_eq(p.n, 3);
	cr_assert_str_eq(params_get(&p, "timezone"), "UTC");
	cr_assert_str_eq(params_get(&p, "datestyle"), "ISO");
	cr_assert_str_eq(params_get(&p, "geqo"), "off");
	params_clear(&p);
}

Test(params_options, values)
{
	struct params p = { 0 };
	parse_ok(&p, "-c a=b=c -c empty=");
	cr_assert_str_eq(params_get(&p, "a"), "b=c");
	cr_assert_str_eq(params_get(&p, "empty"), "");
	params_clear(&p);
}

Test(params_options, empty)
{
	struct params p = { 0 };
	parse_ok(&p, "");
	parse_ok(&p, "   \t ");
	cr_assert_eq(p.n, 0);
	params_clear(&p);
}

Test(params_options, syntax_errors)
{
	static const char *const bad[] = {
		"-c", "-c a=b -c", "-c a=b  -c  ", "junk", "-c a=b junk", "-x", "-c a", "-c =b", "--=b",
		"--", "-ca", "--noequals", "a=b",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct params p = { 0 };
		cr_assert_not(params_parse_options(&p, bad[i]), "options \"%s\" accepted", bad[i]);
		params_clear(&p);
	}
}

/* A long value must arrive whole or be rejected, never shortened. */
Test(params_options, long_value_is_not_truncated)
{
	char opts[2100], v[2001];
	for (size_t i = 0; i < sizeof v - 1; i++)
		v[i] = i % 10 == 9 ? ',' : 's';
	v[sizeof v - 1] = 0;
	snprintf(opts, sizeof opts, "-c search_path=%s", v);
	struct params p = { 0 };
	if (params_parse_options(&p, opts)) {
		const char *got = params_get(&p, "search_path");
		cr_assert_not_null(got);
		cr_assert_str_eq(got, v, "value kept as %zu chars instead of %zu", strlen(got), strlen(v));
	}
	params_clear(&p);
}

/* The value of a statement_timeout as pgring decides whether it is short
 * enough to put back at release (pool/server.c). */
Test(params_timeout, units_and_quotes)
{
	cr_expect_eq(params_timeout_ms("1"), 1);
	cr_expect_eq(params_timeout_ms("250"), 250);
	cr_expect_eq(params_timeout_ms("'1ms'"), 1);
	cr_expect_eq(params_timeout_ms("0.5s"), 500);
	cr_expect_eq(params_timeout_ms("2min"), 120000);
	cr_expect_eq(params_timeout_ms(" 3 s"), 3000);
	cr_expect_eq(params_timeout_ms("1h"), 3600000);
	cr_expect_eq(params_timeout_ms("1500us"), 2);
	cr_expect_eq(params_timeout_ms("0"), 0);
	cr_expect_eq(params_timeout_ms("1e30"), INT64_MAX);
	cr_expect_eq(params_timeout_ms("fast"), -1);
	cr_expect_eq(params_timeout_ms("5 parsecs"), -1);
	cr_expect_eq(params_timeout_ms("-1"), -1);
	cr_expect_eq(params_timeout_ms(""), -1);
}
