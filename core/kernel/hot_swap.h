// Hot swap (pycos hot_swappable / hot_swap): replace the function a running
// task executes, keeping the task itself: its TaskRef, name, id, monitors,
// joiners and the messages still in its mailbox.
//
//   picos::Task<> ServerV1() {
//     picos::HotSwappable(true);            // may be swapped while in Receive
//     for (;;) {
//       absl::StatusOr<picos::Value> m = co_await picos::Receive();
//       if (!m.ok()) co_return;
//       Handle(*m);
//     }
//   }
//   picos::Task<> ServerV2(int generation);
//
//   // In another task of the same scheduler:
//   absl::Status s = picos::HotSwap(server, ServerV2, 2);
//
// When a swap may happen: the task has declared itself swappable
// (HotSwappable(true), or a HotSwapGuard in scope) and is parked in
// Receive() — its swap point, where it holds no half-done work — whether it
// still waits there or a message has woken it and it has not run yet (so
// messages that arrived meanwhile go to the new function). Anything else
// is refused at once with kFailedPrecondition, never queued: a task that is
// running, sleeping, waiting for a lock or I/O, or that did not allow it.
// (pycos throws HotSwapException into the task and lets it refuse; here the
// task decides beforehand, which needs no exception and cannot be forgotten.)
//
// What a swap does: the old coroutine frames are destroyed (their locals'
// destructors run, as the task), the new coroutine becomes the task's body
// and is made ready; its first Receive() gets the oldest unprocessed message.
// The swappable mark is cleared: the new function declares it again if it
// wants to be swapped later. A pending Terminate() or Throw() stays pending
// and reaches the new function at its first wait.
//
// Threads: everything here runs on the scheduler thread of the task
// concerned (HotSwappable on the task itself); HotSwap from elsewhere is
// kFailedPrecondition. Nothing here suspends.
#ifndef PICOS_CORE_KERNEL_HOT_SWAP_H_
#define PICOS_CORE_KERNEL_HOT_SWAP_H_

#include <coroutine>
#include <functional>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "core/kernel/handles.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"

namespace picos {

// Declares whether the running task may be swapped at its next swap points
// (pycos hot_swappable). Call from the task. Gives the previous setting.
bool HotSwappable(bool allowed);

// Whether `task` allows a swap now. Scheduler thread of `task`.
bool IsHotSwappable(const TaskRef& task);

// HotSwappable(true) for as long as it lives, then the previous setting.
// Declare it in the task's body (not in a sub-call that returns before the
// swap point).
class HotSwapGuard {
 public:
  HotSwapGuard() : previous_(HotSwappable(true)) {}
  ~HotSwapGuard() { HotSwappable(previous_); }
  HotSwapGuard(const HotSwapGuard&) = delete;
  HotSwapGuard& operator=(const HotSwapGuard&) = delete;

 private:
  bool previous_;
};

namespace internal {
// Installs `body` as `task`'s new root frame, or destroys `body` and says why
// not. Scheduler thread of `task`.
absl::Status HotSwapHandle(const TaskRef& task, std::coroutine_handle<> body);
}  // namespace internal

// Replaces `task`'s function with `body` (see the top of this file).
// kFailedPrecondition when refused (not swappable, not at a swap point,
// ended, or called off the task's scheduler thread), kInvalidArgument for a
// null handle or an empty Task; `body` is then destroyed unrun.
template <typename T>
absl::Status HotSwap(const TaskRef& task, Task<T> body) {
  return internal::HotSwapHandle(task, body.release());
}

// Replaces `task`'s function with `fn(args...)` (pycos hot_swap(target,
// *args)). A callable with state (a capturing lambda) is kept alive with the
// new body, as Scheduler::Spawn does.
template <typename F, typename... Args>
  requires std::invocable<F&, Args&...> &&
           internal::IsTask<std::invoke_result_t<F&, Args&...>>::value
absl::Status HotSwap(const TaskRef& task, F&& fn, Args&&... args) {
  using D = std::decay_t<F>;
  if constexpr (std::is_empty_v<D> || std::is_pointer_v<D> || std::is_function_v<D>) {
    return HotSwap(task, std::invoke(fn, std::forward<Args>(args)...));
  } else {
    return HotSwap(task, internal::OwnCallable(D(std::forward<F>(fn)),
                                               std::decay_t<Args>(std::forward<Args>(args))...));
  }
}

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_HOT_SWAP_H_
