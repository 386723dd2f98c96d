#!/usr/bin/env bash
# t_copy: COPY through the pooler, session and transaction mode (pool_size 1,
# shards 2):
#  - COPY FROM STDIN of 100 MB (psql \copy, 1M rows): all rows arrive intact;
#  - COPY TO STDOUT of the same 100 MB to a reader that starts 2 s late: the bytes
#    are identical (md5) and the pooler must hold the server back meanwhile;
#  - the pooler's peak RSS (VmHWM) over all of it stays under RSS_BOUND_KB;
#  - an error mid-COPY FROM (a non-integer at row 500000 of 1M, psql \copy): the
#    client gets 22P02 naming line 500000, the next query on the same connection
#    works, nothing was inserted, and the one server is reused (same backend pid)
#    with no transaction open (pg_stat_activity, directly);
#  - tests/integration/copyclient.c (CopyFail after 1000 rows and after 20 MB,
#    CopyFail and a bad row inside BEGIN, COPY TO STDOUT through the extended
#    protocol and failing after 299999 rows, each followed by a query on the same
#    connection and a look at pg_stat_activity): its transcript through the
#    pooler must be identical to the one directly against PostgreSQL, and the one
#    server is reused afterwards (same pid, idle, no transaction);
#  - COPY FROM STDIN through the extended protocol (ending well, with CopyFail,
#    with a bad row): the same transcript check; then, while that client idles,
#    another client (transaction mode) gets the server at once, and the server
#    survives the client's leaving.
. "$(dirname "$0")/lib.sh"

# The bound on the pooler's peak RSS. Measured on the 2-core development machine
# (2 shards, default buffers: per shard 1024 x 16 kB server + 1024 x 2 kB client
# receive buffers): about 40 MB (see the "peak RSS" notes); a pooler that
# buffered a 100 MB COPY would be far above it.
RSS_BOUND_KB=${RSS_BOUND_KB:-65536}

COPYC=$HELPERS/copyclient
[[ -x $COPYC ]] || fail "helper $COPYC not built"

qd "DROP TABLE IF EXISTS copy_t, copy_bad, copy_c;
    CREATE UNLOGGED TABLE copy_t (id int, v text); ALTER TABLE copy_t OWNER TO app;
    CREATE UNLOGGED TABLE copy_bad (id int, v text); ALTER TABLE copy_bad OWNER TO app;
    CREATE UNLOGGED TABLE copy_c (id int, v text); ALTER TABLE copy_c OWNER TO app" >/dev/null || fail "setup tables"

GEN="SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 1000000) g"
data=$TEST_TMP/data.tsv bad=$TEST_TMP/bad.tsv
qd "COPY ($GEN) TO STDOUT" >"$data" || fail "generating the data"
bytes=$(stat -c %s "$data")
assert_num_cmp "$bytes" -gt 100000000 "bytes of COPY data"
sed '500000s/^[0-9]*/x500000/' "$data" >"$bad"
assert_eq "x500000" "$(sed -n '500000s/\t.*//p' "$bad")" "the bad row"
md5_data=$(md5sum <"$data" | cut -d' ' -f1)
expect_len=$(awk -F'\t' '{ s += length($2) } END { print s }' "$data")

psql_app() { # CONNINFO ARGS...: psql as app, errors do not stop it
	local ci=$1
	shift
	timeout "$Q_TIMEOUT" psql -X -Atq -v ON_ERROR_STOP=0 "$@" "$ci"
}
ms_since() { echo $(($(now_ms) - $1)); }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$POOLER_PID/status"; }
app_backends() { # pid:state:xact-open of app's backends
	qd "SELECT coalesce(string_agg(pid || ':' || state || ':' || (xact_start IS NOT NULL OR backend_xid IS NOT NULL), ','), 'none')
	    FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'"
}

# copy_in LABEL CONNINFO: 100 MB into copy_t; checks the rows; prints ms
copy_in() {
	qd "TRUNCATE copy_t" >/dev/null
	local t0 out
	t0=$(now_ms)
	out=$(psql_app "$2" -c "\\copy copy_t from '$data'" -c "SELECT 'after-copy-in'" 2>&1) || fail "$1: COPY FROM failed: $out"
	COPY_MS=$(ms_since "$t0")
	assert_eq "after-copy-in" "$out" "$1: COPY FROM, then a query on the same connection"
	assert_eq "1000000|500000500000|$expect_len" "$(qd "SELECT count(*), sum(id), sum(length(v)) FROM copy_t")" "$1: rows copied in"
}

# copy_out LABEL CONNINFO: 100 MB to a reader that starts 2 s late; prints ms
copy_out() {
	local t0 sum
	t0=$(now_ms)
	sum=$(timeout "$Q_TIMEOUT" psql -X -Atq -v ON_ERROR_STOP=1 -c "COPY ($GEN) TO STDOUT" "$2" | { sleep 2; md5sum | cut -d' ' -f1; })
	COPY_MS=$(ms_since "$t0")
	assert_eq "$md5_data" "$sum" "$1: md5 of COPY TO STDOUT"
}

# --- directly: the reference times and transcript
qd "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'" >/dev/null
DIRECT_APP="host=$PGHOST_REAL port=$PGPORT_REAL dbname=app user=app password=app"
copy_in direct "$DIRECT_APP"
note "direct: COPY FROM of $bytes bytes: $COPY_MS ms"
copy_out direct "$DIRECT_APP"
note "direct: COPY TO STDOUT (reader 2 s late): $COPY_MS ms"
wait_until 5 eval '[[ $(pg_backends app) == 0 ]]' || fail "direct: app backends left"
SIMPLE_STEPS="copyfail copyfail-big copyfail-xact copy-xact copy-out-ext copy-out-error badrow"
timeout 60 "$COPYC" "$DIRECT_APP" "$(conninfo_direct)" $SIMPLE_STEPS >"$TEST_TMP/copyc-direct.txt" 2>&1 ||
	fail "copyclient directly: $(tail -3 "$TEST_TMP/copyc-direct.txt")"
ref=$TEST_TMP/copyc-direct.txt
assert_eq "== end" "$(tail -1 "$ref")" "copyclient directly: complete"
assert_eq 3 "$(grep -c '57014 COPY from stdin failed: pgring-test' "$ref")" "copyclient directly: CopyFail errors"
assert_contains "$(cat "$ref")" "received 299999 rows" "copyclient directly: COPY TO failing midway"
wait_until 5 eval '[[ $(pg_backends app) == 0 ]]' || fail "direct: app backends left"
timeout 60 "$COPYC" "$DIRECT_APP" "$(conninfo_direct)" copy-ext >"$TEST_TMP/copyx-direct.txt" 2>&1 ||
	fail "copyclient copy-ext directly: $(tail -3 "$TEST_TMP/copyx-direct.txt")"
refx=$TEST_TMP/copyx-direct.txt
assert_contains "$(cat "$refx")" "57014 COPY from stdin failed: pgring-test: extended CopyFail" "copyclient copy-ext directly"

# Checks whose failure is reported at the end, so that both modes run.
late_failures=()
late() { # CHECK... : run an assert_* in a subshell; on failure remember its message
	local msg
	msg=$( ( "$@" ) 2>&1 ) && return 0
	msg=$(grep '^FAIL' <<<"$msg")
	echo "# LATER $msg"
	late_failures+=("${msg#FAIL \[$TEST_NAME\]: }")
	return 0
}

same_transcript() { # LABEL REFERENCE FILE
	if ! cmp -s "$2" "$3"; then
		diff -u "$2" "$3" | head -40 | sed 's/^/#   /'
		fail "$1: copyclient transcript through $TARGET differs from the direct one (- direct, + $TARGET)"
	fi
}

peaks=()
for mode in session transaction; do
	wait_until 5 eval '[[ $(pg_backends app) == 0 ]]' || fail "$mode: app backends left before the start"
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = $mode
default_pool_size = 1
shards = 2
"
	server_pid=$(q "SELECT pg_backend_pid()") || fail "$mode: first query"
	hwm_start=$(hwm_kb)
	note "$mode: peak RSS after the start: $hwm_start kB"

	copy_in "$mode" "$(conninfo)"
	note "$mode: COPY FROM of $bytes bytes through $TARGET: $COPY_MS ms; peak RSS now $(hwm_kb) kB"
	copy_out "$mode" "$(conninfo)"
	note "$mode: COPY TO STDOUT through $TARGET (reader 2 s late): $COPY_MS ms; peak RSS now $(hwm_kb) kB"

	# an error at row 500000 of the COPY FROM; the same connection carries on
	out=$(psql_app "$(conninfo)" -c "\\copy copy_bad from '$bad'" -c "SELECT 'after-bad-row', count(*) FROM copy_bad" 2>"$TEST_TMP/bad.err")
	err=$(cat "$TEST_TMP/bad.err")
	assert_contains "$err" 'invalid input syntax for type integer: "x500000"' "$mode: the bad row's error"
	assert_contains "$err" "line 500000" "$mode: the error names the line"
	assert_eq "after-bad-row|0" "$out" "$mode: the next query on the same connection, nothing inserted"
	assert_eq "$server_pid:idle:false" "$(app_backends)" "$mode: after the bad row, the one server is idle with no transaction"
	assert_eq "$server_pid" "$(q "SELECT pg_backend_pid()")" "$mode: the same server serves the next client"

	# CopyFail and the rest (simple protocol), compared with the direct transcript
	timeout 60 "$COPYC" "$(conninfo)" "$(conninfo_direct)" $SIMPLE_STEPS >"$TEST_TMP/copyc-$mode.txt" 2>&1
	same_transcript "$mode" "$ref" "$TEST_TMP/copyc-$mode.txt"
	assert_eq "$server_pid:idle:false" "$(app_backends)" "$mode: after CopyFail & co, the one server is idle with no transaction"
	assert_eq "$server_pid" "$(q "SELECT pg_backend_pid()")" "$mode: and serves the next client"

	# COPY FROM STDIN through the extended protocol (libpq sends a Sync after the
	# Execute, which the server ignores in copy-in mode, and one after CopyDone or
	# CopyFail: two Syncs, one ReadyForQuery). The client then stays connected,
	# idle, for 3 s: in transaction mode another client must get the server at
	# once; in either mode the server must survive the client's leaving.
	COPYCLIENT_HOLD=3 timeout 60 "$COPYC" "$(conninfo)" "$(conninfo_direct)" copy-ext >"$TEST_TMP/copyx-$mode.txt" 2>&1 &
	holder=$!
	wait_until 10 grep -qx "== end" "$TEST_TMP/copyx-$mode.txt" || { cat "$TEST_TMP/copyx-$mode.txt"; fail "$mode: copy-ext did not finish"; }
	if [[ $mode == transaction ]]; then
		t0=$(now_ms)
		v=$(Q_TIMEOUT=5 q "SELECT pg_backend_pid()")
		el=$(ms_since "$t0")
		note "transaction: another client's query while the copy-ext client idles: $el ms"
		late assert_num_cmp "$el" -lt 1000 "transaction: ms another client waited while the extended-COPY client is idle (it must not hold the server)"
		late assert_eq "$server_pid" "$v" "transaction: the same server"
	fi
	wait "$holder"
	late same_transcript "$mode copy-ext" "$refx" "$TEST_TMP/copyx-$mode.txt"
	late assert_eq "$server_pid:idle:false" "$(app_backends)" "$mode: after the extended-protocol COPY client left, the one server is still there, idle, no transaction"
	server_pid=$(q "SELECT pg_backend_pid()") || fail "$mode: query after copy-ext"

	hwm=$(hwm_kb)
	note "$mode: peak RSS (VmHWM) of $TARGET over the test: $hwm kB (bound $RSS_BOUND_KB kB)"
	assert_num_cmp "$hwm" -lt "$RSS_BOUND_KB" "$mode: peak RSS of $TARGET in kB"
	peaks+=("$mode=${hwm}kB")
	stop_pgring || fail "$mode: $TARGET did not stop"
	pass "$mode mode (the extended-COPY checks, if any failed, are reported at the end)"
done
note "peak RSS: ${peaks[*]}"
((${#late_failures[@]} == 0)) || fail "$(printf '%s; ' "${late_failures[@]}")"
