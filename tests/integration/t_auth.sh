#!/usr/bin/env bash
# t_auth: client authentication with an auth_file holding plain, md5 and SCRAM
# secrets (the SCRAM one copied from pg_authid, so the pooler can log in to the
# server with the keys the client proved). For auth_type trust, plain, md5 and
# scram-sha-256: the right password is accepted, a wrong one refused with SQLSTATE
# 28P01. Also: unknown database -> 3D000, too many clients -> 53300.
. "$(dirname "$0")/lib.sh"

# accept USER PASSWORD: login works and the session runs as USER.
accept() {
	local out
	out=$(pqtry "$(conninfo app "$1" "$2")" "SELECT current_user") ||
		fail "$AUTH: $1 with the right password was refused: $out"
	assert_eq "$1" "$out" "$AUTH: current_user"
}
# refuse WHAT SQLSTATE CONNINFO: the login fails with SQLSTATE.
refuse() {
	local what=$1 want=$2 out rc code
	out=$(pqtry "$3" "SELECT 1")
	rc=$?
	assert_eq 2 "$rc" "$AUTH: $what must fail at login (pqtry: $out)"
	code=$(awk '{print $2}' <<<"$out")
	if is_pgbouncer && [[ $code != "$want" ]]; then
		known_diff "$AUTH: $what: PgBouncer sends $code, pgring must send $want ($out)"
	else
		assert_eq "$want" "$code" "$AUTH: $what: SQLSTATE ($out)"
	fi
}

start_auth() {
	AUTH=$1
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = $1
auth_file = @AUTH_FILE@
pool_mode = transaction
default_pool_size = 2
max_client_conn = ${2:-100}
"
}

# --- trust: no password asked; the user must still be in the auth file.
start_auth trust
accept app ""
accept md5user ""
out=$(pqtry "$(conninfo app nosuchuser "")" "SELECT 1")
assert_eq 2 "$?" "trust: a user missing from the auth file must be refused ($out)"
assert_match "$out" '^ERROR (28[0-9A-Z]{3}|08P01) ' "trust: refusal of an unknown user"
is_pgbouncer || assert_match "$out" '^ERROR 28[0-9A-Z]{3} ' "trust: unknown user SQLSTATE class 28"
stop_pgring
pass trust

# --- plain: cleartext from the client, checked against plain and md5 secrets.
start_auth plain
accept app app
accept md5user md5pass
refuse "app, wrong password" 28P01 "$(conninfo app app wrong)"
refuse "md5user, wrong password" 28P01 "$(conninfo app md5user wrong)"
refuse "unknown user" 28P01 "$(conninfo app nosuchuser x)"
stop_pgring
pass plain

# --- md5: md5 challenge; a user with a SCRAM secret gets SCRAM instead.
start_auth md5
accept app app
accept md5user md5pass
accept scramuser scrampass
refuse "app, wrong password" 28P01 "$(conninfo app app wrong)"
refuse "md5user, wrong password" 28P01 "$(conninfo app md5user wrong)"
refuse "scramuser, wrong password" 28P01 "$(conninfo app scramuser wrong)"
refuse "unknown database" 3D000 "$(conninfo nosuchdb app app)"
# libpq can insist on the method: an md5 login must really be md5 (or SCRAM for SCRAM secrets).
out=$(pqtry "$(conninfo app app app "require_auth=md5")" "SELECT 1" 2>&1)
if [[ $out == *"invalid connection option"* ]]; then
	note "libpq has no require_auth (PostgreSQL < 16): method not checked"
else
	assert_eq 1 "$out" "md5: the client was asked for md5"
fi
stop_pgring
pass md5

# --- scram-sha-256: plain secrets and SCRAM secrets (pass-through to the server).
start_auth scram-sha-256
accept app app
accept scramuser scrampass
refuse "app, wrong password" 28P01 "$(conninfo app app wrong)"
refuse "scramuser, wrong password" 28P01 "$(conninfo app scramuser wrong)"
# The server login with the client's SCRAM keys must survive a new server connection:
# force one by running two transactions at once (pool of 2).
PGPASSWORD=scrampass psql -X -Atq -c "SELECT pg_sleep(0.5)" "$(conninfo app scramuser scrampass)" >/dev/null &
p1=$!
v=$(pqtry "$(conninfo app scramuser scrampass)" "SELECT pg_sleep(0.2)" "SELECT current_user") ||
	fail "scram: second concurrent scramuser session: $v"
wait "$p1" || fail "scram: first concurrent scramuser session failed"
assert_contains "$v" scramuser "scram: concurrent sessions"
stop_pgring
pass scram-sha-256

# --- max_client_conn = 2: the third client is refused with 53300, and once the
# others leave a new one gets in.
start_auth md5 2
holders=()
for i in 1 2; do
	"$HELPERS/pqtry" -H 3 "$(conninfo)" "SELECT 'held'" >"$TEST_TMP/hold$i.out" 2>&1 &
	track_pid $!
	holders+=($!)
done
wait_until 10 eval '[[ $(grep -c HOLDING "$TEST_TMP/hold1.out" "$TEST_TMP/hold2.out" | grep -c :1) == 2 ]]' ||
	fail "max_client_conn: the first two clients did not connect: $(cat "$TEST_TMP"/hold*.out)"
AUTH="md5 max_client_conn=2"
refuse "third client" 53300 "$(conninfo)"
wait "${holders[0]}" || fail "max_client_conn: first client failed: $(cat "$TEST_TMP/hold1.out")"
wait "${holders[1]}" || fail "max_client_conn: second client failed: $(cat "$TEST_TMP/hold2.out")"
assert_eq 2 "$(grep -c '^held$' "$TEST_TMP/hold1.out")" "max_client_conn: first client kept working"
wait_until 5 eval 'Q_TIMEOUT=5 pqtry "$(conninfo)" "SELECT 1" >/dev/null' ||
	fail "max_client_conn: no new login after the others left: $(Q_TIMEOUT=5 pqtry "$(conninfo)" "SELECT 1") (status $?)"
stop_pgring
pass "max_client_conn"
