#include "core/io/io_internal.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"

namespace picos {

namespace internal {

Deadline::Deadline(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return;
  clock_ = Scheduler::Current();
  PICOS_ASSERT(clock_ != nullptr);  // a finite deadline is measured on a scheduler's clock
  const int64_t now = clock_->NowNs();
  if (timeout <= absl::ZeroDuration()) {
    at_ns_ = now;
    return;
  }
  // Saturates: a timeout of centuries is a deadline that never passes.
  const int64_t ns = absl::ToInt64Nanoseconds(timeout);
  at_ns_ = ns >= kNever - now ? kNever : now + ns;
}

absl::Duration Deadline::Remaining() const {
  if (at_ns_ == kNever) return absl::InfiniteDuration();
  const int64_t left = at_ns_ - clock_->NowNs();
  return left <= 0 ? absl::ZeroDuration() : absl::Nanoseconds(left);
}

absl::Status SlotAwaiter::await_resume() {
  TaskCore* c = t_current_task;
  if (InterruptPending(c)) return TakeInterrupt(c);
  if (done_ != nullptr) {
    if (*done_) return absl::OkStatus();
    // Not done and not interrupted: only the timer can have woken it.
    PICOS_ASSERT(c->wake == kWakeTimeout);
  } else if (c->wake == kWakeEvent) {
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError("I/O timed out");
}

}  // namespace internal

}  // namespace picos
