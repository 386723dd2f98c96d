/* tests/unit/test_metrics.c: the control port: strbuf, the /metrics and /stats
 * renderers (against counters set by hand in registry and shard blocks), and the
 * HTTP server driven through a real loopback socket on one thread. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/control/control.h"
#include "core/control/http.h"
#include "core/control/metrics.h"
#include "core/stats.h"
#include "core/strbuf.h"
#include "core/registry.h"

static void two_shards(void)
{
	cr_assert_eq(registry_init(2), 0);
	cr_assert_eq(stats_init(2), 0);
}

static void set_stat(stat_t *s, uint64_t v)
{
	atomic_store(s, v);
}

static void set_gauge(gauge_t *g, int64_t v)
{
	atomic_store(g, v);
}

static char *render_prom(void)
{
	struct strbuf sb = STRBUF_INIT;
	metrics_prometheus(&sb);
	cr_assert(!sb.failed);
	return sb.buf;
}

static char *render_json(void)
{
	struct strbuf sb = STRBUF_INIT;
	metrics_json(&sb);
	cr_assert(!sb.failed);
	return sb.buf;
}

/* The page holds exactly this line (whole line, not a prefix). */
static bool has_line(const char *page, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = page; (p = strstr(p, line)); p++)
		if ((p == page || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

#define assert_line(page, line) \
	cr_assert(has_line((page), (line)), "missing line: %s", (line))

/* ---- strbuf ---- */

/* The histogram's bucket, found from the value's bit length, is the first
 * bound at or above it, as a walk from the first bound finds it: every bound,
 * one either side, powers of two either side, 0 and the largest values. */
static int bucket_by_walk(uint64_t us)
{
	int i = 0;
	while (i < STATS_HIST_BOUNDS && us > stats_hist_le_us[i])
		i++;
	return i;
}

Test(metrics_hist, bucket_from_bit_length)
{
	uint64_t probe[] = { 0, 1, 2, 49, UINT64_MAX, UINT64_MAX - 1, (uint64_t)1 << 63 };
	for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++)
		cr_expect_eq(stats_hist_bucket(probe[i]), bucket_by_walk(probe[i]), "%llu", (unsigned long long)probe[i]);
	for (int b = 0; b < STATS_HIST_BOUNDS; b++)
		for (int64_t d = -2; d <= 2; d++) {
			uint64_t us = (uint64_t)((int64_t)stats_hist_le_us[b] + d);
			cr_expect_eq(stats_hist_bucket(us), bucket_by_walk(us), "%llu", (unsigned long long)us);
		}
	for (int k = 0; k < 64; k++)
		for (int64_t d = -1; d <= 1; d++) {
			uint64_t us = ((uint64_t)1 << k) + (uint64_t)d;
			cr_expect_eq(stats_hist_bucket(us), bucket_by_walk(us), "%llu", (unsigned long long)us);
		}
	for (uint64_t us = 0; us < 3000000; us += 7)
		if (stats_hist_bucket(us) != bucket_by_walk(us))
			cr_assert_fail("%llu: %d, not %d", (unsigned long long)us, stats_hist_bucket(us), bucket_by_walk(us));
}

Test(metrics_strbuf, grows_and_stays_terminated)
{
	struct strbuf sb = STRBUF_INIT;
	cr_assert_str_eq(strbuf_str(&sb), "");
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(strbuf_printf(&sb, "%d,", i), 0);
	cr_assert_eq(sb.len, strlen(sb.buf));
	cr_assert(strncmp(sb.buf, "0,1,2,", 6) == 0);
	cr_assert(strstr(sb.buf, ",999,") != NULL);
	char big[5000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	size_t before = sb.len;
	cr_assert_eq(strbuf_printf(&sb, "[%s]", big), 0);
	cr_assert_eq(sb.len, before + sizeof big + 1);
	cr_assert_eq(sb.buf[sb.len], '\0');
	cr_assert_eq(sb.buf[sb.len - 1], ']');
	strbuf_reset(&sb);
	cr_assert_eq(sb.len, 0);
	cr_assert_str_eq(strbuf_str(&sb), "");
	strbuf_putc(&sb, 'a');
	strbuf_append(&sb, "bc", 2);
	strbuf_puts(&sb, "d");
	cr_assert_str_eq(sb.buf, "abcd");
	strbuf_free(&sb);
	cr_assert_null(sb.buf);
	cr_assert_eq(sb.len, 0);
}

Test(metrics_strbuf, failure_is_sticky)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "keep");
	cr_assert_eq(strbuf_reserve(&sb, SIZE_MAX / 2), -1);
	cr_assert(sb.failed);
	cr_assert_eq(strbuf_puts(&sb, "more"), -1);
	cr_assert_str_eq(strbuf_str(&sb), "keep");
	strbuf_free(&sb);
}

/* ---- Prometheus ---- */

TestSuite(metrics_prom, .init = two_shards);

Test(metrics_prom, pool_counters_sum_over_shards)
{
	struct pool_shared *ps = registry_get("app", "bob", NULL);
	cr_assert_not_null(ps);
	set_stat(&ps->shard[0].xact_count, 3);
	set_stat(&ps->shard[1].xact_count, 4);
	set_stat(&ps->shard[0].query_count, 10);
	set_stat(&ps->shard[1].bytes_in, 1234);
	set_stat(&ps->shard[0].bytes_out, 99);
	set_stat(&ps->shard[0].xact_time_us, 1500000);
	set_stat(&ps->shard[1].xact_time_us, 250);
	set_stat(&ps->shard[1].query_time_us, 2000000);
	set_stat(&ps->shard[0].wait_time_us, 100000);
	set_stat(&ps->shard[1].wait_count, 6);
	set_stat(&ps->shard[0].server_connects, 2);
	set_stat(&ps->shard[1].server_connect_errors, 1);
	set_stat(&ps->shard[0].server_moves, 4);
	set_stat(&ps->shard[1].server_moves, 9);
	set_stat(&ps->shard[0].client_logins, 5);
	set_stat(&ps->shard[1].client_login_errors, 8);
	char *page = render_prom();
	assert_line(page, "pgring_pool_transactions_total{database=\"app\",user=\"bob\"} 7");
	assert_line(page, "pgring_pool_queries_total{database=\"app\",user=\"bob\"} 10");
	assert_line(page, "pgring_pool_received_bytes_total{database=\"app\",user=\"bob\"} 1234");
	assert_line(page, "pgring_pool_sent_bytes_total{database=\"app\",user=\"bob\"} 99");
	assert_line(page, "pgring_pool_transaction_seconds_total{database=\"app\",user=\"bob\"} 1.50025");
	assert_line(page, "pgring_pool_query_seconds_total{database=\"app\",user=\"bob\"} 2");
	assert_line(page, "pgring_pool_wait_seconds_total{database=\"app\",user=\"bob\"} 0.1");
	assert_line(page, "pgring_pool_waits_total{database=\"app\",user=\"bob\"} 6");
	assert_line(page, "pgring_pool_server_connects_total{database=\"app\",user=\"bob\"} 2");
	assert_line(page, "pgring_pool_server_connect_errors_total{database=\"app\",user=\"bob\"} 1");
	assert_line(page, "pgring_pool_server_moves_total{database=\"app\",user=\"bob\"} 13");
	assert_line(page, "pgring_pool_client_logins_total{database=\"app\",user=\"bob\"} 5");
	assert_line(page, "pgring_pool_client_login_errors_total{database=\"app\",user=\"bob\"} 8");
	assert_line(page, "# TYPE pgring_pool_transactions_total counter");
	assert_line(page, "# TYPE pgring_pool_transaction_seconds_total counter");
	free(page);
}

Test(metrics_prom, pool_gauges)
{
	struct pool_shared *ps = registry_get("app", "gina", NULL);
	atomic_store(&ps->size, 20);
	atomic_store(&ps->used, 3);
	set_gauge(&ps->shard[0].cl_active, 2);
	set_gauge(&ps->shard[1].cl_active, 1);
	set_gauge(&ps->shard[1].cl_waiting, 4);
	set_gauge(&ps->shard[0].cl_idle, 7);
	set_gauge(&ps->shard[1].cl_login, 1);
	set_gauge(&ps->shard[0].sv_active, 2);
	set_gauge(&ps->shard[1].sv_idle, 1);
	set_gauge(&ps->shard[1].sv_resetting, 1);
	set_gauge(&ps->shard[0].max_wait_us, 300000);
	set_gauge(&ps->shard[1].max_wait_us, 2500000);
	char *page = render_prom();
	const char *want[] = {
		"pgring_pool_clients{database=\"app\",user=\"gina\",state=\"active\"} 3",
		"pgring_pool_clients{database=\"app\",user=\"gina\",state=\"waiting\"} 4",
		"pgring_pool_clients{database=\"app\",user=\"gina\",state=\"idle\"} 7",
		"pgring_pool_clients{database=\"app\",user=\"gina\",state=\"login\"} 1",
		"pgring_pool_servers{database=\"app\",user=\"gina\",state=\"active\"} 2",
		"pgring_pool_servers{database=\"app\",user=\"gina\",state=\"idle\"} 1",
		"pgring_pool_servers{database=\"app\",user=\"gina\",state=\"login\"} 0",
		"pgring_pool_servers{database=\"app\",user=\"gina\",state=\"resetting\"} 1",
		"pgring_pool_max_wait_seconds{database=\"app\",user=\"gina\"} 2.5",
		"pgring_pool_size{database=\"app\",user=\"gina\"} 20",
		"pgring_pool_server_connections{database=\"app\",user=\"gina\"} 3",
		"# TYPE pgring_pool_clients gauge",
		"# TYPE pgring_pool_max_wait_seconds gauge",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		assert_line(page, want[i]);
	free(page);
}

Test(metrics_prom, per_shard_breakdown_lists_busy_pairs_only)
{
	struct pool_shared *ps = registry_get("shop", "ann", NULL);
	set_gauge(&ps->shard[1].cl_active, 2);
	set_gauge(&ps->shard[1].sv_active, 1);
	registry_get("quiet", "nobody", NULL);
	char *page = render_prom();
	assert_line(page, "pgring_shard_pool_clients{shard=\"1\",database=\"shop\",user=\"ann\",state=\"active\"} 2");
	assert_line(page, "pgring_shard_pool_clients{shard=\"1\",database=\"shop\",user=\"ann\",state=\"idle\"} 0");
	assert_line(page, "pgring_shard_pool_servers{shard=\"1\",database=\"shop\",user=\"ann\",state=\"active\"} 1");
	cr_assert_null(strstr(page, "{shard=\"0\",database=\"shop\""));
	cr_assert_null(strstr(page, "pgring_shard_pool_clients{shard=\"1\",database=\"quiet\""));
	/* ...but the pool-wide families list every pool, zeros included. */
	assert_line(page, "pgring_pool_clients{database=\"quiet\",user=\"nobody\",state=\"active\"} 0");
	free(page);
}

Test(metrics_prom, shard_metrics)
{
	struct stats_shard *s0 = stats_shard(0), *s1 = stats_shard(1);
	set_stat(&s1->loops, 9);
	set_stat(&s0->cqes, 100);
	set_stat(&s0->cancels_forwarded, 2);
	set_stat(&s1->send_iovecs, 77);
	set_gauge(&s1->clients, 12);
	set_gauge(&s0->buffers_in_use, 3);
	atomic_store(&s0->cpu, 0);
	atomic_store(&s1->cpu, -1);
	atomic_store(&s1->topology_version, 4);
	char *page = render_prom();
	assert_line(page, "pgring_shard_loops_total{shard=\"1\"} 9");
	assert_line(page, "pgring_shard_loops_total{shard=\"0\"} 0");
	assert_line(page, "pgring_shard_cqes_total{shard=\"0\"} 100");
	assert_line(page, "pgring_shard_cancels_forwarded_total{shard=\"0\"} 2");
	assert_line(page, "pgring_shard_send_iovecs_total{shard=\"1\"} 77");
	assert_line(page, "pgring_shard_clients{shard=\"1\"} 12");
	assert_line(page, "pgring_shard_buffers_in_use{shard=\"0\"} 3");
	assert_line(page, "pgring_shard_cpu{shard=\"1\"} -1");
	assert_line(page, "pgring_shard_topology_version{shard=\"1\"} 4");
	const char *names[] = { "loops", "cqes", "submits", "accepts", "accept_errors", "recvs",
				"sends", "send_iovecs", "enobufs", "paused", "protocol_errors",
				"cancels_received", "cancels_forwarded" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char line[128];
		snprintf(line, sizeof line, "# TYPE pgring_shard_%s_total counter", names[i]);
		assert_line(page, line);
	}
	free(page);
}

Test(metrics_prom, process_metrics)
{
	char *page = render_prom();
	char line[256];
	assert_line(page, "pgring_up 1");
	assert_line(page, "pgring_shards 2");
	snprintf(line, sizeof line, "pgring_topology_version %llu",
		 (unsigned long long)control_topology_version());
	assert_line(page, line);
	cr_assert(strstr(page, "\npgring_uptime_seconds ") != NULL);
	struct strbuf v = STRBUF_INIT;
	metrics_label_value(&v, control_version() ? control_version() : "");
	snprintf(line, sizeof line, "pgring_info{version=\"%s\"} 1", strbuf_str(&v));
	assert_line(page, line);
	strbuf_free(&v);
	free(page);
}

Test(metrics_prom, label_escaping)
{
	cr_assert_not_null(registry_get("q\"b\\s\nn", "plain", NULL));
	cr_assert_not_null(registry_get("bad\xff" "utf8", "\xc3\xa9t\xc3\xa9", NULL));
	char *page = render_prom();
	assert_line(page, "pgring_pool_transactions_total{database=\"q\\\"b\\\\s\\nn\",user=\"plain\"} 0");
	/* invalid byte -> U+FFFD; valid multibyte passes through */
	assert_line(page, "pgring_pool_transactions_total{database=\"bad\xef\xbf\xbdutf8\","
			  "user=\"\xc3\xa9t\xc3\xa9\"} 0");
	free(page);
}

Test(metrics_label, escape_helpers)
{
	struct strbuf sb = STRBUF_INIT;
	metrics_label_value(&sb, "a\\b\"c\nd\te");
	cr_assert_str_eq(strbuf_str(&sb), "a\\\\b\\\"c\\nd\te");
	strbuf_reset(&sb);
	metrics_json_string(&sb, "a\\b\"c\nd\te\x01/\xed\xa0\x80z");
	cr_assert_str_eq(strbuf_str(&sb), "\"a\\\\b\\\"c\\nd\\te\\u0001/\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz\"");
	strbuf_free(&sb);
}

/* Every family is one contiguous group led by HELP then TYPE, no family twice,
 * every sample "name[{labels}] value", and the page ends with a newline. */
Test(metrics_prom, page_is_well_formed)
{
	struct pool_shared *ps = registry_get("app", "zed", NULL);
	set_gauge(&ps->shard[0].cl_idle, 1);
	char *page = render_prom();
	size_t len = strlen(page);
	cr_assert(len > 0 && page[len - 1] == '\n');
	char seen[200][80];
	int nseen = 0;
	char family[80] = "", help_for[80] = "";
	bool histogram = false;
	for (char *line = page, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		*nl = '\0';
		char name[80], type[16];
		if (sscanf(line, "# HELP %79s", name) == 1) {
			for (int i = 0; i < nseen; i++)
				cr_assert_str_neq(seen[i], name, "family %s twice", name);
			cr_assert_lt(nseen, 200);
			strcpy(seen[nseen++], name);
			strcpy(help_for, name);
			family[0] = '\0';
		} else if (sscanf(line, "# TYPE %79s %15s", name, type) == 2) {
			cr_assert_str_eq(name, help_for, "TYPE %s not right after its HELP", name);
			cr_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
				  strcmp(type, "histogram") == 0);
			strcpy(family, name);
			histogram = strcmp(type, "histogram") == 0;
		} else {
			size_t n = strcspn(line, "{ "), f = strlen(family);
			bool own = family[0] && strncmp(line, family, f) == 0 &&
				   (n == f || (histogram && ((n == f + 7 && strncmp(line + f, "_bucket", 7) == 0) ||
							     (n == f + 4 && strncmp(line + f, "_sum", 4) == 0) ||
							     (n == f + 6 && strncmp(line + f, "_count", 6) == 0))));
			cr_assert(own, "sample outside its family: %s", line);
			const char *value = strrchr(line, ' ');
			cr_assert_not_null(value);
			char *end;
			strtod(value + 1, &end);
			cr_assert(*end == '\0' && end > value + 1, "bad value: %s", line);
		}
	}
	free(page);
}

/* A latency histogram: cumulative buckets with the bounds in seconds, +Inf
 * equal to _count, _sum and _count from the pool's own counters; the JSON
 * percentiles are the bounds of the buckets they fall in. */
Test(metrics_prom, latency_histogram)
{
	struct pool_shared *ps = registry_get("app", "hist", NULL);
	stats_hist_add(&ps->shard[0].query_hist, 40);        /* le 50 us */
	stats_hist_add(&ps->shard[1].query_hist, 50);        /* le 50 us, on the bound */
	stats_hist_add(&ps->shard[0].query_hist, 51);        /* le 100 us */
	stats_hist_add(&ps->shard[0].query_hist, 200000);    /* le 0.25 s */
	stats_hist_add(&ps->shard[1].query_hist, 61000000);  /* past 60 s: +Inf only */
	stat_add(&ps->shard[0].query_count, 3);
	stat_add(&ps->shard[1].query_count, 2);
	stat_add(&ps->shard[0].query_time_us, 1500000);
	char *page = render_prom();
	static const char *const want[] = {
		"# TYPE pgring_pool_query_duration_seconds histogram\n",
		"pgring_pool_query_duration_seconds_bucket{database=\"app\",user=\"hist\",le=\"0.00005\"} 2\n",
		"pgring_pool_query_duration_seconds_bucket{database=\"app\",user=\"hist\",le=\"0.0001\"} 3\n",
		"pgring_pool_query_duration_seconds_bucket{database=\"app\",user=\"hist\",le=\"0.1\"} 3\n",
		"pgring_pool_query_duration_seconds_bucket{database=\"app\",user=\"hist\",le=\"0.25\"} 4\n",
		"pgring_pool_query_duration_seconds_bucket{database=\"app\",user=\"hist\",le=\"60\"} 4\n",
		"pgring_pool_query_duration_seconds_bucket{database=\"app\",user=\"hist\",le=\"+Inf\"} 5\n",
		"pgring_pool_query_duration_seconds_sum{database=\"app\",user=\"hist\"} 1.5\n",
		"pgring_pool_query_duration_seconds_count{database=\"app\",user=\"hist\"} 5\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		cr_expect(strstr(page, want[i]), "missing %s", want[i]);
	free(page);
	char *doc = render_json();
	cr_expect(strstr(doc, "\"query\":{\"count\":5,\"p50_us\":100,\"p95_us\":\"+Inf\",\"p99_us\":\"+Inf\"}"),
		  "latency of app/hist in %s", doc);
	free(doc);
}

/* ---- JSON ---- */

TestSuite(metrics_json, .init = two_shards);

/* A strict recursive-descent check of RFC 8259 syntax. */
static bool j_value(const char **p, int depth);

static void j_ws(const char **p)
{
	while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
		(*p)++;
}

static bool j_string(const char **p)
{
	if (*(*p)++ != '"')
		return false;
	for (;;) {
		unsigned char c = (unsigned char)*(*p)++;
		if (c == '"')
			return true;
		if (c < 0x20)
			return false;
		if (c != '\\')
			continue;
		c = (unsigned char)*(*p)++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++)
				if (!strchr("0123456789abcdefABCDEF", **p) || !*(*p)++)
					return false;
		} else if (!c || !strchr("\"\\/bfnrt", c)) {
			return false;
		}
	}
}

static bool j_digits(const char **p)
{
	const char *s = *p;
	while (**p >= '0' && **p <= '9')
		(*p)++;
	return *p > s;
}

static bool j_number(const char **p)
{
	if (**p == '-')
		(*p)++;
	if (**p == '0')
		(*p)++;
	else if (!j_digits(p))
		return false;
	if (**p == '.') {
		(*p)++;
		if (!j_digits(p))
			return false;
	}
	if (**p == 'e' || **p == 'E') {
		(*p)++;
		if (**p == '+' || **p == '-')
			(*p)++;
		if (!j_digits(p))
			return false;
	}
	return true;
}

static bool j_members(const char **p, int depth, char close, bool keyed)
{
	(*p)++;
	j_ws(p);
	if (**p == close) {
		(*p)++;
		return true;
	}
	for (;;) {
		j_ws(p);
		if (keyed) {
			if (!j_string(p))
				return false;
			j_ws(p);
			if (*(*p)++ != ':')
				return false;
		}
		if (!j_value(p, depth + 1))
			return false;
		j_ws(p);
		char c = *(*p)++;
		if (c == close)
			return true;
		if (c != ',')
			return false;
	}
}

static bool j_value(const char **p, int depth)
{
	if (depth > 64)
		return false;
	j_ws(p);
	switch (**p) {
	case '{': return j_members(p, depth, '}', true);
	case '[': return j_members(p, depth, ']', false);
	case '"': return j_string(p);
	case 't': return strncmp(*p, "true", 4) == 0 && (*p += 4);
	case 'f': return strncmp(*p, "false", 5) == 0 && (*p += 5);
	case 'n': return strncmp(*p, "null", 4) == 0 && (*p += 4);
	default: return j_number(p);
	}
}

static bool json_valid(const char *s)
{
	if (!j_value(&s, 0))
		return false;
	j_ws(&s);
	return *s == '\0';
}

Test(metrics_json, validator_sanity)
{
	cr_assert(json_valid("{\"a\":[1,-2.5e3,true,null,\"x\\u00e9\"],\"b\":{}}"));
	cr_assert(!json_valid("{\"a\":1,}"));
	cr_assert(!json_valid("{\"a\":\"\n\"}"));
	cr_assert(!json_valid("[01]"));
	cr_assert(!json_valid("{\"a\":1} x"));
}

Test(metrics_json, document_is_valid_and_complete)
{
	struct pool_shared *ps = registry_get("app2", "carol", NULL);
	atomic_store(&ps->size, 15);
	atomic_store(&ps->used, 2);
	set_stat(&ps->shard[0].xact_count, 3);
	set_stat(&ps->shard[1].xact_count, 4);
	set_stat(&ps->shard[1].wait_time_us, 42);
	set_gauge(&ps->shard[1].cl_waiting, 2);
	set_stat(&stats_shard(1)->accepts, 11);
	registry_get("q\"b\\s\nn\x01", "u", NULL);
	char *doc = render_json();
	cr_assert(json_valid(doc), "invalid JSON: %s", doc);
	const char *want[] = {
		"\"version\":\"",
		"\"shards\":[{\"shard\":0,",
		"\"accepts\":11",
		"\"database\":\"app2\",\"user\":\"carol\"",
		"\"size\":15,",
		"\"used\":2,",
		"\"transactions\":7,",
		"\"wait_us\":42,",
		"\"clients\":{\"active\":0,\"waiting\":2,\"idle\":0,\"login\":0,\"replication\":0}",
		"\"per_shard\":[{\"shard\":0,",
		"{\"shard\":1,\"clients\":{\"active\":0,\"waiting\":2,",
		"\"per_shard\":[]", /* the pool no shard has touched */
		"\"database\":\"q\\\"b\\\\s\\nn\\u0001\"",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		cr_assert(strstr(doc, want[i]), "missing %s in %s", want[i], doc);
	free(doc);
}

Test(metrics_json, empty_registry_is_valid)
{
	char *doc = render_json();
	cr_assert(json_valid(doc), "invalid JSON: %s", doc);
	free(doc);
}

/* ---- HTTP, client and server on this one thread ---- */

struct client {
	int fd;
	struct strbuf in;
	size_t off;       /* start of the next unread response in `in` */
	bool eof;
};

struct resp {
	int status;
	char head[2048];
	char *body;
	size_t body_len;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct http_server *open_server(void)
{
	char err[256];
	struct http_server *s = http_open("127.0.0.1", 0, err, sizeof err);
	cr_assert_not_null(s, "http_open: %s", err);
	cr_assert_gt(http_port(s), 0);
	return s;
}

static struct client client_connect(struct http_server *s)
{
	struct client cl = { .fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), .in = STRBUF_INIT };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)http_port(s)) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	/* Loopback connect completes in the kernel before accept(2). */
	cr_assert_eq(connect(cl.fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s", strerror(errno));
	cr_assert_eq(fcntl(cl.fd, F_SETFL, O_NONBLOCK), 0);
	return cl;
}

static void client_close(struct client *cl)
{
	close(cl->fd);
	strbuf_free(&cl->in);
}

static void client_send(struct client *cl, const char *data, size_t n)
{
	cr_assert_eq(send(cl->fd, data, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void client_sends(struct client *cl, const char *s)
{
	client_send(cl, s, strlen(s));
}

static void client_read(struct client *cl)
{
	char buf[4096];
	ssize_t r;
	while ((r = recv(cl->fd, buf, sizeof buf, 0)) > 0)
		strbuf_append(&cl->in, buf, (size_t)r);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
		cl->eof = true;
}

/* One turn of the loop the control shard would run. */
static void turn(struct http_server *s, struct client *cl)
{
	struct pollfd fds[HTTP_MAX_POLLFDS + 1];
	int n = http_pollfds(s, fds, HTTP_MAX_POLLFDS);
	cr_assert_leq(n, HTTP_MAX_POLLFDS);
	fds[n] = (struct pollfd){ .fd = cl ? cl->fd : -1, .events = POLLIN };
	poll(fds, (nfds_t)n + 1, 10);
	http_process(s, fds, n);
	if (cl)
		client_read(cl);
}

/* Take one complete response from the client's input, if it is there. */
static bool take_resp(struct client *cl, bool head_only, struct resp *r)
{
	const char *start = strbuf_str(&cl->in) + cl->off;
	const char *end = strstr(start, "\r\n\r\n");
	if (!end)
		return false;
	size_t hlen = (size_t)(end - start) + 4;
	cr_assert_lt(hlen, sizeof r->head);
	memcpy(r->head, start, hlen);
	r->head[hlen] = '\0';
	const char *cl_hdr = strcasestr(r->head, "\r\nContent-Length:");
	cr_assert_not_null(cl_hdr, "no Content-Length in %s", r->head);
	size_t blen = head_only ? 0 : strtoul(cl_hdr + 17, NULL, 10);
	if (cl->in.len - cl->off < hlen + blen)
		return false;
	cr_assert_eq(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
	r->body = strndup(start + hlen, blen);
	r->body_len = blen;
	cl->off += hlen + blen;
	return true;
}

static struct resp await_resp(struct http_server *s, struct client *cl, bool head_only)
{
	struct resp r;
	int64_t give_up = mono_ms() + 3000;
	while (!take_resp(cl, head_only, &r)) {
		cr_assert(!cl->eof, "connection closed before a full response");
		cr_assert_lt(mono_ms(), give_up, "no response");
		turn(s, cl);
	}
	return r;
}

static void await_eof(struct http_server *s, struct client *cl)
{
	int64_t give_up = mono_ms() + 3000;
	while (!cl->eof) {
		cr_assert_lt(mono_ms(), give_up, "connection not closed");
		turn(s, cl);
	}
}

static bool has_header(const struct resp *r, const char *line)
{
	char want[256];
	snprintf(want, sizeof want, "\r\n%s\r\n", line);
	return strcasestr(r->head, want) != NULL;
}

static struct resp request(struct http_server *s, struct client *cl, const char *req)
{
	client_sends(cl, req);
	return await_resp(s, cl, strncmp(req, "HEAD ", 5) == 0);
}

TestSuite(metrics_http, .init = two_shards, .timeout = 30);

Test(metrics_http, open_reports_errors)
{
	char err[256] = "";
	cr_assert_null(http_open("127.0.0.1", 70000, err, sizeof err));
	cr_assert(strlen(err) > 0);
	err[0] = '\0';
	cr_assert_null(http_open("no.such.host.invalid", 0, err, sizeof err));
	cr_assert(strlen(err) > 0);
	struct http_server *a = open_server();
	err[0] = '\0';
	cr_assert_null(http_open("127.0.0.1", http_port(a), err, sizeof err), "port bound twice");
	cr_assert(strstr(err, "in use") != NULL, "%s", err);
	http_close(a);
	struct http_server *b = http_open("localhost", 0, err, sizeof err);
	cr_assert_not_null(b, "%s", err);
	http_close(b);
	http_close(NULL);
}

Test(metrics_http, metrics_health_and_keepalive)
{
	struct pool_shared *ps = registry_get("web", "kim", NULL);
	set_stat(&ps->shard[0].xact_count, 3);
	set_stat(&ps->shard[1].xact_count, 4);
	struct http_server *s = open_server();
	struct client cl = client_connect(s);

	struct resp r = request(s, &cl, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	cr_assert_eq(r.status, 200);
	cr_assert(has_header(&r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"), "%s", r.head);
	cr_assert(has_header(&r, "Connection: keep-alive"), "%s", r.head);
	cr_assert(has_line(r.body, "pgring_up 1"));
	cr_assert(has_line(r.body, "pgring_pool_transactions_total{database=\"web\",user=\"kim\"} 7"));
	free(r.body);

	/* same connection */
	r = request(s, &cl, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
	if (control_shutting_down()) {
		cr_assert_eq(r.status, 503);
		cr_assert_str_eq(r.body, "shutting down\n");
	} else {
		cr_assert_eq(r.status, 200);
		cr_assert_str_eq(r.body, "ok\n");
	}
	free(r.body);

	r = request(s, &cl, "GET /stats?pretty=1 HTTP/1.1\r\nHost: x\r\n\r\n");
	cr_assert_eq(r.status, 200);
	cr_assert(has_header(&r, "Content-Type: application/json"), "%s", r.head);
	cr_assert(json_valid(r.body));
	free(r.body);
	client_close(&cl);
	http_close(s);
}

Test(metrics_http, errors_keep_or_close_the_connection)
{
	struct http_server *s = open_server();
	struct client cl = client_connect(s);
	struct resp r = request(s, &cl, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
	cr_assert_eq(r.status, 404);
	free(r.body);
	r = request(s, &cl, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	cr_assert_eq(r.status, 405);
	cr_assert(has_header(&r, "Allow: GET, HEAD"), "%s", r.head);
	free(r.body);
	r = request(s, &cl, "DELETE /health HTTP/1.1\r\n\r\n");
	cr_assert_eq(r.status, 405);
	free(r.body);
	/* 404 and 405 keep the connection; a malformed request ends it. */
	r = request(s, &cl, "GET /health\r\n\r\n");
	cr_assert_eq(r.status, 400);
	cr_assert(has_header(&r, "Connection: close"), "%s", r.head);
	free(r.body);
	await_eof(s, &cl);
	client_close(&cl);

	const char *bad[] = {
		"GET  /health HTTP/1.1\r\n\r\n",
		"GET /health HTTP/1.1\r\nNo colon here\r\n\r\n",
		"GET /health HTTP/1.1\r\nBad Name: x\r\n\r\n",
		"GET /health HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n",
		"GET /health HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
		"GET health HTTP/1.1\r\n\r\n",
		"G(T /health HTTP/1.1\r\n\r\n",
		"GET /health HTTX/1.1\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cl = client_connect(s);
		r = request(s, &cl, bad[i]);
		cr_assert_eq(r.status, 400, "request %zu", i);
		free(r.body);
		await_eof(s, &cl);
		client_close(&cl);
	}
	cl = client_connect(s);
	r = request(s, &cl, "GET /health HTTP/2.0\r\n\r\n");
	cr_assert_eq(r.status, 505);
	free(r.body);
	client_close(&cl);
	http_close(s);
}

Test(metrics_http, request_split_across_writes)
{
	struct http_server *s = open_server();
	struct client cl = client_connect(s);
	const char *parts[] = { "GE", "T /hea", "lth HTTP/1.1\r\nHo", "st: x\r", "\n", "\r\n" };
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		client_sends(&cl, parts[i]);
		for (int k = 0; k < 3; k++)
			turn(s, &cl);
		if (i + 1 < sizeof parts / sizeof parts[0])
			cr_assert_eq(cl.in.len, 0, "answered before the head was complete");
	}
	struct resp r = await_resp(s, &cl, false);
	cr_assert_eq(r.status, 200);
	free(r.body);
	client_close(&cl);
	http_close(s);
}

Test(metrics_http, head_has_length_but_no_body)
{
	struct http_server *s = open_server();
	struct client cl = client_connect(s);
	struct resp r = request(s, &cl, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	cr_assert_eq(r.status, 200);
	const char *len = strcasestr(r.head, "\r\nContent-Length: ");
	cr_assert(len && strtoul(len + 18, NULL, 10) > 100);
	free(r.body);
	/* Had a body been sent, this would read it as the next response. */
	r = request(s, &cl, "GET /health HTTP/1.1\r\n\r\n");
	cr_assert_eq(r.status, control_shutting_down() ? 503 : 200);
	free(r.body);
	client_close(&cl);
	http_close(s);
}

Test(metrics_http, pipelined_and_bare_lf)
{
	struct http_server *s = open_server();
	struct client cl = client_connect(s);
	client_sends(&cl, "GET /nope HTTP/1.1\r\n\r\nGET /health HTTP/1.1\n\nGET /x HTTP/1.1\r\n\r\n");
	int want[] = { 404, control_shutting_down() ? 503 : 200, 404 };
	for (int i = 0; i < 3; i++) {
		struct resp r = await_resp(s, &cl, false);
		cr_assert_eq(r.status, want[i], "response %d", i);
		free(r.body);
	}
	/* A burst larger than one turn serves: all must still be answered. */
	struct strbuf many = STRBUF_INIT;
	for (int i = 0; i < 40; i++)
		strbuf_puts(&many, "GET /nope HTTP/1.1\r\n\r\n");
	client_send(&cl, many.buf, many.len);
	strbuf_free(&many);
	for (int i = 0; i < 40; i++) {
		struct resp r = await_resp(s, &cl, false);
		cr_assert_eq(r.status, 404);
		free(r.body);
	}
	client_close(&cl);
	http_close(s);
}

Test(metrics_http, close_requests)
{
	struct http_server *s = open_server();
	struct client cl = client_connect(s);
	struct resp r = request(s, &cl, "GET /nope HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
	cr_assert_eq(r.status, 404);
	cr_assert(has_header(&r, "Connection: close"));
	free(r.body);
	await_eof(s, &cl);
	client_close(&cl);

	cl = client_connect(s);
	r = request(s, &cl, "GET /nope HTTP/1.0\r\n\r\n");
	cr_assert_eq(r.status, 404);
	free(r.body);
	await_eof(s, &cl);
	client_close(&cl);

	/* A body we do not read must not be taken for the next request. */
	cl = client_connect(s);
	r = request(s, &cl, "POST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /");
	cr_assert_eq(r.status, 405);
	free(r.body);
	await_eof(s, &cl);
	cr_assert_eq(cl.in.len, cl.off, "more than one response");
	client_close(&cl);
	http_close(s);
}

Test(metrics_http, oversized_head)
{
	struct http_server *s = open_server();
	struct client cl = client_connect(s);
	struct strbuf big = STRBUF_INIT;
	strbuf_puts(&big, "GET /health HTTP/1.1\r\n");
	while (big.len < HTTP_HEAD_MAX + 1000)
		strbuf_puts(&big, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
	client_send(&cl, big.buf, big.len);
	strbuf_free(&big);
	struct resp r = await_resp(s, &cl, false);
	cr_assert_eq(r.status, 431);
	free(r.body);
	await_eof(s, &cl);
	client_close(&cl);
	http_close(s);
}

Test(metrics_http, stalled_connections_time_out)
{
	struct http_server *s = open_server();
	http_set_timeouts(s, 100, 100);
	int64_t t0 = mono_ms(); /* before the connects, so before any deadline was set */
	struct client idle = client_connect(s);
	struct client slow = client_connect(s);
	for (int i = 0; i < 3; i++)
		turn(s, NULL);
	client_sends(&slow, "GET /hea");
	cr_assert_leq(http_next_timeout(s), 100);
	cr_assert_geq(http_next_timeout(s), 0);
	await_eof(s, &idle);
	await_eof(s, &slow);
	cr_assert_geq(mono_ms() - t0, 99);
	cr_assert_eq(idle.in.len + slow.in.len, 0);
	cr_assert_eq(http_next_timeout(s), -1);
	client_close(&idle);
	client_close(&slow);
	http_close(s);
}

/* Turn the loop n times with no client of interest. */
static void settle(struct http_server *s, int n)
{
	for (int i = 0; i < n; i++)
		turn(s, NULL);
}

/* Whether the server closed cl (reset or FIN), without blocking. */
static bool closed(struct client *cl)
{
	client_read(cl);
	return cl->eof;
}

/* A request head must be complete within the head deadline counted from accept:
 * bytes trickling in do not extend it. A kept-alive connection may idle longer
 * than that between requests, and its next head gets the deadline from its first byte. */
Test(metrics_http, head_deadline_is_not_reset_by_bytes)
{
	struct http_server *s = open_server();
	http_set_timeouts(s, 300, 5000);
	int64_t t0 = mono_ms();
	struct client trickle = client_connect(s);
	const char *req = "GET /health HTTP/1.1\r\nX-Slow: ";
	for (size_t i = 0; !closed(&trickle); i++) {
		cr_assert_lt(mono_ms() - t0, 2000, "trickling connection never closed");
		if (i < strlen(req))
			client_send(&trickle, req + i, 1);
		for (int64_t until = mono_ms() + 50; mono_ms() < until;)
			turn(s, &trickle);
	}
	cr_assert_geq(mono_ms() - t0, 299);
	cr_assert_eq(trickle.in.len, 0);
	client_close(&trickle);

	struct client ka = client_connect(s);
	struct resp r = request(s, &ka, "GET /nope HTTP/1.1\r\n\r\n");
	cr_assert_eq(r.status, 404);
	free(r.body);
	for (int64_t until = mono_ms() + 600; mono_ms() < until;)
		turn(s, &ka);
	cr_assert(!ka.eof, "an idle keep-alive connection was held to the head deadline");
	r = request(s, &ka, "GET /nope HTTP/1.1\r\n\r\n");
	cr_assert_eq(r.status, 404);
	free(r.body);
	int64_t t1 = mono_ms();
	client_sends(&ka, "GET /");
	await_eof(s, &ka);
	cr_assert_geq(mono_ms() - t1, 299);
	cr_assert_lt(mono_ms() - t1, 2000);
	client_close(&ka);
	http_close(s);
}

/* With every slot taken the listener stays polled and a new connection evicts the
 * one that made the least progress: an idle keep-alive one first, then the oldest
 * incomplete head. */
Test(metrics_http, full_server_evicts_least_progress)
{
	struct http_server *s = open_server();
	static struct client cls[HTTP_MAX_CONNS];
	for (int i = 0; i < HTTP_MAX_CONNS - 1; i++) {
		cls[i] = client_connect(s);
		client_sends(&cls[i], "GET /");
		turn(s, NULL);
	}
	struct client *idle = &cls[HTTP_MAX_CONNS - 1]; /* the newest, but answered */
	*idle = client_connect(s);
	struct resp r = request(s, idle, "GET /nope HTTP/1.1\r\n\r\n");
	free(r.body);
	settle(s, 3);
	struct pollfd fds[HTTP_MAX_POLLFDS];
	cr_assert_eq(http_pollfds(s, fds, HTTP_MAX_POLLFDS), HTTP_MAX_POLLFDS, "listener not polled when full");

	struct client a = client_connect(s);
	r = request(s, &a, "GET /nope HTTP/1.1\r\n\r\n");
	cr_assert_eq(r.status, 404);
	free(r.body);
	settle(s, 2);
	cr_assert(closed(idle), "the idle keep-alive connection was not evicted");
	cr_assert(!closed(&cls[0]), "a request was evicted before an idle connection");

	struct client b = client_connect(s);
	client_sends(&b, "GET /");
	settle(s, 3);
	cr_assert(closed(&a), "the idle keep-alive connection was not evicted");
	cr_assert(!closed(&cls[0]));

	struct client c = client_connect(s);
	r = request(s, &c, "GET /nope HTTP/1.1\r\n\r\n");
	cr_assert_eq(r.status, 404);
	free(r.body);
	settle(s, 2);
	cr_assert(closed(&cls[0]), "the oldest incomplete head was not evicted");
	for (int i = 1; i < HTTP_MAX_CONNS - 1; i++)
		cr_assert(!closed(&cls[i]), "connection %d evicted out of order", i);
	cr_assert(!closed(&b));
	for (int i = 0; i < HTTP_MAX_CONNS; i++)
		client_close(&cls[i]);
	client_close(&a);
	client_close(&b);
	client_close(&c);
	http_close(s);
}

/* Issue 21 item 5: 100 connections that each sent one byte of a request and stall
 * (then trickle more) must not delay a load balancer's /health, and are closed at
 * the head deadline (the default one) all the same. */
Test(metrics_http, health_is_fast_under_slowloris)
{
	enum { SLOW = 100 };
	struct http_server *s = open_server();
	static struct client slow[SLOW];
	int64_t t0 = mono_ms();
	for (int i = 0; i < SLOW; i++) {
		slow[i] = client_connect(s);
		client_sends(&slow[i], "G");
		turn(s, NULL);
	}
	settle(s, 3);

	struct client lb = client_connect(s);
	int64_t sent = mono_ms();
	client_sends(&lb, "GET /health HTTP/1.1\r\nHost: lb\r\n\r\n");
	struct resp r;
	while (!take_resp(&lb, false, &r)) {
		cr_assert(!lb.eof, "/health connection closed");
		cr_assert_lt(mono_ms() - sent, 500, "/health not answered within 500 ms under %d slow connections", SLOW);
		turn(s, &lb);
	}
	cr_assert_eq(r.status, control_shutting_down() ? 503 : 200);
	free(r.body);
	/* The oldest gave way, to the slow ones after the first HTTP_MAX_CONNS and to lb. */
	int evicted = SLOW - HTTP_MAX_CONNS + 1;
	for (int i = 0; i < SLOW; i++)
		cr_assert_eq(closed(&slow[i]), i < evicted, "slow connection %d", i);

	/* The rest keep trickling and are closed at the head deadline from their accept. */
	const char *req = "ET /health HTTP/1.1\r\n";
	int64_t first_close = 0;
	for (int open = SLOW - evicted, k = 0; open > 0; k++) {
		cr_assert_lt(mono_ms() - sent, HTTP_HEAD_TIMEOUT_MS + 1500, "%d slow connections still open", open);
		open = 0;
		for (int i = evicted; i < SLOW; i++) {
			if (closed(&slow[i])) {
				if (!first_close)
					first_close = mono_ms();
				continue;
			}
			open++;
			if (k % 20 == 0 && (size_t)k / 20 < strlen(req))
				client_send(&slow[i], req + k / 20, 1);
		}
		turn(s, NULL);
	}
	cr_assert_geq(first_close - t0, HTTP_HEAD_TIMEOUT_MS - 1);
	/* lb is kept alive past the head deadline, and still answers. */
	cr_assert(!closed(&lb));
	r = request(s, &lb, "GET /health HTTP/1.1\r\nHost: lb\r\n\r\n");
	cr_assert_eq(r.status, control_shutting_down() ? 503 : 200);
	free(r.body);
	for (int i = 0; i < SLOW; i++)
		client_close(&slow[i]);
	client_close(&lb);
	http_close(s);
}
