#!/usr/bin/env bash
# chat_sock_server against members that misbehave, over loopback. Bounded in
# count and time; leaves no process behind.
#
#   chat_sock_abuse_test.sh slow    SERVER_BINARY CLIENT_BINARY
#   chat_sock_abuse_test.sh escapes SERVER_BINARY CLIENT_BINARY
#
# slow: a member that joins and never reads while another floods the room
#   with 20 MB of lines (far more than socket buffers hold). A listener must
#   still get every line, and the laggard must be disconnected, with the
#   room told why. (A server whose broadcast waits on each member stalls the
#   whole room instead.)
# escapes: a member whose name and line carry terminal escape sequences;
#   the server's output must hold them only escaped, as text.
set -uo pipefail
mode="$1"; server_bin="$2"; client_bin="$3"
dir=$(mktemp -d "${TEST_TMPDIR:-/tmp}/chat.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$dir"/*.out; do echo "--- $f"; head -c 4000 "$f"; echo; done; exit 1; }

start_server() {
  timeout 120 "$server_bin" --listen=tcp://127.0.0.1:0 "$@" >"$dir/server.out" 2>&1 &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 200); do
    grep -q "listening on" "$dir/server.out" && break
    sleep 0.1
  done
  addr=$(sed -n 's/^server: listening on //p' "$dir/server.out")
  [ -n "$addr" ] || fail "server did not start"
  port=${addr##*:}
}

wait_for() {  # wait_for PATTERN FILE: up to 30 s
  for _ in $(seq 300); do
    grep -q -- "$1" "$2" && return 0
    sleep 0.1
  done
  fail "no '$1' in $2"
}

case "$mode" in
  slow)
    start_server --max_clients=3 --quiet --max_queue_kb=1024
    # The laggard: joins, then holds its socket open without reading.
    ( exec 3<>"/dev/tcp/127.0.0.1/$port"; printf 'slow\n' >&3; exec sleep 120 ) &
    pids+=("$!")
    wait_for "slow joined" "$dir/server.out"
    timeout 100 "$client_bin" --server="$addr" --name=watcher --wait_online=3 --wait_lines=20000 \
        --quiet --timeout_s=60 </dev/null >"$dir/watcher.out" 2>&1 &
    wpid=$!
    line=$(head -c 1000 /dev/zero | tr '\0' 'x')
    echo "$line" | timeout 100 "$client_bin" --server="$addr" --name=talker --wait_online=3 \
        --repeat=20000 --timeout_s=60 >"$dir/talker.out" 2>&1 &
    tpid=$!
    wait "$tpid" || fail "the talker failed"
    wait "$wpid" || fail "the listener failed"
    wait "$spid" || fail "the server failed"
    grep -q "^received 20000 lines from others" "$dir/watcher.out" || fail "the listener missed lines"
    grep -Eq '^\*\*\* slow was too slow \([0-9]+ KiB waiting\) and was disconnected' "$dir/watcher.out" ||
        fail "the room was not told"
    grep -Eq '^server: \*\*\* slow was too slow' "$dir/server.out" || fail "the server did not say so"
    grep -q "3 clients came and left" "$dir/server.out" || fail "server summary"
    ;;
  escapes)
    start_server --max_clients=1
    ( exec 3<>"/dev/tcp/127.0.0.1/$port"
      printf '\033[31mevil\n' >&3
      printf 'hi \033]0;pwned\007 there\r\n' >&3
      exec 3>&- ) || fail "could not connect"
    wait "$spid" || fail "the server failed"
    cat "$dir/server.out"
    if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$dir/server.out"; then
      fail "control bytes from a client reached the server's output"
    fi
    grep -qF 'server: *** \x1b[31mevil joined, 1 online' "$dir/server.out" || fail "name not shown escaped"
    grep -qF 'server: \x1b[31mevil: hi \x1b]0;pwned\x07 there' "$dir/server.out" || fail "line not shown escaped"
    ;;
  *) echo "usage: $0 slow|escapes SERVER CLIENT"; exit 2 ;;
esac
echo PASS
