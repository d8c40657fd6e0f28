// Signed computation bundles: Ed25519 (BoringSSL) signatures over a
// library's SHA-256, the key and signature files that carry them, and the
// checks a node makes (compute/node_daemon.h, --trusted_signer).
//
//   // picos-sign keygen alice.key alice.pub; picos-sign sign alice.key libsquares.so
//   absl::StatusOr<std::string> digest = picos::compute::FileSha256("libsquares.so", 1 << 30);
//   absl::StatusOr<std::string> sig = picos::compute::ReadSignatureFile("libsquares.so.sig");
//   absl::StatusOr<std::string> key = picos::compute::ReadPublicKeyFile("alice.pub");
//   bool good = picos::compute::VerifyDigest(*key, *digest, *sig);
//
// Files, each one line of lowercase hex and a newline (easy to read, to
// copy into a config, and to bound: a longer file is refused):
//   public key   64 hex digits (32 bytes)
//   private key 128 hex digits (64 bytes: BoringSSL's seed and public key),
//               written with mode 0600
//   signature   128 hex digits (64 bytes), in <library>.sig beside the library
// What is signed is the 32-byte SHA-256 of the library, the same digest the
// node already checks, so the library is read once.
//
// Every file is input: a missing file is kNotFound, a malformed one
// kInvalidArgument naming the file; nothing aborts. Any thread; nothing
// suspends (files are small, read at once).
#ifndef PICOS_COMPUTE_SIGN_H_
#define PICOS_COMPUTE_SIGN_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace picos::compute {

inline constexpr size_t kEd25519PublicKeyBytes = 32;
inline constexpr size_t kEd25519PrivateKeyBytes = 64;
inline constexpr size_t kEd25519SignatureBytes = 64;
// The suffix a library's signature file has (libx.so -> libx.so.sig).
inline constexpr char kSignatureSuffix[] = ".sig";

struct SigningKeyPair {
  std::string private_key;  // kEd25519PrivateKeyBytes raw bytes
  std::string public_key;   // kEd25519PublicKeyBytes raw bytes
};

// A fresh key pair from BoringSSL's random bytes.
SigningKeyPair GenerateSigningKey();

// Writes the pair's files (private one mode 0600); refuses to replace an
// existing file (kAlreadyExists), so a key is never lost by mistake.
absl::Status WriteKeyFiles(const std::string& private_path, const std::string& public_path,
                           const SigningKeyPair& keys);

// The raw key or signature bytes of a file in the format above.
absl::StatusOr<std::string> ReadPublicKeyFile(const std::string& path);
absl::StatusOr<std::string> ReadPrivateKeyFile(const std::string& path);
absl::StatusOr<std::string> ReadSignatureFile(const std::string& path);

// The SHA-256 of the file at `path` (32 raw bytes); kInvalidArgument when
// it is longer than `max_size` bytes (it stops reading there).
absl::StatusOr<std::string> FileSha256(const std::string& path, uint64_t max_size);

// Ed25519 signature (64 raw bytes) of `digest` with `private_key`.
absl::StatusOr<std::string> SignDigest(const std::string& private_key, const std::string& digest);
// Whether `signature` is `public_key`'s over `digest`; false for any
// argument of the wrong size.
bool VerifyDigest(const std::string& public_key, const std::string& digest, const std::string& signature);

// Signs the library at `library_path` and writes <library_path>.sig.
absl::Status SignLibrary(const std::string& private_key_path, const std::string& library_path);

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_SIGN_H_
