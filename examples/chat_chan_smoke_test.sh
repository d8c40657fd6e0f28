#!/usr/bin/env bash
# Smoke test of chat_chan_server and chat_chan_client over tcp:// (secret
# from $PICOS_REMOTE_SECRET), unix:// and tls:// (secret from --secret_file;
# remote_smoke_lib.sh gives the TLS setup): a
# listening client joins first; a second one pipes four lines in, one of
# them shouted. The listener prints the other's lines as the server's
# channel transform rewrote them ("joined :-)", "says: ...", "left :-("),
# and never the shouted one, though the line sent after it arrives.
# Bounded in time; kills only the processes it started.
#
#   chat_chan_smoke_test.sh SERVER_BINARY CLIENT_BINARY MAKE_TEST_CERTS REMOTE_SMOKE_LIB
set -uo pipefail
server_bin="$1"; client_bin="$2"; make_certs="$3"; lib="$4"
dir=$(mktemp -d)
cleanup() {
  for p in ${spid:-} ${lpid:-}; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null; rm -rf "$dir"
}
trap cleanup EXIT
# shellcheck source=examples/remote_smoke_lib.sh
source "$lib"
remote_smoke_transports "$make_certs" "$dir" chat-chan
secret="chat chan smoke test secret"
echo "$secret" >"$dir/secret"

for listen in "${REMOTE_SMOKE_LISTEN[@]}"; do
  if [ "${listen%%:*}" = tcp ]; then
    export PICOS_REMOTE_SECRET="$secret"; secret_flag=()
  else
    unset PICOS_REMOTE_SECRET; secret_flag=(--secret_file="$dir/secret")
  fi
  rm -f "$dir/server"  # a fresh file: the last run's address must not be read
  timeout 60 "$server_bin" --listen="$listen" "${secret_flag[@]}" --clients=2 >"$dir/server" 2>&1 &
  spid=$!
  remote_smoke_server_address "$dir/server" chat_server

  # The listener: no input; stays for the talker's four lines.
  timeout 60 "$client_bin" --peer="$addr" "${secret_flag[@]}" --wait_lines=4 </dev/null >"$dir/listener" 2>&1 &
  lpid=$!
  for _ in $(seq 400); do
    grep -q "^client: joined as" "$dir/listener" && break
    sleep 0.05
  done
  grep -q "^client: joined as 1" "$dir/listener" || { echo "FAIL: listener did not join"; cat "$dir/listener"; exit 1; }

  printf 'hello there\nI AM SHOUTING\nbye now\nquit\nnot sent after quit\n' |
    timeout 30 "$client_bin" --peer="$addr" "${secret_flag[@]}" >"$dir/talker" 2>&1
  trc=$?
  wait "$lpid"; lrc=$?; lpid=""
  wait "$spid"; src=$?; spid=""
  echo "--- server ($listen)"; cat "$dir/server"; echo "--- listener"; cat "$dir/listener"
  echo "--- talker"; cat "$dir/talker"
  [ $trc -eq 0 ] && [ $lrc -eq 0 ] && [ $src -eq 0 ] || { echo "FAIL: exit codes $trc $lrc $src"; exit 1; }
  grep -q "^client: joined as 2" "$dir/talker" || { echo "FAIL: talker id"; exit 1; }
  want=$'  2 joined :-)\n  2 says: hello there\n  2 says: bye now\n  2 left :-('
  got=$(grep '^  ' "$dir/listener")
  [ "$got" = "$want" ] || { echo "FAIL: the listener heard"; echo "$got"; echo "instead of"; echo "$want"; exit 1; }
  grep -q "SHOUTING\|not sent" "$dir/listener" && { echo "FAIL: the transform let a shout through"; exit 1; }
  grep -q "^chat_server: 2 clients came and went" "$dir/server" || { echo "FAIL: server summary"; exit 1; }
done
echo PASS
