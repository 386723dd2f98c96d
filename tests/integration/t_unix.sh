#!/usr/bin/env bash
# t_unix: pgring listens on a unix socket (unix_socket_dir) as well as TCP, shared
# by every shard; psql and pgbench connect through it, and the socket file goes
# away when pgring stops.
. "$(dirname "$0")/lib.sh"

SOCKDIR=$TEST_TMP/sock
mkdir -p "$SOCKDIR"
chmod 755 "$SOCKDIR"
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 3
unix_socket_dir = $SOCKDIR
"
sock=$SOCKDIR/.s.PGSQL.$PORT
[[ -S $sock ]] || fail "no socket file $sock"
uni="host=$SOCKDIR port=$PORT dbname=app user=app password=app"
v=$(PGPASSWORD=app timeout 20 psql -X -Atq -c "SELECT 'via-unix', inet_client_addr() IS NOT NULL" "$uni" 2>&1) ||
	fail "psql over the unix socket: $v"
assert_eq "via-unix|t" "$v" "query over the unix socket (the server side is TCP)"
out=$(PGPASSWORD=app timeout 60 pgbench -n -S -c 8 -j 2 -T 3 "$uni" 2>&1) || fail "pgbench over the unix socket: $out"
assert_contains "$out" "number of failed transactions: 0" "pgbench over the unix socket"
# TCP still works beside it
assert_eq 1 "$(q "SELECT 1")" "TCP beside the unix socket"
stop_pgring || fail "pgring did not stop"
[[ ! -e $sock ]] || fail "socket file left behind after stop"
pass "unix socket"
