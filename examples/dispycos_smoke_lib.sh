# Shared by the dispycos examples' smoke tests (sourced, not run): what each
# of them does around its own checks. It starts real picos-node processes on
# loopback with a secret and a folder each, waits (bounded) for each to say
# it listens, kills exactly the processes the test started when the test ends
# (also on failure) and removes its temporary folder, and checks that the
# workers a node started are closed and gone.
#
#   node_bin="$1"; client_bin="$2"; library="$3"; lib="$4"
#   source "$lib"
#   dispycos_smoke_init dispycos_client2 n1 n2 client
#   dispycos_smoke_node n1 --cpus=2; dispycos_smoke_node n2 --cpus=2
#   timeout 60 "$client_bin" --nodes="${uri[n1]},${uri[n2]}" ... >"$dir/client"
#   dispycos_smoke_node_closed n1 2; dispycos_smoke_node_closed n2 2
#
# No `timeout` wraps a node or a client left in the background: killing the
# wrapper would leave its child running. Only pids given to
# dispycos_smoke_track (the nodes are) are killed; a node's workers end with
# it (PR_SET_PDEATHSIG, compute/picos_node.cc).

# dispycos_smoke_init NAME FILE... makes the test's folder `dir`, sets the
# trap that cleans up on exit, exports PICOS_REMOTE_SECRET ("NAME smoke test
# secret") and remembers the FILEs (names under `dir`) that `fail` shows.
dispycos_smoke_init() {
  DISPYCOS_SMOKE_NAME="$1"; shift
  DISPYCOS_SMOKE_SHOW=("$@")
  DISPYCOS_SMOKE_PIDS=()
  declare -gA uri=() DISPYCOS_SMOKE_NODE_PID=()
  dir=$(mktemp -d)
  trap dispycos_smoke_cleanup EXIT
  export PICOS_REMOTE_SECRET="$DISPYCOS_SMOKE_NAME smoke test secret"
}

# The EXIT trap: kills (SIGKILL) every tracked pid, reaps them, removes `dir`.
dispycos_smoke_cleanup() {
  local p
  for p in "${DISPYCOS_SMOKE_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  { wait; } 2>/dev/null
  rm -rf "$dir"
}

# dispycos_smoke_track PID: kill PID at exit if it still runs.
dispycos_smoke_track() { DISPYCOS_SMOKE_PIDS+=("$1"); }

# dispycos_smoke_untrack PID: PID was waited for; its number may be given
# again to a process that is not the test's.
dispycos_smoke_untrack() {
  local p kept=()
  for p in "${DISPYCOS_SMOKE_PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  DISPYCOS_SMOKE_PIDS=("${kept[@]}")
}

# fail MESSAGE prints "FAIL: MESSAGE" and each shown file that exists, and
# exits 1 (the trap cleans up).
fail() {
  echo "FAIL: $*"
  local f
  for f in "${DISPYCOS_SMOKE_SHOW[@]}"; do [ -f "$dir/$f" ] && { echo "--- $f"; cat "$dir/$f"; }; done
  exit 1
}

# dispycos_smoke_node LABEL NODE_FLAG... starts $node_bin with the flags,
# --dest_path="$dir/dest-LABEL" (made here) and, unless the flags name one,
# --listen=tcp://127.0.0.1:0; its stdout goes to "$dir/LABEL", stderr to
# "$dir/LABEL.err". Waits up to 20 s for "listening URI" and sets uri[LABEL];
# fails the test, with the node's stderr, if it never says so.
dispycos_smoke_node() {
  local label="$1"; shift
  local listen=(--listen=tcp://127.0.0.1:0) a
  for a in "$@"; do [[ "$a" == --listen=* ]] && listen=(); done
  mkdir -p "$dir/dest-$label"
  "$node_bin" "$@" "${listen[@]}" --dest_path="$dir/dest-$label" >"$dir/$label" 2>"$dir/$label.err" &
  DISPYCOS_SMOKE_NODE_PID[$label]=$!
  dispycos_smoke_track $!
  for _ in $(seq 400); do grep -q '^listening ' "$dir/$label" && break; sleep 0.05; done
  uri[$label]=$(sed -n 's/^listening //p' "$dir/$label")
  [ -n "${uri[$label]}" ] || fail "node $label did not start: $(cat "$dir/$label.err")"
}

# dispycos_smoke_node_closed LABEL N [MIN]: waits up to 10 s for node LABEL
# to print N "worker closed" lines (at least N with MIN given as "min"), then
# fails unless it did, unless its folder is empty (the computation's files
# removed), or while a worker it started still runs as its child.
dispycos_smoke_node_closed() {
  local label="$1" n="$2" cmp=-eq
  [ "${3:-}" = min ] && cmp=-ge
  for _ in $(seq 200); do [ "$(grep -c '^worker closed ' "$dir/$label")" $cmp "$n" ] && break; sleep 0.05; done
  [ "$(grep -c '^worker closed ' "$dir/$label")" $cmp "$n" ] || fail "node $label did not close its $n workers"
  for _ in $(seq 200); do [ -z "$(ls -A "$dir/dest-$label")" ] && break; sleep 0.05; done
  [ -z "$(ls -A "$dir/dest-$label")" ] || fail "node $label kept files: $(ls -A "$dir/dest-$label")"
  dispycos_smoke_no_worker_left "$label"
}

# dispycos_smoke_no_worker_left LABEL: fails if a worker node LABEL started
# ("worker started <id> <index> <pid> <uri>") still runs as that node's child
# 10 s on. The parent is checked so that a pid the system gave again to
# another process is not taken for a worker.
dispycos_smoke_no_worker_left() {
  local label="$1" node="${DISPYCOS_SMOKE_NODE_PID[$1]}" p left
  for _ in $(seq 200); do
    left=""
    for p in $(awk '/^worker started /{print $5}' "$dir/$label"); do
      # Field 4 of /proc/PID/stat is the parent (after the name in brackets).
      [ "$(sed -E 's/^.*\) [A-Za-z] ([0-9]+) .*/\1/' "/proc/$p/stat" 2>/dev/null)" = "$node" ] && left+=" $p"
    done
    [ -z "$left" ] && return 0
    sleep 0.05
  done
  fail "node $label still runs workers:$left"
}
