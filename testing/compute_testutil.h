// Helpers of the compute tests that start real picos-node processes
// (testing/compute_events_test.cc, compute_control_test.cc): a node on
// loopback, its stdout lines, a client Node, and a status task that keeps
// every event it receives.
//
// Every wait is bounded by kLong, which only a hang reaches. StopNode kills
// only the node the test started (SIGKILL) and waits for it; its workers end
// with it (PR_SET_PDEATHSIG).
#ifndef PICOS_TESTING_COMPUTE_TESTUTIL_H_
#define PICOS_TESTING_COMPUTE_TESTUTIL_H_

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "core/io/process.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/kernel/value.h"
#include "core/remote/node.h"
#include "transports/default_transports.h"

extern char** environ;

namespace picos::testing::compute_test {

inline constexpr char kSecret[] = "compute cluster test secret";
inline constexpr absl::Duration kLong = absl::Seconds(60);  // only a hang reaches it
inline constexpr char kLibrary[] = "testing/libcompute_testlib.so";

inline std::string FreshDir(const std::string& name) {
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
// `extra` flags, and reads the URI it listens at.
inline Task<absl::StatusOr<NodeProcess>> StartNode(int cpus, std::string dest, std::vector<std::string> extra = {}) {
  ProcessOptions p;
  p.program = "compute/picos-node";
  p.args = {absl::StrCat("--cpus=", cpus), "--listen=tcp://127.0.0.1:0", absl::StrCat("--dest_path=", dest)};
  for (std::string& e : extra) p.args.push_back(std::move(e));
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
  absl::string_view l = line.ok() ? absl::string_view(*line) : absl::string_view();
  if (!line.ok() || !absl::ConsumePrefix(&l, "listening ")) {
    (void)n.process->Kill(SIGKILL);
    (void)co_await n.process->Wait(kLong);
    co_return line.ok() ? absl::InternalError(absl::StrCat("the node said: ", *line)) : line.status();
  }
  n.uri = std::string(absl::StripTrailingAsciiWhitespace(l));
  co_return n;
}

// Kills the node (its pid only) and waits for it.
inline Task<absl::Status> StopNode(NodeProcess& n) {
  if (!n.process->exited()) (void)n.process->Kill(SIGKILL);
  absl::StatusOr<ExitStatus> st = co_await n.process->Wait(kLong);
  co_return st.status();
}

// The node's next stdout line that starts with `prefix` (others skipped).
inline Task<absl::StatusOr<std::string>> NodeLine(NodeProcess& n, std::string prefix) {
  for (int i = 0; i < 100; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await n.process->out().ReadLine(4096, kLong));
    if (absl::StartsWith(line, prefix)) co_return std::string(absl::StripTrailingAsciiWhitespace(line));
  }
  co_return absl::NotFoundError(absl::StrCat("no line starting with ", prefix, " in 100"));
}

// The pid in a "worker started <id> <index> <pid> <uri>" line, by URI: reads
// such lines until the one for `uri`.
inline Task<absl::StatusOr<int>> WorkerPid(NodeProcess& n, std::string uri) {
  for (int i = 0; i < 100; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await NodeLine(n, "worker started "));
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    int pid = -1;
    if (f.size() == 6 && f[5] == uri && absl::SimpleAtoi(f[4], &pid)) co_return pid;
  }
  co_return absl::NotFoundError(absl::StrCat("no worker started at ", uri));
}

// The parent pid of `pid` (/proc), or -1.
inline int ParentOf(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> f = absl::StrSplit(stat.substr(close + 2), ' ');
  int ppid = -1;
  if (f.size() < 2 || !absl::SimpleAtoi(f[1], &ppid)) return -1;
  return ppid;
}

inline Task<absl::StatusOr<std::unique_ptr<remote::Node>>> ClientNode() {
  remote::NodeOptions o;
  o.secret = kSecret;
  o.name = "compute-client";
  o.connect_timeout = kLong;
  o.handshake_timeout = kLong;
  co_return co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
}

// A status task's record: every event, in order.
struct Events {
  std::vector<Value> all;
  TaskRef task;

  // Events of `type` so far.
  std::vector<Value> Of(const std::string& type) const {
    std::vector<Value> out;
    for (const Value& e : all) {
      if (e.GetOr<std::string>("type", "") == type) out.push_back(e);
    }
    return out;
  }
};

// Receives events into `events` until terminated.
inline Task<> CollectEvents(std::shared_ptr<Events> events) {
  for (;;) {
    absl::StatusOr<Value> e = co_await Receive();
    if (!e.ok()) co_return;
    events->all.push_back(*std::move(e));
  }
}

inline std::shared_ptr<Events> StartCollector() {
  auto events = std::make_shared<Events>();
  events->task = ThisScheduler().Spawn(CollectEvents, events);
  return events;
}

// Waits (10 ms steps, kLong at most) until `done()`; false if it never is.
inline Task<bool> WaitUntil(std::function<bool()> done) {
  for (int i = 0; i < 6000; ++i) {
    if (done()) co_return true;
    absl::Status slept = co_await Sleep(absl::Milliseconds(10));
    if (!slept.ok()) co_return false;
  }
  co_return done();
}

// Waits until at least `count` events of `type` came.
inline Task<bool> WaitForEvents(std::shared_ptr<Events> events, std::string type, size_t count = 1) {
  // Named first: g++ 12 releases the captures of a lambda temporary inside
  // a co_await expression once too often (core/io/thread_pool.h).
  std::function<bool()> done = [events, type, count] { return events->Of(type).size() >= count; };
  bool met = co_await WaitUntil(done);
  co_return met;
}

}  // namespace picos::testing::compute_test

#endif  // PICOS_TESTING_COMPUTE_TESTUTIL_H_
