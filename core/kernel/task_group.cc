#include "core/kernel/task_group.h"

#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler_internal.h"
#include "core/kernel/status.h"
#include "core/kernel/task_internal.h"

namespace picos {

using internal::TaskCore;

struct TaskGroup::State {
  Scheduler* scheduler;
  Options options;
  absl::flat_hash_set<TaskRef> tasks;
  // Tasks in WaitEmpty(); woken when the group becomes empty.
  std::vector<internal::WaitToken> empty_waiters;
  // Set while Clear() or the destructor destroys tasks: their finish hooks
  // and the spawns their destructors may attempt are ignored.
  bool clearing = false;

  void WakeEmptyWaiters() {
    std::vector<internal::WaitToken> waiters;
    waiters.swap(empty_waiters);
    for (const internal::WaitToken& w : waiters) internal::WakeToken(w, internal::kWakeEvent);
  }

  // The finish hook of each task: runs on the scheduler's thread once the
  // task has ended.
  void Finished(TaskCore* c) {
    TaskRef task = TaskRef::Adopt((internal::Ref(c), c));
    if (tasks.erase(task) == 0) return;  // taken out by Clear()
    absl::Status status = c->extra != nullptr ? c->extra->result_status : absl::OkStatus();
    if (!status.ok() && status.code() != absl::StatusCode::kCancelled) {
      if (options.on_error) {
        // May destroy the group: this State lives on while the hook that
        // called us holds it.
        options.on_error(task, status);
      } else {
        PICOS_LOG_LIMITED(warn, "task {} of {} failed: {}", task.DebugString(), options.name,
                          status.ToString());
      }
    }
    if (tasks.empty()) WakeEmptyWaiters();
  }
};

TaskGroup::TaskGroup(Scheduler& scheduler) : TaskGroup(scheduler, Options()) {}

TaskGroup::TaskGroup(Scheduler& scheduler, Options options)
    : scheduler_(&scheduler), state_(std::make_shared<State>()) {
  state_->scheduler = &scheduler;
  state_->options = std::move(options);
}

TaskGroup::~TaskGroup() {
  Clear();
  // Only the finish hooks of tasks that were running (told to terminate)
  // still reach State, and find nothing of theirs in it.
  state_->clearing = true;
}

size_t TaskGroup::size() const { return state_->tasks.size(); }

const std::string& TaskGroup::name() const { return state_->options.name; }

absl::Status TaskGroup::CheckRoom() const {
  const State& st = *state_;
  if (st.clearing) {
    return absl::FailedPreconditionError(
        absl::StrCat("task group ", st.options.name, " is being cleared or destroyed"));
  }
  if (st.tasks.size() >= st.options.max_tasks) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "task group ", st.options.name, " is full (", st.options.max_tasks, " tasks)"));
  }
  return absl::OkStatus();
}

std::string TaskGroup::TaskName(std::string name) const {
  return name.empty() ? state_->options.name : std::move(name);
}

absl::StatusOr<TaskRef> TaskGroup::Adopt(TaskRef task) {
  if (!task.valid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task group ", state_->options.name, ": the scheduler has stopped; task not started"));
  }
  TaskCore* c = task.core();
  // The task has not run yet (a spawned task first runs when the loop next
  // turns), so the hook is in place before it can end.
  c->Extra().error_reported = true;
  c->Extra().finish_hooks.push_back([weak = std::weak_ptr<State>(state_)](TaskCore* core) {
    if (std::shared_ptr<State> st = weak.lock()) st->Finished(core);
  });
  state_->tasks.insert(task);
  return task;
}

void TaskGroup::TerminateAll() {
  // Terminate only sets a flag and wakes the task later: the set does not
  // change under the loop.
  for (const TaskRef& t : state_->tasks) (void)t.Terminate();
}

void TaskGroup::Clear() {
  State& st = *state_;
  if (st.clearing) return;  // a destructor run by Clear() clears again
  st.clearing = true;
  std::vector<TaskRef> victims(st.tasks.begin(), st.tasks.end());
  st.tasks.clear();
  for (const TaskRef& t : victims) {
    TaskCore* c = t.core();
    if (c->flags & internal::kFlagFinished) continue;  // its scheduler stopped
    if (c->load_state() == TaskState::kRunning) {
      // The caller itself, or a task whose frames are being destroyed: it
      // ends on its own, told to terminate.
      PICOS_LOG(warn, "task {} of {} is running while its group is cleared: terminated, not destroyed",
                t.DebugString(), st.options.name);
      (void)t.Terminate();
      continue;
    }
    internal::SchedulerHooks::DestroyTask(*st.scheduler, c, absl::CancelledError(
                                     absl::StrCat("task group ", st.options.name, " destroyed")));
  }
  st.clearing = false;
  st.WakeEmptyWaiters();
}

TaskGroup::EmptyAwaiter TaskGroup::WaitEmpty(absl::Duration timeout) {
  return EmptyAwaiter(state_, timeout);
}

bool TaskGroup::EmptyAwaiter::await_ready() const noexcept {
  return state_->tasks.empty() || internal::InterruptPending(internal::CurrentTaskOrDie("WaitEmpty"));
}

void TaskGroup::EmptyAwaiter::await_suspend(std::coroutine_handle<> h) {
  TaskCore* c = internal::t_current_task;
  // The group's scheduler wakes the waiter: it must be one of its tasks.
  PICOS_ASSERT(c->scheduler() == state_->scheduler);
  internal::Block(c, h, TaskState::kWaiting, absl::Nanoseconds(timeout_ns_));
  state_->empty_waiters.push_back(internal::TokenFor(c));
}

absl::Status TaskGroup::EmptyAwaiter::await_resume() {
  TaskCore* c = internal::t_current_task;
  if (internal::InterruptPending(c)) return internal::TakeInterrupt(c);
  if (state_->tasks.empty() || c->wake == internal::kWakeEvent) return absl::OkStatus();
  return absl::DeadlineExceededError(
      absl::StrCat("task group ", state_->options.name, " still has ", state_->tasks.size(),
                   " task(s)"));
}

}  // namespace picos
