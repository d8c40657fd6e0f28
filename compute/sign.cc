#include "compute/sign.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "openssl/curve25519.h"
#include "openssl/sha.h"

namespace picos::compute {
namespace {

// Longest key or signature file read: the hex line, a newline, some slack
// for a CR or trailing spaces. Anything longer is not one of ours.
constexpr size_t kMaxKeyFileBytes = 512;

absl::StatusOr<std::string> ReadHexFile(const std::string& path, size_t bytes, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the ", what, " file ", path));
  std::string text(kMaxKeyFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxKeyFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a ", what, " file (too long)"));
  }
  const std::string hex(absl::StripAsciiWhitespace(text));
  if (hex.size() != 2 * bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a ", what, " file (", 2 * bytes, " hex digits expected)"));
  }
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": not a ", what, " file (not hex)"));
    }
  }
  return absl::HexStringToBytes(hex);
}

absl::Status WriteNewFile(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    if (errno == EEXIST) return absl::AlreadyExistsError(absl::StrCat(path, " exists: not replaced"));
    return absl::ErrnoToStatus(errno, absl::StrCat("creating ", path));
  }
  const ssize_t n = write(fd, text.data(), text.size());
  const int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) return absl::ErrnoToStatus(err, absl::StrCat("writing ", path));
  return absl::OkStatus();
}

}  // namespace

SigningKeyPair GenerateSigningKey() {
  uint8_t pub[ED25519_PUBLIC_KEY_LEN];
  uint8_t priv[ED25519_PRIVATE_KEY_LEN];
  ED25519_keypair(pub, priv);
  SigningKeyPair k;
  k.public_key.assign(reinterpret_cast<const char*>(pub), sizeof pub);
  k.private_key.assign(reinterpret_cast<const char*>(priv), sizeof priv);
  return k;
}

absl::Status WriteKeyFiles(const std::string& private_path, const std::string& public_path,
                           const SigningKeyPair& keys) {
  if (keys.private_key.size() != kEd25519PrivateKeyBytes || keys.public_key.size() != kEd25519PublicKeyBytes) {
    return absl::InvalidArgumentError("not an Ed25519 key pair");
  }
  absl::Status s = WriteNewFile(private_path, absl::StrCat(absl::BytesToHexString(keys.private_key), "\n"), 0600);
  if (!s.ok()) return s;
  return WriteNewFile(public_path, absl::StrCat(absl::BytesToHexString(keys.public_key), "\n"), 0644);
}

absl::StatusOr<std::string> ReadPublicKeyFile(const std::string& path) {
  return ReadHexFile(path, kEd25519PublicKeyBytes, "Ed25519 public key");
}

absl::StatusOr<std::string> ReadPrivateKeyFile(const std::string& path) {
  return ReadHexFile(path, kEd25519PrivateKeyBytes, "Ed25519 private key");
}

absl::StatusOr<std::string> ReadSignatureFile(const std::string& path) {
  return ReadHexFile(path, kEd25519SignatureBytes, "Ed25519 signature");
}

absl::StatusOr<std::string> FileSha256(const std::string& path, uint64_t max_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  std::vector<char> buf(1 << 16);
  uint64_t total = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize got = in.gcount();
    if (got <= 0) break;
    total += static_cast<uint64_t>(got);
    if (total > max_size) return absl::InvalidArgumentError(absl::StrCat(path, ": larger than ", max_size, " bytes"));
    SHA256_Update(&ctx, buf.data(), static_cast<size_t>(got));
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256_Final(digest, &ctx);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

absl::StatusOr<std::string> SignDigest(const std::string& private_key, const std::string& digest) {
  if (private_key.size() != kEd25519PrivateKeyBytes) return absl::InvalidArgumentError("not an Ed25519 private key");
  uint8_t sig[ED25519_SIGNATURE_LEN];
  if (ED25519_sign(sig, reinterpret_cast<const uint8_t*>(digest.data()), digest.size(),
                   reinterpret_cast<const uint8_t*>(private_key.data())) != 1) {
    return absl::InternalError("ED25519_sign failed");
  }
  return std::string(reinterpret_cast<const char*>(sig), sizeof sig);
}

bool VerifyDigest(const std::string& public_key, const std::string& digest, const std::string& signature) {
  if (public_key.size() != kEd25519PublicKeyBytes || signature.size() != kEd25519SignatureBytes) return false;
  return ED25519_verify(reinterpret_cast<const uint8_t*>(digest.data()), digest.size(),
                        reinterpret_cast<const uint8_t*>(signature.data()),
                        reinterpret_cast<const uint8_t*>(public_key.data())) == 1;
}

absl::Status SignLibrary(const std::string& private_key_path, const std::string& library_path) {
  absl::StatusOr<std::string> key = ReadPrivateKeyFile(private_key_path);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> digest = FileSha256(library_path, uint64_t{1} << 40);
  if (!digest.ok()) return digest.status();
  absl::StatusOr<std::string> sig = SignDigest(*key, *digest);
  if (!sig.ok()) return sig.status();
  const std::string out = absl::StrCat(library_path, kSignatureSuffix);
  // A signature is replaced on purpose (a rebuilt library is signed again),
  // through a temporary file so that a reader never sees half of one.
  const std::string tmp = absl::StrCat(out, ".tmp");
  unlink(tmp.c_str());
  absl::Status s = WriteNewFile(tmp, absl::StrCat(absl::BytesToHexString(*sig), "\n"), 0644);
  if (!s.ok()) return s;
  if (rename(tmp.c_str(), out.c_str()) != 0) return absl::ErrnoToStatus(errno, absl::StrCat("renaming to ", out));
  return absl::OkStatus();
}

}  // namespace picos::compute
