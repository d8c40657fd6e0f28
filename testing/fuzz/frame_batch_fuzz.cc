// Fuzz target for the decoder of the frame batches peers exchange after the
// handshake (core/remote/frames_internal.h, what Node's reader runs on
// each message).
//
// Each input is read two ways: as the stream a peer sends (length-prefixed
// batches, each checked against the frame bound as core/io/framing.h checks
// it), and as one batch, frame by frame (OpenBatch, ReadBatchHeader,
// ReadFrame). Aborts if
// either gives kInternal. Crashes and unbounded allocations are
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

void Fail(const absl::Status& s) {
  if (s.code() == absl::StatusCode::kInternal) {
    std::fprintf(stderr, "frame_batch_fuzz: %s\n", s.ToString().c_str());
    std::abort();
  }
}

void Check(std::string_view payload) {
  static const picos::CodecOptions options = FuzzOptions();
  absl::StatusOr<picos::ListDecoder> batch = picos::internal::OpenBatch(payload, options);
  if (!batch.ok()) return Fail(batch.status());
  // The header first, in place, as the reader takes it.
  uint64_t seq = 0, ack = 0;
  absl::StatusOr<bool> header = picos::internal::ReadBatchHeader(*batch, &seq, &ack);
  if (!header.ok()) {
    Fail(header.status());
    return;  // kDataLoss: the connection would close
  }
  for (size_t i = *header ? 1 : 0; i < batch->size(); ++i) {
    absl::StatusOr<picos::internal::Frame> frame = picos::internal::ReadFrame(*batch, i);
    if (!frame.ok()) {
      Fail(frame.status());
      if (frame.status().code() == absl::StatusCode::kDataLoss) return;  // the connection would close
      continue;
    }
    // What the dispatcher reads first of every frame.
    const picos::Value* op = frame->value.Find("op");
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
