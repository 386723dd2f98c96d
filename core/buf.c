/* core/buf.c: provided-buffer rings and scratch buffers, reference counted.
 * Scratch memory is carved bump-style out of 16 KiB buffers so that many small
 * pooler-written messages share one buffer (and one iovec when adjacent). */
#include "core/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "proto/proto.h"

static int group_init(struct bufs *b, int g, uint32_t count, uint32_t size, uint32_t first,
		      char *err, size_t errlen)
{
	struct buf_group *grp = &b->group[g];
	grp->count = count;
	grp->size = size;
	grp->first_id = first;
	grp->bgid = (uint16_t)(g + 1);
	size_t ring_bytes = (size_t)count * sizeof(struct io_uring_buf);
	void *ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (ring == MAP_FAILED) {
		snprintf(err, errlen, "mmap of buffer ring: %s", strerror(errno));
		return -1;
	}
	grp->ring = ring;
	struct io_uring_buf_reg reg = { .ring_addr = (unsigned long)ring, .ring_entries = count,
					.bgid = grp->bgid };
	int rc = io_uring_register_buf_ring(b->ring, &reg, 0);
	if (rc) {
		snprintf(err, errlen, "registering a provided-buffer ring of %u entries: %s%s", count,
			 strerror(-rc), rc == -ENOMEM ? " (RLIMIT_MEMLOCK too low? raise it with ulimit -l or LimitMEMLOCK=)" : "");
		return -1;
	}
	io_uring_buf_ring_init(grp->ring);
	grp->mem = mmap(NULL, (size_t)count * size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (grp->mem == MAP_FAILED) {
		snprintf(err, errlen, "mmap of %u receive buffers: %s", count, strerror(errno));
		return -1;
	}
	int mask = io_uring_buf_ring_mask(count);
	for (uint32_t i = 0; i < count; i++)
		io_uring_buf_ring_add(grp->ring, grp->mem + (size_t)i * size, size, (unsigned short)i, mask, (int)i);
	io_uring_buf_ring_advance(grp->ring, (int)count);
	return 0;
}

static int grow_refs(struct bufs *b, uint32_t need)
{
	if (need <= b->refs_cap)
		return 0;
	uint32_t cap = b->refs_cap ? b->refs_cap * 2 : 1024;
	while (cap < need)
		cap *= 2;
	uint16_t *r = realloc(b->refs, cap * sizeof *r);
	if (!r)
		return -1;
	memset(r + b->refs_cap, 0, (cap - b->refs_cap) * sizeof *r);
	b->refs = r;
	b->refs_cap = cap;
	return 0;
}

int bufs_init(struct bufs *b, struct io_uring *ring, uint32_t client_count, uint32_t client_size,
	      uint32_t server_count, uint32_t server_size, char *err, size_t errlen)
{
	memset(b, 0, sizeof *b);
	b->ring = ring;
	b->cur = UINT32_MAX;
	if (group_init(b, BUF_GROUP_CLIENT, client_count, client_size, 0, err, errlen) ||
	    group_init(b, BUF_GROUP_SERVER, server_count, server_size, client_count, err, errlen))
		return -1;
	b->nprovided = client_count + server_count;
	if (grow_refs(b, b->nprovided + 64)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void bufs_destroy(struct bufs *b)
{
	for (int g = 0; g < 2; g++) {
		struct buf_group *grp = &b->group[g];
		if (grp->ring) {
			io_uring_unregister_buf_ring(b->ring, grp->bgid);
			munmap(grp->ring, (size_t)grp->count * sizeof(struct io_uring_buf));
		}
		if (grp->mem && grp->mem != MAP_FAILED)
			munmap(grp->mem, (size_t)grp->count * grp->size);
	}
	for (uint32_t i = 0; i < b->nscratch; i++)
		free(b->scratch[i]);
	free(b->scratch);
	free(b->scratch_size);
	free(b->free_ids);
	free(b->refs);
	memset(b, 0, sizeof *b);
}

uint8_t *bufs_received(struct bufs *b, int g, uint16_t bid, uint32_t *id)
{
	struct buf_group *grp = &b->group[g];
	*id = grp->first_id + bid;
	b->refs[*id] = 1;
	b->in_use++;
	grp->in_use++;
	return grp->mem + (size_t)bid * grp->size;
}

static uint32_t new_scratch(struct bufs *b, uint32_t size)
{
	uint32_t i;
	if (size == BUF_SCRATCH_SIZE && b->nfree) {
		i = b->free_ids[--b->nfree];
	} else {
		if (grow_refs(b, b->nprovided + b->nscratch + 1))
			return UINT32_MAX;
		uint8_t **s = realloc(b->scratch, (b->nscratch + 1) * sizeof *s);
		if (!s)
			return UINT32_MAX;
		b->scratch = s;
		uint32_t *sz = realloc(b->scratch_size, (b->nscratch + 1) * sizeof *sz);
		if (!sz)
			return UINT32_MAX;
		b->scratch_size = sz;
		uint32_t *f = realloc(b->free_ids, (b->nscratch + 1) * sizeof *f);
		if (!f)
			return UINT32_MAX;
		b->free_ids = f;
		uint8_t *mem = malloc(size);
		if (!mem)
			return UINT32_MAX;
		i = b->nscratch++;
		b->scratch[i] = mem;
		b->scratch_size[i] = size;
	}
	b->in_use++;
	return i;
}

uint8_t *bufs_scratch(struct bufs *b, uint32_t len, uint32_t *id)
{
	if (len > BUF_SCRATCH_SIZE / 4) {
		/* big ones get a buffer of their own so they don't waste the shared one */
		uint32_t i = new_scratch(b, len > BUF_SCRATCH_SIZE ? len : BUF_SCRATCH_SIZE);
		if (i == UINT32_MAX)
			return NULL;
		*id = b->nprovided + i;
		b->refs[*id] = 1;
		return b->scratch[i];
	}
	if (b->cur == UINT32_MAX || b->cur_off + len > BUF_SCRATCH_SIZE) {
		if (b->cur != UINT32_MAX)
			bufs_unref(b, b->nprovided + b->cur);   /* the carving reference */
		uint32_t i = new_scratch(b, BUF_SCRATCH_SIZE);
		if (i == UINT32_MAX) {
			b->cur = UINT32_MAX;
			return NULL;
		}
		b->cur = i;
		b->cur_off = 0;
		b->refs[b->nprovided + i] = 1;
	}
	uint8_t *p = b->scratch[b->cur] + b->cur_off;
	b->cur_off += len;   /* unaligned: consecutive copies stay adjacent, one iovec */
	*id = b->nprovided + b->cur;
	b->refs[*id]++;
	return p;
}

/* An oversized scratch buffer came back: give the memory back, keep the slot
 * as a standard buffer. Out of line, so that bufs_release saves no registers
 * for the calls. */
static __attribute__((noinline)) void scratch_shrink(struct bufs *b, uint32_t i)
{
	free(b->scratch[i]);
	b->scratch[i] = malloc(BUF_SCRATCH_SIZE);
	b->scratch_size[i] = BUF_SCRATCH_SIZE;
	if (b->scratch[i])
		b->free_ids[b->nfree++] = i;
}

/* The last reference to buffer id went. */
void bufs_release(struct bufs *b, uint32_t id)
{
	b->in_use--;
	if (id < b->nprovided) {
		struct buf_group *grp = &b->group[id >= b->group[1].first_id];
		uint16_t bid = (uint16_t)(id - grp->first_id);
		grp->in_use--;
		io_uring_buf_ring_add(grp->ring, grp->mem + (size_t)bid * grp->size, grp->size, bid,
				      io_uring_buf_ring_mask(grp->count), grp->added++);
		return;
	}
	uint32_t i = id - b->nprovided;
	if (b->scratch_size[i] == BUF_SCRATCH_SIZE)
		b->free_ids[b->nfree++] = i;
	else
		scratch_shrink(b, i);
}

void bufs_commit(struct bufs *b)
{
	for (int g = 0; g < 2; g++) {
		if (b->group[g].added) {
			io_uring_buf_ring_advance(b->group[g].ring, b->group[g].added);
			b->group[g].added = 0;
		}
	}
}
