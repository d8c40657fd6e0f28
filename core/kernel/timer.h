// Periodic timers. (Sleep and the timeout of every wait are in task.h; a
// timeout costs 16 bytes in the scheduler's timer heap while it is pending
// and is taken out in O(log n) when the wait ends first, so pending timeouts
// do not slow the loop.)
//
//   picos::PeriodicTimer tick(absl::Milliseconds(100));
//   for (;;) {
//     absl::StatusOr<int64_t> n = co_await tick.Next();
//     if (!n.ok()) co_return;          // terminated, or thrown into
//     if (*n > 1) ...                  // n - 1 ticks were missed while busy
//     Poll();
//   }
//
// Ticks fall at start + k * period (no drift: a late wake does not push the
// next tick later). Ticks missed while the task was busy are coalesced: the
// next Next() returns at once with how many tick times have passed since
// the previous one, and the timer goes on at the next tick time in the
// future — so a slow consumer never runs a burst of catch-up ticks.
//
// Ticks are on the scheduler's clock (Scheduler::NowNs), virtual under a
// VirtualClock (core/kernel/clock.h): a test of a one-second heartbeat over an hour
// runs in milliseconds. Made outside any scheduler's thread, a timer starts
// counting at its first Next().
//
// A PeriodicTimer belongs to one task (it holds no wait list); awaiting one
// from two tasks at once is a bug.
#ifndef PICOS_CORE_KERNEL_TIMER_H_
#define PICOS_CORE_KERNEL_TIMER_H_

#include <coroutine>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace picos {

class PeriodicTimer;

// co_await PeriodicTimer::Next(): the number of tick times passed (≥ 1).
class PeriodicAwaiter {
 public:
  explicit PeriodicAwaiter(PeriodicTimer* t) : t_(t) {}
  bool await_ready();
  void await_suspend(std::coroutine_handle<> h);
  absl::StatusOr<int64_t> await_resume();

 private:
  PeriodicTimer* t_;
};

class PeriodicTimer {
 public:
  // The first tick is one `period` from now. A period under a microsecond is
  // taken as one microsecond.
  explicit PeriodicTimer(absl::Duration period);

  // Awaitable from a task: waits for the next tick time and gives how many
  // tick times have passed since the previous Next() (1 unless ticks were
  // missed), or kCancelled / the thrown error if the task is interrupted
  // (the tick is not consumed then).
  PeriodicAwaiter Next() { return PeriodicAwaiter(this); }

  // Starts again: the next tick is one period from now (from the first
  // Next() when called outside any scheduler's thread).
  void Reset();

  absl::Duration period() const { return absl::Nanoseconds(period_ns_); }

 private:
  friend class PeriodicAwaiter;
  static constexpr int64_t kUnanchored = INT64_MIN;
  // Consumes the tick times passed by `now_ns`; 0 if none.
  int64_t Take(int64_t now_ns);
  // Starts counting at `now_ns` if the timer was made outside a scheduler.
  void Anchor(int64_t now_ns);

  int64_t period_ns_;
  // The next tick time, on the scheduler's clock (Scheduler::NowNs), or
  // kUnanchored until the first Next().
  int64_t next_ns_;
};

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_TIMER_H_
