#!/usr/bin/env bash
# t_admission (pgring only): admission control (issue 15 points 5 and 7), two
# shards, transaction pooling. Tenants are [applications] lines (the client's
# application_name), a [users] line and a [databases] entry:
#  - max_queries_per_second = 100: pgbench of that application gets 100 tps
#    within 10%, while another application at the same time is not slowed
#    to it (far above) and its throttled and refused counters stay 0;
#  - a reload (SIGHUP) to 50: it gets 50 within 10%, with the simple and the
#    extended protocol (Parse/Bind/Execute/Sync counted as one query);
#  - max_rows_per_second = 2000 (rows charged from CommandComplete): 100-row
#    queries come at 20 a second, 2000 rows/s within 10%;
#  - throttle_mode = refuse: the query over the limit fails with 53400 and a
#    message naming the limit and the tenant; the session goes on; the same
#    with the extended protocol (pqtry -x), whose next Sync-ended batch works;
#  - the bounded queue: with the tenant's one transaction busy, 8 newcomers:
#    past throttle_queue_size (2 a shard) refused at once, the ones queued
#    refused after throttle_wait_timeout (1 s), each 53400 saying which;
#  - max_transactions = 2 on a user: 4 clients' 1 s sleeps never run more
#    than 2 at once (pg_stat_activity) and take 2 s in all;
#  - session pooling (each client keeps its server): 40 qps is 40 tps, one
#    transaction at a time holds a second client's BEGIN until the first
#    COMMITs, refuse mode answers 53400 and the session goes on, on the same
#    backend, simple and extended;
#  - fairness: a heavy application (8 clients) and a light one (2) on a pool
#    of 1 server: with one shard the light one gets close to half the
#    transactions, not its 2/10 of a first-come-first-served queue; over two
#    shards it is not starved;
#  - the metrics: throttled totals by tenant and reason, wait seconds.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "admission control is pgring's own"

CONF="
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
fair = host=@PGHOST@ port=@PGPORT@ dbname=app pool_size=1
sess = host=@PGHOST@ port=@PGPORT@ dbname=app pool_mode=session
[users]
md5user = max_transactions=2
[applications]
throttled = max_queries_per_second=@QPS@
free = throttle_weight=1
rowsy = max_rows_per_second=2000
refuser = max_queries_per_second=1 throttle_mode=refuse
xrefuser = max_queries_per_second=1 throttle_mode=refuse
queued = max_transactions=1 throttle_queue_size=2 throttle_wait_timeout=1
sessq = max_queries_per_second=40
sesstx = max_transactions=1
heavy = throttle_weight=1
light = throttle_weight=1
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 8
shards = 2
"
start_pgring "${CONF//@QPS@/100}"

T=5
# bench APP SCRIPT CLIENTS [DB [USER PASSWORD]]: pgbench for T seconds; TPS and DONE set
bench_out() {
	local app=$1 script=$2 clients=$3 db=${4:-app} user=${5:-app} pw=${6:-app}
	printf '%s\n' "$script" >"$TEST_TMP/$app.sql"
	PGAPPNAME=$app PGPASSWORD=$pw timeout $((T + 60)) pgbench -n -M "${PROTO:-simple}" -c "$clients" -j 2 -T "$T" \
		-f "$TEST_TMP/$app.sql" -h 127.0.0.1 -p "$PORT" -U "$user" "$db" >"$TEST_TMP/$app.out" 2>&1
	echo $? >"$TEST_TMP/$app.rc"
}
bench_read() { # APP: TPS, DONE
	local out
	out=$(cat "$TEST_TMP/$1.out")
	[[ $(cat "$TEST_TMP/$1.rc") == 0 ]] || { echo "$out" | tail -5 | sed 's/^/#   /'; fail "pgbench $1 failed"; }
	assert_not_contains "$out" "aborted" "pgbench $1: aborted clients"
	TPS=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | tail -1)
	DONE=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
}
# concurrently NAME N POLL_SQL CLIENT_FN: N runs of CLIENT_FN at once (output in
# NAME<i>.out, end time in NAME<i>.end) while POLL_SQL, a count, is read every
# 0.1 s for 1.5 s; MAXSEEN: the largest count, ELAPSED: ms until the last ended
concurrently() {
	local name=$1 n=$2 poll=$3 fn=$4 start c i pids=()
	start=$(now_ms)
	for ((i = 1; i <= n; i++)); do
		("$fn" >"$TEST_TMP/$name$i.out" 2>&1; now_ms >"$TEST_TMP/$name$i.end") &
		pids+=($!)
	done
	MAXSEEN=0
	for _ in $(seq 1 15); do
		c=$(qd "$poll")
		((c > MAXSEEN)) && MAXSEEN=$c
		sleep 0.1
	done
	wait "${pids[@]}"
	ELAPSED=$(($(cat "$TEST_TMP/$name"?.end | sort -n | tail -1) - start))
}
within() { # VALUE TARGET PERCENT MESSAGE
	local lo hi
	lo=$(echo "$2 * (100 - $3) / 100" | bc -l)
	hi=$(echo "$2 * (100 + $3) / 100" | bc -l)
	assert_num_cmp "$1" -ge "$lo" "$4"
	assert_num_cmp "$1" -le "$hi" "$4"
}

# --- 100 qps for "throttled", "free" unaffected at the same time
bench_out throttled "SELECT 1;" 4 &
B1=$!
bench_out free "SELECT 1;" 2 &
B2=$!
wait "$B1" "$B2"
bench_read throttled
within "$TPS" 100 10 "throttled at 100 qps gets 100 tps within 10% (got $TPS)"
THR_TPS=$TPS
bench_read free
# above the limit, not far above it: a loaded CI machine (the other lane
# running) has given two unthrottled pgbench clients as little as 203 tps
assert_num_cmp "$TPS" -gt 150 "free, at the same time, is above the throttled rate (got $TPS)"
FREE_TPS=$TPS
assert_eq 0 "$(metric pgring_admission_throttled_total 'tenant="free"')" "free was never throttled"
assert_eq 0 "$(metric pgring_admission_refused_total 'tenant="free"')" "free was never refused"
assert_num_cmp "$(metric pgring_admission_admitted_total 'tenant="free"')" -ge "$(echo "$FREE_TPS * 4" | bc | cut -d. -f1)" \
	"free's requests went through admission (counted)"
THROTTLED=$(metric pgring_admission_throttled_total 'tenant_kind="application",tenant="throttled",reason="max_queries_per_second"')
assert_num_cmp "$THROTTLED" -gt 100 "throttled's waits are counted by reason ($THROTTLED)"
WAITED=$(metric pgring_admission_wait_seconds_total 'tenant="throttled"')
assert_num_cmp "$WAITED" -gt 1 "throttled's wait time is counted ($WAITED s)"
pass "max_queries_per_second=100: $THR_TPS tps; free at the same time: $FREE_TPS tps, never throttled"

# --- a reload to 50
reload_pgring "${CONF//@QPS@/50}"
sleep 1
bench_out throttled "SELECT 1;" 4
bench_read throttled
within "$TPS" 50 10 "after a reload to 50 qps: 50 tps within 10% (got $TPS)"
pass "SIGHUP: max_queries_per_second 100 -> 50: $TPS tps"
# the extended protocol: Parse starts the transaction, its Execute is the query paid for
PROTO=extended bench_out throttled "SELECT 1;" 4
bench_read throttled
within "$TPS" 50 10 "extended protocol at 50 qps: 50 tps within 10%, each Execute counted once (got $TPS)"
pass "extended protocol at max_queries_per_second=50: $TPS tps"

# --- rows per second: 100 rows a query, 2000 rows/s
bench_out rowsy "SELECT g FROM generate_series(1, 100) g;" 2
bench_read rowsy
ROWS=$(echo "$TPS * 100" | bc -l)
within "$ROWS" 2000 10 "max_rows_per_second=2000: rows/s within 10% (got $ROWS)"
assert_num_cmp "$(metric pgring_admission_throttled_total 'tenant="rowsy",reason="max_rows_per_second"')" -gt 0 \
	"rowsy's waits are counted under max_rows_per_second"
pass "max_rows_per_second=2000: $ROWS rows/s"

# --- refuse mode: 53400 naming the limit; the session goes on
OUT=$(PGAPPNAME=refuser timeout 20 psql -X -At -v VERBOSITY=verbose -c "SELECT 'a'" -c "SELECT 'b'" -c "SELECT 'c'" \
	"$(conninfo app app app)" 2>&1)
assert_match "$OUT" "53400" "the refusal has SQLSTATE 53400: $OUT"
assert_match "$OUT" 'pgring: max_queries_per_second \(1\) of application "refuser" exceeded' "the message names the limit and the tenant"
OUT=$(PGAPPNAME=refuser timeout 20 psql -X -At -c "SELECT 'x'" -c "SELECT 'y'" -c '\! sleep 1.2' -c "SELECT 'after'" \
	"$(conninfo app app app)" 2>&1)
assert_match "$OUT" "max_queries_per_second" "y is refused: $OUT"
assert_contains "$OUT" "after" "a query after the refusal's second has passed goes through, same session: $OUT"
assert_num_cmp "$(metric pgring_admission_refused_total 'tenant="refuser",reason="max_queries_per_second"')" -ge 1 \
	"refusals are counted"
pass "throttle_mode=refuse: 53400 'pgring: max_queries_per_second (1) of application \"refuser\" exceeded', the session goes on"

# the extended protocol: the refused Parse/Bind/Execute up to Sync get one
# ErrorResponse and ReadyForQuery; two seconds later, on the same connection,
# the same two statements: the first goes through again
OUT=$(PGAPPNAME=xrefuser timeout 20 "$HELPERS/pqtry" -x -k -H 2 "$(conninfo app app app)" "SELECT 'x1'" "SELECT 'x2'" 2>&1)
assert_eq "x1
ERROR 53400 pgring: max_queries_per_second (1) of application \"xrefuser\" exceeded
HOLDING
x1
ERROR 53400 pgring: max_queries_per_second (1) of application \"xrefuser\" exceeded" "$OUT" \
	"extended protocol: the second statement refused with 53400, the session in step after it"
pass "throttle_mode=refuse with the extended protocol: 53400 for the batch, the next batches answered in step"

# --- the bounded queue: the tenant's one transaction is busy 3 s; of 8
# newcomers, those past throttle_queue_size (2 per shard) are refused at once,
# those queued after throttle_wait_timeout (1 s)
(PGAPPNAME=queued timeout 30 "$HELPERS/pqtry" "$(conninfo app app app)" "SELECT pg_sleep(3)" >"$TEST_TMP/holder.out" 2>&1
	echo "rc=$?" >>"$TEST_TMP/holder.out") &
HOLDER=$!
sleep 0.5
QP=()
for i in 1 2 3 4 5 6 7 8; do
	(
		t0=$(now_ms)
		PGAPPNAME=queued timeout 30 "$HELPERS/pqtry" "$(conninfo app app app)" "SELECT 'q$i'" >"$TEST_TMP/q$i.out" 2>&1
		echo "$? $(($(now_ms) - t0))" >"$TEST_TMP/q$i.rc"
	) &
	QP+=($!)
done
wait "${QP[@]}"
wait "$HOLDER"
assert_contains "$(cat "$TEST_TMP/holder.out")" "rc=0" "the tenant's running transaction ends well: $(cat "$TEST_TMP/holder.out")"
NQ=0 NW=0 WMIN=999999 WMAX=0
for i in 1 2 3 4 5 6 7 8; do
	out=$(cat "$TEST_TMP/q$i.out")
	read -r rc ms <"$TEST_TMP/q$i.rc"
	assert_eq 3 "$rc" "newcomer $i refused ($out)"
	assert_match "$out" '^ERROR 53400 pgring: max_transactions \(1\) of application "queued" exceeded' "newcomer $i: 53400 naming the limit"
	if [[ $out == *"(throttle_queue_size: 2 requests waiting already)"* ]]; then
		NQ=$((NQ + 1))
	elif [[ $out == *"(waited throttle_wait_timeout, 1 s)"* ]]; then
		NW=$((NW + 1))
		((ms < WMIN)) && WMIN=$ms
		((ms > WMAX)) && WMAX=$ms
	else
		fail "newcomer $i: neither throttle_queue_size nor throttle_wait_timeout: $out"
	fi
done
assert_num_cmp "$NQ" -ge 4 "at most 2 a shard wait: 4 or more of 8 refused at once for throttle_queue_size ($NQ)"
assert_num_cmp "$NW" -ge 1 "some waited in the queue ($NW)"
assert_num_cmp "$NW" -le 4 "no more than 2 a shard waited ($NW)"
assert_num_cmp "$WMIN" -ge 900 "a queued request is refused after throttle_wait_timeout, not before ($WMIN ms)"
assert_num_cmp "$WMAX" -lt 2400 "and not held until the running transaction ended at 3 s ($WMAX ms)"
assert_num_cmp "$(metric pgring_admission_refused_total 'tenant="queued",reason="max_transactions"')" -ge 8 \
	"the 8 refusals are counted under max_transactions"
pass "bounded queue: $NQ refused at once (throttle_queue_size=2 a shard), $NW after ${WMIN}-${WMAX} ms (throttle_wait_timeout=1 s)"

# --- max_transactions = 2 for md5user
md5user_sleep() { PGPASSWORD=md5pass timeout 30 psql -X -Atq -c "SELECT pg_sleep(1)" "$(conninfo app md5user md5pass)"; }
concurrently mt 4 "SELECT count(*) FROM pg_stat_activity WHERE usename = 'md5user' AND query LIKE '%pg_sleep(1)%' AND state = 'active'" \
	md5user_sleep
for i in 1 2 3 4; do assert_eq "" "$(cat "$TEST_TMP/mt$i.out")" "client $i of md5user ran its sleep"; done
assert_num_cmp "$MAXSEEN" -le 2 "at most 2 of md5user's transactions run at once (saw $MAXSEEN)"
assert_num_cmp "$MAXSEEN" -ge 1 "md5user's transactions were seen running"
assert_num_cmp "$ELAPSED" -ge 1900 "four 1 s transactions two at a time take 2 s (took $ELAPSED ms)"
assert_num_cmp "$ELAPSED" -le 6000 "a waiter goes soon after a transaction ends (took $ELAPSED ms)"
pass "max_transactions=2: at most $MAXSEEN at once, $ELAPSED ms for four 1 s transactions"

# --- session pooling: the client keeps its server; its transactions are gated
bench_out sessq "SELECT 1;" 4 sess
bench_read sessq
within "$TPS" 40 10 "session pooling at 40 qps: 40 tps within 10% (got $TPS)"
assert_num_cmp "$(metric pgring_admission_throttled_total 'tenant="sessq",reason="max_queries_per_second"')" -gt 0 \
	"sessq's waits are counted"
pass "session pooling, max_queries_per_second=40: $TPS tps"

# max_transactions=1: the second client's BEGIN waits for the first's COMMIT
# (psql sends BEGIN, the sleep and COMMIT as three statements: the block,
# not a statement, is the transaction)
sesstx_block() { PGAPPNAME=sesstx timeout 30 psql -X -Atq -c "BEGIN" -c "SELECT pg_sleep(1)" -c "COMMIT" "$(conninfo sess app app)"; }
concurrently st 2 "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sesstx' AND state IN ('active', 'idle in transaction')" \
	sesstx_block
for i in 1 2; do assert_eq "" "$(cat "$TEST_TMP/st$i.out")" "session client $i of sesstx ran its block"; done
assert_num_cmp "$MAXSEEN" -le 1 "one sesstx block at a time in session pooling (saw $MAXSEEN)"
assert_num_cmp "$ELAPSED" -ge 1900 "two 1 s blocks one at a time take 2 s (took $ELAPSED ms)"
pass "session pooling, max_transactions=1: $ELAPSED ms for two 1 s blocks"

# refuse mode: the session, and its backend, go on after a refusal
for x in "" -x; do
	sleep 1.2   # refuser's 1 query a second: the last run's refusal took it
	OUT=$(PGAPPNAME=refuser timeout 20 "$HELPERS/pqtry" $x -k -H 2 "$(conninfo sess app app)" \
		"SELECT 'r1', pg_backend_pid() > 0" "SELECT 'r2'" 2>&1)
	assert_eq "r1|t
ERROR 53400 pgring: max_queries_per_second (1) of application \"refuser\" exceeded
HOLDING
r1|t
ERROR 53400 pgring: max_queries_per_second (1) of application \"refuser\" exceeded" "$OUT" \
		"session pooling${x:+, extended protocol}: refused with 53400, the session in step after it"
done
sleep 1.2
PIDS=$(PGAPPNAME=refuser timeout 20 "$HELPERS/pqtry" -k -H 2 "$(conninfo sess app app)" "SELECT pg_backend_pid()" "SELECT 'r2'" 2>&1 |
	grep -E '^[0-9]+$' | sort -u | wc -l)
assert_eq 1 "$PIDS" "session pooling: the same backend before and after a refusal"
pass "session pooling, throttle_mode=refuse: 53400, simple and extended, same backend after"

# --- fairness: heavy (8 clients) and light (2) share a pool of one server
# fair_run: HEAVY, LIGHT (transactions) and SHARE (light's percentage)
fair_run() {
	bench_out heavy "SELECT pg_sleep(0.005);" 8 fair &
	local b1=$!
	bench_out light "SELECT pg_sleep(0.005);" 2 fair &
	local b2=$!
	wait "$b1" "$b2"
	bench_read heavy
	HEAVY=$DONE
	bench_read light
	LIGHT=$DONE
	SHARE=$(echo "100 * $LIGHT / ($LIGHT + $HEAVY)" | bc -l | awk '{ printf "%.1f", $1 }')
}
# Two shards: the weighted pick is each shard's; between shards the one
# server goes first come first served to a shard that has none (it used to
# stay with the shard holding it while that one was busy: a 1-in-7 run gave
# light 2 transactions to heavy's 937), so light gets at least about its
# first-come-first-served share
fair_run
assert_num_cmp "$SHARE" -ge 12 "two shards: the light tenant is not starved (got $SHARE%: light $LIGHT, heavy $HEAVY)"
SHARE2=$SHARE
# One shard: all waiters in one queue, weighted round-robin among tenants
stop_pgring
start_pgring "$(sed 's/^shards = 2$/shards = 1/' <<<"${CONF//@QPS@/50}")"
fair_run
assert_num_cmp "$SHARE" -ge 33 "one shard: the light tenant gets a fair share of one server, not its 20% of a FIFO queue (got $SHARE%: light $LIGHT, heavy $HEAVY)"
pass "fairness: light tenant (2 clients) against heavy (8) on one server: $SHARE% with one shard (weighted round-robin), $SHARE2% over two shards (not starved)"

grep -q "ERROR\|WARNING" "$POOLER_LOG" && note "log: $(grep -c "ERROR\|WARNING" "$POOLER_LOG") warnings/errors"
stop_pgring
