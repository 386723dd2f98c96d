#!/usr/bin/env bash
# t_protofuzz: a protocol fuzzer against the running binary (issue 17, point 2),
# tests/integration/protofuzz.c. In transaction, session and statement pooling
# (two shards, pool of 4, auth_type = trust: the raw clients do not authenticate),
# misbehaving raw clients send valid, mutated and truncated message streams
# (flipped bytes, lengths 0/3/huge/off by a few, duplicated and dropped messages,
# junk, cuts mid-message with a reset, interleaved Sync/Flush, COPY messages in and
# out of COPY, CancelRequest storms with random and real keys) while well-behaved
# libpq clients check their own settings, prepared statements and rows against
# what a direct connection gives. Checked: every reply well-formed and every bad
# connection ended by an answer, an ErrorResponse or a close (never a hang),
# zero mismatches for the good clients, pgring alive with its RSS under a bound,
# /health 200 at the end, no sanitizer report in its log.
# PROTOFUZZ_SECONDS (default 24) is the total across the three modes;
# PROTOFUZZ_SEED fixes the seed; PROTOFUZZ_BAD / PROTOFUZZ_GOOD the client counts.
source "$(dirname "$0")/lib.sh"

pgring_only "the fuzzer's invariants are pgring's (PgBouncer keeps no prepared statements or settings per client)"

PF=$HELPERS/protofuzz
[[ -x $PF ]] || fail "helper $PF not built"

TOTAL=${PROTOFUZZ_SECONDS:-24}
PER_MODE=$(((TOTAL + 2) / 3))
((PER_MODE >= 2)) || PER_MODE=2
SEED=${PROTOFUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
BAD=${PROTOFUZZ_BAD:-8}
GOOD=${PROTOFUZZ_GOOD:-4}
# Bound on pgring's RSS (ASan carries shadow memory and quarantine).
RSS_BOUND_MB=64
[[ $PGRING_BIN == *asan* ]] && RSS_BOUND_MB=200
STRICT=${PROTOFUZZ_STRICT:-0}
# Findings not fixed yet (README, Protocol fuzzing), tolerated here only and
# failing PROTOFUZZ_STRICT=1 (an ERE; empty: none, every finding fails).
KNOWN=
note "seed $SEED (PROTOFUZZ_SEED=$SEED to repeat), $PER_MODE s per mode, RSS bound $RSS_BOUND_MB MB"

qd "CREATE TABLE IF NOT EXISTS pf_rows (client int, n bigint);
    CREATE TABLE IF NOT EXISTS pf_bad (a int, b text);
    GRANT ALL ON pf_rows, pf_bad TO app" || fail "cannot create the tables"
on_exit "qd 'DROP TABLE IF EXISTS pf_rows, pf_bad'"

n=0
for mode in ${PROTOFUZZ_MODES:-transaction session statement}; do
	n=$((n + 1))
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = trust
pool_mode = $mode
default_pool_size = 4
shards = 2
max_client_conn = 500
max_packet_size = 1048576
"
	qd "TRUNCATE pf_rows, pf_bad" || fail "truncate"
	if [[ $mode == session ]]; then
		# regression of a finding, seed 3532247666, thread 3, connection 1 (a
		# Query inside COPY: the server ends the session with FATAL 08P01, then
		# the client's invalid message type got pgring's own FATAL after it);
		# it depends on timing: ten replays hit it (~40% each) before the fix
		for i in $(seq 10); do
			fout=$(timeout 60 "$PF" -h 127.0.0.1 -p "$PORT" -r "$PGPORT_REAL" -U app -d app -m "$mode" \
				-S 3532247666 -1 3:1 2>&1) || fail "$mode: replay of seed 3532247666 3:1 (#$i): $fout"
		done
		pass "$mode: nothing after the server's FATAL (10 replays of seed 3532247666 3:1)"
	fi
	out=$(timeout $((PER_MODE + 90)) "$PF" -h 127.0.0.1 -p "$PORT" -r "$PGPORT_REAL" -U app -d app -m "$mode" \
		-s "$PER_MODE" -S $((SEED + n)) -b "$BAD" -g "$GOOD" -P "$POOLER_PID" -R "$RSS_BOUND_MB" ${PROTOFUZZ_ARGS:-} 2>&1)
	rc=$?
	sed 's/^/#   /' <<<"$out"
	if ((rc != 0)) && alive "$POOLER_PID" && http_get /metrics; then
		grep -E '^pgring_pool_(clients|servers)\{' <<<"$HTTP_BODY" | grep -v ' 0$' | sed 's/^/#   /'
	fi
	((rc == 124)) && fail "$mode: protofuzz itself hung (seed $((SEED + n)))"
	alive "$POOLER_PID" || fail "$mode: pgring died (seed $((SEED + n)))"
	if ((rc != 0)); then
		# Only the known findings (README, Protocol fuzzing) may pass, and only
		# without PROTOFUZZ_STRICT=1 (make fuzz-protocol sets it).
		unknown=$(grep -E '^FAILURE' <<<"$out")
		[[ -n $KNOWN ]] && unknown=$(grep -vE "$KNOWN" <<<"$unknown")
		if ((STRICT)) || [[ -n $unknown ]] || ! grep -qE '^FAILURE' <<<"$out"; then
			fail "$mode: protofuzz found failures (seed $((SEED + n)), status $rc)"
		fi
		note "KNOWN FINDINGS ONLY (not failing without PROTOFUZZ_STRICT=1): $(grep -cE '^FAILURE' <<<"$out") in $mode, seed $((SEED + n))"
	fi
	st=$(health_status)
	assert_eq 200 "$st" "$mode: /health after the fuzzing"
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:|AddressSanitizer' "$POOLER_LOG"; then
		grep -m5 -E 'Sanitizer|runtime error' "$POOLER_LOG" | sed 's/^/#   /'
		fail "$mode: sanitizer report in pgring's log (seed $((SEED + n)))"
	fi
	# every client gone: none left behind in any state (a leaked client would also
	# hold SIGTERM's shutdown), and no server left busy
	if ! wait_until 10 eval '[[ $(metric pgring_pool_clients) == 0 && $(metric pgring_pool_servers state=\"active\") == 0 ]]'; then
		http_get /metrics
		grep -E '^pgring_pool_(clients|servers)' <<<"$HTTP_BODY" | grep -v ' 0$' | sed 's/^/#   /'
		fail "$mode: clients or active servers left in pgring 10 s after every client closed (seed $((SEED + n)))"
	fi
	http_get /metrics
	servers_before=$(grep -E '^pgring_pool_servers\{' <<<"$HTTP_BODY" | grep -v ' 0$')
	if ! stop_pgring TERM 15; then
		sed 's/^/#   before SIGTERM: /' <<<"$servers_before"
		fail "$mode: pgring needed SIGKILL to stop: SIGTERM's drain did not finish within 15 s (seed $((SEED + n)))"
	fi
	pass "$mode: $(grep -m1 -oE 'max RSS: [0-9]+ kB' <<<"$out"), $(grep -m1 -oE 'bad connections: [0-9]+' <<<"$out"), $(grep -m1 -oE 'good clients: [0-9]+ iterations' <<<"$out"), seed $((SEED + n))"
done
