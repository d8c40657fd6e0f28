// Fuzz target for the Value codec (core/wire/value_codec.h).
//
// Decodes the input; when that succeeds, encodes the Value again, decodes
// that, and aborts unless both decodings are equal and re-encoding is
// stable. Decoding must never crash, leak or allocate without bound,
// whatever the input: the sanitizers and libFuzzer's -rss_limit_mb check that.
//
// Built two ways: with clang and -fsanitize=fuzzer by run_value_fuzz.sh
// (libFuzzer supplies main), and into value_codec_fuzz_test, a Bazel test
// that feeds it seeds and deterministic mutations (g++ has no libFuzzer).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "core/kernel/value.h"
#include "core/wire/value_codec.h"

namespace {

[[noreturn]] void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "value_codec_fuzz: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

picos::CodecOptions FuzzOptions() {
  picos::CodecOptions o;
  // Small enough that one input cannot make libFuzzer's 2 GB RSS limit
  // trip on legitimate (bounded) allocations.
  o.max_encoded_size = 1 << 20;
  o.max_elements = 1 << 16;
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const picos::CodecOptions options = FuzzOptions();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<picos::Value> first = picos::DecodeValue(input, options);
  if (!first.ok()) {
    if (first.status().code() == absl::StatusCode::kInternal) Fail("decode", first.status());
    return 0;
  }
  absl::StatusOr<std::string> encoded = picos::EncodeValue(*first, options);
  if (!encoded.ok()) {
    // A hostile message may share bytes between pointers, so its Value can
    // encode larger than the input; that bound is the only acceptable miss.
    if (encoded.status().code() == absl::StatusCode::kResourceExhausted) return 0;
    Fail("re-encode of a decoded value", encoded.status());
  }
  absl::StatusOr<picos::Value> second = picos::DecodeValue(*encoded, options);
  if (!second.ok()) Fail("decode of our own encoding", second.status());
  if (!(*first == *second)) {
    std::fprintf(stderr, "value_codec_fuzz: round trip changed the value\n  %s\n  %s\n",
                 first->DebugString().c_str(), second->DebugString().c_str());
    std::abort();
  }
  absl::StatusOr<std::string> again = picos::EncodeValue(*second, options);
  if (!again.ok()) Fail("second re-encode", again.status());
  if (*again != *encoded) {
    std::fprintf(stderr, "value_codec_fuzz: encoding is not stable across a round trip\n");
    std::abort();
  }
  return 0;
}
