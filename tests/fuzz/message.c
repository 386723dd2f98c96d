/* tests/fuzz/message.c: the readers pgring applies to message bodies, client
 * and server side, over a typed message stream framed as pgring frames it:
 * ErrorResponse/NoticeResponse fields (proto_parse_error), the bounds-checked
 * reader on Parse, Bind, Describe/Close, ParameterStatus, BackendKeyData,
 * NegotiateProtocolVersion and SASL layouts, statement records (stmt_intern,
 * stmt_map: the Parse bodies a client sends), parameter records (params_set
 * from ParameterStatus, params_parse_options from a startup `options`,
 * params_diff_sql), replication modes, and the error builder over the
 * message's text (every field valid UTF-8, whatever went in). Startup-phase
 * parsing through pool/client.c itself is the startup target. */
#include <string.h>

#include "pool/params.h"
#include "pool/repl.h"
#include "pool/stmt.h"
#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"

/* A body read as a layout: every read stays inside, and once a read overruns
 * the reader stays bad and returns zeros and empty strings. */
static void check_reads(struct proto_reader *r, const uint8_t *body, size_t len)
{
	const uint8_t *end = body + len;
	FUZZ_CHECK(r->p >= body && r->p <= end);
	if (r->bad) {
		FUZZ_CHECK(proto_read_u32(r) == 0 && proto_read_u16(r) == 0 && proto_read_u8(r) == 0);
		FUZZ_CHECK(*proto_read_str(r) == '\0' && proto_read_bytes(r, 1) == NULL);
	}
}

static void read_bind(const uint8_t *body, size_t len)
{
	struct proto_reader r;
	proto_reader_init(&r, body, len);
	(void)proto_read_str(&r);             /* portal */
	(void)proto_read_str(&r);             /* statement */
	uint16_t nf = proto_read_u16(&r);
	for (uint16_t i = 0; i < nf && !r.bad; i++)
		(void)proto_read_u16(&r);
	uint16_t np = proto_read_u16(&r);
	for (uint16_t i = 0; i < np && !r.bad; i++) {
		uint32_t n = proto_read_u32(&r);
		if (n != UINT32_MAX)
			(void)proto_read_bytes(&r, n);
	}
	uint16_t nr = proto_read_u16(&r);
	for (uint16_t i = 0; i < nr && !r.bad; i++)
		(void)proto_read_u16(&r);
	check_reads(&r, body, len);
}

static void read_parse(const uint8_t *body, size_t len, struct stmt_registry **reg, struct stmt_map *map)
{
	struct proto_reader r;
	proto_reader_init(&r, body, len);
	const char *name = proto_read_str(&r);
	const uint8_t *rest = r.p;
	(void)proto_read_str(&r);             /* query */
	uint16_t n = proto_read_u16(&r);
	for (uint16_t i = 0; i < n && !r.bad; i++)
		(void)proto_read_u32(&r);
	check_reads(&r, body, len);
	if (r.bad)
		return;
	/* as pool/lease.c keeps them: the body after the name, interned */
	uint32_t rlen = (uint32_t)(body + len - rest);
	/* a name in use is refused before (42P05), as pool/lease.c does */
	if (*name && stmt_map_get(map, name))
		return;
	struct pstmt *st = stmt_intern(reg, rest, rlen);
	FUZZ_CHECK(st);
	if (*name) {
		FUZZ_CHECK(stmt_map_put(map, name, st));
		FUZZ_CHECK(stmt_map_get(map, name) == st);
	} else {
		FUZZ_CHECK(stmt_map_set_unnamed(map, rest, rlen));
		stmt_unref(*reg, st);
	}
}

/* Every field of an ErrorResponse pgring builds from this text is valid
 * UTF-8 without NUL, and the whole parses back. */
static void check_error_text(const char *text)
{
	uint8_t mem[4096];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "FATAL", "08P01", "bad: %s", text);
	if (o.overflow)
		return;
	FUZZ_CHECK(o.len >= 5 && mem[0] == 'E' && proto_get_u32(mem + 1) == o.len - 1);
	for (size_t i = 5; i < o.len;) {
		int k = proto_utf8_len(mem + i, o.len - i);
		FUZZ_CHECK(k > 0);
		i += (size_t)k;
	}
	struct proto_error_fields f;
	proto_parse_error(mem + 5, o.len - 5, &f);
	FUZZ_CHECK(strcmp(f.severity, "FATAL") == 0 && strcmp(f.sqlstate, "08P01") == 0);
	FUZZ_CHECK(strncmp(f.message, "bad: ", 5) == 0);
}

struct ctx {
	struct stmt_registry *reg;
	struct stmt_map map;
	struct params server, client;
};

static bool on_whole(void *vctx, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct ctx *c = vctx;
	(void)buf;
	uint8_t type = msg[0];
	/* the body in memory of its own, so ASan sees a read past it */
	size_t blen = len - 5;
	uint8_t *body = malloc(blen ? blen : 1);
	FUZZ_CHECK(body);
	memcpy(body, msg + 5, blen);
	struct proto_reader r;
	proto_reader_init(&r, body, blen);
	switch (type) {
	case 'E':
	case 'N': {
		struct proto_error_fields f;
		proto_parse_error(body, blen, &f);
		FUZZ_CHECK(f.severity && f.sqlstate && f.message);
		(void)stmt_stale_kind(f.sqlstate);
		check_error_text(f.message);
		break;
	}
	case 'P':
		read_parse(body, blen, &c->reg, &c->map);
		break;
	case 'B':
		read_bind(body, blen);
		break;
	case 'D':
	case 'C': {
		(void)proto_read_u8(&r);
		const char *name = proto_read_str(&r);
		if (!r.bad && *name && stmt_map_get(&c->map, name))
			stmt_unref(c->reg, stmt_map_take(&c->map, name));
		check_reads(&r, body, blen);
		break;
	}
	case 'S': {   /* ParameterStatus */
		const char *name = proto_read_str(&r);
		const char *value = proto_read_str(&r);
		if (!r.bad && *name)
			(void)params_set(&c->server, name, value);
		check_reads(&r, body, blen);
		break;
	}
	case 'K':     /* BackendKeyData, 3.0 and longer 3.2 keys */
	case 'v': {   /* NegotiateProtocolVersion */
		(void)proto_read_u32(&r);
		uint32_t n = proto_read_u32(&r);
		for (uint32_t i = 0; i < n && !r.bad; i++)
			(void)proto_read_str(&r);
		check_reads(&r, body, blen);
		break;
	}
	case 'p': {   /* SASLInitialResponse */
		(void)proto_read_str(&r);
		uint32_t n = proto_read_u32(&r);
		if (n != UINT32_MAX)
			(void)proto_read_bytes(&r, n);
		check_reads(&r, body, blen);
		break;
	}
	case 'o': {   /* a startup `options` value and a replication mode, as text */
		char *s = malloc(blen + 1);
		FUZZ_CHECK(s);
		memcpy(s, body, blen);
		s[blen] = '\0';
		(void)params_parse_options(&c->client, s);
		int mode = repl_parse_mode(s);
		if (mode > REPL_NONE)   /* only replication connections send a value on */
			FUZZ_CHECK(repl_parse_mode(repl_mode_value(mode)) == mode);
		free(s);
		break;
	}
	default:
		break;
	}
	free(body);
	return true;
}

static void on_bytes(void *vctx, const uint8_t *p, uint32_t n, uint32_t buf)
{
	(void)vctx; (void)p; (void)n; (void)buf;
}

static int on_begin(void *vctx, uint8_t type, uint32_t len)
{
	(void)vctx; (void)type; (void)len;
	return PROTO_WHOLE;
}

static uint8_t *on_alloc(void *vctx, uint32_t len, uint32_t *buf)
{
	(void)vctx;
	*buf = PROTO_BUF_NONE;
	return malloc(len);
}

static void on_release(void *vctx, uint32_t buf, uint8_t *mem)
{
	(void)vctx; (void)buf;
	free(mem);
}

static const struct proto_frame_ops ops = {
	.begin = on_begin, .whole = on_whole, .bytes = on_bytes,
	.alloc = on_alloc, .release = on_release,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx c = { 0 };
	struct proto_framer f;
	proto_framer_init(&f, false, 1u << 16);
	(void)proto_framer_feed(&f, data, (uint32_t)size, PROTO_BUF_NONE, &ops, &c);
	proto_framer_reset(&f, &ops, &c);
	/* what leasing a server to this client would replay */
	char sql[8192];
	struct params defaults = { 0 };
	(void)params_diff_sql(&c.client, &c.server, &defaults, sql, sizeof sql);
	params_clear(&c.client);
	params_clear(&c.server);
	stmt_map_clear(&c.map, c.reg);
	FUZZ_CHECK(c.reg == NULL || stmt_registry_count(c.reg) == 0);
	stmt_registry_free(c.reg);
	return 0;
}
