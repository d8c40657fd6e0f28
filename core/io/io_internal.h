// Internals shared by picos's I/O objects (process pipes, files, UDP): how a
// task waits for a libuv callback. Not part of the public API.
//
// The rule that keeps this safe: libuv requests and handles never point into
// a coroutine frame (a terminated task's frame is destroyed while it waits).
// What a callback writes lives in heap state owned by the I/O object (freed in
// a close callback) or shared with the request; the task parks its WaitToken
// in a WaitSlot there, and the callback wakes it through the token, which is
// harmless when the task has gone or waits for something else.
#ifndef PICOS_CORE_IO_IO_INTERNAL_H_
#define PICOS_CORE_IO_IO_INTERNAL_H_

#include <coroutine>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/kernel/task_internal.h"

namespace picos::internal {

// Where one waiting task leaves its token. Scheduler thread only.
struct WaitSlot {
  WaitToken waiter;

  // Wakes the parked task, if any (the callback side calls this after
  // changing the state the task waits on).
  void Notify() {
    if (waiter.task) {
      WaitToken t = std::move(waiter);
      waiter = WaitToken();
      WakeToken(t, kWakeEvent);
    }
  }
};

// Suspends the running task until the slot is notified or `timeout` passes.
// `ready` short-cuts the wait when the condition already holds. Gives OK
// (ready or notified: the caller re-checks its condition), kDeadlineExceeded,
// or the interrupt (kCancelled / thrown error).
class SlotAwaiter {
 public:
  SlotAwaiter(WaitSlot* slot, bool ready, absl::Duration timeout)
      : slot_(slot), ready_(ready), timeout_(timeout) {}
  bool await_ready() const noexcept {
    return ready_ || InterruptPending(CurrentTaskOrDie("I/O wait"));
  }
  void await_suspend(std::coroutine_handle<> h) {
    TaskCore* c = t_current_task;
    Block(c, h, TaskState::kWaiting, timeout_ < absl::ZeroDuration() ? absl::ZeroDuration() : timeout_);
    slot_->waiter = TokenFor(c);
  }
  absl::Status await_resume() {
    TaskCore* c = t_current_task;
    if (InterruptPending(c)) return TakeInterrupt(c);
    if (ready_ || c->wake == kWakeEvent) return absl::OkStatus();
    return absl::DeadlineExceededError("I/O timed out");
  }

 private:
  WaitSlot* slot_;
  bool ready_;
  absl::Duration timeout_;
};

// A deadline from a timeout that may be infinite.
class Deadline {
 public:
  explicit Deadline(absl::Duration timeout)
      : at_(timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout) {}
  absl::Duration Remaining() const {
    if (at_ == absl::InfiniteFuture()) return absl::InfiniteDuration();
    absl::Duration d = at_ - absl::Now();
    return d < absl::ZeroDuration() ? absl::ZeroDuration() : d;
  }
  bool Expired() const { return at_ != absl::InfiniteFuture() && absl::Now() >= at_; }

 private:
  absl::Time at_;
};

}  // namespace picos::internal

#endif  // PICOS_CORE_IO_IO_INTERNAL_H_
