#!/usr/bin/env bash
# t_manyclients: 500 clients at once (tests/integration/manyclients.c) on a transaction-mode
# pool of 5 servers: every client must get its own answers (simple and extended
# queries, and multi-round-trip transactions that stay on one backend), and no
# more than 5 backends may serve them, at once (sampled from pg_stat_activity) or
# over the whole run (servers move between shards without reconnecting).
. "$(dirname "$0")/lib.sh"

N=${MANYCLIENTS_N:-500}
POOL=5
[[ -x $HELPERS/manyclients ]] || fail "helper $HELPERS/manyclients not built"
(( $(ulimit -n) >= N + 100 )) || ulimit -n $((N + 200)) 2>/dev/null || skip "open files limit $(ulimit -n) too low"

start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = $POOL
max_client_conn = 600
"

# sample the number of backends while the clients run
( max=0; while :; do n=$(pg_backends app 2>/dev/null); [[ $n =~ ^[0-9]+$ ]] && (( n > max )) && { max=$n; echo $max > "$TEST_TMP/maxbackends"; }; sleep 0.05; done ) &
sampler=$!
track_pid $sampler
out=$("$HELPERS/manyclients" "$(conninfo)" "$N" 6 1000 120 2>"$TEST_TMP/manyclients.err")
rc=$?
kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
note "$out"
sed 's/^/# /' "$TEST_TMP/manyclients.err" | head -20
assert_eq 0 "$rc" "manyclients failed"
assert_contains "$out" "completed=$N " "every client completed"
assert_contains "$out" "max_open=$N " "all $N clients were connected at once"
assert_contains "$out" "wrong=0 errors=0 connect_errors=0" "no wrong answer, no error"
pids=$(sed -n 's/.*distinct_pids=\([0-9]*\).*/\1/p' <<<"$out")
maxb=$(cat "$TEST_TMP/maxbackends" 2>/dev/null || echo 0)
note "distinct backends over the run: $pids, most at once: $maxb"
assert_num_cmp "$maxb" -gt 0 "backends were sampled"
assert_num_cmp "$maxb" -le "$POOL" "backends at once"
# idle servers move between shards with their connection, so no backend is
# replaced either (PgBouncer, one process, never replaces them)
assert_num_cmp "$pids" -le "$POOL" "distinct backends over the run"

# The pool never grew past its size, and the pooler is still fine afterwards.
assert_num_cmp "$(pg_backends app)" -le "$POOL" "server connections to PostgreSQL"
v=$(q "SELECT 'still-alive'") || fail "query after the storm"
assert_eq still-alive "$v" "query after the storm"
stop_pgring || fail "$TARGET did not stop"
pass "$N clients, $pids backends"
