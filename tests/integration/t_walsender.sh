#!/usr/bin/env bash
# t_walsender: replication connections (replication=true|database) pass through
# pgring to a server connection of their own, in transaction and in session
# pooling (issue 20, item 3). A cluster of the test's own (wal_level = logical)
# and, for each pool mode:
#  (a) pg_basebackup -X stream through pgring: the backup verifies
#      (pg_verifybackup), and the pool of size 1 was not used for it;
#  (b) pg_recvlogical (test_decoding) through pgring and directly, on two slots
#      created at the same point: the two streams are byte for byte the same;
#      while it streams, the metrics count one replication client and server
#      apart from the pool, and a plain query through the same pool (size 1)
#      still gets the pool's server; after it stops (SIGINT) nothing is left,
#      on pgring or in pg_stat_replication;
#  (c) errors as directly: replication=bogus (22023), a role without the
#      REPLICATION attribute (the server's FATAL, relayed), a physical
#      replication connection the server's hba refuses;
# and, in transaction mode, a logical subscription on a second cluster whose
# connection goes through pgring: the initial copy and then streamed changes
# arrive; and postgres.js's sql.subscribe() through pgring sees the same events
# as directly.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "replication pass-through is tested against pgring (PgBouncer $(pgbouncer --version 2>/dev/null | head -1 | awk '{print $2}') has none before 1.23)"

PGTMP=$ROOT/tools/pgtmp
B=${PGBIN:-/usr/lib/postgresql/15/bin}
chmod o+x "$TEST_TMP"
CL=$TEST_TMP/cluster
mkdir -p "$CL"
chmod 755 "$CL"
for n in p1 s1; do on_exit "$PGTMP stop $CL/$n"; done
pgtmp_port() { timeout 120 "$PGTMP" "$@" | sed -n 's/^PORT=//p'; }
P1=$(PGTMP_CONF="wal_level = logical" pgtmp_port start "$CL/p1")
[[ -n $P1 ]] || fail "the cluster did not start"
note "publisher cluster on $P1 (wal_level = logical)"

# psql as postgres on the test's cluster (trust from 127.0.0.1)
pq1() { timeout 30 "$B/psql" -X -Atq -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$P1 dbname=${2:-app} user=postgres" -c "$1"; }
pq1 "CREATE TABLE ev (id int PRIMARY KEY, v text); CREATE PUBLICATION pub FOR TABLE ev;" || fail "schema"

export PGPASSWORD=pgpass
AUTH_FILE_TEXT='"postgres" "pgpass"
"app" "app"'
# the error a libpq connection ends with (first line), or "ok"
conn_error() {
	local out
	out=$(timeout 20 "$B/psql" -X -Atq "$1" -c "IDENTIFY_SYSTEM" 2>&1 >/dev/null) && { echo ok; return; }
	sed -E 's/^psql: error: //; s/^connection to server at "[^"]*"( \([^)]*\))?, port [0-9]+ failed: //' <<<"$out" |
		grep -v '^$' | head -1
}

run_mode() {
	local mode=$1
	note "---- pool_mode = $mode"
	start_pgring "
[databases]
* = host=127.0.0.1 port=$P1
[pgring]
auth_type = scram-sha-256
pool_mode = $mode
default_pool_size = 1
shards = 2
"
	local VIA="host=127.0.0.1 port=$PORT user=postgres"
	local DIRECT="host=127.0.0.1 port=$P1 user=postgres"

	# (a) a base backup with its WAL streamed: two replication connections at once
	timeout 120 "$B/pg_basebackup" -d "$VIA" -D "$TEST_TMP/bb-$mode" -X stream -c fast --no-sync \
		>"$TEST_TMP/bb-$mode.log" 2>&1 || fail "$mode: pg_basebackup through pgring failed: $(tail -3 "$TEST_TMP/bb-$mode.log")"
	"$B/pg_verifybackup" "$TEST_TMP/bb-$mode" >"$TEST_TMP/vb-$mode.log" 2>&1 ||
		fail "$mode: the backup taken through pgring does not verify: $(tail -3 "$TEST_TMP/vb-$mode.log")"
	rm -rf "$TEST_TMP/bb-$mode"
	assert_eq 0 "$(metric pgring_pool_server_connections)" "$mode: pool servers used by the base backup"
	assert_eq 2 "$(metric pgring_pool_replication_connects_total)" "$mode: replication connections counted"
	pass "$mode: pg_basebackup -X stream through pgring verifies, outside the pool"

	# (b) logical decoding: the same stream through pgring as directly
	local s
	for s in via direct; do
		local ci=$VIA
		[[ $s == direct ]] && ci=$DIRECT
		timeout 20 "$B/pg_recvlogical" -d "$ci dbname=app" -S "${mode}_$s" --create-slot -P test_decoding ||
			fail "$mode: creating slot ${mode}_$s ($s) failed"
	done
	pq1 "INSERT INTO ev SELECT g, '$mode ' || g FROM generate_series(1, 200) g;
	     UPDATE ev SET v = v || '''quoted''' WHERE id % 50 = 0; DELETE FROM ev WHERE id > 190;" || fail "changes"
	local marker="end-$mode-$RANDOM"
	pq1 "INSERT INTO ev VALUES (1000, '$marker')" || fail "marker"
	local pids=()
	for s in via direct; do
		local ci=$VIA
		[[ $s == direct ]] && ci=$DIRECT
		"$B/pg_recvlogical" -d "$ci dbname=app" -S "${mode}_$s" --start -f "$TEST_TMP/dec-$mode-$s" -s 1 \
			>"$TEST_TMP/dec-$mode-$s.err" 2>&1 &
		pids+=($!)
		track_pid $!
		on_exit "kill_wait $!"
	done
	for s in via direct; do
		wait_until 20 grep -q "$marker" "$TEST_TMP/dec-$mode-$s" ||
			fail "$mode: the $s stream did not reach the marker: $(cat "$TEST_TMP/dec-$mode-$s.err")"
	done
	# streaming now: counted apart, and the pool (size 1) is still there for others
	assert_eq 1 "$(metric_state clients replication)" "$mode: replication clients while streaming"
	assert_eq 1 "$(metric_state servers replication)" "$mode: replication servers while streaming"
	assert_eq 42 "$(timeout 10 "$B/psql" -X -Atq "$VIA dbname=app" -c "SELECT 42")" "$mode: a query through the pool while a stream runs"
	for p in "${pids[@]}"; do kill -INT "$p"; done
	for p in "${pids[@]}"; do wait_exit "$p" 10 || fail "$mode: pg_recvlogical did not stop on SIGINT"; done
	if ! diff "$TEST_TMP/dec-$mode-direct" "$TEST_TMP/dec-$mode-via" >"$TEST_TMP/dec-$mode.diff"; then
		sed 's/^/#   /' "$TEST_TMP/dec-$mode.diff" | head -20
		fail "$mode: the decoded stream through pgring differs from the direct one"
	fi
	local lines
	lines=$(wc -l <"$TEST_TMP/dec-$mode-via")
	((lines > 200)) || fail "$mode: only $lines lines decoded"
	wait_until 10 eval '[[ $(metric_state clients replication) == 0 && $(metric_state servers replication) == 0 ]]' ||
		fail "$mode: replication connections still counted after the streams stopped"
	wait_until 10 eval '[[ $(pq1 "SELECT count(*) FROM pg_stat_replication") == 0 ]]' ||
		fail "$mode: walsenders left on the server: $(pq1 "SELECT application_name, state FROM pg_stat_replication")"
	for s in via direct; do pq1 "SELECT pg_drop_replication_slot('${mode}_$s')" >/dev/null; done
	pq1 "DELETE FROM ev" || fail "cleanup"
	pass "$mode: pg_recvlogical through pgring decodes exactly what it decodes directly ($lines lines), counted apart, nothing left after"

	# (c) errors as the server gives them
	local d v
	for c in "dbname=app replication=bogus" "dbname=app replication=database user=app password=app" \
		"dbname=app replication=true user=app password=app"; do
		d=$(conn_error "$DIRECT $c")
		v=$(conn_error "$VIA $c")
		[[ $d != ok ]] || fail "$mode: '$c' directly did not fail"
		assert_eq "$d" "$v" "$mode: the error for '$c' through pgring"
		note "$mode: '$c' -> $v"
	done
	pass "$mode: bad replication connections get the server's own errors"
	stop_pgring || fail "pgring did not stop"
}

# metric_state KIND STATE: pgring_pool_KIND{state=STATE} summed over pools
metric_state() { metric "pgring_pool_$1" "state=\"$2\""; }

run_mode transaction
run_mode session

# A subscription on another cluster, connected through pgring (transaction mode):
# its table sync copies what is there, then changes stream.
P2=$(pgtmp_port start "$CL/s1")
[[ -n $P2 ]] || fail "the subscriber cluster did not start"
start_pgring "
[databases]
* = host=127.0.0.1 port=$P1
[pgring]
auth_type = scram-sha-256
pool_mode = transaction
default_pool_size = 1
"
pq1 "INSERT INTO ev SELECT g, 'before ' || g FROM generate_series(1, 500) g" || fail "initial rows"
pq2() { timeout 30 "$B/psql" -X -Atq -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$P2 dbname=app user=postgres" -c "$1"; }
pq2 "CREATE TABLE ev (id int PRIMARY KEY, v text)" || fail "subscriber table"
pq2 "CREATE SUBSCRIPTION sub CONNECTION 'host=127.0.0.1 port=$PORT dbname=app user=postgres password=pgpass' PUBLICATION pub" \
	>/dev/null 2>&1 || fail "CREATE SUBSCRIPTION through pgring failed"
on_exit "pq2 'DROP SUBSCRIPTION sub'"
wait_until 30 eval '[[ $(pq2 "SELECT count(*) FROM ev") == 500 ]]' ||
	fail "the initial copy did not arrive through pgring: $(pq2 "SELECT count(*) FROM ev") rows; $(tail -3 "$CL/s1/log")"
pq1 "INSERT INTO ev SELECT g, 'after ' || g FROM generate_series(501, 1500) g; UPDATE ev SET v = 'changed' WHERE id <= 10" ||
	fail "changes"
wait_until 30 eval '[[ $(pq2 "SELECT count(*) FILTER (WHERE v = '"'changed'"') || '"' '"' || count(*) FROM ev") == "10 1500" ]]' ||
	fail "streamed changes did not arrive through pgring: $(pq2 "SELECT count(*) FROM ev")"
assert_eq "$(pq1 "SELECT md5(string_agg(id || v, ',' ORDER BY id)) FROM ev")" \
	"$(pq2 "SELECT md5(string_agg(id || v, ',' ORDER BY id)) FROM ev")" "subscriber's table against the publisher's"
pass "a logical subscription through pgring: initial copy of 500 rows, then 1000 inserts and 10 updates streamed"
pq2 "DROP SUBSCRIPTION sub" >/dev/null 2>&1 || fail "DROP SUBSCRIPTION through pgring failed"

# postgres.js's sql.subscribe() (issue 20: the npm drivers' logical replication):
# directly and through pgring at once, the same events.
if command -v node >/dev/null 2>&1; then
	npm_modules subscribe.js
	for t in direct via; do
		port=$P1
		[[ $t == via ]] && port=$PORT
		timeout 60 node "$NPM_DIR/subscribe.js" "$port" postgres pgpass pub 100 10 5 30000 >"$TEST_TMP/sub-$t.out" 2>&1 &
		eval "SUB_$t=$!"
		track_pid $!
		on_exit "kill_wait $! KILL"
	done
	for t in direct via; do
		wait_until 30 grep -qx subscribed "$TEST_TMP/sub-$t.out" ||
			fail "postgres.js subscribe ($t) did not start: $(cat "$TEST_TMP/sub-$t.out")"
	done
	pq1 "INSERT INTO ev SELECT g, 'js ' || g FROM generate_series(2001, 2100) g;
	     UPDATE ev SET v = 'js updated' WHERE id BETWEEN 2001 AND 2010; DELETE FROM ev WHERE id BETWEEN 2091 AND 2095" ||
		fail "changes for postgres.js"
	for t in direct via; do
		pid_var=SUB_$t
		wait_exit "${!pid_var}" 40 || fail "postgres.js subscribe ($t) did not finish"
		assert_eq 0 "$WAIT_STATUS" "postgres.js subscribe ($t): $(tr '\n' ' ' <"$TEST_TMP/sub-$t.out")"
	done
	assert_eq "$(tail -1 "$TEST_TMP/sub-direct.out")" "$(tail -1 "$TEST_TMP/sub-via.out")" \
		"postgres.js subscribe: events through pgring against directly"
	pass "postgres.js sql.subscribe() through pgring: 100 inserts, 10 updates, 5 deletes, as directly"
else
	note "node is not installed: postgres.js subscribe not run"
fi
