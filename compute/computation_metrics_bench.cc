// metrics_scrape_ms (issue 13's figure): one scrape of a client's
// ComputationMetrics (compute/computation_metrics.h) after 10,000 jobs
// finished on 8 workers of 2 nodes, 10 functions, fed as the Computation
// feeds it (JobQueued, then the status events). Prints `name: value unit`
// lines: the median of 50 scrapes, and the floor measured in the same run
// (copying the same number of bytes line by line, what any exposition
// costs at least).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compute/computation_metrics.h"
#include "compute/host_stats.h"
#include "core/kernel/value.h"
#include "metrics/metrics.h"

namespace {

using picos::Value;

double MedianMs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main() {
  picos::metrics::Registry registry;
  auto m = picos::compute::ComputationMetrics::Register(registry);
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
    return 1;
  }
  picos::compute::HostFacts facts;
  facts.host = "h";
  facts.platform = "linux";
  facts.cpus = 4;
  facts.memory_total = uint64_t{8} << 30;
  for (int n = 0; n < 2; ++n) {
    const std::string node = absl::StrCat("tcp://10.0.0.", n + 1, ":9706");
    (*m)->Observe(Value::Map({{"type", "node_initialized"}, {"computation", "c"}, {"node", node},
                              {"facts", facts.ToValue()}, {"cpus", int64_t{4}}}));
    for (int w = 0; w < 4; ++w) {
      (*m)->Observe(Value::Map({{"type", "worker_initialized"}, {"computation", "c"},
                                {"worker", absl::StrCat(node, "/", w)}, {"node", node}}));
    }
  }
  for (uint64_t j = 0; j < 10000; ++j) {
    const std::string fn = absl::StrCat("function_", j % 10);
    const std::string worker = absl::StrCat("tcp://10.0.0.", j % 2 + 1, ":9706/", j % 4);
    (*m)->JobQueued("c", j, fn);
    (*m)->Observe(Value::Map({{"type", "job_started"}, {"computation", "c"}, {"job", j}, {"fn", fn},
                              {"worker", worker}, {"async", false}}));
    (*m)->Observe(Value::Map({{"type", "job_finished"}, {"computation", "c"}, {"job", j}, {"fn", fn},
                              {"worker", worker}, {"code", int64_t{j % 50 == 0 ? 10 : 0}}}));
  }
  std::vector<double> scrape, floor;
  size_t bytes = 0;
  for (int i = 0; i < 50; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string text = registry.Exposition();
    const auto t1 = std::chrono::steady_clock::now();
    bytes = text.size();
    // The floor: the same bytes appended line by line into a fresh string.
    std::string copy;
    size_t at = 0;
    while (at < text.size()) {
      size_t nl = text.find('\n', at);
      if (nl == std::string::npos) nl = text.size() - 1;
      copy.append(text, at, nl + 1 - at);
      at = nl + 1;
    }
    const auto t2 = std::chrono::steady_clock::now();
    if (copy.size() != text.size()) return 1;
    scrape.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    floor.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  std::printf("metrics_scrape_ms: %.3f ms (10,000 jobs finished, 8 workers, 10 functions; median of 50)\n",
              MedianMs(scrape));
  std::printf("metrics_scrape_floor_ms: %.3f ms (the same bytes copied line by line)\n", MedianMs(floor));
  std::printf("metrics_scrape_bytes: %zu bytes\n", bytes);
  return 0;
}
