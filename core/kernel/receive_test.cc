// Selective receive: ReceiveMatching and FieldEquals (task.h).
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::StatusIs;
using ::testing::ElementsAre;

bool IsEven(const Value& m) { return m.is_int() && m.as_int() % 2 == 0; }

// What is left in the mailbox, in order, without waiting.
Task<std::vector<Value>> Drain() {
  std::vector<Value> out;
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive(absl::ZeroDuration());
    if (!m.ok()) co_return out;
    out.push_back(*std::move(m));
  }
}

PICOS_CORO_TEST(ReceiveMatching, TakesTheFirstMatchAndLeavesTheRestInOrder) {
  TaskRef self = Self();
  for (int i = 1; i <= 6; ++i) CO_ASSERT_OK(self.Send(i));
  CO_ASSERT_OK(self.Send(Value::Map({{"id", 7}, {"answer", 42}})));
  CO_ASSERT_OK(self.Send(8));

  absl::StatusOr<Value> even = co_await ReceiveMatching(IsEven);
  CO_ASSERT_OK(even);
  EXPECT_EQ(*even, Value(2));
  absl::StatusOr<Value> reply = co_await ReceiveMatching(FieldEquals("id", 7));
  CO_ASSERT_OK(reply);
  EXPECT_EQ((*reply)["answer"], Value(42));
  // The last one, and the first one.
  auto is_eight = [](const Value& m) { return m == Value(8); };
  auto is_one = [](const Value& m) { return m == Value(1); };
  absl::StatusOr<Value> eight = co_await ReceiveMatching(is_eight);
  CO_ASSERT_OK(eight);
  absl::StatusOr<Value> one = co_await ReceiveMatching(is_one);
  CO_ASSERT_OK(one);
  EXPECT_THAT(co_await Drain(), ElementsAre(Value(3), Value(4), Value(5), Value(6)));
}

Task<> SendLater(TaskRef to, std::vector<Value> messages) {
  for (Value& m : messages) {
    co_await Sleep(absl::Milliseconds(1));
    (void)to.Send(std::move(m));
  }
}

PICOS_CORO_TEST(ReceiveMatching, WaitsForAMatchAndTestsEachMessageOnce) {
  CO_ASSERT_OK(Self().Send("queued before"));
  TaskRef sender = ThisScheduler().Spawn(
      SendLater, Self(), std::vector<Value>{"a", "b", Value::Map({{"id", 1}}), "c", "d"});
  std::vector<Value> tested;
  // Named first: g++ 12 mishandles a capturing lambda inside a co_await
  // expression (docs/pitfalls.md).
  auto record = [&tested](const Value& v) {
    tested.push_back(v);
    return v.is_map();
  };
  absl::StatusOr<Value> m = co_await ReceiveMatching(record);
  CO_ASSERT_OK(m);
  EXPECT_EQ(*m, Value::Map({{"id", 1}}));
  EXPECT_THAT(tested, ElementsAre(Value("queued before"), Value("a"), Value("b"),
                                  Value::Map({{"id", 1}})));
  CO_ASSERT_OK(co_await sender.Join());
  EXPECT_THAT(co_await Drain(),
              ElementsAre(Value("queued before"), Value("a"), Value("b"), Value("c"), Value("d")));
}

PICOS_CORO_TEST(ReceiveMatching, TimesOutAndTakesNothing) {
  for (int i = 1; i <= 3; i += 2) CO_ASSERT_OK(Self().Send(i));
  absl::Time start = absl::Now();
  EXPECT_THAT(co_await ReceiveMatching(IsEven, absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(19));
  EXPECT_THAT(co_await ReceiveMatching(IsEven, absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(co_await Drain(), ElementsAre(Value(1), Value(3)));
}

Task<> Chatter(TaskRef to, int count) {
  for (int i = 0; i < count; ++i) {
    absl::Status slept = co_await Sleep(absl::Milliseconds(1));
    if (!slept.ok()) co_return;
    if (!to.Send(1).ok()) co_return;
  }
}

PICOS_CORO_TEST(ReceiveMatching, MessagesThatDoNotMatchDoNotPostponeTheTimeout) {
  // A message every millisecond, none matching: the 20 ms timeout still
  // comes. (Were the timeout restarted at each arrival, it never would.)
  TaskRef chatter = ThisScheduler().Spawn(Chatter, Self(), 100'000);
  EXPECT_THAT(co_await ReceiveMatching(IsEven, absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  CO_ASSERT_OK(chatter.Terminate());
  (void)co_await chatter.Join();
  std::vector<Value> left = co_await Drain();
  EXPECT_FALSE(left.empty());
}

Task<absl::StatusOr<Value>> WaitForEven() { co_return co_await ReceiveMatching(IsEven); }

PICOS_CORO_TEST(ReceiveMatching, TerminateAndThrowEndTheWait) {
  TaskRef waiter = ThisScheduler().Spawn(WaitForEven);
  CO_ASSERT_OK(waiter.Send(1));
  (void)co_await Yield();
  EXPECT_EQ(waiter.state(), TaskState::kReceiving);
  CO_ASSERT_OK(waiter.Terminate());
  EXPECT_THAT(co_await waiter.Join(), StatusIs(absl::StatusCode::kCancelled));

  TaskRef other = ThisScheduler().Spawn(WaitForEven);
  (void)co_await Yield();
  CO_ASSERT_OK(other.Throw(absl::AbortedError("enough")));
  EXPECT_THAT(co_await other.Join(), StatusIs(absl::StatusCode::kAborted, "enough"));
}

PICOS_CORO_TEST(ReceiveMatching, APredicateThatSendsToItsOwnTaskLosesNothing) {
  TaskRef self = Self();
  CO_ASSERT_OK(self.Send(0));
  // Matches the only message, and sends one more while being asked.
  auto match_and_send = [self](const Value& v) {
    (void)self.Send(Value("sent while matching"));
    return v == Value(0);
  };
  absl::StatusOr<Value> m = co_await ReceiveMatching(match_and_send);
  CO_ASSERT_OK(m);
  EXPECT_THAT(co_await Drain(), ElementsAre(Value("sent while matching")));
  // The same at the tail of a longer mailbox.
  CO_ASSERT_OK(self.Send(1));
  CO_ASSERT_OK(self.Send(2));
  bool sent = false;
  auto send_once = [self, &sent](const Value& v) {
    if (!sent) (void)self.Send(3);
    sent = true;
    return v == Value(2);
  };
  m = co_await ReceiveMatching(send_once);
  CO_ASSERT_OK(m);
  EXPECT_THAT(co_await Drain(), ElementsAre(Value(1), Value(3)));
}

TEST(ReceiveMatching, AMessageFromAnotherThreadEndsTheWait) {
  Scheduler s;
  ASSERT_OK(s.StartThread());
  TaskRef waiter = s.Spawn([]() -> Task<absl::StatusOr<Value>> {
    co_return co_await ReceiveMatching(FieldEquals("kind", "reply"), absl::Seconds(60));
  });
  ASSERT_OK(waiter.Send("noise"));
  ASSERT_OK(waiter.Send(Value::Map({{"kind", "reply"}, {"n", 5}})));
  absl::StatusOr<Value> r = s.WaitFor(waiter, absl::Seconds(60));
  ASSERT_OK(r);
  EXPECT_EQ((*r)["n"], Value(5));
  s.Stop();
}

}  // namespace
}  // namespace picos
