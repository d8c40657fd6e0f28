#!/usr/bin/env bash
# Smoke test of dispycos_client4: two real picos-node processes on loopback
# (2 workers each) and the client, which ships a data file with its
# computation and an input file with each of 6 jobs; each job sorts its
# input and sends the result back as a file. Checks that every result file
# arrived in --dest_path and holds its input sorted (the client checks the
# content, this script the files and their checksum lines), that a
# file_received event came for each, that closing removed every file from
# the nodes, and that a client given no node is a usage error. Bounded in
# time; kills only the nodes it started.
#
#   dispycos_client4_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_client4 n1 n2 client client.err

"$client_bin" --jobs=3 >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_client4: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

for n in n1 n2; do dispycos_smoke_node "$n" --cpus=2; done

mkdir -p "$dir/results"
timeout 60 "$client_bin" --nodes="${uri[n1]},${uri[n2]}" --listen=tcp://127.0.0.1:0 --jobs=6 --lines=500 \
  --dest_path="$dir/results" --work_dir="$dir/work" --library="$library" >"$dir/client" 2>"$dir/client.err"; rc=$?
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc"
grep -q '^dispycos_client4: scheduled on 2 nodes, 4 workers$' "$dir/client" || fail "not scheduled on 4 workers"
grep -q '^dispycos_client4: 6 result files received, 6 checked, 0 failed$' "$dir/client" || fail "not every result"
for i in $(seq 0 5); do
  f="$dir/results/input-$i.txt.sorted"
  grep -q "^dispycos_client4: job $i sorted 500 lines: $f ok$" "$dir/client" || fail "job $i not checked"
  [ -f "$f" ] || fail "no $f"
  # The salt, 500 sorted lines, the checksum line.
  [ "$(wc -l <"$f")" = 502 ] || fail "$f: $(wc -l <"$f") lines"
  [ "$(head -1 "$f")" = "dispycos_client4 salt" ] || fail "$f: no salt line"
  sed -n '2,501p' "$f" | LC_ALL=C sort -c || fail "$f: not sorted"
  tail -1 "$f" | grep -Eq '^fnv1a [0-9a-f]{16}$' || fail "$f: no checksum line"
done
[ "$(ls "$dir/results" | wc -l)" = 6 ] || fail "other files in the results: $(ls "$dir/results")"
# Close removed the computation's files (data file, job files) on both
# nodes, and ended their workers.
for n in n1 n2; do dispycos_smoke_node_closed "$n" 2; done
[ ! -e "$dir/work" ] || fail "the client left its input files"
echo PASS
