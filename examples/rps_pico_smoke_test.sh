#!/usr/bin/env bash
# Smoke test of rps_pico_service and rps_pico_client: two processes over
# tcp://, unix:// and tls:// (remote_smoke_lib.sh), the secret from the environment. The client's
# malformed request is refused with the service's status; its five tasks run
# on the server and their results come back through Join. Bounded in time;
# kills only the server it started.
#
#   rps_pico_smoke_test.sh SERVER_BINARY CLIENT_BINARY MAKE_TEST_CERTS REMOTE_SMOKE_LIB
set -uo pipefail
server_bin="$1"; client_bin="$2"; make_certs="$3"; lib="$4"
dir=$(mktemp -d)
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
# shellcheck source=examples/remote_smoke_lib.sh
source "$lib"
remote_smoke_transports "$make_certs" "$dir" rps-pico
export PICOS_REMOTE_SECRET="rps smoke test secret, long enough"

for listen in "${REMOTE_SMOKE_LISTEN[@]}"; do
  rm -f "$dir/server"  # a fresh file: the last run's address must not be read
  timeout 60 "$server_bin" --listen="$listen" --tasks=5 >"$dir/server" 2>&1 &
  spid=$!
  remote_smoke_server_address "$dir/server" server
  timeout 30 "$client_bin" --peer="$addr" --count=5 >"$dir/client" 2>&1; crc=$?
  wait "$spid"; src=$?; spid=""
  echo "--- server ($listen)"; cat "$dir/server"; echo "--- client"; cat "$dir/client"
  [ $crc -eq 0 ] && [ $src -eq 0 ] || { echo "FAIL: exit codes $crc $src"; exit 1; }
  grep -q "^client: malformed request refused: INVALID_ARGUMENT: .*delay_ms" "$dir/client" \
    || { echo "FAIL: the malformed request was not refused with its reason"; exit 1; }
  grep -q "^server: refused " "$dir/server" || { echo "FAIL: the server did not log the refusal"; exit 1; }
  for i in 0 1 2 3 4; do
    grep -Eq "^client: task pico_service#[0-9]+@.*: n=$i square=$((i * i)) from rps_pico_service$" "$dir/client" \
      || { echo "FAIL: result of task $i"; exit 1; }
    grep -q "^server: task for n=$i done" "$dir/server" || { echo "FAIL: task $i did not run on the server"; exit 1; }
  done
  grep -q "^server: ran 5 tasks" "$dir/server" || { echo "FAIL: server summary"; exit 1; }
done
echo PASS
