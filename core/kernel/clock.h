// VirtualClock: time that does not pass by itself, for tests and simulations.
//
// A Scheduler made with `Options::clock` reads its time from the clock
// instead of the machine's monotonic clock: Scheduler::NowNs(), Sleep, the
// timeout of every wait (Receive, Suspend, Join, locks, channels, I/O),
// PeriodicTimer and the supervisor's restart window all follow it. A
// 30-second heartbeat expiry then takes milliseconds of real time and the
// same steps in every run.
//
// Two modes:
//
//   kSimulated — whenever every task of every scheduler running on the clock
//     waits, and no libuv request (connect, write, file, DNS ...) and no
//     thread-pool job is in flight, the clock jumps to the earliest pending
//     deadline (CAF's deterministic fixture, a discrete-event simulation).
//     A task sees time pass only while it waits, by exactly what it waited.
//
//       auto clock = std::make_shared<picos::VirtualClock>(picos::VirtualClock::kSimulated);
//       picos::Scheduler s(picos::Scheduler::Options{.clock = clock});
//       picos::TaskRef t = s.Spawn([]() -> picos::Task<> {
//         co_await picos::Sleep(absl::Hours(1));   // returns at once
//       });
//       (void)s.RunUntil(t);                       // clock->Now() == absl::Hours(1)
//
//   kManual — time moves only when Advance() or AdvanceTo() is called, from
//     a task or from any thread (kj's TimerImpl::advanceTo, Seastar's
//     manual_clock::advance). Timeouts that become due fire at once on the
//     calling task's scheduler (they are runnable when Advance returns) and
//     at the next turn of the other schedulers on the clock. The clock jumps:
//     a PeriodicTimer counts the ticks it missed, each timeout fires once.
//
//       auto clock = std::make_shared<picos::VirtualClock>();
//       ... a task of a scheduler on `clock` waits in Receive(absl::Seconds(30)) ...
//       clock->Advance(absl::Seconds(29));    // nothing happens
//       clock->Advance(absl::Seconds(1));     // its Receive gives kDeadlineExceeded
//
//     A loop run in the foreground (Scheduler::Run, RunUntil) whose tasks
//     all wait for virtual time, with no I/O and no other scheduler on the
//     clock that could advance it, reports a deadlock instead of hanging.
//
// Several schedulers, on one thread or on threads of their own, may share
// one clock (later: several simulated peers in one process). A simulated
// clock jumps only when all of those whose loop runs are idle; a message
// posted to one of them (TaskRef::Send from another scheduler, Post) keeps
// it from jumping until it has been handled. Schedulers whose loop does not
// run take no part: their due timeouts fire when their loop next runs.
//
// Bytes between schedulers of this process (a socket from one to another:
// two simulated peers) are waited for: after any work on any scheduler, the
// clock jumps only once every scheduler has polled its I/O again and found
// nothing to do. Limits of the simulation: real I/O with other processes is
// not waited for (a simulated clock may jump while bytes are on their way
// from another process), and Scheduler::WaitFor and absl::Now() stay on
// real time.
//
// Threads: every method may be called from any thread. Time never goes back.
#ifndef PICOS_CORE_KERNEL_CLOCK_H_
#define PICOS_CORE_KERNEL_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace picos {

class Scheduler;

class VirtualClock {
 public:
  enum Mode {
    kManual,     // moves only by Advance / AdvanceTo
    kSimulated,  // also jumps to the next deadline when every task waits
  };

  // Starts at time zero (NowNs() == 0).
  explicit VirtualClock(Mode mode = kManual);
  VirtualClock(const VirtualClock&) = delete;
  VirtualClock& operator=(const VirtualClock&) = delete;
  // Schedulers hold the clock by shared_ptr: none is attached any more.
  ~VirtualClock();

  Mode mode() const { return mode_; }

  // The clock's time in nanoseconds since it was made.
  int64_t NowNs() const { return now_ns_.load(std::memory_order_acquire); }
  // The same, as a duration since it was made.
  absl::Duration Now() const { return absl::Nanoseconds(NowNs()); }

  // Moves time forward by `d` (zero or less: nothing) and fires what became
  // due, as the overview says. Never suspends.
  void Advance(absl::Duration d);
  // Moves time forward to `t` since the clock was made; a time in the past
  // is ignored.
  void AdvanceTo(absl::Duration t);

  // How many times a simulated clock has jumped to a deadline (for tests
  // and traces).
  int64_t jumps() const { return jumps_.load(std::memory_order_relaxed); }

 private:
  friend class Scheduler;

  enum class State : uint8_t {
    kStopped,  // its loop does not run
    kBusy,     // runs tasks, or may: something is to be done
    kIdle,     // every task waits and nothing is in flight
  };
  struct Member {
    Scheduler* scheduler;
    State state;
    int64_t deadline_ns;  // its earliest timeout when idle; -1: none
    uint64_t work = 0;    // its resume count when it last said it was idle
    uint64_t epoch = 0;   // the quiet epoch it last said it was idle in
  };

  // What an idle scheduler does next.
  enum class Step {
    kJumped,    // the clock moved: expire timers and go on
    kBusy,      // work arrived meanwhile (its inbox is not empty): go on
    kWait,      // others still work: block until woken
    kNoTimers,  // all are idle and none has a timeout: nothing to jump to
  };

  // Called by Scheduler: at construction and destruction, when its loop
  // starts and ends (idempotent: StartThread counts it as running before its
  // thread runs, so that work posted to it meanwhile is not jumped over), when it has nothing to do (simulated mode), and when
  // work comes to it.
  void Attach(Scheduler* s) ABSL_LOCKS_EXCLUDED(mu_);
  void Detach(Scheduler* s) ABSL_LOCKS_EXCLUDED(mu_);
  void LoopStarts(Scheduler* s) ABSL_LOCKS_EXCLUDED(mu_);
  void LoopEnds(Scheduler* s) ABSL_LOCKS_EXCLUDED(mu_);
  // `work`: the scheduler's resume count. Work done anywhere since a
  // member last polled its I/O may have sent it bytes (a socket between two
  // schedulers of this process): the clock jumps only once every member has
  // polled, and found nothing, since the last work done by any of them.
  Step Idle(Scheduler* s, int64_t deadline_ns, uint64_t work) ABSL_LOCKS_EXCLUDED(mu_);
  void Busy(Scheduler* s) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs `post` (which queues work in the inbox of `s`) and marks `s` busy,
  // as one step under the clock's lock: Idle() sees either the work in the
  // inbox or `s` busy, never neither; and `s` is marked only for work it
  // has not yet seen (a late mark would leave it "busy" while it sleeps).
  template <typename F>
  void PostTo(Scheduler* s, F&& post) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (post()) MarkBusyLocked(s);
  }
  void MarkBusyLocked(Scheduler* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True if a scheduler other than `s` runs its loop on this clock (and so
  // may advance it or wake `s`).
  bool OthersRunning(const Scheduler* s) const ABSL_LOCKS_EXCLUDED(mu_);

  Member* Find(const Scheduler* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes every running member but `except` to look at the time again.
  void WakeOthers(const Scheduler* except) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Mode mode_;
  std::atomic<int64_t> now_ns_{0};
  std::atomic<int64_t> jumps_{0};
  mutable absl::Mutex mu_;
  std::vector<Member> members_ ABSL_GUARDED_BY(mu_);
  // Bumped whenever a member reports work since its last Idle.
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_CLOCK_H_
