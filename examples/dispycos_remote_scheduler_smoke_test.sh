#!/usr/bin/env bash
# Smoke test of dispycos_remote_scheduler (a shared picos-scheduler, a
# custom allocation function): one real picos-node of 3 CPUs and a real
# picos-scheduler sharing it on loopback, and two clients at once. Client A's
# allocation function leaves all of the host's CPUs but one to others
# (--leave_cpus=nproc-1): it asks for, and gets, one worker, so all of its
# jobs run in one process; client B takes the rest. Both finish every job;
# the scheduler says each joined, its share, and that each left. A client
# without --scheduler is a usage error. Bounded in time; kills only the
# processes it started.
#
#   dispycos_remote_scheduler_smoke_test.sh PICOS_NODE PICOS_SCHEDULER CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; sched_bin="$2"; client_bin="$3"; library="$4"; lib="$5"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_remote_scheduler node sched a b

"$client_bin" >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q '^dispycos_remote_scheduler: --scheduler: ' "$dir/usage" ||
  fail "no --scheduler: status $rc, $(cat "$dir/usage")"

dispycos_smoke_node node --cpus=3
node_uri=${uri[node]}

"$sched_bin" --listen=tcp://127.0.0.1:0 --node="$node_uri" >"$dir/sched" 2>"$dir/sched.err" &
dispycos_smoke_track $!
for _ in $(seq 400); do grep -q '^node up ' "$dir/sched" && break; sleep 0.05; done
sched_uri=$(sed -n 's/^listening //p' "$dir/sched")
grep -q "^node up $node_uri 3$" "$dir/sched" || fail "the scheduler has no node: $(cat "$dir/sched.err")"

leave=$(( $(nproc) - 1 ))
timeout 90 "$client_bin" --scheduler="$sched_uri" --leave_cpus="$leave" --jobs=6 --job_ms=300 --library="$library" \
  >"$dir/a" 2>"$dir/a.err" &
a_pid=$!
timeout 90 "$client_bin" --scheduler="$sched_uri" --leave_cpus=0 --jobs=12 --job_ms=100 --library="$library" \
  >"$dir/b" 2>"$dir/b.err" &
b_pid=$!
wait "$a_pid"; a_rc=$?
wait "$b_pid"; b_rc=$?
echo "--- a"; cat "$dir/a"; echo "--- b"; cat "$dir/b"; echo "--- sched"; cat "$dir/sched"
[ $a_rc -eq 0 ] || fail "client a exited with $a_rc: $(cat "$dir/a.err")"
[ $b_rc -eq 0 ] || fail "client b exited with $b_rc: $(cat "$dir/b.err")"
grep -q '^dispycos_remote_scheduler: 6 jobs done, 0 failed, at most 1 workers$' "$dir/a" || fail "a: not 6 jobs on 1 worker"
grep -q '^dispycos_remote_scheduler: 12 jobs done, 0 failed, at most [1-3] workers$' "$dir/b" || fail "b: not 12 jobs"
[ "$(sed -nE 's/^dispycos_remote_scheduler: job [0-9]+ done: [^ ]+ ([0-9]+) slept 300 ms$/\1/p' "$dir/a" | sort -u | wc -l)" = 1 ] ||
  fail "a's jobs ran in more than one process"
a_id=$(sed -nE 's/^dispycos_remote_scheduler: scheduled ([^ ]+) with .*/\1/p' "$dir/a")
b_id=$(sed -nE 's/^dispycos_remote_scheduler: scheduled ([^ ]+) with .*/\1/p' "$dir/b")
[ -n "$a_id" ] && [ -n "$b_id" ] || fail "no computation ids"
# Each job ran in a worker its own computation's node started.
for c in a b; do
  id=$a_id; [ $c = b ] && id=$b_id
  workers=" $(awk -v id="$id" '$1 == "worker" && $2 == "started" && $3 == id {print $5}' "$dir/node" | tr '\n' ' ')"
  for p in $(sed -nE 's/^dispycos_remote_scheduler: job [0-9]+ done: [^ ]+ ([0-9]+) slept .*/\1/p' "$dir/$c"); do
    [[ "$workers" == *" $p "* ]] || fail "$c: a job ran in pid $p, not one of its own workers ($workers)"
  done
done
grep -q "^client joined $a_id$" "$dir/sched" && grep -q "^client joined $b_id$" "$dir/sched" || fail "the scheduler: no joins"
grep -q "^shares $a_id $node_uri 1$" "$dir/sched" || fail "the scheduler: a's share is not 1"
for _ in $(seq 200); do [ "$(grep -c '^client left ' "$dir/sched")" = 2 ] && break; sleep 0.05; done
[ "$(grep -c '^client left ' "$dir/sched")" = 2 ] || fail "the scheduler: not both clients left"
dispycos_smoke_node_closed node "$(grep -c '^worker started ' "$dir/node")"
echo PASS
