#!/usr/bin/env bash
# picos-scheduler --status against a real picos-scheduler sharing a real
# picos-node with one real client joined (compute/scheduler.h,
# compute/daemon_status.h): the table names the node with its CPUs and the
# client with its share there; --json is one JSON line with the same; a
# wrong secret and a scheduler that is not there each give exit status 1
# and one line on stderr; a bad flag exit status 2 and one line.
set -euo pipefail
node_bin="$(realpath "$1")"
sched_bin="$(realpath "$2")"
client_bin="$(realpath "$3")"
library="$(realpath "$4")"
py=/usr/bin/python3
tmp="$(mktemp -d "${TEST_TMPDIR:-/tmp}/sstatus.XXXXXX")"
node_pid=""
sched_pid=""
client_pid=""
stop() {
  local pid="$1"
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
}
cleanup() {
  stop "$client_pid"
  stop "$sched_pid"
  stop "$node_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
export PICOS_REMOTE_SECRET="the scheduler status test's secret"
mkdir "$tmp/dest"

# Waits (bounded: 60 s that only a hang reaches) for a line starting with
# $2 in file $1 while process $3 lives.
await_line() {
  for _ in $(seq 600); do
    grep -q "^$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

"$node_bin" --listen=tcp://127.0.0.1:0 --dest_path="$tmp/dest" --cpus=2 --daemon \
  > "$tmp/node.out" 2> "$tmp/node.err" &
node_pid=$!
await_line "$tmp/node.out" 'listening ' "$node_pid" || true
node_uri="$(sed -n 's/^listening //p' "$tmp/node.out")"
[ -n "$node_uri" ] || { echo "the node did not start:" >&2; cat "$tmp/node.out" "$tmp/node.err" >&2; exit 1; }

"$sched_bin" --listen=tcp://127.0.0.1:0 --node_retry=0.2 --node="$node_uri" \
  > "$tmp/sched.out" 2> "$tmp/sched.err" &
sched_pid=$!
await_line "$tmp/sched.out" 'node up ' "$sched_pid" || true
uri="$(sed -n 's/^listening //p' "$tmp/sched.out")"
grep -q "^node up $node_uri 2$" "$tmp/sched.out" ||
  { echo "the scheduler did not get the node:" >&2; cat "$tmp/sched.out" "$tmp/sched.err" >&2; exit 1; }
status() { timeout 120 "$sched_bin" --status --connect="$uri" --status_timeout=60s "$@"; }

echo "--- no client yet"
status > "$tmp/idle.txt"
cat "$tmp/idle.txt"
grep -q "^scheduler picos-scheduler at $uri, pid $sched_pid, up " "$tmp/idle.txt"
grep -q '^serving: 0 clients (at most 64), 1 of 1 node up, 2 CPUs$' "$tmp/idle.txt"
grep -q '^NODE  *STATE  *CPUS  *CPU IDLE  *MEM FREE  *HOST$' "$tmp/idle.txt"
grep -q "^$node_uri  *up  *2  *[0-9]*%  *[0-9.]* [KMGT]\?i\?B  *[^ ]" "$tmp/idle.txt"
! grep -q '^CLIENT' "$tmp/idle.txt"

echo "--- a client joined"
"$client_bin" "$uri" "$library" 60 > "$tmp/client.out" 2> "$tmp/client.err" &
client_pid=$!
await_line "$tmp/client.out" 'scheduled ' "$client_pid" || true
id="$(sed -n 's/^scheduled \([^ ]*\) .*/\1/p' "$tmp/client.out")"
[ -n "$id" ] || { echo "the client did not schedule:" >&2; cat "$tmp/client.err" >&2; exit 1; }
# Its share is granted at the join; what it holds follows with its next
# report: wait (bounded) until the scheduler shows it holding both.
for _ in $(seq 120); do
  status > "$tmp/busy.txt"
  grep -q "^$id  *$node_uri  *2  *2  *2$" "$tmp/busy.txt" && break
  sleep 0.5
done
cat "$tmp/busy.txt"
grep -q '^serving: 1 client (at most 64), 1 of 1 node up, 2 CPUs$' "$tmp/busy.txt"
grep -q '^CLIENT  *NODE  *DEMAND  *SHARE  *HELD$' "$tmp/busy.txt"
grep -q "^$id  *$node_uri  *2  *2  *2$" "$tmp/busy.txt" ||
  { echo "want client $id with demand, share and held 2 on $node_uri" >&2; exit 1; }

status --json > "$tmp/busy.json"
cat "$tmp/busy.json"
[ "$(wc -l < "$tmp/busy.json")" = 1 ]
"$py" -c 'import json,sys; json.load(sys.stdin)' < "$tmp/busy.json"
"$py" - "$tmp/busy.json" "$id" "$sched_pid" "$uri" "$node_uri" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
want_id, pid, uri, node_uri = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
assert s["kind"] == "scheduler" and s["pid"] == pid and s["uri"] == uri, s
assert s["name"] == "picos-scheduler" and s["max_clients"] == 64 and s["uptime_s"] >= 0, s
[n] = s["nodes"]
assert n["uri"] == node_uri and n["cpus"] == 2 and n["up"] is True, n
assert n["facts"]["memory_total"] > 0 and len(n["facts"]["load"]) == 3, n
[c] = s["clients"]
assert c["computation"] == want_id, c
assert c["demand"] == {node_uri: 2} and c["shares"] == {node_uri: 2} and c["held"] == {node_uri: 2}, c
print("json ok")
PY

echo "--- a wrong secret: exit 1, one line"
rc=0
PICOS_REMOTE_SECRET="not the scheduler status test's secret" status > "$tmp/wrong.out" 2> "$tmp/wrong.err" || rc=$?
cat "$tmp/wrong.err"
[ "$rc" = 1 ] || { echo "a wrong secret gave status $rc, want 1" >&2; exit 1; }
[ "$(wc -l < "$tmp/wrong.err")" = 1 ] || { echo "want one line on stderr" >&2; exit 1; }
grep -q '^picos-scheduler --status: .*secret mismatch' "$tmp/wrong.err"
[ ! -s "$tmp/wrong.out" ]

echo "--- a picos-node is not a scheduler: exit 1, one line"
rc=0
# (it waits --status_timeout for a scheduler service there)
timeout 120 "$sched_bin" --status --connect="$node_uri" --status_timeout=3s > "$tmp/node.txt" 2> "$tmp/notsched.err" || rc=$?
cat "$tmp/notsched.err"
[ "$rc" = 1 ] && [ "$(wc -l < "$tmp/notsched.err")" = 1 ] && [ ! -s "$tmp/node.txt" ] ||
  { echo "asking a node gave status $rc, want 1 and one line" >&2; exit 1; }
grep -q "^picos-scheduler --status: [A-Z_]*: $node_uri" "$tmp/notsched.err"

echo "--- bad flags: exit 2, one line"
rc=0
"$sched_bin" --status --connect="$uri" --status_timeout=0.5s > /dev/null 2> "$tmp/bad.err" || rc=$?
cat "$tmp/bad.err"
[ "$rc" = 2 ] && [ "$(wc -l < "$tmp/bad.err")" = 1 ] && grep -q '^picos-scheduler: --status_timeout=500ms: 1s..1h$' "$tmp/bad.err"
rc=0
"$sched_bin" --status --connect= > /dev/null 2> "$tmp/bad.err" || rc=$?
cat "$tmp/bad.err"
[ "$rc" = 2 ] && [ "$(wc -l < "$tmp/bad.err")" = 1 ] && grep -q '^picos-scheduler: --connect: ' "$tmp/bad.err"

echo "--- nothing there: exit 1, one line"
stop "$client_pid"; client_pid=""
stop "$sched_pid"; sched_pid=""
rc=0
status > "$tmp/gone.out" 2> "$tmp/gone.err" || rc=$?
cat "$tmp/gone.err"
[ "$rc" = 1 ] || { echo "an absent scheduler gave status $rc, want 1" >&2; exit 1; }
[ "$(wc -l < "$tmp/gone.err")" = 1 ]
grep -q "^picos-scheduler --status: UNAVAILABLE: $uri" "$tmp/gone.err"
[ ! -s "$tmp/gone.out" ]
echo "PASS"
