// pycos DispycosNodeAllocate in C++ (the allocation part of
// dispycos_client9_node.py and dispycos_remote_scheduler.py): node
// allocation rules pick which nodes a computation uses and how many CPUs
// (workers) on each, and a custom allocation function excludes a platform
// (pycos's DispycosNodeAllocate(platform='Windows', cpus=0)). The client
// then runs --jobs jobs on what was allocated (dispycos_client2's library).
//
//   dispycos_node_allocate --nodes=tcp://10.0.0.2:9706,tcp://10.0.0.3:9706 --rules='10.0.0.2/*/1,10.0.0.*/*/-1/512' --exclude_platform='windows*'
//
// --rules is a list of HOST/PLATFORM/CPUS[/MIN_MEMORY_MB], tried in order
// (compute/computation.h, "Node allocation"): HOST a glob on the node's
// host name or address, PLATFORM a glob on its platform ("linux-..."),
// CPUS 0 all, N at most N, -N all but N; a node with less free memory than
// MIN_MEMORY_MB is skipped.
//
// Not here: pycos's dispycos_client9_node.py also gives each node data
// that a node_setup run by enable_node loads: examples/dispycos_client9_main.cc (dispycos_client9_node)
// does that part.
//
// Output, for people and for its smoke test (examples/dispycos_node_allocate_smoke_test.sh):
//   dispycos_node_allocate: node <uri> ignored: <reason>
//   dispycos_node_allocate: node <uri>: <n> workers
//   dispycos_node_allocate: job <i> done: <host> <pid> slept <ms> ms
//   dispycos_node_allocate: <n> jobs done, <m> failed, on <w> workers of <k> nodes
// Exit status 1 when no node was allocated or a job failed, 2 for a bad flag.
#include <fnmatch.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "examples/dispycos_client_lib.h"

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to allocate from (required)");
ABSL_FLAG(std::vector<std::string>, rules, {},
          "allocation rules HOST/PLATFORM/CPUS[/MIN_MEMORY_MB], tried in order; none: every CPU of every node");
ABSL_FLAG(std::string, exclude_platform, "windows*",
          "a glob on the node's platform: nodes that match are not used (the custom allocation function)");
ABSL_FLAG(int, jobs, 6, "jobs to run on the allocated workers");
ABSL_FLAG(std::string, library, "examples/libdispycos_client2_compute.so",
          "the computation library (picos_computation dispycos_client2_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

constexpr absl::Duration kLong = absl::Minutes(2);  // only a hang reaches it
constexpr size_t kMaxRules = 64;

// One rule of --rules, or why it is not one.
absl::StatusOr<picos::compute::AllocationRule> ParseRule(const std::string& text) {
  std::vector<std::string> f = absl::StrSplit(text, '/');
  picos::compute::AllocationRule r;
  int64_t mb = 0;
  if (f.size() < 3 || f.size() > 4 || f[0].empty() || f[1].empty() || f[0].size() > 256 || f[1].size() > 256 ||
      !absl::SimpleAtoi(f[2], &r.cpus) || r.cpus < -256 || r.cpus > 256 ||
      (f.size() == 4 && (!absl::SimpleAtoi(f[3], &mb) || mb < 0 || mb > (int64_t{1} << 40)))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--rules: '", text.substr(0, 100), "' is not HOST/PLATFORM/CPUS[/MIN_MEMORY_MB] (CPUS -256..256)"));
  }
  r.host = f[0];
  r.platform = f[1];
  r.min_memory = static_cast<uint64_t>(mb) << 20;
  return r;
}

Task<absl::Status> Client(std::vector<picos::compute::AllocationRule> rules) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_node_allocate"));
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  o.status_task = picos::Self();
  o.allocation = std::move(rules);
  // The custom function, asked first: 0 skips the node, -1 leaves it to
  // the rules.
  const std::string excluded = absl::GetFlag(FLAGS_exclude_platform);
  o.allocate = [excluded](const std::string&, const picos::compute::HostFacts& facts) {
    return fnmatch(excluded.c_str(), facts.platform.c_str(), 0) == 0 ? 0 : -1;
  };
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, absl::GetFlag(FLAGS_nodes)));
  // What the allocation decided: the events up to computation_scheduled
  // (already in the mailbox: sent as Schedule went). Bounded by count.
  for (int n = 0; n < 10'000; ++n) {
    absl::StatusOr<Value> event = co_await picos::Receive(kLong);
    if (!event.ok()) co_return absl::DeadlineExceededError("no computation_scheduled event");
    const std::string type = event->GetOr<std::string>("type", "");
    if (type == "node_ignored") {
      std::printf("dispycos_node_allocate: node %s ignored: %s\n", event->GetOr<std::string>("node", "").c_str(),
                  event->GetOr<std::string>("reason", "").c_str());
    }
    if (type == "computation_scheduled") break;
  }
  size_t used = 0;
  for (const picos::compute::NodeInfo& n : computation->nodes()) {
    std::printf("dispycos_node_allocate: node %s: %d workers\n", n.uri.c_str(), n.workers);
    if (n.workers > 0) ++used;
  }
  const size_t workers = computation->workers_alive();
  if (workers == 0) {
    std::printf("dispycos_node_allocate: no node allocated\n");
    std::fflush(stdout);
    (void)co_await computation->Close();
    co_return absl::FailedPreconditionError("no node allocated");
  }

  std::vector<TaskRef> jobs;
  int failed = 0, done = 0;
  for (int i = 0; i < absl::GetFlag(FLAGS_jobs); ++i) {
    absl::StatusOr<TaskRef> job = co_await computation->Run("compute", "50");
    if (job.ok()) {
      jobs.push_back(*job);
    } else {
      ++failed;
      std::printf("dispycos_node_allocate: job %d not submitted: %s\n", i, job.status().ToString().c_str());
    }
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    absl::StatusOr<Value> r = co_await jobs[i].Join(kLong);
    if (r.ok() && r->is_bytes()) {
      ++done;
      std::printf("dispycos_node_allocate: job %zu done: %s\n", i, r->as_string().c_str());
    } else {
      ++failed;
      std::printf("dispycos_node_allocate: job %zu failed: %s\n", i,
                  r.ok() ? "not bytes" : r.status().ToString().c_str());
    }
  }
  std::printf("dispycos_node_allocate: %d jobs done, %d failed, on %zu workers of %zu nodes\n", done, failed,
              workers, used);
  std::fflush(stdout);
  PICOS_CO_RETURN_IF_ERROR(co_await computation->Close());
  if (failed > 0) co_return absl::AbortedError(absl::StrCat(failed, " jobs failed"));
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_jobs, 1, 10'000)) return 2;
  if (!picos::examples::NodesGiven("dispycos_node_allocate", absl::GetFlag(FLAGS_nodes))) return 2;
  const std::vector<std::string> texts = absl::GetFlag(FLAGS_rules);
  if (texts.size() > kMaxRules) {
    std::fprintf(stderr, "dispycos_node_allocate: --rules: at most %zu rules\n", kMaxRules);
    return 2;
  }
  std::vector<picos::compute::AllocationRule> rules;
  for (const std::string& text : texts) {
    absl::StatusOr<picos::compute::AllocationRule> r = ParseRule(text);
    if (!r.ok()) {
      std::fprintf(stderr, "dispycos_node_allocate: %s\n", std::string(r.status().message()).c_str());
      return 2;
    }
    rules.push_back(*r);
  }
  return picos::RunMain("dispycos_node_allocate", Client, std::move(rules));
}
