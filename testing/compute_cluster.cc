#include "testing/compute_cluster.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/kernel/status.h"
#include "transports/default_transports.h"

extern char** environ;

namespace picos::testing {

Task<absl::StatusOr<NodeProcess>> StartNodeProcess(NodeProcessOptions o) {
  ProcessOptions p;
  p.program = o.binary;
  p.args = {absl::StrCat("--cpus=", o.cpus), absl::StrCat("--listen=", o.listen),
            absl::StrCat("--dest_path=", o.dest)};
  for (std::string& a : o.extra_args) p.args.push_back(std::move(a));
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "PICOS_REMOTE_")) env.emplace_back(*e);
  }
  env.push_back(absl::StrCat("PICOS_REMOTE_SECRET=", o.secret));
  p.env = std::move(env);
  p.stdin_mode = StdioMode::kNull;
  p.stderr_mode = StdioMode::kInherit;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<Process> proc, Process::Spawn(std::move(p)));
  NodeProcess n{std::move(proc), ""};
  absl::StatusOr<std::string> line = co_await n.process->out().ReadLine(4096, o.timeout);
  absl::string_view l = line.ok() ? absl::string_view(*line) : absl::string_view();
  if (!line.ok() || !absl::ConsumePrefix(&l, "listening ")) {
    (void)n.process->Kill(SIGKILL);
    (void)co_await n.process->Wait(o.timeout);
    if (!line.ok()) co_return line.status();
    co_return absl::InternalError(absl::StrCat("the node said: ", *line));
  }
  n.uri = std::string(absl::StripTrailingAsciiWhitespace(l));
  co_return n;
}

Task<absl::Status> KillNodeProcess(NodeProcess& node, absl::Duration timeout) {
  if (node.process == nullptr) co_return absl::OkStatus();
  if (!node.process->exited()) (void)node.process->Kill(SIGKILL);
  absl::StatusOr<ExitStatus> st = co_await node.process->Wait(timeout);
  co_return st.status();
}

Task<absl::StatusOr<std::string>> NodeLine(NodeProcess& node, std::string prefix, absl::Duration timeout) {
  for (int i = 0; i < 1000; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await node.process->out().ReadLine(4096, timeout));
    if (absl::StartsWith(line, prefix)) co_return std::string(absl::StripTrailingAsciiWhitespace(line));
  }
  co_return absl::NotFoundError(absl::StrCat("no line starting with ", prefix, " in 1000"));
}

Task<absl::StatusOr<std::vector<int>>> WorkerPids(NodeProcess& node, int count, absl::Duration timeout) {
  std::vector<int> pids(count, -1);
  for (int i = 0; i < count; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await NodeLine(node, "worker started ", timeout));
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

Task<absl::StatusOr<std::unique_ptr<remote::Node>>> StartClientNode(std::string secret, absl::Duration timeout) {
  remote::NodeOptions o;
  o.secret = std::move(secret);
  o.name = "compute-client";
  o.connect_timeout = timeout;
  o.handshake_timeout = timeout;
  co_return co_await remote::Node::Start(transports::DefaultTransports(), std::move(o));
}

std::string FreshDir(const std::string& name) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, "-", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

int64_t VmRssKb(int pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view l = line;
    if (!absl::ConsumePrefix(&l, "VmRSS:")) continue;
    l = absl::StripAsciiWhitespace(l);
    absl::ConsumeSuffix(&l, " kB");
    int64_t kb = -1;
    if (absl::SimpleAtoi(l, &kb)) return kb;
    return -1;
  }
  return -1;
}

}  // namespace picos::testing
