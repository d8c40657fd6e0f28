// Drives the Value codec fuzz target (value_codec_fuzz.cc) without libFuzzer:
// every seed, every truncation of every seed, then a deterministic loop of
// mutations (bit flips, interesting bytes, truncations, splices, word
// insertions and deletions, and corrupted pointer and segment-table length
// fields). The target aborts on any round-trip mismatch; ASan
// (--config=asan) catches memory errors. PICOS_FUZZ_ITERATIONS overrides
// the number of mutated inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/wire/value_codec.h"
#include "testing/fuzz/mutator.h"
#include "testing/fuzz/value_codec_seeds.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace picos::testing {
namespace {

void RunOne(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

TEST(ValueCodecFuzz, SeedsAndTheirTruncations) {
  std::vector<std::string> seeds = ValueCodecSeeds();
  ASSERT_GT(seeds.size(), 10u);
  RunSeedsAndTruncations(&LLVMFuzzerTestOneInput, seeds);
}

TEST(ValueCodecFuzz, DeterministicMutations) {
  std::vector<std::string> seeds = ValueCodecSeeds();
  long iterations = 3000000;
  if (const char* env = std::getenv("PICOS_FUZZ_ITERATIONS")) iterations = std::atol(env);
  Mutator mutator(seeds, /*seed=*/20240601);
  auto start = std::chrono::steady_clock::now();
  long sampled = 0, decoded = 0;
  for (long i = 0; i < iterations; ++i) {
    std::string input = mutator.Next();
    RunOne(input);
    if (i % 16 == 0) {  // how much of the loop reaches the round trip
      ++sampled;
      decoded += DecodeValue(input).ok();
    }
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%ld mutated inputs in %.1f s (%.0f/s); %.1f%% of a sample decoded\n",
              iterations, seconds, iterations / seconds,
              sampled ? 100.0 * decoded / sampled : 0.0);
}

}  // namespace
}  // namespace picos::testing
