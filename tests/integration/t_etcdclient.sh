#!/usr/bin/env bash
# t_etcdclient: core/control/etcd.c, the control thread's etcd client, against
# an etcd of its own (3.4, through its JSON gateway), driven by the helper
# etcdprobe (tests/integration/etcdprobe.c):
#   1. a value with bytes JSON must escape comes back as it was put; a prefix
#      reads its keys and no others;
#   2. a watch sees the puts and deletes another client makes, in order, and
#      nothing outside its prefix;
#   3. a key under a lease (TTL 2) stays while its holder keeps the lease alive
#      and goes once it stops; a keepalive then says the lease is gone (ttl 0);
#   4. put-if-absent creates once, then says the key exists;
#   5. a dead endpoint ahead of a live one is skipped; with etcd frozen
#      (SIGSTOP: it accepts, never answers) each request fails within its
#      timeout; a watch breaks when etcd goes; with etcd gone every request
#      fails at once, each with a clear message and no hang.
# shellcheck disable=SC1091,SC2016 # lib.sh is sourced at run time; eval '...' is lib.sh's idiom
. "$(dirname "$0")/lib.sh"
pgring_only "pgring's etcd client"
command -v etcd >/dev/null || skip "etcd is not installed (tools/setup)"
PROBE=$HELPERS/etcdprobe
[[ -x $PROBE ]] || fail "helper $PROBE not built"
probe() { timeout 20 "$PROBE" "$@"; }

read -r CPORT PPORT DEAD < <(freeports 3 | xargs)
E=127.0.0.1:$CPORT
etcd --name t --data-dir "$TEST_TMP/etcd" --listen-client-urls "http://$E" --advertise-client-urls "http://$E" \
	--listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
	--initial-cluster "t=http://127.0.0.1:$PPORT" --logger zap --log-level warn >"$TEST_TMP/etcd.log" 2>&1 &
ETCD_PID=$!
track_pid $ETCD_PID
on_exit "kill -CONT $ETCD_PID; kill_wait $ETCD_PID"
wait_until 20 probe "$E" get /nothing || fail "etcd did not start on $E: $(tail -5 "$TEST_TMP/etcd.log")"
note "etcd pid $ETCD_PID on $E"

# 1. round trip
VALUE=$'quote " backslash \\ slash / tab \t cr \r ctl \x01\x1f del \x7f utf8 \xc3\xa9 \xe2\x98\x83 {"json":[1]}'
KEY=$'/t/a/k\xc3\xa9 "1"'
assert_eq ok "$(probe "$E" put "$KEY" "$VALUE")" "put"
assert_eq ok "$(probe "$E" put /t/a0 outside)" "put next to the prefix"
assert_eq ok "$(probe "$E" put /t/a/k2 "")" "put an empty value"
assert_eq $'/t/a/k2=\n'"$KEY=$VALUE" "$(probe "$E" get /t/a/ 2>/dev/null)" "get /t/a/ (in key order)"
assert_eq "" "$(probe "$E" get /t/nothing/ 2>/dev/null)" "get of an empty prefix"
pass "put/get round trip, escapes and UTF-8 included; a prefix reads its keys only"

# 2. watch
probe "$E" watch /t/w/ 4 15 >"$TEST_TMP/watch.out" 2>"$TEST_TMP/watch.err" &
WPID=$!
track_pid $WPID
wait_until 10 grep -q "watching from" "$TEST_TMP/watch.err" || fail "the watch did not start: $(cat "$TEST_TMP/watch.err")"
for cmd in "put /t/w/1 a" "put /t/x outside" "put /t/w/2 b" "del /t/w/1" "put /t/w/2 c"; do
	# shellcheck disable=SC2086 # word splitting wanted
	assert_eq ok "$(probe "$E" $cmd)" "$cmd"
done
wait_exit $WPID 15 || fail "the watch did not end: $(cat "$TEST_TMP/watch.out" "$TEST_TMP/watch.err")"
assert_eq 0 "$WAIT_STATUS" "the watch's status ($(cat "$TEST_TMP/watch.err"))"
assert_eq $'PUT /t/w/1=a\nPUT /t/w/2=b\nDELETE /t/w/1\nPUT /t/w/2=c' "$(cat "$TEST_TMP/watch.out")" "the watch's events"
pass "a watch sees another client's puts and deletes in order"

# 3. lease
probe "$E" lease 2 /t/l/k held 3.5 >"$TEST_TMP/lease.out" 2>"$TEST_TMP/lease.err" &
LPID=$!
track_pid $LPID
wait_until 5 grep -q "^lease " "$TEST_TMP/lease.out" || fail "no lease: $(cat "$TEST_TMP/lease.err")"
read -r _ LEASE _ TTL <"$TEST_TMP/lease.out"
assert_eq 2 "$TTL" "the lease's TTL"
sleep 2.8
assert_eq "/t/l/k=held" "$(probe "$E" get /t/l/ 2>/dev/null)" "the key while its lease is kept alive, past the TTL"
wait_exit $LPID 5 || fail "the lease holder did not end"
assert_eq 0 "$WAIT_STATUS" "the lease holder's status ($(cat "$TEST_TMP/lease.err"))"
t0=$(now_ms)
wait_until 6 eval '[[ -z $(probe "$E" get /t/l/ 2>/dev/null) ]]' || fail "the key outlived its lease"
note "the key went $(($(now_ms) - t0)) ms after its holder stopped"
assert_eq "ttl 0" "$(probe "$E" keepalive "$LEASE")" "a keepalive of the expired lease"
out=$(probe "$E" revoke "$LEASE" 2>&1) && fail "revoking an expired lease succeeded: $out"
assert_contains "$out" "requested lease not found" "revoking an expired lease"
pass "a key under a lease lives while it is kept alive and goes after (TTL 2)"

# 4. put if absent
assert_eq created "$(probe "$E" cas /t/c/lock one)" "the first put-if-absent"
assert_eq exists "$(probe "$E" cas /t/c/lock two)" "the second put-if-absent"
assert_eq "/t/c/lock=one" "$(probe "$E" get /t/c/ 2>/dev/null)" "the key keeps the first value"
pass "put-if-absent creates once, then says exists"

# 5. failures
assert_eq "/t/c/lock=one" "$(probe "127.0.0.1:$DEAD,$E" get /t/c/ 2>/dev/null)" "a dead endpoint, then etcd"
pass "a dead endpoint ahead of a live one is skipped"

kill -STOP $ETCD_PID
for cmd in "get /t/" "put /t/k v" "cas /t/k v" "lease 2 /t/k v 1" "watch /t/ 1 10"; do
	t0=$(now_ms)
	# shellcheck disable=SC2086 # word splitting wanted
	out=$(probe -t 0.5 "$E" $cmd 2>&1) && fail "$cmd succeeded against a frozen etcd: $out"
	ms=$(($(now_ms) - t0))
	assert_contains "$out" "no answer within 0.5 s" "$cmd against a frozen etcd"
	assert_num_cmp "$ms" -lt 1500 "$cmd against a frozen etcd took $ms ms (timeout 0.5 s)"
done
kill -CONT $ETCD_PID
pass "with etcd frozen, requests fail within their timeout: $out"

probe "$E" watch /t/ 1 30 >"$TEST_TMP/watch2.out" 2>"$TEST_TMP/watch2.err" &
WPID=$!
track_pid $WPID
wait_until 10 grep -q "watching from" "$TEST_TMP/watch2.err" || fail "the watch did not start: $(cat "$TEST_TMP/watch2.err")"
sleep 0.5   # acknowledged by now
kill_wait $ETCD_PID
wait_exit $WPID 10 || fail "the watch did not notice that etcd went"
assert_eq 1 "$WAIT_STATUS" "the broken watch's status"
assert_contains "$(cat "$TEST_TMP/watch2.err")" "watch failed" "the broken watch's message"
pass "a watch breaks when etcd goes: $(tail -1 "$TEST_TMP/watch2.err")"

for cmd in "get /t/" "put /t/k v" "del /t/k" "cas /t/k v" "lease 2 /t/k v 1" "keepalive 1" "revoke 1" "watch /t/ 1 10"; do
	t0=$(now_ms)
	# shellcheck disable=SC2086 # word splitting wanted
	out=$(probe "127.0.0.1:$DEAD,$E" $cmd 2>&1) && fail "$cmd succeeded with etcd gone: $out"
	ms=$(($(now_ms) - t0))
	assert_contains "$out" "$E: connect: Connection refused" "$cmd with etcd gone"
	assert_num_cmp "$ms" -lt 1500 "$cmd with etcd gone took $ms ms"
done
pass "with etcd gone, requests fail at once: $out"
