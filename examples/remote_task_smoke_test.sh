#!/usr/bin/env bash
# Smoke test of remote_task_server and remote_task_client: two processes over
# tcp://, unix:// and tls:// (remote_smoke_lib.sh), with a shared secret from the environment; then a
# client with a wrong secret is refused with "secret mismatch" on both
# sides. Bounded in time; kills only the server it started.
#
#   remote_task_smoke_test.sh SERVER_BINARY CLIENT_BINARY MAKE_TEST_CERTS REMOTE_SMOKE_LIB
set -uo pipefail
server_bin="$1"; client_bin="$2"; make_certs="$3"; lib="$4"
dir=$(mktemp -d)
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
# shellcheck source=examples/remote_smoke_lib.sh
source "$lib"
remote_smoke_transports "$make_certs" "$dir" remote-task
export PICOS_REMOTE_SECRET="smoke test secret, long enough"

start_server() {  # LISTEN_URI
  rm -f "$dir/server"  # a fresh file: the last run's address must not be read
  timeout 60 "$server_bin" --listen="$1" --clients=1 >"$dir/server" 2>&1 &
  spid=$!
  remote_smoke_server_address "$dir/server" server
}

for listen in "${REMOTE_SMOKE_LISTEN[@]}"; do
  start_server "$listen"
  timeout 30 "$client_bin" --peer="$addr" --count=3 >"$dir/client" 2>&1; crc=$?
  wait "$spid"; src=$?; spid=""
  echo "--- server ($listen)"; cat "$dir/server"; echo "--- client"; cat "$dir/client"
  [ $crc -eq 0 ] && [ $src -eq 0 ] || { echo "FAIL: exit codes $crc $src"; exit 1; }
  for i in 0 1 2; do
    grep -q "^client: server echoed 'message $i'" "$dir/client" || { echo "FAIL: reply $i"; exit 1; }
    grep -Eq "^server: received 'message $i' from task#[0-9]+@remote_task_client@" "$dir/server" \
      || { echo "FAIL: server did not receive message $i through a remote handle"; exit 1; }
  done
  grep -q "server: 3 messages from 1 clients" "$dir/server" || { echo "FAIL: server summary"; exit 1; }
done

# A wrong secret: refused on both sides, and said so.
start_server tcp://127.0.0.1:0
PICOS_REMOTE_SECRET="not the secret the server has" timeout 30 "$client_bin" --peer="$addr" >"$dir/client" 2>&1
crc=$?
for _ in $(seq 200); do  # the server logs the refusal in its own time
  grep -q "secret mismatch" "$dir/server" && break
  sleep 0.05
done
kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; spid=""
echo "--- server (wrong secret)"; cat "$dir/server"; echo "--- client"; cat "$dir/client"
[ $crc -ne 0 ] || { echo "FAIL: a client with a wrong secret succeeded"; exit 1; }
grep -q "secret mismatch" "$dir/client" || { echo "FAIL: the client does not say secret mismatch"; exit 1; }
grep -q "secret mismatch" "$dir/server" || { echo "FAIL: the server does not log secret mismatch"; exit 1; }
echo PASS
