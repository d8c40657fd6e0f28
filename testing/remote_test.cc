// The remote layer end to end (core/remote/node.h): two nodes in this
// process over a Unix socket, then a second process (remote_peer_server)
// over tcp:// on 127.0.0.1 and unix://, with the right and a wrong secret.
// Every wait has a deadline only a hang reaches; the second process is
// killed by its Process object (SIGKILL of its pid) if it has not ended.
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/io/process.h"
#include "core/kernel/channel.h"
#include "core/kernel/channel_proxy.h"
#include "core/kernel/monitor.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/system_message.h"
#include "core/kernel/task.h"
#include "core/remote/handshake.h"
#include "core/remote/node.h"
#include "core/wire/value_codec.h"
#include "testing/coro_test.h"
#include "testing/tls_certs.h"
#include "transports/default_transports.h"

namespace picos::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSecret[] = "two processes, one secret";
constexpr absl::Duration kLong = absl::Seconds(60);  // only a hang reaches it
constexpr int kMessages = 200;

Task<int64_t> Echo() {
  int64_t answered = 0;
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive(kLong);
    if (!msg.ok() || *msg == Value("quit")) co_return answered;
    TaskRef reply_to = (*msg)["reply_to"].as_task();
    (void)reply_to.Send(Value::Map({{"n", (*msg)["n"]}, {"you", reply_to}, {"me", Self()}}));
    ++answered;
  }
}

// Locates "echo" at `uri`, sends it kMessages messages carrying this task's
// handle, checks the replies (in order, with this task's own handle back),
// then "quit", and joins it.
Task<absl::Status> Converse(std::string uri) {
  absl::StatusOr<TaskRef> echo = co_await LocateTask("echo", Location::Peer(uri), kLong);
  if (!echo.ok()) co_return echo.status();
  EXPECT_NE(GetTaskProxy(*echo), nullptr) << "a remote task is a proxy";
  for (int i = 0; i < kMessages; ++i) {
    Value m = Value::Map({{"reply_to", Self()}, {"n", i}});
    PICOS_CO_RETURN_IF_ERROR(echo->Send(std::move(m)));
  }
  for (int i = 0; i < kMessages; ++i) {
    absl::StatusOr<Value> r = co_await Receive(kLong);
    if (!r.ok()) co_return r.status();
    EXPECT_EQ((*r)["n"], Value(i)) << "replies arrive in the order sent";
    EXPECT_TRUE((*r)["you"].is_task() && (*r)["you"].as_task() == Self())
        << "a handle sent back to its own process is the original";
    EXPECT_TRUE((*r)["me"].is_task() && (*r)["me"].as_task() == *echo)
        << "the same remote task is the same proxy";
  }
  PICOS_CO_RETURN_IF_ERROR(echo->Send(Value("quit")));
  absl::StatusOr<Value> joined = co_await echo->Join(kLong);
  if (!joined.ok()) co_return joined.status();
  EXPECT_EQ(*joined, Value(kMessages));
  co_return absl::OkStatus();
}

// `listen`: one URI, or empty for a client only. (No braced lists here: g++
// 12 and a braced list inside a co_await call, README.)
remote::NodeOptions Options(std::string secret, std::string listen, char pid_tweak) {
  remote::NodeOptions o;
  o.secret = std::move(secret);
  if (!listen.empty()) o.listen.push_back(std::move(listen));
  o.handshake_timeout = kLong;
  o.connect_timeout = kLong;
  if (pid_tweak != 0) {
    o.process_id = ProcessId();
    o.process_id[0] = static_cast<char>(o.process_id[0] ^ pid_tweak);
  }
  return o;
}

// The process id of a hand-made peer (a bare stream after Handshake):
// above every node's, so that the node is the pair's arbiter (node.h) and
// keeps the connection without waiting for this peer to choose.
std::string RawPeerId(char tweak) {
  std::string id(kProcessIdSize, '\xff');
  id.back() = tweak;
  return id;
}

std::string UnixName(const char* what) { return absl::StrCat("unix://@picos-remote-test-", getpid(), "-", what); }

PICOS_CORO_TEST(RemoteInProcess, LocateSendReplyJoin) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(kSecret, UnixName("a"), 1));
  CO_ASSERT_OK(a);
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  CO_ASSERT_OK(RegisterTask("echo", echo));
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options(kSecret, "", 2));
  CO_ASSERT_OK(b);
  absl::Status s = co_await Converse((*a)->uris()[0]);
  EXPECT_OK(s);
  EXPECT_EQ((*b)->peers().size(), 1u);
  b->reset();
  a->reset();
  (void)co_await echo.Join(kLong);
}

// Waits for a Resume, then receives `n` messages and gives their sum.
Task<int64_t> SumAfterResume(int n) {
  (void)co_await Suspend(kLong);
  int64_t sum = 0;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<Value> m = co_await Receive(kLong);
    if (!m.ok()) co_return -1;
    sum += m->as_int();
  }
  co_return sum;
}

Task<absl::Status> DeliverTo(TaskRef to, Value v) { co_return co_await to.Deliver(std::move(v), kLong); }

// Deliver on a remote task's handle returns once the remote mailbox took the
// message: a full bounded mailbox holds the sender back (and its timeout
// sends nothing), room made by the receiver lets it go on.
PICOS_CORO_TEST(RemoteInProcess, DeliverToARemoteTaskWaitsForItsMailbox) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(kSecret, UnixName("deliver"), 1));
  CO_ASSERT_OK(a);
  TaskRef slow = ThisScheduler().Spawn({.name = "slow", .mailbox_limit = 1}, SumAfterResume, 2);
  CO_ASSERT_OK(RegisterTask("slow", slow));
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options(kSecret, "", 2));
  CO_ASSERT_OK(b);
  absl::StatusOr<TaskRef> far = co_await LocateTask("slow", Location::Peer((*a)->uris()[0]), kLong);
  CO_ASSERT_OK(far);
  CO_ASSERT_TRUE(GetTaskProxy(*far) != nullptr);
  CO_ASSERT_OK(co_await far->Deliver(Value(1), kLong));  // room for one
  absl::Status full = co_await far->Deliver(Value(100), absl::Milliseconds(100));
  EXPECT_THAT(full, StatusIs(absl::StatusCode::kDeadlineExceeded)) << "the mailbox stays full";
  TaskRef deliverer = ThisScheduler().Spawn(DeliverTo, *far, Value(2));
  for (int i = 0; i < 20; ++i) co_await Yield();  // the request reaches a and waits there
  EXPECT_NE(deliverer.state(), TaskState::kDone) << "delivered into a full mailbox";
  CO_ASSERT_OK(slow.Resume());
  absl::StatusOr<Value> delivered = co_await deliverer.Join(kLong);
  CO_ASSERT_OK(delivered);
  absl::StatusOr<Value> sum = co_await slow.Join(kLong);
  CO_ASSERT_OK(sum);
  EXPECT_EQ(*sum, Value(3)) << "1 and 2 arrived, the timed-out 100 was never sent";
  absl::Status ended = co_await far->Deliver(Value(4), kLong);
  EXPECT_THAT(ended, StatusIs(absl::StatusCode::kFailedPrecondition)) << "the task has ended";
  b->reset();
  absl::Status lost = co_await far->Deliver(Value(5), kLong);
  EXPECT_THAT(lost, StatusIs(absl::StatusCode::kUnavailable));
  a->reset();
}

// A message longer than max_frame_size is refused to its sender at once,
// and the connection goes on.
PICOS_CORO_TEST(RemoteInProcess, AnOversizedMessageIsRefusedToItsSender) {
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeOptions oa = Options(kSecret, UnixName("big"), 1);
  oa.max_frame_size = 64 << 10;  // peers agree on it
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(t, std::move(oa));
  CO_ASSERT_OK(a);
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  CO_ASSERT_OK(RegisterTask("echo", echo));
  remote::NodeOptions ob = Options(kSecret, "", 2);
  ob.max_frame_size = 64 << 10;
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, std::move(ob));
  CO_ASSERT_OK(b);
  absl::StatusOr<TaskRef> far = co_await LocateTask("echo", Location::Peer((*a)->uris()[0]), kLong);
  CO_ASSERT_OK(far);
  const Value big(std::string(100 << 10, 'x'));
  EXPECT_THAT(far->Send(big), StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_frame_size")));
  Value nested = Value::Map({{"reply_to", Self()}, {"n", 1}, {"parts", Value::List({big})}});
  EXPECT_THAT(far->Send(nested), StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_frame_size")));
  absl::Status delivered = co_await far->Deliver(big, kLong);
  EXPECT_THAT(delivered, StatusIs(absl::StatusCode::kResourceExhausted));
  // The connection stays: the same peer answers as before.
  absl::Status s = co_await Converse((*a)->uris()[0]);
  EXPECT_OK(s);
  b->reset();
  a->reset();
  (void)co_await echo.Join(kLong);
}

PICOS_CORO_TEST(RemoteInProcess, OverTlsTheSameCallsWork) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  absl::StatusOr<TestPki> pki = MakeTestPki(tmp ? tmp : "/tmp");
  CO_ASSERT_OK(pki);
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(
      t, Options(kSecret, "tls://127.0.0.1:0?cert=" + pki->server_cert + "&key=" + pki->server_key, 1));
  CO_ASSERT_OK(a);
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  CO_ASSERT_OK(RegisterTask("echo", echo));
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options(kSecret, "", 2));
  CO_ASSERT_OK(b);
  const std::string uri = (*a)->uris()[0];
  EXPECT_TRUE(absl::StartsWith(uri, "tls://")) << uri;
  const std::string dial = uri + (absl::StrContains(uri, "?") ? "&ca=" : "?ca=") + pki->ca_cert;
  absl::Status s = co_await Converse(dial);
  EXPECT_OK(s);
  b->reset();
  a->reset();
  (void)co_await echo.Join(kLong);
}

Task<Value> ReceiveOne() {
  absl::StatusOr<Value> m = co_await Receive(kLong);
  co_return m.ok() ? *m : Value("nothing");
}

PICOS_CORO_TEST(RemoteInProcess, ChannelsAcrossPeers) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(kSecret, UnixName("ch"), 1));
  CO_ASSERT_OK(a);
  Channel news = Channel::Create("news");
  CO_ASSERT_OK(RegisterChannel(news));
  TaskRef local_reader = ThisScheduler().Spawn(ReceiveOne);
  CO_ASSERT_OK(news.Subscribe(local_reader));
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options(kSecret, "", 2));
  CO_ASSERT_OK(b);
  absl::StatusOr<ChannelRef> far_ref = co_await LocateChannel("news", Location::Peer((*a)->uris()[0]), kLong);
  CO_ASSERT_OK(far_ref);
  EXPECT_NE(GetChannelProxy(*far_ref), nullptr);
  EXPECT_EQ(far_ref->name(), "news");
  Channel far(*far_ref);
  // Subscribe across the link, with a transform that runs on this side.
  CO_ASSERT_OK(far.Subscribe(Self(), [](const Value& m) -> std::optional<Value> {
    if (!m.is_string()) return std::nullopt;
    return Value(m.as_string() + "!");
  }));
  EXPECT_THAT(far.Subscribe(Self()), StatusIs(absl::StatusCode::kAlreadyExists));
  // Deliver waits for the subscription to arrive there and counts it, with
  // the local subscriber: two end points.
  absl::StatusOr<size_t> n = co_await far.Deliver("hello", 2, kLong);
  CO_ASSERT_OK(n);
  EXPECT_EQ(*n, 2u);
  absl::StatusOr<Value> got = co_await Receive(kLong);
  CO_ASSERT_OK(got);
  EXPECT_EQ(*got, Value("hello!"));
  absl::StatusOr<Value> local_got = co_await local_reader.Join(kLong);
  CO_ASSERT_OK(local_got);
  EXPECT_EQ(*local_got, Value("hello"));
  // A channel of this side relays the remote one.
  Channel relay = Channel::Create("relay");
  TaskRef relay_reader = ThisScheduler().Spawn(ReceiveOne);
  CO_ASSERT_OK(relay.Subscribe(relay_reader));
  CO_ASSERT_OK(far.Subscribe(relay));
  CO_ASSERT_OK(far.Unsubscribe(Self()));
  EXPECT_THAT(far.Unsubscribe(Self()), StatusIs(absl::StatusCode::kNotFound));
  absl::StatusOr<size_t> relayed_n = co_await far.Deliver(7, 1, kLong);  // the relay only
  CO_ASSERT_OK(relayed_n);
  absl::StatusOr<Value> relayed = co_await relay_reader.Join(kLong);
  CO_ASSERT_OK(relayed);
  EXPECT_EQ(*relayed, Value(7));
  // Closing through the proxy: its subscribers hear it, naming the proxy.
  CO_ASSERT_OK(far.Subscribe(Self()));
  absl::StatusOr<size_t> ready = co_await far.Deliver("ready", 2, kLong);  // relay + us
  CO_ASSERT_OK(ready);
  absl::StatusOr<Value> r = co_await Receive(kLong);
  CO_ASSERT_OK(r);
  EXPECT_EQ(*r, Value("ready"));
  CO_ASSERT_OK(far.Close());
  absl::StatusOr<Value> closed = co_await Receive(kLong);
  CO_ASSERT_OK(closed);
  ChannelRef which;
  EXPECT_TRUE(IsChannelClosedMessage(*closed, &which));
  EXPECT_EQ(which, *far_ref);
  CO_ASSERT_OK(relay.Close());
  b->reset();
  a->reset();
}

// Waits for {"echo": handle}, asks that echo task (on another peer) for
// one reply through its own handle, and returns the reply's n.
Task<int64_t> Keeper() {
  absl::StatusOr<Value> m = co_await Receive(kLong);
  if (!m.ok() || !(*m)["echo"].is_task()) co_return -1;
  TaskRef echo = (*m)["echo"].as_task();
  Value ask = Value::Map({{"reply_to", Self()}, {"n", 41}});
  if (!echo.Send(std::move(ask)).ok()) co_return -2;
  absl::StatusOr<Value> r = co_await Receive(kLong);
  if (!r.ok() || !(*r)["you"].is_task() || (*r)["you"].as_task() != Self()) co_return -3;
  co_return (*r)["n"].as_int() + 1;
}

// Three peers: B holds a handle of A's task and gives it to a task on C,
// which uses it directly over C's own connection to A. With
// `c_dials_a_first` false, C is not connected to A: C asks B where A
// listens (a "where" frame), connects, and the keeper's calls made
// meanwhile wait. `tag` keeps the two runs' socket names apart.
Task<> ThirdPeerUsesAHandle(std::string tag, bool c_dials_a_first) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(kSecret, UnixName(("3a" + tag).c_str()), 1));
  CO_ASSERT_OK(a);
  absl::StatusOr<std::unique_ptr<remote::Node>> c =
      co_await remote::Node::Start(t, Options(kSecret, UnixName(("3c" + tag).c_str()), 3));
  CO_ASSERT_OK(c);
  if (c_dials_a_first) CO_ASSERT_OK(co_await (*c)->Connect((*a)->uris()[0]));
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  CO_ASSERT_OK(RegisterTask("echo", echo));
  TaskRef keeper = ThisScheduler().SpawnNamed("keeper", Keeper);
  CO_ASSERT_OK(RegisterTask("keeper", keeper));
  // B last: its resolver serves this scheduler's Locate calls.
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options(kSecret, "", 2));
  CO_ASSERT_OK(b);
  absl::StatusOr<TaskRef> far_echo = co_await LocateTask("echo", Location::Peer((*a)->uris()[0]), kLong);
  CO_ASSERT_OK(far_echo);
  absl::StatusOr<TaskRef> far_keeper = co_await LocateTask("keeper", Location::Peer((*c)->uris()[0]), kLong);
  CO_ASSERT_OK(far_keeper);
  EXPECT_NE(GetTaskProxy(*far_keeper), nullptr);
  CO_ASSERT_OK(far_keeper->Send(Value::Map({{"echo", *far_echo}})));
  absl::StatusOr<Value> kept = co_await far_keeper->Join(kLong);
  CO_ASSERT_OK(kept);
  EXPECT_EQ(*kept, Value(42));
  EXPECT_EQ((*c)->peers().size(), 2u) << "C connected to A (first, or on demand), and B to C";
  CO_ASSERT_OK(far_echo->Send(Value("quit")));
  (void)co_await echo.Join(kLong);
  b->reset();
  c->reset();
  a->reset();
}

PICOS_CORO_TEST(RemoteInProcess, AThirdPeerUsesAHandleItGotThroughASecond) {
  co_await ThirdPeerUsesAHandle("", true);
}

PICOS_CORO_TEST(RemoteInProcess, AThirdPeerConnectsOnDemandToTheProcessOfAHandle) {
  co_await ThirdPeerUsesAHandle("-demand", false);
}

// On C: given a handle of a channel of A (through B), subscribes to it,
// sends "subscribed" to `reply_to`, gets one broadcast, answers it on the
// channel with "back", and returns what it got.
Task<Value> ChannelKeeper() {
  absl::StatusOr<Value> m = co_await Receive(kLong);
  if (!m.ok() || !(*m)["channel"].is_channel() || !(*m)["reply_to"].is_task()) co_return Value("malformed");
  Channel ch((*m)["channel"].as_channel());
  if (!ch.Subscribe(Self()).ok()) co_return Value("subscribe failed");
  if (!(*m)["reply_to"].as_task().Send(Value("subscribed")).ok()) co_return Value("reply failed");
  absl::StatusOr<Value> got = co_await Receive(kLong);
  if (!got.ok()) co_return Value(got.status().ToString());
  if (!ch.Send(Value("back")).ok()) co_return Value("send failed");
  co_return *got;
}

// The same for a channel: B gives C a handle of A's channel; C subscribes
// to it and sends on it over its own connection to A (made on demand when
// `c_dials_a_first` is false).
Task<> ThirdPeerUsesAChannelHandle(std::string tag, bool c_dials_a_first) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(kSecret, UnixName(("3ca" + tag).c_str()), 1));
  CO_ASSERT_OK(a);
  absl::StatusOr<std::unique_ptr<remote::Node>> c =
      co_await remote::Node::Start(t, Options(kSecret, UnixName(("3cc" + tag).c_str()), 3));
  CO_ASSERT_OK(c);
  if (c_dials_a_first) CO_ASSERT_OK(co_await (*c)->Connect((*a)->uris()[0]));
  Channel news = Channel::Create("third_news" + tag);
  CO_ASSERT_OK(RegisterChannel(news));
  TaskRef keeper = ThisScheduler().SpawnNamed("ckeeper", ChannelKeeper);
  CO_ASSERT_OK(RegisterTask("ckeeper" + tag, keeper));
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options(kSecret, "", 2));
  CO_ASSERT_OK(b);
  absl::StatusOr<ChannelRef> far_news =
      co_await LocateChannel("third_news" + tag, Location::Peer((*a)->uris()[0]), kLong);
  CO_ASSERT_OK(far_news);
  absl::StatusOr<TaskRef> far_keeper = co_await LocateTask("ckeeper" + tag, Location::Peer((*c)->uris()[0]), kLong);
  CO_ASSERT_OK(far_keeper);
  CO_ASSERT_OK(far_keeper->Send(Value::Map({{"channel", *far_news}, {"reply_to", Self()}})));
  absl::StatusOr<Value> subscribed = co_await Receive(kLong);
  CO_ASSERT_OK(subscribed);
  EXPECT_EQ(*subscribed, Value("subscribed"));
  CO_ASSERT_OK(news.Subscribe(Self()));
  // Waits until C's subscription has reached A (2: C's and this task).
  absl::StatusOr<size_t> reached = co_await news.Deliver(Value("hello"), 2, kLong);
  CO_ASSERT_OK(reached);
  EXPECT_EQ(*reached, 2u);
  absl::StatusOr<Value> mine = co_await Receive(kLong);
  CO_ASSERT_OK(mine);
  EXPECT_EQ(*mine, Value("hello"));
  absl::StatusOr<Value> kept = co_await keeper.Join(kLong);
  CO_ASSERT_OK(kept);
  EXPECT_EQ(*kept, Value("hello"));
  absl::StatusOr<Value> back = co_await Receive(kLong);  // C's send on A's channel
  CO_ASSERT_OK(back);
  EXPECT_EQ(*back, Value("back"));
  EXPECT_EQ((*c)->peers().size(), 2u) << "C connected to A (first, or on demand), and B to C";
  CO_ASSERT_OK(news.Unsubscribe(Self()));
  b->reset();
  c->reset();
  a->reset();
}

PICOS_CORO_TEST(RemoteInProcess, AThirdPeerUsesAChannelHandleItGotThroughASecond) {
  co_await ThirdPeerUsesAChannelHandle("", true);
}

PICOS_CORO_TEST(RemoteInProcess, AThirdPeerConnectsOnDemandToTheProcessOfAChannelHandle) {
  co_await ThirdPeerUsesAChannelHandle("-demand", false);
}

PICOS_CORO_TEST(RemoteInProcess, WrongSecretIsRefusedOnBothSides) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(kSecret, UnixName("w"), 1));
  CO_ASSERT_OK(a);
  absl::StatusOr<std::unique_ptr<remote::Node>> b =
      co_await remote::Node::Start(t, Options("not the same secret at all", "", 2));
  CO_ASSERT_OK(b);
  absl::Status s = co_await (*b)->Connect((*a)->uris()[0]);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("secret mismatch")));
  absl::StatusOr<TaskRef> located =
      co_await LocateTask("echo", Location::Peer((*a)->uris()[0]), absl::Seconds(1));
  EXPECT_THAT(located.status(), StatusIs(absl::StatusCode::kUnauthenticated));
  // The acceptor refused too (in its own task: give it until the deadline).
  const absl::Time give_up = absl::Now() + kLong;
  while ((*a)->refused_handshakes() < 2 && absl::Now() < give_up) {
    absl::Status slept = co_await Sleep(absl::Milliseconds(2));
    if (!slept.ok()) break;
  }
  EXPECT_EQ((*a)->refused_handshakes(), 2u);
  EXPECT_TRUE((*a)->peers().empty());
  EXPECT_TRUE((*b)->peers().empty());
}

PICOS_CORO_TEST(RemoteInProcess, PeerLostFailsJoinAndTellsMonitors) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(kSecret, UnixName("l"), 1));
  CO_ASSERT_OK(a);
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  CO_ASSERT_OK(RegisterTask("echo", echo));
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options(kSecret, "", 2));
  CO_ASSERT_OK(b);
  absl::StatusOr<TaskRef> far = co_await LocateTask("echo", Location::Peer((*a)->uris()[0]), kLong);
  CO_ASSERT_OK(far);
  CO_ASSERT_OK(Monitor(Self(), *far));
  TaskRef joiner = ThisScheduler().Spawn([far = *far]() -> Task<int> {
    absl::StatusOr<Value> r = co_await far.Join(kLong);
    co_return static_cast<int>(r.status().code());
  });
  absl::Status slept = co_await Sleep(absl::Milliseconds(20));  // the join is on its way
  EXPECT_OK(slept);
  a->reset();  // the peer goes
  absl::StatusOr<Value> mon = co_await Receive(kLong);
  CO_ASSERT_OK(mon);
  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*mon);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->outcome, MonitorOutcome::kPeerLost);
  absl::StatusOr<Value> j = co_await joiner.Join(kLong);
  CO_ASSERT_OK(j);
  EXPECT_EQ(*j, Value(static_cast<int>(absl::StatusCode::kUnavailable)));
  EXPECT_EQ(far->state(), TaskState::kDone);
  EXPECT_THAT(far->Send(1), StatusIs(absl::StatusCode::kUnavailable));
  (void)echo.Terminate();
  (void)co_await echo.Join(kLong);
  b->reset();
}

// A bare connection to `uri`, no handshake.
Task<absl::StatusOr<std::unique_ptr<Stream>>> Raw(std::string uri) {
  co_return co_await transports::DefaultTransports().Connect(std::move(uri), kLong);
}

// A bare connection to `uri` that passes the handshake as the peer process
// `process_id` (named `name`), for tests that then speak frames by hand or
// stay silent.
Task<absl::StatusOr<std::unique_ptr<Stream>>> AuthenticatedRaw(std::string uri,
                                                               std::string process_id,
                                                               std::string name = "") {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Stream> raw, co_await Raw(std::move(uri)));
  remote::HandshakeOptions h;
  h.secret = kSecret;
  h.timeout = kLong;
  h.name = std::move(name);
  h.process_id = std::move(process_id);
  PICOS_CO_RETURN_IF_ERROR((co_await remote::Handshake(*raw, h)).status());
  co_return raw;
}

// True once the other end closed `s` (its reads end or fail) before the
// deadline; what it sent first (its Hello) is read and dropped.
Task<bool> ClosedByPeer(Stream* s) {
  char buf[256];
  for (;;) {
    absl::StatusOr<size_t> n = co_await s->ReadSome(buf, 1, sizeof buf, kLong);
    if (!n.ok()) co_return !absl::IsDeadlineExceeded(n.status());
    if (*n == 0) co_return true;
  }
}

PICOS_CORO_TEST(RemoteInProcess, GarbageHugeClaimsAndHalfOpenConnectionsDoNotStopARealPeer) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(kSecret, "tcp://127.0.0.1:0", 1));
  CO_ASSERT_OK(a);
  const std::string uri = (*a)->uris()[0];
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  CO_ASSERT_OK(RegisterTask("echo", echo));
  std::vector<std::unique_ptr<Stream>> silent;
  for (int i = 0; i < 200; ++i) {
    absl::StatusOr<std::unique_ptr<Stream>> s = co_await Raw(uri);
    CO_ASSERT_OK(s);
    silent.push_back(*std::move(s));
  }
  absl::StatusOr<std::unique_ptr<Stream>> garbage = co_await Raw(uri);
  absl::StatusOr<std::unique_ptr<Stream>> huge = co_await Raw(uri);
  CO_ASSERT_OK(garbage);
  CO_ASSERT_OK(huge);
  CO_ASSERT_OK(co_await (*garbage)->Write("GET / HTTP/1.1\r\nHost: picos\r\n\r\n", kLong));
  CO_ASSERT_OK(co_await (*huge)->Write(std::string("\xff\xff\xff\xff", 4), kLong));

  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options(kSecret, "", 2));
  CO_ASSERT_OK(b);
  const absl::Time start = absl::Now();
  absl::Status s = co_await Converse(uri);
  EXPECT_OK(s);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20)) << "200 half-open connections delayed a real peer";
  bool garbage_closed = co_await ClosedByPeer(garbage->get());
  bool huge_closed = co_await ClosedByPeer(huge->get());
  EXPECT_TRUE(garbage_closed);
  EXPECT_TRUE(huge_closed);
  EXPECT_GE((*a)->refused_handshakes(), 2u);
  for (auto& c : silent) c->Close();
  (*garbage)->Close();
  (*huge)->Close();
  b->reset();
  a->reset();
  (void)co_await echo.Join(kLong);
}

PICOS_CORO_TEST(RemoteInProcess, MalformedFrameClosesThatConnectionOnly) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(kSecret, UnixName("m"), 1));
  CO_ASSERT_OK(a);
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  CO_ASSERT_OK(RegisterTask("echo", echo));
  absl::StatusOr<std::unique_ptr<Stream>> raw = co_await AuthenticatedRaw((*a)->uris()[0], RawPeerId(3));
  CO_ASSERT_OK(raw);  // authenticated: what follows is a frame
  std::string frame("\0\0\0\x10", 4);
  frame += std::string(16, '\xff');
  CO_ASSERT_OK(co_await (*raw)->Write(frame, kLong));
  bool closed = co_await ClosedByPeer(raw->get());
  EXPECT_TRUE(closed);
  (*raw)->Close();
  // The node serves the next peer as before.
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options(kSecret, "", 2));
  CO_ASSERT_OK(b);
  absl::Status s = co_await Converse((*a)->uris()[0]);
  EXPECT_OK(s);
  b->reset();
  a->reset();
  (void)co_await echo.Join(kLong);
}

PICOS_CORO_TEST(RemoteInProcess, LocateAnywhereAsksConnectedPeers) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(kSecret, UnixName("any"), 1));
  CO_ASSERT_OK(a);
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  CO_ASSERT_OK(RegisterTask("echo", echo));
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options(kSecret, "", 2));
  CO_ASSERT_OK(b);
  absl::StatusOr<TaskRef> none = co_await LocateTask("echo", Location::Anywhere(), absl::Seconds(1));
  EXPECT_THAT(none.status(), StatusIs(absl::StatusCode::kNotFound)) << "no peer is connected yet";
  CO_ASSERT_OK(co_await (*b)->Connect((*a)->uris()[0]));
  absl::StatusOr<TaskRef> found = co_await LocateTask("echo", Location::Anywhere(), kLong);
  CO_ASSERT_OK(found);
  EXPECT_NE(GetTaskProxy(*found), nullptr);
  absl::StatusOr<TaskRef> missing = co_await LocateTask("nobody", Location::Anywhere(), absl::Milliseconds(50));
  EXPECT_THAT(missing.status(), StatusIs(absl::StatusCode::kNotFound));
  CO_ASSERT_OK(found->Send(Value("quit")));
  absl::StatusOr<Value> joined = co_await found->Join(kLong);
  CO_ASSERT_OK(joined);
  EXPECT_EQ(*joined, Value(0));
  b->reset();
  a->reset();
}

// Names every task handle as `identity` (by default task #42 of process
// `pid`): how a test peer with no node writes a handle of its own, or one
// it made up.
class FakePeerCodec final : public HandleCodec {
 public:
  explicit FakePeerCodec(std::string pid) : identity_{std::move(pid), 42, "sink", ""} {}
  explicit FakePeerCodec(TaskIdentity identity) : identity_(std::move(identity)) {}
  absl::StatusOr<TaskIdentity> ExportTask(const TaskRef&) override { return identity_; }
  // Every channel handle as channel `name` of the same process.
  void set_channel(std::string name) { channel_ = std::move(name); }
  absl::StatusOr<TaskRef> ImportTask(const TaskIdentity&) override { return absl::UnimplementedError("no"); }
  absl::StatusOr<ChannelIdentity> ExportChannel(const ChannelRef&) override {
    if (channel_.empty()) return absl::UnimplementedError("no");
    return ChannelIdentity{identity_.process_id, channel_, "its proof"};
  }
  absl::StatusOr<ChannelRef> ImportChannel(const ChannelIdentity&) override {
    return absl::UnimplementedError("no");
  }

 private:
  TaskIdentity identity_;
  std::string channel_;
};

// `frames` (a list) as one length-prefixed batch, as a node writes it.
std::string FramedBatch(const Value& frames, HandleCodec* codec = nullptr) {
  CodecOptions co;
  co.handle_codec = codec;
  absl::StatusOr<std::string> bytes = EncodeValue(frames, co);
  EXPECT_OK(bytes);
  if (!bytes.ok()) return "";
  const uint32_t n = static_cast<uint32_t>(bytes->size());
  std::string framed = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                        static_cast<char>(n)};
  return framed + *bytes;
}

// Keeps every task identity it decodes (and makes a handle that cannot be
// used): how a test peer with no node reads the handles it is given,
// proofs included.
class CapturingCodec final : public HandleCodec {
 public:
  absl::StatusOr<TaskIdentity> ExportTask(const TaskRef&) override { return absl::UnimplementedError("no"); }
  absl::StatusOr<TaskRef> ImportTask(const TaskIdentity& identity) override {
    tasks.push_back(identity);
    return TaskRef();
  }
  absl::StatusOr<ChannelIdentity> ExportChannel(const ChannelRef&) override {
    return absl::UnimplementedError("no");
  }
  absl::StatusOr<ChannelRef> ImportChannel(const ChannelIdentity&) override { return ChannelRef(); }
  std::vector<TaskIdentity> tasks;
};

// The next batch of frames the node on the other end of `raw` sends, its
// task handles recorded in `capture`.
Task<absl::StatusOr<Value>> ReadBatchOverRaw(Stream* raw, CapturingCodec* capture) {
  char header[4];
  PICOS_CO_ASSIGN_OR_RETURN(size_t got, co_await raw->ReadSome(header, 4, 4, kLong));
  if (got < 4) co_return absl::UnavailableError("closed before the reply");
  const uint32_t n = (uint32_t{static_cast<uint8_t>(header[0])} << 24) |
                     (uint32_t{static_cast<uint8_t>(header[1])} << 16) |
                     (uint32_t{static_cast<uint8_t>(header[2])} << 8) | static_cast<uint8_t>(header[3]);
  if (n > (1u << 20)) co_return absl::DataLossError("batch too long");
  std::string body(n, '\0');
  PICOS_CO_ASSIGN_OR_RETURN(got, co_await raw->ReadSome(body.data(), n, n, kLong));
  if (got < n) co_return absl::UnavailableError("closed in a batch");
  CodecOptions co;
  co.handle_codec = capture;
  co_return DecodeValue(body, co);
}

// The identity, proof included, of the task registered as `name` at the
// node on the other end of `raw`, located as a peer locates it: a "locate"
// frame, then its "reply" (frames before it are read and dropped).
Task<absl::StatusOr<TaskIdentity>> LocateOverRaw(Stream* raw, std::string name) {
  const std::string framed = FramedBatch(Value::List({Value::Map(
      {{"op", "locate"}, {"req", uint64_t{99}}, {"kind", "task"}, {"name", name}, {"timeout_ns", int64_t{1'000'000'000}}})}));
  PICOS_CO_RETURN_IF_ERROR(co_await raw->Write(framed, kLong));
  for (int batches = 0; batches < 100; ++batches) {
    CapturingCodec capture;
    PICOS_CO_ASSIGN_OR_RETURN(Value batch, co_await ReadBatchOverRaw(raw, &capture));
    for (const Value& f : batch.as_list()) {
      if (f["op"] == Value("reply") && f["req"] == Value(uint64_t{99})) {
        if (capture.tasks.empty()) co_return absl::NotFoundError(f.DebugString());
        co_return capture.tasks.back();
      }
    }
  }
  co_return absl::DeadlineExceededError("no reply in 100 batches");
}


// A handle of a task of the raw peer `raw` (authenticated as `peer_id`), as
// this process gets it: the peer is given this task's handle (it locates it
// as `name`, proof included) and sends it a message carrying its own task's
// handle. Gives the proxy that message brought.
Task<absl::StatusOr<TaskRef>> HandleFromRawPeer(Stream* raw, std::string peer_id, std::string name) {
  FakePeerCodec fake(peer_id);
  PICOS_CO_RETURN_IF_ERROR(RegisterTask(name, Self()));
  PICOS_CO_ASSIGN_OR_RETURN(TaskIdentity given, co_await LocateOverRaw(raw, name));
  Value frames = Value::List({Value::Map(
      {{"op", "send"}, {"task", Self().id()}, {"proof", Value::Bytes(given.proof)}, {"msg", Value(Self())}})});
  PICOS_CO_RETURN_IF_ERROR(co_await raw->Write(FramedBatch(frames, &fake), kLong));
  PICOS_CO_ASSIGN_OR_RETURN(Value handed, co_await Receive(kLong));
  if (!handed.is_task()) co_return absl::DataLossError(absl::StrCat("not a handle: ", handed.DebugString()));
  co_return handed.as_task();
}

PICOS_CORO_TEST(RemoteInProcess, FloodToAPeerThatDoesNotReadStaysBounded) {
  remote::NodeOptions o = Options(kSecret, UnixName("flood"), 1);
  o.max_queued_frames = 1000;
  absl::StatusOr<std::unique_ptr<remote::Node>> b =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  CO_ASSERT_OK(b);
  // A peer that authenticates, hands us a handle of its task, and never
  // reads again.
  absl::StatusOr<std::unique_ptr<Stream>> raw = co_await AuthenticatedRaw((*b)->uris()[0], RawPeerId(6));
  CO_ASSERT_OK(raw);
  CO_ASSERT_OK(LocalHandleCodec().ExportTask(Self()));
  absl::StatusOr<TaskRef> far = co_await HandleFromRawPeer(raw->get(), RawPeerId(6), "flooded");
  CO_ASSERT_OK(far);
  EXPECT_NE(GetTaskProxy(*far), nullptr);
  // Flood it with 1 KiB messages until the queue for that peer is full.
  const Value payload(std::string(1024, 'f'));
  absl::Status sent;
  int64_t accepted = 0;
  const absl::Time give_up = absl::Now() + kLong;
  while (accepted < 10'000'000 && absl::Now() < give_up) {
    sent = far->Send(payload);
    if (!sent.ok()) break;
    if (++accepted % 500 == 0) co_await Yield();  // the writer runs
  }
  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("reads slower")));
  // Bounded: the queue, the stream's write queue and the kernel's buffers.
  EXPECT_LT(accepted, 100'000) << "accepted " << accepted << " 1 KiB messages for a peer that reads nothing";
  (*raw)->Close();
  b->reset();
}

// The same bound in bytes (NodeOptions::max_queued_bytes): a peer that reads
// nothing holds at most about that much of this process's memory, and one
// message larger than the bound still crosses when nothing else waits.
PICOS_CORO_TEST(RemoteInProcess, FloodToAPeerThatDoesNotReadIsBoundedInBytes) {
  remote::NodeOptions o = Options(kSecret, UnixName("flood_bytes"), 1);
  constexpr size_t kBound = 256 << 10;
  o.max_queued_bytes = kBound;
  absl::StatusOr<std::unique_ptr<remote::Node>> b =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  CO_ASSERT_OK(b);
  absl::StatusOr<std::unique_ptr<Stream>> raw = co_await AuthenticatedRaw((*b)->uris()[0], RawPeerId(6));
  CO_ASSERT_OK(raw);
  absl::StatusOr<TaskRef> far = co_await HandleFromRawPeer(raw->get(), RawPeerId(6), "flooded_bytes");
  CO_ASSERT_OK(far);
  // The peer acknowledges nothing, so what this node sends it only adds up:
  // 1 KiB messages until refused, about kBound of them.
  const Value payload(std::string(1024, 'f'));
  int64_t accepted = 0;
  absl::Status sent;
  while (accepted < 100'000) {
    sent = far->Send(payload);
    if (!sent.ok()) break;
    if (++accepted % 64 == 0) co_await Yield();  // the writer runs
  }
  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_queued_bytes")));
  EXPECT_GT(accepted, 100);
  EXPECT_LE(accepted * 1024, static_cast<int64_t>(kBound)) << "accepted " << accepted << " 1 KiB messages";
  // Written out, still not acknowledged: it stays full however long the
  // writer runs.
  for (int round = 0; round < 100; ++round) {
    sent = far->Send(payload);
    if (sent.ok()) break;
    co_await Yield();
  }
  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ((*b)->peers().size(), 1u) << "a full queue does not close the connection";
  (*raw)->Close();
  b->reset();
}

// One message larger than max_queued_bytes still crosses when nothing else
// waits for the peer (up to max_frame_size).
PICOS_CORO_TEST(RemoteInProcess, AMessageLargerThanTheByteBoundCrossesAlone) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(kSecret, UnixName("large_alone"), 1));
  CO_ASSERT_OK(a);
  remote::NodeOptions ob = Options(kSecret, "", 2);
  ob.max_queued_bytes = 64 << 10;
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, std::move(ob));
  CO_ASSERT_OK(b);
  CO_ASSERT_OK(RegisterTask("large_sink", Self()));
  absl::StatusOr<TaskRef> far = co_await LocateTask("large_sink", Location::Peer((*a)->uris()[0]), kLong);
  CO_ASSERT_OK(far);
  // Once a has acknowledged the locate (its reply carries the ack), nothing
  // waits for it.
  const std::string large(256 << 10, 'L');
  absl::Status sent = far->Send(Value(large));
  for (int i = 0; i < 10'000 && absl::IsResourceExhausted(sent); ++i) {
    co_await Sleep(absl::Milliseconds(1));
    sent = far->Send(Value(large));
  }
  CO_ASSERT_OK(sent);
  absl::StatusOr<Value> got = co_await Receive(kLong);
  CO_ASSERT_OK(got);
  EXPECT_EQ(*got, Value(large));
  b->reset();
  a->reset();
}

// A peer that resumes a session this node has lost (the node declared it
// lost, say silent past the liveness bound under load, and the peer
// redialled): its select acknowledges batches of that old session. The node
// keeps the connection and answers with a ping carrying its new session id,
// from which the peer learns that the session is gone. (It used to close
// with DATA_LOSS "ack of batch 11, never sent", and the peer redialled in a
// loop: found by compute_jobs_test on a loaded machine.)
PICOS_CORO_TEST(RemoteInProcess, APeerResumingASessionThisNodeLostIsToldNotRefused) {
  remote::NodeOptions o = Options(kSecret, UnixName("lost_session"), 0);
  o.process_id = std::string(kProcessIdSize, '\xfe');  // above the raw peer's: the raw peer arbitrates
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(transports::DefaultTransports(), o);
  CO_ASSERT_OK(a);
  absl::StatusOr<std::unique_ptr<Stream>> raw =
      co_await AuthenticatedRaw((*a)->uris()[0], std::string(kProcessIdSize, '\x01'));
  CO_ASSERT_OK(raw);
  const std::string resume = FramedBatch(Value::List(
      {Value::Map({{"op", "select"}, {"keep", true}, {"ack", uint64_t{11}}, {"sid", uint64_t{777}}})}));
  CO_ASSERT_OK(co_await (*raw)->Write(resume, kLong));
  CapturingCodec capture;
  absl::StatusOr<Value> batch = co_await ReadBatchOverRaw(raw->get(), &capture);
  CO_ASSERT_OK(batch);
  CO_ASSERT_TRUE(batch->is_list() && !batch->as_list().empty());
  const Value& first = batch->as_list()[0];
  EXPECT_EQ(first["op"], Value("ping")) << first.DebugString();
  EXPECT_TRUE(first["sid"].is_uint() && first["sid"].as_uint() != 0) << "its session id, new to the peer";
  EXPECT_EQ(first["ack"], Value(uint64_t{0})) << "it received nothing of that session";
  EXPECT_EQ((*a)->peers().size(), 1u) << "the connection stays";
  (*raw)->Close();
  a->reset();
}

// Frames that decode but make no sense: the node answers what it can, drops
// the rest, and keeps serving (nothing a peer sends can crash it).
PICOS_CORO_TEST(RemoteInProcess, NonsenseFramesAreDroppedAndTheNodeKeepsServing) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(t, Options(kSecret, UnixName("nonsense"), 1));
  CO_ASSERT_OK(a);
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  CO_ASSERT_OK(RegisterTask("echo", echo));
  absl::StatusOr<std::unique_ptr<Stream>> raw = co_await AuthenticatedRaw((*a)->uris()[0], RawPeerId(7));
  CO_ASSERT_OK(raw);
  const uint64_t nobody = uint64_t{1} << 60;
  Value frames = Value::List({
      Value::Map({{"op", 7}}),
      Value::Map({}),
      Value::Map({{"op", "nope"}}),
      Value::Map({{"op", "join"}}),
      Value::Map({{"op", "join"}, {"req", 1}, {"task", nobody}}),
      Value::Map({{"op", "reply"}, {"req", 12345}, {"ok", true}}),
      Value::Map({{"op", "monitor"}, {"reg", 1}, {"task", nobody}}),
      Value::Map({{"op", "monitor_msg"}, {"reg", 77}}),
      Value::Map({{"op", "ch_msg"}, {"sub", 5}, {"msg", 1}}),
      Value::Map({{"op", "ch_sub"}, {"channel", "nope"}, {"sub", 1}}),
      Value::Map({{"op", "ch_sub"}, {"channel", 3}}),
      Value::Map({{"op", "ch_unsub"}, {"sub", 9}}),
      Value::Map({{"op", "ch_send"}, {"channel", "nope"}, {"msg", 1}}),
      Value::Map({{"op", "send"}, {"task", -1}}),
      Value::Map({{"op", "throw"}, {"task", nobody}, {"error", Value::Map({{"code", 99}})}}),
      Value::Map({{"op", "terminate"}, {"task", nobody}}),
      Value::Map({{"op", "locate"}, {"req", 2}, {"name", 5}}),
      Value::Map({{"op", "locate"}, {"req", 3}, {"kind", "channel"}, {"name", "x"}, {"timeout_ns", -5}}),
      Value::Map({{"op", "ch_deliver"}, {"req", 4}, {"channel", "none"}}),
      Value::Map({{"op", "ping"}, {"extra", Value::List({1, 2, 3})}}),
  });
  CO_ASSERT_OK(co_await (*raw)->Write(FramedBatch(frames), kLong));
  // A real peer is served meanwhile, and the nonsense connection stays up.
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options(kSecret, "", 2));
  CO_ASSERT_OK(b);
  absl::Status s = co_await Converse((*a)->uris()[0]);
  EXPECT_OK(s);
  EXPECT_EQ((*a)->peers().size(), 2u) << "b and the nonsense peer, still connected";
  // A batch that is not a list closes it.
  CO_ASSERT_OK(co_await (*raw)->Write(FramedBatch(Value(5)), kLong));
  bool closed = co_await ClosedByPeer(raw->get());
  EXPECT_TRUE(closed);
  (*raw)->Close();
  b->reset();
  a->reset();
  (void)co_await echo.Join(kLong);
}

// Handles are unforgeable: a peer reaches only the tasks whose handles it
// was given. Here an authenticated peer with no node names this process's
// tasks by id, with no proof, a made-up one, or one of another task; none
// of it reaches them, and a fabricated handle inside a message arrives as
// one that fails. The same frames with the proof the node minted do reach
// them: the control that shows the test can fail.
PICOS_CORO_TEST(RemoteInProcess, FabricatedHandlesAreRefused) {
  remote::NodeOptions o = Options(kSecret, UnixName("forge"), 0);
  o.process_id = std::string(kProcessIdSize, '\x01');  // below any RawPeerId: the arbiter
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(transports::DefaultTransports(), o);
  CO_ASSERT_OK(a);
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  absl::StatusOr<std::unique_ptr<Stream>> raw = co_await AuthenticatedRaw((*a)->uris()[0], RawPeerId(9));
  CO_ASSERT_OK(raw);
  // The peer is given this task's handle and echo's (it locates them).
  CO_ASSERT_OK(RegisterTask("me", Self()));
  CO_ASSERT_OK(RegisterTask("echo", echo));
  absl::StatusOr<TaskIdentity> mine = co_await LocateOverRaw(raw->get(), "me");
  CO_ASSERT_OK(mine);
  absl::StatusOr<TaskIdentity> echos = co_await LocateOverRaw(raw->get(), "echo");
  CO_ASSERT_OK(echos);
  const uint64_t me = Self().id();
  CO_ASSERT_TRUE(mine->task_id == me);
  CO_ASSERT_TRUE(echos->task_id == echo.id());
  const std::string my_proof = mine->proof;
  const std::string echo_proof = echos->proof;
  CO_ASSERT_TRUE(my_proof.size() == 16u);
  CO_ASSERT_TRUE(my_proof != echo_proof);
  std::string altered = my_proof;
  altered[3] = static_cast<char>(altered[3] ^ 0x20);
  auto send = [&](Value msg, Value proof) {
    Value::MapType f{{"op", "send"}, {"task", me}, {"msg", std::move(msg)}};
    if (!proof.is_null()) f.emplace("proof", std::move(proof));
    return Value(std::move(f));
  };
  // The positional form nodes send: [1, task, proof_hi, proof_lo, msg],
  // the 16-byte proof as two big-endian numbers.
  auto half = [](const std::string& p, size_t at) {
    uint64_t v = 0;
    for (size_t i = at; i < at + 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
    return v;
  };
  auto positional = [&](Value msg, const std::string& proof) {
    return Value::List({uint64_t{1}, me, half(proof, 0), half(proof, 8), std::move(msg)});
  };
  // Built before the co_await: g++ 12 cannot keep an initializer list
  // across a suspension ("array used as initializer").
  const std::string refused_then_given = FramedBatch(Value::List({
          send("no proof", Value()),
          send("a made-up proof", Value::Bytes(std::string(16, '\x5a'))),
          send("an altered proof", Value::Bytes(altered)),
          send("another task's proof", Value::Bytes(echo_proof)),
          send("a proof of the wrong type", Value(my_proof)),
          Value::List({uint64_t{1}, me, "positional, no proof"}),
          positional("positional, a made-up proof", std::string(16, '\x5a')),
          positional("positional, an altered proof", altered),
          positional("positional, another task's proof", echo_proof),
          Value::List({uint64_t{1}, me, Value::Bytes(my_proof), uint64_t{0}, "positional, a proof of the wrong type"}),
          Value::List({uint64_t{1}, me, half(my_proof, 0), "positional, half a proof"}),
          Value::List({uint64_t{2}, me, half(my_proof, 0), half(my_proof, 8), "an unknown positional op"}),
          Value::List({int64_t{-1}, me, half(my_proof, 0), half(my_proof, 8), "a negative op"}),
          // Kill the echo task without its handle: refused too.
          Value::Map({{"op", "terminate"}, {"task", echo.id()}, {"proof", Value::Bytes(my_proof)}}),
          send("given", Value::Bytes(my_proof)),
          positional("given, positional", my_proof),
      }));
  CO_ASSERT_OK(co_await (*raw)->Write(refused_then_given, kLong));
  // Frames are applied in order: had any refused one got through, it would
  // be received first.
  absl::StatusOr<Value> first = co_await Receive(kLong);
  CO_ASSERT_OK(first);
  EXPECT_EQ(*first, Value("given"));
  absl::StatusOr<Value> second = co_await Receive(kLong);
  CO_ASSERT_OK(second);
  EXPECT_EQ(*second, Value("given, positional"));
  EXPECT_NE(echo.state(), TaskState::kDone) << "terminated by a peer without its handle";
  // A handle inside a message: forged (made-up proof), altered (echo's id
  // with this task's proof), and genuine.
  std::vector<std::string> proofs;
  proofs.push_back(std::string(16, '\x01'));
  proofs.push_back(my_proof);
  proofs.push_back(echo_proof);
  for (const std::string& p : proofs) {
    const bool genuine = p == echo_proof;
    FakePeerCodec as(TaskIdentity{o.process_id, echo.id(), "echo", p});
    const std::string carrying = FramedBatch(Value::List({send(Value(Self()), Value::Bytes(my_proof))}), &as);
    CO_ASSERT_OK(co_await (*raw)->Write(carrying, kLong));
    absl::StatusOr<Value> got = co_await Receive(kLong);
    CO_ASSERT_OK(got);
    CO_ASSERT_TRUE(got->is_task());
    if (genuine) {
      EXPECT_EQ(got->as_task(), echo) << "a genuine handle is the original";
      continue;
    }
    EXPECT_NE(got->as_task(), echo);
    EXPECT_THAT(got->as_task().Send(Value("quit")), StatusIs(absl::StatusCode::kPermissionDenied));
    absl::StatusOr<Value> joined = co_await got->as_task().Join(kLong);
    EXPECT_THAT(joined.status(), StatusIs(absl::StatusCode::kPermissionDenied));
  }
  EXPECT_EQ((*a)->peers().size(), 1u) << "refusing a handle does not close the connection";
  (*raw)->Close();
  a->reset();
  CO_ASSERT_OK(echo.Send(Value("quit")));
  absl::StatusOr<Value> ended = co_await echo.Join(kLong);
  CO_ASSERT_OK(ended);
  EXPECT_EQ(*ended, Value(0)) << "the echo task answered nothing it was not sent";
}

// Receives one message and gives it.
Task<Value> ReceiveOneValue() {
  absl::StatusOr<Value> m = co_await Receive(kLong);
  co_return m.ok() ? *m : Value("nothing");
}

// One copy of a broadcast crosses a connection, however many subscribers
// sit behind it: here the channel's owner is a bare peer that reads what
// the node sends. Three subscribers make one "ch_sub" and two "ch_weight"
// frames (so the owner counts three), and one "ch_msg" reaches all three.
PICOS_CORO_TEST(RemoteInProcess, OneCopyOfABroadcastPerConnection) {
  remote::NodeOptions o = Options(kSecret, UnixName("fan"), 0);
  o.process_id = std::string(kProcessIdSize, '\x01');  // the arbiter: it speaks first
  absl::StatusOr<std::unique_ptr<remote::Node>> b =
      co_await remote::Node::Start(transports::DefaultTransports(), o);
  CO_ASSERT_OK(b);
  absl::StatusOr<std::unique_ptr<Stream>> raw = co_await AuthenticatedRaw((*b)->uris()[0], RawPeerId(5));
  CO_ASSERT_OK(raw);
  CO_ASSERT_OK(RegisterTask("collector", Self()));
  absl::StatusOr<TaskIdentity> me = co_await LocateOverRaw(raw->get(), "collector");
  CO_ASSERT_OK(me);
  // The bare peer hands this task a handle of its channel "feed".
  FakePeerCodec theirs(RawPeerId(5));
  theirs.set_channel("feed");
  Channel made_up = Channel::Create("feed-template");  // only its handle's place in the message matters
  const std::string handing = FramedBatch(
      Value::List({Value::Map({{"op", "send"}, {"task", me->task_id}, {"proof", Value::Bytes(me->proof)},
                               {"msg", Value(made_up.ref())}})}),
      &theirs);
  CO_ASSERT_OK(co_await (*raw)->Write(handing, kLong));
  absl::StatusOr<Value> handed = co_await Receive(kLong);
  CO_ASSERT_OK(handed);
  CO_ASSERT_TRUE(handed->is_channel());
  Channel feed(handed->as_channel());
  std::vector<TaskRef> readers;
  for (int i = 0; i < 3; ++i) {
    readers.push_back(ThisScheduler().Spawn(ReceiveOneValue));
    CO_ASSERT_OK(feed.Subscribe(readers.back()));
  }
  // What crossed: one subscription, then its weight as it grew.
  std::vector<Value> seen;
  uint64_t wire = 0;
  for (int batches = 0; batches < 50 && seen.size() < 3; ++batches) {
    CapturingCodec capture;
    absl::StatusOr<Value> batch = co_await ReadBatchOverRaw(raw->get(), &capture);
    CO_ASSERT_OK(batch);
    for (const Value& f : batch->as_list()) {
      if (f["op"] == Value("ch_sub") || f["op"] == Value("ch_weight")) seen.push_back(f);
    }
  }
  CO_ASSERT_TRUE(seen.size() == 3u);
  EXPECT_EQ(seen[0]["op"], Value("ch_sub"));
  EXPECT_EQ(seen[0]["channel"], Value("feed"));
  EXPECT_EQ(seen[0]["n"], Value(uint64_t{1}));
  wire = seen[0]["sub"].as_uint();
  EXPECT_EQ(seen[1]["op"], Value("ch_weight"));
  EXPECT_EQ(seen[1]["n"], Value(uint64_t{2}));
  EXPECT_EQ(seen[2]["op"], Value("ch_weight"));
  EXPECT_EQ(seen[2]["n"], Value(uint64_t{3}));
  EXPECT_EQ(seen[2]["sub"], Value(wire)) << "one subscription for all three";
  // One message from the owner reaches every subscriber.
  const std::string broadcast =
      FramedBatch(Value::List({Value::Map({{"op", "ch_msg"}, {"sub", wire}, {"msg", "extra!"}})}));
  CO_ASSERT_OK(co_await (*raw)->Write(broadcast, kLong));
  for (TaskRef& r : readers) {
    absl::StatusOr<Value> got = co_await r.Join(kLong);
    CO_ASSERT_OK(got);
    EXPECT_EQ(*got, Value("extra!"));
  }
  (*raw)->Close();
  CO_ASSERT_OK(made_up.Close());
  b->reset();
}

// A handle of a process nobody can say where it listens: calls made while
// the node asks wait, then every call fails with kUnavailable.
PICOS_CORO_TEST(RemoteInProcess, AHandleOfAProcessNobodyCanReachFailsCleanly) {
  remote::NodeOptions o = Options(kSecret, UnixName("ghost"), 0);
  o.process_id = std::string(kProcessIdSize, '\x01');  // the arbiter: it speaks first
  absl::StatusOr<std::unique_ptr<remote::Node>> c =
      co_await remote::Node::Start(transports::DefaultTransports(), o);
  CO_ASSERT_OK(c);
  absl::StatusOr<std::unique_ptr<Stream>> raw = co_await AuthenticatedRaw((*c)->uris()[0], RawPeerId(4));
  CO_ASSERT_OK(raw);
  CO_ASSERT_OK(RegisterTask("ghost-collector", Self()));
  absl::StatusOr<TaskIdentity> me = co_await LocateOverRaw(raw->get(), "ghost-collector");
  CO_ASSERT_OK(me);
  const std::string ghost_pid = RawPeerId(8);
  FakePeerCodec ghost(TaskIdentity{ghost_pid, 42, "ghost", "its proof"});
  const std::string handing = FramedBatch(
      Value::List({Value::Map(
          {{"op", "send"}, {"task", me->task_id}, {"proof", Value::Bytes(me->proof)}, {"msg", Value(Self())}})}),
      &ghost);
  CO_ASSERT_OK(co_await (*raw)->Write(handing, kLong));
  absl::StatusOr<Value> handed = co_await Receive(kLong);
  CO_ASSERT_OK(handed);
  CO_ASSERT_TRUE(handed->is_task());
  TaskRef h = handed->as_task();
  EXPECT_EQ(h.name(), "ghost");
  EXPECT_NE(h.state(), TaskState::kDone) << "still finding out where it is";
  EXPECT_OK(h.Send(Value("waits")));
  // The node asks the peer that sent the handle; the peer does not know.
  uint64_t req = 0;
  for (int batches = 0; batches < 50 && req == 0; ++batches) {
    CapturingCodec capture;
    absl::StatusOr<Value> batch = co_await ReadBatchOverRaw(raw->get(), &capture);
    CO_ASSERT_OK(batch);
    for (const Value& f : batch->as_list()) {
      if (f["op"] == Value("where")) {
        EXPECT_EQ(f["pid"], Value::Bytes(ghost_pid));
        req = f["req"].as_uint();
      }
    }
  }
  CO_ASSERT_TRUE(req != 0);
  const std::string answer = FramedBatch(Value::List({Value::Map(
      {{"op", "reply"},
       {"req", req},
       {"ok", false},
       {"error", Value::Map({{"code", static_cast<int>(absl::StatusCode::kNotFound)}, {"message", "no idea"}})}})}));
  CO_ASSERT_OK(co_await (*raw)->Write(answer, kLong));
  absl::StatusOr<Value> joined = co_await h.Join(kLong);
  EXPECT_THAT(joined.status(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no idea")));
  EXPECT_THAT(h.Send(Value("late")), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(h.state(), TaskState::kDone);
  (*raw)->Close();
  c->reset();
}

PICOS_CORO_TEST(RemoteInProcess, SilentPeerIsLostAfterItsHeartbeatsAreMissed) {
  remote::NodeOptions o = Options(kSecret, UnixName("hb"), 1);
  o.heartbeat_interval = absl::Milliseconds(50);
  o.heartbeat_misses = 4;
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  CO_ASSERT_OK(a);
  CO_ASSERT_OK(Channel((*a)->peer_events()).Subscribe(Self()));
  absl::StatusOr<std::unique_ptr<Stream>> raw = co_await AuthenticatedRaw((*a)->uris()[0], RawPeerId(5), "silent");
  CO_ASSERT_OK(raw);
  const absl::Time start = absl::Now();
  bool closed = co_await ClosedByPeer(raw->get());  // its pings arrive; we never answer
  EXPECT_TRUE(closed);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));
  EXPECT_TRUE((*a)->peers().empty());
  // Its peer events: joined, then lost (not "left": it never closed).
  absl::StatusOr<Value> joined = co_await Receive(kLong);
  CO_ASSERT_OK(joined);
  const Value* j = SystemMessagePayload(*joined, remote::kPeerEventMessage);
  CO_ASSERT_TRUE(j != nullptr);
  EXPECT_EQ((*j)["event"], Value("joined"));
  EXPECT_EQ((*j)["name"], Value("silent"));
  absl::StatusOr<Value> lost = co_await Receive(kLong);
  CO_ASSERT_OK(lost);
  const Value* l = SystemMessagePayload(*lost, remote::kPeerEventMessage);
  CO_ASSERT_TRUE(l != nullptr);
  EXPECT_EQ((*l)["event"], Value("lost"));
  EXPECT_TRUE((*l)["reason"].is_string() && absl::StrContains((*l)["reason"].as_string(), "heartbeats"));
  (*raw)->Close();
  a->reset();
}

PICOS_CORO_TEST(RemoteInProcess, IdleLinkStaysUpOnHeartbeats) {
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeOptions oa = Options(kSecret, UnixName("idle"), 1);
  remote::NodeOptions ob = Options(kSecret, "", 2);
  oa.heartbeat_interval = ob.heartbeat_interval = absl::Milliseconds(20);
  oa.heartbeat_misses = ob.heartbeat_misses = 25;  // 500 ms of silence is death
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(t, std::move(oa));
  CO_ASSERT_OK(a);
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  CO_ASSERT_OK(RegisterTask("echo", echo));
  TaskRef watcher = ThisScheduler().Spawn([]() -> Task<std::string> {
    std::string seen;
    for (int i = 0; i < 2; ++i) {
      absl::StatusOr<Value> m = co_await Receive(kLong);
      if (!m.ok()) break;
      const Value* p = SystemMessagePayload(*m, remote::kPeerEventMessage);
      seen += p == nullptr ? "?" : (*p)["event"].as_string() + " ";
    }
    co_return seen;
  });
  CO_ASSERT_OK(Channel((*a)->peer_events()).Subscribe(watcher));
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, std::move(ob));
  CO_ASSERT_OK(b);
  absl::StatusOr<TaskRef> far = co_await LocateTask("echo", Location::Peer((*a)->uris()[0]), kLong);
  CO_ASSERT_OK(far);
  absl::Status slept = co_await Sleep(absl::Milliseconds(1500));  // idle, three times the limit
  EXPECT_OK(slept);
  EXPECT_EQ((*b)->peers().size(), 1u);
  EXPECT_EQ((*a)->peers().size(), 1u);
  CO_ASSERT_OK(far->Send(Value("quit")));
  absl::StatusOr<Value> joined = co_await far->Join(kLong);
  CO_ASSERT_OK(joined);
  EXPECT_EQ(*joined, Value(0));
  CO_ASSERT_OK(co_await (*b)->Close(kLong));  // b leaves cleanly: a goodbye, then its streams close
  b->reset();
  absl::StatusOr<Value> seen = co_await watcher.Join(kLong);
  CO_ASSERT_OK(seen);
  EXPECT_EQ(*seen, Value("joined left "));
  a->reset();
}

// Converse without the end: the echo task stays for the next caller.
Task<absl::Status> Chat(std::string uri) {
  absl::StatusOr<TaskRef> echo = co_await LocateTask("echo", Location::Peer(uri), kLong);
  if (!echo.ok()) co_return echo.status();
  for (int i = 0; i < kMessages; ++i) {
    PICOS_CO_RETURN_IF_ERROR(echo->Send(Value::Map({{"reply_to", Self()}, {"n", i}})));
  }
  for (int i = 0; i < kMessages; ++i) {
    absl::StatusOr<Value> r = co_await Receive(kLong);
    if (!r.ok()) co_return r.status();
    if ((*r)["n"] != Value(i)) co_return absl::DataLossError(absl::StrCat("reply ", i, " is ", r->DebugString()));
  }
  absl::StatusOr<Value> extra = co_await Receive(absl::Milliseconds(1));
  if (extra.ok()) co_return absl::DataLossError(absl::StrCat("a reply more: ", extra->DebugString()));
  co_return absl::OkStatus();
}

// Both peers dial each other at the same moment, while a task of one
// already talks to the other (its Locate dials a third time): every round
// must end with one connection on each side (one "joined" each, nothing
// lost), every dial succeeding, and every message and reply arriving once
// and in order. Rounds alternate which peer has the lower process id (the
// arbiter) and which dial starts first.
PICOS_CORO_TEST(RemoteInProcess, BothSidesConnectingAtOnceEndWithOneConnection) {
  constexpr int kRounds = 30;
  const TransportRegistry& t = transports::DefaultTransports();
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  CO_ASSERT_OK(RegisterTask("echo", echo));
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    const bool a_low = round % 2 == 0;
    absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(
        t, Options(kSecret, UnixName(absl::StrCat("race-a", round).c_str()), a_low ? 1 : 2));
    CO_ASSERT_OK(a);
    absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(
        t, Options(kSecret, UnixName(absl::StrCat("race-b", round).c_str()), a_low ? 2 : 1));
    CO_ASSERT_OK(b);
    CO_ASSERT_OK(Channel((*a)->peer_events()).Subscribe(Self()));
    CO_ASSERT_OK(Channel((*b)->peer_events()).Subscribe(Self()));
    remote::Node* na = a->get();
    remote::Node* nb = b->get();
    const std::string ua = na->uris()[0], ub = nb->uris()[0];
    auto dial = [](remote::Node* n, std::string uri, absl::Duration after) -> Task<absl::Status> {
      if (after > absl::ZeroDuration()) {
        absl::Status slept = co_await Sleep(after);
        if (!slept.ok()) co_return slept;
      }
      co_return co_await n->Connect(std::move(uri));
    };
    const absl::Duration skew = absl::Microseconds((round / 2) % 3 * 100);
    TaskRef from_a = ThisScheduler().Spawn(dial, na, ub, (round / 2) % 2 ? skew : absl::ZeroDuration());
    TaskRef from_b = ThisScheduler().Spawn(dial, nb, ua, (round / 2) % 2 ? absl::ZeroDuration() : skew);
    // Through b (the scheduler's resolver is the node started last).
    TaskRef talker = ThisScheduler().Spawn(Chat, ua);
    absl::StatusOr<Value> ra = co_await from_a.Join(kLong);
    absl::StatusOr<Value> rb = co_await from_b.Join(kLong);
    absl::StatusOr<Value> rt = co_await talker.Join(kLong);
    EXPECT_OK(ra);
    EXPECT_OK(rb);
    EXPECT_OK(rt);
    EXPECT_EQ(na->peers().size(), 1u);
    EXPECT_EQ(nb->peers().size(), 1u);
    // Declined connections close without a peer event; the kept one stays.
    absl::Status slept = co_await Sleep(absl::Milliseconds(5));
    CO_ASSERT_OK(slept);
    EXPECT_EQ(na->peers().size(), 1u);
    EXPECT_EQ(nb->peers().size(), 1u);
    std::string events;
    for (;;) {
      absl::StatusOr<Value> m = co_await Receive(absl::ZeroDuration());
      if (!m.ok()) break;
      const Value* p = SystemMessagePayload(*m, remote::kPeerEventMessage);
      events += p == nullptr ? "? " : (*p)["event"].as_string() + " ";
    }
    EXPECT_EQ(events, "joined joined ") << "one connection, joined once on each side";
    CO_ASSERT_OK(Channel(na->peer_events()).Unsubscribe(Self()));
    CO_ASSERT_OK(Channel(nb->peer_events()).Unsubscribe(Self()));
    b->reset();
    a->reset();
  }
  CO_ASSERT_OK(echo.Send(Value("quit")));
  (void)co_await echo.Join(kLong);
}

// On a simulated clock (PICOS_SIM_TEST): the node's timers follow the
// scheduler's clock, so liveness is checked to the nanosecond, and minutes of
// idle link take milliseconds.

PICOS_SIM_TEST(RemoteVirtualTime, SilentPeerIsLostAfterExactlyIntervalTimesMisses) {
  remote::NodeOptions o = Options(kSecret, UnixName("sim-silent"), 1);
  o.heartbeat_interval = absl::Seconds(1);
  o.heartbeat_misses = 5;
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  CO_ASSERT_OK(a);
  CO_ASSERT_OK(Channel((*a)->peer_events()).Subscribe(Self()));
  absl::StatusOr<std::unique_ptr<Stream>> raw = co_await AuthenticatedRaw((*a)->uris()[0], RawPeerId(5), "silent");
  CO_ASSERT_OK(raw);
  const int64_t start_ns = ThisScheduler().NowNs();
  // Its pings arrive (one a second); this side never answers.
  bool closed = co_await ClosedByPeer(raw->get());
  EXPECT_TRUE(closed);
  EXPECT_EQ(absl::Nanoseconds(ThisScheduler().NowNs() - start_ns), absl::Seconds(5))
      << "lost after exactly heartbeat_interval * heartbeat_misses of silence";
  EXPECT_TRUE((*a)->peers().empty());
  absl::StatusOr<Value> joined = co_await Receive(kLong);
  CO_ASSERT_OK(joined);
  absl::StatusOr<Value> lost = co_await Receive(kLong);
  CO_ASSERT_OK(lost);
  const Value* l = SystemMessagePayload(*lost, remote::kPeerEventMessage);
  CO_ASSERT_TRUE(l != nullptr);
  EXPECT_EQ((*l)["event"], Value("lost"));
  EXPECT_TRUE((*l)["reason"].is_string() && absl::StrContains((*l)["reason"].as_string(), "5 heartbeats"));
  (*raw)->Close();
  a->reset();
}

PICOS_SIM_TEST(RemoteVirtualTime, SilentClientIsRefusedAfterExactlyTheHandshakeTimeout) {
  remote::NodeOptions o = Options(kSecret, UnixName("sim-hs"), 1);
  o.handshake_timeout = absl::Seconds(3);
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  CO_ASSERT_OK(a);
  absl::StatusOr<std::unique_ptr<Stream>> raw = co_await Raw((*a)->uris()[0]);
  CO_ASSERT_OK(raw);
  const int64_t start_ns = ThisScheduler().NowNs();
  bool closed = co_await ClosedByPeer(raw->get());  // reads its Hello; sends nothing
  EXPECT_TRUE(closed);
  EXPECT_EQ(absl::Nanoseconds(ThisScheduler().NowNs() - start_ns), absl::Seconds(3));
  EXPECT_EQ((*a)->refused_handshakes(), 1u);
  (*raw)->Close();
  a->reset();
}

PICOS_SIM_TEST(RemoteVirtualTime, IdleLinkStaysUpForTenMinutes) {
  const absl::Time real_start = absl::Now();
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeOptions oa = Options(kSecret, UnixName("sim-idle"), 1);
  remote::NodeOptions ob = Options(kSecret, "", 2);
  oa.heartbeat_interval = ob.heartbeat_interval = absl::Seconds(1);
  oa.heartbeat_misses = ob.heartbeat_misses = 3;
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(t, std::move(oa));
  CO_ASSERT_OK(a);
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, std::move(ob));
  CO_ASSERT_OK(b);
  // Echo's own receive timeout (a minute) is shorter than the idle spell.
  TaskRef echo = ThisScheduler().SpawnNamed("echo", []() -> Task<int64_t> {
    absl::StatusOr<Value> msg = co_await Receive(absl::Hours(1));
    co_return msg.ok() && *msg == Value("quit") ? 0 : -1;
  });
  CO_ASSERT_OK(RegisterTask("echo", echo));
  CO_ASSERT_OK(Channel((*a)->peer_events()).Subscribe(Self()));
  CO_ASSERT_OK(Channel((*b)->peer_events()).Subscribe(Self()));
  absl::StatusOr<TaskRef> far = co_await LocateTask("echo", Location::Peer((*a)->uris()[0]), kLong);
  CO_ASSERT_OK(far);
  const int64_t start_ns = ThisScheduler().NowNs();
  absl::Status slept = co_await Sleep(absl::Minutes(10));  // idle but for heartbeats
  EXPECT_OK(slept);
  EXPECT_EQ(absl::Nanoseconds(ThisScheduler().NowNs() - start_ns), absl::Minutes(10));
  EXPECT_EQ((*a)->peers().size(), 1u);
  EXPECT_EQ((*b)->peers().size(), 1u);
  // The link still carries messages, and nobody was lost meanwhile.
  CO_ASSERT_OK(far->Send(Value("quit")));
  absl::StatusOr<Value> joined = co_await far->Join(kLong);
  CO_ASSERT_OK(joined);
  EXPECT_EQ(*joined, Value(0));
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<Value> m = co_await Receive(absl::ZeroDuration());
    CO_ASSERT_OK(m);
    const Value* p = SystemMessagePayload(*m, remote::kPeerEventMessage);
    CO_ASSERT_TRUE(p != nullptr);
    EXPECT_EQ((*p)["event"], Value("joined"));
  }
  absl::StatusOr<Value> more = co_await Receive(absl::ZeroDuration());
  EXPECT_THAT(more.status(), StatusIs(absl::StatusCode::kDeadlineExceeded)) << "no peer event but the two joins";
  b->reset();
  a->reset();
  EXPECT_LT(absl::Now() - real_start, absl::Seconds(5)) << "ten virtual minutes take milliseconds";
}

// The same idle link with each node on a scheduler of its own (b's on a
// thread), both on one simulated clock.
PICOS_SIM_TEST(RemoteVirtualTime, IdleLinkBetweenTwoSchedulersOnOneClock) {
  const absl::Time real_start = absl::Now();
  remote::NodeOptions oa = Options(kSecret, UnixName("sim-two"), 1);
  oa.heartbeat_interval = absl::Seconds(1);
  oa.heartbeat_misses = 3;
  absl::StatusOr<std::unique_ptr<remote::Node>> a =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(oa));
  CO_ASSERT_OK(a);
  TaskRef echo = ThisScheduler().SpawnNamed("echo", []() -> Task<int64_t> {
    absl::StatusOr<Value> msg = co_await Receive(absl::Hours(1));
    co_return msg.ok() && *msg == Value("quit") ? 0 : -1;
  });
  CO_ASSERT_OK(RegisterTask("echo", echo));
  auto sb = std::make_unique<Scheduler>(Scheduler::Options{.name = "b", .clock = ThisScheduler().clock()});
  CO_ASSERT_OK(sb->StartThread());
  const int64_t start_ns = ThisScheduler().NowNs();
  TaskRef side_b = sb->Spawn([](std::string uri) -> Task<absl::Status> {
    remote::NodeOptions ob = Options(kSecret, "", 2);
    ob.heartbeat_interval = absl::Seconds(1);
    ob.heartbeat_misses = 3;
    absl::StatusOr<std::unique_ptr<remote::Node>> b =
        co_await remote::Node::Start(transports::DefaultTransports(), std::move(ob));
    if (!b.ok()) co_return b.status();
    absl::StatusOr<TaskRef> far = co_await LocateTask("echo", Location::Peer(uri), kLong);
    if (!far.ok()) co_return far.status();
    absl::Status slept = co_await Sleep(absl::Minutes(10));
    if (!slept.ok()) co_return slept;
    if ((*b)->peers().size() != 1) co_return absl::UnavailableError("b lost its peer");
    PICOS_CO_RETURN_IF_ERROR(far->Send(Value("quit")));
    absl::StatusOr<Value> joined = co_await far->Join(kLong);
    if (!joined.ok()) co_return joined.status();
    co_return absl::OkStatus();
  }, (*a)->uris()[0]);
  // Nine minutes on, while b still sleeps: a has kept b all along.
  absl::Status slept = co_await Sleep(absl::Minutes(9));
  CO_ASSERT_OK(slept);
  EXPECT_EQ((*a)->peers().size(), 1u) << "a lost b while b was idle";
  absl::StatusOr<Value> rb = co_await side_b.Join(absl::Hours(1));
  EXPECT_OK(rb);
  EXPECT_GE(absl::Nanoseconds(ThisScheduler().NowNs() - start_ns), absl::Minutes(10));
  sb.reset();
  a->reset();
  EXPECT_LT(absl::Now() - real_start, absl::Seconds(10)) << "ten virtual minutes take little real time";
}

TEST(RemoteSecret, LoadsFromAFileOrTheEnvironmentAndRefusesWeakOnes) {
  const std::string dir = std::getenv("TEST_TMPDIR") != nullptr ? std::getenv("TEST_TMPDIR") : "/tmp";
  const std::string path = absl::StrCat(dir, "/secret-", getpid());
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("a secret from a file, long enough\n", f);
    std::fclose(f);
  }
  absl::StatusOr<std::string> from_file = remote::LoadSecret(path, "PICOS_TEST_NO_SUCH_VAR");
  ASSERT_OK(from_file);
  EXPECT_EQ(*from_file, "a secret from a file, long enough");
  EXPECT_THAT(remote::LoadSecret(path + ".missing").status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(remote::LoadSecret("", "PICOS_TEST_NO_SUCH_VAR").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("PICOS_TEST_NO_SUCH_VAR")));
  setenv("PICOS_TEST_SECRET", "short", 1);
  absl::StatusOr<std::string> weak = remote::LoadSecret("", "PICOS_TEST_SECRET");
  EXPECT_THAT(weak.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("PICOS_TEST_SECRET")));
  EXPECT_FALSE(absl::StrContains(weak.status().message(), "short")) << "never quotes the secret";
  setenv("PICOS_TEST_SECRET", "an environment secret, long enough", 1);
  EXPECT_THAT(remote::LoadSecret("", "PICOS_TEST_SECRET"), IsOk());
  std::remove(path.c_str());
}

// --- two processes ---

struct Server {
  std::unique_ptr<Process> process;
  std::string uri;
};

Task<absl::StatusOr<Server>> StartServer(std::string listen, std::string secret) {
  ProcessOptions p;
  p.program = "testing/remote_peer_server";
  p.args = {absl::StrCat("--listen=", listen), "--lifetime=120s"};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "PICOS_REMOTE_SECRET=")) env.emplace_back(*e);
  }
  env.push_back(absl::StrCat("PICOS_REMOTE_SECRET=", secret));
  p.env = std::move(env);
  absl::StatusOr<std::unique_ptr<Process>> proc = Process::Spawn(std::move(p));
  if (!proc.ok()) co_return proc.status();
  Server s{*std::move(proc), ""};
  absl::StatusOr<std::string> line = co_await s.process->out().ReadLine(4096, kLong);
  if (!line.ok()) co_return line.status();
  absl::string_view l = *line;
  if (!absl::ConsumePrefix(&l, "listening ")) {
    co_return absl::InternalError(absl::StrCat("the server said: ", *line));
  }
  s.uri = std::string(absl::StripTrailingAsciiWhitespace(l));
  co_return s;
}

// Waits for the server to end by itself; kills it (its pid only) if it has
// not within the deadline. Gives its stderr.
Task<std::string> Finish(Server& s, bool expect_clean_exit) {
  absl::StatusOr<ExitStatus> st = co_await s.process->Wait(kLong);
  if (!st.ok()) {
    ADD_FAILURE() << "the server did not end: " << st.status();
    (void)s.process->Kill(SIGKILL);
    st = co_await s.process->Wait(kLong);
  }
  if (expect_clean_exit && st.ok()) {
    EXPECT_TRUE(st->success()) << st->ToString();
  }
  absl::StatusOr<std::string> err = co_await s.process->err().ReadAll(1 << 20, kLong);
  co_return err.ok() ? *err : std::string();
}

Task<> TwoProcesses(std::string listen) {
  absl::StatusOr<Server> server = co_await StartServer(listen, kSecret);
  CO_ASSERT_OK(server);
  absl::StatusOr<std::unique_ptr<remote::Node>> me =
      co_await remote::Node::Start(transports::DefaultTransports(), Options(kSecret, "", 0));
  if (!me.ok()) {
    ADD_FAILURE() << me.status();
    (void)server->process->Kill(SIGKILL);
    (void)co_await server->process->Wait(kLong);
    co_return;
  }
  absl::Status s = co_await Converse(server->uri);
  EXPECT_OK(s);
  me->reset();  // the server ends once its peers have gone
  std::string err = co_await Finish(*server, s.ok());
  if (!s.ok()) std::fprintf(stderr, "server's stderr:\n%s\n", err.c_str());
}

PICOS_CORO_TEST(RemoteTwoProcesses, OverTcp) { co_await TwoProcesses("tcp://127.0.0.1:0"); }

PICOS_CORO_TEST(RemoteTwoProcesses, OverUnix) { co_await TwoProcesses(UnixName("two")); }

PICOS_CORO_TEST(RemoteTwoProcesses, PeerKilledMidConversationIsLostAndNothingHangs) {
  absl::StatusOr<Server> server = co_await StartServer("tcp://127.0.0.1:0", kSecret);
  CO_ASSERT_OK(server);
  absl::StatusOr<std::unique_ptr<remote::Node>> me =
      co_await remote::Node::Start(transports::DefaultTransports(), Options(kSecret, "", 0));
  absl::StatusOr<TaskRef> echo = absl::UnknownError("no node");
  if (me.ok()) echo = co_await LocateTask("echo", Location::Peer(server->uri), kLong);
  if (!echo.ok()) {
    ADD_FAILURE() << echo.status();
    (void)server->process->Kill(SIGKILL);
    (void)co_await Finish(*server, false);
    co_return;
  }
  EXPECT_OK(Monitor(Self(), *echo));
  Value m = Value::Map({{"reply_to", Self()}, {"n", 1}});
  EXPECT_OK(echo->Send(std::move(m)));
  absl::StatusOr<Value> reply = co_await Receive(kLong);
  EXPECT_OK(reply);
  TaskRef joiner = ThisScheduler().Spawn([e = *echo]() -> Task<int> {
    absl::StatusOr<Value> r = co_await e.Join(kLong);
    co_return static_cast<int>(r.status().code());
  });
  EXPECT_OK(server->process->Kill(SIGKILL));  // its pid only
  absl::StatusOr<Value> mon = co_await Receive(kLong);
  CO_ASSERT_OK(mon);
  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*mon);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->outcome, MonitorOutcome::kPeerLost);
  absl::StatusOr<Value> j = co_await joiner.Join(kLong);
  CO_ASSERT_OK(j);
  EXPECT_EQ(*j, Value(static_cast<int>(absl::StatusCode::kUnavailable)));
  EXPECT_THAT(echo->Send(1), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE((*me)->peers().empty());
  me->reset();
  (void)co_await Finish(*server, false);
}

// A process's resident memory in bytes (VmRSS), or -1.
int64_t ResidentBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view l = line;
    int64_t kb = 0;
    if (absl::ConsumePrefix(&l, "VmRSS:") &&
        absl::SimpleAtoi(absl::StripSuffix(absl::StripAsciiWhitespace(l), " kB"), &kb)) {
      return kb * 1024;
    }
  }
  return -1;
}

// A flood to a peer that reads nothing (its process stopped with SIGSTOP):
// Send gives kResourceExhausted once about max_queued_bytes wait, and both
// processes' memory stays within a stated bound. Once the peer runs again,
// every message accepted arrives, once.
PICOS_CORO_TEST(RemoteTwoProcesses, FloodToAStoppedPeerKeepsBothProcessesBounded) {
  constexpr int64_t kBound = 64 << 20;  // each process's growth
  absl::StatusOr<Server> server = co_await StartServer("tcp://127.0.0.1:0", kSecret);
  CO_ASSERT_OK(server);
  const pid_t server_pid = server->process->pid();
  remote::NodeOptions o = Options(kSecret, "", 0);
  o.heartbeat_misses = 1000;  // the stopped peer is not lost meanwhile
  absl::StatusOr<std::unique_ptr<remote::Node>> me =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  absl::StatusOr<TaskRef> sink = absl::UnknownError("no node");
  if (me.ok()) sink = co_await LocateTask("sink", Location::Peer(server->uri), kLong);
  if (!sink.ok()) {
    ADD_FAILURE() << sink.status();
    (void)server->process->Kill(SIGKILL);
    (void)co_await Finish(*server, false);
    co_return;
  }
  const int64_t my_rss = ResidentBytes(getpid());
  const int64_t server_rss = ResidentBytes(server_pid);
  EXPECT_EQ(kill(server_pid, SIGSTOP), 0);  // its pid only
  const Value payload(std::string(1024, 'f'));
  int64_t accepted = 0;
  int refusals = 0;
  // Until refused 100 times running, 2 ms apart (the kernel's buffers are
  // full by then and nothing is acknowledged), or a flood far beyond the bound.
  while (refusals < 100 && accepted < 1'000'000) {
    absl::Status s = sink->Send(payload);
    if (s.ok()) {
      ++accepted;
      refusals = 0;
      if (accepted % 256 == 0) co_await Yield();  // the writer runs
      continue;
    }
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kResourceExhausted));
    ++refusals;
    co_await Sleep(absl::Milliseconds(2));
  }
  const int64_t my_growth = ResidentBytes(getpid()) - my_rss;
  EXPECT_EQ(refusals, 100) << "accepted " << accepted << " 1 KiB messages for a stopped peer";
  EXPECT_LT(my_growth, kBound) << "accepted " << accepted;
  EXPECT_EQ(kill(server_pid, SIGCONT), 0);
  // Every message accepted arrives once: the sink counts them.
  int64_t counted = -1;
  for (int asks = 0; asks < 600 && counted != accepted; ++asks) {
    Value ask = Value::Map({{"count_to", Self()}});
    absl::Status asked = co_await SendWhenRoom(*sink, std::move(ask), kLong);
    CO_ASSERT_OK(asked);
    absl::StatusOr<Value> n = co_await Receive(kLong);
    CO_ASSERT_OK(n);
    counted = n->is_int() ? n->as_int() : -2;
    if (counted != accepted) co_await Sleep(absl::Milliseconds(100));
  }
  EXPECT_EQ(counted, accepted);
  const int64_t server_growth = ResidentBytes(server_pid) - server_rss;
  EXPECT_LT(server_growth, kBound);
  std::printf("flood to a stopped peer: %lld messages accepted; growth: this process %lld KiB, the peer %lld KiB\n",
              static_cast<long long>(accepted), static_cast<long long>(my_growth >> 10),
              static_cast<long long>(server_growth >> 10));
  absl::StatusOr<TaskRef> echo = co_await LocateTask("echo", Location::Peer(server->uri), kLong);
  if (echo.ok() && echo->Send(Value("quit")).ok()) (void)co_await echo->Join(kLong);  // it ends then
  me->reset();
  (void)co_await Finish(*server, true);
}

PICOS_CORO_TEST(RemoteTwoProcesses, WrongSecretIsLoggedAsSecretMismatchOnBothSides) {
  absl::StatusOr<Server> server = co_await StartServer("tcp://127.0.0.1:0", kSecret);
  CO_ASSERT_OK(server);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await remote::Node::Start(
      transports::DefaultTransports(), Options("a different secret, same length", "", 0));
  if (me.ok()) {
    absl::Status s = co_await (*me)->Connect(server->uri);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("secret mismatch")));
  } else {
    ADD_FAILURE() << me.status();
  }
  // The server logs the refusal in its own time: read its stderr until it
  // does (bounded), then end it (its pid only; it would wait for its echo
  // task).
  std::string err;
  const absl::Time give_up = absl::Now() + kLong;
  while (!absl::StrContains(err, "secret mismatch") && absl::Now() < give_up) {
    absl::StatusOr<std::string> line = co_await server->process->err().ReadLine(4096, kLong);
    if (!line.ok() || line->empty()) break;
    err += *line;
  }
  EXPECT_THAT(err, HasSubstr("secret mismatch"));
  (void)server->process->Kill(SIGTERM);
  (void)co_await Finish(*server, false);
}

// The "monitor_msg" frames the node on the other end of `raw` sends, until
// `want` of them have come (other frames are read and dropped).
Task<absl::StatusOr<std::vector<Value>>> MonitorMsgsOverRaw(Stream* raw, size_t want) {
  std::vector<Value> msgs;
  for (int batches = 0; batches < 100 && msgs.size() < want; ++batches) {
    char header[4];
    PICOS_CO_ASSIGN_OR_RETURN(size_t got, co_await raw->ReadSome(header, 4, 4, kLong));
    if (got < 4) co_return absl::UnavailableError("closed before the monitor messages");
    const uint32_t n = (uint32_t{static_cast<uint8_t>(header[0])} << 24) |
                       (uint32_t{static_cast<uint8_t>(header[1])} << 16) |
                       (uint32_t{static_cast<uint8_t>(header[2])} << 8) | static_cast<uint8_t>(header[3]);
    if (n > (1u << 20)) co_return absl::DataLossError("batch too long");
    std::string body(n, '\0');
    PICOS_CO_ASSIGN_OR_RETURN(got, co_await raw->ReadSome(body.data(), n, n, kLong));
    if (got < n) co_return absl::UnavailableError("closed in a batch");
    CapturingCodec capture;
    CodecOptions co;
    co.handle_codec = &capture;
    PICOS_CO_ASSIGN_OR_RETURN(Value batch, DecodeValue(body, co));
    for (const Value& f : batch.as_list()) {
      if (f["op"] == Value("monitor_msg")) msgs.push_back(f);
    }
  }
  co_return msgs;
}

// A "monitor" frame is always answered: one with a wrong proof hears
// PERMISSION_DENIED, one of a task that already ended hears how it ended
// (node.h), each as a "monitor_msg" for its registration.
PICOS_CORO_TEST(RemoteInProcess, MonitorFramesAreAlwaysAnswered) {
  remote::NodeOptions o = Options(kSecret, UnixName("monitor-answered"), 0);
  o.process_id = std::string(kProcessIdSize, '\x01');  // below any RawPeerId: the arbiter
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(transports::DefaultTransports(), o);
  CO_ASSERT_OK(a);
  TaskRef done = ThisScheduler().SpawnNamed("done", Echo);
  CO_ASSERT_OK(RegisterTask("done", done));
  absl::StatusOr<std::unique_ptr<Stream>> raw = co_await AuthenticatedRaw((*a)->uris()[0], RawPeerId(10));
  CO_ASSERT_OK(raw);
  absl::StatusOr<TaskIdentity> given = co_await LocateOverRaw(raw->get(), "done");
  CO_ASSERT_OK(given);
  CO_ASSERT_OK(done.Send(Value("quit")));
  absl::StatusOr<Value> ended = co_await done.Join(kLong);
  CO_ASSERT_OK(ended);  // answered nothing: 0
  const std::string framed = FramedBatch(Value::List({
      Value::Map({{"op", "monitor"}, {"task", done.id()}, {"reg", uint64_t{1}},
                  {"proof", Value::Bytes(std::string(16, '\x5a'))}}),
      Value::Map({{"op", "monitor"}, {"task", done.id()}, {"reg", uint64_t{2}}, {"proof", Value::Bytes(given->proof)}}),
  }));
  CO_ASSERT_OK(co_await (*raw)->Write(framed, kLong));
  absl::StatusOr<std::vector<Value>> msgs = co_await MonitorMsgsOverRaw(raw->get(), 2);
  CO_ASSERT_OK(msgs);
  CO_ASSERT_TRUE(msgs->size() == 2u);
  for (const Value& m : *msgs) {
    absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(m["msg"]);
    CO_ASSERT_OK(st);
    EXPECT_EQ(st->id, done.id());
    if (m["reg"] == Value(uint64_t{1})) {
      EXPECT_EQ(st->outcome, MonitorOutcome::kError) << st->DebugString();
      EXPECT_THAT(st->error, StatusIs(absl::StatusCode::kPermissionDenied)) << "a wrong proof";
    } else {
      EXPECT_EQ(m["reg"], Value(uint64_t{2}));
      EXPECT_EQ(st->outcome, MonitorOutcome::kValue) << st->DebugString();
      EXPECT_EQ(st->value, Value(0)) << "the ended task's value";
    }
  }
  (*raw)->Close();
  a->reset();
}

}  // namespace
}  // namespace picos::testing
