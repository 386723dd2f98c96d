#!/usr/bin/env bash
# t_tls: TLS with PgBouncer's settings (client_tls_* and server_tls_*), auth_type
# cert, SCRAM-SHA-256-PLUS and PostgreSQL 17's direct TLS. Certificates come from
# tests/integration/certs.sh (make_certs); a PostgreSQL of the test's own runs with
# ssl = on and hostssl-only rules (start_tls_postgres) for the server side.
#
# Each case runs in a subshell: a failing case is reported and the others still run;
# the test fails at the end listing the cases that failed.
#   client-modes     client_tls_sslmode = prefer: libpq sslmode disable and allow get a
#                    plain session, prefer, require, verify-ca, verify-full (host
#                    127.0.0.1 via the IP SAN, and localhost) get TLS; verify-* with the
#                    untrusted CA fail; metrics: handshakes and failures counted, one
#                    held TLS psql is pgring_tls_connections{side=client,version=TLSv1.3,
#                    cipher=TLS13-...} 1 (0 before and after), /stats has tls.client and
#                    tls.server with the same counts
#   client-require   client_tls_sslmode = require: sslmode=disable is refused before
#                    authentication (FATAL 28000, "SSL required"), allow retries with
#                    TLS, the others get TLS
#   wrong-cert       a wrong-host certificate: verify-full fails ("does not match host
#                    name"), verify-ca works; an expired one: verify-ca fails ("certificate
#                    verify failed"; openssl says expired; two more handshake failures
#                    counted), require works
#   rsa              an RSA-2048 server certificate: verify-full works
#   protocols        client_tls_protocols / client_tls_ciphers are honoured
#   direct           direct TLS (tlsclient direct, ALPN postgresql) logs in; without ALPN
#                    or with another ALPN it is refused (each counted as
#                    failures{reason=alpn}); with client TLS disabled it is refused;
#                    SSLRequest without ALPN still works
#   inject           SSLRequest with plaintext after it in the same packet: refused
#                    (08P01 or closed), never answered
#   gssenc           GSSENCRequest is answered N and SSLRequest follows on the socket;
#                    psql gssencmode=prefer sslmode=require logs in
#   scram-plus       auth_type = scram-sha-256: channel_binding=require (SCRAM-SHA-256-
#                    PLUS) logs in with a SCRAM secret and with a plain one; a wrong
#                    password is 28P01; without TLS plain SCRAM still works
#   cert-auth        auth_type = cert, client_tls_sslmode = verify-ca: CN = user logs in;
#                    CN of someone else: 28000; no certificate, or one from an untrusted
#                    CA: refused (failures{reason=certificate} grows); no TLS: refused
#   server-tls       PostgreSQL with ssl = on: server_tls_sslmode = verify-full with the CA
#                    works and pg_stat_ssl says ssl (handshakes{side=server} > 0, the
#                    pool's TLS servers in pgring_tls_connections{side=server}, no
#                    failures); prefer uses TLS; disable is refused
#                    by PostgreSQL's hostssl rules; verify-ca with the wrong CA and
#                    verify-full against a wrong-host certificate fail, and require
#                    against the shared (non-TLS) PostgreSQL: the client gets an error
#                    (pgring: after failover_timeout, 2 s here), not a wait; the wrong CA
#                    and the wrong host count as failures{side=server,reason=certificate}
#   server-cert      server_tls_cert_file/key_file log in with PostgreSQL's cert method
#   pgbench          pgbench -n -S -c 8 -T 5 with sslmode=require (client_tls_sslmode =
#                    require): no failed transactions
#   slow-reader      tlsclient noread logs in over TLS, asks for ~2 GB and reads nothing:
#                    its backend waits in ClientWrite, the pooler's RSS (6 samples over
#                    6 s) grows less than RSS_BOUND_MB, other TLS clients get answers;
#                    then it reads 1000 well-formed rows, is killed mid-result, and the
#                    pooler answers and lets the backend go
#   copy-pipeline    psql \copy of 100k rows in and out over TLS (same rows, same
#                    bytes), and pipeline.c's 600-query pipeline over TLS gives the
#                    transcript of a direct plaintext run
#   config-check     pgring -t refuses a bad key file, a key that is not the
#                    certificate's, a missing file: exit 1 naming the file
#   reload           SIGHUP with new certificate files (same paths, then other paths):
#                    new handshakes get the new certificate, an open TLS session keeps
#                    working; a bad key or a key of another certificate keeps the old pair
#   resume           tlsclient resume -n 4, TLS 1.3 then 1.2: every reconnection resumes
#                    (tlsclient), pgring_tls_resumed_total{side=client} grows by 3 and
#                    pgring_tls_handshakes_total by 4 each time (PgBouncer: reported)
#   npm              tests/integration/npm/tls.js (pg and postgres.js with ssl { ca,
#                    rejectUnauthorized: true }), first against the TLS PostgreSQL (proves
#                    the script), then through pgring with client TLS
# With TARGET=pgbouncer (PgBouncer 1.18) direct TLS and SCRAM-SHA-256-PLUS are
# reported as known differences; pgring -t and the metrics are pgring only.
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null 2>&1 || fail "openssl is not installed (tools/setup installs it)"
TLSCLIENT=$HELPERS/tlsclient
[[ -x $TLSCLIENT ]] || fail "helper $TLSCLIENT not built"

make_certs "$TEST_TMP/certs" certuser someoneelse app
note "certificates in $CERTS"

# A role for certificate logins (dropped at the end).
qd "DROP ROLE IF EXISTS certuser; CREATE ROLE certuser LOGIN PASSWORD 'certpass'" >/dev/null || fail "create role certuser"
on_exit "qd 'DROP ROLE IF EXISTS certuser'"

# ---------------------------------------------------------------- helpers

NO_FILE=$TEST_TMP/does-not-exist
# tls_ci SSLMODE [EXTRA] [DB USER PASSWORD]: libpq conninfo to the pooler with SSLMODE;
# verify-* trust ca.crt, the others have no root certificate (a ~/.postgresql/root.crt
# would turn require into verify-ca); no client certificate unless EXTRA gives one.
tls_ci() {
	local root=$NO_FILE
	[[ $1 == verify-* ]] && root=$CERTS/ca.crt
	echo "$(conninfo "${3:-app}" "${4:-app}" "${5-app}") sslmode=$1 sslrootcert=$root sslcert=$NO_FILE sslkey=$NO_FILE ${2:-}"
}
# tls_of CONNINFO: "TLSv1.3 TLS_AES_256_GCM_SHA384" (psql's \conninfo) or "plain" after
# a successful SELECT; on failure psql's error and status 1.
tls_of() {
	local out
	out=$(timeout "$Q_TIMEOUT" psql -X -At -v ON_ERROR_STOP=1 -c "SELECT 'tls-of-ok'" -c '\conninfo' "$1" 2>&1) || {
		echo "$out"
		return 1
	}
	[[ $out == *tls-of-ok* ]] || { echo "no answer: $out"; return 1; }
	if [[ $out =~ SSL\ connection\ \(protocol:\ ([^,]+),\ cipher:\ ([^,]+), ]]; then
		echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
	else
		echo plain
	fi
}
expect_tls() { # WHAT CONNINFO
	local out
	out=$(tls_of "$2") || fail "$1: login failed: $out"
	assert_match "$out" '^TLSv1\.[23] ' "$1: a TLS session expected"
}
expect_plain() { # WHAT CONNINFO
	local out
	out=$(tls_of "$2") || fail "$1: login failed: $out"
	assert_eq plain "$out" "$1: a plaintext session expected"
}
# expect_refused WHAT CONNINFO [TEXT]: the login fails (psql's message has TEXT).
expect_refused() {
	local out
	if out=$(tls_of "$2"); then
		fail "$1: must be refused, got a session ($out)"
	fi
	[[ -z ${3:-} ]] || assert_contains "$out" "$3" "$1: error text"
	note "$1: refused: $(head -c 300 <<<"$out" | tr '\n' ' ')"
}

# client_tls_ini SSLMODE [CERT_BASENAME] [EXTRA_LINES]: a pooler config with client TLS
# (key and certificate CERT_BASENAME, default server; CA ca.crt) to the shared
# PostgreSQL, whose server side is left at its default (prefer: plaintext there).
client_tls_ini() {
	local cert=${2:-server}
	cat <<EOF
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 4
max_client_conn = 100
client_tls_sslmode = $1
client_tls_key_file = $CERTS/$cert.key
client_tls_cert_file = $CERTS/$cert.crt
client_tls_ca_file = $CERTS/ca.crt
${3:-}
EOF
}

# tcase NAME FUNCTION...: run one case in a subshell (its own cleanups); a failure is
# recorded and the next case runs.
FAILED=() SKIPPED=()
tcase() {
	local name=$1 rc
	shift
	note "---- $name"
	(
		_CLEANUPS=()
		trap '_run_cleanups' EXIT
		"$@"
	)
	rc=$?
	case $rc in
	0) pass "$name" ;;
	77) SKIPPED+=("$name") ;;
	*) FAILED+=("$name") ;;
	esac
}

# Metrics (pgring only: PgBouncer has no control port). mget VAR NAME LABELS [DEFAULT]:
# the value of NAME{LABELS} (summed over the series that match) into VAR; DEFAULT when
# no series matches (fails without it); fails if /metrics does not answer.
metrics_on() { ! is_pgbouncer; }
mget() {
	local v
	http_get /metrics || fail "GET /metrics: HTTP $HTTP_STATUS"
	if ! v=$(metric "$2" "$3"); then
		[[ -n ${4:-} ]] || fail "/metrics has no series $2{$3}: $(grep -E "^$2" <<<"$HTTP_BODY" | head -5)"
		v=$4
	fi
	_num "$v" "$2{$3}"
	printf -v "$1" '%s' "$v"
}
# tls_open_count SIDE [VERSION]: pgring_tls_connections{side=SIDE[,version=VERSION]}
# (0 without a series)
tls_open_count() { metric pgring_tls_connections "side=\"$1\"${2:+,version=\"$2\"}" || echo 0; }
# mfail_report SIDE: the non-zero failure counters of SIDE, for notes
mfail_report() {
	http_get /metrics && grep -E "^pgring_tls_handshake_failures_total\{side=\"$1\"" <<<"$HTTP_BODY" |
		grep -v ' 0$' | sed -E 's/^pgring_tls_handshake_failures_total//' | tr '\n' ' '
}

# ---------------------------------------------------------------- client side

case_client_modes() {
	start_pgring "$(client_tls_ini prefer)"
	expect_plain "prefer/disable" "$(tls_ci disable)"
	expect_plain "prefer/allow" "$(tls_ci allow)"
	expect_tls "prefer/prefer" "$(tls_ci prefer)"
	expect_tls "prefer/require" "$(tls_ci require)"
	expect_tls "prefer/verify-ca" "$(tls_ci verify-ca)"
	expect_tls "prefer/verify-full (127.0.0.1, IP SAN)" "$(tls_ci verify-full)"
	expect_tls "prefer/verify-full (localhost)" "$(tls_ci verify-full "host=localhost hostaddr=127.0.0.1")"
	expect_refused "prefer/verify-ca, untrusted CA" "$(tls_ci verify-ca "sslrootcert=$CERTS/other-ca.crt")" \
		"certificate verify failed"
	# The certificate served is ours (and a plaintext client is still served).
	local subj
	subj=$(tls_peer_subject "$PORT" "$CERTS/ca.crt") || fail "openssl s_client got no certificate"
	assert_contains "$subj" "CN=localhost,OU=server,O=pgring test" "certificate served"
	assert_contains "$subj" "verify=OK" "certificate served verifies"
	assert_eq 1 "$(q "SELECT 1")" "plaintext query"
	metrics_on || return 0

	# Metrics: 5 TLS logins and s_client's handshake completed; the untrusted-CA
	# client gave up in the handshake.
	local hs fails open line
	mget hs pgring_tls_handshakes_total 'side="client"'
	assert_num_cmp "$hs" -ge 5 "pgring_tls_handshakes_total{side=client} after 5 TLS logins"
	mget fails pgring_tls_handshake_failures_total 'side="client"'
	assert_num_cmp "$fails" -ge 1 "pgring_tls_handshake_failures_total{side=client} after a client refused the certificate"
	note "client handshakes $hs, failures: $(mfail_report client)"
	# No TLS session is open now; one held psql makes one, with its version and cipher.
	wait_until 10 eval '[[ $(tls_open_count client) == 0 ]]' ||
		fail "pgring_tls_connections{side=client} is $(tls_open_count client) with no TLS client connected"
	psql_open held "$(tls_ci require "ssl_min_protocol_version=TLSv1.3")"
	psql_sync held || fail "the held TLS session does not answer: $(psql_err held)"
	open=$(tls_open_count client TLSv1.3)
	assert_eq 1 "$open" "pgring_tls_connections{side=client,version=TLSv1.3} while one TLS psql is open"
	line=$(grep -E '^pgring_tls_connections\{side="client",version="TLSv1\.3",cipher="[^"]+"\} 1$' <<<"$(curl -s --max-time 5 "http://127.0.0.1:$CONTROL_PORT/metrics")")
	assert_match "$line" 'cipher="TLS13-' "the open session's series names its TLS 1.3 cipher"
	note "open: $line"
	# /stats has the same counters as JSON.
	http_get /stats || fail "GET /stats: HTTP $HTTP_STATUS"
	local stats=$HTTP_BODY js
	js=$(jq -c '.tls | {c: .client.handshakes, s: .server.handshakes, f: (.client.failures | type), o: ([.client.connections[].open] | add)}' \
		<<<"$stats") || fail "/stats is not JSON with a tls object: $(head -c 300 <<<"$stats")"
	assert_match "$js" '^\{"c":[0-9]+,"s":0,"f":"object","o":1\}$' \
		"/stats tls: client and server objects (server: no TLS here; one client session open)"
	mget hs pgring_tls_handshakes_total 'side="client"'
	assert_eq "$hs" "$(jq '.tls.client.handshakes' <<<"$stats")" "/stats tls.client.handshakes equals /metrics"
	psql_close held
	assert_eq 0 "$PSQL_STATUS" "the held session ended cleanly ($(psql_err held))"
	wait_until 10 eval '[[ $(tls_open_count client) == 0 ]]' ||
		fail "pgring_tls_connections{side=client} stays at $(tls_open_count client) after the TLS psql left"
}

case_client_require() {
	start_pgring "$(client_tls_ini require)"
	local out rc code
	out=$(PGCONNECT_TIMEOUT=10 pqtry "$(tls_ci disable)" "SELECT 1")
	rc=$?
	assert_eq 2 "$rc" "require/disable: a plaintext login must fail ($out)"
	code=$(awk '{print $2}' <<<"$out")
	if is_pgbouncer && [[ $code != 28000 ]]; then
		known_diff "require/disable: PgBouncer sends $code ($out), pgring must send 28000"
	else
		assert_eq 28000 "$code" "require/disable: SQLSTATE ($out)"
	fi
	assert_contains "$out" "SSL required" "require/disable: message"
	# Refused before authentication: no password was asked for (a wrong one gives the same).
	out=$(pqtry "$(tls_ci disable "" app app wrong)" "SELECT 1")
	assert_contains "$out" "SSL required" "require/disable with a wrong password: refused for TLS, not for the password"
	expect_tls "require/allow (retries with TLS)" "$(tls_ci allow)"
	expect_tls "require/prefer" "$(tls_ci prefer)"
	expect_tls "require/require" "$(tls_ci require)"
	expect_tls "require/verify-ca" "$(tls_ci verify-ca)"
	expect_tls "require/verify-full" "$(tls_ci verify-full)"
}

case_wrong_cert() {
	start_pgring "$(client_tls_ini prefer wronghost)"
	assert_contains "$(tls_peer_subject "$PORT")" "CN=wrong.example.com" "wrong-host certificate served"
	expect_refused "wrong host: verify-full" "$(tls_ci verify-full)" 'does not match host name "127.0.0.1"'
	expect_refused "wrong host: verify-full (localhost)" "$(tls_ci verify-full "host=localhost hostaddr=127.0.0.1")" \
		'does not match host name "localhost"'
	expect_tls "wrong host: verify-ca" "$(tls_ci verify-ca)"
	stop_pgring

	start_pgring "$(client_tls_ini prefer expired)"
	local subj
	subj=$(tls_peer_subject "$PORT" "$CERTS/ca.crt")
	assert_contains "$subj" "OU=expired" "expired certificate served"
	assert_contains "$subj" "certificate has expired" "openssl s_client: the served certificate is expired"
	local f0=0 f1
	metrics_on && mget f0 pgring_tls_handshake_failures_total 'side="client"'
	expect_refused "expired: verify-ca" "$(tls_ci verify-ca)" "certificate verify failed"
	expect_refused "expired: verify-full" "$(tls_ci verify-full)" "certificate verify failed"
	if metrics_on; then
		# The clients refused our certificate (an alert to pgring): failed handshakes.
		mget f1 pgring_tls_handshake_failures_total 'side="client"'
		assert_num_cmp "$f1" -ge $((f0 + 2)) "pgring_tls_handshake_failures_total{side=client} after two clients refused the expired certificate"
		note "expired: failures $f0 -> $f1: $(mfail_report client)"
	fi
	expect_tls "expired: require (no verification)" "$(tls_ci require)"
}

case_rsa() {
	start_pgring "$(client_tls_ini require server-rsa)"
	assert_contains "$(tls_peer_subject "$PORT" "$CERTS/ca.crt")" "OU=rsa" "RSA certificate served"
	expect_tls "rsa: verify-full" "$(tls_ci verify-full)"
	local out
	out=$(tls_of "$(tls_ci verify-full "ssl_max_protocol_version=TLSv1.2")") || fail "rsa: TLS 1.2: $out"
	assert_match "$out" '^TLSv1\.2 ECDHE-RSA-' "rsa: TLS 1.2 cipher suite"
}

case_protocols() {
	local out
	start_pgring "$(client_tls_ini require server "client_tls_protocols = tlsv1.3")"
	out=$(tls_of "$(tls_ci require)") || fail "tlsv1.3 only: login: $out"
	assert_match "$out" '^TLSv1\.3 ' "tlsv1.3 only: version"
	expect_refused "tlsv1.3 only: a TLS 1.2 client" "$(tls_ci require "ssl_max_protocol_version=TLSv1.2")"
	out=$("$TLSCLIENT" query --tls12 -W app 127.0.0.1 "$PORT" 2>&1)
	assert_ne 0 "$?" "tlsv1.3 only: tlsclient --tls12 must fail ($out)"
	stop_pgring

	start_pgring "$(client_tls_ini require server "client_tls_protocols = tlsv1.2
client_tls_ciphers = ECDHE-ECDSA-AES128-GCM-SHA256")"
	out=$(tls_of "$(tls_ci require)") || fail "tlsv1.2 + one cipher: login: $out"
	assert_eq "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256" "$out" "tlsv1.2 + one cipher: negotiated"
	out=$("$TLSCLIENT" query --tls13 -W app 127.0.0.1 "$PORT" 2>&1)
	assert_ne 0 "$?" "tlsv1.2 only: tlsclient --tls13 must fail ($out)"
}

case_direct() {
	if is_pgbouncer; then
		known_diff "direct TLS (PostgreSQL 17): PgBouncer 1.18 does not accept it; not run"
		return 0
	fi
	local out rc
	start_pgring "$(client_tls_ini prefer)"
	out=$("$TLSCLIENT" direct -W app --ca "$CERTS/ca.crt" --verify-name localhost -c "SELECT 'direct-ok', current_user" \
		127.0.0.1 "$PORT" 2>"$TEST_TMP/direct.err")
	rc=$?
	note "direct: $(cat "$TEST_TMP/direct.err")"
	assert_eq 0 "$rc" "direct TLS with ALPN: login and query ($out)"
	assert_eq "direct-ok|app" "$out" "direct TLS: answer"
	assert_contains "$(cat "$TEST_TMP/direct.err")" "alpn=postgresql" "direct TLS: the server selected ALPN postgresql"

	# Without ALPN PostgreSQL 17 may finish the handshake, then closes without a word
	# (its ALPN callback only runs when the client sends ALPN): refused either way.
	local alpn0 alpn1 alpn2
	mget alpn0 pgring_tls_handshake_failures_total 'side="client",reason="alpn"'
	out=$("$TLSCLIENT" direct --no-alpn -W app --ca "$CERTS/ca.crt" -c "SELECT 'direct-ok'" 127.0.0.1 "$PORT" 2>&1)
	rc=$?
	assert_eq 1 "$rc" "direct TLS without ALPN must be refused ($out)"
	assert_contains "$out" "ERROR " "direct TLS without ALPN: refused"
	assert_not_contains "$out" "direct-ok" "direct TLS without ALPN: no query answered"
	is_pgbouncer || assert_contains "$out" "08P01 received direct SSL connection request without ALPN" \
		"direct TLS without ALPN: PostgreSQL 17's error, over TLS"
	note "direct, no ALPN: $(tr '\n' ' ' <<<"$out")"
	mget alpn1 pgring_tls_handshake_failures_total 'side="client",reason="alpn"'
	assert_num_cmp "$alpn1" -ge $((alpn0 + 1)) "pgring_tls_handshake_failures_total{side=client,reason=alpn} after direct TLS without ALPN"

	out=$("$TLSCLIENT" direct --alpn http/1.1 -W app --ca "$CERTS/ca.crt" -c "SELECT 'direct-ok'" 127.0.0.1 "$PORT" 2>&1)
	assert_eq 1 "$?" "direct TLS with ALPN http/1.1 must be refused ($out)"
	assert_not_contains "$out" "direct-ok" "direct TLS with ALPN http/1.1: no query answered"
	note "direct, ALPN http/1.1: $(tr '\n' ' ' <<<"$out")"
	mget alpn2 pgring_tls_handshake_failures_total 'side="client",reason="alpn"'
	assert_num_cmp "$alpn2" -ge $((alpn1 + 1)) "pgring_tls_handshake_failures_total{side=client,reason=alpn} after direct TLS with ALPN http/1.1"
	note "alpn failures: $alpn0 -> $alpn1 (no ALPN) -> $alpn2 (http/1.1)"

	# SSLRequest does not need ALPN (as PostgreSQL 17).
	out=$("$TLSCLIENT" query --no-alpn -W app --ca "$CERTS/ca.crt" -c "SELECT 'sslrequest-ok'" 127.0.0.1 "$PORT" 2>&1)
	assert_eq 0 "$?" "SSLRequest without ALPN ($out)"
	assert_contains "$out" "sslrequest-ok" "SSLRequest without ALPN: answer"
	out=$("$TLSCLIENT" query -W app --ca "$CERTS/ca.crt" -c "SELECT 'sslrequest-alpn-ok'" 127.0.0.1 "$PORT" 2>&1)
	assert_eq 0 "$?" "SSLRequest with ALPN ($out)"
	assert_contains "$out" "sslrequest-alpn-ok" "SSLRequest with ALPN: answer"

	# The pooler still serves plaintext and libpq clients meanwhile.
	assert_eq 1 "$(q "SELECT 1")" "plaintext query after direct TLS"
	stop_pgring

	# Client TLS disabled: a ClientHello is not a startup packet.
	start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
client_tls_sslmode = disable
"
	out=$("$TLSCLIENT" direct -W app 127.0.0.1 "$PORT" 2>&1)
	assert_eq 1 "$?" "direct TLS with client_tls_sslmode = disable must fail ($out)"
	note "direct, TLS disabled: $out"
	assert_eq 1 "$(q "SELECT 1")" "plaintext query with TLS disabled"
}

case_inject() {
	local out rc
	start_pgring "$(client_tls_ini prefer)"
	out=$("$TLSCLIENT" inject 127.0.0.1 "$PORT" 2>&1)
	rc=$?
	note "inject: $(tr '\n' ' ' <<<"$out")"
	# Answering S and then refusing (PostgreSQL), or refusing at once (PgBouncer), are both right.
	assert_match "$out" 'reply: [SE]' "inject: the SSLRequest answer"
	assert_match "$out" 'result: (closed|error 08P01)' "inject: refused (closed or 08P01)"
	assert_eq 0 "$rc" "inject: tlsclient exit (0: refused, 1: the injected startup was answered)"
	assert_eq 1 "$(q "SELECT 1")" "inject: the pooler still works"
}

case_gssenc() {
	local out
	start_pgring "$(client_tls_ini prefer)"
	out=$("$TLSCLIENT" query --gss-first -W app --ca "$CERTS/ca.crt" -c "SELECT 'gss-then-ssl'" 127.0.0.1 "$PORT" 2>&1)
	assert_eq 0 "$?" "GSSENCRequest then SSLRequest ($out)"
	assert_contains "$out" "gssenc: N" "GSSENCRequest answered N"
	assert_contains "$out" "gss-then-ssl" "GSSENCRequest then TLS: answer"
	# libpq sends GSSENCRequest only with a Kerberos ticket; this must work either way.
	expect_tls "gssencmode=prefer sslmode=require" "$(tls_ci require "gssencmode=prefer")"
	expect_plain "gssencmode=prefer sslmode=disable" "$(tls_ci disable "gssencmode=prefer")"
}

case_scram_plus() {
	if is_pgbouncer; then
		known_diff "SCRAM-SHA-256-PLUS: PgBouncer 1.18 has no channel binding; not run"
		return 0
	fi
	local out rc
	start_pgring "$(client_tls_ini prefer server "auth_type = scram-sha-256
auth_file = @AUTH_FILE@")"
	out=$(pqtry "$(tls_ci require "channel_binding=require" app scramuser scrampass)" "SELECT current_user")
	assert_eq 0 "$?" "SCRAM-SHA-256-PLUS with a SCRAM secret ($out)"
	assert_eq scramuser "$out" "SCRAM-SHA-256-PLUS: current_user"
	out=$(pqtry "$(tls_ci verify-full "channel_binding=require" app app app)" "SELECT current_user")
	assert_eq 0 "$?" "SCRAM-SHA-256-PLUS with a plain secret, verify-full ($out)"
	assert_eq app "$out" "SCRAM-SHA-256-PLUS (plain secret): current_user"
	out=$(pqtry "$(tls_ci require "channel_binding=require" app scramuser wrong)" "SELECT 1")
	rc=$?
	assert_eq 2 "$rc" "SCRAM-SHA-256-PLUS, wrong password: refused ($out)"
	assert_contains "$out" "ERROR 28P01" "SCRAM-SHA-256-PLUS, wrong password: SQLSTATE"
	out=$(pqtry "$(tls_ci disable "channel_binding=prefer" app scramuser scrampass)" "SELECT current_user")
	assert_eq 0 "$?" "SCRAM without TLS still works ($out)"
	assert_eq scramuser "$out" "SCRAM without TLS: current_user"
	# libpq refuses channel_binding=require over plaintext itself: nothing to check there.
}

# cert_auth_ini SSLMODE: auth_type = cert, certuser and app in the auth file.
cert_auth_ini() {
	client_tls_ini "$1" server "auth_type = cert
auth_file = @AUTH_FILE@"
}
case_cert_auth() {
	local out rc code mode=verify-ca
	AUTH_FILE_TEXT='"certuser" "certpass"
"app" "app"'
	if is_pgbouncer; then
		known_diff "cert: PgBouncer 1.18 wants client_tls_sslmode = verify-full for auth_type = cert (the same for clients): run with verify-full"
		mode=verify-full
	fi
	start_pgring "$(cert_auth_ini $mode)"
	local ccert="sslcert=$CERTS/client-certuser.crt sslkey=$CERTS/client-certuser.key"
	out=$(pqtry "$(tls_ci verify-full "$ccert" app certuser "")" "SELECT current_user")
	assert_eq 0 "$?" "cert: CN certuser as certuser ($out)"
	assert_eq certuser "$out" "cert: current_user"
	out=$(pqtry "$(tls_ci require "$ccert" app certuser "")" "SELECT current_user")
	assert_eq 0 "$?" "cert: sslmode=require with the certificate ($out)"

	out=$(pqtry "$(tls_ci require "sslcert=$CERTS/client-someoneelse.crt sslkey=$CERTS/client-someoneelse.key" app certuser "")" "SELECT 1")
	rc=$?
	assert_eq 2 "$rc" "cert: CN someoneelse as certuser must be refused ($out)"
	code=$(awk '{print $2}' <<<"$out")
	if is_pgbouncer && [[ $code != 28000 ]]; then
		known_diff "cert: CN mismatch: PgBouncer sends $code ($out), pgring must send 28000"
	else
		assert_eq 28000 "$code" "cert: CN mismatch SQLSTATE ($out)"
	fi
	# A certificate for someoneelse logs in as nobody else either.
	out=$(pqtry "$(tls_ci require "sslcert=$CERTS/client-app.crt sslkey=$CERTS/client-app.key" app certuser "")" "SELECT 1")
	assert_eq 2 "$?" "cert: CN app as certuser must be refused ($out)"

	out=$(pqtry "$(tls_ci require "" app certuser "")" "SELECT 1")
	assert_eq 2 "$?" "cert: no client certificate must be refused ($out)"
	note "cert, no certificate: $out"
	local cf0=0 cf1
	metrics_on && mget cf0 pgring_tls_handshake_failures_total 'side="client",reason="certificate"'
	out=$(pqtry "$(tls_ci require "sslcert=$CERTS/client-untrusted.crt sslkey=$CERTS/client-untrusted.key" app certuser "")" "SELECT 1")
	assert_eq 2 "$?" "cert: a certificate from an untrusted CA must be refused ($out)"
	note "cert, untrusted CA: $out"
	if metrics_on; then
		mget cf1 pgring_tls_handshake_failures_total 'side="client",reason="certificate"'
		assert_num_cmp "$cf1" -ge $((cf0 + 1)) "pgring_tls_handshake_failures_total{side=client,reason=certificate} after a client certificate from an untrusted CA"
		note "certificate failures: $cf0 -> $cf1 ($(mfail_report client))"
	fi
	out=$(pqtry "$(tls_ci disable "" app certuser "")" "SELECT 1")
	assert_eq 2 "$?" "cert: no TLS must be refused ($out)"
	code=$(awk '{print $2}' <<<"$out")
	if is_pgbouncer && [[ $code != 28000 ]]; then
		known_diff "cert: no TLS: PgBouncer sends $code ($out), pgring must send 28000"
	else
		assert_eq 28000 "$code" "cert: no TLS: SQLSTATE ($out)"
	fi
	# A password is no way in under auth_type = cert.
	out=$(pqtry "$(tls_ci require "" app certuser certpass)" "SELECT 1")
	assert_eq 2 "$?" "cert: a password without a certificate must be refused ($out)"
	stop_pgring

	# client_tls_sslmode = verify-full means the same for clients (PgBouncer: a valid
	# certificate): CN = user still decides.
	if ! is_pgbouncer; then
		start_pgring "$(cert_auth_ini verify-full)"
		out=$(pqtry "$(tls_ci verify-full "$ccert" app certuser "")" "SELECT current_user")
		assert_eq 0 "$?" "cert, verify-full: CN certuser as certuser ($out)"
		out=$(pqtry "$(tls_ci require "sslcert=$CERTS/client-someoneelse.crt sslkey=$CERTS/client-someoneelse.key" app certuser "")" "SELECT 1")
		assert_eq 2 "$?" "cert, verify-full: CN someoneelse as certuser must be refused ($out)"
	fi
}

# ---------------------------------------------------------------- server side

# server_tls_ini SSLMODE [PGPORT] [EXTRA] [CA_FILE]: plaintext clients, server side to
# PGPORT (default: the TLS PostgreSQL) with SSLMODE and CA_FILE (default ca.crt).
server_tls_ini() {
	cat <<EOF
[databases]
app = host=127.0.0.1 port=${2:-$TLSPG_PORT} dbname=app
[pgring]
auth_type = md5
auth_file = @AUTH_FILE@
pool_mode = transaction
default_pool_size = 2
server_tls_sslmode = $1
server_tls_ca_file = ${4:-$CERTS/ca.crt}
${3:-}
EOF
}
SSL_SQL="SELECT ssl, version IS NOT NULL FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
# A server that cannot be had over TLS: pgring answers the waiting client with an
# error after failover_timeout (2 s here); PgBouncer keeps it waiting.
FAST_FAIL=$(is_pgbouncer || echo "failover_timeout = 2")
# server_refused WHAT: the client of the pooler now running gets an error (not its
# own connect timeout) and the pooler lives on.
server_refused() {
	local out
	out=$(PGCONNECT_TIMEOUT=10 pqtry "$(conninfo)" "SELECT 1")
	assert_ne 0 "$?" "$1 must fail ($out)"
	note "$1: $out"
	if [[ $out == *"timeout: no answer to the login"* ]] && is_pgbouncer; then
		known_diff "$1: PgBouncer keeps the client waiting (query_wait_timeout)"
	else
		assert_not_contains "$out" "timeout: no answer to the login" \
			"$1: the client must get an error, not wait for a server that cannot be had"
	fi
	alive "$POOLER_PID" || fail "$1: $TARGET died"
}

# tlspg_cert BASENAME: make the TLS PostgreSQL serve CERTS/BASENAME.{crt,key} (reload).
tlspg_cert() {
	cp "$CERTS/$1.crt" "$TLSPG_DIR/tls/server.crt"
	cp "$CERTS/$1.key" "$TLSPG_DIR/tls/server.key"
	[[ $(id -u) == 0 ]] && chown postgres: "$TLSPG_DIR/tls/server.crt" "$TLSPG_DIR/tls/server.key"
	chmod 600 "$TLSPG_DIR/tls/server.key"
	tlspg_sql "SELECT pg_reload_conf()" >/dev/null
	local want="OU=$1," # (eval runs inside wait_until: its $1 is not ours)
	wait_until 10 eval '[[ $(tls_peer_subject "$TLSPG_PORT") == *"$want"* ]]' && return 0
	[[ -n ${TLSPG_RESTORE:-} ]] && return 1   # from a cleanup: no fail (it would exit there)
	fail "the TLS PostgreSQL does not serve $1.crt: $(tls_peer_subject "$TLSPG_PORT")"
}

case_server_tls() {
	local out
	# Proves the TLS PostgreSQL: TLS only, its certificate verifies.
	out=$(tls_peer_subject "$TLSPG_PORT" "$CERTS/ca.crt")
	assert_contains "$out" "verify=OK" "the TLS PostgreSQL's certificate"
	out=$(timeout 10 psql -X -Atq -c "SELECT 1" "host=127.0.0.1 port=$TLSPG_PORT dbname=app user=app password=app sslmode=disable" 2>&1)
	assert_ne 0 "$?" "the TLS PostgreSQL must refuse plaintext ($out)"

	start_pgring "$(server_tls_ini verify-full)" -vv
	out=$(pqtry "$(conninfo)" "$SSL_SQL") || fail "verify-full: query: $out"
	assert_eq "t|t" "$out" "verify-full: pg_stat_ssl of the server connection"
	# PostgreSQL offers SCRAM-SHA-256-PLUS over TLS; pgring binds to its certificate
	# (as libpq's channel_binding=prefer), and the server accepted the binding.
	if ! is_pgbouncer; then
		grep -q "server login: SCRAM-SHA-256-PLUS, channel binding tls-server-end-point" "$POOLER_LOG" ||
			fail "verify-full: the server login did not use SCRAM-SHA-256-PLUS: $(grep 'server login' "$POOLER_LOG" | head -3)"
	fi
	# Many transactions over the pool's TLS server connections.
	out=$(PGPASSWORD=app timeout 30 pgbench -n -c 4 -j 2 -T 2 -f <(echo "SELECT 1;") "$(conninfo)" 2>&1) ||
		fail "verify-full: pgbench through TLS server connections: $out"
	assert_contains "$out" "number of failed transactions: 0" "verify-full: pgbench"
	if metrics_on; then
		local hs open sf
		mget hs pgring_tls_handshakes_total 'side="server"'
		assert_num_cmp "$hs" -gt 0 "pgring_tls_handshakes_total{side=server} with server_tls_sslmode = verify-full"
		mget sf pgring_tls_handshake_failures_total 'side="server"'
		assert_eq 0 "$sf" "pgring_tls_handshake_failures_total{side=server}: no failure against a good certificate"
		# The pool keeps its TLS server connections.
		open=$(tls_open_count server TLSv1.3)
		assert_num_cmp "$open" -ge 1 "pgring_tls_connections{side=server,version=TLSv1.3} with servers in the pool"
		assert_eq 0 "$(tls_open_count client)" "pgring_tls_connections{side=client}: the clients were plaintext"
		http_get /stats || fail "GET /stats: HTTP $HTTP_STATUS"
		assert_eq "$hs" "$(jq '.tls.server.handshakes' <<<"$HTTP_BODY")" "/stats tls.server.handshakes equals /metrics"
		note "server side: $hs handshakes, $open open"
	fi
	stop_pgring

	start_pgring "$(server_tls_ini prefer)"
	out=$(pqtry "$(conninfo)" "$SSL_SQL") || fail "prefer: query: $out"
	assert_eq "t|t" "$out" "prefer: the server connection uses TLS when it can"
	stop_pgring

	start_pgring "$(server_tls_ini disable)"
	out=$(PGCONNECT_TIMEOUT=5 pqtry "$(conninfo)" "SELECT 1")
	assert_ne 0 "$?" "disable against a hostssl-only PostgreSQL must fail ($out)"
	note "server disable vs hostssl only: $out"
	stop_pgring

	start_pgring "$(server_tls_ini verify-ca "" "$FAST_FAIL" "$CERTS/other-ca.crt")"
	server_refused "server verify-ca with the wrong CA"
	local cf
	if metrics_on; then
		mget cf pgring_tls_handshake_failures_total 'side="server",reason="certificate"'
		assert_num_cmp "$cf" -ge 1 "pgring_tls_handshake_failures_total{side=server,reason=certificate}: PostgreSQL's certificate from another CA"
		mget hs pgring_tls_handshakes_total 'side="server"'
		assert_eq 0 "$hs" "pgring_tls_handshakes_total{side=server}: none completed against the wrong CA"
	fi
	stop_pgring

	# require against the shared PostgreSQL, which has no TLS: the client gets an error
	# (not a wait until its own connect timeout).
	start_pgring "$(server_tls_ini require "$PGPORT_REAL" "$FAST_FAIL")"
	server_refused "server require against a PostgreSQL without TLS"
	stop_pgring

	# A wrong-host certificate: verify-full fails, verify-ca works.
	tlspg_cert wronghost
	on_exit "TLSPG_RESTORE=1 tlspg_cert server"
	start_pgring "$(server_tls_ini verify-full "" "$FAST_FAIL")"
	server_refused "server verify-full against a wrong-host certificate"
	if metrics_on; then
		mget cf pgring_tls_handshake_failures_total 'side="server",reason="certificate"'
		assert_num_cmp "$cf" -ge 1 "pgring_tls_handshake_failures_total{side=server,reason=certificate}: PostgreSQL's certificate for another host"
	fi
	stop_pgring
	start_pgring "$(server_tls_ini verify-ca)"
	out=$(pqtry "$(conninfo)" "$SSL_SQL") || fail "verify-ca against a wrong-host certificate: $out"
	assert_eq "t|t" "$out" "verify-ca, wrong host: TLS"
}

case_server_cert() {
	# pgring presents client-certuser.crt to PostgreSQL, whose rule for certuser is `cert`.
	local out
	AUTH_FILE_TEXT='"certuser" "certpass"
"app" "app"'
	start_pgring "$(server_tls_ini verify-full "" "server_tls_cert_file = $CERTS/client-certuser.crt
server_tls_key_file = $CERTS/client-certuser.key")"
	out=$(pqtry "$(conninfo app certuser certpass)" "SELECT current_user, ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
	assert_eq 0 "$?" "server certificate login ($out)"
	assert_eq "certuser|t|/O=pgring test/CN=certuser" "$out" "server certificate login: user, TLS, client DN"
	# Without a certificate PostgreSQL refuses certuser.
	stop_pgring
	start_pgring "$(server_tls_ini verify-full)"
	out=$(pqtry "$(conninfo app certuser certpass)" "SELECT 1")
	assert_ne 0 "$?" "certuser without a certificate must be refused by PostgreSQL ($out)"
}

# ---------------------------------------------------------------- load, config, reload

case_pgbench() {
	local out
	start_pgring "$(client_tls_ini require server "default_pool_size = 8")"
	out=$(PGPASSWORD=app timeout 60 pgbench -n -S -c 8 -j 4 -T 5 "$(tls_ci require)" 2>&1) ||
		fail "pgbench over TLS: $out"
	assert_contains "$out" "number of failed transactions: 0" "pgbench over TLS: failed transactions"
	local n
	n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	assert_num_cmp "${n:-0}" -gt 100 "pgbench over TLS: transactions"
	note "pgbench -S over TLS: $(grep -E '^tps' <<<"$out" | head -1)"
	# Connection churn over TLS: a handshake per transaction.
	out=$(PGPASSWORD=app timeout 60 pgbench -n -S -C -c 4 -j 2 -T 2 "$(tls_ci require)" 2>&1) ||
		fail "pgbench -C over TLS: $out"
	assert_contains "$out" "number of failed transactions: 0" "pgbench -C over TLS"
	note "pgbench -S -C over TLS: $(grep -E '^tps' <<<"$out" | head -1)"
}

# The bound on the pooler's RSS growth while a TLS client does not read a ~2 GB result
# (as t_badinput's: ASan/UBSan builds carry shadow memory and quarantine).
RSS_BOUND_MB=64
[[ $PGRING_BIN == *asan* ]] && ! is_pgbouncer && RSS_BOUND_MB=160
HOG_SQL="SELECT repeat('x', 1000) FROM generate_series(1, 2000000)"
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$POOLER_PID/status"; }
# hog_backends STATE_CLAUSE: PostgreSQL backends running HOG_SQL (and the clause)
hog_backends() {
	qd "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
	    AND query = \$\$$HOG_SQL\$\$ ${1:-}"
}

case_slow_reader() {
	local out hog before peak r i ok=0 samples=()
	start_pgring "$(client_tls_ini require server "default_pool_size = 3")"
	expect_tls "slow reader: a TLS login first" "$(tls_ci require)"
	before=$(rss_kb)
	"$TLSCLIENT" noread -t 120 -W app -c "$HOG_SQL" 127.0.0.1 "$PORT" >"$TEST_TMP/hog.out" 2>&1 &
	hog=$!
	track_pid "$hog"
	on_exit "kill_wait $hog KILL"
	wait_until 20 grep -qx "query sent" "$TEST_TMP/hog.out" ||
		fail "the slow reader did not log in over TLS: $(cat "$TEST_TMP/hog.out")"
	# Back-pressure reaches PostgreSQL: its backend waits to write to the pooler.
	wait_until 20 eval '[[ $(hog_backends "AND state = '"'active'"' AND wait_event = '"'ClientWrite'"'") == 1 ]]' ||
		fail "the slow reader's backend is not held back (ClientWrite): $(qd "SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE query = \$\$$HOG_SQL\$\$")"
	sleep 2
	# RSS over ~6 s while other TLS clients are served.
	peak=$before
	for i in 1 2 3 4 5 6; do
		out=$(timeout "$Q_TIMEOUT" psql -X -Atq -c "SELECT $i" "$(tls_ci require)" 2>&1)
		[[ $out == "$i" ]] && ok=$((ok + 1))
		r=$(rss_kb)
		samples+=("$r")
		((r > peak)) && peak=$r
		sleep 1
	done
	note "slow reader: RSS before $before kB, samples ${samples[*]} kB, peak $peak kB (+$((peak - before)) kB; bound $RSS_BOUND_MB MB)"
	assert_eq 6 "$ok" "slow reader: other TLS clients get answers meanwhile (last: $out)"
	assert_num_cmp $((peak - before)) -lt $((RSS_BOUND_MB * 1024)) "slow reader: the pooler's RSS growth in kB"
	assert_eq 1 "$(hog_backends "AND wait_event = 'ClientWrite'")" "slow reader: its server is still held back after the sampling"
	alive "$hog" || fail "the slow reader died: $(cat "$TEST_TMP/hog.out")"

	# What was held back is still a well-formed result over TLS.
	kill -USR1 "$hog"
	wait_until 30 grep -q "^read: " "$TEST_TMP/hog.out" ||
		fail "the slow reader could not read its result after the pause: $(cat "$TEST_TMP/hog.out")"
	out=$(cat "$TEST_TMP/hog.out")
	note "slow reader: $(tr '\n' ' ' <<<"$out")"
	assert_contains "$out" "read: 1000 rows ok" "slow reader: 1000 DataRows after the pause"
	assert_contains "$out" "peer: open" "slow reader: the pooler kept the connection"
	assert_match "$out" 'unread: [1-9][0-9]* bytes' "slow reader: the result had started to arrive"

	# It vanishes mid-result: the pooler lives on and lets the backend go.
	kill_wait "$hog" KILL
	alive "$POOLER_PID" || fail "$TARGET died when the slow reader was killed"
	expect_tls "after the slow reader was killed" "$(tls_ci require)"
	wait_until 30 eval '[[ $(hog_backends) == 0 ]]' ||
		fail "the killed slow reader's query still runs in PostgreSQL: $(qd "SELECT state, wait_event FROM pg_stat_activity WHERE query = \$\$$HOG_SQL\$\$")"
	r=$(rss_kb)
	note "slow reader gone: RSS $r kB"
	assert_num_cmp $((r - before)) -lt $((RSS_BOUND_MB * 1024)) "RSS growth in kB after the slow reader"
}

# COPY in and out and a libpq pipeline over TLS (client_tls_sslmode = require: the
# sessions are TLS).
case_copy_pipeline() {
	local data=$TEST_TMP/copy.tsv back=$TEST_TMP/copy-back.tsv out
	qd "DROP TABLE IF EXISTS tls_copy; CREATE UNLOGGED TABLE tls_copy (id int, v text); ALTER TABLE tls_copy OWNER TO app" >/dev/null ||
		fail "create tls_copy"
	on_exit "qd 'DROP TABLE IF EXISTS tls_copy'"
	qd "COPY (SELECT g, repeat(md5(g::text), 2) FROM generate_series(1, 100000) g) TO STDOUT" >"$data" || fail "the COPY data"
	assert_eq 100000 "$(wc -l <"$data")" "rows of COPY data"
	start_pgring "$(client_tls_ini require)"
	out=$(timeout "$Q_TIMEOUT" psql -X -Atq -v ON_ERROR_STOP=1 -c "\\copy tls_copy from '$data'" \
		-c "SELECT 'after-copy-in', count(*) FROM tls_copy" -c '\conninfo' "$(tls_ci require)" 2>&1) ||
		fail "COPY FROM over TLS: $out"
	assert_contains "$out" "after-copy-in|100000" "COPY FROM over TLS, then a query in the same session"
	assert_contains "$out" "SSL connection" "COPY FROM: a TLS session"
	assert_eq "100000|5000050000|6400000" "$(qd "SELECT count(*), sum(id), sum(length(v)) FROM tls_copy")" "rows copied in over TLS"
	out=$(timeout "$Q_TIMEOUT" psql -X -Atq -v ON_ERROR_STOP=1 -c "\\copy (SELECT * FROM tls_copy ORDER BY id) to '$back'" \
		-c "SELECT 'after-copy-out'" "$(tls_ci require)" 2>&1) || fail "COPY TO over TLS: $out"
	assert_eq "after-copy-out" "$out" "COPY TO over TLS, then a query in the same session"
	assert_eq 100000 "$(wc -l <"$back")" "rows copied out over TLS"
	cmp -s "$data" "$back" || fail "COPY TO over TLS: the rows differ from what went in ($(cmp "$data" "$back" 2>&1))"

	# A pipeline (600 queries in 120 Sync segments sent before reading, some failing):
	# the transcript over TLS through the pooler is the one of a direct plaintext run.
	local pipe=$HELPERS/pipeline ref=$TEST_TMP/pipe-direct.txt got=$TEST_TMP/pipe-tls.txt
	[[ -x $pipe ]] || fail "helper $pipe not built"
	timeout 60 "$pipe" "host=$PGHOST_REAL port=$PGPORT_REAL dbname=app user=app password=app" many >"$ref" 2>&1 ||
		fail "pipeline directly: $(tail -5 "$ref")"
	assert_eq 120 "$(grep -c '^PGRES_PIPELINE_SYNC' "$ref")" "pipeline directly: Sync segments"
	timeout 60 "$pipe" "$(tls_ci require)" many >"$got" 2>&1 || fail "pipeline over TLS: $(tail -5 "$got")"
	if ! cmp -s "$ref" "$got"; then
		diff -u "$ref" "$got" | head -30 | sed 's/^/#   /'
		fail "pipeline over TLS through $TARGET: the transcript differs from the direct one"
	fi
	note "pipeline over TLS: $(wc -l <"$got") transcript lines, identical"
}

case_config_check() {
	pgring_only "pgring -t (PgBouncer has no config check mode)"
	local dir=$TEST_TMP/check out rc
	mkdir -p "$dir"
	echo "this is not a key" >"$dir/bad.key"
	chmod 600 "$dir/bad.key"
	# check WHAT KEYFILE CERTFILE SIDE MUST_NAME
	check() {
		cat >"$dir/pgring.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PGPORT_REAL dbname=app
[pgring]
listen_addr = 127.0.0.1
listen_port = 6432
unix_socket_dir =
auth_type = md5
auth_file = $USERLIST
${4}_tls_sslmode = $([[ $4 == client ]] && echo require || echo verify-full)
${4}_tls_key_file = $2
${4}_tls_cert_file = $3
${4}_tls_ca_file = $CERTS/ca.crt
EOF
		out=$(timeout 10 "$PGRING_BIN" -t -c "$dir/pgring.ini" 2>&1)
		rc=$?
		assert_eq 1 "$rc" "pgring -t, $1: exit ($out)"
		assert_contains "$out" "$5" "pgring -t, $1: the message names the file"
		note "pgring -t, $1: $(head -3 <<<"$out" | tr '\n' ' ')"
	}
	check "client key not a key" "$dir/bad.key" "$CERTS/server.crt" client bad.key
	check "client key of another certificate" "$CERTS/server2.key" "$CERTS/server.crt" client server2.key
	check "client key missing" "$dir/missing.key" "$CERTS/server.crt" client missing.key
	check "client certificate missing" "$CERTS/server.key" "$dir/missing.crt" client missing.crt
	check "server key not a key" "$dir/bad.key" "$CERTS/client-certuser.crt" server bad.key
	# And the good one passes.
	sed -i "s|^client_tls_key_file = .*|client_tls_key_file = $CERTS/server.key|; s|^client_tls_cert_file = .*|client_tls_cert_file = $CERTS/server.crt|" "$dir/pgring.ini"
	sed -i "s|^server_tls_key_file = .*|server_tls_key_file = $CERTS/client-certuser.key|" "$dir/pgring.ini"
	out=$(timeout 10 "$PGRING_BIN" -t -c "$dir/pgring.ini" 2>&1)
	assert_eq 0 "$?" "pgring -t with good files ($out)"
}

case_reload() {
	local dir=$TEST_TMP/reload out text
	mkdir -p "$dir"
	chmod 755 "$dir"
	cp -p "$CERTS/ca.crt" "$dir/ca.crt"
	cp -p "$CERTS/server.crt" "$dir/cur.crt"
	cp -p "$CERTS/server.key" "$dir/cur.key"
	text=$(CERTS=$dir client_tls_ini require cur)
	start_pgring "$text"
	assert_contains "$(tls_peer_subject "$PORT" "$CERTS/ca.crt")" "OU=server," "before reload: server.crt"

	psql_open held "$(tls_ci verify-full)"
	psql_sync held || fail "the held TLS session does not answer: $(psql_err held)"
	psql_send held "\\conninfo"
	psql_sync held || fail "held session"
	assert_contains "$(psql_out held)" "SSL connection" "the held session is TLS"

	# 1. New files under the same paths.
	cp -p "$CERTS/server2.crt" "$dir/cur.crt"
	cp -p "$CERTS/server2.key" "$dir/cur.key"
	reload_pgring "$text"
	wait_until 10 eval '[[ $(tls_peer_subject "$PORT") == *"OU=server2,"* ]]' ||
		fail "after SIGHUP, new handshakes do not get server2.crt: $(tls_peer_subject "$PORT")"
	expect_tls "after reload: verify-full" "$(tls_ci verify-full)"
	psql_sync held || fail "the TLS session opened before the reload broke: $(psql_err held)"

	# 2. A bad key: the old pair stays.
	echo "not a key" >"$dir/cur.key"
	reload_pgring "$text"
	sleep 1
	alive "$POOLER_PID" || fail "pgring died on a reload with a bad key"
	assert_contains "$(tls_peer_subject "$PORT" "$CERTS/ca.crt")" "OU=server2," "bad key: still server2.crt"
	expect_tls "bad key: new login" "$(tls_ci verify-full)"
	psql_sync held || fail "bad key: the held session broke"
	grep -q "cur.key" "$POOLER_LOG" || fail "bad key: the log does not name cur.key"
	note "log: $(grep -m1 "cur.key" "$POOLER_LOG")"

	# 3. A key of another certificate: the old pair stays.
	cp -p "$CERTS/server.key" "$dir/cur.key"
	reload_pgring "$text"
	sleep 1
	alive "$POOLER_PID" || fail "pgring died on a reload with a mismatched key"
	assert_contains "$(tls_peer_subject "$PORT" "$CERTS/ca.crt")" "OU=server2," "mismatched key: still server2.crt"
	expect_tls "mismatched key: new login" "$(tls_ci verify-full)"
	psql_sync held || fail "mismatched key: the held session broke"

	# 4. Other paths in the configuration (RSA).
	reload_pgring "$(client_tls_ini require server-rsa)"
	wait_until 10 eval '[[ $(tls_peer_subject "$PORT") == *"OU=rsa,"* ]]' ||
		fail "after SIGHUP with new paths, new handshakes do not get server-rsa.crt: $(tls_peer_subject "$PORT")"
	expect_tls "after reload to RSA: verify-full" "$(tls_ci verify-full)"
	psql_sync held || fail "the TLS session opened before the reloads broke: $(psql_err held)"
	psql_close held
	assert_eq 0 "$PSQL_STATUS" "the held session ended cleanly ($(psql_err held))"
}

case_resume() {
	local out n=4 r0=0 r1 r2 h0=0 h1 h2
	start_pgring "$(client_tls_ini require)"
	# resume_run LABEL ARGS...: n logins, each offering the session of the one before.
	resume_run() {
		local label=$1
		shift
		out=$("$TLSCLIENT" resume "$@" -n $n -W app --ca "$CERTS/ca.crt" 127.0.0.1 "$PORT" 2>&1)
		assert_eq 0 "$?" "tlsclient resume $label: logins ($out)"
		note "resume $label: $(grep -E '^resumed [0-9]' <<<"$out")"
	}
	metrics_on && { mget r0 pgring_tls_resumed_total 'side="client"'; mget h0 pgring_tls_handshakes_total 'side="client"'; }
	resume_run "(TLS 1.3)" --tls13
	if ! metrics_on; then
		note "resume through PgBouncer: reported, not checked"
		resume_run "(TLS 1.2)" --tls12
		return 0
	fi
	# Every reconnection resumed (the client saw it, pgring counted it).
	assert_contains "$out" "resumed $((n - 1)) of $((n - 1))" "TLS 1.3: every reconnection resumed (tlsclient)"
	mget r1 pgring_tls_resumed_total 'side="client"'
	mget h1 pgring_tls_handshakes_total 'side="client"'
	assert_num_cmp "$r1" -ge $((r0 + n - 1)) "pgring_tls_resumed_total{side=client} after $n TLS 1.3 logins offering the session before"
	assert_eq $((h0 + n)) "$h1" "pgring_tls_handshakes_total{side=client}: one per login, resumed or not"
	resume_run "(TLS 1.2)" --tls12
	assert_contains "$out" "resumed $((n - 1)) of $((n - 1))" "TLS 1.2: every reconnection resumed (tlsclient)"
	mget r2 pgring_tls_resumed_total 'side="client"'
	mget h2 pgring_tls_handshakes_total 'side="client"'
	assert_num_cmp "$r2" -ge $((r1 + n - 1)) "pgring_tls_resumed_total{side=client} after $n TLS 1.2 logins offering the session before"
	assert_eq $((h1 + n)) "$h2" "pgring_tls_handshakes_total{side=client}: one per TLS 1.2 login"
	note "resumed: $r0 -> $r1 (TLS 1.3) -> $r2 (TLS 1.2); handshakes $h0 -> $h1 -> $h2"
}

case_npm() {
	command -v node >/dev/null 2>&1 || skip "node is not installed"
	local out
	npm_modules tls.js
	# 1. Directly against the TLS PostgreSQL: proves the script.
	out=$(timeout 90 node "$NPM_DIR/tls.js" "$TLSPG_PORT" "$CERTS/ca.crt" "$CERTS/other-ca.crt" 2>&1) ||
		fail "tls.js directly against PostgreSQL with TLS (the script is wrong): $out"
	note "npm direct: $out"
	# 2. Through the pooler.
	start_pgring "$(client_tls_ini require)"
	out=$(timeout 90 node "$NPM_DIR/tls.js" "$PORT" "$CERTS/ca.crt" "$CERTS/other-ca.crt" 2>&1) ||
		fail "tls.js through $TARGET: $out"
	note "npm through $TARGET: $out"
}

# ---------------------------------------------------------------- run

TLSPG_HBA="hostssl all postgres 127.0.0.1/32 trust
hostssl all certuser 127.0.0.1/32 cert
hostssl all md5user 127.0.0.1/32 md5
hostssl all all 127.0.0.1/32 scram-sha-256
hostnossl all all 127.0.0.1/32 reject" start_tls_postgres pgtls "$CERTS"
tlspg_sql "CREATE ROLE certuser LOGIN" >/dev/null || fail "create role certuser on the TLS PostgreSQL"

tcase client-modes case_client_modes
tcase client-require case_client_require
tcase wrong-cert case_wrong_cert
tcase rsa case_rsa
tcase protocols case_protocols
tcase direct case_direct
tcase inject case_inject
tcase gssenc case_gssenc
tcase scram-plus case_scram_plus
tcase cert-auth case_cert_auth
tcase server-tls case_server_tls
tcase server-cert case_server_cert
tcase pgbench case_pgbench
tcase slow-reader case_slow_reader
tcase copy-pipeline case_copy_pipeline
tcase config-check case_config_check
tcase reload case_reload
tcase resume case_resume
tcase npm case_npm

((${#SKIPPED[@]} > 0)) && note "skipped: ${SKIPPED[*]}"
if ((${#FAILED[@]} > 0)); then
	POOLER_LOG='' # each case printed its own details
	fail "cases failed: ${FAILED[*]}"
fi
