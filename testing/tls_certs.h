// Test certificates, made fresh by each test with BoringSSL: a CA, a server
// certificate for localhost / 127.0.0.1 / ::1 signed by it, a client
// certificate signed by it, and a second, unrelated CA (whose trust makes
// verification fail). Written as PEM files into a directory.
#ifndef PICOS_TESTING_TLS_CERTS_H_
#define PICOS_TESTING_TLS_CERTS_H_

#include <string>

#include "absl/status/statusor.h"

namespace picos::testing {

struct TestPki {
  std::string ca_cert;       // CA that signed server and client
  std::string server_cert;   // CN/SAN localhost, 127.0.0.1, ::1
  std::string server_key;
  std::string client_cert;
  std::string client_key;
  std::string other_ca_cert;  // an unrelated CA
};

absl::StatusOr<TestPki> MakeTestPki(const std::string& dir);

}  // namespace picos::testing

#endif  // PICOS_TESTING_TLS_CERTS_H_
