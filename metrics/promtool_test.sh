#!/usr/bin/env bash
# Checks what a picos process serves at /metrics with Prometheus's own parser
# and linter (`promtool check metrics`, Debian's prometheus package, installed
# by tools/setup), and that the runtime's figures are in it.
set -euo pipefail
sample="$1"
if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool is missing: run tools/setup (Debian package prometheus)" >&2
  exit 1
fi
out="${TEST_TMPDIR:-/tmp}/metrics.txt"
timeout 120 "$sample" > "$out"
echo "--- /metrics ($(wc -c < "$out") bytes)"
cat "$out"
echo "--- promtool check metrics"
promtool check metrics < "$out"

fail=0
expect() {
  if ! grep -qxF -- "$1" "$out"; then
    echo "missing line: $1" >&2
    fail=1
  fi
}
expect 'picos_remote_peers_connected 1'
expect 'picos_remote_handshakes_refused_total 1'
expect 'picos_remote_peer_events_total{event="joined"} 1'
expect 'picos_remote_reconnects_total 0'
expect 'picos_sample_jobs_total{function="square",state="done"} 7'
expect 'picos_sample_jobs_total{function="a \"quoted\" \\ name\nwith a newline",state="failed"} 1'
expect 'picos_sample_job_duration_seconds_count{function="square"} 100'
expect 'picos_sample_job_duration_seconds_bucket{function="square",le="+Inf"} 100'
expect '# TYPE picos_scheduler_tasks gauge'
grep -q '^picos_remote_peer_connected{peer="b@' "$out" || { echo "no peer_connected for b" >&2; fail=1; }
expect 'picos_remote_heartbeat_losses_total 0'
for f in messages_sent messages_received bytes_sent bytes_received heartbeats_missed; do
  grep -q "^picos_remote_peer_${f}_total{peer=\"b@[^\"]*\"} [0-9]" "$out" ||
    { echo "no picos_remote_peer_${f}_total for b" >&2; fail=1; }
done
expect '# TYPE picos_remote_peer_buffer_bytes gauge'
grep -q '^picos_remote_peer_buffer_bytes{peer="b@[^"]*"} [0-9]' "$out" ||
  { echo "no picos_remote_peer_buffer_bytes for b" >&2; fail=1; }
grep -q '^picos_remote_peer_bytes_received_total{peer="b@[^"]*"} [1-9]' "$out" ||
  { echo "no bytes counted from b" >&2; fail=1; }
grep -q '^picos_scheduler_task_resumes_total{scheduler="[^"]*"} [1-9]' "$out" ||
  { echo "no task resumes counted" >&2; fail=1; }

# The check can fail: promtool refuses a counter without _total and a
# malformed line.
bad="${TEST_TMPDIR:-/tmp}/bad.txt"
printf '# HELP c x\n# TYPE c counter\nc 1\n' > "$bad"
if promtool check metrics < "$bad" >/dev/null 2>&1; then
  echo "promtool accepted a counter without _total: the check proves nothing" >&2
  fail=1
fi
printf 'm{l="unterminated} 1\n' > "$bad"
if promtool check metrics < "$bad" >/dev/null 2>&1; then
  echo "promtool accepted a malformed line" >&2
  fail=1
fi
[ "$fail" = 0 ] && echo "PASS"
exit "$fail"
