#!/usr/bin/env bash
# Smoke test of dispycos_client5 (a job driving an external program through
# pipes): a real picos-node on loopback (1 worker) and the client, run twice:
# with `sed -u` uppercasing each line as it comes, and with `sort`, each fed
# 12 lines as messages. Checks that the program's output came back as
# messages, line for line what the program prints (each line uppercased, in
# order; the lines sorted), and that it exited 0; that a bad --program is a
# usage error; that the node ends the workers and removes the files.
# Bounded in time; kills only the node it started.
#
#   dispycos_client5_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_client5 n1 client client.err

"$client_bin" --nodes=tcp://127.0.0.1:1 --program=rm >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_client5: --program=rm: upper or sort" "$dir/usage" ||
  fail "bad --program: status $rc, $(cat "$dir/usage")"

dispycos_smoke_node n1 --cpus=1

for program in upper sort; do
  timeout 60 "$client_bin" --nodes="${uri[n1]}" --program=$program --lines=12 --library="$library" \
    >"$dir/client" 2>"$dir/client.err"; rc=$?
  echo "--- client ($program)"; cat "$dir/client"
  [ $rc -eq 0 ] || fail "$program: the client exited with $rc"
  sed -n 's/^dispycos_client5: sent: //p' "$dir/client" >"$dir/in"
  sed -n 's/^dispycos_client5: got: //p' "$dir/client" >"$dir/out"
  [ "$(wc -l <"$dir/in")" = 12 ] || fail "$program: not 12 lines sent"
  if [ $program = upper ]; then tr a-z A-Z <"$dir/in" >"$dir/want"; else LC_ALL=C sort "$dir/in" >"$dir/want"; fi
  cmp -s "$dir/want" "$dir/out" || fail "$program: the output is not the program's: $(diff "$dir/want" "$dir/out")"
  grep -q "^dispycos_client5: $program ended (exit 0): 12 lines in, 12 out: ok$" "$dir/client" ||
    fail "$program: no clean end"
done
dispycos_smoke_node_closed n1 2
echo PASS
