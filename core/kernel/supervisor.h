// Supervisor: restarts a crashing task from its function and arguments, by
// a policy, so that a failing worker comes back on its own; built on
// monitors (monitor.h).
//
//   picos::RestartPolicy policy{.max_restarts = 3, .window = absl::Seconds(10)};
//   picos::Supervisor sup = picos::Supervisor::Start(scheduler, policy, {}, Worker, 7);
//   ...
//   absl::StatusOr<picos::Value> end = co_await sup.task().Join();
//
// The supervisor is a task. It spawns the worker (`fn(args...)`, a new call
// each time), monitors it, and when it ends:
//   - with an error (or an escaping exception): restarts it, unless that
//     would make more than `max_restarts` restarts within `window`; then it
//     gives up: logs it and ends with kAborted naming the last error;
//   - normally: ends with the worker's value (or restarts it if
//     `restart_on_success`);
//   - terminated (by someone else): ends with kCancelled (or restarts it if
//     `restart_on_terminate`).
// Every monitor message of its workers is forwarded to `observer`, then a
// final system message (core/kernel/system_message.h), the verdict:
// {"picos.supervisor": {"outcome": "completed" | "gave_up" | "stopped",
// "restarts": n, "error": {"code", "message"} (not for "completed")}}. Other messages sent to the supervisor are forwarded to the
// current worker, so the supervisor's TaskRef is an address that survives
// restarts.
//
// Stop() terminates the supervisor, which terminates its worker and ends
// with kCancelled.
//
// Threads: Start from any thread (the worker and the supervisor run on
// `scheduler`); worker() and restarts() on the scheduler's thread.
#ifndef PICOS_CORE_KERNEL_SUPERVISOR_H_
#define PICOS_CORE_KERNEL_SUPERVISOR_H_

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/kernel/handles.h"
#include "core/kernel/scheduler.h"

namespace picos {

struct RestartPolicy {
  // At most this many restarts within `window`; one more failure gives up.
  int max_restarts = 3;
  absl::Duration window = absl::Seconds(5);
  // Wait before each restart (lets a failing resource recover).
  absl::Duration delay = absl::ZeroDuration();
  // Restart also a worker that returned normally / that was terminated.
  bool restart_on_success = false;
  bool restart_on_terminate = false;
};

struct SupervisorOptions {
  // Name of the supervisor task; workers are named "<name>.worker".
  std::string name = "supervisor";
  // Gets the workers' monitor messages and the final supervisor message.
  TaskRef observer;
};

class Supervisor {
 public:
  // Spawns a worker from a callable returning Task<...>; gives a null
  // task() if `scheduler` has stopped.
  using Spawner = absl::AnyInvocable<TaskRef(Scheduler&, std::string name)>;

  template <typename F, typename... Args>
    requires std::invocable<F&, Args&...> &&
             internal::IsTask<std::invoke_result_t<F&, Args&...>>::value
  static Supervisor Start(Scheduler& scheduler, RestartPolicy policy, SupervisorOptions options,
                          F fn, Args... args) {
    return StartSpawner(
        scheduler, policy, std::move(options),
        [fn = std::move(fn), ... args = std::move(args)](Scheduler& s, std::string name) mutable {
          return s.SpawnNamed(std::move(name), fn, args...);
        });
  }
  static Supervisor StartSpawner(Scheduler& scheduler, RestartPolicy policy,
                                 SupervisorOptions options, Spawner spawner);

  Supervisor() = default;

  // The supervisor task: Join it for how supervision ended.
  const TaskRef& task() const { return task_; }
  // The current (or last) worker.
  TaskRef worker() const;
  // Restarts so far.
  int restarts() const;
  // Terminates the supervisor and its worker. Any thread: TaskRef::Terminate
  // of the supervisor (from another thread OK means queued; safe while its
  // scheduler is being destroyed).
  absl::Status Stop() const { return task_.Terminate(); }

  struct State;

 private:
  TaskRef task_;
  std::shared_ptr<State> state_;
};

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_SUPERVISOR_H_
