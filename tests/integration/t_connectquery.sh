#!/usr/bin/env bash
# t_connectquery: a [databases] entry's connect_query runs once on every new
# server of its pool, before any client is given it, as in PgBouncer: each
# backend a client is served by has run it exactly once (it logs its PID to a
# table), in transaction and session pooling, and its result rows reach no
# client. An error it raises is logged and otherwise ignored, as PgBouncer
# documents: the client is served.
. "$(dirname "$0")/lib.sh"

qd "DROP TABLE IF EXISTS cq_log; CREATE TABLE cq_log (pid int, at timestamptz DEFAULT now());
    GRANT INSERT, SELECT ON cq_log TO app" >/dev/null || fail "setup cq_log"

for mode in transaction session; do
	qd "TRUNCATE cq_log" >/dev/null
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app connect_query='INSERT INTO cq_log SELECT pg_backend_pid() RETURNING pid'
broken = host=@PGHOST@ port=@PGPORT@ dbname=app connect_query='SELECT 1/0'
[pgring]
auth_type = md5
pool_mode = $mode
default_pool_size = $([[ $mode == session ]] && echo 8 || echo 3)
shards = 2
"
	PGPASSWORD=app pgbench -n -c 6 -j 2 -t 50 -f <(echo "SELECT pg_backend_pid();") "$(conninfo)" >"$TEST_TMP/pgb.$mode" 2>&1 ||
		fail "$mode: pgbench through the pool: $(tail -3 "$TEST_TMP/pgb.$mode")"
	out=$(q "SELECT pg_backend_pid()")
	assert_match "$out" '^[0-9]+$' "$mode: a query gets its own answer, not connect_query's rows"
	ran=$(qd "SELECT count(*) FROM cq_log")
	distinct=$(qd "SELECT count(DISTINCT pid) FROM cq_log")
	assert_num_cmp "$ran" -ge 1 "$mode: connect_query ran"
	assert_eq "$ran" "$distinct" "$mode: connect_query ran once per server"
	servers=$(pg_backends app)
	missing=$(qd "SELECT count(*) FROM pg_stat_activity a WHERE a.usename = 'app' AND a.backend_type = 'client backend'
		AND a.pid <> pg_backend_pid() AND NOT EXISTS (SELECT 1 FROM cq_log l WHERE l.pid = a.pid)")
	assert_eq 0 "$missing" "$mode: every one of the pool's $servers servers ran connect_query"
	# a failing connect_query: logged, the server is used anyway (PgBouncer's rule)
	out=$(PGPASSWORD=app timeout 20 psql -X -Atq -c "SELECT 41 + 1" "$(conninfo broken)" 2>&1) ||
		fail "$mode: a client of the pool whose connect_query fails: $out"
	assert_eq 42 "$out" "$mode: a client of the pool whose connect_query fails is served"
	if is_pgbouncer; then
		assert_match "$(cat "$POOLER_LOG")" "exec_on_query: ERROR: division by zero" "$mode: logged"
	else
		assert_match "$(cat "$POOLER_LOG")" "connect_query failed: division by zero" "$mode: logged"
	fi
	stop_pgring
	pass "$mode pooling: connect_query once per server ($ran servers), a failing one logged"
done
