#!/usr/bin/env bash
# t_hbaserver (pgring only): auth_hba_file = @server (issue 15 point 2): the
# rules are the cluster primary's pg_hba_file_rules, read by the health checks
# of a PostgreSQL of this test's own (its pg_hba.conf is rewritten here):
#  - the server's rules decide at pgring: methods as the server's (md5 for
#    md5user, SCRAM for the others), a server-side reject line refuses at pgring
#    with PostgreSQL's words;
#  - a changed pg_hba.conf is in force at pgring within a few health intervals;
#  - a line pgring cannot enforce (ldap) refuses the logins it covers, warned
#    once; the lines after it still work for the others;
#  - a pg_hba.conf with an error (as PostgreSQL, which keeps its old rules
#    then) keeps the rules in force, logged;
#  - pgring -t: @server needs exactly one cluster, @NAME names one.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"
pgring_only "auth_hba_file = @server is pgring's"

PGTMP=$ROOT/tools/pgtmp
chmod o+x "$TEST_TMP"
CL=$TEST_TMP/cluster
mkdir -p "$CL"
chmod 755 "$CL"
on_exit "$PGTMP stop $CL/p1"
P1=$(timeout 120 "$PGTMP" start "$CL/p1" | sed -n 's/^PORT=//p')
[[ -n $P1 ]] || fail "the test's PostgreSQL did not start"
on() { timeout 30 psql -X -Atq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$P1" -U postgres -d postgres -c "$1"; }
# set_hba TEXT: the server's pg_hba.conf becomes TEXT, and the server reloads it
set_hba() {
	printf '%s\n' "$1" | runuser -u postgres -- tee "$CL/p1/data/pg_hba.conf" >/dev/null
	on "SELECT pg_reload_conf()" >/dev/null
}
HBA_HEAD="local all all trust
host  all postgres  127.0.0.1/32   trust"

CONF="
[pgring]
auth_type = hba
auth_hba_file = @server
pool_mode = transaction
default_pool_size = 2
health_check_user = postgres
health_check_dbname = postgres
health_check_interval = 0.3
[cluster.main]
pg1 = host=127.0.0.1 port=$P1 role=primary
[databases]
app = cluster=main dbname=app
"
start_pgring "$CONF"

try() { OUT=$(timeout 20 psql -X -Atq -w -c "SELECT 1" "$(conninfo "$1" "$2" "$3")" 2>&1); RC=$?; }
log_has() { grep -qF "$1" "$POOLER_LOG"; }

# --- pgtmp's own rules: md5 for md5user, SCRAM for everyone else
wait_until 10 log_has "auth_hba_file = @main: 5 rules from main/pg1" ||
	fail "the server's rules were not read: $(tail -5 "$POOLER_LOG")"
try app app app
assert_eq 1 "$OUT" "app logs in under the server's scram-sha-256 line"
try app md5user md5pass
assert_eq 1 "$OUT" "md5user logs in under the server's md5 line"
try app app wrong
assert_match "$OUT" "password authentication failed" "a wrong password is refused"
pass "the server's pg_hba_file_rules are pgring's rules"

# --- a changed pg_hba.conf: a reject line and an ldap line pgring cannot enforce
set_hba "$HBA_HEAD
host  app scramuser 127.0.0.1/32   reject
host  all app       127.0.0.1/32   ldap ldapserver=127.0.0.1 ldapprefix=\"cn=\" ldapsuffix=\",dc=x\"
host  all md5user   127.0.0.1/32   md5
host  all all       127.0.0.1/32   scram-sha-256"
wait_until 10 log_has "auth_hba_file = @main: 6 rules from main/pg1" ||
	fail "the changed rules were not read: $(tail -5 "$POOLER_LOG")"
try app scramuser scrampass
assert_ne 0 "$RC" "scramuser must now be refused ($OUT)"
assert_match "$OUT" 'pg_hba.conf rejects connection for host "127.0.0.1", user "scramuser", database "app", no encryption' \
	"the server's reject line, in PostgreSQL's words"
try app app app
assert_ne 0 "$RC" "app is covered by the ldap line: refused at pgring ($OUT)"
assert_match "$OUT" "pg_hba.conf rejects connection" "the ldap line is a refusal"
log_has 'authentication method "ldap" is not supported by pgring (the server'"'"'s rule is enforced as reject)' ||
	fail "the ldap line is not warned: $(grep -i ldap "$POOLER_LOG" | tail -3)"
assert_eq 1 "$(grep -c 'ldap" is not supported' "$POOLER_LOG")" "the unenforceable line is warned once, not at every check"
try app md5user md5pass
assert_eq 1 "$OUT" "md5user, on a line after the ldap one, still logs in"
pass "a changed pg_hba.conf is in force at pgring; an ldap line refuses the logins it covers (warned once)"

# --- a broken pg_hba.conf keeps the rules in force
set_hba "$HBA_HEAD
host  all all       127.0.0.1/32   bogusmethod
host  all all       127.0.0.1/32   trust"
wait_until 10 log_has "keeping the rules in force" ||
	fail "a broken server file is not reported: $(tail -5 "$POOLER_LOG")"
assert_match "$(grep 'keeping the rules' "$POOLER_LOG" | tail -1)" 'pg1 pg_hba.conf:3: .*bogusmethod' \
	"the log names the server's line"
try app scramuser scrampass
assert_match "$OUT" "pg_hba.conf rejects connection" "the rules before the broken file are still in force (not the trust line)"
try app md5user md5pass
assert_eq 1 "$OUT" "and md5user still logs in"
pass "a broken pg_hba.conf on the server keeps the rules in force"

# --- back to pgtmp's: read again
set_hba "$HBA_HEAD
host  all md5user   127.0.0.1/32   md5
host  all all       127.0.0.1/32   scram-sha-256"
wait_until 10 eval 'try app app app; [[ $OUT == 1 ]]' || fail "the restored rules are not in force: $OUT"
N=$(grep -c "auth_hba_file = @main: 4 rules" "$POOLER_LOG")
reload_pgring "$CONF"
wait_until 10 eval '(( $(grep -c "auth_hba_file = @main: 4 rules" "$POOLER_LOG") > N ))' ||
	fail "a reload does not read the server's rules again"
try app app app
assert_eq 1 "$OUT" "logins go on after the reload"
pass "rules restored on the server are read again, and on reload"

# --- pgring -t
cat >"$TEST_TMP/two.ini" <<EOF
[pgring]
auth_type = hba
auth_hba_file = @server
auth_file = $POOLER_DIR/userlist.txt
[cluster.a]
n1 = host=127.0.0.1 port=1 role=primary
[cluster.b]
n1 = host=127.0.0.1 port=2 role=primary
EOF
OUT=$("$PGRING_BIN" -t -c "$TEST_TMP/two.ini" 2>&1)
assert_ne 0 "$?" "@server with two clusters is an error"
assert_match "$OUT" "two.ini:3: auth_hba_file = @server .*exactly one" "the error names the line and why"
sed -i 's/@server/@b/' "$TEST_TMP/two.ini"
OUT=$("$PGRING_BIN" -t -c "$TEST_TMP/two.ini" 2>&1)
assert_eq 0 "$?" "@b names a cluster: $OUT"
sed -i 's/@b/@c/' "$TEST_TMP/two.ini"
OUT=$("$PGRING_BIN" -t -c "$TEST_TMP/two.ini" 2>&1)
assert_match "$OUT" "no \\[cluster.c\\] section" "@NAME of no cluster is an error"
pass "pgring -t checks @server and @NAME"
