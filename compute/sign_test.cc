// compute/sign.h: a signature verifies with its key only, over its digest
// only; every malformed file is an error naming it; keys are never
// overwritten.
#include "compute/sign.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace picos::compute {
namespace {

using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

std::string Dir() {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/sign-test-", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(Sign, ASignatureVerifiesWithItsKeyOverItsDigestOnly) {
  const std::string dir = Dir();
  const SigningKeyPair alice = GenerateSigningKey();
  const SigningKeyPair bob = GenerateSigningKey();
  ASSERT_OK(WriteKeyFiles(dir + "/alice.key", dir + "/alice.pub", alice));
  EXPECT_THAT(WriteKeyFiles(dir + "/alice.key", dir + "/other.pub", bob),
              StatusIs(absl::StatusCode::kAlreadyExists));
  absl::StatusOr<std::string> pub = ReadPublicKeyFile(dir + "/alice.pub");
  ASSERT_OK(pub);
  EXPECT_EQ(*pub, alice.public_key);
  std::ofstream(dir + "/lib.so") << "a library";
  ASSERT_OK(SignLibrary(dir + "/alice.key", dir + "/lib.so"));
  absl::StatusOr<std::string> sig = ReadSignatureFile(dir + "/lib.so.sig");
  ASSERT_OK(sig);
  absl::StatusOr<std::string> digest = FileSha256(dir + "/lib.so", 1 << 20);
  ASSERT_OK(digest);
  EXPECT_EQ(digest->size(), 32u);
  EXPECT_TRUE(VerifyDigest(alice.public_key, *digest, *sig));
  EXPECT_FALSE(VerifyDigest(bob.public_key, *digest, *sig));
  std::string other = *digest;
  other[0] ^= 1;
  EXPECT_FALSE(VerifyDigest(alice.public_key, other, *sig));
  std::string bad_sig = *sig;
  bad_sig[10] ^= 1;
  EXPECT_FALSE(VerifyDigest(alice.public_key, *digest, bad_sig));
  EXPECT_FALSE(VerifyDigest(alice.public_key.substr(1), *digest, *sig));
  EXPECT_FALSE(VerifyDigest(alice.public_key, *digest, sig->substr(1)));
  EXPECT_THAT(FileSha256(dir + "/lib.so", 3).status(), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Sign, MalformedFilesAreErrorsNamingThem) {
  const std::string dir = Dir();
  EXPECT_THAT(ReadPublicKeyFile(dir + "/none.pub").status(), StatusIs(absl::StatusCode::kNotFound));
  std::ofstream(dir + "/short.pub") << "abcd\n";
  EXPECT_THAT(ReadPublicKeyFile(dir + "/short.pub").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("short.pub")));
  std::ofstream(dir + "/nothex.pub") << std::string(64, 'g') << "\n";
  EXPECT_THAT(ReadPublicKeyFile(dir + "/nothex.pub").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not hex")));
  std::ofstream(dir + "/long.sig") << std::string(100000, 'a');
  EXPECT_THAT(ReadSignatureFile(dir + "/long.sig").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too long")));
  // A public key is not a private key.
  const SigningKeyPair k = GenerateSigningKey();
  ASSERT_OK(WriteKeyFiles(dir + "/k.key", dir + "/k.pub", k));
  EXPECT_THAT(ReadPrivateKeyFile(dir + "/k.pub").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SignLibrary(dir + "/k.pub", dir + "/k.key"), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace picos::compute
