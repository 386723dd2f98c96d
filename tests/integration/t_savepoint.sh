#!/usr/bin/env bash
# Session settings through savepoints, DISCARD ALL and RESET ALL in transaction
# mode: one script run directly and through pgring (pool of 1, while other clients
# keep changing the one server's settings between its transactions) must print
# the same. What it checks: a SET before a savepoint survives ROLLBACK TO, one
# after it does not; RELEASE keeps it; DISCARD ALL and RESET ALL go back to the
# client's own startup values (options=-c, application_name), not the server's;
# a COMMIT or ROLLBACK inside one Query settles the transaction before it, whatever
# the statements after it do (a SET committed before a failing statement stays).
# The timeouts set are seconds long: a few milliseconds cancelled the next
# statement on a loaded machine (CI, directly: "canceling statement due to
# statement timeout" where the script expects "division by zero").
source "$(dirname "$0")/lib.sh"
pgring_only "session state restore in transaction mode is pgring's"

qd "CREATE SCHEMA IF NOT EXISTS sp_a; CREATE SCHEMA IF NOT EXISTS sp_noise; GRANT USAGE ON SCHEMA sp_a, sp_noise TO app;" >/dev/null ||
	fail "schemas"
on_exit 'qd "DROP SCHEMA IF EXISTS sp_a, sp_noise CASCADE"'

SCRIPT=$(cat <<'SQL'
\set ON_ERROR_STOP 0
SHOW search_path; SHOW statement_timeout; SHOW application_name;
BEGIN; SET search_path = public; SAVEPOINT a; SET statement_timeout = 9900; ROLLBACK TO a; COMMIT;
SHOW search_path; SHOW statement_timeout;
BEGIN; SAVEPOINT b; SET search_path = sp_a; RELEASE b; SAVEPOINT c; SET statement_timeout = 7700; SELECT 1/0; ROLLBACK TO SAVEPOINT c; COMMIT;
SHOW search_path; SHOW statement_timeout;
BEGIN; SET statement_timeout = 4321; SAVEPOINT d; SET search_path = public; ROLLBACK; 
SHOW search_path; SHOW statement_timeout;
SET application_name = changed; SET search_path = public; SET statement_timeout = 5500;
SHOW application_name; SHOW search_path; SHOW statement_timeout;
DISCARD ALL;
SHOW application_name; SHOW search_path; SHOW statement_timeout;
SET search_path = public; SET statement_timeout = '2s'; RESET ALL;
SHOW application_name; SHOW search_path; SHOW statement_timeout;
SET search_path = public; RESET search_path; SHOW search_path;
BEGIN\; SET search_path = public\; COMMIT\; SELECT 1/0;
SHOW search_path;
BEGIN\; SET search_path = sp_a\; ROLLBACK\; SET statement_timeout = 4444;
SHOW search_path; SHOW statement_timeout;
SQL
)
OPTS="application_name=sp_client options='-c search_path=sp_a,public -c statement_timeout=1234'"
run_script() { # CONNINFO
	printf '%s\n' "$SCRIPT" | timeout 60 psql "$1 $OPTS" -X -At -v ON_ERROR_STOP=0 2>&1
}

direct=$(run_script "$(conninfo_direct app app) password=app") || true
assert_contains "$direct" "division by zero" "the script runs directly"
note "direct: $(wc -l <<<"$direct") lines"

start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 1
shards = 2
"
# noise: other clients setting other values on the same server all along
noise() {
	while [[ ! -e $TEST_TMP/stop ]]; do
		psql "$(conninfo) application_name=noise options='-c statement_timeout=777'" -X -At \
			-c "SET search_path = sp_noise" -c "SET statement_timeout = 888" -c "SELECT 1" >/dev/null 2>&1
	done
}
noise & NOISE1=$!
noise & NOISE2=$!
track_pid $NOISE1
track_pid $NOISE2
on_exit "touch $TEST_TMP/stop; wait $NOISE1 $NOISE2"
for round in 1 2 3; do
	got=$(run_script "$(conninfo)") || true
	if [[ $got != "$direct" ]]; then
		diff <(echo "$direct") <(echo "$got") | sed 's/^/# /'
		fail "round $round: through pgring the script printed something else than directly"
	fi
done
touch "$TEST_TMP/stop"
wait $NOISE1 $NOISE2
replays=$(metric pgring_pool_state_replays_total 'database="app",user="app"')
assert_num_cmp "$replays" -gt 3 "session state was replayed on the shared server (replays: $replays)"
pass "savepoints, DISCARD ALL and RESET ALL give the same settings as directly, 3 rounds with other clients in between"
