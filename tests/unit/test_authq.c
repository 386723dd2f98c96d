/* tests/unit/test_authq.c: auth_query's cache (core/control/authq.c): answers
 * keyed by (target, role), expiring, replaced, bounded; and the requests the
 * shards send. The lookups themselves run against PostgreSQL in t_authquery. */
#include "core/control/authq.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static int t1, t2;   /* two targets: only their addresses matter */

Test(authq_cache, hit_miss_and_expiry)
{
	struct authq_cache *c = authq_cache_new();
	enum authq_status st;
	const char *sec;
	cr_assert(c);
	cr_expect_eq(authq_cache_get(c, &t1, NULL, "alice", 0, &st, &sec, NULL), -1);
	cr_expect_eq(authq_cache_put(c, &t1, NULL, "alice", AUTHQ_FOUND, "md5abc", 1000), 0);
	cr_expect_eq(authq_cache_put(c, &t1, NULL, "bob", AUTHQ_NONE, NULL, 500), 0);
	cr_expect_eq(authq_cache_count(c), 2);
	cr_assert_eq(authq_cache_get(c, &t1, NULL, "alice", 999, &st, &sec, NULL), 0);
	cr_expect_eq(st, AUTHQ_FOUND);
	cr_expect_str_eq(sec, "md5abc");
	cr_assert_eq(authq_cache_get(c, &t1, NULL, "bob", 10, &st, &sec, NULL), 0);
	cr_expect_eq(st, AUTHQ_NONE, "a negative answer is cached too");
	cr_expect_null(sec);
	/* another target (another auth_user, database or query) is another key */
	cr_expect_eq(authq_cache_get(c, &t2, NULL, "alice", 10, &st, &sec, NULL), -1);
	/* a role name is compared whole */
	cr_expect_eq(authq_cache_get(c, &t1, NULL, "alic", 10, &st, &sec, NULL), -1);
	cr_expect_eq(authq_cache_get(c, &t1, NULL, "alice'--", 10, &st, &sec, NULL), -1);
	/* expired: a miss, and the entry goes */
	cr_expect_eq(authq_cache_get(c, &t1, NULL, "alice", 1000, &st, &sec, NULL), -1);
	cr_expect_eq(authq_cache_get(c, &t1, NULL, "bob", 2000, &st, &sec, NULL), -1);
	cr_expect_eq(authq_cache_count(c), 0);
	authq_cache_free(c);
}

/* A shard's copy: keyed by the client's database and user (no target), kept
 * until the control shard's expiry, which the get reports. */
Test(authq_cache, keyed_by_database_for_the_shards)
{
	struct authq_cache *c = authq_cache_new();
	enum authq_status st;
	const char *sec;
	uint64_t exp = 0;
	cr_expect_eq(authq_cache_put(c, NULL, "app", "alice", AUTHQ_FOUND, "s1", 700), 0);
	cr_expect_eq(authq_cache_put(c, NULL, "other", "alice", AUTHQ_FOUND, "s2", 800), 0);
	cr_assert_eq(authq_cache_get(c, NULL, "app", "alice", 1, &st, &sec, &exp), 0);
	cr_expect_str_eq(sec, "s1");
	cr_expect_eq(exp, 700);
	cr_assert_eq(authq_cache_get(c, NULL, "other", "alice", 1, &st, &sec, &exp), 0);
	cr_expect_str_eq(sec, "s2");
	cr_expect_eq(exp, 800);
	cr_expect_eq(authq_cache_get(c, NULL, NULL, "alice", 1, &st, &sec, NULL), -1, "no database: another key");
	cr_expect_eq(authq_cache_get(c, NULL, "ap", "alice", 1, &st, &sec, NULL), -1);
	/* the split between database and user is part of the key */
	cr_expect_eq(authq_cache_get(c, NULL, "appa", "lice", 1, &st, &sec, NULL), -1);
	cr_expect_eq(authq_cache_get(c, NULL, "app", "alice", 700, &st, &sec, NULL), -1, "expired");
	authq_cache_free(c);
}

Test(authq_cache, put_replaces)
{
	struct authq_cache *c = authq_cache_new();
	enum authq_status st;
	const char *sec;
	cr_expect_eq(authq_cache_put(c, &t1, NULL, "alice", AUTHQ_FOUND, "old", 100), 0);
	cr_expect_eq(authq_cache_put(c, &t1, NULL, "alice", AUTHQ_FOUND, "new", 100), 0);
	cr_expect_eq(authq_cache_count(c), 1);
	cr_assert_eq(authq_cache_get(c, &t1, NULL, "alice", 1, &st, &sec, NULL), 0);
	cr_expect_str_eq(sec, "new");
	cr_expect_eq(authq_cache_put(c, &t1, NULL, "alice", AUTHQ_NONE, NULL, 100), 0);
	cr_assert_eq(authq_cache_get(c, &t1, NULL, "alice", 1, &st, &sec, NULL), 0);
	cr_expect_eq(st, AUTHQ_NONE);
	authq_cache_free(c);
}

Test(authq_cache, bounded)
{
	struct authq_cache *c = authq_cache_new();
	char name[32];
	for (int i = 0; i < AUTHQ_CACHE_MAX; i++) {
		snprintf(name, sizeof name, "user%d", i);
		cr_assert_eq(authq_cache_put(c, &t1, NULL, name, AUTHQ_FOUND, "s", 100), 0);
	}
	cr_expect_eq(authq_cache_count(c), AUTHQ_CACHE_MAX);
	cr_expect_eq(authq_cache_put(c, &t1, NULL, "one-too-many", AUTHQ_FOUND, "s", 100), -1, "full: not cached");
	cr_expect_eq(authq_cache_count(c), AUTHQ_CACHE_MAX);
	/* replacing an entry is no growth */
	cr_expect_eq(authq_cache_put(c, &t1, NULL, "user7", AUTHQ_FOUND, "t", 100), 0);
	authq_cache_free(c);
}

Test(authq_req, carries_its_names)
{
	struct authq_req *r = authq_req_new(3, 77, "app", "x'; DROP TABLE t; --");
	cr_assert(r);
	cr_expect_eq(r->shard, 3);
	cr_expect_eq(r->reply, 77);
	cr_expect_str_eq(r->db, "app");
	cr_expect_str_eq(r->user, "x'; DROP TABLE t; --");
	cr_expect_null(r->secret);
	r->secret = strdup("md5x");
	authq_req_free(r);
	authq_req_free(NULL);
}
