#!/usr/bin/env bash
# t_config (pgring only): `pgring -t -c FILE` checks a config and exits: 0 for a good
# one, 1 for a bad value with FILE:LINE in stderr; an unknown key only warns (exit 0,
# the warning names the key). -V and -h exit 0.
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
CASES

# Unknown key: a warning that names it, exit 0.
printf '%sfrobnicate_the_pool = 3\n' "$good" >"$D/unknown.ini"
check "$D/unknown.ini"
assert_eq 0 "$RC" "unknown key: exit status (output: $OUT)"
assert_contains "$OUT" "frobnicate_the_pool" "unknown key: warning names the key"

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
