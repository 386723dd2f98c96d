/* pool/client.c: a client connection from accept to close: startup packet,
 * authentication, the login welcome; then its framer frames each request once
 * and hands it to the client's lease (pool/lease.c). What it is told itself
 * (errors, the emulated failed block after its server died) is said here.
 * Failing a client marks it; it is closed at the end of the completion batch. */
#include <ctype.h>
#include <pwd.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/balance.h"
#include "core/config.h"
#include "core/control/authq.h"
#include "core/control/control.h"
#include "core/hba.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/shard.h"
#include "core/takeover.h"
#include "pool/admin.h"
#include "pool/client.h"
#include "pool/lease.h"
#include "pool/listen.h"
#include "pool/migrate.h"
#include "pool/peer.h"
#include "pool/pool.h"
#include "pool/repl.h"
#include "pool/route.h"
#include "pool/server.h"
#include "pool/session.h"
#include "pool/upgrade.h"
#include "tls/tls.h"

/* Clients of all shards, for max_client_conn. */
static _Atomic int total_clients;

int client_total(void) { return atomic_load(&total_clients); }

#define KEY_BUCKETS 4096   /* per shard; chains are short at any realistic count */
struct client_keys {
	struct client *bucket[KEY_BUCKETS];
};

static const struct proto_frame_ops client_ops;
static const struct conn_ops client_conn_ops;

#define CLOSE_DRAIN_US 5000000   /* how long a closing client may take to read our last bytes */

/* ---- small helpers ---- */

static struct shard *shard_of(struct client *cl) { return cl->conn.shard; }

static gauge_t *state_gauge(struct stats_pool *ps, enum client_state st)
{
	switch (st) {
	case CL_LOGIN_WAIT: return &ps->cl_login;
	case CL_IDLE: return &ps->cl_idle;
	case CL_WAITING:
	case CL_THROTTLED:
	case CL_ROUTING: return &ps->cl_waiting;
	case CL_ACTIVE: return &ps->cl_active;
	case CL_REPL: return &ps->cl_replication;
	default: return NULL;
	}
}

/* The list a client in state st is on. */
static struct list *list_of(struct client *cl, enum client_state st)
{
	switch (st) {
	case CL_STARTUP:
	case CL_AUTH:
	case CL_AUTHQ: return &pool_shard(shard_of(cl))->prelogin;
	case CL_LOGIN_WAIT: return &cl->pool->login;
	case CL_WAITING: return &cl->pool->waiting;
	case CL_ROUTING: return &pool_shard(shard_of(cl))->routing;
	case CL_CLOSED: return &pool_shard(shard_of(cl))->closing;
	case CL_CANCEL: return &pool_shard(shard_of(cl))->cancel_waits;
	default: return NULL;
	}
}

static void leave_list(struct client *cl)
{
	if (!list_linked(&cl->wait))
		return;
	if (cl->state == CL_THROTTLED) {
		admit_dequeue(cl);
		return;
	}
	list_del(&cl->wait);
	if (cl->state == CL_WAITING) {
		cl->pool->n_waiting--;
		atomic_fetch_sub(&cl->pool->shared->waiting, 1);
		pool_waiting_head(cl->pool);
	} else if (cl->state == CL_LOGIN_WAIT) {
		pool_sync_login_demand(cl->pool);
	} else if (cl->state == CL_STARTUP || cl->state == CL_AUTH || cl->state == CL_AUTHQ) {
		pool_shard(shard_of(cl))->n_prelogin--;
		gauge_add(&shard_of(cl)->stats->logging_in, -1);
	}
}

static void enter_list(struct client *cl)
{
	if (cl->state == CL_THROTTLED) {
		admit_enqueue(cl);
		return;
	}
	struct list *l = list_of(cl, cl->state);
	if (!l)
		return;
	list_append(l, &cl->wait);
	if (cl->state == CL_WAITING) {
		cl->pool->n_waiting++;
		atomic_fetch_add(&cl->pool->shared->waiting, 1);
	} else if (cl->state == CL_LOGIN_WAIT) {
		pool_sync_login_demand(cl->pool);
	} else if (cl->state == CL_STARTUP || cl->state == CL_AUTH || cl->state == CL_AUTHQ) {
		pool_shard(shard_of(cl))->n_prelogin++;
		gauge_add(&shard_of(cl)->stats->logging_in, 1);
	}
	if ((cl->state == CL_WAITING || cl->state == CL_ROUTING) && !cl->wait_start_us)
		cl->wait_start_us = shard_of(cl)->now_us;   /* kept while it is routed anew */
	if (cl->state == CL_WAITING)
		pool_waiting_head(cl->pool);
}

static void drop_held_cancel(struct client *cl);

/* A client whose request waits to run on a server (held there, not yet sent):
 * a cancel request for it is held until the request runs. */
static bool request_waits(enum client_state st)
{
	return st == CL_WAITING || st == CL_ROUTING || st == CL_THROTTLED;
}

void client_set_state(struct client *cl, enum client_state st)
{
	INVARIANT(st != CL_ACTIVE || (cl->lease && cl->lease->server));
	INVARIANT(st != CL_WAITING || cl->lease);
	if (cl->cancel_held && !request_waits(st) && st != CL_ACTIVE)
		drop_held_cancel(cl);   /* its request ended without running (failed, closed) */
	leave_list(cl);
	if (cl->pool) {
		gauge_t *old = state_gauge(cl->pool->stats, cl->state), *new = state_gauge(cl->pool->stats, st);
		if (old)
			gauge_add(old, -1);
		if (new)
			gauge_add(new, 1);
	}
	cl->state = st;
	cl->state_us = shard_of(cl)->now_us;
	enter_list(cl);
	if (st == CL_IDLE && shard_of(cl)->handing_over && !cl->upgrade_told)
		list_append(&pool_shard(shard_of(cl))->upgrade_due, &cl->wait);   /* moves at the batch's end */
	if (st == CL_IDLE && (cl->nq || cl->nq_lost))
		listen_flush(cl);   /* notifications that waited for its transaction to end */
}

/* Routing moved the client to another node's pool of the same (database,
 * user): its gauges go along, and a waiting client its place in line. */
void client_set_pool(struct client *cl, struct pool *p)
{
	bool listed = list_linked(&cl->wait) && (cl->state == CL_WAITING || cl->state == CL_LOGIN_WAIT);
	if (listed)
		leave_list(cl);
	gauge_t *g = cl->pool ? state_gauge(cl->pool->stats, cl->state) : NULL;
	if (g)
		gauge_add(g, -1);
	if ((g = state_gauge(p->stats, cl->state)))
		gauge_add(g, 1);
	INVARIANT(!cl->limits_counted || (cl->pool->shared->db_limit == p->shared->db_limit &&
					  cl->pool->shared->user_limit == p->shared->user_limit));
	if (cl->pins && cl->pool) {
		gauge_add(&cl->pool->stats->cl_pinned, -1);
		gauge_add(&p->stats->cl_pinned, 1);
	}
	cl->pool = p;
	if (listed)
		enter_list(cl);
}

static void send_out(struct client *cl, struct proto_out *o)
{
	if (!conn_queue_out(&cl->conn, o))
		LOGF(LOG_WARNING, cl->conn.id, "cannot queue a message for the client (out of memory)");
}

static void close_later(struct client *cl);

/* A server's message to the client is part way out: nothing may go between. */
static bool mid_reply(const struct client *cl)
{
	return cl->lease && cl->lease->server && cl->lease->reply_passing && cl->lease->reply_left;
}

/* Send an error and close. */
void client_fail(struct client *cl, const char *sqlstate, const char *fmt, ...)
{
	if (cl->state == CL_CLOSED)
		return;
	if (cl->state == CL_CANCEL) {
		close_later(cl);   /* as PostgreSQL: a cancel connection is told nothing */
		return;
	}
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	uint8_t mem[700];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	proto_error(&o, "FATAL", sqlstate, "%s", msg);
	/* a client that has its session server's FATAL already gets nothing more:
	 * a direct connection ends there; one in the middle of a server's message
	 * gets it after that message */
	if (!cl->conn.eof && !cl->server_fatal_relayed) {
		if (!mid_reply(cl))
			send_out(cl, &o);
		else if (!o.overflow && client_extra(cl) && (cl->extra->fatal_deferred = malloc(o.len))) {
			memcpy(cl->extra->fatal_deferred, o.p, o.len);
			cl->extra->fatal_deferred_len = (uint32_t)o.len;
		}
	}
	LOGF(LOG_INFO, cl->conn.id, "closing client: %s (%s)", msg, sqlstate);
	close_later(cl);
}

/* Which shard owns a cancel key: its secret's top bits, so that a key whose
 * PID is a server's (session pooling) routes as well as pgring's own. */
static int key_shard_bits(int nshards)
{
	int bits = 0;
	while ((1 << bits) < nshards)
		bits++;
	return bits;
}

static uint32_t key_secret_for(int shard, int nshards)
{
	uint32_t secret;
	auth_random(&secret, sizeof secret);
	int bits = key_shard_bits(nshards);
	return bits ? (secret >> bits) | ((uint32_t)shard << (32 - bits)) : secret;
}

static int key_owner(uint32_t secret, int nshards)
{
	int bits = key_shard_bits(nshards);
	return bits ? (int)(secret >> (32 - bits)) : 0;
}

static void share_names(struct client *cl, struct pool *p);
static void close_later(struct client *cl);

/* A cancel for shard `to` (the key's owner, or the next one asked): hops
 * shards asked before. If it cannot go, w is answered here. */
static void pass_cancel(struct shard *s, int to, uint32_t pid, uint32_t key, const uint8_t *tail,
			const struct pool_cancel_waiter *w, int hops)
{
	struct pool_cancel_ask *ask = malloc(sizeof *ask);
	if (ask) {
		ask->waiter = *w;
		ask->long_key = tail != NULL;
		ask->hops = (uint8_t)hops;
		if (tail)
			memcpy(ask->tail, tail, sizeof ask->tail);
	}
	struct shard_msg m = { .type = POOL_MSG_CANCEL, .a = pid, .b = key, .ptr = ask };
	if (!ask || !shard_post(s->id, to, &m)) {
		LOGF(LOG_WARNING, 0, "cannot pass a cancel request to shard %d (%s)", to,
		     ask ? "its queue is full" : "out of memory");
		free(ask);
		client_cancel_answer(s, w);
	}
}

static void key_link(struct client *cl)
{
	struct pool_shard *ps = pool_shard(shard_of(cl));
	if (!ps->keys && !(ps->keys = calloc(1, sizeof *ps->keys)))
		return;
	struct client **b = &ps->keys->bucket[cl->key_pid % KEY_BUCKETS];
	cl->next_key = *b;
	*b = cl;
}

static void key_unlink(struct client *cl)
{
	struct pool_shard *ps = pool_shard(shard_of(cl));
	if (!ps->keys || !cl->key_pid)
		return;
	for (struct client **p = &ps->keys->bucket[cl->key_pid % KEY_BUCKETS]; *p; p = &(*p)->next_key) {
		if (*p == cl) {
			*p = cl->next_key;
			return;
		}
	}
}

/* ---- before login: a connection must not be cheap to hold ----
 * A connection that has not logged in costs a descriptor and nothing else
 * the client has to earn, so they are bounded: by time (the startup packet
 * within client_startup_timeout), by number (max_client_logins: the least
 * advanced goes for a new one), by source address (max_client_logins_per_addr:
 * a new one is refused), and near the descriptor ceiling the least advanced
 * goes rather than a new client being refused. */

static void peer_address(struct client *cl, int fd, bool is_unix)
{
	if (is_unix) {
		cl->addr_family = AF_UNIX;   /* all local connections are one address */
		return;
	}
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getpeername(fd, (struct sockaddr *)&ss, &len))
		return;
	if (ss.ss_family == AF_INET6) {
		memcpy(cl->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
	} else if (ss.ss_family == AF_INET) {
		cl->addr[10] = cl->addr[11] = 0xff;   /* ::ffff:a.b.c.d */
		memcpy(cl->addr + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	} else {
		return;
	}
	cl->addr_family = AF_INET6;
}

static int same_address_logging_in(const struct client *cl)
{
	struct pool_shard *ps = pool_shard(cl->conn.shard);
	int n = 0;
	const struct client *o, *next;
	list_for_each_safe(&ps->prelogin, o, next, wait)
		if (o != cl && o->addr_family == cl->addr_family && memcmp(o->addr, cl->addr, 16) == 0)
			n++;
	return n;
}

static void report_prelogin(struct shard *s, int add)
{
	struct pool_shard *ps = pool_shard(s);
	int n = log_rate_due(&ps->prelogin_log, s->now_us, add);
	if (n)
		log_warning("closed or refused %d connection%s before login (client_startup_timeout, max_client_logins, "
			    "max_client_logins_per_addr or the descriptor ceiling)", n, n == 1 ? "" : "s");
}

static int shard_share(const struct shard *s, int limit) { return balance_share(s->id, s->nshards, limit); }

/* A connection still not logged in after this long is no client in a hurry
 * (a real login takes milliseconds): it is the one to close for a new one. */
#define PRELOGIN_STALE_US 1000000

/* Close the connection that has been logging in longest, if it is stale. */
static bool evict_stale(struct shard *s)
{
	struct client *oldest = list_first(&pool_shard(s)->prelogin, struct client, wait);
	if (!oldest || s->now_us - oldest->connect_us <= PRELOGIN_STALE_US)
		return false;
	report_prelogin(s, 1);
	client_fail(oldest, "53300", "too many connections are logging in: the slowest is closed");
	return true;
}

/* Make room for the client just accepted; false: it is refused. */
static bool admit(struct client *cl)
{
	struct shard *s = shard_of(cl);
	struct pool_shard *ps = pool_shard(s);
	const struct config *cfg = s->cfg;
	int per_addr = shard_share(s, cfg->max_client_logins_per_addr);
	if (per_addr && cl->addr_family && same_address_logging_in(cl) >= per_addr) {
		report_prelogin(s, 1);
		client_fail(cl, "53300", "too many connections from this address are logging in "
			    "(max_client_logins_per_addr)");
		return false;
	}
	bool over = ps->n_prelogin > shard_share(s, cfg->max_client_logins);
	bool near_ceiling = cl->conn.fd >= s->fd_client_ceiling;
	if (!over && !near_ceiling)
		return true;
	if (evict_stale(s)) {
		cl->fd_exempt = near_ceiling;   /* the descriptor given back is its */
		return true;
	}
	if (over) {
		report_prelogin(s, 1);
		client_fail(cl, "53300", "too many connections are logging in (max_client_logins)");
		return false;
	}
	return true;   /* near the ceiling with every login young: refused after its startup packet */
}

/* ---- accept and close ---- */

void client_accept(struct shard *s, int fd, bool is_unix)
{
	bool exempt = false;
	if (fd >= s->fd_refuse_now) {
		/* at the very top: make room, or refuse at once */
		if (!(exempt = evict_stale(s))) {
			shard_refuse_fd(s, fd);
			return;
		}
	}
	struct client *cl = calloc(1, sizeof *cl);
	if (!cl) {
		close(fd);
		return;
	}
	conn_init(&cl->conn, s, fd, &client_conn_ops, BUF_GROUP_CLIENT);
	proto_framer_init(&cl->conn.fr, true, (uint32_t)s->cfg->max_startup_packet);
	cl->connect_us = cl->state_us = s->now_us;
	list_init(&cl->wait);
	list_append(&pool_shard(s)->clients, &cl->all);
	if (s->cfg->max_client_logins_per_addr > 0 || s->cfg->auth_type == AUTH_HBA)
		peer_address(cl, fd, is_unix);   /* a getpeername: only when something reads it */
	cl->state = CL_STARTUP;
	cl->fd_exempt = exempt;
	cl->is_unix = is_unix;
	enter_list(cl);
	gauge_add(&s->stats->clients, 1);
	LOGF(LOG_DEBUG, cl->conn.id, "accepted %s connection", is_unix ? "unix" : "tcp");
	if (exempt || admit(cl))
		conn_recv_on(&cl->conn);
}

/* What the pool's servers log in with that only a client's login tells:
 * the SCRAM client key its proof gave away (pass-through; scram_key: it
 * proved a SCRAM secret), the secret auth_query answered. A client handed
 * over brings its pool's, which a pool that learned its own keeps. Then the
 * client lets go of both: only authentication needed them. */
static void learn_login_secrets(struct pool *p, struct client *cl, bool scram_key)
{
	if (cl->scram && cl->scram->have_client_key && scram_key) {
		memcpy(p->scram_client_key, cl->scram->client_key, AUTH_SCRAM_KEY_LEN);
		p->have_client_key = true;
	}
	if (cl->secret_looked_up && cl->secret && (!p->authq_secret || strcmp(p->authq_secret, cl->secret))) {
		/* the pool's servers log in with what the client was checked against */
		free(p->authq_secret);
		p->authq_secret = cl->secret;
		cl->secret = NULL;
	}
	free(cl->scram);
	cl->scram = NULL;
	free(cl->secret);
	cl->secret = NULL;
}

/* A session-pooled client's own server, moved with it: its lease holds it
 * as it is. false, with why: it could not come (its socket is closed). */
static bool move_in_session(struct client *cl, struct takeover_rec *pair, const char **why)
{
	struct shard *s = shard_of(cl);
	struct server_record sr;
	struct upgrade_server_ids ids;
	struct pool *sp = NULL;
	struct lease *l = NULL;
	*why = "a malformed record";
	if (upgrade_unpack_server(pair->data, pair->len, &sr, &ids) && !strcmp(ids.db, cl->database) &&
	    !strcmp(ids.user, cl->user)) {
		struct node_shared *ni = *ids.cluster ? registry_node(ids.cluster, ids.node) : NULL;
		sp = ni || !*ids.cluster ? pool_find(s, ids.db, ids.user, ni, true) : NULL;
		*why = "its database, user or node is not configured here";
	}
	if (sp && !(l = lease_open(cl)))
		*why = "out of memory";
	bool ok = l && server_adopt(sp, pair->fd, &sr, l, why);
	if (!l)
		close(pair->fd);   /* server_adopt closes it when it refuses */
	pair->fd = -1;
	upgrade_server_release(&sr, &ids);
	if (ok)
		stat_add(&s->stats->servers_taken_over, 1);
	return ok;
}

void client_moved_away(struct client *cl, int to)
{
	/* its twin there holds its count in max_client_conn; the pool's limits
	 * count both until this one closes (the twin may find no pool: a
	 * reload in between) */
	cl->counted = false;
	cl->moved_away = true;
	LOGF(LOG_INFO, cl->conn.id, "moved to shard %d", to);
	close_later(cl);
}

struct client *client_move_in(struct shard *s, int fd, const uint8_t *rec, uint32_t len, struct takeover_rec *pair,
			      bool from_shard)
{
	struct client *cl = calloc(1, sizeof *cl);
	if (!cl) {
		log_warning("upgrade: a client handed over is lost: out of memory");
		close(fd);
		return NULL;
	}
	conn_init(&cl->conn, s, fd, &client_conn_ops, BUF_GROUP_CLIENT);
	/* it logged in with the predecessor: typed messages from the first byte */
	proto_framer_init(&cl->conn.fr, false, (uint32_t)s->cfg->max_packet_size);
	cl->connect_us = cl->state_us = s->now_us;
	list_init(&cl->wait);
	list_append(&pool_shard(s)->clients, &cl->all);
	cl->state = CL_STARTUP;
	enter_list(cl);
	gauge_add(&s->stats->clients, 1);
	uint64_t age = 0, old_id = 0;
	if (!upgrade_unpack(cl, rec, len, &pool_shard(s)->stmts, &age, &old_id)) {
		log_warning("upgrade: a client's record from the predecessor is malformed: the client is closed");
		client_close_quietly(cl, "malformed hand-over record");
		return NULL;
	}
	cl->connect_us = s->now_us > age ? s->now_us - age : 0;
	cl->moved_in = true;
	if (!from_shard)
		stat_add(&s->stats->taken_over, 1);
	LOGF(LOG_INFO, cl->conn.id, "%s (its c=%llu): user=%s database=%s, %u prepared statements",
	     from_shard ? "moved in from another shard" : "taken over from the predecessor", (unsigned long long)old_id,
	     cl->user, cl->database, cl->sess->stmts.n);
	int n = from_shard ? 0 : atomic_fetch_add(&total_clients, 1) + 1;
	cl->counted = true;
	if (!from_shard && s->cfg->max_client_conn > 0 && n > s->cfg->max_client_conn) {
		client_fail(cl, "53300", "no more connections allowed (max_client_conn)");
		return NULL;
	}
	const struct config_cluster *cluster;
	size_t base_len;
	if (!config_resolve_db(s->cfg, cl->database, &cluster, &base_len)) {
		client_fail(cl, "3D000", "no such database: %s", cl->database);
		return NULL;
	}
	struct pool *p = route_login_pool(cl);
	if (!p) {
		client_fail(cl, "53200", "cannot create pool for database \"%s\" user \"%s\"", cl->database, cl->user);
		return NULL;
	}
	if (cl->extra && cl->extra->moved_listen && !listen_pooled(p)) {
		client_fail(cl, "08006", "pgring was upgraded and database \"%s\" no longer keeps LISTEN for its "
			    "clients: reconnect", cl->database);
		return NULL;
	}
	if ((p->mode == POOL_SESSION || cl->moved_pins) != (pair != NULL)) {
		/* a session comes with its server (and only a session, or a client
		 * pinned to its server): the pooling mode changed in between */
		client_fail(cl, "08006", "pgring was upgraded and database \"%s\" is %s in session pooling: reconnect",
			    cl->database, pair ? "no longer" : "now");
		return NULL;
	}
	if (from_shard) {
		registry_add_client(p->shared);   /* it was let in already */
	} else if (registry_take_client(p->shared)) {
		client_fail(cl, "53300", "no more connections allowed (max_db_client_connections or "
			    "max_user_client_connections)");
		return NULL;
	}
	cl->limits_counted = true;
	share_names(cl, p);
	cl->pool = p;
	if (p->authq_secret)
		cl->secret_looked_up = false;   /* the pool learned its own (a login here): that one is current */
	learn_login_secrets(p, cl, !p->have_client_key);
	key_link(cl);
	if (pair) {
		const char *why;
		if (cl->moved_pins)
			session_set_pins(cl, cl->moved_pins);   /* what its server holds for it */
		if (!move_in_session(cl, pair, &why)) {
			LOGF(LOG_NOTICE, cl->conn.id, "upgrade: a session's server connection of the predecessor (%s/%s) "
			     "is closed: %s; its client is told to reconnect", cl->database, cl->user, why);
			client_fail(cl, "08006", "pgring was upgraded and this session's server connection could not come "
				    "along (%s): reconnect", why);
			return NULL;
		}
		conn_recv_on(&cl->conn);
		return cl;
	}
	if (cl->extra && cl->extra->moved_listen) {
		/* before it can hear anything: its notifications wait for it there */
		struct params *moved = cl->extra->moved_listen;
		bool ok = listen_set(cl, moved);
		params_clear(moved);
		free(moved);
		cl->extra->moved_listen = NULL;
		if (!ok)
			return NULL;   /* failed (no memory) */
	}
	pool_login_wait(p, cl);   /* CL_IDLE once the pool knows its servers' parameters */
	if (cl->state == CL_CLOSED)
		return NULL;
	conn_recv_on(&cl->conn);
	return cl;
}

/* The client is gone or must go: it stops here, and is closed at the end of
 * the batch (client_close_pending), outside whatever stack decided it. */
static void close_later(struct client *cl)
{
	if (cl->state != CL_CLOSED)
		client_set_state(cl, CL_CLOSED);   /* onto the shard's closing list */
}

static void client_eof(struct client *cl, int err)
{
	if (cl->state == CL_CLOSED)
		return;
	if (err == EPROTO && cl->conn.tls)
		LOGF(LOG_INFO, cl->conn.id, "TLS handshake with client failed: %s", tls_session_error(cl->conn.tls->session));
	else if (err && err != ECONNRESET && err != EPIPE)
		LOGF(LOG_INFO, cl->conn.id, "client connection error: %s", strerror(err));
	close_later(cl);
}

/* The FATAL that waited for the end of a server's message. */
static void send_deferred_fatal(struct client *cl)
{
	struct client_extra *x = cl->extra;
	if (!x || !x->fatal_deferred)
		return;
	if (!conn_queue(&cl->conn, x->fatal_deferred, x->fatal_deferred_len, PROTO_BUF_NONE))
		LOGF(LOG_INFO, cl->conn.id, "its FATAL could not be queued");
	free(x->fatal_deferred);
	x->fatal_deferred = NULL;
}

/* Give back its server and close the socket once our last bytes are out. */
static void finish_close(struct client *cl)
{
	if (mid_reply(cl)) {
		cl->close_deferred = true;   /* client_reply_done brings it back */
		return;
	}
	send_deferred_fatal(cl);   /* the message it waited for ended in this batch */
	lease_client_gone(cl);
	repl_client_gone(cl);
	listen_client_gone(cl);
	key_unlink(cl);
	if (cl->counted) {
		atomic_fetch_sub(&total_clients, 1);
		cl->counted = false;
	}
	if (cl->limits_counted) {
		registry_give_client(cl->pool->shared);   /* its siblings on other nodes share the limits */
		cl->limits_counted = false;
	}
	if (log_enabled(LOG_INFO) && cl->user && !cl->moved_away)
		LOGF(LOG_INFO, cl->conn.id, "closing: user=%s database=%s duration=%.3fs", cl->user,
		     cl->database, (double)(shard_of(cl)->now_us - cl->connect_us) / 1e6);
	proto_framer_reset(&cl->conn.fr, &client_ops, cl);
	conn_close(&cl->conn);
}

void client_reply_done(struct client *cl)
{
	if (!cl->close_deferred)
		return;   /* finish_close has not run yet: it sends the FATAL */
	cl->close_deferred = false;
	send_deferred_fatal(cl);
	list_append(&pool_shard(shard_of(cl))->closing, &cl->wait);   /* closed at the end of this batch */
}

void client_close_pending(struct shard *s)
{
	struct pool_shard *ps = pool_shard(s);
	struct client *cl;
	while ((cl = list_first(&ps->closing, struct client, wait))) {
		list_del(&cl->wait);
		finish_close(cl);
	}
}

struct client_extra *client_extra(struct client *cl)
{
	if (!cl->extra && !(cl->extra = calloc(1, sizeof *cl->extra)))
		LOGF(LOG_WARNING, cl->conn.id, "out of memory");
	return cl->extra;
}

bool client_set_names(struct client *cl, const char *user, const char *database)
{
	size_t u = strlen(user) + 1, d = strlen(database) + 1;
	char *names = malloc(u + d);
	if (!names)
		return false;
	memcpy(names, user, u);
	memcpy(names + u, database, d);
	client_free_names(cl);
	cl->user = names;
	cl->database = names + u;
	return true;
}

void client_free_names(struct client *cl)
{
	if (!cl->names_shared)
		free(cl->user);   /* and the database's name after it */
	cl->names_shared = false;
	cl->user = cl->database = NULL;
}

/* Logged in to p under the same names: its own copy is not kept (an idle
 * client is its memory). Pools are never freed, so the names stay valid. */
static void share_names(struct client *cl, struct pool *p)
{
	if (cl->names_shared || !cl->user || strcmp(cl->user, p->user) || strcmp(cl->database, p->db_name))
		return;
	free(cl->user);
	cl->user = p->user;
	cl->database = p->db_name;
	cl->names_shared = true;
}

void client_extra_free(struct client *cl)
{
	struct client_extra *x = cl->extra;
	if (!x)
		return;
	cl->extra = NULL;
	free(x->fatal_deferred);
	free(x->lost_msg);
	if (x->moved_listen)
		params_clear(x->moved_listen);
	free(x->moved_listen);
	free(x);
}

/* Why its server went away has been told. */
static void lost_clear(struct client *cl)
{
	if (!cl->extra)
		return;
	free(cl->extra->lost_msg);
	cl->extra->lost_msg = NULL;
	cl->extra->lost_state[0] = '\0';
}

static void client_free(struct client *cl)
{
	struct shard *s = shard_of(cl);
	INVARIANT(cl->state == CL_CLOSED && !cl->lease && !list_linked(&cl->wait));
	list_del(&cl->all);
	gauge_add(&s->stats->clients, -1);
	admin_client_free(cl);
	session_free(cl);
	client_extra_free(cl);
	params_clear(&cl->params);
	free(cl->scram);
	client_free_names(cl);
	free(cl->secret);
	free(cl->adm);
	free(cl);
}

/* ---- startup ---- */

static void reply_byte(struct client *cl, char c)
{
	conn_queue(&cl->conn, &c, 1, PROTO_BUF_NONE);
}

/* PostgreSQL answers a cancel request with nothing but a close, and closes
 * only after it has signalled the backend (twice: kill(pid), then kill(-pid)
 * for its process group). libpq's PQcancel returns at that close, and its
 * caller sends its next statement: closed any earlier, that statement could
 * meet the second signal and be canceled too. So the connection is held
 * (CL_CANCEL) until the exchange with the server has ended, on whichever
 * shard owns the client, bounded by cancel_wait_timeout. */
static void handle_cancel(struct client *cl, const uint8_t *msg, uint32_t len)
{
	struct shard *s = shard_of(cl);
	if (len != 16 && len != 12 + PROTO_KEY_LONG) {
		close_later(cl);
		return;
	}
	stat_add(&s->stats->cancels_received, 1);
	struct pool_cancel_waiter w = { .shard = s->id, .conn_id = 0 };
	if (s->cfg->cancel_wait_timeout > 0) {
		client_set_state(cl, CL_CANCEL);
		w.conn_id = cl->conn.id;
	}
	/* another node's key goes to that node ([peers]); ours comes back with
	 * its TTL bits as handed out */
	uint8_t req[12 + PROTO_KEY_LONG];
	memcpy(req, msg, len);
	if (peer_route_cancel(s, req, len, &w)) {
		if (!w.conn_id)
			close_later(cl);
		return;
	}
	/* a 3.0 key (4 bytes) or pgring's 3.2 key (32): the shard is in the
	 * top bits of the key's first 4 bytes either way */
	uint32_t pid = proto_get_u32(req + 8), key = proto_get_u32(req + 12);
	const uint8_t *tail = len == 16 ? NULL : req + 16;
	int owner = key_owner(key, s->nshards);
	if (owner >= s->nshards) {
		client_cancel_answer(s, &w);
		if (!w.conn_id)
			close_later(cl);
		return;
	}
	if (owner == s->id)
		client_cancel(s, pid, key, tail, &w, 0);
	else
		pass_cancel(s, owner, pid, key, tail, &w, 0);
	if (!w.conn_id)
		close_later(cl);   /* cancel_wait_timeout = 0: closed at once, as before */
}

/* pgring.target (or pgring.target_session_attrs, with libpq's names) in the
 * startup packet or its options: where this client's transactions go. It is
 * pgring's, not a setting for the servers. */
static bool take_target(struct client *cl)
{
	static const char *const names[] = { "pgring.target", "pgring.target_session_attrs" };
	for (size_t i = 0; i < 2; i++) {
		const char *v = params_get(&cl->params, names[i]);
		if (!v)
			continue;
		int t = config_target_parse(v);
		if (t == TARGET_UNSET) {
			client_fail(cl, "22023", "invalid value for parameter \"%s\": \"%s\" (primary, replica, any)",
				    names[i], v);
			return false;
		}
		cl->target = (uint8_t)t;
		params_remove(&cl->params, names[i]);
	}
	return true;
}

static bool read_startup(struct client *cl, const uint8_t *msg, uint32_t len)
{
	struct proto_reader r;
	proto_reader_init(&r, msg + 8, len - 8);
	const char *unsupported[16];
	const char *user = NULL, *database = NULL;
	int nunsup = 0;
	for (;;) {
		const char *name = proto_read_str(&r);
		if (r.bad)
			return false;
		if (!*name)
			break;
		const char *value = proto_read_str(&r);
		if (r.bad)
			return false;
		if (strcmp(name, "user") == 0) {
			user = value;
		} else if (strcmp(name, "database") == 0) {
			database = value;
		} else if (strcmp(name, "options") == 0) {
			if (!params_parse_options(&cl->params, value)) {
				client_fail(cl, "22023", "invalid command-line argument in startup options: %s", value);
				return true;
			}
		} else if (strncmp(name, "_pq_.", 5) == 0) {
			if (nunsup < 16)
				unsupported[nunsup++] = name;
		} else if (strcmp(name, "replication") == 0) {
			int mode = repl_parse_mode(value);
			if (mode < 0) {
				client_fail(cl, "22023", "invalid value for parameter \"replication\": \"%s\"", value);
				return true;
			}
			cl->replication = (uint8_t)mode;
		} else {
			params_set(&cl->params, name, value);
		}
	}
	/* no database: the user's name, as PostgreSQL does */
	if (user && *user && !client_set_names(cl, user, database && *database ? database : user))
		cl->params.failed = true;   /* reported below */
	if (!take_target(cl))
		return true;
	if (!params_copy(&cl->startup, &cl->params) || cl->params.failed) {
		client_fail(cl, "53200", "out of memory (or more than %d startup parameters)", PARAMS_MAX);
		return true;
	}
	/* 3.0 and 3.2 (with its long cancel keys) are spoken, 3.1 as 3.0, as
	 * PostgreSQL 18 does; anything newer is told 3.2, with the _pq_. options
	 * not known (none is), which are never passed on. Servers stay on 3.0:
	 * the messages are the same, only the client's cancel key differs. */
	uint32_t minor = proto_get_u32(msg + 4) & 0xffff;
	uint32_t spoken = minor > PROTO_MINOR_LATEST ? PROTO_MINOR_LATEST : minor;
	cl->key_long = spoken >= 2;
	if (minor > PROTO_MINOR_LATEST || nunsup) {
		uint8_t mem[1024];
		struct proto_out o;
		proto_out_init(&o, mem, sizeof mem);
		proto_negotiate_version(&o, spoken, unsupported, nunsup);
		send_out(cl, &o);
	}
	return true;
}

static void begin_auth(struct client *cl);
static bool client_tls_offered(const struct shard *s);

static void handle_startup(struct client *cl, const uint8_t *msg, uint32_t len)
{
	struct shard *s = shard_of(cl);
	uint32_t code = len >= 8 ? proto_get_u32(msg + 4) : 0;
	uint8_t asked = code == PROTO_SSL_REQUEST ? NEG_SSL : code == PROTO_GSSENC_REQUEST ? NEG_GSS : 0;
	if (asked && len != 8) {
		client_fail(cl, "08P01", "invalid length of startup packet");
		return;
	}
	if (asked && !(cl->negotiated & asked)) {
		/* Each may be asked once, as PostgreSQL allows: a second request is an
		 * unknown protocol below. GSS encryption is not offered. */
		cl->negotiated |= asked;
		bool tls = asked == NEG_SSL && client_tls_offered(s) && !cl->is_unix;
		reply_byte(cl, tls ? 'S' : 'N');
		cl->tls_asked = tls;   /* the switch happens once this buffer is done (client_data) */
		return;
	}
	if (code == PROTO_CANCEL_REQUEST) {
		handle_cancel(cl, msg, len);
		return;
	}
	if (code >> 16 != 3) {
		client_fail(cl, "0A000", "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
			    code >> 16, code & 0xffff);
		return;
	}
	if (!read_startup(cl, msg, len)) {
		client_fail(cl, "08P01", "invalid startup packet layout");
		return;
	}
	if (cl->state == CL_CLOSED)
		return;
	if (!cl->user || !*cl->user) {
		client_fail(cl, "28000", "no PostgreSQL user name specified in startup packet");
		return;
	}
	if (s->cfg->client_tls_sslmode >= SSLMODE_REQUIRE && !cl->conn.tls && !cl->is_unix) {
		LOGF(LOG_INFO, cl->conn.id, "refused a client without TLS (client_tls_sslmode = %s)",
		     config_sslmode_name(s->cfg->client_tls_sslmode));
		client_fail(cl, "28000", "SSL required: this server accepts only TLS connections (sslmode=require)");
		return;
	}
	/* from here on, typed messages */
	cl->conn.fr.untyped = false;
	cl->conn.fr.max_len = (uint32_t)s->cfg->max_packet_size;
	int n = atomic_fetch_add(&total_clients, 1) + 1;
	cl->counted = true;
	if (s->cfg->max_client_conn > 0 && n > s->cfg->max_client_conn) {
		client_fail(cl, "53300", "no more connections allowed (max_client_conn)");
		return;
	}
	if (cl->conn.fd >= s->fd_client_ceiling && !cl->fd_exempt) {   /* the rest is kept for servers */
		shard_fd_refused(s);
		client_fail(cl, "53300", "%s", shard_fd_refusal);
		return;
	}
	const struct config_cluster *cluster;
	size_t base_len;
	if (admin_console_db(cl->database)) {
		if (!admin_startup(cl))   /* the admin console: authenticated as anyone, unless by peer */
			begin_auth(cl);
		return;
	}
	const struct config_db *entry = config_resolve_db(s->cfg, cl->database, &cluster, &base_len);
	if (!entry) {
		client_fail(cl, "3D000", "no such database: %s", cl->database);
		return;
	}
	if (entry->disabled == 1 || admin_db_disabled(cl->database)) {
		client_fail(cl, "55000", "database does not allow connections: %s", cl->database);
		return;
	}
	begin_auth(cl);
}

/* ---- authentication ---- */

static void auth_failed(struct client *cl, const char *why)
{
	struct stats_pool *ps = NULL;
	struct pool *p = pool_find(shard_of(cl), cl->database, cl->user, NULL, false);
	if (p)
		ps = p->stats;
	if (ps)
		stat_add(&ps->client_login_errors, 1);
	LOGF(LOG_WARNING, cl->conn.id, "password authentication failed for user \"%s\": %s", cl->user, why);
	client_fail(cl, "28P01", "password authentication failed for user \"%s\"", cl->user);
}

static void login_ok(struct client *cl);

/* auth_type = cert, as PostgreSQL's cert method: the verified client
 * certificate's common name must be the user name. */
static void cert_auth(struct client *cl)
{
	char cn[256];
	const char *why = NULL;
	if (!cl->conn.tls)
		why = "certificate authentication needs a TLS connection";
	else if (!tls_session_peer_cn(cl->conn.tls->session, cn, sizeof cn))
		why = "connection requires a valid client certificate";
	if (why) {
		LOGF(LOG_WARNING, cl->conn.id, "certificate authentication failed for user \"%s\": %s", cl->user, why);
		client_fail(cl, "28000", "%s", why);
		return;
	}
	if (strcmp(cn, cl->user) != 0) {
		struct pool *p = pool_find(shard_of(cl), cl->database, cl->user, NULL, false);
		if (p)
			stat_add(&p->stats->client_login_errors, 1);
		LOGF(LOG_WARNING, cl->conn.id,
		     "certificate authentication failed for user \"%s\": provided user name (%s) and authenticated user "
		     "name (%s) do not match", cl->user, cl->user, cn);
		client_fail(cl, "28000", "certificate authentication failed for user \"%s\"", cl->user);
		return;
	}
	login_ok(cl);
}

bool client_peer_user(struct client *cl, uid_t *uid, char *name, size_t len)
{
	struct ucred cr;
	socklen_t n = sizeof cr;
	struct passwd pw, *res = NULL;
	char buf[1024];
	snprintf(name, len, "?");
	if (!cl->is_unix || getsockopt(cl->conn.fd, SOL_SOCKET, SO_PEERCRED, &cr, &n))
		return false;
	*uid = cr.uid;
	if (!getpwuid_r(cr.uid, &pw, buf, sizeof buf, &res) && res)
		snprintf(name, len, "%s", res->pw_name);
	return true;
}

/* auth_type = hba: the first line of auth_hba_file that matches the login
 * names the method, with PostgreSQL's words when none does or it rejects.
 * -1 when it has decided already (refused, or peer checked). */
static int hba_method(struct client *cl)
{
	struct shard *s = shard_of(cl);
	bool phys = cl->replication == REPL_PHYSICAL;
	struct hba_query q = { .local = cl->is_unix, .tls = cl->conn.tls != NULL, .physical_replication = phys,
			       .addr = cl->addr, .db = cl->database, .user = cl->user };
	/* the snapshot's: auth_hba_file's, or those the server holds (@server) */
	const struct hba_rule *r = hba_match(s->topo->hba, &q);
	char host[64], os_user[64];
	hba_format_addr(cl->addr, cl->is_unix, host, sizeof host);
	const char *enc = cl->conn.tls ? "SSL encryption" : "no encryption";
	if (!r || r->method == HBA_REJECT) {
		const char *what = r ? "pg_hba.conf rejects" : "no pg_hba.conf entry for";
		if (r)
			LOGF(LOG_WARNING, cl->conn.id, "refused by auth_hba_file line %d: user \"%s\", database \"%s\", host %s",
			     r->line, cl->user, cl->database, host);
		else if (!s->topo->hba)
			LOGF(LOG_WARNING, cl->conn.id, "auth_hba_file = %s: no rules read from the server yet: user \"%s\", "
			     "database \"%s\", host %s refused", s->cfg->auth_hba_file, cl->user, cl->database, host);
		else
			LOGF(LOG_WARNING, cl->conn.id, "no auth_hba_file line matches: user \"%s\", database \"%s\", host %s",
			     cl->user, cl->database, host);
		if (phys)
			client_fail(cl, "28000", "%s replication connection %s host \"%s\", user \"%s\", %s", what,
				    r ? "for" : "from", host, cl->user, enc);
		else
			client_fail(cl, "28000", "%s %shost \"%s\", user \"%s\", database \"%s\", %s", what,
				    r ? "connection for " : "", host, cl->user, cl->database, enc);
		return -1;
	}
	LOGF(LOG_DEBUG, cl->conn.id, "auth_hba_file line %d: %s", r->line, hba_method_name(r->method));
	switch (r->method) {
	case HBA_TRUST: return AUTH_TRUST;
	case HBA_PASSWORD: return AUTH_PLAIN;
	case HBA_MD5: return AUTH_MD5;
	case HBA_SCRAM: return AUTH_SCRAM;
	case HBA_CERT: return AUTH_CERT;
	case HBA_PEER: {
		/* as PostgreSQL's: the OS user is the user logging in (no ident maps) */
		uid_t uid;
		if (client_peer_user(cl, &uid, os_user, sizeof os_user) && !strcmp(os_user, cl->user)) {
			login_ok(cl);
		} else {
			LOGF(LOG_WARNING, cl->conn.id,
			     "peer authentication failed for user \"%s\": provided user name (%s) and authenticated user name (%s) do not match",
			     cl->user, cl->user, os_user);
			client_fail(cl, "28000", "Peer authentication failed for user \"%s\"", cl->user);
		}
		return -1;
	}
	}
	client_fail(cl, "28000", "authentication method of auth_hba_file line %d is not usable", r->line);
	return -1;
}

static void auth_with_secret(struct client *cl, int method, const char *secret);
static bool lookup_secret(struct client *cl);
static void authq_resume(struct client *cl, enum authq_status st, const char *secret);

static void begin_auth(struct client *cl)
{
	struct shard *s = shard_of(cl);
	const char *secret = config_find_secret(s->cfg, cl->user);
	int method = s->cfg->auth_type;
	if (method == AUTH_HBA && (method = hba_method(cl)) < 0)
		return;
	const struct config_cluster *cluster;
	size_t base_len;
	if (!secret && !cl->admin && method != AUTH_ANY && method != AUTH_CERT &&
	    authq_enabled(s->cfg, config_resolve_db(s->cfg, cl->database, &cluster, &base_len))) {
		/* not in auth_file: auth_query's answer goes on with the same method
		 * (trust too, as PgBouncer: the user must exist at the server) */
		cl->auth_method = (uint8_t)method;
		client_set_state(cl, CL_AUTHQ);
		enum authq_status st;
		const char *found;
		struct authq_cache *c = pool_shard(s)->authq;
		if (c && authq_cache_get(c, NULL, cl->database, cl->user, s->now_us, &st, &found, NULL) == 0) {
			authq_count_shard_hit();   /* answered here: no trip to the control shard */
			authq_resume(cl, st, found);
			return;
		}
		lookup_secret(cl);
		return;
	}
	if (method == AUTH_TRUST && !secret && s->cfg->auth_file) {
		/* as PgBouncer: trust skips the password, not the user list */
		client_fail(cl, "28000", "no such user: %s", cl->user);
		return;
	}
	if (method == AUTH_TRUST || method == AUTH_ANY) {
		login_ok(cl);
		return;
	}
	if (method == AUTH_CERT) {
		cert_auth(cl);
		return;
	}
	auth_with_secret(cl, method, secret);
}

/* ---- auth_query: the secret comes from the control shard ---- */

static bool same_login(const struct client *a, const char *db, const char *user)
{
	return !strcmp(a->database, db) && !strcmp(a->user, user);
}

/* Ask for cl's secret, unless a client of this shard waiting for the same
 * (database, user) asked already: its answer serves both. False when the
 * control shard's queue is full (client_tick asks again). */
static bool lookup_secret(struct client *cl)
{
	struct shard *s = shard_of(cl);
	struct client *o, *next;
	list_for_each_safe(&pool_shard(s)->prelogin, o, next, wait)
		if (o != cl && o->state == CL_AUTHQ && o->authq_asked && same_login(o, cl->database, cl->user)) {
			cl->authq_asked = true;
			return true;
		}
	struct authq_req *r = authq_req_new(s->id, POOL_MSG_AUTHQ, cl->database, cl->user);
	if (!r || !control_call(s->id, authq_ask, r)) {
		authq_req_free(r);
		return false;
	}
	cl->authq_asked = true;
	return true;
}

/* cl (CL_AUTHQ) has auth_query's answer: on with its authentication. */
static void authq_resume(struct client *cl, enum authq_status st, const char *secret)
{
	if (st == AUTHQ_FAILED) {
		LOGF(LOG_WARNING, cl->conn.id, "login of user \"%s\" failed: auth_query gave no answer", cl->user);
		client_fail(cl, "08006", "password authentication failed for user \"%s\": the password could not "
			    "be looked up", cl->user);
		return;
	}
	cl->authq_asked = false;
	cl->authq_answered = true;
	cl->secret_looked_up = st == AUTHQ_FOUND;
	if (cl->auth_method == AUTH_TRUST) {
		/* no password asked; the role must exist, and its servers need its secret */
		if (st != AUTHQ_FOUND)
			client_fail(cl, "28000", "no such user: %s", cl->user);
		else if (!(cl->secret = strdup(secret)))
			client_fail(cl, "53200", "out of memory");
		else
			login_ok(cl);
		return;
	}
	/* no such role, or an expired one: refused as a wrong password would be */
	auth_with_secret(cl, cl->auth_method, st == AUTHQ_FOUND ? secret : NULL);
}

void client_authq_answer(struct shard *s, void *arg)
{
	struct authq_req *r = arg;
	struct pool_shard *ps = pool_shard(s);
	/* kept as long as the control shard keeps it (dropped with the configuration) */
	if (r->expires_us > s->now_us && (ps->authq || (ps->authq = authq_cache_new())))
		authq_cache_put(ps->authq, NULL, r->db, r->user, r->status, r->secret, r->expires_us);
	struct client *cl, *next;
	list_for_each_safe(&ps->prelogin, cl, next, wait)
		if (cl->state == CL_AUTHQ && same_login(cl, r->db, r->user))
			authq_resume(cl, r->status, r->secret);
	authq_req_free(r);
}

/* Send the method's first request; secret NULL (no such user) still runs the
 * exchange, which then fails as a wrong password does. */
static void auth_with_secret(struct client *cl, int method, const char *secret)
{
	if (secret && !(cl->secret = strdup(secret))) {
		client_fail(cl, "53200", "out of memory");
		return;
	}
	if (method == AUTH_MD5 && secret && auth_is_scram_secret(secret))
		method = AUTH_SCRAM;   /* PgBouncer does the same: md5 cannot check a SCRAM secret */
	const uint8_t *cbind = NULL;
	size_t cbind_len = cl->conn.tls ? tls_session_endpoint(cl->conn.tls->session, &cbind) : 0;
	if (method == AUTH_SCRAM_PLUS && !cbind_len) {
		client_fail(cl, "28000", "SCRAM-SHA-256-PLUS (channel binding) is required: connect with TLS");
		return;
	}
	cl->auth_method = (uint8_t)method;
	client_set_state(cl, CL_AUTH);
	uint8_t mem[256];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	switch (method) {
	case AUTH_PLAIN:
		proto_auth_request(&o, 3, NULL, 0);
		break;
	case AUTH_MD5:
		auth_random(cl->md5_salt, 4);
		proto_auth_request(&o, 5, cl->md5_salt, 4);
		break;
	default: {
		cl->scram = calloc(1, sizeof *cl->scram);
		struct auth_scram_secret sec;
		bool have = false;
		if (secret && auth_is_scram_secret(secret))
			have = auth_scram_parse_secret(secret, &sec) == 0;
		else if (secret && !auth_is_md5_secret(secret)) {
			/* a plain password: a salt fixed per user and shard, so the key
			 * derivation is done once (auth.c caches it) */
			uint8_t salt[16];
			have = auth_scram_user_salt(cl->user, salt, sizeof salt) == 0 &&
			       auth_scram_secret_from_password(secret, salt, 16, AUTH_SCRAM_DEFAULT_ITER, &sec) == 0;
		}
		if (!have) {
			/* unknown user or unusable secret: run the exchange to its end anyway, so the
			 * answer does not tell whether the user exists */
			memset(&sec, 0, sizeof sec);
			sec.iterations = AUTH_SCRAM_DEFAULT_ITER;
			sec.salt_len = 16;
			auth_random(sec.salt, 16);
			auth_random(sec.stored_key, sizeof sec.stored_key);
			auth_random(sec.server_key, sizeof sec.server_key);
		}
		/* over TLS, channel binding to our certificate is offered (PLUS first,
		 * as PostgreSQL); scram-sha-256-plus offers nothing else */
		if (!cl->scram || auth_scram_server_init_cbind(cl->scram, &sec, cbind_len ? cbind : NULL, cbind_len)) {
			client_fail(cl, "53200", "out of memory");
			return;
		}
		if (method == AUTH_SCRAM_PLUS)
			proto_auth_sasl_mechanisms_only_plus(&o);
		else
			proto_auth_sasl_mechanisms_plus(&o, cbind_len != 0);
	}
	}
	send_out(cl, &o);
}

static bool check_plain(struct client *cl, const char *password)
{
	const char *secret = cl->secret;
	if (!secret)
		return false;
	if (auth_is_md5_secret(secret)) {
		char md5[AUTH_MD5_LEN + 1];
		auth_md5_secret(password, cl->user, md5);
		return strcmp(md5, secret) == 0;
	}
	if (auth_is_scram_secret(secret)) {
		struct auth_scram_secret stored, derived;
		if (auth_scram_parse_secret(secret, &stored))
			return false;
		if (auth_scram_secret_from_password(password, stored.salt, stored.salt_len, stored.iterations, &derived))
			return false;
		return memcmp(stored.stored_key, derived.stored_key, AUTH_SCRAM_KEY_LEN) == 0;
	}
	return strcmp(secret, password) == 0;
}

/* A SCRAM exchange that broke for another reason than a wrong password:
 * PostgreSQL's message, detail and SQLSTATE (auth.c chooses them). */
static void scram_failed(struct client *cl)
{
	const struct auth_scram_server *sc = cl->scram;
	const char *state = sc->sqlstate[0] ? sc->sqlstate : "08P01";
	if (sc->detail[0])
		client_fail(cl, state, "%s: %s", sc->error, sc->detail);
	else
		client_fail(cl, state, "%s", sc->error);
}

static const char *no_secret_reason(const struct client *cl)
{
	return cl->authq_answered ? "auth_query gave no secret (no such role, cannot log in, expired or no password)"
				  : "no such user in auth_file";
}

static void handle_password(struct client *cl, const uint8_t *msg, uint32_t len)
{
	struct proto_reader r;
	proto_reader_init(&r, msg + 5, len - 5);
	switch (cl->auth_method) {
	case AUTH_PLAIN: {
		const char *pw = proto_read_str(&r);
		if (r.bad || !check_plain(cl, pw))
			auth_failed(cl, cl->secret ? "wrong password" : no_secret_reason(cl));
		else
			login_ok(cl);
		return;
	}
	case AUTH_MD5: {
		const char *resp = proto_read_str(&r);
		if (r.bad || !cl->secret || !auth_md5_verify(cl->secret, cl->user, cl->md5_salt, resp))
			auth_failed(cl, cl->secret ? "wrong password" : no_secret_reason(cl));
		else
			login_ok(cl);
		return;
	}
	default:
		break;
	}
	/* SCRAM */
	char out[512];
	uint8_t mem[700];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	if (cl->auth_step++ == 0) {
		const char *mech = proto_read_str(&r);
		if (r.bad || (cl->auth_method == AUTH_SCRAM_PLUS && strcmp(mech, AUTH_SCRAM_PLUS_MECH) != 0) ||
		    auth_scram_server_mechanism(cl->scram, mech)) {
			client_fail(cl, "08P01", "client selected an invalid SASL authentication mechanism");
			return;
		}
		uint32_t n = proto_read_u32(&r);
		const uint8_t *data = n == UINT32_MAX ? NULL : proto_read_bytes(&r, n);   /* -1: no data */
		if (r.bad) {
			client_fail(cl, "08P01", "insufficient data left in message");
			return;
		}
		if (!data) {
			data = (const uint8_t *)"";   /* no data: the exchange then fails as malformed */
			n = 0;
		}
		int k = auth_scram_server_first(cl->scram, (const char *)data, n, out, sizeof out);
		if (k < 0) {
			scram_failed(cl);
			return;
		}
		proto_auth_request(&o, 11, out, (size_t)k);
		send_out(cl, &o);
		return;
	}
	int k = auth_scram_server_final(cl->scram, (const char *)msg + 5, len - 5, out, sizeof out);
	if (k < 0) {
		if (!strcmp(cl->scram->sqlstate, "28P01") || !cl->scram->sqlstate[0])
			auth_failed(cl, cl->scram->error[0] ? cl->scram->error : "wrong password");
		else
			scram_failed(cl);   /* channel binding refused, malformed message */
		return;
	}
	proto_auth_request(&o, 12, out, (size_t)k);
	send_out(cl, &o);
	login_ok(cl);
}

/* Authenticated: find the pool, and welcome the client once the pool knows
 * what a server of it reports at login. */
static void login_ok(struct client *cl)
{
	if (cl->admin) {
		admin_login(cl);
		return;
	}
	struct pool *p = route_login_pool(cl);
	if (!p) {
		client_fail(cl, "53200", "cannot create pool for database \"%s\" user \"%s\"", cl->database, cl->user);
		return;
	}
	int disabled = pool_disabled_by(p);
	if (disabled == 1) {
		client_fail(cl, "55000", "database does not allow connections: %s", cl->database);
		return;
	}
	if (disabled == 2) {
		/* after authentication, as PostgreSQL checks rolcanlogin: the refusal
		 * tells nothing to who does not know the password */
		client_fail(cl, "28000", "role \"%s\" is not permitted to log in", cl->user);
		return;
	}
	int over = registry_take_client(p->shared);
	if (over) {
		client_fail(cl, "53300", "no more connections allowed (%s)",
			    over == 1 ? "max_db_client_connections" : "max_user_client_connections");
		return;
	}
	cl->limits_counted = true;
	share_names(cl, p);
	cl->pool = p;
	learn_login_secrets(p, cl, cl->secret && auth_is_scram_secret(cl->secret));
	stat_add(&p->stats->client_logins, 1);
	if (cl->replication)
		repl_start(cl);
	else
		pool_login_wait(p, cl);
}

/* The value of the pool's reported parameter i the client is welcomed with. */
static const char *welcome_value(const struct client *cl, int i)
{
	const struct pool *p = cl->pool;
	const char *name = p->defaults.v[i].name;
	const char *mine = params_get(&cl->params, name);
	if (p->cluster && strcmp(name, "in_hot_standby") == 0)
		mine = route_login_standby(cl);   /* what its transactions will meet, not the node it logged in on */
	return mine ? mine : p->defaults.v[i].value;
}

/* AuthenticationOk, the parameters, BackendKeyData (pid: the server's in
 * session pooling and replication, 0: a random one) and ReadyForQuery. own:
 * the server's own parameters (replication), NULL: the pool's, with the
 * client's values. false: the client failed. */
static bool send_welcome(struct client *cl, uint32_t pid, const struct params *own, char status)
{
	struct shard *s = shard_of(cl);
	struct pool *p = cl->pool;
	const struct params *ps = own ? own : &p->defaults;
	uint32_t cap = 64;   /* authentication ok, key data, ready, then each ParameterStatus */
	for (int i = 0; i < ps->n; i++)
		cap += (uint32_t)(strlen(ps->v[i].name) + strlen(own ? ps->v[i].value : welcome_value(cl, i)) + 7);
	uint32_t buf;
	uint8_t *mem = bufs_scratch(&s->bufs, cap, &buf);
	if (!mem) {
		client_fail(cl, "53200", "out of memory");
		return false;
	}
	struct proto_out o;
	proto_out_init(&o, mem, cap);
	proto_auth_request(&o, 0, NULL, 0);
	for (int i = 0; i < ps->n; i++)
		proto_parameter_status(&o, ps->v[i].name, own ? ps->v[i].value : welcome_value(cl, i));
	cl->key_pid = pid;
	while (cl->key_pid == 0)
		auth_random(&cl->key_pid, sizeof cl->key_pid);
	cl->key_secret = key_secret_for(s->id, s->nshards);
	if (cl->key_long && !client_extra(cl))
		cl->key_long = false;   /* a 4-byte key is valid in 3.2 too */
	if (cl->key_long)
		auth_random(cl->extra->key_tail, sizeof cl->extra->key_tail);
	peer_stamp_key(s->cfg, &cl->key_pid, &cl->key_secret, cl->key_long ? cl->extra->key_tail : NULL);
	key_link(cl);
	if (cl->key_long) {
		proto_backend_key_long(&o, cl->key_pid, cl->key_secret, cl->extra->key_tail, sizeof cl->extra->key_tail);
	} else {
		proto_backend_key(&o, cl->key_pid, cl->key_secret);
	}
	proto_ready(&o, status);
	bool sent = !o.overflow && conn_queue(&cl->conn, o.p, (uint32_t)o.len, buf);
	bufs_unref(&s->bufs, buf);
	if (!sent) {
		client_fail(cl, "53200", "out of memory");
		return false;
	}
	LOGF(LOG_INFO, cl->conn.id, "login: user=%s database=%s%s", cl->user, cl->database,
	     pid ? " (its server's PID)" : "");
	return true;
}

/* Session pooling, a client waiting in its login with no idle server and
 * none opening for it: it would wait for another session to end, or for a
 * server being reset that an earlier waiter may take. It is welcomed now
 * instead, with a PID of pgring's, and asks for its server at its first
 * request, as with PgBouncer: waiting in its login would stall an
 * application thread that connects while its other sessions hold the
 * servers (pgbench -C, any blocking connect), up to client_login_timeout.
 * true: welcomed so. */
static bool welcome_unserved(struct client *cl)
{
	if (!cl->welcome_owed || cl->state != CL_WAITING || pool_opening_for_all(cl->pool))
		return false;
	client_set_state(cl, CL_IDLE);
	cl->wait_start_us = 0;
	cl->welcome_owed = false;
	send_welcome(cl, 0, NULL, 'I');
	return true;
}

void client_login_finish(struct client *cl)
{
	struct shard *s = shard_of(cl);
	cl->xact_start_us = s->now_us;
	if (cl->pool->mode == POOL_SESSION) {
		/* the client owns a server for its whole session, so it gets one now
		 * and is welcomed with that server's PID: pg_backend_pid(),
		 * pg_terminate_backend() and the like then work as directly */
		if (!cl->lease && !lease_open(cl)) {
			client_fail(cl, "53200", "out of memory");
			return;
		}
		cl->welcome_owed = true;
		cl->txn_target = (uint8_t)route_target(cl, NULL, 0, NULL, 0);
		pool_request_server(cl);   /* CL_WAITING, CL_ROUTING or given one (client_welcome_server) */
		welcome_unserved(cl);
		return;
	}
	if (!cl->moved_in && !send_welcome(cl, 0, NULL, 'I'))
		return;   /* one handed over was welcomed by the predecessor */
	client_set_state(cl, CL_IDLE);
	if (cl->lease) {
		/* requests pipelined behind the startup packet */
		cl->txn_target = (uint8_t)route_target(cl, NULL, 0, NULL, 0);
		pool_request_server(cl);
	}
}

bool client_welcome_server(struct client *cl, const struct server *sv)
{
	cl->welcome_owed = false;
	return send_welcome(cl, sv->backend_pid, cl->state == CL_REPL ? &sv->params : NULL, sv->txn_status);
}

void client_close_quietly(struct client *cl, const char *why)
{
	if (cl->state == CL_CLOSED)
		return;
	LOGF(LOG_INFO, cl->conn.id, "closing client: %s", why);
	close_later(cl);
}

/* ---- requests ---- */

/* The emulated "current transaction is aborted" state after a server died
 * inside the client's transaction block: answer until it ends the block. */
static void failed_txn_message(struct client *cl, uint8_t type, const uint8_t *msg, uint32_t len)
{
	uint8_t mem[1024];
	struct proto_out o;
	proto_out_init(&o, mem, sizeof mem);
	const char *sql = msg ? (const char *)msg + 5 : NULL;
	size_t sql_len = type == 'Q' && len > 5 && msg ? strnlen(sql, len - 5) : 0;
	bool rollback = sql_len && proto_sql_ends_block(sql, sql_len);
	/* a COMMIT that has not heard why its transaction is gone fails with that
	 * reason and ends the block, as a COMMIT PostgreSQL cannot carry out: the
	 * ROLLBACK tag PostgreSQL gives a COMMIT of a failed block is taken for
	 * success by clients that check only for an error */
	struct client_extra *x = cl->extra;
	bool lost = x && x->lost_msg;
	bool commit = lost && rollback && proto_sql_commits_block(sql, sql_len);
	if (lost && type != 'S' && type != 'H' && (!rollback || commit)) {
		/* the first thing it hears is why its transaction is gone */
		proto_error(&o, "ERROR", x->lost_state, "%s", x->lost_msg);
		lost_clear(cl);
		cl->failed_error_sent = true;
		if (commit) {
			proto_ready(&o, 'I');
			cl->txn_failed = false;
			cl->in_txn = false;
		} else if (type == 'Q') {
			proto_ready(&o, 'E');
		}
		send_out(cl, &o);
		return;
	}
	if (type == 'Q') {
		if (rollback) {
			lost_clear(cl);
			proto_command_complete(&o, "ROLLBACK");
			proto_ready(&o, 'I');
			cl->txn_failed = false;
			cl->in_txn = false;
		} else {
			proto_error(&o, "ERROR", "25P02",
				    "current transaction is aborted, commands ignored until end of transaction block");
			proto_ready(&o, 'E');
		}
	} else if (type == 'S') {
		proto_ready(&o, 'E');
		cl->failed_error_sent = false;
	} else if (type != 'H' && !cl->failed_error_sent) {
		proto_error(&o, "ERROR", "25P02",
			    "current transaction is aborted, commands ignored until end of transaction block");
		cl->failed_error_sent = true;
	}
	if (o.len)
		send_out(cl, &o);
}

/* The message types a logged-in client may send (PostgreSQL answers others
 * with 08P01 and closes: no server is spent on them). */
static bool frontend_type(uint8_t type)
{
	switch (type) {
	case 'B': case 'C': case 'D': case 'E': case 'F': case 'H': case 'P': case 'Q': case 'S': case 'X':
	case 'd': case 'c': case 'f':
		return true;
	default:
		return false;
	}
}

/* PostgreSQL's PQ_SMALL_MESSAGE_LIMIT: the most a Close, Describe, Execute,
 * Flush, Sync, Terminate, CopyDone or CopyFail may carry after its length
 * word (the server refuses a longer one as 08P01 "invalid message length").
 * pgring refuses them too, before assembling them: the ones pgring holds
 * whole then take at most this much, not max_packet_size. */
#define SMALL_MESSAGE_MAX 10000

static bool small_type(uint8_t type)
{
	switch (type) {
	case 'C': case 'D': case 'E': case 'H': case 'S': case 'X': case 'c': case 'f':
		return true;
	default:
		return false;
	}
}

/* Bytes that came after SSLRequest, before the handshake: they were sent in
 * the clear and could have been put there by someone in the middle (the class
 * of CVE-2021-23214), so they are never read. */
static void plaintext_after_ssl(struct client *cl)
{
	stat_add(&shard_of(cl)->stats->protocol_errors, 1);
	cl->tls_asked = false;
	client_fail(cl, "08P01", "received unencrypted data after SSL request");
}

static int client_begin(void *ctx, uint8_t type, uint32_t len)
{
	struct client *cl = ctx;
	if (cl->tls_asked) {
		plaintext_after_ssl(cl);
		return PROTO_STOP;
	}
	switch (cl->state) {
	case CL_CANCEL:
		return PROTO_STOP;   /* anything after a CancelRequest is not read, as PostgreSQL */
	case CL_STARTUP:
	case CL_AUTH:
		if (len > (uint32_t)shard_of(cl)->cfg->max_startup_packet + 1) {
			client_fail(cl, "08P01", "invalid %s message length %u",
				    cl->state == CL_STARTUP ? "startup" : "password", len);
			return PROTO_STOP;
		}
		return PROTO_WHOLE;
	case CL_AUTHQ:
		/* nothing was asked of it yet: as PostgreSQL, a message now is a violation */
		client_fail(cl, "08P01", "unexpected message type %d during authentication", type);
		return PROTO_STOP;
	case CL_CLOSED:
		return PROTO_STOP;
	default:
		break;
	}
	if (!frontend_type(type)) {
		stat_add(&shard_of(cl)->stats->protocol_errors, 1);
		client_fail(cl, "08P01", "invalid frontend message type %d", type);
		return PROTO_STOP;
	}
	if (len > SMALL_MESSAGE_MAX + 5 && small_type(type)) {
		stat_add(&shard_of(cl)->stats->protocol_errors, 1);
		client_fail(cl, "08P01", "invalid message length: a '%c' message of %u bytes (at most %d after its "
			    "length word, as PostgreSQL)", type, len, SMALL_MESSAGE_MAX);
		return PROTO_STOP;
	}
	if ((type == 'S' || type == 'H') && len != 5) {
		/* PostgreSQL fails a Sync or Flush with a body ("invalid message
		 * format") and may then skip to the next Sync: replies pgring could
		 * not count for a message that owes none */
		stat_add(&shard_of(cl)->stats->protocol_errors, 1);
		client_fail(cl, "08P01", "invalid message format: a '%c' message with a body", type);
		return PROTO_STOP;
	}
	if (type == 'X')
		return PROTO_WHOLE;
	if (cl->admin)
		return admin_begin(cl, type, len);
	if (cl->state == CL_REPL)
		return repl_client_begin(cl, type);
	cl->drop_msg = false;
	cl->msg_start_us = shard_of(cl)->now_us;
	if (cl->sync_failed) {
		/* the server died with extended-protocol messages unsynced: the rest of
		 * that batch is ignored, as PostgreSQL ignores it after an error */
		cl->drop_msg = true;
		if (type == 'S') {
			uint8_t mem[8];
			struct proto_out o;
			proto_out_init(&o, mem, sizeof mem);
			proto_ready(&o, 'I');
			send_out(cl, &o);
			cl->sync_failed = false;
		}
		return PROTO_STREAM;
	}
	if (cl->txn_failed) {
		if (type == 'Q' && len <= 4096)
			return PROTO_WHOLE;   /* is it the ROLLBACK? */
		failed_txn_message(cl, type, NULL, 0);
		cl->drop_msg = true;      /* its bytes are dropped */
		return PROTO_STREAM;
	}
	return lease_request_begin(cl, type, len);
}

static bool client_whole(void *ctx, const uint8_t *msg, uint32_t len, uint32_t buf)
{
	struct client *cl = ctx;
	switch (cl->state) {
	case CL_STARTUP:
		handle_startup(cl, msg, len);
		return cl->state != CL_CLOSED && cl->state != CL_CANCEL;
	case CL_AUTH:
		if (msg[0] != 'p') {
			client_fail(cl, "08P01", "expected password response, got message type %d", msg[0]);
			return false;
		}
		handle_password(cl, msg, len);
		return cl->state != CL_CLOSED;
	default:
		break;
	}
	if (msg[0] == 'X') {
		cl->terminating = true;
		client_eof(cl, 0);
		return false;
	}
	if (cl->admin)
		return admin_whole(cl, msg, len);
	if (cl->drop_msg)
		return true;
	if (cl->txn_failed) {
		failed_txn_message(cl, msg[0], msg, len);
		return true;
	}
	return lease_request_whole(cl, msg, len, buf);
}

static void client_bytes(void *ctx, const uint8_t *p, uint32_t n, uint32_t buf)
{
	struct client *cl = ctx;
	if (cl->state == CL_REPL)
		repl_client_bytes(cl, p, n, buf);
	else if (!cl->drop_msg && cl->state != CL_CLOSED)
		lease_request_bytes(cl, p, n, buf);
}

/* The shape client_begin requires of a message (its type, and the length
 * PostgreSQL allows it): anything else takes the framer's way to its error. */
static bool request_shape_ok(uint8_t type, uint32_t len)
{
	return frontend_type(type) && !(len > SMALL_MESSAGE_MAX + 5 && small_type(type)) &&
	       !((type == 'S' || type == 'H') && len != 5);
}

/* An idle client's first request of a transaction, whole in the buffer at
 * p: what client_begin and client_whole do with it, without the framer's
 * step and two callbacks between them (once per transaction). The framer's
 * look-ahead (what follows it, for routing) is set as start_message sets it.
 * false: not such a request, or refused at its start (the framer's way then
 * sees the client closed). */
static bool idle_request(struct client *cl, const uint8_t *p, uint32_t len, const uint8_t *end, uint32_t buf)
{
	if (lease_frame_kind(p[0], len) != PROTO_WHOLE || lease_request_begin(cl, p[0], len) != PROTO_WHOLE)
		return false;
	cl->conn.fr.ahead = p + len;
	cl->conn.fr.ahead_len = (uint32_t)(end - p - len);
	lease_request_whole(cl, p, len, buf);
	return true;
}

/* Whether the next message may take client_span's way: asked before each,
 * as a message can change it (a refused request sets sync_failed, so the
 * rest of its batch is dropped by client_begin's way). */
static bool span_state(const struct client *cl)
{
	return (cl->state == CL_ACTIVE || cl->state == CL_IDLE) && !cl->admin && !cl->tls_asked && !cl->sync_failed &&
	       !cl->txn_failed;
}

/* A logged-in client between messages: the whole requests at the front go
 * to the lease with what client_begin would check of each, and without its
 * two callbacks: straight to the server (lease_request_direct) when the
 * client has one, the first of a transaction through idle_request. */
static uint32_t client_span(void *ctx, const uint8_t *data, uint32_t n, uint32_t buf)
{
	struct client *cl = ctx;
	const uint8_t *p = data, *end = data + n;
	while (end - p >= 5 && span_state(cl)) {
		uint32_t len = proto_get_u32(p + 1) + 1;
		if (len < 5 || len > cl->conn.fr.max_len || len > (uint32_t)(end - p) || !request_shape_ok(p[0], len))
			break;
		cl->drop_msg = false;
		cl->msg_start_us = shard_of(cl)->now_us;
		if (cl->state == CL_IDLE ? !idle_request(cl, p, len, end, buf) : !lease_request_direct(cl, p, len, buf))
			break;
		p += len;
	}
	return (uint32_t)(p - data);
}

static const struct proto_frame_ops client_ops = {
	.begin = client_begin,
	.whole = client_whole,
	.bytes = client_bytes,
	.alloc = conn_frame_alloc,
	.release = conn_frame_release,
	.span = client_span,
};

/* A TLS record of type handshake: the first byte of a ClientHello. No
 * startup packet begins with it (its length would be over 369 MB). */
#define TLS_HANDSHAKE_RECORD 0x16

static bool client_tls_offered(const struct shard *s)
{
	return s->cfg->client_tls && s->cfg->client_tls_sslmode != SSLMODE_DISABLE;
}

static void start_tls(struct client *cl, bool direct)
{
	cl->tls_asked = false;
	cl->negotiated |= NEG_SSL;
	struct tls_session *t = conn_tls_new(&cl->conn, shard_of(cl)->cfg->client_tls, true);
	if (!t) {
		client_fail(cl, "53200", "out of memory");
		return;
	}
	if (direct)
		tls_session_set_direct(t);
	conn_tls_start(&cl->conn, direct);
}

static void client_data(struct client *cl, uint8_t *data, uint32_t n, uint32_t buf)
{
	struct shard *s = shard_of(cl);
	if (cl->state == CL_CLOSED || cl->state == CL_CANCEL)
		return;   /* closing, or waiting for its cancel to land: nothing more is read */
	if (cl->pool)
		stat_add(&cl->pool->stats->bytes_in, n);
	if (cl->conn.tls && cl->state == CL_STARTUP && tls_session_alpn_missing(cl->conn.tls->session)) {
		stat_add(&s->stats->tls_failures[0][TLS_FAIL_ALPN], 1);
		client_fail(cl, "08P01", "received direct SSL connection request without ALPN protocol negotiation extension");
		return;
	}
	if (cl->state == CL_STARTUP && !cl->conn.tls && !cl->negotiated && data[0] == TLS_HANDSHAKE_RECORD &&
	    proto_framer_idle(&cl->conn.fr) && client_tls_offered(s) && !cl->is_unix) {
		start_tls(cl, true);   /* PostgreSQL 17's direct TLS: these bytes are its ClientHello */
		return;
	}
	if (proto_framer_idle(&cl->conn.fr))
		cl->msg_start_us = s->now_us;   /* a message's first byte: idle_transaction_timeout counts from here */
	int rc = proto_framer_feed(&cl->conn.fr, data, n, buf, &client_ops, cl);
	if (rc == PROTO_BAD_LENGTH) {
		stat_add(&s->stats->protocol_errors, 1);
		if (cl->state == CL_STARTUP) {
			/* As PostgreSQL: a client that is not speaking the protocol yet
			 * (e.g. a Terminate sent before the StartupMessage) gets no
			 * answer, only a log line. */
			LOGF(LOG_INFO, cl->conn.id, "closing client: invalid length of startup packet");
			close_later(cl);
			return;
		}
		client_fail(cl, "08P01", "invalid message length (longer than max_packet_size = %d, or shorter than 4)",
			    s->cfg->max_packet_size);
		return;
	}
	if (rc == PROTO_NO_MEMORY) {
		client_fail(cl, "53200", "out of memory");
		return;
	}
	if (cl->state == CL_CLOSED)
		return;
	if (cl->tls_asked) {
		if (!proto_framer_idle(&cl->conn.fr)) {   /* a piece of a header after SSLRequest */
			plaintext_after_ssl(cl);
			return;
		}
		start_tls(cl, false);
		return;
	}
	/* back-pressure: stop reading a client whose bytes are not getting out */
	uint32_t pending = cl->lease ? lease_pending(cl->lease) : client_repl(cl) ? client_repl(cl)->conn.out_bytes : 0;
	if (pending > (uint32_t)s->cfg->max_pending_bytes || cl->conn.out_bytes > (uint32_t)s->cfg->max_pending_bytes ||
	    (cl->lease && cl->lease->rq.n > (uint32_t)s->cfg->max_client_pipeline))
		conn_recv_off(&cl->conn);
}

/* The client's socket drained: let its server talk again if it was paused. */
void client_drained(struct client *cl)
{
	uint32_t low = (uint32_t)shard_of(cl)->cfg->max_pending_bytes / 2;
	struct server *sv = cl->lease ? cl->lease->server : client_repl(cl);
	if (cl->conn.out_bytes <= low) {
		if (sv && !sv->conn.recv_wanted && sv->state != SV_CLOSED)
			conn_recv_on(&sv->conn);
		if (!cl->conn.recv_wanted && cl->state != CL_CLOSED && !cl->conn.closing &&
		    (cl->lease ? lease_pending(cl->lease) : 0) <= low &&
		    (!cl->lease || cl->lease->rq.n <= (uint32_t)shard_of(cl)->cfg->max_client_pipeline / 2))
			conn_recv_on(&cl->conn);
	}
}

/* The server died under the client (its lease is over). */
void client_server_lost(struct client *cl, const char *sqlstate, const char *why, uint32_t owed, bool unsynced)
{
	struct pool *p = cl->pool;
	if (cl->close_deferred || (cl->extra && cl->extra->fatal_deferred)) {   /* the rest of that message will not come */
		if (cl->extra) {
			free(cl->extra->fatal_deferred);
			cl->extra->fatal_deferred = NULL;
		}
		client_reply_done(cl);
		return;
	}
	bool session = p && p->mode == POOL_SESSION;
	if (session && cl->server_fatal_relayed && cl->state != CL_CLOSED) {
		/* it has its server's FATAL already, as a direct client would */
		LOGF(LOG_INFO, cl->conn.id, "closing client: its server ended the session: %s (%s)", why, sqlstate);
		close_later(cl);
		return;
	}
	if (session || cl->state == CL_CLOSED) {
		client_fail(cl, sqlstate, "server connection lost: %s", why);
		return;
	}
	client_set_state(cl, CL_IDLE);
	session_lost(cl);
	if (cl->pins) {
		/* what pinned it died with the server (LISTEN, locks, temporary tables) */
		client_fail(cl, sqlstate, "server connection lost: %s", why);
		return;
	}
	if (!owed && !cl->in_txn && !unsynced)
		return;   /* between transactions: the next request simply gets another server */
	/* the session survives on another server: what the server said fatally is
	 * an ERROR for this client, then its transaction block (if any) is failed */
	if (cl->in_txn) {
		cl->txn_failed = true;
		cl->failed_error_sent = false;
	}
	if (!owed && !unsynced) {
		/* nothing in flight: report it on the client's next request */
		struct client_extra *x = client_extra(cl);
		if (!x) {
			client_fail(cl, sqlstate, "server connection lost: %s", why);
			return;
		}
		free(x->lost_msg);
		x->lost_msg = strdup(why);
		snprintf(x->lost_state, sizeof x->lost_state, "%s", sqlstate);
		if (!x->lost_msg)
			client_fail(cl, sqlstate, "server connection lost: %s", why);
		return;
	}
	client_fail_requests(cl, sqlstate, why, owed, unsynced);
}

void client_fail_requests(struct client *cl, const char *sqlstate, const char *why, uint32_t owed, bool unsynced)
{
	/* every request in flight fails: an error before each ReadyForQuery owed, and
	 * one for extended-protocol messages not yet synced (their implicit
	 * transaction is gone), whose Sync is then answered by pgring */
	uint32_t cap = (owed + 1) * 512 + 64;
	uint8_t *mem = malloc(cap);
	if (!mem) {
		client_fail(cl, "53200", "out of memory");
		return;
	}
	struct proto_out o;
	proto_out_init(&o, mem, cap);
	for (uint32_t i = 0; i < owed && !o.overflow; i++) {
		proto_error(&o, "ERROR", sqlstate, "%s", why);
		proto_ready(&o, cl->in_txn ? 'E' : 'I');
	}
	if (unsynced) {
		proto_error(&o, "ERROR", sqlstate, "%s", why);
		if (!cl->in_txn)
			cl->sync_failed = true;
	}
	cl->failed_error_sent = cl->in_txn;
	send_out(cl, &o);
	free(mem);
}

/* ---- cancel requests for this shard's clients ---- */

enum client_cancel_action client_cancel_action(const struct client *cl, struct server **sv)
{
	if (request_waits(cl->state))
		return CANCEL_HOLD;   /* its request has no server yet (or admission holds it back) */
	switch (cl->state) {
	case CL_REPL:
		if (!client_repl(cl) || client_repl(cl)->state != SV_ACTIVE)
			return CANCEL_NONE;
		*sv = client_repl(cl);
		return CANCEL_NOW;
	case CL_ACTIVE:
		/* pgring's restore runs first: a cancel now would fail the restore
		 * (and the client with it), not the client's request */
		if (lease_restoring(cl->lease))
			return CANCEL_HOLD;
		if (!lease_running(cl->lease))
			return CANCEL_NONE;   /* nothing in flight: no signal for its next statement to meet */
		*sv = cl->lease->server;
		return CANCEL_NOW;
	default:
		return CANCEL_NONE;
	}
}

void client_cancel_answer(struct shard *s, const struct pool_cancel_waiter *w)
{
	if (!w->conn_id)
		return;
	if (w->shard == s->id) {
		client_cancel_done(s, w->conn_id);
		return;
	}
	struct shard_msg m = { .type = POOL_MSG_CANCEL_DONE, .a = (uint32_t)w->conn_id,
			       .b = (uint32_t)(w->conn_id >> 32) };
	if (!shard_post(s->id, w->shard, &m))
		log_warning("shard %d: cannot answer a cancel connection of shard %d (queue full): "
			    "it closes at cancel_wait_timeout", s->id, w->shard);
}

void client_cancel_done(struct shard *s, uint64_t conn_id)
{
	/* it may be gone (its client gave up, cancel_wait_timeout): then nothing */
	struct client *cl, *next;
	list_for_each_safe(&pool_shard(s)->cancel_waits, cl, next, wait) {
		if (cl->conn.id == conn_id) {
			close_later(cl);
			return;
		}
	}
}

static void forward_cancel(struct shard *s, struct server *sv, const struct pool_cancel_waiter *w)
{
	stat_add(&s->stats->cancels_forwarded, 1);
	server_send_cancel(sv, w);
}

static void drop_held_cancel(struct client *cl)
{
	cl->cancel_held = false;
	client_cancel_answer(shard_of(cl), &cl->extra->cancel_waiter);
}

void client_cancel_due(struct client *cl)
{
	if (!cl->cancel_held)
		return;
	struct server *sv = NULL;
	switch (client_cancel_action(cl, &sv)) {
	case CANCEL_HOLD:
		return;   /* another restore, or still no server */
	case CANCEL_NOW:
		cl->cancel_held = false;
		LOGF(LOG_DEBUG, cl->conn.id, "its held cancel request goes to its server now");
		forward_cancel(shard_of(cl), sv, &cl->extra->cancel_waiter);
		return;
	case CANCEL_NONE:
		drop_held_cancel(cl);
		return;
	}
}

void client_cancel(struct shard *s, uint32_t pid, uint32_t key, const uint8_t *tail,
		   const struct pool_cancel_waiter *w, int hops)
{
	struct client_keys *keys = pool_shard(s)->keys;
	struct client *cl = keys ? keys->bucket[pid % KEY_BUCKETS] : NULL;
	for (; cl; cl = cl->next_key)
		if (cl->key_pid == pid && cl->key_secret == key && cl->key_long == (tail != NULL) &&
		    (!tail || memcmp(cl->extra->key_tail, tail, sizeof cl->extra->key_tail) == 0))
			break;
	if (!cl && hops + 1 < s->nshards) {
		/* moved to another shard at rest (pool/migrate.h): ask the next */
		pass_cancel(s, (s->id + 1) % s->nshards, pid, key, tail, w, hops + 1);
		return;
	}
	struct server *sv = NULL;
	switch (cl ? client_cancel_action(cl, &sv) : CANCEL_NONE) {
	case CANCEL_NOW:
		forward_cancel(s, sv, w);
		return;
	case CANCEL_HOLD:
		if (cl->cancel_held || !client_extra(cl))
			break;   /* one is held already: that one cancels the request, this one ends here */
		/* PgBouncer drops a cancel for a waiting client; PostgreSQL would
		 * cancel the query, so it is delivered once the query runs */
		LOGF(LOG_DEBUG, cl->conn.id, "cancel request held until its request runs on a server");
		cl->cancel_held = true;
		cl->extra->cancel_waiter = *w;
		return;
	case CANCEL_NONE:
		break;
	}
	client_cancel_answer(s, w);
}

/* Timeouts, checked every tick. */
/* A client of a disabled pool with disable_mode = close goes at its next
 * idle moment: never inside a transaction or with a reply on its way. A
 * replication connection has no such moment: it goes at once. */
static bool disabled_may_go(const struct client *cl)
{
	switch (cl->state) {
	case CL_IDLE:
	case CL_LOGIN_WAIT:
	case CL_REPL:
		return true;
	case CL_ACTIVE:
		return !client_busy(cl);
	default:
		return false;
	}
}

void client_tick(struct shard *s)
{
	const struct config *cfg = s->cfg;
	struct client *cl, *next;
	report_prelogin(s, 0);
	list_for_each_safe(&pool_shard(s)->clients, cl, next, all) {
		uint64_t age = s->now_us - cl->state_us;
		if (cl->pool && cl->pool->disabled && cl->pool->disable_mode == DISABLE_CLOSE && disabled_may_go(cl)) {
			int by = pool_disabled_by(cl->pool);
			client_fail(cl, "57P01", "terminating connection: %s \"%s\" was disabled",
				    by == 2 ? "user" : "database", by == 2 ? cl->user : cl->database);
			continue;
		}
		switch (cl->state) {
		case CL_STARTUP:
			if (cfg->client_startup_timeout > 0 && age > cfg->client_startup_timeout * 1e6) {
				report_prelogin(s, 1);
				client_fail(cl, "08P01", "client_startup_timeout");
				break;
			}
			/* fall through */
		case CL_AUTHQ:
			if (cl->state == CL_AUTHQ && !cl->authq_asked)
				lookup_secret(cl);   /* the control shard's queue was full */
			/* fall through */
		case CL_AUTH:
		case CL_LOGIN_WAIT:
			if (cfg->client_login_timeout > 0 && s->now_us - cl->connect_us > cfg->client_login_timeout * 1e6)
				client_fail(cl, "08P01", "client_login_timeout");
			else if (cl->state == CL_LOGIN_WAIT && cfg->query_wait_timeout > 0 &&
				 age > cfg->query_wait_timeout * 1e6)
				client_fail(cl, "08P01", "query_wait_timeout");
			break;
		case CL_CANCEL:
			if (age > cfg->cancel_wait_timeout * 1e6) {
				LOGF(LOG_INFO, cl->conn.id, "cancel request not confirmed by the server within "
				     "cancel_wait_timeout: closing its connection");
				close_later(cl);
			}
			break;
		case CL_REPL:
			if (client_repl(cl) && client_repl(cl)->state != SV_ACTIVE && cfg->client_login_timeout > 0 &&
			    s->now_us - cl->connect_us > cfg->client_login_timeout * 1e6)
				client_fail(cl, "08P01", "client_login_timeout");
			break;
		case CL_WAITING:
		case CL_ROUTING:
			if (welcome_unserved(cl))
				break;   /* the server opening for it failed, or went to another */
			if (cl->welcome_owed && cfg->client_login_timeout > 0 &&
			    s->now_us - cl->connect_us > cfg->client_login_timeout * 1e6)
				client_fail(cl, "08P01", "client_login_timeout");
			else if (cfg->query_wait_timeout > 0 && s->now_us - cl->wait_start_us > cfg->query_wait_timeout * 1e6)
				client_fail(cl, "08P01", "query_wait_timeout");
			break;
		case CL_CLOSED:
			if (cl->close_deferred && age > CLOSE_DRAIN_US) {
				/* the message it waits for does not end: cut it short */
				cl->lease->reply_passing = false;
				client_reply_done(cl);
			}
			/* closing, but the peer does not take our last bytes: cut it off */
			if (age > CLOSE_DRAIN_US && cl->conn.fd >= 0 && !cl->conn.eof) {
				LOGF(LOG_INFO, cl->conn.id, "client does not read its last messages: dropping them");
				shutdown(cl->conn.fd, SHUT_RDWR);
				cl->conn.eof = true;
			}
			break;
		case CL_IDLE: {
			double idle = cl->pool ? cl->pool->client_idle_timeout : cfg->client_idle_timeout;
			if (idle > 0 && age > idle * 1e6)
				client_fail(cl, "08P01", "client_idle_timeout");
			break;
		}
		case CL_ACTIVE: {
			const struct lease *l = cl->lease;
			double in_txn = cl->pool ? cl->pool->idle_transaction_timeout : cfg->idle_transaction_timeout;
			double query = cl->pool ? cl->pool->query_timeout : cfg->query_timeout;
			if (in_txn > 0 && !l->expect && l->server->txn_status != 'I' &&
			    s->now_us - l->server->last_rfq_us > in_txn * 1e6)
				client_fail(cl, "25P03", "idle_transaction_timeout");
			else if (in_txn > 0 && !proto_framer_idle(&cl->conn.fr) && s->now_us - cl->msg_start_us > in_txn * 1e6)
				/* a message trickling in holds its server as idly as an open block */
				client_fail(cl, "25P03", "idle_transaction_timeout (a message not complete)");
			else if (query > 0 && l->expect && s->now_us - cl->query_start_us > query * 1e6)
				client_fail(cl, "57014", "query_timeout");
			break;
		}
		default:
			break;
		}
	}
}

/* ---- the client's socket, as core/conn.c reports on it ---- */

static void conn_data(struct conn *c, uint8_t *data, uint32_t n, uint32_t buf)
{
	client_data(conn_owner(c, struct client), data, n, buf);
}

static void conn_eof(struct conn *c, int err) { client_eof(conn_owner(c, struct client), err); }
static void conn_drained(struct conn *c) { client_drained(conn_owner(c, struct client)); }
static void conn_free(struct conn *c) { client_free(conn_owner(c, struct client)); }
static void conn_parked(struct conn *c)
{
	struct client *cl = conn_owner(c, struct client);
	if (cl->migrating)
		migrate_client_parked(cl);   /* to another shard (pool/migrate.c) */
	else
		upgrade_client_parked(cl);   /* to a successor (pool/upgrade.c) */
}

static const struct conn_ops client_conn_ops = {
	.data = conn_data,
	.eof = conn_eof,
	.drained = conn_drained,
	.parked = conn_parked,
	.free = conn_free,
};

bool client_busy(const struct client *cl)
{
	const struct lease *l = cl->lease;
	return cl->state == CL_WAITING || cl->state == CL_ROUTING || cl->state == CL_THROTTLED ||
	       (cl->state == CL_ACTIVE && (l->expect || cl->in_txn || l->server->hidden));
}
