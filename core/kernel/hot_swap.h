// Hot swap (pycos hot_swappable / hot_swap): replace the function a running
// task executes, keeping the task itself: its TaskRef, name, id, monitors,
// joiners and the messages still in its mailbox.
//
//   picos::Task<> ServerV1() {
//     int open_transactions = 0;
//     // Swappable while this guard lives; each swap is decided when it
//     // arrives, by the task, at its swap point.
//     auto decide = [&](const picos::HotSwapOffer&) -> absl::Status {
//       if (open_transactions > 0) return absl::FailedPreconditionError("busy");
//       return absl::OkStatus();
//     };
//     picos::HotSwapGuard allow(decide);
//     for (;;) {
//       absl::StatusOr<picos::Value> m = co_await picos::Receive();
//       if (!m.ok()) co_return;
//       Handle(*m, &open_transactions);
//     }
//   }
//   picos::Task<> ServerV2(int generation);
//
//   // In another task of the same scheduler:
//   absl::Status s = co_await picos::HotSwap(server, ServerV2, 2);
//
// How a swap goes (as in pycos, where the swap is an exception delivered
// into the task, which lets it through or not):
//
//  1. HotSwap is requested. The requester waits (co_await) until the swap
//     has been decided, or its timeout passes.
//  2. The swap is delivered at the task's next swap point: the task has
//     declared itself swappable (HotSwappable(true), or a HotSwapGuard in
//     scope) and waits in Receive() — where it holds no half-done work —
//     whether it still waits there or a message has woken it and it has not
//     run yet (so that messages that arrived meanwhile go to the new
//     function). A task that is busy (running, sleeping, waiting for a lock,
//     I/O or a selective receive) or not swappable now is swapped at its
//     next such point, not refused: a Receive() with messages waiting parks
//     for a moment so that the swap is decided there.
//  3. There the task decides: with HotSwappable(true) or HotSwapGuard() it
//     accepts; with a decider (HotSwappable(decider), HotSwapGuard(decider))
//     the decider runs on the task, at that moment, and accepts with OK or
//     refuses with an error. The requester gets OK or that error.
//  4. Accepted: the old coroutine frames are destroyed (their locals'
//     destructors run, as the task), the new coroutine becomes the task's
//     body and is made ready; its first Receive() gets the oldest
//     unprocessed message. The swappable mark and decider are cleared: the
//     new function declares them again if it wants to be swapped later. A
//     pending Terminate() or Throw() stays pending and reaches the new
//     function at its first wait. Refused: the task goes on as before.
//
// The requester gets kFailedPrecondition when the task ends before a swap
// point, when another swap is already pending for it, or when it asks to
// swap itself; kDeadlineExceeded when its timeout passes first (the request
// is withdrawn and the new body destroyed unrun); kInvalidArgument for a
// null handle or an empty Task. A requester that is terminated or thrown
// into while it waits withdraws the request too.
//
// Threads: everything here runs on the scheduler thread of the task
// concerned: HotSwappable and guards on the task itself, HotSwap from
// another task of the same scheduler (elsewhere kFailedPrecondition). Only
// co_await HotSwap(...) suspends; deciders must not suspend.
#ifndef PICOS_CORE_KERNEL_HOT_SWAP_H_
#define PICOS_CORE_KERNEL_HOT_SWAP_H_

#include <coroutine>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/kernel/handles.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"

namespace picos {

// What a decider is told about a swap that has arrived.
struct HotSwapOffer {
  TaskRef requester;  // the task that asked for it
};

// Decides a swap at the moment it arrives: OK accepts, an error refuses (and
// is what the requester gets). Runs on the task being swapped, between two
// of its waits; must not suspend. May read the task's state through what it
// captures: the task's frames still live while it runs.
using HotSwapDecider = absl::AnyInvocable<absl::Status(const HotSwapOffer&)>;

// Declares whether the running task may be swapped at its next swap points
// (pycos hot_swappable); true accepts every swap. Call from the task. Gives
// the previous setting. Clears a decider.
bool HotSwappable(bool allowed);

// Makes the running task swappable, each swap decided by `decide` when it
// arrives. Call from the task. Prefer HotSwapGuard, which also puts back
// what was there before when the decider's captures go out of scope.
void HotSwappable(HotSwapDecider decide);

// Whether `task` allows a swap now. Scheduler thread of `task`.
bool IsHotSwappable(const TaskRef& task);

// Makes the task swappable for as long as it lives (accepting every swap, or
// deciding each with `decide`), then puts back the previous setting and
// decider. Declare it in the task's body (not in a sub-call that returns
// before the swap point).
class HotSwapGuard {
 public:
  HotSwapGuard();
  explicit HotSwapGuard(HotSwapDecider decide);
  ~HotSwapGuard();
  HotSwapGuard(const HotSwapGuard&) = delete;
  HotSwapGuard& operator=(const HotSwapGuard&) = delete;

 private:
  bool previous_;
  HotSwapDecider previous_decider_;
};

namespace internal {
struct SwapRequest;
}  // namespace internal

// co_await HotSwap(...): OK once the swap is done, or why not (top of this
// file). Await it at once: a HotSwap that is not awaited does nothing, and
// its new body is destroyed unrun.
class [[nodiscard]] HotSwapAwaiter {
 public:
  HotSwapAwaiter(TaskRef task, std::coroutine_handle<> body, absl::Duration timeout);
  ~HotSwapAwaiter();
  HotSwapAwaiter(const HotSwapAwaiter&) = delete;
  HotSwapAwaiter& operator=(const HotSwapAwaiter&) = delete;

  bool await_ready();
  void await_suspend(std::coroutine_handle<> h);
  absl::Status await_resume();

 private:
  TaskRef task_;
  std::shared_ptr<internal::SwapRequest> request_;
  int64_t timeout_ns_;
  absl::Status early_;  // decided in await_ready
};

// Asks to replace `task`'s function with `body`, waiting up to `timeout` for
// the task's swap point and its decision (see the top of this file).
template <typename T>
HotSwapAwaiter HotSwap(const TaskRef& task, Task<T> body,
                       absl::Duration timeout = absl::InfiniteDuration()) {
  return HotSwapAwaiter(task, body.release(), timeout);
}

// Asks to replace `task`'s function with `fn(args...)` (pycos
// hot_swap(target, *args)), waiting without a timeout. A callable with state
// (a capturing lambda) is kept alive with the new body, as Scheduler::Spawn
// does. For a timeout: HotSwap(task, fn(args...), timeout).
template <typename F, typename... Args>
  requires std::invocable<F&, Args&...> &&
           internal::IsTask<std::invoke_result_t<F&, Args&...>>::value
HotSwapAwaiter HotSwap(const TaskRef& task, F&& fn, Args&&... args) {
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
