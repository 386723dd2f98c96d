#!/usr/bin/env bash
# t_faults2: the rest of issue 17 point 4's faults (t_faults has delay,
# partitions, a stopped backend and clients that stop reading), each with
# figures printed as notes and bounds asserted: no crash, pgring's RSS within a
# bound, clear errors to the clients affected, no effect on the others, and the
# recovery time once the fault ends.
#   A. slowloris: real libpq clients (pqgroup) whose bytes reach pgring at one a
#      second through tests/integration/faultproxy.c (`trickle`): 200 on the
#      startup packet (client_startup_timeout), 200 on the password message
#      (client_login_timeout), 200 on their first query after login (it holds no
#      server; client_idle_timeout of their database ends them), and 2 x pool
#      size inside a transaction block (idle_transaction_timeout);
#   B. half-open connections: 1000 logged-in clients that vanish without FIN
#      or RST (faultproxy `vanish`: their segments are dropped by a socket
#      filter, so pgring's keepalive probes go unanswered; tcp_keepidle, intvl
#      and cnt reap them), then a flood of 8000 that complete TCP and send
#      nothing, from 4 processes (client_startup_timeout reaps them);
#   C. the pool budget exhausted for 2 minutes: long transactions hold every
#      server of a pool, newcomers get query_wait_timeout, and the recovery once
#      the holders finish; meanwhile
#   D. packet loss between pgring and PostgreSQL (2 %, then 10 %): faultproxy
#      `loss`, a classic BPF socket filter (SKF_AD_RANDOM) on the proxy's
#      sockets, drops segments in TCP itself, so both ends retransmit as across
#      a lossy link (this kernel has no sch_netem and no nft/iptables binaries).
#      Reordering and duplication cannot be made here: see README "Faults".
#      Then every segment lost (a partition that does not heal, at the TCP
#      level) with the pool idle: keepalive finds its servers dead.
# The bystander is `other`, a pool of its own on the same PostgreSQL database,
# under pgbench the whole time ("no effect on others"). One pgring for all
# phases; the RSS bound is on the growth within each phase.
. "$(dirname "$0")/lib.sh"
pgring_only "pgring's timeouts, figures and memory bounds"

FPBIN=$HELPERS/faultproxy
PQTRY=$HELPERS/pqtry PQGROUP=$HELPERS/pqgroup
[[ -x $FPBIN && -x $PQTRY && -x $PQGROUP ]] || fail "helpers $FPBIN, $PQTRY and $PQGROUP not built"
command -v curl >/dev/null || fail "curl is needed (tools/setup installs it)"

# RSS bound: growth over the RSS at the start of each phase. 1000 connections
# held cost a few MB (figures below); 48 MB leaves room for the allocator on a
# loaded machine, and is the bound t_faults uses.
RSS_GROWTH_MB=48
[[ $PGRING_BIN == *asan* ]] && RSS_GROWTH_MB=400
# Others' latency bound: 2.5 s, as t_faults: on this shared 2-core machine load
# spikes alone give 1 s transactions to every pool now and then.
OTHERS_MS=2500
# Slack over each timeout for an error to reach a client: pgring checks its
# timeouts every 100 ms; the rest is for the load of clients, pgbench and
# PostgreSQL on the same 2 cores.
SLACK_MS=4000
# Where a faultproxy stands between the clients and pgring, pgring's own
# timing is what the proxy measured from its connect to pgring until pgring
# closed (stats life_*): that is held to PROXY_SLACK_MS. The clients' end, which
# also holds the proxy's accept and the machine's load, is held to
# CLIENT_LATE_MS (with pqgroup's clients in one process, 3009..3119 ms for a
# 3 s timeout on a quiet machine).
PROXY_SLACK_MS=2000
CLIENT_LATE_MS=$SLACK_MS

FLOOD_PIDS= WAITER_PIDS=
N_SLOW=${FAULTS2_SLOW:-200}          # slowloris clients per kind (A)
N_FLOOD=${FAULTS2_FLOOD:-8000}       # silent connections (B), over 4 processes
N_VANISH=${FAULTS2_VANISH:-1000}     # logged-in clients that vanish (B)
HOLD=${FAULTS2_HOLD:-122}            # seconds the pool budget stays exhausted (C)
WAITERS=40                           # newcomers trying at once during C

STARTUP_T=3 LOGIN_T=5 IDLE_T=8 INTXN_T=3 WAIT_T=5
KEEPIDLE=3 KEEPINTVL=1 KEEPCNT=3

# ---------------------------------------------------------------- helpers

finding() {
	note "FINDING: $*"
	[[ ${FAULTS_STRICT:-0} == 1 ]] && fail "finding (FAULTS_STRICT=1): $*"
	return 0
}

ms_now() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

declare -A FP_PORT=() FP_CTL=()
# fp_start NAME TARGET_PORT: a faultproxy on a free port in front of TARGET_PORT
fp_start() {
	local name=$1 port ctl pid
	read -r port ctl < <(freeports 2 | xargs)
	"$FPBIN" -l "$port" -t "$2" -c "$ctl" ${FP_VERBOSE:-} >"$TEST_TMP/fp-$name.log" 2>&1 &
	pid=$!
	track_pid "$pid"
	on_exit "kill_wait $pid"
	FP_PORT[$name]=$port
	FP_CTL[$name]=$ctl
	wait_until 5 tcp_open 127.0.0.1 "$ctl" || fail "faultproxy $name did not start: $(cat "$TEST_TMP/fp-$name.log")"
}
# fpc NAME COMMAND: one command to a faultproxy; its "ok ..." reply printed
fpc() {
	local name=$1
	shift
	faultproxy_cmd "${FP_CTL[$name]}" "$@"
}

# metrics_get: pgring's /metrics into stdout (its own file, so background samplers do not clash)
metrics_get() { curl -s --max-time 5 "http://127.0.0.1:$CONTROL_PORT/metrics"; }
# msum NAME [LABEL_SUBSTRING...]: the sum of NAME's series whose labels contain every substring (from stdin)
msum() {
	local name=$1
	shift
	awk -v name="$name" -v want="$*" 'BEGIN { n = split(want, w, " ") }
		/^#/ { next }
		{ series = $1; base = series; sub(/\{.*/, "", base); if (base != name) next
		  for (i = 1; i <= n; i++) if (!index(series, w[i])) next
		  s += $NF }
		END { printf "%d\n", s }'
}
clients_open() { metrics_get | msum pgring_shard_clients; }
pool_clients() { metrics_get | msum pgring_pool_clients "database=\"$1\"" "state=\"$2\""; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$POOLER_PID/status" 2>/dev/null || echo 0; }
# rss_start: sample pgring's RSS and open client sockets every 100 ms until
# rss_stop, which sets RSS_PEAK (kB) and CLIENTS_PEAK
RSS_SAMPLER=
rss_start() {
	RSS_BASE=$(rss_kb)
	CLIENTS_BASE=$(clients_open)
	echo "$RSS_BASE $CLIENTS_BASE" >"$TEST_TMP/rss.peak"
	(
		peak=0 cpeak=0
		while :; do
			r=$(rss_kb)
			c=$(clients_open)
			((r > peak)) && peak=$r
			((c > cpeak)) && cpeak=$c
			echo "$peak $cpeak" >"$TEST_TMP/rss.peak.new"
			mv "$TEST_TMP/rss.peak.new" "$TEST_TMP/rss.peak"
			echo "$(ms_now) $c" >>"$TEST_TMP/clients.log"
			sleep 0.1
		done
	) &
	RSS_SAMPLER=$!
	track_pid "$RSS_SAMPLER"
	on_exit "kill -KILL $RSS_SAMPLER"
}
rss_stop() {
	kill_wait "$RSS_SAMPLER" KILL 2>/dev/null
	read -r RSS_PEAK CLIENTS_PEAK <"$TEST_TMP/rss.peak"
}
# check_rss WHAT: pgring alive, RSS peak within RSS_BASE + RSS_GROWTH_MB, /health 200
check_rss() {
	alive "$POOLER_PID" || fail "$1: pgring died"
	local grow=$(((RSS_PEAK - RSS_BASE) / 1024))
	note "$1: pgring RSS peak $((RSS_PEAK / 1024)) MB (+$grow MB over $((RSS_BASE / 1024)) MB; bound +$RSS_GROWTH_MB MB), client sockets peak $CLIENTS_PEAK"
	assert_num_cmp "$RSS_PEAK" -le $((RSS_BASE + RSS_GROWTH_MB * 1024)) "$1: RSS within the bound"
	assert_eq 200 "$(health_status)" "$1: /health"
}

# bench_start NAME DB CLIENTS SECONDS [PGBENCH_ARGS...]: pgbench -S through pgring
# in the background, every transaction logged in $TEST_TMP/NAME/ (the bystanders
# run at -R 200: what they measure is latency, and they leave the 2 cores to
# the fault; with --rate the logged time ($3) counts from the scheduled start,
# so it includes the schedule lag ($7): a pgbench starved of CPU, or whose 2
# connections cannot keep up with 200 a second on a loaded machine, falls
# behind and its times grow by seconds while each transaction is fast. The
# figures below use the time a transaction took from its actual start, $3 - $7)
declare -A BENCH_PID=()
bench_start() {
	local name=$1 db=$2 c=$3 t=$4 j=2
	shift 4
	((c < j)) && j=$c
	rm -rf "${TEST_TMP:?}/$name"
	mkdir -p "$TEST_TMP/$name"
	(cd "$TEST_TMP/$name" && PGPASSWORD=app pgbench -n -S -c "$c" -j "$j" -T "$t" -l --log-prefix=tx "$@" \
		"host=127.0.0.1 port=$PORT dbname=$db user=app" >out 2>err; echo "$? $(ms_now)" >end) &
	BENCH_PID[$name]=$!
	track_pid "$!"
}
# bench_wait NAME: BENCH_RC, BENCH_ABORTED, BENCH_ERR (first error line), BENCH_END (epoch ms)
bench_wait() {
	local name=$1
	wait_exit "${BENCH_PID[$name]}" 200 || fail "pgbench $name did not end"
	read -r BENCH_RC BENCH_END <"$TEST_TMP/$name/end" || fail "pgbench $name: no end record"
	BENCH_ABORTED=$(grep -cE 'client [0-9]+ (script [0-9]+ )?aborted' "$TEST_TMP/$name/err")
	BENCH_ERR=$(grep -m1 -E 'FATAL|ERROR|aborted' "$TEST_TMP/$name/err" | cut -c1-200)
	cat "$TEST_TMP/$name"/tx.* >"$TEST_TMP/$name/all" 2>/dev/null
}
# bench_window NAME FROM_MS TO_MS: "N TPS MAX_LATENCY_MS" of the transactions
# that ended in [FROM, TO) (latency from the actual start: without schedule lag)
bench_window() {
	awk -v a="$2" -v b="$3" '{ end = $5 * 1000 + $6 / 1000; t = $3 - (NF >= 7 ? $7 : 0)
			if (end >= a && end < b) { n++; if (t > m) m = t } }
		END { printf "%d %d %d\n", n, (b > a) ? n * 1000 / (b - a) : 0, m / 1000 }' "$TEST_TMP/$1/all"
}
# bench_recovery NAME FROM_MS TPS: ms from FROM to the end of the first 100 ms bin
# with at least half of TPS, counting transactions that began after FROM (-1:
# never); began: really sent, not scheduled (a pgbench -R that fell behind
# during the fault catches up after it with transactions scheduled before)
bench_recovery() {
	awk -v h="$2" -v tps="$3" '{ end = $5 * 1000 + $6 / 1000; start = end - ($3 - (NF >= 7 ? $7 : 0)) / 1000
			if (start >= h) bin[int((end - h) / 100)]++ }
		END { for (i = 0; i < 1000; i++) if (bin[i] >= tps / 20) { print (i + 1) * 100; exit } print -1 }' \
		"$TEST_TMP/$1/all"
}
# others_ok NAME WHAT: the bystander pgbench NAME ended without an aborted
# client and its slowest transaction was under OTHERS_MS
# (99.9th percentile; a slowest one over OTHERS_MS but under 15 s is printed as
# a FINDING. Twice in nine runs a "stall" of 3.5-4 s hit the other pool during
# the 2-minute phase C, when these times still included pgbench's schedule lag)
others_ok() {
	bench_wait "$1"
	local n tps lat p999 at lag
	read -r n tps lat < <(bench_window "$1" 0 99999999999999)
	p999=$(awk '{ print int(($3 - (NF >= 7 ? $7 : 0)) / 1000) }' "$TEST_TMP/$1/all" | sort -n | awk '{ v[NR] = $1 } END { i = int(NR * 0.999); if (i < 1) i = 1; print v[i] + 0 }')
	lag=$(awk 'NF >= 7 && $7 > m { m = $7 } END { print int(m / 1000) }' "$TEST_TMP/$1/all")
	note "$2: other pool $n transactions, 99.9th percentile $p999 ms, max latency $lat ms (pgbench's schedule lag, not counted: up to $lag ms)"
	assert_eq 0 "$BENCH_ABORTED" "$2: the other pool's clients ($BENCH_ERR)"
	assert_eq 0 "$BENCH_RC" "$2: the other pool's pgbench status"
	assert_num_cmp "$n" -gt 0 "$2: the other pool is served"
	assert_num_cmp "$p999" -lt "$OTHERS_MS" "$2: the other pool's latency (99.9th percentile)"
	assert_num_cmp "$lat" -lt 15000 "$2: the other pool's slowest transaction"
	if ((lat >= OTHERS_MS)); then
		at=$(awk -v m="$lat" 'int(($3 - (NF >= 7 ? $7 : 0)) / 1000) == m { printf "ended %d ms after the pool began", $5 * 1000 + $6 / 1000 - s; exit } NR == 1 { s = $5 * 1000 + $6 / 1000 }' "$TEST_TMP/$1/all")
		finding "$2: one transaction of the other pool took $lat ms ($at; load average $(cut -d' ' -f1-3 /proc/loadavg))"
	fi
}

# group_start NAME COUNT CONNINFO SQL...: COUNT libpq clients at once, in the
# background, from one process (pqgroup). 600 pqtry processes starting at once
# took the two CPUs from pgring and the fault proxies: a CI run saw a
# connection outlive client_startup_timeout by 4 s at the proxy, while pgring
# cuts them 3.0-3.2 s after it accepts them. Each client writes "RC
# ELAPSED_MS OUTPUT" to $TEST_TMP/NAME/I. GROUP_PID[NAME]
declare -A GROUP_PID=()
group_start() {
	local name=$1 n=$2 ci=$3
	shift 3
	rm -rf "${TEST_TMP:?}/$name"
	mkdir -p "$TEST_TMP/$name"
	"$PQGROUP" "$TEST_TMP/$name" "$n" "$ci" "$@" >"$TEST_TMP/$name.log" 2>&1 &
	GROUP_PID[$name]=$!
	track_pid "$!"
}
# group_check NAME TIMEOUT_MS ERE WHAT [LATE_MS [PROXY]]: every client failed
# (pqtry status 2 or 3) with an output matching ERE, none before TIMEOUT_MS -
# 200, none after TIMEOUT_MS + LATE_MS (default SLACK_MS); with PROXY, that
# faultproxy saw pgring end every one of its connections between TIMEOUT_MS -
# 200 and TIMEOUT_MS + PROXY_SLACK_MS after it made them; prints the figures
group_check() {
	local name=$1 tmo=$2 ere=$3 what=$4 late=${5:-$SLACK_MS} proxy=${6:-} n
	wait_exit "${GROUP_PID[$name]}" 120 || fail "$what: clients still running after 120 s"
	n=$(ls "$TEST_TMP/$name" | wc -l)
	assert_eq "$GROUP_N" "$n" "$what: every client reported"
	local rcs ok minms maxms msgs
	rcs=$(cat "$TEST_TMP/$name"/* | awk '{ print $1 }' | sort | uniq -c | tr -s ' ' | tr '\n' ';')
	ok=$(cat "$TEST_TMP/$name"/* | grep -cE "^[23] [0-9]+ .*($ere)")
	read -r minms maxms < <(cat "$TEST_TMP/$name"/* | awk 'NR == 1 { a = $2; b = $2 } { if ($2 < a) a = $2; if ($2 > b) b = $2 } END { print a, b }')
	msgs=$(cat "$TEST_TMP/$name"/* | cut -d' ' -f3- | sed -E 's/port [0-9]+/port N/; s/[0-9]{5,}/N/g' | sort | uniq -c | sort -rn | head -3 | tr -s ' ' | tr '\n' ';')
	note "$what: $n clients, statuses [$rcs], ended after $minms..$maxms ms (timeout $tmo ms); errors: $msgs"
	assert_eq "$n" "$ok" "$what: every client got the error ($msgs)"
	assert_num_cmp "$minms" -ge $((tmo - 200)) "$what: no client was cut before the timeout"
	assert_num_cmp "$maxms" -le $((tmo + late)) "$what: every client was cut within the timeout (+$late ms)"
	GROUP_MAX=$maxms
	[[ $proxy ]] || return 0
	local st ended lmin lmax
	st=$(fpc "$proxy" stats)
	ended=$(grep -oE 'ended=[0-9]+' <<<"$st" | cut -d= -f2)
	lmin=$(grep -oE 'life_min_ms=[0-9]+' <<<"$st" | cut -d= -f2)
	lmax=$(grep -oE 'life_max_ms=[0-9]+' <<<"$st" | cut -d= -f2)
	note "$what: pgring ended its $ended connections from faultproxy $proxy $lmin..$lmax ms after they were made"
	assert_eq "$n" "$ended" "$what: pgring ended every connection of faultproxy $proxy"
	assert_num_cmp "$lmin" -ge $((tmo - 200)) "$what: pgring cut no connection before the timeout"
	assert_num_cmp "$lmax" -le $((tmo + PROXY_SLACK_MS)) "$what: pgring cut every connection within the timeout (+$PROXY_SLACK_MS ms)"
	GROUP_MAX=$lmax
}

# probe DB: one SELECT 1 through pgring with pqtry; "RC MS OUTPUT"
probe() {
	local t0 out rc
	t0=$(ms_now)
	out=$(timeout 60 "$PQTRY" "$(conninfo "$1")" "SELECT 1" 2>&1)
	rc=$?
	echo "$rc $(($(ms_now) - t0)) ${out//$'\n'/ }"
}

# ---------------------------------------------------------------- pgring

# the lossy path: pgring -> faultproxy D -> PostgreSQL
FP_VERBOSE=-v fp_start D "$PGPORT_REAL"
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app client_idle_timeout=$IDLE_T
other = host=@PGHOST@ port=@PGPORT@ dbname=app
half = host=@PGHOST@ port=@PGPORT@ dbname=app
busy = host=@PGHOST@ port=@PGPORT@ dbname=app
lossy = host=127.0.0.1 port=${FP_PORT[D]} dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 4
shards = 2
max_client_conn = 15000
max_client_logins = 20000
client_startup_timeout = $STARTUP_T
client_login_timeout = $LOGIN_T
idle_transaction_timeout = $INTXN_T
query_wait_timeout = $WAIT_T
server_connect_timeout = 3
tcp_keepalive = 1
tcp_keepidle = $KEEPIDLE
tcp_keepintvl = $KEEPINTVL
tcp_keepcnt = $KEEPCNT
"
for k in S L Q T V; do fp_start "$k" "$PORT"; done
note "faultproxies: S ${FP_PORT[S]}, L ${FP_PORT[L]}, Q ${FP_PORT[Q]}, T ${FP_PORT[T]}, V ${FP_PORT[V]} -> pgring $PORT; D ${FP_PORT[D]} -> PostgreSQL $PGPORT_REAL"
note "pgring's descriptor limit: $(awk '/Max open files/ { print $4 }' "/proc/$POOLER_PID/limits")"
assert_eq 1 "$(Q_DB=lossy q "SELECT 1")" "a query through the lossy path"
bench_start warm app 4 2
bench_start warm2 other 4 2
bench_wait warm
bench_wait warm2
note "pgring RSS after warm-up: $(($(rss_kb) / 1024)) MB"
T_ALL=$(ms_now)

# ---------------------------------------------------------------- A. slowloris

ci_via() { echo "host=127.0.0.1 port=${FP_PORT[$1]} dbname=${2:-app} user=app password=app"; }
rss_start
bench_start a_other other 2 16 -R 200
bench_start a_app app 2 16 -R 200
sleep 1
fpc S "trickle 1 0" >/dev/null   # the startup packet, byte by byte
fpc L "trickle 1 1" >/dev/null   # the password message
fpc Q "trickle 1 2" >/dev/null   # the first query after login
PAD="SELECT 1 AS slowloris_$(printf 'x%.0s' {1..40})"
t_a=$(ms_now)
group_start slow_startup "$N_SLOW" "$(ci_via S)" "SELECT 1"
group_start slow_login "$N_SLOW" "$(ci_via L)" "SELECT 1"
group_start slow_query "$N_SLOW" "$(ci_via Q)" "$PAD"
sleep 2.5
note "slowloris after 2.5 s: startup proxy: $(fpc S stats | grep -oE 'conns=[0-9]+|trickling=[0-9]+' | tr '\n' ' ')," \
	"login: $(fpc L stats | grep -oE 'trickling=[0-9]+'), query: $(fpc Q stats | grep -oE 'trickling=[0-9]+')"
GROUP_N=$N_SLOW
group_check slow_startup $((STARTUP_T * 1000)) "08P01 .*client_startup_timeout" "slowloris on the startup packet" \
	"$CLIENT_LATE_MS" S
group_check slow_login $((LOGIN_T * 1000)) "08P01 .*client_login_timeout" "slowloris on the password message" \
	"$CLIENT_LATE_MS" L
# the idle timer starts at login, which comes after the connect: a client is
# cut IDLE_T s after its login, more than IDLE_T s after it started
group_check slow_query $((IDLE_T * 1000)) "08P01 .*client_idle_timeout" "slowloris on the first query after login" \
	"$CLIENT_LATE_MS" Q
note "slowloris: ${N_SLOW} x 3 clients all ended $(($(ms_now) - t_a)) ms after they began"
others_ok a_other "slowloris"
# the app pool's own clients are not held up either: the query tricklers hold no server
bench_wait a_app
read -r n _ lat < <(bench_window a_app 0 99999999999999)
note "slowloris: the tricklers' own pool (app): $n transactions by pgbench beside them, max latency $lat ms"
assert_eq 0 "$BENCH_ABORTED" "slowloris: app's other clients ($BENCH_ERR)"
assert_num_cmp "$lat" -lt "$OTHERS_MS" "slowloris: app's other clients' latency (a trickled query holds no server)"
rss_stop
check_rss "slowloris ($((3 * N_SLOW)) clients)"
note "slowloris: pgring RSS per trickling client: $(((RSS_PEAK - RSS_BASE) * 1024 / (3 * N_SLOW))) bytes"
pass "slowloris: $N_SLOW clients each on startup, password and first query cut by client_startup_timeout, client_login_timeout and client_idle_timeout; others unaffected"

# --- inside a transaction block: 2 x pool size tricklers hold every app server
rss_start
bench_start t_other other 2 12 -R 200
fpc T "trickle 1 3" >/dev/null   # BEGIN goes at full speed, then the next query trickles
t_t=$(ms_now)
GROUP_N=8
group_start slow_block 8 "$(ci_via T)" "BEGIN" "$PAD" "COMMIT"
sleep 1
pr=$(probe app)
note "slowloris in a block: an app client meanwhile: $pr"
# the first 4 hold the servers until idle_transaction_timeout; the next 4 wait
# for them, then trickle in turn: twice the timeout
group_check slow_block $((INTXN_T * 1000)) "25P03 .*idle_transaction_timeout" "slowloris inside a transaction block" \
	$((INTXN_T * 1000 + SLACK_MS))
# The 4 that waited for a server spent about INTXN_T s waiting before their
# BEGIN was answered: cut before 2 x INTXN_T, they were cut before they had
# been idle in their transaction for idle_transaction_timeout
early=$(cat "$TEST_TMP"/slow_block/* | awk -v b=$((2 * INTXN_T * 1000 - 300)) '$2 < b' | wc -l)
early_inc=$(cat "$TEST_TMP"/slow_block/* | awk -v b=$((2 * INTXN_T * 1000 - 300)) '$2 < b' | grep -c 'a message not complete')
# (the check of a message whose 5-byte header was not complete yet used the
# start of the previous message, the BEGIN sent before the wait: fixed, the
# first byte of a message starts its clock)
assert_num_cmp "$early" -le 4 "idle_transaction_timeout: clients that first waited ~${INTXN_T} s for a server and were cut less than ${INTXN_T} s after their BEGIN was answered ('(a message not complete)': $early_inc)"
t_done=$(ms_now)
read -r rc ms out < <(probe app)
assert_eq 0 "$rc" "slowloris in a block: app serves again ($out)"
note "slowloris in a block: 8 tricklers (pool of 4) all cut by ${GROUP_MAX} ms; an app query afterwards took $ms ms"
others_ok t_other "slowloris in a block"
rss_stop
check_rss "slowloris in a block"
pass "slowloris inside a block: 25P03 idle_transaction_timeout for each, the pool serves again at once, other pool unaffected"

# ---------------------------------------------------------------- B. half-open flood

# B1: logged-in clients that vanish without FIN or RST
rss_start
bench_start v_other other 2 20 -R 200
printf 'SELECT 1;\n\\sleep 60 s\n' >"$TEST_TMP/vanish.sql"
(cd "$TEST_TMP" && PGPASSWORD=app exec pgbench -n -c "$N_VANISH" -j 4 -T 60 -f vanish.sql \
	"host=127.0.0.1 port=${FP_PORT[V]} dbname=half user=app" >vanish.out 2>vanish.err) &
VPG=$!
track_pid "$VPG"
on_exit "kill -KILL $VPG"
wait_until 60 eval '(( $(pool_clients half idle) >= N_VANISH ))' ||
	fail "vanish: only $(pool_clients half idle) of $N_VANISH clients logged in and idle: $(tail -3 "$TEST_TMP/vanish.err")"
sleep 1
t_v=$(ms_now)
vout=$(fpc V vanish)
kill -KILL "$VPG"
wait "$VPG" 2>/dev/null
note "vanish: $vout; pgbench (their client) killed: its FINs stop at the proxy"
wait_until 2 eval '[[ $(fpc V stats) == *" open=0 "* ]]'
note "vanish: proxy $(fpc V stats | grep -oE 'conns=[0-9]+|vanished=[0-9]+' | tr '\n' ' ')"
left=$(pool_clients half idle)
# keepalive: first probe at most tcp_keepidle after the last packet, then tcp_keepcnt probes tcp_keepintvl apart
bound=$(((KEEPIDLE + KEEPINTVL * KEEPCNT) * 1000 + SLACK_MS))
t_first=
while (($(ms_now) - t_v < bound + 5000)); do
	n=$(pool_clients half idle)
	[[ -z $t_first ]] && ((n < left)) && t_first=$(ms_now)
	((n == 0)) && break
	sleep 0.2
done
t_gone=$(ms_now)
n=$(pool_clients half idle)
rss_stop
note "vanish: $left logged-in idle clients vanished; the first reaped $((${t_first:-$t_gone} - t_v)) ms after, all $((t_gone - t_v)) ms after (tcp_keepidle=$KEEPIDLE, tcp_keepintvl=$KEEPINTVL, tcp_keepcnt=$KEEPCNT); $n left"
assert_num_cmp "$left" -ge "$N_VANISH" "vanish: they were logged in when they vanished"
if ((n > 0)); then
	finding "vanish: $n of $left logged-in clients whose peer vanished are still held $((t_gone - t_v)) ms after (keepalive should reap them within $bound ms)"
else
	assert_num_cmp $((t_gone - t_v)) -le "$bound" "vanish: reaped by keepalive"
fi
others_ok v_other "vanish"
check_rss "$left logged-in clients vanished"
note "vanish: pgring RSS per logged-in idle client: $(((RSS_PEAK - RSS_BASE) * 1024 / left)) bytes (peak over the phase, which includes their logins)"
ka=$(cat /proc/sys/net/ipv4/tcp_keepalive_time /proc/sys/net/ipv4/tcp_keepalive_intvl /proc/sys/net/ipv4/tcp_keepalive_probes | xargs)
read -r kt ki kp <<<"$ka"
note "vanish: without tcp_keepidle/intvl/cnt (and client_idle_timeout = 0, the default) such a client is held for this kernel's keepalive: $kt + $kp x $ki s = $((kt + kp * ki)) s"
pass "logged-in clients that vanish: reaped by TCP keepalive in $((t_gone - t_v)) ms, others unaffected"


# B2: connections that complete TCP and never send a byte, from 4 processes
rss_start
bench_start b_other other 2 14 -R 200
( # logins beside the flood: one after another, each timed
	end=$(($(ms_now) + 12000))
	while (($(ms_now) < end)); do probe other; done >"$TEST_TMP/b_logins"
) &
LOGINS=$!
track_pid "$LOGINS"
sleep 1
t_f=$(ms_now)
per=$((N_FLOOD / 4))
for k in 1 2 3 4; do
	(
		n=0
		for ((i = 0; i < per; i++)); do
			exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || break
			n=$((n + 1))
		done 2>/dev/null
		echo "$n $(ms_now)" >"$TEST_TMP/flood.$k"
		sleep 15
	) &
	track_pid "$!"
	FLOOD_PIDS+=" $!"
done
wait_until 30 eval '[[ $(cat "$TEST_TMP"/flood.* 2>/dev/null | wc -l) == 4 ]]' || fail "flood: the openers did not finish in 30 s"
opened=$(awk '{ s += $1 } END { print s }' "$TEST_TMP"/flood.*)
t_opened=$(awk '{ if ($2 > m) m = $2 } END { print m }' "$TEST_TMP"/flood.*)
note "flood: $opened silent connections opened in $((t_opened - t_f)) ms"
assert_num_cmp "$opened" -ge $((N_FLOOD * 9 / 10)) "flood: the connections were opened"
# all reaped by client_startup_timeout: back to the client sockets open before
wait_until $((STARTUP_T + 15)) eval '(( $(clients_open) <= CLIENTS_BASE + 4 ))' ||
	fail "flood: $(clients_open) client sockets still open $(($(ms_now) - t_opened)) ms after the last connect (before: $CLIENTS_BASE)"
t_reaped=$(ms_now)
wait_exit "$LOGINS" 30 || fail "flood: the login prober did not end"
rss_stop
for p in $FLOOD_PIDS; do kill_wait "$p" KILL 2>/dev/null; done
nl=$(wc -l <"$TEST_TMP/b_logins")
nl_ok=$(grep -c '^0 ' "$TEST_TMP/b_logins")
read -r lmax lavg < <(awk '{ if ($2 > m) m = $2; s += $2 } END { printf "%d %d\n", m, NR ? s / NR : 0 }' "$TEST_TMP/b_logins")
note "flood: peak $CLIENTS_PEAK client sockets; all gone $((t_reaped - t_opened)) ms after the last connect (client_startup_timeout = ${STARTUP_T} s)"
note "flood: new logins beside it: $nl_ok of $nl succeeded, login + query max $lmax ms (mean $lavg ms)"
assert_eq "$nl" "$nl_ok" "flood: every login beside it succeeded ($(grep -v '^0 ' "$TEST_TMP/b_logins" | head -2 | tr '\n' ' '))"
assert_num_cmp "$nl" -gt 0 "flood: logins were tried"
assert_num_cmp "$lmax" -lt "$OTHERS_MS" "flood: login latency beside it"
assert_num_cmp "$CLIENTS_PEAK" -ge $((opened / 2)) "flood: pgring held them (peak client sockets)"
assert_num_cmp $((t_reaped - t_opened)) -le $((STARTUP_T * 1000 + SLACK_MS)) "flood: reaped within client_startup_timeout"
others_ok b_other "flood"
check_rss "flood of $opened silent connections"
note "flood: pgring RSS per silent connection: $(((RSS_PEAK - RSS_BASE) * 1024 / (CLIENTS_PEAK > CLIENTS_BASE ? CLIENTS_PEAK - CLIENTS_BASE : 1))) bytes"
pass "flood of $opened silent connections: held at $(((RSS_PEAK - RSS_BASE) / 1024)) MB, all reaped by client_startup_timeout, others unaffected"

# ---------------------------------------------------------------- C. the pool budget exhausted, D. loss meanwhile

rss_start
bench_start c_other other 2 $((HOLD + 10)) -R 200
mkdir -p "$TEST_TMP/holders"
for i in 1 2 3 4; do
	(
		# its row: the epoch ms at which its sleep ended (PostgreSQL's clock is this machine's)
		out=$(timeout $((HOLD + 60)) "$PQTRY" "$(conninfo busy)" "WITH s AS MATERIALIZED (SELECT pg_sleep($HOLD) /* faults2-holder */)
			SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM s" 2>&1)
		echo "$? $(ms_now) ${out//$'\n'/ }" >"$TEST_TMP/holders/$i"
	) &
	track_pid "$!"
done
wait_until 15 eval '[[ $(qd "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '"'"'%faults2-holder */%'"'"' AND pid <> pg_backend_pid()") == 4 ]]' ||
	fail "exhausted pool: the 4 holders did not start"
t_c=$(ms_now)
c_end=$((t_c + (HOLD + 6) * 1000))
mkdir -p "$TEST_TMP/waiters"
for ((w = 0; w < WAITERS; w++)); do
	(
		while (($(ms_now) < c_end)); do
			t0=$(ms_now)
			out=$(timeout 60 "$PQTRY" "$(conninfo busy)" "SELECT 1" 2>&1)
			rc=$?
			echo "$rc $t0 $(ms_now) ${out//$'\n'/ }"
			((rc == 0)) && sleep 0.5
		done >"$TEST_TMP/waiters/$w"
	) &
	track_pid "$!"
	WAITER_PIDS+=" $!"
	sleep 0.1
done

# D. packet loss on the lossy pool's path, in the first minute of C
sleep 4
# at most 2000 TPS: unbounded, it would take both cores from the newcomers of C
bench_start d_lossy lossy 4 22 -R 2000
sleep 4
t_d1=$(ms_now)
retr0=$(awk '/^Tcp:/ && $2 ~ /^[0-9]/ { print $13 }' /proc/net/snmp)
fpc D "loss 2" >/dev/null
sleep 6
t_d2=$(ms_now)
retr1=$(awk '/^Tcp:/ && $2 ~ /^[0-9]/ { print $13 }' /proc/net/snmp)
fpc D "loss 10" >/dev/null
sleep 6
t_d3=$(ms_now)
fpc D "loss 0" >/dev/null
retr2=$(awk '/^Tcp:/ && $2 ~ /^[0-9]/ { print $13 }' /proc/net/snmp)
bench_wait d_lossy
d_ab=$BENCH_ABORTED d_err=$BENCH_ERR d_rc=$BENCH_RC
read -r _ tps0 lat0 < <(bench_window d_lossy $((t_d1 - 3000)) $((t_d1 - 200)))
read -r _ tps1 lat1 < <(bench_window d_lossy $((t_d1 + 200)) "$t_d2")
read -r _ tps2 lat2 < <(bench_window d_lossy $((t_d2 + 200)) "$t_d3")
read -r _ tps3 lat3 < <(bench_window d_lossy $((t_d3 + 1000)) "$BENCH_END")
rec=$(bench_recovery d_lossy "$t_d3" "$tps0")
note "loss: lossy pool $tps0 TPS (max $lat0 ms) -> 2 %: $tps1 TPS (max $lat1 ms, $((retr1 - retr0)) TCP segments retransmitted machine-wide)" \
	"-> 10 %: $tps2 TPS (max $lat2 ms, $((retr2 - retr1)) retransmitted) -> healed: $tps3 TPS, half the TPS back ${rec} ms after"
assert_eq 0 "$d_ab" "loss: no client of the lossy pool aborted ($d_err)"
assert_eq 0 "$d_rc" "loss: pgbench status"
assert_num_cmp "$tps1" -gt 0 "loss 2 %: transactions go on"
assert_num_cmp "$tps2" -gt 0 "loss 10 %: transactions go on"
assert_num_cmp "$tps2" -lt "$tps0" "loss 10 %: throughput drops"
assert_num_cmp $((retr1 - retr0)) -gt 10 "loss 2 %: TCP retransmits (the segments were lost in TCP)"
assert_num_cmp $((retr2 - retr1)) -gt 10 "loss 10 %: TCP retransmits"
assert_num_cmp "$rec" -ge 0 "loss: throughput recovers"
# a connection whose segment was lost several times running waits out TCP's
# doubled retransmission timer (0.2, 0.4, ... 6.4 s after five losses) even
# once the path is clean: 10 s
assert_num_cmp "$rec" -le 10000 "loss: recovers within TCP's backoff"
pass "packet loss 2 % and 10 %: no errors, slower ($tps0 -> $tps1 -> $tps2 TPS), recovery ${rec} ms"

# D2. a partition at the TCP level that does not heal (every segment lost), with
# the lossy pool idle: its servers' keepalive probes go unanswered, so pgring
# finds them dead instead of handing them to the next client
sleep 1
sv0=$(metrics_get | msum pgring_pool_server_connections 'database="lossy"')
t_p=$(ms_now)
fpc D "loss 100" >/dev/null
bound=$(((KEEPIDLE + KEEPINTVL * KEEPCNT) * 1000 + SLACK_MS))
series=
while (($(ms_now) - t_p < bound + 5000)); do
	sv1=$(metrics_get | msum pgring_pool_server_connections 'database="lossy"')
	series+=" $(($(ms_now) - t_p)):$sv1"
	((sv1 == 0)) && break
	sleep 0.2
done
t_dead=$(ms_now)
note "TCP partition: lossy servers after N ms:$(awk '{ for (i = 1; i <= NF; i++) { split($i, a, ":"); if (a[2] != last) printf " %s", $i; last = a[2] } }' <<<"$series")"
read -r prc pms pout < <(probe lossy)
note "TCP partition that does not heal: $sv0 idle servers of the lossy pool; $sv1 left $((t_dead - t_p)) ms after (keepalive: tcp_keepidle=$KEEPIDLE, tcp_keepintvl=$KEEPINTVL, tcp_keepcnt=$KEEPCNT); a new client meanwhile: status $prc after $pms ms: $pout"
assert_num_cmp "$sv0" -ge 1 "TCP partition: the lossy pool had servers"
assert_eq 0 "$sv1" "TCP partition: keepalive finds every idle server dead"
assert_num_cmp $((t_dead - t_p)) -le "$bound" "TCP partition: within keepalive's time"
assert_ne 0 "$prc" "TCP partition: a new client gets an error"
assert_match "$pout" "query_wait_timeout|server_connect_timeout|client_login_timeout" "TCP partition: the error names the timeout"
assert_num_cmp "$pms" -le $((WAIT_T * 1000 + SLACK_MS)) "TCP partition: the error comes within query_wait_timeout"
t_heal=$(ms_now)
fpc D "loss 0" >/dev/null
rec=-1
while (($(ms_now) - t_heal < 30000)); do
	read -r prc _ _ < <(probe lossy)
	((prc == 0)) && { rec=$(($(ms_now) - t_heal)); break; }
	sleep 0.1
done
note "TCP partition healed: first query through it $rec ms after"
assert_num_cmp "$rec" -ge 0 "TCP partition: queries work again once it heals"
assert_num_cmp "$rec" -le 10000 "TCP partition: within server_login_retry's backoff (5 s) and a connect"
pass "a TCP partition that does not heal: idle servers found dead by keepalive in $((t_dead - t_p)) ms, new clients get $WAIT_T s errors, recovery $rec ms after healing"

# C, the rest: wait for the holders, then for the newcomers
wait_until $((HOLD + 40)) eval '[[ $(ls "$TEST_TMP/holders" | wc -l) == 4 ]]' || fail "exhausted pool: the holders did not finish"
for i in 1 2 3 4; do
	read -r rc _ out <"$TEST_TMP/holders/$i"
	assert_eq 0 "$rc" "exhausted pool: holder $i's transaction ($out)"
	assert_match "$out" "^[0-9]+$" "exhausted pool: holder $i's end time"
done
# when the first and the last sleep ended (the servers are free a moment later)
t_off=$(awk '{ print $3 }' "$TEST_TMP"/holders/* | sort -n | head -1)
t_off_last=$(awk '{ print $3 }' "$TEST_TMP"/holders/* | sort -n | tail -1)
for p in $WAITER_PIDS; do wait_exit "$p" 90 || fail "exhausted pool: a newcomer loop did not end"; done
rss_stop
cat "$TEST_TMP"/waiters/* >"$TEST_TMP/waiters.all"
# attempts that began and ended while the holders held every server
read -r nb nfail_ok wmin wmax < <(awk -v a="$t_c" -v b="$t_off" -v e="query_wait_timeout" '
	$2 >= a && $3 < b { n++; if ($1 != 0 && index($0, "08P01") && index($0, e)) { f++; d = $3 - $2; if (!m || d < m) m = d; if (d > x) x = d } }
	END { printf "%d %d %d %d\n", n, f, m, x }' "$TEST_TMP/waiters.all")
during_ok=$(awk -v a="$t_c" -v b="$t_off" '$2 >= a && $3 < b && $1 == 0' "$TEST_TMP/waiters.all" | wc -l)
first_ok=$(awk -v b="$t_off" '$1 == 0 && $3 >= b { print $3 - b }' "$TEST_TMP/waiters.all" | sort -n | head -1)
after=$(awk -v b="$t_off_last" '$2 > b + 500 { n++; if ($1 == 0) ok++ } END { printf "%d %d\n", ok, n }' "$TEST_TMP/waiters.all")
msg=$(awk -v a="$t_c" -v b="$t_off" '$2 >= a && $3 < b && $1 != 0' "$TEST_TMP/waiters.all" | cut -d' ' -f4- |
	sed -E 's/port [0-9]+/port N/' | sort | uniq -c | sort -rn | head -2 | tr -s ' ' | tr '\n' ';')
note "exhausted pool: 4 holders kept every server of busy for $(((t_off - t_c) / 1000)) s; $WAITERS newcomers at a time made $nb attempts meanwhile:" \
	"$nfail_ok failed with 08P01 query_wait_timeout after $wmin..$wmax ms (query_wait_timeout = ${WAIT_T} s), $during_ok succeeded; errors: $msg"
note "exhausted pool: first newcomer served ${first_ok:--1} ms after the first holder finished (the holders finished within $((t_off_last - t_off)) ms); attempts begun after: ${after% *} of ${after#* } succeeded"
assert_num_cmp $(((t_off - t_c) / 1000)) -ge $((HOLD - 5)) "exhausted pool: held for $HOLD s"
assert_num_cmp "$nb" -ge $((WAITERS * (HOLD / WAIT_T) / 2)) "exhausted pool: newcomers kept trying"
assert_eq "$nb" "$nfail_ok" "exhausted pool: every newcomer got 08P01 query_wait_timeout ($msg)"
assert_eq 0 "$during_ok" "exhausted pool: no newcomer served while every server was held"
assert_num_cmp "$wmin" -ge $((WAIT_T * 1000 - 200)) "exhausted pool: newcomers waited query_wait_timeout"
# the 99th percentile is asserted; a slowest one beyond is a FINDING: twice in
# nine runs a stall of 3-4 s hit the newcomers and the other pool at the same
# moment (pgring's whole loop or this shared machine: not known)
wp99=$(awk -v a="$t_c" -v b="$t_off" '$2 >= a && $3 < b { print $3 - $2 }' "$TEST_TMP/waiters.all" | sort -n |
	awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; print v[i] + 0 }')
note "exhausted pool: newcomers' wait 99th percentile $wp99 ms, slowest $wmax ms"
assert_num_cmp "$wp99" -le $((WAIT_T * 1000 + SLACK_MS)) "exhausted pool: and not much longer (99th percentile)"
assert_num_cmp "$wmax" -le 15000 "exhausted pool: the slowest newcomer's error"
((wmax > WAIT_T * 1000 + SLACK_MS)) &&
	finding "exhausted pool: a newcomer got query_wait_timeout only after $wmax ms (query_wait_timeout = ${WAIT_T} s; see the other pool's latency at the same moment)"
assert_num_cmp "${first_ok:--1}" -ge 0 "exhausted pool: newcomers served once the holders finished"
assert_num_cmp "$first_ok" -le 1000 "exhausted pool: the first served within 1 s"
assert_eq "${after#* }" "${after% *}" "exhausted pool: every attempt after the holders finished succeeded"
others_ok c_other "exhausted pool"
check_rss "exhausted pool ($WAITERS newcomers waiting at a time for $HOLD s)"
pass "pool budget exhausted for $HOLD s: newcomers get 08P01 query_wait_timeout after ${WAIT_T} s, served ${first_ok} ms after the holders finish, other pool unaffected"

alive "$POOLER_PID" || fail "pgring died"
assert_eq 0 "$(grep -c 'AddressSanitizer\|runtime error' "$POOLER_LOG")" "no sanitizer report in pgring's log"
note "t_faults2: $(($(ms_now) - T_ALL)) ms of faults"
