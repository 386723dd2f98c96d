/* pool/stmt.c: the shard's statement records, clients' name tables and servers'
 * prepared sets. Tables are open-addressed with linear probing and
 * backward-shift deletion; they change only on Parse, Close and eviction, never
 * per Bind, so the data path only looks things up. Generations (stmt.h) change
 * only on a stale-plan error. */
#include "pool/stmt.h"

#include <stdatomic.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REG_BUCKETS 4096

struct stmt_registry {
	uint32_t count;
	uint32_t gen;                  /* the last generation given here (0: none yet) */
	struct pstmt *bucket[REG_BUCKETS];
};

/* One clock for the whole process: a copy is stamped with it when prepared,
 * a record's generation is a tick of it, so "prepared before the shard learned
 * the statement was stale" reads the same whichever shard prepared the copy
 * (servers move between shards with their copies). A copy prepared on another
 * shard after this one learned is current here, and one prepared elsewhere
 * before is stale; a shard that learned nothing trusts every copy, so an old
 * one fails where it is used and the shard learns from it, instead of being
 * closed unseen. Starts at 1: 0 is STMT_GEN_UNKNOWN. */
static _Atomic uint32_t gen_clock = 1;

static uint32_t next_gen(void)
{
	return atomic_fetch_add_explicit(&gen_clock, 1, memory_order_relaxed) + 1;
}

uint32_t stmt_gen_now(void)
{
	return atomic_load_explicit(&gen_clock, memory_order_relaxed);
}

static bool copy_current(const struct stmt_cached *slot, const struct pstmt *st)
{
	return slot->gen != STMT_GEN_UNKNOWN && slot->gen >= st->gen;
}

static void pstmt_free(struct pstmt *st)
{
	if (st->fx)
		proto_sql_free(st->fx, 1);
	free(st->fx);
	free(st->err);
	free(st);
}

static uint64_t load64(const uint8_t *d)
{
	uint64_t v;
	memcpy(&v, d, sizeof v);
	return v;
}

void stmt_sname(const uint8_t *digest, char *out)
{
	static const char hex[] = "0123456789abcdef";
	memcpy(out, "pgring_", 7);
	for (int i = 0; i < STMT_DIGEST_LEN; i++) {
		out[7 + 2 * i] = hex[digest[i] >> 4];
		out[8 + 2 * i] = hex[digest[i] & 15];
	}
	out[7 + 2 * STMT_DIGEST_LEN] = 0;
}

/* ---- registry ---- */

struct pstmt *stmt_intern(struct stmt_registry **regp, const uint8_t *body, uint32_t len)
{
	if (!*regp && !(*regp = calloc(1, sizeof **regp)))
		return NULL;
	struct stmt_registry *reg = *regp;
	uint8_t full[WC_SHA256_DIGEST_SIZE];
	if (wc_Sha256Hash(body, len, full) != 0)
		return NULL;
	struct pstmt **b = &reg->bucket[load64(full) % REG_BUCKETS];
	for (struct pstmt *st = *b; st; st = st->next) {
		if (memcmp(st->digest, full, STMT_DIGEST_LEN) == 0 && st->body_len == len &&
		    memcmp(st->body, body, len) == 0) {
			if (st->suspect) {
				st->suspect = false;
				st->gen = reg->gen = next_gen();
			}
			st->refs++;
			return st;
		}
	}
	struct pstmt *st = malloc(sizeof *st + len);
	if (!st)
		return NULL;
	memset(st, 0, sizeof *st);
	memcpy(st->digest, full, STMT_DIGEST_LEN);
	stmt_sname(st->digest, st->sname);
	st->refs = 1;
	/* a record made again after it was freed: copies servers kept from
	 * before the shard's last stale error are prepared again (once each) */
	st->gen = reg->gen;
	st->body_len = len;
	memcpy(st->body, body, len);
	/* what executing it does to the session, seen once */
	size_t qlen = strnlen((const char *)body, len);
	struct proto_sql_stmt fx;
	if (proto_sql_scan((const char *)body, qlen, &fx, 1, NULL) == 1) {
		st->fx = malloc(sizeof fx);
		if (st->fx) {
			*st->fx = fx;
			st->fx->text = NULL;
			st->fx->text_len = 0;
		} else {
			proto_sql_free(&fx, 1);
		}
	}
	st->next = *b;
	*b = st;
	reg->count++;
	return st;
}

void stmt_unref(struct stmt_registry *reg, struct pstmt *st)
{
	if (!st || --st->refs)
		return;
	for (struct pstmt **p = &reg->bucket[load64(st->digest) % REG_BUCKETS]; *p; p = &(*p)->next) {
		if (*p == st) {
			*p = st->next;
			break;
		}
	}
	reg->count--;
	pstmt_free(st);
}

void stmt_registry_free(struct stmt_registry *reg)
{
	if (!reg)
		return;
	for (int i = 0; i < REG_BUCKETS; i++) {
		for (struct pstmt *st = reg->bucket[i], *next; st; st = next) {
			next = st->next;
			pstmt_free(st);
		}
	}
	free(reg);
}

uint32_t stmt_registry_count(const struct stmt_registry *reg)
{
	return reg ? reg->count : 0;
}

/* ---- stale plans ---- */

enum stmt_stale stmt_stale_kind(const char *sqlstate)
{
	/* 0A000: cached plan must not change result type; the rest: an expression
	 * of a parameter's old type no longer fits (datatype_mismatch,
	 * undefined_function for an operator, cannot_coerce, ambiguous_function,
	 * ambiguous_parameter, indeterminate_datatype, collation_mismatch) */
	static const char *const fixed[] = { "0A000", "42804", "42883", "42846", "42725", "42P08", "42P18", "42P21" };
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		if (strcmp(sqlstate, fixed[i]) == 0)
			return STMT_STALE_FIXED;
	return strncmp(sqlstate, "22", 2) == 0 ? STMT_STALE_MAYBE : STMT_STALE_NO;
}

static int cache_find(const struct stmt_cache *c, const uint8_t *d);

bool stmt_mark_stale(struct stmt_registry *reg, struct pstmt *st, const struct stmt_cache *c, enum stmt_stale kind,
		     const uint8_t *err, uint32_t err_len)
{
	if (kind == STMT_STALE_NO)
		return false;
	int i = cache_find(c, st->digest);
	if (i < 0 || !copy_current(&c->slot[i], st))
		return false;   /* a copy already known to be old (or gone): nothing new */
	if (kind == STMT_STALE_MAYBE) {
		st->suspect = true;
		return true;
	}
	st->suspect = false;
	st->gen = reg->gen = next_gen();
	uint8_t *keep = err_len <= STMT_ERR_MAX ? realloc(st->err, err_len) : NULL;
	if (keep) {
		memcpy(keep, err, err_len);
		st->err = keep;
		st->err_len = err_len;
		st->err_gen = st->gen;
	}
	/* without the error (too long, no memory) names bound before simply get
	 * a fresh copy, as new ones do */
	return true;
}

/* ---- a client's names ---- */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static int map_find(const struct stmt_map *m, const char *name)
{
	if (!m->cap)
		return -1;
	uint32_t mask = m->cap - 1;
	for (uint32_t i = (uint32_t)name_hash(name) & mask;; i = (i + 1) & mask) {
		if (!m->slot[i].name)
			return -1;
		if (strcmp(m->slot[i].name, name) == 0)
			return (int)i;
	}
}

struct pstmt *stmt_map_get(const struct stmt_map *m, const char *name)
{
	int i = map_find(m, name);
	return i < 0 ? NULL : m->slot[i].st;
}

const struct stmt_entry *stmt_map_entry(const struct stmt_map *m, const char *name)
{
	int i = map_find(m, name);
	return i < 0 ? NULL : &m->slot[i];
}

static void map_insert(struct stmt_map *m, char *name, struct pstmt *st, uint32_t gen)
{
	uint32_t mask = m->cap - 1;
	uint32_t i = (uint32_t)name_hash(name) & mask;
	while (m->slot[i].name)
		i = (i + 1) & mask;
	m->slot[i].name = name;
	m->slot[i].st = st;
	m->slot[i].gen = gen;
	m->n++;
}

bool stmt_map_put(struct stmt_map *m, const char *name, struct pstmt *st)
{
	if ((m->n + 1) * 2 > m->cap) {
		uint32_t cap = m->cap ? m->cap * 2 : 8;
		struct stmt_entry *old = m->slot;
		uint32_t oldcap = m->cap;
		m->slot = calloc(cap, sizeof *m->slot);
		if (!m->slot) {
			m->slot = old;
			return false;
		}
		m->cap = cap;
		m->n = 0;
		for (uint32_t i = 0; i < oldcap; i++)
			if (old[i].name)
				map_insert(m, old[i].name, old[i].st, old[i].gen);
		free(old);
	}
	char *copy = strdup(name);
	if (!copy)
		return false;
	map_insert(m, copy, st, st ? st->gen : 0);
	m->bytes += strlen(copy) + 1 + (st ? st->body_len : 0);
	return true;
}

struct pstmt *stmt_map_take(struct stmt_map *m, const char *name)
{
	int found = map_find(m, name);
	if (found < 0)
		return NULL;
	uint32_t mask = m->cap - 1, i = (uint32_t)found;
	struct pstmt *st = m->slot[i].st;
	m->bytes -= strlen(m->slot[i].name) + 1 + (st ? st->body_len : 0);
	free(m->slot[i].name);
	m->slot[i].name = NULL;
	m->n--;
	/* backward-shift the cluster after it */
	for (uint32_t j = (i + 1) & mask; m->slot[j].name; j = (j + 1) & mask) {
		uint32_t home = (uint32_t)name_hash(m->slot[j].name) & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slot[i] = m->slot[j];
			m->slot[j].name = NULL;
			i = j;
		}
	}
	return st;
}

bool stmt_map_set_unnamed(struct stmt_map *m, const uint8_t *body, uint32_t len)
{
	/* the room is reused from Parse to Parse, and given back when it is far
	 * bigger than needed, so one huge statement is not kept for a lifetime */
	if (len > m->unnamed_cap || (m->unnamed_cap > 1024 && m->unnamed_cap / 4 > len)) {
		uint32_t cap = len < 64 ? 64 : len;
		uint8_t *p = realloc(m->unnamed_body, cap);
		if (!p) {
			m->unnamed = false;
			return false;
		}
		m->unnamed_body = p;
		m->unnamed_cap = cap;
	}
	if (len)
		memcpy(m->unnamed_body, body, len);
	m->unnamed_len = len;
	m->unnamed = true;
	m->unnamed_plain = false;   /* its owner says, once it has looked */
	return true;
}

void stmt_map_drop_unnamed(struct stmt_map *m)
{
	m->unnamed = false;
	m->unnamed_len = 0;
}

void stmt_map_clear(struct stmt_map *m, struct stmt_registry *reg)
{
	for (uint32_t i = 0; i < m->cap; i++) {
		if (m->slot[i].name) {
			free(m->slot[i].name);
			stmt_unref(reg, m->slot[i].st);
		}
	}
	free(m->slot);
	free(m->unnamed_body);
	memset(m, 0, sizeof *m);
}

/* ---- a server's prepared set ---- */

static int cache_find(const struct stmt_cache *c, const uint8_t *d)
{
	if (!c->cap)
		return -1;
	uint32_t mask = c->cap - 1;
	for (uint32_t i = (uint32_t)load64(d) & mask;; i = (i + 1) & mask) {
		if (!c->slot[i].used)
			return -1;
		if (memcmp(c->slot[i].digest, d, STMT_DIGEST_LEN) == 0)
			return (int)i;
	}
}

bool stmt_cache_has(struct stmt_cache *c, const uint8_t *digest)
{
	int i = cache_find(c, digest);
	if (i < 0)
		return false;
	c->slot[i].used = ++c->clock;
	return true;
}

enum stmt_copy stmt_cache_copy(struct stmt_cache *c, const struct pstmt *st)
{
	int i = cache_find(c, st->digest);
	if (i < 0)
		return STMT_COPY_NONE;
	c->slot[i].used = ++c->clock;
	return copy_current(&c->slot[i], st) ? STMT_COPY_CURRENT : STMT_COPY_STALE;
}

static void cache_insert(struct stmt_cache *c, const uint8_t *d, uint64_t used, uint32_t gen)
{
	uint32_t mask = c->cap - 1;
	uint32_t i = (uint32_t)load64(d) & mask;
	while (c->slot[i].used)
		i = (i + 1) & mask;
	memcpy(c->slot[i].digest, d, STMT_DIGEST_LEN);
	c->slot[i].used = used;
	c->slot[i].gen = gen;
	c->n++;
}

bool stmt_cache_add(struct stmt_cache *c, const uint8_t *digest, uint32_t gen)
{
	int at = cache_find(c, digest);
	if (at >= 0) {
		c->slot[at].used = ++c->clock;
		c->slot[at].gen = gen;
		return true;
	}
	if ((c->n + 1) * 2 > c->cap) {
		uint32_t cap = c->cap ? c->cap * 2 : 16;
		struct stmt_cached *old = c->slot;
		uint32_t oldcap = c->cap;
		c->slot = calloc(cap, sizeof *c->slot);
		if (!c->slot) {
			c->slot = old;
			return false;
		}
		c->cap = cap;
		c->n = 0;
		for (uint32_t i = 0; i < oldcap; i++)
			if (old[i].used)
				cache_insert(c, old[i].digest, old[i].used, old[i].gen);
		free(old);
	}
	cache_insert(c, digest, ++c->clock, gen);
	return true;
}

void stmt_cache_remove(struct stmt_cache *c, const uint8_t *digest)
{
	int found = cache_find(c, digest);
	if (found < 0)
		return;
	uint32_t mask = c->cap - 1, i = (uint32_t)found;
	c->slot[i].used = 0;
	c->n--;
	for (uint32_t j = (i + 1) & mask; c->slot[j].used; j = (j + 1) & mask) {
		uint32_t home = (uint32_t)load64(c->slot[j].digest) & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			c->slot[i] = c->slot[j];
			c->slot[j].used = 0;
			i = j;
		}
	}
}

bool stmt_cache_victim(const struct stmt_cache *c, uint64_t since, uint8_t *digest)
{
	uint64_t best = UINT64_MAX;
	int at = -1;
	for (uint32_t i = 0; i < c->cap; i++) {
		uint64_t u = c->slot[i].used;
		if (u && u <= since && u < best) {
			best = u;
			at = (int)i;
		}
	}
	if (at < 0)
		return false;
	memcpy(digest, c->slot[at].digest, STMT_DIGEST_LEN);
	return true;
}

void stmt_cache_clear(struct stmt_cache *c)
{
	if (c->slot)
		memset(c->slot, 0, c->cap * sizeof *c->slot);
	c->n = 0;
}

void stmt_cache_free(struct stmt_cache *c)
{
	free(c->slot);
	memset(c, 0, sizeof *c);
}
