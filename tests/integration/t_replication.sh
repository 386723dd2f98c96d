#!/usr/bin/env bash
# t_replication: a cluster of three PostgreSQL 15 instances on loopback (a
# primary and two streaming replicas made with pg_basebackup), behind pgring:
#  - writes, and whole transaction blocks, land on the primary;
#  - reads spread over the replicas by weight (1:3), never the primary; the
#    startup target, the hint comment and prepared statements route too;
#  - a replica whose replay is paused past max_lag stops getting reads, and gets
#    them again once it catches up;
#  - the primary stops and a replica is promoted: twenty idle clients stay
#    connected and write to the new primary, a client mid-transaction gets an
#    error and carries on after ROLLBACK, a write started with no primary waits
#    and lands on the new one;
#  - a fast restart under pgbench in transaction mode costs at most the
#    transactions in flight, and pgbench carries on.
. "$(dirname "$0")/lib.sh"
pgring_only "clusters and routing are pgring's"

chmod o+x "$TEST_TMP"
CL=$TEST_TMP/cluster
mkdir -p "$CL"
chmod 755 "$CL"
for n in p1 r2 r3; do on_exit "$ROOT/tools/pgtmp stop $CL/$n"; done
P1=$(PGTMP_PGBENCH_SCALE=1 "$ROOT/tools/pgtmp" start "$CL/p1" | sed -n 's/^PORT=//p') || fail "primary did not start"
P2=$("$ROOT/tools/pgtmp" replica "$CL/r2" "$CL/p1" | sed -n 's/^PORT=//p') || fail "replica r2"
P3=$("$ROOT/tools/pgtmp" replica "$CL/r3" "$CL/p1" | sed -n 's/^PORT=//p') || fail "replica r3"
note "primary $P1, replicas $P2 (weight 1) and $P3 (weight 3)"
on() { psql -X -Atq -h 127.0.0.1 -p "$1" -U postgres -d app -c "$2"; }
on "$P1" "CREATE TABLE rt (a int, pad text); GRANT ALL ON rt TO app" || fail "setup"

start_pgring "
[databases]
app = cluster=main dbname=app read_write_split=on
[cluster.main]
pg1 = host=127.0.0.1 port=$P1 role=primary
pg2 = host=127.0.0.1 port=$P2 weight=1 max_lag=1MB
pg3 = host=127.0.0.1 port=$P3 weight=3 max_lag=1MB
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 4
health_check_interval = 0.3
health_check_failures = 1
failover_timeout = 30
server_login_retry = 0.5
"
wait_until 10 eval '[[ $(metric pgring_node_checks_total node=\"pg3\") -ge 1 && $(metric pgring_node_up) == 3 ]]' ||
	fail "health checks did not see three nodes up"
assert_eq 1 "$(metric pgring_node_primary 'node="pg1"')" "pg1 is the primary"

# ---- writes go to the primary
assert_eq "$P1" "$(q "INSERT INTO rt VALUES (1) RETURNING inet_server_port()")" "an INSERT goes to the primary"
out=$(timeout 20 psql -X -Atq -v ON_ERROR_STOP=1 "$(conninfo)" -c "BEGIN" -c "SELECT inet_server_port()" \
	-c "UPDATE rt SET a = 2" -c "COMMIT") || fail "transaction block"
assert_eq "$P1" "$out" "a SELECT inside a transaction block goes where the block is: the primary"
pass "writes land on the primary"

# ---- reads spread by weight
for ((i = 0; i < 300; i++)); do echo "SELECT inet_server_port();"; done >"$TEST_TMP/reads.sql"
reads() { timeout 60 psql -X -Atq -v ON_ERROR_STOP=1 "$(conninfo "${1:-app}")" -f "$TEST_TMP/reads.sql"; }
reads >"$TEST_TMP/reads.out" || fail "reads"
n1=$(grep -cx "$P1" "$TEST_TMP/reads.out") n2=$(grep -cx "$P2" "$TEST_TMP/reads.out") n3=$(grep -cx "$P3" "$TEST_TMP/reads.out")
note "300 reads: primary $n1, pg2 $n2, pg3 $n3"
assert_eq 0 "$n1" "no read goes to the primary"
assert_num_cmp "$n2" -ge 20 "pg2 (weight 1) gets reads"
assert_num_cmp "$n3" -ge 180 "pg3 (weight 3) gets about three times as many"
assert_num_cmp "$n3" -le 280 "but not all of them"
assert_num_cmp "$(metric pgring_node_transactions_total 'node="pg3"')" -ge "$n3" "routed transactions are counted per node"
reads "app@main" >"$TEST_TMP/reads2.out" || fail "reads through app@main"
assert_eq 0 "$(grep -cx "$P1" "$TEST_TMP/reads2.out")" "db@cluster routes the same way"
REPLICA_OPT="options='-c pgring.target=replica'"
got=$(Q_EXTRA=$REPLICA_OPT q "SELECT inet_server_port()")
[[ $got == "$P2" || $got == "$P3" ]] || fail "pgring.target=replica went to $got"
err=$(Q_EXTRA=$REPLICA_OPT q "INSERT INTO rt VALUES (3)" 2>&1) && fail "a write with target=replica succeeded"
assert_contains "$err" "read-only transaction" "target=replica sends writes to a replica too (where they fail)"
assert_eq "$P1" "$(q "/*!pgring target=primary*/ SELECT inet_server_port()")" "a hint sends a read to the primary"
got=$(q $'--!pgring target=replica\nSELECT inet_server_port()')
[[ $got == "$P2" || $got == "$P3" ]] || fail "the line hint sent a read to $got"
before=$(($(metric pgring_node_transactions_total 'node="pg2"') + $(metric pgring_node_transactions_total 'node="pg3"')))
timeout 60 pgbench -n -S -M prepared -c 2 -j 2 -t 100 "$(conninfo)" >"$TEST_TMP/pgbench-ro.out" 2>&1 ||
	fail "pgbench -M prepared through the split: $(tail -5 "$TEST_TMP/pgbench-ro.out")"
after=$(($(metric pgring_node_transactions_total 'node="pg2"') + $(metric pgring_node_transactions_total 'node="pg3"')))
assert_num_cmp $((after - before)) -ge 200 "prepared read-only statements (Bind first) go to replicas"
pass "reads spread over replicas by weight"

# ---- a lagging replica stops getting reads
on "$P3" "SELECT pg_wal_replay_pause()" >/dev/null || fail "pause replay"
q "INSERT INTO rt SELECT g, repeat('x', 1000) FROM generate_series(1, 4000) g" >/dev/null || fail "bulk insert"
wait_until 10 eval '[[ $(metric pgring_node_lagging node=\"pg3\") == 1 ]]' || fail "pg3 not seen lagging"
assert_num_cmp "$(metric pgring_node_lag_bytes 'node="pg3"')" -gt 1048576 "pg3's lag is past max_lag"
reads >"$TEST_TMP/reads3.out" || fail "reads while pg3 lags"
assert_eq 0 "$(grep -cx "$P3" "$TEST_TMP/reads3.out")" "a lagging replica gets no reads"
assert_eq 300 "$(grep -cx "$P2" "$TEST_TMP/reads3.out")" "the other replica takes them all"
on "$P3" "SELECT pg_wal_replay_resume()" >/dev/null
wait_until 10 eval '[[ $(metric pgring_node_lagging node=\"pg3\") == 0 ]]' || fail "pg3 did not catch up"
reads >"$TEST_TMP/reads4.out" || fail "reads after pg3 caught up"
assert_num_cmp "$(grep -cx "$P3" "$TEST_TMP/reads4.out")" -gt 0 "pg3 gets reads again"
pass "a replica past max_lag stops getting reads"

# ---- failover: stop the primary, promote pg2
for ((i = 0; i < 20; i++)); do
	psql_open "idle$i" "$(conninfo)"
	psql_send "idle$i" "SET application_name = 'idle$i';"
	psql_sync "idle$i" || fail "idle$i: $(psql_err "idle$i")"
done
psql_open mid "$(conninfo)"
psql_send mid "BEGIN; INSERT INTO rt VALUES (10);"
psql_sync mid || fail "mid: $(psql_err mid)"
logins=$(metric pgring_pool_client_logins_total)
"$ROOT/tools/pgtmp" kill "$CL/p1"
note "primary stopped"
t0=$(now_ms)
q "INSERT INTO rt VALUES (11) RETURNING inet_server_port()" >"$TEST_TMP/waiting.out" 2>"$TEST_TMP/waiting.err" &
waiter=$!
wait_until 10 eval '[[ $(metric pgring_node_up node=\"pg1\") == 0 ]]' || fail "pg1 not seen down"
sleep 1
alive "$waiter" || fail "the write with no primary did not wait: $(cat "$TEST_TMP/waiting.out" "$TEST_TMP/waiting.err")"
"$ROOT/tools/pgtmp" promote "$CL/r2" || fail "promote"
note "pg2 promoted after $(($(now_ms) - t0)) ms"
wait "$waiter" || fail "the waiting write failed: $(cat "$TEST_TMP/waiting.err")"
assert_eq "$P2" "$(cat "$TEST_TMP/waiting.out")" "the write that waited lands on the new primary"
wait_until 10 eval '[[ $(metric pgring_node_primary node=\"pg2\") == 1 ]]' || fail "pg2 not seen as primary"
psql_send mid "SELECT 'mid-after';"
psql_send mid "ROLLBACK;"
psql_send mid "INSERT INTO rt VALUES (12) RETURNING 'mid-insert', inet_server_port();"
psql_sync mid || fail "mid after failover: $(psql_err mid)"
assert_match "$(psql_err mid)" "terminat|connection|server" "the client mid-transaction is told its transaction is gone"
assert_not_contains "$(psql_out mid)" "mid-after" "its statement in the lost block did not run"
assert_contains "$(psql_out mid)" "mid-insert|$P2" "after ROLLBACK it writes to the new primary"
for ((i = 0; i < 20; i++)); do
	psql_send "idle$i" "INSERT INTO rt VALUES ($((100 + i))) RETURNING 'w$i', inet_server_port(), current_setting('application_name');"
done
for ((i = 0; i < 20; i++)); do
	psql_sync "idle$i" || fail "idle$i lost after failover: $(psql_err "idle$i")"
	assert_contains "$(psql_out "idle$i")" "w$i|$P2|idle$i" "idle$i writes to the new primary with its session intact"
	assert_eq "" "$(psql_err "idle$i")" "idle$i saw no error"
done
assert_eq $((logins + 1)) "$(metric pgring_pool_client_logins_total)" "no client had to log in again (one login: the write that waited)"
for ((i = 0; i < 20; i++)); do alive "$(psql_pid "idle$i")" || fail "idle$i's psql exited"; done
pass "failover: writes move to the promoted replica, zero idle clients dropped"
stop_pgring

# ---- fast restart under pgbench (transaction mode, more clients than servers)
start_pgring "
[databases]
app = host=127.0.0.1 port=$P2 dbname=app pool_size=4
[pgring]
auth_type = md5
pool_mode = transaction
server_login_retry = 0.5
"
( sleep 3; "$ROOT/tools/pgtmp" restart "$CL/r2" && note "restarted at $(date +%T.%N)" ) &
restarter=$!
timeout 60 pgbench -n -c 12 -j 2 -T 8 -P 1 -M simple "$(conninfo)" >"$TEST_TMP/pgbench.out" 2>&1
st=$?
wait "$restarter" || fail "restart failed"
aborted=$(grep -c "aborted in command" "$TEST_TMP/pgbench.out" || true)
done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$TEST_TMP/pgbench.out")
last=$(grep '^progress: [67]\.0 s' "$TEST_TMP/pgbench.out" | tail -1)
note "pgbench status $st, $aborted clients aborted, $done_tx transactions; $last"
[[ -n $done_tx ]] || fail "pgbench printed no result: $(tail -20 "$TEST_TMP/pgbench.out")"
assert_num_cmp "$aborted" -le 4 "the restart cost at most the transactions in flight (4 servers)"
tps=$(sed -n 's/^progress: [67]\.0 s, \([0-9.]*\) tps.*/\1/p' "$TEST_TMP/pgbench.out" | tail -1)
assert_num_cmp "${tps:-0}" -gt 0 "pgbench carried on after the restart"
pass "a fast restart costs at most the in-flight transactions"
