#!/usr/bin/env bash
# t_patroni: pgring in front of a three-node Patroni cluster (etcd, loopback),
# with no role hints in its configuration: it finds the leader itself. Killing
# the leader (its Patroni and its PostgreSQL) makes Patroni elect a new one;
# pgring then routes writes to it within a few health-check intervals, a write
# sent during the election waits and lands there, and idle clients opened before
# the kill still work.
. "$(dirname "$0")/lib.sh"
pgring_only "clusters and routing are pgring's"
command -v patroni >/dev/null && command -v etcd >/dev/null || skip "patroni or etcd not installed"

chmod o+x "$TEST_TMP"
PC=$TEST_TMP/patroni
on_exit "$ROOT/tools/patroni-cluster stop $PC"
out=$(timeout 120 "$ROOT/tools/patroni-cluster" start "$PC") || fail "Patroni cluster did not start: $out"
eval "$(tr ' ' '\n' <<<"$out" | grep -E '^(PORT[123]|LEADER_PORT)=[0-9]+$')"
note "Patroni nodes on $PORT1 $PORT2 $PORT3, leader $LEADER_PORT"

start_pgring "
[databases]
app = cluster=pat dbname=app
[cluster.pat]
n1 = host=127.0.0.1 port=$PORT1
n2 = host=127.0.0.1 port=$PORT2
n3 = host=127.0.0.1 port=$PORT3
[pgring]
auth_type = trust
pool_mode = transaction
health_check_interval = 0.5
health_check_failures = 1
failover_timeout = 60
server_login_retry = 0.5
"
pq() { Q_USER=postgres Q_PASSWORD= q "$@"; }
wait_until 10 eval '[[ $(metric pgring_node_primary) == 1 ]]' || fail "pgring found no primary"
pq "CREATE TABLE pt (a int)" >/dev/null || fail "create table"
assert_eq "$LEADER_PORT" "$(pq "INSERT INTO pt VALUES (1) RETURNING inet_server_port()")" "writes go to the Patroni leader"

for ((i = 0; i < 5; i++)); do
	psql_open "idle$i" "$(conninfo app postgres "")"
	psql_send "idle$i" "SELECT 'hello$i';"
	psql_sync "idle$i" || fail "idle$i: $(psql_err "idle$i")"
done

t0=$(now_ms)
old=$("$ROOT/tools/patroni-cluster" kill-leader "$PC") || fail "kill-leader"
note "leader on $old killed"
Q_TIMEOUT=90 pq "INSERT INTO pt VALUES (2) RETURNING inet_server_port()" >"$TEST_TMP/waiting.out" 2>"$TEST_TMP/waiting.err" &
waiter=$!
wait_until 60 eval '[[ -n $("$ROOT/tools/patroni-cluster" leader "$PC") ]]' || fail "Patroni elected no new leader"
new=$("$ROOT/tools/patroni-cluster" leader "$PC")
t_patroni=$(($(now_ms) - t0))
assert_ne "$old" "$new" "Patroni elected another node"
wait_until 5 eval '[[ $(pq "SELECT inet_server_port()" 2>/dev/null) != "" && $(pq "/*!pgring target=primary*/ SELECT inet_server_port()") == "$new" ]]' ||
	fail "pgring does not route to the new leader $new within 5 s"
note "Patroni's new leader after $t_patroni ms; pgring routed to it $(($(now_ms) - t0 - t_patroni)) ms later"
wait "$waiter" || fail "the write sent during the election failed: $(cat "$TEST_TMP/waiting.err")"
assert_eq "$new" "$(cat "$TEST_TMP/waiting.out")" "the write sent during the election lands on the new leader"
assert_eq "$new" "$(pq "INSERT INTO pt VALUES (3) RETURNING inet_server_port()")" "new writes go to the new leader"
for ((i = 0; i < 5; i++)); do
	psql_send "idle$i" "INSERT INTO pt VALUES ($((10 + i))) RETURNING 'w$i', inet_server_port();"
	psql_sync "idle$i" 20 || fail "idle$i lost: $(psql_err "idle$i")"
	assert_contains "$(psql_out "idle$i")" "w$i|$new" "idle$i writes to the new leader"
done
pass "pgring follows Patroni's failover; idle clients stay"
