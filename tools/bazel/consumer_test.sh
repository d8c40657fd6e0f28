#!/usr/bin/env bash
# Another Bazel workspace depends on picos with exactly what README.md shows
# (the files in tools/bazel/consumer/, which the README quotes), builds a
# program against it in two ways (picos_cc_binary, and the native cc_binary
# with picos.bazelrc imported) and runs both. The nested Bazel has an output
# root of its own under $TEST_TMPDIR, runs in batch mode (no server is left
# behind) and reads no ~/.bazelrc.
#
#   consumer_test.sh WORKSPACE_FILE_OF_PICOS CONSUMER_DIR
set -uo pipefail
# Bazel's runfiles are symlinks into the source tree: the real picos is
# where picos's WORKSPACE points.
picos_root=$(dirname "$(readlink -f "$1")")
consumer_dir="$2"
[ -f "$picos_root/tools/bazel/deps.bzl" ] || { echo "FAIL: no picos at $picos_root"; exit 1; }

tmp="${TEST_TMPDIR:-$(mktemp -d)}/consumer"
root="$tmp/bazel_root"
ws="$tmp/hello_picos"
cleanup() {
  chmod -R u+w "$root" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$ws/third_party" "$root"
ln -s "$picos_root" "$ws/third_party/picos"
cp "$consumer_dir/consumer.WORKSPACE" "$ws/WORKSPACE"
cp "$consumer_dir/consumer.BUILD" "$ws/BUILD"
cp "$consumer_dir/consumer.bazelrc" "$ws/.bazelrc"
cp "$consumer_dir/hello_picos.cc" "$ws/hello_picos.cc"

cd "$ws"
# HOME is the test's: Bazel's own files stay in the temporary directory.
export HOME="$tmp"
bazel --batch --nohome_rc --output_user_root="$root" build \
    --jobs=2 --spawn_strategy=processwrapper-sandbox --color=no --curses=no \
    //:hello_picos //:hello_picos_native 2>&1 | tail -30
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "FAIL: the project did not build against picos"; exit 1; }
for program in hello_picos hello_picos_native; do
  out=$(timeout 60 "bazel-bin/$program" 2>&1)
  rc=$?
  echo "$program: $out"
  [ $rc -eq 0 ] || { echo "FAIL: $program exited with status $rc"; exit 1; }
  grep -q 'hello from picos: 1000000 sub-task awaits, reply {"twice": 2000000}' <<<"$out" ||
      { echo "FAIL: $program did not say hello"; exit 1; }
done
echo PASS
