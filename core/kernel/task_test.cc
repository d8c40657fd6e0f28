#include "core/kernel/task.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "core/kernel/scheduler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

Task<int> Add(int a, int b) { co_return a + b; }

TEST(Task, RunUntilGivesTheResult) {
  Scheduler s;
  TaskRef t = s.Spawn(Add, 2, 3);
  absl::StatusOr<Value> r = s.RunUntil(t);
  ASSERT_OK(r);
  EXPECT_EQ(*r, Value(5));
  EXPECT_EQ(t.state(), TaskState::kDone);
}

Task<int> Twice(int x) {
  int a = co_await Add(x, 0);
  int b = co_await Add(0, x);
  co_return a + b;
}

PICOS_CORO_TEST(Task, SubCallsReturnValues) {
  EXPECT_EQ(co_await Twice(21), 42);
}

Task<int> Fails() {
  throw std::runtime_error("boom");
  co_return 0;
}

PICOS_CORO_TEST(Task, SubCallExceptionReachesTheCaller) {
  std::string what;
  try {
    (void)co_await Fails();
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  EXPECT_EQ(what, "boom");
}

TEST(Task, EscapingExceptionIsTheTasksError) {
  Scheduler s;
  TaskRef t = s.Spawn(Fails);
  EXPECT_THAT(s.RunUntil(t), StatusIs(absl::StatusCode::kInternal, HasSubstr("boom")));
}

Task<absl::StatusOr<int>> Parse(std::string s) {
  if (s.empty()) co_return absl::InvalidArgumentError("empty");
  co_return static_cast<int>(s.size());
}

PICOS_CORO_TEST(Task, StatusResultsAreErrorsOrValues) {
  TaskRef bad = ThisScheduler().Spawn(Parse, std::string());
  TaskRef good = ThisScheduler().Spawn(Parse, std::string("abc"));
  EXPECT_THAT(co_await bad.Join(), StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<Value> v = co_await good.Join();
  CO_ASSERT_OK(v);
  EXPECT_EQ(*v, Value(3));
}

// The stack stays flat: every await of a child that completes at once is a
// tail call through symmetric transfer, in the optimised and the ASan build.
Task<int> One() { co_return 1; }

PICOS_CORO_TEST(Task, MillionsOfSynchronousAwaitsKeepTheStackFlat) {
  int64_t sum = 0;
  for (int i = 0; i < 5'000'000; ++i) sum += co_await One();
  EXPECT_EQ(sum, 5'000'000);
}

Task<int64_t> Depth(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await Depth(n - 1);
}

PICOS_CORO_TEST(Task, DeepRecursionOfSubCalls) {
  EXPECT_EQ(co_await Depth(200'000), 200'000);
}

// Time is what these check: on the simulated clock it is exact.
PICOS_SIM_TEST(Task, SleepWaitsExactlyItsDuration) {
  const int64_t start = ThisScheduler().NowNs();
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(30)));
  EXPECT_EQ(ThisScheduler().NowNs() - start, 30'000'000);
  // Zero or less: one turn of the scheduler, no time.
  CO_ASSERT_OK(co_await Sleep(absl::ZeroDuration()));
  CO_ASSERT_OK(co_await Sleep(-absl::Seconds(1)));
  EXPECT_EQ(ThisScheduler().NowNs() - start, 30'000'000);
}

// The same on the machine's clock: at least the duration.
PICOS_CORO_TEST(Task, SleepOnTheRealClockWaitsAtLeastItsDuration) {
  absl::Time start = absl::Now();
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(30)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(29));
}

Task<> Collect(std::vector<int64_t>* out, int n) {
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return;
    out->push_back(m->as_int());
  }
}

PICOS_CORO_TEST(Task, MessagesArriveInOrder) {
  std::vector<int64_t> got;
  TaskRef c = ThisScheduler().Spawn(Collect, &got, 100);
  for (int i = 0; i < 100; ++i) CO_ASSERT_OK(c.Send(i));
  CO_ASSERT_OK(co_await c.Join());
  CO_ASSERT_TRUE(got.size() == 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i], i);
}

PICOS_SIM_TEST(Task, ReceiveTimesOut) {
  const int64_t start = ThisScheduler().NowNs();
  EXPECT_THAT(co_await Receive(absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(ThisScheduler().NowNs() - start, 20'000'000);
  // A message that is already there is taken without waiting.
  CO_ASSERT_OK(Self().Send("here"));
  absl::StatusOr<Value> m = co_await Receive(absl::ZeroDuration());
  CO_ASSERT_OK(m);
  EXPECT_EQ(*m, Value("here"));
}

Task<Value> SuspendOnce() {
  absl::StatusOr<Value> v = co_await Suspend(absl::Seconds(10));
  co_return v.ok() ? *v : Value("error");
}

PICOS_CORO_TEST(Task, ResumePassesAValue) {
  TaskRef t = ThisScheduler().Spawn(SuspendOnce);
  // Not yet suspended: it has not run.
  EXPECT_THAT(t.Resume(1), StatusIs(absl::StatusCode::kFailedPrecondition));
  CO_ASSERT_OK(co_await Yield());
  EXPECT_EQ(t.state(), TaskState::kSuspended);
  CO_ASSERT_OK(t.Resume(Value("hello")));
  absl::StatusOr<Value> r = co_await t.Join();
  CO_ASSERT_OK(r);
  EXPECT_EQ(*r, Value("hello"));
}

PICOS_SIM_TEST(Task, SuspendTimesOut) {
  EXPECT_THAT(co_await Suspend(absl::Milliseconds(5)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(ThisScheduler().NowNs(), 5'000'000);
}

struct Flag {
  bool* set;
  ~Flag() { *set = true; }
};

Task<absl::Status> CleansUp(bool* cleaned) {
  Flag f{cleaned};
  absl::StatusOr<Value> m = co_await Receive();
  // Terminated: the wait says so, and the task returns after cleaning up.
  co_return m.status();
}

PICOS_CORO_TEST(Task, TerminateIsSeenAtTheWait) {
  bool cleaned = false;
  TaskRef t = ThisScheduler().Spawn(CleansUp, &cleaned);
  CO_ASSERT_OK(co_await Yield());
  EXPECT_EQ(t.state(), TaskState::kReceiving);
  CO_ASSERT_OK(t.Terminate());
  EXPECT_THAT(co_await t.Join(), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_TRUE(cleaned);
  EXPECT_THAT(t.Terminate(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(t.Send(1), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(t.Resume(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

Task<> IgnoresTerminate(bool* destroyed, int* waits) {
  Flag f{destroyed};
  for (;;) {
    ++*waits;
    (void)co_await Sleep(absl::Seconds(100));
  }
}

PICOS_CORO_TEST(Task, TaskThatIgnoresTerminateIsDestroyedAtItsNextWait) {
  bool destroyed = false;
  int waits = 0;
  TaskRef t = ThisScheduler().Spawn(IgnoresTerminate, &destroyed, &waits);
  CO_ASSERT_OK(co_await Yield());
  CO_ASSERT_OK(t.Terminate());
  EXPECT_THAT(co_await t.Join(), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_TRUE(destroyed);
  EXPECT_EQ(waits, 2);
}

PICOS_CORO_TEST(Task, ThrowIsSeenAtTheWait) {
  bool cleaned = false;
  TaskRef t = ThisScheduler().Spawn(CleansUp, &cleaned);
  CO_ASSERT_OK(co_await Yield());
  EXPECT_THAT(t.Throw(absl::OkStatus()), StatusIs(absl::StatusCode::kInvalidArgument));
  CO_ASSERT_OK(t.Throw(absl::AbortedError("thrown in")));
  EXPECT_THAT(co_await t.Join(), StatusIs(absl::StatusCode::kAborted, HasSubstr("thrown in")));
}

PICOS_CORO_TEST(Task, ThrowBeforeTheTaskRunsIsSeenAtItsFirstWait) {
  bool cleaned = false;
  TaskRef t = ThisScheduler().Spawn(CleansUp, &cleaned);
  CO_ASSERT_OK(t.Throw(absl::DataLossError("early")));
  EXPECT_THAT(co_await t.Join(), StatusIs(absl::StatusCode::kDataLoss));
}

PICOS_CORO_TEST(Task, JoinTwiceGivesTheValueTwice) {
  TaskRef t = ThisScheduler().Spawn(Add, 1, 1);
  absl::StatusOr<Value> a = co_await t.Join();
  absl::StatusOr<Value> b = co_await t.Join();
  CO_ASSERT_OK(a);
  CO_ASSERT_OK(b);
  EXPECT_EQ(*a, Value(2));
  EXPECT_EQ(*b, Value(2));
}

PICOS_SIM_TEST(Task, JoinTimesOutAndSelfJoinIsRefused) {
  TaskRef t = ThisScheduler().Spawn(SuspendOnce);
  EXPECT_THAT(co_await t.Join(absl::Milliseconds(5)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(ThisScheduler().NowNs(), 5'000'000);
  EXPECT_THAT(co_await Self().Join(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(co_await TaskRef().Join(), StatusIs(absl::StatusCode::kInvalidArgument));
  CO_ASSERT_OK(t.Terminate());
  (void)co_await t.Join();
}

Task<> AwaitsTwice() {
  Task<int> t = Add(1, 2);
  (void)co_await std::move(t);
  (void)co_await std::move(t);  // empty now
}

TEST(Task, AwaitingAnEmptyTaskIsAnError) {
  Scheduler s;
  TaskRef t = s.Spawn(AwaitsTwice);
  EXPECT_THAT(s.RunUntil(t), StatusIs(absl::StatusCode::kInternal, HasSubstr("empty")));
}

TEST(Task, SpawnOfAnEmptyTaskGivesANullRef) {
  Scheduler s;
  Task<int> t = Add(1, 2);
  Task<int> moved = std::move(t);
  EXPECT_FALSE(s.Spawn(std::move(t)).valid());
  EXPECT_THAT(TaskRef().Send(1), StatusIs(absl::StatusCode::kInvalidArgument));
}

PICOS_CORO_TEST(Task, NamesAndIds) {
  TaskRef me = Self();
  EXPECT_EQ(me.name(), "test-body");
  EXPECT_EQ(me.state(), TaskState::kRunning);
  TaskRef other = ThisScheduler().SpawnNamed("worker", Add, 1, 2);
  EXPECT_NE(me.id(), other.id());
  EXPECT_THAT(other.DebugString(), HasSubstr("worker#"));
  (void)co_await other.Join();
}

PICOS_CORO_TEST(Task, CapturingLambdaOutlivesItsObject) {
  TaskRef t;
  {
    std::string captured = "kept";
    auto fn = [captured]() -> Task<std::string> {
      co_await Yield();
      co_return captured;
    };
    t = ThisScheduler().Spawn(fn);
  }
  absl::StatusOr<Value> r = co_await t.Join();
  CO_ASSERT_OK(r);
  EXPECT_EQ(*r, Value("kept"));
}

TEST(Scheduler, DeadlockIsReportedNotHung) {
  Scheduler s;
  s.Spawn([]() -> Task<> { (void)co_await Receive(); });
  EXPECT_THAT(s.Run(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("deadlock")));
}

TEST(Scheduler, DestroyingDestroysSuspendedTasks) {
  int destroyed = 0;
  struct Count {
    int* n;
    ~Count() { ++*n; }
  };
  std::vector<TaskRef> refs;
  {
    Scheduler s;
    for (int i = 0; i < 1000; ++i) {
      refs.push_back(s.Spawn([](int* n) -> Task<> {
        Count c{n};
        (void)co_await Receive();
      }, &destroyed));
    }
    TaskRef first = refs[0];
    EXPECT_THAT(s.Run(), StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_EQ(s.task_count(), 1000u);
  }
  EXPECT_EQ(destroyed, 1000);
  // Handles outlive the scheduler and report the end.
  EXPECT_EQ(refs[0].state(), TaskState::kDone);
  EXPECT_THAT(refs[0].Send(1), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(Scheduler, BackgroundThreadTakesWorkFromOtherThreads) {
  Scheduler s;
  ASSERT_OK(s.StartThread());
  std::atomic<int> destroyed{0};
  struct Count {
    std::atomic<int>* n;
    ~Count() { ++*n; }
  };
  TaskRef echo = s.Spawn([](std::atomic<int>* n) -> Task<int64_t> {
    Count c{n};
    int64_t sum = 0;
    for (;;) {
      absl::StatusOr<Value> m = co_await Receive();
      if (!m.ok() || m->is_null()) co_return sum;
      sum += m->as_int();
    }
  }, &destroyed);
  ASSERT_TRUE(echo.valid());
  // Many threads send at once.
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([echo] {
      for (int i = 1; i <= 1000; ++i) ASSERT_OK(echo.Send(i));
    });
  }
  for (auto& th : senders) th.join();
  ASSERT_OK(echo.Send(Value()));
  absl::StatusOr<Value> r = s.WaitFor(echo, absl::Seconds(10));
  ASSERT_OK(r);
  EXPECT_EQ(*r, Value(int64_t{4 * 500500}));

  // A task still suspended when the scheduler stops is destroyed.
  TaskRef idle = s.Spawn([](std::atomic<int>* n) -> Task<> {
    Count c{n};
    (void)co_await Receive();
  }, &destroyed);
  // It must have started (made its Count) before the stop: wait for it, with
  // a deadline only a hang reaches.
  const absl::Time give_up = absl::Now() + absl::Minutes(2);
  while (idle.state() != TaskState::kReceiving && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(idle.state(), TaskState::kReceiving);
  s.Stop();
  EXPECT_EQ(destroyed.load(), 2);
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(idle.state(), TaskState::kDone);
  EXPECT_FALSE(s.Spawn(Add, 1, 2).valid());
  EXPECT_THAT(s.Post([] {}), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(Scheduler, StopFromInsideATask) {
  Scheduler s;
  bool destroyed = false;
  s.Spawn([](bool* d) -> Task<> {
    Flag f{d};
    (void)co_await Receive();
  }, &destroyed);
  TaskRef stopper = s.Spawn([]() -> Task<> {
    co_await Yield();
    ThisScheduler().Stop();
  });
  EXPECT_OK(s.Run());
  EXPECT_TRUE(destroyed);
  EXPECT_TRUE(s.stopped());
}

TEST(Scheduler, ManyTimersFireInDeadlineOrder) {
  // On the simulated clock each fires at exactly its time. On the real one a
  // busy machine may pause between two Sleeps longer than their spacing, so
  // the deadlines are what each task computed, and they must fire in that
  // order, none early.
  for (bool simulated : {true, false}) {
    Scheduler::Options o;
    if (simulated) o.clock = std::make_shared<VirtualClock>(VirtualClock::kSimulated);
    Scheduler s(o);
    struct Fired {
      int i;
      int64_t deadline;
      int64_t at;
    };
    std::vector<Fired> fired;
    for (int i = 10; i > 0; --i) {
      s.Spawn([](int i, std::vector<Fired>* fired) -> Task<> {
        const absl::Duration d = absl::Milliseconds(i * 3);
        const int64_t deadline = ThisScheduler().NowNs() + absl::ToInt64Nanoseconds(d);
        (void)co_await Sleep(d);
        fired->push_back({i, deadline, ThisScheduler().NowNs()});
      }, i, &fired);
    }
    EXPECT_OK(s.Run());
    ASSERT_EQ(fired.size(), 10u);
    for (size_t k = 0; k < fired.size(); ++k) {
      EXPECT_GE(fired[k].at, fired[k].deadline) << "timer " << fired[k].i << " fired early";
      if (k > 0) {
        EXPECT_LE(fired[k - 1].deadline, fired[k].deadline) << "fired out of deadline order";
      }
      if (simulated) {
        EXPECT_EQ(fired[k].i, static_cast<int>(k) + 1);
        EXPECT_EQ(fired[k].at, (static_cast<int64_t>(k) + 1) * 3'000'000);
      }
    }
  }
}

}  // namespace
}  // namespace picos

namespace picos {
namespace {

// An awaiter that suspends without telling the scheduler: the task would
// never run again. The scheduler notices and ends the task with an error.
struct StrayAwaiter {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  void await_resume() const noexcept {}
};

TEST(Scheduler, TaskSuspendedOutsidePicosAwaitersIsEndedNotHung) {
  Scheduler s;
  bool destroyed = false;
  TaskRef t = s.Spawn([](bool* d) -> Task<> {
    Flag f{d};
    co_await StrayAwaiter{};
  }, &destroyed);
  EXPECT_THAT(s.RunUntil(t), StatusIs(absl::StatusCode::kInternal, HasSubstr("outside")));
  EXPECT_TRUE(destroyed);
  EXPECT_EQ(s.task_count(), 0u);
}

}  // namespace
}  // namespace picos

namespace picos {
namespace {

TEST(Scheduler, RunMainGivesAnExitCode) {
  EXPECT_EQ(RunMain("test", Add, 1, 2), 0);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunMain("prog", Fails), 1);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("prog: INTERNAL"));
  // A main task that can never finish is a deadlock, reported, not a hang.
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunMain("stuck", []() -> Task<> { (void)co_await Receive(); }), 1);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("deadlock"));
}

}  // namespace
}  // namespace picos

namespace picos {
namespace {

// Handles are usable from any thread: ids asked for at once from several
// threads agree, and every task gets its own.
TEST(TaskRef, IdsFromManyThreadsAgree) {
  Scheduler s;
  std::vector<TaskRef> tasks;
  for (int i = 0; i < 200; ++i) tasks.push_back(s.Spawn(Add, i, 1));
  std::vector<std::vector<uint64_t>> seen(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (const TaskRef& r : tasks) seen[t].push_back(r.id());
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 1; t < 4; ++t) EXPECT_EQ(seen[t], seen[0]);
  std::sort(seen[0].begin(), seen[0].end());
  EXPECT_EQ(std::unique(seen[0].begin(), seen[0].end()), seen[0].end());
  EXPECT_OK(s.Run());
}

// --- Join across schedulers: the result is posted to the joiner's inbox. ---

Task<int> SleepThen(int ms, int value) {
  (void)co_await Sleep(absl::Milliseconds(ms));
  co_return value;
}

Task<absl::Status> SleepThenFail(int ms) {
  (void)co_await Sleep(absl::Milliseconds(ms));
  co_return absl::DataLossError("target failed");
}

// Ends with what ended its wait: kCancelled when terminated.
Task<absl::Status> WaitForever() {
  absl::StatusOr<Value> r = co_await Suspend();
  co_return r.status();
}

PICOS_CORO_TEST(JoinAcrossSchedulers, GivesTheValueAndTheError) {
  Scheduler bg(Scheduler::Options{.name = "bg"});
  CO_ASSERT_OK(bg.StartThread());
  TaskRef value = bg.Spawn(SleepThen, 5, 42);
  TaskRef error = bg.Spawn(SleepThenFail, 5);
  absl::StatusOr<Value> v = co_await value.Join(absl::Seconds(30));
  CO_ASSERT_OK(v);
  EXPECT_EQ(*v, Value(42));
  EXPECT_THAT(co_await error.Join(absl::Seconds(30)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("target failed")));
  // Joined again once it has ended: the result is kept.
  absl::StatusOr<Value> again = co_await value.Join();
  CO_ASSERT_OK(again);
  EXPECT_EQ(*again, Value(42));
  bg.Stop();
}

PICOS_CORO_TEST(JoinAcrossSchedulers, TimesOutThenSeesTheEnd) {
  Scheduler bg(Scheduler::Options{.name = "bg"});
  CO_ASSERT_OK(bg.StartThread());
  TaskRef t = bg.Spawn(WaitForever);
  // Timed-out joins leave the target untouched and nothing behind.
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(co_await t.Join(absl::Milliseconds(2)),
                StatusIs(absl::StatusCode::kDeadlineExceeded));
  }
  CO_ASSERT_OK(t.Terminate());
  EXPECT_THAT(co_await t.Join(absl::Seconds(30)), StatusIs(absl::StatusCode::kCancelled));
  bg.Stop();
}

// The joined task's scheduler stops while a task waits for it: the joiner
// gets the error the stop ended it with, and nothing leaks (ASan).
PICOS_CORO_TEST(JoinAcrossSchedulers, TargetSchedulerStoppedWhileJoined) {
  Scheduler bg(Scheduler::Options{.name = "bg"});
  CO_ASSERT_OK(bg.StartThread());
  TaskRef target = bg.Spawn(WaitForever);
  std::vector<TaskRef> joiners;
  for (int i = 0; i < 20; ++i) {
    joiners.push_back(ThisScheduler().Spawn([target]() -> Task<absl::StatusOr<Value>> {
      co_return co_await target.Join();
    }));
  }
  for (int i = 0; i < 5; ++i) (void)co_await Yield();  // every joiner is waiting
  for (const TaskRef& j : joiners) EXPECT_EQ(j.state(), TaskState::kWaiting);
  bg.Stop();  // from this thread: returns once bg's thread has ended
  for (const TaskRef& j : joiners) {
    EXPECT_THAT(co_await j.Join(absl::Seconds(30)),
                StatusIs(absl::StatusCode::kCancelled, HasSubstr("scheduler stopped")));
  }
  // Joining after the stop reads the stopped task's result directly.
  EXPECT_THAT(co_await target.Join(absl::Seconds(30)), StatusIs(absl::StatusCode::kCancelled));
}

// The joiner's scheduler goes away first: the completion that arrives later
// finds nobody to wake, and the shared state is freed (ASan's leak check).
TEST(JoinAcrossSchedulers, JoinerSchedulerDestroyedFirst) {
  Scheduler bg(Scheduler::Options{.name = "bg"});
  ASSERT_OK(bg.StartThread());
  TaskRef target = bg.Spawn(WaitForever);
  TaskRef joiner;
  {
    Scheduler fg(Scheduler::Options{.name = "fg"});
    joiner = fg.Spawn([target]() -> Task<> { (void)co_await target.Join(); });
    TaskRef tick = fg.Spawn([]() -> Task<> { co_await Sleep(absl::Milliseconds(20)); });
    ASSERT_OK(fg.RunUntil(tick));
    EXPECT_EQ(joiner.state(), TaskState::kWaiting);
  }  // fg destroys the waiting joiner
  EXPECT_EQ(joiner.state(), TaskState::kDone);
  ASSERT_OK(target.Terminate());
  EXPECT_THAT(bg.WaitFor(target, absl::Seconds(30)), StatusIs(absl::StatusCode::kCancelled));
  bg.Stop();
}

// An interrupted joiner returns at once; the completion that follows is dropped.
PICOS_CORO_TEST(JoinAcrossSchedulers, InterruptedJoinerReturns) {
  Scheduler bg(Scheduler::Options{.name = "bg"});
  CO_ASSERT_OK(bg.StartThread());
  TaskRef target = bg.Spawn(WaitForever);
  TaskRef joiner = ThisScheduler().Spawn([target]() -> Task<absl::StatusOr<Value>> {
    co_return co_await target.Join();
  });
  (void)co_await Yield();
  CO_ASSERT_OK(joiner.Throw(absl::AbortedError("stop joining")));
  EXPECT_THAT(co_await joiner.Join(), StatusIs(absl::StatusCode::kAborted));
  CO_ASSERT_OK(target.Terminate());
  EXPECT_THAT(co_await target.Join(absl::Seconds(30)), StatusIs(absl::StatusCode::kCancelled));
  bg.Stop();
}

// Many joins in both directions at once between two running schedulers,
// bounded by count: each side joins every task of the other.
TEST(JoinAcrossSchedulers, ManyJoinsBothWays) {
  constexpr int kTasks = 300;
  Scheduler a(Scheduler::Options{.name = "a"});
  Scheduler b(Scheduler::Options{.name = "b"});
  ASSERT_OK(a.StartThread());
  ASSERT_OK(b.StartThread());
  std::vector<TaskRef> on_a, on_b;
  for (int i = 0; i < kTasks; ++i) {
    on_a.push_back(a.Spawn(SleepThen, i % 3, i));
    on_b.push_back(b.Spawn(SleepThen, i % 3, -i));
  }
  auto sum_of = [](std::vector<TaskRef> targets) -> Task<int64_t> {
    int64_t sum = 0;
    for (const TaskRef& t : targets) {
      absl::StatusOr<Value> r = co_await t.Join(absl::Seconds(60));
      if (!r.ok()) co_return -1000000;
      sum += r->as_int();
    }
    co_return sum;
  };
  TaskRef sum_on_a = a.Spawn(sum_of, on_b);
  TaskRef sum_on_b = b.Spawn(sum_of, on_a);
  absl::StatusOr<Value> ra = a.WaitFor(sum_on_a, absl::Seconds(120));
  absl::StatusOr<Value> rb = b.WaitFor(sum_on_b, absl::Seconds(120));
  ASSERT_OK(ra);
  ASSERT_OK(rb);
  const int64_t total = int64_t{kTasks} * (kTasks - 1) / 2;
  EXPECT_EQ(*ra, Value(-total));
  EXPECT_EQ(*rb, Value(total));
  a.Stop();
  b.Stop();
}

}  // namespace
}  // namespace picos
