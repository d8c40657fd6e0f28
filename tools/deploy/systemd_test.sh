#!/usr/bin/env bash
# Checks a unit of tools/deploy/systemd (picos-node.service,
# picos-scheduler.service): `systemd-analyze verify` accepts it with nothing
# to say once its ExecStart names the built binary (verify wants that file to
# exist), and its ExecStart line, run as systemd would run it (%d: the
# credentials folder, $PICOS_NODE_ARGS or $PICOS_SCHEDULER_ARGS from the
# unit), starts a daemon that listens.
#
#   systemd_test.sh UNIT BINARY     (the unit is named after the binary)
set -euo pipefail
unit="$1"
node_bin="$(realpath "$2")"
prog="$(basename "$unit" .service)"              # picos-node
args_var="$(echo "${prog^^}" | tr - _)_ARGS"      # PICOS_NODE_ARGS
tmp="$(mktemp -d "${TEST_TMPDIR:-/tmp}/systemd.XXXXXX")"
node_pid=""
cleanup() {
  if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze is missing (Debian package systemd)" >&2
  exit 1
fi

sed "s|/usr/local/bin/$prog|$node_bin|" "$unit" > "$tmp/$prog.service"
out="$(systemd-analyze verify --man=no "$tmp/$prog.service" 2>&1)" || {
  echo "systemd-analyze verify failed:" >&2; echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "systemd-analyze verify has something to say:" >&2; echo "$out" >&2; exit 1
fi
echo "systemd-analyze verify: clean"

# The check sees what is wrong: an unknown key is reported.
cp "$tmp/$prog.service" "$tmp/bad.service"
sed -i 's/^Restart=on-failure/Restart=on-failure\nRestartt=always/' "$tmp/bad.service"
bad="$(systemd-analyze verify --man=no "$tmp/bad.service" 2>&1 || true)"
case "$bad" in
  *"Unknown key"*) ;;
  *) echo "systemd-analyze did not report an unknown key: the check proves nothing" >&2; exit 1 ;;
esac

# ExecStart as systemd runs it.
exec_line="$(sed -n 's/^ExecStart=//p' "$tmp/$prog.service")"
node_args="$(sed -n "s/^Environment=$args_var=//p" "$tmp/$prog.service")"
mkdir -p "$tmp/credentials" "$tmp/state"
echo "the unit test's cluster secret" > "$tmp/credentials/secret"
cmd="${exec_line//%d/$tmp/credentials}"
cmd="${cmd//\/var\/lib\/picos-node/$tmp/state}"
cmd="${cmd//\$$args_var/$node_args}"
echo "ExecStart: $cmd"
# The unit's listen address is 0.0.0.0:9706 (9705); here any free loopback port.
# shellcheck disable=SC2086
PICOS_REMOTE_LISTEN=tcp://127.0.0.1:0 $cmd > "$tmp/node.out" 2>&1 &
node_pid=$!
for _ in $(seq 600); do
  grep -q '^listening tcp://127.0.0.1:' "$tmp/node.out" && break
  kill -0 "$node_pid" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q '^listening tcp://127.0.0.1:' "$tmp/node.out"; then
  echo "$prog did not start from the unit's ExecStart:" >&2
  cat "$tmp/node.out" >&2
  exit 1
fi
cat "$tmp/node.out"
kill -TERM "$node_pid"
wait "$node_pid" 2>/dev/null || true
node_pid=""
echo "PASS"
