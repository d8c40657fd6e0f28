#!/usr/bin/env bash
# sock_server_client over TLS, configured only by the environment: a fresh
# PKI, PICOS_TLS_* pointing at it, and a tls:// address. Then the same
# clients against a CA that did not sign the server: every one is refused.
#   tls_sock_smoke_test.sh MAKE_TEST_CERTS SOCK_SERVER_CLIENT
set -uo pipefail
make_certs="$1"
binary="$2"
dir="${TEST_TMPDIR:-$(mktemp -d)}/pki"
mkdir -p "$dir"
"$make_certs" "$dir" >/dev/null || { echo "FAIL: could not make certificates"; exit 1; }

out=$(PICOS_TLS_CA="$dir/ca.pem" PICOS_TLS_CERT="$dir/server.pem" PICOS_TLS_KEY="$dir/server.key" \
      timeout --kill-after=5 60 "$binary" --mode=both --clients=3 --listen=tls://127.0.0.1:0 2>&1)
rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "FAIL: status $rc"; exit 1; }
for pattern in 'server: listening on tls://127\.0\.0\.1:[0-9]+' 'client 2: sent [0-9]+ bytes' \
               'server: 3 connections' '^done$'; do
  grep -Eq -- "$pattern" <<<"$out" || { echo "FAIL: no match for $pattern"; exit 1; }
done

# Every client is refused, and says why; with no connection left to wait
# for, the program ends by itself with status 1.
out=$(PICOS_TLS_CA="$dir/other-ca.pem" PICOS_TLS_CERT="$dir/server.pem" PICOS_TLS_KEY="$dir/server.key" \
      timeout --kill-after=2 30 "$binary" --mode=both --clients=2 --listen=tls://127.0.0.1:0 2>&1)
rc=$?
echo "$out"
[ $rc -eq 1 ] || { echo "FAIL: status $rc, not 1, when every client failed"; exit 1; }
refused=$(grep -c '^client failed: UNAUTHENTICATED: TLS handshake: certificate verification failed' <<<"$out")
[ "$refused" -eq 2 ] || { echo "FAIL: $refused of 2 clients refused the untrusted server"; exit 1; }
grep -q '2 of 2 client connections failed' <<<"$out" || { echo "FAIL: no summary of the failures"; exit 1; }
grep -q 'client [0-9]: sent' <<<"$out" && { echo "FAIL: a client sent data to an untrusted server"; exit 1; }
echo PASS
