#!/usr/bin/env bash
# t_cancel: cancel requests work with two shards. pgring hands out its own
# BackendKeyData naming the owning shard; a CancelRequest lands on whichever shard
# SO_REUSEPORT picks and is passed to the owner, which cancels the query on the
# server the client is using. Each pg_sleep(30) must end with 57014 within a
# second, the session must stay usable, and an idle session's cancel must not hit
# another session's query.
. "$(dirname "$0")/lib.sh"
[[ -x $HELPERS/cancel ]] || fail "helper $HELPERS/cancel not built"
for mode in transaction session; do
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = $mode
default_pool_size = 4
shards = 2
"
	out=$("$HELPERS/cancel" "$(conninfo)" 8 2>&1)
	rc=$?
	note "$mode: $(tr '\n' ' ' <<<"$out")"
	assert_eq 0 "$rc" "$mode: every cancel worked ($out)"
	if ! is_pgbouncer; then
		r0=$(metric pgring_shard_cancels_received_total 'shard="0"')
		r1=$(metric pgring_shard_cancels_received_total 'shard="1"')
		f0=$(metric pgring_shard_cancels_forwarded_total 'shard="0"')
		f1=$(metric pgring_shard_cancels_forwarded_total 'shard="1"')
		note "$mode: cancels received per shard $r0/$r1, forwarded to servers $f0/$f1"
		assert_num_cmp "$(( r0 + r1 ))" -ge 9 "$mode: cancel requests received"
		assert_num_cmp "$(( f0 + f1 ))" -ge 8 "$mode: cancels forwarded to servers"
	fi
	stop_pgring
	pass "$mode"
done
