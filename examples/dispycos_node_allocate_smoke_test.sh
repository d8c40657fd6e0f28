#!/usr/bin/env bash
# Smoke test of dispycos_node_allocate (node allocation rules): three real
# picos-node processes on loopback addresses of their own, 127.0.0.1 (2
# CPUs), 127.0.0.2 (3 CPUs) and 127.0.0.3 (2 CPUs), and rules by address:
# at most 1 worker on the first, all but 1 on the second, and a minimum of
# free memory (1 PiB) that skips the third. Checks that the client used 1 +
# 2 workers (each node started that many, the third none and the client
# says why), that every job ran in one of those workers; that a custom
# allocation function excluding the nodes' platform (linux*) leaves no node
# and the client says so with status 1; that a malformed rule is a usage
# error. Bounded in time; kills only the nodes it started.
#
#   dispycos_node_allocate_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_node_allocate n1 n2 n3 client excluded

"$client_bin" --nodes=tcp://127.0.0.1:1 --rules='a/b' >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_node_allocate: --rules: 'a/b' is not HOST/PLATFORM/CPUS" "$dir/usage" ||
  fail "bad rule: status $rc, $(cat "$dir/usage")"

declare -A addr=([n1]=127.0.0.1 [n2]=127.0.0.2 [n3]=127.0.0.3)
declare -A cpus=([n1]=2 [n2]=3 [n3]=2)
for n in n1 n2 n3; do dispycos_smoke_node "$n" --cpus="${cpus[$n]}" --listen="tcp://${addr[$n]}:0"; done
nodes="${uri[n1]},${uri[n2]},${uri[n3]}"

timeout 60 "$client_bin" --nodes="$nodes" --jobs=6 --library="$library" \
  --rules='127.0.0.1/*/1,127.0.0.2/linux*/-1,127.0.0.*/*/0/1073741824' >"$dir/client" 2>"$dir/client.err"; rc=$?
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc: $(cat "$dir/client.err")"
grep -q "^dispycos_node_allocate: node ${uri[n1]}: 1 workers$" "$dir/client" || fail "n1: not 1 worker"
grep -q "^dispycos_node_allocate: node ${uri[n2]}: 2 workers$" "$dir/client" || fail "n2: not 2 workers"
grep -q "^dispycos_node_allocate: node ${uri[n3]} ignored: rule 2: .* bytes of memory available, below 1125899906842624$" \
  "$dir/client" || fail "n3 not ignored for its memory"
grep -q '^dispycos_node_allocate: 6 jobs done, 0 failed, on 3 workers of 2 nodes$' "$dir/client" || fail "not 6 jobs on 3 workers"
[ "$(grep -c '^worker started ' "$dir/n1")" = 1 ] || fail "n1 did not start 1 worker"
[ "$(grep -c '^worker started ' "$dir/n2")" = 2 ] || fail "n2 did not start 2 workers"
[ "$(grep -c '^worker started ' "$dir/n3")" = 0 ] || fail "n3 started workers"
pids=" $(cat "$dir/n1" "$dir/n2" | awk '/^worker started /{print $5}' | tr '\n' ' ')"
for i in $(seq 0 5); do
  p=$(sed -nE "s/^dispycos_node_allocate: job $i done: [^ ]+ ([0-9]+) slept 50 ms$/\1/p" "$dir/client")
  [ -n "$p" ] || fail "job $i: no result"
  [[ "$pids" == *" $p "* ]] || fail "job $i ran in pid $p, not a worker of n1 or n2"
done

# A custom allocation function excluding the nodes' own platform: nothing left.
timeout 60 "$client_bin" --nodes="$nodes" --exclude_platform='linux*' --library="$library" >"$dir/excluded" 2>&1; rc=$?
echo "--- excluded"; cat "$dir/excluded"
[ $rc -eq 1 ] || fail "excluded: status $rc, not 1"
[ "$(grep -c '^dispycos_node_allocate: node .* ignored: the allocation function skipped it$' "$dir/excluded")" = 3 ] ||
  fail "excluded: not 3 nodes skipped by the function"
grep -q '^dispycos_node_allocate: no node allocated$' "$dir/excluded" || fail "excluded: no word of it"
dispycos_smoke_node_closed n1 1; dispycos_smoke_node_closed n2 2; dispycos_smoke_node_closed n3 0
echo PASS
