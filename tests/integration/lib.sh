# tests/integration/lib.sh: helpers for the integration tests. Source it first
# thing in a t_*.sh; the test's exit status decides: 0 pass, 77 skip, else fail.
#
# Set by tests/integration/run (and required here):
#   ROOT          repository root            PGPORT_REAL   the real PostgreSQL's port
#   PGRING_BIN    pgring binary (absolute)   PGHOST_REAL   127.0.0.1
#   BUILD         build dir (absolute)       PGTMP_DIR     the cluster's dir (unix socket there)
#   RUN_TMP       the run's temp dir         PGDATA_REAL   the cluster's data directory
#   TARGET        pgring | pgbouncer         TEST_TMP      a fresh dir for this test
#   USERLIST      userlist.txt with app (plain), md5user (md5), scramuser (SCRAM from pg_authid)
#
# Poolers. start_pgring CONFIG_TEXT writes CONFIG_TEXT to a file and starts the
# pooler in the background (PgBouncer when TARGET=pgbouncer, same ini with [pgring]
# renamed and pgring-only keys dropped). In CONFIG_TEXT these are replaced:
#   @PGHOST@ @PGPORT@   the real PostgreSQL       @DIR@        the pooler's dir
#   @PORT@              the pooler's listen port  @CONTROL_PORT@ pgring's control port
#   @AUTH_FILE@         a copy of $USERLIST in the pooler's dir (or of $AUTH_FILE_TEXT if set)
# and the main section gets, unless the text sets them: listen_addr=127.0.0.1,
# listen_port, unix_socket_dir= (none), auth_file, control_addr, control_port.
# After it: PORT CONTROL_PORT POOLER_PID POOLER_CONF POOLER_LOG POOLER_DIR POOLER_TARGET.
# start_pgbouncer does the same with PgBouncer whatever TARGET is.
#
# Helpers: q / qd (psql through the pooler / directly as postgres), pqtry (C helper
# printing SQLSTATEs), psql_open/psql_send/psql_sync/psql_close (a long-lived psql),
# assert_*, fail, pass, skip, note, known_diff, wait_until, http_get, metric.

set -u -o pipefail

if [[ -z ${PGPORT_REAL:-} || -z ${TEST_TMP:-} ]]; then
	echo "lib.sh: run the tests through tests/integration/run" >&2
	exit 2
fi

TEST_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
TARGET=${TARGET:-pgring}
PGHOST_REAL=${PGHOST_REAL:-127.0.0.1}
HELPERS=$BUILD/tests/integration

# Keep libpq from picking up anything from the environment.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGOPTIONS PGSERVICE \
	PGSERVICEFILE PGSSLMODE PGAPPNAME PGTARGETSESSIONATTRS PGREQUIRESSL
export PGSSLMODE=disable PGGSSENCMODE=disable PGCONNECT_TIMEOUT=10 PGPASSFILE=$TEST_TMP/no-pgpass
export PGTZ=UTC PGCLIENTENCODING=UTF8

# ---------------------------------------------------------------- messages

note() { echo "# $*"; }
pass() { echo "ok - $*"; }
skip() { echo "SKIP: $*"; exit 77; }
fail() {
	echo "FAIL [$TEST_NAME]: $*"
	if [[ -n ${POOLER_LOG:-} && -f ${POOLER_LOG:-} ]]; then
		echo "# --- last lines of the $TARGET log ($POOLER_LOG) ---"
		tail -n 30 "$POOLER_LOG" | sed 's/^/#   /'
	fi
	exit 1
}
# A place where PgBouncer behaves differently from what pgring must do: under
# TARGET=pgbouncer the check is reported and not enforced.
known_diff() { echo "# KNOWN DIFFERENCE (pgbouncer): $*"; }
is_pgbouncer() { [[ $TARGET == pgbouncer ]]; }
pgring_only() { is_pgbouncer && skip "${1:-pgring only}"; return 0; }

# ---------------------------------------------------------------- assertions

assert_eq() { # EXPECTED ACTUAL MESSAGE
	[[ $1 == "$2" ]] || fail "${3:-values differ}: expected [$1], got [$2]"
}
assert_ne() {
	[[ $1 != "$2" ]] || fail "${3:-values equal}: did not expect [$2]"
}
assert_contains() { # HAYSTACK NEEDLE MESSAGE
	[[ $1 == *"$2"* ]] || fail "${3:-missing text}: [$2] not found in [$(printf '%.600s' "$1")]"
}
assert_not_contains() {
	[[ $1 != *"$2"* ]] || fail "${3:-unexpected text}: [$2] found in [$(printf '%.600s' "$1")]"
}
assert_match() { # STRING ERE MESSAGE
	[[ $1 =~ $2 ]] || fail "${3:-no match}: [$(printf '%.600s' "$1")] does not match /$2/"
}
_num() { [[ $1 =~ ^-?[0-9]+([.][0-9]+)?$ ]] || fail "${2:-number expected}: [$1] is not a number"; }
assert_num_cmp() { # A OP B MESSAGE   (OP: -lt -le -eq -ge -gt, decimals allowed)
	_num "$1" "$4"; _num "$3" "$4"
	awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN {
		r = (op=="-lt") ? a<b : (op=="-le") ? a<=b : (op=="-eq") ? a==b : (op=="-ge") ? a>=b : (op=="-gt") ? a>b : 0
		exit !r }' || fail "${4:-comparison failed}: expected $1 $2 $3"
}

# wait_until TIMEOUT_SECONDS COMMAND...: retry every 0.1 s; 0 once it succeeds, 1 on
# timeout. Arguments are expanded once, by the caller: to re-evaluate something each
# time, quote it for eval:  wait_until 5 eval '[[ $(pg_backends) == 0 ]]'
wait_until() {
	local deadline=$(($(date +%s%N) + ${1%.*} * 1000000000)) ; shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		(($(date +%s%N) > deadline)) && return 1
		sleep 0.1
	done
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ---------------------------------------------------------------- processes

_CLEANUPS=()
on_exit() { _CLEANUPS+=("$*"); }
_run_cleanups() {
	local i
	for ((i = ${#_CLEANUPS[@]} - 1; i >= 0; i--)); do
		eval "${_CLEANUPS[i]}" >/dev/null 2>&1 || true
	done
	_CLEANUPS=()
}
trap '_run_cleanups' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# Record a background process so the runner can kill it should the test not.
track_pid() {
	local st
	st=$(awk '{print $22}' "/proc/$1/stat" 2>/dev/null) || return 0
	echo "$1 $st" >>"$TEST_TMP/pids"
}
# True while PID runs (a zombie counts as gone).
alive() {
	local s
	s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ $s != Z && $s != X ]]
}
# wait_exit PID TIMEOUT: wait for a child of this shell to exit; its status in
# WAIT_STATUS; returns 1 (and leaves it running) on timeout.
wait_exit() {
	WAIT_STATUS=
	wait_until "$2" eval '! alive '"$1" || return 1
	wait "$1" 2>/dev/null
	WAIT_STATUS=$?
	return 0
}
kill_wait() { # PID [SIGNAL]: stop a child for good
	alive "$1" || { wait "$1" 2>/dev/null; return 0; }
	kill -"${2:-TERM}" "$1" 2>/dev/null
	wait_exit "$1" 5 || { kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
	return 0
}

# hold_until FILE [SECONDS]: wait for FILE (a test's "go" signal to a client
# reading this as its stdin), but not past SECONDS (300) nor the test's end:
# a failed test leaves no such loop behind
hold_until() {
	local end=$((SECONDS + ${2:-300}))
	until [[ -e $1 ]] || ((SECONDS > end)) || [[ ! -d $TEST_TMP ]]; do sleep 0.2; done
}
freeports() { "$ROOT/tools/pgtmp" freeport "${1:-1}"; }

# fd_limited_pgring LIMIT: from now on start_pgring runs pgring under ulimit -n
# LIMIT (its own limit only: a wrapper that execs it, same PID); the real
# binary stays in PGRING_REAL_BIN.
fd_limited_pgring() {
	PGRING_REAL_BIN=${PGRING_REAL_BIN:-$PGRING_BIN}
	printf '#!/usr/bin/env bash\nulimit -n %s || exit 1\nexec "%s" "$@"\n' "$1" "$PGRING_REAL_BIN" \
		>"$TEST_TMP/pgring-limited"
	chmod +x "$TEST_TMP/pgring-limited"
	PGRING_BIN=$TEST_TMP/pgring-limited
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
# faultproxy_cmd CONTROL_PORT COMMAND...: one command to a fault proxy
# (tests/integration/faultproxy.c); fails the test unless it answers "ok ...",
# which is printed
faultproxy_cmd() {
	local ctl=$1 line=''
	shift
	{
		exec 8<>"/dev/tcp/127.0.0.1/$ctl" || fail "faultproxy control port $ctl"
		printf '%s\n' "$*" >&8
		IFS= read -r -t 5 line <&8
		exec 8>&-
	} 2>/dev/null
	[[ $line == ok* ]] || fail "faultproxy '$*': [$line]"
	echo "$line"
}

# ---------------------------------------------------------------- poolers

PGRING_ONLY_KEYS='max_client_prepared_statements|shards|shard_cpus|control_addr|control_port|ring_entries|cq_entries|client_bufs|client_buf_size|server_bufs|server_buf_size|max_pending_bytes|shutdown_timeout'
POOLER_PID='' POOLER_TARGET=$TARGET PORT='' CONTROL_PORT='' POOLER_CONF='' POOLER_LOG='' POOLER_DIR='' POOLER_TEXT=''
_POOLER_N=0

# Render CONFIG_TEXT into $POOLER_CONF for $TARGET (uses PORT, CONTROL_PORT, POOLER_DIR).
render_config() {
	local text=$1 out
	text=${text//@PGHOST@/$PGHOST_REAL}
	text=${text//@PGPORT@/$PGPORT_REAL}
	text=${text//@PORT@/$PORT}
	text=${text//@CONTROL_PORT@/$CONTROL_PORT}
	text=${text//@DIR@/$POOLER_DIR}
	text=${text//@AUTH_FILE@/$POOLER_DIR/userlist.txt}
	if ! grep -qiE '^[[:space:]]*\[(pgring|pgbouncer)\]' <<<"$text"; then
		text=$'[pgring]\n'"$text"
	fi
	# Defaults for the main section, unless set there.
	local defaults=""
	_has() { grep -qE "^[[:space:]]*$1[[:space:]]*=" <<<"$text"; }
	_has listen_addr || defaults+=$'listen_addr = 127.0.0.1\n'
	_has listen_port || defaults+="listen_port = $PORT"$'\n'
	_has unix_socket_dir || defaults+=$'unix_socket_dir =\n'
	_has auth_file || defaults+="auth_file = $POOLER_DIR/userlist.txt"$'\n'
	_has control_addr || defaults+=$'control_addr = 127.0.0.1\n'
	_has control_port || defaults+="control_port = $CONTROL_PORT"$'\n'
	out=$(awk -v defaults="$defaults" '
		{ print }
		/^[[:space:]]*\[(pgring|pgbouncer)\][[:space:]]*$/ && !done { printf "%s", defaults; done = 1 }
	' <<<"$text")
	if [[ $POOLER_TARGET == pgbouncer ]]; then
		out=$(sed -E -e 's/^([[:space:]]*)\[pgring\]/\1[pgbouncer]/' \
			-e "/^[[:space:]]*($PGRING_ONLY_KEYS)[[:space:]]*=/d" <<<"$out")
	fi
	printf '%s\n' "$out" >"$POOLER_CONF"
}

# start_pgring CONFIG_TEXT [EXTRA_ARGS...]: POOLER_PORT, if set, is the listen port to use
start_pgring() {
	local text=$1
	shift
	POOLER_TEXT=$text
	POOLER_TARGET=$TARGET
	_POOLER_N=$((_POOLER_N + 1))
	POOLER_DIR=$TEST_TMP/pooler$_POOLER_N
	mkdir -p "$POOLER_DIR"
	chmod 755 "$POOLER_DIR"
	if [[ -n ${AUTH_FILE_TEXT:-} ]]; then
		printf '%s\n' "$AUTH_FILE_TEXT" >"$POOLER_DIR/userlist.txt"
	else
		cp "$USERLIST" "$POOLER_DIR/userlist.txt"
	fi
	POOLER_LOG=$POOLER_DIR/log
	for _ in 1 2 3; do
		read -r PORT CONTROL_PORT < <(freeports 2 | xargs)
		PORT=${POOLER_PORT:-$PORT}   # a port the caller chose (a fleet whose [peers] name each other)
		if is_pgbouncer; then
			POOLER_CONF=$POOLER_DIR/pgbouncer.ini
			render_config "$text"
			chown -R postgres: "$POOLER_DIR"
			setpriv --reuid=postgres --regid=postgres --init-groups -- \
				pgbouncer "$@" "$POOLER_CONF" >"$POOLER_LOG" 2>&1 &
		else
			[[ -x $PGRING_BIN ]] || fail "pgring binary not found: $PGRING_BIN (make first)"
			POOLER_CONF=$POOLER_DIR/pgring.ini
			render_config "$text"
			"$PGRING_BIN" -c "$POOLER_CONF" ${PGRING_ARGS:-} "$@" >"$POOLER_LOG" 2>&1 &
		fi
		POOLER_PID=$!
		track_pid "$POOLER_PID"
		on_exit "kill_wait $POOLER_PID"
		local deadline=$(($(date +%s) + 15)) ready=0
		while alive "$POOLER_PID" && (($(date +%s) <= deadline)); do
			tcp_open 127.0.0.1 "$PORT" && { ready=1; break; }
			sleep 0.1
		done
		if ((ready)); then
			if ! is_pgbouncer && ! grep -qE '^[[:space:]]*control_port[[:space:]]*=[[:space:]]*0[[:space:]]*$' "$POOLER_CONF"; then
				wait_until 5 tcp_open 127.0.0.1 "$CONTROL_PORT" ||
					fail "$TARGET does not listen on its control port $CONTROL_PORT"
			fi
			note "$TARGET pid $POOLER_PID on port $PORT (control $CONTROL_PORT), config $POOLER_CONF"
			return 0
		fi
		if alive "$POOLER_PID"; then
			fail "$TARGET did not accept connections on port $PORT within 15 s"
		fi
		wait "$POOLER_PID" 2>/dev/null
		local st=$?
		grep -qiE 'in use|EADDRINUSE' "$POOLER_LOG" || fail "$TARGET exited at start (status $st); config: $(cat "$POOLER_CONF")"
		note "port clash, retrying"
	done
	fail "$TARGET could not start"
}

# start_pgbouncer CONFIG_TEXT: the same, but PgBouncer whatever TARGET is (for tests
# that compare the two). stop_pgring stops it.
start_pgbouncer() { local TARGET=pgbouncer; start_pgring "$@"; }

# stop_pgring [SIGNAL] [TIMEOUT]: signal the pooler and wait; its exit status in
# POOLER_STATUS ("killed" if it had to be SIGKILLed). Returns 1 when it needed SIGKILL.
stop_pgring() {
	local sig=${1:-TERM} t=${2:-10}
	POOLER_STATUS=
	[[ -n $POOLER_PID ]] || return 0
	if ! alive "$POOLER_PID"; then
		wait "$POOLER_PID" 2>/dev/null
		POOLER_STATUS=$?
		return 0
	fi
	kill -"$sig" "$POOLER_PID"
	if wait_exit "$POOLER_PID" "$t"; then
		POOLER_STATUS=$WAIT_STATUS
		return 0
	fi
	kill -KILL "$POOLER_PID" 2>/dev/null
	wait "$POOLER_PID" 2>/dev/null
	POOLER_STATUS=killed
	return 1
}

# reload_pgring CONFIG_TEXT: rewrite the config (same ports and dir) and send SIGHUP.
reload_pgring() {
	POOLER_TEXT=$1
	render_config "$1"
	[[ $POOLER_TARGET == pgbouncer ]] && chown -R postgres: "$POOLER_DIR"
	kill -HUP "$POOLER_PID"
}

# ---------------------------------------------------------------- clients

# conninfo [DB] [USER] [PASSWORD] [EXTRA]: through the pooler (defaults: app app app).
conninfo() {
	local s="host=127.0.0.1 port=$PORT dbname=${1:-app} user=${2:-app}"
	[[ -n ${3-app} ]] && s+=" password=${3-app}"
	[[ -n ${4:-} ]] && s+=" $4"
	echo "$s"
}
# Direct to PostgreSQL as the superuser.
conninfo_direct() { echo "host=$PGHOST_REAL port=$PGPORT_REAL dbname=${1:-app} user=${2:-postgres}"; }

# q SQL: one psql -c through the pooler (Q_DB, Q_USER, Q_PASSWORD, Q_EXTRA override
# app/app/app); prints tuples unaligned; stderr kept; status of psql. Every client
# helper gives up after Q_TIMEOUT seconds (60; status 124) so a hang fails the step
# that hung, not the whole test at the runner's timeout.
Q_TIMEOUT=${Q_TIMEOUT:-60}
q() {
	timeout "$Q_TIMEOUT" psql -X -Atq -v ON_ERROR_STOP=1 -c "$1" \
		"$(conninfo "${Q_DB:-app}" "${Q_USER:-app}" "${Q_PASSWORD-app}" "${Q_EXTRA:-}")"
}
# qf FILE: run a file through the pooler in one session.
qf() {
	timeout "$Q_TIMEOUT" psql -X -Atq -v ON_ERROR_STOP=1 -f "$1" \
		"$(conninfo "${Q_DB:-app}" "${Q_USER:-app}" "${Q_PASSWORD-app}" "${Q_EXTRA:-}")"
}
# qd SQL [DB]: directly to PostgreSQL as postgres.
qd() { PGOPTIONS="-c client_min_messages=warning" timeout "$Q_TIMEOUT" psql -X -Atq -v ON_ERROR_STOP=1 -c "$1" "$(conninfo_direct "${2:-app}")"; }

pqtry() {
	[[ -x $HELPERS/pqtry ]] || fail "helper $HELPERS/pqtry not built"
	timeout "$Q_TIMEOUT" "$HELPERS/pqtry" "$@"
}

# A long-lived psql reading statements from a fifo.
#   psql_open NAME CONNINFO   start it (stdout NAME.out, stderr NAME.err in TEST_TMP)
#   psql_send NAME SQL        send text (add the ';' yourself)
#   psql_sync NAME [TIMEOUT]  round trip a marker; fails if psql died or did not answer
#   psql_close NAME [TIMEOUT] end its input, wait for it; psql's status in PSQL_STATUS
#   psql_kill NAME            kill -9 it
# The fifo's write end is held by a `sleep` (not by this shell, so processes started
# later do not inherit it); writes open the fifo read-write, which never blocks.
declare -A _PSQL_PID=() _PSQL_HOLD=() _PSQL_SEQ=()
psql_open() {
	local name=$1 ci=$2 fifo=$TEST_TMP/$1.fifo
	rm -f "$fifo"
	mkfifo "$fifo"
	stdbuf -oL -eL psql -X -At -v ON_ERROR_STOP=0 "$ci" <"$fifo" >"$TEST_TMP/$name.out" 2>"$TEST_TMP/$name.err" &
	_PSQL_PID[$name]=$!
	track_pid "$!"
	on_exit "kill_wait ${_PSQL_PID[$name]} KILL"
	sleep 100000 1<>"$fifo" &
	_PSQL_HOLD[$name]=$!
	track_pid "$!"
	on_exit "kill_wait ${_PSQL_HOLD[$name]} KILL"
	_PSQL_SEQ[$name]=0
}
psql_pid() { echo "${_PSQL_PID[$1]}"; }
psql_send() { printf '%s\n' "$2" 1<>"$TEST_TMP/$1.fifo"; }
psql_sync() {
	local name=$1 t=${2:-10} n
	n=$((${_PSQL_SEQ[$name]} + 1))
	_PSQL_SEQ[$name]=$n
	alive "${_PSQL_PID[$name]}" || return 1
	psql_send "$name" "SELECT 'sync-$name-$n';"
	wait_until "$t" grep -qx "sync-$name-$n" "$TEST_TMP/$name.out"
}
psql_out() { cat "$TEST_TMP/$1.out"; }
psql_err() { cat "$TEST_TMP/$1.err"; }
psql_close() {
	local name=$1 t=${2:-10}
	kill_wait "${_PSQL_HOLD[$name]}" KILL
	PSQL_STATUS=
	if wait_exit "${_PSQL_PID[$name]}" "$t"; then
		PSQL_STATUS=$WAIT_STATUS
	else
		kill_wait "${_PSQL_PID[$name]}" KILL
		PSQL_STATUS=killed
	fi
}
psql_kill() {
	kill -KILL "${_PSQL_PID[$1]}" 2>/dev/null
	wait "${_PSQL_PID[$1]}" 2>/dev/null
	kill_wait "${_PSQL_HOLD[$1]}" KILL
	return 0
}

# ---------------------------------------------------------------- control port

# http_get PATH: GET from the control port; sets HTTP_STATUS (000 if no answer) and
# HTTP_BODY (call it directly, not in $(...), or the variables are lost); 0 if 2xx.
# health_status: GET /health over /dev/tcp (no curl needed, so it works while
# the pooler is busy); prints the status code, 000 for no answer.
health_status() {
	local line=
	{
		exec 3<>"/dev/tcp/127.0.0.1/$CONTROL_PORT" || { echo 000; return; }
		printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
		IFS= read -r -t 5 line <&3
		exec 3>&-
	} 2>/dev/null
	line=${line%$'\r'}
	[[ $line =~ ^HTTP/1\.[01]\ ([0-9]{3}) ]] && echo "${BASH_REMATCH[1]}" || echo 000
}

http_get() {
	local path=$1 body=$TEST_TMP/http.body
	HTTP_STATUS=000 HTTP_BODY=
	rm -f "$body"
	if command -v curl >/dev/null 2>&1; then
		HTTP_STATUS=$(curl -s -o "$body" -w '%{http_code}' --max-time 5 "http://127.0.0.1:$CONTROL_PORT$path") || true
	else
		local raw=$TEST_TMP/http.raw
		{
			exec 3<>"/dev/tcp/127.0.0.1/$CONTROL_PORT" || return 1
			printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
			timeout 5 cat <&3 >"$raw"
			exec 3>&-
		} 2>/dev/null
		HTTP_STATUS=$(head -1 "$raw" | awk '{print $2}')
		sed '1,/^\r\{0,1\}$/d' "$raw" >"$body"
	fi
	[[ -f $body ]] && HTTP_BODY=$(cat "$body")
	[[ $HTTP_STATUS == 2* ]]
}

# metric NAME [LABELS]: the sum of every series of NAME whose labels include all
# of LABELS (e.g. 'database="app",user="app"' or 'cluster="main",node="pg3"'; each
# label=value must match a whole label, so node="pg1" does not match
# othernode="pg1" or node="pg10"); nothing and status 1 if none.
metric() {
	local name=$1 want=${2:-} text
	http_get /metrics || return 1
	text=$HTTP_BODY
	awk -v name="$name" -v want="$want" '
		BEGIN { n = split(want, w, /,/) ; found = 0; sum = 0 }
		/^#/ || NF < 2 { next }
		{
			series = $1; val = $2
			# labels may contain spaces: take the value after the closing brace
			if (index($0, "{")) { series = substr($0, 1, index($0, "}")); rest = substr($0, index($0, "}") + 1); split(rest, r, " "); val = r[1] }
			base = series; sub(/\{.*/, "", base)
			if (base != name) next
			for (i = 1; i <= n; i++) if (!index(series, "{" w[i]) && !index(series, "," w[i])) next
			found = 1; sum += val
		}
		END { if (!found) exit 1; if (sum == int(sum)) printf "%d\n", sum; else print sum }
	' <<<"$text"
}

# ---------------------------------------------------------------- PostgreSQL

# Client backends of PostgreSQL other than the asking one, optionally for a user.
pg_backends() {
	qd "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
	    AND pid <> pg_backend_pid() ${1:+AND usename = '$1'}"
}

# ---------------------------------------------------------------- one test, three ways

# PGRING_TEST_VIA=transaction (default) | session | direct runs a test through
# pgring in transaction mode, through pgring in session mode (a server per client:
# must already pass), or against PostgreSQL itself (proves the test right).
VIA=${PGRING_TEST_VIA:-transaction}
case $VIA in transaction | session | direct) ;; *) fail "PGRING_TEST_VIA=$VIA: transaction, session or direct" ;; esac
# via_start POOL_SIZE [EXTRA_INI_LINES]: start the target (direct: PORT is PostgreSQL's).
via_start() {
	if [[ $VIA == direct ]]; then
		PORT=$PGPORT_REAL
		note "directly to PostgreSQL on port $PORT"
		return
	fi
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = $VIA
default_pool_size = $([[ $VIA == session ]] && echo 60 || echo "$1")
max_client_conn = 200
${2:-}
"
}

# Long-lived psql clients driven by name (psql_open NAME first).
# say_send NAME SQL...: queue SQL between markers; say_wait NAME: wait for it, its
# stdout in SAY_OUT and stderr in SAY_ERR; say: both; say_ok: say, no error allowed.
declare -A _SAYN=()
say_send() {
	local name=$1 n
	shift
	n=$((${_SAYN[$name]:-0} + 1))
	_SAYN[$name]=$n
	{
		printf '\\echo <<%s\n\\warn <<%s\n' "$n" "$n"
		printf '%s\n' "$@"
		printf '\\echo >>%s\n\\warn >>%s\n' "$n" "$n"
	} 1<>"$TEST_TMP/$name.fifo"
}
say_wait() {
	local name=$1 n=${_SAYN[$1]} t=${2:-20}
	wait_until "$t" grep -qx ">>$n" "$TEST_TMP/$name.err" ||
		fail "$name: no answer within ${t}s; last output: $(tail -3 "$TEST_TMP/$name.out" | tr '\n' ' ') / $(tail -3 "$TEST_TMP/$name.err" | tr '\n' ' ')"
	wait_until 5 grep -qx ">>$n" "$TEST_TMP/$name.out" || fail "$name: stdout marker missing"
	SAY_OUT=$(sed -n "/^<<$n\$/,/^>>$n\$/p" "$TEST_TMP/$name.out" | sed '1d;$d')
	SAY_ERR=$(sed -n "/^<<$n\$/,/^>>$n\$/p" "$TEST_TMP/$name.err" | sed '1d;$d')
}
say() { say_send "$@"; say_wait "$1"; }
say_ok() {
	say "$@"
	[[ -z $SAY_ERR ]] || fail "$1: unexpected error for [${*:2}]: $SAY_ERR"
}

# npm_modules SCRIPT...: the node modules pinned by tests/integration/npm's
# lockfile, installed with `npm ci` into $BUILD/npm (kept between runs,
# reinstalled when the lockfile changes; $RUN_TMP/npm if the build dir is not
# writable), and the SCRIPTs from tests/integration/npm copied beside them.
# Sets NPM_DIR. The caller checks that node exists.
npm_modules() {
	local src=$ROOT/tests/integration/npm want f
	NPM_DIR=$BUILD/npm
	if ! mkdir -p "$NPM_DIR" 2>/dev/null || [[ ! -w $NPM_DIR ]]; then
		NPM_DIR=$RUN_TMP/npm
		mkdir -p "$NPM_DIR"
	fi
	want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-64)
	# One installer at a time (two suites sharing a build dir).
	exec 9>"$NPM_DIR/.lock"
	flock -w 300 9 || fail "could not lock $NPM_DIR/.lock"
	if [[ -f $NPM_DIR/.installed && $(cat "$NPM_DIR/.installed") == "$want" &&
		-f $NPM_DIR/node_modules/pg/package.json && -f $NPM_DIR/node_modules/postgres/package.json ]]; then
		note "node modules up to date in $NPM_DIR"
	else
		command -v npm >/dev/null 2>&1 || fail "node is installed but npm is not (Debian: apt-get install npm)"
		rm -f "$NPM_DIR/.installed"
		cp "$src/package.json" "$src/package-lock.json" "$NPM_DIR/"
		local t0 rc
		t0=$(now_ms)
		# The npm cache lives beside the modules (never in $HOME); no terminal, no prompts.
		(cd "$NPM_DIR" && npm_config_cache=$NPM_DIR/cache npm_config_update_notifier=false \
			npm_config_yes=false npm_config_progress=false \
			timeout 240 npm ci --no-audit --no-fund --loglevel=warn </dev/null) >"$TEST_TMP/npm-ci.log" 2>&1
		rc=$?
		if ((rc != 0)); then
			tail -n 30 "$TEST_TMP/npm-ci.log" | sed 's/^/#   /'
			fail "npm ci in $NPM_DIR failed (exit $rc)"
		fi
		echo "$want" >"$NPM_DIR/.installed"
		note "npm ci in $NPM_DIR: $(($(now_ms) - t0)) ms"
	fi
	# Scripts run from beside the modules they were installed with.
	for f in "$@"; do cp "$src/$f" "$NPM_DIR/$f"; done
	flock -u 9
	exec 9>&-
}

# ---------------------------------------------------------------- TLS

# make_certs [DIR [CLIENT_CN...]]: the TLS tests' certificates (tests/integration/
# certs.sh: ca, server, server2, server-rsa, wronghost, expired, client-CN for each
# CN (default certuser someoneelse app), other-ca, client-untrusted) in DIR (default
# $TEST_TMP/certs), owned by postgres when run as root (keys 0600), so PostgreSQL,
# PgBouncer, pgring and libpq can all read them. Sets CERTS to DIR.
make_certs() {
	CERTS=${1:-$TEST_TMP/certs}
	(($# > 0)) && shift
	local own=()
	[[ $(id -u) == 0 ]] && own=(-o postgres)
	"$ROOT/tests/integration/certs.sh" "${own[@]}" "$CERTS" "$@" >"$TEST_TMP/certs.log" 2>&1 ||
		fail "certs.sh failed: $(tail -5 "$TEST_TMP/certs.log")"
}

# start_tls_postgres NAME CERT_DIR: a PostgreSQL of the test's own (tools/pgtmp in
# $TEST_TMP/NAME: roles, databases and passwords as the shared one) with ssl = on,
# its certificate, key and CA from CERT_DIR (copied into $TEST_TMP/NAME/tls, the key
# owned by postgres and 0600 as PostgreSQL wants it). Options, in the environment:
#   TLSPG_CERT  basename of the server's pair in CERT_DIR (default server)
#   TLSPG_HBA   pg_hba lines for TCP (default: TLS only: hostssl postgres trust,
#               md5user md5, everyone else scram-sha-256; hostnossl reject); the
#               unix socket is always trust
#   TLSPG_CONF  more postgresql.conf lines
# Stopped when the test exits. Sets TLSPG_PORT and TLSPG_DIR; tlspg_sql SQL [DB]
# queries it as postgres over its unix socket.
start_tls_postgres() {
	local name=$1 certs=$2 cert=${TLSPG_CERT:-server} dir out
	dir=$TEST_TMP/$name
	mkdir -p "$dir/tls"
	chmod 755 "$dir" "$dir/tls"
	local f
	for f in "$cert.crt" "$cert.key" ca.crt; do
		[[ -r $certs/$f ]] || fail "start_tls_postgres: $certs/$f missing (make_certs first)"
	done
	cp "$certs/$cert.crt" "$dir/tls/server.crt"
	cp "$certs/ca.crt" "$dir/tls/ca.crt"
	(umask 077 && cp "$certs/$cert.key" "$dir/tls/server.key")
	chmod 644 "$dir/tls/server.crt" "$dir/tls/ca.crt"
	chmod 600 "$dir/tls/server.key"
	[[ $(id -u) == 0 ]] && chown postgres: "$dir/tls" "$dir/tls"/*
	{
		echo "# start_tls_postgres: TYPE DATABASE USER ADDRESS METHOD"
		echo "local all all trust"
		printf '%s\n' "${TLSPG_HBA:-"hostssl all postgres 127.0.0.1/32 trust
hostssl all md5user 127.0.0.1/32 md5
hostssl all all 127.0.0.1/32 scram-sha-256
hostnossl all all 127.0.0.1/32 reject"}"
	} >"$dir/tls/pg_hba.conf"
	chmod 644 "$dir/tls/pg_hba.conf"
	on_exit "'$ROOT/tools/pgtmp' stop '$dir'"
	out=$(PGTMP_CONF="ssl = on
ssl_cert_file = '$dir/tls/server.crt'
ssl_key_file = '$dir/tls/server.key'
ssl_ca_file = '$dir/tls/ca.crt'
hba_file = '$dir/tls/pg_hba.conf'
${TLSPG_CONF:-}" timeout 120 "$ROOT/tools/pgtmp" start "$dir" 2>&1) ||
		fail "start_tls_postgres: PostgreSQL with ssl = on did not start: $out $(tail -5 "$dir/log" 2>/dev/null)"
	TLSPG_PORT=${out##*PORT=}
	TLSPG_DIR=$dir
	[[ $(tlspg_sql "SHOW ssl") == on ]] || fail "start_tls_postgres: ssl is not on"
	note "PostgreSQL with TLS ($cert.crt) on 127.0.0.1:$TLSPG_PORT, dir $dir"
}
tlspg_sql() {
	PGOPTIONS="-c client_min_messages=warning" timeout "$Q_TIMEOUT" \
		psql -X -Atq -v ON_ERROR_STOP=1 -h "$TLSPG_DIR" -p "$TLSPG_PORT" -U postgres -d "${2:-app}" -c "$1"
}

# tls_peer_subject PORT [CAFILE]: the subject of the certificate a PostgreSQL-protocol
# server on 127.0.0.1:PORT presents after SSLRequest (openssl s_client -starttls
# postgres), RFC 2253 (e.g. "CN=localhost,OU=server2,O=pgring test"); with CAFILE,
# "verify=OK" or "verify=<error>" follows on a second line. Status 1 and nothing
# printed when no certificate came.
tls_peer_subject() {
	local port=$1 ca=${2:-} out subj
	out=$(timeout 10 openssl s_client -starttls postgres -connect "127.0.0.1:$port" -servername localhost \
		${ca:+-CAfile "$ca"} </dev/null 2>&1)
	subj=$(openssl x509 -noout -subject -nameopt RFC2253 2>/dev/null <<<"$out") || return 1
	echo "${subj#subject=}"
	if [[ -n $ca ]]; then
		if [[ $out == *"Verify return code: 0 (ok)"* ]]; then
			echo "verify=OK"
		else
			echo "verify=$(grep -m1 -oE 'Verify return code: .*' <<<"$out")"
		fi
	fi
}
