#!/usr/bin/env bash
# t_port: one pgring per port unless asked (issue 16, point 7). A second pgring
# started on the TCP port or the Unix socket of a running one fails (after 2 s)
# with a clear error, instead of joining the first one's SO_REUSEPORT group and
# taking a share of its clients; with so_reuseport = 1 in both, sharing is meant
# and the second one starts. A stale Unix socket file (nobody listening) is
# replaced, also right after its owner was killed (SIGKILL: io_uring's teardown
# keeps the listener open a moment after the process is gone).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "pgring's listener checks"
SOCK=$TEST_TMP/sock
mkdir -p "$SOCK"

# second CONFIG_FILE: run another pgring on it; its status and output in
# SECOND_STATUS / SECOND_OUT ("running" if it is still up after 6 s: then
# stopped). pgring believes an address in use after 2 s of it (a process killed
# a moment ago keeps its listeners until the kernel has torn its ring down).
second() {
	"$PGRING_BIN" -c "$1" >"$TEST_TMP/second.out" 2>&1 &
	local pid=$!
	track_pid $pid
	if wait_exit $pid 6; then
		SECOND_STATUS=$WAIT_STATUS
	else
		SECOND_STATUS=running
		kill_wait $pid
	fi
	SECOND_OUT=$(cat "$TEST_TMP/second.out")
}

conf="
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
"
start_pgring "$conf"
cp "$POOLER_CONF" "$TEST_TMP/same.ini"
sed -i "s/^control_port = .*/control_port = $(freeports 1)/" "$TEST_TMP/same.ini"
second "$TEST_TMP/same.ini"
[[ $SECOND_STATUS != running && $SECOND_STATUS != 0 ]] || fail "a second pgring on port $PORT started (status $SECOND_STATUS)"
assert_contains "$SECOND_OUT" "the address is in use" "the second pgring's error"
assert_contains "$SECOND_OUT" "so_reuseport" "the second pgring's error names the key"
assert_eq 1 "$(q "SELECT 1")" "the first pgring still serves"
pass "a second pgring on a port in use fails: $(grep -m1 'in use' <<<"$SECOND_OUT" | sed 's/^.*\] //')"
stop_pgring

start_pgring "$conf
so_reuseport = 1
"
cp "$POOLER_CONF" "$TEST_TMP/share.ini"
sed -i "s/^control_port = .*/control_port = $(freeports 1)/" "$TEST_TMP/share.ini"
second "$TEST_TMP/share.ini"
assert_eq running "$SECOND_STATUS" "a second pgring with so_reuseport = 1 on both ($SECOND_OUT)"
pass "so_reuseport = 1 shares the port on purpose"
stop_pgring

# the Unix socket: a live one is someone's, a stale file is replaced
start_pgring "$conf
unix_socket_dir = $SOCK
"
# the same port number (so the same socket file) on another loopback address
sed -e "s/^listen_addr = .*/listen_addr = 127.0.0.2/" -e "s/^control_port = .*/control_port = $(freeports 1)/" \
	"$POOLER_CONF" >"$TEST_TMP/unix.ini"
grep -q "^unix_socket_dir = $SOCK\$" "$TEST_TMP/unix.ini" || fail "test set-up: no unix_socket_dir in $(cat "$TEST_TMP/unix.ini")"
second "$TEST_TMP/unix.ini"
[[ $SECOND_STATUS != running && $SECOND_STATUS != 0 ]] || fail "a second pgring on the live Unix socket started"
assert_contains "$SECOND_OUT" "another server listens there" "the error for a live Unix socket"
pass "a second pgring on a live Unix socket fails"
stop_pgring KILL   # leaves its socket file behind, as a crash would
[[ -S $SOCK/.s.PGSQL.$PORT ]] || fail "test set-up: no stale socket file after SIGKILL"
second "$TEST_TMP/unix.ini"
assert_eq running "$SECOND_STATUS" "pgring over a stale Unix socket file ($SECOND_OUT)"
pass "a stale Unix socket file is replaced"
