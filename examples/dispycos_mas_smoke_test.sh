#!/usr/bin/env bash
# Smoke test of dispycos_mas (agents on every worker finding each other and
# gossiping): two real picos-node processes on loopback (2 workers each) and
# the client, which starts an agent on each of the 4 workers; the agents
# register names, locate each other and gossip directly, worker to worker,
# for 2 rounds. Checks that each agent ran in one of the nodes' worker
# processes, that all 4 learnt the minimum and maximum of the 4 values (the
# client prints them; the test recomputes them from the values printed),
# that in 2 rounds of 4 agents telling 3 peers the agents received 24
# messages; that the nodes end the workers and remove the files; and that a
# client given no node is a usage error. Bounded in time; kills only the
# nodes it started.
#
#   dispycos_mas_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_mas n1 n2 client client.err

"$client_bin" >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_mas: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

for n in n1 n2; do dispycos_smoke_node "$n" --cpus=2; done

timeout 60 "$client_bin" --nodes="${uri[n1]},${uri[n2]}" --rounds=2 --library="$library" \
  >"$dir/client" 2>"$dir/client.err"; rc=$?
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc"
grep -q '^dispycos_mas: 4 agents, 24 gossip messages agent to agent; all agree: yes$' "$dir/client" || fail "summary"
pids=" $(cat "$dir/n1" "$dir/n2" | awk '/^worker started /{print $5}' | tr '\n' ' ')"
starts=$(grep -E '^dispycos_mas: agent[0-9] on tcp://[^ ]+ \(pid [0-9]+\) starts with [0-9]+$' "$dir/client")
[ "$(grep -c . <<<"$starts")" = 4 ] || fail "not 4 agents started"
for p in $(sed -nE 's/.*\(pid ([0-9]+)\).*/\1/p' <<<"$starts"); do
  [[ "$pids" == *" $p "* ]] || fail "an agent ran in pid $p, not a worker"
done
[ "$(sed -nE 's/.*\(pid ([0-9]+)\).*/\1/p' <<<"$starts" | sort -u | wc -l)" = 4 ] || fail "two agents in one process"
min=$(awk '{print $NF}' <<<"$starts" | sort -n | head -1)
max=$(awk '{print $NF}' <<<"$starts" | sort -n | tail -1)
[ "$(grep -cE "^dispycos_mas: agent[0-9] knows min $min max $max: ok$" "$dir/client")" = 4 ] ||
  fail "not every agent knows min $min and max $max"
for n in n1 n2; do dispycos_smoke_node_closed "$n" 2; done
echo PASS
