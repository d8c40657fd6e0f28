#include "core/remote/frames_internal.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace picos::internal {
namespace {

// The codec's refusals of the bytes themselves are a broken protocol; its
// other errors (a handle it cannot import) are not.
absl::Status Malformed(const absl::Status& s) {
  if (absl::IsInvalidArgument(s) || absl::IsResourceExhausted(s) || absl::IsOutOfRange(s)) {
    return absl::DataLossError(absl::StrCat("malformed frame: ", s.message()));
  }
  return s;
}

}  // namespace

absl::StatusOr<ListDecoder> OpenBatch(std::string_view payload, const CodecOptions& codec) {
  absl::StatusOr<ListDecoder> batch = ListDecoder::Open(payload, codec);
  if (!batch.ok()) return Malformed(batch.status());
  return batch;
}

absl::StatusOr<bool> ReadBatchHeader(ListDecoder& batch, uint64_t* seq, uint64_t* ack) {
  if (batch.size() == 0) return false;
  uint64_t first[1];
  Value second;
  absl::StatusOr<bool> positional = batch.DecodeUintsThenValue(0, absl::MakeSpan(first), &second);
  if (!positional.ok()) return Malformed(positional.status());
  if (!*positional) return false;
  absl::StatusOr<uint64_t> acked = FromValue<uint64_t>(second);
  if (!acked.ok()) {
    return absl::DataLossError(absl::StrCat("malformed batch header: [", first[0], ", ",
                                            second.DebugString().substr(0, 32), "]"));
  }
  *seq = first[0];
  *ack = *acked;
  return true;
}

absl::StatusOr<Frame> ReadFrame(ListDecoder& batch, size_t i) {
  Frame f;
  uint64_t fields[4];
  absl::StatusOr<bool> positional = batch.DecodeUintsThenValue(i, absl::MakeSpan(fields), &f.value);
  if (!positional.ok()) return Malformed(positional.status());
  if (*positional && fields[0] == kSendFrame) {
    f.is_send = true;
    f.task = fields[1];
    f.proof_hi = fields[2];
    f.proof_lo = fields[3];
    return f;
  }
  absl::StatusOr<Value> frame = batch.Decode(i);
  if (!frame.ok()) return Malformed(frame.status());
  f.value = std::move(*frame);
  return f;
}

}  // namespace picos::internal
