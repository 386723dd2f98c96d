#!/usr/bin/env bash
# t_replication: pgring in front of a primary and two streaming replicas of its
# own (tools/pgtmp start + replica, not the runner's shared cluster):
#  (a) writes (INSERT, UPDATE, SELECT FOR UPDATE, a BEGIN..COMMIT block that
#      starts with a SELECT) land on the primary;
#  (b) with read_write_split, read-only statements spread over the replicas by
#      weight (pg2:pg3 = 1:3), never the primary; target=replica in the
#      database entry, in the startup options and in a hint comment route to a
#      replica, target=primary in a hint to the primary; db@cluster works;
#  (b2) writes pipelined behind a read in one send (simple Query, extended
#      segments, one segment holding both, libpq pipeline mode) land on the
#      primary; a block hinted to a replica keeps its COMMIT there;
#  (b3) so do postgres.js's pipelined writes among reads (one and three
#      connections, simple and named statements);
#  (c) a replica whose replay is paused falls behind past max_lag, is flagged
#      lagging and gets no reads until it catches up;
#  (d) the primary stops and pg2 is promoted: a write sent while there is no
#      primary waits and lands on pg2; the client that was mid-transaction gets
#      an error, ROLLBACK works and its next transaction lands on pg2; twenty
#      idle clients keep their sessions and write to pg2; pgring closed no client;
#  (e) a fast restart of the PostgreSQL under pgbench (transaction pooling, 8
#      clients on 4 servers) costs at most the transactions in flight, and
#      pgbench carries on;
#  (f) host names (nodes, a database entry) are looked up by the control shard
#      and the shards connect to its addresses; a name that does not resolve
#      makes a down node with the lookup error.
# shellcheck disable=SC1091,SC2016 # lib.sh is sourced at run time; eval '...' is lib.sh's idiom
. "$(dirname "$0")/lib.sh"
pgring_only "clusters, health checks and routing are pgring's"

PGTMP=$ROOT/tools/pgtmp
chmod o+x "$TEST_TMP"
CL=$TEST_TMP/cluster
mkdir -p "$CL"
chmod 755 "$CL"
for n in p1 r2 r3; do on_exit "$PGTMP stop $CL/$n"; done
pgtmp_port() { timeout 120 "$PGTMP" "$@" | sed -n 's/^PORT=//p'; }
P1=$(PGTMP_PGBENCH_SCALE=1 pgtmp_port start "$CL/p1")
[[ -n $P1 ]] || fail "the primary did not start"
P2=$(pgtmp_port replica "$CL/r2" "$CL/p1")
[[ -n $P2 ]] || fail "replica r2 did not start"
P3=$(pgtmp_port replica "$CL/r3" "$CL/p1")
[[ -n $P3 ]] || fail "replica r3 did not start"
note "primary pg1 on $P1, replicas pg2 on $P2 (weight 1) and pg3 on $P3 (weight 3)"

# SQL straight to one node, as postgres, database app.
on() { timeout 30 psql -X -Atq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d app -c "$2"; }
on "$P1" "CREATE TABLE rt (a int, pad text); ALTER TABLE rt OWNER TO app" >/dev/null || fail "setup"
has_rt() { [[ $(on "$1" "SELECT to_regclass('rt') IS NOT NULL") == t ]]; }
wait_until 10 eval 'has_rt $P2 && has_rt $P3' || fail "the replicas did not replay the setup"

CLUSTER_CONFIG="
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 4
health_check_user = postgres
health_check_dbname = postgres
health_check_interval = 0.5
health_check_timeout = 2
health_check_failures = 1
failover_timeout = 30
server_login_retry = 1

[cluster.main]
pg1 = host=127.0.0.1 port=$P1 role=primary
pg2 = host=127.0.0.1 port=$P2 weight=1 max_lag=1MB
pg3 = host=127.0.0.1 port=$P3 weight=3 max_lag=1MB

[databases]
app = cluster=main dbname=app read_write_split=on
app_replica = cluster=main dbname=app target=replica
app_primary = cluster=main dbname=app
"
# -v: pgring logs the clients it closes ("closing client: ...")
start_pgring "$CLUSTER_CONFIG" -v

nm() { metric "$1" "cluster=\"main\",node=\"$2\""; }   # nm METRIC NODE
wait_until 15 eval '[[ $(nm pgring_node_up pg1) == 1 && $(nm pgring_node_up pg2) == 1 && $(nm pgring_node_up pg3) == 1 ]]' ||
	fail "pgring does not report three nodes up (pgring_node_up): $(http_get /metrics; grep '^pgring_node_up' <<<"$HTTP_BODY")"
assert_eq 1 "$(nm pgring_node_primary pg1)" "pgring_node_primary for pg1"
assert_eq 0 "$(nm pgring_node_primary pg2)" "pgring_node_primary for pg2"
assert_eq 0 "$(nm pgring_node_primary pg3)" "pgring_node_primary for pg3"
for n in pg1 pg2 pg3; do
	v=$(nm pgring_node_check_seconds "$n") || fail "no pgring_node_check_seconds for $n"
	assert_num_cmp "$v" -gt 0 "pgring_node_check_seconds for $n"
done
http_get /nodes || fail "GET /nodes: status $HTTP_STATUS"
nodes=$(python3 -c 'import json, sys; print(" ".join(sorted(n["node"] for n in json.load(sys.stdin)["nodes"])))' <<<"$HTTP_BODY") ||
	fail "GET /nodes is not the JSON expected: $(printf '%.300s' "$HTTP_BODY")"
assert_eq "pg1 pg2 pg3" "$nodes" "nodes in GET /nodes"
# pgrouter's plain-text dump: backends up/total, shards, clients, connections, a line per node
http_get /stats || fail "GET /stats: status $HTTP_STATUS"
shards=$(python3 -c 'import json, sys; print(len(json.load(sys.stdin)["shards"]))' <<<"$HTTP_BODY")
http_get /status || fail "GET /status: status $HTTP_STATUS"
status=$(sed -E 's/^(127\.0\.0\.1:[0-9]+ replica up) [0-9]+$/\1 LAG/' <<<"$HTTP_BODY" | grep -vE '^(clients|connections) [0-9]+$')
assert_eq "$(printf 'backends 3/3\nshards %s\n127.0.0.1:%s primary up 0\n127.0.0.1:%s replica up LAG\n127.0.0.1:%s replica up LAG' \
	"$shards" "$P1" "$P2" "$P3")" "$status" "GET /status"
grep -qE '^clients [0-9]+$' <<<"$HTTP_BODY" && grep -qE '^connections [0-9]+$' <<<"$HTTP_BODY" ||
	fail "GET /status has no clients/connections lines: $HTTP_BODY"
pass "health checks see the primary and two replicas (/metrics, /nodes, /status)"

# ---- (a) writes land on the primary
assert_eq "$P1" "$(q "INSERT INTO rt VALUES (1) RETURNING inet_server_port()")" "an INSERT goes to the primary"
assert_eq "$P1" "$(q "UPDATE rt SET a = 1 WHERE a = 1 RETURNING inet_server_port()")" "an UPDATE goes to the primary"
assert_eq "$P1" "$(q "SELECT inet_server_port() FROM rt LIMIT 1 FOR UPDATE")" "a SELECT ... FOR UPDATE goes to the primary"
out=$(timeout 20 psql -X -Atq -v ON_ERROR_STOP=1 "$(conninfo)" -c "BEGIN" -c "SELECT inet_server_port()" \
	-c "INSERT INTO rt VALUES (2)" -c "SELECT inet_server_port()" -c "COMMIT" 2>&1) || fail "transaction block: $out"
assert_eq "$P1"$'\n'"$P1" "$out" "a block that starts with a SELECT runs on the primary, SELECT included"
assert_eq 2 "$(on "$P1" "SELECT count(*) FROM rt")" "rows on the primary"
pass "(a) writes land on the primary"

# ---- (b) reads spread over the replicas by weight
# reads N [DB] [EXTRA_CONNINFO]: N read-only statements in one session; one port a line.
reads() {
	local i
	for ((i = 0; i < $1; i++)); do echo "SELECT inet_server_port();"; done |
		timeout 60 psql -X -Atq -v ON_ERROR_STOP=1 "$(conninfo "${2:-app}" app app "${3:-}")"
}
count() { grep -cx "$1" <<<"$2" || true; }   # count PORT TEXT
t1=$(nm pgring_node_transactions_total pg1) t2=$(nm pgring_node_transactions_total pg2) t3=$(nm pgring_node_transactions_total pg3)
all=
for c in 1 2 3; do   # three clients, one after another: 300 sequential reads
	out=$(reads 100) || fail "reads (client $c)"
	assert_eq 100 "$(wc -l <<<"$out")" "answers to client $c's 100 reads"
	all+=$out$'\n'
done
n1=$(count "$P1" "$all") n2=$(count "$P2" "$all") n3=$(count "$P3" "$all")
note "300 reads: pg1 $n1, pg2 $n2, pg3 $n3"
assert_eq 0 "$n1" "reads that went to the primary"
assert_num_cmp "$n2" -gt 0 "reads on pg2 (weight 1)"
assert_num_cmp "$n3" -gt 0 "reads on pg3 (weight 3)"
assert_num_cmp "$n3" -gt "$n2" "pg3 (weight 3) gets more reads than pg2 (weight 1)"
assert_eq 300 $((n2 + n3)) "reads answered by a replica"
d1=$(($(nm pgring_node_transactions_total pg1) - t1))
d2=$(($(nm pgring_node_transactions_total pg2) - t2))
d3=$(($(nm pgring_node_transactions_total pg3) - t3))
note "pgring_node_transactions_total grew by pg1 $d1, pg2 $d2, pg3 $d3"
assert_eq 0 "$d1" "transactions routed to pg1 during the reads"
assert_num_cmp "$d2" -ge "$n2" "transactions routed to pg2 counted"
assert_num_cmp "$d3" -ge "$n3" "transactions routed to pg3 counted"
# per node, the statement-time histogram of the pools that serve it
for n in pg2 pg3; do
	c=$(nm pgring_node_query_duration_seconds_count "$n") || fail "no pgring_node_query_duration_seconds_count for $n"
	inf=$(metric pgring_node_query_duration_seconds_bucket "cluster=\"main\",node=\"$n\",le=\"+Inf\"") ||
		fail "no +Inf bucket for $n"
	assert_eq "$c" "$inf" "$n: the +Inf bucket is the count"
	assert_num_cmp "$c" -ge "$(count "$([[ $n == pg2 ]] && echo "$P2" || echo "$P3")" "$all")" "$n: statements timed at least the reads it answered"
done

is_replica_port() { [[ $1 == "$P2" || $1 == "$P3" ]]; }
# An explicit transaction block goes to the primary under the split, so a block
# that lands on a replica shows that the target, not the split, chose.
block_port() { # DB [EXTRA_CONNINFO]
	timeout 20 psql -X -Atq -v ON_ERROR_STOP=1 "$(conninfo "$1" app app "${2:-}")" \
		-c "BEGIN" -c "SELECT inet_server_port()" -c "COMMIT"
}
got=$(block_port app_replica) || fail "target=replica database entry"
is_replica_port "$got" || fail "a block through the target=replica database entry ran on port $got"
got=$(block_port app_primary "options='-c pgring.target=replica'") || fail "options=-c pgring.target=replica"
is_replica_port "$got" || fail "a block with startup option pgring.target=replica ran on port $got"
assert_eq "$P1" "$(Q_DB=app_primary q "SELECT inet_server_port()")" "a read through the target=primary database entry"
for ((i = 0; i < 10; i++)); do
	got=$(Q_DB=app_primary q $'--!pgring target=replica\nSELECT inet_server_port()') || fail "hint target=replica"
	is_replica_port "$got" || fail "a statement with the hint --!pgring target=replica ran on port $got"
	assert_eq "$P1" "$(q $'--!pgring target=primary\nSELECT inet_server_port()')" "a read with the hint --!pgring target=primary"
done
out=$(reads 20 "app@main") || fail "reads through dbname app@main"
assert_eq 20 "$(wc -l <<<"$out")" "answers through dbname app@main"
assert_eq app "$(Q_DB=app@main q "SELECT current_database()")" "dbname app@main connects to database app"
# Extended protocol (Parse/Bind/Execute, unnamed statements) is split the same way.
r0=$(($(nm pgring_node_transactions_total pg2) + $(nm pgring_node_transactions_total pg3)))
timeout 60 pgbench -n -S -M extended -c 2 -j 2 -t 100 "$(conninfo)" >"$TEST_TMP/pgbench-ro.out" 2>&1 ||
	fail "pgbench -S -M extended through the split: $(tail -5 "$TEST_TMP/pgbench-ro.out")"
r1=$(($(nm pgring_node_transactions_total pg2) + $(nm pgring_node_transactions_total pg3)))
assert_num_cmp $((r1 - r0)) -ge 200 "read-only extended-protocol statements routed to the replicas"
pass "(b) reads spread over the replicas by weight; targets and hints route"

# ---- (b2) writes pipelined behind a read still reach the primary
# One send carries a read and then a write: the read may go to a replica, the
# write must not follow it there (it would fail with 25006). Each value is
# "step:port". The pipeline helper's split scenario writes it all.
out=$(PIPELINE_TIMEOUT=30 "$HELPERS/pipeline" "$(conninfo)" split 2>&1) || fail "pipeline split: $out"
note "pipelined reads and writes: $(grep -oE '[a-z]-[rw][0-9]:[0-9]+' <<<"$out" | xargs)"
! grep -qE '< E|error:' <<<"$out" || fail "an error in the pipelined reads and writes: $(grep -E '< E|error:' <<<"$out")"
for w in q-w1 x-w1 y-w1 z-w1 p-w1; do
	grep -qE "(< D |row: )$w:$P1\$" <<<"$out" || fail "the write $w did not run on the primary: $(grep "$w" <<<"$out")"
done
# reads in their own segment still go to a replica; one that shares its
# implicit transaction (up to Sync) with a write runs with it on the primary
for r in q-r1 x-r1 z-r1; do
	v=$(sed -nE "s/^< D $r:([0-9]+)\$/\1/p" <<<"$out")
	is_replica_port "$v" || fail "the read $r, first in the send, ran on port '$v'"
done
grep -qE "^< D y-r1:$P1\$" <<<"$out" || fail "a read sharing its segment with a write left the primary"
v=$(sed -nE "s/^< D h-r1:([0-9]+)\$/\1/p" <<<"$out")
is_replica_port "$v" || fail "the read inside a block hinted to a replica ran on port '$v'"
grep -q "^< C CommandComplete COMMIT" <<<"$out" || fail "the hinted block's COMMIT did not complete"
grep -q "row: after-split" <<<"$out" || fail "the connection did not work after the split pipeline"
assert_eq 5 "$(on "$P1" "SELECT count(*) FROM rt WHERE a BETWEEN 10 AND 14")" "pipelined writes on the primary"
pass "(b2) writes pipelined behind reads land on the primary"

# ---- (b3) the same through a driver that pipelines: postgres.js
# 600 queries a run, a write between every two reads, fired together over one
# connection (simple and named statements) and over three.
if command -v node >/dev/null 2>&1; then
	npm_modules split.js
	for mode in "MAX=1 PREPARE=0" "MAX=1 PREPARE=1" "MAX=3 PREPARE=1"; do
		# shellcheck disable=SC2086 # $mode is two assignments for env
		out=$(env $mode timeout 60 node "$NPM_DIR/split.js" "$PORT" "$P1" 2>&1) || fail "split.js ($mode): $out"
		note "postgres.js $mode: $out"
		sum=$(python3 -c 'import json, sys; d = json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d["errors"], d["wrong_writes"], d["reads_replica"] + d["reads_primary"])' <<<"$out") ||
			fail "split.js ($mode) printed no summary: $out"
		assert_eq "0 0 400" "$sum" "postgres.js ($mode): errors, writes off the primary, reads answered"
	done
	pass "(b3) postgres.js pipelining reads and writes: every write on the primary, no errors"
else
	note "node is not installed: (b3) was not run (tools/setup installs it)"
fi

# ---- (c) a replica past max_lag gets no reads
on "$P3" "SELECT pg_wal_replay_pause()" >/dev/null || fail "pause replay on pg3"
q "INSERT INTO rt SELECT g, repeat('x', 1000) FROM generate_series(1, 3000) g" >/dev/null || fail "the bulk insert"
lag=$(on "$P3" "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())")
note "pg3 replay paused, $lag bytes behind what it received"
wait_until 10 eval '[[ $(nm pgring_node_lagging pg3) == 1 ]]' ||
	fail "pgring_node_lagging for pg3 is not 1 ($(nm pgring_node_lagging pg3)); lag_bytes $(nm pgring_node_lag_bytes pg3)"
assert_num_cmp "$(nm pgring_node_lag_bytes pg3)" -gt 1048576 "pgring_node_lag_bytes for pg3"
wait_until 10 eval '[[ $(nm pgring_node_lagging pg2) == 0 ]]' || fail "pg2 is still flagged lagging"
assert_eq 1 "$(nm pgring_node_up pg3)" "a lagging replica is still up"
out=$(reads 100) || fail "reads while pg3 lags"
assert_eq 0 "$(count "$P3" "$out")" "reads on the lagging pg3"
assert_eq 100 "$(count "$P2" "$out")" "reads on pg2 while pg3 lags"
on "$P3" "SELECT pg_wal_replay_resume()" >/dev/null || fail "resume replay on pg3"
wait_until 15 eval '[[ $(nm pgring_node_lagging pg3) == 0 ]]' || fail "pg3 still flagged lagging after it caught up"
out=$(reads 100) || fail "reads after pg3 caught up"
assert_num_cmp "$(count "$P3" "$out")" -gt 0 "reads on pg3 once it caught up"
pass "(c) a replica past max_lag gets no reads until it catches up"

# ---- (d) failover: stop the primary, promote pg2
# psql drops a leading "--" comment from its input before sending: the sessions
# fed through a fifo use the block form of the hint.
HINT_PRIMARY='/*!pgring target=primary*/'
for ((i = 0; i < 20; i++)); do
	psql_open "idle$i" "$(conninfo)"
	say_ok "idle$i" "SET application_name = 'idle$i';"
done
psql_open mid "$(conninfo)"
say_ok mid "BEGIN;" "INSERT INTO rt VALUES (-10);" "SELECT 'mid-before', inet_server_port();"
assert_contains "$SAY_OUT" "mid-before|$P1" "the client mid-transaction is on the primary"
tv0=$(metric pgring_topology_version) || fail "no pgring_topology_version"
closed0=$(grep -c 'closing client:' "$POOLER_LOG")

PGTMP_KEEP=1 timeout 60 "$PGTMP" stop "$CL/p1" || fail "stop the primary"
t0=$(now_ms)
note "primary stopped (fast shutdown)"
Q_TIMEOUT=60 q "INSERT INTO rt VALUES (-11) RETURNING inet_server_port()" >"$TEST_TMP/waiting.out" 2>"$TEST_TMP/waiting.err" &
waiter=$!
track_pid "$waiter"
wait_until 10 eval '[[ $(nm pgring_node_up pg1) == 0 ]]' || fail "pgring does not see pg1 down within 10 s"
note "pg1 seen down after $(($(now_ms) - t0)) ms"
sleep 1
alive "$waiter" || fail "the write sent while there is no primary did not wait: $(cat "$TEST_TMP/waiting.out" "$TEST_TMP/waiting.err")"
timeout 60 "$PGTMP" promote "$CL/r2" || fail "promote pg2"
tp=$(now_ms)
note "pg2 promoted $((tp - t0)) ms after the primary stopped"
wait_until 15 eval '[[ $(nm pgring_node_primary pg2) == 1 ]]' || fail "pgring does not see pg2 as the primary"
note "pgring sees pg2 as the primary $(($(now_ms) - tp)) ms after the promotion"
wait_exit "$waiter" 40 || fail "the write sent while there was no primary still waits after the promotion"
assert_eq 0 "$WAIT_STATUS" "status of the write sent while there was no primary ($(cat "$TEST_TMP/waiting.err"))"
assert_eq "$P2" "$(cat "$TEST_TMP/waiting.out")" "the write that waited lands on the new primary"
assert_eq 0 "$(nm pgring_node_primary pg1)" "pgring_node_primary for the stopped pg1"

say_send mid "SELECT 'mid-after';"
say_wait mid 40
assert_contains "$SAY_ERR" "ERROR" "the client mid-transaction gets an error for its next statement"
assert_not_contains "$SAY_OUT" "mid-after" "the statement after the lost transaction did not run"
say mid "ROLLBACK;"
assert_not_contains "$SAY_ERR" "ERROR" "ROLLBACK of the lost transaction"
say_ok mid "INSERT INTO rt VALUES (-12) RETURNING 'mid-insert', inet_server_port();"
assert_contains "$SAY_OUT" "mid-insert|$P2" "the next transaction of that client lands on the new primary"
assert_eq 0 "$(on "$P2" "SELECT count(*) FROM rt WHERE a = -10")" "rows of the lost transaction on pg2"

for ((i = 0; i < 20; i++)); do
	say_send "idle$i" "INSERT INTO rt VALUES ($((100000 + i))) RETURNING 'w$i', inet_server_port(), current_setting('application_name');" \
		"$HINT_PRIMARY SELECT 'h$i', inet_server_port();"
done
for ((i = 0; i < 20; i++)); do
	say_wait "idle$i" 30
	[[ -z $SAY_ERR ]] || fail "idle$i: error after the failover: $SAY_ERR"
	assert_contains "$SAY_OUT" "w$i|$P2|idle$i" "idle$i writes to the new primary, its session intact"
	assert_contains "$SAY_OUT" "h$i|$P2" "idle$i: target=primary hint after the failover"
done
assert_eq 20 "$(on "$P2" "SELECT count(*) FROM rt WHERE a BETWEEN 100000 AND 100019")" "rows the idle clients wrote on pg2"
for ((i = 0; i < 20; i++)); do alive "$(psql_pid "idle$i")" || fail "idle$i's psql exited (disconnected)"; done
alive "$(psql_pid mid)" || fail "the mid-transaction client's psql exited (disconnected)"
assert_eq 0 $(($(grep -c 'closing client:' "$POOLER_LOG") - closed0)) "clients pgring closed during the failover"
wait_until 5 eval '[[ $(metric pgring_topology_version) -gt $tv0 &&
	$(metric pgring_shard_topology_version shard=\"0\") == $(metric pgring_topology_version) ]]' ||
	fail "topology version: was $tv0, now $(metric pgring_topology_version), shard 0 runs $(metric pgring_shard_topology_version 'shard="0"')"
for ((i = 0; i < 20; i++)); do psql_close "idle$i"; done
psql_close mid
stop_pgring || fail "pgring did not stop"
pass "(d) failover: writes wait for and move to the promoted pg2; no idle client dropped"

# ---- (e) fast restart under pgbench, transaction pooling: 8 clients, 4 servers
start_pgring "
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 4
server_login_retry = 1
[databases]
app = host=127.0.0.1 port=$P2 dbname=app
"
RESTART_AT=5
(
	sleep "$RESTART_AT"
	timeout 60 "$PGTMP" restart "$CL/r2" && echo "restarted" >"$TEST_TMP/restart.done"
) &
restarter=$!
track_pid "$restarter"
timeout 90 pgbench -n -c 8 -j 2 -T 15 -P 1 -M simple "$(conninfo)" >"$TEST_TMP/pgbench.out" 2>&1
st=$?
wait_exit "$restarter" 60 || fail "the restart did not finish"
[[ -f $TEST_TMP/restart.done ]] || fail "pgtmp restart failed"
aborted=$(grep -oE 'client [0-9]+ (script [0-9]+ )?aborted' "$TEST_TMP/pgbench.out" | awk '{print $2}' | sort -u | wc -l)
done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$TEST_TMP/pgbench.out")
# transactions after the restart, counted by the server: pgbench prints its
# progress from thread 0 only, so the progress lines stop when clients 0-3
# are the ones the restart aborted (1 run in 70), though the rest carry on
after=$(on "$P2" "SELECT count(*) FROM pgbench_history WHERE mtime > pg_postmaster_start_time()::timestamp")
note "pgbench status $st; clients aborted: $aborted of 8; transactions: ${done_tx:-?}; committed after the restart: ${after:-?}"
[[ -n $done_tx ]] || fail "pgbench printed no result: $(tail -20 "$TEST_TMP/pgbench.out")"
assert_num_cmp "$aborted" -le 4 "pgbench clients aborted by the restart (at most the 4 transactions in flight)"
assert_num_cmp "$after" -gt 0 "pgbench transactions after the restart"
pass "(e) a fast restart costs at most the transactions in flight; pgbench carries on"

# ---- (f) host names are looked up by the control shard, without blocking
# a node named by host name is checked and served, and so is a plain database
# entry, from the addresses the shards get in the topology (no shard resolves
# a name itself); a node whose name does not resolve is down with the
# lookup's error, and does not hold up the other
start_pgring "
[pgring]
auth_type = md5
pool_mode = transaction
health_check_user = postgres
health_check_dbname = postgres
health_check_interval = 0.5
health_check_failures = 1
[cluster.dns]
a = host=localhost port=$P2
b = host=no-such-node.invalid port=5432
[databases]
dnsapp = cluster=dns dbname=app target=any
dnsplain = host=localhost port=$P2 dbname=app
" -v
dn() { metric "$1" "cluster=\"dns\",node=\"$2\""; }
wait_until 15 eval '[[ $(dn pgring_node_up a) == 1 && $(dn pgring_node_up b) == 0 ]]' ||
	fail "node a (localhost) up and b (no-such-node.invalid) down: a $(dn pgring_node_up a), b $(dn pgring_node_up b)"
assert_eq 1 "$(dn pgring_node_primary a)" "node a, found through localhost, is the primary"
http_get /nodes || fail "GET /nodes: status $HTTP_STATUS"
berr=$(python3 -c 'import json, sys; print([n["last_error"] for n in json.load(sys.stdin)["nodes"] if n["node"] == "b"][0])' <<<"$HTTP_BODY")
note "node b: $berr"
assert_contains "$berr" "could not look up host name" "node b's error"
assert_eq "$P2" "$(Q_DB=dnsapp q "SELECT inet_server_port()")" "a query through the cluster with host names"
assert_eq "$P2" "$(Q_DB=dnsplain q "SELECT inet_server_port()")" "a query through a database entry with host=localhost"
# the shards took the control shard's addresses: none resolved a name itself
! grep -q "resolving it here" "$POOLER_LOG" || fail "a shard resolved a host name itself: $(grep "resolving it here" "$POOLER_LOG")"
pass "(f) host names: looked up asynchronously; an unknown one is a down node"
