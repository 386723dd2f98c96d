#!/usr/bin/env bash
# t_loginject (pgring only): a client cannot forge log lines or send itself
# invalid UTF-8. Raw startup packets (python3) with a user name
# "evil\n<a whole fake log line>", a user name with \r, ESC and an invalid byte,
# and a database name of invalid UTF-8 (bad bytes, an overlong form, a UTF-16
# surrogate, a cut-off sequence). Afterwards every line of pgring's log is a real
# log line (timestamp, pid, level), no line starts with the fake prefix, the log
# is valid UTF-8 without CR or ESC, the names appear escaped (\n, \r, \xNN), and
# every ErrorResponse the clients got decodes as strict UTF-8 with the bad bytes
# shown as \xNN.
. "$(dirname "$0")/lib.sh"
pgring_only "pgring's log format and error texts"
command -v python3 >/dev/null || skip "python3 not installed"

# md5: an unknown user is asked for a password and then refused with a WARNING
# (shown at the default verbosity); -v adds the INFO "closing client: ..." lines.
start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
default_pool_size = 2
" -v

FAKE='2026-12-03 10:00:00.000 UTC [1] LOG control: FAKE LINE'

out=$(PORT=$PORT FAKE=$FAKE timeout 60 python3 - <<'PY' 2>&1
import os, socket, struct, sys

port = int(os.environ["PORT"])
fake = os.environ["FAKE"].encode()
failed = False

def recv_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(b), n))
        b += chunk
    return b

def read_msg(s):
    head = recv_exact(s, 5)
    (n,) = struct.unpack("!I", head[1:])
    return head[:1], recv_exact(s, n - 4)

def error_fields(body):
    """The fields of an ErrorResponse, each decoded as strict UTF-8."""
    fields = {}
    parts = body.split(b"\0")
    if parts[-2:] != [b"", b""]:
        raise ValueError("body not terminated: %r" % body)
    for f in parts[:-2]:
        fields[chr(f[0])] = f[1:].decode("utf-8", errors="strict")
    return fields

def attempt(name, user, database, want_msg):
    global failed
    params = b"user\0" + user + b"\0database\0" + database + b"\0\0"
    body = struct.pack("!I", 196608) + params
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(struct.pack("!I", len(body) + 4) + body)
        t, b = read_msg(s)
        if t == b"R" and struct.unpack("!I", b[:4])[0] == 5:   # md5: any password will do
            pw = b"md5" + b"0" * 32 + b"\0"
            s.sendall(b"p" + struct.pack("!I", len(pw) + 4) + pw)
            t, b = read_msg(s)
        if t != b"E":
            print("FAIL %s: expected an ErrorResponse, got %r %r" % (name, t, b[:200]))
            failed = True
            return
        try:
            f = error_fields(b)
        except (UnicodeDecodeError, ValueError) as e:
            print("FAIL %s: error response is not valid UTF-8: %s: %r" % (name, e, b))
            failed = True
            return
        if f.get("M") != want_msg:
            print("FAIL %s: message %r, expected %r" % (name, f.get("M"), want_msg))
            failed = True
            return
        print("ok %s: %s %s" % (name, f.get("C"), ascii(f.get("M"))))
    finally:
        s.close()

attempt("forged line", b"evil\n" + fake, b"app",
        'password authentication failed for user "evil\n' + fake.decode() + '"')
attempt("control characters", b"bad\r\x1b[2J\xffuser", b"app",
        'password authentication failed for user "bad\r\x1b[2J\\xffuser"')
attempt("invalid database", b"app", b"\xff\xfe\xc0\xaf-db\xed\xa0\x80-end\xe6\x97",
        "no such database: \\xff\\xfe\\xc0\\xaf-db\\xed\\xa0\\x80-end\\xe6\\x97")
sys.exit(1 if failed else 0)
PY
)
rc=$?
sed 's/^/#   /' <<<"$out"

# Every check runs (and is reported) even when an earlier one failed.
problems=()
problem() { problems+=("$*"); echo "# not ok: $*"; }
((rc == 0)) || problem "clients: $(grep -m1 FAIL <<<"$out")"

# The log: wait for the last attempt's line, then look at all of it.
esc_db='no such database: \xff\xfe\xc0\xaf-db\xed\xa0\x80-end\xe6\x97'
wait_until 5 grep -qF "(3D000)" "$POOLER_LOG" || problem "no log line for the invalid database name"
grep -qF "password authentication failed for user \"evil\\n$FAKE\"" "$POOLER_LOG" ||
	problem "the forged line is not logged escaped inside the real one"
grep -qF 'password authentication failed for user "bad\r\x1b[2J\xffuser"' "$POOLER_LOG" ||
	problem "CR, ESC and an invalid byte are not logged escaped"
grep -qF "closing client: $esc_db (3D000)" "$POOLER_LOG" ||
	problem "the database name is not logged escaped"

forged=$(awk -v p="$FAKE" 'index($0, p) == 1' "$POOLER_LOG" | wc -l)
((forged == 0)) || problem "$forged log lines start with the fake prefix"
not_log=$(grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} UTC \[[0-9]+\] (ERROR|WARNING|LOG|INFO|DEBUG|TRACE) ' "$POOLER_LOG")
((not_log == 0)) || problem "$not_log log lines are not log lines, e.g. [$(grep -avE '^[0-9]{4}-[0-9]{2}-[0-9]{2} ' "$POOLER_LOG" | head -1 | cat -v)]"
crs=$(tr -cd '\r\033' <"$POOLER_LOG" | wc -c)
((crs == 0)) || problem "$crs CR or ESC bytes in the log"
python3 -c 'import sys; open(sys.argv[1], "rb").read().decode("utf-8", errors="strict")' "$POOLER_LOG" 2>"$TEST_TMP/utf8.err" ||
	problem "the log is not valid UTF-8: $(tail -1 "$TEST_TMP/utf8.err")"

# pgring is still fine
q "SELECT 1" >/dev/null || problem "a normal client after the attempts"

((${#problems[@]} == 0)) || fail "${#problems[@]} problems: ${problems[*]}"
pass "log injection"
