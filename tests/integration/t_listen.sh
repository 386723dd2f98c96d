#!/usr/bin/env bash
# t_listen: LISTEN without pinning in transaction pooling (issue 20, item 4),
# with tests/integration/notifyfan.c (idle listeners counting what they get).
#  1. Directly (proves the helper): 50 clients on 10 channels, a round of 20
#     notifications per channel: every client gets exactly its channel's, in
#     order, from the sender's PID; a LISTEN rolled back leaves nothing;
#     pg_listening_channels() is each client's own.
#  2. Through pgring, two shards, a pool of 5: 200 clients on 50 channels, none
#     pinned, the pool's servers stay at most 5 and one listening connection per
#     shard listens on the channels; pg_listening_channels() per client. Round 1
#     sent directly, then the listening connections are terminated under the
#     listeners: pgring listens again and every client gets one warning that
#     notifications may have been missed; round 2 sent through pgring (NOTIFY
#     in a client's transaction): every client has exactly 2 x 20, in order,
#     nothing twice, nothing of another channel, each from its sender's real
#     PID. Metrics: listeners, channels, notifications delivered, listener losses.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "the pool's listener is pgring's"
FAN=$HELPERS/notifyfan
[[ -x $FAN ]] || fail "helper $FAN not built"

# send_round R CHANNELS PER CONNINFO: one statement (so one backend, one
# transaction) that notifies "R:k" on ch_0..ch_<CHANNELS-1> for k = 1..PER, in
# order; prints the sender's PID.
send_round() {
	timeout 30 psql -X -Atq "$4" -c "SELECT pg_backend_pid() || ' ' || count(pg_notify('ch_' || c, '$1:' || k))
		FROM (SELECT k, c FROM generate_series(1, $3) k, generate_series(0, $2 - 1) c ORDER BY k, c) s" |
		awk '{ print $1 }'
}

# wait_line FILE LINE SECONDS PID: the helper printed LINE (or died: fail).
wait_line() {
	local end=$(($(date +%s) + $3))
	while (($(date +%s) <= end)); do
		grep -qx "$2" "$1" && return 0
		alive "$4" || break
		sleep 0.1
	done
	grep -qx "$2" "$1" || fail "notifyfan did not print '$2': $(tr '\n' ' ' <"$1")"
}

# ---- 1. directly
"$FAN" "$(conninfo_direct app app) password=app" 50 10 20 1 60 >"$TEST_TMP/direct.out" 2>&1 &
FPID=$!
track_pid $FPID
on_exit "kill_wait $FPID KILL"
wait_line "$TEST_TMP/direct.out" ready 30 $FPID
SENDER=$(send_round 1 10 20 "$(conninfo_direct app app) password=app")
wait_exit $FPID 60 || fail "notifyfan (direct) did not finish"
assert_eq 0 "$WAIT_STATUS" "notifyfan directly: $(tr '\n' ' ' <"$TEST_TMP/direct.out")"
assert_eq "clients=50 complete=50 missing=0 extra=0 wrong=0 disorder=0 notices=0 pids=$SENDER" \
	"$(tail -1 "$TEST_TMP/direct.out")" "directly"
pass "directly: 50 listeners on 10 channels get exactly their 20 notifications each"

# ---- 2. through pgring
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 5
max_client_conn = 400
shards = 2
"
"$FAN" "$(conninfo)" 200 50 20 2 120 >"$TEST_TMP/via.out" 2>&1 &
FPID=$!
track_pid $FPID
on_exit "kill_wait $FPID KILL"
wait_line "$TEST_TMP/via.out" ready 60 $FPID
assert_eq 0 "$(metric pgring_pool_clients_pinned 'database="app"')" "pinned clients while 200 listen"
assert_eq 200 "$(metric pgring_pool_listeners 'database="app"')" "listening clients"
assert_eq 2 "$(metric pgring_pool_servers 'state="listener"')" "listening connections (one per shard)"
chans=$(metric pgring_pool_listen_channels 'database="app"')
assert_num_cmp "$chans" -ge 50 "channels listened on, summed over the shards"
assert_num_cmp "$chans" -le 100 "channels listened on, summed over the shards"
used=$(metric pgring_pool_server_connections 'database="app"')
assert_num_cmp "$used" -le 5 "the pool's server connections while 200 clients listen"
note "200 listeners: $chans channels over 2 shards, $used pooled servers, none pinned"

SENDER1=$(send_round 1 50 20 "$(conninfo_direct app app) password=app")
wait_line "$TEST_TMP/via.out" "round 1 done" 60 $FPID
pass "round 1 (sent directly): every one of 200 listeners has its 20"

old=$(qd "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE application_name = 'pgring listener'")
assert_eq 2 "$(qd "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pgring listener'")" \
	"listening connections terminated"
listening_again() {
	local now
	now=$(qd "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
		WHERE application_name = 'pgring listener' AND state = 'idle' AND query LIKE 'LISTEN %'")
	[[ -n $now && $now != "$old" && $now == *,* ]]
}
wait_until 15 listening_again || fail "pgring did not listen again after its listening connections were terminated"
SENDER2=$(send_round 2 50 20 "$(conninfo)")
wait_line "$TEST_TMP/via.out" "round 2 done" 60 $FPID
wait_exit $FPID 30 || fail "notifyfan (through pgring) did not finish"
assert_eq 0 "$WAIT_STATUS" "notifyfan through pgring: $(tr '\n' ' ' <"$TEST_TMP/via.out")"
summary=$(tail -1 "$TEST_TMP/via.out")
assert_eq "clients=200 complete=200 missing=0 extra=0 wrong=0 disorder=0 notices=200" "${summary% pids=*}" \
	"through pgring: counts, and one warning per client for the lost listener"
pids=${summary#* pids=}
[[ ",$pids," == *",$SENDER1,"* && ",$pids," == *",$SENDER2,"* && $pids =~ ^[0-9]+,[0-9]+$ ]] ||
	fail "sender PIDs seen: $pids, expected $SENDER1 and $SENDER2"
pass "round 2 (NOTIFY through pgring) after the listening connections died: exactly 40 each, in order, senders' PIDs"
assert_eq 8000 "$(metric pgring_pool_notifications_total 'database="app"')" "notifications delivered"
assert_eq 2 "$(metric pgring_pool_listener_losses_total 'database="app"')" "listener losses"
wait_until 10 eval '[[ $(metric pgring_pool_listeners "database=\"app\"") == 0 && $(metric pgring_pool_servers "state=\"listener\"") == 0 ]]' ||
	fail "listeners or listening connections left after every client left"
assert_eq 0 "$(metric pgring_pool_listen_channels 'database="app"')" "channels after every client left"
pass "metrics: 8000 notifications, 2 listener losses; nothing left after the clients left"

# ---- 3. a notification held for the end of the client's transaction comes
# after its COMMIT's CommandComplete and before the ReadyForQuery, as
# PostgreSQL sends it (the replies of a query pass as one slice: the COMMIT
# settles the session, which lets the held notification go, only once the
# slice before it is queued)
order=$(PORT=$PORT SENDER="$(conninfo)" timeout 60 python3 - <<'PY' 2>&1
import hashlib, os, socket, struct, subprocess, time
def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed")
        b += c
    return b
def read_msg(s):
    h = recv_exact(s, 5)
    return h[:1], recv_exact(s, struct.unpack("!I", h[1:])[0] - 4)
def send(s, t, body):
    s.sendall(t + struct.pack("!I", len(body) + 4) + body)
def query(s, sql):
    send(s, b"Q", sql.encode() + b"\0")
    seen = []
    while True:
        t, b = read_msg(s)
        seen.append(t.decode() + (":" + b[:-1].decode() if t == b"C" else ""))
        if t == b"Z":
            return seen
s = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=20)
params = b"user\0app\0database\0app\0\0"
body = struct.pack("!I", 196608) + params
s.sendall(struct.pack("!I", len(body) + 4) + body)
t, b = read_msg(s)
assert t == b"R" and struct.unpack("!I", b[:4])[0] == 5, (t, b)
inner = hashlib.md5(b"app" + b"app").hexdigest().encode()
send(s, b"p", b"md5" + hashlib.md5(inner + b[4:8]).hexdigest().encode() + b"\0")
while read_msg(s)[0] != b"Z":
    pass
query(s, "LISTEN ch_order")
query(s, "BEGIN")
query(s, "SELECT 1")
subprocess.run(["psql", "-X", "-Atq", os.environ["SENDER"], "-c", "NOTIFY ch_order, 'x'"], check=True)
time.sleep(1)
print(" ".join(query(s, "COMMIT")))
PY
)
assert_eq "C:COMMIT A Z" "$order" "a held notification after its transaction's COMMIT"
pass "a notification held for the client's transaction comes after its COMMIT, before ReadyForQuery"
stop_pgring || fail "pgring did not stop"
