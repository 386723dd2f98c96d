#!/usr/bin/env bash
# t_prepared: protocol-level prepared statements in transaction mode.
#  1. tests/integration/prepared.c "transcript": 4 clients interleave Parse / Bind /
#     Describe / Close (PQprepare, PQexecPrepared, PQdescribePrepared, a raw Close
#     message), DEALLOCATE name / ALL, DISCARD ALL, 42P05 for duplicates, 26000 for
#     names that are gone or belong to another client, unnamed statements within one
#     Sync, pipelines with several Syncs, prepares in committed / rolled back
#     transactions. What the clients see through the pooler must be exactly what
#     they see directly (diff empty): over ONE server (default_pool_size = 1), over
#     one server holding at most 5 statements (max_prepared_statements = 5), and
#     over 3 servers.
#  2. "shared": 4 clients prepare the same text (and one text with int4 / int8
#     parameters) over one server: the backend holds it once (resp. twice), under
#     names starting with pgring_.
#  3. "many": with max_prepared_statements = 5, 1 and then 2 clients prepare 20
#     distinct statements each and execute all of them 5 times: every result right,
#     pg_prepared_statements on the backend never above 5.
#  4. pgbench -M prepared with 50 clients on a pool of 5: select-only with 2 threads
#     (-j 2) and TPC-B with a thread per client (-j 50: pgbench prepares with a
#     blocking PQprepare, so a thread waiting for a server there would stall its
#     other clients' open transactions): zero failed transactions.
#
# PGRING_TEST_VIA=transaction (default) | session (pgring in session mode, a server
# per client: must already pass) | direct (PostgreSQL itself: proves the test).
. "$(dirname "$0")/lib.sh"

[[ $VIA == transaction ]] && pgring_only "prepared statements in transaction mode are pgring's"
[[ -x $HELPERS/prepared ]] || fail "helper $HELPERS/prepared not built"
stop_target() { [[ $VIA == direct ]] || stop_pgring || fail "$TARGET did not stop"; }
prepared() { timeout "$Q_TIMEOUT" "$HELPERS/prepared" "$@"; }
DIRECT="host=$PGHOST_REAL port=$PGPORT_REAL dbname=app user=app password=app"
NCONN=4

# The reference: directly against PostgreSQL.
prepared transcript "$DIRECT" $NCONN >"$TEST_TMP/direct.txt" 2>"$TEST_TMP/direct.err" ||
	fail "transcript directly: status $? ($(cat "$TEST_TMP/direct.err"))"
assert_eq "== done" "$(tail -1 "$TEST_TMP/direct.txt")" "direct transcript complete"
note "reference transcript: $(wc -l <"$TEST_TMP/direct.txt") lines"

compare_transcript() { # WHAT
	local f=$TEST_TMP/through-${1// /_}.txt
	prepared transcript "$(conninfo)" $NCONN >"$f" 2>"$f.err"
	local rc=$?
	if ! diff -u "$TEST_TMP/direct.txt" "$f" >"$f.diff"; then
		head -40 "$f.diff" | sed 's/^/#   /'
		fail "$1: transcript differs from the direct one ($(grep -c '^[-+][^-+]' "$f.diff") lines; prepared exit $rc: $(head -c 300 "$f.err"))"
	fi
	assert_eq 0 "$rc" "$1: prepared exit status"
	pass "$1: transcript identical to the direct one"
}

# --- one server
via_start 1 "max_prepared_statements = 100"
compare_transcript "pool of 1"

out=$(prepared shared "$(conninfo)" $NCONN 2>&1) || fail "shared: status $?: $out"
same=$(sed -n 's/^same_types //p' <<<"$out")
two=$(sed -n 's/^two_types //p' <<<"$out")
if [[ $VIA == transaction ]]; then
	assert_match "$same" '^1 pgring_[^,]*$' "one text from $NCONN clients over one server: prepared once (count, names)"
	assert_match "$two" '^2 pgring_[^,]*,pgring_[^,]*$' "one text with int4 and int8 parameters: two statements (count, names)"
else
	assert_eq "1 shared_name" "$same" "shared text, own session"
	assert_eq "1 two" "$two" "two-types text, own session"
fi
pass "identical statements prepared once per server ($same / $two)"
stop_target

# --- one server holding at most 5 statements
via_start 1 "max_prepared_statements = 5"
compare_transcript "pool of 1, max_prepared_statements 5"
for n in 1 2; do
	out=$(prepared many "$(conninfo)" $n 20 5 2>&1)
	rc=$?
	assert_eq 0 "$rc" "many ($n clients x 20 statements): exit status ($out)"
	assert_match "$out" "^executes $((n * 100)) wrong 0 max_prepared [0-9]+\$" "many ($n clients): every execute right"
	maxp=${out##* }
	if [[ $VIA == transaction ]]; then
		assert_num_cmp "$maxp" -le 5 "many ($n clients): statements on the backend (max_prepared_statements = 5)"
		assert_num_cmp "$maxp" -ge 1 "many ($n clients): statements on the backend seen at all"
	else
		assert_eq 20 "$maxp" "many ($n clients): own session holds its 20 statements"
	fi
	pass "$n client(s) x 20 statements x 5 rounds, at most $maxp on the server"
done
stop_target

# --- several servers
via_start 3 "max_prepared_statements = 100"
compare_transcript "pool of 3"
stop_target

# --- pgbench -M prepared, 50 clients, pool of 5
[[ $(qd "SELECT count(*) FROM pgbench_branches") -ge 1 ]] || fail "pgbench tables missing"
via_start 5 "max_prepared_statements = 100"
run_pgbench() { # WHAT ARGS...
	local what=$1 out rc failed processed
	shift
	out=$(PGPASSWORD=app timeout 60 pgbench -n -M prepared -c 50 "$@" -h 127.0.0.1 -p "$PORT" -U app app 2>&1)
	rc=$?
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	if [[ $rc != 0 || -z $failed || -z $processed ]]; then
		tail -15 <<<"$out" | sed 's/^/#   /'
		fail "pgbench $what: exit $rc"
	fi
	assert_eq 0 "$failed" "pgbench $what: failed transactions"
	assert_num_cmp "$processed" -gt 0 "pgbench $what: transactions processed"
	assert_not_contains "$out" "aborted" "pgbench $what: aborted clients"
	pass "pgbench $what: $processed transactions, $(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | tail -1) tps"
}
run_pgbench "-M prepared -S -c 50 -j 2" -S -j 2 -T "${PGBENCH_T:-8}"
run_pgbench "-M prepared (TPC-B) -c 50 -j 50" -j 50 -T "${PGBENCH_T2:-5}"
stop_target
