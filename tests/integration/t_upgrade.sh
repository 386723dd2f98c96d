#!/usr/bin/env bash
# t_upgrade: pgring -R, an upgrade without dropping anyone (issue 16, point 6).
#   1. A successor that fails at start (here: `user =` names no user, found
#      after it received the listening sockets) leaves the running pgring
#      serving: it keeps accepting, its clients keep working.
#   2. 1,000 idle clients, each with a SET application_name and a protocol-level
#      prepared statement (PQprepare), connected before the upgrade, all answer
#      after it on the same connection, the statement executing in the new
#      process; a query on 4 of them is cancelled with the cancel key they got
#      from the old process.
#   3. pgbench -M simple and -M prepared, in transaction and in session pooling,
#      runs across the upgrade with zero failed transactions and no client
#      aborted (pgbench never reconnects without -C: a dropped connection
#      aborts its client).
#   4. The old process exits once it holds nobody; the logs and counters show
#      the clients moved, the session-pooled ones with their own servers
#      (their sessions are those servers'); the pools' cumulative counters carry
#      over (the successor's transaction total covers every pgbench run).
#   5. Idle server connections moved too, with their prepared statements:
#      PostgreSQL backends started before the upgrade are still there, held by
#      the successor, once the old process is gone.
#      An idle session-pooled client, and a transaction-pooled one pinned by a
#      temporary table, move with their servers: the same backend, the table;
#      so does one holding a WITH HOLD cursor (it FETCHes on after).
#   5c. Clients that LISTEN move, and miss no notification and get none twice
#      while NOTIFYs go on across the upgrade: transaction-pooled ones with
#      their pool's LISTEN connection (all its clients and it in one group),
#      a session-pooled one with its own server (the same backend after).
#   7. The topology carries over: the successor routes from the predecessor's
#      view of a cluster (its primary, a node down) from its first moment, not
#      from the configuration's word on roles until its own checks catch up.
#   6. A SCRAM client whose servers log in with its keys (pass-through) moves,
#      and after the move its server dies: the successor logs a new one in
#      with the keys the client's record brought (nobody logged in there).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "pgring -R is pgring's"

T=${UPGRADE_T:-12}
NIDLE=${UPGRADE_IDLE:-1000}
[[ $(qd "SELECT count(*) FROM pgbench_branches") -ge 1 ]] || fail "pgbench tables missing"

# a cluster whose configuration is wrong about roles: "gone" (nothing
# listens there) is said to be the primary. Its health checks find it down and
# "live" the primary; the successor starts from that view (item 7)
DEAD_PORT=$(freeports 1)
conf="
[cluster.up]
live = host=@PGHOST@ port=@PGPORT@
gone = host=127.0.0.1 port=$DEAD_PORT role=primary
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
appsess = host=@PGHOST@ port=@PGPORT@ dbname=app pool_mode=session
upapp = cluster=up dbname=app
[pgring]
auth_type = md5
admin_users = app
pool_mode = transaction
default_pool_size = 10
max_client_conn = 5000
shards = 2
"
start_pgring "$conf"
OLD_PID=$POOLER_PID
OLD_LOG=$POOLER_LOG

topo() { Q_DB=pgbouncer q "SHOW TOPOLOGY" | awk -F'|' '$1 == "up" {print $3 " up=" $5 " down=" $7}'; }
wait_until 20 eval '[[ $(topo) == "live up=1 down=1" ]]' || fail "the predecessor's view of cluster up: $(topo)"

# ---- 1. a successor that fails before it serves changes nothing
cp "$POOLER_CONF" "$TEST_TMP/bad.ini"
echo "user = no_such_user_pgring_upgrade" >>"$TEST_TMP/bad.ini"
timeout 30 "$PGRING_BIN" -R -c "$TEST_TMP/bad.ini" >"$TEST_TMP/bad.log" 2>&1
bad_rc=$?
[[ $bad_rc != 0 && $bad_rc != 124 ]] || fail "the failing successor: status $bad_rc ($(tail -3 "$TEST_TMP/bad.log"))"
assert_contains "$(cat "$TEST_TMP/bad.log")" "listening socket" "the failing successor got the listeners first"
alive "$OLD_PID" || fail "the old pgring died with its failed successor"
wait_until 5 grep -q "went away before it was ready" "$OLD_LOG" || fail "the old pgring did not log the failed successor"
for i in 1 2 3 4 5 6; do
	assert_eq 1 "$(q "SELECT 1")" "new connection $i after a failed successor"
done
pass "a successor failing at start leaves the old pgring serving ($(grep -m1 -o 'cannot take over.*\|user no_such[^"]*' "$TEST_TMP/bad.log" | head -1))"

# ---- 1b. a successor killed right after it took over: the old one serves again
# (a session-pooled client keeps the old one from exiting meanwhile: with
# nobody left it would have gone at once, as it should)
(Q_DB=appsess q "SELECT 7 FROM pg_sleep(4)" >"$TEST_TMP/sleeper.out" 2>&1; echo $? >>"$TEST_TMP/sleeper.out") &
SLEEPER=$!
wait_until 10 eval '[[ $(qd "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '"'"'SELECT 7 FROM pg_sleep%'"'"'") == 1 ]]' ||
	fail "the session-pooled client did not start"
"$PGRING_BIN" -R -c "$POOLER_CONF" >"$TEST_TMP/killed.log" 2>&1 &
KILLED_PID=$!
track_pid $KILLED_PID
on_exit "kill_wait $KILLED_PID KILL"
wait_until 20 grep -q "serving on the predecessor's sockets" "$TEST_TMP/killed.log" ||
	fail "the successor to kill did not take over: $(tail -3 "$TEST_TMP/killed.log")"
# long enough for the old process's shard without clients to have found itself
# empty (it looks every 100 ms): it must still be there to take its socket back
sleep 0.5
kill -KILL $KILLED_PID
wait $KILLED_PID 2>/dev/null
wait_until 10 grep -q "accepting and serving here again" "$OLD_LOG" ||
	fail "the old pgring did not take its sockets back: $(tail -3 "$OLD_LOG")"
alive "$OLD_PID" || fail "the old pgring died with its killed successor"
for i in 1 2 3 4 5 6; do
	assert_eq 1 "$(q "SELECT 1")" "new connection $i after the successor was killed"
done
wait_until 10 tcp_open 127.0.0.1 "$CONTROL_PORT" || fail "the old pgring did not open its control port again"
wait $SLEEPER
assert_eq $'7\n0' "$(cat "$TEST_TMP/sleeper.out")" "the session-pooled client that stayed on the old pgring"
pass "a successor killed after it took over: the old pgring accepts and serves again"

# ---- 2. idle clients with session state and a prepared statement
"$HELPERS/holdclients" "$(conninfo)" "$NIDLE" "$TEST_TMP/go" 180 >"$TEST_TMP/hold.out" 2>"$TEST_TMP/hold.err" &
HOLD_PID=$!
track_pid $HOLD_PID
on_exit "kill_wait $HOLD_PID"
wait_until 120 grep -q "^ready" "$TEST_TMP/hold.out" || fail "holdclients not ready: $(tail -3 "$TEST_TMP/hold.err")"
note "$NIDLE idle clients ready"

# a SCRAM pass-through client, idle across the upgrade (pqtry -H 0 runs its
# statements again once its stdin closes)
# (its stdin: a pipe only a waiting loop holds, which ends once scram.go exists)
"$HELPERS/pqtry" -k -H 0 "$(conninfo app scramuser scrampass)" "SELECT pg_terminate_backend(pg_backend_pid())" \
	"SELECT current_user" >"$TEST_TMP/scram.out" 2>&1 < <(hold_until "$TEST_TMP/scram.go") &
SCRAM_PID=$!
track_pid $SCRAM_PID
wait_until 20 grep -q scramuser "$TEST_TMP/scram.out" || fail "the SCRAM client did not start: $(cat "$TEST_TMP/scram.out")"

# a session-pooled client and a transaction-pooled one pinned by its temporary
# table, idle across the upgrade: the second round counts 2 rows only if the
# session (its server) came along
declare -A KEEPER_PID
for kind in sess:appsess pinned:app; do
	name=${kind%%:*}
	"$HELPERS/pqtry" -H 0 "$(conninfo "${kind#*:}")" "CREATE TEMP TABLE IF NOT EXISTS moved_t (n int)" \
		"INSERT INTO moved_t VALUES (1)" "SELECT count(*), pg_backend_pid() FROM moved_t" >"$TEST_TMP/$name.out" 2>&1 \
		< <(hold_until "$TEST_TMP/keepers.go") &
	KEEPER_PID[$name]=$!
	track_pid $!
	wait_until 20 grep -q '^1|' "$TEST_TMP/$name.out" || fail "the $name client did not start: $(cat "$TEST_TMP/$name.out")"
done

# clients that LISTEN: three through the transaction pool's listener (on
# two channels), one session-pooled; NLISTEN notifications on each channel,
# sent across the upgrade
NLISTEN=${UPGRADE_NOTIFY:-40}
declare -A LISTENER_PID
for spec in tx1:app:up_tx tx2:app:up_tx tx3:app:up_tx2 sess:appsess:up_sess; do
	IFS=: read -r name db channel <<<"$spec"
	"$HELPERS/listen" "$(conninfo "$db")" "$channel" "$NLISTEN" 120 >"$TEST_TMP/listen-$name.out" \
		2>"$TEST_TMP/listen-$name.err" &
	LISTENER_PID[$name]=$!
	track_pid $!
	wait_until 20 grep -q '^listening' "$TEST_TMP/listen-$name.out" ||
		fail "the $name listener did not start: $(cat "$TEST_TMP/listen-$name.out")"
done
notifier() {
	for ((i = 1; i <= NLISTEN; i++)); do
		qd "NOTIFY up_tx, '$i'; NOTIFY up_tx2, '$i'; NOTIFY up_sess, '$i'" || echo "notify $i failed"
		sleep 0.1
	done
}

# a transaction-pooled client pinned by a WITH HOLD cursor: after the
# upgrade the cursor is still there (DECLARE again fails, FETCH goes on from
# row 2, on the same backend)
"$HELPERS/pqtry" -k -H 0 "$(conninfo app)" \
	"DECLARE hc CURSOR WITH HOLD FOR SELECT g, pg_backend_pid() FROM generate_series(1, 100) g" \
	"FETCH 1 FROM hc" >"$TEST_TMP/cursor.out" 2>&1 < <(hold_until "$TEST_TMP/keepers.go") &
CURSOR_PID=$!
track_pid $CURSOR_PID
wait_until 20 grep -q '^1|' "$TEST_TMP/cursor.out" || fail "the cursor client did not start: $(cat "$TEST_TMP/cursor.out")"

# ---- 3. pgbench across the upgrade
bench() { # NAME DB PROTOCOL CLIENTS
	PGPASSWORD=app timeout $((T + 90)) pgbench -n -M "$3" -c "$4" -j "$4" -T "$T" \
		-h 127.0.0.1 -p "$PORT" -U app "$2" >"$TEST_TMP/bench-$1.out" 2>&1
	echo $? >"$TEST_TMP/bench-$1.rc"
}
bench tx-simple app simple 4 &
B1=$!
bench tx-prepared app prepared 4 &
B2=$!
bench sess-simple appsess simple 2 &
B3=$!
bench sess-prepared appsess prepared 2 &
B4=$!
sleep $((T / 3))

UPGRADE_AT=$(qd "SELECT now()")
notifier >"$TEST_TMP/notifier.out" 2>&1 &
NOTIFIER=$!
sleep 0.5
"$PGRING_BIN" -R -c "$POOLER_CONF" >"$TEST_TMP/new.log" 2>&1 &
NEW_PID=$!
track_pid $NEW_PID
on_exit "kill_wait $NEW_PID"
wait_until 20 grep -q "serving on the predecessor's sockets" "$TEST_TMP/new.log" ||
	fail "the successor did not take over: $(tail -5 "$TEST_TMP/new.log")"
note "successor pid $NEW_PID serving"
# ---- 7. at once, before its own checks could have found it out
first_view=$(topo)
assert_eq "live up=1 down=1" "$first_view" "the successor's first view of cluster up"
assert_eq 1 "$(Q_DB=upapp q "SELECT 1")" "a query through cluster up at once after the upgrade"
grep -q "the predecessor's view of 2 cluster nodes taken over" "$TEST_TMP/new.log" ||
	fail "the successor did not take the predecessor's view of the nodes"
pass "the topology carried over: the successor's first view is the predecessor's (primary live, gone down), not the configuration's"
POOLER_LOG=$TEST_TMP/new.log   # what fail() shows from now on
for i in 1 2 3 4; do
	assert_eq 1 "$(q "SELECT 1")" "a new connection during the upgrade"
done
wait_until 10 tcp_open 127.0.0.1 "$CONTROL_PORT" || fail "the successor did not open the control port"

wait $B1 $B2 $B3 $B4
bench_total=0
for name in tx-simple tx-prepared sess-simple sess-prepared; do
	out=$(cat "$TEST_TMP/bench-$name.out")
	rc=$(cat "$TEST_TMP/bench-$name.rc")
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	if [[ $rc != 0 || -z $failed || -z $processed ]]; then
		echo "$out" | tail -15 | sed 's/^/#   /'
		fail "pgbench $name across the upgrade: exit $rc"
	fi
	assert_eq 0 "$failed" "pgbench $name: failed transactions"
	assert_not_contains "$out" "aborted" "pgbench $name: aborted clients"
	assert_num_cmp "$processed" -gt 0 "pgbench $name: transactions"
	bench_total=$((bench_total + processed))
	pass "pgbench $name across the upgrade: $processed transactions, 0 failed, no client aborted"
done

# ---- 4. the old one goes once it holds nobody
wait_until 30 eval '! alive '"$OLD_PID" || fail "the old pgring still runs with nobody on it: $(tail -5 "$OLD_LOG")"
wait "$OLD_PID" 2>/dev/null
old_rc=$?
assert_eq 0 "$old_rc" "the old pgring's exit status"
moved=$(sed -n 's/.*upgrade: \([0-9]*\) clients handed over, \([0-9]*\) lost.*/\1/p' "$OLD_LOG")
taken=$(sed -n 's/.*the predecessor has exited (\([0-9]*\) clients taken over).*/\1/p' "$TEST_TMP/new.log")
# the idle ones and the 8 transaction-pooled pgbench clients (between two transactions)
assert_num_cmp "${moved:-0}" -ge $((NIDLE + 8)) "clients handed over (old log)"
assert_eq "$moved" "$taken" "clients handed over = clients taken over"
# session-pooled clients move too, each with its own server, between two
# transactions: every client moved (the SCRAM one below included)
grep -q "not handed over" "$OLD_LOG" && fail "a client stayed behind: $(grep -m1 'not handed over' "$OLD_LOG")"
assert_num_cmp "${moved:-0}" -ge $((NIDLE + 14)) "clients handed over, the 4 session-pooled ones included"
lost=$(sed -n 's/.*upgrade: [0-9]* clients handed over, \([0-9]*\) lost.*/\1/p' "$OLD_LOG")
assert_eq 0 "$lost" "clients lost in the hand-over"
taken_metric=$(metric pgring_shard_clients_taken_over_total) || fail "no pgring_shard_clients_taken_over_total in /metrics"
assert_num_cmp "$taken_metric" -ge "$NIDLE" "pgring_clients_taken_over_total"
pass "the old pgring exited (status 0) holding nobody: $moved clients moved, none lost"

# the pools' counters came along: the session-pooled runs never left the old
# process, so without them the new one's total would be short
wait_until 10 grep -q "pool counters are added" "$TEST_TMP/new.log" || fail "the pools' counters were not carried over"
xacts=$(metric pgring_pool_transactions_total) || fail "no pgring_pool_transactions_total"
assert_num_cmp "$xacts" -ge "$bench_total" "transactions counted by the successor (pgbench: $bench_total)"
pass "the pools' counters carried over: $xacts transactions counted, pgbench ran $bench_total"

# ---- 5. the servers came along (the session-pooled clients' own, and the
# idle ones). The successor's own servers, opened for
# the clients that came first, may fill a pool before the old ones arrive:
# those are closed (logged), the rest join its pool.
smoved=$(sed -n 's/.*; \([0-9]*\) server connections handed over, \([0-9]*\) lost.*/\1/p' "$OLD_LOG")
slost=$(sed -n 's/.*; [0-9]* server connections handed over, \([0-9]*\) lost.*/\1/p' "$OLD_LOG")
sreceived=$(sed -n 's/.*upgrade: \([0-9]*\) server connections taken over.*/\1/p' "$TEST_TMP/new.log")
assert_num_cmp "${smoved:-0}" -ge 1 "idle server connections handed over (old log)"
assert_eq 0 "$slost" "idle server connections lost in the hand-over"
assert_eq "$smoved" "$sreceived" "server connections handed over = received"
adopted=$(metric pgring_shard_servers_taken_over_total)
refused=$(grep -c "server connection of the predecessor .* is closed" "$TEST_TMP/new.log")
assert_eq "$sreceived" $((adopted + refused)) "received = adopted ($adopted) + closed ($refused)"
assert_num_cmp "$adopted" -ge 1 "idle server connections adopted"
before=$(qd "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE usename = 'app' AND backend_start < '$UPGRADE_AT'")
servers=$(Q_DB=pgbouncer q "SHOW SERVERS") || fail "SHOW SERVERS on the successor"
kept=0 withstmts=0
for pid in $before; do
	row=$(awk -F'|' -v pid="$pid" '$17 == pid' <<<"$servers")
	[[ -n $row ]] || continue
	kept=$((kept + 1))
	(($(cut -d'|' -f20 <<<"$row") > 0)) && withstmts=$((withstmts + 1))
done
assert_num_cmp "$kept" -ge 1 "the successor's servers whose backend started before the upgrade"
assert_num_cmp "$withstmts" -ge 1 "... with protocol-level statements prepared"
pass "idle server connections moved: $smoved handed over, $adopted adopted, $refused closed (pool full); the successor serves on $kept backends from before the upgrade, $withstmts with prepared statements"

# ---- 5b. the idle session-pooled and pinned clients kept their sessions: the
# same backend, the temporary table with the row of before
touch "$TEST_TMP/keepers.go"
for name in sess pinned; do
	wait_exit "${KEEPER_PID[$name]}" 30 || fail "the $name client did not finish"
	assert_eq 0 "$WAIT_STATUS" "the $name client's status ($(tr '\n' ' ' <"$TEST_TMP/$name.out"))"
	first=$(grep '^1|' "$TEST_TMP/$name.out") second=$(grep '^2|' "$TEST_TMP/$name.out")
	[[ -n $second ]] || fail "the $name client lost its session: $(tr '\n' ' ' <"$TEST_TMP/$name.out")"
	assert_eq "${first#1|}" "${second#2|}" "the $name client's backend before and after the upgrade"
	pass "an idle $name client moved with its server: backend ${first#1|}, its temporary table and its row"
done

wait_exit $CURSOR_PID 30 || fail "the cursor client did not finish"
first=$(grep '^1|' "$TEST_TMP/cursor.out") second=$(grep '^2|' "$TEST_TMP/cursor.out")
# status 3: its second DECLARE fails, as meant: the cursor is there
assert_eq 3 "$WAIT_STATUS" "the cursor client's status ($(tr '\n' ' ' <"$TEST_TMP/cursor.out"))"
assert_contains "$(cat "$TEST_TMP/cursor.out")" "42P03" "the held cursor still exists after the upgrade"
[[ -n $second ]] || fail "the held cursor's FETCH after the upgrade: $(tr '\n' ' ' <"$TEST_TMP/cursor.out")"
assert_eq "${first#1|}" "${second#2|}" "the cursor client's backend before and after the upgrade"
pass "an idle client holding a WITH HOLD cursor moved with its server: backend ${first#1|}, FETCH goes on at row 2"

# ---- 5c. the listeners missed nothing and got nothing twice
wait $NOTIFIER
[[ ! -s $TEST_TMP/notifier.out ]] || fail "the notifier: $(cat "$TEST_TMP/notifier.out")"
want=$(seq 1 "$NLISTEN" | tr '\n' ' ')
for spec in tx1:up_tx tx2:up_tx tx3:up_tx2 sess:up_sess; do
	name=${spec%%:*} channel=${spec#*:}
	wait_exit "${LISTENER_PID[$name]}" 60 || fail "the $name listener did not finish: $(tail -3 "$TEST_TMP/listen-$name.out")"
	assert_eq 0 "$WAIT_STATUS" "the $name listener's status ($(grep -v '^pid\|^notify' "$TEST_TMP/listen-$name.out"))"
	got=$(sed -n "s/^notify $channel //p" "$TEST_TMP/listen-$name.out" | tr '\n' ' ')
	assert_eq "$want" "$got" "the $name listener's notifications, in order, each once"
	assert_not_contains "$(cat "$TEST_TMP/listen-$name.err")" "missed" "the $name listener: told of missed notifications"
done
assert_not_contains "$(grep '^pid' "$TEST_TMP/listen-sess.out")" "changed" "the session-pooled listener's backend"
grep -q "LISTEN connection handed over to the new process with its" "$OLD_LOG" ||
	fail "no pool's LISTEN connection was handed over"
grep -q "listener for app/app taken over from the predecessor" "$TEST_TMP/new.log" ||
	fail "the successor took no LISTEN connection over"
groups=$(grep -c "LISTEN connection handed over" "$OLD_LOG")
pass "4 listening clients moved while $NLISTEN notifications per channel went out: each got all, in order, once ($groups LISTEN connection(s) moved with their clients; the session-pooled one kept its backend)"

# ---- 6. the SCRAM client's next server logs in with the keys it brought
touch "$TEST_TMP/scram.go"
wait_exit $SCRAM_PID 30 || fail "the SCRAM client did not finish"
# status 3: its pg_terminate_backend fails, as meant, each time
assert_eq 3 "$WAIT_STATUS" "the SCRAM client's status ($(tr '\n' ' ' <"$TEST_TMP/scram.out"))"
assert_eq 2 "$(grep -c '^ERROR 57P01 ' "$TEST_TMP/scram.out")" "its server terminated, before and after the upgrade"
assert_eq scramuser "$(tail -1 "$TEST_TMP/scram.out")" "the moved SCRAM client's query on a new server"
assert_eq 2 "$(grep -c '^scramuser$' "$TEST_TMP/scram.out")" "current_user before and after the upgrade"
pass "a moved SCRAM pass-through client gets a new server logged in with its keys in the successor"

touch "$TEST_TMP/go"
wait_exit $HOLD_PID 120 || fail "holdclients did not finish"
[[ $WAIT_STATUS == 0 ]] || fail "idle clients after the upgrade: $(cat "$TEST_TMP/hold.out") $(head -5 "$TEST_TMP/hold.err")"
pass "$(tail -1 "$TEST_TMP/hold.out"): prepared statement, application_name and cancel key carried over"

assert_eq 1 "$(q "SELECT 1")" "the successor serves new clients"
kill -TERM "$NEW_PID"
wait_exit "$NEW_PID" 15 || fail "the successor did not stop on SIGTERM"
pass "the successor stops on SIGTERM"
