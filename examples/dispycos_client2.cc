// pycos dispycos_client2.py in C++: a client ships a computation (the
// library of dispycos_client2_compute.cc) to picos-node daemons, submits
// --jobs jobs that each sleep a random time on a worker, one job per worker
// at a time, and collects each result by joining the job's task (pycos
// `yield rtask()`): the job's answer, or how it failed.
//
//   picos-node --cpus=2 --listen=tcp://127.0.0.1:9706 --dest_path=/tmp/node &
//   PICOS_REMOTE_SECRET=... dispycos_client2 --nodes=tcp://127.0.0.1:9706 --jobs=10
//
// Output, for people and for its smoke test (examples/dispycos_client2_smoke_test.sh):
//   dispycos_client2: scheduled on <nodes> nodes, <workers> workers
//   dispycos_client2: job <i> (<ms> ms) done: <host> <pid> slept <ms> ms
//   dispycos_client2: job <i> failed: <status>
//   dispycos_client2: <n> jobs done, <m> failed
// With --progress, a progress bar on stderr instead of the job lines
// (compute/progress.h: done/total, rate, ETA, failures), when stderr is a
// terminal; --progress_always draws it even when it is not.
// Exit status 1 when a job failed, 2 for a bad flag.
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "compute/progress.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "examples/dispycos_client_lib.h"

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to run jobs on (required)");
ABSL_FLAG(int, jobs, 10, "jobs to submit");
ABSL_FLAG(int, min_ms, 500, "shortest time a job sleeps");
ABSL_FLAG(int, max_ms, 1000, "longest time a job sleeps");
ABSL_FLAG(int, max_retries, 1, "runs again of a job whose worker was lost");
ABSL_FLAG(bool, progress, false, "show a progress bar on stderr (when it is a terminal) instead of each job's line");
ABSL_FLAG(bool, progress_always, false, "the progress bar even when stderr is not a terminal");
ABSL_FLAG(std::string, library, "examples/libdispycos_client2_compute.so",
          "the computation library (picos_computation dispycos_client2_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

Task<absl::Status> Client() {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_client2"));
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  o.max_retries = absl::GetFlag(FLAGS_max_retries);
  const std::vector<std::string> nodes = absl::GetFlag(FLAGS_nodes);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, nodes));
  std::printf("dispycos_client2: scheduled on %zu nodes, %zu workers\n", nodes.size(),
              computation->workers_alive());

  // Submit every job: each is a task of this process that waits for a free
  // worker, runs the job there and ends with its result.
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> sleep_ms(absl::GetFlag(FLAGS_min_ms), absl::GetFlag(FLAGS_max_ms));
  std::vector<std::pair<TaskRef, int>> jobs;
  for (int i = 0; i < absl::GetFlag(FLAGS_jobs); ++i) {
    const int ms = sleep_ms(random);
    absl::StatusOr<TaskRef> job = co_await computation->Run("compute", absl::StrCat(ms));
    if (!job.ok()) {
      std::printf("dispycos_client2: job %d not submitted: %s\n", i, job.status().ToString().c_str());
      continue;
    }
    jobs.emplace_back(*job, ms);
  }

  // Collect the results by joining the jobs (pycos `yield rtask()`).
  picos::compute::ProgressOptions po;
  po.force = absl::GetFlag(FLAGS_progress_always);
  po.label = "dispycos_client2";
  const bool want_progress = absl::GetFlag(FLAGS_progress) || po.force;
  picos::compute::Progress progress(static_cast<int64_t>(jobs.size()), po);
  const bool bar = want_progress && progress.enabled();
  int done = 0, failed = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    absl::StatusOr<Value> result = co_await jobs[i].first.Join(absl::Minutes(5));
    if (bar) progress.JobEnded(result.ok());
    if (result.ok()) {
      ++done;
      if (bar) continue;  // the bar says it
      std::printf("dispycos_client2: job %zu (%d ms) done: %s\n", i, jobs[i].second,
                  result->is_bytes() ? result->as_string().c_str() : result->DebugString().c_str());
    } else {
      ++failed;
      if (bar) continue;
      std::printf("dispycos_client2: job %zu failed: %s\n", i, result.status().ToString().c_str());
    }
  }
  if (bar) progress.Finish();
  failed += absl::GetFlag(FLAGS_jobs) - static_cast<int>(jobs.size());
  std::printf("dispycos_client2: %d jobs done, %d failed\n", done, failed);
  PICOS_CO_RETURN_IF_ERROR(co_await computation->Close());
  if (failed > 0) co_return absl::AbortedError(absl::StrCat(failed, " jobs failed"));
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_jobs, 1, 100'000) || !picos::FlagInRange(FLAGS_min_ms, 0, 60'000) ||
      !picos::FlagInRange(FLAGS_max_ms, absl::GetFlag(FLAGS_min_ms), 60'000) ||
      !picos::FlagInRange(FLAGS_max_retries, 0, 100)) {
    return 2;
  }
  if (!picos::examples::NodesGiven("dispycos_client2", absl::GetFlag(FLAGS_nodes))) return 2;
  return picos::RunMain("dispycos_client2", Client);
}
