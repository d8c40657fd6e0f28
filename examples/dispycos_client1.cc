// pycos dispycos_client1.py in C++: jobs run with the dashboard live. The
// client serves the dashboard (dashboard/dashboard.h, with /metrics) and
// ships dispycos_client2's computation (`compute`: sleep, then say where)
// to picos-node daemons, submits --jobs jobs that each sleep a random time,
// and collects each result by joining it; meanwhile the dashboard shows the
// nodes, workers, the job stream and progress, and can suspend nodes or
// workers and terminate jobs.
//
//   picos-node --cpus=2 --listen=tcp://127.0.0.1:9706 --dest_path=/tmp/node &
//   PICOS_REMOTE_SECRET=... dispycos_client1 --nodes=tcp://127.0.0.1:9706 --jobs=20
//   # open the URL it prints, log in with the token in the file it names
//
// Output, for people and for its smoke test (examples/dispycos_client1_smoke_test.sh):
//   dispycos_client1: dashboard at <url> (token in <file>)
//   dispycos_client1: scheduled on <nodes> nodes, <workers> workers
//   dispycos_client1: job <i> done: <host> <pid> slept <ms> ms
//   dispycos_client1: job <i> failed: <status>
//   dispycos_client1: <n> jobs done, <m> failed
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
#include "compute/computation_metrics.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "dashboard/dashboard.h"
#include "dashboard/dashboard_flags.h"
#include "examples/dispycos_client_lib.h"
#include "metrics/metrics.h"
#include "transports/default_transports.h"

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to run jobs on (required)");
ABSL_FLAG(int, jobs, 10, "jobs to submit");
ABSL_FLAG(int, min_ms, 1000, "shortest time a job sleeps");
ABSL_FLAG(int, max_ms, 3000, "longest time a job sleeps");
ABSL_FLAG(int, linger_s, 0, "seconds the dashboard stays up after the last job");
ABSL_FLAG(int, first_ms, -1,
          "when 0 or more, the first job sleeps this long instead (one to watch on the dashboard, "
          "or to terminate from it)");
ABSL_FLAG(std::string, library, "examples/libdispycos_client2_compute.so",
          "the computation library (picos_computation dispycos_client2_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

Task<absl::Status> Client() {
  const picos::TransportRegistry& t = picos::transports::DefaultTransports();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_client1"));
  // The computation's jobs, workers and nodes as metrics, served at the
  // dashboard's /metrics (the registry outlives both).
  picos::metrics::Registry registry;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::ComputationMetrics> metrics,
                            picos::compute::ComputationMetrics::Register(registry));
  PICOS_CO_ASSIGN_OR_RETURN(picos::dashboard::DashboardOptions d, picos::dashboard::DashboardOptionsFromFlags());
  d.registry = &registry;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::dashboard::Dashboard> dash,
                            co_await picos::dashboard::Dashboard::Start(t, std::move(d)));
  std::printf("dispycos_client1: dashboard at %s (token in %s)\n", dash->url().c_str(),
              dash->token_file().empty() ? "PICOS_DASHBOARD_TOKEN" : dash->token_file().c_str());
  std::fflush(stdout);

  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  o.status_task = dash->status_task();  // the dashboard sees every event
  o.metrics = metrics.get();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            picos::compute::Computation::Create(o));
  dash->Attach(computation.get());  // its actions act on this computation
  const std::vector<std::string> nodes = absl::GetFlag(FLAGS_nodes);
  absl::Status scheduled = co_await picos::examples::ScheduleOrClose(computation.get(), nodes);
  if (!scheduled.ok()) {
    dash->Detach();  // before the computation goes
    co_return scheduled;
  }
  std::printf("dispycos_client1: scheduled on %zu nodes, %zu workers\n", nodes.size(),
              computation->workers_alive());
  std::fflush(stdout);

  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> sleep_ms(absl::GetFlag(FLAGS_min_ms), absl::GetFlag(FLAGS_max_ms));
  std::vector<TaskRef> jobs;
  int failed = 0, done = 0;
  for (int i = 0; i < absl::GetFlag(FLAGS_jobs); ++i) {
    const int ms = i == 0 && absl::GetFlag(FLAGS_first_ms) >= 0 ? absl::GetFlag(FLAGS_first_ms) : sleep_ms(random);
    absl::StatusOr<TaskRef> job = co_await computation->Run("compute", absl::StrCat(ms));
    if (!job.ok()) {
      ++failed;
      std::printf("dispycos_client1: job %d not submitted: %s\n", i, job.status().ToString().c_str());
      continue;
    }
    jobs.push_back(*job);
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    absl::StatusOr<Value> result = co_await jobs[i].Join(absl::Minutes(10));
    if (result.ok()) {
      ++done;
      std::printf("dispycos_client1: job %zu done: %s\n", i,
                  result->is_bytes() ? result->as_string().c_str() : result->DebugString().c_str());
    } else {
      ++failed;
      std::printf("dispycos_client1: job %zu failed: %s\n", i, result.status().ToString().c_str());
    }
    std::fflush(stdout);
  }
  std::printf("dispycos_client1: %d jobs done, %d failed\n", done, failed);
  std::fflush(stdout);
  if (absl::GetFlag(FLAGS_linger_s) > 0) (void)co_await picos::Sleep(absl::Seconds(absl::GetFlag(FLAGS_linger_s)));
  dash->Detach();
  PICOS_CO_RETURN_IF_ERROR(co_await computation->Close());
  if (failed > 0) co_return absl::AbortedError(absl::StrCat(failed, " jobs failed"));
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_jobs, 1, 100'000) || !picos::FlagInRange(FLAGS_min_ms, 0, 60'000) ||
      !picos::FlagInRange(FLAGS_max_ms, absl::GetFlag(FLAGS_min_ms), 60'000) ||
      !picos::FlagInRange(FLAGS_linger_s, 0, 86'400) || !picos::FlagInRange(FLAGS_first_ms, -1, 60'000)) {
    return 2;
  }
  if (!picos::examples::NodesGiven("dispycos_client1", absl::GetFlag(FLAGS_nodes))) return 2;
  return picos::RunMain("dispycos_client1", Client);
}
