#!/usr/bin/env bash
# t_metrics (pgring only): the control port. After exactly 20 autocommit
# `SELECT 1` in one session (transaction mode), pgring_pool_transactions_total and
# pgring_pool_queries_total for (app, app) moved by exactly 20; an explicit
# BEGIN/SELECT/SELECT/COMMIT counts as one transaction; /health answers 200 and
# /stats is valid JSON.
. "$(dirname "$0")/lib.sh"
pgring_only "the control port is pgring's"

start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 2
shards = 2
"
SERIES='database="app",user="app"'

http_get /health
assert_eq 200 "$HTTP_STATUS" "/health status (body: $HTTP_BODY)"
http_get /metrics || fail "/metrics status $HTTP_STATUS"
assert_contains "$HTTP_BODY" "# TYPE pgring_pool_transactions_total counter" "/metrics TYPE line"
assert_eq 1 "$(metric pgring_up)" "pgring_up"

# Make the pool exist, then read the counters.
q "SELECT 1" >/dev/null || fail "first query"
wait_until 5 metric pgring_pool_transactions_total "$SERIES" ||
	{ http_get /metrics; fail "no pgring_pool_transactions_total{$SERIES} after a query: $(grep pool_transactions <<<"$HTTP_BODY")"; }
x0=$(metric pgring_pool_transactions_total "$SERIES")
q0=$(metric pgring_pool_queries_total "$SERIES") || fail "no pgring_pool_queries_total{$SERIES}"

for _ in $(seq 20); do echo "SELECT 1;"; done >"$TEST_TMP/twenty.sql"
out=$(qf "$TEST_TMP/twenty.sql") || fail "20 statements"
assert_eq 20 "$(grep -c '^1$' <<<"$out")" "20 results"

delta_x() { echo $(($(metric pgring_pool_transactions_total "$SERIES") - x0)); }
delta_q() { echo $(($(metric pgring_pool_queries_total "$SERIES") - q0)); }
wait_until 5 eval '(( $(delta_x) >= 20 ))' || fail "transactions moved by $(delta_x), expected 20"
sleep 0.3
assert_eq 20 "$(delta_x)" "pgring_pool_transactions_total delta after 20 transactions"
assert_eq 20 "$(delta_q)" "pgring_pool_queries_total delta after 20 queries"

# One explicit transaction of four statements: one more transaction.
x0=$(metric pgring_pool_transactions_total "$SERIES")
printf 'BEGIN;\nSELECT 1;\nSELECT 2;\nCOMMIT;\n' >"$TEST_TMP/xact.sql"
qf "$TEST_TMP/xact.sql" >/dev/null || fail "explicit transaction"
wait_until 5 eval '(( $(delta_x) >= 1 ))' || fail "explicit transaction not counted"
sleep 0.3
assert_eq 1 "$(delta_x)" "transactions after BEGIN; SELECT; SELECT; COMMIT"

# Latency histograms: a statement of about 0.3 s lands in the (0.25 s, 0.5 s]
# bucket; +Inf and _count equal pgring_pool_queries_total; /stats has the
# percentiles.
bucket() { metric pgring_pool_query_duration_seconds_bucket "$SERIES,le=\"$1\""; }
before=$(( $(bucket 0.5) - $(bucket 0.25) ))
q "SELECT pg_sleep(0.3)" >/dev/null || fail "pg_sleep"
sleep 0.3
assert_eq $((before + 1)) "$(( $(bucket 0.5) - $(bucket 0.25) ))" "queries in the (0.25 s, 0.5 s] bucket after a 0.3 s one"
assert_eq "$(metric pgring_pool_queries_total "$SERIES")" "$(bucket +Inf)" "the +Inf bucket against pgring_pool_queries_total"
assert_eq "$(metric pgring_pool_queries_total "$SERIES")" "$(metric pgring_pool_query_duration_seconds_count "$SERIES")" \
	"query_duration_seconds_count"
assert_eq "$(metric pgring_pool_transactions_total "$SERIES")" \
	"$(metric pgring_pool_transaction_duration_seconds_count "$SERIES")" "transaction_duration_seconds_count"
metric pgring_pool_wait_duration_seconds_count "$SERIES" >/dev/null || fail "no wait_duration_seconds histogram"
pass "latency histograms: buckets, +Inf and _count agree with the counters"

# /stats: valid JSON.
http_get /stats
printf '%s\n' "$HTTP_BODY" >"$TEST_TMP/stats.json"
assert_eq 200 "$HTTP_STATUS" "/stats status"
if command -v python3 >/dev/null; then
	python3 -m json.tool "$TEST_TMP/stats.json" >/dev/null || fail "/stats is not valid JSON: $(head -c 400 "$TEST_TMP/stats.json")"
	p99=$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print([p for p in d["pools"] if p["database"] == "app" and p["user"] == "app"][0]["latency"]["query"]["p99_us"])' "$TEST_TMP/stats.json") ||
		fail "/stats has no latency.query.p99_us for app/app"
	assert_eq 500000 "$p99" "/stats p99 of app/app's statements (one of ~25 took 0.3 s)"
elif command -v node >/dev/null; then
	node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$TEST_TMP/stats.json" ||
		fail "/stats is not valid JSON"
else
	skip "neither python3 nor node to check JSON"
fi
http_get /no-such-page
assert_eq 404 "$HTTP_STATUS" "unknown path"

stop_pgring || fail "pgring did not stop"
assert_eq 0 "$POOLER_STATUS" "pgring exit status"
