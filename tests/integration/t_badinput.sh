#!/usr/bin/env bash
# t_badinput: pgring against misbehaving clients (tests/integration/badclient.c):
# garbage and malformed startup packets, unsupported protocol versions, SSL/GSS
# requests, bad message lengths, oversized messages, wrong messages during
# authentication, a client that never reads a huge result (RSS must stay bounded
# while others keep working), 200 clients reset at every stage, random cancel
# keys, clients killed mid-COPY, a server dying inside a transaction, a waiting
# client trickling tiny messages, invalid message types (no server spent on
# them). After each scenario pgring must still answer a
# libpq query; at the end it must still run, have logged the protocol errors, and
# answer /health with 200 (asked over bash's /dev/tcp, no curl).
source "$(dirname "$0")/lib.sh"

pgring_only "badclient's expectations (error texts aside) and /health are pgring's"

BADCLIENT=$HELPERS/badclient
[[ -x $BADCLIENT ]] || fail "helper $BADCLIENT not built"

POOL_SIZE=5
MAX_PACKET=$((1024 * 1024))
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = $POOL_SIZE
shards = 2
max_client_conn = 1000
max_packet_size = $MAX_PACKET
" -v

# ASan/UBSan builds carry shadow memory and quarantine: allow them more growth.
RSS_BOUND_MB=64
[[ $PGRING_BIN == *asan* ]] && RSS_BOUND_MB=160


# Groups run as separate badclient invocations so that one failing group does not
# hide the others; every failure is reported at the end.
failures=()
run_group() { # NAME SCENARIOS
	local name=$1 scen=$2 out rc
	out=$(timeout 90 "$BADCLIENT" -h 127.0.0.1 -p "$PORT" -U app -W app -d app -P "$POOLER_PID" \
		-M "$MAX_PACKET" -R "$RSS_BOUND_MB" -S "$POOL_SIZE" ${BADCLIENT_ARGS:-} $(grep -o . <<<"$scen") 2>&1)
	rc=$?
	sed 's/^/#   /' <<<"$out"
	if ((rc != 0)); then
		failures+=("$name (badclient status $rc): $(grep -m1 -E '^FAIL' <<<"$out")")
	else
		pass "$name"
	fi
	alive "$POOLER_PID" || fail "pgring died during '$name'"
}

run_group "protocol and lifecycle abuse" abcdefghijklmnz
run_group "server lost inside a transaction" o
# an invalid message type is refused before it costs a server: no connect
# happens for it (PostgreSQL would close the backend it reached)
run_group "the pool's servers all open" z
connects_before=$(metric pgring_pool_server_connects_total)
run_group "invalid message type after login" q
run_group "the pool's servers still all there" z
connects_after=$(metric pgring_pool_server_connects_total)
assert_eq "$connects_before" "$connects_after" "server connects while clients sent invalid message types"
pass "invalid message types cost no server ($connects_after connects before and after)"
run_group "waiting client trickling tiny messages" p
run_group "clients trickling a first Query" r
run_group "clients leaving mid extended-protocol batch" s
run_group "Syncs around COPY FROM STDIN" t
run_group "requests sent inside a COPY FROM STDIN" w
run_group "the unnamed portal after a failed Query" x
run_group "a Close and a Bind pipelined behind an SQL PREPARE" y
run_group "an invalid message while a large row streams" v
run_group "a half-close while a large row streams" F

# no backend crashed (PostgreSQL 15 does on some streams pgring now refuses)
if grep -q "terminated by signal" "$PGTMP_DIR/log"; then
	fail "a PostgreSQL backend crashed: $(grep -m1 'terminated by signal' "$PGTMP_DIR/log")"
fi
# pgring is still up, logged the protocol errors, and is healthy
alive "$POOLER_PID" || fail "pgring is no longer running"
grep -qE '08P01' "$POOLER_LOG" || fail "no protocol error (08P01) in pgring's log"
grep -qE 'invalid message length' "$POOLER_LOG" || fail "no 'invalid message length' line in pgring's log"
grep -qE '0A000' "$POOLER_LOG" || fail "the unsupported protocol version (0A000) is not in pgring's log"
pass "protocol errors are logged ($(grep -cE '08P01|0A000|28000' "$POOLER_LOG") lines)"
status=$(health_status)
assert_eq 200 "$status" "/health after the campaign"
pass "/health answers 200"
if grep -qE 'ERROR: AddressSanitizer|runtime error:' "$POOLER_LOG"; then
	fail "sanitizer report in pgring's log: $(grep -m1 -E 'AddressSanitizer|runtime error:' "$POOLER_LOG")"
fi

if ((${#failures[@]})); then
	for f in "${failures[@]}"; do echo "# failed: $f"; done
	fail "${#failures[@]} badclient group(s) failed"
fi
exit 0
