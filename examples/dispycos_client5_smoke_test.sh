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
#   dispycos_client5_smoke_test.sh PICOS_NODE CLIENT LIBRARY
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"
dir=$(mktemp -d)
npid=""
cleanup() {
  [ -n "$npid" ] && kill -9 "$npid" 2>/dev/null
  { wait; } 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in n1 client client.err; do [ -f "$dir/$f" ] && { echo "--- $f"; cat "$dir/$f"; }; done
  exit 1
}
export PICOS_REMOTE_SECRET="dispycos_client5 smoke test secret"

"$client_bin" --nodes=tcp://127.0.0.1:1 --program=rm >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_client5: --program=rm: upper or sort" "$dir/usage" ||
  fail "bad --program: status $rc, $(cat "$dir/usage")"

mkdir -p "$dir/dest"
"$node_bin" --cpus=1 --listen=tcp://127.0.0.1:0 --dest_path="$dir/dest" >"$dir/n1" 2>"$dir/n1.err" &
npid=$!
for _ in $(seq 400); do grep -q '^listening ' "$dir/n1" && break; sleep 0.05; done
uri=$(sed -n 's/^listening //p' "$dir/n1")
[ -n "$uri" ] || fail "the node did not start"

for program in upper sort; do
  timeout 60 "$client_bin" --nodes="$uri" --program=$program --lines=12 --library="$library" \
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
for _ in $(seq 200); do [ "$(grep -c '^worker closed ' "$dir/n1")" = 2 ] && break; sleep 0.05; done
[ "$(grep -c '^worker closed ' "$dir/n1")" = 2 ] || fail "the node did not close its workers (one per run)"
[ -z "$(ls -A "$dir/dest")" ] || fail "the node kept files: $(ls -A "$dir/dest")"
echo PASS
