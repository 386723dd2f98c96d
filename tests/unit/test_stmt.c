/* tests/unit/test_stmt.c: pool/stmt.c, protocol-level prepared statements: the
 * shard's registry of statement records (one per distinct Parse body, named
 * "pgring_" + 32 hex digits of its digest), a client's name table (open
 * addressing, backward-shift deletion) and a server's prepared set (LRU by use
 * clock). The tables are checked against plain reference arrays through long
 * random sequences of inserts and deletes, with names and digests chosen to
 * collide. */
#include <criterion/criterion.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/stmt.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* A Parse body: query, NUL, parameter count, parameter type oids. */
static uint32_t body(uint8_t *out, const char *query, int ntypes, const uint32_t *types)
{
	uint32_t k = (uint32_t)strlen(query) + 1;
	memcpy(out, query, k);
	out[k++] = (uint8_t)(ntypes >> 8);
	out[k++] = (uint8_t)ntypes;
	for (int i = 0; i < ntypes; i++) {
		out[k++] = (uint8_t)(types[i] >> 24);
		out[k++] = (uint8_t)(types[i] >> 16);
		out[k++] = (uint8_t)(types[i] >> 8);
		out[k++] = (uint8_t)types[i];
	}
	return k;
}

static void check_sname(const struct pstmt *st)
{
	cr_assert_eq(strlen(st->sname), 7 + 2 * STMT_DIGEST_LEN);
	cr_assert(strncmp(st->sname, "pgring_", 7) == 0);
	for (int i = 7; st->sname[i]; i++)
		cr_assert(isdigit((unsigned char)st->sname[i]) || (st->sname[i] >= 'a' && st->sname[i] <= 'f'),
			  "%s", st->sname);
	char want[STMT_SNAME_LEN];
	stmt_sname(st->digest, want);
	cr_assert_str_eq(st->sname, want);
}

/* ---- server-side names ---- */

TestSuite(stmt_registry);

Test(stmt_registry, sname_format)
{
	uint8_t d[STMT_DIGEST_LEN];
	for (int i = 0; i < STMT_DIGEST_LEN; i++)
		d[i] = (uint8_t)(i * 17);
	char out[STMT_SNAME_LEN];
	memset(out, '#', sizeof out);
	stmt_sname(d, out);
	cr_assert_str_eq(out, "pgring_00112233445566778899aabbccddeeff");
	cr_assert_eq(strlen(out) + 1, STMT_SNAME_LEN);
	memset(d, 0xff, sizeof d);
	stmt_sname(d, out);
	cr_assert_str_eq(out, "pgring_ffffffffffffffffffffffffffffffff");
	memset(d, 0, sizeof d);
	d[15] = 0x0a;
	stmt_sname(d, out);
	cr_assert_str_eq(out, "pgring_0000000000000000000000000000000a");
}

Test(stmt_registry, intern_same_and_different)
{
	struct stmt_registry *reg = NULL;
	uint8_t b1[256], b2[256], b3[256], b4[256];
	uint32_t int4 = 23, text = 25;
	uint32_t n1 = body(b1, "SELECT $1", 1, &int4);
	uint32_t n2 = body(b2, "SELECT $1", 1, &int4);
	uint32_t n3 = body(b3, "SELECT $1", 1, &text);     /* same query, other type */
	uint32_t n4 = body(b4, "SELECT $1", 0, NULL);      /* type left to the server */
	cr_assert_eq(stmt_registry_count(reg), 0);
	struct pstmt *a = stmt_intern(&reg, b1, n1);
	cr_assert_not_null(a);
	cr_assert_not_null(reg, "the registry is created on first use");
	cr_assert_eq(a->refs, 1);
	cr_assert_eq(a->body_len, n1);
	cr_assert(memcmp(a->body, b1, n1) == 0);
	cr_assert_null(a->fx);
	check_sname(a);
	struct pstmt *b = stmt_intern(&reg, b2, n2);
	cr_assert_eq(b, a, "the same body is the same record");
	cr_assert_eq(a->refs, 2);
	cr_assert_eq(stmt_registry_count(reg), 1);
	struct pstmt *c = stmt_intern(&reg, b3, n3);
	struct pstmt *d = stmt_intern(&reg, b4, n4);
	cr_assert(c != a && d != a && c != d);
	cr_assert(memcmp(c->digest, a->digest, STMT_DIGEST_LEN) != 0);
	cr_assert(memcmp(d->digest, a->digest, STMT_DIGEST_LEN) != 0);
	cr_assert_str_neq(c->sname, a->sname);
	cr_assert_eq(stmt_registry_count(reg), 3);

	/* another shard names the same statement the same */
	struct stmt_registry *other = NULL;
	struct pstmt *o = stmt_intern(&other, b1, n1);
	cr_assert_not_null(o);
	cr_assert_neq(o, a);
	cr_assert(memcmp(o->digest, a->digest, STMT_DIGEST_LEN) == 0);
	cr_assert_str_eq(o->sname, a->sname);
	stmt_unref(other, o);
	cr_assert_eq(stmt_registry_count(other), 0);
	stmt_registry_free(other);

	/* references */
	stmt_unref(reg, a);
	cr_assert_eq(stmt_registry_count(reg), 3);
	cr_assert_eq(a->refs, 1);
	stmt_unref(reg, a);
	cr_assert_eq(stmt_registry_count(reg), 2);
	stmt_unref(reg, NULL);   /* allowed */
	cr_assert_eq(stmt_registry_count(reg), 2);
	struct pstmt *again = stmt_intern(&reg, b1, n1);
	cr_assert_eq(again->refs, 1, "a freed record is made anew");
	cr_assert_eq(stmt_registry_count(reg), 3);
	/* records still referenced are freed with the registry */
	stmt_registry_free(reg);
	stmt_registry_free(NULL);
	cr_assert_eq(stmt_registry_count(NULL), 0);
}

Test(stmt_registry, effects)
{
	struct stmt_registry *reg = NULL;
	uint8_t b[256];
	uint32_t n = body(b, "SET search_path = 'My Schema', x", 0, NULL);
	struct pstmt *st = stmt_intern(&reg, b, n);
	cr_assert_not_null(st);
	cr_assert_not_null(st->fx);
	cr_assert_eq(st->fx->kind, SQL_SET);
	cr_assert_str_eq(st->fx->name, "search_path");
	cr_assert_str_eq(st->fx->value, "\"My Schema\", x");
	cr_assert_null(st->fx->text, "no pointer into the caller's buffer is kept");
	cr_assert_eq(st->fx->text_len, 0);
	memset(b, 0, sizeof b);   /* the caller's buffer goes away */
	cr_assert_str_eq(st->fx->value, "\"My Schema\", x");

	n = body(b, "SELECT pg_advisory_lock($1)", 0, NULL);
	struct pstmt *lk = stmt_intern(&reg, b, n);
	cr_assert_not_null(lk->fx);
	cr_assert_eq(lk->fx->flags, SQL_F_ADVISORY_LOCK);

	n = body(b, "LISTEN ch", 0, NULL);
	struct pstmt *li = stmt_intern(&reg, b, n);
	cr_assert_not_null(li->fx);
	cr_assert_eq(li->fx->kind, SQL_LISTEN);
	cr_assert_str_eq(li->fx->name, "ch");

	/* the parameter types after the query are not SQL */
	uint32_t types[2] = { 0x3b3b3b3b, 0x27272727 };   /* ";;;;" and "''''" */
	n = body(b, "SELECT $1, $2", 2, types);
	struct pstmt *sel = stmt_intern(&reg, b, n);
	cr_assert_null(sel->fx);

	stmt_unref(reg, st);
	stmt_unref(reg, lk);
	stmt_unref(reg, li);
	stmt_unref(reg, sel);
	cr_assert_eq(stmt_registry_count(reg), 0);
	stmt_registry_free(reg);
}

Test(stmt_registry, many)
{
	/* more records than buckets: chains, and unref in random order */
	enum { N = 10000 };
	struct stmt_registry *reg = NULL;
	struct pstmt **st = calloc(N, sizeof *st);
	uint32_t *refs = calloc(N, sizeof *refs);
	cr_assert(st && refs);
	uint8_t b[128];
	for (int i = 0; i < N; i++) {
		char q[64];
		snprintf(q, sizeof q, "SELECT %d", i);
		uint32_t n = body(b, q, 0, NULL);
		st[i] = stmt_intern(&reg, b, n);
		cr_assert_not_null(st[i]);
		refs[i] = 1;
		if (i % 3 == 0) {
			cr_assert_eq(stmt_intern(&reg, b, n), st[i]);
			refs[i]++;
		}
	}
	cr_assert_eq(stmt_registry_count(reg), N);
	for (int i = 0; i < N; i++)
		for (int j = 0; j < 4 && i + j + 1 < N; j++)
			cr_assert_str_neq(st[i]->sname, st[i + j + 1]->sname);
	uint32_t live = N;
	for (int iter = 0; iter < 3 * N && live; iter++) {
		int i = (int)(rnd() % N);
		if (!refs[i])
			continue;
		cr_assert_eq(st[i]->refs, refs[i]);
		stmt_unref(reg, st[i]);
		if (--refs[i] == 0)
			live--;
		cr_assert_eq(stmt_registry_count(reg), live);
	}
	/* the survivors are still found */
	for (int i = 0; i < N; i++) {
		if (!refs[i])
			continue;
		char q[64];
		snprintf(q, sizeof q, "SELECT %d", i);
		uint32_t n = body(b, q, 0, NULL);
		cr_assert_eq(stmt_intern(&reg, b, n), st[i]);
		stmt_unref(reg, st[i]);
	}
	cr_assert_eq(stmt_registry_count(reg), live);
	stmt_registry_free(reg);
	free(st);
	free(refs);
}

/* ---- a client's names ---- */

TestSuite(stmt_map);

/* The table's hash, to pick names that collide (FNV-1a, as stmt.c has it; if it
 * changes the names merely collide less). */
static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static void check_map_shape(const struct stmt_map *m)
{
	cr_assert(m->cap == 0 || (m->cap & (m->cap - 1)) == 0, "cap %u", m->cap);
	cr_assert(m->n * 2 <= m->cap || m->cap == 0, "n %u cap %u", m->n, m->cap);
	uint32_t used = 0;
	for (uint32_t i = 0; i < m->cap; i++)
		used += m->slot[i].name != NULL;
	cr_assert_eq(used, m->n);
}

Test(stmt_map, empty)
{
	struct stmt_map m = { 0 };
	cr_assert_null(stmt_map_get(&m, "a"));
	cr_assert_null(stmt_map_take(&m, "a"));
	stmt_map_clear(&m, NULL);
	cr_assert_eq(m.cap, 0);
	cr_assert_null(m.slot);
}

Test(stmt_map, basic)
{
	struct stmt_map m = { 0 };
	struct pstmt x, y;
	char name[8] = "s1";
	cr_assert(stmt_map_put(&m, name, &x));
	name[1] = '9';   /* the table keeps its own copy */
	cr_assert(stmt_map_put(&m, "", &y));   /* the unnamed statement is a name too */
	cr_assert_eq(m.n, 2);
	cr_assert_eq(stmt_map_get(&m, "s1"), &x);
	cr_assert_null(stmt_map_get(&m, "s9"));
	cr_assert_null(stmt_map_get(&m, "S1"), "names are case-sensitive");
	cr_assert_eq(stmt_map_get(&m, ""), &y);
	cr_assert_eq(stmt_map_take(&m, "s1"), &x);
	cr_assert_null(stmt_map_get(&m, "s1"));
	cr_assert_null(stmt_map_take(&m, "s1"));
	cr_assert_eq(m.n, 1);
	cr_assert_eq(stmt_map_take(&m, ""), &y);
	cr_assert_eq(m.n, 0);
	check_map_shape(&m);
	stmt_map_clear(&m, NULL);
}

#define REF_MAX 4096
struct ref_map {
	int n;
	char name[REF_MAX][24];
	struct pstmt *st[REF_MAX];
};

static int ref_find(const struct ref_map *r, const char *name)
{
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->name[i], name) == 0)
			return i;
	return -1;
}

static void check_map(const struct stmt_map *m, const struct ref_map *r, char (*pool)[24], int npool)
{
	cr_assert_eq(m->n, (uint32_t)r->n);
	check_map_shape(m);
	for (int i = 0; i < npool; i++) {
		int k = ref_find(r, pool[i]);
		struct pstmt *got = stmt_map_get(m, pool[i]);
		if (k < 0)
			cr_assert_null(got, "%s is absent", pool[i]);
		else
			cr_assert_eq(got, r->st[k], "%s", pool[i]);
	}
}

static void map_random(char (*pool)[24], int npool, int iters)
{
	static struct ref_map r;
	static struct pstmt recs[64];
	memset(&r, 0, sizeof r);
	struct stmt_map m = { 0 };
	uint32_t maxcap = 0;
	for (int it = 0; it < iters; it++) {
		const char *name = pool[rnd() % (uint64_t)npool];
		int k = ref_find(&r, name);
		int op = (int)(rnd() % 8);
		/* grow for the first half, shrink for the second, mixed throughout */
		bool insert = it < iters / 2 ? op < 5 : op < 3;
		if (insert && k < 0) {
			struct pstmt *st = &recs[rnd() % 64];
			cr_assert(stmt_map_put(&m, name, st));
			snprintf(r.name[r.n], sizeof r.name[0], "%s", name);
			r.st[r.n++] = st;
		} else if (!insert) {
			struct pstmt *got = stmt_map_take(&m, name);
			if (k < 0) {
				cr_assert_null(got, "take %s: absent", name);
			} else {
				cr_assert_eq(got, r.st[k], "take %s", name);
				r.n--;
				memcpy(r.name[k], r.name[r.n], sizeof r.name[0]);
				r.st[k] = r.st[r.n];
			}
		} else {
			cr_assert_eq(stmt_map_get(&m, name), r.st[k]);
		}
		if (m.cap > maxcap)
			maxcap = m.cap;
		if (it % 64 == 0 || npool < 100)
			check_map(&m, &r, pool, npool);
	}
	check_map(&m, &r, pool, npool);
	cr_assert(maxcap >= 16, "the table grew (cap %u)", maxcap);
	/* take everything in random order */
	while (r.n) {
		int k = (int)(rnd() % (uint64_t)r.n);
		cr_assert_eq(stmt_map_take(&m, r.name[k]), r.st[k]);
		r.n--;
		memcpy(r.name[k], r.name[r.n], sizeof r.name[0]);
		r.st[k] = r.st[r.n];
		if (r.n % 16 == 0)
			check_map(&m, &r, pool, npool);
	}
	check_map(&m, &r, pool, npool);
	stmt_map_clear(&m, NULL);
}

Test(stmt_map, random_against_reference)
{
	static char pool[1000][24];
	for (int i = 0; i < 1000; i++)
		snprintf(pool[i], sizeof pool[i], "stmt_%d", i);
	map_random(pool, 1000, 60000);
}

Test(stmt_map, colliding_names)
{
	/* names that share their home slot in every table up to 1024 slots, and
	 * some whose homes are neighbours: long clusters that wrap around */
	static char pool[96][24];
	int n = 0;
	uint64_t want = fnv("c0") & 1023;
	for (int i = 0; n < 48 && i < 5000000; i++) {
		char name[24];
		snprintf(name, sizeof name, "c%d", i);
		if ((fnv(name) & 1023) == want)
			memcpy(pool[n++], name, sizeof name);
	}
	cr_assert_eq(n, 48, "found %d colliding names", n);
	for (int i = 0; n < 96 && i < 5000000; i++) {
		char name[24];
		snprintf(name, sizeof name, "d%d", i);
		uint64_t h = fnv(name) & 1023;
		if (h == ((want + 1) & 1023) || h == ((want + 2) & 1023) || h == 1023 || h == 0)
			memcpy(pool[n++], name, sizeof name);
	}
	cr_assert_eq(n, 96);
	map_random(pool, 96, 20000);
	map_random(pool, 48, 20000);
}

Test(stmt_map, clear_unrefs)
{
	struct stmt_registry *reg = NULL;
	struct stmt_map a = { 0 }, b = { 0 };
	uint8_t buf[64];
	struct pstmt *st[100];
	for (int i = 0; i < 100; i++) {
		char q[32], name[16];
		snprintf(q, sizeof q, "SELECT %d", i % 50);   /* two names per record */
		uint32_t n = body(buf, q, 0, NULL);
		st[i] = stmt_intern(&reg, buf, n);
		snprintf(name, sizeof name, "n%d", i);
		cr_assert(stmt_map_put(i < 50 ? &a : &b, name, st[i]));
	}
	cr_assert_eq(stmt_registry_count(reg), 50);
	cr_assert_eq(st[0]->refs, 2);
	stmt_map_clear(&a, reg);
	cr_assert_eq(a.n, 0);
	cr_assert_eq(a.cap, 0);
	cr_assert_null(a.slot);
	cr_assert_null(stmt_map_get(&a, "n1"));
	cr_assert_eq(stmt_map_get(&b, "n51"), st[1]);
	cr_assert_eq(stmt_registry_count(reg), 50);   /* b still holds one of each... */
	for (int i = 0; i < 50; i++)
		cr_assert_eq(st[i]->refs, 1);
	cr_assert_eq(stmt_map_get(&b, "n50"), st[0]);
	stmt_map_clear(&b, reg);
	cr_assert_eq(stmt_registry_count(reg), 0);
	/* a cleared map is usable again */
	cr_assert(stmt_map_put(&a, "x", NULL));
	cr_assert_eq(a.n, 1);
	stmt_map_clear(&a, reg);
	stmt_registry_free(reg);
}

/* ---- a server's prepared set ---- */

TestSuite(stmt_cache);

static void mkdigest(uint8_t *d, uint32_t id, bool collide)
{
	memset(d, 0, STMT_DIGEST_LEN);
	if (collide) {
		/* the table hashes the first 8 bytes: even ids all have home slot 0,
		 * odd ones the last slot (low 16 bits set), so the cluster wraps */
		d[0] = d[1] = (uint8_t)(id & 1 ? 0xff : 0);
		memcpy(d + 8, &id, sizeof id);
	} else {
		uint64_t h = (id + 1) * 0x9e3779b97f4a7c15ull;
		memcpy(d, &h, sizeof h);
		memcpy(d + 8, &id, sizeof id);
	}
}

Test(stmt_cache, lru)
{
	struct stmt_cache c = { 0 };
	uint8_t d[5][STMT_DIGEST_LEN], v[STMT_DIGEST_LEN];
	for (int i = 0; i < 5; i++)
		mkdigest(d[i], (uint32_t)i, false);
	cr_assert_not(stmt_cache_has(&c, d[0]));
	cr_assert_not(stmt_cache_victim(&c, UINT64_MAX, v));
	stmt_cache_remove(&c, d[0]);   /* absent: nothing */
	for (int i = 0; i < 5; i++)
		cr_assert(stmt_cache_add(&c, d[i], 0));
	cr_assert_eq(c.n, 5);
	uint64_t after_add = c.clock;
	/* use 0 and 2 again: 1 is now the least recently used */
	cr_assert(stmt_cache_has(&c, d[0]));
	cr_assert(stmt_cache_has(&c, d[2]));
	cr_assert(stmt_cache_victim(&c, UINT64_MAX, v));
	cr_assert(memcmp(v, d[1], STMT_DIGEST_LEN) == 0);
	/* adding a digest it has is a use, not a second entry */
	cr_assert(stmt_cache_add(&c, d[1], 0));
	cr_assert_eq(c.n, 5);
	cr_assert(stmt_cache_victim(&c, UINT64_MAX, v));
	cr_assert(memcmp(v, d[3], STMT_DIGEST_LEN) == 0);
	/* since: only entries not used after that clock value qualify */
	uint64_t now = c.clock;
	for (int i = 0; i < 5; i++)
		cr_assert(stmt_cache_has(&c, d[i]));
	cr_assert_not(stmt_cache_victim(&c, now, v), "everything used since");
	cr_assert(stmt_cache_victim(&c, now + 1, v));
	cr_assert(memcmp(v, d[0], STMT_DIGEST_LEN) == 0, "use <= since qualifies");
	cr_assert_not(stmt_cache_victim(&c, 0, v));
	cr_assert(after_add < now);
	/* remove */
	stmt_cache_remove(&c, d[0]);
	cr_assert_eq(c.n, 4);
	cr_assert_not(stmt_cache_has(&c, d[0]));
	cr_assert(stmt_cache_victim(&c, UINT64_MAX, v));
	cr_assert(memcmp(v, d[1], STMT_DIGEST_LEN) == 0);
	/* clear */
	stmt_cache_clear(&c);
	cr_assert_eq(c.n, 0);
	for (int i = 0; i < 5; i++)
		cr_assert_not(stmt_cache_has(&c, d[i]));
	cr_assert_not(stmt_cache_victim(&c, UINT64_MAX, v));
	cr_assert(stmt_cache_add(&c, d[4], 0));
	cr_assert(stmt_cache_has(&c, d[4]));
	cr_assert_eq(c.n, 1);
	stmt_cache_free(&c);
	cr_assert_eq(c.n, 0);
	cr_assert_eq(c.cap, 0);
	cr_assert_null(c.slot);
	stmt_cache_clear(&c);   /* on an empty cache */
	stmt_cache_free(&c);
}

#define CREF_MAX 2048
struct ref_cache {
	int n;
	uint32_t id[CREF_MAX];
	uint64_t used[CREF_MAX];
	uint64_t clock;
};

static int cref_find(const struct ref_cache *r, uint32_t id)
{
	for (int i = 0; i < r->n; i++)
		if (r->id[i] == id)
			return i;
	return -1;
}

static void check_cache(struct stmt_cache *c, const struct ref_cache *r, uint32_t nids, bool collide)
{
	cr_assert_eq(c->n, (uint32_t)r->n);
	cr_assert_eq(c->clock, r->clock, "has/add advance the clock once per use");
	cr_assert(c->cap == 0 || (c->cap & (c->cap - 1)) == 0);
	cr_assert(c->n * 2 <= c->cap || c->cap == 0);
	/* membership without touching the clock: victim over everything, and the
	 * slots themselves */
	uint32_t live = 0;
	for (uint32_t i = 0; i < c->cap; i++)
		live += c->slot[i].used != 0;
	cr_assert_eq(live, c->n);
	for (uint32_t id = 0; id < nids; id++) {
		uint8_t d[STMT_DIGEST_LEN];
		mkdigest(d, id, collide);
		int k = cref_find(r, id);
		bool found = false;
		for (uint32_t i = 0; i < c->cap && !found; i++)
			found = c->slot[i].used && memcmp(c->slot[i].digest, d, STMT_DIGEST_LEN) == 0;
		cr_assert_eq(found, k >= 0, "digest %u", id);
	}
	/* victims for a few horizons */
	for (int t = 0; t < 4; t++) {
		uint64_t since = t == 0 ? UINT64_MAX : rnd() % (r->clock + 2);
		int best = -1;
		for (int i = 0; i < r->n; i++)
			if (r->used[i] <= since && (best < 0 || r->used[i] < r->used[best]))
				best = i;
		uint8_t v[STMT_DIGEST_LEN], want[STMT_DIGEST_LEN];
		bool got = stmt_cache_victim(c, since, v);
		cr_assert_eq(got, best >= 0, "victim since %llu", (unsigned long long)since);
		if (best >= 0) {
			mkdigest(want, r->id[best], collide);
			cr_assert(memcmp(v, want, STMT_DIGEST_LEN) == 0, "victim since %llu: want %u",
				  (unsigned long long)since, r->id[best]);
		}
	}
}

static void cache_random(uint32_t nids, int iters, bool collide)
{
	static struct ref_cache r;
	memset(&r, 0, sizeof r);
	struct stmt_cache c = { 0 };
	for (int it = 0; it < iters; it++) {
		uint32_t id = (uint32_t)(rnd() % nids);
		uint8_t d[STMT_DIGEST_LEN];
		mkdigest(d, id, collide);
		int k = cref_find(&r, id);
		int op = (int)(rnd() % 10);
		bool grow = it < iters / 2;
		if (op < (grow ? 5 : 3)) {
			cr_assert(stmt_cache_add(&c, d, 0));
			r.clock++;
			if (k < 0) {
				r.id[r.n] = id;
				r.used[r.n++] = r.clock;
			} else {
				r.used[k] = r.clock;
			}
		} else if (op < 7) {
			stmt_cache_remove(&c, d);
			if (k >= 0) {
				r.n--;
				r.id[k] = r.id[r.n];
				r.used[k] = r.used[r.n];
			}
		} else if (op < 9) {
			bool has = stmt_cache_has(&c, d);
			cr_assert_eq(has, k >= 0, "has %u", id);
			if (k >= 0)
				r.used[k] = ++r.clock;
		} else {
			/* evict the least recently used, as the server does */
			uint8_t v[STMT_DIGEST_LEN];
			if (stmt_cache_victim(&c, UINT64_MAX, v)) {
				int best = 0;
				for (int i = 1; i < r.n; i++)
					if (r.used[i] < r.used[best])
						best = i;
				cr_assert(r.n > 0);
				uint8_t want[STMT_DIGEST_LEN];
				mkdigest(want, r.id[best], collide);
				cr_assert(memcmp(v, want, STMT_DIGEST_LEN) == 0);
				stmt_cache_remove(&c, v);
				r.n--;
				r.id[best] = r.id[r.n];
				r.used[best] = r.used[r.n];
			} else {
				cr_assert_eq(r.n, 0);
			}
		}
		if (it % 97 == 0 || nids <= 64)
			check_cache(&c, &r, nids, collide);
	}
	check_cache(&c, &r, nids, collide);
	cr_assert(c.cap >= 32 || nids < 16, "the table grew (cap %u)", c.cap);
	stmt_cache_clear(&c);
	r.n = 0;
	check_cache(&c, &r, nids, collide);
	stmt_cache_free(&c);
}

Test(stmt_cache, random_against_reference)
{
	cache_random(1500, 40000, false);
}

Test(stmt_cache, colliding_digests)
{
	cache_random(64, 20000, true);
	cache_random(300, 20000, true);
}

/* ---- stale plans ---- */

static const uint8_t stale_err[] = "E\0\0\0\x2f" "SERROR\0C0A000\0Mcached plan must not change result type\0";

Test(stmt_stale, kinds)
{
	cr_assert_eq(stmt_stale_kind("0A000"), STMT_STALE_FIXED);
	cr_assert_eq(stmt_stale_kind("42804"), STMT_STALE_FIXED);
	cr_assert_eq(stmt_stale_kind("22P02"), STMT_STALE_MAYBE);
	cr_assert_eq(stmt_stale_kind("42P01"), STMT_STALE_NO);   /* a missing table: PostgreSQL re-analyses by name */
	cr_assert_eq(stmt_stale_kind("23505"), STMT_STALE_NO);
	cr_assert_eq(stmt_stale_kind(""), STMT_STALE_NO);
}

/* The first error from a current copy starts a generation: every copy stamped
 * before it is stale, names bound before it fail with the error, a name bound
 * after it does not; a second error from an old copy teaches nothing. */
Test(stmt_stale, generation)
{
	struct stmt_registry *reg = NULL;
	uint8_t b[128];
	uint32_t n = body(b, "SELECT x FROM t", 0, NULL);
	struct pstmt *st = stmt_intern(&reg, b, n);
	struct stmt_cache x = { 0 }, y = { 0 };
	cr_assert(stmt_cache_add(&x, st->digest, stmt_gen_now()));
	cr_assert(stmt_cache_add(&y, st->digest, stmt_gen_now()));
	cr_assert_eq(stmt_cache_copy(&x, st), STMT_COPY_CURRENT);
	struct stmt_map m = { 0 };
	cr_assert(stmt_map_put(&m, "before", st));
	cr_assert_not(stmt_entry_stale(stmt_map_entry(&m, "before")));
	/* not a stale-plan error: nothing */
	cr_assert_not(stmt_mark_stale(reg, st, &x, STMT_STALE_NO, stale_err, sizeof stale_err - 1));
	cr_assert(stmt_mark_stale(reg, st, &x, STMT_STALE_FIXED, stale_err, sizeof stale_err - 1));
	cr_assert_eq(stmt_cache_copy(&x, st), STMT_COPY_STALE);
	cr_assert_eq(stmt_cache_copy(&y, st), STMT_COPY_STALE);
	cr_assert(stmt_entry_stale(stmt_map_entry(&m, "before")));
	cr_assert_eq(st->err_len, sizeof stale_err - 1);
	cr_assert(memcmp(st->err, stale_err, st->err_len) == 0);
	/* y's old copy fails too: already known */
	uint32_t gen = st->gen;
	cr_assert_not(stmt_mark_stale(reg, st, &y, STMT_STALE_FIXED, stale_err, sizeof stale_err - 1));
	cr_assert_eq(st->gen, gen);
	/* prepared again: current; a name bound now works */
	cr_assert(stmt_cache_add(&x, st->digest, stmt_gen_now()));
	cr_assert_eq(stmt_cache_copy(&x, st), STMT_COPY_CURRENT);
	cr_assert_eq(stmt_intern(&reg, b, n), st);
	cr_assert(stmt_map_put(&m, "after", st));
	cr_assert_not(stmt_entry_stale(stmt_map_entry(&m, "after")));
	cr_assert(stmt_entry_stale(stmt_map_entry(&m, "before")));
	/* a copy of unknown age is never current */
	cr_assert(stmt_cache_add(&y, st->digest, STMT_GEN_UNKNOWN));
	cr_assert_eq(stmt_cache_copy(&y, st), STMT_COPY_STALE);
	cr_assert_not(stmt_mark_stale(reg, st, &y, STMT_STALE_FIXED, stale_err, sizeof stale_err - 1));
	stmt_map_clear(&m, reg);
	stmt_cache_free(&x);
	stmt_cache_free(&y);
	cr_assert_eq(stmt_registry_count(reg), 0);
	stmt_registry_free(reg);
}

/* Two shards, each with its own record: a copy that moved with its server is
 * judged by its stamp, not by which shard prepared it. */
Test(stmt_stale, copies_move_between_shards)
{
	struct stmt_registry *r0 = NULL, *r1 = NULL;
	uint8_t b[128];
	uint32_t n = body(b, "SELECT y FROM u", 0, NULL);
	struct pstmt *s0 = stmt_intern(&r0, b, n), *s1 = stmt_intern(&r1, b, n);
	struct stmt_cache x = { 0 };
	/* prepared by shard 0 before anything was learned: current for both */
	cr_assert(stmt_cache_add(&x, s0->digest, stmt_gen_now()));
	cr_assert_eq(stmt_cache_copy(&x, s0), STMT_COPY_CURRENT);
	cr_assert_eq(stmt_cache_copy(&x, s1), STMT_COPY_CURRENT);
	/* shard 0 learns: the copy is old for shard 0 only; shard 1 uses it, and
	 * learns from its own error */
	cr_assert(stmt_mark_stale(r0, s0, &x, STMT_STALE_FIXED, stale_err, sizeof stale_err - 1));
	cr_assert_eq(stmt_cache_copy(&x, s0), STMT_COPY_STALE);
	cr_assert_eq(stmt_cache_copy(&x, s1), STMT_COPY_CURRENT);
	cr_assert(stmt_mark_stale(r1, s1, &x, STMT_STALE_FIXED, stale_err, sizeof stale_err - 1));
	cr_assert_eq(stmt_cache_copy(&x, s1), STMT_COPY_STALE);
	/* shard 0 prepares it again: current for shard 1 too, which learned before */
	cr_assert(stmt_cache_add(&x, s0->digest, stmt_gen_now()));
	cr_assert_eq(stmt_cache_copy(&x, s0), STMT_COPY_CURRENT);
	cr_assert_eq(stmt_cache_copy(&x, s1), STMT_COPY_CURRENT);
	/* a record made (again) in a shard that learned since: older copies are stale */
	struct pstmt *fresh_unrelated = stmt_intern(&r0, (const uint8_t *)"SELECT 1\0\0", 11);
	struct stmt_cache y = { 0 };
	cr_assert(stmt_cache_add(&y, fresh_unrelated->digest, stmt_gen_now()));
	cr_assert(stmt_mark_stale(r0, fresh_unrelated, &y, STMT_STALE_FIXED, stale_err, sizeof stale_err - 1));
	stmt_unref(r0, s0);
	s0 = stmt_intern(&r0, b, n);
	cr_assert_eq(stmt_cache_copy(&x, s0), STMT_COPY_STALE);
	stmt_unref(r0, s0);
	stmt_unref(r0, fresh_unrelated);
	stmt_unref(r1, s1);
	stmt_cache_free(&x);
	stmt_cache_free(&y);
	stmt_registry_free(r0);
	stmt_registry_free(r1);
}

/* A class 22 error only makes the statement suspect: names go on; the next
 * Parse of it starts a generation, for a fresh copy. */
Test(stmt_stale, suspect)
{
	struct stmt_registry *reg = NULL;
	uint8_t b[128];
	uint32_t types[1] = { 1007 };
	uint32_t n = body(b, "INSERT INTO v VALUES ($1)", 1, types);
	struct pstmt *st = stmt_intern(&reg, b, n);
	struct stmt_cache x = { 0 };
	cr_assert(stmt_cache_add(&x, st->digest, stmt_gen_now()));
	struct stmt_map m = { 0 };
	cr_assert(stmt_map_put(&m, "a", st));
	cr_assert(stmt_mark_stale(reg, st, &x, STMT_STALE_MAYBE, stale_err, sizeof stale_err - 1));
	cr_assert_eq(stmt_cache_copy(&x, st), STMT_COPY_CURRENT);
	cr_assert_not(stmt_entry_stale(stmt_map_entry(&m, "a")));
	cr_assert_eq(stmt_intern(&reg, b, n), st);
	cr_assert_eq(stmt_cache_copy(&x, st), STMT_COPY_STALE);
	cr_assert_not(stmt_entry_stale(stmt_map_entry(&m, "a")));
	stmt_unref(reg, st);
	stmt_map_clear(&m, reg);
	stmt_cache_free(&x);
	stmt_registry_free(reg);
}

/* The unnamed statement's body is kept, its room reused and given back. */
Test(stmt_map, unnamed_body)
{
	struct stmt_map m = { 0 };
	cr_assert_not(m.unnamed);
	cr_assert(stmt_map_set_unnamed(&m, (const uint8_t *)"SELECT 1\0\0", 11));
	cr_assert(m.unnamed);
	cr_assert_eq(m.unnamed_len, 11);
	cr_assert(memcmp(m.unnamed_body, "SELECT 1\0\0", 11) == 0);
	static uint8_t big[100000];
	memset(big, 'x', sizeof big);
	cr_assert(stmt_map_set_unnamed(&m, big, sizeof big));
	cr_assert_geq(m.unnamed_cap, sizeof big);
	cr_assert(stmt_map_set_unnamed(&m, (const uint8_t *)"", 0));
	cr_assert(m.unnamed);
	cr_assert_lt(m.unnamed_cap, 1024);   /* the big room went back */
	stmt_map_drop_unnamed(&m);
	cr_assert_not(m.unnamed);
	stmt_map_clear(&m, NULL);
}
