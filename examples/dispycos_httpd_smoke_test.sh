#!/usr/bin/env bash
# Smoke test of dispycos_httpd1 and dispycos_httpd2 (examples/dispycos_httpd.h):
# two real picos-node processes on loopback and the client, whose stdin is a
# pipe this script writes job lengths to. While the client waits for more
# input, its dashboard (read with curl and the token from its file) shows
# the 4 I/O jobs done; "quit" then closes it, exit status 0. With
# dispycos_httpd2, its own status task (chained behind the dashboard's)
# prints each job's start and end and the close. Bounded in time; kills only
# the processes it started (no `timeout` wrapper: killing one would leave
# its child running).
#
#   dispycos_httpd_smoke_test.sh PICOS_NODE CLIENT LIBRARY NAME SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; name="$4"; lib="$5"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_httpd n1 n2 client client.err

"$client_bin" </dev/null >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^$name: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

for n in n1 n2; do dispycos_smoke_node "$n" --cpus=1; done

mkfifo "$dir/in"
"$client_bin" --nodes="${uri[n1]},${uri[n2]}" --library="$library" --dashboard_listen=tcp://127.0.0.1:0 \
  --dashboard_token_file="$dir/token" <"$dir/in" >"$dir/client" 2>"$dir/client.err" &
client_pid=$!
dispycos_smoke_track "$client_pid"
exec 3>"$dir/in"
for _ in $(seq 1200); do grep -q "^$name: scheduled on 2 nodes, 2 workers$" "$dir/client" && break; sleep 0.05; done
grep -q "^$name: scheduled on 2 nodes, 2 workers$" "$dir/client" || fail "not scheduled"
printf '300\n400\nabc\n200\n\n500\n' >&3
for _ in $(seq 1200); do [ "$(grep -c "^$name: job [0-9] done: " "$dir/client")" = 4 ] && break; sleep 0.05; done
[ "$(grep -c "^$name: job [0-9] done: " "$dir/client")" = 4 ] || fail "not 4 jobs done"
grep -q "^$name: job 1 submitted (400 ms)$" "$dir/client" || fail "job 1 not submitted"
grep -q "^$name: 'abc' is not a number of milliseconds (0..60000)$" "$dir/client" || fail "abc taken"

url=$(sed -n "s/^$name: dashboard at \(http:[^ ]*\) (token in .*)$/\1/p" "$dir/client")
[ -n "$url" ] || fail "no dashboard URL"
state=$(curl -s -H "Authorization: Bearer $(cat "$dir/token")" "${url}api/state")
[ "$(grep -o '"async":true,"start":[0-9]*,"end":[0-9]*,"code":0,"outcome":"done"' <<<"$state" | wc -l)" = 4 ] ||
  fail "the dashboard does not show 4 I/O jobs done: $state"

echo quit >&3
exec 3>&-
for _ in $(seq 1200); do kill -0 "$client_pid" 2>/dev/null || break; sleep 0.05; done
wait "$client_pid"; rc=$?
dispycos_smoke_untrack "$client_pid"
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc"
grep -q "^$name: 4 jobs done, 0 failed$" "$dir/client" || fail "no summary"
[ ! -e "$dir/token" ] || fail "the token file outlived the dashboard"
for n in n1 n2; do dispycos_smoke_node_closed "$n" 1; done
if [ "$name" = dispycos_httpd2 ]; then
  [ "$(grep -c '^dispycos_httpd2: status: job [0-9]* started on tcp://' "$dir/client")" = 4 ] || fail "user status: starts"
  [ "$(grep -c '^dispycos_httpd2: status: job [0-9]* finished: 0$' "$dir/client")" = 4 ] || fail "user status: ends"
  grep -q '^dispycos_httpd2: status: computation closed after [0-9]* events$' "$dir/client" || fail "user status: close"
else
  ! grep -q ': status: ' "$dir/client" || fail "httpd1 has no status task of its own"
fi
echo PASS
