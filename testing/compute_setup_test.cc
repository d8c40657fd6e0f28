// Setup hooks, EnableNode / EnableWorker, CloseNode and RestartNode
// (compute/computation.h "Setup hooks", compute/export.h), end to end with
// real picos-node processes on loopback and the library
// testing/compute_setup_lib.cc, whose jobs report what its hooks left in
// the worker's memory: "<node arg>|<worker arg>|<node runs>|<worker
// runs>|<jobs so far>|<pid>".
//
// Every wait is bounded by kLong, which only a hang reaches; the test kills
// only the nodes it started.
#include <dlfcn.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "compute/computation.h"
#include "compute/export.h"
#include "compute/protocol.h"
#include "core/remote/service.h"
#include "testing/compute_testutil.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::testing {
namespace {

using ::testing::HasSubstr;
using namespace compute_test;  // NOLINT: the helpers of this test family

constexpr char kSetupLibrary[] = "testing/libcompute_setup_lib.so";

std::string Str(const Value& e, const char* field) { return e.GetOr<std::string>(field, ""); }

// Expects `count` events of `type` (waiting for them: they are messages).
#define EXPECT_EVENTS(ev, type, count)                                  \
  do {                                                                  \
    const bool picos_seen_ = co_await WaitForEvents(ev, type, count);   \
    EXPECT_TRUE(picos_seen_) << "waiting for " << count << " " << type; \
  } while (0)

// What the "state" job reports.
struct Seen {
  std::string node_arg, worker_arg;
  int node_runs = -1, worker_runs = -1, jobs = -1;
  std::string pid;
};

Seen Parse(const std::string& bytes) {
  std::vector<std::string> f = absl::StrSplit(bytes, '|');
  Seen s;
  if (f.size() != 6) return s;
  s.node_arg = f[0];
  s.worker_arg = f[1];
  (void)absl::SimpleAtoi(f[2], &s.node_runs);
  (void)absl::SimpleAtoi(f[3], &s.worker_runs);
  (void)absl::SimpleAtoi(f[4], &s.jobs);
  s.pid = f[5];
  return s;
}

// Runs "state" at `where` and parses its answer.
Task<absl::StatusOr<Seen>> StateAt(compute::Computation& c, std::string where) {
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await c.RunAt(where, "state", ""));
  PICOS_CO_ASSIGN_OR_RETURN(Value v, co_await job.Join(kLong));
  if (!v.is_bytes()) co_return absl::InternalError("state: not bytes");
  co_return Parse(v.as_string());
}

// The worker URIs of node `node`, in slot order.
std::vector<std::string> WorkersOf(const compute::Computation& c, const std::string& node) {
  std::vector<std::string> out;
  for (const compute::WorkerInfo& w : c.workers()) {
    if (w.node == node && w.state != compute::WorkerState::kClosed) out.push_back(w.uri);
  }
  return out;
}

// Both libraries report ABI 3 (compute/export.h "Versions"); only the one
// with hooks exports kComputeSetupSymbol (the worker takes a library
// without it as one with no hooks). The library without hooks is loaded
// first: g++ gives the static table of export.h's inline TheTable() a
// STB_GNU_UNIQUE symbol, one per process whatever RTLD_LOCAL says, so two
// libraries in one process share it (a worker loads one).
TEST(ComputeSetup, OnlyALibraryWithHooksExportsTheSetupTable) {
  for (const auto& [path, hooks] : std::vector<std::pair<std::string, bool>>{{kLibrary, false}, {kSetupLibrary, true}}) {
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(h, nullptr) << dlerror();
    auto abi = reinterpret_cast<PicosComputeAbiFn>(dlsym(h, compute::kComputeAbiSymbol));
    ASSERT_NE(abi, nullptr);
    EXPECT_EQ(abi(), compute::kComputeAbiVersion) << path;
    auto setup = reinterpret_cast<PicosComputeSetupTableFn>(dlsym(h, compute::kComputeSetupSymbol));
    if (hooks) {
      ASSERT_NE(setup, nullptr);
      EXPECT_NE(setup(compute::kComputeSetupNode), nullptr);
      EXPECT_NE(setup(compute::kComputeSetupWorker), nullptr);
      EXPECT_EQ(setup(7), nullptr);
    } else {
      EXPECT_EQ(setup, nullptr) << path;
    }
    dlclose(h);
  }
}

// Runs `body` with a node of `cpus` workers (and a second one of `cpus2`
// if not 0), a client Node and an event collector; stops what it started.
using Body = std::function<Task<absl::Status>(std::vector<NodeProcess*>, std::shared_ptr<Events>, std::string)>;

Task<> WithNodes(std::string name, int cpus, int cpus2, Body body) {
  const std::string dest = FreshDir(name + "-dest");
  const std::string scratch = FreshDir(name + "-scratch");
  std::vector<NodeProcess> nodes;
  for (int i = 0, n = cpus2 > 0 ? 2 : 1; i < n; ++i) {
    const std::string d = absl::StrCat(dest, "/", i);
    std::filesystem::create_directories(d);
    absl::StatusOr<NodeProcess> node = co_await StartNode(i == 0 ? cpus : cpus2, d);
    EXPECT_OK(node.status());
    if (!node.ok()) break;
    nodes.push_back(*std::move(node));
  }
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  EXPECT_OK(me.status());
  if (me.ok() && nodes.size() == (cpus2 > 0 ? 2u : 1u)) {
    std::shared_ptr<Events> ev = StartCollector();
    std::vector<NodeProcess*> ptrs;
    for (NodeProcess& n : nodes) ptrs.push_back(&n);
    absl::Status done = co_await body(ptrs, ev, scratch);
    EXPECT_OK(done);
    (void)ev->task.Terminate();
  }
  if (me.ok()) me->reset();
  for (NodeProcess& n : nodes) {
    absl::Status stopped = co_await StopNode(n);
    EXPECT_OK(stopped);
  }
}

// Setup runs once in each worker, node setup then worker setup, with the
// options' arguments, before any job; what it left is what jobs see; the
// worker refuses a second setup and a malformed one.
Task<absl::Status> OnceBeforeJobs(std::vector<NodeProcess*> nodes, std::shared_ptr<Events> ev, std::string) {
  compute::ComputationOptions o;
  o.library = kSetupLibrary;
  o.status_task = ev->task;
  o.node_setup_arg = "node data";
  o.worker_setup_arg = "worker data";
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  std::vector<std::string> uris = {nodes[0]->uri};
  const absl::Time t0 = absl::Now();
  PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(uris));
  // A figure, not a bound checked here.
  std::printf("schedule_with_setup_ms: %.1f ms (2 workers, node and worker hooks)\n",
              absl::ToDoubleMilliseconds(absl::Now() - t0));
  // Schedule waited for the setups: both workers take jobs at once.
  EXPECT_EVENTS(ev, "worker_initialized", 2);
  for (const compute::WorkerInfo& w : c->workers()) EXPECT_EQ(w.state, compute::WorkerState::kIdle) << w.uri;
  std::map<std::string, int> jobs_per_pid;
  for (int i = 0; i < 6; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(Seen s, co_await StateAt(*c, ""));
    EXPECT_EQ(s.node_arg, "node data");
    EXPECT_EQ(s.worker_arg, "worker data");
    EXPECT_EQ(s.node_runs, 1);
    EXPECT_EQ(s.worker_runs, 1);
    jobs_per_pid[s.pid] = std::max(jobs_per_pid[s.pid], s.jobs);
  }
  int total = 0;
  for (const auto& [pid, n] : jobs_per_pid) total += n;
  EXPECT_EQ(total, 6) << "each job counted once, in the process whose setup it saw";

  // The worker's own checks: a second setup, a malformed one.
  PICOS_CO_ASSIGN_OR_RETURN(remote::Service svc, co_await remote::Service::Locate(
                                                     compute::kWorkerService,
                                                     Location::Peer(c->workers()[0].uri), kLong));
  Value::MapType again_map;
  again_map["setup"] = Value(true);
  again_map["worker"] = Value::Bytes("other");
  Value again(std::move(again_map));
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef t, co_await svc.Run(std::move(again), kLong));
  absl::StatusOr<Value> r = co_await t.Join(kLong);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("ran already")));
  Value::MapType bad_map;
  bad_map["setup"] = Value(true);
  bad_map["worker"] = Value(int64_t{5});
  Value bad(std::move(bad_map));
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef t2, co_await svc.Run(std::move(bad), kLong));
  r = co_await t2.Join(kLong);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed setup")));
  // Still set up as before.
  PICOS_CO_ASSIGN_OR_RETURN(Seen after, co_await StateAt(*c, c->workers()[0].uri));
  EXPECT_EQ(after.worker_arg, "worker data");
  EXPECT_EQ(after.worker_runs, 1);
  PICOS_CO_RETURN_IF_ERROR(co_await c->Close());
  co_return absl::OkStatus();
}

PICOS_CORO_TEST(ComputeSetup, RunsOncePerWorkerBeforeAnyJobAndJobsSeeItsState) {
  co_await WithNodes("compute-setup-once", 2, 0, OnceBeforeJobs);
}

// A worker whose setup fails is reported (worker_setup_failed with the
// hook's message and stage), closed and given no job; the other serves. A
// node setup failing everywhere leaves no worker: jobs fail.
Task<absl::Status> Failing(std::vector<NodeProcess*> nodes, std::shared_ptr<Events> ev, std::string scratch) {
  compute::ComputationOptions o;
  o.library = kSetupLibrary;
  o.status_task = ev->task;
  o.worker_setup_arg = absl::StrCat("fail-once:", scratch, "/failed");
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  std::vector<std::string> uris = {nodes[0]->uri};
  PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(uris));
  EXPECT_EVENTS(ev, "worker_setup_failed", 1);
  EXPECT_EVENTS(ev, "worker_closed", 1);
  std::string failed;
  if (!ev->Of("worker_setup_failed").empty()) {
    const Value e = ev->Of("worker_setup_failed")[0];
    failed = Str(e, "worker");
    EXPECT_EQ(Str(e, "stage"), "worker");
    EXPECT_EQ(Str(e, "node"), nodes[0]->uri);
    EXPECT_THAT(Str(e, "message"), HasSubstr("failed once, as asked"));
    EXPECT_EQ(Str(ev->Of("worker_closed")[0], "worker"), failed);
  }
  EXPECT_EVENTS(ev, "worker_initialized", 1);
  EXPECT_EQ(c->workers_alive(), 1u);
  std::vector<TaskRef> jobs;
  for (int i = 0; i < 4; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef j, co_await c->Run("state", ""));
    jobs.push_back(j);
  }
  for (TaskRef& j : jobs) {
    absl::StatusOr<Value> r = co_await j.Join(kLong);
    EXPECT_OK(r.status());
  }
  EXPECT_EVENTS(ev, "job_started", 4);
  for (const Value& e : ev->Of("job_started")) EXPECT_NE(Str(e, "worker"), failed) << "a job went to the failed worker";
  PICOS_CO_RETURN_IF_ERROR(co_await c->Close());

  // The node setup fails in every worker: stage "node"; no worker left.
  compute::ComputationOptions n;
  n.library = kSetupLibrary;
  n.status_task = ev->task;
  n.node_setup_arg = "fail:no data for this node";
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> d, compute::Computation::Create(n));
  PICOS_CO_RETURN_IF_ERROR(co_await d->Schedule(uris));
  EXPECT_EVENTS(ev, "worker_setup_failed", 3);
  for (size_t i = 1; i < ev->Of("worker_setup_failed").size(); ++i) {
    const Value e = ev->Of("worker_setup_failed")[i];
    EXPECT_EQ(Str(e, "stage"), "node");
    EXPECT_THAT(Str(e, "message"), HasSubstr("no data for this node"));
  }
  EXPECT_EQ(d->workers_alive(), 0u);
  absl::StatusOr<TaskRef> none = co_await d->Run("state", "");
  if (none.ok()) {
    absl::StatusOr<Value> r = co_await none->Join(kLong);
    EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no worker left")));
  }
  PICOS_CO_RETURN_IF_ERROR(co_await d->Close());

  // EnableNode whose node setup fails in every worker of the node says so
  // (kAborted with the hook's message); the node can still be closed.
  compute::ComputationOptions e;
  e.library = kSetupLibrary;
  e.status_task = ev->task;
  e.disable_nodes = true;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> f, compute::Computation::Create(e));
  PICOS_CO_RETURN_IF_ERROR(co_await f->Schedule(uris));
  absl::Status enabled = co_await f->EnableNode(uris[0], "fail:this node's data is bad");
  EXPECT_THAT(enabled, StatusIs(absl::StatusCode::kAborted, HasSubstr("this node's data is bad")));
  EXPECT_EVENTS(ev, "worker_setup_failed", 5);
  EXPECT_EQ(f->workers_alive(), 0u);
  absl::Status node_closed = co_await f->CloseNode(uris[0]);
  EXPECT_OK(node_closed);
  EXPECT_EQ(f->nodes()[0].state, compute::NodeState::kClosed);
  PICOS_CO_RETURN_IF_ERROR(co_await f->Close());
  co_return absl::OkStatus();
}

PICOS_CORO_TEST(ComputeSetup, FailingSetupIsReportedAndItsWorkerGetsNoJob) {
  co_await WithNodes("compute-setup-fail", 2, 0, Failing);
}

// disable_nodes + disable_workers: nothing runs until enabled; each node
// and each worker is enabled with its own argument, which its jobs see;
// bad calls give clear errors.
Task<absl::Status> EnableOneByOne(std::vector<NodeProcess*> nodes, std::shared_ptr<Events> ev, std::string) {
  compute::ComputationOptions o;
  o.library = kSetupLibrary;
  o.status_task = ev->task;
  o.disable_nodes = true;
  o.disable_workers = true;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  const std::string a = nodes[0]->uri, b = nodes[1]->uri;
  std::vector<std::string> uris = {a, b};
  PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(uris));
  EXPECT_EVENTS(ev, "node_discovered", 2);
  EXPECT_EVENTS(ev, "worker_discovered", 4);
  EXPECT_TRUE(ev->Of("node_initialized").empty());
  EXPECT_TRUE(ev->Of("worker_initialized").empty());
  for (const compute::NodeInfo& n : c->nodes()) EXPECT_EQ(n.state, compute::NodeState::kDisabled);
  for (const compute::WorkerInfo& w : c->workers()) EXPECT_EQ(w.state, compute::WorkerState::kDisabled);
  const std::vector<std::string> wa = WorkersOf(*c, a), wb = WorkersOf(*c, b);
  if (wa.size() != 2 || wb.size() != 2) co_return absl::InternalError("want two workers on each node");

  // A job waits: no worker is set up.
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef early, co_await c->Run("state", ""));
  PICOS_CO_RETURN_IF_ERROR(co_await Sleep(absl::Milliseconds(200)));
  EXPECT_TRUE(ev->Of("job_started").empty()) << "a job started on a disabled worker";
  // The worker itself refuses a job before its setup.
  PICOS_CO_ASSIGN_OR_RETURN(remote::Service svc, co_await remote::Service::Locate(compute::kWorkerService,
                                                                                   Location::Peer(wb[0]), kLong));
  Value::MapType job;
  job["fn"] = Value("state");
  job["arg"] = Value::Bytes("");
  // Refused when admitted (core/remote/service.h: the service's admit).
  absl::StatusOr<TaskRef> direct = co_await svc.Run(Value(std::move(job)), kLong);
  absl::StatusOr<Value> refused = direct.status();
  if (direct.ok()) refused = co_await direct->Join(kLong);
  EXPECT_THAT(refused.status(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("setup has not run")));

  // Bad calls.
  absl::Status st = co_await c->EnableWorker(wa[0], "too early");
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("EnableNode")));
  st = co_await c->EnableNode("tcp://127.0.0.1:1", "x");
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kNotFound));
  st = co_await c->EnableWorker("tcp://127.0.0.1:1", "x");
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(c->SuspendNode(a), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("disabled")));

  // Node a, then its workers one by one.
  st = co_await c->EnableNode(a, "data of a");
  EXPECT_OK(st);
  EXPECT_EVENTS(ev, "node_initialized", 1);
  st = co_await c->EnableNode(a, "again");
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("enabled already")));
  for (const compute::WorkerInfo& w : c->workers()) {
    EXPECT_EQ(w.state, compute::WorkerState::kDisabled) << "workers wait for EnableWorker";
  }
  st = co_await c->EnableWorker(wa[0], "data of a0");
  EXPECT_OK(st);
  EXPECT_EVENTS(ev, "worker_initialized", 1);
  st = co_await c->EnableWorker(wa[0], "again");
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("enabled already")));
  absl::StatusOr<Value> first = co_await early.Join(kLong);
  EXPECT_OK(first.status());
  if (first.ok()) {
    const Seen s = Parse(first->as_string());
    EXPECT_EQ(s.node_arg, "data of a");
    EXPECT_EQ(s.worker_arg, "data of a0");
  }
  st = co_await c->EnableWorker(wa[1], "data of a1");
  EXPECT_OK(st);
  st = co_await c->EnableNode(b, "data of b");
  EXPECT_OK(st);
  for (const std::string& w : wb) {
    st = co_await c->EnableWorker(w, absl::StrCat("data of ", w));
    EXPECT_OK(st);
  }
  EXPECT_EVENTS(ev, "node_initialized", 2);
  EXPECT_EVENTS(ev, "worker_initialized", 4);
  const std::map<std::string, std::pair<std::string, std::string>> want = {
      {wa[0], {"data of a", "data of a0"}},
      {wa[1], {"data of a", "data of a1"}},
      {wb[0], {"data of b", absl::StrCat("data of ", wb[0])}},
      {wb[1], {"data of b", absl::StrCat("data of ", wb[1])}}};
  for (const auto& kv : want) {
    const std::string& w = kv.first;
    PICOS_CO_ASSIGN_OR_RETURN(Seen s, co_await StateAt(*c, w));
    EXPECT_EQ(s.node_arg, kv.second.first) << w;
    EXPECT_EQ(s.worker_arg, kv.second.second) << w;
    EXPECT_EQ(s.node_runs, 1) << w;
    EXPECT_EQ(s.worker_runs, 1) << w;
  }
  PICOS_CO_RETURN_IF_ERROR(co_await c->Close());
  co_return absl::OkStatus();
}

PICOS_CORO_TEST(ComputeSetup, DisabledNodesAndWorkersEnabledOneByOneWithTheirOwnArguments) {
  co_await WithNodes("compute-setup-enable", 2, 2, EnableOneByOne);
}

// RestartNode gives fresh processes set up with the new argument; CloseNode
// waits for running jobs, or with terminate cancels them; later jobs go to
// the other node; bad calls give clear errors.
Task<absl::Status> CloseAndRestart(std::vector<NodeProcess*> nodes, std::shared_ptr<Events> ev,
                                   std::string scratch) {
  compute::ComputationOptions o;
  o.library = kSetupLibrary;
  o.status_task = ev->task;
  o.node_setup_arg = "first";
  o.worker_setup_arg = "w";
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  const std::string a = nodes[0]->uri, b = nodes[1]->uri;
  std::vector<std::string> uris = {a, b};
  PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(uris));
  const std::vector<std::string> old = WorkersOf(*c, a);
  if (old.size() != 2) co_return absl::InternalError("want two workers on a");
  std::set<std::string> old_pids;
  for (const std::string& w : old) {
    PICOS_CO_ASSIGN_OR_RETURN(Seen s1, co_await StateAt(*c, w));
    PICOS_CO_ASSIGN_OR_RETURN(Seen s2, co_await StateAt(*c, w));
    EXPECT_EQ(s2.jobs, 2);
    old_pids.insert(s2.pid);
  }

  // RestartNode: fresh processes, the new node argument, state gone.
  absl::Status st = co_await c->RestartNode(a, "second");
  EXPECT_OK(st);
  EXPECT_EVENTS(ev, "worker_restarted", 2);
  const std::vector<std::string> fresh = WorkersOf(*c, a);
  EXPECT_EQ(fresh.size(), 2u);
  for (const std::string& w : fresh) {
    EXPECT_TRUE(std::find(old.begin(), old.end(), w) == old.end()) << w;
    PICOS_CO_ASSIGN_OR_RETURN(Seen s, co_await StateAt(*c, w));
    EXPECT_EQ(s.node_arg, "second");
    EXPECT_EQ(s.worker_arg, "w");
    EXPECT_EQ(s.node_runs, 1);
    EXPECT_EQ(s.jobs, 1) << "a fresh process";
    EXPECT_FALSE(old_pids.contains(s.pid));
  }
  st = co_await c->RestartNode("tcp://127.0.0.1:1", "x");
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kNotFound));

  // CloseNode without terminate: the running job ends first, its result
  // arrives; then node_closed, the node's folder is gone.
  const std::string mark = scratch + "/running";
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef running, co_await c->RunAt(a, "wait", absl::StrCat("1500:", mark)));
  std::function<bool()> runs = [&] { return std::filesystem::exists(mark); };
  const bool ran = co_await WaitUntil(runs);
  EXPECT_TRUE(ran);
  st = co_await c->CloseNode(a);
  EXPECT_OK(st);
  absl::StatusOr<Value> r = co_await running.Join(kLong);
  EXPECT_OK(r.status());
  if (r.ok()) { EXPECT_EQ(r->as_string(), "waited"); }
  EXPECT_EVENTS(ev, "node_closed", 1);
  if (!ev->Of("node_closed").empty()) { EXPECT_EQ(Str(ev->Of("node_closed")[0], "node"), a); }
  EXPECT_EQ(c->nodes()[0].state, compute::NodeState::kClosed);
  PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await NodeLine(*nodes[0], "computation closed "));
  EXPECT_THAT(line, HasSubstr(c->id()));
  // Later jobs go to b; one for a alone has no worker left.
  const size_t started = ev->Of("job_started").size();
  PICOS_CO_ASSIGN_OR_RETURN(Seen on_b, co_await StateAt(*c, ""));
  EXPECT_EQ(on_b.node_arg, "first");
  if (ev->Of("job_started").size() > started) {
    EXPECT_EQ(std::find(fresh.begin(), fresh.end(), Str(ev->Of("job_started")[started], "worker")), fresh.end());
  }
  absl::StatusOr<TaskRef> at_a = co_await c->RunAt(a, "state", "");
  if (at_a.ok()) {
    absl::StatusOr<Value> none = co_await at_a->Join(kLong);
    EXPECT_THAT(none.status(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no worker left")));
  }
  st = co_await c->CloseNode(a);
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("closed")));
  st = co_await c->RestartNode(a, "x");
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kFailedPrecondition));
  st = co_await c->CloseNode("tcp://127.0.0.1:1");
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kNotFound));

  // CloseNode with terminate: the job is cancelled at once (its last
  // message still comes).
  const std::string long_mark = scratch + "/long";
  compute::RunOptions ro;
  ro.where = b;
  ro.reply_to = Self();
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef slow, co_await c->Run("wait", absl::StrCat("30000:", long_mark), ro));
  std::function<bool()> slow_runs = [&] { return std::filesystem::exists(long_mark); };
  const bool slow_ran = co_await WaitUntil(slow_runs);
  EXPECT_TRUE(slow_ran);
  const absl::Time t0 = absl::Now();
  st = co_await c->CloseNode(b, /*terminate=*/true);
  EXPECT_OK(st);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(25)) << "CloseNode(terminate) waited for the job";
  absl::StatusOr<Value> cancelled = co_await slow.Join(kLong);
  EXPECT_THAT(cancelled.status(), StatusIs(absl::StatusCode::kCancelled));
  absl::StatusOr<Value> last = co_await Receive(kLong);
  EXPECT_OK(last.status());
  if (last.ok()) { EXPECT_EQ(last->GetOr<std::string>("data", ""), "cancelled"); }
  EXPECT_EVENTS(ev, "job_terminated", 1);
  EXPECT_EVENTS(ev, "node_closed", 2);
  EXPECT_EQ(c->workers_alive(), 0u);
  PICOS_CO_RETURN_IF_ERROR(co_await c->Close());
  co_return absl::OkStatus();
}

PICOS_CORO_TEST(ComputeSetup, RestartNodeGivesFreshStateCloseNodeWithAndWithoutTerminate) {
  co_await WithNodes("compute-setup-close", 2, 1, CloseAndRestart);
}

// A worker lost (SIGKILL) and restarted by its node (restart_workers) runs
// its setup again before it takes a job: the new process has the same
// arguments' state, fresh.
Task<absl::Status> LostAndRestarted(std::vector<NodeProcess*> nodes, std::shared_ptr<Events> ev, std::string) {
  compute::ComputationOptions o;
  o.library = kSetupLibrary;
  o.status_task = ev->task;
  o.restart_workers = true;
  o.node_setup_arg = "n";
  o.worker_setup_arg = "w";
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  std::vector<std::string> uris = {nodes[0]->uri};
  PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(uris));
  const std::string victim = c->workers()[0].uri;
  PICOS_CO_ASSIGN_OR_RETURN(Seen before, co_await StateAt(*c, victim));
  PICOS_CO_ASSIGN_OR_RETURN(int pid, co_await WorkerPid(*nodes[0], victim));
  if (ParentOf(pid) != nodes[0]->process->pid()) co_return absl::InternalError("not the node's worker");
  if (kill(pid, SIGKILL) != 0) co_return absl::InternalError("kill failed");
  EXPECT_EVENTS(ev, "worker_restarted", 1);
  // The restarted slot takes a job only once set up again.
  std::function<bool()> ready = [&] {
    const compute::WorkerInfo w = c->workers()[0];
    return w.uri != victim && w.state == compute::WorkerState::kIdle;
  };
  const bool set_up = co_await WaitUntil(ready);
  EXPECT_TRUE(set_up);
  PICOS_CO_ASSIGN_OR_RETURN(Seen after, co_await StateAt(*c, c->workers()[0].uri));
  EXPECT_EQ(after.node_arg, "n");
  EXPECT_EQ(after.worker_arg, "w");
  EXPECT_EQ(after.node_runs, 1);
  EXPECT_EQ(after.worker_runs, 1);
  EXPECT_EQ(after.jobs, 1);
  EXPECT_NE(after.pid, before.pid);
  PICOS_CO_RETURN_IF_ERROR(co_await c->Close());
  co_return absl::OkStatus();
}

PICOS_CORO_TEST(ComputeSetup, LostWorkerRestartedRunsItsSetupAgain) {
  co_await WithNodes("compute-setup-lost", 1, 0, LostAndRestarted);
}

}  // namespace
}  // namespace picos::testing
