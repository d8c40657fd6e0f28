// Tests whose body is a coroutine, run as a task on a fresh Scheduler.
//
//   PICOS_CORO_TEST(Channel, Broadcasts) {
//     picos::TaskRef t = picos::ThisScheduler().Spawn(Worker);
//     CO_ASSERT_OK(t.Send(1));          // ASSERT_* use `return`: use CO_ASSERT_*
//     EXPECT_THAT(co_await t.Join(), IsOk());
//     co_return;
//   }
//
// The test fails if the body ends with an error, if the loop deadlocks, if
// any task the body started is still alive when the body ends (a leaked
// task), or if a libuv handle is still open on the scheduler's loop (a leaked
// socket, pipe, process or timer: libuv's own tests require that the loop
// closes, MAKE_VALGRIND_HAPPY in test/task.h). The body must contain a
// co_await or co_return.
//
// Where time is what a test checks, PICOS_SIM_TEST runs the body on a
// simulated VirtualClock (core/kernel/clock.h): time passes only while every task
// waits, by exactly what they wait for, so timeouts of seconds or hours take
// microseconds and come out the same on a busy machine:
//
//   PICOS_SIM_TEST(Heartbeat, ExpiresAfterFiveSilentSeconds) {
//     absl::StatusOr<picos::Value> m = co_await picos::Receive(absl::Seconds(5));
//     EXPECT_EQ(picos::ThisScheduler().NowNs(), 5'000'000'000);
//   }
#ifndef PICOS_TESTING_CORO_TEST_H_
#define PICOS_TESTING_CORO_TEST_H_

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/kernel/clock.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "testing/status_matchers.h"

namespace picos::testing {

struct CoroTestOptions {
  // The scheduler's clock: real time (nullopt), or a fresh VirtualClock in
  // this mode, reachable from the body as ThisScheduler().clock().
  std::optional<VirtualClock::Mode> clock;
  // Real time that tasks the body told to end, and handles it closed, get
  // to finish after the body ends. Only a failing test waits for all of it:
  // wide, so that a busy machine does not fail a good test.
  absl::Duration drain = absl::Seconds(20);
};

// Runs `body` (a coroutine function taking no arguments, or a callable
// returning a Task) as the only task of a fresh scheduler, then lets the
// loop turn until every task has ended and every libuv handle is closed
// (at most `options.drain`). Fails the test if the body ends with an error
// or the loop deadlocks, and if any task or handle is left after that.
template <typename F>
void RunCoroTest(F body, CoroTestOptions options = {}) {
  Scheduler::Options so{.name = "test"};
  if (options.clock) so.clock = std::make_shared<VirtualClock>(*options.clock);
  Scheduler s(std::move(so));
  TaskRef t = s.SpawnNamed("test-body", std::move(body));
  absl::StatusOr<Value> r = s.RunUntil(t);
  EXPECT_OK(r) << "the test body's task failed";
  // At least one turn, so that handles closed at the body's end run their
  // close callbacks. A tick that sleeps makes the loop poll I/O and lets a
  // simulated clock move; under a manual clock nobody would advance it.
  const bool manual = options.clock == VirtualClock::kManual;
  const absl::Time give_up = absl::Now() + options.drain;
  for (int turn = 0;; ++turn) {
    TaskRef tick = s.Spawn([manual]() -> Task<> {
      if (manual) {
        co_await Yield();
      } else {
        co_await Sleep(absl::Milliseconds(1));
      }
    });
    (void)s.RunUntil(tick);
    if (s.task_count() == 0 && s.OpenHandles().empty()) break;
    if (turn > 0 && absl::Now() > give_up) break;
  }
  EXPECT_EQ(s.task_count(), 0u) << "tasks still alive after the test body ended";
  std::vector<std::string> handles = s.OpenHandles();
  EXPECT_TRUE(handles.empty()) << "libuv handles still open after the test body ended: "
                               << absl::StrJoin(handles, ", ");
}

}  // namespace picos::testing

#define PICOS_CORO_TEST(suite, name)                                      \
  static ::picos::Task<> suite##_##name##_CoroBody();                     \
  TEST(suite, name) { ::picos::testing::RunCoroTest(&suite##_##name##_CoroBody); } \
  static ::picos::Task<> suite##_##name##_CoroBody()

// PICOS_CORO_TEST on a simulated VirtualClock (see the top of this file).
#define PICOS_SIM_TEST(suite, name)                                                 \
  static ::picos::Task<> suite##_##name##_CoroBody();                               \
  TEST(suite, name) {                                                               \
    ::picos::testing::RunCoroTest(                                                  \
        &suite##_##name##_CoroBody,                                                 \
        ::picos::testing::CoroTestOptions{.clock = ::picos::VirtualClock::kSimulated}); \
  }                                                                                 \
  static ::picos::Task<> suite##_##name##_CoroBody()

// Fatal assertions for coroutine bodies (gtest's ASSERT_* `return`, which a
// coroutine may not).
#define CO_ASSERT_TRUE(cond)                           \
  do {                                                 \
    if (!(cond)) {                                     \
      ADD_FAILURE() << "expected true: " #cond;        \
      co_return;                                       \
    }                                                  \
  } while (0)

#define CO_ASSERT_OK(expr)                                                   \
  do {                                                                       \
    const auto& picos_co_st_ = (expr);                                       \
    if (!::picos::testing::GetStatus(picos_co_st_).ok()) {                   \
      ADD_FAILURE() << #expr " failed: "                                     \
                    << ::picos::testing::GetStatus(picos_co_st_).ToString(); \
      co_return;                                                             \
    }                                                                        \
  } while (0)

// GTEST_SKIP() for coroutine bodies: records the skip, with its reason, and
// ends the body.
#define CO_SKIP(why)                                                      \
  do {                                                                    \
    GTEST_MESSAGE_("Skipped", ::testing::TestPartResult::kSkip) << why;   \
    co_return;                                                            \
  } while (0)

#endif  // PICOS_TESTING_CORO_TEST_H_
