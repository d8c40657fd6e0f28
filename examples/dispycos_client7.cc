// pycos dispycos_client7.py in C++: status-driven scheduling. The client's
// main task is the computation's status task; each worker_initialized event
// puts a first job on that worker (RunAt), and each job_finished event
// collects the job's result and puts the next job on the worker it ran on,
// until --jobs jobs ran. So every worker runs one job at a time, chosen by
// the client from the events, not by the computation's own dispatch. The
// computation is dispycos_client2's (`compute`: sleep, then say where).
//
//   picos-node --cpus=2 --listen=tcp://127.0.0.1:9706 --dest_path=/tmp/node &
//   PICOS_REMOTE_SECRET=... dispycos_client7 --nodes=tcp://127.0.0.1:9706 --jobs=10
//
// Output, for people and for its smoke test (examples/dispycos_client7_smoke_test.sh):
//   dispycos_client7: worker <uri> initialized: job <i> submitted
//   dispycos_client7: job <i> on <worker uri> done: <host> <pid> slept <ms> ms
//   dispycos_client7: job <i> on <worker uri> failed: <status>
//   dispycos_client7: <n> jobs done, <m> failed, on <w> workers
// Exit status 1 when a job failed or the events stopped, 2 for a bad flag.
#include <cstdio>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
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

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to run jobs on (required)");
ABSL_FLAG(int, jobs, 10, "jobs to run");
ABSL_FLAG(int, min_ms, 100, "shortest time a job sleeps");
ABSL_FLAG(int, max_ms, 300, "longest time a job sleeps");
ABSL_FLAG(std::string, library, "examples/libdispycos_client2_compute.so",
          "the computation library (picos_computation dispycos_client2_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

// How long the client waits for the next event before giving up: only a
// hang reaches it (a job sleeps at most 60 s).
constexpr absl::Duration kEventWait = absl::Minutes(2);

std::string Field(const Value& e, const char* name) { return e.GetOr<std::string>(name, ""); }

Task<absl::Status> Client() {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_client7"));
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  o.status_task = picos::Self();  // this task: the events queue in its mailbox
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, absl::GetFlag(FLAGS_nodes)));

  const int total = absl::GetFlag(FLAGS_jobs);
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> sleep_ms(absl::GetFlag(FLAGS_min_ms), absl::GetFlag(FLAGS_max_ms));
  absl::flat_hash_map<TaskRef, int> running;  // job task -> its number
  std::set<std::string> used;      // workers that ran a job
  int submitted = 0, done = 0, failed = 0;
  // The next job, on `worker` (pycos rtask_at(server, ...)).
  auto submit = [&](const std::string& worker) -> Task<void> {
    while (submitted < total) {
      const int i = submitted++;
      absl::StatusOr<TaskRef> job = co_await computation->RunAt(worker, "compute", absl::StrCat(sleep_ms(random)));
      if (job.ok()) {
        running[*job] = i;
        co_return;
      }
      ++failed;
      std::printf("dispycos_client7: job %d on %s not submitted: %s\n", i, worker.c_str(),
                  job.status().ToString().c_str());
    }
  };

  // Every event is a message; bounded by count (each job gives a few
  // events, each node a pulse now and then) and by kEventWait per event.
  absl::Status outcome = absl::OkStatus();
  for (int64_t n = 0; done + failed < total && n < 1000 + 100 * int64_t{total}; ++n) {
    absl::StatusOr<Value> event = co_await picos::Receive(kEventWait);
    if (!event.ok()) {
      outcome = absl::DeadlineExceededError(absl::StrCat("no status event: ", event.status().ToString()));
      break;
    }
    const std::string type = Field(*event, "type");
    if (type == "worker_initialized") {
      const std::string worker = Field(*event, "worker");
      if (submitted < total) {
        std::printf("dispycos_client7: worker %s initialized: job %d submitted\n", worker.c_str(), submitted);
        co_await submit(worker);
      }
    } else if (type == "job_finished") {
      const Value* task = event->Find("task");
      if (task == nullptr || !task->is_task()) continue;
      auto it = running.find(task->as_task());
      if (it == running.end()) continue;  // not one of ours
      const int i = it->second;
      running.erase(it);
      const std::string worker = Field(*event, "worker");
      // The job has ended (this is its event): Join gives its result now.
      absl::StatusOr<Value> result = co_await task->as_task().Join(kEventWait);
      if (result.ok()) {
        ++done;
        used.insert(worker);
        std::printf("dispycos_client7: job %d on %s done: %s\n", i, worker.c_str(),
                    result->is_bytes() ? result->as_string().c_str() : result->DebugString().c_str());
      } else {
        ++failed;
        std::printf("dispycos_client7: job %d on %s failed: %s\n", i, worker.c_str(),
                    result.status().ToString().c_str());
      }
      co_await submit(worker);  // the next job where this one finished
    }
  }
  if (outcome.ok() && done + failed < total) outcome = absl::InternalError("too many status events");
  std::printf("dispycos_client7: %d jobs done, %d failed, on %zu workers\n", done, failed, used.size());
  std::fflush(stdout);
  absl::Status closed = co_await computation->Close();
  PICOS_CO_RETURN_IF_ERROR(outcome);
  PICOS_CO_RETURN_IF_ERROR(closed);
  if (failed > 0) co_return absl::AbortedError(absl::StrCat(failed, " jobs failed"));
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_jobs, 1, 100'000) || !picos::FlagInRange(FLAGS_min_ms, 0, 60'000) ||
      !picos::FlagInRange(FLAGS_max_ms, absl::GetFlag(FLAGS_min_ms), 60'000)) {
    return 2;
  }
  if (!picos::examples::NodesGiven("dispycos_client7", absl::GetFlag(FLAGS_nodes))) return 2;
  return picos::RunMain("dispycos_client7", Client);
}
