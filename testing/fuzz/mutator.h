// Deterministic mutations of seed inputs for the fuzz tests that run a
// libFuzzer entry point without libFuzzer (g++ has none): bit flips,
// interesting bytes, truncations, splices, word insertions and deletions,
// corrupted Cap'n Proto pointer and segment-table fields, and corrupted
// 4-byte big-endian length headers (core/io/framing.h, the handshake).
//
//   picos::testing::Mutator m(seeds, /*seed=*/20240601);
//   for (int i = 0; i < n; ++i) LLVMFuzzerTestOneInput(..., m.Next());
//
// Threads: one object per thread.
#ifndef PICOS_TESTING_FUZZ_MUTATOR_H_
#define PICOS_TESTING_FUZZ_MUTATOR_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace picos::testing {

class Mutator {
 public:
  // `length_headers`: also corrupt 4-byte length headers (inputs that are
  // streams of length-prefixed messages). Off, the sequence of mutations is
  // the one value_codec_fuzz_test has always run.
  Mutator(const std::vector<std::string>& seeds, uint64_t seed, bool length_headers = false)
      : seeds_(seeds), rng_(seed), kinds_(length_headers ? 10 : 9) {}

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
    switch (Below(kinds_)) {
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
      case 9: {  // a length header (4 bytes, big-endian) somewhere: 0, small, odd, huge
        static const uint32_t kLengths[] = {0, 1, 7, 8, 16, 4096, 4097, 1u << 20, 0xffffffffu};
        if (s.size() >= 4) {
          size_t at = Below(2) ? 0 : Below(s.size() - 3);
          uint32_t n = kLengths[Below(9)];
          if (Below(3) == 0) n = static_cast<uint32_t>(Below(s.size() + 1));
          s[at] = static_cast<char>(n >> 24);
          s[at + 1] = static_cast<char>(n >> 16);
          s[at + 2] = static_cast<char>(n >> 8);
          s[at + 3] = static_cast<char>(n);
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
  const uint64_t kinds_;
};

// Feeds `target` every seed and every prefix of it (each truncation a peer
// could leave on the wire). Each prefix is a buffer of its own, so that
// AddressSanitizer sees a read past its end.
inline void RunSeedsAndTruncations(int (*target)(const uint8_t*, size_t),
                                   const std::vector<std::string>& seeds) {
  for (const std::string& seed : seeds) {
    for (size_t n = 0; n <= seed.size(); ++n) {
      const std::string prefix = seed.substr(0, n);
      target(reinterpret_cast<const uint8_t*>(prefix.data()), prefix.size());
    }
  }
}

// What RunMutations saw.
struct MutationRun {
  long inputs = 0;
  double seconds = 0;
  std::string slowest;  // the input that took longest
  double slowest_ms = 0;
};

// Feeds `iterations` mutated inputs (PICOS_FUZZ_ITERATIONS overrides it) to
// `target`, timing each. The slowest is worth timing again alone: one slow
// run on a loaded machine is noise, a slow input is a finding.
inline MutationRun RunMutations(int (*target)(const uint8_t*, size_t), const std::vector<std::string>& seeds,
                                long iterations, uint64_t seed, bool length_headers) {
  if (const char* env = std::getenv("PICOS_FUZZ_ITERATIONS")) iterations = std::atol(env);
  Mutator mutator(seeds, seed, length_headers);
  MutationRun run;
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < iterations; ++i) {
    std::string input = mutator.Next();
    const auto t0 = std::chrono::steady_clock::now();
    target(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (ms > run.slowest_ms) {
      run.slowest_ms = ms;
      run.slowest = std::move(input);
    }
  }
  run.inputs = iterations;
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run;
}

// The fastest of `repeats` runs of `target` on `input`, in milliseconds.
inline double BestOfMs(int (*target)(const uint8_t*, size_t), const std::string& input, int repeats = 5) {
  double best = 1e9;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    target(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace picos::testing

#endif  // PICOS_TESTING_FUZZ_MUTATOR_H_
