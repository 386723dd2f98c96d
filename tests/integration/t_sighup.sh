#!/usr/bin/env bash
# t_sighup: reload. Change default_pool_size (2 -> 3) and add a database, SIGHUP:
# an idle client and a client in the middle of a transaction stay connected and
# keep working, the new database works, and the new pool size is in force.
. "$(dirname "$0")/lib.sh"

qd "DROP TABLE IF EXISTS sighup_t; CREATE TABLE sighup_t (id int); ALTER TABLE sighup_t OWNER TO app" >/dev/null || fail "setup"

config() { # POOL_SIZE [EXTRA_DB_LINE]
	echo "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
${2:-}
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = $1
"
}
# busy_backends: server backends running our probe right now.
busy_backends() {
	qd "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%sighup-probe */' AND state = 'active' AND pid <> pg_backend_pid()"
}
# probe N: N clients each run a 1.5 s query at once; print the most backends seen busy.
probe() {
	local i pids=() max=0 b
	for ((i = 0; i < $1; i++)); do
		q "SELECT pg_sleep(1.5) /* sighup-probe */" >/dev/null 2>"$TEST_TMP/probe$i.err" &
		pids+=($!)
	done
	for i in $(seq 12); do
		b=$(busy_backends)
		((b > max)) && max=$b
		sleep 0.1
	done
	for i in "${pids[@]}"; do wait "$i" || { echo "probe client failed: $(cat "$TEST_TMP"/probe*.err)" >&2; echo -1; return; }; done
	echo "$max"
}

start_pgring "$(config 2)"
psql_open idle "$(conninfo)"
psql_send idle "SELECT 'idle-before';"
psql_sync idle || fail "idle client: $(psql_err idle)"
psql_open inxact "$(conninfo)"
psql_send inxact "BEGIN;"
psql_send inxact "INSERT INTO sighup_t VALUES (1);"
psql_sync inxact || fail "client in transaction: $(psql_err inxact)"

# Before: the pool holds at most 2 servers (the in-transaction client holds one).
psql_send inxact "COMMIT;"
psql_sync inxact || fail "commit before reload"
assert_eq 2 "$(probe 3)" "servers busy at once with default_pool_size = 2"

psql_send inxact "BEGIN;"
psql_send inxact "INSERT INTO sighup_t VALUES (2);"
psql_sync inxact || fail "second transaction"

reload_pgring "$(config 3 "app2 = host=@PGHOST@ port=@PGPORT@ dbname=app")"
note "SIGHUP sent"
wait_until 5 eval '[[ $(Q_DB=app2 q "SELECT current_database()" 2>/dev/null) == app ]]' ||
	fail "the new database app2 does not work after reload: $(Q_DB=app2 q "SELECT current_database()" 2>&1)"
alive "$POOLER_PID" || fail "$TARGET died on SIGHUP"

# The clients that were connected are still there.
psql_send idle "SELECT 'idle-after';"
psql_sync idle || fail "idle client lost after reload: $(psql_err idle)"
assert_contains "$(psql_out idle)" "idle-after" "idle client answered after reload"
psql_send inxact "INSERT INTO sighup_t VALUES (3);"
psql_send inxact "COMMIT;"
psql_sync inxact || fail "client in transaction lost after reload: $(psql_err inxact)"
assert_eq "" "$(psql_err inxact)" "errors in the client that was in a transaction"
assert_eq "1,2,3" "$(qd "SELECT string_agg(id::text, ',' ORDER BY id) FROM sighup_t")" "rows committed across the reload"

# After: 3 servers at once.
assert_eq 3 "$(probe 3)" "servers busy at once with default_pool_size = 3"

psql_close idle
assert_eq 0 "$PSQL_STATUS" "idle client's psql status"
psql_close inxact
assert_eq 0 "$PSQL_STATUS" "in-transaction client's psql status"
stop_pgring || fail "$TARGET did not stop"
pass "reload"
