// Join and Monitor from another peer that reach a task after it ended
// (core/remote/node.h): they get what a local Join or Monitor gets, the
// value or error and the MonitorStatus, while the task is among the
// kEndedTasksKept exported tasks that ended last (core/wire/value_codec.h);
// beyond that, kFailedPrecondition, and the monitor still hears an answer.
// Two nodes in this process over a Unix socket; the task's end is checked on
// its own side before the remote call is made, so the frame always arrives
// late. Every wait has a deadline only a hang reaches.
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/kernel/monitor.h"
#include "core/kernel/naming.h"
#include "core/kernel/proxy.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/wire/value_codec.h"
#include "testing/coro_test.h"
#include "transports/default_transports.h"

namespace picos::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSecret[] = "late joins get the result";
constexpr absl::Duration kLong = absl::Seconds(60);  // only a hang reaches it

// Ends when told, with `n` or with an error for a negative `n`.
Task<absl::StatusOr<Value>> EndWhenTold(int64_t n) {
  absl::StatusOr<Value> go = co_await Receive(kLong);
  if (!go.ok()) co_return go.status();
  if (n < 0) co_return absl::DataLossError(absl::StrCat("failed with ", n));
  co_return Value(n);
}

Task<int64_t> Return(int64_t n) { co_return n; }

remote::NodeOptions Options(std::string listen, char pid_tweak) {
  remote::NodeOptions o;
  o.secret = kSecret;
  if (!listen.empty()) o.listen.push_back(std::move(listen));
  o.handshake_timeout = kLong;
  o.connect_timeout = kLong;
  o.process_id = ProcessId();
  o.process_id[0] = static_cast<char>(o.process_id[0] ^ pid_tweak);
  return o;
}

std::string UnixName(const char* what) {
  return absl::StrCat("unix://@picos-late-join-test-", getpid(), "-", what);
}

struct Pair {
  std::unique_ptr<remote::Node> a;  // the tasks' side
  std::unique_ptr<remote::Node> b;  // the joiner's side
};

Task<absl::StatusOr<Pair>> StartPair(const char* name) {
  const TransportRegistry& t = transports::DefaultTransports();
  absl::StatusOr<std::unique_ptr<remote::Node>> a = co_await remote::Node::Start(t, Options(UnixName(name), 1));
  if (!a.ok()) co_return a.status();
  absl::StatusOr<std::unique_ptr<remote::Node>> b = co_await remote::Node::Start(t, Options("", 2));
  if (!b.ok()) co_return b.status();
  co_return Pair{*std::move(a), *std::move(b)};
}

// Spawns EndWhenTold(n) under `name`, locates it from node b (so that the
// handle crosses), ends it, and waits on its own side until it has ended.
// Gives b's handle of it.
Task<absl::StatusOr<TaskRef>> EndedRemoteTask(const Pair& p, std::string name, int64_t n) {
  TaskRef local = ThisScheduler().SpawnNamed(name, EndWhenTold, n);
  PICOS_CO_RETURN_IF_ERROR(RegisterTask(name, local));
  absl::StatusOr<TaskRef> far = co_await LocateTask(name, Location::Peer(p.a->uris()[0]), kLong);
  if (!far.ok()) co_return far.status();
  EXPECT_NE(GetTaskProxy(*far), nullptr) << "b's handle is a proxy";
  PICOS_CO_RETURN_IF_ERROR(far->Send(Value("go")));
  absl::StatusOr<Value> here = co_await local.Join(kLong);  // ended on its own side
  EXPECT_EQ(here.ok(), n >= 0);
  EXPECT_TRUE(local.done());
  co_return *far;
}

Task<absl::StatusOr<MonitorStatus>> MonitorAndHear(TaskRef watched) {
  PICOS_CO_RETURN_IF_ERROR(Monitor(Self(), watched));
  absl::StatusOr<Value> msg = co_await Receive(kLong);
  if (!msg.ok()) co_return msg.status();
  co_return MonitorStatus::FromValue(*msg);
}

PICOS_CORO_TEST(RemoteLateJoin, JoinAfterTheEndGivesTheValueOrError) {
  absl::StatusOr<Pair> p = co_await StartPair("join");
  CO_ASSERT_OK(p);
  absl::StatusOr<TaskRef> ok = co_await EndedRemoteTask(*p, "late-value", 42);
  CO_ASSERT_OK(ok);
  absl::StatusOr<Value> v = co_await ok->Join(kLong);
  CO_ASSERT_OK(v);
  EXPECT_EQ(*v, Value(42));
  // Again: every late join gets it, not only the first.
  absl::StatusOr<Value> again = co_await ok->Join(kLong);
  CO_ASSERT_OK(again);
  EXPECT_EQ(*again, Value(42));

  absl::StatusOr<TaskRef> bad = co_await EndedRemoteTask(*p, "late-error", -7);
  CO_ASSERT_OK(bad);
  absl::StatusOr<Value> e = co_await bad->Join(kLong);
  EXPECT_THAT(e.status(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("failed with -7")));
  p->b.reset();
  p->a.reset();
}

PICOS_CORO_TEST(RemoteLateJoin, MonitorAfterTheEndGetsTheStatusAtOnce) {
  absl::StatusOr<Pair> p = co_await StartPair("monitor");
  CO_ASSERT_OK(p);
  absl::StatusOr<TaskRef> ok = co_await EndedRemoteTask(*p, "late-mon-value", 5);
  CO_ASSERT_OK(ok);
  absl::StatusOr<MonitorStatus> st = co_await MonitorAndHear(*ok);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->outcome, MonitorOutcome::kValue) << st->DebugString();
  EXPECT_EQ(st->value, Value(5));
  EXPECT_EQ(st->id, ok->id());
  EXPECT_EQ(st->task, *ok) << "the status names b's handle of the task";

  absl::StatusOr<TaskRef> bad = co_await EndedRemoteTask(*p, "late-mon-error", -1);
  CO_ASSERT_OK(bad);
  absl::StatusOr<MonitorStatus> err = co_await MonitorAndHear(*bad);
  CO_ASSERT_OK(err);
  EXPECT_EQ(err->outcome, MonitorOutcome::kError) << err->DebugString();
  EXPECT_THAT(err->error, StatusIs(absl::StatusCode::kDataLoss));
  p->b.reset();
  p->a.reset();
}

PICOS_CORO_TEST(RemoteLateJoin, BeyondTheBoundJoinFailsAndMonitorIsStillAnswered) {
  absl::StatusOr<Pair> p = co_await StartPair("bound");
  CO_ASSERT_OK(p);
  absl::StatusOr<TaskRef> old = co_await EndedRemoteTask(*p, "forgotten", 3);
  CO_ASSERT_OK(old);
  // kEndedTasksKept more exported tasks end after it: it is forgotten.
  for (size_t i = 0; i < kEndedTasksKept; ++i) {
    TaskRef t = ThisScheduler().Spawn(Return, static_cast<int64_t>(i));
    CO_ASSERT_OK(EncodeValue(Value(t)));  // exported, as a peer's handle is
    absl::StatusOr<Value> r = co_await t.Join(kLong);
    CO_ASSERT_OK(r);
  }
  absl::StatusOr<Value> j = co_await old->Join(kLong);
  EXPECT_THAT(j.status(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no longer kept")));
  absl::StatusOr<MonitorStatus> st = co_await MonitorAndHear(*old);
  CO_ASSERT_OK(st);  // a monitor that cannot be honoured is answered
  EXPECT_EQ(st->outcome, MonitorOutcome::kError) << st->DebugString();
  EXPECT_THAT(st->error, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no longer kept")));
  EXPECT_EQ(st->id, old->id());
  p->b.reset();
  p->a.reset();
}

}  // namespace
}  // namespace picos::testing
