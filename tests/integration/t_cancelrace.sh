#!/usr/bin/env bash
# t_cancelrace: after a canceled pg_sleep, the client's next statement is not
# canceled too. PostgreSQL's postmaster signals a backend twice for one cancel
# (kill(pid), then kill(-pid)) and closes the cancel connection after both;
# PQcancel returns when that connection closes. pgring must hold the client's
# cancel connection open until its own exchange with the server has ended,
# also when the cancel lands on another shard than the client's (2 shards:
# SO_REUSEPORT spreads the cancel connections over both). Session and
# transaction pooling; a pool of 1 in transaction mode, so that the next
# statement gets the very server the cancel went to.
. "$(dirname "$0")/lib.sh"
[[ -x $HELPERS/cancelrace ]] || fail "helper $HELPERS/cancelrace not built"
ROUNDS=${CANCELRACE_ROUNDS:-20}
# On a machine with cores to spare, the postmaster's child signals the backend
# twice within microseconds and the race is rarely met. On one CPU, the woken
# backend (and after it pgring and the client) run before that child gets the
# CPU back for its second kill(): every process of the exchange, PostgreSQL's
# new backends and cancel children included, is put on CPU 0 for this test.
pm=$(head -n 1 "$PGDATA_REAL/postmaster.pid")
old_mask=$(taskset -p "$pm" | awk '{print $NF}')
taskset -p 1 "$pm" >/dev/null || fail "cannot pin the postmaster"
on_exit "taskset -p $old_mask $pm >/dev/null"
# The same rounds on a direct connection: PostgreSQL itself never cancels the
# next statement (PQcancel returns after both signals), so a failure below is
# the pooler's.
out=$(taskset -c 0 "$HELPERS/cancelrace" "$(conninfo_direct) password=postgres" "$ROUNDS" 100 2>&1)
rc=$?
note "direct: $(tail -n 1 <<<"$out")"
assert_eq 0 "$rc" "direct: no statement after a cancel was canceled ($out)"
bad=()
for mode in session transaction; do
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = $mode
default_pool_size = 1
shards = 2
shard_cpus = 0,0
"
	out=$(taskset -c 0 "$HELPERS/cancelrace" "$(conninfo)" "$ROUNDS" 100 2>&1)
	rc=$?
	note "$mode: $(tail -n 1 <<<"$out")"
	if ! is_pgbouncer; then
		# the client lives on one shard: cancels landing on both means some
		# were answered across shards (POOL_MSG_CANCEL_DONE)
		r0=$(metric pgring_shard_cancels_received_total 'shard="0"')
		r1=$(metric pgring_shard_cancels_received_total 'shard="1"')
		note "$mode: cancels received per shard $r0/$r1"
		assert_num_cmp "$r0" -ge 1 "$mode: some cancels landed on shard 0"
		assert_num_cmp "$r1" -ge 1 "$mode: some cancels landed on shard 1"
	fi
	stop_pgring
	# both modes run before the verdict, so that one run tells about each
	if [[ $rc == 0 ]]; then pass "$mode"; else bad+=("$mode: $out"); fi
done
((${#bad[@]} == 0)) || fail "a statement after a cancel was canceled: ${bad[*]}"
