// The scheduler's run queue, timer and mailbox hooks, for the kernel's own
// code (task.cc, channels, sync, hot swap). Not part of picos's API: only
// packages under core/ may depend on it (//core/kernel:internal).
//
// Everything here runs on the scheduler's thread, except FromIndex and the
// Post...FromAnyThread calls, which any thread may make.
#ifndef PICOS_CORE_KERNEL_SCHEDULER_INTERNAL_H_
#define PICOS_CORE_KERNEL_SCHEDULER_INTERNAL_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task_internal.h"
#include "core/kernel/value.h"

namespace picos::internal {

// Schedulers by the one-byte index a task keeps (TaskCore::sched_index):
// 255 per process is far beyond one per core. Slot 0 is never used.
// Null while the slot is free. A pointer read here may be compared with
// the running scheduler (is this task mine?) by any thread, but only
// dereferenced on that scheduler's own thread: another thread may be
// destroying it. Other threads post through SchedulerHooks::PostToSlot.
extern std::atomic<Scheduler*> g_schedulers[256];

// How other threads reach a scheduler without racing its destruction (issue
// 9 #2): a handle keeps the slot index and the generation of its scheduler,
// and a post holds the slot's lock (shared) while it queues, so the
// scheduler's destructor, which closes the slot under the lock (exclusive)
// before it frees anything a post touches, either waits for the post or is
// seen as gone. The generation tells a later scheduler in the same slot from
// the one the handle meant.
struct SchedulerSlot {
  absl::Mutex mu;
  Scheduler* open ABSL_GUARDED_BY(mu) = nullptr;  // accepts posts; null once closed
  uint32_t generation ABSL_GUARDED_BY(mu) = 0;    // bumped at each claim
};
// Slot `index` (1..255), made on first use and never freed: a thread may
// hold a handle past the end of main.
SchedulerSlot& Slot(uint8_t index);

class SchedulerHooks {
 public:
  // The scheduler of index `index`, or null once it is destroyed. Any thread.
  static Scheduler* FromIndex(uint8_t index) {
    return g_schedulers[index].load(std::memory_order_acquire);
  }
  static uint8_t Index(const Scheduler& s) { return s.index_; }
  static uint32_t Generation(const Scheduler& s) { return s.generation_; }

  // Queues `fn` on the scheduler of slot `index` if it is still the one of
  // `generation`, from any thread, however that scheduler's life goes
  // meanwhile. kFailedPrecondition if it has been destroyed (or is being),
  // else as Scheduler::Post. A refused `fn` is left in `fn` (destroy it
  // after any lock of yours is released: its destructor may post).
  static absl::Status PostToSlot(uint8_t index, uint32_t generation,
                                 absl::AnyInvocable<void()>& fn);
  // PostToSlot to the scheduler of task `c` (not a proxy).
  static absl::Status PostToTask(const TaskCore* c, absl::AnyInvocable<void()>& fn) {
    return PostToSlot(c->sched_index, c->sched_gen, fn);
  }

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
  // kResourceExhausted if the mailbox is bounded and full, unless the
  // sender took its unit already (`reserved`: a send from another thread),
  // which is given back if the task has ended.
  static absl::Status DeliverLocal(Scheduler& s, TaskCore* c, Value message,
                                   bool reserved = false) {
    return s.DeliverLocal(c, std::move(message), reserved);
  }
};

}  // namespace picos::internal

#endif  // PICOS_CORE_KERNEL_SCHEDULER_INTERNAL_H_
