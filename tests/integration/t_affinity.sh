#!/usr/bin/env bash
# t_affinity (pgring only): shards = 2, shard_cpus = 0,1: the shard threads are named
# pgring-shard0 and pgring-shard1 and pinned to CPU 0 and CPU 1 (Cpus_allowed_list
# in /proc/PID/task/TID/status); the metrics report the same.
. "$(dirname "$0")/lib.sh"
pgring_only "thread layout is pgring's"
(( $(nproc --all) >= 2 )) || skip "needs 2 CPUs"
# cpu_allowed N: CPU N is in this process's affinity list ("0-3,8").
cpu_allowed() {
	local list part
	list=$(awk '/^Cpus_allowed_list:/ {print $2}' /proc/self/status)
	for part in ${list//,/ }; do
		if [[ $part == *-* ]]; then
			(( $1 >= ${part%-*} && $1 <= ${part#*-} )) && return 0
		else
			(( $1 == part )) && return 0
		fi
	done
	return 1
}
cpu_allowed 0 && cpu_allowed 1 || skip "CPUs 0 and 1 are not both allowed here"

start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
shards = 2
shard_cpus = 0,1
"
v=$(q "SELECT 1") || fail "query"

threads() {
	local t
	for t in /proc/$POOLER_PID/task/*; do
		printf '%s %s %s\n' "${t##*/}" "$(cat "$t/comm" 2>/dev/null)" \
			"$(awk '/^Cpus_allowed_list:/ {print $2}' "$t/status" 2>/dev/null)"
	done
}
wait_until 5 eval 'threads | grep -q " pgring-shard1 "' || fail "no thread named pgring-shard1: $(threads)"
list=$(threads)
note "threads (tid comm cpus):"$'\n'"$(sed 's/^/#   /' <<<"$list")"
for s in 0 1; do
	n=$(grep -c " pgring-shard$s " <<<"$list")
	assert_eq 1 "$n" "threads named pgring-shard$s"
	cpus=$(awk -v name="pgring-shard$s" '$2 == name {print $3}' <<<"$list")
	assert_eq "$s" "$cpus" "pgring-shard$s Cpus_allowed_list"
done
assert_eq 0 "$(grep -c ' pgring-shard[2-9]' <<<"$list")" "no extra shard threads"

# The control port says the same.
for s in 0 1; do
	v=$(metric pgring_shard_cpu "shard=\"$s\"") || fail "no pgring_shard_cpu{shard=\"$s\"}"
	assert_eq "$s" "$v" "pgring_shard_cpu{shard=\"$s\"}"
done
stop_pgring || fail "pgring did not stop"
pass "shards pinned"
