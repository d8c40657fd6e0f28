#!/usr/bin/env bash
# Smoke test of dispycos_client10 (workers restarted with clean state): a
# real picos-node on loopback (2 workers) and the client, which closes each
# worker with restart after its job and puts the next job on the fresh one.
# Checks that each of the 6 jobs ran in a process of its own (6 distinct
# pids, each the one the node started at the worker URI the client named)
# that had run no job before (the count the library keeps per process is 1);
# that the node started 2 + 6 worker processes; that with --norestart the
# same library's state survives between jobs (a count above 1), which is
# what the restart clears; that closing ends the workers and removes the
# files; and that a client given no node is a usage error. Bounded in time;
# kills only the node it started.
#
#   dispycos_client10_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_client10 n1 client norestart

"$client_bin" >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_client10: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

dispycos_smoke_node n1 --cpus=2

timeout 60 "$client_bin" --nodes="${uri[n1]}" --jobs=6 --library="$library" >"$dir/client" 2>"$dir/client.err"; rc=$?
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc: $(cat "$dir/client.err")"
grep -q '^dispycos_client10: 6 jobs done, 0 failed, 6 workers restarted$' "$dir/client" || fail "not 6 jobs, 6 restarts"
for _ in $(seq 200); do [ "$(grep -c '^worker closed ' "$dir/n1")" = 8 ] && break; sleep 0.05; done
[ "$(grep -c '^worker started ' "$dir/n1")" = 8 ] || fail "the node did not start 2 + 6 workers"
[ "$(grep -c '^worker closed ' "$dir/n1")" = 8 ] || fail "the node did not close its 8 workers"
declare -A pid_of
while read -r _ _ _ _ p u; do pid_of[$u]=$p; done < <(grep '^worker started ' "$dir/n1")
declare -A seen
result_re='^dispycos_client10: job ([0-9]+) on ([^ ]+) done: ([0-9a-f]{16}) ([0-9]+) ([0-9]+)$'
for i in $(seq 0 5); do
  line=$(grep -E "^dispycos_client10: job $i on [^ ]+ done: " "$dir/client")
  [ "$(grep -c . <<<"$line")" = 1 ] || fail "job $i: not one result"
  [[ "$line" =~ $result_re ]] || fail "job $i: $line"
  w=${BASH_REMATCH[2]}; count=${BASH_REMATCH[4]}; p=${BASH_REMATCH[5]}
  [ "$count" = 1 ] || fail "job $i ran in a process that had run $((count - 1)) jobs before"
  [ "${pid_of[$w]:-}" = "$p" ] || fail "job $i ran in pid $p, not in worker $w (pid ${pid_of[$w]:-none})"
  [ -z "${seen[$p]:-}" ] || fail "job $i ran in pid $p again"
  seen[$p]=1
done
[ -z "$(ls -A "$dir/dest-n1")" ] || fail "the node kept files: $(ls -A "$dir/dest-n1")"
dispycos_smoke_no_worker_left n1

# Without the restart the state stays: 4 jobs on 2 workers, a count of 2.
timeout 60 "$client_bin" --nodes="${uri[n1]}" --jobs=4 --norestart --library="$library" >"$dir/norestart" 2>&1; rc=$?
echo "--- norestart"; cat "$dir/norestart"
[ $rc -eq 0 ] || fail "the --norestart client exited with $rc"
grep -q '^dispycos_client10: 4 jobs done, 0 failed, 0 workers restarted$' "$dir/norestart" || fail "norestart: not 4 jobs"
grep -qE '^dispycos_client10: job [0-9] on [^ ]+ done: [0-9a-f]{16} 2 [0-9]+$' "$dir/norestart" ||
  fail "norestart: no job saw the state of the one before"
dispycos_smoke_node_closed n1 10
echo PASS
