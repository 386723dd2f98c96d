#!/usr/bin/env bash
# t_autofailover: pgring's own failover when no Patroni manages the cluster
# (issue 18, point 4): auto_failover = on, the nodes agreeing through etcd.
# A primary and two replicas (tools/pgtmp, synchronous: every acknowledged
# commit is on a replica: synchronous_commit on, ANY 1 of the two), an etcd of the test's own (three members), and three
# pgring nodes (fleet_size = 3: the quorum is two), the third reaching etcd
# and the primary through fault proxies that isolate it before the failover.
#   1. The fleet publishes the primary its checks found. A query through
#      any node is cancelled through any other ([peers]). etcd has three
#      members; one stops (every node's first endpoint), and the rest of the
#      test runs on the other two.
#   1d. Node 3 cut off from the primary but not from etcd sees it down: alone
#      it is no quorum, and nothing is promoted. Then it is cut off from etcd
#      too: its lease runs out.
#   2. The primary is killed while writers (psql, one INSERT each, and
#      pgbench, one INSERT per transaction) run through both nodes: after
#      failover_after, exactly one replica is promoted (the one with the most
#      WAL), by one node; the partitioned one promotes nothing; writes
#      land on the new primary only; every acknowledged write is there (none
#      lost, none twice: each pgbench client's rows against its log of
#      transactions); the other replica follows the new primary.
#   3. The old primary restarted (as a primary): it is fenced before any
#      client is routed to it (default_transaction_read_only, its sessions
#      terminated, logged, SHOW NODES says so), and writes still go to the new
#      primary. Restarted again, it comes up as a standby (standby.signal).
# shellcheck disable=SC1091,SC2016 # lib.sh is sourced at run time; eval '...' is lib.sh's idiom
. "$(dirname "$0")/lib.sh"
pgring_only "automatic failover is pgring's"
command -v etcd >/dev/null || skip "etcd is not installed (tools/setup)"

PGTMP=$ROOT/tools/pgtmp
chmod o+x "$TEST_TMP"
CL=$TEST_TMP/cluster
mkdir -p "$CL"
chmod 755 "$CL"
for n in p1 r2 r3; do on_exit "$PGTMP stop $CL/$n"; done
pgtmp_port() { timeout 120 "$PGTMP" "$@" | sed -n 's/^PORT=//p'; }
P1=$(pgtmp_port start "$CL/p1")
[[ -n $P1 ]] || fail "the primary did not start"
P2=$(pgtmp_port replica "$CL/r2" "$CL/p1")
P3=$(pgtmp_port replica "$CL/r3" "$CL/p1")
[[ -n $P2 && -n $P3 ]] || fail "the replicas did not start"
on() { timeout 30 psql -X -Atq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d app -c "$2"; }
# synchronous once the replicas are there (pgtmp's own set-up would wait for them)
for sql in "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (r2, r3)'" "ALTER SYSTEM SET synchronous_commit = on" \
	"SELECT pg_reload_conf()"; do
	on "$P1" "$sql" >/dev/null || fail "$sql"
done
on "$P1" "CREATE TABLE af (id int PRIMARY KEY, via int); ALTER TABLE af OWNER TO app;
	CREATE TABLE pb (node int, client int, seq int, via int, PRIMARY KEY (node, client, seq)); ALTER TABLE pb OWNER TO app" \
	>/dev/null || fail "setup"
assert_eq "on|ANY 1 (r2, r3)" "$(on "$P1" "SELECT current_setting('synchronous_commit') || '|' || current_setting('synchronous_standby_names')")" \
	"synchronous replication"
name_of() { case $1 in "$P1") echo pg1 ;; "$P2") echo pg2 ;; "$P3") echo pg3 ;; *) echo "?" ;; esac; }

# etcd: three members, so that one can stop (the nodes carry on with the others)
read -r C1 C2 C3 R1 R2 R3 < <(freeports 6 | xargs)
INITIAL="e1=http://127.0.0.1:$R1,e2=http://127.0.0.1:$R2,e3=http://127.0.0.1:$R3"
declare -a EPID
for m in 1 2 3; do
	c=C$m r=R$m
	etcd --name "e$m" --data-dir "$TEST_TMP/etcd$m" --listen-client-urls "http://127.0.0.1:${!c}" \
		--advertise-client-urls "http://127.0.0.1:${!c}" --listen-peer-urls "http://127.0.0.1:${!r}" \
		--initial-advertise-peer-urls "http://127.0.0.1:${!r}" --initial-cluster "$INITIAL" \
		--initial-cluster-state new --logger zap --log-level warn >"$TEST_TMP/etcd$m.log" 2>&1 &
	EPID[m]=$!
	track_pid "${EPID[m]}"
	on_exit "kill_wait ${EPID[m]}"
done
E=127.0.0.1:$C1,127.0.0.1:$C2,127.0.0.1:$C3
wait_until 30 timeout 5 "$HELPERS/etcdprobe" "$E" put /af/ready yes >/dev/null ||
	fail "etcd did not start: $(tail -3 "$TEST_TMP/etcd1.log")"

# node 3 reaches etcd (member 2) and the primary through fault proxies only: isolated later
read -r FP_PORT FP_CTL PX_PORT PX_CTL < <(freeports 4 | xargs)
proxy() { # NAME LISTEN TARGET CONTROL
	"$HELPERS/faultproxy" -l "$2" -t "$3" -c "$4" >"$TEST_TMP/faultproxy.$1.log" 2>&1 &
	track_pid $!
	on_exit "kill_wait $!"
	wait_until 5 tcp_open 127.0.0.1 "$4" || fail "faultproxy $1 did not start: $(cat "$TEST_TMP/faultproxy.$1.log")"
}
proxy etcd "$FP_PORT" "$C2" "$FP_CTL"
proxy pg1 "$PX_PORT" "$P1" "$PX_CTL"
fp() { faultproxy_cmd "$@" >/dev/null; }   # CONTROL_PORT COMMAND

declare -a NPID NPORT NCONTROL NLOG
read -r L1 L2 L3 < <(freeports 3 | xargs)   # the nodes' ports, which [peers] names
start_node() { # I ETCD_ENDPOINT PG1_PORT
	local port=L$1
	POOLER_PORT=${!port} start_pgring "
[pgring]
auth_type = trust
peer_id = $1
admin_users = app
pool_mode = transaction
default_pool_size = 4
health_check_user = postgres
health_check_dbname = postgres
health_check_interval = 0.5
health_check_failures = 1
failover_timeout = 60
server_login_retry = 1
etcd_hosts = $2
etcd_node_ttl = 4
node_name = n$1
auto_failover = on
failover_after = 2
fleet_size = 3

[cluster.c]
pg1 = host=127.0.0.1 port=$3
pg2 = host=127.0.0.1 port=$P2
pg3 = host=127.0.0.1 port=$P3

[databases]
app = cluster=c dbname=app

[peers]
1 = host=127.0.0.1 port=$L1
2 = host=127.0.0.1 port=$L2
3 = host=127.0.0.1 port=$L3
"
	NPID[$1]=$POOLER_PID NPORT[$1]=$PORT NCONTROL[$1]=$CONTROL_PORT NLOG[$1]=$POOLER_LOG
}
use_node() { POOLER_PID=${NPID[$1]} PORT=${NPORT[$1]} CONTROL_PORT=${NCONTROL[$1]} POOLER_LOG=${NLOG[$1]}; }
primary_of() { Q_DB=pgbouncer q "SHOW TOPOLOGY" | awk -F'|' '$1 == "c" {print $3}'; }
start_node 1 "$E" "$P1"
start_node 2 "$E" "$P1"
start_node 3 "127.0.0.1:$FP_PORT" "$PX_PORT"

# ---- 1. the primary published
published() { timeout 5 "$HELPERS/etcdprobe" "$E" get /pgring/clusters/c/primary 2>/dev/null; }
wait_until 15 eval '[[ $(published) == *pg1* ]]' || fail "the fleet did not publish pg1 as the primary: $(published)"
for i in 1 2 3; do
	use_node "$i"
	wait_until 10 eval '[[ $(primary_of) == pg1 ]]' || fail "node $i: primary [$(primary_of)]"
done
pass "the fleet published the primary its checks found (pg1); every node routes to it"

# ---- 1a. a cancel through every node reaches the backend of the node that owns the key ([peers])
slowest=0
for owner in 1 2 3; do
	for via in 1 2 3; do
		((via == owner)) && continue
		out=$(PROTO32_CANCEL_PORT=${NPORT[via]} timeout 60 "$HELPERS/proto32" cancel 127.0.0.1 "${NPORT[owner]}" \
			app app 2 1 2>&1 | tail -1)
		[[ $out == "cancelled 1/1 slowest "* ]] || fail "a query through node $owner, cancelled through node $via: $out"
		ms=${out##* }
		assert_num_cmp "$ms" -lt 1000 "node $owner's query cancelled through node $via: ms to its error"
		((ms > slowest)) && slowest=$ms
	done
done
pass "a query through any node is cancelled through any other (6 routes, slowest $slowest ms)"

# ---- 1b. an etcd member stops (the first endpoint of every node): the fleet carries on
kill -TERM "${EPID[1]}"
wait "${EPID[1]}" 2>/dev/null
timeout 10 "$HELPERS/etcdprobe" "127.0.0.1:$C2" put /af/after-e1 yes >/dev/null || fail "etcd lost its quorum with one member stopped"
sleep 2
for i in 1 2; do
	use_node "$i"
	assert_eq 1 "$(metric pgring_etcd_up)" "node $i: pgring_etcd_up with one etcd member stopped"
done
pass "one etcd member of three stopped: the nodes carry on with the others"

# ---- 1c. node 3 cut off from the primary, not from etcd: it sees pg1 down, alone, and nothing happens
use_node 1
wait_until 10 eval '[[ $(metric pgring_fleet_nodes) == 3 ]]' || fail "the fleet is not three nodes: $(metric pgring_fleet_nodes)"
node_state() { Q_DB=pgbouncer q "SHOW NODES" | awk -F'|' '$2 == "'"$1"'" {print $6}'; }
fp "$PX_CTL" blackhole
use_node 3
wait_until 20 eval '[[ $(node_state pg1) == down ]]' || fail "node 3 does not see pg1 down through the partition: $(node_state pg1)"
view3() { timeout 5 "$HELPERS/etcdprobe" "$E" get /pgring/clusters/c/views/n3 2>/dev/null; }
wait_until 10 eval '[[ $(view3) =~ \"down_ms\":([0-9]+) ]] && ((BASH_REMATCH[1] >= 4000))' ||
	fail "node 3's view in etcd: $(view3)"
for p in $P2 $P3; do
	assert_eq t "$(on "$p" "SELECT pg_is_in_recovery()")" "a replica while only node 3 sees pg1 down"
done
[[ $(published) == *pg1* ]] || fail "the published primary moved: $(published)"
pass "node 3 cut off from pg1 sees it down for twice failover_after ($(view3)): one of three is no quorum, nothing promoted"

# ---- 1d. node 3 partitioned from etcd too: its lease runs out, the two others are still a quorum of 3
use_node 1
fp "$FP_CTL" blackhole
wait_until 20 eval '[[ $(metric pgring_fleet_nodes) == 2 ]]' || fail "node 3's lease did not run out in the partition"
pass "node 3 partitioned from etcd: its lease ran out, the fleet counts two of three"

# ---- 2. the primary killed under a writer
writer() { # NODE FIRST_ID COUNT: one INSERT per connection; the ids acknowledged go to acked.NODE
	local port=${NPORT[$1]} id
	for ((id = $2; id < $2 + $3; id++)); do
		local via
		if via=$(PGPASSWORD=app timeout 90 psql -X -Atq -h 127.0.0.1 -p "$port" -U app -d app \
			-c "INSERT INTO af VALUES ($id, inet_server_port()) RETURNING via" 2>>"$TEST_TMP/writer.$1.err"); then
			echo "$id $via $(date +%T.%N)" >>"$TEST_TMP/acked.$1"
		fi
		sleep 0.05
	done
}
writer 1 1000 150 &
W1=$!
writer 2 5000 150 &
W2=$!
track_pid $W1
track_pid $W2
# pgbench through both nodes: each client inserts its next row, so its rows
# count its committed transactions, and its log lists those acknowledged
cat >"$TEST_TMP/pb.sql" <<'SQL'
INSERT INTO pb SELECT :node, :client_id, coalesce(max(seq), 0) + 1, inet_server_port() FROM pb WHERE node = :node AND client = :client_id;
SQL
declare -a BPID
for i in 1 2; do
	PGPASSWORD=app timeout 120 pgbench -n -h 127.0.0.1 -p "${NPORT[i]}" -U app -c 6 -j 1 -R 60 -T 14 \
		-f "$TEST_TMP/pb.sql" -D node="$i" -l --log-prefix="$TEST_TMP/pblog$i" app >"$TEST_TMP/pgbench.$i.out" 2>&1 &
	BPID[i]=$!
	track_pid "${BPID[i]}"
done
sleep 2
t0=$(now_ms)
kill_at=$(date +%T.%N)
timeout 30 "$PGTMP" kill "$CL/p1" >/dev/null || fail "kill the primary"
promoted=''
wait_until 60 eval 'promoted=$(for p in $P2 $P3; do [[ $(on $p "SELECT pg_is_in_recovery()") == f ]] && echo $p; done)
	[[ -n $promoted ]]' || fail "no replica was promoted: $(grep -h failover "${NLOG[1]}" "${NLOG[2]}" | tail -5)"
took=$(($(now_ms) - t0))
new=$(name_of "$promoted")
other=$P2
[[ $promoted == "$P2" ]] && other=$P3
sleep 2
assert_eq t "$(on "$other" "SELECT pg_is_in_recovery()")" "the other replica stays a replica (exactly one promotion)"
prom=0
for i in 1 2 3; do
	use_node "$i"
	n=$(metric pgring_failover_promotions_total) || n=0
	prom=$((prom + n))
	((i == 3)) && assert_eq 0 "$n" "promotions by the node partitioned from etcd"
done
assert_eq 1 "$prom" "promotions by the whole fleet"
grep -h "failover: cluster c: primary pg1 down as 2 of the fleet's nodes see it (quorum 2)" "${NLOG[1]}" "${NLOG[2]}" >/dev/null ||
	fail "no log line for the quorum's decision"
for i in 1 2; do
	use_node "$i"
	wait_until 10 eval '[[ $(primary_of) == '"$new"' ]]' || fail "node $i: primary [$(primary_of)] after the promotion"
done
wait $W1 $W2
aborted=0 bench_tx=0
for i in 1 2; do
	wait "${BPID[i]}"
	rc=$?
	out=$TEST_TMP/pgbench.$i.out
	n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
	a=$(grep -c "aborted in command" "$out")
	if [[ -z $n ]] || ! ((rc == 0 || (rc == 2 && a > 0 && a < 6))); then
		fail "pgbench through node $i: exit $rc: $(tail -5 "$out")"
	fi
	bench_tx=$((bench_tx + n)) aborted=$((aborted + a))
done
for p in $P2 $P3; do
	assert_eq 0 "$(on "$p" "SELECT count(*) FROM af WHERE via NOT IN ($P1, $promoted)")" "rows written elsewhere"
done
acked=$(cat "$TEST_TMP"/acked.* | cut -d' ' -f1 | sort -n | uniq)
nacked=$(wc -l <<<"$acked")
have=$(on "$promoted" "SELECT id FROM af ORDER BY id")
lost=$(comm -23 <(echo "$acked") <(echo "$have") | wc -l)
missing=$(comm -23 <(echo "$acked") <(echo "$have") | head -5 | while read -r id; do grep -h "^$id " "$TEST_TMP"/acked.*; done)
assert_eq 0 "$lost" "acknowledged writes missing on the new primary ($missing; killed at $kill_at)"
assert_eq "$(on "$promoted" "SELECT count(*) FROM af")" "$(on "$promoted" "SELECT count(DISTINCT id) FROM af")" "rows twice"
# pgbench: per client, rows committed (R) against transactions acknowledged
# in its log (A): R < A is an acknowledged commit lost; R may be A + 1 (a
# transaction in flight when the primary died, committed, its reply lost)
for i in 1 2; do awk -v n="$i" '{print n, $1}' "$TEST_TMP"/pblog"$i".*; done | sort | uniq -c | awk '{print $2, $3, $1}' >"$TEST_TMP/pb.acked"
on "$promoted" "SELECT node, client, count(*) FROM pb GROUP BY 1, 2" | tr '|' ' ' | sort >"$TEST_TMP/pb.rows"
bench_acked=$(awk '{s += $3} END {print s + 0}' "$TEST_TMP/pb.acked")
assert_eq "$bench_tx" "$bench_acked" "pgbench's transactions against its logs"
bad=$(join -a1 -a2 -e 0 -o 0,1.2,2.2 <(awk '{print $1 "-" $2, $3}' "$TEST_TMP/pb.acked" | sort) \
	<(awk '{print $1 "-" $2, $3}' "$TEST_TMP/pb.rows" | sort) | awk '$3 < $2 || $3 > $2 + 1')
assert_eq "" "$bad" "pgbench clients (node-client acked rows) whose rows are not their acknowledged transactions"
assert_eq 0 "$(on "$promoted" "SELECT count(*) FROM pb WHERE via NOT IN ($P1, $promoted)")" "pgbench rows written elsewhere"
bench_after=$(on "$promoted" "SELECT count(*) FROM pb WHERE via = $promoted")
assert_num_cmp "$bench_after" -gt 0 "pgbench transactions that landed on the new primary"
after=$(on "$promoted" "SELECT count(*) FROM af WHERE via = $promoted")
assert_num_cmp "$after" -gt 0 "writes that landed on the new primary"
wait_until 30 eval '[[ $(on $promoted "SELECT count(*) FROM pg_stat_replication") == 1 ]]' ||
	fail "the other replica does not follow the new primary: $(grep -h 'follows\|failover' "${NLOG[1]}" "${NLOG[2]}" | tail -3)"
pass "pg1 killed: $new promoted $took ms later, once, by the quorum of 2 of 3 (the node isolated promoted nothing); psql: $nacked writes acknowledged, 0 lost, 0 twice, $after landed on $new; pgbench: $bench_tx transactions acknowledged, 0 lost, $bench_after on $new, $aborted of 12 clients aborted by an error in flight; the other replica follows it"

# ---- 3. the old primary comes back as a primary: fenced
timeout 60 "$PGTMP" restart "$CL/p1" >/dev/null 2>&1 || fail "restart pg1"
wait_until 20 eval '[[ $(on $P1 "SHOW default_transaction_read_only") == on ]]' ||
	fail "pg1 not fenced: $(grep -h 'fenc' "${NLOG[1]}" "${NLOG[2]}" | tail -3)"
# read-only shows before the job's last steps (standby.signal, the sessions) and its log line
wait_until 10 eval 'grep -h "pg1 fenced" "${NLOG[1]}" "${NLOG[2]}" >/dev/null' || fail "no log line for the fencing"
fen=0
for i in 1 2; do
	use_node "$i"
	n=$(metric pgring_failover_fencings_total) || n=0
	fen=$((fen + n))
	row=$(Q_DB=pgbouncer q "SHOW NODES" | awk -F'|' '$2 == "pg1" {print $6 "|" $14}')
	assert_eq "down|fenced: a former primary, to be rebuilt" "$row" "node $i: SHOW NODES for pg1"
	assert_eq "$promoted" "$(q "INSERT INTO af VALUES (9000 + $i, inet_server_port()) RETURNING via")" "node $i: a write after pg1 is back"
done
assert_eq 1 "$fen" "fencings by the fleet"
timeout 60 "$PGTMP" restart "$CL/p1" >/dev/null 2>&1 || fail "restart pg1 after its fence"
assert_eq t "$(on "$P1" "SELECT pg_is_in_recovery()")" "pg1 restarted after its fence is a standby"
use_node 1
assert_eq "$promoted" "$(q "INSERT INTO af VALUES (9100, inet_server_port()) RETURNING via")" "a write after pg1 came back a standby"
pass "the old primary restarted is fenced (read-only, logged, not routed to), and a standby when restarted again; writes still go to $new"
