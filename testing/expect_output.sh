#!/usr/bin/env bash
# Smoke test of a program: runs it (bounded by a timeout) and checks that its
# output matches every expected extended regular expression.
#
#   expect_output.sh [--stdin FILE] [--timeout SECS] [--status N] BINARY [ARGS...] -- REGEX...
#
# --status N: the exit status expected (default 0), to test refusals.
set -uo pipefail
stdin=/dev/null
limit=60
want_status=0
while [ $# -gt 0 ]; do
  case "$1" in
    --stdin) stdin="$2"; shift 2 ;;
    --timeout) limit="$2"; shift 2 ;;
    --status) want_status="$2"; shift 2 ;;
    *) break ;;
  esac
done
binary="$1"; shift
args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
[ $# -gt 0 ] && shift
out=$(timeout --kill-after=5 "$limit" "$binary" "${args[@]}" <"$stdin" 2>&1)
rc=$?
echo "$out"
if [ $rc -ne "$want_status" ]; then
  echo "FAIL: $binary exited with status $rc, not $want_status" >&2
  exit 1
fi
for pattern in "$@"; do
  if ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "FAIL: output of $binary does not match: $pattern" >&2
    exit 1
  fi
done
echo "PASS"
