#!/usr/bin/env bash
# Smoke test of chat_sock_server and chat_sock_client: a server and two
# clients on loopback; each client sees the other's line. Bounded in time;
# leaves no process behind.
#
#   chat_sock_smoke_test.sh SERVER_BINARY CLIENT_BINARY
set -uo pipefail
server_bin="$1"; client_bin="$2"
dir=$(mktemp -d)
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
timeout 30 "$server_bin" --listen=tcp://127.0.0.1:0 --max_clients=2 >"$dir/server" 2>&1 &
spid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$dir/server" && break
  sleep 0.1
done
addr=$(sed -n 's/^server: listening on //p' "$dir/server")
[ -n "$addr" ] || { echo "FAIL: server did not start"; cat "$dir/server"; exit 1; }
echo "hello from alice" | timeout 20 "$client_bin" --server="$addr" --name=alice --wait_online=2 --wait_lines=1 >"$dir/alice" 2>&1 &
apid=$!
echo "hi alice, bob here" | timeout 20 "$client_bin" --server="$addr" --name=bob --wait_online=2 --wait_lines=1 >"$dir/bob" 2>&1 &
bpid=$!
wait "$apid"; arc=$?
wait "$bpid"; brc=$?
wait "$spid"; src=$?
spid=""
for f in server alice bob; do echo "--- $f"; cat "$dir/$f"; done
[ $arc -eq 0 ] && [ $brc -eq 0 ] && [ $src -eq 0 ] || { echo "FAIL: exit codes $arc $brc $src"; exit 1; }
grep -q "^bob: hi alice, bob here" "$dir/alice" || { echo "FAIL: alice did not hear bob"; exit 1; }
grep -q "^alice: hello from alice" "$dir/bob" || { echo "FAIL: bob did not hear alice"; exit 1; }
grep -q "2 clients came and left" "$dir/server" || { echo "FAIL: server summary"; exit 1; }
echo PASS
