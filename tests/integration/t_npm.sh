#!/usr/bin/env bash
# t_npm: protocol-level prepared statements through Node.js drivers that do not use
# libpq: node-postgres (`pg`, named statements) and postgres.js (`postgres`, prepares
# every query, pipelines). tests/integration/npm/prepared.js runs 20 clients of each
# driver at once, each with many rounds of named statements (the same text in every
# client, the same name with different texts, more distinct texts than
# max_prepared_statements, statements inside BEGIN/COMMIT and ROLLBACK, a statement
# failing at execute with 22012 and working after it, Close and re-Parse under the
# same name, reconnects), checks every answer and counts every ErrorResponse on the
# wire. It must report ok (exit 0) each time:
#   1. directly against PostgreSQL (proves the script itself);
#   2. through the pooler in session mode, pool size >= clients;
#   3. through pgring in transaction mode with default_pool_size = 2, shards = 1 and
#      shards = 2 (max_prepared_statements = 200), and shards = 2 with
#      max_prepared_statements = 4: 40 clients share 2 server connections, so pgring
#      must track each client's statements and prepare them on whichever server it
#      gets, evicting and re-preparing past the bound. PostgreSQL must never see more
#      than 2 client backends of user app meanwhile (sampled every ~0.1 s).
# Part 3 is pgring only (PgBouncer 1.18 does not track prepared statements).
#
# The node modules (versions pinned by tests/integration/npm/package-lock.json) are
# installed with `npm ci` into $BUILD/npm (kept between runs, reinstalled when the
# lockfile changes; $RUN_TMP/npm if the build dir is not writable). The test skips
# only when node is not installed.
. "$(dirname "$0")/lib.sh"

CLIENTS=${NPM_CLIENTS:-20}
ITERATIONS=${NPM_ITERATIONS:-40}
RUN_TIMEOUT=${NPM_RUN_TIMEOUT:-50} # seconds per prepared.js run (a normal run takes a few)

command -v node >/dev/null 2>&1 || skip "node is not installed (tools/setup installs nodejs and npm when it can)"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || fail "node does not run: $(node -v 2>&1)"
((node_major >= 16)) || fail "node $(node -v) is too old: pg and postgres need node >= 16"

# ---------------------------------------------------------------- node modules

npm_modules prepared.js

# ---------------------------------------------------------------- runs

# brief FILE: one line per driver from prepared.js's JSON summary, with every error
# verbatim (as the driver reported it, and as seen on the wire).
brief() {
	node -e '
		const fs = require("fs")
		let j
		try { j = JSON.parse(fs.readFileSync(process.argv[1], "utf8")) } catch (e) { console.log("no JSON summary: " + e.message); process.exit(0) }
		if (j.timeout) console.log("TIMEOUT: " + j.timeout)
		for (const [d, s] of Object.entries(j.drivers)) {
			console.log(`${d}: ${s.ok ? "ok" : "NOT OK"}, ${s.rounds} rounds, ${s.queries} queries ` +
				`(${s.named_executions} prepared), ${s.expected_errors} expected 22012, ` +
				`${s.wrong_answers} wrong answers, ${s.unexpected_errors} unexpected errors, ` +
				`${s.wire.unexpected_count} unexpected on the wire`)
			for (const v of Object.values(s.errors)) console.log(`  ${d} error x${v.count} (first in ${v.first_step}): ${v.example}`)
			for (const v of Object.values(s.wire.unexpected || {})) console.log(`  ${d} on the wire x${v.count}: ${v.example}`)
			const u = s.unfinished || []
			if (u.length) {
				const where = {}
				for (const x of u) where[x.step] = (where[x.step] || 0) + 1
				console.log(`  ${d}: ${u.length} clients stuck (no answer within the step timeout) or not finished, in: ` +
					Object.entries(where).map(([k, n]) => `${k} (${n})`).join(", "))
			}
			for (const w of s.wrong) console.log(`  ${d} wrong answer in ${w.step}: got ${JSON.stringify(w.got)}, want ${JSON.stringify(w.want)}`)
		}
		console.log(`elapsed ${j.elapsed_ms} ms`)
	' "$1"
}

# prepared WHAT HOST PORT: run prepared.js; RUN_RC its status, RUN_OUT its summary file.
prepared() {
	local what=$1 host=$2 port=$3
	RUN_OUT=$TEST_TMP/prepared-$what.json
	local t0
	t0=$(now_ms)
	timeout -k 5 $((RUN_TIMEOUT + 20)) node "$NPM_DIR/prepared.js" --host "$host" --port "$port" \
		--user app --password app --dbname app --clients "$CLIENTS" --iterations "$ITERATIONS" \
		--timeout "$RUN_TIMEOUT" >"$RUN_OUT" 2>"$TEST_TMP/prepared-$what.err"
	RUN_RC=$?
	RUN_MS=$(($(now_ms) - t0))
	if [[ -s $TEST_TMP/prepared-$what.err ]]; then
		sed 's/^/#   stderr: /' "$TEST_TMP/prepared-$what.err" | head -20
	fi
}

# Server connections of user app as PostgreSQL sees them.
app_backends() {
	qd "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'"
}

FAILURES=()

# 1. Directly against PostgreSQL: the script and the drivers themselves must be right.
prepared direct "$PGHOST_REAL" "$PGPORT_REAL"
if ((RUN_RC != 0)); then
	brief "$RUN_OUT" | sed 's/^/#   /'
	fail "directly against PostgreSQL: prepared.js exit $RUN_RC (the test itself is wrong)"
fi
brief "$RUN_OUT" | sed 's/^/#   /'
pass "direct: $CLIENTS clients x 2 drivers x $ITERATIONS rounds right (${RUN_MS} ms)"

# 2. Session mode, one server per client.
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = session
default_pool_size = $((2 * CLIENTS + 5))
max_client_conn = $((4 * CLIENTS + 20))
shards = 2
"
prepared session 127.0.0.1 "$PORT"
brief "$RUN_OUT" | sed 's/^/#   /'
if ((RUN_RC == 0)); then
	pass "session mode, pool size $((2 * CLIENTS + 5)): all answers right, no unexpected error (${RUN_MS} ms)"
else
	FAILURES+=("session mode: prepared.js exit $RUN_RC")
	echo "# session mode: FAILED"
fi
stop_pgring || fail "session mode: $TARGET did not stop"
wait_until 5 eval '[[ $(pg_backends app) == 0 ]]' || fail "session mode: server connections left after stop: $(pg_backends app)"

# 3. Transaction mode, 2 servers for 2 x CLIENTS clients.
if is_pgbouncer; then
	known_diff "prepared statements in transaction mode: PgBouncer 1.18 does not track them; not run"
else
	# shards, max_prepared_statements: the default bound (more distinct statement
	# texts than that go through each server), then a bound of 4, below what one
	# postgres.js pipeline uses, so statements are evicted and re-prepared all the time.
	for run in "1 200" "2 200" "2 4"; do
		read -r shards maxps <<<"$run"
		start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 2
max_client_conn = $((4 * CLIENTS + 20))
max_prepared_statements = $maxps
shards = $shards
"
		what="transaction mode, pool size 2, shards=$shards, max_prepared_statements=$maxps"
		# Sample PostgreSQL's view of the pooler's servers while the clients run.
		samples=$TEST_TMP/backends-$shards-$maxps
		sampling=$TEST_TMP/sampling-$shards-$maxps
		: >"$samples"
		: >"$sampling"
		(
			while [[ -e $sampling ]]; do
				app_backends >>"$samples" 2>/dev/null
				sleep 0.05
			done
		) &
		sampler=$!
		track_pid "$sampler"
		on_exit "kill_wait $sampler KILL"
		prepared "transaction-$shards-$maxps" 127.0.0.1 "$PORT"
		rm -f "$sampling"
		wait_exit "$sampler" 15 || kill_wait "$sampler" KILL
		after=$(app_backends)
		max=$(sort -n "$samples" | tail -1)
		nsamples=$(wc -l <"$samples")
		brief "$RUN_OUT" | sed 's/^/#   /'
		note "$what: PostgreSQL saw at most ${max:-?} server connections of app ($nsamples samples), $after after the run"
		# For the record (not checked): pgring's prepared-statement counters.
		if http_get /metrics; then
			grep -iE '^[a-z_]*prepare[a-z_]*(\{[^}]*\})? ' <<<"$HTTP_BODY" | sed 's/^/#   metric: /' | head -10
		fi
		bad=0
		if ((RUN_RC != 0)); then
			FAILURES+=("$what: prepared.js exit $RUN_RC")
			bad=1
		fi
		if [[ -z $max ]] || ((max > 2 || after > 2)); then
			FAILURES+=("$what: more than 2 server connections (max sampled ${max:-none}, after $after)")
			bad=1
		fi
		if grep -qiE 'assert|sanitizer|panic' "$POOLER_LOG"; then
			FAILURES+=("$what: pgring log: $(grep -m1 -iE 'assert|sanitizer|panic' "$POOLER_LOG")")
			bad=1
		fi
		if ((bad)); then
			echo "# $what: FAILED; last lines of the pgring log ($POOLER_LOG):"
			tail -n 15 "$POOLER_LOG" | sed 's/^/#   /'
		else
			pass "$what: all answers right, no unexpected error, <= 2 server connections (${RUN_MS} ms)"
		fi
		stop_pgring || FAILURES+=("$what: $TARGET did not stop on SIGTERM")
		wait_until 5 eval '[[ $(pg_backends app) == 0 ]]' ||
			FAILURES+=("$what: server connections left after stop: $(pg_backends app)")
	done
fi

qd "DROP TABLE IF EXISTS npm_prep_lookup, npm_prep_counter" >/dev/null || true

if ((${#FAILURES[@]} > 0)); then
	POOLER_LOG='' # each failure above has its own details
	fail "$(printf '%s; ' "${FAILURES[@]}")"
fi
