#include "core/remote/handle_proof_internal.h"

#include <string>

#include "gtest/gtest.h"

namespace picos::internal {
namespace {

const std::string kPid(16, 'a');
const std::string kOtherPid(16, 'b');

TEST(HandleProof, MintedProofsAreValidAndAnyChangeIsNot) {
  const std::string p = TaskProof(kPid, 42);
  ASSERT_EQ(p.size(), kProofSize);
  EXPECT_EQ(p, TaskProof(kPid, 42)) << "deterministic for one process";
  EXPECT_TRUE(TaskProofValid(kPid, 42, p));
  EXPECT_FALSE(TaskProofValid(kPid, 43, p)) << "another task";
  EXPECT_FALSE(TaskProofValid(kOtherPid, 42, p)) << "another node";
  EXPECT_FALSE(TaskProofValid(kPid, 42, "")) << "none";
  EXPECT_FALSE(TaskProofValid(kPid, 42, p.substr(0, kProofSize - 1))) << "truncated";
  EXPECT_FALSE(TaskProofValid(kPid, 42, p + "x")) << "lengthened";
  for (size_t i = 0; i < p.size(); ++i) {
    std::string altered = p;
    altered[i] = static_cast<char>(altered[i] ^ 1);
    EXPECT_FALSE(TaskProofValid(kPid, 42, altered)) << "bit flipped in byte " << i;
  }
}

TEST(HandleProof, ChannelProofsAreBoundToNameAndKind) {
  const std::string p = ChannelProof(kPid, "news");
  EXPECT_TRUE(ChannelProofValid(kPid, "news", p));
  EXPECT_FALSE(ChannelProofValid(kPid, "newz", p));
  EXPECT_FALSE(ChannelProofValid(kOtherPid, "news", p));
  // A task's proof is not a channel's, even over the same bytes.
  EXPECT_FALSE(ChannelProofValid(kPid, std::string("\0\0\0\0\0\0\0\x2a", 8), TaskProof(kPid, 42)));
}

}  // namespace
}  // namespace picos::internal
