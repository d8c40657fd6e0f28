// ThreadPool (pycos AsyncThreadPool): run blocking calls — a library that
// blocks, reading standard input — on a few threads of their own, and
// co_await their results from a task without blocking the scheduler.
//
//   picos::ThreadPool pool({.threads = 2, .queue_limit = 64});
//   // In a task:
//   absl::StatusOr<std::string> line = co_await pool.Run([]() -> absl::StatusOr<std::string> {
//     std::string s;
//     if (!std::getline(std::cin, s)) return absl::OutOfRangeError("end of input");
//     return s;
//   });
//
// What Run gives: a callable returning absl::StatusOr<T> or absl::Status is
// awaited as that; one returning void as absl::Status; one returning a plain
// T as absl::StatusOr<T>. An exception escaping the callable becomes
// kInternal (none crosses into the task).
//
// g++ 12: a lambda that captures objects with destructors (a shared_ptr),
// written as a temporary inside the co_await expression, has its captures
// released once too often (seen under ASan). Name the callable first:
//
//   auto job = [state] { return state->Compute(); };
//   absl::StatusOr<int> r = co_await pool.Run(job);
//
// Bounds: at most `threads` jobs run at once; at most `queue_limit` more wait
// for a thread, beyond which Run gives kResourceExhausted at once (the job
// is not run). After Shutdown() Run gives kFailedPrecondition; jobs still
// queued then are not run and their tasks get kCancelled.
//
// A task terminated (or timed out) while its job runs stops waiting at once;
// the job runs to its end on its thread and its result is dropped: nothing
// resumes the task's destroyed frame.
//
// Threads: Run is co_awaited from tasks (of any scheduler; each result goes
// back to the scheduler of the task that asked, through Scheduler::Post).
// The callable runs on a pool thread: it must not touch picos objects other
// than through calls marked "any thread". Shutdown and the destructor may be
// called from any thread that is not a pool thread; they wait for running
// jobs to finish, so a job blocked forever (stdin that never closes) blocks
// them too. A scheduler may be destroyed while its tasks' jobs still run:
// their results are then dropped.
//
// Liveness: while a job submitted from a scheduler's task has not delivered
// its result, that scheduler's loop stays alive, so a foreground Run() does
// not mistake a task waiting for its job for a deadlock. The waiting task
// sleeps until the result (or its timeout): nothing polls.
#ifndef PICOS_CORE_IO_THREAD_POOL_H_
#define PICOS_CORE_IO_THREAD_POOL_H_

#include <algorithm>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/io/io_internal.h"
#include "core/kernel/task.h"

struct uv_async_s;

namespace picos {

namespace internal {

// What Run(fn) gives for a callable returning R.
template <typename R>
struct PoolResult {
  using type = absl::StatusOr<R>;
};
template <>
struct PoolResult<void> {
  using type = absl::Status;
};
template <>
struct PoolResult<absl::Status> {
  using type = absl::Status;
};
template <typename T>
struct PoolResult<absl::StatusOr<T>> {
  using type = absl::StatusOr<T>;
};

// Where pool jobs deliver their results: a uv_async_t of the waiting task's
// scheduler, with a queue of its own. It counts the jobs submitted from that
// scheduler and not yet delivered, and keeps the handle referenced (the loop
// alive) exactly while that count is above zero: a foreground loop
// (Scheduler::Run) then sleeps until a result arrives instead of reporting
// a deadlock, and nothing wakes it in between. Shared by jobs and by an
// extension of the scheduler that closes it when the scheduler is destroyed.
class PoolReturnPath {
 public:
  explicit PoolReturnPath(Scheduler& scheduler);
  // Closes the handle (the scheduler is going): later results are dropped.
  void Close();

  // One more job will deliver a result here. Scheduler thread.
  void Begin();
  // A job counted by Begin() will not deliver one after all (refused by the
  // pool). Scheduler thread.
  void Cancel();

  // Queues `fn`, a job's result, to run on the scheduler's thread, where it
  // ends one counted job; dropped if the scheduler is gone. Any thread.
  void Post(absl::AnyInvocable<void()> fn);

 private:
  static void OnAsync(uv_async_s* handle);
  void Drain();
  void Done(size_t n);

  absl::Mutex mu_;
  uv_async_s* async_ ABSL_GUARDED_BY(mu_) = nullptr;  // null once closed
  std::vector<absl::AnyInvocable<void()>> results_ ABSL_GUARDED_BY(mu_);
  Scheduler* const scheduler_;  // outlives this path's use (Close)
  size_t outstanding_ = 0;      // scheduler thread only
};

// The return path of the scheduler running this thread, made on first use.
std::shared_ptr<PoolReturnPath> ReturnPathOfCurrentScheduler();

// One Run: what the waiting task and the pool thread share.
template <typename Out>
struct PoolJob {
  std::optional<Out> result;  // scheduler thread only, set before `completion`
  Completion completion;      // scheduler thread only
};

}  // namespace internal

class ThreadPool {
 public:
  struct Options {
    // Threads that run jobs, started on first use. At least 1.
    int threads = 4;
    // Jobs that may wait for a free thread; more are refused.
    size_t queue_limit = 1024;
  };

  ThreadPool();
  explicit ThreadPool(Options options);
  // Shutdown().
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs `fn()` on a pool thread and gives its result (see the top of this
  // file). Call it from a task, in the co_await: the job is queued by the
  // call itself, and the Task it returns waits for it. Gives kResourceExhausted (queue full), kFailedPrecondition (shut
  // down), kCancelled (terminated, or shut down before the job started),
  // kDeadlineExceeded (`timeout` passed; the job still runs, its result is
  // dropped). Suspends the calling task.
  template <typename F>
  auto Run(F&& fn, absl::Duration timeout = absl::InfiniteDuration())
      -> Task<typename internal::PoolResult<std::invoke_result_t<std::decay_t<F>&>>::type>;

  // Stops taking jobs, cancels those not started, waits for those running
  // and joins the threads. Idempotent. Not from a pool thread.
  void Shutdown();

  // Jobs waiting for a thread, and jobs running now.
  size_t queued() const;
  size_t running() const;
  const Options& options() const { return options_; }

 private:
  // A job: called with true on a pool thread to run it, or with false to
  // tell its task it will not run.
  using Work = absl::AnyInvocable<void(bool run)>;

  absl::Status Submit(Work work);
  void WorkerLoop();

  const Options options_;
  mutable absl::Mutex mu_;
  absl::CondVar work_ready_;
  std::deque<Work> queue_ ABSL_GUARDED_BY(mu_);
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

// --- implementation ---

namespace internal {

// The waiting half of Run: a coroutine whose parameters are a shared_ptr and
// plain values. (Run itself is not a coroutine: g++ 12 mishandles a closure
// passed by value to a coroutine, destroying captured state twice.)
template <typename Out>
Task<Out> AwaitPoolJob(std::shared_ptr<PoolJob<Out>> job, absl::Status submitted,
                       absl::Duration timeout) {
  if (!submitted.ok()) co_return Out(submitted);
  // One wait, woken only by the result (or the timeout): the return path,
  // not a polling timer, keeps a foreground loop alive meanwhile.
  const Deadline deadline(timeout);
  while (!job->completion.done()) {
    absl::Status st = co_await job->completion.Wait(deadline);
    if (!st.ok()) co_return Out(st);
  }
  co_return std::move(*job->result);
}

}  // namespace internal

template <typename F>
auto ThreadPool::Run(F&& fn, absl::Duration timeout)
    -> Task<typename internal::PoolResult<std::invoke_result_t<std::decay_t<F>&>>::type> {
  // Taken by reference and moved from: g++ 12 may destroy a temporary in a
  // co_await expression twice (once more when the frame ends), harmless only
  // if it has been moved from.
  using R = std::invoke_result_t<std::decay_t<F>&>;
  using Out = typename internal::PoolResult<R>::type;
  internal::CurrentTaskOrDie("ThreadPool::Run");
  auto job = std::make_shared<internal::PoolJob<Out>>();
  std::shared_ptr<internal::PoolReturnPath> path = internal::ReturnPathOfCurrentScheduler();
  path->Begin();
  absl::Status submitted = Submit([job, path, fn = std::decay_t<F>(std::forward<F>(fn))](bool run) mutable {
    std::optional<Out> out;
    if (!run) {
      out.emplace(absl::CancelledError("thread pool shut down before the job started"));
    } else {
      try {
        if constexpr (std::is_void_v<R>) {
          fn();
          out.emplace(absl::OkStatus());
        } else {
          out.emplace(fn());
        }
      } catch (const std::exception& e) {
        out.emplace(absl::InternalError(std::string("thread pool job threw: ") + e.what()));
      } catch (...) {
        out.emplace(absl::InternalError("thread pool job threw an exception of unknown type"));
      }
    }
    // The job's state is touched on the scheduler thread only; if the task
    // has gone, the closure finds nobody waiting and drops the result.
    path->Post([job, out = std::move(out)]() mutable {
      job->result = std::move(out);
      job->completion.Complete();
    });
  });
  if (!submitted.ok()) path->Cancel();
  return internal::AwaitPoolJob<Out>(std::move(job), std::move(submitted), timeout);
}

}  // namespace picos

#endif  // PICOS_CORE_IO_THREAD_POOL_H_
