#!/usr/bin/env bash
# t_ban (pgring only): banning a tenant (issue 15 point 6), two shards,
# transaction pooling:
#  - disabled=1 on a database entry: new clients get 55000 "database does not
#    allow connections" before authentication; on a [users] line: 28000 "role
#    ... is not permitted to log in" after it (a wrong password still gets the
#    password failure, so the ban tells nothing to who does not know it);
#  - by reload: with disable_mode = finish the clients already in keep
#    working; with disable_mode = close an idle one is closed (57P01) at once
#    and one inside a block finishes it (its COMMIT is applied) and is closed
#    after; other users never notice;
#  - from the console: DISABLE USER / ENABLE USER and DISABLE db, with SHOW
#    DATABASES' disabled column.
# PgBouncer has DISABLE db only (and no disabled keys), so this is pgring's alone.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "disabled=, disable_mode and DISABLE USER are pgring's"

CONF_HEAD="
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
closed = host=@PGHOST@ port=@PGPORT@ dbname=app disabled=1
other = host=@PGHOST@ port=@PGPORT@ dbname=app
sess = host=@PGHOST@ port=@PGPORT@ dbname=app pool_mode=session disable_mode=close
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 4
shards = 2
admin_users = app
"
start_pgring "$CONF_HEAD
[users]
scramuser = disabled=1
"
qd "DROP TABLE IF EXISTS ban_t; CREATE TABLE ban_t (v int); GRANT ALL ON ban_t TO md5user, scramuser"

# try DB USER PASSWORD: a one-off SELECT 1; OUT and RC
try() { OUT=$(timeout 20 psql -X -Atq -w -c "SELECT 1" "$(conninfo "$1" "$2" "$3")" 2>&1); RC=$?; }
hold() {
	psql_open "$1" "$(conninfo "$2" "$3" "$4")"
	psql_sync "$1" || fail "$1 could not log in: $(psql_err "$1")"
}
admin() { timeout 20 psql -X -At -c "$1" "$(conninfo pgbouncer app app)" 2>&1; }

# --- from the configuration at start
try closed app app
assert_ne 0 "$RC" "a client of a disabled database must be refused ($OUT)"
assert_match "$OUT" "database does not allow connections: closed" "the database's refusal"
try app scramuser scrampass
assert_ne 0 "$RC" "a disabled user must be refused ($OUT)"
assert_match "$OUT" "role \"scramuser\" is not permitted to log in" "the user's refusal, as PostgreSQL's NOLOGIN"
try app scramuser wrong
assert_match "$OUT" "password authentication failed" "a wrong password is a password failure, not the ban"
try app md5user md5pass
assert_eq 1 "$OUT" "another user logs in"
try other app app
assert_eq 1 "$OUT" "another database takes clients"
OUT=$(admin "SHOW DATABASES" | awk -F'|' '$1 == "closed" || $1 == "app" { print $1 "=" $NF }' | sort | xargs)
assert_eq "app=0 closed=1" "$OUT" "SHOW DATABASES' disabled column"
pass "disabled=1 on a database entry (55000, before authentication) and a user (28000, after it)"

# --- by reload, disable_mode = finish: the clients in keep going
hold f1 app md5user md5pass
psql_send f1 "BEGIN; INSERT INTO ban_t VALUES (1);"
reload_pgring "$CONF_HEAD
[users]
md5user = disabled=1
"
wait_until 5 eval 'try app md5user md5pass; [[ $OUT == *"not permitted to log in"* ]]' ||
	fail "after the reload md5user's new logins are not refused: $OUT"
try app scramuser scrampass
assert_eq 1 "$OUT" "scramuser, no longer disabled, logs in again"
sleep 0.5
psql_send f1 "COMMIT; SELECT 'f1 alive';"
psql_sync f1 || fail "with disable_mode = finish, a client already in must keep its session: $(psql_err f1)"
psql_send f1 "SELECT 'f1 still ' || count(*) FROM ban_t;"
psql_sync f1 || fail "f1 lost: $(psql_err f1)"
assert_contains "$(psql_out f1)" "f1 still 1" "f1's transaction was committed and its session goes on"
psql_close f1
pass "reload with disable_mode = finish: new logins refused, the session already in goes on"

# --- by reload, disable_mode = close: idle ones go at once, a block finishes first
reload_pgring "$CONF_HEAD"
wait_until 5 eval 'try app md5user md5pass; [[ $OUT == 1 ]]' || fail "md5user not enabled again: $OUT"
hold idle1 app md5user md5pass
hold idle2 app md5user md5pass
hold blk app md5user md5pass
hold bystander app app app
psql_send blk "BEGIN; INSERT INTO ban_t VALUES (2);"
psql_sync blk || fail "blk's block did not start: $(psql_err blk)"
reload_pgring "$CONF_HEAD
[users]
md5user = disabled=1 disable_mode=close
"
# psql reads the FATAL when it next sends: give the tick (0.1 s) time, then probe
sleep 1
psql_send idle1 "SELECT 'idle1 probe';"
psql_send idle2 "SELECT 'idle2 probe';"
wait_until 5 eval '[[ $(psql_err idle1) == *"was disabled"* ]]' ||
	fail "an idle client of a disabled user must be closed with disable_mode = close: $(psql_err idle1)"
assert_match "$(psql_err idle1)" "terminating connection: user \"md5user\" was disabled" "the closing message names the user"
assert_not_contains "$(psql_out idle1)" "idle1 probe" "the closed client's probe was not run"
wait_until 5 eval '[[ $(psql_err idle2) == *"was disabled"* ]]' || fail "idle2 not closed: $(psql_err idle2)"
assert_not_contains "$(psql_err blk)" "disabled" "a client inside a block is not cut"
psql_send blk "INSERT INTO ban_t VALUES (3); COMMIT;"
sleep 1
psql_send blk "SELECT 'blk probe';"
wait_until 5 eval '[[ $(psql_err blk) == *"was disabled"* ]]' || fail "blk not closed after its block: $(psql_err blk)"
assert_not_contains "$(psql_err blk)" "ERROR" "blk's block ran without an error"
OUT=$(qd "SELECT string_agg(v::text, ',' ORDER BY v) FROM ban_t")
assert_eq "1,2,3" "$OUT" "the block that was open when the ban came was committed whole"
psql_send bystander "SELECT 'bystander ok';"
psql_sync bystander || fail "another user's session was touched: $(psql_err bystander)"
assert_contains "$(psql_out bystander)" "bystander ok" "another user never notices"
psql_close bystander
pass "reload with disable_mode = close: idle clients closed (57P01), an open block committed then closed"

# --- from the console: DISABLE USER / ENABLE USER, DISABLE db
reload_pgring "$CONF_HEAD"
wait_until 5 eval 'try app md5user md5pass; [[ $OUT == 1 ]]' || fail "md5user not enabled again: $OUT"
hold c1 app md5user md5pass
assert_eq "DISABLE" "$(admin "DISABLE USER md5user")" "DISABLE USER answers"
try app md5user md5pass
assert_match "$OUT" "not permitted to log in" "DISABLE USER refuses new logins"
psql_send c1 "SELECT 'c1 alive';"
psql_sync c1 || fail "DISABLE USER with disable_mode = finish closed a client: $(psql_err c1)"
try app app app
assert_eq 1 "$OUT" "other users still log in"
assert_eq "ENABLE" "$(admin "ENABLE USER md5user")" "ENABLE USER answers"
try app md5user md5pass
assert_eq 1 "$OUT" "ENABLE USER lets the user in again"
psql_close c1
assert_eq "DISABLE" "$(admin "DISABLE other")" "DISABLE db answers"
try other app app
assert_match "$OUT" "database does not allow connections: other" "DISABLE db refuses"
OUT=$(admin "SHOW DATABASES" | awk -F'|' '$1 == "other" { print $NF }')
assert_eq 1 "$OUT" "SHOW DATABASES shows the console's DISABLE"
assert_eq "ENABLE" "$(admin "ENABLE other")" "ENABLE db answers"
try other app app
assert_eq 1 "$OUT" "ENABLE db lets clients in again"
hold s1 sess app app
hold s2 sess app app
psql_send s2 "BEGIN;"
psql_sync s2 || fail "s2's block did not start: $(psql_err s2)"
assert_eq "DISABLE" "$(admin "DISABLE sess")" "DISABLE of a session-mode database with disable_mode=close"
sleep 1
psql_send s1 "SELECT 's1 probe';"
wait_until 5 eval '[[ $(psql_err s1) == *"database \"sess\" was disabled"* ]]' ||
	fail "a session-mode client at rest must be closed: $(psql_err s1)"
psql_send s2 "SELECT 's2 in block'; COMMIT;"
psql_sync s2 2>/dev/null
assert_contains "$(psql_out s2)" "s2 in block" "a session-mode client in a block finishes it"
admin "ENABLE sess" >/dev/null
OUT=$(admin "DISABLE USER")
assert_match "$OUT" "no such database: USER" "DISABLE USER without a name means a database called user (PgBouncer's grammar)"
pass "console: DISABLE USER / ENABLE USER, DISABLE db / ENABLE db (session mode, disable_mode=close on the entry)"

qd "DROP TABLE ban_t"
