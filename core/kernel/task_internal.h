// Internals of tasks shared by task.h, scheduler.cc and the primitives built
// on them (channels, locks, I/O). Not part of the public API: the layout of
// TaskCore is tuned for memory (a million suspended tasks) and may change.
#ifndef PICOS_CORE_KERNEL_TASK_INTERNAL_H_
#define PICOS_CORE_KERNEL_TASK_INTERNAL_H_

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/kernel/handles.h"
#include "core/kernel/value.h"

namespace picos {
class Scheduler;
class Completer;  // proxy.h
class TaskProxy;  // proxy.h

namespace internal {

// One queued message. Nodes are recycled through a per-scheduler free list.
struct MessageNode {
  MessageNode* next;
  Value value;
};

// Why a blocked task was made runnable.
enum WakeReason : uint8_t {
  kWakeNone = 0,
  kWakeEvent,      // what it waited for happened
  kWakeTimeout,    // its timeout expired first
  kWakeInterrupt,  // Terminate() or Throw()
};

enum TaskFlag : uint8_t {
  kFlagTerminateRequested = 1 << 0,  // Terminate() called, not yet seen
  kFlagTerminateDelivered = 1 << 1,  // a wait returned kCancelled
  kFlagThrowPending = 1 << 2,        // Throw() called, not yet seen
  kFlagFinished = 1 << 3,            // FinishTask ran
  kFlagHotSwappable = 1 << 4,        // HotSwappable(true): HotSwap may replace it (hot_swap.h)
  kFlagParkedInReceive = 1 << 5,     // last parked in Receive(), not resumed since (hot_swap.cc)
  kFlagSwapPending = 1 << 6,         // a HotSwap waits for the next swap point (hot_swap.cc)
  kFlagDestroyedWhileQueued = 1 << 7,  // DestroyTask'd in the ready ring, whose entry holds a ref
};

inline constexpr uint8_t kInterruptFlags = kFlagTerminateRequested | kFlagThrowPending;
// Both set: Receive() parks even with messages waiting, so that the swap is
// delivered there (ParkInReceive).
inline constexpr uint8_t kSwapAtReceive = kFlagHotSwappable | kFlagSwapPending;
inline constexpr uint32_t kNoTimer = 0xffffffffu;
inline constexpr uint32_t kNotRegistered = 0xffffffffu;

struct TaskCore;

// A bounded count with waiters (capacity_internal.h): a bounded mailbox.
class Capacity;
struct CapacityDeleter {
  void operator()(Capacity* c) const;  // capacity.cc
};

// The hot-swap state of a task that is or was swappable or asked to swap
// (hot_swap.cc). An interface, so that the kernel reaches it at the task's
// swap points and at its end without depending on hot_swap.
class HotSwapHooks {
 public:
  virtual ~HotSwapHooks() = default;
  // `c` is parked at its swap point (Receive), swappable, with a swap
  // pending; control is back in its scheduler's loop.
  virtual void AtSwapPoint(TaskCore* c) = 0;
  // `c` has ended: a swap still pending fails. Called once, from Finish.
  virtual void TaskEnded(TaskCore* c) = 0;
};

// A task's place on a wait list (joiners, lock waiters, I/O). The sequence
// number tells a stale entry (the task timed out, or was interrupted, and
// waits for something else now) from a live one without unlinking on wake.
struct WaitToken {
  TaskRef task;
  uint32_t seq = 0;
};

// What an ended task leaves behind, and what few tasks need while alive.
// Allocated on first need so that the common task does not pay for it.
struct TaskExtra {
  std::string name;
  uint64_t id = 0;
  Value resume_value;            // passed by Resume()
  absl::Status thrown;           // passed by Throw()
  absl::Status result_status;    // set when the task ends
  Value result_value;            // set when the task ends
  std::vector<WaitToken> joiners;
  // Called on the scheduler thread once the task has ended and its result is
  // set. Monitors and names hang off this.
  std::vector<absl::AnyInvocable<void(TaskCore*)>> finish_hooks;
  // Does not keep Scheduler::Run() going (SpawnOptions::daemon).
  bool daemon = false;
  // A TaskGroup reports its error (task_group.h): the scheduler does not log it.
  bool error_reported = false;
  std::unique_ptr<HotSwapHooks> hot_swap;  // hot_swap.cc
  // SpawnOptions::mailbox_limit: one unit per queued message (and per
  // message on its way from another thread); null when unbounded. Set
  // before the task's handle is given out, then never changed.
  std::unique_ptr<Capacity, CapacityDeleter> mailbox_room;
};

// The bound on `c`'s mailbox, or null (the common, unbounded case).
inline Capacity* MailboxRoom(const TaskCore* c);

// The control block of a task. 56 bytes: every field here is paid a million
// times in the suspended-task benchmark. Owned by references: the scheduler
// holds one while the task is alive, each TaskRef one more.
struct TaskCore {
  std::atomic<uint32_t> refs{1};
  std::atomic<TaskState> state{TaskState::kReady};
  uint8_t wake = kWakeNone;
  uint8_t flags = 0;
  uint8_t sched_index = 0;       // index into the process's scheduler table
  uint32_t timer_index = kNoTimer;  // position in the scheduler's timer heap
  uint32_t wait_seq = 0;         // bumped at every blocking wait
  uint32_t all_index = kNotRegistered;  // position in the scheduler's task list
  // The generation of its scheduler's slot (SchedulerSlot): with
  // sched_index, what another thread needs to reach the scheduler safely.
  // Fills what was padding before mbox_tail.
  uint32_t sched_gen = 0;
  MessageNode* mbox_tail = nullptr;  // circular list: tail->next is the head
  std::coroutine_handle<> root;  // outermost frame: destroyed to kill the task
  std::coroutine_handle<> leaf;  // innermost frame: resumed to continue it
  TaskExtra* extra = nullptr;

  // Made on first need. The scheduler thread makes it for most uses; a
  // handle's id() or DebugString() on another thread may race it, so the
  // pointer is published with a compare-and-swap and the loser's copy freed.
  TaskExtra& Extra() {
    std::atomic_ref<TaskExtra*> slot(extra);
    TaskExtra* x = slot.load(std::memory_order_acquire);
    if (x == nullptr) {
      auto* fresh = new TaskExtra;
      if (slot.compare_exchange_strong(x, fresh, std::memory_order_acq_rel)) {
        x = fresh;
      } else {
        delete fresh;
      }
    }
    return *x;
  }
  bool mailbox_empty() const { return mbox_tail == nullptr; }
  TaskState load_state() const { return state.load(std::memory_order_relaxed); }
  void set_state(TaskState s) { state.store(s, std::memory_order_relaxed); }
  // The task's scheduler, for its own thread; on another thread only to
  // compare with the running scheduler (it may be under destruction there,
  // and once the task has ended the slot may hold a later scheduler).
  Scheduler* scheduler() const;
};
inline Capacity* MailboxRoom(const TaskCore* c) {
  // Another thread may be publishing `extra` now (Extra()): read it as the
  // atomic it is there. (A plain load on x86; a bounded task's extra is
  // made before its handle is given out.)
  TaskExtra* x = std::atomic_ref<TaskExtra*>(const_cast<TaskCore*>(c)->extra)
                     .load(std::memory_order_acquire);
  return x != nullptr ? x->mailbox_room.get() : nullptr;
}

static_assert(sizeof(TaskCore) == 56, "TaskCore is paid a million times: keep it 56 bytes");

// The control block of a handle made by MakeTaskProxy (proxy.h): the task
// lives elsewhere and every operation goes to `proxy`. Its scheduler index is
// 0, a slot no scheduler takes, so that scheduler() is null: the checks that
// send a local task's operation to its scheduler never mistake a proxy for
// a local task, and the local fast paths need no test of their own.
struct ProxyCore final : TaskCore {
  explicit ProxyCore(std::unique_ptr<TaskProxy> p);  // proxy.cc
  ~ProxyCore();
  std::unique_ptr<TaskProxy> proxy;
};

inline bool IsProxy(const TaskCore* c) { return c->sched_index == 0; }
inline TaskProxy* ProxyOf(TaskCore* c) { return static_cast<ProxyCore*>(c)->proxy.get(); }

// A task's wait for a Completer (proxy.h): Join of a task elsewhere, Locate
// at a peer, Deliver on a remote channel. One word in the awaiter; the shared
// state is made only when the task blocks.
class CompletionWait {
 public:
  CompletionWait() = default;
  CompletionWait(const CompletionWait&) = delete;
  CompletionWait& operator=(const CompletionWait&) = delete;
  // Abandons a wait still pending (the task was destroyed while waiting).
  ~CompletionWait();

  // Call in await_suspend after Block(c, ...): the completer that wakes `c`.
  Completer Start(TaskCore* c);
  // Call in await_resume: the result if it arrived; else nullopt, and the
  // wait is abandoned (a late completion is dropped).
  std::optional<absl::StatusOr<Value>> Take();
  bool started() const { return state_ != nullptr; }

 private:
  struct State;
  State* state_ = nullptr;
};

// The task running on this thread, or null outside tasks.
extern thread_local TaskCore* t_current_task;

// Set by every way a task gives control back to its scheduler (Block, a
// yield, its end). The scheduler clears it before each resume and checks it
// after: a task that comes back without it was suspended by something that
// is not a picos awaiter, and would otherwise hang unseen. g++ 12.2 does this
// for `if ((co_await X).ok())` (it suspends without calling await_suspend):
// such a task is ended with kInternal and a log line naming the cause.
extern thread_local bool t_task_parked;

// The lowest stack address a task may reach at a co_await of a sub-task
// before picos decides that symmetric transfer is not a tail call; set by the
// scheduler before it resumes tasks, null (no check) elsewhere. See
// CallAwaiter in task.h.
extern thread_local const char* t_stack_floor;

// How far below the scheduler's frame a task's co_await of a sub-task may
// be. With tail calls the depth there is a few frames, whatever the number
// of awaits; without them every sub-call that completes at once adds a
// frame, and this is reached long before an 8 MiB stack overflows.
inline constexpr size_t kStackBudget = 256 * 1024;

// Aborts the process with a message naming the missing compiler flag.
[[noreturn]] void StackGrowsAcrossAwaits(const void* frame);

// Asserts that the caller runs inside a task and returns it.
TaskCore* CurrentTaskOrDie(const char* what);

inline bool InterruptPending(const TaskCore* c) { return (c->flags & kInterruptFlags) != 0; }

// Takes a pending Terminate() (as kCancelled) or Throw() (as its error);
// OK if none is pending.
absl::Status TakeInterrupt(TaskCore* c);

// Blocks the current task `c`, whose innermost frame is `h`, in `state` until
// something wakes it or `timeout` passes (absl::InfiniteDuration() for none).
// A task that was already told to terminate and waits again is destroyed
// here instead (by the scheduler, once control returns to it).
void Block(TaskCore* c, std::coroutine_handle<> h, TaskState state, absl::Duration timeout);

// Block() in state kReceiving for Receive(), which is also where a task may
// be hot-swapped (hot_swap.h): marks the task as parked at its swap point.
void ParkInReceive(TaskCore* c, std::coroutine_handle<> h, absl::Duration timeout);

// Makes a blocked task runnable with `reason`. False (and no effect) if it is
// not blocked. Scheduler thread only.
bool Wake(TaskCore* c, WakeReason reason);

// Wakes the task behind a wait-list token if it still waits on that list.
// Works from the task's scheduler thread only.
bool WakeToken(const WaitToken& token, WakeReason reason);

// A token for the current wait of `c`; valid until `c` blocks again. Take it
// before Block() and add one to seq, or after Block().
inline WaitToken TokenFor(TaskCore* c) { return WaitToken{TaskRef::Adopt((Ref(c), c)), c->wait_seq}; }

// Called by the root frame's final awaiter: records the result, wakes
// joiners, runs finish hooks and releases the task. The frame `root` is
// destroyed.
void FinishCurrentTask(absl::Status status, Value value, std::coroutine_handle<> root);

// Turns an escaping exception into a status (kInternal with its message).
absl::Status StatusFromException(std::exception_ptr e);

}  // namespace internal
}  // namespace picos

#endif  // PICOS_CORE_KERNEL_TASK_INTERNAL_H_
