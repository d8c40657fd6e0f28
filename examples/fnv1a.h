// FNV-1a, 64 bits: the checksum the dispycos examples compute on both sides
// of a computation (the client and its library), so that each side checks
// the other's bytes without linking a hashing library. A checksum, not a
// security measure.
#ifndef PICOS_EXAMPLES_FNV1A_H_
#define PICOS_EXAMPLES_FNV1A_H_

#include <cstdint>
#include <string_view>

namespace picos::examples {

inline uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace picos::examples

#endif  // PICOS_EXAMPLES_FNV1A_H_
