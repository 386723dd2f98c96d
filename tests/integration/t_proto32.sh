#!/usr/bin/env bash
# t_proto32: protocol 3.2 towards clients (issue 17, point 3), with the raw
# client tests/integration/proto32.c (libpq 15 cannot ask for 3.2), servers on
# PostgreSQL 15's 3.0 behind:
#  - 3.2 is spoken as asked: no NegotiateProtocolVersion, a 32-byte cancel key;
#    3.0 and 3.1 get 4-byte keys; 3.9999 is told 3.2; a _pq_. option is named
#    back as unsupported and never reaches a server (its login would fail);
#  - a query cancel with the 32-byte key works from whichever shard the
#    CancelRequest lands on, round after round, in transaction and session
#    pooling; the same PID with a wrong key, or with the key cut to 3.0's 4
#    bytes, cancels nothing; 3.0 keys still cancel.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "pgring's protocol 3.2 (PgBouncer 1.18 speaks 3.0)"
P32=$HELPERS/proto32
[[ -x $P32 ]] || fail "helper $P32 not built"

for mode in transaction session; do
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = trust
pool_mode = $mode
default_pool_size = 4
shards = 2
"
	login() { timeout 20 "$P32" login 127.0.0.1 "$PORT" app app "$@" 2>&1 | tr '\n' ' '; }
	assert_eq "key 32 ready select 1 " "$(login 2)" "$mode: 3.2"
	assert_eq "key 4 ready select 1 " "$(login 0)" "$mode: 3.0"
	assert_eq "key 4 ready select 1 " "$(login 1)" "$mode: 3.1 (spoken as 3.0, as PostgreSQL 18)"
	assert_eq "negotiate 3.2 unsupported= key 32 ready select 1 " "$(login 9999)" "$mode: 3.9999"
	assert_eq "negotiate 3.2 unsupported=_pq_.grease key 32 ready select 1 " "$(login 9999 _pq_.grease)" \
		"$mode: 3.9999 with a _pq_. option"
	assert_eq "negotiate 3.2 unsupported=_pq_.test_option key 32 ready select 1 " "$(login 2 _pq_.test_option)" \
		"$mode: 3.2 with a _pq_. option"
	pass "$mode: versions and _pq_. options negotiated as PostgreSQL 18 would, 32-byte keys for 3.2"
	out=$(timeout 120 "$P32" cancel 127.0.0.1 "$PORT" app app 2 8 2>&1 | tail -1)
	assert_eq "cancelled 8/8" "${out% slowest *}" "$mode: cancels with 32-byte keys"
	out=$(timeout 60 "$P32" cancel 127.0.0.1 "$PORT" app app 0 3 2>&1 | tail -1)
	assert_eq "cancelled 3/3" "${out% slowest *}" "$mode: cancels with 3.0 keys"
	forwarded=$(metric pgring_shard_cancels_forwarded_total)
	assert_eq 11 "$forwarded" "$mode: cancels forwarded to a server (wrong keys forward nothing)"
	for sh in 0 1; do
		assert_num_cmp "$(metric pgring_shard_cancels_received_total "shard=\"$sh\"")" -gt 0 \
			"$mode: cancel requests that landed on shard $sh"
	done
	pass "$mode: a 32-byte key cancels from any shard, a wrong or cut key cancels nothing"
	stop_pgring || fail "pgring did not stop"
done
