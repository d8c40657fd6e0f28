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

Log NewLog() { return std::make_shared<std::vector<std::string>>(); }

// Records its own end: shows that a swapped-out body's locals are destroyed.
struct Farewell {
  Log log;
  std::string what;
  ~Farewell() { log->push_back(what); }
};

// Swappable; logs each message. "sleep" makes it busy (not at its swap
// point) for a while; "allow"/"forbid" change whether it may be swapped.
Task<> ServerV1(Log log) {
  Farewell bye{log, "v1 destroyed"};
  HotSwappable(true);
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return;
    if (*m == Value("sleep")) {
      log->push_back("v1 sleeps");
      (void)co_await Sleep(absl::Milliseconds(5));
      log->push_back("v1 woke");
      continue;
    }
    if (*m == Value("allow")) {
      HotSwappable(true);
      continue;
    }
    if (*m == Value("forbid")) {
      HotSwappable(false);
      continue;
    }
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

// Lets the other tasks run until `task` parks in Receive.
Task<> UntilReceiving(TaskRef task) {
  for (int i = 0; i < 1000 && task.state() != TaskState::kReceiving; ++i) {
    (void)co_await Yield();
  }
}

PICOS_CORO_TEST(HotSwap, KeepsMailboxAndIdentity) {
  Log log = NewLog();
  TaskRef server = ThisScheduler().SpawnNamed("server", ServerV1, log);
  uint64_t id = server.id();
  CO_ASSERT_OK(Monitor(Self(), server));
  CO_ASSERT_OK(server.Send(1));
  co_await UntilReceiving(server);  // v1 handles 1, parks in Receive
  CO_ASSERT_OK(server.Send(2));     // wakes it; it has not run yet
  CO_ASSERT_OK(server.Send(3));
  EXPECT_TRUE(IsHotSwappable(server));
  CO_ASSERT_OK(co_await HotSwap(server, ServerV2, log, std::string("v2")));
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
  absl::StatusOr<Value> m = co_await Receive(absl::Seconds(60));
  CO_ASSERT_OK(m);
  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->task, server);
  EXPECT_EQ(st->value["handled"], Value(3));
}

PICOS_CORO_TEST(HotSwap, SwapsATaskStillWaitingInReceive) {
  Log log = NewLog();
  TaskRef server = ThisScheduler().Spawn(ServerV1, log);
  co_await UntilReceiving(server);
  CO_ASSERT_OK(co_await HotSwap(server, ServerV2(log, "new")));
  CO_ASSERT_OK(server.Send("x"));
  CO_ASSERT_OK(server.Send("stop"));
  CO_ASSERT_OK(co_await server.Join());
  EXPECT_THAT(*log, ElementsAre("v1 destroyed", "new:\"x\""));
}

PICOS_CORO_TEST(HotSwap, ASwapRequestedWhileTheTaskIsBusyWaitsForItsNextSwapPoint) {
  Log log = NewLog();
  TaskRef server = ThisScheduler().Spawn(ServerV1, log);
  CO_ASSERT_OK(server.Send("sleep"));
  (void)co_await Yield();  // it takes "sleep" and sleeps: busy
  EXPECT_EQ(server.state(), TaskState::kSuspended);
  // Messages that arrive while it sleeps: when it comes back to Receive with
  // these waiting, it parks for the swap instead of taking them.
  CO_ASSERT_OK(server.Send("a"));
  CO_ASSERT_OK(server.Send("b"));
  CO_ASSERT_OK(co_await HotSwap(server, ServerV2, log, std::string("v2")));
  CO_ASSERT_OK(server.Send("stop"));
  CO_ASSERT_OK(co_await server.Join());
  EXPECT_THAT(*log, ElementsAre("v1 sleeps", "v1 woke", "v1 destroyed", "v2:\"a\"", "v2:\"b\""));
}

PICOS_CORO_TEST(HotSwap, ASwapWaitsForTheTaskToAllowIt) {
  Log log = NewLog();
  TaskRef server = ThisScheduler().Spawn(ServerV1, log);
  CO_ASSERT_OK(server.Send("forbid"));
  CO_ASSERT_OK(server.Send(1));
  co_await UntilReceiving(server);
  EXPECT_FALSE(IsHotSwappable(server));
  // Allowed later, by a message it handles while the swap waits.
  TaskRef allower = ThisScheduler().Spawn([](TaskRef server) -> Task<> {
    (void)co_await Sleep(absl::Milliseconds(2));
    (void)server.Send(2);
    (void)server.Send("allow");
    (void)server.Send(3);
  }, server);
  CO_ASSERT_OK(co_await HotSwap(server, ServerV2, log, std::string("v2")));
  CO_ASSERT_OK(server.Send("stop"));
  CO_ASSERT_OK(co_await server.Join());
  CO_ASSERT_OK(co_await allower.Join());
  EXPECT_THAT(*log, ElementsAre("v1:1", "v1:2", "v1 destroyed", "v2:3"));
}

// Swappable with a decider: refuses while it holds an open "transaction"
// (between "begin" and "end"). "nap" makes it busy for a moment.
Task<> Transactional(Log log) {
  Farewell bye{log, "transactional destroyed"};
  bool open = false;
  auto decide = [&open, log](const HotSwapOffer& offer) -> absl::Status {
    log->push_back("asked by " + offer.requester.name() + (open ? ", busy" : ", idle"));
    if (open) return absl::FailedPreconditionError("a transaction is open");
    return absl::OkStatus();
  };
  HotSwapGuard allow(std::move(decide));
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return;
    if (*m == Value("begin")) open = true;
    if (*m == Value("end")) open = false;
    if (*m == Value("nap")) (void)co_await Sleep(absl::Milliseconds(5));
    log->push_back("t:" + m->DebugString());
  }
}

PICOS_CORO_TEST(HotSwap, TheTaskDecidesWhenTheSwapArrives) {
  Self().set_name("requester");
  Log log = NewLog();
  TaskRef server = ThisScheduler().Spawn(Transactional, log);
  CO_ASSERT_OK(server.Send("begin"));
  co_await UntilReceiving(server);
  EXPECT_THAT(co_await HotSwap(server, ServerV2, log, std::string("v2")),
              StatusIs(absl::StatusCode::kFailedPrecondition, "a transaction is open"));
  // Refused means nothing changed: the old body still runs, still decides.
  CO_ASSERT_OK(server.Send("end"));
  co_await UntilReceiving(server);
  CO_ASSERT_OK(co_await HotSwap(server, ServerV2, log, std::string("v2")));
  CO_ASSERT_OK(server.Send(5));
  CO_ASSERT_OK(server.Send("stop"));
  CO_ASSERT_OK(co_await server.Join());
  EXPECT_THAT(*log, ElementsAre("t:\"begin\"", "asked by requester, busy", "t:\"end\"",
                                "asked by requester, idle", "transactional destroyed", "v2:5"));
}

PICOS_CORO_TEST(HotSwap, ARefusalAtAReceiveWithMessagesWaitingLetsTheReceiveGoOn) {
  Self().set_name("requester");
  Log log = NewLog();
  TaskRef server = ThisScheduler().Spawn(Transactional, log);
  CO_ASSERT_OK(server.Send("begin"));
  CO_ASSERT_OK(server.Send("nap"));
  (void)co_await Yield();  // it takes both and naps: busy
  EXPECT_EQ(server.state(), TaskState::kSuspended);
  CO_ASSERT_OK(server.Send(1));
  CO_ASSERT_OK(server.Send(2));
  // Delivered when it is back in Receive with 1 and 2 waiting; refused
  // there, that Receive goes on with them.
  EXPECT_THAT(co_await HotSwap(server, ServerV2, log, std::string("v2")),
              StatusIs(absl::StatusCode::kFailedPrecondition, "a transaction is open"));
  co_await UntilReceiving(server);
  EXPECT_THAT(*log, ElementsAre("t:\"begin\"", "t:\"nap\"", "asked by requester, busy", "t:1",
                                "t:2"));
  CO_ASSERT_OK(server.Terminate());
  (void)co_await server.Join();
}

Task<> SwappableSleeper() {
  HotSwapGuard allow;
  (void)co_await Sleep(absl::Milliseconds(20));
}

PICOS_CORO_TEST(HotSwap, ATaskThatEndsBeforeItsSwapPointFailsTheSwap) {
  TaskRef sleeper = ThisScheduler().Spawn(SwappableSleeper);
  (void)co_await Yield();
  EXPECT_TRUE(IsHotSwappable(sleeper));
  bool ran = false;
  auto never = [&ran]() -> Task<> {
    ran = true;
    co_return;
  };
  EXPECT_THAT(co_await HotSwap(sleeper, never),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ended before")));
  EXPECT_FALSE(ran);
  EXPECT_THAT(co_await sleeper.Join(), IsOk());
  // Ended tasks cannot be swapped either.
  EXPECT_THAT(co_await HotSwap(sleeper, SwappableSleeper),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has ended")));
}

PICOS_CORO_TEST(HotSwap, ATimeoutWithdrawsTheRequest) {
  Log log = NewLog();
  TaskRef server = ThisScheduler().Spawn(ServerV1, log);
  CO_ASSERT_OK(server.Send("forbid"));
  co_await UntilReceiving(server);
  EXPECT_THAT(co_await HotSwap(server, ServerV2(log, "late"), absl::Milliseconds(5)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("no swap point")));
  // Withdrawn: allowing swaps later changes nothing, and a new request is
  // not "another pending".
  CO_ASSERT_OK(server.Send("allow"));
  CO_ASSERT_OK(server.Send(1));
  co_await UntilReceiving(server);
  EXPECT_THAT(*log, ElementsAre("v1:1"));
  CO_ASSERT_OK(co_await HotSwap(server, ServerV2, log, std::string("v2")));
  CO_ASSERT_OK(server.Send("stop"));
  CO_ASSERT_OK(co_await server.Join());
}

PICOS_CORO_TEST(HotSwap, OneSwapAtATimeAndATerminatedRequesterWithdraws) {
  Log log = NewLog();
  TaskRef server = ThisScheduler().Spawn(ServerV1, log);
  CO_ASSERT_OK(server.Send("forbid"));
  co_await UntilReceiving(server);
  TaskRef first = ThisScheduler().Spawn([](TaskRef server, Log log) -> Task<absl::Status> {
    co_return co_await HotSwap(server, ServerV2, log, std::string("first"));
  }, server, log);
  (void)co_await Yield();
  EXPECT_THAT(co_await HotSwap(server, ServerV2, log, std::string("second")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("another hot swap")));
  CO_ASSERT_OK(first.Terminate());
  EXPECT_THAT(co_await first.Join(), StatusIs(absl::StatusCode::kCancelled));
  // The withdrawn swap never happens.
  CO_ASSERT_OK(server.Send("allow"));
  CO_ASSERT_OK(server.Send(1));
  co_await UntilReceiving(server);
  EXPECT_THAT(*log, ElementsAre("v1:1"));
  CO_ASSERT_OK(server.Terminate());
  (void)co_await server.Join();
}

PICOS_CORO_TEST(HotSwap, ASelectiveReceiveIsNotASwapPoint) {
  Log log = NewLog();
  TaskRef waiter = ThisScheduler().Spawn([](Log log) -> Task<> {
    HotSwapGuard allow;
    absl::StatusOr<Value> reply = co_await ReceiveMatching(FieldEquals("reply", true));
    log->push_back(reply.ok() ? "got the reply" : reply.status().ToString());
    (void)co_await Receive();  // the swap point
    log->push_back("not swapped");
  }, log);
  (void)co_await Yield();
  EXPECT_EQ(waiter.state(), TaskState::kReceiving);
  TaskRef replier = ThisScheduler().Spawn([](TaskRef to) -> Task<> {
    (void)co_await Sleep(absl::Milliseconds(2));
    (void)to.Send(Value::Map({{"reply", true}}));
  }, waiter);
  CO_ASSERT_OK(co_await HotSwap(waiter, ServerV2, log, std::string("v2")));
  CO_ASSERT_OK(waiter.Send("stop"));
  CO_ASSERT_OK(co_await waiter.Join());
  CO_ASSERT_OK(co_await replier.Join());
  EXPECT_THAT(*log, ElementsAre("got the reply"));
}

PICOS_CORO_TEST(HotSwap, RefusedForItselfNullAndEmpty) {
  HotSwapGuard allow;
  EXPECT_THAT(co_await HotSwap(Self(), SwappableSleeper),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("itself")));
  EXPECT_THAT(co_await HotSwap(TaskRef(), SwappableSleeper),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(co_await HotSwap(Self(), Task<>()), StatusIs(absl::StatusCode::kInvalidArgument));
}

PICOS_CORO_TEST(HotSwap, GuardsPutBackWhatWasThere) {
  EXPECT_FALSE(HotSwappable(false));
  {
    HotSwapGuard allow;
    EXPECT_TRUE(IsHotSwappable(Self()));
    {
      HotSwapGuard refuse([](const HotSwapOffer&) { return absl::AbortedError("no"); });
      EXPECT_TRUE(IsHotSwappable(Self()));
    }
    EXPECT_TRUE(IsHotSwappable(Self()));
  }
  EXPECT_FALSE(IsHotSwappable(Self()));
  co_return;
}

PICOS_CORO_TEST(HotSwap, APendingTerminateReachesTheNewBody) {
  Log log = NewLog();
  TaskRef server = ThisScheduler().Spawn(ServerV1, log);
  co_await UntilReceiving(server);
  CO_ASSERT_OK(server.Terminate());  // woken with kCancelled, not run yet
  CO_ASSERT_OK(co_await HotSwap(server, ServerV2, log, std::string("v2")));
  EXPECT_THAT(co_await server.Join(), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_THAT(*log, ElementsAre("v1 destroyed"));
}

TEST(HotSwap, RefusedOutsideATaskOfItsScheduler) {
  Scheduler s;
  Scheduler other;
  Log log = NewLog();
  TaskRef server = s.Spawn(ServerV1, log);
  TaskRef requester = other.Spawn([](TaskRef server, Log log) -> Task<absl::Status> {
    co_return co_await HotSwap(server, ServerV2, log, std::string("v2"));
  }, server, log);
  EXPECT_THAT(other.RunUntil(requester),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("outside a task")));
}

}  // namespace
}  // namespace picos
