#include "core/kernel/clock.h"

#include <algorithm>

#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"

namespace picos {

VirtualClock::VirtualClock(Mode mode) : mode_(mode) {}

VirtualClock::~VirtualClock() {
  absl::MutexLock lock(&mu_);
  PICOS_ASSERT(members_.empty() && "a VirtualClock destroyed while a scheduler uses it");
}

void VirtualClock::Advance(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return;
  // Read and add under the lock, so that two concurrent Advance calls add up.
  Scheduler* here = nullptr;
  {
    absl::MutexLock lock(&mu_);
    int64_t now = now_ns_.load(std::memory_order_relaxed);
    int64_t step = absl::ToInt64Nanoseconds(d);
    int64_t target = step > INT64_MAX - now ? INT64_MAX : now + step;
    now_ns_.store(target, std::memory_order_release);
    Scheduler* current = Scheduler::Current();
    for (Member& m : members_) {
      if (m.state == State::kStopped) continue;
      if (m.scheduler == current) {
        here = current;
      } else {
        m.state = State::kBusy;  // it has timeouts to look at before any jump
      }
    }
    WakeOthers(current);
  }
  // The caller's own scheduler: what became due is runnable when Advance
  // returns, so that a test can advance, yield once and look.
  if (here != nullptr) here->ExpireDueTimers();
}

void VirtualClock::AdvanceTo(absl::Duration t) {
  Advance(t - absl::Nanoseconds(NowNs()));
}

void VirtualClock::Attach(Scheduler* s) {
  absl::MutexLock lock(&mu_);
  members_.push_back(Member{s, State::kStopped, -1});
}

void VirtualClock::Detach(Scheduler* s) {
  absl::MutexLock lock(&mu_);
  members_.erase(std::remove_if(members_.begin(), members_.end(),
                                [s](const Member& m) { return m.scheduler == s; }),
                 members_.end());
}

VirtualClock::Member* VirtualClock::Find(const Scheduler* s) {
  for (Member& m : members_) {
    if (m.scheduler == s) return &m;
  }
  PICOS_ASSERT(false && "scheduler not attached to its clock");
  return nullptr;
}

void VirtualClock::WakeOthers(const Scheduler* except) {
  for (Member& m : members_) {
    if (m.state != State::kStopped && m.scheduler != except) m.scheduler->WakeLoop();
  }
}

void VirtualClock::LoopStarts(Scheduler* s) {
  absl::MutexLock lock(&mu_);
  Find(s)->state = State::kBusy;
}

void VirtualClock::LoopEnds(Scheduler* s) {
  absl::MutexLock lock(&mu_);
  Member* m = Find(s);
  if (m->state == State::kStopped) return;
  m->state = State::kStopped;
  // The others may have been waiting for this one to go idle.
  WakeOthers(s);
}

void VirtualClock::Busy(Scheduler* s) {
  absl::MutexLock lock(&mu_);
  MarkBusyLocked(s);
}

void VirtualClock::MarkBusyLocked(Scheduler* s) {
  Member* m = Find(s);
  if (m->state == State::kIdle) m->state = State::kBusy;
}

bool VirtualClock::OthersRunning(const Scheduler* s) const {
  absl::MutexLock lock(&mu_);
  for (const Member& m : members_) {
    if (m.scheduler != s && m.state != State::kStopped) return true;
  }
  return false;
}

VirtualClock::Step VirtualClock::Idle(Scheduler* s, int64_t deadline_ns, uint64_t work) {
  absl::MutexLock lock(&mu_);
  Member* me = Find(s);
  // Checked under the clock's lock: a Post that lands after this check marks
  // `s` busy again (Busy takes the same lock) before anyone can jump.
  if (s->HasPosts()) {
    me->state = State::kBusy;
    return Step::kBusy;
  }
  if (work != me->work) {
    // It did something since it last went idle, which may have sent bytes
    // to another member's socket: every member polls again before a jump.
    me->work = work;
    ++epoch_;
  }
  me->state = State::kIdle;
  me->deadline_ns = deadline_ns;
  me->epoch = epoch_;
  int64_t next = -1;
  bool unconfirmed = false;
  for (const Member& m : members_) {
    if (m.state == State::kBusy) return Step::kWait;
    if (m.state == State::kIdle && m.epoch != epoch_) unconfirmed = true;
    if (m.state == State::kIdle && m.deadline_ns >= 0 && (next < 0 || m.deadline_ns < next)) {
      next = m.deadline_ns;
    }
  }
  if (unconfirmed) {
    // Those idle since before the last work poll again (WaitVirtual polls
    // before it comes back here).
    for (Member& m : members_) {
      if (m.state == State::kIdle && m.epoch != epoch_) {
        m.state = State::kBusy;
        m.scheduler->WakeLoop();
      }
    }
    return Step::kWait;
  }
  if (next < 0) return Step::kNoTimers;
  if (next > now_ns_.load(std::memory_order_relaxed)) {
    now_ns_.store(next, std::memory_order_release);
  }
  jumps_.fetch_add(1, std::memory_order_relaxed);
  // Everyone looks at the new time before the next jump.
  for (Member& m : members_) {
    if (m.state == State::kIdle) m.state = State::kBusy;
  }
  WakeOthers(s);
  return Step::kJumped;
}

}  // namespace picos
