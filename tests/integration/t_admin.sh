#!/usr/bin/env bash
# t_admin (pgring only): the admin console (issue 16 points 1, 3, 8). Against a
# known state (two shards, one pool): every SHOW command's columns and exact rows
# where they are fixed; SHOW POOLS / STATS_TOTALS agreeing with /metrics; SHOW
# STATUS equal to GET /status; extended protocol (PQexecParams, PQprepare) giving
# the same answers; stats_users limited to SHOW; unknown commands 42601 with the
# connection still usable; PAUSE holding new transactions and RESUME releasing
# them, none lost; KILL_CLIENT; RECONNECT replacing servers without a client
# error; DISABLE/ENABLE; KILL; RELOAD; SET; SUSPEND; SHUTDOWN.
. "$(dirname "$0")/lib.sh"
pgring_only "pgring's console (PgBouncer's own is the reference for its columns)"

AUTH_FILE_TEXT='"app" "app"
"admin" "adminpw"
"stats" "statspw"'
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 4
admin_users = admin
stats_users = stats
shards = 2
"
qd "CREATE TABLE IF NOT EXISTS admin_t (id int)" && qd "TRUNCATE admin_t" && qd "GRANT ALL ON admin_t TO app" || fail "setup"

ADMIN_CI="host=127.0.0.1 port=$PORT dbname=pgbouncer user=admin password=adminpw"
# adm SQL [USER PASSWORD]: one console command, rows as a|b|c, no header
adm() { timeout 20 psql -X -At -F'|' -v ON_ERROR_STOP=1 -c "$1" "host=127.0.0.1 port=$PORT dbname=pgbouncer user=${2:-admin} password=${3:-adminpw}"; }
# admh SQL: with the header line
admh() { timeout 20 psql -X -A -F'|' -P footer=off -v ON_ERROR_STOP=1 -c "$1" "$ADMIN_CI"; }
header() { admh "$1" | head -1; }
rows() { adm "$1" | sort; }

# ---- columns: PgBouncer 1.25's, in its order ----
SOCK='type|user|database|replication|state|addr|port|local_addr|local_port|connect_time|request_time|wait|wait_us|close_needed|ptr|link|remote_pid|tls|application_name|prepared_statements|id'
assert_eq "$SOCK" "$(header 'SHOW CLIENTS')" "SHOW CLIENTS columns"
assert_eq "$SOCK" "$(header 'SHOW SERVERS')" "SHOW SERVERS columns"
assert_eq "$SOCK|recv_pos|pkt_pos|pkt_remain|send_pos|send_remain|pkt_avail|send_avail" "$(header 'SHOW SOCKETS')" "SHOW SOCKETS columns"
assert_eq "$SOCK|recv_pos|pkt_pos|pkt_remain|send_pos|send_remain|pkt_avail|send_avail" "$(header 'SHOW ACTIVE_SOCKETS')" "SHOW ACTIVE_SOCKETS columns"
assert_eq 'database|user|cl_active|cl_waiting|cl_active_cancel_req|cl_waiting_cancel_req|sv_active|sv_active_cancel|sv_being_canceled|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode|load_balance_hosts' \
	"$(header 'SHOW POOLS')" "SHOW POOLS columns"
assert_eq 'name|host|port|database|force_user|pool_size|min_pool_size|reserve_pool_size|server_lifetime|pool_mode|load_balance_hosts|max_connections|current_connections|max_client_connections|current_client_connections|paused|disabled' \
	"$(header 'SHOW DATABASES')" "SHOW DATABASES columns"
assert_eq 'name|pool_size|reserve_pool_size|pool_mode|max_user_connections|current_connections|max_user_client_connections|current_client_connections' \
	"$(header 'SHOW USERS')" "SHOW USERS columns"
assert_eq 'database|total_server_assignment_count|total_xact_count|total_query_count|total_received|total_sent|total_xact_time|total_query_time|total_wait_time|total_client_parse_count|total_server_parse_count|total_bind_count|total_client_login_count|avg_server_assignment_count|avg_xact_count|avg_query_count|avg_recv|avg_sent|avg_xact_time|avg_query_time|avg_wait_time|avg_client_parse_count|avg_server_parse_count|avg_bind_count|avg_client_login_count' \
	"$(header 'SHOW STATS')" "SHOW STATS columns"
assert_eq 'database|server_assignment_count|xact_count|query_count|bytes_received|bytes_sent|xact_time|query_time|wait_time|client_parse_count|server_parse_count|bind_count|client_login_count' \
	"$(header 'SHOW STATS_TOTALS')" "SHOW STATS_TOTALS columns"
assert_eq 'database|server_assignment_count|xact_count|query_count|bytes_received|bytes_sent|xact_time|query_time|wait_time|avg_client_parse_count|avg_server_parse_count|avg_bind_count|avg_client_login_count' \
	"$(header 'SHOW STATS_AVERAGES')" "SHOW STATS_AVERAGES columns"
assert_eq 'name|value' "$(header 'SHOW TOTALS')" "SHOW TOTALS columns"
assert_eq 'list|items' "$(header 'SHOW LISTS')" "SHOW LISTS columns"
assert_eq 'name|size|used|free|memtotal' "$(header 'SHOW MEM')" "SHOW MEM columns"
assert_eq 'hostname|ttl|addrs' "$(header 'SHOW DNS_HOSTS')" "SHOW DNS_HOSTS columns"
assert_eq 'zonename|serial|count' "$(header 'SHOW DNS_ZONES')" "SHOW DNS_ZONES columns"
assert_eq 'key|value' "$(header 'SHOW STATE')" "SHOW STATE columns"
assert_eq 'peer_id|host|port|pool_size' "$(header 'SHOW PEERS')" "SHOW PEERS columns"
assert_eq 'peer_id|cl_active_cancel_req|cl_waiting_cancel_req|sv_active_cancel|sv_login' "$(header 'SHOW PEER_POOLS')" "SHOW PEER_POOLS columns"
assert_eq 'fd|task|user|database|addr|port|cancel|link|client_encoding|std_strings|datestyle|timezone|password|scram_client_key|scram_server_key' \
	"$(header 'SHOW FDS')" "SHOW FDS columns"
assert_eq 'key|value|default|changeable' "$(header 'SHOW CONFIG')" "SHOW CONFIG columns"
assert_eq 'version' "$(header 'SHOW VERSION')" "SHOW VERSION columns"
assert_eq 'shard|cpu|tid|clients|login_clients|servers|pools|buffers_in_use|topology_version|loops|accepts|active|busy_permille' "$(header 'SHOW SHARDS')" "SHOW SHARDS columns"
assert_eq 'cluster|node|host|port|role|state|lag_bytes|check_seconds|active_backends|transactions|servers_active|checks|check_failures|last_error|source' \
	"$(header 'SHOW NODES')" "SHOW NODES columns"
assert_eq 'cluster|topology_version|primary|nodes|up|lagging|down' "$(header 'SHOW TOPOLOGY')" "SHOW TOPOLOGY columns"
assert_eq 'id|user|database|state|pins|server_pid|application_name' "$(header 'SHOW PINS')" "SHOW PINS columns"
assert_eq 'status' "$(header 'SHOW STATUS')" "SHOW STATUS columns"
pass "every SHOW has PgBouncer 1.25's columns"

# ---- the known state before any client ----
assert_eq 'pgbouncer|pgbouncer|1|0|0|0|0|0|0|0|0|0|0|0|0|statement|' "$(adm 'SHOW POOLS')" "SHOW POOLS, console only"
assert_eq "app|$PGHOST_REAL|$PGPORT_REAL|app||4|0|0|3600|||0|0|0|0|0|0
pgbouncer||$PORT|pgbouncer|pgbouncer|2|0|0|3600|statement||0|0|0|1|0|0" "$(adm 'SHOW DATABASES')" "SHOW DATABASES"
assert_eq "admin||||0|0|0|0
app||||0|0|0|0
pgbouncer||||0|0|0|1
stats||||0|0|0|0" "$(adm 'SHOW USERS')" "SHOW USERS"
assert_eq 'PgBouncer 1.25.2 (pgring 0.1.0)' "$(adm 'SHOW VERSION')" "SHOW VERSION"
assert_eq 'active|yes
paused|no
suspended|no' "$(adm 'SHOW STATE')" "SHOW STATE"
assert_eq 'databases|2
users|4
peers|0
pools|1
peer_pools|0
free_clients|0
used_clients|1
login_clients|0
free_servers|0
used_servers|0
dns_names|0
dns_zones|0
dns_queries|0
dns_pending|0' "$(adm 'SHOW LISTS')" "SHOW LISTS"
assert_eq 'pgbouncer|0|0|0|0|0|0|0|0|0|0|0|0' "$(adm 'SHOW STATS_TOTALS')" "SHOW STATS_TOTALS, console only"
assert_eq '' "$(adm 'SHOW SERVERS')" "SHOW SERVERS, none"
assert_eq '' "$(adm 'SHOW PEERS')$(adm 'SHOW PEER_POOLS')$(adm 'SHOW DNS_ZONES')$(adm 'SHOW NODES')$(adm 'SHOW TOPOLOGY')$(adm 'SHOW PINS')" \
	"empty lists"
assert_match "$(adm 'SHOW CLIENTS')" '^C\|admin\|pgbouncer\|none\|active\|127\.0\.0\.1\|[0-9]+\|127\.0\.0\.1\|'"$PORT"'\|[0-9-]+ [0-9:]+ [A-Z]+\|[0-9-]+ [0-9:]+ [A-Z]+\|0\|0\|0\|0x[0-9a-f]+\|\|0\|\|psql\|0\|[0-9]+$' \
	"SHOW CLIENTS: the console client itself"
shards=$(adm 'SHOW SHARDS' | awk -F'|' '{ c += $4 } END { print NR, c }')
assert_eq "2 1" "$shards" "SHOW SHARDS: two shards, one client (the console)"
# both take clients at first; with no load, shard 1 stops within seconds (shards_follow_load)
assert_eq "1" "$(adm 'SHOW SHARDS' | awk -F'|' '$1 == 0 { print $12 }')" "SHOW SHARDS: shard 0 takes clients"
wait_until 10 eval '[[ $(adm "SHOW SHARDS" | awk -F"|" "\$1 == 1 { print \$12 }") == 0 ]]' ||
	fail "SHOW SHARDS: shard 1 still takes clients with no load: $(adm 'SHOW SHARDS')"
assert_match "$(adm 'SHOW SHARDS' | awk -F'|' '$1 == 0 { print $13 }')" '^[0-9]+$' "SHOW SHARDS: busy_permille"
assert_eq 'default_pool_size|4|20|yes' "$(adm 'SHOW CONFIG' | grep '^default_pool_size|')" "SHOW CONFIG default_pool_size"
assert_eq 'listen_port|'"$PORT"'|6432|no' "$(adm 'SHOW CONFIG' | grep '^listen_port|')" "SHOW CONFIG listen_port"
assert_eq 'admin_users|admin||yes' "$(adm 'SHOW CONFIG' | grep '^admin_users|')" "SHOW CONFIG admin_users"
assert_eq 'UTF-8' "$(adm 'SHOW client_encoding')" "SHOW client_encoding (faked as PgBouncer)"
help=$(timeout 20 psql -X -At -c 'SHOW HELP' "$ADMIN_CI" 2>&1)
assert_contains "$help" 'NOTICE:  Console usage' "SHOW HELP notice"
assert_contains "$help" 'KILL_CLIENT <client_id>' "SHOW HELP lists KILL_CLIENT"
# the same text as GET /status, but for the console's own connection, counted while it asks
http_get /status
assert_eq "$(sed 's/^clients 0$/clients 1/' <<<"$HTTP_BODY")" "$(adm 'SHOW STATUS')" "SHOW STATUS is GET /status"
pass "known state: exact rows"

# ---- a client in a transaction, and /metrics ----
psql_open c1 "$(conninfo)"
psql_send c1 "BEGIN; INSERT INTO admin_t VALUES (0);"
psql_sync c1 || fail "c1"
assert_eq 'app|app|1|0|0|0|1|0|0|0|0|0|0|0|0|transaction|
pgbouncer|pgbouncer|1|0|0|0|0|0|0|0|0|0|0|0|0|statement|' "$(adm 'SHOW POOLS')" "SHOW POOLS with a client in a transaction"
srv=$(adm 'SHOW SERVERS')
assert_match "$srv" '^S\|app\|app\|none\|active\|127\.0\.0\.1\|'"$PGPORT_REAL"'\|127\.0\.0\.1\|[0-9]+\|' "SHOW SERVERS: the active server"
c1pid=$(qd "SELECT pid FROM pg_stat_activity WHERE datname = 'app' AND state LIKE 'idle in transaction%' AND usename = 'app'")
assert_eq "$c1pid" "$(cut -d'|' -f17 <<<"$srv")" "SHOW SERVERS remote_pid is the backend's PID"
cli=$(adm 'SHOW CLIENTS' | grep '^C|app|')
assert_match "$cli" '^C\|app\|app\|none\|active\|' "SHOW CLIENTS: the app client, active"
assert_eq "$(cut -d'|' -f15 <<<"$srv")" "$(cut -d'|' -f16 <<<"$cli")" "client's link is its server's ptr"
c1id=$(cut -d'|' -f21 <<<"$cli")
assert_eq "1" "$(adm 'SHOW DATABASES' | awk -F'|' '$1 == "app" { print $13 }')" "SHOW DATABASES current_connections"
for st in active idle; do
	want=$(metric pgring_pool_clients "database=\"app\",state=\"$st\"")
	note "metrics clients $st: $want"
done
m_cl=$(($(metric pgring_pool_clients 'database="app",state="active"') + $(metric pgring_pool_clients 'database="app",state="idle"')))
m_sv=$(metric pgring_pool_servers 'database="app",state="active"')
assert_eq "$m_cl|$m_sv" "$(adm 'SHOW POOLS' | awk -F'|' '$1 == "app" { print $3 "|" $7 }')" "SHOW POOLS cl_active|sv_active = /metrics"
psql_send c1 "COMMIT;"
psql_sync c1 || fail "c1 commit"
m_x=$(metric pgring_pool_transactions_total 'database="app"')
m_q=$(metric pgring_pool_queries_total 'database="app"')
m_l=$(metric pgring_pool_client_logins_total 'database="app"')
assert_eq "$m_x|$m_q|$m_l" "$(adm 'SHOW STATS_TOTALS' | awk -F'|' '$1 == "app" { print $3 "|" $4 "|" $13 }')" \
	"SHOW STATS_TOTALS xact/query/login counts = /metrics"
assert_eq 'app|app|1|0|0|0|0|0|0|1|0|0|0|0|0|transaction|' "$(adm 'SHOW POOLS' | grep '^app|')" "SHOW POOLS after COMMIT: server idle"
pass "console consistent with /metrics and PostgreSQL"

# ---- extended protocol: the same answers ----
ext=$("$HELPERS/adminext" "$ADMIN_CI" "SHOW VERSION" "SHOW STATE" "FOO" "SHOW DATABASES")
assert_eq "version
PgBouncer 1.25.2 (pgring 0.1.0)
(SHOW)
--
described 1 columns
version
PgBouncer 1.25.2 (pgring 0.1.0)
(SHOW)
key|value
active|yes
paused|no
suspended|no
(SHOW)
--
described 2 columns
key|value
active|yes
paused|no
suspended|no
(SHOW)
ERROR 42601 invalid command 'FOO', use SHOW HELP;
--
ERROR 42601 invalid command 'FOO', use SHOW HELP;" "$(head -23 <<<"$ext")" "extended protocol: PQexecParams and PQprepare"
assert_contains "$ext" "$(adm 'SHOW DATABASES' | grep '^app|')" "extended SHOW DATABASES rows"
pass "extended protocol"

# ---- errors keep the connection; stats users; strangers ----
out=$(timeout 20 psql -X -At -v VERBOSITY=verbose -c 'FOO' -c 'SHOW BAR' -c 'SHOW VERSION' "$ADMIN_CI" 2>&1)
assert_contains "$out" 'ERROR:  42601: invalid command '"'"'FOO'"'"', use SHOW HELP;' "unknown command: 42601"
assert_contains "$out" "ERROR:  42601: invalid command 'SHOW BAR', use SHOW HELP;" "unknown SHOW: 42601"
assert_contains "$out" 'PgBouncer 1.25.2 (pgring 0.1.0)' "the connection stays usable after errors"
assert_eq 'pgbouncer|pgbouncer|1|0|0|0|0|0|0|0|0|0|0|0|0|statement|' "$(adm 'SHOW POOLS' stats statspw | grep '^pgbouncer')" "stats user: SHOW"
out=$(adm 'PAUSE' stats statspw 2>&1)
assert_contains "$out" 'admin access needed' "stats user: PAUSE refused"
out=$(adm 'SHOW FDS' stats statspw 2>&1)
assert_contains "$out" 'admin access needed' "stats user: SHOW FDS refused"
out=$(pqtry "host=127.0.0.1 port=$PORT dbname=pgbouncer user=app password=app" 'SHOW POOLS' 2>&1)
assert_contains "$out" 'ERROR 28000' "a user in neither list: refused"
out=$(pqtry "host=127.0.0.1 port=$PORT dbname=pgbouncer user=admin password=wrong" 'SHOW POOLS' 2>&1)
assert_contains "$out" 'ERROR 28P01' "wrong password: refused"
assert_eq "1" "$(Q_DB=pgring Q_USER=admin Q_PASSWORD=adminpw q 'SHOW STATE' | grep -c '^paused|no$')" "database pgring is the console too"
out=$(adm 'SUSPEND' 2>&1)
assert_contains "$out" 'SUSPEND is not supported' "SUSPEND: a clear error"
out=$(timeout 20 psql -X -At -c "SET client_encoding = 'UTF8'" "$ADMIN_CI" 2>&1)
assert_contains "$out" 'NOTICE:  SET ignored' "SET of a faked setting is ignored"
# SET: a reload with the setting over the file, checked as the file's lines are
assert_eq 'SET' "$(timeout 20 psql -X -At -c "SET default_pool_size = 5" "$ADMIN_CI" 2>&1)" "SET default_pool_size"
wait_until 5 eval '[[ $(adm "SHOW CONFIG" | grep "^default_pool_size|") == "default_pool_size|5|20|yes" ]]' ||
	fail "SET default_pool_size = 5 not in SHOW CONFIG: $(adm 'SHOW CONFIG' | grep '^default_pool_size|')"
assert_eq 'SET' "$(timeout 20 psql -X -At -c "SET Query_Timeout = '1'" "$ADMIN_CI" 2>&1)" "SET query_timeout (any case, quoted)"
sleep 0.3
out=$(Q_TIMEOUT=20 q "SELECT pg_sleep(3)" 2>&1)
assert_contains "$out" 'query_timeout' "query_timeout set by SET applies to a running client's query"
out=$(timeout 20 psql -X -At -v VERBOSITY=verbose -c "SET default_pool_size = lots" "$ADMIN_CI" 2>&1)
assert_contains "$out" 'ERROR:  22023: ' "SET of a bad value: 22023"
assert_contains "$out" 'default_pool_size' "SET of a bad value: names the setting"
assert_eq 'default_pool_size|5|20|yes' "$(adm 'SHOW CONFIG' | grep '^default_pool_size|')" "a bad SET keeps the running value"
assert_eq 'query_timeout|1|0|yes' "$(adm 'SHOW CONFIG' | grep '^query_timeout|')" "an earlier SET stays over a later one"
out=$(timeout 20 psql -X -At -v VERBOSITY=verbose -c "SET listen_port = 7000" "$ADMIN_CI" 2>&1)
assert_contains "$out" '55P02: parameter "listen_port" cannot be changed without restarting pgring' "SET of a restart-only setting"
out=$(timeout 20 psql -X -At -v VERBOSITY=verbose -c "SET nosuch = 5" "$ADMIN_CI" 2>&1)
assert_contains "$out" '42704' "SET of an unknown setting"
out=$(timeout 20 psql -X -At -v VERBOSITY=verbose -c "SET query_timeout = 2" "$(conninfo pgbouncer stats statspw)" 2>&1)
assert_contains "$out" '42501' "SET by a stats user: refused"
# the management database: SHOW <setting>, the --!pgring shebang (a SET), RESET
assert_eq 5 "$(adm 'SHOW default_pool_size')" "SHOW <setting>: the value in force"
out=$(pqtry "host=127.0.0.1 port=$PORT dbname=pgbouncer user=admin password=adminpw" ' --!pgring query_timeout = 3' 'SHOW query_timeout' 2>&1)
assert_eq 3 "$(tail -1 <<<"$out")" "the --!pgring shebang sets ($out)"
assert_eq 'RESET' "$(timeout 20 psql -X -At -c 'RESET query_timeout' "$ADMIN_CI" 2>&1)" "RESET key"
wait_until 5 eval '[[ $(adm "SHOW query_timeout") == 0 ]]' || fail "RESET query_timeout: $(adm 'SHOW query_timeout')"
assert_eq 5 "$(adm 'SHOW default_pool_size')" "RESET of one key keeps the other SETs"
assert_eq 'RESET' "$(timeout 20 psql -X -At -c 'RESET ALL' "$ADMIN_CI" 2>&1)" "RESET ALL"
wait_until 5 eval '[[ $(adm "SHOW default_pool_size") == 4 ]]' || fail "RESET ALL: $(adm 'SHOW default_pool_size')"
assert_eq 'SET' "$(timeout 20 psql -X -At -c "SET default_pool_size = 5" "$ADMIN_CI" 2>&1)" "SET again"
assert_eq 'SET' "$(timeout 20 psql -X -At -c "SET query_timeout = 1" "$ADMIN_CI" 2>&1)" "SET again"
# RELOAD: the file is authoritative again
assert_eq 'RELOAD' "$(timeout 20 psql -X -At -c 'RELOAD' "$ADMIN_CI" 2>&1)" "RELOAD"
wait_until 5 grep -q 'configuration reloaded' "$POOLER_LOG" || fail "RELOAD did not reload"
assert_eq 'default_pool_size|4|20|yes' "$(adm 'SHOW CONFIG' | grep '^default_pool_size|')" "RELOAD: the file's value again"
assert_eq 'query_timeout|0|0|yes' "$(adm 'SHOW CONFIG' | grep '^query_timeout|')" "RELOAD: SETs dropped"
pass "errors, permissions, SET, RELOAD, SUSPEND"

# ---- PAUSE holds new transactions, RESUME releases them, none lost ----
psql_send c1 "INSERT INTO admin_t VALUES (1);"
psql_sync c1 || fail "c1 before pause"
psql_send c1 "BEGIN; INSERT INTO admin_t VALUES (2);"
psql_sync c1 || fail "c1 in a transaction"
# PAUSE answers once c1's transaction ends
timeout 30 psql -X -At -c 'PAUSE' "$ADMIN_CI" >"$TEST_TMP/pause.out" 2>&1 &
pause_pid=$!
sleep 0.5
alive "$pause_pid" || fail "PAUSE answered while a transaction held its server: $(cat "$TEST_TMP/pause.out")"
psql_send c1 "COMMIT;"
wait_until 5 eval '! alive $pause_pid' || fail "PAUSE did not answer after the transaction ended"
assert_eq PAUSE "$(cat "$TEST_TMP/pause.out")" "PAUSE answer"
assert_eq 'active|no
paused|yes
suspended|no' "$(adm 'SHOW STATE')" "SHOW STATE while paused"
wait_until 3 eval '[[ $(adm "SHOW SERVERS") == "" ]]' || fail "servers not closed by PAUSE: $(adm 'SHOW SERVERS')"
# new transactions wait: from c1 and from new clients
pids=()
for i in $(seq 3 12); do
	q "INSERT INTO admin_t VALUES ($i)" >"$TEST_TMP/ins$i.out" 2>&1 &
	pids+=($!)
done
psql_send c1 "INSERT INTO admin_t VALUES (13);"
sleep 1
assert_eq 2 "$(qd 'SELECT count(*) FROM admin_t WHERE id > 0')" "nothing ran while paused"
waiting=$(adm 'SHOW POOLS' | awk -F'|' '$1 == "app" { print $4 }')
note "cl_waiting while paused: $waiting"
assert_num_cmp "$waiting" -ge 1 "clients wait while paused"
out=$(adm 'PAUSE' 2>&1)
assert_contains "$out" 'already suspended/paused' "PAUSE twice"
assert_eq RESUME "$(adm 'RESUME')" "RESUME"
for p in "${pids[@]}"; do wait "$p" || fail "a held transaction failed: $(cat "$TEST_TMP"/ins*.out)"; done
psql_sync c1 || fail "c1 after resume"
assert_eq "14|0" "$(qd 'SELECT count(*), count(*) - count(DISTINCT id) FROM admin_t')" "every transaction ran once"
assert_eq '' "$(psql_err c1)" "c1 saw no error"
out=$(adm 'RESUME' 2>&1)
assert_contains "$out" 'pooler is not paused/suspended' "RESUME when not paused"
pass "PAUSE holds new transactions, RESUME releases them, none lost"

# ---- PAUSE db, WAIT_CLOSE ----
assert_eq PAUSE "$(adm 'PAUSE app')" "PAUSE app"
assert_eq 1 "$(adm 'SHOW DATABASES' | awk -F'|' '$1 == "app" { print $16 }')" "SHOW DATABASES paused"
out=$(adm 'PAUSE nosuch' 2>&1)
assert_contains "$out" 'no such database: nosuch' "PAUSE of an unknown database"
out=$(adm 'PAUSE pgbouncer' 2>&1)
assert_contains "$out" 'cannot pause admin db' "PAUSE of the console"
assert_eq RESUME "$(adm 'RESUME app')" "RESUME app"
psql_send c1 "SELECT 'after resume app';"
psql_sync c1 || fail "c1 after RESUME app"
pass "PAUSE db / RESUME db"

# ---- RECONNECT replaces servers without client errors ----
psql_send c1 "BEGIN; INSERT INTO admin_t VALUES (100);"
psql_sync c1 || fail "c1 begin"
before=$(adm 'SHOW SERVERS' | cut -d'|' -f17 | sort | xargs)
note "servers before RECONNECT: $before"
assert_eq RECONNECT "$(adm 'RECONNECT app')" "RECONNECT app"
assert_eq 1 "$(adm 'SHOW SERVERS' | awk -F'|' '$5 == "active" { print $14 }')" "close_needed on the active server"
timeout 30 psql -X -At -c 'WAIT_CLOSE app' "$ADMIN_CI" >"$TEST_TMP/wc.out" 2>&1 &
wc_pid=$!
sleep 0.5
alive "$wc_pid" || fail "WAIT_CLOSE answered while a server still had to close"
psql_send c1 "INSERT INTO admin_t VALUES (101); COMMIT;"
wait_until 5 eval '! alive $wc_pid' || fail "WAIT_CLOSE did not answer"
assert_eq WAIT_CLOSE "$(cat "$TEST_TMP/wc.out")" "WAIT_CLOSE answer"
for i in 1 2 3; do psql_send c1 "SELECT $i;"; done
psql_sync c1 || fail "c1 after RECONNECT"
after=$(adm 'SHOW SERVERS' | cut -d'|' -f17 | sort | xargs)
note "servers after RECONNECT: $after"
for p in $before; do
	[[ " $after " == *" $p "* ]] && fail "server $p survived RECONNECT"
done
assert_eq '' "$(psql_err c1)" "c1 saw no error across RECONNECT"
assert_eq 2 "$(qd 'SELECT count(*) FROM admin_t WHERE id >= 100')" "the transaction across RECONNECT committed"
pass "RECONNECT replaces servers without client errors"

# ---- KILL_CLIENT ----
c1id=$(adm 'SHOW CLIENTS' | awk -F'|' '$2 == "app" { print $21 }')
assert_match "$c1id" '^[0-9]+$' "c1's id"
assert_eq KILL_CLIENT "$(adm "KILL_CLIENT $c1id")" "KILL_CLIENT"
wait_until 5 eval '[[ $(adm "SHOW CLIENTS" | grep -c "^C|app|") == 0 ]]' || fail "client still listed after KILL_CLIENT"
psql_send c1 "SELECT 1;"
wait_until 5 eval '! alive $(psql_pid c1)' || fail "killed psql still alive"
assert_contains "$(psql_err c1)" 'admin forced disconnect' "the killed client is told why"
out=$(adm 'KILL_CLIENT 999999999' 2>&1)
assert_contains "$out" 'client not found' "KILL_CLIENT of no client"
pass "KILL_CLIENT"

# ---- DISABLE / ENABLE ----
assert_eq DISABLE "$(adm 'DISABLE app')" "DISABLE app"
assert_eq 1 "$(adm 'SHOW DATABASES' | awk -F'|' '$1 == "app" { print $17 }')" "SHOW DATABASES disabled"
out=$(pqtry "$(conninfo)" 'SELECT 1' 2>&1)
assert_contains "$out" 'database does not allow connections: app' "a new client of a disabled database"
assert_eq ENABLE "$(adm 'ENABLE app')" "ENABLE app"
assert_eq 1 "$(q 'SELECT 1')" "connections again after ENABLE"
pass "DISABLE / ENABLE"

# ---- KILL db: its clients go, new ones wait until RESUME ----
psql_open c2 "$(conninfo)"
psql_send c2 "SELECT 1;"
psql_sync c2 || fail "c2"
assert_eq KILL "$(adm 'KILL app')" "KILL app"
psql_send c2 "SELECT 2;"
wait_until 5 eval '! alive $(psql_pid c2)' || fail "client of a killed database still alive"
q "SELECT 42" >"$TEST_TMP/afterkill.out" 2>&1 &
ak=$!
sleep 0.5
alive "$ak" || fail "a new client of a killed database did not wait: $(cat "$TEST_TMP/afterkill.out")"
assert_eq RESUME "$(adm 'RESUME')" "RESUME after KILL"
wait "$ak" || fail "the waiting client failed after RESUME"
assert_eq 42 "$(cat "$TEST_TMP/afterkill.out")" "the waiting client's answer"
pass "KILL db"

# ---- SHUTDOWN ----
timeout 10 psql -X -At -c 'SHUTDOWN' "$ADMIN_CI" >/dev/null 2>&1
wait_exit "$POOLER_PID" 10 || fail "SHUTDOWN did not stop pgring"
pass "SHUTDOWN"
