#!/usr/bin/env bash
# t_authquery (pgring only): auth_user / auth_query / auth_dbname (issue 15
# point 3), against a PostgreSQL of this test's own (its roles and pg_hba.conf
# are made here). Users absent from auth_file have their secret looked up:
#  - default auth_query (PgBouncer 1.24's, pg_authid, auth_user = postgres):
#    an md5 role and a SCRAM role log in (md5 challenge, SCRAM exchange) and
#    their servers log in with the looked-up secret (md5, SCRAM pass-through);
#    wrong passwords, an unknown role, an expired role (VALID UNTIL) and a role
#    with no password are refused with 28P01, as a wrong password;
#  - a cluster entry's lookup goes to its primary; with read_write_split a
#    read's replica pool logs its server in with the secret learned at login;
#  - auth_dbname on an entry sends the lookup to the entry it names;
#  - auth_type = trust still looks the user up: unknown ones are refused;
#  - the role name goes as a parameter: a name carrying SQL (a quote, a DROP)
#    is just an unknown name, and a role really named with a quote logs in;
#  - a SECURITY DEFINER lookup function as PgBouncer's docs recommend, called
#    by a non-superuser auth_user whose plain password is in auth_file; the
#    function counts its calls in a sequence: 200 logins of the same role at
#    once with no cache make exactly one call; with auth_cache_ttl a second
#    login makes none, a reload (SIGHUP) drops the cache;
#  - the lookup connection's search_path is fixed (pg_catalog, pg_temp): an
#    auth_query with an unqualified name cannot find a table in public, the
#    login fails (08006) and the failure is logged;
#  - client_login_timeout applies while a lookup runs, and its late answer
#    finds the client gone without harm;
#  - Prometheus counters of the lookups.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "the test's PostgreSQL and metrics are pgring's harness (PgBouncer 1.18 runs a query per login)"

PGTMP=$ROOT/tools/pgtmp
chmod o+x "$TEST_TMP"
CL=$TEST_TMP/cluster
mkdir -p "$CL"
chmod 755 "$CL"
on_exit "$PGTMP stop $CL/p1"
P1=$(PGTMP_MAX_CONN=300 timeout 120 "$PGTMP" start "$CL/p1" | sed -n 's/^PORT=//p')
[[ -n $P1 ]] || fail "the test's PostgreSQL did not start"
on() { timeout 30 psql -X -Atq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$P1" -U postgres -d "${2:-postgres}" -c "$1"; }

# md5 for the md5 role (its server login is md5), SCRAM for the others over TCP
printf '%s\n' "local all all trust" "host all postgres 127.0.0.1/32 trust" \
	"host all aq_md5 127.0.0.1/32 md5" "host all all 127.0.0.1/32 scram-sha-256" |
	runuser -u postgres -- tee "$CL/p1/data/pg_hba.conf" >/dev/null
on "SELECT pg_reload_conf()" >/dev/null
on "CREATE DATABASE aqdb" >/dev/null || fail "creating aqdb"

on "SET password_encryption = 'md5'; CREATE ROLE aq_md5 LOGIN PASSWORD 'md5pw'" ||
	fail "creating the md5 role"
on "CREATE ROLE aq_scram LOGIN PASSWORD 'scrampw';
    CREATE ROLE aq_many LOGIN PASSWORD 'manypw';
    CREATE ROLE aq_expired LOGIN PASSWORD 'exppw' VALID UNTIL '2000-01-01';
    CREATE ROLE aq_nopass LOGIN;
    CREATE ROLE \"aq_o'neil\" LOGIN PASSWORD 'quotepw';
    CREATE ROLE aq_lookup LOGIN PASSWORD 'lookpw';
    CREATE TABLE public.aq_t (x int); INSERT INTO public.aq_t VALUES (1);
    GRANT SELECT ON public.aq_t TO PUBLIC;
    -- PgBouncer's recommended lookup function, counting its calls
    CREATE SCHEMA pgring_auth;
    CREATE SEQUENCE pgring_auth.calls;
    CREATE FUNCTION pgring_auth.lookup(p_user name) RETURNS TABLE (usename name, passwd text)
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS \$\$
      BEGIN
        PERFORM pg_catalog.nextval('pgring_auth.calls');
        PERFORM pg_catalog.pg_advisory_xact_lock_shared(42);   -- the test holds it to make logins wait
        RETURN QUERY SELECT rolname, CASE WHEN rolvaliduntil < pg_catalog.now() THEN NULL ELSE rolpassword END
          FROM pg_catalog.pg_authid WHERE rolname = p_user AND rolcanlogin;
      END \$\$;
    REVOKE ALL ON FUNCTION pgring_auth.lookup(name) FROM PUBLIC;
    GRANT USAGE ON SCHEMA pgring_auth TO aq_lookup;
    GRANT EXECUTE ON FUNCTION pgring_auth.lookup(name) TO aq_lookup;
    -- a table the custom query below names without its schema
    CREATE TABLE public.aq_secrets (usename name, passwd text);
    GRANT SELECT ON public.aq_secrets TO PUBLIC;
    INSERT INTO public.aq_secrets SELECT rolname, rolpassword FROM pg_authid WHERE rolname = 'aq_scram'" >/dev/null ||
	fail "creating the roles"
calls() { on "SELECT last_value - (CASE WHEN is_called THEN 0 ELSE 1 END) FROM pgring_auth.calls"; }

# try USER PASSWORD: one login through pgring, OUT = its output, RC = its status
try() {
	local u=${1//\\/\\\\}
	u=${u//\'/\\\'}
	OUT=$(pqtry "host=127.0.0.1 port=$PORT dbname=postgres user='$u' password='$2'" "SELECT current_user" 2>&1)
	RC=$?
}
accept() {
	try "$1" "$2"
	assert_eq 0 "$RC" "$1 with the right password must log in ($OUT)"
	assert_eq "$1" "$OUT" "$1: the server session runs as the role"
}
refuse() { # USER PASSWORD SQLSTATE WHY
	try "$1" "$2"
	assert_eq 2 "$RC" "$4 must be refused ($OUT)"
	assert_match "$OUT" "^ERROR $3 " "$4: SQLSTATE"
}

# ---- the default auth_query, run as the superuser
CONF_A="
[pgring]
auth_type = md5
auth_file = @AUTH_FILE@
auth_user = postgres
auth_dbname = postgres
pool_mode = transaction
default_pool_size = 2
health_check_interval = 0
[cluster.main]
n1 = host=127.0.0.1 port=$P1 role=primary
n2 = host=127.0.0.1 port=$P1 role=replica
[databases]
postgres = host=127.0.0.1 port=$P1 dbname=postgres
viacluster = cluster=main dbname=postgres
viasplit = cluster=main dbname=postgres read_write_split=1
"
AUTH_FILE_TEXT='"someone" "else"' start_pgring "$CONF_A"

accept aq_md5 md5pw
accept aq_scram scrampw
accept aq_md5 md5pw   # again: from the cache, and the pool's servers
refuse aq_md5 wrong 28P01 "aq_md5 with a wrong password"
refuse aq_scram wrong 28P01 "aq_scram with a wrong password"
refuse aq_nosuch x 28P01 "an unknown role"
refuse aq_expired exppw 28P01 "an expired role (VALID UNTIL 2000-01-01) with its right password"
refuse aq_nopass anything 28P01 "a role with no password"
OUT=$(pqtry "host=127.0.0.1 port=$PORT dbname=viacluster user=aq_scram password=scrampw" "SELECT current_user" 2>&1)
assert_eq aq_scram "$OUT" "a cluster entry's lookup goes to its primary"
# a read goes to the replica's pool, whose server logs in with the secret the
# primary's pool learned at the login (md5: no client key needed)
OUT=$(pqtry "host=127.0.0.1 port=$PORT dbname=viasplit user=aq_md5 password=md5pw" "SELECT current_user" 2>&1)
assert_eq aq_md5 "$OUT" "read_write_split: the read ran"
n2=$(metric pgring_pool_server_connects_total 'database="viasplit",node="main/n2"') ||
	fail "no server of node main/n2 for viasplit"
assert_num_cmp "$n2" -ge 1 "the replica's pool logged in a server with the looked-up secret"
pass "md5 and SCRAM roles from the default auth_query; expired, unknown, no-password refused as a wrong password"

# a role name carrying SQL is only a name
refuse "x'; DROP TABLE public.aq_t; --" x 28P01 "a name with a DROP in it"
refuse "aq_md5' OR '1'='1" md5pw 28P01 "a name with an OR in it"
refuse 'aq_md5"; --' md5pw 28P01 "a name with a double quote in it"
assert_eq 1 "$(on 'SELECT count(*) FROM public.aq_t')" "the table the name tried to drop is there"
accept "aq_o'neil" quotepw
grep -q "syntax error" "$POOLER_LOG" && fail "a role name reached the SQL text: $(grep 'syntax error' "$POOLER_LOG")"
pass "role names go as a parameter: SQL in them is harmless, a quote in a real name works"

# log lines: the expired role's lookup is logged, nothing says a wrong thing
grep -q 'failed for user "aq_expired": auth_query gave no secret' "$POOLER_LOG" ||
	fail "the expired role's refusal is not logged with its reason"
stop_pgring

# ---- a SECURITY DEFINER function as a non-superuser auth_user; no cache: coalescing alone
CONF_B="
[pgring]
auth_type = scram-sha-256
auth_file = @AUTH_FILE@
auth_user = aq_lookup
auth_query = SELECT usename, passwd FROM pgring_auth.lookup(\$1)
auth_cache_ttl = 0
auth_cache_negative_ttl = 0
pool_mode = transaction
default_pool_size = 4
max_client_conn = 500
health_check_interval = 0
[databases]
postgres = host=127.0.0.1 port=$P1 dbname=postgres
aqdb = host=127.0.0.1 port=$P1 dbname=aqdb auth_dbname=postgres
aqdb_own = host=127.0.0.1 port=$P1 dbname=aqdb
"
export AUTH_FILE_TEXT='"aq_lookup" "lookpw"'
start_pgring "$CONF_B"
accept aq_scram scrampw
# auth_dbname names the entry the lookup goes to: aqdb has no lookup function, postgres has
OUT=$(pqtry "host=127.0.0.1 port=$PORT dbname=aqdb user=aq_scram password=scrampw" "SELECT current_database()" 2>&1)
assert_eq aqdb "$OUT" "auth_dbname=postgres on the aqdb entry: looked up in database postgres"
OUT=$(pqtry "host=127.0.0.1 port=$PORT dbname=aqdb_own user=aq_scram password=scrampw" "SELECT 1" 2>&1)
assert_match "$OUT" "^ERROR 08006 " "no auth_dbname: the lookup runs in the entry's own database, which lacks the function"
grep -q 'function pgring_auth.lookup' "$POOLER_LOG" || grep -q 'schema "pgring_auth" does not exist' "$POOLER_LOG" ||
	fail "the failed lookup in aqdb is not logged"
c0=$(calls)
q0=$(metric pgring_auth_query_queries_total)
# the lookup waits at the server for a lock the test holds until all 200 logins wait
psql_open holder "host=127.0.0.1 port=$P1 user=postgres dbname=postgres"
psql_send holder "SELECT pg_advisory_lock(42);"
psql_sync holder || fail "taking the advisory lock"
N=200
pids=()
for ((i = 0; i < N; i++)); do
	PGCONNECT_TIMEOUT=60 PGPASSWORD=manypw timeout 90 psql -X -Atq -w -h 127.0.0.1 -p "$PORT" -U aq_many -d postgres \
		-c "SELECT 'ok'" >"$TEST_TMP/many.$i" 2>&1 &
	pids+=($!)
done
t0=$(now_ms)
clients_in() { ss -Htn state established "( sport = :$PORT )" | wc -l; }
lookup_waits() { on "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' AND usename = 'aq_lookup'"; }
wait_until 40 eval '[[ $(clients_in) -ge $N && $(lookup_waits) == 1 ]]' ||
	fail "the $N logins did not all wait ($(clients_in) connected, $(lookup_waits) lookup waiting)"
sleep 0.5   # their startup packets are in
t1=$(now_ms)
psql_send holder "SELECT pg_advisory_unlock(42);"
psql_sync holder || fail "releasing the advisory lock"
wait "${pids[@]}"
t2=$(now_ms)
ok=$(cat "$TEST_TMP"/many.* | grep -c '^ok$')
assert_eq $N "$ok" "all $N concurrent logins of aq_many succeed ($(grep -hv '^ok$' "$TEST_TMP"/many.* | sort | uniq -c | head -3))"
c1=$(calls)
q1=$(metric pgring_auth_query_queries_total)
note "$N logins waiting after $((t1 - t0)) ms, all in $((t2 - t1)) ms once the lookup went on; lookup function calls: $((c1 - c0)), pgring's queries: $((q1 - q0))"
assert_eq 1 $((c1 - c0)) "the $N concurrent logins called the lookup function once"
assert_eq 1 $((q1 - q0)) "pgring sent auth_query once for them"
co=$(metric pgring_auth_query_coalesced_total)
hits=$(metric pgring_auth_query_requests_total)
note "requests $hits, coalesced $co"
assert_num_cmp "$co" -ge 1 "some shard's question joined the running lookup"
assert_num_cmp "$hits" -lt $((N / 2)) "the shards asked once per role, not once per client"
# without a cache, the next login asks again
c0=$(calls)
accept aq_many manypw
assert_eq $((c0 + 1)) "$(calls)" "no cache (auth_cache_ttl = 0): a later login looks up again"
pass "200 concurrent logins of one role share one lookup"

# ---- with a cache: the second login makes no query; a reload drops the cache
reload_pgring "${CONF_B/auth_cache_ttl = 0/auth_cache_ttl = 60}"
wait_until 10 grep -q "configuration reloaded" "$POOLER_LOG" || fail "the reload was not logged"
c0=$(calls)
accept aq_many manypw
accept aq_many manypw
accept aq_many manypw
assert_eq $((c0 + 1)) "$(calls)" "auth_cache_ttl = 60: three logins, one lookup"
hits=$(($(metric pgring_auth_query_cache_hits_total) + $(metric pgring_auth_query_shard_hits_total)))
assert_num_cmp "$hits" -ge 2 "cache hits counted (the control shard's and the shards' own)"
assert_eq 1 "$(metric pgring_auth_query_cached)" "one role in the cache"
# a password changed at the server is seen after a reload (the cache is dropped)
on "ALTER ROLE aq_many PASSWORD 'newpw'" >/dev/null
refuse aq_many newpw 28P01 "the new password while the old secret is cached"
kill -HUP "$POOLER_PID"
wait_until 10 eval '[[ $(grep -c "configuration reloaded" "$POOLER_LOG") -ge 2 ]]' || fail "second reload not logged"
accept aq_many newpw
assert_eq $((c0 + 2)) "$(calls)" "after the reload the role was looked up again"
pass "auth_cache_ttl: cached logins make no query; SIGHUP drops the cache"
assert_eq 0 "$(metric pgring_auth_query_pending)" "no lookup left pending"
stop_pgring

# ---- client_login_timeout covers the wait; a client gone before the answer is
# not touched when it comes (the answer serves the next login)
# 3 s: long enough for the SCRAM login after it on a loaded CI machine (1 s
# once timed out there)
start_pgring "${CONF_B/pool_mode = transaction/pool_mode = transaction
client_login_timeout = 3}"
psql_send holder "SELECT pg_advisory_lock(42);"
psql_sync holder || fail "taking the advisory lock again"
t0=$(now_ms)
refuse aq_scram scrampw 08P01 "a login whose lookup outlasts client_login_timeout"
t1=$(now_ms)
assert_contains "$OUT" "client_login_timeout" "the refusal says why"
assert_num_cmp $((t1 - t0)) -lt 7000 "refused at client_login_timeout (3 s), not later"
assert_num_cmp $((t1 - t0)) -ge 2900 "refused at client_login_timeout (3 s), not before"
psql_send holder "SELECT pg_advisory_unlock(42);"
psql_sync holder || fail "releasing the advisory lock"
wait_until 10 eval '[[ $(metric pgring_auth_query_pending) == 0 ]]' || fail "the lookup did not finish"
alive "$POOLER_PID" || fail "pgring died when the answer came for a client already gone"
accept aq_scram scrampw
stop_pgring
pass "client_login_timeout applies while the lookup runs; the late answer is harmless"

# ---- the lookup connection's search_path is fixed: public is not searched
CONF_C="${CONF_B/SELECT usename, passwd FROM pgring_auth.lookup(\$1)/SELECT usename, passwd FROM aq_secrets WHERE usename = \$1}"
start_pgring "$CONF_C"
refuse aq_scram scrampw 08006 "auth_query naming public.aq_secrets without its schema"
grep -q 'relation "aq_secrets" does not exist' "$POOLER_LOG" ||
	fail "the failed lookup is not logged with the server's reason"
assert_num_cmp "$(metric pgring_auth_query_failures_total)" -ge 1 "the failure is counted"
stop_pgring
# qualified, it works (the same server, the same role): the failure was the search_path
start_pgring "${CONF_B/SELECT usename, passwd FROM pgring_auth.lookup(\$1)/SELECT usename, passwd FROM public.aq_secrets WHERE usename = \$1}"
accept aq_scram scrampw
stop_pgring
pass "the lookup runs with search_path = pg_catalog, pg_temp"

# ---- auth_type = trust: no password asked, but the role must exist at the server
start_pgring "${CONF_A/auth_type = md5/auth_type = trust}"
accept aq_md5 ""
refuse aq_nosuch "" 28000 "trust: an unknown role"
stop_pgring
pass "trust with auth_query: an existing role logs in without a password (its servers with its secret), an unknown one is refused"

# ---- an md5 secret for auth_user cannot drive libpq: said at the login
AUTH_FILE_TEXT='"aq_lookup" "md5d9ae0b4a6de2ba1e5c6b72dd5d6a0b38"' start_pgring "$CONF_B"
refuse aq_scram scrampw 08006 "an auth_user with an md5 secret in auth_file"
grep -q 'needs its plain password there' "$POOLER_LOG" || fail "the reason is not logged"
stop_pgring
pass "auth_user's secret must be a plain password: refused with a reason"
