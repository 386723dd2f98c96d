/* tests/unit/test_queue.c: core/queue.h, the SPSC queue: FIFO order, full and
 * empty edges, index wrap-around, and a two-thread run checking that nothing is
 * lost, duplicated or reordered. */
#include "core/queue.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>

Test(queue, init_rejects_bad_arguments)
{
	struct queue q;
	cr_expect_eq(queue_init(&q, 0, 8), -1);
	cr_expect_eq(queue_init(&q, 1, 8), -1);
	cr_expect_eq(queue_init(&q, 3, 8), -1);
	cr_expect_eq(queue_init(&q, 48, 8), -1);
	cr_expect_eq(queue_init(&q, 64, 0), -1);
	cr_expect_eq(errno, EINVAL);
	cr_assert_eq(queue_init(&q, 2, 1), 0);
	queue_destroy(&q);
}

Test(queue, fifo_full_empty)
{
	struct queue q;
	uint64_t v;
	cr_assert_eq(queue_init(&q, 8, sizeof(uint64_t)), 0);
	cr_expect(queue_empty(&q));
	cr_expect_not(queue_pop(&q, &v));
	for (uint64_t i = 0; i < 8; i++) {
		cr_expect(queue_push(&q, &i));
		cr_expect_not(queue_empty(&q));
	}
	v = 99;
	cr_expect_not(queue_push(&q, &v), "a full queue must refuse a push");
	for (uint64_t i = 0; i < 8; i++) {
		cr_assert(queue_pop(&q, &v));
		cr_expect_eq(v, i);
	}
	cr_expect(queue_empty(&q));
	cr_expect_not(queue_pop(&q, &v));
	queue_destroy(&q);
}

/* Interleaved pushes and pops walk the indices around the ring many times. */
Test(queue, wraps_around)
{
	struct queue q;
	uint64_t next_in = 0, next_out = 0, v;
	cr_assert_eq(queue_init(&q, 4, sizeof(uint64_t)), 0);
	for (int round = 0; round < 1000; round++) {
		int n = 1 + round % 4;
		for (int i = 0; i < n; i++, next_in++)
			cr_assert(queue_push(&q, &next_in));
		for (int i = 0; i < n; i++, next_out++) {
			cr_assert(queue_pop(&q, &v));
			cr_assert_eq(v, next_out);
		}
	}
	cr_expect(queue_empty(&q));
	queue_destroy(&q);
}

/* Items are copied whole, whatever their size. */
struct odd_item {
	char name[13];
	uint32_t a;
	uint64_t b;
	unsigned char tail[3];
};

Test(queue, copies_items_of_any_size)
{
	struct queue q;
	struct odd_item in, out;
	cr_assert_eq(queue_init(&q, 2, sizeof(struct odd_item)), 0);
	for (unsigned i = 0; i < 10; i++) {
		memset(&in, (int)i, sizeof(in));
		snprintf(in.name, sizeof(in.name), "item-%u", i);
		in.a = i * 7;
		in.b = (uint64_t)i << 40;
		cr_assert(queue_push(&q, &in));
		memset(&out, 0xff, sizeof(out));
		cr_assert(queue_pop(&q, &out));
		cr_expect_eq(memcmp(&in, &out, sizeof(in)), 0);
	}
	queue_destroy(&q);
}

#define SPSC_ITEMS 10000000ull

static void *producer(void *arg)
{
	struct queue *q = arg;
	for (uint64_t i = 0; i < SPSC_ITEMS; i++)
		while (!queue_push(q, &i))
			sched_yield(); /* the consumer may share our CPU */
	return NULL;
}

Test(queue, two_threads_ten_million_in_order)
{
	struct queue q;
	pthread_t t;
	uint64_t expect = 0, v;
	cr_assert_eq(queue_init(&q, 64, sizeof(uint64_t)), 0);
	cr_assert_eq(pthread_create(&t, NULL, producer, &q), 0);
	while (expect < SPSC_ITEMS) {
		if (!queue_pop(&q, &v)) {
			sched_yield();
			continue;
		}
		if (v != expect)
			cr_assert_fail("item %llu arrived where %llu was expected",
				       (unsigned long long)v, (unsigned long long)expect);
		expect++;
	}
	pthread_join(t, NULL);
	cr_expect(queue_empty(&q), "nothing may be left over");
	cr_expect_not(queue_pop(&q, &v));
	queue_destroy(&q);
}
