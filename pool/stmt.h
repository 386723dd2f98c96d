/* pool/stmt.h: protocol-level prepared statements in transaction pooling.
 * A shard keeps one record per distinct statement (query text and parameter
 * types); its server-side name is derived from a digest of both, so the same
 * statement has the same name on every server and every shard. A client maps
 * its own names to records; a server remembers which digests it has prepared
 * (bounded, least recently used goes first).
 *
 * Stale plans. PostgreSQL fixes a statement's parameter and result types at its
 * Parse; after a schema change that alters them, using it fails (0A000 "cached
 * plan must not change result type", 42804, ...) until it is prepared again. A
 * shared copy fails the same way, and a client's new Parse must not be answered
 * with it. So a record has a generation: a server remembers the generation of
 * the copy it prepared, and a copy of an older one is closed and prepared again
 * before its next use. The first such error from a current copy starts a new
 * generation (stmt_mark_stale); a client's name remembers the generation it was
 * bound in, and a name bound before the error keeps failing with that error, as
 * the client's own statement would on PostgreSQL, until the client prepares it
 * again. An error that may or may not mean a stale copy (a parameter value that
 * does not convert) only makes the next Parse start a generation. Records are
 * per shard and each shard learns on its first error; generations and copies'
 * stamps come from one process-wide clock, so a copy that moved with its
 * server from another shard is judged by when it was prepared, never closed
 * merely for coming from elsewhere (an old copy must fail where it is used:
 * that is how a shard learns). What pgring cannot know: a name bound before a
 * schema change, used on a server whose copy was prepared after it (or that
 * has none) before any copy failed in the client's shard, runs there with the
 * new types where PostgreSQL would fail it; and a Parse after a change that
 * finds an old copy no one has failed on yet is bound to it, and fails where
 * PostgreSQL's new statement would work (README, known differences). */
#ifndef PGRING_STMT_H
#define PGRING_STMT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/sql.h"

#define STMT_DIGEST_LEN 16
#define STMT_SNAME_LEN 40              /* "pgring_" + 32 hex digits + NUL */

#define STMT_GEN_UNKNOWN 0            /* a server's copy of unknown age (it may not even exist): stale */
#define STMT_ERR_MAX 2048              /* a stale error kept longer than this is not replayed */

struct pstmt {
	struct pstmt *next;            /* registry hash chain */
	uint8_t digest[STMT_DIGEST_LEN];
	char sname[STMT_SNAME_LEN];
	uint32_t refs;                 /* client names bound to it, and replies owed that refer to it */
	uint32_t body_len;             /* the Parse body after the name: query, count, types */
	uint32_t gen;                  /* server copies stamped before it are stale */
	bool suspect;                  /* a copy may be stale: the next Parse of it starts a generation */
	uint32_t err_gen;              /* names bound before this generation fail with err */
	uint32_t err_len;
	uint8_t *err;                  /* the ErrorResponse (whole message) that made it stale */
	struct proto_sql_stmt *fx;     /* what running it does to the session (NULL: nothing) */
	uint8_t body[];
};

struct stmt_registry;              /* one per shard */
struct stmt_cache;

/* The record for a Parse body (everything after the statement name), created
 * with one reference, or an existing one with a reference added (a suspect
 * one in a new generation: this Parse must not be given a stale copy). NULL:
 * no memory. */
struct pstmt *stmt_intern(struct stmt_registry **reg, const uint8_t *body, uint32_t len);
void stmt_unref(struct stmt_registry *reg, struct pstmt *st);
void stmt_registry_free(struct stmt_registry *reg);
uint32_t stmt_registry_count(const struct stmt_registry *reg);

/* What an error from a Bind or Describe of a shared statement says of the
 * server's copy. STMT_STALE_FIXED: a result or parameter type fixed at its
 * Parse no longer fits the schema (0A000 "cached plan must not change result
 * type", 42804, 42883, ...): the statement stays broken, on PostgreSQL too,
 * until prepared again. STMT_STALE_MAYBE: a parameter value did not convert to
 * its fixed type (class 22 at Bind): a bad value, or a type the table no
 * longer has; a fresh copy costs little and tells. STMT_STALE_NO: anything
 * else, such as a missing table or column, which PostgreSQL's re-analysis by
 * name gives and recovers from just as a new statement would. */
enum stmt_stale { STMT_STALE_NO, STMT_STALE_MAYBE, STMT_STALE_FIXED };
enum stmt_stale stmt_stale_kind(const char *sqlstate);
/* The server whose copies are `c` answered a Bind or Describe of st with
 * such an error (err: the whole ErrorResponse). If its copy was of st's
 * current generation: with STMT_STALE_FIXED st gets a new generation at once,
 * so that every copy is prepared again before its next use, and names bound
 * so far fail with err from now on; with STMT_STALE_MAYBE st is only suspect,
 * and the next Parse of it (stmt_intern) starts the new generation, for a
 * fresh copy, while names bound before go on as they are (the value may have
 * been bad). true: st changed. A copy already known to be old teaches nothing.
 * Allocates only to keep err. */
bool stmt_mark_stale(struct stmt_registry *reg, struct pstmt *st, const struct stmt_cache *c, enum stmt_stale kind,
		     const uint8_t *err, uint32_t err_len);

/* A client's names, and its unnamed statement. */
struct stmt_map {
	uint32_t n, cap;               /* cap: 0 or a power of two */
	uint64_t bytes;                /* each name's length + 1 + its statement's body_len
					* (max_client_prepared_size; a body shared by names
					* is counted for each) */
	struct stmt_entry {
		char *name;
		struct pstmt *st;
		uint32_t gen;          /* st's generation when the name was bound */
	} *slot;
	/* The unnamed statement lives on PostgreSQL until the next unnamed Parse,
	 * a simple Query or its Close; in transaction pooling its server changes,
	 * so the Parse body is kept to prepare it again where it is used. */
	bool unnamed;                  /* the client has one: unnamed_body[0, unnamed_len) */
	bool unnamed_plain;            /* ... and its text changes no session state (its scan found none) */
	uint32_t unnamed_len, unnamed_cap;
	uint8_t *unnamed_body;         /* room kept between Parses */
};
struct pstmt *stmt_map_get(const struct stmt_map *m, const char *name);
const struct stmt_entry *stmt_map_entry(const struct stmt_map *m, const char *name);
/* Bound under st's current generation. false: no memory. */
bool stmt_map_put(struct stmt_map *m, const char *name, struct pstmt *st);
struct pstmt *stmt_map_take(struct stmt_map *m, const char *name);         /* removes; NULL if absent */
/* The name was bound before its statement went stale: using it fails with st->err. */
static inline bool stmt_entry_stale(const struct stmt_entry *e)
{
	return e->gen < e->st->err_gen && e->st->err;
}
/* Keep body as the client's unnamed statement (room reused). false: no memory, none kept. */
bool stmt_map_set_unnamed(struct stmt_map *m, const uint8_t *body, uint32_t len);
void stmt_map_drop_unnamed(struct stmt_map *m);
/* Drop every name (unref'ing the records), the unnamed statement and the table. */
void stmt_map_clear(struct stmt_map *m, struct stmt_registry *reg);

/* What a server has prepared. */
struct stmt_cache {
	uint32_t n, cap;
	uint64_t clock;                /* use counter for least-recently-used */
	struct stmt_cached { uint8_t digest[STMT_DIGEST_LEN]; uint64_t used; uint32_t gen; } *slot;
};
/* Has it a copy, of whatever generation (and marks it used)? */
bool stmt_cache_has(struct stmt_cache *c, const uint8_t *digest);
enum stmt_copy { STMT_COPY_NONE, STMT_COPY_STALE, STMT_COPY_CURRENT };
/* Its copy of st, if any (and marks it used). */
enum stmt_copy stmt_cache_copy(struct stmt_cache *c, const struct pstmt *st);
/* The clock's time, to stamp a copy prepared now with. */
uint32_t stmt_gen_now(void);
/* It has a copy prepared at `stamp` (stmt_gen_now()), or with STMT_GEN_UNKNOWN
 * may have one of any age. */
bool stmt_cache_add(struct stmt_cache *c, const uint8_t *digest, uint32_t stamp);
void stmt_cache_remove(struct stmt_cache *c, const uint8_t *digest);
/* The least recently used digest not used since `since` (a clock value); false if none. */
bool stmt_cache_victim(const struct stmt_cache *c, uint64_t since, uint8_t *digest);
void stmt_cache_clear(struct stmt_cache *c);
void stmt_cache_free(struct stmt_cache *c);

/* The server-side name for a digest. */
void stmt_sname(const uint8_t *digest, char *out);

#endif
