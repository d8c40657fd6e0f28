#!/bin/sh
# What rps_node_smoke_test sends and runs (pycos node_update_script.py):
# sleeps $1 seconds, says so on stdout, warns on stderr, exits 3.
sleep "${1:-0}"
echo "node updated after ${1:-0} s"
echo "node_update: a warning" >&2
exit 3
