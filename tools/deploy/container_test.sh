#!/usr/bin/env bash
# Checks tools/deploy/container/Dockerfile without a container runtime
# (dockerfile_check.py says what that covers), and that the check finds a
# wrong base image, an unknown package and a missing runtime library.
set -euo pipefail
dockerfile="$(realpath "$1")"
checker="$(realpath "$2")"
shift 2
binaries=()
for b in "$@"; do binaries+=("$(realpath "$b")"); done
tmp="$(mktemp -d "${TEST_TMPDIR:-/tmp}/container.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 "$checker" "$dockerfile" "${binaries[@]}"

sed 's/^FROM debian:12-slim/FROM ubuntu:22.04/; s/ libuv1 / /; s/libfmt9/libfmt9 libno-such-package/' \
  "$dockerfile" > "$tmp/Dockerfile"
if /usr/bin/python3 "$checker" "$tmp/Dockerfile" "${binaries[@]}" > "$tmp/bad.out"; then
  echo "dockerfile_check accepted a broken Dockerfile: the check proves nothing" >&2; exit 1
fi
for want in "FROM ubuntu:22.04: not Debian 12" "libno-such-package: not a Debian package" \
            "the runtime stage lacks libuv1"; do
  grep -q "$want" "$tmp/bad.out" || { echo "not reported: $want" >&2; cat "$tmp/bad.out" >&2; exit 1; }
done
echo "PASS"
