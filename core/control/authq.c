/* core/control/authq.c: auth_query lookups on the control shard (see
 * core/control/authq.h). A target per (host, port, auth_dbname, auth_user,
 * auth_query) owns one libpq connection and a queue of lookups, one per role,
 * run one at a time; the shards' questions for a role already queued join its
 * lookup, and answers stay in a cache for auth_cache_ttl. */
#include "core/control/authq.h"

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/control/health.h"
#include "core/control/pqconn.h"
#include "core/log.h"
#include "core/shard.h"
#include "proto/auth.h"

/* Lookups running or queued at once, over all targets. The shards ask once
 * per (database, role) they are waiting for, and each has at most
 * max_client_logins logins under way, so this is reached only by a flood of
 * distinct role names; past it a login fails rather than memory growing. */
#define AUTHQ_MAX_PENDING 10000
#define CACHE_BUCKETS 4096

/* The lookup connection's session: a fixed search_path, so that an auth_query
 * with unqualified names cannot be made to run someone's function or read
 * someone's table (the class of CVE-2025-2291 / CVE-2025-12819). */
#define SAFE_OPTIONS "-c search_path=pg_catalog,pg_temp"

/* ---- the cache ---- */

struct centry {
	struct centry *next;
	const void *target;
	uint64_t expires_us;
	enum authq_status status;
	char *secret;
	char *db;                  /* NULL, or in key after user */
	char key[];                /* user, then db */
};

struct authq_cache {
	struct centry *b[CACHE_BUCKETS];
	int n;
};

static unsigned bucket_of(const void *target, const char *db, const char *user)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)target;
	for (const unsigned char *p = (const unsigned char *)user; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	for (const unsigned char *p = (const unsigned char *)(db ? db : ""); *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (unsigned)(h % CACHE_BUCKETS);
}

struct authq_cache *authq_cache_new(void) { return calloc(1, sizeof(struct authq_cache)); }

static void centry_free(struct centry *e)
{
	free(e->secret);
	free(e);
}

void authq_cache_free(struct authq_cache *c)
{
	if (!c)
		return;
	for (int i = 0; i < CACHE_BUCKETS; i++)
		for (struct centry *e = c->b[i], *next; e; e = next) {
			next = e->next;
			centry_free(e);
		}
	free(c);
}

int authq_cache_count(const struct authq_cache *c) { return c ? c->n : 0; }

/* The entry for (target, db, user) in its bucket; expired ones met on the way go. */
static struct centry **cache_slot(struct authq_cache *c, const void *target, const char *db, const char *user,
				  uint64_t now_us)
{
	struct centry **pp = &c->b[bucket_of(target, db, user)];
	while (*pp) {
		struct centry *e = *pp;
		if (e->expires_us <= now_us) {
			*pp = e->next;
			centry_free(e);
			c->n--;
			continue;
		}
		if (e->target == target && !strcmp(e->key, user) && (!e->db == !db) && (!db || !strcmp(e->db, db)))
			return pp;
		pp = &e->next;
	}
	return pp;
}

int authq_cache_get(struct authq_cache *c, const void *target, const char *db, const char *user, uint64_t now_us,
		    enum authq_status *status, const char **secret, uint64_t *expires_us)
{
	struct centry *e = *cache_slot(c, target, db, user, now_us);
	if (!e)
		return -1;
	*status = e->status;
	*secret = e->secret;
	if (expires_us)
		*expires_us = e->expires_us;
	return 0;
}

int authq_cache_put(struct authq_cache *c, const void *target, const char *db, const char *user,
		    enum authq_status status, const char *secret, uint64_t expires_us)
{
	struct centry **pp = cache_slot(c, target, db, user, 0);
	if (*pp) {
		struct centry *old = *pp;
		*pp = old->next;
		centry_free(old);
		c->n--;
	}
	if (c->n >= AUTHQ_CACHE_MAX)
		return -1;
	size_t ul = strlen(user) + 1, dl = db ? strlen(db) + 1 : 0;
	struct centry *e = malloc(sizeof *e + ul + dl);
	if (!e)
		return -1;
	e->secret = secret ? strdup(secret) : NULL;
	if (secret && !e->secret) {
		free(e);
		return -1;
	}
	memcpy(e->key, user, ul);
	e->db = db ? memcpy(e->key + ul, db, dl) : NULL;
	e->target = target;
	e->expires_us = expires_us;
	e->status = status;
	unsigned b = bucket_of(target, db, user);
	e->next = c->b[b];
	c->b[b] = e;
	c->n++;
	return 0;
}

/* ---- requests ---- */

struct authq_req *authq_req_new(int shard, int reply, const char *db, const char *user)
{
	size_t dl = strlen(db) + 1, ul = strlen(user) + 1;
	struct authq_req *r = calloc(1, sizeof *r + dl + ul);
	if (!r)
		return NULL;
	r->shard = shard;
	r->reply = reply;
	r->db = (char *)(r + 1);
	r->user = r->db + dl;
	memcpy(r->db, db, dl);
	memcpy(r->user, user, ul);
	return r;
}

void authq_req_free(struct authq_req *r)
{
	if (!r)
		return;
	free(r->secret);
	free(r);
}

bool authq_enabled(const struct config *c, const struct config_db *db)
{
	return (db && db->auth_user) || c->auth_user;
}

/* ---- state ---- */

enum tphase { TP_IDLE = 0, TP_RESOLVING, TP_CONNECTING, TP_PREPARE, TP_QUERY };

struct lookup {
	struct lookup *next;          /* in its target's queue */
	struct authq_req *waiters;    /* the shards' questions it answers */
	uint64_t queued_us;
	char user[];
};

struct target {
	struct target *next;
	char *host, *dbname, *user, *password, *query;
	int port, sslmode;
	bool stale;                   /* from before a reload: goes once idle */
	PGconn *conn;
	struct pqconn_addrs addr;
	enum tphase phase;
	short events;
	uint64_t phase_us;            /* when the current phase began */
	struct lookup *head, *tail;   /* head runs in TP_PREPARE, TP_QUERY */
	bool got_row;
	bool reused;                  /* the query runs on a connection kept from an earlier one */
	bool prepared;                /* auth_query is a prepared statement on this connection */
	enum authq_status status;
	char *secret;
	char error[256];
};

static const struct config *cfg;
static struct target *targets;
static struct authq_cache *cache;
static struct authq_req *outbox, *outbox_tail;   /* answers the shards' full inboxes refused */
static int npending;
static _Atomic uint64_t st_requests, st_hits, st_shard_hits, st_coalesced, st_queries, st_failures;
static _Atomic int64_t st_pending, st_cached;


void authq_get_stats(struct authq_stats *o)
{
	o->requests = atomic_load(&st_requests);
	o->cache_hits = atomic_load(&st_hits);
	o->shard_hits = atomic_load(&st_shard_hits);
	o->coalesced = atomic_load(&st_coalesced);
	o->queries = atomic_load(&st_queries);
	o->failures = atomic_load(&st_failures);
	o->pending = atomic_load(&st_pending);
	o->cached = atomic_load(&st_cached);
}

void authq_count_shard_hit(void) { atomic_fetch_add_explicit(&st_shard_hits, 1, memory_order_relaxed); }

/* Send r back to its shard; kept for the next round when its inbox is full. */
static void answer(struct authq_req *r)
{
	struct shard_msg m = { .type = r->reply, .ptr = r };
	r->next = NULL;
	if (!outbox && shard_post(-1, r->shard, &m))
		return;
	if (outbox_tail)
		outbox_tail->next = r;
	else
		outbox = r;
	outbox_tail = r;
}

static void flush_outbox(void)
{
	while (outbox) {
		struct authq_req *r = outbox;
		struct shard_msg m = { .type = r->reply, .ptr = r };
		if (!shard_post(-1, r->shard, &m))
			return;
		outbox = r->next;
		if (!outbox)
			outbox_tail = NULL;
	}
}

static void answer_one(struct authq_req *r, enum authq_status st, const char *secret, uint64_t expires_us)
{
	r->status = st;
	r->expires_us = st == AUTHQ_FAILED ? 0 : expires_us;
	r->secret = NULL;
	if (st == AUTHQ_FOUND && !(r->secret = strdup(secret)))
		r->status = AUTHQ_FAILED;
	if (r->status == AUTHQ_FAILED)
		atomic_fetch_add(&st_failures, 1);
	answer(r);
}

/* ---- targets ---- */

static void one_line(char *s)
{
	for (char *c = s; *c; c++)   /* libpq's messages span lines; a log line must not */
		if (*c == '\n' || *c == '\t')
			*c = ' ';
	size_t n = strlen(s);
	while (n && s[n - 1] == ' ')
		s[--n] = '\0';
}

static void target_free(struct target *t)
{
	if (t->conn)
		PQfinish(t->conn);
	free(t->host);
	free(t->dbname);
	free(t->user);
	free(t->password);
	free(t->query);
	free(t->secret);
	free(t);
}

static bool same(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

/* What a lookup for db connects to; NULL with why when it cannot be made. */
struct spec {
	const char *host, *dbname, *user, *password, *query;
	int port, sslmode;
	char dbbuf[256];
};

static int make_spec(struct spec *s, const char *dbname, char *why, size_t len)
{
	const struct config_cluster *cluster = NULL;
	size_t base_len = 0;
	const struct config_db *db = config_resolve_db(cfg, dbname, &cluster, &base_len);
	if (!db) {
		snprintf(why, len, "no database entry for \"%s\"", dbname);
		return -1;
	}
	memset(s, 0, sizeof *s);
	s->user = db->auth_user ? db->auth_user : cfg->auth_user;
	if (!s->user) {
		snprintf(why, len, "no auth_user for database \"%s\"", dbname);
		return -1;
	}
	s->query = db->auth_query ? db->auth_query : cfg->auth_query;
	if (!s->query) {
		snprintf(why, len, "auth_query is empty");
		return -1;
	}
	/* auth_dbname names a [databases] entry (PgBouncer's meaning): the lookup
	 * goes where that entry's servers are; unset, where the client's are */
	const char *auth_db = db->auth_dbname ? db->auth_dbname : cfg->auth_dbname;
	if (auth_db) {
		dbname = auth_db;
		if (!(db = config_resolve_db(cfg, auth_db, &cluster, &base_len))) {
			snprintf(why, len, "auth_dbname \"%s\" is not a [databases] entry", auth_db);
			return -1;
		}
	}
	snprintf(s->dbbuf, sizeof s->dbbuf, "%.*s", (int)base_len, dbname);
	s->dbname = db->dbname ? db->dbname : s->dbbuf;
	/* auth_user's password: a plain one in auth_file (libpq cannot log in with
	 * an md5 or SCRAM secret), else the entry's when it logs in as auth_user */
	const char *pw = config_find_secret(cfg, s->user);
	if (pw && (auth_is_md5_secret(pw) || auth_is_scram_secret(pw))) {
		snprintf(why, len, "auth_user \"%s\" has an md5 or SCRAM secret in auth_file: the lookup connection "
			 "needs its plain password there", s->user);
		return -1;
	}
	if (!pw && db->user && !strcmp(db->user, s->user))
		pw = db->password;
	s->password = pw;
	s->host = db->host;
	s->port = db->port;
	s->sslmode = config_server_sslmode(cfg, db, NULL);
	if (cluster) {
		/* the primary as the health checks see it: rolpassword is written there */
		const struct health_node *p = NULL;
		for (int i = 0; i < health_count() && !p; i++) {
			const struct health_node *h = health_node_at(i);
			if (!strcmp(h->cluster, cluster->name) && h->role == NODE_PRIMARY)
				p = h;
		}
		if (!p) {
			snprintf(why, len, "cluster \"%s\" has no primary now", cluster->name);
			return -1;
		}
		s->host = p->host;
		s->port = p->port;
		for (int i = 0; i < cluster->nnodes; i++)
			if (!strcmp(cluster->nodes[i].name, p->name))
				s->sslmode = config_server_sslmode(cfg, db, &cluster->nodes[i]);
	}
	return 0;
}

static struct target *find_target(const struct spec *s)
{
	for (struct target *t = targets; t; t = t->next)
		if (!t->stale && same(t->host, s->host) && t->port == s->port && same(t->dbname, s->dbname) &&
		    same(t->user, s->user) && same(t->password, s->password) && same(t->query, s->query) &&
		    t->sslmode == s->sslmode)
			return t;
	struct target *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->host = s->host ? strdup(s->host) : NULL;
	t->dbname = strdup(s->dbname);
	t->user = strdup(s->user);
	t->password = s->password ? strdup(s->password) : NULL;
	t->query = strdup(s->query);
	t->port = s->port;
	t->sslmode = s->sslmode;
	if ((s->host && !t->host) || !t->dbname || !t->user || (s->password && !t->password) || !t->query) {
		target_free(t);
		return NULL;
	}
	t->next = targets;
	targets = t;
	return t;
}

/* The head lookup is over: answer its questions, cache the answer. */
static void lookup_done(struct target *t, enum authq_status st, const char *secret)
{
	struct lookup *l = t->head;
	t->head = l->next;
	if (!t->head)
		t->tail = NULL;
	if (st == AUTHQ_FAILED)
		LOGF(LOG_WARNING, 0, "auth_query for user \"%s\" failed (auth_user %s, database %s): %s", l->user, t->user,
		     t->dbname, t->error);
	double ttl = st == AUTHQ_FOUND ? cfg->auth_cache_ttl : st == AUTHQ_NONE ? cfg->auth_cache_negative_ttl : 0;
	uint64_t expires = 0;
	if (ttl > 0 && cache && !t->stale) {   /* a stale target's answer is from before the reload */
		expires = shard_now_us() + (uint64_t)(ttl * 1e6);
		if (authq_cache_put(cache, t, NULL, l->user, st, secret, expires) < 0)
			expires = 0;   /* not cached here: the shards do not keep it either */
		atomic_store(&st_cached, authq_cache_count(cache));
	}
	for (struct authq_req *r = l->waiters, *next; r; r = next) {
		next = r->next;
		answer_one(r, st, secret, expires);
	}
	free(l);
	npending--;
	atomic_store(&st_pending, npending);
}

/* The connection is unusable: every queued lookup fails with why. */
static void connect_target(struct target *t);

static void target_failed(struct target *t, const char *why)
{
	if (t->reused && t->head) {
		/* a kept connection may have died meanwhile (a restart): that is no
		 * verdict on the server, so the lookup gets a fresh one */
		t->reused = false;
		PQfinish(t->conn);
		t->conn = NULL;
		t->phase_us = shard_now_us();
		connect_target(t);
		return;
	}
	snprintf(t->error, sizeof t->error, "%s", why && *why ? why : "unknown error");
	one_line(t->error);
	if (t->conn)
		PQfinish(t->conn);
	t->conn = NULL;
	t->phase = TP_IDLE;
	t->events = 0;
	while (t->head)
		lookup_done(t, AUTHQ_FAILED, NULL);
}

/* Flush what libpq holds and wait for the answer in phase ph. */
static void sent(struct target *t, enum tphase ph)
{
	t->phase = ph;
	t->phase_us = shard_now_us();
	int f = PQflush(t->conn);
	if (f < 0) {
		target_failed(t, PQerrorMessage(t->conn));
		return;
	}
	t->events = (short)(POLLIN | (f ? POLLOUT : 0));
}

/* auth_query is prepared once per connection (the server parses and plans it
 * once), then each lookup executes it with the role's name as its parameter:
 * the name never goes into the text. */
static void send_query(struct target *t)
{
	const char *user = t->head->user;
	free(t->secret);
	t->secret = NULL;
	t->got_row = false;
	t->status = AUTHQ_NONE;
	t->error[0] = '\0';
	if (!t->prepared) {
		if (!PQsendPrepare(t->conn, "pgring_auth_query", t->query, 1, NULL)) {
			target_failed(t, PQerrorMessage(t->conn));
			return;
		}
		sent(t, TP_PREPARE);
		return;
	}
	if (!PQsendQueryPrepared(t->conn, "pgring_auth_query", 1, &user, NULL, NULL, 0)) {
		target_failed(t, PQerrorMessage(t->conn));
		return;
	}
	atomic_fetch_add(&st_queries, 1);
	sent(t, TP_QUERY);
}

static void connect_target(struct target *t)
{
	char why[512];
	int rc = pqconn_addrs(&t->addr, t->host, t->port, why, sizeof why);
	if (rc < 0) {
		target_failed(t, why);
		return;
	}
	if (rc == 0) {
		t->phase = TP_RESOLVING;   /* dns.c wakes the loop when it has the addresses */
		t->events = 0;
		return;
	}
	struct pqconn_login l = {
		.dbname = t->dbname, .user = t->user, .password = t->password,
		.application_name = "pgring auth_query", .options = SAFE_OPTIONS,
		.timeout = cfg->server_connect_timeout, .sslmode = t->sslmode,
	};
	t->reused = false;
	t->prepared = false;
	t->conn = pqconn_start(cfg, &t->addr, &l, why, sizeof why);
	if (!t->conn) {
		target_failed(t, why);
		return;
	}
	t->phase = TP_CONNECTING;
	t->events = POLLOUT;
}

/* Start the head lookup, on the kept connection or a new one. */
static void target_start(struct target *t)
{
	if (!t->head || t->phase != TP_IDLE)
		return;
	t->phase_us = shard_now_us();
	if (t->conn && PQstatus(t->conn) == CONNECTION_OK) {
		t->reused = true;
		send_query(t);
		return;
	}
	if (t->conn)
		PQfinish(t->conn);
	t->conn = NULL;
	connect_target(t);
}

static void take_result(struct target *t, PGresult *r)
{
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(t->error, sizeof t->error, "%s", PQresultErrorMessage(r));
		one_line(t->error);
		t->status = AUTHQ_FAILED;
		return;
	}
	if (PQnfields(r) != 2) {
		snprintf(t->error, sizeof t->error, "auth_query must return two columns (name, secret), not %d",
			 PQnfields(r));
		t->status = AUTHQ_FAILED;
		return;
	}
	if (PQntuples(r) > 1 || (PQntuples(r) == 1 && t->got_row)) {
		snprintf(t->error, sizeof t->error, "auth_query returned more than one row");
		t->status = AUTHQ_FAILED;
		return;
	}
	if (PQntuples(r) == 0)
		return;
	t->got_row = true;
	if (PQgetisnull(r, 0, 0))
		return;   /* PgBouncer's other way to say "no such user": a row with a NULL name */
	if (PQgetisnull(r, 0, 1) || !*PQgetvalue(r, 0, 1)) {
		/* expired (the default query), or no password: refused as a wrong one */
		LOGF(LOG_INFO, 0, "auth_query: user \"%s\" has no usable secret (expired, or no password)", t->head->user);
		return;
	}
	if (t->status != AUTHQ_FAILED && (t->secret = strdup(PQgetvalue(r, 0, 1))))
		t->status = AUTHQ_FOUND;
}

static void read_results(struct target *t)
{
	if (!PQconsumeInput(t->conn)) {
		target_failed(t, PQerrorMessage(t->conn));
		return;
	}
	while (!PQisBusy(t->conn)) {
		PGresult *r = PQgetResult(t->conn);
		if (t->phase == TP_PREPARE) {
			if (r) {
				if (PQresultStatus(r) != PGRES_COMMAND_OK) {
					snprintf(t->error, sizeof t->error, "%s", PQresultErrorMessage(r));
					one_line(t->error);
					t->status = AUTHQ_FAILED;
				}
				PQclear(r);
				continue;
			}
			if (t->status != AUTHQ_FAILED) {
				t->prepared = true;
				send_query(t);
				return;
			}
			/* a query the server refuses (a missing table, say): this lookup
			 * fails with its message, the next one prepares again */
			t->phase = TP_IDLE;
			t->events = 0;
			lookup_done(t, AUTHQ_FAILED, NULL);
			target_start(t);
			return;
		}
		if (!r) {
			enum authq_status st = t->status;
			char *secret = t->secret;
			t->secret = NULL;
			t->phase = TP_IDLE;
			t->events = 0;
			lookup_done(t, st, st == AUTHQ_FOUND ? secret : NULL);
			free(secret);
			target_start(t);
			return;
		}
		take_result(t, r);
		PQclear(r);
	}
}

static void advance(struct target *t, uint64_t now)
{
	switch (t->phase) {
	case TP_IDLE:
		target_start(t);
		return;
	case TP_RESOLVING:
		connect_target(t);
		break;
	case TP_CONNECTING:
		switch (PQconnectPoll(t->conn)) {
		case PGRES_POLLING_FAILED:
			target_failed(t, PQerrorMessage(t->conn));
			return;
		case PGRES_POLLING_OK:
			send_query(t);
			break;
		case PGRES_POLLING_READING:
			t->events = POLLIN;
			break;
		default:
			t->events = POLLOUT;
			break;
		}
		break;
	case TP_PREPARE:
	case TP_QUERY: {
		int f = PQflush(t->conn);
		if (f < 0) {
			target_failed(t, PQerrorMessage(t->conn));
			return;
		}
		t->events = (short)(POLLIN | (f ? POLLOUT : 0));
		read_results(t);
		break;
	}
	}
	/* a server that does not answer: server_connect_timeout for each step */
	if (t->phase != TP_IDLE && cfg->server_connect_timeout > 0 && now > t->phase_us &&
	    now - t->phase_us > (uint64_t)(cfg->server_connect_timeout * 1e6))
		target_failed(t, t->phase >= TP_PREPARE ? "auth_query timed out (server_connect_timeout)"
						      : "connecting timed out (server_connect_timeout)");
}

/* ---- the control loop's side ---- */

void authq_ask(void *arg)
{
	struct authq_req *r = arg;
	atomic_fetch_add(&st_requests, 1);
	struct spec s;
	char why[300] = "out of memory";
	struct target *t = NULL;
	if (!cfg || make_spec(&s, r->db, why, sizeof why) < 0 || !(t = find_target(&s))) {
		LOGF(LOG_WARNING, 0, "auth_query for user \"%s\" cannot be made: %s", r->user,
		     cfg ? why : "not configured");
		answer_one(r, AUTHQ_FAILED, NULL, 0);
		return;
	}
	enum authq_status st;
	const char *secret;
	uint64_t expires;
	if (cache && authq_cache_get(cache, t, NULL, r->user, shard_now_us(), &st, &secret, &expires) == 0) {
		atomic_fetch_add(&st_hits, 1);
		answer_one(r, st, secret, expires);
		return;
	}
	for (struct lookup *l = t->head; l; l = l->next)
		if (!strcmp(l->user, r->user)) {
			atomic_fetch_add(&st_coalesced, 1);
			r->next = l->waiters;
			l->waiters = r;
			return;
		}
	size_t ul = strlen(r->user) + 1;
	struct lookup *l = npending < AUTHQ_MAX_PENDING ? calloc(1, sizeof *l + ul) : NULL;
	if (!l) {
		snprintf(t->error, sizeof t->error, "%d lookups pending", npending);
		LOGF(LOG_WARNING, 0, "auth_query for user \"%s\" refused: %d lookups pending already", r->user, npending);
		answer_one(r, AUTHQ_FAILED, NULL, 0);
		return;
	}
	memcpy(l->user, r->user, ul);
	l->waiters = r;
	r->next = NULL;
	l->queued_us = shard_now_us();
	if (t->tail)
		t->tail->next = l;
	else
		t->head = l;
	t->tail = l;
	npending++;
	atomic_store(&st_pending, npending);
	target_start(t);
}

void authq_configure(const struct config *c)
{
	cfg = c;
	/* a reload drops what was looked up: passwords may have changed with it */
	authq_cache_free(cache);
	cache = authq_cache_new();
	atomic_store(&st_cached, 0);
	for (struct target *t = targets; t; t = t->next)
		t->stale = true;
}

int authq_count(void)
{
	int n = 0;
	for (struct target *t = targets; t; t = t->next)
		n++;
	return n;
}

int authq_pollfds(struct pollfd *fds, int max)
{
	int n = 0;
	for (struct target *t = targets; t && n < max; t = t->next)
		if (t->phase != TP_IDLE && t->conn && PQsocket(t->conn) >= 0)
			fds[n++] = (struct pollfd){ .fd = PQsocket(t->conn), .events = t->events };
	return n;
}

int authq_next_timeout(void)
{
	if (outbox)
		return 1;
	if (!cfg)
		return -1;
	uint64_t now = shard_now_us(), next = UINT64_MAX;
	for (struct target *t = targets; t; t = t->next)
		if (t->phase != TP_IDLE && cfg->server_connect_timeout > 0) {
			uint64_t due = t->phase_us + (uint64_t)(cfg->server_connect_timeout * 1e6);
			if (due < next)
				next = due;
		}
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)((next - now + 999) / 1000);
}

void authq_process(void)
{
	flush_outbox();
	uint64_t now = shard_now_us();
	for (struct target **pp = &targets; *pp;) {
		struct target *t = *pp;
		advance(t, now);
		if (t->stale && !t->head && t->phase == TP_IDLE) {
			*pp = t->next;   /* from before a reload, nothing left to do */
			target_free(t);
			continue;
		}
		pp = &t->next;
	}
}

void authq_shutdown(void)
{
	while (targets) {
		struct target *t = targets;
		targets = t->next;
		t->stale = true;
		while (t->head) {   /* the shards are gone: nobody to answer */
			struct lookup *l = t->head;
			t->head = l->next;
			for (struct authq_req *r = l->waiters, *next; r; r = next) {
				next = r->next;
				authq_req_free(r);
			}
			free(l);
		}
		target_free(t);
	}
	while (outbox) {
		struct authq_req *r = outbox;
		outbox = r->next;
		authq_req_free(r);
	}
	outbox_tail = NULL;
	authq_cache_free(cache);
	cache = NULL;
}
