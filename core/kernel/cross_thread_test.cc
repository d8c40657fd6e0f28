// Calls on handles from threads that are not the handle's scheduler's:
// against a scheduler that is being destroyed at the same time (issue 9 #2),
// and what OK means from there (issue 8 #3).
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/kernel/channel.h"
#include "core/kernel/monitor.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;

Task<> ReceiveForever() {
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return;
  }
}

Task<> SuspendForever() {
  for (;;) {
    absl::StatusOr<Value> v = co_await Suspend();
    if (!v.ok() && v.status().code() == absl::StatusCode::kCancelled) co_return;
  }
}

// The handles of the round in progress, swapped by the main thread and read
// by the hammering threads. Old handles are kept on purpose: they name tasks
// (and a channel) of schedulers that have been destroyed.
struct Shared {
  absl::Mutex mu;
  std::vector<TaskRef> tasks ABSL_GUARDED_BY(mu);
  std::vector<Channel> channels ABSL_GUARDED_BY(mu);
};

// Threads hammer every "any thread" call on handles while the schedulers
// the handles name are created, run and destroyed. Under AddressSanitizer a
// call that reaches a destroyed scheduler is a heap-use-after-free; here each
// call either reaches a live scheduler or says that it is gone.
TEST(CrossThread, HandlesSurviveTheirSchedulersDestruction) {
  constexpr int kRounds = 200;
  constexpr int kThreads = 3;
  Shared shared;
  std::atomic<bool> done{false};
  std::atomic<uint64_t> calls{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      std::vector<TaskRef> tasks;
      std::vector<Channel> channels;
      uint64_t n = 0;
      while (!done.load(std::memory_order_acquire)) {
        {
          absl::MutexLock lock(&shared.mu);
          tasks = shared.tasks;
          channels = shared.channels;
        }
        for (int rep = 0; rep < 16; ++rep) {
          for (const TaskRef& t : tasks) {
            (void)t.Send(Value(static_cast<int64_t>(n)));
            (void)t.Resume(Value(1));
            (void)t.state();
            (void)t.DebugString();
            if ((n + i) % 7 == 0) (void)t.Throw(absl::AbortedError("hammer"));
            if ((n + i) % 11 == 0) (void)t.Terminate();
            if ((n + i) % 5 == 0 && !tasks.empty()) (void)Monitor(tasks.front(), t);
            ++n;
          }
          for (const Channel& c : channels) (void)c.Send(Value(1));
        }
      }
      calls.fetch_add(n);
    });
  }
  for (int round = 0; round < kRounds; ++round) {
    auto s = std::make_unique<Scheduler>(Scheduler::Options{.name = "doomed"});
    ASSERT_OK(s->StartThread());
    Channel ch = Channel::Create(*s, "news");
    std::vector<TaskRef> tasks = {s->Spawn(ReceiveForever), s->Spawn(SuspendForever),
                                  s->Spawn(ReceiveForever)};
    {
      absl::MutexLock lock(&shared.mu);
      // Keep some handles of the previous round: their scheduler is gone.
      if (shared.tasks.size() > 6) shared.tasks.erase(shared.tasks.begin(), shared.tasks.begin() + 3);
      for (const TaskRef& t : tasks) shared.tasks.push_back(t);
      if (shared.channels.size() > 2) shared.channels.erase(shared.channels.begin());
      shared.channels.push_back(ch);
    }
    // Let the hammering reach this scheduler while it runs, then destroy it
    // under their calls.
    std::this_thread::yield();
    s.reset();
  }
  done.store(true, std::memory_order_release);
  for (std::thread& t : threads) t.join();
  {
    absl::MutexLock lock(&shared.mu);
    for (const TaskRef& t : shared.tasks) {
      EXPECT_TRUE(t.done());
      EXPECT_THAT(t.Send(Value(1)), StatusIs(absl::StatusCode::kFailedPrecondition));
    }
    shared.tasks.clear();
    shared.channels.clear();
  }
  EXPECT_GT(calls.load(), 0u);
}


// Issue 8 #3: from another thread, a call that cannot succeed says so.
TEST(CrossThread, ResumeOfATaskNotSuspendedFailsFromAnotherThread) {
  Scheduler s;
  ASSERT_OK(s.StartThread());
  TaskRef t = s.Spawn(ReceiveForever);
  // Wait (bounded by count) until it is parked in Receive().
  for (int i = 0; i < 100000 && t.state() != TaskState::kReceiving; ++i) std::this_thread::yield();
  ASSERT_EQ(t.state(), TaskState::kReceiving);
  EXPECT_THAT(t.Resume(Value(1)), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK(t.Terminate());
  EXPECT_THAT(s.WaitFor(t, absl::Seconds(60)), IsOk());
  s.Stop();
}

TEST(CrossThread, SendOnAClosedChannelFailsFromAnotherThread) {
  Scheduler s;
  Channel ch = Channel::Create(s, "closing");
  TaskRef closer = s.Spawn([ch]() -> Task<> {
    (void)ch.Close();
    co_return;
  });
  ASSERT_OK(s.RunUntil(closer).status());
  ASSERT_OK(s.StartThread());
  absl::Status sent;
  std::thread other([&] { sent = ch.Send(Value(1)); });
  other.join();
  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kFailedPrecondition));
  s.Stop();
}

// A handle whose scheduler has been destroyed, and whose slot a later
// scheduler took, never reaches the later one.
TEST(CrossThread, HandleOfADestroyedSchedulerDoesNotReachItsSuccessor) {
  auto first = std::make_unique<Scheduler>();
  TaskRef old_task = first->Spawn(ReceiveForever);
  Channel old_channel = Channel::Create(*first, "old");
  first.reset();
  Scheduler second;
  ASSERT_OK(second.StartThread());
  EXPECT_THAT(old_task.Send(Value(1)), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(old_task.Terminate(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(old_channel.Send(Value(1)), StatusIs(absl::StatusCode::kFailedPrecondition));
  second.Stop();
}

}  // namespace
}  // namespace picos
