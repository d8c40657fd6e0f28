#!/usr/bin/env bash
# Smoke test of dispycos_kbd_int (terminate on close, a last value still
# sent): a real picos-node on loopback (2 workers) and the client, whose
# optimiser jobs run on both workers, reporting progress every 300 ms. Once
# each reported, the test sends the client SIGINT (as Ctrl-C would). Checks
# that the client closes with terminate: each job, cancelled, sends its last
# value (one per worker, after its progress, from the same worker process,
# no worse than its progress), then ends kCancelled (as many job_terminated
# events); that the best reported is the minimum of the last values and the
# client exits 0; that the node ends the workers and removes the files.
# Bounded in time; kills only the processes it started.
#
#   dispycos_kbd_int_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_kbd_int n1 client client.err

"$client_bin" >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_kbd_int: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

dispycos_smoke_node n1 --cpus=2

# The client in the background, not under timeout(1): the SIGINT goes to it.
"$client_bin" --nodes="${uri[n1]}" --report_ms=300 --library="$library" >"$dir/client" 2>"$dir/client.err" &
cpid=$!
dispycos_smoke_track "$cpid"
for _ in $(seq 1200); do
  [ "$(grep -E '^dispycos_kbd_int: [^ ]+ progress: ' "$dir/client" | awk '{print $2}' | sort -u | wc -l)" = 2 ] && break
  kill -0 "$cpid" 2>/dev/null || break
  sleep 0.05
done
[ "$(grep -E '^dispycos_kbd_int: [^ ]+ progress: ' "$dir/client" | awk '{print $2}' | sort -u | wc -l)" = 2 ] ||
  fail "no progress from both workers"
kill -INT "$cpid"
for _ in $(seq 1200); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$cpid" 2>/dev/null && fail "the client did not end within 60 s of SIGINT"
wait "$cpid"; rc=$?
dispycos_smoke_untrack "$cpid"
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc"
grep -q '^dispycos_kbd_int: 2 workers optimising' "$dir/client" || fail "not 2 workers"
grep -q '^dispycos_kbd_int: interrupted by SIGINT: closing with terminate$' "$dir/client" || fail "no interrupt"
lasts=$(grep -E '^dispycos_kbd_int: [^ ]+ last value: ' "$dir/client")
[ "$(grep -c . <<<"$lasts")" = 2 ] || fail "not one last value per worker"
[ "$(awk '{print $2}' <<<"$lasts" | sort -u | wc -l)" = 2 ] || fail "a worker sent two last values"
ended=$(grep -E '^dispycos_kbd_int: [^ ]+ job ended: CANCELLED' "$dir/client")
[ "$(grep -c . <<<"$ended")" = 2 ] || fail "not one cancelled end per worker"
for w in $(awk '{print $2}' <<<"$lasts"); do
  # In order: the interrupt, this worker's last value, its end.
  ni=$(grep -nE '^dispycos_kbd_int: interrupted' "$dir/client" | cut -d: -f1)
  nl=$(grep -nE "^dispycos_kbd_int: $w last value: " "$dir/client" | cut -d: -f1)
  ne=$(grep -nE "^dispycos_kbd_int: $w job ended: " "$dir/client" | cut -d: -f1)
  [ "$ni" -lt "$nl" ] && [ "$nl" -lt "$ne" ] || fail "$w: want the interrupt, its last value, its end in that order"
  last=$(grep -E "^dispycos_kbd_int: $w last value: " "$dir/client")
  lf=$(awk '{print $5}' <<<"$last"); lpid=$(awk '{print $NF}' <<<"$last")
  pf=$(grep -E "^dispycos_kbd_int: $w progress: " "$dir/client" | tail -1 | awk '{print $4}')
  ppid=$(grep -E "^dispycos_kbd_int: $w progress: " "$dir/client" | tail -1 | awk '{print $NF}')
  [ "$lpid" = "$ppid" ] || fail "$w: last value from pid $lpid, progress from $ppid"
  awk -v l="$lf" -v p="$pf" 'BEGIN { exit !(l <= p) }' || fail "$w: last value $lf worse than its progress $pf"
done
grep -q "^dispycos_kbd_int: 2 last values received, 2 terminated (2 job_terminated events)$" \
  "$dir/client" || fail "summary: want 2 last values, 2 terminated"
min=$(awk '{print $5}' <<<"$lasts" | sort -g | head -1)
grep -qE "^dispycos_kbd_int: best $min at \([-0-9.]+, [-0-9.]+\) from tcp://" "$dir/client" || fail "best is not $min"
dispycos_smoke_node_closed n1 2
echo PASS
