// The decoder of a batch of frames (core/remote/node.cc lists the frames),
// as Node's reader runs it on each length-prefixed message that arrives
// after the handshake; here so that the fuzz target
// (testing/fuzz/frame_batch_fuzz.cc) runs the very same code.
//
//   picos::CodecOptions codec;  // the connection's handle codec and bound
//   absl::StatusOr<picos::Value> batch = picos::internal::DecodeBatch(payload, codec);
//   if (absl::IsDataLoss(batch.status())) { /* close the connection */ }
//
// Threads: any (the handle codec's own rules aside).
#ifndef PICOS_CORE_REMOTE_FRAMES_INTERNAL_H_
#define PICOS_CORE_REMOTE_FRAMES_INTERNAL_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "core/kernel/value.h"
#include "core/wire/value_codec.h"

namespace picos::internal {

// One batch: a Value list of frames (each should be a map with an "op";
// Node's dispatcher checks each field as it reads it). Errors:
//   kDataLoss  "malformed frame: ...": the bytes do not decode, exceed
//              codec's bounds, or are not a list. The connection is lost.
//   any other  the codec's error for a handle this version cannot name (a
//              third process): the batch is dropped, the connection stays.
absl::StatusOr<Value> DecodeBatch(std::string_view payload, const CodecOptions& codec);

}  // namespace picos::internal

#endif  // PICOS_CORE_REMOTE_FRAMES_INTERNAL_H_
