#!/usr/bin/env bash
# The check finds every miscompiled shape in its test file, and none in picos.
set -euo pipefail
check="$1"; shift
sample="$1"; shift
out=$(/usr/bin/python3 "$check" "$sample" 2>&1) && { echo "FAIL: the sample passed"; exit 1; }
echo "$out"
n=$(echo "$out" | grep -c "co_await inside" || true)
[ "$n" -eq 5 ] || { echo "FAIL: found $n in the sample, expected 5"; exit 1; }
/usr/bin/python3 "$check" "$@"
