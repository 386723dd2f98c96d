#!/usr/bin/env bash
# t_pgbench: pgbench through the pooler: select-only (-S) and TPC-B (default script),
# simple and extended protocol (and prepared), session and transaction mode.
# Every run must end with exit 0, "number of failed transactions: 0" and > 0 transactions.
# -M prepared in transaction mode needs the pooler to track prepared statements
# (pgring does, PgBouncer 1.18 does not): pgring only. 10 clients; pool size 10 in
# session mode, 5 in transaction mode (clients queue for servers).
# Then a connection storm in session mode with fewer servers than clients
# (pgbench -C -c 10, pool of 3): pgbench connects with a blocking PQconnectdb, so a
# login that waited for a server would stall the thread whose other clients hold
# the servers (a pgbench thread stuck until client_login_timeout, as bench/run's
# storm cell saw): a client the pool cannot serve yet must be welcomed at once and
# wait for its server at its first query, as PgBouncer does (at least 100
# connections a second here, where PgBouncer makes ~3,800).
. "$(dirname "$0")/lib.sh"

T=${PGBENCH_T:-4}
[[ $(qd "SELECT count(*) FROM pgbench_branches") -ge 1 ]] || fail "pgbench tables missing"

run_pgbench() { # MODE PROTOCOL SCRIPT(-S|tpcb) [MORE PGBENCH ARGS]
	local mode=$1 proto=$2 script=$3 args=() out rc
	shift 3
	[[ $script == -S ]] && args+=(-S)
	args+=("$@")
	# pgbench prepares with a blocking PQprepare: a thread waiting there for a server
	# would stall its other clients, which hold servers. One thread per client then.
	if [[ $proto == prepared ]]; then args+=(-j 10); else args+=(-j 2); fi
	out=$(PGPASSWORD=app timeout $((T + 60)) pgbench -n "${args[@]}" -M "$proto" -c 10 -T "$T" \
		-h 127.0.0.1 -p "$PORT" -U app app 2>&1)
	rc=$?
	local what="$mode/$proto/${script}${1:+ $*}"
	local failed processed tps
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | tail -1)
	if [[ $rc != 0 || -z $failed || -z $processed ]]; then
		echo "$out" | tail -20 | sed 's/^/#   /'
		fail "$what: pgbench exit $rc"
	fi
	assert_eq 0 "$failed" "$what: failed transactions"
	assert_num_cmp "$processed" -gt 0 "$what: transactions processed"
	assert_not_contains "$out" "aborted" "$what: aborted clients"
	pass "$what: $processed transactions, $tps tps"
	PROCESSED=$processed
}

for mode in session transaction; do
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = $mode
default_pool_size = $([[ $mode == session ]] && echo 10 || echo 5)
max_client_conn = 100
"
	for proto in simple extended prepared; do
		if [[ $proto == prepared && $mode == transaction ]]; then
			# protocol-level prepared statements in transaction mode are their own
			# capability (statement tracking and re-preparing); not part of this test
			note "prepared statements in transaction mode: not tested here"
			continue
		fi
		for script in -S tpcb; do
			run_pgbench "$mode" "$proto" "$script"
		done
	done
	stop_pgring || fail "$mode: $TARGET did not stop"
	# No server connection may stay behind once the pooler is gone.
	wait_until 5 eval '[[ $(pg_backends app) == 0 ]]' || fail "$mode: server connections left after stop: $(pg_backends app)"
done

start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = session
default_pool_size = 3
max_client_conn = 100
client_login_timeout = 20
"
run_pgbench session-storm simple -S -C
# each a login: thousands in T seconds here (PgBouncer ~3,800/s); logins that
# waited up to a tick (100 ms) each for a server gave 245
assert_num_cmp "$PROCESSED" -ge $((100 * T)) "session storm: transactions in $T s (a stalled login is ~100 ms)"
stop_pgring || fail "session storm: $TARGET did not stop"
