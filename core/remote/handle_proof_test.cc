#include "core/remote/handle_proof_internal.h"

#include <string>
#include <thread>

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

// Task proofs are cached per thread by task id (handle_proof.cc): what the
// cache gives must be what a fresh HMAC gives, whatever the order of
// lookups, the ids that share a slot, the node, or the thread.
TEST(HandleProof, CachedTaskProofsAreTheMintedOnes) {
  std::string fresh[3][300];
  std::thread([&] {  // a thread whose cache is empty: every proof minted
    for (uint64_t id = 0; id < 300; ++id) {
      fresh[0][id] = TaskProof(kPid, id);
      fresh[1][id] = TaskProof(kOtherPid, id);
      fresh[2][id] = TaskProof("a process id of another size", id);
    }
  }).join();
  for (int round = 0; round < 3; ++round) {
    for (uint64_t id = 0; id < 300; ++id) {
      // Alternating nodes and ids that share a slot (id, id + 128) evict
      // each other's entries.
      const uint64_t i = round == 1 ? 299 - id : id;
      ASSERT_EQ(TaskProof(kPid, i), fresh[0][i]) << i;
      ASSERT_EQ(TaskProof(kOtherPid, i), fresh[1][i]) << i;
      ASSERT_TRUE(TaskProofValid(kPid, i, fresh[0][i])) << i;
      ASSERT_FALSE(TaskProofValid(kOtherPid, i, fresh[0][i])) << i;
      ASSERT_FALSE(TaskProofValid(kPid, i + 128, fresh[0][i])) << i;
      ASSERT_TRUE(TaskProofValid("a process id of another size", i, fresh[2][i])) << i;
      ASSERT_NE(fresh[0][i], fresh[1][i]);
    }
  }
}

}  // namespace
}  // namespace picos::internal
