// Status helpers for picos: the assertion macro, early-return macros for plain
// functions and for coroutines, and the mapping of libuv error codes.
//
// Errors that cross a public picos API are absl::Status / absl::StatusOr<T>.
// What each code means to a caller of picos:
//
//   kUnavailable        the peer, connection or task is gone or unreachable;
//                       retrying later, or elsewhere, may succeed.
//   kDeadlineExceeded   a wait reached its timeout; nothing was consumed.
//   kCancelled          the task was terminated, or its scheduler stopped;
//                       the task should clean up and return.
//   kFailedPrecondition the object is in the wrong state for the call (a task
//                       that has ended, resuming one that is not suspended);
//                       retrying the same call will not help.
//   kInvalidArgument    the input is malformed (bad URI, bad bytes); never retry.
//   kResourceExhausted  a bound was reached (queue, size, depth); retry after
//                       the load drops.
//   kNotFound           no task or channel by that name or handle.
//
// Minimal use:
//
//   absl::StatusOr<int> Parse(absl::string_view s);
//   absl::Status Use() {
//     PICOS_ASSIGN_OR_RETURN(int n, Parse("42"));
//     PICOS_RETURN_IF_ERROR(Check(n));
//     return absl::OkStatus();
//   }
//   picos::Task<absl::Status> UseInTask() {
//     PICOS_CO_ASSIGN_OR_RETURN(Value msg, co_await picos::Receive());
//     co_return absl::OkStatus();
//   }
#ifndef PICOS_CORE_KERNEL_STATUS_H_
#define PICOS_CORE_KERNEL_STATUS_H_

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace picos {

// Maps a negative libuv error code (-errno) to a status whose message names the
// operation: UvStatus(UV_ECONNREFUSED, "connect") is kUnavailable with
// "connect: connection refused". Zero and positive values are OK.
absl::Status UvStatus(int uv_code, const char* operation);

namespace internal {
[[noreturn]] void AssertFail(const char* file, int line, const char* expr);
}  // namespace internal

}  // namespace picos

// A broken invariant is a bug, not an error to report: abort with the place.
#define PICOS_ASSERT(cond)                                           \
  do {                                                               \
    if (__builtin_expect(!(cond), 0))                                \
      ::picos::internal::AssertFail(__FILE__, __LINE__, #cond);      \
  } while (0)

#define PICOS_STATUS_CONCAT_INNER_(a, b) a##b
#define PICOS_STATUS_CONCAT_(a, b) PICOS_STATUS_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function when it is not OK.
#define PICOS_RETURN_IF_ERROR(expr)              \
  do {                                           \
    ::absl::Status picos_status_ = (expr);       \
    if (!picos_status_.ok()) return picos_status_; \
  } while (0)

// `lhs = std::move(value)` when `rexpr` (a StatusOr) holds one, else returns
// its status from the enclosing function.
#define PICOS_ASSIGN_OR_RETURN(lhs, rexpr)                                     \
  PICOS_ASSIGN_OR_RETURN_IMPL_(PICOS_STATUS_CONCAT_(picos_so_, __LINE__), lhs, \
                               rexpr, return)

// The same two macros for coroutines, where `return` is not allowed.
#define PICOS_CO_RETURN_IF_ERROR(expr)              \
  do {                                              \
    ::absl::Status picos_status_ = (expr);          \
    if (!picos_status_.ok()) co_return picos_status_; \
  } while (0)

#define PICOS_CO_ASSIGN_OR_RETURN(lhs, rexpr)                                     \
  PICOS_ASSIGN_OR_RETURN_IMPL_(PICOS_STATUS_CONCAT_(picos_so_, __LINE__), lhs, \
                               rexpr, co_return)

#define PICOS_ASSIGN_OR_RETURN_IMPL_(so, lhs, rexpr, ret) \
  auto so = (rexpr);                                      \
  if (!so.ok()) ret std::move(so).status();               \
  lhs = std::move(so).value()

#endif  // PICOS_CORE_KERNEL_STATUS_H_
