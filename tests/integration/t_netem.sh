#!/usr/bin/env bash
# t_netem: pgring to PostgreSQL over an impaired network, packet by packet (issue
# 17 points 4 and 5): delay, loss, reordering, duplication, a mix of them, a
# partition that heals and one that outlasts every timeout; through each,
# ackcheck's clients (see ackphase.sh) must lose no acknowledged COMMIT and
# apply none twice, and a bulk COPY in and out must arrive byte for byte.
#
# This kernel has no sch_netem, so PostgreSQL runs in a network namespace of
# its own, reached from pgring through two TUN devices joined by
# tests/integration/tunem.c, which passes every IP packet through a release
# queue that delays, drops, duplicates and reorders (faultproxy, a TCP proxy,
# cannot: its kernel delivers in order and acknowledges what it got). Both
# kernels' TCP see the faults: the figures include their retransmissions,
# out-of-order queues and duplicate SACKs (nstat). The `app` pool goes through
# the tunnel; `other`, the same database over PostgreSQL's Unix socket (a file,
# so it crosses namespaces), stands for everyone else and runs a bystander
# pgbench; ackcheck verifies over that socket too. pgring's TCP timeouts:
# tcp_keepidle 2, tcp_keepintvl 1, tcp_keepcnt 3, tcp_user_timeout 5000;
# PostgreSQL's the same, with idle_in_transaction_session_timeout 5 s so that a
# block whose client vanished behind the partition ends.
# Needs root (a network namespace, TUN devices); skipped otherwise.
# shellcheck disable=SC1091,SC2016
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ackphase.sh"
pgring_only "pgring's behaviour over a bad network"
[[ $(id -u) == 0 ]] || skip "needs root for a network namespace and TUN devices"
[[ -c /dev/net/tun ]] || skip "no /dev/net/tun"

TUNEM=$HELPERS/tunem
ACK=$HELPERS/ackcheck
[[ -x $TUNEM && -x $ACK ]] || fail "helpers tunem and ackcheck not built"
NCL=${ACKCHECK_CLIENTS:-16}
SEED=${ACKCHECK_SEED:-$((RANDOM * 32768 + RANDOM))}
PGTMP=$ROOT/tools/pgtmp
RSS_GROWTH_MB=48
[[ $PGRING_BIN == *asan* ]] && RSS_GROWTH_MB=200
OTHERS_MS=2500
note "seed $SEED (ACKCHECK_SEED=$SEED repeats it), $NCL clients"

# ---------------------------------------------------------------- the network
NS=pgr$$
TUN_HOST=tnh$$ TUN_NS=tnn$$
NET=10.$((16 + $$ % 200)).$(($$ / 200 % 250))
HOST_IP=$NET.1 NS_IP=$NET.2
ip netns add "$NS" || fail "ip netns add $NS"
on_exit "ip netns del $NS"
ip -n "$NS" link set lo up || fail "lo in $NS"
TUNEM_PORT=$(freeports 1)
"$TUNEM" -n "$NS" -a "$TUN_HOST" -b "$TUN_NS" -c "$TUNEM_PORT" -s "$SEED" 2>"$TEST_TMP/tunem.log" &
TUNEM_PID=$!
track_pid "$TUNEM_PID"
on_exit "kill_wait $TUNEM_PID"
wait_until 5 tcp_open 127.0.0.1 "$TUNEM_PORT" || fail "tunem did not start: $(cat "$TEST_TMP/tunem.log")"
ip addr add "$HOST_IP" peer "$NS_IP" dev "$TUN_HOST" && ip link set "$TUN_HOST" up &&
	ip -n "$NS" addr add "$NS_IP" peer "$HOST_IP" dev "$TUN_NS" && ip -n "$NS" link set "$TUN_NS" up ||
	fail "addresses on the TUN devices"

# em COMMAND: one tunem command; prints its answer, fails on anything but ok
em() {
	local r
	r=$(exec 3<>"/dev/tcp/127.0.0.1/$TUNEM_PORT" && echo "$*" >&3 && timeout 5 head -1 <&3) || fail "tunem $*: no answer"
	[[ $r == ok* ]] || fail "tunem $*: $r"
	echo "$r"
}
# emstat NAME: a counter of tunem's (up_* + down_* when NAME has no direction)
emstat() {
	local s
	s=$(em stats)
	if [[ $1 == up_* || $1 == down_* ]]; then
		field "$1" "$s"
	else
		echo $(($(field "up_$1" "$s") + $(field "down_$1" "$s")))
	fi
}
# kstat NAME: a TCP counter (nstat's name), summed over both kernels' sides
kstat() {
	local a b
	a=$(nstat -asz "$1" | awk -v n="$1" '$1 == n { print $2 }')
	b=$(ip netns exec "$NS" nstat -asz "$1" | awk -v n="$1" '$1 == n { print $2 }')
	echo $((${a:-0} + ${b:-0}))
}

# ---------------------------------------------------------------- PostgreSQL in the namespace
chmod o+x "$TEST_TMP"
PGD=$TEST_TMP/pg
mkdir -p "$PGD"
on_exit "$PGTMP stop $PGD"
PGP=$(ip netns exec "$NS" env PGTMP_CONF="listen_addresses = '*'
idle_in_transaction_session_timeout = '5s'
tcp_keepalives_idle = 2
tcp_keepalives_interval = 1
tcp_keepalives_count = 3
tcp_user_timeout = 5000" timeout 120 "$PGTMP" start "$PGD" | sed -n 's/^PORT=//p')
[[ -n $PGP ]] || fail "PostgreSQL did not start in $NS"
printf 'host all postgres %s/32 trust\nhost all all %s/32 scram-sha-256\n' "$HOST_IP" "$HOST_IP" |
	runuser -u postgres -- tee -a "$PGD/data/pg_hba.conf" >/dev/null
# qd and conninfo_direct (ackcheck's verification) use the Unix socket
PGHOST_REAL=$PGD PGPORT_REAL=$PGP
qd "SELECT pg_reload_conf()" postgres >/dev/null || fail "reload"
qd "CREATE TABLE ackcheck (run text, client int, seq int, attempt int, payload bigint);
    CREATE INDEX ON ackcheck (run, client, seq); ALTER TABLE ackcheck OWNER TO app;
    CREATE TABLE blob (id int PRIMARY KEY, t text); ALTER TABLE blob OWNER TO app" >/dev/null || fail "tables"
got=$(timeout 20 psql -X -Atq -c "SELECT inet_server_addr()" "host=$NS_IP port=$PGP dbname=app user=postgres") ||
	fail "PostgreSQL is not reachable through the tunnel at $NS_IP:$PGP"
assert_eq "$NS_IP" "${got%/32}" "PostgreSQL answers on the namespace's address"
note "PostgreSQL in netns $NS at $NS_IP:$PGP (TUN $TUN_HOST <-> $TUN_NS through tunem), socket $PGD"

# ---------------------------------------------------------------- pgring, the bystander, memory
start_netem_pgring() { # MODE POOL_SIZE
	start_pgring "
[databases]
app = host=$NS_IP port=$PGP dbname=app
other = host=$PGD port=$PGP dbname=app
[pgring]
auth_type = md5
pool_mode = $1
default_pool_size = $2
max_client_conn = 200
shards = 2
server_login_retry = 0.2
server_connect_timeout = 2
query_wait_timeout = 6
tcp_keepidle = 2
tcp_keepintvl = 1
tcp_keepcnt = 3
tcp_user_timeout = 5000
"
	RSS_BASE=$(rss_kb)
}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$POOLER_PID/status"; }
# check_rss WHAT: pgring alive and its RSS within RSS_BASE + RSS_GROWTH_MB
check_rss() {
	alive "$POOLER_PID" || fail "$1: pgring died"
	local now
	now=$(rss_kb)
	note "$1: pgring RSS $((now / 1024)) MB (started at $((RSS_BASE / 1024)) MB; bound +$RSS_GROWTH_MB MB)"
	assert_num_cmp "$now" -le $((RSS_BASE + RSS_GROWTH_MB * 1024)) "$1: RSS within the bound"
}

# the bystander: 2 clients at 100 transactions a second on `other`, every one
# logged, for SECONDS (the phases after that run without it: waiting for it to
# end would only lengthen the test)
bystander_start() { # SECONDS
	rm -rf "$TEST_TMP/by"
	mkdir -p "$TEST_TMP/by"
	echo 'SELECT 1;' >"$TEST_TMP/by/script"
	(cd "$TEST_TMP/by" && PGPASSWORD=app pgbench -n -f script -c 2 -j 2 -R 100 -T "$1" -l --log-prefix=tx \
		"host=127.0.0.1 port=$PORT dbname=other user=app" >out 2>err; echo $? >rc) &
	BY_PID=$!
	track_pid "$BY_PID"
	on_exit "kill_wait $BY_PID"
}
# bystander_check WHAT: no failure, the 99.9th percentile under OTHERS_MS
# (latency from the actual start, without pgbench's schedule lag: $3 - $7)
bystander_check() {
	wait_exit "$BY_PID" 300 || fail "$1: the bystander pgbench did not end"
	local n p999 max
	assert_eq 0 "$(cat "$TEST_TMP/by/rc")" "$1: the bystander's status ($(grep -m1 -E 'ERROR|FATAL|abort' "$TEST_TMP/by/err"))"
	read -r n p999 max < <(cat "$TEST_TMP/by"/tx.* | awk '{ print int(($3 - (NF >= 7 ? $7 : 0)) / 1000) }' | sort -n |
		awk '{ v[NR] = $1 } END { i = int(NR * 0.999); if (i < 1) i = 1; print NR, v[i] + 0, v[NR] + 0 }')
	note "$1: bystander on the other pool: $n transactions, 99.9th percentile $p999 ms, max $max ms"
	assert_num_cmp "$n" -gt 100 "$1: the bystander was served"
	assert_num_cmp "$p999" -lt "$OTHERS_MS" "$1: the bystander's latency (99.9th percentile)"
}

# ---------------------------------------------------------------- the faults
# fault NAME (ackphase.sh): the impairment for FAULT_S seconds, then clear; the
# figures are deltas of tunem's and the kernels' counters over the window
FAULT_S=4 BULK=0
# window CMD...: apply the tunem commands, hold FAULT_S seconds, clear; sets the
# D_* deltas (tunem: lost dup late cut in; kernels: retrans ofo dsack); with
# BULK=1 a bulk reader runs beside (bulk_start)
window() {
	local c k t0
	local -A a=()
	for k in lost dup late cut in; do a[$k]=$(emstat "$k"); done
	a[retrans]=$(kstat TcpRetransSegs) a[ofo]=$(kstat TcpExtTCPOFOQueue) a[dsack]=$(kstat TcpExtTCPDSACKOldSent)
	((BULK)) && bulk_start
	for c in "$@"; do em "$c" >/dev/null; done
	t0=$(now_ms)
	sleep "$FAULT_S"
	em clear >/dev/null
	((BULK)) && bulk_check "$*"
	HEALED_MS=$(now_ms)
	WINDOW_MS=$((HEALED_MS - t0))
	for k in lost dup late cut in; do printf -v "D_$k" %d $(($(emstat "$k") - a[$k])); done
	D_retrans=$(($(kstat TcpRetransSegs) - a[retrans]))
	D_ofo=$(($(kstat TcpExtTCPOFOQueue) - a[ofo]))
	D_dsack=$(($(kstat TcpExtTCPDSACKOldSent) - a[dsack]))
	FAULT_NOTE="$* for $WINDOW_MS ms: $D_in packets, tunem lost $D_lost, duplicated $D_dup, delivered late $D_late, cut $D_cut; TCP retransmitted $D_retrans, queued out of order $D_ofo, DSACKs sent $D_dsack"
}
# bulk_start / bulk_check: beside the workload, a client reading a 4 MB result
# through pgring over and over (multi-segment flights, so that TCP's
# out-of-order queue sees the reordering); every copy must match PostgreSQL's
BULK_SQL="COPY (SELECT g, md5(g::text) FROM generate_series(1, 100000) g) TO STDOUT"
bulk_start() {
	: >"$TEST_TMP/bulk.md5"
	: >"$TEST_TMP/bulk.run"
	(while [[ -e $TEST_TMP/bulk.run ]]; do
		timeout 60 psql -X -Atq -v ON_ERROR_STOP=1 -c "$BULK_SQL" "$(conninfo)" | md5sum | cut -d' ' -f1 >>"$TEST_TMP/bulk.md5"
	done) &
	BULK_PID=$!
	track_pid "$BULK_PID"
	on_exit "kill_wait $BULK_PID"
}
bulk_check() { # WHAT
	rm -f "$TEST_TMP/bulk.run"
	wait_exit "$BULK_PID" 70 || fail "$1: the bulk reader did not end"
	[[ -n ${BULK_WANT:-} ]] || BULK_WANT=$(qd "$BULK_SQL" | md5sum | cut -d' ' -f1)
	local n bad
	n=$(wc -l <"$TEST_TMP/bulk.md5")
	bad=$(grep -cv "^$BULK_WANT\$" "$TEST_TMP/bulk.md5")
	assert_num_cmp "$n" -gt 0 "$1: 4 MB results read through the fault"
	assert_eq 0 "$bad" "$1: results of the $n read that differ from PostgreSQL's"
	FAULT_NOTE+="; $n 4 MB results read beside, all identical to PostgreSQL's"
}
# recovery: ms from HEALED_MS until a new client's query through the tunnel works
recovery() {
	wait_until 30 eval 'Q_TIMEOUT=5 q "SELECT 1" >/dev/null 2>&1' || fail "no query through pgring 30 s after healing"
	FAULT_NOTE+="; a new client's first query $(($(now_ms) - HEALED_MS)) ms after healing"
}
fault() {
	# the clients never stop for these, so "recovered" needs less time after
	FAULT_QUIET=1 FAULT_HITS=0 FAULT_SETTLE=2.5
	case $1 in
	delay)
		window "delay 20"
		FAULT_HITS=$D_in
		;;
	loss)
		window "loss 5"
		FAULT_HITS=$((D_lost > 0 && D_retrans > 0))
		;;
	reorder)
		# 20 % of the packets held 8 ms behind the rest (which take 1-4 ms)
		BULK=1 window "delay 1 3" "reorder 20 8"
		FAULT_HITS=$((D_late > 0 && D_ofo > 0))
		;;
	dup)
		BULK=1 window "dup 20"
		FAULT_HITS=$((D_dup > 0 && D_dsack > 0))
		;;
	mix)
		BULK=1 window "delay 2 4" "loss 2" "dup 5" "reorder 10 10"
		FAULT_HITS=$((D_lost > 0 && D_dup > 0 && D_late > 0 && D_ofo > 0))
		;;
	partition-heals)
		# 3 s: under every timeout, so the clients only wait
		FAULT_S=3 window partition
		FAULT_HITS=$D_cut
		recovery
		FAULT_SETTLE=3.5
		;;
	partition-long)
		# 12 s: beyond tcp_user_timeout, keepalive and query_wait_timeout, so
		# the clients get errors, and their COMMITs in flight end unknown
		FAULT_S=12 window partition
		FAULT_HITS=$D_cut
		FAULT_QUIET=0
		recovery
		# the unknown attempts' backends end by PostgreSQL's own timeouts
		# (5 s) before their clients retry
		FAULT_SETTLE=8
		;;
	*) fail "no fault $1" ;;
	esac
}

# ---------------------------------------------------------------- transaction pooling
start_netem_pgring transaction 4
bystander_start 60
for f in delay loss reorder dup mix partition-heals partition-long; do
	phase transaction "$f"
	check_rss "transaction/$f"
done

# a bulk COPY in and out through the mix, byte for byte
awk -v s="$SEED" 'BEGIN { srand(s); for (i = 1; i <= 120000; i++) printf "%d\t%08x%08x%08x%08x\n", i, rand() * 4294967295, rand() * 4294967295, rand() * 4294967295, rand() * 4294967295 }' >"$TEST_TMP/blob.tsv"
want_md5=$(md5sum <"$TEST_TMP/blob.tsv" | cut -d' ' -f1)
a_late=$(emstat late) a_lost=$(emstat lost) a_dup=$(emstat dup)
em "delay 2 4" >/dev/null && em "loss 2" >/dev/null && em "dup 5" >/dev/null && em "reorder 10 10" >/dev/null
t0=$(now_ms)
q "\\copy blob FROM '$TEST_TMP/blob.tsv'" || fail "COPY in through the mix"
t1=$(now_ms)
got_md5=$(timeout 120 psql -X -Atq -v ON_ERROR_STOP=1 -c "COPY (SELECT * FROM blob ORDER BY id) TO STDOUT" "$(conninfo)" | md5sum | cut -d' ' -f1)
t2=$(now_ms)
em clear >/dev/null
note "bulk: $(wc -c <"$TEST_TMP/blob.tsv") bytes in $((t1 - t0)) ms and out in $((t2 - t1)) ms through the mix; tunem lost $(($(emstat lost) - a_lost)), duplicated $(($(emstat dup) - a_dup)), delivered late $(($(emstat late) - a_late))"
assert_eq "$want_md5" "$got_md5" "bulk COPY out: the md5 of what came back"
assert_eq "$want_md5" "$(qd "COPY (SELECT * FROM blob ORDER BY id) TO STDOUT" | md5sum | cut -d' ' -f1)" "bulk COPY in: the md5 of what PostgreSQL stored"
pass "a 120,000-row COPY in and out through loss, duplication and reordering arrives byte for byte"

bystander_check transaction
stop_pgring || fail "pgring did not stop"

# ---------------------------------------------------------------- session pooling
start_netem_pgring session $((NCL + 4))
bystander_start 30
for f in mix partition-heals partition-long; do
	phase session "$f"
	check_rss "session/$f"
done
bystander_check session
stop_pgring || fail "pgring did not stop"

ack_summary
