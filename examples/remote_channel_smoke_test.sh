#!/usr/bin/env bash
# Smoke test of remote_channel_server and remote_channel_client: two
# processes over tcp:// (secret from $PICOS_REMOTE_SECRET), unix:// and
# tls:// (secret from --secret_file; remote_smoke_lib.sh gives the TLS setup). The client's Deliver(msg, n=2) reaches both
# subscribers (the client itself and the server's receiver, which
# subscribes late), and each prints what it got. Bounded in time; kills
# only the server it started.
#
#   remote_channel_smoke_test.sh SERVER_BINARY CLIENT_BINARY MAKE_TEST_CERTS REMOTE_SMOKE_LIB
set -uo pipefail
server_bin="$1"; client_bin="$2"; make_certs="$3"; lib="$4"
dir=$(mktemp -d)
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
# shellcheck source=examples/remote_smoke_lib.sh
source "$lib"
remote_smoke_transports "$make_certs" "$dir" remote-channel
secret="remote channel smoke test secret"
echo "$secret" >"$dir/secret"

for listen in "${REMOTE_SMOKE_LISTEN[@]}"; do
  if [ "${listen%%:*}" = tcp ]; then
    export PICOS_REMOTE_SECRET="$secret"; secret_flag=()
  else
    unset PICOS_REMOTE_SECRET; secret_flag=(--secret_file="$dir/secret")
  fi
  rm -f "$dir/server"  # a fresh file: the last run's address must not be read
  timeout 60 "$server_bin" --listen="$listen" "${secret_flag[@]}" --clients=1 --subscribe_delay_ms=300 \
    >"$dir/server" 2>&1 &
  spid=$!
  remote_smoke_server_address "$dir/server" server
  timeout 30 "$client_bin" --peer="$addr" "${secret_flag[@]}" --count=3 >"$dir/client" 2>&1; crc=$?
  wait "$spid"; src=$?; spid=""
  echo "--- server ($listen)"; cat "$dir/server"; echo "--- client"; cat "$dir/client"
  [ $crc -eq 0 ] && [ $src -eq 0 ] || { echo "FAIL: exit codes $crc $src"; exit 1; }
  [ "$(grep -c '^client: delivered to 2$' "$dir/client")" -eq 3 ] \
    || { echo "FAIL: every Deliver reaches the two subscribers"; exit 1; }
  for i in 0 1 2; do
    grep -q "^client: received 'message $i' from sender#[0-9]* (this process's sender)" "$dir/client" \
      || { echo "FAIL: the client did not receive message $i with its own sender's handle"; exit 1; }
    grep -Eq "^server: received 'message $i' from (sender|task)#[0-9]+@remote_channel_client@" "$dir/server" \
      || { echo "FAIL: the server's receiver did not receive message $i"; exit 1; }
  done
  grep -q "^server: receiver subscribed" "$dir/server" || { echo "FAIL: receiver"; exit 1; }
  grep -q "^server: 3 messages from 1 clients" "$dir/server" || { echo "FAIL: server summary"; exit 1; }
done
echo PASS
