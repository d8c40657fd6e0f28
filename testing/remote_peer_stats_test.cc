// remote::Node::peer_stats and heartbeat_losses (core/remote/node.h): two
// nodes in one process, a hundred messages of a known size from one to a
// task behind the other; each side counts the other's frames and bytes,
// and a link kept busy misses no heartbeat. On a simulated clock, a peer
// that handshakes and then stays silent misses one heartbeat a second and
// is lost to missed heartbeats.
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "core/remote/handshake.h"
#include "core/remote/node.h"
#include "core/wire/value_codec.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"
#include "transports/default_transports.h"

namespace picos::testing {
namespace {

constexpr int kMessages = 100;
constexpr size_t kPayload = 1000;
constexpr absl::Duration kLong = absl::Seconds(60);  // only a hang reaches it

// Receives `count` messages, then ends with their total size.
Task<absl::StatusOr<Value>> Sink(int count) {
  int64_t bytes = 0;
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<Value> m = co_await Receive(kLong);
    if (!m.ok()) co_return m.status();
    bytes += static_cast<int64_t>(m->GetOr<std::string>("data", "").size());
  }
  co_return Value(bytes);
}

// The stats of the peer whose "name@uri" starts with `name@`.
const remote::PeerStats* Of(const std::vector<remote::PeerStats>& all, const std::string& name) {
  for (const remote::PeerStats& p : all) {
    if (absl::StartsWith(p.peer, name + "@")) return &p;
  }
  return nullptr;
}

PICOS_CORO_TEST(RemotePeerStats, CountsFramesAndBytesEachWay) {
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeOptions ao{.secret = "the peer stats test's secret", .listen = {"tcp://127.0.0.1:0"}, .name = "a"};
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(t, std::move(ao));
  CO_ASSERT_OK(a);
  remote::NodeOptions bo{.secret = "the peer stats test's secret", .name = "b"};
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, std::move(bo));
  CO_ASSERT_OK(b);
  EXPECT_TRUE((*a)->peer_stats().empty());

  TaskRef sink = ThisScheduler().Spawn(Sink, kMessages);
  CO_ASSERT_OK(RegisterTask("peer-stats-sink", sink));
  // b (the scheduler's resolver, started last) reaches a's task through its
  // connection to a: every message crosses the loopback link.
  absl::StatusOr<TaskRef> far =
      co_await LocateTask("peer-stats-sink", Location::Peer((*a)->uris()[0]), kLong);
  CO_ASSERT_OK(far);
  for (int i = 0; i < kMessages; ++i) {
    CO_ASSERT_OK(far->Send(Value::Map({{"data", std::string(kPayload, 'x')}})));
  }
  absl::StatusOr<Value> got = co_await sink.Join(kLong);
  CO_ASSERT_OK(got);
  EXPECT_EQ(*got, Value(static_cast<int64_t>(kMessages * kPayload)));
  absl::Status flushed = co_await (*b)->Flush(kLong);
  EXPECT_OK(flushed);

  const std::vector<remote::PeerStats> from_b = (*b)->peer_stats();
  const std::vector<remote::PeerStats> from_a = (*a)->peer_stats();
  EXPECT_EQ(from_b.size(), 1u);
  EXPECT_EQ(from_a.size(), 1u);
  const remote::PeerStats* a_seen_by_b = Of(from_b, "a");
  const remote::PeerStats* b_seen_by_a = Of(from_a, "b");
  if (a_seen_by_b == nullptr || b_seen_by_a == nullptr) {
    ADD_FAILURE() << "no stats of a seen by b, or of b seen by a";
    co_return;
  }
  // The messages and the locate's request: at least that many frames, and
  // at least their payload in bytes, each way as seen from each side.
  EXPECT_GE(a_seen_by_b->messages_sent, static_cast<uint64_t>(kMessages));
  EXPECT_GE(b_seen_by_a->messages_received, static_cast<uint64_t>(kMessages));
  EXPECT_GE(a_seen_by_b->bytes_sent, kMessages * kPayload);
  EXPECT_GE(b_seen_by_a->bytes_received, kMessages * kPayload);
  // What one side wrote the other read, once every batch arrived.
  EXPECT_EQ(b_seen_by_a->messages_received, a_seen_by_b->messages_sent);
  // Overhead (the target's handle and proof, the batch headers) is less
  // than the payload.
  EXPECT_LT(a_seen_by_b->bytes_sent, kMessages * 2 * kPayload);
  // The locate's reply came back.
  EXPECT_GE(a_seen_by_b->messages_received, 1u);
  EXPECT_GE(b_seen_by_a->messages_sent, 1u);
  EXPECT_EQ((*a)->heartbeat_losses(), 0u);
  EXPECT_EQ((*b)->heartbeat_losses(), 0u);

  absl::Status closed = co_await (*b)->Close();
  EXPECT_OK(closed);
  b->reset();
  a->reset();
}

PICOS_SIM_TEST(RemotePeerStats, ASilentPeerMissesHeartbeatsAndIsLost) {
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeOptions o;
  o.secret = "the peer stats test's secret";
  o.listen.push_back(absl::StrCat("unix://@picos-peer-stats-", getpid()));
  o.heartbeat_interval = absl::Seconds(1);
  o.heartbeat_misses = 5;
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(t, std::move(o));
  CO_ASSERT_OK(a);
  // A peer by hand: the handshake, then nothing.
  absl::StatusOr<std::unique_ptr<Stream>> raw = co_await t.Connect((*a)->uris()[0], kLong);
  CO_ASSERT_OK(raw);
  remote::HandshakeOptions h;
  h.secret = "the peer stats test's secret";
  h.timeout = kLong;
  h.name = "silent";
  h.process_id = std::string(kProcessIdSize, '\xff');  // above the node's: it keeps the link
  absl::Status shook = (co_await remote::Handshake(**raw, h)).status();
  CO_ASSERT_OK(shook);
  absl::Status slept = co_await Sleep(absl::Milliseconds(2500));
  CO_ASSERT_OK(slept);
  const std::vector<remote::PeerStats> stats = (*a)->peer_stats();
  CO_ASSERT_TRUE(stats.size() == 1u);
  EXPECT_TRUE(absl::StartsWith(stats[0].peer, "silent@")) << stats[0].peer;
  EXPECT_EQ(stats[0].heartbeats_missed, 2u) << "the ticks at 1 s and 2 s found it silent";
  EXPECT_EQ(stats[0].messages_received, 0u);
  EXPECT_EQ((*a)->heartbeat_losses(), 0u);
  // Lost at 5 s of silence (bounded: the loop ends at the loss or at 60 s).
  for (int i = 0; i < 600 && (*a)->heartbeat_losses() == 0; ++i) {
    slept = co_await Sleep(absl::Milliseconds(100));
    CO_ASSERT_OK(slept);
  }
  EXPECT_EQ((*a)->heartbeat_losses(), 1u);
  EXPECT_TRUE((*a)->peer_stats().empty());
  (*raw)->Close();
  a->reset();
}

// A flood leaves spare write buffers for the next batches; a second with
// no frame gives them back, though heartbeats keep the link busy (a ping a
// second) and the flood's peer stays connected.
PICOS_SIM_TEST(RemotePeerStats, AnIdlePeerHoldsNoWriteBuffers) {
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeOptions ao;
  ao.secret = "the peer stats test's secret";
  ao.listen.push_back(absl::StrCat("unix://@picos-peer-buffers-", getpid()));
  ao.name = "a";
  ao.heartbeat_interval = absl::Milliseconds(300);  // pings well inside the second
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(t, std::move(ao));
  CO_ASSERT_OK(a);
  remote::NodeOptions bo;
  bo.secret = "the peer stats test's secret";
  bo.name = "b";
  bo.heartbeat_interval = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, std::move(bo));
  CO_ASSERT_OK(b);
  TaskRef sink = ThisScheduler().Spawn(Sink, 2000);
  CO_ASSERT_OK(RegisterTask("peer-buffers-sink", sink));
  absl::StatusOr<TaskRef> far = co_await LocateTask("peer-buffers-sink", Location::Peer((*a)->uris()[0]), kLong);
  CO_ASSERT_OK(far);
  for (int i = 0; i < 2000; ++i) {
    Value message = Value::Map({{"data", std::string(kPayload, 'x')}});  // (no braces inside a co_await: g++ 12)
    absl::Status sent = co_await SendWhenRoom(*far, std::move(message), kLong);
    CO_ASSERT_OK(sent);
    if (i % 200 == 0) co_await Yield();  // the writer writes a batch at a time
  }
  absl::StatusOr<Value> got = co_await sink.Join(kLong);
  CO_ASSERT_OK(got);
  absl::Status flushed = co_await (*b)->Flush(kLong);
  CO_ASSERT_OK(flushed);
  const std::vector<remote::PeerStats> flood = (*b)->peer_stats();
  const remote::PeerStats* busy = Of(flood, "a");
  CO_ASSERT_TRUE(busy != nullptr);
  EXPECT_GT(busy->buffer_bytes, 0u) << "acknowledged batches' buffers are kept for the next ones";
  absl::Status slept = co_await Sleep(absl::Milliseconds(1500));
  CO_ASSERT_OK(slept);
  const std::vector<remote::PeerStats> idle = (*b)->peer_stats();
  const remote::PeerStats* after = Of(idle, "a");
  CO_ASSERT_TRUE(after != nullptr);  // still connected
  EXPECT_EQ(after->buffer_bytes, 0u);
  EXPECT_GT(after->bytes_sent, busy->bytes_sent) << "pings went out meanwhile";
  EXPECT_EQ((*b)->heartbeat_losses(), 0u);
  absl::Status closed = co_await (*b)->Close();
  EXPECT_OK(closed);
  b->reset();
  a->reset();
}

}  // namespace
}  // namespace picos::testing
