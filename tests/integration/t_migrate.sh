#!/usr/bin/env bash
# t_migrate: the shards taking clients follow the load (core/balance.h) and
# logged-in clients move between shards at rest (pool/migrate.h), unnoticed.
# Gathering: with two shards and no load, the clients that SO_REUSEPORT put on
# shard 1 move to shard 0 within seconds; each keeps its own settings and SQL
# PREPAREs, a client pinned by a temporary table stays where it is and works,
# and a cancel for a moved client (its key names shard 1) still cancels its
# query. Spreading: under pgbench (-M prepared, so protocol-level statements
# move too), a shard over shard_spread_busy brings the second in and clients
# move to it without a failed transaction; once the load is gone, one shard
# again.
. "$(dirname "$0")/lib.sh"
pgring_only "moving clients between shards is pgring's"

N=12
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 16
shards = 2
shard_gather_windows = 3
verbose = 1
max_db_client_connections = $((N + 1))
"
for i in $(seq 1 $N); do
	psql_open "c$i" "$(conninfo)"
	psql_send "c$i" "SET application_name = 'client$i';"
	psql_send "c$i" "PREPARE add$i(int) AS SELECT \$1 + $i;"
done
psql_open pinned "$(conninfo)"
psql_send pinned "CREATE TEMP TABLE mine AS SELECT 42 AS v;"
for name in $(seq -f 'c%g' 1 $N) pinned; do psql_sync "$name" || fail "client $name did not answer"; done
on1=$(metric pgring_shard_clients 'shard="1"')
note "before gathering: $(metric pgring_shard_clients 'shard="0"') clients on shard 0, $on1 on shard 1"
assert_num_cmp "$on1" -ge 1 "SO_REUSEPORT put some of $((N + 1)) clients on shard 1"

# gathering: one shard takes clients; every movable client goes to shard 0
wait_until 15 eval '[[ $(metric pgring_shard_active "shard=\"1\"") == 0 ]]' ||
	fail "shard 1 still takes clients with no load: busy $(metric pgring_shard_busy_permille)"
wait_until 10 eval '[[ $(metric pgring_shard_clients "shard=\"1\"") -le 1 ]]' ||
	fail "clients left on shard 1: $(metric pgring_shard_clients 'shard="1"')"
moved=$(metric pgring_shard_clients_moved_out_total 'shard="1"')
assert_num_cmp "$moved" -ge $((on1 - 1)) "clients moved from shard 1 (all but the pinned one)"
assert_eq "$moved" "$(metric pgring_shard_clients_moved_in_total 'shard="0"')" "every client moved out arrived"
# a move is no close: the log says "moved", never "closing client" (t_patroni
# counts those lines as clients dropped by a failover)
assert_eq 0 "$(grep -c 'closing client:' "$POOLER_LOG")" "no client closed by the moves"
assert_eq "$moved" "$(grep -c 'moved to shard 0' "$POOLER_LOG")" "one log line per move"
pass "gathered: $moved clients moved from shard 1 to shard 0"

for i in $(seq 1 $N); do
	psql_send "c$i" "SHOW application_name;"
	psql_send "c$i" "EXECUTE add$i(100);"
	psql_sync "c$i" || fail "client $i stopped answering after the move"
	out=$(psql_out "c$i")
	assert_contains "$out" "client$i" "client $i kept its application_name"
	assert_contains "$out" "$((100 + i))" "client $i kept its prepared statement"
	[[ -z $(psql_err "c$i") ]] || fail "client $i: $(psql_err "c$i")"
done
psql_send pinned "SELECT v FROM mine;"
psql_sync pinned || fail "the pinned client stopped answering"
assert_contains "$(psql_out pinned)" "42" "the pinned client keeps its temporary table"
pass "every client kept its session; the pinned one its temporary table"
# each client counts once in its database's limit, moved or not
out=$(PGPASSWORD=app timeout 10 psql -X -Atc "SELECT 1" "$(conninfo)" 2>&1)
assert_contains "$out" "max_db_client_connections" "a client over max_db_client_connections ($((N + 1))) is refused"

# cancels: each moved client's key still names the shard that logged it in
# (a server for every client: a cancel held for a client still waiting for
# one is sent when its query goes out, and can reach the backend before the
# backend reads the query, which then ignores it; CI hit that with a pool of 4)
for i in $(seq 1 $N); do psql_send "c$i" "SELECT pg_sleep(20);"; done
sleep 1
for i in $(seq 1 $N); do kill -INT "$(psql_pid "c$i")"; done
for i in $(seq 1 $N); do
	wait_until 5 grep -q "canceling statement due to user request" "$TEST_TMP/c$i.err" ||
		fail "client $i: its query was not cancelled ($(psql_err "c$i"))"
done   # (psql reading a script ends on SIGINT: t_cancel checks the session goes on)
pass "a cancel reaches each of the $N clients, moved or not"
for name in $(seq -f 'c%g' 1 $N) pinned; do psql_close "$name"; done
# and every count went when its client did: the limit admits the next ones
wait_until 5 eval '[[ $(PGPASSWORD=app timeout 10 psql -X -Atc "SELECT 1" "$(conninfo)" 2>&1) == 1 ]]' ||
	fail "after every client left, a new one is refused: $(PGPASSWORD=app psql -X -Atc 'SELECT 1' "$(conninfo)" 2>&1)"
pass "moved clients count once in max_db_client_connections, and not after they leave"
stop_pgring || fail "pgring did not stop"

# spreading: thresholds any pgbench load passes
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 6
shards = 2
shard_spread_busy = 11
shard_gather_busy = 1
shard_gather_windows = 1
"
wait_until 10 eval '[[ $(metric pgring_shard_active "shard=\"1\"") == 0 ]]' ||
	fail "idle pgring still on two shards: busy $(metric pgring_shard_busy_permille)"
out=$(PGPASSWORD=app timeout 60 pgbench -n -S -M prepared -c 10 -j 10 -T 6 -h 127.0.0.1 -p "$PORT" -U app app 2>&1)
rc=$?
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
[[ $rc == 0 && -n $failed ]] || { echo "$out" | tail -20 | sed 's/^/#   /'; fail "pgbench exit $rc"; }
assert_eq 0 "$failed" "no transaction failed while clients moved"
assert_num_cmp "$processed" -gt 0 "transactions processed"
spread=$(metric pgring_shard_clients_moved_out_total 'shard="0"')
assert_num_cmp "$spread" -ge 1 "clients moved from shard 0 to shard 1 under load"
assert_contains "$(cat "$POOLER_LOG")" "shards taking clients: 1 -> 2" "the log says when the second shard came in"
pass "spread under load: $spread clients moved to shard 1, $processed transactions, none failed"
wait_until 10 eval '[[ $(metric pgring_shard_active "shard=\"1\"") == 0 ]]' ||
	fail "still two shards once the load is gone: busy $(metric pgring_shard_busy_permille)"
pass "one shard again once the load is gone"
stop_pgring || fail "pgring did not stop"
