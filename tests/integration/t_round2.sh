#!/usr/bin/env bash
# t_round2: issue 20, items 2, 5, 6 and 7b. Every case compares pgring with a
# direct connection to PostgreSQL doing the same thing.
#
#  quoting (item 2): five raw clients (tests/integration/quickquit script, user
#   md5user) with custom settings whose first part is a reserved word (some.var,
#   select.x, order.by, user.name, from.where), given as StartupMessage
#   parameters, in options=-c (a value with an escaped space, one with a quote),
#   or by SQL (SET "some"."var" = 'it''s', SET "user".name, set_config() with a
#   tab, RESET "some"."var", RESET ALL, a SET rolled back, set_config(..., true),
#   the unquoted SET some.var that is a syntax error directly too). Each client
#   checks every setting between the steps of the others, one statement at a
#   time, in transaction mode with two shards and a pool of 1 (every statement
#   changes the server's client) and of 2. The output must equal the direct
#   run's, line for line: nobody is disconnected, each client sees its own values
#   and a client that never set a name sees it unset (NULL and '' are compared
#   alike: a server cannot forget a placeholder).
#  quoting-odd (item 2): the same with names PostgreSQL accepts with odd
#   characters: Mixed.Case$1, a$b.c$d, é.ü, the three-part a.b.c and x.y.z, from
#   the StartupMessage, options=-c, SET quoted, half quoted and unquoted, RESET.
#  sqlprepare (item 7b): SQL PREPAREs by two clients with SETs of their own,
#   alternating (pool of 1 and 2): pg_prepared_statements.statement shows the
#   client's PREPARE, as directly, never pgring's set_config() in front of it.
#  session-pid (item 5): session mode, two shards: the PID in the BackendKeyData
#   (libpq's PQbackendPID) is SELECT pg_backend_pid().
#  session-terminate (item 5): pg_terminate_backend() on that PID ends the
#   client's server, and the client sees what a direct client sees (the server's
#   FATAL 57P01, then the close; nothing of pgring's own).
#  session-fatal (item 5): a server FATAL (idle_session_timeout, 57P05) is relayed
#   as the server sent it, and nothing else, as directly.
#  session-full (item 5's limit): session mode, a pool of 1 held by a session: a
#   second client's login completes at once (libpq's connect_timeout=2 holds),
#   as with PgBouncer; its query waits, and runs once the first session ends,
#   with its own application_name and the default search_path, not those the
#   first client had on that server. (Waiting for the server inside the login
#   timed such clients out, and stalled pgbench -C, a blocking connect, until
#   client_login_timeout.)
#  quickquit (item 6): thousands of connections (quickquit, 4 threads) sending a
#   StartupMessage and a Terminate at once, in seven ways, in transaction and
#   session mode, users md5user (md5) and scramuser (SCRAM): every byte pgring
#   sends parses as backend messages, every stream ends on a message boundary and
#   is closed, and no client is told its (well-formed) bytes were invalid.
#  quickquit-order (item 6): a Terminate before the StartupMessage (what
#   node-postgres sends when Client.end() comes before its socket connected):
#   PostgreSQL closes without a word (a bad startup length is only logged, as
#   COMMERROR), so pgring must send nothing either (it used to send FATAL 08P01
#   "invalid message length ...", which node-postgres reports as the error of
#   its connect()).
#
# CASES="name ..." runs only those cases (default: all, in the order above).
. "$(dirname "$0")/lib.sh"
pgring_only "issue 20's transparency checks are pgring's"
[[ -x $HELPERS/quickquit ]] || fail "helper $HELPERS/quickquit not built"
QQ=$HELPERS/quickquit

ALL_CASES="quoting quoting-odd sqlprepare session-pid session-terminate session-fatal session-full quickquit quickquit-order"
CASES=${CASES:-$ALL_CASES}
for c in $CASES; do [[ " $ALL_CASES " == *" $c "* ]] || fail "CASES: unknown case $c (known: $ALL_CASES)"; done

# tcase NAME FUNCTION...: run one case in a subshell (its own cleanups) if it is in
# CASES; a failure is recorded and the next case runs.
FAILED=()
tcase() {
	local name=$1 rc
	shift
	[[ " $CASES " == *" $name "* ]] || return 0
	note "---- $name"
	(
		_CLEANUPS=()
		trap '_run_cleanups' EXIT
		"$@"
	)
	rc=$?
	case $rc in
	0) pass "$name" ;;
	77) note "$name skipped" ;;
	*) FAILED+=("$name") ;;
	esac
}

MD5CI() { conninfo app md5user md5pass; }
DIRECT_MD5CI="host=$PGHOST_REAL port=$PGPORT_REAL dbname=app user=md5user password=md5pass"

# start_mode MODE POOL_SIZE: pgring with two shards, md5 towards clients.
start_mode() {
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = $1
default_pool_size = $2
max_client_conn = 400
shards = 2
"
}

# same_as_direct WHAT DIRECT_FILE POOLER_FILE: the two outputs must be equal.
same_as_direct() {
	if ! diff -u "$2" "$3" >"$TEST_TMP/diff.$$" 2>&1; then
		sed 's/^/#   /' "$TEST_TMP/diff.$$" | head -60
		fail "$1: pgring's output differs from the direct connection's (- direct, + pgring)"
	fi
}

# run_script NAME SCRIPT_FILE: the script directly (as md5user) and through pgring
# in transaction mode with pool sizes 1 and 2; outputs must be equal.
run_script() {
	local name=$1 script=$2 pool
	"$QQ" script "$PGHOST_REAL" "$PGPORT_REAL" md5user md5pass app <"$script" >"$TEST_TMP/$name.direct" ||
		fail "$name: quickquit script directly failed"
	grep -qE ': (closed|FATAL)' "$TEST_TMP/$name.direct" && fail "$name: the direct run lost a connection: $(cat "$TEST_TMP/$name.direct")"
	for pool in 1 2; do
		start_mode transaction "$pool"
		"$QQ" script 127.0.0.1 "$PORT" md5user md5pass app <"$script" >"$TEST_TMP/$name.pool$pool" ||
			fail "$name: quickquit script through pgring failed"
		note "$name, pool of $pool: $(grep -c . "$TEST_TMP/$name.pool$pool") lines, $(grep -cE ': (closed|FATAL)' "$TEST_TMP/$name.pool$pool") closed/FATAL"
		same_as_direct "$name, transaction mode, pool of $pool, two shards" "$TEST_TMP/$name.direct" "$TEST_TMP/$name.pool$pool"
		stop_pgring
	done
}

# ---------------------------------------------------------------- item 2

T=$'\t'
# check_sql NAME...: one row, "name=value ..." for each name (NULL and '' as '-').
check_sql() {
	local names="" n
	for n in "$@"; do names+="${names:+,}'$n'"; done
	echo "SELECT string_agg(n || '=' || coalesce(nullif(current_setting(n, true), ''), '-'), ' ' ORDER BY o) FROM unnest(ARRAY[$names]) WITH ORDINALITY AS t(n, o)"
}

case_quoting() {
	local s=$TEST_TMP/quoting.script c check
	check=$(check_sql some.var select.x order.by user.name from.where)
	check_all() { for c in 1 2 3 5 6; do printf '%s\t%s\n' "$c" "$check"; done; }
	{
		printf 'connect\t1\tsome.var=one\tapplication_name=c1\n'
		printf '%s\n' "connect${T}2${T}options=-c select.x=two\\ words -c order.by=it's"
		printf 'connect\t3\n'
		printf '%s\n' "connect${T}5${T}user.name=u5${T}from.where=back\\slash"
		printf 'connect\t6\tapplication_name=c6\n'
		check_all
		printf '%s\n' "6${T}SET \"some\".\"var\" = 'it''s'" \
			"6${T}SET \"user\".name TO 'x\"y'" \
			"6${T}SELECT set_config('order.by', 'via set_config', false)" \
			"6${T}SELECT set_config('from.where', E'tab\\there', false)"
		check_all
		printf '%s\n' "1${T}SET \"select\".x = 'c1 select'" \
			"1${T}BEGIN" "1${T}SET \"order\".by = 'rolled back'" "1${T}$check" "1${T}ROLLBACK" \
			"5${T}SET \"from\".\"where\" = 'c5 from'" "5${T}SET \"user\".\"name\" = 'c5 user'"
		check_all
		printf '%s\n' "5${T}RESET ALL" \
			"6${T}RESET \"some\".\"var\"" \
			"2${T}SELECT set_config('some.var', 'c2 local', true)" \
			"2${T}SET some.var = 'a syntax error directly too'" \
			"2${T}RESET \"select\".x"
		check_all
		printf '%s\n' "1${T}RESET \"some\".var" "3${T}SELECT 1"
		check_all
		check_all
	} >"$s"
	run_script quoting "$s"
}

# Names PostgreSQL accepts with odd characters: upper case, '$', non-ASCII,
# three parts; from the startup packet, options=-c and SET (quoted or not).
case_quoting_odd() {
	local s=$TEST_TMP/quoting-odd.script c check
	check=$(check_sql 'mixed.case$1' a.b.c é.ü 'a$b.c$d' x.y.z)
	check_all() { for c in 1 2 3 4; do printf '%s\t%s\n' "$c" "$check"; done; }
	{
		printf 'connect\t1\tMixed.Case$1=five\ta.b.c=six\té.ü=seven\n'
		printf '%s\n' "connect${T}2${T}options=-c a\$b.c\$d=opt -c x.y.z=three\\ words"
		printf 'connect\t3\n'
		printf 'connect\t4\n'
		check_all
		printf '%s\n' "4${T}SET \"a\".\"b\".c = 'changed'" "4${T}SET a\$b.c\$d = 'sql'" "4${T}SET é.ü = 'unquoted'" \
			"4${T}SET \"MIXED\".case\$1 = 'upper'" "1${T}SET x.\"y\".z TO 'c1'" "2${T}RESET a\$b.c\$d"
		check_all
		printf '%s\n' "1${T}RESET \"mixed\".\"case\$1\"" "4${T}RESET ALL" "2${T}SELECT set_config('é.ü', 'c2', false)"
		check_all
		check_all
	} >"$s"
	run_script quoting-odd "$s"
}

case_sqlprepare() {
	local s=$TEST_TMP/sqlprepare.script k
	local list="SELECT name, statement FROM pg_prepared_statements ORDER BY name"
	{
		printf 'connect\t1\tapplication_name=p1\n'
		printf 'connect\t2\tapplication_name=p2\n'
		printf '%s\n' "1${T}SET application_name = 'p1 set'" \
			"1${T}SELECT set_config('app.x', 'one', false)" \
			"1${T}PREPARE p AS SELECT 1" \
			"2${T}SET app.x = 'two'" \
			"2${T}PREPARE q(int) AS SELECT \$1 + 1"
		for k in 1 2 3; do
			printf '%s\n' "1${T}$list" "2${T}$list" "1${T}EXECUTE p" "2${T}EXECUTE q(41)" \
				"1${T}SELECT current_setting('app.x'), current_setting('application_name')" \
				"2${T}SELECT current_setting('app.x'), current_setting('application_name')"
		done
		printf '%s\n' "2${T}DEALLOCATE q" "2${T}PREPARE \"select\" AS SELECT 'quoted name'" \
			"1${T}$list" "2${T}$list" "2${T}EXECUTE \"select\""
	} >"$s"
	run_script sqlprepare "$s"
}

# ---------------------------------------------------------------- item 5

# pid_of KEY FILE: the number after KEY= in quickquit pid's output
pid_of() { sed -n "s/^.*$1=\([0-9]*\).*/\1/p" "$2" | head -1; }

case_session_pid() {
	start_mode session 20
	local out i
	for i in 1 2 3 4; do
		out=$("$QQ" pid "$(MD5CI)")
		note "session mode: $out"
		assert_match "$out" '^key_pid=[0-9]+ backend_pid=[0-9]+$' "quickquit pid through pgring"
		[[ $out =~ ^key_pid=([0-9]+)\ backend_pid=([0-9]+)$ ]]
		assert_eq "${BASH_REMATCH[2]}" "${BASH_REMATCH[1]}" \
			"session mode: the PID in the BackendKeyData (PQbackendPID) must be the server's pg_backend_pid()"
	done
}

# terminate_run CONNINFO OUT: a client waiting (quickquit pid, up to 15 s) is ended
# with pg_terminate_backend() on the PID of its BackendKeyData.
terminate_run() {
	local ci=$1 out=$2 pid key res
	"$QQ" pid "$ci" 15 >"$out" 2>&1 &
	pid=$!
	track_pid "$pid"
	on_exit "kill_wait $pid KILL"
	wait_until 10 grep -q '^key_pid=' "$out" || fail "quickquit pid did not connect: $(cat "$out")"
	key=$(pid_of key_pid "$out")
	res=$(qd "SELECT pg_terminate_backend($key)" 2>&1)
	if [[ $res != t ]]; then
		kill_wait "$pid" KILL
		fail "pg_terminate_backend($key), the PID from the client's BackendKeyData, gave [$(tr '\n' ' ' <<<"$res")] (the server's PID is $(pid_of backend_pid "$out"))"
	fi
	wait_exit "$pid" 20 || fail "the terminated client did not finish: $(cat "$out")"
	sed -i 1d "$out"
}

case_session_terminate() {
	terminate_run "$DIRECT_MD5CI" "$TEST_TMP/term.direct"
	note "direct: $(tr '\n' '/' <"$TEST_TMP/term.direct")"
	start_mode session 20
	terminate_run "$(MD5CI)" "$TEST_TMP/term.pgring"
	note "pgring: $(tr '\n' '/' <"$TEST_TMP/term.pgring")"
	same_as_direct "session mode: what the client of a terminated server sees" "$TEST_TMP/term.direct" "$TEST_TMP/term.pgring"
}

case_session_fatal() {
	local sql="SET idle_session_timeout = '400ms'"
	"$QQ" pid "$DIRECT_MD5CI" 10 "$sql" >"$TEST_TMP/fatal.direct" 2>&1 || fail "quickquit pid directly: $(cat "$TEST_TMP/fatal.direct")"
	sed -i 1d "$TEST_TMP/fatal.direct"
	assert_contains "$(cat "$TEST_TMP/fatal.direct")" "notice: FATAL 57P05" "directly: the idle-session FATAL"
	start_mode session 20
	"$QQ" pid "$(MD5CI)" 10 "$sql" >"$TEST_TMP/fatal.pgring" 2>&1 || fail "quickquit pid through pgring: $(cat "$TEST_TMP/fatal.pgring")"
	sed -i 1d "$TEST_TMP/fatal.pgring"
	note "pgring: $(tr '\n' '/' <"$TEST_TMP/fatal.pgring")"
	same_as_direct "session mode: a server's FATAL (idle_session_timeout) relayed" "$TEST_TMP/fatal.direct" "$TEST_TMP/fatal.pgring"
}

case_session_full() {
	start_mode session 1
	psql_open A "$(MD5CI) application_name=aaa"
	psql_send A "SET search_path = pg_catalog;"
	psql_sync A || fail "client A did not log in: $(psql_err A)"
	psql -X -At "$(MD5CI) connect_timeout=2 application_name=bee" \
		-c "SELECT current_setting('application_name'), current_setting('search_path'), 42" >"$TEST_TMP/full.b" 2>&1 &
	local b=$!
	track_pid "$b"
	on_exit "kill_wait $b KILL"
	sleep 3.5   # past B's connect_timeout: its login must be done, its query waiting
	alive "$b" || fail "client B ended while A held the only server (its login waited for it?): $(cat "$TEST_TMP/full.b")"
	assert_eq "" "$(cat "$TEST_TMP/full.b")" "client B: no answer yet, A holds the server"
	psql_close A || fail "client A did not end"
	wait_exit "$b" 10 || fail "client B's query did not run once A ended"
	assert_eq 'bee|"$user", public|42' "$(cat "$TEST_TMP/full.b")" \
		"client B's query once A ended, with its own settings on A's server"
}

# ---------------------------------------------------------------- item 6

QQ_CONNS=${QQ_CONNS:-2500}

# qq_run WHAT OUT ARGS...: quickquit; its summary noted; fails on a bad exit.
qq_run() {
	local what=$1 out=$2 rc
	shift 2
	timeout 120 "$QQ" "$@" >"$out" 2>&1
	rc=$?
	note "$what: $(head -1 "$out")"
	grep '^last:' "$out" | sed 's/^/#     /'
	if ((rc != 0)); then
		grep -A12 -E '^(malformed|timeout):' "$out" | head -40 | sed 's/^/#   /'
		fail "$what: quickquit exit $rc: $(head -1 "$out")"
	fi
}

case_quickquit() {
	local mode user
	qq_run "directly, md5user" "$TEST_TMP/qq.direct" -n 200 -t 4 -U md5user -W md5pass -V abcdefg "$PGHOST_REAL" "$PGPORT_REAL"
	for mode in transaction session; do
		start_mode "$mode" 20
		for user in md5user scramuser; do
			qq_run "$mode mode, $user" "$TEST_TMP/qq.$mode.$user" -n "$QQ_CONNS" -t 4 -U "$user" -W wrongpass -V abcdefg 127.0.0.1 "$PORT"
			# a well-formed stream must not be called invalid
			if grep -E '^last: .*(invalid message length|invalid startup|invalid frontend message|invalid length)' "$TEST_TMP/qq.$mode.$user"; then
				fail "$mode mode, $user: pgring called a well-formed client stream invalid"
			fi
		done
		alive "$POOLER_PID" || fail "pgring died"
		stop_pgring
	done
}

case_quickquit_order() {
	local mode user
	qq_run "directly, Terminate first" "$TEST_TMP/qo.direct" -n 100 -t 2 -U md5user -V xy "$PGHOST_REAL" "$PGPORT_REAL"
	assert_eq "last: 100 none" "$(grep '^last:' "$TEST_TMP/qo.direct")" "directly, a Terminate before the StartupMessage gets no answer"
	for mode in transaction session; do
		start_mode "$mode" 20
		for user in md5user scramuser; do
			qq_run "$mode mode, $user, Terminate first" "$TEST_TMP/qo.$mode.$user" -n 400 -t 4 -U "$user" -V xy 127.0.0.1 "$PORT"
			assert_eq "last: 400 none" "$(grep '^last:' "$TEST_TMP/qo.$mode.$user" | tr '\n' ' ' | sed 's/ $//')" \
				"$mode mode, $user: a Terminate before the StartupMessage must get no answer, as directly"
		done
		stop_pgring
	done
}

tcase quoting case_quoting
tcase quoting-odd case_quoting_odd
tcase sqlprepare case_sqlprepare
tcase session-pid case_session_pid
tcase session-terminate case_session_terminate
tcase session-fatal case_session_fatal
tcase session-full case_session_full
tcase quickquit case_quickquit
tcase quickquit-order case_quickquit_order

((${#FAILED[@]} == 0)) || fail "failed cases: ${FAILED[*]} (run one with CASES=\"${FAILED[*]}\")"
