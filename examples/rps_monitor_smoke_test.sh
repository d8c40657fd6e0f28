#!/usr/bin/env bash
# Smoke test of rps_monitor_server and rps_monitor_client: two processes over
# tcp://, unix:// and tls:// (remote_smoke_lib.sh), the secret from the environment. The client's
# monitor task hears one MonitorStatus per task the service started for it,
# forwarded by the server: even tasks return the number they were sent, odd
# ones fail as asked. Bounded in time; kills only the server it started.
#
#   rps_monitor_smoke_test.sh SERVER_BINARY CLIENT_BINARY MAKE_TEST_CERTS REMOTE_SMOKE_LIB
set -uo pipefail
server_bin="$1"; client_bin="$2"; make_certs="$3"; lib="$4"
dir=$(mktemp -d)
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
# shellcheck source=examples/remote_smoke_lib.sh
source "$lib"
remote_smoke_transports "$make_certs" "$dir" rps-monitor
export PICOS_REMOTE_SECRET="rps monitor smoke test secret, long enough"

for listen in "${REMOTE_SMOKE_LISTEN[@]}"; do
  rm -f "$dir/server"  # a fresh file: the last run's address must not be read
  timeout 60 "$server_bin" --listen="$listen" --tasks=5 >"$dir/server" 2>&1 &
  spid=$!
  remote_smoke_server_address "$dir/server" server
  timeout 30 "$client_bin" --peer="$addr" --count=5 >"$dir/client" 2>&1; crc=$?
  wait "$spid"; src=$?; spid=""
  echo "--- server ($listen)"; cat "$dir/server"; echo "--- client"; cat "$dir/client"
  [ $crc -eq 0 ] && [ $src -eq 0 ] || { echo "FAIL: exit codes $crc $src"; exit 1; }
  [ "$(grep -c '^client: monitor: ' "$dir/client")" -eq 5 ] || { echo "FAIL: not one status per task"; exit 1; }
  for i in 0 2 4; do
    grep -Eq "^client: monitor: rps_server#[0-9]+ value $i$" "$dir/client" || { echo "FAIL: value of task $i"; exit 1; }
  done
  for i in 1 3; do
    grep -Eq "^client: monitor: rps_server#[0-9]+ error ABORTED: task $i fails$" "$dir/client" \
      || { echo "FAIL: error of task $i"; exit 1; }
  done
  grep -q "^client: 5 tasks ended, 2 failed" "$dir/client" || { echo "FAIL: client summary"; exit 1; }
  [ "$(grep -c '^server: rps_server#[0-9]* received ' "$dir/server")" -eq 5 ] || { echo "FAIL: server messages"; exit 1; }
  grep -q "^server: 5 tasks ended" "$dir/server" || { echo "FAIL: server summary"; exit 1; }
done
echo PASS
