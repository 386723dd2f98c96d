/* tests/fuzz/sql.c: the SQL lexer (proto/sqllex.c) and the session-effect
 * classifier (proto/sql.c) on arbitrary query strings. Checked beyond "no
 * crash": tokens lie inside the input, in order, without overlap; END stays
 * END; an unterminated token runs to the end; a string proto_sql_plain calls
 * plain has no session effect for proto_sql_scan; statements lie inside the
 * input; and a value proto_sql_quote quotes lexes back as one string. */
#include <string.h>

#include "proto/sql.h"
#include "proto/sqllex.h"
#include "tests/fuzz/fuzz.h"

static void check_lexer(const char *sql, size_t len)
{
	struct proto_sqllex lx;
	proto_sqllex_init(&lx, sql, len);
	const char *prev_end = sql;
	for (;;) {
		struct proto_sqllex_tok t = proto_sqllex_next(&lx);
		if (t.type == SQLLEX_END)
			break;
		FUZZ_CHECK(t.type <= SQLLEX_BAD);
		FUZZ_CHECK(t.n > 0);
		FUZZ_CHECK(t.p >= prev_end && t.p + t.n <= sql + len);
		if (t.type == SQLLEX_BAD)
			FUZZ_CHECK(t.p + t.n == sql + len);
		prev_end = t.p + t.n;
	}
	FUZZ_CHECK(proto_sqllex_next(&lx).type == SQLLEX_END);
}

static void check_quote(const char *v)
{
	size_t n = strlen(v), cap = 2 * n + 4;   /* E, quotes, NUL; each byte at most doubled */
	char *q = malloc(cap);
	FUZZ_CHECK(q);
	int k = proto_sql_quote(v, q, cap);
	FUZZ_CHECK(k >= 2 && (size_t)k < cap && q[k] == '\0');
	struct proto_sqllex lx;
	proto_sqllex_init(&lx, q, (size_t)k);
	struct proto_sqllex_tok t = proto_sqllex_next(&lx);
	FUZZ_CHECK(t.type == SQLLEX_STRING && t.p == q && t.n == (uint32_t)k);
	FUZZ_CHECK(proto_sqllex_next(&lx).type == SQLLEX_END);
	/* too small a buffer is refused, never overrun */
	FUZZ_CHECK(proto_sql_quote(v, q, (size_t)k) == -1);
	free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *sql = (const char *)data;
	check_lexer(sql, size);

	struct proto_sql_stmt st[16];
	int nstmts = -1;
	int n = proto_sql_scan(sql, size, st, 16, &nstmts);
	FUZZ_CHECK(n >= 0 && n <= 16 && nstmts >= n);
	for (int i = 0; i < n; i++) {
		FUZZ_CHECK(st[i].kind != 0 || st[i].flags != 0);
		FUZZ_CHECK(st[i].index < nstmts);
		FUZZ_CHECK(i == 0 || st[i].index > st[i - 1].index);
		FUZZ_CHECK(st[i].text >= sql && st[i].text + st[i].text_len <= sql + size);
		FUZZ_CHECK(memchr(st[i].name, '\0', sizeof st[i].name));
		(void)proto_sql_tag(&st[i]);
		if (st[i].value)
			check_quote(st[i].value);
	}
	if (proto_sql_plain(sql, size))
		FUZZ_CHECK(n == 0);
	proto_sql_free(st, n);

	/* the same with room for one, as pool/stmt.c and lease.c ask */
	n = proto_sql_scan(sql, size, st, 1, NULL);
	FUZZ_CHECK(n == 0 || n == 1);
	proto_sql_free(st, n);

	(void)proto_sql_ends_block(sql, size);
	(void)proto_sql_resets_session(sql, size);
	return 0;
}
