#!/usr/bin/env bash
# Runs one check script over the files Bazel placed in this test's runfiles
# (the repository's layout, restricted to the packages the test names).
set -euo pipefail
exec /usr/bin/python3 "$1" .
