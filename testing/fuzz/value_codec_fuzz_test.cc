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
#include "testing/fuzz/value_codec_seeds.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace picos::testing {
namespace {

void RunOne(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

class Mutator {
 public:
  Mutator(const std::vector<std::string>& seeds, uint64_t seed) : seeds_(seeds), rng_(seed) {}

  std::string Next() {
    std::string s = seeds_[Below(seeds_.size())];
    int rounds = 1 + static_cast<int>(Below(4));
    for (int i = 0; i < rounds; ++i) Mutate(s);
    return s;
  }

 private:
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  // Reads and writes the little-endian word at `w`, if the input has it.
  bool GetWord(const std::string& s, size_t w, uint64_t* out) {
    if ((w + 1) * 8 > s.size()) return false;
    std::memcpy(out, s.data() + w * 8, 8);
    return true;
  }
  void SetWord(std::string& s, size_t w, uint64_t v) { std::memcpy(s.data() + w * 8, &v, 8); }

  void Mutate(std::string& s) {
    static const uint8_t kInteresting[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
    static const uint64_t kCounts[] = {0, 1, 2, 7, 8, 255, 65535, (1u << 29) - 1, 1u << 28};
    size_t words = s.size() / 8;
    switch (Below(9)) {
      case 0:  // flip a bit
        if (!s.empty()) s[Below(s.size())] ^= static_cast<char>(1 << Below(8));
        break;
      case 1:  // an interesting byte
        if (!s.empty()) s[Below(s.size())] = static_cast<char>(kInteresting[Below(6)]);
        break;
      case 2:  // truncate (keeping whole words half of the time)
        if (!s.empty()) {
          size_t n = Below(s.size());
          if (Below(2)) n &= ~size_t{7};
          s.resize(n);
        }
        break;
      case 3: {  // splice: a prefix of this one and a suffix of another seed
        const std::string& other = seeds_[Below(seeds_.size())];
        size_t a = Below(s.size() / 8 + 1) * 8;
        size_t b = Below(other.size() / 8 + 1) * 8;
        s = s.substr(0, a) + other.substr(std::min(b, other.size()));
        break;
      }
      case 4:  // insert a word
        s.insert(Below(words + 1) * 8, std::string(8, static_cast<char>(Below(256))));
        break;
      case 5:  // delete a word
        if (words) s.erase(Below(words) * 8, 8);
        break;
      case 6: {  // corrupt a list pointer's element count (bits 35..63)
        uint64_t w;
        size_t at = 1 + Below(words ? words : 1);
        if (GetWord(s, at, &w)) {
          w = (w & ((uint64_t{1} << 35) - 1)) | (kCounts[Below(9)] << 35);
          if (Below(2)) w = (w & ~uint64_t{3}) | 1;  // make it a list pointer
          SetWord(s, at, w);
        }
        break;
      }
      case 7: {  // corrupt a pointer's offset or a struct's sizes
        uint64_t w;
        size_t at = 1 + Below(words ? words : 1);
        if (GetWord(s, at, &w)) {
          if (Below(2)) {
            uint64_t offset = static_cast<uint32_t>(static_cast<int32_t>(Below(64)) - 32);
            w = (w & ~uint64_t{0xfffffffc}) | ((offset << 2) & 0xfffffffc);
          } else {
            w ^= uint64_t{Below(65536)} << (32 + 16 * Below(2));
          }
          SetWord(s, at, w);
        }
        break;
      }
      case 8: {  // corrupt the segment table: count or a size
        uint64_t w;
        if (GetWord(s, 0, &w)) {
          if (Below(2)) {
            w = (w & 0xffffffff00000000u) | Below(4);
          } else {
            w = (w & 0xffffffffu) | (kCounts[Below(9)] << 32);
          }
          SetWord(s, 0, w);
        }
        break;
      }
    }
  }

  const std::vector<std::string>& seeds_;
  std::mt19937_64 rng_;
};

TEST(ValueCodecFuzz, SeedsAndTheirTruncations) {
  std::vector<std::string> seeds = ValueCodecSeeds();
  ASSERT_GT(seeds.size(), 10u);
  for (const std::string& seed : seeds) {
    for (size_t n = 0; n <= seed.size(); ++n) RunOne(seed.substr(0, n));
  }
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
