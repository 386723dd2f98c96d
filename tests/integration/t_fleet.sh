#!/usr/bin/env bash
# t_fleet: three pgring nodes that take their cluster's roles from Patroni's
# keys in etcd and register themselves there (issue 18, points 2 and 3), in
# front of tools/patroni-cluster (etcd and three PostgreSQL 15 under Patroni).
#   1. topology_source = etcd: every node routes writes to Patroni's leader
#      from its leader key, with no role hint in the configuration; a read
#      through a replica target goes to a member Patroni runs as a replica.
#      A configured node that is no member of Patroni's scope (here: a
#      standalone primary, which the health checks alone would take for one)
#      is not routed to, and SHOW NODES says why. The third pgring node names
#      no PostgreSQL node at all: it takes Patroni's members as its nodes
#      (patroni_discover, the default) and routes as the others do. Members
#      that join a scope become nodes, one tagged noloadbalance gets no
#      reads, and one whose key goes is dropped.
#   2. Registration: each node's key lives under a lease; GET /peers on any
#      node lists the three, with their addresses and client counts. A reload
#      (SIGHUP) keeps the registration and the nodes found in etcd.
#   3. The leader killed: Patroni elects another; every node routes writes to
#      it (a write sent during the election waits and lands there), and the
#      log says whose word it was. The third node drops the dead member once
#      its key in etcd expires.
#   4. A node that stops: its key goes with its lease (the others' /peers
#      lists two within the TTL).
#   5. etcd stopped: the nodes keep the last topology and go on checking by
#      themselves (reads still served), pgring_etcd_up is 0, the log says so.
# shellcheck disable=SC1091,SC2016 # lib.sh is sourced at run time; eval '...' is lib.sh's idiom
. "$(dirname "$0")/lib.sh"
pgring_only "a fleet of pgring nodes through etcd is pgring's"
command -v patroni >/dev/null || skip "patroni is not installed (tools/setup)"
command -v etcd >/dev/null || skip "etcd is not installed (tools/setup)"

PCL=$ROOT/tools/patroni-cluster
chmod o+x "$TEST_TMP"
PC=$TEST_TMP/patroni
on_exit "$PCL stop $PC"
out=$(timeout 150 "$PCL" start "$PC" 2>&1) || fail "the Patroni cluster did not start: $out"
PORT1='' PORT2='' PORT3='' LEADER_PORT='' ETCD=''
for kv in $out; do
	case $kv in PORT[123]=[0-9]* | LEADER_PORT=[0-9]* | ETCD=[0-9]*) declare "$kv" ;; esac
done
[[ -n $PORT1 && -n $PORT2 && -n $PORT3 && -n $LEADER_PORT && -n $ETCD ]] || fail "patroni-cluster start printed: $out"
node_of() { case $1 in "$PORT1") echo node1 ;; "$PORT2") echo node2 ;; "$PORT3") echo node3 ;; *) echo "?" ;; esac; }
note "Patroni: node1 $PORT1, node2 $PORT2, node3 $PORT3, leader $(node_of "$LEADER_PORT"); etcd on $ETCD"

declare -a NPID NPORT NCONTROL NLOG
start_node() { # I NODES (lines of [cluster.pat]) [EXTRA (more sections)]
	local i=$1
	start_pgring "
[pgring]
auth_type = md5
admin_users = app
pool_mode = transaction
default_pool_size = 4
shards = 2
health_check_user = postgres
health_check_dbname = postgres
health_check_interval = 0.5
health_check_failures = 1
failover_timeout = 60
server_login_retry = 1
topology_source = etcd
etcd_hosts = 127.0.0.1:$ETCD
etcd_node_ttl = 3
node_name = pgring$i

[cluster.pat]
patroni_scope = pgring-test
$2

${3:-}
[databases]
app = cluster=pat dbname=app
app_replica = cluster=pat dbname=app target=replica
${4:-}
"
	NPID[i]=$POOLER_PID NPORT[i]=$PORT NCONTROL[i]=$CONTROL_PORT NLOG[i]=$POOLER_LOG
}
use_node() { POOLER_PID=${NPID[$1]} PORT=${NPORT[$1]} CONTROL_PORT=${NCONTROL[$1]} POOLER_LOG=${NLOG[$1]}; }
primary_of() { Q_DB=pgbouncer q "SHOW TOPOLOGY" | awk -F'|' '$1 == "pat" {print $3}'; }
peers_count() { http_get /peers >/dev/null && grep -o '"name":' <<<"$HTTP_BODY" | wc -l; }

NODES="node1 = host=127.0.0.1 port=$PORT1
node2 = host=127.0.0.1 port=$PORT2
node3 = host=127.0.0.1 port=$PORT3
stray = host=@PGHOST@ port=@PGPORT@"
start_node 1 "$NODES"
start_node 2 "$NODES"
# node 3: every node from Patroni's members; and a scope of the test's own
# making (syn), whose keys it writes as Patroni would, to change them at will
start_node 3 "" "[cluster.syn]
patroni_scope = syn" "app_syn = cluster=syn dbname=app target=replica"
nodes_from() { Q_DB=pgbouncer q "SHOW NODES" | awk -F'|' '$1 == "pat" {print $2 ":" $4 ":" $5 ":" $15}' | sort | xargs; }

# ---- 1. the leader from etcd
leader=$(node_of "$LEADER_PORT")
for i in 1 2 3; do
	use_node "$i"
	wait_until 15 eval '[[ $(primary_of) == '"$leader"' ]]' || fail "node $i: primary [$(primary_of)], Patroni's leader $leader"
	grep -q "cluster roles from Patroni's keys" "$POOLER_LOG" || fail "node $i: no line about Patroni's keys"
done
use_node 1
q "CREATE TABLE IF NOT EXISTS ft (a int)" >/dev/null || fail "create table: $(q "CREATE TABLE ft (a int)" 2>&1)"
for i in 1 2 3; do
	use_node "$i"
	assert_eq "$LEADER_PORT" "$(q "INSERT INTO ft VALUES ($i) RETURNING inet_server_port()")" "node $i: a write"
	got=$(Q_DB=app_replica q "SELECT inet_server_port()") || fail "node $i: a read on a replica"
	assert_ne "$LEADER_PORT" "$got" "node $i: a read with target=replica"
done
use_node 3
want=$(for p in $PORT1 $PORT2 $PORT3; do
	role=replica
	[[ $p == "$LEADER_PORT" ]] && role=primary
	echo "$(node_of "$p"):$p:$role:patroni"
done | sort | xargs)
wait_until 10 eval '[[ $(nodes_from) == "$want" ]]' || fail "node 3 (no node in its file): SHOW NODES [$(nodes_from)], want [$want]"
grep -q "nodes from Patroni's members the configuration does not name: node" "$POOLER_LOG" || fail "node 3: no log line for the members found"
use_node 1
stray=$(Q_DB=pgbouncer q "SHOW NODES" | awk -F'|' '$2 == "stray" {print $6 "|" $14}')
assert_eq "down|not a member of Patroni's scope in etcd" "$stray" "SHOW NODES: the node Patroni does not know"
pass "three nodes route writes to Patroni's leader ($leader, from its key in etcd) and reads to its replicas, one of them with every PostgreSQL node taken from Patroni's members; a standalone primary configured beside them is not routed to"

# ---- 1b. members come, change and go (scope syn: keys written here as Patroni would)
use_node 3
etcdput() { timeout 5 "$HELPERS/etcdprobe" "127.0.0.1:$ETCD" put "$1" "$2" >/dev/null || fail "etcd put $1"; }
member() { # PORT ROLE [TAGS]
	echo "{\"conn_url\":\"postgres://127.0.0.1:$1/postgres\",\"state\":\"running\",\"role\":\"$2\"${3:+,\"tags\":$3}}"
}
syn_nodes() { Q_DB=pgbouncer q "SHOW NODES" | awk -F'|' '$1 == "syn" {print $2 ":" $5 ":" $15}' | sort | xargs; }
replica_port=$PORT1
[[ $replica_port == "$LEADER_PORT" ]] && replica_port=$PORT2
# the same PostgreSQL cluster as Patroni's (a replica's lag is measured against its primary)
etcdput /service/syn/members/s1 "$(member "$LEADER_PORT" master)"
etcdput /service/syn/leader s1
wait_until 10 eval '[[ $(syn_nodes) == "s1:primary:patroni" ]]' || fail "syn: [$(syn_nodes)] after s1 joined"
etcdput /service/syn/members/s2 "$(member "$replica_port" replica)"
wait_until 10 eval '[[ $(syn_nodes) == "s1:primary:patroni s2:replica:patroni" ]]' || fail "syn: [$(syn_nodes)] after s2 joined"
# SHOW NODES is the control thread's view; the shards take the new topology just after
wait_until 5 eval '[[ $(Q_DB=app_syn q "SELECT inet_server_port()") == '"$replica_port"' ]]' ||
	fail "syn: a read does not go to the replica that joined: $(Q_DB=app_syn q "SELECT inet_server_port()")"
etcdput /service/syn/members/s2 "$(member "$replica_port" replica '{"noloadbalance":true}')"
wait_until 10 eval '[[ $(Q_DB=app_syn q "SELECT inet_server_port()") == '"$LEADER_PORT"' ]]' ||
	fail "syn: a read still goes to s2, tagged noloadbalance"
timeout 5 "$HELPERS/etcdprobe" "127.0.0.1:$ETCD" del /service/syn/members/s2 >/dev/null || fail "etcd del"
wait_until 10 eval '[[ $(syn_nodes) == "s1:primary:patroni" ]]' || fail "syn: [$(syn_nodes)] after s2 left"
wait_until 5 eval '[[ $(Q_DB=app_syn q "SELECT inet_server_port()") == '"$LEADER_PORT"' ]]' ||
	fail "syn: a read after s2 left: $(Q_DB=app_syn q "SELECT inet_server_port()")"
pass "members that join, change and leave a scope: a node when they join, reads to a replica, none once it is tagged noloadbalance, gone when its key goes"

# ---- 2. registration and /peers
for i in 1 2 3; do
	use_node "$i"
	wait_until 10 eval '[[ $(peers_count) == 3 ]]' || fail "node $i: /peers lists $(peers_count)"
	http_get /peers >/dev/null
	for j in 1 2 3; do
		assert_contains "$HTTP_BODY" "\"name\":\"pgring$j\"" "node $i's /peers"
		assert_contains "$HTTP_BODY" "\"address\":\"127.0.0.1:${NPORT[j]}\"" "node $i's /peers"
	done
	assert_contains "$HTTP_BODY" '"etcd":"up"' "node $i's /peers: etcd"
	assert_eq 1 "$(metric pgring_etcd_up)" "node $i: pgring_etcd_up"
	assert_eq 3 "$(metric pgring_fleet_nodes)" "node $i: pgring_fleet_nodes"
done
pass "each node is registered under a lease; /peers on every node lists the three"

# ---- 2b. a reload keeps the fleet's state: the registration, the nodes found in etcd
use_node 3
before=$(nodes_from)
kill -HUP "$POOLER_PID"
wait_until 10 grep -q "configuration reloaded" "$POOLER_LOG" || fail "node 3 did not reload"
assert_eq "$before" "$(nodes_from)" "node 3's nodes from Patroni after a reload"
assert_eq 1 "$(grep -c "this node is registered as" "$POOLER_LOG")" "node 3's registrations after a reload"
assert_eq 3 "$(peers_count)" "/peers after node 3's reload"
assert_eq "$LEADER_PORT" "$(q "INSERT INTO ft VALUES (3) RETURNING inet_server_port()")" "node 3: a write after its reload"
pass "a reload keeps the node's registration and the nodes it took from Patroni's members"

# ---- 3. the leader killed: every node follows Patroni's new leader
t0=$(now_ms)
old=$(timeout 30 "$PCL" kill-leader "$PC") || fail "kill-leader"
use_node 2
Q_TIMEOUT=90 q "INSERT INTO ft VALUES (10) RETURNING inet_server_port()" >"$TEST_TMP/waiting.out" 2>"$TEST_TMP/waiting.err" &
waiter=$!
track_pid "$waiter"
new=''
wait_until 60 eval 'new=$(timeout 5 "$PCL" leader "$PC") && [[ -n $new && $new != '"$old"' ]]' || fail "Patroni elected no new leader"
elected=$(now_ms)
for i in 1 2 3; do
	use_node "$i"
	wait_until 10 eval '[[ $(primary_of) == '"$(node_of "$new")"' ]]' ||
		fail "node $i: primary [$(primary_of)] after the election of $(node_of "$new")"
	assert_eq "$new" "$(q "INSERT INTO ft VALUES (20) RETURNING inet_server_port()")" "node $i: a write after the election"
done
followed=$(($(now_ms) - elected))
wait "$waiter"
assert_eq 0 "$?" "the write sent during the election ($(cat "$TEST_TMP/waiting.err"))"
assert_eq "$new" "$(cat "$TEST_TMP/waiting.out")" "the write sent during the election lands on the new leader"
pass "leader $(node_of "$old") killed: Patroni elected $(node_of "$new") after $((elected - t0)) ms, the three nodes routed to it within $followed ms; a write sent meanwhile waited and landed there"

# ---- 3b. the dead member's key expires: the node that found it drops it
use_node 3
gone=$(node_of "$old")
wait_until 40 eval '[[ $(nodes_from) != *"$gone:"* ]]' || fail "node 3 still lists $gone: $(nodes_from)"
assert_eq 2 "$(nodes_from | wc -w)" "node 3's nodes after $gone left Patroni's scope"
assert_eq "$new" "$(q "INSERT INTO ft VALUES (30) RETURNING inet_server_port()")" "node 3: a write after $gone left"
pass "node 3 dropped $gone once its member key expired in etcd, and writes on"

# ---- 4. a node that stops leaves the list with its lease
use_node 3
kill -KILL "${NPID[3]}"
wait "${NPID[3]}" 2>/dev/null
use_node 1
wait_until 10 eval '[[ $(peers_count) == 2 ]]' || fail "node 3 still listed after its lease"
http_get /peers >/dev/null
assert_not_contains "$HTTP_BODY" '"name":"pgring3"' "node 1's /peers after node 3 died"
pass "a node killed (no revoke) leaves /peers once its lease runs out"

# ---- 5. etcd stopped: the last topology stays, the checks go on
etcd_pid=$(cat "$PC/etcd.pid")
kill -STOP "$etcd_pid"
on_exit "kill -CONT $etcd_pid 2>/dev/null"
for i in 1 2; do
	use_node "$i"
	wait_until 15 eval '[[ $(metric pgring_etcd_up) == 0 ]]' || fail "node $i: pgring_etcd_up stays 1 with etcd stopped"
	wait_until 5 grep -q "etcd: unreachable" "$POOLER_LOG" || fail "node $i: no log line for etcd unreachable"
	got=$(Q_DB=app_replica q "SELECT inet_server_port()") || fail "node $i: a read with etcd stopped"
	assert_ne "$new" "$got" "node $i: a replica read with etcd stopped"
done
kill -CONT "$etcd_pid"
use_node 1
wait_until 20 eval '[[ $(metric pgring_etcd_up) == 1 ]]' || fail "pgring_etcd_up does not come back"
wait_until 5 grep -q "etcd: reachable again" "$POOLER_LOG" || fail "no log line for etcd back"
pass "etcd stopped: the nodes keep serving on the last topology (pgring_etcd_up 0, logged), and pick etcd up again"
