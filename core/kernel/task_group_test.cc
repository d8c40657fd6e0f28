// TaskGroup: tasks that end with the object that owns them.
#include "core/kernel/task_group.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

// Counts its live copies: a local of a task frame that tells whether the
// frame was destroyed.
struct Alive {
  explicit Alive(int* count) : count(count) { ++*count; }
  Alive(const Alive&) = delete;
  ~Alive() { --*count; }
  int* count;
};

Task<> WaitForMessage(int* alive) {
  Alive a(alive);
  (void)co_await Receive();
}

Task<> SleepLong(int* alive) {
  Alive a(alive);
  (void)co_await Sleep(absl::Hours(1));
}

Task<absl::Status> Fail(std::string why) {
  co_await Yield();
  co_return absl::InternalError(why);
}

Task<int> Succeed(int v) {
  co_await Yield();
  co_return v;
}

PICOS_CORO_TEST(TaskGroup, RunsTasksCountsThemAndWaitsUntilEmpty) {
  TaskGroup group(ThisScheduler(), {.name = "workers"});
  EXPECT_TRUE(group.empty());
  std::vector<TaskRef> tasks;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<TaskRef> t = group.Spawn(Succeed, i);
    CO_ASSERT_OK(t);
    tasks.push_back(*t);
  }
  EXPECT_EQ(group.size(), 5u);
  EXPECT_EQ(tasks[0].name(), "workers");
  absl::Status empty = co_await group.WaitEmpty(absl::Seconds(60));
  EXPECT_THAT(empty, IsOk());
  EXPECT_TRUE(group.empty());
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<Value> v = co_await tasks[i].Join();
    CO_ASSERT_OK(v);
    EXPECT_EQ(v->as_int(), i);
  }
  // Empty now: at once.
  empty = co_await group.WaitEmpty(absl::ZeroDuration());
  EXPECT_THAT(empty, IsOk());
}

PICOS_CORO_TEST(TaskGroup, ErrorHookSeesEachFailureOnce) {
  std::vector<std::string> failures;
  TaskGroup* self = nullptr;
  size_t size_in_hook = 99;
  TaskGroup group(ThisScheduler(),
                  {.name = "g",
                   .on_error = [&](const TaskRef& t, const absl::Status& error) {
                     failures.push_back(std::string(error.message()));
                     EXPECT_TRUE(t.done());
                     size_in_hook = std::min(size_in_hook, self->size());
                   }});
  self = &group;
  CO_ASSERT_OK(group.Spawn(Fail, "first"));
  CO_ASSERT_OK(group.Spawn(Succeed, 1));
  CO_ASSERT_OK(group.Spawn(Fail, "second"));
  int alive = 0;
  absl::StatusOr<TaskRef> terminated = group.Spawn(WaitForMessage, &alive);
  CO_ASSERT_OK(terminated);
  CO_ASSERT_OK(terminated->Terminate());  // kCancelled: not a failure
  absl::Status empty = co_await group.WaitEmpty(absl::Seconds(60));
  EXPECT_THAT(empty, IsOk());
  EXPECT_THAT(failures, ::testing::UnorderedElementsAre("first", "second"));
  // The failed task had left the group when the hook ran (1 of 4 remained
  // at the most when the first failure was reported).
  EXPECT_LE(size_in_hook, 2u);
}

PICOS_CORO_TEST(TaskGroup, DestroyingTheGroupDestroysRunningAndSuspendedTasksAtOnce) {
  int alive = 0;
  std::vector<TaskRef> tasks;
  const size_t timers_before = ThisScheduler().timer_count();
  {
    TaskGroup group(ThisScheduler());
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<TaskRef> t = group.Spawn(WaitForMessage, &alive);
      CO_ASSERT_OK(t);
      tasks.push_back(*t);
      t = group.Spawn(SleepLong, &alive);
      CO_ASSERT_OK(t);
      tasks.push_back(*t);
    }
    co_await Yield();  // each is now suspended in its wait
    EXPECT_EQ(alive, 6);
    EXPECT_EQ(ThisScheduler().timer_count(), timers_before + 3);
    // One more that has not run yet (ready, never started), and one woken
    // (ready, in the middle of its wait) when the group goes.
    absl::StatusOr<TaskRef> fresh = group.Spawn(WaitForMessage, &alive);
    CO_ASSERT_OK(fresh);
    tasks.push_back(*fresh);
    CO_ASSERT_OK(tasks[0].Send(Value("wake up")));
    EXPECT_EQ(tasks[0].state(), TaskState::kReady);
  }
  // Gone now, not at their next wait: destructors ran, timers went.
  EXPECT_EQ(alive, 0);
  EXPECT_EQ(ThisScheduler().timer_count(), timers_before);
  for (const TaskRef& t : tasks) {
    EXPECT_TRUE(t.done());
    absl::StatusOr<Value> r = co_await t.Join();
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kCancelled, HasSubstr("destroyed")));
  }
  // None of them runs again: one more turn of the loop is harmless.
  co_await Yield();
  EXPECT_EQ(alive, 0);
}

// Tasks destroyed while queued to run, with no handle left anywhere: the
// ready queue must not touch them afterwards (ASan checks).
PICOS_CORO_TEST(TaskGroup, TasksDestroyedWhileQueuedWithNoHandleLeft) {
  int alive = 0;
  {
    TaskGroup group(ThisScheduler());
    for (int i = 0; i < 100; ++i) CO_ASSERT_OK(group.Spawn(WaitForMessage, &alive));
    co_await Yield();
    EXPECT_EQ(alive, 100);
    for (int i = 0; i < 100; ++i) CO_ASSERT_OK(group.Spawn(WaitForMessage, &alive));
  }
  EXPECT_EQ(alive, 0);
  for (int i = 0; i < 3; ++i) co_await Yield();
  EXPECT_EQ(ThisScheduler().task_count(), 1u);  // this body
}

// The destructors of a destroyed task may use its owner's other members and
// picos itself (send a last message); they run as the task.
PICOS_CORO_TEST(TaskGroup, DestroyedTasksRunTheirDestructorsAsTasks) {
  struct LastWord {
    TaskRef to;
    ~LastWord() { (void)to.Send(Value("bye")); }
  };
  auto speaker = [](TaskRef to) -> Task<> {
    LastWord w{to};
    (void)co_await Receive();
  };
  {
    TaskGroup group(ThisScheduler());
    CO_ASSERT_OK(group.Spawn(speaker, Self()));
    co_await Yield();
  }
  absl::StatusOr<Value> m = co_await Receive(absl::Seconds(60));
  CO_ASSERT_OK(m);
  EXPECT_EQ(m->as_string(), "bye");
}

PICOS_CORO_TEST(TaskGroup, TerminateAllLetsTasksCleanUp) {
  TaskGroup group(ThisScheduler());
  auto graceful = [](TaskRef to) -> Task<> {
    absl::StatusOr<Value> m = co_await Receive();
    // Terminated: the wait says so, and the task still runs to tidy up.
    (void)to.Send(Value(m.status().code() == absl::StatusCode::kCancelled ? "cancelled" : "?"));
  };
  for (int i = 0; i < 3; ++i) CO_ASSERT_OK(group.Spawn(graceful, Self()));
  co_await Yield();
  group.TerminateAll();
  absl::Status empty = co_await group.WaitEmpty(absl::Seconds(60));
  EXPECT_THAT(empty, IsOk());
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Value> m = co_await Receive(absl::Seconds(60));
    CO_ASSERT_OK(m);
    EXPECT_EQ(m->as_string(), "cancelled");
  }
}

PICOS_CORO_TEST(TaskGroup, BoundedGroupRefusesBeyondItsSize) {
  int alive = 0;
  TaskGroup group(ThisScheduler(), {.name = "small", .max_tasks = 2});
  absl::StatusOr<TaskRef> a = group.Spawn(WaitForMessage, &alive);
  CO_ASSERT_OK(a);
  CO_ASSERT_OK(group.Spawn(WaitForMessage, &alive));
  absl::StatusOr<TaskRef> c = group.Spawn(WaitForMessage, &alive);
  EXPECT_THAT(c, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("small")));
  EXPECT_EQ(alive, 0);  // nothing ran yet, and the refused task never will
  CO_ASSERT_OK(a->Send(Value(1)));
  (void)co_await a->Join();
  // Room again.
  CO_ASSERT_OK(group.Spawn(WaitForMessage, &alive));
  EXPECT_EQ(group.size(), 2u);
}

PICOS_CORO_TEST(TaskGroup, WaitEmptyTimesOutAndWakesWhenTheGroupIsDestroyed) {
  int alive = 0;
  auto group = std::make_unique<TaskGroup>(ThisScheduler());
  CO_ASSERT_OK(group->Spawn(WaitForMessage, &alive));
  absl::Status st = co_await group->WaitEmpty(absl::Milliseconds(1));
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kDeadlineExceeded));
  // A waiter, then the group is destroyed by someone else.
  TaskGroup* g = group.get();
  auto waiter = [g]() -> Task<absl::Status> { co_return co_await g->WaitEmpty(); };
  TaskRef w = ThisScheduler().Spawn(waiter);
  co_await Yield();
  EXPECT_EQ(w.state(), TaskState::kWaiting);
  group.reset();
  absl::StatusOr<Value> r = co_await w.Join(absl::Seconds(60));
  EXPECT_THAT(r, IsOk());
  EXPECT_EQ(alive, 0);
}

// A task of the group that destroys its own group cannot be destroyed
// under its own feet: it is told to terminate; the others go at once.
PICOS_CORO_TEST(TaskGroup, ATaskThatClearsItsOwnGroupIsTerminatedNotDestroyed) {
  int alive = 0;
  TaskGroup group(ThisScheduler());
  CO_ASSERT_OK(group.Spawn(WaitForMessage, &alive));
  auto clearer = [](TaskGroup* g, int* count) -> Task<absl::Status> {
    Alive a(count);
    g->Clear();
    // Still running; the next wait reports the termination.
    absl::Status s = co_await Sleep(absl::Hours(1));
    co_return s;
  };
  absl::StatusOr<TaskRef> c = group.Spawn(clearer, &group, &alive);
  CO_ASSERT_OK(c);
  absl::StatusOr<Value> r = co_await c->Join(absl::Seconds(60));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(alive, 0);
  EXPECT_TRUE(group.empty());
}

PICOS_CORO_TEST(TaskGroup, TasksMaySpawnIntoTheirGroupAndTheHookMayRestart) {
  int restarts = 0;
  TaskGroup* self = nullptr;
  TaskGroup group(ThisScheduler(),
                  {.on_error = [&](const TaskRef&, const absl::Status&) {
                     if (++restarts < 3) {
                       EXPECT_OK(self->Spawn(Fail, "again"));
                     }
                   }});
  self = &group;
  CO_ASSERT_OK(group.Spawn(Fail, "first"));
  absl::Status empty = co_await group.WaitEmpty(absl::Seconds(60));
  EXPECT_THAT(empty, IsOk());
  EXPECT_EQ(restarts, 3);
}

// Spawned before the loop runs (posted), destroyed before it ever started.
TEST(TaskGroup, GroupDestroyedBeforeTheLoopRuns) {
  Scheduler s;
  int alive = 0;
  TaskRef t;
  {
    TaskGroup group(s);
    absl::StatusOr<TaskRef> r = group.Spawn(WaitForMessage, &alive);
    ASSERT_TRUE(r.ok());
    t = *r;
  }
  EXPECT_TRUE(t.done());
  TaskRef ok = s.Spawn(Succeed, 7);
  absl::StatusOr<Value> v = s.RunUntil(ok);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->as_int(), 7);
  EXPECT_EQ(alive, 0);
  EXPECT_EQ(s.task_count(), 0u);
}

// A group may outlive its scheduler: its tasks ended when the scheduler
// stopped.
TEST(TaskGroup, GroupOutlivesItsScheduler) {
  int alive = 0;
  std::unique_ptr<TaskGroup> group;
  {
    Scheduler s;
    group = std::make_unique<TaskGroup>(s);
    ASSERT_TRUE(group->Spawn(WaitForMessage, &alive).ok());
    TaskRef tick = s.Spawn(Succeed, 1);
    ASSERT_TRUE(s.RunUntil(tick).ok());
    EXPECT_EQ(alive, 1);
  }
  EXPECT_EQ(alive, 0);
  group.reset();
}

TEST(TaskGroup, SpawnOnAStoppedSchedulerFails) {
  Scheduler s;
  TaskGroup group(s);
  s.Stop();
  absl::StatusOr<TaskRef> t = group.Spawn(Succeed, 1);
  EXPECT_THAT(t, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(group.empty());
}

}  // namespace
}  // namespace picos
