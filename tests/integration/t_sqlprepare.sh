#!/usr/bin/env bash
# t_sqlprepare: SQL-level PREPARE / EXECUTE / DEALLOCATE keep working in transaction
# mode whichever server a client's next transaction lands on. Pool of 2 servers;
# a server change is forced by making another client hold, in an open transaction,
# the server the statement was prepared on (checked with pg_backend_pid()). Checks:
# EXECUTE p(21) = 42 on the other server; many interleaved EXECUTEs; a second client
# preparing the same name with another text (no 42P05, each sees its own); a client
# that never prepared p gets 26000; duplicate PREPARE gives 42P05; after DEALLOCATE p,
# DEALLOCATE ALL and DISCARD ALL the name gives 26000 also on another server, and
# preparing it again works; a PREPARE inside a rolled back transaction stays (as in
# PostgreSQL: prepared statements are not transactional); parameter types.
#
# PGRING_TEST_VIA=transaction (default) | session (pgring in session mode, a server
# per client: must already pass) | direct (PostgreSQL itself: proves the test).
# Forcing server changes only happens in transaction mode.
. "$(dirname "$0")/lib.sh"

[[ $VIA == transaction ]] && pgring_only "SQL PREPARE in transaction mode is pgring's"

say_expect() { # NAME EXPECTED_STDOUT MESSAGE SQL...: no error, exact output
	local name=$1 want=$2 msg=$3
	shift 3
	say_ok "$name" "$@"
	assert_eq "$want" "$SAY_OUT" "$msg"
}
say_error() { # NAME ERROR_TEXT MESSAGE SQL...
	local name=$1 want=$2 msg=$3
	shift 3
	say "$name" "$@"
	assert_contains "$SAY_ERR" "$want" "$msg"
}
open_client() {
	psql_open "$1" "$(conninfo app app app "${2:-}")"
	say "$1" '\set QUIET on'
	[[ -z $SAY_ERR ]] || fail "$1: could not connect: $SAY_ERR"
}

# hold_server PID [CLIENTS...]: make one of CLIENTS (default B C) hold server PID in
# an open transaction (transaction mode only), so that the next transaction of
# anyone else must run elsewhere. HOLDER names who.
HOLDER=
hold_server() {
	local want=$1 h got=() cands=("${@:2}")
	((${#cands[@]})) || cands=(B C)
	HOLDER=
	[[ $VIA == transaction ]] || return 0
	for h in "${cands[@]}"; do
		say_ok "$h" "BEGIN;" "SELECT pg_backend_pid();"
		got+=("$h")
		if [[ $SAY_OUT == "$want" ]]; then
			HOLDER=$h
			break
		fi
	done
	[[ -n $HOLDER ]] || fail "could not make ${cands[*]} hold server $want (pool of 2)"
	for h in "${got[@]}"; do [[ $h == "$HOLDER" ]] || say_ok "$h" "COMMIT;"; done
}
release_server() { [[ -z $HOLDER ]] || say_ok "$HOLDER" "COMMIT;"; HOLDER=; }
# elsewhere NAME PID SQL...: run SQL (one query, first statement SELECT
# pg_backend_pid()) on NAME while PID is held by another client; output without the pid line.
elsewhere() {
	local name=$1 pid=$2
	shift 2
	hold_server "$pid"
	say "$name" "$@"
	local first=${SAY_OUT%%$'\n'*}
	local out err=$SAY_ERR
	[[ $SAY_OUT == *$'\n'* ]] && out=${SAY_OUT#*$'\n'} || out=
	release_server
	SAY_OUT=$out SAY_ERR=$err
	if [[ $VIA == transaction ]]; then
		[[ $first =~ ^[0-9]+$ ]] || fail "$name: expected a backend pid first, got [$first] ($SAY_ERR)"
		assert_ne "$pid" "$first" "$name: the transaction was meant to land on another server"
	fi
}

via_start 2 "max_prepared_statements = 100"
open_client A
open_client B
open_client C

# 1. PREPARE on one server, EXECUTE on another.
say_ok A 'PREPARE p AS SELECT $1::int * 2 \; SELECT pg_backend_pid();'
X=$SAY_OUT
[[ $X =~ ^[0-9]+$ ]] || fail "A: pid after PREPARE: [$X]"
say_expect A 42 "A: EXECUTE p(21)" 'EXECUTE p(21);'
elsewhere A "$X" 'SELECT pg_backend_pid() \; EXECUTE p(21);'
[[ -z $SAY_ERR ]] || fail "A: EXECUTE p(21) on another server than the PREPARE: $SAY_ERR"
assert_eq 42 "$SAY_OUT" "A: EXECUTE p(21) on another server than the PREPARE"
pass "PREPARE on one server, EXECUTE p(21) = 42 on another"

# 2. Interleaved with other clients' transactions.
for k in 1 2 3 4 5 6; do
	say_send B "SELECT 'b$k';"
	say_send C "BEGIN;" "SELECT 'c$k';" "SELECT pg_sleep(0.02);" "COMMIT;"
	say_send A "EXECUTE p($k);"
	say_wait B; say_wait C; say_wait A
	[[ -z $SAY_ERR ]] || fail "A: EXECUTE p($k) round $k: $SAY_ERR"
	assert_eq $((2 * k)) "$SAY_OUT" "A: EXECUTE p($k) interleaved with B and C"
done
pass "EXECUTE interleaved with other clients"

# 3. Another client prepares the same name with another text; a third has none.
say_ok B 'PREPARE p AS SELECT $1::int * 3;'
say_expect B 63 "B: its own p" 'EXECUTE p(21);'
for k in 1 2 3 4; do
	say_send A "EXECUTE p($k);"
	say_send B "EXECUTE p($k);"
	say_send C "EXECUTE p($k);"
	say_wait A
	[[ -z $SAY_ERR ]] || fail "A: EXECUTE p($k) beside B's p: $SAY_ERR"
	assert_eq $((2 * k)) "$SAY_OUT" "A: sees its own p, not B's"
	say_wait B
	[[ -z $SAY_ERR ]] || fail "B: EXECUTE p($k) beside A's p: $SAY_ERR"
	assert_eq $((3 * k)) "$SAY_OUT" "B: sees its own p, not A's"
	say_wait C
	assert_contains "$SAY_ERR" 'prepared statement "p" does not exist' "C never prepared p (round $k)"
	assert_eq "" "$SAY_OUT" "C: no result for EXECUTE p"
done
say_ok C '\echo :SQLSTATE'
say_error C 'prepared statement "p" does not exist' "C: EXECUTE of a name it never prepared" 'EXECUTE p(1);' '\echo :LAST_ERROR_SQLSTATE'
assert_eq 26000 "$SAY_OUT" "C: SQLSTATE of EXECUTE p"
pass "two clients, one name, two texts; a third client does not see either"

# 4. Duplicate PREPARE.
say_error A 'prepared statement "p" already exists' "A: PREPARE p again" 'PREPARE p AS SELECT 1;' '\echo :LAST_ERROR_SQLSTATE'
assert_eq 42P05 "$SAY_OUT" "A: SQLSTATE of the duplicate PREPARE"
say_expect A 2 "A: p unchanged after the failed PREPARE" 'EXECUTE p(1);'
pass "duplicate PREPARE gives 42P05"

# 5. DEALLOCATE p, then p is gone on every server; PREPARE it again.
say_ok A 'DEALLOCATE p \; SELECT pg_backend_pid();'
Z=$SAY_OUT
elsewhere A "$Z" 'SELECT pg_backend_pid() \; EXECUTE p(1);'
assert_contains "$SAY_ERR" 'prepared statement "p" does not exist' "A: EXECUTE p after DEALLOCATE p, on another server"
for _ in 1 2 3; do
	say_error A 'prepared statement "p" does not exist' "A: EXECUTE p after DEALLOCATE p" 'EXECUTE p(1);'
done
say_expect B 30 "B: its p survives A's DEALLOCATE" 'EXECUTE p(10);'
say_ok A 'PREPARE p AS SELECT $1::int + 1 \; SELECT pg_backend_pid();'
Z=$SAY_OUT
elsewhere A "$Z" 'SELECT pg_backend_pid() \; EXECUTE p(1);'
[[ -z $SAY_ERR ]] || fail "A: EXECUTE of the re-prepared p on another server: $SAY_ERR"
assert_eq 2 "$SAY_OUT" "A: the re-prepared p (new text) on another server"
say_expect A 11 "A: the re-prepared p" 'EXECUTE p(10);'
pass "DEALLOCATE name, then PREPARE it again"

# 6. PREPARE inside a rolled back transaction stays (not transactional); types.
say_ok A "BEGIN;" "PREPARE r AS SELECT 'r' || \$1::text;" "ROLLBACK;" 'SELECT pg_backend_pid();'
Z=$SAY_OUT
elsewhere A "$Z" 'SELECT pg_backend_pid() \; EXECUTE r(1);'
[[ -z $SAY_ERR ]] || fail "A: EXECUTE of a statement prepared in a rolled back transaction: $SAY_ERR"
assert_eq r1 "$SAY_OUT" "A: PREPARE inside a rolled back transaction still exists"
say_ok A "PREPARE t(int, text) AS SELECT \$1 + 1, \$2 || '!', pg_typeof(\$1)::text \\; SELECT pg_backend_pid();"
Z=$SAY_OUT
elsewhere A "$Z" "SELECT pg_backend_pid() \\; EXECUTE t(1, 'a');"
[[ -z $SAY_ERR ]] || fail "A: EXECUTE t(1, 'a'): $SAY_ERR"
assert_eq "2|a!|integer" "$SAY_OUT" "A: PREPARE with parameter types"
pass "PREPARE in a rolled back transaction, PREPARE with types"

# 7. DEALLOCATE ALL, DISCARD ALL.
say_ok A 'DEALLOCATE ALL \; SELECT pg_backend_pid();'
Z=$SAY_OUT
elsewhere A "$Z" 'SELECT pg_backend_pid() \; EXECUTE t(1, $$x$$);'
assert_contains "$SAY_ERR" 'prepared statement "t" does not exist' "A: EXECUTE t after DEALLOCATE ALL, on another server"
say_error A 'prepared statement "p" does not exist' "A: EXECUTE p after DEALLOCATE ALL" 'EXECUTE p(1);'
say_error A 'prepared statement "r" does not exist' "A: EXECUTE r after DEALLOCATE ALL" 'EXECUTE r(1);'
say_expect B 9 "B: its p survives A's DEALLOCATE ALL" 'EXECUTE p(3);'
say_ok A 'PREPARE p AS SELECT $1::int * 5;'
say_expect A 50 "A: PREPARE after DEALLOCATE ALL" 'EXECUTE p(10);'
# (DISCARD ALL cannot be part of a multi-statement query: the servers where it ran
# and where the EXECUTEs run are each some server; one EXECUTE is forced elsewhere.)
say_ok B 'DISCARD ALL;'
say_ok B 'SELECT pg_backend_pid();'
Z=$SAY_OUT
hold_server "$Z" C A
say B 'SELECT pg_backend_pid() \; EXECUTE p(1);'
[[ $VIA != transaction || ${SAY_OUT%%$'\n'*} != "$Z" ]] || fail "B: was meant to land on another server than $Z"
err=$SAY_ERR
release_server
SAY_ERR=$err
assert_contains "$SAY_ERR" 'prepared statement "p" does not exist' "B: EXECUTE p after DISCARD ALL (another server)"
say_error B 'prepared statement "p" does not exist' "B: EXECUTE p after DISCARD ALL" 'EXECUTE p(1);'
say_expect A 5 "A: its p survives B's DISCARD ALL" 'EXECUTE p(1);'
say_ok B 'PREPARE p AS SELECT $1::int * 7;'
say_expect B 14 "B: PREPARE after DISCARD ALL" 'EXECUTE p(2);'
pass "DEALLOCATE ALL and DISCARD ALL"

for c in A B C; do
	psql_close "$c"
	assert_eq 0 "$PSQL_STATUS" "client $c: psql exit status"
done
[[ $VIA == direct ]] || { stop_pgring || fail "$TARGET did not stop"; }

# A statement prepared where pgring cannot see it (PREPARE run by a DO block) is
# on the server, not in pgring's record: a client that prepared the same name
# and lands on that server (pool of 1) must still get its own statement, not
# lose its connection to 42P05 when pgring prepares its statement again there.
via_start 1 "max_prepared_statements = 100"
open_client D
open_client E
say_ok D 'PREPARE q AS SELECT 2;'
say_ok E "DO \$\$BEGIN EXECUTE 'PREPARE q AS SELECT 1'; END\$\$;"
say_expect D 2 "D: its q after another client prepared q unseen on the same server" 'EXECUTE q;'
say_expect D 2 "D: again" 'EXECUTE q;'
for c in D E; do
	psql_close "$c"
	assert_eq 0 "$PSQL_STATUS" "client $c: psql exit status"
done
[[ $VIA == direct ]] || { stop_pgring || fail "$TARGET did not stop"; }
pass "a name prepared unseen on the server does not cost another client its statement"
