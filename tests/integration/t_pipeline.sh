#!/usr/bin/env bash
# t_pipeline: libpq pipelines, Flush without Sync, cursors, single-row mode and
# named portals with row-limited Execute (raw protocol) through the pooler. The
# helper tests/integration/pipeline.c prints a transcript of everything it
# receives; run directly against PostgreSQL and through the pooler the transcripts
# must be identical, byte for byte:
#  - transaction mode, pool_size 1, shards 1: one client, then 3 at once;
#  - transaction mode, pool_size 2, shards 2: 4 clients at once;
#  - session mode.
# Then (transaction mode, as t_failures.sh but for the extended protocol and
# pipelines, which it does not cover) the server under a client is killed with
# pg_terminate_backend: while idle (next query and a pipeline just work), while a
# simple or extended query runs (the client gets 57P01, the session carries on),
# while a pipeline has more Sync segments queued behind the running query, while
# a query runs behind a Flush with no Sync, and between two statements of one
# implicit transaction; the client must hear an error for everything that did
# not run and carry on, never hang nor silently lose half a transaction.
. "$(dirname "$0")/lib.sh"

PIPE=$HELPERS/pipeline
[[ -x $PIPE ]] || fail "helper $PIPE not built"
DIRECT="host=$PGHOST_REAL port=$PGPORT_REAL dbname=app user=app password=app"

run_pipe() { # OUTFILE CONNINFO [ARGS...]: the transcript into OUTFILE; status of the helper
	local out=$1
	shift
	timeout 60 "$PIPE" "$@" >"$out" 2>&1
}

# --- the reference: directly against PostgreSQL
run_pipe "$TEST_TMP/direct.txt" "$DIRECT" || fail "direct run failed: $(tail -5 "$TEST_TMP/direct.txt")"
ref=$TEST_TMP/direct.txt
# the reference itself shows what the scenarios are about
assert_eq 133 "$(grep -c '^PGRES_PIPELINE_SYNC' "$ref")" "direct: pipeline syncs"
assert_eq 28 "$(grep -c '^PGRES_PIPELINE_ABORTED' "$ref")" "direct: aborted pipeline results"
assert_eq 9 "$(grep -c '< s PortalSuspended' "$ref")" "direct: PortalSuspended (Execute with a row limit)"
assert_contains "$(cat "$ref")" $'same_xact\n  row: t' "direct: statements before the Sync share a transaction"
assert_contains "$(cat "$ref")" "FETCH 5" "direct: cursor"
assert_eq "== end" "$(tail -1 "$ref")" "direct: the transcript is complete"
note "reference transcript: $(wc -l <"$ref") lines"

compare() { # LABEL FILE
	if ! cmp -s "$ref" "$2"; then
		diff -u "$ref" "$2" | head -40 | sed 's/^/#   /'
		fail "$1: transcript through $TARGET differs from the direct one (above: - direct, + $TARGET; whole file $2)"
	fi
}

conf() { # MODE POOL_SIZE SHARDS
	echo "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = $1
default_pool_size = $2
shards = $3
"
}

# --- transaction mode, one server, one shard
start_pgring "$(conf transaction 1 1)"
run_pipe "$TEST_TMP/t1.txt" "$(conninfo)" || note "transaction pool 1: helper status $?"
compare "transaction mode, pool 1" "$TEST_TMP/t1.txt"
pids=()
for i in 1 2 3; do
	run_pipe "$TEST_TMP/t1-$i.txt" "$(conninfo)" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for i in 1 2 3; do compare "transaction mode, pool 1, client $i of 3 at once" "$TEST_TMP/t1-$i.txt"; done
assert_eq 0 "$(qd "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state <> 'idle'")" \
	"transaction mode: every server idle afterwards"
pass "transaction mode, pool_size 1, shards 1 (1 and 3 clients)"

# --- the server killed under a transaction-mode client (pool 1, shards 1)
DIRECT_SU=$(conninfo_direct)
term_expect_common='== idle
  (killed the idle server)
PGRES_TUPLES_OK
  cols: v
  row: 42
  tag: SELECT 1
PGRES_TUPLES_OK
  cols: a
  row: p1
  tag: SELECT 1
-- null
PGRES_TUPLES_OK
  cols: a
  row: p2
  tag: SELECT 1
-- null
PGRES_PIPELINE_SYNC
  xact: IDLE'
declare -A term_expect
term_expect[running]='== running
  (killed the server running pipeline-term-1 *)
PGRES_FATAL_ERROR
  error: 57P01 terminating connection due to administrator command
  xact: IDLE
PGRES_TUPLES_OK
  cols: a
  row: after-running-kill
  tag: SELECT 1
PGRES_COMMAND_OK
  tag: BEGIN
PGRES_TUPLES_OK
  cols: a
  row: in-block
  tag: SELECT 1
PGRES_COMMAND_OK
  tag: COMMIT
  xact: IDLE'
term_expect[running-extended]='== running-extended
  (killed the server running pipeline-term-2 *)
PGRES_FATAL_ERROR
  error: 57P01 terminating connection due to administrator command
  xact: IDLE
PGRES_TUPLES_OK
  cols: after_ext
  row: 42
  tag: SELECT 1'
# seg1: its result, the error, the rest of the segment aborted; seg2 never ran on
# a server: an error for it (any SQLSTATE), then its Sync.
term_expect[running-pipeline]='== running-pipeline
  (killed the server running pipeline-term-3 *)
PGRES_TUPLES_OK
  cols: a
  row: seg1
  tag: SELECT 1
-- null
PGRES_FATAL_ERROR
  error: 57P01 terminating connection due to administrator command
-- null
PGRES_PIPELINE_ABORTED
-- null
PGRES_PIPELINE_SYNC
  xact: ACTIVE
PGRES_FATAL_ERROR
~  error: [0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z] .*
-- null
PGRES_PIPELINE_SYNC
  xact: IDLE
PGRES_TUPLES_OK
  cols: a
  row: after-pipeline-kill
  tag: SELECT 1
  xact: IDLE'
term_expect[running-flush]='== running-flush
  (killed the server running pipeline-term-4 *)
PGRES_FATAL_ERROR
  error: 57P01 terminating connection due to administrator command
-- null
PGRES_PIPELINE_SYNC
  xact: IDLE
PGRES_TUPLES_OK
  cols: a
  row: after-flush-kill
  tag: SELECT 1
  xact: IDLE'
term_expect[idle-unsynced]='== idle-unsynced
PGRES_TUPLES_OK (pid, xid not shown)
-- null
  (killed the server inside the implicit transaction)
PGRES_FATAL_ERROR
~  error: [0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z] .*
-- null
PGRES_PIPELINE_SYNC
  xact: IDLE
PGRES_TUPLES_OK
  cols: a
  row: after-unsynced-kill
  tag: SELECT 1
  xact: IDLE'

# matches EXPECTED_TEXT FILE: line by line; an expected line "~ERE" is a regex.
matches() {
	EXPECT=$1 awk 'BEGIN { n = split(ENVIRON["EXPECT"], e, "\n") }
		{ got[NR] = $0 }
		END {
			for (i = 1; i <= (n > NR ? n : NR); i++) {
				x = e[i]; g = (i in got) ? got[i] : "<missing>"
				ok = substr(x, 1, 1) == "~" ? (g ~ ("^" substr(x, 2) "$")) : (g == x)
				if (!ok) { printf "line %d: expected [%s], got [%s]\n", i, x, g; exit 1 }
			}
		}' "$2"
}

term_failures=()
term_part() { # LABEL PART
	local f=$TEST_TMP/term-$2.txt why
	PIPELINE_TIMEOUT=8 run_pipe "$f" "$(conninfo)" terminate "$DIRECT_SU" "$2"
	if ! why=$(matches "$term_expect_common"$'\n'"${term_expect[$2]}" "$f"); then
		note "$1: server killed, $2: $why; transcript:"
		sed 's/^/#     /' "$f"
		term_failures+=("$2")
	else
		pass "$1: server killed, $2"
	fi
}
for part in running running-extended running-pipeline running-flush idle-unsynced; do
	term_part "transaction pool 1" "$part"
done
assert_eq 1 "$(q "SELECT 1")" "after the kills: a new client works"
stop_pgring

# --- transaction mode, two servers, two shards, 4 clients at once
start_pgring "$(conf transaction 2 2)"
pids=()
for i in 1 2 3 4; do
	run_pipe "$TEST_TMP/t2-$i.txt" "$(conninfo)" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for i in 1 2 3 4; do compare "transaction mode, pool 2, shards 2, client $i of 4" "$TEST_TMP/t2-$i.txt"; done
pass "transaction mode, pool_size 2, shards 2 (4 clients)"
term_part "transaction pool 2 shards 2" running
stop_pgring

# --- session mode
start_pgring "$(conf session 2 2)"
run_pipe "$TEST_TMP/s.txt" "$(conninfo)" || note "session: helper status $?"
compare "session mode" "$TEST_TMP/s.txt"
stop_pgring
pass "session mode"

((${#term_failures[@]} == 0)) ||
	fail "transaction mode, a server killed under a client: wrong for ${term_failures[*]} (transcripts above)"
