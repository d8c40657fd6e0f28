#include "core/kernel/hot_swap.h"

#include <memory>
#include <string>
#include <vector>

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
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Log = std::shared_ptr<std::vector<std::string>>;

// Records its own end: shows that a swapped-out body's locals are destroyed.
struct Farewell {
  Log log;
  std::string what;
  ~Farewell() { log->push_back(what); }
};

Task<> ServerV1(Log log) {
  Farewell bye{log, "v1 destroyed"};
  HotSwappable(true);
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return;
    log->push_back("v1:" + m->DebugString());
  }
}

// Counts messages until "stop"; gives how many it handled, with its own id.
Task<absl::StatusOr<Value>> ServerV2(Log log, std::string tag) {
  int handled = 0;
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return m.status();
    if (*m == Value("stop")) break;
    log->push_back(tag + ":" + m->DebugString());
    ++handled;
  }
  // Its own id, not Self(): a task whose result holds its own handle would
  // keep itself alive.
  co_return Value::Map({{"handled", handled}, {"id", Self().id()}, {"name", Self().name()}});
}

PICOS_CORO_TEST(HotSwap, KeepsMailboxAndIdentity) {
  auto log = std::make_shared<std::vector<std::string>>();
  TaskRef server = ThisScheduler().SpawnNamed("server", ServerV1, log);
  uint64_t id = server.id();
  CO_ASSERT_OK(Monitor(Self(), server));
  CO_ASSERT_OK(server.Send(1));
  (void)co_await Sleep(absl::Milliseconds(1));  // v1 handles 1, parks in Receive
  CO_ASSERT_OK(server.Send(2));  // wakes it; it has not run yet
  CO_ASSERT_OK(server.Send(3));
  EXPECT_TRUE(IsHotSwappable(server));
  CO_ASSERT_OK(HotSwap(server, ServerV2, log, std::string("v2")));
  EXPECT_FALSE(IsHotSwappable(server));  // the new body must allow it again
  CO_ASSERT_OK(server.Send(4));
  CO_ASSERT_OK(server.Send("stop"));

  absl::StatusOr<Value> r = co_await server.Join();
  CO_ASSERT_OK(r);
  EXPECT_THAT(*log, ElementsAre("v1:1", "v1 destroyed", "v2:2", "v2:3", "v2:4"));
  EXPECT_EQ((*r)["handled"], Value(3));
  EXPECT_EQ((*r)["id"], Value(id));
  EXPECT_EQ((*r)["name"], Value("server"));
  EXPECT_EQ(server.id(), id);

  // The monitor set on the old body reports the new body's end.
  absl::StatusOr<Value> m = co_await Receive(absl::Seconds(5));
  CO_ASSERT_OK(m);
  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->task, server);
  EXPECT_EQ(st->value["handled"], Value(3));
}

PICOS_CORO_TEST(HotSwap, SwapsATaskStillWaitingInReceive) {
  auto log = std::make_shared<std::vector<std::string>>();
  TaskRef server = ThisScheduler().Spawn(ServerV1, log);
  (void)co_await Yield();  // it starts and parks in Receive
  EXPECT_EQ(server.state(), TaskState::kReceiving);
  CO_ASSERT_OK(HotSwap(server, ServerV2(log, "new")));
  CO_ASSERT_OK(server.Send("x"));
  CO_ASSERT_OK(server.Send("stop"));
  absl::StatusOr<Value> r = co_await server.Join();
  CO_ASSERT_OK(r);
  EXPECT_THAT(*log, ElementsAre("v1 destroyed", "new:\"x\""));
}

PICOS_CORO_TEST(HotSwap, RefusesATaskThatDoesNotAllowIt) {
  auto log = std::make_shared<std::vector<std::string>>();
  TaskRef plain = ThisScheduler().Spawn(ServerV2, log, std::string("plain"));
  (void)co_await Yield();
  EXPECT_THAT(HotSwap(plain, ServerV2, log, std::string("other")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("does not allow")));
  // Refused means nothing changed: the old body still runs.
  CO_ASSERT_OK(plain.Send(1));
  CO_ASSERT_OK(plain.Send("stop"));
  absl::StatusOr<Value> r = co_await plain.Join();
  CO_ASSERT_OK(r);
  EXPECT_THAT(*log, ElementsAre("plain:1"));
}

Task<> SwappableSleeper() {
  HotSwapGuard allow;
  (void)co_await Sleep(absl::Milliseconds(20));
}

PICOS_CORO_TEST(HotSwap, RefusesATaskNotAtASwapPoint) {
  TaskRef sleeper = ThisScheduler().Spawn(SwappableSleeper);
  (void)co_await Yield();
  EXPECT_TRUE(IsHotSwappable(sleeper));
  bool ran = false;
  EXPECT_THAT(HotSwap(sleeper,
                      [&ran]() -> Task<> {
                        ran = true;
                        co_return;
                      }),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not at a swap point")));
  EXPECT_THAT(co_await sleeper.Join(), IsOk());
  EXPECT_FALSE(ran);
  // Ended tasks cannot be swapped either.
  EXPECT_THAT(HotSwap(sleeper, SwappableSleeper),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ended")));
}

PICOS_CORO_TEST(HotSwap, ATaskCannotSwapItself) {
  HotSwapGuard allow;
  EXPECT_THAT(HotSwap(Self(), SwappableSleeper),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("running")));
  EXPECT_THAT(HotSwap(TaskRef(), SwappableSleeper), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(HotSwap(Self(), Task<>()), StatusIs(absl::StatusCode::kInvalidArgument));
  co_return;
}

PICOS_CORO_TEST(HotSwap, GuardEndsWithItsScope) {
  EXPECT_FALSE(HotSwappable(false));
  {
    HotSwapGuard allow;
    EXPECT_TRUE(IsHotSwappable(Self()));
  }
  EXPECT_FALSE(IsHotSwappable(Self()));
  co_return;
}

PICOS_CORO_TEST(HotSwap, APendingTerminateReachesTheNewBody) {
  auto log = std::make_shared<std::vector<std::string>>();
  TaskRef server = ThisScheduler().Spawn(ServerV1, log);
  (void)co_await Yield();
  CO_ASSERT_OK(server.Terminate());  // woken with kCancelled, not run yet
  CO_ASSERT_OK(HotSwap(server, ServerV2, log, std::string("v2")));
  EXPECT_THAT(co_await server.Join(), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_THAT(*log, ElementsAre("v1 destroyed"));
}

TEST(HotSwap, RefusedOffTheSchedulerThread) {
  Scheduler s;
  auto log = std::make_shared<std::vector<std::string>>();
  TaskRef server = s.Spawn(ServerV1, log);
  EXPECT_THAT(HotSwap(server, ServerV2, log, std::string("v2")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("thread")));
}

}  // namespace
}  // namespace picos
