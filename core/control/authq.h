/* core/control/authq.h: auth_query. A user absent from auth_file has its secret
 * looked up on the server by the control shard, with libpq in non-blocking mode
 * (one connection per lookup target: host, port, auth_dbname, auth_user), so a
 * shard never blocks on it. Answers are cached for auth_cache_ttl, and logins
 * of the same role waiting at the same time share one query. */
#ifndef PGRING_AUTHQ_H
#define PGRING_AUTHQ_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

struct config;
struct config_db;

enum authq_status {
	AUTHQ_FOUND = 0,   /* secret holds the role's secret */
	AUTHQ_NONE,        /* no such role, it may not log in, it expired or has no password */
	AUTHQ_FAILED,      /* the lookup could not be made (logged why) */
};

/* One shard's question about (database, user), made by authq_req_new and
 * handed to the control thread with control_call(shard, authq_ask, req). The
 * control thread fills status and secret and posts it back as a message of
 * type `reply` with ptr = req (the shard layer's own number: core does not
 * know the pool layer's); the shard frees it with authq_req_free. */
struct authq_req {
	int shard, reply;
	enum authq_status status;
	char *secret;              /* AUTHQ_FOUND: the secret, owned by the request */
	uint64_t expires_us;       /* the answer may be reused until then (CLOCK_MONOTONIC); 0: not */
	struct authq_req *next;    /* the control thread's lists */
	char *db, *user;           /* in the same allocation */
};

struct authq_req *authq_req_new(int shard, int reply, const char *db, const char *user);
void authq_req_free(struct authq_req *r);

/* Whether logins to db's users not in auth_file are looked up: auth_user is set,
 * on the entry or globally. Any thread. */
bool authq_enabled(const struct config *cfg, const struct config_db *db);

/* The control thread's side. */
void authq_ask(void *req);                       /* control_call's fn */
void authq_configure(const struct config *cfg);  /* load and reload: the cache is dropped */
int authq_pollfds(struct pollfd *fds, int max);
int authq_count(void);                           /* poll entries authq_pollfds may want */
int authq_next_timeout(void);                    /* ms, -1: none */
void authq_process(void);                        /* after poll: advance every lookup */
void authq_shutdown(void);

/* Counters for the metrics (any thread). */
struct authq_stats {
	uint64_t requests;        /* questions from the shards */
	uint64_t cache_hits;      /* answered from the control shard's cache */
	uint64_t shard_hits;      /* logins answered by their shard's copy, never asking */
	uint64_t coalesced;       /* joined a lookup already running */
	uint64_t queries;         /* auth_query executions sent to a server */
	uint64_t failures;        /* lookups that could not be made */
	int64_t pending;          /* lookups running or queued now */
	int64_t cached;           /* cache entries now */
};
void authq_get_stats(struct authq_stats *out);
void authq_count_shard_hit(void);   /* a shard's login found its answer in the shard's cache */

/* The cache: keyed by (target, db, user), entries expire at `expires_us`;
 * bounded at AUTHQ_CACHE_MAX entries. The control shard keys by its lookup
 * target (db NULL); each shard keeps the answers it got keyed by the client's
 * database (target NULL), until the control shard's expiry, so that a cached
 * login does not leave its shard. Not thread-safe: one owner each. */
#define AUTHQ_CACHE_MAX 100000
struct authq_cache;
struct authq_cache *authq_cache_new(void);
void authq_cache_free(struct authq_cache *c);
/* 0 on a hit (status and secret, not to be freed, set), -1 on a miss. */
int authq_cache_get(struct authq_cache *c, const void *target, const char *db, const char *user, uint64_t now_us,
		    enum authq_status *status, const char **secret, uint64_t *expires_us);
/* Store (replacing); -1 when full or out of memory (not cached). */
int authq_cache_put(struct authq_cache *c, const void *target, const char *db, const char *user,
		    enum authq_status status, const char *secret, uint64_t expires_us);
int authq_cache_count(const struct authq_cache *c);

#endif
