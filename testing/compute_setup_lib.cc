// The computation library of testing/compute_setup_test.cc: setup hooks
// (compute/export.h) that keep their arguments and how often they ran in
// the library's globals, and jobs that read them. Links only
// compute/export.h.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "compute/export.h"

namespace {

// What the hooks left: set on the job thread before any job runs (the
// worker guarantees it), read by jobs.
std::string g_node_arg;
std::string g_worker_arg;
int g_node_runs = 0;
int g_worker_runs = 0;
// Jobs this process ran since it started ("state" counts itself).
std::atomic<int> g_jobs{0};

// "fail:<why>" fails with <why>; "fail-once:<path>" fails in the one
// worker that creates <path> first (O_EXCL), so a test makes exactly one
// worker of several fail.
bool ShouldFail(std::string_view arg, std::string* why) {
  if (arg.substr(0, 5) == "fail:") {
    *why = std::string(arg.substr(5));
    return true;
  }
  if (arg.substr(0, 10) == "fail-once:") {
    const std::string path(arg.substr(10));
    const int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd < 0) return false;
    close(fd);
    *why = "failed once, as asked";
    return true;
  }
  return false;
}

int NodeSetup(std::string_view arg, std::string* out) {
  if (ShouldFail(arg, out)) return 1;
  g_node_arg = std::string(arg);
  ++g_node_runs;
  return 0;
}

int WorkerSetup(std::string_view arg, std::string* out) {
  if (ShouldFail(arg, out)) return 1;
  g_worker_arg = std::string(arg);
  ++g_worker_runs;
  return 0;
}

// "<node arg>|<worker arg>|<node runs>|<worker runs>|<jobs so far>|<pid>".
int State(std::string_view, std::string* out) {
  const int jobs = ++g_jobs;
  *out = g_node_arg + "|" + g_worker_arg + "|" + std::to_string(g_node_runs) + "|" + std::to_string(g_worker_runs) +
         "|" + std::to_string(jobs) + "|" + std::to_string(getpid());
  return 0;
}

// "ms:path": creates `path` (the test then knows the job runs), then waits
// up to `ms` (at most 30 s) for a message or its cancellation: "cancelled"
// when cancelled (its last message, sent too), else "waited".
int Wait(picos::compute::Job& job, std::string* out) {
  const std::string_view arg = job.arg();
  const size_t colon = arg.find(':');
  int64_t ms = 0;
  for (char c : arg.substr(0, colon)) {
    if (c < '0' || c > '9' || ms > 30000) return *out = "bad argument", 1;
    ms = ms * 10 + (c - '0');
  }
  if (colon != std::string_view::npos) {
    const std::string path(arg.substr(colon + 1));
    const int fd = open(path.c_str(), O_CREAT | O_WRONLY, 0600);
    if (fd >= 0) close(fd);
  }
  std::string m;
  const auto code = job.Receive(&m, std::chrono::milliseconds(std::min<int64_t>(ms, 30000)));
  if (code == picos::compute::Job::kCancelled) {
    (void)job.Send("cancelled");
    *out = "cancelled";
    return 0;
  }
  *out = "waited";
  return 0;
}

}  // namespace

PICOS_COMPUTE_NODE_SETUP(NodeSetup);
PICOS_COMPUTE_SETUP(WorkerSetup);
PICOS_COMPUTE_FUNCTION(state, State);
PICOS_COMPUTE_JOB(wait, Wait);
