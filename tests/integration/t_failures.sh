#!/usr/bin/env bash
# t_failures: a server that dies under a client, in transaction mode.
#  - idle client (between transactions): its next query just works;
#  - a query running: the client gets the server's reason as an ERROR (57P01), and
#    the same session keeps working;
#  - idle inside a transaction block: the next statement gets the reason, the
#    block is failed until ROLLBACK, then the session carries on.
# In session mode the client is disconnected with the reason.
. "$(dirname "$0")/lib.sh"

terminate() { # the backend serving the tagged query or session
	qd "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend' $1" >/dev/null
}

start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 1
shards = 1
"
psql_open c "$(conninfo)"
psql_send c "SELECT 'one';"
psql_sync c || fail "first query: $(psql_err c)"
terminate ""
sleep 0.3
psql_send c "SELECT 'after-idle-kill';"
psql_sync c || fail "after the idle server died: $(psql_err c)"
assert_contains "$(psql_out c)" "after-idle-kill" "idle client: next query works"
assert_eq "" "$(psql_err c)" "idle client: no error at all"

# a query running when its server dies
psql_send c "SELECT pg_sleep(10) /* t_failures-running */;"
wait_until 5 eval '[[ $(qd "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '"'"'%t_failures-running */%'"'"' AND state = '"'"'active'"'"' AND pid <> pg_backend_pid()") == 1 ]]' ||
	fail "running query did not start"
terminate "AND query LIKE '%t_failures-running */%'"
psql_send c "SELECT 'after-running-kill';"
psql_sync c || fail "session lost after its running query's server died: $(psql_err c)"
assert_contains "$(psql_err c)" "terminating connection due to administrator command" "running: the server's reason"
assert_not_contains "$(psql_err c)" "FATAL" "running: reported as an ERROR, not FATAL"
assert_contains "$(psql_out c)" "after-running-kill" "running: same session works afterwards"

# idle inside a transaction block
: >"$TEST_TMP/c.err"
psql_send c "BEGIN;"
psql_send c "SELECT 'in-block';"
psql_sync c || fail "begin: $(psql_err c)"
terminate ""
sleep 0.3
psql_send c "SELECT 'inside-failed-block';"
psql_send c "SELECT 'still-failed';"
psql_send c "ROLLBACK;"
psql_sync c || fail "failed block: $(psql_err c)"
assert_contains "$(psql_err c)" "terminating connection due to administrator command" "block: the reason on the next statement"
assert_contains "$(psql_err c)" "current transaction is aborted" "block: failed until ROLLBACK"
assert_not_contains "$(psql_out c)" "inside-failed-block" "block: statements in the failed block do not run"
psql_send c "SELECT 'after-rollback';"
psql_sync c || fail "after rollback: $(psql_err c)"
assert_contains "$(psql_out c)" "after-rollback" "block: the session carries on after ROLLBACK"
psql_close c
stop_pgring
pass "transaction mode"

# session mode: the client is told and disconnected
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = session
default_pool_size = 2
"
psql_open s "$(conninfo)"
psql_send s "SELECT 'session';"
psql_sync s || fail "session: first query"
terminate ""
sleep 0.3
psql_send s "SELECT 'after';"
sleep 1
assert_match "$(psql_err s)" "terminat|connection|closed" "session mode: the client hears that its server is gone"
assert_eq 1 "$(q "SELECT 1")" "session mode: a new client works"
stop_pgring
pass "session mode"
