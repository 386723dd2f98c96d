/* proto/frame.c: walks PostgreSQL message headers inside received buffers.
 * Streamed messages are handed out as slices of the buffers they arrived in;
 * only headers and inspected messages that straddle two buffers are copied. */
#include "proto/proto.h"

#include <string.h>

void proto_framer_init(struct proto_framer *f, bool untyped, uint32_t max_len)
{
	memset(f, 0, sizeof *f);
	f->untyped = untyped;
	f->max_len = max_len;
	f->asm_buf = PROTO_BUF_NONE;
}

void proto_framer_reset(struct proto_framer *f, const struct proto_frame_ops *ops, void *ctx)
{
	if (f->asm_mem)
		ops->release(ctx, f->asm_buf, f->asm_mem);
	f->asm_mem = NULL;
	f->asm_buf = PROTO_BUF_NONE;
	f->hdr_have = 0;
	f->remaining = 0;
	f->whole = false;
}

static int continue_message(struct proto_framer *f, const uint8_t *p, uint32_t n, uint32_t buf,
			    const struct proto_frame_ops *ops, void *ctx, uint32_t *consumed);

/* The header is complete in hdr (hlen bytes); decide how the body travels.
 * `inplace` points at the header inside the current buffer, or NULL if the
 * header was assembled from two buffers. */
static int start_message(struct proto_framer *f, const uint8_t *hdr, const uint8_t *inplace,
			 const uint8_t *avail_end, uint32_t buf,
			 const struct proto_frame_ops *ops, void *ctx, uint32_t *consumed)
{
	uint32_t hlen = f->untyped ? 4 : 5;
	uint8_t type = f->untyped ? 0 : hdr[0];
	uint32_t body_len = proto_get_u32(hdr + (f->untyped ? 0 : 1));
	if (body_len < 4 || body_len > f->max_len)
		return PROTO_BAD_LENGTH;
	uint32_t total = body_len + (f->untyped ? 0 : 1);
	f->type = type;
	f->len = total;
	int how = ops->begin(ctx, type, total);
	if (how == PROTO_STOP)
		return PROTO_STOPPED;
	uint32_t avail = inplace ? (uint32_t)(avail_end - inplace) : 0;
	if (how == PROTO_WHOLE) {
		if (inplace && avail >= total) {
			*consumed = total;
			f->ahead = inplace + total;
			f->ahead_len = avail - total;
			return ops->whole(ctx, inplace, total, buf) ? PROTO_OK : PROTO_STOPPED;
		}
		uint8_t *mem = ops->alloc(ctx, total, &f->asm_buf);
		if (!mem)
			return PROTO_NO_MEMORY;
		f->asm_mem = mem;
		uint32_t take = inplace ? avail : hlen;
		memcpy(mem, inplace ? inplace : hdr, take);
		f->asm_have = take;
		f->whole = true;
		f->remaining = total - take;
		*consumed = inplace ? take : 0;
		if (f->remaining == 0)  /* a body-less message whose header straddled */
			return continue_message(f, NULL, 0, buf, ops, ctx, &(uint32_t){0});
		return PROTO_OK;
	}
	/* streamed */
	f->whole = false;
	if (inplace) {
		uint32_t take = avail < total ? avail : total;
		ops->bytes(ctx, inplace, take, buf);
		f->remaining = total - take;
		*consumed = take;
	} else {
		ops->bytes(ctx, hdr, hlen, PROTO_BUF_NONE);
		f->remaining = total - hlen;
		*consumed = 0;
	}
	return PROTO_OK;
}

/* Continue the current message's body with up to n bytes at p. */
static int continue_message(struct proto_framer *f, const uint8_t *p, uint32_t n, uint32_t buf,
			    const struct proto_frame_ops *ops, void *ctx, uint32_t *consumed)
{
	uint32_t take = n < f->remaining ? n : f->remaining;
	*consumed = take;
	f->remaining -= take;
	if (!f->whole) {
		ops->bytes(ctx, p, take, buf);
		return PROTO_OK;
	}
	if (take)
		memcpy(f->asm_mem + f->asm_have, p, take);
	f->asm_have += take;
	if (f->remaining)
		return PROTO_OK;
	uint8_t *mem = f->asm_mem;
	uint32_t mbuf = f->asm_buf;
	f->asm_mem = NULL;
	f->asm_buf = PROTO_BUF_NONE;
	f->whole = false;
	f->ahead = p ? p + take : NULL;
	f->ahead_len = n - take;
	bool go = ops->whole(ctx, mem, f->len, mbuf);
	ops->release(ctx, mbuf, mem);
	return go ? PROTO_OK : PROTO_STOPPED;
}

int proto_framer_feed(struct proto_framer *f, const uint8_t *data, uint32_t n, uint32_t buf,
		      const struct proto_frame_ops *ops, void *ctx)
{
	const uint8_t *p = data, *end = data + n;
	while (p < end) {
		uint32_t used = 0;
		int rc;
		if (f->remaining) {
			rc = continue_message(f, p, (uint32_t)(end - p), buf, ops, ctx, &used);
		} else {
			uint32_t hlen = f->untyped ? 4 : 5;
			if (f->hdr_have == 0 && (uint32_t)(end - p) >= hlen) {
				if (ops->span && !f->untyped) {
					p += ops->span(ctx, p, (uint32_t)(end - p), buf);
					if ((uint32_t)(end - p) < hlen)
						continue;   /* all taken, or a header cut by the buffer's end */
				}
				rc = start_message(f, p, p, end, buf, ops, ctx, &used);
			} else {
				uint32_t need = hlen - f->hdr_have;
				uint32_t take = (uint32_t)(end - p) < need ? (uint32_t)(end - p) : need;
				memcpy(f->hdr + f->hdr_have, p, take);
				f->hdr_have += take;
				p += take;
				if (f->hdr_have < hlen)
					return PROTO_OK;
				f->hdr_have = 0;
				rc = start_message(f, f->hdr, NULL, NULL, buf, ops, ctx, &used);
			}
		}
		if (rc != PROTO_OK)
			return rc;
		p += used;
	}
	return PROTO_OK;
}
