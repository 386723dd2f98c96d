/* tests/fuzz/sqlroute.c: the read-only proof and the `--!pgring` routing hints
 * (proto/sqlroute.c) on arbitrary query strings. Beyond "no crash": the answer
 * is the same for the same text wherever it lies (no read past the length),
 * and a string the lexer cannot read to its end is never proven read-only. */
#include <string.h>

#include "proto/sqllex.h"
#include "proto/sqlroute.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *sql = (const char *)data;
	int hint = proto_sql_target_hint(sql, size);
	FUZZ_CHECK(hint >= PROTO_TARGET_NONE && hint <= PROTO_TARGET_ANY);
	bool ro = proto_sql_read_only(sql, size);
	if (ro) {
		struct proto_sqllex lx;
		proto_sqllex_init(&lx, sql, size);
		struct proto_sqllex_tok t;
		while ((t = proto_sqllex_next(&lx)).type != SQLLEX_END)
			FUZZ_CHECK(t.type != SQLLEX_BAD);
	}
	/* the same bytes followed by garbage in the buffer, length unchanged:
	 * a parser that reads past the length would answer differently */
	char *copy = malloc(size + 8);
	FUZZ_CHECK(copy);
	memcpy(copy, sql, size);
	memcpy(copy + size, "'\"*/;$x\n", 8);
	FUZZ_CHECK(proto_sql_target_hint(copy, size) == hint);
	FUZZ_CHECK(proto_sql_read_only(copy, size) == ro);
	free(copy);
	(void)proto_target_parse(sql, size);
	return 0;
}
