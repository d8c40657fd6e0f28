// pycos dispycos_client10.py in C++: workers restarted with clean state.
// Each job processes one data item on a worker; when its job_finished
// event arrives the client collects the result and closes that worker with
// restart (CloseWorker(uri, restart = true), pycos
// dispycos_close_server(restart=True)), so its node starts a fresh process
// in its place; the worker_restarted event puts the next job on the new
// worker. Every job thus starts in a process no job ran in: the state the
// library keeps per process (compute/dispycos_client10_compute.cc counts
// the jobs it ran) is always 1. With --norestart the workers are kept and
// the count grows.
//
//   picos-node --cpus=2 --listen=tcp://127.0.0.1:9706 --dest_path=/tmp/node &
//   PICOS_REMOTE_SECRET=... dispycos_client10 --nodes=tcp://127.0.0.1:9706 --jobs=6
//
// Output, for people and for its smoke test (examples/dispycos_client10_smoke_test.sh):
//   dispycos_client10: job <i> on <worker uri> done: <checksum> <jobs run by that process> <pid>
//   dispycos_client10: job <i> on <worker uri> failed: <status>
//   dispycos_client10: worker <old uri> restarted as <new uri>
//   dispycos_client10: <n> jobs done, <m> failed, <r> workers restarted (one per job)
// Exit status 1 when a job failed or the events stopped, 2 for a bad flag.
#include <cstdio>
#include <memory>
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
ABSL_FLAG(int, jobs, 6, "data items to process, one job each");
ABSL_FLAG(bool, restart, true, "restart each worker after its job (clean state for the next)");
ABSL_FLAG(std::string, library, "examples/libdispycos_client10_compute.so",
          "the computation library (picos_computation dispycos_client10_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

// How long the client waits for the next event: only a hang reaches it.
constexpr absl::Duration kEventWait = absl::Minutes(2);

std::string Field(const Value& e, const char* name) { return e.GetOr<std::string>(name, ""); }

Task<absl::Status> Client() {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_client10"));
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  o.status_task = picos::Self();  // this task: the events queue in its mailbox
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, absl::GetFlag(FLAGS_nodes)));

  const int total = absl::GetFlag(FLAGS_jobs);
  const bool restart = absl::GetFlag(FLAGS_restart);
  absl::flat_hash_map<TaskRef, int> running;  // job task -> its number
  int submitted = 0, done = 0, failed = 0, restarted = 0;
  // The next data item, on `worker`.
  auto submit = [&](const std::string& worker) -> Task<void> {
    while (submitted < total) {
      const int i = submitted++;
      absl::StatusOr<TaskRef> job = co_await computation->RunAt(worker, "process", absl::StrCat("data item ", i));
      if (job.ok()) {
        running[*job] = i;
        co_return;
      }
      ++failed;
      std::printf("dispycos_client10: job %d on %s not submitted: %s\n", i, worker.c_str(),
                  job.status().ToString().c_str());
    }
  };

  // Bounded by count (a few events per job, a pulse now and then) and by
  // kEventWait per event.
  absl::Status outcome = absl::OkStatus();
  for (int64_t n = 0; done + failed < total && n < 1000 + 100 * int64_t{total}; ++n) {
    absl::StatusOr<Value> event = co_await picos::Receive(kEventWait);
    if (!event.ok()) {
      outcome = absl::DeadlineExceededError(absl::StrCat("no status event: ", event.status().ToString()));
      break;
    }
    const std::string type = Field(*event, "type");
    if (type == "worker_initialized") {
      co_await submit(Field(*event, "worker"));
    } else if (type == "worker_restarted") {
      const std::string worker = Field(*event, "worker");
      std::printf("dispycos_client10: worker %s restarted as %s\n", Field(*event, "old").c_str(), worker.c_str());
      co_await submit(worker);
    } else if (type == "job_finished") {
      const Value* task = event->Find("task");
      if (task == nullptr || !task->is_task()) continue;
      auto it = running.find(task->as_task());
      if (it == running.end()) continue;  // not one of ours
      const int i = it->second;
      running.erase(it);
      const std::string worker = Field(*event, "worker");
      absl::StatusOr<Value> result = co_await task->as_task().Join(kEventWait);  // ended: at once
      if (result.ok()) {
        ++done;
        std::printf("dispycos_client10: job %d on %s done: %s\n", i, worker.c_str(),
                    result->is_bytes() ? result->as_string().c_str() : result->DebugString().c_str());
      } else {
        ++failed;
        std::printf("dispycos_client10: job %d on %s failed: %s\n", i, worker.c_str(),
                    result.status().ToString().c_str());
      }
      if (!restart) {
        co_await submit(worker);
        continue;
      }
      // A fresh process in this one's place; the next job goes there when
      // its worker_restarted event arrives.
      absl::Status closed = co_await computation->CloseWorker(worker, /*restart=*/true);
      if (!closed.ok()) {
        outcome = closed;
        break;
      }
      ++restarted;
    }
  }
  if (outcome.ok() && done + failed < total) outcome = absl::InternalError("too many status events");
  std::printf("dispycos_client10: %d jobs done, %d failed, %d workers restarted\n", done, failed, restarted);
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
  if (!picos::FlagInRange(FLAGS_jobs, 1, 10'000)) return 2;
  if (!picos::examples::NodesGiven("dispycos_client10", absl::GetFlag(FLAGS_nodes))) return 2;
  return picos::RunMain("dispycos_client10", Client);
}
