// Scheduler: one libuv loop, one thread, many tasks.
//
// A Scheduler runs its tasks on one thread: the thread that calls Run() or
// RunUntil() (pycos's main program style), or a thread of its own started by
// StartThread() (pycos's default). Tasks of one scheduler never run at the
// same time, so they share data without locks. Other threads reach the
// scheduler only through the calls marked "any thread", which queue work in a
// mutex-protected inbox and wake the loop with a uv_async_t.
//
//   picos::Scheduler s;
//   picos::TaskRef t = s.Spawn(Compute, 10);       // Task<int> Compute(int)
//   absl::StatusOr<picos::Value> r = s.RunUntil(t);  // 10's result, as a Value
//
//   picos::Scheduler bg;
//   bg.StartThread();
//   bg.Spawn(Server);            // from this thread: thread-safe
//   ...
//   bg.Stop();                   // ends the thread; suspended tasks are destroyed
//
// Time: every timeout, Sleep and deadline is on the scheduler's monotonic
// clock, NowNs(): the machine's (uv_hrtime) unless Options::clock gives a
// VirtualClock (core/kernel/clock.h), under which tests and simulations run
// hours of timeouts in milliseconds, the same way every run.
//
// Stopping destroys every task still suspended (their destructors run on the
// scheduler's thread) and every queued message: nothing leaks, nothing runs on.
#ifndef PICOS_CORE_KERNEL_SCHEDULER_H_
#define PICOS_CORE_KERNEL_SCHEDULER_H_

#include <atomic>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/kernel/clock.h"
#include "core/kernel/handles.h"
#include "core/kernel/poll_before_sleep_internal.h"
#include "core/kernel/task.h"
#include "core/kernel/value.h"

struct uv_loop_s;
struct uv_async_s;
struct uv_timer_s;

namespace picos {

namespace internal {
class SchedulerHooks;

// Scheduler::Options::poll_before_sleep's default: 50 us, or what the
// environment variable PICOS_POLL_BEFORE_SLEEP says (a duration from 0,
// which turns polling off, to 1s: "0", "20us"), read once per process. A
// value that does not parse or is out of range is logged and ignored.
absl::Duration DefaultPollBeforeSleep();
// PICOS_POLL_BEFORE_SLEEP's value, checked; kInvalidArgument saying why not.
absl::StatusOr<absl::Duration> ParsePollBeforeSleep(const std::string& text);

// The key of one kind of per-scheduler state (Scheduler::State<T>): a small
// number handed out on first use of each type.
size_t NewExtensionKey();
template <typename T>
size_t ExtensionKey() {
  static const size_t key = NewExtensionKey();
  return key;
}

template <typename T>
struct IsTask : std::false_type {};
template <typename T>
struct IsTask<Task<T>> : std::true_type {};

// Keeps a callable with state alive for as long as the coroutine it returns
// runs: a lambda's captures live in the lambda object, not in the frame.
// The arguments are moved into the call: it happens once.
template <typename F, typename... Args>
auto OwnCallable(F fn, Args... args) -> std::invoke_result_t<F&, Args&&...> {
  using R = typename std::invoke_result_t<F&, Args&&...>::value_type;
  if constexpr (std::is_void_v<R>) {
    co_await std::invoke(fn, std::move(args)...);
  } else {
    co_return co_await std::invoke(fn, std::move(args)...);
  }
}
}  // namespace internal

// How a task is started (Scheduler::Spawn).
//
//   s.Spawn({.name = "acceptor", .daemon = true}, AcceptLoop, server);
struct SpawnOptions {
  // Shown in logs and TaskRef::DebugString(); empty for none.
  std::string name;
  // A daemon (pycos daemon=True) does not keep a program alive: Run() and
  // RunMain() end once every task that is not a daemon has ended, and then
  // destroy the daemons as Stop() would (each ends with kCancelled, its
  // destructors run, its monitors hear of it). For servers and helpers that
  // live as long as there is work for them. See also SetDaemon().
  bool daemon = false;
  // Most messages its mailbox holds; 0 (the default) for no bound. Past it
  // TaskRef::Send gives the sender kResourceExhausted (from any thread:
  // messages on their way from another thread count), and
  // `co_await task.Deliver(message, timeout)` waits for room. A channel
  // skips a subscriber whose mailbox is full (the message is not counted as
  // reached). Receiving makes room.
  uint32_t mailbox_limit = 0;
};

class Scheduler {
 public:
  struct Options {
    // Shown in logs and thread names.
    std::string name = "picos";
    // Most closures queued from other threads at once and not yet run by
    // the loop: Post(), and every call from another thread that queues
    // work (Spawn, TaskRef::Send, Resume, Terminate, Throw, Channel::Send,
    // Monitor, a cross-thread Join's wake), fails beyond it with
    // kResourceExhausted (Spawn gives a null TaskRef). A running loop
    // empties the inbox at every turn, so this bounds the backlog of work,
    // not the messages it delivers: those are bounded per task by
    // SpawnOptions::mailbox_limit.
    size_t inbox_limit = 1 << 20;
    // Most recycled message nodes kept for reuse.
    size_t message_cache = 1 << 16;
    // Time for this scheduler's timeouts, sleeps and deadlines: null for the
    // machine's monotonic clock, or a VirtualClock (core/kernel/clock.h), which
    // several schedulers may share.
    std::shared_ptr<VirtualClock> clock;
    // How long the loop, with nothing left to run, polls I/O and the inbox
    // before it blocks in the kernel, when its traffic has lately come back
    // within this time (a ping-pong, a request and its answer): waking a
    // blocked thread costs tens of microseconds on a virtual machine, more
    // than a remote round trip's own work. A poll that finds nothing turns
    // polling off until a wait ends that quickly again, so an idle loop
    // never polls and a busy one burns at most this much per wait
    // (core/kernel/poll_before_sleep_internal.h says how it decides).
    // Zero: always block at once; at most a second. Not under a virtual
    // clock. The default is 50 us, unless PICOS_POLL_BEFORE_SLEEP sets
    // another for every scheduler of the process (e.g. "0" on a host where
    // a core must never spin).
    absl::Duration poll_before_sleep = internal::DefaultPollBeforeSleep();
  };

  Scheduler();
  explicit Scheduler(Options options);
  // Stops (see Stop()) and destroys every remaining task. Call from the
  // scheduler's thread or from the thread that owns it when no loop runs.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts `task` on this scheduler; it runs when the loop next turns. Any
  // thread. A null TaskRef (and a log line) if the scheduler has stopped,
  // the task is empty, or (from another thread) the inbox is full.
  template <typename T>
  TaskRef Spawn(Task<T> task) {
    return SpawnHandle(task.release(), {});
  }
  template <typename T>
  TaskRef SpawnNamed(std::string name, Task<T> task) {
    return SpawnHandle(task.release(), SpawnOptions{.name = std::move(name)});
  }
  template <typename T>
  TaskRef Spawn(SpawnOptions options, Task<T> task) {
    return SpawnHandle(task.release(), std::move(options));
  }

  // Calls the coroutine function `fn(args...)` and spawns what it returns.
  // A callable with state (a capturing lambda) is kept alive with the task.
  template <typename F, typename... Args>
    requires std::invocable<F&, Args&&...> &&
             internal::IsTask<std::invoke_result_t<F&, Args&&...>>::value
  TaskRef Spawn(F&& fn, Args&&... args) {
    return SpawnNamed(std::string(), std::forward<F>(fn), std::forward<Args>(args)...);
  }
  template <typename F, typename... Args>
    requires std::invocable<F&, Args&&...> &&
             internal::IsTask<std::invoke_result_t<F&, Args&&...>>::value
  TaskRef SpawnNamed(std::string name, F&& fn, Args&&... args) {
    return Spawn(SpawnOptions{.name = std::move(name)}, std::forward<F>(fn),
                 std::forward<Args>(args)...);
  }
  // With options: `s.Spawn({.name = "server", .daemon = true}, Serve, port)`.
  template <typename F, typename... Args>
    requires std::invocable<F&, Args&&...> &&
             internal::IsTask<std::invoke_result_t<F&, Args&&...>>::value
  TaskRef Spawn(SpawnOptions options, F&& fn, Args&&... args) {
    using D = std::decay_t<F>;
    if constexpr (std::is_empty_v<D> || std::is_pointer_v<D> || std::is_function_v<D>) {
      return Spawn(std::move(options), std::invoke(fn, std::forward<Args>(args)...));
    } else {
      return Spawn(std::move(options),
                   internal::OwnCallable(D(std::forward<F>(fn)),
                                         std::decay_t<Args>(std::forward<Args>(args))...));
    }
  }

  // Runs the loop on this thread until every task that is not a daemon has
  // ended, or Stop() is called; then destroys the daemons that are left (see
  // SpawnOptions::daemon). kFailedPrecondition if tasks that are not daemons
  // remain that nothing can ever wake (no timer, no I/O, no runnable task, no
  // task waiting for a completion from another thread, e.g. a Join of a task
  // of another scheduler): a deadlock, reported, not hung on.
  absl::Status Run();

  // Runs the loop on this thread until `task` ends; gives its result.
  // Other tasks stay as they are and go on at the next Run. Errors as Run().
  absl::StatusOr<Value> RunUntil(const TaskRef& task);

  // Runs the loop on a thread of its own until Stop(). With a thread of its
  // own the loop waits for work from other threads instead of reporting a
  // deadlock.
  absl::Status StartThread();

  // Ends the loop, from any thread, and destroys the tasks still suspended.
  // From another thread it waits for a StartThread() thread to finish.
  // Later Spawn() calls fail. Idempotent.
  void Stop();

  // Runs `fn` on the scheduler's thread at its next turn. Any thread that
  // keeps this Scheduler alive (its owner's); a thread that holds only a
  // handle reaches the scheduler through the handle, which checks that the
  // scheduler still exists. OK means queued: `fn` runs unless the scheduler
  // stops first, in which case it is destroyed unrun. kResourceExhausted
  // when Options::inbox_limit closures already wait; kFailedPrecondition
  // once stopped. A refused `fn` is destroyed before Post returns.
  absl::Status Post(absl::AnyInvocable<void()> fn);

  // Blocks a thread that is not this scheduler's until `task` ends or
  // `timeout` passes, and gives its result (pycos Task.value()).
  absl::StatusOr<Value> WaitFor(const TaskRef& task,
                                absl::Duration timeout = absl::InfiniteDuration());

  // True on the thread that runs this scheduler's loop now.
  bool InLoopThread() const;

  // The scheduler's monotonic clock in nanoseconds: uv_hrtime() normally,
  // the virtual clock's time when Options::clock sets one. Every picos
  // deadline (timeouts, I/O, supervisor windows) is measured on it, never
  // on the wall clock, so a step of the system time neither stretches nor
  // cuts a timeout. Any thread.
  int64_t NowNs() const;
  // The virtual clock, or null.
  const std::shared_ptr<VirtualClock>& clock() const { return options_.clock; }

  // The scheduler whose loop runs on this thread, or null.
  static Scheduler* Current();

  // Tasks spawned and not yet ended, daemons included.
  size_t task_count() const { return tasks_.size(); }
  // Of those, the daemons.
  size_t daemon_count() const { return daemon_count_; }
  // Timeouts pending in the timer heap (each costs 16 bytes there).
  size_t timer_count() const { return timers_.size(); }
  // Times a task was resumed so far: how often tasks woke, for figures and
  // for tests that a wait does not poll. Scheduler thread.
  uint64_t resume_count() const { return resume_count_; }
  // Polls before sleeping (Options::poll_before_sleep) so far: how many,
  // how many found work before their window ran out, and the time spent
  // polling. Scheduler thread.
  struct PollStats {
    uint64_t polls = 0;
    uint64_t found = 0;
    absl::Duration polled;
  };
  PollStats poll_stats() const {
    return {poll_.polls(), poll_.found(), absl::Nanoseconds(poll_.polled_ns())};
  }
  const std::string& name() const { return options_.name; }
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }

  // The libuv loop, for I/O built on picos (transports). Scheduler thread only.
  uv_loop_s* uv_loop() { return loop_.get(); }
  // The libuv handles on this loop other than the scheduler's own, by type
  // name ("tcp", "pipe" ...), those being closed included: what a program
  // (or a test) that has closed everything leaves is none. Scheduler thread,
  // or while no loop runs.
  std::vector<std::string> OpenHandles();

  // Per-scheduler state of a library built on picos (the name registry, the
  // thread pool's return path, later a peer table), keyed by a type that the
  // library owns, so the scheduler names none of the layers above it. The
  // first State<T>() on a scheduler makes a T (from `T(Scheduler&)` if it has
  // that constructor, else `T()`); later calls give the same object. It is
  // destroyed with the scheduler, after the scheduler's tasks and before its
  // loop closes, so it may own libuv handles of the loop (and close them in
  // its destructor). Scheduler thread only.
  //
  //   struct Registry : picos::Scheduler::Extension { ... };
  //   Registry& r = scheduler.State<Registry>();
  struct Extension {
    virtual ~Extension() = default;
  };
  template <typename T>
    requires std::derived_from<T, Extension>
  T& State() {
    std::unique_ptr<Extension>& slot = ExtensionSlot(internal::ExtensionKey<T>());
    if (!slot) {
      if constexpr (std::is_constructible_v<T, Scheduler&>) {
        slot = std::make_unique<T>(*this);
      } else {
        slot = std::make_unique<T>();
      }
    }
    return static_cast<T&>(*slot);
  }

 private:
  // The run queue, timers and mailboxes, reached by the kernel through
  // internal::SchedulerHooks (scheduler_internal.h).
  friend class internal::SchedulerHooks;
  friend absl::Status SetDaemon(const TaskRef& task, bool daemon);

  void PushReady(internal::TaskCore* c) {
    if (ready_count_ == ready_.size()) GrowReady();
    ready_[(ready_head_ + ready_count_) & (ready_.size() - 1)] = c;
    ++ready_count_;
  }
  void AddTimer(internal::TaskCore* c, absl::Duration timeout);
  void RemoveTimer(internal::TaskCore* c);
  void ScheduleKill(internal::TaskCore* c);
  void DestroyTask(internal::TaskCore* c, absl::Status why);
  void RunDeferred();
  void Finish(internal::TaskCore* c, absl::Status status, Value value);
  internal::MessageNode* NewNode(Value v);
  void FreeNode(internal::MessageNode* n);
  absl::Status DeliverLocal(internal::TaskCore* c, Value message, bool reserved);
  std::unique_ptr<Extension>& ExtensionSlot(size_t key);
  // Tasks blocked until a Completer (proxy.h) completes from another thread:
  // while any wait, a loop run in the foreground waits for its inbox instead
  // of reporting a deadlock.
  void AddExternalWait() { ++external_waits_; }
  void RemoveExternalWait() { --external_waits_; }

  // Work outside the loop that will Post back to it (a thread-pool job):
  // internal::SchedulerHooks::AddExternalWork.
  void AddExternalWork(int delta) { external_work_.fetch_add(delta, std::memory_order_acq_rel); }

  // Wakes, idles and advances the loop under a virtual clock.
  friend class VirtualClock;
  struct TimerEntry {
    int64_t deadline_ns;
    internal::TaskCore* core;
  };

  // Post() that leaves a refused `fn` with the caller, who destroys it
  // after letting go of any lock held (a closure's destructor may post).
  absl::Status PostOrKeep(absl::AnyInvocable<void()>& fn);
  TaskRef SpawnHandle(std::coroutine_handle<> h, SpawnOptions options);
  void Register(internal::TaskCore* c);
  void EndDaemons();
  void GrowReady();
  absl::Status Loop(const std::function<bool()>& done, bool wait_for_posts);
  void RunReady();
  void ExpireTimers(int64_t now_ns);
  void ArmTimer();
  // For the virtual clock: wake the loop (any thread); whether closures
  // wait in the inbox (any thread); expire what is due now (loop thread).
  void WakeLoop();
  bool HasPosts();
  void ExpireDueTimers() {
    if (!timers_.empty()) ExpireTimers(NowNs());
  }
  // One blocking step of the loop under a virtual clock; false (and the
  // deadlock in `*result`) when nothing can ever wake it.
  bool WaitVirtual(bool wait_for_posts, absl::Status* result);
  // Polls I/O (and so the inbox, whose wake-up is a libuv handle) for up to
  // `budget_ns`, or until the next deadline: whether it found work.
  bool PollBeforeSleeping(int64_t budget_ns);
  void DrainInbox();
  void Kill(internal::TaskCore* c, absl::Status why);
  void DestroyAll();
  void TimerSiftUp(uint32_t i);
  void TimerSiftDown(uint32_t i);
  void TimerSwap(uint32_t a, uint32_t b);
  void TimerRemoveAt(uint32_t i);

  Options options_;
  uint8_t index_;
  // Which claim of slot index_ this is: a handle whose task was of an
  // earlier scheduler in the same slot must not reach this one.
  uint32_t generation_ = 0;
  std::unique_ptr<uv_loop_s> loop_;
  std::unique_ptr<uv_async_s> async_;
  std::unique_ptr<uv_timer_s> timer_;
  int64_t armed_deadline_ns_ = -1;
  bool timer_fired_ = false;  // in the last blocking wait
  internal::PollBeforeSleep poll_;

  // Ready queue: a ring buffer of tasks (capacity a power of two).
  std::vector<internal::TaskCore*> ready_;
  size_t ready_head_ = 0;
  size_t ready_count_ = 0;
  uint64_t resume_count_ = 0;

  // A vector in fixed blocks: growing it never copies, so a million pending
  // timeouts cost 16 bytes each at their peak, not the 24-32 of a vector
  // that doubles (old and new buffers both live while it copies).
  template <typename T>
  class BlockVector {
   public:
    static constexpr size_t kBlock = 4096;
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    T& operator[](size_t i) { return blocks_[i / kBlock][i % kBlock]; }
    const T& operator[](size_t i) const { return blocks_[i / kBlock][i % kBlock]; }
    void push_back(const T& v) {
      if (size_ == blocks_.size() * kBlock) blocks_.push_back(std::make_unique<T[]>(kBlock));
      (*this)[size_++] = v;
    }
    void pop_back() {
      --size_;
      // Keep one spare block so that a size going back and forth over a
      // block boundary does not allocate each time.
      if (blocks_.size() * kBlock >= size_ + 2 * kBlock) blocks_.pop_back();
    }
    void clear() {
      blocks_.clear();
      size_ = 0;
    }

   private:
    std::vector<std::unique_ptr<T[]>> blocks_;
    size_t size_ = 0;
  };

  BlockVector<TimerEntry> timers_;  // binary min-heap on deadline
  std::vector<internal::TaskCore*> tasks_;  // every live task; core->all_index
  size_t daemon_count_ = 0;                 // of tasks_, those with extra->daemon
  std::vector<internal::TaskCore*> kills_;  // to destroy once control returns
  std::vector<absl::AnyInvocable<void()>> deferred_;  // to run once control returns
  internal::MessageNode* free_nodes_ = nullptr;
  size_t free_node_count_ = 0;

  absl::Mutex inbox_mu_;
  std::vector<absl::AnyInvocable<void()>> inbox_ ABSL_GUARDED_BY(inbox_mu_);
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<std::thread::id> loop_thread_{};
  std::atomic<int> external_work_{0};
  bool running_ = false;
  bool destroying_ = false;
  uint32_t external_waits_ = 0;
  std::thread thread_;
  std::vector<std::unique_ptr<Extension>> extensions_;  // by ExtensionKey<T>()
  std::vector<const void*> own_handles_;  // internal::SchedulerHooks::AdoptHandle
};

// The scheduler of the running task. Asserts that the caller is a task.
Scheduler& ThisScheduler();

// Makes `task` a daemon, or no longer one (pycos Task.set_daemon): see
// SpawnOptions::daemon. A task may call it on itself: SetDaemon(Self()).
// Scheduler thread of `task`; kFailedPrecondition from elsewhere or once the
// task has ended, kInvalidArgument for a null handle.
absl::Status SetDaemon(const TaskRef& task, bool daemon = true);

namespace internal {
// 0 for OK; else prints "program: status" to standard error and gives 1.
int ExitCode(const char* program, const absl::Status& status);
}  // namespace internal

// A program's main task: runs `fn(args...)` as the first task of a fresh
// Scheduler on this thread, and gives the process's exit code. Once the main
// task has ended well, the program goes on until every other task that is
// not a daemon has ended too (pycos: a program waits for its non-daemon
// tasks), then destroys the daemons. 0 if all that went well; 1 (and
// "program: error" on standard error) if the main task ended with an error
// (the other tasks are then destroyed at once) or the loop deadlocked.
//
//   int main(int argc, char** argv) { return picos::RunMain("server", Serve, port); }
template <typename F, typename... Args>
int RunMain(const char* program, F&& fn, Args&&... args) {
  Scheduler s;
  TaskRef main_task = s.Spawn(std::forward<F>(fn), std::forward<Args>(args)...);
  absl::StatusOr<Value> r = s.RunUntil(main_task);
  if (!r.ok()) return internal::ExitCode(program, r.status());
  return internal::ExitCode(program, s.Run());
}

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_SCHEDULER_H_
