// Polling before sleep (Scheduler::Options::poll_before_sleep): the policy's
// decisions, step by step, and what a scheduler does with them: an idle loop
// never polls, a loop whose traffic comes back quickly does, and a deadline
// inside the window is kept.
#include "core/kernel/poll_before_sleep_internal.h"

#include <cstdlib>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using internal::PollBeforeSleep;
using ::picos::testing::StatusIs;

constexpr int64_t kWindow = 50'000;  // ns

TEST(PollBeforeSleepPolicy, StartsBlockingAndPollsOnlyAfterAShortWait) {
  PollBeforeSleep p(kWindow);
  EXPECT_EQ(p.Budget(), 0);  // nothing learnt yet: block
  p.Woken(1'000'000'000);    // an idle second
  EXPECT_EQ(p.Budget(), 0);
  p.Woken(kWindow + 1);  // just too long
  EXPECT_EQ(p.Budget(), 0);
  p.Woken(20'000);  // the answer came within the window
  EXPECT_EQ(p.Budget(), kWindow);
  p.Woken(kWindow);  // the window's end still counts
  EXPECT_EQ(p.Budget(), kWindow);
}

TEST(PollBeforeSleepPolicy, AHitKeepsPollingAMissStopsItUntilTheNextShortWait) {
  PollBeforeSleep p(kWindow);
  p.Woken(10'000);
  ASSERT_EQ(p.Budget(), kWindow);
  p.Polled(true, 12'000);
  EXPECT_EQ(p.Budget(), kWindow);
  p.Polled(true, 8'000);
  EXPECT_EQ(p.Budget(), kWindow);
  p.Polled(false, kWindow);  // in vain: the next wait blocks at once
  EXPECT_EQ(p.Budget(), 0);
  p.Woken(3'000'000);  // and a long one keeps it off
  EXPECT_EQ(p.Budget(), 0);
  p.Woken(5'000);
  EXPECT_EQ(p.Budget(), kWindow);
  EXPECT_EQ(p.polls(), 3u);
  EXPECT_EQ(p.found(), 2u);
  EXPECT_EQ(p.polled_ns(), 12'000 + 8'000 + kWindow);
}

TEST(PollBeforeSleepPolicy, AZeroOrNegativeWindowNeverPolls) {
  for (int64_t window : {int64_t{0}, int64_t{-5}}) {
    PollBeforeSleep p(window);
    p.Woken(0);
    EXPECT_EQ(p.Budget(), 0);
    p.Polled(true, 0);
    p.Woken(0);
    EXPECT_EQ(p.Budget(), 0);
    EXPECT_EQ(p.window_ns(), 0);
  }
}

Scheduler::Options Window(absl::Duration d) {
  Scheduler::Options o;
  o.poll_before_sleep = d;
  return o;
}

Task<int> Sleeper(int times) {
  for (int i = 0; i < times; ++i) co_await Sleep(absl::Milliseconds(20));
  co_return times;
}

TEST(PollBeforeSleep, AnIdleLoopNeverPolls) {
  Scheduler s;  // the default window
  EXPECT_EQ(s.RunUntil(s.Spawn(Sleeper, 5)).value(), Value(5));
  // Each wait lasted a timer's 20 ms, far past the window: never armed.
  EXPECT_EQ(s.poll_stats().polls, 0u);
  EXPECT_EQ(s.poll_stats().polled, absl::ZeroDuration());
}

// Answers every message (a task handle) with 1.
Task<int> Echo() {
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok() || !m->is_task()) co_return 0;
    (void)m->as_task().Send(Value(1));
  }
}

// `n` round trips to `echo`, on another scheduler's thread; then a 5 ms
// sleep, whose length it gives in milliseconds.
Task<int64_t> Pinger(TaskRef echo, int n) {
  for (int i = 0; i < n; ++i) {
    if (!echo.Send(Value(Self())).ok()) co_return -1;
    absl::StatusOr<Value> r = co_await Receive(absl::Seconds(60));
    if (!r.ok()) co_return -2;
  }
  const absl::Time start = absl::Now();
  co_await Sleep(absl::Milliseconds(5));
  co_return absl::ToInt64Milliseconds(absl::Now() - start);
}

TEST(PollBeforeSleep, ALoopWhoseAnswersComeBackWithinTheWindowPollsForThem) {
  // A second's window: every answer from the other thread comes back
  // within it, however busy the machine.
  Scheduler echo_side(Window(absl::Seconds(1)));
  ASSERT_TRUE(echo_side.StartThread().ok());
  TaskRef echo = echo_side.Spawn(Echo);
  Scheduler s(Window(absl::Seconds(1)));
  absl::StatusOr<Value> slept_ms = s.RunUntil(s.Spawn(Pinger, echo, 200));
  echo_side.Stop();
  ASSERT_TRUE(slept_ms.ok()) << slept_ms.status();
  const Scheduler::PollStats stats = s.poll_stats();
  // The first wait blocks (nothing learnt yet) and is short; from then on
  // the loop polls and finds each answer.
  EXPECT_GE(stats.polls, 1u);
  EXPECT_GE(stats.found, 1u);
  EXPECT_LE(stats.found, stats.polls);
  EXPECT_GT(stats.polled, absl::ZeroDuration());
  // The 5 ms sleep's deadline fell inside the polling window: the poll
  // ended there, not a second later.
  EXPECT_GE(slept_ms->as_int(), 5);
  EXPECT_LT(slept_ms->as_int(), 500);
}

TEST(PollBeforeSleep, AZeroWindowNeverPolls) {
  Scheduler echo_side(Window(absl::ZeroDuration()));
  ASSERT_TRUE(echo_side.StartThread().ok());
  TaskRef echo = echo_side.Spawn(Echo);
  Scheduler s(Window(absl::ZeroDuration()));
  absl::StatusOr<Value> slept_ms = s.RunUntil(s.Spawn(Pinger, echo, 50));
  echo_side.Stop();
  ASSERT_TRUE(slept_ms.ok()) << slept_ms.status();
  EXPECT_EQ(s.poll_stats().polls, 0u);
}

TEST(PollBeforeSleepFromTheEnvironment, ValuesAreChecked) {
  EXPECT_EQ(internal::ParsePollBeforeSleep("0").value(), absl::ZeroDuration());
  EXPECT_EQ(internal::ParsePollBeforeSleep("20us").value(), absl::Microseconds(20));
  EXPECT_EQ(internal::ParsePollBeforeSleep("1s").value(), absl::Seconds(1));
  for (const char* bad : {"", "fast", "20", "-1us", "1.5s", "inf"}) {
    EXPECT_THAT(internal::ParsePollBeforeSleep(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

// In a fresh process (the default is read once per process): exits 0 if
// PICOS_POLL_BEFORE_SLEEP=`env` gives `want` as every scheduler's default.
[[noreturn]] void ExitWithDefault(const char* env, absl::Duration want) {
  setenv("PICOS_POLL_BEFORE_SLEEP", env, 1);
  const bool ok = internal::DefaultPollBeforeSleep() == want && Scheduler::Options().poll_before_sleep == want;
  std::exit(ok ? 0 : 1);
}

TEST(PollBeforeSleepFromTheEnvironmentDeathTest, SetsEverySchedulersDefaultOrIsLoggedAndIgnored) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process each
  EXPECT_EXIT(ExitWithDefault("20us", absl::Microseconds(20)), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(ExitWithDefault("0", absl::ZeroDuration()), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(ExitWithDefault("fast", absl::Microseconds(50)), ::testing::ExitedWithCode(0),
              "PICOS_POLL_BEFORE_SLEEP=fast is not a duration");
  EXPECT_EXIT(ExitWithDefault("2s", absl::Microseconds(50)), ::testing::ExitedWithCode(0), "outside 0 to 1s");
}

}  // namespace
}  // namespace picos
