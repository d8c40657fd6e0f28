#include "core/io/framing.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/io/io_internal.h"
#include "core/kernel/status.h"

namespace picos {
namespace {

// FrameReader's first buffer: what a connection that carries only small
// messages (pings, requests) keeps for its life; a flood grows it to its
// messages' size.
constexpr size_t kFirstCapacity = 4 << 10;
// A buffer grown past this for a large message is given back once that
// message is consumed and nothing else is buffered: a connection that once
// carried a message of many megabytes does not keep them for good. Batches
// of a flood stay below it, so a busy connection keeps its buffer.
constexpr size_t kKeepCapacity = 1 << 20;

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

FrameReader::FrameReader(Stream* source, FramingOptions options)
    : source_(source), max_(Limit(options)) {}

void FrameReader::Reserve(size_t need) {
  if (capacity_ - head_ >= need) return;
  const size_t have = tail_ - head_;
  if (capacity_ >= need) {
    std::memmove(storage_.get(), reinterpret_cast<char*>(storage_.get()) + head_, have);
  } else {
    // Doubling (from kFirstCapacity), so a message costs O(1) moves of
    // each byte, up to the longest frame accepted (`need` is at most that,
    // checked before).
    size_t bytes = std::max(need, std::min(std::max<size_t>(2 * capacity_, kFirstCapacity), kFrameHeaderSize + max_));
    bytes = (bytes + 7) / 8 * 8;
    std::unique_ptr<uint64_t[]> bigger(new uint64_t[bytes / 8]);
    if (have > 0) std::memcpy(bigger.get(), reinterpret_cast<char*>(storage_.get()) + head_, have);
    storage_ = std::move(bigger);
    capacity_ = bytes;
  }
  head_ = 0;
  tail_ = have;
}

Task<absl::Status> FrameReader::Fill(size_t need, absl::Duration timeout) {
  Reserve(need);
  internal::Deadline deadline(timeout);
  char* base = reinterpret_cast<char*>(storage_.get());
  while (tail_ - head_ < need) {
    absl::StatusOr<size_t> n =
        co_await source_->ReadSome(base + tail_, need - (tail_ - head_), capacity_ - tail_, deadline.Remaining());
    if (!n.ok()) co_return n.status();
    if (*n == 0) break;  // the end of the stream
    tail_ += *n;
  }
  co_return absl::OkStatus();
}

Task<absl::StatusOr<std::optional<std::string_view>>> FrameReader::Next(absl::Duration timeout) {
  internal::Deadline deadline(timeout);
  head_ += pending_;
  pending_ = 0;
  if (head_ == tail_) {
    head_ = tail_ = 0;
    if (capacity_ > kKeepCapacity) {
      storage_.reset();
      capacity_ = 0;
    }
  }
  PICOS_CO_RETURN_IF_ERROR(co_await Fill(kFrameHeaderSize, deadline.Remaining()));
  if (tail_ - head_ < kFrameHeaderSize) {
    if (tail_ == head_) co_return std::optional<std::string_view>();
    co_return absl::DataLossError(absl::StrCat("the stream ended inside a message header (", tail_ - head_, " of ",
                                               kFrameHeaderSize, " bytes)"));
  }
  const auto* h = reinterpret_cast<const uint8_t*>(storage_.get()) + head_;
  const size_t n = (size_t{h[0]} << 24) | (size_t{h[1]} << 16) | (size_t{h[2]} << 8) | size_t{h[3]};
  if (n > max_) {
    co_return absl::ResourceExhaustedError(absl::StrCat(
        "message of ", n, " bytes exceeds the limit of ", max_, " bytes (header \"",
        absl::CHexEscape(absl::string_view(reinterpret_cast<const char*>(h), kFrameHeaderSize)), "\")"));
  }
  PICOS_CO_RETURN_IF_ERROR(co_await Fill(kFrameHeaderSize + n, deadline.Remaining()));
  if (tail_ - head_ < kFrameHeaderSize + n) {
    co_return absl::DataLossError(
        absl::StrCat("the stream ended inside a message (", tail_ - head_ - kFrameHeaderSize, " of ", n, " bytes)"));
  }
  char* base = reinterpret_cast<char*>(storage_.get());
  const size_t at = head_ + kFrameHeaderSize;
  // Aligned for Cap'n Proto: a payload that does not start on a word moves
  // back onto the word before it, into bytes already consumed (its own
  // header among them), so nothing buffered after it moves.
  const size_t aligned = at / 8 * 8;
  if (aligned != at) std::memmove(base + aligned, base + at, n);
  pending_ = kFrameHeaderSize + n;
  co_return std::optional<std::string_view>(std::string_view(base + aligned, n));
}

}  // namespace picos
