#!/usr/bin/env bash
# Smoke test of rps_log_watch_server and rps_log_watch_client: two processes
# over tcp://, unix:// and tls:// (remote_smoke_lib.sh), the server given by
# --peer (no multicast), the secret from the environment. The client starts
# a watch on the server when the server's peer event "joined" comes, gets the
# matching lines already in the log and those appended after (and no others),
# then closes the service: the remote watch task ends, its tail | grep
# processes with it, and both programs exit. Then two servers and a client
# with no --peer on a loopback multicast group (a port of this run's own):
# discovery brings both servers, and the client starts a watch on each.
# Bounded in time;
# kills only the processes it started.
#
#   rps_log_watch_smoke_test.sh SERVER_BINARY CLIENT_BINARY MAKE_TEST_CERTS REMOTE_SMOKE_LIB
set -uo pipefail
server_bin="$1"; client_bin="$2"; make_certs="$3"; lib="$4"
dir=$(mktemp -d)
spids=()
cleanup() {
  [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null
  [ -n "${cpid:-}" ] && kill "$cpid" 2>/dev/null
  for p in "${spids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null; rm -rf "$dir"
}
trap cleanup EXIT
# shellcheck source=examples/remote_smoke_lib.sh
source "$lib"
remote_smoke_transports "$make_certs" "$dir" rps-log-watch
export PICOS_REMOTE_SECRET="rps log watch smoke test secret, long enough"

n=0
for listen in "${REMOTE_SMOKE_LISTEN[@]}"; do
  n=$((n + 1))
  log="$dir/watched-$n.log"
  printf 'boot ok\nfirst ERROR: disk full\nall good\nsecond error: fan\n' >"$log"
  rm -f "$dir/server"  # a fresh file: the last run's address must not be read
  timeout 60 "$server_bin" --discovery_group= --listen="$listen" --file="$log" --pattern=error --backlog=10 --watchers=1 \
    >"$dir/server" 2>&1 &
  spid=$!
  remote_smoke_server_address "$dir/server" server
  timeout 30 "$client_bin" --discovery_group= --peer="$addr" --lines=4 >"$dir/client" 2>&1 &
  cpid=$!
  for _ in $(seq 400); do
    grep -q "^client: rps_log_watch_server: second error: fan" "$dir/client" && break
    sleep 0.05
  done
  printf 'still fine\nthird ERROR appended\nquiet line\nfourth Error appended\n' >>"$log"
  wait "$cpid"; crc=$?; cpid=""
  wait "$spid"; src=$?; spid=""
  echo "--- server ($listen)"; cat "$dir/server"; echo "--- client"; cat "$dir/client"
  [ $crc -eq 0 ] && [ $src -eq 0 ] || { echo "FAIL: exit codes $crc $src"; exit 1; }
  grep -Eq "^client: peer rps_log_watch_server \(.*\) joined" "$dir/client" || { echo "FAIL: no joined event"; exit 1; }
  grep -q "^client: watching " "$dir/client" || { echo "FAIL: no watch started"; exit 1; }
  for l in "first ERROR: disk full" "second error: fan" "third ERROR appended" "fourth Error appended"; do
    grep -q "^client: rps_log_watch_server: $l$" "$dir/client" || { echo "FAIL: line '$l' not streamed"; exit 1; }
  done
  if grep -Eq "^client: rps_log_watch_server: (boot ok|all good|still fine|quiet line)" "$dir/client"; then
    echo "FAIL: a line that does not match was streamed"; exit 1
  fi
  grep -q "^client: 4 lines from 1 watches" "$dir/client" || { echo "FAIL: client summary"; exit 1; }
  grep -q "^server: watch for .* ended after 4 lines: CANCELLED" "$dir/server" \
    || { echo "FAIL: the watch task was not terminated by Close"; exit 1; }
  grep -q "^server: 1 watchers ended" "$dir/server" || { echo "FAIL: server summary"; exit 1; }
  if pgrep -f "$log" >/dev/null; then echo "FAIL: a tail or grep of $log outlived its task"; exit 1; fi
done

# Discovery: two servers announce on a loopback group; the client, given no
# --peer, hears both, joins them and starts a watch on each. Each log has two
# matching lines, so the client's four lines come from both watches.
port=$((20000 + ($$ % 20000)))
mcast=(--discovery_iface=lo --discovery_group="239.255.97.5:$port")
spids=()
for s in a b; do
  printf 'boot ok\n%s one error\nall good\n%s two ERROR\n' "$s" "$s" >"$dir/watched-$s.log"
  timeout 60 "$server_bin" "${mcast[@]}" --node_name="logs-$s-$$" --listen=tcp://127.0.0.1:0 \
    --file="$dir/watched-$s.log" --pattern=error --watchers=1 >"$dir/server-$s" 2>"$dir/server-$s.log" &
  spids+=($!)
done
timeout 60 "$client_bin" "${mcast[@]}" --lines=4 >"$dir/client" 2>"$dir/client.log" &
cpid=$!
wait "$cpid"; crc=$?; cpid=""
src=0
for p in "${spids[@]}"; do wait "$p" || src=$?; done
spids=()
for f in server-a server-b client; do echo "--- $f (discovery)"; cat "$dir/$f"; echo "--- $f (log)"; tail -20 "$dir/$f.log"; done
[ $crc -eq 0 ] && [ $src -eq 0 ] || { echo "FAIL: exit codes $crc $src (discovery)"; exit 1; }
grep -q "^client: discovery on mcast://239\.255\.97\.5:$port?.*iface=lo" "$dir/client" ||
  { echo "FAIL: the client did not start discovery on the group"; exit 1; }
for s in a b; do
  grep -q "discovery: found logs-$s-$$ at tcp://127.0.0.1:" "$dir/client.log" ||
    { echo "FAIL: discovery did not find logs-$s-$$"; exit 1; }
  grep -Eq "^client: peer logs-$s-$$ \(tcp://127\.0\.0\.1:[0-9]+\) joined" "$dir/client" ||
    { echo "FAIL: logs-$s-$$ did not join the client"; exit 1; }
  grep -Eq "^client: watching tcp://127\.0\.0\.1:[0-9]+ with " "$dir/client" || { echo "FAIL: no watch started"; exit 1; }
  for l in "$s one error" "$s two ERROR"; do
    grep -q "^client: logs-$s-$$: $l$" "$dir/client" || { echo "FAIL: line '$l' not streamed by discovery"; exit 1; }
  done
  grep -q "^server: 1 watchers ended" "$dir/server-$s" || { echo "FAIL: server $s summary"; exit 1; }
done
[ "$(grep -c '^client: watching ' "$dir/client")" -eq 2 ] || { echo "FAIL: not one watch per server"; exit 1; }
grep -q "^client: 4 lines from 2 watches" "$dir/client" || { echo "FAIL: client summary (discovery)"; exit 1; }
echo PASS
