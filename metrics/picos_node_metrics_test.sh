#!/usr/bin/env bash
# picos-node --metrics_listen: a real node serves its figures at /metrics,
# behind the bearer token of --metrics_token_file; they follow what happens
# (a client joins, then leaves), and promtool accepts them. A bad token file
# is a one-line error and exit status 2.
set -euo pipefail
node_bin="$(realpath "$1")"
check_bin="$(realpath "$2")"
tmp="$(mktemp -d "${TEST_TMPDIR:-/tmp}/node_metrics.XXXXXX")"
node_pid=""
cleanup() {
  if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
export PICOS_REMOTE_SECRET="the node metrics test's secret"
mkdir "$tmp/dest"
echo "scrape-token-1" > "$tmp/token"

"$node_bin" --listen=tcp://127.0.0.1:0 --dest_path="$tmp/dest" --cpus=1 \
  --metrics_listen=tcp://127.0.0.1:0 --metrics_token_file="$tmp/token" > "$tmp/node.out" 2>&1 &
node_pid=$!
for _ in $(seq 600); do
  grep -q '^metrics tcp://' "$tmp/node.out" && break
  kill -0 "$node_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q '^metrics tcp://' "$tmp/node.out" || { echo "no metrics line:" >&2; cat "$tmp/node.out" >&2; exit 1; }
node_uri="$(sed -n 's/^listening //p' "$tmp/node.out")"
url="http://$(sed -n 's|^metrics tcp://||p' "$tmp/node.out")/metrics"
echo "node $node_uri, metrics at $url"

code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 "$url")"
[ "$code" = 401 ] || { echo "without the token: HTTP $code, want 401" >&2; exit 1; }
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 -H 'Authorization: Bearer wrong' "$url")"
[ "$code" = 401 ] || { echo "with a wrong token: HTTP $code, want 401" >&2; exit 1; }

scrape() { curl -sf --max-time 60 -H 'Authorization: Bearer scrape-token-1' "$url"; }
scrape > "$tmp/before.txt"
grep -qx 'picos_remote_peers_connected 0' "$tmp/before.txt"

# A client joins and leaves: the node counts both.
"$check_bin" --peer="$node_uri" --wait=60s
for _ in $(seq 600); do
  scrape > "$tmp/after.txt"
  grep -qx 'picos_remote_peer_events_total{event="left"} 1' "$tmp/after.txt" && break
  sleep 0.1
done
cat "$tmp/after.txt"
grep -qx 'picos_remote_peer_events_total{event="joined"} 1' "$tmp/after.txt"
grep -qx 'picos_remote_peer_events_total{event="left"} 1' "$tmp/after.txt"
grep -qx 'picos_remote_peers_connected 0' "$tmp/after.txt"
grep -q '^picos_scheduler_tasks{scheduler="[^"]*"} [1-9]' "$tmp/after.txt"
promtool check metrics < "$tmp/after.txt"
# The node daemon's own figures: its work and its host's health.
grep -qx 'picos_node_computations 0' "$tmp/after.txt"
grep -qx 'picos_node_workers 0' "$tmp/after.txt"
grep -qx 'picos_node_worker_restarts_total 0' "$tmp/after.txt"
grep -qx 'picos_remote_heartbeat_losses_total 0' "$tmp/after.txt"
grep -q '^picos_node_memory_total_bytes [1-9]' "$tmp/after.txt"
grep -q '^picos_node_disk_free_bytes [1-9]' "$tmp/after.txt"
grep -q '^picos_node_cpu_available_percent [0-9]' "$tmp/after.txt"
grep -q '^picos_node_load{minutes="15"} [0-9]' "$tmp/after.txt"

kill -TERM "$node_pid"; wait "$node_pid" 2>/dev/null || true; node_pid=""

# A bad token file: exit status 2 and one line naming the flag.
printf 'has a space\n' > "$tmp/bad_token"
status=0
"$node_bin" --listen=tcp://127.0.0.1:0 --dest_path="$tmp/dest" --metrics_listen=tcp://127.0.0.1:0 \
  --metrics_token_file="$tmp/bad_token" > "$tmp/bad.out" 2>&1 || status=$?
[ "$status" = 2 ] || { echo "a bad token file gave status $status, want 2" >&2; cat "$tmp/bad.out" >&2; exit 1; }
grep -q -- '--metrics_token_file=' "$tmp/bad.out"
echo "PASS"
