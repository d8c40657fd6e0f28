#include "core/kernel/hot_swap.h"

#include <exception>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler_internal.h"
#include "core/kernel/task_internal.h"

namespace picos {

using internal::TaskCore;

namespace internal {

// One HotSwap: shared by the requester's awaiter and the task's swap state
// while it is pending.
struct SwapRequest {
  std::coroutine_handle<> body;  // the new body; owned until installed
  TaskRef requester;
  WaitToken waiter;  // set while the requester waits
  bool decided = false;
  absl::Status outcome;

  ~SwapRequest() {
    if (body) body.destroy();
  }
};

namespace {

// What hot swap keeps per task, in its TaskExtra.
class SwapState final : public HotSwapHooks {
 public:
  void AtSwapPoint(TaskCore* c) override;
  void TaskEnded(TaskCore* c) override;

  HotSwapDecider decider;                // null: accept every swap
  std::shared_ptr<SwapRequest> pending;  // while kFlagSwapPending
};

SwapState& StateOf(TaskCore* c) {
  std::unique_ptr<HotSwapHooks>& slot = c->Extra().hot_swap;
  if (!slot) slot = std::make_unique<SwapState>();
  return static_cast<SwapState&>(*slot);
}

SwapState* StateIfAny(TaskCore* c) {
  if (c->extra == nullptr || !c->extra->hot_swap) return nullptr;
  return static_cast<SwapState*>(c->extra->hot_swap.get());
}

TaskRef RefOf(TaskCore* c) { return TaskRef::Adopt((Ref(c), c)); }

// Records the outcome and wakes a requester that waits for it.
void Decide(SwapRequest& r, absl::Status outcome) {
  r.decided = true;
  r.outcome = std::move(outcome);
  if (r.waiter.task.valid()) WakeToken(r.waiter, kWakeEvent);
}

// Parked in Receive (still waiting, or woken and not yet resumed): where a
// task holds no half-done work.
bool AtSwapPoint(const TaskCore* c) {
  TaskState state = c->load_state();
  return (c->flags & kFlagParkedInReceive) &&
         (state == TaskState::kReceiving || state == TaskState::kReady);
}

// Runs the task's decider, as the task: its frames are alive, it is parked.
absl::Status RunDecider(TaskCore* c, SwapState& st, const SwapRequest& r) {
  if (!st.decider) return absl::OkStatus();
  // Moved out while it runs: it may change the task's setting
  // (HotSwappable), which would destroy it mid-call.
  HotSwapDecider decide = std::move(st.decider);
  st.decider = nullptr;
  TaskCore* prev = t_current_task;
  t_current_task = c;
  absl::Status decision;
  try {
    decision = decide(HotSwapOffer{r.requester});
  } catch (...) {
    decision = StatusFromException(std::current_exception());
  }
  t_current_task = prev;
  // Put back unless it set another one or made the task unswappable.
  if (!st.decider && (c->flags & kFlagHotSwappable)) st.decider = std::move(decide);
  return decision;
}

// Replaces the body of `c`, parked at its swap point, with `body`. As
// Scheduler::Kill, except that the task lives on.
void Install(TaskCore* c, std::coroutine_handle<> body) {
  Scheduler& s = *c->scheduler();
  // Already in the ready queue when a message woke it: it must not be queued
  // twice.
  bool queued = c->load_state() == TaskState::kReady;
  SchedulerHooks::RemoveTimer(s, c);
  std::coroutine_handle<> old_root = std::exchange(c->root, {});
  c->leaf = {};
  c->set_state(TaskState::kRunning);
  {
    // The old frames' destructors run as the task (they may send a last
    // message, or put back a HotSwapGuard's setting).
    TaskCore* prev = t_current_task;
    t_current_task = c;
    old_root.destroy();
    t_current_task = prev;
  }
  c->flags &= ~(kFlagHotSwappable | kFlagParkedInReceive);
  // What the old body's guards put back referred to the old body.
  if (SwapState* st = StateIfAny(c)) st->decider = nullptr;
  c->root = body;
  c->leaf = body;
  c->wake = kWakeNone;
  ++c->wait_seq;  // tokens handed out for the old body's waits are stale now
  c->set_state(TaskState::kReady);
  if (!queued) SchedulerHooks::PushReady(s, c);
}

// Delivers the swap `r` to `c`, which is at its swap point and swappable:
// its decider decides, and the swap is done or refused.
absl::Status Deliver(TaskCore* c, SwapState& st, SwapRequest& r) {
  absl::Status decision = RunDecider(c, st, r);
  TaskRef task = RefOf(c);
  if (!decision.ok()) {
    PICOS_LOG(debug, "task {} refused a hot swap: {}", task.DebugString(), decision.ToString());
    r.body.destroy();
    r.body = {};
    // A Receive() that parked only for this (messages or an interrupt were
    // waiting) goes on now.
    if (c->load_state() == TaskState::kReceiving &&
        (!c->mailbox_empty() || InterruptPending(c))) {
      Wake(c, kWakeEvent);
    }
    return decision;
  }
  Install(c, std::exchange(r.body, {}));
  PICOS_LOG(debug, "task {} hot-swapped", task.DebugString());
  return absl::OkStatus();
}

void SwapState::AtSwapPoint(TaskCore* c) {
  if (!pending || !(c->flags & kFlagHotSwappable)) return;
  std::shared_ptr<SwapRequest> r = std::move(pending);
  c->flags &= ~kFlagSwapPending;
  absl::Status outcome = Deliver(c, *this, *r);
  Decide(*r, std::move(outcome));
}

void SwapState::TaskEnded(TaskCore* c) {
  c->flags &= ~kFlagSwapPending;
  decider = nullptr;
  if (!pending) return;
  std::shared_ptr<SwapRequest> r = std::move(pending);
  Decide(*r, absl::FailedPreconditionError(absl::StrCat(
                 "task ", RefOf(c).DebugString(), " ended before its next swap point")));
}

void SetPolicy(TaskCore* c, bool allowed, HotSwapDecider decide) {
  if (allowed) {
    c->flags |= kFlagHotSwappable;
  } else {
    c->flags &= ~kFlagHotSwappable;
  }
  if (decide || StateIfAny(c) != nullptr) StateOf(c).decider = std::move(decide);
}

}  // namespace
}  // namespace internal

bool HotSwappable(bool allowed) {
  // Not CurrentTaskOrDie: a HotSwapGuard's destructor may run while a frame
  // is destroyed outside any task, and restoring a flag is no reason to abort.
  TaskCore* c = internal::t_current_task;
  if (c == nullptr) return false;
  bool previous = (c->flags & internal::kFlagHotSwappable) != 0;
  internal::SetPolicy(c, allowed, nullptr);
  return previous;
}

void HotSwappable(HotSwapDecider decide) {
  TaskCore* c = internal::CurrentTaskOrDie("HotSwappable");
  internal::SetPolicy(c, true, std::move(decide));
}

bool IsHotSwappable(const TaskRef& task) {
  TaskCore* c = task.core();
  return c != nullptr && (c->flags & internal::kFlagHotSwappable) &&
         !(c->flags & internal::kFlagFinished);
}

HotSwapGuard::HotSwapGuard() : HotSwapGuard(HotSwapDecider()) {}

HotSwapGuard::HotSwapGuard(HotSwapDecider decide) : previous_(false) {
  TaskCore* c = internal::CurrentTaskOrDie("HotSwapGuard");
  previous_ = (c->flags & internal::kFlagHotSwappable) != 0;
  if (internal::SwapState* st = internal::StateIfAny(c)) {
    previous_decider_ = std::move(st->decider);
  }
  internal::SetPolicy(c, true, std::move(decide));
}

HotSwapGuard::~HotSwapGuard() {
  TaskCore* c = internal::t_current_task;
  if (c == nullptr) return;  // destroyed outside any task: nothing to put back
  internal::SetPolicy(c, previous_, std::move(previous_decider_));
}

// --- HotSwapAwaiter ---

HotSwapAwaiter::HotSwapAwaiter(TaskRef task, std::coroutine_handle<> body,
                               absl::Duration timeout)
    : task_(std::move(task)),
      request_(std::make_shared<internal::SwapRequest>()),
      timeout_ns_(absl::ToInt64Nanoseconds(timeout)) {
  request_->body = body;
}

HotSwapAwaiter::~HotSwapAwaiter() {
  // Still pending (the requester was destroyed while it waited): withdraw
  // it. The request, and the body it owns, go with the last reference.
  if (request_ && !request_->decided && task_.valid()) {
    if (internal::SwapState* st = internal::StateIfAny(task_.core());
        st != nullptr && st->pending == request_) {
      st->pending = nullptr;
      task_.core()->flags &= ~internal::kFlagSwapPending;
    }
  }
}

bool HotSwapAwaiter::await_ready() {
  internal::SwapRequest& r = *request_;
  if (!task_.valid()) {
    early_ = absl::InvalidArgumentError("HotSwap of a null TaskRef");
    return true;
  }
  if (!r.body) {
    early_ = absl::InvalidArgumentError("HotSwap with an empty Task");
    return true;
  }
  TaskCore* c = task_.core();
  if (internal::IsProxy(c)) {
    early_ = absl::FailedPreconditionError(
        absl::StrCat("HotSwap of ", task_.DebugString(), ": the task is not of this process"));
    return true;
  }
  TaskCore* self = internal::t_current_task;
  Scheduler* s = c->scheduler();
  if (self == nullptr || s == nullptr || !s->InLoopThread()) {
    early_ = absl::FailedPreconditionError(absl::StrCat(
        "HotSwap of ", task_.DebugString(), " from outside a task of its scheduler"));
    return true;
  }
  if (c == self) {
    early_ = absl::FailedPreconditionError(
        "a task cannot hot-swap itself: it is running, not at a swap point");
    return true;
  }
  if (c->flags & internal::kFlagFinished) {
    early_ = absl::FailedPreconditionError(absl::StrCat("task ", task_.DebugString(), " has ended"));
    return true;
  }
  internal::SwapState& st = internal::StateOf(c);
  if (st.pending) {
    early_ = absl::FailedPreconditionError(
        absl::StrCat("another hot swap of ", task_.DebugString(), " is pending"));
    return true;
  }
  r.requester = internal::RefOf(self);
  if ((c->flags & internal::kFlagHotSwappable) && internal::AtSwapPoint(c)) {
    r.outcome = internal::Deliver(c, st, r);
    r.decided = true;
    return true;
  }
  // Busy, or not swappable now: the swap waits for the next swap point.
  st.pending = request_;
  c->flags |= internal::kFlagSwapPending;
  return false;
}

void HotSwapAwaiter::await_suspend(std::coroutine_handle<> h) {
  TaskCore* self = internal::t_current_task;
  internal::Block(self, h, TaskState::kWaiting, absl::Nanoseconds(timeout_ns_));
  request_->waiter = internal::TokenFor(self);
}

absl::Status HotSwapAwaiter::await_resume() {
  internal::SwapRequest& r = *request_;
  if (!early_.ok()) return early_;
  if (r.decided) return r.outcome;
  // Woken by the timeout or an interrupt before a decision: withdraw.
  r.waiter = {};
  if (internal::SwapState* st = internal::StateIfAny(task_.core());
      st != nullptr && st->pending == request_) {
    st->pending = nullptr;
    task_.core()->flags &= ~internal::kFlagSwapPending;
  }
  r.decided = true;  // withdrawn: nothing left to undo
  TaskCore* self = internal::t_current_task;
  if (internal::InterruptPending(self)) return internal::TakeInterrupt(self);
  return absl::DeadlineExceededError(absl::StrCat(
      "hot swap of ", task_.DebugString(), ": no swap point reached within the timeout"));
}

}  // namespace picos
