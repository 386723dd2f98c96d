#!/usr/bin/env bash
# t_http (pgring only): the control port under slowloris (issue 21 item 5). With
# 100 connections that each sent one byte of a request and stall, more than the
# control port has slots, GET /health still answers 200 within 500 ms (the oldest
# stalled connections are evicted for it); every stalled connection is closed
# within a few seconds (the 2 s head deadline, not the 10 s idle one); the
# evictions and timeouts are logged; and /health still answers afterwards.
. "$(dirname "$0")/lib.sh"
pgring_only "the control port is pgring's"
command -v curl >/dev/null 2>&1 || skip "needs curl"

start_pgring "
[databases]
app = host=@PGHOST@ port=@PGPORT@ dbname=app
[pgring]
auth_type = md5
pool_mode = transaction
shards = 1
"

SLOW=100
fds=()
t0=$(now_ms)
for _ in $(seq $SLOW); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$CONTROL_PORT" || fail "connection $((${#fds[@]} + 1)) refused"
	printf G >&"$fd"
	fds+=("$fd")
done
note "$SLOW slow connections opened in $(($(now_ms) - t0)) ms"

out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 15 "http://127.0.0.1:$CONTROL_PORT/health") || true
read -r status secs <<<"$out"
note "/health under $SLOW slow connections: status $status in ${secs}s"
assert_eq 200 "$status" "/health status under slowloris"
assert_num_cmp "$secs" -lt 0.5 "/health seconds under $SLOW slow connections"

# Each stalled connection reads EOF (or a reset) by the head deadline, plus slack.
still_open() {
	local n=0 fd
	for fd in "${fds[@]}"; do
		read -r -t 0.01 -u "$fd" _
		(($? > 128)) && n=$((n + 1))
	done
	echo "$n"
}
wait_until 6 eval '(( $(still_open) == 0 ))' || fail "$(still_open) of $SLOW slow connections still open after $(($(now_ms) - t0)) ms"
note "all slow connections closed $(($(now_ms) - t0)) ms after the first was opened"
for fd in "${fds[@]}"; do exec {fd}>&-; done

wait_until 3 grep -q 'control port: closed .* evicted for new ones' "$POOLER_LOG" ||
	fail "no eviction logged: $(grep 'control port' "$POOLER_LOG")"
wait_until 3 grep -qE 'control port: closed .* [1-9][0-9]* timed out' "$POOLER_LOG" ||
	fail "no timeout logged: $(grep 'control port' "$POOLER_LOG")"
lines=$(grep -c 'control port: closed' "$POOLER_LOG")
assert_num_cmp "$lines" -le 5 "log lines about slow connections (rate-limited)"

http_get /health
assert_eq 200 "$HTTP_STATUS" "/health afterwards"
pass "control port: /health fast under $SLOW slow connections"

# GET /status (pgrouter's plain-text dump) without cluster nodes, readable with nc:
# one psql session open means one client and one server connection
psql_open S "$(conninfo app md5user md5pass)"
say_ok S "SELECT 1;"
http_get /status || fail "GET /status: status $HTTP_STATUS"
assert_eq "$(printf 'backends 0/0\nshards 1\nclients 1\nconnections 1')" "$HTTP_BODY" "GET /status"
psql_close S
pass "GET /status: $(tr '\n' ',' <<<"$HTTP_BODY")"
