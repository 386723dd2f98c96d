/* pool/pool.c: a shard's pools: which server a client's lease gets, who
 * waits, when servers are opened, parked, moved and closed. The server budget
 * is shared by every shard through pool_shared; a shard whose clients wait
 * while another shard sits on idle servers gets them through the POOL_WAKE
 * and POOL_MSG_ADOPT_SERVER messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/shard.h"
#include "pool/admin.h"
#include "pool/client.h"
#include "pool/lease.h"
#include "pool/listen.h"
#include "pool/pool.h"
#include "pool/route.h"
#include "pool/server.h"
#include "pool/upgrade.h"

/* ---- the pool's private copy of its [databases] entry ---- */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static struct config_db *db_copy(const struct config_db *src)
{
	struct config_db *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	*d = *src;
	d->name = dup_or_null(src->name);
	d->host = dup_or_null(src->host);
	d->dbname = dup_or_null(src->dbname);
	d->user = dup_or_null(src->user);
	d->password = dup_or_null(src->password);
	d->auth_user = dup_or_null(src->auth_user);
	d->auth_dbname = dup_or_null(src->auth_dbname);
	d->auth_query = dup_or_null(src->auth_query);
	d->client_encoding = dup_or_null(src->client_encoding);
	d->datestyle = dup_or_null(src->datestyle);
	d->timezone = dup_or_null(src->timezone);
	d->application_name = dup_or_null(src->application_name);
	d->connect_query = dup_or_null(src->connect_query);
	d->cluster = dup_or_null(src->cluster);
	return d;
}

static void db_free(struct config_db *d)
{
	if (!d)
		return;
	free(d->name); free(d->host); free(d->dbname); free(d->user); free(d->password);
	free(d->auth_user); free(d->auth_dbname); free(d->auth_query); free(d->client_encoding); free(d->datestyle); free(d->timezone);
	free(d->application_name); free(d->connect_query); free(d->cluster);
	free(d);
}

static bool str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* Would servers made from `a` differ from servers made from `b`? */
static bool db_conn_differs(const struct config_db *a, const struct config_db *b)
{
	return str_differs(a->host, b->host) || a->port != b->port || str_differs(a->dbname, b->dbname) ||
	       str_differs(a->user, b->user) || str_differs(a->password, b->password) ||
	       str_differs(a->client_encoding, b->client_encoding) || str_differs(a->datestyle, b->datestyle) ||
	       str_differs(a->timezone, b->timezone) || str_differs(a->application_name, b->application_name) ||
	       a->server_tls_sslmode != b->server_tls_sslmode;
}

static void settings(struct pool *p, const struct config *cfg)
{
	const struct config_user *u = config_find_user(cfg, p->user);
	p->mode = config_pool_mode(cfg, p->db, u);
	atomic_store(&p->shared->mode, p->mode);
	atomic_store(&p->shared->size, config_pool_size(cfg, p->db, u));
	int min = p->db->min_pool_size >= 0 ? p->db->min_pool_size : cfg->min_pool_size;
	atomic_store(&p->shared->min_size, min);
	int reserve = u && u->reserve_pool_size >= 0 ? u->reserve_pool_size
		      : p->db->reserve_pool_size >= 0 ? p->db->reserve_pool_size : cfg->reserve_pool_size;
	atomic_store(&p->shared->reserve, reserve);
	int max_db = p->db->max_db_connections >= 0 ? p->db->max_db_connections : cfg->max_db_connections;
	atomic_store(&p->shared->db_limit->max, max_db);
	int max_user = u && u->max_user_connections >= 0 ? u->max_user_connections : cfg->max_user_connections;
	atomic_store(&p->shared->user_limit->max, max_user);
	int maxc_db = p->db->max_db_client_connections >= 0 ? p->db->max_db_client_connections
							     : cfg->max_db_client_connections;
	atomic_store(&p->shared->db_limit->max_clients, maxc_db);
	int maxc_user = u && u->max_user_client_connections >= 0 ? u->max_user_client_connections
								 : cfg->max_user_client_connections;
	atomic_store(&p->shared->user_limit->max_clients, maxc_user);
	p->query_timeout = u && u->query_timeout >= 0 ? u->query_timeout : cfg->query_timeout;
	p->idle_transaction_timeout = u && u->idle_transaction_timeout >= 0 ? u->idle_transaction_timeout
									    : cfg->idle_transaction_timeout;
	p->client_idle_timeout = u && u->client_idle_timeout >= 0 ? u->client_idle_timeout
				 : p->db->client_idle_timeout >= 0 ? p->db->client_idle_timeout
								    : cfg->client_idle_timeout;
	p->cfg_db_disabled = p->db->disabled == 1;
	p->cfg_user_disabled = u && u->disabled == 1;
	p->disable_mode = (uint8_t)(u && u->disable_mode >= 0 ? u->disable_mode
				    : p->db->disable_mode >= 0 ? p->db->disable_mode : cfg->disable_mode);
}

int pool_disabled_by(const struct pool *p)
{
	bool flags = admin_any_flag();
	if (p->cfg_db_disabled || (flags && admin_db_disabled(p->db_name)))
		return 1;
	if (p->cfg_user_disabled || (flags && admin_user_disabled(p->user)))
		return 2;
	return 0;
}

void pool_tick_disabled(struct shard *s)
{
	for (struct pool *p = pool_shard(s)->pools; p; p = p->next)
		p->disabled = pool_disabled_by(p) != 0;
}

static const struct config_node *find_node(const struct config_cluster *c, const struct node_shared *ns)
{
	for (int i = 0; c && ns && i < c->nnodes; i++)
		if (strcmp(c->nodes[i].name, ns->node) == 0)
			return &c->nodes[i];
	return NULL;
}

/* The pool's own copy of what its servers are made from: the [databases] entry,
 * and for a cluster database the node's address and the real database name. */
static struct config_db *pool_entry(const struct config *cfg, const char *db, const struct node_shared *ns,
				    char **cluster_name)
{
	const struct config_cluster *c;
	size_t base_len;
	const struct config_db *entry = config_resolve_db(cfg, db, &c, &base_len);
	*cluster_name = NULL;
	if (!entry || (c == NULL) != (ns == NULL) || (c && strcmp(c->name, ns->cluster) != 0))
		return NULL;
	const struct config_node *n = find_node(c, ns);
	if (c && !n)
		return NULL;
	struct config_db *d = db_copy(entry);
	if (!d)
		return NULL;
	if (n) {
		free(d->host);
		d->host = dup_or_null(n->host);
		d->port = n->port;
		*cluster_name = strdup(c->name);
	}
	if (!d->dbname && base_len != strlen(db))
		d->dbname = strndup(db, base_len);   /* "db@cluster": the real name is "db" */
	return d;
}

struct pool *pool_find(struct shard *s, const char *db, const char *user, struct node_shared *node, bool create)
{
	for (struct pool *p = pool_shard(s)->pools; p; p = p->next)
		if (p->node == node && strcmp(p->db_name, db) == 0 && strcmp(p->user, user) == 0)
			return p;
	if (!create)
		return NULL;
	char *cluster;
	struct config_db *entry = pool_entry(s->cfg, db, node, &cluster);
	struct pool_shared *shared = entry ? registry_get(db, user, node) : NULL;
	struct pool *p = shared ? calloc(1, sizeof *p) : NULL;
	if (!p) {
		db_free(entry);
		free(cluster);
		return NULL;
	}
	p->shard = s;
	p->shared = shared;
	p->stats = &shared->shard[s->id];
	p->db_name = strdup(db);
	p->user = strdup(user);
	p->db = entry;
	p->node = node;
	p->cluster = cluster;
	p->ci = p->ni = -1;
	list_init(&p->idle);
	list_init(&p->used);
	list_init(&p->waiting);
	list_init(&p->login);
	if (!p->db_name || !p->user) {
		free(p->db_name);
		free(p->user);
		free(p->cluster);
		db_free(entry);
		free(p);
		return NULL;
	}
	settings(p, s->cfg);
	p->next = pool_shard(s)->pools;
	pool_shard(s)->pools = p;
	route_refresh_pool(p);
	LOGF(LOG_DEBUG, 0, "new pool %s/%s%s%s mode=%s size=%d", db, user, node ? " node " : "", node ? shared->node : "",
	     config_pool_mode_name(p->mode), atomic_load(&shared->size));
	return p;
}

/* Idle servers close now, the others when they come back. */
static void close_servers(struct pool *p, const char *why)
{
	struct server *sv, *tmp;
	list_for_each_safe(&p->used, sv, tmp, link)
		sv->close_when_idle = true;
	while ((sv = list_first(&p->idle, struct server, link)))
		server_close(sv, why);
}

/* A new topology: re-read every pool's settings (when the configuration
 * changed); servers made from a changed entry are replaced as they come free.
 * Then routing takes the new roles and states. */
void pool_refresh_all(struct shard *s, bool cfg_changed)
{
	for (struct pool *p = pool_shard(s)->pools; cfg_changed && p; p = p->next) {
		char *cluster;
		struct config_db *entry = pool_entry(s->cfg, p->db_name, p->node, &cluster);
		free(cluster);
		if (entry) {
			if (db_conn_differs(entry, p->db)) {
				close_servers(p, "database settings changed");
				p->have_welcome = false;
				params_clear(&p->defaults);
				/* stale for every shard; the old copy is left to leak (rare,
				 * small) because another shard may be reading it right now */
				atomic_store(&p->shared->welcome, NULL);
			}
			db_free((struct config_db *)p->db);
			p->db = entry;
		} else if (p->node) {
			/* the node left the configuration: its waiters are routed elsewhere */
			close_servers(p, "node removed from the configuration");
		}
		settings(p, s->cfg);
	}
	route_refresh(s);
	pool_retry_waiters(s);
}

/* ---- getting servers ---- */

static struct client *first_waiter(struct pool *p)
{
	return list_first(&p->waiting, struct client, wait);
}

void pool_waiting_head(struct pool *p)
{
	struct client *first = first_waiter(p);
	int64_t since = first ? (int64_t)(first->wait_start_us ? first->wait_start_us : p->shard->now_us) : 0;
	gauge_add(&p->stats->head_since_us, since - gauge_get(&p->stats->head_since_us));
}

static struct client *first_login(struct pool *p)
{
	return list_first(&p->login, struct client, wait);
}

/* client_fail takes each off its list (it is CL_CLOSED on return). */
static void fail_waiters(struct pool *p, bool login_only)
{
	const char *msg = p->last_error[0] ? p->last_error : "could not connect to the server";
	const char *state = p->last_sqlstate[0] ? p->last_sqlstate : "08006";
	struct client *cl;
	while ((cl = first_login(p)))
		client_fail(cl, state, "%s", msg);
	while (!login_only && (cl = first_waiter(p)))
		client_fail(cl, state, "%s", msg);
}

/* The oldest waiting client has waited past reserve_pool_timeout. */
static bool reserve_due(struct pool *p)
{
	const struct config *cfg = p->shard->cfg;
	struct client *first = first_waiter(p);
	return first && atomic_load_explicit(&p->shared->reserve, memory_order_relaxed) > 0 &&
	       p->shard->now_us - first->wait_start_us > (uint64_t)(cfg->reserve_pool_timeout * 1e6);
}

/* Clients waiting to log in need one server (to learn its parameters): make
 * that demand visible to the other shards like any waiting client's. */
void pool_sync_login_demand(struct pool *p)
{
	bool need = !list_empty(&p->login) && !p->have_welcome;
	if (need == p->login_counted)
		return;
	p->login_counted = need;
	atomic_fetch_add(&p->shared->waiting, need ? 1 : -1);
}

static void report_connect_fails(struct pool *p, int add)
{
	int n = log_rate_due(&p->connect_fail_log, p->shard->now_us, add);
	if (n)
		log_warning("cannot connect for %s/%s%s%s: %s (%d time%s since the last report)", p->db_name, p->user,
			    p->node ? " to node " : "", p->node ? p->shared->node : "",
			    p->last_error[0] ? p->last_error : "connected again", n, n == 1 ? "" : "s");
}

/* Failures worth waiting out: the server is down, restarting, refusing
 * connections for now or full. Anything else (a wrong password, no such
 * database) is told to the waiting clients at once. */
static bool transient(const char *sqlstate)
{
	return !sqlstate[0] || (strncmp(sqlstate, "08", 2) == 0 && strcmp(sqlstate, "08P01") != 0) ||
	       strncmp(sqlstate, "57P", 3) == 0 || strcmp(sqlstate, "53300") == 0;
}

/* A connect or login failed: back off, doubling from 0.1 s up to server_login_retry. */
static void connect_failed(struct pool *p)
{
	struct shard *s = p->shard;
	uint64_t max = (uint64_t)(s->cfg->server_login_retry * 1e6);
	if (max < 100000)
		max = 100000;
	p->fails_in_row++;
	p->last_connect_fail_us = s->now_us;
	report_connect_fails(p, 1);
	p->backoff_us = p->backoff_us ? (uint32_t)(2ull * p->backoff_us > max ? max : 2ull * p->backoff_us) : 100000;
	p->retry_at_us = s->now_us + p->backoff_us;
	if (!transient(p->last_sqlstate) && !p->n_idle && p->n_used == p->n_connecting)
		fail_waiters(p, false);   /* nothing else is up: tell them now */
	else if (!transient(p->last_sqlstate) && !p->have_welcome)
		fail_waiters(p, true);
}

/* The node answers again (or a new topology says it is up): retry at once. */
void pool_reset_backoff(struct pool *p)
{
	p->retry_at_us = 0;
	p->backoff_us = 0;
}

/* Clients that waited longer than failover_timeout for a failing server. */
static void fail_long_waiters(struct pool *p)
{
	const struct config *cfg = p->shard->cfg;
	if (!p->fails_in_row || cfg->failover_timeout <= 0)
		return;
	uint64_t limit = (uint64_t)(cfg->failover_timeout * 1e6), now = p->shard->now_us;
	const char *msg = p->last_error[0] ? p->last_error : "could not connect to the server";
	const char *state = p->last_sqlstate[0] ? p->last_sqlstate : "08006";
	struct client *cl, *next;
	while ((cl = first_waiter(p)) && now - cl->wait_start_us > limit)
		client_fail(cl, state, "%s (failover_timeout)", msg);
	list_for_each_safe(&p->login, cl, next, wait)
		if (now - cl->state_us > limit)
			client_fail(cl, state, "%s (failover_timeout)", msg);
}

static void launch(struct pool *p)
{
	if (p->retry_at_us > p->shard->now_us)
		return;   /* backing off: housekeeping tries again when it is due */
	if (!registry_take_slot(p->shared, reserve_due(p)))
		return;
	struct server *sv = server_connect(p, NULL, false);
	if (!sv) {
		registry_give_slot(p->shared);
		connect_failed(p);
		return;
	}
	p->n_connecting++;
}

/* Open servers while clients wait for more than are on their way. */
static void launch_for_waiters(struct pool *p)
{
	if (admin_db_paused(p->db_name))
		return;   /* PAUSE: waiters wait for RESUME, no server is opened for them */
	int want = p->n_waiting + (!list_empty(&p->login) && !p->have_welcome ? 1 : 0);
	while (p->n_connecting < want) {
		int before = p->n_connecting;
		launch(p);
		if (p->n_connecting == before)
			break;
	}
}

/* The server goes to the client's lease. false: the client failed on the way
 * (its welcome, in session pooling) and the server is not taken. */
static bool take(struct server *sv, struct client *cl)
{
	struct pool *p = sv->pool;
	if (cl->welcome_owed && !client_welcome_server(cl, sv))
		return false;
	sv->lease_us = p->shard->now_us;
	stat_add(&p->stats->server_assignments, 1);
	if (p->node) {
		/* transactions routed to the node: this shard's own line, so no atomic add needed */
		_Atomic uint64_t *routed = &p->node->shard[p->shard->id].routed;
		atomic_store_explicit(routed, atomic_load_explicit(routed, memory_order_relaxed) + 1, memory_order_relaxed);
	}
	server_set_state(sv, SV_ACTIVE);
	conn_recv_on(&sv->conn);
	lease_attach(cl->lease, sv);
	return true;
}

void pool_login_wait(struct pool *p, struct client *cl)
{
	if (cl->pool != p)
		client_set_pool(cl, p);
	if (pool_adopt_welcome(p)) {
		client_login_finish(cl);
		return;
	}
	client_set_state(cl, CL_LOGIN_WAIT);
	launch_for_waiters(p);
}

void pool_request_server(struct client *cl)
{
	INVARIANT(cl->lease && !cl->lease->server);
	struct pool *p = route_pool(cl);
	if (!p) {
		client_set_state(cl, CL_ROUTING);   /* no node for its target now (no primary): until a topology brings one */
		return;
	}
	if (p != cl->pool)
		client_set_pool(cl, p);
	struct server *sv = admin_db_paused(p->db_name) ? NULL : list_first(&p->idle, struct server, link);
	if (sv) {
		take(sv, cl);   /* if the client failed instead, the server stays idle */
		return;
	}
	client_set_state(cl, CL_WAITING);
	launch_for_waiters(p);
}

bool pool_opening_for_all(const struct pool *p) { return p->n_connecting >= p->n_waiting; }

/* ---- giving servers back ---- */

/* Publish the parameters for the other shards (first one wins; a stale copy
 * after a configuration change is dropped by pool_refresh_all). */
static void publish_welcome(struct pool *p)
{
	size_t len = 0;
	for (int i = 0; i < p->defaults.n; i++)
		len += strlen(p->defaults.v[i].name) + strlen(p->defaults.v[i].value) + 2;
	struct pool_welcome *w = malloc(sizeof *w + len);
	if (!w)
		return;
	w->len = (uint32_t)len;
	char *o = w->data;
	for (int i = 0; i < p->defaults.n; i++) {
		o = stpcpy(o, p->defaults.v[i].name) + 1;
		o = stpcpy(o, p->defaults.v[i].value) + 1;
	}
	struct pool_welcome *none = NULL;
	if (!atomic_compare_exchange_strong(&p->shared->welcome, &none, w))
		free(w);
}

/* Take the parameters another shard learned, if any. */
bool pool_adopt_welcome(struct pool *p)
{
	if (p->have_welcome)
		return true;
	struct pool_welcome *w = atomic_load_explicit(&p->shared->welcome, memory_order_acquire);
	if (!w)
		return false;
	params_clear(&p->defaults);
	for (const char *c = w->data; c < w->data + w->len;) {
		const char *name = c, *value = c + strlen(c) + 1;
		params_set(&p->defaults, name, value);
		c = value + strlen(value) + 1;
	}
	if (p->defaults.failed) {
		log_error("out of memory adopting the parameters of %s/%s", p->db_name, p->user);
		params_clear(&p->defaults);
		return false;   /* tried again on the next tick */
	}
	p->have_welcome = true;
	pool_sync_login_demand(p);
	return true;
}

/* The pool knows its parameters: welcome everyone who waited for them. */
static void finish_logins(struct pool *p)
{
	struct client *cl;
	while ((cl = first_login(p)))
		client_login_finish(cl);   /* takes it off the list */
	pool_sync_login_demand(p);
}

static void learn_welcome(struct pool *p, struct server *sv)
{
	params_clear(&p->defaults);
	if (!params_copy(&p->defaults, &sv->params)) {
		log_error("out of memory learning the parameters of %s/%s", p->db_name, p->user);
		params_clear(&p->defaults);
		return;   /* the next server to log in teaches them */
	}
	p->have_welcome = true;
	publish_welcome(p);
	finish_logins(p);
}

static bool expired(struct server *sv)
{
	const struct config *cfg = sv->pool->shard->cfg;
	return cfg->server_lifetime > 0 &&
	       sv->pool->shard->now_us - sv->connect_us > (uint64_t)(cfg->server_lifetime * 1e6);
}

/* Other shards' clients are waiting for this pool's budget and none of this
 * shard's are: an idle server here is then better closed, so that the slot can
 * open a server where it is needed. (Handing the connection itself over would
 * save the reconnect; see the issue notes.) */
static bool others_wait(struct pool *p)
{
	struct pool_shared *ps = p->shared;
	return p->n_waiting == 0 &&
	       atomic_load_explicit(&ps->waiting, memory_order_relaxed) >
		       p->login_counted + atomic_load_explicit(&ps->in_transit, memory_order_relaxed);
}

/* ---- moving idle servers between shards ---- */

/* The shard where this pool's clients wait longest in number, or -1. */
static int neediest_shard(struct pool *p)
{
	int best = -1;
	int64_t most = 0;
	for (int i = 0; i < p->shard->nshards; i++) {
		int64_t w = gauge_get(&p->shared->shard[i].cl_waiting) + gauge_get(&p->shared->shard[i].cl_login);
		if (i != p->shard->id && w > most) {
			most = w;
			best = i;
		}
	}
	return best;
}

/* This shard holds more of the pool than its clients' share of the demand
 * (waiting + active clients, all shards), while clients elsewhere wait: a freed
 * server should then go to them rather than to a local waiter, or clients of
 * the busier shard wait far longer than the others. */
static bool over_share(struct pool *p)
{
	struct pool_shared *ps = p->shared;
	int elsewhere = atomic_load_explicit(&ps->waiting, memory_order_relaxed) - p->n_waiting -
			p->login_counted - atomic_load_explicit(&ps->in_transit, memory_order_relaxed);
	if (elsewhere <= 0)
		return false;
	int64_t total = 0, mine = 0;
	for (int i = 0; i < p->shard->nshards; i++) {
		int64_t d = gauge_get(&ps->shard[i].cl_waiting) + gauge_get(&ps->shard[i].cl_active);
		total += d;
		if (i == p->shard->id)
			mine = d;
	}
	if (total <= 0)
		return false;
	int64_t size = atomic_load_explicit(&ps->size, memory_order_relaxed);
	int64_t share = (size * mine + total - 1) / total;
	return p->n_idle + p->n_used > share;
}

/* Hand an idle server to a shard whose clients wait for this pool, keeping the
 * connection (and its budget slot): stop receiving here, and once no I/O on this
 * ring refers to it, post it to the other shard's inbox. */
static bool migrate_to(struct server *sv, int to)
{
	if (to < 0 || !proto_framer_idle(&sv->conn.fr) || sv->conn.out_bytes)
		return false;
	server_set_state(sv, SV_MIGRATING);
	stat_add(&sv->pool->stats->server_moves, 1);
	atomic_fetch_add(&sv->pool->shared->in_transit, 1);
	sv->migrate_to = to;
	conn_park(&sv->conn);   /* parks at once if nothing is in flight */
	return true;
}

static bool migrate(struct server *sv)
{
	return migrate_to(sv, neediest_shard(sv->pool));
}

/* The share rule above rounds each shard's share up, so a pool smaller than
 * the number of shards whose clients want it would stay with the shards
 * holding it, and a shard with none would wait for as long as they stay busy
 * (pool_size = 1 and two shards: the second shard's clients starved). A
 * shard whose clients wait without a server of the pool (none open there,
 * none on its way) gets the freed one when its first waiter has waited
 * longer than cl, the client this shard would serve: first come first
 * served between such shards. -1: none. */
static int starved_shard(struct pool *p, const struct client *cl)
{
	struct pool_shared *ps = p->shared;
	if (atomic_load_explicit(&ps->waiting, memory_order_relaxed) - p->n_waiting - p->login_counted <= 0 ||
	    atomic_load_explicit(&ps->in_transit, memory_order_relaxed) > 0)
		return -1;
	uint64_t oldest = cl->wait_start_us ? cl->wait_start_us : p->shard->now_us;
	int best = -1;
	for (int i = 0; i < p->shard->nshards; i++) {
		const struct stats_pool *b = &ps->shard[i];
		int64_t since = gauge_get(&b->head_since_us);
		if (i == p->shard->id || since <= 0 || (uint64_t)since >= oldest)
			continue;
		if (gauge_get(&b->sv_idle) + gauge_get(&b->sv_active) + gauge_get(&b->sv_login) +
			    gauge_get(&b->sv_resetting) > 0)
			continue;
		oldest = (uint64_t)since;
		best = i;
	}
	return best;
}

void pool_server_parked(struct server *sv)
{
	if (sv->upgrade_moving) {
		upgrade_server_parked(sv);   /* to the new process (pgring -R) */
		return;
	}
	struct shard *s = sv->pool->shard;
	if (sv->state != SV_MIGRATING)
		return;
	struct shard_msg m = { .type = POOL_MSG_ADOPT_SERVER, .ptr = sv };
	gauge_add(&s->stats->servers, -1);
	int to = sv->migrate_to;
	if (!shard_post(s->id, to, &m)) {
		/* the other shard's inbox is full: keep it after all */
		atomic_fetch_sub(&sv->pool->shared->in_transit, 1);
		gauge_add(&s->stats->servers, 1);
		server_set_state(sv, SV_RESETTING);
		conn_recv_on(&sv->conn);
		pool_server_ready(sv);
		return;
	}
	/* from here on the server belongs to shard `to`: not a field of it is read here */
	LOGF(LOG_DEBUG, 0, "idle server handed to shard %d", to);
}

/* On the receiving shard: make the server ours and give it to a waiting client. */
void pool_adopt_server(struct shard *s, struct server *sv)
{
	struct pool_shared *shared = sv->pool->shared;   /* never changes, never freed */
	atomic_fetch_sub(&shared->in_transit, 1);
	struct pool *p = pool_find(s, shared->db, shared->user, shared->nodeinfo, true);
	conn_adopt(&sv->conn, s);
	gauge_add(&s->stats->servers, 1);
	if (!p) {
		/* no pool for it here (database removed, no memory): drop the connection
		 * without touching the old shard's pool */
		registry_give_slot(shared);
		close(sv->conn.fd);
		server_free(sv);
		return;
	}
	sv->pool = p;
	server_set_state(sv, SV_RESETTING);   /* enters this shard's gauges and lists */
	if (s->draining) {
		server_close(sv, "shutting down");
		return;
	}
	conn_recv_on(&sv->conn);
	pool_server_ready(sv);
}

/* The server is clean and usable: give it to the next waiting client or park it. */
void pool_server_ready(struct server *sv)
{
	struct pool *p = sv->pool;
	INVARIANT(!sv->lease && sv->state != SV_CLOSED);
	if (sv->params.failed || sv->sqlprep.failed) {
		server_close(sv, "out of memory keeping the record of its session");
		return;
	}
	if (sv->state == SV_LOGIN || sv->state == SV_CONNECTING) {
		p->n_connecting--;
		sv->ready_once = true;
		p->last_error[0] = 0;
		p->fails_in_row = 0;
		pool_reset_backoff(p);
		if (!p->have_welcome)
			learn_welcome(p, sv);
	}
	if (sv->close_when_idle || expired(sv)) {
		server_close(sv, sv->close_when_idle ? "settings changed or session state lost" : "server_lifetime");
		return;
	}
	if (admin_db_paused(p->db_name)) {
		server_close(sv, "PAUSE (admin console)");   /* PgBouncer's PAUSE disconnects released servers */
		return;
	}
	if (sv->txn_status != 'I' && !sv->hidden) {
		/* never hand out a server inside a transaction, whoever left it there */
		LOGF(LOG_WARNING, sv->conn.id, "server released inside a transaction: rolling back");
		if (server_hidden_query(sv, "ROLLBACK")) {
			server_set_state(sv, SV_RESETTING);
			return;
		}
		server_close(sv, "cannot roll back");
		return;
	}
	if (sv->cancels) {
		server_set_state(sv, SV_RESETTING);
		return;
	}
	struct client *cl;
	/* with admission control, the next tenant's turn; else first come first served */
	while ((cl = p->shard->cfg->admission ? admit_pick(p) : first_waiter(p)) &&
	       !(over_share(p) && migrate(sv)) && !migrate_to(sv, starved_shard(p, cl)))
		if (take(sv, cl))
			return;   /* else that client failed (off the list): the next one */
	if (sv->state == SV_MIGRATING)
		return;
	if (p->shard->draining && !p->shard->handing_over) {   /* handing over: pool/upgrade.c closes them */
		server_close(sv, "shutting down");
		return;
	}
	if (others_wait(p) && migrate(sv))
		return;
	server_set_state(sv, SV_IDLE);
	sv->idle_since_us = p->shard->now_us;
}

/* The server is closed: its budget slot is free for whoever waits. */
void pool_server_gone(struct server *sv)
{
	struct pool *p = sv->pool;
	struct shard *s = p->shard;
	bool was_connecting = !sv->ready_once;
	if (was_connecting)
		p->n_connecting--;
	registry_give_slot(p->shared);
	if (was_connecting)
		connect_failed(p);   /* waits, or tells the clients at once if it is not transient */
	if (p->n_waiting || (!list_empty(&p->login) && !p->have_welcome))
		launch_for_waiters(p);
	if (others_wait(p)) {
		struct shard_msg m = { .type = POOL_MSG_WAKE };
		for (int i = 0; i < s->nshards; i++)
			if (i != s->id)
				shard_post(s->id, i, &m);
	}
}

void pool_retry_waiters(struct shard *s)
{
	for (struct pool *p = pool_shard(s)->pools; p; p = p->next)
		if (p->n_waiting || (!list_empty(&p->login) && !p->have_welcome))
			launch_for_waiters(p);
}

int pool_active_servers(struct shard *s)
{
	int n = 0;
	for (struct pool *p = pool_shard(s)->pools; p; p = p->next)
		n += p->n_used;
	return n;
}

/* ---- housekeeping, every tick ---- */

static void pool_housekeeping(struct pool *p)
{
	report_connect_fails(p, 0);
	struct shard *s = p->shard;
	const struct config *cfg = s->cfg;
	uint64_t now = s->now_us;
	/* idle servers: oldest idle are at the tail */
	bool paused = admin_db_paused(p->db_name);
	struct server *sv, *next;
	list_for_each_safe(&p->idle, sv, next, link) {
		int local_min = (atomic_load(&p->shared->min_size) + s->nshards - 1) / s->nshards;
		bool idle_long = cfg->server_idle_timeout > 0 &&
				 now - sv->idle_since_us > (uint64_t)(cfg->server_idle_timeout * 1e6) &&
				 p->n_idle + p->n_used > local_min;
		if (idle_long)
			server_close(sv, "server_idle_timeout");
		else if (expired(sv))
			server_close(sv, "server_lifetime");
		else if (s->draining && !s->handing_over)
			server_close(sv, "shutting down");
		else if (paused)
			server_close(sv, "PAUSE (admin console)");
		else if (others_wait(p))
			migrate(sv);
	}
	/* logins that take too long */
	list_for_each_safe(&p->used, sv, next, link) {
		if ((sv->state == SV_CONNECTING || sv->state == SV_LOGIN) && cfg->server_connect_timeout > 0 &&
		    now - sv->connect_us > (uint64_t)(cfg->server_connect_timeout * 1e6)) {
			snprintf(p->last_error, sizeof p->last_error, "server_connect_timeout");
			strcpy(p->last_sqlstate, "08006");
			server_close(sv, "server_connect_timeout");
		}
	}
	/* min_pool_size, spread over the shards */
	int local_min = (atomic_load(&p->shared->min_size) + s->nshards - 1) / s->nshards;
	if (p->have_welcome && !s->draining && !paused)
		while (p->n_idle + p->n_used < local_min && p->n_connecting < local_min) {
			int before = p->n_connecting;
			launch(p);
			if (p->n_connecting == before)
				break;
		}
	/* login waiters: another shard may have learned the parameters meanwhile */
	if (!list_empty(&p->login) && pool_adopt_welcome(p))
		finish_logins(p);
	fail_long_waiters(p);
	listen_tick(p);
	if (p->n_waiting || (!list_empty(&p->login) && !p->have_welcome))
		launch_for_waiters(p);
	struct client *first = first_waiter(p);
	int64_t max_wait = first ? (int64_t)(now - first->wait_start_us) : 0;
	pool_waiting_head(p);   /* kept right by the list's changes; this heals a move between pools */
	gauge_add(&p->stats->max_wait_us, max_wait - gauge_get(&p->stats->max_wait_us));
}

void pool_tick(struct shard *s)
{
	for (struct pool *p = pool_shard(s)->pools; p; p = p->next)
		pool_housekeeping(p);
}
