#!/usr/bin/env bash
# Smoke test of dispycos_live_analytics (a stream of ticks to two remote
# jobs, signals back): a real picos-node on loopback (2 workers) and the
# client, which streams 1000 ticks to a trend detector job and a saver job.
# Checks that the detector's signals came back, each the crossover the
# client computed itself, in order, and at least one (the walk's drift
# changes every 50 ticks); that the saver kept all 1000 ticks in order;
# that a bad pair of windows is a usage error; that the node ends the
# workers and removes the files. Bounded in time; kills only the node it
# started.
#
#   dispycos_live_analytics_smoke_test.sh PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init dispycos_live_analytics n1 client client.err

"$client_bin" --nodes=tcp://127.0.0.1:1 --short_window=30 --long_window=20 >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_live_analytics: --short_window must be less than --long_window" "$dir/usage" ||
  fail "bad windows: status $rc, $(cat "$dir/usage")"

dispycos_smoke_node n1 --cpus=2

timeout 60 "$client_bin" --nodes="${uri[n1]}" --ticks=1000 --library="$library" >"$dir/client" 2>"$dir/client.err"; rc=$?
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc"
line=$(grep -E '^dispycos_live_analytics: 1000 ticks streamed to 2 jobs; [0-9]+ signals, [0-9]+ expected: ok$' "$dir/client")
[ -n "$line" ] || fail "the signals are not the expected ones"
k=$(awk '{print $8}' <<<"$line")
[ "$k" -ge 1 ] || fail "no signal at all"
[ "$(grep -cE '^dispycos_live_analytics: signal at tick [0-9]+: (buy|sell) at [0-9]+$' "$dir/client")" = "$k" ] ||
  fail "not $k signal lines"
# Signals alternate: a buy, then a sell, ...
sides=$(sed -nE 's/^dispycos_live_analytics: signal at tick [0-9]+: (buy|sell) .*/\1/p' "$dir/client" | uniq | wc -l)
[ "$sides" = "$k" ] || fail "two signals of the same side in a row"
grep -qE '^dispycos_live_analytics: save kept 1000 ticks, sum [0-9]+ in pid [0-9]+: ok$' "$dir/client" ||
  fail "the saver did not keep the 1000 ticks"
dispycos_smoke_node_closed n1 2
echo PASS
