#include "core/io/framing.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/io/io_internal.h"
#include "core/kernel/status.h"

namespace picos {
namespace {

size_t Limit(const FramingOptions& options) {
  return std::min(options.max_message_size, kMaxFramePayload);
}

}  // namespace

Task<absl::Status> WriteMessage(Writer& out, std::string payload, absl::Duration timeout,
                                FramingOptions options) {
  if (payload.size() > Limit(options)) {
    co_return absl::ResourceExhaustedError(absl::StrCat(
        "message of ", payload.size(), " bytes exceeds the limit of ", Limit(options), " bytes"));
  }
  // One write of header and payload: the peer never sees a header alone
  // because this side stopped between two writes.
  uint32_t n = static_cast<uint32_t>(payload.size());
  std::string frame;
  frame.reserve(kFrameHeaderSize + payload.size());
  frame.push_back(static_cast<char>(n >> 24));
  frame.push_back(static_cast<char>(n >> 16));
  frame.push_back(static_cast<char>(n >> 8));
  frame.push_back(static_cast<char>(n));
  frame.append(payload);
  payload = std::string();
  co_return co_await out.Write(std::move(frame), timeout);
}

Task<absl::StatusOr<std::optional<std::string>>> ReadMessage(BufferedReader& in,
                                                             absl::Duration timeout,
                                                             FramingOptions options) {
  internal::Deadline deadline(timeout);
  // Nothing is taken from `in` until the whole frame is buffered, so a
  // timeout anywhere leaves the stream where it was.
  PICOS_CO_RETURN_IF_ERROR(co_await in.Prefetch(kFrameHeaderSize, deadline.Remaining()));
  if (in.buffered() < kFrameHeaderSize) {
    if (in.buffered() == 0) co_return std::optional<std::string>();
    co_return absl::DataLossError(absl::StrCat("the stream ended inside a message header (",
                                               in.buffered(), " of ", kFrameHeaderSize,
                                               " bytes)"));
  }
  std::string_view header = in.Peek().substr(0, kFrameHeaderSize);
  size_t n = (size_t{static_cast<uint8_t>(header[0])} << 24) |
             (size_t{static_cast<uint8_t>(header[1])} << 16) |
             (size_t{static_cast<uint8_t>(header[2])} << 8) | size_t{static_cast<uint8_t>(header[3])};
  if (n > Limit(options)) {
    // Checked before a byte of the payload is buffered. Say what the header
    // held: a peer speaking another protocol shows here ("GET ").
    co_return absl::ResourceExhaustedError(
        absl::StrCat("message of ", n, " bytes exceeds the limit of ", Limit(options),
                     " bytes (header \"", absl::CHexEscape(absl::string_view(header.data(), header.size())), "\")"));
  }
  PICOS_CO_RETURN_IF_ERROR(co_await in.Prefetch(kFrameHeaderSize + n, deadline.Remaining()));
  if (in.buffered() < kFrameHeaderSize + n) {
    co_return absl::DataLossError(absl::StrCat("the stream ended inside a message (",
                                               in.buffered() - kFrameHeaderSize, " of ", n,
                                               " bytes)"));
  }
  in.Take(kFrameHeaderSize);
  co_return std::optional<std::string>(in.Take(n));
}

}  // namespace picos
