#include "core/kernel/sync.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernel/log.h"

namespace picos {

using internal::TaskCore;

namespace internal {

namespace {
bool StillWaits(const WaitToken& t) {
  const TaskCore* c = t.task.core();
  return c->wait_seq == t.seq && c->load_state() == TaskState::kWaiting &&
         !(c->flags & kFlagFinished);
}
}  // namespace

void WaitQueue::Push(TaskCore* c) {
  if (q_.size() >= sweep_at_) Sweep();
  q_.push_back(TokenFor(c));
}

void WaitQueue::Sweep() {
  // Drop what was already woken and what no longer waits here.
  q_.erase(q_.begin(), q_.begin() + static_cast<std::ptrdiff_t>(head_));
  head_ = 0;
  q_.erase(std::remove_if(q_.begin(), q_.end(), [](const WaitToken& t) { return !StillWaits(t); }),
           q_.end());
  sweep_at_ = std::max<size_t>(64, 2 * q_.size());
  if (q_.capacity() > 4 * sweep_at_) q_.shrink_to_fit();
}

TaskCore* WaitQueue::WakeOne() {
  while (head_ < q_.size()) {
    WaitToken t = std::move(q_[head_]);
    ++head_;
    if (head_ == q_.size()) {
      q_.clear();
      head_ = 0;
    }
    if (WakeToken(t, kWakeEvent)) return t.task.core();
  }
  return nullptr;
}

size_t WaitQueue::WakeAll() {
  std::vector<WaitToken> all;
  all.swap(q_);
  size_t from = std::exchange(head_, 0);
  size_t n = 0;
  for (size_t i = from; i < all.size(); ++i) {
    if (WakeToken(all[i], kWakeEvent)) ++n;
  }
  return n;
}

}  // namespace internal

namespace {

TaskRef RefTo(TaskCore* c) {
  internal::Ref(c);
  return TaskRef::Adopt(c);
}

bool Ended(const TaskRef& t) { return t.valid() && (t.core()->flags & internal::kFlagFinished); }

}  // namespace

// --- OwnedLock: Lock and RLock ---

namespace internal {

OwnedLock::~OwnedLock() {
  if (watch_) watch_->lock = nullptr;  // finish hooks still registered find nothing
}

bool OwnedLock::locked() const { return owner_.valid() && !Ended(owner_); }

bool OwnedLock::HeldByCurrentTask() const {
  return owner_.valid() && owner_.core() == t_current_task;
}

bool OwnedLock::TryTake(TaskCore* c) {
  // Nobody waited when the holder ended, so no hook freed the lock: the
  // next task to want it does.
  if (Ended(owner_)) ReleaseFromEndedHolder();
  if (!owner_.valid()) {
    owner_ = RefTo(c);
    hold_ = ++next_hold_;
    depth_ = 1;
    return true;
  }
  if (reentrant_ && owner_.core() == c) {
    ++depth_;
    return true;
  }
  return false;
}

void OwnedLock::GiveBack(TaskCore* c) {
  if (owner_.core() == c) HandOff();
}

void OwnedLock::Waiting() {
  // Only when someone waits, and once per holding task: an uncontended lock
  // costs nothing more, and a task that holds a contended lock a million
  // times carries one hook. The hook outlives neither the task nor, through
  // `watch_`, this lock.
  if (!owner_.valid()) return;
  TaskCore* holder = owner_.core();
  if (!hooked_.insert(holder).second) return;
  if (!watch_) watch_ = std::make_shared<Watch>(Watch{this});
  holder->Extra().finish_hooks.push_back([watch = watch_](TaskCore* ended) {
    OwnedLock* lock = watch->lock;
    if (lock == nullptr) return;
    lock->hooked_.erase(ended);
    // Its guards went with its frame before this ran: still the holder now
    // means a guard outlived the task.
    if (lock->owner_.core() == ended) lock->ReleaseFromEndedHolder();
  });
}

void OwnedLock::HandOff() {
  TaskCore* next = waiters_.WakeOne();
  if (next == nullptr) {
    owner_ = TaskRef();
    depth_ = 0;
    return;
  }
  owner_ = RefTo(next);
  hold_ = ++next_hold_;
  depth_ = 1;
  if (!waiters_.empty()) Waiting();  // the others now wait for `next`
}

void OwnedLock::ReleaseHold(uint64_t hold) {
  if (!owner_.valid() || hold != hold_) return;  // a stale guard holds nothing
  if (--depth_ == 0) HandOff();
}

void OwnedLock::ReleaseFromEndedHolder() {
  PICOS_LOG(warn,
            "{} held by task {}, which has ended, is released: a guard of it outlived its "
            "task (moved out of the task's frame)",
            reentrant_ ? "an RLock" : "a Lock", owner_.DebugString());
  HandOff();
}

LockGuard OwnedLock::Grant() { return LockGuard(this, hold_); }

}  // namespace internal

void LockGuard::Release() {
  if (internal::OwnedLock* lock = std::exchange(lock_, nullptr)) lock->ReleaseHold(hold_);
}

bool LockGuard::holds() const {
  return lock_ != nullptr && lock_->owner_.valid() && lock_->hold_ == hold_;
}

LockGuard Lock::TryAcquire() {
  TaskCore* c = internal::t_current_task;
  if (c == nullptr || !TryTake(c)) return LockGuard();
  return Grant();
}

absl::Status Lock::TimedOut() const { return absl::DeadlineExceededError("lock acquire timed out"); }

LockGuard RLock::TryAcquire() {
  TaskCore* c = internal::t_current_task;
  if (c == nullptr || !TryTake(c)) return LockGuard();
  return Grant();
}

absl::Status RLock::TimedOut() const {
  return absl::DeadlineExceededError("rlock acquire timed out");
}

// --- Condition ---

Task<absl::Status> Condition::Wait(absl::Duration timeout) {
  if (!lock_.HeldByCurrentTask()) {
    co_return absl::FailedPreconditionError("Condition::Wait by a task that does not hold its lock");
  }
  const uint32_t depth = lock_.depth_;
  const uint64_t hold = lock_.hold_;
  lock_.HandOff();  // all levels at once
  internal::SyncAwaiter<Condition> notified(this, timeout);
  absl::Status s = co_await notified;
  if (notified.interrupted()) co_return s;  // without the lock: see the header
  absl::StatusOr<LockGuard> relock = co_await lock_.Acquire();
  if (!relock.ok()) co_return relock.status();  // interrupted while taking it back: without it
  // The caller's guards hold it again: the depth and hold they knew.
  relock->Forget();
  lock_.depth_ = depth;
  lock_.hold_ = hold;
  co_return s;
}

void Condition::Notify(size_t n) {
  for (size_t i = 0; i < n && waiters_.WakeOne() != nullptr; ++i) {
  }
}

void Condition::NotifyAll() { waiters_.WakeAll(); }

// --- Event ---

void Event::Set() {
  set_ = true;
  waiters_.WakeAll();
}

// --- Semaphore ---

bool Semaphore::TryTake(TaskCore*) {
  if (value_ == 0) return false;
  --value_;
  return true;
}

SemaphoreUnits Semaphore::TryAcquire() {
  if (!TryTake(nullptr)) return SemaphoreUnits();
  return SemaphoreUnits(this);
}

absl::Status Semaphore::Release() {
  if (value_ >= limit_) {
    return absl::FailedPreconditionError(
        absl::StrCat("BoundedSemaphore released more often than acquired (limit ", limit_, ")"));
  }
  if (waiters_.WakeOne() == nullptr) ++value_;
  return absl::OkStatus();
}

}  // namespace picos
