/* core/queue.h: a bounded single-producer/single-consumer queue of fixed-size
 * items, copied in and out by value. Carries topology snapshots (control -> shard)
 * and cancel requests and admin commands (shard -> shard). Header-only, no locks.
 *
 * Contract: exactly one thread pushes and exactly one thread pops for the life of
 * the queue (they may be the same thread). queue_empty() may be called by either;
 * from any other thread its answer is only a hint. Waking a sleeping consumer is
 * the caller's business (IORING_OP_MSG_RING or an eventfd), not the queue's. */
#ifndef PGRING_QUEUE_H
#define PGRING_QUEUE_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Padding between the producer's and the consumer's fields, so they never share a
 * cache line whatever the alignment of the struct itself. Padding rather than
 * _Alignas(64): a struct with extended alignment placed in malloc'ed memory would be
 * misaligned (undefined behaviour that UBSan reports). */
#define QUEUE_CACHE_LINE 64

struct queue {
	/* Read-only after queue_init. */
	unsigned char *slots;
	unsigned mask;            /* capacity - 1; capacity is a power of two */
	unsigned item_size;
	char pad0[QUEUE_CACHE_LINE];
	/* Producer's line: tail is written only by the producer. head_cache is the
	 * producer's last view of head, so a push that finds room touches no line the
	 * consumer writes. */
	_Atomic unsigned tail;    /* free-running count of pushed items */
	unsigned head_cache;
	char pad1[QUEUE_CACHE_LINE];
	/* Consumer's line, symmetrically. */
	_Atomic unsigned head;    /* free-running count of popped items */
	unsigned tail_cache;
	char pad2[QUEUE_CACHE_LINE];
};

/* capacity: a power of two, 2 .. 2^31; item_size > 0. Returns 0, or -1 with errno
 * EINVAL (bad arguments) or ENOMEM. */
static inline int queue_init(struct queue *q, unsigned capacity, unsigned item_size)
{
	memset(q, 0, sizeof(*q));
	if (capacity < 2 || capacity > (1u << 31) || (capacity & (capacity - 1)) ||
	    item_size == 0) {
		errno = EINVAL;
		return -1;
	}
	q->slots = calloc(capacity, item_size); /* calloc checks the product for overflow */
	if (!q->slots) {
		errno = ENOMEM;
		return -1;
	}
	q->mask = capacity - 1;
	q->item_size = item_size;
	atomic_init(&q->tail, 0);
	atomic_init(&q->head, 0);
	return 0;
}

/* Frees the slots. Both threads must be done with the queue. */
static inline void queue_destroy(struct queue *q)
{
	free(q->slots);
	q->slots = NULL;
}

static inline unsigned char *queue__slot(const struct queue *q, unsigned index)
{
	return q->slots + (size_t)(index & q->mask) * q->item_size;
}

/* Producer only. Copies item_size bytes from item; false when the queue is full. */
static inline bool queue_push(struct queue *q, const void *item)
{
	/* Relaxed: only this thread ever stores tail. */
	unsigned tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	if (tail - q->head_cache > q->mask) {
		/* Acquire pairs with the consumer's release store of head: once we see
		 * head move past a slot, the consumer's copy out of that slot has
		 * happened before we overwrite it. */
		q->head_cache = atomic_load_explicit(&q->head, memory_order_acquire);
		if (tail - q->head_cache > q->mask)
			return false;
	}
	memcpy(queue__slot(q, tail), item, q->item_size);
	/* Release: the bytes written into the slot become visible to a consumer
	 * that acquires this new tail, before it reads them. */
	atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
	return true;
}

/* Consumer only. Copies the oldest item into item; false when the queue is empty. */
static inline bool queue_pop(struct queue *q, void *item)
{
	/* Relaxed: only this thread ever stores head. */
	unsigned head = atomic_load_explicit(&q->head, memory_order_relaxed);
	if (head == q->tail_cache) {
		/* Acquire pairs with the producer's release store of tail: the slot's
		 * contents are visible once we see tail past it. */
		q->tail_cache = atomic_load_explicit(&q->tail, memory_order_acquire);
		if (head == q->tail_cache)
			return false;
	}
	memcpy(item, queue__slot(q, head), q->item_size);
	/* Release: our reads of the slot are done before the producer can see the
	 * slot as free (its acquire load of head) and overwrite it. */
	atomic_store_explicit(&q->head, head + 1, memory_order_release);
	return true;
}

/* True when nothing is queued. Exact for the consumer (nothing can disappear under
 * it); for the producer, an item it pushed may already have been taken. Acquire on
 * both loads so a consumer that sees "not empty" can pop without a stale view. */
static inline bool queue_empty(const struct queue *q)
{
	unsigned tail = atomic_load_explicit(&q->tail, memory_order_acquire);
	unsigned head = atomic_load_explicit(&q->head, memory_order_acquire);
	return head == tail;
}

#endif
