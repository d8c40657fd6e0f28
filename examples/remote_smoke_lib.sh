# Shared by the remote examples' smoke tests (sourced, not run): the
# transports each of them runs its server and client over, so that one place
# says how a tls:// run gets its certificates.
#
#   source "$lib"; remote_smoke_transports "$make_test_certs" "$dir" rps-node
#   for listen in "${REMOTE_SMOKE_LISTEN[@]}"; do ... --listen="$listen" ...
#
# remote_smoke_transports MAKE_TEST_CERTS DIR NAME makes a fresh PKI under
# DIR/pki with tools/make_test_certs, exports PICOS_TLS_CA, PICOS_TLS_CERT and
# PICOS_TLS_KEY (what a tls:// address leaves out: the server's certificate and
# key, the CA the client checks the server with; both processes get all
# three), and sets REMOTE_SMOKE_LISTEN to a TCP, a Unix (abstract, named after
# NAME and this shell's pid) and a TLS address on 127.0.0.1, port 0. The
# server prints the address it got; the client dials that.
remote_smoke_transports() {
  local make_certs="$1" dir="$2" name="$3"
  mkdir -p "$dir/pki"
  "$make_certs" "$dir/pki" >/dev/null || { echo "FAIL: could not make certificates"; exit 1; }
  export PICOS_TLS_CA="$dir/pki/ca.pem" PICOS_TLS_CERT="$dir/pki/server.pem" PICOS_TLS_KEY="$dir/pki/server.key"
  REMOTE_SMOKE_LISTEN=(tcp://127.0.0.1:0 "unix://@picos-$name-smoke-$$" tls://127.0.0.1:0)
}

# remote_smoke_server_address FILE PREFIX waits (up to 10 s) for the server
# whose output goes to FILE to print "PREFIX: listening on ADDRESS", and sets
# `addr` to ADDRESS; fails the test, showing FILE, if it never does. Remove
# FILE before starting the server: the shell truncates it in the child, which
# may run after this reads the previous server's address.
remote_smoke_server_address() {
  local file="$1" prefix="$2"
  for _ in $(seq 200); do
    grep -q "listening on" "$file" 2>/dev/null && break
    sleep 0.05
  done
  addr=$(sed -n "s/^$prefix: listening on //p" "$file" 2>/dev/null)
  [ -n "$addr" ] || { echo "FAIL: server did not start"; cat "$file"; exit 1; }
}
