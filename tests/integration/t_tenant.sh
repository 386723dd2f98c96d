#!/usr/bin/env bash
# t_tenant (pgring only): per-user and per-database settings (issue 15 point 4),
# PgBouncer's keys, two shards, transaction pooling:
#  - max_user_client_connections ([users]) and max_db_client_connections (a
#    database entry, and [pgring] for the others) count logged-in clients over
#    all shards: the one past the limit gets 53300 "no more connections allowed
#    (max_..._client_connections)", and a place freed is taken again;
#  - query_timeout and idle_transaction_timeout in [users] apply to that user
#    only (57014, 25P03), the others keep [pgring]'s (none here);
#  - client_idle_timeout on a database entry closes that database's idle
#    clients, not the others';
#  - SHOW USERS / SHOW DATABASES show the limits and reserve_pool_size.
# PgBouncer 1.18 has no *_client_connections, so this is pgring's alone.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "max_*_client_connections are PgBouncer 1.24's; Debian's is 1.18"

start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
limited = host=@PGHOST@ port=@PGPORT@ dbname=app max_db_client_connections=2
idle1 = host=@PGHOST@ port=@PGPORT@ dbname=app client_idle_timeout=1
[users]
md5user = max_user_client_connections=2 query_timeout=1 idle_transaction_timeout=1 reserve_pool_size=3
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 4
max_db_client_connections = 50
shards = 2
admin_users = app
"

# try DB USER PASSWORD: a one-off SELECT 1; OUT and RC
try() { OUT=$(timeout 20 psql -X -Atq -w -c "SELECT 1" "$(conninfo "$1" "$2" "$3")" 2>&1); RC=$?; }
# hold NAME DB USER PASSWORD: a psql that stays logged in
hold() {
	psql_open "$1" "$(conninfo "$2" "$3" "$4")"
	psql_sync "$1" || fail "$1 could not log in: $(psql_err "$1")"
}

# --- max_user_client_connections = 2 for md5user, over both shards
hold u1 app md5user md5pass
hold u2 app md5user md5pass
try app md5user md5pass
assert_ne 0 "$RC" "a third md5user client must be refused ($OUT)"
assert_match "$OUT" "no more connections allowed \\(max_user_client_connections\\)" "the refusal names the limit"
try app app app
assert_eq 1 "$OUT" "another user is not limited"
psql_close u1
wait_until 5 eval 'try app md5user md5pass; [[ $OUT == 1 ]]' || fail "a freed place is not given again: $OUT"
psql_close u2
pass "max_user_client_connections: the third client refused with 53300, a freed place taken again"

# --- max_db_client_connections = 2 on the entry limited
hold d1 limited app app
hold d2 limited app app
try limited app app
assert_ne 0 "$RC" "a third client of limited must be refused ($OUT)"
assert_match "$OUT" "no more connections allowed \\(max_db_client_connections\\)" "the refusal names the limit"
try app app app
assert_eq 1 "$OUT" "another database is not limited by it"
psql_close d1
wait_until 5 eval 'try limited app app; [[ $OUT == 1 ]]' || fail "a freed place is not given again: $OUT"
psql_close d2
pass "max_db_client_connections: per database entry, over both shards"

# --- per-user timeouts: md5user has query_timeout = 1 and idle_transaction_timeout = 1
OUT=$(timeout 20 psql -X -Atq -c "SELECT pg_sleep(3)" "$(conninfo app md5user md5pass)" 2>&1)
assert_match "$OUT" "query_timeout" "md5user's query_timeout ends a 3 s query"
OUT=$(timeout 20 psql -X -Atq -c "SELECT pg_sleep(2)" "$(conninfo app app app)" 2>&1)
assert_eq "" "$OUT" "app has no query_timeout: its 2 s query completes"
hold t1 app md5user md5pass
psql_send t1 "BEGIN;"
sleep 2.5
psql_send t1 "SELECT 'still here';"
sleep 0.5
assert_match "$(psql_err t1)" "idle_transaction_timeout" "md5user's idle_transaction_timeout ends an idle block"
psql_close t1
hold t2 app app app
psql_send t2 "BEGIN;"
sleep 2
psql_sync t2 || fail "app's open block must outlive 2 s (no idle_transaction_timeout for app): $(psql_err t2)"
psql_send t2 "COMMIT;"
psql_close t2
pass "query_timeout and idle_transaction_timeout per user"

# --- client_idle_timeout = 1 on the entry idle1 only
hold i1 idle1 app app
hold i2 app app app
sleep 2.5
psql_send i1 "SELECT 'after idle';"
sleep 0.5
assert_match "$(psql_err i1)" "client_idle_timeout" "an idle client of idle1 is closed after 1 s"
psql_sync i2 || fail "an idle client of app must stay: $(psql_err i2)"
psql_close i1
psql_close i2
pass "client_idle_timeout per database entry"

# --- the console shows them
users=$(timeout 10 psql -X -At -F'|' -c "SHOW USERS" "$(conninfo pgbouncer app app)" 2>&1)
grep -qE '^md5user\|[^|]*\|[[:space:]]*3\|[^|]*\|[0-9]+\|[0-9]+\|2\|' <<<"$users" ||
	fail "SHOW USERS: md5user's reserve_pool_size 3 and max_user_client_connections 2: $users"
dbs=$(timeout 10 psql -X -At -F'|' -c "SHOW DATABASES" "$(conninfo pgbouncer app app)" 2>&1)
grep -qE '^limited\|([^|]*\|){12}2\|' <<<"$dbs" || fail "SHOW DATABASES: limited's max_client_connections 2: $dbs"
grep -qE '^app\|([^|]*\|){12}50\|' <<<"$dbs" || fail "SHOW DATABASES: app's max_client_connections is the global 50: $dbs"
pass "SHOW USERS and SHOW DATABASES show the limits"
