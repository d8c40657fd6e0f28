#include "core/kernel/timer.h"

#include <vector>

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

PICOS_SIM_TEST(PeriodicTimer, TicksOncePerPeriod) {
  PeriodicTimer t(absl::Milliseconds(3));
  for (int i = 1; i <= 5; ++i) {
    absl::StatusOr<int64_t> n = co_await t.Next();
    CO_ASSERT_OK(n);
    EXPECT_EQ(*n, 1);
    EXPECT_EQ(ThisScheduler().NowNs(), i * 3'000'000);
  }
}

// On the machine's clock: no tick comes early (no upper bound: the machine
// may be busy; missed ticks are then counted, not lost).
PICOS_CORO_TEST(PeriodicTimer, OnTheRealClockNoTickComesEarly) {
  PeriodicTimer t(absl::Milliseconds(3));
  absl::Time start = absl::Now();
  int64_t ticks = 0;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<int64_t> n = co_await t.Next();
    CO_ASSERT_OK(n);
    EXPECT_GE(*n, 1);
    ticks += *n;
  }
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(15) - absl::Microseconds(100));
  EXPECT_GE(ticks, 5);
}

PICOS_SIM_TEST(PeriodicTimer, MissedTicksAreCoalesced) {
  VirtualClock& clock = *ThisScheduler().clock();
  PeriodicTimer t(absl::Milliseconds(2));
  clock.Advance(absl::Milliseconds(9));  // busy: the task did not wait meanwhile
  absl::StatusOr<int64_t> n = co_await t.Next();
  CO_ASSERT_OK(n);
  EXPECT_EQ(*n, 4);  // ticks at 2, 4, 6, 8 ms passed
  EXPECT_EQ(clock.NowNs(), 9'000'000) << "returned at once";
  // The next one is in the future again (10 ms), not a burst of catch-up
  // ticks, and on the grid: no drift from the late wake.
  absl::StatusOr<int64_t> m = co_await t.Next();
  CO_ASSERT_OK(m);
  EXPECT_EQ(*m, 1);
  EXPECT_EQ(clock.NowNs(), 10'000'000);
  // Reset starts again from now.
  clock.Advance(absl::Microseconds(500));
  t.Reset();
  absl::StatusOr<int64_t> r = co_await t.Next();
  EXPECT_OK(r);
  EXPECT_EQ(clock.NowNs(), 12'500'000);
}

// Made where no scheduler runs (a member of an object built outside the
// loop): it starts counting at its first Next(), on the clock of the task
// that awaits it.
TEST(PeriodicTimer, MadeOutsideASchedulerStartsAtItsFirstNext) {
  PeriodicTimer t(absl::Seconds(1));
  ::picos::testing::RunCoroTest(
      [&t]() -> Task<> {
        co_await Sleep(absl::Seconds(5));
        absl::StatusOr<int64_t> n = co_await t.Next();
        CO_ASSERT_OK(n);
        EXPECT_EQ(*n, 1);
        EXPECT_EQ(ThisScheduler().NowNs(), 6'000'000'000);
      },
      ::picos::testing::CoroTestOptions{.clock = VirtualClock::kSimulated});
}

Task<absl::Status> TickForever(absl::Duration period) {
  PeriodicTimer t(period);
  for (;;) {
    absl::StatusOr<int64_t> n = co_await t.Next();
    if (!n.ok()) co_return n.status();
  }
}

PICOS_CORO_TEST(PeriodicTimer, TerminateEndsTheWait) {
  TaskRef t = ThisScheduler().Spawn(TickForever, absl::Hours(1));
  co_await Yield();
  EXPECT_EQ(ThisScheduler().timer_count(), 1u);
  CO_ASSERT_OK(t.Terminate());
  absl::StatusOr<Value> r = co_await t.Join();
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(ThisScheduler().timer_count(), 0u);
}

// --- a million pending timeouts do not slow the loop ---

#if defined(__SANITIZE_ADDRESS__)
constexpr int kWaiters = 100'000;  // ASan frames are several times bigger
#else
constexpr int kWaiters = 1'000'000;
#endif

Task<> WaitLong(int* woke) {
  absl::StatusOr<Value> m = co_await Receive(absl::Hours(1));
  if (m.ok()) ++*woke;
}

Task<> Pong(int rounds) {
  for (int i = 0; i < rounds; ++i) {
    absl::StatusOr<Value> m = co_await Receive(absl::Hours(1));
    if (!m.ok()) co_return;
    (void)m->as_task().Send(i);
  }
}

// Counts, not times: with the heap full of far deadlines, every message
// round trip still completes (each one adds and removes a timeout in the
// same heap), the heap holds exactly the pending ones, and ending the
// waits empties it.
PICOS_CORO_TEST(Timeouts, AMillionPendingDoNotStopTheLoop) {
  Scheduler& s = ThisScheduler();
  int woke = 0;
  std::vector<TaskRef> waiters;
  waiters.reserve(kWaiters);
  for (int i = 0; i < kWaiters; ++i) waiters.push_back(s.Spawn(WaitLong, &woke));
  co_await Yield();
  EXPECT_EQ(s.timer_count(), static_cast<size_t>(kWaiters));

  constexpr int kRounds = 10'000;
  TaskRef pong = s.Spawn(Pong, kRounds);
  int done = 0;
  for (int i = 0; i < kRounds; ++i) {
    CO_ASSERT_OK(pong.Send(Self()));
    absl::StatusOr<Value> r = co_await Receive(absl::Hours(1));
    CO_ASSERT_OK(r);
    if (r->as_int() == i) ++done;
  }
  EXPECT_EQ(done, kRounds);
  (void)co_await pong.Join();
  EXPECT_EQ(s.timer_count(), static_cast<size_t>(kWaiters));

  // Half get their message, half are terminated: both take their timeout out.
  for (int i = 0; i < kWaiters; ++i) {
    if (i % 2 == 0) {
      CO_ASSERT_OK(waiters[i].Send(1));
    } else {
      CO_ASSERT_OK(waiters[i].Terminate());
    }
  }
  // Both take the timeout out at once, before the tasks even run.
  EXPECT_EQ(s.timer_count(), 0u);
  for (TaskRef& t : waiters) (void)co_await t.Join();
  EXPECT_EQ(woke, kWaiters / 2);
  EXPECT_EQ(s.timer_count(), 0u);
}

}  // namespace
}  // namespace picos
