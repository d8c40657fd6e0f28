#!/usr/bin/env bash
# picos-node --status against a real picos-node (compute/daemon_status.h):
# the table and --json show what it runs (a computation of a real client,
# its two workers with their pids, the host's health); a wrong secret and a
# node that is not there each give exit status 1 and one line on stderr.
# The node runs with --log_format=json: each line it logs parses as JSON
# (Debian's /usr/bin/python3; the python3 on PATH may be another).
set -euo pipefail
node_bin="$(realpath "$1")"
client_bin="$(realpath "$2")"
library="$(realpath "$3")"
py=/usr/bin/python3
tmp="$(mktemp -d "${TEST_TMPDIR:-/tmp}/status.XXXXXX")"
node_pid=""
client_pid=""
cleanup() {
  if [ -n "$client_pid" ]; then kill "$client_pid" 2>/dev/null || true; wait "$client_pid" 2>/dev/null || true; fi
  if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
export PICOS_REMOTE_SECRET="the status test's secret"
mkdir "$tmp/dest"

"$node_bin" --listen=tcp://127.0.0.1:0 --dest_path="$tmp/dest" --cpus=2 --daemon --log_format=json \
  > "$tmp/node.out" 2> "$tmp/node.err" &
node_pid=$!
for _ in $(seq 600); do
  grep -q '^listening ' "$tmp/node.out" && break
  kill -0 "$node_pid" 2>/dev/null || break
  sleep 0.1
done
uri="$(sed -n 's/^listening //p' "$tmp/node.out")"
[ -n "$uri" ] || { echo "the node did not start:" >&2; cat "$tmp/node.out" "$tmp/node.err" >&2; exit 1; }
status() { timeout 120 "$node_bin" --status --connect="$uri" --status_timeout=60s "$@"; }

echo "--- an idle node"
status > "$tmp/idle.txt"
cat "$tmp/idle.txt"
grep -q "^node picos-node at $uri, pid $node_pid, up " "$tmp/idle.txt"
grep -q '^health: cpu [0-9]*% idle of [0-9]*, mem .* free, disk .* free, swap .*, load ' "$tmp/idle.txt"
grep -q '^serving: 0 computations (0 started, no limit), 2 workers each, ' "$tmp/idle.txt"

echo "--- a computation of a real client"
"$client_bin" "$uri" "$library" > "$tmp/client.out" 2> "$tmp/client.err" &
client_pid=$!
for _ in $(seq 600); do
  grep -q '^scheduled ' "$tmp/client.out" && break
  kill -0 "$client_pid" 2>/dev/null || break
  sleep 0.1
done
id="$(sed -n 's/^scheduled //p' "$tmp/client.out")"
[ -n "$id" ] || { echo "the client did not schedule:" >&2; cat "$tmp/client.err" >&2; exit 1; }
status > "$tmp/busy.txt"
cat "$tmp/busy.txt"
grep -q '^serving: 1 computation (1 started, no limit), 2 workers each, ' "$tmp/busy.txt"
grep -q '^COMPUTATION *WORKER *PID *STATE *URI$' "$tmp/busy.txt"
[ "$(grep -c "^$id  *[01]  *[0-9][0-9]*  *running  *tcp://127.0.0.1:[0-9]*$" "$tmp/busy.txt")" = 2 ] ||
  { echo "want two running workers of $id" >&2; exit 1; }
# Their pids are the node's children.
for pid in $(awk -v id="$id" '$1 == id {print $3}' "$tmp/busy.txt"); do
  [ "$(ps -o ppid= -p "$pid" | tr -d ' ')" = "$node_pid" ] || { echo "pid $pid is not the node's worker" >&2; exit 1; }
done

status --json > "$tmp/busy.json"
cat "$tmp/busy.json"
[ "$(wc -l < "$tmp/busy.json")" = 1 ]
"$py" - "$tmp/busy.json" "$id" "$node_pid" "$uri" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
want_id, node_pid, uri = sys.argv[2], int(sys.argv[3]), sys.argv[4]
assert s["kind"] == "node" and s["pid"] == node_pid and s["uri"] == uri, s
assert s["cpus"] == 2 and s["started"] == 1 and s["closing"] is False, s
assert s["facts"]["memory_total"] > 0 and s["facts"]["disk_total"] > 0 and len(s["facts"]["load"]) == 3, s
[c] = s["computations"]
assert c["id"] == want_id and c["client_lost"] is False, c
assert sorted(w["index"] for w in c["workers"]) == [0, 1], c
assert all(w["state"] == "running" and w["pid"] > 0 and w["uri"].startswith("tcp://") for w in c["workers"]), c
print("json ok")
PY

echo "--- a wrong secret: exit 1, one line"
rc=0
PICOS_REMOTE_SECRET="not the status test's secret" status > "$tmp/wrong.out" 2> "$tmp/wrong.err" || rc=$?
cat "$tmp/wrong.err"
[ "$rc" = 1 ] || { echo "a wrong secret gave status $rc, want 1" >&2; exit 1; }
[ "$(wc -l < "$tmp/wrong.err")" = 1 ] || { echo "want one line on stderr" >&2; exit 1; }
grep -q '^picos-node --status: .*secret mismatch' "$tmp/wrong.err"
[ ! -s "$tmp/wrong.out" ]

echo "--- nothing there: exit 1, one line"
kill "$client_pid"; wait "$client_pid" 2>/dev/null || true; client_pid=""
kill -TERM "$node_pid"; wait "$node_pid" 2>/dev/null || true; node_pid=""
rc=0
status > "$tmp/gone.out" 2> "$tmp/gone.err" || rc=$?
cat "$tmp/gone.err"
[ "$rc" = 1 ] || { echo "an absent node gave status $rc, want 1" >&2; exit 1; }
[ "$(wc -l < "$tmp/gone.err")" = 1 ]
grep -q "^picos-node --status: UNAVAILABLE: $uri" "$tmp/gone.err"

echo "--- the node's log, one JSON object per line"
head -5 "$tmp/node.err"
[ "$(wc -l < "$tmp/node.err")" -ge 3 ] || { echo "the node logged too little to check" >&2; exit 1; }
"$py" - "$tmp/node.err" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert set(o) == {"ts", "level", "file", "line", "thread", "msg"}, o
    n += 1
# The refused handshake of the wrong secret is among them.
assert any("secret mismatch" in json.loads(l)["msg"] for l in open(sys.argv[1])), "no secret mismatch line"
print(n, "lines, each JSON")
PY

echo "--- a bad --log_format: exit 2, one line"
rc=0
"$node_bin" --log_format=xml --dest_path="$tmp/dest" > /dev/null 2> "$tmp/bad.err" || rc=$?
[ "$rc" = 2 ] && grep -q '^picos-node: --log_format=xml: text or json$' "$tmp/bad.err"
echo "PASS"
