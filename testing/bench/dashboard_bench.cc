// Figures of the dashboard (dashboard/dashboard.h), `name: value unit`
// lines each beside its floor measured in the same run:
//
//   metrics_scrape_ms       GET /metrics through the dashboard's server, a
//                           registry holding what 10,000 finished jobs of 8
//                           functions on 8 workers leave (job counters by
//                           function and state, a duration histogram per
//                           function, each worker's gauges); floor: the
//                           registry's exposition alone, no HTTP
//   dashboard_state_ms      GET /api/state after those 10,000 jobs (the
//                           model keeps its bounded ring of 2,000)
//   dashboard_event_us      one status event applied to the model (a job's
//                           start or end, with its deltas)
//   dashboard_rss_mb        the process's extra memory with the dashboard on
//                           and the 10,000 jobs' events seen; floor: a bare
//                           metrics server serving the same registry
//
// The registry here stands for the job metrics a client registers
// (compute's own, built elsewhere): the same families and series counts.
//
//   bazel run -c opt //testing/bench:dashboard_bench
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/io/stream.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "dashboard/dashboard.h"
#include "metrics/http_server.h"
#include "metrics/metrics.h"
#include "testing/bench/figures.h"
#include "transports/default_transports.h"

namespace {

using picos::Task;
using picos::Value;

constexpr int kJobs = 10'000;
constexpr int kWorkers = 8;
constexpr int kFunctions = 8;
constexpr char kToken[] = "dashboard-bench-token-0123456789";
constexpr absl::Duration kDeadline = absl::Seconds(60);

// What 10,000 finished jobs leave in a client's registry.
void FillRegistry(picos::metrics::Registry& r) {
  namespace m = picos::metrics;
  m::CounterFamily* jobs = *r.AddCounter("jobs_total", "Jobs by function and state.", {"function", "state"});
  m::HistogramFamily* durations = *r.AddHistogram(
      {.name = "job_duration_seconds", .help = "Job durations.", .label_names = {"function"}},
      m::DurationBuckets());
  m::GaugeFamily* busy = *r.AddGauge("worker_busy", "Whether a worker runs a CPU job.", {"worker"});
  m::CounterFamily* done = *r.AddCounter("worker_jobs_total", "Jobs run by each worker.", {"worker"});
  for (int j = 0; j < kJobs; ++j) {
    const std::string fn = absl::StrCat("function_", j % kFunctions);
    jobs->WithLabels({fn, j % 50 == 0 ? "failed" : "done"})->Increment();
    durations->WithLabels({fn})->Observe(0.001 * (j % 2000));
    done->WithLabels({absl::StrCat("tcp://127.0.0.1:", 40000 + j % kWorkers)})->Increment();
  }
  for (int w = 0; w < kWorkers; ++w) busy->WithLabels({absl::StrCat("tcp://127.0.0.1:", 40000 + w)})->Set(w % 2);
}

// One GET on a new connection: the body's size, or an error.
Task<absl::StatusOr<size_t>> Get(std::string uri, std::string path) {
  absl::StatusOr<std::unique_ptr<picos::Stream>> s = co_await picos::transports::DefaultTransports().Connect(uri);
  if (!s.ok()) co_return s.status();
  absl::Status w = co_await (*s)->Write(
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ", kToken, "\r\n\r\n"), kDeadline);
  if (!w.ok()) co_return w;
  std::string in;
  size_t body = std::string::npos, length = 0;
  for (int i = 0; i < 100'000; ++i) {
    absl::StatusOr<std::string> more = co_await (*s)->Read(1 << 16, kDeadline);
    if (!more.ok()) co_return more.status();
    if (more->empty()) break;
    in += *more;
    if (body == std::string::npos && (body = in.find("\r\n\r\n")) != std::string::npos) {
      body += 4;
      if (in.compare(0, 12, "HTTP/1.1 200") != 0) co_return absl::InternalError(in.substr(0, 200));
      size_t cl = in.find("Content-Length: ");
      if (cl == std::string::npos || !absl::SimpleAtoi(in.substr(cl + 16, in.find("\r\n", cl) - cl - 16), &length)) {
        co_return absl::InternalError("no Content-Length");
      }
    }
    if (body != std::string::npos && in.size() >= body + length) co_return length;
  }
  co_return absl::InternalError("the answer broke off");
}

// The status events of a cluster of 2 nodes, kWorkers workers and kJobs jobs.
std::vector<Value> ClusterEvents() {
  std::vector<Value> events;
  for (int n = 0; n < 2; ++n) {
    events.push_back(Value::Map({{"type", "node_initialized"}, {"node", absl::StrCat("tcp://n", n)}}));
  }
  for (int w = 0; w < kWorkers; ++w) {
    events.push_back(Value::Map({{"type", "worker_initialized"}, {"node", absl::StrCat("tcp://n", w % 2)},
                                 {"worker", absl::StrCat("tcp://127.0.0.1:", 40000 + w)}}));
  }
  for (int j = 0; j < kJobs; ++j) {
    const std::string worker = absl::StrCat("tcp://127.0.0.1:", 40000 + j % kWorkers);
    const std::string fn = absl::StrCat("function_", j % kFunctions);
    events.push_back(Value::Map({{"type", "job_started"}, {"job", uint64_t(j)}, {"fn", fn}, {"worker", worker},
                                 {"arg", Value::Bytes(absl::StrCat(j))}}));
    events.push_back(Value::Map({{"type", "job_finished"}, {"job", uint64_t(j)}, {"fn", fn}, {"worker", worker},
                                 {"code", 0}}));
  }
  return events;
}

// Waits until the dashboard saw `n` events (its status task runs between).
Task<void> AwaitEvents(const picos::dashboard::Dashboard& d, uint64_t n) {
  for (int i = 0; i < 600'000 && d.stats().events < n; ++i) (void)co_await picos::Yield();
}

// Sends the events as a computation does, a few at a time (a burst of
// 20,000 queued at once would measure the mailbox, not the dashboard).
Task<absl::Status> Feed(const picos::dashboard::Dashboard& d, const std::vector<Value>& events) {
  const uint64_t base = d.stats().events;
  for (size_t i = 0; i < events.size(); ++i) {
    PICOS_CO_RETURN_IF_ERROR(d.status_task().Send(events[i]));
    if (i % 64 == 63) co_await AwaitEvents(d, base + i + 1);
  }
  co_await AwaitEvents(d, base + events.size());
  co_return absl::OkStatus();
}

Task<absl::Status> Figures() {
  picos::metrics::Registry registry;
  FillRegistry(registry);
  picos::dashboard::DashboardOptions o;
  o.token = kToken;
  o.registry = &registry;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::dashboard::Dashboard> d,
                            co_await picos::dashboard::Dashboard::Start(picos::transports::DefaultTransports(), o));
  constexpr int kScrapes = 30;
  size_t bytes = 0;
  absl::Time start = absl::Now();
  for (int i = 0; i < kScrapes; ++i) bytes = registry.Exposition().size();
  picos::testing::PrintFigure("metrics_exposition_floor_ms", absl::ToDoubleMilliseconds(absl::Now() - start) / kScrapes, "ms");
  start = absl::Now();
  for (int i = 0; i < kScrapes; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(bytes, co_await Get(d->address(), "/metrics"));
  }
  picos::testing::PrintFigure("metrics_scrape_ms", absl::ToDoubleMilliseconds(absl::Now() - start) / kScrapes, "ms");
  picos::testing::PrintFigure("metrics_scrape_bytes", bytes, "B");

  const std::vector<Value> events = ClusterEvents();
  start = absl::Now();
  PICOS_CO_RETURN_IF_ERROR(co_await Feed(*d, events));
  picos::testing::PrintFigure("dashboard_event_us",
                              absl::ToDoubleMicroseconds(absl::Now() - start) / events.size(), "us");
  start = absl::Now();
  for (int i = 0; i < kScrapes; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(bytes, co_await Get(d->address(), "/api/state"));
  }
  picos::testing::PrintFigure("dashboard_state_ms", absl::ToDoubleMilliseconds(absl::Now() - start) / kScrapes, "ms");
  picos::testing::PrintFigure("dashboard_state_bytes", bytes, "B");
  co_return absl::OkStatus();
}

// What RssMb measures, as a task of its own (a coroutine lambda's captures
// would die with the lambda): with `bare`, a bare metrics server; else the
// dashboard, shown the cluster's events. The growth since `before` in *grown.
Task<absl::Status> Grow(bool bare, const picos::metrics::Registry* registry, const std::vector<Value>* events,
                        int64_t before, double* grown) {
  if (bare) {
    picos::metrics::MetricsServerOptions m;
    absl::StatusOr<std::unique_ptr<picos::metrics::MetricsServer>> server =
        co_await picos::metrics::MetricsServer::Start(picos::transports::DefaultTransports(), *registry, m);
    if (!server.ok()) co_return server.status();
    *grown = (picos::testing::CurrentRssBytes() - before) / 1048576.0;
    co_return absl::OkStatus();
  }
  picos::dashboard::DashboardOptions o;
  o.token = kToken;
  o.registry = registry;
  absl::StatusOr<std::unique_ptr<picos::dashboard::Dashboard>> d =
      co_await picos::dashboard::Dashboard::Start(picos::transports::DefaultTransports(), o);
  if (!d.ok()) co_return d.status();
  absl::Status fed = co_await Feed(**d, *events);
  if (!fed.ok()) co_return fed;
  absl::StatusOr<size_t> state = co_await Get((*d)->address(), "/api/state");
  if (!state.ok()) co_return state.status();
  *grown = (picos::testing::CurrentRssBytes() - before) / 1048576.0;
  co_return absl::OkStatus();
}

// RSS growth (MiB) of starting a dashboard and showing it the cluster's
// events, in a fresh child; with `bare`, of a bare metrics server instead.
double RssMb(int64_t bare) {
  picos::metrics::Registry registry;
  FillRegistry(registry);
  const std::vector<Value> events = ClusterEvents();
  const int64_t before = picos::testing::CurrentRssBytes();
  picos::Scheduler s;
  double grown = -1;
  picos::TaskRef t = s.Spawn(Grow, bare != 0, &registry, &events, before, &grown);
  absl::StatusOr<Value> r = s.RunUntil(t);
  return r.ok() ? grown : -1;
}

}  // namespace

int main() {
  // Memory first, each in a child of its own (a clean heap).
  picos::testing::PrintFigure("dashboard_rss_floor_mb", picos::testing::InChild(RssMb, 1), "MiB");
  picos::testing::PrintFigure("dashboard_rss_mb", picos::testing::InChild(RssMb, 0), "MiB");
  return picos::RunMain("dashboard_bench", Figures);
}
