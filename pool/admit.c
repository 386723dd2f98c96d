/* pool/admit.c: admission control (see pool/admit.h). Owns a shard's tenant
 * records (limits in force, token buckets, the queue of throttled clients),
 * the admission of a transaction's first request, its refusal, the charging
 * of queries and rows, and the fair pick among a pool's waiters. Nothing here
 * runs when the configuration sets no limit (cfg->admission). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/registry.h"
#include "core/shard.h"
#include "core/tbucket.h"
#include "pool/admit.h"
#include "pool/client.h"
#include "pool/lease.h"
#include "pool/pool.h"

enum { R_TXN = 0, R_QPS, R_RPS };
static const char *const reason_key[ADMIT_REASONS] = {
	"max_transactions", "max_queries_per_second", "max_rows_per_second",
};
static const char *const kind_name[ADMIT_KINDS] = { "database", "user", "application" };

/* How long a waiter held by another shard's transactions polls for one to end. */
#define TXN_POLL_US 10000
/* A shard that had a request of a tenant this recently takes a share of its
 * rates; the shares are worked out again this often. */
#define SHARE_ACTIVE_US 1000000
#define SHARE_EVERY_US 100000
/* Waiters of a pool the fair pick looks at: a bound on its cost. */
#define PICK_WINDOW 64

struct admit_tenant {
	struct admit_tenant *next;
	struct tenant_shared *shared;
	struct stats_tenant *stats;            /* this shard's block */
	uint8_t kind;
	char name[REGISTRY_NAME_MAX];
	int max_txn, qps, rps, mode, queue_size, weight;
	double wait_timeout;
	struct tbucket q, r;
	struct list waiters;                   /* CL_THROTTLED clients, first come first */
	int n_waiters;
	double pass;                           /* the fair pick's virtual time */
	int nshares;                           /* shards the rates are split over now */
	uint64_t share_us;                     /* when nshares was worked out */
};

struct admit_shard {
	struct admit_tenant *tenants;
	uint64_t gen;                          /* configurations seen */
	double vtime, none_pass;               /* fair pick: the clock, waiters without a tenant */
};

static struct admit_shard *as_of(struct shard *s)
{
	struct pool_shard *ps = pool_shard(s);
	if (!ps->admit && (ps->admit = calloc(1, sizeof *ps->admit)))
		ps->admit->gen = 1;
	return ps->admit;
}

/* ---- tenants and their limits ---- */

static void set_limits(struct shard *s, struct admit_tenant *t, const struct config_limits *l)
{
	const struct config *cfg = s->cfg;
	static const struct config_limits none = { 0, 0, 0, -1, -1, -1, -1 };
	if (!l)
		l = &none;
	t->max_txn = l->max_transactions > 0 ? l->max_transactions : 0;
	t->qps = l->max_qps > 0 ? l->max_qps : 0;
	t->rps = l->max_rps > 0 ? l->max_rps : 0;
	t->mode = l->throttle_mode >= 0 ? l->throttle_mode : cfg->throttle_mode;
	t->queue_size = l->throttle_queue_size >= 0 ? l->throttle_queue_size : cfg->throttle_queue_size;
	t->wait_timeout = l->throttle_wait_timeout >= 0 ? l->throttle_wait_timeout : cfg->throttle_wait_timeout;
	t->weight = l->throttle_weight > 0 ? l->throttle_weight : cfg->throttle_weight;
	if (t->nshares < 1)
		t->nshares = 1;
	double q = tbucket_share(t->qps, t->nshares), r = tbucket_share(t->rps, t->nshares);
	tbucket_set_rate(&t->q, q, tbucket_burst(q));
	tbucket_set_rate(&t->r, r, tbucket_burst(r));
}

/* The rates are split over the shards that have had the tenant's requests in
 * the last second (this one included), so that a tenant whose clients all
 * landed on one shard still gets its whole rate there. */
static void reshare(struct shard *s, struct admit_tenant *t)
{
	uint64_t now = s->now_us;
	stat_add(&t->stats->active_us, now - stat_get(&t->stats->active_us));
	if (now - t->share_us < SHARE_EVERY_US || (!t->qps && !t->rps))
		return;
	t->share_us = now;
	int n = 0;
	for (int i = 0; i < registry_nshards(); i++) {
		uint64_t at = stat_get(&t->shared->shard[i].active_us);
		n += i == s->id || (at && now - at < SHARE_ACTIVE_US);
	}
	if (n != t->nshares) {
		t->nshares = n;
		double q = tbucket_share(t->qps, n), r = tbucket_share(t->rps, n);
		tbucket_set_rate(&t->q, q, tbucket_burst(q));
		tbucket_set_rate(&t->r, r, tbucket_burst(r));
	}
}

static const struct config_limits *limits_of(const struct config *cfg, int kind, const char *name)
{
	const struct config_db *db;
	const struct config_user *u;
	const struct config_app *a;
	switch (kind) {
	case ADMIT_DB: return (db = config_find_db(cfg, name)) ? &db->lim : NULL;
	case ADMIT_USER: return (u = config_find_user(cfg, name)) ? &u->lim : NULL;
	default: return (a = config_find_app(cfg, name)) ? &a->lim : NULL;
	}
}

/* The shard's record of a tenant, made on first use; NULL without memory. */
static struct admit_tenant *tenant_get(struct shard *s, int kind, const char *name, const struct config_limits *l)
{
	struct admit_shard *as = as_of(s);
	if (!as)
		return NULL;
	for (struct admit_tenant *t = as->tenants; t; t = t->next)
		if (t->kind == kind && strcmp(t->name, name) == 0)
			return t;
	struct tenant_shared *sh = registry_tenant(kind, name);
	struct admit_tenant *t = sh ? calloc(1, sizeof *t) : NULL;
	if (!t)
		return NULL;
	t->shared = sh;
	t->stats = &sh->shard[s->id < registry_nshards() ? s->id : 0];
	t->nshares = s->nshards;   /* until reshare knows better */
	t->kind = (uint8_t)kind;
	snprintf(t->name, sizeof t->name, "%s", name);
	list_init(&t->waiters);
	tbucket_init(&t->q, 0, 1, s->now_us);
	tbucket_init(&t->r, 0, 1, s->now_us);
	set_limits(s, t, l);
	t->q.tokens = t->q.burst;
	t->r.tokens = t->r.burst;
	t->next = as->tenants;
	as->tenants = t;
	return t;
}

static void resolve_one(struct client *cl, int kind, const char *name)
{
	struct shard *s = cl->conn.shard;
	const struct config_limits *l = name ? limits_of(s->cfg, kind, name) : NULL;
	struct admit_tenant *t = l && config_limits_set(l) ? tenant_get(s, kind, name, l) : NULL;
	cl->adm->t[kind] = t;
	if (t) {
		cl->adm->any = true;
		cl->adm->rows |= t->rps > 0;
	}
}

struct admit_client *admit_of(struct client *cl)
{
	if (!cl->adm && !(cl->adm = calloc(1, sizeof *cl->adm)))
		LOGF(LOG_WARNING, cl->conn.id, "admission: out of memory");
	return cl->adm;
}

/* The client's tenants under the configuration in force. */
static void resolve(struct client *cl)
{
	struct admit_shard *as = as_of(cl->conn.shard);
	cl->adm->any = cl->adm->rows = false;
	resolve_one(cl, ADMIT_DB, cl->pool ? cl->pool->db_name : cl->database);
	resolve_one(cl, ADMIT_USER, cl->user);
	resolve_one(cl, ADMIT_APP, params_get(&cl->params, "application_name"));
	cl->adm->gen = as ? as->gen : 0;
}

void admit_configure(struct shard *s)
{
	struct admit_shard *as = pool_shard(s)->admit;
	if (!as)
		return;
	as->gen++;
	for (struct admit_tenant *t = as->tenants; t; t = t->next)
		set_limits(s, t, limits_of(s->cfg, t->kind, t->name));
	s->upper_wake_us = s->now_us;   /* waiters may go under the new limits */
}

/* ---- the checks ---- */

/* The limit of t that holds a request back now, or -1. */
static int blocked_by(struct admit_tenant *t, uint64_t now)
{
	if (t->max_txn && atomic_load_explicit(&t->shared->active, memory_order_relaxed) >= t->max_txn)
		return R_TXN;
	if (t->qps && !tbucket_has(&t->q, 1, now))
		return R_QPS;
	if (t->rps && !tbucket_has(&t->r, 0, now))
		return R_RPS;
	return -1;
}

static int limit_value(const struct admit_tenant *t, int reason)
{
	return reason == R_TXN ? t->max_txn : reason == R_QPS ? t->qps : t->rps;
}

static void refuse(struct client *cl, struct admit_tenant *t, int reason, const char *why)
{
	char msg[256];
	snprintf(msg, sizeof msg, "pgring: %s (%d) of %s \"%s\" exceeded%s", reason_key[reason], limit_value(t, reason),
		 kind_name[t->kind], t->name, why);
	stat_add(&t->stats->refused[reason], 1);
	LOGF(LOG_DEBUG, cl->conn.id, "request refused: %s", msg);
	lease_refuse(cl, "53400", msg);
}

/* Take a transaction in each tenant that counts them; false (none taken)
 * and *who set when one is full (another shard took the last one). */
static bool take_txns(struct client *cl, struct admit_tenant **who)
{
	for (int k = 0; k < ADMIT_KINDS; k++) {
		struct admit_tenant *t = cl->adm->t[k];
		if (!t || !t->max_txn)
			continue;
		if (!registry_tenant_take(t->shared, t->max_txn)) {
			admit_end(cl);
			*who = t;
			return false;
		}
		cl->adm->held |= (uint8_t)(1u << k);
	}
	return true;
}

static void grant(struct client *cl)
{
	struct shard *s = cl->conn.shard;
	for (int k = 0; k < ADMIT_KINDS; k++) {
		struct admit_tenant *t = cl->adm->t[k];
		if (!t)
			continue;
		tbucket_charge(&t->q, 1, s->now_us);
		stat_add(&t->stats->admitted, 1);
		if (cl->adm->wait_start_us) {
			stat_add(&t->stats->wait_us, s->now_us - cl->adm->wait_start_us);
			stat_add(&t->stats->waits, 1);
		}
	}
	cl->adm->wait_start_us = 0;
	cl->adm->throttled = false;
}

/* The first tenant holding the client back, with the reason; NULL: none.
 * queued: a tenant with others waiting holds a newcomer back too (FIFO). */
static struct admit_tenant *holder(struct client *cl, bool queued, int *reason)
{
	uint64_t now = cl->conn.shard->now_us;
	for (int k = 0; k < ADMIT_KINDS; k++) {
		struct admit_tenant *t = cl->adm->t[k];
		if (!t)
			continue;
		reshare(cl->conn.shard, t);
		*reason = blocked_by(t, now);
		if (*reason < 0 && queued && t->n_waiters)
			*reason = t->max_txn ? R_TXN : t->qps ? R_QPS : R_RPS;
		if (*reason >= 0)
			return t;
	}
	return NULL;
}

/* Wait in t's queue, or be refused. */
static enum admit_verdict hold_back(struct client *cl, struct admit_tenant *t, int reason)
{
	if (t->mode == THROTTLE_REFUSE) {
		refuse(cl, t, reason, "");
		return ADMIT_REFUSED;
	}
	if (t->n_waiters >= t->queue_size) {
		char why[96];
		snprintf(why, sizeof why, " (throttle_queue_size: %d requests waiting already)", t->queue_size);
		refuse(cl, t, reason, why);
		return ADMIT_REFUSED;
	}
	if (!cl->adm->throttled) {
		stat_add(&t->stats->throttled[reason], 1);
		cl->adm->throttled = true;
	}
	if (!cl->adm->wait_start_us)
		cl->adm->wait_start_us = cl->conn.shard->now_us;
	cl->adm->waits_on = t;
	client_set_state(cl, CL_THROTTLED);
	struct shard *s = cl->conn.shard;
	if (s->upper_wake_us > s->now_us + TXN_POLL_US)
		s->upper_wake_us = s->now_us + TXN_POLL_US;   /* admit_run says when, precisely */
	return ADMIT_WAIT;
}

static enum admit_verdict try_admit(struct client *cl, bool queued)
{
	int reason;
	struct admit_tenant *t = holder(cl, queued, &reason);
	if (!t && !take_txns(cl, &t))
		reason = R_TXN;
	if (t)
		return hold_back(cl, t, reason);
	grant(cl);
	return ADMIT_GO;
}

/* Its admission state, its tenants found again if the configuration changed;
 * NULL: no memory (logged). */
static struct admit_client *current(struct client *cl)
{
	struct admit_shard *as = pool_shard(cl->conn.shard)->admit;
	if (admit_of(cl) && (!as || cl->adm->gen != as->gen))
		resolve(cl);
	return cl->adm;
}

enum admit_verdict admit_request(struct client *cl, uint8_t type)
{
	if (!current(cl)) {
		lease_refuse(cl, "53200", "pgring: out of memory");
		return ADMIT_REFUSED;
	}
	if (!cl->adm->any)
		return ADMIT_GO;
	/* the admission pays for one query: this one, or the Execute to come */
	cl->adm->prepaid = type != 'Q';
	return try_admit(cl, true);
}

void admit_force(struct client *cl, uint8_t type)
{
	if (!current(cl) || !cl->adm->any)
		return;   /* no memory (logged): cannot be held back, cannot be counted */
	cl->adm->prepaid = type != 'Q';
	for (int k = 0; k < ADMIT_KINDS; k++)
		if (cl->adm->t[k] && cl->adm->t[k]->max_txn) {
			atomic_fetch_add(&cl->adm->t[k]->shared->active, 1);
			cl->adm->held |= (uint8_t)(1u << k);
		}
	grant(cl);
}

/* ---- charging ---- */

void admit_query(struct client *cl)
{
	if (!cl->adm)
		return;
	if (cl->adm->prepaid) {
		cl->adm->prepaid = false;
		return;
	}
	uint64_t now = cl->conn.shard->now_us;
	for (int k = 0; k < ADMIT_KINDS; k++)
		if (cl->adm->t[k])
			tbucket_charge(&cl->adm->t[k]->q, 1, now);
}

/* The row count of a CommandComplete tag: its last word when that is a
 * number ("SELECT 5", "INSERT 0 5", "COPY 7"), else 0. */
static uint64_t tag_rows(const uint8_t *msg, uint32_t len)
{
	const char *tag = (const char *)msg + 5, *end = tag + strnlen(tag, len - 5), *p = end;
	while (p > tag && p[-1] >= '0' && p[-1] <= '9')
		p--;
	if (p == end || (p > tag && p[-1] != ' '))
		return 0;
	return strtoull(p, NULL, 10);
}

void admit_rows(struct client *cl, const uint8_t *msg, uint32_t len)
{
	if (len <= 5 || !cl->adm)
		return;
	uint64_t rows = tag_rows(msg, len), now = cl->conn.shard->now_us;
	for (int k = 0; rows && k < ADMIT_KINDS; k++)
		if (cl->adm->t[k] && cl->adm->t[k]->rps)
			tbucket_charge(&cl->adm->t[k]->r, (double)rows, now);
}

void admit_end(struct client *cl)
{
	struct shard *s = cl->conn.shard;
	if (!cl->adm)
		return;
	for (int k = 0; k < ADMIT_KINDS; k++) {
		if (!(cl->adm->held & (1u << k)))
			continue;
		struct admit_tenant *t = cl->adm->t[k];
		atomic_fetch_sub_explicit(&t->shared->active, 1, memory_order_relaxed);
		if (t->n_waiters)
			s->upper_wake_us = s->now_us;   /* at the end of this batch, not inside the caller */
	}
	cl->adm->held = 0;
	cl->adm->prepaid = false;
	cl->adm->open = false;
}

/* ---- the queues ---- */

void admit_enqueue(struct client *cl)
{
	struct admit_tenant *t = cl->adm->waits_on;
	list_append(&t->waiters, &cl->wait);
	t->n_waiters++;
	gauge_add(&t->stats->waiting, 1);
}

void admit_dequeue(struct client *cl)
{
	struct admit_tenant *t = cl->adm->waits_on;
	list_del(&cl->wait);
	t->n_waiters--;
	gauge_add(&t->stats->waiting, -1);
	cl->adm->waits_on = NULL;
}

/* When t's first waiter may go, as far as this shard can tell. */
static uint64_t due_at(struct admit_tenant *t, int reason, uint64_t now)
{
	switch (reason) {
	case R_QPS: return now + tbucket_wait_us(&t->q, 1, now);
	case R_RPS: return now + tbucket_wait_us(&t->r, 0, now);
	default: return now + TXN_POLL_US;   /* another shard's transaction may end */
	}
}

/* t's waiters: refused past throttle_wait_timeout, admitted while they may
 * go; the time the first of the rest may go. */
static uint64_t run_tenant(struct admit_tenant *t, uint64_t now)
{
	struct client *cl;
	while ((cl = list_first(&t->waiters, struct client, wait))) {
		int reason;
		struct admit_tenant *h = holder(cl, false, &reason);
		if (h && h->wait_timeout > 0 && now - cl->adm->wait_start_us > (uint64_t)(h->wait_timeout * 1e6)) {
			char why[96];
			snprintf(why, sizeof why, " (waited throttle_wait_timeout, %g s)", h->wait_timeout);
			refuse(cl, h, reason, why);
			continue;
		}
		if (h && h != t) {
			admit_dequeue(cl);   /* now another tenant's limit holds it: its queue */
			cl->adm->waits_on = h;
			admit_enqueue(cl);
			continue;
		}
		if (h)
			return due_at(t, reason, now);
		struct admit_tenant *full = NULL;
		if (!take_txns(cl, &full))
			return now + TXN_POLL_US;
		grant(cl);
		lease_admitted(cl);   /* off the queue: to a server */
	}
	return UINT64_MAX;
}

void admit_run(struct shard *s)
{
	struct admit_shard *as = pool_shard(s)->admit;
	uint64_t next = UINT64_MAX;
	s->upper_wake_us = UINT64_MAX;
	for (struct admit_tenant *t = as ? as->tenants : NULL; t; t = t->next) {
		if (!t->n_waiters)
			continue;
		uint64_t due = run_tenant(t, s->now_us);
		if (due < next)
			next = due;
	}
	if (next < s->upper_wake_us)
		s->upper_wake_us = next;
}

/* ---- the fair pick among a pool's waiters ---- */

static struct admit_tenant *fair_tenant(const struct client *cl)
{
	for (int k = ADMIT_APP; cl->adm && k >= ADMIT_DB; k--)
		if (cl->adm->t[k])
			return cl->adm->t[k];
	return NULL;
}

/* Stride scheduling: each tenant's pass grows by 1/weight when it is served;
 * the waiter whose tenant has the lowest pass goes. A tenant that had none
 * waiting starts at the clock, so idle time earns no credit. */
struct client *admit_pick(struct pool *p)
{
	struct client *first = list_first(&p->waiting, struct client, wait), *best = NULL, *cl;
	struct admit_shard *as = pool_shard(p->shard)->admit;
	if (!first || !as || !p->shard->cfg->admission)
		return first;
	double best_pass = 0;
	int seen = 0;
	struct client *next;
	list_for_each_safe(&p->waiting, cl, next, wait) {
		struct admit_tenant *t = fair_tenant(cl);
		double pass = t ? t->pass : as->none_pass;
		if (pass < as->vtime)
			pass = as->vtime;
		if (!best || pass < best_pass) {
			best = cl;
			best_pass = pass;
		}
		if (++seen == PICK_WINDOW)
			break;
	}
	struct admit_tenant *t = fair_tenant(best);
	as->vtime = best_pass;
	if (t)
		t->pass = best_pass + 1.0 / t->weight;
	else
		as->none_pass = best_pass + 1.0;
	return best;
}
