/* pool/route.c: which node of a cluster a transaction goes to. The target
 * (primary, replica, any) comes from the client's startup, a leading
 * `--!pgring target=...` comment or, with read_write_split, from proving the
 * statement read-only; the node from the shard's topology snapshot: the
 * primary, or a replica chosen by weight among those under their lag limit,
 * the less busy of two picks. Clients whose target has no node now (no
 * primary during a failover) wait here until a topology brings one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/shard.h"
#include "pool/client.h"
#include "pool/pool.h"
#include "pool/route.h"
#include "pool/server.h"
#include "proto/sqlroute.h"

_Static_assert((int)TARGET_PRIMARY == (int)PROTO_TARGET_PRIMARY && (int)TARGET_REPLICA == (int)PROTO_TARGET_REPLICA &&
		       (int)TARGET_ANY == (int)PROTO_TARGET_ANY,
	       "config and proto targets share their values");

/* First messages longer than this are routed without reading them. */
#define ROUTE_PEEK_MAX 16384

static struct shard *shard_of(const struct client *cl) { return cl->conn.shard; }

static const struct topo_cluster *cluster_of(const struct pool *p)
{
	const struct topology *t = p->shard->topo;
	return p->ci >= 0 && p->ci < t->nclusters ? &t->clusters[p->ci] : NULL;
}

/* ---- indexes into the current topology ---- */

void route_refresh_pool(struct pool *p)
{
	const struct topology *t = p->shard->topo;
	p->ci = p->ni = -1;
	free(p->sib);
	p->sib = NULL;
	p->nsib = 0;
	if (!p->cluster)
		return;
	for (int i = 0; i < t->nclusters; i++) {
		const struct config_cluster *cc = t->clusters[i].cc;
		if (strcmp(cc->name, p->cluster) != 0)
			continue;
		p->ci = i;
		for (int k = 0; k < cc->nnodes; k++)
			if (p->node && strcmp(cc->nodes[k].name, p->node->node) == 0)
				p->ni = k;
	}
}

/* The pool of the same (database, user) on node ni of p's cluster. */
static struct pool *sibling(struct pool *p, int ni)
{
	if (ni == p->ni)
		return p;
	const struct topo_cluster *tc = cluster_of(p);
	if (!tc || ni < 0 || ni >= tc->cc->nnodes)
		return NULL;
	if (!p->sib) {
		p->sib = calloc((size_t)tc->cc->nnodes, sizeof *p->sib);
		if (!p->sib)
			return NULL;
		p->nsib = tc->cc->nnodes;
	}
	if (!p->sib[ni])
		p->sib[ni] = pool_find(p->shard, p->db_name, p->user, tc->nodes[ni].shared, true);
	return p->sib[ni];
}

/* ---- choosing a node: pure functions of the snapshot ---- */

static uint64_t next_random(uint64_t *rng)
{
	*rng ^= *rng << 13;
	*rng ^= *rng >> 7;
	*rng ^= *rng << 17;
	return *rng;
}

static bool readable(const struct topo_cluster *tc, int i, bool with_primary)
{
	const struct topo_node *n = &tc->nodes[i];
	if (n->state != NODE_UP || n->weight <= 0)
		return false;
	return n->role == NODE_REPLICA || (with_primary && i == tc->primary);
}

static int weighted_pick(const struct topo_cluster *tc, bool with_primary, int total, uint64_t *rng)
{
	int64_t r = (int64_t)(next_random(rng) % (uint64_t)total);
	for (int i = 0; i < tc->cc->nnodes; i++) {
		if (!readable(tc, i, with_primary))
			continue;
		r -= tc->nodes[i].weight;
		if (r < 0)
			return i;
	}
	return -1;
}

/* A node for reads: two picks by weight, the less loaded wins; with no node
 * to read from, the primary (or -1). */
static int pick_reader(const struct topo_cluster *tc, bool with_primary, uint64_t *rng,
		       double (*load)(const struct topo_cluster *tc, int node))
{
	int total = 0;
	for (int i = 0; i < tc->cc->nnodes; i++)
		if (readable(tc, i, with_primary))
			total += tc->nodes[i].weight;
	if (total == 0)
		return tc->primary;
	int a = weighted_pick(tc, with_primary, total, rng), b = weighted_pick(tc, with_primary, total, rng);
	if (a < 0 || b < 0 || a == b)
		return a >= 0 ? a : b;
	return load(tc, b) < load(tc, a) ? b : a;
}

int route_pick_node(const struct topo_cluster *tc, int target, uint64_t *rng,
		    double (*load)(const struct topo_cluster *tc, int node))
{
	switch (target) {
	case TARGET_REPLICA:
		return pick_reader(tc, false, rng, load);
	case TARGET_ANY:
		return pick_reader(tc, true, rng, load);
	default:
		return tc->primary;
	}
}

/* Busy per unit of weight: servers leased now, all shards. */
static double node_load(const struct topo_cluster *tc, int i)
{
	const struct topo_node *n = &tc->nodes[i];
	return (double)registry_node_active(n->shared) / (double)n->weight;
}

static int pick_node(struct shard *s, const struct topo_cluster *tc, int target)
{
	uint64_t *rng = &pool_shard(s)->rng;
	if (!*rng)
		*rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)s->id << 32) ^ s->now_us;
	return route_pick_node(tc, target, rng, node_load);
}

static int default_target(const struct client *cl)
{
	return cl->target ? cl->target : config_db_target(cl->conn.shard->cfg, cl->pool->db);
}

/* The name of the statement a Bind binds, or NULL if the message is cut short. */
static const char *bind_statement(const uint8_t *msg, uint32_t len)
{
	struct proto_reader r;
	proto_reader_init(&r, msg + 5, len - 5);
	proto_read_str(&r);   /* the portal */
	const char *stmt = proto_read_str(&r);
	return r.bad ? NULL : stmt;
}

/* The statement text a Query or Parse carries, or a Bind names (prepared
 * earlier, so its text is known); NULL for anything else. */
static const char *statement_text(const struct client *cl, uint8_t type, const uint8_t *msg, uint32_t len,
				  size_t *n)
{
	if (len <= 5)
		return NULL;
	const char *sql = NULL;
	if (type == 'Q' || type == 'P') {
		struct proto_reader r;
		proto_reader_init(&r, msg + 5, len - 5);
		sql = proto_read_str(&r);
		if (type == 'P')
			sql = proto_read_str(&r);   /* after the statement's name */
		if (r.bad)
			return NULL;
		*n = strlen(sql);
	} else if (type == 'B' && cl->sess) {
		const char *name = bind_statement(msg, len);
		struct pstmt *st = name ? stmt_map_get(&cl->sess->stmts, name) : NULL;
		if (st) {
			sql = (const char *)st->body;
			*n = strnlen(sql, st->body_len);
		}
	}
	return sql;
}

/* Where one Query, Parse or Bind would go on its own: a hint says, else a
 * proof of read-only sends it off the primary, else the default. */
static int message_target(const struct client *cl, int dflt, uint8_t type, const uint8_t *msg, uint32_t len)
{
	size_t n = 0;
	const char *sql = statement_text(cl, type, msg, len, &n);
	if (!sql)
		return dflt;
	int hint = proto_sql_target_hint(sql, n);
	if (hint != PROTO_TARGET_NONE)
		return hint;
	if (dflt == TARGET_PRIMARY && config_db_split(cl->conn.shard->cfg, cl->pool->db) && proto_sql_read_only(sql, n))
		return TARGET_REPLICA;
	return dflt;
}

/* A Bind of the statement a Parse earlier in the segment made (and judged). */
static bool binds_parsed(const uint8_t *bind, uint32_t len, const char *const *parsed, int nparsed)
{
	const char *stmt = bind_statement(bind, len);
	for (int i = 0; stmt && i < nparsed; i++)
		if (strcmp(parsed[i], stmt) == 0)
			return true;
	return false;
}

/* An extended-protocol segment is one implicit transaction up to its Sync and
 * cannot be split between nodes: it leaves the primary only if all of it is
 * in view (ahead: what followed the first message in the same receive) and no
 * message in it must stay. */
static int segment_target(const struct client *cl, int dflt, int first, const uint8_t *msg,
			  const uint8_t *ahead, uint32_t ahead_len)
{
	const char *parsed[8];
	int nparsed = 0;
	if (msg[0] == 'P')
		parsed[nparsed++] = (const char *)msg + 5;
	const uint8_t *m = ahead, *end = ahead ? ahead + ahead_len : NULL;
	while (m && end - m >= 5) {
		uint32_t mlen = proto_get_u32(m + 1) + 1;
		if (mlen < 5 || mlen > (uint32_t)(end - m))
			break;
		switch (m[0]) {
		case 'S':
			return first;
		case 'P':
			if (message_target(cl, dflt, 'P', m, mlen) == TARGET_PRIMARY)
				return TARGET_PRIMARY;
			if (nparsed < 8)
				parsed[nparsed++] = (const char *)m + 5;
			break;
		case 'B':
			if (!binds_parsed(m, mlen, parsed, nparsed) &&
			    message_target(cl, dflt, 'B', m, mlen) == TARGET_PRIMARY)
				return TARGET_PRIMARY;
			break;
		case 'E':
		case 'D':
		case 'C':
		case 'H':
			break;
		default:
			return TARGET_PRIMARY;   /* a function call, COPY data, a Query inside */
		}
		m += mlen;
	}
	return TARGET_PRIMARY;   /* its Sync is not here yet: the rest is unseen */
}

int route_target(const struct client *cl, const uint8_t *msg, uint32_t len, const uint8_t *ahead,
		 uint32_t ahead_len)
{
	const struct pool *p = cl->pool;
	if (!p->cluster)
		return TARGET_PRIMARY;   /* one server address: nothing to choose */
	int dflt = default_target(cl);
	if (!msg || p->mode == POOL_SESSION)
		return dflt;   /* a session keeps the node its first request got */
	int first = message_target(cl, dflt, msg[0], msg, len);
	if (msg[0] == 'Q' || first == TARGET_PRIMARY || dflt != TARGET_PRIMARY)
		return first;   /* a Query is a segment of its own; a client's own target holds */
	return segment_target(cl, dflt, first, msg, ahead, ahead_len);
}

/* A transaction sent off the primary though the client's default is the
 * primary: requests pipelined behind it must each earn that too. */
bool route_guarded(const struct client *cl)
{
	const struct pool *p = cl->pool;
	return p && p->cluster && p->mode != POOL_SESSION && cl->txn_target && cl->txn_target != TARGET_PRIMARY &&
	       default_target(cl) == TARGET_PRIMARY;
}

bool route_wants_text(const struct client *cl)
{
	return cl->pool && cl->pool->cluster;
}

uint32_t route_peek_max(void) { return ROUTE_PEEK_MAX; }

struct pool *route_pool(struct client *cl)
{
	struct pool *home = cl->pool;
	if (!home->cluster)
		return home;
	const struct topo_cluster *tc = cluster_of(home);
	if (!tc)
		return NULL;   /* the cluster left the configuration */
	struct shard *s = shard_of(cl);
	int ni = pick_node(s, tc, cl->txn_target ? cl->txn_target : TARGET_PRIMARY);
	if (ni < 0)
		return NULL;
	return sibling(home, ni);
}

/* Where a client learns its parameters at login: a node of its target, else any
 * node still up, else the first (whose failing connects then make it wait). */
struct pool *route_login_pool(struct client *cl)
{
	struct shard *s = shard_of(cl);
	const struct config_cluster *c;
	size_t base_len;
	const struct config_db *db = config_resolve_db(s->cfg, cl->database, &c, &base_len);
	if (!db)
		return NULL;
	if (!c)
		return pool_find(s, cl->database, cl->user, NULL, true);
	const struct topo_cluster *tc = NULL;
	for (int i = 0; i < s->topo->nclusters; i++)
		if (s->topo->clusters[i].cc == c)
			tc = &s->topo->clusters[i];
	if (!tc)
		return NULL;
	int target = cl->target ? cl->target : config_db_target(s->cfg, db);
	int ni = pick_node(s, tc, target);
	for (int i = 0; ni < 0 && i < c->nnodes; i++)
		if (tc->nodes[i].state != NODE_DOWN)
			ni = i;
	return pool_find(s, cl->database, cl->user, tc->nodes[ni < 0 ? 0 : ni].shared, true);
}

/* in_hot_standby as the client should see it at login: libpq's
 * target_session_attrs (read-write, standby, ...) judges pgring by it. */
const char *route_login_standby(const struct client *cl)
{
	return default_target(cl) == TARGET_REPLICA ? "on" : "off";
}

/* Waiters of a pool whose node no longer suits their target move. */
static bool misplaced(const struct client *cl, const struct pool *p)
{
	const struct topo_cluster *tc = cluster_of(p);
	if (!tc || p->ni < 0)
		return true;
	const struct topo_node *n = &tc->nodes[p->ni];
	if (n->state == NODE_DOWN)
		return true;
	switch (cl->txn_target ? cl->txn_target : TARGET_PRIMARY) {
	case TARGET_PRIMARY:
		return tc->primary != p->ni;
	case TARGET_REPLICA:
		return n->state != NODE_UP || (n->role != NODE_REPLICA && pick_node(p->shard, tc, TARGET_REPLICA) != p->ni);
	default:
		return n->state != NODE_UP;
	}
}

void route_refresh(struct shard *s)
{
	for (struct pool *p = pool_shard(s)->pools; p; p = p->next) {
		route_refresh_pool(p);
		const struct topo_cluster *tc = cluster_of(p);
		if (tc && p->ni >= 0 && tc->nodes[p->ni].state != NODE_DOWN && p->fails_in_row)
			pool_reset_backoff(p);   /* the health check reaches it: so may we */
		struct server *sv;
		if (tc && p->ni >= 0 && tc->nodes[p->ni].state == NODE_DOWN)
			while ((sv = list_first(&p->idle, struct server, link)))
				server_close(sv, "node is down");
	}
	/* clients logging in through a node that went down learn their parameters elsewhere */
	struct client *cl, *next;
	for (struct pool *p = pool_shard(s)->pools; p; p = p->next) {
		const struct topo_cluster *tc = cluster_of(p);
		if (!p->cluster || (tc && p->ni >= 0 && tc->nodes[p->ni].state != NODE_DOWN))
			continue;
		list_for_each_safe(&p->login, cl, next, wait) {
			struct pool *np = route_login_pool(cl);
			if (np && np != p)
				pool_login_wait(np, cl);
		}
	}
	/* those waiting where they no longer belong join the ones with no node,
	 * in the order they came; then all are routed again (keeping their
	 * wait_start_us) */
	for (struct pool *p = pool_shard(s)->pools; p; p = p->next) {
		if (!p->cluster)
			continue;
		list_for_each_safe(&p->waiting, cl, next, wait)
			if (misplaced(cl, p))
				client_set_state(cl, CL_ROUTING);
	}
	struct list *routing = &pool_shard(s)->routing;
	struct client *last = list_last(routing, struct client, wait);
	while (last && (cl = list_first(routing, struct client, wait))) {
		pool_request_server(cl);   /* back on the list (at its end) if still no node */
		if (cl == last)
			break;
	}
}

void route_tick(struct shard *s)
{
	const struct config *cfg = s->cfg;
	if (cfg->failover_timeout <= 0)
		return;
	uint64_t limit = (uint64_t)(cfg->failover_timeout * 1e6);
	struct client *cl;
	while ((cl = list_first(&pool_shard(s)->routing, struct client, wait)) && s->now_us - cl->wait_start_us > limit) {
		client_fail(cl, "57P03", "no %s available for database \"%s\" (failover_timeout)",
			    cl->txn_target == TARGET_REPLICA ? "node" : "primary", cl->database);
	}
}
