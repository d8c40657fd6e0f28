// Figures of the metrics package (`name: value unit` lines, as every picos
// benchmark): the hot path (an increment, an observation, from one thread
// and from two at once on one counter) and a scrape's exposition of a
// registry as big as a busy cluster's (10,008 series). Each beside its floor
// where one exists: a plain relaxed atomic increment.
//
//   bazel run -c opt //metrics:metrics_bench
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "metrics/metrics.h"

namespace {

using Clock = std::chrono::steady_clock;

double NsPer(Clock::time_point start, long n) {
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / n;
}

}  // namespace

int main() {
  namespace m = picos::metrics;
  constexpr long kN = 50'000'000;
  m::Registry r;
  m::Counter* c = (*r.AddCounter("bench_total", "x", {"l"}))->WithLabels({"v"});
  m::Histogram* h = (*r.AddHistogram({.name = "bench_seconds", .help = "x"}, m::DurationBuckets()))->Get();

  std::atomic<uint64_t> floor{0};
  auto start = Clock::now();
  for (long i = 0; i < kN; ++i) floor.fetch_add(1, std::memory_order_relaxed);
  std::printf("atomic_increment_floor: %.2f ns\n", NsPer(start, kN));
  start = Clock::now();
  for (long i = 0; i < kN; ++i) c->Increment();
  std::printf("counter_increment: %.2f ns\n", NsPer(start, kN));
  start = Clock::now();
  for (long i = 0; i < kN / 10; ++i) h->Observe((i % 1000) * 0.0001);
  std::printf("histogram_observe: %.2f ns\n", NsPer(start, kN / 10));
  start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([c] {
      for (long i = 0; i < kN / 2; ++i) c->Increment();
    });
  }
  for (std::thread& t : threads) t.join();
  std::printf("counter_increment_2_threads_contended: %.2f ns\n", NsPer(start, kN));

  // A busy cluster's registry: 2,000 functions x 4 job states, a duration
  // histogram per function (17 lines each), and 8 workers' gauges: 10,008
  // series, about 42,000 lines.
  // (Above the default bound of 1,000 series per family: raised.)
  m::CounterFamily* jobs = *r.AddCounter(
      {.name = "jobs_total", .help = "x", .label_names = {"function", "state"}, .max_series = 10000});
  m::HistogramFamily* durations = *r.AddHistogram(
      {.name = "job_duration_seconds", .help = "x", .label_names = {"function"}, .max_series = 10000},
      m::DurationBuckets());
  m::GaugeFamily* workers = *r.AddGauge("worker_busy", "x", {"worker"});
  for (int f = 0; f < 2000; ++f) {
    const std::string fn = absl::StrCat("function_", f);
    for (const char* state : {"done", "failed", "lost", "running"}) jobs->WithLabels({fn, state})->Increment(f);
    durations->WithLabels({fn})->Observe(0.01 * (f % 10));
  }
  for (int w = 0; w < 8; ++w) workers->WithLabels({absl::StrCat("w", w)})->Set(1);
  constexpr int kScrapes = 50;
  size_t bytes = 0;
  start = Clock::now();
  for (int i = 0; i < kScrapes; ++i) bytes = r.Exposition().size();
  std::printf("metrics_exposition_10008_series: %.2f ms\n", NsPer(start, kScrapes) / 1e6);
  std::printf("metrics_exposition_10008_series_bytes: %zu B\n", bytes);
  return 0;
}
