/* core/control/metrics.c: the /metrics and /stats pages. Which counters exist and what
 * they are called lives in the tables below; both formats walk the same tables so
 * they cannot drift apart. Format facts: Prometheus text exposition 0.0.4. */
#include "core/control/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/control/control.h"
#include "core/control/authq.h"
#include "core/control/fleet.h"
#include "core/control/health.h"
#include "core/stats.h"
#include "core/registry.h"

struct counter_def {
	const char *name;   /* Prometheus: pgring_<scope>_<name>_total; JSON key unless json set */
	const char *json;   /* JSON key when it differs (times are kept in microseconds there) */
	const char *help;
	size_t off;         /* of a stat_t in the stats struct */
	bool usec;          /* exposed to Prometheus in seconds */
};

struct gauge_def {
	const char *state;
	size_t off;         /* of a gauge_t in struct stats_pool */
};

#define POOL_STAT(f) offsetof(struct stats_pool, f)
#define SHARD_STAT(f) offsetof(struct stats_shard, f)

static const struct counter_def pool_counters[] = {
	{ "transactions", NULL, "Transactions completed.", POOL_STAT(xact_count), false },
	{ "queries", NULL, "Statements completed.", POOL_STAT(query_count), false },
	{ "received_bytes", NULL, "Bytes received from clients.", POOL_STAT(bytes_in), false },
	{ "sent_bytes", NULL, "Bytes sent to clients.", POOL_STAT(bytes_out), false },
	{ "transaction_seconds", "transaction_us", "Time spent in transactions.",
	  POOL_STAT(xact_time_us), true },
	{ "query_seconds", "query_us", "Time spent in statements.", POOL_STAT(query_time_us), true },
	{ "wait_seconds", "wait_us", "Time clients waited for a server.", POOL_STAT(wait_time_us), true },
	{ "waits", NULL, "Times a client had to wait for a server.", POOL_STAT(wait_count), false },
	{ "server_connects", NULL, "Server connections opened.", POOL_STAT(server_connects), false },
	{ "server_connect_errors", NULL, "Server connections that failed to open.",
	  POOL_STAT(server_connect_errors), false },
	{ "server_moves", NULL, "Idle server connections handed to another shard whose clients wait for this pool.",
	  POOL_STAT(server_moves), false },
	{ "client_logins", NULL, "Client logins that succeeded.", POOL_STAT(client_logins), false },
	{ "client_login_errors", NULL, "Client logins that failed.", POOL_STAT(client_login_errors), false },
	{ "prepares_injected", NULL, "Prepared statements pgring prepared on a server for a client (transaction pooling).",
	  POOL_STAT(prepares_injected), false },
	{ "prepares_shared", NULL, "Client Parse messages answered from a server that already had the statement.",
	  POOL_STAT(prepares_shared), false },
	{ "state_replays", NULL, "Session-state replays (SET, PREPARE) when a client got a server.",
	  POOL_STAT(state_replays), false },
	{ "replication_connects", NULL, "Replication connections opened (a server each, outside the pool).",
	  POOL_STAT(replication_connects), false },
	{ "notifications", NULL, "Notifications the pool's listening connection delivered to clients.",
	  POOL_STAT(notifications), false },
	{ "listener_losses", NULL, "Times the pool's listening connection was lost (clients were warned).",
	  POOL_STAT(listener_losses), false },
};

static const struct gauge_def client_states[] = {
	{ "active", POOL_STAT(cl_active) },
	{ "waiting", POOL_STAT(cl_waiting) },
	{ "idle", POOL_STAT(cl_idle) },
	{ "login", POOL_STAT(cl_login) },
	{ "replication", POOL_STAT(cl_replication) },
};

static const struct gauge_def server_states[] = {
	{ "active", POOL_STAT(sv_active) },
	{ "idle", POOL_STAT(sv_idle) },
	{ "login", POOL_STAT(sv_login) },
	{ "resetting", POOL_STAT(sv_resetting) },
	{ "replication", POOL_STAT(sv_replication) },
	{ "listener", POOL_STAT(sv_listener) },
};

static const struct counter_def shard_counters[] = {
	{ "loops", NULL, "Event loop iterations.", SHARD_STAT(loops), false },
	{ "cqes", NULL, "io_uring completions handled.", SHARD_STAT(cqes), false },
	{ "submits", NULL, "io_uring submit calls.", SHARD_STAT(submits), false },
	{ "accepts", NULL, "Connections accepted.", SHARD_STAT(accepts), false },
	{ "accept_errors", NULL, "Accepts that failed.", SHARD_STAT(accept_errors), false },
	{ "fd_refused", NULL, "Clients refused with 53300 because descriptors ran short.", SHARD_STAT(fd_refused), false },
	{ "recvs", NULL, "Receives that returned data.", SHARD_STAT(recvs), false },
	{ "sends", NULL, "sendmsg calls.", SHARD_STAT(sends), false },
	{ "send_iovecs", NULL, "iovecs sent.", SHARD_STAT(send_iovecs), false },
	{ "enobufs", NULL, "Receives stopped for lack of provided buffers.", SHARD_STAT(enobufs), false },
	{ "paused", NULL, "Sockets paused for back-pressure.", SHARD_STAT(paused), false },
	{ "protocol_errors", NULL, "Protocol violations seen.", SHARD_STAT(protocol_errors), false },
	{ "cancels_received", NULL, "Cancel requests received.", SHARD_STAT(cancels_received), false },
	{ "cancels_forwarded", NULL, "Cancel requests forwarded to a server.",
	  SHARD_STAT(cancels_forwarded), false },
	{ "cancels_to_peers", NULL, "Cancel requests forwarded to another node ([peers]).",
	  SHARD_STAT(cancels_to_peers), false },
	{ "cancels_peer_dropped", NULL,
	  "Cancel requests for another node dropped: not in [peers], forwarded three times, busy, or unreachable.",
	  SHARD_STAT(cancels_peer_dropped), false },
	{ "clients_handed_over", NULL, "Clients handed over to a successor (pgring -R).",
	  SHARD_STAT(handed_over), false },
	{ "clients_taken_over", NULL, "Clients taken over from a predecessor (pgring -R).",
	  SHARD_STAT(taken_over), false },
	{ "clients_passed", NULL, "Connections accepted here and passed at once to a shard taking clients.",
	  SHARD_STAT(clients_passed), false },
	{ "clients_moved_out", NULL, "Logged-in clients moved to another shard at rest (the shards follow the load).",
	  SHARD_STAT(clients_moved_out), false },
	{ "clients_moved_in", NULL, "Logged-in clients moved in from another shard.", SHARD_STAT(clients_moved_in),
	  false },
	{ "servers_handed_over", NULL,
	  "Server connections handed over to a successor (pgring -R): idle ones, and those of moving sessions.",
	  SHARD_STAT(servers_handed_over), false },
	{ "servers_taken_over", NULL,
	  "Server connections taken over from a predecessor (pgring -R): idle ones, and those of moving sessions.",
	  SHARD_STAT(servers_taken_over), false },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t stat_at(const void *block, size_t off)
{
	return stat_get((const stat_t *)((const char *)block + off));
}

static int64_t gauge_at(const void *block, size_t off)
{
	return gauge_get((const gauge_t *)((const char *)block + off));
}

static uint64_t pool_counter_sum(const struct pool_shared *ps, size_t off)
{
	uint64_t sum = 0;
	for (int s = 0; s < registry_nshards(); s++)
		sum += stat_at(&ps->shard[s], off);
	return sum;
}

static int64_t pool_gauge_sum(const struct pool_shared *ps, size_t off)
{
	int64_t sum = 0;
	for (int s = 0; s < registry_nshards(); s++)
		sum += gauge_at(&ps->shard[s], off);
	return sum;
}

static int64_t pool_max_wait_us(const struct pool_shared *ps)
{
	int64_t max = 0;
	for (int s = 0; s < registry_nshards(); s++) {
		int64_t v = gauge_get(&ps->shard[s].max_wait_us);
		if (v > max)
			max = v;
	}
	return max;
}

static const char *mode_name(int mode)
{
	switch (mode) {
	case POOL_TRANSACTION: return "transaction";
	case POOL_STATEMENT: return "statement";
	default: return "session";
	}
}

/* Length of the valid UTF-8 sequence at p, or 0 if it is not one (RFC 3629:
 * no overlongs, no surrogates, nothing above U+10FFFF). */
static int utf8_len(const unsigned char *p)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xBF;
	int n;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (int i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

/* Copy s, escaping what the format needs (esc returns the replacement for a
 * single ASCII byte, or NULL to copy it) and replacing invalid UTF-8. */
static void put_escaped(struct strbuf *out, const char *s, const char *(*esc)(unsigned char, char[8]))
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		char tmp[8];
		const char *rep = *p < 0x80 ? esc(*p, tmp) : NULL;
		int n = utf8_len(p);
		if (rep) {
			strbuf_puts(out, rep);
			n = 1;
		} else if (n == 0) {
			strbuf_puts(out, "\xEF\xBF\xBD");
			n = 1;
		} else {
			strbuf_append(out, p, (size_t)n);
		}
		p += n;
	}
}

static const char *label_esc(unsigned char c, char tmp[8])
{
	(void)tmp;
	switch (c) {
	case '\\': return "\\\\";
	case '"': return "\\\"";
	case '\n': return "\\n";
	default: return NULL;
	}
}

static const char *json_esc(unsigned char c, char tmp[8])
{
	switch (c) {
	case '\\': return "\\\\";
	case '"': return "\\\"";
	case '\n': return "\\n";
	case '\r': return "\\r";
	case '\t': return "\\t";
	default:
		if (c >= 0x20)
			return NULL;
		snprintf(tmp, 8, "\\u%04x", c);
		return tmp;
	}
}

void metrics_label_value(struct strbuf *out, const char *s)
{
	put_escaped(out, s, label_esc);
}

void metrics_json_string(struct strbuf *out, const char *s)
{
	strbuf_putc(out, '"');
	put_escaped(out, s, json_esc);
	strbuf_putc(out, '"');
}

/* ---- Prometheus ---- */

static void family(struct strbuf *o, const char *name, const char *type, const char *help)
{
	strbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void pool_labels(struct strbuf *o, const struct pool_shared *ps)
{
	strbuf_puts(o, "database=\"");
	metrics_label_value(o, ps->db);
	strbuf_puts(o, "\",user=\"");
	metrics_label_value(o, ps->user);
	strbuf_putc(o, '"');
	if (ps->node[0]) {
		strbuf_puts(o, ",node=\"");
		metrics_label_value(o, ps->node);
		strbuf_putc(o, '"');
	}
}

/* Exact decimal seconds: a double would print 0.1 s as 0.10000000000000001. */
static void put_seconds(struct strbuf *o, uint64_t us)
{
	uint64_t frac = us % 1000000;
	if (!frac) {
		strbuf_printf(o, "%" PRIu64, us / 1000000);
		return;
	}
	int digits = 6;
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	strbuf_printf(o, "%" PRIu64 ".%0*" PRIu64, us / 1000000, digits, frac);
}

static void prom_pool_states(struct strbuf *o, int npools, const char *what,
			     const struct gauge_def *states, size_t nstates)
{
	char name[64];
	snprintf(name, sizeof name, "pgring_pool_%s", what);
	strbuf_printf(o, "# HELP %s %s connections of the pool by state, all shards.\n"
		      "# TYPE %s gauge\n", name, what[0] == 'c' ? "Client" : "Server", name);
	for (int i = 0; i < npools; i++) {
		const struct pool_shared *ps = registry_at(i);
		for (size_t k = 0; k < nstates; k++) {
			strbuf_printf(o, "%s{", name);
			pool_labels(o, ps);
			strbuf_printf(o, ",state=\"%s\"} %" PRId64 "\n", states[k].state,
				      pool_gauge_sum(ps, states[k].off));
		}
	}
}

static bool shard_block_idle(const struct stats_pool *b)
{
	for (size_t k = 0; k < NELEM(client_states); k++)
		if (gauge_at(b, client_states[k].off))
			return false;
	for (size_t k = 0; k < NELEM(server_states); k++)
		if (gauge_at(b, server_states[k].off))
			return false;
	return true;
}

/* Only (pool, shard) pairs with a connection are listed: pools x shards x states
 * series would otherwise swamp the scrape on a many-core box. The pool-wide
 * families above carry every pool, zeros included. */
static void prom_shard_pool_states(struct strbuf *o, int npools, const char *what,
				   const struct gauge_def *states, size_t nstates)
{
	char name[64];
	snprintf(name, sizeof name, "pgring_shard_pool_%s", what);
	strbuf_printf(o, "# HELP %s %s connections of the pool by shard and state "
		      "(pairs with none are left out).\n# TYPE %s gauge\n",
		      name, what[0] == 'c' ? "Client" : "Server", name);
	for (int i = 0; i < npools; i++) {
		const struct pool_shared *ps = registry_at(i);
		for (int s = 0; s < registry_nshards(); s++) {
			if (shard_block_idle(&ps->shard[s]))
				continue;
			for (size_t k = 0; k < nstates; k++) {
				strbuf_printf(o, "%s{shard=\"%d\",", name, s);
				pool_labels(o, ps);
				strbuf_printf(o, ",state=\"%s\"} %" PRId64 "\n", states[k].state,
					      gauge_at(&ps->shard[s], states[k].off));
			}
		}
	}
}

static void prom_pool_counter(struct strbuf *o, int npools, const struct counter_def *c)
{
	char name[96];
	snprintf(name, sizeof name, "pgring_pool_%s_total", c->name);
	family(o, name, "counter", c->help);
	for (int i = 0; i < npools; i++) {
		const struct pool_shared *ps = registry_at(i);
		uint64_t v = pool_counter_sum(ps, c->off);
		strbuf_printf(o, "%s{", name);
		pool_labels(o, ps);
		strbuf_puts(o, "} ");
		if (c->usec)
			put_seconds(o, v);
		else
			strbuf_printf(o, "%" PRIu64, v);
		strbuf_putc(o, '\n');
	}
}

/* The pool latency histograms: buckets, and the pool's own time and count
 * counters as _sum and _count (so they agree with the *_seconds_total ones). */
static const struct hist_def {
	const char *name, *help;
	size_t hist, sum, count;
} pool_hists[] = {
	{ "query_duration_seconds", "Statement time: from a request to its ReadyForQuery.",
	  POOL_STAT(query_hist), POOL_STAT(query_time_us), POOL_STAT(query_count) },
	{ "transaction_duration_seconds", "Transaction time, as the pool's transaction_seconds.",
	  POOL_STAT(xact_hist), POOL_STAT(xact_time_us), POOL_STAT(xact_count) },
	{ "wait_duration_seconds", "Time a client waited for a server.",
	  POOL_STAT(wait_hist), POOL_STAT(wait_time_us), POOL_STAT(wait_count) },
};

/* Bucket b of the histogram at hist_off, summed over shards (not cumulative). */
static uint64_t hist_bucket(const struct pool_shared *ps, size_t hist_off, int b)
{
	return pool_counter_sum(ps, hist_off + offsetof(struct stats_hist, bucket) + (size_t)b * sizeof(stat_t));
}

/* One histogram series: cumulative buckets (from per-bucket counts), _sum and
 * _count, with labels already formatted (k="v",...). */
static void hist_series(struct strbuf *o, const char *name, const char *labels, const uint64_t *bucket,
			uint64_t sum_us, uint64_t count)
{
	uint64_t cum = 0;
	for (int b = 0; b < STATS_HIST_BUCKETS; b++) {
		cum += bucket[b];
		strbuf_printf(o, "%s_bucket{%s,le=\"", name, labels);
		if (b < STATS_HIST_BOUNDS)
			put_seconds(o, stats_hist_le_us[b]);
		else
			strbuf_puts(o, "+Inf");
		strbuf_printf(o, "\"} %" PRIu64 "\n", cum);
	}
	strbuf_printf(o, "%s_sum{%s} ", name, labels);
	put_seconds(o, sum_us);
	strbuf_printf(o, "\n%s_count{%s} %" PRIu64 "\n", name, labels, count);
}

static void prom_pool_hist(struct strbuf *o, int npools, const struct hist_def *h)
{
	char name[96];
	snprintf(name, sizeof name, "pgring_pool_%s", h->name);
	family(o, name, "histogram", h->help);
	for (int i = 0; i < npools; i++) {
		const struct pool_shared *ps = registry_at(i);
		uint64_t bucket[STATS_HIST_BUCKETS];
		for (int b = 0; b < STATS_HIST_BUCKETS; b++)
			bucket[b] = hist_bucket(ps, h->hist, b);
		struct strbuf labels = STRBUF_INIT;
		pool_labels(&labels, ps);
		hist_series(o, name, labels.buf ? labels.buf : "", bucket, pool_counter_sum(ps, h->sum),
			    pool_counter_sum(ps, h->count));
		strbuf_free(&labels);
	}
}

/* The q-quantile (0 < q <= 1) of a histogram as the upper bound of the bucket
 * it falls in, in microseconds; -1 when empty, 0 past the last bound (+Inf). */
static int64_t hist_quantile_us(const struct pool_shared *ps, size_t hist_off, double q)
{
	uint64_t total = 0;
	for (int b = 0; b < STATS_HIST_BUCKETS; b++)
		total += hist_bucket(ps, hist_off, b);
	if (!total)
		return -1;
	uint64_t want = (uint64_t)(q * (double)total + 0.999999), cum = 0;
	for (int b = 0; b < STATS_HIST_BOUNDS; b++)
		if ((cum += hist_bucket(ps, hist_off, b)) >= want)
			return stats_hist_le_us[b];
	return 0;
}

static void json_pool_latency(struct strbuf *o, const struct pool_shared *ps)
{
	static const double qs[] = { 0.5, 0.95, 0.99 };
	static const char *const qn[] = { "p50_us", "p95_us", "p99_us" };
	strbuf_puts(o, ",\"latency\":{");
	for (size_t k = 0; k < NELEM(pool_hists); k++) {
		strbuf_printf(o, "%s\"%.*s\":{\"count\":%" PRIu64, k ? "," : "",
			      (int)strcspn(pool_hists[k].name, "_"), pool_hists[k].name,
			      pool_counter_sum(ps, pool_hists[k].count));
		for (size_t j = 0; j < NELEM(qs); j++) {
			int64_t v = hist_quantile_us(ps, pool_hists[k].hist, qs[j]);
			if (v < 0)
				strbuf_printf(o, ",\"%s\":null", qn[j]);
			else if (v == 0)
				strbuf_printf(o, ",\"%s\":\"+Inf\"", qn[j]);
			else
				strbuf_printf(o, ",\"%s\":%" PRId64, qn[j], v);
		}
		strbuf_putc(o, '}');
	}
	strbuf_putc(o, '}');
}

enum pool_gauge { PG_MAX_WAIT, PG_SIZE, PG_USED, PG_PINNED, PG_LISTENERS, PG_CHANNELS };

static void prom_pool_gauge(struct strbuf *o, int npools, const char *name, const char *help,
			    enum pool_gauge which)
{
	family(o, name, "gauge", help);
	for (int i = 0; i < npools; i++) {
		struct pool_shared *ps = registry_at(i);
		strbuf_printf(o, "%s{", name);
		pool_labels(o, ps);
		strbuf_puts(o, "} ");
		if (which == PG_MAX_WAIT)
			put_seconds(o, (uint64_t)pool_max_wait_us(ps));
		else if (which == PG_PINNED)
			strbuf_printf(o, "%" PRId64, pool_gauge_sum(ps, POOL_STAT(cl_pinned)));
		else if (which == PG_LISTENERS)
			strbuf_printf(o, "%" PRId64, pool_gauge_sum(ps, POOL_STAT(listeners)));
		else if (which == PG_CHANNELS)
			strbuf_printf(o, "%" PRId64, pool_gauge_sum(ps, POOL_STAT(listen_channels)));
		else
			strbuf_printf(o, "%d", atomic_load_explicit(which == PG_SIZE ? &ps->size : &ps->used,
								    memory_order_relaxed));
		strbuf_putc(o, '\n');
	}
}

static void prom_pools(struct strbuf *o)
{
	int n = registry_count(); /* once, so every family lists the same pools */
	prom_pool_states(o, n, "clients", client_states, NELEM(client_states));
	prom_pool_states(o, n, "servers", server_states, NELEM(server_states));
	for (size_t k = 0; k < NELEM(pool_counters); k++)
		prom_pool_counter(o, n, &pool_counters[k]);
	for (size_t k = 0; k < NELEM(pool_hists); k++)
		prom_pool_hist(o, n, &pool_hists[k]);
	prom_pool_gauge(o, n, "pgring_pool_max_wait_seconds",
			"Age of the oldest waiting client, worst shard.", PG_MAX_WAIT);
	prom_pool_gauge(o, n, "pgring_pool_size",
			"Server connections allowed, all shards together.", PG_SIZE);
	prom_pool_gauge(o, n, "pgring_pool_server_connections",
			"Server connections open or opening, all shards.", PG_USED);
	prom_pool_gauge(o, n, "pgring_pool_clients_pinned",
			"Clients kept on their server by LISTEN, advisory locks, temporary tables or held cursors.",
			PG_PINNED);
	prom_pool_gauge(o, n, "pgring_pool_listeners",
			"Clients listening through the pool's listening connection (not pinned).", PG_LISTENERS);
	prom_pool_gauge(o, n, "pgring_pool_listen_channels",
			"Channels the pool's listening connections listen on, summed over shards.", PG_CHANNELS);
	prom_shard_pool_states(o, n, "clients", client_states, NELEM(client_states));
	prom_shard_pool_states(o, n, "servers", server_states, NELEM(server_states));
}

enum shard_gauge { SG_CLIENTS, SG_SERVERS, SG_BUFFERS, SG_TOPOLOGY, SG_CPU, SG_BUSY, SG_ACTIVE };

static int64_t shard_gauge(const struct stats_shard *sh, enum shard_gauge which)
{
	switch (which) {
	case SG_CLIENTS: return gauge_get(&sh->clients);
	case SG_SERVERS: return gauge_get(&sh->servers);
	case SG_BUFFERS: return gauge_get(&sh->buffers_in_use);
	case SG_TOPOLOGY:
		return (int64_t)atomic_load_explicit(&sh->topology_version, memory_order_relaxed);
	case SG_CPU: return atomic_load_explicit(&sh->cpu, memory_order_relaxed);
	case SG_BUSY: return gauge_get(&sh->busy_permille);
	case SG_ACTIVE: return gauge_get(&sh->active);
	}
	return 0;
}

static const struct {
	const char *name, *help;
	enum shard_gauge which;
} shard_gauges[] = {
	{ "clients", "Client sockets open.", SG_CLIENTS },
	{ "servers", "Server sockets open.", SG_SERVERS },
	{ "buffers_in_use", "Provided receive buffers held.", SG_BUFFERS },
	{ "topology_version", "Topology snapshot the shard runs.", SG_TOPOLOGY },
	{ "cpu", "CPU the shard is pinned to, -1 if none.", SG_CPU },
	{ "busy_permille", "The shard thread's CPU time over the last second, permille of a CPU.",
	  SG_BUSY },
	{ "active", "1 if the shard takes clients now (shards_follow_load), else 0.", SG_ACTIVE },
};

static void prom_shards(struct strbuf *o)
{
	int n = stats_nshards();
	char name[96];
	for (size_t k = 0; k < NELEM(shard_counters); k++) {
		snprintf(name, sizeof name, "pgring_shard_%s_total", shard_counters[k].name);
		family(o, name, "counter", shard_counters[k].help);
		for (int s = 0; s < n; s++)
			strbuf_printf(o, "%s{shard=\"%d\"} %" PRIu64 "\n", name, s,
				      stat_at(stats_shard(s), shard_counters[k].off));
	}
	for (size_t k = 0; k < NELEM(shard_gauges); k++) {
		snprintf(name, sizeof name, "pgring_shard_%s", shard_gauges[k].name);
		family(o, name, "gauge", shard_gauges[k].help);
		for (int s = 0; s < n; s++)
			strbuf_printf(o, "%s{shard=\"%d\"} %" PRId64 "\n", name, s,
				      shard_gauge(stats_shard(s), shard_gauges[k].which));
	}
}

static double uptime(void)
{
	double t = control_uptime();
	return isfinite(t) && t > 0 ? t : 0;
}

static const char *version(void)
{
	const char *v = control_version();
	return v ? v : "";
}

static void prom_process(struct strbuf *o)
{
	family(o, "pgring_up", "gauge", "Always 1 while pgring answers.");
	strbuf_puts(o, "pgring_up 1\n");
	family(o, "pgring_info", "gauge", "Build facts, value always 1.");
	strbuf_puts(o, "pgring_info{version=\"");
	metrics_label_value(o, version());
	strbuf_puts(o, "\"} 1\n");
	family(o, "pgring_uptime_seconds", "gauge", "Seconds since pgring started.");
	strbuf_printf(o, "pgring_uptime_seconds %.3f\n", uptime());
	family(o, "pgring_topology_version", "gauge", "Latest topology snapshot published.");
	strbuf_printf(o, "pgring_topology_version %" PRIu64 "\n", control_topology_version());
	family(o, "pgring_shards", "gauge", "Shard threads.");
	strbuf_printf(o, "pgring_shards %d\n", stats_nshards());
}

/* ---- cluster nodes (core/control/health.c) ---- */

enum node_value { NV_UP, NV_PRIMARY, NV_LAGGING, NV_LAG, NV_CHECK, NV_ACTIVE, NV_ROUTED, NV_LEASED, NV_CHECKS,
		  NV_FAILURES };

static const struct {
	const char *name, *type, *help;
	enum node_value which;
} node_values[] = {
	{ "pgring_node_up", "gauge", "1 when the node answers its health checks (lagging counts as up).", NV_UP },
	{ "pgring_node_primary", "gauge", "1 for the node serving writes.", NV_PRIMARY },
	{ "pgring_node_lagging", "gauge", "1 for a replica further behind than its max_lag.", NV_LAGGING },
	{ "pgring_node_lag_bytes", "gauge", "Bytes of WAL a replica is behind the primary (-1: unknown).", NV_LAG },
	{ "pgring_node_check_seconds", "gauge", "Latency of the last answered health check.", NV_CHECK },
	{ "pgring_node_active_backends", "gauge", "Active backends on the node at the last check (-1: unknown).",
	  NV_ACTIVE },
	{ "pgring_node_transactions_total", "counter", "Transactions routed to the node.", NV_ROUTED },
	{ "pgring_node_servers_active", "gauge", "Server connections to the node leased to clients now.", NV_LEASED },
	{ "pgring_node_checks_total", "counter", "Health checks answered.", NV_CHECKS },
	{ "pgring_node_check_failures_total", "counter", "Health checks that failed.", NV_FAILURES },
};

static void node_value(struct strbuf *o, const struct health_node *n, enum node_value which)
{
	switch (which) {
	case NV_UP: strbuf_printf(o, "%d", n->state != NODE_DOWN); break;
	case NV_PRIMARY: strbuf_printf(o, "%d", n->role == NODE_PRIMARY && n->state != NODE_DOWN); break;
	case NV_LAGGING: strbuf_printf(o, "%d", n->state == NODE_LAGGING); break;
	case NV_LAG: strbuf_printf(o, "%" PRId64, n->lag); break;
	case NV_CHECK: strbuf_printf(o, "%.6f", n->check_seconds); break;
	case NV_ACTIVE: strbuf_printf(o, "%" PRId64, n->active); break;
	case NV_ROUTED: strbuf_printf(o, "%" PRIu64, n->shared ? registry_node_routed(n->shared) : 0); break;
	case NV_LEASED: strbuf_printf(o, "%" PRId64, n->shared ? registry_node_active(n->shared) : 0); break;
	case NV_CHECKS: strbuf_printf(o, "%" PRIu64, n->checks); break;
	case NV_FAILURES: strbuf_printf(o, "%" PRIu64, n->failures); break;
	}
}

static void node_labels(struct strbuf *o, const struct health_node *n)
{
	strbuf_puts(o, "{cluster=\"");
	metrics_label_value(o, n->cluster);
	strbuf_puts(o, "\",node=\"");
	metrics_label_value(o, n->name);
	strbuf_puts(o, "\"}");
}

/* Per node: the statement time of every pool that serves it (the pools of
 * cluster databases are one per node), bucket by bucket. What a client waits
 * for a server of that node to answer, measured at pgring. */
static bool pool_of_node(const struct pool_shared *ps, const struct health_node *h)
{
	size_t lc = strlen(h->cluster);
	return ps->node[0] && !strncmp(ps->node, h->cluster, lc) && ps->node[lc] == '/' &&
	       !strcmp(ps->node + lc + 1, h->name);
}

static void prom_node_hist(struct strbuf *o, int nnodes)
{
	static const char name[] = "pgring_node_query_duration_seconds";
	const struct hist_def *h = &pool_hists[0];
	int npools = registry_count();
	family(o, name, "histogram", "Statement time on the node (its pools' statement times added up).");
	for (int i = 0; i < nnodes; i++) {
		const struct health_node *hn = health_node_at(i);
		uint64_t bucket[STATS_HIST_BUCKETS] = { 0 }, sum = 0, count = 0;
		for (int p = 0; p < npools; p++) {
			const struct pool_shared *ps = registry_at(p);
			if (!pool_of_node(ps, hn))
				continue;
			for (int b = 0; b < STATS_HIST_BUCKETS; b++)
				bucket[b] += hist_bucket(ps, h->hist, b);
			sum += pool_counter_sum(ps, h->sum);
			count += pool_counter_sum(ps, h->count);
		}
		struct strbuf labels = STRBUF_INIT;
		strbuf_puts(&labels, "cluster=\"");
		metrics_label_value(&labels, hn->cluster);
		strbuf_puts(&labels, "\",node=\"");
		metrics_label_value(&labels, hn->name);
		strbuf_putc(&labels, '"');
		hist_series(o, name, labels.buf ? labels.buf : "", bucket, sum, count);
		strbuf_free(&labels);
	}
}

static void prom_nodes(struct strbuf *o)
{
	int n = health_count();
	if (!n)
		return;
	family(o, "pgring_node_info", "gauge", "A cluster node, its address, role and state; value always 1.");
	for (int i = 0; i < n; i++) {
		const struct health_node *h = health_node_at(i);
		strbuf_puts(o, "pgring_node_info{cluster=\"");
		metrics_label_value(o, h->cluster);
		strbuf_puts(o, "\",node=\"");
		metrics_label_value(o, h->name);
		strbuf_puts(o, "\",host=\"");
		metrics_label_value(o, h->host ? h->host : "");
		strbuf_printf(o, "\",port=\"%d\",role=\"%s\",state=\"%s\"} 1\n", h->port, topo_role_name(h->role),
			      topo_state_name(h->state));
	}
	for (size_t k = 0; k < NELEM(node_values); k++) {
		family(o, node_values[k].name, node_values[k].type, node_values[k].help);
		for (int i = 0; i < n; i++) {
			strbuf_puts(o, node_values[k].name);
			node_labels(o, health_node_at(i));
			strbuf_putc(o, ' ');
			node_value(o, health_node_at(i), node_values[k].which);
			strbuf_putc(o, '\n');
		}
	}
	prom_node_hist(o, n);
}

/* ---- TLS: summed over shards, by side ---- */

static const char *const tls_sides[2] = { "client", "server" };

static uint64_t tls_sum(size_t off)
{
	uint64_t v = 0;
	for (int s = 0; s < stats_nshards(); s++)
		v += stat_at(stats_shard(s), off);
	return v;
}

/* The (version, cipher) pairs open on side sd, summed over shards: at most
 * STATS_TLS_KINDS per shard, so a small table does. */
struct tls_pair {
	const char *version, *cipher;
	int64_t open;
};

static int tls_pairs(int sd, struct tls_pair *out, int cap)
{
	int n = 0;
	for (int s = 0; s < stats_nshards(); s++) {
		const struct stats_shard *sh = stats_shard(s);
		int k = atomic_load_explicit(&sh->ntls_kinds[sd], memory_order_acquire);
		for (int i = 0; i < k; i++) {
			const struct stats_tls_kind *e = &sh->tls_kinds[sd][i];
			int j;
			for (j = 0; j < n; j++)
				if (!strcmp(out[j].version, e->version) && !strcmp(out[j].cipher, e->cipher))
					break;
			if (j == n) {
				if (n == cap)
					continue;
				out[n++] = (struct tls_pair){ e->version, e->cipher, 0 };
			}
			out[j].open += gauge_get(&e->open);
		}
	}
	return n;
}

#define TLS_OFF(f, sd) (offsetof(struct stats_shard, f) + (size_t)(sd) * sizeof(stat_t))

static void prom_tls(struct strbuf *o)
{
	const struct { const char *name, *help; size_t off; bool usec; } c[] = {
		{ "pgring_tls_handshakes_total", "TLS handshakes completed.", offsetof(struct stats_shard, tls_handshakes), false },
		{ "pgring_tls_resumed_total", "TLS handshakes that resumed a session.", offsetof(struct stats_shard, tls_resumed), false },
		{ "pgring_tls_handshake_seconds_total", "CPU time spent in TLS handshakes.",
		  offsetof(struct stats_shard, tls_handshake_us), true },
	};
	for (size_t k = 0; k < NELEM(c); k++) {
		family(o, c[k].name, "counter", c[k].help);
		for (int sd = 0; sd < 2; sd++) {
			uint64_t v = tls_sum(c[k].off + (size_t)sd * sizeof(stat_t));
			strbuf_printf(o, "%s{side=\"%s\"} ", c[k].name, tls_sides[sd]);
			if (c[k].usec) {
				put_seconds(o, v);
				strbuf_putc(o, '\n');
			} else {
				strbuf_printf(o, "%" PRIu64 "\n", v);
			}
		}
	}
	family(o, "pgring_tls_handshake_failures_total", "counter", "TLS handshakes that failed, by reason.");
	for (int sd = 0; sd < 2; sd++)
		for (int r = 0; r < TLS_FAIL_KINDS; r++)
			strbuf_printf(o, "pgring_tls_handshake_failures_total{side=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
				      tls_sides[sd], tls_failure_names[r],
				      tls_sum(offsetof(struct stats_shard, tls_failures) +
					      ((size_t)sd * TLS_FAIL_KINDS + (size_t)r) * sizeof(stat_t)));
	family(o, "pgring_tls_connections", "gauge", "Open TLS connections by protocol version and cipher.");
	for (int sd = 0; sd < 2; sd++) {
		struct tls_pair pairs[64];
		int n = tls_pairs(sd, pairs, 64);
		for (int i = 0; i < n; i++) {
			strbuf_printf(o, "pgring_tls_connections{side=\"%s\",version=\"", tls_sides[sd]);
			metrics_label_value(o, pairs[i].version);
			strbuf_puts(o, "\",cipher=\"");
			metrics_label_value(o, pairs[i].cipher);
			strbuf_printf(o, "\"} %" PRId64 "\n", pairs[i].open);
		}
	}
}

static void json_tls(struct strbuf *o)
{
	strbuf_puts(o, ",\"tls\":{");
	for (int sd = 0; sd < 2; sd++) {
		strbuf_printf(o, "%s\"%s\":{\"handshakes\":%" PRIu64 ",\"resumed\":%" PRIu64 ",\"handshake_us\":%" PRIu64
			      ",\"failures\":{", sd ? "," : "", tls_sides[sd],
			      tls_sum(TLS_OFF(tls_handshakes, sd)), tls_sum(TLS_OFF(tls_resumed, sd)),
			      tls_sum(TLS_OFF(tls_handshake_us, sd)));
		for (int r = 0; r < TLS_FAIL_KINDS; r++)
			strbuf_printf(o, "%s\"%s\":%" PRIu64, r ? "," : "", tls_failure_names[r],
				      tls_sum(offsetof(struct stats_shard, tls_failures) +
					      ((size_t)sd * TLS_FAIL_KINDS + (size_t)r) * sizeof(stat_t)));
		strbuf_puts(o, "},\"connections\":[");
		struct tls_pair pairs[64];
		int n = tls_pairs(sd, pairs, 64);
		for (int i = 0; i < n; i++) {
			strbuf_puts(o, i ? ",{\"version\":" : "{\"version\":");
			metrics_json_string(o, pairs[i].version);
			strbuf_puts(o, ",\"cipher\":");
			metrics_json_string(o, pairs[i].cipher);
			strbuf_printf(o, ",\"open\":%" PRId64 "}", pairs[i].open);
		}
		strbuf_puts(o, "]}");
	}
	strbuf_putc(o, '}');
}

/* ---- auth_query (core/control/authq.c) ---- */

static void prom_authq(struct strbuf *o)
{
	struct authq_stats st;
	authq_get_stats(&st);
	static const struct {
		const char *name, *help;
		size_t off;
	} counters[] = {
		{ "pgring_auth_query_requests_total", "Secrets the shards asked the auth_query lookups for.",
		  offsetof(struct authq_stats, requests) },
		{ "pgring_auth_query_cache_hits_total", "Of them, answered from the control shard's cache (auth_cache_ttl).",
		  offsetof(struct authq_stats, cache_hits) },
		{ "pgring_auth_query_shard_hits_total",
		  "Logins answered by their shard's copy of an answer, without asking (auth_cache_ttl).",
		  offsetof(struct authq_stats, shard_hits) },
		{ "pgring_auth_query_coalesced_total", "Of them, answered by a lookup of the same role already running.",
		  offsetof(struct authq_stats, coalesced) },
		{ "pgring_auth_query_queries_total", "auth_query executions sent to a server.",
		  offsetof(struct authq_stats, queries) },
		{ "pgring_auth_query_failures_total", "Answers that are failures (server unreachable, query error, ...).",
		  offsetof(struct authq_stats, failures) },
	};
	for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
		family(o, counters[i].name, "counter", counters[i].help);
		strbuf_printf(o, "%s %" PRIu64 "\n", counters[i].name,
			      *(const uint64_t *)((const char *)&st + counters[i].off));
	}
	family(o, "pgring_auth_query_pending", "gauge", "auth_query lookups running or queued.");
	strbuf_printf(o, "pgring_auth_query_pending %" PRId64 "\n", st.pending);
	family(o, "pgring_auth_query_cached", "gauge", "Roles in the auth_query cache.");
	strbuf_printf(o, "pgring_auth_query_cached %" PRId64 "\n", st.cached);
}

/* ---- admission control's tenants (pool/admit.h), summed over shards ---- */

static const char *const tenant_kinds[] = { "database", "user", "application" };
static const char *const admit_reasons[ADMIT_REASONS] = {
	"max_transactions", "max_queries_per_second", "max_rows_per_second",
};

static uint64_t tenant_sum(const struct tenant_shared *t, size_t off)
{
	uint64_t sum = 0;
	for (int s = 0; s < registry_nshards(); s++)
		sum += stat_at(&t->shard[s], off);
	return sum;
}

static void tenant_labels(struct strbuf *o, const struct tenant_shared *t)
{
	strbuf_printf(o, "tenant_kind=\"%s\",tenant=\"", tenant_kinds[t->kind]);
	metrics_label_value(o, t->name);
	strbuf_putc(o, '"');
}

/* A counter of every tenant, by reason (reasons) or not. */
static void prom_tenant_counter(struct strbuf *o, int n, const char *name, const char *help, size_t off,
				bool reasons)
{
	if (!n)
		return;
	family(o, name, "counter", help);
	for (int i = 0; i < n; i++) {
		const struct tenant_shared *t = registry_tenant_at(i);
		for (int r = 0; r < (reasons ? ADMIT_REASONS : 1); r++) {
			strbuf_printf(o, "%s{", name);
			tenant_labels(o, t);
			if (reasons)
				strbuf_printf(o, ",reason=\"%s\"", admit_reasons[r]);
			strbuf_puts(o, "} ");
			uint64_t v = tenant_sum(t, off + (size_t)r * sizeof(stat_t));
			if (strstr(name, "seconds"))
				put_seconds(o, v);
			else
				strbuf_printf(o, "%" PRIu64, v);
			strbuf_putc(o, '\n');
		}
	}
}

static void prom_tenant_gauges(struct strbuf *o, int n)
{
	if (!n)
		return;
	family(o, "pgring_admission_waiting", "gauge", "Requests held back by admission control now, all shards.");
	for (int i = 0; i < n; i++) {
		const struct tenant_shared *t = registry_tenant_at(i);
		strbuf_puts(o, "pgring_admission_waiting{");
		tenant_labels(o, t);
		strbuf_printf(o, "} %" PRIu64 "\n", tenant_sum(t, offsetof(struct stats_tenant, waiting)));
	}
	family(o, "pgring_admission_transactions", "gauge", "Transactions in progress counted against max_transactions.");
	for (int i = 0; i < n; i++) {
		const struct tenant_shared *t = registry_tenant_at(i);
		strbuf_puts(o, "pgring_admission_transactions{");
		tenant_labels(o, t);
		strbuf_printf(o, "} %d\n", atomic_load_explicit(&t->active, memory_order_relaxed));
	}
}

static void prom_admission(struct strbuf *o)
{
	int n = registry_tenant_count();
	prom_tenant_counter(o, n, "pgring_admission_throttled_total",
			    "Requests admission control made wait, by the limit that held them.",
			    offsetof(struct stats_tenant, throttled), true);
	prom_tenant_counter(o, n, "pgring_admission_refused_total",
			    "Requests admission control refused (53400), by the limit.",
			    offsetof(struct stats_tenant, refused), true);
	prom_tenant_counter(o, n, "pgring_admission_wait_seconds_total",
			    "Time requests waited before admission control let them go.",
			    offsetof(struct stats_tenant, wait_us), false);
	prom_tenant_counter(o, n, "pgring_admission_waits_total", "Requests admitted after a wait.",
			    offsetof(struct stats_tenant, waits), false);
	prom_tenant_counter(o, n, "pgring_admission_admitted_total", "Requests (transactions) admitted.",
			    offsetof(struct stats_tenant, admitted), false);
	prom_tenant_gauges(o, n);
}

static void json_tenant(struct strbuf *o, const struct tenant_shared *t)
{
	strbuf_printf(o, "{\"tenant_kind\":\"%s\",\"tenant\":", tenant_kinds[t->kind]);
	metrics_json_string(o, t->name);
	static const struct { const char *key; size_t off; } v[] = {
		{ "throttled", offsetof(struct stats_tenant, throttled) },
		{ "refused", offsetof(struct stats_tenant, refused) },
	};
	for (size_t k = 0; k < NELEM(v); k++) {
		strbuf_printf(o, ",\"%s\":{", v[k].key);
		for (int r = 0; r < ADMIT_REASONS; r++)
			strbuf_printf(o, "%s\"%s\":%" PRIu64, r ? "," : "", admit_reasons[r],
				      tenant_sum(t, v[k].off + (size_t)r * sizeof(stat_t)));
		strbuf_putc(o, '}');
	}
	strbuf_puts(o, ",\"wait_seconds\":");
	put_seconds(o, tenant_sum(t, offsetof(struct stats_tenant, wait_us)));
	strbuf_printf(o, ",\"waits\":%" PRIu64 ",\"admitted\":%" PRIu64 ",\"waiting\":%" PRIu64
		      ",\"transactions\":%d}",
		      tenant_sum(t, offsetof(struct stats_tenant, waits)),
		      tenant_sum(t, offsetof(struct stats_tenant, admitted)),
		      tenant_sum(t, offsetof(struct stats_tenant, waiting)),
		      atomic_load_explicit(&t->active, memory_order_relaxed));
}

void metrics_prometheus(struct strbuf *out)
{
	prom_process(out);
	prom_authq(out);
	prom_shards(out);
	prom_tls(out);
	prom_nodes(out);
	fleet_metrics(out);
	prom_pools(out);
	prom_admission(out);
}

/* ---- JSON ---- */

static void json_key(struct strbuf *o, bool *first, const char *key)
{
	strbuf_printf(o, "%s\"%s\":", *first ? "" : ",", key);
	*first = false;
}

static void json_states(struct strbuf *o, const struct gauge_def *states, size_t n,
			const struct pool_shared *ps, int shard)
{
	bool first = true;
	strbuf_putc(o, '{');
	for (size_t k = 0; k < n; k++) {
		json_key(o, &first, states[k].state);
		int64_t v = shard < 0 ? pool_gauge_sum(ps, states[k].off)
				      : gauge_at(&ps->shard[shard], states[k].off);
		strbuf_printf(o, "%" PRId64, v);
	}
	strbuf_putc(o, '}');
}

static void json_pool_counters(struct strbuf *o, const struct pool_shared *ps, int shard)
{
	bool first = true;
	strbuf_putc(o, '{');
	for (size_t k = 0; k < NELEM(pool_counters); k++) {
		const struct counter_def *c = &pool_counters[k];
		json_key(o, &first, c->json ? c->json : c->name);
		uint64_t v = shard < 0 ? pool_counter_sum(ps, c->off) : stat_at(&ps->shard[shard], c->off);
		strbuf_printf(o, "%" PRIu64, v);
	}
	strbuf_putc(o, '}');
}

static void json_pool_shard(struct strbuf *o, const struct pool_shared *ps, int s)
{
	strbuf_printf(o, "{\"shard\":%d,\"clients\":", s);
	json_states(o, client_states, NELEM(client_states), ps, s);
	strbuf_puts(o, ",\"servers\":");
	json_states(o, server_states, NELEM(server_states), ps, s);
	strbuf_printf(o, ",\"max_wait_us\":%" PRId64 ",\"counters\":",
		      gauge_get(&ps->shard[s].max_wait_us));
	json_pool_counters(o, ps, s);
	strbuf_putc(o, '}');
}

static bool shard_block_unused(const struct stats_pool *b)
{
	for (size_t k = 0; k < NELEM(pool_counters); k++)
		if (stat_at(b, pool_counters[k].off))
			return false;
	return shard_block_idle(b) && gauge_get(&b->max_wait_us) == 0;
}

static void json_pool(struct strbuf *o, const struct pool_shared *ps)
{
	strbuf_puts(o, "{\"database\":");
	metrics_json_string(o, ps->db);
	strbuf_puts(o, ",\"user\":");
	metrics_json_string(o, ps->user);
	if (ps->node[0]) {
		strbuf_puts(o, ",\"node\":");
		metrics_json_string(o, ps->node);
	}
	strbuf_printf(o, ",\"mode\":\"%s\",\"size\":%d,\"min_size\":%d,\"used\":%d,\"waiting\":%d",
		      mode_name(atomic_load_explicit(&ps->mode, memory_order_relaxed)),
		      atomic_load_explicit(&ps->size, memory_order_relaxed),
		      atomic_load_explicit(&ps->min_size, memory_order_relaxed),
		      atomic_load_explicit(&ps->used, memory_order_relaxed),
		      atomic_load_explicit(&ps->waiting, memory_order_relaxed));
	strbuf_puts(o, ",\"clients\":");
	json_states(o, client_states, NELEM(client_states), ps, -1);
	strbuf_puts(o, ",\"servers\":");
	json_states(o, server_states, NELEM(server_states), ps, -1);
	strbuf_printf(o, ",\"pinned\":%" PRId64 ",\"listeners\":%" PRId64 ",\"listen_channels\":%" PRId64,
		      pool_gauge_sum(ps, POOL_STAT(cl_pinned)), pool_gauge_sum(ps, POOL_STAT(listeners)),
		      pool_gauge_sum(ps, POOL_STAT(listen_channels)));
	json_pool_latency(o, ps);
	strbuf_printf(o, ",\"max_wait_us\":%" PRId64 ",\"counters\":", pool_max_wait_us(ps));
	json_pool_counters(o, ps, -1);
	/* Shards the pool never touched are left out: pools x shards blocks of zeros
	 * would make this page tens of megabytes on a big box. */
	strbuf_puts(o, ",\"per_shard\":[");
	bool first = true;
	for (int s = 0; s < registry_nshards(); s++) {
		if (shard_block_unused(&ps->shard[s]))
			continue;
		if (!first)
			strbuf_putc(o, ',');
		first = false;
		json_pool_shard(o, ps, s);
	}
	strbuf_puts(o, "]}");
}

static void json_shard(struct strbuf *o, int s)
{
	const struct stats_shard *sh = stats_shard(s);
	strbuf_printf(o, "{\"shard\":%d,\"tid\":%d", s,
		      atomic_load_explicit(&sh->tid, memory_order_relaxed));
	for (size_t k = 0; k < NELEM(shard_gauges); k++)
		strbuf_printf(o, ",\"%s\":%" PRId64, shard_gauges[k].name,
			      shard_gauge(sh, shard_gauges[k].which));
	for (size_t k = 0; k < NELEM(shard_counters); k++)
		strbuf_printf(o, ",\"%s\":%" PRIu64, shard_counters[k].name,
			      stat_at(sh, shard_counters[k].off));
	strbuf_putc(o, '}');
}

static void json_node(struct strbuf *o, const struct health_node *h)
{
	strbuf_puts(o, "{\"cluster\":");
	metrics_json_string(o, h->cluster);
	strbuf_puts(o, ",\"node\":");
	metrics_json_string(o, h->name);
	strbuf_puts(o, ",\"host\":");
	metrics_json_string(o, h->host ? h->host : "");
	strbuf_printf(o, ",\"port\":%d,\"role\":\"%s\",\"state\":\"%s\",\"checked\":%s,\"replay_paused\":%s",
		      h->port, topo_role_name(h->role), topo_state_name(h->state), h->checked ? "true" : "false",
		      h->replay_paused ? "true" : "false");
	static const char *const keys[] = { [NV_LAG] = "lag_bytes", [NV_CHECK] = "check_seconds",
					    [NV_ACTIVE] = "active_backends", [NV_ROUTED] = "transactions",
					    [NV_LEASED] = "servers_active", [NV_CHECKS] = "checks",
					    [NV_FAILURES] = "check_failures" };
	for (int k = NV_LAG; k <= NV_FAILURES; k++) {
		strbuf_printf(o, ",\"%s\":", keys[k]);
		node_value(o, h, (enum node_value)k);
	}
	strbuf_printf(o, ",\"lsn\":%" PRIu64 ",\"last_error\":", h->lsn);
	metrics_json_string(o, h->last_error ? h->last_error : "");
	strbuf_printf(o, ",\"source\":\"%s\"}", h->discovered ? "patroni" : "config");
}

void metrics_json_nodes(struct strbuf *out)
{
	strbuf_printf(out, "{\"topology_version\":%" PRIu64 ",\"shard_topology_versions\":[", control_topology_version());
	for (int s = 0; s < stats_nshards(); s++)
		strbuf_printf(out, "%s%" PRId64, s ? "," : "", shard_gauge(stats_shard(s), SG_TOPOLOGY));
	strbuf_puts(out, "],\"nodes\":[");
	for (int i = 0; i < health_count(); i++) {
		if (i)
			strbuf_putc(out, ',');
		json_node(out, health_node_at(i));
	}
	strbuf_puts(out, "]}\n");
}

/* pgrouter's monitoring dump, for nc and shell scripts: the cluster nodes up
 * of all, shards, client and server connections, then a line per node:
 * "host:port role state lag" (no lag for a node that is down). */
void metrics_status(struct strbuf *out)
{
	int n = health_count(), up = 0;
	for (int i = 0; i < n; i++)
		up += health_node_at(i)->state != NODE_DOWN;
	int64_t clients = 0, servers = 0;
	for (int s = 0; s < stats_nshards(); s++) {
		clients += shard_gauge(stats_shard(s), SG_CLIENTS);
		servers += shard_gauge(stats_shard(s), SG_SERVERS);
	}
	strbuf_printf(out, "backends %d/%d\nshards %d\nclients %" PRId64 "\nconnections %" PRId64 "\n", up, n,
		      stats_nshards(), clients, servers);
	for (int i = 0; i < n; i++) {
		const struct health_node *h = health_node_at(i);
		strbuf_printf(out, "%s:%d %s %s", h->host ? h->host : "", h->port, topo_role_name(h->role),
			      topo_state_name(h->state));
		if (h->state != NODE_DOWN)
			strbuf_printf(out, " %" PRId64, h->lag);
		strbuf_putc(out, '\n');
	}
}

void metrics_json(struct strbuf *out)
{
	strbuf_puts(out, "{\"version\":");
	metrics_json_string(out, version());
	strbuf_printf(out, ",\"uptime\":%.3f,\"topology_version\":%" PRIu64 ",\"shutting_down\":%s",
		      uptime(), control_topology_version(),
		      control_shutting_down() ? "true" : "false");
	json_tls(out);
	strbuf_puts(out, ",\"shards\":[");
	for (int s = 0; s < stats_nshards(); s++) {
		if (s)
			strbuf_putc(out, ',');
		json_shard(out, s);
	}
	strbuf_puts(out, "],\"nodes\":[");
	for (int i = 0; i < health_count(); i++) {
		if (i)
			strbuf_putc(out, ',');
		json_node(out, health_node_at(i));
	}
	strbuf_puts(out, "],\"pools\":[");
	int n = registry_count();
	for (int i = 0; i < n; i++) {
		if (i)
			strbuf_putc(out, ',');
		json_pool(out, registry_at(i));
	}
	strbuf_puts(out, "],\"admission\":[");
	n = registry_tenant_count();
	for (int i = 0; i < n; i++) {
		if (i)
			strbuf_putc(out, ',');
		json_tenant(out, registry_tenant_at(i));
	}
	strbuf_puts(out, "]}\n");
}
