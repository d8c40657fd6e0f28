#!/usr/bin/env bash
# Discovery across real hosts: four network namespaces joined by a bridge in
# a fifth (private addresses 10.99.0.0/24, used only inside them; nothing is
# added to the namespace the test runs in), the discovery example in each.
# Checks, each wait bounded:
#   1. three hosts with one secret discover each other, all pairs connected
#      within 2 s of the last one's start (discovery_all_found_ms; from
#      their exec: discovery_all_found_from_exec_ms);
#   2. a message crosses between every pair (each greets the others), a
#      remote-service call too (each calls the others' "discovery.whoami"),
#      and Location::Anywhere() lookups reach discovered peers (each finds
#      the others' task by a name only that peer registers, and messages it);
#   3. a fourth host with another secret is never admitted, and its packets
#      are refused as "bad mac";
#   4. a flood of 10,000 random, truncated, bit-flipped and replayed packets
#      on the group changes nothing (no peer joins, leaves or is lost) and
#      costs the listening process bounded CPU (flood_cpu_s), and its
#      refusals are counted by cause in a summary line of the log;
#   5. a host whose link is cut (its bridge port down) is reported lost by
#      the others' heartbeats within the liveness time + 500 ms
#      (lost_detected_ms), and joins again when the link comes back
#      (rejoin_ms);
#   6. a host whose process is killed (SIGKILL) is reported
#      lost (killed_reported_ms: its connections end without a goodbye);
#   7. two more processes find each other on an IPv6 link-local group, and
#      end cleanly after saying goodbye;
#   8. a process with only a static --peer, started before that peer,
#      retries until it answers; the peer also finds others by multicast;
#   9. on a host whose only interface is loopback (a namespace with just
#      lo), two processes given no interface choose lo, and find each other.
# Figures are printed as `name: value unit` lines. Namespaces, links and
# processes are removed afterwards, also when the test fails or is
# interrupted; names include this shell's pid. Skips (passes, saying why)
# where namespaces cannot be made.
#
#   discovery_netns_test.sh DISCOVERY_BINARY FLOOD_SCRIPT
set -uo pipefail
bin="$(realpath "$1")"; flood="$(realpath "$2")"

if [ "$(id -u)" != 0 ]; then echo "SKIP: not root: network namespaces cannot be made"; exit 0; fi
command -v ip >/dev/null || { echo "SKIP: no ip command (iproute2)"; exit 0; }

tag="pd$$"                  # unique per run; interface names stay under 16 characters
sw="${tag}sw"               # the namespace of the bridge
dir=$(mktemp -d)
declare -A pid              # host -> pid of its discovery process
made=()                     # namespaces made, for cleanup

cleanup() {
  for h in "${!pid[@]}"; do kill -9 "${pid[$h]}" 2>/dev/null; done
  # Anything else still running in our namespaces was started by this test.
  for ns in "${made[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  done
  { wait; } 2>/dev/null  # (no "Killed" lines from bash)
  for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 1' INT TERM HUP

fail() {
  echo "FAIL: $*"
  for h in h1 h2 h3 h4 h5 h6 h7 h8 h9 h10; do
    [ -f "$dir/$h.out" ] || continue
    echo "--- $h stdout"; cat "$dir/$h.out"; echo "--- $h stderr (last 40 lines)"; tail -40 "$dir/$h.err"
  done
  exit 1
}
now_ms() { date +%s%3N; }
# wait_for LIMIT_MS COMMAND...: polls COMMAND every 10 ms; false after LIMIT_MS.
wait_for() {
  local limit=$1; shift
  local end=$(( $(now_ms) + limit ))
  until "$@"; do
    [ "$(now_ms)" -lt "$end" ] || return 1
    sleep 0.01
  done
}
count() { grep -Ec "$2" "$dir/$1.out" 2>/dev/null || true; }  # HOST REGEX

if ! ip netns add "$sw" 2>"$dir/err"; then
  echo "SKIP: cannot make a network namespace: $(cat "$dir/err")"; exit 0
fi
made+=("$sw")
ip -n "$sw" link add br0 type bridge || fail "no bridge"
# No IGMP snooping: without a querier on this bridge it would stop forwarding the group.
ip -n "$sw" link set br0 type bridge mcast_snooping 0 2>/dev/null
ip -n "$sw" link set br0 up
for i in 1 2 3 4; do
  ns="${tag}h$i"
  ip netns add "$ns" || fail "cannot make namespace $ns"
  made+=("$ns")
  ip -n "$sw" link add "p$i" type veth peer name eth0 netns "$ns" || fail "no veth pair for $ns"
  ip -n "$sw" link set "p$i" master br0
  ip -n "$sw" link set "p$i" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "10.99.0.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  # Multicast goes out of eth0: there is no default route here.
  ip -n "$ns" route add 224.0.0.0/4 dev eth0
done

secret="$dir/secret"; wrong="$dir/wrong"
echo "the discovery netns test's shared secret" >"$secret"
echo "a different secret, of the same length" >"$wrong"
group="239.255.97.5"; port=9706
heartbeat_ms=200; misses=5; liveness_ms=$((heartbeat_ms * misses))

start() {  # HOST SECRET_FILE [NAMESPACE_HOST GROUP:PORT MORE_FLAGS...]
  local h=$1 secret_file=$2 ns=${3:-$1} grp=${4-$group:$port}
  shift $(( $# < 4 ? $# : 4 ))
  ip netns exec "${tag}$ns" "$bin" --node_name="$h" --secret_file="$secret_file" --discovery_iface=eth0 \
    --discovery_group="$grp" --announce_interval=250ms \
    --heartbeat_interval="${heartbeat_ms}ms" --heartbeat_misses="$misses" "$@" \
    >"$dir/$h.out" 2>"$dir/$h.err" &
  pid[$h]=$!
}

# 1. Three hosts find each other.
# Timed from the moment the last of the three has its discovery running (a
# program's start-up is not discovery's, and a loaded machine or a sanitizer
# can stretch it), and, for information, from their exec.
t0=$(now_ms)
for h in h1 h2 h3; do start "$h" "$secret"; done
all_started() { for h in h1 h2 h3; do grep -q '^discovery on ' "$dir/$h.out" || return 1; done; }
wait_for 30000 all_started || fail "the three hosts did not start within 30 s"
t_started=$(now_ms)
all_joined() { for h in h1 h2 h3; do [ "$(count $h '^joined ')" -ge 2 ] || return 1; done; }
wait_for 10000 all_joined || fail "the three hosts did not all join each other within 10 s"
t_found=$(now_ms)
found_ms=$(( t_found - t_started ))
echo "discovery_all_found_ms: $found_ms ms"
echo "discovery_all_found_from_exec_ms: $(( t_found - t0 )) ms"
[ "$found_ms" -le 2000 ] || fail "discovery took $found_ms ms (more than 2000)"
for h in h1 h2 h3; do
  grep -q "^listening on tcp://10\.99\.0\.${h#h}:" "$dir/$h.out" || fail "$h does not listen on its eth0 address"
  grep -q "discovery: announcing .* on group $group:$port (interface eth0" "$dir/$h.err" ||
    fail "$h does not log its group and interface"
done

# 2. A message between every pair.
greeted() {
  for a in h1 h2 h3; do for b in h1 h2 h3; do
    [ "$a" = "$b" ] || grep -q "^message from $b: hello$" "$dir/$a.out" || return 1
  done; done
}
wait_for 10000 greeted || fail "a greeting did not cross between some pair"
echo "messages: 6 of 6 pairs"
# Each line is printed by the caller once the callee's service answered
# with its own name: the call went there and back.
called() {
  for a in h1 h2 h3; do for b in h1 h2 h3; do
    [ "$a" = "$b" ] || grep -q "^service of $b answered: $b greets $a$" "$dir/$a.out" || return 1
  done; done
}
wait_for 10000 called || fail "a remote-service call did not cross between some pair"
echo "service calls: 6 of 6 pairs"
# Printed by the peer b found by a name only b registers ("discovery.b"),
# looked up with Location::Anywhere() on a, which was given no location.
found_anywhere() {
  for a in h1 h2 h3; do for b in h1 h2 h3; do
    [ "$a" = "$b" ] || grep -q "^message from $a: found by Location::Anywhere()$" "$dir/$b.out" || return 1
  done; done
}
wait_for 10000 found_anywhere || fail "a Location::Anywhere() lookup did not reach some discovered peer"
echo "anywhere lookups: 6 of 6 pairs"

# 3. A host with another secret is never admitted.
start h4 "$wrong"
refused_mac() { grep -q "refused a packet .* bad mac" "$dir/h1.err"; }
wait_for 10000 refused_mac || fail "h1 never refused h4's announcements"
sleep 1.5  # six of its announcements, and its dials, if it made any
for h in h1 h2 h3; do
  [ "$(count $h 'h4')" -eq 0 ] || fail "$h admitted h4, which has another secret"
done
[ "$(count h4 '^joined ')" -eq 0 ] || fail "h4, with another secret, joined someone"
kill "${pid[h4]}" 2>/dev/null; wait "${pid[h4]}" 2>/dev/null; unset 'pid[h4]'

# 4. A flood of forged packets changes nothing and costs little.
ticks() { awk '{print $14 + $15}' "/proc/${pid[h1]}/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks)
ip netns exec "${tag}h4" timeout 60 /usr/bin/python3 "$flood" 10.99.0.4 "$group" "$port" 10000 ||
  fail "the flood did not run"
sleep 1  # the last packets are read
after=$(ticks)
awk -v t=$((after - before)) -v hz="$hz" 'BEGIN { printf "flood_cpu_s: %.2f s\n", t / hz }'
[ $((after - before)) -le $((5 * hz)) ] || fail "the flood cost h1 more than 5 s of CPU"
for h in h1 h2 h3; do
  kill -0 "${pid[$h]}" 2>/dev/null || fail "$h died in the flood"
  [ "$(count $h '^(joined|left|lost) ')" -eq 2 ] || fail "the flood changed $h's peers"
done

# 5. h2's link is cut: lost by heartbeats, then joined again when it comes back.
t_cut=$(now_ms)
ip -n "$sw" link set p2 down
lost_h2() { for h in h1 h3; do grep -q "^lost h2 " "$dir/$h.out" || return 1; done; }
wait_for $((liveness_ms + 10000)) lost_h2 || fail "h2 was not reported lost after its link was cut"
lost_ms=$(( $(now_ms) - t_cut ))
echo "lost_detected_ms: $lost_ms ms (liveness ${liveness_ms} ms)"
[ "$lost_ms" -le $((liveness_ms + 1500)) ] || fail "h2 lost after $lost_ms ms (liveness $liveness_ms ms)"
t_up=$(now_ms)
ip -n "$sw" link set p2 up
rejoined() { for h in h1 h3; do [ "$(count $h '^joined h2 ')" -ge 2 ] || return 1; done; }
wait_for 10000 rejoined || fail "h2 did not join again within 10 s of its link coming back"
rejoin_ms=$(( $(now_ms) - t_up ))
echo "rejoin_ms: $rejoin_ms ms"
[ "$rejoin_ms" -le 2000 ] || fail "h2 joined again only after $rejoin_ms ms"
greeted_again() { for h in h1 h3; do [ "$(count $h '^message from h2: hello$')" -ge 2 ] || return 1; done; }
wait_for 10000 greeted_again || fail "h2's greeting did not cross again after the rejoin"
sleep 0.5
for h in h1 h3; do
  [ "$(count $h '^message from h2: hello$')" -eq 2 ] || fail "$h got h2's greeting more than once per join"
done

# The flood's causes are in h1's log, though its per-packet lines are
# rate-limited: a summary counts the refusals by cause every 10 s.
summarized() { grep -Eq "discovery: refused [0-9]+ packets in the last .*not a discovery packet [0-9]+" "$dir/h1.err"; }
wait_for 15000 summarized || fail "h1 logged no summary of the flood's refusals by cause"
echo "refusals summarized: $(grep -Eo 'refused [0-9]+ packets in the last .*not a discovery packet [0-9]+.*' "$dir/h1.err" | head -1)"

# 6. h3's process is killed.
t_kill=$(now_ms)
kill -9 "${pid[h3]}"; { wait "${pid[h3]}"; } 2>/dev/null; unset 'pid[h3]'
gone_h3() { for h in h1 h2; do grep -Eq "^lost h3 " "$dir/$h.out" || return 1; done; }
wait_for $((liveness_ms + 10000)) gone_h3 || fail "h3 was not reported lost after it was killed"
echo "killed_reported_ms: $(( $(now_ms) - t_kill )) ms"

for h in h1 h2; do
  kill -0 "${pid[$h]}" 2>/dev/null || fail "$h ended early"
done

# 7. IPv6: two more processes, in h3's and h4's namespaces, on a link-local
# IPv6 group (their TCP links stay IPv4); each ends after --run_for with a
# goodbye. Skipped where the namespaces have no IPv6.
if ip -n "${tag}h3" -6 addr show dev eth0 scope link | grep -q fe80; then
  for h in h5 h6; do
    ns=h3; [ "$h" = h6 ] && ns=h4
    start "$h" "$secret" "$ns" "[ff02::7069:636f]:$port" --run_for=3s
  done
  v6_joined() { for h in h5 h6; do [ "$(count $h '^joined h[56] ')" -ge 1 ] || return 1; done; }
  wait_for 10000 v6_joined || fail "h5 and h6 did not find each other on an IPv6 group"
  for h in h5 h6; do
    wait "${pid[$h]}" || fail "$h did not end cleanly after --run_for"
    unset "pid[$h]"
    grep -q "discovery: announcing .* on group \[ff02::7069:636f\]:$port (interface eth0" "$dir/$h.err" ||
      fail "$h does not log its IPv6 group"
  done
  grep -Eq "from \[fe80::" "$dir/h5.err" || fail "h5 did not hear h6 over IPv6"
  echo "ipv6: h5 and h6 found each other on [ff02::7069:636f]:$port"
else
  echo "ipv6: skipped, the namespaces have no IPv6 link-local address"
fi

# 8. A static peer started before the peer it names: h7 (no multicast, only
# --peer) starts first and retries with backoff; h8 comes up 1.5 s later at
# that address, and also finds h1 and h2 by multicast: both ways combine.
start h7 "$secret" h4 "" --peer=tcp://10.99.0.3:9801
sleep 1.5
grep -q "static peer tcp://10.99.0.3:9801 did not answer" "$dir/h7.err" || fail "h7 did not try its static peer"
start h8 "$secret" h3 "$group:$port" --listen=tcp://10.99.0.3:9801
static_joined() { grep -q "^joined h8 " "$dir/h7.out" && grep -q "^joined h7 " "$dir/h8.out"; }
wait_for 10000 static_joined || fail "h7 did not join its static peer h8 after h8 started"
both_ways() { for p in h1 h2 h7; do grep -q "^joined $p " "$dir/h8.out" || return 1; done; }
wait_for 10000 both_ways || fail "h8 did not join h1 and h2 (multicast) as well as h7 (static)"
echo "static: h7 joined h8, started 1.5 s after it; h8 also found h1 and h2"

# 9. A loopback-only host: a namespace with only lo, up. Given no
# --discovery_iface, each process must choose lo (no other interface has an
# address), listen on 127.0.0.1 and still find the other.
lo_ns="${tag}lo"
ip netns add "$lo_ns" || fail "cannot make namespace $lo_ns"
made+=("$lo_ns")
ip -n "$lo_ns" link set lo up
for h in h9 h10; do
  ip netns exec "$lo_ns" "$bin" --node_name="$h" --secret_file="$secret" --discovery_group="$group:$port" \
    --announce_interval=250ms --run_for=3s >"$dir/$h.out" 2>"$dir/$h.err" &
  pid[$h]=$!
done
for h in h9 h10; do
  wait "${pid[$h]}" || fail "$h (loopback-only host) did not end cleanly after --run_for"
  unset "pid[$h]"
  grep -q "discovery: announcing tcp://127\.0\.0\.1:[0-9]* on group $group:$port (interface lo" "$dir/$h.err" ||
    fail "$h did not choose lo on a loopback-only host"
done
grep -q "^joined h10 tcp://127\.0\.0\.1:" "$dir/h9.out" && grep -q "^joined h9 tcp://127\.0\.0\.1:" "$dir/h10.out" ||
  fail "h9 and h10 did not find each other on a loopback-only host"
echo "loopback-only: h9 and h10 chose lo and found each other"
echo "--- h1 stdout"; cat "$dir/h1.out"
echo PASS
