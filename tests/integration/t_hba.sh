#!/usr/bin/env bash
# t_hba (pgring only): auth_type = hba with auth_hba_file (issue 15 point 1),
# real psql logins over TCP (127.0.0.1 and ::1), TLS and the Unix socket:
#  - first match wins; each method does what PostgreSQL's does: trust (no
#    password), reject, password, md5, scram-sha-256 (a user whose auth_file
#    secret is md5 cannot do SCRAM: 28P01, as PostgreSQL), cert (CN = user),
#    peer (the OS user on the socket must be the user);
#  - local / host / hostssl / hostnossl, IPv4 and IPv6 masks, database and user
#    lists, sameuser, a quoted "all", @file includes;
#  - refusals in PostgreSQL's words, SQLSTATE 28000: "no pg_hba.conf entry for
#    host ..., no encryption | SSL encryption", "pg_hba.conf rejects connection";
#  - pgring -t names FILE:LINE for a bad line, and refuses auth_hba_file without
#    auth_type = hba; SIGHUP reads the file again, and a bad file keeps the rules
#    that run.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "the messages and pgring -t are pgring's (PgBouncer 1.18 has auth_type = hba too)"

make_certs
MD5APP="md5$(printf '%s' appapp | md5sum | cut -d' ' -f1)"
D=$TEST_TMP/hbadir
mkdir -p "$D"
chmod 755 "$D"
printf 'friend1\n"friend2", app  # who may use db friends\n' >"$D/friends"
HBA=$D/hba.conf
# the rules: line numbers matter (the log names them)
cat >"$HBA" <<'EOF'
# pgring t_hba
local    app        postgres                  peer
local    all        all                       reject
hostssl  ssldb      app       127.0.0.1/32    md5
hostnossl nossldb   app       127.0.0.1/32    md5
host     app        mallory   127.0.0.1/32    reject
host     app        app       127.0.0.1/32    md5
host     trusted    app       127.0.0.0/8     trust
host     plaindb    app       127.0.0.1/32    password
host     scramdb    app       127.0.0.1/32    scram-sha-256
host     scramdb2   scramuser 127.0.0.1/32    scram-sha-256
host     v6db       app       ::1/128         trust
host     friends    @friends  127.0.0.1 255.255.255.255  md5
host     sameuser   all       127.0.0.1/32    md5
host     "all"      app       127.0.0.1/32    trust
hostssl  certdb     all       127.0.0.1/32    cert
EOF
AUTH_FILE_TEXT=$(cat "$USERLIST")
# app's secret as md5 (the shared file has it plain), so that SCRAM for it must
# fail; the servers are logged in to with password=app on the entries
AUTH_FILE_TEXT=$(sed "s/^\"app\" \"app\"\$/\"app\" \"$MD5APP\"/" <<<"$AUTH_FILE_TEXT")
START_CONF="
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app password=app
trusted = host=@PGHOST@ port=@PGPORT@ dbname=app password=app
plaindb = host=@PGHOST@ port=@PGPORT@ dbname=app password=app
scramdb = host=@PGHOST@ port=@PGPORT@ dbname=app password=app
scramdb2 = host=@PGHOST@ port=@PGPORT@ dbname=app
v6db = host=@PGHOST@ port=@PGPORT@ dbname=app password=app
friends = host=@PGHOST@ port=@PGPORT@ dbname=app password=app
ssldb = host=@PGHOST@ port=@PGPORT@ dbname=app password=app
nossldb = host=@PGHOST@ port=@PGPORT@ dbname=app password=app
certdb = host=@PGHOST@ port=@PGPORT@ dbname=app password=app
all = host=@PGHOST@ port=@PGPORT@ dbname=app password=app
md5user = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
listen_addr = 127.0.0.1,::1
unix_socket_dir = @DIR@
auth_type = hba
auth_hba_file = $HBA
pool_mode = transaction
default_pool_size = 2
client_tls_sslmode = prefer
client_tls_key_file = $CERTS/server.key
client_tls_cert_file = $CERTS/server.crt
client_tls_ca_file = $CERTS/ca.crt
"
start_pgring "$START_CONF"

# try NAME CONNINFO [PASSWORD]: psql SELECT current_user; OUT and RC
try() {
	OUT=$(PGPASSWORD=${3:-} PGSSLMODE=${PGSSLMODE:-disable} timeout 20 psql -X -Atq -w -c "SELECT current_user" "$2" 2>&1)
	RC=$?
}
ok() { # NAME CONNINFO [PASSWORD] [USER]
	try "$@"
	assert_eq 0 "$RC" "$1: logs in (output: $OUT)"
	assert_eq "${4:-app}" "$OUT" "$1: current_user"
	note "$1: ok"
}
refused() { # NAME CONNINFO PASSWORD ERE
	try "$1" "$2" "$3"
	assert_ne 0 "$RC" "$1: must be refused (got: $OUT)"
	assert_match "$OUT" "$4" "$1: message"
	note "$1: refused: $OUT"
}
tcp() { echo "host=127.0.0.1 port=$PORT dbname=$1 user=$2 ${3:-}"; }

ok "md5 line" "$(tcp app app)" app
refused "md5 line, wrong password" "$(tcp app app)" nope 'password authentication failed for user "app"'
refused "reject line" "$(tcp app mallory)" x \
	'FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "mallory", database "app", no encryption'
refused "no line" "$(tcp app md5user)" md5pass \
	'FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "md5user", database "app", no encryption'
ok "trust line: no password" "$(tcp trusted app)"
ok "password line" "$(tcp plaindb app)" app
refused "password line, wrong password" "$(tcp plaindb app)" nope 'password authentication failed'
refused "scram-sha-256 line, user with an md5 secret" "$(tcp scramdb app)" app 'password authentication failed for user "app"'
ok "scram-sha-256 line, user with a SCRAM secret" "$(tcp scramdb2 scramuser)" scrampass scramuser
ok "@file include, ip + mask columns" "$(tcp friends app)" app
refused "@file include: a name not in the file" "$(tcp friends mallory)" x 'no pg_hba.conf entry for host "127.0.0.1", user "mallory", database "friends"'
ok "sameuser: database md5user for user md5user" "$(tcp md5user md5user)" md5pass md5user
ok "a quoted \"all\" is a database named all" "$(tcp all app)"
# IPv6 loopback: the ::1 line, and the IPv4 lines do not cover it
ok "::1/128 trust" "host=::1 port=$PORT dbname=v6db user=app"
refused "::1: an IPv4 line does not match" "host=::1 port=$PORT dbname=app user=app" app \
	'no pg_hba.conf entry for host "::1", user "app", database "app", no encryption'
refused "v6db over IPv4" "$(tcp v6db app)" "" 'no pg_hba.conf entry for host "127.0.0.1"'
# hostssl / hostnossl
PGSSLMODE=require ok "hostssl with TLS" "$(tcp ssldb app)" app
refused "hostssl without TLS" "$(tcp ssldb app)" app \
	'no pg_hba.conf entry for host "127.0.0.1", user "app", database "ssldb", no encryption'
ok "hostnossl without TLS" "$(tcp nossldb app)" app
PGSSLMODE=require refused "hostnossl with TLS" "$(tcp nossldb app)" app \
	'no pg_hba.conf entry for host "127.0.0.1", user "app", database "nossldb", SSL encryption'
# cert: the client certificate's CN is the user
PGSSLMODE=verify-ca ok "cert line, CN = user" "$(tcp certdb app "sslrootcert=$CERTS/ca.crt sslcert=$CERTS/client-app.crt sslkey=$CERTS/client-app.key")"
PGSSLMODE=verify-ca refused "cert line, CN of someone else" \
	"$(tcp certdb app "sslrootcert=$CERTS/ca.crt sslcert=$CERTS/client-certuser.crt sslkey=$CERTS/client-certuser.key")" "" \
	'certificate authentication failed for user "app"'
# local: peer, then reject for everyone else
SOCK="host=$POOLER_DIR port=$PORT"
out=$(runuser -u postgres -- psql -X -Atq -w -c "SELECT current_user" "$SOCK dbname=app user=postgres" 2>&1)
assert_eq postgres "$out" "peer: OS user postgres logs in as postgres over the socket"
refused "peer: OS user root as postgres" "$SOCK dbname=app user=postgres" "" 'FATAL:  Peer authentication failed for user "postgres"'
refused "local reject" "$SOCK dbname=app user=app" app \
	'pg_hba.conf rejects connection for host "\[local\]", user "app", database "app", no encryption'
assert_match "$(cat "$POOLER_LOG")" 'refused by auth_hba_file line 6: user "mallory"' "the log names the rejecting line"
pass "hba rules: methods, connection types, addresses, lists, messages"

# reload: a new first line rejects app; then a broken file keeps those rules
sed -i '1a host app app 127.0.0.1/32 reject' "$HBA"
reload_pgring "$START_CONF"
wait_until 5 eval 'try x "$(tcp app app)" app; [[ $OUT == *"pg_hba.conf rejects connection"* ]]' ||
	fail "after SIGHUP the new line does not apply: $OUT"
note "reload: the new line applies: $OUT"
echo 'host all all 999.1.1.1/32 md5' >>"$HBA"
reload_pgring "$START_CONF"
wait_until 5 eval 'grep -q "invalid IP address \"999.1.1.1/32\"" "$POOLER_LOG"' ||
	fail "a bad file on reload is not logged with its line"
assert_match "$(grep 'reload failed' "$POOLER_LOG" | tail -1)" "hba.conf:[0-9]+: invalid IP address" "the reload failure names the line"
refused "a bad file on reload keeps the running rules" "$(tcp app app)" app 'pg_hba.conf rejects connection for host "127.0.0.1", user "app"'
ok "lines the reload did not touch still work" "$(tcp trusted app)"
stop_pgring
sed -i '$d' "$HBA"   # the broken line goes
pass "reload: new rules apply; a bad file keeps the old ones"

# pgring -t
check() { OUT=$(timeout 10 "$PGRING_BIN" -t -c "$1" 2>&1); RC=$?; }
base="[databases]
app = host=127.0.0.1 port=$PGPORT_REAL dbname=app
[pgring]
listen_port = 6432
unix_socket_dir =
auth_file = $USERLIST
"
printf 'host all all 10.0.0.0/8 md5\nhost all +admins all md5\n' >"$D/bad.conf"
printf '%sauth_type = hba\nauth_hba_file = %s\n' "$base" "$D/bad.conf" >"$D/t1.ini"
check "$D/t1.ini"
assert_eq 1 "$RC" "-t with a bad hba line: exit status ($OUT)"
assert_match "$OUT" "bad\\.conf:2: \"\\+admins\": group membership is not known to pgring" "-t names the hba file's line"
printf '%sauth_type = md5\nauth_hba_file = %s\n' "$base" "$HBA" >"$D/t2.ini"
check "$D/t2.ini"
assert_eq 1 "$RC" "-t: auth_hba_file without auth_type = hba ($OUT)"
assert_match "$OUT" "t2\\.ini:[0-9]+: auth_hba_file is read only with auth_type = hba" "-t says why"
printf '%sauth_type = hba\n' "$base" >"$D/t3.ini"
check "$D/t3.ini"
assert_eq 1 "$RC" "-t: auth_type = hba without a file ($OUT)"
printf '%sauth_type = hba\nauth_hba_file = hba.conf\n' "$base" >"$D/t4.ini"
check "$D/t4.ini"
assert_eq 0 "$RC" "-t: a good file, relative to the config's directory ($OUT)"
pass "pgring -t checks auth_hba_file"
