#include "core/io/stream.h"

#include <algorithm>
#include <string>
#include <utility>

#include "core/kernel/status.h"

namespace picos {

Task<absl::StatusOr<std::string>> Stream::Read(size_t max_bytes, absl::Duration timeout) {
  PICOS_CO_RETURN_IF_ERROR(ValidateReadSize(max_bytes));
  // Read into a buffer sized for what is likely to come, not for the most
  // the caller accepts: a 16 MiB max must not cost 16 MiB per call.
  std::string out(std::min<size_t>(max_bytes, 64 * 1024), '\0');
  absl::StatusOr<size_t> n = co_await ReadSome(out.data(), 1, out.size(), timeout);
  if (!n.ok()) co_return n.status();
  out.resize(*n);
  co_return out;
}

Task<absl::Status> Stream::WriteFrom(std::string* buffer, absl::Duration timeout) {
  std::string data = std::move(*buffer);
  buffer->clear();
  co_return co_await Write(std::move(data), timeout);
}

}  // namespace picos
