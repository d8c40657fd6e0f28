// The compute cluster end to end (compute/computation.h,
// compute/picos_node.cc): a real picos-node process with two worker
// processes on loopback, a computation library built with picos_computation
// (testing/compute_testlib.cc) shipped to it, jobs run and their results
// checked, a job longer than the heartbeats' liveness time not taken for a
// lost worker; bad requests refused (not ELF, wrong digest, paths that
// escape, malformed fields) while the node keeps serving; a function the library does not register refused; a worker
// killed with SIGKILL mid-job reported by its node and its job run again on
// the other worker; a killed node leaves no worker behind.
//
// Every wait is bounded (kLong, which only a hang reaches). The test kills
// only the node it started and a worker whose parent it checked is that
// node, and kills the node (SIGKILL, then waits) whatever happens.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "compute/protocol.h"
#include "core/io/process.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/files.h"
#include "core/remote/node.h"
#include "core/remote/service.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"
#include "transports/default_transports.h"

extern char** environ;

namespace picos::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSecret[] = "compute cluster test secret";
constexpr absl::Duration kLong = absl::Seconds(60);  // only a hang reaches it
constexpr char kLibrary[] = "testing/libcompute_testlib.so";

std::string FreshDir(const std::string& name) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, "-", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

struct NodeProcess {
  std::unique_ptr<Process> process;
  std::string uri;
};

// Starts picos-node with `cpus` workers per computation, files into `dest`,
// and reads the URI it listens at.
Task<absl::StatusOr<NodeProcess>> StartNode(int cpus, std::string dest) {
  ProcessOptions p;
  p.program = "compute/picos-node";
  p.args = {absl::StrCat("--cpus=", cpus), "--listen=tcp://127.0.0.1:0", absl::StrCat("--dest_path=", dest)};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "PICOS_REMOTE_")) env.emplace_back(*e);
  }
  env.push_back(absl::StrCat("PICOS_REMOTE_SECRET=", kSecret));
  p.env = std::move(env);
  p.stdin_mode = StdioMode::kNull;
  p.stderr_mode = StdioMode::kInherit;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Process> proc, Process::Spawn(std::move(p)));
  NodeProcess n{std::move(proc), ""};
  absl::StatusOr<std::string> line = co_await n.process->out().ReadLine(4096, kLong);
  if (!line.ok()) {
    (void)n.process->Kill(SIGKILL);
    (void)co_await n.process->Wait(kLong);
    co_return line.status();
  }
  absl::string_view l = *line;
  if (!absl::ConsumePrefix(&l, "listening ")) {
    (void)n.process->Kill(SIGKILL);
    (void)co_await n.process->Wait(kLong);
    co_return absl::InternalError(absl::StrCat("the node said: ", *line));
  }
  n.uri = std::string(absl::StripTrailingAsciiWhitespace(l));
  co_return n;
}

// Kills the node (its pid only) and waits for it.
Task<> StopNode(NodeProcess& n) {
  if (!n.process->exited()) (void)n.process->Kill(SIGKILL);
  absl::StatusOr<ExitStatus> st = co_await n.process->Wait(kLong);
  EXPECT_OK(st.status());
}

// The node's next stdout line that starts with `prefix` (others skipped).
Task<absl::StatusOr<std::string>> NodeLine(NodeProcess& n, std::string prefix) {
  for (int i = 0; i < 100; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await n.process->out().ReadLine(4096, kLong));
    if (absl::StartsWith(line, prefix)) co_return std::string(absl::StripTrailingAsciiWhitespace(line));
  }
  co_return absl::NotFoundError(absl::StrCat("no line starting with ", prefix, " in 100"));
}

// The parent pid of `pid` (/proc), or -1.
int ParentOf(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> f = absl::StrSplit(stat.substr(close + 2), ' ');
  int ppid = -1;
  if (f.size() < 2 || !absl::SimpleAtoi(f[1], &ppid)) return -1;
  return ppid;
}

// Whether `pid` is gone (or a zombie nobody reaped yet).
bool Gone(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  if (!in) return true;
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

void ExpectValue(const absl::StatusOr<Value>& r, const Value& want) {
  EXPECT_OK(r.status());
  if (r.ok()) {
    EXPECT_EQ(*r, want) << r->DebugString();
  }
}

Task<absl::StatusOr<std::unique_ptr<remote::Node>>> ClientNode() {
  remote::NodeOptions o;
  o.secret = kSecret;
  o.name = "compute-client";
  o.connect_timeout = kLong;
  o.handshake_timeout = kLong;
  co_return co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
}

// The worker lines ("worker started <id> <index> <pid> <uri>") of a
// computation: pids by index.
Task<absl::StatusOr<std::vector<int>>> WorkerPids(NodeProcess& n, int count) {
  std::vector<int> pids(count, -1);
  for (int i = 0; i < count; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await NodeLine(n, "worker started "));
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    int index = -1, pid = -1;
    if (f.size() != 6 || !absl::SimpleAtoi(f[3], &index) || !absl::SimpleAtoi(f[4], &pid) || index < 0 ||
        index >= count) {
      co_return absl::InternalError(absl::StrCat("bad line: ", line));
    }
    pids[index] = pid;
  }
  co_return pids;
}

PICOS_CORO_TEST(Compute, TwentyJobsOnTwoWorkersAndAnUnknownFunctionRefused) {
  const std::string dest = FreshDir("compute-dest-a");
  absl::StatusOr<NodeProcess> node = co_await StartNode(2, dest);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (!me.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(me);
  {
    compute::ComputationOptions o;
    o.library = kLibrary;
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    CO_ASSERT_OK(c);
    std::vector<std::string> nodes = {node->uri};
    const absl::Time t0 = absl::Now();
    absl::Status scheduled = co_await (*c)->Schedule(nodes);
    EXPECT_OK(scheduled);
    std::printf("schedule_ms: %.1f ms (library shipped, 2 workers started and located)\n",
                absl::ToDoubleMilliseconds(absl::Now() - t0));
    EXPECT_EQ((*c)->workers_alive(), 2u);
    absl::StatusOr<std::vector<int>> pids = co_await WorkerPids(*node, 2);
    EXPECT_OK(pids.status());
    if (pids.ok()) {
      for (int pid : *pids) EXPECT_EQ(ParentOf(pid), node->process->pid()) << "a worker is the node's child";
    }
    EXPECT_TRUE(std::filesystem::is_regular_file(
        absl::StrCat(dest, "/", (*c)->id(), "/libcompute_testlib.so")));
    if (scheduled.ok()) {
      // A job longer than the heartbeats' liveness time (5 s): its worker
      // still answers them, so it is not taken for lost. Meanwhile every
      // other job waits for the one free worker.
      const std::string marks = FreshDir("compute-marks-a");
      absl::StatusOr<TaskRef> long_job = co_await (*c)->Run("sleep_ms", absl::StrCat("7000:", marks, "/long"));
      CO_ASSERT_OK(long_job);
      std::vector<TaskRef> jobs;
      for (int i = 0; i < 20; ++i) {
        absl::StatusOr<TaskRef> job = co_await (*c)->Run("square", absl::StrCat(i));
        CO_ASSERT_OK(job);
        jobs.push_back(*job);
      }
      for (int i = 0; i < 20; ++i) {
        absl::StatusOr<Value> r = co_await jobs[i].Join(kLong);
        CO_ASSERT_OK(r);
        EXPECT_EQ(*r, Value::Bytes(absl::StrCat(i * i))) << "job " << i;
      }
      absl::StatusOr<Value> slept = co_await long_job->Join(kLong);
      ExpectValue(slept, Value::Bytes("slept 7000"));
      EXPECT_EQ((*c)->jobs_rerun(), 0u);
      EXPECT_EQ((*c)->workers_alive(), 2u);
      absl::StatusOr<TaskRef> unknown = co_await (*c)->Run("cube", "3");
      CO_ASSERT_OK(unknown);
      absl::StatusOr<Value> refused = co_await unknown->Join(kLong);
      EXPECT_THAT(refused.status(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no function 'cube'")));
      EXPECT_THAT(refused.status(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("square")));
      absl::StatusOr<TaskRef> bad = co_await (*c)->Run("square", "seven");
      CO_ASSERT_OK(bad);
      absl::StatusOr<Value> failed = co_await bad->Join(kLong);
      EXPECT_THAT(failed.status(), StatusIs(absl::StatusCode::kAborted, HasSubstr("not a number")));
      // The workers still serve after a refusal and a failure.
      absl::StatusOr<TaskRef> after = co_await (*c)->Run("square", "12");
      CO_ASSERT_OK(after);
      absl::StatusOr<Value> r = co_await after->Join(kLong);
      ExpectValue(r, Value::Bytes("144"));
    }
    absl::Status closed = co_await (*c)->Close();
    EXPECT_OK(closed);
    EXPECT_FALSE(std::filesystem::exists(absl::StrCat(dest, "/", (*c)->id()))) << "files removed at close";
    absl::StatusOr<TaskRef> late = co_await (*c)->Run("square", "1");
    EXPECT_THAT(late.status(), StatusIs(absl::StatusCode::kFailedPrecondition));
    for (int i = 0; i < 2; ++i) {
      absl::StatusOr<std::string> line = co_await NodeLine(*node, "worker closed ");
      EXPECT_OK(line.status());
    }
  }
  me->reset();
  co_await StopNode(*node);
}

PICOS_CORO_TEST(Compute, AWorkerKilledMidJobIsReportedAndItsJobRunsAgain) {
  const std::string dest = FreshDir("compute-dest-b");
  const std::string marks = FreshDir("compute-marks");
  absl::StatusOr<NodeProcess> node = co_await StartNode(2, dest);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (!me.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(me);
  std::vector<int> pids;
  {
    compute::ComputationOptions o;
    o.library = kLibrary;
    o.max_retries = 1;
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    CO_ASSERT_OK(c);
    std::vector<std::string> nodes = {node->uri};
    absl::Status scheduled = co_await (*c)->Schedule(nodes);
    absl::StatusOr<std::vector<int>> started = co_await WorkerPids(*node, 2);
    if (!scheduled.ok() || !started.ok()) co_await StopNode(*node);
    CO_ASSERT_OK(scheduled);
    CO_ASSERT_OK(started);
    pids = *started;
    CO_ASSERT_TRUE(ParentOf(pids[0]) == node->process->pid());
    // Two slow jobs, one per worker; each says when it runs.
    std::vector<TaskRef> slow;
    for (int i = 0; i < 2; ++i) {
      absl::StatusOr<TaskRef> job = co_await (*c)->Run("sleep_ms", absl::StrCat("2000:", marks, "/", i));
      CO_ASSERT_OK(job);
      slow.push_back(*job);
    }
    bool running = false;
    for (int i = 0; i < 6000 && !running; ++i) {  // 60 s at most
      running = std::filesystem::exists(marks + "/0") && std::filesystem::exists(marks + "/1");
      if (!running) {
        absl::Status slept = co_await Sleep(absl::Milliseconds(10));
        EXPECT_OK(slept);
      }
    }
    EXPECT_TRUE(running) << "both jobs running";
    const absl::Time killed_at = absl::Now();
    CO_ASSERT_TRUE(kill(pids[0], SIGKILL) == 0);
    // Jobs queued behind them, while one worker is left.
    std::vector<TaskRef> quick;
    for (int i = 0; i < 4; ++i) {
      absl::StatusOr<TaskRef> job = co_await (*c)->Run("square", absl::StrCat(i + 2));
      CO_ASSERT_OK(job);
      quick.push_back(*job);
    }
    absl::StatusOr<std::string> lost = co_await NodeLine(*node, "worker lost ");
    EXPECT_OK(lost.status());
    if (lost.ok()) {
      EXPECT_THAT(*lost, HasSubstr(absl::StrCat(" 0 ", pids[0], " killed by signal 9")));
      std::printf("worker_lost_detected_ms: %.1f ms\n", absl::ToDoubleMilliseconds(absl::Now() - killed_at));
    }
    for (int i = 0; i < 2; ++i) {
      absl::StatusOr<Value> r = co_await slow[i].Join(kLong);
      SCOPED_TRACE(absl::StrCat("slow job ", i));
      ExpectValue(r, Value::Bytes("slept 2000"));
    }
    for (int i = 0; i < 4; ++i) {
      absl::StatusOr<Value> r = co_await quick[i].Join(kLong);
      SCOPED_TRACE(absl::StrCat("quick job ", i));
      ExpectValue(r, Value::Bytes(absl::StrCat((i + 2) * (i + 2))));
    }
    EXPECT_EQ((*c)->jobs_rerun(), 1u);
    EXPECT_EQ((*c)->workers_alive(), 1u);
    EXPECT_EQ(ParentOf(pids[1]), node->process->pid());
  }
  me->reset();
  // A node killed outright takes its workers with it.
  co_await StopNode(*node);
  bool gone = false;
  for (int i = 0; i < 6000 && !gone; ++i) {  // 60 s at most
    gone = Gone(pids[1]);
    if (!gone) {
      absl::Status slept = co_await Sleep(absl::Milliseconds(10));
      EXPECT_OK(slept);
    }
  }
  EXPECT_TRUE(gone) << "worker " << pids[1] << " outlived its node";
}

// Requests a node must refuse: each is an error to the client, and the node
// keeps serving (a good computation runs after them).
PICOS_CORO_TEST(Compute, BadRequestsAreRefusedAndTheNodeKeepsServing) {
  const std::string dest = FreshDir("compute-dest-c");
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (!me.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(me);
  {
    // A library that is not an ELF file.
    const std::string text = FreshDir("compute-text") + "/libnot_elf.so";
    {
      std::ofstream(text) << "#!/bin/sh\necho not a library\n";
    }
    compute::ComputationOptions o;
    o.library = text;
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    CO_ASSERT_OK(c);
    std::vector<std::string> nodes = {node->uri};
    absl::Status scheduled = co_await (*c)->Schedule(nodes);
    EXPECT_THAT(scheduled, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an ELF file")));
    EXPECT_FALSE(std::filesystem::exists(absl::StrCat(dest, "/", (*c)->id()))) << "a refused start leaves no file";
    absl::StatusOr<TaskRef> run = co_await (*c)->Run("square", "1");
    EXPECT_THAT(run.status(), StatusIs(absl::StatusCode::kFailedPrecondition));
    absl::Status closed = co_await (*c)->Close();
    EXPECT_THAT(closed, StatusIs(absl::StatusCode::kNotFound)) << "nothing was started";

    // Hand-made requests to the node's service.
    absl::StatusOr<remote::Service> svc =
        co_await remote::Service::Locate(compute::kNodeService, Location::Peer(node->uri), kLong);
    CO_ASSERT_OK(svc);
    struct Case {
      Value request;
      absl::StatusCode code;
      std::string says;
    };
    const std::string zeros(64, '0');
    std::vector<Case> cases;
    cases.push_back({Value(5), absl::StatusCode::kInvalidArgument, "malformed request"});
    cases.push_back({Value::Map({{"op", "start"}, {"computation", "../up"}}), absl::StatusCode::kInvalidArgument,
                     "malformed request"});
    cases.push_back({Value::Map({{"op", "start"}, {"computation", "c1"}, {"library", "../../etc/passwd"},
                                 {"sha256", zeros}}),
                     absl::StatusCode::kInvalidArgument, "malformed start"});
    cases.push_back({Value::Map({{"op", "start"}, {"computation", "c1"}, {"library", "lib.so"}, {"sha256", "ab"}}),
                     absl::StatusCode::kInvalidArgument, "malformed start"});
    cases.push_back({Value::Map({{"op", "start"}, {"computation", "c1"}, {"library", "lib.so"}, {"sha256", zeros}}),
                     absl::StatusCode::kNotFound, "no library lib.so"});
    cases.push_back({Value::Map({{"op", "explode"}, {"computation", "c1"}}), absl::StatusCode::kInvalidArgument,
                     "unknown op"});
    cases.push_back({Value::Map({{"op", "close"}, {"computation", "c1"}}), absl::StatusCode::kNotFound,
                     "no computation c1"});
    for (Case& k : cases) {
      SCOPED_TRACE(k.request.DebugString());
      absl::StatusOr<TaskRef> t = co_await svc->Run(k.request, kLong);
      absl::StatusOr<Value> r = absl::UnknownError("not run");
      if (t.ok()) {
        r = co_await t->Join(kLong);
      } else {
        r = t.status();
      }
      EXPECT_THAT(r.status(), StatusIs(k.code, HasSubstr(k.says)));
    }
    // A library shipped whole but announced with another digest.
    compute::ComputationOptions good;
    good.library = kLibrary;
    absl::StatusOr<std::unique_ptr<compute::Computation>> g = compute::Computation::Create(good);
    CO_ASSERT_OK(g);
    remote::SendFileOptions so;
    so.dir = "c2";
    absl::Status sent = co_await remote::SendFile(Location::Peer(node->uri), kLibrary, so);
    CO_ASSERT_OK(sent);
    Value wrong_digest = Value::Map(
        {{"op", "start"}, {"computation", "c2"}, {"library", "libcompute_testlib.so"}, {"sha256", zeros}});
    absl::StatusOr<TaskRef> t = co_await svc->Run(std::move(wrong_digest), kLong);
    CO_ASSERT_OK(t);
    absl::StatusOr<Value> r = co_await t->Join(kLong);
    EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("SHA-256 mismatch")));
    EXPECT_FALSE(std::filesystem::exists(dest + "/c2")) << "a refused start leaves no file";
    // The node still serves a good computation.
    absl::Status ok = co_await (*g)->Schedule(nodes);
    EXPECT_OK(ok);
    if (ok.ok()) {
      absl::StatusOr<TaskRef> job = co_await (*g)->Run("square", "9");
      CO_ASSERT_OK(job);
      absl::StatusOr<Value> nine = co_await job->Join(kLong);
      ExpectValue(nine, Value::Bytes("81"));
    }
    absl::Status closed_good = co_await (*g)->Close();
    EXPECT_OK(closed_good);
    svc->Close().IgnoreError();
  }
  me->reset();
  co_await StopNode(*node);
}

}  // namespace
}  // namespace picos::testing
