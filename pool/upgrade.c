/* pool/upgrade.c: the hand-over records of clients and of idle server
 * connections (their encoding, checked in full on the way in), which of them
 * move and when, and the old shard's side of pgring -R (pool/upgrade.h). A
 * record is built once per connection and upgrade only: allocation here is
 * off the data path. */
#include "pool/upgrade.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/control/control.h"
#include "core/control/handover.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/strbuf.h"
#include "core/takeover.h"
#include "pool/client.h"
#include "pool/lease.h"
#include "pool/listen.h"
#include "pool/pool.h"
#include "pool/server.h"

#define REC_MAGIC "PGRC"
#define SREC_MAGIC "PGRS"        /* an idle server connection's record */
#define GREC_MAGIC "PGRG"        /* a pool's LISTEN connection: its clients' count and channels, its record */
/* 2: a client's record ends with its pool's login secrets; 3: then with what
 * its server holds for it by name (LISTEN channels, WITH HOLD cursors), and
 * the channels its pool's listener listens to for it.
 * Older versions are read too. */
#define REC_VERSION 3
#define SREC_VERSION 2
#define REC_STR_MAX 65535u       /* a name, a value or a query longer than this is no record of ours */
#define REC_SECRET_AT 25         /* magic 4, version 1, age 8, id 8, pid 4 */

/* ---- which clients move ---- */

/* Nothing of the client's own half done or owed (both pooling modes). */
static bool client_quiet(const struct client *cl)
{
	const struct client_sess *cs = cl->sess;
	return !cl->in_txn && proto_framer_idle(&cl->conn.fr) && !cl->conn.fr.whole && !cl->nq && !cl->nq_lost &&
	       !cl->txn_failed && !cl->sync_failed && !(cl->extra && (cl->extra->lost_msg || cl->extra->fatal_deferred)) && !cl->terminating &&
	       !cl->welcome_owed && !cl->drop_msg &&
	       !(cs && (cs->txn_params || cs->nsp || cs->txn_listen || cs->txn_forced.n));
}

/* Nothing half read, owed or on its way on the server's connection, its
 * record complete: what a record of it says is all there is. */
static bool server_quiet(const struct server *sv)
{
	return !sv->cancels && !sv->hidden && sv->txn_status == 'I' && !sv->close_when_idle && !sv->conn.eof &&
	       !sv->conn.closing && proto_framer_idle(&sv->conn.fr) && !sv->conn.fr.whole &&
	       !conn_has_output(&sv->conn) && !sv->params.failed && !sv->sqlprep.failed;
}

/* A session-pooled client moves with its server, both at rest: its session
 * (settings, prepared statements, temporary tables, ...) is that server's.
 * So does a transaction-pooled client pinned to its server (temporary
 * tables, advisory locks, SET SESSION AUTHORIZATION, ...). */
static enum upgrade_fit session_fit(const struct client *cl, const char **why)
{
	const struct lease *l = cl->lease;
	const struct server *sv = l ? l->server : NULL;
	if (sv && sv->conn.tls) {
		*why = "session pooling over a TLS server connection (its keys cannot be handed over)";
		return UPGRADE_STAYS;
	}
	if (!sv || cl->state != CL_ACTIVE || !lease_at_rest(l) || !client_quiet(cl) || !server_quiet(sv))
		return UPGRADE_NOT_YET;
	return UPGRADE_MOVES;
}

enum upgrade_fit upgrade_fit(const struct client *cl, const char **why)
{
	const struct client_sess *cs = cl->sess;
	*why = NULL;
	if (cl->state == CL_CLOSED || cl->conn.closing || cl->conn.eof)
		return UPGRADE_NOT_YET;   /* leaving anyway */
	if (cl->admin)
		*why = "a console connection";
	else if (cl->replication)
		*why = "a replication connection";
	else if (cl->conn.tls)
		*why = "TLS (its session keys cannot be handed over)";
	else if (cl->pool && cl->pool->mode == POOL_SESSION)
		return session_fit(cl, why);
	else if (cs && cs->listen.n && cl->pins)
		*why = "LISTEN through the pool's listener while pinned to its server";
	else if (cl->pins)
		return session_fit(cl, why);   /* its server holds what pins it: the two move together */
	if (*why)
		return UPGRADE_STAYS;
	/* output still owed is no reason to wait: parking waits for it to go out,
	 * and the parked client is checked for it once more */
	if (cl->state != CL_IDLE || cl->lease || !client_quiet(cl))
		return UPGRADE_NOT_YET;
	return cs && cs->listen.n ? UPGRADE_WITH_LISTENER : UPGRADE_MOVES;
}

/* ---- the record ---- */

static void put(struct strbuf *sb, const void *p, size_t n) { strbuf_append(sb, p, n); }

static void put_u(struct strbuf *sb, uint64_t v, int bytes)
{
	uint8_t b[8];
	for (int i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	put(sb, b, (size_t)bytes);
}

static void put_bytes(struct strbuf *sb, const void *p, size_t n)
{
	put_u(sb, n, 4);
	put(sb, p, n);
}

static void put_str(struct strbuf *sb, const char *s) { put_bytes(sb, s ? s : "", s ? strlen(s) : 0); }

static void put_params(struct strbuf *sb, const struct params *p)
{
	put_u(sb, p->n, 2);
	for (int i = 0; i < p->n; i++) {
		put_str(sb, p->v[i].name);
		put_str(sb, p->v[i].value);
	}
}

bool upgrade_pack(const struct client *cl, uint64_t now_us, struct strbuf *sb)
{
	static const struct params none;
	const struct client_sess *cs = cl->sess;
	put(sb, REC_MAGIC, 4);
	put_u(sb, REC_VERSION, 1);
	put_u(sb, now_us > cl->connect_us ? now_us - cl->connect_us : 0, 8);
	put_u(sb, cl->conn.id, 8);
	put_u(sb, cl->key_pid, 4);
	put_u(sb, cl->key_secret, 4);
	put_u(sb, cl->key_long, 1);
	static const uint8_t no_tail[PROTO_KEY_LONG - 4];
	put(sb, cl->key_long ? cl->extra->key_tail : no_tail, PROTO_KEY_LONG - 4);
	put_u(sb, cl->target, 1);
	put_u(sb, cl->is_unix, 1);
	put_u(sb, cl->addr_family, 1);
	put(sb, cl->addr, sizeof cl->addr);
	put_str(sb, cl->user);
	put_str(sb, cl->database);
	put_params(sb, &cl->startup);
	put_params(sb, &cl->params);
	put_params(sb, cs ? &cs->sqlprep : &none);
	uint32_t nst = 0;
	for (uint32_t i = 0; cs && i < cs->stmts.cap; i++)
		if (cs->stmts.slot[i].name && cs->stmts.slot[i].st)
			nst++;
	put_u(sb, nst, 4);
	for (uint32_t i = 0; cs && i < cs->stmts.cap; i++) {
		const struct stmt_entry *e = &cs->stmts.slot[i];
		if (!e->name || !e->st)
			continue;
		put_str(sb, e->name);
		put_bytes(sb, e->st->body, e->st->body_len);
	}
	bool unnamed = cs && cs->stmts.unnamed;
	put_u(sb, unnamed, 1);
	if (unnamed)
		put_bytes(sb, cs->stmts.unnamed_body, cs->stmts.unnamed_len);
	/* what its pool's servers log in with that was learned from a client's
	 * login (SCRAM pass-through, auth_query): without it the successor's
	 * pool could open no server until another client logs in there */
	const struct pool *p = cl->pool;
	bool key = p && p->have_client_key;
	put_u(sb, key, 1);
	if (key)
		put(sb, p->scram_client_key, AUTH_SCRAM_KEY_LEN);
	put_str(sb, p ? p->authq_secret : NULL);
	put_u(sb, cl->pins, 1);   /* what its server (moving with it) holds for it */
	put_params(sb, cs ? &cs->holds : &none);   /* and by what name */
	put_params(sb, cs ? &cs->listen : &none);  /* its pool's listener's channels it listens to */
	return !sb->failed && sb->len <= TAKEOVER_REC_MAX;
}

/* A bounds-checked cursor; any fault makes it bad and every later read empty. */
struct rd {
	const uint8_t *p;
	size_t n;
	bool bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
	if (r->bad || r->n < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->n -= n;
	return p;
}

static uint64_t get_u(struct rd *r, int bytes)
{
	const uint8_t *b = take(r, (size_t)bytes);
	uint64_t v = 0;
	for (int i = 0; b && i < bytes; i++)
		v = v << 8 | b[i];
	return v;
}

static const uint8_t *get_bytes(struct rd *r, uint32_t *len, uint32_t max)
{
	uint64_t n = get_u(r, 4);
	if (n > max) {
		r->bad = true;
		return NULL;
	}
	*len = (uint32_t)n;
	return take(r, n);
}

/* A string without NUL bytes, copied NUL-terminated (NULL: bad). */
static char *get_str(struct rd *r)
{
	uint32_t n;
	const uint8_t *p = get_bytes(r, &n, REC_STR_MAX);
	if (!p || memchr(p, 0, n)) {
		r->bad = true;
		return NULL;
	}
	char *s = malloc(n + 1);
	if (!s) {
		r->bad = true;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

static void get_params(struct rd *r, struct params *p)
{
	uint64_t n = get_u(r, 2);
	for (uint64_t i = 0; i < n && !r->bad; i++) {
		char *name = get_str(r), *value = name ? get_str(r) : NULL;
		if (!value || !*name || !params_set(p, name, value))
			r->bad = true;
		free(name);
		free(value);
	}
}

/* A Parse body: the query (NUL-terminated), a count, that many type OIDs. */
static bool parse_body_ok(const uint8_t *b, uint32_t n)
{
	const uint8_t *nul = memchr(b, 0, n);
	if (!nul)
		return false;
	size_t rest = n - (size_t)(nul + 1 - b);
	if (rest < 2)
		return false;
	size_t k = (size_t)nul[1] << 8 | nul[2];
	return rest == 2 + 4 * k;
}

bool upgrade_peek_secret(const uint8_t *p, size_t n, uint32_t *secret)
{
	if (n < REC_SECRET_AT + 4 || memcmp(p, REC_MAGIC, 4) != 0)
		return false;
	const uint8_t *b = p + REC_SECRET_AT;
	*secret = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	return true;
}

bool upgrade_unpack(struct client *cl, const uint8_t *p, size_t n, struct stmt_registry **reg, uint64_t *age_us,
		    uint64_t *old_id)
{
	struct rd r = { p, n, false };
	const uint8_t *magic = take(&r, 4);
	uint64_t version = magic && memcmp(magic, REC_MAGIC, 4) == 0 ? get_u(&r, 1) : 0;
	if (version < 1 || version > REC_VERSION)
		return false;
	*age_us = get_u(&r, 8);
	*old_id = get_u(&r, 8);
	cl->key_pid = (uint32_t)get_u(&r, 4);
	cl->key_secret = (uint32_t)get_u(&r, 4);
	cl->key_long = get_u(&r, 1) != 0;
	const uint8_t *tail = take(&r, PROTO_KEY_LONG - 4);
	if (cl->key_long) {
		if (!tail || !client_extra(cl))
			return false;
		memcpy(cl->extra->key_tail, tail, PROTO_KEY_LONG - 4);
	}
	cl->target = (uint8_t)get_u(&r, 1);
	cl->is_unix = get_u(&r, 1) != 0;
	cl->addr_family = (uint8_t)get_u(&r, 1);
	const uint8_t *addr = take(&r, sizeof cl->addr);
	if (addr)
		memcpy(cl->addr, addr, sizeof cl->addr);
	if (r.bad || !cl->key_pid)
		return false;
	char *user = get_str(&r), *database = user ? get_str(&r) : NULL;
	bool named = database && *user && *database && client_set_names(cl, user, database);
	free(user);
	free(database);
	if (!named)
		return false;
	get_params(&r, &cl->startup);
	get_params(&r, &cl->params);
	if (r.bad || !(cl->sess = calloc(1, sizeof *cl->sess)))
		return false;
	struct client_sess *cs = cl->sess;
	get_params(&r, &cs->sqlprep);
	uint64_t nst = get_u(&r, 4);
	for (uint64_t i = 0; i < nst && !r.bad; i++) {
		char *name = get_str(&r);
		uint32_t len = 0;
		const uint8_t *body = name ? get_bytes(&r, &len, TAKEOVER_REC_MAX) : NULL;
		struct pstmt *st = NULL;
		if (!body || !*name || stmt_map_get(&cs->stmts, name) || !parse_body_ok(body, len) ||
		    !(st = stmt_intern(reg, body, len)) || !stmt_map_put(&cs->stmts, name, st)) {
			if (st)
				stmt_unref(*reg, st);
			r.bad = true;
		}
		free(name);
	}
	uint64_t unnamed = get_u(&r, 1);
	if (unnamed == 1) {
		uint32_t len = 0;
		const uint8_t *body = get_bytes(&r, &len, TAKEOVER_REC_MAX);
		if (!body || !parse_body_ok(body, len) || !stmt_map_set_unnamed(&cs->stmts, body, len))
			r.bad = true;
	} else if (unnamed) {
		r.bad = true;
	}
	if (version >= 2 && !r.bad) {
		/* the pool's login secrets ride on the client until it joins the
		 * pool (client_move_in), as a login's would */
		uint64_t key = get_u(&r, 1);
		const uint8_t *k = key == 1 ? take(&r, AUTH_SCRAM_KEY_LEN) : NULL;
		if (key > 1 || (key && !k))
			r.bad = true;
		if (k && (cl->scram = calloc(1, sizeof *cl->scram))) {
			memcpy(cl->scram->client_key, k, AUTH_SCRAM_KEY_LEN);
			cl->scram->have_client_key = true;
		}
		char *secret = get_str(&r);
		if (secret && *secret) {
			cl->secret = secret;
			cl->secret_looked_up = true;
		} else {
			free(secret);
		}
		uint64_t pins = get_u(&r, 1);
		if (pins & ~(uint64_t)(PIN_LISTEN | PIN_ADVISORY | PIN_TEMP | PIN_CURSOR | PIN_OTHER))
			r.bad = true;
		cl->moved_pins = (uint8_t)pins;   /* set once it has its pool and server (client_move_in) */
	}
	if (version >= 3 && !r.bad) {
		get_params(&r, &cs->holds);
		for (int i = 0; i < cs->holds.n && !r.bad; i++) {
			const char *k = cs->holds.v[i].name;
			if ((k[0] != 'l' && k[0] != 'c') || k[1] != ':' || !k[2] || *cs->holds.v[i].value)
				r.bad = true;   /* "l:channel" or "c:cursor", nothing else */
		}
		struct params listen = { 0 };
		get_params(&r, &listen);
		for (int i = 0; i < listen.n; i++)
			if (*listen.v[i].value)
				r.bad = true;   /* a channel's name, nothing else */
		struct params *moved = NULL;
		if (listen.n && !r.bad && client_extra(cl) && (moved = malloc(sizeof listen))) {
			*moved = listen;
			cl->extra->moved_listen = moved;
		} else {
			params_clear(&listen);
		}
		if (listen.n && !moved)
			r.bad = true;
	}
	return !r.bad && r.n == 0;
}

void upgrade_release(struct client *cl, struct stmt_registry *reg)
{
	client_free_names(cl);
	free(cl->scram);
	free(cl->secret);
	cl->scram = NULL;
	cl->secret = NULL;
	params_clear(&cl->startup);
	params_clear(&cl->params);
	client_extra_free(cl);
	if (cl->sess) {
		stmt_map_clear(&cl->sess->stmts, reg);
		params_clear(&cl->sess->sqlprep);
		params_clear(&cl->sess->holds);
		free(cl->sess);
		cl->sess = NULL;
	}
}

/* ---- the old process ---- */

/* ---- idle servers ---- */

/* An idle server moves with what its session holds (its settings, its SQL and
 * protocol-level prepared statements), so that the successor's clients find
 * their statements prepared and PostgreSQL sees no second set of
 * connections. Not one with TLS (its session keys), nor a replication or
 * listening connection, nor one a cancel or a query of pgring's is still on
 * its way to. */
static bool server_movable(const struct server *sv)
{
	return sv->state == SV_IDLE && !sv->conn.tls && !sv->replication && !sv->listener && server_quiet(sv);
}

bool upgrade_pack_server(const struct server *sv, uint64_t now_us, struct strbuf *sb)
{
	const struct pool *p = sv->pool;
	put(sb, SREC_MAGIC, 4);
	put_u(sb, SREC_VERSION, 1);
	put_str(sb, p->db_name);
	put_str(sb, p->user);
	put_str(sb, p->shared->nodeinfo ? p->shared->nodeinfo->cluster : "");
	put_str(sb, p->shared->nodeinfo ? p->shared->nodeinfo->node : "");
	put_u(sb, sv->backend_pid, 4);
	put_u(sb, sv->backend_key, 4);
	put_u(sb, now_us > sv->connect_us ? now_us - sv->connect_us : 0, 8);
	put_bytes(sb, &sv->addr, sv->addrlen);
	put_params(sb, &sv->params);
	put_params(sb, &sv->sqlprep);
	/* each statement's digest (its server-side name), and whether the copy's
	 * age is known: one of unknown age is prepared again before its use */
	uint32_t n = 0;
	for (uint32_t i = 0; i < sv->stmts.cap; i++)
		n += sv->stmts.slot[i].used != 0;
	put_u(sb, n, 4);
	for (uint32_t i = 0; i < sv->stmts.cap; i++) {
		if (!sv->stmts.slot[i].used)
			continue;
		put(sb, sv->stmts.slot[i].digest, STMT_DIGEST_LEN);
		put_u(sb, sv->stmts.slot[i].gen != STMT_GEN_UNKNOWN, 1);
	}
	return !sb->failed && sb->len <= TAKEOVER_REC_MAX;
}

/* A pool's clients that stay here (TLS, pinned, ...) keep using its idle
 * servers: those stay too (moving them would make each of those clients'
 * transactions open a new one), and are closed once the pool's last client
 * is gone (close_unused_servers). Marked at each tick. */
static void mark_pools_kept(struct shard *s)
{
	struct pool_shard *ps = pool_shard(s);
	for (struct pool *p = ps->pools; p; p = p->next)
		p->upgrade_keep = false;
	struct client *cl, *next;
	const char *why;
	list_for_each_safe(&ps->clients, cl, next, all)
		if (cl->pool && cl->state != CL_CLOSED && (cl->upgrade_told || upgrade_fit(cl, &why) == UPGRADE_STAYS))
			cl->pool->upgrade_keep = true;
}

static void hand_over_idle_servers(struct shard *s)
{
	for (struct pool *p = pool_shard(s)->pools; p; p = p->next) {
		if (p->upgrade_keep)
			continue;
		struct server *sv, *next;
		list_for_each_safe(&p->idle, sv, next, link) {
			if (!server_movable(sv))
				continue;
			/* off the idle list, so no client gets it while it parks */
			server_set_state(sv, SV_MIGRATING);
			sv->upgrade_moving = true;
			conn_park(&sv->conn);   /* upgrade_server_parked, at once or from the loop */
		}
	}
}

/* Idle servers that cannot move (TLS, ...) are kept while a client of their
 * pool is still here to use them, then closed: the successor opens its own. */
static void close_unused_servers(struct shard *s)
{
	struct pool_shard *ps = pool_shard(s);
	for (struct pool *p = ps->pools; p; p = p->next) {
		if (!p->n_idle)
			continue;
		bool wanted = false;
		struct client *cl, *next;
		list_for_each_safe(&ps->clients, cl, next, all)
			if (cl->pool == p && cl->state != CL_CLOSED) {
				wanted = true;
				break;
			}
		if (wanted)
			continue;
		struct server *sv, *nsv;
		list_for_each_safe(&p->idle, sv, nsv, link)
			server_close(sv, "handed over: the successor serves this pool");
	}
}

/* Its socket is the control thread's to send and close now: it goes
 * without a Terminate, and without a word to its session's client. */
static void server_gone_over(struct server *sv)
{
	sv->conn.fd = -1;
	stat_add(&sv->conn.shard->stats->servers_handed_over, 1);
	/* with no socket and no I/O, closing frees it at once: held, so that
	 * server_close can finish reading it */
	conn_hold(&sv->conn);
	server_close(sv, NULL);
	conn_unhold(&sv->conn);
}

static void send_pair(struct client *cl);
static void group_settle(struct shard *s, struct pool *p);

void upgrade_server_parked(struct server *sv)
{
	struct shard *s = sv->conn.shard;
	if (sv->listener) {
		group_settle(s, sv->pool);   /* it moves with its clients */
		return;
	}
	sv->upgrade_moving = false;
	if (sv->lease) {
		/* a session's own server: it goes with its client */
		struct client *cl = sv->lease->client;
		if (cl->upgrade_pairing && !cl->upgrade_moving)
			send_pair(cl);
		else if (!cl->upgrade_pairing)
			conn_recv_on(&sv->conn);
		return;
	}
	if (sv->state != SV_MIGRATING)
		return;   /* closed meanwhile */
	/* bytes that came while it parked (a notice, a FATAL) are read here first */
	bool fits = s->handing_over && server_quiet(sv);
	struct strbuf sb = STRBUF_INIT;
	struct takeover_rec *rec = NULL;
	if (fits && upgrade_pack_server(sv, s->now_us, &sb) &&
	    (rec = takeover_rec_new(sb.buf, (uint32_t)sb.len, sv->conn.fd)) && control_call(s->id, handover_send_server, rec)) {
		/* the socket is the control thread's to send and close now: no
		 * Terminate goes out on it */
		LOGF(LOG_INFO, sv->conn.id, "idle server connection handed over to the new process: %s/%s, backend %u, "
		     "%u prepared statements", sv->pool->db_name, sv->pool->user, sv->backend_pid, sv->stmts.n);
		strbuf_free(&sb);
		server_gone_over(sv);
		return;
	}
	if (rec) {
		rec->fd = -1;   /* the server keeps its socket */
		takeover_rec_free(rec);
	}
	strbuf_free(&sb);
	server_set_state(sv, SV_RESETTING);
	conn_recv_on(&sv->conn);
	pool_server_ready(sv);   /* tried again at the next tick if still idle */
}

/* ---- clients ---- */

static void try_move(struct client *cl)
{
	const char *why;
	if (cl->upgrade_moving || cl->upgrade_told || cl->migrating)
		return;   /* (a client parked for another shard is tried once it is back) */
	switch (upgrade_fit(cl, &why)) {
	case UPGRADE_MOVES:
		if (cl->lease && cl->lease->server) {
			/* it and its server park; the second to be parked sends both */
			struct server *sv = cl->lease->server;
			cl->upgrade_pairing = true;
			sv->upgrade_moving = true;
			cl->upgrade_moving = true;
			conn_park(&sv->conn);
			conn_park(&cl->conn);
			break;
		}
		cl->upgrade_moving = true;
		conn_park(&cl->conn);   /* upgrade_client_parked, at once or from the loop */
		break;
	case UPGRADE_WITH_LISTENER:
		break;   /* its pool's listener takes it along (move_listeners) */
	case UPGRADE_STAYS:
		cl->upgrade_told = true;
		LOGF(LOG_NOTICE, cl->conn.id, "not handed over: %s; it is served here until it leaves", why);
		break;
	case UPGRADE_NOT_YET:
		break;
	}
}

/* ---- a pool's LISTEN connection and its clients, together ----
 *
 * In transaction pooling one connection per pool and shard LISTENs for the
 * clients (pool/listen.h). It moves with every client it listens for, all at
 * rest at once, in one GROUP: a notification is then either read here before
 * they go (and delivered here, before their sockets go), or left in its
 * socket for the successor, whose clients are subscribed before it reads: none
 * is lost, none comes twice. */

static bool listening_here(const struct client *cl, const struct pool *p)
{
	return cl->pool == p && cl->state != CL_CLOSED && !cl->conn.closing && cl->sess && cl->sess->listen.n;
}

/* Park the pool's listener and its clients if every one of them can move now. */
static void group_start(struct shard *s, struct pool *p)
{
	struct server *sv = listen_server(p);
	if (p->upgrade_group || !sv || sv->upgrade_moving || !server_quiet(sv))
		return;
	struct pool_shard *ps = pool_shard(s);
	struct client *cl, *next;
	const char *why;
	uint32_t n = 0;
	list_for_each_safe(&ps->clients, cl, next, all) {
		if (!listening_here(cl, p))
			continue;
		if (cl->upgrade_moving || upgrade_fit(cl, &why) != UPGRADE_WITH_LISTENER)
			return;   /* one busy, or one that stays (then the listener stays for it) */
		n++;
	}
	if (!n)
		return;
	sv->upgrade_moving = true;
	list_for_each_safe(&ps->clients, cl, next, all) {
		if (!listening_here(cl, p))
			continue;
		cl->upgrade_grouped = cl->upgrade_moving = true;
		conn_park(&cl->conn);   /* upgrade_client_parked, at once or from the loop */
	}
	conn_park(&sv->conn);
	/* only now: a member parked at once must not find the rest unparked */
	p->upgrade_group = true;
	group_settle(s, p);
}

/* The group's members are back to serving here, tried again at the next tick. */
static void group_back(struct shard *s, struct pool *p, struct server *sv)
{
	struct client *cl, *next;
	list_for_each_safe(&pool_shard(s)->clients, cl, next, all) {
		if (cl->pool != p || !cl->upgrade_grouped)
			continue;
		cl->upgrade_grouped = cl->upgrade_moving = false;
		if (cl->state != CL_CLOSED)
			conn_recv_on(&cl->conn);
	}
	if (sv) {
		sv->upgrade_moving = false;
		conn_recv_on(&sv->conn);
	}
}

/* Everyone parked: the group's record (count, channels, the listener's
 * record), then a record per client, in one hand-over; or all back to work
 * here if anything changed meanwhile (a notification queued for a client, a
 * new subscriber, a LISTEN on its way to the listener). */
static void group_send(struct shard *s, struct pool *p, struct server *sv)
{
	p->upgrade_group = false;
	struct pool_shard *ps = pool_shard(s);
	struct client *cl, *next;
	const char *why;
	bool fits = s->handing_over && sv && sv == listen_server(p) && server_quiet(sv);
	uint32_t n = 0;
	struct params channels = { 0 };
	list_for_each_safe(&ps->clients, cl, next, all) {
		if (!fits || !listening_here(cl, p))
			continue;
		if (!cl->upgrade_grouped || upgrade_fit(cl, &why) != UPGRADE_WITH_LISTENER || conn_has_output(&cl->conn))
			fits = false;
		for (int i = 0; fits && i < cl->sess->listen.n; i++)
			fits = params_set(&channels, cl->sess->listen.v[i].name, "");
		n++;
	}
	struct strbuf gb = STRBUF_INIT, cb = STRBUF_INIT;
	struct takeover_rec *head = NULL, **tail = NULL;
	if (fits && n) {
		put(&gb, GREC_MAGIC, 4);
		put_u(&gb, n, 4);
		put_params(&gb, &channels);
		if (upgrade_pack_server(sv, s->now_us, &gb) && (head = takeover_rec_new(gb.buf, (uint32_t)gb.len, sv->conn.fd)))
			tail = &head->next;
	}
	list_for_each_safe(&ps->clients, cl, next, all) {
		if (!tail || !listening_here(cl, p))
			continue;
		strbuf_reset(&cb);
		if (!upgrade_pack(cl, s->now_us, &cb) || !(*tail = takeover_rec_new(cb.buf, (uint32_t)cb.len, cl->conn.fd)))
			tail = NULL;
		else
			tail = &(*tail)->next;
	}
	params_clear(&channels);
	strbuf_free(&gb);
	strbuf_free(&cb);
	if (!tail || !control_call(s->id, handover_send_group, head)) {
		/* the sockets stay theirs */
		for (struct takeover_rec *r = head; r; r = r->next)
			r->fd = -1;
		takeover_rec_free(head);
		group_back(s, p, sv ? sv : listen_connection(p));
		return;
	}
	/* every socket is the control thread's to send and close now */
	LOGF(LOG_NOTICE, sv->conn.id, "LISTEN connection handed over to the new process with its %u clients: %s/%s, "
	     "backend %u", n, p->db_name, p->user, sv->backend_pid);
	listen_detach(p);
	server_gone_over(sv);
	list_for_each_safe(&ps->clients, cl, next, all) {
		if (!cl->upgrade_grouped || cl->pool != p)
			continue;
		cl->upgrade_grouped = cl->upgrade_moving = false;
		if (!listening_here(cl, p))
			continue;   /* closed meanwhile: it was not in the group */
		cl->conn.fd = -1;
		stat_add(&s->stats->handed_over, 1);
		LOGF(LOG_INFO, cl->conn.id, "handed over to the new process with its pool's LISTEN connection: user=%s "
		     "database=%s", cl->user, cl->database);
		client_close_quietly(cl, "handed over");
	}
}

/* A member parked (or went): the group goes once none is still parking. */
static void group_settle(struct shard *s, struct pool *p)
{
	if (!p->upgrade_group)
		return;
	struct server *sv = listen_connection(p);
	if (sv && !sv->upgrade_moving)
		sv = NULL;   /* a new one: the one parked was lost */
	if (sv && sv->conn.parking)
		return;
	struct client *cl, *next;
	list_for_each_safe(&pool_shard(s)->clients, cl, next, all)
		if (cl->pool == p && cl->upgrade_grouped && cl->conn.parking && !cl->conn.closing)
			return;
	group_send(s, p, sv);
}

static void move_listeners(struct shard *s)
{
	for (struct pool *p = pool_shard(s)->pools; p; p = p->next) {
		if (p->upgrade_group)
			group_settle(s, p);   /* one that closed while parking parks no more */
		else if (listen_pooled(p))
			group_start(s, p);
	}
}

void upgrade_batch_end(struct shard *s)
{
	struct pool_shard *ps = pool_shard(s);
	struct client *cl;
	while ((cl = list_first(&ps->upgrade_due, struct client, wait))) {
		list_del(&cl->wait);
		try_move(cl);
	}
	/* the servers those clients released go with them */
	hand_over_idle_servers(s);
}

bool upgrade_shard_step(struct shard *s)
{
	struct pool_shard *ps = pool_shard(s);
	struct client *cl, *next;
	/* the idle servers first: the successor had better have them before
	 * the clients that need them arrive and make it open its own */
	mark_pools_kept(s);
	hand_over_idle_servers(s);
	/* every tick too: the clients at rest since before the hand-over began */
	list_for_each_safe(&ps->clients, cl, next, all)
		try_move(cl);
	move_listeners(s);
	close_unused_servers(s);
	return list_empty(&ps->clients) && pool_active_servers(s) == 0;
}

/* A session-pooled client and its server, both parked: both go in one
 * hand-over (its server's record first), or both go on here. */
static void send_pair(struct client *cl)
{
	struct shard *s = cl->conn.shard;
	struct lease *l = cl->lease;
	struct server *sv = l ? l->server : NULL;
	const char *why;
	cl->upgrade_pairing = false;
	bool fits = s->handing_over && sv && upgrade_fit(cl, &why) == UPGRADE_MOVES && !conn_has_output(&cl->conn);
	struct strbuf cb = STRBUF_INIT, sb = STRBUF_INIT;
	struct takeover_rec *rec = NULL;
	if (fits && upgrade_pack(cl, s->now_us, &cb) && upgrade_pack_server(sv, s->now_us, &sb) &&
	    (rec = takeover_rec_new(cb.buf, (uint32_t)cb.len, cl->conn.fd)) &&
	    (rec->pair = takeover_rec_new(sb.buf, (uint32_t)sb.len, sv->conn.fd)) &&
	    control_call(s->id, handover_send_client, rec)) {
		/* both sockets are the control thread's to send and close now */
		LOGF(LOG_INFO, cl->conn.id, "handed over to the new process with its server (backend %u): user=%s "
		     "database=%s", sv->backend_pid, cl->user, cl->database);
		cl->conn.fd = -1;
		stat_add(&s->stats->handed_over, 1);
		strbuf_free(&cb);
		strbuf_free(&sb);
		server_gone_over(lease_give_up_server(l));
		client_close_quietly(cl, "handed over");
		return;
	}
	if (rec) {
		rec->fd = -1;   /* the sockets stay theirs */
		if (rec->pair)
			rec->pair->fd = -1;
		takeover_rec_free(rec);
	}
	strbuf_free(&cb);
	strbuf_free(&sb);
	if (sv)
		conn_recv_on(&sv->conn);
	conn_recv_on(&cl->conn);   /* they go on here: busy again, or not movable; tried again at rest */
}

void upgrade_client_parked(struct client *cl)
{
	struct shard *s = cl->conn.shard;
	const char *why;
	if (cl->upgrade_grouped) {
		group_settle(s, cl->pool);   /* it moves with its pool's LISTEN connection */
		return;
	}
	cl->upgrade_moving = false;
	if (cl->state == CL_CLOSED)
		return;
	if (cl->upgrade_pairing) {
		struct server *sv = cl->lease ? cl->lease->server : NULL;
		if (!sv || !sv->upgrade_moving)
			send_pair(cl);   /* else its server's parking sends both */
		return;
	}
	enum upgrade_fit fit = s->handing_over ? upgrade_fit(cl, &why) : UPGRADE_NOT_YET;
	if (fit == UPGRADE_MOVES && conn_has_output(&cl->conn))
		fit = UPGRADE_NOT_YET;   /* bytes of ours still queued: it moves at its next rest */
	struct strbuf sb = STRBUF_INIT;
	struct takeover_rec *rec = NULL;
	if (fit == UPGRADE_MOVES) {
		if (!upgrade_pack(cl, s->now_us, &sb)) {
			cl->upgrade_told = true;   /* never tried again: it stays */
			LOGF(LOG_NOTICE, cl->conn.id, "not handed over: its session record is over %d bytes; it is "
			     "served here until it leaves", TAKEOVER_REC_MAX);
		} else if ((rec = takeover_rec_new(sb.buf, (uint32_t)sb.len, cl->conn.fd)) &&
			   control_call(s->id, handover_send_client, rec)) {
			/* the socket is the control thread's to send and close now */
			cl->conn.fd = -1;
			stat_add(&s->stats->handed_over, 1);
			LOGF(LOG_INFO, cl->conn.id, "handed over to the new process: user=%s database=%s "
			     "(%u prepared statements)", cl->user, cl->database, cl->sess ? cl->sess->stmts.n : 0);
			strbuf_free(&sb);
			client_close_quietly(cl, "handed over");
			return;
		} else if (rec) {
			rec->fd = -1;   /* not ours to close: the client keeps it; tried again next tick */
			takeover_rec_free(rec);
		}
	}
	strbuf_free(&sb);
	conn_recv_on(&cl->conn);   /* it goes on here: busy again, or not movable */
}

/* ---- the new process ---- */

bool upgrade_unpack_server(const uint8_t *p, size_t n, struct server_record *sr, struct upgrade_server_ids *ids)
{
	struct rd rd = { p, n, false };
	memset(sr, 0, sizeof *sr);
	memset(ids, 0, sizeof *ids);
	const uint8_t *magic = take(&rd, 4);
	if (!magic || memcmp(magic, SREC_MAGIC, 4) != 0 || get_u(&rd, 1) != SREC_VERSION)
		return false;
	ids->db = get_str(&rd);
	ids->user = ids->db ? get_str(&rd) : NULL;
	ids->cluster = ids->user ? get_str(&rd) : NULL;
	ids->node = ids->cluster ? get_str(&rd) : NULL;
	sr->backend_pid = (uint32_t)get_u(&rd, 4);
	sr->backend_key = (uint32_t)get_u(&rd, 4);
	sr->age_us = get_u(&rd, 8);
	uint32_t alen = 0;
	const uint8_t *addr = get_bytes(&rd, &alen, sizeof sr->addr);
	if (addr) {
		memcpy(&sr->addr, addr, alen);
		sr->addrlen = alen;
	}
	get_params(&rd, &sr->params);
	get_params(&rd, &sr->sqlprep);
	uint64_t k = get_u(&rd, 4);
	sr->digests = k <= TAKEOVER_REC_MAX ? take(&rd, k * (STMT_DIGEST_LEN + 1)) : NULL;
	sr->ndigests = (uint32_t)k;
	for (uint64_t i = 0; sr->digests && i < k; i++)
		if (sr->digests[i * (STMT_DIGEST_LEN + 1) + STMT_DIGEST_LEN] > 1)
			rd.bad = true;   /* the flag is 0 or 1 */
	return ids->node && sr->digests && !rd.bad && rd.n == 0 && *ids->db && *ids->user &&
	       !*ids->cluster == !*ids->node && sr->addrlen > 0;
}

void upgrade_server_release(struct server_record *sr, struct upgrade_server_ids *ids)
{
	params_clear(&sr->params);
	params_clear(&sr->sqlprep);
	free(ids->db);
	free(ids->user);
	free(ids->cluster);
	free(ids->node);
	memset(ids, 0, sizeof *ids);
}

/* An idle server's record: its pool (database, user, cluster node) here,
 * where it joins the idle list if the pool has room and its entry still
 * points where the connection goes. */
static void server_in(struct shard *s, struct takeover_rec *r)
{
	struct server_record sr;
	struct upgrade_server_ids ids;
	const char *why = "a malformed record";
	struct pool *p = NULL;
	if (upgrade_unpack_server(r->data, r->len, &sr, &ids)) {
		struct node_shared *ni = *ids.cluster ? registry_node(ids.cluster, ids.node) : NULL;
		p = ni || !*ids.cluster ? pool_find(s, ids.db, ids.user, ni, true) : NULL;
		why = "its database, user or node is not configured here";
	}
	if (p && server_adopt(p, r->fd, &sr, NULL, &why)) {
		stat_add(&s->stats->servers_taken_over, 1);
	} else {
		LOGF(LOG_NOTICE, 0, "upgrade: an idle server connection of the predecessor (%s/%s, backend %u) is closed: %s",
		     ids.db ? ids.db : "?", ids.user ? ids.user : "?", sr.backend_pid, why);
		if (!p)
			close(r->fd);   /* server_adopt closes it when it refuses */
	}
	r->fd = -1;
	upgrade_server_release(&sr, &ids);
	takeover_rec_free(r);
}

/* A pool's LISTEN connection with the clients it listens for: the clients are
 * subscribed before it reads anything (what waits in its socket reaches them
 * all). Without it (the pool has its own already, its entry changed), they
 * listen through the pool's own and are told that notifications sent while
 * they moved may have been missed. */
static void group_in(struct shard *s, struct takeover_rec *g)
{
	struct rd rd = { g->data + 4, g->len - 4, false };
	struct params channels = { 0 };
	get_u(&rd, 4);   /* the client count: the control thread gathered them */
	get_params(&rd, &channels);
	struct server_record sr;
	struct upgrade_server_ids ids;
	struct pool *p = NULL;
	struct server *sv = NULL;
	const char *why = "a malformed record";
	if (!rd.bad && upgrade_unpack_server(rd.p, rd.n, &sr, &ids)) {
		struct node_shared *ni = *ids.cluster ? registry_node(ids.cluster, ids.node) : NULL;
		p = ni || !*ids.cluster ? pool_find(s, ids.db, ids.user, ni, true) : NULL;
		why = "its database, user or node is not configured here";
		if (p && !listen_pooled(p)) {
			why = "the pool no longer keeps LISTEN for its clients";
			p = NULL;
		} else if (p && listen_connection(p)) {
			why = "the pool has a LISTEN connection of its own already";
			p = NULL;
		}
	}
	if (p && (sv = server_adopt_listener(p, g->fd, &sr, &why))) {
		listen_adopt(p, sv);
		stat_add(&s->stats->servers_taken_over, 1);
	}
	else if (!p)
		close(g->fd);   /* server_adopt_listener closes it when it refuses */
	g->fd = -1;
	if (!sv)
		LOGF(LOG_NOTICE, 0, "upgrade: a LISTEN server connection of the predecessor (%s/%s, backend %u) is closed: %s; "
		     "its clients listen through this process's own", ids.db ? ids.db : "?", ids.user ? ids.user : "?",
		     sr.backend_pid, why);
	upgrade_server_release(&sr, &ids);
	for (struct takeover_rec *r = g->next; r; r = r->next) {
		int fd = r->fd;
		r->fd = -1;
		struct client *cl = client_move_in(s, fd, r->data, r->len, NULL, false);
		if (cl && !sv)
			listen_warn(cl, "pgring was upgraded: notifications sent while this connection moved to the new "
				    "process may have been missed");
	}
	if (sv) {
		listen_adopted(p, &channels);
		if (listen_connection(p) == sv)
			conn_recv_on(&sv->conn);   /* what waited in its socket reaches every client */
	}
	params_clear(&channels);
	takeover_rec_free(g);
}

/* The cancel key names the shard that owns the client (pool/client.c): a
 * record is adopted there, so that cancel requests with the key the client
 * already has still find it. With fewer shards than the key names, it stays
 * where it landed (such a client's cancel requests are not found).
 * An idle server's record may land anywhere. */
void upgrade_adopt(struct shard *s, void *arg)
{
	struct takeover_rec *r = arg;
	if (r->len >= 4 && memcmp(r->data, SREC_MAGIC, 4) == 0) {
		server_in(s, r);   /* any shard will do: the pool's budget is process-wide */
		return;
	}
	/* a group goes where its clients' keys say, as a client does */
	bool grouped = r->len >= 4 && memcmp(r->data, GREC_MAGIC, 4) == 0;
	const struct takeover_rec *keyed = grouped ? r->next : r;
	uint32_t secret;
	int bits = 0;
	while ((1 << bits) < s->nshards)
		bits++;
	if (bits && keyed && upgrade_peek_secret(keyed->data, keyed->len, &secret)) {
		int owner = (int)(secret >> (32 - bits));
		if (owner != s->id && owner < s->nshards) {
			struct shard_msg m = { .type = SHARD_MSG_ADOPT, .ptr = r };
			if (shard_post(s->id, owner, &m))
				return;
		}
	}
	if (grouped) {
		group_in(s, r);
		return;
	}
	int fd = r->fd;
	r->fd = -1;
	client_move_in(s, fd, r->data, r->len, r->pair, false);
	takeover_rec_free(r);
}
