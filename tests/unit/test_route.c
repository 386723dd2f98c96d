/* tests/unit/test_route.c: route_pick_node (pool/route.c), the node a
 * transaction goes to, over hand-built topology snapshots: the primary for
 * writes; for reads two weighted picks among the readable nodes, the less
 * loaded per unit of weight winning; the primary when nothing is readable. */
#include <criterion/criterion.h>

#include <string.h>

#include "core/config.h"
#include "core/topology.h"
#include "pool/route.h"

#define MAX_NODES 8
#define PICKS 10000

/* A one-cluster snapshot. */
struct snap {
	struct config_cluster cc;
	struct topo_node nodes[MAX_NODES];
	struct topo_cluster tc;
	int active[MAX_NODES];       /* servers leased per node: what load() reads */
};

static void snap_init(struct snap *s, int nnodes, int primary)
{
	memset(s, 0, sizeof *s);
	s->cc.name = "main";
	s->cc.nnodes = nnodes;
	s->tc.cc = &s->cc;
	s->tc.nodes = s->nodes;
	s->tc.primary = primary;
	for (int i = 0; i < nnodes; i++)
		s->nodes[i] = (struct topo_node){ .role = i == primary ? NODE_PRIMARY : NODE_REPLICA,
						  .state = NODE_UP, .weight = 1 };
}

static struct snap *current;   /* the snapshot load() reads (tc has no room for a context) */

/* As pool/route.c's node_load: busy per unit of weight. */
static double load(const struct topo_cluster *tc, int i)
{
	cr_assert_eq(tc, &current->tc);
	cr_assert(i >= 0 && i < tc->cc->nnodes, "load() of node %d", i);
	cr_assert_gt(tc->nodes[i].weight, 0, "load() of a node that cannot be picked");
	return (double)current->active[i] / tc->nodes[i].weight;
}

/* How often each node (and -1, in [MAX_NODES]) is picked in PICKS tries. */
static void count_picks(struct snap *s, int target, uint64_t seed, int counts[MAX_NODES + 1])
{
	memset(counts, 0, (MAX_NODES + 1) * sizeof *counts);
	current = s;
	uint64_t rng = seed;
	for (int i = 0; i < PICKS; i++) {
		int n = route_pick_node(&s->tc, target, &rng, load);
		cr_assert(n >= -1 && n < s->cc.nnodes, "picked %d", n);
		counts[n < 0 ? MAX_NODES : n]++;
	}
}

#define assert_share(count, share, slack)                                                          \
	cr_expect((count) >= (int)(PICKS * ((share) - (slack))) && (count) <= (int)(PICKS * ((share) + (slack))), \
		  "%s = %d of %d, expected %.0f%% +- %.0f%%", #count, (count), PICKS, (share) * 100, (slack) * 100)

Test(route, primary_target_gives_the_primary)
{
	struct snap s;
	snap_init(&s, 3, 1);
	current = &s;
	uint64_t rng = 42;
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(route_pick_node(&s.tc, TARGET_PRIMARY, &rng, load), 1);
		cr_assert_eq(route_pick_node(&s.tc, TARGET_UNSET, &rng, load), 1, "unset should mean primary");
	}
	s.tc.primary = -1;
	s.nodes[1].role = NODE_REPLICA;
	cr_expect_eq(route_pick_node(&s.tc, TARGET_PRIMARY, &rng, load), -1, "no primary: -1, never a replica");
}

Test(route, replicas_are_chosen_by_weight)
{
	struct snap s;
	snap_init(&s, 3, 0);
	s.nodes[1].weight = 1;
	s.nodes[2].weight = 3;
	int c[MAX_NODES + 1];
	count_picks(&s, TARGET_REPLICA, 12345, c);
	cr_expect_eq(c[0], 0, "the primary took %d replica reads", c[0]);
	assert_share(c[1], 0.25, 0.02);
	assert_share(c[2], 0.75, 0.02);
	/* whatever the seed */
	count_picks(&s, TARGET_REPLICA, 0xdeadbeefcafeull, c);
	assert_share(c[1], 0.25, 0.02);
	assert_share(c[2], 0.75, 0.02);
}

Test(route, nodes_down_lagging_unknown_or_weightless_are_never_picked)
{
	struct snap s;
	snap_init(&s, 6, 0);
	s.nodes[1].state = NODE_DOWN;
	s.nodes[2].state = NODE_LAGGING;
	s.nodes[3].weight = 0;
	s.nodes[4].role = NODE_ROLE_UNKNOWN;
	/* node 5: the one readable replica */
	int c[MAX_NODES + 1];
	for (int target = TARGET_REPLICA; target <= TARGET_ANY; target++) {
		count_picks(&s, target, 777, c);
		for (int i = 1; i < 5; i++)
			cr_expect_eq(c[i], 0, "target %d: node %d picked %d times", target, i, c[i]);
	}
	count_picks(&s, TARGET_REPLICA, 777, c);
	cr_expect_eq(c[5], PICKS);
	/* the primary is not readable either when it is down or weightless */
	s.nodes[0].weight = 0;
	count_picks(&s, TARGET_ANY, 778, c);
	cr_expect_eq(c[5], PICKS, "a weight-0 primary took reads");
	s.nodes[0].weight = 1;
	s.nodes[0].state = NODE_DOWN;
	count_picks(&s, TARGET_ANY, 779, c);
	cr_expect_eq(c[5], PICKS, "a primary that is down took reads");
}

Test(route, with_no_readable_replica_reads_fall_back_to_the_primary)
{
	struct snap s;
	snap_init(&s, 3, 2);
	s.nodes[0].state = NODE_LAGGING;
	s.nodes[1].weight = 0;
	int c[MAX_NODES + 1];
	count_picks(&s, TARGET_REPLICA, 99, c);
	cr_expect_eq(c[2], PICKS, "replica reads with no replica: primary %d, none %d", c[2], c[MAX_NODES]);
	s.tc.primary = -1;
	s.nodes[2].role = NODE_REPLICA;
	s.nodes[2].state = NODE_DOWN;
	count_picks(&s, TARGET_REPLICA, 99, c);
	cr_expect_eq(c[MAX_NODES], PICKS, "nothing readable and no primary: -1");
}

Test(route, target_any_includes_the_primary_and_replica_excludes_it)
{
	struct snap s;
	snap_init(&s, 2, 0);
	int c[MAX_NODES + 1];
	count_picks(&s, TARGET_ANY, 2024, c);
	assert_share(c[0], 0.5, 0.03);
	assert_share(c[1], 0.5, 0.03);
	count_picks(&s, TARGET_REPLICA, 2024, c);
	cr_expect_eq(c[0], 0);
	cr_expect_eq(c[1], PICKS);
	/* weights count for the primary too */
	s.nodes[0].weight = 3;
	count_picks(&s, TARGET_ANY, 2025, c);
	assert_share(c[0], 0.75, 0.02);
}

Test(route, of_two_picks_the_less_loaded_wins)
{
	struct snap s;
	snap_init(&s, 3, 0);
	s.active[1] = 50;   /* busy */
	s.active[2] = 0;
	int c[MAX_NODES + 1];
	count_picks(&s, TARGET_REPLICA, 31337, c);
	/* node 1 wins only when both picks are node 1: 1/4 of the time, not 1/2 */
	assert_share(c[1], 0.25, 0.02);
	assert_share(c[2], 0.75, 0.02);
	/* swap: the choice follows the load, not the index */
	s.active[1] = 0;
	s.active[2] = 50;
	count_picks(&s, TARGET_REPLICA, 31337, c);
	assert_share(c[1], 0.75, 0.02);
}

Test(route, load_counts_per_unit_of_weight)
{
	struct snap s;
	snap_init(&s, 3, 0);
	s.nodes[1].weight = 4;
	s.nodes[2].weight = 1;
	/* node 1: 6 active over weight 4 = 1.5 each; node 2: 2 over 1 = 2:
	 * node 1 is the less loaded though it has more servers busy */
	s.active[1] = 6;
	s.active[2] = 2;
	int c[MAX_NODES + 1];
	count_picks(&s, TARGET_REPLICA, 4242, c);
	/* node 2 wins only when drawn twice: (1/5)^2 = 4% */
	assert_share(c[2], 0.04, 0.015);
	assert_share(c[1], 0.96, 0.015);
}

Test(route, the_same_seed_gives_the_same_sequence)
{
	struct snap s;
	snap_init(&s, 5, 0);
	for (int i = 1; i < 5; i++)
		s.nodes[i].weight = i;
	current = &s;
	uint64_t r1 = 0x9e3779b97f4a7c15ull, r2 = r1, r3 = r1 + 1;
	int differ = 0;
	for (int i = 0; i < 1000; i++) {
		int a = route_pick_node(&s.tc, TARGET_ANY, &r1, load);
		int b = route_pick_node(&s.tc, TARGET_ANY, &r2, load);
		int d = route_pick_node(&s.tc, TARGET_ANY, &r3, load);
		cr_assert_eq(a, b, "pick %d differs with the same seed", i);
		differ += a != d;
	}
	cr_expect_eq(r1, r2);
	cr_expect_gt(differ, 100, "another seed gives (nearly) the same sequence");
}

Test(route, writes_do_not_touch_the_rng)
{
	struct snap s;
	snap_init(&s, 3, 0);
	current = &s;
	uint64_t rng = 5;
	route_pick_node(&s.tc, TARGET_PRIMARY, &rng, load);
	cr_expect_eq(rng, 5);
}
