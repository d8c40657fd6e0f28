#include "core/kernel/clock.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/supervisor.h"
#include "core/kernel/sync.h"
#include "core/kernel/task.h"
#include "core/kernel/timer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kSecond = 1'000'000'000;

int64_t Now() { return ThisScheduler().NowNs(); }

// From a thread that is not `s`'s: waits until `t` is blocked in `state` and
// the wait is fully set up (its timeout in the heap): a closure posted after
// it blocked runs after the resume that blocked it. Bounded by a wide real
// deadline, so a broken test fails instead of hanging.
void WaitUntilBlocked(Scheduler& s, const TaskRef& t, TaskState state) {
  const absl::Time give_up = absl::Now() + absl::Minutes(2);
  while (t.state() != state && absl::Now() < give_up) absl::SleepFor(absl::Microseconds(100));
  ASSERT_EQ(t.state(), state);
  absl::Notification turned;
  ASSERT_OK(s.Post([&turned] { turned.Notify(); }));
  ASSERT_TRUE(turned.WaitForNotificationWithTimeout(absl::Minutes(2)));
}

// --- simulated: time jumps to the next deadline when every task waits ---

PICOS_SIM_TEST(SimulatedClock, AnHourOfSleepPassesAtOnceAndExactly) {
  VirtualClock& clock = *ThisScheduler().clock();
  EXPECT_EQ(clock.mode(), VirtualClock::kSimulated);
  EXPECT_EQ(Now(), 0);
  CO_ASSERT_OK(co_await Sleep(absl::Hours(1)));
  EXPECT_EQ(Now(), 3600 * kSecond);
  EXPECT_EQ(clock.Now(), absl::Hours(1));
  EXPECT_EQ(clock.jumps(), 1);
  // Receive, Suspend and Join timeouts are on the same clock.
  EXPECT_THAT(co_await Receive(absl::Seconds(30)), StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(Now(), 3630 * kSecond);
  EXPECT_THAT(co_await Suspend(absl::Milliseconds(1500)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(Now(), 3631'500'000'000);
  TaskRef sleeper = ThisScheduler().Spawn([]() -> Task<> { co_await Sleep(absl::Hours(2)); });
  EXPECT_THAT(co_await sleeper.Join(absl::Minutes(1)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(Now(), 3691'500'000'000);
  CO_ASSERT_OK(co_await sleeper.Join());
  EXPECT_EQ(Now(), (3631'500'000'000 + 7200 * kSecond));
}

PICOS_SIM_TEST(SimulatedClock, TimeDoesNotJumpWhileATaskCanRun) {
  // A busy task keeps the clock still: its loop of yields sees no time pass,
  // and the sleeper wakes only once it too waits.
  TaskRef sleeper = ThisScheduler().Spawn([]() -> Task<int64_t> {
    co_await Sleep(absl::Seconds(1));
    co_return ThisScheduler().NowNs();
  });
  for (int i = 0; i < 1000; ++i) co_await Yield();
  EXPECT_EQ(Now(), 0);
  EXPECT_EQ(sleeper.state(), TaskState::kSuspended);
  absl::StatusOr<Value> woke = co_await sleeper.Join();
  CO_ASSERT_OK(woke);
  EXPECT_EQ(woke->as_int(), kSecond);
}

// The heartbeat of the issue: a peer beats every second for 30 s, then goes
// silent; the watcher declares it dead after 5 s without a beat. Each event
// is stamped with the virtual time at which it happened.
Task<> Heartbeat(TaskRef watcher, int beats) {
  PeriodicTimer tick(absl::Seconds(1));
  for (int i = 1; i <= beats; ++i) {
    absl::StatusOr<int64_t> n = co_await tick.Next();
    if (!n.ok()) co_return;
    (void)watcher.Send(Value::Map({{"beat", i}, {"missed", *n - 1}}));
  }
}

Task<std::vector<std::string>> Watch(absl::Duration expiry) {
  std::vector<std::string> trace;
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive(expiry);
    int64_t at_ms = ThisScheduler().NowNs() / 1'000'000;
    if (!m.ok()) {
      trace.push_back(absl::StrCat(at_ms, "ms: dead (", absl::StatusCodeToString(m.status().code()), ")"));
      co_return trace;
    }
    trace.push_back(absl::StrCat(at_ms, "ms: beat ", (*m)["beat"].as_int(), " missed ",
                                 (*m)["missed"].as_int()));
  }
}

std::vector<std::string> RunHeartbeatScenario(int64_t* jumps) {
  auto clock = std::make_shared<VirtualClock>(VirtualClock::kSimulated);
  Scheduler s(Scheduler::Options{.name = "sim", .clock = clock});
  TaskRef watcher = s.Spawn(Watch, absl::Seconds(5));
  s.Spawn(Heartbeat, watcher, 30);
  absl::StatusOr<Value> trace = s.RunUntil(watcher);
  EXPECT_OK(trace);
  EXPECT_OK(s.Run());
  *jumps = clock->jumps();
  std::vector<std::string> out;
  if (trace.ok()) {
    for (const Value& v : trace->as_list()) out.push_back(v.as_string());
  }
  return out;
}

TEST(SimulatedClock, ThirtySecondHeartbeatExpiryIsExactAndRepeatable) {
  int64_t jumps = 0;
  std::vector<std::string> first = RunHeartbeatScenario(&jumps);
  ASSERT_EQ(first.size(), 31u);
  for (int i = 1; i <= 30; ++i) {
    EXPECT_EQ(first[i - 1], absl::StrCat(i * 1000, "ms: beat ", i, " missed 0"));
  }
  // 30 s of beats, then 5 s of silence: dead at exactly 35 s.
  EXPECT_EQ(first[30], "35000ms: dead (DEADLINE_EXCEEDED)");
  // One jump per beat, one to the expiry.
  EXPECT_EQ(jumps, 31);
  for (int run = 0; run < 5; ++run) {
    int64_t again_jumps = 0;
    EXPECT_EQ(RunHeartbeatScenario(&again_jumps), first) << "run " << run;
    EXPECT_EQ(again_jumps, jumps);
  }
}

PICOS_SIM_TEST(SimulatedClock, TimeoutsOfSyncPrimitivesAndTheSupervisorWindowFollowIt) {
  Lock lock;
  absl::StatusOr<LockGuard> held = co_await lock.Acquire();
  CO_ASSERT_OK(held);
  TaskRef other = ThisScheduler().Spawn([&lock]() -> Task<absl::Status> {
    absl::StatusOr<LockGuard> late = co_await lock.Acquire(absl::Seconds(20));
    co_return late.status();
  });
  EXPECT_THAT(co_await other.Join(), StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(Now(), 20 * kSecond);
  held->Release();

  // A worker that fails every 10 s of virtual time, with at most one
  // restart per 15 s: the second failure comes within the window.
  auto runs = std::make_shared<int>(0);
  Supervisor sup = Supervisor::Start(
      ThisScheduler(), RestartPolicy{.max_restarts = 1, .window = absl::Seconds(15)},
      SupervisorOptions{}, [runs]() -> Task<absl::Status> {
        ++*runs;
        co_await Sleep(absl::Seconds(10));
        co_return absl::InternalError("fails");
      });
  EXPECT_THAT(co_await sup.task().Join(), StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ(*runs, 2);
  EXPECT_EQ(Now(), 40 * kSecond);
}

// --- manual: time moves only when the test advances it ---

TEST(ManualClock, TimeoutsFireWhenTheTestAdvancesTheClock) {
  ::picos::testing::RunCoroTest(
      []() -> Task<> {
        VirtualClock& clock = *ThisScheduler().clock();
        TaskRef waiter = ThisScheduler().Spawn(
            []() -> Task<absl::StatusOr<Value>> { co_return co_await Receive(absl::Seconds(30)); });
        co_await Yield();
        EXPECT_EQ(waiter.state(), TaskState::kReceiving);
        clock.Advance(absl::Milliseconds(29'999));
        for (int i = 0; i < 10; ++i) co_await Yield();
        EXPECT_EQ(waiter.state(), TaskState::kReceiving) << "29.999 s of 30 s passed";
        clock.Advance(absl::Milliseconds(1));
        // Due timeouts fire inside Advance: the waiter is runnable already.
        EXPECT_EQ(waiter.state(), TaskState::kReady);
        EXPECT_THAT(co_await waiter.Join(), StatusIs(absl::StatusCode::kDeadlineExceeded));
        EXPECT_EQ(clock.NowNs(), 30 * kSecond);
        // Never backwards.
        clock.AdvanceTo(absl::Seconds(1));
        EXPECT_EQ(clock.NowNs(), 30 * kSecond);
        clock.Advance(-absl::Seconds(5));
        EXPECT_EQ(clock.NowNs(), 30 * kSecond);
      },
      ::picos::testing::CoroTestOptions{.clock = VirtualClock::kManual});
}

TEST(ManualClock, AJumpCoalescesPeriodicTicks) {
  ::picos::testing::RunCoroTest(
      []() -> Task<> {
        VirtualClock& clock = *ThisScheduler().clock();
        PeriodicTimer tick(absl::Seconds(1));
        clock.Advance(absl::Milliseconds(5500));
        absl::StatusOr<int64_t> n = co_await tick.Next();
        CO_ASSERT_OK(n);
        EXPECT_EQ(*n, 5) << "ticks at 1..5 s passed in one jump";
        TaskRef next = ThisScheduler().Spawn([&tick]() -> Task<absl::StatusOr<int64_t>> {
          co_return co_await tick.Next();
        });
        co_await Yield();
        EXPECT_EQ(next.state(), TaskState::kWaiting);
        clock.Advance(absl::Milliseconds(500));  // the tick at 6 s
        absl::StatusOr<Value> m = co_await next.Join();
        CO_ASSERT_OK(m);
        EXPECT_EQ(m->as_int(), 1);
      },
      ::picos::testing::CoroTestOptions{.clock = VirtualClock::kManual});
}

TEST(ManualClock, WaitingForTimeNobodyAdvancesIsADeadlockNotAHang) {
  auto clock = std::make_shared<VirtualClock>();
  Scheduler s(Scheduler::Options{.clock = clock});
  s.Spawn([]() -> Task<> { co_await Sleep(absl::Seconds(1)); });
  EXPECT_THAT(s.Run(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                HasSubstr("virtual time that nobody advances")));
  // Advanced from outside, the next run finishes the sleep.
  clock->Advance(absl::Seconds(1));
  EXPECT_OK(s.Run());
}

TEST(ManualClock, AdvanceFromAnotherThreadWakesASchedulerThread) {
  auto clock = std::make_shared<VirtualClock>();
  Scheduler s(Scheduler::Options{.clock = clock});
  ASSERT_OK(s.StartThread());
  TaskRef t = s.Spawn([]() -> Task<int64_t> {
    co_await Sleep(absl::Seconds(10));
    co_return ThisScheduler().NowNs();
  });
  // Until it waits, advancing would not concern it.
  WaitUntilBlocked(s, t, TaskState::kSuspended);
  clock->Advance(absl::Seconds(9));
  EXPECT_THAT(s.WaitFor(t, absl::Milliseconds(20)), StatusIs(absl::StatusCode::kDeadlineExceeded));
  clock->Advance(absl::Seconds(1));
  absl::StatusOr<Value> r = s.WaitFor(t, absl::Minutes(5));
  ASSERT_OK(r);
  EXPECT_EQ(r->as_int(), 10 * kSecond);
  s.Stop();
}

// --- several schedulers on one clock ---

// Two schedulers on threads of their own share a simulated clock: A's
// requests reach B, which replies after a virtual second. The clock jumps
// only when both wait, so every round takes exactly one second, and a reply
// that is on its way (in B's inbox, or A's) is never jumped over: A's one-hour
// receive timeout never fires.
TEST(SharedSimulatedClock, TwoSchedulerThreadsStepTogether) {
  auto clock = std::make_shared<VirtualClock>(VirtualClock::kSimulated);
  Scheduler a(Scheduler::Options{.name = "a", .clock = clock});
  Scheduler b(Scheduler::Options{.name = "b", .clock = clock});
  ASSERT_OK(b.StartThread());
  ASSERT_OK(a.StartThread());
  constexpr int kRounds = 200;
  TaskRef server = b.Spawn([]() -> Task<> {
    for (int i = 0; i < kRounds; ++i) {
      absl::StatusOr<Value> m = co_await Receive();
      if (!m.ok()) co_return;
      // Every other request is answered at once, the others after a second.
      if (i % 2 == 1) co_await Sleep(absl::Seconds(1));
      (void)(*m)["from"].as_task().Send(ThisScheduler().NowNs());
    }
  });
  TaskRef client = a.Spawn([server]() -> Task<absl::StatusOr<std::vector<int64_t>>> {
    std::vector<int64_t> stamps;
    for (int i = 0; i < kRounds; ++i) {
      (void)server.Send(Value::Map({{"from", Self()}}));
      absl::StatusOr<Value> r = co_await Receive(absl::Hours(1));
      if (!r.ok()) co_return r.status();
      stamps.push_back(r->as_int());
    }
    co_return stamps;
  });
  absl::StatusOr<Value> r = a.WaitFor(client, absl::Minutes(5));
  ASSERT_OK(r);
  const Value::ListType& stamps = r->as_list();
  ASSERT_EQ(stamps.size(), static_cast<size_t>(kRounds));
  for (int i = 0; i < kRounds; ++i) {
    EXPECT_EQ(stamps[i].as_int(), ((i + 1) / 2) * kSecond) << "round " << i;
  }
  EXPECT_EQ(clock->NowNs(), (kRounds / 2) * kSecond);
  a.Stop();
  b.Stop();
}

// A manual clock shared by two schedulers: one Advance fires the due
// timeouts of both.
TEST(SharedManualClock, OneAdvanceReachesEveryScheduler) {
  auto clock = std::make_shared<VirtualClock>();
  Scheduler a(Scheduler::Options{.name = "a", .clock = clock});
  Scheduler b(Scheduler::Options{.name = "b", .clock = clock});
  ASSERT_OK(a.StartThread());
  ASSERT_OK(b.StartThread());
  auto sleeper = []() -> Task<int64_t> {
    co_await Sleep(absl::Minutes(1));
    co_return ThisScheduler().NowNs();
  };
  TaskRef ta = a.Spawn(sleeper);
  TaskRef tb = b.Spawn(sleeper);
  WaitUntilBlocked(a, ta, TaskState::kSuspended);
  WaitUntilBlocked(b, tb, TaskState::kSuspended);
  clock->Advance(absl::Minutes(1));
  absl::StatusOr<Value> ra = a.WaitFor(ta, absl::Minutes(5));
  absl::StatusOr<Value> rb = b.WaitFor(tb, absl::Minutes(5));
  ASSERT_OK(ra);
  ASSERT_OK(rb);
  EXPECT_EQ(ra->as_int(), 60 * kSecond);
  EXPECT_EQ(rb->as_int(), 60 * kSecond);
  a.Stop();
  b.Stop();
}

}  // namespace
}  // namespace picos
