// pycos dispycos_client8.py in C++: jobs that compute for a long time
// without awaiting anything still receive messages. The client starts
// --jobs jobs and at once streams --inputs integers to each (TaskRef::Send
// on the job's handle) and then "end"; each job works --work_ms per input,
// taking the next only when done: the inputs wait in its mailbox meanwhile
// (its worker's networking runs on another thread than the job). At the
// end each job sends its count and sum back as a message (Job::Send to
// RunOptions::reply_to, this task), which the client checks against what
// it sent.
//
//   PICOS_REMOTE_SECRET=... dispycos_client8 --nodes=tcp://127.0.0.1:9706 --jobs=4 --inputs=5
//
// Output, for people and for its smoke test (examples/dispycos_client8_smoke_test.sh):
//   dispycos_client8: job <id> sent <n> inputs, sum <s>
//   dispycos_client8: job <id> result: <n> inputs, sum <s> from pid <pid>: ok|WRONG
//   dispycos_client8: job <id> failed: <status>
//   dispycos_client8: <k> results, <m> wrong, <f> failed
// Exit status 1 when a result is wrong or missing, 2 for a bad flag.
#include <cstdio>
#include <map>
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
ABSL_FLAG(int, jobs, 4, "jobs to run");
ABSL_FLAG(int, inputs, 5, "integers streamed to each job");
ABSL_FLAG(int, work_ms, 200, "how long a job computes per input");
ABSL_FLAG(std::string, library, "examples/libdispycos_client8_compute.so",
          "the computation library (picos_computation dispycos_client8_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

constexpr absl::Duration kLong = absl::Minutes(2);  // only a hang reaches it

// Joins job `id`; tells `client` if it failed (its result never comes).
Task<void> ReportFailure(TaskRef job, uint64_t id, TaskRef client) {
  absl::StatusOr<Value> r = co_await job.Join(kLong);
  if (r.ok()) co_return;
  (void)client.Send(Value::Map({{"failed", id}, {"why", r.status().ToString()}}));
}

Task<absl::Status> Client() {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_client8"));
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, absl::GetFlag(FLAGS_nodes)));

  // Every job, and all of its inputs, at once: a job that waits for a
  // worker holds them, a job that computes finds them in its mailbox.
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> value(1, 1000);
  std::map<uint64_t, long long> sums;  // by the job's id (the "job" of its messages)
  std::vector<TaskRef> joiners;
  int failed = 0;
  const int total = absl::GetFlag(FLAGS_jobs), inputs = absl::GetFlag(FLAGS_inputs);
  for (int i = 0; i < total; ++i) {
    picos::compute::RunOptions ro;
    ro.reply_to = picos::Self();
    absl::StatusOr<TaskRef> job =
        co_await computation->Run("compute", absl::StrCat(absl::GetFlag(FLAGS_work_ms)), ro);
    if (!job.ok()) {
      std::printf("dispycos_client8: job %d not started: %s\n", i, job.status().ToString().c_str());
      ++failed;
      continue;
    }
    uint64_t id = 0;
    for (const picos::compute::JobInfo& j : computation->jobs()) {
      if (j.task == *job) id = j.id;
    }
    long long sum = 0;
    absl::Status sent;
    for (int k = 0; k < inputs && sent.ok(); ++k) {
      const int v = value(random);
      sum += v;
      sent = job->Send(Value(absl::StrCat(v)));
    }
    if (sent.ok()) sent = job->Send(Value("end"));
    if (!sent.ok()) {
      std::printf("dispycos_client8: job %llu: an input not sent: %s\n", static_cast<unsigned long long>(id),
                  sent.ToString().c_str());
      ++failed;
      (void)job->Terminate();
      continue;
    }
    sums[id] = sum;
    std::printf("dispycos_client8: job %llu sent %d inputs, sum %lld\n", static_cast<unsigned long long>(id), inputs,
                sum);
    joiners.push_back(picos::ThisScheduler().Spawn(ReportFailure, *job, id, picos::Self()));
  }
  std::fflush(stdout);

  // The results, as messages {"job": id, "data": "result <n> <sum> <pid>"}
  // (or a joiner's {"failed": id}).
  int results = 0, wrong = 0;
  for (size_t n = 0; n < sums.size(); ++n) {
    absl::StatusOr<Value> msg = co_await picos::Receive(kLong);
    if (!msg.ok()) break;
    if (const Value* f = msg->Find("failed"); f != nullptr) {
      std::printf("dispycos_client8: job %llu failed: %s\n", static_cast<unsigned long long>(f->As<uint64_t>().value_or(0)),
                  msg->GetOr<std::string>("why", "").c_str());
      ++failed;
      continue;
    }
    const uint64_t id = msg->GetOr<uint64_t>("job", 0);
    const std::string data = msg->GetOr<std::string>("data", "");
    long long count = 0, sum = 0;
    int pid = 0;
    char tail = 0;
    const bool parsed = data.size() < 96 &&
                        std::sscanf(data.c_str(), "result %lld %lld %d%c", &count, &sum, &pid, &tail) == 3;
    const auto want = sums.find(id);
    const bool ok = parsed && want != sums.end() && count == inputs && sum == want->second;
    ++results;
    wrong += ok ? 0 : 1;
    std::printf("dispycos_client8: job %llu result: %lld inputs, sum %lld from pid %d: %s\n",
                static_cast<unsigned long long>(id), count, sum, pid, ok ? "ok" : "WRONG");
  }
  for (const TaskRef& j : joiners) (void)co_await j.Join(kLong);
  std::printf("dispycos_client8: %d results, %d wrong, %d failed\n", results, wrong, failed);
  std::fflush(stdout);
  PICOS_CO_RETURN_IF_ERROR(co_await computation->Close());
  if (wrong > 0 || failed > 0 || results < total) co_return absl::AbortedError("a result is wrong or missing");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_jobs, 1, 1'000) || !picos::FlagInRange(FLAGS_inputs, 1, 1'000) ||
      !picos::FlagInRange(FLAGS_work_ms, 1, 10'000)) {
    return 2;
  }
  if (!picos::examples::NodesGiven("dispycos_client8", absl::GetFlag(FLAGS_nodes))) return 2;
  return picos::RunMain("dispycos_client8", Client);
}
