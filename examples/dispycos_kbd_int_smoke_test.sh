#!/usr/bin/env bash
# Smoke test of dispycos_kbd_int (terminate on close): a real picos-node on
# loopback (2 workers) and the client, whose optimisers run rounds of 2.5 s
# on both workers. Once each worker finished a round, the test sends the
# client SIGINT (as Ctrl-C would). Checks that the client closes with
# terminate: the rounds in flight end kCancelled (and as many job_terminated
# events arrive), each optimiser stops once; that it still reports the
# best of the finished rounds (the minimum the rounds printed) and exits 0;
# that the node ends the workers and removes the files. Bounded in time;
# kills only the processes it started.
#
#   dispycos_kbd_int_smoke_test.sh PICOS_NODE CLIENT LIBRARY
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"
dir=$(mktemp -d)
npid=""; cpid=""
cleanup() {
  for p in $cpid $npid; do kill -9 "$p" 2>/dev/null; done
  { wait; } 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in n1 client client.err; do [ -f "$dir/$f" ] && { echo "--- $f"; cat "$dir/$f"; }; done
  exit 1
}
export PICOS_REMOTE_SECRET="dispycos_kbd_int smoke test secret"

"$client_bin" >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_kbd_int: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

mkdir -p "$dir/dest"
"$node_bin" --cpus=2 --listen=tcp://127.0.0.1:0 --dest_path="$dir/dest" >"$dir/n1" 2>"$dir/n1.err" &
npid=$!
for _ in $(seq 400); do grep -q '^listening ' "$dir/n1" && break; sleep 0.05; done
uri=$(sed -n 's/^listening //p' "$dir/n1")
[ -n "$uri" ] || fail "the node did not start"

# The client in the background, not under timeout(1): the SIGINT goes to it.
"$client_bin" --nodes="$uri" --round_ms=2500 --library="$library" >"$dir/client" 2>"$dir/client.err" &
cpid=$!
for _ in $(seq 1200); do
  [ "$(grep -cE '^dispycos_kbd_int: [^ ]+ round 0: ' "$dir/client")" = 2 ] && break
  kill -0 "$cpid" 2>/dev/null || break
  sleep 0.05
done
[ "$(grep -cE '^dispycos_kbd_int: [^ ]+ round 0: ' "$dir/client")" = 2 ] || fail "no first round on both workers"
kill -INT "$cpid"
for _ in $(seq 1200); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$cpid" 2>/dev/null && fail "the client did not end within 60 s of SIGINT"
wait "$cpid"; rc=$?; cpid=""
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc"
grep -q '^dispycos_kbd_int: 2 workers optimising' "$dir/client" || fail "not 2 workers"
grep -q '^dispycos_kbd_int: interrupted by SIGINT: closing with terminate$' "$dir/client" || fail "no interrupt"
finished=$(grep -cE '^dispycos_kbd_int: [^ ]+ round [0-9]+: ' "$dir/client")
cancelled=$(grep -cE '^dispycos_kbd_int: [^ ]+ round [0-9]+ ended: CANCELLED' "$dir/client")
ended=$(grep -E '^dispycos_kbd_int: [^ ]+ round [0-9]+ ended: ' "$dir/client")
[ "$(grep -c . <<<"$ended")" = 2 ] || fail "not one end per optimiser"
[ "$(awk '{print $2}' <<<"$ended" | sort -u | wc -l)" = 2 ] || fail "an optimiser ended twice"
[ "$cancelled" -ge 1 ] || fail "no round was terminated"
grep -q "^dispycos_kbd_int: $finished rounds finished, $cancelled terminated ($cancelled job_terminated events)$" \
  "$dir/client" || fail "summary: want $finished finished, $cancelled terminated"
# The best reported is the least the finished rounds found.
min=$(grep -E '^dispycos_kbd_int: [^ ]+ round [0-9]+: ' "$dir/client" | awk '{print $5}' | sort -g | head -1)
grep -qE "^dispycos_kbd_int: best $min at \([-0-9.]+, [-0-9.]+\) from tcp://" "$dir/client" || fail "best is not $min"
for _ in $(seq 200); do [ "$(grep -c '^worker closed ' "$dir/n1")" = 2 ] && break; sleep 0.05; done
[ "$(grep -c '^worker closed ' "$dir/n1")" = 2 ] || fail "the node did not close its 2 workers"
[ -z "$(ls -A "$dir/dest")" ] || fail "the node kept files: $(ls -A "$dir/dest")"
echo PASS
