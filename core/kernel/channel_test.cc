#include "core/kernel/channel.h"

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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

// Receives until the channel-closed message (or an error), collecting ints.
Task<> Collect(std::vector<int64_t>* out) {
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok() || IsChannelClosedMessage(*m)) co_return;
    out->push_back(m->is_int() ? m->as_int() : -1);
  }
}

PICOS_CORO_TEST(Channel, BroadcastsInOrderToEverySubscriber) {
  Channel ch = Channel::Create("nums");
  EXPECT_EQ(ch.name(), "nums");
  std::vector<int64_t> a, b;
  TaskRef ta = ThisScheduler().Spawn(Collect, &a);
  TaskRef tb = ThisScheduler().Spawn(Collect, &b);
  CO_ASSERT_OK(ch.Subscribe(ta));
  CO_ASSERT_OK(ch.Subscribe(tb));
  EXPECT_EQ(ch.subscriber_count(), 2u);
  for (int i = 1; i <= 5; ++i) CO_ASSERT_OK(ch.Send(i));
  CO_ASSERT_OK(ch.Unsubscribe(tb));
  CO_ASSERT_OK(ch.Send(6));
  CO_ASSERT_OK(tb.Send(Value(ChannelClosedMessage(ch.ref()))));  // ends tb
  CO_ASSERT_OK(ch.Close());
  (void)co_await ta.Join();
  (void)co_await tb.Join();
  EXPECT_THAT(a, ElementsAre(1, 2, 3, 4, 5, 6));
  EXPECT_THAT(b, ElementsAre(1, 2, 3, 4, 5));
}

PICOS_CORO_TEST(Channel, SubscribeErrors) {
  Channel ch = Channel::Create("e");
  std::vector<int64_t> got;
  TaskRef t = ThisScheduler().Spawn(Collect, &got);
  CO_ASSERT_OK(ch.Subscribe(t));
  EXPECT_THAT(ch.Subscribe(t), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(ch.Subscribe(TaskRef()), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ch.Unsubscribe(Self()), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ch.Subscribe(ch), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cycle")));
  EXPECT_THAT(Channel(ChannelRef()).Send(1), StatusIs(absl::StatusCode::kInvalidArgument));
  CO_ASSERT_OK(ch.Close());
  (void)co_await t.Join();
}

PICOS_CORO_TEST(Channel, TransformAndFilterPerSubscriber) {
  Channel ch = Channel::Create("tf");
  std::vector<int64_t> all, doubled_evens;
  TaskRef t1 = ThisScheduler().Spawn(Collect, &all);
  TaskRef t2 = ThisScheduler().Spawn(Collect, &doubled_evens);
  CO_ASSERT_OK(ch.Subscribe(t1));
  CO_ASSERT_OK(ch.Subscribe(t2, [](const Value& m) -> std::optional<Value> {
    if (m.as_int() % 2 != 0) return std::nullopt;
    return Value(m.as_int() * 2);
  }));
  for (int i = 1; i <= 4; ++i) CO_ASSERT_OK(ch.Send(i));
  CO_ASSERT_OK(ch.Close());  // the closed message skips the transform
  (void)co_await t1.Join();
  (void)co_await t2.Join();
  EXPECT_THAT(all, ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(doubled_evens, ElementsAre(4, 8));
}

PICOS_CORO_TEST(Channel, ChannelsSubscribeToChannels) {
  Channel top = Channel::Create("top");
  Channel mid = Channel::Create("mid");
  Channel leaf = Channel::Create("leaf");
  std::vector<int64_t> a, b;
  TaskRef ta = ThisScheduler().Spawn(Collect, &a);
  TaskRef tb = ThisScheduler().Spawn(Collect, &b);
  CO_ASSERT_OK(top.Subscribe(mid, [](const Value& m) -> std::optional<Value> {
    return Value(m.as_int() + 100);
  }));
  CO_ASSERT_OK(mid.Subscribe(leaf));
  CO_ASSERT_OK(mid.Subscribe(ta));
  CO_ASSERT_OK(leaf.Subscribe(tb));
  // leaf -> top would close the loop top -> mid -> leaf -> top.
  EXPECT_THAT(leaf.Subscribe(top), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cycle")));
  EXPECT_THAT(top.Subscribe(mid), StatusIs(absl::StatusCode::kAlreadyExists));
  absl::StatusOr<size_t> n = co_await top.Deliver(1);
  CO_ASSERT_OK(n);
  EXPECT_EQ(*n, 2u);  // end points: ta through mid, tb through mid and leaf
  CO_ASSERT_OK(mid.Send(2));
  CO_ASSERT_OK(leaf.Close());
  CO_ASSERT_OK(top.Send(3));  // leaf is closed: dropped from mid on the way
  EXPECT_EQ(mid.subscriber_count(), 1u);
  CO_ASSERT_OK(mid.Close());
  CO_ASSERT_OK(top.Close());
  (void)co_await ta.Join();
  (void)co_await tb.Join();
  EXPECT_THAT(a, ElementsAre(101, 2, 103));
  EXPECT_THAT(b, ElementsAre(101, 2));
}

Task<> EndAtOnce() { co_return; }

PICOS_CORO_TEST(Channel, EndedTasksAreDropped) {
  Channel ch = Channel::Create("drop");
  TaskRef t = ThisScheduler().Spawn(EndAtOnce);
  CO_ASSERT_OK(ch.Subscribe(t));
  (void)co_await t.Join();
  EXPECT_THAT(ch.Subscribe(t), StatusIs(absl::StatusCode::kFailedPrecondition));
  absl::StatusOr<size_t> n = co_await ch.Deliver(Value("x"));
  CO_ASSERT_OK(n);
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(ch.subscriber_count(), 0u);
  CO_ASSERT_OK(ch.Close());
}

Task<> SubscribeLater(Channel ch, TaskRef who, absl::Duration after) {
  (void)co_await Sleep(after);
  (void)ch.Subscribe(who);
}

PICOS_CORO_TEST(Channel, DeliverWaitsForSubscribers) {
  Channel ch = Channel::Create("d");
  std::vector<int64_t> a, b;
  TaskRef ta = ThisScheduler().Spawn(Collect, &a);
  TaskRef tb = ThisScheduler().Spawn(Collect, &b);
  CO_ASSERT_OK(ch.Subscribe(ta));
  // Only one subscriber, and no other on the way: times out, sends nothing.
  absl::StatusOr<size_t> r = co_await ch.Deliver(7, 2, absl::Milliseconds(20));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kDeadlineExceeded));
  // The second subscribes in 10 ms: delivered to both.
  TaskRef later = ThisScheduler().Spawn(SubscribeLater, ch, tb, absl::Milliseconds(10));
  r = co_await ch.Deliver(8, 2, absl::Seconds(10));
  CO_ASSERT_OK(r);
  EXPECT_EQ(*r, 2u);
  (void)co_await later.Join();
  CO_ASSERT_OK(ch.Close());
  (void)co_await ta.Join();
  (void)co_await tb.Join();
  EXPECT_THAT(a, ElementsAre(8));
  EXPECT_THAT(b, ElementsAre(8));
}

Task<absl::Status> DeliverForever(Channel ch) {
  absl::StatusOr<size_t> r = co_await ch.Deliver(1, 5);
  co_return r.status();
}

PICOS_CORO_TEST(Channel, DeliverEndsOnTerminateAndOnClose) {
  Channel ch = Channel::Create("dt");
  TaskRef t1 = ThisScheduler().Spawn(DeliverForever, ch);
  TaskRef t2 = ThisScheduler().Spawn(DeliverForever, ch);
  co_await Yield();
  EXPECT_EQ(t1.state(), TaskState::kWaiting);
  CO_ASSERT_OK(t1.Terminate());
  absl::StatusOr<Value> r1 = co_await t1.Join();
  EXPECT_THAT(r1, StatusIs(absl::StatusCode::kCancelled));
  CO_ASSERT_OK(ch.Close());
  absl::StatusOr<Value> r2 = co_await t2.Join();
  EXPECT_THAT(r2, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("closed")));
  EXPECT_THAT(ch.Send(1), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(ch.Subscribe(Self()), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(ch.closed());
}

PICOS_CORO_TEST(Channel, SinksReceiveAndLeaveOnError) {
  Channel ch = Channel::Create("sink");
  std::vector<std::string> seen;
  int calls = 0;
  absl::StatusOr<SinkId> ok = ch.SubscribeSink([&](const Value& m) {
    seen.push_back(IsChannelClosedMessage(m) ? "closed" : m.as_string());
    return absl::OkStatus();
  });
  CO_ASSERT_OK(ok);
  CO_ASSERT_OK(ch.SubscribeSink([&](const Value&) {
    ++calls;
    return absl::UnavailableError("peer gone");
  }));
  CO_ASSERT_OK(ch.Send("a"));
  CO_ASSERT_OK(ch.Send("b"));
  EXPECT_EQ(calls, 1);  // unsubscribed by its first error
  EXPECT_EQ(ch.subscriber_count(), 1u);
  CO_ASSERT_OK(ch.Unsubscribe(*ok));
  EXPECT_THAT(ch.Unsubscribe(*ok), StatusIs(absl::StatusCode::kNotFound));
  CO_ASSERT_OK(ch.Send("c"));
  EXPECT_THAT(seen, ElementsAre("a", "b"));
  CO_ASSERT_OK(ch.Close());
}

// A sink that is full for now (kResourceExhausted: a remote peer's queue)
// misses that message, uncounted, and stays subscribed.
PICOS_CORO_TEST(Channel, AFullSinkMissesAMessageAndStays) {
  Channel ch = Channel::Create("full_sink");
  bool full = true;
  std::vector<std::string> seen;
  absl::StatusOr<SinkId> id = ch.SubscribeSink([&](const Value& m) -> absl::Status {
    if (full) return absl::ResourceExhaustedError("the peer's queue is full");
    seen.push_back(m.as_string());
    return absl::OkStatus();
  });
  CO_ASSERT_OK(id);
  absl::StatusOr<size_t> reached = co_await ch.Deliver("missed", 1, absl::Seconds(60));
  CO_ASSERT_OK(reached);
  EXPECT_EQ(*reached, 0u);
  EXPECT_EQ(ch.subscriber_count(), 1u);
  full = false;
  reached = co_await ch.Deliver("taken", 1, absl::Seconds(60));
  CO_ASSERT_OK(reached);
  EXPECT_EQ(*reached, 1u);
  EXPECT_THAT(seen, ElementsAre("taken"));
  CO_ASSERT_OK(ch.Unsubscribe(*id));
  CO_ASSERT_OK(ch.Close());
}

PICOS_CORO_TEST(Channel, SendFromAnotherThreadIsPosted) {
  Channel ch = Channel::Create("x");
  std::vector<int64_t> got;
  TaskRef t = ThisScheduler().Spawn(Collect, &got);
  CO_ASSERT_OK(ch.Subscribe(t));
  std::thread other([ch] {
    for (int i = 0; i < 3; ++i) (void)ch.Send(i);
  });
  other.join();
  // The posts arrive when the loop turns; wait for them however busy the
  // machine is (a wide bound, not a timing assumption).
  for (int i = 0; i < 10000 && got.size() < 3; ++i) (void)co_await Sleep(absl::Milliseconds(1));
  EXPECT_THAT(got, ElementsAre(0, 1, 2));
  EXPECT_THAT(ch.Subscribe(t), StatusIs(absl::StatusCode::kAlreadyExists));
  CO_ASSERT_OK(ch.Close());
  (void)co_await t.Join();
}

// A transform that throws costs its own subscriber that message, nothing
// more: the sender goes on, other and later subscribers get everything.
std::optional<Value> ThrowOnThree(const Value& m) {
  if (m.is_int() && m.as_int() == 3) throw std::runtime_error("three is unlucky");
  return m;
}

PICOS_CORO_TEST(Channel, ThrowingTransformAffectsOnlyItsSubscription) {
  Channel ch = Channel::Create("throws");
  std::vector<int64_t> picky, plain, late;
  TaskRef t1 = ThisScheduler().Spawn(Collect, &picky);
  TaskRef t2 = ThisScheduler().Spawn(Collect, &plain);
  TaskRef t3 = ThisScheduler().Spawn(Collect, &late);
  CO_ASSERT_OK(ch.Subscribe(t1, ThrowOnThree));
  CO_ASSERT_OK(ch.Subscribe(t2));
  for (int i = 1; i <= 4; ++i) CO_ASSERT_OK(ch.Send(i));  // the sender is not hurt
  CO_ASSERT_OK(ch.Subscribe(t3));
  CO_ASSERT_OK(ch.Send(3));
  CO_ASSERT_OK(ch.Send(5));
  CO_ASSERT_OK(ch.Close());
  (void)co_await t1.Join();
  (void)co_await t2.Join();
  (void)co_await t3.Join();
  EXPECT_THAT(picky, ElementsAre(1, 2, 4, 5));
  EXPECT_THAT(plain, ElementsAre(1, 2, 3, 4, 3, 5));
  EXPECT_THAT(late, ElementsAre(3, 5));
}

PICOS_CORO_TEST(Channel, ThrowingTransformFromAnotherThreadDoesNotEndTheProcess) {
  Channel ch = Channel::Create("throws-x");
  std::vector<int64_t> picky, plain;
  TaskRef t1 = ThisScheduler().Spawn(Collect, &picky);
  TaskRef t2 = ThisScheduler().Spawn(Collect, &plain);
  CO_ASSERT_OK(ch.Subscribe(t1, ThrowOnThree));
  CO_ASSERT_OK(ch.Subscribe(t2));
  std::thread other([ch] {
    for (int i = 1; i <= 4; ++i) (void)ch.Send(i);
  });
  other.join();
  for (int i = 0; i < 10000 && plain.size() < 4; ++i) (void)co_await Sleep(absl::Milliseconds(1));
  CO_ASSERT_OK(ch.Close());
  (void)co_await t1.Join();
  (void)co_await t2.Join();
  EXPECT_THAT(picky, ElementsAre(1, 2, 4));
  EXPECT_THAT(plain, ElementsAre(1, 2, 3, 4));
}

PICOS_CORO_TEST(Channel, ThrowingSinkIsUnsubscribed) {
  Channel ch = Channel::Create("sink-throws");
  int calls = 0;
  absl::StatusOr<SinkId> id = ch.SubscribeSink([&calls](const Value&) -> absl::Status {
    ++calls;
    throw std::runtime_error("sink broke");
  });
  CO_ASSERT_OK(id);
  CO_ASSERT_OK(ch.Send(1));
  CO_ASSERT_OK(ch.Send(2));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ch.subscriber_count(), 0u);
  CO_ASSERT_OK(ch.Close());
}

// A sink that stands for several end points (a peer's subscribers behind
// one connection) counts as that many for Deliver.
PICOS_CORO_TEST(Channel, SinkWeightIsWhatDeliverCounts) {
  Channel ch = Channel::Create("weighted");
  int calls = 0;
  absl::StatusOr<SinkId> id = ch.SubscribeSink([&calls](const Value&) -> absl::Status {
    ++calls;
    return absl::OkStatus();
  });
  CO_ASSERT_OK(id);
  absl::StatusOr<size_t> one = co_await ch.Deliver(Value(1), 1, absl::ZeroDuration());
  CO_ASSERT_OK(one);
  EXPECT_EQ(*one, 1u);
  CO_ASSERT_OK(ch.SetSinkWeight(*id, 3));
  EXPECT_EQ(ch.subscriber_count(), 3u);
  absl::StatusOr<size_t> three = co_await ch.Deliver(Value(2), 3, absl::ZeroDuration());
  CO_ASSERT_OK(three);
  EXPECT_EQ(*three, 3u);
  absl::StatusOr<size_t> four = co_await ch.Deliver(Value(3), 4, absl::ZeroDuration());
  EXPECT_THAT(four.status(), StatusIs(absl::StatusCode::kDeadlineExceeded)) << "three end points, not four";
  CO_ASSERT_OK(ch.SetSinkWeight(*id, 0));
  EXPECT_EQ(ch.subscriber_count(), 0u);
  EXPECT_EQ(calls, 2) << "one call per message, whatever the weight";
  EXPECT_THAT(ch.SetSinkWeight(SinkId{id->id + 1}, 1),
              StatusIs(absl::StatusCode::kNotFound));
  CO_ASSERT_OK(ch.Close());
}

PICOS_CORO_TEST(Channel, HandleTravelsInMessages) {
  Channel ch = Channel::Create("travel");
  Value v = ch.ref();
  Channel again(v.as_channel());
  EXPECT_EQ(again.name(), "travel");
  std::vector<int64_t> got;
  TaskRef t = ThisScheduler().Spawn(Collect, &got);
  CO_ASSERT_OK(again.Subscribe(t));
  CO_ASSERT_OK(ch.Send(9));
  CO_ASSERT_OK(ch.Close());
  (void)co_await t.Join();
  EXPECT_THAT(got, ElementsAre(9));
  // A bare handle (what a decoder makes for a remote channel) is refused.
  Channel bare(ChannelRef::Adopt(new internal::ChannelCore("remote")));
  EXPECT_THAT(bare.Send(1), StatusIs(absl::StatusCode::kUnimplemented));
}

}  // namespace
}  // namespace picos
