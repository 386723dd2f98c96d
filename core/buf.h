/* core/buf.h: a shard's buffers. Two provided-buffer rings (client sockets,
 * server sockets) that the kernel fills on receive, and scratch buffers for what
 * pgring writes itself. Every buffer has a reference count; a provided buffer goes
 * back to its ring, a scratch buffer back to its free list, when the count drops
 * to zero. Buffer ids are shard-local; PROTO_BUF_NONE means "not a buffer". */
#ifndef PGRING_BUF_H
#define PGRING_BUF_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/proto.h"   /* PROTO_BUF_NONE */

#define BUF_GROUP_CLIENT 0
#define BUF_GROUP_SERVER 1
#define BUF_SCRATCH_SIZE 16384

struct buf_group {
	struct io_uring_buf_ring *ring;
	uint8_t *mem;
	uint32_t count, size, first_id;
	uint16_t bgid;
	uint16_t added;        /* buffers put back since the last advance */
	uint32_t in_use;       /* handed out by the kernel, not yet back */
};

struct bufs {
	struct io_uring *ring;
	struct buf_group group[2];
	uint32_t nprovided;
	uint16_t *refs;        /* by buffer id; provided first, then scratch */
	uint32_t refs_cap;
	/* scratch: ids nprovided + i */
	uint8_t **scratch;
	uint32_t *scratch_size;
	uint32_t nscratch;
	uint32_t *free_ids;    /* free standard-size scratch buffers */
	uint32_t nfree;
	uint32_t cur;          /* scratch buffer being carved, or UINT32_MAX */
	uint32_t cur_off;
	int64_t in_use;
};

int bufs_init(struct bufs *b, struct io_uring *ring, uint32_t client_count, uint32_t client_size,
	      uint32_t server_count, uint32_t server_size, char *err, size_t errlen);
void bufs_destroy(struct bufs *b);

/* The memory of provided buffer `bid` of group g, as a CQE names it. Its id gets one reference. */
uint8_t *bufs_received(struct bufs *b, int g, uint16_t bid, uint32_t *id);
/* Carve len bytes of scratch memory; the caller owns one reference to *id. */
uint8_t *bufs_scratch(struct bufs *b, uint32_t len, uint32_t *id);
static inline void bufs_ref(struct bufs *b, uint32_t id) { b->refs[id]++; }
void bufs_release(struct bufs *b, uint32_t id);
/* Most drops are not the last (a buffer is held by its receive and by each
 * send that forwards part of it): those stay inline, the return to the ring
 * or free list is bufs_release's. */
static inline void bufs_unref(struct bufs *b, uint32_t id)
{
	if (id != PROTO_BUF_NONE && !--b->refs[id])
		bufs_release(b, id);
}
/* Publish returned provided buffers to the kernel (once per loop iteration). */
void bufs_commit(struct bufs *b);

#endif
