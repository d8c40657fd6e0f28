// TaskGroup: tasks spawned on behalf of an object, which end with it.
//
// An object that does work in the background (a listener's handshakes, a
// peer's heartbeat, a discovery loop) spawns that work into a TaskGroup it
// owns, as with kj's TaskSet. Destroying the group destroys every task still
// in it, at once: their frames are destroyed, so the destructors of their
// locals run (sockets close), and none of them runs again. A task of the
// group may therefore use its owner through a plain pointer. Each task that
// ends with an error is reported to an error hook (kj's
// ErrorHandler::taskFailed); a group can be awaited until it is empty, and
// bounded in the number of tasks it holds.
//
//   class Server {
//    public:
//     explicit Server(std::unique_ptr<picos::Listener> listener)
//         : listener_(std::move(listener)),
//           tasks_(picos::ThisScheduler(), {.name = "server"}) {
//       (void)tasks_.Spawn(&Server::AcceptLoop, this);
//     }
//
//    private:
//     picos::Task<absl::Status> AcceptLoop();   // spawns a task per client
//                                               // into tasks_ as well
//     std::unique_ptr<picos::Listener> listener_;
//     picos::TaskGroup tasks_;  // last: destroyed first, while what its
//                               // tasks use still exists
//   };
//
// To end the tasks gracefully instead (each wait they are in returns
// kCancelled, and they may clean up, even send a last message):
//
//   group.TerminateAll();
//   absl::Status empty = co_await group.WaitEmpty(absl::Seconds(5));
//
// Threads: a group belongs to one scheduler. Create, use and destroy it on
// that scheduler's thread (from its tasks), or on the thread that owns the
// scheduler while no loop runs. It may outlive its scheduler: the tasks
// ended when the scheduler stopped, and destroying the group then does
// nothing more. No call suspends except WaitEmpty().
#ifndef PICOS_CORE_KERNEL_TASK_GROUP_H_
#define PICOS_CORE_KERNEL_TASK_GROUP_H_

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/handles.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"

namespace picos {

class TaskGroup {
 public:
  struct Options {
    // Shown in logs; a task spawned without a name of its own takes it.
    std::string name = "group";
    // Most tasks in the group at once; Spawn beyond it gives
    // kResourceExhausted.
    size_t max_tasks = std::numeric_limits<size_t>::max();
    // Called for each task of the group that ends with an error other than
    // kCancelled (a terminated task is not a failure), on the scheduler's
    // thread, once the task has left the group. It may spawn into the group
    // (a restart) or destroy it. Not called for tasks destroyed with the
    // group, nor by Clear(). When empty, failures are logged (rate-limited)
    // instead. Either way the scheduler does not log them a second time.
    absl::AnyInvocable<void(const TaskRef& task, const absl::Status& error)> on_error;
  };

  explicit TaskGroup(Scheduler& scheduler);
  TaskGroup(Scheduler& scheduler, Options options);
  // Destroys every task still in the group (see Clear()).
  ~TaskGroup();
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  // Spawns `task` (or `fn(args...)`, as Scheduler::Spawn) into the group
  // and gives its handle. kResourceExhausted when the group holds
  // max_tasks tasks, kFailedPrecondition once the scheduler has stopped or
  // while the group is being cleared or destroyed (a task being destroyed
  // may try); the task is then destroyed without running.
  template <typename T>
  absl::StatusOr<TaskRef> Spawn(Task<T> task) {
    return SpawnNamed(std::string(), std::move(task));
  }
  template <typename T>
  absl::StatusOr<TaskRef> SpawnNamed(std::string name, Task<T> task) {
    absl::Status room = CheckRoom();
    if (!room.ok()) return room;
    return Adopt(scheduler_->SpawnNamed(TaskName(std::move(name)), std::move(task)));
  }
  template <typename F, typename... Args>
    requires std::invocable<F&, Args&&...> &&
             internal::IsTask<std::invoke_result_t<F&, Args&&...>>::value
  absl::StatusOr<TaskRef> Spawn(F&& fn, Args&&... args) {
    return SpawnNamed(std::string(), std::forward<F>(fn), std::forward<Args>(args)...);
  }
  template <typename F, typename... Args>
    requires std::invocable<F&, Args&&...> &&
             internal::IsTask<std::invoke_result_t<F&, Args&&...>>::value
  absl::StatusOr<TaskRef> SpawnNamed(std::string name, F&& fn, Args&&... args) {
    absl::Status room = CheckRoom();
    if (!room.ok()) return room;
    return Adopt(scheduler_->SpawnNamed(TaskName(std::move(name)), std::forward<F>(fn),
                                        std::forward<Args>(args)...));
  }

  // Tasks in the group (spawned and not yet ended).
  size_t size() const;
  bool empty() const { return size() == 0; }
  const std::string& name() const;

  // Asks every task of the group to end (TaskRef::Terminate): the wait each
  // is in, or its next one, returns kCancelled. They leave the group as they
  // end; await WaitEmpty() for that.
  void TerminateAll();

  // Destroys every task of the group now, as the destructor does, and leaves
  // the group empty and usable. A task that is running at this moment (the
  // caller itself, when a task of the group clears it) cannot be destroyed
  // under its own feet: it leaves the group and is told to terminate.
  void Clear();

  // Awaitable (from a task of this group's scheduler): OK once the group is
  // empty, at once if it is now; kDeadlineExceeded after `timeout`; the
  // interrupt if the waiting task is terminated or thrown into.
  class EmptyAwaiter;
  EmptyAwaiter WaitEmpty(absl::Duration timeout = absl::InfiniteDuration());

 private:
  struct State;

  absl::Status CheckRoom() const;
  std::string TaskName(std::string name) const;
  // Takes a freshly spawned task into the group (null: the spawn failed).
  absl::StatusOr<TaskRef> Adopt(TaskRef task);

  Scheduler* scheduler_;
  // Shared with the finish hooks of the tasks, which may run after the
  // group is gone (a task that was running when it was destroyed).
  std::shared_ptr<State> state_;
};

class TaskGroup::EmptyAwaiter {
 public:
  bool await_ready() const noexcept;
  void await_suspend(std::coroutine_handle<> h);
  absl::Status await_resume();

 private:
  friend class TaskGroup;
  EmptyAwaiter(std::shared_ptr<State> state, absl::Duration timeout)
      : state_(std::move(state)), timeout_ns_(absl::ToInt64Nanoseconds(timeout)) {}
  std::shared_ptr<State> state_;
  int64_t timeout_ns_;  // INT64_MAX: no timeout
};

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_TASK_GROUP_H_
