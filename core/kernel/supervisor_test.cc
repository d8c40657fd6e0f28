#include "core/kernel/supervisor.h"

#include <memory>

#include "core/kernel/monitor.h"
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

using Counter = std::shared_ptr<int>;

// Fails on each of its first `failures` runs (after `work`), then returns
// the run number.
Task<absl::StatusOr<int>> Flaky(Counter runs, int failures, absl::Duration work) {
  int run = ++*runs;
  (void)co_await Sleep(work);
  if (run <= failures) co_return absl::InternalError("flaky failure");
  co_return run;
}

PICOS_SIM_TEST(Supervisor, GivesUpAfterMaxRestartsWithinTheWindow) {
  auto runs = std::make_shared<int>(0);
  Supervisor sup = Supervisor::Start(
      ThisScheduler(), RestartPolicy{.max_restarts = 3, .window = absl::Seconds(30)},
      SupervisorOptions{.name = "sup", .observer = Self()}, Flaky, runs, 1000,
      absl::ZeroDuration());
  absl::StatusOr<Value> end = co_await sup.task().Join();
  EXPECT_THAT(end, StatusIs(absl::StatusCode::kAborted, HasSubstr("3 restarts")));
  EXPECT_EQ(*runs, 4);  // the first run and three restarts
  EXPECT_EQ(sup.restarts(), 3);
  EXPECT_EQ(sup.worker().name(), "sup.worker");
  // The observer saw every worker's end, then the verdict.
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<Value> m = co_await Receive(absl::Seconds(5));
    CO_ASSERT_OK(m);
    absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m);
    CO_ASSERT_OK(st);
    EXPECT_EQ(st->outcome, MonitorOutcome::kError);
    EXPECT_THAT(st->error, StatusIs(absl::StatusCode::kInternal, HasSubstr("flaky")));
  }
  absl::StatusOr<Value> verdict = co_await Receive(absl::Seconds(5));
  CO_ASSERT_OK(verdict);
  // A system message, as monitor messages and channel closings are.
  CO_ASSERT_TRUE(verdict->is_map());
  EXPECT_EQ(verdict->as_map().size(), 1u);
  const Value* body = verdict->Find("picos.supervisor");
  CO_ASSERT_TRUE(body != nullptr);
  EXPECT_EQ((*body)["outcome"], Value("gave_up"));
  EXPECT_EQ((*body)["restarts"], Value(3));
}

PICOS_SIM_TEST(Supervisor, FailuresSpreadOverTimeKeepBeingRestarted) {
  auto runs = std::make_shared<int>(0);
  // Each run takes 30 ms, longer than the 20 ms window: never two restarts
  // in one window, so even max_restarts = 1 never gives up.
  Supervisor sup = Supervisor::Start(
      ThisScheduler(), RestartPolicy{.max_restarts = 1, .window = absl::Milliseconds(20)},
      SupervisorOptions{}, Flaky, runs, 4, absl::Milliseconds(30));
  absl::StatusOr<Value> end = co_await sup.task().Join();
  CO_ASSERT_OK(end);
  EXPECT_EQ(*end, Value(5));
  EXPECT_EQ(sup.restarts(), 4);
  EXPECT_EQ(ThisScheduler().NowNs(), 5 * 30'000'000) << "five runs of 30 ms, back to back";
}

// The window is measured on the scheduler's clock: a failure exactly one
// window after the previous restart is outside it.
PICOS_SIM_TEST(Supervisor, TheWindowEndsExactlyAtItsLength) {
  auto runs = std::make_shared<int>(0);
  Supervisor sup = Supervisor::Start(
      ThisScheduler(), RestartPolicy{.max_restarts = 1, .window = absl::Milliseconds(30)},
      SupervisorOptions{}, Flaky, runs, 3, absl::Milliseconds(30));
  EXPECT_EQ(co_await sup.task().Join(), absl::StatusOr<Value>(Value(4)));
  // And one nanosecond less is inside it: the second failure gives up.
  *runs = 0;
  Supervisor tight = Supervisor::Start(
      ThisScheduler(),
      RestartPolicy{.max_restarts = 1, .window = absl::Milliseconds(30) + absl::Nanoseconds(1)},
      SupervisorOptions{}, Flaky, runs, 3, absl::Milliseconds(30));
  EXPECT_THAT(co_await tight.task().Join(), StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ(*runs, 2);
}

PICOS_SIM_TEST(Supervisor, WaitsItsDelayBeforeEachRestart) {
  auto runs = std::make_shared<int>(0);
  Supervisor sup = Supervisor::Start(
      ThisScheduler(),
      RestartPolicy{.max_restarts = 5, .window = absl::Hours(1), .delay = absl::Seconds(10)},
      SupervisorOptions{}, Flaky, runs, 2, absl::ZeroDuration());
  EXPECT_EQ(co_await sup.task().Join(), absl::StatusOr<Value>(Value(3)));
  EXPECT_EQ(ThisScheduler().NowNs(), 20'000'000'000) << "two restarts, ten seconds before each";
}

PICOS_SIM_TEST(Supervisor, ANormalEndIsNotRestarted) {
  auto runs = std::make_shared<int>(0);
  Supervisor sup = Supervisor::Start(ThisScheduler(), RestartPolicy{}, SupervisorOptions{}, Flaky,
                                     runs, 0, absl::ZeroDuration());
  EXPECT_EQ(co_await sup.task().Join(), absl::StatusOr<Value>(Value(1)));
  EXPECT_EQ(sup.restarts(), 0);
}

PICOS_SIM_TEST(Supervisor, RestartOnSuccessWhenThePolicySaysSo) {
  auto runs = std::make_shared<int>(0);
  Supervisor sup = Supervisor::Start(
      ThisScheduler(),
      RestartPolicy{.max_restarts = 2, .window = absl::Seconds(30), .restart_on_success = true},
      SupervisorOptions{}, Flaky, runs, 0, absl::ZeroDuration());
  EXPECT_THAT(co_await sup.task().Join(), StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ(*runs, 3);
}

Task<absl::StatusOr<Value>> EchoOnce() {
  absl::StatusOr<Value> m = co_await Receive();
  co_return m;
}

PICOS_SIM_TEST(Supervisor, ForwardsMessagesToTheWorker) {
  Supervisor sup = Supervisor::Start(ThisScheduler(), RestartPolicy{}, SupervisorOptions{}, EchoOnce);
  CO_ASSERT_OK(sup.task().Send("hello"));
  EXPECT_EQ(co_await sup.task().Join(), absl::StatusOr<Value>(Value("hello")));
}

PICOS_SIM_TEST(Supervisor, StopEndsSupervisorAndWorker) {
  Supervisor sup = Supervisor::Start(ThisScheduler(), RestartPolicy{}, SupervisorOptions{}, EchoOnce);
  (void)co_await Yield();
  TaskRef worker = sup.worker();
  CO_ASSERT_TRUE(worker.valid());
  CO_ASSERT_OK(sup.Stop());
  EXPECT_THAT(co_await sup.task().Join(), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_THAT(co_await worker.Join(), StatusIs(absl::StatusCode::kCancelled));
}

}  // namespace
}  // namespace picos
