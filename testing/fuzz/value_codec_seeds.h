// Seed inputs for the Value codec fuzz target: valid encodings of Values of
// every kind, including handles of a made-up remote process.
//
//   for (const std::string& seed : picos::testing::ValueCodecSeeds()) ...
#ifndef PICOS_TESTING_FUZZ_VALUE_CODEC_SEEDS_H_
#define PICOS_TESTING_FUZZ_VALUE_CODEC_SEEDS_H_

#include <string>
#include <vector>

namespace picos::testing {

// Encodings made with EncodeValue; deterministic. Any thread.
std::vector<std::string> ValueCodecSeeds();

}  // namespace picos::testing

#endif  // PICOS_TESTING_FUZZ_VALUE_CODEC_SEEDS_H_
