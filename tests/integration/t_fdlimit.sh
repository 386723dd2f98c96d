#!/usr/bin/env bash
# t_fdlimit: pgring at its descriptor limit (ulimit -n 400, two shards). More
# clients than descriptors log in at once (build/bench/idleconns), cold and then
# warm: every client is either logged in or told 53300 with the reason (none left
# waiting without a reply), servers still get descriptors (the cold round's
# logins need them), a session opened before keeps working, a new psql gets the
# FATAL after its startup packet, and pgring recovers when the clients leave.
. "$(dirname "$0")/lib.sh"
pgring_only "pgring's descriptor limit"

IDLE=$BUILD/bench/idleconns
[[ -x $IDLE ]] || fail "helper $IDLE not built"
LIMIT=400 N=700
(($(ulimit -Hn) >= N + 100)) || ulimit -n $((N + 100)) 2>/dev/null || skip "open files limit $(ulimit -Hn) too low"

fd_limited_pgring $LIMIT
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 5
max_client_conn = 5000
shards = 2
"
assert_contains "$(awk '/Max open files/ { print $4, $5 }' "/proc/$POOLER_PID/limits")" "$LIMIT $LIMIT" "pgring runs with ulimit -n $LIMIT"
wait_until 5 grep -q "descriptor limit $LIMIT:" "$POOLER_LOG" || fail "no start-up line about the descriptor limit"
note "$(grep "descriptor limit $LIMIT:" "$POOLER_LOG")"

# flood ROUND: N logins at once, held 6 s; sets OUT
flood() {
	"$IDLE" -h 127.0.0.1 -p "$PORT" -U app -W app -d app -n "$N" -P "$POOLER_PID" -t "fdlimit-$1" \
		-c "$N" -T 10 -S 1 -H 6 >"$TEST_TMP/flood-$1.out" 2>"$TEST_TMP/flood-$1.err" &
	FLOOD_PID=$!
	track_pid $FLOOD_PID
}
check_flood() { # ROUND MIN_ESTABLISHED
	wait "$FLOOD_PID" # exits 1 when any client failed: the counts below decide
	local out
	out=$(grep '^target=' "$TEST_TMP/flood-$1.out") || fail "idleconns printed no result ($1): $(head -5 "$TEST_TMP/flood-$1.err")"
	note "$1: $out"
	local est failed
	est=$(sed -n 's/.* established=\([0-9]*\).*/\1/p' <<<"$out")
	failed=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<<"$out")
	assert_num_cmp "$est" -ge "$2" "$1: at least $2 of $N clients logged in"
	assert_num_cmp "$est" -lt "$LIMIT" "$1: no more clients than descriptors"
	assert_eq "$N" $((est + failed)) "$1: every client accounted for"
	assert_match "$out" "errors=\"53300:$failed\"" "$1: every refused client got 53300, none timed out"
	assert_contains "$out" 'first_error="53300 no more connections allowed: pgring is out of file descriptors"' \
		"$1: the reason is given"
	assert_contains "$(cat "$TEST_TMP/flood-$1.out")" "dropped_while_idle=0" "$1: no logged-in client was dropped"
}

# Cold: no server yet, so the logins need server descriptors while clients take theirs.
flood cold
sleep 3
out=$(psql -X -Atq -c "select 1" "$(conninfo)" 2>&1)
assert_contains "$out" "FATAL:  no more connections allowed: pgring is out of file descriptors" \
	"a new psql at the limit gets the FATAL after its startup packet"
check_flood cold 300
alive "$POOLER_PID" || fail "pgring died"
assert_eq 1 "$(q "select 1")" "pgring serves again once the clients left"

# Warm: a session opened before the flood keeps being served during it.
psql_open s1 "$(conninfo)"
psql_send s1 "select 'before';"
psql_sync s1 || fail "session s1 did not answer"
flood warm
sleep 3
psql_send s1 "select 'during';"
psql_sync s1 || fail "session s1 stalled at the descriptor limit"
assert_contains "$(psql_out s1)" "during" "an existing session is served at the limit"
check_flood warm 300
psql_close s1

alive "$POOLER_PID" || fail "pgring died"
assert_eq 1 "$(q "select 1")" "pgring serves after the second flood"
refused=$(metric pgring_shard_fd_refused_total) || fail "no fd_refused metric"
assert_num_cmp "$refused" -ge $((2 * (N - LIMIT))) "fd_refused counts the refusals"
lines=$(grep -c "descriptor limit" "$POOLER_LOG")
note "$lines log lines about the descriptor limit; $(grep -c 'cannot connect' "$POOLER_LOG") about failed connects"
assert_num_cmp "$lines" -ge 2 "the refusals are logged"
assert_num_cmp "$lines" -le 40 "and rate-limited (not one line per client)"
pass "t_fdlimit"
