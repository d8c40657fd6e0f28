// The decoder of a batch of frames (core/remote/node.cc lists the frames),
// as Node's reader runs it on each length-prefixed message that arrives
// after the handshake; here so that the fuzz target
// (testing/fuzz/frame_batch_fuzz.cc) runs the very same code.
//
//   picos::CodecOptions codec;  // the connection's handle codec and bound
//   absl::StatusOr<picos::ListDecoder> batch = picos::internal::OpenBatch(payload, codec);
//   if (absl::IsDataLoss(batch.status())) { /* close the connection */ }
//   for (size_t i = 0; i < batch->size(); ++i) {
//     absl::StatusOr<picos::internal::Frame> f = picos::internal::ReadFrame(*batch, i);
//     ...
//   }
//
// Why frame by frame: a batch carries up to a few hundred frames, most of
// them sends to a task ([1, task, proof_hi, proof_lo, msg]); reading their
// fixed fields in place and decoding only the message spares a Value list
// per frame and one for the batch (their allocations were a fifth of a
// receiving peer's CPU in a flood, testing/bench/remote_bench.cc).
//
// Threads: any (the handle codec's own rules aside).
#ifndef PICOS_CORE_REMOTE_FRAMES_INTERNAL_H_
#define PICOS_CORE_REMOTE_FRAMES_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/kernel/value.h"
#include "core/wire/value_codec.h"

namespace picos::internal {

// The positional send frame's tag, its first element.
inline constexpr uint64_t kSendFrame = 1;

// One batch, opened: a list of frames. kDataLoss "malformed frame: ..." if
// the bytes do not decode as a message, exceed codec's bounds, or are not a
// list: the connection is lost.
absl::StatusOr<ListDecoder> OpenBatch(std::string_view payload, const CodecOptions& codec);

// One frame as the reader takes it.
struct Frame {
  // A send to a task of this process: [1, task, proof_hi, proof_lo, msg]
  // whose first four are unsigned integers, read in place; `value` is msg.
  // Otherwise `value` is the whole frame, decoded (a map with an "op", or a
  // positional frame the dispatcher refuses, saying why).
  bool is_send = false;
  uint64_t task = 0;
  uint64_t proof_hi = 0;
  uint64_t proof_lo = 0;
  Value value;
};

// A batch's header, its first element when it opens with one: [seq, ack],
// two unsigned integers (node.cc says what they count), read in place.
// True with both set; false (nothing read) when element 0 is something
// else: a ping, a select or a send, to be read with ReadFrame. kDataLoss
// "malformed frame: ..." as ReadFrame, and for [seq, x] whose x is no
// unsigned integer.
absl::StatusOr<bool> ReadBatchHeader(ListDecoder& batch, uint64_t* seq, uint64_t* ack);

// Frame i of `batch`. Errors:
//   kDataLoss  "malformed frame: ...": it does not decode or exceeds the
//              bounds. The connection is lost.
//   any other  the codec's error for a handle this version cannot name (a
//              third process): this frame is dropped, the connection stays.
absl::StatusOr<Frame> ReadFrame(ListDecoder& batch, size_t i);

}  // namespace picos::internal

#endif  // PICOS_CORE_REMOTE_FRAMES_INTERNAL_H_
