// Daemon tasks (SpawnOptions::daemon, SetDaemon) and how Run() and RunMain()
// end with them.
#include "core/kernel/scheduler.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/kernel/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

// Sets a flag when destroyed: shows that a task's frame went away.
struct Flag {
  bool* set;
  ~Flag() { *set = true; }
};

// A server that waits for requests forever.
Task<> Server(bool* destroyed) {
  Flag f{destroyed};
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return;
  }
}

Task<int> Client(TaskRef server, int requests) {
  for (int i = 0; i < requests; ++i) {
    (void)server.Send(i);
    (void)co_await Yield();
  }
  co_return requests;
}

TEST(Daemon, RunEndsWhenOnlyDaemonsAreLeftAndDestroysThem) {
  Scheduler s;
  bool destroyed = false;
  TaskRef server = s.Spawn({.name = "server", .daemon = true}, Server, &destroyed);
  TaskRef client = s.Spawn(Client, server, 3);
  EXPECT_EQ(s.daemon_count(), 0u);  // counted when registered, on the loop's first turn
  // Without the daemon mark this is a deadlock (see the next test).
  EXPECT_OK(s.Run());
  EXPECT_TRUE(destroyed);
  EXPECT_EQ(s.task_count(), 0u);
  EXPECT_EQ(s.daemon_count(), 0u);
  EXPECT_THAT(s.RunUntil(server), StatusIs(absl::StatusCode::kCancelled, HasSubstr("daemon")));
  EXPECT_EQ(s.RunUntil(client).value(), Value(3));
  EXPECT_EQ(server.name(), "server");
}

TEST(Daemon, WithoutTheMarkTheSameProgramIsADeadlock) {
  Scheduler s;
  bool destroyed = false;
  TaskRef server = s.Spawn(Server, &destroyed);
  s.Spawn(Client, server, 3);
  EXPECT_THAT(s.Run(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("deadlock")));
  EXPECT_FALSE(destroyed);
}

TEST(Daemon, ADaemonWithATimerDoesNotKeepRunGoing) {
  // A pending hour-long sleep keeps the loop alive; Run still ends, now.
  Scheduler s;
  bool destroyed = false;
  s.Spawn({.daemon = true}, [](bool* d) -> Task<> {
    Flag f{d};
    (void)co_await Sleep(absl::Hours(1));
  }, &destroyed);
  s.Spawn([]() -> Task<> { co_await Sleep(absl::Milliseconds(1)); });
  absl::Time start = absl::Now();
  EXPECT_OK(s.Run());
  EXPECT_TRUE(destroyed);
  EXPECT_EQ(s.timer_count(), 0u);
  EXPECT_LT(absl::Now() - start, absl::Minutes(5));
}

TEST(Daemon, ATaskCanMakeItselfADaemonAndTakeItBack) {
  Scheduler s;
  bool destroyed = false;
  s.Spawn([](bool* d) -> Task<> {
    Flag f{d};
    EXPECT_OK(SetDaemon(Self()));
    EXPECT_OK(SetDaemon(Self()));  // twice is once
    (void)co_await Receive();
  }, &destroyed);
  EXPECT_OK(s.Run());
  EXPECT_TRUE(destroyed);

  // No longer a daemon: it keeps Run going again (here, a deadlock).
  Scheduler s2;
  TaskRef t = s2.Spawn({.daemon = true}, []() -> Task<> {
    EXPECT_OK(SetDaemon(Self(), false));
    (void)co_await Receive();
  });
  EXPECT_THAT(s2.Run(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("deadlock")));
  EXPECT_EQ(s2.daemon_count(), 0u);
}

TEST(Daemon, SetDaemonChecksItsArguments) {
  Scheduler s;
  TaskRef t = s.Spawn(Client, TaskRef(), 0);
  EXPECT_THAT(SetDaemon(t), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("thread")));
  EXPECT_THAT(SetDaemon(TaskRef()), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(s.Run());
  TaskRef checker = s.Spawn([](TaskRef ended) -> Task<> {
    EXPECT_THAT(SetDaemon(ended), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ended")));
    co_return;
  }, t);
  EXPECT_OK(s.Run());
}

TEST(Daemon, ADeadlockAmongTasksThatAreNotDaemonsIsStillReported) {
  Scheduler s;
  bool destroyed = false;
  s.Spawn({.daemon = true}, Server, &destroyed);
  s.Spawn([]() -> Task<> { (void)co_await Receive(); });
  EXPECT_THAT(s.Run(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("deadlock")));
}

TEST(Daemon, ATaskStartedByADaemonsDestructorRunsToItsEnd) {
  Scheduler s;
  auto log = std::make_shared<std::vector<std::string>>();
  struct SpawnOnExit {
    std::shared_ptr<std::vector<std::string>> log;
    ~SpawnOnExit() {
      log->push_back("daemon destroyed");
      ThisScheduler().Spawn([](std::shared_ptr<std::vector<std::string>> log) -> Task<> {
        co_await Sleep(absl::Milliseconds(1));
        log->push_back("farewell task ran");
      }, log);
    }
  };
  s.Spawn({.daemon = true}, [](std::shared_ptr<std::vector<std::string>> log) -> Task<> {
    SpawnOnExit bye{log};
    (void)co_await Receive();
  }, log);
  EXPECT_OK(s.Run());
  EXPECT_THAT(*log, ::testing::ElementsAre("daemon destroyed", "farewell task ran"));
  EXPECT_EQ(s.task_count(), 0u);
}

// --- RunMain ---

Task<absl::Status> MainThatLeavesAWorker(bool* worker_done, bool* daemon_destroyed) {
  ThisScheduler().Spawn([](bool* done) -> Task<> {
    co_await Sleep(absl::Milliseconds(20));
    *done = true;
  }, worker_done);
  ThisScheduler().Spawn({.daemon = true}, Server, daemon_destroyed);
  co_return absl::OkStatus();
}

TEST(Daemon, RunMainWaitsForTasksThatAreNotDaemonsThenEnds) {
  bool worker_done = false;
  bool daemon_destroyed = false;
  EXPECT_EQ(RunMain("prog", MainThatLeavesAWorker, &worker_done, &daemon_destroyed), 0);
  EXPECT_TRUE(worker_done);
  EXPECT_TRUE(daemon_destroyed);
}

Task<absl::Status> MainThatFails(bool* worker_done, bool* daemon_destroyed) {
  co_await MainThatLeavesAWorker(worker_done, daemon_destroyed);
  co_return absl::InternalError("main failed");
}

TEST(Daemon, RunMainEndsAtOnceWhenTheMainTaskFails) {
  bool worker_done = false;
  bool daemon_destroyed = false;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunMain("prog", MainThatFails, &worker_done, &daemon_destroyed), 1);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("prog: INTERNAL: main failed"));
  EXPECT_FALSE(worker_done);
  EXPECT_TRUE(daemon_destroyed);
}

TEST(Daemon, RunMainReportsAWorkerThatCanNeverEnd) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunMain("prog", []() -> Task<> {
              ThisScheduler().Spawn([]() -> Task<> { (void)co_await Receive(); });
              co_return;
            }),
            1);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("deadlock"));
}

}  // namespace
}  // namespace picos
