#include "core/kernel/hot_swap.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler_internal.h"
#include "core/kernel/task_internal.h"

namespace picos {

using internal::TaskCore;

bool HotSwappable(bool allowed) {
  // Not CurrentTaskOrDie: a HotSwapGuard's destructor may run while a frame
  // is destroyed outside any task, and restoring a flag is no reason to abort.
  TaskCore* c = internal::t_current_task;
  if (c == nullptr) return false;
  bool previous = (c->flags & internal::kFlagHotSwappable) != 0;
  if (allowed) {
    c->flags |= internal::kFlagHotSwappable;
  } else {
    c->flags &= ~internal::kFlagHotSwappable;
  }
  return previous;
}

bool IsHotSwappable(const TaskRef& task) {
  TaskCore* c = task.core();
  return c != nullptr && (c->flags & internal::kFlagHotSwappable) &&
         !(c->flags & internal::kFlagFinished);
}

namespace internal {

absl::Status HotSwapHandle(const TaskRef& task, std::coroutine_handle<> body) {
  struct DestroyUnlessTaken {
    std::coroutine_handle<> h;
    ~DestroyUnlessTaken() {
      if (h) h.destroy();
    }
  } guard{body};
  if (!task.valid()) return absl::InvalidArgumentError("HotSwap of a null TaskRef");
  if (!body) return absl::InvalidArgumentError("HotSwap with an empty Task");
  TaskCore* c = task.core();
  if (internal::IsProxy(c)) {
    return absl::FailedPreconditionError(
        absl::StrCat("HotSwap of ", task.DebugString(), ": the task is not of this process"));
  }
  Scheduler* s = c->scheduler();
  if (s == nullptr || !s->InLoopThread()) {
    return absl::FailedPreconditionError(
        absl::StrCat("HotSwap of ", task.DebugString(), " off its scheduler's thread"));
  }
  if (c->flags & kFlagFinished) {
    return absl::FailedPreconditionError(absl::StrCat("task ", task.DebugString(), " has ended"));
  }
  if (!(c->flags & kFlagHotSwappable)) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", task.DebugString(), " does not allow hot swap (HotSwappable)"));
  }
  // Receive() is the swap point: parked there (still waiting, or woken by a
  // message, a timeout or an interrupt and not yet resumed). A task that is
  // running (swapping itself), or parked in anything else, may be in the
  // middle of work whose other half (a lock handed over, an I/O request
  // pending) the new function knows nothing of.
  TaskState state = c->load_state();
  bool at_swap_point = (c->flags & kFlagParkedInReceive) &&
                       (state == TaskState::kReceiving || state == TaskState::kReady);
  if (!at_swap_point) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", task.DebugString(), " is not at a swap point (it is ",
                     TaskStateName(state), ", not parked in Receive)"));
  }
  // Already in the ready queue when a message woke it: it must not be queued
  // twice.
  bool queued = state == TaskState::kReady;
  // From here on as Scheduler::Kill, except that the task lives on.
  internal::SchedulerHooks::RemoveTimer(*s, c);
  std::coroutine_handle<> old_root = std::exchange(c->root, {});
  c->leaf = {};
  c->set_state(TaskState::kRunning);
  {
    // The old frames' destructors run as the task (they may send a last
    // message, or restore HotSwappable).
    TaskCore* prev = t_current_task;
    t_current_task = c;
    old_root.destroy();
    t_current_task = prev;
  }
  c->flags &= ~(kFlagHotSwappable | kFlagParkedInReceive);
  c->root = std::exchange(guard.h, {});
  c->leaf = c->root;
  c->wake = kWakeNone;
  ++c->wait_seq;  // tokens handed out for the old body's waits are stale now
  c->set_state(TaskState::kReady);
  if (!queued) internal::SchedulerHooks::PushReady(*s, c);
  PICOS_LOG(debug, "task {} hot-swapped", task.DebugString());
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace picos
