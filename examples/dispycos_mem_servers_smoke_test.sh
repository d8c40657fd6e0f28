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
#   dispycos_mem_servers_smoke_test.sh PICOS_NODE CLIENT LIBRARY
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
export PICOS_REMOTE_SECRET="dispycos_mem_servers smoke test secret"

"$client_bin" >"$dir/usage" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "^dispycos_mem_servers: --nodes" "$dir/usage" || fail "no --nodes: status $rc, $(cat "$dir/usage")"

mkdir -p "$dir/dest"
"$node_bin" --cpus=2 --listen=tcp://127.0.0.1:0 --dest_path="$dir/dest" >"$dir/n1" 2>"$dir/n1.err" &
npid=$!
for _ in $(seq 400); do grep -q '^listening ' "$dir/n1" && break; sleep 0.05; done
uri=$(sed -n 's/^listening //p' "$dir/n1")
[ -n "$uri" ] || fail "the node did not start"

timeout 60 "$client_bin" --nodes="$uri" --requests=5 --block_bytes=262144 --library="$library" \
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
for _ in $(seq 200); do [ "$(grep -c '^worker closed ' "$dir/n1")" -ge 4 ] && break; sleep 0.05; done
[ "$(grep -c '^worker closed ' "$dir/n1")" -ge 4 ] || fail "the node did not close 4 workers (2 restarted)"
[ -z "$(ls -A "$dir/dest")" ] || fail "the node kept files: $(ls -A "$dir/dest")"
echo PASS
