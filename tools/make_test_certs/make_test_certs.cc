// Writes a throw-away PKI for tests and demos into a directory: ca.pem,
// server.pem / server.key (localhost, 127.0.0.1, ::1), client.pem /
// client.key, other-ca.pem. Made fresh each time with BoringSSL.
//
//   make_test_certs /tmp/pki
#include <cstdio>
#include <string>

#include "testing/tls_certs.h"

int main(int argc, char** argv) {
  if (argc != 2 || argv[1][0] == '\0') {
    std::fprintf(stderr, "usage: make_test_certs DIRECTORY\n");
    return 2;
  }
  absl::StatusOr<picos::testing::TestPki> pki = picos::testing::MakeTestPki(argv[1]);
  if (!pki.ok()) {
    std::fprintf(stderr, "make_test_certs: %s\n", pki.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n%s\n%s\n", pki->ca_cert.c_str(), pki->server_cert.c_str(),
              pki->server_key.c_str());
  return 0;
}
