#include "core/kernel/monitor.h"

#include <stdexcept>
#include <string>

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

Task<int> ReturnsAfter(int v, absl::Duration d) {
  (void)co_await Sleep(d);
  co_return v;
}

Task<absl::Status> FailsAfter(absl::Duration d) {
  (void)co_await Sleep(d);
  co_return absl::NotFoundError("no such thing");
}

Task<int> Throws() {
  (void)co_await Yield();
  throw std::runtime_error("kaboom");
  co_return 0;
}

Task<> WaitsForever() {
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return;
  }
}

// The next message, which must be a monitor message.
Task<absl::StatusOr<MonitorStatus>> NextStatus() {
  absl::StatusOr<Value> m = co_await Receive(absl::Seconds(5));
  if (!m.ok()) co_return m.status();
  co_return MonitorStatus::FromValue(*m);
}

PICOS_SIM_TEST(Monitor, ReportsTheValue) {
  TaskRef w = ThisScheduler().SpawnNamed("adder", ReturnsAfter, 42, absl::Milliseconds(1));
  CO_ASSERT_OK(Monitor(Self(), w));
  absl::StatusOr<Value> raw = co_await Receive(absl::Seconds(5));
  CO_ASSERT_OK(raw);
  // The documented shape, read without this header's helpers: one key,
  // "picos.monitor", as every system message.
  CO_ASSERT_TRUE(raw->is_map());
  EXPECT_EQ(raw->as_map().size(), 1u);
  const Value* body = raw->Find("picos.monitor");
  CO_ASSERT_TRUE(body != nullptr);
  EXPECT_EQ((*body)["task"], Value(w));
  EXPECT_EQ((*body)["name"], Value("adder"));
  EXPECT_EQ((*body)["id"], Value(w.id()));
  EXPECT_EQ((*body)["outcome"], Value("value"));
  EXPECT_EQ((*body)["value"], Value(42));
  EXPECT_EQ(body->Find("error"), nullptr);

  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*raw);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->task, w);
  EXPECT_EQ(st->outcome, MonitorOutcome::kValue);
  EXPECT_EQ(st->value, Value(42));
  EXPECT_THAT(st->result(), IsOk());
}

PICOS_SIM_TEST(Monitor, ReportsAnError) {
  TaskRef w = ThisScheduler().Spawn(FailsAfter, absl::Milliseconds(1));
  CO_ASSERT_OK(Monitor(Self(), w));
  absl::StatusOr<MonitorStatus> st = co_await NextStatus();
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->outcome, MonitorOutcome::kError);
  EXPECT_THAT(st->error, StatusIs(absl::StatusCode::kNotFound, HasSubstr("no such thing")));
  EXPECT_THAT(st->result(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(st->DebugString(), HasSubstr("error: NOT_FOUND: no such thing"));
}

PICOS_SIM_TEST(Monitor, ReportsAnEscapingExceptionAsAnError) {
  TaskRef w = ThisScheduler().Spawn(Throws);
  CO_ASSERT_OK(Monitor(Self(), w));
  absl::StatusOr<MonitorStatus> st = co_await NextStatus();
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->outcome, MonitorOutcome::kError);
  EXPECT_THAT(st->error, StatusIs(absl::StatusCode::kInternal, HasSubstr("kaboom")));
}

PICOS_SIM_TEST(Monitor, TellsTerminationApartFromReturn) {
  TaskRef w = ThisScheduler().Spawn(WaitsForever);
  CO_ASSERT_OK(Monitor(Self(), w));
  (void)co_await Yield();
  CO_ASSERT_OK(w.Terminate());
  absl::StatusOr<MonitorStatus> st = co_await NextStatus();
  CO_ASSERT_OK(st);
  // WaitsForever co_returns (void) after the kCancelled wait, which is a
  // normal return: the task chose to end cleanly.
  EXPECT_EQ(st->outcome, MonitorOutcome::kValue);

  // A task that waits again after being told is destroyed: terminated.
  TaskRef stubborn = ThisScheduler().Spawn([]() -> Task<> {
    for (;;) (void)co_await Sleep(absl::Seconds(10));
  });
  CO_ASSERT_OK(Monitor(Self(), stubborn));
  (void)co_await Yield();
  CO_ASSERT_OK(stubborn.Terminate());
  st = co_await NextStatus();
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->outcome, MonitorOutcome::kTerminated);
  EXPECT_THAT(st->error, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(st->ToValue()["picos.monitor"]["outcome"], Value("terminated"));
}

PICOS_SIM_TEST(Monitor, AnEndedTaskIsReportedAtOnce) {
  TaskRef w = ThisScheduler().Spawn(ReturnsAfter, 7, absl::ZeroDuration());
  EXPECT_THAT(co_await w.Join(), IsOk());
  CO_ASSERT_OK(Monitor(Self(), w));
  absl::StatusOr<Value> m = co_await Receive(absl::ZeroDuration());  // already queued
  CO_ASSERT_OK(m);
  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->value, Value(7));
}

PICOS_SIM_TEST(Monitor, EveryMonitorIsTold) {
  TaskRef w = ThisScheduler().Spawn(ReturnsAfter, 1, absl::Milliseconds(5));
  TaskRef other = ThisScheduler().Spawn([](TaskRef watched) -> Task<absl::StatusOr<int>> {
    absl::Status s = Monitor(Self(), watched);
    if (!s.ok()) co_return s;
    absl::StatusOr<Value> m = co_await Receive(absl::Seconds(5));
    if (!m.ok()) co_return m.status();
    absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m);
    if (!st.ok()) co_return st.status();
    co_return static_cast<int>(st->value.as_int()) + 100;
  }, w);
  CO_ASSERT_OK(Monitor(Self(), w));
  absl::StatusOr<MonitorStatus> st = co_await NextStatus();
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->value, Value(1));
  EXPECT_EQ(co_await other.Join(), absl::StatusOr<Value>(Value(101)));
}

PICOS_SIM_TEST(Monitor, RejectsNullHandles) {
  EXPECT_THAT(Monitor(TaskRef(), Self()), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Monitor(Self(), TaskRef()), StatusIs(absl::StatusCode::kInvalidArgument));
  co_return;
}

// Across threads, on one simulated clock shared by both schedulers: the
// watcher's 5-second receive cannot time out before the worker's 20 ms are
// up, however slow the machine.
TEST(Monitor, FromAnotherThreadToASchedulerThread) {
  auto clock = std::make_shared<VirtualClock>(VirtualClock::kSimulated);
  Scheduler bg(Scheduler::Options{.name = "bg", .clock = clock});
  ASSERT_OK(bg.StartThread());
  Scheduler fg(Scheduler::Options{.name = "fg", .clock = clock});
  TaskRef w = bg.Spawn(ReturnsAfter, 5, absl::Milliseconds(20));
  TaskRef m = fg.Spawn([]() -> Task<absl::StatusOr<int>> {
    absl::StatusOr<MonitorStatus> st = co_await NextStatus();
    if (!st.ok()) co_return st.status();
    co_return static_cast<int>(st->value.as_int());
  });
  ASSERT_OK(Monitor(m, w));  // from the test thread: posted to bg
  absl::StatusOr<Value> r = fg.RunUntil(m);
  bg.Stop();
  ASSERT_OK(r);
  EXPECT_EQ(*r, Value(5));
  EXPECT_EQ(w.state(), TaskState::kDone);
  EXPECT_EQ(clock->Now(), absl::Milliseconds(20));
}

TEST(MonitorStatus, PeerLostRoundTrips) {
  MonitorStatus st = MonitorStatus::PeerLost(TaskRef(), "far", 9, absl::UnavailableError("gone"));
  Value v = st.ToValue();
  EXPECT_TRUE(MonitorStatus::Is(v));
  absl::StatusOr<MonitorStatus> back = MonitorStatus::FromValue(v);
  ASSERT_OK(back);
  EXPECT_FALSE(back->task.valid());
  EXPECT_EQ(back->name, "far");
  EXPECT_EQ(back->id, 9u);
  EXPECT_EQ(back->outcome, MonitorOutcome::kPeerLost);
  EXPECT_THAT(back->error, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("gone")));
}

TEST(MonitorStatus, RejectsMalformedMessages) {
  EXPECT_FALSE(MonitorStatus::Is(Value(3)));
  // The old shape, and a user's message that merely says "monitor".
  EXPECT_FALSE(MonitorStatus::Is(Value::Map({{"type", "monitor"}, {"outcome", "value"}})));
  EXPECT_FALSE(MonitorStatus::Is(Value::Map({{"picos.monitor", 1}})));
  EXPECT_FALSE(MonitorStatus::Is(
      Value::Map({{"picos.monitor", Value::Map({})}, {"other", 1}})));  // two keys
  EXPECT_THAT(MonitorStatus::FromValue(Value("monitor")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  auto monitor = [](std::initializer_list<std::pair<const std::string, Value>> body) {
    return Value::Map({{"picos.monitor", Value::Map(body)}});
  };
  EXPECT_THAT(MonitorStatus::FromValue(monitor({})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outcome")));
  EXPECT_THAT(MonitorStatus::FromValue(monitor({{"outcome", "exploded"}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown outcome")));
  EXPECT_THAT(MonitorStatus::FromValue(monitor({{"outcome", "error"}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("error")));
  EXPECT_THAT(MonitorStatus::FromValue(monitor({{"outcome", "value"}, {"task", 5}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("task")));
  EXPECT_THAT(MonitorStatus::FromValue(monitor(
                  {{"outcome", "error"}, {"error", Value::Map({{"code", "x"}, {"message", "m"}})}})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"error\": field \"code\": expected integer, got string")));
  // An error whose code says OK still reads as an error.
  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(
      monitor({{"outcome", "error"}, {"error", Value::Map({{"code", 0}, {"message", "odd"}})}}));
  ASSERT_OK(st);
  EXPECT_THAT(st->error, StatusIs(absl::StatusCode::kUnknown));
}

}  // namespace
}  // namespace picos
