// Drives the fuzz target of the handshake's decoders (handshake_fuzz.cc) without libFuzzer: every seed, every
// truncation of every seed, then a deterministic loop of mutations
// (mutator.h), including corrupted length headers. The target aborts on an
// undocumented outcome; ASan (--config=asan) catches memory errors. The
// slowest input is timed again alone and must take at most a few ms.
// PICOS_FUZZ_ITERATIONS overrides the number of mutated inputs.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "testing/fuzz/mutator.h"
#include "testing/fuzz/remote_seeds.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace picos::testing {
namespace {

TEST(HandshakeFuzz, SeedsAndTheirTruncations) {
  std::vector<std::string> seeds = HandshakeSeeds();
  ASSERT_GT(seeds.size(), 10u);
  RunSeedsAndTruncations(&LLVMFuzzerTestOneInput, seeds);
}

TEST(HandshakeFuzz, DeterministicMutations) {
  MutationRun run = RunMutations(&LLVMFuzzerTestOneInput, HandshakeSeeds(), /*iterations=*/300000,
                                 /*seed=*/20261201, /*length_headers=*/true);
  const double again_ms = BestOfMs(&LLVMFuzzerTestOneInput, run.slowest);
  std::printf("%ld mutated inputs in %.1f s (%.0f/s); slowest %.2f ms (%zu bytes), %.3f ms alone\n", run.inputs,
              run.seconds, run.inputs / run.seconds, run.slowest_ms, run.slowest.size(), again_ms);
  EXPECT_LT(again_ms, 5.0) << "an input of " << run.slowest.size() << " bytes is slow to decode";
}

}  // namespace
}  // namespace picos::testing
