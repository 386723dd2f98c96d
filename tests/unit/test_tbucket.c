/* tests/unit/test_tbucket.c: the token bucket behind admission control
 * (core/tbucket.h): refill, the burst cap, debt charged after the fact and
 * waited out, a reload's new rate, and a rate split over shards adding up. */
#include <criterion/criterion.h>

#include "core/tbucket.h"

TestSuite(tbucket);

Test(tbucket, starts_full_and_empties)
{
	struct tbucket b;
	tbucket_init(&b, 100, 10, 0);
	for (int i = 0; i < 10; i++)
		cr_assert(tbucket_take(&b, 1, 0), "token %d", i);
	cr_assert_not(tbucket_take(&b, 1, 0));
	cr_assert_eq(b.tokens, 0);
}

Test(tbucket, refills_at_its_rate_up_to_the_burst)
{
	struct tbucket b;
	tbucket_init(&b, 100, 10, 0);
	b.tokens = 0;
	cr_assert_not(tbucket_has(&b, 1, 5000));      /* 0.5 token after 5 ms */
	cr_assert(tbucket_take(&b, 1, 10000));        /* 1 after 10 ms */
	tbucket_refill(&b, 10 * 1000000ULL);          /* ten seconds: capped */
	cr_assert_float_eq(b.tokens, 10, 1e-9);
}

Test(tbucket, no_rate_means_no_limit)
{
	struct tbucket b;
	tbucket_init(&b, 0, 1, 0);
	for (int i = 0; i < 1000; i++)
		cr_assert(tbucket_take(&b, 1, 0));
	tbucket_charge(&b, 1e9, 0);
	cr_assert(tbucket_has(&b, 0, 0));
	cr_assert_eq(tbucket_wait_us(&b, 1, 0), 0);
}

Test(tbucket, debt_is_waited_out)
{
	struct tbucket b;
	tbucket_init(&b, 2000, 200, 0);
	tbucket_charge(&b, 1200, 0);                   /* 200 - 1200 = -1000 */
	cr_assert_float_eq(b.tokens, -1000, 1e-9);
	cr_assert_not(tbucket_has(&b, 0, 0));
	uint64_t w = tbucket_wait_us(&b, 0, 0);        /* 1000 rows at 2000/s: half a second */
	cr_assert(w >= 500000 && w <= 500002, "wait %llu", (unsigned long long)w);
	cr_assert_not(tbucket_has(&b, 0, 499000));
	cr_assert(tbucket_has(&b, 0, 500100));
}

Test(tbucket, wait_for_a_token)
{
	struct tbucket b;
	tbucket_init(&b, 50, 5, 0);
	b.tokens = 0.5;
	uint64_t w = tbucket_wait_us(&b, 1, 0);        /* half a token at 50/s: 10 ms */
	cr_assert(w >= 10000 && w <= 10002, "wait %llu", (unsigned long long)w);
	cr_assert_not(tbucket_take(&b, 1, w - 100));
	cr_assert(tbucket_take(&b, 1, w));
}

Test(tbucket, new_rate_keeps_debt_caps_tokens)
{
	struct tbucket b;
	tbucket_init(&b, 100, 10, 0);
	tbucket_set_rate(&b, 50, 5);
	cr_assert_float_eq(b.tokens, 5, 1e-9);
	tbucket_charge(&b, 20, 0);
	tbucket_set_rate(&b, 100, 10);
	cr_assert_float_eq(b.tokens, -15, 1e-9);
}

Test(tbucket, shares_add_up_to_the_global_rate)
{
	/* each shard takes its share for 10 s: together, the global rate
	 * within the shards' bursts */
	for (int nshards = 1; nshards <= 8; nshards++) {
		double rate = 100, share = tbucket_share(rate, nshards), burst = tbucket_burst(share);
		double got = 0;
		for (int s = 0; s < nshards; s++) {
			struct tbucket b;
			tbucket_init(&b, share, burst, 0);
			for (uint64_t t = 0; t <= 10 * 1000000ULL; t += 1000)
				while (tbucket_take(&b, 1, t))
					got++;
		}
		cr_assert(got >= 1000 && got <= 1000 + nshards * burst + nshards,
			  "%d shards: %g in 10 s", nshards, got);
		cr_assert(burst >= 1);
	}
}
