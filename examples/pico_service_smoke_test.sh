#!/usr/bin/env bash
# Smoke test of pico_service_task and pico_client_task: two processes over
# tcp:// (secret from $PICOS_REMOTE_SECRET), unix:// and tls:// (secret from
# --secret_file; remote_smoke_lib.sh gives the TLS setup). The client reaches the service through --peer and
# Location::Anywhere, and each of its requests is answered with the time
# after the delay it asked for. Bounded in time; kills only the server it
# started.
#
#   pico_service_smoke_test.sh SERVER_BINARY CLIENT_BINARY MAKE_TEST_CERTS REMOTE_SMOKE_LIB
set -uo pipefail
server_bin="$1"; client_bin="$2"; make_certs="$3"; lib="$4"
dir=$(mktemp -d)
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
# shellcheck source=examples/remote_smoke_lib.sh
source "$lib"
remote_smoke_transports "$make_certs" "$dir" pico-service
secret="pico service smoke test secret"
echo "$secret" >"$dir/secret"

# Over tcp:// the URIs come from flags (--peer twice: repeated list flags
# are joined) and the secret from the environment; over unix:// and tls:// the URIs
# come from $PICOS_REMOTE_LISTEN and $PICOS_REMOTE_PEERS and the secret
# from --secret_file.
for listen in "${REMOTE_SMOKE_LISTEN[@]}"; do
  if [ "${listen%%:*}" = tcp ]; then
    export PICOS_REMOTE_SECRET="$secret"; secret_flag=()
    # The flag wins over the environment (which would not even parse).
    rm -f "$dir/server"  # a fresh file: the last run's address must not be read
    PICOS_REMOTE_LISTEN="bogus://x" timeout 60 "$server_bin" --listen="$listen" --requests=2 >"$dir/server" 2>&1 &
  else
    unset PICOS_REMOTE_SECRET; secret_flag=(--secret_file="$dir/secret")
    rm -f "$dir/server"  # a fresh file: the last run's address must not be read
    PICOS_REMOTE_LISTEN="$listen" timeout 60 "$server_bin" "${secret_flag[@]}" --requests=2 >"$dir/server" 2>&1 &
  fi
  spid=$!
  remote_smoke_server_address "$dir/server" pico_service
  if [ "${listen%%:*}" = tcp ]; then
    timeout 30 "$client_bin" --peer="$addr" --peer="$addr" --count=2 --max_delay_ms=200 >"$dir/client" 2>&1
  else
    PICOS_REMOTE_PEERS="$addr" timeout 30 "$client_bin" "${secret_flag[@]}" --count=2 --max_delay_ms=200 \
      >"$dir/client" 2>&1
  fi
  crc=$?
  wait "$spid"; src=$?; spid=""
  echo "--- server ($listen)"; cat "$dir/server"; echo "--- client"; cat "$dir/client"
  [ $crc -eq 0 ] && [ $src -eq 0 ] || { echo "FAIL: exit codes $crc $src"; exit 1; }
  # "time at pico_service#3@pico_server@tcp://... is Tue Dec  1 20:31:02 2026"
  [ "$(grep -Ec '^pico_client: time at (pico_service|task)#[0-9]+@pico_server@.* is [A-Z][a-z]{2} .*[0-9]{4} \(asked' "$dir/client")" -eq 2 ] \
    || { echo "FAIL: two answers with the time from the remote service"; exit 1; }
  [ "$(grep -c '^pico_service: answered .*: sent$' "$dir/server")" -eq 2 ] || { echo "FAIL: server answers"; exit 1; }
  grep -q "^pico_service: 2 answers" "$dir/server" || { echo "FAIL: server summary"; exit 1; }
done

# No secret at all: refused before anything starts, naming where to put one.
unset PICOS_REMOTE_SECRET
timeout 30 "$client_bin" --peer=tcp://127.0.0.1:1 >"$dir/client" 2>&1; crc=$?
echo "--- client without a secret"; cat "$dir/client"
[ $crc -ne 0 ] && grep -q "PICOS_REMOTE_SECRET" "$dir/client" || { echo "FAIL: a missing secret"; exit 1; }
# A malformed --peer is refused naming the flag.
PICOS_REMOTE_SECRET="$secret" timeout 30 "$client_bin" --peer=tcp://127.0.0.1:99999 >"$dir/client" 2>&1; crc=$?
echo "--- client with a bad --peer"; cat "$dir/client"
[ $crc -ne 0 ] && grep -q -- "--peer=tcp://127.0.0.1:99999" "$dir/client" || { echo "FAIL: a bad --peer"; exit 1; }
echo PASS
