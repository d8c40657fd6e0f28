// Synchronization between the tasks of one scheduler (pycos Lock, RLock,
// Condition, Event, Semaphore, BoundedSemaphore): cooperative, no OS locks.
//
// Tasks of one scheduler never run at the same time, so these are needed
// only to hold something across a co_await. Acquiring gives a guard that
// releases at the end of its scope (Seastar's get_units): there is no
// Release() to forget. Every wait is first come, first served and may have
// a timeout:
//
//   picos::Lock lock;
//   picos::Task<absl::Status> Update() {
//     absl::StatusOr<picos::LockGuard> held = co_await lock.Acquire(absl::Seconds(1));
//     if (!held.ok()) co_return held.status();   // kDeadlineExceeded, kCancelled, ...
//     co_await WriteSomething();                 // still held
//     co_return absl::OkStatus();                // released here
//   }
//
// Rules common to all of them:
//  * An object belongs to the tasks of one scheduler; use it only from them.
//    It must outlive the guards it gave.
//  * A wait gives the guard (OK for Event), kDeadlineExceeded when its
//    timeout passes (nothing acquired), or the interrupt: kCancelled when
//    the task is terminated, the error given to Throw().
//  * Hand-off: a release gives the lock or unit straight to the first task
//    still waiting, so a late comer cannot overtake it. A waiter that timed
//    out, was interrupted or ended is skipped: it holds nothing, and a
//    task interrupted after being handed something gives it back at once.
//  * A task that ends destroys its guards, so it releases what it held. A
//    guard moved somewhere that outlives its task (a member, a global) would
//    keep a Lock or RLock held by a task that no longer exists: instead the
//    lock is released, with a warning naming the task, when its holder
//    ends while others wait, or when the next task tries to take it.
//  * Releasing a BoundedSemaphore beyond its initial value is
//    kFailedPrecondition and changes nothing.
//  * Nothing here suspends except the co_await of Acquire/Wait.
#ifndef PICOS_CORE_KERNEL_SYNC_H_
#define PICOS_CORE_KERNEL_SYNC_H_

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/handles.h"
#include "core/kernel/task.h"
#include "core/kernel/task_internal.h"

namespace picos {

class Condition;
class LockGuard;

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
    p_->Waiting();
    suspended_ = true;
  }
  // What the primitive hands over (a guard, or OK for an Event), or why not.
  typename Prim::Granted await_resume() {
    TaskCore* c = t_current_task;
    bool handed = taken_ || (suspended_ && c->wake == kWakeEvent);
    if (InterruptPending(c)) {
      // Handed the lock (or unit, or notice) and interrupted before it ran:
      // pass it on, so nothing is lost and a dying task holds nothing.
      if (handed) p_->GiveBack(c);
      interrupted_ = true;
      return TakeInterrupt(c);
    }
    if (handed) return p_->Grant();
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

// The common part of Lock and RLock: a lock owned by a task.
class OwnedLock {
 public:
  OwnedLock(const OwnedLock&) = delete;
  OwnedLock& operator=(const OwnedLock&) = delete;

 protected:
  explicit OwnedLock(bool reentrant) : reentrant_(reentrant) {}
  ~OwnedLock();

  bool locked() const;
  bool HeldByCurrentTask() const;
  // Takes the lock for `c` if it is free (or held by `c`, re-entrant), first
  // freeing it from a holder that has ended.
  bool TryTake(TaskCore* c);
  // `c` was handed the lock and is interrupted before it ran: pass it on.
  void GiveBack(TaskCore* c);
  // A task starts waiting: make sure the holder's end frees the lock.
  void Waiting();
  // Gives the lock (all levels) to the first waiter, or frees it.
  void HandOff();
  // A guard of hold `hold` lets go of one level.
  void ReleaseHold(uint64_t hold);
  // The holder ended while holding: say so and pass the lock on.
  void ReleaseFromEndedHolder();
  LockGuard Grant();

  // Shared with the finish hook registered on a holder, which may run after
  // this lock is gone: the destructor clears `lock`.
  struct Watch {
    OwnedLock* lock;
  };

  friend class ::picos::LockGuard;
  friend class ::picos::Condition;

  TaskRef owner_;
  uint64_t hold_ = 0;       // which hold this is: guards of older holds are stale
  uint64_t next_hold_ = 0;  // hold numbers are never reused
  uint32_t depth_ = 0;      // levels held (1 for a Lock)
  const bool reentrant_;
  // Live tasks that carry a finish hook from this lock: one hook per task
  // however often it holds the lock, erased by the hook when the task ends.
  absl::flat_hash_set<TaskCore*> hooked_;
  std::shared_ptr<Watch> watch_;
  WaitQueue waiters_;
};

}  // namespace internal

// A held Lock, RLock or Condition lock (one level of it): what Acquire and
// TryAcquire give. Releases at the end of its scope, or at Release(). A
// default-constructed or moved-from guard, or one from a failed TryAcquire,
// holds nothing. Movable, not copyable; use it on the lock's scheduler.
class [[nodiscard]] LockGuard {
 public:
  LockGuard() = default;
  LockGuard(LockGuard&& other) noexcept
      : lock_(std::exchange(other.lock_, nullptr)), hold_(other.hold_) {}
  LockGuard& operator=(LockGuard&& other) noexcept {
    if (this != &other) {
      Release();
      lock_ = std::exchange(other.lock_, nullptr);
      hold_ = other.hold_;
    }
    return *this;
  }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;
  ~LockGuard() { Release(); }

  // Releases now: one level of an RLock, the lock passing to the first
  // waiter when it is free. Does nothing if this guard holds nothing, or if
  // what it held is gone (released from an ended holder, or a Condition
  // wait interrupted, which returns without the lock). Does not suspend.
  void Release();

  // True while this guard holds its lock.
  bool holds() const;
  explicit operator bool() const { return holds(); }

 private:
  friend class internal::OwnedLock;
  friend class Condition;
  LockGuard(internal::OwnedLock* lock, uint64_t hold) : lock_(lock), hold_(hold) {}
  // Lets go without releasing (Condition::Wait hands the hold back to the
  // caller's guards).
  void Forget() { lock_ = nullptr; }

  internal::OwnedLock* lock_ = nullptr;
  uint64_t hold_ = 0;
};

// A mutual-exclusion lock owned by a task (pycos Lock). Not re-entrant: a
// task acquiring a lock it holds waits until its timeout.
class Lock : private internal::OwnedLock {
 public:
  using Granted = absl::StatusOr<LockGuard>;

  Lock() : OwnedLock(/*reentrant=*/false) {}

  // co_await from a task: the guard once the task holds the lock.
  internal::SyncAwaiter<Lock> Acquire(absl::Duration timeout = absl::InfiniteDuration()) {
    return {this, timeout};
  }
  // Takes the lock if free, without waiting: a guard that holds nothing
  // otherwise, and outside a task.
  LockGuard TryAcquire();
  // Held by a task that has not ended.
  bool locked() const { return OwnedLock::locked(); }
  // True if the running task holds it.
  bool HeldByCurrentTask() const { return OwnedLock::HeldByCurrentTask(); }

 private:
  friend class internal::SyncAwaiter<Lock>;
  absl::Status TimedOut() const;
};

// A lock its owner may acquire again; free when every guard of its owner
// has been released (pycos RLock).
class RLock : private internal::OwnedLock {
 public:
  using Granted = absl::StatusOr<LockGuard>;

  RLock() : OwnedLock(/*reentrant=*/true) {}

  internal::SyncAwaiter<RLock> Acquire(absl::Duration timeout = absl::InfiniteDuration()) {
    return {this, timeout};
  }
  LockGuard TryAcquire();
  bool locked() const { return OwnedLock::locked(); }
  bool HeldByCurrentTask() const { return OwnedLock::HeldByCurrentTask(); }
  // How many guards the owner holds (0 when free).
  uint32_t depth() const { return locked() ? depth_ : 0; }

 private:
  friend class internal::SyncAwaiter<RLock>;
  friend class Condition;
  absl::Status TimedOut() const;
};

// A condition variable with its own re-entrant lock (pycos Condition).
//
//   absl::StatusOr<picos::LockGuard> held = co_await cond.Acquire();
//   if (!held.ok()) co_return held.status();
//   while (!ready) {
//     absl::Status s = co_await cond.Wait(absl::Seconds(1));
//     if (!s.ok()) ...        // see Wait for who holds the lock then
//   }
//   // `held` releases at the end of the scope
class Condition {
 public:
  using Granted = absl::Status;  // what a Wait's inner awaiter gives

  Condition() = default;
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  // The condition's lock, as RLock::Acquire / TryAcquire.
  internal::SyncAwaiter<RLock> Acquire(absl::Duration timeout = absl::InfiniteDuration()) {
    return lock_.Acquire(timeout);
  }
  LockGuard TryAcquire() { return lock_.TryAcquire(); }
  bool HeldByCurrentTask() const { return lock_.HeldByCurrentTask(); }

  // co_await from a task holding the lock: releases it (all levels), waits
  // for Notify or `timeout`, then takes the lock back (however long that
  // takes) at the depth it had, its guards holding it again. OK if
  // notified, kDeadlineExceeded if timed out — both with the lock held
  // again. On an interrupt (kCancelled or a thrown error) it returns at once
  // WITHOUT the lock (its guards then release nothing), so that a task being
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
  void Waiting() {}
  absl::Status Grant() { return absl::OkStatus(); }
  absl::Status TimedOut() const { return absl::DeadlineExceededError("condition wait timed out"); }

  RLock lock_;
  internal::WaitQueue waiters_;
};

// A flag tasks wait for (pycos Event). Set() wakes every waiter; it stays
// set (and Wait() returns at once) until Clear(). Waiting holds nothing, so
// there is no guard: Wait gives OK.
class Event {
 public:
  using Granted = absl::Status;

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
  void Waiting() {}
  absl::Status Grant() { return absl::OkStatus(); }
  absl::Status TimedOut() const { return absl::DeadlineExceededError("event wait timed out"); }

  bool set_ = false;
  internal::WaitQueue waiters_;
};

class Semaphore;

// Units taken from a Semaphore: what Acquire and TryAcquire give. Returns
// them at the end of its scope, or at Release(). Holds nothing when
// default-constructed, moved from, or from a failed TryAcquire. Movable,
// not copyable; use it on the semaphore's scheduler.
class [[nodiscard]] SemaphoreUnits {
 public:
  SemaphoreUnits() = default;
  SemaphoreUnits(SemaphoreUnits&& other) noexcept
      : sem_(std::exchange(other.sem_, nullptr)) {}
  SemaphoreUnits& operator=(SemaphoreUnits&& other) noexcept {
    if (this != &other) {
      Release();
      sem_ = std::exchange(other.sem_, nullptr);
    }
    return *this;
  }
  SemaphoreUnits(const SemaphoreUnits&) = delete;
  SemaphoreUnits& operator=(const SemaphoreUnits&) = delete;
  ~SemaphoreUnits() { Release(); }

  // Gives the unit back now (to the first waiter, or to the count).
  void Release();
  bool holds() const { return sem_ != nullptr; }
  explicit operator bool() const { return holds(); }

 private:
  friend class Semaphore;
  explicit SemaphoreUnits(Semaphore* sem) : sem_(sem) {}
  Semaphore* sem_ = nullptr;
};

// A counter of units (pycos Semaphore): Acquire takes one, waiting while
// there is none, and gives it as SemaphoreUnits that return it; Release
// adds one (signalling, without an Acquire). A plain Semaphore may be
// released beyond its initial value; a BoundedSemaphore may not.
class Semaphore {
 public:
  using Granted = absl::StatusOr<SemaphoreUnits>;

  explicit Semaphore(uint64_t value = 1) : value_(value), limit_(UINT64_MAX) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  internal::SyncAwaiter<Semaphore> Acquire(absl::Duration timeout = absl::InfiniteDuration()) {
    return {this, timeout};
  }
  // A unit if one is free now; units that hold nothing otherwise.
  SemaphoreUnits TryAcquire();
  // Gives a unit to the first waiter, or to the count: what a signalling
  // side calls (any code of the scheduler's thread, not only an acquirer).
  // For a BoundedSemaphore, kFailedPrecondition beyond the initial value.
  absl::Status Release();
  // Units free now.
  uint64_t value() const { return value_; }

 protected:
  Semaphore(uint64_t value, uint64_t limit) : value_(value), limit_(limit) {}

 private:
  friend class internal::SyncAwaiter<Semaphore>;
  bool TryTake(internal::TaskCore*);
  void GiveBack(internal::TaskCore*) { (void)Release(); }
  void Waiting() {}
  SemaphoreUnits Grant() { return SemaphoreUnits(this); }
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

inline void SemaphoreUnits::Release() {
  if (Semaphore* s = std::exchange(sem_, nullptr)) (void)s->Release();
}

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_SYNC_H_
