/* pool/stmt.h: protocol-level prepared statements in transaction pooling.
 * A shard keeps one record per distinct statement (query text and parameter
 * types); its server-side name is derived from a digest of both, so the same
 * statement has the same name on every server and every shard. A client maps
 * its own names to records; a server remembers which digests it has prepared
 * (bounded, least recently used goes first). */
#ifndef PGRING_STMT_H
#define PGRING_STMT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/sql.h"

#define STMT_DIGEST_LEN 16
#define STMT_SNAME_LEN 40              /* "pgring_" + 32 hex digits + NUL */

struct pstmt {
	struct pstmt *next;            /* registry hash chain */
	uint8_t digest[STMT_DIGEST_LEN];
	char sname[STMT_SNAME_LEN];
	uint32_t refs;                 /* client names bound to it */
	uint32_t body_len;             /* the Parse body after the name: query, count, types */
	struct proto_sql_stmt *fx;     /* what running it does to the session (NULL: nothing) */
	uint8_t body[];
};

struct stmt_registry;              /* one per shard */

/* The record for a Parse body (everything after the statement name), created
 * with one reference, or an existing one with a reference added. NULL: no memory. */
struct pstmt *stmt_intern(struct stmt_registry **reg, const uint8_t *body, uint32_t len);
void stmt_unref(struct stmt_registry *reg, struct pstmt *st);
void stmt_registry_free(struct stmt_registry *reg);
uint32_t stmt_registry_count(const struct stmt_registry *reg);

/* A client's names. */
struct stmt_map {
	uint32_t n, cap;               /* cap: 0 or a power of two */
	struct stmt_entry { char *name; struct pstmt *st; } *slot;
};
struct pstmt *stmt_map_get(const struct stmt_map *m, const char *name);
bool stmt_map_put(struct stmt_map *m, const char *name, struct pstmt *st);   /* false: no memory */
struct pstmt *stmt_map_take(struct stmt_map *m, const char *name);         /* removes; NULL if absent */
/* Drop every name (unref'ing the records) and the table. */
void stmt_map_clear(struct stmt_map *m, struct stmt_registry *reg);

/* What a server has prepared. */
struct stmt_cache {
	uint32_t n, cap;
	uint64_t clock;                /* use counter for least-recently-used */
	struct stmt_cached { uint8_t digest[STMT_DIGEST_LEN]; uint64_t used; } *slot;
};
bool stmt_cache_has(struct stmt_cache *c, const uint8_t *digest);            /* and marks it used */
bool stmt_cache_add(struct stmt_cache *c, const uint8_t *digest);
void stmt_cache_remove(struct stmt_cache *c, const uint8_t *digest);
/* The least recently used digest not used since `since` (a clock value); false if none. */
bool stmt_cache_victim(const struct stmt_cache *c, uint64_t since, uint8_t *digest);
void stmt_cache_clear(struct stmt_cache *c);
void stmt_cache_free(struct stmt_cache *c);

/* The server-side name for a digest. */
void stmt_sname(const uint8_t *digest, char *out);

#endif
