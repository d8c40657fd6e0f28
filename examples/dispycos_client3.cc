// pycos dispycos_client3.py in C++: objects sent to jobs, changed there,
// and delivered back to a local task as messages. Each job gets an object
// C {i, n}, works n ms on a worker and replaces n with its square root; a
// local results task receives every changed object as a message (a Value
// map) and shows it.
//
// As in pycos, the job itself sends the changed object to the client's
// task (client_task.send(obj)): the job is registered with
// PICOS_COMPUTE_JOB (compute/export.h), and Run names the results task as
// its reply_to (compute::RunOptions), so the job's Send reaches it as
// {"job": <id>, "data": "C <i> <n> <pid>"}. A small local task per job joins
// it only to report a job that failed (its object then never comes).
//
//   PICOS_REMOTE_SECRET=... dispycos_client3 --nodes=tcp://127.0.0.1:9706 --jobs=10
//
// Output, for people and for its smoke test (examples/dispycos_client3_smoke_test.sh):
//   dispycos_client3: object <i> sent: n=<n>
//   dispycos_client3: object <i> received from pid <pid>: n=<sqrt(n)>
//   dispycos_client3: object <i> lost: <status>
//   dispycos_client3: <n> objects received, <m> lost
// Exit status 1 when an object was lost, 2 for a bad flag.
#include <cstdio>
#include <memory>
#include <random>
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

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to run jobs on (required)");
ABSL_FLAG(int, jobs, 10, "objects to send, one job each");
ABSL_FLAG(std::string, library, "examples/libdispycos_client3_compute.so",
          "the computation library (picos_computation dispycos_client3_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

constexpr absl::Duration kLong = absl::Minutes(2);  // only a hang reaches it

// The results task (pycos client3's local task): shows each object a job
// sends it, until `expected` came (or were reported lost). Returns how many
// objects came.
Task<int64_t> Results(int64_t expected) {
  int64_t received = 0;
  for (int64_t n = 0; n < expected; ++n) {
    absl::StatusOr<Value> msg = co_await picos::Receive(kLong);
    if (!msg.ok()) break;
    if (msg->GetOr<std::string>("kind", "") == "lost") {
      std::printf("dispycos_client3: object %lld lost: %s\n", static_cast<long long>(msg->GetOr<int64_t>("i", -1)),
                  msg->GetOr<std::string>("why", "").c_str());
      continue;
    }
    // A job's message: {"job": id, "data": "C <i> <n> <pid>"}.
    const std::string data = msg->GetOr<std::string>("data", "");
    long i = -1;
    double v = 0;
    int pid = 0;
    char tail = 0;
    if (data.size() > 128 || std::sscanf(data.c_str(), "C %ld %lf %d%c", &i, &v, &pid, &tail) != 3) {
      std::printf("dispycos_client3: malformed object %s\n", msg->DebugString().substr(0, 100).c_str());
      continue;
    }
    ++received;
    std::printf("dispycos_client3: object %ld received from pid %d: n=%.6f\n", i, pid, v);
  }
  co_return received;
}

// Waits for job `i`; tells `results` if it failed (its object never comes).
Task<void> ReportFailure(TaskRef job, int64_t i, TaskRef results) {
  absl::StatusOr<Value> r = co_await job.Join(kLong);
  if (r.ok()) co_return;
  (void)results.Send(Value::Map({{"kind", "lost"}, {"i", i}, {"why", r.status().ToString()}}));
}

Task<absl::Status> Client() {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_client3"));
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, absl::GetFlag(FLAGS_nodes)));

  const int total = absl::GetFlag(FLAGS_jobs);
  TaskRef results = picos::ThisScheduler().Spawn(Results, int64_t{total});
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> ms(10, 100);
  std::vector<TaskRef> joiners;
  for (int64_t i = 0; i < total; ++i) {
    const int n = ms(random);
    std::printf("dispycos_client3: object %lld sent: n=%d\n", static_cast<long long>(i), n);
    picos::compute::RunOptions ro;
    ro.reply_to = results;  // where the job's Send goes
    absl::StatusOr<TaskRef> job = co_await computation->Run("compute", absl::StrCat("C ", i, " ", n), ro);
    if (!job.ok()) {
      (void)results.Send(Value::Map({{"kind", "lost"}, {"i", i}, {"why", job.status().ToString()}}));
      continue;
    }
    joiners.push_back(picos::ThisScheduler().Spawn(ReportFailure, *job, i, results));
  }
  absl::StatusOr<Value> received = co_await results.Join(kLong);
  for (const TaskRef& f : joiners) (void)co_await f.Join(kLong);
  const int64_t got = received.ok() && received->is_int() ? received->as_int() : 0;
  std::printf("dispycos_client3: %lld objects received, %lld lost\n", static_cast<long long>(got),
              static_cast<long long>(total - got));
  std::fflush(stdout);
  PICOS_CO_RETURN_IF_ERROR(co_await computation->Close());
  if (got < total) co_return absl::AbortedError(absl::StrCat(total - got, " objects lost"));
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_jobs, 1, 10'000)) return 2;
  if (!picos::examples::NodesGiven("dispycos_client3", absl::GetFlag(FLAGS_nodes))) return 2;
  return picos::RunMain("dispycos_client3", Client);
}
