#include "core/remote/frames_internal.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace picos::internal {

absl::StatusOr<Value> DecodeBatch(std::string_view payload, const CodecOptions& codec) {
  absl::StatusOr<Value> batch = DecodeValue(payload, codec);
  if (!batch.ok()) {
    if (absl::IsInvalidArgument(batch.status()) || absl::IsResourceExhausted(batch.status())) {
      return absl::DataLossError(absl::StrCat("malformed frame: ", batch.status().message()));
    }
    return batch.status();
  }
  if (!batch->is_list()) return absl::DataLossError("malformed frame: not a list of frames");
  return batch;
}

}  // namespace picos::internal
