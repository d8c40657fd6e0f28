#!/usr/bin/env bash
# Smoke test of dispycos_client3 (objects changed by jobs and delivered back
# to a local task as messages): two real picos-node processes on loopback
# (2 workers each) and the client, which sends 10 objects C {i, n}. Checks
# that the results task received each object once, changed as the job
# changes it (n became its square root), from one of the nodes' worker
# processes; that closing ends the workers and removes the files; and that
# a client given no node is a usage error. Bounded in time; kills only the
# nodes it started.
#
#   dispycos_client3_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_client3 n1 n2 client client.err

"$client_bin" --jobs=3 >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_client3: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

for n in n1 n2; do dispycos_smoke_node "$n" --cpus=2; done

timeout 60 "$client_bin" --nodes="${uri[n1]},${uri[n2]}" --jobs=10 --library="$library" \
  >"$dir/client" 2>"$dir/client.err"; rc=$?
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc"
grep -q '^dispycos_client3: 10 objects received, 0 lost$' "$dir/client" || fail "not 10 objects received"
pids=" $(cat "$dir/n1" "$dir/n2" | awk '/^worker started /{print $5}' | tr '\n' ' ')"
for i in $(seq 0 9); do
  sent=$(sed -nE "s/^dispycos_client3: object $i sent: n=([0-9]+)$/\1/p" "$dir/client")
  [ -n "$sent" ] || fail "object $i: not sent"
  got=$(grep -E "^dispycos_client3: object $i received from pid [0-9]+: n=" "$dir/client")
  [ "$(grep -c . <<<"$got")" = 1 ] || fail "object $i: not received once"
  p=$(sed -nE 's/.* from pid ([0-9]+): .*/\1/p' <<<"$got")
  n=$(sed -nE 's/.*: n=([0-9.]+)$/\1/p' <<<"$got")
  [[ "$pids" == *" $p "* ]] || fail "object $i came from pid $p, not a worker"
  awk -v a="$sent" -v b="$n" 'BEGIN { d = sqrt(a) - b; exit !(d < 1e-4 && d > -1e-4) }' ||
    fail "object $i: n=$n is not the square root of $sent"
done
for n in n1 n2; do dispycos_smoke_node_closed "$n" 2; done
echo PASS
