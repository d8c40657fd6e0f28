#include "core/io/thread_pool.h"

#include <uv.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/scheduler_internal.h"
#include "core/kernel/status.h"

namespace picos {

namespace internal {

PoolReturnPath::PoolReturnPath(Scheduler& scheduler) : scheduler_(&scheduler) {
  auto* handle = new uv_async_t;
  PICOS_ASSERT(uv_async_init(scheduler.uv_loop(), handle, &PoolReturnPath::OnAsync) == 0);
  handle->data = this;
  // Referenced only while jobs are outstanding (Begin): an idle return path
  // keeps no loop alive.
  uv_unref(reinterpret_cast<uv_handle_t*>(handle));
  internal::SchedulerHooks::AdoptHandle(scheduler, handle);
  absl::MutexLock lock(&mu_);
  async_ = handle;
}

void PoolReturnPath::Close() {
  uv_async_t* handle;
  {
    // Under the lock: a pool thread posting now either finished its
    // uv_async_send or finds no handle.
    absl::MutexLock lock(&mu_);
    handle = std::exchange(async_, nullptr);
    results_.clear();
  }
  if (handle == nullptr) return;
  internal::SchedulerHooks::ReleaseHandle(*scheduler_, handle);
  uv_close(reinterpret_cast<uv_handle_t*>(handle),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
}

void PoolReturnPath::Begin() {
  // Work in flight outside the loop: a simulated clock must not jump past it
  // (a job that takes real time would see virtual time race ahead).
  internal::SchedulerHooks::AddExternalWork(*scheduler_, 1);
  if (outstanding_++ > 0) return;
  absl::MutexLock lock(&mu_);
  if (async_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(async_));
}

void PoolReturnPath::Cancel() { Done(1); }

void PoolReturnPath::Done(size_t n) {
  PICOS_ASSERT(n <= outstanding_);
  outstanding_ -= n;
  internal::SchedulerHooks::AddExternalWork(*scheduler_, -static_cast<int>(n));
  if (n == 0 || outstanding_ > 0) return;
  absl::MutexLock lock(&mu_);
  if (async_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(async_));
}

void PoolReturnPath::Post(absl::AnyInvocable<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (async_ == nullptr) {
    PICOS_LOG(debug, "thread pool result dropped: its scheduler is gone");
    return;
  }
  // Bounded by the pools' own bounds: one result per job admitted, and
  // each pool admits at most queue_limit + threads at a time.
  results_.push_back(std::move(fn));
  uv_async_send(async_);
}

void PoolReturnPath::OnAsync(uv_async_t* handle) {
  static_cast<PoolReturnPath*>(handle->data)->Drain();
}

void PoolReturnPath::Drain() {
  std::vector<absl::AnyInvocable<void()>> ready;
  {
    absl::MutexLock lock(&mu_);
    ready.swap(results_);
  }
  for (auto& fn : ready) fn();
  Done(ready.size());
}

namespace {

// Lives as long as its scheduler and closes the return path when it goes
// (before the loop closes: Scheduler::State).
struct ReturnPathExtension : Scheduler::Extension {
  explicit ReturnPathExtension(Scheduler& s) : path(std::make_shared<PoolReturnPath>(s)) {}
  ~ReturnPathExtension() override { path->Close(); }
  std::shared_ptr<PoolReturnPath> path;
};

}  // namespace

std::shared_ptr<PoolReturnPath> ReturnPathOfCurrentScheduler() {
  return ThisScheduler().State<ReturnPathExtension>().path;
}

}  // namespace internal

ThreadPool::ThreadPool() : ThreadPool(Options()) {}

ThreadPool::ThreadPool(Options options) : options_(options) {
  if (options_.threads < 1) const_cast<Options&>(options_).threads = 1;
}

ThreadPool::~ThreadPool() { Shutdown(); }

absl::Status ThreadPool::Submit(Work work) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return absl::FailedPreconditionError("thread pool has been shut down");
  // Every thread may run a job; beyond them, queue_limit jobs may wait.
  if (queue_.size() + running_ >= options_.queue_limit + static_cast<size_t>(options_.threads)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "thread pool queue full (", options_.queue_limit, " jobs waiting for ",
        options_.threads, " threads)"));
  }
  queue_.push_back(std::move(work));
  // Threads start on demand, up to the limit: a pool nobody uses costs none.
  if (idle_ < queue_.size() && threads_.size() < static_cast<size_t>(options_.threads)) {
    threads_.emplace_back([this] { WorkerLoop(); });
  } else {
    work_ready_.Signal();
  }
  return absl::OkStatus();
}

void ThreadPool::WorkerLoop() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    ++idle_;
    while (queue_.empty() && !shut_down_) work_ready_.Wait(&mu_);
    --idle_;
    if (queue_.empty()) return;  // shut down
    Work work = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    mu_.Unlock();
    work(true);
    work = nullptr;  // its captures go before the lock is taken again
    mu_.Lock();
    --running_;
  }
}

void ThreadPool::Shutdown() {
  std::deque<Work> dropped;
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    dropped.swap(queue_);
    threads.swap(threads_);
    work_ready_.SignalAll();
  }
  for (Work& w : dropped) w(false);
  for (std::thread& t : threads) {
    if (t.get_id() == std::this_thread::get_id()) {
      PICOS_LOG(error, "ThreadPool::Shutdown from one of its own threads: not joined");
      t.detach();
      continue;
    }
    t.join();
  }
}

size_t ThreadPool::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

size_t ThreadPool::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

}  // namespace picos
