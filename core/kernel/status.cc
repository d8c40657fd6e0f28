#include "core/kernel/status.h"

#include <uv.h>

#include "absl/strings/str_cat.h"

namespace picos {

absl::Status UvStatus(int uv_code, const char* operation) {
  if (uv_code >= 0) return absl::OkStatus();
  // libuv's codes are -errno on Unix; Abseil maps errno to canonical codes,
  // and we keep libuv's message, which names the error precisely.
  absl::Status base = absl::ErrnoToStatus(-uv_code, "");
  absl::StatusCode code = base.code();
  switch (uv_code) {
    // A refused, reset or aborted connection is a peer that is not there:
    // a caller may retry, so these are kUnavailable whatever errno says.
    case UV_ECONNREFUSED:
    case UV_ECONNRESET:
    case UV_ECONNABORTED:
    case UV_EPIPE:
    case UV_ENOTCONN:
    case UV_EHOSTUNREACH:
    case UV_ENETUNREACH:
    case UV_EOF:
      code = absl::StatusCode::kUnavailable;
      break;
    case UV_ETIMEDOUT:
      code = absl::StatusCode::kDeadlineExceeded;
      break;
    case UV_ECANCELED:
      code = absl::StatusCode::kCancelled;
      break;
    default:
      break;
  }
  return absl::Status(code, absl::StrCat(operation, ": ", uv_strerror(uv_code)));
}

namespace internal {
void AssertFail(const char* file, int line, const char* expr) {
  std::fprintf(stderr, "picos: assertion failed at %s:%d: %s\n", file, line, expr);
  std::fflush(stderr);
  std::abort();
}
}  // namespace internal

}  // namespace picos
