/* tests/unit/test_frame.c: proto/frame.c must hand out the same message stream
 * however the bytes are cut into received buffers: whole messages that sit inside
 * one buffer zero-copy, the rest reassembled in memory from alloc (and every
 * alloc released), streamed messages as slices with the header first. Plus the
 * error and control paths: bad lengths, stop, idle, reset. */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

#define MAXLEN        (1u << 20)
#define CHUNK_ID_BASE 7u            /* chunk i of a feed has id CHUNK_ID_BASE + i */
#define ALLOC_ID_BASE 0x40000000u   /* alloc'd reassembly memory ids */

/* ---- a recorder: what the framer delivered, as a flat log ----
 * Per message: kind ('W' whole, 's' streamed), type, length (4 bytes, big
 * endian), then the message bytes as delivered. Two runs that deliver the same
 * stream produce byte-identical logs. */

enum policy { POL_MIX, POL_ALL_WHOLE, POL_ALL_STREAM };

struct rec {
	struct proto_framer *f;
	int policy;
	uint8_t *log;
	size_t len, cap;
	/* the message being delivered */
	bool in_msg, cur_whole;
	uint8_t cur_type;
	uint32_t cur_len, cur_got;
	size_t msg_start, next_msg;  /* stream offsets */
	/* the chunk being fed */
	const uint8_t *chunk;
	uint32_t chunk_n, chunk_id;
	size_t chunk_off;
	/* reassembly memory */
	int live, allocs, releases;
	uint8_t *amem;
	uint32_t aid;
	/* counters and knobs for the control-path tests */
	int begins, wholes, bytes_calls, zero_copy, copied;
	uint8_t stop_type;    /* begin returns PROTO_STOP for this type (0: never) */
	uint8_t false_type;   /* whole returns false for this type (0: never) */
	bool fail_alloc;
	char err[512];
};

static void fail(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct rec *r, const char *fmt, ...)
{
	if (r->err[0])
		return;   /* keep the first failure */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof r->err, fmt, ap);
	va_end(ap);
}

#define CHECK(r, cond, ...)                  \
	do {                                 \
		if (!(cond))                 \
			fail((r), __VA_ARGS__); \
	} while (0)

static void log_put(struct rec *r, const void *p, size_t n)
{
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + n)
			cap *= 2;
		r->log = realloc(r->log, cap);
		cr_assert_not_null(r->log);
		r->cap = cap;
	}
	memcpy(r->log + r->len, p, n);
	r->len += n;
}

static void log_head(uint8_t kind, uint8_t type, uint32_t len, void (*put)(void *, const void *, size_t),
		     void *to)
{
	uint8_t h[6] = { kind, type, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
			 (uint8_t)len };
	put(to, h, sizeof h);
}

static void rec_put(void *to, const void *p, size_t n) { log_put(to, p, n); }

static int take_for(int policy, uint8_t type)
{
	if (policy == POL_ALL_WHOLE)
		return PROTO_WHOLE;
	if (policy == POL_ALL_STREAM)
		return PROTO_STREAM;
	switch (type) {
	case 0: case 'Z': case 'S': case 'C': case 'E':
		return PROTO_WHOLE;
	default:   /* D, Q and everything else */
		return PROTO_STREAM;
	}
}

/* The handler flips the framer to typed after the startup packet, as pgring's client does. */
static void message_done(struct rec *r)
{
	r->in_msg = false;
	if (r->cur_type == 0 && r->f)
		r->f->untyped = false;
}

static bool in_chunk(const struct rec *r, const uint8_t *p, size_t n)
{
	return r->chunk && p >= r->chunk && p + n <= r->chunk + r->chunk_n;
}

static int op_begin(void *ctx, uint8_t type, uint32_t len)
{
	struct rec *r = ctx;
	r->begins++;
	CHECK(r, !r->in_msg, "begin(%u, %u) while message %u is still being delivered", type, len,
	      r->cur_type);
	if (r->stop_type && type == r->stop_type)
		return PROTO_STOP;
	int how = take_for(r->policy, type);
	r->in_msg = true;
	r->cur_whole = how == PROTO_WHOLE;
	r->cur_type = type;
	r->cur_len = len;
	r->cur_got = 0;
	r->msg_start = r->next_msg;
	r->next_msg += len;
	log_head(r->cur_whole ? 'W' : 's', type, len, rec_put, r);
	return how;
}

static bool op_whole(void *ctx, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct rec *r = ctx;
	r->wholes++;
	CHECK(r, r->in_msg && r->cur_whole, "whole() for a message not begun as whole");
	CHECK(r, len == r->cur_len, "whole() len %u, begin said %u", len, r->cur_len);
	size_t hlen = r->cur_type ? 5 : 4;
	CHECK(r, len >= hlen, "whole() shorter than a header");
	/* the header is part of what whole() gets */
	if (r->cur_type) {
		CHECK(r, msg[0] == r->cur_type, "whole() type byte %u, begin said %u", msg[0], r->cur_type);
		CHECK(r, proto_get_u32(msg + 1) == len - 1, "whole() length field wrong");
	} else {
		CHECK(r, proto_get_u32(msg) == len, "whole() startup length field wrong");
	}
	bool inside = r->chunk && r->msg_start >= r->chunk_off &&
		      r->msg_start + len <= r->chunk_off + r->chunk_n;
	if (inside) {
		/* the whole message is in this feed's chunk: must be delivered in place */
		r->zero_copy++;
		CHECK(r, msg == r->chunk + (r->msg_start - r->chunk_off),
		      "message at stream offset %zu (len %u) inside chunk [%zu,+%u) not delivered in place",
		      r->msg_start, len, r->chunk_off, r->chunk_n);
		CHECK(r, buf == r->chunk_id, "in-place message has buf %u, chunk is %u", buf, r->chunk_id);
	} else {
		r->copied++;
		CHECK(r, r->live == 1 && msg == r->amem && buf == r->aid,
		      "message at stream offset %zu (len %u) spans chunks but is not in alloc'd memory "
		      "(live %d, buf %u, alloc id %u)", r->msg_start, len, r->live, buf, r->aid);
	}
	if (r->f && r->chunk && r->f->ahead) {
		/* what follows the message in this chunk is offered as ahead */
		size_t end = r->msg_start + len - r->chunk_off;
		CHECK(r, r->f->ahead == r->chunk + end && r->f->ahead_len == r->chunk_n - end,
		      "ahead of the message at stream offset %zu is [%td,+%u), want [%zu,+%zu)", r->msg_start,
		      r->f->ahead - r->chunk, r->f->ahead_len, end, r->chunk_n - end);
	} else if (r->f) {
		/* only a body-less message whose header straddled has nothing ahead */
		CHECK(r, r->f->ahead_len == 0 && len == hlen, "no ahead for a %u-byte message", len);
	}
	log_put(r, msg, len);
	r->cur_got = len;
	message_done(r);
	if (r->false_type && r->cur_type == r->false_type)
		return false;
	return true;
}

static void op_bytes(void *ctx, const uint8_t *p, uint32_t n, uint32_t buf)
{
	struct rec *r = ctx;
	r->bytes_calls++;
	CHECK(r, r->in_msg && !r->cur_whole, "bytes() for a message not begun as streamed");
	CHECK(r, r->cur_got + (uint64_t)n <= r->cur_len, "bytes() past the end of the message (%u + %u > %u)",
	      r->cur_got, n, r->cur_len);
	uint32_t hlen = r->cur_type ? 5 : 4;
	if (r->cur_got == 0) {
		/* the first bytes delivered carry the header */
		CHECK(r, n >= hlen, "first bytes() of a message has %u bytes, less than its header", n);
		if (n >= hlen) {
			if (r->cur_type) {
				CHECK(r, p[0] == r->cur_type, "first bytes() type %u, begin said %u", p[0],
				      r->cur_type);
				CHECK(r, proto_get_u32(p + 1) == r->cur_len - 1, "first bytes() length field wrong");
			} else {
				CHECK(r, proto_get_u32(p) == r->cur_len, "first bytes() startup length wrong");
			}
		}
	}
	if (buf == r->chunk_id) {
		/* a slice of the current chunk, at exactly the right place */
		size_t at = r->msg_start + r->cur_got;
		CHECK(r, in_chunk(r, p, n) && at >= r->chunk_off && p == r->chunk + (at - r->chunk_off),
		      "bytes() slice for stream offset %zu is not at its place in the chunk", at);
	} else {
		/* only a header carried over from an earlier chunk may come from elsewhere */
		CHECK(r, buf == PROTO_BUF_NONE, "bytes() with buf %u, chunk is %u", buf, r->chunk_id);
		CHECK(r, r->cur_got == 0 && n == hlen,
		      "bytes() not from the chunk (buf NONE) but not a reassembled header (got %u, n %u)",
		      r->cur_got, n);
	}
	log_put(r, p, n);
	r->cur_got += n;
	if (r->cur_got == r->cur_len)
		message_done(r);
}

static uint8_t *op_alloc(void *ctx, uint32_t len, uint32_t *buf)
{
	struct rec *r = ctx;
	CHECK(r, r->in_msg && r->cur_whole, "alloc() outside a whole message");
	CHECK(r, len == r->cur_len, "alloc(%u) for a message of %u", len, r->cur_len);
	CHECK(r, r->live == 0, "alloc() while %d reassembly areas are live", r->live);
	if (r->fail_alloc)
		return NULL;
	uint8_t *m = malloc(len);
	cr_assert_not_null(m);
	r->allocs++;
	r->live++;
	r->amem = m;
	r->aid = ALLOC_ID_BASE + (uint32_t)r->allocs;
	*buf = r->aid;
	return m;
}

static void op_release(void *ctx, uint32_t buf, uint8_t *mem)
{
	struct rec *r = ctx;
	CHECK(r, r->live == 1 && mem == r->amem && buf == r->aid,
	      "release(%u, %p) of memory that is not the live alloc (%u, %p, live %d)", buf, (void *)mem,
	      r->aid, (void *)r->amem, r->live);
	if (r->live == 1 && mem == r->amem) {
		free(mem);
		r->amem = NULL;
		r->live--;
		r->releases++;
	}
}

static const struct proto_frame_ops ops = {
	.begin = op_begin,
	.whole = op_whole,
	.bytes = op_bytes,
	.alloc = op_alloc,
	.release = op_release,
};

static void rec_reset(struct rec *r, struct proto_framer *f, int policy)
{
	uint8_t *log = r->log;
	size_t cap = r->cap;
	memset(r, 0, sizeof *r);
	r->log = log;
	r->cap = cap;
	r->f = f;
	r->policy = policy;
}

static void rec_free(struct rec *r)
{
	free(r->log);
	r->log = NULL;
	r->cap = r->len = 0;
}

/* ---- a realistic stream ---- */

struct stream {
	uint8_t *b;
	size_t n, cap;
	size_t off[64];
	uint8_t type[64];
	uint32_t len[64];
	int count;
};

static void s_put(struct stream *s, const void *p, size_t n)
{
	if (s->n + n > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->n + n)
			cap *= 2;
		s->b = realloc(s->b, cap);
		cr_assert_not_null(s->b);
		s->cap = cap;
	}
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void s_u32(struct stream *s, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	s_put(s, b, 4);
}

static void s_typed(struct stream *s, uint8_t type, const void *body, size_t n)
{
	cr_assert_lt(s->count, 64);
	s->off[s->count] = s->n;
	s->type[s->count] = type;
	s->len[s->count] = (uint32_t)(n + 5);
	s->count++;
	s_put(s, &type, 1);
	s_u32(s, (uint32_t)(n + 4));
	if (n)
		s_put(s, body, n);
}

static void s_startup(struct stream *s)
{
	static const char kv[] = "user\0alice\0database\0app\0application_name\0psql\0"
				 "options\0-c search_path=a\\ b\0";
	size_t n = 4 + 4 + sizeof kv;   /* sizeof includes the final NUL: the list terminator */
	s->off[s->count] = s->n;
	s->type[s->count] = 0;
	s->len[s->count] = (uint32_t)n;
	s->count++;
	s_u32(s, (uint32_t)n);
	s_u32(s, PROTO_VERSION_30);
	s_put(s, kv, sizeof kv);
}

static uint64_t rng_next(uint64_t *st)
{
	/* xorshift64* */
	uint64_t x = *st;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*st = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t st = seed | 1;
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rng_next(&st);
}

/* A DataRow with one column of n bytes. */
static void s_datarow(struct stream *s, size_t n, uint64_t seed)
{
	size_t blen = 2 + 4 + n;
	uint8_t *b = malloc(blen);
	cr_assert_not_null(b);
	b[0] = 0; b[1] = 1;
	b[2] = (uint8_t)(n >> 24); b[3] = (uint8_t)(n >> 16); b[4] = (uint8_t)(n >> 8); b[5] = (uint8_t)n;
	fill(b + 6, n, seed);
	s_typed(s, 'D', b, blen);
	free(b);
}

static void s_error(struct stream *s, size_t msglen)
{
	size_t cap = 64 + msglen;
	char *b = malloc(cap);
	cr_assert_not_null(b);
	size_t k = 0;
	k += (size_t)sprintf(b + k, "SERROR") + 1;
	k += (size_t)sprintf(b + k, "VERROR") + 1;
	k += (size_t)sprintf(b + k, "C42P01") + 1;
	b[k++] = 'M';
	for (size_t i = 0; i < msglen; i++)
		b[k++] = (char)('a' + i % 26);
	b[k++] = 0;
	b[k++] = 0;
	s_typed(s, 'E', b, k);
	free(b);
}

/* The full stream: startup, then a mix of tiny, small, medium and a 100 KB DataRow. */
static void build_full(struct stream *s)
{
	memset(s, 0, sizeof *s);
	s_startup(s);
	s_typed(s, 'Q', "SELECT * FROM t WHERE id = 1;", 30);
	s_typed(s, 'S', NULL, 0);                               /* Sync */
	s_typed(s, 'S', "TimeZone\0UTC", 13);                   /* ParameterStatus */
	s_typed(s, 'Z', "I", 1);
	s_typed(s, 'H', NULL, 0);                               /* Flush: streamed, body-less */
	s_datarow(s, 300, 11);
	s_typed(s, 'C', "SELECT 1", 9);
	s_error(s, 1500);
	static const uint8_t rowdesc[] = {
		0, 1, 'i', 'd', 0, 0, 0, 0x40, 0x01, 0, 1, 0, 0, 0, 23, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0,
	};
	s_typed(s, 'T', rowdesc, sizeof rowdesc);
	s_datarow(s, 100 * 1024, 12);
	s_typed(s, 'S', NULL, 0);
	s_typed(s, 'S', NULL, 0);
	s_typed(s, 'Z', "T", 1);
	{
		char tag[5000];
		memset(tag, 'x', sizeof tag - 1);
		tag[sizeof tag - 1] = 0;
		s_typed(s, 'C', tag, sizeof tag);
	}
	s_typed(s, 'Q', "", 1);                                 /* empty query string */
	s_typed(s, 'Z', "I", 1);
}

/* A short stream for the three-buffer exhaustive splits. */
static void build_short(struct stream *s)
{
	memset(s, 0, sizeof *s);
	s_startup(s);
	s_typed(s, 'Q', "SELECT 1", 9);
	s_typed(s, 'S', NULL, 0);
	s_typed(s, 'Z', "I", 1);
	s_typed(s, 'H', NULL, 0);
	s_datarow(s, 7, 3);
	s_typed(s, 'C', "SELECT 1", 9);
	s_typed(s, 'S', NULL, 0);
}

static void stream_free(struct stream *s)
{
	free(s->b);
	memset(s, 0, sizeof *s);
}

/* The log a correct framer produces for this stream under this policy. */
static void expected_log(const struct stream *s, int policy, struct rec *out)
{
	for (int i = 0; i < s->count; i++) {
		bool whole = take_for(policy, s->type[i]) == PROTO_WHOLE;
		log_head(whole ? 'W' : 's', s->type[i], s->len[i], rec_put, out);
		log_put(out, s->b + s->off[i], s->len[i]);
	}
	cr_assert_eq(s->off[s->count - 1] + s->len[s->count - 1], s->n);
}

/* ---- feeding ---- */

/* Feed s split at cuts (sorted offsets in [0, n]) as separately malloc'd chunks
 * of exactly their size, so that any read past a chunk is caught by ASan.
 * Returns false with r->err set on any mismatch. */
static bool run_split(const struct stream *s, int policy, const size_t *cuts, size_t ncuts, struct rec *r,
		      const struct rec *want)
{
	struct proto_framer f;
	proto_framer_init(&f, true, MAXLEN);
	rec_reset(r, &f, policy);
	size_t prev = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : s->n;
		size_t n = end - prev;
		uint8_t *c = malloc(n ? n : 1);
		cr_assert_not_null(c);
		memcpy(c, s->b + prev, n);
		r->chunk = c;
		r->chunk_n = (uint32_t)n;
		r->chunk_id = CHUNK_ID_BASE + (uint32_t)i;
		r->chunk_off = prev;
		int rc = proto_framer_feed(&f, c, (uint32_t)n, r->chunk_id, &ops, r);
		CHECK(r, rc == PROTO_OK, "feed of chunk %zu [%zu,+%zu) returned %d", i, prev, n, rc);
		r->chunk = NULL;
		free(c);
		prev = end;
		if (r->err[0])
			break;
	}
	if (!r->err[0]) {
		CHECK(r, proto_framer_idle(&f), "framer not idle at the end of the stream");
		CHECK(r, !r->in_msg, "last message (type %u) not completely delivered", r->cur_type);
		CHECK(r, r->next_msg == s->n, "messages begun cover %zu bytes of %zu", r->next_msg, s->n);
		CHECK(r, r->live == 0 && r->allocs == r->releases, "allocs %d, releases %d", r->allocs,
		      r->releases);
		CHECK(r, r->len == want->len && memcmp(r->log, want->log, want->len) == 0,
		      "delivered stream differs from the expected one (log %zu bytes, want %zu)", r->len,
		      want->len);
	}
	proto_framer_reset(&f, &ops, r);
	if (r->live) {
		free(r->amem);
		r->live = 0;
	}
	return r->err[0] == 0;
}

static void describe_cuts(char *out, size_t cap, const size_t *cuts, size_t n)
{
	size_t k = 0;
	out[0] = 0;
	for (size_t i = 0; i < n && k + 24 < cap; i++)
		k += (size_t)snprintf(out + k, cap - k, "%s%zu", i ? "," : "", cuts[i]);
	if (n && k + 24 >= cap)
		snprintf(out + k, cap - k, ",...");
}

#define ASSERT_RUN(s, pol, cuts, ncuts, r, want)                                          \
	do {                                                                              \
		if (!run_split((s), (pol), (cuts), (ncuts), (r), (want))) {              \
			char where_[256];                                                 \
			describe_cuts(where_, sizeof where_, (cuts), (ncuts));            \
			cr_assert_fail("policy %d, cuts [%s]: %s", (pol), where_, (r)->err); \
		}                                                                         \
	} while (0)

/* ---- the stream, however it is cut ---- */

TestSuite(frame_split);

static const int policies[] = { POL_MIX, POL_ALL_WHOLE, POL_ALL_STREAM };

Test(frame_split, one_buffer)
{
	struct stream s;
	build_full(&s);
	for (size_t p = 0; p < 3; p++) {
		struct rec want = { 0 }, r = { 0 };
		expected_log(&s, policies[p], &want);
		ASSERT_RUN(&s, policies[p], NULL, 0, &r, &want);
		/* every message inside the one buffer: all whole ones zero-copy, no alloc */
		cr_assert_eq(r.allocs, 0);
		cr_assert_eq(r.copied, 0);
		cr_assert_eq(r.begins, s.count);
		if (policies[p] == POL_ALL_WHOLE)
			cr_assert_eq(r.zero_copy, s.count);
		if (policies[p] == POL_ALL_STREAM) {
			cr_assert_eq(r.bytes_calls, s.count);   /* one slice each */
			cr_assert_eq(r.wholes, 0);
		}
		rec_free(&want);
		rec_free(&r);
	}
	stream_free(&s);
}

Test(frame_split, every_two_buffer_split, .timeout = 600)
{
	struct stream s;
	build_full(&s);
	struct rec want = { 0 }, r = { 0 };
	expected_log(&s, POL_MIX, &want);
	int reassembled = 0;
	for (size_t cut = 0; cut <= s.n; cut++) {
		ASSERT_RUN(&s, POL_MIX, &cut, 1, &r, &want);
		reassembled += r.allocs;
	}
	cr_assert_gt(reassembled, 0);
	rec_free(&want);
	rec_free(&r);
	stream_free(&s);
}

/* The all-whole and all-stream policies over every two-buffer split of the
 * short stream (the full one is covered by the mixed policy above). */
Test(frame_split, every_two_buffer_split_all_policies)
{
	struct stream s;
	build_short(&s);
	for (size_t p = 0; p < 3; p++) {
		struct rec want = { 0 }, r = { 0 };
		expected_log(&s, policies[p], &want);
		for (size_t cut = 0; cut <= s.n; cut++)
			ASSERT_RUN(&s, policies[p], &cut, 1, &r, &want);
		rec_free(&want);
		rec_free(&r);
	}
	stream_free(&s);
}

Test(frame_split, every_three_buffer_split)
{
	struct stream s;
	build_short(&s);
	cr_assert_lt(s.n, 200);
	for (size_t p = 0; p < 3; p++) {
		struct rec want = { 0 }, r = { 0 };
		expected_log(&s, policies[p], &want);
		for (size_t a = 0; a <= s.n; a++)
			for (size_t b = a; b <= s.n; b++) {
				size_t cuts[2] = { a, b };
				ASSERT_RUN(&s, policies[p], cuts, 2, &r, &want);
			}
		rec_free(&want);
		rec_free(&r);
	}
	stream_free(&s);
}

Test(frame_split, one_byte_per_buffer)
{
	struct stream s;
	build_full(&s);
	size_t *cuts = malloc(s.n * sizeof *cuts);
	cr_assert_not_null(cuts);
	for (size_t i = 0; i < s.n - 1; i++)
		cuts[i] = i + 1;
	for (size_t p = 0; p < 3; p++) {
		struct rec want = { 0 }, r = { 0 };
		expected_log(&s, policies[p], &want);
		ASSERT_RUN(&s, policies[p], cuts, s.n - 1, &r, &want);
		/* nothing longer than one byte fits in a one-byte buffer */
		cr_assert_eq(r.zero_copy, 0);
		if (policies[p] == POL_ALL_WHOLE)
			cr_assert_eq(r.allocs, s.count);
		rec_free(&want);
		rec_free(&r);
	}
	free(cuts);
	stream_free(&s);
}

Test(frame_split, random_splits)
{
	struct stream s;
	build_full(&s);
	size_t maxcuts = 3 * s.n;
	size_t *cuts = malloc(maxcuts * sizeof *cuts);
	cr_assert_not_null(cuts);
	uint64_t st = 0x5eed1234abcdull;
	for (int round = 0; round < 300; round++) {
		int pol = policies[round % 3];
		/* vary the typical chunk size from tiny to larger than most messages */
		static const size_t scale[] = { 1, 3, 8, 17, 64, 500, 4096, 16384, 70000 };
		size_t maxc = scale[(size_t)round % (sizeof scale / sizeof scale[0])];
		size_t n = 0, at = 0;
		for (;;) {
			size_t step = (size_t)(rng_next(&st) % (maxc + 1));   /* 0: an empty buffer now and then */
			if (at + step >= s.n || n == maxcuts)
				break;
			at += step;
			cuts[n++] = at;
		}
		struct rec want = { 0 }, r = { 0 };
		expected_log(&s, pol, &want);
		if (!run_split(&s, pol, cuts, n, &r, &want))
			cr_assert_fail("round %d (policy %d, max chunk %zu, %zu cuts): %s", round, pol, maxc, n,
				       r.err);
		rec_free(&want);
		rec_free(&r);
	}
	free(cuts);
	stream_free(&s);
}

/* ---- zero-copy and reassembly, precisely ---- */

TestSuite(frame_buf);

Test(frame_buf, whole_inside_chunk_is_in_place)
{
	struct stream s;
	memset(&s, 0, sizeof s);
	s_typed(&s, 'Z', "I", 1);
	s_typed(&s, 'C', "SELECT 1", 9);
	struct proto_framer f;
	proto_framer_init(&f, false, MAXLEN);
	struct rec r;
	memset(&r, 0, sizeof r);
	rec_reset(&r, &f, POL_ALL_WHOLE);
	r.chunk = s.b;
	r.chunk_n = (uint32_t)s.n;
	r.chunk_id = 42;
	cr_assert_eq(proto_framer_feed(&f, s.b, (uint32_t)s.n, 42, &ops, &r), PROTO_OK);
	cr_assert_str_empty(r.err, "%s", r.err);
	cr_assert_eq(r.zero_copy, 2);
	cr_assert_eq(r.allocs, 0);
	rec_free(&r);
	stream_free(&s);
}

Test(frame_buf, whole_across_chunks_comes_from_alloc)
{
	struct stream s;
	memset(&s, 0, sizeof s);
	s_typed(&s, 'C', "SELECT 1", 9);
	struct proto_framer f;
	proto_framer_init(&f, false, MAXLEN);
	struct rec r;
	memset(&r, 0, sizeof r);
	rec_reset(&r, &f, POL_ALL_WHOLE);
	r.chunk = s.b;
	r.chunk_n = 7;
	r.chunk_id = 1;
	cr_assert_eq(proto_framer_feed(&f, s.b, 7, 1, &ops, &r), PROTO_OK);
	cr_assert_eq(r.allocs, 1);
	cr_assert_eq(r.live, 1);
	cr_assert_eq(r.wholes, 0);
	cr_assert_not(proto_framer_idle(&f));
	r.chunk = s.b + 7;
	r.chunk_n = (uint32_t)s.n - 7;
	r.chunk_id = 2;
	r.chunk_off = 7;
	cr_assert_eq(proto_framer_feed(&f, s.b + 7, (uint32_t)s.n - 7, 2, &ops, &r), PROTO_OK);
	cr_assert_str_empty(r.err, "%s", r.err);
	cr_assert_eq(r.wholes, 1);
	cr_assert_eq(r.copied, 1);
	cr_assert_eq(r.live, 0);
	cr_assert_eq(r.releases, 1);
	cr_assert(proto_framer_idle(&f));
	rec_free(&r);
	stream_free(&s);
}

/* A body-less message whose header straddles two buffers, whole and streamed. */
Test(frame_buf, bodyless_header_straddles)
{
	static const uint8_t sync[] = { 'S', 0, 0, 0, 4 };
	for (int pol = POL_ALL_WHOLE; pol <= POL_ALL_STREAM; pol++) {
		for (uint32_t cut = 1; cut < 5; cut++) {
			struct proto_framer f;
			proto_framer_init(&f, false, MAXLEN);
			struct rec r;
			memset(&r, 0, sizeof r);
			rec_reset(&r, &f, pol);
			r.chunk = sync; r.chunk_n = cut; r.chunk_id = 1;
			cr_assert_eq(proto_framer_feed(&f, sync, cut, 1, &ops, &r), PROTO_OK);
			cr_assert_eq(r.begins, 0);
			cr_assert_not(proto_framer_idle(&f));
			r.chunk = sync + cut; r.chunk_n = 5 - cut; r.chunk_id = 2; r.chunk_off = cut;
			cr_assert_eq(proto_framer_feed(&f, sync + cut, 5 - cut, 2, &ops, &r), PROTO_OK);
			cr_assert_str_empty(r.err, "%s", r.err);
			cr_assert_eq(r.begins, 1);
			cr_assert_eq(r.len, 6 + 5);
			cr_assert_eq(memcmp(r.log + 6, sync, 5), 0);
			cr_assert(proto_framer_idle(&f));
			cr_assert_eq(r.live, 0);
			cr_assert_eq(r.allocs, r.releases);
			rec_free(&r);
		}
	}
}

Test(frame_buf, alloc_failure)
{
	static const uint8_t cc[] = { 'C', 0, 0, 0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0 };
	struct proto_framer f;
	proto_framer_init(&f, false, MAXLEN);
	struct rec r;
	memset(&r, 0, sizeof r);
	rec_reset(&r, &f, POL_ALL_WHOLE);
	r.fail_alloc = true;
	r.chunk = cc; r.chunk_n = 8; r.chunk_id = 1;
	cr_assert_eq(proto_framer_feed(&f, cc, 8, 1, &ops, &r), PROTO_NO_MEMORY);
	cr_assert_eq(r.live, 0);
	rec_free(&r);
}

/* ---- lengths ---- */

TestSuite(frame_length);

/* Feed one chunk that starts at stream offset `off`. */
static int feed_at(struct proto_framer *f, struct rec *r, const uint8_t *p, uint32_t n, size_t off)
{
	r->chunk = p;
	r->chunk_n = n;
	r->chunk_id++;
	r->chunk_off = off;
	return proto_framer_feed(f, p, n, r->chunk_id, &ops, r);
}

static int feed_plain(struct proto_framer *f, struct rec *r, const uint8_t *p, uint32_t n)
{
	return feed_at(f, r, p, n, 0);
}

Test(frame_length, below_four_is_bad)
{
	for (uint32_t l = 0; l < 4; l++) {
		uint8_t m[9] = { 'Q', 0, 0, 0, (uint8_t)l, 'x', 'x', 'x', 'x' };
		struct proto_framer f;
		proto_framer_init(&f, false, MAXLEN);
		struct rec r;
		memset(&r, 0, sizeof r);
		rec_reset(&r, &f, POL_MIX);
		cr_assert_eq(feed_plain(&f, &r, m, sizeof m), PROTO_BAD_LENGTH, "typed length %u", l);
		cr_assert_eq(r.begins, 0);
		rec_free(&r);
	}
	/* untyped (startup) */
	for (uint32_t l = 0; l < 4; l++) {
		uint8_t m[8] = { 0, 0, 0, (uint8_t)l, 0, 3, 0, 0 };
		struct proto_framer f;
		proto_framer_init(&f, true, MAXLEN);
		struct rec r;
		memset(&r, 0, sizeof r);
		rec_reset(&r, &f, POL_MIX);
		cr_assert_eq(feed_plain(&f, &r, m, sizeof m), PROTO_BAD_LENGTH, "untyped length %u", l);
		cr_assert_eq(r.begins, 0);
		rec_free(&r);
	}
}

Test(frame_length, bad_length_after_good_messages_and_split_header)
{
	/* a good Sync, then a header of length 2 split across two feeds */
	uint8_t m[] = { 'S', 0, 0, 0, 4, 'Q', 0, 0 };
	uint8_t m2[] = { 0, 2, 'x' };
	struct proto_framer f;
	proto_framer_init(&f, false, MAXLEN);
	struct rec r;
	memset(&r, 0, sizeof r);
	rec_reset(&r, &f, POL_MIX);
	cr_assert_eq(feed_plain(&f, &r, m, sizeof m), PROTO_OK);
	cr_assert_eq(r.begins, 1);
	cr_assert_eq(feed_plain(&f, &r, m2, sizeof m2), PROTO_BAD_LENGTH);
	cr_assert_eq(r.begins, 1);
	rec_free(&r);
}

Test(frame_length, above_max_is_bad)
{
	const uint32_t max = 1000;
	/* exactly max is accepted */
	{
		uint8_t m[5] = { 'D', 0, 0, (uint8_t)(max >> 8), (uint8_t)max };
		struct proto_framer f;
		proto_framer_init(&f, false, max);
		struct rec r;
		memset(&r, 0, sizeof r);
		rec_reset(&r, &f, POL_MIX);
		cr_assert_eq(feed_plain(&f, &r, m, sizeof m), PROTO_OK);
		cr_assert_eq(r.begins, 1);
		proto_framer_reset(&f, &ops, &r);
		rec_free(&r);
	}
	uint32_t bad[] = { max + 1, 0x7fffffffu, 0xffffffffu };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint32_t l = bad[i];
		uint8_t m[5] = { 'D', (uint8_t)(l >> 24), (uint8_t)(l >> 16), (uint8_t)(l >> 8), (uint8_t)l };
		struct proto_framer f;
		proto_framer_init(&f, false, max);
		struct rec r;
		memset(&r, 0, sizeof r);
		rec_reset(&r, &f, POL_MIX);
		cr_assert_eq(feed_plain(&f, &r, m, sizeof m), PROTO_BAD_LENGTH, "length %u", l);
		cr_assert_eq(r.begins, 0);
		rec_free(&r);
	}
	/* untyped too */
	{
		uint8_t m[8] = { 0, 0, (uint8_t)((max + 1) >> 8), (uint8_t)(max + 1), 0, 3, 0, 0 };
		struct proto_framer f;
		proto_framer_init(&f, true, max);
		struct rec r;
		memset(&r, 0, sizeof r);
		rec_reset(&r, &f, POL_MIX);
		cr_assert_eq(feed_plain(&f, &r, m, sizeof m), PROTO_BAD_LENGTH);
		rec_free(&r);
	}
}

/* ---- stopping, idleness, reset ---- */

TestSuite(frame_control);

/* Three messages: Z, X (Terminate), Z. */
static const uint8_t zxz[] = { 'Z', 0, 0, 0, 5, 'I', 'X', 0, 0, 0, 4, 'Z', 0, 0, 0, 5, 'T' };

Test(frame_control, begin_stop)
{
	struct proto_framer f;
	proto_framer_init(&f, false, MAXLEN);
	struct rec r;
	memset(&r, 0, sizeof r);
	rec_reset(&r, &f, POL_MIX);
	r.stop_type = 'X';
	cr_assert_eq(feed_plain(&f, &r, zxz, sizeof zxz), PROTO_STOPPED);
	cr_assert_eq(r.begins, 2);
	cr_assert_eq(r.wholes, 1);    /* the first Z only */
	cr_assert_str_empty(r.err, "%s", r.err);
	rec_free(&r);
}

Test(frame_control, whole_false_stops)
{
	/* in place */
	{
		struct proto_framer f;
		proto_framer_init(&f, false, MAXLEN);
		struct rec r;
		memset(&r, 0, sizeof r);
		rec_reset(&r, &f, POL_ALL_WHOLE);
		r.false_type = 'X';
		cr_assert_eq(feed_plain(&f, &r, zxz, sizeof zxz), PROTO_STOPPED);
		cr_assert_eq(r.begins, 2);
		cr_assert_eq(r.wholes, 2);
		cr_assert_str_empty(r.err, "%s", r.err);
		rec_free(&r);
	}
	/* reassembled: the reassembly memory is still released */
	{
		struct proto_framer f;
		proto_framer_init(&f, false, MAXLEN);
		struct rec r;
		memset(&r, 0, sizeof r);
		rec_reset(&r, &f, POL_ALL_WHOLE);
		r.false_type = 'X';
		/* Z in place, then X's header split 2 + 3 */
		cr_assert_eq(feed_plain(&f, &r, zxz, 8), PROTO_OK);
		cr_assert_eq(r.wholes, 1);
		cr_assert_not(proto_framer_idle(&f));
		cr_assert_eq(feed_at(&f, &r, zxz + 8, sizeof zxz - 8, 8), PROTO_STOPPED);
		cr_assert_eq(r.begins, 2);
		cr_assert_eq(r.wholes, 2);
		cr_assert_eq(r.copied, 1);
		cr_assert_eq(r.allocs, 1);
		cr_assert_eq(r.live, 0);
		cr_assert_eq(r.releases, 1);
		cr_assert_str_empty(r.err, "%s", r.err);
		rec_free(&r);
	}
}

Test(frame_control, idle)
{
	struct stream s;
	memset(&s, 0, sizeof s);
	s_typed(&s, 'Z', "I", 1);   /* whole */
	s_datarow(&s, 20, 5);        /* streamed */
	s_typed(&s, 'C', "SELECT 1", 9);
	struct proto_framer f;
	proto_framer_init(&f, false, MAXLEN);
	struct rec r;
	memset(&r, 0, sizeof r);
	rec_reset(&r, &f, POL_MIX);
	cr_assert(proto_framer_idle(&f));
	/* byte by byte: idle exactly at message boundaries */
	int k = 0;
	for (size_t i = 0; i < s.n; i++) {
		cr_assert_eq(feed_at(&f, &r, s.b + i, 1, i), PROTO_OK);
		bool boundary = false;
		if (k < s.count && i + 1 == s.off[k] + s.len[k]) {
			boundary = true;
			k++;
		}
		cr_assert_eq(proto_framer_idle(&f), boundary, "after byte %zu: idle %d, expected %d", i,
			     proto_framer_idle(&f), boundary);
	}
	cr_assert_str_empty(r.err, "%s", r.err);
	rec_free(&r);
	stream_free(&s);
}

Test(frame_control, reset_releases_reassembly)
{
	struct stream s;
	memset(&s, 0, sizeof s);
	s_typed(&s, 'C', "SELECT 1", 9);
	s_typed(&s, 'Z', "I", 1);
	struct proto_framer f;
	proto_framer_init(&f, false, MAXLEN);
	struct rec r;
	memset(&r, 0, sizeof r);
	rec_reset(&r, &f, POL_ALL_WHOLE);
	cr_assert_eq(feed_plain(&f, &r, s.b, 8), PROTO_OK);
	cr_assert_eq(r.live, 1);
	proto_framer_reset(&f, &ops, &r);
	cr_assert_eq(r.live, 0);
	cr_assert_eq(r.releases, 1);
	cr_assert(proto_framer_idle(&f));
	cr_assert_str_empty(r.err, "%s", r.err);
	/* a second reset has nothing left to release */
	proto_framer_reset(&f, &ops, &r);
	cr_assert_eq(r.releases, 1);
	/* the framer starts over cleanly with the next message */
	r.in_msg = false;
	r.next_msg = 14;
	cr_assert_eq(feed_at(&f, &r, s.b + 14, 6, 14), PROTO_OK);
	cr_assert_str_empty(r.err, "%s", r.err);
	cr_assert_eq(r.wholes, 1);
	cr_assert_eq(r.zero_copy, 1);
	cr_assert_eq(r.live, 0);
	rec_free(&r);
	stream_free(&s);
}

Test(frame_control, reset_forgets_partial_header_and_stream)
{
	static const uint8_t d[] = { 'D', 0, 0, 0, 10, 0, 1, 0, 0, 0, 0 };
	static const uint8_t z[] = { 'Z', 0, 0, 0, 5, 'I' };
	/* partial header */
	struct proto_framer f;
	proto_framer_init(&f, false, MAXLEN);
	struct rec r;
	memset(&r, 0, sizeof r);
	rec_reset(&r, &f, POL_MIX);
	cr_assert_eq(feed_plain(&f, &r, d, 3), PROTO_OK);
	cr_assert_not(proto_framer_idle(&f));
	proto_framer_reset(&f, &ops, &r);
	cr_assert(proto_framer_idle(&f));
	cr_assert_eq(feed_plain(&f, &r, z, sizeof z), PROTO_OK);
	cr_assert_eq(r.wholes, 1);
	cr_assert_eq(r.begins, 1);
	/* partial streamed body */
	rec_reset(&r, &f, POL_MIX);
	cr_assert_eq(feed_plain(&f, &r, d, 7), PROTO_OK);
	cr_assert_eq(r.bytes_calls, 1);
	cr_assert_not(proto_framer_idle(&f));
	proto_framer_reset(&f, &ops, &r);
	cr_assert(proto_framer_idle(&f));
	cr_assert_eq(r.allocs, 0);
	r.in_msg = false;
	r.next_msg = 0;
	cr_assert_eq(feed_plain(&f, &r, z, sizeof z), PROTO_OK);
	cr_assert_eq(r.wholes, 1);
	cr_assert_str_empty(r.err, "%s", r.err);
	rec_free(&r);
}

/* ---- the span hook: whole messages taken at the front, the rest framed ---- */

struct span_rec {
	char log[4096];
	size_t len;
	int span_calls;
	bool bad;   /* the hook was handed a cut message */
};

static int span_begin(void *ctx, uint8_t type, uint32_t len)
{
	(void)ctx, (void)type, (void)len;
	return PROTO_WHOLE;
}

static bool span_whole(void *ctx, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct span_rec *r = ctx;
	(void)buf;
	r->len += (size_t)snprintf(r->log + r->len, sizeof r->log - r->len, "W%c%u ", msg[0], len);
	return true;
}

static uint8_t *span_alloc(void *ctx, uint32_t len, uint32_t *buf)
{
	(void)ctx;
	*buf = PROTO_BUF_NONE;
	return malloc(len);
}

static void span_release(void *ctx, uint32_t buf, uint8_t *mem)
{
	(void)ctx, (void)buf;
	free(mem);
}

/* Takes 'D' messages (whole ones only), declines the rest. */
static uint32_t span_take(void *ctx, const uint8_t *p, uint32_t n, uint32_t buf)
{
	struct span_rec *r = ctx;
	(void)buf;
	r->span_calls++;
	uint32_t used = 0;
	while (n - used >= 5 && p[used] == 'D') {
		uint32_t len = proto_get_u32(p + used + 1) + 1;
		if (len > n - used)
			break;
		r->len += (size_t)snprintf(r->log + r->len, sizeof r->log - r->len, "S%c%u ", p[used], len);
		used += len;
	}
	r->bad |= n < 5;
	return used;
}

static const struct proto_frame_ops span_ops = {
	.begin = span_begin, .whole = span_whole, .bytes = NULL, .alloc = span_alloc, .release = span_release,
	.span = span_take,
};

Test(frame_span, takes_whole_messages_and_frames_the_rest)
{
	/* T(10) D(8) D(12) C(9) D(7) Z(6) */
	static const struct { char type; uint32_t len; } m[] = { { 'T', 10 }, { 'D', 8 }, { 'D', 12 },
								  { 'C', 9 }, { 'D', 7 }, { 'Z', 6 } };
	uint8_t b[64];
	uint32_t n = 0;
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
		b[n] = (uint8_t)m[i].type;
		uint32_t body = m[i].len - 1;
		b[n + 1] = (uint8_t)(body >> 24), b[n + 2] = (uint8_t)(body >> 16);
		b[n + 3] = (uint8_t)(body >> 8), b[n + 4] = (uint8_t)body;
		memset(b + n + 5, 'x', m[i].len - 5);
		n += m[i].len;
	}
	/* one buffer: the Ds at message boundaries go to the hook */
	struct span_rec r = { 0 };
	struct proto_framer f;
	proto_framer_init(&f, false, 1000);
	cr_assert_eq(proto_framer_feed(&f, b, n, 7, &span_ops, &r), PROTO_OK);
	cr_assert_str_eq(r.log, "WT10 SD8 SD12 WC9 SD7 WZ6 ");
	cr_assert(!r.bad);
	cr_assert(proto_framer_idle(&f));
	/* every cut: the same messages in the same order, a cut one framed */
	for (uint32_t cut = 0; cut <= n; cut++) {
		struct span_rec c = { 0 };
		proto_framer_init(&f, false, 1000);
		cr_assert_eq(proto_framer_feed(&f, b, cut, 1, &span_ops, &c), PROTO_OK);
		cr_assert_eq(proto_framer_feed(&f, b + cut, n - cut, 2, &span_ops, &c), PROTO_OK);
		cr_assert(!c.bad, "cut %u: the hook saw less than a header", cut);
		cr_assert(proto_framer_idle(&f));
		/* the same types and lengths, whoever delivered them */
		char a[256] = "", w[256] = "";
		for (size_t i = 0, k = 0; i < c.len; i++)
			if (c.log[i] != 'S' && c.log[i] != 'W')
				a[k++] = c.log[i];
		for (size_t i = 0, k = 0; i < r.len; i++)
			if (r.log[i] != 'S' && r.log[i] != 'W')
				w[k++] = r.log[i];
		cr_assert_str_eq(a, w, "cut %u: %s", cut, c.log);
	}
}
