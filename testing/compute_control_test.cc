// Faults and control of a compute cluster's workers and nodes
// (compute/computation.h), end to end with real picos-node processes on
// loopback: a worker killed with SIGKILL mid-job is reported
// (worker_lost), its job runs again (job_rerun) and the node starts a fresh
// worker (restart_workers, worker_restarted); a job out of retries is lost
// (job_lost); CloseWorker with and without restart; a killed node is
// reported (node_lost); allocation rules skip a node and cap CPUs.
//
// The test kills only workers whose parent it checked is the node it
// started, and the nodes it started.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "compute/computation.h"
#include "compute/protocol.h"
#include "core/remote/service.h"
#include "testing/compute_testutil.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::testing {
namespace {

using ::testing::HasSubstr;
using namespace compute_test;  // NOLINT: the helpers of this test family

std::string Str(const Value& e, const char* field) { return e.GetOr<std::string>(field, ""); }

// Waits for the job_started event of `job` number `nth` (1: its first
// start, 2: its rerun) and gives the worker it names.
Task<std::string> StartedOn(std::shared_ptr<Events> ev, TaskRef job, size_t nth) {
  std::string worker;
  std::function<bool()> seen = [&] {
    size_t n = 0;
    for (const Value& e : ev->Of("job_started")) {
      const Value* t = e.Find("task");
      if (t != nullptr && t->is_task() && t->as_task() == job && ++n == nth) {
        worker = Str(e, "worker");
        return true;
      }
    }
    return false;
  };
  (void)co_await WaitUntil(seen);
  co_return worker;
}

// Expects `count` events of `type` (waiting for them: they are messages).
// Not a co_await inside EXPECT_TRUE's condition (tools/checks:
// coawait_in_condition_test).
#define EXPECT_EVENTS(ev, type, count)                                \
  do {                                                                \
    const bool picos_seen_ = co_await WaitForEvents(ev, type, count); \
    EXPECT_TRUE(picos_seen_) << "waiting for " << count << " " << type; \
  } while (0)

// Reads `count` "worker started <id> <index> <pid> <uri>" lines of `node`
// into `pids` (by URI).
Task<absl::Status> ReadWorkerLines(NodeProcess& node, int count, std::map<std::string, int>* pids) {
  for (int i = 0; i < count; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await NodeLine(node, "worker started "));
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    int pid = -1;
    if (f.size() != 6 || !absl::SimpleAtoi(f[4], &pid)) co_return absl::InternalError(absl::StrCat("bad line ", line));
    (*pids)[f[5]] = pid;
  }
  co_return absl::OkStatus();
}

// Kills the worker `uri` of `node` (after checking it is the node's child).
absl::Status KillWorker(NodeProcess& node, const std::map<std::string, int>& pids, const std::string& uri) {
  auto it = pids.find(uri);
  if (it == pids.end()) return absl::NotFoundError(absl::StrCat("no pid for ", uri));
  if (ParentOf(it->second) != node.process->pid()) return absl::InternalError("not the node's worker");
  if (kill(it->second, SIGKILL) != 0) return absl::InternalError("kill failed");
  return absl::OkStatus();
}

Task<absl::Status> FaultsBody(NodeProcess& node, std::shared_ptr<Events> ev, std::string marks) {
  compute::ComputationOptions o;
  o.library = kLibrary;
  o.status_task = ev->task;
  o.max_retries = 1;
  o.restart_workers = true;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  std::vector<std::string> nodes = {node.uri};
  PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(nodes));
  std::vector<compute::WorkerInfo> ws = c->workers();
  if (ws.size() != 2) co_return absl::InternalError("want two workers");
  std::map<std::string, int> pids;
  PICOS_CO_RETURN_IF_ERROR(co_await ReadWorkerLines(node, 2, &pids));

  // A job whose worker is killed mid-run runs again (job_rerun), the lost
  // worker is reported and restarted with a new URI.
  const std::string mark = marks + "/first";
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await c->Run("sleep_ms", absl::StrCat("3000:", mark)));
  const std::string first = co_await StartedOn(ev, job, 1);
  std::function<bool()> runs = [&] { return std::filesystem::exists(mark); };
  const bool ran = co_await WaitUntil(runs);
  EXPECT_TRUE(ran);
  std::filesystem::remove(mark);
  const absl::Time killed_at = absl::Now();
  PICOS_CO_RETURN_IF_ERROR(KillWorker(node, pids, first));
  EXPECT_EVENTS(ev, "worker_lost", 1);
  // Polled every 10 ms: a figure, not a bound checked here.
  std::printf("worker_lost_detected_ms: %.1f ms (SIGKILL to the client's worker_lost event)\n",
              absl::ToDoubleMilliseconds(absl::Now() - killed_at));
  EXPECT_EVENTS(ev, "job_rerun", 1);
  EXPECT_EVENTS(ev, "worker_restarted", 1);
  std::string fresh;
  if (!ev->Of("worker_lost").empty()) {
    EXPECT_EQ(Str(ev->Of("worker_lost")[0], "worker"), first);
  }
  if (!ev->Of("worker_restarted").empty()) {
    const Value r = ev->Of("worker_restarted")[0];
    EXPECT_EQ(Str(r, "old"), first);
    EXPECT_EQ(Str(r, "node"), node.uri);
    fresh = Str(r, "worker");
    EXPECT_NE(fresh, first);
  }
  PICOS_CO_RETURN_IF_ERROR(co_await ReadWorkerLines(node, 1, &pids));  // the fresh one
  // The rerun, on another worker; kill that one too, and the job, out of
  // retries, is lost.
  const std::string second = co_await StartedOn(ev, job, 2);
  EXPECT_FALSE(second.empty());
  EXPECT_NE(second, first);
  const bool reran = co_await WaitUntil(runs);
  EXPECT_TRUE(reran);
  absl::Status killed = KillWorker(node, pids, second);
  EXPECT_OK(killed);
  absl::StatusOr<Value> lost = co_await job.Join(kLong);
  EXPECT_THAT(lost.status(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("worker_lost")));
  EXPECT_EVENTS(ev, "job_lost", 1);
  EXPECT_EVENTS(ev, "worker_restarted", 2);
  EXPECT_EQ(c->jobs_rerun(), 1u);
  EXPECT_EQ(c->workers_alive(), 2u);

  // The restarted workers serve.
  for (const compute::WorkerInfo& w : c->workers()) {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef j, co_await c->RunAt(w.uri, "square", "4"));
    absl::StatusOr<Value> r = co_await j.Join(kLong);
    EXPECT_OK(r.status()) << w.uri;
  }

  // CloseWorker: with restart, a fresh one takes its place; without, the
  // worker is gone and jobs go to the other.
  const std::string a = c->workers()[0].uri, b = c->workers()[1].uri;
  absl::Status restarted = co_await c->CloseWorker(a, /*restart=*/true);
  EXPECT_OK(restarted);
  const std::string a2 = c->workers()[0].uri;
  EXPECT_NE(a2, a);
  EXPECT_EVENTS(ev, "worker_closed", 1);
  EXPECT_EVENTS(ev, "worker_restarted", 3);
  absl::Status closed = co_await c->CloseWorker(b, /*restart=*/false);
  EXPECT_OK(closed);
  EXPECT_EVENTS(ev, "worker_closed", 2);
  EXPECT_EQ(c->workers()[1].state, compute::WorkerState::kClosed);
  EXPECT_EQ(c->workers_alive(), 1u);
  absl::StatusOr<TaskRef> at_closed = co_await c->RunAt(b, "square", "1");
  if (at_closed.ok()) {
    absl::StatusOr<Value> r = co_await at_closed->Join(kLong);
    EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kUnavailable)) << "no worker left there";
  }
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef j, co_await c->Run("square", "11"));
  absl::StatusOr<Value> r = co_await j.Join(kLong);
  EXPECT_OK(r.status());
  const std::string on = co_await StartedOn(ev, j, 1);
  EXPECT_EQ(on, a2);

  // CloseWorker with terminate: the running job ends at once with
  // kCancelled (the worker drops the function's result; it is ended and a
  // fresh one started).
  const std::string long_mark = marks + "/long";
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef slow, co_await c->RunAt(a2, "sleep_ms", absl::StrCat("10000:", long_mark)));
  std::function<bool()> slow_runs = [&] { return std::filesystem::exists(long_mark); };
  const bool slow_ran = co_await WaitUntil(slow_runs);
  EXPECT_TRUE(slow_ran);
  absl::Status terminated = co_await c->CloseWorker(a2, /*restart=*/true, /*terminate=*/true);
  EXPECT_OK(terminated);
  absl::StatusOr<Value> cancelled = co_await slow.Join(kLong);
  EXPECT_THAT(cancelled.status(), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EVENTS(ev, "job_terminated", 1);
  EXPECT_EVENTS(ev, "worker_restarted", 4);
  const std::string a3 = c->workers()[0].uri;
  EXPECT_NE(a3, a2);
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef after, co_await c->RunAt(a3, "square", "12"));
  r = co_await after.Join(kLong);
  EXPECT_OK(r.status());

  // The node killed: node_lost (its connection breaks; within the liveness
  // time at most).
  const absl::Time node_killed_at = absl::Now();
  PICOS_CO_RETURN_IF_ERROR(co_await StopNode(node));
  EXPECT_EVENTS(ev, "node_lost", 1);
  std::printf("node_lost_detected_ms: %.1f ms (SIGKILL to node_lost, the node's port closed)\n",
              absl::ToDoubleMilliseconds(absl::Now() - node_killed_at));
  EXPECT_EQ(c->nodes()[0].state, compute::NodeState::kLost);
  co_return absl::OkStatus();
}

PICOS_CORO_TEST(ComputeControl, LostWorkersRestartedJobsRerunOrLostCloseWorkerNodeLost) {
  const std::string dest = FreshDir("compute-control-dest");
  const std::string marks = FreshDir("compute-control-marks");
  absl::StatusOr<NodeProcess> node = co_await StartNode(2, dest);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (me.ok()) {
    std::shared_ptr<Events> ev = StartCollector();
    absl::Status body = co_await FaultsBody(*node, ev, marks);
    EXPECT_OK(body);
    (void)ev->task.Terminate();
    me->reset();
  }
  EXPECT_OK(me.status());
  if (!node->process->exited()) {  // the body stopped it, unless it failed first
    absl::Status stopped = co_await StopNode(*node);
    EXPECT_OK(stopped);
  }
}

// Allocation: a custom function skips one node, a rule whose platform does
// not match is passed over, the next caps the other node to one worker; a
// rule asking more memory than any host has skips the node.
Task<absl::Status> AllocationBody(NodeProcess& a, NodeProcess& b, std::shared_ptr<Events> ev) {
  compute::ComputationOptions o;
  o.library = kLibrary;
  o.status_task = ev->task;
  const std::string skip = b.uri;
  o.allocate = [skip](const std::string& uri, const compute::HostFacts& facts) { return uri == skip ? 0 : -1; };
  compute::AllocationRule windows;
  windows.platform = "windows*";
  windows.cpus = 2;
  compute::AllocationRule loopback;
  loopback.host = "127.0.0.*";
  loopback.cpus = -1;  // all but one: 1 of the node's 2
  o.allocation = {windows, loopback};
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  std::vector<std::string> nodes = {a.uri, b.uri};
  PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(nodes));
  EXPECT_EQ(c->nodes().size(), 1u);
  EXPECT_EQ(c->workers().size(), 1u);
  EXPECT_EQ(c->workers_alive(), 1u);
  EXPECT_EVENTS(ev, "node_ignored", 1);
  if (!ev->Of("node_ignored").empty()) {
    const Value e = ev->Of("node_ignored")[0];
    EXPECT_EQ(Str(e, "node"), b.uri);
    EXPECT_THAT(Str(e, "reason"), HasSubstr("allocation function"));
  }
  EXPECT_EVENTS(ev, "node_initialized", 1);
  if (!ev->Of("node_initialized").empty()) {
    EXPECT_EQ(ev->Of("node_initialized")[0].GetOr<int64_t>("cpus", 0), 1);
  }
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef j, co_await c->Run("square", "3"));
  absl::StatusOr<Value> r = co_await j.Join(kLong);
  EXPECT_OK(r.status());
  absl::Status closed = co_await c->Close();
  EXPECT_OK(closed);

  compute::ComputationOptions big;
  big.library = kLibrary;
  big.status_task = ev->task;
  compute::AllocationRule memory;
  memory.min_memory = uint64_t{1} << 62;
  big.allocation = {memory};
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> d, compute::Computation::Create(big));
  std::vector<std::string> one = {a.uri};
  PICOS_CO_RETURN_IF_ERROR(co_await d->Schedule(one));
  EXPECT_TRUE(d->workers().empty());
  EXPECT_EVENTS(ev, "node_ignored", 2);
  if (ev->Of("node_ignored").size() >= 2) {
    EXPECT_THAT(Str(ev->Of("node_ignored")[1], "reason"), HasSubstr("memory"));
  }
  absl::StatusOr<TaskRef> none = co_await d->Run("square", "1");
  EXPECT_THAT(none.status(), StatusIs(absl::StatusCode::kFailedPrecondition));

  // A bad rule is refused at Create.
  compute::ComputationOptions bad;
  bad.library = kLibrary;
  compute::AllocationRule empty;
  empty.host = "";
  bad.allocation = {empty};
  EXPECT_THAT(compute::Computation::Create(bad).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  co_return absl::OkStatus();
}

PICOS_CORO_TEST(ComputeControl, AllocationRulesSkipANodeAndCapCpus) {
  const std::string dest_a = FreshDir("compute-alloc-a");
  const std::string dest_b = FreshDir("compute-alloc-b");
  absl::StatusOr<NodeProcess> a = co_await StartNode(2, dest_a);
  CO_ASSERT_OK(a);
  absl::StatusOr<NodeProcess> b = co_await StartNode(2, dest_b);
  if (!b.ok()) (void)co_await StopNode(*a);
  CO_ASSERT_OK(b);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (me.ok()) {
    std::shared_ptr<Events> ev = StartCollector();
    absl::Status body = co_await AllocationBody(*a, *b, ev);
    EXPECT_OK(body);
    EXPECT_TRUE(std::filesystem::is_empty(dest_b)) << "nothing shipped to the skipped node";
    (void)ev->task.Terminate();
    me->reset();
  }
  EXPECT_OK(me.status());
  absl::Status sa = co_await StopNode(*a);
  absl::Status sb = co_await StopNode(*b);
  EXPECT_OK(sa);
  EXPECT_OK(sb);
}

Task<> TouchLater(std::string path) {
  absl::Status slept = co_await Sleep(absl::Milliseconds(300));
  (void)slept;
  std::ofstream(path) << "here";
}

// Close without terminate waits for the running CPU job (its result
// arrives); with await_io it waits for an I/O job too; without, the I/O job
// is terminated.
Task<absl::Status> CloseBody(NodeProcess& node, std::shared_ptr<Events> ev, std::string marks) {
  std::vector<std::string> nodes = {node.uri};
  for (bool await_io : {true, false}) {
    SCOPED_TRACE(await_io ? "await_io" : "no await_io");
    compute::ComputationOptions o;
    o.library = kLibrary;
    o.status_task = ev->task;
    PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
    PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(nodes));
    const std::string tag = await_io ? "a" : "b";
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef cpu, co_await c->Run("sleep_ms", absl::StrCat("1000:", marks, "/cpu", tag)));
    PICOS_CO_ASSIGN_OR_RETURN(
        TaskRef io, co_await c->RunAsync("meet", absl::StrCat(marks, "/io", tag, ":", marks, "/later", tag, ":30000")));
    std::function<bool()> both = [&] {
      return std::filesystem::exists(marks + "/cpu" + tag) && std::filesystem::exists(marks + "/io" + tag);
    };
    const bool running = co_await WaitUntil(both);
    EXPECT_TRUE(running);
    // The I/O job can end only once this file exists, 300 ms after Close
    // began.
    TaskRef toucher = ThisScheduler().Spawn(TouchLater, absl::StrCat(marks, "/later", tag));
    compute::CloseOptions co;
    co.await_io = await_io;
    absl::Status closed = co_await c->Close(co);
    EXPECT_OK(closed);
    absl::StatusOr<Value> rc = co_await cpu.Join(kLong);
    EXPECT_OK(rc.status());
    if (rc.ok()) {
      EXPECT_EQ(*rc, Value::Bytes("slept 1000"));
    }
    absl::StatusOr<Value> ri = co_await io.Join(kLong);
    if (await_io) {
      EXPECT_OK(ri.status());
    } else {
      EXPECT_THAT(ri.status(), StatusIs(absl::StatusCode::kCancelled));
    }
    absl::StatusOr<Value> touched = co_await toucher.Join(kLong);
    EXPECT_OK(touched.status());
  }
  co_return absl::OkStatus();
}

PICOS_CORO_TEST(ComputeControl, CloseWaitsForCpuJobsAndWithAwaitIoForIoJobs) {
  const std::string dest = FreshDir("compute-close-dest");
  const std::string marks = FreshDir("compute-close-marks");
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (me.ok()) {
    std::shared_ptr<Events> ev = StartCollector();
    absl::Status body = co_await CloseBody(*node, ev, marks);
    EXPECT_OK(body);
    (void)ev->task.Terminate();
    me->reset();
  }
  EXPECT_OK(me.status());
  absl::Status stopped = co_await StopNode(*node);
  EXPECT_OK(stopped);
}

// The node's new requests, malformed: each refused with a clear error, the
// node still answering info after them.
Task<absl::Status> BadRequestsBody(NodeProcess& node) {
  PICOS_CO_ASSIGN_OR_RETURN(remote::Service svc, co_await remote::Service::Locate(
                                                      compute::kNodeService, Location::Peer(node.uri), kLong));
  struct Bad {
    Value request;
    absl::StatusCode code;
    const char* says;
  };
  const std::string zeros(64, '0');
  std::vector<Bad> bad;
  bad.push_back({Value::Map({{"op", "close_worker"}, {"computation", "c1"}}), absl::StatusCode::kInvalidArgument,
                 "needs index"});
  bad.push_back({Value::Map({{"op", "restart_worker"}, {"computation", "c1"}, {"index", "zero"}}),
                 absl::StatusCode::kInvalidArgument, "needs index"});
  bad.push_back({Value::Map({{"op", "restart_worker"}, {"computation", "c1"}, {"index", 0}}),
                 absl::StatusCode::kNotFound, "no computation"});
  bad.push_back({Value::Map({{"op", "start"}, {"computation", "c1"}, {"library", "l.so"}, {"sha256", zeros},
                             {"cpus", -1}}),
                 absl::StatusCode::kInvalidArgument, "cpus"});
  bad.push_back({Value::Map({{"op", "start"}, {"computation", "c1"}, {"library", "l.so"}, {"sha256", zeros},
                             {"cpus", 100000}}),
                 absl::StatusCode::kInvalidArgument, "cpus"});
  bad.push_back({Value::Map({{"op", "start"}, {"computation", "c1"}, {"library", "l.so"}, {"sha256", zeros},
                             {"client", "not a task"}}),
                 absl::StatusCode::kInvalidArgument, "client"});
  bad.push_back({Value::Map({{"op", "start"}, {"computation", "c1"}, {"library", "l.so"}, {"sha256", zeros},
                             {"node", std::string(5000, 'x')}}),
                 absl::StatusCode::kInvalidArgument, "malformed start"});
  for (Bad& b : bad) {
    SCOPED_TRACE(b.request.DebugString().substr(0, 200));
    absl::StatusOr<TaskRef> t = co_await svc.Run(b.request, kLong);
    absl::StatusOr<Value> r = absl::UnknownError("not run");
    if (t.ok()) {
      r = co_await t->Join(kLong);
    } else {
      r = t.status();
    }
    EXPECT_THAT(r.status(), StatusIs(b.code, HasSubstr(b.says)));
  }
  Value::MapType info;
  info["op"] = Value("info");
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef t, co_await svc.Run(Value(std::move(info)), kLong));
  PICOS_CO_ASSIGN_OR_RETURN(Value facts, co_await t.Join(kLong));
  absl::StatusOr<compute::HostFacts> f = compute::HostFacts::FromValue(facts["facts"]);
  EXPECT_OK(f.status());
  EXPECT_EQ(facts.GetOr<int64_t>("cpus", 0), 1);
  co_return svc.Close();
}

PICOS_CORO_TEST(ComputeControl, MalformedNodeRequestsAreRefused) {
  const std::string dest = FreshDir("compute-badreq-dest");
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (me.ok()) {
    absl::Status body = co_await BadRequestsBody(*node);
    EXPECT_OK(body);
    me->reset();
  }
  EXPECT_OK(me.status());
  absl::Status stopped = co_await StopNode(*node);
  EXPECT_OK(stopped);
}

}  // namespace
}  // namespace picos::testing
