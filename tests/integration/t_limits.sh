#!/usr/bin/env bash
# t_limits: every limit on what a client (or a server) can make pgring keep
# (README, "Limits") is hit on purpose, through a real PostgreSQL, and gives a
# clear error with a log line while a bystander's session goes on:
#   max_packet_size              a Query claiming more: 08P01, closed
#   PostgreSQL's small-message   a Sync (Describe, Execute, ...) over 10000
#   limit                        bytes: 08P01, closed; one at the limit waits
#   max_startup_packet           a longer startup packet: closed, logged
#   max_client_prepared_statements  one more Parse: 53400, the session goes on
#   max_client_prepared_size     Parse bodies past it, named or unnamed: 53400
#   max_client_session_size      SETs, savepoints holding settings, SQL
#                                PREPAREs, LISTENs past it: FATAL 54000
#   PARAMS_MAX                   the 4097th setting: FATAL 54000
#   max_server_scram_iterations  a server asking for more PBKDF2 iterations:
#                                its login fails, the waiting client gets 54000
#   max_client_pipeline          a client sending Syncs without reading: not
#                                read further, RSS stays flat, all answered
# and the worst case the message limit allows: N clients each holding all but
# the last byte of a max_packet_size Query; pgring's RSS grows by about N x
# max_packet_size (bounded, measured, printed), gives it back once they are
# answered, and other clients are served meanwhile.
source "$(dirname "$0")/lib.sh"

pgring_only "these limits are pgring's keys"

LC=$HELPERS/limitclient
[[ -x $LC ]] || fail "helper $LC not built"
[[ -x $HELPERS/pqtry ]] || fail "helper pqtry not built"

MAX_PACKET=$((1024 * 1024))
CONFIG="
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
fresh = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 4
shards = 2
max_client_conn = 300
max_packet_size = 1MB
max_startup_packet = 4096
max_client_prepared_statements = 50
max_client_prepared_size = 64kB
max_client_session_size = 256kB
max_client_pipeline = 4096
"
start_pgring "$CONFIG" -v

CI=$(conninfo)
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$POOLER_PID/status"; }
# the sanitizer build keeps freed memory in quarantine: memory given back is
# not seen there, so those bounds are looser
SLACK_MB=0
[[ $PGRING_BIN == *asan* ]] && SLACK_MB=200
logged() { grep -cF -- "$1" "$POOLER_LOG"; }
xs() { head -c "$1" /dev/zero | tr '\0' x; }

# a bystander: one session that must not notice anything
psql_open by "$CI"
psql_send by "SET application_name = 'bystander';"
psql_sync by || fail "the bystander could not start"
bystander() {
	psql_sync by 20 || fail "the bystander's session broke ($1): $(psql_err by)"
	alive "$POOLER_PID" || fail "pgring died ($1)"
}

# ---- max_packet_size: the framer's limit, before anything is allocated
out=$("$LC" big "$CI" Q $((MAX_PACKET + 1)))
assert_match "$out" '^ERROR 08P01 invalid message length \(longer than max_packet_size = 1048576' \
	"a Query over max_packet_size"
out=$("$LC" big "$CI" P $((MAX_PACKET * 4)))
assert_match "$out" '^ERROR 08P01 .*max_packet_size' "a Parse over max_packet_size"
(($(logged 'longer than max_packet_size') >= 2)) || fail "no log line for the oversized messages"
bystander "max_packet_size"
pass "max_packet_size: 08P01 'invalid message length (longer than max_packet_size = 1048576 ...)', logged"

# ---- PostgreSQL's limit for the messages that carry only names: 10000 bytes
for t in S D E C X; do
	out=$("$LC" big "$CI" "$t" 20000)
	assert_match "$out" "^ERROR 08P01 invalid message length: a '$t' message of 20001 bytes" "a 20000-byte '$t'"
done
(($(logged "invalid message length: a 'S' message") >= 1)) || fail "no log line for the oversized Sync"
# at the limit it is a message like any other: pgring waits for the rest of it
out=$("$LC" big "$CI" D 10004)
assert_eq OPEN "$out" "a Describe of exactly 10000 bytes after its length word"
# a Sync or Flush carries nothing: PostgreSQL fails one with a body and may then
# skip to the next Sync, which pgring could not count; refused
for t in S H; do
	out=$("$LC" big "$CI" "$t" 10004)
	assert_match "$out" "^ERROR 08P01 invalid message format: a '$t' message with a body" "a '$t' with a body"
done
bystander "small messages"
pass "Sync, Describe, Execute, Close, Terminate over 10000 bytes: 08P01, as PostgreSQL; at 10000 accepted; a Sync or Flush with a body: 08P01"

# ---- max_startup_packet: no answer, as PostgreSQL, but a log line
before=$(logged 'invalid length of startup packet')
out=$(pqtry "$CI application_name=$(xs 5000)" "SELECT 1" 2>&1)
assert_match "$out" '^ERROR ' "a startup packet over max_startup_packet"
wait_until 5 eval '(($(logged "invalid length of startup packet") > before))' ||
	fail "no log line for the oversized startup packet"
out=$(pqtry "$CI application_name=$(xs 3000)" "SELECT 1" 2>&1)
assert_eq 1 "$out" "a startup packet under max_startup_packet"
bystander "startup packets"
pass "max_startup_packet: a longer one is closed and logged, a shorter one logs in"

# ---- max_client_prepared_statements: an ERROR, the session goes on
out=$("$LC" prepare "$CI" 60 100)
assert_contains "$out" "prepared 50" "Parses up to max_client_prepared_statements"
assert_contains "$out" "ERROR 53400 too many prepared statements (max_client_prepared_statements)" \
	"the 51st Parse"
assert_contains "$out" "alive" "the session after the refused Parse"
pass "max_client_prepared_statements: the 51st Parse gets 53400, the session goes on"

# ---- max_client_prepared_size: named and unnamed Parse bodies
out=$("$LC" prepare "$CI" 20 8000)
n=$(sed -n 's/^prepared //p' <<<"$out")
assert_num_cmp "$n" -ge 7 "8000-byte statements that fit in 64kB"
assert_num_cmp "$n" -le 8 "8000-byte statements that fit in 64kB"
assert_contains "$out" "ERROR 53400 prepared statements too large" "the Parse past max_client_prepared_size"
assert_contains "$out" "alive" "the session after it"
out=$("$LC" prepare "$CI" 1 70000 "")
assert_contains "$out" "prepared 0" "an unnamed 70000-byte Parse"
assert_contains "$out" "ERROR 53400 prepared statements too large" "an unnamed Parse past max_client_prepared_size"
assert_contains "$out" "alive" "the session after it"
out=$("$LC" prepare "$CI" 3 30000 "")
assert_contains "$out" "prepared 3" "unnamed 30000-byte Parses, each replacing the last"
(($(logged 'over max_client_prepared_size') >= 2)) || fail "no log line for max_client_prepared_size"
bystander "prepared statements"
pass "max_client_prepared_size: $n statements of 8000 bytes fit, the next gets 53400; an unnamed one too"

# ---- max_client_session_size: settings
v=$(xs 60000)
out=$(pqtry "$CI" "SET app.a = '$v'" "SET app.b = '$v'" "SET app.c = '$v'" "SET app.d = '$v'" "SET app.e = '$v'" 2>&1)
assert_match "$out" 'ERROR 54000 .*session state too large.*max_client_session_size' "SETs past max_client_session_size"
(($(logged 'over max_client_session_size') >= 1)) || fail "no log line for max_client_session_size"
out=$(pqtry "$CI" "SET app.a = '$(xs 20000)'" "SHOW app.a" 2>&1)
assert_eq 20000 "${#out}" "a 20000-byte setting under the limit"
pass "max_client_session_size: SETs past 256kB close the client with 54000"

# savepoints keep a copy of the transaction's settings each
sp=("BEGIN" "SET app.a = '$(xs 20000)'")
for i in $(seq 1 20); do sp+=("SAVEPOINT s$i"); done
out=$(pqtry "$CI" "${sp[@]}" 2>&1)
assert_match "$out" 'ERROR 54000 .*max_client_session_size' "savepoints holding settings"
pass "savepoints holding copies of the settings count: 54000"

# SQL PREPAREs keep their text
pr=()
for i in $(seq 1 8); do pr+=("PREPARE p$i AS SELECT '$(xs 40000)'"); done
out=$(pqtry "$CI" "${pr[@]}" 2>&1)
assert_match "$out" 'ERROR 54000 .*max_client_session_size' "SQL PREPAREs"
pass "SQL PREPARE texts count: 54000"

# LISTEN channels
# (in ten Queries of 500: each transaction of a listening client LISTENs its
# channels on its server again, so one Query per LISTEN costs n^2/2 of them,
# too slow under the sanitizer build)
pad=$(printf '%.0s0' {1..50})
batches=()
for b in $(seq 0 9); do
	batches+=("$(for i in $(seq $((b * 500 + 1)) $((b * 500 + 500))); do printf 'LISTEN ch_%04d_%s;' "$i" "$pad"; done)")
done
out=$(pqtry "$CI" "${batches[@]}" 2>&1)
assert_match "$out" 'ERROR 54000 .*(session state too large|too many session settings)' "5000 LISTEN channels"
pass "LISTEN channels count: 54000"
bystander "session state"

# ---- one Query may carry at most 4096 statements that change the session
# (pgring follows each), and a record keeps at most PARAMS_MAX = 4096 entries
sets() { for i in $(seq "$1" "$2"); do printf 'SET app.s%d = 1;' "$i"; done; }
out=$(pqtry "$CI" "$(sets 1 4100)" "SELECT 'still here'" 2>&1)
assert_eq "ERROR 54000 too many statements changing session state in one query (at most 4096)" "$out" \
	"a Query of 4100 SETs"
out=$(pqtry "$CI" "SELECT 'before'" "$(sets 1 4100)" 2>&1)
assert_contains "$out" "before" "the session before it"
out=$(pqtry "$CI" "$(sets 1 2000)" "$(sets 2001 4000)" "SHOW app.s1" "SHOW app.s4000" 2>&1)
assert_eq $'1\n1' "$out" "4000 settings in two Queries: the first and the last"
out=$(pqtry "$CI" "$(sets 1 2100)" "$(sets 2101 4200)" 2>&1)
assert_match "$out" 'ERROR 54000 .*too many session settings.*at most 4096' "4200 settings in two Queries"
bystander "settings count"
pass "4100 session changes in one Query: ERROR 54000; the 4097th setting of a session: FATAL 54000; 4000 are kept"

# ---- max_server_scram_iterations: the real server asks app for 4096
reloads=$(logged 'configuration reloaded')
reload_pgring "${CONFIG}max_server_scram_iterations = 1000"
wait_until 10 eval '(($(logged "configuration reloaded") > reloads))' || fail "the reload did not happen"
sleep 0.5   # the shards take the new configuration at their next tick
out=$(pqtry "$(conninfo fresh)" "SELECT 1" 2>&1)
assert_contains "$out" "ERROR 54000" "a server login asking for 4096 iterations, over 1000"
assert_contains "$out" "server's SCRAM iteration count 4096 is more than max_server_scram_iterations (1000)" \
	"the message"
grep -q "server login failed: server's SCRAM iteration count 4096" "$POOLER_LOG" ||
	fail "no log line for the refused server login"
bystander "SCRAM cap (servers already logged in are kept)"
reload_pgring "${CONFIG}max_server_scram_iterations = 4096"
wait_until 15 eval '[[ $(pqtry "$(conninfo fresh)" "SELECT 1" 2>&1) == 1 ]]' ||
	fail "fresh does not log in with the cap at 4096: $(pqtry "$(conninfo fresh)" "SELECT 1" 2>&1)"
pass "max_server_scram_iterations: 4096 iterations over a cap of 1000 fail the login with 54000; at 4096 it logs in"

# ---- the worst case max_packet_size allows: N clients each holding one
N=60
base=$(rss_kb)
mkfifo "$TEST_TMP/hold.in"
"$LC" hold "$CI" "$N" "$MAX_PACKET" <"$TEST_TMP/hold.in" >"$TEST_TMP/hold.out" 2>&1 &
HOLD=$!
track_pid "$HOLD"
on_exit "kill_wait $HOLD KILL"
exec 7>"$TEST_TMP/hold.in"
wait_until 60 grep -q "^held $N" "$TEST_TMP/hold.out" || fail "the holding clients did not start: $(cat "$TEST_TMP/hold.out")"
sleep 1
peak=$(rss_kb)
grown=$(((peak - base) / 1024))
note "pgring RSS: $((base / 1024)) MB before, $((peak / 1024)) MB with $N clients each holding $((MAX_PACKET - 1)) bytes of a $MAX_PACKET-byte Query (+$grown MB)"
assert_num_cmp "$grown" -ge $((N / 2)) "RSS growth while $N messages of 1 MB are held (they are in memory)"
assert_num_cmp "$grown" -le $((N + 32 + SLACK_MB)) "RSS growth bounded by N x max_packet_size (+32 MB)"
out=$(q "SELECT 42")
assert_eq 42 "$out" "another client while $N messages are held"
bystander "max-size messages held"
exec 7>&-
wait_exit "$HOLD" 60 || fail "the holding clients did not finish"
assert_contains "$(cat "$TEST_TMP/hold.out")" "answered $N" "each held Query, once complete"
sleep 1
after=$(rss_kb)
note "pgring RSS once they are answered: $((after / 1024)) MB"
assert_num_cmp $(((after - base) / 1024)) -le $((24 + SLACK_MB)) "RSS after the held messages went out"
pass "$N clients holding a max_packet_size Query: +$grown MB RSS (bound $N MB), given back once answered"

# ---- max_client_pipeline: a client pipelining Syncs without reading its
# replies is not read past 4096 owed ones; all are answered once it reads
base=$(rss_kb)
mkfifo "$TEST_TMP/pipe.in"
"$LC" pipeline "$CI" 100000000 2000 <"$TEST_TMP/pipe.in" >"$TEST_TMP/pipe.out" 2>&1 &
PIPE=$!
track_pid "$PIPE"
on_exit "kill_wait $PIPE KILL"
exec 8>"$TEST_TMP/pipe.in"
wait_until 120 grep -q "^sent" "$TEST_TMP/pipe.out" || fail "the pipelining client did not stall"
peak=$(rss_kb)
sent=$(sed -n 's/^sent //p' "$TEST_TMP/pipe.out")
note "pipeline: $sent Syncs sent without reading (the rest in kernel buffers), pgring RSS $((base / 1024)) -> $((peak / 1024)) MB"
assert_num_cmp $(((peak - base) / 1024)) -le $((16 + SLACK_MB)) "RSS growth of a client pipelining without reading"
# others on the same shard are served meanwhile: the small replies it does not
# read are copied out of the receive rings once half a ring is held, so they
# cannot starve the shard's other connections (they did before)
bystander "while a client pipelines Syncs without reading"
exec 8>&-
wait_exit "$PIPE" 120 || fail "the pipelining client did not get its replies"
assert_contains "$(cat "$TEST_TMP/pipe.out")" "ready $sent" "every Sync answered once the client reads"
pass "max_client_pipeline: $sent unread Syncs cost pgring +$(((peak - base) / 1024)) MB; all answered once read"

bystander "the end"
status=$(health_status)
assert_eq 200 "$status" "/health after the campaign"
psql_close by
pass "the bystander's session lasted through all of it"
