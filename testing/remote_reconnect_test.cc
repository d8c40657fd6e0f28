// Reconnection of the remote layer (core/remote/node.h, NodeOptions::
// reconnect_grace): a peer is a session that outlives its connections.
// Connections are cut by a TCP proxy this test controls (CutProxy: it
// forwards bytes between a dialler and a target, and on Cut() resets both
// sides, as a link that drops would), between two nodes of this process and
// between this process and a second one (remote_peer_server). Checked: a
// flood through several cuts arrives exactly once and in order, both ways;
// a peer that does not come back is lost when the grace period ends (on the
// simulated clock, to the millisecond), and at once when nothing listens at
// its address any more; a peer that comes back as another process is a new
// peer; a peer killed with SIGKILL is lost within the liveness bound.
// Every wait has a deadline only a hang reaches; each second process is
// killed by its Process object (its pid only) if it has not ended.
#include <unistd.h>

#include <csignal>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/io/process.h"
#include "core/kernel/channel.h"
#include "core/kernel/monitor.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/system_message.h"
#include "core/kernel/task.h"
#include "core/kernel/task_group.h"
#include "core/net/transport.h"
#include "core/remote/node.h"
#include "core/wire/value_codec.h"
#include "testing/coro_test.h"
#include "transports/default_transports.h"

namespace picos::testing {
namespace {

constexpr char kSecret[] = "a session outlives its connections";
constexpr absl::Duration kLong = absl::Seconds(60);  // only a hang reaches it

// A TCP proxy on 127.0.0.1 in this process: each connection it accepts is
// forwarded to `target`, byte for byte, both ways. Cut() resets every
// forwarded pair (RST on both sides); StopListening() makes later dials
// refused; set_forwarding(false) holds later connections open and silent
// (a black hole). An end of stream on one side is passed on as an end of
// stream unless set_pass_end(false), which turns it into a reset too (a
// cut link, not a peer that left). Its tasks end with it.
class CutProxy {
 public:
  static Task<absl::StatusOr<std::unique_ptr<CutProxy>>> Start(std::string target) {
    absl::StatusOr<std::unique_ptr<Listener>> l =
        co_await transports::DefaultTransports().Listen("tcp://127.0.0.1:0");
    if (!l.ok()) co_return l.status();
    std::unique_ptr<CutProxy> p(new CutProxy(std::move(target), *std::move(l)));
    absl::StatusOr<TaskRef> t = p->tasks_.Spawn(&CutProxy::AcceptLoop, p.get());
    if (!t.ok()) co_return t.status();
    co_return p;
  }
  ~CutProxy() {
    Cut();
    listener_->Close();
  }

  std::string uri() const { return uri_; }
  void set_target(std::string target) { target_ = std::move(target); }
  void set_forwarding(bool on) { forwarding_ = on; }
  void set_pass_end(bool on) { pass_end_ = on; }
  int accepted() const { return accepted_; }
  void StopListening() { listener_->Close(); }
  void Cut() {
    for (auto& p : pairs_) {
      p->a->Abort();
      p->b->Abort();
    }
    pairs_.clear();
  }

 private:
  struct Pair {
    std::unique_ptr<Stream> a;  // the dialler's side
    std::unique_ptr<Stream> b;  // the target's side
  };
  CutProxy(std::string target, std::unique_ptr<Listener> l)
      : target_(std::move(target)),
        listener_(std::move(l)),
        uri_(listener_->address()),
        tasks_(ThisScheduler(), TaskGroup::Options{.name = "cut-proxy"}) {}

  Task<absl::Status> AcceptLoop() {
    for (;;) {
      absl::StatusOr<std::unique_ptr<Stream>> s = co_await listener_->Accept();
      if (!s.ok()) co_return absl::OkStatus();  // closed
      ++accepted_;
      (void)tasks_.Spawn(&CutProxy::Forward, this, *std::move(s));
    }
  }

  Task<absl::Status> Forward(std::unique_ptr<Stream> a) {
    if (!forwarding_) {
      held_.push_back(std::move(a));  // silent until the proxy ends
      co_return absl::OkStatus();
    }
    absl::StatusOr<std::unique_ptr<Stream>> b = co_await transports::DefaultTransports().Connect(target_, kLong);
    if (!b.ok()) {
      a->Abort();  // as if the target were unreachable behind the link
      co_return absl::OkStatus();
    }
    auto pair = std::make_shared<Pair>(Pair{std::move(a), *std::move(b)});
    pairs_.push_back(pair);
    (void)tasks_.Spawn(&CutProxy::Pump, this, pair, true);
    (void)tasks_.Spawn(&CutProxy::Pump, this, pair, false);
    co_return absl::OkStatus();
  }

  Task<absl::Status> Pump(std::shared_ptr<Pair> pair, bool forward) {
    Stream* from = forward ? pair->a.get() : pair->b.get();
    Stream* to = forward ? pair->b.get() : pair->a.get();
    std::string buf(64 * 1024, '\0');
    for (;;) {
      absl::StatusOr<size_t> n = co_await from->ReadSome(buf.data(), 1, buf.size());
      if (!n.ok() || *n == 0) {
        if (n.ok() && pass_end_) {
          to->Close();
        } else {
          to->Abort();
        }
        from->Close();
        co_return absl::OkStatus();
      }
      absl::Status w = co_await to->Write(buf.substr(0, *n));
      if (!w.ok()) {
        from->Abort();
        co_return absl::OkStatus();
      }
    }
  }

  std::string target_;
  std::unique_ptr<Listener> listener_;
  const std::string uri_;
  bool forwarding_ = true;
  bool pass_end_ = true;
  int accepted_ = 0;
  std::vector<std::shared_ptr<Pair>> pairs_;
  std::vector<std::unique_ptr<Stream>> held_;
  TaskGroup tasks_;  // last: destroyed first
};

remote::NodeOptions Options(std::string listen, char pid_tweak) {
  remote::NodeOptions o;
  o.secret = kSecret;
  if (!listen.empty()) o.listen.push_back(std::move(listen));
  o.handshake_timeout = kLong;
  o.connect_timeout = kLong;
  o.reconnect_grace = kLong;  // only a hang exhausts it, unless a test says otherwise
  if (pid_tweak != 0) {
    o.process_id = ProcessId();
    o.process_id[0] = static_cast<char>(o.process_id[0] ^ pid_tweak);
  }
  return o;
}

// Answers {"reply_to": t, "n": k} with {"n": k} sent to t; returns how many
// it answered once it receives "quit".
Task<int64_t> Echo() {
  int64_t answered = 0;
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive(kLong);
    if (!msg.ok() || *msg == Value("quit")) co_return answered;
    // Waits for room rather than drop a reply when the peer's queue is full.
    Value reply = Value::Map({{"n", (*msg)["n"]}});
    absl::Status sent = co_await SendWhenRoom((*msg)["reply_to"].as_task(), std::move(reply), kLong);
    if (!sent.ok()) ADD_FAILURE() << "reply " << (*msg)["n"].DebugString() << ": " << sent;
    ++answered;
  }
}

// Sends {"reply_to": reply_to, "n": i} for i in [0, n) to `to`, waiting
// (bounded) while the peer's queue is full. Gives the first other error.
Task<absl::Status> Flood(TaskRef to, TaskRef reply_to, int n) {
  for (int i = 0; i < n; ++i) {
    Value m = Value::Map({{"reply_to", reply_to}, {"n", i}});  // (no braced list inside a co_await call: g++ 12)
    absl::Status s = co_await SendWhenRoom(to, std::move(m), absl::Seconds(60));
    PICOS_CO_RETURN_IF_ERROR(s);
    if (i % 256 == 255) co_await Yield();  // the writer runs: a flood, not one batch
  }
  co_return absl::OkStatus();
}

// Floods `echo` with n requests from a task of this process while this task
// receives the n replies, cutting `proxy` `cuts` times along the way (each
// cut once the one before has been reconnected by `node`); checks that every
// reply arrives exactly once and in order, and that the echo task answered
// exactly n requests (none lost or applied twice on the far side).
Task<> FloodThroughCuts(remote::Node* node, CutProxy* proxy, TaskRef echo, int n, int cuts) {
  const size_t reconnects_before = node->reconnects();
  TaskRef flood = ThisScheduler().Spawn(Flood, echo, Self(), n);
  int cut = 0;
  int next_cut_at = n / (cuts + 1);
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<Value> r = co_await Receive(kLong);
    CO_ASSERT_OK(r);
    CO_ASSERT_TRUE(r->is_map());
    if ((*r)["n"] != Value(i)) {
      ADD_FAILURE() << "reply " << i << " is " << r->DebugString() << " (lost, duplicated or reordered)";
      co_return;
    }
    if (cut < cuts && i >= next_cut_at && node->reconnects() == reconnects_before + cut) {
      proxy->Cut();
      ++cut;
      next_cut_at = i + n / (cuts + 1) / 2;
    }
  }
  absl::StatusOr<Value> extra = co_await Receive(absl::Milliseconds(50));
  EXPECT_FALSE(extra.ok()) << "a reply more: " << extra->DebugString();
  absl::StatusOr<Value> sent = co_await flood.Join(kLong);
  EXPECT_OK(sent);
  EXPECT_EQ(cut, cuts) << "the cuts all happened while replies were still coming";
  EXPECT_GE(node->reconnects(), reconnects_before + cuts);
  CO_ASSERT_OK(echo.Send(Value("quit")));
  absl::StatusOr<Value> answered = co_await echo.Join(kLong);
  CO_ASSERT_OK(answered);
  EXPECT_EQ(*answered, Value(n)) << "the far side applied each request exactly once";
}

// A task that collects the peer events it is sent, as "joined lost ...",
// until it is sent "stop".
Task<std::string> CollectEvents() {
  std::string events;
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive(kLong);
    if (!m.ok() || *m == Value("stop")) co_return events;
    const Value* p = SystemMessagePayload(*m, remote::kPeerEventMessage);
    events += p == nullptr ? "? " : (*p)["event"].as_string() + " ";
  }
}

// Until `node` has `n` peers (bounded): the side that did not dial learns
// of the connection a moment after the dialler.
Task<> AwaitPeers(remote::Node* node, size_t n) {
  for (int i = 0; i < 60'000 && node->peers().size() != n; ++i) {
    absl::Status slept = co_await Sleep(absl::Milliseconds(1));
    if (!slept.ok()) break;
  }
  EXPECT_EQ(node->peers().size(), n);
}

// Two nodes of this process, b dialling a through the proxy, three cuts
// under a flood both ways; in turn with each of the two as the pair's
// arbiter (the lower process id: it keeps the new stream at once, the other
// merges it into its session when told), so both paths of a reconnect run.
PICOS_CORO_TEST(RemoteReconnect, SeveralCutsUnderAFloodLoseAndDuplicateNothing) {
  const TransportRegistry& t = transports::DefaultTransports();
  for (int round = 0; round < 2; ++round) {
    absl::StatusOr<std::unique_ptr<remote::Node>> a =
        co_await remote::Node::Start(t, Options("tcp://127.0.0.1:0", round == 0 ? 1 : 2));
    CO_ASSERT_OK(a);
    absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options("", round == 0 ? 2 : 1));
    CO_ASSERT_OK(b);
    absl::StatusOr<std::unique_ptr<CutProxy>> proxy = co_await CutProxy::Start((*a)->uris()[0]);
    CO_ASSERT_OK(proxy);
    TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
    CO_ASSERT_OK(RegisterTask("echo", echo));
    TaskRef events = ThisScheduler().Spawn(CollectEvents);
    CO_ASSERT_OK(Channel((*a)->peer_events()).Subscribe(events));
    CO_ASSERT_OK(Channel((*b)->peer_events()).Subscribe(events));
    absl::StatusOr<TaskRef> far = co_await LocateTask("echo", Location::Peer((*proxy)->uri()), kLong);
    CO_ASSERT_OK(far);
    co_await AwaitPeers(a->get(), 1);
    co_await FloodThroughCuts(b->get(), proxy->get(), *far, 20'000, 3);
    EXPECT_GE((*a)->reconnects(), 3u);
    EXPECT_EQ((*a)->peers().size(), 1u);
    EXPECT_EQ((*b)->peers().size(), 1u);
    CO_ASSERT_OK(events.Send(Value("stop")));
    absl::StatusOr<Value> seen = co_await events.Join(kLong);
    CO_ASSERT_OK(seen);
    EXPECT_EQ(*seen, Value("joined joined ")) << "a reconnect is no peer event";
    (void)UnregisterTask("echo");  // released already if it ended
    b->reset();
    proxy->reset();
    a->reset();
  }
}

// A one-way flood (the receiver sends nothing back but acknowledgements)
// with a bound smaller than the flood: the receiver acknowledges without
// being asked, so the sender's unacknowledged batches are dropped and the
// flood goes through, with one cut halfway.
PICOS_CORO_TEST(RemoteReconnect, AOneWayFloodIsAcknowledgedAndGoesThrough) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(t, Options("tcp://127.0.0.1:0", 1));
  CO_ASSERT_OK(a);
  remote::NodeOptions ob = Options("", 2);
  ob.max_queued_frames = 20'000;
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, std::move(ob));
  CO_ASSERT_OK(b);
  absl::StatusOr<std::unique_ptr<CutProxy>> proxy = co_await CutProxy::Start((*a)->uris()[0]);
  CO_ASSERT_OK(proxy);
  constexpr int kFlood = 200'000;
  TaskRef sink = ThisScheduler().SpawnNamed("sink", []() -> Task<int64_t> {
    int64_t expected = 0;
    for (;;) {
      absl::StatusOr<Value> m = co_await Receive(kLong);
      if (!m.ok()) co_return -1;
      if (*m == Value("done")) co_return expected;
      if (*m != Value(expected)) co_return -1000 - expected;  // lost, duplicated or reordered
      ++expected;
    }
  });
  CO_ASSERT_OK(RegisterTask("sink", sink));
  absl::StatusOr<TaskRef> far = co_await LocateTask("sink", Location::Peer((*proxy)->uri()), kLong);
  CO_ASSERT_OK(far);
  int full = 0;
  for (int i = 0; i < kFlood; ++i) {
    absl::Status s;
    for (int tries = 0; tries < 60'000; ++tries) {
      s = far->Send(i);
      if (!absl::IsResourceExhausted(s)) break;
      ++full;
      absl::Status slept = co_await Sleep(absl::Milliseconds(1));
      CO_ASSERT_OK(slept);
    }
    CO_ASSERT_OK(s);
    if (i % 256 == 255) co_await Yield();
    if (i == kFlood / 2) (*proxy)->Cut();
  }
  Value done_msg("done");
  absl::Status done = co_await SendWhenRoom(*far, std::move(done_msg), absl::Seconds(60));
  CO_ASSERT_OK(done);
  absl::StatusOr<Value> counted = co_await sink.Join(kLong);
  CO_ASSERT_OK(counted);
  EXPECT_EQ(*counted, Value(kFlood));
  EXPECT_GT(full, 0) << "the bound was reached: what went through was acknowledged";
  EXPECT_EQ((*b)->reconnects(), 1u);
  (void)UnregisterTask("sink");
  b->reset();
  proxy->reset();
  a->reset();
}

// --- two processes ---

struct Server {
  std::unique_ptr<Process> process;
  std::string uri;
};

Task<absl::StatusOr<Server>> StartServer() {
  ProcessOptions p;
  p.program = "testing/remote_peer_server";
  p.args = {"--listen=tcp://127.0.0.1:0", "--lifetime=120s"};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "PICOS_REMOTE_SECRET=")) env.emplace_back(*e);
  }
  env.push_back(absl::StrCat("PICOS_REMOTE_SECRET=", kSecret));
  p.env = std::move(env);
  absl::StatusOr<std::unique_ptr<Process>> proc = Process::Spawn(std::move(p));
  if (!proc.ok()) co_return proc.status();
  Server s{*std::move(proc), ""};
  absl::StatusOr<std::string> line = co_await s.process->out().ReadLine(4096, kLong);
  if (!line.ok()) {
    (void)s.process->Kill(SIGKILL);
    co_return line.status();
  }
  absl::string_view l = *line;
  if (!absl::ConsumePrefix(&l, "listening ")) {
    (void)s.process->Kill(SIGKILL);
    co_return absl::InternalError(absl::StrCat("the server said: ", *line));
  }
  s.uri = std::string(absl::StripTrailingAsciiWhitespace(l));
  co_return s;
}

// Waits for the server to end by itself (when `expect_exit`), else ends it;
// kills it (its pid only) if it has not ended within the deadline.
Task<> Finish(Server& s, bool expect_exit) {
  if (!expect_exit) (void)s.process->Kill(SIGKILL);
  absl::StatusOr<ExitStatus> st = co_await s.process->Wait(kLong);
  if (!st.ok()) {
    ADD_FAILURE() << "the server did not end: " << st.status();
    (void)s.process->Kill(SIGKILL);
    (void)co_await s.process->Wait(kLong);
    co_return;
  }
  if (expect_exit) {
    EXPECT_TRUE(st->success()) << st->ToString();
  }
}

// This process floods the echo task of a second process through the proxy,
// which is cut three times meanwhile: every reply arrives once, in order,
// and the server answered each request once.
PICOS_CORO_TEST(RemoteReconnectTwoProcesses, CutsUnderAFloodLoseAndDuplicateNothing) {
  absl::StatusOr<Server> server = co_await StartServer();
  CO_ASSERT_OK(server);
  absl::StatusOr<std::unique_ptr<remote::Node>> me =
      co_await remote::Node::Start(transports::DefaultTransports(), Options("", 0));
  absl::StatusOr<std::unique_ptr<CutProxy>> proxy = co_await CutProxy::Start(server->uri);
  absl::StatusOr<TaskRef> echo = absl::UnknownError("no node or proxy");
  if (me.ok() && proxy.ok()) echo = co_await LocateTask("echo", Location::Peer((*proxy)->uri()), kLong);
  if (!echo.ok()) {
    ADD_FAILURE() << echo.status();
    co_await Finish(*server, false);
    co_return;
  }
  co_await FloodThroughCuts(me->get(), proxy->get(), *echo, 50'000, 3);
  me->reset();  // the server ends once its peer has gone and its echo task ended
  co_await Finish(*server, true);
}

// The peer process is killed while the link is cut, and another starts in
// its place: the redial reaches a process with another process id, so the
// old peer is lost (its monitors told, its pending Join failed) and the new
// one joins as a new peer.
PICOS_CORO_TEST(RemoteReconnectTwoProcesses, APeerThatRestartedIsANewPeer) {
  absl::StatusOr<Server> first = co_await StartServer();
  CO_ASSERT_OK(first);
  absl::StatusOr<std::unique_ptr<remote::Node>> me =
      co_await remote::Node::Start(transports::DefaultTransports(), Options("", 0));
  absl::StatusOr<std::unique_ptr<CutProxy>> proxy = co_await CutProxy::Start(first->uri);
  absl::StatusOr<TaskRef> echo = absl::UnknownError("no node or proxy");
  if (me.ok() && proxy.ok()) {
    (*proxy)->set_pass_end(false);  // the killed server's end reaches us as a cut link
    CO_ASSERT_OK(Channel((*me)->peer_events()).Subscribe(Self()));
    echo = co_await LocateTask("echo", Location::Peer((*proxy)->uri()), kLong);
  }
  if (!echo.ok()) {
    ADD_FAILURE() << echo.status();
    co_await Finish(*first, false);
    co_return;
  }
  CO_ASSERT_OK(Monitor(Self(), *echo));
  TaskRef joiner = ThisScheduler().Spawn([e = *echo]() -> Task<int> {
    absl::StatusOr<Value> r = co_await e.Join(kLong);
    co_return static_cast<int>(r.status().code());
  });
  co_await Finish(*first, false);  // SIGKILL; the redials now fail
  absl::StatusOr<Server> second = co_await StartServer();
  CO_ASSERT_OK(second);
  (*proxy)->set_target(second->uri);
  // The old peer: lost, told to its monitor and its joiner.
  std::string events;
  bool peer_lost = false;
  for (int i = 0; i < 10 && !(peer_lost && events == "joined lost joined "); ++i) {
    absl::StatusOr<Value> m = co_await Receive(kLong);
    CO_ASSERT_OK(m);
    if (const Value* p = SystemMessagePayload(*m, remote::kPeerEventMessage); p != nullptr) {
      events += (*p)["event"].as_string() + " ";
      if ((*p)["event"] == Value("lost")) {
        EXPECT_TRUE(absl::StrContains((*p)["reason"].as_string(), "restarted")) << (*p)["reason"].DebugString();
      }
      continue;
    }
    absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m);
    CO_ASSERT_OK(st);
    EXPECT_EQ(st->outcome, MonitorOutcome::kPeerLost);
    peer_lost = true;
  }
  EXPECT_TRUE(peer_lost);
  EXPECT_EQ(events, "joined lost joined ");
  absl::StatusOr<Value> j = co_await joiner.Join(kLong);
  CO_ASSERT_OK(j);
  EXPECT_EQ(*j, Value(static_cast<int>(absl::StatusCode::kUnavailable)));
  EXPECT_EQ((*me)->reconnects(), 0u) << "a new process is a new peer, not a reconnect";
  // The new peer serves as any.
  absl::StatusOr<TaskRef> echo2 = co_await LocateTask("echo", Location::Peer((*proxy)->uri()), kLong);
  CO_ASSERT_OK(echo2);
  EXPECT_NE(*echo2, *echo);
  CO_ASSERT_OK(echo2->Send(Value::Map({{"reply_to", Self()}, {"n", 7}})));
  absl::StatusOr<Value> reply = co_await Receive(kLong);
  CO_ASSERT_OK(reply);
  EXPECT_EQ((*reply)["n"], Value(7));
  CO_ASSERT_OK(echo2->Send(Value("quit")));
  (void)co_await echo2->Join(kLong);
  CO_ASSERT_OK(Channel((*me)->peer_events()).Unsubscribe(Self()));
  me->reset();
  proxy->reset();
  co_await Finish(*second, true);
}

// SIGKILL of the peer while a flood is under way: the redial finds nothing
// listening, so the peer is lost at once, well within the liveness bound
// (heartbeat_interval * heartbeat_misses, 5 s by default), not after the
// grace period.
PICOS_CORO_TEST(RemoteReconnectTwoProcesses, SigkillIsLostWithinTheLivenessBound) {
  absl::StatusOr<Server> server = co_await StartServer();
  CO_ASSERT_OK(server);
  remote::NodeOptions o = Options("", 0);
  o.reconnect_grace = absl::Seconds(5);
  o.heartbeat_interval = absl::Seconds(1);
  o.heartbeat_misses = 5;
  o.max_queued_frames = 10'000;  // the flood waits for the peer rather than fill memory
  absl::StatusOr<std::unique_ptr<remote::Node>> me =
      co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
  absl::StatusOr<TaskRef> echo = absl::UnknownError("no node");
  if (me.ok()) echo = co_await LocateTask("echo", Location::Peer(server->uri), kLong);
  if (!echo.ok()) {
    ADD_FAILURE() << echo.status();
    co_await Finish(*server, false);
    co_return;
  }
  CO_ASSERT_OK(Monitor(Self(), *echo));
  // The replies go to a task that counts them; this one hears the monitor.
  TaskRef replies = ThisScheduler().Spawn([]() -> Task<int64_t> {
    int64_t n = 0;
    for (;;) {
      absl::StatusOr<Value> m = co_await Receive(kLong);
      if (!m.ok() || *m == Value("stop")) co_return n;
      ++n;
    }
  });
  TaskRef flood = ThisScheduler().Spawn(Flood, *echo, replies, 1'000'000);
  absl::Status slept = co_await Sleep(absl::Milliseconds(100));  // the flood is under way
  EXPECT_OK(slept);
  const absl::Time killed = absl::Now();
  EXPECT_OK(server->process->Kill(SIGKILL));  // its pid only
  absl::StatusOr<Value> m = co_await Receive(kLong);
  CO_ASSERT_OK(m);
  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->outcome, MonitorOutcome::kPeerLost);
  EXPECT_LT(absl::Now() - killed, absl::Seconds(5)) << "lost within the liveness bound";
  absl::StatusOr<Value> flooded = co_await flood.Join(kLong);
  EXPECT_THAT(flooded.status(), StatusIs(absl::StatusCode::kUnavailable)) << "the flood's Send fails";
  CO_ASSERT_OK(replies.Send(Value("stop")));
  absl::StatusOr<Value> counted = co_await replies.Join(kLong);
  CO_ASSERT_OK(counted);
  EXPECT_GT(counted->as_int(), 0) << "the flood was under way";
  EXPECT_TRUE((*me)->peers().empty());
  me->reset();
  co_await Finish(*server, false);
}

// --- on the simulated clock (PICOS_SIM_TEST): grace and backoff expire
// after exactly the time they say, in milliseconds of real time ---

// Two nodes through the proxy; the proxy is cut and stops listening. b, the
// dialler, finds nothing listening and loses a at once; a, which cannot
// dial, waits for the grace period and loses b when it ends.
PICOS_SIM_TEST(RemoteReconnectVirtualTime, APeerThatNeverComesBackIsLostWhenTheGraceEnds) {
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeOptions oa = Options("tcp://127.0.0.1:0", 1);
  oa.reconnect_grace = absl::Seconds(20);
  oa.heartbeat_interval = absl::Seconds(1);
  oa.heartbeat_misses = 5;
  remote::NodeOptions ob = Options("", 2);
  ob.reconnect_grace = absl::Seconds(20);
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(t, std::move(oa));
  CO_ASSERT_OK(a);
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, std::move(ob));
  CO_ASSERT_OK(b);
  absl::StatusOr<std::unique_ptr<CutProxy>> proxy = co_await CutProxy::Start((*a)->uris()[0]);
  CO_ASSERT_OK(proxy);
  CO_ASSERT_OK((co_await (*b)->Connect((*proxy)->uri())));
  co_await AwaitPeers(a->get(), 1);
  TaskRef watch_a = ThisScheduler().Spawn([]() -> Task<int64_t> {
    for (;;) {
      absl::StatusOr<Value> m = co_await Receive(absl::Hours(1));
      if (!m.ok()) co_return -1;
      const Value* p = SystemMessagePayload(*m, remote::kPeerEventMessage);
      if (p != nullptr && (*p)["event"] != Value("joined")) co_return ThisScheduler().NowNs();
    }
  });
  TaskRef watch_b = ThisScheduler().Spawn([]() -> Task<int64_t> {
    for (;;) {
      absl::StatusOr<Value> m = co_await Receive(absl::Hours(1));
      if (!m.ok()) co_return -1;
      const Value* p = SystemMessagePayload(*m, remote::kPeerEventMessage);
      if (p != nullptr && ((*p)["event"] == Value("lost") || (*p)["event"] == Value("left"))) {
        co_return ThisScheduler().NowNs();
      }
    }
  });
  CO_ASSERT_OK(Channel((*a)->peer_events()).Subscribe(watch_a));
  CO_ASSERT_OK(Channel((*b)->peer_events()).Subscribe(watch_b));
  const int64_t cut_ns = ThisScheduler().NowNs();
  (*proxy)->StopListening();
  (*proxy)->Cut();
  absl::StatusOr<Value> b_lost = co_await watch_b.Join(absl::Hours(1));
  CO_ASSERT_OK(b_lost);
  EXPECT_LT(absl::Nanoseconds(b_lost->as_int() - cut_ns), absl::Milliseconds(100))
      << "the redial was refused: lost at once";
  absl::StatusOr<Value> a_lost = co_await watch_a.Join(absl::Hours(1));
  CO_ASSERT_OK(a_lost);
  const absl::Duration waited = absl::Nanoseconds(a_lost->as_int() - cut_ns);
  EXPECT_GE(waited, absl::Seconds(20));
  EXPECT_LT(waited, absl::Seconds(20) + absl::Milliseconds(100)) << "lost when the grace period ends";
  EXPECT_TRUE((*a)->peers().empty());
  EXPECT_TRUE((*b)->peers().empty());
  EXPECT_EQ((*a)->reconnects(), 0u);
  b->reset();
  proxy->reset();
  a->reset();
}

// The proxy swallows every new connection (it accepts, then says nothing):
// b redials again and again, each handshake bounded by what is left of the
// grace period, with backoff between, and loses a when the grace ends.
PICOS_SIM_TEST(RemoteReconnectVirtualTime, TheDiallerRetriesWithBackoffUntilTheGraceEnds) {
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeOptions oa = Options("tcp://127.0.0.1:0", 1);
  oa.reconnect_grace = absl::Seconds(8);
  remote::NodeOptions ob = Options("", 2);
  ob.reconnect_grace = absl::Seconds(5);
  ob.handshake_timeout = absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(t, std::move(oa));
  CO_ASSERT_OK(a);
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, std::move(ob));
  CO_ASSERT_OK(b);
  absl::StatusOr<std::unique_ptr<CutProxy>> proxy = co_await CutProxy::Start((*a)->uris()[0]);
  CO_ASSERT_OK(proxy);
  CO_ASSERT_OK((co_await (*b)->Connect((*proxy)->uri())));
  co_await AwaitPeers(a->get(), 1);
  CO_ASSERT_OK(Channel((*b)->peer_events()).Subscribe(Self()));
  const int accepted_before = (*proxy)->accepted();
  const int64_t cut_ns = ThisScheduler().NowNs();
  (*proxy)->set_forwarding(false);
  (*proxy)->Cut();
  absl::StatusOr<Value> m = co_await Receive(absl::Hours(1));
  CO_ASSERT_OK(m);
  const Value* p = SystemMessagePayload(*m, remote::kPeerEventMessage);
  CO_ASSERT_TRUE(p != nullptr);
  EXPECT_EQ((*p)["event"], Value("lost"));
  EXPECT_TRUE(absl::StrContains((*p)["reason"].as_string(), "not reconnected within 5s"))
      << (*p)["reason"].DebugString();
  const absl::Duration waited = absl::Nanoseconds(ThisScheduler().NowNs() - cut_ns);
  EXPECT_GE(waited, absl::Seconds(5));
  EXPECT_LT(waited, absl::Seconds(5) + absl::Milliseconds(100));
  // Handshakes of 1 s, backoff of 10, 20, 40 ... ms: five dials in 5 s.
  EXPECT_GE((*proxy)->accepted() - accepted_before, 4);
  EXPECT_LE((*proxy)->accepted() - accepted_before, 6);
  EXPECT_TRUE((*b)->peers().empty());
  b->reset();
  proxy->reset();
  a->reset();
}

// Reconnected within the grace period on the simulated clock: the session
// goes on, a Join pending across the cut completes, and no peer event says
// anything happened.
PICOS_SIM_TEST(RemoteReconnectVirtualTime, AJoinPendingAcrossACutCompletes) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(t, Options("tcp://127.0.0.1:0", 2));
  CO_ASSERT_OK(a);
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options("", 1));
  CO_ASSERT_OK(b);
  absl::StatusOr<std::unique_ptr<CutProxy>> proxy = co_await CutProxy::Start((*a)->uris()[0]);
  CO_ASSERT_OK(proxy);
  TaskRef sleeper = ThisScheduler().SpawnNamed("sleeper", []() -> Task<int64_t> {
    absl::Status slept = co_await Sleep(absl::Seconds(3));
    co_return slept.ok() ? 42 : -1;
  });
  CO_ASSERT_OK(RegisterTask("sleeper", sleeper));
  absl::StatusOr<TaskRef> far = co_await LocateTask("sleeper", Location::Peer((*proxy)->uri()), kLong);
  CO_ASSERT_OK(far);
  TaskRef joiner = ThisScheduler().Spawn([f = *far]() -> Task<int64_t> {
    absl::StatusOr<Value> r = co_await f.Join(absl::Hours(1));
    co_return r.ok() ? r->as_int() : -static_cast<int64_t>(r.status().code());
  });
  absl::Status slept = co_await Sleep(absl::Seconds(1));  // the join is there
  CO_ASSERT_OK(slept);
  (*proxy)->Cut();
  absl::StatusOr<Value> joined = co_await joiner.Join(absl::Hours(1));
  CO_ASSERT_OK(joined);
  EXPECT_EQ(*joined, Value(42));
  EXPECT_EQ((*b)->reconnects(), 1u);
  EXPECT_EQ((*a)->reconnects(), 1u);
  EXPECT_EQ((*b)->peers().size(), 1u);
  (void)UnregisterTask("sleeper");
  b->reset();
  proxy->reset();
  a->reset();
}

}  // namespace
}  // namespace picos::testing
