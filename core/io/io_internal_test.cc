#include "core/io/io_internal.h"

#include <memory>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/kernel/clock.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::internal {
namespace {

using ::picos::testing::StatusIs;

PICOS_CORO_TEST(Deadline, CountsDownOnTheSchedulersClock) {
  const int64_t start = ThisScheduler().NowNs();
  const Deadline d(absl::Seconds(100));
  absl::Duration left = d.Remaining();
  EXPECT_LE(left, absl::Seconds(100));
  EXPECT_GT(left, absl::Seconds(50));
  EXPECT_FALSE(d.Expired());
  const Deadline soon(absl::Milliseconds(5));
  (void)co_await Sleep(absl::Milliseconds(10));
  EXPECT_TRUE(soon.Expired());
  EXPECT_EQ(soon.Remaining(), absl::ZeroDuration());
  EXPECT_GE(ThisScheduler().NowNs() - start, 10'000'000) << "the clock is monotonic nanoseconds";
}

PICOS_CORO_TEST(Deadline, InfiniteZeroAndNegative) {
  const Deadline never(absl::InfiniteDuration());
  EXPECT_EQ(never.Remaining(), absl::InfiniteDuration());
  EXPECT_FALSE(never.Expired());
  const Deadline centuries(absl::Hours(24 * 365 * 1000));
  EXPECT_FALSE(centuries.Expired());
  EXPECT_TRUE(Deadline(absl::ZeroDuration()).Expired());
  EXPECT_TRUE(Deadline(-absl::Seconds(1)).Expired());
  co_return;
}

// The I/O deadline (internal::Deadline) reads the scheduler's clock, not the
// wall clock: only virtual time moves it.
TEST(Deadline, FollowsTheSchedulersVirtualClockNotRealTime) {
  ::picos::testing::RunCoroTest(
      []() -> Task<> {
        VirtualClock& clock = *ThisScheduler().clock();
        internal::Deadline d(absl::Seconds(10));
        absl::SleepFor(absl::Milliseconds(5));  // real time passes: nothing changes
        EXPECT_EQ(d.Remaining(), absl::Seconds(10));
        EXPECT_FALSE(d.Expired());
        clock.Advance(absl::Seconds(4));
        EXPECT_EQ(d.Remaining(), absl::Seconds(6));
        clock.Advance(absl::Seconds(6));
        EXPECT_TRUE(d.Expired());
        EXPECT_EQ(d.Remaining(), absl::ZeroDuration());
        EXPECT_EQ(internal::Deadline(absl::InfiniteDuration()).Remaining(),
                  absl::InfiniteDuration());
        co_return;
      },
      ::picos::testing::CoroTestOptions{.clock = VirtualClock::kManual});
}

PICOS_CORO_TEST(Completion, WakesItsWaiterOnce) {
  auto c = std::make_shared<Completion>();
  auto complete = [c]() -> Task<> {
    (void)co_await Sleep(absl::Milliseconds(5));
    c->Complete();
  };
  TaskRef t = ThisScheduler().Spawn(complete);
  const Deadline deadline(absl::Seconds(30));
  CO_ASSERT_OK(co_await c->Wait(deadline));
  EXPECT_TRUE(c->done());
  CO_ASSERT_OK(co_await c->Wait(deadline));  // done stays done: no wait
  (void)co_await t.Join();
}

PICOS_CORO_TEST(Completion, TimesOutAndIsInterrupted) {
  auto c = std::make_shared<Completion>();
  const Deadline soon(absl::Milliseconds(5));
  EXPECT_THAT(co_await c->Wait(soon), StatusIs(absl::StatusCode::kDeadlineExceeded));
  auto wait = [c]() -> Task<absl::Status> {
    const Deadline forever(absl::InfiniteDuration());
    co_return co_await c->Wait(forever);
  };
  TaskRef t = ThisScheduler().Spawn(wait);
  (void)co_await Yield();
  CO_ASSERT_OK(t.Throw(absl::AbortedError("enough")));
  EXPECT_THAT(co_await t.Join(), StatusIs(absl::StatusCode::kAborted));
  EXPECT_FALSE(c->done());
}

PICOS_CORO_TEST(WaitSlot, WakesAConditionWaitAndTimesOut) {
  auto slot = std::make_shared<WaitSlot>();
  auto notify = [slot]() -> Task<> {
    (void)co_await Sleep(absl::Milliseconds(5));
    slot->Notify();
  };
  TaskRef t = ThisScheduler().Spawn(notify);
  const Deadline deadline(absl::Seconds(30));
  CO_ASSERT_OK(co_await slot->Wait(deadline));
  (void)co_await t.Join();
  const Deadline soon(absl::Milliseconds(5));
  EXPECT_THAT(co_await slot->Wait(soon), StatusIs(absl::StatusCode::kDeadlineExceeded));
}

// The spares are the thread's: each test runs in a thread of its own, which
// starts with none.
template <typename F>
void InFreshThread(F f) {
  std::thread t(f);
  t.join();
}

TEST(Spares, ABulkTransfersBufferSurvivesItsDrains) {
  InFreshThread([] {
    // A stream's read buffer at the default read-ahead bound goes back on
    // every drain and must come back, not be freed and grown again.
    std::string big = TakeBuffer(2 << 20);
    const char* storage = big.data();
    GiveBackBuffer(std::move(big));
    std::string again = TakeBuffer(64 * 1024, kMaxSpareBuffer, /*biggest=*/true);
    EXPECT_EQ(again.data(), storage);
    EXPECT_GE(again.capacity(), size_t{2} << 20);
    // A small need does not take it by default.
    GiveBackBuffer(std::move(again));
    EXPECT_LT(TakeBuffer(100).capacity(), size_t{64} * 1024);
  });
}

TEST(Spares, SmallestOrBiggestAndBoundedInAll) {
  InFreshThread([] {
    GiveBackBuffer(TakeBuffer(64 * 1024));
    GiveBackBuffer(TakeBuffer(256 * 1024));
    EXPECT_EQ(TakeBuffer(1000, kMaxSpareBuffer).capacity(), size_t{64} * 1024);
    GiveBackBuffer(TakeBuffer(64 * 1024));
    EXPECT_EQ(TakeBuffer(1000, kMaxSpareBuffer, true).capacity(), size_t{256} * 1024);
    // Over kMaxSpareBytes the smaller ones are freed for a bigger one.
    GiveBackBuffer(TakeBuffer(kMaxSpareBuffer));
    GiveBackBuffer(TakeBuffer(kMaxSpareBuffer));
    size_t total = 0;
    for (;;) {
      std::string b = TakeBuffer(1000, kMaxSpareBuffer);
      if (b.capacity() < 64 * 1024) break;  // a new one: no spare left
      total += b.capacity();
    }
    EXPECT_LE(total, kMaxSpareBytes);
    EXPECT_GE(total, kMaxSpareBuffer);
  });
}

}  // namespace
}  // namespace picos::internal
