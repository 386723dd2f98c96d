#!/usr/bin/env bash
# t_timeouts: the PgBouncer pool knobs do what they say. min_pool_size opens servers
# ahead of demand; server_idle_timeout closes idle ones; server_lifetime replaces
# old ones; query_wait_timeout fails a client that waited too long for a server;
# max_db_connections caps a database across pools; reserve_pool_size adds servers
# for clients that waited past reserve_pool_timeout; tcp_keepidle & co. set the
# keepalive timers of client and server sockets, tcp_keepalive = 0 turns them off.
. "$(dirname "$0")/lib.sh"

backends() { pg_backends app; }
pids() { qd "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'"; }

# --- min_pool_size and server_idle_timeout
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app min_pool_size=2
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 4
server_idle_timeout = 1
shards = 1
"
assert_eq 1 "$(q "SELECT 1")" "first query"
wait_until 3 eval '[[ $(backends) == 2 ]]' || fail "min_pool_size=2: $(backends) servers"
# idle servers above min_pool_size go after server_idle_timeout; min stays
PGPASSWORD=app pgbench -n -S -c 4 -j 2 -T 1 "$(conninfo)" >/dev/null 2>&1
sleep 2.5
assert_eq 2 "$(backends)" "server_idle_timeout keeps min_pool_size"
stop_pgring
pass "min_pool_size, server_idle_timeout"

# --- server_lifetime: a server older than it is replaced when released
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 1
server_lifetime = 1
shards = 1
"
p1=$(q "SELECT pg_backend_pid()")
sleep 1.5
q "SELECT 1" >/dev/null
p2=$(q "SELECT pg_backend_pid()")
assert_ne "$p1" "$p2" "server_lifetime: backend replaced"
stop_pgring
pass "server_lifetime"

# --- query_wait_timeout: pool of 1 held by a long transaction
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 1
query_wait_timeout = 1
"
q "SELECT pg_sleep(3)" >/dev/null 2>&1 &
holder=$!
track_pid $holder
wait_until 5 eval '[[ $(qd "SELECT count(*) FROM pg_stat_activity WHERE query = '"'"'SELECT pg_sleep(3)'"'"' AND state = '"'"'active'"'"'") == 1 ]]' ||
	fail "query_wait_timeout: the holder's query did not start"
t0=$(now_ms)
out=$(pqtry "$(conninfo)" "SELECT 'should not run'")
rc=$?
el=$(($(now_ms) - t0))
note "query_wait_timeout: rc=$rc after ${el} ms: $out"
assert_ne 0 "$rc" "query_wait_timeout: the waiting client fails"
assert_contains "$out" "query_wait_timeout" "query_wait_timeout: the error says why"
assert_num_cmp "$el" -lt 2800 "query_wait_timeout: ms before the error"
wait $holder
stop_pgring
pass "query_wait_timeout"

# --- max_db_connections across two pools (two database names, one real db)
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app max_db_connections=2
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 5
max_db_connections = 2
"
cl=()
for i in 1 2 3 4; do q "SELECT pg_sleep(1)" >/dev/null 2>"$TEST_TMP/maxdb$i.err" & cl+=($!); track_pid $!; done
maxb=0
for i in $(seq 8); do b=$(backends); ((b > maxb)) && maxb=$b; sleep 0.1; done
for c in "${cl[@]}"; do wait "$c" || fail "max_db_connections: a client failed: $(cat "$TEST_TMP"/maxdb*.err)"; done
assert_num_cmp "$maxb" -le 2 "max_db_connections=2: most backends at once"
assert_num_cmp "$maxb" -ge 1 "max_db_connections: some backend"
stop_pgring
pass "max_db_connections"

# --- reserve_pool_size: after reserve_pool_timeout, one more server
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 1
reserve_pool_size = 1
reserve_pool_timeout = 0.3
shards = 1
"
q "SELECT pg_sleep(5)" >/dev/null 2>&1 &
holder=$!
track_pid $holder
wait_until 5 eval '[[ $(qd "SELECT count(*) FROM pg_stat_activity WHERE query = '"'"'SELECT pg_sleep(5)'"'"' AND state = '"'"'active'"'"'") == 1 ]]' ||
	fail "reserve: the holder's query did not start"
t0=$(now_ms)
v=$(q "SELECT 'reserve'") || fail "reserve: second client failed"
el=$(($(now_ms) - t0))
assert_eq reserve "$v" "reserve: second client served"
assert_num_cmp "$el" -lt 4000 "reserve: ms the second client waited (the first holds its server 5 s)"
wait $holder
stop_pgring
pass "reserve_pool_size"

# --- tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt: on the clients'
# sockets (inherited from the listener) and on the servers' (ss shows the timer)
keepalive_timer() { # FILTER: the longest keepalive timer (seconds left) of pgring's established sockets
	ss -tnop state established "$1" 2>/dev/null | grep "pid=$POOLER_PID," |
		sed -n 's/.*timer:(keepalive,\([0-9.]*\)\(min\|sec\|ms\).*/\1 \2/p' |
		awk '{ t = ($2 == "min") ? $1 * 60 : ($2 == "ms") ? $1 / 1000 : $1; if (t > m) m = t; n++ }
		     END { if (n) print m }'
}
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = session
default_pool_size = 2
tcp_keepidle = 30
tcp_keepintvl = 5
tcp_keepcnt = 3
shards = 1
"
psql_open ka "$(conninfo)"
psql_sync ka || fail "keepalive: psql did not log in"
cl=$(keepalive_timer "( sport = :$PORT )")
sv=$(keepalive_timer "( dport = :$PGPORT_REAL )")
[[ -n $cl && -n $sv ]] || fail "keepalive: no keepalive timer on pgring's sockets (client: [$cl], server: [$sv]): $(ss -tnop state established | grep "pid=$POOLER_PID," | head -5)"
assert_num_cmp "$cl" -le 30 "keepalive: the client socket's timer follows tcp_keepidle = 30 (kernel default 7200)"
assert_num_cmp "$sv" -le 30 "keepalive: the server socket's timer follows tcp_keepidle = 30"
psql_close ka
stop_pgring
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = session
tcp_keepalive = 0
shards = 1
"
psql_open ka0 "$(conninfo)"
psql_sync ka0 || fail "keepalive off: psql did not log in"
assert_eq "" "$(keepalive_timer "( sport = :$PORT )")$(keepalive_timer "( dport = :$PGPORT_REAL )")" "tcp_keepalive = 0: no keepalive timer"
psql_close ka0
stop_pgring
pass "tcp_keepalive, tcp_keepidle on client and server sockets (timers $cl s and $sv s)"
