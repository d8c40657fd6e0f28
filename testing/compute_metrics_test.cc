// ComputationMetrics (compute/computation_metrics.h) fed by a real
// computation: a picos-node with two worker processes on loopback, jobs that
// succeed and fail, a CPU job seen running, a worker killed mid-job (the job
// re-run, the worker restarted), Close; the exposition's values checked at
// each step and the whole text checked by Prometheus's own parser
// (`promtool check metrics`, Debian's prometheus package).
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "compute/computation.h"
#include "compute/computation_metrics.h"
#include "metrics/metrics.h"
#include "testing/compute_testutil.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::testing {
namespace {

using namespace compute_test;  // NOLINT: the helpers of this test family

// The value of the series `series` (name and labels exactly as exposed),
// or -1 when the exposition has no such line.
double Sample(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.size() > series.size() && absl::StartsWith(line, series) && line[series.size()] == ' ') {
      double v = 0;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
    }
  }
  return -1;
}

// Waits until the series has the value `want`; false if it never does.
Task<bool> WaitForSample(const metrics::Registry* registry, std::string series, double want) {
  std::function<bool()> met = [registry, series, want] { return Sample(registry->Exposition(), series) == want; };
  const bool ok = co_await WaitUntil(met);
  if (!ok) {
    std::fprintf(stderr, "%s is %g, want %g; the exposition:\n%s\n", series.c_str(),
                 Sample(registry->Exposition(), series), want, registry->Exposition().c_str());
  }
  co_return ok;
}

#define EXPECT_SAMPLE(registry, series, want)                                   \
  do {                                                                          \
    const bool picos_met_ = co_await WaitForSample(&(registry), series, want); \
    EXPECT_TRUE(picos_met_) << series;                                          \
  } while (0)

// `promtool check metrics` on `text`: its exit status (0: valid).
int Promtool(const std::string& text, const std::string& dir) {
  const std::string path = dir + "/metrics.txt";
  std::ofstream(path) << text;
  return std::system(absl::StrCat("promtool check metrics < '", path, "'").c_str());
}

Task<absl::Status> Body(NodeProcess& node, std::string marks) {
  metrics::Registry registry;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::ComputationMetrics> m,
                            compute::ComputationMetrics::Register(registry));
  compute::ComputationOptions o;
  o.library = kLibrary;
  o.metrics = m.get();  // no status task: the metrics see the events anyway
  o.max_retries = 1;
  o.restart_workers = true;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  std::vector<std::string> nodes = {node.uri};
  PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(nodes));

  // The node and its two idle workers, with the node's facts.
  std::string text = registry.Exposition();
  EXPECT_EQ(Sample(text, "picos_compute_nodes{state=\"initialized\"}"), 1);
  EXPECT_EQ(Sample(text, "picos_compute_nodes{state=\"lost\"}"), 0);
  EXPECT_EQ(Sample(text, "picos_compute_workers{state=\"idle\"}"), 2);
  EXPECT_EQ(Sample(text, "picos_compute_workers{state=\"busy\"}"), 0);
  EXPECT_GT(Sample(text, absl::StrCat("picos_compute_node_memory_total_bytes{node=\"", node.uri, "\"}")), 0);
  EXPECT_GT(Sample(text, absl::StrCat("picos_compute_node_disk_total_bytes{node=\"", node.uri, "\"}")), 0);
  EXPECT_GE(Sample(text, absl::StrCat("picos_compute_node_load{node=\"", node.uri, "\",minutes=\"15\"}")), 0);
  const double cpu = Sample(text, absl::StrCat("picos_compute_node_cpu_available_percent{node=\"", node.uri, "\"}"));
  EXPECT_GE(cpu, 0);
  EXPECT_LE(cpu, 100);

  // Five jobs that succeed and two that fail.
  std::vector<TaskRef> jobs;
  for (int i = 0; i < 7; ++i) {
    // Named first: g++ 12 frees the temporary of a conditional expression
    // passed to a coroutine twice.
    std::string arg = i < 5 ? absl::StrCat(i) : std::string("seven");
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef j, co_await c->Run("square", arg));
    jobs.push_back(j);
  }
  for (TaskRef& j : jobs) (void)co_await j.Join(kLong);
  text = registry.Exposition();
  EXPECT_EQ(Sample(text, "picos_compute_jobs_submitted_total{function=\"square\"}"), 7);
  EXPECT_EQ(Sample(text, "picos_compute_jobs_total{function=\"square\",state=\"done\"}"), 5);
  EXPECT_EQ(Sample(text, "picos_compute_jobs_total{function=\"square\",state=\"failed\"}"), 2);
  EXPECT_EQ(Sample(text, "picos_compute_job_duration_seconds_count{function=\"square\"}"), 7);
  EXPECT_EQ(Sample(text, "picos_compute_job_duration_seconds_bucket{function=\"square\",le=\"+Inf\"}"), 7);
  EXPECT_EQ(Sample(text, "picos_compute_jobs{function=\"square\",state=\"waiting\"}"), 0);
  EXPECT_EQ(Sample(text, "picos_compute_jobs{function=\"square\",state=\"running\"}"), 0);

  // Three CPU jobs on two workers: two run (both workers busy), one waits.
  std::vector<TaskRef> slow;
  for (int i = 0; i < 3; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef j, co_await c->Run("sleep_ms", absl::StrCat("3000:", marks, "/s", i)));
    slow.push_back(j);
  }
  EXPECT_SAMPLE(registry, "picos_compute_jobs{function=\"sleep_ms\",state=\"running\"}", 2);
  text = registry.Exposition();
  EXPECT_EQ(Sample(text, "picos_compute_jobs{function=\"sleep_ms\",state=\"waiting\"}"), 1);
  EXPECT_EQ(Sample(text, "picos_compute_workers{state=\"busy\"}"), 2);
  EXPECT_EQ(Sample(text, "picos_compute_workers{state=\"idle\"}"), 0);

  // The worker of the first is killed mid-job: lost, restarted, the job
  // re-run (max_retries 1) and done at last.
  std::string victim;
  for (const compute::JobInfo& j : c->jobs()) {
    if (j.task == slow[0]) victim = j.worker;
  }
  EXPECT_FALSE(victim.empty());
  std::map<std::string, int> pids;
  for (int i = 0; i < 2; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await NodeLine(node, "worker started "));
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    int pid = -1;
    if (f.size() == 6 && absl::SimpleAtoi(f[4], &pid)) pids[f[5]] = pid;
  }
  std::function<bool()> runs = [&] { return std::filesystem::exists(marks + "/s0"); };
  const bool ran = co_await WaitUntil(runs);
  EXPECT_TRUE(ran);
  if (pids.count(victim) == 0 || ParentOf(pids[victim]) != node.process->pid()) {
    co_return absl::InternalError(absl::StrCat("no pid of the node's worker ", victim));
  }
  if (kill(pids[victim], SIGKILL) != 0) co_return absl::InternalError("kill failed");
  EXPECT_SAMPLE(registry, "picos_compute_worker_restarts_total", 1);
  EXPECT_SAMPLE(registry, "picos_compute_jobs_total{function=\"sleep_ms\",state=\"rerun\"}", 1);
  for (TaskRef& j : slow) {
    absl::StatusOr<Value> r = co_await j.Join(kLong);
    EXPECT_OK(r.status());
  }
  text = registry.Exposition();
  EXPECT_EQ(Sample(text, "picos_compute_jobs_total{function=\"sleep_ms\",state=\"done\"}"), 3);
  EXPECT_EQ(Sample(text, "picos_compute_jobs{function=\"sleep_ms\",state=\"running\"}"), 0);
  EXPECT_EQ(Sample(text, "picos_compute_jobs{function=\"sleep_ms\",state=\"waiting\"}"), 0);
  EXPECT_EQ(Sample(text, "picos_compute_workers{state=\"idle\"}"), 2);
  EXPECT_EQ(Sample(text, "picos_compute_workers{state=\"lost\"}"), 0);  // replaced
  // A sleep of 3 s took at least that long.
  EXPECT_GE(Sample(text, "picos_compute_job_duration_seconds_sum{function=\"sleep_ms\"}"), 3 * 2.9);

  // A job refused while waiting (the computation closes under it) counts
  // as failed; Close leaves the node and its workers closed.
  compute::CloseOptions co;
  co.terminate = true;
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef held, co_await c->Run("sleep_ms", absl::StrCat("10000:", marks, "/h0")));
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef held2, co_await c->Run("sleep_ms", absl::StrCat("10000:", marks, "/h1")));
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef queued, co_await c->Run("square", "3"));
  EXPECT_SAMPLE(registry, "picos_compute_jobs{function=\"sleep_ms\",state=\"running\"}", 2);
  EXPECT_EQ(Sample(registry.Exposition(), "picos_compute_jobs{function=\"square\",state=\"waiting\"}"), 1);
  PICOS_CO_RETURN_IF_ERROR(co_await c->Close(co));
  (void)co_await held.Join(kLong);
  (void)co_await held2.Join(kLong);
  (void)co_await queued.Join(kLong);
  text = registry.Exposition();
  EXPECT_EQ(Sample(text, "picos_compute_jobs_total{function=\"sleep_ms\",state=\"terminated\"}"), 2);
  EXPECT_EQ(Sample(text, "picos_compute_jobs_total{function=\"square\",state=\"failed\"}"), 3);
  EXPECT_EQ(Sample(text, "picos_compute_jobs{function=\"square\",state=\"waiting\"}"), 0);
  EXPECT_EQ(Sample(text, "picos_compute_nodes{state=\"closed\"}"), 1);
  EXPECT_EQ(Sample(text, "picos_compute_nodes{state=\"initialized\"}"), 0);
  EXPECT_EQ(Sample(text, "picos_compute_workers{state=\"closed\"}"), 2);
  // A closed node's facts are no longer shown.
  EXPECT_EQ(Sample(text, absl::StrCat("picos_compute_node_memory_total_bytes{node=\"", node.uri, "\"}")), -1);

  std::printf("--- the exposition\n%s", text.c_str());
  EXPECT_EQ(Promtool(text, marks), 0) << "promtool check metrics refused the exposition";
  co_return absl::OkStatus();
}

// Runs `body` with a real picos-node of two workers, this process's client
// Node and a fresh folder of its own; then stops the node.
Task<> WithNode(std::string name, std::function<Task<absl::Status>(NodeProcess&, std::string)> body) {
  const std::string dest = FreshDir(name + "-dest");
  const std::string scratch = FreshDir(name + "-scratch");
  absl::StatusOr<NodeProcess> node = co_await StartNode(2, dest);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (me.ok()) {
    absl::Status done = co_await body(*node, scratch);
    EXPECT_OK(done);
    me->reset();
  }
  EXPECT_OK(me.status());
  absl::Status stopped = co_await StopNode(*node);
  EXPECT_OK(stopped);
}

PICOS_CORO_TEST(ComputeMetrics, JobsWorkersNodesFromARealComputation) {
  co_await WithNode("compute-metrics", Body);
}

// Function names beyond max_functions share one series; the bound holds
// whatever the input (events fed directly, as a status task would).
TEST(ComputeMetrics, FunctionsBeyondTheBoundFoldIntoOverflow) {
  metrics::Registry registry;
  compute::ComputationMetrics::Options o;
  o.max_functions = 3;
  absl::StatusOr<std::unique_ptr<compute::ComputationMetrics>> m =
      compute::ComputationMetrics::Register(registry, o);
  ASSERT_OK(m.status());
  for (uint64_t i = 0; i < 10; ++i) {
    const std::string fn = absl::StrCat("f", i);
    (*m)->JobQueued("c1", i, fn);
    (*m)->Observe(Value::Map({{"type", "job_started"}, {"computation", "c1"}, {"job", i}, {"fn", fn},
                              {"worker", "w"}, {"async", false}}));
    (*m)->Observe(Value::Map({{"type", "job_finished"}, {"computation", "c1"}, {"job", i}, {"fn", fn},
                              {"worker", "w"}, {"code", int64_t{0}}}));
  }
  // Garbage is ignored.
  (*m)->Observe(Value("not a map"));
  (*m)->Observe(Value::Map({{"type", "job_finished"}, {"job", "not a number"}}));
  (*m)->Observe(Value::Map({{"type", "node_health"}, {"node", "n"}, {"facts", 7}}));
  const std::string text = registry.Exposition();
  EXPECT_EQ(Sample(text, "picos_compute_jobs_total{function=\"f2\",state=\"done\"}"), 1);
  EXPECT_EQ(Sample(text, "picos_compute_jobs_total{function=\"f3\",state=\"done\"}"), -1);
  EXPECT_EQ(Sample(text, "picos_compute_jobs_total{function=\"__overflow__\",state=\"done\"}"), 7);
  EXPECT_EQ(Sample(text, "picos_compute_jobs_submitted_total{function=\"__overflow__\"}"), 7);
  EXPECT_EQ(Sample(text, "picos_compute_jobs{function=\"__overflow__\",state=\"running\"}"), 0);
  EXPECT_EQ(Sample(text, "picos_compute_job_duration_seconds_count{function=\"__overflow__\"}"), 7);
  // A second registration in the same registry is refused.
  EXPECT_THAT(compute::ComputationMetrics::Register(registry).status(),
              StatusIs(absl::StatusCode::kAlreadyExists));
}

// The job paths without an event of their own: a job started again
// without a rerun (its worker refused it before it ran), a rerun, and a
// job dropped while waiting; the gauges come back to zero.
TEST(ComputeMetrics, GaugesFollowEveryPathOfAJob) {
  metrics::Registry registry;
  absl::StatusOr<std::unique_ptr<compute::ComputationMetrics>> m = compute::ComputationMetrics::Register(registry);
  ASSERT_OK(m.status());
  auto ev = [](const char* type, uint64_t job, int64_t code = 0) {
    return Value::Map({{"type", type}, {"computation", "c"}, {"job", job}, {"fn", "f"}, {"worker", "w"},
                       {"async", false}, {"code", code}});
  };
  (*m)->Observe(Value::Map({{"type", "worker_initialized"}, {"computation", "c"}, {"worker", "w"}, {"node", "n"}}));
  (*m)->JobQueued("c", 1, "f");
  (*m)->JobQueued("c", 2, "f");
  (*m)->JobQueued("c", 3, "f");
  (*m)->Observe(ev("job_started", 1));
  (*m)->Observe(ev("job_started", 1));  // again, no rerun between
  (*m)->Observe(ev("job_started", 2));
  std::string text = registry.Exposition();
  EXPECT_EQ(Sample(text, "picos_compute_jobs{function=\"f\",state=\"running\"}"), 2);
  EXPECT_EQ(Sample(text, "picos_compute_jobs{function=\"f\",state=\"waiting\"}"), 1);
  EXPECT_EQ(Sample(text, "picos_compute_workers{state=\"busy\"}"), 1);
  (*m)->Observe(ev("job_rerun", 2));
  text = registry.Exposition();
  EXPECT_EQ(Sample(text, "picos_compute_jobs{function=\"f\",state=\"waiting\"}"), 2);
  (*m)->Observe(ev("job_started", 2));
  (*m)->Observe(ev("job_finished", 1));
  (*m)->Observe(ev("job_finished", 2, 10));
  (*m)->JobDropped("c", 3);
  text = registry.Exposition();
  EXPECT_EQ(Sample(text, "picos_compute_jobs{function=\"f\",state=\"running\"}"), 0);
  EXPECT_EQ(Sample(text, "picos_compute_jobs{function=\"f\",state=\"waiting\"}"), 0);
  EXPECT_EQ(Sample(text, "picos_compute_jobs_total{function=\"f\",state=\"done\"}"), 1);
  EXPECT_EQ(Sample(text, "picos_compute_jobs_total{function=\"f\",state=\"failed\"}"), 2);
  EXPECT_EQ(Sample(text, "picos_compute_jobs_total{function=\"f\",state=\"rerun\"}"), 1);
  EXPECT_EQ(Sample(text, "picos_compute_workers{state=\"busy\"}"), 0);
  EXPECT_EQ(Sample(text, "picos_compute_workers{state=\"idle\"}"), 1);
}

// Each series of `want` has its value in `text` (-1: the series is absent).
void ExpectSamples(const std::string& text, const std::map<std::string, double>& want) {
  for (const auto& [series, value] : want) EXPECT_EQ(Sample(text, series), value) << series;
}

// The setup events (compute/computation.h: disable_nodes / disable_workers,
// EnableNode, setup hooks, CloseNode), fed directly as a status task would
// see them: a node and its workers disabled until enabled, counted as
// such; each setup failure counted by its stage; a node closed by CloseNode.
TEST(ComputeMetrics, DisabledNodesAndWorkersAndSetupFailures) {
  metrics::Registry registry;
  absl::StatusOr<std::unique_ptr<compute::ComputationMetrics>> m = compute::ComputationMetrics::Register(registry);
  ASSERT_OK(m.status());
  std::string text = registry.Exposition();
  // Every state and stage from the first scrape, at 0.
  ExpectSamples(text, {{"picos_compute_workers{state=\"disabled\"}", 0},
                       {"picos_compute_nodes{state=\"disabled\"}", 0},
                       {"picos_compute_worker_setup_failures_total{stage=\"node\"}", 0},
                       {"picos_compute_worker_setup_failures_total{stage=\"worker\"}", 0}});

  compute::HostFacts facts;
  facts.cpus = 3;
  facts.memory_total = 8ull << 30;
  auto ev = [](const char* type, const char* worker) {
    return Value::Map({{"type", type}, {"computation", "c"}, {"node", "n"}, {"worker", worker}});
  };
  (*m)->Observe(Value::Map({{"type", "node_discovered"}, {"computation", "c"}, {"node", "n"},
                            {"facts", facts.ToValue()}, {"cpus", int64_t{3}}}));
  for (const char* w : {"w1", "w2", "w3"}) (*m)->Observe(ev("worker_discovered", w));
  text = registry.Exposition();
  ExpectSamples(text, {{"picos_compute_nodes{state=\"disabled\"}", 1},
                       {"picos_compute_nodes{state=\"initialized\"}", 0},
                       {"picos_compute_workers{state=\"disabled\"}", 3},
                       {"picos_compute_workers{state=\"idle\"}", 0}});
  // A disabled node's facts are shown: it runs, it is only unused.
  ExpectSamples(text, {{"picos_compute_node_memory_total_bytes{node=\"n\"}", double(8ull << 30)}});

  // EnableNode: the node setup fails in w3 (closed then), w1 and w2 serve.
  (*m)->Observe(Value::Map({{"type", "node_initialized"}, {"computation", "c"}, {"node", "n"},
                            {"facts", facts.ToValue()}, {"cpus", int64_t{3}}}));
  (*m)->Observe(ev("worker_initialized", "w1"));
  (*m)->Observe(ev("worker_initialized", "w2"));
  Value failed = ev("worker_setup_failed", "w3");
  failed.as_map()["stage"] = Value("node");
  failed.as_map()["message"] = Value("no data");
  (*m)->Observe(failed);
  (*m)->Observe(ev("worker_closed", "w3"));
  // A worker hook failing elsewhere, for a worker never tracked: counted.
  Value failed_worker = ev("worker_setup_failed", "w9");
  failed_worker.as_map()["stage"] = Value("worker");
  (*m)->Observe(failed_worker);
  text = registry.Exposition();
  ExpectSamples(text, {{"picos_compute_nodes{state=\"disabled\"}", 0},
                       {"picos_compute_nodes{state=\"initialized\"}", 1},
                       {"picos_compute_workers{state=\"disabled\"}", 0},
                       {"picos_compute_workers{state=\"idle\"}", 2},
                       {"picos_compute_workers{state=\"closed\"}", 1},
                       {"picos_compute_worker_setup_failures_total{stage=\"node\"}", 1},
                       {"picos_compute_worker_setup_failures_total{stage=\"worker\"}", 1}});

  // CloseNode: its workers close, then node_closed; its facts go.
  (*m)->Observe(ev("worker_closed", "w1"));
  (*m)->Observe(ev("worker_closed", "w2"));
  (*m)->Observe(Value::Map({{"type", "node_closed"}, {"computation", "c"}, {"node", "n"}}));
  text = registry.Exposition();
  ExpectSamples(text, {{"picos_compute_nodes{state=\"closed\"}", 1},
                       {"picos_compute_nodes{state=\"initialized\"}", 0},
                       {"picos_compute_workers{state=\"closed\"}", 3},
                       {"picos_compute_node_memory_total_bytes{node=\"n\"}", -1}});
}

// The same setup events from a real computation (picos-node, the library
// of testing/compute_setup_lib.cc): the node discovered disabled and its
// two workers disabled; EnableNode, the worker setup failing once (that
// worker closed, the other idle); CloseNode.
Task<absl::Status> SetupBody(NodeProcess& node, std::string scratch) {
  metrics::Registry registry;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::ComputationMetrics> m,
                            compute::ComputationMetrics::Register(registry));
  compute::ComputationOptions o;
  o.library = "testing/libcompute_setup_lib.so";
  o.metrics = m.get();
  o.disable_nodes = true;
  o.worker_setup_arg = absl::StrCat("fail-once:", scratch, "/failed");
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  std::vector<std::string> nodes = {node.uri};
  PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(nodes));
  EXPECT_SAMPLE(registry, "picos_compute_nodes{state=\"disabled\"}", 1);
  EXPECT_SAMPLE(registry, "picos_compute_workers{state=\"disabled\"}", 2);
  EXPECT_SAMPLE(registry, "picos_compute_workers{state=\"idle\"}", 0);

  absl::Status enabled = co_await c->EnableNode(node.uri, "node data");
  EXPECT_OK(enabled);
  EXPECT_SAMPLE(registry, "picos_compute_worker_setup_failures_total{stage=\"worker\"}", 1);
  EXPECT_SAMPLE(registry, "picos_compute_worker_setup_failures_total{stage=\"node\"}", 0);
  EXPECT_SAMPLE(registry, "picos_compute_nodes{state=\"initialized\"}", 1);
  EXPECT_SAMPLE(registry, "picos_compute_workers{state=\"idle\"}", 1);
  EXPECT_SAMPLE(registry, "picos_compute_workers{state=\"closed\"}", 1);
  EXPECT_SAMPLE(registry, "picos_compute_workers{state=\"disabled\"}", 0);

  absl::Status closed = co_await c->CloseNode(node.uri);
  EXPECT_OK(closed);
  EXPECT_SAMPLE(registry, "picos_compute_nodes{state=\"closed\"}", 1);
  EXPECT_SAMPLE(registry, "picos_compute_workers{state=\"closed\"}", 2);
  PICOS_CO_RETURN_IF_ERROR(co_await c->Close());
  co_return absl::OkStatus();
}

PICOS_CORO_TEST(ComputeMetrics, SetupEventsFromARealComputation) {
  co_await WithNode("compute-metrics-setup", SetupBody);
}

}  // namespace
}  // namespace picos::testing
