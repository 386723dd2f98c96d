#!/usr/bin/env bash
# t_startup: pgring's command line and its start-up checks. -V/-h; a pidfile that
# exists while it runs and goes away after; -d detaches; and when io_uring ring
# memory exceeds RLIMIT_MEMLOCK (an unprivileged user with a tiny limit), pgring
# exits 1 at once with a message naming the cause and the fix.
. "$(dirname "$0")/lib.sh"
pgring_only

v=$("$PGRING_BIN" -V) || fail "-V failed"
assert_contains "$v" pgring "-V"
h=$("$PGRING_BIN" -h) || fail "-h failed"
assert_contains "$h" "-c" "-h"

# pidfile and -d
pidf=$TEST_TMP/pgring.pid
logf=$TEST_TMP/daemon.log
read -r P C < <(freeports 2 | xargs)
cat >"$TEST_TMP/d.ini" <<INI
[databases]
app = host=$PGHOST_REAL port=$PGPORT_REAL dbname=app
[pgring]
listen_addr = 127.0.0.1
listen_port = $P
unix_socket_dir =
control_port = $C
auth_type = trust
pidfile = $pidf
logfile = $logf
INI
"$PGRING_BIN" -d -c "$TEST_TMP/d.ini" || fail "-d start failed"
wait_until 5 eval '[[ -s $pidf ]]' || fail "no pidfile"
dpid=$(cat "$pidf")
track_pid "$dpid"
alive "$dpid" || fail "pidfile names a dead process"
wait_until 5 tcp_open 127.0.0.1 "$P" || fail "daemon does not listen"
kill -INT "$dpid"
wait_until 5 eval '! alive $dpid' || fail "daemon did not stop on SIGINT"
[[ ! -e $pidf ]] || fail "pidfile left behind"
grep -q "stopped" "$logf" || fail "no log lines in the logfile: $(cat "$logf")"

# RLIMIT_MEMLOCK too small for the ring, as an unprivileged user
cp "$TEST_TMP/d.ini" "$TEST_TMP/m.ini"
sed -i -e '/^pidfile/d' -e '/^logfile/d' -e 's/^\[pgring\]/[pgring]\ncq_entries = 65536\nring_entries = 4096/' "$TEST_TMP/m.ini"
chmod 755 "$TEST_TMP"; chmod 644 "$TEST_TMP/m.ini"
out=$(timeout 20 setpriv --reuid=postgres --regid=postgres --init-groups -- \
	bash -c "ulimit -l 16; exec $PGRING_BIN -c $TEST_TMP/m.ini" 2>&1)
rc=$?
note "memlock: rc=$rc: $out"
assert_eq 1 "$rc" "exit status with a tiny RLIMIT_MEMLOCK"
assert_contains "$out" "RLIMIT_MEMLOCK" "the message names the cause"
assert_match "$out" "ulimit -l|LimitMEMLOCK" "the message names the fix"
pass "startup"
