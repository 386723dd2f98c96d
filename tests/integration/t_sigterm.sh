#!/usr/bin/env bash
# t_sigterm: graceful shutdown. A client is in the middle of a transaction (BEGIN;
# INSERT; SELECT pg_sleep(2); INSERT; COMMIT, each its own round trip) when the
# pooler gets SIGTERM. The transaction must complete and commit, new connections
# must be refused meanwhile, and the pooler must exit 0 within shutdown_timeout.
# PgBouncer 1.18 cannot do this: its SIGTERM is an immediate exit, and its safe
# shutdown (SIGINT = PAUSE + SHUTDOWN) closes a server once its current query ends,
# even inside a transaction, so the client loses the transaction. Skipped there
# unless SIGTERM_PGBOUNCER=1 (which runs it with SIGINT, and fails).
. "$(dirname "$0")/lib.sh"
if is_pgbouncer && [[ ${SIGTERM_PGBOUNCER:-0} != 1 ]]; then
	skip "PgBouncer 1.18 has no shutdown that waits for open transactions"
fi

SHUTDOWN_TIMEOUT=10
qd "DROP TABLE IF EXISTS sigterm_t; CREATE TABLE sigterm_t (id int); ALTER TABLE sigterm_t OWNER TO app" >/dev/null ||
	fail "setup"

start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 2
shutdown_timeout = $SHUTDOWN_TIMEOUT
"
psql -X -Atq -v ON_ERROR_STOP=1 "$(conninfo)" -c "BEGIN" -c "INSERT INTO sigterm_t VALUES (1)" \
	-c "SELECT pg_sleep(2) /* sigterm-probe */" -c "INSERT INTO sigterm_t VALUES (2)" -c "COMMIT" \
	>"$TEST_TMP/client.out" 2>"$TEST_TMP/client.err" &
client=$!
track_pid "$client"
probe_active() { qd "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%sigterm-probe */' AND state = 'active'"; }
wait_until 5 eval '[[ $(probe_active) == 1 ]]' ||
	fail "the client's transaction did not start: $(cat "$TEST_TMP/client.err")"
sleep 0.3

sig=TERM
is_pgbouncer && sig=INT
t0=$(now_ms)
kill -"$sig" "$POOLER_PID"
note "SIG$sig sent to $TARGET"

# A new client is refused while the old transaction finishes.
sleep 0.3
out=$(PGCONNECT_TIMEOUT=3 timeout 10 "$HELPERS/pqtry" "$(conninfo)" "SELECT 'new-client-got-in'")
rc=$?
note "new client during shutdown: rc=$rc $out"
if is_pgbouncer && [[ $rc != 2 ]]; then
	known_diff "PgBouncer lets a new client log in during a safe shutdown (rc=$rc: $out)"
else
	assert_eq 2 "$rc" "a new connection during shutdown must be refused ($out)"
fi

wait "$client"
crc=$?
assert_eq 0 "$crc" "the in-flight client's psql status (stderr: $(cat "$TEST_TMP/client.err"))"
# pgring closes each client once its transaction is over (57P01 after the last
# ReadyForQuery), so the COMMIT is the client's last statement here.
assert_eq "1,2" "$(qd "SELECT string_agg(id::text, ',' ORDER BY id) FROM sigterm_t")" "rows committed"

wait_exit "$POOLER_PID" $((SHUTDOWN_TIMEOUT + 5)) || fail "$TARGET still running $((SHUTDOWN_TIMEOUT + 5)) s after SIG$sig"
el=$(($(now_ms) - t0))
assert_eq 0 "$WAIT_STATUS" "$TARGET exit status after SIG$sig"
assert_num_cmp "$el" -le $((SHUTDOWN_TIMEOUT * 1000 + 1000)) "ms from SIG$sig to exit (shutdown_timeout ${SHUTDOWN_TIMEOUT}s)"
note "exited after $el ms"
wait_until 5 eval '[[ $(pg_backends app) == 0 ]]' || fail "server connections left: $(pg_backends app)"
POOLER_PID=
pass "graceful shutdown"
