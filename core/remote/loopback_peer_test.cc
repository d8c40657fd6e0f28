// The remote seam, proved with the loopback double: a proxy handle is used
// exactly as a local one, and every call on it crosses the Value codec.
#include "core/remote/loopback_peer.h"

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "core/kernel/channel.h"
#include "core/kernel/channel_proxy.h"
#include "core/kernel/monitor.h"
#include "core/kernel/naming.h"
#include "core/kernel/proxy.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::remote {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

// Sums the ints it receives until a null, checking that they come in order.
Task<absl::StatusOr<int64_t>> OrderedSum() {
  int64_t sum = 0, last = 0;
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return m.status();
    if (m->is_null()) co_return sum;
    if (m->as_int() != last + 1) co_return absl::DataLossError("out of order");
    last = m->as_int();
    sum += last;
  }
}

// Ends with what ended its wait.
Task<absl::Status> WaitForever() {
  absl::StatusOr<Value> r = co_await Suspend();
  co_return r.status();
}

Task<absl::StatusOr<Value>> ReceiveOne() { co_return co_await Receive(); }

PICOS_CORO_TEST(LoopbackPeer, SendKeepsOrderAndJoinGivesTheValue) {
  LoopbackPeer peer(ThisScheduler());
  TaskRef local = ThisScheduler().SpawnNamed("summer", OrderedSum);
  absl::StatusOr<TaskRef> far = peer.Remote(local);
  CO_ASSERT_OK(far);
  EXPECT_NE(GetTaskProxy(*far), nullptr);
  EXPECT_EQ(GetTaskProxy(local), nullptr);
  EXPECT_NE(*far, local);
  absl::StatusOr<TaskRef> again = peer.Remote(local);
  EXPECT_EQ(*again, *far);  // one proxy per task: handles compare equal
  EXPECT_EQ(far->id(), local.id());
  EXPECT_EQ(far->name(), "summer");
  EXPECT_THAT(far->DebugString(), HasSubstr("loopback://peer"));
  const uint64_t before = peer.frames();
  for (int i = 1; i <= 1000; ++i) CO_ASSERT_OK(far->Send(i));
  CO_ASSERT_OK(far->Send(Value()));
  EXPECT_GE(peer.frames(), before + 1001);  // each one crossed the codec
  absl::StatusOr<Value> r = co_await far->Join(absl::Seconds(30));
  CO_ASSERT_OK(r);
  EXPECT_EQ(*r, Value(int64_t{500500}));
  EXPECT_EQ(far->state(), TaskState::kDone);
  // Calls on a task that has ended give what they give locally.
  EXPECT_THAT(far->Send(1), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(far->Terminate(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

PICOS_CORO_TEST(LoopbackPeer, JoinGivesTheErrorAndTimesOut) {
  LoopbackPeer peer(ThisScheduler());
  TaskRef local = ThisScheduler().Spawn(WaitForever);
  absl::StatusOr<TaskRef> far = peer.Remote(local);
  CO_ASSERT_OK(far);
  EXPECT_THAT(co_await far->Join(absl::Milliseconds(5)), StatusIs(absl::StatusCode::kDeadlineExceeded));
  CO_ASSERT_OK(far->Throw(absl::DataLossError("thrown across")));
  EXPECT_THAT(co_await far->Join(absl::Seconds(30)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("thrown across")));
}

PICOS_CORO_TEST(LoopbackPeer, TerminateAndResume) {
  LoopbackPeer peer(ThisScheduler());
  TaskRef sleeper = ThisScheduler().Spawn([]() -> Task<absl::StatusOr<Value>> {
    co_return co_await Suspend();
  });
  TaskRef waiter = ThisScheduler().Spawn(WaitForever);
  absl::StatusOr<TaskRef> far_sleeper = peer.Remote(sleeper);
  absl::StatusOr<TaskRef> far_waiter = peer.Remote(waiter);
  CO_ASSERT_OK(far_sleeper);
  CO_ASSERT_OK(far_waiter);
  (void)co_await Yield();  // both are suspended now
  EXPECT_EQ(far_sleeper->state(), TaskState::kSuspended);
  CO_ASSERT_OK(far_sleeper->Resume(Value("woken")));
  absl::StatusOr<Value> r = co_await far_sleeper->Join(absl::Seconds(30));
  CO_ASSERT_OK(r);
  EXPECT_EQ(*r, Value("woken"));
  CO_ASSERT_OK(far_waiter->Terminate());
  EXPECT_THAT(co_await far_waiter->Join(absl::Seconds(30)), StatusIs(absl::StatusCode::kCancelled));
}

PICOS_CORO_TEST(LoopbackPeer, MonitorReportsTheEnd) {
  LoopbackPeer peer(ThisScheduler());
  TaskRef value = ThisScheduler().SpawnNamed("seven", []() -> Task<int> { co_return 7; });
  TaskRef failing = ThisScheduler().Spawn([]() -> Task<absl::Status> {
    co_return absl::InternalError("boom");
  });
  absl::StatusOr<TaskRef> far_value = peer.Remote(value);
  absl::StatusOr<TaskRef> far_failing = peer.Remote(failing);
  CO_ASSERT_OK(far_value);
  CO_ASSERT_OK(far_failing);
  CO_ASSERT_OK(Monitor(Self(), *far_value));
  absl::StatusOr<Value> m1 = co_await Receive(absl::Seconds(30));
  CO_ASSERT_OK(m1);
  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m1);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->outcome, MonitorOutcome::kValue);
  EXPECT_EQ(st->value, Value(7));
  EXPECT_EQ(st->name, "seven");
  EXPECT_EQ(st->task, *far_value);  // the task crossed back as the same proxy
  CO_ASSERT_OK(Monitor(Self(), *far_failing));
  absl::StatusOr<Value> m2 = co_await Receive(absl::Seconds(30));
  CO_ASSERT_OK(m2);
  st = MonitorStatus::FromValue(*m2);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->outcome, MonitorOutcome::kError);
  EXPECT_THAT(st->error, StatusIs(absl::StatusCode::kInternal, HasSubstr("boom")));
}

PICOS_CORO_TEST(LoopbackPeer, PeerLostReachesMonitorsAndPendingJoins) {
  auto peer = std::make_unique<LoopbackPeer>(ThisScheduler());
  TaskRef local = ThisScheduler().SpawnNamed("doomed", WaitForever);
  absl::StatusOr<TaskRef> far = peer->Remote(local);
  CO_ASSERT_OK(far);
  CO_ASSERT_OK(Monitor(Self(), *far));
  TaskRef far_copy = *far;
  TaskRef joiner = ThisScheduler().Spawn([far_copy]() -> Task<absl::StatusOr<Value>> {
    co_return co_await far_copy.Join();
  });
  (void)co_await Yield();
  EXPECT_EQ(joiner.state(), TaskState::kWaiting);
  peer->Vanish();
  EXPECT_TRUE(peer->vanished());
  absl::StatusOr<Value> m = co_await Receive(absl::Seconds(30));
  CO_ASSERT_OK(m);
  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->outcome, MonitorOutcome::kPeerLost);
  EXPECT_EQ(st->name, "doomed");
  EXPECT_EQ(st->id, local.id());
  EXPECT_EQ(st->task, *far);
  EXPECT_THAT(st->error, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(co_await joiner.Join(absl::Seconds(30)), StatusIs(absl::StatusCode::kUnavailable));
  // Every later call says the peer is lost; the handle itself stays safe,
  // also once the peer object is gone.
  EXPECT_THAT(far->Send(1), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(co_await far->Join(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(far->state(), TaskState::kDone);
  peer.reset();
  EXPECT_THAT(far->Terminate(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(co_await far->Join(), StatusIs(absl::StatusCode::kUnavailable));
  CO_ASSERT_OK(local.Terminate());
  (void)co_await local.Join();
}

// A server on "the other process" that answers {"reply_to", "handle"} with
// the handle it got and its own handle.
Task<> Reflector() {
  absl::StatusOr<Value> m = co_await Receive();
  if (!m.ok()) co_return;
  TaskRef reply_to = (*m)["reply_to"].as_task();
  (void)reply_to.Send(Value::Map({{"handle", (*m)["handle"]}, {"me", Value(Self())},
                                  {"proxy", Value(GetTaskProxy(reply_to) != nullptr)}}));
}

PICOS_CORO_TEST(LoopbackPeer, HandlesInsideMessagesRoundTrip) {
  LoopbackPeer peer(ThisScheduler());
  TaskRef server = ThisScheduler().Spawn(Reflector);
  TaskRef bystander = ThisScheduler().Spawn(ReceiveOne);
  absl::StatusOr<TaskRef> far = peer.Remote(server);
  CO_ASSERT_OK(far);
  CO_ASSERT_OK(far->Send(Value::Map({{"reply_to", Value(Self())}, {"handle", Value(bystander)}})));
  absl::StatusOr<Value> reply = co_await Receive(absl::Seconds(30));
  CO_ASSERT_OK(reply);
  // The server saw our handle as a proxy (we are the other process to it).
  EXPECT_EQ((*reply)["proxy"], Value(true));
  // A handle sent back to its own process is the original handle ...
  EXPECT_EQ((*reply)["handle"].as_task(), bystander);
  // ... and the server's own handle is the proxy we already hold, usable.
  TaskRef me = (*reply)["me"].as_task();
  EXPECT_EQ(me, *far);
  CO_ASSERT_OK(co_await far->Join(absl::Seconds(30)));
  CO_ASSERT_OK((*reply)["handle"].as_task().Send("for the bystander"));
  absl::StatusOr<Value> got = co_await bystander.Join(absl::Seconds(30));
  CO_ASSERT_OK(got);
  EXPECT_EQ(*got, Value("for the bystander"));
}

Task<> RegisterLater(std::string name) {
  (void)co_await Sleep(absl::Milliseconds(5));
  absl::Status s = RegisterTask(name, Self());
  if (!s.ok()) co_return;
  (void)co_await Receive();
}

PICOS_CORO_TEST(LoopbackPeer, LocateThroughThePeer) {
  LoopbackPeer peer(ThisScheduler());
  SetNameResolver(ThisScheduler(), peer.resolver());
  TaskRef server = ThisScheduler().Spawn(RegisterLater, std::string("svc"));
  // Waits for the name to appear at the peer, then gives a usable proxy.
  absl::StatusOr<TaskRef> found =
      co_await LocateTask("svc", Location::Peer(peer.uri()), absl::Seconds(30));
  CO_ASSERT_OK(found);
  EXPECT_NE(GetTaskProxy(*found), nullptr);
  absl::StatusOr<TaskRef> direct = peer.Remote(server);
  EXPECT_EQ(*found, *direct);
  absl::StatusOr<TaskRef> anywhere = co_await LocateTask("svc", Location::Anywhere());
  CO_ASSERT_OK(anywhere);
  EXPECT_EQ(*anywhere, *found);
  CO_ASSERT_OK(found->Send("bye"));
  CO_ASSERT_OK(co_await found->Join(absl::Seconds(30)));
  EXPECT_THAT(co_await LocateTask("nobody", Location::Peer(peer.uri()), absl::Milliseconds(5)),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(co_await LocateTask("svc", Location::Peer("tcp://192.0.2.1:1")),
              StatusIs(absl::StatusCode::kUnavailable));
  // Channels too.
  Channel news = Channel::Create("news");
  CO_ASSERT_OK(RegisterChannel(news));
  absl::StatusOr<ChannelRef> ch = co_await LocateChannel("news", Location::Peer(peer.uri()));
  CO_ASSERT_OK(ch);
  EXPECT_NE(GetChannelProxy(*ch), nullptr);
  EXPECT_EQ(ch->name(), "news");
  SetNameResolver(ThisScheduler(), nullptr);
  EXPECT_THAT(co_await LocateTask("svc", Location::Peer(peer.uri())),
              StatusIs(absl::StatusCode::kUnimplemented));
  CO_ASSERT_OK(news.Close());
}

PICOS_CORO_TEST(LoopbackPeer, ChannelsThroughThePeer) {
  LoopbackPeer peer(ThisScheduler());
  Channel news = Channel::Create("news");
  TaskRef local_reader = ThisScheduler().Spawn(ReceiveOne);
  CO_ASSERT_OK(news.Subscribe(local_reader));
  absl::StatusOr<ChannelRef> far_ref = peer.Remote(news.ref());
  CO_ASSERT_OK(far_ref);
  Channel far(*far_ref);
  EXPECT_NE(GetChannelProxy(*far_ref), nullptr);
  EXPECT_FALSE(far.closed());
  // Subscribe from "this process", with a transform that runs here.
  CO_ASSERT_OK(far.Subscribe(Self(), [](const Value& m) -> std::optional<Value> {
    if (!m.is_string()) return std::nullopt;
    return Value(m.as_string() + "!");
  }));
  EXPECT_THAT(far.Subscribe(Self()), StatusIs(absl::StatusCode::kAlreadyExists));
  // Sent on the remote handle: both subscribers get it.
  CO_ASSERT_OK(far.Send("hello"));
  absl::StatusOr<Value> got = co_await Receive(absl::Seconds(30));
  CO_ASSERT_OK(got);
  EXPECT_EQ(*got, Value("hello!"));
  absl::StatusOr<Value> local_got = co_await local_reader.Join(absl::Seconds(30));
  CO_ASSERT_OK(local_got);
  EXPECT_EQ(*local_got, Value("hello"));
  // Deliver counts the end points reached: our subscription is one.
  absl::StatusOr<size_t> n = co_await far.Deliver("counted", 1, absl::Seconds(30));
  CO_ASSERT_OK(n);
  EXPECT_EQ(*n, 1u);
  got = co_await Receive(absl::Seconds(30));
  CO_ASSERT_OK(got);
  EXPECT_EQ(*got, Value("counted!"));
  EXPECT_THAT(co_await far.Deliver("x", 5, absl::Milliseconds(5)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  // A local channel can subscribe to the remote one, and relays.
  Channel relay = Channel::Create("relay");
  TaskRef relay_reader = ThisScheduler().Spawn(ReceiveOne);
  CO_ASSERT_OK(relay.Subscribe(relay_reader));
  CO_ASSERT_OK(far.Subscribe(relay));
  CO_ASSERT_OK(far.Unsubscribe(Self()));
  EXPECT_THAT(far.Unsubscribe(Self()), StatusIs(absl::StatusCode::kNotFound));
  CO_ASSERT_OK(news.Send(7));
  absl::StatusOr<Value> relayed = co_await relay_reader.Join(absl::Seconds(30));
  CO_ASSERT_OK(relayed);
  EXPECT_EQ(*relayed, Value(7));
  // Closing through the proxy: subscribers hear it, naming the proxy.
  CO_ASSERT_OK(far.Subscribe(Self()));
  CO_ASSERT_OK(far.Close());
  EXPECT_TRUE(far.closed());
  absl::StatusOr<Value> closed = co_await Receive(absl::Seconds(30));
  CO_ASSERT_OK(closed);
  ChannelRef which;
  EXPECT_TRUE(IsChannelClosedMessage(*closed, &which));
  EXPECT_EQ(which, *far_ref);
  EXPECT_THAT(far.Send("late"), StatusIs(absl::StatusCode::kFailedPrecondition));
  CO_ASSERT_OK(relay.Close());
}

// From a thread that is not the link's, calls are posted and keep their order.
TEST(LoopbackPeer, CallsFromAnotherThreadKeepOrder) {
  Scheduler s(Scheduler::Options{.name = "link"});
  ASSERT_OK(s.StartThread());
  auto peer = std::make_unique<LoopbackPeer>(s);
  TaskRef local = s.Spawn(OrderedSum);
  absl::StatusOr<TaskRef> far;
  absl::Notification made;
  ASSERT_OK(s.Post([&] {
    far = peer->Remote(local);
    made.Notify();
  }));
  made.WaitForNotification();
  ASSERT_OK(far);
  std::thread sender([far = *far] {
    for (int i = 1; i <= 2000; ++i) ASSERT_OK(far.Send(i));
    ASSERT_OK(far.Send(Value()));
  });
  sender.join();
  absl::StatusOr<Value> r = s.WaitFor(*far, absl::Seconds(60));
  ASSERT_OK(r);
  EXPECT_EQ(*r, Value(int64_t{2001000}));
  absl::Notification gone;
  ASSERT_OK(s.Post([&] {
    peer.reset();
    gone.Notify();
  }));
  gone.WaitForNotification();
  EXPECT_THAT(far->Send(1), StatusIs(absl::StatusCode::kUnavailable));
  s.Stop();
}

}  // namespace
}  // namespace picos::remote
