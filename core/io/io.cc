#include "core/io/io.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/io/io_internal.h"
#include "core/kernel/status.h"

namespace picos {

absl::Status ValidateReadSize(size_t max_bytes) {
  if (max_bytes == 0 || max_bytes > kMaxReadChunk) {
    return absl::InvalidArgumentError(
        absl::StrCat("read size ", max_bytes, " is outside [1, ", kMaxReadChunk, "]"));
  }
  return absl::OkStatus();
}

BufferedReader::BufferedReader(Reader* source, size_t chunk)
    : source_(source), chunk_(std::clamp<size_t>(chunk, 1, kMaxReadChunk)) {}

std::string BufferedReader::Take(size_t n) {
  n = std::min(n, buffered());
  std::string out = buffer_.substr(head_, n);
  head_ += n;
  // Compact once the consumed prefix dominates, so the buffer stays bounded
  // by what is unread plus one chunk.
  if (head_ == buffer_.size()) {
    buffer_.clear();
    head_ = 0;
  } else if (head_ > buffer_.size() / 2) {
    buffer_.erase(0, head_);
    head_ = 0;
  }
  return out;
}

Task<absl::Status> BufferedReader::Fill(absl::Duration timeout) {
  if (eof_) co_return absl::OkStatus();
  absl::StatusOr<std::string> more = co_await source_->Read(chunk_, timeout);
  if (!more.ok()) co_return more.status();
  if (more->empty()) {
    eof_ = true;
  } else {
    buffer_.append(*more);
  }
  co_return absl::OkStatus();
}

Task<absl::Status> BufferedReader::Prefetch(size_t n, absl::Duration timeout) {
  internal::Deadline deadline(timeout);
  // Each Fill buffers at least one more byte, reaches the end, or fails (its
  // deadline included): the loop ends.
  while (buffered() < n && !eof_) {
    PICOS_CO_RETURN_IF_ERROR(co_await Fill(deadline.Remaining()));
  }
  co_return absl::OkStatus();
}

Task<absl::StatusOr<std::string>> BufferedReader::Read(size_t max_bytes, absl::Duration timeout) {
  PICOS_CO_RETURN_IF_ERROR(ValidateReadSize(max_bytes));
  if (buffered() > 0) co_return Take(max_bytes);
  if (eof_) co_return std::string();
  absl::StatusOr<std::string> r = co_await source_->Read(max_bytes, timeout);
  if (r.ok() && r->empty()) eof_ = true;
  co_return r;
}

Task<absl::StatusOr<std::string>> BufferedReader::ReadLine(size_t max_length,
                                                           absl::Duration timeout) {
  PICOS_CO_RETURN_IF_ERROR(ValidateReadSize(max_length));
  internal::Deadline deadline(timeout);
  size_t scanned = 0;  // bytes already searched for '\n'
  // Each round reads at least one byte or ends the call (Fill gives bytes,
  // the end of the stream or an error): at most max_length rounds.
  for (;;) {
    size_t limit = std::min(buffered(), max_length);
    size_t pos = buffer_.find('\n', head_ + scanned);
    if (pos != std::string::npos && pos - head_ < limit) co_return Take(pos - head_ + 1);
    scanned = limit;
    if (buffered() >= max_length) {
      co_return absl::ResourceExhaustedError(
          absl::StrCat("line longer than ", max_length, " bytes"));
    }
    if (eof_) co_return Take(buffered());
    PICOS_CO_RETURN_IF_ERROR(co_await Fill(deadline.Remaining()));
  }
}

Task<absl::StatusOr<std::string>> BufferedReader::ReadExactly(size_t n, absl::Duration timeout) {
  PICOS_CO_RETURN_IF_ERROR(ValidateReadSize(n));
  internal::Deadline deadline(timeout);
  for (;;) {  // as ReadLine: each round reads a byte or ends the call
    if (buffered() >= n) co_return Take(n);
    if (eof_) {
      co_return absl::OutOfRangeError(
          absl::StrCat("stream ended after ", buffered(), " of ", n, " bytes"));
    }
    PICOS_CO_RETURN_IF_ERROR(co_await Fill(deadline.Remaining()));
  }
}

Task<absl::StatusOr<std::string>> BufferedReader::ReadAll(size_t limit, absl::Duration timeout) {
  internal::Deadline deadline(timeout);
  for (;;) {  // as ReadLine: each round reads a byte or ends the call
    if (buffered() > limit) {
      co_return absl::ResourceExhaustedError(
          absl::StrCat("stream longer than the limit of ", limit, " bytes"));
    }
    if (eof_) co_return Take(buffered());
    PICOS_CO_RETURN_IF_ERROR(co_await Fill(deadline.Remaining()));
  }
}

}  // namespace picos
