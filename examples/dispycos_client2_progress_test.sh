#!/usr/bin/env bash
# dispycos_client2 with a progress bar (compute/progress.h): one real
# picos-node (2 workers), twelve jobs. --progress_always draws on stderr
# although it is a file here: one line redrawn in place ("\r" before each
# drawing), ending "12/12  100%" and a newline, and no per-job lines on
# stdout; --progress alone draws nothing when stderr is not a terminal.
# Bounded in time; kills only the node it started.
set -euo pipefail
node_bin="$1"; client_bin="$2"; library="$3"
dir="$(mktemp -d "${TEST_TMPDIR:-/tmp}/progress.XXXXXX")"
node_pid=""
cleanup() {
  if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
export PICOS_REMOTE_SECRET="dispycos_client2 progress test secret"
mkdir "$dir/dest"
"$node_bin" --cpus=2 --listen=tcp://127.0.0.1:0 --dest_path="$dir/dest" --daemon > "$dir/node" 2> "$dir/node.err" &
node_pid=$!
for _ in $(seq 600); do grep -q '^listening ' "$dir/node" && break; sleep 0.1; done
uri="$(sed -n 's/^listening //p' "$dir/node")"
[ -n "$uri" ] || { echo "the node did not start" >&2; cat "$dir/node.err" >&2; exit 1; }

timeout 120 "$client_bin" --nodes="$uri" --jobs=12 --min_ms=50 --max_ms=150 --library="$library" \
  --progress_always > "$dir/out" 2> "$dir/err"
echo "--- stdout"; cat "$dir/out"
echo "--- stderr (the bar, each drawing on its own line here)"; tr '\r' '\n' < "$dir/err" | sed 's/\x1b\[K//g'
grep -q '^dispycos_client2: 12 jobs done, 0 failed$' "$dir/out"
if grep -q ' done: ' "$dir/out"; then echo "per-job lines beside the bar" >&2; exit 1; fi
bar="$(grep -v '^[0-9-]* [0-9:.]* \(info\|warning\)' "$dir/err" | tr -d '\n')"
[ "$(printf '%s' "$bar" | tr -cd '\r' | wc -c)" -ge 1 ] || { echo "no redraw" >&2; exit 1; }
last="$(printf '%s' "$bar" | tr '\r' '\n' | tail -1 | sed 's/\x1b\[K//g')"
echo "last drawing: $last"
case "$last" in
  "dispycos_client2 [#"*"#]  12/12  100%  "*" jobs/s  in "*) ;;
  *) echo "the last drawing is not 12/12 done" >&2; exit 1 ;;
esac
# Redrawn at most four times a second (and once per job at most): fewer
# drawings than jobs plus one.
n="$(printf '%s' "$bar" | tr -cd '\r' | wc -c)"
[ "$n" -le 13 ] || { echo "$n drawings for 12 jobs" >&2; exit 1; }

# --progress alone: stderr is not a terminal, so no bar and the job lines.
timeout 120 "$client_bin" --nodes="$uri" --jobs=3 --min_ms=10 --max_ms=20 --library="$library" \
  --progress > "$dir/out2" 2> "$dir/err2"
if grep -q $'\r' "$dir/err2"; then echo "a bar on a file without --progress_always" >&2; exit 1; fi
[ "$(grep -c ' done: ' "$dir/out2")" = 3 ]
echo "PASS"
