#include "core/kernel/sync.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

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

absl::Status NotHeld(const char* what) {
  return absl::FailedPreconditionError(
      absl::StrCat("release of a ", what, " that the calling task does not hold"));
}

}  // namespace

// --- Lock ---

bool Lock::TryTake(TaskCore* c) {
  if (owner_.valid()) return false;
  owner_ = RefTo(c);
  return true;
}

bool Lock::TryAcquire() {
  TaskCore* c = internal::t_current_task;
  return c != nullptr && TryTake(c);
}

bool Lock::HeldByCurrentTask() const {
  return owner_.valid() && owner_.core() == internal::t_current_task;
}

void Lock::HandOff() {
  TaskCore* next = waiters_.WakeOne();
  owner_ = next ? RefTo(next) : TaskRef();
}

absl::Status Lock::Release() {
  if (!HeldByCurrentTask()) return NotHeld("Lock");
  HandOff();
  return absl::OkStatus();
}

void Lock::GiveBack(TaskCore* c) {
  if (owner_.core() == c) HandOff();
}

absl::Status Lock::TimedOut() const { return absl::DeadlineExceededError("lock acquire timed out"); }

// --- RLock ---

bool RLock::TryTake(TaskCore* c) {
  if (!owner_.valid()) {
    owner_ = RefTo(c);
    depth_ = 1;
    return true;
  }
  if (owner_.core() != c) return false;
  ++depth_;
  return true;
}

bool RLock::TryAcquire() {
  TaskCore* c = internal::t_current_task;
  return c != nullptr && TryTake(c);
}

bool RLock::HeldByCurrentTask() const {
  return owner_.valid() && owner_.core() == internal::t_current_task;
}

void RLock::HandOff() {
  TaskCore* next = waiters_.WakeOne();
  owner_ = next ? RefTo(next) : TaskRef();
  depth_ = next ? 1 : 0;
}

absl::Status RLock::Release() {
  if (!HeldByCurrentTask()) return NotHeld("RLock");
  if (--depth_ == 0) HandOff();
  return absl::OkStatus();
}

void RLock::GiveBack(TaskCore* c) {
  if (owner_.core() == c) HandOff();
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
  lock_.HandOff();  // all levels at once
  internal::SyncAwaiter<Condition> notified(this, timeout);
  absl::Status s = co_await notified;
  if (notified.interrupted()) co_return s;  // without the lock: see the header
  absl::Status relock = co_await lock_.Acquire();
  if (!relock.ok()) co_return relock;  // interrupted while taking it back: without it
  lock_.depth_ = depth;
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

bool Semaphore::TryAcquire() { return TryTake(nullptr); }

absl::Status Semaphore::Release() {
  if (value_ >= limit_) {
    return absl::FailedPreconditionError(
        absl::StrCat("BoundedSemaphore released more often than acquired (limit ", limit_, ")"));
  }
  if (waiters_.WakeOne() == nullptr) ++value_;
  return absl::OkStatus();
}

}  // namespace picos
