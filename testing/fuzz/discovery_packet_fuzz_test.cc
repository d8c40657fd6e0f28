// Drives the fuzz target of the discovery packet decoder
// (discovery_packet_fuzz.cc) without libFuzzer: valid packets and their
// bodies as seeds, every truncation of each, then a deterministic loop of
// mutations (mutator.h). The target aborts on an undocumented outcome;
// ASan (--config=asan) catches memory errors. The slowest input is timed
// again alone: a forged packet must cost microseconds, not milliseconds.
// PICOS_FUZZ_ITERATIONS overrides the number of mutated inputs.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "testing/fuzz/discovery_packet_seeds.h"
#include "testing/fuzz/mutator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace picos::testing {
namespace {

std::vector<std::string> Seeds() { return DiscoveryPacketSeeds(); }

TEST(DiscoveryPacketFuzz, SeedsAndTheirTruncations) {
  std::vector<std::string> seeds = Seeds();
  ASSERT_GE(seeds.size(), 30u);
  RunSeedsAndTruncations(&LLVMFuzzerTestOneInput, seeds);
}

TEST(DiscoveryPacketFuzz, DeterministicMutations) {
  MutationRun run = RunMutations(&LLVMFuzzerTestOneInput, Seeds(), /*iterations=*/200000,
                                 /*seed=*/20261211, /*length_headers=*/false);
  const double again_ms = BestOfMs(&LLVMFuzzerTestOneInput, run.slowest);
  std::printf("%ld mutated inputs in %.1f s (%.0f/s); slowest %.2f ms (%zu bytes), %.3f ms alone\n", run.inputs,
              run.seconds, run.inputs / run.seconds, run.slowest_ms, run.slowest.size(), again_ms);
  EXPECT_LT(again_ms, 5.0) << "an input of " << run.slowest.size() << " bytes is slow to decode";
}

}  // namespace
}  // namespace picos::testing
