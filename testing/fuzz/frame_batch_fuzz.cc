// Fuzz target for the decoder of the frame batches peers exchange after the
// handshake (core/remote/frames_internal.h, what Node's reader runs on
// each message).
//
// Each input is read two ways: as the stream a peer sends (length-prefixed
// batches, each checked against the frame bound as core/io/framing.h checks
// it), and as one batch. Aborts if DecodeBatch accepts something that is
// not a list, or gives kInternal. Crashes and unbounded allocations are
// what the sanitizers and libFuzzer's -rss_limit_mb catch.
//
// Driven by frame_batch_fuzz_test (seeds and deterministic mutations, g++).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "absl/status/status.h"
#include "core/kernel/value.h"
#include "core/remote/frames_internal.h"
#include "core/wire/value_codec.h"

namespace {

// Smaller than a Node's default (16 MiB) so that one input cannot trip
// libFuzzer's RSS limit on legitimate, bounded allocations.
constexpr size_t kMaxFrame = size_t{1} << 20;

picos::CodecOptions FuzzOptions() {
  picos::CodecOptions o;
  o.max_encoded_size = kMaxFrame;
  o.max_elements = 1 << 16;
  return o;
}

void Check(std::string_view payload) {
  static const picos::CodecOptions options = FuzzOptions();
  absl::StatusOr<picos::Value> batch = picos::internal::DecodeBatch(payload, options);
  if (!batch.ok()) {
    if (batch.status().code() == absl::StatusCode::kInternal) {
      std::fprintf(stderr, "frame_batch_fuzz: %s\n", batch.status().ToString().c_str());
      std::abort();
    }
    return;
  }
  if (!batch->is_list()) {
    std::fprintf(stderr, "frame_batch_fuzz: a batch that is not a list was accepted\n");
    std::abort();
  }
  // What the dispatcher reads first of every frame.
  for (const picos::Value& frame : batch->as_list()) {
    const picos::Value* op = frame.Find("op");
    if (op != nullptr && op->is_string()) (void)op->as_string().size();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // As a peer's stream of batches.
  std::string_view rest = input;
  while (rest.size() >= 4) {
    const auto* h = reinterpret_cast<const unsigned char*>(rest.data());
    const uint32_t n = (uint32_t{h[0]} << 24) | (uint32_t{h[1]} << 16) | (uint32_t{h[2]} << 8) | h[3];
    if (n > kMaxFrame) break;  // ReadMessage refuses it: the connection closes
    rest.remove_prefix(4);
    if (rest.size() < n) break;  // truncated: the reader waits for the rest
    Check(rest.substr(0, n));
    rest.remove_prefix(n);
  }
  // As one batch.
  Check(input);
  return 0;
}
