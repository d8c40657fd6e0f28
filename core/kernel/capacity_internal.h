// Capacity: a count of units bounded by a limit, taken by any thread, with
// tasks of any scheduler waiting (with a timeout) for room. A bounded
// mailbox (SpawnOptions::mailbox_limit) is one; a remote peer's send window
// is meant to be another, so the wait lives here and not in the mailbox.
//
//   if (!room.TryTake()) {
//     absl::Status s = co_await room.WaitForRoom(absl::Seconds(1));  // then retry
//   }
//   ...                      // the unit is used: a message is queued
//   room.Give();             // by whoever consumes it, on any thread
//
// A wake means "there may be room now", not "a unit is yours": the woken
// task takes with TryTake() again, and waits again if another got there
// first. So no unit is ever lost to a waiter that timed out as it was woken
// (it passes the wake on instead). Not part of picos's API: core packages
// only (//core/kernel:internal).
#ifndef PICOS_CORE_KERNEL_CAPACITY_INTERNAL_H_
#define PICOS_CORE_KERNEL_CAPACITY_INTERNAL_H_

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <deque>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/kernel/proxy.h"
#include "core/kernel/task_internal.h"

namespace picos::internal {

class RoomAwaiter;

class Capacity {
 public:
  explicit Capacity(uint32_t limit) : limit_(limit) {}
  Capacity(const Capacity&) = delete;
  Capacity& operator=(const Capacity&) = delete;

  uint32_t limit() const { return limit_; }
  // Units taken and not given back. Any thread (a recent value).
  uint32_t used() const { return used_.load(std::memory_order_relaxed); }

  // Takes one unit if there is room. Any thread; never blocks.
  bool TryTake() {
    uint32_t u = used_.load(std::memory_order_relaxed);
    while (u < limit_) {
      if (used_.compare_exchange_weak(u, u + 1, std::memory_order_acq_rel)) return true;
    }
    return false;
  }

  // Gives back `n` units and wakes the longest waiting task. Any thread.
  void Give(uint32_t n = 1);

  // Wakes every waiter (the owner has gone: their retry finds out). Any
  // thread.
  void WakeAll();

  // Awaitable from a task: OK once there may be room (take it with
  // TryTake(), and wait again if that fails); kDeadlineExceeded once
  // `timeout` passes; the interrupt's status if the task is terminated or
  // thrown into. Does not take a unit. The Capacity must outlive the wait.
  RoomAwaiter WaitForRoom(absl::Duration timeout);

 private:
  friend class RoomAwaiter;
  // Queues `done` (moving it) unless there is room now: then false, and
  // `done` is left with the caller.
  bool AddWaiter(Completer& done);
  // A waiter that gave up may have taken a wake meant for room: pass it on.
  void PassOn();

  const uint32_t limit_;
  std::atomic<uint32_t> used_{0};
  absl::Mutex mu_;
  std::deque<Completer> waiters_ ABSL_GUARDED_BY(mu_);
};

class RoomAwaiter {
 public:
  RoomAwaiter(Capacity* room, absl::Duration timeout)
      : room_(room), timeout_ns_(absl::ToInt64Nanoseconds(timeout)) {}
  RoomAwaiter(const RoomAwaiter&) = delete;
  RoomAwaiter& operator=(const RoomAwaiter&) = delete;
  bool await_ready() const noexcept;
  void await_suspend(std::coroutine_handle<> h);
  absl::Status await_resume();
  // After the wait: its status is the interrupt's (whatever its code).
  bool interrupted() const { return interrupted_; }

 private:
  Capacity* room_;
  int64_t timeout_ns_;
  CompletionWait wait_;
  bool interrupted_ = false;
};

inline RoomAwaiter Capacity::WaitForRoom(absl::Duration timeout) {
  return RoomAwaiter(this, timeout);
}

}  // namespace picos::internal

#endif  // PICOS_CORE_KERNEL_CAPACITY_INTERNAL_H_
