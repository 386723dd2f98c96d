#!/usr/bin/env bash
# t_config (pgring only): `pgring -t -c FILE` checks a config and exits: 0 for a good
# one, 1 for a bad value with FILE:LINE in stderr; an unknown key only warns (exit 0,
# the warning names the key). A security setting pgring does not implement
# (auth_ident_file, auth_ldap_options, ...) and a TLS setting that
# cannot give what it asks for are errors naming the key: pgring fails closed.
# -V and -h exit 0. A FIFO, device or directory as a file, and a line over 64 kB,
# are errors at once; 20,000 databases check quickly.
. "$(dirname "$0")/lib.sh"
pgring_only "pgring -t (PgBouncer has no config check mode)"
[[ -x $PGRING_BIN ]] || fail "pgring binary not found: $PGRING_BIN"

D=$TEST_TMP
cp "$USERLIST" "$D/userlist.txt"
good="; a good config
[databases]
app = host=127.0.0.1 port=$PGPORT_REAL dbname=app

[pgring]
listen_addr = 127.0.0.1
listen_port = 6432
unix_socket_dir =
auth_type = md5
auth_file = $D/userlist.txt
pool_mode = transaction
default_pool_size = 10
shards = 2
shard_cpus = 0,1
control_port = 0
"
# check FILE: run pgring -t, status in RC, stderr+stdout in OUT.
check() {
	OUT=$(timeout 10 "$PGRING_BIN" -t -c "$1" 2>&1)
	RC=$?
	[[ $RC == 124 ]] && fail "pgring -t -c $1 did not exit within 10 s"
	return 0
}

printf '%s' "$good" >"$D/good.ini"
check "$D/good.ini"
assert_eq 0 "$RC" "good config: exit status (output: $OUT)"

# Bad values, each on a known line: exit 1 and FILE:LINE in the message.
n=0
while IFS='|' read -r section line_text; do
	n=$((n + 1))
	f=$D/broken$n.ini
	if [[ $section == databases ]]; then
		body="$good"$'\n[databases]\n'"$line_text"$'\n'
	else
		body="$good$line_text"$'\n'
	fi
	printf '%s' "$body" >"$f"
	lineno=$(grep -nxF -- "$line_text" "$f" | tail -1 | cut -d: -f1)
	check "$f"
	assert_eq 1 "$RC" "[$line_text]: exit status (output: $OUT)"
	assert_match "$OUT" "broken$n\\.ini:$lineno([^0-9]|$)" "[$line_text]: message must name file:line ($lineno)"
done <<'CASES'
pgring|pool_mode = bogus
pgring|default_pool_size = lots
pgring|listen_port = 99999999
pgring|auth_type = nonsense
pgring|shard_cpus = 0,x
databases|broken = host=127.0.0.1 port=notaport dbname=app
pgring|client_tls_sslmode = require
pgring|server_tls_sslmode = verify-full
pgring|client_tls_protocols = tlsv1.1
databases|broken = host=127.0.0.1 dbname=app sslmode=sometimes
CASES

# Security settings pgring does not implement: errors (exit 1), naming the key
# and its line, never a warning to be missed in a log.
for line_text in 'auth_ident_file = /etc/pgbouncer/ident.conf' \
	'auth_ldap_options = ldapurl=ldap://127.0.0.1/dc=example'; do
	key=${line_text%% *}
	printf '%s%s\n' "$good" "$line_text" >"$D/refused.ini"
	check "$D/refused.ini"
	assert_eq 1 "$RC" "$key: exit status (output: $OUT)"
	assert_match "$OUT" "refused\\.ini:$(grep -c '' "$D/refused.ini"): $key is not supported yet" \
		"$key: the error names file:line and the key"
done
# auth_query's keys are in force (t_authquery), globally and on an entry
printf '%sauth_user = pgbouncer\nauth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1\n[databases]\nviaauth = host=127.0.0.1 auth_user=pgbouncer auth_dbname=app\n' \
	"$good" >"$D/authq.ini"
check "$D/authq.ini"
assert_eq 0 "$RC" "auth_user, auth_query, auth_dbname: accepted (output: $OUT)"

# A known setting that is not a security one and is not implemented: still a
# warning naming it (exit 0), like an unknown key below.
printf '%stcp_defer_accept = 1\n' "$good" >"$D/later.ini"
check "$D/later.ini"
assert_eq 0 "$RC" "tcp_defer_accept: exit status (output: $OUT)"
assert_contains "$OUT" "tcp_defer_accept" "tcp_defer_accept: the warning names the key"

# Unknown key: a warning that names it, exit 0.
printf '%sfrobnicate_the_pool = 3\n' "$good" >"$D/unknown.ini"
check "$D/unknown.ini"
assert_eq 0 "$RC" "unknown key: exit status (output: $OUT)"
assert_contains "$OUT" "frobnicate_the_pool" "unknown key: warning names the key"

# Files that are no config: refused at once (they used to be read without end,
# or to block in open()), exit 1, the message names file:line and the path.
mkfifo "$D/fifo"
for bad in /dev/zero "$D/fifo" "$D"; do
	printf '%sauth_file = %s\n' "$good" "$bad" >"$D/badfile.ini"
	lineno=$(grep -c '' "$D/badfile.ini")
	check "$D/badfile.ini"
	assert_eq 1 "$RC" "auth_file = $bad: exit status (output: $OUT)"
	assert_match "$OUT" "badfile\\.ini:$lineno: cannot use auth_file $bad: .*not a regular file" \
		"auth_file = $bad: message"
done
check /dev/zero
assert_eq 1 "$RC" "/dev/zero as the config: exit status (output: $OUT)"
assert_contains "$OUT" "not a regular file" "/dev/zero as the config: message"
# A line over 64 kB, here a comment, is refused with its line number.
{ printf '%s' "$good"; printf ';%070000d\n' 0; } >"$D/longline.ini"
check "$D/longline.ini"
assert_eq 1 "$RC" "70 kB line: exit status (output: ${OUT:0:300})"
assert_match "$OUT" "longline\\.ini:$(grep -c '' "$D/longline.ini"): line longer than 64 kB" "70 kB line: message"

# 20,000 databases and as many users, one database defined twice: checked in
# well under the 10 s of check() (the duplicate checks used to scan: 2 minutes
# under ASan), the duplicate still a warning.
{
	printf '%s' "$good"
	echo "[databases]"
	seq 1 20000 | awk '{ printf "db%d = host=127.0.0.1 port=5432 dbname=d%d pool_size=2\n", $1, $1 }'
	echo "db17 = host=127.0.0.1 dbname=again"
	echo "[users]"
	seq 1 20000 | awk '{ printf "u%d = pool_size=1\n", $1 }'
} >"$D/many.ini"
started=$(now_ms)
check "$D/many.ini"
assert_eq 0 "$RC" "20,000 databases: exit status (output: ${OUT:0:300})"
assert_contains "$OUT" "database 'db17' is defined again" "20,000 databases: the duplicate is reported"
note "20,000 databases and users checked in $(($(now_ms) - started)) ms"

# A missing file.
check "$D/does-not-exist.ini"
assert_eq 1 "$RC" "missing file: exit status"
assert_contains "$OUT" "does-not-exist.ini" "missing file: message names it"

OUT=$(timeout 5 "$PGRING_BIN" -V 2>&1)
assert_eq 0 "$?" "-V exit status"
assert_contains "$OUT" "pgring" "-V output"
OUT=$(timeout 5 "$PGRING_BIN" -h 2>&1)
assert_eq 0 "$?" "-h exit status"
assert_contains "$OUT" "-c" "-h output lists options"
pass "config checks"
