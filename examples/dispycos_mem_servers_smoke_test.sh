#!/usr/bin/env bash
# Smoke test of dispycos_mem_servers (per-worker in-memory data answering
# requests): a real picos-node on loopback (2 workers) and the client, which
# loads a 256 KiB block into each worker process, sends its server job 5
# requests as messages and checks each answer's checksum. Checks that every
# answer is right and comes from the process the block was loaded into;
# that each worker, closed with restart, comes back as a new process with no
# data; that the node ends the workers and removes the files; and that a
# client given no node is a usage error. Bounded in time; kills only the
# node it started.
#
#   dispycos_mem_servers_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_mem_servers n1 client client.err

"$client_bin" >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_mem_servers: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

dispycos_smoke_node n1 --cpus=2

timeout 60 "$client_bin" --nodes="${uri[n1]}" --requests=5 --block_bytes=262144 --library="$library" \
  >"$dir/client" 2>"$dir/client.err"; rc=$?
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc"
grep -q '^dispycos_mem_servers: 10 answers, 0 wrong, 2 restarted empty$' "$dir/client" || fail "summary"
loaded=$(grep -E '^dispycos_mem_servers: [^ ]+ loaded 262144 bytes in pid [0-9]+$' "$dir/client")
[ "$(grep -c . <<<"$loaded")" = 2 ] || fail "not 2 workers loaded"
while read -r _ w _ _ _ _ _ pid; do
  [ "$(grep -cE "^dispycos_mem_servers: $w request [0-9]+ [0-9]+: [0-9a-f]{16} from pid $pid: ok$" "$dir/client")" = 5 ] ||
    fail "$w: not 5 good answers from pid $pid"
  fresh=$(sed -nE "s|^dispycos_mem_servers: $w restarted as [^ ]+: no data \(pid ([0-9]+)\)$|\1|p" "$dir/client")
  [ -n "$fresh" ] && [ "$fresh" != "$pid" ] || fail "$w: not restarted as a new process without data"
done <<<"$loaded"
grep -q WRONG "$dir/client" && fail "a wrong answer"
dispycos_smoke_node_closed n1 4 min
echo PASS
