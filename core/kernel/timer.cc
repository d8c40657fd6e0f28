#include "core/kernel/timer.h"

#include <algorithm>

#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "core/kernel/task_internal.h"

namespace picos {

namespace {
// The clock of the scheduler's timer heap: the running scheduler's (which
// may be virtual). Outside any scheduler there is no clock to read: INT64_MIN
// (PeriodicTimer::kUnanchored).
int64_t NowNs() {
  Scheduler* s = Scheduler::Current();
  return s != nullptr ? s->NowNs() : INT64_MIN;
}
}  // namespace

PeriodicTimer::PeriodicTimer(absl::Duration period)
    : period_ns_(std::max<int64_t>(1000, absl::ToInt64Nanoseconds(period))) {
  Reset();
}

void PeriodicTimer::Reset() {
  int64_t now = NowNs();
  next_ns_ = now == kUnanchored ? kUnanchored : now + period_ns_;
}

void PeriodicTimer::Anchor(int64_t now_ns) {
  if (next_ns_ == kUnanchored) next_ns_ = now_ns + period_ns_;
}

int64_t PeriodicTimer::Take(int64_t now_ns) {
  if (now_ns < next_ns_) return 0;
  int64_t ticks = (now_ns - next_ns_) / period_ns_ + 1;
  next_ns_ += ticks * period_ns_;
  return ticks;
}

bool PeriodicAwaiter::await_ready() {
  internal::TaskCore* c = internal::CurrentTaskOrDie("PeriodicTimer::Next");
  int64_t now = NowNs();
  t_->Anchor(now);
  return internal::InterruptPending(c) || now >= t_->next_ns_;
}

void PeriodicAwaiter::await_suspend(std::coroutine_handle<> h) {
  // kWaiting with no wait list: only the timeout (or an interrupt) wakes it.
  internal::Block(internal::t_current_task, h, TaskState::kWaiting,
                  absl::Nanoseconds(std::max<int64_t>(0, t_->next_ns_ - NowNs())));
}

absl::StatusOr<int64_t> PeriodicAwaiter::await_resume() {
  internal::TaskCore* c = internal::t_current_task;
  if (internal::InterruptPending(c)) return internal::TakeInterrupt(c);
  // The heap's deadline was computed from a later clock reading than
  // next_ns_, so a timeout wake is always at or past the tick time.
  return std::max<int64_t>(1, t_->Take(NowNs()));
}

}  // namespace picos
