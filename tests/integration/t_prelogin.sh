#!/usr/bin/env bash
# t_prelogin: connections that never log in cannot lock others out. (a) A flood
# of silent TCP connections past the descriptor limit (ulimit -n 200): real
# clients still log in, because the stalest connection not logged in is closed
# for each of them; (b) client_startup_timeout closes a silent connection;
# (c) max_client_logins_per_addr refuses an address's connections past its
# share while others (the unix socket) log in.
. "$(dirname "$0")/lib.sh"
pgring_only "pgring's limits on connections not logged in"

LIMIT=200 SILENT=260
(($(ulimit -Hn) >= SILENT + 100)) || ulimit -n $((SILENT + 100)) 2>/dev/null || skip "open files limit too low"

# silent N HOLD_S: open N TCP connections to pgring that never send a byte, hold
# them HOLD_S seconds; prints "opened=N closed_by_server=M refused_53300=K"
silent() {
	python3 - "$PORT" "$1" "$2" <<'EOF'
import socket, sys, time, select
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        continue
    s.setblocking(False)
    socks.append(s)
closed = refused = 0
end = time.time() + hold
live = list(socks)
while live and time.time() < end:
    r, _, _ = select.select(live, [], [], 0.2)
    for s in r:
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if data[:1] == b"E" and b"53300" in data:
            refused += 1
        if not data or data[:1] == b"E":
            closed += 1
            live.remove(s)
print(f"opened={len(socks)} closed_by_server={closed} refused_53300={refused}")
EOF
}

# --- (a) a silent flood at the descriptor limit
fd_limited_pgring $LIMIT
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 5
max_client_conn = 5000
shards = 1
client_startup_timeout = 30
"
assert_eq 1 "$(q "SELECT 1")" "a login before the flood"
silent "$SILENT" 12 >"$TEST_TMP/flood.out" &
FLOOD=$!
track_pid $FLOOD
sleep 2.5   # the flood is in, and over a second old
ok=0
for i in $(seq 10); do
	[[ $(Q_TIMEOUT=10 q "SELECT $i") == "$i" ]] && ok=$((ok + 1))
done
assert_eq 10 "$ok" "logins while $SILENT silent connections hold the descriptors"
wait "$FLOOD"
note "flood: $(cat "$TEST_TMP/flood.out")"
closed=$(sed -n 's/.*closed_by_server=\([0-9]*\).*/\1/p' "$TEST_TMP/flood.out")
assert_num_cmp "$closed" -ge 10 "silent connections closed to make room"
grep -q "before login" "$POOLER_LOG" || fail "no log line about connections closed before login"
pass "a silent flood past the descriptor limit locks no one out ($ok/10 logins, $closed silent ones closed)"
stop_pgring
PGRING_BIN=$PGRING_REAL_BIN

# --- (b) client_startup_timeout
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
shards = 1
client_startup_timeout = 1
"
t0=$(date +%s%N)
out=$(silent 1 5)
took=$((($(date +%s%N) - t0) / 1000000))
assert_contains "$out" "closed_by_server=1" "a silent connection is closed"
assert_num_cmp "$took" -lt 3500 "closed within client_startup_timeout (and a tick) ($took ms)"
assert_eq 1 "$(q "SELECT 1")" "a normal login"
pass "client_startup_timeout closes a silent connection ($took ms)"
stop_pgring

# --- (c) max_client_logins_per_addr
SOCKDIR=$TEST_TMP/sock
mkdir -p "$SOCKDIR"
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
shards = 1
unix_socket_dir = $SOCKDIR
max_client_logins_per_addr = 20
"
silent 30 4 >"$TEST_TMP/peraddr.out" &
PA=$!
track_pid $PA
sleep 1
ok=$(PGPASSWORD=app timeout 10 psql -X -Atq -h "$SOCKDIR" -p "$PORT" -U app -c "SELECT 7" app)
assert_eq 7 "$ok" "a login over the unix socket (another address)"
wait "$PA"
out=$(cat "$TEST_TMP/peraddr.out")
note "per address: $out"
assert_contains "$out" "refused_53300=10" "the ten past the address's 20 are refused with 53300"
pass "max_client_logins_per_addr refuses one address's excess, others log in"
