/* tests/fuzz/frame.c: proto/frame.c fed arbitrary splits of a message stream.
 * The framer must hand back exactly the messages a straightforward reading of
 * the whole stream finds (same types, lengths and bytes, whether streamed or
 * reassembled), stop at the same bad length, and show in `ahead` the bytes that
 * really follow a message in its buffer.
 *
 * Input: flags, max_len selector, 8 split sizes, then the stream. */
#include <stdbool.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"

#define F_UNTYPED 1    /* start with startup packets (4-byte headers) */
#define F_SWITCH  2    /* typed messages after the first one, as a client's login does */
#define F_WHOLE   4    /* ask for every message whole (else by type: see want_whole) */
#define F_STOP    8    /* stop at a message of type 'X' */

struct ctx {
	const uint8_t *stream;     /* the whole input stream, for checking */
	size_t stream_len;
	size_t pos;                /* where the current message starts in stream */
	size_t got;                /* its bytes delivered so far (streamed) */
	uint32_t len;              /* its length, from begin */
	bool in_msg, switch_typed, all_whole, stop_x;
	struct proto_framer *f;
	const uint8_t *chunk, *chunk_end;   /* the buffer being fed */
	unsigned allocs;
};

static bool want_whole(const struct ctx *c, uint8_t type)
{
	/* as pool/ does: the messages it inspects whole, the rest streamed */
	return c->all_whole || type == 0 || type == 'P' || type == 'Q' || type == 'S' || type == 'Z';
}

static int on_begin(void *vctx, uint8_t type, uint32_t len)
{
	struct ctx *c = vctx;
	FUZZ_CHECK(!c->in_msg);
	FUZZ_CHECK(c->pos < c->stream_len);
	uint32_t hlen = c->f->untyped ? 4 : 5;
	FUZZ_CHECK(c->pos + hlen <= c->stream_len);
	FUZZ_CHECK(type == (c->f->untyped ? 0 : c->stream[c->pos]));
	uint32_t body = proto_get_u32(c->stream + c->pos + (c->f->untyped ? 0 : 1));
	FUZZ_CHECK(len == body + (c->f->untyped ? 0 : 1));
	FUZZ_CHECK(body >= 4 && body <= c->f->max_len);
	c->in_msg = true;
	c->len = len;
	c->got = 0;
	if (c->stop_x && type == 'X')
		return PROTO_STOP;
	return want_whole(c, type) ? PROTO_WHOLE : PROTO_STREAM;
}

static void end_message(struct ctx *c)
{
	c->pos += c->len;
	c->in_msg = false;
	if (c->switch_typed && c->f->untyped)
		c->f->untyped = false;
}

static bool on_whole(void *vctx, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct ctx *c = vctx;
	(void)buf;
	FUZZ_CHECK(c->in_msg && c->got == 0 && len == c->len);
	FUZZ_CHECK(c->pos + len <= c->stream_len);
	FUZZ_CHECK(memcmp(msg, c->stream + c->pos, len) == 0);
	/* what follows in the buffer is what follows in the stream */
	if (c->f->ahead_len) {
		FUZZ_CHECK(c->f->ahead >= c->chunk && c->f->ahead + c->f->ahead_len == c->chunk_end);
		FUZZ_CHECK(c->pos + len + c->f->ahead_len <= c->stream_len);
		FUZZ_CHECK(memcmp(c->f->ahead, c->stream + c->pos + len, c->f->ahead_len) == 0);
	}
	end_message(c);
	return true;
}

static void on_bytes(void *vctx, const uint8_t *p, uint32_t n, uint32_t buf)
{
	struct ctx *c = vctx;
	(void)buf;
	FUZZ_CHECK(c->in_msg);
	FUZZ_CHECK(c->got + n <= c->len);
	FUZZ_CHECK(memcmp(p, c->stream + c->pos + c->got, n) == 0);
	c->got += n;
	if (c->got == c->len)
		end_message(c);
}

static uint8_t *on_alloc(void *vctx, uint32_t len, uint32_t *buf)
{
	struct ctx *c = vctx;
	*buf = PROTO_BUF_NONE;
	c->allocs++;
	return malloc(len ? len : 1);
}

static void on_release(void *vctx, uint32_t buf, uint8_t *mem)
{
	struct ctx *c = vctx;
	(void)buf;
	FUZZ_CHECK(c->allocs > 0);
	c->allocs--;
	free(mem);
}

static const struct proto_frame_ops ops = {
	.begin = on_begin, .whole = on_whole, .bytes = on_bytes,
	.alloc = on_alloc, .release = on_release,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 10)
		return 0;
	static const uint32_t max_lens[] = { 8, 64, 300, 1024, 10000, 65536 };
	uint8_t flags = data[0];
	uint32_t max_len = max_lens[data[1] % (sizeof max_lens / sizeof *max_lens)];
	const uint8_t *splits = data + 2;
	struct proto_framer f;
	proto_framer_init(&f, flags & F_UNTYPED, max_len);
	struct ctx c = {
		.stream = data + 10, .stream_len = size - 10, .f = &f,
		.switch_typed = flags & F_SWITCH, .all_whole = flags & F_WHOLE, .stop_x = flags & F_STOP,
	};
	size_t off = 0;
	int rc = PROTO_OK;
	for (unsigned i = 0; off < c.stream_len && rc == PROTO_OK; i++) {
		size_t n = splits[i % 8] ? splits[i % 8] : 1;
		if (n > c.stream_len - off)
			n = c.stream_len - off;
		/* each buffer in memory of its own, so ASan catches a read past it */
		uint8_t *chunk = malloc(n);
		FUZZ_CHECK(chunk);
		memcpy(chunk, c.stream + off, n);
		c.chunk = chunk;
		c.chunk_end = chunk + n;
		rc = proto_framer_feed(&f, chunk, (uint32_t)n, i, &ops, &c);
		free(chunk);
		off += n;
	}
	if (rc == PROTO_BAD_LENGTH) {
		/* only where the stream really holds a bad length */
		FUZZ_CHECK(!c.in_msg);
		size_t h = c.pos + (f.untyped ? 0 : 1);
		FUZZ_CHECK(h + 4 <= c.stream_len);
		uint32_t body = proto_get_u32(c.stream + h);
		FUZZ_CHECK(body < 4 || body > max_len);
	} else if (rc == PROTO_STOPPED) {
		FUZZ_CHECK(c.stop_x && c.in_msg && c.stream[c.pos] == 'X');
	} else {
		FUZZ_CHECK(rc == PROTO_OK);
		/* everything fed is accounted for: whole messages, then a partial one */
		size_t partial = c.stream_len - c.pos;
		if (!c.in_msg)
			FUZZ_CHECK(partial < (f.untyped ? 4u : 5u) && f.hdr_have == partial);
		else
			FUZZ_CHECK(partial < c.len);
		FUZZ_CHECK(proto_framer_idle(&f) == (c.pos == c.stream_len));
	}
	proto_framer_reset(&f, &ops, &c);
	FUZZ_CHECK(c.allocs == 0);
	return 0;
}
