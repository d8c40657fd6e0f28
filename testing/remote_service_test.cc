// Remote services (core/remote/service.h) between two nodes of this process
// over a Unix socket (here, not beside the code: it needs the real
// transports, above the remote layer): node "a" serves, node "b" (client only) locates and runs. The two
// claim different process ids, so every handle crosses as it would between
// processes. Every wait has a deadline only a hang reaches.
#include "core/remote/service.h"

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/kernel/monitor.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/system_message.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/wire/value_codec.h"
#include "testing/coro_test.h"
#include "transports/default_transports.h"

namespace picos::remote {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kSecret[] = "services between two nodes, one secret";
constexpr absl::Duration kLong = absl::Seconds(60);  // only a hang reaches it

NodeOptions Options(std::string listen, char pid_tweak) {
  NodeOptions o;
  o.secret = kSecret;
  if (!listen.empty()) o.listen.push_back(std::move(listen));
  o.handshake_timeout = kLong;
  o.connect_timeout = kLong;
  o.process_id = ProcessId();
  o.process_id[0] = static_cast<char>(o.process_id[0] ^ pid_tweak);
  return o;
}

std::string UnixName(const char* what) {
  return absl::StrCat("unix://@picos-service-test-", getpid(), "-", what);
}

// Two nodes: a serves (listens), b is a client; b was started last, so
// Locate at a peer goes through b.
struct Pair {
  std::unique_ptr<Node> a;
  std::unique_ptr<Node> b;
  Location at_a() const { return Location::Peer(a->uris()[0]); }
};

Task<absl::StatusOr<Pair>> StartPair(const char* what) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<Node>> a = co_await Node::Start(t, Options(UnixName(what), 1));
  if (!a.ok()) co_return a.status();
  absl::StatusOr<std::unique_ptr<Node>> b = co_await Node::Start(t, Options("", 2));
  if (!b.ok()) co_return b.status();
  co_return Pair{*std::move(a), *std::move(b)};
}

// n -> n*n; a non-integer is an error.
Task<absl::StatusOr<Value>> Square(Value arg) {
  absl::StatusOr<int64_t> n = arg.As<int64_t>();
  if (!n.ok()) co_return n.status();
  co_return Value(*n * *n);
}

// Answers one message {"reply_to", "n"} with n+1 sent to reply_to, then
// returns "answered".
Task<absl::StatusOr<Value>> AnswerOne(Value) {
  absl::StatusOr<Value> m = co_await Receive(kLong);
  if (!m.ok()) co_return m.status();
  TaskRef reply_to;
  int64_t n = 0;
  PICOS_CO_RETURN_IF_ERROR(MessageReader(*m).Get("reply_to", &reply_to).Get("n", &n).status());
  PICOS_CO_RETURN_IF_ERROR(reply_to.Send(Value(n + 1)));
  co_return Value("answered");
}

// Waits for a message that never comes (until terminated).
Task<absl::StatusOr<Value>> WaitForever(Value) {
  absl::StatusOr<Value> m = co_await Receive(kLong);
  if (!m.ok()) co_return m.status();
  co_return Value("woken");
}

PICOS_CORO_TEST(Service, RunsRemotelyAndJoinsItsValueHoweverLate) {
  absl::StatusOr<Pair> p = co_await StartPair("run");
  CO_ASSERT_OK(p);
  absl::StatusOr<RegisteredService> reg = RegisterService("square", Square);
  CO_ASSERT_OK(reg);
  absl::StatusOr<Service> svc = co_await Service::Locate("square", p->at_a(), kLong);
  CO_ASSERT_OK(svc);
  EXPECT_NE(GetTaskProxy(svc->server()), nullptr) << "the server is on the other node";
  absl::StatusOr<TaskRef> t = co_await svc->Run(Value(7));
  CO_ASSERT_OK(t);
  EXPECT_NE(GetTaskProxy(*t), nullptr);
  EXPECT_EQ(t->name(), "square");
  // The function ends at once; the join comes long after.
  absl::Status slept = co_await Sleep(absl::Milliseconds(50));
  EXPECT_OK(slept);
  absl::StatusOr<Value> r = co_await t->Join(kLong);
  EXPECT_THAT(r, IsOk());
  if (r.ok()) { EXPECT_EQ(*r, Value(49)); }
  absl::StatusOr<Value> again = co_await t->Join(kLong);
  EXPECT_TRUE(again.ok() && *again == Value(49)) << "joined twice, the same value";
  EXPECT_EQ(t->state(), TaskState::kDone);
  // A monitor placed after the end still hears it, once.
  CO_ASSERT_OK(Monitor(Self(), *t));
  absl::StatusOr<Value> m = co_await Receive(kLong);
  CO_ASSERT_OK(m);
  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->outcome, MonitorOutcome::kValue);
  EXPECT_EQ(st->value, Value(49));
  EXPECT_EQ(st->id, t->id());
  // Many at once, each its own value.
  std::vector<TaskRef> many;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<TaskRef> ti = co_await svc->Run(Value(i));
    CO_ASSERT_OK(ti);
    many.push_back(*ti);
  }
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<Value> ri = co_await many[i].Join(kLong);
    EXPECT_TRUE(ri.ok() && *ri == Value(i * i)) << i;
  }
  reg->Unregister();
  p->b.reset();
  p->a.reset();
}

PICOS_CORO_TEST(Service, TheStartedTaskIsMessagedAndAnswers) {
  absl::StatusOr<Pair> p = co_await StartPair("msg");
  CO_ASSERT_OK(p);
  absl::StatusOr<RegisteredService> reg = RegisterService("answer", AnswerOne);
  CO_ASSERT_OK(reg);
  absl::StatusOr<Service> svc = co_await Service::Locate("answer", p->at_a(), kLong);
  CO_ASSERT_OK(svc);
  absl::StatusOr<TaskRef> t = co_await svc->Run(Value());
  CO_ASSERT_OK(t);
  CO_ASSERT_OK(t->Send(Value::Map({{"reply_to", Self()}, {"n", 41}})));
  absl::StatusOr<Value> reply = co_await Receive(kLong);
  CO_ASSERT_OK(reply);
  EXPECT_EQ(*reply, Value(42));
  absl::StatusOr<Value> r = co_await t->Join(kLong);
  EXPECT_TRUE(r.ok() && *r == Value("answered")) << (r.ok() ? r->DebugString() : r.status().ToString());
  EXPECT_NE(GetTaskProxy(NetworkHandle(*t)), nullptr);
  EXPECT_NE(NetworkHandle(*t), *t) << "the node's own handle, for messages";
  EXPECT_EQ(NetworkHandle(*t).id(), t->id());
  reg->Unregister();
  p->b.reset();
  p->a.reset();
}

PICOS_CORO_TEST(Service, AnErrorOfTheFunctionComesBackFromJoin) {
  absl::StatusOr<Pair> p = co_await StartPair("err");
  CO_ASSERT_OK(p);
  absl::StatusOr<RegisteredService> reg = RegisterService("square", Square);
  CO_ASSERT_OK(reg);
  absl::StatusOr<Service> svc = co_await Service::Locate("square", p->at_a(), kLong);
  CO_ASSERT_OK(svc);
  absl::StatusOr<TaskRef> t = co_await svc->Run(Value("not a number"));
  CO_ASSERT_OK(t);
  absl::StatusOr<Value> r = co_await t->Join(kLong);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  reg->Unregister();
  p->b.reset();
  p->a.reset();
}

PICOS_CORO_TEST(Service, ARefusedRequestGivesTheRefusalAndTheServiceGoesOn) {
  absl::StatusOr<Pair> p = co_await StartPair("refuse");
  CO_ASSERT_OK(p);
  ServiceOptions o;
  o.admit = [](const Value& arg) -> absl::Status {
    if (!arg.is_int() || arg.as_int() < 0) return absl::PermissionDeniedError("only naturals here");
    return absl::OkStatus();
  };
  o.max_running = 1;
  absl::StatusOr<RegisteredService> reg = RegisterService("naturals", WaitForever, std::move(o));
  CO_ASSERT_OK(reg);
  absl::StatusOr<Service> svc = co_await Service::Locate("naturals", p->at_a(), kLong);
  CO_ASSERT_OK(svc);
  absl::StatusOr<TaskRef> bad = co_await svc->Run(Value(-3));
  EXPECT_THAT(bad.status(), StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("only naturals")));
  absl::StatusOr<TaskRef> good = co_await svc->Run(Value(3));
  CO_ASSERT_OK(good);
  absl::StatusOr<TaskRef> over = co_await svc->Run(Value(4));
  EXPECT_THAT(over.status(), StatusIs(absl::StatusCode::kResourceExhausted)) << "max_running is 1";
  CO_ASSERT_OK(good->Send(Value("wake")));
  absl::StatusOr<Value> r = co_await good->Join(kLong);
  EXPECT_TRUE(r.ok() && *r == Value("woken"));
  absl::StatusOr<TaskRef> next = co_await svc->Run(Value(5));
  CO_ASSERT_OK(next);  // room again once the first ended
  CO_ASSERT_OK(next->Send(Value("wake")));
  r = co_await next->Join(kLong);
  EXPECT_TRUE(r.ok() && *r == Value("woken"));
  reg->Unregister();
  p->b.reset();
  p->a.reset();
}

PICOS_CORO_TEST(Service, OnlyRegisteredServicesRun) {
  absl::StatusOr<Pair> p = co_await StartPair("unreg");
  CO_ASSERT_OK(p);
  absl::StatusOr<Service> none = co_await Service::Locate("nobody", p->at_a(), absl::Milliseconds(100));
  EXPECT_THAT(none.status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(RegisterService("", Square).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<RegisteredService> reg = RegisterService("square", Square);
  CO_ASSERT_OK(reg);
  EXPECT_THAT(RegisterService("square", Square).status(), StatusIs(absl::StatusCode::kAlreadyExists));
  absl::StatusOr<Service> svc = co_await Service::Locate("square", p->at_a(), kLong);
  CO_ASSERT_OK(svc);
  // One round trip first, so that the Service's monitor of the server has
  // reached it (a remote Monitor of a task that has already ended is never
  // answered by this version of the node).
  absl::StatusOr<TaskRef> one = co_await svc->Run(Value(3));
  CO_ASSERT_OK(one);
  absl::StatusOr<Value> nine = co_await one->Join(kLong);
  EXPECT_TRUE(nine.ok() && *nine == Value(9));
  reg->Unregister();
  absl::StatusOr<Service> gone = co_await Service::Locate("square", p->at_a(), absl::Milliseconds(100));
  EXPECT_THAT(gone.status(), StatusIs(absl::StatusCode::kNotFound));
  absl::StatusOr<TaskRef> late = co_await svc->Run(Value(2), kLong);
  EXPECT_THAT(late.status(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("unregistered")));
  p->b.reset();
  p->a.reset();
}

PICOS_CORO_TEST(Service, MonitorGetsOneStatusPerStartedTask) {
  absl::StatusOr<Pair> p = co_await StartPair("mon");
  CO_ASSERT_OK(p);
  absl::StatusOr<RegisteredService> sq = RegisterService("square", Square);
  CO_ASSERT_OK(sq);
  absl::StatusOr<RegisteredService> wait = RegisterService("wait", WaitForever);
  CO_ASSERT_OK(wait);
  absl::StatusOr<Service> square = co_await Service::Locate("square", p->at_a(), kLong);
  CO_ASSERT_OK(square);
  absl::StatusOr<Service> waiter = co_await Service::Locate("wait", p->at_a(), kLong);
  CO_ASSERT_OK(waiter);
  square->SetMonitor(Self());
  waiter->SetMonitor(Self());
  absl::StatusOr<TaskRef> v = co_await square->Run(Value(6));
  CO_ASSERT_OK(v);
  absl::StatusOr<TaskRef> e = co_await square->Run(Value("six"));
  CO_ASSERT_OK(e);
  absl::StatusOr<TaskRef> k = co_await waiter->Run(Value());
  CO_ASSERT_OK(k);
  CO_ASSERT_OK(k->Terminate());
  absl::flat_hash_map<uint64_t, MonitorStatus> seen;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Value> m = co_await Receive(kLong);
    CO_ASSERT_OK(m);
    absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m);
    CO_ASSERT_OK(st);
    EXPECT_TRUE(seen.emplace(st->id, *st).second) << "one status per task";
  }
  CO_ASSERT_TRUE(seen.contains(v->id()) && seen.contains(e->id()) && seen.contains(k->id()));
  EXPECT_EQ(seen[v->id()].outcome, MonitorOutcome::kValue);
  EXPECT_EQ(seen[v->id()].value, Value(36));
  EXPECT_EQ(seen[v->id()].name, "square");
  EXPECT_EQ(seen[e->id()].outcome, MonitorOutcome::kError);
  EXPECT_EQ(seen[e->id()].error.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(seen[k->id()].outcome, MonitorOutcome::kTerminated);
  EXPECT_EQ(seen[v->id()].task, NetworkHandle(*v)) << "the task's own handle";
  absl::StatusOr<Value> nothing = co_await Receive(absl::Milliseconds(100));
  EXPECT_THAT(nothing.status(), StatusIs(absl::StatusCode::kDeadlineExceeded)) << "no fourth";
  sq->Unregister();
  wait->Unregister();
  p->b.reset();
  p->a.reset();
}

PICOS_CORO_TEST(Service, CloseTerminatesTheTasksItStarted) {
  absl::StatusOr<Pair> p = co_await StartPair("close");
  CO_ASSERT_OK(p);
  absl::StatusOr<RegisteredService> reg = RegisterService("wait", WaitForever);
  CO_ASSERT_OK(reg);
  absl::StatusOr<Service> svc = co_await Service::Locate("wait", p->at_a(), kLong);
  CO_ASSERT_OK(svc);
  std::vector<TaskRef> started;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<TaskRef> t = co_await svc->Run(Value(i));
    CO_ASSERT_OK(t);
    started.push_back(*t);
  }
  CO_ASSERT_OK(started[0].Send(Value("wake")));
  absl::StatusOr<Value> first = co_await started[0].Join(kLong);
  EXPECT_TRUE(first.ok() && *first == Value("woken"));
  EXPECT_OK(svc->Close());
  for (int i = 1; i < 3; ++i) {
    absl::StatusOr<Value> r = co_await started[i].Join(kLong);
    EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kCancelled)) << i;
  }
  absl::StatusOr<TaskRef> after = co_await svc->Run(Value(9));
  EXPECT_THAT(after.status(), StatusIs(absl::StatusCode::kFailedPrecondition));
  reg->Unregister();
  p->b.reset();
  p->a.reset();
}

PICOS_CORO_TEST(Service, MalformedRequestsAreRefusedAndTheServerKeepsServing) {
  absl::StatusOr<Pair> p = co_await StartPair("bad");
  CO_ASSERT_OK(p);
  absl::StatusOr<RegisteredService> reg = RegisterService("square", Square);
  CO_ASSERT_OK(reg);
  absl::StatusOr<TaskRef> server =
      co_await LocateTask(std::string(kServiceTaskPrefix) + "square", p->at_a(), kLong);
  CO_ASSERT_OK(server);
  // No usable reply_to: dropped (and logged).
  CO_ASSERT_OK(server->Send(Value(1)));
  CO_ASSERT_OK(server->Send(Value::Map({{"op", "run"}})));
  CO_ASSERT_OK(server->Send(Value::Map({{"op", "run"}, {"req", 1}, {"reply_to", "me"}, {"arg", 2}})));
  CO_ASSERT_OK(server->Send(Value::Map({{"op", "run"}, {"req", 1}, {"reply_to", TaskRef()}, {"arg", 2}})));
  // A reply_to but something else wrong: refused to it, with the reason.
  CO_ASSERT_OK(server->Send(Value::Map({{"op", "run"}, {"req", 2}, {"reply_to", Self()}})));
  CO_ASSERT_OK(server->Send(Value::Map({{"op", "launch"}, {"req", 3}, {"reply_to", Self()}, {"arg", 2}})));
  CO_ASSERT_OK(server->Send(Value::Map({{"op", "run"}, {"req", -4}, {"reply_to", Self()}, {"arg", 2}})));
  CO_ASSERT_OK(
      server->Send(Value::Map({{"op", "run"}, {"req", 5}, {"reply_to", Self()}, {"arg", 2}, {"monitor", 7}})));
  // In the order sent; req -4 (not a uint) is refused as req 0.
  for (int want : {2, 3, 0, 5}) {
    absl::StatusOr<Value> m = co_await Receive(kLong);
    CO_ASSERT_OK(m);
    uint64_t req = 0;
    CO_ASSERT_OK(MessageReader(*m).Get("req", &req).status());
    EXPECT_EQ(req, static_cast<uint64_t>(want));
    EXPECT_EQ(m->Find("task"), nullptr) << m->DebugString();
    CO_ASSERT_TRUE(m->Find("error") != nullptr);
    EXPECT_EQ((*m)["error"]["code"], Value(static_cast<int>(absl::StatusCode::kInvalidArgument)))
        << m->DebugString();
  }
  // ... and the service still runs.
  absl::StatusOr<Service> svc = co_await Service::Locate("square", p->at_a(), kLong);
  CO_ASSERT_OK(svc);
  absl::StatusOr<TaskRef> t = co_await svc->Run(Value(12));
  CO_ASSERT_OK(t);
  absl::StatusOr<Value> r = co_await t->Join(kLong);
  EXPECT_TRUE(r.ok() && *r == Value(144));
  reg->Unregister();
  p->b.reset();
  p->a.reset();
}

// A server that takes requests and never answers: what a peer that is lost
// before its reply looks like from the client.
Task<> Swallow() {
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<Value> m = co_await Receive(kLong);
    if (!m.ok()) co_return;
  }
}

PICOS_CORO_TEST(Service, APeerLostBeforeItsReplyFailsTheRunWithUnavailable) {
  absl::StatusOr<Pair> p = co_await StartPair("lost");
  CO_ASSERT_OK(p);
  TaskRef swallow = ThisScheduler().SpawnNamed("swallow", Swallow);
  CO_ASSERT_OK(RegisterTask(std::string(kServiceTaskPrefix) + "slow", swallow));
  absl::StatusOr<Service> svc = co_await Service::Locate("slow", p->at_a(), kLong);
  CO_ASSERT_OK(svc);
  TaskRef runner = ThisScheduler().Spawn([s = *svc]() mutable -> Task<int> {
    absl::StatusOr<TaskRef> t = co_await s.Run(Value(1), kLong);
    co_return static_cast<int>(t.status().code());
  });
  absl::Status slept = co_await Sleep(absl::Milliseconds(50));  // the request is there
  EXPECT_OK(slept);
  EXPECT_NE(runner.state(), TaskState::kDone) << "waiting for a reply";
  p->a.reset();  // the peer goes
  const int64_t before = ThisScheduler().NowNs();
  absl::StatusOr<Value> code = co_await runner.Join(kLong);
  CO_ASSERT_OK(code);
  EXPECT_EQ(*code, Value(static_cast<int>(absl::StatusCode::kUnavailable)));
  EXPECT_LT(ThisScheduler().NowNs() - before, absl::ToInt64Nanoseconds(absl::Seconds(30)))
      << "at once, not at the Run's timeout";
  absl::StatusOr<TaskRef> later = co_await svc->Run(Value(2), kLong);
  EXPECT_THAT(later.status(), StatusIs(absl::StatusCode::kUnavailable));
  (void)swallow.Terminate();
  (void)co_await swallow.Join(kLong);
  p->b.reset();
}

PICOS_CORO_TEST(Service, LocatedAnywhereAmongConnectedPeers) {
  absl::StatusOr<Pair> p = co_await StartPair("anywhere");
  CO_ASSERT_OK(p);
  absl::StatusOr<RegisteredService> reg = RegisterService("square", Square);
  CO_ASSERT_OK(reg);
  CO_ASSERT_OK(co_await p->b->Connect(p->a->uris()[0]));
  absl::StatusOr<Service> svc = co_await Service::Locate("square", Location::Anywhere(), kLong);
  CO_ASSERT_OK(svc);
  absl::StatusOr<TaskRef> t = co_await svc->Run(Value(-5));
  CO_ASSERT_OK(t);
  absl::StatusOr<Value> r = co_await t->Join(kLong);
  EXPECT_TRUE(r.ok() && *r == Value(25));
  reg->Unregister();
  p->b.reset();
  p->a.reset();
}

// A run request sent by hand, whose task is never started by its client:
// it ends after start_timeout without running the function, and leaves
// room for others.
PICOS_CORO_TEST(Service, ATaskItsClientNeverStartsEndsWithoutRunning) {
  auto ran = std::make_shared<int>(0);
  ServiceOptions o;
  o.start_timeout = absl::Milliseconds(50);
  o.max_running = 1;
  absl::StatusOr<RegisteredService> reg = RegisterService(
      "counted",
      [ran](Value arg) -> Task<absl::StatusOr<Value>> {
        ++*ran;
        return Square(std::move(arg));
      },
      std::move(o));
  CO_ASSERT_OK(reg);
  Value request = Value::Map({{"op", "run"}, {"req", 1}, {"reply_to", Self()}, {"arg", 3}});
  CO_ASSERT_OK(reg->server().Send(std::move(request)));
  absl::StatusOr<Value> reply = co_await Receive(kLong);
  CO_ASSERT_OK(reply);
  CO_ASSERT_TRUE((*reply)["task"].is_task());
  TaskRef t = (*reply)["task"].as_task();
  absl::StatusOr<Value> r = co_await t.Join(kLong);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("never started")));
  EXPECT_EQ(*ran, 0) << "the function did not run";
  // Started as a Service does it, the next one runs.
  absl::StatusOr<Service> svc = co_await Service::Locate("counted", Location::Local(), kLong);
  CO_ASSERT_OK(svc);
  absl::StatusOr<TaskRef> ok = co_await svc->Run(Value(4));
  CO_ASSERT_OK(ok);
  r = co_await ok->Join(kLong);
  EXPECT_TRUE(r.ok() && *r == Value(16));
  EXPECT_EQ(*ran, 1);
  reg->Unregister();
}

PICOS_CORO_TEST(Service, ARunningTaskWhosePeerIsLostGivesUnavailableAndPeerLost) {
  absl::StatusOr<Pair> p = co_await StartPair("lostrun");
  CO_ASSERT_OK(p);
  // The started task, as its own node knows it: the test ends it at the end
  // (it lives on, in this process, after its node has gone).
  auto started = std::make_shared<TaskRef>();
  absl::StatusOr<RegisteredService> reg =
      RegisterService("wait", [started](Value arg) -> Task<absl::StatusOr<Value>> {
        *started = Self();
        return WaitForever(std::move(arg));
      });
  CO_ASSERT_OK(reg);
  absl::StatusOr<Service> svc = co_await Service::Locate("wait", p->at_a(), kLong);
  CO_ASSERT_OK(svc);
  absl::StatusOr<TaskRef> t = co_await svc->Run(Value());
  CO_ASSERT_OK(t);
  CO_ASSERT_OK(Monitor(Self(), *t));
  for (int i = 0; i < 1000 && !started->valid(); ++i) {
    absl::Status slept = co_await Sleep(absl::Milliseconds(1));  // until its start message is there
    EXPECT_OK(slept);
  }
  CO_ASSERT_TRUE(started->valid());
  TaskRef joiner = ThisScheduler().Spawn([t = *t]() -> Task<int> {
    absl::StatusOr<Value> r = co_await t.Join(kLong);
    co_return static_cast<int>(r.status().code());
  });
  reg->Unregister();  // the started task goes on (until its node goes)
  p->a.reset();       // the peer goes
  absl::StatusOr<Value> m = co_await Receive(kLong);
  CO_ASSERT_OK(m);
  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*m);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->outcome, MonitorOutcome::kPeerLost);
  EXPECT_EQ(st->id, t->id());
  absl::StatusOr<Value> code = co_await joiner.Join(kLong);
  CO_ASSERT_OK(code);
  EXPECT_EQ(*code, Value(static_cast<int>(absl::StatusCode::kUnavailable)));
  EXPECT_EQ(t->state(), TaskState::kDone);
  EXPECT_THAT(t->Send(1), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(svc->Close(), IsOk()) << "nothing left to terminate";
  EXPECT_NE(started->state(), TaskState::kDone) << "the task itself never ended";
  CO_ASSERT_OK(started->Terminate());
  (void)co_await started->Join(kLong);
  p->b.reset();
}

}  // namespace
}  // namespace picos::remote
