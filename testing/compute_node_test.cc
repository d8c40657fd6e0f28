// The node daemon as an operator runs it (compute/node_daemon.h), each
// test with real picos-node processes on loopback: SIGTERM closes every
// computation (no worker left, no file left, a goodbye to the client, exit
// status 0); a client killed with SIGKILL, and one that drops its
// Computation, leave a zombie the node closes after --zombie_period;
// --clean kills a stale worker named by a pid file and never an unrelated
// process; --trusted_signer refuses unsigned and wrongly signed libraries
// and runs a signed one (keys and signature made by picos-sign); the
// per-computation quota refuses a file before writing it; --serve and the
// service hours; --save_config and --config give the same flags back.
//
// Every wait is bounded (kLong, which only a hang reaches). The tests kill
// only processes they started, and kill them (SIGKILL, then wait) whatever
// happens.
#include <signal.h>
#include <stdlib.h>
#include <time.h>
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
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/io/process.h"
#include "core/kernel/channel.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/files.h"
#include "core/remote/node.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"
#include "transports/default_transports.h"

extern char** environ;

namespace picos::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSecret[] = "compute node daemon test secret";
constexpr absl::Duration kLong = absl::Seconds(60);  // only a hang reaches it
constexpr char kLibrary[] = "testing/libcompute_testlib.so";
constexpr char kNode[] = "compute/picos-node";

std::string FreshDir(const std::string& name) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, "-", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::vector<std::string> Env() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "PICOS_REMOTE_")) env.emplace_back(*e);
  }
  env.push_back(absl::StrCat("PICOS_REMOTE_SECRET=", kSecret));
  return env;
}

// A list of arguments (g++ 12 and braced lists inside coroutines do not
// mix).
template <typename... A>
std::vector<std::string> Args(const A&... a) {
  std::vector<std::string> v;
  (v.push_back(std::string(a)), ...);
  return v;
}

absl::StatusOr<std::unique_ptr<Process>> SpawnWithSecret(std::string program, std::vector<std::string> args) {
  ProcessOptions p;
  p.program = std::move(program);
  p.args = std::move(args);
  p.env = Env();
  p.stdin_mode = StdioMode::kNull;
  p.stderr_mode = StdioMode::kInherit;
  return Process::Spawn(std::move(p));
}

struct NodeProcess {
  std::unique_ptr<Process> process;
  std::string uri;
};

// Starts picos-node with `cpus` workers, files into `dest`, and `more`
// flags; reads the URI it listens at (lines before it, --clean's, are
// given in *before).
Task<absl::StatusOr<NodeProcess>> StartNode(int cpus, std::string dest, std::vector<std::string> more,
                                            std::vector<std::string>* before = nullptr) {
  std::vector<std::string> args = Args(absl::StrCat("--cpus=", cpus), "--listen=tcp://127.0.0.1:0",
                                   absl::StrCat("--dest_path=", dest), "--daemon");
  for (std::string& m : more) args.push_back(std::move(m));
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Process> proc, SpawnWithSecret(kNode, std::move(args)));
  NodeProcess n{std::move(proc), ""};
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<std::string> line = co_await n.process->out().ReadLine(4096, kLong);
    if (!line.ok()) {
      (void)n.process->Kill(SIGKILL);
      (void)co_await n.process->Wait(kLong);
      co_return line.status();
    }
    absl::string_view l = absl::StripTrailingAsciiWhitespace(*line);
    if (absl::ConsumePrefix(&l, "listening ")) {
      n.uri = std::string(l);
      co_return n;
    }
    if (before != nullptr) before->emplace_back(l);
  }
  (void)n.process->Kill(SIGKILL);
  (void)co_await n.process->Wait(kLong);
  co_return absl::InternalError("the node never said it listens");
}

Task<> StopNode(NodeProcess& n) {
  if (!n.process->exited()) (void)n.process->Kill(SIGKILL);
  absl::StatusOr<ExitStatus> st = co_await n.process->Wait(kLong);
  EXPECT_OK(st.status());
}

// The next stdout line of `p` that starts with `prefix` (others skipped).
Task<absl::StatusOr<std::string>> LineOf(Process& p, std::string prefix) {
  for (int i = 0; i < 100; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await p.out().ReadLine(4096, kLong));
    if (absl::StartsWith(line, prefix)) co_return std::string(absl::StripTrailingAsciiWhitespace(line));
  }
  co_return absl::NotFoundError(absl::StrCat("no line starting with ", prefix, " in 100"));
}

// Pids of the computation's `count` workers, from the node's lines.
Task<absl::StatusOr<std::vector<int>>> WorkerPids(NodeProcess& n, int count) {
  std::vector<int> pids(count, -1);
  for (int i = 0; i < count; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await LineOf(*n.process, "worker started "));
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

// Whether `pid` is gone (or a zombie nobody reaped yet).
bool Gone(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  if (!in) return true;
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

// Waits (at most 60 s) until every pid is gone.
Task<bool> AllGone(std::vector<int> pids) {
  for (int i = 0; i < 6000; ++i) {
    bool gone = true;
    for (int pid : pids) gone = gone && Gone(pid);
    if (gone) co_return true;
    absl::Status slept = co_await Sleep(absl::Milliseconds(10));
    if (!slept.ok()) co_return false;
  }
  co_return false;
}

bool EmptyDir(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_empty(dir, ec) && !ec;
}

Task<absl::StatusOr<std::unique_ptr<remote::Node>>> ClientNode() {
  remote::NodeOptions o;
  o.secret = kSecret;
  o.name = "compute-node-test";
  o.connect_timeout = kLong;
  o.handshake_timeout = kLong;
  co_return co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
}

// Runs a program to its end: its stdout and exit status.
Task<absl::StatusOr<ProcessOutput>> RunTool(std::string program, std::vector<std::string> args) {
  ProcessOptions p;
  p.program = std::move(program);
  p.args = std::move(args);
  p.env = Env();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Process> proc, Process::Spawn(std::move(p)));
  co_return co_await proc->Communicate("", size_t{1} << 20, kLong);
}

Task<absl::StatusOr<Value>> RunSquare(compute::Computation& c, std::string n) {
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await c.Run("square", std::move(n)));
  co_return co_await job.Join(kLong);
}

// --- SIGTERM ---

PICOS_CORO_TEST(ComputeNode, SigtermClosesEveryComputationSaysGoodbyeAndExitsZero) {
  const std::string dest = FreshDir("node-term");
  absl::StatusOr<NodeProcess> node = co_await StartNode(2, dest, Args());
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (!me.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(me);
  CO_ASSERT_OK(Channel((*me)->peer_events()).Subscribe(Self()));
  compute::ComputationOptions o;
  o.library = kLibrary;
  absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
  CO_ASSERT_OK(c);
  std::vector<std::string> nodes = Args(node->uri);
  absl::Status scheduled = co_await (*c)->Schedule(nodes);
  absl::StatusOr<std::vector<int>> pids = co_await WorkerPids(*node, 2);
  if (!scheduled.ok() || !pids.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(scheduled);
  CO_ASSERT_OK(pids);
  absl::StatusOr<Value> r = co_await RunSquare(**c, "6");
  EXPECT_OK(r.status());
  EXPECT_TRUE(std::filesystem::exists(absl::StrCat(dest, "/", (*c)->id(), "/.picos-worker-0.pid")));

  CO_ASSERT_TRUE(kill(node->process->pid(), SIGTERM) == 0);
  absl::StatusOr<std::string> said = co_await LineOf(*node->process, "signal SIGTERM: closing");
  EXPECT_OK(said.status());
  absl::StatusOr<std::string> closed = co_await LineOf(*node->process, "computation closed ");
  EXPECT_OK(closed.status());
  if (closed.ok()) { EXPECT_EQ(*closed, absl::StrCat("computation closed ", (*c)->id(), " node closing")); }
  absl::StatusOr<std::string> bye = co_await LineOf(*node->process, "node closed");
  EXPECT_OK(bye.status());
  absl::StatusOr<ExitStatus> st = co_await node->process->Wait(kLong);
  CO_ASSERT_OK(st);
  EXPECT_EQ(*st, ExitStatus{}) << st->ToString();
  EXPECT_TRUE(co_await AllGone(*pids)) << "a worker outlived its node";
  EXPECT_TRUE(EmptyDir(dest)) << "files left in " << dest;
  // The node said goodbye: the client sees it leave, not lost.
  bool left = false;
  for (int i = 0; i < 100 && !left; ++i) {
    absl::StatusOr<Value> ev = co_await Receive(kLong);
    CO_ASSERT_OK(ev);
    const Value& peer = (*ev)[remote::kPeerEventMessage];
    // (Its workers, ended by SIGTERM, are lost to this client: only the
    // node says goodbye.)
    if (!peer.is_map() || !peer["event"].is_string() || peer["name"] != Value("picos-node")) continue;
    EXPECT_NE(peer["event"].as_string(), "lost") << ev->DebugString();
    left = peer["event"].as_string() == "left";
  }
  EXPECT_TRUE(left);
  c->reset();
  me->reset();
}

// A first SIGINT closes gracefully; a second one, while a worker does not
// end (it is stopped: SIGTERM waits), terminates: the worker is killed, the
// files go, exit status 1.
PICOS_CORO_TEST(ComputeNode, ASecondSigintTerminatesAGracefulCloseThatWaits) {
  const std::string dest = FreshDir("node-int");
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest, Args());
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (!me.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(me);
  compute::ComputationOptions o;
  o.library = kLibrary;
  absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
  CO_ASSERT_OK(c);
  std::vector<std::string> nodes = Args(node->uri);
  absl::Status scheduled = co_await (*c)->Schedule(nodes);
  absl::StatusOr<std::vector<int>> pids = co_await WorkerPids(*node, 1);
  if (!scheduled.ok() || !pids.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(scheduled);
  CO_ASSERT_OK(pids);
  // The worker is the node's child (checked) before this test stops it.
  CO_ASSERT_TRUE(kill((*pids)[0], SIGSTOP) == 0);
  CO_ASSERT_TRUE(kill(node->process->pid(), SIGINT) == 0);
  absl::StatusOr<std::string> first = co_await LineOf(*node->process, "signal SIGINT: closing");
  EXPECT_OK(first.status());
  absl::StatusOr<std::string> closing = co_await LineOf(*node->process, "computation closed ");
  EXPECT_OK(closing.status());
  EXPECT_FALSE(Gone((*pids)[0])) << "a stopped worker does not end on SIGTERM";
  CO_ASSERT_TRUE(kill(node->process->pid(), SIGINT) == 0);
  absl::StatusOr<std::string> second = co_await LineOf(*node->process, "signal SIGINT: terminating");
  EXPECT_OK(second.status());
  absl::StatusOr<std::string> terminated = co_await LineOf(*node->process, "node terminated");
  EXPECT_OK(terminated.status());
  absl::StatusOr<ExitStatus> st = co_await node->process->Wait(kLong);
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->code, 1) << st->ToString();
  EXPECT_EQ(st->signal, 0) << st->ToString();
  EXPECT_TRUE(co_await AllGone(*pids)) << "the stopped worker outlived its node";
  EXPECT_TRUE(EmptyDir(dest));
  c->reset();
  me->reset();
}

// --- The zombie period ---

PICOS_CORO_TEST(ComputeNode, AClientKilledOrDroppingItsComputationLeavesAZombieClosedAfterThePeriod) {
  const std::string dest = FreshDir("node-zombie");
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest, Args("--zombie_period=0.5"));
  CO_ASSERT_OK(node);
  // A client in a process of its own, killed with SIGKILL once scheduled.
  std::vector<std::string> args = Args(node->uri, kLibrary);
  absl::StatusOr<std::unique_ptr<Process>> client = SpawnWithSecret("testing/compute_client_helper", args);
  if (!client.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(client);
  absl::StatusOr<std::string> scheduled = co_await LineOf(**client, "scheduled ");
  absl::StatusOr<std::vector<int>> pids = co_await WorkerPids(*node, 1);
  if (!scheduled.ok() || !pids.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(scheduled);
  CO_ASSERT_OK(pids);
  const std::string id = scheduled->substr(std::string("scheduled ").size());
  EXPECT_TRUE(std::filesystem::exists(absl::StrCat(dest, "/", id)));
  CO_ASSERT_TRUE(kill((*client)->pid(), SIGKILL) == 0);
  absl::StatusOr<ExitStatus> cst = co_await (*client)->Wait(kLong);
  EXPECT_OK(cst.status());
  absl::StatusOr<std::string> lost = co_await LineOf(*node->process, "client lost ");
  EXPECT_OK(lost.status());
  if (lost.ok()) { EXPECT_THAT(*lost, HasSubstr(id)); }
  absl::StatusOr<std::string> closed = co_await LineOf(*node->process, "computation closed ");
  EXPECT_OK(closed.status());
  if (closed.ok()) { EXPECT_EQ(*closed, absl::StrCat("computation closed ", id, " zombie")); }
  EXPECT_TRUE(co_await AllGone(*pids)) << "an orphan worker";
  EXPECT_FALSE(std::filesystem::exists(absl::StrCat(dest, "/", id))) << "files left";

  // A client that drops its Computation without Close: its keeper task
  // ends, the node's watch sees it.
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (!me.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(me);
  {
    compute::ComputationOptions o;
    o.library = kLibrary;
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    CO_ASSERT_OK(c);
    std::vector<std::string> nodes = Args(node->uri);
    absl::Status ok = co_await (*c)->Schedule(nodes);
    CO_ASSERT_OK(ok);
    absl::StatusOr<std::vector<int>> more = co_await WorkerPids(*node, 1);
    CO_ASSERT_OK(more);
    pids = more;
    const std::string dropped = (*c)->id();
    c->reset();
    absl::StatusOr<std::string> gone = co_await LineOf(*node->process, "client lost ");
    EXPECT_OK(gone.status());
    if (gone.ok()) { EXPECT_THAT(*gone, HasSubstr(absl::StrCat(dropped, " its task ended"))); }
    absl::StatusOr<std::string> zombie = co_await LineOf(*node->process, "computation closed ");
    EXPECT_OK(zombie.status());
    if (zombie.ok()) { EXPECT_EQ(*zombie, absl::StrCat("computation closed ", dropped, " zombie")); }
    EXPECT_TRUE(co_await AllGone(*pids));
    EXPECT_TRUE(EmptyDir(dest));
  }
  me->reset();
  co_await StopNode(*node);
}

// --- --clean ---

PICOS_CORO_TEST(ComputeNode, CleanKillsAStaleWorkerOfItsPidFilesAndNothingElse) {
  const std::string dest = FreshDir("node-clean");
  // A previous run's worker: picos-node in worker mode, its library in its
  // computation's folder, its pid in that folder's pid file. Its parent is
  // this test (a worker checks --worker_parent).
  const std::string stale = dest + "/cstale";
  std::filesystem::create_directories(stale);
  std::filesystem::copy_file(kLibrary, stale + "/libcompute_testlib.so");
  std::vector<std::string> wargs = Args(absl::StrCat("--worker_library=", stale, "/libcompute_testlib.so"),
                                    absl::StrCat("--worker_parent=", getpid()),
                                    absl::StrCat("--listen=unix://@picos-clean-test-", getpid()), "--peer=");
  absl::StatusOr<std::unique_ptr<Process>> worker = SpawnWithSecret(kNode, wargs);
  CO_ASSERT_OK(worker);
  absl::StatusOr<std::string> listening = co_await LineOf(**worker, "listening ");
  CO_ASSERT_OK(listening);
  std::ofstream(stale + "/.picos-worker-0.pid") << (*worker)->pid() << "\n";
  // An unrelated process named by another folder's pid file, and one whose
  // pid file names this test itself: neither is a worker of that folder.
  const std::string other = dest + "/cother";
  std::filesystem::create_directories(other);
  ProcessOptions sp;
  sp.program = "sleep";
  sp.args = Args("120");
  sp.stdin_mode = StdioMode::kNull;
  absl::StatusOr<std::unique_ptr<Process>> sleeper = Process::Spawn(std::move(sp));
  CO_ASSERT_OK(sleeper);
  std::ofstream(other + "/.picos-worker-0.pid") << (*sleeper)->pid() << "\n";
  std::ofstream(other + "/.picos-worker-1.pid") << getpid() << "\n";
  // A folder without pid files is not the node's to remove.
  std::filesystem::create_directories(dest + "/keep");

  std::vector<std::string> lines;
  std::vector<std::string> more = Args("--clean");
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest, more, &lines);
  CO_ASSERT_OK(node);
  absl::StatusOr<ExitStatus> wst = co_await (*worker)->Wait(kLong);
  EXPECT_OK(wst.status());
  if (wst.ok()) { EXPECT_EQ(wst->signal, SIGKILL) << wst->ToString(); }
  EXPECT_FALSE((*sleeper)->exited()) << "an unrelated process was killed";
  EXPECT_EQ(kill((*sleeper)->pid(), 0), 0);
  EXPECT_THAT(lines, ::testing::Contains(absl::StrCat("clean: killed worker ", (*worker)->pid(), " of cstale")));
  EXPECT_THAT(lines, ::testing::Contains(absl::StrCat("clean: pid ", (*sleeper)->pid(), " of ", other,
                                                      "/.picos-worker-0.pid is not its worker: left alone")));
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_FALSE(std::filesystem::exists(other));
  EXPECT_TRUE(std::filesystem::exists(dest + "/keep"));
  (void)(*sleeper)->Kill(SIGKILL);
  (void)co_await (*sleeper)->Wait(kLong);
  co_await StopNode(*node);
}

// --- Signed libraries ---

Task<absl::Status> ScheduleAndSquare(std::string uri, std::string library, std::string signature) {
  compute::ComputationOptions o;
  o.library = std::move(library);
  o.signature = std::move(signature);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  std::vector<std::string> nodes = Args(uri);
  absl::Status s = co_await c->Schedule(nodes);
  if (s.ok()) {
    absl::StatusOr<Value> r = co_await RunSquare(*c, "12");
    if (!r.ok()) s = r.status();
    if (r.ok() && *r != Value::Bytes("144")) s = absl::InternalError(r->DebugString());
  }
  absl::Status closed = co_await c->Close();
  if (s.ok()) s = closed;
  co_return s;
}

PICOS_CORO_TEST(ComputeNode, ANodeWithTrustedSignersRunsOnlyLibrariesTheySigned) {
  const std::string keys = FreshDir("node-keys");
  const std::string lib = keys + "/libcompute_testlib.so";
  std::filesystem::copy_file(kLibrary, lib);
  std::vector<std::string> a = Args("keygen", keys + "/alice.key", keys + "/alice.pub");
  absl::StatusOr<ProcessOutput> gen = co_await RunTool("compute/picos-sign", a);
  CO_ASSERT_OK(gen);
  EXPECT_TRUE(gen->status.success()) << gen->out << gen->err;
  CO_ASSERT_TRUE(gen->status.success());
  std::vector<std::string> b = Args("keygen", keys + "/bob.key", keys + "/bob.pub");
  gen = co_await RunTool("compute/picos-sign", b);
  CO_ASSERT_OK(gen);
  CO_ASSERT_TRUE(gen->status.success());
  EXPECT_EQ(std::filesystem::status(keys + "/alice.key").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  // keygen never replaces a key.
  gen = co_await RunTool("compute/picos-sign", a);
  CO_ASSERT_OK(gen);
  EXPECT_EQ(gen->status.code, 1);
  EXPECT_THAT(gen->err, HasSubstr("exists"));

  const std::string dest = FreshDir("node-signed");
  std::vector<std::string> more = Args(absl::StrCat("--trusted_signer=", keys, "/carol-missing.pub"));
  absl::StatusOr<NodeProcess> refused = co_await StartNode(1, dest, more);
  EXPECT_FALSE(refused.ok()) << "a missing key file is a bad flag";
  // Two trusted signers (the flag repeated); bob is not one.
  std::vector<std::string> c1 = Args("keygen", keys + "/carol.key", keys + "/carol.pub");
  gen = co_await RunTool("compute/picos-sign", c1);
  CO_ASSERT_OK(gen);
  more = Args(absl::StrCat("--trusted_signer=", keys, "/carol.pub"), absl::StrCat("--trusted_signer=", keys, "/alice.pub"));
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest, more);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (!me.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(me);

  absl::Status unsigned_lib = co_await ScheduleAndSquare(node->uri, lib, "");
  EXPECT_THAT(unsigned_lib, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is not signed")));
  std::vector<std::string> by_bob = Args("sign", keys + "/bob.key", lib);
  absl::StatusOr<ProcessOutput> signed_out = co_await RunTool("compute/picos-sign", by_bob);
  CO_ASSERT_OK(signed_out);
  EXPECT_TRUE(signed_out->status.success()) << signed_out->err;
  CO_ASSERT_TRUE(signed_out->status.success());
  absl::Status bobs = co_await ScheduleAndSquare(node->uri, lib, lib + ".sig");
  EXPECT_THAT(bobs, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not a trusted signer's")));
  {
    std::ofstream(lib + ".sig") << std::string(128, 'z') << "\n";
  }
  absl::Status garbage = co_await ScheduleAndSquare(node->uri, lib, lib + ".sig");
  EXPECT_THAT(garbage, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("malformed signature")));
  std::vector<std::string> by_alice = Args("sign", keys + "/alice.key", lib);
  signed_out = co_await RunTool("compute/picos-sign", by_alice);
  CO_ASSERT_OK(signed_out);
  CO_ASSERT_TRUE(signed_out->status.success());
  std::vector<std::string> verify = Args("verify", keys + "/alice.pub", lib);
  absl::StatusOr<ProcessOutput> verified = co_await RunTool("compute/picos-sign", verify);
  CO_ASSERT_OK(verified);
  EXPECT_TRUE(verified->status.success()) << verified->out;
  absl::Status alices = co_await ScheduleAndSquare(node->uri, lib, lib + ".sig");
  EXPECT_OK(alices);
  EXPECT_TRUE(EmptyDir(dest)) << "refused and closed computations leave no file";
  me->reset();
  co_await StopNode(*node);
}

// --- The quota ---

PICOS_CORO_TEST(ComputeNode, AFileBeyondTheComputationsQuotaIsRefusedBeforeWriting) {
  const std::string dest = FreshDir("node-quota");
  const uint64_t lib_size = std::filesystem::file_size(kLibrary);
  std::vector<std::string> more = Args(absl::StrCat("--max_computation_bytes=", lib_size + 100));
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest, more);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (!me.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(me);
  const std::string data = FreshDir("node-quota-data");
  std::ofstream(data + "/small.txt") << std::string(50, 's');
  std::ofstream(data + "/big.txt") << std::string(200, 'b');
  remote::SendFileOptions so;
  so.dir = "cq";
  absl::Status lib = co_await remote::SendFile(Location::Peer(node->uri), kLibrary, so);
  EXPECT_OK(lib);
  absl::Status small = co_await remote::SendFile(Location::Peer(node->uri), data + "/small.txt", so);
  EXPECT_OK(small);
  absl::Status big = co_await remote::SendFile(Location::Peer(node->uri), data + "/big.txt", so);
  EXPECT_THAT(big, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("--max_computation_bytes")));
  EXPECT_FALSE(std::filesystem::exists(dest + "/cq/big.txt"));
  for (const auto& e : std::filesystem::directory_iterator(dest + "/cq")) {
    EXPECT_FALSE(absl::StartsWith(e.path().filename().string(), ".picos-partial-")) << e.path();
  }
  // Another computation has a quota of its own.
  so.dir = "cq2";
  absl::Status other = co_await remote::SendFile(Location::Peer(node->uri), data + "/big.txt", so);
  EXPECT_OK(other);
  me->reset();
  co_await StopNode(*node);
}

// --- --serve and service hours ---

PICOS_CORO_TEST(ComputeNode, ServeOneThenExitAndNoStartOutsideServiceHours) {
  const std::string dest = FreshDir("node-serve");
  std::vector<std::string> more = Args("--serve=1");
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest, more);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (!me.ok()) co_await StopNode(*node);
  CO_ASSERT_OK(me);
  {
    compute::ComputationOptions o;
    o.library = kLibrary;
    absl::StatusOr<std::unique_ptr<compute::Computation>> first = compute::Computation::Create(o);
    absl::StatusOr<std::unique_ptr<compute::Computation>> second = compute::Computation::Create(o);
    CO_ASSERT_OK(first);
    CO_ASSERT_OK(second);
    std::vector<std::string> nodes = Args(node->uri);
    absl::Status one = co_await (*first)->Schedule(nodes);
    EXPECT_OK(one);
    absl::Status two = co_await (*second)->Schedule(nodes);
    EXPECT_THAT(two, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("--serve=1")));
    absl::StatusOr<Value> r = co_await RunSquare(**first, "3");
    EXPECT_OK(r.status());
    absl::Status closed = co_await (*first)->Close();
    EXPECT_OK(closed);
  }
  absl::StatusOr<std::string> served = co_await LineOf(*node->process, "served 1 computations");
  EXPECT_OK(served.status());
  absl::StatusOr<ExitStatus> st = co_await node->process->Wait(kLong);
  CO_ASSERT_OK(st);
  EXPECT_EQ(*st, ExitStatus{}) << st->ToString();
  EXPECT_TRUE(EmptyDir(dest));

  // Service from two to three hours from now: not now.
  const time_t t = time(nullptr);
  struct tm tm;
  localtime_r(&t, &tm);
  const int now = tm.tm_hour * 60 + tm.tm_min;
  auto hhmm = [](int m) { return absl::StrFormat("%02d:%02d", (m / 60) % 24, m % 60); };
  more = Args(absl::StrCat("--service_start=", hhmm(now + 120)), absl::StrCat("--service_stop=", hhmm(now + 180)));
  absl::StatusOr<NodeProcess> closed_now = co_await StartNode(1, dest, more);
  CO_ASSERT_OK(closed_now);
  {
    compute::ComputationOptions o;
    o.library = kLibrary;
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    CO_ASSERT_OK(c);
    std::vector<std::string> nodes = Args(closed_now->uri);
    absl::Status s = co_await (*c)->Schedule(nodes);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("outside this node's service hours")));
  }
  EXPECT_TRUE(EmptyDir(dest));
  me->reset();
  co_await StopNode(*closed_now);
}

// --- --save_config and --config ---

PICOS_CORO_TEST(ComputeNode, SavedConfigReadsBackTheSameFlagsAndTheCommandLineWins) {
  const std::string dir = FreshDir("node-config");
  std::vector<std::string> save = Args("--cpus=3", "--zombie_period=7", absl::StrCat("--dest_path=", dir), "--serve=4",
                                   "--service_end=23:30", absl::StrCat("--save_config=", dir, "/a.conf"));
  absl::StatusOr<ProcessOutput> saved = co_await RunTool(kNode, save);
  CO_ASSERT_OK(saved);
  EXPECT_TRUE(saved->status.success()) << saved->err;
  std::ifstream in(dir + "/a.conf");
  std::string a((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(a, HasSubstr("\ncpus=3\n"));
  EXPECT_THAT(a, HasSubstr("\nzombie_period=7\n"));
  EXPECT_THAT(a, HasSubstr("\nservice_end=23:30\n"));
  std::vector<std::string> again = Args(absl::StrCat("--config=", dir, "/a.conf"), "--serve=5",
                                    absl::StrCat("--save_config=", dir, "/b.conf"));
  saved = co_await RunTool(kNode, again);
  CO_ASSERT_OK(saved);
  EXPECT_TRUE(saved->status.success()) << saved->err;
  std::ifstream in2(dir + "/b.conf");
  std::string b((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
  EXPECT_THAT(b, HasSubstr("\nserve=5\n")) << "the command line wins";
  absl::StrReplaceAll({{"\nserve=4\n", "\nserve=5\n"}}, &a);
  EXPECT_EQ(a, b);
  // A bad value in the file names its line.
  std::ofstream(dir + "/bad.conf") << "# a comment\n\ncpus=2\nzombie_period=-1\n";
  std::vector<std::string> bad = Args(absl::StrCat("--config=", dir, "/bad.conf"), absl::StrCat("--dest_path=", dir));
  absl::StatusOr<ProcessOutput> refused = co_await RunTool(kNode, bad);
  CO_ASSERT_OK(refused);
  EXPECT_EQ(refused->status.code, 2);
  EXPECT_EQ(refused->err, absl::StrCat("picos-node: ", dir, "/bad.conf:4: --zombie_period=-1: seconds, 0 (never) or 0.1 .. 86400\n"));
}

}  // namespace
}  // namespace picos::testing
