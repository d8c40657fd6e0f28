#!/usr/bin/env bash
# Load test of examples/webserver (pycos webserver.py's ping-pong benchmark)
# with wrk (Debian package `wrk`, listed in tools/setup). Prints wrk's report
# and a `webserver_requests_per_s: N requests/s` figure line.
#
#   bazel build -c opt //examples:webserver
#   testing/webserver_load.sh [bazel-bin/examples/webserver] [seconds] [connections]
set -uo pipefail
bin="${1:-bazel-bin/examples/webserver}"
secs="${2:-5}"
conns="${3:-50}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk (tools/setup)" >&2; exit 1; }
[ -x "$bin" ] || { echo "no webserver binary at $bin (bazel build -c opt //examples:webserver)" >&2; exit 1; }
out=$(mktemp)
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; wait 2>/dev/null; rm -f "$out"; }
trap cleanup EXIT
timeout $((secs + 30)) "$bin" --listen=tcp://127.0.0.1:0 >"$out" 2>&1 &
spid=$!
for _ in $(seq 100); do grep -q "listening on" "$out" && break; sleep 0.1; done
addr=$(sed -n 's/^webserver: listening on tcp:\/\///p' "$out")
[ -n "$addr" ] || { echo "webserver did not start" >&2; cat "$out" >&2; exit 1; }
report=$(timeout $((secs + 20)) wrk -t2 -c"$conns" -d"${secs}s" "http://$addr/")
echo "$report"
rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$report")
echo "webserver_requests_per_s: ${rps:-0} requests/s"
