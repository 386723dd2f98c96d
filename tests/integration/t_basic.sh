#!/usr/bin/env bash
# t_basic: plain queries through the pooler in session and transaction mode: SELECT 1,
# multi-statement queries, an error then a good query, a 10k-row result, a 5 MB value
# both ways, transactions (commit, rollback, one backend per transaction), and an
# sslmode=prefer login (the pooler must answer SSLRequest with 'N' when it has no TLS).
. "$(dirname "$0")/lib.sh"

qd "DROP TABLE IF EXISTS basic_t; CREATE TABLE basic_t (id int primary key, mode text);
    ALTER TABLE basic_t OWNER TO app" >/dev/null || fail "setup table"

# A 5 MB statement (client -> server direction).
big_sql=$TEST_TMP/big.sql
{ printf "SELECT length('"; head -c 5000000 /dev/zero | tr '\0' y; printf "');\n"; } >"$big_sql"

for mode in session transaction; do
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = $mode
default_pool_size = 5
"
	v=$(q "SELECT 1") || fail "$mode: SELECT 1 failed (status $?)"
	assert_eq 1 "$v" "$mode: SELECT 1"

	v=$(q "SELECT 1 AS a; SELECT 'two' AS b; SELECT 3 AS c") || fail "$mode: multi-statement query failed (status $?)"
	assert_eq $'1\ntwo\n3' "$v" "$mode: multi-statement query"

	v=$(Q_EXTRA="sslmode=prefer" q "SELECT 'ssl-prefer-ok'") || fail "$mode: sslmode=prefer login failed (status $?)"
	assert_eq ssl-prefer-ok "$v" "$mode: sslmode=prefer"

	# An error, then good queries in the same session; also an error inside a
	# multi-statement query and inside a transaction.
	cat >"$TEST_TMP/err.sql" <<'SQL'
SELECT 1/0;
SELECT 'after-error';
SELECT 1 \; SELECT 1/0 \; SELECT 'not-reached';
SELECT 'after-multi-error';
BEGIN;
SELECT 1/0;
SELECT 'in-aborted-xact';
ROLLBACK;
SELECT 'after-rollback';
SQL
	out=$(timeout "$Q_TIMEOUT" psql -X -Atq -v ON_ERROR_STOP=0 -f "$TEST_TMP/err.sql" "$(conninfo)" 2>"$TEST_TMP/err.stderr")
	err=$(cat "$TEST_TMP/err.stderr")
	assert_eq $'after-error\n1\nafter-multi-error\nafter-rollback' "$out" "$mode: results around errors"
	assert_contains "$err" "division by zero" "$mode: error text"
	assert_contains "$err" "current transaction is aborted" "$mode: aborted transaction"
	assert_not_contains "$out" "not-reached" "$mode: statements after an error in one query"

	# 10k rows.
	out=$(q "SELECT g, md5(g::text) FROM generate_series(1, 10000) g") || fail "$mode: 10k rows failed (status $?)"
	n=$(wc -l <<<"$out")
	sum=$(awk -F'|' '{ s += $1 } END { print s }' <<<"$out")
	assert_eq 10000 "$n" "$mode: row count"
	assert_eq 50005000 "$sum" "$mode: row contents"
	assert_eq "10000|$(printf '%s' 10000 | md5sum | cut -d' ' -f1)" "$(tail -1 <<<"$out")" "$mode: last row"

	# 5 MB value server -> client, and a 5 MB statement client -> server.
	out=$(q "SELECT repeat('x', 5000000)") || fail "$mode: 5 MB value failed (status $?)"
	assert_eq 5000000 "${#out}" "$mode: 5 MB value length"
	[[ $out =~ ^x+$ ]] || fail "$mode: 5 MB value corrupted"
	out=$(qf "$big_sql") || fail "$mode: 5 MB statement failed (status $?)"
	assert_eq 5000000 "$out" "$mode: 5 MB statement"

	# Transactions: commit, rollback, and every statement of a transaction on one backend.
	base=$([[ $mode == session ]] && echo 100 || echo 200)
	cat >"$TEST_TMP/xact.sql" <<SQL
BEGIN;
SELECT 'pid', pg_backend_pid();
INSERT INTO basic_t VALUES ($base + 1, '$mode');
SELECT pg_sleep(0.05);
INSERT INTO basic_t VALUES ($base + 2, '$mode');
SELECT 'pid', pg_backend_pid();
COMMIT;
BEGIN;
INSERT INTO basic_t VALUES ($base + 3, '$mode');
ROLLBACK;
SQL
	out=$(qf "$TEST_TMP/xact.sql") || fail "$mode: transaction script failed (status $?)"
	pids=$(grep '^pid|' <<<"$out" | cut -d'|' -f2 | sort -u | wc -l)
	assert_eq 1 "$pids" "$mode: backends seen inside one transaction"
	v=$(qd "SELECT string_agg(id::text, ',' ORDER BY id) FROM basic_t WHERE mode = '$mode'")
	assert_eq "$((base + 1)),$((base + 2))" "$v" "$mode: committed rows (and not the rolled back one)"

	# Session mode keeps session state on the same server.
	if [[ $mode == session ]]; then
		out=$(q "SET work_mem = '7MB'; SELECT pg_sleep(0); SHOW work_mem") || fail "session SET"
		assert_contains "$out" "7MB" "session: SET kept"
	fi

	stop_pgring || fail "$mode: $TARGET did not stop on SIGTERM"
	pass "$mode mode"
done

# --- statement mode: each statement on any server; a transaction block is refused
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = statement
default_pool_size = 2
"
assert_eq 3 "$(q "SELECT 1 + 2")" "statement mode: a statement"
out=$(PGPASSWORD=app timeout 20 pgbench -n -S -c 4 -j 2 -T 2 "$(conninfo)" 2>&1) || fail "statement mode: pgbench -S: $out"
assert_contains "$out" "number of failed transactions: 0" "statement mode: pgbench -S"
out=$(PGPASSWORD=app timeout 20 psql -X -Atq -v ON_ERROR_STOP=1 -c "BEGIN" -c "SELECT 1" -c "COMMIT" "$(conninfo)" 2>&1)
assert_ne 0 "$?" "statement mode: a transaction block must fail"
assert_contains "$out" "transaction blocks not allowed in statement pooling mode" "statement mode: the error says why"
assert_eq 0 "$(qd "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state LIKE 'idle in transaction%'")" "statement mode: no transaction left open"
assert_eq 1 "$(q "SELECT 1")" "statement mode: next client fine"
if ! is_pgbouncer; then
	# BEGIN, SET and COMMIT in one write: the client is refused at BEGIN, its
	# server runs the SET and the COMMIT anyway; the SET must not be handed on
	out=$(timeout 60 "$HELPERS/badclient" -h 127.0.0.1 -p "$PORT" -U app -W app -d app -S 2 u 2>&1) ||
		fail "statement mode: a pipelined block's SET: $out"
	pass "statement mode: a refused pipelined block's SET is not handed on"
fi
stop_pgring
pass "statement mode"
