#!/usr/bin/env bash
# t_ackcheck: nothing acknowledged is lost, nothing is applied twice (issue 17,
# point 5). tests/integration/ackcheck runs 16 clients through pgring, each
# looping BEGIN; INSERT a row keyed (client, seq) with a random payload; COMMIT,
# and logging every COMMIT acknowledged; a failed attempt is retried under the
# same key once its outcome is settled (see ackcheck.c). At the end it reads the
# table straight from PostgreSQL: every acknowledged COMMIT must be there once
# with its payload (lost 0, wrong 0), no key twice (duplicated 0), and no row of
# a block whose COMMIT was never sent (phantom 0). Each fault is its own phase,
# in transaction and in session pooling:
#   terminate  pg_terminate_backend of the app's backends, repeatedly
#   pgrestart  PostgreSQL restarted (fast shutdown: the shutdown checkpoint
#              writes all WAL, so the cluster's synchronous_commit = off
#              cannot lose an acknowledged COMMIT here)
#   pgcrash    PostgreSQL crashed (immediate shutdown) and started again; the
#              workload's transactions run with SET LOCAL synchronous_commit =
#              on, without which PostgreSQL itself may lose acknowledged
#              COMMITs in a crash (fsync = off is harmless here: the kernel
#              keeps the WAL written)
#   kill9      pgring killed with SIGKILL and started again on the same port
#   sigterm    pgring stopped with SIGTERM (drain) and started again
#   failover   a primary and a synchronous streaming replica (tools/pgtmp);
#              the replica is promoted, the old primary stopped (fast): with
#              synchronous replication every acknowledged COMMIT is on the
#              replica; COMMITs on the old primary after the promotion wait
#              for a standby that is gone and end unknown when it stops
# Every phase must also show that the fault hit (backends terminated, errors
# or reconnects) and that the workload recovered (every client committed in
# the last 2 s). Reported per phase: acknowledged, unknown (and how many of
# those committed), lost, duplicated, and the longest time a client went
# without an acknowledged COMMIT (the recovery time). A self-test first proves
# that ackcheck reports a lost, a duplicated, a phantom and a wrong row.
# ACKCHECK_SEED repeats a run's payloads; ACKCHECK_CLIENTS (16);
# ACKCHECK_PHASES="session/kill9 transaction/failover ..." runs only those.
# shellcheck disable=SC1091,SC2016 # lib.sh is sourced at run time; eval '...' is lib.sh's idiom
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ackphase.sh"
pgring_only "pgring restarts, clusters and failover are pgring's"

ACK=$HELPERS/ackcheck
[[ -x $ACK ]] || fail "helper $ACK not built"
NCL=${ACKCHECK_CLIENTS:-16}
SEED=${ACKCHECK_SEED:-$((RANDOM * 32768 + RANDOM))}
PGTMP=$ROOT/tools/pgtmp
note "seed $SEED (ACKCHECK_SEED=$SEED repeats it), $NCL clients"

TABLE_SQL="SET client_min_messages = warning; DROP TABLE IF EXISTS ackcheck;
  CREATE TABLE ackcheck (run text, client int, seq int, attempt int, payload bigint);
  CREATE INDEX ON ackcheck (run, client, seq);
  ALTER TABLE ackcheck OWNER TO app"
qd "$TABLE_SQL" >/dev/null || fail "setup"
on_exit "qd 'DROP TABLE IF EXISTS ackcheck'"


# ---- self-test: each count can fail
out=$("$ACK" -c "$(conninfo_direct)" -r "$(conninfo_direct)" -k "self-$SEED" -n 4 -d 1 -s "$SEED" \
	-X lose,dup,phantom,wrong 2>"$TEST_TMP/self.err")
st=$?
note "self-test: $out"
assert_eq 1 "$st" "ackcheck's status with a corrupted table ($(tail -3 "$TEST_TMP/self.err" | tr '\n' ' '))"
for k in lost duplicated phantom wrong; do
	assert_eq 1 "$(field "$k" "$out")" "self-test: $k"
done
pass "self-test: ackcheck finds a lost, a duplicated, a phantom and a wrong row"

# ---- pgring on a fixed port, restarted in place
# restart_pgring: start the same binary with the same configuration (same
# port), as a supervisor would: again every 0.2 s while pgring refuses to start
# because the port is still taken (RESTART_REFUSED counts those, RESTART_MS is
# the time until it listened)
restart_pgring() {
	local t0 deadline
	t0=$(now_ms)
	deadline=$((t0 + 20000))
	RESTART_REFUSED=0
	while :; do
		"$PGRING_BIN" -c "$POOLER_CONF" ${PGRING_ARGS:-} >>"$POOLER_LOG" 2>&1 &
		POOLER_PID=$!
		track_pid "$POOLER_PID"
		on_exit "kill_wait $POOLER_PID"
		while alive "$POOLER_PID" && ! tcp_open 127.0.0.1 "$PORT"; do sleep 0.05; done
		alive "$POOLER_PID" && break
		wait "$POOLER_PID" 2>/dev/null
		tail -1 "$POOLER_LOG" | grep -q 'address is in use' || fail "pgring did not start again: $(tail -3 "$POOLER_LOG")"
		RESTART_REFUSED=$((RESTART_REFUSED + 1))
		(($(now_ms) < deadline)) || fail "pgring could not listen on $PORT again within 20 s: $(tail -1 "$POOLER_LOG")"
		sleep 0.2
	done
	RESTART_MS=$(($(now_ms) - t0))
}

pg_start_time() { qd "SELECT pg_postmaster_start_time()" 2>/dev/null; }

# fault NAME: inject it (the workload runs); see ackphase.sh
fault() {
	FAULT_NOTE='' FAULT_HITS=0
	case $1 in
	terminate)
		local i n
		for ((i = 0; i < 8; i++)); do
			n=$(qd "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			        WHERE usename = 'app' AND datname = 'app' AND backend_type = 'client backend'
			        AND random() < 0.5") || fail "pg_terminate_backend"
			FAULT_HITS=$((FAULT_HITS + n))
			sleep 0.3
		done
		FAULT_NOTE="$FAULT_HITS backends terminated in 8 rounds"
		FAULT_QUIET=1 # an idle server's end is no client's error in transaction pooling
		;;
	pgrestart | pgcrash)
		local t0 was
		was=$(pg_start_time)
		if [[ $1 == pgcrash ]]; then
			timeout 60 "$PGTMP" kill "$PGTMP_DIR" || fail "pgtmp kill"
		fi
		timeout 60 "$PGTMP" restart "$PGTMP_DIR" >/dev/null 2>&1 || fail "pgtmp restart: $(tail -5 "$PGTMP_DIR/log")"
		wait_until 30 eval '[[ -n $(pg_start_time) ]]' || fail "PostgreSQL is not back"
		[[ $(pg_start_time) != "$was" ]] && FAULT_HITS=1
		FAULT_NOTE="PostgreSQL $([[ $1 == pgcrash ]] && echo "crashed (immediate) and started" || echo "restarted (fast)")"
		;;
	kill9 | sigterm)
		local sig=KILL t0
		[[ $1 == sigterm ]] && sig=TERM
		t0=$(now_ms)
		stop_pgring "$sig" 20 || fail "pgring did not exit after SIG$sig within 20 s"
		FAULT_NOTE="pgring SIG$sig: exited (status $POOLER_STATUS) in $(($(now_ms) - t0)) ms"
		restart_pgring
		FAULT_NOTE+=", listening again $RESTART_MS ms later"
		((RESTART_REFUSED > 0)) && FAULT_NOTE+=" (refused $RESTART_REFUSED times: the port was still taken)"
		FAULT_HITS=1
		# after pgring's SIGKILL an unknown attempt can stay open on its old
		# backend for seconds (its client waits for that before it retries:
		# ~2.5 s seen, then 3.6 s in a clean-clone CI run and 4.5 s in a local
		# one, session pooling; a 4.5 s and then a 7 s phase each failed once
		# with 15 or 14 of 16 clients recovered): the killed process's sockets
		# are released by the kernel's io_uring teardown, not at its exit
		[[ $1 == kill9 ]] && FAULT_SETTLE=10
		;;
	failover)
		timeout 60 "$PGTMP" promote "$FO_NEW_DIR" || fail "promote $FO_NEW"
		PGTMP_KEEP=1 timeout 60 "$PGTMP" stop "$FO_OLD_DIR" || fail "stop $FO_OLD"
		local t0
		t0=$(now_ms)
		wait_until 20 eval '[[ $(metric pgring_node_primary "cluster=\"main\",node=\"$FO_NEW\"") == 1 ]]' ||
			fail "pgring does not see $FO_NEW as the primary"
		FAULT_HITS=1
		FAULT_NOTE="$FO_NEW promoted, $FO_OLD stopped; pgring routes to $FO_NEW $(($(now_ms) - t0)) ms after the stop"
		;;
	esac
}

# ---- a COMMIT whose transaction died with its server is an error, never ROLLBACK
# (transaction pooling: the server of a client idle in its block is terminated;
# PostgreSQL answers ROLLBACK to a COMMIT only after the client heard an error,
# and a client that checks only for an error takes that ROLLBACK for success)
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 2
"
psql_open cm "$(conninfo)"
for stmt in COMMIT END ROLLBACK; do
	say_ok cm "BEGIN;" "INSERT INTO ackcheck VALUES ('lost-$stmt', 0, 1, 1, 1) RETURNING 'pid', pg_backend_pid();"
	bpid=$(sed -n 's/^pid|//p' <<<"$SAY_OUT")
	[[ -n $bpid ]] || fail "no backend pid: $SAY_OUT"
	qd "SELECT pg_terminate_backend($bpid)" >/dev/null
	wait_until 5 eval '[[ $(qd "SELECT count(*) FROM pg_stat_activity WHERE pid = $bpid") == 0 ]]' || fail "backend $bpid still there"
	sleep 0.2
	say cm "$stmt;"
	if [[ $stmt == ROLLBACK ]]; then
		assert_eq "" "$SAY_ERR" "ROLLBACK after the server died: no error"
		assert_eq "ROLLBACK" "$SAY_OUT" "ROLLBACK after the server died"
	else
		assert_contains "$SAY_ERR" "terminating connection due to administrator command" "$stmt after the server died: the reason"
		assert_not_contains "$SAY_OUT" "ROLLBACK" "$stmt after the server died: no ROLLBACK tag"
	fi
	say_ok cm "BEGIN;" "SELECT 'next';" "COMMIT;"
	assert_eq $'BEGIN\nnext\nCOMMIT' "$SAY_OUT" "after $stmt: a new transaction"
	assert_eq 0 "$(qd "SELECT count(*) FROM ackcheck WHERE run = 'lost-$stmt'")" "rows of the lost transaction ($stmt)"
done
psql_close cm
stop_pgring || fail "pgring did not stop"
pass "a COMMIT (or END) whose server died in the block fails with the reason and ends it; ROLLBACK is answered ROLLBACK"

for mode in transaction session; do
	want "$mode" terminate || want "$mode" pgrestart || want "$mode" kill9 || want "$mode" sigterm ||
		want "$mode" pgcrash || continue
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = $mode
default_pool_size = $([[ $mode == session ]] && echo $((NCL + 4)) || echo 4)
max_client_conn = 200
server_login_retry = 0.2
shutdown_timeout = 5
"
	for f in terminate pgrestart kill9 sigterm; do
		phase "$mode" "$f"
	done
	phase "$mode" pgcrash -S
	stop_pgring || fail "pgring did not stop"
done

# ---- failover: a primary and a synchronous replica of the test's own
want transaction failover || want session failover || exit 0
chmod o+x "$TEST_TMP"
CL=$TEST_TMP/cluster
mkdir -p "$CL"
chmod 755 "$CL"
for n in p1 r2 r3; do on_exit "$PGTMP stop $CL/$n"; done
pgtmp_port() { timeout 120 "$PGTMP" "$@" | sed -n 's/^PORT=//p'; }
on() { timeout 30 psql -X -Atq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d "${3:-app}" -c "$2"; }
# sync_to PORT NAME: PORT's commits wait for the standby NAME
sync_to() {
	on "$1" "ALTER SYSTEM SET synchronous_standby_names = '$2'" postgres >/dev/null &&
		on "$1" "SELECT pg_reload_conf()" postgres >/dev/null || fail "synchronous_standby_names on $1"
	SYNC_PORT=$1 SYNC_NAME=$2
	wait_until 10 eval '[[ $(on $SYNC_PORT "SELECT sync_state FROM pg_stat_replication WHERE application_name = '"'"'$SYNC_NAME'"'"'" postgres) == sync ]]' ||
		fail "$2 is not a synchronous standby of port $1: $(on "$1" "SELECT application_name, state, sync_state FROM pg_stat_replication" postgres)"
}
P1=$(PGTMP_CONF="synchronous_commit = on" pgtmp_port start "$CL/p1")
[[ -n $P1 ]] || fail "the primary did not start"
P2=$(pgtmp_port replica "$CL/r2" "$CL/p1")
[[ -n $P2 ]] || fail "replica r2 did not start"
sync_to "$P1" r2
on "$P1" "$TABLE_SQL" >/dev/null || fail "setup on the primary"
note "primary pg1 on $P1, synchronous replica pg2 on $P2"

failover_pgring() { # MODE OLD_NAME OLD_PORT NEW_NAME NEW_PORT
	start_pgring "
[pgring]
auth_type = md5
pool_mode = $1
default_pool_size = $([[ $1 == session ]] && echo $((NCL + 4)) || echo 4)
max_client_conn = 200
health_check_user = postgres
health_check_dbname = postgres
health_check_interval = 0.5
health_check_timeout = 2
health_check_failures = 1
failover_timeout = 30
server_login_retry = 0.5
[cluster.main]
$2 = host=127.0.0.1 port=$3 role=primary
$4 = host=127.0.0.1 port=$5
[databases]
app = cluster=main dbname=app
"
	FO_A=$2 FO_B=$4
	wait_until 15 eval '[[ $(metric pgring_node_primary "cluster=\"main\",node=\"$FO_A\"") == 1 && $(metric pgring_node_up "cluster=\"main\",node=\"$FO_B\"") == 1 ]]' ||
		fail "pgring does not see $2 primary and $4 up"
}

FO_OLD=pg1 FO_OLD_DIR=$CL/p1 FO_NEW=pg2 FO_NEW_DIR=$CL/r2
failover_pgring transaction pg1 "$P1" pg2 "$P2"
VERIFY_CI="host=127.0.0.1 port=$P2 dbname=app user=postgres" \
	RESOLVE_CI="host=127.0.0.1,127.0.0.1 port=$P1,$P2 dbname=app user=postgres" phase transaction failover
stop_pgring || fail "pgring did not stop"

# and again in session mode: pg2 (the new primary) to a new synchronous replica pg3
P3=$(pgtmp_port replica "$CL/r3" "$CL/r2")
[[ -n $P3 ]] || fail "replica r3 did not start"
sync_to "$P2" r3
FO_OLD=pg2 FO_OLD_DIR=$CL/r2 FO_NEW=pg3 FO_NEW_DIR=$CL/r3
failover_pgring session pg2 "$P2" pg3 "$P3"
VERIFY_CI="host=127.0.0.1 port=$P3 dbname=app user=postgres" \
	RESOLVE_CI="host=127.0.0.1,127.0.0.1 port=$P2,$P3 dbname=app user=postgres" phase session failover
stop_pgring || fail "pgring did not stop"

ack_summary
