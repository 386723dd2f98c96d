/* core/control/fleet.c: the fleet through etcd (core/control/fleet.h). A
 * prefix of etcd's keys is mirrored here (struct mirror: read whole, then
 * watched from the revision read); Patroni's scopes and the fleet's node list
 * are such mirrors. This node's own key lives under a lease kept alive at a
 * third of its TTL. Everything is asynchronous through the etcd client
 * (core/control/etcd.h): nothing here blocks the control thread. */
#include "core/control/fleet.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/control/control.h"
#include "core/control/etcd.h"
#include "core/control/metrics.h"
#include "core/json.h"
#include "core/log.h"
#include "core/stats.h"
#include "core/strbuf.h"
#include "core/topology.h"

#define RETRY_US 1000000u            /* a failed read of a prefix is tried again after this */
#define REFRESH_US 5000000u          /* this node's record is written again (its client count) */

/* ---- a mirrored prefix ---- */

struct entry {
	char *key;                       /* after the prefix */
	char *value;
};

struct mirror {
	char *prefix;
	struct entry *e;
	int n, cap;
	bool known;                      /* read whole at least once */
	bool reading;
	bool dirty;                      /* changed since it was last looked at */
	struct etcd_watch *watch;
	uint64_t retry_at_us;
};

/* Patroni's view of one configured cluster. */
struct scope {
	struct mirror m;
	int ci;
	int nnodes;
	uint8_t *role;                   /* per configured node: enum node_role, its word */
	char (*why)[96];
};

enum reg_state { REG_OFF, REG_GRANTING, REG_LIVE };

static const struct config *cfg;
static struct etcd *etcd;
static struct scope *scopes;
static int nscopes;
static struct mirror peers;
static char *node_key;               /* this node's key: <etcd_pgring_prefix>/nodes/<name> */
static char *node_name;
static enum reg_state reg;
static int64_t lease;
static bool keepalive_out, put_out;
static uint64_t reg_retry_us, keepalive_due_us;
static uint64_t record_check_us;     /* the record is compared with the last one written every REFRESH_US */
static uint64_t record_rewrite_us;   /* and written anyway after a minute */
static char *last_record;
static bool was_up = true;
static uint64_t errors;

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* etcd's reachability as the last exchange found it, logged when it turns. */
static void saw(bool ok)
{
	if (!ok)
		errors++;
	if (ok == was_up)
		return;
	was_up = ok;
	if (ok)
		log_notice("etcd: reachable again");
	else
		log_warning("etcd: unreachable (%s): the last topology stays, the health checks go on alone",
			    etcd_last_error(etcd));
}

static void entries_clear(struct mirror *m)
{
	for (int i = 0; i < m->n; i++) {
		free(m->e[i].key);
		free(m->e[i].value);
	}
	m->n = 0;
}

static void mirror_free(struct mirror *m)
{
	if (m->watch)
		etcd_watch_cancel(m->watch);
	entries_clear(m);
	free(m->e);
	free(m->prefix);
	memset(m, 0, sizeof *m);
}

static struct entry *find(const struct mirror *m, const char *key, size_t len)
{
	for (int i = 0; i < m->n; i++)
		if (strlen(m->e[i].key) == len && memcmp(m->e[i].key, key, len) == 0)
			return &m->e[i];
	return NULL;
}

/* A key's value, or its removal (value NULL); false: no memory. */
static bool apply(struct mirror *m, const struct etcd_kv *kv, bool put)
{
	size_t plen = strlen(m->prefix);
	if (kv->key_len < plen || memcmp(kv->key, m->prefix, plen) != 0)
		return true;   /* not ours */
	const char *k = kv->key + plen;
	size_t klen = kv->key_len - plen;
	struct entry *e = find(m, k, klen);
	m->dirty = true;
	if (!put) {
		if (e) {
			free(e->key);
			free(e->value);
			*e = m->e[--m->n];
		}
		return true;
	}
	char *v = strndup(kv->value ? kv->value : "", kv->value_len);
	if (!v)
		return false;
	if (e) {
		free(e->value);
		e->value = v;
		return true;
	}
	if (m->n == m->cap) {
		int cap = m->cap ? m->cap * 2 : 8;
		struct entry *ne = realloc(m->e, (size_t)cap * sizeof *ne);
		if (!ne) {
			free(v);
			return false;
		}
		m->e = ne;
		m->cap = cap;
	}
	if (!(m->e[m->n].key = strndup(k, klen))) {
		free(v);
		return false;
	}
	m->e[m->n++].value = v;
	return true;
}

static void on_event(void *ctx, bool is_put, const struct etcd_kv *kv, int64_t revision)
{
	struct mirror *m = ctx;
	(void)revision;
	saw(true);
	if (!apply(m, kv, is_put))
		log_warning("etcd: out of memory mirroring %s", m->prefix);
}

static void on_broken(void *ctx)
{
	struct mirror *m = ctx;
	m->watch = NULL;
	m->retry_at_us = now_us() + RETRY_US;   /* read whole again, then watch again */
	saw(false);
}

static void on_read(void *ctx, bool ok, const struct etcd_kv *kvs, int n, int64_t revision)
{
	struct mirror *m = ctx;
	m->reading = false;
	saw(ok);
	if (!ok) {
		m->retry_at_us = now_us() + RETRY_US;
		return;
	}
	entries_clear(m);
	for (int i = 0; i < n; i++)
		if (!apply(m, &kvs[i], true))
			log_warning("etcd: out of memory mirroring %s", m->prefix);
	m->known = m->dirty = true;
	if (!(m->watch = etcd_watch_prefix(etcd, m->prefix, revision + 1, on_event, on_broken, m)))
		m->retry_at_us = now_us() + RETRY_US;
}

static void mirror_tick(struct mirror *m, uint64_t now)
{
	if (!m->prefix || m->reading || m->watch || now < m->retry_at_us)
		return;
	m->reading = etcd_range_prefix(etcd, m->prefix, on_read, m);
	if (!m->reading)
		m->retry_at_us = now + RETRY_US;
}

/* ---- Patroni's members ---- */

/* "postgres://user@host:port/db?..." -> host, port (5432 when absent). */
static bool url_addr(const char *url, char *host, size_t hostlen, int *port)
{
	const char *p = strstr(url, "://");
	if (!p)
		return false;
	p += 3;
	size_t n = strcspn(p, "/?");
	const char *at = memrchr(p, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	const char *colon = memrchr(p, ':', n);
	if (p[0] == '[') {
		const char *close = memchr(p, ']', n);
		colon = close && close + 1 < p + n && close[1] == ':' ? close + 1 : NULL;
		snprintf(host, hostlen, "%.*s", close ? (int)(close - p - 1) : 0, p + 1);
	} else {
		snprintf(host, hostlen, "%.*s", (int)(colon ? (size_t)(colon - p) : n), p);
	}
	*port = colon ? atoi(colon + 1) : 5432;
	return *host && *port > 0;
}

struct member {
	char state[32], role[32];
	char host[256];
	int port;
};

/* A member's string, cut to cap ("" when absent). */
static void member_str(const struct json_doc *d, const char *name, char *out, size_t cap)
{
	char *v = json_strdup(d, json_get(d, 0, name), NULL);
	snprintf(out, cap, "%s", v ? v : "");
	free(v);
}

/* A member's record: {"conn_url": "postgres://host:port/...", "state": "running", "role": ...}. */
static bool member_of(const char *value, struct member *mb)
{
	struct json_doc d = { 0 };
	bool ok = json_parse(&d, value, strlen(value)) == 0 && json_is(&d, 0, JSON_OBJECT);
	if (ok) {
		char url[512];
		member_str(&d, "state", mb->state, sizeof mb->state);
		member_str(&d, "role", mb->role, sizeof mb->role);
		member_str(&d, "conn_url", url, sizeof url);
		ok = url_addr(url, mb->host, sizeof mb->host, &mb->port);
	}
	json_free(&d);
	return ok;
}

/* The member a configured node is: by name, else by address. */
static const struct entry *member_for(const struct scope *sc, const struct config_node *cn, struct member *mb)
{
	char key[CONFIG_NAME_MAX + 16];
	snprintf(key, sizeof key, "members/%s", cn->name);
	const struct entry *e = find(&sc->m, key, strlen(key));
	if (e && member_of(e->value, mb))
		return e;
	for (int i = 0; i < sc->m.n; i++) {
		e = &sc->m.e[i];
		if (strncmp(e->key, "members/", 8) || !member_of(e->value, mb))
			continue;
		if (mb->port == (cn->port > 0 ? cn->port : 5432) && !strcmp(mb->host, cn->host ? cn->host : ""))
			return e;
	}
	return NULL;
}

static void scope_derive(struct scope *sc)
{
	const struct config_cluster *c = &cfg->clusters[sc->ci];
	const struct entry *le = find(&sc->m, "leader", 6);
	for (int i = 0; i < sc->nnodes; i++) {
		struct member mb = { 0 };
		const struct entry *e = member_for(sc, &c->nodes[i], &mb);
		sc->role[i] = NODE_ROLE_UNKNOWN;
		if (!e)
			snprintf(sc->why[i], sizeof sc->why[i], "not a member of Patroni's scope in etcd");
		else if (strcmp(mb.state, "running") != 0)
			snprintf(sc->why[i], sizeof sc->why[i], "Patroni says it is %s", *mb.state ? mb.state : "not running");
		else if (le && !strcmp(le->value, e->key + 8))
			sc->role[i] = NODE_PRIMARY;
		else
			sc->role[i] = NODE_REPLICA;
		if (sc->role[i] != NODE_ROLE_UNKNOWN)
			sc->why[i][0] = 0;
	}
	if (!le)
		log_warning("cluster %s: Patroni's scope has no leader in etcd: no primary until it has one", c->name);
}

bool fleet_node_word(int ci, int ni, uint8_t *role, const char **why)
{
	for (int i = 0; i < nscopes; i++) {
		struct scope *sc = &scopes[i];
		if (sc->ci != ci || !sc->m.known || ni >= sc->nnodes)
			continue;
		*role = sc->role[ni];
		*why = sc->why[ni];
		return true;
	}
	return false;
}

/* ---- this node's registration ---- */

static void make_record(struct strbuf *sb)
{
	int64_t clients = 0;
	for (int s = 0; s < stats_nshards(); s++)
		clients += gauge_get(&stats_shard(s)->clients);
	strbuf_puts(sb, "{\"name\":");
	metrics_json_string(sb, node_name);
	strbuf_puts(sb, ",\"address\":");
	char addr[300];
	snprintf(addr, sizeof addr, "%s:%d", cfg->listen_addr && strcmp(cfg->listen_addr, "*") ? cfg->listen_addr : "0.0.0.0",
		 cfg->listen_port);
	metrics_json_string(sb, addr);
	strbuf_printf(sb, ",\"version\":\"%s\",\"pid\":%d,\"shards\":%d,\"clients\":%" PRId64 ",\"peer_id\":%d}",
		      control_version(), (int)getpid(), stats_nshards(), clients, cfg->peer_id);
}

static void put_done(void *ctx, bool ok)
{
	(void)ctx;
	put_out = false;
	saw(ok);
	if (!ok) {
		free(last_record);   /* written again at the next check */
		last_record = NULL;
	}
}

static void put_record(uint64_t now)
{
	record_check_us = now + REFRESH_US;
	struct strbuf sb = STRBUF_INIT;
	make_record(&sb);
	if (!sb.failed && (!last_record || strcmp(last_record, strbuf_str(&sb)) != 0 || now >= record_rewrite_us) &&
	    (put_out = etcd_put(etcd, node_key, strbuf_str(&sb), lease, put_done, NULL))) {
		free(last_record);
		last_record = strdup(strbuf_str(&sb));
		record_rewrite_us = now + REFRESH_US * 12;
	}
	strbuf_free(&sb);
}

static void granted(void *ctx, bool ok, int64_t id, int ttl)
{
	(void)ctx;
	saw(ok);
	if (!ok || ttl <= 0) {
		reg = REG_OFF;
		reg_retry_us = now_us() + RETRY_US;
		return;
	}
	reg = REG_LIVE;
	lease = id;
	free(last_record);
	last_record = NULL;
	keepalive_due_us = now_us() + (uint64_t)ttl * 1000000u / 3;
	put_record(now_us());
	log_notice("etcd: this node is registered as %s (lease %" PRIx64 ", %d s)", node_key, (uint64_t)id, ttl);
}

static void kept_alive(void *ctx, bool ok, int ttl)
{
	(void)ctx;
	keepalive_out = false;
	saw(ok);
	if (ok && ttl > 0) {
		keepalive_due_us = now_us() + (uint64_t)ttl * 1000000u / 3;
		return;
	}
	if (ok) {   /* the lease ran out (etcd unreachable too long): register again */
		log_warning("etcd: this node's registration lapsed: registering again");
		reg = REG_OFF;
		reg_retry_us = 0;
		return;
	}
	keepalive_due_us = now_us() + RETRY_US;
}

static void reg_tick(uint64_t now)
{
	if (!node_key)
		return;
	switch (reg) {
	case REG_OFF:
		if (now >= reg_retry_us) {
			reg = etcd_lease_grant(etcd, cfg->etcd_node_ttl >= 1 ? (int)cfg->etcd_node_ttl : 1, granted, NULL)
				      ? REG_GRANTING : REG_OFF;
			reg_retry_us = now + RETRY_US;
		}
		break;
	case REG_GRANTING:
		break;
	case REG_LIVE:
		if (!keepalive_out && now >= keepalive_due_us)
			keepalive_out = etcd_lease_keepalive(etcd, lease, kept_alive, NULL);
		if (!put_out && now >= record_check_us)
			put_record(now);
		break;
	}
}

/* ---- set-up ---- */

static void teardown(void)
{
	for (int i = 0; i < nscopes; i++) {
		mirror_free(&scopes[i].m);
		free(scopes[i].role);
		free(scopes[i].why);
	}
	free(scopes);
	scopes = NULL;
	nscopes = 0;
	mirror_free(&peers);
	if (etcd)
		etcd_free(etcd);   /* its requests end without their callbacks */
	etcd = NULL;
	free(node_key);
	free(node_name);
	free(last_record);
	node_key = node_name = last_record = NULL;
	reg = REG_OFF;
	keepalive_out = put_out = false;
}

static char *joined(const char *a, const char *b, const char *c)
{
	char *s;
	return asprintf(&s, "%s%s%s", a, b, c) < 0 ? NULL : s;
}

int fleet_configure(const struct config *c)
{
	teardown();
	cfg = c;
	if (!c->etcd_hosts || !*c->etcd_hosts)
		return 0;
	const char *ep[16];
	char *hosts = strdup(c->etcd_hosts), *save = NULL;
	int n = 0;
	for (char *t = hosts ? strtok_r(hosts, ",", &save) : NULL; t && n < 16; t = strtok_r(NULL, ",", &save))
		ep[n++] = t;
	etcd = n ? etcd_new(ep, n, c->etcd_timeout > 0 ? c->etcd_timeout : 2) : NULL;
	free(hosts);
	if (!etcd)
		return -1;
	if (!strcmp(c->topology_source, "etcd") && c->nclusters) {
		if (!(scopes = calloc((size_t)c->nclusters, sizeof *scopes)))
			return -1;
		for (int i = 0; i < c->nclusters; i++) {
			const struct config_cluster *cc = &c->clusters[i];
			struct scope *sc = &scopes[nscopes++];
			sc->ci = i;
			sc->nnodes = cc->nnodes;
			sc->role = calloc((size_t)cc->nnodes, 1);
			sc->why = calloc((size_t)cc->nnodes, sizeof *sc->why);
			sc->m.prefix = joined(c->etcd_prefix, strcmp(c->etcd_prefix, "/") ? "/" : "",
					      cc->patroni_scope ? cc->patroni_scope : cc->name);
			char *full = sc->m.prefix ? joined(sc->m.prefix, "/", "") : NULL;
			free(sc->m.prefix);
			sc->m.prefix = full;
			if (!sc->role || !sc->why || !full)
				return -1;
		}
	}
	char self[96];
	if (c->node_name)
		snprintf(self, sizeof self, "%s", c->node_name);
	else if (c->peer_id > 0)
		snprintf(self, sizeof self, "peer%d", c->peer_id);
	else
		snprintf(self, sizeof self, "%s:%d", c->listen_addr ? c->listen_addr : "*", c->listen_port);
	node_name = strdup(self);
	peers.prefix = joined(c->etcd_pgring_prefix, strcmp(c->etcd_pgring_prefix, "/") ? "/" : "", "nodes/");
	node_key = peers.prefix && node_name ? joined(peers.prefix, node_name, "") : NULL;
	if (!node_key)
		return -1;
	log_notice("etcd: %s; this node is %s%s", c->etcd_hosts, node_name,
		   nscopes ? ", cluster roles from Patroni's keys" : "");
	return 0;
}

/* ---- the loop ---- */

int fleet_pollfds(struct pollfd *fds, int max) { return etcd ? etcd_pollfds(etcd, fds, max) : 0; }

int fleet_next_timeout(void)
{
	if (!etcd)
		return -1;
	int t = etcd_next_timeout(etcd);
	return t < 0 || t > 100 ? 100 : t;   /* retries and keepalives are due on the tick */
}

bool fleet_process(const struct pollfd *fds, int n)
{
	if (!etcd)
		return false;
	etcd_process(etcd, fds, n);
	uint64_t now = now_us();
	bool changed = false;
	for (int i = 0; i < nscopes; i++) {
		struct scope *sc = &scopes[i];
		mirror_tick(&sc->m, now);
		if (sc->m.dirty) {
			sc->m.dirty = false;
			scope_derive(sc);
			changed = true;
		}
	}
	mirror_tick(&peers, now);
	peers.dirty = false;
	reg_tick(now);
	return changed;
}

static void revoked(void *ctx, bool ok)
{
	(void)ok;
	*(bool *)ctx = true;
}

void fleet_shutdown(void)
{
	if (etcd && reg == REG_LIVE) {
		bool done = false;
		uint64_t until = now_us() + 1000000;
		if (etcd_lease_revoke(etcd, lease, revoked, &done)) {
			while (!done && now_us() < until) {
				struct pollfd fds[8];
				int n = etcd_pollfds(etcd, fds, 8);
				poll(fds, (nfds_t)n, 50);
				etcd_process(etcd, fds, n);
			}
		}
		log_notice("etcd: this node's registration %s", done ? "revoked" : "left to expire");
	}
	teardown();
}

/* ---- the control port ---- */

void fleet_peers_json(struct strbuf *out)
{
	strbuf_printf(out, "{\"etcd\":\"%s\",\"self\":", !etcd ? "none" : was_up ? "up" : "down");
	if (node_name)
		metrics_json_string(out, node_name);
	else
		strbuf_puts(out, "null");
	strbuf_puts(out, ",\"nodes\":[");
	for (int i = 0; i < peers.n; i++) {
		if (i)
			strbuf_putc(out, ',');
		struct json_doc d = { 0 };
		/* a node's record is a JSON object: passed on as it is; anything else by its key */
		if (json_parse(&d, peers.e[i].value, strlen(peers.e[i].value)) == 0 && json_is(&d, 0, JSON_OBJECT)) {
			strbuf_puts(out, peers.e[i].value);
		} else {
			strbuf_puts(out, "{\"name\":");
			metrics_json_string(out, peers.e[i].key);
			strbuf_putc(out, '}');
		}
		json_free(&d);
	}
	strbuf_puts(out, "]}\n");
}

void fleet_metrics(struct strbuf *out)
{
	if (!etcd)
		return;
	strbuf_printf(out, "# HELP pgring_etcd_up Whether the last exchange with etcd succeeded.\n"
			   "# TYPE pgring_etcd_up gauge\npgring_etcd_up %d\n"
			   "# HELP pgring_etcd_errors_total Exchanges with etcd that failed.\n"
			   "# TYPE pgring_etcd_errors_total counter\npgring_etcd_errors_total %" PRIu64 "\n"
			   "# HELP pgring_fleet_nodes pgring nodes registered in etcd (this one included).\n"
			   "# TYPE pgring_fleet_nodes gauge\npgring_fleet_nodes %d\n",
		      was_up, errors, peers.n);
}
