// Synchronization between the tasks of one scheduler (pycos Lock, RLock,
// Condition, Event, Semaphore, BoundedSemaphore): cooperative, no OS locks.
//
// Tasks of one scheduler never run at the same time, so these are needed
// only to hold something across a co_await. Every wait is first come, first
// served and may have a timeout:
//
//   picos::Lock lock;
//   picos::Task<absl::Status> Update() {
//     absl::Status s = co_await lock.Acquire(absl::Seconds(1));
//     if (!s.ok()) co_return s;          // kDeadlineExceeded, kCancelled, ...
//     picos::LockGuard guard(lock);      // releases at scope end
//     co_await WriteSomething();
//     co_return absl::OkStatus();
//   }
//
// Rules common to all of them:
//  * An object belongs to the tasks of one scheduler; use it only from them.
//  * A wait gives OK, kDeadlineExceeded when its timeout passes (nothing
//    acquired), or the interrupt: kCancelled when the task is terminated,
//    the error given to Throw().
//  * Hand-off: a release gives the lock or unit straight to the first task
//    still waiting, so a late comer cannot overtake it. A waiter that timed
//    out, was interrupted or ended is skipped: it holds nothing, and a
//    task interrupted after being handed something gives it back at once.
//  * Releasing what the task does not hold, or a BoundedSemaphore beyond its
//    initial value, is kFailedPrecondition and changes nothing.
//  * Nothing here suspends except the co_await of Acquire/Wait.
#ifndef PICOS_CORE_KERNEL_SYNC_H_
#define PICOS_CORE_KERNEL_SYNC_H_

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/kernel/handles.h"
#include "core/kernel/task.h"
#include "core/kernel/task_internal.h"

namespace picos {

namespace internal {

// A FIFO of waiting tasks. Stale entries (waiters that timed out or were
// interrupted) are skipped when waking and swept out as the queue grows, so
// its size stays within twice the live waiters (plus a constant).
class WaitQueue {
 public:
  // Adds the current wait of `c` (after Block()).
  void Push(TaskCore* c);
  // Wakes the first task still waiting here with kWakeEvent; gives it, or
  // null if none waits.
  TaskCore* WakeOne();
  // Wakes every task still waiting; gives how many.
  size_t WakeAll();
  bool empty() const { return head_ == q_.size(); }

 private:
  void Sweep();
  std::vector<WaitToken> q_;
  size_t head_ = 0;
  size_t sweep_at_ = 64;
};

// The awaiter behind every Acquire/Wait here: asks its primitive to take
// what it needs now (TryTake), or queues; on wake-up knows whether it was
// handed what it waited for (kWakeEvent).
template <typename Prim>
class SyncAwaiter {
 public:
  SyncAwaiter(Prim* p, absl::Duration timeout)
      : p_(p), timeout_ns_(absl::ToInt64Nanoseconds(timeout)) {}
  bool await_ready() {
    TaskCore* c = CurrentTaskOrDie("a sync primitive's wait");
    if (InterruptPending(c)) return true;
    taken_ = p_->TryTake(c);
    return taken_ || timeout_ns_ <= 0;
  }
  void await_suspend(std::coroutine_handle<> h) {
    TaskCore* c = t_current_task;
    Block(c, h, TaskState::kWaiting, absl::Nanoseconds(timeout_ns_));
    p_->waiters_.Push(c);
    suspended_ = true;
  }
  absl::Status await_resume() {
    TaskCore* c = t_current_task;
    bool handed = taken_ || (suspended_ && c->wake == kWakeEvent);
    if (InterruptPending(c)) {
      // Handed the lock (or unit, or notice) and interrupted before it ran:
      // pass it on, so nothing is lost and a dying task holds nothing.
      if (handed) p_->GiveBack(c);
      interrupted_ = true;
      return TakeInterrupt(c);
    }
    if (handed) return absl::OkStatus();
    return p_->TimedOut();
  }
  // After the co_await: true if it gave an interrupt (kCancelled, thrown).
  bool interrupted() const { return interrupted_; }

 private:
  Prim* p_;
  int64_t timeout_ns_;
  bool taken_ = false;
  bool suspended_ = false;
  bool interrupted_ = false;
};

}  // namespace internal

// A mutual-exclusion lock owned by a task (pycos Lock). Not re-entrant: a
// task acquiring a lock it holds waits forever (or until its timeout).
class Lock {
 public:
  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  // co_await from a task: OK once the task holds the lock.
  internal::SyncAwaiter<Lock> Acquire(absl::Duration timeout = absl::InfiniteDuration()) {
    return {this, timeout};
  }
  // Takes the lock if free, without waiting. False outside a task.
  bool TryAcquire();
  // Gives the lock to the first waiter, or frees it. kFailedPrecondition if
  // the calling task does not hold it.
  absl::Status Release();
  bool locked() const { return owner_.valid(); }
  // True if the running task holds it.
  bool HeldByCurrentTask() const;

 private:
  friend class internal::SyncAwaiter<Lock>;
  bool TryTake(internal::TaskCore* c);
  void GiveBack(internal::TaskCore* c);
  absl::Status TimedOut() const;
  void HandOff();

  TaskRef owner_;
  internal::WaitQueue waiters_;
};

// A lock its owner may acquire again; released when Release() has been
// called as many times as Acquire() (pycos RLock).
class RLock {
 public:
  RLock() = default;
  RLock(const RLock&) = delete;
  RLock& operator=(const RLock&) = delete;

  internal::SyncAwaiter<RLock> Acquire(absl::Duration timeout = absl::InfiniteDuration()) {
    return {this, timeout};
  }
  bool TryAcquire();
  // One level less; at zero the lock passes on. kFailedPrecondition if the
  // calling task does not hold it.
  absl::Status Release();
  bool locked() const { return owner_.valid(); }
  bool HeldByCurrentTask() const;
  // How many times the owner holds it (0 when free).
  uint32_t depth() const { return depth_; }

 private:
  friend class internal::SyncAwaiter<RLock>;
  friend class Condition;
  bool TryTake(internal::TaskCore* c);
  void GiveBack(internal::TaskCore* c);
  absl::Status TimedOut() const;
  void HandOff();

  TaskRef owner_;
  uint32_t depth_ = 0;
  internal::WaitQueue waiters_;
};

// A condition variable with its own re-entrant lock (pycos Condition).
//
//   co_await cond.Acquire();
//   while (!ready) {
//     absl::Status s = co_await cond.Wait(absl::Seconds(1));
//     if (!s.ok()) ...        // see Wait for who holds the lock then
//   }
//   cond.Release();
class Condition {
 public:
  Condition() = default;
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  internal::SyncAwaiter<RLock> Acquire(absl::Duration timeout = absl::InfiniteDuration()) {
    return lock_.Acquire(timeout);
  }
  bool TryAcquire() { return lock_.TryAcquire(); }
  absl::Status Release() { return lock_.Release(); }
  bool HeldByCurrentTask() const { return lock_.HeldByCurrentTask(); }

  // co_await from a task holding the lock: releases it (all levels), waits
  // for Notify or `timeout`, then takes the lock back (however long that
  // takes) at the depth it had. OK if notified, kDeadlineExceeded if timed
  // out — both with the lock held again. On an interrupt (kCancelled or a
  // thrown error) it returns at once WITHOUT the lock, so that a task being
  // terminated never waits for it. kFailedPrecondition (nothing changed) if
  // the task does not hold the lock. A sub-call: costs one frame allocation.
  Task<absl::Status> Wait(absl::Duration timeout = absl::InfiniteDuration());

  // Wakes the first `n` waiting tasks (those still waiting). Needs no lock
  // here (pycos requires it; it cannot be wrong in one thread).
  void Notify(size_t n = 1);
  void NotifyAll();

 private:
  friend class internal::SyncAwaiter<Condition>;
  bool TryTake(internal::TaskCore*) { return false; }
  void GiveBack(internal::TaskCore*) { Notify(1); }
  absl::Status TimedOut() const { return absl::DeadlineExceededError("condition wait timed out"); }

  RLock lock_;
  internal::WaitQueue waiters_;
};

// A flag tasks wait for (pycos Event). Set() wakes every waiter; it stays
// set (and Wait() returns at once) until Clear().
class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  internal::SyncAwaiter<Event> Wait(absl::Duration timeout = absl::InfiniteDuration()) {
    return {this, timeout};
  }
  void Set();
  void Clear() { set_ = false; }
  bool is_set() const { return set_; }

 private:
  friend class internal::SyncAwaiter<Event>;
  bool TryTake(internal::TaskCore*) const { return set_; }
  void GiveBack(internal::TaskCore*) {}  // nothing was taken
  absl::Status TimedOut() const { return absl::DeadlineExceededError("event wait timed out"); }

  bool set_ = false;
  internal::WaitQueue waiters_;
};

// A counter of units (pycos Semaphore): Acquire takes one, waiting while
// there is none; Release returns one. A plain Semaphore may be released
// beyond its initial value; a BoundedSemaphore may not.
class Semaphore {
 public:
  explicit Semaphore(uint64_t value = 1) : value_(value), limit_(UINT64_MAX) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  internal::SyncAwaiter<Semaphore> Acquire(absl::Duration timeout = absl::InfiniteDuration()) {
    return {this, timeout};
  }
  bool TryAcquire();
  // Gives a unit to the first waiter, or back to the count. Any code of the
  // scheduler's thread may release (not only an acquirer). For a
  // BoundedSemaphore, kFailedPrecondition beyond the initial value.
  absl::Status Release();
  // Units free now.
  uint64_t value() const { return value_; }

 protected:
  Semaphore(uint64_t value, uint64_t limit) : value_(value), limit_(limit) {}

 private:
  friend class internal::SyncAwaiter<Semaphore>;
  bool TryTake(internal::TaskCore*);
  void GiveBack(internal::TaskCore*) { (void)Release(); }
  absl::Status TimedOut() const {
    return absl::DeadlineExceededError("semaphore acquire timed out");
  }

  uint64_t value_;
  const uint64_t limit_;  // most units Release() may bring value_ to
  internal::WaitQueue waiters_;
};

// A Semaphore whose Release() beyond the initial value is an error.
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(uint64_t value = 1) : Semaphore(value, value) {}
};

// Releases a held Lock, RLock or Condition (one level) at scope end, if the
// running task still holds it then (a Condition::Wait interrupted returns
// without it). Construct it after the Acquire succeeded.
template <typename L>
class [[nodiscard]] LockGuard {
 public:
  explicit LockGuard(L& lock) : lock_(&lock) {}
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;
  ~LockGuard() {
    if (lock_ && lock_->HeldByCurrentTask()) (void)lock_->Release();
  }
  // Forgets the lock: the guard will not release it.
  void Dismiss() { lock_ = nullptr; }

 private:
  L* lock_;
};

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_SYNC_H_
