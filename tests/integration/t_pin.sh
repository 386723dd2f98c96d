#!/usr/bin/env bash
# t_pin: session state that cannot be restored on another server pins the client to
# its server until released: a session advisory lock (released by
# pg_advisory_unlock_all()), a temporary table (DISCARD TEMP; one made inside a
# transaction block: DISCARD ALL), a WITH HOLD cursor (CLOSE). LISTEN does not
# pin in transaction mode (the pool's listener delivers; t_listen has the rest).
#  Part 1 (pool of 2): while pinned, the client keeps its lock / temp table / cursor
#   position across transactions and its backend pid stays the same, while two other
#   clients run transactions beside it and never see its state (their
#   pg_try_advisory_xact_lock gets false, pg_temp.pin_tt does not exist for them,
#   pg_cursors is empty, their pid differs); a LISTENer (tests/integration/listen.c,
#   idle) receives NOTIFYs sent directly and sent through the pooler by another
#   client, unpinned (pgring_pool_listeners is 1). pgring_pool_clients_pinned
#   {database="app",user="app"} is 1 while pinned and 0 after the release.
#  Part 2 (pool of 1): while a client is pinned, another client's query waits; it
#   completes only after the release (then within seconds). A listening client
#   holds no server: the other client's query completes at once.
#
# PGRING_TEST_VIA=transaction (default) | session (pgring in session mode: part 1
# must already pass; no gauge, no part 2) | direct (PostgreSQL itself: part 1).
. "$(dirname "$0")/lib.sh"

[[ $VIA == transaction ]] && pgring_only "pinning in transaction mode is pgring's"
[[ -x $HELPERS/listen ]] || fail "helper $HELPERS/listen not built"
txn() { [[ $VIA == transaction ]]; }

open_client() {
	psql_open "$1" "$(conninfo app app app "${2:-}")"
	say "$1" '\set QUIET on'
	[[ -z $SAY_ERR ]] || fail "$1: could not connect: $SAY_ERR"
}

SERIES='database="app",user="app"'
pinned() { metric pgring_pool_clients_pinned "$SERIES"; }
pinned_is() { # N WHAT: the gauge reaches N (transaction mode only)
	txn || return 0
	wait_until 5 eval '[[ $(pinned) == '"$1"' ]]' ||
		fail "$2: pgring_pool_clients_pinned{$SERIES} expected $1, got [$(pinned)]"
}

# others_and_p PX P_SQL P_EXPECT PROBE_SQL PROBE_EXPECT: O1 runs PROBE_SQL, O2 a
# transaction reporting its pid, P runs P_SQL, all at once; four rounds.
others_and_p() {
	local px=$1 psql_=$2 pwant=$3 probe=$4 pwant_o=$5 k
	for k in 1 2 3 4; do
		say_send O1 "$probe"
		say_send O2 "BEGIN;" "SELECT pg_backend_pid();" "SELECT pg_sleep(0.02);" "COMMIT;"
		say_send P "${psql_//@K@/$k}"
		say_wait O1
		[[ -z $SAY_ERR ]] || fail "O1: probe [$probe]: $SAY_ERR"
		assert_eq "$pwant_o" "$SAY_OUT" "O1 (round $k) must not see P's state: [$probe]"
		say_wait O2
		[[ -z $SAY_ERR ]] || fail "O2: $SAY_ERR"
		txn && assert_ne "$px" "${SAY_OUT%%$'\n'*}" "O2 (round $k) must not get P's pinned server"
		say_wait P
		[[ -z $SAY_ERR ]] || fail "P (round $k): [$psql_]: $SAY_ERR"
		assert_eq "${pwant//@K@/$k}" "$SAY_OUT" "P (round $k) keeps its state and server"
	done
}

# ------------------------------------------------------------ part 1
via_start 2
open_client P
open_client O1
open_client O2
say_ok P "SELECT 1;"
pinned_is 0 "before anything"

# Session advisory lock.
say_ok P "SELECT pg_advisory_lock(4242);"
say_ok P "SELECT pg_backend_pid();"
PX=$SAY_OUT
pinned_is 1 "after pg_advisory_lock"
others_and_p "$PX" \
	"SELECT pg_backend_pid(), (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted);" \
	"$PX|1" "SELECT pg_try_advisory_xact_lock(4242);" f
say_ok P "SELECT pg_advisory_unlock_all();"
pinned_is 0 "after pg_advisory_unlock_all()"
say_ok O1 "SELECT pg_try_advisory_xact_lock(4242);"
assert_eq t "$SAY_OUT" "O1: the lock is free after P's pg_advisory_unlock_all()"
pass "session advisory lock pins until pg_advisory_unlock_all()"

# Temporary table (DISCARD TEMP), then one made in a transaction block (DISCARD ALL).
say_ok P "CREATE TEMP TABLE pin_tt AS SELECT 7 AS x;"
say_ok P "SELECT pg_backend_pid();"
PX=$SAY_OUT
pinned_is 1 "after CREATE TEMP TABLE"
others_and_p "$PX" "INSERT INTO pin_tt VALUES (@K@);" "" "SELECT to_regclass('pg_temp.pin_tt') IS NULL;" t
say_ok P "SELECT pg_backend_pid(), string_agg(x::text, ',' ORDER BY x) FROM pin_tt;"
assert_eq "$PX|1,2,3,4,7" "$SAY_OUT" "P: its temp table across transactions"
say_ok P "DISCARD TEMP;"
pinned_is 0 "after DISCARD TEMP"
say_ok P "SELECT to_regclass('pg_temp.pin_tt') IS NULL;"
assert_eq t "$SAY_OUT" "P: temp table gone after DISCARD TEMP"
say_ok P "BEGIN;" "CREATE TEMP TABLE pin_tt2 (y int);" "INSERT INTO pin_tt2 VALUES (1);" "COMMIT;"
say_ok P "SELECT pg_backend_pid();"
PX=$SAY_OUT
pinned_is 1 "after CREATE TEMP TABLE in a transaction block"
others_and_p "$PX" "SELECT pg_backend_pid(), count(*) FROM pin_tt2;" "$PX|1" "SELECT to_regclass('pg_temp.pin_tt2') IS NULL;" t
say_ok P "DISCARD ALL;"
pinned_is 0 "after DISCARD ALL"
say_ok P "SELECT to_regclass('pg_temp.pin_tt2') IS NULL;"
assert_eq t "$SAY_OUT" "P: temp table gone after DISCARD ALL"
pass "temporary tables pin until DISCARD TEMP / DISCARD ALL"

# WITH HOLD cursor.
say_ok P "DECLARE pin_c CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 20) g;"
say_ok P "SELECT pg_backend_pid();"
PX=$SAY_OUT
pinned_is 1 "after DECLARE ... WITH HOLD"
for k in 1 2 3 4; do
	say_send O1 "SELECT count(*) FROM pg_cursors;"
	say_send O2 "BEGIN;" "SELECT pg_backend_pid();" "COMMIT;"
	say_send P "FETCH 2 FROM pin_c;" "SELECT pg_backend_pid();"
	say_wait O1
	assert_eq 0 "$SAY_OUT" "O1 (round $k): pg_cursors must not show P's cursor ($SAY_ERR)"
	say_wait O2
	txn && assert_ne "$PX" "${SAY_OUT%%$'\n'*}" "O2 (round $k) must not get P's pinned server"
	say_wait P
	[[ -z $SAY_ERR ]] || fail "P (round $k): FETCH: $SAY_ERR"
	assert_eq "$(printf '%s\n%s\n%s' $((2 * k - 1)) $((2 * k)) "$PX")" "$SAY_OUT" "P (round $k): cursor position kept, same server"
done
say_ok P "CLOSE pin_c;"
pinned_is 0 "after CLOSE"
say P "FETCH 1 FROM pin_c;"
assert_contains "$SAY_ERR" 'cursor "pin_c" does not exist' "P: cursor gone after CLOSE"
pass "WITH HOLD cursors pin until CLOSE"

# LISTEN: an idle listener receives NOTIFY sent directly and through the pooler.
"$HELPERS/listen" "$(conninfo)" pin_ch 4 20 >"$TEST_TMP/listen1.out" 2>&1 &
LPID=$!
track_pid $LPID
on_exit "kill_wait $LPID KILL"
wait_until 10 grep -qx listening "$TEST_TMP/listen1.out" || fail "listener did not start: $(cat "$TEST_TMP/listen1.out")"
if txn; then
	pinned_is 0 "while a client LISTENs"
	assert_eq 1 "$(metric pgring_pool_listeners 'database="app"')" "listening clients"
	assert_eq 1 "$(metric pgring_pool_servers 'state="listener"')" "listening connections"
fi
for k in 1 2 3 4; do
	say_send O2 "BEGIN;" "SELECT pg_backend_pid();" "COMMIT;"
	if ((k % 2)); then
		qd "NOTIFY pin_ch, 'msg$k'" || fail "NOTIFY directly"
	else
		say_ok O1 "NOTIFY pin_ch, 'msg$k';"
	fi
	wait_until 10 grep -qx "notify pin_ch msg$k" "$TEST_TMP/listen1.out" ||
		fail "listener did not receive msg$k ($( ((k % 2)) && echo "sent directly" || echo "sent through the pooler")): $(tr '\n' ' ' <"$TEST_TMP/listen1.out")"
	say_wait O2
	[[ -z $SAY_ERR ]] || fail "O2 beside the listener: $SAY_ERR"
done
wait_exit $LPID 10 || fail "listener did not finish"
assert_eq 0 "$WAIT_STATUS" "listener exit status ($(tr '\n' ' ' <"$TEST_TMP/listen1.out"))"
if txn; then
	wait_until 5 eval '[[ $(metric pgring_pool_listeners "database=\"app\"") == 0 ]]' || fail "listeners after the listener left"
	wait_until 5 eval '[[ $(metric pgring_pool_servers "state=\"listener\"") == 0 ]]' ||
		fail "the listening connection stays after its last client left"
	pass "LISTEN does not pin; NOTIFY (direct and through the pooler) reaches the idle listener"
else
	assert_eq 4 "$(grep -c '^pid same$' "$TEST_TMP/listen1.out")" "listener stayed on its server: $(tr '\n' ' ' <"$TEST_TMP/listen1.out")"
	pass "NOTIFY reaches the idle listener"
fi

for c in P O1 O2; do psql_close "$c"; done
if [[ $VIA != transaction ]]; then
	note "part 2 (waiting for a pinned server) only in transaction mode"
	[[ $VIA == direct ]] || stop_pgring
	exit 0
fi
stop_pgring || fail "pgring did not stop"

# ------------------------------------------------------------ part 2
via_start 1
open_client P
# waiter_blocked_until WHAT RELEASE_COMMAND...: with P pinned, another client's
# query must wait; it must complete only after RELEASE_COMMAND, and then promptly.
n_wait=0
waiter_blocked_until() {
	local what=$1 f t0
	shift
	n_wait=$((n_wait + 1))
	f=$TEST_TMP/waiter$n_wait
	(
		out=$(q "SELECT 'waiter-done'" 2>&1)
		echo "$?|$out" >"$f.res"
		now_ms >"$f.t"
	) &
	local wpid=$!
	track_pid $wpid
	on_exit "kill_wait $wpid KILL"
	sleep 1
	[[ ! -e $f.t ]] || fail "$what: another client's query completed while the only server was pinned: $(cat "$f.res")"
	t0=$(now_ms)
	"$@"
	wait_until 10 test -e "$f.t" || fail "$what: the waiting query did not complete within 10 s of the release"
	assert_eq "0|waiter-done" "$(cat "$f.res")" "$what: the waiting query's result"
	assert_num_cmp "$(cat "$f.t")" -ge "$t0" "$what: the waiting query completed after the release"
	wait $wpid 2>/dev/null
	pass "$what: another client waited for the pinned server and proceeded after the release"
}

say_ok P "SELECT pg_advisory_lock(77);"
pinned_is 1 "pool of 1: advisory lock"
waiter_blocked_until "advisory lock" say_ok P "SELECT pg_advisory_unlock_all();"
pinned_is 0 "pool of 1: after pg_advisory_unlock_all()"

say_ok P "CREATE TEMP TABLE pin_t1 (z int);"
pinned_is 1 "pool of 1: temp table"
waiter_blocked_until "temp table" say_ok P "DISCARD TEMP;"
pinned_is 0 "pool of 1: after DISCARD TEMP"

say_ok P "DECLARE pin_c1 CURSOR WITH HOLD FOR SELECT 1;"
pinned_is 1 "pool of 1: cursor"
waiter_blocked_until "WITH HOLD cursor" say_ok P "CLOSE pin_c1;"
pinned_is 0 "pool of 1: after CLOSE"
psql_close P

"$HELPERS/listen" "$(conninfo)" pin_ch2 1 30 >"$TEST_TMP/listen2.out" 2>&1 &
LPID=$!
track_pid $LPID
on_exit "kill_wait $LPID KILL"
wait_until 10 grep -qx listening "$TEST_TMP/listen2.out" || fail "listener 2 did not start: $(cat "$TEST_TMP/listen2.out")"
pinned_is 0 "pool of 1: LISTEN"
assert_eq "waiter-done" "$(timeout 5 psql -X -Atq "$(conninfo)" -c "SELECT 'waiter-done'")" \
	"pool of 1: another client's query while a client listens"
qd "NOTIFY pin_ch2, 'bye'" || fail "NOTIFY directly"
wait_exit $LPID 10 || fail "listener 2 did not receive its notification: $(tr '\n' ' ' <"$TEST_TMP/listen2.out")"
assert_eq 0 "$WAIT_STATUS" "listener 2 exit status ($(tr '\n' ' ' <"$TEST_TMP/listen2.out"))"
pass "pool of 1: a listening client holds no server, and gets its notification"

stop_pgring || fail "pgring did not stop"
