// Tests whose body is a coroutine, run as a task on a fresh Scheduler.
//
//   PICOS_CORO_TEST(Channel, Broadcasts) {
//     picos::TaskRef t = picos::ThisScheduler().Spawn(Worker);
//     CO_ASSERT_OK(t.Send(1));          // ASSERT_* use `return`: use CO_ASSERT_*
//     EXPECT_THAT(co_await t.Join(), IsOk());
//     co_return;
//   }
//
// The test fails if the body ends with an error, if the loop deadlocks, or if
// any task the body started is still alive when the body ends (a leaked task).
// The body must contain a co_await or co_return.
#ifndef PICOS_TESTING_CORO_TEST_H_
#define PICOS_TESTING_CORO_TEST_H_

#include <gtest/gtest.h>

#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "testing/status_matchers.h"

namespace picos::testing {

// Runs `body` (a coroutine function taking no arguments, or a callable
// returning a Task) as the only task of a fresh scheduler, then gives tasks
// it told to end up to `drain_ticks` milliseconds to finish. Fails the test
// if the body ends with an error or the loop deadlocks, and if any task is
// still alive after that.
template <typename F>
void RunCoroTest(F body, int drain_ticks = 100) {
  Scheduler s(Scheduler::Options{.name = "test"});
  TaskRef t = s.SpawnNamed("test-body", std::move(body));
  absl::StatusOr<Value> r = s.RunUntil(t);
  EXPECT_OK(r) << "the test body's task failed";
  for (int i = 0; i < drain_ticks && s.task_count() > 0; ++i) {
    TaskRef tick = s.Spawn([]() -> Task<> { co_await Sleep(absl::Milliseconds(1)); });
    (void)s.RunUntil(tick);
  }
  EXPECT_EQ(s.task_count(), 0u) << "tasks still alive after the test body ended";
}

}  // namespace picos::testing

#define PICOS_CORO_TEST(suite, name)                                      \
  static ::picos::Task<> suite##_##name##_CoroBody();                     \
  TEST(suite, name) { ::picos::testing::RunCoroTest(&suite##_##name##_CoroBody); } \
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
