#!/usr/bin/env bash
# Checks tools/deploy/k8s offline (there is no cluster here): kustomize
# assembles it (`kubectl kustomize`), every object's fields are the API's
# (k8s_check.py, with python3-kubernetes's model classes), the objects fit
# together, and the DaemonSet's flags start the built picos-node, the
# scheduler Deployment's the built picos-scheduler.
set -euo pipefail
k8s_dir="$(dirname "$(realpath "$1")")"
checker="$(realpath "$2")"
node_bin="$(realpath "$3")"
sched_bin="$(realpath "$4")"
tmp="$(mktemp -d "${TEST_TMPDIR:-/tmp}/k8s.XXXXXX")"
node_pid=""
sched_pid=""
cleanup() {
  if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; fi
  if [ -n "$sched_pid" ]; then kill "$sched_pid" 2>/dev/null || true; wait "$sched_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
for tool in kubectl /usr/bin/python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is missing" >&2; exit 1; }
done
/usr/bin/python3 -c 'import kubernetes, yaml' ||
  { echo "python3-kubernetes and python3-yaml are missing: run tools/setup" >&2; exit 1; }

# The secret is the user's to make (kept out of git); here a test one.
mkdir "$tmp/k8s"
cp "$k8s_dir"/*.yaml "$tmp/k8s/"
echo "the k8s test's cluster secret" > "$tmp/k8s/secret.txt"
kubectl kustomize "$tmp/k8s" > "$tmp/all.yaml"
echo "--- kubectl kustomize: $(grep -c '^kind:' "$tmp/all.yaml") objects"
/usr/bin/python3 "$checker" "$tmp/all.yaml" --print-node-args | tee "$tmp/check.out"

# The checker sees what is wrong.
sed 's/^      containers:/      contianers:/' "$tmp/all.yaml" > "$tmp/bad.yaml"
if /usr/bin/python3 "$checker" "$tmp/bad.yaml" > "$tmp/bad.out"; then
  echo "k8s_check accepted a misspelt field: the check proves nothing" >&2; exit 1
fi
grep -q "has no field 'contianers'" "$tmp/bad.out"
sed 's/clusterIP: None/clusterIP: 10.0.0.1/' "$tmp/all.yaml" > "$tmp/bad.yaml"
if /usr/bin/python3 "$checker" "$tmp/bad.yaml" > /dev/null; then
  echo "k8s_check accepted a Service that is not headless" >&2; exit 1
fi

# The DaemonSet's arguments, as its container would run them.
args="$(sed -n 's/^NODE_ARGS //p' "$tmp/check.out")"
mkdir -p "$tmp/etc" "$tmp/dest"
cp "$tmp/k8s/secret.txt" "$tmp/etc/secret"
args="${args//\/etc\/picos\/secret/$tmp/etc/secret}"
args="${args//\/var\/lib\/picos-node/$tmp/dest}"
echo "picos-node $args"
# shellcheck disable=SC2086
PICOS_REMOTE_LISTEN=tcp://127.0.0.1:0 PICOS_REMOTE_ADVERTISE= "$node_bin" $args > "$tmp/node.out" 2>&1 &
node_pid=$!
for _ in $(seq 600); do
  grep -q '^listening ' "$tmp/node.out" && break
  kill -0 "$node_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q '^listening ' "$tmp/node.out" || { echo "picos-node refused the DaemonSet's flags:" >&2; cat "$tmp/node.out" >&2; exit 1; }
cat "$tmp/node.out"

# The scheduler Deployment's arguments, likewise (its --node_dns name does not
# resolve here: the scheduler logs that and keeps trying, and serves).
args="$(sed -n 's/^SCHEDULER_ARGS //p' "$tmp/check.out")"
[ -n "$args" ] || { echo "no picos-scheduler Deployment" >&2; exit 1; }
args="${args//\/etc\/picos\/secret/$tmp/etc/secret}"
echo "picos-scheduler $args"
# shellcheck disable=SC2086
PICOS_REMOTE_LISTEN=tcp://127.0.0.1:0 PICOS_REMOTE_ADVERTISE= "$sched_bin" $args > "$tmp/sched.out" 2>&1 &
sched_pid=$!
for _ in $(seq 600); do
  grep -q '^listening ' "$tmp/sched.out" && break
  kill -0 "$sched_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q '^listening ' "$tmp/sched.out" ||
  { echo "picos-scheduler refused the Deployment's flags:" >&2; cat "$tmp/sched.out" >&2; exit 1; }
cat "$tmp/sched.out"
echo "PASS"
