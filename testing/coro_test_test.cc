// The coroutine test harness fails what it promises to fail: a leaked task,
// a libuv handle left open, a body that ends with an error; and passes a body
// that cleans up, however late its handles finish closing.
#include "testing/coro_test.h"

#include <uv.h>

#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace picos::testing {
namespace {

// Static storage: the scheduler closes a leaked handle when it is
// destroyed, and the memory must outlive that.
uv_timer_t g_timer;

Task<> LeavesATimerOpen() {
  EXPECT_EQ(uv_timer_init(ThisScheduler().uv_loop(), &g_timer), 0);
  co_return;
}

Task<> ClosesItsTimer() {
  EXPECT_EQ(uv_timer_init(ThisScheduler().uv_loop(), &g_timer), 0);
  // Closing completes at the loop's next turn, after the body has ended.
  uv_close(reinterpret_cast<uv_handle_t*>(&g_timer), nullptr);
  co_return;
}

Task<> LeavesATaskBehind() {
  ThisScheduler().Spawn([]() -> Task<> { (void)co_await Receive(); });
  co_return;
}

Task<> EndsTheTaskItStarted() {
  TaskRef t = ThisScheduler().Spawn([]() -> Task<> { (void)co_await Receive(); });
  co_await Yield();
  EXPECT_OK(t.Terminate());  // it ends at its next turn, after the body
  co_return;
}

Task<absl::Status> Fails() { co_return absl::InternalError("the body failed"); }

const CoroTestOptions kQuick{.drain = absl::Milliseconds(100)};

TEST(RunCoroTest, FailsAHandleLeftOpen) {
  EXPECT_NONFATAL_FAILURE(RunCoroTest(LeavesATimerOpen, kQuick),
                          "libuv handles still open after the test body ended: timer");
}

TEST(RunCoroTest, PassesAHandleClosedAtTheEnd) { RunCoroTest(ClosesItsTimer); }

TEST(RunCoroTest, FailsALeakedTask) {
  EXPECT_NONFATAL_FAILURE(RunCoroTest(LeavesATaskBehind, kQuick), "tasks still alive");
}

TEST(RunCoroTest, PassesATaskToldToEnd) { RunCoroTest(EndsTheTaskItStarted); }

TEST(RunCoroTest, FailsABodyThatFails) {
  EXPECT_NONFATAL_FAILURE(RunCoroTest(Fails), "the test body's task failed");
}

TEST(RunCoroTest, RunsTheBodyOnTheClockAsked) {
  RunCoroTest(
      []() -> Task<> {
        const std::shared_ptr<VirtualClock>& clock = ThisScheduler().clock();
        EXPECT_TRUE(clock != nullptr && clock->mode() == VirtualClock::kManual);
        co_return;
      },
      CoroTestOptions{.clock = VirtualClock::kManual});
  RunCoroTest([]() -> Task<> {
    EXPECT_EQ(ThisScheduler().clock(), nullptr);
    co_return;
  });
}

PICOS_SIM_TEST(RunCoroTest, SimTestsRunOnASimulatedClock) {
  CO_ASSERT_TRUE(ThisScheduler().clock() != nullptr);
  EXPECT_EQ(ThisScheduler().clock()->mode(), VirtualClock::kSimulated);
  co_await Sleep(absl::Hours(24));
  EXPECT_EQ(ThisScheduler().clock()->Now(), absl::Hours(24));
}

}  // namespace
}  // namespace picos::testing
