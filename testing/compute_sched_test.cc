// A shared picos-scheduler (compute/scheduler.h) with real processes: a
// picos-node of 4 CPUs, the picos-scheduler sharing it, and clients (in this
// process, and compute_sched_client processes that the test kills).
//
//  * Two clients sharing one node get 2 workers each (the first had all 4
//    and gives 2 back after its running jobs), never more than 4 between
//    them; both run their jobs, every result exactly once and each job on
//    its own client's workers; when one closes the other grows to 4.
//  * A client killed with SIGKILL frees its share within the liveness time:
//    the other grows back to 4 (share_freed_after_client_kill_ms).
//  * A client whose allocation function wants one worker gets one; the
//    other client takes the rest of the node (max-min, not halves).
//  * Two nodes, two clients: a node killed is reported lost, its shares go
//    to none, and the clients go on with their workers on the other.
//  * --node_dns: every address a name resolves to is a node; a node that
//    comes up after a client joined is offered to it and it grows there.
//  * Five clients on four CPUs: the fifth waits in Schedule, its job waits
//    too, and both go on once another client closes.
//  * SIGTERM closes it (exit 0); --save_config writes what --config reads.
//  * A client with the wrong secret is refused; malformed requests are
//    refused with kInvalidArgument while the scheduler keeps serving.
//
// Every wait is bounded (kLong, which only a hang reaches). The test kills
// only the processes it started and waits for each.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "compute/computation.h"
#include "compute/protocol.h"
#include "core/remote/service.h"
#include "testing/compute_testutil.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::testing {
namespace {

using namespace compute_test;  // NOLINT: the shared helpers of the compute tests

constexpr int kCpus = 4;

std::vector<std::string> EnvWithSecret(const std::string& secret) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "PICOS_REMOTE_")) env.emplace_back(*e);
  }
  env.push_back(absl::StrCat("PICOS_REMOTE_SECRET=", secret));
  return env;
}

// Starts picos-scheduler sharing `nodes` and waits until it has them up.
// `extra` flags, each a node of its own too (--node_dns).
Task<absl::StatusOr<NodeProcess>> StartScheduler(std::vector<std::string> nodes,
                                                 std::vector<std::string> extra = {}) {
  ProcessOptions p;
  p.program = "compute/picos-scheduler";
  p.args = {"--listen=tcp://127.0.0.1:0", "--node_retry=0.2"};
  for (const std::string& n : nodes) p.args.push_back(absl::StrCat("--node=", n));
  for (const std::string& e : extra) {
    p.args.push_back(e);
    nodes.push_back(e);
  }
  p.env = EnvWithSecret(kSecret);
  p.stdin_mode = StdioMode::kNull;
  p.stderr_mode = StdioMode::kInherit;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Process> proc, Process::Spawn(std::move(p)));
  NodeProcess s{std::move(proc), ""};
  absl::StatusOr<std::string> listening = co_await NodeLine(s, "listening ");
  absl::StatusOr<std::string> up = absl::UnknownError("not listening");
  if (listening.ok()) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      up = co_await NodeLine(s, "node up ");
      if (!up.ok()) break;
    }
  } else {
    up = listening.status();
  }
  if (!up.ok()) {
    (void)co_await StopNode(s);
    co_return up.status();
  }
  s.uri = listening->substr(std::string("listening ").size());
  co_return s;
}

// A client of the scheduler in this process, its events kept.
struct Client {
  std::unique_ptr<compute::Computation> c;
  std::shared_ptr<Events> events;
};

absl::StatusOr<Client> NewClient(const std::string& scheduler, compute::AllocationFunction allocate = nullptr) {
  Client out;
  out.events = StartCollector();
  compute::ComputationOptions o;
  o.library = kLibrary;
  o.scheduler = scheduler;
  o.timeout = kLong;
  o.status_task = out.events->task;
  o.allocate = std::move(allocate);
  absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
  if (!c.ok()) {
    (void)out.events->task.Terminate();
    return c.status();
  }
  out.c = *std::move(c);
  return out;
}

// Runs `n` square jobs on `c` (arguments from `base`): every result must
// come exactly once, right, and from one of c's own workers.
Task<absl::Status> RunSquares(compute::Computation* c, std::shared_ptr<Events> events, int base, int n) {
  std::vector<TaskRef> jobs;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<TaskRef> j = co_await c->Run("square", std::to_string(base + i));
    if (!j.ok()) co_return j.status();
    jobs.push_back(*j);
  }
  std::multiset<std::string> got, want;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<Value> r = co_await jobs[i].Join(kLong);
    if (!r.ok()) co_return r.status();
    got.insert(r->As<std::string>().value_or(r->DebugString()));
    want.insert(std::to_string(static_cast<int64_t>(base + i) * (base + i)));
  }
  EXPECT_EQ(got, want);
  std::set<std::string> mine;
  for (const compute::WorkerInfo& w : c->workers()) mine.insert(w.uri);
  int finished = 0;
  for (const Value& e : events->Of("job_finished")) {
    ++finished;
    EXPECT_TRUE(mine.contains(e.GetOr<std::string>("worker", ""))) << "a job ran on another client's worker";
  }
  EXPECT_GE(finished, n);
  co_return absl::OkStatus();
}

// The scheduler's answer to `request`.
Task<absl::StatusOr<Value>> Ask(std::string scheduler, Value request) {
  PICOS_CO_ASSIGN_OR_RETURN(remote::Service svc, co_await remote::Service::Locate(compute::kSchedulerService,
                                                                                   Location::Peer(scheduler), kLong));
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef t, co_await svc.Run(std::move(request), kLong));
  absl::StatusOr<Value> r = co_await t.Join(kLong);
  co_return r;
}

Task<absl::Status> TwoClientsBody(NodeProcess& sched) {
  PICOS_CO_ASSIGN_OR_RETURN(Client a, NewClient(sched.uri));
  PICOS_CO_ASSIGN_OR_RETURN(Client b, NewClient(sched.uri));
  std::vector<std::string> all;
  PICOS_CO_RETURN_IF_ERROR(co_await a.c->Schedule(all));
  compute::Computation* ac = a.c.get();
  compute::Computation* bc = b.c.get();
  std::function<bool()> a_has_all = [ac] { return ac->workers_alive() == kCpus; };
  EXPECT_TRUE(co_await WaitUntil(a_has_all)) << "alone, the first client gets every CPU";
  const absl::Time b_joins = absl::Now();
  PICOS_CO_RETURN_IF_ERROR(co_await b.c->Schedule(all));
  // Never more than the node's CPUs between them, sampled all along.
  auto over = std::make_shared<bool>(false);
  std::function<bool()> halves = [ac, bc, over] {
    if (ac->workers_alive() + bc->workers_alive() > kCpus) *over = true;
    return ac->workers_alive() == kCpus / 2 && bc->workers_alive() == kCpus / 2;
  };
  EXPECT_TRUE(co_await WaitUntil(halves)) << "a: " << ac->workers_alive() << " b: " << bc->workers_alive();
  EXPECT_FALSE(*over) << "the node's CPUs were promised twice";
  // A figure, not a bound: B's Schedule called -> 2 + 2 in use (A's two
  // idle workers closed, B's two started).
  std::printf("share_rebalance_ms: %lld ms\n", static_cast<long long>(absl::ToInt64Milliseconds(absl::Now() - b_joins)));
  // Both run jobs at once, each on its own workers.
  TaskRef ra = ThisScheduler().Spawn(RunSquares, ac, a.events, 1, 40);
  TaskRef rb = ThisScheduler().Spawn(RunSquares, bc, b.events, 1000, 40);
  absl::StatusOr<Value> da = co_await ra.Join(kLong);
  absl::StatusOr<Value> db = co_await rb.Join(kLong);
  EXPECT_OK(da.status());
  EXPECT_OK(db.status());
  EXPECT_EQ(a.events->Of("worker_closed").size(), static_cast<size_t>(kCpus / 2)) << "a gave back two workers";
  // The scheduler's info: two clients, two workers each held.
  Value::MapType info_request;
  info_request["op"] = Value("info");
  absl::StatusOr<Value> info = co_await Ask(sched.uri, Value(std::move(info_request)));
  EXPECT_OK(info.status());
  if (info.ok()) {
    const Value& clients = (*info)["clients"];
    EXPECT_TRUE(clients.is_list() && clients.as_list().size() == 2) << info->DebugString();
    if (clients.is_list()) {
      for (const Value& c : clients.as_list()) {
        for (const auto& [uri, n] : c["shares"].as_map()) EXPECT_EQ(n.as_int(), kCpus / 2) << info->DebugString();
      }
    }
  }
  // One closes: the other grows to every CPU.
  PICOS_CO_RETURN_IF_ERROR(co_await a.c->Close());
  std::function<bool()> b_has_all = [bc] { return bc->workers_alive() == kCpus; };
  EXPECT_TRUE(co_await WaitUntil(b_has_all)) << "b: " << bc->workers_alive();
  absl::Status more = co_await RunSquares(bc, b.events, 5000, 20);
  EXPECT_OK(more);
  PICOS_CO_RETURN_IF_ERROR(co_await b.c->Close());
  (void)a.events->task.Terminate();
  (void)b.events->task.Terminate();
  co_return absl::OkStatus();
}

// Starts compute_sched_client with `secret` against `scheduler`.
absl::StatusOr<std::unique_ptr<Process>> SpawnClient(const std::string& scheduler, const std::string& secret,
                                                     int timeout_s) {
  ProcessOptions p;
  p.program = "testing/compute_sched_client";
  p.args = {scheduler, kLibrary, std::to_string(timeout_s)};
  p.env = EnvWithSecret(secret);
  p.stdin_mode = StdioMode::kNull;
  p.stderr_mode = StdioMode::kPipe;
  return Process::Spawn(std::move(p));
}

Task<absl::Status> KilledClientBody(NodeProcess& sched) {
  PICOS_CO_ASSIGN_OR_RETURN(Client a, NewClient(sched.uri));
  std::vector<std::string> all;
  PICOS_CO_RETURN_IF_ERROR(co_await a.c->Schedule(all));
  compute::Computation* ac = a.c.get();
  std::function<bool()> a_has_all = [ac] { return ac->workers_alive() == kCpus; };
  EXPECT_TRUE(co_await WaitUntil(a_has_all));
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Process> k, SpawnClient(sched.uri, kSecret, 60));
  absl::StatusOr<std::string> line = co_await k->out().ReadLine(4096, kLong);
  EXPECT_OK(line.status());
  std::vector<std::string> f = absl::StrSplit(line.ok() ? *line : "", ' ');
  const std::string kid = f.size() >= 2 ? f[1] : "?";
  EXPECT_EQ(f[0], "scheduled") << (line.ok() ? *line : "");
  std::function<bool()> a_has_half = [ac] { return ac->workers_alive() == kCpus / 2; };
  EXPECT_TRUE(co_await WaitUntil(a_has_half)) << "a: " << ac->workers_alive();
  // SIGKILL: nobody says goodbye; the scheduler finds its peer lost.
  (void)k->Kill(SIGKILL);
  const absl::Time killed = absl::Now();
  absl::StatusOr<ExitStatus> ended = co_await k->Wait(kLong);
  EXPECT_OK(ended.status());
  EXPECT_TRUE(co_await WaitUntil(a_has_all)) << "a: " << ac->workers_alive();
  const absl::Duration freed = absl::Now() - killed;
  std::printf("share_freed_after_client_kill_ms: %lld ms\n",
              static_cast<long long>(absl::ToInt64Milliseconds(freed)));
  // The liveness time is 5 s (NodeOptions defaults); the margin is for a
  // busy machine.
  EXPECT_LT(freed, absl::Seconds(30));
  absl::StatusOr<std::string> left = co_await NodeLine(sched, absl::StrCat("client left ", kid));
  EXPECT_OK(left.status());
  absl::Status ran = co_await RunSquares(ac, a.events, 7, 8);
  EXPECT_OK(ran);
  PICOS_CO_RETURN_IF_ERROR(co_await a.c->Close());
  (void)a.events->task.Terminate();
  co_return absl::OkStatus();
}

Task<absl::Status> RefusalsBody(NodeProcess& sched) {
  // The wrong secret: refused in the handshake; the client says so and exits 1.
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Process> w, SpawnClient(sched.uri, "not the cluster secret at all", 5));
  absl::StatusOr<ExitStatus> ended = co_await w->Wait(kLong);
  EXPECT_OK(ended.status());
  if (ended.ok()) { EXPECT_TRUE(ended->code == 1 && ended->signal == 0) << ended->ToString(); }
  absl::StatusOr<std::string> why = co_await w->err().ReadAll(1 << 20);
  EXPECT_OK(why.status());
  if (why.ok()) { EXPECT_THAT(*why, ::testing::HasSubstr("compute_sched_client: ")) << *why; }
  if (why.ok()) { EXPECT_THAT(*why, ::testing::HasSubstr("scheduler")) << *why; }
  // Malformed requests from a peer with the secret.
  std::vector<Value> bad;
  bad.push_back(Value("join"));
  bad.push_back(Value::Map({{"op", "join"}}));
  bad.push_back(Value::Map({{"op", "join"}, {"computation", "../x"}}));
  bad.push_back(Value::Map({{"op", "join"}, {"computation", "c1"}, {"client", "not a task"}}));
  bad.push_back(Value::Map({{"op", "join"}, {"computation", "c1"}, {"client", Self()}, {"demand", int64_t{3}}}));
  bad.push_back(Value::Map(
      {{"op", "join"}, {"computation", "c1"}, {"client", Self()}, {"demand", Value::Map({{"x", int64_t{-1}}})}}));
  bad.push_back(Value::Map({{"op", "held"}, {"computation", "c1"}, {"held", Value::Map({{"x", "two"}})}}));
  bad.push_back(Value::Map({{"op", "reboot"}, {"computation", "c1"}}));
  for (Value& b : bad) {
    const std::string shown = b.DebugString();
    absl::StatusOr<Value> r = co_await Ask(sched.uri, std::move(b));
    EXPECT_FALSE(r.ok()) << shown;
    if (!r.ok()) {
      EXPECT_TRUE(r.status().code() == absl::StatusCode::kInvalidArgument ||
                  r.status().code() == absl::StatusCode::kNotFound)
          << shown << ": " << r.status();
    }
  }
  // Still serving.
  Value::MapType info_request;
  info_request["op"] = Value("info");
  absl::StatusOr<Value> info = co_await Ask(sched.uri, Value(std::move(info_request)));
  EXPECT_OK(info.status());
  if (info.ok()) { EXPECT_EQ((*info)["clients"].as_list().size(), 0u) << info->DebugString(); }
  co_return absl::OkStatus();
}

// A client's allocation function asks for one worker: the share it leaves
// goes to the other client (max-min fairness, not equal halves).
Task<absl::Status> AllocationBody(NodeProcess& sched) {
  compute::AllocationFunction one = [](const std::string&, const compute::HostFacts&) { return 1; };
  PICOS_CO_ASSIGN_OR_RETURN(Client a, NewClient(sched.uri, one));
  PICOS_CO_ASSIGN_OR_RETURN(Client b, NewClient(sched.uri));
  std::vector<std::string> all;
  PICOS_CO_RETURN_IF_ERROR(co_await a.c->Schedule(all));
  PICOS_CO_RETURN_IF_ERROR(co_await b.c->Schedule(all));
  compute::Computation* ac = a.c.get();
  compute::Computation* bc = b.c.get();
  std::function<bool()> split = [ac, bc] { return ac->workers_alive() == 1 && bc->workers_alive() == kCpus - 1; };
  EXPECT_TRUE(co_await WaitUntil(split)) << "a: " << ac->workers_alive() << " b: " << bc->workers_alive();
  absl::Status ran = co_await RunSquares(ac, a.events, 3, 5);
  EXPECT_OK(ran);
  ran = co_await RunSquares(bc, b.events, 30, 15);
  EXPECT_OK(ran);
  PICOS_CO_RETURN_IF_ERROR(co_await b.c->Close());
  PICOS_CO_RETURN_IF_ERROR(co_await a.c->Close());
  (void)a.events->task.Terminate();
  (void)b.events->task.Terminate();
  co_return absl::OkStatus();
}

// Schedule of client `c` in a task of its own: its status.
Task<absl::Status> ScheduleAll(compute::Computation* c) {
  std::vector<std::string> all;
  absl::Status st = co_await c->Schedule(all);
  co_return st;
}

// More clients than CPUs: a node of 4 and five clients. The fifth gets no
// share and waits in Schedule (pycos queues a second client whole); its
// jobs, submitted meanwhile, wait too. When one client closes, the fifth
// gets its CPU and its jobs run.
Task<absl::Status> QueuedBody(NodeProcess& sched) {
  std::vector<Client> clients;
  for (int i = 0; i < kCpus; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(Client c, NewClient(sched.uri));
    absl::Status st = co_await ScheduleAll(c.c.get());
    if (!st.ok()) co_return st;
    clients.push_back(std::move(c));
  }
  std::vector<compute::Computation*> cs;
  for (Client& c : clients) cs.push_back(c.c.get());
  std::function<bool()> one_each = [cs] {
    for (compute::Computation* c : cs) {
      if (c->workers_alive() != 1) return false;
    }
    return true;
  };
  EXPECT_TRUE(co_await WaitUntil(one_each)) << "four clients on four CPUs: one each";
  PICOS_CO_ASSIGN_OR_RETURN(Client late, NewClient(sched.uri));
  compute::Computation* lc = late.c.get();
  TaskRef scheduling = ThisScheduler().Spawn(ScheduleAll, lc);
  // Its jobs wait (not fail) while it has no share.
  absl::StatusOr<TaskRef> job = absl::UnknownError("not run");
  for (int i = 0; i < 500 && !job.ok(); ++i) {
    job = co_await lc->Run("square", "12");
    if (!job.ok()) {
      absl::Status slept = co_await Sleep(absl::Milliseconds(10));
      if (!slept.ok()) co_return slept;
    }
  }
  EXPECT_OK(job.status()) << "a job of a client without a share yet is taken, to wait";
  absl::Status slept = co_await Sleep(absl::Milliseconds(300));
  EXPECT_OK(slept);
  EXPECT_EQ(lc->workers_alive(), 0u) << "a fifth client on four CPUs got a worker";
  PICOS_CO_RETURN_IF_ERROR(co_await clients[0].c->Close());
  absl::StatusOr<Value> scheduled = co_await scheduling.Join(kLong);
  EXPECT_OK(scheduled.status());
  if (scheduled.ok()) { EXPECT_EQ(scheduled->DebugString(), Value().DebugString()); }
  EXPECT_EQ(lc->workers_alive(), 1u);
  if (job.ok()) {
    absl::StatusOr<Value> r = co_await job->Join(kLong);
    EXPECT_OK(r.status());
    if (r.ok()) { EXPECT_EQ(r->As<std::string>().value_or(""), "144"); }
  }
  for (size_t i = 1; i < clients.size(); ++i) {
    absl::Status closed = co_await clients[i].c->Close();
    EXPECT_OK(closed);
  }
  PICOS_CO_RETURN_IF_ERROR(co_await late.c->Close());
  for (Client& c : clients) (void)c.events->task.Terminate();
  (void)late.events->task.Terminate();
  co_return absl::OkStatus();
}

// A node and a scheduler for `body`, stopped whatever happens.
// (A plain function pointer: a std::function temporary in the co_await
// expression is destroyed twice by g++ 12.)
Task<> WithCluster(const char* name, Task<absl::Status> (*body)(NodeProcess&)) {
  const std::string dest = FreshDir(name);
  absl::StatusOr<NodeProcess> node = co_await StartNode(kCpus, dest);
  EXPECT_OK(node.status());
  if (!node.ok()) co_return;
  std::vector<std::string> nodes = {node->uri};
  absl::StatusOr<NodeProcess> sched = co_await StartScheduler(nodes);
  EXPECT_OK(sched.status());
  if (sched.ok()) {
    absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
    EXPECT_OK(me.status());
    if (me.ok()) {
      absl::Status ran = co_await body(*sched);
      EXPECT_OK(ran);
      me->reset();
    }
    absl::Status s = co_await StopNode(*sched);
    EXPECT_OK(s);
  }
  absl::Status n = co_await StopNode(*node);
  EXPECT_OK(n);
}

PICOS_CORO_TEST(ComputeSched, TwoClientsShareANodeFairly) {
  co_await WithCluster("compute-sched-two", TwoClientsBody);
}

PICOS_CORO_TEST(ComputeSched, AllocationFunctionLimitsAShareOthersTakeTheRest) {
  co_await WithCluster("compute-sched-alloc", AllocationBody);
}

// Two nodes of 2 CPUs and two clients: 1 + 1 each on both. One node is
// killed: the scheduler says it is lost and its shares go to none; the
// clients keep their worker on the other node and still run jobs.
PICOS_CORO_TEST(ComputeSched, NodeLostSharesDropped) {
  const std::string d1 = FreshDir("compute-sched-lost-1");
  const std::string d2 = FreshDir("compute-sched-lost-2");
  absl::StatusOr<NodeProcess> n1 = co_await StartNode(2, d1);
  CO_ASSERT_OK(n1);
  absl::StatusOr<NodeProcess> n2 = co_await StartNode(2, d2);
  if (!n2.ok()) (void)co_await StopNode(*n1);
  CO_ASSERT_OK(n2);
  std::vector<std::string> nodes = {n1->uri, n2->uri};
  absl::StatusOr<NodeProcess> sched = co_await StartScheduler(nodes);
  EXPECT_OK(sched.status());
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  EXPECT_OK(me.status());
  if (sched.ok() && me.ok()) {
    absl::StatusOr<Client> a = NewClient(sched->uri);
    absl::StatusOr<Client> b = NewClient(sched->uri);
    EXPECT_OK(a.status());
    EXPECT_OK(b.status());
    std::vector<std::string> all;
    absl::Status sa = a.status();
    absl::Status sb = b.status();
    if (sa.ok()) sa = co_await a->c->Schedule(all);
    if (sb.ok()) sb = co_await b->c->Schedule(all);
    EXPECT_OK(sa);
    EXPECT_OK(sb);
    if (sa.ok() && sb.ok()) {
      compute::Computation* ac = a->c.get();
      compute::Computation* bc = b->c.get();
      std::function<bool()> split = [ac, bc] { return ac->workers_alive() == 2 && bc->workers_alive() == 2; };
      EXPECT_TRUE(co_await WaitUntil(split)) << "a: " << ac->workers_alive() << " b: " << bc->workers_alive();
      for (const compute::Computation* c : {ac, bc}) {
        std::map<std::string, int> per_node;
        for (const compute::WorkerInfo& w : c->workers()) per_node[w.node] += w.state == compute::WorkerState::kClosed ? 0 : 1;
        EXPECT_EQ(per_node[n1->uri], 1);
        EXPECT_EQ(per_node[n2->uri], 1);
      }
      absl::Status stopped = co_await StopNode(*n2);
      EXPECT_OK(stopped);
      absl::StatusOr<std::string> lost = co_await NodeLine(*sched, absl::StrCat("node lost ", n2->uri));
      EXPECT_OK(lost.status());
      std::function<bool()> one_each = [ac, bc] { return ac->workers_alive() == 1 && bc->workers_alive() == 1; };
      EXPECT_TRUE(co_await WaitUntil(one_each)) << "a: " << ac->workers_alive() << " b: " << bc->workers_alive();
      Value::MapType info_request;
      info_request["op"] = Value("info");
      absl::StatusOr<Value> info = co_await Ask(sched->uri, Value(std::move(info_request)));
      EXPECT_OK(info.status());
      if (info.ok()) {
        for (const Value& c : (*info)["clients"].as_list()) {
          const Value* share = c["shares"].Find(n2->uri);
          EXPECT_TRUE(share != nullptr && share->is_int() && share->as_int() == 0) << info->DebugString();
        }
      }
      absl::Status ran = co_await RunSquares(ac, a->events, 2, 6);
      EXPECT_OK(ran);
      ran = co_await RunSquares(bc, b->events, 20, 6);
      EXPECT_OK(ran);
    }
    if (a.ok()) {
      absl::Status closed = co_await a->c->Close();
      EXPECT_OK(closed);
      (void)a->events->task.Terminate();
    }
    if (b.ok()) {
      absl::Status closed = co_await b->c->Close();
      EXPECT_OK(closed);
      (void)b->events->task.Terminate();
    }
  }
  if (me.ok()) me->reset();
  if (sched.ok()) {
    absl::Status s = co_await StopNode(*sched);
    EXPECT_OK(s);
  }
  if (!n2->process->exited()) (void)co_await StopNode(*n2);
  absl::Status s1 = co_await StopNode(*n1);
  EXPECT_OK(s1);
}

// --node_dns: every address the name resolves to is a node ("localhost" here;
// a Kubernetes headless Service's name in tools/deploy/k8s).
PICOS_CORO_TEST(ComputeSched, NodesFromDns) {
  const std::string dest = FreshDir("compute-sched-dns");
  absl::StatusOr<NodeProcess> node = co_await StartNode(2, dest);
  CO_ASSERT_OK(node);
  const std::string port = node->uri.substr(node->uri.rfind(':') + 1);
  std::vector<std::string> none;
  std::vector<std::string> dns = {absl::StrCat("--node_dns=localhost:", port)};
  absl::StatusOr<NodeProcess> sched = co_await StartScheduler(none, dns);
  EXPECT_OK(sched.status()) << "no node up from --node_dns";
  if (sched.ok()) {
    absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
    EXPECT_OK(me.status());
    if (me.ok()) {
      Value::MapType info_request;
      info_request["op"] = Value("info");
      absl::StatusOr<Value> info = co_await Ask(sched->uri, Value(std::move(info_request)));
      EXPECT_OK(info.status());
      bool found = false;
      if (info.ok()) {
        for (const Value& n : (*info)["nodes"].as_list()) {
          found = found || (n.GetOr<std::string>("uri", "") == node->uri && n.GetOr<bool>("up", false));
        }
      }
      EXPECT_TRUE(found) << (info.ok() ? info->DebugString() : "");
      me->reset();
    }
    absl::Status s = co_await StopNode(*sched);
    EXPECT_OK(s);
  }
  absl::Status n = co_await StopNode(*node);
  EXPECT_OK(n);
}

PICOS_CORO_TEST(ComputeSched, MoreClientsThanCpusWaitForAShare) {
  co_await WithCluster("compute-sched-queue", QueuedBody);
}

// SIGTERM: "signal SIGTERM: closing", "scheduler closed", exit status 0.
// --save_config writes what --config reads.
PICOS_CORO_TEST(ComputeSched, SigtermClosesAndSaveConfigRoundTrips) {
  const std::string dir = FreshDir("compute-sched-sig");
  // A node that is not there: the scheduler keeps trying it, and serves.
  ProcessOptions p;
  p.program = "compute/picos-scheduler";
  p.args = {"--listen=tcp://127.0.0.1:0", "--node=tcp://127.0.0.1:1"};
  p.env = EnvWithSecret(kSecret);
  p.stdin_mode = StdioMode::kNull;
  p.stderr_mode = StdioMode::kInherit;
  absl::StatusOr<std::unique_ptr<Process>> proc = Process::Spawn(std::move(p));
  CO_ASSERT_OK(proc.status());
  NodeProcess s{*std::move(proc), ""};
  absl::StatusOr<std::string> listening = co_await NodeLine(s, "listening ");
  EXPECT_OK(listening.status());
  (void)s.process->Kill(SIGTERM);
  absl::StatusOr<std::string> closing = co_await NodeLine(s, "signal SIGTERM: closing");
  EXPECT_OK(closing.status());
  absl::StatusOr<std::string> closed = co_await NodeLine(s, "scheduler closed");
  EXPECT_OK(closed.status());
  absl::StatusOr<ExitStatus> ended = co_await s.process->Wait(kLong);
  EXPECT_OK(ended.status());
  if (ended.ok()) { EXPECT_TRUE(ended->code == 0 && ended->signal == 0) << ended->ToString(); }

  const std::string conf = dir + "/sched.conf";
  ProcessOptions save;
  save.program = "compute/picos-scheduler";
  save.args = {absl::StrCat("--save_config=", conf), "--node=tcp://10.0.0.2:9706", "--node=tcp://10.0.0.3:9706",
               "--max_clients=7"};
  save.env = EnvWithSecret(kSecret);
  save.stdin_mode = StdioMode::kNull;
  save.stderr_mode = StdioMode::kInherit;
  absl::StatusOr<std::unique_ptr<Process>> saver = Process::Spawn(std::move(save));
  CO_ASSERT_OK(saver.status());
  absl::StatusOr<ExitStatus> saved = co_await (*saver)->Wait(kLong);
  EXPECT_TRUE(saved.ok() && saved->code == 0 && saved->signal == 0);
  std::ifstream in(conf);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, ::testing::HasSubstr("\nnode=tcp://10.0.0.2:9706,tcp://10.0.0.3:9706\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("\nmax_clients=7\n"));
  // Read back, with a bad value on the command line: the command line's
  // error, with no config line named.
  ProcessOptions load;
  load.program = "compute/picos-scheduler";
  load.args = {absl::StrCat("--config=", conf), "--node_retry=0"};
  load.env = EnvWithSecret(kSecret);
  load.stdin_mode = StdioMode::kNull;
  load.stderr_mode = StdioMode::kPipe;
  absl::StatusOr<std::unique_ptr<Process>> loader = Process::Spawn(std::move(load));
  CO_ASSERT_OK(loader.status());
  absl::StatusOr<std::string> err = co_await (*loader)->err().ReadAll(1 << 16);
  absl::StatusOr<ExitStatus> loaded = co_await (*loader)->Wait(kLong);
  EXPECT_TRUE(loaded.ok() && loaded->code == 2) << (loaded.ok() ? loaded->ToString() : "");
  EXPECT_EQ(err.value_or(""), "picos-scheduler: --node_retry=0: seconds, 0.1 .. 3600\n");
}

// A node that comes up after a client joined: the scheduler tells the
// client of it, the client applies its allocation and says what it wants
// there, and grows onto it (2 workers on the first node, then 2 more).
PICOS_CORO_TEST(ComputeSched, NodeThatComesLaterIsShared) {
  const std::string d1 = FreshDir("compute-sched-late-1");
  const std::string d2 = FreshDir("compute-sched-late-2");
  absl::StatusOr<NodeProcess> n1 = co_await StartNode(2, d1);
  CO_ASSERT_OK(n1);
  // The second node's address is known before it starts: an abstract unix
  // socket named by the test.
  const std::string late_uri = absl::StrCat("unix://@picos-sched-late-", getpid());
  ProcessOptions p;
  p.program = "compute/picos-scheduler";
  p.args = {"--listen=tcp://127.0.0.1:0", "--node_retry=0.2", absl::StrCat("--node=", n1->uri),
            absl::StrCat("--node=", late_uri)};
  p.env = EnvWithSecret(kSecret);
  p.stdin_mode = StdioMode::kNull;
  p.stderr_mode = StdioMode::kInherit;
  absl::StatusOr<std::unique_ptr<Process>> proc = Process::Spawn(std::move(p));
  if (!proc.ok()) (void)co_await StopNode(*n1);
  CO_ASSERT_OK(proc.status());
  NodeProcess sched{*std::move(proc), ""};
  absl::StatusOr<std::string> listening = co_await NodeLine(sched, "listening ");
  EXPECT_OK(listening.status());
  if (listening.ok()) sched.uri = listening->substr(std::string("listening ").size());
  absl::StatusOr<std::string> up = co_await NodeLine(sched, absl::StrCat("node up ", n1->uri));
  EXPECT_OK(up.status());
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  EXPECT_OK(me.status());
  std::optional<NodeProcess> n2;
  if (up.ok() && me.ok()) {
    absl::StatusOr<Client> a = NewClient(sched.uri);
    EXPECT_OK(a.status());
    if (a.ok()) {
      compute::Computation* ac = a->c.get();
      absl::Status st = co_await ScheduleAll(ac);
      EXPECT_OK(st);
      std::function<bool()> two = [ac] { return ac->workers_alive() == 2; };
      EXPECT_TRUE(co_await WaitUntil(two)) << "a: " << ac->workers_alive();
      std::vector<std::string> extra = {absl::StrCat("--listen=", late_uri)};
      absl::StatusOr<NodeProcess> started = co_await StartNode(2, d2, extra);
      EXPECT_OK(started.status());
      if (started.ok()) {
        n2 = *std::move(started);
        absl::StatusOr<std::string> late_up = co_await NodeLine(sched, absl::StrCat("node up ", late_uri));
        EXPECT_OK(late_up.status());
        std::function<bool()> four = [ac] { return ac->workers_alive() == 4; };
        EXPECT_TRUE(co_await WaitUntil(four)) << "a: " << ac->workers_alive();
        std::set<std::string> used;
        for (const compute::WorkerInfo& w : ac->workers()) used.insert(w.node);
        EXPECT_TRUE(used.contains(late_uri)) << "no worker on the node that came later";
        absl::Status ran = co_await RunSquares(ac, a->events, 40, 12);
        EXPECT_OK(ran);
      }
      absl::Status closed = co_await a->c->Close();
      EXPECT_OK(closed);
      (void)a->events->task.Terminate();
    }
  }
  if (me.ok()) me->reset();
  absl::Status s = co_await StopNode(sched);
  EXPECT_OK(s);
  if (n2.has_value()) {
    absl::Status s2 = co_await StopNode(*n2);
    EXPECT_OK(s2);
  }
  absl::Status s1 = co_await StopNode(*n1);
  EXPECT_OK(s1);
}

PICOS_CORO_TEST(ComputeSched, KilledClientFreesItsShare) {
  co_await WithCluster("compute-sched-kill", KilledClientBody);
}

PICOS_CORO_TEST(ComputeSched, WrongSecretAndMalformedRequestsRefused) {
  co_await WithCluster("compute-sched-refuse", RefusalsBody);
}

}  // namespace
}  // namespace picos::testing
