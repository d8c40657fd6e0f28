// The scheduler's run queue, timer and mailbox hooks, for the kernel's own
// code (task.cc, channels, sync, hot swap). Not part of picos's API: only
// packages under core/ may depend on it (//core/kernel:internal).
//
// Everything here runs on the scheduler's thread, except FromIndex, which
// any thread may call (the table is atomic).
#ifndef PICOS_CORE_KERNEL_SCHEDULER_INTERNAL_H_
#define PICOS_CORE_KERNEL_SCHEDULER_INTERNAL_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task_internal.h"
#include "core/kernel/value.h"

namespace picos::internal {

// Schedulers by the one-byte index a task keeps (TaskCore::sched_index):
// 255 per process is far beyond one per core. Slot 0 is never used.
extern std::atomic<Scheduler*> g_schedulers[256];

class SchedulerHooks {
 public:
  // The scheduler of index `index`, or null once it is destroyed. Any thread.
  static Scheduler* FromIndex(uint8_t index) {
    return g_schedulers[index].load(std::memory_order_acquire);
  }
  static uint8_t Index(const Scheduler& s) { return s.index_; }

  // Queues the runnable task `c`.
  static void PushReady(Scheduler& s, TaskCore* c) { s.PushReady(c); }

  // Makes the blocked task `c` of `s` runnable, woken for `reason` (a
  // WakeReason). The caller has checked that it is blocked and not finished.
  // Inline: a message round trip does this twice.
  static void MakeReady(Scheduler& s, TaskCore* c, uint8_t reason) {
    if (c->timer_index != kNoTimer) s.TimerRemoveAt(c->timer_index);
    c->wake = reason;
    c->set_state(TaskState::kReady);
    s.PushReady(c);
  }

  // The scheduler's clock, on which timeouts are counted, in nanoseconds.
  static int64_t NowNs(Scheduler& s) { return s.NowNs(); }

  // The timeout of the wait `c` is entering, and its removal.
  static void AddTimer(Scheduler& s, TaskCore* c, absl::Duration timeout) {
    s.AddTimer(c, timeout);
  }
  static void RemoveTimer(Scheduler& s, TaskCore* c) { s.RemoveTimer(c); }

  // Runs `fn` once control is back in the loop, before the next task
  // resumes: for work that must not run inside the frame that is suspending.
  static void Defer(Scheduler& s, absl::AnyInvocable<void()> fn) {
    s.deferred_.push_back(std::move(fn));
  }

  // Destroys `c`'s frame once control is back in the loop.
  static void ScheduleKill(Scheduler& s, TaskCore* c) { s.ScheduleKill(c); }

  // Destroys the task `c` now (TaskGroup): its frames are destroyed (their
  // destructors run as the task) and it ends with `why`. `c` must not be
  // running (not the current task, nor one whose frames are being
  // destroyed). The scheduler's thread, or the thread that owns it while no
  // loop runs.
  static void DestroyTask(Scheduler& s, TaskCore* c, absl::Status why) {
    s.DestroyTask(c, std::move(why));
  }

  // Ends `c` with its result: joiners, monitors and end hooks hear of it.
  static void Finish(Scheduler& s, TaskCore* c, absl::Status status, Value value) {
    s.Finish(c, std::move(status), std::move(value));
  }

  // Mailbox nodes, recycled per scheduler.
  static MessageNode* NewNode(Scheduler& s, Value v) { return s.NewNode(std::move(v)); }
  static void FreeNode(Scheduler& s, MessageNode* n) { s.FreeNode(n); }

  // A task of `s` starts or stops waiting for a Completer (proxy.h) that
  // another thread completes: the loop must wait for its inbox meanwhile.
  static void AddExternalWait(Scheduler& s) { s.AddExternalWait(); }
  static void RemoveExternalWait(Scheduler& s) { s.RemoveExternalWait(); }

  // Work outside the loop that will Post back to `s` (a thread-pool job):
  // +1 when it starts, -1 once its result is handled (any thread). While any
  // is outstanding a foreground loop waits for it instead of reporting a
  // deadlock, and a simulated clock (clock.h) does not jump past it.
  static void AddExternalWork(Scheduler& s, int delta) { s.AddExternalWork(delta); }

  // A handle that a library keeps on `s`'s loop for the scheduler's whole
  // life and closes when its State<T>() goes (the thread pool's return
  // path): part of the scheduler, like its own async and timer, so
  // OpenHandles() does not list it. Scheduler thread.
  static void AdoptHandle(Scheduler& s, const void* handle) { s.own_handles_.push_back(handle); }
  static void ReleaseHandle(Scheduler& s, const void* handle) {
    std::erase(s.own_handles_, handle);
  }

  // Appends `message` to the mailbox of `c`, a task of `s`, from its thread.
  static absl::Status DeliverLocal(Scheduler& s, TaskCore* c, Value message) {
    return s.DeliverLocal(c, std::move(message));
  }
};

}  // namespace picos::internal

#endif  // PICOS_CORE_KERNEL_SCHEDULER_INTERNAL_H_
