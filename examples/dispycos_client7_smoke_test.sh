#!/usr/bin/env bash
# Smoke test of dispycos_client7 (status-driven scheduling): two real
# picos-node processes on loopback (2 workers each) and the client, which
# puts a first job on each worker as its worker_initialized event arrives
# and the next one on the worker whose job_finished event arrives, 10 jobs
# in all. Checks that each of the 4 workers got a first job from its event;
# that every job's result comes back once and came from the very worker the
# client named (the pid in the result is the one its node started at that
# URI); that closing ends the workers and removes the shipped files; and
# that a client given no node is a usage error. Bounded in time; kills only
# the nodes it started.
#
#   dispycos_client7_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_client7 n1 n2 client client.err

"$client_bin" --jobs=3 >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_client7: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

for n in n1 n2; do dispycos_smoke_node "$n" --cpus=2; done

timeout 60 "$client_bin" --nodes="${uri[n1]},${uri[n2]}" --jobs=10 --min_ms=20 --max_ms=120 --library="$library" \
  >"$dir/client" 2>"$dir/client.err"; rc=$?
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc"
grep -q '^dispycos_client7: 10 jobs done, 0 failed, on 4 workers$' "$dir/client" || fail "not 10 jobs on 4 workers"
# A first job per worker, from its worker_initialized event: jobs 0..3 on 4 workers.
inits=$(grep -E '^dispycos_client7: worker [^ ]+ initialized: job [0-3] submitted$' "$dir/client")
[ "$(grep -c . <<<"$inits")" = 4 ] || fail "not 4 first jobs from worker_initialized"
[ "$(awk '{print $3}' <<<"$inits" | sort -u | wc -l)" = 4 ] || fail "first jobs not on 4 distinct workers"
# The node's "worker started <id> <index> <pid> <uri>" lines: pid of each worker URI.
declare -A pid_of
while read -r _ _ _ _ p u; do pid_of[$u]=$p; done < <(cat "$dir/n1" "$dir/n2" | grep '^worker started ')
[ "${#pid_of[@]}" = 4 ] || fail "the nodes did not start 4 workers"
result_re='^dispycos_client7: job ([0-9]+) on ([^ ]+) done: [^ ]+ ([0-9]+) slept [0-9]+ ms$'
for i in $(seq 0 9); do
  line=$(grep -E "^dispycos_client7: job $i on [^ ]+ done: " "$dir/client")
  [ "$(grep -c . <<<"$line")" = 1 ] || fail "job $i: not one result"
  [[ "$line" =~ $result_re ]] || fail "job $i: $line"
  w=${BASH_REMATCH[2]}; p=${BASH_REMATCH[3]}
  [ "${pid_of[$w]:-}" = "$p" ] || fail "job $i ran in pid $p, not in worker $w (pid ${pid_of[$w]:-none})"
done
for n in n1 n2; do dispycos_smoke_node_closed "$n" 2; done
echo PASS
