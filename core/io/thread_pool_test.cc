#include "core/io/thread_pool.h"

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

PICOS_CORO_TEST(ThreadPool, GivesResultsInTheirOwnShape) {
  ThreadPool pool({.threads = 2});
  absl::StatusOr<int> plain = co_await pool.Run([] { return 6 * 7; });
  CO_ASSERT_OK(plain);
  EXPECT_EQ(*plain, 42);

  absl::StatusOr<std::string> so =
      co_await pool.Run([]() -> absl::StatusOr<std::string> { return std::string("hi"); });
  EXPECT_EQ(so.value_or(""), "hi");

  absl::Status st = co_await pool.Run([] { return absl::NotFoundError("nope"); });
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kNotFound));

  std::atomic<bool> ran{false};
  absl::Status v = co_await pool.Run([&ran] { ran = true; });
  EXPECT_THAT(v, IsOk());
  EXPECT_TRUE(ran);

  absl::StatusOr<int> thrown = co_await pool.Run([]() -> int { throw std::runtime_error("bad"); });
  EXPECT_THAT(thrown, StatusIs(absl::StatusCode::kInternal, HasSubstr("bad")));

  // The callable runs on another thread.
  std::thread::id here = std::this_thread::get_id();
  absl::StatusOr<bool> elsewhere =
      co_await pool.Run([here] { return std::this_thread::get_id() != here; });
  EXPECT_TRUE(elsewhere.value_or(false));
}

PICOS_CORO_TEST(ThreadPool, TheSchedulerRunsWhileAJobBlocks) {
  ThreadPool pool({.threads = 1});
  auto release = std::make_shared<absl::Notification>();
  // The job can only finish once another task of this scheduler has run.
  TaskRef waiter = ThisScheduler().Spawn([&pool, release]() -> Task<absl::StatusOr<int>> {
    auto job = [release] {
      release->WaitForNotification();
      return 7;
    };
    absl::StatusOr<int> r = co_await pool.Run(job);
    co_return r;
  });
  TaskRef releaser = ThisScheduler().Spawn([release]() -> Task<> {
    (void)co_await Sleep(absl::Milliseconds(5));
    release->Notify();
  });
  EXPECT_EQ(co_await waiter.Join(), absl::StatusOr<Value>(Value(7)));
  EXPECT_THAT(co_await releaser.Join(), IsOk());
}

PICOS_CORO_TEST(ThreadPool, AFullQueueIsRefused) {
  ThreadPool pool({.threads = 1, .queue_limit = 1});
  auto release = std::make_shared<absl::Notification>();
  auto blocked = [release] {
    release->WaitForNotification();
    return 1;
  };
  TaskRef a = ThisScheduler().Spawn([&pool, blocked]() -> Task<absl::StatusOr<int>> {
    absl::StatusOr<int> r = co_await pool.Run(blocked);
    co_return r;
  });
  TaskRef b = ThisScheduler().Spawn([&pool, blocked]() -> Task<absl::StatusOr<int>> {
    absl::StatusOr<int> r = co_await pool.Run(blocked);
    co_return r;
  });
  (void)co_await Yield();  // a runs, b waits in the queue
  EXPECT_EQ(pool.queued() + pool.running(), 2u);
  absl::StatusOr<int> c = co_await pool.Run(blocked);
  EXPECT_THAT(c, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("queue full")));
  release->Notify();
  EXPECT_THAT(co_await a.Join(), IsOk());
  EXPECT_THAT(co_await b.Join(), IsOk());
  // Room again.
  EXPECT_THAT(co_await pool.Run(blocked), IsOk());
}

PICOS_CORO_TEST(ThreadPool, ATaskTerminatedDuringItsJobIsNotResumed) {
  ThreadPool pool({.threads = 1});
  auto release = std::make_shared<absl::Notification>();
  auto finished = std::make_shared<std::atomic<int>>(0);
  TaskRef t = ThisScheduler().Spawn([&pool, release, finished]() -> Task<absl::StatusOr<int>> {
    // A named callable, not a temporary in the co_await: g++ 12 destroys
    // such temporaries twice when the suspended frame is destroyed.
    auto job = [release, finished] {
      release->WaitForNotification();
      ++*finished;
      return 1;
    };
    absl::StatusOr<int> r = co_await pool.Run(job);
    if (!r.ok()) co_return r.status();
    co_return absl::InternalError("should have been cancelled");
  });
  (void)co_await Yield();
  CO_ASSERT_OK(t.Terminate());
  EXPECT_THAT(co_await t.Join(), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(*finished, 0);  // the job still runs
  release->Notify();
  // Its result comes back to a scheduler where nobody waits for it.
  while (pool.queued() + pool.running() > 0) (void)co_await Sleep(absl::Milliseconds(1));
  (void)co_await Sleep(absl::Milliseconds(2));
  EXPECT_EQ(*finished, 1);
}

PICOS_CORO_TEST(ThreadPool, ATimeoutStopsTheWaitNotTheJob) {
  ThreadPool pool({.threads = 1});
  auto release = std::make_shared<absl::Notification>();
  auto job = [release] {
    release->WaitForNotification();
    return 1;
  };
  absl::StatusOr<int> r = co_await pool.Run(job, absl::Milliseconds(10));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kDeadlineExceeded));
  release->Notify();
  pool.Shutdown();  // waits for the job
}

PICOS_CORO_TEST(ThreadPool, ShutdownCancelsQueuedJobsAndRefusesNewOnes) {
  ThreadPool pool({.threads = 1, .queue_limit = 4});
  auto release = std::make_shared<absl::Notification>();
  TaskRef running = ThisScheduler().Spawn([&pool, release]() -> Task<absl::StatusOr<int>> {
    auto job = [release] {
      release->WaitForNotification();
      return 1;
    };
    absl::StatusOr<int> r = co_await pool.Run(job);
    co_return r;
  });
  TaskRef queued = ThisScheduler().Spawn([&pool]() -> Task<absl::StatusOr<int>> {
    absl::StatusOr<int> r = co_await pool.Run([] { return 2; });
    co_return r;
  });
  while (pool.running() == 0) (void)co_await Sleep(absl::Milliseconds(1));
  // Shutdown waits for the running job: call it where waiting is allowed.
  std::thread stopper([&pool] { pool.Shutdown(); });
  EXPECT_THAT(co_await queued.Join(), StatusIs(absl::StatusCode::kCancelled, HasSubstr("shut down")));
  release->Notify();
  EXPECT_EQ(co_await running.Join(), absl::StatusOr<Value>(Value(1)));
  stopper.join();
  EXPECT_THAT(co_await pool.Run([] { return 3; }),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(ThreadPool, TheSchedulerMayGoFirst) {
  ThreadPool pool({.threads = 1});
  auto release = std::make_shared<absl::Notification>();
  auto started = std::make_shared<absl::Notification>();
  {
    Scheduler s;
    TaskRef t = s.Spawn([&pool, release, started]() -> Task<> {
      auto job = [release, started] {
        started->Notify();
        release->WaitForNotification();
      };
      (void)co_await pool.Run(job);
    });
    TaskRef tick = s.Spawn([started]() -> Task<> {
      while (!started->HasBeenNotified()) (void)co_await Sleep(absl::Milliseconds(1));
    });
    ASSERT_OK(s.RunUntil(tick));
    EXPECT_EQ(t.state(), TaskState::kWaiting);
  }  // the scheduler and its waiting task are destroyed; the job still runs
  release->Notify();
  pool.Shutdown();
  EXPECT_EQ(pool.running(), 0u);
}

// The task waiting for a job is the only task, with no timeout: a
// foreground loop must neither call that a deadlock (nothing else can wake
// it) nor keep it alive by waking it periodically (the old 500 ms slices).
// Wakes are counted, not timed: the waiting task is resumed once, by its
// result, and no timer is pending while it waits, however long the job
// takes (1.2 s here, long enough for a polling wait to show itself).
TEST(ThreadPool, AWaitForAJobNeitherEndsTheLoopNorPolls) {
  ThreadPool pool({.threads = 1});
  absl::Notification started, release;
  Scheduler s;
  TaskRef waiter = s.Spawn([&pool, &started, &release]() -> Task<absl::StatusOr<int>> {
    auto job = [&started, &release] {
      started.Notify();
      release.WaitForNotification();
      return 7;
    };
    co_return co_await pool.Run(job);
  });
  size_t timers_while_waiting = 99;
  uint64_t resumes_before = 0;
  TaskState state_while_waiting = TaskState::kReady;
  TaskRef watcher = s.Spawn([&]() -> Task<> {
    // Runs after `waiter` has submitted its job and parked.
    state_while_waiting = waiter.state();
    timers_while_waiting = ThisScheduler().timer_count();
    resumes_before = ThisScheduler().resume_count();
    co_return;
  });
  std::thread releaser([&started, &release] {
    started.WaitForNotification();
    absl::SleepFor(absl::Milliseconds(1200));
    release.Notify();
  });
  absl::StatusOr<Value> r = s.RunUntil(waiter);
  releaser.join();
  ASSERT_OK(r);  // not "deadlock": the loop waited for the job
  EXPECT_EQ(*r, Value(7));
  EXPECT_EQ(watcher.state(), TaskState::kDone);
  EXPECT_EQ(state_while_waiting, TaskState::kWaiting);
  EXPECT_EQ(timers_while_waiting, 0u) << "the wait for a job arms a timer: it polls";
  EXPECT_EQ(s.resume_count() - resumes_before, 1u) << "the waiting task woke more than once";
}

// Run() on a foreground loop returns once every task has ended, and reports
// a real deadlock again once the jobs are done: the count goes back to zero.
TEST(ThreadPool, FinishedJobsNoLongerKeepTheLoopAlive) {
  ThreadPool pool({.threads = 2});
  Scheduler s;
  for (int i = 0; i < 8; ++i) {
    s.Spawn([&pool, i]() -> Task<absl::Status> {
      auto job = [i] { return i; };
      absl::StatusOr<int> r = co_await pool.Run(job);
      if (!r.ok()) co_return r.status();
      co_return *r == i ? absl::OkStatus() : absl::InternalError("wrong result");
    });
  }
  EXPECT_OK(s.Run());
  s.Spawn([]() -> Task<> { (void)co_await Receive(); });  // nothing will ever send
  EXPECT_THAT(s.Run(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("deadlock")));
}

// Work in flight outside the loop holds a simulated clock still: a
// thread-pool job that takes real time is not timed out by virtual time
// racing ahead, though another task's timeout is pending.
PICOS_SIM_TEST(ThreadPool, AJobInFlightHoldsASimulatedClock) {
  ThreadPool pool(ThreadPool::Options{.threads = 1});
  TaskRef sleeper = ThisScheduler().Spawn([]() -> Task<> { co_await Sleep(absl::Seconds(5)); });
  auto job = [] {
    absl::SleepFor(absl::Milliseconds(30));
    return 7;
  };
  absl::StatusOr<int> r = co_await pool.Run(job, absl::Seconds(1));
  CO_ASSERT_OK(r);
  EXPECT_EQ(*r, 7);
  EXPECT_EQ(ThisScheduler().NowNs(), 0) << "no virtual time passed while the job ran";
  CO_ASSERT_OK(co_await sleeper.Join());
  EXPECT_EQ(ThisScheduler().NowNs(), 5'000'000'000);
}

}  // namespace
}  // namespace picos
