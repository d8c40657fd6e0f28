// pycos dispycos_remote_scheduler.py in C++: a client of a shared
// picos-scheduler (compute/scheduler.h) rather than a scheduler of its own,
// with a custom allocation function like the pycos example's
// DispycosNodeAllocate subclass: on each node, use all of the host's CPUs
// but --leave_cpus. The scheduler shares the nodes' CPUs fairly with its
// other clients (several at once, where pycos's serves one at a time);
// this client asks only for what its function gives.
//
//   picos-scheduler --listen=tcp://10.0.0.1:9705 --node=tcp://10.0.0.2:9706
//   dispycos_remote_scheduler --scheduler=tcp://10.0.0.1:9705 --jobs=10
//
// Output, for people and for its smoke test
// (examples/dispycos_remote_scheduler_smoke_test.sh):
//   dispycos_remote_scheduler: scheduled <computation> with <w> workers
//   dispycos_remote_scheduler: node <uri> ignored: <reason>
//   dispycos_remote_scheduler: job <i> done: <host> <pid> slept <ms> ms
//   dispycos_remote_scheduler: <n> jobs done, <m> failed, at most <w> workers
// Exit status 1 when a job failed or no share came, 2 for a bad flag.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "examples/dispycos_client_lib.h"

ABSL_FLAG(std::string, scheduler, "", "the picos-scheduler's URI (required)");
ABSL_FLAG(int, leave_cpus, 1, "CPUs of each node's host this client leaves to others (the allocation function)");
ABSL_FLAG(int, jobs, 10, "jobs to run");
ABSL_FLAG(int, job_ms, 200, "how long each job sleeps on its worker, in ms");
ABSL_FLAG(std::string, library, "examples/libdispycos_client2_compute.so",
          "the computation library (picos_computation dispycos_client2_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

constexpr absl::Duration kLong = absl::Minutes(2);  // only a hang reaches it

// Prints why each node was left out (node_ignored events), until stopped.
Task<> ShowEvents() {
  for (;;) {
    absl::StatusOr<Value> e = co_await picos::Receive();
    if (!e.ok()) co_return;
    if (e->GetOr<std::string>("type", "") == "node_ignored") {
      std::printf("dispycos_remote_scheduler: node %s ignored: %s\n", e->GetOr<std::string>("node", "").c_str(),
                  e->GetOr<std::string>("reason", "").c_str());
      std::fflush(stdout);
    }
  }
}

Task<absl::Status> Client() {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_remote_scheduler"));
  TaskRef events = picos::ThisScheduler().Spawn(picos::SpawnOptions{.daemon = true}, ShowEvents);
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  o.scheduler = absl::GetFlag(FLAGS_scheduler);
  o.status_task = events;
  o.timeout = kLong;
  // The custom allocation (pycos: a DispycosNodeAllocate subclass whose
  // allocate() gives cpus - 1): all of the host's CPUs but --leave_cpus;
  // 0 skips a node that would be left none.
  const int leave = absl::GetFlag(FLAGS_leave_cpus);
  o.allocate = [leave](const std::string&, const picos::compute::HostFacts& facts) {
    return std::max(facts.cpus - leave, 0);
  };
  std::vector<std::string> every_node;  // all the scheduler shares
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, every_node));
  size_t most = computation->workers_alive();
  std::printf("dispycos_remote_scheduler: scheduled %s with %zu workers\n", computation->id().c_str(), most);
  std::fflush(stdout);
  std::vector<TaskRef> jobs;
  int failed = 0, done = 0;
  const std::string ms = std::to_string(absl::GetFlag(FLAGS_job_ms));
  for (int i = 0; i < absl::GetFlag(FLAGS_jobs); ++i) {
    absl::StatusOr<TaskRef> job = co_await computation->Run("compute", ms);
    if (job.ok()) {
      jobs.push_back(*job);
    } else {
      ++failed;
      std::printf("dispycos_remote_scheduler: job %d not submitted: %s\n", i, job.status().ToString().c_str());
    }
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    absl::StatusOr<Value> r = co_await jobs[i].Join(kLong);
    most = std::max(most, computation->workers_alive());
    if (r.ok() && r->is_bytes()) {
      ++done;
      std::printf("dispycos_remote_scheduler: job %zu done: %s\n", i, r->as_string().c_str());
    } else {
      ++failed;
      std::printf("dispycos_remote_scheduler: job %zu failed: %s\n", i,
                  r.ok() ? "not bytes" : r.status().ToString().c_str());
    }
    std::fflush(stdout);
  }
  std::printf("dispycos_remote_scheduler: %d jobs done, %d failed, at most %zu workers\n", done, failed, most);
  std::fflush(stdout);
  PICOS_CO_RETURN_IF_ERROR(co_await computation->Close());
  (void)events.Terminate();
  if (failed > 0) co_return absl::AbortedError(absl::StrCat(failed, " jobs failed"));
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_jobs, 1, 10'000) || !picos::FlagInRange(FLAGS_leave_cpus, 0, 256) ||
      !picos::FlagInRange(FLAGS_job_ms, 0, 60'000)) {
    return 2;
  }
  if (absl::GetFlag(FLAGS_scheduler).empty()) {
    std::fprintf(stderr, "dispycos_remote_scheduler: --scheduler: give the picos-scheduler's URI\n");
    return 2;
  }
  return picos::RunMain("dispycos_remote_scheduler", Client);
}
