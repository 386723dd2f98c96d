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
#include <unistd.h>

#include "core/config.h"
#include "core/control/control.h"
#include "core/control/etcd.h"
#include "core/control/health.h"
#include "core/control/metrics.h"
#include "core/control/promote.h"
#include "core/json.h"
#include "core/log.h"
#include "core/shard.h"
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

/* Patroni's view of one configured cluster, or with auto_failover the
 * fleet's own: its primary, fenced nodes, each node's view, the acting lock. */
struct scope {
	struct mirror m;
	int ci;
	int nnodes;
	bool own;                        /* auto_failover: pgring's keys, not Patroni's */
	bool has_word;                   /* own: a primary is published */
	uint8_t *role;                   /* per configured node: enum node_role, its word */
	char (*why)[96];
	char *found;                     /* Patroni's members the file does not name: "name\tvalue\n", by name */
	/* auto_failover */
	uint64_t down_since_us;          /* the published primary seen down since (0: up) */
	uint64_t view_due_us;
	bool view_out, lock_out, acting, claim_out;
	int down_of;                     /* the primary down_since_us is about */
	enum { AF_IDLE, AF_PUBLISHING, AF_PROMOTING, AF_REPOINTING } phase;   /* this node acting */
	int candidate;                   /* the replica being promoted, -1 */
	int repointing;                  /* the next replica to point at it */
	struct promote_job *job;
	int fencing;                     /* the node a fence job runs on, -1 */
	uint64_t retry_us;
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
static bool found_changed;           /* a scope's found list changed since fleet_take_found */


static char *joined(const char *a, const char *b, const char *c)
{
	char *s;
	return asprintf(&s, "%s%s%s", a, b, c) < 0 ? NULL : s;
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
	m->retry_at_us = shard_now_us() + RETRY_US;   /* read whole again, then watch again */
	errors++;   /* whether etcd is reachable, the read again says */
}

static void on_read(void *ctx, bool ok, const struct etcd_kv *kvs, int n, int64_t revision)
{
	struct mirror *m = ctx;
	m->reading = false;
	saw(ok);
	if (!ok) {
		m->retry_at_us = shard_now_us() + RETRY_US;
		return;
	}
	entries_clear(m);
	for (int i = 0; i < n; i++)
		if (!apply(m, &kvs[i], true))
			log_warning("etcd: out of memory mirroring %s", m->prefix);
	m->known = m->dirty = true;
	if (!(m->watch = etcd_watch_prefix(etcd, m->prefix, revision + 1, on_event, on_broken, m)))
		m->retry_at_us = shard_now_us() + RETRY_US;
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
	bool noloadbalance;              /* Patroni's tag: not a replica to read from */
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
		int tags = json_get(&d, 0, "tags");
		mb->noloadbalance = tags >= 0 && json_bool(&d, json_get(&d, tags, "noloadbalance"), false);
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

static int node_index(const struct config_cluster *c, const char *name)
{
	for (int i = 0; i < c->nnodes; i++)
		if (!strcmp(c->nodes[i].name, name))
			return i;
	return -1;
}

/* The fleet's word: the published primary, fenced nodes out, the rest replicas. */
static void own_derive(struct scope *sc)
{
	const struct config_cluster *c = &cfg->clusters[sc->ci];
	const struct entry *pe = find(&sc->m, "primary", 7);
	sc->has_word = pe && node_index(c, pe->value) >= 0;
	for (int i = 0; i < sc->nnodes; i++) {
		char key[CONFIG_NAME_MAX + 16];
		snprintf(key, sizeof key, "fenced/%s", c->nodes[i].name);
		const struct entry *fe = find(&sc->m, key, strlen(key));
		sc->role[i] = fe ? NODE_ROLE_UNKNOWN : sc->has_word && !strcmp(pe->value, c->nodes[i].name) ? NODE_PRIMARY
											   : NODE_REPLICA;
		snprintf(sc->why[i], sizeof sc->why[i], "%s", fe ? "fenced: a former primary, to be rebuilt" : "");
	}
}

static int by_line(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The members of Patroni's scope that no node of the file is (by name or
 * address), as "name\thost=H port=P\n" lines by name (weight=0 for one
 * tagged noloadbalance: no reads, as Patroni's GET /replica says); NULL when
 * none (or no memory). */
static char *members_unnamed(const struct scope *sc)
{
	const struct config_cluster *c = &cfg->clusters[sc->ci];
	char **lines = calloc((size_t)sc->m.n + 1, sizeof *lines);
	int n = 0;
	for (int i = 0; lines && i < sc->m.n; i++) {
		const struct entry *e = &sc->m.e[i];
		struct member mb = { 0 }, other;
		if (strncmp(e->key, "members/", 8) || !config_valid_name(e->key + 8) || !member_of(e->value, &mb))
			continue;
		bool named = false;
		for (int k = 0; k < c->nnodes && !named; k++)
			named = !c->nodes[k].discovered && member_for(sc, &c->nodes[k], &other) == e;
		if (!named && asprintf(&lines[n], "%s\thost=%s port=%d%s\n", e->key + 8, mb.host, mb.port,
				       mb.noloadbalance ? " weight=0" : "") >= 0)
			n++;
	}
	struct strbuf sb = STRBUF_INIT;
	if (lines)
		qsort(lines, (size_t)n, sizeof *lines, by_line);
	for (int i = 0; i < n; i++) {
		strbuf_puts(&sb, lines[i]);
		free(lines[i]);
	}
	free(lines);
	char *out = sb.len && !sb.failed ? strdup(strbuf_str(&sb)) : NULL;
	strbuf_free(&sb);
	return out;
}

/* Compare the scope's unnamed members with the last list; a change is taken
 * by control (fleet_take_found) and becomes nodes in the next configuration. */
static void note_found(struct scope *sc)
{
	const struct config_cluster *c = &cfg->clusters[sc->ci];
	char *now = c->patroni_discover ? members_unnamed(sc) : NULL;
	if (!now != !sc->found || (now && strcmp(now, sc->found))) {
		struct strbuf sb = STRBUF_INIT;
		for (const char *l = now, *end, *tab; l && *l; l = end + 1) {
			end = strchr(l, '\n');
			tab = memchr(l, '\t', (size_t)(end - l));
			strbuf_printf(&sb, "%s%.*s (%.*s)", sb.len ? ", " : "", (int)(tab - l), l, (int)(end - tab - 1),
				      tab + 1);
		}
		log_notice("cluster %s: nodes from Patroni's members the configuration does not name: %s", c->name,
			   sb.len && !sb.failed ? strbuf_str(&sb) : "none");
		strbuf_free(&sb);
		free(sc->found);
		sc->found = now;
		found_changed = true;
	} else {
		free(now);
	}
}

static void scope_derive(struct scope *sc)
{
	if (sc->own) {
		own_derive(sc);
		return;
	}
	const struct config_cluster *c = &cfg->clusters[sc->ci];
	note_found(sc);
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
		if (sc->ci != ci || !sc->m.known || ni >= sc->nnodes || (sc->own && !sc->has_word))
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
		reg_retry_us = shard_now_us() + RETRY_US;
		return;
	}
	reg = REG_LIVE;
	lease = id;
	free(last_record);
	last_record = NULL;
	keepalive_due_us = shard_now_us() + (uint64_t)ttl * 1000000u / 3;
	put_record(shard_now_us());
	log_notice("etcd: this node is registered as %s (lease %" PRIx64 ", %d s)", node_key, (uint64_t)id, ttl);
}

static void kept_alive(void *ctx, bool ok, int ttl)
{
	(void)ctx;
	keepalive_out = false;
	saw(ok);
	if (ok && ttl > 0) {
		keepalive_due_us = shard_now_us() + (uint64_t)ttl * 1000000u / 3;
		return;
	}
	if (ok) {   /* the lease ran out (etcd unreachable too long): register again */
		log_warning("etcd: this node's registration lapsed: registering again");
		reg = REG_OFF;
		reg_retry_us = 0;
		return;
	}
	keepalive_due_us = shard_now_us() + RETRY_US;
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

/* ---- auto_failover: promotion and fencing (clusters no Patroni manages) ----
 *
 * Keys under <etcd_pgring_prefix>/clusters/<cluster>/: "primary" (the node
 * the fleet routes writes to; set first from the checks, then by a
 * promotion), "views/<node>" (each node's view: the primary it sees down and
 * for how long, under its lease), "acting" (the lock the one node that acts
 * holds, under its lease), "fenced/<node>" (a former primary that came back,
 * kept until an operator removes it). */

static uint64_t promotions, fencings, failover_errors;

/* The published primary is down: not answering, or in recovery (a
 * promotion that did not happen, a demotion). */
static bool primary_down(const struct health_node *h)
{
	return h && (h->state == NODE_DOWN || (h->checked && h->check_role != NODE_PRIMARY));
}

static int quorum(void)
{
	int size = cfg->fleet_size > 0 ? cfg->fleet_size : cfg->npeers > 0 ? cfg->npeers : 1;
	return size / 2 + 1;
}

static char *scope_key(const struct scope *sc, const char *what)
{
	return joined(sc->m.prefix, what, "");
}

static void lost_request(struct scope *sc, const char *what)
{
	failover_errors++;
	log_warning("failover: cluster %s: %s", cfg->clusters[sc->ci].name, what);
}

static void view_done(void *ctx, bool ok)
{
	struct scope *sc = ctx;
	sc->view_out = false;
	saw(ok);
}

/* This node's view, every second while it sees the primary down, and once when it is up again. */
static void write_view(struct scope *sc, const char *primary, uint64_t down_ms, uint64_t now)
{
	if (sc->view_out || now < sc->view_due_us || reg != REG_LIVE)
		return;
	char key[CONFIG_NAME_MAX * 2 + 16], value[CONFIG_NAME_MAX + 64];
	snprintf(key, sizeof key, "views/%s", node_name);
	snprintf(value, sizeof value, "{\"primary\":\"%s\",\"down_ms\":%" PRIu64 "}", primary, down_ms);
	char *k = scope_key(sc, key);
	sc->view_out = k && etcd_put(etcd, k, value, lease, view_done, sc);
	free(k);
	sc->view_due_us = now + (down_ms ? 1000000u : 5000000u);
}

/* How many nodes' views (this one's included) see primary down at least as long as failover_after. */
static int agreeing(const struct scope *sc, const char *primary)
{
	int n = 0;
	for (int i = 0; i < sc->m.n; i++) {
		if (strncmp(sc->m.e[i].key, "views/", 6))
			continue;
		struct json_doc d = { 0 };
		int64_t ms = 0;
		char *p = NULL;
		if (json_parse(&d, sc->m.e[i].value, strlen(sc->m.e[i].value)) == 0 &&
		    (p = json_strdup(&d, json_get(&d, 0, "primary"), NULL)) && !strcmp(p, primary) &&
		    json_int64(&d, json_get(&d, 0, "down_ms"), &ms) && ms >= (int64_t)(cfg->failover_after * 1000))
			n++;
		free(p);
		json_free(&d);
	}
	return n;
}

/* The replica to promote: up, in recovery as its check sees it, not fenced,
 * the most WAL replayed. */
static int pick_candidate(const struct scope *sc, int primary)
{
	int best = -1;
	for (int i = 0; i < sc->nnodes; i++) {
		const struct health_node *h = health_node_of(sc->ci, i);
		if (i == primary || !h || !h->checked || h->state == NODE_DOWN || h->check_role != NODE_REPLICA ||
		    sc->role[i] == NODE_ROLE_UNKNOWN)
			continue;
		if (best < 0 || h->lsn > health_node_of(sc->ci, best)->lsn)
			best = i;
	}
	return best;
}

static struct promote_job *job_on(struct scope *sc, enum promote_kind kind, int node, int target)
{
	const struct config_node *n = &cfg->clusters[sc->ci].nodes[node];
	const struct config_node *t = target >= 0 ? &cfg->clusters[sc->ci].nodes[target] : NULL;
	return promote_start(kind, n->host, n->port > 0 ? n->port : 5432, t ? t->host : NULL,
			     t ? (t->port > 0 ? t->port : 5432) : 0, cfg->health_check_user, cfg->health_check_password,
			     cfg->health_check_dbname);
}

static void released_lock(void *ctx, bool ok)
{
	(void)ctx;
	saw(ok);
}

static void give_up_acting(struct scope *sc)
{
	char *k = scope_key(sc, "acting");
	if (k && sc->acting)
		etcd_delete(etcd, k, released_lock, NULL);
	free(k);
	sc->acting = false;
	sc->candidate = -1;
}

static void publish_primary(struct scope *sc);

/* The candidate is the fleet's primary now (writes wait for it to come out
 * of recovery, no node fences it): promote it. */
static void published(void *ctx, bool ok)
{
	struct scope *sc = ctx;
	saw(ok);
	if (!ok) {
		lost_request(sc, "the new primary could not be published in etcd; trying again");
		publish_primary(sc);   /* each try bounded by etcd_timeout; the lock is ours meanwhile */
		return;
	}
	sc->phase = AF_PROMOTING;
	if (!(sc->job = job_on(sc, PROMOTE_PROMOTE, sc->candidate, -1))) {
		lost_request(sc, "cannot start the promotion (no memory or thread)");
		sc->phase = AF_IDLE;
		give_up_acting(sc);
	}
}

static void publish_primary(struct scope *sc)
{
	char *k = scope_key(sc, "primary");
	sc->phase = AF_PUBLISHING;
	if (!k || !etcd_put(etcd, k, cfg->clusters[sc->ci].nodes[sc->candidate].name, 0, published, sc)) {
		lost_request(sc, "out of memory publishing the new primary");
		sc->phase = AF_IDLE;
		give_up_acting(sc);
	}
	free(k);
}

/* Once the candidate is the primary everywhere: point the other replicas at it, one job at a time. */
static void repoint_next(struct scope *sc)
{
	while (sc->repointing >= 0 && sc->repointing < sc->nnodes) {
		int i = sc->repointing++;
		const struct health_node *h = health_node_of(sc->ci, i);
		if (i == sc->candidate || !h || h->state == NODE_DOWN || sc->role[i] == NODE_ROLE_UNKNOWN)
			continue;
		if ((sc->job = job_on(sc, PROMOTE_REPOINT, i, sc->candidate)))
			return;
	}
	if (sc->repointing >= sc->nnodes) {
		log_notice("failover: cluster %s: done, %s is the primary", cfg->clusters[sc->ci].name,
			   cfg->clusters[sc->ci].nodes[sc->candidate].name);
		sc->repointing = -1;
		sc->phase = AF_IDLE;
		give_up_acting(sc);
	}
}

static void job_finished(struct scope *sc, uint64_t now)
{
	char why[256];   /* copied: the job goes next */
	enum promote_state st = promote_state(sc->job, why, sizeof why);
	if (st == PROMOTE_RUNNING)
		return;
	const struct config_cluster *c = &cfg->clusters[sc->ci];
	promote_release(sc->job);
	sc->job = NULL;
	if (sc->fencing >= 0) {
		if (st == PROMOTE_OK && *why)
			log_warning("failover: cluster %s: %s fenced (default_transaction_read_only, its sessions "
				    "terminated), but %s; a former primary, it needs a rebuild", c->name,
				    c->nodes[sc->fencing].name, why);
		else if (st == PROMOTE_OK)
			log_warning("failover: cluster %s: %s fenced (default_transaction_read_only, a standby from its "
				    "next restart, its sessions terminated): a former primary, it needs a rebuild",
				    c->name, c->nodes[sc->fencing].name);
		else
			lost_request(sc, why);
		fencings += st == PROMOTE_OK;
		sc->fencing = -1;
		return;
	}
	if (sc->phase == AF_REPOINTING) {
		if (st == PROMOTE_OK)
			log_notice("failover: cluster %s: %s now follows %s", c->name, c->nodes[sc->repointing - 1].name,
				   c->nodes[sc->candidate].name);
		else
			lost_request(sc, why);
		repoint_next(sc);
		return;
	}
	if (st != PROMOTE_OK) {
		/* published but not promoted: the lock goes, and since the published
		 * primary is in recovery, the fleet sees it down and tries again */
		lost_request(sc, why);
		sc->phase = AF_IDLE;
		give_up_acting(sc);
		sc->retry_us = now + (uint64_t)(cfg->failover_after * 1e6);
		return;
	}
	promotions++;
	log_notice("failover: cluster %s: %s promoted", c->name, c->nodes[sc->candidate].name);
	sc->phase = AF_REPOINTING;
	sc->repointing = 0;   /* then the other replicas follow it */
}

/* Acting: the lock is ours; read the cluster's keys again (what this node's
 * watch shows may lag the lock's revision) before promoting anything. */
static void reread(void *ctx, bool ok, const struct etcd_kv *kvs, int n, int64_t revision)
{
	struct scope *sc = ctx;
	(void)revision;
	sc->claim_out = false;
	saw(ok);
	const struct config_cluster *c = &cfg->clusters[sc->ci];
	const char *primary = NULL;
	size_t plen = strlen(sc->m.prefix);
	for (int i = 0; ok && i < n; i++)
		if (kvs[i].key_len == plen + 7 && !memcmp(kvs[i].key + plen, "primary", 7))
			primary = kvs[i].value;
	int pi = primary ? node_index(c, primary) : -1;
	const struct health_node *ph = pi >= 0 ? health_node_of(sc->ci, pi) : NULL;
	if (!ok || !primary_down(ph) || agreeing(sc, primary) < quorum()) {
		give_up_acting(sc);   /* things moved on meanwhile */
		return;
	}
	sc->candidate = pick_candidate(sc, pi);
	if (sc->candidate < 0) {
		lost_request(sc, "no replica is up to promote");
		give_up_acting(sc);
		sc->retry_us = shard_now_us() + RETRY_US;
		return;
	}
	struct strbuf lsns = STRBUF_INIT;
	for (int i = 0; i < sc->nnodes; i++) {
		const struct health_node *h = health_node_of(sc->ci, i);
		if (i != pi && h)
			strbuf_printf(&lsns, "%s%s %" PRIu64 "%s", lsns.len ? ", " : "", c->nodes[i].name, h->lsn,
				      h->state == NODE_DOWN ? " (down)" : "");
	}
	log_notice("failover: cluster %s: primary %s down as %d of the fleet's nodes see it (quorum %d): promoting %s, "
		   "published first (WAL replayed: %s)", c->name, primary, agreeing(sc, primary), quorum(),
		   c->nodes[sc->candidate].name, strbuf_str(&lsns));
	strbuf_free(&lsns);
	publish_primary(sc);
}

static void claimed(void *ctx, bool ok, bool created)
{
	struct scope *sc = ctx;
	sc->lock_out = false;
	saw(ok);
	if (!ok || !created)
		return;   /* another node acts */
	sc->acting = sc->claim_out = true;
	if (!etcd_range_prefix(etcd, sc->m.prefix, reread, sc)) {
		sc->claim_out = false;
		give_up_acting(sc);
	}
}

static void bootstrap_done(void *ctx, bool ok, bool created)
{
	(void)ctx;
	(void)created;
	saw(ok);
}

static void fence_claimed(void *ctx, bool ok, bool created)
{
	struct scope *sc = ctx;
	int i = sc->fencing;
	saw(ok);
	if (!ok || !created || i < 0) {
		sc->fencing = -1;   /* another node fences it */
		return;
	}
	log_warning("failover: cluster %s: %s answers as a primary but is not the cluster's: fencing it",
		    cfg->clusters[sc->ci].name, cfg->clusters[sc->ci].nodes[i].name);
	if (!(sc->job = job_on(sc, PROMOTE_FENCE, i, -1))) {
		lost_request(sc, "cannot start fencing (no memory or thread)");
		sc->fencing = -1;
	}
}

/* A node that answers as a primary and is not the published one is fenced
 * (once: whoever creates its fenced key does it). */
static void fence_strays(struct scope *sc, int primary)
{
	for (int i = 0; i < sc->nnodes && !sc->job && sc->fencing < 0; i++) {
		const struct health_node *h = health_node_of(sc->ci, i);
		if (i == primary || !h || !h->checked || h->fails_in_row || h->check_role != NODE_PRIMARY ||
		    sc->role[i] == NODE_ROLE_UNKNOWN)
			continue;
		char key[CONFIG_NAME_MAX + 16];
		snprintf(key, sizeof key, "fenced/%s", cfg->clusters[sc->ci].nodes[i].name);
		char *k = scope_key(sc, key);
		sc->fencing = i;
		if (!k || !etcd_put_if_absent(etcd, k, "a former primary: rebuild it, then delete this key", 0,
					      fence_claimed, sc))
			sc->fencing = -1;
		free(k);
	}
}

static void failover_tick(struct scope *sc, uint64_t now)
{
	if (sc->job) {
		job_finished(sc, now);
		return;
	}
	if (sc->phase == AF_REPOINTING) {
		repoint_next(sc);   /* the new primary is promoted: the others follow it */
		return;
	}
	if (sc->phase != AF_IDLE || !sc->m.known || sc->claim_out || reg != REG_LIVE)
		return;
	const struct config_cluster *c = &cfg->clusters[sc->ci];
	const struct entry *pe = find(&sc->m, "primary", 7);
	int pi = pe ? node_index(c, pe->value) : -1;
	if (pi < 0) {
		/* nothing published yet: the primary the checks found is the fleet's */
		const struct health_node *h;
		for (int i = 0; i < sc->nnodes && !sc->lock_out; i++)
			if ((h = health_node_of(sc->ci, i)) && h->checked && h->state != NODE_DOWN &&
			    h->check_role == NODE_PRIMARY) {
				char *k = scope_key(sc, "primary");
				if (k)
					etcd_put_if_absent(etcd, k, c->nodes[i].name, 0, bootstrap_done, NULL);
				free(k);
				break;
			}
		return;
	}
	fence_strays(sc, pi);
	const struct health_node *ph = health_node_of(sc->ci, pi);
	bool down = primary_down(ph);
	if (pi != sc->down_of)
		sc->down_since_us = 0;   /* another primary: its own time */
	sc->down_of = pi;
	if (!down)
		sc->down_since_us = 0;
	else if (!sc->down_since_us)
		sc->down_since_us = now;
	uint64_t down_ms = down ? (now - sc->down_since_us) / 1000 + 1 : 0;
	write_view(sc, c->nodes[pi].name, down_ms, now);
	if (!down || sc->acting || sc->lock_out || now < sc->retry_us || down_ms < cfg->failover_after * 1000 ||
	    agreeing(sc, c->nodes[pi].name) < quorum())
		return;
	char *k = scope_key(sc, "acting");
	sc->lock_out = k && etcd_put_if_absent(etcd, k, node_name, lease, claimed, sc);
	free(k);
}

/* ---- set-up ---- */

static void teardown(void)
{
	for (int i = 0; i < nscopes; i++) {
		promote_release(scopes[i].job);   /* a running step finishes on its own */
		mirror_free(&scopes[i].m);
		free(scopes[i].role);
		free(scopes[i].why);
		free(scopes[i].found);
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

static void self_name(const struct config *c, char *out, size_t len)
{
	if (c->node_name)
		snprintf(out, len, "%s", c->node_name);
	else if (c->peer_id > 0)
		snprintf(out, len, "peer%d", c->peer_id);
	else
		snprintf(out, len, "%s:%d", c->listen_addr ? c->listen_addr : "*", c->listen_port);
}

/* Patroni's <etcd_prefix>/<scope>/, or the fleet's own <etcd_pgring_prefix>/clusters/<name>/ */
static char *scope_prefix(const struct config *c, int ci)
{
	bool patroni = !strcmp(c->topology_source, "etcd");
	const struct config_cluster *cc = &c->clusters[ci];
	const char *base = patroni ? c->etcd_prefix : c->etcd_pgring_prefix;
	char *s;
	return asprintf(&s, "%s%s%s%s/", base, strcmp(base, "/") ? "/" : "",
			patroni ? "" : "clusters/",
			patroni ? (cc->patroni_scope ? cc->patroni_scope : cc->name) : cc->name) < 0 ? NULL : s;
}

static bool same_str(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

/* A new configuration that changes nothing the fleet holds (etcd, this
 * node's name, the clusters and their keys; with auto_failover their nodes
 * too): the client, the registration, the mirrors and any failover in
 * progress stay. Patroni's members found in etcd become nodes this way. */
static bool fleet_unchanged(const struct config *c)
{
	if (!etcd || !cfg || !same_str(c->etcd_hosts, cfg->etcd_hosts) || c->etcd_timeout != cfg->etcd_timeout ||
	    !same_str(c->topology_source, cfg->topology_source) || c->auto_failover != cfg->auto_failover ||
	    !same_str(c->etcd_prefix, cfg->etcd_prefix) || !same_str(c->etcd_pgring_prefix, cfg->etcd_pgring_prefix) ||
	    c->etcd_node_ttl != cfg->etcd_node_ttl ||
	    (!strcmp(c->topology_source, "etcd") || c->auto_failover ? c->nclusters : 0) != nscopes)
		return false;
	char self[96];
	self_name(c, self, sizeof self);
	if (!same_str(self, node_name))
		return false;
	for (int i = 0; i < nscopes; i++) {
		char *p = scope_prefix(c, i);
		bool same = p && !strcmp(p, scopes[i].m.prefix);
		free(p);
		if (!same)
			return false;
		const struct config_cluster *a = &c->clusters[i], *b = &cfg->clusters[i];
		if (scopes[i].own && a->nnodes != b->nnodes)
			return false;
		for (int k = 0; scopes[i].own && k < a->nnodes; k++)
			if (strcmp(a->nodes[k].name, b->nodes[k].name))
				return false;
	}
	return true;
}

/* Keep everything, with the scopes sized for the new node lists. */
static int keep(const struct config *c)
{
	for (int i = 0; i < nscopes; i++) {
		struct scope *sc = &scopes[i];
		int n = c->clusters[i].nnodes;
		uint8_t *role = calloc((size_t)n + 1, 1);
		char(*why)[96] = calloc((size_t)n + 1, sizeof *why);
		if (!role || !why) {
			free(role);
			free(why);
			return -1;
		}
		free(sc->role);
		free(sc->why);
		sc->role = role;
		sc->why = why;
		sc->nnodes = n;
	}
	cfg = c;
	for (int i = 0; i < nscopes; i++)
		if (scopes[i].m.known)
			scope_derive(&scopes[i]);
	return 0;
}

int fleet_configure(const struct config *c)
{
	if (fleet_unchanged(c))
		return keep(c);
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
	bool patroni = !strcmp(c->topology_source, "etcd");
	if ((patroni || c->auto_failover) && c->nclusters) {
		if (!(scopes = calloc((size_t)c->nclusters, sizeof *scopes)))
			return -1;
		for (int i = 0; i < c->nclusters; i++) {
			const struct config_cluster *cc = &c->clusters[i];
			struct scope *sc = &scopes[nscopes++];
			sc->ci = i;
			sc->nnodes = cc->nnodes;
			sc->own = !patroni;
			sc->candidate = sc->fencing = sc->repointing = sc->down_of = -1;
			sc->role = calloc((size_t)cc->nnodes + 1, 1);
			sc->why = calloc((size_t)cc->nnodes + 1, sizeof *sc->why);
			sc->m.prefix = scope_prefix(c, i);
			if (!sc->role || !sc->why || !sc->m.prefix)
				return -1;
		}
	}
	char self[96];
	self_name(c, self, sizeof self);
	node_name = strdup(self);
	peers.prefix = joined(c->etcd_pgring_prefix, strcmp(c->etcd_pgring_prefix, "/") ? "/" : "", "nodes/");
	node_key = peers.prefix && node_name ? joined(peers.prefix, node_name, "") : NULL;
	if (!node_key)
		return -1;
	log_notice("etcd: %s; this node is %s%s", c->etcd_hosts, node_name,
		   !nscopes ? "" : patroni ? ", cluster roles from Patroni's keys" : ", automatic failover (quorum of the fleet)");
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
	uint64_t now = shard_now_us();
	bool changed = false;
	for (int i = 0; i < nscopes; i++) {
		struct scope *sc = &scopes[i];
		mirror_tick(&sc->m, now);
		if (sc->m.dirty) {
			sc->m.dirty = false;
			scope_derive(sc);
			changed = true;
		}
		if (sc->own)
			failover_tick(sc, now);
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
		uint64_t until = shard_now_us() + 1000000;
		if (etcd_lease_revoke(etcd, lease, revoked, &done)) {
			while (!done && shard_now_us() < until) {
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

bool fleet_take_found(char ***found)
{
	if (!found_changed)
		return false;
	found_changed = false;
	int n = 0;
	for (int i = 0; i < nscopes; i++)
		for (const char *l = scopes[i].found; l && *l; l = strchr(l, '\n') + 1)
			n++;
	char **out = calloc((size_t)n * 3 + 1, sizeof *out);
	int k = 0;
	for (int i = 0; out && i < nscopes; i++)
		for (const char *l = scopes[i].found, *end; l && *l; l = end + 1) {
			end = strchr(l, '\n');
			const char *tab = memchr(l, '\t', (size_t)(end - l));
			if (!tab)
				continue;
			out[k++] = strdup(cfg->clusters[scopes[i].ci].name);
			out[k++] = strndup(l, (size_t)(tab - l));
			out[k++] = strndup(tab + 1, (size_t)(end - tab - 1));
			if (!out[k - 1] || !out[k - 2] || !out[k - 3]) {
				fleet_found_free(out);
				found_changed = true;   /* tried again at the next turn */
				return false;
			}
		}
	if (!out) {
		found_changed = true;
		return false;
	}
	*found = out;
	return true;
}

void fleet_found_free(char **found)
{
	for (int i = 0; found && found[i]; i++)
		free(found[i]);
	free(found);
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
			   "# TYPE pgring_fleet_nodes gauge\npgring_fleet_nodes %d\n"
			   "# HELP pgring_failover_promotions_total Replicas this node promoted (auto_failover).\n"
			   "# TYPE pgring_failover_promotions_total counter\npgring_failover_promotions_total %" PRIu64 "\n"
			   "# HELP pgring_failover_fencings_total Former primaries this node fenced (auto_failover).\n"
			   "# TYPE pgring_failover_fencings_total counter\npgring_failover_fencings_total %" PRIu64 "\n"
			   "# HELP pgring_failover_errors_total Failover steps that failed (auto_failover).\n"
			   "# TYPE pgring_failover_errors_total counter\npgring_failover_errors_total %" PRIu64 "\n",
		      was_up, errors, peers.n, promotions, fencings, failover_errors);
}
