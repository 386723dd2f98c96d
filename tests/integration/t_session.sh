#!/usr/bin/env bash
# t_session: session state survives transaction pooling. Five long-lived psql
# clients with different startup parameters (application_name, options=-c
# search_path / statement_timeout / TimeZone) and different SETs interleave their
# transactions over ONE server (default_pool_size = 1), and each always sees only
# its own settings: SHOW search_path, SHOW timezone, SHOW statement_timeout,
# current_setting('application_name') and which schema's table `sess_tag` a bare
# name resolves to. Covered: SET outside a transaction block (also as part of a
# multi-statement query), SET inside a committed transaction block (sticks), SET
# inside a rolled back one (does not), SET LOCAL (does not leak, neither to the
# client after COMMIT nor to others), RESET one setting and RESET ALL (back to the
# client's own startup/options values, not to another client's), a client with no
# SETs at all, and statement_timeout actually applied (57014 for the client with
# 300ms, none for the client without).
#
# PGRING_TEST_VIA=transaction (default) | session (pgring in session mode, a server
# per client: must already pass) | direct (PostgreSQL itself: proves the test).
. "$(dirname "$0")/lib.sh"

[[ $VIA == transaction ]] && pgring_only "session state restore in transaction mode is pgring's"

open_client() { # NAME CONNINFO_EXTRA
	psql_open "$1" "$(conninfo app app app "$2")"
	say "$1" '\set QUIET on'
	[[ -z $SAY_ERR ]] || fail "$1: could not connect: $SAY_ERR"
}

qd "DROP SCHEMA IF EXISTS s_a, s_b, s_d CASCADE; DROP TABLE IF EXISTS public.sess_tag;
    CREATE SCHEMA s_a AUTHORIZATION app; CREATE SCHEMA s_b AUTHORIZATION app; CREATE SCHEMA s_d AUTHORIZATION app;
    CREATE TABLE public.sess_tag (tag text); INSERT INTO public.sess_tag VALUES ('public');
    CREATE TABLE s_a.sess_tag (tag text); INSERT INTO s_a.sess_tag VALUES ('a');
    CREATE TABLE s_b.sess_tag (tag text); INSERT INTO s_b.sess_tag VALUES ('b');
    CREATE TABLE s_d.sess_tag (tag text); INSERT INTO s_d.sess_tag VALUES ('d');
    GRANT SELECT ON ALL TABLES IN SCHEMA public, s_a, s_b, s_d TO app" >/dev/null || fail "setup schemas"

via_start 1

CLIENTS=(A B C D E)
declare -A EXPECT=()
CHECK_SQL=(
	'SHOW search_path;'
	'SHOW timezone;'
	'SHOW statement_timeout;'
	"SELECT current_setting('application_name');"
	'SELECT tag FROM sess_tag;'
)
expect() { # NAME SEARCH_PATH TIMEZONE STATEMENT_TIMEOUT APPLICATION_NAME TAG
	EXPECT[$1]=$(printf '%s\n' "$2" "$3" "$4" "$5" "$6")
}
# check_all WHAT: every client runs the five checks at once (their statements
# interleave over the one server), then each must have seen exactly its own state.
check_all() {
	local c
	for c in "${CLIENTS[@]}"; do say_send "$c" "${CHECK_SQL[@]}"; done
	for c in "${CLIENTS[@]}"; do
		say_wait "$c"
		[[ -z $SAY_ERR ]] || fail "$1: client $c: error: $SAY_ERR"
		assert_eq "${EXPECT[$c]}" "$SAY_OUT" "$1: client $c sees (search_path, timezone, statement_timeout, application_name, sess_tag)"
	done
}
# check_rr WHAT: the same, one client after the other (each statement of a check
# still its own transaction; between two clients' checks the server switches).
check_rr() {
	local c
	for c in "${CLIENTS[@]}"; do
		say "$c" "${CHECK_SQL[@]}"
		[[ -z $SAY_ERR ]] || fail "$1: client $c: error: $SAY_ERR"
		assert_eq "${EXPECT[$c]}" "$SAY_OUT" "$1: client $c sees (search_path, timezone, statement_timeout, application_name, sess_tag)"
	done
}

# A: everything from the startup packet.  B: everything from SETs.  C: nothing.
# D: TimeZone from options, search_path from a SET in a committed transaction block.
# E: application_name from the startup packet, TimeZone from a SET in a multi-statement query.
open_client A "application_name=app_a options='-c search_path=s_a,public -c statement_timeout=1111'"
open_client B "application_name=app_b_start"
open_client C ""
# (PGTZ=default: libpq sends no TimeZone of its own, which would override options)
PGTZ=default open_client D "application_name=app_d options='-c TimeZone=Asia/Tokyo'"
open_client E "application_name=app_e"
DEF_PATH='"$user", public'

expect A 's_a,public' UTC 1111ms app_a a
expect B "$DEF_PATH" UTC 0 app_b_start public
expect C "$DEF_PATH" UTC 0 psql public
expect D "$DEF_PATH" Asia/Tokyo 0 app_d public
expect E "$DEF_PATH" UTC 0 app_e public
check_rr "startup parameters"
check_all "startup parameters, concurrently"
pass "startup parameters and options=-c"

say_ok B "SET search_path = s_b, public;" "SET TimeZone = 'America/New_York';" "SET statement_timeout = '2222';" "SET application_name = 'app_b';"
say_ok D "BEGIN;" "SET search_path = s_d, public;" "SELECT 1;" "COMMIT;"
say_ok E "SET TimeZone = 'Europe/Paris' \\; SELECT 'multi';"
assert_eq multi "$SAY_OUT" "E: multi-statement query with a SET"
expect B 's_b, public' America/New_York 2222ms app_b b
expect D 's_d, public' Asia/Tokyo 0 app_d d
expect E "$DEF_PATH" Europe/Paris 0 app_e public
check_rr "after SETs"
check_all "after SETs, concurrently"
check_all "after SETs, concurrently, again"
pass "SET outside a transaction block, in a committed transaction block and in a multi-statement query"

# A SET in a rolled back transaction block does not stick; SET LOCAL does not leak.
say D "BEGIN;" "SET statement_timeout = 4444;" "SET application_name = 'rolled_back';" "SHOW statement_timeout;" "ROLLBACK;"
assert_eq 4444ms "$SAY_OUT" "D: SET inside the transaction block applies there"
say D "BEGIN;" "SET TimeZone = 'Europe/Paris';" "SELECT 1/0;" "ROLLBACK;"
assert_contains "$SAY_ERR" "division by zero" "D: failed transaction"
say_ok C "BEGIN;" "SET LOCAL search_path = s_b, public;" "SET LOCAL TimeZone = 'America/New_York';" "SET LOCAL application_name = 'local_c';" \
	"SELECT tag, current_setting('TimeZone'), current_setting('application_name') FROM sess_tag;" "COMMIT;"
assert_eq "b|America/New_York|local_c" "$SAY_OUT" "C: SET LOCAL applies inside its transaction"
say_ok A "BEGIN;" "SET LOCAL statement_timeout = 5555;" "SHOW statement_timeout;" "COMMIT;"
assert_eq 5555ms "$SAY_OUT" "A: SET LOCAL statement_timeout inside its transaction"
check_rr "after rolled back SETs and SET LOCAL"
check_all "after rolled back SETs and SET LOCAL, concurrently"
pass "SET in a rolled back transaction and SET LOCAL do not stick"

# RESET one setting: back to the client's own startup value.
say_ok A "SET statement_timeout = 9999;" "SET search_path = s_b;"
expect A 's_b' UTC 9999ms app_a b
check_all "A changed its startup settings"
say_ok A "RESET statement_timeout;"
say_ok B "RESET search_path;"
say_ok D "SET TimeZone = 'Europe/Paris';" "RESET TimeZone;"
expect A 's_b' UTC 1111ms app_a b
expect B "$DEF_PATH" America/New_York 2222ms app_b public
expect D 's_d, public' Asia/Tokyo 0 app_d d
check_rr "after RESET of one setting"
check_all "after RESET of one setting, concurrently"
pass "RESET one setting"

# RESET ALL: back to the client's startup values (options=-c, application_name, PGTZ).
say_ok A "SET TimeZone = 'Asia/Tokyo';" "SET application_name = 'changed_a';" "RESET ALL;"
say_ok B "RESET ALL;"
say_ok D "SET search_path = s_a;" "RESET ALL;"
say_ok E "SET statement_timeout = 7777;" "SET search_path = s_d;"
expect A 's_a,public' UTC 1111ms app_a a
expect B "$DEF_PATH" UTC 0 app_b_start public
expect D "$DEF_PATH" Asia/Tokyo 0 app_d public
expect E 's_d' Europe/Paris 7777ms app_e d
check_rr "after RESET ALL"
check_all "after RESET ALL, concurrently"
say_ok E "RESET ALL;"
expect E "$DEF_PATH" UTC 0 app_e public
check_all "after E's RESET ALL, concurrently"
pass "RESET ALL goes back to each client's own startup values"

# statement_timeout is really in force for the client that set it, and only for it.
say_ok B "SET statement_timeout = 300;"
say_send B "SELECT pg_sleep(0.8);"
say_send C "SELECT 'slept', pg_sleep(0.8);"
say_send A "SELECT 'slept', pg_sleep(0.5);"
say_wait B
assert_contains "$SAY_ERR" "canceling statement due to statement timeout" "B: statement_timeout 300ms applied"
say_wait C
[[ -z $SAY_ERR ]] || fail "C: statement_timeout of another client applied to C: $SAY_ERR"
assert_eq "slept|" "$SAY_OUT" "C: pg_sleep(0.8) with no statement_timeout"
say_wait A
[[ -z $SAY_ERR ]] || fail "A: statement_timeout of another client applied to A (A has 1111ms): $SAY_ERR"
say_ok B "RESET statement_timeout;"
expect B "$DEF_PATH" UTC 0 app_b_start public
check_all "after the statement_timeout round"
pass "statement_timeout applies to its client only"

# A short statement_timeout a client leaves on the one server is put back when
# the server is released (pool/server.c, reset_short_timeout): the next
# client's restore must not run its first statement under 1 ms (a fuzzer
# finding: a good client lost its connection to 57014 that way). Seen from
# outside: F, whose settings are B's but for that timeout, gets the server
# after B with no replay, and the short timeout still applies to B.
if [[ $VIA == transaction ]]; then
	open_client F "application_name=app_b_start"
	say_ok F "SELECT 1;"
	say_ok B "SET statement_timeout = 1;"
	say_ok B "SELECT 1;"
	before=$(metric pgring_pool_state_replays_total 'database="app",user="app"')
	say_ok F "SHOW statement_timeout;"
	assert_eq 0 "$SAY_OUT" "F after B's 1 ms: its own statement_timeout"
	after=$(metric pgring_pool_state_replays_total 'database="app",user="app"')
	assert_eq "$before" "$after" "F needed no replay: B's 1 ms statement_timeout was reset at release"
	# idle_session_timeout a client leaves would end the server idle in the
	# pool (or as the next client gets it): reset at release too, so the one
	# server outlives it (the same backend serves F after 200 ms)
	say_ok B "SET idle_session_timeout = 50;"
	say_ok B "SELECT pg_backend_pid();"
	pid_b=$SAY_OUT
	sleep 0.2
	say_ok F "SELECT pg_backend_pid();"
	assert_eq "$pid_b" "$SAY_OUT" "the server B left with idle_session_timeout 50ms is still there for F"
	say_ok B "SHOW idle_session_timeout;"
	assert_eq 50ms "$SAY_OUT" "B still sees its own idle_session_timeout"
	say_ok B "RESET idle_session_timeout;"
	psql_close F
	say B "SELECT pg_sleep(0.05);"
	assert_contains "$SAY_ERR" "canceling statement due to statement timeout" "B: its 1 ms statement_timeout still applies"
	for i in $(seq 1 50); do
		say_send B "SET statement_timeout = '1ms';" "SELECT $i;"
		say_send E "SET search_path = s_d;" "SELECT $i;"
	done
	say_wait B
	say_wait E
	[[ -z $SAY_ERR ]] || fail "E: restores after B's 1 ms statement_timeout: $SAY_ERR"
	say_ok B "RESET statement_timeout;"
	say_ok E "RESET ALL;"
	check_all "after B's 1 ms statement_timeout"
	pass "a 1 ms statement_timeout and an idle_session_timeout left on the server are reset at release"
fi

for c in "${CLIENTS[@]}"; do
	psql_close "$c"
	assert_eq 0 "$PSQL_STATUS" "client $c: psql exit status"
done
[[ $VIA == direct ]] || { stop_pgring || fail "$TARGET did not stop"; }
