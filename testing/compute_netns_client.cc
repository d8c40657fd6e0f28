// The client of testing/compute_netns_test.sh: schedules a computation
// (//testing/bench:compute_benchlib) on the picos-nodes given, runs --jobs
// `slow_tag` jobs (each sleeps --job_ms on its worker, then answers
// "<worker pid>:<n>:<job index>") and prints, for the script to check:
//
//   scheduled <workers>
//   workers_alive <n>            each time the count of usable workers changes
//   result <index> <pid>:<n>:<index>   one per job, as each arrives (so a
//                                      line after "workers_alive N" came
//                                      after the client saw that change)
//   error <index> <status>       a job that failed
//   done ok=<n> failed=<n> rerun=<n> alive=<n>
//
// Exit status 0 when every job gave its own result, 1 otherwise. Every wait
// is bounded (--timeout_s).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "transports/default_transports.h"

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to schedule on");
ABSL_FLAG(int, jobs, 600, "jobs to run");
ABSL_FLAG(int, job_ms, 20, "how long each job sleeps on its worker");
ABSL_FLAG(int, max_retries, 2, "runs again of a job whose worker was lost");
ABSL_FLAG(int, timeout_s, 120, "bounds the whole run");
ABSL_FLAG(std::string, library, "testing/bench/libcompute_benchlib.so", "the computation library");

namespace picos::testing {
namespace {

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// What a job's waiter tells the client: {"i": index, "value": bytes} or
// {"i": index, "error": text}. (Built outside the coroutine: g++ 12.)
Value Outcome(int i, const absl::StatusOr<Value>& r) {
  if (r.ok()) return Value::Map({{"i", i}, {"value", *r}});
  return Value::Map({{"i", i}, {"error", r.status().ToString()}});
}

// Joins job `i` and tells `to` how it ended.
Task<> JoinAndReport(TaskRef job, int i, TaskRef to, absl::Duration timeout) {
  absl::StatusOr<Value> r = co_await job.Join(timeout);
  (void)to.Send(Outcome(i, r));
}

Task<absl::Status> Client() {
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeFlagDefaults defaults;
  defaults.name = "compute-netns-client";
  // Default heartbeats (1 s, 5 missed: lost after 5 s of silence): a
  // shorter liveness here would lose healthy nodes and workers, which ping
  // at their own default interval (picos-node has no flag for it yet).
  PICOS_CO_ASSIGN_OR_RETURN(remote::NodeConfig config, remote::NodeConfigFromFlags(t, defaults));
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> node, co_await remote::Node::Start(t, config.options));
  const absl::Time deadline = absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_timeout_s));
  compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  o.max_retries = absl::GetFlag(FLAGS_max_retries);
  o.timeout = absl::Seconds(30);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  absl::Status scheduled = co_await c->Schedule(absl::GetFlag(FLAGS_nodes));
  PICOS_CO_RETURN_IF_ERROR(scheduled);
  size_t alive = c->workers_alive();
  Say(absl::StrCat("scheduled ", alive));
  const int jobs = absl::GetFlag(FLAGS_jobs);
  const std::string ms = absl::StrCat(absl::GetFlag(FLAGS_job_ms), ":");
  std::vector<TaskRef> running;
  for (int i = 0; i < jobs; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await c->Run("slow_tag", absl::StrCat(ms, i)));
    running.push_back(std::move(job));
  }
  // Each job's outcome is printed as it arrives (a waiter task per job
  // joins it), and a change of workers_alive as soon as the computation
  // sees it.
  for (int i = 0; i < jobs; ++i) {
    ThisScheduler().Spawn(JoinAndReport, running[i], i, Self(), deadline - absl::Now());
  }
  int ok = 0, failed = 0;
  for (int got = 0; got < jobs;) {
    absl::StatusOr<Value> m = co_await Receive(absl::Milliseconds(5));
    if (c->workers_alive() != alive) {
      alive = c->workers_alive();
      Say(absl::StrCat("workers_alive ", alive));
    }
    if (!m.ok()) {
      if (absl::Now() > deadline) co_return absl::DeadlineExceededError(absl::StrCat(jobs - got, " jobs hang"));
      continue;
    }
    ++got;
    const int i = static_cast<int>((*m)["i"].is_int() ? (*m)["i"].as_int() : -1);
    if ((*m)["error"].is_string()) {
      ++failed;
      Say(absl::StrCat("error ", i, " ", (*m)["error"].as_string()));
      continue;
    }
    const Value& v = (*m)["value"];
    const std::string tag = v.is_bytes() ? v.as_string() : v.DebugString();
    if (!absl::EndsWith(tag, absl::StrCat(":", i))) {
      ++failed;
      Say(absl::StrCat("error ", i, " the result of another job: ", tag));
      continue;
    }
    ++ok;
    Say(absl::StrCat("result ", i, " ", tag));
  }
  Say(absl::StrCat("done ok=", ok, " failed=", failed, " rerun=", c->jobs_rerun(), " alive=", c->workers_alive()));
  // The nodes cut off or killed do not answer: Close's error is theirs.
  absl::Status closed = co_await c->Close();
  if (!closed.ok()) Say(absl::StrCat("close: ", closed.ToString()));
  if (failed > 0) co_return absl::DataLossError(absl::StrCat(failed, " jobs failed"));
  co_return absl::OkStatus();
}

}  // namespace
}  // namespace picos::testing

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_jobs, 1, 1'000'000) || !picos::FlagInRange(FLAGS_job_ms, 0, 60'000) ||
      !picos::FlagInRange(FLAGS_max_retries, 0, 100) ||
      !picos::FlagInRange(FLAGS_timeout_s, 1, 3600)) {
    return 2;
  }
  if (absl::GetFlag(FLAGS_nodes).empty()) {
    std::fprintf(stderr, "compute_netns_client: --nodes is required\n");
    return 2;
  }
  return picos::RunMain("compute_netns_client", picos::testing::Client);
}
