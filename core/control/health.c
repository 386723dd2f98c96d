/* core/control/health.c: the control shard's health checks (see core/control/health.h). One
 * libpq connection per node, kept open between checks; a state machine per node
 * (idle -> connecting -> querying -> idle) advanced after every poll. Roles,
 * lag and up/lagging/down states are derived here and published as topology
 * snapshots by core/control/control.c when they change. Host names come looked up by
 * core/control/dns.c, as addresses for libpq, so libpq never blocks the loop. */
#include "core/control/health.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/control/dns.h"
#include "core/control/fleet.h"
#include "core/control/pqconn.h"
#include "core/hba.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/shard.h"
#include "core/strbuf.h"

/* One round trip: role, WAL position (replay position on a replica), active
 * backends other than this one, and whether replay is paused. */
static const char check_sql[] =
	"SELECT pg_catalog.pg_is_in_recovery(),"
	" (CASE WHEN pg_catalog.pg_is_in_recovery()"
	"  THEN COALESCE(pg_catalog.pg_last_wal_replay_lsn(), pg_catalog.pg_last_wal_receive_lsn(), '0/0')"
	"  ELSE pg_catalog.pg_current_wal_lsn() END - '0/0'::pg_lsn)::int8,"
	" (SELECT count(*) - 1 FROM pg_catalog.pg_stat_activity WHERE state = 'active'"
	"  AND backend_type = 'client backend'),"
	" CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END";

/* auth_hba_file = @server: the checks of that cluster's nodes read the rules
 * too, in the same round trip; the primary's are the ones in force. */
static const char check_sql_with_rules[] =
	"SELECT pg_catalog.pg_is_in_recovery(),"
	" (CASE WHEN pg_catalog.pg_is_in_recovery()"
	"  THEN COALESCE(pg_catalog.pg_last_wal_replay_lsn(), pg_catalog.pg_last_wal_receive_lsn(), '0/0')"
	"  ELSE pg_catalog.pg_current_wal_lsn() END - '0/0'::pg_lsn)::int8,"
	" (SELECT count(*) - 1 FROM pg_catalog.pg_stat_activity WHERE state = 'active'"
	"  AND backend_type = 'client backend'),"
	" CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END;"
	"SELECT line_number, type, database, user_name, address, netmask, auth_method, options, error"
	" FROM pg_catalog.pg_hba_file_rules ORDER BY line_number";

enum phase { PH_IDLE = 0, PH_RESOLVING, PH_CONNECTING, PH_QUERY };

struct hnode {
	struct health_node pub;
	char *cluster, *name, *host;
	int max_lag;
	int sslmode;                  /* enum config_sslmode: what the pool's servers use */
	bool hint_primary;
	PGconn *conn;
	struct pqconn_addrs addr;     /* where libpq connects to */
	enum phase phase;
	short events;                 /* what the socket waits for in this phase */
	bool reused;                  /* this check runs on a connection from an earlier one */
	bool got_row;
	uint64_t started_us, due_us;
	uint64_t primary_since;       /* when it was last seen becoming primary (ordering) */
	uint64_t lsn_at;              /* when pub.lsn was read */
	uint64_t lsn_prev, lsn_prev_at; /* the reading before */
	uint8_t pub_role, pub_state;  /* as last published */
	bool dcs_said;                /* pub.role and state were Patroni's word at the last derive */
	bool dcs_out;                 /* ... which was: not a running member */
	char error[256];
	int ci;                       /* its cluster's index in the configuration */
	int nresults;                 /* results of this check so far */
	PGresult *rules;              /* its pg_hba_file_rules at the last read that differed */
	uint64_t rules_serial;        /* which read that was (process-wide, never 0) */
	char rules_error[256];        /* the last failure to read them, logged once */
};

struct hcluster {
	int first, n;                 /* its nodes in the node array */
	int primary, pub_primary;
};

static struct hnode *nodes;
static int nnodes;
static struct hcluster *clusters;
static int nclusters;
static const struct config *cfg;


static uint64_t rules_serial;   /* the last rules read */
static uint64_t rules_taken;    /* the serial health_take_hba last turned into rules */

static void node_free(struct hnode *h)
{
	if (h->conn)
		PQfinish(h->conn);
	PQclear(h->rules);
	free(h->cluster);
	free(h->name);
	free(h->host);
}

static struct hnode *take_old(struct hnode *old, int nold, const char *cl, const struct config_node *cn)
{
	for (int i = 0; i < nold; i++) {
		struct hnode *h = &old[i];
		if (h->name && strcmp(h->cluster, cl) == 0 && strcmp(h->name, cn->name) == 0 &&
		    h->pub.port == cn->port && !strcmp(h->host ? h->host : "", cn->host ? cn->host : ""))
			return h;
	}
	return NULL;
}

static int init_node(struct hnode *h, const struct config_cluster *c, const struct config_node *cn,
		     struct hnode *old, int nold)
{
	struct hnode *o = take_old(old, nold, c->name, cn);
	if (o) {
		*h = *o;
		memset(o, 0, sizeof *o);  /* moved: nothing left to free */
	} else {
		memset(h, 0, sizeof *h);
		h->cluster = strdup(c->name);
		h->name = strdup(cn->name);
		h->host = cn->host ? strdup(cn->host) : NULL;
		if (!h->cluster || !h->name || (cn->host && !h->host))
			return -1;
		h->hint_primary = cn->role && strcmp(cn->role, "primary") == 0;
		/* until the first check, the configuration's word on roles */
		h->pub.role = h->pub.check_role = h->hint_primary ? NODE_PRIMARY : NODE_REPLICA;
		h->pub.state = NODE_UP;
		h->primary_since = h->hint_primary;
		h->pub.lag = -1;
		h->pub.active = -1;
		h->pub_role = h->pub.role;
		h->pub_state = h->pub.state;
		h->pub.shared = registry_node(c->name, cn->name);
		if (!h->pub.shared)
			return -1;
	}
	h->max_lag = config_node_max_lag(cfg, c, cn);
	h->sslmode = config_server_sslmode(cfg, NULL, cn);
	h->pub.discovered = cn->discovered;
	h->pub.cluster = h->cluster;
	h->pub.name = h->name;
	h->pub.host = h->host;
	h->pub.port = cn->port;
	h->pub.last_error = h->error;
	return 0;
}

int health_configure(const struct config *newcfg)
{
	int total = 0;
	for (int i = 0; i < newcfg->nclusters; i++)
		total += newcfg->clusters[i].nnodes;
	struct hnode *nn = calloc((size_t)total + 1, sizeof *nn);
	struct hcluster *nc = calloc((size_t)newcfg->nclusters + 1, sizeof *nc);
	if (!nn || !nc) {
		free(nn);
		free(nc);
		return -1;
	}
	const struct config *oldcfg = cfg;
	cfg = newcfg;
	int k = 0;
	for (int i = 0; i < newcfg->nclusters; i++) {
		const struct config_cluster *c = &newcfg->clusters[i];
		nc[i] = (struct hcluster){ .first = k, .n = c->nnodes, .primary = -1, .pub_primary = -2 };
		for (int j = 0; j < c->nnodes; j++, k++) {
			if (init_node(&nn[k], c, &c->nodes[j], nodes, nnodes) < 0) {
				for (int m = 0; m <= k; m++)
					node_free(&nn[m]);
				free(nn);
				free(nc);
				cfg = oldcfg;
				return -1;
			}
			nn[k].ci = i;
		}
	}
	for (int i = 0; i < nnodes; i++)
		node_free(&nodes[i]);
	free(nodes);
	free(clusters);
	nodes = nn;
	nnodes = total;
	clusters = nc;
	nclusters = newcfg->nclusters;
	rules_taken = 0;   /* a reload publishes the server's rules again (and logs them) */
	return 0;
}

void health_shutdown(void)
{
	for (int i = 0; i < nnodes; i++)
		node_free(&nodes[i]);
	free(nodes);
	free(clusters);
	nodes = NULL;
	clusters = NULL;
	nnodes = nclusters = 0;
}

/* ---- one check ---- */

static void set_error(struct hnode *h, const char *msg)
{
	snprintf(h->error, sizeof h->error, "%s", msg && *msg ? msg : "unknown error");
	for (char *c = h->error; *c; c++)   /* libpq's messages span lines; a log line must not */
		if (*c == '\n' || *c == '\t')
			*c = ' ';
	size_t n = strlen(h->error);
	while (n && (h->error[n - 1] == '\n' || h->error[n - 1] == ' '))
		h->error[--n] = '\0';
}

static void check_done(struct hnode *h)
{
	h->phase = PH_IDLE;
	h->events = 0;
	h->due_us = h->started_us + (uint64_t)(cfg->health_check_interval * 1e6);
}

static void check_failed(struct hnode *h, const char *why)
{
	set_error(h, why);
	if (h->conn) {
		PQfinish(h->conn);
		h->conn = NULL;
	}
	h->pub.failures++;
	h->pub.fails_in_row++;
	LOGF(LOG_DEBUG, 0, "health check of %s/%s failed: %s", h->cluster, h->name, h->error);
	check_done(h);
}

static void connect_node(struct hnode *h);

/* A connection kept from an earlier check may have died meanwhile (a restart):
 * that is no verdict on the node, so try once more on a fresh one. */
static void failed_or_retry(struct hnode *h, const char *why)
{
	if (h->reused) {
		PQfinish(h->conn);
		h->conn = NULL;
		connect_node(h);
		return;
	}
	check_failed(h, why);
}

static bool reads_rules(const struct hnode *h) { return cfg->hba_cluster >= 0 && h->ci == cfg->hba_cluster; }

static void send_check(struct hnode *h)
{
	h->nresults = 0;
	if (!PQsendQuery(h->conn, reads_rules(h) ? check_sql_with_rules : check_sql)) {
		failed_or_retry(h, PQerrorMessage(h->conn));
		return;
	}
	h->phase = PH_QUERY;
	h->got_row = false;
	int f = PQflush(h->conn);
	if (f < 0) {
		failed_or_retry(h, PQerrorMessage(h->conn));
		return;
	}
	h->events = (short)(POLLIN | (f ? POLLOUT : 0));
}

/* Connect to h->addr (core/control/pqconn.h). */
static void connect_node(struct hnode *h)
{
	struct pqconn_login l = {
		.dbname = cfg->health_check_dbname ? cfg->health_check_dbname : "postgres",
		.user = cfg->health_check_user ? cfg->health_check_user : "postgres",
		.password = cfg->health_check_password, .application_name = "pgring health check",
		.timeout = cfg->health_check_timeout, .sslmode = h->sslmode,
	};
	char why[512];
	h->reused = false;
	h->conn = pqconn_start(cfg, &h->addr, &l, why, sizeof why);
	if (!h->conn) {
		check_failed(h, why);
		return;
	}
	h->phase = PH_CONNECTING;
	h->events = POLLOUT;
}

static void resolved(struct hnode *h);

/* A fresh connection. A host name waits for core/control/dns.c's addresses
 * (PH_RESOLVING), which go to libpq as host/hostaddr lists: it tries them in
 * turn, as it would have after its own (blocking) lookup. */
static void reconnect(struct hnode *h)
{
	h->phase = PH_RESOLVING;
	h->events = 0;
	resolved(h);
}

static void resolved(struct hnode *h)
{
	char why[300];
	int rc = pqconn_addrs(&h->addr, h->host, h->pub.port, why, sizeof why);
	if (rc < 0)
		check_failed(h, why);
	else if (rc > 0)
		connect_node(h);
}

static void start_check(struct hnode *h, uint64_t now)
{
	h->started_us = now;
	if (h->conn && PQstatus(h->conn) == CONNECTION_OK) {
		h->reused = true;
		send_check(h);
	} else {
		if (h->conn)
			PQfinish(h->conn);
		h->conn = NULL;
		reconnect(h);
	}
}

static void take_row(struct hnode *h, PGresult *r)
{
	if (PQntuples(r) != 1 || PQnfields(r) != 4) {
		set_error(h, "unexpected answer to the health check query");
		return;
	}
	bool recovery = PQgetvalue(r, 0, 0)[0] == 't';
	uint8_t role = recovery ? NODE_REPLICA : NODE_PRIMARY;
	if (role == NODE_PRIMARY && h->pub.check_role != NODE_PRIMARY && h->pub.checked)
		h->primary_since = shard_now_us();    /* promoted while we watched: it is the newest primary */
	else if (role != NODE_PRIMARY)
		h->primary_since = 0;
	h->pub.role = h->pub.check_role = role;
	h->lsn_prev = h->pub.lsn;
	h->lsn_prev_at = h->lsn_at;
	h->pub.lsn = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
	h->lsn_at = shard_now_us();
	h->pub.active = PQgetisnull(r, 0, 2) ? -1 : strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	h->pub.replay_paused = PQgetvalue(r, 0, 3)[0] == 't';
	h->got_row = true;
}

/* The same rows as last time: nothing to publish. */
static bool same_rules(const PGresult *a, const PGresult *b)
{
	if (!a || PQntuples(a) != PQntuples(b) || PQnfields(a) != PQnfields(b))
		return false;
	for (int i = 0; i < PQntuples(a); i++)
		for (int j = 0; j < PQnfields(a); j++)
			if (PQgetisnull(a, i, j) != PQgetisnull(b, i, j) || strcmp(PQgetvalue(a, i, j), PQgetvalue(b, i, j)))
				return false;
	return true;
}

/* The second result of a check that reads the rules. Takes r. */
static void take_rules(struct hnode *h, PGresult *r)
{
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 9) {
		char why[256];
		snprintf(why, sizeof why, "%s", PQresultStatus(r) == PGRES_TUPLES_OK ? "unexpected columns"
						 : PQresultErrorMessage(r));
		why[strcspn(why, "\n")] = '\0';
		if (strcmp(why, h->rules_error))
			log_warning("auth_hba_file = @%s: cannot read pg_hba_file_rules on %s/%s: %s", cfg->clusters[h->ci].name,
				    h->cluster, h->name, why);
		snprintf(h->rules_error, sizeof h->rules_error, "%s", why);
		PQclear(r);
		return;
	}
	h->rules_error[0] = '\0';
	if (same_rules(h->rules, r)) {
		PQclear(r);
		return;
	}
	PQclear(h->rules);
	h->rules = r;
	h->rules_serial = ++rules_serial;
}

static void read_results(struct hnode *h)
{
	if (!PQconsumeInput(h->conn)) {
		failed_or_retry(h, PQerrorMessage(h->conn));
		return;
	}
	while (!PQisBusy(h->conn)) {
		PGresult *r = PQgetResult(h->conn);
		if (!r) {
			if (!h->got_row) {
				failed_or_retry(h, h->error[0] ? h->error : "no answer to the health check query");
				return;
			}
			h->pub.checked = true;
			h->pub.checks++;
			h->pub.fails_in_row = 0;
			h->error[0] = '\0';
			h->pub.check_seconds = (double)(shard_now_us() - h->started_us) / 1e6;
			check_done(h);
			return;
		}
		if (h->nresults++ == 1 && reads_rules(h) && h->got_row) {
			take_rules(h, r);
			continue;
		}
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			take_row(h, r);
		else
			set_error(h, PQresultErrorMessage(r));
		PQclear(r);
	}
}

static void rules_warn(void *ctx, const char *msg)
{
	(void)ctx;
	log_warning("auth_hba_file = @server: %s", msg);
}

struct hba *health_take_hba(void)
{
	if (!cfg || cfg->hba_cluster < 0 || cfg->hba_cluster >= nclusters)
		return NULL;
	const struct hcluster *c = &clusters[cfg->hba_cluster];
	if (c->primary < 0)
		return NULL;   /* the last rules stay until a primary answers */
	const struct hnode *h = &nodes[c->first + c->primary];
	if (!h->rules || h->rules_serial == rules_taken)
		return NULL;
	rules_taken = h->rules_serial;
	int n = PQntuples(h->rules);
	struct hba_server_row *rows = calloc((size_t)n + 1, sizeof *rows);
	if (!rows)
		return NULL;
	const PGresult *r = h->rules;
	for (int i = 0; i < n; i++) {
		const char *v[9];
		for (int j = 0; j < 9; j++)
			v[j] = PQgetisnull(r, i, j) ? NULL : PQgetvalue(r, i, j);
		rows[i] = (struct hba_server_row){ v[0] ? atoi(v[0]) : 0, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8] };
	}
	char source[300], err[600];
	snprintf(source, sizeof source, "%s/%s pg_hba.conf", h->cluster, h->name);
	struct hba *out = NULL;
	if (hba_from_server(rows, n, source, &out, err, sizeof err, rules_warn, NULL) < 0)
		log_warning("auth_hba_file = @%s: keeping the rules in force: %s", cfg->clusters[cfg->hba_cluster].name, err);
	else
		log_notice("auth_hba_file = @%s: %d rule%s from %s/%s", cfg->clusters[cfg->hba_cluster].name, out->n,
			   out->n == 1 ? "" : "s", h->cluster, h->name);
	free(rows);
	return out;
}

static void advance(struct hnode *h, uint64_t now)
{
	switch (h->phase) {
	case PH_IDLE:
		if (cfg->health_check_interval > 0 && now >= h->due_us)
			start_check(h, now);
		break;
	case PH_RESOLVING:
		resolved(h);
		break;
	case PH_CONNECTING:
		switch (PQconnectPoll(h->conn)) {
		case PGRES_POLLING_FAILED:
			check_failed(h, PQerrorMessage(h->conn));
			break;
		case PGRES_POLLING_OK:
			send_check(h);
			break;
		case PGRES_POLLING_READING:
			h->events = POLLIN;
			break;
		default:
			h->events = POLLOUT;
			break;
		}
		break;
	case PH_QUERY: {
		int f = PQflush(h->conn);
		if (f < 0) {
			failed_or_retry(h, PQerrorMessage(h->conn));
			break;
		}
		h->events = (short)(POLLIN | (f ? POLLOUT : 0));
		read_results(h);
		break;
	}
	}
	if (h->phase != PH_IDLE && now - h->started_us > (uint64_t)(cfg->health_check_timeout * 1e6)) {
		h->reused = false;
		check_failed(h, h->phase == PH_RESOLVING ? "health_check_timeout looking up the host name"
							  : "health_check_timeout");
	}
}

/* ---- roles and states ---- */

static uint8_t node_state(const struct hnode *h)
{
	if (h->pub.fails_in_row >= cfg->health_check_failures)
		return NODE_DOWN;
	if (h->pub.lag >= 0 && h->pub.role == NODE_REPLICA && h->pub.lag > h->max_lag)
		return NODE_LAGGING;
	return NODE_UP;
}

/* Bytes the replica is behind, against the primary's position read before the
 * replica's own: a primary read after it would count WAL written meanwhile. */
static int64_t replica_lag(const struct hnode *p, const struct hnode *h)
{
	uint64_t plsn = p->lsn_at <= h->lsn_at || !p->lsn_prev_at ? p->pub.lsn : p->lsn_prev;
	return plsn > h->pub.lsn ? (int64_t)(plsn - h->pub.lsn) : 0;
}

static bool failing(const struct hnode *h) { return h->pub.fails_in_row >= cfg->health_check_failures; }

/* Patroni's or the fleet's word on roles, held against the checks (false: no
 * word on this cluster, the checks alone decide).
 * The primary is its leader, if the leader answers and does not say it is in
 * recovery; a node that is not a running member is not routed to. */
static bool derive_dcs(struct hcluster *c, int ci)
{
	bool any = false;
	for (int i = 0; i < c->n; i++) {
		struct hnode *h = &nodes[c->first + i];
		uint8_t word;
		const char *why;
		h->dcs_said = fleet_node_word(ci, i, &word, &why);
		h->dcs_out = h->dcs_said && word == NODE_ROLE_UNKNOWN;
		if (!h->dcs_said)
			continue;
		any = true;
		h->pub.role = word != NODE_ROLE_UNKNOWN ? word : h->pub.check_role;
		if (!h->dcs_out && word == NODE_REPLICA && h->pub.checked && h->pub.check_role == NODE_PRIMARY &&
		    !failing(h)) {
			/* a primary the cluster's word does not name (a former one back,
			 * a split brain): never routed to, for reads either */
			h->dcs_out = true;
			why = "a primary that is not the cluster's: not routed to";
		}
		if (h->dcs_out) {
			snprintf(h->error, sizeof h->error, "%s", why);
			continue;
		}
		if (word != NODE_PRIMARY || failing(h))
			continue;
		if (h->pub.checked && h->pub.check_role != NODE_PRIMARY) {
			h->pub.role = h->pub.check_role;
			snprintf(h->error, sizeof h->error, "Patroni's leader, but in recovery as its check sees it: "
				 "not routed to as the primary");
			continue;
		}
		c->primary = i;
	}
	return any;
}

/* The primary is the newest of the live nodes that say they are one (after a
 * promotion the old primary may come back unaware); then lag against it. */
static void derive(struct hcluster *c)
{
	c->primary = -1;
	if (!derive_dcs(c, (int)(c - clusters))) {
		for (int i = 0; i < c->n; i++) {
			struct hnode *h = &nodes[c->first + i];
			h->dcs_out = false;
			h->pub.role = h->pub.check_role;   /* Patroni's word, if it was, is no more */
			if (h->pub.role != NODE_PRIMARY || failing(h))
				continue;
			if (c->primary < 0 || h->primary_since > nodes[c->first + c->primary].primary_since)
				c->primary = i;
		}
	}
	const struct hnode *p = c->primary >= 0 ? &nodes[c->first + c->primary] : NULL;
	for (int i = 0; i < c->n; i++) {
		struct hnode *h = &nodes[c->first + i];
		if (h->pub.role == NODE_PRIMARY)
			h->pub.lag = p == h ? 0 : -1;
		else if (p && p->pub.checked && h->pub.checked)
			h->pub.lag = replica_lag(p, h);
		else
			h->pub.lag = -1;
		h->pub.state = node_state(h);
		if (h->dcs_said && h->dcs_out)
			h->pub.state = NODE_DOWN;   /* Patroni does not count it in */
	}
}

static bool changed(void)
{
	bool any = false;
	for (int ci = 0; ci < nclusters; ci++) {
		struct hcluster *c = &clusters[ci];
		derive(c);
		for (int i = 0; i < c->n; i++) {
			struct hnode *h = &nodes[c->first + i];
			if (h->pub.state != h->pub_state) {
				if (h->pub.state == NODE_DOWN)
					log_warning("node %s/%s (%s:%d) is down: %s", h->cluster, h->name,
						    h->host ? h->host : "local", h->pub.port, h->error);
				else if (h->pub.state == NODE_LAGGING)
					log_warning("node %s/%s is lagging: %" PRId64 " bytes behind (max_lag %d)",
						    h->cluster, h->name, h->pub.lag, h->max_lag);
				else
					log_notice("node %s/%s is up (%s)", h->cluster, h->name, topo_role_name(h->pub.role));
				any = true;
			}
			if (h->pub.role != h->pub_role) {
				log_notice("node %s/%s is now a %s", h->cluster, h->name, topo_role_name(h->pub.role));
				any = true;
			}
		}
		if (c->primary != c->pub_primary) {
			if (c->primary >= 0)
				log_notice("cluster %s: primary is %s", cfg->clusters[ci].name,
					   nodes[c->first + c->primary].name);
			else
				log_warning("cluster %s: no primary", cfg->clusters[ci].name);
			any = true;
		}
	}
	return any;
}

/* ---- the control loop's side ---- */

int health_pollfds(struct pollfd *fds, int max)
{
	int n = 0;
	for (int i = 0; i < nnodes && n < max; i++) {
		struct hnode *h = &nodes[i];
		if (h->phase != PH_IDLE && h->conn && PQsocket(h->conn) >= 0)
			fds[n++] = (struct pollfd){ .fd = PQsocket(h->conn), .events = h->events };
	}
	return n;
}

int health_next_timeout(void)
{
	if (cfg == NULL || cfg->health_check_interval <= 0 || nnodes == 0)
		return -1;
	uint64_t now = shard_now_us(), next = UINT64_MAX;
	for (int i = 0; i < nnodes; i++) {
		const struct hnode *h = &nodes[i];
		/* a check waiting in PH_RESOLVING moves on when core/control/dns.c, whose own
		 * timeout wakes the loop, has the addresses */
		uint64_t t = h->phase == PH_IDLE ? h->due_us
						 : h->started_us + (uint64_t)(cfg->health_check_timeout * 1e6);
		if (t < next)
			next = t;
	}
	return next <= now ? 0 : (int)((next - now + 999) / 1000);
}

bool health_process(const struct pollfd *fds, int n)
{
	(void)fds;
	(void)n;   /* every check in flight is advanced: libpq calls are cheap and non-blocking */
	uint64_t now = shard_now_us();
	for (int i = 0; i < nnodes; i++)
		advance(&nodes[i], now);
	return changed();
}

size_t health_topology_size(const struct config *c)
{
	size_t total = 0;
	for (int i = 0; i < c->nclusters; i++)
		total += (size_t)c->clusters[i].nnodes;
	return (size_t)c->nclusters * sizeof(struct topo_cluster) + total * sizeof(struct topo_node);
}

void health_fill(struct topology *t)
{
	for (int ci = 0; ci < nclusters; ci++)
		derive(&clusters[ci]);
	struct topo_node *tn = (struct topo_node *)(t->clusters + nclusters);
	t->nclusters = nclusters;
	for (int ci = 0; ci < nclusters; ci++) {
		struct hcluster *c = &clusters[ci];
		const struct config_cluster *cc = &t->cfg->clusters[ci];
		t->clusters[ci] = (struct topo_cluster){ .cc = cc, .primary = c->primary, .nodes = tn };
		for (int i = 0; i < c->n; i++, tn++) {
			struct hnode *h = &nodes[c->first + i];
			*tn = (struct topo_node){ .role = h->pub.role, .state = h->pub.state,
						  .weight = cc->nodes[i].weight, .shared = h->pub.shared };
			h->pub_role = h->pub.role;
			h->pub_state = h->pub.state;
		}
		c->pub_primary = c->primary;
	}
}

int health_count(void) { return nnodes; }

const struct health_node *health_node_of(int ci, int ni)
{
	return ci >= 0 && ci < nclusters && ni >= 0 && ni < clusters[ci].n ? &nodes[clusters[ci].first + ni].pub : NULL;
}
const struct health_node *health_node_at(int i) { return &nodes[i].pub; }

/* ---- pgring -R: the predecessor's view ----
 * A line per node, tab-separated: cluster, name, host, port (who it is), then
 * what the checks found: role, checked, replay paused, failures in a row, lag,
 * WAL position, active backends, when it became primary (CLOCK_MONOTONIC, the
 * same clock for every process of the machine), checks, failures. */

#define SEED_FIELDS 14

static bool seedable(const char *s) { return !strpbrk(s, "\t\n"); }

void health_pack(struct strbuf *sb)
{
	for (int i = 0; i < nnodes; i++) {
		const struct hnode *h = &nodes[i];
		const char *host = h->host ? h->host : "";
		if (!seedable(h->cluster) || !seedable(h->name) || !seedable(host))
			continue;
		strbuf_printf(sb, "%s\t%s\t%s\t%d\t%u\t%d\t%d\t%d\t%" PRId64 "\t%" PRIu64 "\t%" PRId64 "\t%" PRIu64
			      "\t%" PRIu64 "\t%" PRIu64 "\n", h->cluster, h->name, host, h->pub.port, h->pub.check_role,
			      h->pub.checked, h->pub.replay_paused, h->pub.fails_in_row, h->pub.lag, h->pub.lsn,
			      h->pub.active, h->primary_since, h->pub.checks, h->pub.failures);
	}
}

static struct hnode *seed_node(char **f)
{
	for (int i = 0; i < nnodes; i++) {
		struct hnode *h = &nodes[i];
		if (!strcmp(h->cluster, f[0]) && !strcmp(h->name, f[1]) && !strcmp(h->host ? h->host : "", f[2]) &&
		    h->pub.port == atoi(f[3]))
			return h;
	}
	return NULL;
}

int health_seed(const char *text, size_t len)
{
	char *copy = strndup(text, len), *save = NULL;
	int taken = 0;
	for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
		char *f[SEED_FIELDS];
		int k = 0;
		for (char *p = line; k < SEED_FIELDS && p; k++) {
			f[k] = p;
			if ((p = strchr(p, '\t')))
				*p++ = 0;
		}
		struct hnode *h = k == SEED_FIELDS ? seed_node(f) : NULL;
		int role = h ? atoi(f[4]) : 0;
		if (!h || (role != NODE_PRIMARY && role != NODE_REPLICA) || h->pub.checked)
			continue;   /* not a node of ours (the configuration changed), or not a view */
		h->pub.role = h->pub.check_role = (uint8_t)role;
		h->pub.checked = atoi(f[5]) != 0;
		h->pub.replay_paused = atoi(f[6]) != 0;
		h->pub.fails_in_row = atoi(f[7]);
		h->pub.lag = strtoll(f[8], NULL, 10);
		h->pub.lsn = strtoull(f[9], NULL, 10);
		h->pub.active = strtoll(f[10], NULL, 10);
		h->primary_since = strtoull(f[11], NULL, 10);
		h->pub.checks = strtoull(f[12], NULL, 10);
		h->pub.failures = strtoull(f[13], NULL, 10);
		h->lsn_at = shard_now_us();
		if (h->pub.fails_in_row)
			snprintf(h->error, sizeof h->error, "down as the predecessor saw it; checking again");
		taken++;
	}
	free(copy);
	return taken;
}
