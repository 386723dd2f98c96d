#!/usr/bin/env bash
# t_systemd: daemon hygiene (issue 16, point 5, in part). The ExecStart line of
# tools/pgring.service runs pgring under a stand-in for systemd's notify socket
# (a Python datagram listener on NOTIFY_SOCKET): pgring sends READY=1 with its
# MAINPID once it serves, RELOADING=1 then READY=1 around a SIGHUP (with
# MONOTONIC_USEC), a successor's READY=1 with its own MAINPID after SIGUSR2,
# STOPPING=1 at SIGTERM; the unit asks for what pgring needs
# (Type=notify, ExecReload by SIGHUP, LimitNOFILE, LimitMEMLOCK). Run as root,
# `user = postgres` makes pgring drop to that user once its sockets are open,
# and it still serves; an unknown user is an error at start. syslog = 1 sends
# the lines to syslog too, with syslog_ident and syslog_facility (a stand-in
# listens on /dev/log when run as root on a machine without a syslog daemon).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "pgring's unit file and readiness messages"
command -v python3 >/dev/null || skip "needs python3"
UNIT=$ROOT/tools/pgring.service
for k in "Type=notify" "ExecReload=/bin/kill -HUP \$MAINPID" "LimitNOFILE=" "LimitMEMLOCK=" "KillSignal=SIGTERM"; do
	grep -q "^$k" "$UNIT" || fail "tools/pgring.service has no $k line"
done

SOCK=$TEST_TMP/notify.sock
LOG=$TEST_TMP/notify.log
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        m = s.recv(4096).decode()
        f.write(m.replace("\n", " ") + "\n")
' "$SOCK" "$LOG" &
LISTENER=$!
track_pid $LISTENER
on_exit "kill_wait $LISTENER KILL"
wait_until 5 test -S "$SOCK" || fail "the notify listener did not start"
chmod 777 "$TEST_TMP" "$SOCK"
touch "$LOG"

user_line=
[[ $(id -u) == 0 ]] && user_line="user = postgres"
# the unit's ExecStart, with this test's binary and configuration
exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
[[ $exec_start == "/usr/local/bin/pgring /etc/pgring/pgring.ini" ]] || fail "unexpected ExecStart: $exec_start"
cat >"$TEST_TMP/wrapper" <<EOF
#!/usr/bin/env bash
exec env NOTIFY_SOCKET=$SOCK ${exec_start/\/usr\/local\/bin\/pgring/$PGRING_BIN} "\${@:3}"
EOF
chmod +x "$TEST_TMP/wrapper"
# start_pgring runs "$PGRING_BIN -c CONF": the wrapper drops the -c and passes CONF where the unit has its path
sed -i "s|/etc/pgring/pgring.ini|\"\$2\"|" "$TEST_TMP/wrapper"
REAL_BIN=$PGRING_BIN
PGRING_BIN=$TEST_TMP/wrapper
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
$user_line
"
wait_until 5 grep -q "READY=1" "$LOG" || fail "no READY=1 on NOTIFY_SOCKET: $(cat "$LOG")"
assert_eq "READY=1 STATUS=serving MAINPID=$POOLER_PID" "$(head -1 "$LOG")" "the readiness message"
assert_eq 1 "$(q "SELECT 1")" "a query through pgring"
if [[ -n $user_line ]]; then
	uid=$(awk '/^Uid:/ { print $2 }' "/proc/$POOLER_PID/status")
	assert_eq "$(id -u postgres)" "$uid" "pgring's user after start"
	grep -q "running as user postgres" "$POOLER_LOG" || fail "no 'running as user postgres' in the log"
	pass "user = postgres: pgring dropped root once its sockets were open, and serves"
else
	note "not root: user = postgres not tested"
fi
kill -HUP "$POOLER_PID"
wait_until 5 eval '[[ $(grep -c "READY=1" "$LOG") -ge 2 ]]' || fail "no READY=1 after SIGHUP: $(cat "$LOG")"
grep -qE "^RELOADING=1 MAINPID=$POOLER_PID MONOTONIC_USEC=[0-9]+$" "$LOG" || fail "no RELOADING=1 with MONOTONIC_USEC: $(cat "$LOG")"
wait_until 5 grep -q "configuration reloaded" "$POOLER_LOG" || fail "the reload failed: $(tail -3 "$POOLER_LOG")"
assert_eq 1 "$(q "SELECT 1")" "a query after the reload"
pass "the unit's ExecStart under NOTIFY_SOCKET: READY=1, RELOADING=1 then READY=1"

# SIGUSR2: pgring runs its binary again as a successor (-R), detached, with
# NOTIFY_SOCKET; the successor's READY=1 names its own MAINPID, which systemd
# (NotifyAccess=all) follows; the old process, holding nobody, leaves.
grep -q "^NotifyAccess=all" "$UNIT" || fail "tools/pgring.service has no NotifyAccess=all (the successor's MAINPID)"
OLD=$POOLER_PID
kill -USR2 "$OLD"
newpid() { sed -n 's/^READY=1 STATUS=serving MAINPID=\([0-9]*\)$/\1/p' "$LOG" | grep -vx "$OLD" | tail -1; }
wait_until 20 eval '[[ -n $(newpid) ]]' || fail "no READY=1 from a successor: $(cat "$LOG"); $(tail -3 "$POOLER_LOG")"
NEW=$(newpid)
on_exit "kill_wait $NEW"
grep -q "SIGUSR2: started the binary again (pid $NEW)" "$POOLER_LOG" || fail "the old process did not log the successor"
wait_exit "$OLD" 20 || fail "the old process still runs: $(tail -3 "$POOLER_LOG")"
assert_eq 0 "$WAIT_STATUS" "the old process's exit status"
grep -q "STOPPING=1 MAINPID=$OLD" "$LOG" && fail "the old process told systemd it stops (the service would)"
POOLER_PID=$NEW
assert_eq 1 "$(q "SELECT 1")" "a query through the successor"
assert_eq "$NEW" "$(pgrep -f "^$REAL_BIN .*-R -c " | head -1)" "the successor runs the binary with -R"
pass "SIGUSR2: a successor started from the binary on disk took over (MAINPID $OLD -> $NEW), the old one left"

kill -TERM "$NEW"
wait_exit "$NEW" 15 || fail "the successor did not stop"
grep -qx "STOPPING=1 MAINPID=$NEW" "$LOG" || fail "no STOPPING=1: $(cat "$LOG")"
pass "STOPPING=1 at SIGTERM"

if [[ $(id -u) == 0 ]]; then
	cat >"$TEST_TMP/nouser.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PGPORT_REAL dbname=app
[pgring]
listen_addr = 127.0.0.1
listen_port = $(freeports 1)
unix_socket_dir =
control_port = 0
auth_type = trust
user = no_such_user_pgring
EOF
	out=$(timeout 10 "$REAL_BIN" -c "$TEST_TMP/nouser.ini" 2>&1)
	rc=$?
	[[ $rc != 0 && $rc != 124 ]] || fail "pgring with an unknown user: status $rc"
	assert_contains "$out" "no_such_user_pgring" "the error names the user"
	pass "an unknown user is an error at start (status $rc)"
fi

# syslog = 1: lines go to syslog too (as syslog_ident, with syslog_facility). A
# stand-in for the syslog daemon listens on /dev/log when nothing does (root only).
if [[ $(id -u) == 0 && ! -e /dev/log ]]; then
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
with open(sys.argv[1], "a", buffering=1) as f:
    while True:
        f.write(s.recv(8192).decode(errors="replace") + "\n")
' "$TEST_TMP/syslog" &
	SYSLOGD=$!
	track_pid $SYSLOGD
	on_exit "kill_wait $SYSLOGD KILL; rm -f /dev/log"
	wait_until 5 test -S /dev/log || fail "the syslog stand-in did not start"
	touch "$TEST_TMP/syslog"
	PGRING_BIN=$REAL_BIN
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
syslog = 1
syslog_ident = pgring-test
syslog_facility = local3
"
	# local3 (19) * 8 + notice (5) = 157
	wait_until 5 grep -qE '^<157>.*pgring-test\[[0-9]+\]: LOG control: pgring .* running' "$TEST_TMP/syslog" ||
		fail "no 'running' line in syslog: $(head -3 "$TEST_TMP/syslog")"
	stop_pgring || fail "pgring did not stop"
	pass "syslog = 1: lines reach syslog as pgring-test, facility local3"
else
	note "syslog not tested (not root, or /dev/log belongs to a real syslog)"
fi
