#!/usr/bin/env bash
# t_shutdown: the console's SHUTDOWN WAIT_FOR_CLIENTS, as PgBouncer documents
# it (issue 16, point 1): pgring stops accepting at once (a new connection is
# refused), goes on serving the clients it has, as long as they stay (past
# shutdown_timeout: that is SIGTERM's), and exits by itself, status 0, once the
# last one has left. With so_reuseport = 1 this is the rolling restart: another
# pgring on the port takes the new connections meanwhile (checked here too).
# Debian's PgBouncer 1.18 predates WAIT_FOR_CLIENTS (1.23).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "Debian's PgBouncer 1.18 has no SHUTDOWN WAIT_FOR_CLIENTS"

conf="
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
admin_users = app
pool_mode = transaction
default_pool_size = 4
shutdown_timeout = 1
so_reuseport = 1
shards = 2
"
start_pgring "$conf"
FIRST=$POOLER_PID

# three idle clients, each runs its statement again once told (its stdin closes)
declare -A HOLDER
for name in a b c; do
	"$HELPERS/pqtry" -H 0 "$(conninfo)" "SELECT 'still-$name', pg_backend_pid() > 0" >"$TEST_TMP/$name.out" 2>&1 \
		< <(hold_until "$TEST_TMP/$name.go") &
	HOLDER[$name]=$!
	track_pid $!
	wait_until 10 grep -q "still-$name" "$TEST_TMP/$name.out" || fail "client $name did not start: $(cat "$TEST_TMP/$name.out")"
done

assert_eq SHUTDOWN "$(timeout 10 psql -X -At -c "SHUTDOWN WAIT_FOR_CLIENTS" "$(conninfo pgbouncer)" 2>&1)" \
	"SHUTDOWN WAIT_FOR_CLIENTS's answer (its command tag)"
wait_until 5 grep -q "SHUTDOWN WAIT_FOR_CLIENTS: no new connections" "$POOLER_LOG" || fail "no log line for WAIT_FOR_CLIENTS"

# no new connection gets in
out=$(PGCONNECT_TIMEOUT=3 timeout 10 "$HELPERS/pqtry" "$(conninfo)" "SELECT 'new-client-got-in'")
rc=$?
assert_eq 2 "$rc" "a new connection after SHUTDOWN WAIT_FOR_CLIENTS ($out)"

# past shutdown_timeout, the clients are still served
sleep 2
alive "$FIRST" || fail "pgring exited with clients still connected"
touch "$TEST_TMP/a.go"
wait_exit "${HOLDER[a]}" 10 || fail "client a did not finish"
assert_eq 0 "$WAIT_STATUS" "client a's second round ($(tr '\n' ' ' <"$TEST_TMP/a.out"))"
assert_eq 2 "$(grep -c '^still-a|t' "$TEST_TMP/a.out")" "client a served before and after SHUTDOWN WAIT_FOR_CLIENTS"
pass "SHUTDOWN WAIT_FOR_CLIENTS: new connections refused, the clients it has served on past shutdown_timeout"

# a second pgring on the port (so_reuseport = 1) takes the new connections
cp "$POOLER_CONF" "$TEST_TMP/second.ini"
sed -i "s/^control_port *=.*/control_port = 0/" "$TEST_TMP/second.ini"
"$PGRING_BIN" -c "$TEST_TMP/second.ini" >"$TEST_TMP/second.log" 2>&1 &
SECOND=$!
track_pid $SECOND
on_exit "kill_wait $SECOND"
wait_until 10 eval '[[ $(q "SELECT 1" 2>/dev/null) == 1 ]]' || fail "the second pgring does not serve: $(tail -3 "$TEST_TMP/second.log")"
for i in 1 2 3 4 5 6; do
	assert_eq 1 "$(q "SELECT 1")" "new connection $i while the first pgring waits for its clients"
done
alive "$FIRST" || fail "the first pgring exited with clients still connected"

touch "$TEST_TMP/b.go"
wait_exit "${HOLDER[b]}" 10 || fail "client b did not finish"
assert_eq 0 "$WAIT_STATUS" "client b's second round ($(tr '\n' ' ' <"$TEST_TMP/b.out"))"
sleep 0.5
alive "$FIRST" || fail "the first pgring exited with client c still connected"

touch "$TEST_TMP/c.go"
wait_exit "${HOLDER[c]}" 10 || fail "client c did not finish"
assert_eq 0 "$WAIT_STATUS" "client c's second round ($(tr '\n' ' ' <"$TEST_TMP/c.out"))"
wait_exit "$FIRST" 5 || fail "the first pgring still runs with no client left"
assert_eq 0 "$WAIT_STATUS" "the first pgring's exit status"
assert_eq 1 "$(q "SELECT 1")" "the second pgring serves after the first left"
pass "the first pgring exited (status 0) once its last client left; the second one took the new connections meanwhile"
