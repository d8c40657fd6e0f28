#!/usr/bin/env bash
# Smoke test of dispycos_client9_node and dispycos_client9_server (setup
# with per-node or per-worker data loaded into memory, enabled one by one):
# two real picos-node processes on loopback (2 workers and 1) and the
# client. Checks that each node (node mode) or each of the 3 workers
# (server mode) was enabled with data of its own; that all 3 workers were
# initialized only then; that every lookup was answered right from the
# table the setup loaded (its value, "node" or "worker" saying which table,
# and "no key" for a key of another node's or worker's data: the data is
# kept apart); that closing ends the workers and removes the files; and
# that a client given no node is a usage error. Bounded in time; kills only
# the nodes it started.
#
#   dispycos_client9_smoke_test.sh node|server PICOS_NODE CLIENT LIBRARY SMOKE_LIB
set -uo pipefail
mode="$1"; node_bin="$2"; client_bin="$3"; library="$4"; lib="$5"
name="dispycos_client9_$mode"
# shellcheck source=examples/dispycos_smoke_lib.sh
source "$lib"
dispycos_smoke_init "$name" n0 n1 client client.err

"$client_bin" >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^$name: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

for i in 0 1; do dispycos_smoke_node "n$i" --cpus=$((2 - i)); done

timeout 60 "$client_bin" --nodes="${uri[n0]},${uri[n1]}" --keys=4 --library="$library" \
  >"$dir/client" 2>"$dir/client.err"; rc=$?
echo "--- client"; cat "$dir/client"
[ $rc -eq 0 ] || fail "the client exited with $rc: $(cat "$dir/client.err")"
grep -q "^$name: 15 answers right, 0 wrong, 3 workers on 2 nodes\$" "$dir/client" ||
  fail "not 15 right answers (3 workers, 4 keys and one foreign key each)"
if [ "$mode" = node ]; then what=node; enabled=2; else what=worker; enabled=3; fi
[ "$(grep -c "^$name: enabled $what [^ ]* with 4 keys\$" "$dir/client")" = $enabled ] || fail "not $enabled ${what}s enabled"
[ "$(grep -c "^$name: worker [^ ]* initialized\$" "$dir/client")" = 3 ] || fail "not 3 workers initialized"
# Initialized only after every enable (all were discovered at Schedule).
first_init=$(grep -n "^$name: worker [^ ]* initialized\$" "$dir/client" | head -1 | cut -d: -f1)
first_enable=$(grep -n "^$name: enabled " "$dir/client" | head -1 | cut -d: -f1)
[ "$first_enable" -lt "$first_init" ] || fail "a worker initialized before its $what was enabled"
# 4 answers per worker from the table of its own $what, and "no key" for the foreign one.
[ "$(grep -cE "^$name: ${what}[0-9]-key[0-3] on [^ ]+: [0-9]+ $what right\$" "$dir/client")" = 12 ] ||
  fail "not 12 answers from the $what tables"
[ "$(grep -cE "^$name: [a-z]+[0-9]-key0 on [^ ]+: no key [a-z]+[0-9]-key0 right\$" "$dir/client")" = 3 ] ||
  fail "not 3 foreign keys answered 'no key'"
# Each lookup answered once (the values are random: right means read from
# the table loaded into that worker).
while read -r key worker; do
  [ "$(grep -c "^$name: $key on $worker:" "$dir/client")" = 1 ] || fail "$key on $worker not answered once"
done < <(sed -nE "s/^$name: ([a-z]+[0-9]-key[0-3]) on ([^ ]+): [0-9]+ $what right\$/\1 \2/p" "$dir/client")
for i in 0 1; do
  [ "$(grep -c '^worker started ' "$dir/n$i")" = $((2 - i)) ] || fail "node $i did not start $((2 - i)) workers"
  dispycos_smoke_node_closed "n$i" $((2 - i))
done
echo PASS
