// picos-sign: keys and signatures for computation libraries that nodes
// started with --trusted_signer accept (compute/sign.h has the formats).
//
//   picos-sign keygen PRIVATE_KEY_FILE PUBLIC_KEY_FILE
//       a new Ed25519 key pair (the private file mode 0600; an existing
//       file is never replaced)
//   picos-sign sign PRIVATE_KEY_FILE LIBRARY
//       writes LIBRARY.sig: the Ed25519 signature of LIBRARY's SHA-256
//   picos-sign verify PUBLIC_KEY_FILE LIBRARY
//       checks LIBRARY.sig as a node would; exit 0 when good, 1 when not
//
// Prints one line saying what it did. Exit status 2 for a bad command
// line, 1 for a failure, each with a one-line error on stderr.
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "compute/sign.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: picos-sign keygen PRIVATE_KEY_FILE PUBLIC_KEY_FILE\n"
               "       picos-sign sign PRIVATE_KEY_FILE LIBRARY\n"
               "       picos-sign verify PUBLIC_KEY_FILE LIBRARY\n");
  return 2;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "picos-sign: %s\n", std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return Usage();
  const std::string cmd = argv[1], a = argv[2], b = argv[3];
  if (cmd == "keygen") {
    absl::Status s = picos::compute::WriteKeyFiles(a, b, picos::compute::GenerateSigningKey());
    if (!s.ok()) return Fail(s);
    std::printf("wrote %s and %s\n", a.c_str(), b.c_str());
    return 0;
  }
  if (cmd == "sign") {
    absl::Status s = picos::compute::SignLibrary(a, b);
    if (!s.ok()) return Fail(s);
    std::printf("wrote %s%s\n", b.c_str(), picos::compute::kSignatureSuffix);
    return 0;
  }
  if (cmd == "verify") {
    absl::StatusOr<std::string> key = picos::compute::ReadPublicKeyFile(a);
    if (!key.ok()) return Fail(key.status());
    absl::StatusOr<std::string> sig = picos::compute::ReadSignatureFile(absl::StrCat(b, picos::compute::kSignatureSuffix));
    if (!sig.ok()) return Fail(sig.status());
    absl::StatusOr<std::string> digest = picos::compute::FileSha256(b, uint64_t{1} << 40);
    if (!digest.ok()) return Fail(digest.status());
    if (!picos::compute::VerifyDigest(*key, *digest, *sig)) {
      std::printf("bad signature: %s%s is not %s's\n", b.c_str(), picos::compute::kSignatureSuffix, a.c_str());
      return 1;
    }
    std::printf("good signature\n");
    return 0;
  }
  return Usage();
}
