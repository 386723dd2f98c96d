/* tests/unit/test_balance.c: the policy that sets how many shards take
 * clients (core/balance.h): one more at once when an active shard is over
 * spread, one fewer only after gather_windows quiet windows in a row, never
 * outside 1..n, and no flapping at the thresholds. */
#include <criterion/criterion.h>

#include "core/balance.h"

TestSuite(balance);

#define SPREAD 800u
#define GATHER 400u

static int next(int active, int n, const unsigned *busy, unsigned *streak)
{
	return balance_next(active, n, busy, SPREAD, GATHER, 3, streak);
}

Test(balance, a_hot_shard_gets_help_at_once)
{
	unsigned streak = 0;
	unsigned busy[4] = { 850, 0, 0, 0 };
	cr_assert_eq(next(1, 4, busy, &streak), 2);
	busy[1] = 900;
	cr_assert_eq(next(2, 4, busy, &streak), 3, "the second shard hot as well");
	busy[0] = busy[1] = 500;
	cr_assert_eq(next(3, 4, busy, &streak), 3, "neither hot nor quiet: stays");
}

Test(balance, never_past_the_shards_there_are)
{
	unsigned streak = 0;
	unsigned busy[2] = { 1000, 1000 };
	cr_assert_eq(next(2, 2, busy, &streak), 2);
	unsigned one[1] = { 1000 };
	cr_assert_eq(next(1, 1, one, &streak), 1);
}

Test(balance, gathers_only_after_quiet_windows_in_a_row)
{
	unsigned streak = 0;
	unsigned busy[2] = { 150, 150 };   /* 300 in all: fits one shard under 400 */
	cr_assert_eq(next(2, 2, busy, &streak), 2);
	cr_assert_eq(next(2, 2, busy, &streak), 2);
	busy[0] = 300;                      /* 450: a window that would not fit */
	cr_assert_eq(next(2, 2, busy, &streak), 2);
	cr_assert_eq(streak, 0, "the count starts again");
	busy[0] = 150;
	cr_assert_eq(next(2, 2, busy, &streak), 2);
	cr_assert_eq(next(2, 2, busy, &streak), 2);
	cr_assert_eq(next(2, 2, busy, &streak), 1, "third quiet window in a row");
	cr_assert_eq(streak, 0);
}

Test(balance, gathering_counts_only_the_active_shards)
{
	unsigned streak = 0;
	/* shard 2 is not taking clients: what it still serves does not count */
	unsigned busy[3] = { 200, 150, 900 };
	for (int i = 0; i < 2; i++)
		cr_assert_eq(next(2, 3, busy, &streak), 2);
	cr_assert_eq(next(2, 3, busy, &streak), 1);
	unsigned three[3] = { 300, 250, 200 };   /* 750 fits two shards under 400 each */
	streak = 0;
	for (int i = 0; i < 2; i++)
		cr_assert_eq(next(3, 3, three, &streak), 3);
	cr_assert_eq(next(3, 3, three, &streak), 2);
}

Test(balance, no_flapping_between_the_thresholds)
{
	/* one shard at 700: not hot; two at 350 + 350 = 700: too much for one
	 * under 400. Whichever count it starts from, it stays. */
	unsigned streak = 0;
	unsigned one[2] = { 700, 0 }, two[2] = { 350, 350 };
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(next(1, 2, one, &streak), 1);
		cr_assert_eq(next(2, 2, two, &streak), 2);
	}
}

Test(balance, a_hot_window_resets_the_quiet_count)
{
	unsigned streak = 0;
	unsigned quiet[3] = { 100, 100, 0 }, hot[3] = { 100, 900, 0 };
	next(2, 3, quiet, &streak);
	next(2, 3, quiet, &streak);
	cr_assert_eq(next(2, 3, hot, &streak), 3);
	cr_assert_eq(streak, 0);
	cr_assert_eq(next(3, 3, quiet, &streak), 3, "one quiet window after a hot one is not enough");
}
