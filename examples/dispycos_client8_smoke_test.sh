#!/usr/bin/env bash
# Smoke test of dispycos_client8 (long computations that still receive
# messages): a real picos-node on loopback (2 workers) and the client, which
# starts 4 jobs and streams 5 integers to each at once; each job computes
# 150 ms per input without receiving, so its inputs wait in its mailbox (two
# jobs also wait for a worker first, holding theirs on the client). Checks
# that every job's result message carries all 5 inputs and their sum, from
# a worker process; that the node ends the workers and removes the files;
# and that a client given no node is a usage error. Bounded in time; kills
# only the node it started.
#
#   dispycos_client8_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_client8 n1 client client.err

"$client_bin" --jobs=3 >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_client8: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

dispycos_smoke_node n1 --cpus=2

timeout 60 "$client_bin" --nodes="${uri[n1]}" --jobs=4 --inputs=5 --work_ms=150 --library="$library" \
  >"$dir/client" 2>"$dir/client.err"; rc=$?
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc"
grep -q '^dispycos_client8: 4 results, 0 wrong, 0 failed$' "$dir/client" || fail "not 4 good results"
pids=" $(awk '/^worker started /{print $5}' "$dir/n1" | tr '\n' ' ')"
sent=$(grep -E '^dispycos_client8: job [0-9]+ sent 5 inputs, sum [0-9]+$' "$dir/client")
[ "$(grep -c . <<<"$sent")" = 4 ] || fail "not 4 jobs sent their inputs"
while read -r _ _ id _ _ _ _ sum; do
  got=$(grep -E "^dispycos_client8: job $id result: " "$dir/client")
  [ "$(grep -c . <<<"$got")" = 1 ] || fail "job $id: not one result"
  grep -qE "^dispycos_client8: job $id result: 5 inputs, sum $sum from pid [0-9]+: ok$" <<<"$got" ||
    fail "job $id: want 5 inputs, sum $sum; got: $got"
  p=$(sed -nE 's/.* from pid ([0-9]+): .*/\1/p' <<<"$got")
  [[ "$pids" == *" $p "* ]] || fail "job $id ran in pid $p, not a worker"
done <<<"$sent"
dispycos_smoke_node_closed n1 2
echo PASS
