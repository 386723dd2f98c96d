/* tests/unit/test_sqllex.c: proto/sqllex.c, the one SQL tokenizer of proto/:
 * the token stream of every quoting form, input cut at every byte (each scan
 * runs on an exact-size heap copy, so a read past the end shows under ASan),
 * the two users agreeing on where statements end, and the statement checks
 * built on it (proto_sql_ends_block, proto_sql_resets_session). */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sql.h"
#include "proto/sqllex.h"
#include "proto/sqlroute.h"

/* sql in a heap block of exactly its length: no NUL after it. */
static char *exact(const char *sql, size_t len)
{
	char *b = malloc(len ? len : 1);
	cr_assert_not_null(b);
	memcpy(b, sql, len);
	return b;
}

static char type_letter(int type)
{
	static const char letters[] = { [SQLLEX_END] = 'E', [SQLLEX_IDENT] = 'I', [SQLLEX_QIDENT] = 'Q',
					[SQLLEX_STRING] = 'S', [SQLLEX_NUMBER] = 'N', [SQLLEX_PARAM] = 'P',
					[SQLLEX_OP] = 'O', [SQLLEX_BAD] = 'B' };
	cr_assert(type >= 0 && type < (int)sizeof letters);
	return letters[type];
}

/* Every token of buf[0..len) checked for staying inside it, in order; written
 * as "I:SELECT|S:'x'" (type letter, raw text) into out. Returns the count. */
static int lex_all(const char *buf, size_t len, char *out, size_t cap, struct proto_sqllex_tok *toks, int max)
{
	struct proto_sqllex lx;
	proto_sqllex_init(&lx, buf, len);
	const char *last = buf;
	size_t k = 0;
	int n = 0;
	out[0] = 0;
	for (;;) {
		struct proto_sqllex_tok t = proto_sqllex_next(&lx);
		cr_assert(n <= (int)len, "more tokens than bytes");
		if (t.type == SQLLEX_END) {
			cr_assert_eq(t.n, 0);
			struct proto_sqllex_tok again = proto_sqllex_next(&lx);
			cr_assert_eq(again.type, SQLLEX_END, "the end stays the end");
			return n;
		}
		cr_assert(t.n > 0, "an empty token");
		cr_assert(t.p >= last && t.p + t.n <= buf + len, "token outside the input");
		cr_assert_eq(lx.s, t.p + t.n, "the lexer resumes after the token");
		if (t.type == SQLLEX_BAD)
			cr_assert_eq(t.p + t.n, buf + len, "a bad token runs to the end");
		last = t.p + t.n;
		if (n < max)
			toks[n] = t;
		n++;
		int w = snprintf(out + k, cap - k, "%s%c:%.*s", k ? "|" : "", type_letter(t.type), (int)t.n, t.p);
		cr_assert(w > 0 && (size_t)w < cap - k, "token text too long for the test");
		k += (size_t)w;
	}
}

static void expect_lex(const char *sql, const char *want)
{
	size_t len = strlen(sql);
	char *b = exact(sql, len);
	char got[1024];
	struct proto_sqllex_tok toks[1];
	lex_all(b, len, got, sizeof got, toks, 0);
	cr_expect_str_eq(got, want, "[%s]", sql);
	free(b);
}

/* The flags of the only token of sql. */
static int flags_of(const char *sql, int type)
{
	size_t len = strlen(sql);
	char *b = exact(sql, len);
	char got[1024];
	struct proto_sqllex_tok t[2];
	int n = lex_all(b, len, got, sizeof got, t, 2);
	cr_assert_eq(n, 1, "[%s]: %s", sql, got);
	cr_assert_eq(t[0].type, type, "[%s]: %s", sql, got);
	free(b);
	return t[0].flags;
}

TestSuite(sqllex);

Test(sqllex, words_numbers_operators)
{
	expect_lex("", "");
	expect_lex(" \t\n\r\f\v", "");
	expect_lex("SELECT a$b, _x1, \xc3\xbc FROM t", "I:SELECT|I:a$b|O:,|I:_x1|O:,|I:\xc3\xbc|I:FROM|I:t");
	expect_lex("a.b=1", "I:a|O:.|I:b|O:=|N:1");
	expect_lex("x::int<>y", "I:x|O::|O::|I:int|O:<|O:>|I:y");
	expect_lex("1 1.5 .5 5. 1e3 1.e5 2.5E-3 1e+7", "N:1|N:1.5|N:.5|N:5.|N:1e3|N:1.e5|N:2.5E-3|N:1e+7");
	/* what is glued to a number starts a new token, as servers before 15 lexed it */
	expect_lex("1into", "N:1|I:into");
	expect_lex("0x1F 1_000", "N:0|I:x1F|N:1|I:_000");
	expect_lex("1e 1e+", "N:1|I:e|N:1|I:e|O:+");
	expect_lex("1.5.3", "N:1.5|N:.3");
	expect_lex("$1 $23, $1a", "P:$1|P:$23|O:,|P:$1|I:a");
	expect_lex("a-b", "I:a|O:-|I:b");
	expect_lex("a;;b", "I:a|O:;|O:;|I:b");
}

Test(sqllex, comments)
{
	expect_lex("a -- c ; d\nb", "I:a|I:b");
	expect_lex("a -- c\r; DELETE", "I:a|O:;|I:DELETE");          /* scan.l ends -- at \r too */
	expect_lex("a /* c ; */ b", "I:a|I:b");
	expect_lex("a /* x /* y */ ; */ b", "I:a|I:b");                /* nested */
	expect_lex("a /*/ x */ b", "I:a|I:b");
	expect_lex("a /**/b/***/c", "I:a|I:b|I:c");
	expect_lex("1--2\n;", "N:1|O:;");
	expect_lex("a --", "I:a");
	expect_lex("a /* open", "I:a|B:/* open");
	expect_lex("/* /* */", "B:/* /* */");
	cr_expect_eq(flags_of("/* x", SQLLEX_BAD), SQLLEX_F_COMMENT);
	expect_lex("a */ b", "I:a|O:*|O:/|I:b");
	expect_lex("a - - b / * c", "I:a|O:-|O:-|I:b|O:/|O:*|I:c");
}

Test(sqllex, strings)
{
	expect_lex("'it''s' ';' ''", "S:'it''s'|S:';'|S:''");
	expect_lex("'a\\' ; 'b'", "S:'a\\'|O:;|S:'b'");                /* standard: \ is plain */
	expect_lex("E'a\\'b;' e'\\\\' ", "S:E'a\\'b;'|S:e'\\\\'");
	expect_lex("E'it''s'", "S:E'it''s'");
	expect_lex("U&'d\\0061t;' u&'x'", "S:U&'d\\0061t;'|S:u&'x'");
	expect_lex("b'01' X'1f' n'z' B''", "S:b'01'|S:X'1f'|S:n'z'|S:B''");
	expect_lex("u'x' U& 'x' xe'a' tablE'x'", "I:u|S:'x'|I:U|O:&|S:'x'|I:xe|S:'a'|I:tablE|S:'x'");
	expect_lex("'a' 'b'", "S:'a'|S:'b'");
	cr_expect_eq(flags_of("'abc'", SQLLEX_STRING), 0);
	cr_expect_eq(flags_of("'a\\b'", SQLLEX_STRING), SQLLEX_F_BACKSLASH);
	cr_expect_eq(flags_of("E'a\\b'", SQLLEX_STRING), SQLLEX_F_ESCAPE);
	cr_expect_eq(flags_of("U&'d\\0061t'", SQLLEX_STRING), SQLLEX_F_UNICODE | SQLLEX_F_BACKSLASH);
	cr_expect_eq(flags_of("X'1f'", SQLLEX_STRING), SQLLEX_F_PREFIX);
	cr_expect_eq(flags_of("N'a\\'", SQLLEX_STRING), SQLLEX_F_PREFIX | SQLLEX_F_BACKSLASH);
}

Test(sqllex, quoted_identifiers)
{
	expect_lex("\"a;b\" \"x\"\"y\" \"\"", "Q:\"a;b\"|Q:\"x\"\"y\"|Q:\"\"");
	expect_lex("U&\"d\\0061t\" u&\"q\"", "Q:U&\"d\\0061t\"|Q:u&\"q\"");
	expect_lex("\"a\\\"b", "Q:\"a\\\"|I:b");                       /* no escapes in identifiers */
	cr_expect_eq(flags_of("\"x\"", SQLLEX_QIDENT), 0);
	cr_expect_eq(flags_of("U&\"x\"", SQLLEX_QIDENT), SQLLEX_F_UNICODE);
}

Test(sqllex, dollar_quotes)
{
	expect_lex("$$;$$ $t$ ' \" -- /* $ $$ $t$", "S:$$;$$|S:$t$ ' \" -- /* $ $$ $t$");
	expect_lex("$a$ $b$ ; $b$ $a$", "S:$a$ $b$ ; $b$ $a$");
	expect_lex("$_x1$;$_x1$;", "S:$_x1$;$_x1$|O:;");
	expect_lex("$$$$", "S:$$$$");
	expect_lex("$a$x$ba$a$", "S:$a$x$ba$a$");
	expect_lex("$\xc3\xbc$x$\xc3\xbc$", "S:$\xc3\xbc$x$\xc3\xbc$");
	expect_lex("$a $", "O:$|I:a|O:$");                             /* $a opens nothing */
	expect_lex("$1$", "P:$1|O:$");
	expect_lex("a$b$c", "I:a$b$c");                                 /* $ inside a word */
	cr_expect_eq(flags_of("$q$x$q$", SQLLEX_STRING), SQLLEX_F_DOLLAR);
	cr_expect_eq(flags_of("$", SQLLEX_OP), SQLLEX_F_STRAY);
}

Test(sqllex, unterminated_forms)
{
	static const struct { const char *sql, *want; } c[] = {
		{ "'abc", "B:'abc" }, { "'it''", "B:'it''" }, { "E'abc\\", "B:E'abc\\" }, { "E'abc\\'", "B:E'abc\\'" },
		{ "U&'x", "B:U&'x" }, { "b'01", "B:b'01" }, { "\"abc", "B:\"abc" }, { "\"a\"\"", "B:\"a\"\"" },
		{ "U&\"x", "B:U&\"x" }, { "$$abc", "B:$$abc" }, { "$t$abc$t", "B:$t$abc$t" }, { "$a$a$", "B:$a$a$" },
		{ "'", "B:'" }, { "E'", "B:E'" }, { "\"", "B:\"" }, { "$$", "B:$$" }, { "$", "O:$" }, { "U&", "I:U|O:&" },
		{ "x /* /* */", "I:x|B:/* /* */" },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
		expect_lex(c[i].sql, c[i].want);
}

/* Every form, cut after every byte: each prefix lexes inside its bounds, and
 * every user of the lexer reads it without crashing or reading past it. */
Test(sqllex, every_truncation)
{
	static const char *samples[] = {
		"SELECT 'it''s', E'a\\'b\\\\', U&'d\\0061t' UESCAPE '!', U&\"q\"\"r\", \"x\"\"y\", $t$ $ $$ $t$, "
		"$$$$, b'01', X'ff', N'n', $1, 1.5e-3, .5 /* c /* n */ */ -- l\n; RESET ALL;"
		" ROLLBACK AND NO CHAIN; DISCARD ALL",
		"COMMIT /* a */ -- b\r; SET search_path = 'a\\b', \"c\", $q$d$q$; SELECT 1into",
	};
	for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
		size_t full = strlen(samples[s]);
		for (size_t len = 0; len <= full; len++) {
			char *b = exact(samples[s], len);
			char got[2048];
			struct proto_sqllex_tok t[1];
			lex_all(b, len, got, sizeof got, t, 0);
			(void)proto_sql_read_only(b, len);
			(void)proto_sql_target_hint(b, len);
			(void)proto_sql_ends_block(b, len);
			(void)proto_sql_resets_session(b, len);
			struct proto_sql_stmt st[8];
			int n = proto_sql_scan(b, len, st, 8, NULL);
			proto_sql_free(st, n);
			free(b);
		}
	}
}

/* A form cut anywhere after its opening (opens bytes) is one SQLLEX_BAD token
 * from its start to the end of the input. (Cuts between doubled quotes make a
 * shorter complete token; unterminated_forms has those.) */
Test(sqllex, cut_inside_a_form_is_bad)
{
	static const struct { const char *form; int opens; } c[] = {
		{ "'ab c'", 1 }, { "E'a\\'b'", 2 }, { "U&'x'", 3 }, { "X'1f'", 2 }, { "\"a b\"", 1 },
		{ "U&\"q\"", 3 }, { "$t$ a $ b $t$", 3 }, { "$$x$$", 2 }, { "/* a /* b */ c */", 2 },
	};
	for (size_t f = 0; f < sizeof c / sizeof c[0]; f++) {
		char sql[64];
		int full = snprintf(sql, sizeof sql, "x %s", c[f].form);
		for (int len = 2 + c[f].opens; len < full; len++) {
			char *b = exact(sql, (size_t)len);
			char got[256];
			struct proto_sqllex_tok t[4];
			int n = lex_all(b, (size_t)len, got, sizeof got, t, 4);
			cr_assert_eq(n, 2, "[%.*s]: %s", len, sql, got);
			cr_assert_eq(t[1].type, SQLLEX_BAD, "[%.*s]: %s", len, sql, got);
			cr_assert_eq(t[1].p, b + 2, "[%.*s]: %s", len, sql, got);
			free(b);
		}
	}
}

/* Random bytes, mostly the ones that open and close things. */
Test(sqllex, random_bytes)
{
	static const char alphabet[] = "'\"$;-/*\\eEuUxX&_ aZ09.,=+\n\r\t()";
	uint64_t r = 0x9e3779b97f4a7c15ull;
	for (int iter = 0; iter < 20000; iter++) {
		char src[96];
		size_t len = 0;
		for (r ^= r << 13, r ^= r >> 7, r ^= r << 17; len < (r >> 58) + 1 + (size_t)(iter % 32); len++) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			src[len] = iter & 1 ? alphabet[r % (sizeof alphabet - 1)] : (char)r;
		}
		char *b = exact(src, len);
		char got[1024];
		struct proto_sqllex_tok t[1];
		lex_all(b, len, got, sizeof got, t, 0);
		(void)proto_sql_read_only(b, len);
		(void)proto_sql_ends_block(b, len);
		(void)proto_sql_resets_session(b, len);
		free(b);
	}
}

Test(sqllex, keywords)
{
	struct proto_sqllex lx;
	const char *sql = "SeLeCt set_config \"select\" selects";
	proto_sqllex_init(&lx, sql, strlen(sql));
	struct proto_sqllex_tok a = proto_sqllex_next(&lx), b = proto_sqllex_next(&lx), c = proto_sqllex_next(&lx),
				d = proto_sqllex_next(&lx);
	cr_expect(proto_sqllex_kw(&a, "select"));
	cr_expect(proto_sqllex_kw(&b, "set_config"));
	cr_expect_not(proto_sqllex_kw(&c, "select"), "a quoted identifier is no keyword");
	cr_expect_not(proto_sqllex_kw(&d, "select"));
	cr_expect_not(proto_sqllex_kw(&a, "selects"));
	cr_expect(proto_sqllex_op(&(struct proto_sqllex_tok){ .p = ";", .n = 1, .type = SQLLEX_OP }, ';'));
}

static bool ro(const char *sql)
{
	char *b = exact(sql, strlen(sql));
	bool r = proto_sql_read_only(b, strlen(sql));
	free(b);
	return r;
}

/* proto/sql.c and proto/sqlroute.c read the same text the same way: a quoted
 * ';' never splits, a real one always does. */
Test(sqllex, users_agree_on_statements)
{
	static const char *forms[] = {
		"';'", "E'\\';'", "U&'\\0061;'", "X';'", "\";\"", "U&\";\"", "$$;$$", "$t$;$$;$t$", "/* ; */ 1",
		"/* /* ; */ ; */ 1", "1 -- ;\n", "a$b",
	};
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		char sql[128];
		snprintf(sql, sizeof sql, "SELECT %s; UPDATE t SET a = 1", forms[i]);
		int n = -1;
		struct proto_sql_stmt st[4];
		proto_sql_free(st, proto_sql_scan(sql, strlen(sql), st, 4, &n));
		cr_expect_eq(n, 2, "[%s]: %d statements", sql, n);
		cr_expect_not(ro(sql), "[%s]", sql);
		snprintf(sql, sizeof sql, "SELECT %s", forms[i]);
		proto_sql_free(st, proto_sql_scan(sql, strlen(sql), st, 4, &n));
		cr_expect_eq(n, 1, "[%s]: %d statements", sql, n);
	}
	/* a -- comment ends at \r: what follows is a statement to both */
	const char *cr = "SELECT 1 --x\r; DELETE FROM t";
	int n = -1;
	struct proto_sql_stmt st[4];
	proto_sql_free(st, proto_sql_scan(cr, strlen(cr), st, 4, &n));
	cr_expect_eq(n, 2);
	cr_expect_not(ro(cr));
	cr_expect(ro("SELECT 1 --x\r; SELECT 2"));
	/* a hint line ends there too */
	const char *h = "--!pgring\rSELECT target=replica";
	cr_expect_eq(proto_sql_target_hint(h, strlen(h)), PROTO_TARGET_NONE);
	h = "--!pgring target=replica\r\nSELECT 1";
	cr_expect_eq(proto_sql_target_hint(h, strlen(h)), PROTO_TARGET_REPLICA);
	/* what a proof cannot read is "no" */
	cr_expect_not(ro("SELECT 'a\\b'"), "backslash in a plain string");
	cr_expect_not(ro("SELECT U&\"nextv\\0061l\"('s')"), "a U& name hides what it calls");
	cr_expect_not(ro("SELECT $a"), "a stray $");
	cr_expect_not(ro("SELECT 1into t2 FROM t"), "INTO glued to a number");
	cr_expect(ro("SELECT U&'abc', X'1f', 1e-5, $1"));
}

/* What proto/sql.c records comes only from tokens that are whole: a string cut
 * between doubled quotes, or a number with what PostgreSQL 16 reads as part of
 * it (0x1F is 31 there, 1_000 is 1000), pins instead of a wrong value. */
Test(sqllex, scan_records_only_whole_tokens)
{
	static const char *pin[] = { "SET a.b = 'x''", "SET a.b = E'x\\'", "SET a.b = 0x1F", "SET a.b = 1_000",
				     "SET a.b = 1abc" };
	for (size_t i = 0; i < sizeof pin / sizeof pin[0]; i++) {
		struct proto_sql_stmt st[2];
		int n = proto_sql_scan(pin[i], strlen(pin[i]), st, 2, NULL);
		cr_expect_eq(n, 1, "[%s]", pin[i]);
		if (n == 1)
			cr_expect_eq(st[0].kind, SQL_PIN, "[%s]: kind %d, value %s", pin[i], st[0].kind,
				     st[0].value ? st[0].value : "-");
		proto_sql_free(st, n);
	}
	/* a SET after a -- comment that ends at \r is seen */
	const char *sql = "SELECT 1 -- x\rSET search_path = evil";
	struct proto_sql_stmt st[2];
	int n = proto_sql_scan(sql, strlen(sql), st, 2, NULL);
	cr_expect_eq(n, 0, "one statement SELECT 1 SET ...: not a SET");
	proto_sql_free(st, n);
	sql = "SELECT 1 -- x\r;SET search_path = evil";
	n = proto_sql_scan(sql, strlen(sql), st, 2, NULL);
	cr_assert_eq(n, 1);
	cr_expect_eq(st[0].kind, SQL_SET);
	cr_expect_str_eq(st[0].value, "evil");
	proto_sql_free(st, n);
}

/* ---- proto_sql_ends_block ---- */

TestSuite(sql_ends_block);

static bool ends(const char *sql)
{
	char *b = exact(sql, strlen(sql));
	bool r = proto_sql_ends_block(b, strlen(sql));
	free(b);
	return r;
}

Test(sql_ends_block, ends)
{
	static const char *yes[] = {
		"ROLLBACK", "rollback;", "Rollback Work", "ROLLBACK TRANSACTION", "ABORT", "abort work;",
		"COMMIT", "commit transaction", "END", "end work", "END TRANSACTION;",
		"ROLLBACK AND NO CHAIN", "commit work and no chain", "ABORT TRANSACTION AND NO CHAIN",
		"  -- why\n /* c /* nested */ */ ROLLBACK  ", "\t\r\nCOMMIT -- done", ";; ROLLBACK",
		"ROLLBACK; SELECT 1", "COMMIT; BEGIN", "ROLLBACK /* x */ ; /* y */",
	};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		cr_expect(ends(yes[i]), "[%s] ends the block", yes[i]);
}

Test(sql_ends_block, does_not_end)
{
	static const char *no[] = {
		"", ";", "  ", "-- ROLLBACK", "/* ROLLBACK */", "/* ROLLBACK */ SELECT 1",
		"SELECT 'rollback'", "SELECT $$ROLLBACK$$", "\"rollback\"", "E'\\'' ROLLBACK",
		"ROLLBACK TO x", "ROLLBACK TO SAVEPOINT x", "rollback work to savepoint x", "ROLLBACK TRANSACTION TO x",
		"COMMIT AND CHAIN", "ROLLBACK AND CHAIN", "END AND CHAIN", "abort work and chain",
		"ROLLBACK PREPARED 'gid'", "COMMIT PREPARED 'gid'", "PREPARE TRANSACTION 'gid'",
		"SELECT 1; ROLLBACK", "BEGIN", "SAVEPOINT x", "RELEASE x", "START TRANSACTION",
		"ROLLBACKX", "ENDING", "commit_x", "ROLLBACK WORK WORK", "ROLLBACK AND", "ROLLBACK AND NO",
		"COMMIT x", "ROLLBACK; SELECT 'x", "ROLLBACK /* open", "COMMIT; SELECT \"x",
	};
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		cr_expect_not(ends(no[i]), "[%s] does not end the block", no[i]);
}

Test(sql_ends_block, commits)
{
	static const char *yes[] = {
		"COMMIT", "commit;", "Commit Work", "COMMIT TRANSACTION AND NO CHAIN", "END", "end transaction",
		";; COMMIT", "  -- c\n COMMIT /* x */", "COMMIT; SELECT 1",
	};
	static const char *no[] = {
		"ROLLBACK", "abort", "ROLLBACK; COMMIT", "COMMIT AND CHAIN", "COMMIT PREPARED 'gid'",
		"SELECT 1; COMMIT", "-- COMMIT", "COMMIT x", "COMMIT; SELECT 'x", "ENDING",
	};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		char *b = exact(yes[i], strlen(yes[i]));
		cr_expect(proto_sql_commits_block(b, strlen(yes[i])), "[%s] commits the block", yes[i]);
		free(b);
	}
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		char *b = exact(no[i], strlen(no[i]));
		cr_expect_not(proto_sql_commits_block(b, strlen(no[i])), "[%s] does not commit the block", no[i]);
		free(b);
	}
}

Test(sql_ends_block, length_bounds)
{
	cr_expect(proto_sql_ends_block("ROLLBACK TO x", 8), "only ROLLBACK is inside the length");
	cr_expect_not(proto_sql_ends_block("ROLLBACK", 4));
}

/* ---- proto_sql_resets_session ---- */

TestSuite(sql_resets_session);

static bool resets(const char *sql)
{
	char *b = exact(sql, strlen(sql));
	bool r = proto_sql_resets_session(b, strlen(sql));
	free(b);
	return r;
}

Test(sql_resets_session, resets)
{
	static const char *yes[] = {
		"DISCARD ALL", "discard all;", "RESET ALL", "Reset  All ;", "/* c */ DISCARD ALL -- x",
		"SET a.b = 1; RESET ALL", "SELECT 1; DISCARD ALL; SELECT 2",
		"CLOSE ALL; UNLISTEN *; RESET ALL; DEALLOCATE ALL", "SELECT 'x;'; DISCARD ALL",
		"-- reset\r DISCARD ALL", ";;RESET ALL;;",
	};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		cr_expect(resets(yes[i]), "[%s] resets the session", yes[i]);
}

Test(sql_resets_session, does_not_reset)
{
	static const char *no[] = {
		"", ";", "SELECT 'discard all'", "SELECT E'\\'; DISCARD ALL'", "-- DISCARD ALL", "/* RESET ALL */ SELECT 1",
		"SELECT $$; DISCARD ALL; $$", "SELECT \"; RESET ALL\"", "-- x\nSELECT 1 -- ; RESET ALL",
		"DISCARD TEMP", "DISCARD PLANS", "RESET search_path", "DISCARD", "RESET", "DISCARD ALL extra",
		"\"discard\" all", "DEALLOCATE ALL", "CLOSE ALL", "RESET ALL; SELECT 'x", "DISCARD ALL /* open",
		"SELECT discard, all FROM t",
	};
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		cr_expect_not(resets(no[i]), "[%s] does not reset the session", no[i]);
}
