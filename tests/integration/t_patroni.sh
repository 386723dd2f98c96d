#!/usr/bin/env bash
# t_patroni: pgring in front of a three-node Patroni cluster (tools/patroni-cluster:
# etcd and three PostgreSQL 15 on loopback), with no role hints in its
# configuration: it finds the leader and the replicas itself. Writes go to the
# leader. Killing the leader (its Patroni and its PostgreSQL) makes Patroni elect
# another node after its ttl; pgring then routes writes to the new leader within
# a few health-check intervals, a write sent during the election waits and lands
# there, and idle clients connected before the kill still work.
# shellcheck disable=SC1091,SC2016 # lib.sh is sourced at run time; eval '...' is lib.sh's idiom
. "$(dirname "$0")/lib.sh"
pgring_only "clusters, health checks and routing are pgring's"
command -v patroni >/dev/null || skip "patroni is not installed (tools/setup)"
command -v etcd >/dev/null || skip "etcd is not installed (tools/setup)"

PCL=$ROOT/tools/patroni-cluster
chmod o+x "$TEST_TMP"
PC=$TEST_TMP/patroni
on_exit "$PCL stop $PC"
t0=$(now_ms)
out=$(timeout 150 "$PCL" start "$PC" 2>&1) || fail "the Patroni cluster did not start: $out"
PORT1='' PORT2='' PORT3='' LEADER_PORT=''
for kv in $out; do
	case $kv in PORT[123]=[0-9]* | LEADER_PORT=[0-9]*) declare "$kv" ;; esac
done
[[ -n $PORT1 && -n $PORT2 && -n $PORT3 && -n $LEADER_PORT ]] || fail "patroni-cluster start printed no ports: $out"
note "Patroni nodes n1 $PORT1, n2 $PORT2, n3 $PORT3; leader $LEADER_PORT; up in $(($(now_ms) - t0)) ms"
node_of() { # PORT -> n1|n2|n3
	case $1 in "$PORT1") echo n1 ;; "$PORT2") echo n2 ;; "$PORT3") echo n3 ;; *) echo "?" ;; esac
}

start_pgring "
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 4
health_check_user = postgres
health_check_dbname = postgres
health_check_interval = 0.5
health_check_timeout = 2
health_check_failures = 1
failover_timeout = 60
server_login_retry = 1

[cluster.pat]
n1 = host=127.0.0.1 port=$PORT1
n2 = host=127.0.0.1 port=$PORT2
n3 = host=127.0.0.1 port=$PORT3

[databases]
app = cluster=pat dbname=app
app_split = cluster=pat dbname=app read_write_split=on
" -v
nm() { metric "$1" "cluster=\"pat\",node=\"$2\""; }   # nm METRIC NODE
leader=$(node_of "$LEADER_PORT")
wait_until 15 eval '[[ $(metric pgring_node_up cluster=\"pat\") == 3 && $(nm pgring_node_primary $leader) == 1 &&
	$(metric pgring_node_primary cluster=\"pat\") == 1 ]]' ||
	fail "pgring does not see three nodes up with $leader the primary: $(http_get /metrics; grep -E '^pgring_node_(up|primary)' <<<"$HTTP_BODY" | tr '\n' ' ')"
pass "pgring finds Patroni's leader ($leader) with no role hints"

q "CREATE TABLE pt (a int)" >/dev/null || fail "create table: $(q "CREATE TABLE pt (a int)" 2>&1)"
assert_eq "$LEADER_PORT" "$(q "INSERT INTO pt VALUES (1) RETURNING inet_server_port()")" "a write goes to the Patroni leader"
got=$(Q_DB=app_split q "SELECT inet_server_port()") || fail "a read through the split"
[[ $got == "$PORT1" || $got == "$PORT2" || $got == "$PORT3" ]] || fail "a read through the split ran on port [$got]"
assert_ne "$LEADER_PORT" "$got" "a read through the split goes to a replica Patroni made"
pass "writes go to the leader, split reads to a replica"

for ((i = 0; i < 5; i++)); do
	psql_open "idle$i" "$(conninfo)"
	say_ok "idle$i" "SET application_name = 'idle$i';"
done
closed0=$(grep -c 'closing client:' "$POOLER_LOG")

t0=$(now_ms)
old=$(timeout 30 "$PCL" kill-leader "$PC") || fail "kill-leader"
note "leader $old ($(node_of "$old")) killed in $(($(now_ms) - t0)) ms"
Q_TIMEOUT=90 q "INSERT INTO pt VALUES (2) RETURNING inet_server_port()" >"$TEST_TMP/waiting.out" 2>"$TEST_TMP/waiting.err" &
waiter=$!
track_pid "$waiter"
wait_until 10 eval '[[ $(nm pgring_node_up $(node_of $old)) == 0 ]]' || fail "pgring does not see the killed leader down"
note "pgring sees $(node_of "$old") down after $(($(now_ms) - t0)) ms"
wait_until 60 eval '[[ -n $("$PCL" leader "$PC") && $("$PCL" leader "$PC") != "$old" ]]' ||
	fail "Patroni elected no new leader within 60 s: $("$PCL" status "$PC" 2>&1 | tr '\n' ' ')"
new=$("$PCL" leader "$PC")
t_new=$(now_ms)
note "Patroni's new leader $new ($(node_of "$new")) takes writes $((t_new - t0)) ms after the kill"
# a few health-check intervals (0.5 s each)
wait_until 3 eval '[[ $(nm pgring_node_primary $(node_of $new)) == 1 ]]' ||
	fail "pgring does not see the new leader $(node_of "$new") as the primary within 3 s: $(http_get /metrics; grep -E '^pgring_node_(up|primary)' <<<"$HTTP_BODY" | tr '\n' ' ')"
note "pgring routes to the new leader $(($(now_ms) - t_new)) ms after Patroni promoted it"
assert_eq "$new" "$(Q_TIMEOUT=10 q "INSERT INTO pt VALUES (3) RETURNING inet_server_port()")" "a new write goes to the new leader"
wait_exit "$waiter" 30 || fail "the write sent during the election still waits"
assert_eq 0 "$WAIT_STATUS" "status of the write sent during the election ($(cat "$TEST_TMP/waiting.err"))"
assert_eq "$new" "$(cat "$TEST_TMP/waiting.out")" "the write sent during the election lands on the new leader"
pass "writes follow Patroni's failover"

for ((i = 0; i < 5; i++)); do
	say_send "idle$i" "INSERT INTO pt VALUES ($((10 + i))) RETURNING 'w$i', inet_server_port(), current_setting('application_name');"
done
for ((i = 0; i < 5; i++)); do
	say_wait "idle$i" 30
	[[ -z $SAY_ERR ]] || fail "idle$i: error after the failover: $SAY_ERR"
	assert_contains "$SAY_OUT" "w$i|$new|idle$i" "idle$i writes to the new leader, its session intact"
	alive "$(psql_pid "idle$i")" || fail "idle$i's psql exited (disconnected)"
done
assert_eq 0 $(($(grep -c 'closing client:' "$POOLER_LOG") - closed0)) "clients pgring closed during the failover"
for ((i = 0; i < 5; i++)); do psql_close "idle$i"; done
stop_pgring || fail "pgring did not stop"
pass "idle clients connected before the kill still work"
