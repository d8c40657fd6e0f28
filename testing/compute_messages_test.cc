// A job is a remote task (compute/computation.h, compute/export.h's job
// context), end to end with a real picos-node and its worker processes on
// loopback: messages each way in order (1,000 of them, for Run, RunAt and
// RunAsync jobs), a message sent before the job started, a job that
// computes without receiving and then reads what waited in its mailbox
// (pycos dispycos_client8), Terminate and Close(terminate) cancelling jobs
// whose last message still arrives (dispycos_kbd_int), the mailbox's bound,
// messages to a job that ended, and malformed input from the network.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compute/computation.h"
#include "compute/export.h"
#include "compute/protocol.h"
#include "core/kernel/monitor.h"
#include "core/remote/service.h"
#include "testing/compute_testutil.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::testing {
namespace {

using namespace compute_test;  // NOLINT: the helpers of this test family

constexpr char kMessagesLibrary[] = "testing/libcompute_messages_lib.so";
constexpr int64_t kLimit = static_cast<int64_t>(compute::kJobMailboxLimit);

// The "data" of the next message a job sent to this task (reply_to), with
// its "job" id in *job if given.
Task<absl::StatusOr<std::string>> NextData(uint64_t* job = nullptr) {
  absl::StatusOr<Value> m = co_await Receive(kLong);
  if (!m.ok()) co_return m.status();
  absl::StatusOr<std::string> data = m->Get<std::string>("data");
  if (!data.ok()) co_return absl::InternalError(absl::StrCat("not a job's message: ", m->DebugString()));
  if (job != nullptr) *job = m->GetOr<uint64_t>("job", 0);
  co_return *data;
}

// A node with `cpus` workers, a client node, and a computation of the
// messages library scheduled there; `body` gets the computation and the
// node. Closes the computation unless the body did, and stops the node.
template <typename Body>
Task<> WithCluster(int cpus, const std::string& name, Body body) {
  const std::string dest = FreshDir(name);
  absl::StatusOr<NodeProcess> node = co_await StartNode(cpus, dest);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  EXPECT_OK(me.status());
  if (me.ok()) {
    compute::ComputationOptions o;
    o.library = kMessagesLibrary;
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    EXPECT_OK(c.status());
    if (c.ok()) {
      std::vector<std::string> nodes = {node->uri};
      absl::Status scheduled = co_await (*c)->Schedule(nodes);
      EXPECT_OK(scheduled);
      if (scheduled.ok()) {
        absl::Status ran = co_await body(**c, *node);
        EXPECT_OK(ran);
      }
      absl::Status closed = co_await (*c)->Close({.terminate = true});
      EXPECT_OK(closed);
    }
    me->reset();
  }
  absl::Status stopped = co_await StopNode(*node);
  EXPECT_OK(stopped);
}

compute::RunOptions ReplyHere() {
  compute::RunOptions ro;
  ro.reply_to = Self();
  return ro;
}

// Echoes `n` messages through a job started with `ro`, checking each comes
// back in order, and that the job counted them.
Task<absl::Status> EchoRoundTrip(compute::Computation& c, compute::RunOptions ro, int n) {
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await c.Run("echo", "", ro));
  for (int i = 0; i < n; ++i) PICOS_CO_RETURN_IF_ERROR(job.Send(Value(absl::StrCat("m", i))));
  PICOS_CO_RETURN_IF_ERROR(job.Send(Value("end")));
  uint64_t id = 0;
  for (int i = 0; i < n; ++i) {
    uint64_t from = 0;
    PICOS_CO_ASSIGN_OR_RETURN(std::string got, co_await NextData(&from));
    EXPECT_EQ(got, absl::StrCat("m", i));
    if (got != absl::StrCat("m", i)) co_return absl::InternalError("out of order");
    if (i == 0) id = from;
    EXPECT_EQ(from, id);
  }
  EXPECT_GT(id, 0u);
  absl::StatusOr<Value> r = co_await job.Join(kLong);
  EXPECT_OK(r.status());
  if (r.ok()) { EXPECT_EQ(*r, Value::Bytes(std::to_string(n))); }
  co_return absl::OkStatus();
}

PICOS_CORO_TEST(ComputeMessages, ThousandEachWayInOrderForRunRunAtAndRunAsync) {
  co_await WithCluster(2, "compute-messages-order", [](compute::Computation& c, NodeProcess&) -> Task<absl::Status> {
    // 1,000 to the job and 1,000 back, all sent at once (the handle holds
    // them while the job starts).
    absl::Status st = co_await EchoRoundTrip(c, ReplyHere(), 1000);
    EXPECT_OK(st);
    // 1,000 sent by the job alone, in order.
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef burst, co_await c.Run("burst", "1000", ReplyHere()));
    for (int i = 0; i < 1000; ++i) {
      PICOS_CO_ASSIGN_OR_RETURN(std::string got, co_await NextData());
      EXPECT_EQ(got, std::to_string(i));
      if (got != std::to_string(i)) break;
    }
    absl::StatusOr<Value> r = co_await burst.Join(kLong);
    EXPECT_OK(r.status());
    if (r.ok()) { EXPECT_EQ(*r, Value::Bytes("sent 1000")); }
    // An I/O job and a job at one worker take messages the same way.
    compute::RunOptions io = ReplyHere();
    io.async = true;
    st = co_await EchoRoundTrip(c, io, 1000);
    EXPECT_OK(st);
    compute::RunOptions at = ReplyHere();
    at.where = c.workers()[1].uri;
    st = co_await EchoRoundTrip(c, at, 100);
    EXPECT_OK(st);
    co_return absl::OkStatus();
  });
}

PICOS_CORO_TEST(ComputeMessages, HeldBeforeStartAndWaitingWhileItComputes) {
  co_await WithCluster(1, "compute-messages-held", [](compute::Computation& c, NodeProcess&) -> Task<absl::Status> {
    // The only worker is busy with `hold`: `first` waits for it, and the
    // message sent to it meanwhile is held on the client.
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef hold, co_await c.Run("hold", "", ReplyHere()));
    PICOS_CO_ASSIGN_OR_RETURN(std::string ready, co_await NextData());
    EXPECT_EQ(ready, "ready");
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef first, co_await c.Run("first", "", ReplyHere()));
    bool waiting = false;
    for (const compute::JobInfo& j : c.jobs()) waiting = waiting || (j.task == first && j.state == compute::JobState::kWaiting);
    EXPECT_TRUE(waiting) << "the second job should wait for the only worker";
    PICOS_CO_RETURN_IF_ERROR(first.Send(Value("sent before it started")));
    PICOS_CO_RETURN_IF_ERROR(hold.Terminate());
    PICOS_CO_ASSIGN_OR_RETURN(std::string last, co_await NextData());
    EXPECT_EQ(last, "last");
    absl::StatusOr<Value> r = co_await first.Join(kLong);
    EXPECT_OK(r.status());
    if (r.ok()) { EXPECT_EQ(*r, Value::Bytes("sent before it started")); }

    // dispycos_client8: a job computes for 300 ms without receiving; the
    // messages sent meanwhile wait in its mailbox and it reads them after.
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef busy, co_await c.Run("compute_then_read", "300:10", ReplyHere()));
    PICOS_CO_ASSIGN_OR_RETURN(std::string computing, co_await NextData());
    EXPECT_EQ(computing, "computing");
    std::string want;
    for (int i = 0; i < 10; ++i) {
      PICOS_CO_RETURN_IF_ERROR(busy.Send(Value(absl::StrCat("v", i))));
      absl::StrAppend(&want, i > 0 ? "," : "", "v", i);
    }
    r = co_await busy.Join(kLong);
    EXPECT_OK(r.status());
    if (r.ok()) { EXPECT_EQ(*r, Value::Bytes(want)); }
    co_return absl::OkStatus();
  });
}

PICOS_CORO_TEST(ComputeMessages, TerminateAndCloseCancelAndTheLastMessageArrives) {
  const std::string dest = FreshDir("compute-messages-cancel");
  absl::StatusOr<NodeProcess> node = co_await StartNode(2, dest);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  CO_ASSERT_OK(me);
  compute::ComputationOptions o;
  o.library = kMessagesLibrary;
  absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
  CO_ASSERT_OK(c);
  std::vector<std::string> nodes = {node->uri};
  absl::Status scheduled = co_await (*c)->Schedule(nodes);
  CO_ASSERT_OK(scheduled);

  // Terminate on the handle: the job's Receive gives kCancelled, its last
  // message arrives, and Join gives kCancelled.
  absl::StatusOr<TaskRef> one = co_await (*c)->Run("echo", "", ReplyHere());
  CO_ASSERT_OK(one);
  EXPECT_OK(one->Send(Value("a")));
  absl::StatusOr<std::string> got = co_await NextData();
  EXPECT_OK(got.status());
  EXPECT_EQ(got.value_or(""), "a");
  EXPECT_OK(one->Terminate());
  got = co_await NextData();
  EXPECT_OK(got.status());
  EXPECT_EQ(got.value_or(""), "cancelled after 1");
  absl::StatusOr<Value> r = co_await one->Join(kLong);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kCancelled));

  // Close with terminate, a job on each worker, both running (each echoed
  // once): both are cancelled and both last messages arrive before Close
  // returns.
  std::vector<TaskRef> jobs;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<TaskRef> j = co_await (*c)->Run("echo", "", ReplyHere());
    CO_ASSERT_OK(j);
    EXPECT_OK(j->Send(Value("x")));
    jobs.push_back(*j);
  }
  for (int i = 0; i < 2; ++i) {
    got = co_await NextData();
    EXPECT_EQ(got.value_or(""), "x");
  }
  for (TaskRef& j : jobs) EXPECT_OK(Monitor(Self(), j));
  absl::Status closed = co_await (*c)->Close({.terminate = true});
  EXPECT_OK(closed);
  // Already here when Close returns, and each job's last message came
  // before its handle ended (its monitor message).
  int lasts = 0, ends = 0;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<Value> m = co_await Receive(absl::ZeroDuration());
    EXPECT_OK(m.status()) << "message " << i;
    if (!m.ok()) break;
    if (MonitorStatus::Is(*m)) {
      ++ends;
      EXPECT_GE(lasts, ends) << "a handle ended before its job's last message";
      continue;
    }
    EXPECT_EQ(m->GetOr<std::string>("data", ""), "cancelled after 1");
    ++lasts;
  }
  EXPECT_EQ(lasts, 2);
  EXPECT_EQ(ends, 2);
  for (TaskRef& j : jobs) {
    r = co_await j.Join(kLong);
    EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kCancelled));
  }
  me->reset();
  absl::Status stopped = co_await StopNode(*node);
  EXPECT_OK(stopped);
}

// CloseWorker with terminate cancels the job there, and its last message
// arrives before CloseWorker returns and before the job's handle ends.
PICOS_CORO_TEST(ComputeMessages, CloseWorkerWithTerminateCancelsItsJob) {
  co_await WithCluster(2, "compute-messages-closeworker", [](compute::Computation& c, NodeProcess&) -> Task<absl::Status> {
    compute::RunOptions ro = ReplyHere();
    ro.where = c.workers()[0].uri;
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await c.Run("echo", "", ro));
    PICOS_CO_RETURN_IF_ERROR(job.Send(Value("x")));
    PICOS_CO_ASSIGN_OR_RETURN(std::string x, co_await NextData());
    EXPECT_EQ(x, "x");
    PICOS_CO_RETURN_IF_ERROR(Monitor(Self(), job));
    absl::Status closed = co_await c.CloseWorker(ro.where, /*restart=*/false, /*terminate=*/true);
    EXPECT_OK(closed);
    absl::StatusOr<Value> last = co_await Receive(absl::ZeroDuration());  // already here, before the monitor's
    EXPECT_OK(last.status());
    if (last.ok()) { EXPECT_EQ(last->GetOr<std::string>("data", ""), "cancelled after 1") << last->DebugString(); }
    absl::StatusOr<Value> r = co_await job.Join(kLong);
    EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kCancelled));
    co_return absl::OkStatus();
  });
}

PICOS_CORO_TEST(ComputeMessages, MailboxIsBounded) {
  co_await WithCluster(1, "compute-messages-bound", [](compute::Computation& c, NodeProcess&) -> Task<absl::Status> {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef hold, co_await c.Run("hold", "", ReplyHere()));
    PICOS_CO_ASSIGN_OR_RETURN(std::string ready, co_await NextData());
    EXPECT_EQ(ready, "ready");
    // The job takes nothing: kJobMailboxLimit go to its worker, one waits
    // in its handle's hands and kJobMailboxLimit more in its mailbox; then
    // Send is refused, and stays refused (a second of retries: until then
    // a refusal may only mean the handle has not forwarded yet).
    int64_t accepted = 0;
    absl::Status refused;
    while (accepted <= 3 * kLimit) {
      absl::Status sent = hold.Send(Value(absl::StrCat(accepted)));
      if (sent.ok()) {
        ++accepted;
        continue;
      }
      refused = sent;
      bool room = false;
      for (int i = 0; i < 50 && !room; ++i) {
        (void)co_await Sleep(absl::Milliseconds(20));
        room = hold.Send(Value(absl::StrCat(accepted))).ok();
      }
      if (!room) break;
      ++accepted;
    }
    EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted));
    EXPECT_EQ(accepted, 2 * kLimit + 1);
    PICOS_CO_RETURN_IF_ERROR(hold.Terminate());
    PICOS_CO_ASSIGN_OR_RETURN(std::string last, co_await NextData());
    EXPECT_EQ(last, "last");
    absl::StatusOr<Value> r = co_await hold.Join(kLong);
    EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kCancelled));
    co_return absl::OkStatus();
  });
}

PICOS_CORO_TEST(ComputeMessages, EndedJobsCodesAndBadInput) {
  co_await WithCluster(1, "compute-messages-bad", [](compute::Computation& c, NodeProcess&) -> Task<absl::Status> {
    // A job that ended: its handle takes no message, and a monitor hears
    // how it ended.
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef same, co_await c.Run("same", "7"));
    absl::StatusOr<Value> r = co_await same.Join(kLong);
    EXPECT_OK(r.status());
    EXPECT_THAT(same.Send(Value("late")), StatusIs(absl::StatusCode::kFailedPrecondition));
    // Codes: Receive's timeout, Send without reply_to.
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef codes, co_await c.Run("codes", ""));
    r = co_await codes.Join(kLong);
    EXPECT_OK(r.status());
    if (r.ok()) { EXPECT_EQ(*r, Value::Bytes("deadline,precondition")); }
    // Messages that are not bytes are dropped; the job goes on.
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef echo, co_await c.Run("echo", "", ReplyHere()));
    PICOS_CO_RETURN_IF_ERROR(Monitor(Self(), echo));
    PICOS_CO_RETURN_IF_ERROR(echo.Send(Value(int64_t{5})));
    PICOS_CO_RETURN_IF_ERROR(echo.Send(Value::Map({{"x", 1}})));
    PICOS_CO_RETURN_IF_ERROR(echo.Send(Value("ok")));
    PICOS_CO_RETURN_IF_ERROR(echo.Send(Value("end")));
    PICOS_CO_ASSIGN_OR_RETURN(std::string got, co_await NextData());
    EXPECT_EQ(got, "ok");
    r = co_await echo.Join(kLong);
    EXPECT_OK(r.status());
    if (r.ok()) { EXPECT_EQ(*r, Value::Bytes("1")); }
    absl::StatusOr<Value> mon = co_await Receive(kLong);
    EXPECT_OK(mon.status());
    if (mon.ok()) { EXPECT_TRUE(MonitorStatus::Is(*mon)) << mon->DebugString(); }

    // Straight to a worker, as a peer could: its job loop answers a
    // malformed job with an error, and a job's inbox drops what is not a
    // message for it, and goes on.
    const std::string worker = c.workers()[0].uri;
    PICOS_CO_ASSIGN_OR_RETURN(remote::Service svc,
                              co_await remote::Service::Locate(compute::kWorkerService, Location::Peer(worker), kLong));
    Value::MapType start_loop;
    start_loop[compute::kJobLoopKey] = Value(true);
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef loop, co_await svc.Run(Value(std::move(start_loop)), kLong));
    Value::MapType bad;
    bad["id"] = Value(int64_t{1});
    bad["reply_to"] = Value(Self());
    bad["fn"] = Value("echo");
    bad["arg"] = Value::Bytes("");
    bad["to"] = Value(int64_t{5});  // not a task
    PICOS_CO_RETURN_IF_ERROR(loop.Send(Value(std::move(bad))));
    MessagePredicate first_answer = FieldEquals(compute::kJobReplyKey, Value(int64_t{1}));
    absl::StatusOr<Value> answer = co_await ReceiveMatching(std::move(first_answer), kLong);
    EXPECT_OK(answer.status());
    if (answer.ok()) { EXPECT_EQ(answer->GetOr<int64_t>("code", 0), static_cast<int64_t>(absl::StatusCode::kInvalidArgument)); }

    Value::MapType good;
    good["id"] = Value(int64_t{2});
    good["reply_to"] = Value(Self());
    good["fn"] = Value("echo");
    good["arg"] = Value::Bytes("");
    good["job"] = Value(uint64_t{9});
    good["attempt"] = Value(int64_t{1});
    good["to"] = Value(Self());
    good["ctl"] = Value(Self());
    PICOS_CO_RETURN_IF_ERROR(loop.Send(Value(std::move(good))));
    MessagePredicate is_ctl = [](const Value& v) { return v.is_map() && v.Find(compute::kJobCtlKey) != nullptr; };
    PICOS_CO_ASSIGN_OR_RETURN(Value started, co_await ReceiveMatching(std::move(is_ctl), kLong));
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef inbox, started.Get<TaskRef>("inbox"));
    PICOS_CO_RETURN_IF_ERROR(inbox.Send(Value(int64_t{5})));
    PICOS_CO_RETURN_IF_ERROR(inbox.Send(Value::Map({{"x", 1}})));
    PICOS_CO_RETURN_IF_ERROR(inbox.Send(Value::Map({{compute::kJobDataKey, int64_t{5}}})));
    PICOS_CO_RETURN_IF_ERROR(inbox.Send(Value::Map({{compute::kJobDataKey, Value::Bytes("hi")}})));
    PICOS_CO_RETURN_IF_ERROR(inbox.Send(Value::Map({{compute::kJobDataKey, Value::Bytes("end")}})));
    uint64_t from = 0;
    PICOS_CO_ASSIGN_OR_RETURN(std::string hi, co_await NextData(&from));
    EXPECT_EQ(hi, "hi");
    EXPECT_EQ(from, 9u);
    MessagePredicate second_answer = FieldEquals(compute::kJobReplyKey, Value(int64_t{2}));
    answer = co_await ReceiveMatching(std::move(second_answer), kLong);
    EXPECT_OK(answer.status());
    if (answer.ok()) { EXPECT_EQ((*answer)["value"], Value::Bytes("1")); }
    (void)loop.Terminate();
    co_return absl::OkStatus();
  });
}

// A library built against another compute ABI is refused by every worker,
// and the client's Schedule error says why.
PICOS_CORO_TEST(ComputeMessages, LibraryOfAnotherAbiIsRefused) {
  const std::string dest = FreshDir("compute-messages-abi");
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  EXPECT_OK(me.status());
  if (me.ok()) {
    compute::ComputationOptions o;
    o.library = "testing/libcompute_old_abi_lib.so";
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    EXPECT_OK(c.status());
    if (c.ok()) {
      std::vector<std::string> nodes = {node->uri};
      absl::Status scheduled = co_await (*c)->Schedule(nodes);
      EXPECT_FALSE(scheduled.ok());
      EXPECT_THAT(std::string(scheduled.message()),
                  ::testing::HasSubstr("built against picos compute ABI 1; this worker runs ABI 2 to 3"));
      // The node removed what the refused start shipped: Close may find
      // nothing there (kNotFound), which is fine.
      absl::Status closed = co_await (*c)->Close();
      (void)closed;
    }
    me->reset();
  }
  absl::Status stopped = co_await StopNode(*node);
  EXPECT_OK(stopped);
}

}  // namespace
}  // namespace picos::testing
