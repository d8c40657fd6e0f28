#!/usr/bin/env bash
# Smoke test of dispycos_client2: two real picos-node processes on loopback
# (2 workers each) and the client, which ships its computation to both,
# submits 12 jobs and joins each. Checks that every job's result comes
# back once, from a worker of one of the nodes (both are used), with the
# sleep the client gave it; that closing ends the 4 workers and removes the
# shipped files; and that a client given no node is a usage error.
# Bounded in time; kills only the nodes it started.
#
#   dispycos_client2_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_client2 n1 n2 client

"$client_bin" --jobs=3 >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_client2: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

for n in n1 n2; do dispycos_smoke_node "$n" --cpus=2; done

timeout 60 "$client_bin" --nodes="${uri[n1]},${uri[n2]}" --jobs=12 --min_ms=20 --max_ms=150 --library="$library" \
  >"$dir/client" 2>"$dir/client.err"; rc=$?
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc"
grep -q '^dispycos_client2: scheduled on 2 nodes, 4 workers$' "$dir/client" || fail "not scheduled on 4 workers"
grep -q '^dispycos_client2: 12 jobs done, 0 failed$' "$dir/client" || fail "not every job done"
declare -A used
result_re='\(([0-9]+) ms\) done: [^ ]+ ([0-9]+) slept ([0-9]+) ms$'
for i in $(seq 0 11); do
  line=$(grep -E "^dispycos_client2: job $i \([0-9]+ ms\) done: " "$dir/client")
  [ "$(grep -c . <<<"$line")" = 1 ] || fail "job $i: not one result"
  # "job <i> (<ms> ms) done: <host> <pid> slept <ms> ms": the sleep it was given.
  [[ "$line" =~ $result_re ]] || fail "job $i: $line"
  [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[3]}" ] || fail "job $i slept another time: $line"
  p=${BASH_REMATCH[2]}
  for n in n1 n2; do grep -Eq "^worker started [^ ]+ [0-9]+ $p " "$dir/$n" && used[$n]=1; done
done
[ "${#used[@]}" = 2 ] || fail "the jobs did not run on workers of both nodes"
# Close ended the workers (each node says so) and removed the shipped files.
for n in n1 n2; do dispycos_smoke_node_closed "$n" 2; done
echo PASS
