#!/usr/bin/env bash
# t_peers: a fleet of three pgring nodes sharing cancel requests (issue 18,
# point 1: PgBouncer's [peers] and peer_id). Every node's key carries its id,
# so a cancel request reaching any node is forwarded to the node that owns the
# client, as behind a TCP load balancer:
#  - for every owner and every other node, in transaction and session
#    pooling, with 3.0 and 3.2 keys: the query is cancelled within a second,
#    and a wrong key cancels nothing;
#  - peers reached over TCP and over a Unix socket directory;
#  - a key naming an id [peers] does not list, and a loop in [peers] (three
#    hops, then dropped), end the cancel connection at once and are counted;
#  - with a node down, a cancel for it is dropped cleanly (closed within a
#    second, logged, counted) and the node that dropped it serves on;
#  - SHOW PEERS and SHOW PEER_POOLS list the other nodes.
# The raw client proto32 sends the CancelRequests (libpq's PQcancel always
# goes back to the address it connected to).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "pgring's peering (Debian's PgBouncer 1.18 predates [peers])"
P32=$HELPERS/proto32
[[ -x $P32 ]] || fail "helper $P32 not built"

read -r P1 P2 P3 < <(freeports 3 | xargs)
SOCKDIR3=$TEST_TMP/node3
mkdir -p "$SOCKDIR3"
PEERS="[peers]
1 = host=127.0.0.1 port=$P1
2 = host=127.0.0.1 port=$P2
3 = host=$SOCKDIR3 port=$P3"

declare -a NPID NPORT NCONTROL NLOG
# start_node I EXTRA: node I of the fleet (listen port P<I>)
start_node() {
	local i=$1 port_var=P$1 sockdir=""
	[[ $i == 3 ]] && sockdir=$SOCKDIR3
	POOLER_PORT=${!port_var} start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
apps = host=@PGHOST@ port=@PGPORT@ dbname=app pool_mode=session
[pgring]
auth_type = trust
admin_users = app
pool_mode = transaction
default_pool_size = 4
shards = 2
unix_socket_dir = $sockdir
peer_id = $i
server_connect_timeout = 2
${2:-}
$PEERS
"
	NPID[i]=$POOLER_PID NPORT[i]=$PORT NCONTROL[i]=$CONTROL_PORT NLOG[i]=$POOLER_LOG
}
# use_node I: the lib's helpers (metric, q) talk to node I
use_node() { POOLER_PID=${NPID[$1]} PORT=${NPORT[$1]} CONTROL_PORT=${NCONTROL[$1]} POOLER_LOG=${NLOG[$1]}; }

# 7: a loop back to node 1 itself, with room for the three hops at once
start_node 1 "$(printf '[peers]\n7 = host=127.0.0.1 port=%s pool_size=8\n' "$P1")"
start_node 2
start_node 3
for i in 1 2 3; do
	use_node "$i"
	assert_eq 1 "$(q 'SELECT 1')" "node $i serves"
done
[[ -S $SOCKDIR3/.s.PGSQL.$P3 ]] || fail "node 3 has no Unix socket in $SOCKDIR3"

# ---- every owner, every other node, both pooling modes, both key forms
# (bounds of 3 s: a forwarded cancel takes milliseconds, but it opens up to
# three TCP connections, and one SYN lost on a loaded CI machine costs
# Linux's 1 s retransmission: CI saw 1,973 ms once; a cancel held or lost
# takes the query's whole sleep)
slowest=0
for owner in 1 2 3; do
	for via in 1 2 3; do
		((via == owner)) && continue
		for db in app apps; do
			for minor in 0 2; do
				out=$(PROTO32_CANCEL_PORT=${NPORT[$via]} timeout 60 "$P32" cancel 127.0.0.1 "${NPORT[$owner]}" \
					app "$db" "$minor" 1 2>&1 | tail -1)
				[[ $out == "cancelled 1/1 slowest "* ]] ||
					fail "owner $owner, cancel via $via, $db, protocol 3.$minor: $out"
				ms=${out##* }
				assert_num_cmp "$ms" -lt 3000 "owner $owner via $via ($db, 3.$minor): ms to the query's error"
				((ms > slowest)) && slowest=$ms
			done
		done
	done
done
pass "a cancel through any node reaches the owner's backend (12 routes x 2 modes x 2 key forms, slowest $slowest ms)"
total=0
for i in 1 2 3; do
	use_node "$i"
	n=$(metric pgring_shard_cancels_to_peers_total)
	assert_num_cmp "$n" -gt 0 "node $i: cancel requests forwarded to peers"
	total=$((total + n))
done
# each route's right key goes one hop; the wrong key (same node id) goes too,
# and a cut 3.2 key's bytes name no peer
assert_num_cmp "$total" -ge 24 "cancel requests forwarded to peers, all nodes"
note "forwarded to peers: $total"

# ---- ids nobody owns: dropped at once, counted, logged
use_node 1
dropped0=$(metric pgring_shard_cancels_peer_dropped_total)
out=$(timeout 20 "$P32" rawcancel 127.0.0.1 "$P1" 00090000 0000000f)   # peer 9: not in [peers]
[[ $out == "closed after "* ]] || fail "a cancel for peer 9: $out"
assert_num_cmp "${out##* }" -lt 1000 "a cancel for an unknown peer: ms to the close"
wait_until 5 grep -q "cancel request for peer 9 dropped: \[peers\] does not list it" "$POOLER_LOG" ||
	fail "no log line for the unknown peer"
sleep 1.1   # drops are logged at most once a second
out=$(timeout 20 "$P32" rawcancel 127.0.0.1 "$P1" 00070000 0000000f)   # peer 7: node 1 itself, a loop
[[ $out == "closed after "* ]] || fail "a cancel for peer 7 (a loop): $out"
assert_num_cmp "${out##* }" -lt 1000 "a cancel in a [peers] loop: ms to the close"
wait_until 5 grep -q "cancel request for peer 7 dropped: it has been forwarded three times" "$POOLER_LOG" ||
	fail "no log line for the loop"
assert_num_cmp "$(metric pgring_shard_cancels_peer_dropped_total)" -ge $((dropped0 + 2)) "dropped cancels counted"
pass "a cancel for an unknown peer id, and one going round a [peers] loop, end at once (logged, counted)"

# ---- the console
rows=$(Q_DB=pgbouncer q 'SHOW PEERS' 2>&1 | tr '\n' ' ')
assert_eq "2|127.0.0.1|$P2|4 3|$SOCKDIR3|$P3|4 7|127.0.0.1|$P1|8 " "$rows" "node 1's SHOW PEERS (itself left out)"
rows=$(Q_DB=pgbouncer q 'SHOW PEER_POOLS' 2>&1 | tr '\n' ' ')
assert_eq "2|0|0|0|0 3|0|0|0|0 7|0|0|0|0 " "$rows" "node 1's SHOW PEER_POOLS, idle"
pass "SHOW PEERS and SHOW PEER_POOLS list the other nodes"

# ---- a node down: its cancels are dropped cleanly, the others serve on
use_node 2
stop_pgring || fail "node 2 did not stop"
use_node 1
dropped0=$(metric pgring_shard_cancels_peer_dropped_total)
sleep 1.1
out=$(timeout 20 "$P32" rawcancel 127.0.0.1 "$P1" 00020000 1234567f)
[[ $out == "closed after "* ]] || fail "a cancel for the stopped node 2: $out"
assert_num_cmp "${out##* }" -lt 1000 "a cancel for a node that is down: ms to the close"
wait_until 5 grep -q "cancel request forwarded to peer 2 failed" "$POOLER_LOG" ||
	fail "no log line for the peer that is down: $(grep -i 'peer 2' "$POOLER_LOG" | tail -3)"
assert_num_cmp "$(metric pgring_shard_cancels_peer_dropped_total)" -gt "$dropped0" "the failed forward counted"
assert_eq 1 "$(q 'SELECT 1')" "node 1 serves on"
out=$(PROTO32_CANCEL_PORT=$P3 timeout 60 "$P32" cancel 127.0.0.1 "$P1" app app 2 1 2>&1 | tail -1)
[[ $out == "cancelled 1/1 "* ]] || fail "node 1's client cancelled through node 3 with node 2 down: $out"
pass "with node 2 down, a cancel for it is dropped within a second and the others cancel as before"
for i in 1 3; do
	use_node "$i"
	stop_pgring || fail "node $i did not stop"
done
