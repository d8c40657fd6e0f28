#include "core/kernel/capacity_internal.h"

#include <utility>
#include <vector>

namespace picos::internal {

void CapacityDeleter::operator()(Capacity* c) const { delete c; }

void Capacity::Give(uint32_t n) {
  Completer wake;
  {
    // Under the lock, so that a task deciding to wait (AddWaiter) either
    // sees the room or is queued before it is looked for.
    absl::MutexLock lock(&mu_);
    used_.fetch_sub(n, std::memory_order_acq_rel);
    while (!waiters_.empty() && !wake) {
      wake = std::move(waiters_.front());
      waiters_.pop_front();
      if (wake.abandoned()) wake = Completer();
    }
  }
  // Outside the lock: completing posts to the waiter's scheduler.
  if (wake) wake.Complete(Value());
}

void Capacity::WakeAll() {
  std::deque<Completer> all;
  {
    absl::MutexLock lock(&mu_);
    all.swap(waiters_);
  }
  for (Completer& c : all) c.Complete(Value());
}

bool Capacity::AddWaiter(Completer& done) {
  absl::MutexLock lock(&mu_);
  if (used_.load(std::memory_order_acquire) < limit_) return false;
  waiters_.push_back(std::move(done));
  return true;
}

void Capacity::PassOn() {
  Completer wake;
  {
    absl::MutexLock lock(&mu_);
    if (used_.load(std::memory_order_acquire) >= limit_) return;
    while (!waiters_.empty() && !wake) {
      wake = std::move(waiters_.front());
      waiters_.pop_front();
      if (wake.abandoned()) wake = Completer();
    }
  }
  if (wake) wake.Complete(Value());
}

bool RoomAwaiter::await_ready() const noexcept {
  TaskCore* c = CurrentTaskOrDie("WaitForRoom");
  return InterruptPending(c) || room_->used() < room_->limit();
}

void RoomAwaiter::await_suspend(std::coroutine_handle<> h) {
  TaskCore* c = t_current_task;
  Block(c, h, TaskState::kWaiting, absl::Nanoseconds(timeout_ns_));
  Completer done = wait_.Start(c);
  // Room appeared since await_ready: complete at once, which queues this
  // task to run again (as a Join of a task that has just ended does).
  if (!room_->AddWaiter(done)) done.Complete(Value());
}

absl::Status RoomAwaiter::await_resume() {
  TaskCore* c = t_current_task;
  std::optional<absl::StatusOr<Value>> woken = wait_.Take();
  if (InterruptPending(c)) {
    room_->PassOn();  // a wake it had is not used
    interrupted_ = true;
    return TakeInterrupt(c);
  }
  if (woken || room_->used() < room_->limit()) return absl::OkStatus();
  room_->PassOn();
  return absl::DeadlineExceededError("no room before the timeout");
}

}  // namespace picos::internal
