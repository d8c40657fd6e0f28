#include "core/io/thread_pool.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/scheduler_internal.h"

namespace picos {

namespace internal {

void PoolReturnPath::JobStarted() {
  absl::MutexLock lock(&mu);
  if (scheduler != nullptr) internal::SchedulerHooks::AddExternalWork(*scheduler, 1);
}

void PoolReturnPath::Post(absl::AnyInvocable<void()> fn) {
  // Held while posting, so that the scheduler cannot be destroyed between
  // the check and the Post (its extension clears `scheduler` under `mu`).
  absl::MutexLock lock(&mu);
  if (scheduler == nullptr) return;
  Scheduler* s = scheduler;
  absl::Status posted = s->Post([s, fn = std::move(fn)]() mutable {
    fn();
    internal::SchedulerHooks::AddExternalWork(*s, -1);
  });
  if (!posted.ok()) {
    PICOS_LOG(debug, "thread pool result dropped: {}", posted.ToString());
    internal::SchedulerHooks::AddExternalWork(*s, -1);
  }
}

namespace {

// Lives as long as its scheduler and cuts the return path when it goes.
struct ReturnPathExtension : Scheduler::Extension {
  explicit ReturnPathExtension(Scheduler& s) {
    absl::MutexLock lock(&path->mu);
    path->scheduler = &s;
  }
  std::shared_ptr<PoolReturnPath> path = std::make_shared<PoolReturnPath>();
  ~ReturnPathExtension() override {
    absl::MutexLock lock(&path->mu);
    path->scheduler = nullptr;
  }
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
