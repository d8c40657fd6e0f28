#!/usr/bin/env bash
# Smoke test of rps_node_server and rps_node_client: two processes over
# tcp://, unix:// and tls:// (remote_smoke_lib.sh), the secret and the phrase
# from the environment. Over each: the client sends node_update.sh and asks
# for a name that is not an uploaded file (refused), then a symlink in the
# upload directory (refused), then runs the script with the wrong phrase
# (refused by the challenge, nothing run), then with the right one: the
# script's exit code 3, stdout and stderr come back. Last, a script that
# writes more than the server's --max_output fails with RESOURCE_EXHAUSTED. Bounded in time; kills
# only the processes it started.
#
#   rps_node_smoke_test.sh SERVER CLIENT MAKE_TEST_CERTS LIB SCRIPT
set -uo pipefail
server_bin="$1"; client_bin="$2"; make_certs="$3"; lib="$4"; script_src="$5"
dir=$(mktemp -d)
cleanup() {
  [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null
  wait 2>/dev/null; rm -rf "$dir"
}
trap cleanup EXIT
# shellcheck source=examples/remote_smoke_lib.sh
source "$lib"
remote_smoke_transports "$make_certs" "$dir" rps-node
export PICOS_REMOTE_SECRET="rps node smoke test secret, long enough"
export RPS_NODE_PHRASE="the phrase both sides were given, long enough"
mkdir -p "$dir/src"
cp "$script_src" "$dir/src/node_update.sh" && chmod 755 "$dir/src/node_update.sh"
printf '#!/bin/sh\nhead -c 200000 /dev/zero\n' >"$dir/src/flood.sh" && chmod 755 "$dir/src/flood.sh"

client() {  # client OUTPUT_NAME FLAGS...
  local out="$1"; shift
  timeout 60 "$client_bin" --peer="$addr" --script="$dir/src/node_update.sh" "$@" >"$dir/$out" 2>&1
}

n=0
for listen in "${REMOTE_SMOKE_LISTEN[@]}"; do
  n=$((n + 1))
  up="$dir/up-$n"; mkdir -p "$up"
  ln -s /bin/echo "$up/link"
  rm -f "$dir/server"  # a fresh file: the last run's address must not be read
  timeout 90 "$server_bin" --listen="$listen" --dir="$up" --runs=3 --max_output=65536 >"$dir/server" 2>&1 &
  spid=$!
  remote_smoke_server_address "$dir/server" server
  client c-escape --run_name=../node_update.sh; rc_escape=$?
  client c-link --run_name=link; rc_link=$?
  RPS_NODE_PHRASE="not the phrase the server was given" client c-wrong --arg=0; rc_wrong=$?
  client c-right --arg=0; rc_right=$?
  client c-flood --script="$dir/src/flood.sh"; rc_flood=$?
  wait "$spid"; src=$?; spid=""
  echo "--- server ($listen)"; cat "$dir/server"
  for c in c-escape c-link c-wrong c-right c-flood; do echo "--- $c"; cat "$dir/$c"; done
  [ $rc_right -eq 0 ] && [ $src -eq 0 ] || { echo "FAIL: exit codes $rc_right $src"; exit 1; }
  [ $rc_escape -ne 0 ] && [ $rc_link -ne 0 ] && [ $rc_wrong -ne 0 ] && [ $rc_flood -ne 0 ] \
    || { echo "FAIL: a refused client exited 0: $rc_escape $rc_link $rc_wrong $rc_flood"; exit 1; }
  grep -q "^client: sent .*node_update.sh to $addr" "$dir/c-right" || { echo "FAIL: file not sent"; exit 1; }
  [ -x "$up/node_update.sh" ] || { echo "FAIL: the upload is not in the server's directory"; exit 1; }
  grep -q "^client: ../node_update.sh was refused: INVALID_ARGUMENT" "$dir/c-escape" \
    || { echo "FAIL: a path out of the directory was not refused"; exit 1; }
  grep -q "^client: link was refused: PERMISSION_DENIED: link is not a regular file" "$dir/c-link" \
    || { echo "FAIL: a symlink was not refused"; exit 1; }
  grep -q "^client: node_update.sh was not run: PERMISSION_DENIED: wrong answer to the challenge" "$dir/c-wrong" \
    || { echo "FAIL: a wrong phrase was not refused"; exit 1; }
  grep -q "^server: refused to run node_update.sh: wrong answer to the challenge" "$dir/server" \
    || { echo "FAIL: the server did not refuse the wrong answer"; exit 1; }
  [ "$(grep -c '^server: running node_update.sh' "$dir/server")" -eq 1 ] \
    || { echo "FAIL: the script ran other than once"; exit 1; }
  grep -q "^client: node_update.sh exit code 3, signal 0" "$dir/c-right" || { echo "FAIL: exit code"; exit 1; }
  grep -A1 "^client: stdout:" "$dir/c-right" | grep -q "^node updated after 0 s$" \
    || { echo "FAIL: stdout not returned"; exit 1; }
  grep -A1 "^client: stderr:" "$dir/c-right" | grep -q "^node_update: a warning$" \
    || { echo "FAIL: stderr not returned"; exit 1; }
  grep -q "^client: flood.sh was not run: RESOURCE_EXHAUSTED" "$dir/c-flood" \
    || { echo "FAIL: output beyond --max_output was not refused"; exit 1; }
  grep -q "^server: 3 runs ended, 5 files received" "$dir/server" || { echo "FAIL: server summary"; exit 1; }
done
echo PASS
