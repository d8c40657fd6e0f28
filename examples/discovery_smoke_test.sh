#!/usr/bin/env bash
# Smoke test of the discovery example: two processes on this host find each
# other on loopback multicast (a group port of their own per run), connect,
# greet each other, find each other's task by a name only the other
# registers with Location::Anywhere(), call each other's remote service,
# and say goodbye at the end of --run_for. Bounded in
# time; kills only the processes it started.
#
#   discovery_smoke_test.sh DISCOVERY_BINARY
set -uo pipefail
bin="$1"
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
export PICOS_REMOTE_SECRET="discovery smoke test secret"
port=$((20000 + ($$ % 20000)))
# Names of this run only: another run at the same time on the same port
# would be a peer, but not these.
for n in one two; do
  timeout 60 "$bin" --node_name="$n-$$" --discovery_iface=lo --discovery_group="239.255.97.5:$port" \
    --announce_interval=200ms --run_for=3s >"$dir/$n" 2>"$dir/$n.log" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
pids=()
for n in one two; do echo "--- $n"; cat "$dir/$n"; echo "--- $n (log)"; cat "$dir/$n.log"; done
[ $rc -eq 0 ] || { echo "FAIL: exit code $rc"; exit 1; }
check() {  # FILE PATTERN
  grep -Eq "$2" "$dir/$1" || { echo "FAIL: $1 lacks /$2/"; exit 1; }
}
check one '^listening on tcp://127\.0\.0\.1:[0-9]+$'
check one "^discovery on mcast://239\.255\.97\.5:$port\?.*iface=lo"
check one "^joined two-$$ tcp://127\\.0\\.0\\.1:[0-9]+\$"
check two "^joined one-$$ tcp://127\\.0\\.0\\.1:[0-9]+\$"
check one "^message from two-$$: hello\$"
check two "^message from one-$$: hello\$"
check one "^message from two-$$: found by Location::Anywhere\\(\\)\$"
check two "^message from one-$$: found by Location::Anywhere\\(\\)\$"
check one "^service of two-$$ answered: two-$$ greets one-$$\$"
check two "^service of one-$$ answered: one-$$ greets two-$$\$"
check one '^peers: [01], announcements accepted: [1-9][0-9]*, refused: 0$'
grep -q "discovery: found two-$$ at tcp://127.0.0.1" "$dir/one.log" || { echo "FAIL: no info line for the peer found"; exit 1; }
echo PASS
