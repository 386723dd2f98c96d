#!/usr/bin/env bash
# t_killmid: a client that dies (kill -9) in the middle of a transaction, holding a
# row lock and a table lock, must not leave its transaction behind on the server:
# no backend stays "idle in transaction", the locks go away, and the next client
# through the pooler can take the same locks at once. Session and transaction mode.
. "$(dirname "$0")/lib.sh"

qd "DROP TABLE IF EXISTS killmid, killmid_lock;
    CREATE TABLE killmid (id int primary key, v int); INSERT INTO killmid VALUES (1, 0), (2, 0);
    CREATE TABLE killmid_lock (x int);
    ALTER TABLE killmid OWNER TO app; ALTER TABLE killmid_lock OWNER TO app" >/dev/null || fail "setup"

idle_in_xact() { qd "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND state LIKE 'idle in transaction%'"; }
locks_held() {
	qd "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
	    WHERE c.relname IN ('killmid', 'killmid_lock') AND l.pid <> pg_backend_pid()"
}

for mode in session transaction; do
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = $mode
default_pool_size = 2
"
	psql_open victim "$(conninfo)"
	psql_send victim "BEGIN;"
	psql_send victim "UPDATE killmid SET v = v + 1 WHERE id = 2;"
	psql_send victim "SELECT v FROM killmid WHERE id = 1 FOR UPDATE;"
	psql_send victim "LOCK TABLE killmid_lock IN ACCESS EXCLUSIVE MODE;"
	psql_sync victim || fail "$mode: victim did not get its locks: $(psql_err victim)"
	wait_until 5 eval '[[ $(idle_in_xact) == 1 ]]' || fail "$mode: victim's transaction not seen on the server"
	assert_num_cmp "$(locks_held)" -ge 2 "$mode: locks held by the victim"

	psql_kill victim
	note "$mode: victim killed"
	wait_until 5 eval '[[ $(idle_in_xact) == 0 ]]' ||
		fail "$mode: a backend is still idle in transaction 5 s after the client died: $(qd "SELECT pid, state, query FROM pg_stat_activity WHERE datname = 'app' AND state LIKE 'idle in%'")"
	wait_until 5 eval '[[ $(locks_held) == 0 ]]' || fail "$mode: locks still held 5 s after the client died"

	# The next client takes the same locks without waiting (lock_timeout 2 s).
	t0=$(now_ms)
	out=$(q "BEGIN; SET LOCAL lock_timeout = '2s';
	          SELECT v FROM killmid WHERE id = 1 FOR UPDATE;
	          LOCK TABLE killmid_lock IN ACCESS EXCLUSIVE MODE;
	          UPDATE killmid SET v = v + 10 WHERE id = 2 RETURNING v; COMMIT" 2>&1) ||
		fail "$mode: second client could not lock: $out"
	el=$(($(now_ms) - t0))
	assert_eq $'0\n10' "$out" "$mode: second client's results (the victim's update must be rolled back)"
	assert_num_cmp "$el" -lt 2000 "$mode: ms the second client took"
	assert_eq 10 "$(qd "SELECT v FROM killmid WHERE id = 2")" "$mode: committed value"
	qd "UPDATE killmid SET v = 0" >/dev/null

	stop_pgring || fail "$mode: $TARGET did not stop"
	pass "$mode mode"
done

# A client killed while its query is still running (inside a transaction that holds
# a lock): PostgreSQL does not notice a closed socket mid-query, so the pooler must
# cancel the query; the lock must go within seconds, not when pg_sleep(60) ends.
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 2
"
psql_open victim "$(conninfo)"
psql_send victim "BEGIN;"
psql_send victim "LOCK TABLE killmid_lock IN ACCESS EXCLUSIVE MODE;"
psql_sync victim || fail "running: victim did not get its lock: $(psql_err victim)"
psql_send victim "SELECT pg_sleep(60) /* killmid-running */;"
wait_until 5 eval '[[ $(qd "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '"'"'%killmid-running */%'"'"' AND state = '"'"'active'"'"' AND pid <> pg_backend_pid()") == 1 ]]' ||
	fail "running: the victim's query did not start"
psql_kill victim
note "running: victim killed during pg_sleep(60)"
wait_until 5 eval '[[ $(locks_held) == 0 ]]' || fail "running: lock still held 5 s after the client died mid-query"
out=$(q "BEGIN; SET LOCAL lock_timeout = '2s'; LOCK TABLE killmid_lock IN ACCESS EXCLUSIVE MODE; SELECT 'locked'; COMMIT" 2>&1) ||
	fail "running: next client could not lock: $out"
assert_eq locked "$out" "running: next client's lock"
stop_pgring || fail "running: $TARGET did not stop"
pass "killed mid-query"
