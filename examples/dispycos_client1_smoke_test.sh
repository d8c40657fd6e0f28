#!/usr/bin/env bash
# Smoke test of dispycos_client1: two real picos-node processes on loopback
# (2 workers each) and the client with its dashboard. While the client
# lingers after its 8 jobs, the dashboard is read with curl: the page needs
# the token (written mode 0600), the state shows both nodes, 4 workers and
# the 8 jobs done, and /metrics answers on the same port. A client given no
# node is a usage error. Bounded in time; kills only the processes it
# started (no `timeout` wrapper: killing one would leave its child running).
#
#   dispycos_client1_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_client1 n1 n2 client client.err

"$client_bin" --jobs=3 >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_client1: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

for n in n1 n2; do dispycos_smoke_node "$n" --cpus=2; done

"$client_bin" --nodes="${uri[n1]},${uri[n2]}" --jobs=8 --min_ms=20 --max_ms=150 \
  --linger_s=60 --library="$library" --dashboard_listen=tcp://127.0.0.1:0 \
  --dashboard_token_file="$dir/token" >"$dir/client" 2>"$dir/client.err" &
dispycos_smoke_track $!
for _ in $(seq 1200); do grep -q '^dispycos_client1: 8 jobs done, 0 failed$' "$dir/client" && break; sleep 0.05; done
grep -q '^dispycos_client1: 8 jobs done, 0 failed$' "$dir/client" || fail "not every job done"
grep -q '^dispycos_client1: scheduled on 2 nodes, 4 workers$' "$dir/client" || fail "not scheduled on 4 workers"
url=$(sed -n 's/^dispycos_client1: dashboard at \(http:[^ ]*\) (token in .*)$/\1/p' "$dir/client")
[ -n "$url" ] || fail "no dashboard URL"
[ "$(stat -c %a "$dir/token")" = 600 ] || fail "the token file is not mode 600"
token=$(cat "$dir/token")

code=$(curl -s -o /dev/null -w '%{http_code}' "${url}api/state")
[ "$code" = 401 ] || fail "the state without the token: $code"
state=$(curl -s -H "Authorization: Bearer $token" "${url}api/state")
echo "--- state"; echo "$state" | head -c 2000; echo
for n in n1 n2; do grep -q "\"uri\":\"${uri[$n]}\"" <<<"$state" || fail "node $n not in the state"; done
[ "$(grep -o '"outcome":"done"' <<<"$state" | wc -l)" = 8 ] || fail "not 8 jobs done in the state"
[ "$(grep -o '"state":"idle"' <<<"$state" | wc -l)" = 4 ] || fail "not 4 idle workers"
grep -q '"fn":"compute","total":8,"done":8' <<<"$state" || fail "no progress of compute"
code=$(curl -s -o "$dir/metrics" -w '%{http_code}' -H "Authorization: Bearer $token" "${url}metrics")
[ "$code" = 200 ] || fail "/metrics: $code"
# The computation's own figures (ComputationOptions::metrics) on the same port.
grep -q '^picos_compute_jobs_total{function="compute",state="done"} 8$' "$dir/metrics" ||
  fail "/metrics has not the 8 jobs done: $(grep picos_compute_jobs "$dir/metrics")"
grep -q '^picos_compute_job_duration_seconds_count{function="compute"} 8$' "$dir/metrics" || fail "no job durations"
# The login URL gives the page's cookie, and the page with it.
cookie=$(curl -s -D - -o /dev/null "${url}login?token=$token" | tr -d '\r' | sed -n 's/^Set-Cookie: //p')
grep -q 'HttpOnly; SameSite=Strict' <<<"$cookie" || fail "login cookie: $cookie"
curl -s -H "Cookie: ${cookie%%;*}" "$url" | grep -q '<script src="/app.js">' || fail "no page with the cookie"
echo PASS
